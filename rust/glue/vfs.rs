// SPDX-License-Identifier: GPL-2.0

//! Filesystem registration, mount contexts and superblocks.
//!
//! A filesystem implements [`FileSystem`]: how to parse its mount options
//! into [`FileSystem::Options`], how to build the per-superblock
//! [`FileSystem::Data`] from them, and what `statfs` and `show_options`
//! report. [`filesystem!`] instantiates the `extern "C"` trampolines for it,
//! and [`Registration`] registers the filesystem type while it lives.
//!
//! The operation tables themselves (`struct file_system_type`,
//! `fs_context_operations`, `super_operations`) are in `rust/vfs.c`: the
//! kernel crate's bindings do not include `<linux/fs_context.h>`, and an
//! out-of-tree module cannot add to them. So there is one filesystem type
//! per module, named by that file.
//!
//! Lifetimes, as the VFS defines them:
//!
//! - a mount context's options live from `init_fs_context` to its `free`;
//! - the superblock's data is created in `fill_super` and dropped in
//!   `kill_sb`, after `kill_anon_super()` has shut the superblock down (also
//!   when `fill_super` fails half way).

use core::marker::PhantomData;
use kernel::{
    bindings,
    error::to_result,
    ffi::{c_char, c_int},
    prelude::*,
    seq_file::SeqFile,
    str::CStr,
};

mod ffi {
    unsafe extern "C" {
        pub(super) fn emfs_register_fs() -> kernel::ffi::c_int;
        pub(super) fn emfs_unregister_fs();
        pub(super) fn emfs_sb_set_ops(sb: *mut kernel::ffi::c_void);
        pub(super) fn emfs_init_root_inode(inode: *mut kernel::ffi::c_void);
    }
}

/// What `statfs` reports, in blocks of the filesystem's block size
/// (`struct emfs_statfs` of rust/helpers.h).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct StatFs {
    /// Blocks in all.
    pub(crate) blocks: u64,
    /// Free blocks.
    pub(crate) bfree: u64,
    /// Free blocks available to unprivileged users.
    pub(crate) bavail: u64,
    /// Inodes in all.
    pub(crate) files: u64,
    /// Free inodes.
    pub(crate) ffree: u64,
    /// Longest file name.
    pub(crate) namelen: u64,
}

/// A filesystem type.
pub(crate) trait FileSystem: Sized + 'static {
    /// `s_magic` and `f_type`.
    const MAGIC: u32;
    /// log2 of the block size.
    const BLOCKSIZE_BITS: u8;
    /// Mount options being gathered.
    type Options: Default + Send;
    /// What a mounted superblock holds.
    type Data: Send + Sync;
    /// What each inode created in it holds (dropped when the inode is
    /// evicted).
    type InodeData: Send + Sync;

    /// Takes one mount option, `key` or `key=value`. Errors fail the mount;
    /// say why in the kernel log.
    fn parse_param(opts: &mut Self::Options, key: &CStr, value: Option<&CStr>) -> Result;

    /// Builds a superblock's data from the options.
    fn fill_super(opts: &Self::Options) -> Result<Self::Data>;

    /// Builds the data of a new inode `ino` (a regular file if `regular`,
    /// otherwise a directory) of the superblock holding `data`.
    fn new_inode(data: &Self::Data, ino: u64, regular: bool) -> Result<Self::InodeData>;

    /// What `statfs(2)` reports.
    fn statfs(data: &Self::Data) -> StatFs;

    /// Writes the mount options for /proc/mounts, each as `,key=value`.
    fn show_options(data: &Self::Data, m: &SeqFile);
}

/// The filesystem type is registered while this lives.
pub(crate) struct Registration<T: FileSystem> {
    _fs: PhantomData<T>,
}

impl<T: FileSystem> Registration<T> {
    /// Registers the filesystem type (`register_filesystem()`); `EBUSY` if
    /// it is registered already.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: Registers the static type of rust/vfs.c, whose callbacks
        // are the trampolines `filesystem!` made for `T`.
        to_result(unsafe { ffi::emfs_register_fs() })?;
        Ok(Self { _fs: PhantomData })
    }
}

