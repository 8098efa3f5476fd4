// SPDX-License-Identifier: GPL-2.0

//! Extended attributes kept in memory, per inode.
//!
//! What tmpfs keeps in libfs's `simple_xattr` lists: libfs does not export
//! `simple_xattr_get()`, `simple_xattr_set()` and `simple_xattr_list()` to
//! modules (fs/xattr.c), so a module keeps its own, with the same rules:
//! full names (`user.x`) as keys, `XATTR_CREATE` and `XATTR_REPLACE` as
//! `setxattr(2)` defines them, `trusted.` names listed only to
//! `CAP_SYS_ADMIN`, and the space of each attribute counted ([`space`])
//! for the filesystem to charge.
//!
//! Writers are serialised by the inode's lock (the VFS holds it); the
//! store's own spinlock keeps readers, which do not take it, consistent.
//! Everything a change allocates is allocated before the lock is taken,
//! and what it frees is freed after it is dropped.

use kernel::{
    alloc::KVec,
    new_spinlock,
    prelude::*,
    rbtree::{
        RBTree,
        RBTreeNode, //
    },
    sync::SpinLock,
};

/// `XATTR_CREATE`: fail if the attribute exists.
pub(crate) const XATTR_CREATE: i32 = 1;
/// `XATTR_REPLACE`: fail if it does not.
pub(crate) const XATTR_REPLACE: i32 = 2;

/// The space an attribute of a `name_len`-byte name and a `size`-byte
/// value takes in a store, for the filesystem to charge: its tree node,
/// the name and its NUL, the value (`simple_xattr_space()` counts the
/// same for libfs's).
pub(crate) fn space(name_len: usize, size: usize) -> usize {
    core::mem::size_of::<(kernel::bindings::rb_node, Name, KVec<u8>)>() + name_len + 1 + size
}

/// A copy of `bytes`. `ENOMEM`.
fn copy(bytes: &[u8]) -> Result<KVec<u8>> {
    let mut v = KVec::with_capacity(bytes.len(), GFP_KERNEL)?;
    v.extend_from_slice(bytes, GFP_KERNEL)?;
    Ok(v)
}

/// An attribute's full name, ordered as bytes.
#[derive(PartialEq, Eq)]
struct Name(KVec<u8>);

impl Ord for Name {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.0.as_slice().cmp(other.0.as_slice())
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// `name` as a key. `ENOMEM`.
fn key(name: &[u8]) -> Result<Name> {
    Ok(Name(copy(name)?))
}

/// A `listxattr(2)` answer being written: names, each with its NUL, one
/// after the other in the caller's buffer, or only counted if the buffer
/// is empty (a query of the size), as `xattr_list_one()` writes them.
pub(crate) struct Names<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Names<'a> {
    /// An answer to be written to `buf`, or counted if it is empty.
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Appends `name` and its NUL. `ERANGE` if the buffer is too small.
    pub(crate) fn push(&mut self, name: &[u8]) -> Result {
        let end = self.len + name.len() + 1;
        if !self.buf.is_empty() {
            let dst = self.buf.get_mut(self.len..end).ok_or(ERANGE)?;
            dst[..name.len()].copy_from_slice(name);
            dst[name.len()] = 0;
        }
        self.len = end;
        Ok(())
    }

