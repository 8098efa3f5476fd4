// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `emfs_extent_map`.
//!
//! The first eight cases port btrfs's extent map self-tests
//! (fs/btrfs/tests/extent-map-tests.c), each with its scenario and timeline.
//! The others cover every operation and every error it returns, dropping
//! ranges (a table), merging (a matrix of what forbids a merge), the
//! accounting, allocation failure and concurrent use. Every case ends with
//! [`Fixture::finish`], which drops the tree and checks that no map leaked
//! and the owner's counters are back to zero. Checks return an error
//! ([`kunit_ensure!`]) rather than assert, so that a failing one never
//! leaves a tree lock held (a statement such as
//! `check(tree.read().nr_cached())` holds the read lock while it runs).
//!
//! [`kunit_ensure!`]: crate::glue::kunit::kunit_ensure

#[kernel::macros::kunit_tests(emfs_extent_map)]
mod cases {
    use crate::extent_map::*;
    use crate::glue::{
        alloc::{
            fault_injection_active,
            refusal,
            FailAllocs, //
        },
        kunit::{
            kunit_ensure,
            kunit_ensure_eq, //
        },
        workqueue::system_dfl, //
    };
    use kernel::{
        new_work,
        sizes::{
            SZ_16K,
            SZ_1K,
            SZ_32K,
            SZ_4K,
            SZ_64K,
            SZ_8K, //
        },
        sync::{
            atomic::{
                Atomic,
                Relaxed, //
            },
            Arc,
            Completion, //
        },
        workqueue::{
            impl_has_work,
            Work,
            WorkItem, //
        },
    };

    const K4: u64 = SZ_4K as u64;
    const K8: u64 = SZ_8K as u64;
    const K16: u64 = SZ_16K as u64;
    const K32: u64 = SZ_32K as u64;
    const K64: u64 = SZ_64K as u64;
    const K1: u64 = SZ_1K as u64;

    /// A tree with its own counters, and the live map count to return to.
    struct Fixture {
        tree: Pin<KBox<ExtentMapTree>>,
        counters: Arc<EmCounters>,
        live_at_start: i64,
    }

    impl Fixture {
        fn new() -> Result<Self> {
            let live_at_start = live_maps();
            let counters = EmCounters::new()?;
            let tree = KBox::pin_init(
                ExtentMapTree::new(257, SZ_4K as u32, counters.clone()),
                GFP_KERNEL,
            )?;
            Ok(Self {
                tree,
                counters,
                live_at_start,
            })
        }

        /// Adds a map the way btrfs's tests do: `btrfs_add_extent_mapping()`
        /// under the write lock, for the range `[start, start + len)`.
        fn add_em(&self, info: ExtentMapInfo, start: u64, len: u64) -> Result<ExtentMap> {
            let pm = PreparedMap::new(info)?;
            self.tree.write().add_extent_mapping(pm, start, len)
        }

        /// What adding `info` for its own range fails with; preparing it
        /// first, whose `ENOMEM` is this call's error.
        fn add_error(&self, info: ExtentMapInfo) -> Result<Option<Error>> {
            let pm = PreparedMap::new(info)?;
            let ret = self
                .tree
                .write()
                .add_extent_mapping(pm, info.start, info.len);
            Ok(ret.err())
        }

        /// Adds a map for its own range.
        fn add(&self, info: ExtentMapInfo) -> Result<ExtentMap> {
            self.add_em(info, info.start, info.len)
        }

        /// Adds a map with `add` (no -EEXIST handling).
        fn add_plain(&self, info: ExtentMapInfo, modified: bool) -> Result<ExtentMap> {
            let pm = if modified {
                PreparedMap::new_modified(info)?
            } else {
                PreparedMap::new(info)?
            };
            self.tree.add(pm, modified)
        }

        /// A snapshot of every map, in order. The room is reserved before the
        /// read lock is taken: nothing may sleep under it.
        fn snapshot(&self) -> Result<KVec<ExtentMapInfo>> {
            loop {
                let n = self.tree.read().nr_cached();
                let mut out = KVec::with_capacity(n, GFP_KERNEL)?;
                let inner = self.tree.read();
                if inner.nr_cached() > n {
                    continue;
                }
                for em in inner.iter() {
                    out.push_within_capacity(em.info()).map_err(|_| ENOMEM)?;
                }
                return Ok(out);
            }
        }

        /// The pinned maps.
        fn pinned(&self) -> Result<KVec<ExtentMap>> {
            let mut out = KVec::new();
            for info in self
                .snapshot()?
                .iter()
                .filter(|i| i.flags.contains(EmFlags::PINNED))
            {
                out.push(
                    self.tree.lookup(info.start, info.len).ok_or(ENOENT)?,
                    GFP_KERNEL,
                )?;
            }
            Ok(out)
        }

        /// Unpins every pinned map, so that the teardown can drop them.
        fn unpin_all(&self) -> Result {
            for em in self.pinned()?.iter() {
                self.tree.unpin(em.start(), em.len(), 0)?;
            }
            Ok(())
        }

        /// The `(start, len)` of every map, in order.
        fn ranges(&self) -> Result<KVec<(u64, u64)>> {
            let mut out = KVec::new();
            for info in self.snapshot()?.iter() {
                out.push((info.start, info.len), GFP_KERNEL)?;
            }
            Ok(out)
        }

        /// Checks the tree holds exactly `expected` (`validate_range()`).
        ///
        /// Under fault injection, `drop_range` drops a part whose split it
        /// could not allocate, by design: then only missing ranges are
        /// allowed, and the case ends as refused (`ENOMEM`). Anything else
        /// is a wrong result, logged as a failed check.
        #[track_caller]
        fn expect(&self, expected: &[(u64, u64)]) -> Result {
            let got = self.ranges()?;
            if got[..] == *expected {
                return Ok(());
            }
            if fault_injection_active() && got.iter().all(|r| expected.contains(r)) {
                return Err(ENOMEM);
            }
            let at = core::panic::Location::caller();
            pr_err!(
                "{}:{}: expected the tree to hold {:?}: it holds {:?}\n",
                at.file(),
                at.line(),
                expected,
                &got[..]
            );
            Err(EINVAL)
        }

        /// Recounts the tree and compares with its counts and the owner's
        /// counters; also checks that no two maps overlap.
        fn check_accounting(&self) -> Result {
            let inner = self.tree.read();
            let (mut cached, mut pinned, mut prev_end) = (0usize, 0usize, 0u64);
            for em in inner.iter() {
                if em.start() < prev_end {
                    pr_err!(
                        "map [{}, {}) overlaps the one before\n",
                        em.start(),
                        em.end()
                    );
                    return Err(EINVAL);
                }
                prev_end = em.end();
                cached += 1;
                pinned += usize::from(em.is_pinned());
            }
            let modified = inner.modified_maps().count();
            let ok = cached == inner.nr_cached()
                && pinned == inner.nr_pinned()
                && modified == inner.nr_modified()
                && self.counters.cached() == cached as i64
                && self.counters.pinned() == pinned as i64
                && self.counters.evictable() == (cached - pinned) as i64
                && self.counters.modified() == modified as i64;
            if !ok {
                pr_err!(
                    "recount cached={} pinned={} modified={}; tree {} {} {}; owner {} {} {} evictable {}\n",
                    cached,
                    pinned,
                    modified,
                    inner.nr_cached(),
                    inner.nr_pinned(),
                    inner.nr_modified(),
                    self.counters.cached(),
                    self.counters.pinned(),
                    self.counters.modified(),
                    self.counters.evictable()
                );
                return Err(EINVAL);
            }
            Ok(())
        }

