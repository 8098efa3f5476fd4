// SPDX-License-Identifier: GPL-2.0

//! The extent map cache: `fs/btrfs/extent_map.c` in safe Rust.
//!
//! An [`ExtentMap`] says where a range of a file lives: `[start, start +
//! len)` of the file maps to `disk_bytenr + offset` on disk (or is a hole,
//! inline data, or delayed allocation, told by sentinel values of
//! `disk_bytenr`). An [`ExtentMapTree`] caches the maps of one inode in a
//! `kernel::rbtree::RBTree` keyed by `start`, under a reader-writer
//! spinlock, with the list of modified extents that fsync has not logged
//! yet. Every operation of the C file is here, with the same semantics and
//! return codes; the places where emfs differs are listed below.
//!
//! # Sharing a map: immutable ranges, copy on merge
//!
//! A lookup returns an `Arc<ExtentMap>` that stays valid after the lock is
//! dropped. btrfs lets the tree change a map in place when it merges it with
//! a neighbour, and keeps holders from seeing that by refusing to merge a map
//! whose reference count is above 2 (one for the tree, one for the task doing
//! the merge). Rust's `Arc` does not expose its count, and in-place changes
//! to a shared object would need `unsafe` or interior mutability on every
//! field. emfs instead never changes the range or the on-disk fields of a
//! map once it is in a tree:
//!
//! - a map being inserted is still private to the inserting task, so merging
//!   it with its neighbours is done on its description before it is
//!   published (no extra allocation);
//! - a map already in the tree (one being unpinned, or whose logging ends) is
//!   merged by publishing a *new* map, built in a slot allocated before the
//!   lock was taken, in place of the maps it covers. Without a slot the merge
//!   is skipped: merging only saves memory.
//!
//! A holder of a replaced map keeps a consistent snapshot; it is no longer
//! in the tree, exactly as when btrfs removes the neighbour it merged into
//! another map. So merges never wait for holders, and need no reference
//! count check. Only the flags and the generation of a published map change,
//! under the tree's write lock; they are atomics, so holders read them
//! without a lock.
//!
//! # Differences from btrfs
//!
//! - Copy on merge, above.
//! - An invalid map (what btrfs's `validate_extent_map()` reports in debug
//!   builds, plus a zero length) is refused with `EINVAL` in every build.
//! - `remove` refuses a pinned map with `EBUSY` and a map not in the tree
//!   with `ENOENT` (btrfs warns and carries on).
//! - The internal consistency checks btrfs makes with `ASSERT` in
//!   `split_extent_map()` return `EINVAL`.
//! - Maps being logged are moved off the tree's modified list onto the
//!   logger's own list ([`TreeInner::take_modified`]), as btrfs's fsync does;
//!   their `LOGGING` flag is what keeps them from merging.
//! - An `EXTENT_MAP_DELALLOC` sentinel is kept (btrfs dropped it in 6.x) for
//!   dirty data that has no blocks yet.
//!
//! # Accounting
//!
//! Every tree keeps exact counts of its cached, pinned and modified maps, and
//! adds them to the [`EmCounters`] of its owner (a mounted filesystem) as it
//! goes, under its write lock. A map is *evictable* when it is not pinned.
//! The shrinker's count reads one atomic.
//!
//! # Lock order
//!
//! 1. `ExtentMapTree::lock`, a reader-writer spinlock: nothing under it may
//!    sleep, so every allocation happens before it is taken.
//!
//! [`EmCounters`] are atomics and take no lock. The shrinker worker only
//! try-locks a tree and skips it when it is busy.

#[cfg(CONFIG_KUNIT = "y")]
mod tests;

use crate::glue::{
    alloc::{
        should_fail_alloc,
        NoFsScope, //
    },
    list::{
        ListTag,
        TaggedList,
        TaggedListItem, //
    },
    rwlock::{
        new_rwlock,
        RwLock,
        RwLockReadGuard,
        RwLockWriteGuard, //
    },
};
use core::{
    cmp::{
        max,
        min, //
    },
    fmt,
    mem::MaybeUninit,
};
use kernel::{
    alloc::Flags,
    list::{
        impl_list_arc_safe,
        impl_list_item,
        AtomicTracker,
        ListLinks,
        TryNewListArc, //
    },
    prelude::*,
    rbtree::{
        RBTree,
        RBTreeNode,
        RBTreeNodeReservation, //
    },
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        UniqueArc, //
    },
};

/// Values of `disk_bytenr` at or above this are sentinels, not disk bytes.
pub(crate) const EXTENT_MAP_LAST_BYTE: u64 = u64::MAX - 3;
/// `disk_bytenr` of a hole.
pub(crate) const EXTENT_MAP_HOLE: u64 = u64::MAX - 2;
/// `disk_bytenr` of inline data (kept with the inode's metadata).
pub(crate) const EXTENT_MAP_INLINE: u64 = u64::MAX - 1;
/// `disk_bytenr` of dirty data that has no blocks yet.
pub(crate) const EXTENT_MAP_DELALLOC: u64 = u64::MAX;

/// Maps alive anywhere (in a tree, held by a caller, or both). Tests check
/// that it returns to where it started.
static LIVE_MAPS: Atomic<i64> = Atomic::new(0);

/// Returns the number of extent maps alive in the module.
pub(crate) fn live_maps() -> i64 {
    LIVE_MAPS.load(Relaxed)
}

/// The flags of an extent map (`EXTENT_FLAG_*`).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct EmFlags(u32);

impl EmFlags {
    /// Not on disk yet (its ordered extent is running): never dropped.
    pub(crate) const PINNED: Self = Self(1 << 0);
    /// Compressed with zlib.
    pub(crate) const COMPRESS_ZLIB: Self = Self(1 << 1);
    /// Compressed with LZO.
    pub(crate) const COMPRESS_LZO: Self = Self(1 << 2);
    /// Compressed with zstd.
    pub(crate) const COMPRESS_ZSTD: Self = Self(1 << 3);
    /// A preallocated extent: blocks reserved, reads return zeroes.
    pub(crate) const PREALLOC: Self = Self(1 << 4);
    /// Being logged by fsync.
    pub(crate) const LOGGING: Self = Self(1 << 5);
    /// Filling in a preallocated extent.
    pub(crate) const FILLING: Self = Self(1 << 6);
    /// Built by merging two or more adjacent maps.
    pub(crate) const MERGED: Self = Self(1 << 7);

    const COMPRESSED: Self =
        Self(Self::COMPRESS_ZLIB.0 | Self::COMPRESS_LZO.0 | Self::COMPRESS_ZSTD.0);
    const ALL: u32 = (1 << 8) - 1;

    /// No flag set.
    pub(crate) const fn empty() -> Self {
        Self(0)
    }

    /// The raw bits.
    pub(crate) const fn bits(self) -> u32 {
        self.0
    }

    /// The flags of `bits`, or `None` if `bits` has unknown bits.
    pub(crate) const fn from_bits(bits: u32) -> Option<Self> {
        if bits & !Self::ALL != 0 {
            None
        } else {
            Some(Self(bits))
        }
    }

