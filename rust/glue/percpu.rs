// SPDX-License-Identifier: GPL-2.0

//! A count kept per CPU: `struct percpu_counter` (lib/percpu_counter.c).
//!
//! For statistics that hot paths on every CPU update: an increment touches
//! the local CPU's slot only, so readers of a shared structure on two CPUs
//! do not bounce a cache line between them as they would with one atomic.
//! Reading folds every CPU's slot ([`PerCpuCounter::sum`]), which is slow;
//! it is for statistics files and tests.

use kernel::{
    bindings,
    error::to_result,
    prelude::*,
    sync::LockClassKey,
    types::Opaque, //
};

/// How far a CPU's slot may drift before it is folded into the shared
/// count under the counter's lock: statistics are only summed, never
/// compared against the approximate count, so folds are kept rare.
const BATCH: i32 = 1 << 30;

/// A `struct percpu_counter`.
///
/// # Invariants
///
/// `inner` was initialised by `__percpu_counter_init_many()` and is
/// destroyed only by `Drop`.
#[pin_data(PinnedDrop)]
pub(crate) struct PerCpuCounter {
    #[pin]
    inner: Opaque<bindings::percpu_counter>,
}

// SAFETY: The counter's operations are safe from any CPU and thread; the
// per-CPU slots are reached with `this_cpu` operations and the shared count
// under the counter's own spinlock.
unsafe impl Send for PerCpuCounter {}
// SAFETY: See `Send`.
unsafe impl Sync for PerCpuCounter {}

impl PerCpuCounter {
    /// A counter at zero (`percpu_counter_init(..., GFP_KERNEL)`). Fails
    /// with `ENOMEM`.
    pub(crate) fn new(key: Pin<&'static LockClassKey>) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            inner <- Opaque::try_ffi_init(|slot: *mut bindings::percpu_counter| {
                // SAFETY: `slot` is valid for writes and not in use; `key`
                // is static, so it outlives the counter's lock as lockdep
                // requires.
                to_result(unsafe {
                    bindings::__percpu_counter_init_many(
                        slot,
                        0,
                        bindings::GFP_KERNEL,
                        1,
                        key.as_ptr(),
                    )
                })
            }),
        })
    }

    /// Adds `amount` to this CPU's slot (`percpu_counter_add()`); callable
    /// from any context but NMI.
    pub(crate) fn add(&self, amount: i64) {
        // SAFETY: By the type invariant the counter is initialised.
        unsafe { bindings::percpu_counter_add_batch(self.inner.get(), amount, BATCH) }
    }

    /// The exact count, every CPU's slot folded in (`percpu_counter_sum()`).
    pub(crate) fn sum(&self) -> i64 {
        // SAFETY: By the type invariant the counter is initialised.
        unsafe { bindings::__percpu_counter_sum(self.inner.get()) }
    }
}

#[pinned_drop]
impl PinnedDrop for PerCpuCounter {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariant the counter is initialised, and this
        // is its last use.
        unsafe { bindings::percpu_counter_destroy_many(self.inner.get(), 1) }
    }
}

/// Creates a [`PerCpuCounter`] initialiser with a lock class of its own
/// for this call site.
#[macro_export]
macro_rules! new_percpu_counter {
    () => {
        $crate::glue::percpu::PerCpuCounter::new(::kernel::static_lock_class!())
    };
}
pub(crate) use new_percpu_counter;
