#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest side of 'make bench': run the extent map and shrinker benchmarks for
# the sizes in $emfs_bench_sizes (comma separated, from the kernel command
# line) and print their tables. The figures of one run are measured side by
# side; only their ratios mean something under emulation. The guest boots
# with kmemleak off: tracking every allocation would dominate the figures.

set -eu
sizes=${emfs_bench_sizes:-1000,100000,1000000}
insmod "$EMFS_KO"
dir=/sys/kernel/debug/emfs
onoff() { [ -e "$1" ] && echo on || echo off; }
# The flavour comes from make's KERNEL=; the options are read from the
# running kernel.
echo "kernel: the ${emfs_kernel:-?} flavour ($(uname -r)): lockdep $(onoff /proc/lockdep), kmemleak $(onoff /sys/kernel/debug/kmemleak)"
out=${EMFS_OUT:-/tmp}
echo "== extent map benchmark, sizes: ${sizes//,/ }"
echo "times in ns per operation; ratio = emfs / C floor"
echo "${sizes//,/ }" >"$dir/bench"
tee "$out/bench-extent-map.txt" <"$dir/bench"
echo
echo "== shrinker benchmark"
echo "scan/count in ns per call; p99 lookup latency in ns, idle and while the worker runs"
echo "${sizes//,/ }" >"$dir/bench_shrinker"
tee "$out/bench-shrinker.txt" <"$dir/bench_shrinker"
echo
"$(dirname "$0")/fs.sh"
rmmod emfs
