// SPDX-License-Identifier: GPL-2.0

//! An emfs file's mapping from file offsets to disk blocks: its extent
//! records, and the extent map cache in front of them.
//!
//! Readers ask [`FileMap::get_extent`], the emfs counterpart of
//! `btrfs_get_extent()`: the cache answers if it can; on a miss the map is
//! rebuilt from the records and added with the -EEXIST handling of
//! `btrfs_add_extent_mapping()`, since another task may have cached an
//! overlapping map meanwhile.
//!
//! # Lock order
//!
//! 1. `FileMap::records` (mutex)
//! 2. the extent map tree's lock (taken after `records` is dropped on the
//!    read path; never the other way round), or `Disk::free` (fallocate).
//!
//! Reclaim takes `records`: evicting an inode (from the inode shrinker)
//! punches its records, and completing a write back (on `emfs-endio`,
//! which reclaim waits for when it waits for writeback) records it. So
//! `records` is locked only through [`FileMap::with_records`], in a no-fs
//! allocation scope: what a task allocates while holding it never enters
//! filesystem reclaim or waits for writeback, and cannot wait on itself.

use super::{
    disk::{
        Block,
        Disk, //
    },
    records::{
        ExtentKind,
        FileExtent,
        FileRecords, //
    },
};
use crate::{
    extent_map::{
        EmFlags,
        ExtentMap,
        ExtentMapInfo,
        PreparedMap,
        EXTENT_MAP_HOLE,
        EXTENT_MAP_LAST_BYTE, //
    },
    glue::alloc::{
        lockdep_reclaim_takes,
        nofs, //
    },
    shrinker::EmInode,
};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        atomic::{
            Acquire,
            Atomic,
            Release, //
        },
        Arc,
        Mutex, //
    },
    time::{
        delay::fsleep,
        Delta, //
    },
};

const BLOCK: u64 = super::disk::BLOCK_SIZE as u64;

/// Data on its way to disk (btrfs's ordered extent): blocks allocated and
/// a pinned map in the cache. It is the regular extent the records will
/// hold once it completes.
pub(crate) type OrderedExtent = FileExtent;

/// Runs `op`, which changes nothing when it fails with `ENOMEM`, until it
/// gets the memory it needs. For what must not fail half way: blocks the
/// records no longer hold, ordered extents whose data is on disk, ranges
/// whose page cache is already gone, an evicted inode's blocks.
pub(crate) fn until_memory<T>(mut op: impl FnMut() -> Result<T>) -> Result<T> {
    loop {
        match op() {
            Err(e) if e == ENOMEM => fsleep(Delta::from_millis(1)),
            r => return r,
        }
    }
}

/// Gives `freed` back to the disk, which the records no longer hold. Any
/// error but `ENOMEM` is a bookkeeping bug, which `Disk::free` logs.
fn free_blocks(disk: &Disk, freed: &[(u64, u64)]) {
    for &(block, n) in freed {
        let _ = until_memory(|| disk.free(block, n));
    }
}

/// The mapping of one file.
#[pin_data]
pub(crate) struct FileMap {
    em: Arc<EmInode>,
    #[pin]
    records: Mutex<FileRecords>,
    /// Raised each time the records change ([`FileMap::seq`]).
    seq: Atomic<u64>,
}

impl FileMap {
    /// The mapping of a new, empty file whose maps are cached in `em`.
    pub(crate) fn new(em: Arc<EmInode>) -> impl PinInit<Self> {
        pin_init!(Self {
            em,
            records <- new_mutex!(FileRecords::new(), "FileMap::records"),
            seq: Atomic::new(0),
        })
    }

    /// A number that changes whenever the records do (a write back
    /// completes, a range is punched or preallocated), after the change:
    /// a mapping looked up after reading it is stale once it differs
    /// (iomap's `validity_cookie`).
    pub(crate) fn seq(&self) -> u64 {
        self.seq.load(Acquire)
    }

    /// The records changed: mappings handed out before are stale.
    fn records_changed(&self) {
        self.seq.fetch_add(1, Release);
    }

    /// Runs `f` on the file's records, locked, in a no-fs allocation
    /// scope ([`nofs`]): the only way `records` is locked, but for
    /// [`FileMap::annotate_reclaim`] (see the lock rules above). `f` may
    /// take the extent map tree's lock, and must not sleep while it holds
    /// it.
    pub(crate) fn with_records<T>(&self, f: impl FnOnce(&mut FileRecords) -> T) -> T {
        nofs(|| f(&mut self.records.lock()))
    }

    /// Tells lockdep that reclaim takes `FileMap::records` (it does, see
    /// the lock rules above), so that an allocation under it that may enter
    /// filesystem reclaim is reported. Call once the map is set up.
    pub(crate) fn annotate_reclaim(&self) {
        lockdep_reclaim_takes(|| drop(self.records.lock()));
    }

    /// The file's extent map cache.
    pub(crate) fn cache(&self) -> &EmInode {
        &self.em
    }

    /// The extent map covering `offset` in a file of `size` bytes
    /// (`btrfs_get_extent()`): a regular or preallocated extent, or a hole.
    /// `ENOMEM` if a map must be built and cannot be.
    /// The bytes of disk the file holds, written or preallocated.
    pub(crate) fn allocated(&self) -> u64 {
        self.with_records(|r| r.bytes())
    }

    pub(crate) fn get_extent(&self, offset: u64, size: u64) -> Result<ExtentMap> {
        if let Some(em) = self.em.lookup(offset, 1) {
            if em.start() <= offset {
                return Ok(em);
            }
        }
        // A miss (counted by the lookup): rebuild the map from the records.
        let info = self.with_records(|records| records.map_at(offset, size));
        let pm = PreparedMap::new(info)?;
        let block = offset & !(BLOCK - 1);
        self.em.tree().write().add_extent_mapping(pm, block, BLOCK)
    }
}

