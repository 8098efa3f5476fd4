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
//! change needs at most one new tree node per set: a few spare nodes are
//! kept under the lock, given back by removals and, when short, topped up
//! before it ([`Delalloc::locked`]), so that a change seldom allocates.

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
    sync::{
        SpinLock,
        SpinLockGuard, //
    },
};

/// A tree node, for one range of a set.
type Node = RBTreeNodeReservation<u64, u64>;

/// How many spare nodes a file keeps: the most one change needs.
const SPARES: usize = 3;

/// Spare nodes, kept from removals for the changes that need one.
struct Spares([Option<Node>; SPARES]);

impl Spares {
    fn len(&self) -> usize {
        self.0.iter().filter(|n| n.is_some()).count()
    }

    fn take(&mut self) -> Option<Node> {
        self.0.iter_mut().find_map(Option::take)
    }

    /// Keeps `node` if there is room; it is freed otherwise.
    fn put(&mut self, node: Node) {
        if let Some(slot) = self.0.iter_mut().find(|n| n.is_none()) {
            *slot = Some(node);
        }
    }
}

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

    /// Removes the blocks of `[start, end)`, taking a node from `spares`
    /// for the one range that may need splitting in two (the caller makes
    /// sure there is one) and giving back those it frees. Returns how many
    /// blocks were there.
    fn remove(&mut self, start: u64, end: u64, spares: &mut Spares) -> u64 {
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
                if let Some(node) = spares.take() {
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
            spares.put(node.into_reservation());
        }
        self.blocks -= removed;
        removed
    }

    /// Adds `[start, end)`, none of which is in the set, merged with the
    /// ranges it touches, taking a node from `spares` if it needs one of
    /// its own (the caller makes sure there is one).
    fn add(&mut self, start: u64, end: u64, spares: &mut Spares) {
        let mut new_end = end;
        if let Some((s, e)) = self.after(start).filter(|&(s, _)| s == end) {
            if let Some(node) = self.tree.remove_node(&s) {
                spares.put(node.into_reservation());
            }
            new_end = e;
        }
        match self.at_or_before(start).filter(|&(_, e)| e == start) {
            Some((s, _)) => {
                if let Some(v) = self.tree.get_mut(&s) {
                    *v = new_end;
                }
            }
            None => {
                if let Some(node) = spares.take() {
                    self.tree.insert(node.into_node(start, new_end));
                }
            }
        }
        self.blocks += end - start;
    }
}

impl Ranges {
    fn new() -> Self {
        Self {
            tree: RBTree::new(),
            blocks: 0,
        }
    }

    /// The runs of `[start, end)` not in the set, and their blocks.
    fn gaps(&self, start: u64, end: u64) -> (usize, u64) {
        let (mut runs, mut blocks, mut pos) = (0, 0, start);
        while pos < end {
            let (run_end, inside) = self.run_at(pos, end);
            if !inside {
                runs += 1;
                blocks += run_end - pos;
            }
            pos = run_end;
        }
        (runs, blocks)
    }

    /// The blocks from `start` on, up to `end` at most, that are all in
    /// the set or all not: the end of that run, and whether they are.
    fn run_at(&self, start: u64, end: u64) -> (u64, bool) {
        match self.containing(start) {
            Some((_, e)) => (e.min(end), true),
            None => (self.after(start).map_or(end, |(s, _)| s.min(end)), false),
        }
    }
}

/// What a file's [`Delalloc`] holds.
struct State {
    /// Blocks of dirty page cache, each holding a reservation.
    reserved: Ranges,
    /// Blocks writeback took the reservation of ([`Delalloc::take`]) and
    /// has not yet put in the extent map cache ([`Delalloc::landed`]):
    /// still data for reports, no longer reserved for writes.
    in_flight: Ranges,
    /// Raised each time blocks leave `reserved`.
    seq: u64,
    /// Nodes for the changes of both sets.
    spares: Spares,
}

/// The delayed allocations of one file, in blocks.
#[pin_data]
pub(crate) struct Delalloc {
    #[pin]
    state: SpinLock<State>,
}

