#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""squeeze.py [ROUNDS]: real memory pressure, for the shrinkers to answer.

Each round allocates anonymous memory 2 MiB at a time until the kernel
has been reclaiming (/proc/vmstat pgsteal or slabs_scanned growing: kswapd
or direct reclaim, which call the shrinkers in proportion to the page
cache they reclaim) for 48 more steps, or until MemAvailable would fall
under 32 MiB; holds it for half a second; releases it. The test guest has
no swap: give it clean page cache to reclaim (pressure.sh writes a
ballast file) and the floor keeps the OOM killer away. Prints one line per
round.
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


def squeeze(rounds):
    for r in range(1, rounds + 1):
        before = vmstat()
        start = time.monotonic()
        held, steps = [], 0
        while meminfo("MemAvailable") > FLOOR + STEP and steps <= STEPS_RECLAIMING:
            now = vmstat()
            if now["slabs_scanned"] > before["slabs_scanned"] or \
               reclaimed(now) > reclaimed(before):
                steps += 1
            # Bytes, not a bytearray: every page is written, so it is
            # really allocated.
            held.append(b"\x5a" * STEP)
        time.sleep(0.5)
        after = vmstat()
        print(f"{f'round {r}: ' if rounds > 1 else ''}held {len(held) * STEP >> 20} MiB for "
              f"{time.monotonic() - start:.1f} s; the kernel scanned "
              f"{after['slabs_scanned'] - before['slabs_scanned']} slab objects "
              f"(all shrinkers), reclaimed "
              f"{reclaimed(after) - reclaimed(before)} pages",
              flush=True)
        del held
        time.sleep(0.5)


if __name__ == "__main__":
    squeeze(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