impl FileMap {
    /// Writes `data`, blocks from file offset `start`, back to the disk
    /// (writeback of dirty page cache): takes blocks from the disk's
    /// reservation, stores the data in them and starts the ordered
    /// extents, as `cow_file_range()` does: new blocks, and a pinned map on the list of
    /// modified extents for each extent they form, replacing what the cache
    /// held for the range. `ENOSPC` if not enough
    /// blocks are reserved, `ENOMEM`; nothing changes on failure.
    pub(crate) fn write_back(
        &self,
        disk: &Disk,
        start: u64,
        data: KVec<KBox<Block>>,
        generation: u64,
    ) -> Result<KVec<OrderedExtent>> {
        if data.is_empty() || start % BLOCK != 0 {
            return Err(EINVAL);
        }
        let mut pieces = KVec::new();
        disk.alloc_reserved(data.len() as u64, &mut pieces)?;
        disk.store_blocks(&pieces, data)
            .and_then(|()| self.start_write_at(&pieces, start, generation))
            .inspect_err(|_| {
                // Back to the reservation, forgetting what was stored.
                for &(block, n) in pieces.iter() {
                    // The reservation must come back, or a dirty folio
                    // would hold a block the disk no longer has.
                    let _ = until_memory(|| disk.unalloc(block, n));
                }
            })
    }

    /// The ordered extents of a write at `start` to the blocks `pieces`.
    /// The caller frees the blocks if this fails.
    fn start_write_at(
        &self,
        pieces: &[(u64, u64)],
        start: u64,
        generation: u64,
    ) -> Result<KVec<OrderedExtent>> {
        let mut prepared = KVec::with_capacity(pieces.len(), GFP_KERNEL)?;
        let mut off = start;
        for &(block, n) in pieces.iter() {
            let oe = OrderedExtent {
                start: off,
                len: n * BLOCK,
                block,
                kind: ExtentKind::Regular,
                generation,
            };
            let mut info = ExtentMapInfo::regular(oe.start, oe.len, block * BLOCK);
            info.generation = generation;
            info.flags = EmFlags::PINNED;
            prepared.push((oe, PreparedMap::new_modified(info)?), GFP_KERNEL)?;
            off += oe.len;
        }
        let mut ordered = KVec::with_capacity(prepared.len(), GFP_KERNEL)?;
        for (oe, pm) in prepared {
            // Cannot fail for lack of memory: everything is allocated.
            self.em.tree().replace_range(pm, true)?;
            ordered.push_within_capacity(oe).map_err(|_| ENOMEM)?;
        }
        Ok(ordered)
    }

    /// Completes an ordered extent once its data is on disk
    /// (`btrfs_finish_ordered_io()`): records it (freeing the blocks it
    /// replaces) and unpins its map. `ENOMEM` leaves the records as they
    /// were and the map pinned, so it can be retried.
    pub(crate) fn finish_write(&self, disk: &Disk, oe: &OrderedExtent) -> Result {
        let mut freed = KVec::new();
        // Room for the new record first, in a scratch tree, so that the
        // punch below is the last thing that can fail.
        let mut scratch = FileRecords::new();
        nofs(|| scratch.insert(*oe))?;
        self.with_records(|records| -> Result {
            records.punch(oe.start, oe.start + oe.len, &mut freed)?;
            records.take_from(&mut scratch);
            Ok(())
        })?;
        self.records_changed();
        free_blocks(disk, &freed);
        self.em.tree().unpin(oe.start, oe.len, oe.generation)
    }

    /// Completes the ordered extents of one write back, in order, retrying
    /// while memory is short: their data is on disk and must be recorded.
    pub(crate) fn finish_writes(&self, disk: &Disk, ordered: &[OrderedExtent]) {
        for oe in ordered {
            if let Err(e) = until_memory(|| self.finish_write(disk, oe)) {
                pr_err!(
                    "ino {}: ordered extent [{}, {}) failed: {:?}\n",
                    self.em.ino(),
                    oe.start,
                    oe.end(),
                    e
                );
            }
        }
    }

    /// The mapping of file offset `pos` in a file of `size` bytes, for a
    /// read (`->iomap_begin`): the extent map [`FileMap::get_extent`] finds
    /// or builds.
    ///
    /// A read makes progress when memory is short: if no map can be
    /// allocated for a miss, this is the mapping the records give, not
    /// cached (bcache keeps a reserve of btree nodes for the same reason),
    /// and the next read tries the cache again. Reads are what reclaim
    /// waits for, and the shrinker frees maps because memory is short:
    /// failing them with `ENOMEM` would fail the very workload the cache
    /// serves.
    pub(crate) fn map_for_read(&self, pos: u64, size: u64) -> Result<ExtentMapInfo> {
        match self.get_extent(pos, size) {
            Ok(em) => Ok(em.info()),
            Err(e) if e == ENOMEM => Ok(self.with_records(|records| records.map_at(pos, size))),
            Err(e) => Err(e),
        }
    }
}

