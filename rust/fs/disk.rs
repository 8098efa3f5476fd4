// SPDX-License-Identifier: GPL-2.0

//! The simulated disk of an emfs: `nr_blocks` blocks of 4 KiB, an
//! allocator of free extents, and the blocks' contents.
//!
//! Free space is an `RBTree` of free extents (start block to length),
//! merged with their neighbours when blocks are freed; allocation is first
//! fit and may return several extents when free space is fragmented, or
//! `ENOSPC` (taking nothing) when there is not enough. Contents are kept
//! only for blocks that were written, in an `XArray`; a block never written
//! reads as zeroes, and freeing a block forgets its contents.
//!
//! Space for dirty page cache is reserved when it is dirtied
//! ([`Disk::reserve`], btrfs's delalloc reservation), so that writeback,
//! which allocates copy-on-write blocks, never meets a full disk:
//! [`Disk::alloc_reserved`] takes blocks from the reservation, plain
//! [`Disk::alloc`] only from what is neither allocated nor reserved.
//!
//! # Lock order
//!
//! `Disk::free` (mutex) and `Disk::data` (the XArray's spinlock) are never
//! held together.

use kernel::{
    new_mutex,
    prelude::*,
    rbtree::{
        RBTree,
        RBTreeNodeReservation, //
    },
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Mutex,
    },
    xarray::{
        self,
        XArray, //
    },
};

/// Bytes per block.
pub(crate) const BLOCK_SIZE: usize = 4096;

/// The contents of one block.
pub(crate) type Block = [u8; BLOCK_SIZE];

/// Free extents: start block to number of blocks.
///
/// # Invariants
///
/// `nr_free` is the sum of the extents' lengths.
struct FreeSpace {
    extents: RBTree<u64, u64>,
    nr_free: u64,
}

/// A disk's recount, from [`Disk::check`].
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct DiskCheck {
    /// Blocks the files hold.
    pub(crate) used: u64,
    /// Free blocks.
    pub(crate) free: u64,
    /// Free blocks reserved for dirty page cache.
    pub(crate) reserved: u64,
    /// Problems found (each logged).
    pub(crate) problems: u64,
}

/// A simulated disk.
///
/// # Invariants
///
/// `available <= free.nr_free`: the free blocks not reserved. Reserving
/// only lowers it, without the lock (it is on the path of every write);
/// everything else changes it under `free`.
#[pin_data]
pub(crate) struct Disk {
    nr_blocks: u64,
    available: Atomic<u64>,
    #[pin]
    free: Mutex<FreeSpace>,
    #[pin]
    data: XArray<KBox<Block>>,
}

impl Disk {
    /// A disk of `nr_blocks` free blocks. `ENOMEM`.
    pub(crate) fn new(nr_blocks: u64) -> impl PinInit<Self, Error> {
        let free_blocks = nr_blocks;
        let mut extents = RBTree::new();
        let first = if nr_blocks > 0 {
            extents
                .try_create_and_insert(0, nr_blocks, GFP_KERNEL)
                .map(|_| ())
        } else {
            Ok(())
        };
        try_pin_init!(Self {
            nr_blocks,
            available: Atomic::new(free_blocks),
            free <- {
                first?;
                new_mutex!(FreeSpace {
                    extents,
                    nr_free: free_blocks,
                })
            },
            data <- XArray::new(xarray::AllocKind::Alloc),
        }? Error)
    }

    /// Number of blocks.
    pub(crate) fn nr_blocks(&self) -> u64 {
        self.nr_blocks
    }

    /// Number of free blocks, reserved ones included.
    pub(crate) fn nr_free(&self) -> u64 {
        self.free.lock().nr_free
    }

    /// Number of free blocks neither allocated nor reserved.
    pub(crate) fn nr_available(&self) -> u64 {
        self.available.load(Relaxed)
    }

    /// Number of reserved blocks.
    pub(crate) fn nr_reserved(&self) -> u64 {
        let free = self.free.lock();
        free.nr_free - self.available.load(Relaxed)
    }

