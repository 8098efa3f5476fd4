// SPDX-License-Identifier: GPL-2.0

//! The project's kernel abstraction layer.
//!
//! Mainline Rust-for-Linux 7.3 lacks some of what emfs needs; this module
//! provides it in the style of `rust/kernel`: small safe types over the C
//! API, each `unsafe` block justified by a `// SAFETY:` comment. The rest of
//! the crate uses these types and holds no `unsafe` code.

pub(crate) mod acl;
pub(crate) mod alloc;
pub(crate) mod bench_floor;
pub(crate) mod ffi;
pub(crate) mod file;
pub(crate) mod iomap;
#[cfg(CONFIG_KUNIT = "y")]
pub(crate) mod kunit;
pub(crate) mod mm;
pub(crate) mod percpu;
pub(crate) mod proc;
pub(crate) mod rwlock;
pub(crate) mod sched;
pub(crate) mod shrinker;
pub(crate) mod sort;
pub(crate) mod trace;
pub(crate) mod vfs;
pub(crate) mod workqueue;
pub(crate) mod xattr;
