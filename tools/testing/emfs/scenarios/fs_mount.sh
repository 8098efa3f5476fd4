#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Mounting emfs: options shown in /proc/mounts, statfs from the size, the
# owner's /proc directory and shrinker while mounted, rmmod refused while
# mounted, bad mount options refused with EINVAL and a dmesg line naming
# them, and nothing left after umount and rmmod.

set -u
fail=0
check() {
	local what=$1
	shift
	if "$@"; then echo "ok: $what"; else echo "not ok: $what"; fail=1; fi
}

insmod "$EMFS_KO" || exit 1
mnt=$EMFS_SCRATCH/mnt
mkdir -p "$mnt"

check "mount -o size=64M" mount -t emfs -o size=64M none "$mnt"
grep " $mnt " /proc/mounts
check "options in /proc/mounts" grep -q " $mnt emfs rw,relatime,size=64M " /proc/mounts
check "statfs: 16384 blocks of 4096" test "$(stat -f -c '%S %b %f' "$mnt")" = "4096 16384 16384"
check "statfs: magic" test "$(stat -f -c '%t' "$mnt")" = "656d6673"
id=$(dmesg | sed -n 's/.*emfs: mounted: owner \([0-9]*\),.*/\1/p' | tail -1)
check "owner stats in /proc" test -r "/proc/fs/emfs/$id/stats"
check "shrinker registered" sh -c "ls -d /sys/kernel/debug/shrinker/emfs-extent-map:$id-* >/dev/null"
check "root is an empty directory" test -z "$(ls -A "$mnt")"
check "rmmod refused while mounted" sh -c '! rmmod emfs 2>/dev/null'

# The namespace: directories and (for now empty) files.
check "mkdir" mkdir -p "$mnt/a/b"
check "create files" touch "$mnt/a/f1" "$mnt/a/b/f2" "$mnt/f3"
check "ls" test "$(cd "$mnt" && find . | sort | tr '\n' ' ')" = ". ./a ./a/b ./a/b/f2 ./a/f1 ./f3 "
check "regular file" test -f "$mnt/a/f1"
check "directory link count" test "$(stat -c %h "$mnt/a")" -eq 3
check "rename" mv "$mnt/a/f1" "$mnt/a/b/g1"
check "renamed" test -f "$mnt/a/b/g1" -a ! -e "$mnt/a/f1"
check "rmdir non-empty refused" sh -c "! rmdir $mnt/a/b 2>/dev/null"
check "unlink" rm "$mnt/a/b/g1"
check "chmod" chmod 600 "$mnt/f3"
check "mode" test "$(stat -c %a "$mnt/f3")" = 600
for i in $(seq 100); do : >"$mnt/a/many$i"; done
check "100 files" test "$(ls "$mnt/a" | wc -l)" -eq 101
# Every regular file has an extent map tree registered with the owner,
# until it is evicted (g1 was unlinked).
check "102 file inodes registered" test "$(awk '$1 == "inodes" { print $2 }' "/proc/fs/emfs/$id/stats")" -eq 102

mnt2=$EMFS_SCRATCH/mnt2
mkdir -p "$mnt2"
check "a second mount, default size" mount -t emfs none "$mnt2"
check "default size 64M" grep -q " $mnt2 emfs rw,relatime,size=64M " /proc/mounts
check "umount second" umount "$mnt2"

# Unmounting with files and directories in place frees them all.
check "umount" umount "$mnt"
check "owner gone" test ! -e "/proc/fs/emfs/$id"

# bad OPTS MSG: the mount is refused, and the kernel's messages since the
# last call say MSG (read and cleared with one dmesg -c, matched here).
dmesg -c >/dev/null
bad() {
	local opts=$1 msg=$2 line said=""
	if mount -t emfs -o "$opts" none "$mnt" 2>/dev/null; then
		echo "not ok: -o $opts accepted"
		umount "$mnt"
		fail=1
		return
	fi
	while IFS= read -r line; do
		[[ $line == *"$msg"* ]] && said=${line#\[*\] }
	done <<<"$(dmesg -c)"
	if [ -n "$said" ]; then
		echo "ok: -o $opts refused: $said"
	else
		echo "not ok: -o $opts refused without the dmesg line '$msg'"
		fail=1
	fi
}
bad "bogus" "Unknown parameter 'bogus'"
bad "bogus=1" "Unknown parameter 'bogus'"
bad "size=abc" "bad value 'abc' for mount option 'size'"
bad "size=4k" "out of range"
bad "size=1T" "out of range"
bad "size=1025k" "not a multiple of 4096"
bad "size=1M,size=2M" "given more than once"
bad "size" "Bad value for 'size'"
check "no mount left" sh -c "! grep -q ' emfs ' /proc/mounts"

check "rmmod" rmmod emfs
exit $fail
