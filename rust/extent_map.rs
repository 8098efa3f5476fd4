// SPDX-License-Identifier: GPL-2.0

//! The extent map cache: `fs/btrfs/extent_map.c` in safe Rust.
//!
//! An extent map says where a range of a file lives: `[start, start + len)`
//! of the file maps to `disk_bytenr + offset` on disk (or is a hole, inline
//! data, or delayed allocation, told by sentinel values of `disk_bytenr`).
//! An [`ExtentMapTree`] caches the maps of one inode in a
//! `kernel::rbtree::RBTree` under a reader-writer spinlock, with the set of
//! modified extents that fsync has not logged yet. Every operation of the C
//! file is here, with the same semantics and return codes; the places where
//! emfs differs are listed below.
//!
//! # Layout: one node per map, keyed by its range
//!
//! A map lives in its tree node and nowhere else: the node's key is the
//! map's range ([`MapRange`]) and its value the rest of the map. One
//! allocation of 88 bytes (kmalloc-96) per cached map, where btrfs's
//! `struct extent_map` is 104 bytes in a kmem_cache.
//!
//! The ranges of a tree never overlap, so ordering them by overlap ("a ends
//! before b starts: Less; a starts after b ends: Greater; else Equal") is a
//! total order on them, the order of their starts. A search for an offset
//! compares a one-byte range with the keys, and stops at the map that
//! contains it, as btrfs's hand-written walk does; a search for a range
//! stops at any map overlapping it, which is the overlap check of an insert.
//!
//! # Copy-out lookups
//!
//! A lookup returns an [`ExtentMap`], a copy of the map's fields made under
//! the read lock, as ext4's extent status tree returns its extents. It
//! stays valid after the lock is dropped, and nothing needs a reference
//! count: nobody but the tree holds a map. So a map in the tree can be
//! changed in place under the write lock (unpinning, the end of logging, a
//! merge), and never needs to be copied to change.
//!
//! A copy names a map of the tree by its range: operations that take a map
//! ([`TreeInner::remove`], [`TreeInner::replace`], [`TreeInner::next`],
//! [`ExtentMapTree::clear_logging`]) act on the map of the tree with that
//! range and those on-disk fields, and report `ENOENT` (or do nothing)
//! when there is none.
//!
//! # Differences from btrfs
//!
//! - Copy-out lookups, above: btrfs hands out referenced maps, and refuses
//!   to merge a map someone else holds.
//! - An invalid map (what btrfs's `validate_extent_map()` reports in debug
//!   builds, plus a zero length) is refused with `EINVAL` in every build.
//! - `remove` refuses a pinned map with `EBUSY` and a map not in the tree
//!   with `ENOENT` (btrfs warns and carries on).
//! - The internal consistency checks btrfs makes with `ASSERT` in
//!   `split_extent_map()` return `EINVAL`.
//! - The set of modified extents is a second `RBTree` of the starts of the
//!   modified maps (32-byte nodes, allocated before the lock when a map is
//!   added as modified), instead of a `list_head` in every map. Maps being
//!   logged move off it to the logger ([`ExtentMapTree::take_modified`]);
//!   their `LOGGING` flag keeps them from merging.
//! - An `EXTENT_MAP_DELALLOC` sentinel is kept (btrfs dropped it in 6.x) for
//!   dirty data that has no blocks yet.
//!
//! # Accounting
//!
//! Every tree keeps exact counts of its cached, pinned and modified maps, and
//! adds them to the [`EmCounters`] of its owner (a mounted filesystem) as it
//! goes, under its write lock. A map is *evictable* when it is not pinned.
//! The shrinker's count reads one atomic. Lookups count their hits in a
//! per-CPU count, so that readers on several CPUs share no cache line.
//!
//! # Lock order
//!
//! 1. `ExtentMapTree::lock`, a reader-writer spinlock: nothing under it may
//!    sleep, so every allocation happens before it is taken.
//!
//! [`EmCounters`] take no lock. The shrinker worker only try-locks a tree
//! and skips it when it is busy.

// By path, so that a module including this file as a library finds it too.
#[cfg(all(CONFIG_KUNIT = "y", not(emfs_library)))]
#[path = "extent_map/tests.rs"]
mod tests;

use crate::glue::{
    alloc::{
        should_fail_alloc,
        NoFsScope, //
    },
    percpu::PerCpuU64,
    rwlock::{
        new_rwlock,
        RwLock,
        RwLockReadGuard,
        RwLockWriteGuard, //
    },
    sched::cond_resched,
    trace,
};
use core::{
    cmp::{
        max,
        min,
        Ordering, //
    },
    fmt,
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

/// Maps in trees, module-wide (the `live` debugfs file). Tests check that
/// it returns to where it started. Changed with the owners' counts, under
/// a tree's write lock; lookups do not touch it.
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

/// The key of a map in its tree: its range `[start, end)` in the file.
///
/// Ordered by overlap: a range that ends before another starts is Less,
/// one that starts after the other ends is Greater, and two that overlap
/// are Equal. The ranges of a tree never overlap, so on them this is the
/// order of their starts, a total order; comparing a searched range with
/// them finds a map overlapping it. `==` is that Equal: use
/// [`MapRange::same`] for equality of bounds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MapRange {
    start: u64,
    end: u64,
}

impl MapRange {
    /// The range of a map described by `info`.
    fn of(info: &ExtentMapInfo) -> Self {
        Self {
            start: info.start,
            end: info.end(),
        }
    }

    /// The byte at `offset`: a search for it stops at the map containing
    /// it, or else ends at the first map after it.
    #[inline]
    fn point(offset: u64) -> Self {
        Self {
            start: offset,
            end: offset.saturating_add(1),
        }
    }

    /// Returns whether both bounds are those of `other`.
    fn same(&self, other: &Self) -> bool {
        self.start == other.start && self.end == other.end
    }
}

impl Ord for MapRange {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        if self.end <= other.start {
            Ordering::Less
        } else if self.start >= other.end {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    }
}

