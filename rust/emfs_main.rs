// SPDX-License-Identifier: GPL-2.0

//! emfs: the btrfs extent map cache rebuilt in Rust, with a shrinker and a
//! small filesystem on top.
//!
//! The crate is split by concern:
//!
//! - [`glue`]: the project's own kernel abstractions (reader-writer lock,
//!   tagged list, tracepoints, allocation scopes, the pieces mainline Rust
//!   does not provide yet). Only this layer holds `unsafe` code and calls
//!   the C side (`rust/helpers.c`).
//! - [`extent_map`]: the extent map tree and its operations
//!   (`fs/btrfs/extent_map.c`).
//! - [`bench`]: the extent map benchmark, run from debugfs.
//! - Everything but [`glue`] is safe Rust built on `kernel` and [`glue`].
//!
//! The module's debugfs directory is `/sys/kernel/debug/emfs/`.

use kernel::{
    debugfs::{
        Dir,
        File, //
    },
    new_mutex,
    prelude::*,
    sync::Mutex,
    uaccess::UserSliceReader,
};

mod bench;
// The filesystem is the extent map cache's caller; the KUnit suite exercises
// the parts it does not use yet.
#[allow(dead_code)]
mod extent_map;
mod glue;
// The filesystem registers owners; until then the synthetic owner and the
// KUnit suite do.
#[allow(dead_code)]
mod shrinker;

module! {
    type: Emfs,
    name: "emfs",
    authors: ["The emfs developers"],
    description: "Extent map cache with a shrinker and a toy filesystem",
    license: "GPL",
}

struct Emfs {
    // Files go before their directory.
    _bench: Pin<KBox<File<Mutex<bench::BenchResults>>>>,
    _debugfs: Dir,
}

fn bench_show(
    results: &Mutex<bench::BenchResults>,
    f: &mut core::fmt::Formatter<'_>,
) -> core::fmt::Result {
    core::fmt::Display::fmt(&*results.lock(), f)
}

fn bench_store(results: &Mutex<bench::BenchResults>, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 128];
    let len = reader.len();
    if len > buf.len() {
        return Err(EINVAL);
    }
    reader.read_slice(&mut buf[..len])?;
    let mut sizes = [0u64; 8];
    let n = bench::parse_sizes(&buf[..len], &mut sizes).inspect_err(|_| {
        pr_err!("bench: expected up to 8 numbers of maps, e.g. \"1000 100000\"\n");
    })?;
    results.lock().run(&sizes[..n])
}

impl kernel::Module for Emfs {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let debugfs = Dir::new(c"emfs");
        let bench = KBox::pin_init(
            debugfs.read_write_callback_file(
                c"bench",
                new_mutex!(bench::BenchResults::new()),
                &bench_show,
                &bench_store,
            ),
            GFP_KERNEL,
        )?;
        pr_info!("loaded\n");
        Ok(Emfs {
            _bench: bench,
            _debugfs: debugfs,
        })
    }
}

impl Drop for Emfs {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
