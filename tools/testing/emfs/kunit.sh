#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest side of the KUnit run: load the module (its KUnit suites run right
# after module init and print KTAP to the kernel log, which reaches the
# console), unload it, and look for leaks. tools/testing/check.py parses
# the KTAP from the guest log; insmod's exit status says nothing about
# test results.

set -u
kmemleak=/sys/kernel/debug/kmemleak

[ -e "$kmemleak" ] && echo clear >"$kmemleak"
insmod "$EMFS_KO" || { echo "kunit.sh: insmod failed"; exit 1; }
rmmod emfs || { echo "kunit.sh: rmmod failed"; exit 1; }

if [ -e "$kmemleak" ]; then
	# kmemleak only reports objects older than 5 s, found on two scans.
	sleep 6
	echo scan >"$kmemleak"
	echo scan >"$kmemleak"
	if [ -s "$kmemleak" ]; then
		echo "kunit.sh: kmemleak reports:"
		cat "$kmemleak"
		exit 1
	fi
fi
exit 0
