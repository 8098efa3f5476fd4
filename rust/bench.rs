// SPDX-License-Identifier: GPL-2.0

//! The extent map benchmark, run from debugfs.
//!
//! `echo "1000 100000 1000000" > /sys/kernel/debug/emfs/bench` runs it for
//! each number of maps; reading the file prints the last results. For each
//! size N it measures, side by side in the same run:
//!
//! - random lookups that hit, through [`ExtentMapTree::lookup`], the
//!   production path (read lock, tree walk, copy of the map, unlock, the
//!   hit counted), and through the C floor (`rust/bench_floor.c`:
//!   read_lock, rb-tree walk, refcount_inc, read_unlock, refcount_dec, the
//!   way btrfs does it); the Rust walk alone, under the lock but copying
//!   nothing (`walk_ns`); and the same lookups on two CPUs at once, one
//!   tree read by both (`lookup2`, `c_lookup2`: the time per lookup of
//!   each);
//! - inserting N maps that cannot merge, and N maps that all merge into one;
//!   the C floor's insert for comparison;
//! - dropping the N maps one `drop_range` at a time;
//! - bytes per cached map, from the slab pages the allocator accounts
//!   before and after the N maps are inserted (for both).
//!
//! `/sys/kernel/debug/emfs/bench_shrinker` does the same for the shrinker:
//! for a cache of N maps over 64 inodes, the maps the worker frees per
//! millisecond in one run over the whole cache, the cost of the scan
//! callback (when it arms a run, and when one is already pending), of
//! arming an empty delayed work item on a workqueue of the same kind (the
//! floor of the former), and of the count callback, and the 99th
//! percentile of lookup latency while idle and while the worker runs.
//!
//! Times are wall clock in the guest (`ktime`); only ratios between figures
//! of one run are meaningful.

use crate::{
    extent_map::{
        EmCounters,
        ExtentMapInfo,
        ExtentMapTree,
        PreparedMap, //
    },
    glue::{
        bench_floor::FloorTree,
        mm::slab_bytes,
        sched::cond_resched,
        sort::sort,
        workqueue::{
            flush,
            flush_delayed,
            system_dfl,
            OwnedQueue, //
        },
    },
    shrinker::{
        EmInode,
        EmOwner,
        EmOwnerRegistration,
        RUN_DELAY, //
    },
};
use core::fmt;
use kernel::{
    new_delayed_work, new_work,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
    },
    time::{
        Instant,
        Monotonic, //
    },
    workqueue::{
        impl_has_delayed_work,
        impl_has_work,
        DelayedWork,
        Work,
        WorkItem, //
    },
};

const BLOCK: u64 = 4096;
/// Lookups timed per size, whatever the size.
const LOOKUPS: usize = 200_000;
/// The largest size accepted.
pub(crate) const MAX_MAPS: u64 = 4_000_000;

/// One size's figures. Times are in tenths of nanoseconds per operation.
#[derive(Clone, Copy, Default)]
pub(crate) struct BenchRow {
    maps: u64,
    lookup: u64,
    walk: u64,
    c_lookup: u64,
    lookup2: u64,
    c_lookup2: u64,
    insert: u64,
    insert_merge: u64,
    c_insert: u64,
    drop_range: u64,
    bytes: u64,
    c_bytes: u64,
}

/// The results of the last run.
pub(crate) struct BenchResults {
    rows: KVec<BenchRow>,
}

impl BenchResults {
    /// No results yet.
    pub(crate) fn new() -> Self {
        Self { rows: KVec::new() }
    }

    /// Runs the benchmark for each size in `sizes` and keeps the results.
    pub(crate) fn run(&mut self, sizes: &[u64]) -> Result {
        let mut rows = KVec::with_capacity(sizes.len(), GFP_KERNEL)?;
        for &n in sizes {
            if n == 0 || n > MAX_MAPS {
                pr_err!("bench: {} maps is out of range (1 to {})\n", n, MAX_MAPS);
                return Err(EINVAL);
            }
            let row = run_one(n)?;
            pr_info!("bench: {}\n", format_args!("{}", RowLine(&row)));
            rows.push(row, GFP_KERNEL)?;
        }
        self.rows = rows;
        Ok(())
    }
}

