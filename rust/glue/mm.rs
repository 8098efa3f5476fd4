// SPDX-License-Identifier: GPL-2.0

//! Memory accounting queries.

mod ffi {
    unsafe extern "C" {
        pub(super) fn emfs_slab_bytes() -> u64;
    }
}

/// Bytes in slab pages, system wide, as the page allocator accounts them
/// (`NR_SLAB_UNRECLAIMABLE_B + NR_SLAB_RECLAIMABLE_B`). The per-CPU parts of
/// the counters are folded in lazily, so differences are exact only to a
/// few dozen pages.
pub(crate) fn slab_bytes() -> u64 {
    // SAFETY: Reads global counters; always allowed.
    unsafe { ffi::emfs_slab_bytes() }
}
