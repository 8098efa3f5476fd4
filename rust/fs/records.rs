// SPDX-License-Identifier: GPL-2.0

//! The authoritative extent records of an emfs file: the stand-in for
//! btrfs's file extent items, never evicted.
//!
//! A file's records say which byte ranges of the file live in which blocks
//! of the simulated disk; a range with no record is a hole. The extent map
//! cache is rebuilt from them on a miss ([`FileRecords::map_at`], what
//! `btrfs_get_extent()` reads the subvolume tree for), so the shrinker may
//! drop any unpinned map at any time without losing a byte.
//!
//! Records never overlap, and each owns its disk blocks alone (emfs has no
//! reflinks): when a range is punched or overwritten, the blocks under it
//! are handed back to be freed. Ranges are block aligned.

use crate::extent_map::{
    EmFlags,
    ExtentMapInfo, //
};
use kernel::{
    prelude::*,
    rbtree::{
        RBTree,
        RBTreeNodeReservation, //
    },
};

/// Bytes per block.
const BLOCK: u64 = super::disk::BLOCK_SIZE as u64;

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExtentKind {
    /// Written data.
    Regular,
    /// Blocks reserved by fallocate, never written: they read as zeroes.
    Prealloc,
}

/// One file extent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileExtent {
    /// File offset, in bytes.
    pub(crate) start: u64,
    /// Length, in bytes.
    pub(crate) len: u64,
    /// First disk block of the data.
    pub(crate) block: u64,
    /// Regular or preallocated.
    pub(crate) kind: ExtentKind,
    /// Generation that wrote it.
    pub(crate) generation: u64,
}

impl FileExtent {
    /// End in the file, exclusive.
    pub(crate) fn end(&self) -> u64 {
        self.start + self.len
    }

    /// The part of `self` in `[start, end)`, which must intersect it.
    fn slice(&self, start: u64, end: u64) -> Self {
        let s = start.max(self.start);
        let e = end.min(self.end());
        Self {
            start: s,
            len: e - s,
            block: self.block + (s - self.start) / BLOCK,
            ..*self
        }
    }

    /// The extent map describing this extent.
    pub(crate) fn map_info(&self) -> ExtentMapInfo {
        let mut info = ExtentMapInfo::regular(self.start, self.len, self.block * BLOCK);
        info.generation = self.generation;
        if self.kind == ExtentKind::Prealloc {
            info.flags = EmFlags::PREALLOC;
        }
        info
    }
}

/// The records of one file.
///
/// # Invariants
///
/// Records are block aligned, non-empty and do not overlap; the tree is
/// keyed by their start; `bytes` is the sum of their lengths.
pub(crate) struct FileRecords {
    extents: RBTree<u64, FileExtent>,
    bytes: u64,
}

impl FileRecords {
    /// No records: the file is one hole.
    pub(crate) fn new() -> Self {
        Self {
            extents: RBTree::new(),
            bytes: 0,
        }
    }

