#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# fio with verify on a 64 MiB file: random 16k writes, each block with a
# crc32c header, verified as fio goes; then the page cache and every
# extent map are dropped and a verify-only pass reads it all back through
# maps reloaded from the records.

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

start=$(date +%s)
check "umount" umount "$mnt"
note "umount: $(($(date +%s) - start)) s"
check "live objects: none" none_alive
check "rmmod" rmmod emfs
exit $fail
