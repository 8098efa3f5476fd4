// SPDX-License-Identifier: GPL-2.0

//! Tracepoints of the `emfs` trace system.
//!
//! An out-of-tree module cannot add its events to the kernel crate's
//! bindings, so `kernel::tracepoint::declare_trace!` is out of reach. The
//! events are defined with `TRACE_EVENT` in `rust/emfs_trace.h`, instantiated
//! in `rust/helpers.c`, and reached from Rust through one plain C function
//! per event. When an event is disabled, that function returns after
//! testing the tracepoint's static key.

use crate::glue::ffi;

// Each wrapper below calls one C function that only records its integer
// arguments in the trace buffers, callable from any context (including
// with spinlocks held); that is the whole safety argument of each.

/// Fires `emfs:em_shrinker_scan_enter`.
pub(crate) fn em_shrinker_scan_enter(owner: u64, nr_to_scan: u64, evictable: i64) {
    // SAFETY: See above.
    unsafe { ffi::emfs_trace_em_shrinker_scan_enter(owner, nr_to_scan, evictable) }
}

/// Fires `emfs:em_shrinker_scan_exit`.
pub(crate) fn em_shrinker_scan_exit(owner: u64, dropped: u64, evictable: i64) {
    // SAFETY: See above.
    unsafe { ffi::emfs_trace_em_shrinker_scan_exit(owner, dropped, evictable) }
}

/// Fires `emfs:em_shrinker_remove_em`.
pub(crate) fn em_shrinker_remove_em(ino: u64, start: u64, len: u64, flags: u32) {
    // SAFETY: See above.
    unsafe { ffi::emfs_trace_em_shrinker_remove_em(ino, start, len, flags) }
}

/// Fires `emfs:em_handle_exist`: adding `em` met `existing` while loading
/// `[start, start + len)`.
pub(crate) fn em_handle_exist(
    ino: u64,
    existing: (u64, u64),
    em: (u64, u64),
    start: u64,
    len: u64,
) {
    // SAFETY: See above.
    unsafe { ffi::emfs_trace_em_handle_exist(ino, existing.0, existing.1, em.0, em.1, start, len) }
}

/// Fires `emfs:em_merge`: the map `[start, start + len)` absorbed its
/// neighbour `absorbed`.
pub(crate) fn em_merge(ino: u64, start: u64, len: u64, absorbed: (u64, u64)) {
    // SAFETY: See above.
    unsafe { ffi::emfs_trace_em_merge(ino, start, len, absorbed.0, absorbed.1) }
}

/// Fires `emfs:em_cache_miss`: a lookup of `[start, start + len)` in inode
/// `ino` found no cached extent map.
///
/// May be called from any context, including with spinlocks held.
pub(crate) fn em_cache_miss(ino: u64, start: u64, len: u64) {
    // SAFETY: The C wrapper takes plain integers and only records them in
    // the trace buffers; it is callable from any context.
    unsafe { ffi::emfs_trace_em_cache_miss(ino, start, len) }
}

/// Returns whether `emfs:em_cache_miss` has at least one probe attached (it
/// is enabled in tracefs, or a probe is registered).
pub(crate) fn em_cache_miss_enabled() -> bool {
    // SAFETY: Reading a tracepoint's static key is always allowed.
    unsafe { ffi::emfs_trace_em_cache_miss_enabled() }
}

#[cfg(not(emfs_library))]
#[kernel::macros::kunit_tests(emfs_glue)]
mod tests {
    use super::*;
    use crate::glue::kunit::{
        kunit_ensure,
        kunit_ensure_eq, //
    };
    use core::ffi::c_void;
    use kernel::prelude::*;
    use kernel::sync::atomic::{
        Atomic,
        Relaxed, //
    };

    use crate::glue::ffi;

    /// What the test probe saw: how many events, and the last arguments.
    struct Seen {
        hits: Atomic<u64>,
        ino: Atomic<u64>,
        start: Atomic<u64>,
        len: Atomic<u64>,
    }

