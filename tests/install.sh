#!/bin/sh
# Installs into a scratch DESTDIR, then builds the README's example against
# the installed header, shared library and uco.pc, and runs it.
set -eu
B=${1:-build}
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
make --no-print-directory -s install B="$B" PREFIX=/opt/uco DESTDIR="$dest" >/dev/null
for f in include/uco.h lib/libuco.a lib/libuco.so lib/libuco.so.0 lib/pkgconfig/uco.pc; do
    [ -e "$dest/opt/uco/$f" ] || { echo "install: missing /opt/uco/$f"; exit 1; }
done
awk '/^```c$/{f=1;next} /^```$/{f=0} f' README.md > "$dest/ex.c"
flags=$(PKG_CONFIG_SYSROOT_DIR="$dest" PKG_CONFIG_LIBDIR="$dest/opt/uco/lib/pkgconfig" \
        pkg-config --cflags --libs uco)
# shellcheck disable=SC2086
cc -std=gnu11 -Wall -Werror "$dest/ex.c" $flags -o "$dest/ex"
out=$(LD_LIBRARY_PATH="$dest/opt/uco/lib" "$dest/ex")
want=$(printf 'Task 1 started\nTask 2 started\nTask 2 completed\nTask 1 completed')
[ "$out" = "$want" ] || { echo "install: README example printed:"; echo "$out"; exit 1; }
# Only uco_ names may leave the shared library.
bad=$(nm -D --defined-only "$dest/opt/uco/lib/libuco.so" | awk '{print $3}' | grep -v '^uco_' || true)
[ -z "$bad" ] || { echo "install: libuco.so exports non-uco names: $bad"; exit 1; }
echo "install: 1 passed, 0 failed"
