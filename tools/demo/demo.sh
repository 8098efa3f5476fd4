#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The guest side of 'make run': load emfs, show what its KUnit suites
# reported, show its trace events, unload it.

set -eu

echo "== insmod $EMFS_KO"
insmod "$EMFS_KO"
echo
echo "== KUnit results (/sys/kernel/debug/kunit/*/results)"
for dir in /sys/kernel/debug/kunit/emfs_*; do
	suite=$(basename "$dir")
	pass=$(grep -c '^    ok ' "$dir/results" || true)
	fail=$(grep -c '^    not ok ' "$dir/results" || true)
	printf '  %-24s %3d passed, %d failed\n' "$suite" "$pass" "$fail"
done
echo
echo "== trace events (/sys/kernel/tracing/events/emfs)"
ls /sys/kernel/tracing/events/emfs | grep -v -e '^enable$' -e '^filter$' | sed 's/^/  /'
echo
echo "== rmmod emfs"
rmmod emfs
echo "done"
