// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `emfs_shrinker`: the shrinker's count and scan, and the
//! worker's policy, driven through the same entry points the kernel's
//! shrinker callbacks use ([`EmOwner::request_scan`]).
//!
//! Every case holds a shrinker registration, and some hold locks: checks
//! return an error ([`kunit_ensure!`]) instead of asserting, so that the
//! registration and the locks are dropped when a check fails.
//!
//! [`kunit_ensure!`]: crate::glue::kunit::kunit_ensure

#[kernel::macros::kunit_tests(emfs_shrinker)]
mod cases {
    use crate::extent_map::{
        live_maps,
        EmFlags,
        ExtentMapInfo,
        PreparedMap, //
    };
    use crate::glue::{
        alloc::refusal,
        kunit::{
            kunit_ensure,
            kunit_ensure_eq, //
        },
        sched::mdelay,
    };
    use crate::shrinker::*;
    use kernel::sync::Arc;

    const K4: u64 = 4096;

    /// An owner with `inodes` inodes of `maps` maps each, none mergeable.
    struct Fixture {
        reg: EmOwnerRegistration,
        live_maps: i64,
        live_owners: i64,
    }

    impl Fixture {
        fn new(inodes: u64, maps: u64) -> Result<Self> {
            let live_maps = live_maps();
            let live_owners = live_owners();
            let reg = EmOwnerRegistration::new(K4 as u32, false)?;
            for ino in 1..=inodes {
                let inode = reg.owner().add_inode(ino)?;
                for i in 0..maps {
                    // 4K every 8K: never adjacent, never merged.
                    let info = ExtentMapInfo::regular(i * 2 * K4, K4, (ino << 32) + i * 2 * K4);
                    inode.tree().add(PreparedMap::new(info)?, false)?;
                }
            }
            Ok(Self {
                reg,
                live_maps,
                live_owners,
            })
        }

        fn owner(&self) -> &Arc<EmOwner> {
            self.reg.owner()
        }

        /// Asks for `nr` maps as a reclaimer allowed into filesystems would,
        /// and waits for the worker.
        fn shrink(&self, nr: usize) -> ShrinkScan {
            let owner = self.owner();
            let ret = EmOwner::request_scan(owner.as_arc_borrow(), nr, true);
            EmOwner::flush(owner);
            ret
        }

        fn cached(&self, ino: u64) -> usize {
            self.owner()
                .inode(ino)
                .map_or(0, |inode| inode.tree().read().nr_cached())
        }

        /// Tears the owner down and checks nothing leaked.
        fn finish(self) -> Result {
            let Self {
                reg,
                live_maps: maps_before,
                live_owners: owners_before,
            } = self;
            drop(reg);
            if live_maps() != maps_before || live_owners() != owners_before {
                pr_err!(
                    "leak: {} maps (expected {}), {} owners (expected {})\n",
                    live_maps(),
                    maps_before,
                    live_owners(),
                    owners_before
                );
                return Err(EINVAL);
            }
            Ok(())
        }
    }

    #[test]
    fn count_is_exact() -> Result {
        let f = Fixture::new(3, 10)?;
        kunit_ensure_eq!(f.owner().counters().evictable(), 30);
        // Pinned maps are not evictable.
        let inode = f.owner().inode(1).ok_or(ENOENT)?;
        let mut info = ExtentMapInfo::regular(1 << 20, K4, 1 << 40);
        info.flags = EmFlags::PINNED;
        inode.tree().add(PreparedMap::new(info)?, false)?;
        kunit_ensure_eq!(f.owner().counters().evictable(), 30);
        kunit_ensure_eq!(f.owner().counters().cached(), 31);
        inode.tree().unpin(1 << 20, K4, 1)?;
        kunit_ensure_eq!(f.owner().counters().evictable(), 31);
        f.shrink(5);
        kunit_ensure_eq!(f.owner().counters().evictable(), 26);
        drop(inode);
        f.finish()
    }

    #[test]
    fn inode_numbers_are_checked() -> Result {
        let f = Fixture::new(2, 0)?;
        kunit_ensure_eq!(refusal(f.owner().add_inode(0))?, Some(EINVAL));
        kunit_ensure_eq!(refusal(f.owner().add_inode(2))?, Some(EEXIST));
        kunit_ensure!(f.owner().remove_inode(2).is_some());
        kunit_ensure!(f.owner().remove_inode(2).is_none());
        f.finish()
    }

