// SPDX-License-Identifier: GPL-2.0

//! iomap: the kernel's library for a filesystem's page cache I/O
//! (fs/iomap/, Documentation/filesystems/iomap/), as used by XFS, ext2,
//! gfs2, zonefs and FUSE.
//!
//! A filesystem answers one question, [`IomapOperations::begin`]: what
//! lies at a file offset (a hole, an extent on disk, an extent allocated
//! but never written, or dirty page cache with space reserved for it), and
//! for how long. iomap walks a range of the file with it and does the page
//! cache work itself: which blocks of a folio need reading or zeroing,
//! copying a write in, dirtying, marking folios uptodate, finding the
//! dirty ranges of a folio to write back.
//!
//! A filesystem without a block device moves its data itself, as FUSE
//! does: reads synchronously into the folio
//! ([`IomapOperations::read_range`], `read_folio_range` of
//! `iomap_read_ops` and `iomap_write_ops`), writes from the dirty ranges
//! iomap hands it (`iomap_writeback_ops`): [`IomapOperations::writeback_range`]
//! under the folio lock, [`IomapOperations::write_back`] for a run of
//! them, and [`IomapOperations::finish_write_back`] on a worker, before
//! the folios' writeback ends.
//!
//! Delayed allocation follows XFS: `begin` for a write reserves space and
//! answers `IOMAP_DELALLOC`, with `IOMAP_F_NEW` when it reserved it just
//! now, and the old data, if any, as the source mapping; when a write
//! copies less than was reserved, `iomap_end` gives back what no dirty
//! page cache covers (`iomap_write_delalloc_release()`, through
//! [`IomapOperations::punch_delalloc`]), holding the invalidate lock so
//! that no page fault dirties the range meanwhile.
//!
//! The operation tables are constants per filesystem type
//! ([`IomapTables`]); the functions below are the address space and file
//! operations built on them (rust/glue/file.rs puts them in the tables).

use core::marker::PhantomData;
use kernel::{
    bindings,
    ffi::c_int,
    new_work,
    page::PAGE_SIZE,
    prelude::*,
    workqueue::{
        Work,
        WorkItem, //
    },
};

use crate::glue::{
    alloc::nofs,
    ffi,
    vfs::{
        block_size, //
        FileSystem,
        VfsTables,
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
    /// Page cache with space reserved and no blocks yet
    /// (`IOMAP_DELALLOC`): where a write copies its data, and what FIEMAP
    /// and `SEEK_DATA` report of dirty page cache not written back.
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

    /// The file offset just past the mapping.
    pub(crate) fn end(self) -> u64 {
        self.offset.saturating_add(self.length)
    }

    /// `self` as iomap can take it: ending at `LLONG_MAX` at the latest,
    /// since a hole to the end of the file space would overflow iomap's
    /// arithmetic (file offsets are `loff_t`).
    fn clamped(self) -> Self {
        self.until(i64::MAX as u64)
    }

    /// Writes `self` into iomap's `struct iomap`, which iomap cleared.
    fn store(self, raw: &mut ffi::iomap) {
        let (type_, addr) = match self.type_ {
            IomapType::Hole => (ffi::IOMAP_HOLE, u64::MAX),
            IomapType::Unwritten { addr } => (ffi::IOMAP_UNWRITTEN, addr),
            IomapType::Mapped { addr } => (ffi::IOMAP_MAPPED, addr),
            IomapType::Delalloc => (ffi::IOMAP_DELALLOC, u64::MAX),
        };
        raw.offset = self.offset as i64;
        raw.length = self.length;
        raw.addr = addr;
        raw.type_ = type_ as u16;
    }
}

/// What [`IomapOperations::begin`] answers: the mapping, and for a write
/// into delayed allocation, where the old data is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IomapBegin {
    /// The mapping at the position asked for.
    pub(crate) map: Iomap,
    /// The source mapping (`srcmap`): what a partial write reads, or
    /// zeroes, around its data; `None` when it is `map` itself. It must
    /// contain the position too, and iomap goes no further than either.
    pub(crate) src: Option<Iomap>,
    /// `IOMAP_F_NEW`: `map` is [`IomapType::Delalloc`] reserved by this
    /// call, which `iomap_end` gives back where a write did not dirty it.
    pub(crate) new: bool,
    /// `validity_cookie`, for [`IomapOperations::valid`].
    pub(crate) cookie: u64,
}