impl FileMap {
    /// Punches the block-aligned range `[start, end)` (FALLOC_FL_PUNCH_HOLE,
    /// and truncation with `end == u64::MAX`): drops the cached maps, then
    /// the records, and frees the blocks under them. `EINVAL` if unaligned;
    /// `ENOMEM` leaves the records as they were (the cache may have lost
    /// maps, which are reloaded on demand).
    pub(crate) fn punch(&self, disk: &Disk, start: u64, end: u64) -> Result {
        if start % BLOCK != 0 || (end != u64::MAX && end % BLOCK != 0) || end <= start {
            return Err(EINVAL);
        }
        let mut freed = KVec::new();
        self.with_records(|records| -> Result {
            let last = records.iter().last().map_or(start, |e| e.end());
            let end = end.min(last.max(start));
            if end > start {
                records.punch(start, end, &mut freed)?;
            }
            Ok(())
        })?;
        self.em
            .tree()
            .drop_range(start, end.saturating_sub(1).max(start), false);
        self.records_changed();
        free_blocks(disk, &freed);
        Ok(())
    }

    /// Preallocates the block-aligned range `[start, start + len)`
    /// (fallocate mode 0): blocks for the holes in it become PREALLOC
    /// records, which read as zeroes; existing data is kept. `ENOSPC`,
    /// `ENOMEM`, `EINVAL` if unaligned; nothing changes on failure.
    pub(crate) fn preallocate(&self, disk: &Disk, start: u64, len: u64, generation: u64) -> Result {
        let end = start.checked_add(len).ok_or(EINVAL)?;
        if len == 0 || start % BLOCK != 0 || len % BLOCK != 0 {
            return Err(EINVAL);
        }
        // Under the records throughout (fallocate takes `Disk::free` under
        // them), so in a no-fs allocation scope.
        let changed = self.with_records(|records| -> Result<bool> {
            // The holes of the range.
            let mut holes = KVec::new();
            let mut pos = start;
            while pos < end {
                match records.find(pos).filter(|e| e.start < end) {
                    Some(e) if e.start <= pos => pos = e.end(),
                    Some(e) => {
                        holes.push((pos, e.start), GFP_KERNEL)?;
                        pos = e.end();
                    }
                    None => {
                        holes.push((pos, end), GFP_KERNEL)?;
                        pos = end;
                    }
                }
            }
            let need: u64 = holes.iter().map(|&(s, e)| (e - s) / BLOCK).sum();
            if need == 0 {
                return Ok(false);
            }
            let mut pieces = KVec::new();
            disk.alloc(need, &mut pieces)?;
            // Build every record in a scratch tree first: only then touch the
            // file's records, which cannot fail any more.
            let mut scratch = FileRecords::new();
            let built = (|| -> Result {
                let mut piece = pieces.iter().copied();
                let mut cur = piece.next();
                for &(mut s, e) in holes.iter() {
                    while s < e {
                        let (block, n) = cur.ok_or(EINVAL)?;
                        let take = n.min((e - s) / BLOCK);
                        scratch.insert(FileExtent {
                            start: s,
                            len: take * BLOCK,
                            block,
                            kind: ExtentKind::Prealloc,
                            generation,
                        })?;
                        s += take * BLOCK;
                        cur = if take < n {
                            Some((block + take, n - take))
                        } else {
                            piece.next()
                        };
                    }
                }
                Ok(())
            })();
            if let Err(e) = built {
                free_blocks(disk, &pieces);
                return Err(e);
            }
            records.take_from(&mut scratch);
            Ok(true)
        })?;
        if changed {
            // Cached holes in the range are stale now.
            self.em.tree().drop_range(start, end - 1, false);
            self.records_changed();
        }
        Ok(())
    }
}

/// What one [`FileMap::fsync`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FsyncReport {
    /// The full-sync mark was set: every record was logged.
    pub(crate) full: bool,
    /// Extents logged.
    pub(crate) logged: usize,
}

impl FileMap {
    /// Logs what changed since the last fsync (`btrfs_sync_file()` with
    /// `btrfs_log_changed_extents()`); the caller has waited for the
    /// file's ordered extents. Fast path: the maps on the list of modified
    /// extents are taken off it, marked LOGGING, logged, and their logging
    /// flag cleared (which lets them merge). If the full-sync mark is set
    /// (the shrinker, or a failed split, dropped a modified map before it
    /// was logged), the list cannot be trusted and every record is logged
    /// instead, and the mark is cleared.
    pub(crate) fn fsync(&self) -> FsyncReport {
        let mut logging = self.em.tree().take_modified();
        let full = logging.full_sync();
        let mut logged = 0;
        if full {
            logged = self.with_records(|records| records.iter().count());
        }
        while let Some(em) = logging.pop_first() {
            // Writing `em` to the log would happen here.
            if !full {
                logged += 1;
            }
            self.em.tree().clear_logging(&em);
        }
        FsyncReport { full, logged }
    }
}

/// A file's recount, from [`FileMap::check`].
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct FileCheck {
    /// Records.
    pub(crate) records: u64,
    /// Disk blocks the records hold.
    pub(crate) blocks: u64,
    /// Disk blocks of ordered extents not recorded yet (pinned maps).
    pub(crate) in_flight: u64,
    /// Problems found (each logged).
    pub(crate) problems: u64,
}

