// SPDX-License-Identifier: GPL-2.0

//! Filesystem registration, mount contexts and superblocks.
//!
//! A filesystem implements [`FileSystem`]: how to parse its mount options
//! into [`FileSystem::Options`], how to build the per-superblock
//! [`FileSystem::Data`] from them, and what `statfs` and `show_options`
//! report. [`filesystem!`] builds its tables, and [`Registration`]
//! registers the filesystem type while it lives.
//!
//! Regular files keep their data in the page cache, with generic helpers
//! for everything the VFS does well alone (`read_iter`, `mmap` faults,
//! splice) and iomap for the rest (rust/glue/file.rs,
//! rust/glue/iomap.rs). The filesystem is asked only what needs its block
//! mapping: to map a range for iomap
//! ([`crate::glue::iomap::IomapOperations`], which also writes dirty
//! ranges back and completes them), and for fsync, truncate and fallocate
//! ([`FileOperations`], [`InodeOperations`]). The page cache side of those
//! (locks, waiting for writeback, dropping folios, `i_size`) is done
//! before the filesystem is called, as each method says.
//!
//! The kernel's operation tables are Rust constants per filesystem type:
//! `struct file_system_type` in a static ([`FsType`]),
//! `fs_context_operations` (`ContextOps<T>`, parameters in a
//! `fs_parameter_spec` table parsed by `fs_parse()`, [`FileSystem::PARAMS`]),
//! `super_operations` (`SuperOps<T>`), the directories' and regular
//! files' `inode_operations`, and regular files' file, address space and
//! VM operations (`FileTables<T>`, rust/glue/file.rs).
//!
//! Lifetimes, as the VFS defines them:
//!
//! - a mount context's options live from `init_fs_context` to its `free`;
//! - the superblock's data is created in `fill_super` and dropped in
//!   `kill_sb`, after `kill_anon_super()` has shut the superblock down (also
//!   when `fill_super` fails half way);
//! - an inode's data lives in the inode's own allocation
//!   ([`INodeWithData`]), set while the inode is `I_NEW` and dropped at
//!   eviction; [`INode`] and [`SuperBlock`] give it out typed.

use core::{cell::UnsafeCell, marker::PhantomData};
use kernel::{
    bindings,
    error::to_result,
    ffi::c_int,
    prelude::*,
    seq_file::SeqFile,
    str::CStr,
    sync::atomic::{
        Atomic,
        Relaxed, //
    },
    types::Opaque,
    workqueue::Queue, //
};

use crate::glue::{
    acl,
    alloc::nofs,
    ffi,
    workqueue::OwnedQueue,
    xattr::{
        self,
        Names,
        XattrStore, //
    },
};

/// The block size of filesystem `T` in bytes: `1 << T::BLOCKSIZE_BITS`.
pub(crate) const fn block_size<T: FileSystem>() -> u64 {
    1 << T::BLOCKSIZE_BITS
}