impl From<Iomap> for IomapBegin {
    fn from(map: Iomap) -> Self {
        Self {
            map,
            src: None,
            new: false,
            cookie: 0,
        }
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

    /// A write fault (`iomap_page_mkwrite()`): the whole uptodate folio is
    /// dirtied, whatever the mapping says.
    pub(crate) fn is_fault(self) -> bool {
        self.0 & ffi::IOMAP_FAULT != 0
    }

    /// Zeroing a range (`iomap_zero_range()`): holes and unwritten extents
    /// with no dirty page cache are left alone; anything else is zeroed in
    /// the page cache, which dirties it.
    pub(crate) fn is_zero(self) -> bool {
        self.0 & ffi::IOMAP_ZERO != 0
    }
}

/// The dirty ranges of folios being written back, consecutive in the
/// file, that [`IomapOperations::write_back`] copies to disk.
///
/// # Invariants
///
/// Each entry is a range of a folio under writeback, which keeps it in the
/// page cache and its memory valid until the range's writeback is
/// finished; the ranges are aligned to the filesystem's block size and
/// follow each other
/// in the file.
pub(crate) struct WritebackFolios<'a> {
    entries: &'a [WbRange],
}

/// A range of a folio under writeback: `len` bytes from byte `off` of it.
#[derive(Clone, Copy)]
struct WbRange {
    folio: *mut bindings::folio,
    off: usize,
    len: usize,
}

impl WritebackFolios<'_> {
    /// How many bytes the ranges hold.
    pub(crate) fn len(&self) -> usize {
        self.entries.iter().map(|e| e.len).sum()
    }

    /// A copy of the `i`th block of `N` bytes of the ranges: `EINVAL` past
    /// them or if the block is not all in one range, `ENOMEM`. The block
    /// is mapped a page at a time (`kmap_local_folio()` maps one page), so
    /// it may be smaller or larger than a page and lie anywhere in a large
    /// folio.
    pub(crate) fn copy_block<const N: usize>(&self, i: usize) -> Result<KBox<[u8; N]>> {
        let mut at = i.checked_mul(N).ok_or(EINVAL)?;
        for e in self.entries {
            if at >= e.len {
                at -= e.len;
                continue;
            }
            if e.len - at < N {
                return Err(EINVAL);
            }
            let mut block = KBox::<[u8; N]>::new_uninit(GFP_KERNEL)?;
            let dst = block.as_mut_ptr().cast::<u8>();
            let mut done = 0;
            while done < N {
                let off = e.off + at + done;
                let n = (N - done).min(PAGE_SIZE - off % PAGE_SIZE);
                // SAFETY: By the type invariant the folio is valid and holds
                // the range, of which `[off, off + n)` is part and in one
                // page; `block` has room for `n` bytes at `done`.
                unsafe {
                    let src = ffi::emfs_kmap_local_folio(e.folio, off);
                    core::ptr::copy_nonoverlapping(src.cast::<u8>(), dst.add(done), n);
                    bindings::kunmap_local(src);
                }
                done += n;
            }
            // SAFETY: Every byte was written just above.
            return Ok(unsafe { block.assume_init() });
        }
        Err(EINVAL)
    }
}

/// What iomap asks of a filesystem `T` for its regular files: the
/// `iomap_ops`, `iomap_read_ops`, `iomap_write_ops` and
/// `iomap_writeback_ops` it builds the page cache I/O on.
#[vtable]
pub(crate) trait IomapOperations: FileSystem {
    /// The name of the workqueue write backs complete on.
    const ENDIO_QUEUE: &'static CStr;

    /// Maps file offset `pos` of a file of `size` bytes (`iomap_begin`)
    /// for what `flags` say: the mapping must contain `pos`, and may start
    /// before it and end before `pos + len` (iomap then asks again from
    /// its end) or after it. A write or zeroing that dirties page cache
    /// is answered with [`IomapType::Delalloc`], space reserved.
    fn begin(
        data: &Self::Data,
        inode: &Self::InodeData,
        pos: u64,
        len: u64,
        flags: IomapFlags,
        size: u64,
    ) -> Result<IomapBegin>;

    /// Fills `dst` with the data at disk address `addr`
    /// (`read_folio_range`, for a [`IomapType::Mapped`] range). Bytes past
    /// EOF are not asked for: they are zeroed by the caller.
    fn read_range(data: &Self::Data, inode: &Self::InodeData, addr: u64, dst: &mut [u8]) -> Result;

