#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Forward progress near OOM: fill the extent map cache until its slab
# memory is a fifth of what the guest has available (about 85 MiB in
# its 640 MiB guest: a synthetic owner, sized from a trial fill, since
# what a map costs depends on the kernel's debugging options, about 340
# bytes with kmemleak's records and 100 without), then a process
# allocates anonymous memory until only what the cache holds would be
# left: MemAvailable, plus the watermark gap reclaim may use, plus a
# third of the cache's slab memory. The guest has no swap, so that
# memory can only come from the shrinker.
#
# A third, not a half: MemAvailable is an estimate (it counts page cache
# the running programs still use), and the page allocator, deciding
# whether to retry or call the OOM killer, counts only free and LRU pages,
# never slab. Asked for half, a run needed 57% of the maps evicted, and
# an estimate a few MiB too high left nothing to spare. The margin is for
# the estimate.
#
# What it must show: the process gets its memory and finishes, no OOM kill
# happens while evictable maps remain, and the cache shrinks by a good
# part of what was asked of it (a fifth of its maps, see below). The
# figures are reported: maps before and after,
# the time, any OOM line. Before a task in direct reclaim evicted maps
# itself, this ended in the OOM killer with most of the maps still
# cached. Under kmemleak the kernel frees a map's records an RCU grace
# period late, so reclaim here sees its progress late and paces itself:
# about 1 MiB a second; hence the small sizes. It runs in a guest of its
# own: after the other scenarios a guest's slab pages are shared among
# many caches, eviction frees few whole pages, and the same run took
# three times as long.
#
# emfs-scenario: mem=640M
# emfs-scenario: timeout=400

set -u
. "${0%/*}/../lib.sh"

meminfo() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }

insmod "$EMFS_KO" || exit 1
syn=/sys/kernel/debug/emfs/synthetic
# The trial: 20,000 maps, and what they cost in slab memory.
slab0=$(meminfo Slab)
check "trial fill" sh -c "echo '2 10000' >$syn"
per_map=$((($(meminfo Slab) - slab0) * 1024 / 20000))
[ "$per_map" -gt 0 ] || per_map=128
echo "0 0" >"$syn"
# The fill: maps for a fifth of what is available, in inodes of 10,000.
avail_kb=$(meminfo MemAvailable)
inodes=$((avail_kb * 1024 / 5 / per_map / 10000))
slab0=$(meminfo Slab)
start=$(date +%s)
check "fill the cache with $inodes inodes of 10,000 maps ($per_map bytes each)" \
	sh -c "echo '$inodes 10000' >$syn"
id=$(awk '{ print $2 }' "$syn")
stats=/proc/fs/emfs/$id/stats
maps0=$(stat_of "$stats" maps_cached)
cache_kb=$(($(meminfo Slab) - slab0))
avail_kb=$(meminfo MemAvailable)
note "cache: $maps0 maps, $((cache_kb >> 10)) MiB of slab, filled in $(($(date +%s) - start)) s; MemAvailable $((avail_kb >> 10)) MiB"
check "$((inodes * 10000)) maps cached" test "$maps0" -eq $((inodes * 10000))
check "over 60 MiB of slab" test "$cache_kb" -gt $((60 << 10))

# Reclaim's counters, before and after: who reclaimed what.
vmstat_keys="allocstall_movable allocstall_normal pgsteal_kswapd pgsteal_direct slabs_scanned kswapd_low_wmark_hit_quickly oom_kill"
vmstat_of() { awk -v k="$1" '$1 == k { print $2 }' /proc/vmstat; }
for k in $vmstat_keys; do eval "vm0_$k=\$(vmstat_of $k)"; done

# Watermark boosting raises the zone watermarks by whole pageblocks
# (2 MiB with transparent huge pages) whenever an allocation falls back
# to another migrate type's pageblock, as the slab and anonymous pages
# here soon do, for kswapd to reclaim and then drop again. MemAvailable
# does not count the boost, and the page allocator, deciding to retry
# or to call the OOM killer, compares free and LRU pages with the
# boosted minimum: 18 MiB of boost in one run called the OOM killer with
# 73% of the maps still cached, their memory never asked for. Boosting
# is an anti-fragmentation measure, not memory, so it is off for the run.
boost=$(cat /proc/sys/vm/watermark_boost_factor)
echo 0 >/proc/sys/vm/watermark_boost_factor
note "min_free_kbytes $(cat /proc/sys/vm/min_free_kbytes); watermark_boost_factor $boost, 0 for the run"

# MemAvailable keeps the high watermark back, but an allocation that
# has been through reclaim may take free memory down to the minimum:
# the gap is the process's too (11 MiB here with transparent huge pages,
# whose min_free_kbytes is 22 MiB; under 1 MiB without them), or the
# shrinker would be asked for less than a third.
gap_kb=$(awk '$1 == "min" { m += $2 } $1 == "high" { h += $2 } END { print (h - m) * 4 }' /proc/zoneinfo)
note "watermarks: $((gap_kb >> 10)) MiB between minimum and high"
want_kb=$((avail_kb + gap_kb + cache_kb / 3))
note "allocating $((want_kb >> 10)) MiB of anonymous memory"
start=$(date +%s)
python3 -S -c '
import sys, time
want = int(sys.argv[1]) << 10
step = 2 << 20
held = []
while len(held) * step < want:
    held.append(b"\x5a" * step)
time.sleep(0.5)
print(f"held {len(held) * step >> 20} MiB")
' "$want_kb"
rc=$?
secs=$(($(date +%s) - start))
echo "$boost" >/proc/sys/vm/watermark_boost_factor
maps1=$(stat_of "$stats" maps_cached)
cat "$stats"
for k in $vmstat_keys; do
	eval "v0=\$vm0_$k"
	note "vmstat $k: +$(($(vmstat_of "$k") - ${v0:-0}))"
done
note "after: MemAvailable $(($(meminfo MemAvailable) >> 10)) MiB, Slab $(($(meminfo Slab) >> 10)) MiB"
# The OOM report's first lines say which allocation gave up, and why.
dmesg | grep -A3 "invoked oom-killer" | head -8
oom=$(dmesg | grep -iE "out of memory|oom-kill|invoked oom-killer" | head -3)
note "maps: $maps0 before, $maps1 after; the process took $secs s; OOM lines: ${oom:-none}"
check "the process finished (exit status $rc)" test "$rc" -eq 0
check "no OOM kill" test -z "$oom"
# A third of the cache's memory was asked for beyond MemAvailable, which
# is an estimate: page cache it did not count gives part of it (a run
# with 28 MiB taken from the page cache saw 24.8% of the maps go), and
# slab pages free only once all their objects do. A fifth of the maps
# must have gone, evicted in direct reclaim too.
check "the cache shrank by at least a fifth ($maps0 -> $maps1)" test "$maps1" -le $((maps0 * 4 / 5))
check "direct reclaim evicted maps" test "$(stat_of "$stats" shrinker_direct)" -gt 0

check "remove the owner" sh -c "echo '0 0' >$syn"
check "live objects: none" none_alive
check "rmmod" rmmod emfs
exit $fail