        /// The teardown: checks the accounting, drops every map
        /// (`free_extent_map_tree()`), frees the tree and checks that no map
        /// leaked and the owner's counts are back to zero.
        fn finish(self) -> Result {
            self.check_accounting()?;
            self.tree.drop_all();
            let counters = self.counters.clone();
            let live_at_start = self.live_at_start;
            drop(self);
            let live = live_maps();
            if live != live_at_start || counters.cached() != 0 || counters.evictable() != 0 {
                pr_err!(
                    "leak: {} maps alive (expected {}), owner counts cached={} evictable={}\n",
                    live,
                    live_at_start,
                    counters.cached(),
                    counters.evictable()
                );
                return Err(EINVAL);
            }
            Ok(())
        }
    }

    fn regular(start: u64, len: u64, disk_bytenr: u64) -> ExtentMapInfo {
        ExtentMapInfo::regular(start, len, disk_bytenr)
    }

    fn compressed(start: u64, len: u64, disk_bytenr: u64) -> ExtentMapInfo {
        let mut info = ExtentMapInfo {
            start,
            len,
            disk_bytenr,
            disk_num_bytes: K4,
            ram_bytes: len,
            ..ExtentMapInfo::default()
        };
        info.set_compression(Compression::Zlib);
        info
    }

    fn pinned(mut info: ExtentMapInfo) -> ExtentMapInfo {
        info.flags = info.flags.with(EmFlags::PINNED);
        info
    }

    /// Test scenario (btrfs case 1):
    ///
    /// No extent map is loaded yet; there is a file extent [0, 16K) followed
    /// by [16K, 20K). Two direct reads enter get_extent concurrently: t1
    /// reads [8K, 16K), t2 reads [0, 8K).
    ///
    /// ```text
    ///     t1                            t2
    ///  get_extent()                   get_extent()
    ///    -> lookup_extent_mapping()     -> lookup_extent_mapping()
    ///    -> add_extent_mapping(0, 16K)
    ///    -> return em
    ///                                   -> add_extent_mapping(0, 16K)
    ///                                   -> #handle -EEXIST
    /// ```
    #[test]
    fn btrfs_case_1_eexist_returns_existing() -> Result {
        let f = Fixture::new()?;
        f.add(regular(0, K16, 0))?;
        // [16K, 20K), elsewhere on disk so that it does not merge.
        f.add(regular(K16, K4, K32))?;
        // Adding [0, 8K) for a read of [0, 8K) returns [0, 16K).
        let em = f.add_em(regular(0, K8, 0), 0, K8)?;
        kunit_ensure_eq!((em.start(), em.end()), (0, K16));
        kunit_ensure_eq!((em.disk_bytenr(), em.disk_num_bytes()), (0, K16));
        f.expect(&[(0, K16), (K16, K4)])?;
        f.finish()
    }

    /// Test scenario (btrfs case 2):
    ///
    /// Reading an inline extent ends up with -EEXIST: read an inline extent,
    /// discard the page cache and read it again.
    #[test]
    fn btrfs_case_2_inline_eexist() -> Result {
        let f = Fixture::new()?;
        let inline = ExtentMapInfo {
            start: 0,
            len: K4,
            disk_bytenr: EXTENT_MAP_INLINE,
            disk_num_bytes: 0,
            ram_bytes: K1,
            ..ExtentMapInfo::default()
        };
        f.add(inline)?;
        f.add(regular(K4, K4, K4))?;
        let em = f.add(inline)?;
        kunit_ensure_eq!(
            (em.start(), em.end(), em.disk_bytenr()),
            (0, K4, EXTENT_MAP_INLINE)
        );
        f.finish()
    }

    /// Test scenario (btrfs case 3):
    ///
    /// No extent map is loaded yet; there is a file extent [0, 16K). t1 does
    /// a buffered write to [4K, 8K) and t2 a direct read of [0, 4K), [8K,
    /// 12K) or [12K, 16K). t1 goes first and adds [4K, 8K) to the tree.
    ///
    /// ```text
    ///         t1                       t2
    ///  cow_file_range()          get_extent()
    ///                             -> lookup_extent_mapping()
    ///   -> add_extent_mapping()
    ///                             -> add_extent_mapping()
    /// ```
    #[test]
    fn btrfs_case_3_write_vs_direct_read() -> Result {
        for start in [0, K8, 12 * K1] {
            let f = Fixture::new()?;
            f.add(regular(K4, K4, K4))?;
            let em = f.add_em(regular(0, K16, 0), start, K4)?;
            // The bytes of em are contiguous, so block_start equals start.
            kunit_ensure!(start >= em.start() && start + K4 <= em.end());
            kunit_ensure_eq!(em.start(), em.block_start());
            f.finish()?;
        }
        Ok(())
    }

    /// Test scenario (btrfs case 4):
    ///
    /// No extent map is loaded yet; there is a file extent [0, 32K). t1 does
    /// a direct write to [8K, 32K) and t2 a direct read of [0, 4K) or [4K,
    /// 8K). t1 goes first and splits [0, 32K) into [0, 8K) and [8K, 32K).
    ///
    /// ```text
    ///         t1                                t2
    ///  get_blocks_direct()                get_blocks_direct()
    ///   -> get_extent()                    -> get_extent()
    ///       -> lookup_extent_mapping()
    ///       -> add_extent_mapping()            -> lookup_extent_mapping()
    ///          # load [0, 32K)
    ///   -> new_extent_direct()
    ///       -> drop_extent_cache()
    ///          # split [0, 32K)
    ///       -> add_extent_mapping()
    ///          # add [8K, 32K)
    ///                                          -> add_extent_mapping()
    ///                                             # handle -EEXIST when
    ///                                             # adding [0, 32K)
    /// ```
    #[test]
    fn btrfs_case_4_split_vs_direct_read() -> Result {
        for start in [0, K4] {
            let f = Fixture::new()?;
            f.add(regular(0, K8, 0))?;
            f.add(regular(K8, 24 * K1, K16))?;
            let em = f.add_em(regular(0, K32, 0), start, K4)?;
            kunit_ensure!(start >= em.start() && start + K4 <= em.end());
            f.finish()?;
        }
        Ok(())
    }

    /// Test scenario (btrfs case 5): the edge cases of drop_range. Create
    ///
    /// ```text
    /// [0, 12k)[12k, 24k)[24k, 36k)[36k, 40k)[40k, 64k)
    /// ```
    ///
    /// and drop [8k, 12k) (a single front split), [12k, 20k) (a single back
    /// split), [28k, 32k) (a double split) and [32k, 64k) (whole maps). The
    /// maps are compressed so that they do not merge.
    #[test]
    fn btrfs_case_5_drop_range_edges() -> Result {
        let f = Fixture::new()?;
        f.add(compressed(0, 3 * K4, 0))?;
        f.add(compressed(3 * K4, 3 * K4, K4))?;
        f.add(compressed(6 * K4, 3 * K4, K8))?;
        f.add(compressed(K32 + K4, K4, 3 * K4))?;
        f.add(compressed(10 * K4, 6 * K4, K16))?;

        f.tree.drop_range(K8, 3 * K4 - 1, false);
        f.expect(&[
            (0, K8),
            (3 * K4, 3 * K4),
            (6 * K4, 3 * K4),
            (K32 + K4, K4),
            (10 * K4, 6 * K4),
        ])?;

        f.tree.drop_range(3 * K4, K16 + K4 - 1, false);
        f.expect(&[
            (0, K8),
            (5 * K4, K4),
            (6 * K4, 3 * K4),
            (K32 + K4, K4),
            (10 * K4, 6 * K4),
        ])?;

        f.tree.drop_range(K32 - K4, K32 - 1, false);
        f.expect(&[
            (0, K8),
            (5 * K4, K4),
            (6 * K4, K4),
            (K32, K4),
            (K32 + K4, K4),
            (10 * K4, 6 * K4),
        ])?;

        f.tree.drop_range(K32, K64 - 1, false);
        f.expect(&[(0, K8), (5 * K4, K4), (6 * K4, K4)])?;
        f.finish()
    }