/// A tree node for a change of a set, allocated before its lock, in a
/// no-fs scope: callers may hold the invalidate lock or write back.
fn spare() -> Result<Node> {
    nofs(|| RBTreeNodeReservation::new(GFP_KERNEL))
}

impl Delalloc {
    /// No delayed allocation.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            state <- new_spinlock!(
                State {
                    reserved: Ranges::new(),
                    in_flight: Ranges::new(),
                    seq: 0,
                    spares: Spares([const { None }; SPARES]),
                },
                "Delalloc::state"
            ),
        })
    }

    /// The state, locked, with at least `need` spare nodes (at most
    /// [`SPARES`]): those missing are allocated before taking the lock,
    /// and again if others used them meanwhile. `ENOMEM`.
    fn locked(&self, need: usize) -> Result<SpinLockGuard<'_, State>> {
        let mut fresh: [Option<Node>; SPARES] = [const { None }; SPARES];
        loop {
            let mut st = self.state.lock();
            for node in fresh.iter_mut().filter_map(Option::take) {
                st.spares.put(node);
            }
            let have = st.spares.len();
            if have >= need {
                return Ok(st);
            }
            drop(st);
            for slot in fresh.iter_mut().take(need - have) {
                *slot = Some(spare()?);
            }
        }
    }

    /// A number raised each time reserved blocks are taken or given back:
    /// a mapping answered after reading it may rely on blocks it found
    /// reserved only while it is unchanged (iomap's `validity_cookie`).
    pub(crate) fn seq(&self) -> u64 {
        self.state.lock().seq
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
        let mut guard = self.locked(1)?;
        let st = &mut *guard;
        let (run_end, reserved) = st.reserved.run_at(start, end);
        if reserved {
            return Ok((run_end, false));
        }
        let got = disk.reserve_up_to(run_end - start);
        if got == 0 {
            return Err(ENOSPC);
        }
        st.reserved.add(start, start + got, &mut st.spares);
        Ok((start + got, true))
    }

    /// Reserves every block of `[start, end)` that is not, or none:
    /// `ENOSPC` if the disk cannot hold them all, `ENOMEM`. For a page
    /// fault, which dirties a whole folio at once.
    pub(crate) fn reserve_all(&self, disk: &Disk, start: u64, end: u64) -> Result {
        let mut spares = KVec::new();
        loop {
            // One node per run not reserved, made before the lock; if the
            // runs changed meanwhile, again.
            let mut guard = self.state.lock();
            let st = &mut *guard;
            let gaps = st.reserved.gaps(start, end);
            while st.spares.len() < SPARES {
                let Some(node) = spares.pop() else {
                    break;
                };
                st.spares.put(node);
            }
            if gaps.0 <= st.spares.len() + spares.len() {
                if gaps.1 == 0 {
                    return Ok(());
                }
                disk.reserve(gaps.1)?;
                let mut pos = start;
                while pos < end {
                    let (run_end, reserved) = st.reserved.run_at(pos, end);
                    if !reserved {
                        if st.spares.len() == 0 {
                            let Some(node) = spares.pop() else {
                                break;
                            };
                            st.spares.put(node);
                        }
                        st.reserved.add(pos, run_end, &mut st.spares);
                    }
                    pos = run_end;
                }
                return Ok(());
            }
            let need = gaps.0 - st.spares.len();
            drop(guard);
            while spares.len() < need {
                spares.push(spare()?, GFP_KERNEL)?;
            }
        }
    }

    /// The blocks from `start` on, up to `end` at most, that are all
    /// delayed allocations (reserved, or taken by a writeback that has not
    /// landed) or all not: returns the end of that run, and whether they
    /// are. For reports (FIEMAP, `SEEK_DATA`).
    pub(crate) fn run_at(&self, start: u64, end: u64) -> (u64, bool) {
        let st = self.state.lock();
        let (e1, r1) = st.reserved.run_at(start, end);
        let (e2, r2) = st.in_flight.run_at(start, end);
        match (r1, r2) {
            (true, true) => (e1.max(e2), true),
            (true, false) => (e1, true),
            (false, true) => (e2, true),
            (false, false) => (e1.min(e2), false),
        }
    }

    /// Takes the blocks of `[start, end)` out of the set: writeback is
    /// about to allocate them from their reservation, which stays counted
    /// in the disk's. They stay delayed allocations for reports until
    /// [`Delalloc::landed`]. Returns how many were reserved; `ENOMEM`,
    /// changing nothing.
    pub(crate) fn take(&self, start: u64, end: u64) -> Result<u64> {
        if start >= end {
            return Ok(0);
        }
        // A split of each set, and the new range: three nodes at most,
        // though each removal gives back what it frees.
        let mut guard = self.locked(3)?;
        let st = &mut *guard;
        let n = st.reserved.remove(start, end, &mut st.spares);
        st.in_flight.remove(start, end, &mut st.spares);
        st.in_flight.add(start, end, &mut st.spares);
        st.seq += 1;
        Ok(n)
    }

    /// Writeback put `[start, end)`, which it took, in the extent map
    /// cache (or gave up on it). `ENOMEM`, changing nothing.
    pub(crate) fn landed(&self, start: u64, end: u64) -> Result {
        if start >= end {
            return Ok(());
        }
        let mut guard = self.locked(1)?;
        let st = &mut *guard;
        st.in_flight.remove(start, end, &mut st.spares);
        Ok(())
    }

    /// Gives back the reservation of every block of `[start, end)` in the
    /// set: its page cache went away, or was never dirtied. `ENOMEM`,
    /// changing nothing.
    pub(crate) fn release(&self, disk: &Disk, start: u64, end: u64) -> Result {
        if start >= end {
            return Ok(());
        }
        let n = {
            let mut guard = self.locked(1)?;
            let st = &mut *guard;
            st.seq += 1;
            st.reserved.remove(start, end, &mut st.spares)
        };
        if n > 0 {
            disk.unreserve(n)?;
        }
        Ok(())
    }

    /// Gives back every reservation: the file is being evicted, its page
    /// cache gone. Allocates nothing (eviction runs from reclaim).
    pub(crate) fn release_all(&self, disk: &Disk) {
        let (reserved, in_flight, n) = {
            let mut st = self.state.lock();
            let n = core::mem::replace(&mut st.reserved.blocks, 0);
            st.in_flight.blocks = 0;
            st.seq += 1;
            (
                core::mem::take(&mut st.reserved.tree),
                core::mem::take(&mut st.in_flight.tree),
                n,
            )
        };
        // The nodes are freed outside the lock.
        drop((reserved, in_flight));
        if n > 0 {
            let _ = disk.unreserve(n);
        }
    }

    /// How many blocks are reserved, and how many are in flight.
    pub(crate) fn blocks(&self) -> (u64, u64) {
        let st = self.state.lock();
        (st.reserved.blocks, st.in_flight.blocks)
    }

    /// Appends the reserved ranges, in order, to `out`, as far as its
    /// capacity goes (it is not grown under the lock). Returns whether they
    /// all fit.
    pub(crate) fn ranges(&self, out: &mut KVec<(u64, u64)>) -> bool {
        let st = self.state.lock();
        for (&s, &e) in st.reserved.tree.iter() {
            if out.push_within_capacity((s, e)).is_err() {
                return false;
            }
        }
        true
    }

    /// How many ranges are reserved.
    pub(crate) fn nr_ranges(&self) -> usize {
        self.state.lock().reserved.tree.iter().count()
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
        kunit_ensure!(d.blocks().0 == 30 && disk.nr_reserved() == 30);
        kunit_ensure!(d.run_at(0, 100) == (10, false));
        kunit_ensure!(d.run_at(15, 100) == (40, true));
        kunit_ensure!(d.run_at(40, 100) == (100, false));
        d.release(&disk, 0, 100)?;
        kunit_ensure!(d.blocks().0 == 0 && disk.nr_reserved() == 0);
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
        kunit_ensure!(disk.nr_available() == 0 && d.blocks().0 == 8);
        d.release(&disk, 0, u64::MAX >> 12)?;
        kunit_ensure!(disk.nr_available() == 8 && d.blocks().0 == 0);
        Ok(())
    }

    #[test]
    fn reserve_all_is_all_or_nothing() -> Result {
        let disk = KBox::pin_init(Disk::new(10), GFP_KERNEL)?;
        let d = KBox::pin_init(Delalloc::new(), GFP_KERNEL)?;
        d.reserve(&disk, 2, 4)?;
        d.reserve(&disk, 6, 7)?;
        // Three runs to fill, five blocks: all of them.
        d.reserve_all(&disk, 0, 8)?;
        kunit_ensure!(contents(&d)?[..] == [(0, 8)]);
        kunit_ensure!(disk.nr_available() == 2);
        // Four more do not fit: nothing changes.
        kunit_ensure!(refusal(d.reserve_all(&disk, 8, 12))? == Some(ENOSPC));
        kunit_ensure!(contents(&d)?[..] == [(0, 8)] && disk.nr_available() == 2);
        d.release_all(&disk);
        kunit_ensure!(disk.nr_available() == 10 && d.blocks() == (0, 0));
        Ok(())
    }

    #[test]
    fn taken_blocks_report_until_they_land() -> Result {
        let disk = KBox::pin_init(Disk::new(10), GFP_KERNEL)?;
        let d = KBox::pin_init(Delalloc::new(), GFP_KERNEL)?;
        d.reserve(&disk, 0, 4)?;
        let seq = d.seq();
        kunit_ensure!(d.take(0, 2)? == 2);
        // A mapping that relied on the reservation is stale.
        kunit_ensure!(d.seq() != seq);
        // Not reserved for a write any more, but still data for a report.
        kunit_ensure!(d.reserve(&disk, 0, 4)? == (2, true));
        kunit_ensure!(d.run_at(0, 10) == (4, true));
        d.release(&disk, 0, 2)?;
        kunit_ensure!(d.run_at(0, 10) == (2, true));
        d.landed(0, 2)?;
        kunit_ensure!(d.run_at(0, 10) == (2, false) && d.blocks() == (2, 0));
        disk.unreserve(2)?;
        d.release_all(&disk);
        kunit_ensure!(disk.nr_reserved() == 0);
        Ok(())
    }

    #[test]
    fn removals_keep_their_nodes_for_later_changes() -> Result {
        let disk = KBox::pin_init(Disk::new(100), GFP_KERNEL)?;
        let d = KBox::pin_init(Delalloc::new(), GFP_KERNEL)?;
        for i in 0..4 {
            d.reserve(&disk, i * 10, i * 10 + 5)?;
        }
        // Four ranges gone: as many nodes kept as a change can need.
        d.release(&disk, 0, 100)?;
        let kept = d.state.lock().spares.len();
        kunit_ensure!(kept == SPARES);
        // A take and its landing with the nodes at hand: the four ranges
        // again, split, taken, landed, given back.
        for i in 0..4 {
            d.reserve(&disk, i * 10, i * 10 + 5)?;
        }
        kunit_ensure!(d.take(2, 32)? == 3 + 5 + 5 + 2);
        d.landed(2, 32)?;
        kunit_ensure!(contents(&d)?[..] == [(0, 2), (32, 35)]);
        disk.unreserve(15)?;
        d.release(&disk, 0, 100)?;
        let kept = d.state.lock().spares.len();
        kunit_ensure!(kept == SPARES && disk.nr_reserved() == 0 && d.blocks() == (0, 0));
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
        kunit_ensure!(disk.nr_reserved() == 30 && d.blocks().0 == 11);
        disk.unreserve(19)?;
        d.release(&disk, 3, 46)?;
        kunit_ensure!(contents(&d)?[..] == [(0, 3), (46, 50)]);
        kunit_ensure!(disk.nr_reserved() == 7 && d.blocks().0 == 7);
        // Nothing there: nothing taken.
        kunit_ensure!(d.take(10, 40)? == 0);
        d.release(&disk, 0, 100)?;
        kunit_ensure!(disk.nr_reserved() == 0);
        Ok(())
    }
}