impl PartialOrd for MapRange {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for MapRange {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for MapRange {}

/// What a tree node holds besides the range: the rest of the map.
///
/// Changed in place, only under the tree's write lock.
struct MapBody {
    disk_bytenr: u64,
    disk_num_bytes: u64,
    offset: u64,
    ram_bytes: u64,
    generation: u64,
    flags: EmFlags,
    /// On the tree's set of modified extents.
    listed: bool,
}

// One map, one kmalloc-96 object: the node's links, the key and the body.
const _: () = assert!(
    core::mem::size_of::<kernel::bindings::rb_node>()
        + core::mem::size_of::<MapRange>()
        + core::mem::size_of::<MapBody>()
        <= 96
);

impl MapBody {
    fn new(info: &ExtentMapInfo, listed: bool) -> Self {
        Self {
            disk_bytenr: info.disk_bytenr,
            disk_num_bytes: info.disk_num_bytes,
            offset: info.offset,
            ram_bytes: info.ram_bytes,
            generation: info.generation,
            flags: info.flags,
            listed,
        }
    }

    fn is_pinned(&self) -> bool {
        self.flags.contains(EmFlags::PINNED)
    }

    /// Fsync has still to log the map (see [`ExtentMap::is_unlogged`]).
    fn is_unlogged(&self) -> bool {
        self.listed || self.flags.contains(EmFlags::LOGGING)
    }
}

/// A copy of one cached map (`struct extent_map`), as a lookup returns it:
/// a snapshot made under the tree's lock, which stays as it was whatever
/// happens to the tree afterwards.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct ExtentMap {
    info: ExtentMapInfo,
    listed: bool,
}

impl ExtentMap {
    #[inline]
    fn load(range: &MapRange, body: &MapBody) -> Self {
        Self {
            info: ExtentMapInfo {
                start: range.start,
                len: range.end - range.start,
                disk_bytenr: body.disk_bytenr,
                disk_num_bytes: body.disk_num_bytes,
                offset: body.offset,
                ram_bytes: body.ram_bytes,
                generation: body.generation,
                flags: body.flags,
            },
            listed: body.listed,
        }
    }

    fn range(&self) -> MapRange {
        MapRange::of(&self.info)
    }

    /// Returns whether the node `range`, `body` holds this map: the same
    /// range and the same data (the flags and generation may have changed
    /// since the copy).
    fn is_in(&self, range: &MapRange, body: &MapBody) -> bool {
        self.range().same(range)
            && self.info.disk_bytenr == body.disk_bytenr
            && self.info.disk_num_bytes == body.disk_num_bytes
            && self.info.offset == body.offset
            && self.info.ram_bytes == body.ram_bytes
    }

    /// All the fields.
    pub(crate) fn info(&self) -> ExtentMapInfo {
        self.info
    }

    /// File offset of the extent.
    pub(crate) fn start(&self) -> u64 {
        self.info.start
    }

    /// Length of the extent in the file.
    pub(crate) fn len(&self) -> u64 {
        self.info.len
    }

    /// End of the extent in the file, exclusive.
    pub(crate) fn end(&self) -> u64 {
        self.info.end()
    }

    /// `disk_bytenr`: the whole on-disk extent's first byte, or a sentinel.
    pub(crate) fn disk_bytenr(&self) -> u64 {
        self.info.disk_bytenr
    }

    /// Length of the whole on-disk extent.
    pub(crate) fn disk_num_bytes(&self) -> u64 {
        self.info.disk_num_bytes
    }

    /// Offset of the data inside the on-disk extent.
    pub(crate) fn offset(&self) -> u64 {
        self.info.offset
    }

    /// Decompressed size of the on-disk extent.
    pub(crate) fn ram_bytes(&self) -> u64 {
        self.info.ram_bytes
    }

    /// Where the data starts on disk.
    pub(crate) fn block_start(&self) -> u64 {
        self.info.block_start()
    }

    /// The generation.
    pub(crate) fn generation(&self) -> u64 {
        self.info.generation
    }

    /// The flags.
    pub(crate) fn flags(&self) -> EmFlags {
        self.info.flags
    }

    /// Returns whether the map is pinned.
    pub(crate) fn is_pinned(&self) -> bool {
        self.info.flags.contains(EmFlags::PINNED)
    }

    /// Returns whether the map is being logged.
    pub(crate) fn is_logging(&self) -> bool {
        self.info.flags.contains(EmFlags::LOGGING)
    }

    /// Returns whether the map was on its tree's set of modified extents.
    pub(crate) fn is_listed(&self) -> bool {
        self.listed
    }

    /// Returns whether fsync still has to log the map: it is on the set of
    /// modified extents, or being logged (`!list_empty(&em->list)` in btrfs,
    /// where a map being logged sits on the logger's list).
    fn is_unlogged(&self) -> bool {
        self.listed || self.is_logging()
    }

