#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The short stress run of make check (tools/testing/emfs/stress.sh; make
# stress DURATION=<seconds> runs the long one).

EMFS_STRESS_SECS=${EMFS_STRESS_SECS:-10} exec "$(dirname "$0")/../stress.sh"