    /// The size of the answer.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// One inode's extended attributes: full name to value.
#[pin_data]
pub(crate) struct XattrStore {
    #[pin]
    tree: SpinLock<RBTree<Name, KVec<u8>>>,
}

impl XattrStore {
    /// An empty store.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            tree <- new_spinlock!(RBTree::new(), "XattrStore::tree"),
        })
    }

    /// The value of attribute `name`, copied to `buf` unless `buf` is
    /// empty; its size. `ENODATA` if there is none, `ERANGE` if `buf` is
    /// too small.
    pub(crate) fn get(&self, name: &[u8], buf: &mut [u8]) -> Result<usize> {
        let name = key(name)?;
        let tree = self.tree.lock();
        let value = tree.get(&name).ok_or(ENODATA)?;
        if !buf.is_empty() {
            buf.get_mut(..value.len())
                .ok_or(ERANGE)?
                .copy_from_slice(value);
        }
        Ok(value.len())
    }

    /// Sets attribute `name` to `value`, or removes it if `value` is
    /// `None`, as `flags` allow: `EEXIST` for `XATTR_CREATE` of an
    /// attribute that exists, `ENODATA` for `XATTR_REPLACE` (or a removal)
    /// of one that does not; `ENOMEM`. Returns the space of the attribute
    /// replaced or removed, 0 if none.
    pub(crate) fn set(&self, name: &[u8], value: Option<&[u8]>, flags: i32) -> Result<usize> {
        let lookup = key(name)?;
        let node = match value {
            Some(value) => Some(RBTreeNode::new(key(name)?, copy(value)?, GFP_KERNEL)?),
            None => None,
        };
        let mut tree = self.tree.lock();
        let exists = tree.get(&lookup).map(|v| v.len());
        match (exists, node) {
            (Some(_), Some(_)) if flags & XATTR_CREATE != 0 => Err(EEXIST),
            (None, Some(_)) if flags & XATTR_REPLACE != 0 => Err(ENODATA),
            (None, None) if flags & XATTR_REPLACE != 0 => Err(ENODATA),
            (None, None) => Ok(0),
            (old, Some(node)) => {
                let replaced = tree.insert(node);
                drop(tree);
                drop(replaced);
                Ok(old.map_or(0, |len| space(name.len(), len)))
            }
            (Some(len), None) => {
                let removed = tree.remove(&lookup);
                drop(tree);
                drop(removed);
                Ok(space(name.len(), len))
            }
        }
    }

    /// Appends the names to `names` (`trusted.` ones only if `trusted`).
    /// `ERANGE` if they do not fit.
    pub(crate) fn list(&self, names: &mut Names<'_>, trusted: bool) -> Result {
        let tree = self.tree.lock();
        for Name(name) in tree.keys() {
            if !trusted && name.starts_with(b"trusted.") {
                continue;
            }
            names.push(name)?;
        }
        Ok(())
    }

    /// Removes every attribute (the inode is going); the space they took.
    pub(crate) fn clear(&self) -> usize {
        let tree = core::mem::take(&mut *self.tree.lock());
        let freed = tree.iter().map(|(k, v)| space(k.0.len(), v.len())).sum();
        drop(tree);
        freed
    }
}

#[kernel::macros::kunit_tests(emfs_xattr)]
mod tests {
    use super::*;
    use crate::glue::{
        alloc::refusal,
        kunit::kunit_ensure, //
    };

    /// Set, replace, remove and list follow `setxattr(2)`'s flags, and
    /// each change reports the space it gave back.
    #[test]
    fn set_follows_the_flags_and_counts_space() -> Result {
        let store = KBox::pin_init(XattrStore::new(), GFP_KERNEL)?;
        let store = &*store;
        kunit_ensure!(store.set(b"user.a", Some(b"12"), XATTR_CREATE)? == 0);
        kunit_ensure!(refusal(store.set(b"user.a", Some(b"3"), XATTR_CREATE))? == Some(EEXIST));
        kunit_ensure!(refusal(store.set(b"user.b", Some(b"3"), XATTR_REPLACE))? == Some(ENODATA));
        kunit_ensure!(store.set(b"user.a", Some(b"345"), XATTR_REPLACE)? == space(6, 2));
        let mut buf = [0u8; 8];
        kunit_ensure!(store.get(b"user.a", &mut buf)? == 3 && &buf[..3] == b"345");
        kunit_ensure!(store.get(b"user.a", &mut [])? == 3);
        kunit_ensure!(refusal(store.get(b"user.a", &mut buf[..2]))? == Some(ERANGE));
        kunit_ensure!(refusal(store.get(b"user.b", &mut buf))? == Some(ENODATA));
        store.set(b"trusted.t", Some(b""), 0)?;
        let mut buf = [0u8; 32];
        let mut names = Names::new(&mut buf);
        names.push(b"system.x")?;
        store.list(&mut names, true)?;
        let n = names.len();
        kunit_ensure!(&buf[..n] == b"system.x\0trusted.t\0user.a\0");
        let mut size = Names::new(&mut []);
        store.list(&mut size, false)?;
        kunit_ensure!(size.len() == 7);
        let mut short = Names::new(&mut buf[..5]);
        kunit_ensure!(refusal(store.list(&mut short, true))? == Some(ERANGE));
        kunit_ensure!(refusal(store.set(b"user.b", None, XATTR_REPLACE))? == Some(ENODATA));
        kunit_ensure!(store.set(b"user.b", None, 0)? == 0);
        kunit_ensure!(store.set(b"user.a", None, 0)? == space(6, 3));
        kunit_ensure!(store.clear() == space(9, 0));
        let mut none = Names::new(&mut []);
        store.list(&mut none, true)?;
        kunit_ensure!(none.len() == 0);
        Ok(())
    }
}
