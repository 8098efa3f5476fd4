#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The emfs stress run, in the VM (make stress DURATION=<seconds>, and a
# short one in make check): for $EMFS_STRESS_SECS seconds, under lockdep,
#
#   - four fsx instances on their own files, round after round of fixed
#     seeds (tools/testing/emfs/fsx/emfs.toml);
#   - a writer that writes, truncates and punches holes in a file of its
#     own, then checks what it reads back;
#   - an fsync loop over every file;
#   - a loop forcing the mount's shrinker, and drop_caches every second;
#   - mount/write/umount cycles of a second emfs instance.
#
# Then everything stops, and the consistency check, umount, rmmod and a
# kmemleak scan must all be clean.

set -u
. "${0%/*}/lib.sh"

secs=${EMFS_STRESS_SECS:-60}
insmod "$EMFS_KO" || exit 1
mnt=$EMFS_SCRATCH/mnt
mnt2=$EMFS_SCRATCH/mnt2
mkdir -p "$mnt2"
check "mount" emfs_mount "$mnt" size=256M
work=/tmp/stress
mkdir -p "$work"
end=$(($(date +%s) + secs))
alive() { [ "$(date +%s)" -lt "$end" ]; }

# fsx NAME: rounds of $round_ops operations, a new seed each round. The
# run ends with the round under way: short rounds keep a short run short,
# and long ones keep a long run on the data path (starting fsx and
# setting up its file cost about 0.8 s of a 500-operation round here).
if [ "$secs" -ge 120 ]; then round_ops=2000; else round_ops=500; fi
round_ops=${EMFS_STRESS_FSX_OPS:-$round_ops}
fsx_loop() {
	local n=$1 round=0
	while alive; do
		round=$((round + 1))
		if ! fsx -f "$testing_dir/fsx/emfs.toml" -N "$round_ops" -S $((n * 1000 + round)) \
			-P "$work" "$mnt/fsx.$n" >"$work/fsx.$n.out" 2>&1; then
			echo "fsx $n round $round failed" >>"$work/failures"
			tail -30 "$work/fsx.$n.out" >>"$work/failures"
			return
		fi
		echo "$round_ops" >>"$work/fsx.$n.ops"
	done
}

# A file written, truncated and punched; the expected contents kept in
# a second file on tmpfs, compared after each round.
writer_loop() {
	local f=$mnt/writer ref=$work/writer.ref i=0 off len
	: >"$f"
	: >"$ref"
	while alive; do
		i=$((i + 1))
		off=$(((RANDOM % 512) * 4096 + RANDOM % 4096))
		len=$((RANDOM % 65536 + 1))
		xfs_io -c "pwrite -S $((i % 250 + 1)) $off $len" "$f" >/dev/null
		xfs_io -c "pwrite -S $((i % 250 + 1)) $off $len" "$ref" >/dev/null
		off=$(((RANDOM % 512) * 4096))
		len=$(((RANDOM % 16 + 1) * 4096))
		xfs_io -c "fpunch $off $len" "$f"
		xfs_io -c "fpunch $off $len" "$ref"
		if ((i % 4 == 0)); then
			len=$(((RANDOM % 512) * 4096 + RANDOM % 4096))
			truncate -s "$len" "$f"
			truncate -s "$len" "$ref"
		fi
		if ! cmp -s "$f" "$ref"; then
			echo "writer: contents differ after round $i" >>"$work/failures"
			return
		fi
		echo 1 >>"$work/writer.rounds"
	done
}

fsync_loop() {
	while alive; do
		for f in "$mnt"/*; do xfs_io -r -c fsync "$f" 2>/dev/null; done
		echo 1 >>"$work/fsyncs"
		sleep 0.2
	done
}

squeeze_loop() {
	local i=0
	while alive; do
		echo "0 0 100000" >"$shrinker/scan"
		((i++ % 20)) || echo 3 >/proc/sys/vm/drop_caches
		sleep 0.05
	done
}

mount_loop() {
	local i=0
	while alive; do
		i=$((i + 1))
		mount -t emfs -o size=16M none "$mnt2" || { echo "mount $i failed" >>"$work/failures"; return; }
		xfs_io -f -c "pwrite -S 7 0 1M" -c fsync "$mnt2/f" >/dev/null
		if [ "$(od -An -tx1 -N1 -j 524288 "$mnt2/f" | tr -d ' ')" != 07 ]; then
			echo "second mount: wrong byte in cycle $i" >>"$work/failures"
		fi
		umount "$mnt2" || { echo "umount $i failed" >>"$work/failures"; return; }
		echo 1 >>"$work/mounts"
	done
}

pids=()
for n in 1 2 3 4; do fsx_loop "$n" & pids+=($!); done
writer_loop & pids+=($!)
fsync_loop & pids+=($!)
squeeze_loop >/dev/null 2>&1 & pids+=($!)
mount_loop & pids+=($!)
wait "${pids[@]}"

count() { [ -f "$1" ] && awk '{ s += $1 } END { print s + 0 }' "$1" || echo 0; }
ops=0
for n in 1 2 3 4; do ops=$((ops + $(count "$work/fsx.$n.ops"))); done
note "stress: $secs s: $ops fsx operations, $(count "$work/writer.rounds") writer rounds, $(count "$work/fsyncs") fsync passes, $(count "$work/mounts") mount cycles"
cat "$stats"
check "no failure in $secs s of stress" test ! -s "$work/failures"
[ -s "$work/failures" ] && cat "$work/failures"
check "fsx ran" test "$ops" -gt 0
check "the second instance was mounted and unmounted" test "$(count "$work/mounts")" -gt 0
# The shrinker's runs are the worker's, after the requests: wait for one.
ran() { [ "$(stat_of "$stats" shrinker_runs)" -gt 0 ]; }
check "the shrinker ran" wait_for 60 ran
check "consistency check" emfs_check
check "umount" umount "$mnt"
check "live objects: none" none_alive
check "rmmod" rmmod emfs
exit $fail
