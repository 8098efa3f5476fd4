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
//! ([`Disk::reserve`], btrfs's delalloc reservation; each file keeps what
//! it reserved in its `Delalloc`, rust/fs/delalloc.rs), so that writeback,
//! which allocates copy-on-write blocks, never meets a full disk:
//! [`Disk::alloc_reserved`] takes blocks from the reservation, plain
//! [`Disk::alloc`] only from what is neither allocated nor reserved.
//! Reservations are counted in one atomic word and take no lock: they are
//! taken and given back under a file's delalloc spinlock, and in a page
//! fault, with the folio locked.
//!
//! # Lock order
//!
//! `Disk::free` (mutex) and `Disk::data` (the XArray's spinlock) are never
//! held together. Both are leaves: `Disk::free` is taken under
//! `FileMap::records` (fallocate, rust/fs/file.rs), and by reclaim itself
//! (inode eviction frees the inode's blocks), so nothing is allocated
//! while it is held: [`Disk::alloc`] sizes its answer before taking it,
//! and [`Disk::free`] allocates its tree node first. Reserving and
//! unreserving take neither lock.

use crate::glue::{
    alloc::{
        lockdep_reclaim_takes,
        nofs, //
    },
    sort::sort,
};
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

/// The most blocks a disk may have: each count of [`Unallocated`] must fit
/// in half a word.
const MAX_BLOCKS: u64 = u32::MAX as u64;

/// Free extents: start block to number of blocks.
///
/// # Invariants
///
/// `nr_free` is the sum of the extents' lengths.
struct FreeSpace {
    extents: RBTree<u64, u64>,
    nr_free: u64,
}

impl FreeSpace {
    /// How many extents a first-fit allocation of `nr` blocks takes.
    fn pieces_for(&self, nr: u64) -> usize {
        let mut left = nr;
        let mut pieces = 0;
        for (_, &len) in self.extents.iter() {
            if left == 0 {
                break;
            }
            left -= len.min(left);
            pieces += 1;
        }
        pieces
    }

    /// Takes `nr` blocks, first fit, appending the extents they form to
    /// `out` as `(start, len)`. Allocates nothing: if `out` has no room for
    /// them, changes nothing and returns how many entries it needs.
    fn take(&mut self, nr: u64, out: &mut KVec<(u64, u64)>) -> Result<(), usize> {
        let need = self.pieces_for(nr);
        if out.capacity() - out.len() < need {
            return Err(need);
        }
        let first = out.len();
        let mut left = nr;
        for (&start, &len) in self.extents.iter() {
            if left == 0 {
                break;
            }
            let take = len.min(left);
            if out.push_within_capacity((start, take)).is_err() {
                // Cannot happen: the room was checked above.
                out.truncate(first);
                return Err(need);
            }
            left -= take;
        }
        for &(start, take) in &out[first..] {
            let Some(&len) = self.extents.get(&start) else {
                continue;
            };
            let Some(node) = self.extents.remove_node(&start) else {
                continue;
            };
            if take < len {
                // The rest of the extent stays free, starting later, in the
                // same node.
                self.extents
                    .insert(node.into_reservation().into_node(start + take, len - take));
            }
        }
        self.nr_free -= nr;
        Ok(())
    }
}

/// The free blocks not yet taken by an allocation: those any allocation
/// may take, and those reserved for dirty page cache. Packed in one word
/// ([`Unallocated::pack`]), so that a reservation moves blocks from one
/// count to the other in one atomic step, without a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Unallocated {
    available: u64,
    reserved: u64,
}

impl Unallocated {
    /// The word holding both counts; each is at most [`MAX_BLOCKS`].
    fn pack(self) -> u64 {
        (self.reserved << 32) | self.available
    }

