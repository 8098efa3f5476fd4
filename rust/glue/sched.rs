// SPDX-License-Identifier: GPL-2.0

//! Scheduler queries and delays the kernel crate does not wrap.

use crate::glue::ffi;

/// Returns whether the current task should give the CPU up
/// (`need_resched()`). Callable from any context.
pub(crate) fn need_resched() -> bool {
    // SAFETY: Reads the current task's flags; always allowed.
    unsafe { ffi::emfs_need_resched() }
}

/// Yields the CPU if a reschedule is due (`cond_resched()`).
///
/// Must be called from process context with no spinlock held; it may sleep.
pub(crate) fn cond_resched() {
    // SAFETY: The caller is in sleepable context, as documented above;
    // with CONFIG_DEBUG_ATOMIC_SLEEP a violation is reported, not undefined.
    unsafe { ffi::emfs_cond_resched() }
}

/// Busy-waits for `msecs` milliseconds (`mdelay()`). Does not sleep, so it
/// may be used with spinlocks held; meant for tests.
pub(crate) fn mdelay(msecs: u32) {
    // SAFETY: `mdelay` only spins; callable from any context.
    unsafe { ffi::emfs_mdelay(msecs) }
}

/// Returns the number of online CPUs.
pub(crate) fn num_online_cpus() -> u32 {
    // SAFETY: Reads a global counter; always allowed.
    unsafe { ffi::emfs_num_online_cpus() }
}
