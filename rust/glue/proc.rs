// SPDX-License-Identifier: GPL-2.0

//! Read-only files in /proc (`proc_mkdir()`, `proc_create_single_data()`).
//!
//! A [`ProcFile`] shows a value implementing [`ProcShow`] through a
//! `seq_file`. Removing an entry waits for readers in progress, so the data
//! a file shows is released only after its last read ends.
//!
//! # Ownership
//!
//! Removing a directory (`proc_remove()`) removes and frees everything
//! below it, whoever made it. An entry that another owner's removal freed
//! would be used after free by its own removal, so the API keeps every
//! entry below its owner's directory and nobody else's:
//!
//! - An entry is made *in* a [`ProcDir`] and keeps a reference to it, so a
//!   directory goes only after everything made in it.
//! - Names are one path component: procfs would follow a `/` into a
//!   directory below, which its owner may remove, freeing the new entry
//!   with it while the entry's owner still holds it.
//! - Only two directories take entries without a [`ProcDir`]: `/proc`
//!   (name `"<name>"`) and `/proc/fs` (name `"fs/<name>"`). procfs makes
//!   both at boot and never removes them.
//!
//! Code that cannot be handed the module's directory (filesystem
//! callbacks) finds it through [`ModuleProcDir`].
//!
//! # Examples
//!
//! ```ignore
//! let root = ProcDir::new(c"fs/emfs", None)?; // /proc/fs/emfs
//! let dir = ProcDir::new(c"3", Some(&root))?; // /proc/fs/emfs/3
//! let stats = ProcFile::new(c"stats", &dir, owner)?;
//! drop(root); // `dir` keeps /proc/fs/emfs
//! drop(dir); // `stats` keeps /proc/fs/emfs/3
//! drop(stats); // removes stats, then 3, then emfs
//! ```

use core::{
    marker::PhantomData,
    ptr::NonNull, //
};
use kernel::{
    bindings,
    prelude::*,
    seq_file::SeqFile,
    str::CStr,
    sync::{
        atomic::{
            Acquire,
            Atomic,
            Relaxed,
            Release, //
        },
        Arc,
        ArcBorrow, //
    },
};

use crate::glue::ffi;

/// The longest name procfs takes (`NAME_MAX`, include/uapi/linux/limits.h).
const NAME_MAX: usize = 255;

/// Checks that `name` is one path component procfs takes: not empty, not
/// `.` or `..`, no `/`, at most [`NAME_MAX`] bytes. procfs would warn about
/// the first ones and follow a `/` into a directory that is not ours.
fn check_component(name: &[u8]) -> Result {
    if name.is_empty()
        || name.len() > NAME_MAX
        || name == b"."
        || name == b".."
        || name.contains(&b'/')
    {
        return Err(EINVAL);
    }
    Ok(())
}

/// Checks the name of a directory made without a parent [`ProcDir`]:
/// `"<name>"` for `/proc/<name>` or `"fs/<name>"` for `/proc/fs/<name>`,
/// `<name>` one component. `/proc` itself refuses numbers, which are PIDs.
fn check_top_level(path: &CStr) -> Result {
    let path = path.to_bytes();
    match path.strip_prefix(b"fs/") {
        Some(name) => check_component(name),
        None if path.iter().all(u8::is_ascii_digit) => Err(EINVAL),
        None => check_component(path),
    }
}

/// A directory in /proc, removed, with what is in it, when the last
/// reference goes.
///
/// # Invariants
///
/// `entry` is a live proc directory created by this type in `_parent`'s
/// directory, or in `/proc` or `/proc/fs` if `_parent` is `None`. Only the
/// removal in [`Drop`] removes it: its parent is kept alive by `_parent`
/// (or is never removed), and every entry made in it holds a reference to
/// it, so it is empty when removed.
pub(crate) struct ProcDir {
    entry: NonNull<bindings::proc_dir_entry>,
    _parent: Option<Arc<ProcDir>>,
}

// SAFETY: proc entries are not tied to a task; removal may happen anywhere.
unsafe impl Send for ProcDir {}
// SAFETY: `&ProcDir` only allows creating entries, which procfs serialises.
unsafe impl Sync for ProcDir {}

