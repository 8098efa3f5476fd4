// SPDX-License-Identifier: GPL-2.0

//! POSIX ACLs, kept in the inode's ACL cache as tmpfs keeps them.
//!
//! The inode's cache (`i_acl`, `i_default_acl`) is the only copy: a new
//! inode's entries start as "no ACL" instead of "not cached", so the VFS
//! never asks the filesystem to read one. Reading an ACL, checking
//! permissions with it and `getxattr(2)` of `system.posix_acl_*` are the
//! VFS's; the filesystem sets ACLs (`set_acl`), gives a new inode what its
//! directory's default ACL says ([`inherit`]), updates the access ACL on
//! `chmod(2)` ([`chmod`]), lists the names and, at eviction, gives back
//! their space.
//!
//! libfs's `simple_set_acl()` and `simple_acl_create()`, which tmpfs
//! uses, are not exported to modules (fs/posix_acl.c): [`set_acl`] and
//! [`inherit`] do what they do with the exported pieces they are made of
//! (`posix_acl_update_mode()`, `posix_acl_create()`, `set_cached_acl()`),
//! and charge each ACL's space ([`FileSystem::charge_xattr`]) as an
//! extended attribute of its name and its `getxattr(2)` value would take.
//! A filesystem has ACLs when it has extended attributes.
//!
//! Writers are serialised by the inode's lock, which the VFS holds for
//! `set_acl` and `setattr`; readers take references under RCU.

use core::ptr::NonNull;
use kernel::{
    bindings,
    error::to_result,
    ffi::c_int,
    prelude::*, //
};

use crate::glue::{
    alloc::nofs,
    ffi,
    vfs::{
        data,
        FileSystem, //
    },
    xattr::{
        self,
        Names, //
    },
};

/// One reference to a `struct posix_acl`.
///
/// # Invariants
///
/// `0` points to a valid ACL of which this holds one reference.
struct Acl(NonNull<bindings::posix_acl>);

impl Acl {
    /// Takes over the reference to `p`, if `p` is not null.
    ///
    /// # Safety
    ///
    /// `p` is null, or an ACL with a reference the caller gives up.
    unsafe fn from_raw(p: *mut bindings::posix_acl) -> Option<Self> {
        // INVARIANT: As the caller promises.
        NonNull::new(p).map(Self)
    }

    /// The space it is charged as an ACL of type `ty`.
    fn space(&self, ty: c_int) -> usize {
        // SAFETY: By the type invariant, the ACL is valid.
        unsafe { space_of(ty, self.0.as_ptr()) }
    }
}

impl Drop for Acl {
    fn drop(&mut self) {
        // SAFETY: By the type invariant, the reference is ours to drop.
        unsafe { ffi::emfs_posix_acl_release(self.0.as_ptr()) };
    }
}

/// The name of an ACL of type `ty` as an extended attribute, without its
/// NUL.
fn name(ty: c_int) -> &'static [u8] {
    let name: &'static [u8] = if ty == ffi::EMFS_ACL_TYPE_DEFAULT {
        bindings::XATTR_NAME_POSIX_ACL_DEFAULT
    } else {
        bindings::XATTR_NAME_POSIX_ACL_ACCESS
    };
    &name[..name.len() - 1]
}

/// The space an ACL of type `ty` at `acl` is charged: [`xattr::space`] of
/// its name and of its `getxattr(2)` value.
///
/// # Safety
///
/// `acl` is a valid ACL during the call.
unsafe fn space_of(ty: c_int, acl: *const bindings::posix_acl) -> usize {
    // SAFETY: As the caller promises.
    let size = unsafe { ffi::emfs_posix_acl_xattr_size(acl) };
    xattr::space(name(ty).len(), size)
}

/// The cache entry of `inode` for ACLs of type `ty`.
///
/// # Safety
///
/// `inode` is valid.
unsafe fn entry(inode: *mut bindings::inode, ty: c_int) -> *mut *mut bindings::posix_acl {
    if ty == ffi::EMFS_ACL_TYPE_DEFAULT {
        // SAFETY: As the caller promises.
        unsafe { &raw mut (*inode).i_default_acl }
    } else {
        // SAFETY: As the caller promises.
        unsafe { &raw mut (*inode).i_acl }
    }
}

/// The ACL of type `ty` `inode`'s cache holds, or null for none. Never
/// "not cached" (nor the VFS's sentinels for it): [`no_acls`] set both
/// entries when the inode was made. The pointer may be read only; it is
/// valid while the inode's lock keeps it from being replaced.
///
/// # Safety
///
/// `inode` is valid.
unsafe fn cached(inode: *mut bindings::inode, ty: c_int) -> *mut bindings::posix_acl {
    // SAFETY: As the caller promises. `set_cached_acl()` replaces the
    // entry with an atomic exchange: read it once, as `READ_ONCE()` does.
    let p = unsafe { core::ptr::read_volatile(entry(inode, ty)) };
    // `is_uncached_acl()`: "not cached" and the sentinels are odd.
    if p as usize & 1 != 0 {
        core::ptr::null_mut()
    } else {
        p
    }
}

