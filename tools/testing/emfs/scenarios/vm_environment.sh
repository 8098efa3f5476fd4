#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The guest environment every scenario relies on: 2 CPUs, pseudo
# filesystems mounted, the host's tools runnable, a read-only root and a
# writable scratch directory, and the module path.

set -u
fail=0
check() {
	local what=$1
	shift
	if "$@" >/dev/null 2>&1; then
		echo "ok: $what"
	else
		echo "not ok: $what"
		fail=1
	fi
}

check "2 CPUs online" test "$(nproc)" -eq 2
check "proc mounted" test -r /proc/self/status
check "sysfs mounted" test -d /sys/kernel
check "debugfs mounted" test -d /sys/kernel/debug/kunit
check "tracefs mounted" test -r /sys/kernel/tracing/available_events
check "shrinker debugfs present" test -d /sys/kernel/debug/shrinker
check "kmemleak present" test -e /sys/kernel/debug/kmemleak
check "failslab present" test -d /sys/kernel/debug/failslab
check "root is read-only" sh -c '! touch /emfs-ro-probe'
check "scratch is writable" sh -c 'echo x > "$EMFS_SCRATCH/probe" && rm "$EMFS_SCRATCH/probe"'
check "module exists" test -f "$EMFS_KO"
for tool in bash python3 xfs_io filefrag fio fsx pjdfstest trace-cmd; do
	check "tool $tool runs" command -v "$tool"
done
check "xfs_io runs" xfs_io -c "pwrite 0 4096" -f "$EMFS_SCRATCH/f"
exit $fail