    #[test]
    fn empty_owner_counts_empty() -> Result {
        let f = Fixture::new(2, 0)?;
        kunit_ensure_eq!(f.owner().counters().evictable(), 0);
        // A run with nothing to do ends cleanly.
        kunit_ensure_eq!(f.shrink(100), ShrinkScan::Freed(0));
        kunit_ensure_eq!(f.owner().runs(), 1);
        f.finish()
    }

    #[test]
    fn scan_frees_at_most_nr_to_scan() -> Result {
        let f = Fixture::new(1, 100)?;
        f.shrink(10);
        kunit_ensure_eq!(f.cached(1), 90);
        f.shrink(1);
        kunit_ensure_eq!(f.cached(1), 89);
        f.finish()
    }

    #[test]
    fn scan_stops_without_fs_recursion() -> Result {
        let f = Fixture::new(1, 10)?;
        let ret = EmOwner::request_scan(f.owner().as_arc_borrow(), 10, false);
        kunit_ensure_eq!(ret, ShrinkScan::Stop);
        EmOwner::flush(f.owner());
        kunit_ensure_eq!(f.owner().runs(), 0);
        kunit_ensure_eq!(f.cached(1), 10);
        f.finish()
    }

    #[test]
    fn pinned_maps_survive() -> Result {
        let f = Fixture::new(1, 0)?;
        let inode = f.owner().inode(1).ok_or(ENOENT)?;
        for i in 0..20u64 {
            let mut info = ExtentMapInfo::regular(i * 2 * K4, K4, i * 2 * K4);
            if i % 2 == 0 {
                info.flags = EmFlags::PINNED;
            }
            inode.tree().add(PreparedMap::new(info)?, false)?;
        }
        f.shrink(1000);
        kunit_ensure_eq!(inode.tree().read().nr_cached(), 10);
        kunit_ensure_eq!(inode.tree().read().nr_pinned(), 10);
        for i in (0..20u64).step_by(2) {
            inode.tree().unpin(i * 2 * K4, K4, 1)?;
        }
        drop(inode);
        f.finish()
    }

    #[test]
    fn evicting_unlogged_maps_marks_full_sync() -> Result {
        let f = Fixture::new(4, 0)?;
        // Inodes 1 and 2: modified maps, of a recent and an old generation;
        // emfs has no commits, so neither is persisted until fsync logs it.
        // Inode 3: a map fsync is logging. Inode 4: a map fsync logged.
        for (ino, generation) in [(1u64, 10u64), (2, 1), (3, 1), (4, 1)] {
            let inode = f.owner().inode(ino).ok_or(ENOENT)?;
            let mut info = ExtentMapInfo::regular(0, K4, 0);
            info.generation = generation;
            inode.tree().add(PreparedMap::new_modified(info)?, true)?;
        }
        {
            // Taken, not cleared: it stays LOGGING.
            let three = f.owner().inode(3).ok_or(ENOENT)?;
            let mut maps = three.tree().take_modified();
            maps.pop_first().ok_or(ENOENT)?;
        }
        {
            let four = f.owner().inode(4).ok_or(ENOENT)?;
            let mut maps = four.tree().take_modified();
            let em = maps.pop_first().ok_or(ENOENT)?;
            four.tree().clear_logging(&em);
        }
        f.shrink(100);
        for ino in 1..=4 {
            kunit_ensure_eq!(f.cached(ino), 0);
        }
        let full_sync = |ino| {
            f.owner()
                .inode(ino)
                .is_some_and(|inode| inode.tree().read().needs_full_sync())
        };
        kunit_ensure!(full_sync(1));
        kunit_ensure!(full_sync(2), "a modified map of an old generation");
        kunit_ensure!(full_sync(3), "a map being logged");
        kunit_ensure!(!full_sync(4), "a logged map");
        kunit_ensure_eq!(f.owner().counters().modified(), 0);
        f.finish()
    }

    #[test]
    fn concurrent_scans_make_one_run() -> Result {
        let f = Fixture::new(4, 10)?;
        {
            // The worker needs the inode registry first thing; holding it
            // keeps the first run from ending while the storm goes on.
            let _hold = f.owner().hold_inodes_for_test();
            // The first call arms the run; the others see it pending and
            // stop at once.
            let ret = EmOwner::request_scan(f.owner().as_arc_borrow(), 8, true);
            kunit_ensure_eq!(ret, ShrinkScan::Freed(0));
            for _ in 0..63 {
                let ret = EmOwner::request_scan(f.owner().as_arc_borrow(), 8, true);
                kunit_ensure_eq!(ret, ShrinkScan::Stop);
            }
            mdelay(20);
        }
        EmOwner::flush(f.owner());
        kunit_ensure_eq!(f.owner().runs(), 1);
        kunit_ensure_eq!(f.owner().counters().evictable(), 32);
        f.finish()
    }

