#!/bin/bash
# Builds the Boost.Asio echo peer with Asio's default reactor (epoll) into
# BUILD_DIR/peers/asio_epoll.
#   bash bench/peers/asio_epoll.sh [BUILD_DIR]      (default: build)
# Exit 0: built (or already up to date); 77: cannot be had here (a
# "skipped: ..." line on stdout) or packages are missing and we are not root.
set -euo pipefail
variant=epoll
defs=""
libs=""
pkgs=""
# shellcheck source=asio_common.bash
. "$(dirname "$0")/asio_common.bash"