/// Tenths of nanoseconds per operation.
fn per_op(ns: i64, ops: u64) -> u64 {
    (ns.max(0) as u64).saturating_mul(10) / ops.max(1)
}

fn elapsed_ns(start: &Instant<Monotonic>) -> i64 {
    start.elapsed().as_nanos()
}

/// A small, fast, reproducible random sequence (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A map of the non-merging layout: 4K of data every 8K, so that no two
/// maps are adjacent in the file.
fn sparse(i: u64) -> ExtentMapInfo {
    ExtentMapInfo::regular(i * 2 * BLOCK, BLOCK, i * 2 * BLOCK)
}

fn new_tree() -> Result<Pin<KBox<ExtentMapTree>>> {
    KBox::pin_init(
        ExtentMapTree::new(1, BLOCK as u32, EmCounters::new()?),
        GFP_KERNEL,
    )
}

fn run_one(n: u64) -> Result<BenchRow> {
    let mut row = BenchRow {
        maps: n,
        ..BenchRow::default()
    };

    // Offsets inside the maps, in random order, shared by both trees.
    let mut offsets = KVVec::with_capacity(LOOKUPS, GFP_KERNEL)?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n);
    for _ in 0..LOOKUPS {
        offsets.push((rng.next() % n) * 2 * BLOCK + 1024, GFP_KERNEL)?;
    }

    // Insert without merging; memory per map from the slab accounting.
    let tree = new_tree()?;
    let before = slab_bytes();
    let start = Instant::<Monotonic>::now();
    for i in 0..n {
        tree.add(PreparedMap::new(sparse(i))?, false)?;
        if i % 1024 == 0 {
            cond_resched();
        }
    }
    row.insert = per_op(elapsed_ns(&start), n);
    row.bytes = slab_bytes().saturating_sub(before) / n;

    let floor = FloorTree::new()?;
    let before = slab_bytes();
    let start = Instant::<Monotonic>::now();
    for i in 0..n {
        let info = sparse(i);
        floor.insert(info.start, info.len, info.disk_bytenr)?;
        if i % 1024 == 0 {
            cond_resched();
        }
    }
    row.c_insert = per_op(elapsed_ns(&start), n);
    row.c_bytes = slab_bytes().saturating_sub(before) / n;

    // Lookups, the two trees taking turns every 1024 lookups so that both
    // see the same machine; five rounds, the best counts (under emulation
    // a round can be twice as slow as the next).
    let par = Arc::pin_init(
        try_pin_init!(Lookups {
            tree,
            floor,
            offsets,
            c_side: Atomic::new(0),
            started: Atomic::new(0),
            ns: Atomic::new(0),
            hits: Atomic::new(0),
            work <- new_work!("bench::Lookups"),
        }? Error),
        GFP_KERNEL,
    )?;
    row.lookup = u64::MAX;
    row.walk = u64::MAX;
    row.c_lookup = u64::MAX;
    for _ in 0..5 {
        let (ns, c_ns, hits, c_hits) = par.interleaved();
        row.lookup = row.lookup.min(per_op(ns, LOOKUPS as u64));
        row.c_lookup = row.c_lookup.min(per_op(c_ns, LOOKUPS as u64));
        // The same walk copying nothing: where the time goes.
        let start = Instant::<Monotonic>::now();
        let mut covered = 0u64;
        for &offset in par.offsets.iter() {
            covered += u64::from(par.tree.read().covers(offset));
        }
        row.walk = row.walk.min(per_op(elapsed_ns(&start), LOOKUPS as u64));
        if hits != LOOKUPS as u64 || covered != LOOKUPS as u64 || c_hits != LOOKUPS as u64 {
            pr_err!(
                "bench: lookups missed ({}, {} and {} of {})\n",
                hits,
                covered,
                c_hits,
                LOOKUPS
            );
            return Err(EIO);
        }
        cond_resched();
    }
    // Both CPUs reading one tree: a worker on the other CPU, this thread
    // here; the slower of the two counts, the best of three rounds.
    row.lookup2 = u64::MAX;
    row.c_lookup2 = u64::MAX;
    for _ in 0..3 {
        row.lookup2 = row.lookup2.min(Lookups::run_two(&par, false)?);
        row.c_lookup2 = row.c_lookup2.min(Lookups::run_two(&par, true)?);
    }
    let tree = &par.tree;

    // Drop the maps one range at a time.
    let start = Instant::<Monotonic>::now();
    for i in 0..n {
        let info = sparse(i);
        tree.drop_range(info.start, info.end() - 1, false);
        if i % 1024 == 0 {
            cond_resched();
        }
    }
    row.drop_range = per_op(elapsed_ns(&start), n);
    if tree.read().nr_cached() != 0 {
        pr_err!("bench: maps left after dropping every range\n");
        return Err(EIO);
    }
    drop(par);

    // Insert with merging: every map extends the previous one.
    let tree = new_tree()?;
    let start = Instant::<Monotonic>::now();
    for i in 0..n {
        let info = ExtentMapInfo::regular(i * BLOCK, BLOCK, i * BLOCK);
        tree.add(PreparedMap::new(info)?, false)?;
        if i % 1024 == 0 {
            cond_resched();
        }
    }
    row.insert_merge = per_op(elapsed_ns(&start), n);
    if tree.read().nr_cached() != 1 {
        pr_err!(
            "bench: {} maps left after merging\n",
            tree.read().nr_cached()
        );
        return Err(EIO);
    }
    Ok(row)
}