    fn can_merge(&self) -> bool {
        can_merge(&self.info, self.listed)
    }
}

/// Memory for a map in a tree.
type Node = RBTreeNodeReservation<MapRange, MapBody>;

/// Memory for a start in a tree's set of modified extents.
type ListNode = RBTreeNodeReservation<u64, ()>;

/// Allocates a node of the set of modified extents, honouring the module's
/// fault injection, with `GFP_NOFS` semantics (see [`MapSlot::nofs`]).
fn new_list_node() -> Result<ListNode> {
    let _scope = NoFsScope::enter();
    if should_fail_alloc() {
        return Err(ENOMEM);
    }
    RBTreeNodeReservation::new(GFP_KERNEL)
}

/// Memory for one map, allocated before a tree lock is taken.
pub(crate) struct MapSlot {
    node: Node,
}

impl MapSlot {
    /// Allocates a slot. Fails with `ENOMEM`.
    pub(crate) fn new(gfp: Flags) -> Result<Self> {
        if should_fail_alloc() {
            return Err(ENOMEM);
        }
        Ok(Self {
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
    list_node: Option<ListNode>,
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
            list_node: Some(new_list_node()?),
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

/// The most modified maps a fast fsync logs one by one
/// (`btrfs_log_changed_extents()`); with more, it logs the inode in full.
pub(crate) const MAX_LOGGED_EXTENTS: usize = 32768;

/// How many maps a long walk under a tree's write lock handles between
/// chances to reschedule.
const RESCHED_EVERY: usize = 1024;

/// The maps a fast fsync logs ([`ExtentMapTree::take_modified`]), in file
/// order, each marked `LOGGING` in the tree until the logger ends its
/// logging ([`ExtentMapTree::clear_logging`]), as btrfs's fsync moves them
/// to a local list. Dropping it ends the logging of those not taken.
pub(crate) struct ModifiedMaps<'a> {
    tree: &'a ExtentMapTree,
    maps: KVVec<ExtentMap>,
    next: usize,
    full_sync: bool,
}

impl ModifiedMaps<'_> {
    /// Number of maps left.
    pub(crate) fn len(&self) -> usize {
        self.maps.len() - self.next
    }

    /// Returns whether the inode must be logged in full instead: the
    /// full-sync mark was set (and is now cleared), or there were more than
    /// [`MAX_LOGGED_EXTENTS`] modified maps, or no memory to list them.
    pub(crate) fn full_sync(&self) -> bool {
        self.full_sync
    }

    /// Takes the first map off; the caller logs it, then ends its logging.
    pub(crate) fn pop_first(&mut self) -> Option<ExtentMap> {
        let em = *self.maps.get(self.next)?;
        self.next += 1;
        Some(em)
    }
}

impl Drop for ModifiedMaps<'_> {
    fn drop(&mut self) {
        if self.next == self.maps.len() {
            return;
        }
        let mut inner = self.tree.write();
        for (i, em) in self.maps[self.next..].iter().enumerate() {
            inner.clear_logging(em);
            if i % RESCHED_EVERY == RESCHED_EVERY - 1 {
                inner.cond_resched();
            }
        }
    }
}

/// Counters of one owner (a mounted filesystem), shared by all its trees.
///
/// The map counts are exact: each tree updates them under its write lock
/// when its own counts change. The rest are statistics; lookups count
/// their hits per CPU.
pub(crate) struct EmCounters {
    cached: Atomic<i64>,
    evictable: Atomic<i64>,
    pinned: Atomic<i64>,
    modified: Atomic<i64>,
    hits: PerCpuU64,
    misses: Atomic<u64>,
    merges: Atomic<u64>,
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
                hits: PerCpuU64::new()?,
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

    /// Lookups that found a map covering their offset (every CPU's count
    /// summed: slow).
    pub(crate) fn hits(&self) -> u64 {
        self.hits.sum()
    }

    /// Lookups that did not.
    pub(crate) fn misses(&self) -> u64 {
        self.misses.load(Relaxed)
    }

    /// Lookups.
    pub(crate) fn lookups(&self) -> u64 {
        self.hits() + self.misses()
    }

