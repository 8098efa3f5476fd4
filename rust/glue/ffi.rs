// SPDX-License-Identifier: GPL-2.0

//! The declarations of what `rust/bindings_helper.h` names: the C helpers
//! of `rust/helpers.h`, and the kernel functions and types the kernel
//! crate's bindings lack. They are generated at build time by the kernel's
//! bindgen (see `Kbuild`), so each one is checked against its C prototype.
//!
//! Only those names are generated; the kernel types they use come from the
//! kernel crate's bindings, brought in by the glob import, as the kernel
//! crate does for its own helpers.

#![allow(
    dead_code,
    improper_ctypes,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    unreachable_pub,
    unnecessary_transmutes,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::pedantic,
    clippy::restriction,
    clippy::undocumented_unsafe_blocks
)]

use kernel::bindings::*;
use kernel::ffi;

include!(concat!(env!("EMFS_GENERATED"), "/bindings_generated.rs"));
