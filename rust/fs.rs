// SPDX-License-Identifier: GPL-2.0

//! The emfs filesystem: `mount -t emfs -o size=64M none /mnt`.
//!
//! Each mount is an owner of extent maps ([`EmOwnerRegistration`]): it
//! registers its own shrinker and shows its counters in
//! `/proc/fs/emfs/<id>/stats`.
//!
//! Mount options:
//!
//! - `size=<bytes>[k|m|g|t]`: the size of the simulated disk, from 1 MiB to
//!   64 GiB, a multiple of the block size; 64 MiB by default.
//!
//! Anything else fails the mount with `EINVAL` and a line in the kernel log
//! naming the option.
//!
//! File data lives on the mount's simulated [`Disk`]; each regular file's
//! [`FileMap`] maps its offsets to disk blocks through the extent map cache.
//! The page cache is iomap's: [`IomapOperations::begin`] answers from the
//! extent map cache. Page cache is written back copy on write, with
//! ordered extents completed on a worker; space is reserved when page
//! cache is dirtied (delayed allocation, [`Delalloc`]), so a full disk
//! refuses writes with `ENOSPC` rather than failing writeback.

pub(crate) mod delalloc;
pub(crate) mod disk;
pub(crate) mod file;
pub(crate) mod records;

use self::{
    delalloc::Delalloc,
    disk::{
        Block,
        Disk,
        BLOCK_SIZE, //
    },
    file::{
        until_memory,
        FileMap,
        OrderedExtent, //
    },
};
use crate::{
    extent_map::{
        EmFlags,
        EXTENT_MAP_LAST_BYTE, //
    },
    glue::iomap::{
        Iomap,
        IomapBegin,
        IomapFlags,
        IomapOperations,
        IomapType,
        WritebackFolios, //
    },
    glue::vfs::{
        filesystem,
        FileOperations,
        FileSystem,
        INode,
        InodeOperations,
        Param,
        StatFs,
        SuperBlock, //
    },
    shrinker::{
        EmOwner,
        EmOwnerRegistration, //
    },
};
use kernel::{
    prelude::*,
    seq_file::{
        seq_print,
        SeqFile, //
    },
    str::CStr,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
    },
};

/// Mounted emfs superblocks alive.
static LIVE_MOUNTS: Atomic<i64> = Atomic::new(0);
/// Regular files alive (their [`FileMap`]s).
static LIVE_FILES: Atomic<i64> = Atomic::new(0);

/// Mounts alive in the module.
pub(crate) fn live_mounts() -> i64 {
    LIVE_MOUNTS.load(Relaxed)
}

/// Regular file inodes alive in the module.
pub(crate) fn live_files() -> i64 {
    LIVE_FILES.load(Relaxed)
}

/// `s_magic`: "emfs".
pub(crate) const EMFS_MAGIC: u32 = 0x656d_6673;
const BLOCKSIZE_BITS: u8 = BLOCK_SIZE.trailing_zeros() as u8;
const BLOCKSIZE: u64 = BLOCK_SIZE as u64;
/// The smallest disk.
pub(crate) const MIN_SIZE: u64 = 1 << 20;
/// The largest disk.
pub(crate) const MAX_SIZE: u64 = 64 << 30;
const DEFAULT_SIZE: u64 = 64 << 20;
const NAME_LEN: u64 = 255;
/// Mount parameter `size=`.
const OPT_SIZE: u8 = 0;

/// The emfs filesystem type.
pub(crate) struct Emfs;

/// Mount options being gathered.
#[derive(Default)]
pub(crate) struct MountOptions {
    size: Option<u64>,
}

/// A mounted emfs.
pub(crate) struct EmfsSb {
    /// The simulated disk; its size is the mount's `size=`.
    disk: Arc<Disk>,
    /// The generation of the next write back (btrfs's transaction id).
    generation: Atomic<u64>,
    /// The mount's extent maps, shrinker and statistics; unregistered when
    /// the superblock goes.
    owner: EmOwnerRegistration,
    /// The root directory's place among the disk's inodes.
    _root: InodeSlot,
}

