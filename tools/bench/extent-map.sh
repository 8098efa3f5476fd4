#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest side of 'make bench': run the extent map benchmark for the sizes in
# $emfs_bench_sizes (comma separated, from the kernel command line) and
# print its table. The figures of one run are measured side by side; only
# their ratios mean something under emulation.

set -eu
sizes=${emfs_bench_sizes:-1000,100000,1000000}
insmod "$EMFS_KO"
bench=/sys/kernel/debug/emfs/bench
echo "emfs extent map benchmark, sizes: ${sizes//,/ }"
echo "times in ns per operation; ratio = emfs / C floor"
echo "${sizes//,/ }" >"$bench"
cat "$bench" | tee "${EMFS_OUT:-/tmp}/bench-extent-map.txt"
rmmod emfs
