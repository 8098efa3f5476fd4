// SPDX-License-Identifier: GPL-2.0

//! Sorting a slice with the kernel's heapsort (`sort()`, lib/sort.c):
//! O(n log n), in place, no allocation and no recursion.
//!
//! `core`'s `sort_unstable` would do, but its panic paths for an `Ord` that
//! is not a total order end in calls objtool does not know as noreturn:
//! without Rust overflow checks (the perf flavour) it reports them as
//! falling through to the next function.

use core::{
    cmp::Ordering,
    ffi::c_void, //
};
use kernel::ffi::c_int;

use crate::glue::ffi;

/// Compares two elements of a slice being sorted.
///
/// # Safety
///
/// `a` and `b` point at valid `T`s, which nothing mutates during the call.
unsafe extern "C" fn compare<T: Ord>(a: *const c_void, b: *const c_void) -> c_int {
    // SAFETY: As the caller promises.
    let (a, b) = unsafe { (&*a.cast::<T>(), &*b.cast::<T>()) };
    match a.cmp(b) {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }
}

/// Sorts `v` in ascending order (`sort()`). Not stable; does not sleep.
pub(crate) fn sort<T: Ord>(v: &mut [T]) {
    if core::mem::size_of::<T>() == 0 {
        return;
    }
    // `sort()` only compares the elements with `compare::<T>` and moves
    // them byte for byte within the slice, which is how Rust moves a value.
    // SAFETY: `v` is valid and exclusively borrowed for `v.len()` elements.
    unsafe {
        ffi::sort(
            v.as_mut_ptr().cast(),
            v.len(),
            core::mem::size_of::<T>(),
            Some(compare::<T>),
            None,
        )
    }
}
