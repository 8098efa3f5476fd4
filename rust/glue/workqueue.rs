// SPDX-License-Identifier: GPL-2.0

//! Workqueue pieces the kernel crate lacks.

use kernel::{
    bindings,
    sync::Arc,
    workqueue::{
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

/// Cancels the queued run of `this`, if any, and waits for a running one to
/// finish (`cancel_work_sync()`), which the kernel crate does not offer.
/// Returns whether a queued run was cancelled; its reference to `this`,
/// taken when it was queued, is released then.
///
/// Whoever queues `this` must be stopped first, or it may be queued again
/// right after.
pub(crate) fn cancel_sync<T, const ID: u64>(this: &Arc<T>) -> bool
where
    T: WorkItem<ID, Pointer = Arc<T>> + HasWork<T, ID>,
{
    // SAFETY: The `work_struct` belongs to a live `T` and was initialised by
    // its `Work` field.
    let cancelled = unsafe { bindings::cancel_work_sync(raw_work(this)) };
    if cancelled {
        // SAFETY: Queuing an `Arc<T>` hands the queue one reference, made by
        // `Arc::into_raw` on this same object; a cancelled run never gives it
        // back through `run`, so it is released here, exactly once.
        drop(unsafe { Arc::from_raw(Arc::as_ptr(this)) });
    }
    cancelled
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