/// What `statfs` reports, in blocks of the filesystem's block size.
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
///
/// A `#[vtable]` trait: the methods with a default body are optional, and
/// the tables built for the type leave out, or fill with libfs's generic
/// operation, what it does not implement (each method says which).
/// `OwnerModule`, which `#[vtable]` adds, is the module the type is
/// registered for.
#[vtable]
pub(crate) trait FileSystem: Sized + 'static {
    /// The name of the type, as `mount -t` takes it.
    const NAME: &'static CStr;
    /// The name of the cache its inodes are allocated from, as
    /// /proc/slabinfo shows it.
    const INODE_CACHE: &'static CStr;
    /// `s_magic` and `f_type`.
    const MAGIC: u32;
    /// log2 of the block size: from 9 (512 bytes) to `PAGE_SHIFT`, checked
    /// at compile time. Blocks larger than a page would need every
    /// mapping's minimum folio order raised to hold one
    /// (`mapping_set_folio_min_order()`), which this layer does not do.
    const BLOCKSIZE_BITS: u8;
    /// Mount options being gathered.
    type Options: Default + Send;
    /// What a mounted superblock holds.
    type Data: Send + Sync;
    /// What each inode created in it holds (dropped when the inode is
    /// evicted).
    type InodeData: Send + Sync;

    /// The mount parameters, ending with [`Param::END`]: `fs_parse()`
    /// refuses what is not in it. None by default; a type with parameters
    /// implements [`FileSystem::parse_param`] (checked at compile time).
    const PARAMS: &'static [Param] = &[Param::END];

    /// Takes the value of mount parameter `opt` of [`FileSystem::PARAMS`].
    /// Errors fail the mount; say why in the kernel log. Optional: without
    /// it, every parameter is unknown.
    fn parse_param(_opts: &mut Self::Options, _opt: u8, _value: &CStr) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Builds a superblock's data from the options.
    fn fill_super(opts: &Self::Options) -> Result<Self::Data>;

    /// Builds the data of a new inode `ino` (a regular file if `regular`,
    /// otherwise a directory) of the superblock holding `data`.
    fn new_inode(data: &Self::Data, ino: u64, regular: bool) -> Result<Self::InodeData>;

    /// What `statfs(2)` reports. Optional: without it, `simple_statfs()`
    /// reports the magic, `PAGE_SIZE` blocks, the name length and the
    /// `fsid`, and no counts.
    fn statfs(_data: &Self::Data) -> StatFs {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Writes the mount options for /proc/mounts, each as `,key=value`.
    /// Optional: without it, /proc/mounts shows only the VFS's options.
    fn show_options(_data: &Self::Data, _m: &SeqFile) {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// A remount with `opts` (`reconfigure`); errors refuse it, and must
    /// leave the superblock as it was. Say why in the kernel log.
    /// Optional: without it, a remount that names any of the type's
    /// parameters is refused with `EINVAL`, since nothing would apply
    /// them.
    fn reconfigure(_data: &Self::Data, _opts: &Self::Options) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Charges `bytes` of extended attributes (as [`xattr::space`] counts
    /// them) to the superblock's space: `ENOSPC` if it has not that
    /// much. Optional: a type that implements it has extended attributes
    /// in the `user.`, `trusted.` and `security.` namespaces, kept in
    /// memory with the inode ([`XattrStore`]), and POSIX ACLs
    /// (rust/glue/acl.rs), and must implement
    /// [`FileSystem::uncharge_xattr`] too; without it, none. The page of a
    /// long symlink target ([`page_link`]) is charged here too.
    fn charge_xattr(_data: &Self::Data, _bytes: usize) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Gives back `bytes` that [`FileSystem::charge_xattr`] charged, when
    /// attributes are replaced, removed, or go with their inode.
    fn uncharge_xattr(_data: &Self::Data, _bytes: usize) {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }
}

/// What the `file_operations` of an open regular file ask of filesystem
/// `T`: `fsync` and `fallocate` (`llseek`'s `SEEK_DATA`/`SEEK_HOLE`,
/// reads, writes and `mmap` are iomap's, [`IomapOperations`]).
///
/// [`IomapOperations`]: crate::glue::iomap::IomapOperations
#[vtable]
pub(crate) trait FileOperations: FileSystem {
    /// `fsync`, after the file's dirty folios were written back and their
    /// writeback completed.
    fn fsync(data: &Self::Data, inode: &Self::InodeData) -> Result;

    /// `FALLOC_FL_PUNCH_HOLE` of the block-aligned `[start, end)`, whose
    /// page cache is gone.
    fn punch_hole(data: &Self::Data, inode: &Self::InodeData, start: u64, end: u64) -> Result;

    /// `fallocate` mode 0 of the block-aligned `[start, end)`, with no
    /// dirty page cache or writeback in it.
    fn allocate(data: &Self::Data, inode: &Self::InodeData, start: u64, end: u64) -> Result;

    /// An `O_DIRECT` read: fills `dst`, whole blocks, with the data at the
    /// block-aligned `pos` of the file of `size` bytes, from storage. The
    /// page cache of the range has been written back, under `i_rwsem`
    /// (shared). Optional: a type that implements it (and
    /// [`FileOperations::direct_write`]) opens files with `O_DIRECT`;
    /// without it, `open(O_DIRECT)` fails with `EINVAL`.
    fn direct_read(
        _data: &Self::Data,
        _inode: &Self::InodeData,
        _pos: u64,
        _size: u64,
        _dst: &mut [u8],
    ) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// An `O_DIRECT` write of `src`, whole blocks, at the block-aligned
    /// `pos`: on storage when it returns. The page cache of the range has
    /// been written back and dropped, under `i_rwsem`; the caller updates
    /// the size. An error writes nothing.
    fn direct_write(
        _data: &Self::Data,
        _inode: &Self::InodeData,
        _pos: u64,
        _src: &[u8],
    ) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }
}

/// What the `inode_operations` of regular files ask of filesystem `T`
/// (`fiemap` is iomap's, [`IomapOperations`]).
///
/// [`IomapOperations`]: crate::glue::iomap::IomapOperations
#[vtable]
pub(crate) trait InodeOperations: FileSystem {
    /// The file was truncated to `size` (`setattr`): its page cache past
    /// `size` is gone (waited for) and `i_size` is set; drop the blocks
    /// past it.
    fn truncate(data: &Self::Data, inode: &Self::InodeData, size: u64) -> Result;

    /// The bytes of storage the file holds: written, preallocated, or
    /// reserved for its dirty page cache (`st_blocks`, in 512-byte units).
    fn allocated(data: &Self::Data, inode: &Self::InodeData) -> u64;
}

/// A filesystem whose VFS entry points `filesystem!` instantiated, and
/// its `struct file_system_type`.
///
/// # Safety
///
/// Implemented only by [`filesystem!`]. `fs_type` is the type whose
/// callbacks are `Self`'s, and `REGULAR` holds `Self`'s tables.
pub(crate) unsafe trait VfsTables: FileSystem {
    /// The filesystem type, in static storage.
    fn fs_type() -> &'static FsType;

    /// The tables of regular files; `None` for a type without regular
    /// files (its directories cannot `create`).
    const REGULAR: Option<RegularFiles>;
}

/// What the inodes of a type's regular files are given.
pub(crate) struct RegularFiles {
    /// Their `inode_operations`.
    pub(crate) iops: &'static bindings::inode_operations,
    /// Their `file_operations`.
    pub(crate) fops: &'static bindings::file_operations,
    /// Their page cache's `address_space_operations`.
    pub(crate) aops: &'static bindings::address_space_operations,
    /// The name of the workqueue their write backs complete on.
    pub(crate) endio_queue: &'static CStr,
}

/// What a superblock's `s_fs_info` holds: `T`'s data, and the number of
/// the next inode.
struct SbInfo<T: FileSystem> {
    data: T::Data,
    /// Inode numbers are given out once per mount, from 2 (the root's is
    /// 1) up: unique, and 64 bits wide (`get_next_ino()` wraps at 32).
    next_ino: Atomic<u64>,
}

/// A superblock of filesystem `T`, mounted.
///
/// # Invariants
///
/// `T`'s `fill_super` succeeded on it, so `s_fs_info` holds a live
/// `KBox<SbInfo<T>>`, and its `kill_sb` has not dropped it yet.
#[repr(transparent)]
pub(crate) struct SuperBlock<T: FileSystem>(Opaque<bindings::super_block>, PhantomData<T>);

impl<T: FileSystem> SuperBlock<T> {
    /// # Safety
    ///
    /// `sb` is a superblock of `T` whose `fill_super` succeeded and whose
    /// `kill_sb` does not finish during `'a`.
    unsafe fn from_raw<'a>(sb: *mut bindings::super_block) -> &'a Self {
        // SAFETY: As the caller promises; `Self` is transparent over the
        // superblock.
        unsafe { &*sb.cast::<Self>() }
    }

    fn info(&self) -> &SbInfo<T> {
        // SAFETY: By the type invariant `s_fs_info` holds a live
        // `KBox<SbInfo<T>>`, dropped only by `put_super_data`.
        unsafe { &*(*self.0.get()).s_fs_info.cast::<SbInfo<T>>() }
    }

    /// What `T` keeps for this superblock.
    pub(crate) fn data(&self) -> &T::Data {
        &self.info().data
    }
}

/// The allocation of one of `T`'s inodes (`alloc_inode`): the VFS inode
/// and `T`'s data for it (found from the inode by `container_of!`).
///
/// # Invariants
///
/// `data` is written only while nobody else can read it: by `alloc_inode`,
/// by the inode's creator before it publishes the inode (readers look only
/// at hashed inodes that are not `I_NEW`, see [`INode`]), and by
/// `evict_inode`, after the VFS is done with the inode.
///
/// `link` is written only while the inode is `I_NEW` (a new symlink's
/// target, which `i_link` points to from then on) and when the inode is
/// freed, an RCU grace period after anyone could follow the link.
/// `link_charge` and `link_folio` are written only while the inode is
/// `I_NEW` and at eviction; `link_folio` is null or a folio added to the
/// inode's mapping, of which it holds a reference. The reference is what
/// keeps the folio where it is: `drop_caches` and migration leave a folio
/// alone that someone else holds.
struct INodeWithData<T: FileSystem> {
    inode: Opaque<bindings::inode>,
    data: UnsafeCell<Option<T::InodeData>>,
    link: UnsafeCell<Option<KVec<u8>>>,
    /// What a symlink whose target is in the page cache
    /// ([`PageSymlinkOps`]) charged to `T` for it; 0 for others. Given
    /// back at eviction.
    link_charge: UnsafeCell<usize>,
    /// The folio holding that target, of which this holds a reference
    /// (dropped at eviction); null for others.
    link_folio: UnsafeCell<*mut bindings::folio>,
    /// The creation time (statx's `btime`), written while the inode is
    /// `I_NEW` or, for the root, before it is published.
    btime: UnsafeCell<bindings::timespec64>,
    /// The inode's extended attributes, from `alloc_inode` to
    /// `free_inode` (emptied at eviction).
    xattrs: XattrStore,
}

impl<T: FileSystem> INodeWithData<T> {
    /// # Safety
    ///
    /// `inode` is an inode of a superblock of `T`, so allocated by
    /// [`alloc_inode`] for `T`.
    unsafe fn from_inode(inode: *mut bindings::inode) -> *mut Self {
        // SAFETY: As the caller promises, `inode` is the `inode` field of
        // an `INodeWithData<T>`.
        unsafe { kernel::container_of!(inode.cast::<Opaque<bindings::inode>>(), Self, inode) }
    }
}

/// An inode of filesystem `T` that its creator has published: not new
/// any more, so its data is set, or was never set (its creation failed).
///
/// # Invariants
///
/// Lives in an [`INodeWithData<T>`], past its creation, and is not
/// evicted during the lifetime of the reference.
#[repr(transparent)]
pub(crate) struct INode<T: FileSystem>(Opaque<bindings::inode>, PhantomData<T>);

impl<T: FileSystem> INode<T> {
    /// # Safety
    ///
    /// `inode` is an inode of a mounted superblock of `T`, not new (its
    /// creator unlocked it, or it is the root), and not evicted during
    /// `'a` (the caller holds a reference, or writeback that eviction
    /// waits for).
    unsafe fn from_raw<'a>(inode: *mut bindings::inode) -> &'a Self {
        // SAFETY: As the caller promises; `Self` is transparent over the
        // inode.
        unsafe { &*inode.cast::<Self>() }
    }

    /// The inode number.
    pub(crate) fn ino(&self) -> u64 {
        // SAFETY: By the type invariant the inode is valid; `i_ino` does not
        // change once the inode is published.
        unsafe { (*self.0.get()).i_ino }
    }

    /// The superblock the inode belongs to.
    pub(crate) fn super_block(&self) -> &SuperBlock<T> {
        // SAFETY: By the type invariant the inode is alive, so its
        // superblock is mounted; the superblock outlives its inodes.
        unsafe { SuperBlock::from_raw((*self.0.get()).i_sb) }
    }

    /// Whether any of the page cache in the byte range `[start, end)` is
    /// dirty or under writeback (`filemap_range_needs_writeback()`).
    pub(crate) fn range_needs_writeback(&self, start: u64, end: u64) -> bool {
        if start >= end {
            return false;
        }
        // SAFETY: By the type invariant the inode, and so its mapping, is
        // valid; the helper only looks at folio tags.
        unsafe {
            ffi::emfs_filemap_range_needs_writeback(
                (*self.0.get()).i_mapping,
                start as i64,
                end as i64 - 1,
            )
        }
    }

    /// What `T` keeps for this inode; `None` for the root directory.
    pub(crate) fn data(&self) -> Option<&T::InodeData> {
        // SAFETY: By the type invariant the inode lives in an
        // `INodeWithData<T>` whose `data` is no longer written while the
        // inode is referenced.
        unsafe { (*(*INodeWithData::<T>::from_inode(self.0.get())).data.get()).as_ref() }
    }
}

/// `alloc_inode`: an inode of `T`'s cache, without data yet.
///
/// # Safety
///
/// Called by the VFS for a superblock of `T`'s type, registered.
unsafe extern "C" fn alloc_inode<T: VfsTables>(
    sb: *mut bindings::super_block,
) -> *mut bindings::inode {
    // SAFETY: The type is registered, so its cache is live.
    let p =
        unsafe { ffi::emfs_alloc_inode_sb(sb, T::fs_type().inode_cache(), bindings::GFP_KERNEL) }
            .cast::<INodeWithData<T>>();
    if p.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: `p` is a new object of the cache, ours alone; its inode was
    // set up by the cache's constructor, and its data is not initialised
    // (so nothing is dropped here).
    unsafe {
        (&raw mut (*p).data).write(UnsafeCell::new(None));
        (&raw mut (*p).link).write(UnsafeCell::new(None));
        (&raw mut (*p).link_charge).write(UnsafeCell::new(0));
        (&raw mut (*p).link_folio).write(UnsafeCell::new(core::ptr::null_mut()));
        (&raw mut (*p).btime).write(UnsafeCell::new(bindings::timespec64::default()));
        // Pinned: the object does not move until it is freed.
        pin_init::raw_init(&raw mut (*p).xattrs, XattrStore::new());
        (*p).inode.get()
    }
}

/// The cache's constructor: an object's inode is initialised once
/// (`inode_init_once()`), for all its lives.
///
/// # Safety
///
/// `p` is a new object of `T`'s inode cache.
unsafe extern "C" fn inode_init_once<T: VfsTables>(p: *mut c_void) {
    let p = p.cast::<INodeWithData<T>>();
    // SAFETY: As the caller promises.
    unsafe { bindings::inode_init_once((*p).inode.get()) };
}

/// `evict_inode`: the page cache goes, then `T`'s data.
///
/// # Safety
///
/// Called by the VFS, once, for an inode of `T` that nobody uses any more.
unsafe extern "C" fn evict_inode<T: VfsTables>(inode: *mut bindings::inode) {
    // The truncation takes a long symlink's folio out of the page cache;
    // then the inode's reference goes (whoever holds the last frees it).
    // SAFETY: As the caller promises; `link_folio` is ours to write now
    // and a reference (the type invariant of `INodeWithData`).
    unsafe {
        bindings::truncate_inode_pages_final(&raw mut (*inode).i_data);
        bindings::clear_inode(inode);
        let link = (*INodeWithData::<T>::from_inode(inode)).link_folio.get();
        if !(*link).is_null() {
            ffi::emfs_folio_put(*link);
            *link = core::ptr::null_mut();
        }
    }
    if T::HAS_CHARGE_XATTR {
        // SAFETY: As the caller promises: an inode being evicted, whose
        // superblock is mounted until its inodes are evicted. Its ACLs are
        // released with the inode, after this.
        let (sb, store, acls, link) = unsafe {
            (
                (*inode).i_sb,
                xattrs_of::<T>(inode),
                acl::evicted_space(inode),
                *(*INodeWithData::<T>::from_inode(inode)).link_charge.get(),
            )
        };
        let freed = store.clear() + acls + link;
        if freed != 0 {
            // SAFETY: `sb` is mounted, as above.
            T::uncharge_xattr(unsafe { data::<T>(sb) }, freed);
        }
    }
    // SAFETY: As the caller promises, an inode of `T`, that nobody else
    // uses: by the type invariant, ours to write.
    let data = unsafe { (*(*INodeWithData::<T>::from_inode(inode)).data.get()).take() };
    drop(data);
}

/// `free_inode`, after an RCU grace period: the allocation goes back to
/// the cache. Its data went at eviction; an inode that was never evicted
/// never had any.
///
/// # Safety
///
/// Called by the VFS, once, for an inode of `T` that is gone.
unsafe extern "C" fn free_inode<T: VfsTables>(inode: *mut bindings::inode) {
    // The type stays registered, and its cache live, until
    // `Registration::drop` has waited for these calls.
    // SAFETY: As the caller promises, `T`'s inode, gone an RCU grace
    // period ago: its link target and allocation are ours to free.
    unsafe {
        let p = INodeWithData::<T>::from_inode(inode);
        drop((*(*p).link.get()).take());
        core::ptr::drop_in_place(&raw mut (*p).xattrs);
        bindings::kmem_cache_free(T::fs_type().inode_cache(), p.cast())
    };
}

/// A `struct file_system_type`, in static storage: it holds lockdep keys,
/// and the VFS links it into its list of types while it is registered.
///
/// # Invariants
///
/// `raw`, `inode_cache` and `endio` are written only by [`Registration`]:
/// after it set `registered` and before it registers `raw`, and after it
/// unregistered it; while `registered` is set, the VFS owns `raw`,
/// `inode_cache` is the live cache of the type's inodes, and `endio` holds
/// the workqueue of a type with regular files.
pub(crate) struct FsType {
    raw: Opaque<bindings::file_system_type>,
    registered: Atomic<u32>,
    inode_cache: UnsafeCell<*mut bindings::kmem_cache>,
    endio: UnsafeCell<Option<OwnedQueue>>,
}

// SAFETY: By the type invariant, one `Registration` at a time writes it,
// before the VFS, which serialises its own accesses, sees it.
unsafe impl Sync for FsType {}

impl FsType {
    /// The type of filesystem `T`, named `T::NAME`, mounted through
    /// `T`'s `fs_context` operations and killed with `kill_anon_super()`.
    // `CStrExt::as_char_ptr` is not a `const fn`; the cast is its body.
    #[allow(clippy::disallowed_methods)]
    pub(crate) const fn new<T: VfsTables>() -> Self {
        // SAFETY: All zeroes is a valid `file_system_type`: no callbacks,
        // no owner, empty lists.
        let mut raw: bindings::file_system_type = unsafe { core::mem::zeroed() };
        const {
            assert!(
                T::HAS_PARSE_PARAM || T::PARAMS.len() == 1,
                "a filesystem with mount parameters implements parse_param"
            )
        };
        raw.name = T::NAME.as_ptr().cast();
        raw.owner = kernel::module::this_module::<<T as FileSystem>::OwnerModule>().as_ptr();
        raw.init_fs_context = Some(init_fs_context_raw::<T>);
        raw.kill_sb = Some(kill_sb::<T>);
        // Multigrain timestamps, as tmpfs, ext4, XFS and btrfs have them: a
        // change after the time was read gets a fine-grained one, so that
        // it shows even within a clock tick.
        raw.fs_flags = bindings::FS_MGTIME as c_int;
        Self {
            raw: Opaque::new(raw),
            registered: Atomic::new(0),
            inode_cache: UnsafeCell::new(core::ptr::null_mut()),
            endio: UnsafeCell::new(None),
        }
    }

    /// The workqueue the type's write backs complete on; `None` for a
    /// type without regular files. Called only while one of its
    /// superblocks is mounted.
    pub(crate) fn endio(&self) -> Option<&Queue> {
        // SAFETY: By the type invariant, set while the type is registered,
        // which it is while one of its superblocks is mounted; the
        // registration ordered the write before the mount.
        unsafe { (*self.endio.get()).as_deref() }
    }

    /// The cache of the type's inodes, which live in an
    /// [`INodeWithData`] each; null unless registered.
    fn inode_cache(&self) -> *mut bindings::kmem_cache {
        // SAFETY: By the type invariant, written only while no inode of the
        // type can be allocated or freed; `register_filesystem()` and the
        // mount that allocates inodes order the write before this read.
        unsafe { *self.inode_cache.get() }
    }
}

/// The filesystem type is registered while this lives.
pub(crate) struct Registration<T: VfsTables> {
    _fs: PhantomData<T>,
}

impl<T: VfsTables> Registration<T> {
    /// Registers the filesystem type (`register_filesystem()`) for its
    /// module (`T::OwnerModule`); `EBUSY` if it is registered already,
    /// before anything the registered type uses is touched.
    pub(crate) fn new() -> Result<Self> {
        // `fs_parse()` walks the table up to its end.
        if !T::PARAMS.last().is_some_and(|p| p.0.name.is_null()) {
            pr_err!("the mount parameter table does not end with Param::END\n");
            return Err(EINVAL);
        }
        let fs = T::fs_type();
        if fs.registered.cmpxchg(0, 1, Relaxed).is_err() {
            return Err(EBUSY);
        }
        // A failed registration undid its own steps: the type is free again.
        Self::register(fs).inspect_err(|_| fs.registered.store(0, Relaxed))?;
        Ok(Self { _fs: PhantomData })
    }

    /// Makes the type's inode cache and the C half's resources, then
    /// registers the type; on error, undoes what it did.
    fn register(fs: &FsType) -> Result {
        let mut args = bindings::kmem_cache_args {
            align: core::mem::align_of::<INodeWithData<T>>() as u32,
            ctor: Some(inode_init_once::<T>),
            // SAFETY: All zeroes is `kmem_cache_create()`'s default.
            ..unsafe { core::mem::zeroed() }
        };
        // SAFETY: `T::INODE_CACHE` is a string (which the cache copies); the
        // cache is destroyed before the module (whose ctor it calls) goes,
        // in `drop`.
        let cache = unsafe {
            bindings::__kmem_cache_create_args(
                T::INODE_CACHE.as_char_ptr(),
                core::mem::size_of::<INodeWithData<T>>() as u32,
                &mut args,
                ffi::EMFS_SLAB_RECLAIM_ACCOUNT | ffi::EMFS_SLAB_ACCOUNT,
            )
        };
        if cache.is_null() {
            return Err(ENOMEM);
        }
        let ret = data_path_init::<T>(fs).and_then(|()| {
            // SAFETY: By the type invariant, ours to write now; then
            // registered, with `T`'s callbacks, until `drop` unregisters it.
            to_result(unsafe {
                *fs.inode_cache.get() = cache;
                bindings::register_filesystem(fs.raw.get())
            })
            .inspect_err(|_| {
                // SAFETY: Set up just above, and unused: the type was not
                // registered.
                unsafe { data_path_exit(fs) }
            })
        });
        if ret.is_err() {
            // SAFETY: Made above; the type was not registered, so no inode
            // was allocated from it.
            unsafe {
                bindings::kmem_cache_destroy(cache);
                *fs.inode_cache.get() = core::ptr::null_mut();
            }
        }
        ret
    }
}

/// Sets up what the regular files of `T` need while the type is
/// registered (the workqueue their write backs complete on), if `T` has
/// any.
fn data_path_init<T: VfsTables>(fs: &FsType) -> Result {
    let Some(regular) = T::REGULAR else {
        return Ok(());
    };
    let wq = OwnedQueue::new_reclaim(regular.endio_queue, 0)?;
    // SAFETY: By the type invariant of `FsType`, ours to write: the type is
    // not registered yet.
    unsafe { *fs.endio.get() = Some(wq) };
    Ok(())
}

/// Tears down what [`data_path_init`] set up, draining the workqueue.
///
/// # Safety
///
/// The type is not registered (any more): no regular file of `T` is left
/// to use it.
unsafe fn data_path_exit(fs: &FsType) {
    // SAFETY: As the caller promises, nobody else reads it now.
    drop(unsafe { (*fs.endio.get()).take() });
}

/// Mounts filesystem `T` inside the kernel, with its default options,
/// until the returned value is dropped (`kern_mount()`). `ENODEV` if it
/// is not registered; otherwise errors are the mount's.
pub(crate) fn kern_mount<T: VfsTables>() -> Result<KernMount> {
    let fs = T::fs_type();
    if fs.registered.load(Relaxed) == 0 {
        return Err(ENODEV);
    }
    // SAFETY: The type is registered; the caller is code of this module, so
    // the module's exit (which unregisters it) cannot run before the mount
    // takes its reference to the module.
    let mnt = unsafe { bindings::kern_mount(fs.raw.get()) };
    // `kern_mount()` returns a mount or an `ERR_PTR`.
    let mnt = kernel::error::from_err_ptr(mnt)?;
    // INVARIANT: `kern_mount()` succeeded.
    Ok(KernMount { mnt })
}

/// An internal mount ([`kern_mount`]), unmounted on drop.
///
/// # Invariants
///
/// `mnt` is a mount made by `kern_mount()` and not unmounted yet.
pub(crate) struct KernMount {
    mnt: *mut bindings::vfsmount,
}

impl KernMount {
    /// The block size of the mounted superblock (`s_blocksize`).
    pub(crate) fn block_size(&self) -> u64 {
        // SAFETY: By the type invariant `mnt` is mounted, so its superblock
        // is live; `s_blocksize` is set by `fill_super` and not changed.
        unsafe { (*(*self.mnt).mnt_sb).s_blocksize as u64 }
    }

    /// The mount's statistics (`statfs(2)` of its root).
    pub(crate) fn statfs(&self) -> Result<ffi::kstatfs> {
        let mut st = ffi::kstatfs::default();
        // SAFETY: By the type invariant `mnt` is mounted, so its root is a
        // live dentry.
        let root = unsafe { (*self.mnt).mnt_root };
        let path = bindings::path {
            mnt: self.mnt,
            dentry: root,
        };
        // SAFETY: `path` names the mounted root; `st` is valid for a write.
        to_result(unsafe { ffi::vfs_statfs(&path, &mut st) })?;
        Ok(st)
    }
}

impl Drop for KernMount {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `mnt` is still mounted.
        unsafe { bindings::kern_unmount(self.mnt) };
    }
}

