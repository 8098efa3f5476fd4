# SPDX-License-Identifier: GPL-2.0
"""Reading emfs's statistics: shared by tools/emfs-stat and tools/emfs-trace.

Every owner of extent maps (a mounted emfs, or a synthetic owner made
through debugfs) has a directory /proc/fs/emfs/<id> whose file "stats" holds
one "key value" pair per line. Keys and their meaning are documented in
Documentation/shrinker.rst.
"""

import os
import time

PROC = "/proc/fs/emfs"

# The counts of maps: levels, shown as they are.
LEVELS = ("inodes", "maps_cached", "maps_evictable", "maps_pinned", "maps_modified")
# Event counters: only grow; shown as rates per second by --watch.
COUNTERS = ("lookups", "hits", "misses", "merges", "shrinker_runs",
            "shrinker_scanned", "shrinker_freed", "shrinker_skipped_busy",
            "shrinker_spared", "shrinker_direct")


def parse_stats(text):
    """The "key value" lines of a stats file, as a dict of ints."""
    stats = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) != 2:
            raise ValueError(f"not a 'key value' line: {line!r}")
        stats[words[0]] = int(words[1])
    return stats


def read_owners(proc=PROC):
    """{owner id: stats} for every owner under proc; {} when emfs is not
    loaded. An owner that goes away while it is read is left out."""
    owners = {}
    try:
        names = os.listdir(proc)
    except FileNotFoundError:
        return owners
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(proc, name, "stats")) as f:
                owners[int(name)] = parse_stats(f.read())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return owners


def rates(before, after, seconds):
    """Per second rates of the counters between two samples of one owner."""
    if seconds <= 0:
        raise ValueError("the samples must be apart in time")
    return {k: (after.get(k, 0) - before.get(k, 0)) / seconds
            for k in COUNTERS if k in after}


def totals(owners):
    """The sum of each key over all owners."""
    sums = {}
    for stats in owners.values():
        for k, v in stats.items():
            sums[k] = sums.get(k, 0) + v
    return sums


def now():
    """The clock the trace is read in (trace_clock "mono")."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)
