// SPDX-License-Identifier: GPL-2.0

//! Workqueue pieces the kernel crate lacks: workqueues of the module's own,
//! and cancelling or flushing a work item.

use core::{
    ops::Deref,
    ptr::NonNull, //
};
use kernel::{
    bindings,
    prelude::*,
    str::CStr,
    sync::Arc,
    workqueue::{
        HasDelayedWork,
        HasWork,
        Queue,
        Work,
        WorkItem, //
    },
};

/// Returns the default unbound system workqueue (`system_dfl_wq`).
///
/// Workers are not bound to a CPU; this is the queue the kernel recommends
/// for work that does not care where it runs (`system_unbound()` in the
/// kernel crate names the deprecated `system_unbound_wq`).
pub(crate) fn system_dfl() -> &'static Queue {
    // SAFETY: `system_dfl_wq` is a C global, set up at boot before any module
    // loads and never destroyed.
    unsafe { Queue::from_raw(bindings::system_dfl_wq) }
}

/// The `work_struct` of the work item `this`.
fn raw_work<T, const ID: u64>(this: &Arc<T>) -> *mut bindings::work_struct
where
    T: WorkItem<ID, Pointer = Arc<T>> + HasWork<T, ID>,
{
    // SAFETY: `Arc::as_ptr` points at a live `T`, so `raw_get_work` yields a
    // pointer to its `Work` field and `raw_get` one to the `work_struct`.
    unsafe { Work::raw_get(T::raw_get_work(Arc::as_ptr(this).cast_mut())) }
}

/// Waits until the queued or running run of `this`, if any, has finished
/// (`flush_work()`). Returns whether it had to wait.
pub(crate) fn flush<T, const ID: u64>(this: &Arc<T>) -> bool
where
    T: WorkItem<ID, Pointer = Arc<T>> + HasWork<T, ID>,
{
    // SAFETY: The `work_struct` belongs to a live `T` and was initialised by
    // its `Work` field; flushing does not change its ownership.
    unsafe { bindings::flush_work(raw_work(this)) }
}

/// The `delayed_work` of the delayed work item `this`.
fn raw_delayed_work<T, const ID: u64>(this: &Arc<T>) -> *mut bindings::delayed_work
where
    T: WorkItem<ID, Pointer = Arc<T>> + HasDelayedWork<T, ID>,
{
    // SAFETY: By `HasDelayedWork`, the `work_struct` of `this` is the `work`
    // field of a `delayed_work`, so stepping back to its container stays in
    // the same live `T`.
    unsafe { kernel::container_of!(raw_work(this), bindings::delayed_work, work) }
}

/// Cancels the delayed run of `this`, whether its timer is still pending or
/// it is queued, and waits for a running one to finish
/// (`cancel_delayed_work_sync()`). Returns whether a pending run was
/// cancelled; its reference to `this` is released then.
///
/// Whoever queues `this` must be stopped first, or it may be queued again
/// right after.
pub(crate) fn cancel_delayed_sync<T, const ID: u64>(this: &Arc<T>) -> bool
where
    T: WorkItem<ID, Pointer = Arc<T>> + HasDelayedWork<T, ID>,
{
    // SAFETY: The `delayed_work` belongs to a live `T` and was initialised by
    // its `DelayedWork` field.
    let cancelled = unsafe { bindings::cancel_delayed_work_sync(raw_delayed_work(this)) };
    if cancelled {
        // SAFETY: Queuing an `Arc<T>` hands the queue one reference, made by
        // `Arc::into_raw` on this same object; a cancelled run never gives it
        // back through `run`, so it is released here, exactly once.
        drop(unsafe { Arc::from_raw(Arc::as_ptr(this)) });
    }
    cancelled
}

/// Runs the delayed run of `this` now if its timer is pending, and waits
/// until it has finished (`flush_delayed_work()`). Returns whether it had
/// to wait.
pub(crate) fn flush_delayed<T, const ID: u64>(this: &Arc<T>) -> bool
where
    T: WorkItem<ID, Pointer = Arc<T>> + HasDelayedWork<T, ID>,
{
    // SAFETY: The `delayed_work` belongs to a live `T` and was initialised by
    // its `DelayedWork` field; flushing does not change its ownership.
    unsafe { bindings::flush_delayed_work(raw_delayed_work(this)) }
}

use crate::glue::ffi;

/// A workqueue of the module's own (`alloc_workqueue()`), destroyed when
/// dropped.
///
/// Dropping it drains what is queued (`destroy_workqueue()`), but a delayed
/// item whose timer is still pending must have been cancelled first, and
/// it must not be dropped from one of its own work items.
///
/// # Invariants
///
/// `wq` came from a successful `alloc_workqueue()` and is destroyed only
/// when `self` drops.
pub(crate) struct OwnedQueue {
    wq: NonNull<bindings::workqueue_struct>,
}

// SAFETY: A workqueue may be used and destroyed from any task.
unsafe impl Send for OwnedQueue {}
// SAFETY: Queueing on a workqueue is thread-safe.
unsafe impl Sync for OwnedQueue {}

impl OwnedQueue {
    /// An unbound workqueue named `name` that eviction can rely on near
    /// OOM: `WQ_MEM_RECLAIM` gives it a rescuer thread, so its items run
    /// even when no new kworker can be created. At most `max_active` of its
    /// items run at once. `ENOMEM`.
    pub(crate) fn new_reclaim(name: &CStr, max_active: i32) -> Result<Self> {
        let flags = bindings::wq_flags_WQ_UNBOUND | bindings::wq_flags_WQ_MEM_RECLAIM;
        // SAFETY: `name` is a valid NUL-terminated string; the workqueue
        // copies it.
        let wq = unsafe { ffi::emfs_alloc_workqueue(name.as_char_ptr(), flags, max_active) };
        // INVARIANT: Non-null means allocated.
        Ok(Self {
            wq: NonNull::new(wq).ok_or(ENOMEM)?,
        })
    }
}

impl Deref for OwnedQueue {
    type Target = Queue;

    fn deref(&self) -> &Queue {
        // SAFETY: By the type invariant the workqueue lives as long as `self`.
        unsafe { Queue::from_raw(self.wq.as_ptr()) }
    }
}

impl Drop for OwnedQueue {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the workqueue was allocated and is
        // destroyed only here.
        unsafe { bindings::destroy_workqueue(self.wq.as_ptr()) };
    }
}