    /// Reserves `nr` free blocks for a later [`Disk::alloc_reserved`].
    /// `ENOSPC` if fewer are available. Lock free.
    pub(crate) fn reserve(&self, nr: u64) -> Result {
        let mut cur = self.available.load(Relaxed);
        loop {
            if nr > cur {
                return Err(ENOSPC);
            }
            match self.available.cmpxchg(cur, cur - nr, Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        }
    }

    /// Gives back `nr` reserved blocks; more than are reserved is a
    /// bookkeeping bug, refused with `EINVAL`.
    pub(crate) fn unreserve(&self, nr: u64) -> Result {
        let free = self.free.lock();
        let reserved = free.nr_free - self.available.load(Relaxed);
        if nr > reserved {
            pr_err!("disk: unreserving {} of {} reserved blocks\n", nr, reserved);
            return Err(EINVAL);
        }
        self.available.add(nr, Relaxed);
        Ok(())
    }

    /// Allocates `nr` blocks, first fit, appending the extents they form to
    /// `out` as `(start, len)`. All or nothing: `ENOSPC` if fewer than `nr`
    /// blocks are available, `ENOMEM` if `out` cannot grow.
    pub(crate) fn alloc(&self, nr: u64, out: &mut KVec<(u64, u64)>) -> Result {
        self.reserve(nr)?;
        self.alloc_reserved(nr, out).inspect_err(|_| {
            self.available.add(nr, Relaxed);
        })
    }

    /// Allocates `nr` blocks reserved by [`Disk::reserve`], as
    /// [`Disk::alloc`] does. `ENOSPC` if fewer are reserved.
    pub(crate) fn alloc_reserved(&self, nr: u64, out: &mut KVec<(u64, u64)>) -> Result {
        let mut free = self.free.lock();
        if nr > free.nr_free - self.available.load(Relaxed) {
            return Err(ENOSPC);
        }
        self.alloc_locked(&mut free, nr, out)
    }

    fn alloc_locked(&self, free: &mut FreeSpace, nr: u64, out: &mut KVec<(u64, u64)>) -> Result {
        // Room for the answer first: nothing changes if this fails.
        let first = out.len();
        let mut left = nr;
        for (&start, &len) in free.extents.iter() {
            if left == 0 {
                break;
            }
            let take = len.min(left);
            out.push((start, take), GFP_KERNEL)
                .inspect_err(|_| out.truncate(first))?;
            left -= take;
        }
        for &(start, take) in &out[first..] {
            let Some(&len) = free.extents.get(&start) else {
                continue;
            };
            let Some(node) = free.extents.remove_node(&start) else {
                continue;
            };
            if take < len {
                // The rest of the extent stays free, starting later, in the
                // same node.
                free.extents
                    .insert(node.into_reservation().into_node(start + take, len - take));
            }
        }
        free.nr_free -= nr;
        Ok(())
    }

    /// Frees `len` blocks from `start` and forgets their contents. Blocks
    /// outside the disk or already free are refused with `EINVAL` (a bug in
    /// the caller's bookkeeping), and nothing changes.
    pub(crate) fn free(&self, start: u64, len: u64) -> Result {
        self.free_to(start, len, false)
    }

    /// Gives back blocks from [`Disk::alloc_reserved`] that were not used,
    /// as [`Disk::free`] does, and reserves them again.
    pub(crate) fn unalloc(&self, start: u64, len: u64) -> Result {
        self.free_to(start, len, true)
    }

    fn free_to(&self, start: u64, len: u64, reserve: bool) -> Result {
        let end = start.checked_add(len).ok_or(EINVAL)?;
        if len == 0 || end > self.nr_blocks {
            return Err(EINVAL);
        }
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        {
            let mut free = self.free.lock();
            // The free extent before, and the one after.
            let prev = free
                .extents
                .cursor_lower_bound(&start)
                .and_then(|c| c.peek_prev().map(|(&s, &l)| (s, l)))
                .or_else(|| {
                    free.extents
                        .cursor_back()
                        .map(|c| (*c.current().0, *c.current().1))
                        .filter(|&(s, _)| s < start)
                });
            let next = free
                .extents
                .cursor_lower_bound(&start)
                .map(|c| (*c.current().0, *c.current().1));
            if prev.is_some_and(|(s, l)| s + l > start) || next.is_some_and(|(s, _)| s < end) {
                pr_err!(
                    "disk: freeing blocks [{}, {}) that are already free\n",
                    start,
                    end
                );
                return Err(EINVAL);
            }
            let (mut new_start, mut new_len) = (start, len);
            if let Some((s, l)) = prev.filter(|&(s, l)| s + l == start) {
                free.extents.remove(&s);
                new_start = s;
                new_len += l;
            }
            if let Some((s, l)) = next.filter(|&(s, _)| s == end) {
                free.extents.remove(&s);
                new_len += l;
            }
            let _ = free.extents.insert(node.into_node(new_start, new_len));
            free.nr_free += len;
            if !reserve {
                self.available.add(len, Relaxed);
            }
        }
        let mut data = self.data.lock();
        for block in start..end {
            drop(data.remove(block as usize));
        }
        Ok(())
    }

    /// Stores `data`, in order, in the blocks of `pieces` (as from
    /// [`Disk::alloc`]), which must hold as many blocks as `data`.
    /// `EINVAL`, or `ENOMEM` having stored only some: the caller frees the
    /// pieces, which forgets them.
    pub(crate) fn store_blocks(&self, pieces: &[(u64, u64)], data: KVec<KBox<Block>>) -> Result {
        let total: u64 = pieces.iter().map(|&(_, n)| n).sum();
        if total != data.len() as u64
            || pieces
                .iter()
                .any(|&(b, n)| b.checked_add(n).is_none_or(|e| e > self.nr_blocks))
        {
            return Err(EINVAL);
        }
        let mut data = data.into_iter();
        let mut xa = self.data.lock();
        for &(start, n) in pieces {
            for block in start..start + n {
                let Some(buf) = data.next() else {
                    return Err(EINVAL);
                };
                xa.store(block as usize, buf, GFP_KERNEL)
                    .map_err(|e| e.error)?;
            }
        }
        Ok(())
    }

    /// Checks the free space (extents in order, apart, merged and on the
    /// disk, adding up to the free count, with no more available than
    /// free) and that `used`, every piece of the disk the files hold,
    /// covers each block that is not free exactly once. Problems are
    /// logged and counted. Exact when no block is being allocated or freed.
    pub(crate) fn check(&self, used: &mut [(u64, u64)]) -> DiskCheck {
        let mut c = DiskCheck::default();
        let mut problem = |what: core::fmt::Arguments<'_>| {
            pr_err!("check: disk: {}\n", what);
            c.problems += 1;
        };
        used.sort_unstable();
        let free = self.free.lock();
        let mut prev_end = None;
        let mut counted = 0u64;
        for (&start, &len) in free.extents.iter() {
            counted += len;
            if len == 0 || start.checked_add(len).is_none_or(|e| e > self.nr_blocks) {
                problem(format_args!(
                    "free extent [{}, +{}) is off the disk",
                    start, len
                ));
            }
            match prev_end {
                Some(e) if start < e => problem(format_args!("free extent {} overlaps", start)),
                Some(e) if start == e => problem(format_args!("free extent {} not merged", start)),
                _ => {}
            }
            prev_end = Some(start + len);
        }
        if counted != free.nr_free {
            problem(format_args!(
                "free count {} but {} counted",
                free.nr_free, counted
            ));
        }
        let available = self.available.load(Relaxed);
        if available > free.nr_free {
            problem(format_args!(
                "{} available of {} free",
                available, free.nr_free
            ));
        }
        // Walk the used pieces and the free extents together, in order.
        let mut frees = free.extents.iter().map(|(&s, &l)| (s, l)).peekable();
        let mut pos = 0;
        for &(start, n) in used.iter() {
            c.used += n;
            while let Some(&(fs, fl)) = frees.peek() {
                if fs >= start + n {
                    break;
                }
                if fs + fl > start {
                    problem(format_args!("blocks [{}, +{}) used and free", start, n));
                }
                frees.next();
            }
            if start < pos {
                problem(format_args!("blocks [{}, +{}) used twice", start, n));
            }
            pos = pos.max(start + n);
        }
        if c.used + free.nr_free != self.nr_blocks {
            problem(format_args!(
                "{} blocks used and {} free, on a disk of {}",
                c.used, free.nr_free, self.nr_blocks
            ));
        }
        c.free = free.nr_free;
        c.reserved = free.nr_free.saturating_sub(available);
        c
    }

