// SPDX-License-Identifier: GPL-2.0

//! Memory shrinkers (`include/linux/shrinker.h`).
//!
//! Under memory pressure the kernel asks every registered shrinker how many
//! objects it could free ([`Shrinker::count`]) and then to free some
//! ([`Shrinker::scan`]). This module wraps `shrinker_alloc()`,
//! `shrinker_register()` and `shrinker_free()`:
//!
//! ```ignore
//! let reg = ShrinkerBuilder::new(c"emfs-extent-map:1")
//!     .seeks(DEFAULT_SEEKS)
//!     .batch(128)
//!     .register(data)?; // data: Arc<impl Shrinker>
//! // ...
//! drop(reg); // unregisters and waits for running callbacks
//! ```
//!
//! Callbacks run in reclaim context, possibly with filesystem locks held by
//! the allocating task: they must not block. [`ShrinkControl::allows_fs`]
//! tells whether the caller may recurse into filesystem code.

use core::{
    marker::PhantomData,
    ptr::NonNull, //
};
use kernel::{
    bindings,
    prelude::*,
    str::CStr,
    sync::{
        Arc,
        ArcBorrow, //
    },
};

use crate::glue::ffi;

/// The kernel's default cost of recreating an object (`DEFAULT_SEEKS`).
pub(crate) const DEFAULT_SEEKS: u32 = 2;

/// `SHRINK_STOP`: the shrinker cannot make progress now.
const SHRINK_STOP: kernel::ffi::c_ulong = !0;
/// `SHRINK_EMPTY`: the shrinker has no objects.
const SHRINK_EMPTY: kernel::ffi::c_ulong = !0 - 1;

/// What [`Shrinker::count`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ShrinkCount {
    /// This many objects could be freed.
    Objects(usize),
    /// There is nothing to free (`SHRINK_EMPTY`).
    Empty,
}

/// What [`Shrinker::scan`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ShrinkScan {
    /// This many objects were freed.
    Freed(usize),
    /// No progress is possible now; do not call again in this reclaim pass
    /// (`SHRINK_STOP`).
    Stop,
}

/// The request of one shrinker call (`struct shrink_control`).
///
/// # Invariants
///
/// `sc` points to the `shrink_control` of a running callback, valid and not
/// accessed elsewhere for the lifetime `'a`.
pub(crate) struct ShrinkControl<'a> {
    sc: NonNull<bindings::shrink_control>,
    _life: PhantomData<&'a mut bindings::shrink_control>,
}

impl ShrinkControl<'_> {
    fn get(&self) -> &bindings::shrink_control {
        // SAFETY: By the type invariant `sc` is valid and not aliased
        // mutably while `self` lives.
        unsafe { self.sc.as_ref() }
    }

    /// How many objects the kernel asks to scan.
    pub(crate) fn nr_to_scan(&self) -> usize {
        self.get().nr_to_scan
    }

    /// Reports how many objects were actually scanned, if that differs from
    /// [`ShrinkControl::nr_to_scan`] (what the kernel assumes otherwise).
    ///
    /// `do_shrink_slab()` takes the number scanned off what it still has to
    /// ask for and calls again until that is used up: a scan that reports
    /// nothing scanned and does not return [`ShrinkScan::Stop`] would be
    /// called forever. The number is therefore kept between 1 and
    /// `nr_to_scan`; a scan that can do nothing returns `Stop`.
    pub(crate) fn set_nr_scanned(&mut self, nr: usize) {
        let nr = nr.clamp(1, self.nr_to_scan().max(1));
        // SAFETY: By the type invariant `sc` is valid, and `&mut self` means
        // no shared reference into it is alive.
        unsafe { self.sc.as_mut() }.nr_scanned = nr;
    }

    /// Returns whether the allocation that triggered reclaim may recurse
    /// into filesystem code (`__GFP_FS`).
    pub(crate) fn allows_fs(&self) -> bool {
        // SAFETY: Only tests bits of a value.
        unsafe { ffi::emfs_gfp_allows_fs(self.get().gfp_mask) }
    }

    /// Returns whether the allocation that triggered reclaim may start I/O
    /// (`__GFP_IO`).
    pub(crate) fn allows_io(&self) -> bool {
        // SAFETY: Only tests bits of a value.
        unsafe { ffi::emfs_gfp_allows_io(self.get().gfp_mask) }
    }
}

/// The callbacks of a shrinker.
pub(crate) trait Shrinker: Send + Sync + 'static {
    /// Returns how many objects could be freed. Must be cheap: it is called
    /// on every reclaim pass.
    fn count(this: ArcBorrow<'_, Self>, sc: &ShrinkControl<'_>) -> ShrinkCount;

    /// Frees up to [`ShrinkControl::nr_to_scan`] objects. Must not block.
    fn scan(this: ArcBorrow<'_, Self>, sc: &mut ShrinkControl<'_>) -> ShrinkScan;
}