    /// The counts of a word from [`Unallocated::pack`].
    fn unpack(word: u64) -> Self {
        Self {
            available: word & MAX_BLOCKS,
            reserved: word >> 32,
        }
    }
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
/// `nr_blocks <= MAX_BLOCKS`. With `unallocated` unpacked, and `taking`
/// the blocks allocations have counted out of it but not yet taken from
/// the free extents: `available + reserved + taking == free.nr_free`.
/// Allocations lower a count before they take `free` (so, under the lock,
/// the counts never add up to more than `nr_free`); frees raise one, under
/// `free`, after `nr_free`. Reserving and unreserving change only
/// `unallocated`, without a lock.
#[pin_data]
pub(crate) struct Disk {
    /// Changed only under `free`, and only up ([`Disk::grow`]).
    nr_blocks: Atomic<u64>,
    unallocated: Atomic<u64>,
    /// Inodes on the disk: at most one per block ([`Disk::take_inode`]).
    inodes: Atomic<u64>,
    /// Bytes of extended attributes, which hold reserved blocks
    /// ([`Disk::charge_xattr`]).
    xattr_bytes: Atomic<u64>,
    #[pin]
    free: Mutex<FreeSpace>,
    #[pin]
    data: XArray<KBox<Block>>,
}

impl Disk {
    /// A disk of `nr_blocks` free blocks. `ENOMEM`; `EINVAL` above
    /// `u32::MAX` blocks.
    pub(crate) fn new(nr_blocks: u64) -> impl PinInit<Self, Error> {
        let mut extents = RBTree::new();
        let first = if nr_blocks > MAX_BLOCKS {
            Err(EINVAL)
        } else if nr_blocks > 0 {
            extents
                .try_create_and_insert(0, nr_blocks, GFP_KERNEL)
                .map(|_| ())
        } else {
            Ok(())
        };
        let unallocated = Unallocated {
            available: nr_blocks.min(MAX_BLOCKS),
            reserved: 0,
        };
        let total = nr_blocks;
        try_pin_init!(Self {
            nr_blocks: Atomic::new(nr_blocks),
            unallocated: Atomic::new(unallocated.pack()),
            inodes: Atomic::new(0),
            xattr_bytes: Atomic::new(0),
            free <- {
                first?;
                new_mutex!(FreeSpace {
                    extents,
                    nr_free: total,
                }, "Disk::free")
            },
            data <- XArray::new(xarray::AllocKind::Alloc),
        }? Error)
    }