    /// Test scenario (btrfs case 6): add_extent_mapping must not create a
    /// map between two existing maps that sit side by side unmerged.
    #[test]
    fn btrfs_case_6_no_map_between_adjacent() -> Result {
        let f = Fixture::new()?;
        f.add(compressed(0, K4, 0))?;
        f.add(compressed(K4, K4, 0))?;
        let em = f.add_em(
            ExtentMapInfo {
                start: K4,
                len: K4,
                disk_bytenr: K16,
                disk_num_bytes: K16,
                ram_bytes: K16,
                ..ExtentMapInfo::default()
            },
            0,
            K8,
        )?;
        kunit_ensure_eq!((em.start(), em.len()), (0, K4));
        f.expect(&[(0, K4), (K4, K4)])?;
        f.finish()
    }

    /// Test scenario (btrfs case 7): a regression test for drop_range with
    /// skip_pinned, which once got its start and end wrong so that later
    /// splits were incorrect.
    #[test]
    fn btrfs_case_7_drop_range_skip_pinned() -> Result {
        let f = Fixture::new()?;
        // [0, 16K), pinned.
        f.add(pinned(ExtentMapInfo {
            start: 0,
            len: K16,
            disk_bytenr: 0,
            disk_num_bytes: K4,
            ram_bytes: K16,
            flags: EmFlags::COMPRESS_ZLIB,
            ..ExtentMapInfo::default()
        }))?;
        // [32K, 48K), not pinned.
        f.add(regular(K32, K16, K32))?;

        // Drop [0, 36K): skips [0, 16K), splits [32K, 48K).
        f.tree.drop_range(0, 36 * K1 - 1, true);

        let em = f.tree.lookup(0, K16).ok_or(ENOENT)?;
        kunit_ensure_eq!((em.start(), em.len()), (0, K16));
        kunit_ensure!(f.tree.lookup(K16, K16).is_none());
        let em = f.tree.lookup(K32, K16).ok_or(ENOENT)?;
        kunit_ensure_eq!((em.start(), em.len()), (36 * K1, 12 * K1));
        kunit_ensure_eq!(em.block_start(), K32 + K4);
        kunit_ensure!(f.tree.lookup(48 * K1, u64::MAX).is_none());

        // Unpin the extent so that it can be removed.
        f.tree.unpin(0, K16, 0)?;
        f.finish()
    }

    /// Test scenario (btrfs case 8): a regression test for compressed map
    /// adjustment when adding a map partially overlapped by an existing one:
    /// the offset was left unchanged although the start moved.
    ///
    /// The subvolume tree holds a compressed file extent for [108K, 144K),
    /// and the cache an overlapping compressed map for [120K, 128K) created
    /// by an encoded write whose ordered extent has not completed. A read of
    /// [140K, 144K) adds [108K, 144K), which must become [128K, 144K) with
    /// offset 20K.
    #[test]
    fn btrfs_case_8_compressed_offset_adjusted() -> Result {
        let f = Fixture::new()?;
        let mut first = compressed(120 * K1, K8, 0);
        first.ram_bytes = K8;
        f.add(first)?;
        let mut second = compressed(108 * K1, 36 * K1, 0);
        second.ram_bytes = 36 * K1;
        let em = f.add_em(second, 140 * K1, K4)?;
        kunit_ensure_eq!(
            (em.start(), em.len(), em.offset()),
            (128 * K1, K16, 20 * K1)
        );
        f.finish()
    }

    #[test]
    fn add_overlap_is_eexist() -> Result {
        let f = Fixture::new()?;
        f.add_plain(regular(K16, K16, 0), false)?;
        for (start, len) in [
            (K16, K4),
            (K8, K16),
            (K16 + K4, K4),
            (K32 - K4, K8),
            (0, K64),
        ] {
            let pm = PreparedMap::new(regular(start, len, K64))?;
            kunit_ensure_eq!(f.tree.add(pm, false).err(), Some(EEXIST));
        }
        // Adjacent on both sides is fine.
        f.add_plain(regular(K8, K8, K64), false)?;
        f.add_plain(regular(K32, K8, 2 * K64), false)?;
        f.expect(&[(K8, K8), (K16, K16), (K32, K8)])?;
        f.finish()
    }

    #[test]
    fn add_invalid_is_einval() -> Result {
        let f = Fixture::new()?;
        let bad = [
            regular(0, 0, 0),
            regular(K1, K4, 0),
            regular(0, K4 + K1, 0),
            ExtentMapInfo {
                ram_bytes: K8,
                ..regular(0, K4, 0)
            },
            ExtentMapInfo {
                disk_num_bytes: 0,
                ..regular(0, K4, 0)
            },
            ExtentMapInfo {
                offset: K4,
                ..ExtentMapInfo::hole(0, K4)
            },
            ExtentMapInfo {
                start: K4,
                disk_bytenr: EXTENT_MAP_INLINE,
                ..ExtentMapInfo::hole(K4, K4)
            },
            // Past the end of the address space, or of the disk.
            ExtentMapInfo::hole(K4, 0u64.wrapping_sub(K4)),
            ExtentMapInfo {
                disk_bytenr: 0u64.wrapping_sub(3 * K4),
                disk_num_bytes: 4 * K4,
                ram_bytes: 4 * K4,
                offset: 3 * K4,
                ..regular(0, K4, 0)
            },
        ];
        for info in bad {
            kunit_ensure_eq!(f.add_error(info)?, Some(EINVAL));
        }
        // Added as modified, but prepared without room in the set of
        // modified extents.
        let pm = PreparedMap::new(regular(0, K4, 0))?;
        kunit_ensure_eq!(f.tree.add(pm, true).err(), Some(EINVAL));
        f.expect(&[])?;
        f.finish()
    }

    #[test]
    fn add_fails_with_enomem() -> Result {
        let f = Fixture::new()?;
        f.add(regular(0, K4, 0))?;
        {
            let _fail = FailAllocs::arm(1, 1);
            kunit_ensure_eq!(PreparedMap::new(regular(K8, K4, K8)).err(), Some(ENOMEM));
        }
        // The tree is untouched and usable.
        f.add(regular(K8, K4, K8))?;
        f.expect(&[(0, K4), (K8, K4)])?;
        f.finish()
    }

    #[test]
    fn lookup_is_strict_search_is_not() -> Result {
        let f = Fixture::new()?;
        kunit_ensure!(f.tree.lookup(0, K4).is_none());
        kunit_ensure!(f.tree.search(0, K4).is_none());
        f.add(regular(K8, K8, 0))?;
        f.add(regular(K32, K8, K64))?;
        // Inside, and overlapping the start of, a map.
        kunit_ensure_eq!(f.tree.lookup(K8 + K4, K1).map(|e| e.start()), Some(K8));
        kunit_ensure_eq!(f.tree.lookup(K4, K8).map(|e| e.start()), Some(K8));
        // In the gap: lookup finds nothing, search the next map.
        kunit_ensure!(f.tree.lookup(K16, K8).is_none());
        kunit_ensure_eq!(f.tree.search(K16, K8).map(|e| e.start()), Some(K32));
        // Before the first map: the next one.
        kunit_ensure_eq!(f.tree.search(0, K4).map(|e| e.start()), Some(K8));
        // After the last map: the last one.
        kunit_ensure_eq!(f.tree.search(K64, K4).map(|e| e.start()), Some(K32));
        kunit_ensure!(f.tree.lookup(K64, K4).is_none());
        // A range to the end of the address space does not wrap.
        kunit_ensure_eq!(f.tree.lookup(K16, u64::MAX).map(|e| e.start()), Some(K32));
        f.finish()
    }

    #[test]
    fn lookup_keeps_the_map_after_unlock() -> Result {
        let f = Fixture::new()?;
        f.add(regular(0, K8, 0))?;
        let em = f.tree.lookup(0, K4).ok_or(ENOENT)?;
        // The map goes from the tree, the holder's copy stays intact.
        f.tree.drop_range(0, K8 - 1, false);
        kunit_ensure!(f.tree.lookup(0, K4).is_none());
        kunit_ensure_eq!((em.start(), em.len(), em.disk_bytenr()), (0, K8, 0));
        f.finish()
    }