    /// Merges of two maps into one.
    pub(crate) fn merges(&self) -> u64 {
        self.merges.load(Relaxed)
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

/// The data of an [`ExtentMapTree`], reached through its lock: the maps,
/// and the rest (`st`), apart so that a cursor over the maps can go with
/// changes to the rest.
///
/// Methods taking `&mut self` are the operations btrfs runs with the tree's
/// write lock held (`lockdep_assert_held_write()`).
///
/// # Invariants
///
/// A start is in `st.modified` if and only if the map of `maps` with that
/// start says it is listed; the `st.nr_*` count the maps of `maps` (and
/// `nr_modified` the starts of `st.modified`), and the same counts are
/// included in `st.counters`.
pub(crate) struct TreeInner {
    maps: RBTree<MapRange, MapBody>,
    st: TreeState,
}

/// Everything of a tree but its maps.
struct TreeState {
    modified: RBTree<u64, ()>,
    nr_cached: usize,
    nr_pinned: usize,
    nr_logging: usize,
    nr_modified: usize,
    full_sync: bool,
    ino: u64,
    blocksize: u64,
    counters: Arc<EmCounters>,
}

impl TreeState {
    /// Counts a map with `flags` in (`sign` 1) or out (-1) of the tree.
    fn count(&mut self, flags: EmFlags, sign: i64) {
        let pinned = flags.contains(EmFlags::PINNED);
        let logging = flags.contains(EmFlags::LOGGING);
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
        LIVE_MAPS.add(sign, Relaxed);
    }

    /// Puts `start` on the set of modified extents.
    fn list_add(&mut self, start: u64, node: ListNode) {
        self.nr_modified += 1;
        self.counters.modified.add(1, Relaxed);
        let _ = self.modified.insert(node.into_node(start, ()));
    }

    /// Takes `start` off the set of modified extents; returns its node.
    fn list_del(&mut self, start: u64) -> Option<ListNode> {
        let node = self.modified.remove_node(&start)?;
        self.nr_modified -= 1;
        self.counters.modified.add(-1, Relaxed);
        Some(node.into_reservation())
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

    /// Accounts for the map `range`, `body` leaving the tree; returns its
    /// node in the set of modified extents.
    fn unlinked(&mut self, range: &MapRange, body: &MapBody) -> Option<ListNode> {
        self.count(body.flags, -1);
        if body.listed {
            self.list_del(range.start)
        } else {
            None
        }
    }
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
                    st: TreeState {
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
    #[inline]
    pub(crate) fn lookup(&self, start: u64, len: u64) -> Option<ExtentMap> {
        let inner = self.read();
        let em = inner.lookup(start, len);
        if em.as_ref().is_some_and(|em| em.start() <= start) {
            inner.st.counters.hits.add(1);
        } else {
            inner.st.counters.misses.add(1, Relaxed);
            trace::em_cache_miss(inner.st.ino, start, len);
        }
        em
    }

    /// Looks up the map intersecting the range, or a neighbour.
    pub(crate) fn search(&self, start: u64, len: u64) -> Option<ExtentMap> {
        self.read().search(start, len)
    }

    /// Adds `pm`, merging it with its neighbours unless `modified`, in which
    /// case it goes on the set of modified extents (see [`TreeInner::add`]).
    pub(crate) fn add(&self, pm: PreparedMap, modified: bool) -> Result<ExtentMap> {
        self.write().add(pm, modified)
    }

    /// Unpins the map at `[start, start + len)` once its data is on disk,
    /// sets its generation to `generation` and merges it with its
    /// neighbours if it can (`btrfs_unpin_extent_cache()`).
    ///
    /// Returns `ENOENT` if no map is found, `EUCLEAN` if the map found does
    /// not start at `start`.
    pub(crate) fn unpin(&self, start: u64, len: u64, generation: u64) -> Result {
        self.write().unpin(start, len, generation)
    }

    /// Ends the logging of `em`, a map [`ExtentMapTree::take_modified`]
    /// returned, and merges it if it is still in the tree
    /// (`btrfs_clear_em_logging()`). A map no longer in the tree is left:
    /// its logging ended when it left.
    pub(crate) fn clear_logging(&self, em: &ExtentMap) {
        self.write().clear_logging(em);
    }

    /// Takes the maps a fast fsync logs (`btrfs_log_changed_extents()`):
    /// every map on the set of modified extents leaves it and is marked
    /// `LOGGING`, and the full-sync mark is taken
    /// ([`ModifiedMaps::full_sync`]). With more than [`MAX_LOGGED_EXTENTS`]
    /// maps, or without memory to list them, the set is emptied and a full
    /// fsync asked for instead.
    pub(crate) fn take_modified(&self) -> ModifiedMaps<'_> {
        let mut maps = KVVec::new();
        loop {
            let n = self.read().nr_modified();
            if n > MAX_LOGGED_EXTENTS {
                break;
            }
            if maps.capacity() < n {
                if should_fail_alloc() {
                    break;
                }
                let _scope = NoFsScope::enter();
                match KVVec::with_capacity(n, GFP_KERNEL) {
                    Ok(v) => maps = v,
                    Err(_) => break,
                }
            }
            let mut inner = self.write();
            if inner.nr_modified() > maps.capacity() {
                // More were added meanwhile: make room again.
                continue;
            }
            let mut taken = 0;
            while inner.take_one_modified(&mut maps) {
                taken += 1;
                if taken % RESCHED_EVERY == 0 {
                    inner.cond_resched();
                }
            }
            let full_sync = inner.clear_full_sync();
            return ModifiedMaps {
                tree: self,
                maps,
                next: 0,
                full_sync,
            };
        }
        // Too many, or no memory: the inode is logged in full.
        let mut inner = self.write();
        let mut n = 0;
        while inner.unlist_first() {
            n += 1;
            if n % RESCHED_EVERY == 0 {
                inner.cond_resched();
            }
        }
        inner.clear_full_sync();
        ModifiedMaps {
            tree: self,
            maps: KVVec::new(),
            next: 0,
            full_sync: true,
        }
    }

    /// Drops every map, pinned or not (`drop_all_extent_maps_fast()`): the
    /// maps leave the tree at once, and are freed after the lock is
    /// dropped, O(n), rescheduling when needed.
    pub(crate) fn drop_all(&self) {
        let (maps, modified) = self.write().take_all();
        free_maps(maps);
        drop(modified);
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
                self.read().st.ino,
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
        // range and the last one ends after it. If anything is left to log,
        // both may have to go on the set of modified extents.
        let unlogged = self.read().has_unlogged();
        let list_node = || {
            if unlogged {
                new_list_node().ok()
            } else {
                None
            }
        };
        let mut spares = DropSpares {
            splits: [MapSlot::nofs().ok(), MapSlot::nofs().ok()],
            list_nodes: [list_node(), list_node()],
        };
        self.write()
            .drop_range(start, end, skip_pinned, &mut spares);
    }

    /// Replaces whatever the tree caches for the range of `pm` with `pm`
    /// (`btrfs_replace_extent_map_range()`): drops the range, then adds,
    /// and retries when another task raced a map into the range.
    pub(crate) fn replace_range(&self, mut pm: PreparedMap, modified: bool) -> Result<ExtentMap> {
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
            list_node: Some(new_list_node()?),
        };
        self.write()
            .split(start, len, pre, new_logical, split_pre, split_mid)
    }
}

/// Frees the maps of a tree taken out of it, rescheduling as it goes; O(n),
/// since removing the first node hands on the next.
fn free_maps(mut maps: RBTree<MapRange, MapBody>) {
    let mut cursor = maps.cursor_front_mut();
    let mut n = 0usize;
    while let Some(c) = cursor {
        let (next, node) = c.remove_current();
        drop(node);
        n += 1;
        if n % RESCHED_EVERY == 0 {
            cond_resched();
        }
        cursor = next;
    }
}

/// What [`TreeInner::drop_range`] may use: two slots for boundary splits,
/// and a node in the set of modified extents for each split that must go
/// there when the map it comes from cannot hand its own on.
pub(crate) struct DropSpares {
    splits: [Option<MapSlot>; 2],
    list_nodes: [Option<ListNode>; 2],
}

impl DropSpares {
    fn take_split(&mut self) -> Option<MapSlot> {
        self.splits[0].take().or_else(|| self.splits[1].take())
    }

    fn take_list_node(&mut self) -> Option<ListNode> {
        self.list_nodes[0]
            .take()
            .or_else(|| self.list_nodes[1].take())
    }
}

impl TreeInner {
    // Searching: shared access is enough.

    /// Runs `f` on the map containing `offset`, or else the first map after
    /// it: one descent that stops at the containing map.
    #[inline]
    fn at<T>(&self, offset: u64, f: impl FnOnce(&MapRange, &MapBody) -> T) -> Option<T> {
        let cursor = self.maps.cursor_lower_bound(&MapRange::point(offset))?;
        let (range, body) = cursor.current();
        Some(f(range, body))
    }

    #[inline]
    fn lookup_inner(&self, start: u64, len: u64, strict: bool) -> Option<ExtentMap> {
        let end = range_end(start, len);
        // The strict condition is checked before anything is copied.
        let found = self.at(start, |range, body| {
            (!strict || (end > range.start && start < range.end))
                .then(|| ExtentMap::load(range, body))
        });
        match found {
            Some(em) => em,
            // Every map ends by `start`: the last one is the nearest.
            None if strict => None,
            None => self.last(),
        }
    }

    /// The first map intersecting `[start, start + len)`
    /// (`btrfs_lookup_extent_mapping()`). Others may intersect it too.
    #[inline]
    pub(crate) fn lookup(&self, start: u64, len: u64) -> Option<ExtentMap> {
        self.lookup_inner(start, len, true)
    }

    /// The first map intersecting `[start, start + len)`, or if none, a
    /// nearby map (`btrfs_search_extent_mapping()`).
    pub(crate) fn search(&self, start: u64, len: u64) -> Option<ExtentMap> {
        self.lookup_inner(start, len, false)
    }

    /// Returns whether a map contains `offset`, copying nothing.
    pub(crate) fn covers(&self, offset: u64) -> bool {
        self.maps.get(&MapRange::point(offset)).is_some()
    }

    /// Runs `f` on the node holding `em`, if it is in this tree.
    fn find<T>(&self, em: &ExtentMap, f: impl FnOnce(&MapBody) -> T) -> Option<T> {
        let cursor = self.maps.cursor_lower_bound(&em.range())?;
        let (range, body) = cursor.current();
        em.is_in(range, body).then(|| f(body))
    }

    /// Returns whether `em` is in this tree.
    pub(crate) fn contains(&self, em: &ExtentMap) -> bool {
        self.find(em, |_| ()).is_some()
    }

    /// `em` as the tree holds it now (its flags may have changed).
    fn current(&self, em: &ExtentMap) -> Option<ExtentMap> {
        self.find(em, |body| ExtentMap::load(&em.range(), body))
    }

    /// The map after `em` in this tree (`next_extent_map()`): one search.
    pub(crate) fn next(&self, em: &ExtentMap) -> Option<ExtentMap> {
        let cursor = self.maps.cursor_lower_bound(&em.range())?;
        let (range, body) = cursor.current();
        if !em.is_in(range, body) {
            return None;
        }
        cursor.peek_next().map(|(r, b)| ExtentMap::load(r, b))
    }

    /// The map before `em` in this tree (`prev_extent_map()`): one search.
    pub(crate) fn prev(&self, em: &ExtentMap) -> Option<ExtentMap> {
        let cursor = self.maps.cursor_lower_bound(&em.range())?;
        let (range, body) = cursor.current();
        if !em.is_in(range, body) {
            return None;
        }
        cursor.peek_prev().map(|(r, b)| ExtentMap::load(r, b))
    }

    /// The first map ending after `offset`.
    fn first_ending_after(&self, offset: u64) -> Option<ExtentMap> {
        self.at(offset, ExtentMap::load)
    }

    /// The last map ending at or before `offset`.
    fn last_ending_by(&self, offset: u64) -> Option<ExtentMap> {
        match self.maps.cursor_lower_bound(&MapRange::point(offset)) {
            Some(cursor) => cursor.peek_prev().map(|(r, b)| ExtentMap::load(r, b)),
            None => self.last(),
        }
    }

    /// The last map.
    fn last(&self) -> Option<ExtentMap> {
        self.maps.cursor_back().map(|c| {
            let (r, b) = c.current();
            ExtentMap::load(r, b)
        })
    }

    /// The map starting at `start`.
    fn starting_at(&self, start: u64) -> Option<ExtentMap> {
        self.at(start, |range, body| {
            (range.start == start).then(|| ExtentMap::load(range, body))
        })
        .flatten()
    }

    /// Returns whether a map intersects `[start, end)`, a non-empty range:
    /// one descent, which stops at any overlapping map.
    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.maps.get(&MapRange { start, end }).is_some()
    }

    /// The maps, in file order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = ExtentMap> + '_ {
        self.maps.iter().map(|(r, b)| ExtentMap::load(r, b))
    }

