#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Loading and unloading emfs: the module appears and goes, its trace
# events appear in tracefs, can be enabled while loaded and are gone after
# rmmod; a second load/unload cycle works; kmemleak finds nothing.

set -eu
events=/sys/kernel/tracing/events/emfs

echo clear >/sys/kernel/debug/kmemleak
for cycle in 1 2; do
	insmod "$EMFS_KO"
	test -d /sys/module/emfs
	test -d "$events/em_cache_miss"
	echo 1 >"$events/em_cache_miss/enable"
	grep -q '^emfs:em_cache_miss$' /sys/kernel/tracing/set_event
	echo 0 >"$events/em_cache_miss/enable"
	rmmod emfs
	test ! -d /sys/module/emfs
	test ! -d "$events"
	echo "cycle $cycle: loaded, events present, unloaded"
done

sleep 6
echo scan >/sys/kernel/debug/kmemleak
echo scan >/sys/kernel/debug/kmemleak
if [ -s /sys/kernel/debug/kmemleak ]; then
	cat /sys/kernel/debug/kmemleak
	exit 1
fi
echo "kmemleak: clean"