    #[test]
    fn lookup_counts_hits() -> Result {
        let f = Fixture::new()?;
        f.add(regular(K8, K8, 0))?;
        let _ = f.tree.lookup(K8, K4);
        let _ = f.tree.lookup(0, K4);
        let _ = f.tree.lookup(K4, K8);
        kunit_ensure_eq!(f.counters.lookups(), 3);
        // Only the first covered its start; the others miss.
        kunit_ensure_eq!(f.counters.hits(), 1);
        kunit_ensure_eq!(f.counters.misses(), 2);
        f.finish()
    }

    #[test]
    fn next_and_prev() -> Result {
        let f = Fixture::new()?;
        let a = f.add(compressed(0, K4, 0))?;
        let b = f.add(compressed(K8, K4, K4))?;
        let c = f.add(compressed(K16, K4, K8))?;
        let inner = f.tree.read();
        kunit_ensure!(inner.prev(&a).is_none());
        kunit_ensure_eq!(inner.next(&a).map(|e| e.start()), Some(K8));
        kunit_ensure_eq!(inner.prev(&b).map(|e| e.start()), Some(0));
        kunit_ensure_eq!(inner.next(&b).map(|e| e.start()), Some(K16));
        kunit_ensure!(inner.next(&c).is_none());
        drop(inner);
        // A map no longer in the tree has no neighbours.
        f.tree.write().remove(&b)?;
        kunit_ensure!(f.tree.read().next(&b).is_none());
        kunit_ensure!(f.tree.read().prev(&b).is_none());
        f.finish()
    }

    #[test]
    fn remove_and_its_errors() -> Result {
        let f = Fixture::new()?;
        let em = f.add(regular(0, K4, 0))?;
        let pin = f.add(pinned(regular(K8, K4, K8)))?;
        kunit_ensure_eq!(f.tree.write().remove(&pin).err(), Some(EBUSY));
        f.tree.write().remove(&em)?;
        kunit_ensure_eq!(f.tree.write().remove(&em).err(), Some(ENOENT));
        f.expect(&[(K8, K4)])?;
        f.check_accounting()?;
        f.tree.unpin(K8, K4, 1)?;
        f.finish()
    }

    #[test]
    fn replace_and_its_errors() -> Result {
        let f = Fixture::new()?;
        let cur = f.add(compressed(0, K8, 0))?;
        let pm = PreparedMap::new_modified(regular(0, K8, K32))?;
        let new = f.tree.write().replace(&cur, pm, true)?;
        kunit_ensure_eq!(new.disk_bytenr(), K32);
        kunit_ensure!(f.tree.read().is_modified(&new));
        kunit_ensure!(!f.tree.read().contains(&cur));
        // `cur` is gone: ENOENT.
        let pm = PreparedMap::new(regular(0, K8, 0))?;
        let ret = f.tree.write().replace(&cur, pm, false);
        kunit_ensure_eq!(ret.err(), Some(ENOENT));
        // A pinned map cannot be replaced: EBUSY.
        let pin = f.add(pinned(regular(K16, K4, K64)))?;
        let pm = PreparedMap::new(regular(K16, K4, 0))?;
        let ret = f.tree.write().replace(&pin, pm, false);
        kunit_ensure_eq!(ret.err(), Some(EBUSY));
        // A replacement overlapping another map fails and leaves `new` in place.
        let pm = PreparedMap::new(regular(0, K32, 0))?;
        let ret = f.tree.write().replace(&new, pm, false);
        kunit_ensure_eq!(ret.err(), Some(EEXIST));
        kunit_ensure!(f.tree.read().contains(&new));
        kunit_ensure!(f.tree.read().is_modified(&new));
        f.check_accounting()?;
        f.tree.unpin(K16, K4, 1)?;
        f.finish()
    }

    #[test]
    fn add_modified_goes_on_the_list_unmerged() -> Result {
        let f = Fixture::new()?;
        let a = f.add_plain(regular(0, K4, 0), true)?;
        let b = f.add_plain(regular(K4, K4, K4), true)?;
        // Adjacent on disk, but listed maps do not merge.
        f.expect(&[(0, K4), (K4, K4)])?;
        kunit_ensure_eq!(f.tree.read().nr_modified(), 2);
        kunit_ensure!(f.tree.read().is_modified(&a) && f.tree.read().is_modified(&b));
        f.check_accounting()?;
        f.finish()
    }

    #[test]
    fn unpin_merges_and_sets_generation() -> Result {
        let f = Fixture::new()?;
        f.add(regular(0, K4, 0))?;
        f.add(pinned(regular(K4, K4, K4)))?;
        f.add(regular(K8, K4, K8))?;
        // Pinned maps do not merge.
        f.expect(&[(0, K4), (K4, K4), (K8, K4)])?;
        kunit_ensure_eq!(f.counters.evictable(), 2);
        f.tree.unpin(K4, K4, 7)?;
        f.expect(&[(0, 3 * K4)])?;
        let em = f.tree.lookup(0, K4).ok_or(ENOENT)?;
        kunit_ensure_eq!(em.generation(), 7);
        kunit_ensure!(em.flags().contains(EmFlags::MERGED));
        kunit_ensure!(!em.is_pinned());
        kunit_ensure_eq!(
            (em.disk_bytenr(), em.disk_num_bytes(), em.offset()),
            (0, 3 * K4, 0)
        );
        kunit_ensure_eq!(f.counters.evictable(), 1);
        f.finish()
    }

    #[test]
    fn unpin_merges_without_allocating() -> Result {
        let f = Fixture::new()?;
        f.add(regular(0, K4, 0))?;
        f.add(pinned(regular(K4, K4, K4)))?;
        {
            // The map's own node takes the merged range.
            let _fail = FailAllocs::arm(1, -1);
            f.tree.unpin(K4, K4, 3)?;
        }
        f.expect(&[(0, K8)])?;
        kunit_ensure_eq!(f.tree.read().nr_pinned(), 0);
        f.finish()
    }

    #[test]
    fn unpin_errors() -> Result {
        let f = Fixture::new()?;
        f.add(pinned(regular(K8, K8, 0)))?;
        // Nothing there: ENOENT.
        kunit_ensure_eq!(f.tree.unpin(K32, K4, 1).err(), Some(ENOENT));
        // A map there, but not starting at `start`: EUCLEAN.
        kunit_ensure_eq!(f.tree.unpin(K8 + K4, K4, 1).err(), Some(EUCLEAN));
        kunit_ensure_eq!(f.tree.read().nr_pinned(), 1);
        f.tree.unpin(K8, K8, 1)?;
        f.finish()
    }

    #[test]
    fn logging_then_clear_logging_merges() -> Result {
        let f = Fixture::new()?;
        f.add_plain(regular(0, K4, 0), true)?;
        f.add_plain(regular(K4, K4, K4), true)?;
        let mut logged = f.tree.take_modified();
        kunit_ensure_eq!(logged.len(), 2);
        kunit_ensure_eq!(f.tree.read().nr_modified(), 0);
        kunit_ensure_eq!(f.counters.modified(), 0);
        let mut ems = KVec::new();
        while let Some(em) = logged.pop_first() {
            kunit_ensure!(em.flags().contains(EmFlags::LOGGING));
            ems.push(em, GFP_KERNEL)?;
        }
        // While logging, still unmerged.
        f.expect(&[(0, K4), (K4, K4)])?;
        f.tree.clear_logging(&ems[0]);
        f.expect(&[(0, K4), (K4, K4)])?;
        f.tree.clear_logging(&ems[1]);
        f.expect(&[(0, K8)])?;
        drop((ems, logged));
        f.finish()
    }

