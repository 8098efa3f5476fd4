#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""hot_file.py: files with many extent maps, and readers that keep looking
them up, for the hot_inode scenario.

  hot_file.py write PATH BLOCKS [PATH BLOCKS...]
      Writes every other 4 KiB block of each file (block b holds b as
      eight little-endian bytes, then zeroes) and syncs it: BLOCKS / 2 data
      extents with holes between them, BLOCKS extent maps once read.
  hot_file.py read PATH BLOCKS STOPFILE
      Until STOPFILE exists: drops the file's page cache
      (POSIX_FADV_DONTNEED) and reads the head of every block, so every
      block is read through read_folio and looks its extent map up; checks
      what it reads. Prints the whole passes made; exits 1 at the first
      wrong block, saying which, or if it made no whole pass.
"""

import os
import sys

BLOCK = 4096


def expected(b):
    return b.to_bytes(8, "little") if b % 2 == 0 else bytes(8)


def write(pairs):
    for path, blocks in pairs:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for b in range(0, blocks, 2):
                os.pwrite(fd, expected(b).ljust(BLOCK, b"\0"), b * BLOCK)
            os.ftruncate(fd, blocks * BLOCK)
            os.fsync(fd)
        finally:
            os.close(fd)


def read(path, blocks, stopfile):
    fd = os.open(path, os.O_RDONLY)
    passes = 0
    while not os.path.exists(stopfile):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        for b in range(blocks):
            if b % 1000 == 999 and os.path.exists(stopfile):
                break
            got = os.pread(fd, 8, b * BLOCK)
            if got != expected(b):
                print(f"{path}: block {b}: read {got.hex()}, "
                      f"expected {expected(b).hex()} (pass {passes})")
                return 1
        else:
            passes += 1
    print(f"{path}: {passes} whole passes of {blocks} blocks, all correct")
    return 0 if passes else 1


def main(argv):
    if len(argv) >= 4 and argv[1] == "write" and len(argv) % 2 == 0:
        write([(argv[i], int(argv[i + 1])) for i in range(2, len(argv), 2)])
        return 0
    if len(argv) == 5 and argv[1] == "read":
        return read(argv[2], int(argv[3]), argv[4])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