    /// Counts one more inode on the disk: `ENOSPC` if it has as many as
    /// blocks (statfs's `f_files`). Lock free.
    pub(crate) fn take_inode(&self) -> Result {
        let mut cur = self.inodes.load(Relaxed);
        loop {
            if cur >= self.nr_blocks() {
                return Err(ENOSPC);
            }
            match self.inodes.cmpxchg(cur, cur + 1, Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        }
    }

    /// Counts an inode [`Disk::take_inode`] counted gone.
    pub(crate) fn put_inode(&self) {
        self.inodes.fetch_sub(1, Relaxed);
    }

    /// Number of inodes on the disk.
    pub(crate) fn nr_inodes(&self) -> u64 {
        self.inodes.load(Relaxed)
    }

    /// Charges `bytes` of extended attributes: the blocks they fill are
    /// reserved, as dirty page cache's are, so that they count as used.
    /// `ENOSPC` if the disk has not the blocks. Lock free.
    pub(crate) fn charge_xattr(&self, bytes: u64) -> Result {
        let block = BLOCK_SIZE as u64;
        let mut cur = self.xattr_bytes.load(Relaxed);
        loop {
            let need = (cur + bytes).div_ceil(block) - cur.div_ceil(block);
            if need != 0 {
                self.reserve(need)?;
            }
            match self.xattr_bytes.cmpxchg(cur, cur + bytes, Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => {
                    if need != 0 {
                        let _ = self.unreserve(need);
                    }
                    cur = now;
                }
            }
        }
    }

    /// Gives back `bytes` that [`Disk::charge_xattr`] charged.
    pub(crate) fn uncharge_xattr(&self, bytes: u64) {
        let block = BLOCK_SIZE as u64;
        let mut cur = self.xattr_bytes.load(Relaxed);
        loop {
            let new = cur.saturating_sub(bytes);
            match self.xattr_bytes.cmpxchg(cur, new, Relaxed) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        let freed = cur.div_ceil(block) - cur.saturating_sub(bytes).div_ceil(block);
        if freed != 0 {
            let _ = self.unreserve(freed);
        }
    }

    /// Blocks extended attributes hold.
    pub(crate) fn xattr_blocks(&self) -> u64 {
        self.xattr_bytes.load(Relaxed).div_ceil(BLOCK_SIZE as u64)
    }

    /// Tells lockdep that reclaim takes `Disk::free` (it does: evicting an
    /// inode frees its blocks), so that an allocation under it that may
    /// enter filesystem reclaim is reported. Call once the disk is set up.
    pub(crate) fn annotate_reclaim(&self) {
        lockdep_reclaim_takes(|| drop(self.free.lock()));
    }

    /// Number of blocks. A block past it can only be known after taking
    /// `free`, which [`Disk::grow`] holds to raise it.
    pub(crate) fn nr_blocks(&self) -> u64 {
        self.nr_blocks.load(Relaxed)
    }

    /// Grows the disk to `nr_blocks` blocks, the new ones free (a remount
    /// with a larger `size=`). `EINVAL` for fewer blocks than it has, or
    /// more than [`MAX_BLOCKS`]; `ENOMEM` changes nothing.
    pub(crate) fn grow(&self, nr_blocks: u64) -> Result {
        // Refused before anything is allocated: the size only grows, so a
        // size below it now is below it under the lock too.
        if nr_blocks > MAX_BLOCKS || nr_blocks < self.nr_blocks() {
            return Err(EINVAL);
        }
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let mut free = self.free.lock();
        let old = self.nr_blocks();
        if nr_blocks < old {
            return Err(EINVAL);
        }
        let added = nr_blocks - old;
        if added == 0 {
            return Ok(());
        }
        // The last free extent takes the new blocks if it ends the disk.
        let last = free
            .extents
            .cursor_back()
            .map(|c| (*c.current().0, *c.current().1))
            .filter(|&(s, l)| s + l == old);
        match last {
            Some((s, l)) => {
                if let Some(len) = free.extents.get_mut(&s) {
                    *len = l + added;
                }
            }
            None => {
                let _ = free.extents.insert(node.into_node(old, added));
            }
        }
        free.nr_free += added;
        self.nr_blocks.store(nr_blocks, Relaxed);
        // INVARIANT: The count goes up after `nr_free`, under the lock.
        self.give_back(added, false);
        Ok(())
    }

    /// Number of free blocks, reserved ones included.
    pub(crate) fn nr_free(&self) -> u64 {
        self.free.lock().nr_free
    }

    /// The counts of free blocks not taken by an allocation. Lock free.
    fn unallocated(&self) -> Unallocated {
        Unallocated::unpack(self.unallocated.load(Relaxed))
    }

    /// Changes the counts as `f` says, in one atomic step; `None` (and no
    /// change) if `f` refuses. Lock free.
    fn update(&self, f: impl Fn(Unallocated) -> Option<Unallocated>) -> Option<()> {
        let mut cur = self.unallocated.load(Relaxed);
        loop {
            let new = f(Unallocated::unpack(cur))?;
            match self.unallocated.cmpxchg(cur, new.pack(), Relaxed) {
                Ok(_) => return Some(()),
                Err(now) => cur = now,
            }
        }
    }

    /// Adds `nr` blocks back to the reserved count if `reserved`, else to
    /// the available one: blocks an allocation counted out and did not
    /// take, or blocks freed.
    fn give_back(&self, nr: u64, reserved: bool) {
        let _ = self.update(|c| {
            Some(if reserved {
                Unallocated {
                    reserved: c.reserved + nr,
                    ..c
                }
            } else {
                Unallocated {
                    available: c.available + nr,
                    ..c
                }
            })
        });
    }

    /// Number of free blocks neither allocated nor reserved. Lock free.
    pub(crate) fn nr_available(&self) -> u64 {
        self.unallocated().available
    }

    /// Number of reserved blocks. Lock free.
    pub(crate) fn nr_reserved(&self) -> u64 {
        self.unallocated().reserved
    }

    /// Reserves `nr` free blocks for a later [`Disk::alloc_reserved`].
    /// `ENOSPC` if fewer are available. Lock free.
    pub(crate) fn reserve(&self, nr: u64) -> Result {
        self.update(|c| {
            Some(Unallocated {
                available: c.available.checked_sub(nr)?,
                reserved: c.reserved + nr,
            })
        })
        .ok_or(ENOSPC)
    }

    /// Reserves as many of `nr` blocks as are available, and returns how
    /// many: none on a full disk. Lock free.
    pub(crate) fn reserve_up_to(&self, nr: u64) -> u64 {
        let got = core::cell::Cell::new(0);
        let _ = self.update(|c| {
            got.set(nr.min(c.available));
            Some(Unallocated {
                available: c.available - got.get(),
                reserved: c.reserved + got.get(),
            })
        });
        got.get()
    }

    /// Gives back `nr` reserved blocks; more than are reserved is a
    /// bookkeeping bug, refused with `EINVAL`. Lock free and does not
    /// sleep: it runs under a file's delalloc spinlock, and in eviction,
    /// which the inode shrinker runs from reclaim, which may have been
    /// entered by a task holding `Disk::free` or `FileMap::records`.
    pub(crate) fn unreserve(&self, nr: u64) -> Result {
        self.update(|c| {
            Some(Unallocated {
                available: c.available + nr,
                reserved: c.reserved.checked_sub(nr)?,
            })
        })
        .ok_or_else(|| {
            pr_err!(
                "disk: unreserving {} of {} reserved blocks\n",
                nr,
                self.nr_reserved()
            );
            EINVAL
        })
    }

    /// Allocates `nr` blocks, first fit, appending the extents they form to
    /// `out` as `(start, len)`. All or nothing: `ENOSPC` if fewer than `nr`
    /// blocks are available, `ENOMEM` if `out` cannot grow.
    pub(crate) fn alloc(&self, nr: u64, out: &mut KVec<(u64, u64)>) -> Result {
        self.alloc_from(nr, false, out)
    }

    /// Allocates `nr` blocks reserved by [`Disk::reserve`], as
    /// [`Disk::alloc`] does. `ENOSPC` if fewer are reserved.
    pub(crate) fn alloc_reserved(&self, nr: u64, out: &mut KVec<(u64, u64)>) -> Result {
        self.alloc_from(nr, true, out)
    }

    /// Counts `nr` blocks out of the reservation or of the available ones,
    /// then takes them from the free extents; gives the count back if that
    /// fails.
    fn alloc_from(&self, nr: u64, reserved: bool, out: &mut KVec<(u64, u64)>) -> Result {
        self.update(|c| {
            Some(if reserved {
                Unallocated {
                    reserved: c.reserved.checked_sub(nr)?,
                    ..c
                }
            } else {
                Unallocated {
                    available: c.available.checked_sub(nr)?,
                    ..c
                }
            })
        })
        .ok_or(ENOSPC)?;
        self.take_free(nr, out)
            .inspect_err(|_| self.give_back(nr, reserved))
    }

    /// Takes `nr` blocks, already counted out of [`Unallocated`], from the
    /// free extents into `out`. `out` grows before `Disk::free` is taken,
    /// never under it: if the free space changed meanwhile so that it
    /// needs more room, the lock is dropped and the room made again.
    /// `ENOMEM`, changing nothing.
    fn take_free(&self, nr: u64, out: &mut KVec<(u64, u64)>) -> Result {
        loop {
            let need = match self.free.lock().take(nr, out) {
                Ok(()) => return Ok(()),
                Err(need) => need,
            };
            out.reserve(need, GFP_KERNEL)?;
        }
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
        if len == 0 || end > self.nr_blocks() {
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
            // INVARIANT: The count goes up after `nr_free`, under the lock.
            self.give_back(len, reserve);
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
                .any(|&(b, n)| b.checked_add(n).is_none_or(|e| e > self.nr_blocks()))
        {
            return Err(EINVAL);
        }
        let mut data = data.into_iter();
        // `store` drops the lock to allocate, but the task is in
        // writeback, which reclaim may wait for.
        nofs(|| -> Result {
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
        })
    }

    /// Checks the free space (extents in order, apart, merged and on the
    /// disk, adding up to the free count, with no more available and
    /// reserved than free) and that `used`, every piece of the disk the
    /// files hold, covers each block that is not free exactly once.
    /// Problems are logged and counted. Exact when no block is being
    /// allocated or freed.
    pub(crate) fn check(&self, used: &mut [(u64, u64)]) -> DiskCheck {
        let mut c = DiskCheck::default();
        let mut problem = |what: core::fmt::Arguments<'_>| {
            pr_err!("check: disk: {}\n", what);
            c.problems += 1;
        };
        sort(used);
        let free = self.free.lock();
        let mut prev_end = None;
        let mut counted = 0u64;
        for (&start, &len) in free.extents.iter() {
            counted += len;
            if len == 0 || start.checked_add(len).is_none_or(|e| e > self.nr_blocks()) {
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
        let counts = self.unallocated();
        if counts.available + counts.reserved > free.nr_free {
            problem(format_args!(
                "{} available and {} reserved of {} free",
                counts.available, counts.reserved, free.nr_free
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
        if c.used + free.nr_free != self.nr_blocks() {
            problem(format_args!(
                "{} blocks used and {} free, on a disk of {}",
                c.used,
                free.nr_free,
                self.nr_blocks()
            ));
        }
        c.free = free.nr_free;
        c.reserved = counts.reserved;
        c
    }

    /// Fills `dst` with the bytes from disk address `addr`, which must lie
    /// inside the disk; blocks never written read as zeroes. `EINVAL` if
    /// the range reaches past the disk's end. The XArray's lock is taken
    /// per block, so a long read does not hold it long.
    pub(crate) fn read_at(&self, addr: u64, dst: &mut [u8]) -> Result {
        let end = addr.checked_add(dst.len() as u64).ok_or(EINVAL)?;
        if end > self.nr_blocks() * BLOCK_SIZE as u64 {
            return Err(EINVAL);
        }
        let mut done = 0;
        while done < dst.len() {
            let at = addr + done as u64;
            let block = at / BLOCK_SIZE as u64;
            let off = (at % BLOCK_SIZE as u64) as usize;
            let n = (dst.len() - done).min(BLOCK_SIZE - off);
            let out = &mut dst[done..done + n];
            match self.data.lock().get(block as usize) {
                Some(stored) => out.copy_from_slice(&stored[off..off + n]),
                None => out.fill(0),
            }
            done += n;
        }
        Ok(())
    }
}

#[kernel::macros::kunit_tests(emfs_disk)]
mod tests {
    use super::*;
    use crate::glue::{
        alloc::{
            lockdep_checking,
            refusal, //
        },
        kunit::{
            kunit_ensure,
            kunit_ensure_eq, //
        },
        workqueue::{
            flush,
            system_dfl, //
        },
    };
    use kernel::{
        sync::{
            atomic::{
                Acquire,
                Release, //
            },
            Arc,
        },
        time::{
            delay::fsleep,
            Delta, //
        },
        workqueue::{
            impl_has_work,
            new_work,
            Work,
            WorkItem, //
        },
    };

    /// A disk whose lock lockdep knows reclaim takes, as a mount's.
    fn disk(nr: u64) -> Result<Pin<KBox<Disk>>> {
        let d = KBox::pin_init(Disk::new(nr), GFP_KERNEL)?;
        d.annotate_reclaim();
        Ok(d)
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
    fn grow_adds_free_blocks_at_the_end() -> Result {
        let d = disk(10)?;
        let mut got = KVec::new();
        d.alloc(4, &mut got)?;
        // The free tail [4, 10) takes the new blocks: one extent.
        d.grow(16)?;
        assert_eq!((d.nr_blocks(), d.nr_free(), d.nr_available()), (16, 12, 12));
        let mut again = KVec::new();
        d.alloc(12, &mut again)?;
        assert_eq!(&again[..], &[(4, 12)]);
        // A full disk grows by a new extent.
        d.grow(20)?;
        let mut more = KVec::new();
        d.alloc(4, &mut more)?;
        assert_eq!(&more[..], &[(16, 4)]);
        d.free(16, 4)?;
        let mut used = [(0, 4), (4, 12)];
        let c = d.check(&mut used);
        assert_eq!((c.used, c.free, c.problems), (16, 4, 0));
        Ok(())
    }

    #[test]
    fn grow_refuses_to_shrink() -> Result {
        let d = disk(10)?;
        assert_eq!(d.grow(9).err(), Some(EINVAL));
        assert_eq!(d.grow(MAX_BLOCKS + 1).err(), Some(EINVAL));
        d.grow(10)?;
        assert_eq!((d.nr_blocks(), d.nr_free()), (10, 10));
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
        d.read_at(2 * BLOCK_SIZE as u64, &mut buf[..])?;
        assert!(buf.iter().all(|&b| b == 0xa5));
        // Never written: zeroes.
        d.read_at(BLOCK_SIZE as u64, &mut buf[..])?;
        assert!(buf.iter().all(|&b| b == 0));
        // Freed: forgotten.
        d.free(2, 1)?;
        d.read_at(2 * BLOCK_SIZE as u64, &mut buf[..])?;
        assert!(buf.iter().all(|&b| b == 0));
        assert_eq!(
            d.read_at(4 * BLOCK_SIZE as u64, &mut buf[..]).err(),
            Some(EINVAL)
        );
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
    fn read_at_crosses_blocks_and_refuses_past_the_end() -> Result {
        let d = disk(4)?;
        let mut pieces = KVec::new();
        d.alloc(1, &mut pieces)?;
        let mut data = KVec::new();
        let mut b = KBox::<Block>::init(pin_init::init_zeroed(), GFP_KERNEL)?;
        b.fill(5);
        data.push(b, GFP_KERNEL)?;
        assert_eq!(&pieces[..], &[(0, 1)]);
        d.store_blocks(&pieces, data)?;
        // The last 8 bytes of block 0, then 8 of block 1, never written,
        // which read as zeroes.
        let mut buf = [0xffu8; 16];
        d.read_at((BLOCK_SIZE - 8) as u64, &mut buf)?;
        assert_eq!(&buf[..8], &[5u8; 8]);
        assert_eq!(&buf[8..], &[0u8; 8]);
        d.read_at(100, &mut buf[..3])?;
        assert_eq!(&buf[..3], &[5u8; 3]);
        // One byte past the end of the disk, and an address that overflows.
        assert_eq!(
            d.read_at((4 * BLOCK_SIZE - 8) as u64, &mut buf[..9]).err(),
            Some(EINVAL)
        );
        assert_eq!(d.read_at(u64::MAX - 4, &mut buf).err(), Some(EINVAL));
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
        d.read_at(0, &mut buf[..])?;
        assert!(buf.iter().all(|&b| b == 7));
        d.read_at(2 * BLOCK_SIZE as u64, &mut buf[..])?;
        assert!(buf.iter().all(|&b| b == 9));
        // Too few blocks for the data.
        assert_eq!(d.store_blocks(&[(3, 1)], KVec::new()).err(), Some(EINVAL));
        Ok(())
    }

    #[test]
    fn huge_disks_are_refused() -> Result {
        // The box is allocated before the size is checked: under fault
        // injection that may fail first.
        kunit_ensure_eq!(
            refusal(KBox::pin_init(Disk::new(MAX_BLOCKS + 1), GFP_KERNEL))?,
            Some(EINVAL)
        );
        let d = disk(MAX_BLOCKS)?;
        d.reserve(MAX_BLOCKS)?;
        kunit_ensure_eq!((d.nr_available(), d.nr_reserved()), (0, MAX_BLOCKS));
        d.unreserve(MAX_BLOCKS)?;
        kunit_ensure_eq!((d.nr_available(), d.nr_reserved()), (MAX_BLOCKS, 0));
        Ok(())
    }

    /// Gives back one reserved block from a worker, as eviction does from
    /// reclaim.
    #[pin_data]
    struct Releaser {
        disk: Arc<Disk>,
        /// Set once `unreserve` has returned.
        done: Atomic<bool>,
        /// Whether it succeeded.
        ok: Atomic<bool>,
        #[pin]
        work: Work<Releaser>,
    }

    impl_has_work! {
        impl HasWork<Self> for Releaser { self.work }
    }

    impl WorkItem for Releaser {
        type Pointer = Arc<Releaser>;

        fn run(this: Arc<Releaser>) {
            let ok = this.disk.unreserve(1).is_ok();
            this.ok.store(ok, Relaxed);
            this.done.store(true, Release);
        }
    }

    /// Issue 14, finding 2: `release_folio` gives a folio's reservation
    /// back from reclaim, and reclaim may have been entered by an
    /// allocation of a task holding `Disk::free` (fallocate). Giving the
    /// reservation back must not wait for that lock.
    ///
    /// Timeline: the test holds `Disk::free`, as that task does; a worker
    /// gives one block back, as reclaim would; the test waits up to two
    /// seconds for it, still holding the lock. Before the fix `unreserve`
    /// took `Disk::free`: the worker waited until the lock was dropped,
    /// and the case failed (instead of deadlocking, as the real task did,
    /// since here reclaim is another task).
    #[test]
    fn unreserve_takes_no_lock() -> Result {
        let d = Arc::pin_init(Disk::new(8), GFP_KERNEL)?;
        d.annotate_reclaim();
        d.reserve(2)?;
        let disk = d.clone();
        let w = Arc::pin_init(
            pin_init!(Releaser {
                disk,
                done: Atomic::new(false),
                ok: Atomic::new(false),
                work <- new_work!("emfs_disk_test::releaser"),
            }),
            GFP_KERNEL,
        )?;
        let held = d.free.lock();
        // No allocation under the lock: the work item exists already.
        let queued = system_dfl().enqueue(w.clone()).is_ok();
        let mut waited = 0;
        while queued && !w.done.load(Acquire) && waited < 200 {
            fsleep(Delta::from_millis(10));
            waited += 1;
        }
        let done_under_lock = w.done.load(Acquire);
        drop(held);
        // The worker finishes once the lock is free, whatever happened.
        flush(&w);
        kunit_ensure!(queued);
        kunit_ensure!(
            done_under_lock,
            "unreserve waited for Disk::free, held by the task in reclaim"
        );
        kunit_ensure!(w.ok.load(Relaxed));
        kunit_ensure_eq!((d.nr_available(), d.nr_reserved()), (7, 1));
        Ok(())
    }

    /// Issue 14, finding 3: nothing allocates under `Disk::free` in a way
    /// that may enter filesystem reclaim, which evicts inodes and so takes
    /// `Disk::free` (a task allocating under it would wait on itself).
    ///
    /// `disk()` tells lockdep that reclaim takes the lock
    /// ([`Disk::annotate_reclaim`]); allocations with fragmented free
    /// space, which need several entries in their answer, then run. Before
    /// the fix, `alloc` pushed the answer's entries with `GFP_KERNEL` under
    /// the lock: lockdep reported the cycle `fs_reclaim` -> `Disk::free` ->
    /// `fs_reclaim`, turned itself off, and the case failed. Without
    /// lockdep the case checks nothing.
    #[test]
    fn nothing_allocates_under_the_free_space_lock() -> Result {
        let Some(on) = lockdep_checking() else {
            return Ok(());
        };
        kunit_ensure!(on, "lockdep is off: it reported a problem earlier");
        let d = disk(64)?;
        let mut held = KVec::new();
        d.alloc(64, &mut held)?;
        for b in (0..64).step_by(2) {
            d.free(b, 1)?;
        }
        // Thirty-two holes of one block: answers of many entries.
        let mut got = KVec::new();
        d.alloc(20, &mut got)?;
        d.reserve(10)?;
        let mut wb = KVec::new();
        d.alloc_reserved(10, &mut wb)?;
        kunit_ensure_eq!((got.len(), wb.len()), (20, 10));
        d.unalloc(wb[0].0, 1)?;
        d.unreserve(1)?;
        kunit_ensure!(
            lockdep_checking() == Some(true),
            "lockdep reported an allocation under Disk::free"
        );
        Ok(())
    }
}