    /// Reads one block; a block never written reads as zeroes. `EINVAL`
    /// outside the disk.
    pub(crate) fn read_block(&self, block: u64, dst: &mut Block) -> Result {
        if block >= self.nr_blocks {
            return Err(EINVAL);
        }
        match self.data.lock().get(block as usize) {
            Some(stored) => dst.copy_from_slice(&stored[..]),
            None => dst.fill(0),
        }
        Ok(())
    }
}

#[kernel::macros::kunit_tests(emfs_disk)]
mod tests {
    use super::*;
    use crate::glue::alloc::refusal;

    fn disk(nr: u64) -> Result<Pin<KBox<Disk>>> {
        KBox::pin_init(Disk::new(nr), GFP_KERNEL)
    }

    #[test]
    fn alloc_and_free_account_blocks() -> Result {
        let d = disk(100)?;
        let mut got = KVec::new();
        d.alloc(30, &mut got)?;
        assert_eq!(&got[..], &[(0, 30)]);
        assert_eq!(d.nr_free(), 70);
        d.free(0, 30)?;
        assert_eq!(d.nr_free(), 100);
        Ok(())
    }

    #[test]
    fn alloc_is_all_or_nothing() -> Result {
        let d = disk(10)?;
        let mut got = KVec::new();
        assert_eq!(d.alloc(11, &mut got).err(), Some(ENOSPC));
        assert!(got.is_empty());
        assert_eq!(d.nr_free(), 10);
        d.alloc(10, &mut got)?;
        assert_eq!(d.alloc(1, &mut got).err(), Some(ENOSPC));
        assert_eq!(d.nr_free(), 0);
        Ok(())
    }