impl ProcDir {
    /// Creates directory `name` in `parent`, which it keeps until it goes.
    /// Without a parent, `name` is `"<name>"` for `/proc/<name>` or
    /// `"fs/<name>"` for `/proc/fs/<name>`.
    ///
    /// `<name>` is one path component, not a path (see the module
    /// documentation): `EINVAL` otherwise. `ENOMEM` if procfs refuses (out
    /// of memory, or the name is taken, which procfs warns about).
    pub(crate) fn new(name: &CStr, parent: Option<&Arc<ProcDir>>) -> Result<Arc<Self>> {
        match parent {
            Some(_) => check_component(name.to_bytes())?,
            None => check_top_level(name)?,
        }
        let raw_parent = parent.map_or(core::ptr::null_mut(), |p| p.entry.as_ptr());
        // SAFETY: `name` is NUL-terminated; `raw_parent` is null (the path
        // then starts at `/proc`, whose `fs` procfs never removes) or a live
        // entry, by the type invariant of `parent`, which we borrow.
        let entry = unsafe { ffi::emfs_proc_mkdir(name.as_char_ptr(), raw_parent) };
        let entry = NonNull::new(entry).ok_or(ENOMEM)?;
        // INVARIANT: A non-null result is a live directory in `parent`, or
        // in `/proc` or `/proc/fs` as `check_top_level` allowed; `_parent`
        // keeps `parent`.
        let dir = Self {
            entry,
            _parent: parent.cloned(),
        };
        // On failure `dir` is dropped, which removes the entry.
        Ok(Arc::new(dir, GFP_KERNEL)?)
    }
}

impl Drop for ProcDir {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the entry is live (only this removes
        // it, and its parent is still there: `_parent` is dropped after this
        // body); removal waits for users of its files.
        unsafe { ffi::emfs_proc_remove(self.entry.as_ptr()) };
    }
}

/// The directory published by the [`ModuleProcDir`] alive, if any.
struct ModuleDirSlot(Option<Arc<ProcDir>>);

// The slot is never pinned: it holds a pointer, whose target does not move.
// (`Arc<T>` itself is `!Unpin`, which the lock guard's `DerefMut` needs.)
impl Unpin for ModuleDirSlot {}

kernel::sync::global_lock! {
    // SAFETY: `ModuleProcDir::publish` initialises it, once in the module's
    // life, and nothing uses it before `MODULE_DIR_STATE` says it is ready.
    unsafe(uninit) static MODULE_DIR: Mutex<ModuleDirSlot> = ModuleDirSlot(None);
}

/// [`MODULE_DIR`] is not initialised yet.
const MODULE_DIR_UNINIT: i32 = 0;
/// [`MODULE_DIR`] is being initialised.
const MODULE_DIR_INITIALISING: i32 = 1;
/// [`MODULE_DIR`] is initialised and may be locked.
const MODULE_DIR_READY: i32 = 2;
static MODULE_DIR_STATE: Atomic<i32> = Atomic::new(MODULE_DIR_UNINIT);

/// The module's directory, for code that has no path to the module's data
/// (a filesystem's `fill_super`, an owner of extent maps) to make its
/// entries in.
///
/// The module makes its directory in `init`, publishes it with
/// [`ModuleProcDir::publish`] and keeps the returned value in its data;
/// [`ModuleProcDir::get`] returns a reference to the directory until that
/// value is dropped. Directories made in it keep it, as always, so it goes
/// only after the last of them. At most one is published at a time.
pub(crate) struct ModuleProcDir {
    _private: (),
}

impl ModuleProcDir {
    /// Publishes `dir` as the module's directory until the result is
    /// dropped. `EBUSY` if another is published.
    pub(crate) fn publish(dir: Arc<ProcDir>) -> Result<Self> {
        if MODULE_DIR_STATE
            .cmpxchg(MODULE_DIR_UNINIT, MODULE_DIR_INITIALISING, Relaxed)
            .is_ok()
        {
            // SAFETY: Only the one caller whose compare-exchange moved the
            // state from `UNINIT` gets here, once in the module's life;
            // nothing locks `MODULE_DIR` before the state is `READY`.
            unsafe { MODULE_DIR.init() };
            MODULE_DIR_STATE.store(MODULE_DIR_READY, Release);
        }
        if MODULE_DIR_STATE.load(Acquire) != MODULE_DIR_READY {
            // Another publisher is initialising the slot: it is taken.
            return Err(EBUSY);
        }
        let mut slot = MODULE_DIR.lock();
        if slot.0.is_some() {
            return Err(EBUSY);
        }
        slot.0 = Some(dir);
        Ok(Self { _private: () })
    }

