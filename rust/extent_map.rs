// SPDX-License-Identifier: GPL-2.0

//! The extent map cache: `fs/btrfs/extent_map.c` in safe Rust.
//!
//! An [`ExtentMap`] says where a range of a file lives: `[start, start +
//! len)` of the file maps to `disk_bytenr + offset` on disk (or is a hole,
//! inline data, or delayed allocation, told by sentinel values of
//! `disk_bytenr`). An [`ExtentMapTree`] caches the maps of one inode in a
//! `kernel::rbtree::RBTree` keyed by `start`, under a reader-writer
//! spinlock, with the set of modified extents that fsync has not logged
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
//! - The list of modified extents is a second `RBTree` of the same maps,
//!   keyed by start, instead of a `list_head` in every map (see "Memory"
//!   below). Maps being logged move off it to the logger
//!   ([`TreeInner::take_modified`]), as btrfs's fsync moves them to a local
//!   list; their `LOGGING` flag keeps them from merging.
//! - An `EXTENT_MAP_DELALLOC` sentinel is kept (btrfs dropped it in 6.x) for
//!   dirty data that has no blocks yet.
//!
//! # Memory
//!
//! A cached map costs two allocations: the `Arc<ExtentMap>` and its
//! `RBTree` node (btrfs embeds the `rb_node` in the map and allocates once
//! from a kmem_cache; the kernel crate's `RBTree` owns its nodes). Both fit
//! kmalloc-64, 128 bytes per map, because the map has nothing but its six
//! range fields and one atomic word holding the flags, the generation (48
//! bits) and whether the map is on the set of modified extents. Membership
//! of that set costs a node only while a map is modified, that is between a
//! write and the next fsync; [`PreparedMap::new_modified`] allocates it
//! before the lock, and a map replaced by its splits hands its node on.
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

// By path, so that a module including this file as a library finds it too.
#[cfg(all(CONFIG_KUNIT = "y", not(emfs_library)))]
#[path = "extent_map/tests.rs"]
mod tests;

