// SPDX-License-Identifier: GPL-2.0

//! Allocation scopes, reclaim annotations for lockdep, and fault injection.
//!
//! The kernel crate has no `GFP_NOFS`. The kernel's own guidance
//! (Documentation/core-api/gfp_mask-from-fs-io.rst) prefers the scope API
//! anyway: inside [`nofs`], every allocation of the task behaves as
//! `GFP_NOFS`, so reclaim it triggers does not recurse into filesystems
//! (no inode eviction, no `release_folio` waits, no waiting for writeback
//! under memcg reclaim).
//!
//! # The rule for filesystem locks
//!
//! Reclaim enters emfs (inode eviction from the inode shrinker, writeback
//! completion that reclaim waits for), and those paths take the
//! filesystem's locks (`FileMap::records`, `Disk::free`). So a task that
//! holds one of those locks must not make an allocation that may enter
//! filesystem reclaim: every critical section that allocates under them
//! runs in [`nofs`], or allocates before taking the lock. Paths that
//! reclaim enters without `__GFP_FS` (`release_folio`, `invalidate_folio`,
//! the shrinker's callbacks) take none of these locks at all.
//!
//! [`lockdep_reclaim_takes`] teaches lockdep the reclaim side of the rule,
//! so that any allocation breaking it is reported as a possible deadlock
//! by the first test that makes it, whether or not reclaim ran then.

use kernel::{prelude::*, types::NotThreadSafe};

use crate::glue::ffi;

/// Runs `f` in a no-fs allocation scope (`memalloc_nofs_save()` /
/// `memalloc_nofs_restore()`): every allocation `f` makes behaves as
/// `GFP_NOFS`. Scopes nest, and the task's flag is back to what it was
/// when this returns, whatever `f` did (provided any [`NoFsScope`] it
/// entered was dropped inside it, see there).
///
/// The form to use around a critical section under a filesystem lock:
///
/// ```ignore
/// nofs(|| records.lock().punch(start, end, &mut freed))?;
/// ```
pub(crate) fn nofs<T>(f: impl FnOnce() -> T) -> T {
    // Local to this frame: dropped after `f` returns, and only then, so
    // this scope always closes after every scope `f` opened and closed.
    let _scope = NoFsScope::enter();
    f()
}

/// Returns whether the current task is in a no-fs allocation scope
/// (`PF_MEMALLOC_NOFS`).
pub(crate) fn in_nofs_scope() -> bool {
    // SAFETY: Reads the current task's flags; always allowed.
    unsafe { ffi::emfs_memalloc_nofs_active() }
}

/// While alive, the current task's allocations do not enter filesystem
/// reclaim (`memalloc_nofs_save()` / `memalloc_nofs_restore()`). Prefer
/// [`nofs`], which cannot get the order wrong.
///
/// # Ordering rule
///
/// Scopes must close in the reverse order they were entered. Dropping
/// restores the flag saved on entry, so dropping an outer scope before an
/// inner one clears the flag while the inner one is still alive, and the
/// inner one's drop then sets it again for good: the task keeps
/// `PF_MEMALLOC_NOFS` after every scope is gone. So keep a scope in a
/// local binding of the function that entered it (`let _scope = ...`,
/// never `let _ = ...`, which drops it at once), and never return it,
/// store it in a struct or move it into a closure.
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
    /// Enters a no-fs allocation scope. Scopes nest; see the ordering rule.
    #[must_use = "the scope ends when this value is dropped"]
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