/// The space `inode`'s ACL of type `ty` is charged, 0 if it has none.
///
/// # Safety
///
/// `inode` is an inode with ACLs, locked by the caller (or being evicted),
/// so that its ACLs are not replaced during the call.
unsafe fn cached_space(inode: *mut bindings::inode, ty: c_int) -> usize {
    // SAFETY: As the caller promises.
    let acl = unsafe { cached(inode, ty) };
    if acl.is_null() {
        0
    } else {
        // SAFETY: The cache holds a reference to it, which only a writer,
        // excluded by the caller, drops.
        unsafe { space_of(ty, acl) }
    }
}

/// Marks the new `inode` as having no ACLs (`cache_no_acl()`): its cache
/// is the only copy.
///
/// # Safety
///
/// `inode` is a new inode, not yet visible to anyone else.
pub(crate) unsafe fn no_acls(inode: *mut bindings::inode) {
    // SAFETY: As the caller promises; "not cached", the value
    // `inode_init_always()` left, holds no reference.
    unsafe {
        (*inode).i_acl = core::ptr::null_mut();
        (*inode).i_default_acl = core::ptr::null_mut();
    }
}

/// `set_acl`: sets `inode`'s ACL of type `ty` to `acl`, or removes it if
/// `acl` is null, as `simple_set_acl()` does: an access ACL that says no
/// more than permission bits becomes those bits alone
/// (`posix_acl_update_mode()`, which also drops `S_ISGID` as `chmod(2)`
/// would). What the new ACL takes beyond the old one is charged first,
/// what it takes less given back after: when the charge fails (`ENOSPC`),
/// nothing has changed, and an ACL replaced by one of its size (as
/// `chmod(2)` replaces it) needs no space.
///
/// # Safety
///
/// Called by the VFS with the inode of `dentry` locked, a directory,
/// regular file or special file of a mounted superblock of `T`, and `acl`
/// null or an ACL it holds a reference to during the call.
pub(crate) unsafe extern "C" fn set_acl<T: FileSystem>(
    idmap: *mut bindings::mnt_idmap,
    dentry: *mut bindings::dentry,
    acl: *mut bindings::posix_acl,
    ty: c_int,
) -> c_int {
    // SAFETY: As the caller promises.
    let inode = unsafe { (*dentry).d_inode };
    let mut acl = acl;
    // SAFETY: `inode` is valid and locked.
    let mut mode = unsafe { (*inode).i_mode };
    if ty == ffi::EMFS_ACL_TYPE_ACCESS {
        // SAFETY: As the caller promises; `mode` and `acl` are ours (an
        // equivalent ACL becomes null, the VFS's reference untouched).
        let ret = unsafe { ffi::posix_acl_update_mode(idmap, inode, &mut mode, &mut acl) };
        if ret != 0 {
            return ret;
        }
    }
    let new = if acl.is_null() {
        0
    } else {
        // SAFETY: The VFS holds a reference to it.
        unsafe { space_of(ty, acl) }
    };
    // SAFETY: `inode` is of `T`, locked.
    let (data, old) = unsafe { (data::<T>((*inode).i_sb), cached_space(inode, ty)) };
    if new > old {
        if let Err(e) = T::charge_xattr(data, new - old) {
            return e.to_errno();
        }
    }
    // SAFETY: `inode` is valid and locked; `set_cached_acl()` takes its
    // own reference to `acl` and drops the old one's after a grace period.
    unsafe {
        (*inode).i_mode = mode;
        bindings::inode_set_ctime_current(inode);
        ffi::set_cached_acl(inode, ty, acl);
    }
    if old > new {
        T::uncharge_xattr(data, old - new);
    }
    0
}

/// What a new inode inherits from its directory's default ACL, charged to
/// `T` until [`Inherited::install`] gives it, with its charge, to the
/// inode; given back if it is dropped before.
pub(crate) struct Inherited<'a, T: FileSystem> {
    data: &'a T::Data,
    access: Option<Acl>,
    default: Option<Acl>,
    charged: usize,
}