/// The trees of one size and the offsets looked up in them, shared with a
/// worker for the two-CPU run.
#[pin_data]
struct Lookups {
    tree: Pin<KBox<ExtentMapTree>>,
    floor: FloorTree,
    offsets: KVVec<u64>,
    /// Which tree the worker reads: 0 for emfs's, 1 for the C floor.
    c_side: Atomic<u32>,
    /// Set by the worker when it starts.
    started: Atomic<u32>,
    /// The worker's time and hits.
    ns: Atomic<i64>,
    hits: Atomic<u64>,
    #[pin]
    work: Work<Lookups>,
}

impl_has_work! {
    impl HasWork<Self> for Lookups { self.work }
}

impl WorkItem for Lookups {
    type Pointer = Arc<Lookups>;

    fn run(this: Arc<Lookups>) {
        this.started.store(1, Relaxed);
        let (ns, hits) = this.run(this.c_side.load(Relaxed) != 0);
        this.ns.store(ns, Relaxed);
        this.hits.store(hits, Relaxed);
    }
}

impl Lookups {
    /// Looks every offset up in emfs's tree, through the production path,
    /// or in the C floor's; returns the time taken and the hits.
    fn run(&self, c_side: bool) -> (i64, u64) {
        let start = Instant::<Monotonic>::now();
        let hits = if c_side {
            self.floor.lookup_all(&self.offsets)
        } else {
            let mut hits = 0u64;
            for (i, &offset) in self.offsets.iter().enumerate() {
                hits += u64::from(self.tree.lookup(offset, 1).is_some());
                if i % 4096 == 0 {
                    cond_resched();
                }
            }
            hits
        };
        (elapsed_ns(&start), hits)
    }

    /// Looks every offset up in both trees, taking turns every 1024
    /// lookups; returns the time each took and their hits.
    fn interleaved(&self) -> (i64, i64, u64, u64) {
        let (mut ns, mut c_ns, mut hits, mut c_hits) = (0, 0, 0, 0);
        for chunk in self.offsets.chunks(1024) {
            let start = Instant::<Monotonic>::now();
            for &offset in chunk {
                hits += u64::from(self.tree.lookup(offset, 1).is_some());
            }
            ns += elapsed_ns(&start);
            let start = Instant::<Monotonic>::now();
            c_hits += self.floor.lookup_all(chunk);
            c_ns += elapsed_ns(&start);
            cond_resched();
        }
        (ns, c_ns, hits, c_hits)
    }