/// Tells lockdep that filesystem reclaim takes the locks `take` takes, as
/// `dma_resv_lockdep()` does for reservation locks: `take` runs inside
/// lockdep's `fs_reclaim` map (`fs_reclaim_acquire(GFP_KERNEL)`), so
/// lockdep records "reclaim, then these locks". From then on, an
/// allocation that may enter filesystem reclaim made while one of the
/// locks is held closes a cycle and is reported as a possible deadlock,
/// whether or not reclaim really ran into the lock then.
///
/// Lockdep's classes are per place of initialisation, so taking one lock
/// of a class teaches it for all of them; taking it again costs a lookup.
/// Does nothing (and does not run `take`) without `CONFIG_PROVE_LOCKING`,
/// or inside a no-fs scope, where the annotation itself is void.
///
/// `take` must only lock and unlock: it must not allocate (that would be
/// reclaim recursing into itself), and the caller must hold none of the
/// locks it takes.
pub(crate) fn lockdep_reclaim_takes(take: impl FnOnce()) {
    // SAFETY: Returns a compile-time constant.
    let proving = unsafe { ffi::emfs_lockdep_proving() };
    if !proving || in_nofs_scope() {
        return;
    }
    // SAFETY: Only acquires lockdep's map of filesystem reclaim for the
    // current task; released just below, on the same task.
    unsafe { ffi::emfs_fs_reclaim_acquire() };
    take();
    // SAFETY: Releases what the acquire above took, on the same task.
    unsafe { ffi::emfs_fs_reclaim_release() };
}

/// For tests: whether lockdep is checking locking. `None` if the kernel
/// was built without it (`CONFIG_PROVE_LOCKING`); `Some(false)` once it has
/// reported a problem, after which it checks nothing more (`debug_locks`).
#[cfg(CONFIG_KUNIT = "y")]
pub(crate) fn lockdep_checking() -> Option<bool> {
    // SAFETY: Returns a compile-time constant.
    let proving = unsafe { ffi::emfs_lockdep_proving() };
    if !proving {
        return None;
    }
    // SAFETY: Reads a global flag; always allowed.
    let on = unsafe { ffi::emfs_debug_locks() };
    Some(on)
}

/// Returns whether the module's next allocation should fail, as decided by
/// its fault injection attribute (and by the task's `fail-nth`).
pub(crate) fn should_fail_alloc() -> bool {
    // SAFETY: Reads and updates the module's static fault attribute, which
    // `should_fail_ex` synchronises itself.
    unsafe { ffi::emfs_should_fail_alloc() }
}

/// Returns whether allocations of the current task may be failed on
/// purpose: the kernel's fault injection is on for it (`make-it-fail`), or
/// the module's own is armed. Best-effort steps (a split, a merge) may then
/// have been skipped; tests that see one skipped give up with `ENOMEM`.
#[cfg(CONFIG_KUNIT = "y")]
pub(crate) fn fault_injection_active() -> bool {
    // SAFETY: Reads the current task's flag and the module's attribute.
    unsafe { ffi::emfs_fault_injection_active() }
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
        unsafe { ffi::emfs_fail_alloc_arm(interval.into(), times) };
        Self(())
    }
}

impl Drop for FailAllocs {
    fn drop(&mut self) {
        // SAFETY: Writes a field of the module's static fault attribute.
        unsafe { ffi::emfs_fail_alloc_disarm() };
    }
}

#[kernel::macros::kunit_tests(emfs_alloc)]
mod tests {
    use super::*;
    use crate::glue::kunit::kunit_ensure;

    #[test]
    fn nofs_nests_and_restores() -> Result {
        kunit_ensure!(!in_nofs_scope());
        let inside = nofs(|| {
            let outer = in_nofs_scope();
            let inner = nofs(in_nofs_scope);
            // Still in the outer scope after the inner one closed.
            outer && inner && in_nofs_scope()
        });
        kunit_ensure!(inside);
        kunit_ensure!(!in_nofs_scope());
        Ok(())
    }

    #[test]
    fn nofs_guards_dropped_in_order_restore() -> Result {
        kunit_ensure!(!in_nofs_scope());
        {
            let _outer = NoFsScope::enter();
            {
                let _inner = NoFsScope::enter();
            }
            kunit_ensure!(in_nofs_scope());
        }
        kunit_ensure!(!in_nofs_scope());
        Ok(())
    }
}