/// An inode's place among the disk's inodes ([`Disk::take_inode`]), given
/// back when the inode goes.
struct InodeSlot {
    disk: Arc<Disk>,
}

impl InodeSlot {
    /// Takes a place on `disk`: `ENOSPC` if there is none.
    fn new(disk: &Arc<Disk>) -> Result<Self> {
        disk.take_inode()?;
        Ok(Self { disk: disk.clone() })
    }
}

impl Drop for InodeSlot {
    fn drop(&mut self) {
        self.disk.put_inode();
    }
}

/// A regular file: its mapping, its delayed allocations, and where its
/// extent map tree is registered.
struct RegularFile {
    owner: Arc<EmOwner>,
    disk: Arc<Disk>,
    map: Pin<KBox<FileMap>>,
    delalloc: Pin<KBox<Delalloc>>,
}

/// The data of an emfs inode. A regular file's extent map tree is
/// registered with the mount's owner, where the shrinker finds it, until
/// the inode is evicted; its blocks are freed then.
pub(crate) struct EmfsInode {
    file: Option<RegularFile>,
    _slot: InodeSlot,
}

impl EmfsInode {
    fn file(&self) -> Result<&RegularFile> {
        self.file.as_ref().ok_or(EINVAL)
    }
}

impl RegularFile {
    /// What a mapping relies on: the records, and the reservations of
    /// the delayed allocations (iomap's `validity_cookie`).
    fn cookie(&self) -> u64 {
        (self.map.seq() << 32) | (self.delalloc.seq() & 0xffff_ffff)
    }
}

impl Drop for EmfsSb {
    fn drop(&mut self) {
        LIVE_MOUNTS.add(-1, Relaxed);
    }
}

impl Drop for EmfsInode {
    /// Eviction, which the inode shrinker runs from reclaim: it takes the
    /// file's records and `Disk::free`, which is why nothing allocated
    /// under those may enter filesystem reclaim (rust/fs/file.rs).
    fn drop(&mut self) {
        if let Some(f) = self.file.take() {
            LIVE_FILES.add(-1, Relaxed);
            // The page cache is gone: nothing is in flight, and what was
            // dirty (an unlinked file's) was dropped.
            f.delalloc.release_all(&f.disk);
            if let Err(e) = until_memory(|| f.map.punch(&f.disk, 0, u64::MAX)) {
                pr_err!("ino {}: blocks not freed: {:?}\n", f.map.cache().ino(), e);
            }
            let _ = f.owner.remove_inode(f.map.cache().ino());
        }
    }
}