    /// The first map.
    pub(crate) fn first(&self) -> Option<ExtentMap> {
        self.maps.cursor_front().map(|c| {
            let (r, b) = c.current();
            ExtentMap::load(r, b)
        })
    }

    /// Number of cached maps.
    pub(crate) fn nr_cached(&self) -> usize {
        self.st.nr_cached
    }

    /// Number of pinned maps.
    pub(crate) fn nr_pinned(&self) -> usize {
        self.st.nr_pinned
    }

    /// Number of maps the shrinker may drop.
    pub(crate) fn nr_evictable(&self) -> usize {
        self.st.nr_cached - self.st.nr_pinned
    }

    /// Number of maps on the set of modified extents.
    pub(crate) fn nr_modified(&self) -> usize {
        self.st.nr_modified
    }

    /// Returns whether `em` is on this tree's set of modified extents.
    pub(crate) fn is_modified(&self, em: &ExtentMap) -> bool {
        self.find(em, |body| body.listed).unwrap_or(false)
    }

    /// The maps on the set of modified extents, in file order.
    pub(crate) fn modified_maps(&self) -> impl Iterator<Item = ExtentMap> + '_ {
        self.st
            .modified
            .keys()
            .filter_map(|start| self.starting_at(*start))
    }

    /// Recounts the tree and checks its invariants: maps valid, in order
    /// and not overlapping; the set of modified extents made of the starts
    /// of cached maps marked as listed; the cached, pinned, logging and
    /// modified counts equal to the recount. Each problem is logged; the
    /// recount is returned (the `check` debugfs file).
    pub(crate) fn check(&self) -> TreeCheck {
        let ino = self.st.ino;
        let mut c = TreeCheck::default();
        let mut prev_end = 0;
        for em in self.iter() {
            c.cached += 1;
            c.pinned += u64::from(em.is_pinned());
            c.logging += u64::from(em.is_logging());
            if let Err(why) = em.info().validate(self.st.blocksize) {
                c.problem(
                    ino,
                    format_args!("map at {} is invalid: {}", em.start(), why),
                );
            }
            if em.start() < prev_end {
                c.problem(
                    ino,
                    format_args!("map at {} overlaps the map before it", em.start()),
                );
            }
            prev_end = em.end();
            if em.is_listed() != self.st.modified.get(&em.start()).is_some() {
                c.problem(
                    ino,
                    format_args!("map at {}: modified flag and list disagree", em.start()),
                );
            }
        }
        for start in self.st.modified.keys() {
            c.modified += 1;
            if !self.starting_at(*start).is_some_and(|em| em.is_listed()) {
                c.problem(
                    ino,
                    format_args!("listed start {} is not a modified cached map", start),
                );
            }
        }
        let counts = [
            ("cached", self.st.nr_cached, c.cached),
            ("pinned", self.st.nr_pinned, c.pinned),
            ("logging", self.st.nr_logging, c.logging),
            ("modified", self.st.nr_modified, c.modified),
        ];
        for (what, kept, recount) in counts {
            if kept as u64 != recount {
                c.problem(
                    ino,
                    format_args!("{} count {} but {} counted", what, kept, recount),
                );
            }
        }
        c
    }

