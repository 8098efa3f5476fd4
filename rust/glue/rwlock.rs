// SPDX-License-Identifier: GPL-2.0

//! A reader-writer spinlock over the kernel's `rwlock_t`.
//!
//! The kernel crate's `Lock`/`Backend` pair is exclusive-only: its guard
//! always derefs mutably, and a lock is `Sync` as soon as the data is `Send`.
//! A reader-writer lock needs two kinds of guard, so it is a type of its own:
//!
//! - [`RwLock::read`] returns a [`RwLockReadGuard`] that only derefs shared.
//!   Several readers may hold it at once, from different CPUs, so the data
//!   must be `Sync` for the lock to be `Sync`. A task must not take the read
//!   lock twice: the kernel's queued rwlock is fair in process context, so
//!   the second `read()` waits behind a queued writer that waits for the
//!   first (lockdep reports it).
//! - [`RwLock::write`] and [`RwLock::try_write`] return a [`RwLockWriteGuard`]
//!   that derefs mutably, exclusive of readers and other writers.
//!
//! `rwlock_t` spins: holding either guard disables preemption, so nothing
//! that may sleep (allocation with `GFP_KERNEL`, mutexes, waiting) may be
//! done under it. Allocate before locking.
//!
//! Each [`new_rwlock!`] site gets its own lockdep class, as `new_spinlock!`
//! does, on `PREEMPT_RT` too, where `rwlock_t` is a sleeping lock built on
//! an rtmutex and C's `rwlock_init()` is another macro with a key of its own
//! (include/linux/rwlock_rt.h).
//!
//! # Examples
//!
//! ```ignore
//! let tree = KBox::pin_init(new_rwlock!(KVec::<u64>::new(), "tree"), GFP_KERNEL)?;
//! tree.write().push(1, GFP_ATOMIC)?;
//! assert_eq!(tree.read().len(), 1);
//! ```

use core::{
    cell::UnsafeCell,
    marker::{
        PhantomData,
        PhantomPinned, //
    },
    ops::{
        Deref,
        DerefMut, //
    },
};
use kernel::{
    bindings,
    prelude::*,
    str::CStr,
    sync::LockClassKey,
    types::{
        NotThreadSafe,
        Opaque, //
    },
};

use crate::glue::ffi;

/// Takes `lock` for reading (`read_lock()`): the out-of-line
/// `_raw_read_lock()` itself where the kernel has one, so that a reader
/// makes one call, not two.
///
/// # Safety
///
/// `lock` is an initialised `rwlock_t`.
#[inline]
unsafe fn raw_read_lock(lock: *mut bindings::rwlock_t) {
    #[cfg(not(any(CONFIG_PREEMPT_RT, CONFIG_INLINE_READ_LOCK)))]
    // SAFETY: As the caller promises; `read_lock()` is this call.
    unsafe {
        bindings::_raw_read_lock(lock)
    };
    #[cfg(any(CONFIG_PREEMPT_RT, CONFIG_INLINE_READ_LOCK))]
    // SAFETY: As the caller promises.
    unsafe {
        ffi::emfs_read_lock(lock)
    };
}

/// Releases a read hold of `lock` (`read_unlock()`), as [`raw_read_lock`].
///
/// # Safety
///
/// The caller holds `lock` for reading.
#[inline]
unsafe fn raw_read_unlock(lock: *mut bindings::rwlock_t) {
    #[cfg(not(any(CONFIG_PREEMPT_RT, CONFIG_INLINE_READ_UNLOCK)))]
    // SAFETY: As the caller promises; `read_unlock()` is this call.
    unsafe {
        bindings::_raw_read_unlock(lock)
    };
    #[cfg(any(CONFIG_PREEMPT_RT, CONFIG_INLINE_READ_UNLOCK))]
    // SAFETY: As the caller promises.
    unsafe {
        ffi::emfs_read_unlock(lock)
    };
}

/// Creates an [`RwLock`] initialiser with a lockdep class of its own for
/// this call site, and an optional name (the file and line otherwise).
#[macro_export]
macro_rules! new_rwlock {
    ($inner:expr $(, $name:literal)? $(,)?) => {
        $crate::glue::rwlock::RwLock::new(
            $inner,
            ::kernel::optional_name!($($name)?),
            ::kernel::static_lock_class!(),
        )
    };
}
pub(crate) use new_rwlock;

/// Initialises the `rwlock_t` at `lock` as C's `rwlock_init(lock)` does,
/// but with lockdep name `name` and class `key` instead of the macro's.
///
/// # Safety
///
/// - `lock` is valid for writes.
/// - `lock` is not a lock in use.
#[cfg(not(CONFIG_PREEMPT_RT))]
unsafe fn init_raw(
    lock: *mut bindings::rwlock_t,
    name: &'static CStr,
    key: Pin<&'static LockClassKey>,
) {
    // SAFETY: As the caller promises for `lock`; `name` and `key` are
    // static, so they outlive the lock as lockdep requires.
    unsafe { ffi::emfs_rwlock_init(lock, name.as_char_ptr(), key.as_ptr()) }
}