    /// Returns whether every flag of `other` is set.
    pub(crate) const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Returns whether any flag of `other` is set.
    pub(crate) const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// `self` with the flags of `other` set.
    pub(crate) const fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// `self` with the flags of `other` cleared.
    pub(crate) const fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }
}

impl fmt::Debug for EmFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// The compression of an extent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Compression {
    /// Not compressed.
    None,
    /// zlib.
    Zlib,
    /// LZO.
    Lzo,
    /// zstd.
    Zstd,
}

/// Returns `start + len`, or `u64::MAX` if that wraps (`range_end()`).
pub(crate) fn range_end(start: u64, len: u64) -> u64 {
    start.saturating_add(len)
}

/// The fields of an extent map, as a plain value: what a caller fills in to
/// add a map, and what [`ExtentMap::info`] returns.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub(crate) struct ExtentMapInfo {
    /// File offset of the extent, in bytes.
    pub(crate) start: u64,
    /// Length of the extent in the file, in bytes.
    pub(crate) len: u64,
    /// First byte of the whole on-disk extent, or a sentinel
    /// ([`EXTENT_MAP_HOLE`], [`EXTENT_MAP_INLINE`], [`EXTENT_MAP_DELALLOC`]).
    pub(crate) disk_bytenr: u64,
    /// Length of the whole on-disk extent.
    pub(crate) disk_num_bytes: u64,
    /// Offset of this map's data inside the (decompressed) extent.
    pub(crate) offset: u64,
    /// Decompressed size of the whole on-disk extent.
    pub(crate) ram_bytes: u64,
    /// Transaction generation of the extent (highest of the merged ones).
    pub(crate) generation: u64,
    /// Flags.
    pub(crate) flags: EmFlags,
}

impl ExtentMapInfo {
    /// A regular extent: `len` bytes at `start` in the file, stored
    /// uncompressed at `disk_bytenr`.
    pub(crate) fn regular(start: u64, len: u64, disk_bytenr: u64) -> Self {
        Self {
            start,
            len,
            disk_bytenr,
            disk_num_bytes: len,
            ram_bytes: len,
            ..Self::default()
        }
    }

    /// A hole of `len` bytes at `start`.
    pub(crate) fn hole(start: u64, len: u64) -> Self {
        Self {
            start,
            len,
            disk_bytenr: EXTENT_MAP_HOLE,
            ram_bytes: len,
            ..Self::default()
        }
    }

    /// End of the range in the file, exclusive (`btrfs_extent_map_end()`).
    pub(crate) fn end(&self) -> u64 {
        range_end(self.start, self.len)
    }

    /// Returns whether `disk_bytenr` is a real disk address.
    pub(crate) fn on_disk(&self) -> bool {
        self.disk_bytenr < EXTENT_MAP_LAST_BYTE
    }

    /// Returns whether the extent is compressed.
    pub(crate) fn is_compressed(&self) -> bool {
        self.flags.intersects(EmFlags::COMPRESSED)
    }

    /// The compression of the extent.
    pub(crate) fn compression(&self) -> Compression {
        if self.flags.contains(EmFlags::COMPRESS_ZLIB) {
            Compression::Zlib
        } else if self.flags.contains(EmFlags::COMPRESS_LZO) {
            Compression::Lzo
        } else if self.flags.contains(EmFlags::COMPRESS_ZSTD) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// Sets the compression flag for `kind` (`btrfs_extent_map_set_compression()`).
    pub(crate) fn set_compression(&mut self, kind: Compression) {
        self.flags = self.flags.without(EmFlags::COMPRESSED);
        self.flags = self.flags.with(match kind {
            Compression::None => EmFlags::empty(),
            Compression::Zlib => EmFlags::COMPRESS_ZLIB,
            Compression::Lzo => EmFlags::COMPRESS_LZO,
            Compression::Zstd => EmFlags::COMPRESS_ZSTD,
        });
    }

    /// Where this map's data starts on disk (`btrfs_extent_map_block_start()`):
    /// for a compressed extent the whole extent must be read.
    pub(crate) fn block_start(&self) -> u64 {
        if self.on_disk() && !self.is_compressed() {
            self.disk_bytenr + self.offset
        } else {
            self.disk_bytenr
        }
    }

    /// Bytes to read from disk (`extent_map_block_len()`).
    pub(crate) fn block_len(&self) -> u64 {
        if self.is_compressed() {
            self.disk_num_bytes
        } else {
            self.len
        }
    }

    /// End of this map's data on disk, exclusive (`extent_map_block_end()`).
    pub(crate) fn block_end(&self) -> u64 {
        range_end(self.block_start(), self.block_len())
    }

    /// Checks the fields of a map (`validate_extent_map()`, plus a non-zero
    /// length) against `blocksize`, a power of two. Returns what is wrong.
    pub(crate) fn validate(&self, blocksize: u64) -> core::result::Result<(), &'static str> {
        let mask = blocksize.wrapping_sub(1);
        let aligned = |v: u64| v & mask == 0;
        if self.len == 0 {
            return Err("zero length");
        }
        if !aligned(self.start) || !aligned(self.len) {
            return Err("unaligned start offset or length members");
        }
        if self.on_disk() {
            if self.disk_num_bytes == 0 {
                return Err("zero disk_num_bytes");
            }
            if range_end(self.offset, self.len) > self.ram_bytes {
                return Err("ram_bytes too small");
            }
            if range_end(self.offset, self.len) > self.disk_num_bytes && !self.is_compressed() {
                return Err("disk_num_bytes too small");
            }
            if !self.is_compressed() && self.ram_bytes != self.disk_num_bytes {
                return Err("ram_bytes mismatch with disk_num_bytes for non-compressed em");
            }
            if !aligned(self.disk_bytenr)
                || !aligned(self.disk_num_bytes)
                || !aligned(self.offset)
                || !aligned(self.ram_bytes)
            {
                return Err("unaligned members");
            }
        } else if self.offset != 0 {
            return Err("non-zero offset for hole/inline");
        }
        Ok(())
    }
}

/// Returns whether a map may be merged with a neighbour at all
/// (`can_merge_extent_map()`); `listed` says whether it is on a list of
/// modified extents.
fn can_merge(info: &ExtentMapInfo, listed: bool) -> bool {
    // Pinned maps are not on disk yet; compressed ones must keep their real
    // size; logging ones are being written to the log; listed ones may not
    // reflect what is on disk until they are logged.
    !info.flags.intersects(
        EmFlags::PINNED
            .with(EmFlags::LOGGING)
            .with(EmFlags::COMPRESSED),
    ) && !listed
}

