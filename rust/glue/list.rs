// SPDX-License-Identifier: GPL-2.0

//! An intrusive list of `Arc<T>` whose items know which list holds them.
//!
//! `kernel::list::List::remove` is `unsafe`: the caller must promise that the
//! item is in that very list (or in none), because the links of an item do
//! not say which list they belong to. [`TaggedList`] keeps that promise
//! itself: every item carries a [`ListTag`] holding the identifier of the
//! list it is on (zero when on none), and only `TaggedList` writes it. So
//! removing an arbitrary item is safe and O(1): the tag is checked first.
//!
//! The extent map tree uses it for its list of modified extents.

use kernel::{
    list::{
        List,
        ListArc,
        ListItem,
        TryNewListArc, //
    },
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

/// Identifiers of lists; never zero, never reused (a `u64` does not wrap).
static NEXT_LIST_ID: Atomic<u64> = Atomic::new(1);

/// The identifier of the [`TaggedList`] an item is on, or zero.
///
/// # Invariants
///
/// The value is zero or the identifier of the [`TaggedList`] whose `List`
/// holds the item's `ListArc`; only [`TaggedList`] changes it.
pub(crate) struct ListTag(Atomic<u64>);

impl ListTag {
    /// A tag for an item on no list.
    pub(crate) const fn new() -> Self {
        // INVARIANT: A new item is on no list.
        Self(Atomic::new(0))
    }

    /// Returns whether the item is on some [`TaggedList`].
    pub(crate) fn is_listed(&self) -> bool {
        self.0.load(Relaxed) != 0
    }
}

/// An item that can be on a [`TaggedList`].
pub(crate) trait TaggedListItem: ListItem<0> + TryNewListArc<0> {
    /// The item's tag.
    fn list_tag(&self) -> &ListTag;
}

/// A list of `Arc<T>` that can remove any given item safely.
///
/// # Invariants
///
/// An item's [`ListTag`] equals `id` if and only if its `ListArc` is in
/// `list`; `len` is the number of items in `list`.
pub(crate) struct TaggedList<T: TaggedListItem> {
    list: List<T>,
    id: u64,
    len: usize,
}

impl<T: TaggedListItem> TaggedList<T> {
    /// Creates an empty list with an identifier of its own.
    pub(crate) fn new() -> Self {
        // INVARIANT: No item carries the fresh identifier yet.
        Self {
            list: List::new(),
            id: NEXT_LIST_ID.fetch_add(1, Relaxed),
            len: 0,
        }
    }

    /// Returns the number of items on the list.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Returns whether `item` is on this list.
    pub(crate) fn contains(&self, item: &T) -> bool {
        item.list_tag().0.load(Relaxed) == self.id
    }

    /// Adds `item` at the front. Gives it back if it is already on a list
    /// (this one or another).
    pub(crate) fn push_front(&mut self, item: Arc<T>) -> Result<(), Arc<T>> {
        // Claim the item for this list; fails if it is on any list.
        if item.list_tag().0.cmpxchg(0, self.id, Acquire).is_err() {
            return Err(item);
        }
        match ListArc::try_from_arc(item) {
            Ok(list_arc) => {
                // INVARIANT: The tag says `id` and the item is now in `list`.
                self.list.push_front(list_arc);
                self.len += 1;
                Ok(())
            }
            Err(item) => {
                // Someone holds a `ListArc` for it outside any `TaggedList`.
                item.list_tag().0.store(0, Release);
                Err(item)
            }
        }
    }

    /// Removes `item` from this list and returns the list's reference to it,
    /// or `None` if `item` is not on this list.
    pub(crate) fn remove(&mut self, item: &T) -> Option<Arc<T>> {
        if !self.contains(item) {
            return None;
        }
        // SAFETY: By the type invariant, a tag equal to `id` means the item
        // is in `self.list`, which is what `List::remove` requires.
        let list_arc = unsafe { self.list.remove(item) }?;
        Some(self.release(list_arc))
    }

    /// Removes and returns the item at the front.
    pub(crate) fn pop_front(&mut self) -> Option<Arc<T>> {
        let list_arc = self.list.pop_front()?;
        Some(self.release(list_arc))
    }

    /// Moves every item to a new list and returns it; this one is left empty.
    pub(crate) fn take_all(&mut self) -> Self {
        let mut other = Self::new();
        while let Some(list_arc) = self.list.pop_front() {
            // INVARIANT: The item leaves `self.list` and enters
            // `other.list`; its tag follows. Nobody else writes a non-zero
            // tag, so a plain store is enough.
            list_arc.list_tag().0.store(other.id, Relaxed);
            other.list.push_back(list_arc);
            other.len += 1;
        }
        self.len = 0;
        other
    }

    /// Iterates over the items, front to back.
    pub(crate) fn iter(&self) -> impl Iterator<Item = ArcBorrow<'_, T>> {
        self.list.iter()
    }

    fn release(&mut self, list_arc: ListArc<T>) -> Arc<T> {
        self.len -= 1;
        let arc = list_arc.into_arc();
        // INVARIANT: The item left `list` above; the `Release` store orders
        // that before another list's `Acquire` claim of the item.
        arc.list_tag().0.store(0, Release);
        arc
    }
}

impl<T: TaggedListItem> Drop for TaggedList<T> {
    fn drop(&mut self) {
        // Clear the tags of whatever is left, so the items can be listed
        // again elsewhere.
        while self.pop_front().is_some() {}
    }
}
