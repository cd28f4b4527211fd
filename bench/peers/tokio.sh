#!/bin/bash
# Builds the tokio echo peer (bench/peers/tokio_echo/) into BUILD_DIR/peers/tokio.
#   bash bench/peers/tokio.sh [BUILD_DIR]      (default: build)
# Offline, from Debian only: its cargo and rustc (/usr/bin, never a rustup
# toolchain a fresh machine lacks) and the crates its librust-*-dev packages
# put in /usr/share/cargo/registry, which stands in for crates.io.  Cargo's
# home, the copied sources (so Cargo.lock lands there) and the target dir
# live under BUILD_DIR/peers/tokio.d; nothing is written to $HOME.
# Exit 0: built (or already up to date); 77: cannot be had here (a
# "skipped: ..." line on stdout) or packages are missing and we are not root.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$here/tokio_echo
out=${1:-build}/peers
bin=$out/tokio
# tokio's "rt", "net", "io-util", "signal" and "time" features are all in
# librust-tokio-dev (it Provides librust-tokio+<feature>-dev).
pkgs="cargo rustc librust-tokio-dev librust-libc-dev"

# shellcheck source=common.bash
. "$here/common.bash"
peer_up_to_date "$bin" "$src/Cargo.toml" "$src/src/main.rs" && exit 0
# shellcheck disable=SC2086  # one word per package
peer_install tokio $pkgs

mkdir -p "$out/tokio.d"
out=$(cd "$out" && pwd)
work=$out/tokio.d
mkdir -p "$work/cargo-home" "$work/src/src"
cat > "$work/cargo-home/config.toml" <<'CONF'
[source.crates-io]
replace-with = "debian"

[source.debian]
directory = "/usr/share/cargo/registry"

[net]
offline = true
CONF
cp -p "$src/Cargo.toml" "$work/src/"
cp -p "$src/src/main.rs" "$work/src/src/"

# A clean environment: no rustup shims on PATH, no flags from the caller.
if ! log=$(env -u RUSTFLAGS -u CARGO_TARGET_DIR -u RUSTUP_TOOLCHAIN -u CARGO_BUILD_TARGET \
        PATH=/usr/bin:/bin HOME="$work" CARGO_HOME="$work/cargo-home" \
        RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
        /usr/bin/cargo build --release --offline --quiet \
        --manifest-path "$work/src/Cargo.toml" --target-dir "$work/target" 2>&1); then
    echo "$log" >&2
    if echo "$log" | grep -q 'failed to select a version\|no matching package\|failed to get'; then
        echo "skipped: Debian's crates do not satisfy bench/peers/tokio_echo/Cargo.toml (cargo's error above)"
        exit 77
    fi
    echo "tokio peer: cargo build failed" >&2
    exit 1
fi
cp -f "$work/target/release/tokio_echo" "$work/tokio.tmp"
mv -f "$work/tokio.tmp" "$out/tokio"