    /// Punching the middle of a map that is being logged: both splits
    /// have yet to be logged, so both go on the set of modified extents, and
    /// the inode needs no full fsync (btrfs's `btrfs_drop_extent_map_range()`
    /// lists every split of a modified map).
    #[test]
    fn punching_a_logging_map_lists_both_splits() -> Result {
        let f = Fixture::new()?;
        f.add_plain(regular(0, K16, 0), true)?;
        let logging = f.tree.take_modified();
        kunit_ensure_eq!(logging.len(), 1);
        f.tree.drop_range(K4, K8 - 1, false);
        f.expect(&[(0, K4), (K8, K8)])?;
        let listed = f.tree.read().modified_maps().count();
        let full = f.tree.read().needs_full_sync();
        kunit_ensure_eq!((listed, full), (2, false));
        drop(logging);
        f.finish()
    }

    /// A map taken to be logged and then dropped from the tree: ending its
    /// logging changes nothing in the tree (btrfs's `btrfs_clear_em_logging()`
    /// clears the flag of the map it holds; here nothing but the tree holds a
    /// map, so the flag left the tree with it).
    #[test]
    fn clear_logging_of_a_dropped_map() -> Result {
        let f = Fixture::new()?;
        f.add_plain(regular(0, K4, 0), true)?;
        f.add(regular(K8, K4, K8))?;
        let mut logging = f.tree.take_modified();
        let em = logging.pop_first().ok_or(ENOENT)?;
        kunit_ensure!(em.is_logging());
        f.tree.drop_range(0, K4 - 1, false);
        f.tree.clear_logging(&em);
        let c = f.tree.read().check();
        kunit_ensure_eq!((c.cached, c.logging, c.problems), (1, 0, 0));
        f.expect(&[(K8, K4)])?;
        drop(logging);
        f.finish()
    }

    /// Maps taken to be logged and not logged (the logger gave up): dropping
    /// what `take_modified` returned ends their logging, so they can merge
    /// again.
    #[test]
    fn dropping_the_taken_maps_ends_their_logging() -> Result {
        let f = Fixture::new()?;
        f.add_plain(regular(0, K4, 0), true)?;
        f.add_plain(regular(K4, K4, K4), true)?;
        drop(f.tree.take_modified());
        let logging = f.tree.read().check().logging;
        kunit_ensure_eq!(logging, 0);
        f.expect(&[(0, K8)])?;
        f.finish()
    }

    /// More modified maps than btrfs logs one by one (32768): the fast
    /// fsync gives up and the inode is marked for a full one, the maps
    /// taken off the set without being marked as logging.
    #[test]
    fn too_many_modified_maps_mean_a_full_fsync() -> Result {
        let f = Fixture::new()?;
        let n = MAX_LOGGED_EXTENTS as u64 + 1;
        for i in 0..n {
            f.add_plain(regular(i * K8, K4, i * K8), true)?;
        }
        let logging = f.tree.take_modified();
        let (taken, full) = (logging.len(), logging.full_sync());
        drop(logging);
        let c = f.tree.read().check();
        kunit_ensure_eq!((taken, c.modified, c.logging, full), (0, 0, 0, true));
        f.finish()
    }

    #[test]
    fn huge_maps_merge_without_overflow() -> Result {
        let f = Fixture::new()?;
        // A hole to the last block of the address space, then its neighbour.
        f.add(ExtentMapInfo::hole(K4, 0u64.wrapping_sub(2 * K4)))?;
        let em = f.add(ExtentMapInfo::hole(0, K4))?;
        kunit_ensure_eq!((em.start(), em.len()), (0, 0u64.wrapping_sub(K4)));
        kunit_ensure_eq!(em.end(), 0u64.wrapping_sub(K4));
        f.finish()
    }

    #[test]
    fn delalloc_maps_merge_with_delalloc_only() -> Result {
        let f = Fixture::new()?;
        let delalloc = |start, len| ExtentMapInfo {
            disk_bytenr: EXTENT_MAP_DELALLOC,
            ..ExtentMapInfo::hole(start, len)
        };
        kunit_ensure!(!delalloc(0, K4).on_disk());
        f.add(delalloc(0, K4))?;
        f.add(delalloc(K4, K4))?;
        // A hole next to them is another sentinel: no merge.
        f.add(ExtentMapInfo::hole(K8, K4))?;
        f.expect(&[(0, K8), (K8, K4)])?;
        let em = f.tree.search(K4, 1).ok_or(ENOENT)?;
        kunit_ensure_eq!(em.disk_bytenr(), EXTENT_MAP_DELALLOC);
        f.finish()
    }

    #[test]
    fn clear_logging_ignores_another_trees_map() -> Result {
        let a = Fixture::new()?;
        let b = Fixture::new()?;
        a.add_plain(regular(0, K4, 0), true)?;
        b.add(regular(0, K4, 0))?;
        let mut logged = a.tree.take_modified();
        let em = logged.pop_first().ok_or(ENOENT)?;
        // Tree b holds a map like it, but not one it is logging.
        b.tree.clear_logging(&em);
        kunit_ensure_eq!(a.tree.read().check().logging, 1);
        kunit_ensure_eq!(b.tree.read().check().problems, 0);
        a.tree.clear_logging(&em);
        kunit_ensure_eq!(a.tree.read().check().logging, 0);
        a.check_accounting()?;
        drop(logged);
        // Each teardown checks the module's live maps: b's go first.
        b.tree.drop_all();
        a.finish()?;
        b.finish()
    }

    #[test]
    fn check_recounts_and_finds_a_wrong_count() -> Result {
        let f = Fixture::new()?;
        for i in 0..16 {
            let info = regular(i * K8, K4, i * K8);
            let info = if i % 4 == 0 { pinned(info) } else { info };
            f.add_plain(info, i % 2 == 0)?;
        }
        let c = f.tree.read().check();
        kunit_ensure_eq!((c.cached, c.pinned, c.modified, c.logging), (16, 4, 8, 0));
        kunit_ensure_eq!(c.problems, 0);
        // A count that drifted from the maps is found; so is a map marked
        // modified that is not on the list.
        f.tree.write().skew_pinned_count(1);
        kunit_ensure_eq!(f.tree.read().check().problems, 1);
        f.tree.write().skew_pinned_count(-1);
        // The map at 8K was not added as modified.
        f.tree.write().mark_listed(K8, true);
        kunit_ensure_eq!(f.tree.read().check().problems, 1);
        f.tree.write().mark_listed(K8, false);
        kunit_ensure_eq!(f.tree.read().check().problems, 0);
        f.unpin_all()?;
        f.finish()
    }

    #[test]
    fn drop_all_drops_pinned_and_logging() -> Result {
        let f = Fixture::new()?;
        for i in 0..64 {
            let info = regular(i * K8, K4, i * K8);
            let info = if i % 3 == 0 { pinned(info) } else { info };
            f.add_plain(info, i % 2 == 0)?;
        }
        let logged = f.tree.take_modified();
        kunit_ensure_eq!(f.tree.read().nr_cached(), 64);
        f.check_accounting()?;
        f.tree.drop_all();
        f.expect(&[])?;
        kunit_ensure_eq!(f.counters.cached(), 0);
        kunit_ensure_eq!(f.counters.pinned(), 0);
        drop(logged);
        f.finish()
    }

    /// One drop_range case: the maps to create, the range to drop, and what
    /// must be left.
    struct DropCase {
        name: &'static str,
        maps: &'static [(u64, u64, bool)],
        drop: (u64, u64),
        skip_pinned: bool,
        left: &'static [(u64, u64)],
    }

