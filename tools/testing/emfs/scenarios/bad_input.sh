#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The bad-input matrix (tools/testing/emfs/bad_input.py): mount options,
# offsets and lengths at and past the maximum file size, fallocate modes,
# FIEMAP flags and ranges, SEEK_DATA/SEEK_HOLE past EOF, long names,
# writes to directories, renames over directories, writes to the read-only
# /proc and debugfs files, and the module's debugfs knobs given garbage.
# Each case expects one exact errno, and a kernel log line where emfs
# explains itself. Then nothing may be left over: the consistency check
# is clean, every live object is gone after umount, kmemleak is clean.

set -u
. "${0%/*}/../lib.sh"

insmod "$EMFS_KO" || exit 1
mnt=$EMFS_SCRATCH/mnt
check "mount" emfs_mount "$mnt" size=64M
python3 -S "$testing_dir/bad_input.py" "$mnt" "$EMFS_SCRATCH" "$id" || fail=1
check "consistency check" emfs_check
check "nothing left in the mount" test -z "$(ls -A "$mnt")"
check "umount" umount "$mnt"
check "live objects: none" none_alive
check "rmmod" rmmod emfs
exit $fail