    #[test]
    fn cursor_resumes_across_runs() -> Result {
        let f = Fixture::new(8, 1)?;
        for run in 1..=8u64 {
            f.shrink(1);
            // Each run frees the map of the next inode.
            for ino in 1..=8 {
                kunit_ensure_eq!(f.cached(ino), if ino <= run { 0 } else { 1 });
            }
        }
        kunit_ensure_eq!(f.owner().counters().cached(), 0);
        f.finish()
    }

    #[test]
    fn write_locked_tree_is_skipped() -> Result {
        let f = Fixture::new(2, 5)?;
        let busy = f.owner().inode(1).ok_or(ENOENT)?;
        let runs = f.owner().runs();
        {
            let _locked = busy.tree().write();
            let _ = EmOwner::request_scan(f.owner().as_arc_borrow(), 100, true);
            // The worker runs on another CPU; wait for it without sleeping,
            // the tree lock being a spinlock.
            for _ in 0..5000 {
                if f.owner().runs() > runs {
                    break;
                }
                mdelay(1);
            }
        }
        EmOwner::flush(f.owner());
        kunit_ensure_eq!(f.owner().runs(), runs + 1);
        kunit_ensure_eq!(f.cached(1), 5);
        kunit_ensure_eq!(f.cached(2), 0);
        drop(busy);
        f.finish()
    }

    #[test]
    fn recently_used_inodes_go_last() -> Result {
        let f = Fixture::new(4, 1)?;
        // Inodes 1 and 2 were just used.
        for ino in [1, 2] {
            let inode = f.owner().inode(ino).ok_or(ENOENT)?;
            kunit_ensure!(inode.lookup(0, K4).is_some());
        }
        f.shrink(2);
        kunit_ensure_eq!(
            (f.cached(1), f.cached(2), f.cached(3), f.cached(4)),
            (1, 1, 0, 0)
        );
        // Their second chance is spent: the next run takes them.
        f.shrink(2);
        kunit_ensure_eq!((f.cached(1), f.cached(2)), (0, 0));
        f.finish()
    }

    #[test]
    fn hot_inode_gives_maps_back() -> Result {
        let f = Fixture::new(3, 100)?;
        // Inode 2 is looked up before the run and between any two of its
        // visits, as by readers on other CPUs: a plain CLOCK bit would
        // pass it over on every visit of every run.
        f.owner().inode(2).ok_or(ENOENT)?.touch();
        f.owner().touch_between_visits(2);
        f.shrink(1000);
        let left = (f.cached(1), f.cached(2), f.cached(3));
        let evictable = f.owner().counters().evictable();
        let spared = f.owner().spared();
        f.owner().touch_between_visits(0);
        // One run of two visits per inode reaches every map: the count
        // advertised nothing the run refused.
        kunit_ensure_eq!(left, (0, 0, 0));
        kunit_ensure_eq!(evictable, 0);
        kunit_ensure_eq!(spared, 1);
        f.finish()
    }

    #[test]
    fn hot_inode_gives_maps_back_within_a_cycle() -> Result {
        let f = Fixture::new(4, 10)?;
        f.owner().inode(1).ok_or(ENOENT)?.touch();
        f.owner().touch_between_visits(1);
        // Runs of 10 maps: each visit that takes maps ends its run. Inode 1
        // is passed over in the first run and loses its maps when the
        // cursor comes back to it, after the three cold inodes.
        let mut runs = 0;
        while f.cached(1) > 0 && runs < 8 {
            f.shrink(10);
            runs += 1;
        }
        f.owner().touch_between_visits(0);
        let cold = f.cached(2) + f.cached(3) + f.cached(4);
        kunit_ensure!(
            f.cached(1) == 0 && runs == 4 && cold == 0,
            "{} maps left after {} runs, {} cold",
            f.cached(1),
            runs,
            cold
        );
        f.finish()
    }

    #[test]
    fn teardown_with_worker_queued() -> Result {
        let f = Fixture::new(16, 64)?;
        let owner = f.owner().clone();
        let _ = EmOwner::request_scan(owner.as_arc_borrow(), 1 << 20, true);
        drop(owner);
        // The registration goes while the run is queued or running.
        f.finish()
    }

    #[test]
    fn teardown_after_runs() -> Result {
        let f = Fixture::new(3, 3)?;
        f.shrink(4);
        f.shrink(4);
        kunit_ensure_eq!(f.owner().runs(), 2);
        f.finish()
    }
}
