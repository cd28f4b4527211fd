#!/bin/sh
# Installs the Debian packages uco needs to build, test and benchmark.
# Called by make when a dependency is missing; safe to run by hand.
# As root it runs apt-get; otherwise it prints the exact command and stops.
#   deps.sh          what make and make test need
#   deps.sh bench    also the load generator and servers make bench compares
#                    against (wrk, nginx); the peers' own scripts in
#                    bench/peers/ install what each peer needs
set -eu

# Boost 1.81, not the default 1.74 (libboost-context-dev): Asio's io_uring
# backend (bench/peers/asio_uring.sh) needs >= 1.78, and the two versions'
# -dev packages conflict, so everything (boost_floor.cc too) uses 1.81.
PKGS="build-essential g++ pkg-config liburing-dev libjemalloc-dev check \
libsubunit-dev libbenchmark-dev valgrind qemu-user gcc-aarch64-linux-gnu \
libc6-dev-arm64-cross gdb strace curl python3 time \
libboost-context1.81-dev gnuplot-nox"
if [ "${1:-}" = bench ]; then
    PKGS="$PKGS wrk nginx-light"
fi

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done

[ -z "$missing" ] && exit 0

echo "uco: missing Debian packages:$missing" >&2
if [ "$(id -u)" != 0 ]; then
    echo "uco: run this as root, then run make again:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "uco: installed:$missing" >&2