    impl Seen {
        fn new() -> Self {
            Self {
                hits: Atomic::new(0),
                ino: Atomic::new(0),
                start: Atomic::new(0),
                len: Atomic::new(0),
            }
        }
    }

    /// # Safety
    ///
    /// `data` must point to a live [`Seen`].
    unsafe extern "C" fn probe(data: *mut c_void, ino: u64, start: u64, len: u64) {
        // SAFETY: The probe is registered with a pointer to a `Seen` that
        // outlives the registration (see `Registration::drop`).
        let seen = unsafe { &*data.cast::<Seen>() };
        seen.ino.store(ino, Relaxed);
        seen.start.store(start, Relaxed);
        seen.len.store(len, Relaxed);
        seen.hits.add(1, Relaxed);
    }

    /// A probe attached to `emfs:em_cache_miss` for as long as it lives.
    struct Registration<'a> {
        seen: &'a Seen,
    }

    impl<'a> Registration<'a> {
        fn new(seen: &'a Seen) -> Result<Self> {
            let data = core::ptr::from_ref(seen).cast_mut().cast::<c_void>();
            // SAFETY: `probe` has the tracepoint's prototype and `data` points
            // to a `Seen` that outlives the registration, which `drop` ends.
            let ret = unsafe { ffi::emfs_trace_em_cache_miss_register(Some(probe), data) };
            kernel::error::to_result(ret)?;
            Ok(Self { seen })
        }
    }

    impl Drop for Registration<'_> {
        fn drop(&mut self) {
            let data = core::ptr::from_ref(self.seen).cast_mut().cast::<c_void>();
            // SAFETY: The same (probe, data) pair was registered in `new`.
            unsafe { ffi::emfs_trace_em_cache_miss_unregister(Some(probe), data) };
            // SAFETY: Always callable from process context; waits until no
            // CPU can still be running `probe` with `data`.
            unsafe { ffi::emfs_tracepoint_synchronize_unregister() };
        }
    }

    #[test]
    fn event_disabled_without_probe() -> Result {
        kunit_ensure!(!em_cache_miss_enabled());
        // Firing a disabled event is a no-op and must not crash.
        em_cache_miss(1, 2, 3);
        Ok(())
    }

    #[test]
    fn probe_sees_arguments() -> Result {
        let seen = Seen::new();
        {
            let _reg = Registration::new(&seen)?;
            kunit_ensure!(em_cache_miss_enabled());
            em_cache_miss(257, 4096, 8192);
            em_cache_miss(258, 1 << 40, u64::MAX);
        }
        kunit_ensure_eq!(seen.hits.load(Relaxed), 2);
        kunit_ensure_eq!(seen.ino.load(Relaxed), 258);
        kunit_ensure_eq!(seen.start.load(Relaxed), 1 << 40);
        kunit_ensure_eq!(seen.len.load(Relaxed), u64::MAX);
        Ok(())
    }

    #[test]
    fn unregistered_probe_sees_nothing() -> Result {
        let seen = Seen::new();
        drop(Registration::new(&seen)?);
        kunit_ensure!(!em_cache_miss_enabled());
        em_cache_miss(1, 0, 4096);
        kunit_ensure_eq!(seen.hits.load(Relaxed), 0);
        Ok(())
    }

    #[test]
    fn every_probe_sees_every_event() -> Result {
        let a = Seen::new();
        let b = Seen::new();
        let reg_a = Registration::new(&a)?;
        {
            let _reg_b = Registration::new(&b)?;
            em_cache_miss(7, 0, 1);
            em_cache_miss(8, 1, 2);
        }
        em_cache_miss(9, 2, 3);
        drop(reg_a);
        kunit_ensure_eq!(a.hits.load(Relaxed), 3);
        kunit_ensure_eq!(b.hits.load(Relaxed), 2);
        kunit_ensure_eq!(a.ino.load(Relaxed), 9);
        kunit_ensure_eq!(b.ino.load(Relaxed), 8);
        Ok(())
    }
}