impl<T: FileSystem> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: `new` registered the type. Mounts hold a reference to the
        // module, so none is left when the module's data is dropped.
        unsafe { ffi::emfs_unregister_fs() };
    }
}

/// Instantiates the VFS trampolines of rust/vfs.c for filesystem `$t`.
macro_rules! filesystem {
    ($t:ty) => {
        /// Trampoline: a new mount context's options.
        #[unsafe(no_mangle)]
        extern "C" fn emfs_vfs_new_options() -> *mut ::kernel::ffi::c_void {
            $crate::glue::vfs::new_options::<$t>()
        }

        /// Trampoline: a mount context is freed.
        #[unsafe(no_mangle)]
        extern "C" fn emfs_vfs_free_options(opts: *mut ::kernel::ffi::c_void) {
            // SAFETY: rust/vfs.c passes what `emfs_vfs_new_options` returned,
            // once, when the context is freed.
            unsafe { $crate::glue::vfs::free_options::<$t>(opts) }
        }

        /// Trampoline: one mount option.
        #[unsafe(no_mangle)]
        extern "C" fn emfs_vfs_parse_param(
            opts: *mut ::kernel::ffi::c_void,
            key: *const ::kernel::ffi::c_char,
            value: *const ::kernel::ffi::c_char,
        ) -> ::kernel::ffi::c_int {
            // SAFETY: rust/vfs.c passes the context's options (the VFS
            // serialises calls on a context) and NUL-terminated strings,
            // `value` possibly NULL, valid for the call.
            unsafe { $crate::glue::vfs::parse_param::<$t>(opts, key, value) }
        }

        /// Trampoline: `fill_super` of `get_tree_nodev()`.
        #[unsafe(no_mangle)]
        extern "C" fn emfs_vfs_fill_super(
            sb: *mut ::kernel::bindings::super_block,
            opts: *mut ::kernel::ffi::c_void,
        ) -> ::kernel::ffi::c_int {
            // SAFETY: Called by `get_tree_nodev()` with a new superblock,
            // locked, and the context's options.
            unsafe { $crate::glue::vfs::fill_super::<$t>(sb, opts) }
        }

        /// Trampoline: the end of `kill_sb`.
        #[unsafe(no_mangle)]
        extern "C" fn emfs_vfs_put_super_data(sb: *mut ::kernel::bindings::super_block) {
            // SAFETY: Called by rust/vfs.c's `kill_sb` after
            // `kill_anon_super()`: nothing uses the superblock's data any more.
            unsafe { $crate::glue::vfs::put_super_data::<$t>(sb) }
        }

        /// Trampoline: `statfs`.
        #[unsafe(no_mangle)]
        extern "C" fn emfs_vfs_statfs(
            sb: *mut ::kernel::bindings::super_block,
            st: *mut $crate::glue::vfs::StatFs,
        ) -> ::kernel::ffi::c_int {
            // SAFETY: Called by rust/vfs.c with a mounted superblock and a
            // `struct emfs_statfs` to fill.
            unsafe { $crate::glue::vfs::statfs::<$t>(sb, st) }
        }

        /// Trampoline: a new inode's data.
        #[unsafe(no_mangle)]
        extern "C" fn emfs_vfs_new_inode_data(
            sb: *mut ::kernel::bindings::super_block,
            ino: u64,
            regular: bool,
            data: *mut *mut ::kernel::ffi::c_void,
        ) -> ::kernel::ffi::c_int {
            // SAFETY: Called by rust/vfs.c with a mounted superblock and the
            // inode's data slot.
            unsafe { $crate::glue::vfs::new_inode_data::<$t>(sb, ino, regular, data) }
        }

        /// Trampoline: an evicted inode's data.
        #[unsafe(no_mangle)]
        extern "C" fn emfs_vfs_drop_inode_data(data: *mut ::kernel::ffi::c_void) {
            // SAFETY: Called by rust/vfs.c once per inode, at eviction, with
            // what `emfs_vfs_new_inode_data` stored.
            unsafe { $crate::glue::vfs::drop_inode_data::<$t>(data) }
        }

        /// Trampoline: `show_options`.
        #[unsafe(no_mangle)]
        extern "C" fn emfs_vfs_show_options(
            m: *mut ::kernel::bindings::seq_file,
            sb: *mut ::kernel::bindings::super_block,
        ) -> ::kernel::ffi::c_int {
            // SAFETY: Called by rust/vfs.c with a seq_file being written and a
            // mounted superblock.
            unsafe { $crate::glue::vfs::show_options::<$t>(m, sb) }
        }
    };
}
pub(crate) use filesystem;

