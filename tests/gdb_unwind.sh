#!/bin/sh
# The CFI in switch.S lets a debugger unwind a task's stack to its entry
# function and stop cleanly at the trampoline, also in the middle of a
# switch.  Runs gdb on build/examples/gather.
set -eu
B=${1:-build}
out=$(gdb -q -batch -nx \
    -ex 'break uco_sleep' -ex run -ex 'echo ==A\n' -ex bt \
    -ex 'delete' -ex 'break uco_arch_switch' -ex continue -ex 'stepi 9' -ex 'echo ==B\n' -ex bt \
    -ex kill "$B/examples/gather" 2>&1)
fail=0
check() { # section, pattern, what
    if ! printf '%s\n' "$out" | sed -n "/^==$1/,/^==/p" | grep -q "$2"; then
        echo "gdb_unwind: $3"; fail=1
    fi
}
check A ' in task (arg=' "no frame for the task's function at uco_sleep"
check A 'uco_arch_trampoline' "unwinding did not reach the trampoline"
check B 'uco_arch_switch ()' "no frame for uco_arch_switch mid-switch"
check B ' in task (arg=' "mid-switch unwinding lost the task's frames"
if printf '%s\n' "$out" | grep -qi 'corrupt\|Backtrace stopped'; then
    echo "gdb_unwind: gdb reported a broken backtrace"; fail=1
fi
if [ $fail = 0 ]; then echo "gdb_unwind: 1 passed, 0 failed"; else printf '%s\n' "$out"; fi
exit $fail
