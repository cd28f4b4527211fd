# shellcheck shell=bash disable=SC2154  # variant, defs, libs: set by the caller
# Sourced by asio_epoll.sh and asio_uring.sh (set: variant, defs, libs,
# pkgs): builds bench/peers/asio_echo.cc into BUILD_DIR/peers/asio_$variant.
# Boost comes from the package tools/deps.sh installs, libboost-context1.81-dev
# (it brings the libboost1.81-dev headers): one Boost for the whole project,
# since the 1.81 and the default 1.74 -dev packages conflict, and Asio's
# io_uring backend needs 1.78 or later.

here=$(cd "$(dirname "$0")" && pwd)
src=$here/asio_echo.cc
out=${1:-build}/peers
bin=$out/asio_$variant
pkgs="g++ libboost-context1.81-dev $pkgs"

# shellcheck source=common.bash
. "$here/common.bash"
peer_up_to_date "$bin" "$src" "$here/asio_common.bash" && exit 0
# shellcheck disable=SC2086  # one word per package
peer_install "asio_$variant" $pkgs

mkdir -p "$out"
# shellcheck disable=SC2086
g++ -std=c++17 -O2 -DNDEBUG -Wall -Wextra -Werror -pthread $defs "$src" -o "$bin.tmp" $libs
mv "$bin.tmp" "$bin"
