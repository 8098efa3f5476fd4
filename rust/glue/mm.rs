// SPDX-License-Identifier: GPL-2.0

//! Memory accounting queries.

use crate::glue::ffi;

/// Returns whether the current task is reclaiming memory for an
/// allocation of its own (direct reclaim): it runs with `PF_MEMALLOC`, as
/// `__perform_reclaim()` sets it, and is not kswapd (`PF_KSWAPD`, what
/// `current_is_kswapd()` tests). Only pages a task frees itself count as
/// its reclaim's progress.
pub(crate) fn in_direct_reclaim() -> bool {
    // SAFETY: Reads the current task's flags; always allowed.
    let flags = unsafe { ffi::emfs_current_flags() };
    flags & (kernel::bindings::PF_MEMALLOC | kernel::bindings::PF_KSWAPD)
        == kernel::bindings::PF_MEMALLOC
}

/// Bytes in slab pages, system wide, as the page allocator accounts them
/// (`NR_SLAB_UNRECLAIMABLE_B + NR_SLAB_RECLAIMABLE_B`). The per-CPU parts of
/// the counters are folded in lazily, so differences are exact only to a
/// few dozen pages.
pub(crate) fn slab_bytes() -> u64 {
    // SAFETY: Reads global counters; always allowed.
    unsafe { ffi::emfs_slab_bytes() }
}
