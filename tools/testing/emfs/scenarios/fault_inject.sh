#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Allocation failures (failslab and fail_page_alloc, see fault_arm in
# ../lib.sh): only in tasks with make-it-fail set and only with the
# module's code on the stack, so that what fails is what emfs asked for.
#
# 1. The KUnit suites, run again through debugfs with every Nth allocation
#    failing (N = 3, 7, 13, 31). KUnit runs each case in a kthread, so
#    kthreadd is marked and its children inherit the mark. Cases may fail,
#    but only by returning an error (ENOMEM): no case may trip an
#    assertion half way, which would mean a wrong result rather than a
#    refused operation. Afterwards the suites pass again and no object of
#    the module is left alive.
# 2. fsx on emfs while another process, marked, forces write back (fsync),
#    reads, FIEMAP, shrinker scans and drop_caches with 10% of the module's
#    allocations failing; kworkers forked meanwhile (write back, endio) are
#    marked too. fsx itself is not marked: it must see no error and no
#    wrong byte. Then the consistency check must be clean.
#
# emfs-scenario: kunit (the suites run at insmod, and are registered)

set -u
. "$(dirname "$0")/../lib.sh"

ops=${EMFS_FAULT_FSX_OPS:-1500}
echo clear >/sys/kernel/debug/kmemleak
insmod "$EMFS_KO" || exit 1
kunit=/sys/kernel/debug/kunit
suites=$(cd "$kunit" && ls -d emfs_*)

# results_of PATTERN: lines of every suite's last results matching PATTERN.
results_of() {
	local s
	for s in $suites; do grep -h -- "$1" "$kunit/$s/results"; done
}

total_injected=0
for interval in 3 7 13 31; do
	echo 1 >/proc/2/make-it-fail
	fault_arm 100 || fail=1
	for a in $fault_attrs; do echo "$interval" >"/sys/kernel/debug/$a/interval"; done
	for s in $suites; do echo run >"$kunit/$s/run"; done
	fault_disarm
	echo 0 >/proc/2/make-it-fail
	total_injected=$((total_injected + injected))
	finished=0
	for s in $suites; do
		grep -q "# $s: pass:" "$kunit/$s/results" && finished=$((finished + 1))
	done
	passed=$(results_of '^    ok ' | wc -l)
	failed=$(results_of '^    not ok ' | wc -l)
	midway=$(results_of 'Expected ' | grep -vc 'is_test_result_ok(')
	note "1 in $interval allocations failing: $injected injected, $passed cases passed, $failed returned an error"
	check "KUnit, 1 in $interval allocations failing: failures were injected" test "$injected" -gt 0
	check "KUnit, 1 in $interval allocations failing: every suite finished" test "$finished" -eq "$(echo "$suites" | wc -w)"
	check "KUnit, 1 in $interval allocations failing: no assertion failed half way" test "$midway" -eq 0
	[ "$midway" -eq 0 ] || results_of 'Expected ' | grep -v 'is_test_result_ok('
done
check "KUnit: no object left alive" none_alive
for s in $suites; do echo run >"$kunit/$s/run"; done
check "KUnit: every case passes again without injection" test "$(results_of '^    not ok ' | wc -l)" -eq 0
note "KUnit: $(results_of '^    ok ' | wc -l) cases passed after the injected runs"

mnt=$EMFS_SCRATCH/mnt
check "mount" emfs_mount "$mnt" size=256M
work=/tmp/fsx
mkdir -p "$work"
echo 1 >/proc/2/make-it-fail
fault_arm 10 || fail=1
(
	echo 1 >/proc/self/make-it-fail
	for ((i = 0; ; i++)); do
		for f in "$mnt"/f.*; do
			xfs_io -r -c fsync -c "fiemap" "$f"
			cat "$f"
		done
		echo "0 0 100000" >"$shrinker/scan"
		((i % 5)) || echo 3 >/proc/sys/vm/drop_caches
		sleep 0.05
	done
) >/dev/null 2>&1 &
squeezer=$!
pids=()
for seed in 11 12 13 14; do
	fsx -f "$testing_dir/fsx/emfs.toml" -N "$ops" -S "$seed" -P "$work" "$mnt/f.$seed" \
		>"$work/f.$seed.out" 2>&1 &
	pids+=($!)
done
i=0
for seed in 11 12 13 14; do
	if wait "${pids[$i]}" && grep -q "All operations completed A-OK" "$work/f.$seed.out"; then
		note "ok: fsx seed $seed under fault injection: $ops operations"
	else
		note "not ok: fsx seed $seed under fault injection"
		tail -40 "$work/f.$seed.out"
		fail=1
	fi
	i=$((i + 1))
done
kill "$squeezer"
wait "$squeezer" 2>/dev/null
fault_disarm
echo 0 >/proc/2/make-it-fail
total_injected=$((total_injected + injected))
check "fsx: failures were injected" test "$injected" -gt 0
cat "$stats"
check "consistency check after fsx" emfs_check
check "umount" umount "$mnt"
check "live objects: none" none_alive
note "fault injection: $total_injected allocation failures injected in all"
check "rmmod" rmmod emfs
kmemleak_check
exit $fail
