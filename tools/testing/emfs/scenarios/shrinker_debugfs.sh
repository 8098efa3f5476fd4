#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The extent map shrinker at work, seen from userspace: fill the cache of a
# synthetic owner, make its shrinker scan through the kernel's shrinker
# debugfs, and watch maps_cached fall, shrinker_freed rise, and the emfs
# trace events fire. Then bad input, teardown, and rmmod with the worker
# still queued.

set -eu
fail=0
note() { echo "$*"; }
check() {
	local what=$1
	shift
	if "$@"; then note "ok: $what"; else note "not ok: $what"; fail=1; fi
}
stat_of() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }

insmod "$EMFS_KO"
syn=/sys/kernel/debug/emfs/synthetic
tracing=/sys/kernel/tracing

check "no synthetic owner at first" grep -qx none "$syn"
echo "20 500" >"$syn"
cat "$syn"
id=$(awk '{ print $2 }' "$syn")
stats=/proc/fs/emfs/$id/stats
cat "$stats"
check "10000 maps cached" test "$(stat_of "$stats" maps_cached)" -eq 10000
check "all of them evictable" test "$(stat_of "$stats" maps_evictable)" -eq 10000

shrinker=$(ls -d /sys/kernel/debug/shrinker/emfs-extent-map:"$id"-* 2>/dev/null | head -1)
check "shrinker in debugfs" test -n "$shrinker"
note "shrinker: $shrinker, count: $(cat "$shrinker/count")"
check "shrinker count is exact" test "$(awk '{ print $2 }' "$shrinker/count")" -eq 10000

for ev in em_shrinker_scan_enter em_shrinker_scan_exit em_shrinker_remove_em; do
	echo 1 >"$tracing/events/emfs/$ev/enable"
done
echo >"$tracing/trace"

echo "0 0 500" >"$shrinker/scan"
# The worker's last act is its scan_exit event: wait for that, not for
# the run count, which it raises first.
for _ in $(seq 3000); do
	grep -q em_shrinker_scan_exit "$tracing/trace" && break
	sleep 0.1
done
cat "$stats"
check "maps_cached fell by 500" test "$(stat_of "$stats" maps_cached)" -eq 9500
check "shrinker_freed is 500" test "$(stat_of "$stats" shrinker_freed)" -eq 500
check "one run" test "$(stat_of "$stats" shrinker_runs)" -eq 1

trace=$(cat "$tracing/trace")
grep -m2 em_shrinker_remove_em <<<"$trace" || true
check "scan_enter traced" grep -q "em_shrinker_scan_enter: owner=$id nr_to_scan=500 evictable=10000" <<<"$trace"
check "scan_exit traced" grep -q "em_shrinker_scan_exit: owner=$id dropped=500 evictable=9500" <<<"$trace"
check "500 remove_em traced" test "$(grep -c em_shrinker_remove_em <<<"$trace")" -eq 500
echo 0 >"$tracing/events/emfs/enable"

# Bad input: refused with EINVAL and a line in dmesg.
for bad in "abc" "1" "1 2 3" "2000000 1" "100000 1000"; do
	if echo "$bad" >"$syn" 2>/dev/null; then
		note "not ok: '$bad' accepted"; fail=1
	else
		note "ok: '$bad' refused"
	fi
done
check "dmesg explains" sh -c "dmesg | grep -q \"synthetic: expected\""
check "stats file is read-only" sh -c "! echo 1 > $stats 2>/dev/null"
check "owner survived bad input" test "$(stat_of "$stats" maps_cached)" -eq 9500

# Removing the owner removes its files and its shrinker.
echo "0 0" >"$syn"
check "proc entry gone" test ! -e "/proc/fs/emfs/$id"
check "shrinker gone" test ! -e "$shrinker"

# rmmod with the worker queued or running.
echo "16 4000" >"$syn"
id=$(awk '{ print $2 }' "$syn")
shrinker=$(ls -d /sys/kernel/debug/shrinker/emfs-extent-map:"$id"-* | head -1)
echo "0 0 60000" >"$shrinker/scan"
rmmod emfs
check "module gone" test ! -d /sys/module/emfs
check "proc root gone" test ! -e /proc/fs/emfs
exit $fail
