#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The sample module (samples/walkthrough.rs): loaded alone, it prints the
# walk-through that tools/testing/emfs/emfs_sample.expected holds, line for
# line, and fires its own trace events (system emfs_sample, enabled before
# the load with set_event's :mod: command); it loads next to emfs without
# a clash of event systems; both unload; nothing is leaked.

set -eu
. "${0%/*}/../lib.sh"

tracing=/sys/kernel/tracing
sample=$(dirname "$EMFS_KO")/samples/emfs_sample.ko
expected=$testing_dir/emfs_sample.expected

# Enable the module's events for when it is loaded.
echo ':mod:emfs_sample' >>"$tracing/set_event"
echo >"$tracing/trace"
dmesg -C

check "insmod emfs_sample" insmod "$sample"
# What the walk-through printed, without the timestamps and the prefix.
dmesg | sed -n 's/^\[[ 0-9.]*\] emfs_sample: //p' | grep -v 'taints kernel' \
	>"$EMFS_SCRATCH/printed"
sed 's/^/  | /' "$EMFS_SCRATCH/printed"
check "the walk-through printed emfs_sample.expected" \
	diff -u "$expected" "$EMFS_SCRATCH/printed"

merges=$(sed -n 's/.*merges \([0-9]*\)$/\1/p' "$EMFS_SCRATCH/printed")
traced=$(grep -c 'em_merge:' "$tracing/trace" || true)
misses=$(grep -c 'em_cache_miss:' "$tracing/trace" || true)
note "  trace: $traced emfs_sample:em_merge, $misses emfs_sample:em_cache_miss"
check "one emfs_sample:em_merge event per merge counted ($merges)" \
	test "$traced" -eq "${merges:-x}" -a "$traced" -gt 0
check "one emfs_sample:em_cache_miss event for the lookup that missed" \
	test "$misses" -eq 1
check "its events are under events/emfs_sample" test -d "$tracing/events/emfs_sample/em_merge"
echo 0 >"$tracing/events/emfs_sample/enable"

check "emfs loads next to it" insmod "$EMFS_KO"
check "both event systems present" test -d "$tracing/events/emfs/em_merge" -a \
	-d "$tracing/events/emfs_sample/em_merge"
check "rmmod emfs" rmmod emfs
check "rmmod emfs_sample" rmmod emfs_sample
check "its events are gone" test ! -d "$tracing/events/emfs_sample"
exit "$fail"
