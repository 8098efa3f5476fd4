// SPDX-License-Identifier: GPL-2.0

//! emfs: the btrfs extent map cache rebuilt in Rust, with a shrinker and a
//! small filesystem on top.
//!
//! The crate is split by concern:
//!
//! - [`glue`]: the project's own kernel abstractions (reader-writer lock,
//!   shrinker, proc files, tracepoints, workqueue cancel, allocation
//!   scopes: what mainline Rust does not provide yet). Only this layer
//!   holds `unsafe` code and calls the C side (`rust/helpers.c`).
//! - [`extent_map`]: the extent map tree and its operations
//!   (`fs/btrfs/extent_map.c`).
//! - [`shrinker`]: owners of extent maps, their shrinker and its worker.
//! - [`fs`]: the emfs filesystem (`mount -t emfs`), on the VFS glue.
//! - [`bench`], [`synthetic`]: the benchmark and a synthetic owner, both
//!   driven from debugfs.
//! - Everything but [`glue`] is safe Rust built on `kernel` and [`glue`].
//!
//! The module's debugfs directory is `/sys/kernel/debug/emfs/`; each owner
//! of extent maps shows its statistics in `/proc/fs/emfs/<id>/stats`.

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
mod fs;
mod glue;
// The filesystem registers owners; until then the synthetic owner and the
// KUnit suite do.
#[allow(dead_code)]
mod shrinker;
mod synthetic;

module! {
    type: Emfs,
    name: "emfs",
    authors: ["The emfs developers"],
    description: "Extent map cache with a shrinker and a toy filesystem",
    license: "GPL",
}

struct Emfs {
    // Fields drop in order: the filesystem type and the files go before
    // the directories they use.
    _fs: glue::vfs::Registration<fs::Emfs>,
    _synthetic: Pin<KBox<File<synthetic::Synthetic>>>,
    _live: Pin<KBox<File<()>>>,
    _check: Pin<KBox<File<()>>>,
    _bench: Pin<KBox<File<Mutex<bench::BenchResults>>>>,
    _bench_shrinker: Pin<KBox<File<Mutex<bench::ShrinkResults>>>>,
    _debugfs: Dir,
    /// `/proc/fs/emfs`, where owners of extent maps make their directories
    /// (`EmOwnerRegistration` finds it through `ModuleProcDir::get`).
    _proc_root: glue::proc::ModuleProcDir,
}

/// Shows a benchmark's last results.
fn show_locked<T: core::fmt::Display>(
    results: &Mutex<T>,
    f: &mut core::fmt::Formatter<'_>,
) -> core::fmt::Result {
    core::fmt::Display::fmt(&*results.lock(), f)
}

/// Reads up to 8 sizes written to a benchmark file.
fn read_sizes(reader: &mut UserSliceReader, file: &str) -> Result<([u64; 8], usize)> {
    let mut buf = [0u8; 128];
    let input = buf.get_mut(..reader.len()).ok_or(EINVAL)?;
    reader.read_slice(input)?;
    let mut sizes = [0u64; 8];
    let n = bench::parse_sizes(input, &mut sizes).inspect_err(|_| {
        pr_err!(
            "{}: expected up to 8 numbers of maps, e.g. \"1000 100000\"\n",
            file
        );
    })?;
    Ok((sizes, n))
}

fn bench_store(results: &Mutex<bench::BenchResults>, reader: &mut UserSliceReader) -> Result {
    let (sizes, n) = read_sizes(reader, "bench")?;
    results.lock().run(&sizes[..n])
}

fn bench_shrinker_store(
    results: &Mutex<bench::ShrinkResults>,
    reader: &mut UserSliceReader,
) -> Result {
    let (sizes, n) = read_sizes(reader, "bench_shrinker")?;
    results.lock().run(&sizes[..n])
}

/// `/sys/kernel/debug/emfs/live`: the module's live objects, all zero once
/// every filesystem is unmounted and every owner removed.
fn show_live(_: &(), f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    writeln!(f, "extent_maps {}", extent_map::live_maps())?;
    writeln!(f, "owners {}", shrinker::live_owners())?;
    writeln!(f, "mounts {}", fs::live_mounts())?;
    writeln!(f, "files {}", fs::live_files())
}

/// `/sys/kernel/debug/emfs/check`: reading it checks every mounted emfs
/// ([`fs::Check`]); problems are also logged, one line each.
fn show_check(_: &(), f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    core::fmt::Display::fmt(&fs::Check::run(), f)
}

impl kernel::Module for Emfs {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let proc_root =
            glue::proc::ModuleProcDir::publish(glue::proc::ProcDir::new(c"fs/emfs", None)?)?;
        let debugfs = Dir::new(c"emfs");
        let bench = KBox::pin_init(
            debugfs.read_write_callback_file(
                c"bench",
                new_mutex!(bench::BenchResults::new()),
                &show_locked::<bench::BenchResults>,
                &bench_store,
            ),
            GFP_KERNEL,
        )?;
        let bench_shrinker = KBox::pin_init(
            debugfs.read_write_callback_file(
                c"bench_shrinker",
                new_mutex!(bench::ShrinkResults::new()),
                &show_locked::<bench::ShrinkResults>,
                &bench_shrinker_store,
            ),
            GFP_KERNEL,
        )?;
        let synthetic = KBox::pin_init(
            debugfs.read_write_callback_file(
                c"synthetic",
                synthetic::Synthetic::new(),
                &synthetic::Synthetic::show,
                &synthetic::Synthetic::store,
            ),
            GFP_KERNEL,
        )?;
        let live = KBox::pin_init(
            debugfs.read_callback_file(c"live", (), &show_live),
            GFP_KERNEL,
        )?;
        let check = KBox::pin_init(
            debugfs.read_callback_file(c"check", (), &show_check),
            GFP_KERNEL,
        )?;
        let fs = glue::vfs::Registration::new()?;
        pr_info!("loaded\n");
        Ok(Emfs {
            _fs: fs,
            _synthetic: synthetic,
            _live: live,
            _check: check,
            _bench: bench,
            _bench_shrinker: bench_shrinker,
            _debugfs: debugfs,
            _proc_root: proc_root,
        })
    }
}

impl Drop for Emfs {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
