// SPDX-License-Identifier: GPL-2.0

//! emfs_sample: a walk-through of the extent map tree.
//!
//! Load it and read the kernel log:
//!
//! ```text
//! insmod out/dev/samples/emfs_sample.ko && dmesg | grep emfs_sample
//! ```
//!
//! Its init builds one extent map tree (the cache of one inode, as btrfs
//! keeps in `btrfs_inode::extent_tree`), walks through the operations a
//! filesystem uses (insert, merge, lookup, a read racing a cached map, a
//! write's pinned map, its unpin and its fsync, dropping a range and dropping
//! everything) and prints the tree after each step. Every step is what
//! `fs/btrfs/extent_map.c` does at the same point; the comments say which
//! function. Nothing is left behind: the module only prints.
//!
//! Rust-for-Linux has no way yet for one module to use another module's Rust
//! items, so this module compiles the extent map tree (`rust/extent_map.rs`)
//! and the three pieces of the abstraction layer it stands on (the
//! reader-writer lock, the allocation scope and the tracepoints) in, as a
//! library; `samples/sample_helpers.c` builds their C side. The tree's
//! tracepoints are this module's own, under `events/emfs_sample/`, so the
//! sample can be loaded next to emfs.

use kernel::prelude::*;

// The library: the tree and what it needs from the abstraction layer. The
// sample uses a part of it; the rest is not dead, it is emfs's.
#[allow(dead_code)]
#[path = "../rust/glue/alloc.rs"]
mod glue_alloc;
#[path = "../rust/glue/ffi.rs"]
mod glue_ffi;
#[cfg(CONFIG_KUNIT = "y")]
#[allow(unused_imports, unused_macros)]
#[path = "../rust/glue/kunit.rs"]
mod glue_kunit;
#[allow(dead_code)]
#[path = "../rust/glue/percpu.rs"]
mod glue_percpu;
#[allow(dead_code)]
#[path = "../rust/glue/rwlock.rs"]
mod glue_rwlock;
#[allow(dead_code)]
#[path = "../rust/glue/sched.rs"]
mod glue_sched;
#[allow(dead_code)]
#[path = "../rust/glue/trace.rs"]
mod glue_trace;

/// The paths the tree's sources use (`crate::glue::...`).
mod glue {
    #[cfg(CONFIG_KUNIT = "y")]
    pub(crate) use super::glue_kunit as kunit;
    pub(crate) use super::{
        glue_alloc as alloc,
        glue_ffi as ffi,
        glue_percpu as percpu,
        glue_rwlock as rwlock,
        glue_sched as sched,
        glue_trace as trace, //
    };
}

#[allow(dead_code)]
#[path = "../rust/extent_map.rs"]
mod extent_map;

use extent_map::{
    EmCounters,
    EmFlags,
    ExtentMap,
    ExtentMapInfo,
    ExtentMapTree,
    PreparedMap, //
};

module! {
    type: Sample,
    name: "emfs_sample",
    authors: ["emfs developers"],
    description: "A walk-through of the emfs extent map tree",
    license: "GPL",
}

struct Sample;

/// The inode the tree caches maps for; any number will do.
const INO: u64 = 257;
/// Block size: maps are aligned to it.
const BLOCK: u64 = 4096;
/// Where the sample pretends its data lives on disk.
const DISK: u64 = 1 << 20;

/// One line per cached map, in file order, with the tree's counts.
fn show(tree: &ExtentMapTree, counters: &EmCounters, what: &str) {
    let inner = tree.read();
    pr_info!(
        "{}: {} maps cached, {} pinned, {} evictable\n",
        what,
        inner.nr_cached(),
        inner.nr_pinned(),
        counters.evictable()
    );
    for em in inner.iter() {
        pr_info!("    {}\n", Show(&em));
    }
}

/// Formats a map as `[start, end) disk D` (or `hole`), with its flags.
struct Show<'a>(&'a ExtentMap);

impl kernel::fmt::Display for Show<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let em = self.0;
        write!(f, "[{}K, {}K) ", em.start() / 1024, em.end() / 1024)?;
        if em.disk_bytenr() == extent_map::EXTENT_MAP_HOLE {
            write!(f, "hole")?;
        } else {
            write!(f, "disk {}K", em.block_start() / 1024)?;
        }
        if em.is_pinned() {
            write!(f, " pinned")?;
        }
        if em.flags().contains(EmFlags::MERGED) {
            write!(f, " merged")?;
        }
        if em.generation() != 0 {
            write!(f, " gen {}", em.generation())?;
        }
        Ok(())
    }
}

/// What a lookup found, for the log.
struct Found<'a>(&'a Option<ExtentMap>);

impl kernel::fmt::Display for Found<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(em) => kernel::fmt::Display::fmt(&Show(em), f),
            None => write!(f, "nothing (a miss: the caller loads the map)"),
        }
    }
}

/// A regular extent: `len` KiB of the file at `start` KiB, stored at
/// `disk` KiB past [`DISK`].
fn regular(start: u64, len: u64, disk: u64) -> ExtentMapInfo {
    ExtentMapInfo::regular(start * 1024, len * 1024, DISK + disk * 1024)
}

