#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Self-test of the runner: a script that panics the guest. The harness must
# report it as this script's failure and run the scripts after it in a new
# guest.

echo "panicking the guest"
echo c >/proc/sysrq-trigger
sleep 60
