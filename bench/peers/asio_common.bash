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

if [ -x "$bin" ] && [ "$bin" -nt "$src" ] && [ "$bin" -nt "$0" ] &&
   [ "$bin" -nt "$here/asio_common.bash" ]; then
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
        echo "asio_$variant peer: missing Debian packages; run as root:" >&2
        echo "    apt-get install -y --no-install-recommends$missing" >&2
        exit 77
    fi
    # The lock timeout lets this wait for another apt-get instead of failing.
    # shellcheck disable=SC2086
    if ! log=$(DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends -o DPkg::Lock::Timeout=600 $missing 2>&1); then
        echo "$log" >&2
        echo "asio_$variant peer: apt-get install$missing failed" >&2
        exit 1
    fi
fi

mkdir -p "$out"
# shellcheck disable=SC2086
g++ -std=c++17 -O2 -DNDEBUG -Wall -Wextra -Werror -pthread $defs "$src" -o "$bin.tmp" $libs
mv "$bin.tmp" "$bin"