/// Initialises the `rwlock_t` at `lock` as C's `rwlock_init(lock)` does on
/// `PREEMPT_RT` (`init_rwbase_rt()`, then `__rt_rwlock_init()`), but with
/// lockdep name `name` and class `key` instead of the macro's.
///
/// # Safety
///
/// - `lock` is valid for writes.
/// - `lock` is not a lock in use.
#[cfg(CONFIG_PREEMPT_RT)]
unsafe fn init_raw(
    lock: *mut bindings::rwlock_t,
    name: &'static CStr,
    key: Pin<&'static LockClassKey>,
) {
    // SAFETY: As the caller promises.
    unsafe { ffi::emfs_init_rwbase_rt(lock) };
    // SAFETY: As the caller promises; the rtmutex was just initialised.
    unsafe { init_rt_lockdep(lock, name, key) };
}

/// Gives an RT `rwlock_t` its lockdep name and class (`__rt_rwlock_init()`).
///
/// # Safety
///
/// - `lock` is valid for writes.
/// - `lock` is not a lock in use.
#[cfg(all(CONFIG_PREEMPT_RT, CONFIG_DEBUG_LOCK_ALLOC))]
unsafe fn init_rt_lockdep(
    lock: *mut bindings::rwlock_t,
    name: &'static CStr,
    key: Pin<&'static LockClassKey>,
) {
    // SAFETY: As the caller promises for `lock`; `name` and `key` are
    // static, so they outlive the lock as lockdep requires.
    unsafe { ffi::__rt_rwlock_init(lock, name.as_char_ptr(), key.as_ptr()) }
}

/// Without lockdep, `__rt_rwlock_init()` does nothing.
///
/// # Safety
///
/// None needed; `unsafe` to match the lockdep variant.
#[cfg(all(CONFIG_PREEMPT_RT, not(CONFIG_DEBUG_LOCK_ALLOC)))]
unsafe fn init_rt_lockdep(
    _lock: *mut bindings::rwlock_t,
    _name: &'static CStr,
    _key: Pin<&'static LockClassKey>,
) {
}

/// A reader-writer spinlock protecting a `T`.
///
/// # Invariants
///
/// `lock` is an initialised `rwlock_t` for the whole life of the object.
/// `data` is only read through a [`RwLockReadGuard`] or a
/// [`RwLockWriteGuard`], and only written through the latter.
#[pin_data]
pub(crate) struct RwLock<T> {
    #[pin]
    lock: Opaque<bindings::rwlock_t>,
    #[pin]
    _pin: PhantomPinned,
    data: UnsafeCell<T>,
}

// SAFETY: The lock owns its data; moving the lock to another thread moves the
// data, which is allowed when `T: Send`.
unsafe impl<T: Send> Send for RwLock<T> {}

// SAFETY: Shared access to the lock hands out `&T` to several threads at once
// (readers), which needs `T: Sync`, and `&mut T` to one thread at a time
// (writer), which needs `T: Send`. The rwlock serialises writers against
// everyone else.
unsafe impl<T: Send + Sync> Sync for RwLock<T> {}

impl<T> RwLock<T> {
    /// Returns an initialiser for a lock holding `data`, with lockdep name
    /// `name` and class `key`. Use [`new_rwlock!`] rather than calling this.
    pub(crate) fn new(
        data: T,
        name: &'static CStr,
        key: Pin<&'static LockClassKey>,
    ) -> impl PinInit<Self> {
        pin_init!(Self {
            data: UnsafeCell::new(data),
            _pin: PhantomPinned,
            // SAFETY: `slot` is valid for writes while the closure runs and
            // is not a lock yet.
            lock <- Opaque::ffi_init(|slot| unsafe { init_raw(slot, name, key) }),
        })
    }

    fn raw(&self) -> *mut bindings::rwlock_t {
        self.lock.get()
    }

