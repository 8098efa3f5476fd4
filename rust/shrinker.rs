// SPDX-License-Identifier: GPL-2.0

//! The extent map shrinker: owners, their inodes, and the worker that
//! evicts cached extent maps under memory pressure.
//!
//! An [`EmOwner`] stands for one mounted filesystem: it counts the maps of
//! all its inodes ([`EmCounters`]), keeps a registry of its inodes
//! ([`EmInode`], each with an [`ExtentMapTree`]) ordered by inode number,
//! and registers a shrinker of its own, named `emfs-extent-map:<id>`. One
//! shrinker per owner (rather than one per module with a registry of
//! owners) keeps teardown local: unmounting frees that shrinker, cancels
//! that worker and is done, and the kernel's per-shrinker debugfs entry
//! shows each filesystem apart.
//!
//! The policy follows btrfs (`btrfs_free_extent_maps()` and its worker, in
//! fs/btrfs/extent_map.c), with two lessons from ext4's extent status
//! shrinker and one from bcache:
//!
//! - `count` returns the owner's exact number of evictable maps, one atomic
//!   read, never a walk.
//! - `scan` never blocks and costs a few hundred nanoseconds: it returns
//!   `SHRINK_STOP` when the allocation may not recurse into filesystems,
//!   the owner is going away, or a run is already pending (btrfs's "one run
//!   at a time": the request is recorded by a compare-and-swap from zero,
//!   so a storm of reclaimers makes one run). Otherwise it arms the
//!   worker's timer, one jiffy ahead ([`RUN_DELAY`]): queueing at once
//!   would wake a kworker on another CPU, which costs tens of
//!   microseconds in the reclaimer; a timer costs nothing until it fires.
//! - A task in direct reclaim evicts the batch itself and reports it
//!   freed: only what a task frees itself counts as its reclaim's
//!   progress, so leaving it to the worker would end in the OOM killer
//!   while the cache still holds memory. kswapd and every other caller
//!   hand the work to the worker.
//! - The worker runs on the owner's own unbound `WQ_MEM_RECLAIM`
//!   workqueue, whose rescuer thread runs it even when memory is too short
//!   to start a new kworker: eviction is what frees that memory.
//! - The worker walks the inodes from a saved cursor, so successive runs
//!   resume where the last one stopped; try-locks each tree and skips it
//!   when busy; never drops a pinned map; marks the inode for a full fsync
//!   when it drops a map fsync has still to log (modified, or being
//!   logged); stops early when a reschedule is due, someone waits for the
//!   tree lock, or the owner is closing; and accounts what it scanned and
//!   freed.
//! - Recently used inodes lose their maps later, never never: a lookup
//!   marks its inode referenced, and the worker passes over a referenced
//!   inode once, clearing the mark (a CLOCK second chance). An inode it
//!   passed over is not passed over again until maps were taken from it:
//!   an inode looked up continuously still gives its maps back on every
//!   second visit, so a run of two visits per inode reaches every
//!   evictable map and `count` never advertises maps a run would refuse.
//!   (A plain CLOCK bit per inode livelocks: an inode looked up between
//!   every two visits would keep all its maps forever.)
//! - Like bcache's btree cache shrinker, it stops rather than block, and
//!   keeps what it must (pinned maps stand in for bcache's reserve).
//!
//! # Lock order
//!
//! 1. `EmOwner::inodes` (spinlock): held only to find the next inode and
//!    take a reference to it; never held with a tree lock.
//! 2. `ExtentMapTree::lock`: the worker only try-locks it.
//!
//! `count` takes no lock. `scan` takes none either, but in direct reclaim,
//! where it evicts as the worker does: `inodes`, then try-locks. Neither is held across an allocation anywhere, so a task in
//! reclaim cannot hold one of them.

use crate::{
    extent_map::{
        EmCounters,
        EvictedMap,
        ExtentMap,
        ExtentMapTree,
        TreeCheck, //
    },
    glue::{
        mm::in_direct_reclaim,
        proc::{
            ModuleProcDir,
            ProcDir,
            ProcFile,
            ProcShow, //
        },
        sched::{
            cond_resched,
            need_resched, //
        },
        shrinker::{
            ShrinkControl,
            ShrinkCount,
            ShrinkScan,
            Shrinker,
            ShrinkerBuilder,
            ShrinkerRegistration,
            DEFAULT_SEEKS, //
        },
        trace,
        workqueue::{
            cancel_delayed_sync,
            flush_delayed,
            OwnedQueue, //
        },
    },
};
use kernel::{
    new_delayed_work, new_spinlock,
    prelude::*,
    rbtree::{
        RBTree,
        RBTreeNodeReservation, //
    },
    seq_file::{
        seq_print,
        SeqFile, //
    },
    str::CString,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        ArcBorrow,
        SpinLock, //
    },
    time::Jiffies,
    workqueue::{
        impl_has_delayed_work,
        DelayedWork,
        WorkItem, //
    },
};

