// SPDX-License-Identifier: GPL-2.0

//! Workqueue pieces the kernel crate lacks.

use kernel::{
    bindings,
    workqueue::Queue, //
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