/// The parameters of a shrinker to register.
pub(crate) struct ShrinkerBuilder<'a> {
    name: &'a CStr,
    seeks: u32,
    batch: usize,
}

impl<'a> ShrinkerBuilder<'a> {
    /// A shrinker named `name` (shown in `/sys/kernel/debug/shrinker/`).
    pub(crate) fn new(name: &'a CStr) -> Self {
        Self {
            name,
            seeks: DEFAULT_SEEKS,
            batch: 0,
        }
    }

    /// The cost of recreating an object, relative to other caches.
    pub(crate) fn seeks(mut self, seeks: u32) -> Self {
        self.seeks = seeks;
        self
    }

    /// How many objects to ask for per scan call (0: the kernel's default).
    pub(crate) fn batch(mut self, batch: usize) -> Self {
        self.batch = batch;
        self
    }

    /// Allocates and registers the shrinker with `data` as its callbacks.
    /// Fails with `ENOMEM`.
    pub(crate) fn register<T: Shrinker>(self, data: Arc<T>) -> Result<ShrinkerRegistration<T>> {
        // SAFETY: `name` is a valid NUL-terminated string; the helper copies
        // it (shrinker_alloc() formats it into its own buffer).
        let raw = unsafe { ffi::emfs_shrinker_alloc(self.name.as_char_ptr()) }
            .cast::<bindings::shrinker>();
        let shrinker = NonNull::new(raw).ok_or(ENOMEM)?;
        let private = Arc::into_raw(data);
        // The callbacks match the kernel's prototypes and decode `private`
        // as the `Arc<T>` it is.
        // SAFETY: `shrinker` is allocated and not registered: nobody else
        // reads its fields yet.
        unsafe {
            let s = shrinker.as_ptr();
            (*s).count_objects = Some(count_callback::<T>);
            (*s).scan_objects = Some(scan_callback::<T>);
            (*s).seeks =
                kernel::ffi::c_int::try_from(self.seeks).unwrap_or(kernel::ffi::c_int::MAX);
            (*s).batch =
                kernel::ffi::c_long::try_from(self.batch).unwrap_or(kernel::ffi::c_long::MAX);
            (*s).private_data = private.cast_mut().cast();
        }
        // SAFETY: The shrinker is allocated and fully set up.
        unsafe { bindings::shrinker_register(shrinker.as_ptr()) };
        // INVARIANT: Registered, with `private` from `Arc::into_raw`.
        Ok(ShrinkerRegistration {
            shrinker,
            _data: PhantomData,
        })
    }
}

/// The largest count `do_shrink_slab()` can use: it keeps the count in a
/// `long`, where anything above `LONG_MAX` reads as negative.
const MAX_COUNT: kernel::ffi::c_ulong = kernel::ffi::c_long::MAX as kernel::ffi::c_ulong;

/// What `count_objects` returns for `count`.
fn count_to_raw(count: ShrinkCount) -> kernel::ffi::c_ulong {
    match count {
        ShrinkCount::Objects(0) | ShrinkCount::Empty => SHRINK_EMPTY,
        // Below the special values too, since LONG_MAX < SHRINK_EMPTY.
        ShrinkCount::Objects(n) => (n as kernel::ffi::c_ulong).min(MAX_COUNT),
    }
}

/// What `scan_objects` returns for `scan`.
fn scan_to_raw(scan: ShrinkScan) -> kernel::ffi::c_ulong {
    match scan {
        ShrinkScan::Freed(n) => (n as kernel::ffi::c_ulong).min(SHRINK_EMPTY - 1),
        ShrinkScan::Stop => SHRINK_STOP,
    }
}

/// # Safety
///
/// Called by the kernel with a shrinker set up by
/// [`ShrinkerBuilder::register`] and a valid `shrink_control`.
unsafe extern "C" fn count_callback<T: Shrinker>(
    shrinker: *mut bindings::shrinker,
    sc: *mut bindings::shrink_control,
) -> kernel::ffi::c_ulong {
    // SAFETY: `private_data` holds an `Arc<T>` that lives until the
    // registration is dropped, which waits for running callbacks first.
    let data = unsafe { ArcBorrow::<T>::from_raw((*shrinker).private_data.cast()) };
    // INVARIANT: `sc` is valid for the duration of the callback.
    let control = ShrinkControl {
        // SAFETY: The kernel passes a non-null `shrink_control`.
        sc: unsafe { NonNull::new_unchecked(sc) },
        _life: PhantomData,
    };
    count_to_raw(T::count(data, &control))
}