fn walk_through() -> Result {
    // 1. A tree. Its maps are counted in `counters`, which in emfs belong to
    //    the mounted filesystem and feed its shrinker; here they are the
    //    sample's own. `btrfs_extent_map_tree_init()`.
    let counters = EmCounters::new()?;
    let tree = KBox::pin_init(
        ExtentMapTree::new(INO, BLOCK as u32, counters.clone()),
        GFP_KERNEL,
    )?;
    show(&tree, &counters, "1. a new tree");

    // 2. Insert two extents that follow each other in the file and on disk.
    //    Every allocation happens before the tree's lock is taken: a
    //    `PreparedMap` holds the memory for the map and its tree node, and
    //    `add` (under the write lock) cannot fail for lack of memory. The
    //    second insert merges with the first (`try_merge_map()`): one map
    //    covers both. `add_extent_mapping()`.
    tree.add(PreparedMap::new(regular(0, 16, 0))?, false)?;
    tree.add(PreparedMap::new(regular(16, 16, 16))?, false)?;
    show(
        &tree,
        &counters,
        "2. two adjacent extents, merged on insert",
    );

    // 3. Extents that cannot merge: a hole after the data, and data that is
    //    not next to the rest on disk. Merging needs the same kind of extent,
    //    contiguous in the file and on disk (`mergeable_maps()`).
    tree.add(
        PreparedMap::new(ExtentMapInfo::hole(32 * 1024, 32 * 1024))?,
        false,
    )?;
    tree.add(PreparedMap::new(regular(64, 16, 1024))?, false)?;
    show(
        &tree,
        &counters,
        "3. a hole and a distant extent, not merged",
    );

    // 4. Lookups. `lookup` returns the map covering the offset, or the first
    //    one after it in the range, as a copy made under the read lock: it
    //    stays as it was after the lock is dropped, whatever the tree does.
    //    `btrfs_lookup_extent_mapping()`.
    let em = tree.lookup(20 * 1024, BLOCK);
    pr_info!("4. lookup 20K: {}\n", Found(&em));
    let em = tree.lookup(200 * 1024, BLOCK);
    pr_info!("4. lookup 200K: {}\n", Found(&em));

    // 5. A read raced another task: it loaded a map for [8K, 40K) from
    //    disk, but the cache already has [0K, 32K). `add_extent_mapping`
    //    returns the cached map covering the offset read and drops the
    //    loaded one (`btrfs_add_extent_mapping()` and
    //    `merge_extent_mapping()`).
    let loaded = PreparedMap::new(regular(8, 32, 8))?;
    let em = tree.write().add_extent_mapping(loaded, 8 * 1024, BLOCK)?;
    pr_info!("5. a racing read of 8K gets the cached {}\n", Show(&em));

    // 6. A write. The map of new data is pinned until the data is on disk,
    //    and on the set of modified extents until fsync logs it: it is
    //    neither evicted nor merged meanwhile. Once the data is written,
    //    `unpin` sets its generation (`btrfs_unpin_extent_cache()`); it still
    //    may not merge, because the log must see it as it was written.
    let mut info = regular(80, 16, 1040);
    info.flags = EmFlags::PINNED;
    tree.add(PreparedMap::new_modified(info)?, true)?;
    show(
        &tree,
        &counters,
        "6. a write's new extent, pinned and modified",
    );
    tree.unpin(80 * 1024, 16 * 1024, 7)?;
    show(
        &tree,
        &counters,
        "6. written back: unpinned, still modified",
    );

    // 7. fsync. It takes the modified maps off the set, marked `LOGGING`
    //    (`btrfs_log_changed_extents()`), logs each, and clears the mark
    //    (`btrfs_clear_em_logging()`): only now does the map merge with its
    //    neighbour, contiguous in the file and on disk.
    let mut logged = tree.take_modified();
    pr_info!(
        "7. fsync logs {} modified map(s)
",
        logged.len()
    );
    while let Some(em) = logged.pop_first() {
        tree.clear_logging(&em);
    }
    drop(logged);
    show(&tree, &counters, "7. logged: merged with its neighbour");

    // 8. Drop a range from the middle of a map, as when a file is punched or
    //    its pages are invalidated: the map is split around it, the ends
    //    staying cached. `btrfs_drop_extent_map_range()`.
    tree.drop_range(4 * 1024, 8 * 1024 - 1, false);
    show(
        &tree,
        &counters,
        "8. [4K, 8K) dropped: the map split around it",
    );

    // 9. Drop everything, as when the inode is evicted.
    //    `btrfs_drop_extent_map_range(inode, 0, (u64)-1, false)`.
    tree.drop_all();
    show(&tree, &counters, "9. everything dropped");
    pr_info!(
        "lookups {}, hits {}, misses {}, merges {}\n",
        counters.lookups(),
        counters.hits(),
        counters.misses(),
        counters.merges()
    );
    Ok(())
}

impl kernel::Module for Sample {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("walk-through of the extent map tree of inode {}\n", INO);
        walk_through().inspect_err(|e| pr_err!("walk-through failed: {:?}\n", e))?;
        pr_info!("done; {} extent maps live\n", extent_map::live_maps());
        Ok(Sample)
    }
}