/// Owners alive, for leak checks.
static LIVE_OWNERS: Atomic<i64> = Atomic::new(0);
/// Owner identifiers; never reused.
static NEXT_OWNER_ID: Atomic<u64> = Atomic::new(1);

/// Maps asked for per scan call: the kernel's default batch. The kernel
/// calls a shrinker only once its share of a reclaim pass (in proportion
/// to its count) has built up to a batch; with 1024, a cache of a few
/// thousand maps went unscanned under moderate pressure (the tools
/// scenario's reads after pressure then had nothing to reload).
const SHRINK_BATCH: usize = 128;
/// Maps a task in direct reclaim evicts at least, per scan call. Reclaim
/// counts its progress in pages freed; a map is a fraction of a slab page,
/// and a page is freed only with its last object, so a small batch often
/// frees no page, and reclaim, seeing none, backs off and sleeps.
const DIRECT_BATCH: u64 = 1024;
/// Jiffies between a scan call and the worker run it asks for: arming a
/// timer instead of queueing at once spares the reclaimer the wake-up of a
/// kworker on another CPU.
pub(crate) const RUN_DELAY: Jiffies = 1;
/// Maps the worker takes out of a tree per hold of its lock: a lookup
/// waits for at most this many unlinks (32 let the 99th percentile of
/// lookups during a shrink reach 1.5 times idle in `make bench`).
const EVICT_BATCH: usize = 16;

/// Returns the number of owners alive in the module.
pub(crate) fn live_owners() -> i64 {
    LIVE_OWNERS.load(Relaxed)
}

/// The extent maps of one inode, as the shrinker sees them.
#[pin_data]
pub(crate) struct EmInode {
    ino: u64,
    #[pin]
    tree: ExtentMapTree,
    /// Set by lookups, cleared by the worker: a second chance.
    referenced: Atomic<u32>,
    /// Set by the worker when it passes the inode over, cleared when it
    /// takes maps from it: no second chance twice in a row.
    spared: Atomic<u32>,
}

impl EmInode {
    /// The tree of inode `ino`.
    pub(crate) fn new(ino: u64, owner: &EmOwner) -> impl PinInit<Self> + '_ {
        let tree = ExtentMapTree::new(ino, owner.blocksize, owner.counters.clone());
        pin_init!(Self {
            ino,
            tree <- tree,
            referenced: Atomic::new(0),
            spared: Atomic::new(0),
        })
    }

    /// The inode number.
    pub(crate) fn ino(&self) -> u64 {
        self.ino
    }

    /// The inode's extent map tree.
    pub(crate) fn tree(&self) -> &ExtentMapTree {
        &self.tree
    }

    /// Marks the inode as recently used: the shrinker passes it over once.
    pub(crate) fn touch(&self) {
        if self.referenced.load(Relaxed) == 0 {
            self.referenced.store(1, Relaxed);
        }
    }

    /// Looks up a map ([`ExtentMapTree::lookup`]) and marks the inode used.
    pub(crate) fn lookup(&self, start: u64, len: u64) -> Option<ExtentMap> {
        self.touch();
        self.tree.lookup(start, len)
    }
}

/// What one worker run did.
struct ScanCtx {
    nr_to_scan: u64,
    scanned: u64,
    freed: u64,
}

/// One mounted filesystem's extent maps and their shrinker.
#[pin_data]
pub(crate) struct EmOwner {
    id: u64,
    blocksize: u32,
    counters: Arc<EmCounters>,
    #[pin]
    inodes: SpinLock<RBTree<u64, Arc<EmInode>>>,
    /// Number of registered inodes (changed under `inodes`' lock).
    nr_inodes: Atomic<u64>,
    /// Maps asked for by the pending run; zero when none is pending.
    nr_to_scan: Atomic<u64>,
    /// The inode number the last run stopped at.
    cursor: Atomic<u64>,
    /// Set when the owner goes away: scans stop, the worker leaves.
    closing: Atomic<u32>,
    /// For tests: an inode the worker looks up between any two of its
    /// visits, as readers on other CPUs would (0: none).
    touch_between_visits: Atomic<u64>,
    runs: Atomic<u64>,
    scanned: Atomic<u64>,
    freed: Atomic<u64>,
    skipped_busy: Atomic<u64>,
    spared: Atomic<u64>,
    direct: Atomic<u64>,
    /// Where the worker runs. The registration holds a reference to the
    /// owner until the worker is cancelled, so the last reference is never
    /// dropped by the worker itself (which could not destroy its queue).
    queue: OwnedQueue,
    #[pin]
    work: DelayedWork<EmOwner>,
    _live: LiveOwner,
}