    /// Returns whether any map of the tree has yet to be logged.
    fn has_unlogged(&self) -> bool {
        self.st.nr_modified > 0 || self.st.nr_logging > 0
    }

    /// Returns whether the inode must do a full fsync: a modified map was
    /// dropped before it was logged.
    pub(crate) fn needs_full_sync(&self) -> bool {
        self.st.full_sync
    }

    // Changing maps: every change of membership, of PINNED and of LOGGING
    // goes through these, so the counts stay exact.

    /// Runs `f` on the node of the map starting at `start` and the rest of
    /// the tree, found in one search; `None` if no map starts there.
    fn with_node_at<T>(
        &mut self,
        start: u64,
        f: impl FnOnce(&MapRange, &mut MapBody, &mut TreeState) -> T,
    ) -> Option<T> {
        let TreeInner { maps, st } = self;
        let mut cursor = maps.cursor_lower_bound_mut(&MapRange::point(start))?;
        if cursor.current().0.start != start {
            return None;
        }
        let (range, body) = cursor.current_mut();
        Some(f(range, body, st))
    }

    /// Links a map described by `info` into the tree in `node`, and into
    /// the set of modified extents if given a node for it. The caller
    /// checked that no map overlaps it.
    fn link(&mut self, info: &ExtentMapInfo, node: Node, list_node: Option<ListNode>) -> ExtentMap {
        let range = MapRange::of(info);
        let body = MapBody::new(info, list_node.is_some());
        let em = ExtentMap::load(&range, &body);
        self.st.count(info.flags, 1);
        let _ = self.maps.insert(node.into_node(range, body));
        if let Some(list_node) = list_node {
            self.st.list_add(range.start, list_node);
        }
        em
    }