/// Parses a size: a decimal number with an optional k, m, g or t suffix
/// (powers of 1024, either case).
pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 10),
        b'm' | b'M' => (&text[..text.len() - 1], 20),
        b'g' | b'G' => (&text[..text.len() - 1], 30),
        b't' | b'T' => (&text[..text.len() - 1], 40),
        _ => (text, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

#[vtable]
impl FileSystem for Emfs {
    const NAME: &'static CStr = c"emfs";
    const INODE_CACHE: &'static CStr = c"emfs_inode_cache";
    const MAGIC: u32 = EMFS_MAGIC;
    const BLOCKSIZE_BITS: u8 = BLOCKSIZE_BITS;
    type Options = MountOptions;
    type Data = EmfsSb;
    type InodeData = EmfsInode;

    const PARAMS: &'static [Param] = &[Param::string(c"size", OPT_SIZE), Param::END];

    fn parse_param(opts: &mut MountOptions, opt: u8, value: &CStr) -> Result {
        match opt {
            OPT_SIZE => {
                let value = value.to_str().map_err(|_| {
                    pr_err!("bad value for mount option 'size'\n");
                    EINVAL
                })?;
                if opts.size.is_some() {
                    pr_err!("mount option 'size' given more than once\n");
                    return Err(EINVAL);
                }
                let Some(size) = parse_size(value) else {
                    pr_err!("bad value '{}' for mount option 'size'\n", value);
                    return Err(EINVAL);
                };
                if !(MIN_SIZE..=MAX_SIZE).contains(&size) {
                    pr_err!(
                        "size {} is out of range: {} to {} bytes\n",
                        size,
                        MIN_SIZE,
                        MAX_SIZE
                    );
                    return Err(EINVAL);
                }
                if size % BLOCKSIZE != 0 {
                    pr_err!("size {} is not a multiple of {} bytes\n", size, BLOCKSIZE);
                    return Err(EINVAL);
                }
                opts.size = Some(size);
                Ok(())
            }
            _ => Err(EINVAL),
        }
    }

    fn fill_super(opts: &MountOptions) -> Result<EmfsSb> {
        let size = opts.size.unwrap_or(DEFAULT_SIZE);
        let disk = Arc::pin_init(Disk::new(size / BLOCKSIZE), GFP_KERNEL)?;
        disk.annotate_reclaim();
        let owner = EmOwnerRegistration::new(BLOCKSIZE as u32, true)?;
        pr_info!("mounted: owner {}, {} bytes\n", owner.owner().id(), size);
        LIVE_MOUNTS.add(1, Relaxed);
        Ok(EmfsSb {
            _root: InodeSlot::new(&disk)?,
            disk,
            generation: Atomic::new(1),
            owner,
        })
    }

    fn new_inode(sb: &EmfsSb, ino: u64, regular: bool) -> Result<EmfsInode> {
        let slot = InodeSlot::new(&sb.disk)?;
        if !regular {
            return Ok(EmfsInode {
                file: None,
                _slot: slot,
            });
        }
        let owner = sb.owner.owner().clone();
        let em = owner.add_inode(ino)?;
        let map = KBox::pin_init(FileMap::new(em), GFP_KERNEL).inspect_err(|_| {
            let _ = owner.remove_inode(ino);
        })?;
        map.annotate_reclaim();
        let delalloc = KBox::pin_init(Delalloc::new(), GFP_KERNEL).inspect_err(|_| {
            let _ = owner.remove_inode(ino);
        })?;
        LIVE_FILES.add(1, Relaxed);
        Ok(EmfsInode {
            file: Some(RegularFile {
                owner,
                disk: sb.disk.clone(),
                map,
                delalloc,
            }),
            _slot: slot,
        })
    }

    fn statfs(sb: &EmfsSb) -> StatFs {
        let blocks = sb.disk.nr_blocks();
        let free = sb.disk.nr_available();
        StatFs {
            blocks,
            bfree: free,
            bavail: free,
            files: blocks,
            ffree: blocks.saturating_sub(sb.disk.nr_inodes()),
            namelen: NAME_LEN,
        }
    }

    fn charge_xattr(sb: &EmfsSb, bytes: usize) -> Result {
        sb.disk.charge_xattr(bytes as u64)
    }

    fn uncharge_xattr(sb: &EmfsSb, bytes: usize) {
        sb.disk.uncharge_xattr(bytes as u64)
    }

    fn show_options(sb: &EmfsSb, m: &SeqFile) {
        let size = sb.disk.nr_blocks() * BLOCKSIZE;
        if size % (1 << 20) == 0 {
            seq_print!(m, ",size={}M", size >> 20);
        } else {
            seq_print!(m, ",size={}k", size >> 10);
        }
    }

    fn reconfigure(sb: &EmfsSb, opts: &MountOptions) -> Result {
        let Some(size) = opts.size else {
            return Ok(());
        };
        let now = sb.disk.nr_blocks() * BLOCKSIZE;
        if size < now {
            pr_err!(
                "size={}: a mounted emfs cannot shrink (it has {} bytes)\n",
                size,
                now
            );
            return Err(EINVAL);
        }
        sb.disk.grow(size / BLOCKSIZE)?;
        if size > now {
            pr_info!("grown from {} to {} bytes\n", now, size);
        }
        Ok(())
    }
}

/// The page cache of regular files, on iomap: mappings from the extent
/// map cache, space reserved when page cache is dirtied, written back copy
/// on write (rust/fs/file.rs, rust/fs/delalloc.rs).
#[vtable]
impl IomapOperations for Emfs {
    const ENDIO_QUEUE: &'static CStr = c"emfs-endio";

    fn begin(
        sb: &EmfsSb,
        inode: &EmfsInode,
        pos: u64,
        len: u64,
        flags: IomapFlags,
        size: u64,
    ) -> Result<IomapBegin> {
        let file = inode.file()?;
        // Before the lookups: a change after them raises it.
        let cookie = file.cookie();
        let first = pos / BLOCKSIZE;
        if flags.is_fault() {
            // A write fault dirties the whole folio, which is uptodate:
            // every block of it reserved, or none.
            let end = pos.saturating_add(len).div_ceil(BLOCKSIZE);
            file.delalloc.reserve_all(&sb.disk, first, end)?;
            return Ok(IomapBegin {
                map: Iomap {
                    offset: first * BLOCKSIZE,
                    length: (end - first) * BLOCKSIZE,
                    type_: IomapType::Delalloc,
                },
                src: None,
                new: false,
                cookie,
            });
        }
        let src = on_disk(file, pos, size)?;
        let src_end = src.end().div_ceil(BLOCKSIZE);
        if flags.is_read() {
            return Ok(if flags.is_report() {
                report(file, src, pos)
            } else {
                src
            }
            .into());
        }
        // Writing or zeroing, in the blocks of the source mapping.
        let end = pos.saturating_add(len).div_ceil(BLOCKSIZE).min(src_end);
        if flags.is_zero() && !matches!(src.type_, IomapType::Mapped { .. }) {
            // Reads as zeroes already, unless dirty: iomap skips it.
            let (run_end, reserved) = file.delalloc.run_at(first, end);
            if !reserved {
                return Ok(src.until(run_end.saturating_mul(BLOCKSIZE)).into());
            }
        }
        // Copy on write: every block written needs a new one.
        let (run_end, new) = file.delalloc.reserve(&sb.disk, first, end)?;
        Ok(IomapBegin {
            map: Iomap {
                offset: first * BLOCKSIZE,
                length: (run_end - first) * BLOCKSIZE,
                type_: IomapType::Delalloc,
            },
            src: (src.type_ != IomapType::Hole).then_some(src),
            new,
            cookie,
        })
    }

    fn read_range(sb: &EmfsSb, _inode: &EmfsInode, addr: u64, dst: &mut [u8]) -> Result {
        sb.disk.read_at(addr, dst)
    }

    fn valid(_sb: &EmfsSb, inode: &EmfsInode, cookie: u64) -> bool {
        inode.file().is_ok_and(|f| f.cookie() == cookie)
    }

    fn punch_delalloc(sb: &EmfsSb, inode: &EmfsInode, start: u64, end: u64) {
        if let Ok(f) = inode.file() {
            // A range starting inside a block starts at EOF, after a
            // dirty folio: that block is dirty.
            let (first, last) = (start.div_ceil(BLOCKSIZE), end.div_ceil(BLOCKSIZE));
            let _ = until_memory(|| f.delalloc.release(&sb.disk, first, last));
        }
    }

    fn writeback_range(sb: &EmfsSb, inode: &EmfsInode, pos: u64, len: u64) -> Result {
        let file = inode.file()?;
        let (first, end) = (pos / BLOCKSIZE, (pos + len).div_ceil(BLOCKSIZE));
        let took = until_memory(|| file.delalloc.take(first, end))?;
        let missing = end - first - took;
        if missing > 0 {
            // Dirtied without a reservation: a bug, but the data can still
            // go to disk if there is room.
            pr_err!(
                "ino {}: writing back {} blocks at {} that hold no reservation\n",
                file.map.cache().ino(),
                missing,
                pos
            );
            if let Err(e) = sb.disk.reserve(missing) {
                // The range is not written back: what it took goes back.
                let _ = until_memory(|| file.delalloc.landed(first, end));
                let _ = sb.disk.unreserve(took);
                return Err(e);
            }
        }
        Ok(())
    }

    type Writeback = KVec<OrderedExtent>;

    fn write_back(
        sb: &EmfsSb,
        inode: &EmfsInode,
        pos: u64,
        folios: &WritebackFolios<'_>,
    ) -> KVec<OrderedExtent> {
        let n = folios.len() / BLOCK_SIZE;
        let written = inode.file().and_then(|file| {
            let generation = sb.generation.fetch_add(1, Relaxed);
            let written = until_memory(|| {
                let mut data = KVec::with_capacity(n, GFP_KERNEL)?;
                for i in 0..n {
                    data.push(folios.copy_block::<BLOCK_SIZE>(i)?, GFP_KERNEL)?;
                }
                file.map.write_back(&sb.disk, pos, data, generation)
            });
            // In the cache as pinned maps now, or given up on.
            let (first, end) = (pos / BLOCKSIZE, pos / BLOCKSIZE + n as u64);
            let _ = until_memory(|| file.delalloc.landed(first, end));
            written
        });
        written.unwrap_or_else(|e| {
            // Not for want of memory or space: a bug. The reservation goes
            // back; the data is lost, and the log says where.
            pr_err!(
                "[{}, {}) not written back: {:?}\n",
                pos,
                pos + (n as u64) * BLOCKSIZE,
                e
            );
            let _ = sb.disk.unreserve(n as u64);
            KVec::new()
        })
    }

    fn finish_write_back(sb: &EmfsSb, inode: &EmfsInode, wb: KVec<OrderedExtent>) {
        if let Ok(file) = inode.file() {
            file.map.finish_writes(&sb.disk, &wb);
        }
    }
}

/// What the disk holds at `pos` of `file`, of `size` bytes: the extent map
/// the cache has or builds (`btrfs_get_extent()`), as a mapping.
fn on_disk(file: &RegularFile, pos: u64, size: u64) -> Result<Iomap> {
    // Past the last block nothing is stored: one hole to the end of the
    // file space (FIEMAP asks up to there), not a map per block.
    if pos >= size.next_multiple_of(BLOCKSIZE) {
        return Ok(Iomap {
            offset: pos,
            length: u64::MAX - pos,
            type_: IomapType::Hole,
        });
    }
    let info = file.map.map_for_read(pos, size)?;
    Ok(Iomap {
        offset: info.start,
        length: info.len,
        type_: if info.disk_bytenr >= EXTENT_MAP_LAST_BYTE {
            IomapType::Hole
        } else if info.flags.contains(EmFlags::PREALLOC) {
            IomapType::Unwritten {
                addr: info.block_start(),
            }
        } else {
            IomapType::Mapped {
                addr: info.block_start(),
            }
        },
    })
}

/// What FIEMAP and `SEEK_DATA` see at `pos`: the disk's mapping `src`, but
/// holes and preallocated extents with delayed allocations are delalloc
/// there. The mapping starts at the extent's start if none of it before
/// `pos` is.
fn report(file: &RegularFile, src: Iomap, pos: u64) -> Iomap {
    if matches!(src.type_, IomapType::Mapped { .. }) {
        return src;
    }
    let first = pos / BLOCKSIZE;
    let src_start = src.offset / BLOCKSIZE;
    let src = if src_start < first && file.delalloc.run_at(src_start, first) != (first, false) {
        src.from(pos)
    } else {
        src
    };
    let (run_end, reserved) = file.delalloc.run_at(first, src.end().div_ceil(BLOCKSIZE));
    if reserved {
        Iomap {
            offset: pos,
            length: run_end * BLOCKSIZE - pos,
            type_: IomapType::Delalloc,
        }
    } else {
        src.until(run_end.saturating_mul(BLOCKSIZE))
    }
}

#[vtable]
impl FileOperations for Emfs {
    fn fsync(_sb: &EmfsSb, inode: &EmfsInode) -> Result {
        inode.file()?.map.fsync();
        Ok(())
    }

    fn punch_hole(sb: &EmfsSb, inode: &EmfsInode, start: u64, end: u64) -> Result {
        if end <= start {
            return Ok(());
        }
        let file = inode.file()?;
        // Its page cache is gone, dirty or not.
        until_memory(|| {
            file.delalloc
                .release(&sb.disk, start / BLOCKSIZE, end / BLOCKSIZE)
        })?;
        until_memory(|| file.map.punch(&sb.disk, start, end))
    }

    fn allocate(sb: &EmfsSb, inode: &EmfsInode, start: u64, end: u64) -> Result {
        if end <= start {
            return Ok(());
        }
        let generation = sb.generation.fetch_add(1, Relaxed);
        inode
            .file()?
            .map
            .preallocate(&sb.disk, start, end - start, generation)
    }

    fn direct_read(sb: &EmfsSb, inode: &EmfsInode, pos: u64, size: u64, dst: &mut [u8]) -> Result {
        let file = inode.file()?;
        let mut done = 0;
        while done < dst.len() {
            let at = pos + done as u64;
            // A write back of a page written through a mapping may move
            // the data and free the blocks, for another file to reuse,
            // between the lookup and the copy: then the copy is stale, and
            // is done again. Records change before blocks are freed.
            let n = loop {
                let seq = file.map.seq();
                // The extent map cache first, as btrfs's direct I/O does.
                let map = on_disk(file, at, size)?;
                let n = ((map.end() - at) as usize).min(dst.len() - done);
                let out = &mut dst[done..done + n];
                match map.type_ {
                    IomapType::Mapped { addr } => sb.disk.read_at(addr + (at - map.offset), out)?,
                    _ => out.fill(0),
                }
                if file.map.seq() == seq {
                    break n;
                }
            };
            done += n;
        }
        Ok(())
    }

    fn direct_write(sb: &EmfsSb, inode: &EmfsInode, pos: u64, src: &[u8]) -> Result {
        let file = inode.file()?;
        let n = src.len() / BLOCK_SIZE;
        let mut data = KVec::with_capacity(n, GFP_KERNEL)?;
        for block in src.chunks_exact(BLOCK_SIZE) {
            let mut b = KBox::<Block>::init(pin_init::init_zeroed(), GFP_KERNEL)?;
            b.copy_from_slice(block);
            data.push(b, GFP_KERNEL)?;
        }
        // Copy on write, as a write back does: new blocks, pinned maps,
        // then the ordered extents completed, here and now.
        sb.disk.reserve(n as u64)?;
        let generation = sb.generation.fetch_add(1, Relaxed);
        let ordered = file
            .map
            .write_back(&sb.disk, pos, data, generation)
            .inspect_err(|_| {
                let _ = sb.disk.unreserve(n as u64);
            })?;
        file.map.finish_writes(&sb.disk, &ordered);
        Ok(())
    }
}

#[vtable]
impl InodeOperations for Emfs {
    fn allocated(_sb: &EmfsSb, inode: &EmfsInode) -> u64 {
        inode.file().map_or(0, |file| {
            let (delalloc, in_flight) = file.delalloc.blocks();
            file.map.allocated() + (delalloc + in_flight) * BLOCKSIZE
        })
    }

    fn truncate(sb: &EmfsSb, inode: &EmfsInode, size: u64) -> Result {
        let file = inode.file()?;
        let end = size.next_multiple_of(BLOCKSIZE);
        // The page cache past `size` is gone, dirty or not.
        until_memory(|| {
            file.delalloc
                .release(&sb.disk, end / BLOCKSIZE, u64::MAX / BLOCKSIZE)
        })?;
        until_memory(|| file.map.punch(&sb.disk, end, u64::MAX))
    }
}

filesystem!(Emfs);

/// The consistency check of every mounted emfs (`check` in debugfs): each
/// superblock is written back first; then every regular file's records,
/// and its unpinned maps against them, are checked ([`FileMap::check`]);
/// each extent map tree and the owner's counters are recounted once
/// ([`EmOwner::check`]), and the owner's trees counted against the files
/// found; the disk's free space and the blocks the files hold are checked
/// against each other ([`Disk::check`]), and the reserved blocks against
/// the files' delayed allocations ([`Delalloc`]), each of which must be
/// dirty page cache. Exact on a filesystem nobody writes to meanwhile.
#[derive(Default)]
pub(crate) struct Check {
    /// Mounts checked.
    pub(crate) mounts: u64,
    /// Regular files checked.
    pub(crate) files: u64,
    /// Their records.
    pub(crate) records: u64,
    /// Their cached maps.
    pub(crate) maps: u64,
    /// Pinned maps (ordered extents in flight).
    pub(crate) pinned: u64,
    /// Disk blocks the files hold.
    pub(crate) used: u64,
    /// Free disk blocks.
    pub(crate) free: u64,
    /// Free blocks reserved for dirty page cache.
    pub(crate) reserved: u64,
    /// Blocks of delayed allocation (each holds a reservation).
    pub(crate) delalloc: u64,
    /// Problems found, each logged.
    pub(crate) problems: u64,
    /// The current mount's: pieces of disk its files hold, blocks of
    /// delayed allocation, and files.
    pieces: KVec<(u64, u64)>,
    mount_delalloc: u64,
    mount_files: u64,
}

impl Check {
    /// Checks every mounted emfs.
    pub(crate) fn run() -> Self {
        let mut c = Check::default();
        crate::glue::vfs::walk::<Emfs, _>(&mut c, true);
        let (live, found) = (live_files(), c.files);
        if live != found as i64 {
            c.problem(format_args!("{} files alive, {} found", live, found));
        }
        c
    }

    fn problem(&mut self, what: core::fmt::Arguments<'_>) {
        pr_err!("check: {}\n", what);
        self.problems += 1;
    }
}

impl crate::glue::vfs::Walk<Emfs> for Check {
    fn superblock(&mut self, sb: &SuperBlock<Emfs>, done: bool) {
        let sb = sb.data();
        if !done {
            self.mounts += 1;
            self.pieces.clear();
            self.mount_delalloc = 0;
            self.mount_files = 0;
            return;
        }
        let id = sb.owner.owner().id();
        // Every tree once: its counts, and the owner's counters.
        let (trees, inodes) = sb.owner.owner().check();
        self.problems += trees.problems;
        self.maps += trees.cached;
        self.pinned += trees.pinned;
        let mount_files = self.mount_files;
        if inodes != mount_files {
            self.problem(format_args!(
                "owner {}: {} trees registered, {} files found",
                id, inodes, mount_files
            ));
        }
        let disk = sb.disk.check(&mut self.pieces);
        self.problems += disk.problems;
        self.used += disk.used;
        self.free += disk.free;
        self.reserved += disk.reserved;
        let delalloc = self.mount_delalloc;
        let xattrs = sb.disk.xattr_blocks();
        if disk.reserved != delalloc + xattrs {
            self.problem(format_args!(
                "owner {}: {} blocks reserved, {} of delayed allocation, {} of extended attributes",
                id, disk.reserved, delalloc, xattrs
            ));
        }
    }

    fn file(&mut self, sb: &SuperBlock<Emfs>, inode: &INode<Emfs>) {
        let sb = sb.data();
        let Some(f) = inode.data().and_then(|i| i.file.as_ref()) else {
            return;
        };
        self.files += 1;
        self.mount_files += 1;
        let (delalloc, in_flight) = f.delalloc.blocks();
        if in_flight != 0 {
            self.problem(format_args!(
                "ino {}: {} blocks taken by writeback that never landed",
                f.map.cache().ino(),
                in_flight
            ));
        }
        self.delalloc += delalloc;
        self.mount_delalloc += delalloc;
        // Each block of delayed allocation is dirty page cache.
        let mut ranges = KVec::new();
        let listed = ranges
            .reserve(f.delalloc.nr_ranges() + 1, GFP_KERNEL)
            .is_ok()
            && f.delalloc.ranges(&mut ranges);
        if !listed {
            self.problem(format_args!(
                "ino {}: delayed allocations not listed",
                f.map.cache().ino()
            ));
        }
        for &(start, end) in ranges.iter() {
            let clean = (start..end)
                .filter(|b| !inode.range_needs_writeback(b * BLOCKSIZE, (b + 1) * BLOCKSIZE))
                .count();
            if clean > 0 {
                self.problem(format_args!(
                    "ino {}: {} blocks of [{}, {}) reserved with no dirty page cache",
                    f.map.cache().ino(),
                    clean,
                    start,
                    end
                ));
            }
        }
        match f.map.check(sb.disk.nr_blocks(), &mut self.pieces) {
            Ok(c) => {
                self.records += c.records;
                self.problems += c.problems;
            }
            Err(e) => self.problem(format_args!(
                "ino {}: not checked: {:?}",
                f.map.cache().ino(),
                e
            )),
        }
    }
}

impl core::fmt::Display for Check {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        writeln!(f, "mounts {}", self.mounts)?;
        writeln!(f, "files {}", self.files)?;
        writeln!(f, "records {}", self.records)?;
        writeln!(f, "maps {}", self.maps)?;
        writeln!(f, "pinned {}", self.pinned)?;
        writeln!(f, "blocks_used {}", self.used)?;
        writeln!(f, "blocks_free {}", self.free)?;
        writeln!(f, "blocks_reserved {}", self.reserved)?;
        writeln!(f, "blocks_delalloc {}", self.delalloc)?;
        writeln!(f, "problems {}", self.problems)
    }
}