impl<T: VfsTables> Drop for Registration<T> {
    fn drop(&mut self) {
        let fs = T::fs_type();
        // Mounts hold a reference to the module, so none is left when the
        // module's data is dropped. The endio workqueue and the inode cache
        // go after the type, once the inodes' RCU-delayed frees ran.
        // SAFETY: `new` registered the type and set up the rest.
        unsafe {
            bindings::unregister_filesystem(fs.raw.get());
            data_path_exit(fs);
            bindings::rcu_barrier();
            bindings::kmem_cache_destroy(fs.inode_cache());
            *fs.inode_cache.get() = core::ptr::null_mut();
        }
        fs.registered.store(0, Relaxed);
    }
}

/// A visit of every mounted superblock of a filesystem and its regular
/// files, by [`walk`].
pub(crate) trait Walk<T: FileSystem> {
    /// A superblock, before its files (`done == false`) and after them.
    fn superblock(&mut self, sb: &SuperBlock<T>, done: bool);

    /// A regular file of that superblock.
    fn file(&mut self, sb: &SuperBlock<T>, inode: &INode<T>);
}

/// What [`walk`] passes to [`walk_sb`].
struct WalkArgs<'a, W> {
    w: &'a mut W,
    sync: bool,
}

/// One superblock of [`walk`]: its regular files, as `drop_caches` walks
/// them (fs/drop_caches.c). Each file is visited holding a reference taken
/// under the list lock (`__iget()`); the previous one is dropped after
/// the list lock, since `iput()` may evict it.
///
/// # Safety
///
/// `arg` is the `WalkArgs<W>` of [`walk`], used by nobody else during the
/// call; `sb` a superblock of `T` that `iterate_supers_type()` passes, so
/// fully set up (`SB_BORN`) and with `s_umount` held.
unsafe extern "C" fn walk_sb<T: FileSystem, W: Walk<T>>(
    sb: *mut bindings::super_block,
    arg: *mut c_void,
) {
    // SAFETY: As the caller promises.
    let args = unsafe { &mut *arg.cast::<WalkArgs<'_, W>>() };
    if args.sync {
        // SAFETY: `s_umount` is held, as `sync_filesystem()` requires.
        unsafe { bindings::sync_filesystem(sb) };
    }
    // SAFETY: As the caller promises, `fill_super` succeeded and `kill_sb`
    // waits for `s_umount`.
    let typed = unsafe { SuperBlock::<T>::from_raw(sb) };
    args.w.superblock(typed, false);

    let mut toput: *mut bindings::inode = core::ptr::null_mut();
    // The inodes are linked through `i_sb_list` on `s_inodes`, under
    // `s_inode_list_lock`; an inode holding a reference stays on the list,
    // so the walk goes on from it after the lock was dropped.
    // SAFETY: `sb` is valid, and its list is walked as described above.
    unsafe {
        let list_lock = &raw mut (*sb).s_inode_list_lock;
        let head = &raw mut (*sb).s_inodes;
        bindings::spin_lock(list_lock);
        let mut pos = (*head).next;
        while pos != head {
            let inode = kernel::container_of!(pos, bindings::inode, i_sb_list);
            bindings::spin_lock(&raw mut (*inode).i_lock);
            // `new_inode()` puts an inode on the list before its creator
            // has set it up; `insert_inode_locked()` hashes it and makes it
            // `I_NEW` under `i_lock`, and `unlock_new_inode()` publishes
            // it. Only hashed inodes that are not `I_NEW` are published
            // (the root, unhashed, is a directory).
            let state = ffi::emfs_inode_state_read(inode);
            let unpublished = state
                & (bindings::inode_state_flags_enum_I_FREEING
                    | bindings::inode_state_flags_enum_I_WILL_FREE
                    | bindings::inode_state_flags_enum_I_NEW)
                != 0
                || ffi::emfs_inode_unhashed(inode);
            let regular =
                !unpublished && u32::from((*inode).i_mode) & bindings::S_IFMT == bindings::S_IFREG;
            // As drop_caches does: an inode not visited is held only to
            // give the CPU away, when it is due.
            if unpublished || (!regular && !crate::glue::sched::need_resched()) {
                bindings::spin_unlock(&raw mut (*inode).i_lock);
                pos = (*pos).next;
                continue;
            }
            ffi::emfs___iget(inode);
            bindings::spin_unlock(&raw mut (*inode).i_lock);
            bindings::spin_unlock(list_lock);

            if regular {
                // The inode is published and referenced.
                args.w.file(typed, INode::<T>::from_raw(inode));
            }
            bindings::iput(toput);
            toput = inode;
            crate::glue::sched::cond_resched();

            bindings::spin_lock(list_lock);
            pos = (*inode).i_sb_list.next;
        }
        bindings::spin_unlock(list_lock);
        bindings::iput(toput);
    }
    args.w.superblock(typed, true);
}

/// Visits every mounted superblock of `T` (`iterate_supers_type()`, with
/// `s_umount` held shared), after writing it back and waiting for that if
/// `sync` (`sync_filesystem()`), then each of its regular files, as
/// `drop_caches` walks a superblock's inodes. May sleep.
pub(crate) fn walk<T: VfsTables, W: Walk<T>>(w: &mut W, sync: bool) {
    let mut args = WalkArgs { w, sync };
    // SAFETY: `args` lives across the call, and is what `walk_sb::<T, W>`
    // expects; `iterate_supers_type()` passes it only superblocks of `T`'s
    // type, set up and with `s_umount` held.
    unsafe {
        bindings::iterate_supers_type(
            T::fs_type().raw.get(),
            Some(walk_sb::<T, W>),
            core::ptr::from_mut(&mut args).cast(),
        )
    };
}

/// Makes `$t` a filesystem type ([`VfsTables`]), with regular files whose
/// data path is iomap's (rust/glue/file.rs); with `no_regular_files`, a
/// type whose directories hold only directories.
macro_rules! filesystem {
    (@tables $t:ty, $regular:expr) => {
        // SAFETY: The type is `$t`, and so are the tables.
        unsafe impl $crate::glue::vfs::VfsTables for $t {
            fn fs_type() -> &'static $crate::glue::vfs::FsType {
                static FS_TYPE: $crate::glue::vfs::FsType = $crate::glue::vfs::FsType::new::<$t>();
                &FS_TYPE
            }

            const REGULAR: Option<$crate::glue::vfs::RegularFiles> = $regular;
        }
    };
    ($t:ty, no_regular_files) => {
        $crate::glue::vfs::filesystem!(@tables $t, None);
    };
    ($t:ty) => {
        $crate::glue::vfs::filesystem!(
            @tables $t,
            Some($crate::glue::vfs::RegularFiles {
                iops: &$crate::glue::vfs::FileInodeOps::<$t>::OPS,
                fops: &$crate::glue::file::FileTables::<$t>::FILE_OPS,
                aops: &$crate::glue::file::FileTables::<$t>::AOPS,
                endio_queue: <$t as $crate::glue::iomap::IomapOperations>::ENDIO_QUEUE,
            })
        );
    };
}
pub(crate) use filesystem;