/// Returns whether `prev` and `next` are adjacent and may become one map
/// (`mergeable_maps()`).
fn mergeable(prev: &ExtentMapInfo, next: &ExtentMapInfo) -> bool {
    if prev.end() != next.start {
        return false;
    }
    // MERGED is not an on-disk flag; it only says a merge happened.
    if prev.flags.without(EmFlags::MERGED) != next.flags.without(EmFlags::MERGED) {
        return false;
    }
    if next.disk_bytenr < EXTENT_MAP_LAST_BYTE - 1 {
        return next.block_start() == prev.block_end();
    }
    // Holes, inline and delalloc extents.
    next.disk_bytenr == prev.disk_bytenr
}

/// Computes the on-disk fields of the merge of `prev` and `next` into
/// `merged` (`merge_ondisk_extents()`). Either they refer to the same data
/// extent, or to two adjacent ones that become one.
fn merge_ondisk(prev: &ExtentMapInfo, next: &ExtentMapInfo, merged: &mut ExtentMapInfo) {
    let disk_bytenr = min(prev.disk_bytenr, next.disk_bytenr);
    let disk_num_bytes = max(
        prev.disk_bytenr + prev.disk_num_bytes,
        next.disk_bytenr + next.disk_num_bytes,
    ) - disk_bytenr;
    let offset = prev.disk_bytenr + prev.offset - disk_bytenr;
    merged.disk_bytenr = disk_bytenr;
    merged.disk_num_bytes = disk_num_bytes;
    merged.ram_bytes = disk_num_bytes;
    merged.offset = offset;
}

/// Folds `prev` into `em`, which follows it (the first half of
/// `try_merge_map()`).
fn absorb_prev(em: &mut ExtentMapInfo, prev: &ExtentMapInfo) {
    em.start = prev.start;
    em.len += prev.len;
    em.generation = max(em.generation, prev.generation);
    if em.on_disk() {
        let cur = *em;
        merge_ondisk(prev, &cur, em);
    }
    em.flags = em.flags.with(EmFlags::MERGED);
}

/// Folds `next` into `em`, which precedes it.
fn absorb_next(em: &mut ExtentMapInfo, next: &ExtentMapInfo) {
    em.len += next.len;
    if em.on_disk() {
        let cur = *em;
        merge_ondisk(&cur, next, em);
    }
    em.generation = max(em.generation, next.generation);
    em.flags = em.flags.with(EmFlags::MERGED);
}

/// Counts the live maps: incremented when a map is built, decremented when
/// it is freed.
struct LiveMap;

impl LiveMap {
    fn new() -> Self {
        LIVE_MAPS.add(1, Relaxed);
        LiveMap
    }
}

impl Drop for LiveMap {
    fn drop(&mut self) {
        LIVE_MAPS.add(-1, Relaxed);
    }
}

/// One cached extent map (`struct extent_map`).
///
/// The range and on-disk fields never change once the map exists (see the
/// module documentation); the flags and the generation change only under the
/// write lock of the tree holding the map.
#[pin_data]
pub(crate) struct ExtentMap {
    start: u64,
    len: u64,
    disk_bytenr: u64,
    disk_num_bytes: u64,
    offset: u64,
    ram_bytes: u64,
    generation: Atomic<u64>,
    flags: Atomic<u32>,
    #[pin]
    links: ListLinks<0>,
    #[pin]
    list_track: AtomicTracker<0>,
    list_tag: ListTag,
    _live: LiveMap,
}

impl_list_arc_safe! {
    impl ListArcSafe<0> for ExtentMap {
        tracked_by list_track: AtomicTracker<0>;
    }
}

impl_list_item! {
    impl ListItem<0> for ExtentMap {
        using ListLinks { self.links };
    }
}

impl TaggedListItem for ExtentMap {
    fn list_tag(&self) -> &ListTag {
        &self.list_tag
    }
}

impl ExtentMap {
    fn init(info: &ExtentMapInfo) -> impl PinInit<Self> + '_ {
        pin_init!(Self {
            start: info.start,
            len: info.len,
            disk_bytenr: info.disk_bytenr,
            disk_num_bytes: info.disk_num_bytes,
            offset: info.offset,
            ram_bytes: info.ram_bytes,
            generation: Atomic::new(info.generation),
            flags: Atomic::new(info.flags.bits()),
            links <- ListLinks::new(),
            list_track <- AtomicTracker::new(),
            list_tag: ListTag::new(),
            _live: LiveMap::new(),
        })
    }

    /// A snapshot of all the fields.
    pub(crate) fn info(&self) -> ExtentMapInfo {
        ExtentMapInfo {
            start: self.start,
            len: self.len,
            disk_bytenr: self.disk_bytenr,
            disk_num_bytes: self.disk_num_bytes,
            offset: self.offset,
            ram_bytes: self.ram_bytes,
            generation: self.generation(),
            flags: self.flags(),
        }
    }

    /// File offset of the extent.
    pub(crate) fn start(&self) -> u64 {
        self.start
    }

    /// Length of the extent in the file.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// End of the extent in the file, exclusive.
    pub(crate) fn end(&self) -> u64 {
        range_end(self.start, self.len)
    }

    /// `disk_bytenr`: the whole on-disk extent's first byte, or a sentinel.
    pub(crate) fn disk_bytenr(&self) -> u64 {
        self.disk_bytenr
    }

    /// Length of the whole on-disk extent.
    pub(crate) fn disk_num_bytes(&self) -> u64 {
        self.disk_num_bytes
    }

    /// Offset of the data inside the on-disk extent.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Decompressed size of the on-disk extent.
    pub(crate) fn ram_bytes(&self) -> u64 {
        self.ram_bytes
    }

    /// Where the data starts on disk.
    pub(crate) fn block_start(&self) -> u64 {
        self.info().block_start()
    }

    /// The generation.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Relaxed)
    }

    /// The flags.
    pub(crate) fn flags(&self) -> EmFlags {
        EmFlags(self.flags.load(Relaxed))
    }

    /// Returns whether the map is pinned.
    pub(crate) fn is_pinned(&self) -> bool {
        self.flags().contains(EmFlags::PINNED)
    }

    /// Returns whether the map is on a list of modified extents (the tree's,
    /// or a logger's).
    pub(crate) fn is_listed(&self) -> bool {
        self.list_tag.is_listed()
    }

    fn can_merge(&self) -> bool {
        can_merge(&self.info(), self.is_listed())
    }

    // Flag and generation changes: only under the write lock of the tree
    // holding the map (the `&mut TreeInner` of the callers proves it).
    fn set_flags(&self, flags: EmFlags) {
        self.flags.store(flags.bits(), Relaxed);
    }

    fn set_generation(&self, generation: u64) {
        self.generation.store(generation, Relaxed);
    }
}

/// Memory for one map and its tree node, allocated before a tree lock is
/// taken.
pub(crate) struct MapSlot {
    map: UniqueArc<MaybeUninit<ExtentMap>>,
    node: RBTreeNodeReservation<u64, Arc<ExtentMap>>,
}

impl MapSlot {
    /// Allocates a slot. Fails with `ENOMEM`.
    pub(crate) fn new(gfp: Flags) -> Result<Self> {
        if should_fail_alloc() {
            return Err(ENOMEM);
        }
        Ok(Self {
            map: UniqueArc::new_uninit(gfp)?,
            node: RBTreeNodeReservation::new(gfp)?,
        })
    }

