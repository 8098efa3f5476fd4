// SPDX-License-Identifier: GPL-2.0

//! iomap: the kernel's library for a filesystem's page cache I/O
//! (fs/iomap/, Documentation/filesystems/iomap/), as used by XFS, ext2,
//! gfs2, zonefs and FUSE.
//!
//! A filesystem answers one question, [`IomapOperations::begin`]: what
//! lies at a file offset (a hole, an extent on disk, or an extent
//! allocated but never written), and for how long. iomap walks a range of
//! the file with it and does the page cache work itself: which blocks of a
//! folio need reading, zeroing holes and what lies past EOF, marking
//! folios uptodate and unlocking them.
//!
//! A filesystem without a block device reads its data itself
//! ([`IomapOperations::read_range`], `iomap_read_ops->read_folio_range`,
//! which FUSE uses too), synchronously, into the mapped folio.
//!
//! The operation tables are constants per filesystem type
//! ([`IomapTables`]); [`read_folio`] and [`readahead`] are the address
//! space operations built on them.

use core::marker::PhantomData;
use kernel::{bindings, ffi::c_int, prelude::*};

use crate::glue::{
    ffi,
    vfs::{
        FileSystem,
        Mapping, //
    },
};

/// What lies at a file offset, as [`IomapOperations::begin`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IomapType {
    /// No blocks: reads as zeroes (`IOMAP_HOLE`).
    Hole,
    /// Blocks allocated from disk address `addr` but never written: reads
    /// as zeroes (`IOMAP_UNWRITTEN`).
    Unwritten {
        /// The disk address of the mapping's first byte.
        addr: u64,
    },
    /// Data in the page cache with no blocks yet, space reserved
    /// (`IOMAP_DELALLOC`): what FIEMAP and `SEEK_DATA` report of dirty
    /// page cache not written back.
    Delalloc,
    /// Data on disk from byte `addr` of the device (`IOMAP_MAPPED`).
    Mapped {
        /// The disk address of the mapping's first byte.
        addr: u64,
    },
}

/// One mapping of a file range (`struct iomap`): `length` bytes from file
/// offset `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Iomap {
    /// File offset of the mapping's first byte.
    pub(crate) offset: u64,
    /// Length in bytes; not zero.
    pub(crate) length: u64,
    /// What the range holds.
    pub(crate) type_: IomapType,
}

impl Iomap {
    /// The mapping from file offset `from` on, which must lie inside it.
    pub(crate) fn from(self, from: u64) -> Self {
        let skip = from - self.offset;
        let type_ = match self.type_ {
            IomapType::Mapped { addr } => IomapType::Mapped { addr: addr + skip },
            IomapType::Unwritten { addr } => IomapType::Unwritten { addr: addr + skip },
            t => t,
        };
        Self {
            offset: from,
            length: self.length - skip,
            type_,
        }
    }

    /// `self` ending at file offset `end` at the latest.
    pub(crate) fn until(self, end: u64) -> Self {
        Self {
            length: self.length.min(end.saturating_sub(self.offset)),
            ..self
        }
    }

    /// `self` as iomap can take it: ending at `LLONG_MAX` at the latest,
    /// since a hole to the end of the file space would overflow iomap's
    /// arithmetic (file offsets are `loff_t`).
    fn clamped(self) -> Self {
        self.until(i64::MAX as u64)
    }
}

/// What iomap asks a mapping for (`IOMAP_*` flags of `iomap_begin`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct IomapFlags(u32);

impl IomapFlags {
    /// A read (no flag set), or a report.
    pub(crate) fn is_read(self) -> bool {
        self.0 & (ffi::IOMAP_WRITE | ffi::IOMAP_ZERO) == 0
    }

    /// Reporting extents (FIEMAP, `SEEK_DATA`/`SEEK_HOLE`): dirty page
    /// cache counts, as [`IomapType::Delalloc`].
    pub(crate) fn is_report(self) -> bool {
        self.0 & ffi::IOMAP_REPORT != 0
    }
}

/// What iomap asks of a filesystem `T` for its regular files: the
/// `iomap_ops` and `iomap_read_ops` it builds the page cache I/O on.
#[vtable]
pub(crate) trait IomapOperations: FileSystem {
    /// Maps file offset `pos` of a file of `size` bytes (`iomap_begin`):
    /// the mapping must contain `pos`, and may start before it and end
    /// before `pos + len` (iomap then asks again from its end) or after
    /// it. `cache` is the file's page cache, whose dirty folios a report
    /// ([`IomapFlags::is_report`]) shows as [`IomapType::Delalloc`].
    fn begin(
        data: &Self::Data,
        inode: &Self::InodeData,
        pos: u64,
        len: u64,
        flags: IomapFlags,
        size: u64,
        cache: &Mapping<'_>,
    ) -> Result<Iomap>;

