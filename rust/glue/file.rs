// SPDX-License-Identifier: GPL-2.0

//! The data path of a filesystem's regular files: their
//! `file_operations`, `address_space_operations` and
//! `vm_operations_struct`, built on iomap (rust/glue/iomap.rs) as XFS
//! builds its own, with what only the filesystem knows asked of it through
//! [`IomapOperations`], [`FileOperations`] and [`InodeOperations`].
//!
//! Adding an operation: give the trait a method (optional ones with a
//! default body, reported by `#[vtable]` as `HAS_*`), write its entry point
//! here as an `unsafe extern "C" fn` generic over the filesystem, and put
//! it in the table; the filesystem implements the method.
//!
//! # Lock order
//!
//! `i_rwsem`, then the invalidate lock, then folio locks, then the
//! filesystem's own locks. Page faults take the invalidate lock shared,
//! then the folio lock. Writeback takes folio locks, then the
//! filesystem's; its completion, on the endio workqueue, only the
//! filesystem's.

use core::marker::PhantomData;
use kernel::{
    bindings,
    error::to_result,
    ffi::{
        c_int,
        c_long, //
    },
    prelude::*,
};

use crate::glue::{
    ffi,
    iomap::{
        self,
        IomapOperations, //
    },
    vfs::{
        block_size,
        sb_inode,
        FileOperations,
        FileSystem,
        InodeOperations,
        VfsTables, //
    },
};

/// The operation tables of `T`'s regular files.
pub(crate) struct FileTables<T>(PhantomData<T>);

impl<T: VfsTables + IomapOperations + FileOperations> FileTables<T> {
    /// `file_operations`: reads from the page cache (`filemap`), writes,
    /// `fallocate`, `fsync`, `SEEK_DATA`/`SEEK_HOLE` and `mmap` through
    /// iomap and `T`.
    pub(crate) const FILE_OPS: bindings::file_operations = bindings::file_operations {
        open: if T::HAS_DIRECT_READ {
            Some(open::<T>)
        } else {
            Some(bindings::generic_file_open)
        },
        llseek: Some(llseek::<T>),
        read_iter: Some(read_iter::<T>),
        write_iter: Some(write_iter::<T>),
        mmap_prepare: Some(mmap_prepare::<T>),
        fsync: Some(fsync::<T>),
        fallocate: Some(fallocate::<T>),
        splice_read: Some(bindings::filemap_splice_read),
        splice_write: Some(bindings::iter_file_splice_write),
        // SAFETY: The other operations are optional: NULL is valid.
        ..unsafe { core::mem::zeroed() }
    };

    /// `address_space_operations`: iomap's, with reads and writeback
    /// through `T`.
    pub(crate) const AOPS: bindings::address_space_operations =
        bindings::address_space_operations {
            read_folio: Some(read_folio::<T>),
            readahead: Some(readahead::<T>),
            writepages: Some(writepages::<T>),
            dirty_folio: Some(ffi::iomap_dirty_folio),
            invalidate_folio: Some(ffi::iomap_invalidate_folio),
            release_folio: Some(ffi::iomap_release_folio),
            is_partially_uptodate: Some(ffi::iomap_is_partially_uptodate),
            error_remove_folio: Some(bindings::generic_error_remove_folio),
            // SAFETY: The other operations are optional: NULL is valid.
            ..unsafe { core::mem::zeroed() }
        };

    /// `vm_operations_struct` of a mapped file: faults from the page
    /// cache; a write fault reserves space and dirties the folio.
    const VM_OPS: bindings::vm_operations_struct = bindings::vm_operations_struct {
        fault: Some(bindings::filemap_fault),
        map_pages: Some(bindings::filemap_map_pages),
        page_mkwrite: Some(page_mkwrite::<T>),
        // SAFETY: The other operations are optional: NULL is valid.
        ..unsafe { core::mem::zeroed() }
    };
}

/// `read_folio`.
///
/// # Safety
///
/// Called by the VFS with a locked folio, not uptodate, of a regular file
/// of a mounted superblock of `T`.
unsafe extern "C" fn read_folio<T: VfsTables + IomapOperations>(
    _file: *mut bindings::file,
    folio: *mut bindings::folio,
) -> c_int {
    // SAFETY: As the caller promises.
    unsafe { iomap::read_folio::<T>(folio) }
}