impl FileMap {
    /// Checks the file's records (block aligned, not empty, in order, not
    /// overlapping, on the disk of `disk_blocks` blocks) and every cached
    /// map that is not pinned against them: a hole map must cover no
    /// record, any other map must say for each of its bytes what the
    /// records say. Pinned maps are ordered extents, not recorded yet.
    /// Appends every piece of disk the file holds to `pieces`, for the
    /// disk's recount. Problems are logged and counted. The tree's own
    /// counts are the owner's to check ([`crate::shrinker::EmOwner::check`]).
    /// `ENOMEM` if `pieces` cannot grow.
    pub(crate) fn check(
        &self,
        disk_blocks: u64,
        pieces: &mut KVec<(u64, u64)>,
    ) -> Result<FileCheck> {
        let ino = self.em.ino();
        let mut c = FileCheck::default();
        let mut problems = 0;
        let mut problem = |what: core::fmt::Arguments<'_>| {
            pr_err!("check: ino {}: {}\n", ino, what);
            problems += 1;
        };
        self.with_records(|records| -> Result {
            let mut prev_end = 0;
            for r in records.iter() {
                c.records += 1;
                let blocks = r.len / BLOCK;
                c.blocks += blocks;
                if r.len == 0 || r.start % BLOCK != 0 || r.len % BLOCK != 0 {
                    problem(format_args!(
                        "record [{}, +{}) is not whole blocks",
                        r.start, r.len
                    ));
                }
                if r.start < prev_end {
                    problem(format_args!(
                        "record at {} overlaps the one before",
                        r.start
                    ));
                }
                if r.block.checked_add(blocks).is_none_or(|e| e > disk_blocks) {
                    problem(format_args!("record at {} is off the disk", r.start));
                }
                prev_end = r.end();
                pieces.push((r.block, blocks), GFP_KERNEL)?;
            }
            if records.bytes() != c.blocks * BLOCK {
                problem(format_args!(
                    "records count {} bytes, hold {}",
                    records.bytes(),
                    c.blocks * BLOCK
                ));
            }
            // Room for the pinned maps' pieces first: nothing may sleep under
            // the tree's lock.
            let tree = loop {
                let pinned = self.em.tree().read().nr_pinned();
                pieces.reserve(pinned, GFP_KERNEL)?;
                let tree = self.em.tree().read();
                if tree.nr_pinned() <= pinned {
                    break tree;
                }
            };
            for em in tree.iter() {
                if em.is_pinned() {
                    c.in_flight += em.len() / BLOCK;
                    pieces
                        .push_within_capacity((em.block_start() / BLOCK, em.len() / BLOCK))
                        .map_err(|_| ENOMEM)?;
                    continue;
                }
                if !agrees(&em, records) {
                    problem(format_args!(
                        "map [{}, {}) disagrees with the records",
                        em.start(),
                        em.end()
                    ));
                }
            }
            Ok(())
        })?;
        c.problems = problems;
        Ok(c)
    }
}

/// Returns whether the unpinned map `em` says what `records` say of each
/// of its bytes.
fn agrees(em: &ExtentMap, records: &FileRecords) -> bool {
    let (start, end) = (em.start(), em.end());
    if em.disk_bytenr() == EXTENT_MAP_HOLE {
        return records.find(start).is_none_or(|r| r.start >= end);
    }
    if em.disk_bytenr() >= EXTENT_MAP_LAST_BYTE {
        // emfs caches no inline or delalloc maps.
        return false;
    }
    let kind = if em.flags().contains(EmFlags::PREALLOC) {
        ExtentKind::Prealloc
    } else {
        ExtentKind::Regular
    };
    let mut pos = start;
    while pos < end {
        let Some(r) = records.find(pos).filter(|r| r.start <= pos) else {
            return false;
        };
        let on_disk = r.block * BLOCK + (pos - r.start);
        if r.kind != kind || on_disk != em.block_start() + (pos - start) {
            return false;
        }
        pos = r.end();
    }
    true
}

#[kernel::macros::kunit_tests(emfs_file)]
mod tests {
    use super::super::records::{
        ExtentKind,
        FileExtent, //
    };
    use super::*;
    use crate::extent_map::{
        ExtentMapInfo,
        EXTENT_MAP_HOLE, //
    };
    use crate::glue::{
        alloc::{
            lockdep_checking,
            refusal, //
        },
        kunit::{
            kunit_ensure,
            kunit_ensure_eq, //
        },
    };
    use crate::shrinker::EmOwnerRegistration;

    const K4: u64 = BLOCK;

    /// Reads the block at `pos` of a file of `size` bytes as the VFS glue
    /// does: the mapping for a read, then the disk block, or zeroes.
    fn read_block(map: &FileMap, disk: &Disk, pos: u64, size: u64, dst: &mut Block) -> Result {
        let info = map.map_for_read(pos, size)?;
        if info.disk_bytenr >= EXTENT_MAP_LAST_BYTE || info.flags.contains(EmFlags::PREALLOC) {
            dst.fill(0);
            return Ok(());
        }
        let block = pos & !(BLOCK - 1);
        disk.read_at(info.block_start() + block - info.start, &mut dst[..])
    }

    struct Fixture {
        reg: EmOwnerRegistration,
        map: Pin<KBox<FileMap>>,
    }

    fn fixture() -> Result<Fixture> {
        let reg = EmOwnerRegistration::new(K4 as u32, false)?;
        let em = reg.owner().add_inode(2)?;
        let map = KBox::pin_init(FileMap::new(em), GFP_KERNEL)?;
        map.annotate_reclaim();
        Ok(Fixture { reg, map })
    }

    /// Adds `r` to the file's records.
    fn insert(f: &Fixture, r: FileExtent) -> Result {
        f.map.with_records(|records| records.insert(r))
    }

    /// The record containing `offset`, else the first one after it.
    fn find(f: &Fixture, offset: u64) -> Option<FileExtent> {
        f.map.with_records(|records| records.find(offset))
    }

    fn record(start: u64, len: u64, block: u64) -> FileExtent {
        FileExtent {
            start,
            len,
            block,
            kind: ExtentKind::Regular,
            generation: 1,
        }
    }

