#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The data path end to end: write, sync, drop the page cache and every
# extent map, read back with equal checksums while the misses counter
# shows the maps were reloaded from the records. Then the errors: a full
# disk gives ENOSPC and stays consistent and usable once files are
# deleted; unsupported fallocate modes give EOPNOTSUPP; rmmod while
# mounted gives EBUSY; umount frees everything.

set -u
. "${0%/*}/../lib.sh"

insmod "$EMFS_KO" || exit 1
mnt=$EMFS_SCRATCH/mnt
check "mount" emfs_mount "$mnt" size=64M
cd "$mnt" || exit 1

# A sequential file, and a fragmented one written back to front in 4k
# pieces with fsyncs between, so that it has many extents.
dd if=/dev/urandom of=seq bs=1M count=8 status=none
head -c 1M /dev/urandom >/tmp/frag.src
cmds=()
for ((i = 255; i >= 0; i -= 2)); do
	cmds+=(-c "pwrite -q -i /tmp/frag.src -s $((i * 4096)) $((i * 4096)) 4k" -c fsync)
done
for ((i = 254; i >= 0; i -= 2)); do
	cmds+=(-c "pwrite -q -i /tmp/frag.src -s $((i * 4096)) $((i * 4096)) 4k")
done
xfs_io -f "${cmds[@]}" frag
check "fragmented file has many extents" test "$(python3 -S "$testing_dir/fiemap.py" -s frag | wc -l)" -ge 100
sums=$(sha256sum seq frag)
check "frag equals its source" test "$(sha256sum <frag)" = "$(sha256sum </tmp/frag.src)"
sync
cat "$stats"

# Drop the page cache and every map, read back.
echo 1 >/proc/sys/vm/drop_caches
shrink_all
check "no maps cached" test "$(stat_of "$stats" maps_cached)" -eq 0
misses=$(stat_of "$stats" misses)
check "checksums after drop" test "$(sha256sum seq frag)" = "$sums"
cat "$stats"
check "misses rose: maps reloaded" test "$(stat_of "$stats" misses)" -ge $((misses + 100))
check "maps cached again" test "$(stat_of "$stats" maps_cached)" -gt 0

# statfs reports real usage: 8M + 1M written, in 4k blocks.
used=$(($(stat -f -c '%b - %f' .)))
check "statfs: 2304 blocks used" test "$used" -eq 2304

# Overwrite in place is copy on write: the old blocks come back.
dd if=/dev/urandom of=seq bs=1M count=8 conv=notrunc,fsync status=none
check "statfs after overwrite: still 2304 used" test "$(($(stat -f -c '%b - %f' .)))" -eq 2304

# Space is reserved when page cache is dirtied; dropping the dirty page
# cache (truncate, punch) gives it back before anything is written.
free=$(stat -f -c %a .)
dd if=/dev/zero of=dirty bs=1M count=1 status=none
check "dirty page cache holds its space" test "$(stat -f -c %a .)" -eq $((free - 256))
check "truncate of dirty page cache gives the space back" \
	sh -c "truncate -s 4k dirty && test \$(stat -f -c %a .) -eq $((free - 1))"
check "punch of dirty page cache gives the space back" \
	sh -c "xfs_io -c 'pwrite -q 0 64k' -c 'fpunch 0 64k' dirty && test \$(stat -f -c %a .) -eq $free"
rm dirty

# Large folios: the page cache of a 1 MiB write is made of folios larger
# than a page (the filemap tracepoint gives their order).
t=/sys/kernel/tracing
echo 0 >$t/tracing_on
echo >$t/trace
echo 1 >$t/events/filemap/mm_filemap_add_to_page_cache/enable
echo 1 >$t/tracing_on
xfs_io -f -c "pwrite -q -b 1m 0 1m" -c fsync large
echo 0 >$t/tracing_on
echo 0 >$t/events/filemap/mm_filemap_add_to_page_cache/enable
check "large folios in the page cache" grep -q "order=[1-9]" $t/trace
note "page cache folios added: $(grep -o "order=[0-9]*" $t/trace | sort | uniq -c | tr -s ' \n' ' ')"
echo >$t/trace
# A write fault dirties a whole folio but reserves only up to EOF; growing
# the file must not bring blocks dirty without a reservation inside it.
check "mmap write at EOF of a large folio, then truncate up" \
	xfs_io -c "truncate 10k" -c "mmap -w 0 10k" -c "mwrite 8k 1k" -c munmap \
	-c "truncate 1m" -c fsync large
check "nothing written back without a reservation" \
	sh -c '! dmesg | grep -q "hold no reservation"'
check "consistency check after the file grew" emfs_check
check "the grown range reads as zeroes" cmp -i 10240 -n 1038336 large /dev/zero
rm large

# A full disk: ENOSPC at write time, nothing lost, usable after rm.
if dd if=/dev/zero of=big bs=1M count=100 status=none 2>/tmp/dd.err; then
	note "not ok: writing 100M to a 64M disk succeeded"
	fail=1
fi
check "ENOSPC" grep -q "No space left on device" /tmp/dd.err
check "statfs: no block free" test "$(stat -f -c %a .)" -eq 0
check "sync after ENOSPC" sync
# A write fault needs space too: SIGBUS on a full disk, not a dirty folio
# without a block to go to.
truncate -s 64k sparse
check "mmap write on a full disk: SIGBUS" \
	sh -c '! xfs_io -c "mmap -w 0 64k" -c "mwrite 0 4k" sparse 2>/dev/null'
check "consistency check on a full disk" emfs_check
check "frag intact on a full disk" test "$(sha256sum <frag)" = "$(sha256sum </tmp/frag.src)"
check "fsync on a full disk" xfs_io -c fsync big
check "rm" rm big seq sparse
check "space back" test "$(($(stat -f -c '%b - %f' .)))" -eq 256
check "write after rm" dd if=/dev/zero of=again bs=1M count=16 conv=fsync status=none
echo 1 >/proc/sys/vm/drop_caches
check "frag intact after all" test "$(sha256sum <frag)" = "$(sha256sum </tmp/frag.src)"

# fallocate: mode 0 and KEEP_SIZE and PUNCH_HOLE work; the others are
# EOPNOTSUPP.
for mode in "fzero 0 4k" "fcollapse 0 4k" "finsert 0 4k" "funshare 0 4k"; do
	out=$(xfs_io -c "$mode" frag 2>&1)
	check "fallocate ${mode%% *}: EOPNOTSUPP" grep -q "Operation not supported" <<<"$out"
done
check "falloc 1M" xfs_io -f -c "falloc 0 1m" pre
check "prealloc reads as zeroes" cmp -n 1048576 pre /dev/zero
check "falloc -k keeps the size" sh -c "xfs_io -c 'falloc -k 1m 1m' pre && test \$(stat -c %s pre) -eq 1048576"
check "fpunch" xfs_io -c "fpunch 1000 10000" frag
check "punched range reads as zeroes" cmp -n 10000 -i 1000:0 frag /dev/zero
check "around the hole intact" cmp -n 1000 frag /tmp/frag.src
check "after the hole intact" cmp -i 11000 frag /tmp/frag.src

check "rmmod refused while mounted" sh -c '! rmmod emfs 2>/dev/null'
cd /
check "umount" umount "$mnt"
check "live objects: none" none_alive
check "rmmod" rmmod emfs
exit $fail