    /// Allocates a slot the way btrfs allocates maps, with `GFP_NOFS`: the
    /// caller may be in the middle of filesystem I/O, so reclaim must not
    /// recurse into filesystems. Fails with `ENOMEM`.
    pub(crate) fn nofs() -> Result<Self> {
        let _scope = NoFsScope::enter();
        Self::new(GFP_KERNEL)
    }

    /// Builds the map described by `info` in the slot. Never fails and
    /// never allocates, so it may run under a spinning lock.
    fn fill(
        self,
        info: &ExtentMapInfo,
    ) -> (Arc<ExtentMap>, RBTreeNodeReservation<u64, Arc<ExtentMap>>) {
        let map = match self.map.pin_init_with(ExtentMap::init(info)) {
            Ok(map) => map,
            Err(infallible) => match infallible {},
        };
        (map.into(), self.node)
    }
}

/// A map to add to a tree: its description and the memory it will live in.
///
/// Built before the tree lock is taken (`btrfs_alloc_extent_map()` then
/// filling in the fields); the description may still be changed until the
/// map is added.
pub(crate) struct PreparedMap {
    /// The fields of the map to add.
    pub(crate) info: ExtentMapInfo,
    slot: MapSlot,
}

impl PreparedMap {
    /// Allocates room for a map described by `info` ([`MapSlot::nofs`]).
    /// Fails with `ENOMEM`.
    pub(crate) fn new(info: ExtentMapInfo) -> Result<Self> {
        Ok(Self {
            info,
            slot: MapSlot::nofs()?,
        })
    }
}

/// Counters of one owner (a mounted filesystem), shared by all its trees.
///
/// The map counts are exact: each tree updates them under its write lock
/// when its own counts change. The rest are statistics.
pub(crate) struct EmCounters {
    cached: Atomic<i64>,
    evictable: Atomic<i64>,
    pinned: Atomic<i64>,
    modified: Atomic<i64>,
    pub(crate) lookups: Atomic<u64>,
    pub(crate) hits: Atomic<u64>,
    pub(crate) misses: Atomic<u64>,
    pub(crate) merges: Atomic<u64>,
}

impl EmCounters {
    /// New, zeroed counters.
    pub(crate) fn new() -> Result<Arc<Self>> {
        Ok(Arc::new(
            Self {
                cached: Atomic::new(0),
                evictable: Atomic::new(0),
                pinned: Atomic::new(0),
                modified: Atomic::new(0),
                lookups: Atomic::new(0),
                hits: Atomic::new(0),
                misses: Atomic::new(0),
                merges: Atomic::new(0),
            },
            GFP_KERNEL,
        )?)
    }

    /// Maps in the owner's trees.
    pub(crate) fn cached(&self) -> i64 {
        self.cached.load(Relaxed)
    }

    /// Maps the shrinker may drop: cached and not pinned.
    pub(crate) fn evictable(&self) -> i64 {
        self.evictable.load(Relaxed)
    }

    /// Pinned maps.
    pub(crate) fn pinned(&self) -> i64 {
        self.pinned.load(Relaxed)
    }

    /// Maps on the trees' lists of modified extents.
    pub(crate) fn modified(&self) -> i64 {
        self.modified.load(Relaxed)
    }
}

/// The extent maps of one inode (`struct extent_map_tree`).
#[pin_data]
pub(crate) struct ExtentMapTree {
    #[pin]
    lock: RwLock<TreeInner>,
}

/// A tree locked for reading.
pub(crate) type EmReadGuard<'a> = RwLockReadGuard<'a, TreeInner>;
/// A tree locked for writing.
pub(crate) type EmWriteGuard<'a> = RwLockWriteGuard<'a, TreeInner>;

/// The data of an [`ExtentMapTree`], reached through its lock.
///
/// Methods taking `&mut self` are the operations btrfs runs with the tree's
/// write lock held (`lockdep_assert_held_write()`).
pub(crate) struct TreeInner {
    maps: RBTree<u64, Arc<ExtentMap>>,
    modified: TaggedList<ExtentMap>,
    nr_cached: usize,
    nr_pinned: usize,
    full_sync: bool,
    ino: u64,
    blocksize: u64,
    counters: Arc<EmCounters>,
}

impl ExtentMapTree {
    /// A new empty tree for inode `ino`, whose maps are aligned to
    /// `blocksize` (rounded up to a power of two), counted in `counters`
    /// (`btrfs_extent_map_tree_init()`).
    pub(crate) fn new(ino: u64, blocksize: u32, counters: Arc<EmCounters>) -> impl PinInit<Self> {
        pin_init!(Self {
            lock <- new_rwlock!(
                TreeInner {
                    maps: RBTree::new(),
                    modified: TaggedList::new(),
                    nr_cached: 0,
                    nr_pinned: 0,
                    full_sync: false,
                    ino,
                    blocksize: blocksize.max(1).next_power_of_two().into(),
                    counters,
                },
                "ExtentMapTree::lock"
            ),
        })
    }

