#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The extent map benchmark's debugfs file: a small run produces one row per
# size with sane figures, and bad input is refused with EINVAL.

set -eu
insmod "$EMFS_KO"
bench=/sys/kernel/debug/emfs/bench
fail=0

grep -q "no results yet" "$bench" || { echo "not ok: fresh file"; fail=1; }

echo "1000 2000" >"$bench"
cat "$bench"
rows=$(awk 'NR > 1 && NF == 15' "$bench")
if [ "$(echo "$rows" | wc -l)" -ne 2 ]; then
	echo "not ok: expected 2 rows"
	fail=1
fi
# Every time and size is positive; the merged insert left one map (checked
# in the kernel, which fails the write otherwise).
echo "$rows" | awk '{ for (i = 1; i <= 15; i++) if ($i + 0 <= 0) { print "not ok: field " i " of row " NR " is " $i; bad = 1 } } END { exit bad }' || fail=1

for bad in "0" "abc" "1 2 3 4 5 6 7 8 9" "99999999999" ""; do
	if echo "$bad" >"$bench" 2>/dev/null; then
		echo "not ok: '$bad' accepted"
		fail=1
	else
		echo "ok: '$bad' refused"
	fi
done
dmesg | grep -q "bench: 0 maps is out of range" || { echo "not ok: no dmesg line for 0"; fail=1; }

# The shrinker benchmark: one row per size, every figure positive.
shr=/sys/kernel/debug/emfs/bench_shrinker
grep -q "no results yet" "$shr" || { echo "not ok: fresh shrinker file"; fail=1; }
echo "640 2000" >"$shr"
cat "$shr"
rows=$(awk 'NR > 1 && NF == 10' "$shr")
if [ "$(echo "$rows" | wc -l)" -ne 2 ]; then
	echo "not ok: expected 2 shrinker rows"
	fail=1
fi
echo "$rows" | awk '{ for (i = 1; i <= 10; i++) if ($i + 0 <= 0) { print "not ok: field " i " of row " NR " is " $i; bad = 1 } } END { exit bad }' || fail=1
for bad in "10" "x" "99999999999"; do
	if echo "$bad" >"$shr" 2>/dev/null; then
		echo "not ok: '$bad' accepted by bench_shrinker"
		fail=1
	fi
done

# The filesystem benchmark, small: its fio jobs on emfs and tmpfs, the
# O_DIRECT rows, one cold-cache row, every figure positive.
emfs_bench_fs_mb=4 emfs_bench_fs_reps=1 emfs_bench_fs_cold=seqread emfs_bench_fs_settle=0 \
	emfs_bench_fs_direct_secs=1 \
	"$(dirname "$0")/../../../bench/fs.sh" >/tmp/fs.out 2>&1 || fail=1
cat /tmp/fs.out
for job in "4k random read" "sequential read" "sequential write" "seq. write + fsync" \
	"O_DIRECT read" "O_DIRECT write"; do
	if grep -q "^$job " /tmp/fs.out && grep "^$job " /tmp/fs.out | awk '{ for (i = NF - 2; i <= NF; i++) if ($i + 0 <= 0) exit 1 }'; then
		echo "ok: fs benchmark row '$job'"
	else
		echo "not ok: fs benchmark row '$job'"
		fail=1
	fi
done

# The cold rows: the shrunk run reloaded maps, the warm one did not.
for job in "seqread (128k)"; do
	row=$(grep "^$job " /tmp/fs.out || true)
	set -- ${row#"$job"}
	if [ $# -eq 5 ] && [ "${2:-}" -eq 0 ] && [ "${4:-0}" -gt 0 ]; then
		echo "ok: fs benchmark cold row '$job'"
	else
		echo "not ok: fs benchmark cold row '$job': $row"
		fail=1
	fi
done

rmmod emfs
exit $fail
