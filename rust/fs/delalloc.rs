// SPDX-License-Identifier: GPL-2.0

//! Delayed allocation: the blocks of a file whose page cache is dirty and
//! not yet written back, each holding a reservation of one disk block.
//!
//! A write reserves space when it dirties page cache, through
//! `->iomap_begin` ([`Delalloc::reserve`]), so that a full disk refuses
//! the write(2) or the page fault with `ENOSPC` and never fails writeback;
//! writeback takes the reservation of what it writes ([`Delalloc::take`])
//! and allocates its copy-on-write blocks from it. What is reserved and
//! never dirtied (a short write) or dirtied and dropped (truncate, punch,
//! eviction) is given back ([`Delalloc::release`]). XFS keeps the same
//! state as delalloc extents in its in-core extent tree, btrfs as
//! `EXTENT_DELALLOC` ranges of its io tree; here it is a set of block
//! ranges per file, beside the extent map cache, which holds only what is
//! on disk or on its way there.
//!
//! The set is an `RBTree` of ranges (first block to end block), apart and
//! not touching, under a spinlock taken last of every lock (a leaf): after
//! the folio lock in a page fault, and never held while allocating. Each
//! change needs at most one new tree node, allocated before the lock.

use crate::{
    fs::disk::Disk,
    glue::alloc::nofs, //
};
use kernel::{
    new_spinlock,
    prelude::*,
    rbtree::{
        RBTree,
        RBTreeNodeReservation, //
    },
    sync::SpinLock,
};

/// The reserved ranges and their number of blocks.
struct Ranges {
    tree: RBTree<u64, u64>,
    blocks: u64,
}

impl Ranges {
    /// The range starting at or before `block`, if any.
    fn at_or_before(&self, block: u64) -> Option<(u64, u64)> {
        if let Some(&end) = self.tree.get(&block) {
            return Some((block, end));
        }
        match self.tree.cursor_lower_bound(&block) {
            Some(c) => c.peek_prev().map(|(&s, &e)| (s, e)),
            None => self
                .tree
                .cursor_back()
                .map(|c| (*c.current().0, *c.current().1)),
        }
    }

    /// The first range starting at or after `block`, if any.
    fn at_or_after(&self, block: u64) -> Option<(u64, u64)> {
        self.tree
            .cursor_lower_bound(&block)
            .map(|c| (*c.current().0, *c.current().1))
    }

    /// The first range starting after `block`, if any.
    fn after(&self, block: u64) -> Option<(u64, u64)> {
        self.at_or_after(block.checked_add(1)?)
    }

    /// The range holding `block`, if it is reserved.
    fn containing(&self, block: u64) -> Option<(u64, u64)> {
        self.at_or_before(block).filter(|&(_, e)| e > block)
    }

    /// Removes the blocks of `[start, end)`, using `spare` for the one
    /// range that may need splitting in two. Returns how many were there.
    fn remove(&mut self, start: u64, end: u64, spare: RBTreeNodeReservation<u64, u64>) -> u64 {
        let mut spare = Some(spare);
        let mut removed = 0;
        // A range starting before `start` keeps its head.
        if let Some((s, e)) = self
            .at_or_before(start)
            .filter(|&(s, e)| s < start && e > start)
        {
            if let Some(v) = self.tree.get_mut(&s) {
                *v = start;
            }
            removed += e.min(end) - start;
            if e > end {
                if let Some(node) = spare.take() {
                    self.tree.insert(node.into_node(end, e));
                }
                self.blocks -= removed;
                return removed;
            }
        }
        // Ranges starting in `[start, end)`: gone, but for the tail of the
        // last one, which moves to `end` in the same node.
        while let Some((s, e)) = self.at_or_after(start).filter(|&(s, _)| s < end) {
            let Some(node) = self.tree.remove_node(&s) else {
                break;
            };
            removed += e.min(end) - s;
            if e > end {
                self.tree.insert(node.into_reservation().into_node(end, e));
                break;
            }
        }
        self.blocks -= removed;
        removed
    }

    /// Adds `[start, end)`, none of which is in the set, merged with the
    /// ranges it touches, using `spare` if it needs a node of its own.
    fn add(&mut self, start: u64, end: u64, spare: RBTreeNodeReservation<u64, u64>) {
        let mut new_end = end;
        if let Some((s, e)) = self.after(start).filter(|&(s, _)| s == end) {
            self.tree.remove(&s);
            new_end = e;
        }
        match self.at_or_before(start).filter(|&(_, e)| e == start) {
            Some((s, _)) => {
                if let Some(v) = self.tree.get_mut(&s) {
                    *v = new_end;
                }
            }
            None => {
                self.tree.insert(spare.into_node(start, new_end));
            }
        }
        self.blocks += end - start;
    }
}

