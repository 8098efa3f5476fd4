// SPDX-License-Identifier: GPL-2.0

//! The C floor of the extent map benchmark (`rust/bench_floor.c`): maps
//! laid out like btrfs's `struct extent_map` in a C rb-tree, looked up the
//! way btrfs does.

use core::ptr::NonNull;
use kernel::prelude::*;

use crate::glue::ffi;

/// A C extent map tree.
///
/// # Invariants
///
/// `tree` comes from `emfs_floor_create()` and is destroyed only by `drop`.
pub(crate) struct FloorTree {
    tree: NonNull<ffi::emfs_floor_tree>,
}

// SAFETY: The C tree has no thread affinity; it locks itself.
unsafe impl Send for FloorTree {}
// SAFETY: Every C entry point takes the tree's rwlock.
unsafe impl Sync for FloorTree {}

impl FloorTree {
    /// Creates an empty tree with its own kmem_cache. `ENOMEM` on failure.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: No preconditions; returns NULL on allocation failure.
        let tree = unsafe { ffi::emfs_floor_create() };
        // INVARIANT: A non-NULL result is a live tree.
        Ok(Self {
            tree: NonNull::new(tree).ok_or(ENOMEM)?,
        })
    }

    /// Inserts a map (allocating it first, as btrfs does). `EEXIST` on
    /// overlap, `ENOMEM`.
    pub(crate) fn insert(&self, start: u64, len: u64, disk_bytenr: u64) -> Result {
        // SAFETY: By the type invariant the tree is alive.
        let ret = unsafe { ffi::emfs_floor_insert(self.tree.as_ptr(), start, len, disk_bytenr) };
        kernel::error::to_result(ret)
    }

    /// Looks up a map containing each offset; returns how many were found.
    pub(crate) fn lookup_all(&self, offsets: &[u64]) -> u64 {
        // SAFETY: By the type invariant the tree is alive; `offsets` is a
        // valid slice for the duration of the call.
        unsafe { ffi::emfs_floor_lookup_all(self.tree.as_ptr(), offsets.as_ptr(), offsets.len()) }
    }
}

impl Drop for FloorTree {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the tree is alive and this is the
        // only place that destroys it.
        unsafe { ffi::emfs_floor_destroy(self.tree.as_ptr()) };
    }
}