    /// Fills `dst` with the data at disk address `addr`
    /// (`read_folio_range`, for a [`IomapType::Mapped`] range). Bytes past
    /// EOF are not asked for: they are zeroed by the caller.
    fn read_range(data: &Self::Data, inode: &Self::InodeData, addr: u64, dst: &mut [u8]) -> Result;
}

/// The iomap operation tables of filesystem `T`.
pub(crate) struct IomapTables<T>(PhantomData<T>);

impl<T: IomapOperations> IomapTables<T> {
    /// `iomap_ops`: mappings come from `T::begin`; there is nothing to
    /// finish after a read, so no `iomap_end`.
    pub(crate) const OPS: ffi::iomap_ops = ffi::iomap_ops {
        iomap_begin: Some(iomap_begin::<T>),
        iomap_end: None,
        iomap_next: None,
    };

    /// `iomap_read_ops`: synchronous reads through `T::read_range`.
    pub(crate) const READ_OPS: ffi::iomap_read_ops = ffi::iomap_read_ops {
        read_folio_range: Some(read_folio_range::<T>),
        submit_read: None,
        bio_set: core::ptr::null_mut(),
    };
}

/// What `T` keeps for the file `inode` and its superblock.
///
/// # Safety
///
/// `inode` is a published regular file of a mounted superblock of `T`,
/// referenced for `'a`.
unsafe fn file_data<'a, T: FileSystem>(
    inode: *mut bindings::inode,
) -> Result<(&'a T::Data, &'a T::InodeData)> {
    // SAFETY: As the caller promises.
    unsafe { crate::glue::vfs::sb_inode::<T>(inode) }
}

/// `iomap_ops->iomap_begin`.
///
/// # Safety
///
/// Called by iomap for a regular file of a mounted superblock of `T`, which
/// it holds referenced, with `iomap` valid for writes.
unsafe extern "C" fn iomap_begin<T: IomapOperations>(
    inode: *mut bindings::inode,
    pos: i64,
    length: i64,
    flags: u32,
    iomap: *mut ffi::iomap,
    _srcmap: *mut ffi::iomap,
) -> c_int {
    // SAFETY: `inode` is valid, as the caller promises.
    let size = unsafe { ffi::emfs_i_size_read(inode) };
    // SAFETY: As the caller promises.
    let (data, file) = match unsafe { file_data::<T>(inode) } {
        Ok(d) => d,
        Err(e) => return e.to_errno(),
    };
    // SAFETY: `inode` is valid, and so is its mapping, for the call.
    let cache = unsafe { Mapping::from_raw((*inode).i_mapping) };
    let (pos, len) = (pos as u64, length as u64);
    let map = match T::begin(data, file, pos, len, IomapFlags(flags), size as u64, &cache) {
        Ok(map) => map.clamped(),
        Err(e) => return e.to_errno(),
    };
    if map.offset > pos || map.offset + map.length <= pos {
        pr_err!("iomap_begin: no mapping at {} ({:?})\n", pos, map);
        return EIO.to_errno();
    }
    let (type_, addr) = match map.type_ {
        IomapType::Hole => (ffi::IOMAP_HOLE, u64::MAX),
        IomapType::Unwritten { addr } => (ffi::IOMAP_UNWRITTEN, addr),
        IomapType::Mapped { addr } => (ffi::IOMAP_MAPPED, addr),
        IomapType::Delalloc => (ffi::IOMAP_DELALLOC, u64::MAX),
    };
    // SAFETY: As the caller promises, `iomap` is valid for writes; iomap
    // cleared it before the call, which leaves no device and no flags.
    unsafe {
        (*iomap).offset = map.offset as i64;
        (*iomap).length = map.length;
        (*iomap).addr = addr;
        (*iomap).type_ = type_ as u16;
    }
    0
}

