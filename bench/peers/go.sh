#!/bin/bash
# Builds the Go echo peer (bench/peers/go_echo/main.go) into BUILD_DIR/peers/go.
#   bash bench/peers/go.sh [BUILD_DIR]      (default: build)
# Uses Debian's golang-go and the standard library only, offline; the Go
# cache and GOPATH live under BUILD_DIR/peers/go.d so nothing lands in $HOME.
# Exit 0: built (or already up to date); 77: cannot be had here (a
# "skipped: ..." line on stdout) or packages are missing and we are not root.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-build}/peers
bin=$out/go
src=$here/go_echo/main.go
pkgs="golang-go"

# Up to date: nothing to install or build.
if [ -x "$bin" ] && [ "$bin" -nt "$src" ] && [ "$bin" -nt "$0" ]; then
    exit 0
fi

missing=""
for p in $pkgs; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    for p in $missing; do
        cand=$(apt-cache policy "$p" 2>/dev/null | sed -n 's/^ *Candidate: *//p')
        if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
            echo "skipped: Debian package $p is not available from the configured apt sources"
            exit 77
        fi
    done
    if [ "$(id -u)" != 0 ]; then
        echo "go peer: missing Debian packages; run as root:" >&2
        echo "    apt-get install -y --no-install-recommends$missing" >&2
        exit 77
    fi
    # The lock timeout lets this wait for another apt-get instead of failing.
    # shellcheck disable=SC2086
    if ! log=$(DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends -o DPkg::Lock::Timeout=600 $missing 2>&1); then
        echo "$log" >&2
        echo "go peer: apt-get install$missing failed" >&2
        exit 1
    fi
fi

go=/usr/lib/go/bin/go
[ -x "$go" ] || go=$(command -v go)

mkdir -p "$out/go.d"
out=$(cd "$out" && pwd)
work=$out/go.d
# GO111MODULE=off: a lone main package of the standard library needs no
# module, so go never looks for a proxy.  The default build is optimised
# (no -N -l) and has no asserts.  No -trimpath: it would recompile the whole
# standard library (10 s) instead of using Debian's prebuilt one (1 s).
cd "$here/go_echo"
GO111MODULE=off GOFLAGS='' GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 \
GOCACHE="$work/cache" GOPATH="$work/gopath" HOME="$work" \
    "$go" build -o "$work/go.tmp" main.go
mv -f "$work/go.tmp" "$out/go"