/// The delayed allocations of one file, in blocks.
#[pin_data]
pub(crate) struct Delalloc {
    #[pin]
    ranges: SpinLock<Ranges>,
}

/// A tree node for one change of the set, allocated before its lock, in a
/// no-fs scope: callers may hold the invalidate lock or write back.
fn spare() -> Result<RBTreeNodeReservation<u64, u64>> {
    nofs(|| RBTreeNodeReservation::new(GFP_KERNEL))
}

impl Delalloc {
    /// No delayed allocation.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            ranges <- new_spinlock!(Ranges { tree: RBTree::new(), blocks: 0 }, "Delalloc::ranges"),
        })
    }

    /// The blocks from `start` on, up to `end` at most, that are all
    /// reserved or all not, reserved if they were not: returns the end of
    /// that run and whether this call reserved it. A run that the disk
    /// cannot hold whole ends where the free space does. `ENOSPC` if not
    /// one block is free, `ENOMEM`.
    pub(crate) fn reserve(&self, disk: &Disk, start: u64, end: u64) -> Result<(u64, bool)> {
        if start >= end {
            return Err(EINVAL);
        }
        let spare = spare()?;
        let mut r = self.ranges.lock();
        if let Some((_, e)) = r.containing(start) {
            return Ok((e.min(end), false));
        }
        let run_end = r.after(start).map_or(end, |(s, _)| s.min(end));
        let got = disk.reserve_up_to(run_end - start);
        if got == 0 {
            return Err(ENOSPC);
        }
        r.add(start, start + got, spare);
        Ok((start + got, true))
    }

    /// The blocks from `start` on, up to `end` at most, that are all
    /// reserved or all not: returns the end of that run, and whether they
    /// are reserved. For reports (FIEMAP, `SEEK_DATA`).
    pub(crate) fn run_at(&self, start: u64, end: u64) -> (u64, bool) {
        let r = self.ranges.lock();
        match r.containing(start) {
            Some((_, e)) => (e.min(end), true),
            None => (r.after(start).map_or(end, |(s, _)| s.min(end)), false),
        }
    }

    /// Takes the blocks of `[start, end)` out of the set: writeback is
    /// about to allocate them from their reservation, which stays counted
    /// in the disk's. Returns how many were reserved; `ENOMEM`, changing
    /// nothing.
    pub(crate) fn take(&self, start: u64, end: u64) -> Result<u64> {
        if start >= end {
            return Ok(0);
        }
        let spare = spare()?;
        Ok(self.ranges.lock().remove(start, end, spare))
    }

    /// Gives back the reservation of every block of `[start, end)` in the
    /// set: its page cache went away, or was never dirtied. `ENOMEM`,
    /// changing nothing.
    pub(crate) fn release(&self, disk: &Disk, start: u64, end: u64) -> Result {
        let n = self.take(start, end)?;
        if n > 0 {
            disk.unreserve(n)?;
        }
        Ok(())
    }

    /// Gives back every reservation: the file is being evicted, its page
    /// cache gone. Allocates nothing (eviction runs from reclaim).
    pub(crate) fn release_all(&self, disk: &Disk) {
        let (tree, n) = {
            let mut r = self.ranges.lock();
            let n = core::mem::replace(&mut r.blocks, 0);
            (core::mem::take(&mut r.tree), n)
        };
        // The nodes are freed outside the lock.
        drop(tree);
        if n > 0 {
            let _ = disk.unreserve(n);
        }
    }

    /// How many blocks are reserved.
    pub(crate) fn blocks(&self) -> u64 {
        self.ranges.lock().blocks
    }

    /// Appends the reserved ranges, in order, to `out`, as far as its
    /// capacity goes (it is not grown under the lock). Returns whether they
    /// all fit.
    pub(crate) fn ranges(&self, out: &mut KVec<(u64, u64)>) -> bool {
        let r = self.ranges.lock();
        for (&s, &e) in r.tree.iter() {
            if out.push_within_capacity((s, e)).is_err() {
                return false;
            }
        }
        true
    }

    /// How many ranges are reserved.
    pub(crate) fn nr_ranges(&self) -> usize {
        self.ranges.lock().tree.iter().count()
    }
}