/// # Safety
///
/// As for [`count_callback`].
unsafe extern "C" fn scan_callback<T: Shrinker>(
    shrinker: *mut bindings::shrinker,
    sc: *mut bindings::shrink_control,
) -> kernel::ffi::c_ulong {
    // SAFETY: As in `count_callback`.
    let data = unsafe { ArcBorrow::<T>::from_raw((*shrinker).private_data.cast()) };
    // INVARIANT: `sc` is valid for the duration of the callback.
    let mut control = ShrinkControl {
        // SAFETY: The kernel passes a non-null `shrink_control`.
        sc: unsafe { NonNull::new_unchecked(sc) },
        _life: PhantomData,
    };
    scan_to_raw(T::scan(data, &mut control))
}

/// A registered shrinker. Dropping it unregisters the shrinker, waits for
/// callbacks that are running, and only then releases the data.
///
/// # Invariants
///
/// `shrinker` was allocated and registered by [`ShrinkerBuilder::register`]
/// and its `private_data` came from `Arc::<T>::into_raw`.
pub(crate) struct ShrinkerRegistration<T: Shrinker> {
    shrinker: NonNull<bindings::shrinker>,
    _data: PhantomData<Arc<T>>,
}

// SAFETY: The registration only frees the shrinker, which any task may do;
// the data is `Send + Sync` (required by `Shrinker`).
unsafe impl<T: Shrinker> Send for ShrinkerRegistration<T> {}
// SAFETY: `&ShrinkerRegistration` gives no access to anything.
unsafe impl<T: Shrinker> Sync for ShrinkerRegistration<T> {}

impl<T: Shrinker> Drop for ShrinkerRegistration<T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `private_data` is the raw `Arc<T>`.
        let private = unsafe { self.shrinker.as_ref().private_data };
        // SAFETY: The shrinker is registered; `shrinker_free` unregisters it
        // and waits until no callback runs, so nothing uses `private` after.
        unsafe { bindings::shrinker_free(self.shrinker.as_ptr()) };
        // SAFETY: `private` came from `Arc::into_raw` and no callback can
        // reach it any more.
        drop(unsafe { Arc::<T>::from_raw(private.cast()) });
    }
}

#[kernel::macros::kunit_tests(emfs_glue_shrinker)]
mod tests {
    use super::*;

    fn control(raw: &mut bindings::shrink_control) -> ShrinkControl<'_> {
        // INVARIANT: `raw` is valid and exclusively borrowed for `'_`.
        ShrinkControl {
            sc: NonNull::from(raw),
            _life: PhantomData,
        }
    }

    #[test]
    fn control_reads_the_gfp_mask() -> Result {
        let fs: bindings::gfp_t = 1 << bindings::___GFP_FS_BIT;
        let io: bindings::gfp_t = 1 << bindings::___GFP_IO_BIT;
        let cases = [
            (bindings::GFP_KERNEL, true, true),
            (bindings::GFP_KERNEL & !fs, false, true),
            (bindings::GFP_KERNEL & !fs & !io, false, false),
            (bindings::GFP_ATOMIC, false, false),
        ];
        for (gfp, fs, io) in cases {
            let mut raw = bindings::shrink_control {
                gfp_mask: gfp,
                nr_to_scan: 64,
                ..Default::default()
            };
            let sc = control(&mut raw);
            assert_eq!(sc.allows_fs(), fs);
            assert_eq!(sc.allows_io(), io);
            assert_eq!(sc.nr_to_scan(), 64);
        }
        Ok(())
    }

    #[test]
    fn control_reports_nr_scanned() -> Result {
        let mut raw = bindings::shrink_control {
            nr_to_scan: 128,
            ..Default::default()
        };
        control(&mut raw).set_nr_scanned(100);
        assert_eq!(raw.nr_scanned, 100);
        // Zero scanned would make do_shrink_slab() call again forever.
        control(&mut raw).set_nr_scanned(0);
        assert_eq!(raw.nr_scanned, 1);
        control(&mut raw).set_nr_scanned(1000);
        assert_eq!(raw.nr_scanned, 128);
        Ok(())
    }

    #[test]
    fn results_map_to_the_kernel_values() -> Result {
        assert_eq!(count_to_raw(ShrinkCount::Objects(5)), 5);
        assert_eq!(count_to_raw(ShrinkCount::Objects(0)), SHRINK_EMPTY);
        assert_eq!(count_to_raw(ShrinkCount::Empty), SHRINK_EMPTY);
        // A huge count never reads as SHRINK_EMPTY or SHRINK_STOP, nor as
        // a negative long in do_shrink_slab().
        let huge = count_to_raw(ShrinkCount::Objects(usize::MAX));
        assert_eq!(huge, MAX_COUNT);
        assert!(huge as kernel::ffi::c_long > 0);
        assert_eq!(scan_to_raw(ShrinkScan::Freed(7)), 7);
        assert_eq!(scan_to_raw(ShrinkScan::Stop), SHRINK_STOP);
        assert_eq!(scan_to_raw(ShrinkScan::Freed(usize::MAX)), SHRINK_EMPTY - 1);
        Ok(())
    }
}