    /// Whether a mapping `begin` answered with `cookie` is still right
    /// (`iomap_valid`), asked with the folio being written locked.
    /// Optional: without it, mappings never go stale.
    fn valid(_data: &Self::Data, _inode: &Self::InodeData, _cookie: u64) -> bool {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Gives back the reservation of `[start, end)`, part of a
    /// [`IomapType::Delalloc`] mapping `begin` reserved (`new`) that a
    /// write did not dirty. Called with the invalidate lock held, so no
    /// page fault dirties it meanwhile. Cannot fail. Optional: a type that
    /// never answers `new` has nothing to give back.
    fn punch_delalloc(_data: &Self::Data, _inode: &Self::InodeData, _start: u64, _end: u64) {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Writeback of the dirty range `[pos, pos + len)` of a folio begins
    /// (`writeback_range`): the folio is locked, its dirty bit gone.
    /// Errors lose the range's data (iomap records them on the mapping):
    /// only for what cannot be, logged.
    fn writeback_range(data: &Self::Data, inode: &Self::InodeData, pos: u64, len: u64) -> Result;

    /// Data on its way to disk, from [`IomapOperations::write_back`] to
    /// [`IomapOperations::finish_write_back`].
    type Writeback: Send;

    /// Writes `folios`, the ranges from file offset `pos` on that
    /// [`IomapOperations::writeback_range`] accepted, to disk. Cannot fail:
    /// their dirty bits are gone, and their writeback must end; retry what
    /// must be retried.
    fn write_back(
        data: &Self::Data,
        inode: &Self::InodeData,
        pos: u64,
        folios: &WritebackFolios<'_>,
    ) -> Self::Writeback;

    /// Completes a write back, on a worker of [`IomapOperations::ENDIO_QUEUE`],
    /// before its folios' writeback ends. Cannot fail: retry what must be
    /// retried.
    fn finish_write_back(data: &Self::Data, inode: &Self::InodeData, wb: Self::Writeback);
}

/// The iomap operation tables of filesystem `T`.
pub(crate) struct IomapTables<T>(PhantomData<T>);

impl<T: IomapOperations> IomapTables<T> {
    /// `iomap_ops`: mappings come from `T::begin`; `iomap_end` gives back
    /// what a short write reserved and did not dirty.
    pub(crate) const OPS: ffi::iomap_ops = ffi::iomap_ops {
        iomap_begin: Some(iomap_begin::<T>),
        iomap_end: if T::HAS_PUNCH_DELALLOC {
            Some(iomap_end::<T>)
        } else {
            None
        },
        iomap_next: None,
    };

    /// `iomap_read_ops`: synchronous reads through `T::read_range`.
    pub(crate) const READ_OPS: ffi::iomap_read_ops = ffi::iomap_read_ops {
        read_folio_range: Some(read_folio_range::<T>),
        submit_read: None,
        bio_set: core::ptr::null_mut(),
    };

    /// `iomap_write_ops`: what a partial write needs of the old data is
    /// read through `T::read_range`; mappings are checked by `T::valid`.
    pub(crate) const WRITE_OPS: ffi::iomap_write_ops = ffi::iomap_write_ops {
        get_folio: None,
        put_folio: None,
        iomap_valid: if T::HAS_VALID {
            Some(iomap_valid::<T>)
        } else {
            None
        },
        read_folio_range: Some(write_read_range::<T>),
    };
}

impl<T: IomapOperations + VfsTables> IomapTables<T> {
    /// `iomap_writeback_ops`: dirty ranges gathered into runs, written
    /// back by `T` and completed on its endio workqueue ([`writepages`]).
    const WRITEBACK_OPS: ffi::iomap_writeback_ops = ffi::iomap_writeback_ops {
        writeback_range: Some(writeback_range::<T>),
        writeback_submit: Some(writeback_submit::<T>),
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
/// it holds referenced, with `iomap` and `srcmap` valid for writes and
/// cleared.
unsafe extern "C" fn iomap_begin<T: IomapOperations>(
    inode: *mut bindings::inode,
    pos: i64,
    length: i64,
    flags: u32,
    iomap: *mut ffi::iomap,
    srcmap: *mut ffi::iomap,
) -> c_int {
    // SAFETY: `inode` is valid, as the caller promises.
    let size = unsafe { ffi::emfs_i_size_read(inode) };
    // SAFETY: As the caller promises.
    let (data, file) = match unsafe { file_data::<T>(inode) } {
        Ok(d) => d,
        Err(e) => return e.to_errno(),
    };
    let (pos, len) = (pos as u64, length as u64);
    let answer = match T::begin(data, file, pos, len, IomapFlags(flags), size as u64) {
        Ok(a) => a,
        Err(e) => return e.to_errno(),
    };
    let map = answer.map.clamped();
    let src = answer.src.map(Iomap::clamped);
    let contains = |m: Iomap| m.offset <= pos && pos < m.end();
    if !contains(map) || src.is_some_and(|s| !contains(s)) {
        pr_err!("iomap_begin: no mapping at {} ({:?})\n", pos, answer);
        // iomap calls no `iomap_end` for it: what it reserved goes back.
        if answer.new && T::HAS_PUNCH_DELALLOC {
            T::punch_delalloc(data, file, map.offset, map.end());
        }
        return EIO.to_errno();
    }
    // SAFETY: As the caller promises, both are valid for writes and
    // cleared, which leaves no device and no other flags.
    unsafe {
        map.store(&mut *iomap);
        if answer.new {
            (*iomap).flags |= ffi::IOMAP_F_NEW as u16;
        }
        (*iomap).validity_cookie = answer.cookie;
        if let Some(src) = src {
            src.store(&mut *srcmap);
        }
    }
    0
}

/// `iomap_ops->iomap_end`: after a write or zeroing that copied less than
/// a mapping `begin` reserved, gives back what no dirty page cache covers,
/// as XFS does (`xfs_buffered_write_iomap_end()`).
///
/// # Safety
///
/// Called by iomap after [`iomap_begin`] answered `iomap` for the same
/// file, with `length` the bytes of it the operation covered and `written`
/// those it did; zeroing holds the file's invalidate lock.
unsafe extern "C" fn iomap_end<T: IomapOperations>(
    inode: *mut bindings::inode,
    pos: i64,
    length: i64,
    written: isize,
    flags: u32,
    iomap: *mut ffi::iomap,
) -> c_int {
    // SAFETY: As the caller promises.
    let (type_, map_flags) = unsafe { ((*iomap).type_, (*iomap).flags) };
    // Only what this mapping reserved is ours to give back; a page fault
    // dirties all it maps.
    if u32::from(type_) != ffi::IOMAP_DELALLOC
        || u32::from(map_flags) & ffi::IOMAP_F_NEW == 0
        || flags & ffi::IOMAP_FAULT != 0
    {
        return 0;
    }
    let block = block_size::<T>();
    let (pos, length) = (pos as u64, length as u64);
    // The first block the write did not touch (`iomap_last_written_block()`).
    let start = if written == 0 {
        pos / block * block
    } else {
        (pos + written as u64).next_multiple_of(block)
    };
    let end = (pos + length).next_multiple_of(block);
    if start >= end {
        return 0;
    }
    // Zeroing holds the invalidate lock already; a write does not, and
    // takes it here (after `i_rwsem`, as the lock order says).
    // SAFETY: `inode` is valid, and so is its mapping; `punch_delalloc::<T>`
    // accepts this file.
    unsafe {
        let mapping = (*inode).i_mapping;
        let zeroing = flags & ffi::IOMAP_ZERO != 0;
        if !zeroing {
            ffi::emfs_filemap_invalidate_lock(mapping);
        }
        ffi::iomap_write_delalloc_release(
            inode,
            start as i64,
            end as i64,
            flags,
            iomap,
            Some(punch_delalloc::<T>),
        );
        if !zeroing {
            ffi::emfs_filemap_invalidate_unlock(mapping);
        }
    }
    0
}

/// The `iomap_punch_t` of [`iomap_end`]: the clean range of `length`
/// bytes from `offset`, which may start or end inside a block (the block
/// is then given back whole, as XFS does: none of it is dirty).
///
/// # Safety
///
/// Called by `iomap_write_delalloc_release()` for the file [`iomap_end`]
/// passed it, with the invalidate lock held.
unsafe extern "C" fn punch_delalloc<T: IomapOperations>(
    inode: *mut bindings::inode,
    offset: i64,
    length: i64,
    _iomap: *mut ffi::iomap,
) {
    // SAFETY: As the caller promises.
    if let Ok((data, file)) = unsafe { file_data::<T>(inode) } {
        T::punch_delalloc(data, file, offset as u64, (offset + length) as u64);
    }
}

/// `iomap_write_ops->iomap_valid`.
///
/// # Safety
///
/// Called by iomap with the folio being written locked, for a mapping
/// [`iomap_begin`] answered for the same file.
unsafe extern "C" fn iomap_valid<T: IomapOperations>(
    inode: *mut bindings::inode,
    iomap: *const ffi::iomap,
) -> bool {
    // SAFETY: As the caller promises.
    let (cookie, files) = unsafe { ((*iomap).validity_cookie, file_data::<T>(inode)) };
    match files {
        Ok((data, file)) => T::valid(data, file, cookie),
        Err(_) => false,
    }
}

/// Fills `len` bytes of the locked, not uptodate `folio` from file offset
/// `pos` with the data at disk address `addr`, zeroing what lies past EOF
/// (whatever the disk holds there).
///
/// # Safety
///
/// `inode` is a regular file of a mounted superblock of `T`, referenced,
/// and `folio` a locked folio of it holding `[pos, pos + len)`, whose
/// bytes there no one else reads or writes during the call.
unsafe fn fill_folio<T: IomapOperations>(
    inode: *mut bindings::inode,
    folio: *mut bindings::folio,
    pos: u64,
    len: usize,
    addr: u64,
) -> Result {
    // SAFETY: As the caller promises.
    let (data, file) = unsafe { file_data::<T>(inode)? };
    // SAFETY: `inode` and `folio` are valid, as the caller promises.
    let (size, folio_pos) = unsafe {
        (
            ffi::emfs_i_size_read(inode) as u64,
            ffi::emfs_folio_pos(folio) as u64,
        )
    };
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
        // least, which are ours alone, as the caller promises.
        let dst = unsafe { core::slice::from_raw_parts_mut(page.cast::<u8>(), n) };
        let file_pos = pos + done as u64;
        let valid = (size.saturating_sub(file_pos) as usize).min(n);
        let ret = T::read_range(data, file, addr + done as u64, &mut dst[..valid]);
        dst[valid..].fill(0);
        // SAFETY: `page` was mapped above, and is unmapped once.
        unsafe { bindings::kunmap_local(page) };
        ret?;
        done += n;
    }
    Ok(())
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
    let pos = iter.pos as u64;
    let addr = iter.iomap.addr + (pos - iter.iomap.offset as u64);
    // SAFETY: As the caller promises.
    if let Err(e) = unsafe { fill_folio::<T>(iter.inode, folio, pos, len, addr) } {
        return e.to_errno();
    }
    // SAFETY: The range was read in; `folio` is the caller's.
    unsafe {
        ffi::iomap_finish_folio_read(
            folio,
            (pos - ffi::emfs_folio_pos(folio) as u64) as usize,
            len,
            0,
        )
    };
    0
}

/// `iomap_write_ops->read_folio_range`: reads what a partial write keeps
/// of the old data, `[pos, pos + len)`, from the source mapping (iomap
/// marks it uptodate).
///
/// # Safety
///
/// Called by iomap for a write over a regular file of a mounted superblock
/// of `T`, with `folio` locked and holding the range, whose source mapping
/// is [`IomapType::Mapped`].
unsafe extern "C" fn write_read_range<T: IomapOperations>(
    iter: *const ffi::iomap_iter,
    folio: *mut bindings::folio,
    pos: i64,
    len: usize,
) -> c_int {
    // SAFETY: As the caller promises, `iter` is valid for the call.
    let iter = unsafe { &*iter };
    // `iomap_iter_srcmap()`.
    let src = if u32::from(iter.srcmap.type_) != ffi::IOMAP_HOLE {
        &iter.srcmap
    } else {
        &iter.iomap
    };
    if u32::from(src.type_) != ffi::IOMAP_MAPPED {
        return EIO.to_errno();
    }
    let addr = src.addr + (pos - src.offset) as u64;
    // SAFETY: As the caller promises.
    match unsafe { fill_folio::<T>(iter.inode, folio, pos as u64, len, addr) } {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
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

/// A buffered write (`iomap_file_buffered_write()`): returns the bytes
/// written, or an error if none were.
///
/// # Safety
///
/// `iocb` and `from` are a write to an open regular file of a mounted
/// superblock of `T`, whose `i_rwsem` the caller holds, checked by
/// `generic_write_checks()`.
pub(crate) unsafe fn buffered_write<T: IomapOperations>(
    iocb: *mut bindings::kiocb,
    from: *mut bindings::iov_iter,
) -> isize {
    // SAFETY: As the caller promises; the tables are `T`'s.
    unsafe {
        ffi::iomap_file_buffered_write(
            iocb,
            from,
            &IomapTables::<T>::OPS,
            &IomapTables::<T>::WRITE_OPS,
            core::ptr::null_mut(),
        )
    }
}

/// Zeroes `[pos, pos + len)` of the file in its page cache
/// (`iomap_zero_range()`), but for holes and unwritten extents, which read
/// as zeroes already.
///
/// # Safety
///
/// `inode` is a regular file of a mounted superblock of `T`, referenced,
/// with `i_rwsem` and the invalidate lock held exclusively.
pub(crate) unsafe fn zero_range<T: IomapOperations>(
    inode: *mut bindings::inode,
    pos: u64,
    len: u64,
) -> Result {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: As the caller promises; the tables are `T`'s.
    kernel::error::to_result(unsafe {
        ffi::iomap_zero_range(
            inode,
            pos as i64,
            len as i64,
            core::ptr::null_mut(),
            &IomapTables::<T>::OPS,
            &IomapTables::<T>::WRITE_OPS,
            core::ptr::null_mut(),
        )
    })
}

/// `page_mkwrite` on iomap (`iomap_page_mkwrite()`): space for the folio
/// is reserved and it is dirtied, or the fault fails (`ENOSPC` is
/// `SIGBUS`).
///
/// # Safety
///
/// `vmf` is a write fault on a shared mapping of a regular file of a
/// mounted superblock of `T`, with the invalidate lock held shared.
pub(crate) unsafe fn page_mkwrite<T: IomapOperations>(
    vmf: *mut bindings::vm_fault,
) -> bindings::vm_fault_t {
    // SAFETY: As the caller promises; the tables are `T`'s.
    unsafe { ffi::iomap_page_mkwrite(vmf, &IomapTables::<T>::OPS, core::ptr::null_mut()) }
}

/// Ranges per write back: 256 KiB of order-0 folios, as many ranges of
/// larger ones.
const IOEND_RANGES: usize = 64;

/// The ranges of one write back being gathered by `writepages`
/// (`iomap_writepage_ctx->wb_ctx`).
///
/// # Invariants
///
/// `inode` is the file being written back; `ranges` are dirty ranges of
/// its folios under writeback, as [`WritebackFolios`] says, `len` bytes in
/// all from file offset `pos`, each accepted by `T::writeback_range` and
/// not yet written back; there is room for [`IOEND_RANGES`] of them.
struct Batch<T> {
    inode: *mut bindings::inode,
    pos: u64,
    len: u64,
    ranges: KVec<WbRange>,
    _t: PhantomData<T>,
}

// SAFETY: The folios and the inode may be used from any task; what is done
// with them is done by one task at a time, which owns the batch.
unsafe impl<T> Send for Batch<T> {}

impl<T: IomapOperations + VfsTables> Batch<T> {
    /// An empty batch for `inode`. `ENOMEM`.
    fn new(inode: *mut bindings::inode) -> Result<Self> {
        Ok(Self {
            inode,
            pos: 0,
            len: 0,
            ranges: KVec::with_capacity(IOEND_RANGES, GFP_KERNEL)?,
            _t: PhantomData,
        })
    }

    fn folios(&self) -> WritebackFolios<'_> {
        WritebackFolios {
            entries: &self.ranges,
        }
    }

    /// Adds the range `[pos, pos + len)` of `folio`, accepted by
    /// `T::writeback_range`, submitting what the batch holds first if it
    /// is full or the range does not follow it.
    fn add(&mut self, folio: *mut bindings::folio, pos: u64, len: usize) {
        let full = self.ranges.len() == IOEND_RANGES;
        if full || (!self.ranges.is_empty() && pos != self.pos + self.len) {
            self.submit();
        }
        if self.ranges.is_empty() {
            self.pos = pos;
        }
        // SAFETY: `folio` holds the range, as the caller promises.
        let off = (pos - unsafe { ffi::emfs_folio_pos(folio) } as u64) as usize;
        // INVARIANT: The range was accepted, follows the batch's, and there
        // is room for it: `submit` empties the batch.
        if self
            .ranges
            .push_within_capacity(WbRange { folio, off, len })
            .is_ok()
        {
            self.len += len as u64;
        }
    }

    /// Writes the ranges back and queues their completion on the type's
    /// endio workqueue, or completes them here if no work item can be
    /// allocated; the batch is empty afterwards.
    fn submit(&mut self) {
        if self.ranges.is_empty() {
            return;
        }
        // SAFETY: By the type invariant the inode is a regular file of `T`,
        // alive while its folios are under writeback.
        let Ok((data, file)) = (unsafe { file_data::<T>(self.inode) }) else {
            self.complete(None);
            return;
        };
        let wb = T::write_back(data, file, self.pos, &self.folios());
        let room = KVec::with_capacity(IOEND_RANGES, GFP_KERNEL);
        let slot = KBox::<Ioend<T>>::new_uninit(GFP_KERNEL);
        let (Ok(room), Ok(slot), Some(endio)) = (room, slot, T::fs_type().endio()) else {
            self.complete(Some(wb));
            return;
        };
        let batch = Self {
            inode: self.inode,
            pos: self.pos,
            len: core::mem::replace(&mut self.len, 0),
            ranges: core::mem::replace(&mut self.ranges, room),
            _t: PhantomData,
        };
        let Ok(ioend) = slot.write_pin_init(pin_init!(Ioend::<T> {
            work <- new_work!("emfs::ioend"),
            batch,
            wb: Some(wb),
        }));
        endio.enqueue(ioend);
    }

    /// Completes the write back of the ranges (`T::finish_write_back`),
    /// then ends their writeback; the batch is empty afterwards. After the
    /// last range's writeback ends, the inode may be gone.
    fn complete(&mut self, wb: Option<T::Writeback>) {
        // SAFETY: By the type invariant, as in `submit`.
        if let (Some(wb), Ok((data, file))) = (wb, unsafe { file_data::<T>(self.inode) }) {
            nofs(|| T::finish_write_back(data, file, wb));
        }
        for r in self.ranges.iter() {
            // SAFETY: By the type invariant the range is under writeback,
            // which ends here, once.
            unsafe { ffi::iomap_finish_folio_write(self.inode, r.folio, r.len) };
        }
        self.ranges.clear();
        self.len = 0;
    }
}

/// A write back completing on the endio workqueue.
#[pin_data]
struct Ioend<T: IomapOperations + VfsTables> {
    #[pin]
    work: Work<Ioend<T>>,
    batch: Batch<T>,
    wb: Option<T::Writeback>,
}

kernel::impl_has_work! {
    impl{T: IomapOperations + VfsTables} HasWork<Self> for Ioend<T> { self.work }
}

impl<T: IomapOperations + VfsTables> WorkItem for Ioend<T> {
    type Pointer = Pin<KBox<Self>>;

    fn run(this: Pin<KBox<Self>>) {
        let mut this = this;
        let p = this.as_mut().project();
        let wb = p.wb.take();
        p.batch.complete(wb);
    }
}

/// `writepages` on iomap (`iomap_writepages()`): dirty ranges go to
/// `T::writeback_range` one by one, and are written back in runs of up to
/// [`IOEND_RANGES`], completed on the endio workqueue. In a no-fs
/// allocation scope: the folios being written back are locked or under
/// writeback, which reclaim may wait for.
///
/// # Safety
///
/// `mapping` is the page cache of a regular file of a mounted superblock of
/// `T` and `wbc` a writeback request, as the VFS passes them to
/// `writepages`.
pub(crate) unsafe fn writepages<T: IomapOperations + VfsTables>(
    mapping: *mut bindings::address_space,
    wbc: *mut bindings::writeback_control,
) -> c_int {
    // SAFETY: As the caller promises.
    let inode = unsafe { (*mapping).host };
    // Before any folio's dirty bit goes: failing here leaves them dirty.
    let batch = match nofs(|| -> Result<_> { Ok(KBox::new(Batch::<T>::new(inode)?, GFP_KERNEL)?) })
    {
        Ok(b) => b,
        Err(_) => return ENOMEM.to_errno(),
    };
    let mut wpc = ffi::iomap_writepage_ctx {
        inode,
        wbc,
        ops: &IomapTables::<T>::WRITEBACK_OPS,
        wb_ctx: KBox::into_raw(batch).cast(),
        ..Default::default()
    };
    // Not a hole: each folio's writeback is ended by the completion.
    wpc.iomap.type_ = ffi::IOMAP_MAPPED as u16;
    // SAFETY: `wpc` is set up as `iomap_writepages()` requires; it calls
    // `writeback_submit`, which frees the batch, unless it refuses to write
    // anything back (from direct reclaim).
    let ret = nofs(|| unsafe { ffi::iomap_writepages(&mut wpc) });
    if !wpc.wb_ctx.is_null() {
        // SAFETY: Still the batch made above, which nothing else holds.
        drop(unsafe { KBox::from_raw(wpc.wb_ctx.cast::<Batch<T>>()) });
    }
    ret
}

/// `iomap_writeback_ops->writeback_range`.
///
/// # Safety
///
/// Called by iomap from [`writepages`], whose context holds a [`Batch`],
/// with `folio` locked and under writeback, holding the dirty range.
unsafe extern "C" fn writeback_range<T: IomapOperations + VfsTables>(
    wpc: *mut ffi::iomap_writepage_ctx,
    folio: *mut bindings::folio,
    pos: u64,
    len: u32,
    _end_pos: u64,
) -> isize {
    // SAFETY: As the caller promises, `wb_ctx` is our batch, which nobody
    // else uses meanwhile.
    let batch = unsafe { &mut *(*wpc).wb_ctx.cast::<Batch<T>>() };
    // SAFETY: As the caller promises.
    let (data, file) = match unsafe { file_data::<T>(batch.inode) } {
        Ok(d) => d,
        Err(e) => return e.to_errno() as isize,
    };
    if let Err(e) = T::writeback_range(data, file, pos, len.into()) {
        return e.to_errno() as isize;
    }
    batch.add(folio, pos, len as usize);
    len as isize
}

/// `iomap_writeback_ops->writeback_submit`: the last run is written back,
/// and the batch freed.
///
/// # Safety
///
/// Called by iomap once, at the end of [`writepages`].
unsafe extern "C" fn writeback_submit<T: IomapOperations + VfsTables>(
    wpc: *mut ffi::iomap_writepage_ctx,
    error: c_int,
) -> c_int {
    // SAFETY: As the caller promises, `wb_ctx` is the batch `writepages`
    // made, used by nobody else now, and freed here once.
    let mut batch = unsafe { KBox::from_raw((*wpc).wb_ctx.cast::<Batch<T>>()) };
    // SAFETY: As above.
    unsafe { (*wpc).wb_ctx = core::ptr::null_mut() };
    batch.submit();
    error
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
    use crate::glue::kunit::kunit_ensure;

    /// A folio of `1 << ORDER` pages, put on drop.
    ///
    /// # Invariants
    ///
    /// `folio` was allocated by `folio_alloc()` and is referenced by this
    /// value only.
    struct TestFolio<const ORDER: u32> {
        folio: *mut bindings::folio,
    }

    impl<const ORDER: u32> TestFolio<ORDER> {
        /// A new folio whose byte `j` is `j % 251`. `ENOMEM`.
        fn new() -> Result<Self> {
            // SAFETY: No requirement.
            let folio = unsafe { ffi::emfs_folio_alloc(bindings::GFP_KERNEL, ORDER) };
            if folio.is_null() {
                return Err(ENOMEM);
            }
            for p in 0..1usize << ORDER {
                // SAFETY: The folio is ours, and page `p` of it is mapped
                // for its `PAGE_SIZE` bytes.
                unsafe {
                    let page = ffi::emfs_kmap_local_folio(folio, p * PAGE_SIZE).cast::<u8>();
                    for j in 0..PAGE_SIZE {
                        *page.add(j) = ((p * PAGE_SIZE + j) % 251) as u8;
                    }
                    bindings::kunmap_local(page.cast());
                }
            }
            // INVARIANT: Allocated just above.
            Ok(Self { folio })
        }
    }

    impl<const ORDER: u32> Drop for TestFolio<ORDER> {
        fn drop(&mut self) {
            // SAFETY: By the type invariant the reference is ours to put.
            unsafe { ffi::emfs_folio_put(self.folio) };
        }
    }

    /// Blocks are copied a page at a time, so a block larger than a page
    /// is copied whole from a large folio, and a block that is not all in
    /// one range is refused.
    #[test]
    fn blocks_are_copied_across_pages_of_a_large_folio() -> Result {
        const P: usize = PAGE_SIZE;
        let folio = TestFolio::<2>::new()?;
        // Pages 0 and 1 of the folio, then pages 2 and 3 as a second range.
        let ranges = [
            WbRange {
                folio: folio.folio,
                off: 0,
                len: 2 * P,
            },
            WbRange {
                folio: folio.folio,
                off: 2 * P,
                len: 2 * P,
            },
        ];
        // INVARIANT: The folio is held until the end of the test and holds
        // both ranges.
        let folios = WritebackFolios { entries: &ranges };
        kunit_ensure!(folios.len() == 4 * P);
        let expect = |start: usize, b: &[u8]| {
            b.iter()
                .enumerate()
                .all(|(j, &v)| v == ((start + j) % 251) as u8)
        };
        // A block of two pages: the second range's, byte for byte.
        let big = folios.copy_block::<{ 2 * P }>(1)?;
        kunit_ensure!(expect(2 * P, &big[..]));
        // Blocks smaller than a page, in the second page of a range.
        let small = folios.copy_block::<512>(11)?;
        kunit_ensure!(expect(11 * 512, &small[..]));
        // Past the ranges, and across the boundary of the two ranges.
        kunit_ensure!(folios.copy_block::<{ 2 * P }>(2).err() == Some(EINVAL));
        kunit_ensure!(folios.copy_block::<{ 3 * P }>(0).err() == Some(EINVAL));
        Ok(())
    }

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
