#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# emfs-stat and emfs-trace, used as a developer would.
#
# emfs-stat: refuses when emfs is not loaded and for an owner that does not
# exist; its table agrees with the stats file; --watch prints the frames
# asked for, with rates per second that see a reader's lookups.
#
# emfs-trace: records tools/demo/pressure.sh (fragmented writes, a
# synthetic owner, reads, memory pressure, reads again), made smaller, in
# a guest of 512 MiB; the report shows the cache filling, the kernel calling the emfs
# shrinkers, the workers freeing maps and the reads loading them back; the
# trace settings are put back as they were; a failing command's status is
# passed on; a directory that is not a recording is refused.
#
# emfs-scenario: mem=512M

set -u
. "${0%/*}/../lib.sh"

tools=$EMFS_TOP/tools
tracing=/sys/kernel/tracing
out=$EMFS_SCRATCH

# refuses CODE WHAT CMD...: CMD exits CODE and says WHAT on stderr.
refuses() {
	local code=$1 what=$2 rc
	shift 2
	"$@" >"$out/stdout" 2>"$out/stderr"
	rc=$?
	sed 's/^/    /' "$out/stderr"
	[ "$rc" -eq "$code" ] && grep -q -- "$what" "$out/stderr"
}

check "emfs-stat without emfs loaded: exit 1, 'is emfs loaded?'" \
	refuses 1 "is emfs loaded?" "$tools/emfs-stat"
check "emfs-trace record without emfs loaded: exit 1" \
	refuses 1 "is emfs loaded" "$tools/emfs-trace" record -o "$out/none" -- true

insmod "$EMFS_KO"
mnt=/tmp/emfs
emfs_mount "$mnt" size=256M
note "mounted: owner $id"

# A file of 16 extents: each 4 KiB piece written back before the next, the
# other way round, with another file taking the block in between (one
# xfs_io with both files open, "file N" switching between them).
cmds=(-c "open -f $mnt/spacer")
for ((i = 15; i >= 0; i--)); do
	cmds+=(-c "file 0" -c "pwrite -q $((i * 4096)) 4k" -c fsync
		-c "file 1" -c "pwrite -q $(((15 - i) * 4096)) 4k" -c fsync)
done
xfs_io -f "${cmds[@]}" "$mnt/frag" >/dev/null

"$tools/emfs-stat" >"$out/table"
sed 's/^/    /' "$out/table"
row=$(awk -v id="$id" '$1 == id' "$out/table")
check "emfs-stat: one row for owner $id" test -n "$row"
check "emfs-stat: its cached count is the stats file's ($(stat_of "$stats" maps_cached))" \
	test "$(echo "$row" | awk '{ print $3 }')" = "$(stat_of "$stats" maps_cached)"
check "emfs-stat: its lookups are the stats file's" \
	test "$(echo "$row" | awk '{ print $7 }')" = "$(stat_of "$stats" lookups)"
check "emfs-stat 999999: exit 1, 'no owner 999999'" \
	refuses 1 "no owner 999999" "$tools/emfs-stat" 999999
check "emfs-stat --watch -i 0: exit 2, refused" \
	refuses 2 "interval must be above 0" "$tools/emfs-stat" --watch -i 0
check "emfs-stat --watch -n 0: exit 2, refused" \
	refuses 2 "count must be at least 1" "$tools/emfs-stat" --watch -n 0

# A reader looking the maps up all the time, while emfs-stat watches. How
# long one of its rounds takes depends on the machine (a KASAN guest under
# TCG is ten times slower): the frames last as long as two rounds, timed
# first, so that every frame holds the lookups of at least one.
rounds=$out/rounds
(
	for ((i = 1; ; i++)); do
		echo 1 >/proc/sys/vm/drop_caches
		cat "$mnt/frag" >/dev/null
		echo "$i" >"$rounds.new" && mv "$rounds.new" "$rounds"
	done
) &
reader=$!
rounds_done() { [ "$(cat "$rounds" 2>/dev/null || echo 0)" -ge "$1" ]; }
wait_for 120 rounds_done 1
t0=$(date +%s.%N) n0=$(cat "$rounds")
wait_for 120 rounds_done $((n0 + 2))
interval=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { d = b - a; printf "%.2f", d < 0.5 ? 0.5 : d }')
note "the reader's two rounds take ${interval} s: frames of that length"
"$tools/emfs-stat" --watch -i "$interval" -n 3 "$id" >"$out/watch"
kill "$reader"
wait "$reader" 2>/dev/null
sed 's/^/    /' "$out/watch"
check "emfs-stat --watch -n 3: three frames" \
	test "$(grep -c '^emfs-stat ' "$out/watch")" -eq 3