/// `iomap_read_ops->read_folio_range`: reads `len` bytes at the iteration's
/// position into the folio being read, synchronously, and reports them
/// read.
///
/// # Safety
///
/// Called by iomap with its iteration over a regular file of a mounted
/// superblock of `T` at a [`IomapType::Mapped`] range, and the read context
/// whose locked, not uptodate `cur_folio` holds the `len` bytes from there.
unsafe extern "C" fn read_folio_range<T: IomapOperations>(
    iter: *const ffi::iomap_iter,
    ctx: *mut ffi::iomap_read_folio_ctx,
    len: usize,
) -> c_int {
    // SAFETY: As the caller promises, both are valid for the call.
    let (iter, folio) = unsafe { (&*iter, (*ctx).cur_folio) };
    // SAFETY: As the caller promises.
    let (data, file) = match unsafe { file_data::<T>(iter.inode) } {
        Ok(d) => d,
        Err(e) => return e.to_errno(),
    };
    // SAFETY: `iter.inode` and `folio` are valid, as the caller promises.
    let (size, folio_pos) = unsafe {
        (
            ffi::emfs_i_size_read(iter.inode) as u64,
            ffi::emfs_folio_pos(folio) as u64,
        )
    };
    let pos = iter.pos as u64;
    let addr = iter.iomap.addr + (pos - iter.iomap.offset as u64);
    let off = (pos - folio_pos) as usize;
    let mut done = 0;
    while done < len {
        // One page at a time: a large folio's pages need not be mapped
        // together.
        let at = off + done;
        let n = (len - done).min(kernel::page::PAGE_SIZE - at % kernel::page::PAGE_SIZE);
        // SAFETY: `at` is inside the folio, as the caller promises.
        let page = unsafe { ffi::emfs_kmap_local_folio(folio, at) };
        // SAFETY: The mapping covers the rest of the page, `n` bytes at
        // least; the folio is locked and not uptodate, so no one else
        // reads or writes it.
        let dst = unsafe { core::slice::from_raw_parts_mut(page.cast::<u8>(), n) };
        let file_pos = pos + done as u64;
        let valid = (size.saturating_sub(file_pos) as usize).min(n);
        let ret = T::read_range(data, file, addr + done as u64, &mut dst[..valid]);
        // What lies past EOF reads as zeroes, whatever the disk holds.
        dst[valid..].fill(0);
        // SAFETY: `page` was mapped above, and is unmapped once.
        unsafe { bindings::kunmap_local(page) };
        if let Err(e) = ret {
            return e.to_errno();
        }
        done += n;
    }
    // SAFETY: The range was read in; `folio` is the caller's.
    unsafe { ffi::iomap_finish_folio_read(folio, off, len, 0) };
    0
}

/// `read_folio` on iomap: reads the locked `folio` in and unlocks it.
///
/// # Safety
///
/// `folio` is a locked folio, not uptodate, of a regular file of a mounted
/// superblock of `T`, as the VFS passes it to `read_folio`.
pub(crate) unsafe fn read_folio<T: IomapOperations>(folio: *mut bindings::folio) -> c_int {
    let mut ctx = ffi::iomap_read_folio_ctx {
        ops: &IomapTables::<T>::READ_OPS,
        cur_folio: folio,
        ..Default::default()
    };
    // SAFETY: `ctx` is set up as `iomap_read_folio()` requires, and the
    // tables are `T`'s, whose entry points accept this file.
    unsafe { ffi::iomap_read_folio(&IomapTables::<T>::OPS, &mut ctx, core::ptr::null_mut()) };
    0
}

/// `readahead` on iomap.
///
/// # Safety
///
/// `rac` is a readahead request for a regular file of a mounted superblock
/// of `T`, as the VFS passes it to `readahead`.
pub(crate) unsafe fn readahead<T: IomapOperations>(rac: *mut bindings::readahead_control) {
    let mut ctx = ffi::iomap_read_folio_ctx {
        ops: &IomapTables::<T>::READ_OPS,
        rac,
        ..Default::default()
    };
    // SAFETY: As for `read_folio`.
    unsafe { ffi::iomap_readahead(&IomapTables::<T>::OPS, &mut ctx, core::ptr::null_mut()) };
}

