#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The bad-input matrix: every case gives emfs something wrong and expects
one exact errno (and, where emfs explains itself, a line in the kernel
log). Prints "ok: <case>" or "not ok: <case> (...)" per case, as the other
scenarios do; exits 1 if any case failed.

Usage: bad_input.py MOUNTPOINT SCRATCH_DIR OWNER_ID

MOUNTPOINT is a mounted emfs (any size of at least 16 MiB); SCRATCH_DIR an
empty directory for the mount cases. Everything the cases create is
removed again.
"""

import ctypes
import errno
import fcntl
import mmap
import os
import stat
import struct
import subprocess
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
libc.ftruncate.argtypes = [ctypes.c_int, ctypes.c_int64]
libc.lseek.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int]
libc.lseek.restype = ctypes.c_int64
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_uint]
libc.linkat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
AT_FDCWD, AT_SYMLINK_FOLLOW = -100, 0x400
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
libc.pwrite.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int64]
libc.pwrite.restype = ctypes.c_ssize_t

MAX_LFS = (1 << 63) - 1
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_COLLAPSE_RANGE = 0x08
FALLOC_FL_ZERO_RANGE = 0x10
FALLOC_FL_INSERT_RANGE = 0x20
FALLOC_FL_UNSHARE_RANGE = 0x40
SEEK_DATA, SEEK_HOLE = 3, 4
FS_IOC_FIEMAP = 0xC020660B
FS_IOC_GETFLAGS = 0x80086601
FIEMAP_FLAG_SYNC, FIEMAP_FLAG_XATTR = 0x1, 0x2
FIEMAP_MAX_EXTENTS = 0xFFFFFFFF // 56

failed = 0
cases = 0


class Kmsg:
    """The kernel log from now on (/dev/kmsg, read without blocking)."""

    def __init__(self):
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self.fd, 0, os.SEEK_END)

    def read(self):
        lines = []
        while True:
            try:
                rec = os.read(self.fd, 8192).decode(errors="replace")
            except BlockingIOError:
                return "\n".join(lines)
            except OSError as e:  # EPIPE: records were overwritten
                if e.errno != errno.EPIPE:
                    raise
                continue
            lines.append(rec.split(";", 1)[-1].strip())


kmsg = Kmsg()


def result(name, ok, detail=""):
    global failed, cases
    cases += 1
    if ok:
        print(f"ok: {name}")
    else:
        failed += 1
        print(f"not ok: {name} ({detail})")


def errno_of(fn):
    """Runs fn; returns 0 on success, else the errno it failed with."""
    try:
        r = fn()
    except OSError as e:
        return e.errno
    if isinstance(r, int) and r < 0:
        return ctypes.get_errno()
    return 0


def expect(name, want, fn, log=None):
    """Case `name`: fn fails with errno `want` (0: succeeds), and the
    kernel log gains a line containing `log`."""
    kmsg.read()
    got = errno_of(fn)
    ok = got == want
    detail = f"errno {errno.errorcode.get(got, got)}, expected {errno.errorcode.get(want, want)}"
    if ok and log:
        text = kmsg.read()
        ok = log in text
        detail = f"no kernel log line with {log!r}"
    result(name, ok, detail)


ACL_ACCESS = "system.posix_acl_access"
ACL_DEFAULT = "system.posix_acl_default"


NO_ID = 0xffffffff


def acl_value(entries):
    """An ACL's xattr value (POSIX_ACL_XATTR_VERSION 2): (tag, perm, id)
    entries."""
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def acl(users, mask=6):
    """An access ACL giving each uid in `users` rw-: owner rw-, group r--,
    `mask`, other ---, in the order the kernel keeps."""
    return acl_value([(0x01, 6, NO_ID)] +                    # ACL_USER_OBJ
                     [(0x02, 6, uid) for uid in sorted(users)] +  # ACL_USER
                     [(0x04, 4, NO_ID),                      # ACL_GROUP_OBJ
                      (0x10, mask, NO_ID),                   # ACL_MASK
                      (0x20, 0, NO_ID)])                     # ACL_OTHER


def direct_io(path, fd):
    """O_DIRECT: alignment, EOF, NOWAIT, and coherence with the page cache
    (fd: the same file, buffered)."""
    buf = mmap.mmap(-1, 1 << 16)
    d = os.open(path, os.O_RDWR | os.O_DIRECT)
    os.ftruncate(fd, 0)
    buf[:8192] = b"d" * 8192
    expect("O_DIRECT write of two blocks", 0,
           lambda: os.pwritev(d, [memoryview(buf)[:8192]], 4096))
    result("the size follows an O_DIRECT write", os.fstat(fd).st_size == 12288)
    result("a buffered read sees it", os.pread(fd, 12288, 0) == bytes(4096) + b"d" * 8192)
    os.pwrite(fd, b"b" * 4096, 0)
    n = os.preadv(d, [memoryview(buf)[:12288]], 0)
    result("an O_DIRECT read sees dirty page cache", n == 12288 and
           buf[:12288] == b"b" * 4096 + b"d" * 8192)
    m = mmap.mmap(fd, 12288)
    buf[:4096] = b"w" * 4096
    os.pwritev(d, [memoryview(buf)[:4096]], 4096)
    result("a mapping sees an O_DIRECT write", m[4096:8192] == b"w" * 4096)
    m.close()
    for what, off, length, mem, want in [
        ("an offset not a multiple of the block size", 512, 4096, 0, errno.EINVAL),
        ("a length not a multiple of the block size", 0, 1000, 0, errno.EINVAL),
        ("memory not aligned to 512 bytes", 0, 4096, 8, errno.EINVAL),
    ]:
        view = memoryview(buf)[mem:mem + length]
        expect(f"O_DIRECT read with {what}: EINVAL", want, lambda: os.preadv(d, [view], off))
        expect(f"O_DIRECT write with {what}: EINVAL", want, lambda: os.pwritev(d, [view], off))
    result("an O_DIRECT read past EOF reads nothing",
           os.preadv(d, [memoryview(buf)[:4096]], 1 << 20) == 0)
    os.ftruncate(fd, 12288 + 100)
    result("an O_DIRECT read across EOF is short",
           os.preadv(d, [memoryview(buf)[:16384]], 8192) == 4196)
    expect("O_DIRECT with RWF_NOWAIT (no FMODE_NOWAIT): EOPNOTSUPP", errno.EOPNOTSUPP,
           lambda: os.preadv(d, [memoryview(buf)[:4096]], 0, os.RWF_NOWAIT))
    os.close(d)
    os.ftruncate(fd, 0)


def main():
    mnt, scratch, owner = sys.argv[1], sys.argv[2], sys.argv[3]
    target = os.path.join(scratch, "m").encode()
    os.makedirs(target, exist_ok=True)

    # Mount options.
    def mount(opts):
        def go():
            r = libc.mount(b"none", target, b"emfs", 0, opts.encode())
            if r == 0:
                libc.umount2(target, 0)
            return r
        return go

    for opts, log in [
        ("bogus", "Unknown parameter 'bogus'"),
        ("bogus=1", "Unknown parameter 'bogus'"),
        ("size", "Bad value for 'size'"),
        ("size=", "Bad value for 'size'"),
        ("size=abc", "bad value 'abc' for mount option 'size'"),
        ("size=12x", "bad value '12x'"),
        ("size=-1", "bad value '-1'"),
        ("size=1.5M", "bad value '1.5M'"),
        ("size=18446744073709551616", "bad value"),
        ("size=20000000T", "bad value"),
        ("size=1020k", "is out of range"),
        ("size=4k", "is out of range"),
        ("size=65G", "is out of range"),
        ("size=1T", "is out of range"),
        ("size=1025k", "is not a multiple of 4096 bytes"),
        ("size=2M,size=4M", "given more than once"),
        ("size=2M,bogus", "Unknown parameter 'bogus'"),
    ]:
        expect(f"mount -o {opts}: EINVAL", errno.EINVAL, mount(opts), log)
    for opts in ("size=1M", "size=64G", "size=1048576"):
        expect(f"mount -o {opts}: the limits are accepted", 0, mount(opts))

    # Remounting: size= may grow a mounted emfs, never shrink it.
    MS_REMOUNT = 32
    if libc.mount(b"none", target, b"emfs", 0, b"size=4M") != 0:
        result("mount -o size=4M for the remount cases", False,
               f"errno {ctypes.get_errno()}")
    else:
        data = os.urandom(1 << 20)
        fpath = os.path.join(target.decode(), "kept")
        with open(fpath, "wb") as f:
            f.write(data)

        def remount(opts):
            return lambda: libc.mount(b"none", target, b"emfs", MS_REMOUNT,
                                      opts.encode())

        for opts, log in [
            ("size=2M", "cannot shrink"),
            ("size=abc", "bad value 'abc' for mount option 'size'"),
            ("size=65G", "is out of range"),
            ("size=5M,bogus", "Unknown parameter 'bogus'"),
        ]:
            expect(f"mount -o remount,{opts}: EINVAL", errno.EINVAL,
                   remount(opts), log)
        st = os.statvfs(target)
        result("a refused remount leaves the size", st.f_blocks == 1024,
               f"{st.f_blocks} blocks")
        expect("mount -o remount,size=4M (the same): accepted", 0,
               remount("size=4M"))
        expect("mount -o remount,size=8M: grows the disk", 0,
               remount("size=8M"), "grown from 4194304 to 8388608 bytes")
        st = os.statvfs(target)
        result("statfs sees the grown disk", st.f_blocks == 2048,
               f"{st.f_blocks} blocks")
        mounts = open("/proc/mounts").read()
        result("/proc/mounts shows size=8M",
               any(target.decode() in ln and "size=8M" in ln
                   for ln in mounts.splitlines()))
        # 6 MiB more only fits in the new blocks.
        with open(os.path.join(target.decode(), "more"), "wb") as f:
            f.write(b"z" * (6 << 20))
            f.flush()
            os.fsync(f.fileno())
        with open(fpath, "rb") as f:
            result("data written before the remount is intact",
                   f.read() == data)
        # The VFS's flags: read-only (dirty data written back first, then
        # writes refused), back to read-write, noatime.
        MS_RDONLY, MS_NOATIME = 1, 1024
        with open(fpath, "r+b") as f:
            f.write(b"dirty")
        expect("mount -o remount,ro", 0, lambda: libc.mount(
            b"none", target, b"emfs", MS_REMOUNT | MS_RDONLY, b""))
        expect("a write to a read-only remount: EROFS", errno.EROFS,
               lambda: os.open(fpath, os.O_WRONLY))
        expect("creating on a read-only remount: EROFS", errno.EROFS,
               lambda: os.mkdir(os.path.join(target.decode(), "d")))
        with open(fpath, "rb") as f:
            result("what was dirty is read back after remount,ro", f.read(5) == b"dirty")
        expect("mount -o remount,rw,noatime", 0, lambda: libc.mount(
            b"none", target, b"emfs", MS_REMOUNT | MS_NOATIME, b""))
        opts = [ln.split()[3] for ln in open("/proc/mounts")
                if ln.split()[1] == target.decode()]
        result("/proc/mounts shows rw and noatime",
               bool(opts) and "rw" in opts[0].split(",") and "noatime" in opts[0], str(opts))
        expect("a write after remount,rw", 0, lambda: os.close(os.open(fpath, os.O_WRONLY)))

        # atime, as the mount's flags say (the VFS's touch_atime()).
        def read_atime(atime):
            mtime = os.stat(fpath).st_mtime_ns
            os.utime(fpath, ns=(atime(mtime), mtime))
            with open(fpath, "rb") as f:
                f.read(1)
            return os.stat(fpath).st_atime_ns, mtime

        atime, _ = read_atime(lambda m: 10**18)
        result("noatime: a read leaves atime", atime == 10**18)
        MS_RELATIME, MS_STRICTATIME = 1 << 21, 1 << 24
        expect("mount -o remount,strictatime", 0, lambda: libc.mount(
            b"none", target, b"emfs", MS_REMOUNT | MS_STRICTATIME, b""))
        atime, mtime = read_atime(lambda m: m - 10**9)
        result("strictatime: a read sets atime", atime > mtime, f"{atime} <= {mtime}")
        expect("mount -o remount,relatime", 0, lambda: libc.mount(
            b"none", target, b"emfs", MS_REMOUNT | MS_RELATIME, b""))
        # An atime after mtime and ctime (utime sets ctime to now), less
        # than a day old.
        hour = 3600 * 10**9
        atime, mtime = read_atime(lambda m: m + hour)
        result("relatime: a read after atime passed mtime and ctime leaves it",
               atime == mtime + hour)
        atime, mtime = read_atime(lambda m: m - 10**9)
        result("relatime: a read of a file changed since its atime sets it", atime > mtime)
        libc.umount2(target, 0)

    # Offsets and lengths at and past the maximum file size.
    path = os.path.join(mnt, "f")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    before = os.statvfs(mnt).f_bfree
    expect("pwrite at offset -1: EINVAL", errno.EINVAL,
           lambda: libc.pwrite(fd, b"x", 1, -1))
    # The maximum is LLONG_MAX: a write whose end passes it overflows
    # loff_t, which the VFS refuses before emfs sees it.
    expect("pwrite at the maximum file size: EINVAL", errno.EINVAL,
           lambda: libc.pwrite(fd, b"x", 1, MAX_LFS))
    near = MAX_LFS - 2047
    expect("pwrite one byte across it: EINVAL", errno.EINVAL,
           lambda: libc.pwrite(fd, b"y" * 2048, 2048, near))
    n = libc.pwrite(fd, b"y" * 2047, 2047, near)
    result("pwrite ending at the maximum file size", n == 2047, f"wrote {n}")
    result("the size is the maximum file size", os.fstat(fd).st_size == MAX_LFS,
           f"size {os.fstat(fd).st_size}")
    os.fsync(fd)
    result("those bytes read back", os.pread(fd, 2047, near) == b"y" * 2047)
    result("the rest of their block reads as zeroes",
           os.pread(fd, 2049, near - 2049) == bytes(2049))
    expect("pread across the maximum file size: EINVAL", errno.EINVAL,
           lambda: os.pread(fd, 10, MAX_LFS - 5))
    result("a hole below it reads as zeroes", os.pread(fd, 8, 1 << 62) == bytes(8))
    result("SEEK_DATA from 0 finds the last block",
           libc.lseek(fd, 0, SEEK_DATA) == MAX_LFS - 4095,
           f"got {libc.lseek(fd, 0, SEEK_DATA)}")
    expect("ftruncate to -1: EINVAL", errno.EINVAL, lambda: libc.ftruncate(fd, -1))
    expect("ftruncate to 0 frees the block", 0, lambda: os.ftruncate(fd, 0))
    os.fsync(fd)
    result("statfs: the space is back", os.statvfs(mnt).f_bfree == before,
           f"{os.statvfs(mnt).f_bfree} free, {before} before")
    expect("ftruncate to the maximum file size", 0, lambda: os.ftruncate(fd, MAX_LFS))
    result("SEEK_DATA in a file that is one hole: ENXIO",
           errno_of(lambda: os.lseek(fd, 0, SEEK_DATA)) == errno.ENXIO)
    result("SEEK_HOLE from 0 in it: 0", os.lseek(fd, 0, SEEK_HOLE) == 0)
    os.ftruncate(fd, 0)

    # fallocate.
    for what, mode, off, length, want in [
        ("offset + length past the maximum file size", 0, MAX_LFS - 4096, 8192, errno.EFBIG),
        ("length 0", 0, 0, 0, errno.EINVAL),
        ("negative offset", 0, -4096, 4096, errno.EINVAL),
        ("negative length", 0, 0, -4096, errno.EINVAL),
        ("FALLOC_FL_ZERO_RANGE", FALLOC_FL_ZERO_RANGE, 0, 4096, errno.EOPNOTSUPP),
        ("FALLOC_FL_COLLAPSE_RANGE", FALLOC_FL_COLLAPSE_RANGE, 0, 4096, errno.EOPNOTSUPP),
        ("FALLOC_FL_INSERT_RANGE", FALLOC_FL_INSERT_RANGE, 0, 4096, errno.EOPNOTSUPP),
        ("FALLOC_FL_UNSHARE_RANGE", FALLOC_FL_UNSHARE_RANGE, 0, 4096, errno.EOPNOTSUPP),
        ("PUNCH_HOLE without KEEP_SIZE", FALLOC_FL_PUNCH_HOLE, 0, 4096, errno.EOPNOTSUPP),
        ("an unknown mode bit", 0x1000, 0, 4096, errno.EOPNOTSUPP),
        ("a disk's worth and more", 0, 0, 1 << 40, errno.ENOSPC),
    ]:
        expect(f"fallocate, {what}: {errno.errorcode[want]}", want,
               lambda: libc.fallocate(fd, mode, off, length))
    result("fallocate that failed allocated nothing",
           os.statvfs(mnt).f_bfree == before and os.fstat(fd).st_size == 0)
    ro = os.open(path, os.O_RDONLY)
    expect("fallocate on a read-only descriptor: EBADF", errno.EBADF,
           lambda: libc.fallocate(ro, 0, 0, 4096))
    os.close(ro)

    # FIEMAP.
    os.pwrite(fd, b"z" * 8192, 0)

    def fiemap(start, length, flags, count=4):
        def go():
            buf = bytearray(struct.pack("=QQLLLL", start, length, flags, 0, count, 0))
            # Room for at most 4: a larger count must be refused unread.
            buf += bytes(56 * min(count, 4))
            fcntl.ioctl(fd, FS_IOC_FIEMAP, buf)
            return struct.unpack_from("=QQLLLL", buf)[3]
        return go

    expect("FIEMAP with FIEMAP_FLAG_XATTR: EBADR", errno.EBADR,
           fiemap(0, 1 << 20, FIEMAP_FLAG_XATTR))
    expect("FIEMAP with an unknown flag: EBADR", errno.EBADR, fiemap(0, 1 << 20, 0x80))
    expect("FIEMAP of length 0: EINVAL", errno.EINVAL, fiemap(0, 0, 0))
    expect("FIEMAP from the maximum file size: EFBIG", errno.EFBIG, fiemap(MAX_LFS, 4096, 0))
    expect("FIEMAP with too many extents asked for: EINVAL", errno.EINVAL,
           fiemap(0, 4096, 0, FIEMAP_MAX_EXTENTS + 1))
    result("FIEMAP whose end overflows is clamped: one extent",
           fiemap(4096, (1 << 64) - 1, FIEMAP_FLAG_SYNC)() == 1)
    result("FIEMAP past EOF: no extent", fiemap(1 << 30, 4096, 0)() == 0)

    # SEEK_DATA and SEEK_HOLE.
    size = os.fstat(fd).st_size
    for what, off, whence, want in [
        ("SEEK_DATA at EOF", size, SEEK_DATA, errno.ENXIO),
        ("SEEK_HOLE at EOF", size, SEEK_HOLE, errno.ENXIO),
        ("SEEK_DATA past EOF", 1 << 62, SEEK_DATA, errno.ENXIO),
        ("SEEK_HOLE past EOF", 1 << 62, SEEK_HOLE, errno.ENXIO),
        ("SEEK_DATA from -1", -1, SEEK_DATA, errno.ENXIO),
        ("an unknown whence", 0, 7, errno.EINVAL),
    ]:
        expect(f"{what}: {errno.errorcode[want]}", want,
               lambda: libc.lseek(fd, off, whence))
    expect("an ioctl emfs does not have: ENOTTY", errno.ENOTTY,
           lambda: fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8)))
    direct_io(path, fd)
    os.close(fd)

    # Names and directories.
    name255 = os.path.join(mnt, "n" * 255)
    name256 = os.path.join(mnt, "n" * 256)
    expect("a name of 255 bytes", 0, lambda: os.close(os.open(name255, os.O_CREAT | os.O_WRONLY)))
    expect("a name of 256 bytes: ENAMETOOLONG", errno.ENAMETOOLONG,
           lambda: os.open(name256, os.O_CREAT | os.O_WRONLY))
    expect("mkdir of 256 bytes: ENAMETOOLONG", errno.ENAMETOOLONG, lambda: os.mkdir(name256))
    expect("rename to 256 bytes: ENAMETOOLONG", errno.ENAMETOOLONG,
           lambda: os.rename(name255, name256))
    os.unlink(name255)
    d, full = os.path.join(mnt, "d"), os.path.join(mnt, "full")
    os.mkdir(d)
    os.mkdir(full)
    open(os.path.join(full, "x"), "w").close()
    expect("open a directory for writing: EISDIR", errno.EISDIR, lambda: os.open(d, os.O_WRONLY))
    expect("open a directory read-write: EISDIR", errno.EISDIR, lambda: os.open(d, os.O_RDWR))
    dfd = os.open(d, os.O_RDONLY)
    expect("write to a directory: EBADF", errno.EBADF, lambda: os.write(dfd, b"x"))
    expect("read a directory: EISDIR", errno.EISDIR, lambda: os.read(dfd, 10))
    os.close(dfd)
    expect("truncate a directory: EISDIR", errno.EISDIR, lambda: os.truncate(d, 0))
    expect("rename over a non-empty directory: ENOTEMPTY", errno.ENOTEMPTY,
           lambda: os.rename(d, full))
    expect("rename a directory over a file: ENOTDIR", errno.ENOTDIR,
           lambda: os.rename(d, os.path.join(full, "x")))
    expect("rename a file over a directory: EISDIR", errno.EISDIR,
           lambda: os.rename(os.path.join(full, "x"), d))
    expect("rename a directory into itself: EINVAL", errno.EINVAL,
           lambda: os.rename(full, os.path.join(full, "sub")))
    expect("rmdir of a non-empty directory: ENOTEMPTY", errno.ENOTEMPTY, lambda: os.rmdir(full))
    expect("unlink of a directory: EISDIR", errno.EISDIR, lambda: os.unlink(d))
    expect("hard link to a directory: EPERM", errno.EPERM,
           lambda: os.link(d, os.path.join(mnt, "dl")))

    # Symlinks, special files, hard links and rename flags.
    s = os.path.join(mnt, "s")
    longest = "t" * 4095
    expect("symlink of PATH_MAX - 1 bytes", 0, lambda: os.symlink(longest, s))
    result("readlink gives the target back", os.readlink(s) == longest)
    expect("symlink of PATH_MAX bytes: ENAMETOOLONG", errno.ENAMETOOLONG,
           lambda: os.symlink("t" * 4096, s + "2"))
    expect("symlink over an existing name: EEXIST", errno.EEXIST,
           lambda: os.symlink("x", s))
    os.unlink(s)
    p = os.path.join(mnt, "p")
    expect("mkfifo", 0, lambda: os.mkfifo(p))
    result("a FIFO is a FIFO", stat.S_ISFIFO(os.lstat(p).st_mode))
    expect("mknod of a character device", 0,
           lambda: os.mknod(p + "c", stat.S_IFCHR | 0o600, os.makedev(1, 3)))
    result("the device node has its numbers", os.lstat(p + "c").st_rdev == os.makedev(1, 3))
    expect("link to a FIFO", 0, lambda: os.link(p, p + "l"))
    result("a hard link counts", os.lstat(p).st_nlink == 2)
    for what, flags, src, dst, want in [
        ("RENAME_EXCHANGE | RENAME_NOREPLACE: EINVAL", RENAME_EXCHANGE | RENAME_NOREPLACE,
         p, p + "c", errno.EINVAL),
        ("RENAME_EXCHANGE | RENAME_WHITEOUT: EINVAL", RENAME_EXCHANGE | RENAME_WHITEOUT,
         p, p + "c", errno.EINVAL),
        ("an unknown rename flag: EINVAL", 1 << 7, p, p + "x", errno.EINVAL),
        ("RENAME_NOREPLACE over a name: EEXIST", RENAME_NOREPLACE, p, p + "c", errno.EEXIST),
        ("RENAME_EXCHANGE with a missing target: ENOENT", RENAME_EXCHANGE,
         p, p + "x", errno.ENOENT),
        ("RENAME_EXCHANGE", RENAME_EXCHANGE, p, p + "c", 0),
    ]:
        expect(f"renameat2 {what}", want, lambda: libc.renameat2(
            AT_FDCWD, src.encode(), AT_FDCWD, dst.encode(), flags))
    result("RENAME_EXCHANGE swapped the two", stat.S_ISCHR(os.lstat(p).st_mode) and
           stat.S_ISFIFO(os.lstat(p + "c").st_mode))
    expect("renameat2 RENAME_WHITEOUT", 0, lambda: libc.renameat2(
        AT_FDCWD, p.encode(), AT_FDCWD, (p + "w").encode(), RENAME_WHITEOUT))
    st = os.lstat(p)
    result("RENAME_WHITEOUT left a whiteout", stat.S_ISCHR(st.st_mode) and st.st_rdev == 0)
    for n in ("", "c", "l", "w"):
        os.unlink(p + n)
    tfd = os.open(mnt, os.O_TMPFILE | os.O_RDWR, 0o600)
    os.write(tfd, b"tmp")
    result("an O_TMPFILE file has no link", os.fstat(tfd).st_nlink == 0)
    expect("linkat of an O_TMPFILE file", 0, lambda: libc.linkat(
        AT_FDCWD, f"/proc/self/fd/{tfd}".encode(), AT_FDCWD, p.encode(), AT_SYMLINK_FOLLOW))
    os.close(tfd)
    with open(p, "rb") as f:
        result("the linked O_TMPFILE file has its data", f.read() == b"tmp")
    os.unlink(p)

    # Extended attributes, and the space and inodes they take, on a disk
    # of 1 MiB (256 blocks).
    result("mount -o size=1M for the attribute cases",
           libc.mount(b"none", target, b"emfs", 0, b"size=1M") == 0)
    t = target.decode()
    x = os.path.join(t, "x")
    before = os.statvfs(t)
    open(x, "w").close()
    after = os.statvfs(t)
    result("statfs: one inode per block", before.f_files == 256)
    result("statfs: a new file takes an inode",
           after.f_ffree == before.f_ffree - 1, f"{before.f_ffree} -> {after.f_ffree}")
    # st_blocks counts what a file holds: dirty page cache (reserved),
    # written blocks, preallocated ones; not holes.
    with open(os.path.join(t, "sparse"), "wb") as f:
        f.seek(64 << 10)
        f.write(b"s" * 8192)
        result("st_blocks of a sparse file's dirty page cache",
               os.fstat(f.fileno()).st_blocks == 16, str(os.fstat(f.fileno()).st_blocks))
        f.flush()
        os.fsync(f.fileno())
        result("st_blocks of its written blocks", os.fstat(f.fileno()).st_blocks == 16)
        expect("fallocate 16 KiB past EOF, keeping the size", 0, lambda: libc.fallocate(
            f.fileno(), FALLOC_FL_KEEP_SIZE, 1 << 20, 16384))
        result("st_blocks counts preallocated blocks", os.fstat(f.fileno()).st_blocks == 48)
    os.unlink(os.path.join(t, "sparse"))
    btime = int(subprocess.run(["stat", "-c", "%W", x], capture_output=True,
                               text=True).stdout or 0)
    result("a file has a creation time (statx btime)",
           abs(btime - os.stat(x).st_ctime) < 60, f"btime {btime}")
    # Multigrain timestamps: a change after the ctime was read shows,
    # however soon it follows (a coarse clock ticks every few ms).
    same = 0
    for i in range(50):
        ctime = os.stat(x).st_ctime_ns
        os.chmod(x, 0o600 if i % 2 else 0o644)
        same += os.stat(x).st_ctime_ns <= ctime
    result("50 chmods in a row, each seen in ctime", same == 0, f"{same} not seen")
    expect("setxattr user.a", 0, lambda: os.setxattr(x, "user.a", b"1" * 3000))
    expect("setxattr trusted.b", 0, lambda: os.setxattr(x, "trusted.b", b""))
    expect("setxattr security.c", 0, lambda: os.setxattr(x, "security.c", b"v"))
    result("getxattr gives the value back", os.getxattr(x, "user.a") == b"1" * 3000)
    result("listxattr lists them", sorted(os.listxattr(x)) == ["security.c", "trusted.b", "user.a"])
    result("an attribute takes a block", os.statvfs(t).f_bfree == after.f_bfree - 1)
    expect("XATTR_CREATE of one that exists: EEXIST", errno.EEXIST,
           lambda: os.setxattr(x, "user.a", b"2", os.XATTR_CREATE))
    expect("XATTR_REPLACE of one that does not: ENODATA", errno.ENODATA,
           lambda: os.setxattr(x, "user.z", b"2", os.XATTR_REPLACE))
    expect("getxattr of a missing one: ENODATA", errno.ENODATA,
           lambda: os.getxattr(x, "user.z"))
    expect("an unknown namespace: EOPNOTSUPP", errno.EOPNOTSUPP,
           lambda: os.setxattr(x, "bogus.a", b"1"))
    expect("a name of 256 bytes: ERANGE", errno.ERANGE,
           lambda: os.setxattr(x, "user." + "n" * 251, b"1"))
    expect("a value over 64 KiB: E2BIG", errno.E2BIG,
           lambda: os.setxattr(x, "user.big", b"v" * 65537))
    xfd = os.open(x, os.O_RDWR)
    expect("fallocate of the rest of the disk", 0, lambda: libc.fallocate(
        xfd, 0, 0, os.statvfs(t).f_bavail * 4096))
    os.close(xfd)
    expect("setxattr on a full disk: ENOSPC", errno.ENOSPC,
           lambda: os.setxattr(x, "user.d", b"d" * 4096))
    expect("a long symlink on a full disk: ENOSPC", errno.ENOSPC,
           lambda: os.symlink("l" * 200, os.path.join(t, "l")))
    expect("  but a short one needs no block", 0,
           lambda: os.symlink("s" * 127, os.path.join(t, "l")))
    os.unlink(os.path.join(t, "l"))
    # POSIX ACLs take space as the attributes of their names would: one
    # of 600 named users is more than the block the others fill.
    mode = os.stat(x).st_mode
    expect("an ACL on a full disk: ENOSPC", errno.ENOSPC,
           lambda: os.setxattr(x, ACL_ACCESS, acl(range(1000, 1600))))
    expect("  and the file has none", errno.ENODATA, lambda: os.getxattr(x, ACL_ACCESS))
    result("  and its mode did not change", os.stat(x).st_mode == mode)
    expect("an ACL of an unknown version: EOPNOTSUPP", errno.EOPNOTSUPP,
           lambda: os.setxattr(x, ACL_ACCESS, b"not an ACL"))
    expect("an ACL cut inside an entry: EINVAL", errno.EINVAL,
           lambda: os.setxattr(x, ACL_ACCESS, acl([7])[:-3]))
    expect("an ACL with a named user and no mask: EINVAL", errno.EINVAL,
           lambda: os.setxattr(x, ACL_ACCESS, acl_value([
               (0x01, 6, NO_ID), (0x02, 6, 7), (0x04, 4, NO_ID), (0x20, 0, NO_ID)])))
    expect("a default ACL on a file: EACCES", errno.EACCES,
           lambda: os.setxattr(x, ACL_DEFAULT, acl([7])))
    expect("removexattr", 0, lambda: os.removexattr(x, "user.a"))
    expect("removexattr of a missing one: ENODATA", errno.ENODATA,
           lambda: os.removexattr(x, "user.a"))
    os.removexattr(x, "trusted.b")
    os.removexattr(x, "security.c")
    result("the attributes' block is free again once all are removed",
           os.statvfs(t).f_bfree == 1)
    expect("an ACL for user 7", 0, lambda: os.setxattr(x, ACL_ACCESS, acl([7])))
    result("  takes the block", os.statvfs(t).f_bfree == 0)
    result("  is read back as written", os.getxattr(x, ACL_ACCESS) == acl([7]))
    result("  is listed", os.listxattr(x) == [ACL_ACCESS], str(os.listxattr(x)))
    result("  sets the group bits to its mask", stat.S_IMODE(os.stat(x).st_mode) & 0o070 == 0o060,
           oct(os.stat(x).st_mode))
    expect("chmod 600", 0, lambda: os.chmod(x, 0o600))
    result("  sets the ACL's mask", os.getxattr(x, ACL_ACCESS) == acl([7], mask=0))
    expect("removexattr of the ACL", 0, lambda: os.removexattr(x, ACL_ACCESS))
    result("  gives the block back", os.statvfs(t).f_bfree == 1)
    result("  and lists nothing", os.listxattr(x) == [])
    # chmod replaces the ACL by one of its size: no more space.
    users = range(1000, 1300)
    expect("an ACL of 300 users", 0, lambda: os.setxattr(x, ACL_ACCESS, acl(users)))
    result("  takes the last block", os.statvfs(t).f_bfree == 0)
    expect("  chmod 640 of it with the disk full", 0, lambda: os.chmod(x, 0o640))
    result("  sets its mask", os.getxattr(x, ACL_ACCESS) == acl(users, mask=4))
    os.removexattr(x, ACL_ACCESS)
    os.unlink(x)
    result("all blocks and inodes back", os.statvfs(t).f_bfree == 256 and
           os.statvfs(t).f_ffree == 255, str(os.statvfs(t)))
    # Symlink targets of up to 128 bytes with their NUL are kept with the
    # inode; longer ones in the page cache, a page charged as a block.
    long_link, short_link = os.path.join(t, "long"), os.path.join(t, "short")
    expect("a symlink of 128 bytes", 0, lambda: os.symlink("l" * 128, long_link))
    result("  takes a block (its target is in the page cache)",
           os.statvfs(t).f_bfree == 255, str(os.statvfs(t).f_bfree))
    expect("a symlink of 127 bytes", 0, lambda: os.symlink("s" * 127, short_link))
    result("  takes none (its target is kept with the inode)", os.statvfs(t).f_bfree == 255)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")
    result("both read back whole after the caches were dropped",
           os.readlink(long_link) == "l" * 128 and os.readlink(short_link) == "s" * 127)
    os.unlink(long_link)
    os.unlink(short_link)
    result("  and removed, give the block back", os.statvfs(t).f_bfree == 256)
    # A target's page is clean: removing 300 of them must not take them
    # off the dirty page counters (which vmstat_refresh reports when they
    # go negative).
    for i in range(300):
        os.symlink("l" * 200, long_link)
        os.unlink(long_link)
    kmsg.read()
    with open("/proc/sys/vm/stat_refresh", "w") as f:
        f.write("1")
    refresh = [ln for ln in kmsg.read().splitlines() if "vmstat_refresh:" in ln]
    result("300 long symlinks made and removed leave the dirty page counters",
           not any("dirty" in ln for ln in refresh), "; ".join(refresh))
    names = [os.path.join(t, f"i{i}") for i in range(255)]
    for n in names:
        open(n, "w").close()
    expect("a file past the inode count: ENOSPC", errno.ENOSPC,
           lambda: os.mknod(os.path.join(t, "one-more")))
    for n in names:
        os.unlink(n)
    expect("a file once inodes are free again", 0,
           lambda: os.mknod(os.path.join(t, "one-more")))
    os.unlink(os.path.join(t, "one-more"))
    libc.umount2(target, 0)
    os.unlink(os.path.join(full, "x"))
    os.rmdir(full)
    os.rmdir(d)
    os.unlink(path)

    # Files that take no writes, and the module's knobs given garbage.
    def write(p, data):
        def go():
            wfd = os.open(p, os.O_WRONLY)
            try:
                return os.write(wfd, data)
            finally:
                os.close(wfd)
        return go

    expect("write to /proc/fs/emfs/<id>/stats: EIO", errno.EIO,
           write(f"/proc/fs/emfs/{owner}/stats", b"0\n"))
    expect("open /proc/fs/emfs for writing: EISDIR", errno.EISDIR,
           lambda: os.open("/proc/fs/emfs", os.O_WRONLY))
    dbg = "/sys/kernel/debug/emfs"
    for f in ("live", "check"):
        expect(f"write to debugfs {f}: EINVAL", errno.EINVAL, write(f"{dbg}/{f}", b"1\n"))
    for knob, data, log in [
        ("bench", b"abc", "bench: expected up to 8 numbers"),
        ("bench", b"1 2 3 4 5 6 7 8 9", "bench: expected up to 8 numbers"),
        ("bench", b"-5", "bench: expected"),
        ("bench", b"99999999999999999999", "bench: expected"),
        ("bench", b"0", "out of range"),
        ("bench", b"4000001", "out of range"),
        ("bench", b"\xff\xfe", "bench: expected"),
        ("bench", b"1" * 200, None),
        ("bench_shrinker", b"x y", "bench_shrinker: expected"),
        ("bench_shrinker", b"1", "out of range"),
        ("bench_shrinker", b"4000001", "out of range"),
        ("synthetic", b"abc", "synthetic: expected"),
        ("synthetic", b"1", "synthetic: expected"),
        ("synthetic", b"1 2 3", "synthetic: expected"),
        ("synthetic", b"-1 5", "synthetic: expected"),
        ("synthetic", b"100000000 100000000", "synthetic: expected"),
        ("synthetic", b"1" * 100, None),
    ]:
        shown = data[:24].decode(errors="replace")
        expect(f"debugfs {knob} given {shown!r}: EINVAL", errno.EINVAL,
               write(f"{dbg}/{knob}", data), log)

    print(f"bad input: {cases} cases, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