/// One mount parameter of a filesystem, an entry of its
/// `fs_parameter_spec` table ([`FileSystem::PARAMS`]), which ends with
/// [`Param::END`].
#[repr(transparent)]
pub(crate) struct Param(ffi::fs_parameter_spec);

impl Param {
    /// `fsparam_string(name, opt)`: `name=<string>`, reported to
    /// [`FileSystem::parse_param`] as option `opt`. `fs_parse()` refuses
    /// it without a value, or with an empty one.
    // `CStrExt::as_char_ptr` is not a `const fn`; the cast is its body.
    #[allow(clippy::disallowed_methods)]
    pub(crate) const fn string(name: &'static CStr, opt: u8) -> Self {
        Self(ffi::fs_parameter_spec {
            name: name.as_ptr().cast(),
            type_: Some(ffi::fs_param_is_string),
            opt,
            flags: 0,
            data: core::ptr::null(),
        })
    }

    /// The end of a table.
    pub(crate) const END: Self = Self(ffi::fs_parameter_spec {
        name: core::ptr::null(),
        type_: None,
        opt: 0,
        flags: 0,
        data: core::ptr::null(),
    });
}

/// The `fs_context_operations` of `T`: mounting and remounting.
struct ContextOps<T>(PhantomData<T>);

impl<T: VfsTables> ContextOps<T> {
    const OPS: ffi::fs_context_operations = ffi::fs_context_operations {
        free: Some(free_fc::<T>),
        dup: None,
        parse_param: if T::HAS_PARSE_PARAM {
            Some(parse_param::<T>)
        } else {
            None
        },
        parse_monolithic: None,
        get_tree: Some(get_tree::<T>),
        reconfigure: if T::HAS_RECONFIGURE {
            Some(reconfigure::<T>)
        } else {
            None
        },
    };
}

/// `init_fs_context`: a new mount or remount context gets `T`'s options,
/// empty, and `T`'s operations.
///
/// # Safety
///
/// `fc` is a new context of `T`'s filesystem type, not otherwise used
/// during the call.
unsafe fn init_fs_context<T: VfsTables>(fc: *mut ffi::fs_context) -> c_int {
    let Ok(opts) = KBox::new(T::Options::default(), GFP_KERNEL) else {
        return ENOMEM.to_errno();
    };
    // SAFETY: As the caller promises. `free_fc` frees the options, and
    // the operations are a constant.
    unsafe {
        (*fc).fs_private = KBox::into_raw(opts).cast();
        (*fc).ops = &ContextOps::<T>::OPS;
    }
    0
}

/// `init_fs_context` of `T`'s [`FsType`].
///
/// # Safety
///
/// As for [`init_fs_context`]; `fc` is the context that the generated
/// `struct fs_context` describes (opaque in the kernel crate's bindings).
unsafe extern "C" fn init_fs_context_raw<T: VfsTables>(fc: *mut bindings::fs_context) -> c_int {
    // SAFETY: As the caller promises.
    unsafe { init_fs_context::<T>(fc.cast()) }
}

/// `kill_sb` of `T`'s [`FsType`]: the superblock's data goes after the VFS
/// is done with the superblock (also when `fill_super` failed half way).
///
/// # Safety
///
/// Called by the VFS, once, for a superblock of `T`'s type.
unsafe extern "C" fn kill_sb<T: VfsTables>(sb: *mut bindings::super_block) {
    // SAFETY: As the caller promises.
    unsafe {
        bindings::kill_anon_super(sb);
        put_super_data::<T>(sb);
    }
}

/// The options of a context set up by [`init_fs_context`].
///
/// # Safety
///
/// `fc` is such a context, and the options are not otherwise borrowed
/// while the result is used.
unsafe fn options<'a, T: FileSystem>(fc: *mut ffi::fs_context) -> &'a mut T::Options {
    // SAFETY: As the caller promises, `fs_private` holds a live
    // `KBox<T::Options>`, freed only by `free_fc`.
    unsafe { &mut *(*fc).fs_private.cast::<T::Options>() }
}

/// # Safety
///
/// Called by the VFS, once, for a context set up by [`init_fs_context`].
unsafe extern "C" fn free_fc<T: VfsTables>(fc: *mut ffi::fs_context) {
    // SAFETY: As the caller promises.
    let opts = unsafe { (*fc).fs_private };
    if !opts.is_null() {
        // SAFETY: `opts` is the `KBox` of `init_fs_context`, freed here
        // once.
        drop(unsafe { KBox::from_raw(opts.cast::<T::Options>()) });
        // SAFETY: As the caller promises.
        unsafe { (*fc).fs_private = core::ptr::null_mut() };
    }
}

/// `parse_param`: `fs_parse()` with `T`'s table, then `T`'s own checks
/// of the value. A key not in the table is `ENOPARAM`, which the VFS
/// reports ("Unknown parameter"). A remount of a type without
/// `reconfigure` refuses every parameter: nothing would apply it.
///
/// # Safety
///
/// Called by the VFS for a context set up by [`init_fs_context`] and one
/// of its parameters.
unsafe extern "C" fn parse_param<T: VfsTables>(
    fc: *mut ffi::fs_context,
    param: *mut ffi::fs_parameter,
) -> c_int {
    let mut result = ffi::fs_parse_result::default();
    // SAFETY: As the caller promises; `T::PARAMS` ends with `Param::END`
    // (checked when the type was registered), and `Param` is a
    // `fs_parameter_spec`.
    let opt = unsafe {
        ffi::__fs_parse(
            &raw mut (*fc).log,
            T::PARAMS.as_ptr().cast(),
            param,
            &mut result,
        )
    };
    if opt < 0 {
        return opt;
    }
    // SAFETY: As the caller promises, `fc` is a live context.
    let purpose = unsafe { (*fc).purpose() };
    if !T::HAS_RECONFIGURE && purpose == ffi::fs_context_purpose_FS_CONTEXT_FOR_RECONFIGURE {
        // SAFETY: `fs_parse()` accepted the parameter, so it has a key.
        let key = unsafe { CStr::from_char_ptr((*param).key) };
        pr_err!("{}: a remount cannot change '{}'\n", T::NAME, key);
        return EINVAL.to_errno();
    }
    // SAFETY: Every entry of `T::PARAMS` is a string parameter, so
    // `fs_parse()` accepted a non-empty string value.
    let value = unsafe { CStr::from_char_ptr((*param).__bindgen_anon_1.string) };
    // SAFETY: As the caller promises.
    let opts = unsafe { options::<T>(fc) };
    errno(T::parse_param(opts, opt as u8, value))
}

