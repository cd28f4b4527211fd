#!/bin/bash
# Builds the libuv echo peer (bench/peers/libuv_echo.c) into BUILD_DIR/peers/libuv.
#   bash bench/peers/libuv.sh [BUILD_DIR]      (default: build)
# Debian's libuv1-dev (libuv 1.44), -O2, no asserts.
# Exit 0: built (or already up to date); 77: cannot be had here (a
# "skipped: ..." line on stdout) or packages are missing and we are not root.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$here/libuv_echo.c
out=${1:-build}/peers
bin=$out/libuv
pkgs="gcc libc6-dev pkg-config libuv1-dev"

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
        echo "libuv peer: missing Debian packages; run as root:" >&2
        echo "    apt-get install -y --no-install-recommends$missing" >&2
        exit 77
    fi
    # The lock timeout lets this wait for another apt-get instead of failing.
    # shellcheck disable=SC2086
    if ! log=$(DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends -o DPkg::Lock::Timeout=600 $missing 2>&1); then
        echo "$log" >&2
        echo "libuv peer: apt-get install$missing failed" >&2
        exit 1
    fi
fi

mkdir -p "$out"
# shellcheck disable=SC2046
gcc -std=gnu11 -O2 -DNDEBUG -Wall -Wextra -Werror $(pkg-config --cflags libuv) \
    "$src" -o "$bin.tmp" $(pkg-config --libs libuv)
mv "$bin.tmp" "$bin"