    /// Unlinks `em` (`remove_em()`): returns its nodes and the map as it was
    /// in the tree, or `None` if it is not in the tree.
    fn unlink(&mut self, em: &ExtentMap) -> Option<(Node, Option<ListNode>, ExtentMap)> {
        let TreeInner { maps, st } = self;
        let cursor = maps.cursor_lower_bound_mut(&em.range())?;
        let (range, body) = cursor.current();
        if !em.is_in(range, body) {
            return None;
        }
        let current = ExtentMap::load(range, body);
        let list_node = st.unlinked(range, body);
        let (_, node) = cursor.remove_current();
        Some((node.into_reservation(), list_node, current))
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
    ) -> core::result::Result<ExtentMap, (Error, PreparedMap)> {
        let info = &mut pm.info;
        if let Err(why) = info.validate(self.st.blocksize) {
            pr_err!(
                "inode {}: invalid extent map: {}: start={} len={} disk_bytenr={} disk_num_bytes={} ram_bytes={} offset={} flags={:?}\n",
                self.st.ino,
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
        let list_node = if modified { pm.list_node } else { None };
        Ok(self.link(&pm.info, pm.slot.node, list_node))
    }

    /// Merges a map that is about to be linked with its neighbours, on its
    /// description; the neighbours' nodes are freed.
    fn merge_new(&mut self, info: &mut ExtentMapInfo) {
        if !can_merge(info, false) {
            return;
        }
        if info.start != 0 {
            if let Some(prev) = self.last_ending_by(info.start) {
                if prev.can_merge() && mergeable(&prev.info(), info) {
                    absorb_prev(info, &prev.info());
                    drop(self.unlink(&prev));
                    self.st.merged(info, &prev);
                }
            }
        }
        if let Some(next) = self.first_ending_after(info.start) {
            if next.can_merge() && mergeable(info, &next.info()) {
                absorb_next(info, &next.info());
                drop(self.unlink(&next));
                self.st.merged(info, &next);
            }
        }
    }

    /// Changes the map `em` names in place with `f`, if `f` says so, and
    /// then merges it with its neighbours (`try_merge_map()`): the
    /// neighbours' nodes are freed and the map's own node goes back under
    /// the merged range, so nothing is allocated. One search finds the map
    /// and its neighbours. Nothing happens if `em` is not in the tree or
    /// `f` returns false.
    fn update_and_merge(&mut self, em: &ExtentMap, f: impl FnOnce(&mut MapBody) -> bool) {
        let TreeInner { maps, st } = self;
        let Some(mut cursor) = maps.cursor_lower_bound_mut(&em.range()) else {
            return;
        };
        let (range, body) = cursor.current();
        if !em.is_in(range, body) {
            return;
        }
        let (range, body) = cursor.current_mut();
        let flags = body.flags;
        if !f(body) {
            return;
        }
        st.count(flags, -1);
        st.count(body.flags, 1);
        let cur = ExtentMap::load(range, body);
        if !cur.can_merge() {
            return;
        }
        let mut info = cur.info();
        let load = |(r, b): (&MapRange, &MapBody)| ExtentMap::load(r, b);
        let prev = cursor
            .peek_prev()
            .map(load)
            .filter(|prev| cur.start() != 0 && prev.can_merge() && mergeable(&prev.info(), &info));
        let next = cursor
            .peek_next()
            .map(load)
            .filter(|next| next.can_merge() && mergeable(&info, &next.info()));
        if prev.is_none() && next.is_none() {
            return;
        }
        // Neighbours that may merge are not listed: counting them out is
        // all their removal takes.
        if let Some(prev) = &prev {
            absorb_prev(&mut info, &prev.info());
            drop(cursor.remove_prev());
            st.count(prev.flags(), -1);
            st.merged(&info, prev);
        }
        if let Some(next) = &next {
            absorb_next(&mut info, &next.info());
            drop(cursor.remove_next());
            st.count(next.flags(), -1);
            st.merged(&info, next);
        }
        let (_, node) = cursor.remove_current();
        st.count(cur.flags(), -1);
        self.link(&info, node.into_reservation(), None);
    }

    /// Adds `pm` to the tree (`add_extent_mapping()`): merged with its
    /// neighbours, or put on the set of modified extents if `modified`.
    /// Returns the map now in the tree that covers the range of `pm` (which
    /// may be larger after a merge), `EEXIST` if `pm` overlaps a cached map,
    /// `EINVAL` if its fields are inconsistent or it is `modified` but was not
    /// prepared with [`PreparedMap::new_modified`].
    pub(crate) fn add(&mut self, pm: PreparedMap, modified: bool) -> Result<ExtentMap> {
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
    ) -> Result<ExtentMap> {
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
            self.st.ino,
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
                    self.st.ino,
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
        existing: &ExtentMap,
        mut pm: PreparedMap,
        map_start: u64,
    ) -> Result<ExtentMap> {
        let em = &mut pm.info;
        if map_start < em.start || map_start >= em.end() {
            return Err(EINVAL);
        }
        let (prev, next) = if existing.start() > map_start {
            (self.prev(existing), Some(*existing))
        } else {
            (Some(*existing), self.next(existing))
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

    /// Removes `em` from the tree (`btrfs_remove_extent_mapping()`).
    /// `ENOENT` if `em` is not in this tree, `EBUSY` if it is pinned.
    pub(crate) fn remove(&mut self, em: &ExtentMap) -> Result {
        let current = self.current(em).ok_or(ENOENT)?;
        if current.is_pinned() {
            return Err(EBUSY);
        }
        drop(self.unlink(em));
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
    ) -> Result<ExtentMap> {
        let current = self.current(cur).ok_or(ENOENT)?;
        if current.is_pinned() {
            return Err(EBUSY);
        }
        self.replace_inner(cur, pm, modified).map_err(|(e, _)| e)
    }

    fn replace_inner(
        &mut self,
        cur: &ExtentMap,
        mut pm: PreparedMap,
        modified: bool,
    ) -> core::result::Result<ExtentMap, (Error, PreparedMap)> {
        let Some((node, cur_list_node, cur)) = self.unlink(cur) else {
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
                // in its own node.
                let list_node = if was_listed {
                    pm.list_node.take()
                } else {
                    None
                };
                self.link(&cur.info(), node, list_node);
                Err((e, pm))
            }
        }
    }

    // Pinning, logging.

    /// The write-locked part of [`ExtentMapTree::unpin`].
    pub(crate) fn unpin(&mut self, start: u64, len: u64, generation: u64) -> Result {
        let Some(em) = self.lookup(start, len) else {
            pr_warn!(
                "no extent map found for inode {} when unpinning extent range [{}, {}), generation {}\n",
                self.st.ino,
                start,
                range_end(start, len),
                generation
            );
            return Err(ENOENT);
        };
        if em.start() != start {
            pr_warn!(
                "found extent map for inode {} with unexpected start offset {} when unpinning extent range [{}, {}), generation {}\n",
                self.st.ino,
                em.start(),
                start,
                range_end(start, len),
                generation
            );
            return Err(EUCLEAN);
        }
        self.update_and_merge(&em, |body| {
            body.flags = body.flags.without(EmFlags::PINNED);
            body.generation = generation;
            true
        });
        Ok(())
    }

    /// The write-locked part of [`ExtentMapTree::clear_logging`].
    pub(crate) fn clear_logging(&mut self, em: &ExtentMap) {
        self.update_and_merge(em, |body| {
            let logging = body.flags.contains(EmFlags::LOGGING);
            body.flags = body.flags.without(EmFlags::LOGGING);
            logging
        });
    }

    /// Takes the first map off the set of modified extents into `out` and
    /// marks it `LOGGING`; false when the set is empty or `out` is full.
    fn take_one_modified(&mut self, out: &mut KVVec<ExtentMap>) -> bool {
        if out.len() == out.capacity() {
            return false;
        }
        let Some(start) = self.st.modified.keys().next().copied() else {
            return false;
        };
        drop(self.st.list_del(start));
        let taken = self.with_node_at(start, |range, body, st| {
            st.count(body.flags, -1);
            body.listed = false;
            body.flags = body.flags.with(EmFlags::LOGGING);
            st.count(body.flags, 1);
            ExtentMap::load(range, body)
        });
        if let Some(taken) = taken {
            // Room was checked above.
            let _ = out.push_within_capacity(taken);
        }
        true
    }

    /// Takes the first map off the set of modified extents, for a full
    /// fsync; false when the set is empty.
    fn unlist_first(&mut self) -> bool {
        let Some(start) = self.st.modified.keys().next().copied() else {
            return false;
        };
        drop(self.st.list_del(start));
        self.with_node_at(start, |_, body, _| body.listed = false);
        true
    }

    /// Marks the inode for a full fsync (`btrfs_set_inode_full_sync()`).
    pub(crate) fn set_full_sync(&mut self) {
        self.st.full_sync = true;
    }

    /// Clears the full fsync mark once a full fsync ran; returns whether it
    /// was set.
    pub(crate) fn clear_full_sync(&mut self) -> bool {
        core::mem::replace(&mut self.st.full_sync, false)
    }

    // Dropping.

    /// Takes every map out of the tree and gives their counts back; the
    /// caller frees them ([`free_maps`]) after unlocking.
    fn take_all(&mut self) -> (RBTree<MapRange, MapBody>, RBTree<u64, ()>) {
        let st = &mut self.st;
        let c = &st.counters;
        let (cached, pinned) = (st.nr_cached as i64, st.nr_pinned as i64);
        c.cached.add(-cached, Relaxed);
        c.pinned.add(-pinned, Relaxed);
        c.evictable.add(pinned - cached, Relaxed);
        c.modified.add(-(st.nr_modified as i64), Relaxed);
        LIVE_MAPS.add(-cached, Relaxed);
        st.nr_cached = 0;
        st.nr_pinned = 0;
        st.nr_logging = 0;
        st.nr_modified = 0;
        (
            core::mem::take(&mut self.maps),
            core::mem::take(&mut self.st.modified),
        )
    }

    /// The write-locked part of [`ExtentMapTree::drop_range`]; `spares` is
    /// room for the boundary splits. Maps inside the range are dropped
    /// with a cursor, one step each: O(k + log n) for k maps, as btrfs.
    pub(crate) fn drop_range(
        &mut self,
        start: u64,
        end: u64,
        skip_pinned: bool,
        spares: &mut DropSpares,
    ) {
        // `end` becomes exclusive; a range to the end of the file stays
        // open-ended.
        let end = if end == u64::MAX { u64::MAX } else { end + 1 };
        let mut pos = start;
        loop {
            // Whole maps inside the range go with a cursor; a map sticking
            // out of it stops the walk.
            let mut edge = None;
            let TreeInner { maps, st } = self;
            let mut cursor = maps.cursor_lower_bound_mut(&MapRange::point(pos));
            while let Some(c) = cursor {
                let (range, body) = c.current();
                let range = *range;
                if range.start >= end {
                    break;
                }
                if skip_pinned && body.is_pinned() {
                    cursor = c.move_next();
                    continue;
                }
                if range.start < start || range.end > end {
                    edge = Some(ExtentMap::load(&range, body));
                    break;
                }
                drop(st.unlinked(&range, body));
                let (next, node) = c.remove_current();
                drop(node);
                // `remove_current` steps back when there is nothing after.
                cursor = next.filter(|n| n.current().0.start > range.start);
            }
            let Some(em) = edge else {
                return;
            };
            self.drop_edge(&em, start, end, spares);
            if em.end() >= end {
                return;
            }
            pos = em.end();
        }
    }

    /// Drops `em`, which sticks out of `[start, end)`, keeping the parts
    /// outside the range as splits if `spares` has room for them.
    fn drop_edge(&mut self, em: &ExtentMap, start: u64, end: u64, spares: &mut DropSpares) {
        let em_end = em.end();
        // Splits keep everything but LOGGING (PINNED included).
        let flags = em.flags().without(EmFlags::LOGGING);
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
                    lost |= !self.place_split(em, info, slot, modified, spares);
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
                    lost |= !self.place_split(em, info, slot, modified, spares);
                }
                None => lost = true,
            }
        }

        // Either both splits are in, or a split could not be allocated and
        // the part outside the range goes too: it is reloaded on demand, but
        // if it was modified a fast fsync would miss it. (btrfs only marks
        // the inode when the map itself is still in the tree, which misses a
        // lost back part after a successful front split.)
        if lost && modified {
            self.set_full_sync();
        }
        drop(self.unlink(em));
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
        let current = self.current(em);
        let em_listed = current.is_some_and(|c| c.is_listed());
        if modified && !em_listed {
            pm.list_node = spares.take_list_node();
        }
        // Without a node for the set of modified extents, the split goes in
        // unlisted, and the caller marks the inode for a full fsync.
        let listed = modified && (pm.list_node.is_some() || em_listed);
        let res = if current.is_some() {
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
                    self.st.ino,
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
            || !em.is_listed()
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
            .validate(self.st.blocksize)
            .and_then(|()| split_mid.info.validate(self.st.blocksize))
        {
            pr_err!("inode {}: cannot split extent map: {}\n", self.st.ino, why);
            return Err(EINVAL);
        }
        let pm = PreparedMap::from_slot(pre_info, split_pre);
        if let Err((e, _)) = self.replace_inner(&em, pm, true) {
            return Err(e);
        }
        // The range of `split_mid` was part of `em`, now gone: no overlap.
        self.insert(split_mid, true).map(|_| ()).map_err(|(e, _)| e)
    }
}

#[cfg(CONFIG_KUNIT = "y")]
impl TreeInner {
    /// Shifts the pinned count by `delta`, for [`TreeInner::check`] to find
    /// (tests only).
    pub(crate) fn skew_pinned_count(&mut self, delta: isize) {
        self.st.nr_pinned = self.st.nr_pinned.wrapping_add_signed(delta);
    }