/// # Safety
///
/// `fc` is a context set up by [`init_fs_context`], in `get_tree`.
unsafe extern "C" fn fill_super_fc<T: VfsTables>(
    sb: *mut bindings::super_block,
    fc: *mut ffi::fs_context,
) -> c_int {
    // SAFETY: As the caller promises.
    let opts = unsafe { options::<T>(fc) };
    // SAFETY: `get_tree_nodev()` passes a new superblock, locked.
    unsafe { fill_super::<T>(sb, opts) }
}

/// `get_tree`: a new superblock for each mount.
///
/// # Safety
///
/// Called by the VFS for a context set up by [`init_fs_context`].
unsafe extern "C" fn get_tree<T: VfsTables>(fc: *mut ffi::fs_context) -> c_int {
    // SAFETY: As the caller promises.
    unsafe { ffi::get_tree_nodev(fc, Some(fill_super_fc::<T>)) }
}

/// `reconfigure`: a remount, with the options parsed into the context.
///
/// # Safety
///
/// Called by the VFS for a context set up by [`init_fs_context`] for the
/// reconfiguration of a mounted superblock of `T`, with `fc->root` set.
unsafe extern "C" fn reconfigure<T: VfsTables>(fc: *mut ffi::fs_context) -> c_int {
    // SAFETY: As the caller promises, the superblock is mounted.
    let data = unsafe { data::<T>((*(*fc).root).d_sb) };
    // SAFETY: As the caller promises.
    let opts = unsafe { options::<T>(fc) };
    errno(T::reconfigure(data, opts))
}

/// The data of a superblock set up by [`fill_super`].
///
/// # Safety
///
/// `sb` is a superblock of this filesystem whose `fill_super` succeeded
/// and whose `kill_sb` has not finished.
pub(crate) unsafe fn data<'a, T: FileSystem>(sb: *mut bindings::super_block) -> &'a T::Data {
    // SAFETY: As the caller promises.
    unsafe { SuperBlock::<T>::from_raw(sb) }.data()
}

