#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest side of the KUnit run (an item of tools/testing/emfs/batch.sh):
# load the module (its KUnit suites run right after module init and print
# KTAP to the kernel log, which reaches the console), and unload it.
# tools/testing/check.py parses the KTAP from the guest log; insmod's exit
# status says nothing about test results. The batch runner looks for leaks
# afterwards.
#
# $emfs_suites (make check SUITE=a,b) names the suites to run: one load per
# suite, with kunit's filter_glob set to it; by default one load runs them
# all.

set -u
glob=/sys/module/kunit/parameters/filter_glob

load_unload() {
	insmod "$EMFS_KO" || { echo "kunit.sh: insmod failed"; exit 1; }
	rmmod emfs || { echo "kunit.sh: rmmod failed"; exit 1; }
}

if [ -n "${emfs_suites:-}" ]; then
	for suite in ${emfs_suites//,/ }; do
		printf "%s" "$suite" >"$glob" || { echo "kunit.sh: cannot set $glob"; exit 1; }
		load_unload
	done
else
	load_unload
fi
exit 0