    #[test]
    fn fragmented_alloc_takes_several_extents() -> Result {
        let d = disk(10)?;
        let mut got = KVec::new();
        d.alloc(10, &mut got)?;
        // Free every other block: five holes of one block.
        for b in (0..10).step_by(2) {
            d.free(b, 1)?;
        }
        let mut again = KVec::new();
        d.alloc(3, &mut again)?;
        assert_eq!(&again[..], &[(0, 1), (2, 1), (4, 1)]);
        assert_eq!(d.nr_free(), 2);
        Ok(())
    }

    #[test]
    fn free_merges_neighbours() -> Result {
        let d = disk(12)?;
        let mut got = KVec::new();
        d.alloc(12, &mut got)?;
        d.free(0, 4)?;
        d.free(8, 4)?;
        d.free(4, 4)?;
        // One extent again: a 12-block allocation fits in one piece.
        let mut again = KVec::new();
        d.alloc(12, &mut again)?;
        assert_eq!(&again[..], &[(0, 12)]);
        Ok(())
    }

    #[test]
    fn bad_frees_are_refused() -> Result {
        let d = disk(8)?;
        let mut got = KVec::new();
        d.alloc(4, &mut got)?;
        // Already free, outside the disk, empty, overflowing.
        assert_eq!(refusal(d.free(4, 1))?, Some(EINVAL));
        assert_eq!(refusal(d.free(2, 3))?, Some(EINVAL));
        assert_eq!(refusal(d.free(8, 1))?, Some(EINVAL));
        assert_eq!(refusal(d.free(0, 0))?, Some(EINVAL));
        assert_eq!(refusal(d.free(1, u64::MAX))?, Some(EINVAL));
        assert_eq!(d.nr_free(), 4);
        Ok(())
    }

