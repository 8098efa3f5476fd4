// SPDX-License-Identifier: GPL-2.0

//! Checks for KUnit cases that hold locks or registrations.
//!
//! A failed `assert!` in a Rust KUnit case ends the case's kthread without
//! unwinding: no destructor runs, so a lock the case holds stays held and a
//! registration it owns (a shrinker, a proc file) stays registered into a
//! module that is about to be unloaded. The checks here fail the case the
//! other way: they log what was expected and where, and return `EINVAL`
//! from the case, whose `Result` KUnit then reports as failed, after every
//! local value has been dropped in order.
//!
//! ```ignore
//! #[test]
//! fn frees_maps() -> Result {
//!     let f = Fixture::new(2, 10)?; // holds a shrinker registration
//!     f.shrink(5);
//!     kunit_ensure_eq!(f.owner().counters().evictable(), 15);
//!     f.finish()
//! }
//! ```
//!
//! The suites use these in every case; `assert!` is left to cases that
//! hold nothing.

/// Fails the current KUnit case with `EINVAL` unless `cond` holds.
macro_rules! kunit_ensure {
    ($cond:expr $(,)?) => {
        if !$cond {
            ::kernel::pr_err!(
                "{}:{}: expected {}\n",
                ::core::file!(),
                ::core::line!(),
                ::core::stringify!($cond)
            );
            return Err(::kernel::error::code::EINVAL);
        }
    };
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            ::kernel::pr_err!(
                "{}:{}: expected {}: {}\n",
                ::core::file!(),
                ::core::line!(),
                ::core::stringify!($cond),
                ::core::format_args!($($arg)+)
            );
            return Err(::kernel::error::code::EINVAL);
        }
    };
}
pub(crate) use kunit_ensure;

/// Fails the current KUnit case with `EINVAL` unless `left == right`,
/// logging both values.
macro_rules! kunit_ensure_eq {
    ($left:expr, $right:expr $(,)?) => {
        match (&$left, &$right) {
            (left, right) => {
                if *left != *right {
                    ::kernel::pr_err!(
                        "{}:{}: expected {} == {}: {:?} != {:?}\n",
                        ::core::file!(),
                        ::core::line!(),
                        ::core::stringify!($left),
                        ::core::stringify!($right),
                        left,
                        right
                    );
                    return Err(::kernel::error::code::EINVAL);
                }
            }
        }
    };
}
pub(crate) use kunit_ensure_eq;
