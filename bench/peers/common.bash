# shellcheck shell=bash
# Sourced by every peer script in bench/peers/: the two steps they share.

# peer_up_to_date BIN FILE...: true when BIN exists and is newer than each
# FILE, the calling script and this file (then there is nothing to do).
peer_up_to_date() {
    local bin=$1 f
    shift
    [ -x "$bin" ] || return 1
    for f in "$@" "$0" "${BASH_SOURCE[0]}"; do
        [ "$bin" -nt "$f" ] || return 1
    done
}

# peer_install NAME PKG...: installs the Debian packages that are missing.
# Exits 77 with a "skipped: ..." line when one has no candidate in the apt
# sources, 77 with the exact apt-get command when not root, 1 when apt-get
# fails.
peer_install() {
    local name=$1 p cand log missing=""
    shift
    for p in "$@"; do
        [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] ||
            missing="$missing $p"
    done
    [ -n "$missing" ] || return 0
    for p in $missing; do
        cand=$(apt-cache policy "$p" 2>/dev/null | sed -n 's/^ *Candidate: *//p')
        if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
            echo "skipped: Debian package $p is not available from the configured apt sources"
            exit 77
        fi
    done
    if [ "$(id -u)" != 0 ]; then
        echo "$name peer: missing Debian packages; run as root:" >&2
        echo "    apt-get install -y --no-install-recommends$missing" >&2
        exit 77
    fi
    # The lock timeout lets this wait for another apt-get instead of failing.
    # shellcheck disable=SC2086
    if ! log=$(DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends -o DPkg::Lock::Timeout=600 $missing 2>&1); then
        echo "$log" >&2
        echo "$name peer: apt-get install$missing failed" >&2
        exit 1
    fi
}
