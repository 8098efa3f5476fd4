#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The guest side of 'make run': load emfs, show what its KUnit suites
# reported, fill the extent map cache of a synthetic owner, make its
# shrinker scan, and show the counters and trace events that record it.

set -eu
stat_of() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }

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
echo "== fill the cache: 32 inodes of 1000 extent maps"
syn=/sys/kernel/debug/emfs/synthetic
echo "32 1000" >"$syn"
id=$(awk '{ print $2 }' "$syn")
stats=/proc/fs/emfs/$id/stats
shrinker=$(ls -d /sys/kernel/debug/shrinker/emfs-extent-map:"$id"-* | head -1)
echo "  owner $id, shrinker $(basename "$shrinker"), count $(awk '{ print $2 }' "$shrinker/count")"
sed 's/^/  /' "$stats"

echo
echo "== the shrinker at work: three scans of 4000 maps"
tracing=/sys/kernel/tracing
echo 1 >"$tracing/events/emfs/em_shrinker_scan_enter/enable"
echo 1 >"$tracing/events/emfs/em_shrinker_scan_exit/enable"
echo 1 >"$tracing/events/emfs/em_shrinker_remove_em/enable"
echo >"$tracing/trace"
for run in 1 2 3; do
	echo "0 0 4000" >"$shrinker/scan"
	for _ in $(seq 100); do
		[ "$(stat_of "$stats" shrinker_runs)" -ge "$run" ] && break
		sleep 0.1
	done
	echo "  after scan $run: maps_cached $(stat_of "$stats" maps_cached), shrinker_freed $(stat_of "$stats" shrinker_freed)"
done
echo 0 >"$tracing/events/emfs/enable"
echo
echo "== trace (/sys/kernel/tracing/trace, scan events and the first removals)"
grep -E "scan_(enter|exit)" "$tracing/trace" | sed 's/^ */  /'
grep -m3 em_shrinker_remove_em "$tracing/trace" | sed 's/^ */  /'
echo "  ... $(grep -c em_shrinker_remove_em "$tracing/trace") em_shrinker_remove_em events in all"
echo
echo "== final counters ($stats)"
sed 's/^/  /' "$stats"

echo "0 0" >"$syn"
echo
echo "== rmmod emfs"
rmmod emfs
echo "done"
