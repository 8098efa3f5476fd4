#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# FIEMAP and SEEK_DATA/SEEK_HOLE on constructed layouts, against expected
# tables: holes, preallocated extents, adjacent writes that merge,
# fragmented writes, and dirty page cache not yet written back (delalloc).
# Every write is followed by fsync, so the first-fit allocator hands out
# the same blocks on every run; the tables give physical addresses too.

set -u
. "${0%/*}/../lib.sh"

fiemap() { python3 -S "$testing_dir/fiemap.py" "$@"; }
seeks() { local out; out=$(xfs_io -c "seek -a -r 0" "$1") && echo "${out#*$'\n'}"; }

# expect NAME CMD...: the output of CMD must equal the table on stdin.
expect() {
	local what=$1 want got
	shift
	IFS= read -r -d '' want
	want=${want%$'\n'}
	got=$("$@" 2>&1)
	if [ "$got" = "$want" ]; then
		note "ok: $what"
	else
		note "not ok: $what"
		echo "$want" >/tmp/want
		echo "$got" >/tmp/got
		diff -u /tmp/want /tmp/got | sed 's/^/    /'
		fail=1
	fi
}

insmod "$EMFS_KO" || exit 1
mnt=$EMFS_SCRATCH/mnt
check "mount" emfs_mount "$mnt" size=16M
cd "$mnt" || exit 1

# Holes: data at 0 and 64k, a hole between, and one to EOF. Blocks 0-2.
xfs_io -f -c "pwrite -q 0 8k" -c "pwrite -q 64k 4k" -c fsync -c "truncate 128k" holes
expect "holes: fiemap" fiemap holes <<'T'
0 8192 0 -
65536 4096 8192 last
T
expect "holes: seek" seeks holes <<'T'
DATA	0
HOLE	8192
DATA	65536
HOLE	69632
T

# Adjacent writes, each written back on its own: three ordered extents,
# three records, on blocks 3-5, one extent in the cache and in FIEMAP.
merges=$(stat_of "$stats" merges)
xfs_io -f -c "pwrite -q 0 4k" -c fsync -c "pwrite -q 4k 4k" -c fsync \
	-c "pwrite -q 8k 4k" -c fsync adjacent
expect "adjacent writes merge: fiemap" fiemap adjacent <<'T'
0 12288 12288 last
T
check "adjacent writes merge: maps merged" test "$(stat_of "$stats" merges)" -ge $((merges + 2))

# Fragmented: two files written in turns, blocks 6-10.
for off in 0 4k 8k; do
	xfs_io -f -c "pwrite -q $off 4k" -c fsync frag
	[ $off = 8k ] || xfs_io -f -c "pwrite -q $off 4k" -c fsync other
done
expect "fragmented: fiemap" fiemap frag <<'T'
0 4096 24576 -
4096 4096 32768 -
8192 4096 40960 last
T
expect "fragmented: seek" seeks frag <<'T'
DATA	0
HOLE	12288
T
# The same through xfs_io (which asks for FIEMAP_FLAG_SYNC), in 512-byte
# units.
expect "fragmented: xfs_io fiemap" xfs_io -c "fiemap -v" frag <<'T'
frag:
 EXT: FILE-OFFSET      BLOCK-RANGE      TOTAL FLAGS
   0: [0..7]:          48..55               8   0x0
   1: [8..15]:         64..71               8   0x0
   2: [16..23]:        80..87               8   0x1
T

# Preallocated: blocks 11-26 for 64k, then a write in the middle goes to
# block 27 (copy on write) and frees block 15. Prealloc is a hole for
# SEEK_DATA, as on other filesystems, and reads as zeroes.
xfs_io -f -c "falloc 0 64k" -c "pwrite -q 16k 4k" -c fsync prealloc
expect "prealloc: fiemap" fiemap prealloc <<'T'
0 16384 45056 unwritten
16384 4096 110592 -
20480 45056 65536 last,unwritten
T
expect "prealloc: seek" seeks prealloc <<'T'
HOLE	0
DATA	16384
HOLE	20480
T
check "prealloc: reads as zeroes around the data" \
	test "$(od -An -tx1 -v prealloc | tr -s ' \n' '\n\n' | grep -c '^00$')" -eq $((60 * 1024))
