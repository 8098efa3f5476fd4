#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest side of make check: run several test scripts in one guest, each
# isolated from the others, and mark where each begins and ends so that
# tools/testing/check.py can cut the guest log into one log per script.
#
# The scripts come from the kernel command line, emfs_batch=A,B,...; a name
# is a scenario (tools/testing/emfs/scenarios/A.sh), "kunit" (kunit.sh) or
# a path relative to tools/testing/emfs/ without ".sh" (the harness's own
# self-tests). For each one, in order:
#
#   emfs-batch: begin NAME at UPTIME    the script starts, in a fresh scratch
#                                       directory ($EMFS_SCRATCH)
#   ...                                 its output and the kernel's messages
#   emfs-batch: end NAME status RC at UPTIME
#   emfs-batch: NAME left ...           what the script failed to clean up
#                                       (each is then cleaned up here)
#   emfs-batch: done NAME
#
# kmemleak: a scan of a 2 GiB guest takes seconds under TCG, and an object
# is reported only once it is 5 s old and was the same on two scans. So
# instead of waiting and scanning after every script, kmemleak is scanned
# once, after the last script ("emfs-batch: kmemleak final begin/end"
# around the report): each report carries the allocation's jiffies, which
# the host maps to the script that was running then, so every script
# still gets a kmemleak verdict of its own. A script that crashes the guest
# is reported by the host, which boots a new guest for the rest.
#
# A script that wants the KUnit suites to run again when it loads the
# module says "emfs-scenario: kunit" in its text; for the others, the
# suites are filtered out at insmod (kunit's filter_glob).

set -u
shopt -s dotglob nullglob
here=${0%/*}
km=/sys/kernel/debug/kmemleak
glob=/sys/module/kunit/parameters/filter_glob
# Between the scripts, only shell builtins where they do: every program
# started costs a fraction of a second under TCG.
uptime() { local up _; read -r up _ </proc/uptime; echo "$up"; }
# mark WORDS: a marker line, as a kernel log record: a record is never cut
# by other output on the console (a script's line can be cut by the
# kernel's), and the host finds it anywhere in a line.
mark() { echo "emfs-batch: $*" >/dev/kmsg; }
centisecs() { local up _; read -r up _ </proc/uptime; echo $((10#${up/./})); }

# kmemleak_report TAG: print what kmemleak found between markers naming
# TAG, and forget it.
kmemleak_report() {
	local report
	# Not [ -s ]: debugfs files have no size.
	[ -e "$km" ] && report=$(<"$km")
	if [ -n "${report:-}" ]; then
		mark "kmemleak $1 begin"
		printf '%s\n' "$report"
		mark "kmemleak $1 end"
		echo clear >"$km"
	fi
}

# cleanup NAME: undo what a script left behind, saying what it was.
cleanup() {
	local name=$1 m t a p mounts=()
	while read -r _ m t _; do
		[ "$t" = emfs ] && mounts=("$m" "${mounts[@]}")
	done </proc/mounts
	for m in "${mounts[@]}"; do
		mark "$name left emfs mounted on $m"
		umount "$m" || umount -l "$m"
	done
	for m in emfs_sample emfs; do
		if [ -d "/sys/module/$m" ]; then
			mark "$name left module $m loaded"
			rmmod "$m"
		fi
	done
	for a in failslab fail_page_alloc; do
		p=0
		[ -e "/sys/kernel/debug/$a/probability" ] && read -r p <"/sys/kernel/debug/$a/probability"
		if [ "$p" != 0 ]; then
			mark "$name left $a armed"
			echo 0 >"/sys/kernel/debug/$a/probability"
		fi
	done
	echo 0 >/proc/2/make-it-fail 2>/dev/null
	echo 0 >/sys/kernel/tracing/tracing_on 2>/dev/null
	echo >/sys/kernel/tracing/set_event 2>/dev/null
	echo >/sys/kernel/tracing/trace 2>/dev/null
	echo 1 >/sys/kernel/tracing/tracing_on 2>/dev/null
}

# kmemleak is scanned here only, at the end: not in its own thread, whose
# "new suspected memory leaks" line would land in whichever script runs
# then. What the boot leaked is blamed on the guest's first script.
[ -e "$km" ] && echo scan=off >"$km"
# The markers go through /dev/kmsg: no rate limit on it.
echo on >/proc/sys/kernel/printk_devkmsg

status=0
last=$(centisecs)
for name in ${emfs_batch//,/ }; do
	case "$name" in
	kunit) script=$here/kunit.sh ;;
	*/*) script=$here/$name.sh ;;
	*) script=$here/scenarios/$name.sh ;;
	esac
	scratch=/tmp/emfs-scratch/${name##*/}
	mkdir -p "$scratch"
	if [ -w "$glob" ]; then
		text=""
		[ -r "$script" ] && IFS= read -r -d '' text <"$script"
		if [ "$name" = kunit ] || [[ $text == *"emfs-scenario: kunit"* ]]; then
			printf "*" >"$glob"
		else
			printf -- "-" >"$glob"
		fi
	fi
	# Each script reads its own kernel messages with dmesg, as it would in
	# a guest of its own (the console has them all).
	dmesg -C
	declare -A before=()
	for f in /tmp/*; do before[$f]=1; done
	mark "begin $name at $(uptime)"
	# make check XTRACE=1: every command with the time it started, to see
	# where a script spends its time.
	(cd "$scratch" && export EMFS_SCRATCH=$scratch &&
		if [ -n "${emfs_xtrace:-}" ]; then
			# (bash run as root does not take PS4 from the environment;
			# the trace goes to fd 9, so that 2>&1 does not catch it)
			exec 9>&2
			exec bash -c 'PS4="+ \${EPOCHREALTIME} " BASH_XTRACEFD=9; set -x; . "$0"' "$script"
		else
			exec bash "$script"
		fi)
	rc=$?
	mark "end $name status $rc at $(uptime)"
	[ "$rc" -eq 0 ] || status=1
	cd / || exit 1
	cleanup "$name"
	# What it left in /tmp (fsx's copies, mount points) goes, with its
	# scratch directory: /tmp is the guest's memory.
	gone=("$scratch")
	for f in /tmp/*; do
		[ -n "${before[$f]:-}" ] || gone+=("$f")
	done
	rm -rf "${gone[@]}"
	unset before
	mark "done $name"
	last=$(centisecs)
done

# An object is reported once it is 5 s old and its contents were the same
# on two scans: the first scan runs at once, the second once what the last
# script allocated is 5 s old.
if [ -e "$km" ]; then
	echo scan >"$km"
	wait=$((last + 510 - $(centisecs)))
	[ "$wait" -le 0 ] || sleep "$((wait / 100)).$((wait % 100 / 10))"
	echo scan >"$km"
	kmemleak_report final
	mark "kmemleak scanned at $(uptime)"
fi
exit $status
