#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# A hot inode under reclaim: one file of 20,000 extent maps read over and
# over by two readers that drop its page cache each pass, so that every
# block goes through read_folio and looks its map up; eight cold files of
# 1,000 maps each beside it.
#
# What it must show: the shrinker takes maps of the hot file while it is
# being read, both when its scan is forced (debugfs) and under real memory
# pressure (tools/demo/squeeze.py), within a bounded time; how many is
# reported (em_shrinker_remove_em events of its inode); the readers read
# correct data throughout. The deterministic proof that a continuously
# looked-up inode is never passed over forever is the KUnit case
# emfs_shrinker.hot_inode_gives_maps_back; this is the same on a live
# filesystem.

set -u
. "${0%/*}/../lib.sh"

tools=$EMFS_TOP/tools
tracing=/sys/kernel/tracing
event=$tracing/events/emfs/em_shrinker_remove_em
hot_blocks=20000
cold_blocks=1000

insmod "$EMFS_KO" || exit 1
mnt=$EMFS_SCRATCH/mnt
check "mount" emfs_mount "$mnt" size=128M
cold=()
for i in 1 2 3 4 5 6 7 8; do cold+=("$mnt/cold$i" "$cold_blocks"); done
check "write the files" python3 -S "$testing_dir/hot_file.py" write \
	"$mnt/hot" "$hot_blocks" "${cold[@]}"
hot_ino=$(stat -c %i "$mnt/hot")

# Load every map once.
stop=$EMFS_SCRATCH/stop
cat "$mnt"/hot "$mnt"/cold* >/dev/null
cat "$stats"
cached=$(stat_of "$stats" maps_cached)
check "at least 28,000 maps cached ($cached)" test "$cached" -ge 28000

echo "ino == $hot_ino" >"$event/filter"
echo 1 >"$event/enable"
echo 8192 >"$tracing/buffer_size_kb"
hot_freed() { grep -c "em_shrinker_remove_em: ino=$hot_ino " "$tracing/trace"; }

readers=()
for r in 1 2; do
	python3 -S "$testing_dir/hot_file.py" read "$mnt/hot" "$hot_blocks" "$stop" \
		>"$EMFS_SCRATCH/reader$r" 2>&1 &
	readers+=($!)
done
# The readers are at work: the hot inode's lookups count grows.
lookups=$(stat_of "$stats" lookups)
reading() { [ "$(stat_of "$stats" lookups)" -gt $((lookups + 1000)) ]; }
check "the readers look maps up" wait_for 60 reading

# Forced scans, 2048 maps each, until the hot file has lost maps.
echo >"$tracing/trace"
start=$(date +%s)
scan_and_see() {
	echo "0 0 2048" >"$shrinker/scan"
	[ "$(hot_freed)" -gt 0 ]
}
check "forced scans free maps of the hot file within 60 s" wait_for 60 scan_and_see
note "forced scans: $(hot_freed) maps of the hot file freed in $(($(date +%s) - start)) s"

# Real memory pressure: squeeze.py allocates until the kernel has been
# reclaiming for 8 steps of 2 MiB, with a floor that keeps the OOM killer
# away; again until the hot file has lost maps.
echo >"$tracing/trace"
start=$(date +%s)
squeezed() {
	python3 -S "$tools/demo/squeeze.py" 8 >>"$EMFS_SCRATCH/squeeze" 2>&1
	[ "$(hot_freed)" -gt 0 ]
}
check "memory pressure frees maps of the hot file within 120 s" wait_for 120 squeezed
cat "$EMFS_SCRATCH/squeeze"
note "memory pressure: $(hot_freed) maps of the hot file freed in $(($(date +%s) - start)) s"
cat "$stats"

touch "$stop"
for r in 1 2; do
	wait "${readers[$((r - 1))]}"
	rc=$?
	cat "$EMFS_SCRATCH/reader$r"
	check "reader $r read correct data throughout" test "$rc" -eq 0
done
echo 0 >"$event/enable"
echo 0 >"$event/filter"
echo 1408 >"$tracing/buffer_size_kb"

check "consistent" emfs_check
check "umount" umount "$mnt"
check "live objects: none" none_alive
check "rmmod" rmmod emfs
exit $fail