    /// The module's directory; `None` before it is published or after it
    /// was withdrawn. May sleep.
    pub(crate) fn get() -> Option<Arc<ProcDir>> {
        if MODULE_DIR_STATE.load(Acquire) != MODULE_DIR_READY {
            return None;
        }
        MODULE_DIR.lock().0.clone()
    }
}

impl Drop for ModuleProcDir {
    fn drop(&mut self) {
        // `publish` made the slot ready before returning `self`.
        let dir = MODULE_DIR.lock().0.take();
        // Outside the lock: removal waits for readers.
        drop(dir);
    }
}

/// Something a proc file shows.
pub(crate) trait ProcShow: Send + Sync + 'static {
    /// Writes the contents of the file.
    fn show(&self, m: &SeqFile);
}

/// A read-only proc file showing an `Arc<T>`; removed when dropped.
///
/// # Invariants
///
/// `entry` is a live proc file in `_parent`'s directory whose private data
/// came from `Arc::<T>::into_raw`. Only the removal in [`Drop`] removes
/// it: `_parent` keeps its directory.
pub(crate) struct ProcFile<T: ProcShow> {
    entry: NonNull<bindings::proc_dir_entry>,
    data: *const T,
    _data: PhantomData<Arc<T>>,
    _parent: Arc<ProcDir>,
}

// SAFETY: As for `ProcDir`; the data is `Send + Sync`.
unsafe impl<T: ProcShow> Send for ProcFile<T> {}
// SAFETY: As for `ProcDir`.
unsafe impl<T: ProcShow> Sync for ProcFile<T> {}

/// # Safety
///
/// Called by the seq_file code of a file made by [`ProcFile::new`].
unsafe extern "C" fn show_callback<T: ProcShow>(
    m: *mut bindings::seq_file,
    _v: *mut kernel::ffi::c_void,
) -> kernel::ffi::c_int {
    // SAFETY: The file's private data is the `Arc<T>` of the `ProcFile`,
    // alive until the entry is removed, which waits for this call.
    let data = unsafe { ArcBorrow::<T>::from_raw(ffi::emfs_seq_private(m).cast()) };
    // SAFETY: `m` is the valid seq_file of this read, for its duration.
    let seq = unsafe { SeqFile::from_raw(m) };
    data.show(seq);
    0
}

impl<T: ProcShow> ProcFile<T> {
    /// Creates file `name` in `parent`, showing `data`. `name` is one
    /// path component (`EINVAL` otherwise, as for [`ProcDir::new`]);
    /// `ENOMEM` if procfs refuses.
    pub(crate) fn new(name: &CStr, parent: &Arc<ProcDir>, data: Arc<T>) -> Result<Self> {
        check_component(name.to_bytes())?;
        let raw = Arc::into_raw(data);
        // SAFETY: `name` is NUL-terminated, `parent` live by its type
        // invariant, `show_callback` decodes the private data as the
        // `Arc<T>` it is.
        let entry = unsafe {
            ffi::emfs_proc_create_single_data(
                name.as_char_ptr(),
                parent.entry.as_ptr(),
                Some(show_callback::<T>),
                raw.cast_mut().cast(),
            )
        };
        match NonNull::new(entry) {
            // INVARIANT: Live file in `parent` with `raw` as private data;
            // `_parent` keeps `parent`.
            Some(entry) => Ok(Self {
                entry,
                data: raw,
                _data: PhantomData,
                _parent: parent.clone(),
            }),
            None => {
                // SAFETY: No file was made, so `raw` is still only ours.
                drop(unsafe { Arc::from_raw(raw) });
                Err(ENOMEM)
            }
        }
    }
}