/// `readahead`.
///
/// # Safety
///
/// Called by the VFS with a readahead request of a regular file of a
/// mounted superblock of `T`.
unsafe extern "C" fn readahead<T: VfsTables + IomapOperations>(
    rac: *mut bindings::readahead_control,
) {
    // SAFETY: As the caller promises.
    unsafe { iomap::readahead::<T>(rac) }
}

/// `writepages`.
///
/// # Safety
///
/// Called by the VFS with the page cache of a regular file of a mounted
/// superblock of `T` and a writeback request.
unsafe extern "C" fn writepages<T: VfsTables + IomapOperations>(
    mapping: *mut bindings::address_space,
    wbc: *mut bindings::writeback_control,
) -> c_int {
    // SAFETY: As the caller promises.
    unsafe { iomap::writepages::<T>(mapping, wbc) }
}

/// `llseek`: `SEEK_DATA` and `SEEK_HOLE` on iomap.
///
/// # Safety
///
/// Called by the VFS with an open regular file of a mounted superblock of
/// `T`.
unsafe extern "C" fn llseek<T: VfsTables + IomapOperations>(
    file: *mut bindings::file,
    offset: bindings::loff_t,
    whence: c_int,
) -> bindings::loff_t {
    // SAFETY: As the caller promises.
    unsafe { iomap::llseek::<T>(file, offset, whence) }
}

/// `write_iter`: under `i_rwsem`, checked and prepared
/// ([`prepare_write`]), then copied in by iomap, or with `O_DIRECT`
/// written to storage through `T` ([`direct_write`]); synced afterwards
/// if the file asks for it.
///
/// # Safety
///
/// Called by the VFS with a write to an open regular file of a mounted
/// superblock of `T`.
unsafe extern "C" fn write_iter<T: VfsTables + IomapOperations + FileOperations>(
    iocb: *mut bindings::kiocb,
    from: *mut bindings::iov_iter,
) -> isize {
    // SAFETY: As the caller promises, the file is open: its inode is valid.
    let (inode, direct) = unsafe {
        (
            (*(*iocb).ki_filp).f_inode,
            T::HAS_DIRECT_READ && (*iocb).ki_flags & bindings::IOCB_DIRECT as c_int != 0,
        )
    };
    // SAFETY: Taken here, released below.
    unsafe { ffi::emfs_inode_lock(inode) };
    // SAFETY: `i_rwsem` is held, as these require.
    let ret = (|| unsafe {
        let count = prepare_write::<T>(iocb, from, direct)?;
        if count == 0 {
            Ok(0)
        } else if direct {
            direct_write::<T>(iocb, from, count)
        } else {
            let n = iomap::buffered_write::<T>(iocb, from);
            to_result(n.min(0) as c_int).map(|()| n as u64)
        }
    })();
    // SAFETY: Taken above.
    unsafe { ffi::emfs_inode_unlock(inode) };
    match ret {
        // SAFETY: `iocb` is the caller's, and `n` bytes were written.
        Ok(n) if n > 0 => unsafe { ffi::emfs_generic_write_sync(iocb, n as isize) },
        Ok(_) => 0,
        Err(e) => e.to_errno() as isize,
    }
}

/// What every write does first, under `i_rwsem`: the checks of
/// `generic_write_checks()` (and, for `O_DIRECT`, its alignment,
/// [`direct_checks`]), the times (`file_modified()`), and the bytes
/// between EOF and the write zeroed. The bytes to write; 0 for none.
///
/// # Safety
///
/// `iocb` and `from` are a write to a regular file of a mounted
/// superblock of `T`, whose `i_rwsem` the caller holds.
unsafe fn prepare_write<T: VfsTables + IomapOperations>(
    iocb: *mut bindings::kiocb,
    from: *mut bindings::iov_iter,
    direct: bool,
) -> Result<u64> {
    // SAFETY: As the caller promises.
    unsafe {
        let count = bindings::generic_write_checks(iocb, from);
        if count <= 0 {
            return to_result(count as c_int).map(|()| 0);
        }
        let (file, pos) = ((*iocb).ki_filp, (*iocb).ki_pos as u64);
        if direct {
            direct_checks::<T>(from, pos, count as u64)?;
        }
        to_result(bindings::file_modified(file))?;
        let inode = (*file).f_inode;
        let size = ffi::emfs_i_size_read(inode) as u64;
        if pos > size {
            // The bytes between EOF and the write must read as zeroes.
            ffi::emfs_filemap_invalidate_lock((*inode).i_mapping);
            let zeroed = grow::<T>(inode, size, pos);
            ffi::emfs_filemap_invalidate_unlock((*inode).i_mapping);
            zeroed?;
        }
        Ok(count as u64)
    }
}