    /// Takes the lock for reading, spinning while a writer holds it.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, T> {
        // SAFETY: By the type invariant the lock is initialised.
        unsafe { raw_read_lock(self.raw()) };
        // INVARIANT: The read lock was just taken.
        RwLockReadGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Takes the lock for reading if no writer holds it.
    pub(crate) fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        // SAFETY: By the type invariant the lock is initialised.
        if unsafe { ffi::emfs_read_trylock(self.raw()) } == 0 {
            return None;
        }
        // INVARIANT: The read lock was just taken.
        Some(RwLockReadGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Takes the lock for writing, spinning while anyone holds it.
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, T> {
        // SAFETY: By the type invariant the lock is initialised.
        unsafe { ffi::emfs_write_lock(self.raw()) };
        // INVARIANT: The write lock was just taken.
        RwLockWriteGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Takes the lock for writing if nobody holds it; never spins.
    pub(crate) fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        // SAFETY: By the type invariant the lock is initialised.
        if unsafe { ffi::emfs_write_trylock(self.raw()) } == 0 {
            return None;
        }
        // INVARIANT: The write lock was just taken.
        Some(RwLockWriteGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Returns whether another task is waiting for the lock and the holder
    /// should let it in (`rwlock_needbreak`). Always false on kernels whose
    /// preemption model cannot preempt the holder.
    pub(crate) fn needbreak(&self) -> bool {
        // SAFETY: By the type invariant the lock is initialised; the helper
        // only reads its state.
        unsafe { ffi::emfs_rwlock_needbreak(self.raw()) != 0 }
    }
}

/// Shared access to the data of an [`RwLock`]; the read lock is released
/// when the guard is dropped.
///
/// # Invariants
///
/// The read lock of `lock` is held by this guard.
pub(crate) struct RwLockReadGuard<'a, T> {
    lock: &'a RwLock<T>,
    _not_send: NotThreadSafe,
}

impl<T> Deref for RwLockReadGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: By the type invariant the read lock is held, so no writer
        // can create a `&mut T` while this reference lives.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant this guard holds the read lock.
        unsafe { raw_read_unlock(self.lock.raw()) };
    }
}

/// Exclusive access to the data of an [`RwLock`]; the write lock is released
/// when the guard is dropped.
///
/// # Invariants
///
/// The write lock of `lock` is held by this guard.
pub(crate) struct RwLockWriteGuard<'a, T> {
    lock: &'a RwLock<T>,
    _not_send: NotThreadSafe,
}

impl<T> RwLockWriteGuard<'_, T> {
    /// Returns whether another task is waiting for the lock.
    pub(crate) fn needbreak(&self) -> bool {
        self.lock.needbreak()
    }

    /// Drops the lock and reschedules if a reschedule is due or someone
    /// waits for the lock, then takes it again (`cond_resched_rwlock_write`).
    /// Returns whether the lock was dropped: if so, anything learnt about
    /// the data before the call may be stale.
    pub(crate) fn cond_resched(&mut self) -> bool {
        // SAFETY: By the type invariant this guard holds the write lock; the
        // helper returns with it held again. `&mut self` guarantees no
        // reference into the data outlives the call.
        unsafe { ffi::emfs_cond_resched_rwlock_write(self.lock.raw()) != 0 }
    }

    /// Asserts, through lockdep, that the write lock is held.
    pub(crate) fn assert_held(&self) {
        // SAFETY: The lock is initialised; the helper only checks lockdep
        // state.
        unsafe { ffi::emfs_lockdep_assert_held_write(self.lock.raw()) };
    }
}

impl<T> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: By the type invariant the write lock is held: no one else
        // has a reference to the data.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: By the type invariant the write lock is held: no one else
        // has a reference to the data.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant this guard holds the write lock.
        unsafe { ffi::emfs_write_unlock(self.lock.raw()) };
    }
}

#[cfg(not(emfs_library))]
#[kernel::macros::kunit_tests(emfs_rwlock)]
mod tests {
    use super::*;
    use crate::glue::{
        kunit::{
            kunit_ensure,
            kunit_ensure_eq, //
        },
        sched,
        workqueue::system_dfl, //
    };
    use kernel::{
        new_work,
        sync::{
            atomic::{
                Atomic,
                Relaxed, //
            },
            Arc,
            Completion, //
        },
        workqueue::{
            impl_has_work,
            Work,
            WorkItem, //
        },
    };

    /// What the worker does with the lock.
    #[derive(Clone, Copy, PartialEq)]
    enum Mode {
        Read,
        Write,
    }

    /// A lock, and a worker that takes it while the test thread holds it.
    #[pin_data]
    struct Shared {
        #[pin]
        lock: RwLock<u64>,
        mode: Mode,
        /// Set by the worker once it holds the lock.
        entered: Atomic<u32>,
        /// The value the worker found under the lock.
        seen: Atomic<u64>,
        #[pin]
        done: Completion,
        #[pin]
        work: Work<Shared>,
    }

    impl_has_work! {
        impl HasWork<Self> for Shared { self.work }
    }

    impl WorkItem for Shared {
        type Pointer = Arc<Shared>;

