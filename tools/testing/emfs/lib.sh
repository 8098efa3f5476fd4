# SPDX-License-Identifier: GPL-2.0
#
# Shared by the VM scenarios: sourced, never run. The scenarios run under
# batch.sh, which scans kmemleak and cleans up after each of them.
#
#   check WHAT CMD...   run CMD; print "ok: WHAT" or "not ok: WHAT" and
#                       remember the failure in $fail
#   stat_of FILE KEY    the value of KEY in an emfs /proc stats file
#   emfs_mount DIR OPTS mount emfs on DIR; sets $id, $stats and $shrinker
#   wait_for SECS CMD   poll CMD every 0.1 s until it succeeds (CMD is run
#                       each time: give a function, not a $(...) test)
#   shrink_all          make the mount's shrinker evict every map it can,
#                       and wait until none is left evictable
#   emfs_check          run the debugfs consistency check; fails on a problem
#   none_alive          the module has no live object left (debugfs live)
#   fault_arm PCT, fault_disarm   failslab and fail_page_alloc on the module

fail=0
testing_dir=${BASH_SOURCE[0]%/*}

note() { echo "$*"; }

check() {
	local what=$1
	shift
	if "$@"; then note "ok: $what"; else note "not ok: $what"; fail=1; fi
}

stat_of() {
	local k v
	while read -r k v; do
		[ "$k" = "$2" ] && echo "$v" && return
	done <"$1"
}

emfs_mount() {
	local dir=$1 opts=$2
	mkdir -p "$dir"
	mount -t emfs -o "$opts" none "$dir" || return 1
	id=$(dmesg | sed -n 's/.*emfs: mounted: owner \([0-9]*\),.*/\1/p' | tail -1)
	stats=/proc/fs/emfs/$id/stats
	shrinker=$(ls -d /sys/kernel/debug/shrinker/emfs-extent-map:"$id"-* | head -1)
}

wait_for() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 10; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

# The maps left are pinned (writeback in flight). Memory pressure may have
# made the shrinker run already: what counts is that nothing evictable is
# left.
none_evictable() { [ "$(stat_of "$stats" maps_evictable)" -eq 0 ]; }

# A run may stop before the end (it yields the CPU between batches) and a
# request while one is queued is dropped: ask again on every poll until
# nothing evictable is left.
shrink_more() {
	none_evictable && return 0
	echo "0 0 1000000" >"$shrinker/scan"
	return 1
}

shrink_all() {
	wait_for 300 shrink_more
}

# emfs_check: the module's consistency check of every mounted emfs
# (/sys/kernel/debug/emfs/check); prints it and fails on any problem.
emfs_check() {
	local out
	out=$(cat /sys/kernel/debug/emfs/check) || return 1
	echo "$out" | sed 's/^/    check: /'
	echo "$out" | grep -qx 'problems 0'
}

# Fault injection (Documentation/fault-injection): failslab and
# fail_page_alloc, task-filtered (only tasks with make-it-fail set), and
# restricted to allocations with the module's code on the stack
# (require-start/require-end: the span of its text in /proc/kallsyms).
#
#   fault_arm PERCENT   fail PERCENT% of those allocations
#   fault_disarm        stop; sets $injected to the failures injected
fault_times=100000000
fault_attrs="failslab fail_page_alloc"

# The span of the module's text, found once per load of the module (its
# load address tells a new load).
fault_span="" fault_load=""
fault_arm() {
	local pct=$1 a d lo hi name addr load=""
	while read -r name _ _ _ _ addr; do
		[ "$name" = emfs ] && load=$addr
	done </proc/modules
	if [ "$load" != "$fault_load" ]; then
		fault_load=$load
		fault_span=$(python3 -S -c '
a = [int(l.split()[0], 16) for l in open("/proc/kallsyms")
     if l.rstrip().endswith("[emfs]") and l.split()[1] in "tT"]
print(min(a), max(a) + 65536)')
	fi
	# shellcheck disable=SC2086
	set -- $fault_span
	lo=${1:-} hi=${2:-}
	[ -n "$lo" ] || { note "not ok: the module text found in /proc/kallsyms"; return 1; }
	for a in $fault_attrs; do
		d=/sys/kernel/debug/$a
		echo 0 >"$d/probability"
		echo "$fault_times" >"$d/times"
		echo 1 >"$d/interval"
		echo 0 >"$d/verbose"
		echo Y >"$d/task-filter"
		echo N >"$d/ignore-gfp-wait"
		echo 32 >"$d/stacktrace-depth"
		echo "$lo" >"$d/require-start"
		echo "$hi" >"$d/require-end"
		echo "$pct" >"$d/probability"
	done
	echo N >/sys/kernel/debug/fail_page_alloc/ignore-gfp-highmem
	echo 0 >/sys/kernel/debug/fail_page_alloc/min-order
}

fault_disarm() {
	local a n
	injected=0
	for a in $fault_attrs; do
		echo 0 >"/sys/kernel/debug/$a/probability"
		n=$((fault_times - $(cat "/sys/kernel/debug/$a/times")))
		note "$a: $n failures injected"
		injected=$((injected + n))
	done
}

# none_alive: every live object count of the module is zero
# (/sys/kernel/debug/emfs/live); prints the counts when not.
none_alive() {
	local live=/sys/kernel/debug/emfs/live
	[ "$(awk '{ s += $2 } END { print s }' "$live")" -eq 0 ] && return 0
	cat "$live"
	return 1
}