    /// Runs the lookups here and on a worker at once; returns the time per
    /// lookup of the slower side, in tenths of ns.
    fn run_two(this: &Arc<Self>, c_side: bool) -> Result<u64> {
        this.c_side.store(u32::from(c_side), Relaxed);
        this.started.store(0, Relaxed);
        let _ = system_dfl().enqueue(this.clone());
        while this.started.load(Relaxed) == 0 {
            cond_resched();
        }
        let (ns, hits) = this.run(c_side);
        flush(this);
        let both = hits + this.hits.load(Relaxed);
        if both != 2 * LOOKUPS as u64 {
            pr_err!(
                "bench: two-CPU lookups missed ({} of {})\n",
                both,
                2 * LOOKUPS
            );
            return Err(EIO);
        }
        Ok(per_op(ns.max(this.ns.load(Relaxed)), LOOKUPS as u64))
    }
}

struct RowLine<'a>(&'a BenchRow);

impl fmt::Display for RowLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        // Tenths as "x.y" in 10 columns; ratios as "x.yy" in 6.
        let tenths = [
            r.lookup,
            r.c_lookup,
            r.lookup2,
            r.c_lookup2,
            r.walk,
            r.insert,
            r.insert_merge,
            r.c_insert,
            r.drop_range,
        ];
        let ratio = |a: u64, b: u64| a.saturating_mul(100) / b.max(1);
        let lookup_ratio = ratio(r.lookup, r.c_lookup);
        let lookup2_ratio = ratio(r.lookup2, r.c_lookup2);
        let mem_ratio = ratio(r.bytes, r.c_bytes);
        write!(f, "{:>8}", r.maps)?;
        for (i, t) in tenths.iter().enumerate() {
            write!(f, " {:>8}.{}", t / 10, t % 10)?;
            if i == 1 {
                write!(f, " {:>3}.{:02}", lookup_ratio / 100, lookup_ratio % 100)?;
            }
            if i == 3 {
                write!(f, " {:>3}.{:02}", lookup2_ratio / 100, lookup2_ratio % 100)?;
            }
        }
        write!(
            f,
            " {:>10} {:>10} {:>3}.{:02}",
            r.bytes,
            r.c_bytes,
            mem_ratio / 100,
            mem_ratio % 100
        )
    }
}

impl fmt::Display for BenchResults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rows.is_empty() {
            return writeln!(
                f,
                "no results yet: echo \"1000 100000 1000000\" > /sys/kernel/debug/emfs/bench"
            );
        }
        writeln!(
            f,
            "{:>8} {:>10} {:>10} {:>6} {:>10} {:>10} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>6}",
            "maps",
            "lookup_ns",
            "c_lookup",
            "ratio",
            "lookup2",
            "c_lookup2",
            "ratio2",
            "walk_ns",
            "insert_ns",
            "ins_merge",
            "c_insert",
            "drop_ns",
            "bytes/map",
            "c_bytes",
            "ratio"
        )?;
        for row in self.rows.iter() {
            writeln!(f, "{}", RowLine(row))?;
        }
        Ok(())
    }
}

/// Parses the sizes written to the debugfs file: up to 8 numbers separated
/// by blanks.
pub(crate) fn parse_sizes(input: &[u8], out: &mut [u64; 8]) -> Result<usize> {
    let text = core::str::from_utf8(input).map_err(|_| EINVAL)?;
    let mut n = 0;
    for word in text.split_ascii_whitespace() {
        if n == out.len() {
            return Err(EINVAL);
        }
        out[n] = word.parse::<u64>().map_err(|_| EINVAL)?;
        n += 1;
    }
    if n == 0 {
        return Err(EINVAL);
    }
    Ok(n)
}

/// One size's shrinker figures.
#[derive(Clone, Copy, Default)]
pub(crate) struct ShrinkRow {
    maps: u64,
    /// Maps freed per millisecond by one worker run over the whole cache.
    freed_per_ms: u64,
    /// Tenths of ns: the scan callback's work when it arms a run, median
    /// and worst of the samples, and (worst mean of ten calls) when a run
    /// is already pending.
    scan_queue: u64,
    scan_queue_max: u64,
    scan_pending: u64,
    /// Tenths of ns: the count callback.
    count: u64,
    /// Tenths of ns: arming an empty delayed work item on a workqueue of
    /// the same kind, the floor of the scan callback's path (median).
    queue_floor: u64,
    /// ns: 99th percentile of lookup latency, idle and during a run.
    p99_idle: u64,
    p99_busy: u64,
}

