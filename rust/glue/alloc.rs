// SPDX-License-Identifier: GPL-2.0

//! Allocation scopes.
//!
//! The kernel crate has no `GFP_NOFS`. The kernel's own guidance
//! (Documentation/core-api/gfp_mask-from-fs-io.rst) prefers the scope API
//! anyway: inside a [`NoFsScope`], every allocation of the task behaves as
//! `GFP_NOFS`, so reclaim it triggers does not recurse into filesystems.

use kernel::{prelude::*, types::NotThreadSafe};

mod ffi {
    unsafe extern "C" {
        pub(super) fn emfs_memalloc_nofs_save() -> u32;
        pub(super) fn emfs_memalloc_nofs_restore(flags: u32);
    }
}

/// While alive, the current task's allocations do not enter filesystem
/// reclaim (`memalloc_nofs_save()` / `memalloc_nofs_restore()`).
///
/// # Invariants
///
/// `saved` is what `memalloc_nofs_save()` returned on this task; the scope
/// is not sent to another task.
pub(crate) struct NoFsScope {
    saved: u32,
    _not_send: NotThreadSafe,
}

impl NoFsScope {
    /// Enters a no-fs allocation scope. Scopes nest.
    pub(crate) fn enter() -> Self {
        // SAFETY: Only changes the current task's allocation flags; always
        // allowed.
        let saved = unsafe { ffi::emfs_memalloc_nofs_save() };
        // INVARIANT: `saved` comes from this task's save.
        Self {
            saved,
            _not_send: NotThreadSafe,
        }
    }
}

impl Drop for NoFsScope {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `saved` came from the matching save on
        // this same task.
        unsafe { ffi::emfs_memalloc_nofs_restore(self.saved) };
    }
}

mod fault_ffi {
    unsafe extern "C" {
        pub(super) fn emfs_should_fail_alloc() -> bool;
        pub(super) fn emfs_fail_alloc_arm(interval: kernel::ffi::c_ulong, times: i32);
        pub(super) fn emfs_fail_alloc_disarm();
        pub(super) fn emfs_fault_injection_active() -> bool;
    }
}

/// Returns whether the module's next allocation should fail, as decided by
/// its fault injection attribute (and by the task's `fail-nth`).
pub(crate) fn should_fail_alloc() -> bool {
    // SAFETY: Reads and updates the module's static fault attribute, which
    // `should_fail_ex` synchronises itself.
    unsafe { fault_ffi::emfs_should_fail_alloc() }
}

/// Returns whether allocations of the current task may be failed on
/// purpose: the kernel's fault injection is on for it (`make-it-fail`), or
/// the module's own is armed. Best-effort steps (a split, a merge) may then
/// have been skipped; tests that see one skipped give up with `ENOMEM`.
#[cfg(CONFIG_KUNIT = "y")]
pub(crate) fn fault_injection_active() -> bool {
    // SAFETY: Reads the current task's flag and the module's attribute.
    unsafe { fault_ffi::emfs_fault_injection_active() }
}

/// For tests: the outcome of an operation, with its `ENOMEM` under fault
/// injection passed up as the test's own error.
#[cfg(CONFIG_KUNIT = "y")]
pub(crate) fn outcome<T>(r: Result<T>) -> Result<Result<T>> {
    match r {
        Err(e) if e == ENOMEM && fault_injection_active() => Err(ENOMEM),
        r => Ok(r),
    }
}

/// For tests: the error an operation failed with, if any, as [`outcome`].
#[cfg(CONFIG_KUNIT = "y")]
pub(crate) fn refusal<T>(r: Result<T>) -> Result<Option<Error>> {
    Ok(outcome(r)?.err())
}

/// While alive, makes every `interval`-th allocation of the module fail, at
/// most `times` times. For tests; ignored without CONFIG_FAULT_INJECTION.
pub(crate) struct FailAllocs(());

impl FailAllocs {
    /// Arms the module's fault injection.
    pub(crate) fn arm(interval: u16, times: i32) -> Self {
        // SAFETY: Writes fields of the module's static fault attribute.
        unsafe { fault_ffi::emfs_fail_alloc_arm(interval.into(), times) };
        Self(())
    }
}

impl Drop for FailAllocs {
    fn drop(&mut self) {
        // SAFETY: Writes a field of the module's static fault attribute.
        unsafe { fault_ffi::emfs_fail_alloc_disarm() };
    }
}
