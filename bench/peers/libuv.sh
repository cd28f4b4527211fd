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

# shellcheck source=common.bash
. "$here/common.bash"
peer_up_to_date "$bin" "$src" "$here/../baselines/server.h" && exit 0
# shellcheck disable=SC2086  # one word per package
peer_install libuv $pkgs

mkdir -p "$out"
# shellcheck disable=SC2046
gcc -std=gnu11 -O2 -DNDEBUG -Wall -Wextra -Werror $(pkg-config --cflags libuv) \
    "$src" -o "$bin.tmp" $(pkg-config --libs libuv)
mv "$bin.tmp" "$bin"
