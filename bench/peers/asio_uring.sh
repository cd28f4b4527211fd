#!/bin/bash
# Builds the Boost.Asio echo peer on Asio's io_uring backend (the epoll
# reactor compiled out) into BUILD_DIR/peers/asio_uring.
#   bash bench/peers/asio_uring.sh [BUILD_DIR]      (default: build)
# Exit 0: built (or already up to date); 77: cannot be had here (a
# "skipped: ..." line on stdout) or packages are missing and we are not root.
set -euo pipefail
variant=uring
defs="-DBOOST_ASIO_HAS_IO_URING -DBOOST_ASIO_DISABLE_EPOLL"
libs="-luring"
pkgs="liburing-dev"
# shellcheck source=asio_common.bash
. "$(dirname "$0")/asio_common.bash"