/// Counts the live owners.
struct LiveOwner;

impl LiveOwner {
    fn new() -> Self {
        LIVE_OWNERS.add(1, Relaxed);
        LiveOwner
    }
}

impl Drop for LiveOwner {
    fn drop(&mut self) {
        LIVE_OWNERS.add(-1, Relaxed);
    }
}

impl_has_delayed_work! {
    impl HasDelayedWork<Self> for EmOwner { self.work }
}

impl WorkItem for EmOwner {
    type Pointer = Arc<EmOwner>;

    fn run(this: Arc<EmOwner>) {
        this.shrink();
    }
}

impl Shrinker for EmOwner {
    fn count(this: ArcBorrow<'_, Self>, _sc: &ShrinkControl<'_>) -> ShrinkCount {
        match this.counters.evictable() {
            n if n > 0 => ShrinkCount::Objects(n as usize),
            _ => ShrinkCount::Empty,
        }
    }

    fn scan(this: ArcBorrow<'_, Self>, sc: &mut ShrinkControl<'_>) -> ShrinkScan {
        // The worker scans `nr_to_scan` on the caller's behalf, which is
        // what the kernel assumes scanned unless told otherwise.
        Self::request_scan(this, sc.nr_to_scan(), sc.allows_fs())
    }
}

impl EmOwner {
    fn new(blocksize: u32) -> Result<Arc<Self>> {
        let counters = EmCounters::new()?;
        let id = NEXT_OWNER_ID.fetch_add(1, Relaxed);
        let name = CString::try_from_fmt(fmt!("emfs-evict:{}", id))?;
        let queue = OwnedQueue::new_reclaim(&name, 1)?;
        let owner = Arc::pin_init(
            pin_init!(Self {
                id,
                blocksize,
                counters,
                inodes <- new_spinlock!(RBTree::new(), "EmOwner::inodes"),
                nr_inodes: Atomic::new(0),
                nr_to_scan: Atomic::new(0),
                cursor: Atomic::new(0),
                closing: Atomic::new(0),
                touch_between_visits: Atomic::new(0),
                runs: Atomic::new(0),
                scanned: Atomic::new(0),
                freed: Atomic::new(0),
                skipped_busy: Atomic::new(0),
                spared: Atomic::new(0),
                direct: Atomic::new(0),
                queue,
                work <- new_delayed_work!("EmOwner::work"),
                _live: LiveOwner::new(),
            }),
            GFP_KERNEL,
        )?;
        Ok(owner)
    }

    /// The owner's identifier (its directory in /proc/fs/emfs).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The owner's map counters.
    pub(crate) fn counters(&self) -> &Arc<EmCounters> {
        &self.counters
    }

    /// Number of worker runs so far.
    pub(crate) fn runs(&self) -> u64 {
        self.runs.load(Relaxed)
    }

    /// Number of times the worker passed a referenced inode over.
    pub(crate) fn spared(&self) -> u64 {
        self.spared.load(Relaxed)
    }

    /// For tests: has the worker look inode `ino` up between any two of its
    /// visits (0: stop), deterministically what readers on other CPUs do
    /// at random.
    #[cfg(CONFIG_KUNIT = "y")]
    pub(crate) fn touch_between_visits(&self, ino: u64) {
        self.touch_between_visits.store(ino, Relaxed);
    }

    /// Creates an inode's tree and adds it to the registry. `EINVAL` for
    /// inode number 0 (the worker's cursor uses it for "from the start"),
    /// `EEXIST` if the inode number is taken, `ENOMEM`.
    pub(crate) fn add_inode(&self, ino: u64) -> Result<Arc<EmInode>> {
        if ino == 0 {
            return Err(EINVAL);
        }
        let inode = Arc::pin_init(EmInode::new(ino, self), GFP_KERNEL)?;
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let mut inodes = self.inodes.lock();
        if inodes.get(&ino).is_some() {
            return Err(EEXIST);
        }
        let _ = inodes.insert(node.into_node(ino, inode.clone()));
        self.nr_inodes.add(1, Relaxed);
        Ok(inode)
    }

