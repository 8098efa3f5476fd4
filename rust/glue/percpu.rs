// SPDX-License-Identifier: GPL-2.0

//! A count kept per CPU, for statistics that hot paths on every CPU
//! update: a `u64` from `alloc_percpu()`, incremented with `this_cpu_add()`
//! (one instruction on the local CPU's copy, no atomic, no shared cache
//! line) and summed over the possible CPUs when read, as filesystems keep
//! their statistics (xfs's `xfsstats`, for one). The sum is exact once the
//! updates have stopped; while they go on it is a snapshot, which is what
//! a statistic needs.
//!
//! `struct percpu_counter` does the same with a shared approximate count
//! and a compare-and-exchange per update; a statistic that is only ever
//! summed has no use for either.

use core::ptr::NonNull;
use kernel::{
    bindings,
    cpu::nr_cpu_ids,
    prelude::*, //
};

use crate::glue::ffi;

/// A `u64` per CPU.
///
/// # Invariants
///
/// `ptr` is a per-CPU address returned by `alloc_percpu(u64)`, freed only
/// by `Drop`. It is never dereferenced as it is: only through
/// `this_cpu_add()` and `per_cpu_ptr()`.
pub(crate) struct PerCpuU64 {
    ptr: NonNull<u64>,
}

// SAFETY: The per-CPU memory has no thread affinity; each CPU updates its
// own copy with `this_cpu_add()`, which is safe against preemption and
// interrupts, and readers only read.
unsafe impl Send for PerCpuU64 {}
// SAFETY: See `Send`.
unsafe impl Sync for PerCpuU64 {}

impl PerCpuU64 {
    /// A count at zero on every CPU (`alloc_percpu()` zeroes). Fails with
    /// `ENOMEM`.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: No preconditions; may sleep, as `new` may.
        let ptr = unsafe { ffi::emfs_alloc_percpu_u64() };
        // INVARIANT: A non-NULL result is a live per-CPU allocation.
        Ok(Self {
            ptr: NonNull::new(ptr).ok_or(ENOMEM)?,
        })
    }

    /// Adds `n` to this CPU's copy (`this_cpu_add()`); callable from any
    /// context. Written out as `this_cpu_add()` compiles on SMP x86-64
    /// (`percpu_add_op()` in arch/x86/include/asm/percpu.h), because a call
    /// per lookup would cost as much as the lookup's statistics are worth.
    #[cfg(all(CONFIG_X86_64, CONFIG_SMP, not(CONFIG_UML)))]
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        // SAFETY: `ptr` is a live per-CPU `u64` (type invariant); one `add`
        // through `%gs` hits this CPU's copy, indivisible by preemption or irq.
        unsafe {
            core::arch::asm!(
                "add qword ptr gs:[{p}], {n}",
                p = in(reg) self.ptr.as_ptr(),
                n = in(reg) n,
                options(nostack),
            )
        }
    }

    /// Adds `n` to this CPU's copy (`this_cpu_add()`); callable from any
    /// context.
    #[cfg(not(all(CONFIG_X86_64, CONFIG_SMP, not(CONFIG_UML))))]
    pub(crate) fn add(&self, n: u64) {
        // SAFETY: By the type invariant `ptr` is a live per-CPU address.
        unsafe { ffi::emfs_this_cpu_add_u64(self.ptr.as_ptr(), n) }
    }

    /// The sum of every possible CPU's copy.
    pub(crate) fn sum(&self) -> u64 {
        let mut sum = 0u64;
        for cpu in 0..nr_cpu_ids() {
            // SAFETY: Reads the possible-CPU mask; any CPU number is fine.
            if !unsafe { ffi::emfs_cpu_possible(cpu) } {
                continue;
            }
            // SAFETY: By the type invariant `ptr` is a live per-CPU
            // address, and `cpu` is possible, so it has a copy.
            let copy = unsafe { ffi::emfs_per_cpu_ptr_u64(self.ptr.as_ptr(), cpu) };
            // Its CPU may be adding to the copy meanwhile: it is read once,
            // whole (`READ_ONCE()`); a 64-bit load does not tear on the
            // 64-bit architectures Rust kernels build for.
            // SAFETY: `copy` is valid and aligned for a `u64`.
            let value = unsafe { copy.read_volatile() };
            sum = sum.wrapping_add(value);
        }
        sum
    }
}

impl Drop for PerCpuU64 {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `ptr` is live and this is its only
        // release.
        unsafe { bindings::free_percpu(self.ptr.as_ptr().cast()) }
    }
}