/// `open`: `generic_file_open()`, and `O_DIRECT` allowed.
///
/// # Safety
///
/// Called by the VFS with a regular file of a mounted superblock of `T`
/// being opened.
unsafe extern "C" fn open<T: VfsTables + FileOperations>(
    inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: As the caller promises; `f_mode` is the opener's to set.
    unsafe {
        (*file).f_mode |= ffi::EMFS_FMODE_CAN_ODIRECT;
        bindings::generic_file_open(inode, file)
    }
}

/// `read_iter`: from the page cache (`generic_file_read_iter()`), or, with
/// `O_DIRECT`, from storage through `T` ([`direct_read`]).
///
/// # Safety
///
/// Called by the VFS with a read of an open regular file of a mounted
/// superblock of `T`.
unsafe extern "C" fn read_iter<T: VfsTables + FileOperations>(
    iocb: *mut bindings::kiocb,
    to: *mut bindings::iov_iter,
) -> isize {
    // SAFETY: As the caller promises.
    unsafe {
        if T::HAS_DIRECT_READ && (*iocb).ki_flags & bindings::IOCB_DIRECT as c_int != 0 {
            direct_read::<T>(iocb, to)
        } else {
            bindings::generic_file_read_iter(iocb, to)
        }
    }
}

/// The most bytes one step of a direct read or write copies through
/// memory of its own: storage is reached through `T`, not by DMA to the
/// caller's pages.
const DIRECT_CHUNK: usize = 256 << 10;

/// Checks an `O_DIRECT` request of `count` bytes at `pos`: `EINVAL` unless
/// the offset and the length are whole blocks and the memory is aligned
/// to 512 bytes (a disk's logical block size), as block filesystems
/// require. (`IOCB_NOWAIT` never comes: files have no `FMODE_NOWAIT`.)
///
/// # Safety
///
/// `iter` is a request the VFS passed to `T`.
unsafe fn direct_checks<T: FileSystem>(
    iter: *mut bindings::iov_iter,
    pos: u64,
    count: u64,
) -> Result {
    let block = block_size::<T>();
    // SAFETY: As the caller promises.
    let misaligned = unsafe { bindings::iov_iter_alignment(iter) } & 511 != 0;
    if pos % block != 0 || count % block != 0 || misaligned {
        return Err(EINVAL);
    }
    Ok(())
}

