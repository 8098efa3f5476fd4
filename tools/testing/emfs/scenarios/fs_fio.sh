#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# fio with verify on a 64 MiB file: random 16k writes, each block with a
# crc32c header, verified as fio goes; then the page cache and every
# extent map are dropped and a verify-only pass reads it all back through
# maps reloaded from the records. Then O_DIRECT random 4k writes to a
# second file, verified with O_DIRECT reads, and verified again through
# the page cache.

set -u
. "${0%/*}/../lib.sh"

size=${EMFS_FIO_SIZE:-64M}
insmod "$EMFS_KO" || exit 1
mnt=$EMFS_SCRATCH/mnt
check "mount" emfs_mount "$mnt" size=512M
job=(--name=verify --filename="$mnt/verify" --size="$size" --bs=16k
	--rw=randwrite --ioengine=psync --verify=crc32c --verify_fatal=1
	--randrepeat=1 --randseed=1)

start=$(date +%s)
if fio "${job[@]}" --do_verify=1 >/tmp/fio.out 2>&1; then
	note "ok: fio randwrite $size, verified"
else
	note "not ok: fio randwrite $size"
	tail -30 /tmp/fio.out
	fail=1
fi
grep -E "WRITE:|READ:" /tmp/fio.out
note "write and verify: $(($(date +%s) - start)) s"

start=$(date +%s)
sync
note "sync: $(($(date +%s) - start)) s"
echo 1 >/proc/sys/vm/drop_caches
shrink_all
note "drop and shrink: $(($(date +%s) - start)) s"
check "no maps cached" test "$(stat_of "$stats" maps_cached)" -eq 0
misses=$(stat_of "$stats" misses)
start=$(date +%s)
if fio "${job[@]}" --verify_only >/tmp/fio.out 2>&1; then
	note "ok: fio verify-only after the drop, $(($(date +%s) - start)) s"
else
	note "not ok: fio verify-only after the drop"
	tail -30 /tmp/fio.out
	fail=1
fi
check "maps reloaded" test "$(stat_of "$stats" misses)" -gt "$misses"
cat "$stats"

# O_DIRECT: every request looks up the extent maps; writes are copy on
# write, completed before they return.
direct=(--name=direct --filename="$mnt/direct" --size="${EMFS_FIO_DIRECT_SIZE:-16M}" --bs=4k
	--rw=randwrite --ioengine=psync --verify=crc32c --verify_fatal=1
	--randrepeat=1 --randseed=2)
start=$(date +%s)
if fio "${direct[@]}" --direct=1 --do_verify=1 >/tmp/fio.out 2>&1; then
	note "ok: fio O_DIRECT randwrite, verified with O_DIRECT reads, $(($(date +%s) - start)) s"
else
	note "not ok: fio O_DIRECT randwrite"
	tail -30 /tmp/fio.out
	fail=1
fi
if fio "${direct[@]}" --direct=0 --verify_only >/tmp/fio.out 2>&1; then
	note "ok: buffered reads verify what O_DIRECT wrote"
else
	note "not ok: buffered reads of what O_DIRECT wrote"
	tail -30 /tmp/fio.out
	fail=1
fi
check "consistency check after O_DIRECT" emfs_check

start=$(date +%s)
check "umount" umount "$mnt"
note "umount: $(($(date +%s) - start)) s"
check "live objects: none" none_alive
check "rmmod" rmmod emfs
exit $fail
