#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Self-test of the runner: a script that never ends. The harness must kill
# the guest when the script's time is up, report it as this script's
# failure and run the scripts after it in a new guest.

echo "hanging"
sleep 100000