/// An `O_DIRECT` read (`IOCB_DIRECT`): under `i_rwsem` shared, the page
/// cache of the range written back (its data is then on storage), then
/// read from storage by `T::direct_read` a chunk at a time and copied to
/// the caller; short at EOF. Bytes read, or an error if none were.
///
/// # Safety
///
/// Called from [`read_iter`] with its arguments.
unsafe fn direct_read<T: VfsTables + FileOperations>(
    iocb: *mut bindings::kiocb,
    to: *mut bindings::iov_iter,
) -> isize {
    // SAFETY: As the caller promises, the file is open.
    let (file, inode, pos, count) = unsafe {
        let file = (*iocb).ki_filp;
        (
            file,
            (*file).f_inode,
            (*iocb).ki_pos as u64,
            ffi::emfs_iov_iter_count(to) as u64,
        )
    };
    if count == 0 {
        return 0;
    }
    // SAFETY: As the caller promises.
    if let Err(e) = unsafe { direct_checks::<T>(to, pos, count) } {
        return e.to_errno() as isize;
    }
    // SAFETY: Taken here, released below.
    unsafe { ffi::emfs_inode_lock_shared(inode) };
    // SAFETY: `i_rwsem` is held; the file is open.
    let ret = (|| unsafe {
        let size = ffi::emfs_i_size_read(inode) as u64;
        if pos >= size {
            return Ok(0);
        }
        let end = (pos + count).min(size);
        to_result(bindings::filemap_write_and_wait_range(
            (*inode).i_mapping,
            pos as i64,
            end as i64 - 1,
        ))?;
        let (data, fi) = sb_inode::<T>(inode)?;
        let block = block_size::<T>();
        let mut buf = KVVec::from_elem(0u8, DIRECT_CHUNK.min(count as usize), GFP_KERNEL)?;
        let mut done = 0u64;
        while pos + done < end {
            let want = (end - pos - done).min(buf.len() as u64);
            let n = want.next_multiple_of(block) as usize;
            if let Err(e) = T::direct_read(data, fi, pos + done, size, &mut buf[..n]) {
                return if done > 0 { Ok(done) } else { Err(e) };
            }
            let copied = bindings::_copy_to_iter(buf.as_ptr().cast(), want as usize, to) as u64;
            done += copied;
            if copied < want {
                return if done > 0 { Ok(done) } else { Err(EFAULT) };
            }
        }
        Ok(done)
    })();
    // SAFETY: Taken above; `iocb` is the caller's.
    unsafe {
        ffi::emfs_inode_unlock_shared(inode);
        if let Ok(done) = ret {
            (*iocb).ki_pos += done as i64;
            ffi::emfs_file_accessed(file);
        }
    }
    match ret {
        Ok(done) => done as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// An `O_DIRECT` write (`IOCB_DIRECT`) of `count` bytes, prepared
/// ([`prepare_write`]) under `i_rwsem`: copied from the caller a chunk at
/// a time and, under the invalidate lock, the chunk's page cache written
/// back and dropped and the chunk written by `T::direct_write`; the size
/// raised after. Bytes written, or an error if none were; what the
/// caller's iterator passed over and was not written is given back to it.
///
/// # Safety
///
/// Called from [`write_iter`] with its arguments, `i_rwsem` held.
unsafe fn direct_write<T: VfsTables + FileOperations>(
    iocb: *mut bindings::kiocb,
    from: *mut bindings::iov_iter,
    count: u64,
) -> Result<u64> {
    // SAFETY: As the caller promises, the file is open and `i_rwsem` held.
    unsafe {
        let inode = (*(*iocb).ki_filp).f_inode;
        let (pos, mapping) = ((*iocb).ki_pos as u64, (*inode).i_mapping);
        let (data, fi) = sb_inode::<T>(inode)?;
        let block = block_size::<T>();
        let shift = kernel::page::PAGE_SHIFT;
        let mut buf = KVVec::from_elem(0u8, DIRECT_CHUNK.min(count as usize), GFP_KERNEL)?;
        let mut done = 0u64;
        let mut err = None;
        while done < count {
            // Copied first, outside the lock: a fault on a mapping of
            // this file takes it.
            let want = (count - done).min(buf.len() as u64) as usize;
            let copied = bindings::_copy_from_iter(buf.as_mut_ptr().cast(), want, from);
            // Whole blocks only: a fault part way writes what came before.
            let n = copied as u64 / block * block;
            bindings::iov_iter_revert(from, copied - n as usize);
            if n > 0 {
                let (start, end) = (pos + done, pos + done + n);
                // The write replaces the range's blocks and frees them.
                // Under the invalidate lock, exclusive, no page of the
                // range is read in from them meanwhile (reads, readahead
                // and faults take it shared): its page cache is written
                // back and dropped inside it, as a hole punch does.
                ffi::emfs_filemap_invalidate_lock(mapping);
                let ret = to_result(bindings::filemap_write_and_wait_range(
                    mapping,
                    start as i64,
                    end as i64 - 1,
                ))
                .and_then(|()| {
                    to_result(bindings::invalidate_inode_pages2_range(
                        mapping,
                        (start >> shift) as kernel::ffi::c_ulong,
                        ((end - 1) >> shift) as kernel::ffi::c_ulong,
                    ))
                })
                .and_then(|()| T::direct_write(data, fi, start, &buf[..n as usize]));
                ffi::emfs_filemap_invalidate_unlock(mapping);
                if let Err(e) = ret {
                    bindings::iov_iter_revert(from, n as usize);
                    err = Some(e);
                    break;
                }
                done += n;
            }
            if copied < want {
                err = Some(EFAULT);
                break;
            }
        }
        if done > 0 {
            if pos + done > ffi::emfs_i_size_read(inode) as u64 {
                ffi::emfs_i_size_write(inode, (pos + done) as i64);
            }
            (*iocb).ki_pos += done as i64;
            return Ok(done);
        }
        Err(err.unwrap_or(EFAULT))
    }
}

/// `mmap_prepare`: faults go through [`FileTables::VM_OPS`].
///
/// # Safety
///
/// Called by the VFS with the description of a new mapping of an open
/// regular file of a mounted superblock of `T`.
unsafe extern "C" fn mmap_prepare<T: VfsTables + IomapOperations + FileOperations>(
    desc: *mut bindings::vm_area_desc,
) -> c_int {
    // SAFETY: As the caller promises, `desc` is valid and its file open.
    unsafe {
        ffi::emfs_file_accessed((*desc).file);
        (*desc).vm_ops = &FileTables::<T>::VM_OPS;
    }
    0
}

/// `page_mkwrite`: under the superblock's page fault freeze protection and
/// the invalidate lock (shared), as XFS does, so that truncation and hole
/// punching, which take it exclusively, never see a folio dirtied past
/// them.
///
/// # Safety
///
/// Called by the VFS for a write fault on a shared mapping of a regular
/// file of a mounted superblock of `T`.
unsafe extern "C" fn page_mkwrite<T: VfsTables + IomapOperations>(
    vmf: *mut bindings::vm_fault,
) -> bindings::vm_fault_t {
    // SAFETY: As the caller promises, the mapping's file is open; the locks
    // are released below, in reverse order.
    unsafe {
        let file = (*(*vmf).__bindgen_anon_1.vma).vm_file;
        let inode = (*file).f_inode;
        let sb = (*inode).i_sb;
        ffi::emfs_sb_start_pagefault(sb);
        bindings::file_update_time(file);
        ffi::emfs_filemap_invalidate_lock_shared((*inode).i_mapping);
        let ret = iomap::page_mkwrite::<T>(vmf);
        ffi::emfs_filemap_invalidate_unlock_shared((*inode).i_mapping);
        ffi::emfs_sb_end_pagefault(sb);
        ret
    }
}

/// `fsync`: the range is written back and its write back completed
/// (`file_write_and_wait_range()`), then `T::fsync`.
///
/// # Safety
///
/// Called by the VFS with an open regular file of a mounted superblock of
/// `T`.
unsafe extern "C" fn fsync<T: VfsTables + FileOperations>(
    file: *mut bindings::file,
    start: bindings::loff_t,
    end: bindings::loff_t,
    _datasync: c_int,
) -> c_int {
    // SAFETY: As the caller promises.
    let ret = unsafe { bindings::file_write_and_wait_range(file, start, end) };
    if ret != 0 {
        return ret;
    }
    // SAFETY: As the caller promises, the file is open.
    match unsafe { sb_inode::<T>((*file).f_inode) } {
        Ok((data, inode)) => errno(T::fsync(data, inode)),
        Err(e) => e.to_errno(),
    }
}

fn errno(r: Result) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `fallocate`: preallocation (mode 0, `FALLOC_FL_KEEP_SIZE`) and
/// `FALLOC_FL_PUNCH_HOLE`; other modes are refused with `EOPNOTSUPP`.
/// Under `i_rwsem` and the invalidate lock.
///
/// # Safety
///
/// Called by the VFS with an open regular file of a mounted superblock of
/// `T`, opened for writing.
unsafe extern "C" fn fallocate<T: VfsTables + IomapOperations + FileOperations>(
    file: *mut bindings::file,
    mode: c_int,
    offset: bindings::loff_t,
    len: bindings::loff_t,
) -> c_long {
    let mode = mode as u32;
    if mode & !(ffi::FALLOC_FL_KEEP_SIZE | ffi::FALLOC_FL_PUNCH_HOLE) != 0 {
        return EOPNOTSUPP.to_errno() as c_long;
    }
    // SAFETY: As the caller promises, the file is open.
    let inode = unsafe { (*file).f_inode };
    // SAFETY: As the caller promises.
    let (data, fi) = match unsafe { sb_inode::<T>(inode) } {
        Ok(d) => d,
        Err(e) => return e.to_errno() as c_long,
    };
    let (offset, end) = (offset as u64, (offset + len) as u64);
    // SAFETY: `inode` is valid; both locks are released below.
    let mapping = unsafe {
        ffi::emfs_inode_lock(inode);
        ffi::emfs_filemap_invalidate_lock((*inode).i_mapping);
        (*inode).i_mapping
    };
    // SAFETY: Both locks are held, as these require.
    let ret = (|| unsafe {
        let size = ffi::emfs_i_size_read(inode) as u64;
        if mode & ffi::FALLOC_FL_PUNCH_HOLE != 0 {
            // Nothing past EOF to punch.
            if offset < size {
                punch_hole::<T>(inode, offset, end.min(size))?;
            }
        } else {
            to_result(bindings::inode_newsize_ok(inode, end as i64))?;
            to_result(bindings::filemap_write_and_wait_range(
                mapping,
                offset as i64,
                end as i64 - 1,
            ))?;
            let block = block_size::<T>();
            T::allocate(
                data,
                fi,
                offset / block * block,
                end.next_multiple_of(block),
            )?;
            if mode & ffi::FALLOC_FL_KEEP_SIZE == 0 && end > size {
                grow::<T>(inode, size, end)?;
                ffi::emfs_i_size_write(inode, end as i64);
            }
        }
        to_result(bindings::file_modified(file))
    })();
    // SAFETY: Taken above.
    unsafe {
        ffi::emfs_filemap_invalidate_unlock(mapping);
        ffi::emfs_inode_unlock(inode);
    }
    errno(ret) as c_long
}

/// Makes what lies between EOF at `old` and `new` read as zeroes, before
/// the file grows to `new`: the block at EOF may hold more, on disk or in
/// the page cache. The folio at EOF is written back first: a large folio
/// may have blocks past EOF marked dirty (by a write fault, which dirties
/// a whole folio but reserves only up to EOF, or left by a truncation
/// that could not split it), which must not come inside the file dirty
/// and without a reservation; writeback clears them.
///
/// # Safety
///
/// `inode` is a regular file of a mounted superblock of `T`, referenced,
/// with `i_rwsem` and the invalidate lock held exclusively.
unsafe fn grow<T: VfsTables + IomapOperations>(
    inode: *mut bindings::inode,
    old: u64,
    new: u64,
) -> Result {
    // SAFETY: As the caller promises.
    unsafe {
        to_result(bindings::filemap_write_and_wait_range(
            (*inode).i_mapping,
            old as i64,
            i64::MAX,
        ))?;
        iomap::zero_range::<T>(inode, old, new - old)
    }
}

/// Punches `[start, end)`, inside the file: the partial blocks at either
/// end are zeroed in the page cache, the whole blocks between dropped from
/// it (waiting for their writeback) and from the disk (`T::punch_hole`).
///
/// # Safety
///
/// `inode` is a regular file of a mounted superblock of `T`, referenced,
/// with `i_rwsem` and the invalidate lock held exclusively.
unsafe fn punch_hole<T: VfsTables + IomapOperations + FileOperations>(
    inode: *mut bindings::inode,
    start: u64,
    end: u64,
) -> Result {
    let block = block_size::<T>();
    let bstart = start.next_multiple_of(block);
    let bend = end / block * block;
    // SAFETY: As the caller promises.
    let (data, fi) = unsafe { sb_inode::<T>(inode)? };
    // SAFETY: As the caller promises: the locks are held.
    unsafe {
        to_result(bindings::filemap_write_and_wait_range(
            (*inode).i_mapping,
            start as i64,
            end as i64 - 1,
        ))?;
        iomap::zero_range::<T>(inode, start, end.min(bstart) - start)?;
        if bend >= bstart {
            iomap::zero_range::<T>(inode, bend, end - bend)?;
        }
        if bend <= bstart {
            return Ok(());
        }
        bindings::truncate_pagecache_range(inode, bstart as i64, bend as i64 - 1);
    }
    T::punch_hole(data, fi, bstart, bend)
}

/// Changes the size of a regular file (`setattr` with `ATTR_SIZE`), under
/// the invalidate lock: growing zeroes what lies past the old EOF in its
/// block, shrinking drops the page cache past the new EOF (waiting for its
/// writeback), then `T::truncate` the blocks past it.
///
/// # Safety
///
/// `inode` is a regular file of a mounted superblock of `T`, with
/// `i_rwsem` held exclusively.
pub(crate) unsafe fn setsize<T: VfsTables + IomapOperations + InodeOperations>(
    inode: *mut bindings::inode,
    size: u64,
) -> c_int {
    // SAFETY: As the caller promises.
    let (data, fi) = match unsafe { sb_inode::<T>(inode) } {
        Ok(d) => d,
        Err(e) => return e.to_errno(),
    };
    // SAFETY: As the caller promises, `inode` is valid; the lock is released
    // below.
    let old = unsafe {
        ffi::emfs_filemap_invalidate_lock((*inode).i_mapping);
        ffi::emfs_i_size_read(inode) as u64
    };
    // SAFETY: The invalidate lock and `i_rwsem` are held.
    let ret = unsafe {
        if size > old {
            grow::<T>(inode, old, size).inspect(|()| bindings::truncate_setsize(inode, size as i64))
        } else {
            bindings::truncate_setsize(inode, size as i64);
            T::truncate(data, fi, size)
        }
    };
    // SAFETY: Taken above.
    unsafe { ffi::emfs_filemap_invalidate_unlock((*inode).i_mapping) };
    errno(ret)
}