    /// Sets the listed mark of the map at `start` and leaves the set of
    /// modified extents as it is, for [`TreeInner::check`] to find (tests
    /// only).
    pub(crate) fn mark_listed(&mut self, start: u64, listed: bool) {
        self.with_node_at(start, |_, body, _| body.listed = listed);
    }
}

/// A map the shrinker took out of a tree, still in its tree node: freeing
/// it is left for after the lock is dropped.
pub(crate) struct EvictedMap(RBTreeNode<MapRange, MapBody>);

impl EvictedMap {
    /// Frees the map; returns what it was.
    pub(crate) fn into_map(self) -> ExtentMap {
        let (range, body) = self.0.to_key_value();
        ExtentMap::load(&range, &body)
    }
}

/// What one [`TreeInner::evict_batch`] did.
pub(crate) struct EvictBatch {
    /// Maps looked at.
    pub(crate) examined: u64,
    /// Maps taken out (in the stash).
    pub(crate) evicted: usize,
    /// Where to resume (a file offset), or `None` at the end of the tree.
    pub(crate) next: Option<u64>,
}

impl TreeInner {
    /// Takes unpinned maps out of the tree in file order, for the shrinker
    /// (the loop of `btrfs_scan_inode()`): from the map containing or
    /// following file offset `from`, looking at no more than `budget` maps
    /// and taking no more than `stash` holds. The taken maps go to `stash`
    /// in their nodes so the caller frees them after unlocking. A map fsync
    /// has still to log (on the set of modified extents, or being logged)
    /// marks the inode for a full fsync, whatever its generation: emfs has
    /// no transaction commits that would have persisted it otherwise (btrfs
    /// compares the map's generation with the last committed transaction's
    /// instead).
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
        let TreeInner { maps, st } = self;
        let mut cursor = maps.cursor_lower_bound_mut(&MapRange::point(from));
        while let Some(c) = cursor {
            let (range, body) = c.current();
            let range = *range;
            if batch.examined >= budget || batch.evicted >= stash.len() {
                batch.next = Some(range.start);
                break;
            }
            batch.examined += 1;
            if body.is_pinned() {
                cursor = c.move_next();
                continue;
            }
            if body.is_unlogged() {
                st.full_sync = true;
            }
            drop(st.unlinked(&range, body));
            let (next, node) = c.remove_current();
            stash[batch.evicted] = Some(EvictedMap(node));
            batch.evicted += 1;
            // `remove_current` steps back when there is nothing after.
            cursor = next.filter(|n| n.current().0.start > range.start);
        }
        batch
    }
}

impl Drop for TreeInner {
    fn drop(&mut self) {
        // Give the owner's counts back for whatever is still cached; the
        // maps are freed with the tree, O(n).
        drop(self.take_all());
    }
}