    /// The bytes the records cover: the file's blocks on disk, written or
    /// preallocated (`st_blocks`). Kept as records change.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The records, in file order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &FileExtent> {
        self.extents.values()
    }

    /// The record containing `offset`, else the first one after it.
    pub(crate) fn find(&self, offset: u64) -> Option<FileExtent> {
        let after = self.extents.cursor_lower_bound(&offset);
        let before = match &after {
            Some(c) => c.peek_prev().map(|(_, e)| *e),
            None => self.extents.cursor_back().map(|c| *c.current().1),
        };
        before
            .filter(|e| e.end() > offset)
            .or_else(|| after.map(|c| *c.current().1))
    }

    /// The extent map for the block at `offset` of a file of `size` bytes
    /// (`btrfs_get_extent()`): the record containing it, or the hole from
    /// the end of the record before it to the start of the next (or to the
    /// end of the file, at least one block).
    pub(crate) fn map_at(&self, offset: u64, size: u64) -> ExtentMapInfo {
        let offset = offset & !(BLOCK - 1);
        match self.find(offset) {
            Some(e) if e.start <= offset => e.map_info(),
            next => {
                let hole_start = self
                    .extents
                    .cursor_lower_bound(&offset)
                    .map_or_else(
                        || self.extents.cursor_back().map(|c| c.current().1.end()),
                        |c| c.peek_prev().map(|(_, e)| e.end()),
                    )
                    .unwrap_or(0);
                let eof = size.next_multiple_of(BLOCK).max(offset + BLOCK);
                let hole_end = next.map_or(eof, |e| e.start);
                ExtentMapInfo::hole(hole_start, hole_end - hole_start)
            }
        }
    }

    /// Removes everything in `[start, end)`, splitting records that stick
    /// out; appends the disk extents no longer referenced to `freed` as
    /// `(block, count)`. Allocates what it needs first: on `ENOMEM` nothing
    /// has changed.
    pub(crate) fn punch(&mut self, start: u64, end: u64, freed: &mut KVec<(u64, u64)>) -> Result {
        if start % BLOCK != 0 || end % BLOCK != 0 || end < start {
            return Err(EINVAL);
        }
        if start == end {
            return Ok(());
        }
        // At most two records stick out, so at most two new pieces; and
        // `freed` grows by one entry per record touched.
        let mut touched = KVec::new();
        let mut cur = self.find(start);
        while let Some(e) = cur.filter(|e| e.start < end) {
            touched.push(e, GFP_KERNEL)?;
            cur = self.find(e.end());
        }
        freed.reserve(touched.len(), GFP_KERNEL)?;
        let mut nodes = [
            Some(RBTreeNodeReservation::new(GFP_KERNEL)?),
            Some(RBTreeNodeReservation::new(GFP_KERNEL)?),
        ];
        for e in touched.iter() {
            let _ = self.extents.remove(&e.start);
            let gone = e.slice(start, end);
            // INVARIANT: What the record kept is inserted back below.
            self.bytes -= gone.len;
            freed
                .push_within_capacity((gone.block, gone.len / BLOCK))
                .map_err(|_| ENOMEM)?;
            for piece in [(e.start, start), (end, e.end())] {
                if piece.0 < piece.1 {
                    let keep = e.slice(piece.0, piece.1);
                    if let Some(node) = nodes.iter_mut().find_map(Option::take) {
                        // INVARIANT: `keep` lies outside `[start, end)`,
                        // inside the removed record.
                        let _ = self.extents.insert(node.into_node(keep.start, keep));
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds `ext` in a range the caller has punched. `EINVAL` if it is
    /// unaligned, empty or overlaps a record; `ENOMEM`.
    pub(crate) fn insert(&mut self, ext: FileExtent) -> Result {
        if ext.len == 0 || ext.start % BLOCK != 0 || ext.len % BLOCK != 0 {
            return Err(EINVAL);
        }
        if self.find(ext.start).is_some_and(|e| e.start < ext.end()) {
            return Err(EINVAL);
        }
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let _ = self.extents.insert(node.into_node(ext.start, ext));
        self.bytes += ext.len;
        Ok(())
    }

    /// Moves every record of `other` into `self`, reusing their nodes;
    /// never fails. The caller has made room (see [`FileRecords::punch`]).
    pub(crate) fn take_from(&mut self, other: &mut FileRecords) {
        self.bytes += other.bytes;
        other.bytes = 0;
        while let Some(cursor) = other.extents.cursor_front_mut() {
            let (_, node) = cursor.remove_current();
            // INVARIANT: the caller punched the range, so no overlap.
            let _ = self.extents.insert(node);
        }
    }

    /// Drops everything at or past `size` (rounded up to a block).
    pub(crate) fn truncate(&mut self, size: u64, freed: &mut KVec<(u64, u64)>) -> Result {
        let from = size.next_multiple_of(BLOCK);
        let end = self
            .extents
            .cursor_back()
            .map_or(from, |c| c.current().1.end());
        if end > from {
            self.punch(from, end, freed)?;
        }
        Ok(())
    }
}

#[kernel::macros::kunit_tests(emfs_records)]
mod tests {
    use super::*;

    const K4: u64 = BLOCK;

    fn ext(start: u64, len: u64, block: u64) -> FileExtent {
        FileExtent {
            start,
            len,
            block,
            kind: ExtentKind::Regular,
            generation: 1,
        }
    }

    fn layout(r: &FileRecords) -> Result<KVec<(u64, u64, u64)>> {
        let mut v = KVec::new();
        for e in r.iter() {
            v.push((e.start, e.len, e.block), GFP_KERNEL)?;
        }
        Ok(v)
    }

    #[test]
    fn insert_find_and_overlap() -> Result {
        let mut r = FileRecords::new();
        r.insert(ext(K4, 2 * K4, 10))?;
        r.insert(ext(8 * K4, K4, 20))?;
        assert_eq!(r.find(0).map(|e| e.start), Some(K4));
        assert_eq!(r.find(2 * K4).map(|e| e.start), Some(K4));
        assert_eq!(r.find(3 * K4).map(|e| e.start), Some(8 * K4));
        assert!(r.find(9 * K4).is_none());
        assert_eq!(r.insert(ext(2 * K4, K4, 30)).err(), Some(EINVAL));
        assert_eq!(r.insert(ext(0, 0, 30)).err(), Some(EINVAL));
        assert_eq!(r.insert(ext(100, K4, 30)).err(), Some(EINVAL));
        Ok(())
    }

    #[test]
    fn punch_splits_and_frees_the_middle() -> Result {
        let mut r = FileRecords::new();
        r.insert(ext(0, 8 * K4, 100))?;
        let mut freed = KVec::new();
        r.punch(2 * K4, 5 * K4, &mut freed)?;
        assert_eq!(&layout(&r)?[..], &[(0, 2 * K4, 100), (5 * K4, 3 * K4, 105)]);
        assert_eq!(&freed[..], &[(102, 3)]);
        assert_eq!(r.bytes(), 5 * K4);
        Ok(())
    }

    #[test]
    fn punch_across_several_records() -> Result {
        let mut r = FileRecords::new();
        r.insert(ext(0, 2 * K4, 10))?;
        r.insert(ext(2 * K4, 2 * K4, 20))?;
        r.insert(ext(6 * K4, 2 * K4, 30))?;
        let mut freed = KVec::new();
        r.punch(K4, 7 * K4, &mut freed)?;
        assert_eq!(&layout(&r)?[..], &[(0, K4, 10), (7 * K4, K4, 31)]);
        assert_eq!(&freed[..], &[(11, 1), (20, 2), (30, 1)]);
        assert_eq!(r.bytes(), 2 * K4);
        // Nothing there: nothing freed.
        freed.clear();
        r.punch(2 * K4, 6 * K4, &mut freed)?;
        assert!(freed.is_empty());
        assert_eq!(r.punch(1, K4, &mut freed).err(), Some(EINVAL));
        Ok(())
    }

    #[test]
    fn truncate_drops_the_tail() -> Result {
        let mut r = FileRecords::new();
        r.insert(ext(0, 4 * K4, 10))?;
        r.insert(ext(8 * K4, 4 * K4, 20))?;
        let mut freed = KVec::new();
        // Inside the first record, not on a block boundary: the block with
        // the new end stays.
        r.truncate(2 * K4 + 1, &mut freed)?;
        assert_eq!(&layout(&r)?[..], &[(0, 3 * K4, 10)]);
        assert_eq!(&freed[..], &[(13, 1), (20, 4)]);
        Ok(())
    }

    #[test]
    fn map_at_gives_extents_and_holes() -> Result {
        let mut r = FileRecords::new();
        r.insert(ext(2 * K4, 2 * K4, 50))?;
        let mut pre = ext(6 * K4, K4, 60);
        pre.kind = ExtentKind::Prealloc;
        r.insert(pre)?;
        let size = 10 * K4;
        let hole = r.map_at(K4 + 5, size);
        assert_eq!(
            (hole.start, hole.len, hole.disk_bytenr),
            (0, 2 * K4, u64::MAX - 2)
        );
        let data = r.map_at(3 * K4, size);
        assert_eq!(
            (data.start, data.len, data.disk_bytenr),
            (2 * K4, 2 * K4, 50 * K4)
        );
        let gap = r.map_at(5 * K4, size);
        assert_eq!((gap.start, gap.len), (4 * K4, 2 * K4));
        let p = r.map_at(6 * K4, size);
        assert!(p.flags.contains(EmFlags::PREALLOC));
        // After the last record: a hole to the end of the file.
        let tail = r.map_at(8 * K4, size);
        assert_eq!((tail.start, tail.len), (7 * K4, 3 * K4));
        // Past the end of the file: still at least the block asked for.
        let past = r.map_at(20 * K4, size);
        assert_eq!((past.start, past.end()), (7 * K4, 21 * K4));
        Ok(())
    }
}