    /// Takes an inode out of the registry and drops its maps.
    pub(crate) fn remove_inode(&self, ino: u64) -> Option<Arc<EmInode>> {
        let inode = {
            let mut inodes = self.inodes.lock();
            let inode = inodes.remove(&ino)?;
            self.nr_inodes.fetch_sub(1, Relaxed);
            inode
        };
        inode.tree.drop_all();
        Some(inode)
    }

    /// The registered inode `ino`.
    pub(crate) fn inode(&self, ino: u64) -> Option<Arc<EmInode>> {
        self.inodes.lock().get(&ino).cloned()
    }

    /// The first registered inode after `ino`.
    fn inode_after(&self, ino: u64) -> Option<Arc<EmInode>> {
        let key = ino.checked_add(1)?;
        self.inodes
            .lock()
            .cursor_lower_bound(&key)
            .map(|c| c.current().1.clone())
    }

    /// Holds the inode registry's lock, for tests that need the worker to
    /// wait.
    #[cfg(CONFIG_KUNIT = "y")]
    pub(crate) fn hold_inodes_for_test(
        &self,
    ) -> kernel::sync::lock::Guard<
        '_,
        RBTree<u64, Arc<EmInode>>,
        kernel::sync::lock::spinlock::SpinLockBackend,
    > {
        self.inodes.lock()
    }

    /// Checks every registered tree ([`TreeInner::check`]) and the owner's
    /// counters against the sum of their recounts; returns the sum and the
    /// number of trees. Exact when no map is being added or dropped
    /// meanwhile.
    ///
    /// [`TreeInner::check`]: crate::extent_map::TreeInner::check
    pub(crate) fn check(&self) -> (TreeCheck, u64) {
        let mut sum = TreeCheck::default();
        let mut inodes = 0u64;
        let mut ino = 0;
        while let Some(inode) = self.inode_after(ino) {
            ino = inode.ino();
            inodes += 1;
            let c = inode.tree().read().check();
            sum.cached += c.cached;
            sum.pinned += c.pinned;
            sum.logging += c.logging;
            sum.modified += c.modified;
            sum.problems += c.problems;
        }
        let c = &self.counters;
        let counts = [
            ("inodes", self.nr_inodes.load(Relaxed) as i64, inodes),
            ("cached", c.cached(), sum.cached),
            ("evictable", c.evictable(), sum.cached - sum.pinned),
            ("pinned", c.pinned(), sum.pinned),
            ("modified", c.modified(), sum.modified),
        ];
        for (what, kept, recount) in counts {
            if kept != recount as i64 {
                pr_err!(
                    "check: owner {}: {} counter {} but {} counted\n",
                    self.id,
                    what,
                    kept,
                    recount
                );
                sum.problems += 1;
            }
        }
        (sum, inodes)
    }

    fn is_closing(&self) -> bool {
        self.closing.load(Relaxed) != 0
    }

    /// The shrinker's scan, on its own: records the request and arms the
    /// worker (`btrfs_free_extent_maps()`). Never blocks. `Stop` when the
    /// caller may not enter filesystems, the owner is closing, or a run is
    /// pending already: that run frees what the kernel asks for, and the
    /// kernel calls again if it needs more. A task in direct reclaim
    /// evicts the batch itself instead, and reports it freed.
    pub(crate) fn request_scan(
        this: ArcBorrow<'_, Self>,
        nr_to_scan: usize,
        allows_fs: bool,
    ) -> ShrinkScan {
        // Dropping maps may mark inodes for a full fsync and the worker
        // takes filesystem locks: not from inside a filesystem.
        if !allows_fs || this.is_closing() {
            return ShrinkScan::Stop;
        }
        let nr = (nr_to_scan as u64).max(1);
        // A task in direct reclaim is waiting for memory, and only what it
        // frees itself counts as its progress: it evicts the batch on its
        // own, or the allocator would see none and call the OOM killer
        // while the worker is still at work.
        if in_direct_reclaim() {
            let ctx = this.evict(nr.max(DIRECT_BATCH));
            this.direct.add(1, Relaxed);
            return match ctx.freed {
                0 => ShrinkScan::Stop,
                freed => ShrinkScan::Freed(freed as usize),
            };
        }
        if this.nr_to_scan.cmpxchg(0, nr, Relaxed).is_err() {
            return ShrinkScan::Stop;
        }
        // Fails only if the run is armed already, which then takes the
        // request: the reference it would have taken is dropped.
        let _ = this.queue.enqueue_delayed(Arc::from(this), RUN_DELAY);
        ShrinkScan::Freed(0)
    }