    const DROP_CASES: &[DropCase] = &[
        DropCase {
            name: "inside one map",
            maps: &[(0, K16, false)],
            drop: (K4, K8 - 1),
            skip_pinned: false,
            left: &[(0, K4), (K8, K8)],
        },
        DropCase {
            name: "overlapping the start of a map",
            maps: &[(K8, K8, false)],
            drop: (0, K8 + K4 - 1),
            skip_pinned: false,
            left: &[(K8 + K4, K4)],
        },
        DropCase {
            name: "overlapping the end of a map",
            maps: &[(0, K8, false)],
            drop: (K4, K16 - 1),
            skip_pinned: false,
            left: &[(0, K4)],
        },
        DropCase {
            name: "both ends, across several maps",
            maps: &[(0, K8, false), (K8, K8, false), (K16, K8, false)],
            drop: (K4, K16 + K4 - 1),
            skip_pinned: false,
            left: &[(0, K4), (K16 + K4, K4)],
        },
        DropCase {
            name: "exactly one whole map",
            maps: &[(0, K4, false), (K4, K4, false), (K8, K4, false)],
            drop: (K4, K8 - 1),
            skip_pinned: false,
            left: &[(0, K4), (K8, K4)],
        },
        DropCase {
            name: "to the end of the file",
            maps: &[(0, K8, false), (K8, K8, false)],
            drop: (K4, u64::MAX),
            skip_pinned: false,
            left: &[(0, K4)],
        },
        DropCase {
            name: "a hole between maps",
            maps: &[(0, K4, false), (K16, K4, false)],
            drop: (K4, K16 - 1),
            skip_pinned: false,
            left: &[(0, K4), (K16, K4)],
        },
        DropCase {
            name: "pinned maps skipped",
            maps: &[(0, K8, true), (K8, K8, false), (K16, K8, true)],
            drop: (K4, K16 + K4 - 1),
            skip_pinned: true,
            left: &[(0, K8), (K16, K8)],
        },
        DropCase {
            name: "pinned maps not skipped",
            maps: &[(0, K8, true), (K8, K8, false), (K16, K8, true)],
            drop: (K4, K16 + K4 - 1),
            skip_pinned: false,
            left: &[(0, K4), (K16 + K4, K4)],
        },
    ];

    #[test]
    fn drop_range_table() -> Result {
        for case in DROP_CASES {
            let f = Fixture::new()?;
            for (i, &(start, len, pin)) in case.maps.iter().enumerate() {
                // Compressed so that neighbours do not merge; far apart on
                // disk.
                let info = compressed(start, len, (i as u64) * K64);
                f.add(if pin { pinned(info) } else { info })?;
            }
            f.tree
                .drop_range(case.drop.0, case.drop.1, case.skip_pinned);
            if f.expect(case.left).is_err() {
                pr_err!("drop_range case '{}' failed\n", case.name);
                return Err(EINVAL);
            }
            f.check_accounting()?;
            f.unpin_all()?;
            f.finish()?;
        }
        Ok(())
    }

    #[test]
    fn drop_range_split_fields() -> Result {
        let f = Fixture::new()?;
        // A regular map [0, 16K) at disk 64K with offset 4K into a 32K
        // extent, and a hole [16K, 32K).
        f.add_plain(
            ExtentMapInfo {
                start: 0,
                len: K16,
                disk_bytenr: K64,
                disk_num_bytes: K32,
                offset: K4,
                ram_bytes: K32,
                generation: 5,
                ..ExtentMapInfo::default()
            },
            true,
        )?;
        f.add(ExtentMapInfo::hole(K16, K16))?;
        f.tree.drop_range(K4, K8 - 1, false);
        f.tree.drop_range(K16 + K4, K16 + K8 - 1, false);
        let maps = f.snapshot()?;
        let (nr_modified, full_sync) = {
            let inner = f.tree.read();
            (inner.nr_modified(), inner.needs_full_sync())
        };
        // Splitting is best effort: without memory for a split, the part
        // that needed it is dropped too. What is left must still be right,
        // and a lost part of the modified map must mark a full fsync.
        if maps.len() != 4 && fault_injection_active() {
            kunit_ensure_eq!(f.tree.read().check().problems, 0);
            let mut regular = 0;
            for m in maps.iter() {
                if m.disk_bytenr == EXTENT_MAP_HOLE {
                    kunit_ensure!(m.start >= K16);
                } else {
                    kunit_ensure_eq!((m.block_start(), m.generation), (m.start + K64 + K4, 5));
                    regular += 1;
                }
            }
            kunit_ensure!(regular == 2 || full_sync);
            return Err(ENOMEM);
        }
        kunit_ensure_eq!(maps.len(), 4);
        // Front split keeps the offset; back split moves it by the cut.
        kunit_ensure_eq!((maps[0].start, maps[0].len, maps[0].offset), (0, K4, K4));
        kunit_ensure_eq!(
            (maps[1].start, maps[1].len, maps[1].offset),
            (K8, K8, K4 + K8)
        );
        for m in &maps[..2] {
            kunit_ensure_eq!(
                (m.disk_bytenr, m.disk_num_bytes, m.ram_bytes, m.generation),
                (K64, K32, K32, 5)
            );
        }
        // Both halves stay on the list of modified extents.
        kunit_ensure_eq!(nr_modified, 2);
        // Hole splits have no disk bytes and ram_bytes equal to their length.
        kunit_ensure_eq!(
            (maps[2].start, maps[2].len, maps[2].disk_bytenr),
            (K16, K4, EXTENT_MAP_HOLE)
        );
        kunit_ensure_eq!(
            (maps[3].start, maps[3].len, maps[3].ram_bytes),
            (K16 + K8, K8, K8)
        );
        kunit_ensure!(!full_sync);
        drop(maps);
        f.finish()
    }

    #[test]
    fn drop_range_without_splits_marks_full_sync() -> Result {
        let f = Fixture::new()?;
        f.add_plain(regular(0, K16, 0), true)?;
        f.add(compressed(K32, K16, K64))?;
        {
            // Neither split can be allocated.
            let _fail = FailAllocs::arm(1, 2);
            f.tree.drop_range(K4, K8 - 1, false);
        }
        // The modified map went whole, and fsync must not trust the list.
        f.expect(&[(K32, K16)])?;
        kunit_ensure!(f.tree.read().needs_full_sync());
        kunit_ensure!(f.tree.write().clear_full_sync());
        // An unmodified map going whole needs no full sync.
        {
            let _fail = FailAllocs::arm(1, 2);
            f.tree.drop_range(K32 + K4, K32 + K8 - 1, false);
        }
        f.expect(&[])?;
        kunit_ensure!(!f.tree.read().needs_full_sync());
        f.finish()
    }

    #[test]
    fn drop_range_one_split_missing_marks_full_sync() -> Result {
        let f = Fixture::new()?;
        f.add_plain(regular(0, K16, 0), true)?;
        {
            // Only one of the two splits can be allocated: the front split
            // is made, the back part is lost.
            let _fail = FailAllocs::arm(1, 1);
            f.tree.drop_range(K4, K8 - 1, false);
        }
        f.expect(&[(0, K4)])?;
        kunit_ensure!(f.tree.read().needs_full_sync());
        f.finish()
    }

    #[test]
    fn drop_range_bad_range_is_ignored() -> Result {
        let f = Fixture::new()?;
        f.add(regular(0, K16, 0))?;
        f.tree.drop_range(K8, K4, false);
        f.expect(&[(0, K16)])?;
        f.finish()
    }

    #[test]
    fn replace_range_over_several_maps() -> Result {
        let f = Fixture::new()?;
        f.add(compressed(0, K8, 0))?;
        f.add(compressed(K8, K8, K4))?;
        f.add(compressed(K16, K8, K8))?;
        let em = f
            .tree
            .replace_range(PreparedMap::new_modified(regular(K4, K16, K64))?, true)?;
        kunit_ensure_eq!((em.start(), em.len(), em.disk_bytenr()), (K4, K16, K64));
        f.expect(&[(0, K4), (K4, K16), (K16 + K4, K4)])?;
        kunit_ensure!(f.tree.read().is_modified(&em));
        f.finish()
    }