/// The ACLs a new inode of `mode` in `dir` starts with, and its mode, as
/// `simple_acl_create()` makes them: `posix_acl_create()` masks `mode`
/// with `dir`'s default ACL, or with the umask if it has none (with ACLs,
/// the VFS leaves the umask to the filesystem). `ENOSPC` if their space
/// cannot be charged, `ENOMEM`.
///
/// # Safety
///
/// `dir` is a directory of a mounted superblock of `T`, valid during
/// `'a` (locked by the caller, but for `tmpfile`, which the VFS calls
/// unlocked: `posix_acl_create()` takes its own reference to the default
/// ACL, so it needs no lock).
pub(crate) unsafe fn inherit<'a, T: FileSystem>(
    dir: *mut bindings::inode,
    mode: &mut bindings::umode_t,
) -> Result<Inherited<'a, T>> {
    let (mut default, mut access) = (core::ptr::null_mut(), core::ptr::null_mut());
    // It copies the default ACL, usually under the directory's lock: no
    // filesystem reclaim.
    to_result(nofs(|| {
        // SAFETY: As the caller promises; the out parameters are ours.
        unsafe { ffi::posix_acl_create(dir, mode, &mut default, &mut access) }
    }))?;
    // SAFETY: `posix_acl_create()` gave us a reference to each that is not
    // null; `dir` is of `T`, mounted during `'a`.
    let (access, default, data) = unsafe {
        (
            Acl::from_raw(access),
            Acl::from_raw(default),
            data::<T>((*dir).i_sb),
        )
    };
    let charged = access
        .as_ref()
        .map_or(0, |a| a.space(ffi::EMFS_ACL_TYPE_ACCESS))
        + default
            .as_ref()
            .map_or(0, |a| a.space(ffi::EMFS_ACL_TYPE_DEFAULT));
    if charged != 0 {
        T::charge_xattr(data, charged)?;
    }
    Ok(Inherited {
        data,
        access,
        default,
        charged,
    })
}

impl<T: FileSystem> Inherited<'_, T> {
    /// Gives the ACLs to `inode`, whose eviction gives their space back.
    ///
    /// # Safety
    ///
    /// `inode` is a new inode of the same superblock, not yet visible to
    /// anyone else.
    pub(crate) unsafe fn install(mut self, inode: *mut bindings::inode) {
        // SAFETY: As the caller promises; `set_cached_acl()` takes
        // references of its own.
        unsafe {
            no_acls(inode);
            if let Some(acl) = &self.access {
                ffi::set_cached_acl(inode, ffi::EMFS_ACL_TYPE_ACCESS, acl.0.as_ptr());
            }
            if let Some(acl) = &self.default {
                ffi::set_cached_acl(inode, ffi::EMFS_ACL_TYPE_DEFAULT, acl.0.as_ptr());
            }
        }
        self.charged = 0;
    }
}

impl<T: FileSystem> Drop for Inherited<'_, T> {
    fn drop(&mut self) {
        // A type without extended attributes (and so without ACLs) has no
        // `uncharge_xattr`: its drops are compiled without the call.
        if T::HAS_CHARGE_XATTR && self.charged != 0 {
            T::uncharge_xattr(self.data, self.charged);
        }
    }
}

/// After `setattr` changed `inode`'s mode: its access ACL follows
/// (`posix_acl_chmod()`, through [`set_acl`]).
///
/// # Safety
///
/// Called from `setattr` of an inode of `T` with ACLs, with `dentry` and
/// `attr` as the VFS gave them and the inode locked.
pub(crate) unsafe fn chmod(
    idmap: *mut bindings::mnt_idmap,
    dentry: *mut bindings::dentry,
    attr: *const bindings::iattr,
) -> c_int {
    // SAFETY: As the caller promises.
    unsafe {
        if (*attr).ia_valid & bindings::ATTR_MODE == 0 {
            return 0;
        }
        let mode = (*(*dentry).d_inode).i_mode;
        // It copies the ACL under the inode's lock: no filesystem reclaim.
        nofs(|| ffi::posix_acl_chmod(idmap, dentry, mode))
    }
}

/// The space `inode`'s ACLs are charged, for its eviction to give back.
///
/// # Safety
///
/// `inode` is an inode with ACLs being evicted.
pub(crate) unsafe fn evicted_space(inode: *mut bindings::inode) -> usize {
    // SAFETY: As the caller promises: nobody replaces its ACLs any more.
    unsafe {
        cached_space(inode, ffi::EMFS_ACL_TYPE_ACCESS)
            + cached_space(inode, ffi::EMFS_ACL_TYPE_DEFAULT)
    }
}

/// Lists the names of `inode`'s ACLs in `names`, as
/// `posix_acl_listxattr()` does: `system.posix_acl_access`, then
/// `system.posix_acl_default`, those it has.
///
/// # Safety
///
/// `inode` is valid.
pub(crate) unsafe fn list(inode: *mut bindings::inode, names: &mut Names<'_>) -> Result {
    for ty in [ffi::EMFS_ACL_TYPE_ACCESS, ffi::EMFS_ACL_TYPE_DEFAULT] {
        // SAFETY: As the caller promises; only whether there is one is
        // read.
        if !unsafe { cached(inode, ty) }.is_null() {
            names.push(name(ty))?;
        }
    }
    Ok(())
}
