#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Self-test of the runner (tools/testing/check.py runs it): a host
# program runs in the guest, the module path is passed in, and the exit
# status comes back to the host. It must exit 3.

xfs_io -V
[ -f "$EMFS_KO" ] || { echo "EMFS_KO=$EMFS_KO does not exist"; exit 1; }
echo "EMFS_KO=$EMFS_KO exists"
exit 3