    #[test]
    fn split_pinned_map() -> Result {
        let f = Fixture::new()?;
        f.add_plain(pinned(regular(K16, K16, K64)), true)?;
        f.tree.split(K16, K16, K4, K32)?;
        let maps = f.snapshot()?;
        let inner = f.tree.read();
        kunit_ensure_eq!(maps.len(), 2);
        kunit_ensure_eq!(
            (
                maps[0].start,
                maps[0].len,
                maps[0].disk_bytenr,
                maps[0].disk_num_bytes
            ),
            (K16, K4, K32, K4)
        );
        kunit_ensure_eq!(
            (
                maps[1].start,
                maps[1].len,
                maps[1].disk_bytenr,
                maps[1].disk_num_bytes
            ),
            (K16 + K4, K16 - K4, K64 + K4, K16 - K4)
        );
        kunit_ensure!(maps
            .iter()
            .all(|m| m.flags.contains(EmFlags::PINNED) && m.offset == 0));
        kunit_ensure_eq!(inner.nr_modified(), 2);
        kunit_ensure_eq!(inner.nr_pinned(), 2);
        drop(inner);
        drop(maps);
        f.tree.unpin(K16, K4, 1)?;
        f.tree.unpin(K16 + K4, K16 - K4, 1)?;
        f.finish()
    }

    #[test]
    fn split_errors() -> Result {
        let f = Fixture::new()?;
        // No map: EIO.
        kunit_ensure_eq!(refusal(f.tree.split(0, K16, K4, K32))?, Some(EIO));
        // Not pinned: EINVAL; pre outside the map: EINVAL.
        f.add_plain(regular(0, K16, K64), true)?;
        kunit_ensure_eq!(refusal(f.tree.split(0, K16, K4, K32))?, Some(EINVAL));
        f.add_plain(pinned(regular(K32, K16, 2 * K64)), true)?;
        kunit_ensure_eq!(refusal(f.tree.split(K32, K16, 0, K32))?, Some(EINVAL));
        kunit_ensure_eq!(refusal(f.tree.split(K32, K16, K16, K32))?, Some(EINVAL));
        // Allocation failure: ENOMEM, tree untouched.
        {
            let _fail = FailAllocs::arm(1, 1);
            kunit_ensure_eq!(f.tree.split(K32, K16, K4, K64).err(), Some(ENOMEM));
        }
        f.expect(&[(0, K16), (K32, K16)])?;
        kunit_ensure_eq!(f.tree.read().nr_pinned(), 1);
        f.tree.unpin(K32, K16, 1)?;
        f.finish()
    }

    /// One row of the merge matrix: two adjacent maps and whether they merge.
    struct MergeCase {
        name: &'static str,
        prev: ExtentMapInfo,
        next: ExtentMapInfo,
        /// Add `prev` on the list of modified extents.
        prev_modified: bool,
        merges: bool,
    }

    fn merge_cases() -> [MergeCase; 12] {
        let a = regular(0, K4, K64);
        let b = regular(K4, K4, K64 + K4);
        [
            MergeCase {
                name: "adjacent in file and on disk",
                prev: a,
                next: b,
                prev_modified: false,
                merges: true,
            },
            MergeCase {
                name: "not adjacent on disk",
                prev: a,
                next: regular(K4, K4, K64 + K8),
                prev_modified: false,
                merges: false,
            },
            MergeCase {
                name: "not adjacent in file",
                prev: a,
                next: regular(K8, K4, K64 + K4),
                prev_modified: false,
                merges: false,
            },
            MergeCase {
                name: "prev pinned",
                prev: pinned(a),
                next: b,
                prev_modified: false,
                merges: false,
            },
            MergeCase {
                name: "prev compressed",
                prev: compressed(0, K4, K64),
                next: b,
                prev_modified: false,
                merges: false,
            },
            MergeCase {
                name: "prev on the modified list",
                prev: a,
                next: b,
                prev_modified: true,
                merges: false,
            },
            MergeCase {
                name: "flags differ (prealloc)",
                prev: ExtentMapInfo {
                    flags: EmFlags::PREALLOC,
                    ..a
                },
                next: b,
                prev_modified: false,
                merges: false,
            },
            MergeCase {
                name: "both prealloc",
                prev: ExtentMapInfo {
                    flags: EmFlags::PREALLOC,
                    ..a
                },
                next: ExtentMapInfo {
                    flags: EmFlags::PREALLOC,
                    ..b
                },
                prev_modified: false,
                merges: true,
            },
            MergeCase {
                name: "MERGED is not compared",
                prev: ExtentMapInfo {
                    flags: EmFlags::MERGED,
                    ..a
                },
                next: b,
                prev_modified: false,
                merges: true,
            },
            MergeCase {
                name: "two holes",
                prev: ExtentMapInfo::hole(0, K4),
                next: ExtentMapInfo::hole(K4, K4),
                prev_modified: false,
                merges: true,
            },
            MergeCase {
                name: "hole then data",
                prev: ExtentMapInfo::hole(0, K4),
                next: b,
                prev_modified: false,
                merges: false,
            },
            MergeCase {
                name: "same data extent, consecutive offsets",
                prev: ExtentMapInfo {
                    disk_num_bytes: K16,
                    ram_bytes: K16,
                    ..a
                },
                next: ExtentMapInfo {
                    disk_bytenr: K64,
                    disk_num_bytes: K16,
                    ram_bytes: K16,
                    offset: K4,
                    ..b
                },
                prev_modified: false,
                merges: true,
            },
        ]
    }

    #[test]
    fn merge_matrix() -> Result {
        for case in merge_cases() {
            let f = Fixture::new()?;
            f.add_plain(case.prev, case.prev_modified)?;
            f.add_plain(case.next, false)?;
            let n = f.tree.read().nr_cached();
            if n != if case.merges { 1 } else { 2 } {
                pr_err!("merge case '{}': {} maps left\n", case.name, n);
                return Err(EINVAL);
            }
            f.check_accounting()?;
            f.unpin_all()?;
            f.finish()?;
        }
        Ok(())
    }

    #[test]
    fn merge_logging_map_waits() -> Result {
        let f = Fixture::new()?;
        f.add_plain(regular(0, K4, 0), true)?;
        let logged = f.tree.take_modified();
        // The map is LOGGING and on the logger's list: no merge.
        f.add(regular(K4, K4, K4))?;
        f.expect(&[(0, K4), (K4, K4)])?;
        drop(logged);
        f.finish()
    }

    #[test]
    fn merge_ondisk_arithmetic() -> Result {
        // Same data extent: [0, 4K) at offset 4K and [4K, 8K) at offset 8K of
        // the 16K extent at 64K become [0, 8K) at offset 4K of that extent.
        let f = Fixture::new()?;
        let extent = |start, offset| ExtentMapInfo {
            start,
            len: K4,
            disk_bytenr: K64,
            disk_num_bytes: K16,
            offset,
            ram_bytes: K16,
            ..ExtentMapInfo::default()
        };
        f.add(extent(0, K4))?;
        let em = f.add(extent(K4, K8))?;
        kunit_ensure_eq!((em.start(), em.len()), (0, K8));
        kunit_ensure_eq!(
            (
                em.disk_bytenr(),
                em.disk_num_bytes(),
                em.offset(),
                em.ram_bytes()
            ),
            (K64, K16, K4, K16)
        );
        f.finish()?;

        // Different, adjacent data extents: [64K, 68K) and [68K, 76K) become
        // one 12K extent; the second map's data starts 4K into it.
        let f = Fixture::new()?;
        f.add(regular(0, K4, K64))?;
        let em = f.add(ExtentMapInfo {
            start: K4,
            len: K4,
            disk_bytenr: K64 + K4,
            disk_num_bytes: K8,
            offset: 0,
            ram_bytes: K8,
            ..ExtentMapInfo::default()
        })?;
        kunit_ensure_eq!((em.start(), em.len()), (0, K8));
        kunit_ensure_eq!(
            (
                em.disk_bytenr(),
                em.disk_num_bytes(),
                em.offset(),
                em.ram_bytes()
            ),
            (K64, 3 * K4, 0, 3 * K4)
        );
        f.finish()
    }

