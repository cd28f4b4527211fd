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

# shellcheck source=common.bash
. "$here/common.bash"
peer_up_to_date "$bin" "$src" && exit 0
# shellcheck disable=SC2086  # one word per package
peer_install go $pkgs

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
