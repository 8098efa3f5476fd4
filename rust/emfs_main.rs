// SPDX-License-Identifier: GPL-2.0

//! emfs: the btrfs extent map cache rebuilt in Rust, with a shrinker and a
//! small filesystem on top.
//!
//! The crate is split by concern:
//!
//! - [`glue`]: the project's own kernel abstractions (tracepoints, and the
//!   pieces mainline Rust does not provide yet). Only this layer holds
//!   `unsafe` code and calls the C side (`rust/helpers.c`).
//! - [`extent_map`]: the extent map tree and its operations
//!   (`fs/btrfs/extent_map.c`).
//! - Everything but [`glue`] is safe Rust built on `kernel` and [`glue`].

use kernel::prelude::*;

// The filesystem is the extent map cache's caller; the KUnit suite exercises
// the parts it does not use yet.
#[allow(dead_code)]
mod extent_map;
mod glue;

module! {
    type: Emfs,
    name: "emfs",
    authors: ["The emfs developers"],
    description: "Extent map cache with a shrinker and a toy filesystem",
    license: "GPL",
}

struct Emfs;

impl kernel::Module for Emfs {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("loaded\n");
        Ok(Emfs)
    }
}

impl Drop for Emfs {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