#[kernel::macros::kunit_tests(emfs_fs)]
mod tests {
    use super::*;
    use crate::glue::{kunit::kunit_ensure, vfs::Registration};

    #[test]
    fn sizes_parse() -> Result {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("1T"), Some(1 << 40));
        assert_eq!(parse_size("8k"), Some(8192));
        for bad in [
            "",
            "M",
            "abc",
            "-1",
            "1.5M",
            "12x",
            "99999999999999999999",
            "20000000T",
        ] {
            assert_eq!(parse_size(bad), None);
        }
        Ok(())
    }

    #[test]
    fn options_are_checked() -> Result {
        let mut opts = MountOptions::default();
        let mut try_opt = |value: &CStr| Emfs::parse_param(&mut opts, OPT_SIZE, value).err();
        assert_eq!(try_opt(c"abc"), Some(EINVAL));
        // Too small, too large, not a multiple of the block size.
        assert_eq!(try_opt(c"4k"), Some(EINVAL));
        assert_eq!(try_opt(c"1T"), Some(EINVAL));
        assert_eq!(try_opt(c"1025k"), Some(EINVAL));
        assert_eq!(try_opt(c"2M"), None);
        // Given twice.
        assert_eq!(try_opt(c"4M"), Some(EINVAL));
        assert_eq!(opts.size, Some(2 << 20));
        // Not an option of the table.
        assert_eq!(
            Emfs::parse_param(&mut opts, OPT_SIZE + 1, c"1").err(),
            Some(EINVAL)
        );
        Ok(())
    }

    /// A second registration of the filesystem type is refused, and the
    /// first, the module's, still mounts afterwards: refusing must not
    /// touch what the registered type uses (its inode cache, its workers).
    #[test]
    fn a_second_registration_is_refused() -> Result {
        let second = Registration::<Emfs>::new();
        kunit_ensure!(matches!(second, Err(e) if e == EBUSY));
        let mnt = crate::glue::vfs::kern_mount::<Emfs>()?;
        let st = mnt.statfs()?;
        drop(mnt);
        kunit_ensure!(st.f_type == Emfs::MAGIC as isize && st.f_blocks > 0);
        Ok(())
    }
}