use crate::glue::{
    alloc::{
        should_fail_alloc,
        NoFsScope, //
    },
    rwlock::{
        new_rwlock,
        RwLock,
        RwLockReadGuard,
        RwLockWriteGuard, //
    },
    trace,
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

    /// No flag set.
    pub(crate) const fn empty() -> Self {
        Self(0)
    }

    /// The raw bits.
    pub(crate) const fn bits(self) -> u32 {
        self.0
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
            self.disk_bytenr.saturating_add(self.offset)
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
        // Ends past the address space would make merges overflow.
        if self.start.checked_add(self.len).is_none() {
            return Err("range wraps past the end of the address space");
        }
        if !aligned(self.start) || !aligned(self.len) {
            return Err("unaligned start offset or length members");
        }
        if self.on_disk() {
            if self.disk_num_bytes == 0 {
                return Err("zero disk_num_bytes");
            }
            if self.disk_bytenr.checked_add(self.disk_num_bytes).is_none() {
                return Err("on-disk extent wraps past the end of the disk");
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

/// The bits of [`ExtentMap`]'s state word: flags in the low 15 bits, then
/// whether the map is on its tree's set of modified extents, then the
/// generation.
const STATE_FLAGS: u64 = (1 << 15) - 1;
const STATE_LISTED: u64 = 1 << 15;
const STATE_GENERATION_SHIFT: u32 = 16;

/// The largest generation a map records; larger ones are clamped.
pub(crate) const MAX_GENERATION: u64 = (1 << (64 - STATE_GENERATION_SHIFT)) - 1;

/// One cached extent map (`struct extent_map`).
///
/// The range and on-disk fields never change once the map exists (see the
/// module documentation). The flags, the generation and the membership of
/// the set of modified extents share one atomic word, changed only under
/// the write lock of the tree holding the map.
pub(crate) struct ExtentMap {
    start: u64,
    len: u64,
    disk_bytenr: u64,
    disk_num_bytes: u64,
    offset: u64,
    ram_bytes: u64,
    state: Atomic<u64>,
    _live: LiveMap,
}

impl ExtentMap {
    fn new(info: &ExtentMapInfo) -> Self {
        Self {
            start: info.start,
            len: info.len,
            disk_bytenr: info.disk_bytenr,
            disk_num_bytes: info.disk_num_bytes,
            offset: info.offset,
            ram_bytes: info.ram_bytes,
            state: Atomic::new(
                (info.generation.min(MAX_GENERATION) << STATE_GENERATION_SHIFT)
                    | u64::from(info.flags.bits()),
            ),
            _live: LiveMap::new(),
        }
    }

    /// A snapshot of all the fields.
    pub(crate) fn info(&self) -> ExtentMapInfo {
        let state = self.state.load(Relaxed);
        ExtentMapInfo {
            start: self.start,
            len: self.len,
            disk_bytenr: self.disk_bytenr,
            disk_num_bytes: self.disk_num_bytes,
            offset: self.offset,
            ram_bytes: self.ram_bytes,
            generation: state >> STATE_GENERATION_SHIFT,
            flags: EmFlags((state & STATE_FLAGS) as u32),
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
        self.state.load(Relaxed) >> STATE_GENERATION_SHIFT
    }

    /// The flags.
    pub(crate) fn flags(&self) -> EmFlags {
        EmFlags((self.state.load(Relaxed) & STATE_FLAGS) as u32)
    }

    /// Returns whether the map is pinned.
    pub(crate) fn is_pinned(&self) -> bool {
        self.flags().contains(EmFlags::PINNED)
    }

    /// Returns whether the map is being logged.
    pub(crate) fn is_logging(&self) -> bool {
        self.flags().contains(EmFlags::LOGGING)
    }

    /// Returns whether the map is on its tree's set of modified extents.
    pub(crate) fn is_listed(&self) -> bool {
        self.state.load(Relaxed) & STATE_LISTED != 0
    }

    /// Returns whether fsync still has to log the map: it is on the set of
    /// modified extents, or being logged (`!list_empty(&em->list)` in btrfs,
    /// where a map being logged sits on the logger's list).
    fn is_unlogged(&self) -> bool {
        self.is_listed() || self.is_logging()
    }

    fn can_merge(&self) -> bool {
        can_merge(&self.info(), self.is_listed())
    }

    // State changes: only under the write lock of the tree holding the map
    // (callers hold `&mut TreeInner` and check that the map is in that
    // tree), so a plain load-modify-store cannot lose an update.

    fn update_state(&self, f: impl FnOnce(u64) -> u64) {
        self.state.store(f(self.state.load(Relaxed)), Relaxed);
    }

    fn set_flags(&self, flags: EmFlags) {
        self.update_state(|s| (s & !STATE_FLAGS) | u64::from(flags.bits()));
    }

    fn set_generation(&self, generation: u64) {
        self.update_state(|s| {
            (s & (STATE_FLAGS | STATE_LISTED))
                | (generation.min(MAX_GENERATION) << STATE_GENERATION_SHIFT)
        });
    }

    fn set_listed(&self, listed: bool) {
        self.update_state(|s| {
            if listed {
                s | STATE_LISTED
            } else {
                s & !STATE_LISTED
            }
        });
    }
}

/// A node for an `RBTree<u64, Arc<ExtentMap>>`: the tree of maps or the set
/// of modified extents.
type Node = RBTreeNodeReservation<u64, Arc<ExtentMap>>;

/// Memory for one map and its tree node, allocated before a tree lock is
/// taken.
pub(crate) struct MapSlot {
    map: UniqueArc<MaybeUninit<ExtentMap>>,
    node: Node,
}

/// Allocates a tree node, honouring the module's fault injection.
fn new_node(gfp: Flags) -> Result<Node> {
    if should_fail_alloc() {
        return Err(ENOMEM);
    }
    RBTreeNodeReservation::new(gfp)
}

/// [`new_node`] with `GFP_NOFS` semantics (see [`MapSlot::nofs`]).
fn new_node_nofs() -> Result<Node> {
    let _scope = NoFsScope::enter();
    new_node(GFP_KERNEL)
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
    fn fill(self, info: &ExtentMapInfo) -> (Arc<ExtentMap>, Node) {
        (self.map.write(ExtentMap::new(info)).into(), self.node)
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
    /// Room in the set of modified extents, for a map added as modified.
    list_node: Option<Node>,
}

impl PreparedMap {
    /// Allocates room for a map described by `info` ([`MapSlot::nofs`]).
    /// Fails with `ENOMEM`.
    pub(crate) fn new(info: ExtentMapInfo) -> Result<Self> {
        Ok(Self {
            info,
            slot: MapSlot::nofs()?,
            list_node: None,
        })
    }

    /// Allocates room for a map described by `info` that will be added to
    /// the set of modified extents (`modified` in [`TreeInner::add`]).
    /// Fails with `ENOMEM`.
    pub(crate) fn new_modified(info: ExtentMapInfo) -> Result<Self> {
        Ok(Self {
            info,
            slot: MapSlot::nofs()?,
            list_node: Some(new_node_nofs()?),
        })
    }

    fn from_slot(info: ExtentMapInfo, slot: MapSlot) -> Self {
        Self {
            info,
            slot,
            list_node: None,
        }
    }
}

/// Maps taken off a tree's set of modified extents to be logged
/// ([`TreeInner::take_modified`]), in file order.
pub(crate) struct ModifiedMaps {
    maps: RBTree<u64, Arc<ExtentMap>>,
    len: usize,
}

impl ModifiedMaps {
    /// Number of maps left.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Takes the first map off.
    pub(crate) fn pop_first(&mut self) -> Option<Arc<ExtentMap>> {
        let cursor = self.maps.cursor_front_mut()?;
        let (_, node) = cursor.remove_current();
        self.len -= 1;
        Some(node.to_key_value().1)
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

/// A tree's recount, from [`TreeInner::check`].
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct TreeCheck {
    /// Maps in the tree.
    pub(crate) cached: u64,
    /// Pinned maps.
    pub(crate) pinned: u64,
    /// Maps being logged.
    pub(crate) logging: u64,
    /// Maps on the set of modified extents.
    pub(crate) modified: u64,
    /// Problems found (each logged).
    pub(crate) problems: u64,
}

impl TreeCheck {
    /// Logs a problem of inode `ino`'s tree and counts it.
    pub(crate) fn problem(&mut self, ino: u64, what: fmt::Arguments<'_>) {
        pr_err!("check: ino {}: {}\n", ino, what);
        self.problems += 1;
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
/// `maps` is keyed by the end of each map (exclusive, `u64::MAX` for a map
/// reaching the end of the address space): maps never overlap, so ends
/// order them as starts do, and a lookup finds its map in one descent.
/// `modified` is keyed by start.
///
/// Methods taking `&mut self` are the operations btrfs runs with the tree's
/// write lock held (`lockdep_assert_held_write()`).
///
/// # Invariants
///
/// A map is in `modified` if and only if it is in `maps` and its state says
/// it is listed; `nr_*` count the maps of `maps` (and `nr_modified` those of
/// `modified`), and the same counts are included in `counters`.
pub(crate) struct TreeInner {
    maps: RBTree<u64, Arc<ExtentMap>>,
    modified: RBTree<u64, Arc<ExtentMap>>,
    nr_cached: usize,
    nr_pinned: usize,
    nr_logging: usize,
    nr_modified: usize,
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
                    modified: RBTree::new(),
                    nr_cached: 0,
                    nr_pinned: 0,
                    nr_logging: 0,
                    nr_modified: 0,
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

    /// Looks up the first map intersecting `[start, start + len)`, counting
    /// the lookup in the owner's statistics as a hit if a map covers
    /// `start`, otherwise as a miss (which fires `emfs:em_cache_miss`: the
    /// caller will have to load the map).
    pub(crate) fn lookup(&self, start: u64, len: u64) -> Option<Arc<ExtentMap>> {
        let inner = self.read();
        let em = inner.lookup(start, len);
        inner.counters.lookups.add(1, Relaxed);
        if em.as_ref().is_some_and(|em| em.start() <= start) {
            inner.counters.hits.add(1, Relaxed);
        } else {
            inner.counters.misses.add(1, Relaxed);
            trace::em_cache_miss(inner.ino, start, len);
        }
        em
    }

    /// Looks up the map intersecting the range, or a neighbour.
    pub(crate) fn search(&self, start: u64, len: u64) -> Option<Arc<ExtentMap>> {
        self.read().search(start, len)
    }

    /// Adds `pm`, merging it with its neighbours unless `modified`, in which
    /// case it goes on the set of modified extents (see [`TreeInner::add`]).
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
    /// Never fails: if the maps needed for splits cannot be allocated, a map
    /// sticking out is dropped whole (it is reloaded on demand), and a
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
        // range and the last one ends after it. A modified map hands its
        // place in the set of modified extents to its first split; a second
        // one is needed only if there is anything left to log.
        let mut spares = DropSpares {
            splits: [MapSlot::nofs().ok(), MapSlot::nofs().ok()],
            list_node: if self.read().has_unlogged() {
                new_node_nofs().ok()
            } else {
                None
            },
        };
        self.write()
            .drop_range(start, end, skip_pinned, &mut spares);
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
            match self.write().insert(pm, modified) {
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
        // The second half needs its own place in the set of modified extents.
        let split_mid = PreparedMap {
            info: ExtentMapInfo::default(),
            slot: MapSlot::nofs()?,
            list_node: Some(new_node_nofs()?),
        };
        self.write()
            .split(start, len, pre, new_logical, split_pre, split_mid)
    }
}

/// What [`TreeInner::drop_range`] may use: two slots for boundary splits,
/// and a node for a split that must go on the set of modified extents when
/// the map it comes from cannot hand its own on.
pub(crate) struct DropSpares {
    splits: [Option<MapSlot>; 2],
    list_node: Option<Node>,
}

impl DropSpares {
    fn take_split(&mut self) -> Option<MapSlot> {
        self.splits[0].take().or_else(|| self.splits[1].take())
    }
}

impl TreeInner {
    // Searching: shared access is enough.

    /// The map containing `offset`; otherwise the first map after it;
    /// otherwise the last map before it (`tree_search()`).
    ///
    /// Maps are keyed by their end: the map containing `offset`, or else the
    /// first one after it, is the first map ending after `offset`, found in
    /// one descent that reads only the tree's nodes, as btrfs's walk does.
    fn search_node(&self, offset: u64) -> Option<Arc<ExtentMap>> {
        self.first_ending_after(offset).or_else(|| self.last())
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

    /// Returns whether a map contains `offset`, without taking a reference.
    pub(crate) fn covers(&self, offset: u64) -> bool {
        let Some(key) = offset.checked_add(1) else {
            return false;
        };
        self.maps
            .cursor_lower_bound(&key)
            .is_some_and(|c| c.current().1.start() <= offset)
    }

    /// Returns whether `em` is in this tree.
    pub(crate) fn contains(&self, em: &ExtentMap) -> bool {
        self.maps
            .get(&em.end())
            .is_some_and(|cur| core::ptr::eq(&**cur, em))
    }

    /// The map after `em` in this tree (`next_extent_map()`).
    pub(crate) fn next(&self, em: &ExtentMap) -> Option<Arc<ExtentMap>> {
        if !self.contains(em) {
            return None;
        }
        let cursor = self.maps.cursor_lower_bound(&em.end())?;
        cursor.peek_next().map(|(_, next)| next.clone())
    }

    /// The map before `em` in this tree (`prev_extent_map()`).
    pub(crate) fn prev(&self, em: &ExtentMap) -> Option<Arc<ExtentMap>> {
        if !self.contains(em) {
            return None;
        }
        let cursor = self.maps.cursor_lower_bound(&em.end())?;
        cursor.peek_prev().map(|(_, prev)| prev.clone())
    }

    /// The first map ending after `offset`.
    fn first_ending_after(&self, offset: u64) -> Option<Arc<ExtentMap>> {
        let key = offset.checked_add(1)?;
        self.maps
            .cursor_lower_bound(&key)
            .map(|c| c.current().1.clone())
    }

    /// The last map ending at or before `offset`.
    fn last_ending_by(&self, offset: u64) -> Option<Arc<ExtentMap>> {
        match offset
            .checked_add(1)
            .map(|key| self.maps.cursor_lower_bound(&key))
        {
            Some(Some(cursor)) => cursor.peek_prev().map(|(_, prev)| prev.clone()),
            _ => self.last(),
        }
    }

    /// The last map.
    fn last(&self) -> Option<Arc<ExtentMap>> {
        self.maps.cursor_back().map(|c| c.current().1.clone())
    }

    /// Returns whether a map intersects `[start, end)`.
    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.first_ending_after(start)
            .is_some_and(|next| next.start() < end)
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

    /// Number of maps on the set of modified extents.
    pub(crate) fn nr_modified(&self) -> usize {
        self.nr_modified
    }

    /// Returns whether `em` is on this tree's set of modified extents.
    pub(crate) fn is_modified(&self, em: &ExtentMap) -> bool {
        em.is_listed() && self.contains(em)
    }

    /// The maps on the set of modified extents, in file order.
    pub(crate) fn modified_maps(&self) -> impl Iterator<Item = &Arc<ExtentMap>> {
        self.modified.values()
    }

    /// Recounts the tree and checks its invariants: maps valid, in order
    /// and not overlapping; the set of modified extents made of cached maps
    /// marked as listed; the cached, pinned, logging and modified counts
    /// equal to the recount. Each problem is logged; the recount is
    /// returned (the `check` debugfs file).
    pub(crate) fn check(&self) -> TreeCheck {
        let mut c = TreeCheck::default();
        let mut prev_end = 0;
        for em in self.maps.values() {
            c.cached += 1;
            c.pinned += u64::from(em.is_pinned());
            let logging = u64::from(em.is_logging());
            c.logging += logging;
            if let Err(why) = em.info().validate(self.blocksize) {
                c.problem(
                    self.ino,
                    format_args!("map at {} is invalid: {}", em.start(), why),
                );
            }
            if em.start() < prev_end {
                c.problem(
                    self.ino,
                    format_args!("map at {} overlaps the map before it", em.start()),
                );
            }
            prev_end = em.end();
            let on_list = self
                .modified
                .get(&em.start())
                .is_some_and(|m| core::ptr::eq(&**m, &**em));
            if em.is_listed() != on_list {
                c.problem(
                    self.ino,
                    format_args!("map at {}: modified flag and list disagree", em.start()),
                );
            }
        }
        for em in self.modified.values() {
            c.modified += 1;
            if !em.is_listed() || !self.contains(em) {
                c.problem(
                    self.ino,
                    format_args!("listed map at {} is not a modified cached map", em.start()),
                );
            }
        }
        let counts = [
            ("cached", self.nr_cached, c.cached),
            ("pinned", self.nr_pinned, c.pinned),
            ("logging", self.nr_logging, c.logging),
            ("modified", self.nr_modified, c.modified),
        ];
        for (what, kept, recount) in counts {
            if kept as u64 != recount {
                c.problem(
                    self.ino,
                    format_args!("{} count {} but {} counted", what, kept, recount),
                );
            }
        }
        c
    }

    /// Returns whether any map of the tree has yet to be logged.
    fn has_unlogged(&self) -> bool {
        self.nr_modified > 0 || self.nr_logging > 0
    }

    /// Returns whether the inode must do a full fsync: a modified map was
    /// dropped before it was logged.
    pub(crate) fn needs_full_sync(&self) -> bool {
        self.full_sync
    }

    // Accounting: every change of membership, of PINNED and of LOGGING goes
    // through these, so the counts stay exact.

    fn count(&mut self, em: &ExtentMap, sign: i64) {
        let pinned = em.is_pinned();
        let logging = em.is_logging();
        if sign > 0 {
            self.nr_cached += 1;
            self.nr_pinned += usize::from(pinned);
            self.nr_logging += usize::from(logging);
        } else {
            self.nr_cached -= 1;
            self.nr_pinned -= usize::from(pinned);
            self.nr_logging -= usize::from(logging);
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

    /// Puts `em`, which is in the tree, on the set of modified extents.
    fn list_add(&mut self, em: Arc<ExtentMap>, node: Node) {
        if em.is_listed() {
            return;
        }
        em.set_listed(true);
        self.nr_modified += 1;
        self.counters.modified.add(1, Relaxed);
        let _ = self.modified.insert(node.into_node(em.start(), em));
    }

    /// Takes `em` off the set of modified extents; returns its node.
    fn list_del(&mut self, em: &ExtentMap) -> Option<Node> {
        if !em.is_listed() {
            return None;
        }
        let node = self.modified.remove_node(&em.start())?;
        em.set_listed(false);
        self.nr_modified -= 1;
        self.counters.modified.add(-1, Relaxed);
        Some(node.into_reservation())
    }

    /// Links a built map into the tree, and into the set of modified
    /// extents if given a node for it.
    fn link(&mut self, em: Arc<ExtentMap>, node: Node, list_node: Option<Node>) {
        self.count(&em, 1);
        // The caller checked that no map overlaps, so none has this key.
        let _ = self.maps.insert(node.into_node(em.end(), em.clone()));
        if let Some(list_node) = list_node {
            self.list_add(em, list_node);
        }
    }

    /// Unlinks `em` (which must be in the tree) and takes it off the set of
    /// modified extents (`remove_em()`); returns its nodes.
    fn unlink(&mut self, em: &ExtentMap) -> Option<(Node, Option<Node>)> {
        if !self.contains(em) {
            return None;
        }
        let list_node = self.list_del(em);
        self.count(em, -1);
        let node = self.maps.remove_node(&em.end())?;
        Some((node.into_reservation(), list_node))
    }

    // Insertion.

    /// Adds the map `pm` describes: refuses an overlap, merges with the
    /// neighbours unless `modified`, links (`add_extent_mapping()`,
    /// `tree_insert()`, `setup_extent_mapping()`). Gives `pm` back on
    /// failure, having changed nothing.
    fn insert(
        &mut self,
        mut pm: PreparedMap,
        modified: bool,
    ) -> core::result::Result<Arc<ExtentMap>, (Error, PreparedMap)> {
        let info = &mut pm.info;
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
            return Err((EINVAL, pm));
        }
        if modified && pm.list_node.is_none() {
            // Not prepared with `PreparedMap::new_modified`.
            return Err((EINVAL, pm));
        }
        if self.overlaps(info.start, info.end()) {
            return Err((EEXIST, pm));
        }
        if !modified {
            self.merge_new(&mut pm.info);
        }
        let (em, node) = pm.slot.fill(&pm.info);
        let list_node = if modified { pm.list_node } else { None };
        self.link(em.clone(), node, list_node);
        Ok(em)
    }

    /// Counts and traces a merge of `absorbed` into `info`.
    fn merged(&self, info: &ExtentMapInfo, absorbed: &ExtentMap) {
        self.counters.merges.add(1, Relaxed);
        trace::em_merge(
            self.ino,
            info.start,
            info.len,
            (absorbed.start(), absorbed.len()),
        );
    }

    /// Merges a map that is about to be linked with its neighbours, on its
    /// description (the first form of copy on merge).
    fn merge_new(&mut self, info: &mut ExtentMapInfo) {
        if !can_merge(info, false) {
            return;
        }
        if info.start != 0 {
            if let Some(prev) = self.last_ending_by(info.start) {
                if prev.can_merge() && mergeable(&prev.info(), info) {
                    absorb_prev(info, &prev.info());
                    let _ = self.unlink(&prev);
                    self.merged(info, &prev);
                }
            }
        }
        if let Some(next) = self.first_ending_after(info.start) {
            if next.can_merge() && mergeable(info, &next.info()) {
                absorb_next(info, &next.info());
                let _ = self.unlink(&next);
                self.merged(info, &next);
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
        if let Some(prev) = &prev {
            absorb_prev(&mut info, &prev.info());
            let _ = self.unlink(prev);
            self.merged(&info, prev);
        }
        if let Some(next) = &next {
            absorb_next(&mut info, &next.info());
            let _ = self.unlink(next);
            self.merged(&info, next);
        }
        let _ = self.unlink(em);
        let (merged, node) = slot.fill(&info);
        self.link(merged.clone(), node, None);
        Some(merged)
    }

    /// Adds `pm` to the tree (`add_extent_mapping()`): merged with its
    /// neighbours, or put on the set of modified extents if `modified`.
    /// Returns the map now in the tree that covers the range of `pm` (which
    /// may be larger after a merge), `EEXIST` if `pm` overlaps a cached map,
    /// `EINVAL` if its fields are inconsistent or it is `modified` but was not
    /// prepared with [`PreparedMap::new_modified`].
    pub(crate) fn add(&mut self, pm: PreparedMap, modified: bool) -> Result<Arc<ExtentMap>> {
        self.insert(pm, modified).map_err(|(e, _)| e)
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
        let (e, pm) = match self.insert(pm, false) {
            Ok(em) => return Ok(em),
            Err(failed) => failed,
        };
        if e != EEXIST {
            return Err(e);
        }
        // There is a map in the way, so the search finds one.
        let existing = self.search(start, len).ok_or(EEXIST)?;
        trace::em_handle_exist(
            self.ino,
            (existing.start(), existing.len()),
            (pm.info.start, pm.info.len),
            start,
            len,
        );
        if start >= existing.start() && start < existing.end() {
            return Ok(existing);
        }
        let orig = pm.info;
        self.merge_extent_mapping(&existing, pm, start)
            .inspect_err(|e| {
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
    /// other map. If `cur` was modified, `pm` takes its place in the set of
    /// modified extents.
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
        self.replace_inner(cur, pm, modified).map_err(|(e, _)| e)
    }

    fn replace_inner(
        &mut self,
        cur: &ExtentMap,
        mut pm: PreparedMap,
        modified: bool,
    ) -> core::result::Result<Arc<ExtentMap>, (Error, PreparedMap)> {
        let Some(cur_arc) = self.maps.get(&cur.end()).cloned() else {
            return Err((ENOENT, pm));
        };
        let Some((node, cur_list_node)) = self.unlink(cur) else {
            return Err((ENOENT, pm));
        };
        let was_listed = cur_list_node.is_some();
        if pm.list_node.is_none() {
            pm.list_node = cur_list_node;
        }
        match self.insert(pm, modified) {
            Ok(em) => Ok(em),
            Err((e, mut pm)) => {
                // `insert` fails before changing anything: put `cur` back,
                // in its own nodes.
                let list_node = if was_listed {
                    pm.list_node.take()
                } else {
                    None
                };
                self.link(cur_arc, node, list_node);
                Err((e, pm))
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

    /// The write-locked part of [`ExtentMapTree::clear_logging`]. A map of
    /// another tree is left alone: its state may only change under its own
    /// tree's lock.
    pub(crate) fn clear_logging(&mut self, em: &Arc<ExtentMap>, spare: &mut Option<MapSlot>) {
        if !self.contains(em) {
            return;
        }
        self.set_flags(em, em.flags().without(EmFlags::LOGGING));
        self.merge_published(em, spare);
    }

    /// Takes every map off the set of modified extents and sets `LOGGING` on
    /// each, as fsync does before it logs them (`btrfs_log_changed_extents()`
    /// moving them to its local list). The caller logs each map, then clears
    /// the flag with [`ExtentMapTree::clear_logging`].
    pub(crate) fn take_modified(&mut self) -> ModifiedMaps {
        let maps = core::mem::take(&mut self.modified);
        let len = core::mem::take(&mut self.nr_modified);
        self.counters.modified.add(-(len as i64), Relaxed);
        for em in maps.values() {
            em.set_listed(false);
            self.set_flags(em, em.flags().with(EmFlags::LOGGING));
        }
        ModifiedMaps { maps, len }
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

    /// The write-locked part of [`ExtentMapTree::drop_range`]; `spares` is
    /// room for the boundary splits.
    pub(crate) fn drop_range(
        &mut self,
        start: u64,
        end: u64,
        skip_pinned: bool,
        spares: &mut DropSpares,
    ) {
        let mut start = start;
        // `end` becomes exclusive; a range to the end of the file stays
        // open-ended.
        let (len, end) = if end == u64::MAX {
            (u64::MAX, u64::MAX)
        } else {
            (end - start + 1, end + 1)
        };
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
            let modified = em.is_unlogged();
            let old = em.info();
            // A part outside the range is not kept (or not as modified).
            let mut lost = false;
            let mut no_slot = false;

            let split = |start: u64, len: u64, offset: u64| {
                let mut split = ExtentMapInfo {
                    start,
                    len,
                    disk_bytenr: old.disk_bytenr,
                    generation: old.generation,
                    flags,
                    ..ExtentMapInfo::default()
                };
                if old.on_disk() {
                    split.disk_num_bytes = old.disk_num_bytes;
                    split.offset = offset;
                    split.ram_bytes = old.ram_bytes;
                } else {
                    split.ram_bytes = len;
                }
                split
            };
            if old.start < start {
                match spares.take_split() {
                    Some(slot) => {
                        let info = split(old.start, start - old.start, old.offset);
                        lost |= !self.place_split(&em, info, slot, modified, spares);
                    }
                    None => {
                        lost = true;
                        no_slot = true;
                    }
                }
            }
            if em_end > end && !no_slot {
                match spares.take_split() {
                    Some(slot) => {
                        let info = split(end, em_end - end, old.offset + end - old.start);
                        lost |= !self.place_split(&em, info, slot, modified, spares);
                    }
                    None => lost = true,
                }
            }

            // Either the map lies inside the range, or a split could not be
            // allocated and the part outside the range goes too: it is
            // reloaded on demand, but if it was modified a fast fsync would
            // miss it. (btrfs only marks the inode when the map itself is
            // still in the tree, which misses a lost back part after a
            // successful front split.)
            if lost && modified {
                self.set_full_sync();
            }
            let _ = self.unlink(&em);
            cur = next;
        }
    }

    /// Puts a boundary split of `em` in the tree: in place of `em` if it is
    /// still there (taking over its place in the set of modified extents),
    /// next to the other split otherwise. Returns false if the split could
    /// not be kept as modified, or at all.
    fn place_split(
        &mut self,
        em: &ExtentMap,
        info: ExtentMapInfo,
        slot: MapSlot,
        modified: bool,
        spares: &mut DropSpares,
    ) -> bool {
        let mut pm = PreparedMap::from_slot(info, slot);
        let in_tree = self.contains(em);
        if modified && !(in_tree && em.is_listed()) {
            pm.list_node = spares.list_node.take();
        }
        // Without a node for the set of modified extents, the split goes in
        // unlisted, and the caller marks the inode for a full fsync.
        let listed = modified && (pm.list_node.is_some() || (in_tree && em.is_listed()));
        let res = if in_tree {
            self.replace_inner(em, pm, listed)
        } else {
            self.insert(pm, listed)
        };
        match res {
            Ok(_) => listed == modified,
            Err((e, _)) => {
                // A logic error (the split lies inside `em`); carry on as
                // btrfs does, and let fsync find what was lost.
                pr_err!(
                    "inode {}: cannot insert split [{}, {}) of [{}, {}): {:?}\n",
                    self.ino,
                    info.start,
                    info.end(),
                    em.start(),
                    em.end(),
                    e
                );
                false
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
        mut split_mid: PreparedMap,
    ) -> Result {
        let em = self.lookup(start, len).ok_or(EIO)?;
        let info = em.info();
        if info.len != len
            || info.is_compressed()
            || !info.on_disk()
            || !info.flags.contains(EmFlags::PINNED)
            || info.flags.contains(EmFlags::LOGGING)
            || !self.is_modified(&em)
        {
            return Err(EINVAL);
        }
        let flags = info.flags;

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
        split_mid.info = ExtentMapInfo {
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
            .and_then(|()| split_mid.info.validate(self.blocksize))
        {
            pr_err!("inode {}: cannot split extent map: {}\n", self.ino, why);
            return Err(EINVAL);
        }
        self.set_flags(&em, flags.without(EmFlags::PINNED));
        let pm = PreparedMap::from_slot(pre_info, split_pre);
        if let Err((e, _)) = self.replace_inner(&em, pm, true) {
            self.set_flags(&em, flags);
            return Err(e);
        }
        // The range of `split_mid` was part of `em`, now gone: no overlap.
        self.insert(split_mid, true).map(|_| ()).map_err(|(e, _)| e)
    }
}

/// A map the shrinker took out of a tree, still holding its tree node:
/// freeing both is left for after the lock is dropped.
pub(crate) type EvictedMap = RBTreeNode<u64, Arc<ExtentMap>>;

/// What one [`TreeInner::evict_batch`] did.
pub(crate) struct EvictBatch {
    /// Maps looked at.
    pub(crate) examined: u64,
    /// Maps taken out (in the stash).
    pub(crate) evicted: usize,
    /// Where to resume, or `None` at the end of the tree.
    pub(crate) next: Option<u64>,
}

impl TreeInner {
    /// Takes unpinned maps out of the tree in file order, for the shrinker
    /// (the loop of `btrfs_scan_inode()`): from the map whose end key is at
    /// least `from`, looking at no more than `budget` maps and taking no more
    /// than `stash` holds. The taken maps go to `stash` with their nodes so
    /// the caller frees them after unlocking. A map fsync has still to log
    /// (on the set of modified extents, or being logged) marks the inode
    /// for a full fsync, whatever its generation: emfs has no transaction
    /// commits that would have persisted it otherwise (btrfs compares the
    /// map's generation with the last committed transaction's instead).
    ///
    /// Walks with a cursor, O(1) a step, instead of searching for each map.
    pub(crate) fn evict_batch(
        &mut self,
        from: u64,
        budget: u64,
        stash: &mut [Option<EvictedMap>],
    ) -> EvictBatch {
        let mut batch = EvictBatch {
            examined: 0,
            evicted: 0,
            next: None,
        };
        let mut cursor = self.maps.cursor_lower_bound_mut(&from);
        while let Some(c) = cursor {
            let key = *c.current().0;
            if batch.examined >= budget || batch.evicted >= stash.len() {
                batch.next = Some(key);
                break;
            }
            batch.examined += 1;
            let em = c.current().1.clone();
            if em.is_pinned() {
                cursor = c.move_next();
                continue;
            }
            if em.is_unlogged() {
                self.full_sync = true;
            }
            // What `unlink` does, field by field: the cursor holds `maps`.
            if em.is_listed() {
                let _ = self.modified.remove_node(&em.start());
                em.set_listed(false);
                self.nr_modified -= 1;
                self.counters.modified.add(-1, Relaxed);
            }
            self.nr_cached -= 1;
            self.nr_logging -= usize::from(em.is_logging());
            self.counters.cached.add(-1, Relaxed);
            self.counters.evictable.add(-1, Relaxed);
            let (next, node) = c.remove_current();
            stash[batch.evicted] = Some(node);
            batch.evicted += 1;
            // `remove_current` steps back when there is nothing after.
            cursor = next.filter(|n| *n.current().0 > key);
        }
        batch
    }
}

impl Drop for TreeInner {
    fn drop(&mut self) {
        // Give the owner's counts back for whatever is still cached.
        while self.drop_first() {}
    }
}