rate=$(awk -v id="$id" '$1 == id && $6 + 0 > r { r = $6 + 0 } END { print r + 0 }' "$out/watch")
check "emfs-stat --watch: the reader's lookups per second seen ($rate)" \
	awk -v r="$rate" 'BEGIN { exit !(r > 0) }'

# The run make run draws.
rec=$out/recording
saved_clock=$(sed 's/.*\[\(.*\)\].*/\1/' "$tracing/trace_clock")
# Before the buffer is first used it reads "7 (expanded: 1408)": what
# emfs-trace puts back is the size it has once used. The ring buffer
# rounds a size to its pages: within 1% is the same.
kb() { sed 's/.*expanded: \([0-9]*\).*/\1/; s/ .*//' "$tracing/buffer_size_kb"; }
saved_kb=$(kb)
PRESSURE_SYNTHETIC="16 2000" PRESSURE_BALLAST_MB=96 PRESSURE_PAUSE=0.3 \
	"$tools/emfs-trace" record -o "$rec" -- "$tools/demo/pressure.sh" "$mnt" 1
check "emfs-trace record: the command's status 0" test $? -eq 0
"$tools/emfs-trace" report "$rec" >"$out/report"
sed 's/^/    /' "$out/report"
r() { awk -v k="$1" '$1 == k { print $2 }' "$out/report"; }
check "the cache filled: peak $(r maps_cached_peak) maps" test "$(r maps_cached_peak)" -ge 32000
check "the kernel called the emfs shrinkers: $(r kernel_shrinker_calls) times" \
	test "$(r kernel_shrinker_calls)" -gt 0
check "the workers ran ($(r worker_runs)) and freed $(r worker_freed) maps" \
	test "$(r worker_runs)" -gt 0 -a "$(r worker_freed)" -gt 0
check "the cache emptied: $(r maps_cached_min_after_peak) maps left of $(r maps_cached_peak)" \
	test "$(r maps_cached_min_after_peak)" -lt "$(r maps_cached_peak)"
check "one em_shrinker_remove_em per map freed" \
	test "$(r emfs:em_shrinker_remove_em)" = "$(r worker_freed)"
check "the reads after it loaded maps back: $(r emfs:em_cache_miss) misses" \
	test "$(r emfs:em_cache_miss)" -gt 0
check "the phases were marked" test "$(grep -c tracing_mark_write "$rec/trace.txt")" -ge 5
note "  after: clock $(sed 's/.*\[\(.*\)\].*/\1/' "$tracing/trace_clock"), buffer $(kb) KiB, events $(cat "$tracing/events/emfs/enable") $(cat "$tracing/events/vmscan/mm_shrink_slab_start/enable")"
check "trace settings put back (clock $saved_clock, buffer $saved_kb KiB, events off)" \
	test "$(sed 's/.*\[\(.*\)\].*/\1/' "$tracing/trace_clock")" = "$saved_clock" -a \
	"$(awk -v a="$(kb)" -v b="$saved_kb" 'BEGIN { d = a - b; print (d < 0 ? -d : d) * 100 <= b }')" = 1 -a \
	"$(cat "$tracing/events/emfs/enable")" = 0 -a \
	"$(cat "$tracing/events/vmscan/mm_shrink_slab_start/enable")" = 0
echo "0 0" >/sys/kernel/debug/emfs/synthetic
# For the host to draw (the harness plots what the scenario leaves here).
if [ -n "${EMFS_OUT:-}" ]; then
	rm -rf "$EMFS_OUT/tools-recording"
	cp -r "$rec" "$EMFS_OUT/tools-recording"
fi

"$tools/emfs-trace" record -o "$out/false" -- sh -c 'exit 3' 2>/dev/null
check "emfs-trace record: a failing command's status is passed on" test $? -eq 3
check "emfs-trace report of a directory that is no recording: exit 1" \
	refuses 1 "not a recording" "$tools/emfs-trace" report "$out"

check "consistency check" emfs_check
umount "$mnt"
rmmod emfs
exit "$fail"