    #[test]
    fn miss_loads_then_hits() -> Result {
        let f = fixture()?;
        insert(&f, record(0, 4 * K4, 100))?;
        let c = f.reg.owner().counters();
        let em = f.map.get_extent(K4, 4 * K4)?;
        kunit_ensure_eq!(
            (em.start(), em.len(), em.disk_bytenr()),
            (0, 4 * K4, 100 * K4)
        );
        kunit_ensure_eq!((c.hits(), c.misses()), (0, 1));
        let again = f.map.get_extent(3 * K4, 4 * K4)?;
        kunit_ensure_eq!(em, again);
        kunit_ensure_eq!((c.hits(), c.misses()), (1, 1));
        Ok(())
    }

    #[test]
    fn holes_are_cached_too() -> Result {
        let f = fixture()?;
        insert(&f, record(4 * K4, K4, 7))?;
        let hole = f.map.get_extent(K4, 8 * K4)?;
        kunit_ensure_eq!(
            (hole.start(), hole.len(), hole.disk_bytenr()),
            (0, 4 * K4, EXTENT_MAP_HOLE)
        );
        let tail = f.map.get_extent(6 * K4, 8 * K4)?;
        kunit_ensure_eq!((tail.start(), tail.end()), (5 * K4, 8 * K4));
        kunit_ensure_eq!(f.map.cache().tree().read().nr_cached(), 2);
        Ok(())
    }

    #[test]
    fn reload_after_the_shrinker_dropped_maps() -> Result {
        let f = fixture()?;
        insert(&f, record(0, 2 * K4, 40))?;
        let first = f.map.get_extent(0, 2 * K4)?.info();
        // The shrinker drops every unpinned map; the records remain.
        f.map.cache().tree().drop_all();
        let again = f.map.get_extent(0, 2 * K4)?.info();
        kunit_ensure_eq!(first, again);
        kunit_ensure_eq!(f.reg.owner().counters().misses(), 2);
        Ok(())
    }

    #[test]
    fn race_with_a_map_cached_meanwhile() -> Result {
        let f = fixture()?;
        insert(&f, record(0, 8 * K4, 500))?;
        // Another task cached [2K4, 4K4) of the same extent after our
        // lookup missed: the loaded map is trimmed to the gap around the
        // offset (btrfs case 3).
        let info = ExtentMapInfo {
            start: 2 * K4,
            len: 2 * K4,
            disk_bytenr: 500 * K4,
            disk_num_bytes: 8 * K4,
            offset: 2 * K4,
            ram_bytes: 8 * K4,
            ..ExtentMapInfo::default()
        };
        // Listed as modified, so that it does not merge with the rest.
        f.map
            .cache()
            .tree()
            .add(PreparedMap::new_modified(info)?, true)?;
        let em = f.map.get_extent(5 * K4, 8 * K4)?;
        kunit_ensure_eq!((em.start(), em.end()), (4 * K4, 8 * K4));
        kunit_ensure_eq!(em.block_start(), 504 * K4);
        let em = f.map.get_extent(3 * K4, 8 * K4)?;
        kunit_ensure_eq!((em.start(), em.end()), (2 * K4, 4 * K4));
        Ok(())
    }

    /// Copy on write without page cache (`cow_file_range()`): new blocks
    /// for `[start, start + len)` and their ordered extents, as
    /// [`FileMap::write_back`] makes them, without reservation or data.
    fn start_write(
        map: &FileMap,
        disk: &Disk,
        start: u64,
        len: u64,
        generation: u64,
    ) -> Result<KVec<OrderedExtent>> {
        if len == 0 || start % BLOCK != 0 || len % BLOCK != 0 {
            return Err(EINVAL);
        }
        let mut pieces = KVec::new();
        disk.alloc(len / BLOCK, &mut pieces)?;
        map.start_write_at(&pieces, start, generation)
            .inspect_err(|_| {
                for &(block, n) in pieces.iter() {
                    let _ = disk.free(block, n);
                }
            })
    }

    /// A disk whose lock lockdep knows reclaim takes, as a mount's.
    fn disk(blocks: u64) -> Result<Pin<KBox<Disk>>> {
        let d = KBox::pin_init(Disk::new(blocks), GFP_KERNEL)?;
        d.annotate_reclaim();
        Ok(d)
    }

    #[test]
    fn write_pins_until_finished() -> Result {
        let f = fixture()?;
        let d = disk(64)?;
        let oes = start_write(&f.map, &d, 0, 4 * K4, 5)?;
        kunit_ensure_eq!(oes.len(), 1);
        kunit_ensure_eq!(d.nr_free(), 60);
        {
            let tree = f.map.cache().tree().read();
            kunit_ensure_eq!(
                (tree.nr_cached(), tree.nr_pinned(), tree.nr_modified()),
                (1, 1, 1)
            );
        }
        // Not recorded yet: the records still say hole.
        kunit_ensure!(find(&f, 0).is_none());
        f.map.finish_write(&d, &oes[0])?;
        let em = f.map.get_extent(K4, 4 * K4)?;
        kunit_ensure!(!em.is_pinned());
        kunit_ensure_eq!(
            (em.start(), em.len(), em.disk_bytenr(), em.generation()),
            (0, 4 * K4, 0, 5)
        );
        kunit_ensure_eq!(find(&f, 0).map(|e| e.block), Some(0));
        Ok(())
    }

