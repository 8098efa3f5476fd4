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

use super::records::FileRecords;
use crate::{
    extent_map::{
        ExtentMap,
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
