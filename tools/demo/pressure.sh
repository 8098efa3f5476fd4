#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# pressure.sh MNT [ROUNDS] - the run emfs-trace records in 'make run' (and
# in the tools scenario): fill the extent map cache, squeeze memory until
# the kernel calls the shrinkers, and read again.
#
#   1. 4 fio jobs write 2 MiB each on emfs at MNT in random 4 KiB pieces,
#      each written back at once (fsync), so that the jobs' blocks
#      interleave on disk and every piece is an extent map of its own;
#   2. a synthetic owner adds 32 inodes of 2000 maps (debugfs synthetic):
#      the cache a large file system would hold;
#   3. the page cache is dropped and the files read back: every lookup
#      hits;
#   4. a ballast file (160 MiB) is written and read, as clean page cache;
#   5. ROUNDS (default 3) rounds of squeeze.py, each after reading the
#      ballast again: anonymous memory until the kernel has reclaimed for
#      a while; kswapd and direct reclaim call the shrinkers, whose
#      workers evict maps;
#   6. the page cache is dropped and the files read again: the evicted
#      maps are loaded back on misses.
#
# The synthetic owner is left for the caller to remove ("0 0" into
# /sys/kernel/debug/emfs/synthetic) once the recording has stopped.
#
# A smaller run (the tools scenario) sets PRESSURE_SYNTHETIC ("inodes
# maps", default "32 2000"), PRESSURE_BALLAST_MB (default 160),
# PRESSURE_FILL_KB (what each fio job writes, default 2048) and
# PRESSURE_PAUSE (seconds between phases, default 1).

set -eu
mnt=$1
rounds=${2:-3}
synthetic=${PRESSURE_SYNTHETIC:-32 2000}
ballast=${PRESSURE_BALLAST_MB:-160}
pause=${PRESSURE_PAUSE:-1}
fill=${PRESSURE_FILL_KB:-2048}
here=$(dirname "$0")
# Each phase is named in the trace, for emfs-trace plot to draw.
mark() { echo "$1" >/sys/kernel/tracing/trace_marker; echo "$1: $2"; }

mark "write" "fio, 4 jobs x $fill KiB of random 4 KiB writes, fsync after each"
fio --name=fill --directory="$mnt" --rw=randwrite --bs=4k --size="${fill}k" --numjobs=4 \
	--fsync=1 --ioengine=psync --randrepeat=1 --minimal >/dev/null
mark "synthetic owner" "${synthetic% *} inodes x ${synthetic#* } maps"
echo "$synthetic" >/sys/kernel/debug/emfs/synthetic
sleep "$pause"
echo 1 >/proc/sys/vm/drop_caches
mark "read" "the files, through the cache"
echo "  $(cat "$mnt"/fill.* | wc -c) bytes"
sleep "$pause"
mark "ballast" "$ballast MiB of clean page cache for reclaim to take"
dd if=/dev/zero of="$mnt/ballast" bs=1M count="$ballast" conv=fsync status=none
for ((r = 1; r <= rounds; r++)); do
	cat "$mnt/ballast" >/dev/null
	mark "squeeze $r" "memory pressure, round $r of $rounds"
	python3 -S "$here/squeeze.py"
done
sleep "$pause"
echo 1 >/proc/sys/vm/drop_caches
mark "read again" "evicted maps are loaded back on misses"
echo "  $(cat "$mnt"/fill.* | wc -c) bytes"
sleep "$pause"