#[kernel::macros::kunit_tests(emfs_delalloc)]
mod tests {
    use super::*;
    use crate::glue::{alloc::refusal, kunit::kunit_ensure};

    fn contents(d: &Delalloc) -> Result<KVec<(u64, u64)>> {
        let mut v = KVec::with_capacity(d.nr_ranges() + 4, GFP_KERNEL)?;
        kunit_ensure!(d.ranges(&mut v));
        Ok(v)
    }

    #[test]
    fn reserve_takes_runs_and_merges() -> Result {
        let disk = KBox::pin_init(Disk::new(100), GFP_KERNEL)?;
        let d = KBox::pin_init(Delalloc::new(), GFP_KERNEL)?;
        kunit_ensure!(d.reserve(&disk, 10, 20)? == (20, true));
        kunit_ensure!(disk.nr_reserved() == 10);
        // Already reserved: the run ends with the range, or with the ask.
        kunit_ensure!(d.reserve(&disk, 12, 30)? == (20, false));
        kunit_ensure!(d.reserve(&disk, 12, 15)? == (15, false));
        // Not reserved: up to the next range, and merged with both sides.
        kunit_ensure!(d.reserve(&disk, 30, 40)? == (40, true));
        kunit_ensure!(d.reserve(&disk, 20, 50)? == (30, true));
        kunit_ensure!(contents(&d)?[..] == [(10, 40)]);
        kunit_ensure!(d.blocks() == 30 && disk.nr_reserved() == 30);
        kunit_ensure!(d.run_at(0, 100) == (10, false));
        kunit_ensure!(d.run_at(15, 100) == (40, true));
        kunit_ensure!(d.run_at(40, 100) == (100, false));
        d.release(&disk, 0, 100)?;
        kunit_ensure!(d.blocks() == 0 && disk.nr_reserved() == 0);
        Ok(())
    }

    #[test]
    fn a_full_disk_reserves_what_it_has() -> Result {
        let disk = KBox::pin_init(Disk::new(8), GFP_KERNEL)?;
        let d = KBox::pin_init(Delalloc::new(), GFP_KERNEL)?;
        kunit_ensure!(d.reserve(&disk, 0, 5)? == (5, true));
        // Three blocks left: a run of ten gets three, then nothing.
        kunit_ensure!(d.reserve(&disk, 100, 110)? == (103, true));
        kunit_ensure!(refusal(d.reserve(&disk, 103, 110))? == Some(ENOSPC));
        // What is reserved still answers.
        kunit_ensure!(d.reserve(&disk, 101, 110)? == (103, false));
        kunit_ensure!(disk.nr_available() == 0 && d.blocks() == 8);
        d.release(&disk, 0, u64::MAX >> 12)?;
        kunit_ensure!(disk.nr_available() == 8 && d.blocks() == 0);
        Ok(())
    }

    #[test]
    fn take_and_release_split_ranges() -> Result {
        let disk = KBox::pin_init(Disk::new(100), GFP_KERNEL)?;
        let d = KBox::pin_init(Delalloc::new(), GFP_KERNEL)?;
        d.reserve(&disk, 0, 10)?;
        d.reserve(&disk, 20, 30)?;
        d.reserve(&disk, 40, 50)?;
        // The middle of one range: split in two.
        kunit_ensure!(d.take(4, 6)? == 2);
        kunit_ensure!(contents(&d)?[..] == [(0, 4), (6, 10), (20, 30), (40, 50)]);
        // Across ranges and the holes between them.
        kunit_ensure!(d.take(8, 45)? == 2 + 10 + 5);
        kunit_ensure!(contents(&d)?[..] == [(0, 4), (6, 8), (45, 50)]);
        // Taking leaves the reservation to the disk's count; releasing
        // gives it back.
        kunit_ensure!(disk.nr_reserved() == 30 && d.blocks() == 11);
        disk.unreserve(19)?;
        d.release(&disk, 3, 46)?;
        kunit_ensure!(contents(&d)?[..] == [(0, 3), (46, 50)]);
        kunit_ensure!(disk.nr_reserved() == 7 && d.blocks() == 7);
        // Nothing there: nothing taken.
        kunit_ensure!(d.take(10, 40)? == 0);
        d.release(&disk, 0, 100)?;
        kunit_ensure!(disk.nr_reserved() == 0);
        Ok(())
    }
}