/// Allocates a mount context's options; null on failure (the C side
/// returns `ENOMEM`).
pub(crate) fn new_options<T: FileSystem>() -> *mut c_void {
    match KBox::new(T::Options::default(), GFP_KERNEL) {
        Ok(opts) => KBox::into_raw(opts).cast(),
        Err(_) => core::ptr::null_mut(),
    }
}

/// # Safety
///
/// `opts` is null or came from [`new_options`] and is freed once.
pub(crate) unsafe fn free_options<T: FileSystem>(opts: *mut c_void) {
    if !opts.is_null() {
        // SAFETY: As the caller promises.
        drop(unsafe { KBox::from_raw(opts.cast::<T::Options>()) });
    }
}

/// # Safety
///
/// `opts` came from [`new_options`] and is not otherwise borrowed for the
/// call; `key` is a NUL-terminated string and `value` one or null.
pub(crate) unsafe fn parse_param<T: FileSystem>(
    opts: *mut c_void,
    key: *const c_char,
    value: *const c_char,
) -> c_int {
    // SAFETY: As the caller promises.
    let Some(opts) = (unsafe { opts.cast::<T::Options>().as_mut() }) else {
        return EINVAL.to_errno();
    };
    // SAFETY: `key` is a valid NUL-terminated string.
    let key = unsafe { CStr::from_char_ptr(key) };
    let value = if value.is_null() {
        None
    } else {
        // SAFETY: A non-null `value` is a valid NUL-terminated string.
        Some(unsafe { CStr::from_char_ptr(value) })
    };
    match T::parse_param(opts, key, value) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// The data of a superblock set up by [`fill_super`].
///
/// # Safety
///
/// `sb` is a superblock of this filesystem whose `fill_super` succeeded
/// and whose `kill_sb` has not finished.
unsafe fn data<'a, T: FileSystem>(sb: *mut bindings::super_block) -> &'a T::Data {
    // SAFETY: As the caller promises, `s_fs_info` holds a live
    // `KBox<T::Data>`, dropped only in `put_super_data`.
    unsafe { &*(*sb).s_fs_info.cast::<T::Data>() }
}

/// # Safety
///
/// `sb` is a new superblock locked by `get_tree_nodev()`; `opts` the
/// context's options from [`new_options`].
pub(crate) unsafe fn fill_super<T: FileSystem>(
    sb: *mut bindings::super_block,
    opts: *mut c_void,
) -> c_int {
    // SAFETY: As the caller promises; only read here.
    let Some(opts) = (unsafe { opts.cast::<T::Options>().as_ref() }) else {
        return EINVAL.to_errno();
    };
    let data = match T::fill_super(opts).and_then(|d| Ok(KBox::new(d, GFP_KERNEL)?)) {
        Ok(data) => data,
        Err(e) => return e.to_errno(),
    };
    // SAFETY: `sb` is valid and not yet visible to anyone else; from here
    // on `kill_sb` (also run when this function fails) frees the data.
    unsafe {
        (*sb).s_fs_info = KBox::into_raw(data).cast();
        (*sb).s_magic = T::MAGIC as usize;
        (*sb).s_blocksize_bits = T::BLOCKSIZE_BITS;
        (*sb).s_blocksize = 1 << T::BLOCKSIZE_BITS;
        (*sb).s_maxbytes = i64::MAX;
        (*sb).s_time_gran = 1;
    }
    // SAFETY: `sb` is valid; the helper points `s_op` at rust/vfs.c's table.
    unsafe { ffi::emfs_sb_set_ops(sb.cast()) };

    // The root directory.
    // SAFETY: `sb` is a valid superblock being filled.
    let inode = unsafe { bindings::new_inode(sb) };
    if inode.is_null() {
        return ENOMEM.to_errno();
    }
    // SAFETY: `inode` is a new inode, ours alone until `d_make_root`.
    unsafe {
        (*inode).i_ino = 1;
        (*inode).i_mode = (bindings::S_IFDIR | 0o755) as bindings::umode_t;
        bindings::set_nlink(inode, 2);
        ffi::emfs_init_root_inode(inode.cast());
        bindings::simple_inode_init_ts(inode);
    }
    // SAFETY: `inode` is a valid inode; `d_make_root` consumes it, and
    // drops it itself on failure.
    let root = unsafe { bindings::d_make_root(inode) };
    if root.is_null() {
        return ENOMEM.to_errno();
    }
    // SAFETY: `sb` is valid.
    unsafe { (*sb).s_root = root };
    0
}

/// # Safety
///
/// `sb` is a mounted superblock of this filesystem; `slot` is valid for a
/// write.
pub(crate) unsafe fn new_inode_data<T: FileSystem>(
    sb: *mut bindings::super_block,
    ino: u64,
    regular: bool,
    slot: *mut *mut c_void,
) -> c_int {
    // SAFETY: A mounted superblock's data lives while it is mounted.
    let data = unsafe { data::<T>(sb) };
    match T::new_inode(data, ino, regular).and_then(|d| Ok(KBox::new(d, GFP_KERNEL)?)) {
        Ok(inode_data) => {
            // SAFETY: `slot` is valid for a write.
            unsafe { slot.write(KBox::into_raw(inode_data).cast()) };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// `data` came from [`new_inode_data`] and is dropped once.
pub(crate) unsafe fn drop_inode_data<T: FileSystem>(data: *mut c_void) {
    // SAFETY: As the caller promises.
    drop(unsafe { KBox::from_raw(data.cast::<T::InodeData>()) });
}

/// # Safety
///
/// `sb` is a superblock of this filesystem shut down by
/// `kill_anon_super()`; called once.
pub(crate) unsafe fn put_super_data<T: FileSystem>(sb: *mut bindings::super_block) {
    // SAFETY: `sb` is valid.
    let data = unsafe { (*sb).s_fs_info };
    if !data.is_null() {
        // SAFETY: `fill_super` stored a `KBox<T::Data>` here; nothing uses it
        // after `kill_anon_super()`.
        drop(unsafe { KBox::from_raw(data.cast::<T::Data>()) });
        // SAFETY: `sb` is valid.
        unsafe { (*sb).s_fs_info = core::ptr::null_mut() };
    }
}

/// # Safety
///
/// `sb` is a mounted superblock of this filesystem; `st` is valid for
/// writes.
pub(crate) unsafe fn statfs<T: FileSystem>(
    sb: *mut bindings::super_block,
    st: *mut StatFs,
) -> c_int {
    // SAFETY: A mounted superblock's data lives while it is mounted.
    let stat = T::statfs(unsafe { data::<T>(sb) });
    // SAFETY: `st` is valid for writes.
    unsafe { st.write(stat) };
    0
}

/// # Safety
///
/// `m` is a seq_file being written; `sb` a mounted superblock of this
/// filesystem.
pub(crate) unsafe fn show_options<T: FileSystem>(
    m: *mut bindings::seq_file,
    sb: *mut bindings::super_block,
) -> c_int {
    // SAFETY: As in `statfs`.
    let data = unsafe { data::<T>(sb) };
    // SAFETY: `m` is valid for the duration of the call.
    T::show_options(data, unsafe { SeqFile::from_raw(m) });
    0
}