    #[test]
    fn overwrite_frees_the_old_blocks() -> Result {
        let f = fixture()?;
        let d = disk(16)?;
        for oe in start_write(&f.map, &d, 0, 8 * K4, 1)?.iter() {
            f.map.finish_write(&d, oe)?;
        }
        kunit_ensure_eq!(d.nr_free(), 8);
        // Copy on write of the middle: new blocks, the old middle freed.
        for oe in start_write(&f.map, &d, 2 * K4, 2 * K4, 2)?.iter() {
            f.map.finish_write(&d, oe)?;
        }
        kunit_ensure_eq!(d.nr_free(), 8);
        // Collected under the records: in a no-fs scope, as any allocation
        // there.
        let layout = f.map.with_records(|records| -> Result<KVec<_>> {
            let mut v = KVec::new();
            for e in records.iter() {
                v.push((e.start, e.len, e.block), GFP_KERNEL)?;
            }
            Ok(v)
        })?;
        kunit_ensure_eq!(
            &layout[..],
            &[(0, 2 * K4, 0), (2 * K4, 2 * K4, 8), (4 * K4, 4 * K4, 4)]
        );
        Ok(())
    }

    #[test]
    fn fragmented_write_makes_several_ordered_extents() -> Result {
        let f = fixture()?;
        let d = disk(8)?;
        let mut held = KVec::new();
        d.alloc(8, &mut held)?;
        d.free(1, 1)?;
        d.free(3, 2)?;
        let oes = start_write(&f.map, &d, 0, 3 * K4, 1)?;
        kunit_ensure_eq!(oes.len(), 2);
        kunit_ensure_eq!((oes[0].start, oes[0].len, oes[0].block), (0, K4, 1));
        kunit_ensure_eq!((oes[1].start, oes[1].len, oes[1].block), (K4, 2 * K4, 3));
        for oe in oes.iter() {
            f.map.finish_write(&d, oe)?;
        }
        kunit_ensure_eq!(f.map.cache().tree().read().nr_pinned(), 0);
        Ok(())
    }

    #[test]
    fn enospc_changes_nothing() -> Result {
        let f = fixture()?;
        let d = disk(4)?;
        for oe in start_write(&f.map, &d, 0, 2 * K4, 1)?.iter() {
            f.map.finish_write(&d, oe)?;
        }
        kunit_ensure_eq!(
            refusal(start_write(&f.map, &d, 8 * K4, 3 * K4, 2))?,
            Some(ENOSPC)
        );
        kunit_ensure_eq!(d.nr_free(), 2);
        kunit_ensure_eq!(f.map.cache().tree().read().nr_pinned(), 0);
        // Freeing space (overwriting in place frees the old blocks) works.
        for oe in start_write(&f.map, &d, 0, 2 * K4, 3)?.iter() {
            f.map.finish_write(&d, oe)?;
        }
        kunit_ensure_eq!(d.nr_free(), 2);
        Ok(())
    }

    #[test]
    fn fsync_logs_modified_maps_then_they_merge() -> Result {
        let f = fixture()?;
        let d = disk(16)?;
        for start in [0, K4, 2 * K4] {
            for oe in start_write(&f.map, &d, start, K4, 1)?.iter() {
                f.map.finish_write(&d, oe)?;
            }
        }
        // Three adjacent maps on the list: not merged until logged.
        kunit_ensure_eq!(f.map.cache().tree().read().nr_modified(), 3);
        kunit_ensure_eq!(f.map.cache().tree().read().nr_cached(), 3);
        let report = f.map.fsync();
        kunit_ensure_eq!(
            report,
            FsyncReport {
                full: false,
                logged: 3
            }
        );
        let tree = f.map.cache().tree().read();
        kunit_ensure_eq!((tree.nr_modified(), tree.nr_cached()), (0, 1));
        drop(tree);
        // Nothing new: nothing logged.
        kunit_ensure_eq!(
            f.map.fsync(),
            FsyncReport {
                full: false,
                logged: 0
            }
        );
        Ok(())
    }

    #[test]
    fn fsync_honours_the_full_sync_mark() -> Result {
        let f = fixture()?;
        let d = disk(16)?;
        for oe in start_write(&f.map, &d, 0, 2 * K4, 1)?.iter() {
            f.map.finish_write(&d, oe)?;
        }
        for oe in start_write(&f.map, &d, 4 * K4, K4, 1)?.iter() {
            f.map.finish_write(&d, oe)?;
        }
        // The shrinker drops the maps fsync has not logged yet.
        let owner = f.reg.owner();
        let _ = crate::shrinker::EmOwner::request_scan(owner.as_arc_borrow(), 100, true);
        crate::shrinker::EmOwner::flush(owner);
        kunit_ensure_eq!(f.map.cache().tree().read().nr_cached(), 0);
        kunit_ensure!(f.map.cache().tree().read().needs_full_sync());
        // fsync logs every record, and the mark goes.
        kunit_ensure_eq!(
            f.map.fsync(),
            FsyncReport {
                full: true,
                logged: 2
            }
        );
        kunit_ensure!(!f.map.cache().tree().read().needs_full_sync());
        // The data is still found: reloaded from the records.
        kunit_ensure_eq!(f.map.get_extent(K4, 8 * K4)?.disk_bytenr(), 0);
        Ok(())
    }

