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
//!    read path; never the other way round).

use super::{
    disk::Disk,
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
        PreparedMap, //
    },
    shrinker::EmInode,
};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        Arc,
        Mutex, //
    },
};

const BLOCK: u64 = super::disk::BLOCK_SIZE as u64;

/// Data on its way to disk (btrfs's ordered extent): blocks allocated and
/// a pinned map in the cache. It is the regular extent the records will
/// hold once it completes.
pub(crate) type OrderedExtent = FileExtent;

/// The mapping of one file.
#[pin_data]
pub(crate) struct FileMap {
    em: Arc<EmInode>,
    #[pin]
    records: Mutex<FileRecords>,
}

impl FileMap {
    /// The mapping of a new, empty file whose maps are cached in `em`.
    pub(crate) fn new(em: Arc<EmInode>) -> impl PinInit<Self> {
        pin_init!(Self {
            em,
            records <- new_mutex!(FileRecords::new(), "FileMap::records"),
        })
    }

    /// The file's records.
    pub(crate) fn records(&self) -> &Mutex<FileRecords> {
        &self.records
    }

    /// The file's extent map cache.
    pub(crate) fn cache(&self) -> &EmInode {
        &self.em
    }

    /// The extent map covering `offset` in a file of `size` bytes
    /// (`btrfs_get_extent()`): a regular or preallocated extent, or a hole.
    /// `ENOMEM` if a map must be built and cannot be.
    pub(crate) fn get_extent(&self, offset: u64, size: u64) -> Result<Arc<ExtentMap>> {
        if let Some(em) = self.em.lookup(offset, 1) {
            if em.start() <= offset {
                return Ok(em);
            }
        }
        // A miss (counted by the lookup): rebuild the map from the records.
        let info = self.records.lock().map_at(offset, size);
        let pm = PreparedMap::new(info)?;
        let block = offset & !(BLOCK - 1);
        self.em.tree().write().add_extent_mapping(pm, block, BLOCK)
    }
}