    #[test]
    fn blocks_keep_their_data_until_freed() -> Result {
        let d = disk(4)?;
        let mut got = KVec::new();
        d.alloc(4, &mut got)?;
        let mut data = KVec::new();
        data.push(
            KBox::<Block>::init(pin_init::init_zeroed(), GFP_KERNEL)?,
            GFP_KERNEL,
        )?;
        data[0].fill(0xa5);
        d.store_blocks(&[(2, 1)], data)?;
        let mut buf = KBox::<Block>::init(pin_init::init_zeroed(), GFP_KERNEL)?;
        d.read_block(2, &mut buf)?;
        assert!(buf.iter().all(|&b| b == 0xa5));
        // Never written: zeroes.
        d.read_block(1, &mut buf)?;
        assert!(buf.iter().all(|&b| b == 0));
        // Freed: forgotten.
        d.free(2, 1)?;
        d.read_block(2, &mut buf)?;
        assert!(buf.iter().all(|&b| b == 0));
        assert_eq!(d.read_block(4, &mut buf).err(), Some(EINVAL));
        let mut data = KVec::new();
        data.push(buf, GFP_KERNEL)?;
        assert_eq!(d.store_blocks(&[(4, 1)], data).err(), Some(EINVAL));
        Ok(())
    }

    #[test]
    fn reservations_hold_space_for_writeback() -> Result {
        let d = disk(10)?;
        d.reserve(6)?;
        assert_eq!((d.nr_available(), d.nr_reserved()), (4, 6));
        assert_eq!(d.reserve(5).err(), Some(ENOSPC));
        // Plain allocations cannot take reserved blocks.
        let mut got = KVec::new();
        assert_eq!(d.alloc(5, &mut got).err(), Some(ENOSPC));
        d.alloc(4, &mut got)?;
        assert_eq!(d.nr_available(), 0);
        // Writeback takes from the reservation, and may give back.
        let mut wb = KVec::new();
        d.alloc_reserved(3, &mut wb)?;
        assert_eq!(&wb[..], &[(4, 3)]);
        assert_eq!((d.nr_free(), d.nr_reserved()), (3, 3));
        assert_eq!(d.alloc_reserved(4, &mut wb).err(), Some(ENOSPC));
        d.unalloc(4, 3)?;
        assert_eq!((d.nr_free(), d.nr_reserved()), (6, 6));
        d.unreserve(6)?;
        assert_eq!(d.unreserve(1).err(), Some(EINVAL));
        assert_eq!(d.nr_available(), 6);
        Ok(())
    }

    #[test]
    fn check_recounts_used_and_free_blocks() -> Result {
        let d = disk(16)?;
        let mut used = KVec::new();
        d.alloc(6, &mut used)?;
        d.reserve(2)?;
        let c = d.check(&mut used);
        assert_eq!((c.used, c.free, c.reserved, c.problems), (6, 10, 2, 0));
        // A block used twice, one used and free, and one lost: the first
        // two overlap each other, the last overlaps the free space, and
        // the count is off by two.
        let mut bad = KVec::new();
        bad.extend_from_slice(&[(0, 4), (3, 2), (6, 1)], GFP_KERNEL)?;
        assert_eq!(d.check(&mut bad).problems, 3);
        Ok(())
    }

    #[test]
    fn store_blocks_fills_the_pieces() -> Result {
        let d = disk(8)?;
        let mut got = KVec::new();
        d.alloc(2, &mut got)?;
        d.free(0, 1)?;
        let mut pieces = KVec::new();
        d.alloc(2, &mut pieces)?;
        assert_eq!(&pieces[..], &[(0, 1), (2, 1)]);
        let mut data = KVec::new();
        for byte in [7u8, 9] {
            let mut b = KBox::<Block>::init(pin_init::init_zeroed(), GFP_KERNEL)?;
            b.fill(byte);
            data.push(b, GFP_KERNEL)?;
        }
        d.store_blocks(&pieces, data)?;
        let mut buf = KBox::<Block>::init(pin_init::init_zeroed(), GFP_KERNEL)?;
        d.read_block(0, &mut buf)?;
        assert!(buf.iter().all(|&b| b == 7));
        d.read_block(2, &mut buf)?;
        assert!(buf.iter().all(|&b| b == 9));
        // Too few blocks for the data.
        assert_eq!(d.store_blocks(&[(3, 1)], KVec::new()).err(), Some(EINVAL));
        Ok(())
    }
}