/// The results of the last shrinker benchmark.
pub(crate) struct ShrinkResults {
    rows: KVec<ShrinkRow>,
}

/// An empty delayed work item: what arming one alone costs.
#[pin_data]
struct Nop {
    #[pin]
    work: DelayedWork<Nop>,
}

impl_has_delayed_work! {
    impl HasDelayedWork<Self> for Nop { self.work }
}

impl WorkItem for Nop {
    type Pointer = Arc<Nop>;

    fn run(_this: Arc<Nop>) {}
}

/// Inodes the benchmark spreads its maps over.
const SHRINK_INODES: u64 = 64;
/// Latency samples per p99.
const SAMPLES: usize = 20_000;
/// Samples of the scan callback and of its floor.
const SCAN_SAMPLES: usize = 500;

impl ShrinkResults {
    /// No results yet.
    pub(crate) fn new() -> Self {
        Self { rows: KVec::new() }
    }

    /// Runs the shrinker benchmark for each size in `sizes`.
    pub(crate) fn run(&mut self, sizes: &[u64]) -> Result {
        let mut rows = KVec::with_capacity(sizes.len(), GFP_KERNEL)?;
        for &n in sizes {
            if !(SHRINK_INODES..=MAX_MAPS).contains(&n) {
                pr_err!(
                    "bench_shrinker: {} maps is out of range ({} to {})\n",
                    n,
                    SHRINK_INODES,
                    MAX_MAPS
                );
                return Err(EINVAL);
            }
            let row = shrink_one(n)?;
            rows.push(row, GFP_KERNEL)?;
        }
        self.rows = rows;
        Ok(())
    }
}

/// Times `samples` lookups at random places, returns the 99th percentile
/// in ns; stops early when `until` says so (after at least 1000).
fn lookup_p99(
    inodes: &[Arc<EmInode>],
    per_inode: u64,
    rng: &mut Rng,
    lat: &mut KVVec<u64>,
    until: impl Fn() -> bool,
) -> u64 {
    lat.clear();
    while lat.len() < lat.capacity() {
        // Both moduli are at least 1: no division by zero to check for.
        let Some(inode) = inodes.get((rng.next() % (inodes.len() as u64).max(1)) as usize) else {
            break;
        };
        let offset = (rng.next() % per_inode.max(1)) * 2 * BLOCK + 512;
        let start = Instant::<Monotonic>::now();
        let _ = inode.tree().lookup(offset, 1);
        let ns = elapsed_ns(&start).max(0) as u64;
        // Capacity is reserved: this cannot fail.
        let _ = lat.push_within_capacity(ns);
        if lat.len() >= 1000 && until() {
            break;
        }
    }
    sort(lat);
    let n = lat.len();
    if n == 0 {
        return 0;
    }
    lat[(n * 99 / 100).min(n - 1)]
}