/// Fills `dst`, the block at `pos` of a regular file of `size` bytes, as a
/// read through iomap would (`write_begin` of a partial write, until writes
/// are iomap's too): a mapped range through [`IomapOperations::read_range`],
/// anything else, and what lies past EOF, as zeroes.
///
/// # Safety
///
/// `inode` is a published regular file of a mounted superblock of `T`,
/// referenced for the call, and `dst` the mapped contents of a locked folio
/// of [`BLOCK_SIZE`] bytes, not uptodate (so no one else reads or writes
/// it).
///
/// [`BLOCK_SIZE`]: crate::glue::vfs::BLOCK_SIZE
pub(crate) unsafe fn read_block<T: IomapOperations>(
    inode: *mut bindings::inode,
    pos: u64,
    size: u64,
    dst: *mut u8,
) -> c_int {
    // SAFETY: As the caller promises, `dst` is ours alone for the call.
    let dst = unsafe { core::slice::from_raw_parts_mut(dst, crate::glue::vfs::BLOCK_SIZE) };
    // SAFETY: As the caller promises.
    let (data, file) = match unsafe { file_data::<T>(inode) } {
        Ok(d) => d,
        Err(e) => return e.to_errno(),
    };
    // SAFETY: `inode` is valid, and so is its mapping, for the call.
    let cache = unsafe { Mapping::from_raw((*inode).i_mapping) };
    let len = dst.len() as u64;
    let map = match T::begin(data, file, pos, len, IomapFlags(0), size, &cache) {
        Ok(map) => map,
        Err(e) => return e.to_errno(),
    };
    let valid = (size.saturating_sub(pos) as usize).min(dst.len());
    let ret = match map.type_ {
        IomapType::Mapped { addr } if map.offset <= pos && pos - map.offset < map.length => {
            let (head, tail) = dst.split_at_mut(valid);
            tail.fill(0);
            T::read_range(data, file, addr + (pos - map.offset), head)
        }
        IomapType::Mapped { .. } => Err(EIO),
        _ => {
            dst.fill(0);
            Ok(())
        }
    };
    match ret {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `inode_operations->fiemap` on iomap (`iomap_fiemap()`, which prepares
/// the request and writes the file back first for `FIEMAP_FLAG_SYNC`),
/// under `i_rwsem` shared, so that the size cannot change meanwhile.
///
/// # Safety
///
/// Called by the VFS with a regular file of a mounted superblock of `T`,
/// referenced, and a request from user space.
pub(crate) unsafe extern "C" fn fiemap<T: IomapOperations>(
    inode: *mut bindings::inode,
    fi: *mut bindings::fiemap_extent_info,
    start: u64,
    len: u64,
) -> c_int {
    // SAFETY: As the caller promises; the tables are `T`'s, whose entry
    // points accept this file. The lock is released below.
    unsafe {
        ffi::emfs_inode_lock_shared(inode);
        let ret = ffi::iomap_fiemap(inode, fi, start, len, &IomapTables::<T>::OPS);
        ffi::emfs_inode_unlock_shared(inode);
        ret
    }
}

/// `file_operations->llseek`: `SEEK_DATA` and `SEEK_HOLE` on iomap
/// (`iomap_seek_data()`, `iomap_seek_hole()`), under `i_rwsem` shared;
/// the rest is `generic_file_llseek()`'s.
///
/// # Safety
///
/// `file` is an open regular file of a mounted superblock of `T`, as the
/// VFS passes it to `llseek`.
pub(crate) unsafe fn llseek<T: IomapOperations>(
    file: *mut bindings::file,
    offset: i64,
    whence: c_int,
) -> i64 {
    let whence_u = whence as u32;
    if whence_u != bindings::SEEK_DATA && whence_u != bindings::SEEK_HOLE {
        // SAFETY: As the caller promises.
        return unsafe { bindings::generic_file_llseek(file, offset, whence) };
    }
    // SAFETY: As the caller promises, `file` is open: its inode and
    // superblock are valid. The lock is released below.
    unsafe {
        let inode = (*file).f_inode;
        ffi::emfs_inode_lock_shared(inode);
        let pos = if whence_u == bindings::SEEK_DATA {
            ffi::iomap_seek_data(inode, offset, &IomapTables::<T>::OPS)
        } else {
            ffi::iomap_seek_hole(inode, offset, &IomapTables::<T>::OPS)
        };
        ffi::emfs_inode_unlock_shared(inode);
        if pos < 0 {
            return pos;
        }
        bindings::vfs_setpos(file, pos, (*(*inode).i_sb).s_maxbytes)
    }
}

#[kernel::macros::kunit_tests(emfs_iomap)]
mod tests {
    use super::*;

    #[test]
    fn from_and_until_cut_a_mapping() -> Result {
        let mapped = Iomap {
            offset: 4096,
            length: 16384,
            type_: IomapType::Mapped { addr: 1 << 20 },
        };
        // The middle of the mapping: its address moves with its start.
        assert_eq!(
            mapped.from(8192).until(12288),
            Iomap {
                offset: 8192,
                length: 4096,
                type_: IomapType::Mapped {
                    addr: (1 << 20) + 4096
                },
            }
        );
        // Unwritten extents have an address too; holes have none.
        let unwritten = Iomap {
            type_: IomapType::Unwritten { addr: 8192 },
            ..mapped
        };
        assert_eq!(
            unwritten.from(5000).type_,
            IomapType::Unwritten { addr: 8192 + 904 }
        );
        // Ending past the mapping's end changes nothing.
        assert_eq!(mapped.until(1 << 30), mapped);
        // A hole to the end of the file space ends where loff_t does.
        let hole = Iomap {
            offset: 4096,
            length: u64::MAX - 4096,
            type_: IomapType::Hole,
        };
        assert_eq!(
            hole.clamped().offset + hole.clamped().length,
            i64::MAX as u64
        );
        Ok(())
    }
}