impl FileMap {
    /// Copy on write for the block-aligned range `[start, start + len)`
    /// (`cow_file_range()`): allocates new blocks for it, and caches a
    /// pinned map on the list of modified extents for each extent they
    /// form, replacing what the cache held for the range. Returns the
    /// ordered extents; their data goes to their blocks, then each is
    /// completed with [`FileMap::finish_write`].
    ///
    /// `ENOSPC` if the disk is full, `ENOMEM`, `EINVAL` if unaligned;
    /// nothing changes on failure.
    pub(crate) fn start_write(
        &self,
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
        let prepared = (|| -> Result<KVec<(OrderedExtent, PreparedMap)>> {
            let mut out = KVec::with_capacity(pieces.len(), GFP_KERNEL)?;
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
                out.push((oe, PreparedMap::new_modified(info)?), GFP_KERNEL)?;
                off += oe.len;
            }
            Ok(out)
        })();
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => {
                for &(block, n) in pieces.iter() {
                    let _ = disk.free(block, n);
                }
                return Err(e);
            }
        };
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
        {
            let mut records = self.records.lock();
            let mut scratch = FileRecords::new();
            // Room for the new record first, in a scratch tree, so that the
            // punch below is the last thing that can fail.
            scratch.insert(*oe)?;
            records.punch(oe.start, oe.start + oe.len, &mut freed)?;
            records.take_from(&mut scratch);
        }
        for &(block, n) in freed.iter() {
            disk.free(block, n)?;
        }
        self.em.tree().unpin(oe.start, oe.len, oe.generation)
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
        {
            let mut records = self.records.lock();
            let last = records.iter().last().map_or(start, |e| e.end());
            let end = end.min(last.max(start));
            if end > start {
                records.punch(start, end, &mut freed)?;
            }
        }
        self.em
            .tree()
            .drop_range(start, end.saturating_sub(1).max(start), false);
        for &(block, n) in freed.iter() {
            disk.free(block, n)?;
        }
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
        let mut records = self.records.lock();
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
            return Ok(());
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
            for &(block, n) in pieces.iter() {
                let _ = disk.free(block, n);
            }
            return Err(e);
        }
        records.take_from(&mut scratch);
        drop(records);
        // Cached holes in the range are stale now.
        self.em.tree().drop_range(start, end - 1, false);
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
        let (mut logging, full) = {
            let mut tree = self.em.tree().write();
            (tree.take_modified(), tree.clear_full_sync())
        };
        let mut logged = 0;
        if full {
            logged = self.records.lock().iter().count();
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
    use crate::shrinker::EmOwnerRegistration;
    use kernel::sync::atomic::Relaxed;

    const K4: u64 = BLOCK;

    struct Fixture {
        reg: EmOwnerRegistration,
        map: Pin<KBox<FileMap>>,
    }

    fn fixture() -> Result<Fixture> {
        let reg = EmOwnerRegistration::new(K4 as u32, false)?;
        let em = reg.owner().add_inode(2)?;
        let map = KBox::pin_init(FileMap::new(em), GFP_KERNEL)?;
        Ok(Fixture { reg, map })
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
        f.map.records().lock().insert(record(0, 4 * K4, 100))?;
        let c = f.reg.owner().counters();
        let em = f.map.get_extent(K4, 4 * K4)?;
        assert_eq!(
            (em.start(), em.len(), em.disk_bytenr()),
            (0, 4 * K4, 100 * K4)
        );
        assert_eq!((c.hits.load(Relaxed), c.misses.load(Relaxed)), (0, 1));
        let again = f.map.get_extent(3 * K4, 4 * K4)?;
        assert!(core::ptr::eq(&*em, &*again));
        assert_eq!((c.hits.load(Relaxed), c.misses.load(Relaxed)), (1, 1));
        Ok(())
    }

    #[test]
    fn holes_are_cached_too() -> Result {
        let f = fixture()?;
        f.map.records().lock().insert(record(4 * K4, K4, 7))?;
        let hole = f.map.get_extent(K4, 8 * K4)?;
        assert_eq!(
            (hole.start(), hole.len(), hole.disk_bytenr()),
            (0, 4 * K4, EXTENT_MAP_HOLE)
        );
        let tail = f.map.get_extent(6 * K4, 8 * K4)?;
        assert_eq!((tail.start(), tail.end()), (5 * K4, 8 * K4));
        assert_eq!(f.map.cache().tree().read().nr_cached(), 2);
        Ok(())
    }

    #[test]
    fn reload_after_the_shrinker_dropped_maps() -> Result {
        let f = fixture()?;
        f.map.records().lock().insert(record(0, 2 * K4, 40))?;
        let first = f.map.get_extent(0, 2 * K4)?.info();
        // The shrinker drops every unpinned map; the records remain.
        f.map.cache().tree().drop_all();
        let again = f.map.get_extent(0, 2 * K4)?.info();
        assert_eq!(first, again);
        assert_eq!(f.reg.owner().counters().misses.load(Relaxed), 2);
        Ok(())
    }

    #[test]
    fn race_with_a_map_cached_meanwhile() -> Result {
        let f = fixture()?;
        f.map.records().lock().insert(record(0, 8 * K4, 500))?;
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
        assert_eq!((em.start(), em.end()), (4 * K4, 8 * K4));
        assert_eq!(em.block_start(), 504 * K4);
        let em = f.map.get_extent(3 * K4, 8 * K4)?;
        assert_eq!((em.start(), em.end()), (2 * K4, 4 * K4));
        Ok(())
    }

    fn disk(blocks: u64) -> Result<Pin<KBox<Disk>>> {
        KBox::pin_init(Disk::new(blocks), GFP_KERNEL)
    }

    #[test]
    fn write_pins_until_finished() -> Result {
        let f = fixture()?;
        let d = disk(64)?;
        let oes = f.map.start_write(&d, 0, 4 * K4, 5)?;
        assert_eq!(oes.len(), 1);
        assert_eq!(d.nr_free(), 60);
        {
            let tree = f.map.cache().tree().read();
            assert_eq!(
                (tree.nr_cached(), tree.nr_pinned(), tree.nr_modified()),
                (1, 1, 1)
            );
        }
        // Not recorded yet: the records still say hole.
        assert!(f.map.records().lock().find(0).is_none());
        f.map.finish_write(&d, &oes[0])?;
        let em = f.map.get_extent(K4, 4 * K4)?;
        assert!(!em.is_pinned());
        assert_eq!(
            (em.start(), em.len(), em.disk_bytenr(), em.generation()),
            (0, 4 * K4, 0, 5)
        );
        assert_eq!(f.map.records().lock().find(0).map(|e| e.block), Some(0));
        Ok(())
    }

    #[test]
    fn overwrite_frees_the_old_blocks() -> Result {
        let f = fixture()?;
        let d = disk(16)?;
        for oe in f.map.start_write(&d, 0, 8 * K4, 1)?.iter() {
            f.map.finish_write(&d, oe)?;
        }
        assert_eq!(d.nr_free(), 8);
        // Copy on write of the middle: new blocks, the old middle freed.
        for oe in f.map.start_write(&d, 2 * K4, 2 * K4, 2)?.iter() {
            f.map.finish_write(&d, oe)?;
        }
        assert_eq!(d.nr_free(), 8);
        let records = f.map.records().lock();
        let layout: KVec<_> = {
            let mut v = KVec::new();
            for e in records.iter() {
                v.push((e.start, e.len, e.block), GFP_KERNEL)?;
            }
            v
        };
        assert_eq!(
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
        let oes = f.map.start_write(&d, 0, 3 * K4, 1)?;
        assert_eq!(oes.len(), 2);
        assert_eq!((oes[0].start, oes[0].len, oes[0].block), (0, K4, 1));
        assert_eq!((oes[1].start, oes[1].len, oes[1].block), (K4, 2 * K4, 3));
        for oe in oes.iter() {
            f.map.finish_write(&d, oe)?;
        }
        assert_eq!(f.map.cache().tree().read().nr_pinned(), 0);
        Ok(())
    }

    #[test]
    fn enospc_changes_nothing() -> Result {
        let f = fixture()?;
        let d = disk(4)?;
        for oe in f.map.start_write(&d, 0, 2 * K4, 1)?.iter() {
            f.map.finish_write(&d, oe)?;
        }
        assert_eq!(f.map.start_write(&d, 8 * K4, 3 * K4, 2).err(), Some(ENOSPC));
        assert_eq!(d.nr_free(), 2);
        assert_eq!(f.map.cache().tree().read().nr_pinned(), 0);
        // Freeing space (overwriting in place frees the old blocks) works.
        for oe in f.map.start_write(&d, 0, 2 * K4, 3)?.iter() {
            f.map.finish_write(&d, oe)?;
        }
        assert_eq!(d.nr_free(), 2);
        Ok(())
    }

    #[test]
    fn fsync_logs_modified_maps_then_they_merge() -> Result {
        let f = fixture()?;
        let d = disk(16)?;
        for start in [0, K4, 2 * K4] {
            for oe in f.map.start_write(&d, start, K4, 1)?.iter() {
                f.map.finish_write(&d, oe)?;
            }
        }
        // Three adjacent maps on the list: not merged until logged.
        assert_eq!(f.map.cache().tree().read().nr_modified(), 3);
        assert_eq!(f.map.cache().tree().read().nr_cached(), 3);
        let report = f.map.fsync();
        assert_eq!(
            report,
            FsyncReport {
                full: false,
                logged: 3
            }
        );
        let tree = f.map.cache().tree().read();
        assert_eq!((tree.nr_modified(), tree.nr_cached()), (0, 1));
        drop(tree);
        // Nothing new: nothing logged.
        assert_eq!(
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
        f.reg.owner().set_generation(1);
        for oe in f.map.start_write(&d, 0, 2 * K4, 1)?.iter() {
            f.map.finish_write(&d, oe)?;
        }
        for oe in f.map.start_write(&d, 4 * K4, K4, 1)?.iter() {
            f.map.finish_write(&d, oe)?;
        }
        // The shrinker drops the unlogged maps of this generation.
        let owner = f.reg.owner();
        let _ = crate::shrinker::EmOwner::request_scan(owner.as_arc_borrow(), 100, true);
        crate::shrinker::EmOwner::flush(owner);
        assert_eq!(f.map.cache().tree().read().nr_cached(), 0);
        assert!(f.map.cache().tree().read().needs_full_sync());
        // fsync logs every record, and the mark goes.
        assert_eq!(
            f.map.fsync(),
            FsyncReport {
                full: true,
                logged: 2
            }
        );
        assert!(!f.map.cache().tree().read().needs_full_sync());
        // The data is still found: reloaded from the records.
        assert_eq!(f.map.get_extent(K4, 8 * K4)?.disk_bytenr(), 0);
        Ok(())
    }

    #[test]
    fn punch_frees_blocks_and_drops_maps() -> Result {
        let f = fixture()?;
        let d = disk(16)?;
        for oe in f.map.start_write(&d, 0, 8 * K4, 1)?.iter() {
            f.map.finish_write(&d, oe)?;
        }
        let _ = f.map.get_extent(0, 8 * K4)?;
        f.map.punch(&d, 2 * K4, 4 * K4)?;
        assert_eq!(d.nr_free(), 10);
        // The hole is a hole, the rest still maps to the same blocks.
        let hole = f.map.get_extent(3 * K4, 8 * K4)?;
        assert_eq!(
            (hole.start(), hole.end(), hole.disk_bytenr()),
            (2 * K4, 4 * K4, EXTENT_MAP_HOLE)
        );
        let rest = f.map.get_extent(5 * K4, 8 * K4)?;
        assert_eq!((rest.start(), rest.block_start()), (4 * K4, 4 * K4));
        drop(rest);
        // Truncation: punch to the end.
        f.map.punch(&d, 6 * K4, u64::MAX)?;
        assert_eq!(d.nr_free(), 12);
        assert_eq!(f.map.punch(&d, 1, K4).err(), Some(EINVAL));
        assert_eq!(f.map.punch(&d, K4, K4).err(), Some(EINVAL));
        Ok(())
    }

    #[test]
    fn preallocate_fills_holes_only() -> Result {
        let f = fixture()?;
        let d = disk(16)?;
        for oe in f.map.start_write(&d, 2 * K4, K4, 1)?.iter() {
            f.map.finish_write(&d, oe)?;
        }
        let _ = f.map.get_extent(0, 8 * K4)?;
        f.map.preallocate(&d, 0, 4 * K4, 2)?;
        assert_eq!(d.nr_free(), 12);
        let p = f.map.get_extent(0, 4 * K4)?;
        assert!(p.flags().contains(EmFlags::PREALLOC));
        assert_eq!((p.start(), p.len()), (0, 2 * K4));
        // The written block is kept as it was.
        let w = f.map.get_extent(2 * K4, 4 * K4)?;
        assert!(!w.flags().contains(EmFlags::PREALLOC));
        assert_eq!(w.block_start(), 0);
        // Already allocated: nothing to do. Too much: ENOSPC, no change.
        f.map.preallocate(&d, 0, 4 * K4, 3)?;
        assert_eq!(d.nr_free(), 12);
        assert_eq!(
            f.map.preallocate(&d, 4 * K4, 13 * K4, 3).err(),
            Some(ENOSPC)
        );
        assert_eq!(d.nr_free(), 12);
        assert_eq!(f.map.preallocate(&d, 0, 1, 3).err(), Some(EINVAL));
        Ok(())
    }

    #[test]
    fn get_extent_enomem_changes_nothing() -> Result {
        let f = fixture()?;
        f.map.records().lock().insert(record(0, K4, 1))?;
        {
            let _fail = crate::glue::alloc::FailAllocs::arm(1, 1);
            assert_eq!(f.map.get_extent(0, K4).err(), Some(ENOMEM));
        }
        assert_eq!(f.map.cache().tree().read().nr_cached(), 0);
        assert_eq!(f.map.get_extent(0, K4)?.len(), K4);
        Ok(())
    }
}