    #[test]
    fn check_compares_maps_with_records() -> Result {
        let f = fixture()?;
        let d = disk(16)?;
        let check = |f: &Fixture| -> Result<FileCheck> {
            let mut pieces = KVec::new();
            let c = f.map.check(16, &mut pieces)?;
            kunit_ensure_eq!(d.check(&mut pieces).problems, 0);
            Ok(c)
        };
        let ordered = start_write(&f.map, &d, 0, 4 * K4, 1)?;
        // In flight: the pinned map's blocks count as used.
        let c = check(&f)?;
        let tree = f.map.cache().tree().read().check();
        kunit_ensure_eq!((c.records, c.in_flight, tree.pinned), (0, 4, 1));
        kunit_ensure_eq!((c.problems, tree.problems), (0, 0));
        for oe in ordered.iter() {
            f.map.finish_write(&d, oe)?;
        }
        let _ = f.map.get_extent(6 * K4, 16 * K4)?;
        let c = check(&f)?;
        kunit_ensure_eq!((c.records, c.blocks, c.in_flight), (1, 4, 0));
        let tree = f.map.cache().tree().read().check();
        kunit_ensure_eq!((tree.cached, c.problems, tree.problems), (2, 0, 0));
        // A map that says [K4, 2K4) is in another block than the records
        // say, and a hole map over data: two problems.
        let tree = f.map.cache().tree();
        tree.replace_range(
            PreparedMap::new(ExtentMapInfo::regular(K4, K4, 9 * K4))?,
            false,
        )?;
        kunit_ensure_eq!(f.map.check(16, &mut KVec::new())?.problems, 1);
        tree.replace_range(PreparedMap::new(ExtentMapInfo::hole(2 * K4, K4))?, false)?;
        kunit_ensure_eq!(f.map.check(16, &mut KVec::new())?.problems, 2);
        // A record off a disk of 2 blocks.
        kunit_ensure_eq!(f.map.check(2, &mut KVec::new())?.problems, 3);
        Ok(())
    }

    #[test]
    fn punch_frees_blocks_and_drops_maps() -> Result {
        let f = fixture()?;
        let d = disk(16)?;
        for oe in start_write(&f.map, &d, 0, 8 * K4, 1)?.iter() {
            f.map.finish_write(&d, oe)?;
        }
        let _ = f.map.get_extent(0, 8 * K4)?;
        f.map.punch(&d, 2 * K4, 4 * K4)?;
        kunit_ensure_eq!(d.nr_free(), 10);
        // The hole is a hole, the rest still maps to the same blocks.
        let hole = f.map.get_extent(3 * K4, 8 * K4)?;
        kunit_ensure_eq!(
            (hole.start(), hole.end(), hole.disk_bytenr()),
            (2 * K4, 4 * K4, EXTENT_MAP_HOLE)
        );
        let rest = f.map.get_extent(5 * K4, 8 * K4)?;
        kunit_ensure_eq!((rest.start(), rest.block_start()), (4 * K4, 4 * K4));
        // Truncation: punch to the end.
        f.map.punch(&d, 6 * K4, u64::MAX)?;
        kunit_ensure_eq!(d.nr_free(), 12);
        kunit_ensure_eq!(refusal(f.map.punch(&d, 1, K4))?, Some(EINVAL));
        kunit_ensure_eq!(refusal(f.map.punch(&d, K4, K4))?, Some(EINVAL));
        Ok(())
    }

    #[test]
    fn preallocate_fills_holes_only() -> Result {
        let f = fixture()?;
        let d = disk(16)?;
        for oe in start_write(&f.map, &d, 2 * K4, K4, 1)?.iter() {
            f.map.finish_write(&d, oe)?;
        }
        let _ = f.map.get_extent(0, 8 * K4)?;
        f.map.preallocate(&d, 0, 4 * K4, 2)?;
        kunit_ensure_eq!(d.nr_free(), 12);
        let p = f.map.get_extent(0, 4 * K4)?;
        kunit_ensure!(p.flags().contains(EmFlags::PREALLOC));
        kunit_ensure_eq!((p.start(), p.len()), (0, 2 * K4));
        // The written block is kept as it was.
        let w = f.map.get_extent(2 * K4, 4 * K4)?;
        kunit_ensure!(!w.flags().contains(EmFlags::PREALLOC));
        kunit_ensure_eq!(w.block_start(), 0);
        // Already allocated: nothing to do. Too much: ENOSPC, no change.
        f.map.preallocate(&d, 0, 4 * K4, 3)?;
        kunit_ensure_eq!(d.nr_free(), 12);
        kunit_ensure_eq!(
            refusal(f.map.preallocate(&d, 4 * K4, 13 * K4, 3))?,
            Some(ENOSPC)
        );
        kunit_ensure_eq!(d.nr_free(), 12);
        kunit_ensure_eq!(refusal(f.map.preallocate(&d, 0, 1, 3))?, Some(EINVAL));
        Ok(())
    }

    /// Issue 14, finding 3: what is allocated under `FileMap::records`
    /// (and under `Disk::free`, which fallocate takes under it) never
    /// enters filesystem reclaim. Reclaim takes `records` (evicting an
    /// inode punches its records) and waits for writeback, whose
    /// completion takes `records`: a task allocating under it with
    /// `GFP_KERNEL` could wait on itself, or on a writeback that waits for
    /// it.
    ///
    /// The fixtures tell lockdep that reclaim takes both locks
    /// ([`FileMap::annotate_reclaim`], [`Disk::annotate_reclaim`]); then
    /// every path that allocates under them runs: write completion (a
    /// punch that splits records, the new record), a hole punch and a
    /// truncation, fallocate over holes, the consistency check. Before the
    /// fix they allocated with `GFP_KERNEL` under the lock (`scratch`,
    /// `punch`'s lists and nodes, `holes`, `pieces`): lockdep reported the
    /// cycle `fs_reclaim` -> `FileMap::records` -> `fs_reclaim`, turned
    /// itself off, and the case failed. Without lockdep it checks nothing.
    #[test]
    fn nothing_under_the_records_enters_fs_reclaim() -> Result {
        let Some(on) = lockdep_checking() else {
            return Ok(());
        };
        kunit_ensure!(on, "lockdep is off: it reported a problem earlier");
        let f = fixture()?;
        let d = disk(64)?;
        write_through(&f, &d, 0, 8, 1)?;
        // Overwrite the middle: the record is split in three.
        write_through(&f, &d, 3 * K4, 2, 2)?;
        f.map.punch(&d, K4, 2 * K4)?;
        f.map.preallocate(&d, 0, 16 * K4, 3)?;
        let mut pieces = KVec::new();
        let c = f.map.check(64, &mut pieces)?;
        kunit_ensure_eq!((c.problems, d.check(&mut pieces).problems), (0, 0));
        f.map.punch(&d, 4 * K4, u64::MAX)?;
        let _ = f.map.fsync();
        kunit_ensure!(
            lockdep_checking() == Some(true),
            "lockdep reported an allocation under FileMap::records"
        );
        Ok(())
    }