    /// Runs a pending worker run now and waits for it, or for a running
    /// one, to finish.
    pub(crate) fn flush(this: &Arc<Self>) {
        flush_delayed(this);
    }

    /// What a lookup on another CPU would do between two visits; see
    /// [`EmOwner::touch_between_visits`].
    fn between_visits(&self) {
        let ino = self.touch_between_visits.load(Relaxed);
        if ino != 0 {
            if let Some(inode) = self.inode(ino) {
                inode.touch();
            }
        }
    }

    /// A worker run (`btrfs_extent_map_shrinker_worker()`).
    fn shrink(&self) {
        self.evict(self.nr_to_scan.load(Relaxed));
        self.runs.add(1, Relaxed);
        self.nr_to_scan.store(0, Relaxed);
    }

    /// Evicts up to `nr_to_scan` maps, walking the inodes from the cursor:
    /// a worker run, or a task in direct reclaim helping one. Takes only
    /// try-locks and allocates nothing, so it cannot wait on what its
    /// caller holds; several may run at once (the cursor is a hint).
    fn evict(&self, nr_to_scan: u64) -> ScanCtx {
        let mut ctx = ScanCtx {
            nr_to_scan,
            scanned: 0,
            freed: 0,
        };
        trace::em_shrinker_scan_enter(self.id, ctx.nr_to_scan, self.counters.evictable());

        let nr_inodes = self.nr_inodes.load(Relaxed);
        // Each inode is visited at most twice: it is passed over at most
        // once, so the second visit drops its maps.
        let mut visits_left = 2 * nr_inodes;
        let mut cursor = self.cursor.load(Relaxed);
        while ctx.scanned < ctx.nr_to_scan && visits_left > 0 && !self.is_closing() {
            let Some(inode) = self.inode_after(cursor) else {
                if cursor == 0 {
                    break;
                }
                // Past the last inode: start over from the first.
                cursor = 0;
                continue;
            };
            cursor = inode.ino;
            visits_left -= 1;
            let referenced = inode.referenced.xchg(0, Relaxed) != 0;
            if referenced && inode.spared.xchg(1, Relaxed) == 0 {
                // Its second chance; the next visit takes maps whatever
                // lookups happen meanwhile.
                self.spared.add(1, Relaxed);
            } else {
                inode.spared.store(0, Relaxed);
                if !self.shrink_inode(&inode, &mut ctx) {
                    self.skipped_busy.add(1, Relaxed);
                }
            }
            self.between_visits();
            cond_resched();
        }
        self.cursor.store(cursor, Relaxed);

        self.scanned.add(ctx.scanned, Relaxed);
        self.freed.add(ctx.freed, Relaxed);
        trace::em_shrinker_scan_exit(self.id, ctx.freed, self.counters.evictable());
        ctx
    }

    /// Drops the evictable maps of one inode (`btrfs_scan_inode()`), a
    /// batch per hold of its tree lock; the maps of a batch are freed after
    /// the lock is dropped, so readers wait for no more than a batch of
    /// unlinks. Returns false if the tree was busy from the start.
    fn shrink_inode(&self, inode: &EmInode, ctx: &mut ScanCtx) -> bool {
        let mut stash: [Option<EvictedMap>; EVICT_BATCH] = [const { None }; EVICT_BATCH];
        let mut from = 0;
        loop {
            // Someone is about to do I/O on the inode: leave it.
            let Some(mut tree) = inode.tree.try_write() else {
                return from != 0;
            };
            if tree.nr_evictable() == 0 {
                return true;
            }
            let budget = ctx.nr_to_scan - ctx.scanned;
            let batch = tree.evict_batch(from, budget, &mut stash);
            // Let others at the lock: stop here if they wait.
            let contended = tree.needbreak();
            drop(tree);

            ctx.scanned += batch.examined;
            ctx.freed += batch.evicted as u64;
            for node in stash.iter_mut().take(batch.evicted) {
                if let Some(node) = node.take() {
                    let em = node.into_map();
                    trace::em_shrinker_remove_em(
                        inode.ino,
                        em.start(),
                        em.len(),
                        em.flags().bits(),
                    );
                }
            }
            let Some(next) = batch.next else {
                return true;
            };
            if ctx.scanned >= ctx.nr_to_scan || contended || need_resched() || self.is_closing() {
                return true;
            }
            from = next;
        }
    }
}