/// # Safety
///
/// `sb` is a new superblock locked by `get_tree_nodev()`.
unsafe fn fill_super<T: VfsTables>(sb: *mut bindings::super_block, opts: &T::Options) -> c_int {
    const {
        assert!(
            T::BLOCKSIZE_BITS >= 9 && T::BLOCKSIZE_BITS as u32 <= kernel::page::PAGE_SHIFT as u32
        )
    };
    let info = T::fill_super(opts).and_then(|data| {
        let info = SbInfo::<T> {
            data,
            next_ino: Atomic::new(2),
        };
        Ok(KBox::new(info, GFP_KERNEL)?)
    });
    let info = match info {
        Ok(info) => info,
        Err(e) => return e.to_errno(),
    };
    // SAFETY: `sb` is valid and not yet visible to anyone else; from here
    // on `kill_sb` (also run when this function fails) frees the data.
    unsafe {
        (*sb).s_fs_info = KBox::into_raw(info).cast();
        (*sb).s_magic = T::MAGIC as usize;
        (*sb).s_blocksize_bits = T::BLOCKSIZE_BITS;
        (*sb).s_blocksize = 1 << T::BLOCKSIZE_BITS;
        (*sb).s_time_gran = 1;
    }
    // SAFETY: `sb` is valid and ours. Its own backing_dev_info: the one
    // nodev superblocks share has no writeback, which would leave the page
    // cache dirty forever.
    let ret = unsafe {
        (*sb).s_op = &SuperOps::<T>::OPS;
        if T::HAS_CHARGE_XATTR {
            let handlers: &'static [*const bindings::xattr_handler; 4] = &Xattrs::<T>::HANDLERS;
            (*sb).s_xattr = handlers.as_ptr();
            // POSIX ACLs come with extended attributes (rust/glue/acl.rs).
            (*sb).s_flags |= ffi::EMFS_SB_POSIXACL;
        }
        (*sb).s_maxbytes = ffi::EMFS_MAX_LFS_FILESIZE;
        bindings::super_setup_bdi(sb)
    };
    if ret != 0 {
        return ret;
    }

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
        (*inode).i_op = &DirOps::<T>::OPS;
        (*inode).__bindgen_anon_3.i_fop = &raw const bindings::simple_dir_operations;
        *(*INodeWithData::<T>::from_inode(inode)).btime.get() =
            bindings::simple_inode_init_ts(inode);
        acl::no_acls(inode);
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

/// Gives a new inode of `T` its data (`T::new_inode`).
///
/// # Safety
///
/// `inode` is a new inode of a mounted superblock of `T`, not yet visible
/// to anyone else, or `I_NEW`.
unsafe fn new_inode_data<T: FileSystem>(inode: *mut bindings::inode, regular: bool) -> c_int {
    // SAFETY: As the caller promises.
    let (sb, ino) = unsafe { ((*inode).i_sb, (*inode).i_ino) };
    // SAFETY: A mounted superblock's data lives while it is mounted.
    let data = unsafe { data::<T>(sb) };
    match T::new_inode(data, ino, regular) {
        Ok(d) => {
            // SAFETY: As the caller promises, the inode is `T`'s and nobody
            // else can see its data yet: by the type invariant of
            // `INodeWithData`, ours to write.
            unsafe { *(*INodeWithData::<T>::from_inode(inode)).data.get() = Some(d) };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// `sb` is a superblock of this filesystem shut down by
/// `kill_anon_super()`; called once.
unsafe fn put_super_data<T: FileSystem>(sb: *mut bindings::super_block) {
    // SAFETY: `sb` is valid.
    let data = unsafe { (*sb).s_fs_info };
    if !data.is_null() {
        // SAFETY: `fill_super` stored a `KBox<SbInfo<T>>` here; nothing uses
        // it after `kill_anon_super()`.
        drop(unsafe { KBox::from_raw(data.cast::<SbInfo<T>>()) });
        // SAFETY: `sb` is valid.
        unsafe { (*sb).s_fs_info = core::ptr::null_mut() };
    }
}

/// The `super_operations` of `T`.
struct SuperOps<T>(PhantomData<T>);

impl<T: VfsTables> SuperOps<T> {
    const OPS: bindings::super_operations = bindings::super_operations {
        alloc_inode: Some(alloc_inode::<T>),
        free_inode: Some(free_inode::<T>),
        evict_inode: Some(evict_inode::<T>),
        statfs: if T::HAS_STATFS {
            Some(statfs::<T>)
        } else {
            Some(bindings::simple_statfs)
        },
        show_options: if T::HAS_SHOW_OPTIONS {
            Some(show_options::<T>)
        } else {
            None
        },
        // SAFETY: The other operations are optional: NULL is valid.
        ..unsafe { core::mem::zeroed() }
    };
}

/// The `inode_operations` of `T`'s directories: `libfs`'s, but for
/// making inodes, which need `T`'s data, and for renaming, which may make
/// a whiteout.
struct DirOps<T>(PhantomData<T>);

impl<T: VfsTables> DirOps<T> {
    const OPS: bindings::inode_operations = bindings::inode_operations {
        create: if T::REGULAR.is_some() {
            Some(create::<T>)
        } else {
            None
        },
        lookup: Some(bindings::simple_lookup),
        link: Some(bindings::simple_link),
        unlink: Some(bindings::simple_unlink),
        symlink: Some(symlink::<T>),
        mkdir: Some(mkdir::<T>),
        rmdir: Some(bindings::simple_rmdir),
        mknod: Some(mknod::<T>),
        rename: Some(rename::<T>),
        tmpfile: if T::REGULAR.is_some() {
            Some(tmpfile::<T>)
        } else {
            None
        },
        ..SpecialOps::<T>::OPS
    };
}

/// The `inode_operations` of `T`'s symlinks with short targets: the target
/// is kept with the inode, pointed to by `i_link`.
struct SymlinkOps<T>(PhantomData<T>);

impl<T: VfsTables> SymlinkOps<T> {
    const OPS: bindings::inode_operations = bindings::inode_operations {
        get_link: Some(bindings::simple_get_link),
        // Symlinks have no ACLs.
        setattr: Some(bindings::simple_setattr),
        set_acl: None,
        ..SpecialOps::<T>::OPS
    };
}

/// The `inode_operations` of `T`'s symlinks whose targets are in the page
/// cache ([`page_link`]).
struct PageSymlinkOps<T>(PhantomData<T>);

impl<T: VfsTables> PageSymlinkOps<T> {
    const OPS: bindings::inode_operations = bindings::inode_operations {
        get_link: Some(bindings::page_get_link),
        ..SymlinkOps::<T>::OPS
    };
}

/// The `inode_operations` of `T`'s FIFOs, sockets and device nodes, whose
/// file operations are the VFS's (`init_special_inode()`): what every
/// inode of `T` has, which the other tables start from.
struct SpecialOps<T>(PhantomData<T>);

impl<T: VfsTables> SpecialOps<T> {
    const OPS: bindings::inode_operations = bindings::inode_operations {
        listxattr: Xattrs::<T>::LIST,
        getattr: Some(getattr::<T>),
        setattr: Some(setattr::<T>),
        set_acl: if T::HAS_CHARGE_XATTR {
            Some(acl::set_acl::<T>)
        } else {
            None
        },
        // SAFETY: The other operations are optional: NULL is valid.
        ..unsafe { core::mem::zeroed() }
    };
}

/// The `inode_operations` of `T`'s regular files
/// ([`RegularFiles::iops`]). The size change of `setattr` and FIEMAP are
/// the data path's (rust/glue/file.rs, rust/glue/iomap.rs).
pub(crate) struct FileInodeOps<T>(PhantomData<T>);

impl<T: VfsTables + InodeOperations + crate::glue::iomap::IomapOperations> FileInodeOps<T> {
    pub(crate) const OPS: bindings::inode_operations = bindings::inode_operations {
        getattr: Some(file_getattr::<T>),
        setattr: Some(file_setattr::<T>),
        fiemap: Some(crate::glue::iomap::fiemap::<T>),
        ..SpecialOps::<T>::OPS
    };
}

/// `setattr` of directories and special files: libfs's, and the access
/// ACL follows a new mode.
///
/// # Safety
///
/// Called by the VFS with the inode of `dentry` locked, of a mounted
/// superblock of `T`.
unsafe extern "C" fn setattr<T: VfsTables>(
    idmap: *mut bindings::mnt_idmap,
    dentry: *mut bindings::dentry,
    attr: *mut bindings::iattr,
) -> c_int {
    // SAFETY: As the caller promises.
    unsafe {
        let ret = bindings::simple_setattr(idmap, dentry, attr);
        if ret != 0 || !T::HAS_CHARGE_XATTR {
            return ret;
        }
        acl::chmod(idmap, dentry, attr)
    }
}

/// `getattr`: libfs's, and the creation time.
///
/// # Safety
///
/// Called by the VFS for a positive `path` of a mounted superblock of
/// `T`, with `stat` valid for writes.
unsafe extern "C" fn getattr<T: VfsTables>(
    idmap: *mut bindings::mnt_idmap,
    path: *const bindings::path,
    stat: *mut bindings::kstat,
    request_mask: u32,
    flags: u32,
) -> c_int {
    // SAFETY: As the caller promises; the inode is referenced by the path,
    // its creation time written before it was published.
    unsafe {
        let ret = bindings::simple_getattr(idmap, path, stat, request_mask, flags);
        if ret != 0 {
            return ret;
        }
        let inode = (*(*path).dentry).d_inode;
        (*stat).btime = *(*INodeWithData::<T>::from_inode(inode)).btime.get();
        (*stat).result_mask |= bindings::STATX_BTIME;
    }
    0
}

/// `getattr` of a regular file: [`getattr`], and `st_blocks` from what
/// `T` says the file holds.
///
/// # Safety
///
/// As for [`getattr`], `path` a regular file.
unsafe extern "C" fn file_getattr<T: VfsTables + InodeOperations>(
    idmap: *mut bindings::mnt_idmap,
    path: *const bindings::path,
    stat: *mut bindings::kstat,
    request_mask: u32,
    flags: u32,
) -> c_int {
    // SAFETY: As the caller promises.
    unsafe {
        let ret = getattr::<T>(idmap, path, stat, request_mask, flags);
        if ret != 0 {
            return ret;
        }
        let inode = (*(*path).dentry).d_inode;
        if let Ok((data, fi)) = sb_inode::<T>(inode) {
            (*stat).blocks = T::allocated(data, fi) >> 9;
        }
    }
    0
}

/// `setattr` of a regular file: checked by `setattr_prepare()`, the size
/// changed by the data path (truncating or extending, with its blocks),
/// then the rest copied by `setattr_copy()`. A size change is a change of
/// the file: mtime and ctime are updated even when the caller did not ask
/// (`truncate(2)` does not), as POSIX requires.
///
/// # Safety
///
/// Called by the VFS with `i_rwsem` of the dentry's inode held, a regular
/// file of a mounted superblock of `T`.
unsafe extern "C" fn file_setattr<
    T: VfsTables + InodeOperations + crate::glue::iomap::IomapOperations,
>(
    idmap: *mut bindings::mnt_idmap,
    dentry: *mut bindings::dentry,
    attr: *mut bindings::iattr,
) -> c_int {
    // SAFETY: As the caller promises.
    unsafe {
        let ret = bindings::setattr_prepare(idmap, dentry, attr);
        if ret != 0 {
            return ret;
        }
        let inode = (*dentry).d_inode;
        if (*attr).ia_valid & bindings::ATTR_SIZE != 0 && (*attr).ia_size != (*inode).i_size {
            let ret = crate::glue::file::setsize::<T>(inode, (*attr).ia_size as u64);
            if ret != 0 {
                return ret;
            }
            ffi::emfs_inode_set_mtime_to_ts(inode, bindings::inode_set_ctime_current(inode));
        }
        bindings::setattr_copy(idmap, inode, attr);
        if T::HAS_CHARGE_XATTR {
            return acl::chmod(idmap, dentry, attr);
        }
    }
    0
}

/// Makes a new inode of `mode` in `dir` (a device node of `dev` if it is
/// one, a symlink to `link` if it is one), and returns it referenced and
/// unlocked, for the caller to give a dentry. `I_NEW`
/// (`insert_inode_locked()`) until `T`'s data is in place, thrown away
/// (`discard_new_inode()`) if that fails. Hashed, unlike ramfs's inodes:
/// `__mark_inode_dirty()` puts only hashed inodes on the writeback lists,
/// and the page cache must reach the disk through the flusher and
/// `sync(2)`, not only through `fsync`.
///
/// # Safety
///
/// `dir` is a directory of a mounted superblock of `T`, locked by the
/// caller as for the directory operations below (but for `tmpfile`, which
/// the VFS calls without the lock: nothing here needs it).
unsafe fn new_child<T: VfsTables>(
    idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    mode: u32,
    dev: bindings::dev_t,
    link: Option<Link<'_>>,
) -> Result<*mut bindings::inode> {
    let fmt = mode & bindings::S_IFMT;
    // A type without regular files has no `create` or `tmpfile` in its
    // tables.
    let regular = match (fmt, T::REGULAR) {
        (bindings::S_IFREG, Some(tables)) => Some(tables),
        (bindings::S_IFREG, None) => return Err(EPERM),
        _ => None,
    };
    // SAFETY: As the caller promises.
    let sb = unsafe { (*dir).i_sb };
    // SAFETY: `sb` is mounted: a superblock of `T` whose `fill_super`
    // succeeded.
    let info = unsafe { SuperBlock::<T>::from_raw(sb) }.info();
    // Its ACLs, and the mode they leave (with ACLs, the umask is applied
    // here, not by the VFS), charged before anything is made.
    let mut mode = mode as bindings::umode_t;
    let acls = if T::HAS_CHARGE_XATTR {
        // SAFETY: As the caller promises.
        Some(unsafe { acl::inherit::<T>(dir, &mut mode) }?)
    } else {
        None
    };
    // SAFETY: `sb` is mounted.
    let inode = unsafe { bindings::new_inode(sb) };
    if inode.is_null() {
        return Err(ENOMEM);
    }
    // `i_fop` is in an anonymous union of `struct inode`, which bindgen
    // numbers. The walk skips unhashed inodes; nothing else finds them.
    // SAFETY: `inode` is new and, unhashed, ours until it is hashed below;
    // the tables are constants.
    unsafe {
        (*inode).i_ino = info.next_ino.fetch_add(1, Relaxed);
        bindings::inode_init_owner(idmap, inode, dir, mode);
        // Its cache of ACLs is their only copy (`cache_no_acl()`): none
        // is ever read, with or without ACLs on this filesystem.
        acl::no_acls(inode);
        // From here its eviction gives their space back.
        if let Some(acls) = acls {
            acls.install(inode);
        }
        *(*INodeWithData::<T>::from_inode(inode)).btime.get() =
            bindings::simple_inode_init_ts(inode);
        match (fmt, &regular) {
            (_, Some(tables)) => {
                (*inode).i_op = tables.iops;
                (*inode).__bindgen_anon_3.i_fop = tables.fops;
                (*(*inode).i_mapping).a_ops = tables.aops;
                // iomap handles folios of any size, as large as readahead
                // and writes make them.
                ffi::emfs_mapping_set_large_folios((*inode).i_mapping);
            }
            (bindings::S_IFDIR, _) => {
                (*inode).i_op = &DirOps::<T>::OPS;
                (*inode).__bindgen_anon_3.i_fop = &raw const bindings::simple_dir_operations;
                // Directories start with i_nlink == 2, for ".".
                bindings::inc_nlink(inode);
            }
            (bindings::S_IFLNK, _) => (*inode).i_op = &SymlinkOps::<T>::OPS,
            _ => {
                (*inode).i_op = &SpecialOps::<T>::OPS;
                bindings::init_special_inode(inode, (*inode).i_mode, dev);
            }
        }
        if bindings::insert_inode_locked(inode) < 0 {
            // Numbers are not reused: a bug, not a user error.
            bindings::make_bad_inode(inode);
            bindings::iput(inode);
            return Err(EBUSY);
        }
    }
    // SAFETY: `inode` is `I_NEW`, of the mounted `sb`.
    let ret = unsafe { new_inode_data::<T>(inode, regular.is_some()) };
    if ret != 0 {
        // SAFETY: `inode` is `I_NEW` and ours. No link: evicted when put,
        // not kept in the inode cache.
        unsafe {
            bindings::clear_nlink(inode);
            bindings::discard_new_inode(inode);
        }
        return Err(Error::from_errno(ret));
    }
    match link {
        // SAFETY: `inode` is `I_NEW`: by the type invariant of
        // `INodeWithData`, its link is ours to write; the target, NUL
        // terminated, stays at the same address until the inode is freed.
        Some(Link::Inline(link)) => unsafe {
            let p = INodeWithData::<T>::from_inode(inode);
            let target = (*(*p).link.get()).insert(link);
            (*inode).i_size = (target.len() - 1) as i64;
            ffi::emfs_inode_set_cached_link(
                inode,
                target.as_mut_ptr().cast(),
                (target.len() - 1) as c_int,
            );
        },
        Some(Link::Paged(target)) => {
            // SAFETY: `inode` is a new symlink, `I_NEW`, of the mounted
            // `sb`.
            if let Err(e) = unsafe { page_link::<T>(inode, target) } {
                // SAFETY: As above, on the failure of `new_inode_data()`.
                unsafe {
                    bindings::clear_nlink(inode);
                    bindings::discard_new_inode(inode);
                }
                return Err(e);
            }
        }
        None => {}
    }
    // SAFETY: `inode` is `I_NEW` and ours; `unlock_new_inode()` publishes
    // the data with the flag.
    unsafe { bindings::unlock_new_inode(inode) };
    Ok(inode)
}

/// A new symlink's target, with its NUL.
enum Link<'a> {
    /// Up to [`SHORT_LINK`] bytes: kept with the inode, which `i_link`
    /// points to (followed without a call to the filesystem).
    Inline(KVec<u8>),
    /// Longer, up to `PATH_MAX`: written to the page cache
    /// ([`page_link`]).
    Paged(&'a [u8]),
}

/// The longest target, with its NUL, kept with the inode; longer ones go
/// to the page cache. tmpfs's split (`SHORT_SYMLINK_LEN`).
const SHORT_LINK: usize = 128;

/// Puts the target of the new symlink `inode` (with its NUL) in its page
/// cache: one folio, uptodate and clean (there is nothing to write it
/// to), which the inode holds a reference to until it is evicted, so that
/// neither reclaim nor `drop_caches` takes it (the mapping is unevictable
/// too); read by `page_get_link()` ([`PageSymlinkOps`]). The page is
/// charged to `T` like an extended attribute, and given back at eviction.
/// `ENOSPC`, `ENOMEM`.
///
/// Not `page_symlink()`: it leaves the folio dirty without accounting it
/// (`ram_aops`' `noop_dirty_folio`), which truncation would then
/// "clean" from the dirty page counters of this filesystem's own
/// backing device, which can write back.
///
/// # Safety
///
/// `inode` is a new symlink of a mounted superblock of `T`, `I_NEW`.
unsafe fn page_link<T: VfsTables>(inode: *mut bindings::inode, target: &[u8]) -> Result {
    const { assert!(bindings::PATH_MAX as usize <= kernel::page::PAGE_SIZE) };
    // The inode is `I_NEW`: its `link_charge` and `link_folio` are ours to
    // write (the type invariant of `INodeWithData`), its tables and mapping
    // ours to set up. The new folio is locked, ours until unlocked, of
    // order 0 (no large folios here): one page, which the target (at most
    // `PATH_MAX` bytes, checked by `symlink`) fits.
    // SAFETY: As the caller promises, and as said above.
    unsafe {
        let p = INodeWithData::<T>::from_inode(inode);
        if T::HAS_CHARGE_XATTR {
            let page = kernel::page::PAGE_SIZE;
            T::charge_xattr(data::<T>((*inode).i_sb), page)?;
            *(*p).link_charge.get() = page;
        }
        (*inode).i_op = &PageSymlinkOps::<T>::OPS;
        (*inode).i_size = (target.len() - 1) as i64;
        let mapping = (*inode).i_mapping;
        // Never asked to read: the folio stays until eviction.
        (*mapping).a_ops = &raw const bindings::ram_aops;
        // `page_get_link()` reads the folio through its kernel address.
        bindings::inode_nohighmem(inode);
        ffi::emfs_mapping_set_unevictable(mapping);
        // Allocated under the directory's lock: no filesystem reclaim.
        let folio = nofs(|| ffi::emfs_filemap_grab_folio(mapping, 0));
        let folio = kernel::error::from_err_ptr(folio)?;
        let page = ffi::emfs_kmap_local_folio(folio, 0).cast::<u8>();
        core::ptr::copy_nonoverlapping(target.as_ptr(), page, target.len());
        // The rest zeroed, as a write through the page cache leaves it.
        core::ptr::write_bytes(
            page.add(target.len()),
            0,
            kernel::page::PAGE_SIZE - target.len(),
        );
        bindings::kunmap_local(page.cast());
        ffi::emfs_folio_mark_uptodate(folio);
        bindings::folio_unlock(folio);
        *(*p).link_folio.get() = folio;
    }
    Ok(())
}

/// Makes a new inode of `mode` (and `dev`, `link`, as [`new_child`]
/// takes them) for the negative `dentry` in `dir`, and updates `dir`'s
/// times.
///
/// # Safety
///
/// Called by the VFS from a directory operation of a directory of a
/// mounted superblock of `T`, with `dir` locked and `dentry` negative.
unsafe fn make_node<T: VfsTables>(
    idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: u32,
    dev: bindings::dev_t,
    link: Option<Link<'_>>,
) -> c_int {
    // SAFETY: As the caller promises.
    match unsafe { new_child::<T>(idmap, dir, mode, dev, link) } {
        // SAFETY: `dir` and `dentry` as the caller promises; `inode` is
        // ours, referenced, and its reference goes to the dentry.
        Ok(inode) => unsafe {
            bindings::d_make_persistent(dentry, inode);
            ffi::emfs_inode_set_mtime_to_ts(dir, bindings::inode_set_ctime_current(dir));
            0
        },
        Err(e) => e.to_errno(),
    }
}

/// `create`.
///
/// # Safety
///
/// As for [`make_node`].
unsafe extern "C" fn create<T: VfsTables>(
    idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: bindings::umode_t,
) -> c_int {
    let mode = (u32::from(mode) & !bindings::S_IFMT) | bindings::S_IFREG;
    // SAFETY: As the caller promises.
    unsafe { make_node::<T>(idmap, dir, dentry, mode, 0, None) }
}

/// `mknod`: regular files, FIFOs, sockets and device nodes (the VFS has
/// checked the type and the caller's right to make devices).
///
/// # Safety
///
/// As for [`make_node`].
unsafe extern "C" fn mknod<T: VfsTables>(
    idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: bindings::umode_t,
    dev: bindings::dev_t,
) -> c_int {
    // SAFETY: As the caller promises.
    unsafe { make_node::<T>(idmap, dir, dentry, mode.into(), dev, None) }
}

/// `symlink`: a target of up to [`SHORT_LINK`] bytes with its NUL is kept
/// with the inode (`inode_set_cached_link()`), a longer one, up to
/// `PATH_MAX`, in the page cache ([`page_link`]).
///
/// # Safety
///
/// As for [`make_node`]; `target` is a NUL-terminated string.
unsafe extern "C" fn symlink<T: VfsTables>(
    idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    target: *const kernel::ffi::c_char,
) -> c_int {
    // SAFETY: As the caller promises.
    let target = unsafe { CStr::from_char_ptr(target) }.to_bytes_with_nul();
    if target.len() > bindings::PATH_MAX as usize {
        return ENAMETOOLONG.to_errno();
    }
    let link = if target.len() <= SHORT_LINK {
        let mut link = KVec::new();
        // Under the directory's lock: no filesystem reclaim.
        if nofs(|| link.extend_from_slice(target, GFP_KERNEL)).is_err() {
            return ENOMEM.to_errno();
        }
        Link::Inline(link)
    } else {
        Link::Paged(target)
    };
    let mode = bindings::S_IFLNK | 0o777;
    // SAFETY: As the caller promises.
    unsafe { make_node::<T>(idmap, dir, dentry, mode, 0, Some(link)) }
}

/// `mkdir`: `NULL` (the dentry was used) or an `ERR_PTR`.
///
/// # Safety
///
/// As for [`make_node`].
unsafe extern "C" fn mkdir<T: VfsTables>(
    idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    mode: bindings::umode_t,
) -> *mut bindings::dentry {
    let mode = (u32::from(mode) & !bindings::S_IFMT) | bindings::S_IFDIR;
    // SAFETY: As the caller promises.
    let ret = unsafe { make_node::<T>(idmap, dir, dentry, mode, 0, None) };
    if ret != 0 {
        // SAFETY: `ERR_PTR()` of a negative errno.
        return unsafe { bindings::ERR_PTR(ret as isize) }.cast();
    }
    // SAFETY: `dir` is locked, as the caller promises: the new directory's
    // "..".
    unsafe { bindings::inc_nlink(dir) };
    core::ptr::null_mut()
}

/// `tmpfile`: a regular file with no name (`O_TMPFILE`), opened on `file`;
/// `linkat()` may give it one later.
///
/// # Safety
///
/// Called by the VFS with `dir` a directory of a mounted superblock of
/// `T`, and `file` being opened on a new dentry in it.
unsafe extern "C" fn tmpfile<T: VfsTables>(
    idmap: *mut bindings::mnt_idmap,
    dir: *mut bindings::inode,
    file: *mut bindings::file,
    mode: bindings::umode_t,
) -> c_int {
    let mode = (u32::from(mode) & !bindings::S_IFMT) | bindings::S_IFREG;
    // SAFETY: As the caller promises.
    match unsafe { new_child::<T>(idmap, dir, mode, 0, None) } {
        // SAFETY: `file` as the caller promises; `d_tmpfile()` takes the
        // inode's reference and drops its link count to 0.
        Ok(inode) => unsafe {
            bindings::d_tmpfile(file, inode);
            bindings::finish_open(file, (*file).__bindgen_anon_1.f_path.dentry, None)
        },
        Err(e) => e.to_errno(),
    }
}

/// `rename`, with `RENAME_NOREPLACE` (checked by the VFS),
/// `RENAME_EXCHANGE` and `RENAME_WHITEOUT` (a whiteout device node is
/// left where the source was, as overlayfs asks). `simple_rename()` does
/// the rest.
///
/// # Safety
///
/// Called by the VFS with both directories of a mounted superblock of
/// `T` locked, the source positive.
unsafe extern "C" fn rename<T: VfsTables>(
    idmap: *mut bindings::mnt_idmap,
    old_dir: *mut bindings::inode,
    old_dentry: *mut bindings::dentry,
    new_dir: *mut bindings::inode,
    new_dentry: *mut bindings::dentry,
    flags: u32,
) -> c_int {
    let known = bindings::RENAME_NOREPLACE | bindings::RENAME_EXCHANGE | bindings::RENAME_WHITEOUT;
    if flags & !known != 0 {
        return EINVAL.to_errno();
    }
    if flags & bindings::RENAME_WHITEOUT != 0 {
        // SAFETY: As the caller promises; the whiteout is a new dentry of
        // the source's name, which `make_node` makes positive.
        let ret = unsafe {
            if bindings::simple_empty(new_dentry) == 0 {
                return ENOTEMPTY.to_errno();
            }
            let whiteout = bindings::d_alloc(
                (*old_dentry).d_parent,
                &raw const (*old_dentry).__bindgen_anon_1.d_name,
            );
            if whiteout.is_null() {
                return ENOMEM.to_errno();
            }
            let mode = bindings::S_IFCHR | bindings::WHITEOUT_MODE;
            let ret = make_node::<T>(idmap, old_dir, whiteout, mode, bindings::WHITEOUT_DEV, None);
            bindings::dput(whiteout);
            ret
        };
        if ret != 0 {
            return ret;
        }
    }
    // SAFETY: As the caller promises.
    unsafe {
        bindings::simple_rename(
            idmap,
            old_dir,
            old_dentry,
            new_dir,
            new_dentry,
            flags & !bindings::RENAME_WHITEOUT,
        )
    }
}

/// The extended attributes of `T`'s inodes, if it has them
/// ([`FileSystem::charge_xattr`]): one handler per namespace, as tmpfs
/// has them, over the inode's [`XattrStore`].
struct Xattrs<T>(PhantomData<T>);

impl<T: VfsTables> Xattrs<T> {
    // `CStrExt::as_char_ptr` is not a `const fn`; the cast is its body.
    #[allow(clippy::disallowed_methods)]
    const fn handler(prefix: &'static CStr) -> bindings::xattr_handler {
        bindings::xattr_handler {
            name: core::ptr::null(),
            prefix: prefix.as_ptr().cast(),
            flags: 0,
            list: None,
            get: Some(xattr_get::<T>),
            set: Some(xattr_set::<T>),
        }
    }

    const SECURITY: bindings::xattr_handler = Self::handler(c"security.");
    const TRUSTED: bindings::xattr_handler = Self::handler(c"trusted.");
    const USER: bindings::xattr_handler = Self::handler(c"user.");

    /// `s_xattr`: the handlers, ending with `NULL`.
    const HANDLERS: [*const bindings::xattr_handler; 4] = [
        &Self::SECURITY,
        &Self::TRUSTED,
        &Self::USER,
        core::ptr::null(),
    ];

    /// The inode operations' `listxattr`.
    const LIST: Option<
        unsafe extern "C" fn(*mut bindings::dentry, *mut kernel::ffi::c_char, usize) -> isize,
    > = if T::HAS_CHARGE_XATTR {
        Some(listxattr::<T>)
    } else {
        None
    };
}

/// The extended attributes of `inode`.
///
/// # Safety
///
/// `inode` is an inode of a superblock of `T`, not freed during `'a`.
unsafe fn xattrs_of<'a, T: FileSystem>(inode: *mut bindings::inode) -> &'a XattrStore {
    // SAFETY: As the caller promises: `alloc_inode` initialised the store,
    // which lives until `free_inode`.
    unsafe { &(*INodeWithData::<T>::from_inode(inode)).xattrs }
}

/// The full name of attribute `name` of `handler`'s namespace.
///
/// # Safety
///
/// `handler` is one of [`Xattrs::HANDLERS`], `name` a NUL-terminated
/// string as the VFS gives it to the handler; valid during `'a`.
unsafe fn full_name<'a>(
    handler: *const bindings::xattr_handler,
    name: *const kernel::ffi::c_char,
) -> &'a [u8] {
    // SAFETY: As the caller promises; the full name is `name` with the
    // prefix before it, in the same string.
    unsafe { CStr::from_char_ptr(bindings::xattr_full_name(handler, name)) }.to_bytes()
}

/// `xattr_handler->get`: the value of attribute `name` (the part after the
/// handler's prefix), copied to `buffer` if `size` is not 0; its size.
///
/// # Safety
///
/// Called by the VFS with `handler` one of [`Xattrs::HANDLERS`], `inode`
/// of a mounted superblock of `T`, and `buffer` valid for `size` bytes.
unsafe extern "C" fn xattr_get<T: VfsTables>(
    handler: *const bindings::xattr_handler,
    _dentry: *mut bindings::dentry,
    inode: *mut bindings::inode,
    name: *const kernel::ffi::c_char,
    buffer: *mut c_void,
    size: usize,
) -> c_int {
    // SAFETY: As the caller promises; `buffer` is the VFS's, ours during
    // the call.
    let (store, name, buf) = unsafe {
        (
            xattrs_of::<T>(inode),
            full_name(handler, name),
            raw_bytes_mut(buffer, size),
        )
    };
    match store.get(name, buf) {
        Ok(n) => n as c_int,
        Err(e) => e.to_errno(),
    }
}

/// `size` bytes at `p`, or none if `size` is 0 (`p` may be `NULL` then).
///
/// # Safety
///
/// If `size` is not 0, `p` is valid for `size` bytes of writes, and
/// nothing else reads or writes them during `'a`.
unsafe fn raw_bytes_mut<'a>(p: *mut c_void, size: usize) -> &'a mut [u8] {
    if size == 0 {
        return &mut [];
    }
    // SAFETY: As the caller promises.
    unsafe { core::slice::from_raw_parts_mut(p.cast(), size) }
}

/// `xattr_handler->set`: sets attribute `name` to the `size` bytes at
/// `value`, or removes it if `value` is `NULL`, as `flags`
/// (`XATTR_CREATE`, `XATTR_REPLACE`) allow. The new value's space is
/// charged to `T` first, the old one's given back after.
///
/// # Safety
///
/// Called by the VFS with the inode locked, `handler` one of
/// [`Xattrs::HANDLERS`], `inode` of a mounted superblock of `T`, `value`
/// `NULL` or valid for `size` bytes.
unsafe extern "C" fn xattr_set<T: VfsTables>(
    handler: *const bindings::xattr_handler,
    _idmap: *mut bindings::mnt_idmap,
    _dentry: *mut bindings::dentry,
    inode: *mut bindings::inode,
    name: *const kernel::ffi::c_char,
    value: *const c_void,
    size: usize,
    flags: c_int,
) -> c_int {
    // SAFETY: As the caller promises.
    let (data, store, name) = unsafe {
        (
            data::<T>((*inode).i_sb),
            xattrs_of::<T>(inode),
            full_name(handler, name),
        )
    };
    let value = if value.is_null() {
        None
    } else if size == 0 {
        Some(&[][..])
    } else {
        // SAFETY: As the caller promises.
        Some(unsafe { core::slice::from_raw_parts(value.cast::<u8>(), size) })
    };
    let space = value.map_or(0, |v| xattr::space(name.len(), v.len()));
    if space != 0 {
        if let Err(e) = T::charge_xattr(data, space) {
            return e.to_errno();
        }
    }
    // The allocations are under the inode's lock: no filesystem reclaim.
    match nofs(|| store.set(name, value, flags)) {
        Err(e) => {
            if space != 0 {
                T::uncharge_xattr(data, space);
            }
            e.to_errno()
        }
        Ok(old) => {
            if old != 0 {
                T::uncharge_xattr(data, old);
            }
            // SAFETY: `inode` is valid and locked.
            unsafe { bindings::inode_set_ctime_current(inode) };
            0
        }
    }
}

/// `listxattr`: the names of the attributes, NUL-terminated, one after
/// the other in `buffer` if `size` is not 0; their total size. The ACLs'
/// names first, then the store's; `trusted.` names are listed only to
/// `CAP_SYS_ADMIN`, as libfs lists them.
///
/// # Safety
///
/// Called by the VFS with a positive `dentry` of a mounted superblock of
/// `T`, and `buffer` valid for `size` bytes.
unsafe extern "C" fn listxattr<T: VfsTables>(
    dentry: *mut bindings::dentry,
    buffer: *mut kernel::ffi::c_char,
    size: usize,
) -> isize {
    // SAFETY: As the caller promises.
    let (store, buf) = unsafe {
        (
            xattrs_of::<T>((*dentry).d_inode),
            raw_bytes_mut(buffer.cast(), size),
        )
    };
    // SAFETY: Asks about the current task; always allowed.
    let trusted = unsafe {
        bindings::ns_capable_noaudit(
            &raw mut bindings::init_user_ns,
            bindings::CAP_SYS_ADMIN as c_int,
        )
    };
    let mut names = Names::new(buf);
    // SAFETY: The dentry holds its inode.
    let listed = unsafe { acl::list((*dentry).d_inode, &mut names) }
        .and_then(|()| store.list(&mut names, trusted));
    match listed {
        Ok(()) => names.len() as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// `statfs`.
///
/// # Safety
///
/// Called by the VFS for a dentry of a mounted superblock of `T`, with
/// `buf` valid for writes.
unsafe extern "C" fn statfs<T: VfsTables>(
    dentry: *mut bindings::dentry,
    buf: *mut bindings::kstatfs,
) -> c_int {
    // SAFETY: As the caller promises.
    let sb = unsafe { (*dentry).d_sb };
    // SAFETY: A mounted superblock's data lives while it is mounted.
    let st = T::statfs(unsafe { data::<T>(sb) });
    // SAFETY: `buf` is a `struct kstatfs` (opaque in the kernel crate's
    // bindings, described in the generated ones), valid for writes; `sb`
    // is valid.
    unsafe {
        let buf = buf.cast::<ffi::kstatfs>();
        (*buf).f_type = (*sb).s_magic as isize;
        (*buf).f_bsize = (*sb).s_blocksize as isize;
        (*buf).f_frsize = (*sb).s_blocksize as isize;
        (*buf).f_blocks = st.blocks;
        (*buf).f_bfree = st.bfree;
        (*buf).f_bavail = st.bavail;
        (*buf).f_files = st.files;
        (*buf).f_ffree = st.ffree;
        (*buf).f_namelen = st.namelen as isize;
    }
    0
}

/// `show_options`.
///
/// # Safety
///
/// Called by the VFS with a seq_file being written and the root of a
/// mounted superblock of `T`.
unsafe extern "C" fn show_options<T: VfsTables>(
    m: *mut bindings::seq_file,
    root: *mut bindings::dentry,
) -> c_int {
    // SAFETY: As the caller promises.
    let data = unsafe { data::<T>((*root).d_sb) };
    // SAFETY: `m` is valid for the duration of the call.
    T::show_options(data, unsafe { SeqFile::from_raw(m) });
    0
}

/// What `T` keeps for a regular file and for its superblock, which the
/// data path passes on; `EIO` if the file has no data, which cannot
/// happen: `T` gives data to every file it makes.
///
/// # Safety
///
/// `inode` is a published inode of a mounted superblock of `T`, not
/// evicted during `'a` (as for [`INode::from_raw`]).
pub(crate) unsafe fn sb_inode<'a, T: FileSystem>(
    inode: *mut bindings::inode,
) -> Result<(&'a T::Data, &'a T::InodeData)> {
    // SAFETY: As the caller promises.
    let inode = unsafe { INode::<T>::from_raw(inode) };
    let Some(data) = inode.data() else {
        pr_err!("inode {}: a regular file without data\n", inode.ino());
        return Err(EIO);
    };
    Ok((inode.super_block().data(), data))
}

fn errno(r: Result) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

#[kernel::macros::kunit_tests(emfs_vfs)]
mod tests {
    use super::*;
    use crate::glue::kunit::kunit_ensure;

    /// A filesystem type with only what every type must have: no mount
    /// parameters, no `statfs`, `show_options` or `reconfigure`, and no
    /// regular files; its blocks are smaller than a page.
    struct Bare;

    const BARE_MAGIC: u32 = 0x6261_7265;

    #[vtable]
    impl FileSystem for Bare {
        const NAME: &'static CStr = c"emfs_bare";
        const INODE_CACHE: &'static CStr = c"emfs_bare_inode_cache";
        const MAGIC: u32 = BARE_MAGIC;
        const BLOCKSIZE_BITS: u8 = 10;
        type Options = ();
        type Data = ();
        type InodeData = ();

        fn fill_super(_opts: &()) -> Result<()> {
            Ok(())
        }

        fn new_inode(_data: &(), _ino: u64, _regular: bool) -> Result<()> {
            Ok(())
        }
    }

    filesystem!(Bare, no_regular_files);

    /// The tables of a type leave out what it does not implement, or use
    /// libfs's; emfs's have its own.
    #[test]
    fn optional_operations_follow_the_vtable() -> Result {
        let (ctx, sup, dir) = (
            &ContextOps::<Bare>::OPS,
            &SuperOps::<Bare>::OPS,
            &DirOps::<Bare>::OPS,
        );
        kunit_ensure!(ctx.parse_param.is_none() && ctx.reconfigure.is_none());
        kunit_ensure!(sup.show_options.is_none() && sup.statfs.is_some());
        kunit_ensure!(dir.create.is_none() && dir.mkdir.is_some());
        kunit_ensure!(<Bare as VfsTables>::REGULAR.is_none());
        type E = crate::fs::Emfs;
        let (ctx, sup, dir) = (
            &ContextOps::<E>::OPS,
            &SuperOps::<E>::OPS,
            &DirOps::<E>::OPS,
        );
        kunit_ensure!(ctx.parse_param.is_some() && ctx.reconfigure.is_some());
        kunit_ensure!(sup.show_options.is_some() && dir.create.is_some());
        kunit_ensure!(<E as VfsTables>::REGULAR
            .is_some_and(|r| r.iops.fiemap.is_some() && r.aops.writepages.is_some()));
        Ok(())
    }

    /// A type without the optional operations registers, mounts with the
    /// block size it names and reports what libfs's `simple_statfs()`
    /// does; its registration, a second type of the module, leaves the
    /// first alone.
    #[test]
    fn a_type_without_optional_operations_mounts() -> Result {
        let reg = Registration::<Bare>::new()?;
        let st = kern_mount::<Bare>().and_then(|mnt| Ok((mnt.block_size(), mnt.statfs()?)));
        drop(reg);
        let (bsize, st) = st?;
        kunit_ensure!(bsize == 1024 && bsize == block_size::<Bare>());
        kunit_ensure!(st.f_type == BARE_MAGIC as isize);
        kunit_ensure!(st.f_bsize == kernel::page::PAGE_SIZE as isize);
        kunit_ensure!(st.f_blocks == 0 && st.f_files == 0);
        let emfs = kern_mount::<crate::fs::Emfs>()?;
        let st = emfs.statfs();
        drop(emfs);
        kunit_ensure!(st?.f_blocks > 0);
        Ok(())
    }
}