    #[test]
    fn get_extent_enomem_changes_nothing() -> Result {
        let f = fixture()?;
        insert(&f, record(0, K4, 1))?;
        {
            let _fail = crate::glue::alloc::FailAllocs::arm(1, 1);
            kunit_ensure_eq!(f.map.get_extent(0, K4).err(), Some(ENOMEM));
        }
        kunit_ensure_eq!(f.map.cache().tree().read().nr_cached(), 0);
        kunit_ensure_eq!(f.map.get_extent(0, K4)?.len(), K4);
        Ok(())
    }

    fn block_of(byte: u8) -> Result<KBox<Block>> {
        let mut b = KBox::<Block>::init(pin_init::init_zeroed(), GFP_KERNEL)?;
        b.fill(byte);
        Ok(b)
    }

    /// Writes `n` blocks of `byte` at `start` through the writeback path,
    /// completed.
    fn write_through(f: &Fixture, d: &Disk, start: u64, n: u64, byte: u8) -> Result {
        let mut data = KVec::new();
        for _ in 0..n {
            data.push(block_of(byte)?, GFP_KERNEL)?;
        }
        d.reserve(n)?;
        let oes = f.map.write_back(d, start, data, 1)?;
        f.map.finish_writes(d, &oes);
        Ok(())
    }

    #[test]
    fn write_back_then_read_back() -> Result {
        let f = fixture()?;
        let d = disk(16)?;
        write_through(&f, &d, K4, 2, 0x5a)?;
        kunit_ensure_eq!((d.nr_free(), d.nr_reserved()), (14, 0));
        let mut buf = block_of(0xff)?;
        read_block(&f.map, &d, 2 * K4, 3 * K4, &mut buf)?;
        kunit_ensure!(buf.iter().all(|&b| b == 0x5a));
        // A hole reads as zeroes, also past what was ever written.
        read_block(&f.map, &d, 0, 3 * K4, &mut buf)?;
        kunit_ensure!(buf.iter().all(|&b| b == 0));
        // After the shrinker: reloaded from the records, same bytes.
        f.map.cache().tree().drop_all();
        read_block(&f.map, &d, K4, 3 * K4, &mut buf)?;
        kunit_ensure!(buf.iter().all(|&b| b == 0x5a));
        Ok(())
    }

    #[test]
    fn read_without_memory_for_a_map_reads_uncached() -> Result {
        let f = fixture()?;
        let d = disk(16)?;
        write_through(&f, &d, K4, 2, 0x5a)?;
        f.map.cache().tree().drop_all();
        let mut data = block_of(0xff)?;
        let mut hole = block_of(0xff)?;
        let (r1, r2) = {
            // Every allocation of the module fails: no map can be built.
            let _fail = crate::glue::alloc::FailAllocs::arm(1, -1);
            (
                read_block(&f.map, &d, 2 * K4, 3 * K4, &mut data),
                read_block(&f.map, &d, 0, 3 * K4, &mut hole),
            )
        };
        kunit_ensure_eq!((r1, r2), (Ok(()), Ok(())));
        kunit_ensure!(data.iter().all(|&b| b == 0x5a));
        kunit_ensure!(hole.iter().all(|&b| b == 0));
        // Nothing was cached meanwhile; with memory, the cache fills again.
        kunit_ensure_eq!(f.map.cache().tree().read().nr_cached(), 0);
        read_block(&f.map, &d, 2 * K4, 3 * K4, &mut data)?;
        kunit_ensure_eq!(f.map.cache().tree().read().nr_cached(), 1);
        Ok(())
    }

    #[test]
    fn write_back_without_reservation_changes_nothing() -> Result {
        let f = fixture()?;
        let d = disk(4)?;
        let mut data = KVec::new();
        data.push(block_of(1)?, GFP_KERNEL)?;
        data.push(block_of(2)?, GFP_KERNEL)?;
        d.reserve(1)?;
        kunit_ensure_eq!(refusal(f.map.write_back(&d, 0, data, 1))?, Some(ENOSPC));
        kunit_ensure_eq!((d.nr_free(), d.nr_reserved()), (4, 1));
        kunit_ensure_eq!(f.map.cache().tree().read().nr_cached(), 0);
        // Memory runs out storing the data: the blocks go back to the
        // reservation.
        let mut data = KVec::new();
        data.push(block_of(1)?, GFP_KERNEL)?;
        {
            let _fail = crate::glue::alloc::FailAllocs::arm(1, 1);
            let r = f.map.write_back(&d, 0, data, 1);
            kunit_ensure!(matches!(r.err(), None | Some(ENOMEM)));
        }
        let cached = f.map.cache().tree().read().nr_cached();
        if cached == 0 {
            kunit_ensure_eq!((d.nr_free(), d.nr_reserved()), (4, 1));
        }
        Ok(())
    }
}
