#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Loading and unloading emfs: the module appears and goes, its trace
# events appear in tracefs, can be enabled while loaded and are gone after
# rmmod; a second load/unload cycle works (batch.sh checks kmemleak
# after it).

set -eu
events=/sys/kernel/tracing/events/emfs

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