        fn run(this: Arc<Shared>) {
            match this.mode {
                Mode::Read => {
                    let guard = this.lock.read();
                    this.seen.store(*guard, Relaxed);
                    this.entered.store(1, Relaxed);
                    // Keep the read lock a little, so that a reader on the
                    // other CPU can observe two readers inside at once.
                    sched::mdelay(20);
                }
                Mode::Write => {
                    let mut guard = this.lock.write();
                    this.seen.store(*guard, Relaxed);
                    *guard += 1;
                    this.entered.store(1, Relaxed);
                }
            }
            this.done.complete_all();
        }
    }

    fn shared(mode: Mode, value: u64) -> Result<Arc<Shared>> {
        Arc::pin_init(
            pin_init!(Shared {
                lock <- new_rwlock!(value, "emfs_rwlock_test"),
                mode,
                entered: Atomic::new(0),
                seen: Atomic::new(0),
                done <- Completion::new(),
                work <- new_work!("emfs_rwlock_test::work"),
            }),
            GFP_KERNEL,
        )
    }

    /// Spins (the caller may hold a spinning lock) until the worker has
    /// entered, for at most `ms` milliseconds. Returns whether it entered.
    fn spin_until_entered(s: &Shared, ms: u32) -> bool {
        for _ in 0..ms {
            if s.entered.load(Relaxed) != 0 {
                return true;
            }
            sched::mdelay(1);
        }
        s.entered.load(Relaxed) != 0
    }

    #[test]
    fn readers_share() -> Result {
        // A reader on another CPU gets in while we read.
        kunit_ensure!(sched::num_online_cpus() >= 2);
        let s = shared(Mode::Read, 42)?;
        {
            let outer = s.lock.read();
            // Read locks do not nest on one task: with a writer queued the
            // second read_lock would wait behind it (lockdep says so).
            let _ = system_dfl().enqueue(s.clone());
            kunit_ensure!(spin_until_entered(&s, 5000));
            kunit_ensure_eq!(*outer, 42);
        }
        s.done.wait_for_completion();
        kunit_ensure_eq!(s.seen.load(Relaxed), 42);
        Ok(())
    }

    #[test]
    fn writer_excludes_reader() -> Result {
        let s = shared(Mode::Read, 1)?;
        {
            let mut guard = s.lock.write();
            let _ = system_dfl().enqueue(s.clone());
            // The reader must not get in while we hold the write lock.
            kunit_ensure!(!spin_until_entered(&s, 50));
            *guard = 7;
        }
        s.done.wait_for_completion();
        kunit_ensure_eq!(s.entered.load(Relaxed), 1);
        kunit_ensure_eq!(s.seen.load(Relaxed), 7);
        Ok(())
    }

    #[test]
    fn writer_excludes_writer() -> Result {
        let s = shared(Mode::Write, 10)?;
        {
            let mut guard = s.lock.write();
            let _ = system_dfl().enqueue(s.clone());
            kunit_ensure!(!spin_until_entered(&s, 50));
            *guard = 20;
        }
        s.done.wait_for_completion();
        // The worker saw our write and added its own.
        kunit_ensure_eq!(s.seen.load(Relaxed), 20);
        kunit_ensure_eq!(*s.lock.read(), 21);
        Ok(())
    }

    #[test]
    fn reader_excludes_writer() -> Result {
        let s = shared(Mode::Write, 5)?;
        {
            let guard = s.lock.read();
            let _ = system_dfl().enqueue(s.clone());
            kunit_ensure!(!spin_until_entered(&s, 50));
            kunit_ensure_eq!(*guard, 5);
        }
        s.done.wait_for_completion();
        kunit_ensure_eq!(*s.lock.read(), 6);
        Ok(())
    }

    #[test]
    fn try_write_fails_while_held() -> Result {
        let s = shared(Mode::Read, 0)?;
        {
            let _reader = s.lock.read();
            kunit_ensure!(s.lock.try_write().is_none());
            kunit_ensure!(s.lock.try_read().is_some());
        }
        {
            let _writer = s.lock.write();
            kunit_ensure!(s.lock.try_write().is_none());
            kunit_ensure!(s.lock.try_read().is_none());
        }
        let mut guard = s.lock.try_write().ok_or(EBUSY)?;
        *guard = 3;
        drop(guard);
        kunit_ensure_eq!(*s.lock.try_read().ok_or(EBUSY)?, 3);
        Ok(())
    }

    #[test]
    fn cond_resched_keeps_the_lock() -> Result {
        let s = shared(Mode::Read, 0)?;
        let mut guard = s.lock.write();
        for i in 0..1000u64 {
            *guard += i;
            // Whether or not the lock was dropped, it is held again now.
            let _ = guard.cond_resched();
            guard.assert_held();
            kunit_ensure!(s.lock.try_read().is_none());
        }
        kunit_ensure!(!guard.needbreak());
        kunit_ensure_eq!(*guard, 499500);
        Ok(())
    }
}
