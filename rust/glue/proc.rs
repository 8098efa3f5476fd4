// SPDX-License-Identifier: GPL-2.0

//! Read-only files in /proc (`proc_mkdir()`, `proc_create_single_data()`).
//!
//! A [`ProcFile`] shows a value implementing [`ProcShow`] through a
//! `seq_file`. Removing an entry waits for readers in progress, so the data
//! a file shows is released only after its last read ends. Entries hold a
//! reference to their parent directory, so a directory goes only after
//! everything in it.

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
        Arc,
        ArcBorrow, //
    },
};

mod ffi {
    use kernel::{
        bindings::seq_file,
        ffi::{c_char, c_int, c_void},
    };

    /// `struct proc_dir_entry`, opaque here.
    #[repr(C)]
    pub(crate) struct proc_dir_entry {
        _opaque: [u8; 0],
    }

    pub(super) type Show = unsafe extern "C" fn(*mut seq_file, *mut c_void) -> c_int;

    unsafe extern "C" {
        pub(super) fn emfs_proc_mkdir(
            name: *const c_char,
            parent: *mut proc_dir_entry,
        ) -> *mut proc_dir_entry;
        pub(super) fn emfs_proc_create_single_data(
            name: *const c_char,
            parent: *mut proc_dir_entry,
            show: Show,
            data: *mut c_void,
        ) -> *mut proc_dir_entry;
        pub(super) fn emfs_proc_remove(entry: *mut proc_dir_entry);
        pub(super) fn emfs_seq_private(m: *mut c_void) -> *mut c_void;
    }
}

/// A directory in /proc, removed when the last reference goes.
///
/// # Invariants
///
/// `entry` is a live proc directory created by this type; its entries hold
/// a reference to it, so it is empty when removed.
pub(crate) struct ProcDir {
    entry: NonNull<ffi::proc_dir_entry>,
    _parent: Option<Arc<ProcDir>>,
}

// SAFETY: proc entries are not tied to a task; removal may happen anywhere.
unsafe impl Send for ProcDir {}
// SAFETY: `&ProcDir` only allows creating entries, which procfs serialises.
unsafe impl Sync for ProcDir {}

impl ProcDir {
    /// Creates `/proc/<name>` (`name` may contain slashes: "fs/emfs"), or a
    /// subdirectory of `parent`. `ENOMEM` on failure (procfs says no more).
    pub(crate) fn new(name: &CStr, parent: Option<&Arc<ProcDir>>) -> Result<Arc<Self>> {
        let raw_parent = parent.map_or(core::ptr::null_mut(), |p| p.entry.as_ptr());
        // SAFETY: `name` is NUL-terminated; `raw_parent` is null or a live
        // entry.
        let entry = unsafe { ffi::emfs_proc_mkdir(name.as_char_ptr(), raw_parent) };
        let entry = NonNull::new(entry).ok_or(ENOMEM)?;
        // INVARIANT: A non-null result is a live directory.
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
        // SAFETY: By the type invariant the entry is live; removal waits for
        // users of its files.
        unsafe { ffi::emfs_proc_remove(self.entry.as_ptr()) };
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
/// `entry` is a live proc file whose private data came from
/// `Arc::<T>::into_raw`.
pub(crate) struct ProcFile<T: ProcShow> {
    entry: NonNull<ffi::proc_dir_entry>,
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
    let data = unsafe { ArcBorrow::<T>::from_raw(ffi::emfs_seq_private(m.cast()).cast()) };
    // SAFETY: `m` is the valid seq_file of this read, for its duration.
    let seq = unsafe { SeqFile::from_raw(m) };
    data.show(seq);
    0
}

impl<T: ProcShow> ProcFile<T> {
    /// Creates file `name` in `parent`, showing `data`. `ENOMEM` on failure.
    pub(crate) fn new(name: &CStr, parent: &Arc<ProcDir>, data: Arc<T>) -> Result<Self> {
        let raw = Arc::into_raw(data);
        // SAFETY: `name` is NUL-terminated, `parent` live, `show_callback`
        // decodes the private data as the `Arc<T>` it is.
        let entry = unsafe {
            ffi::emfs_proc_create_single_data(
                name.as_char_ptr(),
                parent.entry.as_ptr(),
                show_callback::<T>,
                raw.cast_mut().cast(),
            )
        };
        match NonNull::new(entry) {
            // INVARIANT: Live file with `raw` as private data.
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
        // SAFETY: By the type invariant the entry is live; removal waits for
        // reads in progress.
        unsafe { ffi::emfs_proc_remove(self.entry.as_ptr()) };
        // SAFETY: No read can reach the data any more; it came from
        // `Arc::into_raw`.
        drop(unsafe { Arc::from_raw(self.data) });
    }
}