    /// A map split by a punch, then the hole filled with the same blocks:
    /// the three merge back into the map that was split, every field as it
    /// was, and the generation the highest of the three.
    #[test]
    fn split_then_merge_back() -> Result {
        let f = Fixture::new()?;
        let whole = ExtentMapInfo {
            generation: 5,
            ..regular(0, K16, K64)
        };
        f.add(whole)?;
        for generation in [9, 2] {
            f.tree.drop_range(K4, K8 - 1, false);
            f.expect(&[(0, K4), (K8, K8)])?;
            let back = f.tree.lookup(K8, K4).ok_or(ENOENT)?;
            kunit_ensure_eq!(
                (back.disk_bytenr(), back.disk_num_bytes(), back.offset()),
                (K64, K16, K8)
            );
            let middle = ExtentMapInfo {
                generation,
                ..regular(K4, K4, K64 + K4)
            };
            let em = f.add(middle)?;
            kunit_ensure_eq!(
                em.info(),
                ExtentMapInfo {
                    generation: 9,
                    flags: EmFlags::MERGED,
                    ..whole
                }
            );
        }
        f.expect(&[(0, K16)])?;
        f.finish()
    }

    #[test]
    fn merge_with_both_neighbours_on_insert() -> Result {
        let f = Fixture::new()?;
        f.add(regular(0, K4, 0))?;
        f.add(regular(K8, K4, K8))?;
        let em = f.add(regular(K4, K4, K4))?;
        kunit_ensure_eq!((em.start(), em.len(), em.generation()), (0, 3 * K4, 0));
        f.expect(&[(0, 3 * K4)])?;
        kunit_ensure_eq!(f.counters.merges(), 2);
        f.finish()
    }

    #[test]
    fn counters_follow_every_operation() -> Result {
        let f = Fixture::new()?;
        for i in 0..32u64 {
            let info = compressed(i * K8, K8, i * K64);
            let info = if i % 4 == 0 { pinned(info) } else { info };
            f.add_plain(info, i % 3 == 0)?;
            f.check_accounting()?;
        }
        f.tree.drop_range(K4, 5 * K8 - 1, true);
        f.check_accounting()?;
        f.tree.drop_range(10 * K8 + K4, 20 * K8 - 1, false);
        f.check_accounting()?;
        let logged = f.tree.take_modified();
        f.check_accounting()?;
        drop(logged);
        let pins = f.pinned()?;
        for em in pins.iter() {
            f.tree.unpin(em.start(), em.len(), 2)?;
            f.check_accounting()?;
        }
        drop(pins);
        kunit_ensure_eq!(f.counters.evictable(), f.counters.cached());
        f.finish()
    }

    /// The writer of the concurrency test: does to its tree what writes,
    /// write back, fsync and punching do, on maps that merge, while readers
    /// look them up. Every map it makes maps file offset `x` to disk byte
    /// `x + DISK_SHIFT`, and merges and splits keep that so: a reader can
    /// check every map it gets.
    #[pin_data]
    struct Writer {
        tree: Pin<KBox<ExtentMapTree>>,
        #[pin]
        done: Completion,
        #[pin]
        work: Work<Writer>,
    }

    impl_has_work! {
        impl HasWork<Self> for Writer { self.work }
    }

    const ROUNDS: u64 = 2000;
    const DISK_SHIFT: u64 = 1 << 30;

    impl WorkItem for Writer {
        type Pointer = Arc<Writer>;

        fn run(this: Arc<Writer>) {
            let tree = &this.tree;
            for round in 0..ROUNDS {
                let start = (round * 7 % 64) * K16;
                // A write: a pinned, modified map in place of what was
                // cached, unpinned once "on disk" (it merges once it is
                // logged too).
                let info = pinned(regular(start, K16, start + DISK_SHIFT));
                if let Ok(pm) = PreparedMap::new_modified(info) {
                    if tree.replace_range(pm, true).is_ok() {
                        let _ = tree.unpin(start, K16, round);
                    }
                }
                // A read's map of the next range: merges at once.
                let next = start + K16;
                if let Ok(pm) = PreparedMap::new(regular(next, K16, next + DISK_SHIFT)) {
                    let _ = tree.add(pm, false);
                }
                if round % 5 == 0 {
                    // fsync: log, then end the logging; the maps merge.
                    let mut logged = tree.take_modified();
                    while let Some(em) = logged.pop_first() {
                        tree.clear_logging(&em);
                    }
                }
                if round % 3 == 0 {
                    // A punch: the maps around it are split.
                    tree.drop_range(start + K4, start + K8 - 1, false);
                }
            }
            this.done.complete_all();
        }
    }

    /// A reader of the writer's tree.
    #[pin_data]
    struct Reader {
        writer: Arc<Writer>,
        /// Maps returned that did not intersect the range looked up.
        errors: Atomic<u64>,
        #[pin]
        done: Completion,
        #[pin]
        work: Work<Reader>,
    }

    impl_has_work! {
        impl HasWork<Self> for Reader { self.work }
    }

    impl WorkItem for Reader {
        type Pointer = Arc<Reader>;

        fn run(this: Arc<Reader>) {
            for round in 0..ROUNDS * 2 {
                let offset = (round % 72) * K16 + K4 + K1;
                // Whatever the writer does, a map returned for a range
                // intersects it, is valid, and maps its bytes where the
                // writer put them: a copy is never torn by a merge.
                if let Some(em) = this.writer.tree.lookup(offset, K1) {
                    let info = em.info();
                    if em.end() <= offset || em.start() >= offset + K1 {
                        this.errors.add(1, Relaxed);
                    }
                    if info.validate(K4).is_err() || em.block_start() != em.start() + DISK_SHIFT {
                        this.errors.add(1, Relaxed);
                    }
                }
                if let Some(em) = this.writer.tree.search(offset, K1) {
                    if em.len() == 0 || em.block_start() != em.start() + DISK_SHIFT {
                        this.errors.add(1, Relaxed);
                    }
                }
            }
            this.done.complete_all();
        }
    }

    /// Readers and a writer on one tree, from workqueue items.
    #[test]
    fn readers_and_writer_concurrently() -> Result {
        let live_at_start = live_maps();
        let counters = EmCounters::new()?;
        let tree = KBox::pin_init(
            ExtentMapTree::new(258, SZ_4K as u32, counters.clone()),
            GFP_KERNEL,
        )?;
        let writer = Arc::pin_init(
            try_pin_init!(Writer {
                tree,
                done <- Completion::new(),
                work <- new_work!("emfs_extent_map_test::writer"),
            }? Error),
            GFP_KERNEL,
        )?;
        let mut readers = KVec::new();
        for _ in 0..2 {
            let writer = writer.clone();
            let reader = Arc::pin_init(
                pin_init!(Reader {
                    writer,
                    errors: Atomic::new(0),
                    done <- Completion::new(),
                    work <- new_work!("emfs_extent_map_test::reader"),
                }),
                GFP_KERNEL,
            )?;
            readers.push(reader, GFP_KERNEL)?;
        }
        let _ = system_dfl().enqueue(writer.clone());
        for reader in readers.iter() {
            let _ = system_dfl().enqueue(reader.clone());
        }
        writer.done.wait_for_completion();
        for reader in readers.iter() {
            reader.done.wait_for_completion();
            kunit_ensure_eq!(reader.errors.load(Relaxed), 0);
        }
        drop(readers);

        // The tree is consistent and its counts match a recount.
        {
            let inner = writer.tree.read();
            let mut prev_end = 0;
            let mut cached = 0;
            for em in inner.iter() {
                kunit_ensure!(em.start() >= prev_end);
                prev_end = em.end();
                cached += 1;
            }
            kunit_ensure_eq!(cached, inner.nr_cached());
            kunit_ensure_eq!(counters.cached(), cached as i64);
            kunit_ensure_eq!(inner.check().problems, 0);
        }
        // The merges happened while the readers read.
        kunit_ensure!(counters.merges() > 0);
        writer.tree.drop_all();
        drop(writer);
        kunit_ensure_eq!(live_maps(), live_at_start);
        kunit_ensure_eq!(counters.cached(), 0);
        Ok(())
    }
}
