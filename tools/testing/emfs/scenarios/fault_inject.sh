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
#    but only by returning the error an allocation gave them (ENOMEM): no
#    case may trip an assertion half way, nor fail one of its checks
#    (kunit_ensure!, which logs "<file>:<line>: expected ..."), either of
#    which would mean a wrong result rather than a refused operation. A
#    case whose operation degrades under memory pressure by design checks
#    the degraded result. Afterwards the suites pass again and no object
#    of the module is left alive.
# 2. fsx on emfs while another process, marked, forces write back (fsync),
#    reads, FIEMAP, shrinker scans and drop_caches with 10% of the module's
#    allocations failing; kworkers forked meanwhile (write back, endio) are
#    marked too. fsx itself is not marked: it must see no error and no
#    wrong byte. Then the consistency check must be clean.
#
# emfs-scenario: kunit (the suites run at insmod, and are registered)

set -u
. "${0%/*}/../lib.sh"

ops=${EMFS_FAULT_FSX_OPS:-1500}
insmod "$EMFS_KO" || exit 1
kunit=/sys/kernel/debug/kunit
suites=$(cd "$kunit" && ls -d emfs_*)

# tally: count, in every suite's last results, the cases passed and
# failed, the suites finished, and the assertions that failed half way
# ("Expected ..." other than the case's own result check), kept in
# $halfway. Counted in the shell: a program started per suite costs a
# fraction of a second each under TCG.
tally() {
	local s line
	passed=0 failed=0 finished=0 midway=0 halfway=""
	for s in $suites; do
		while IFS= read -r line; do
			case "$line" in
			"    ok "*) passed=$((passed + 1)) ;;
			"    not ok "*) failed=$((failed + 1)) ;;
			# The suite's own result line: KUnit prints its
			# "# suite: pass:" totals only for suites of two
			# cases or more.
			"ok "*" $s" | "not ok "*" $s") finished=$((finished + 1)) ;;
			*"Expected "*)
				[[ $line == *"is_test_result_ok("* ]] && continue
				midway=$((midway + 1))
				halfway+="$line"$'\n' ;;
			esac
		done <"$kunit/$s/results"
	done
}
nsuites=$(echo $suites | wc -w)

# failed_checks: the checks of the cases that failed since the kernel
# log line $1, one per line.
failed_checks() {
	dmesg | sed -n "/$1/,\$p" | grep -E 'emfs: [^ ]+\.rs:[0-9]+: expected '
}

total_injected=0
for interval in 3 7 13 31; do
	echo 1 >/proc/2/make-it-fail
	fault_arm 100 || fail=1
	for a in $fault_attrs; do echo "$interval" >"/sys/kernel/debug/$a/interval"; done
	mark="fault_inject: KUnit, 1 in $interval allocations failing"
	echo "$mark" >/dev/kmsg
	for s in $suites; do echo run >"$kunit/$s/run"; done
	fault_disarm
	echo 0 >/proc/2/make-it-fail
	wrong=$(failed_checks "$mark")
	total_injected=$((total_injected + injected))
	tally
	note "1 in $interval allocations failing: $injected injected, $passed cases passed, $failed returned an error"
	check "KUnit, 1 in $interval allocations failing: failures were injected" test "$injected" -gt 0
	check "KUnit, 1 in $interval allocations failing: every suite finished" test "$finished" -eq "$nsuites"
	check "KUnit, 1 in $interval allocations failing: no assertion failed half way" test "$midway" -eq 0
	[ "$midway" -eq 0 ] || printf '%s' "$halfway"
	check "KUnit, 1 in $interval allocations failing: no check failed" test -z "$wrong"
	[ -z "$wrong" ] || printf '%s\n' "$wrong"
done
check "KUnit: no object left alive" none_alive
for s in $suites; do echo run >"$kunit/$s/run"; done
tally
check "KUnit: every case passes again without injection" test "$failed" -eq 0
note "KUnit: $passed cases passed after the injected runs"

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
# However fast fsx was, the marked process keeps going until failures
# were injected under it.
some_injected() {
	local a
	for a in $fault_attrs; do
		[ "$(cat "/sys/kernel/debug/$a/times")" -lt "$fault_times" ] && return 0
	done
	return 1
}
wait_for 300 some_injected
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
exit $fail
