#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""squeeze.py: real memory pressure, for the shrinkers to answer.

It allocates anonymous memory 2 MiB at a time until the kernel
has been reclaiming (/proc/vmstat pgsteal or slabs_scanned growing: kswapd
or direct reclaim, which call the shrinkers in proportion to the page
cache they reclaim) for 48 more steps (or as many as its argument says), or until MemAvailable would fall
under 32 MiB; holds it for half a second; exits. The test guest has no
swap: give it clean page cache to reclaim (pressure.sh writes a ballast
file, and runs this once per round) and the floor keeps the OOM killer
away. Prints what the kernel reclaimed meanwhile.
"""

import sys
import time

STEP = 2 << 20
STEPS_RECLAIMING = 48
FLOOR = 32 << 20


def meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":")
            if k == key:
                return int(v.split()[0]) << 10
    raise KeyError(key)


def vmstat():
    with open("/proc/vmstat") as f:
        return {k: int(v) for k, v in (line.split() for line in f)}


def reclaimed(v):
    return v["pgsteal_kswapd"] + v["pgsteal_direct"]


def squeeze(steps_reclaiming=STEPS_RECLAIMING):
    before = vmstat()
    start = time.monotonic()
    held, steps = [], 0
    while meminfo("MemAvailable") > FLOOR + STEP and steps <= steps_reclaiming:
        now = vmstat()
        if now["slabs_scanned"] > before["slabs_scanned"] or \
           reclaimed(now) > reclaimed(before):
            steps += 1
        # Bytes, not a bytearray: every page is written, so it is really
        # allocated.
        held.append(b"\x5a" * STEP)
    time.sleep(0.5)
    after = vmstat()
    print(f"held {len(held) * STEP >> 20} MiB for {time.monotonic() - start:.1f} s; "
          f"the kernel scanned {after['slabs_scanned'] - before['slabs_scanned']} "
          f"slab objects (all shrinkers), reclaimed "
          f"{reclaimed(after) - reclaimed(before)} pages", flush=True)


if __name__ == "__main__":
    squeeze(*(int(a) for a in sys.argv[1:2]))