check "prealloc: stat size" test "$(stat -c %s prealloc)" -eq 65536

# Dirty page cache not written back yet: delalloc, and data for SEEK_DATA.
# The flusher would write it back after 30 s, which a slow guest can reach
# before the tables are taken: it stays off meanwhile.
writeback_centisecs=$(cat /proc/sys/vm/dirty_writeback_centisecs)
echo 0 >/proc/sys/vm/dirty_writeback_centisecs
xfs_io -f -c "pwrite -q 0 4k" dirty
expect "delalloc: fiemap" fiemap dirty <<'T'
0 4096 0 last,unknown,delalloc
T
expect "delalloc: seek" seeks dirty <<'T'
DATA	0
HOLE	4096
T
# Over a preallocated extent: block 15, then 28-30.
xfs_io -f -c "falloc 0 16k" -c "pwrite -q 4k 4k" dirty_prealloc
expect "delalloc over prealloc: fiemap" fiemap dirty_prealloc <<'T'
0 4096 61440 unwritten
4096 4096 0 unknown,delalloc
8192 8192 118784 last,unwritten
T
expect "delalloc over prealloc: seek" seeks dirty_prealloc <<'T'
HOLE	0
DATA	4096
HOLE	8192
T
# FIEMAP_FLAG_SYNC writes it back first: block 31.
expect "delalloc, synced: fiemap" fiemap -s dirty <<'T'
0 4096 126976 last
T
echo "$writeback_centisecs" >/proc/sys/vm/dirty_writeback_centisecs

# FIEMAP goes through the extent map cache: after the shrinker dropped
# every map, the same table, rebuilt from the records on misses.
sync
shrink_all
misses=$(stat_of "$stats" misses)
expect "after the shrinker: fiemap" fiemap frag <<'T'
0 4096 24576 -
4096 4096 32768 -
8192 4096 40960 last
T
check "after the shrinker: the maps were reloaded" test "$(stat_of "$stats" misses)" -gt "$misses"

# Ranges: the extents overlapping [5000, 5001), the whole extent from its
# start; iomap_fiemap() flags the last extent it reports LAST, also when
# the range ends before the file does, as XFS and ext4 report it. A buffer
# of one: full after the first extent, no LAST.
expect "fiemap of a range" fiemap frag 5000 1 <<'T'
4096 4096 32768 last
T
# Past EOF: nothing, answered in one step (one hole to the end of the
# file space, not one per block, which would take years).
expect "fiemap past EOF" fiemap holes 200000 4096 <<'T'
T
expect "fiemap with room for one extent" fiemap -c 1 frag <<'T'
0 4096 24576 -
T
lseek() {
	python3 -S -c 'import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    print(os.lseek(fd, int(sys.argv[2]), getattr(os, sys.argv[3])))
except OSError as e:
    print(errno.errorcode[e.errno])' "$@"
}
check "SEEK_DATA at EOF: ENXIO" test "$(lseek frag 12288 SEEK_DATA)" = ENXIO
check "SEEK_HOLE at EOF: ENXIO" test "$(lseek frag 12288 SEEK_HOLE)" = ENXIO
check "SEEK_HOLE past EOF: ENXIO" test "$(lseek frag 1000000 SEEK_HOLE)" = ENXIO
check "SEEK_DATA in the last hole: ENXIO" test "$(lseek holes 70000 SEEK_DATA)" = ENXIO
check "SEEK_HOLE in the last hole: itself" test "$(lseek holes 70000 SEEK_HOLE)" = 70000

cd /
check "umount" umount "$mnt"
check "live objects: none" none_alive
check "rmmod" rmmod emfs
exit $fail
