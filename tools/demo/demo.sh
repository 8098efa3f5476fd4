#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The guest side of 'make run': load emfs, show what its KUnit suites
# reported; mount emfs, write a fragmented file, show it with filefrag,
# read it back, squeeze the extent map cache through the shrinker, show
# the counters and trace events, and read again to show the misses that
# reloaded the maps; make a symlink, a hard link and an extended
# attribute, and read the file with O_DIRECT. Then fill the cache of a synthetic owner, make its
# shrinker scan, and show the counters and trace events that record it.
# Last, record a run under real memory pressure with tools/emfs-trace
# (tools/demo/pressure.sh), for 'make run' to draw on the host.

set -eu
stat_of() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }
# mount_emfs SIZE: mount emfs on $mnt; $id is its owner (from its log line).
mount_emfs() {
	mount -t emfs -o size="$1" none "$mnt"
	id=$(dmesg | sed -n 's/.*emfs: mounted: owner \([0-9]*\),.*/\1/p' | tail -1)
}
show_stats() {
	echo "  $stats:"
	awk '{ printf "    %-22s %8s%s", $1, $2, NR % 3 ? "" : "\n" } END { if (NR % 3) print "" }' "$stats"
}

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

tracing=/sys/kernel/tracing
mnt=/tmp/emfs
echo
echo "== mount -t emfs -o size=64M none $mnt"
mkdir -p "$mnt"
mount_emfs 64M
grep " $mnt " /proc/mounts | sed 's/^/  /'
stats=/proc/fs/emfs/$id/stats
shrinker=$(ls -d /sys/kernel/debug/shrinker/emfs-extent-map:"$id"-* | head -1)

echo
echo "== a fragmented file: 2 MiB written back to front in 64 KiB pieces, each"
echo "   written back before the next, so that first-fit allocation scatters it"
head -c 2M /dev/urandom >/tmp/src
xfs_io -f -c "pwrite -q 0 4k" -c fsync "$mnt/spacer" >/dev/null
# Between pieces, another file takes the next block, so that neighbours
# in the file are not neighbours on disk.
for ((i = 31; i >= 0; i--)); do
	xfs_io -f -c "pwrite -q -i /tmp/src -s $((i * 65536)) $((i * 65536)) 64k" -c fsync "$mnt/file"
	xfs_io -c "pwrite -q $(((31 - i) * 4096)) 4k" -c fsync "$mnt/spacer"
done
echo "  filefrag -v $mnt/file (first extents):"
filefrag -v "$mnt/file" | sed -n '1,8p' | sed 's/^/    /'
echo "    ..."
filefrag "$mnt/file" | sed 's/^/  /'
echo "  read back: $(cmp -s /tmp/src "$mnt/file" && echo "equal to what was written" || echo DIFFERENT)"
show_stats

echo
echo "== squeeze: drop the page cache, then a full scan of the mount's shrinker"
echo 1 >"$tracing/events/emfs/enable"
echo >"$tracing/trace"
echo 1 >/proc/sys/vm/drop_caches
echo "0 0 100000" >"$shrinker/scan"
for _ in $(seq 100); do
	[ "$(stat_of "$stats" maps_evictable)" -eq 0 ] && break
	sleep 0.1
done
grep -E "scan_(enter|exit)" "$tracing/trace" | sed 's/^ */  /'
echo "  $(grep -c em_shrinker_remove_em "$tracing/trace") em_shrinker_remove_em events"
show_stats

echo
echo "== read again: every map is reloaded from the extent records on a miss"
misses=$(stat_of "$stats" misses)
echo >"$tracing/trace"
echo "  read back: $(cmp -s /tmp/src "$mnt/file" && echo "equal to what was written" || echo DIFFERENT)"
echo 0 >"$tracing/events/emfs/enable"
echo "  misses: $misses -> $(stat_of "$stats" misses); em_cache_miss events:"
grep -m4 em_cache_miss "$tracing/trace" | sed 's/^ */    /'
echo "    ... $(grep -c em_cache_miss "$tracing/trace") in all"

echo
echo "== what POSIX programs use: a symlink, a hard link, an extended attribute, O_DIRECT"
ln -s file "$mnt/link"
echo "  ln -s file link:   $(stat -c '%N, %F' "$mnt/link")"
ln "$mnt/file" "$mnt/hard"
echo "  ln file hard:      $(stat -c '%h links to inode %i' "$mnt/file")"
python3 -c 'import os, sys; os.setxattr(sys.argv[1], "user.comment", b"fragmented")' "$mnt/file"
echo "  setxattr user.comment: $(python3 -c 'import os, sys; print(os.getxattr(sys.argv[1], "user.comment").decode())' "$mnt/file")"
dd if="$mnt/file" iflag=direct bs=64k count=4 of=/tmp/direct status=none
head -c 256K /tmp/src >/tmp/src-head
echo "  dd iflag=direct (the first 256 KiB, from the disk through the extent maps):" \
	"$(cmp -s /tmp/direct /tmp/src-head && echo "equal to what was written" || echo DIFFERENT)"
rm "$mnt/link" "$mnt/hard"
umount "$mnt"

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
echo "== the shrinker under memory pressure, recorded by tools/emfs-trace"
echo "   (tools/demo/pressure.sh: write, a synthetic owner, read, a ballast"
echo "   of page cache, three rounds of squeeze, read again)"
mount_emfs 256M
rec=${EMFS_OUT:-$EMFS_SCRATCH}/emfs-trace
rm -rf "$rec"
"$EMFS_TOP/tools/emfs-trace" record -o "$rec" -- "$EMFS_TOP/tools/demo/pressure.sh" "$mnt" 3 |
	sed 's/^/  /'
echo
echo "== tools/emfs-stat: the mount (owner $id) and the synthetic owner"
"$EMFS_TOP/tools/emfs-stat" | sed 's/^/  /'
echo
echo "== tools/emfs-trace report"
"$EMFS_TOP/tools/emfs-trace" report "$rec" | sed 's/^/  /'
echo "0 0" >"$syn"
umount "$mnt"

echo
echo "== rmmod emfs"
rmmod emfs
echo "done"
