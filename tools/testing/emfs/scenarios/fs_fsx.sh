#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# fsx on emfs: reads, writes, mmap reads and writes, truncate, fallocate,
# punch hole, fsync, fadvise, sendfile and copy_file_range, with fixed
# seeds, four files at a time (tools/testing/emfs/fsx/emfs.toml). Once
# plain, and once while another process forces the shrinker continuously
# through its debugfs scan file and /proc/sys/vm/drop_caches. Any
# miscompare fails; the operations run are counted.
#
# What it must show: fsx passes while maps are evicted and reloaded under
# it (3000 operations per file, the count kept), and the same workload
# passes without the pressure (a third of it: a baseline, not the proof).
# make stress runs fsx for as long as asked.

set -u
. "${0%/*}/../lib.sh"

ops=${EMFS_FSX_OPS:-3000}
plain_ops=$((ops / 3))
conf=$testing_dir/fsx/emfs.toml
insmod "$EMFS_KO" || exit 1
mnt=$EMFS_SCRATCH/mnt
check "mount" emfs_mount "$mnt" size=256M
work=/tmp/fsx
mkdir -p "$work"

total=0
# run_fsx NAME OPS SEED...: one fsx of OPS operations per seed, in
# parallel, on NAME.SEED.
run_fsx() {
	local name=$1 ops=$2 seed pids=() rc=0 i=0
	shift 2
	for seed in "$@"; do
		fsx -f "$conf" -N "$ops" -S "$seed" -P "$work" "$mnt/$name.$seed" \
			>"$work/$name.$seed.out" 2>&1 &
		pids+=($!)
	done
	for seed in "$@"; do
		if wait "${pids[$i]}" && grep -q "All operations completed A-OK" "$work/$name.$seed.out"; then
			note "ok: fsx $name seed $seed: $ops operations"
			total=$((total + ops))
		else
			note "not ok: fsx $name seed $seed"
			grep -m1 -B2 -A30 "ERROR" "$work/$name.$seed.out" | head -60
			rc=1
		fi
		i=$((i + 1))
	done
	return $rc
}

start=$(date +%s)
run_fsx plain "$plain_ops" 1 2 3 4 || fail=1
note "plain: $(($(date +%s) - start)) s"
cat "$stats"

# The pressure: a full scan of the mount's shrinker every 50 ms, and a
# drop of the page cache and slab caches every 500 ms (more often, it
# mostly re-reads the test programs over 9p).
runs=$(stat_of "$stats" shrinker_runs)
freed=$(stat_of "$stats" shrinker_freed)
misses=$(stat_of "$stats" misses)
(
	for ((i = 0; ; i++)); do
		echo "0 0 100000" >"$shrinker/scan"
		((i % 10)) || echo 3 >/proc/sys/vm/drop_caches
		echo "$i" >"$work/squeezes"
		sleep 0.05
	done
) >/dev/null 2>&1 &
squeezer=$!
# However fast fsx runs, the pressure is on from its start, and the
# shrinker has run enough times before it is taken off.
wait_for 120 test -s "$work/squeezes"
start=$(date +%s)
run_fsx pressure "$ops" 5 6 7 8 || fail=1
note "under pressure: $(($(date +%s) - start)) s"
ran_enough() { [ "$(stat_of "$stats" shrinker_runs)" -gt $((runs + 10)) ]; }
wait_for 300 ran_enough
kill "$squeezer"
wait "$squeezer" 2>/dev/null
cat "$stats"
note "shrinker runs $(($(stat_of "$stats" shrinker_runs) - runs)), maps freed $(($(stat_of "$stats" shrinker_freed) - freed)), misses $(($(stat_of "$stats" misses) - misses)) under pressure"
check "the shrinker ran under pressure" test "$(stat_of "$stats" shrinker_runs)" -gt $((runs + 10))
check "it freed maps" test "$(stat_of "$stats" shrinker_freed)" -gt "$freed"
check "maps were reloaded" test "$(stat_of "$stats" misses)" -gt "$misses"
note "fsx operations: $total"
check "at least $((4 * plain_ops + 4 * ops)) operations" test "$total" -ge $((4 * plain_ops + 4 * ops))

check "umount" umount "$mnt"
check "live objects: none" none_alive
check "rmmod" rmmod emfs
exit $fail