fn shrink_one(n: u64) -> Result<ShrinkRow> {
    let mut row = ShrinkRow {
        maps: n,
        ..ShrinkRow::default()
    };
    let per_inode = n / SHRINK_INODES;
    let reg = EmOwnerRegistration::new(BLOCK as u32, false)?;
    let owner = reg.owner();
    let mut inodes = KVec::with_capacity(SHRINK_INODES as usize, GFP_KERNEL)?;
    for ino in 1..=SHRINK_INODES {
        let inode = owner.add_inode(ino)?;
        for i in 0..per_inode {
            let info = ExtentMapInfo::regular(i * 2 * BLOCK, BLOCK, (ino << 32) + i * 2 * BLOCK);
            inode.tree().add(PreparedMap::new(info)?, false)?;
            if i % 1024 == 0 {
                cond_resched();
            }
        }
        inodes.push(inode, GFP_KERNEL)?;
    }
    let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ n);
    let mut lat = KVVec::with_capacity(SAMPLES, GFP_KERNEL)?;

    // The callbacks. A run asked for one map frees one map: negligible.
    let start = Instant::<Monotonic>::now();
    let mut evictable = 0;
    for _ in 0..1000 {
        evictable += owner.counters().evictable();
    }
    row.count = per_op(elapsed_ns(&start), 1000);
    if evictable <= 0 {
        return Err(EIO);
    }
    // The scan callback when it arms a run, and arming an empty delayed
    // work item on a workqueue of the same kind, sample for sample, so that
    // both see the same machine; medians, since a timer interrupt or a
    // preemption in the middle of one sample is not the callback's cost.
    let nop = Arc::pin_init(
        pin_init!(Nop {
            work <- new_delayed_work!("bench::Nop"),
        }),
        GFP_KERNEL,
    )?;
    let queue = OwnedQueue::new_reclaim(c"emfs-bench", 1)?;
    let mut scan = KVec::with_capacity(SCAN_SAMPLES, GFP_KERNEL)?;
    let mut floor = KVec::with_capacity(SCAN_SAMPLES, GFP_KERNEL)?;
    for _ in 0..SCAN_SAMPLES {
        let start = Instant::<Monotonic>::now();
        let _ = EmOwner::request_scan(owner.as_arc_borrow(), 1, true);
        let ns = elapsed_ns(&start).max(0) as u64 * 10;
        let start = Instant::<Monotonic>::now();
        for _ in 0..10 {
            let _ = EmOwner::request_scan(owner.as_arc_borrow(), 1, true);
        }
        row.scan_pending = row.scan_pending.max(per_op(elapsed_ns(&start), 10));
        // Capacity is reserved: these cannot fail.
        let _ = scan.push_within_capacity(ns);
        EmOwner::flush(owner);
        let start = Instant::<Monotonic>::now();
        let _ = queue.enqueue_delayed(nop.clone(), RUN_DELAY);
        let _ = floor.push_within_capacity(elapsed_ns(&start).max(0) as u64 * 10);
        flush_delayed(&nop);
    }
    drop(queue);
    sort(&mut scan);
    sort(&mut floor);
    row.scan_queue = scan[SCAN_SAMPLES / 2];
    row.scan_queue_max = scan[SCAN_SAMPLES - 1];
    row.queue_floor = floor[SCAN_SAMPLES / 2];

    row.p99_idle = lookup_p99(&inodes, per_inode, &mut rng, &mut lat, || false);

    // One run over the whole cache, with lookups going on meanwhile.
    let runs = owner.runs();
    let cached = owner.counters().cached();
    let start = Instant::<Monotonic>::now();
    let _ = EmOwner::request_scan(owner.as_arc_borrow(), n as usize, true);
    row.p99_busy = lookup_p99(&inodes, per_inode, &mut rng, &mut lat, || {
        owner.runs() > runs
    });
    EmOwner::flush(owner);
    let ms = (elapsed_ns(&start).max(1) as u64).div_ceil(1_000_000);
    let freed = cached - owner.counters().cached();
    row.freed_per_ms = freed.max(0) as u64 / ms.max(1);
    pr_info!("bench_shrinker: {} maps: freed {} in {} ms\n", n, freed, ms);
    drop(inodes);
    drop(reg);
    Ok(row)
}

impl fmt::Display for ShrinkResults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rows.is_empty() {
            return writeln!(
                f,
                "no results yet: echo \"1000 100000 1000000\" > /sys/kernel/debug/emfs/bench_shrinker"
            );
        }
        writeln!(
            f,
            "{:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>6}",
            "maps",
            "freed/ms",
            "scan_ns",
            "queue_ns",
            "scan_max",
            "pending",
            "count_ns",
            "p99_idle",
            "p99_busy",
            "ratio"
        )?;
        for r in self.rows.iter() {
            write!(f, "{:>8} {:>10}", r.maps, r.freed_per_ms)?;
            for t in [
                r.scan_queue,
                r.queue_floor,
                r.scan_queue_max,
                r.scan_pending,
                r.count,
            ] {
                write!(f, " {:>8}.{}", t / 10, t % 10)?;
            }
            let ratio = r.p99_busy.saturating_mul(100) / r.p99_idle.max(1);
            writeln!(
                f,
                " {:>10} {:>10} {:>3}.{:02}",
                r.p99_idle,
                r.p99_busy,
                ratio / 100,
                ratio % 100
            )?;
        }
        Ok(())
    }
}