impl ProcShow for EmOwner {
    fn show(&self, m: &SeqFile) {
        let c = &self.counters;
        seq_print!(m, "inodes {}\n", self.nr_inodes.load(Relaxed));
        seq_print!(m, "maps_cached {}\n", c.cached());
        seq_print!(m, "maps_evictable {}\n", c.evictable());
        seq_print!(m, "maps_pinned {}\n", c.pinned());
        seq_print!(m, "maps_modified {}\n", c.modified());
        // Summing the hits reads every CPU's count: once.
        let (hits, misses) = (c.hits(), c.misses());
        seq_print!(m, "lookups {}\n", hits + misses);
        seq_print!(m, "hits {}\n", hits);
        seq_print!(m, "misses {}\n", misses);
        seq_print!(m, "merges {}\n", c.merges());
        seq_print!(m, "shrinker_runs {}\n", self.runs.load(Relaxed));
        seq_print!(m, "shrinker_scanned {}\n", self.scanned.load(Relaxed));
        seq_print!(m, "shrinker_freed {}\n", self.freed.load(Relaxed));
        seq_print!(
            m,
            "shrinker_skipped_busy {}\n",
            self.skipped_busy.load(Relaxed)
        );
        seq_print!(m, "shrinker_spared {}\n", self.spared.load(Relaxed));
        seq_print!(m, "shrinker_direct {}\n", self.direct.load(Relaxed));
    }
}

/// A live owner: its shrinker registered, its statistics in
/// `/proc/fs/emfs/<id>/stats`. Dropping it tears everything down in the
/// order that keeps the worker from using freed memory: mark the owner
/// closing (scans stop, the worker leaves early), unregister the shrinker
/// (waits for running callbacks, so none can queue the worker again),
/// cancel or wait for the worker, remove the proc files (waits for
/// readers), drop the inodes.
pub(crate) struct EmOwnerRegistration {
    owner: Arc<EmOwner>,
    shrinker: Option<ShrinkerRegistration<EmOwner>>,
    stats: Option<ProcFile<EmOwner>>,
    dir: Option<Arc<ProcDir>>,
}

impl EmOwnerRegistration {
    /// Creates an owner for maps aligned to `blocksize`, with its shrinker
    /// and, if `with_proc`, its directory `/proc/fs/emfs/<id>`, made in
    /// the module's directory ([`ModuleProcDir::get`]; `ENOENT` if the
    /// module has none). `ENOMEM`.
    pub(crate) fn new(blocksize: u32, with_proc: bool) -> Result<Self> {
        let owner = EmOwner::new(blocksize)?;
        let mut reg = Self {
            owner: owner.clone(),
            shrinker: None,
            stats: None,
            dir: None,
        };
        if with_proc {
            let parent = ModuleProcDir::get().ok_or(ENOENT)?;
            let name = CString::try_from_fmt(fmt!("{}", owner.id))?;
            let dir = ProcDir::new(&name, Some(&parent))?;
            reg.stats = Some(ProcFile::new(c"stats", &dir, owner.clone())?);
            reg.dir = Some(dir);
        }
        let name = CString::try_from_fmt(fmt!("emfs-extent-map:{}", owner.id))?;
        reg.shrinker = Some(
            ShrinkerBuilder::new(&name)
                .seeks(DEFAULT_SEEKS)
                .batch(SHRINK_BATCH)
                .register(owner)?,
        );
        Ok(reg)
    }

    /// The owner.
    pub(crate) fn owner(&self) -> &Arc<EmOwner> {
        &self.owner
    }
}

impl Drop for EmOwnerRegistration {
    fn drop(&mut self) {
        self.owner.closing.store(1, Relaxed);
        drop(self.shrinker.take());
        cancel_delayed_sync(&self.owner);
        drop(self.stats.take());
        drop(self.dir.take());
        let inodes = {
            let mut inodes = self.owner.inodes.lock();
            self.owner.nr_inodes.store(0, Relaxed);
            core::mem::take(&mut *inodes)
        };
        for inode in inodes.values() {
            inode.tree.drop_all();
        }
    }
}

#[cfg(CONFIG_KUNIT = "y")]
mod tests;