    /// Locks the tree for reading.
    pub(crate) fn read(&self) -> EmReadGuard<'_> {
        self.lock.read()
    }

    /// Locks the tree for writing.
    pub(crate) fn write(&self) -> EmWriteGuard<'_> {
        self.lock.write()
    }

    /// Locks the tree for writing if it is free; never spins.
    pub(crate) fn try_write(&self) -> Option<EmWriteGuard<'_>> {
        self.lock.try_write()
    }

    /// Returns whether a task waits for the lock.
    pub(crate) fn needbreak(&self) -> bool {
        self.lock.needbreak()
    }

    /// Looks up the first map intersecting `[start, start + len)`, counting
    /// the lookup and whether it hit in the owner's statistics.
    pub(crate) fn lookup(&self, start: u64, len: u64) -> Option<Arc<ExtentMap>> {
        let inner = self.read();
        let em = inner.lookup(start, len);
        inner.counters.lookups.add(1, Relaxed);
        if em.as_ref().is_some_and(|em| em.start() <= start) {
            inner.counters.hits.add(1, Relaxed);
        }
        em
    }

    /// Looks up the map intersecting the range, or a neighbour.
    pub(crate) fn search(&self, start: u64, len: u64) -> Option<Arc<ExtentMap>> {
        self.read().search(start, len)
    }

    /// Adds `pm`, merging it with its neighbours unless `modified`, in which
    /// case it goes on the list of modified extents. `EEXIST` if it overlaps
    /// a cached map.
    pub(crate) fn add(&self, pm: PreparedMap, modified: bool) -> Result<Arc<ExtentMap>> {
        self.write().add(pm, modified)
    }

    /// Unpins the map at `[start, start + len)` once its data is on disk,
    /// sets its generation to `generation` and merges it with its
    /// neighbours if it can (`btrfs_unpin_extent_cache()`).
    ///
    /// Returns `ENOENT` if no map is found, `EUCLEAN` if the map found does
    /// not start at `start`.
    pub(crate) fn unpin(&self, start: u64, len: u64, generation: u64) -> Result {
        // Room for a merge; without it the map is unpinned but not merged.
        let mut spare = MapSlot::nofs().ok();
        self.write().unpin(start, len, generation, &mut spare)
    }

    /// Clears the logging flag of `em` and merges it if it is still in the
    /// tree (`btrfs_clear_em_logging()`).
    pub(crate) fn clear_logging(&self, em: &Arc<ExtentMap>) {
        let mut spare = MapSlot::nofs().ok();
        self.write().clear_logging(em, &mut spare);
    }

    /// Drops every map, pinned or not, rescheduling when needed
    /// (`drop_all_extent_maps_fast()`). Takes the first map each time
    /// instead of walking, since the lock may be dropped in between.
    pub(crate) fn drop_all(&self) {
        let mut inner = self.write();
        while inner.drop_first() {
            inner.cond_resched();
        }
    }

    /// Drops the maps intersecting `[start, end]` (`end` inclusive),
    /// splitting those that stick out of the range; pinned maps are kept if
    /// `skip_pinned` (`btrfs_drop_extent_map_range()`).
    ///
    /// Never fails: if the two maps needed for splits cannot be allocated,
    /// a map sticking out is dropped whole (it is reloaded on demand), and a
    /// modified one marks the inode for a full fsync.
    pub(crate) fn drop_range(&self, start: u64, end: u64, skip_pinned: bool) {
        if end < start {
            pr_err!(
                "drop_range: inode {}: end {} before start {}\n",
                self.read().ino,
                end,
                start
            );
            return;
        }
        if end == u64::MAX && start == 0 && !skip_pinned {
            self.drop_all();
            return;
        }
        // The worst case needs two splits: the first map starts before the
        // range and the last one ends after it.
        let mut splits = [MapSlot::nofs().ok(), MapSlot::nofs().ok()];
        self.write()
            .drop_range(start, end, skip_pinned, &mut splits);
    }

    /// Replaces whatever the tree caches for the range of `pm` with `pm`
    /// (`btrfs_replace_extent_map_range()`): drops the range, then adds,
    /// and retries when another task raced a map into the range.
    pub(crate) fn replace_range(
        &self,
        mut pm: PreparedMap,
        modified: bool,
    ) -> Result<Arc<ExtentMap>> {
        if pm.info.len == 0 {
            return Err(EINVAL);
        }
        loop {
            self.drop_range(pm.info.start, pm.info.end() - 1, false);
            match self.write().add_or_return(pm, modified) {
                Ok(em) => return Ok(em),
                Err((e, back)) if e == EEXIST => pm = back,
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Splits the pinned map `[start, start + len)` in two for an ordered
    /// extent split: the first `pre` bytes now live at `new_logical`, the
    /// rest where they were (`btrfs_split_extent_map()`).
    ///
    /// Returns `ENOMEM` if the two maps cannot be allocated, `EIO` if no map
    /// covers the range, `EINVAL` if the map is not a pinned, uncompressed,
    /// modified, regular map of exactly `len` bytes or `pre` is not inside.
    pub(crate) fn split(&self, start: u64, len: u64, pre: u64, new_logical: u64) -> Result {
        if pre == 0 || pre >= len {
            return Err(EINVAL);
        }
        let split_pre = MapSlot::nofs()?;
        let split_mid = MapSlot::nofs()?;
        self.write()
            .split(start, len, pre, new_logical, split_pre, split_mid)
    }
}

impl TreeInner {
    // Searching: shared access is enough.

    /// The map containing `offset`; otherwise the first map after it;
    /// otherwise the last map before it (`tree_search()`).
    fn search_node(&self, offset: u64) -> Option<Arc<ExtentMap>> {
        match self.maps.cursor_lower_bound(&offset) {
            Some(cursor) => {
                let (key, ge) = cursor.current();
                if *key != offset {
                    if let Some((_, lt)) = cursor.peek_prev() {
                        if lt.end() > offset {
                            return Some(lt.clone());
                        }
                    }
                }
                Some(ge.clone())
            }
            None => self.maps.cursor_back().map(|c| c.current().1.clone()),
        }
    }

    fn lookup_inner(&self, start: u64, len: u64, strict: bool) -> Option<Arc<ExtentMap>> {
        let end = range_end(start, len);
        let em = self.search_node(start)?;
        if strict && !(end > em.start() && start < em.end()) {
            return None;
        }
        Some(em)
    }

    /// The first map intersecting `[start, start + len)`
    /// (`btrfs_lookup_extent_mapping()`). Others may intersect it too.
    pub(crate) fn lookup(&self, start: u64, len: u64) -> Option<Arc<ExtentMap>> {
        self.lookup_inner(start, len, true)
    }

    /// The first map intersecting `[start, start + len)`, or if none, a
    /// nearby map (`btrfs_search_extent_mapping()`).
    pub(crate) fn search(&self, start: u64, len: u64) -> Option<Arc<ExtentMap>> {
        self.lookup_inner(start, len, false)
    }

    /// Returns whether `em` is in this tree.
    pub(crate) fn contains(&self, em: &ExtentMap) -> bool {
        self.maps
            .get(&em.start())
            .is_some_and(|cur| core::ptr::eq(&**cur, em))
    }

    /// The map after `em` in this tree (`next_extent_map()`).
    pub(crate) fn next(&self, em: &ExtentMap) -> Option<Arc<ExtentMap>> {
        if !self.contains(em) {
            return None;
        }
        let cursor = self.maps.cursor_lower_bound(&em.start())?;
        cursor.peek_next().map(|(_, next)| next.clone())
    }

    /// The map before `em` in this tree (`prev_extent_map()`).
    pub(crate) fn prev(&self, em: &ExtentMap) -> Option<Arc<ExtentMap>> {
        if !self.contains(em) {
            return None;
        }
        let cursor = self.maps.cursor_lower_bound(&em.start())?;
        cursor.peek_prev().map(|(_, prev)| prev.clone())
    }

    /// The last map starting before `offset`.
    fn map_before(&self, offset: u64) -> Option<Arc<ExtentMap>> {
        match self.maps.cursor_lower_bound(&offset) {
            Some(cursor) => cursor.peek_prev().map(|(_, prev)| prev.clone()),
            None => self.maps.cursor_back().map(|c| c.current().1.clone()),
        }
    }

    /// The first map starting at or after `offset`.
    fn map_from(&self, offset: u64) -> Option<Arc<ExtentMap>> {
        self.maps
            .cursor_lower_bound(&offset)
            .map(|c| c.current().1.clone())
    }

    /// Returns whether a map intersects `[start, end)`.
    fn overlaps(&self, start: u64, end: u64) -> bool {
        if self.map_from(start).is_some_and(|next| next.start() < end) {
            return true;
        }
        self.map_before(start)
            .is_some_and(|prev| prev.end() > start)
    }

    /// The maps, in file order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<ExtentMap>> {
        self.maps.values()
    }

    /// The first map.
    pub(crate) fn first(&self) -> Option<Arc<ExtentMap>> {
        self.maps.cursor_front().map(|c| c.current().1.clone())
    }

    /// Number of cached maps.
    pub(crate) fn nr_cached(&self) -> usize {
        self.nr_cached
    }

    /// Number of pinned maps.
    pub(crate) fn nr_pinned(&self) -> usize {
        self.nr_pinned
    }

    /// Number of maps the shrinker may drop.
    pub(crate) fn nr_evictable(&self) -> usize {
        self.nr_cached - self.nr_pinned
    }

    /// Number of maps on the list of modified extents.
    pub(crate) fn nr_modified(&self) -> usize {
        self.modified.len()
    }

    /// Returns whether `em` is on this tree's list of modified extents.
    pub(crate) fn is_modified(&self, em: &ExtentMap) -> bool {
        self.modified.contains(em)
    }

    /// The maps on the list of modified extents, newest first.
    pub(crate) fn modified_maps(
        &self,
    ) -> impl Iterator<Item = kernel::sync::ArcBorrow<'_, ExtentMap>> {
        self.modified.iter()
    }

    /// Returns whether the inode must do a full fsync: a modified map was
    /// dropped before it was logged.
    pub(crate) fn needs_full_sync(&self) -> bool {
        self.full_sync
    }

    /// The inode number the tree belongs to.
    pub(crate) fn ino(&self) -> u64 {
        self.ino
    }

    // Accounting: every change of membership or of PINNED goes through
    // these, so the counts stay exact.

    fn count(&mut self, em: &ExtentMap, sign: i64) {
        let pinned = em.is_pinned();
        if sign > 0 {
            self.nr_cached += 1;
            self.nr_pinned += usize::from(pinned);
        } else {
            self.nr_cached -= 1;
            self.nr_pinned -= usize::from(pinned);
        }
        self.counters.cached.add(sign, Relaxed);
        if pinned {
            self.counters.pinned.add(sign, Relaxed);
        } else {
            self.counters.evictable.add(sign, Relaxed);
        }
    }

    fn set_flags(&mut self, em: &ExtentMap, flags: EmFlags) {
        let in_tree = self.contains(em);
        if in_tree {
            self.count(em, -1);
        }
        em.set_flags(flags);
        if in_tree {
            self.count(em, 1);
        }
    }

    fn list_add(&mut self, em: Arc<ExtentMap>) {
        if self.modified.push_front(em).is_ok() {
            self.counters.modified.add(1, Relaxed);
        }
    }

    fn list_del(&mut self, em: &ExtentMap) {
        if self.modified.remove(em).is_some() {
            self.counters.modified.add(-1, Relaxed);
        }
    }

    /// Links a built map into the tree.
    fn link(
        &mut self,
        em: Arc<ExtentMap>,
        node: RBTreeNodeReservation<u64, Arc<ExtentMap>>,
        modified: bool,
    ) {
        self.count(&em, 1);
        if modified {
            self.list_add(em.clone());
        }
        // The caller checked that no map overlaps, so none has this key.
        let _ = self.maps.insert(node.into_node(em.start(), em));
    }

    /// Unlinks `em` (which must be in the tree) and takes it off the list of
    /// modified extents (`remove_em()`); returns the tree's node.
    fn unlink(&mut self, em: &ExtentMap) -> Option<RBTreeNode<u64, Arc<ExtentMap>>> {
        if !self.contains(em) {
            return None;
        }
        self.list_del(em);
        self.count(em, -1);
        self.maps.remove_node(&em.start())
    }

    // Insertion.

    /// Adds the map described by `info` in `slot`: refuses an overlap,
    /// merges with the neighbours unless `modified`, links
    /// (`add_extent_mapping()`, `tree_insert()`, `setup_extent_mapping()`).
    fn insert(
        &mut self,
        mut info: ExtentMapInfo,
        slot: MapSlot,
        modified: bool,
    ) -> core::result::Result<Arc<ExtentMap>, (Error, MapSlot)> {
        if let Err(why) = info.validate(self.blocksize) {
            pr_err!(
                "inode {}: invalid extent map: {}: start={} len={} disk_bytenr={} disk_num_bytes={} ram_bytes={} offset={} flags={:?}\n",
                self.ino,
                why,
                info.start,
                info.len,
                info.disk_bytenr,
                info.disk_num_bytes,
                info.ram_bytes,
                info.offset,
                info.flags
            );
            return Err((EINVAL, slot));
        }
        if self.overlaps(info.start, info.end()) {
            return Err((EEXIST, slot));
        }
        if !modified {
            self.merge_new(&mut info);
        }
        let (em, node) = slot.fill(&info);
        self.link(em.clone(), node, modified);
        Ok(em)
    }

    /// Merges a map that is about to be linked with its neighbours, on its
    /// description (the first form of copy on merge).
    fn merge_new(&mut self, info: &mut ExtentMapInfo) {
        if !can_merge(info, false) {
            return;
        }
        if info.start != 0 {
            if let Some(prev) = self.map_before(info.start) {
                if prev.can_merge() && mergeable(&prev.info(), info) {
                    absorb_prev(info, &prev.info());
                    let _ = self.unlink(&prev);
                    self.counters.merges.add(1, Relaxed);
                }
            }
        }
        if let Some(next) = self.map_from(info.start) {
            if next.can_merge() && mergeable(info, &next.info()) {
                absorb_next(info, &next.info());
                let _ = self.unlink(&next);
                self.counters.merges.add(1, Relaxed);
            }
        }
    }

    /// Merges `em`, which is in the tree, with its neighbours by publishing a
    /// merged map built in `spare` (the second form of copy on merge;
    /// `try_merge_map()`). Returns the merged map, if a merge happened.
    fn merge_published(
        &mut self,
        em: &Arc<ExtentMap>,
        spare: &mut Option<MapSlot>,
    ) -> Option<Arc<ExtentMap>> {
        if !self.contains(em) || !em.can_merge() {
            return None;
        }
        let mut info = em.info();
        let prev = if em.start() != 0 {
            self.prev(em)
                .filter(|prev| prev.can_merge() && mergeable(&prev.info(), &info))
        } else {
            None
        };
        let next = self
            .next(em)
            .filter(|next| next.can_merge() && mergeable(&info, &next.info()));
        if prev.is_none() && next.is_none() {
            return None;
        }
        let slot = spare.take()?;
        for (neighbour, is_prev) in [(&prev, true), (&next, false)] {
            if let Some(n) = neighbour {
                if is_prev {
                    absorb_prev(&mut info, &n.info());
                } else {
                    absorb_next(&mut info, &n.info());
                }
                let _ = self.unlink(n);
                self.counters.merges.add(1, Relaxed);
            }
        }
        let _ = self.unlink(em);
        let (merged, node) = slot.fill(&info);
        self.link(merged.clone(), node, false);
        Some(merged)
    }

    /// Adds `pm`, giving it back with the error on failure.
    fn add_or_return(
        &mut self,
        pm: PreparedMap,
        modified: bool,
    ) -> core::result::Result<Arc<ExtentMap>, (Error, PreparedMap)> {
        let info = pm.info;
        self.insert(info, pm.slot, modified)
            .map_err(|(e, slot)| (e, PreparedMap { info, slot }))
    }

    /// Adds `pm` to the tree (`add_extent_mapping()`): merged with its
    /// neighbours, or put on the list of modified extents if `modified`.
    /// Returns the map now in the tree that covers the range of `pm` (which
    /// may be larger after a merge), `EEXIST` if `pm` overlaps a cached map,
    /// `EINVAL` if its fields are inconsistent.
    pub(crate) fn add(&mut self, pm: PreparedMap, modified: bool) -> Result<Arc<ExtentMap>> {
        self.add_or_return(pm, modified).map_err(|(e, _)| e)
    }

    /// Adds a map loaded for a read of `[start, start + len)`
    /// (`btrfs_add_extent_mapping()`), handling the race with another task
    /// that cached an overlapping map meanwhile: if a cached map covers
    /// `start`, it is returned and `pm` dropped; otherwise `pm` is trimmed to
    /// the gap around `start` and added.
    pub(crate) fn add_extent_mapping(
        &mut self,
        pm: PreparedMap,
        start: u64,
        len: u64,
    ) -> Result<Arc<ExtentMap>> {
        if pm.info.disk_bytenr == EXTENT_MAP_INLINE && pm.info.start != 0 {
            return Err(EINVAL);
        }
        let (e, pm) = match self.add_or_return(pm, false) {
            Ok(em) => return Ok(em),
            Err(failed) => failed,
        };
        if e != EEXIST {
            return Err(e);
        }
        // There is a map in the way, so the search finds one.
        let existing = self.search(start, len).ok_or(EEXIST)?;
        if start >= existing.start() && start < existing.end() {
            return Ok(existing);
        }
        let orig = pm.info;
        self.merge_extent_mapping(&existing, pm, start).inspect_err(|e| {
            pr_warn!(
                "inode {}: extent map merge error {:?}: existing [{}, {}) with em [{}, {}) start {}\n",
                self.ino,
                e,
                existing.start(),
                existing.end(),
                orig.start,
                orig.end(),
                start
            );
        })
    }

    /// Trims `pm` to the gap between the maps around `existing`, the cached
    /// map nearest to `map_start`, and adds it (`merge_extent_mapping()`).
    fn merge_extent_mapping(
        &mut self,
        existing: &Arc<ExtentMap>,
        mut pm: PreparedMap,
        map_start: u64,
    ) -> Result<Arc<ExtentMap>> {
        let em = &mut pm.info;
        if map_start < em.start || map_start >= em.end() {
            return Err(EINVAL);
        }
        let (prev, next) = if existing.start() > map_start {
            (self.prev(existing), Some(existing.clone()))
        } else {
            (Some(existing.clone()), self.next(existing))
        };
        let start = max(prev.as_ref().map_or(em.start, |p| p.end()), em.start);
        let end = min(next.as_ref().map_or(em.end(), |n| n.start()), em.end());
        if end <= start {
            return Err(EINVAL);
        }
        let start_diff = start - em.start;
        em.start = start;
        em.len = end - start;
        if em.on_disk() {
            em.offset += start_diff;
        }
        self.add(pm, false)
    }

    // Removal and replacement.

    /// Removes `em` from the tree (`btrfs_remove_extent_mapping()`); the
    /// caller keeps its own reference. `ENOENT` if `em` is not in this tree,
    /// `EBUSY` if it is pinned.
    pub(crate) fn remove(&mut self, em: &ExtentMap) -> Result {
        if !self.contains(em) {
            return Err(ENOENT);
        }
        if em.is_pinned() {
            return Err(EBUSY);
        }
        let _ = self.unlink(em);
        Ok(())
    }

    /// Puts `pm` in the place of `cur` (`replace_extent_mapping()`). `cur`
    /// must be in the tree and not pinned, and `pm` must not overlap any
    /// other map.
    pub(crate) fn replace(
        &mut self,
        cur: &ExtentMap,
        pm: PreparedMap,
        modified: bool,
    ) -> Result<Arc<ExtentMap>> {
        if !self.contains(cur) {
            return Err(ENOENT);
        }
        if cur.is_pinned() {
            return Err(EBUSY);
        }
        self.replace_slot(cur, pm.info, pm.slot, modified)
            .map_err(|(e, _)| e)
    }

    fn replace_slot(
        &mut self,
        cur: &ExtentMap,
        info: ExtentMapInfo,
        slot: MapSlot,
        modified: bool,
    ) -> core::result::Result<Arc<ExtentMap>, (Error, MapSlot)> {
        let Some(cur_arc) = self.maps.get(&cur.start()).cloned() else {
            return Err((ENOENT, slot));
        };
        let was_listed = self.modified.contains(cur);
        let Some(node) = self.unlink(cur) else {
            return Err((ENOENT, slot));
        };
        match self.insert(info, slot, modified) {
            Ok(em) => Ok(em),
            Err(failed) => {
                // `insert` fails before changing anything: put `cur` back,
                // in its own node.
                self.link(cur_arc, node.into_reservation(), was_listed);
                Err(failed)
            }
        }
    }

    // Pinning, logging.

    /// The write-locked part of [`ExtentMapTree::unpin`]; `spare` is room
    /// for the merge.
    pub(crate) fn unpin(
        &mut self,
        start: u64,
        len: u64,
        generation: u64,
        spare: &mut Option<MapSlot>,
    ) -> Result {
        let Some(em) = self.lookup(start, len) else {
            pr_warn!(
                "no extent map found for inode {} when unpinning extent range [{}, {}), generation {}\n",
                self.ino,
                start,
                range_end(start, len),
                generation
            );
            return Err(ENOENT);
        };
        if em.start() != start {
            pr_warn!(
                "found extent map for inode {} with unexpected start offset {} when unpinning extent range [{}, {}), generation {}\n",
                self.ino,
                em.start(),
                start,
                range_end(start, len),
                generation
            );
            return Err(EUCLEAN);
        }
        em.set_generation(generation);
        self.set_flags(&em, em.flags().without(EmFlags::PINNED));
        self.merge_published(&em, spare);
        Ok(())
    }

    /// The write-locked part of [`ExtentMapTree::clear_logging`].
    pub(crate) fn clear_logging(&mut self, em: &Arc<ExtentMap>, spare: &mut Option<MapSlot>) {
        self.set_flags(em, em.flags().without(EmFlags::LOGGING));
        self.merge_published(em, spare);
    }

    /// Moves every map on the list of modified extents to a list of the
    /// caller's and sets `LOGGING` on each, as fsync does before it logs
    /// them (`btrfs_log_changed_extents()`). The caller clears the flag with
    /// [`ExtentMapTree::clear_logging`] once each is logged.
    pub(crate) fn take_modified(&mut self) -> TaggedList<ExtentMap> {
        let taken = self.modified.take_all();
        self.counters.modified.add(-(taken.len() as i64), Relaxed);
        for em in taken.iter() {
            em.set_flags(em.flags().with(EmFlags::LOGGING));
        }
        taken
    }

    /// Marks the inode for a full fsync (`btrfs_set_inode_full_sync()`).
    pub(crate) fn set_full_sync(&mut self) {
        self.full_sync = true;
    }

    /// Clears the full fsync mark once a full fsync ran; returns whether it
    /// was set.
    pub(crate) fn clear_full_sync(&mut self) -> bool {
        core::mem::replace(&mut self.full_sync, false)
    }

    // Dropping.

    /// Drops the first map, whatever its flags; returns false when the tree
    /// is empty.
    fn drop_first(&mut self) -> bool {
        let Some(em) = self.first() else {
            return false;
        };
        self.set_flags(
            &em,
            em.flags().without(EmFlags::PINNED.with(EmFlags::LOGGING)),
        );
        let _ = self.unlink(&em);
        true
    }

    /// The write-locked part of [`ExtentMapTree::drop_range`]; `splits` is
    /// room for up to two boundary splits.
    pub(crate) fn drop_range(
        &mut self,
        start: u64,
        end: u64,
        skip_pinned: bool,
        splits: &mut [Option<MapSlot>; 2],
    ) {
        let mut start = start;
        // `end` becomes exclusive; a range to the end of the file stays
        // open-ended.
        let (len, end) = if end == u64::MAX {
            (u64::MAX, u64::MAX)
        } else {
            (end - start + 1, end + 1)
        };
        let mut take_split = || splits[0].take().or_else(|| splits[1].take());
        let mut cur = self.lookup(start, len);

        while let Some(em) = cur {
            let em_end = em.end();
            let next = if em_end < end {
                self.next(&em).filter(|next| next.start() < end)
            } else {
                None
            };

            if skip_pinned && em.is_pinned() {
                start = em_end;
                cur = next;
                continue;
            }

            // Splits keep everything but LOGGING (PINNED included).
            let flags = em.flags().without(EmFlags::LOGGING);
            self.set_flags(&em, em.flags().without(EmFlags::PINNED));
            let modified = em.is_listed();
            let generation = em.generation();
            let old = em.info();
            let mut dropped_whole = false;

            if em.start() < start {
                match take_split() {
                    Some(slot) => {
                        let mut split = ExtentMapInfo {
                            start: old.start,
                            len: start - old.start,
                            disk_bytenr: old.disk_bytenr,
                            generation,
                            flags,
                            ..ExtentMapInfo::default()
                        };
                        if old.on_disk() {
                            split.disk_num_bytes = old.disk_num_bytes;
                            split.offset = old.offset;
                            split.ram_bytes = old.ram_bytes;
                        } else {
                            split.ram_bytes = split.len;
                        }
                        self.replace_or_add_split(&em, split, slot, modified);
                    }
                    None => dropped_whole = true,
                }
            }
            if em_end > end && !dropped_whole {
                match take_split() {
                    Some(slot) => {
                        let mut split = ExtentMapInfo {
                            start: end,
                            len: em_end - end,
                            disk_bytenr: old.disk_bytenr,
                            generation,
                            flags,
                            ..ExtentMapInfo::default()
                        };
                        if old.on_disk() {
                            split.disk_num_bytes = old.disk_num_bytes;
                            split.offset = old.offset + end - old.start;
                            split.ram_bytes = old.ram_bytes;
                        } else {
                            split.ram_bytes = split.len;
                        }
                        self.replace_or_add_split(&em, split, slot, modified);
                    }
                    None => dropped_whole = true,
                }
            }

            // Either the map lies inside the range, or a split could not be
            // allocated and the part outside the range goes too: it is
            // reloaded on demand, but if it was modified a fast fsync would
            // miss it. (btrfs only marks the inode when the map itself is
            // still in the tree, which misses a lost back part after a
            // successful front split.)
            if dropped_whole && modified {
                self.set_full_sync();
            }
            let _ = self.unlink(&em);
            cur = next;
        }
    }

    /// Puts a boundary split of `em` in the tree: in place of `em` if it is
    /// still there, next to the other split otherwise.
    fn replace_or_add_split(
        &mut self,
        em: &ExtentMap,
        split: ExtentMapInfo,
        slot: MapSlot,
        modified: bool,
    ) {
        let res = if self.contains(em) {
            self.replace_slot(em, split, slot, modified)
        } else {
            self.insert(split, slot, modified)
        };
        if let Err((e, _)) = res {
            // A logic error (the split lies inside `em`); do what btrfs
            // does: carry on, and make fsync find what was lost.
            pr_err!(
                "inode {}: cannot insert split [{}, {}) of [{}, {}): {:?}\n",
                self.ino,
                split.start,
                split.end(),
                em.start(),
                em.end(),
                e
            );
            if modified {
                self.set_full_sync();
            }
        }
    }

    /// The write-locked part of [`ExtentMapTree::split`].
    fn split(
        &mut self,
        start: u64,
        len: u64,
        pre: u64,
        new_logical: u64,
        split_pre: MapSlot,
        split_mid: MapSlot,
    ) -> Result {
        let em = self.lookup(start, len).ok_or(EIO)?;
        let info = em.info();
        if info.len != len
            || info.is_compressed()
            || !info.on_disk()
            || !info.flags.contains(EmFlags::PINNED)
            || info.flags.contains(EmFlags::LOGGING)
            || !self.modified.contains(&em)
        {
            return Err(EINVAL);
        }
        let flags = info.flags;
        self.set_flags(&em, flags.without(EmFlags::PINNED));

        let pre_info = ExtentMapInfo {
            start: info.start,
            len: pre,
            disk_bytenr: new_logical,
            disk_num_bytes: pre,
            offset: 0,
            ram_bytes: pre,
            generation: info.generation,
            flags,
        };
        let mid_info = ExtentMapInfo {
            start: info.start + pre,
            len: info.len - pre,
            disk_bytenr: info.block_start() + pre,
            disk_num_bytes: info.len - pre,
            offset: 0,
            ram_bytes: info.len - pre,
            generation: info.generation,
            flags,
        };
        // Check both before changing anything, so a failure leaves the tree
        // as it was.
        if let Err(why) = pre_info
            .validate(self.blocksize)
            .and_then(|()| mid_info.validate(self.blocksize))
        {
            self.set_flags(&em, flags);
            pr_err!("inode {}: cannot split extent map: {}\n", self.ino, why);
            return Err(EINVAL);
        }
        if let Err((e, _)) = self.replace_slot(&em, pre_info, split_pre, true) {
            self.set_flags(&em, flags);
            return Err(e);
        }
        // The range of `mid_info` was part of `em`, now gone: no overlap.
        self.insert(mid_info, split_mid, true)
            .map(|_| ())
            .map_err(|(e, _)| e)
    }
}

impl Drop for TreeInner {
    fn drop(&mut self) {
        // Give the owner's counts back for whatever is still cached.
        while self.drop_first() {}
    }
}