impl<T: ProcShow> Drop for ProcFile<T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the entry is live (its directory is
        // kept by `_parent`, dropped after this body); removal waits for
        // reads in progress.
        unsafe { ffi::emfs_proc_remove(self.entry.as_ptr()) };
        // SAFETY: No read can reach the data any more; it came from
        // `Arc::into_raw`.
        drop(unsafe { Arc::from_raw(self.data) });
    }
}

#[cfg(not(emfs_library))]
#[kernel::macros::kunit_tests(emfs_proc)]
mod tests {
    use super::*;
    use crate::glue::kunit::{
        kunit_ensure,
        kunit_ensure_eq, //
    };

    /// A value to show, which says when it is dropped.
    struct Shown {
        dropped: Arc<Atomic<u32>>,
    }

    impl ProcShow for Shown {
        fn show(&self, _m: &SeqFile) {}
    }

    impl Drop for Shown {
        fn drop(&mut self) {
            self.dropped.store(1, Relaxed);
        }
    }

    /// A path through another owner's directory, made without it. The old
    /// `ProcDir::new` took it: `parent`'s removal then freed `child`'s
    /// entry with its own subtree, and dropping `child` read that freed
    /// entry in `proc_remove()` (KASAN: slab-use-after-free). Now the path
    /// is refused.
    #[test]
    fn path_through_another_dir_is_refused() -> Result {
        let parent = ProcDir::new(c"fs/emfs_kunit_path", None)?;
        match ProcDir::new(c"fs/emfs_kunit_path/child", None) {
            Ok(child) => {
                // What the old code allowed: the parent goes first.
                drop(parent);
                drop(child);
                pr_err!("a path into another ProcDir was taken\n");
                return Err(EINVAL);
            }
            Err(e) => kunit_ensure_eq!(e, EINVAL),
        }
        Ok(())
    }

    /// Timeline: make parent, child, a file and a grandchild in the child;
    /// drop the parent's owner first, then the child's, then the file and
    /// the grandchild. Each keeps what it is in, so nothing is removed
    /// (and freed) under an entry still owned, and the last drop removes
    /// everything: the top-level name is free again.
    #[test]
    fn parent_dropped_first() -> Result {
        let dropped = Arc::new(Atomic::new(0u32), GFP_KERNEL)?;
        let parent = ProcDir::new(c"fs/emfs_kunit_parent", None)?;
        let child = ProcDir::new(c"child", Some(&parent))?;
        drop(parent);
        // Both use the child's entry, which must still be there.
        let shown = Arc::new(
            Shown {
                dropped: dropped.clone(),
            },
            GFP_KERNEL,
        )?;
        let file = ProcFile::new(c"value", &child, shown)?;
        let grandchild = ProcDir::new(c"grandchild", Some(&child))?;
        drop(child);
        drop(file);
        kunit_ensure_eq!(dropped.load(Relaxed), 1);
        drop(grandchild);
        // procfs refuses (and warns about) a name that is taken.
        let again = ProcDir::new(c"fs/emfs_kunit_parent", None)?;
        drop(again);
        Ok(())
    }

    #[test]
    fn names_are_one_component() -> Result {
        let dir = ProcDir::new(c"fs/emfs_kunit_names", None)?;
        for name in [c"", c".", c"..", c"a/b", c"/a", c"a/"] {
            kunit_ensure!(
                ProcDir::new(name, Some(&dir)).err() == Some(EINVAL),
                "dir name {:?}",
                name
            );
        }
        for path in [
            c"", c"fs/", c"fs/.", c"fs/..", c"fs/a/b", c"a/b", c"net/a", c"123", c"/a",
        ] {
            kunit_ensure!(
                ProcDir::new(path, None).err() == Some(EINVAL),
                "top-level path {:?}",
                path
            );
        }
        let shown = Arc::new(
            Shown {
                dropped: Arc::new(Atomic::new(0u32), GFP_KERNEL)?,
            },
            GFP_KERNEL,
        )?;
        kunit_ensure!(ProcFile::new(c"a/b", &dir, shown).err() == Some(EINVAL));
        // One component is fine, numbers included below `/proc`.
        let sub = ProcDir::new(c"123", Some(&dir))?;
        drop(sub);
        Ok(())
    }
}
