#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Print a file's FIEMAP: one line per extent, "logical length physical
flags" in bytes, flags by name. Unlike xfs_io, it does not pass
FIEMAP_FLAG_SYNC unless asked (-s), so dirty page cache shows as
delalloc. Usage: fiemap.py [-s] [-c COUNT] FILE [START [LENGTH]]."""

import argparse
import fcntl
import struct
import sys

FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 0x1
HEADER = struct.Struct("=QQIIII")
EXTENT = struct.Struct("=QQQQQIIII")
FLAGS = [(0x1, "last"), (0x2, "unknown"), (0x4, "delalloc"),
         (0x8, "encoded"), (0x80, "encrypted"), (0x100, "not_aligned"),
         (0x200, "inline"), (0x400, "tail"), (0x800, "unwritten"),
         (0x1000, "merged"), (0x2000, "shared")]


def names(flags):
    out = [name for bit, name in FLAGS if flags & bit]
    return ",".join(out) or "-"


def fiemap(fd, start, length, count, sync):
    buf = bytearray(HEADER.size + count * EXTENT.size)
    HEADER.pack_into(buf, 0, start, length,
                     FIEMAP_FLAG_SYNC if sync else 0, 0, count, 0)
    fcntl.ioctl(fd, FS_IOC_FIEMAP, buf)
    mapped = HEADER.unpack_from(buf, 0)[3]
    for i in range(mapped):
        e = EXTENT.unpack_from(buf, HEADER.size + i * EXTENT.size)
        yield e[0], e[2], e[1], e[5]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-s", "--sync", action="store_true")
    ap.add_argument("-c", "--count", type=int, default=512)
    ap.add_argument("file")
    ap.add_argument("start", nargs="?", type=int, default=0)
    ap.add_argument("length", nargs="?", type=int, default=(1 << 64) - 1)
    args = ap.parse_args()
    with open(args.file, "rb") as f:
        try:
            for logical, length, physical, flags in fiemap(
                    f.fileno(), args.start, args.length, args.count,
                    args.sync):
                print(logical, length, physical, names(flags))
        except OSError as e:
            print(f"fiemap: {e.strerror}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
