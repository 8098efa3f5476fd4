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

// The data path builds on these; until then their KUnit suites exercise
// them.
#[allow(dead_code)]
pub(crate) mod disk;
#[allow(dead_code)]
pub(crate) mod file;
#[allow(dead_code)]
pub(crate) mod records;

use crate::{
    glue::vfs::{
        filesystem,
        FileSystem,
        StatFs, //
    },
    shrinker::{
        EmInode,
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
    sync::Arc,
};

/// `s_magic`: "emfs".
pub(crate) const EMFS_MAGIC: u32 = 0x656d_6673;
const BLOCKSIZE_BITS: u8 = 12;
const BLOCKSIZE: u64 = 1 << BLOCKSIZE_BITS;
/// The smallest disk.
pub(crate) const MIN_SIZE: u64 = 1 << 20;
/// The largest disk.
pub(crate) const MAX_SIZE: u64 = 64 << 30;
const DEFAULT_SIZE: u64 = 64 << 20;
const NAME_LEN: u64 = 255;

/// The emfs filesystem type.
pub(crate) struct Emfs;

/// Mount options being gathered.
#[derive(Default)]
pub(crate) struct MountOptions {
    size: Option<u64>,
}

/// A mounted emfs.
pub(crate) struct EmfsSb {
    size: u64,
    /// The mount's extent maps, shrinker and statistics; unregistered when
    /// the superblock goes.
    owner: EmOwnerRegistration,
}

/// The data of an emfs inode. A regular file's extent map tree is
/// registered with the mount's owner, where the shrinker finds it, until
/// the inode is evicted.
pub(crate) struct EmfsInode {
    em: Option<(Arc<EmOwner>, Arc<EmInode>)>,
}

impl Drop for EmfsInode {
    fn drop(&mut self) {
        if let Some((owner, inode)) = self.em.take() {
            let _ = owner.remove_inode(inode.ino());
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

impl FileSystem for Emfs {
    const MAGIC: u32 = EMFS_MAGIC;
    const BLOCKSIZE_BITS: u8 = BLOCKSIZE_BITS;
    type Options = MountOptions;
    type Data = EmfsSb;
    type InodeData = EmfsInode;

    fn parse_param(opts: &mut MountOptions, key: &CStr, value: Option<&CStr>) -> Result {
        let key = key.to_str().map_err(|_| EINVAL)?;
        match key {
            "size" => {
                let Some(value) = value.and_then(|v| v.to_str().ok()) else {
                    pr_err!("mount option 'size' needs a value, e.g. size=64M\n");
                    return Err(EINVAL);
                };
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
            _ => {
                pr_err!("unknown mount option '{}'\n", key);
                Err(EINVAL)
            }
        }
    }

    fn fill_super(opts: &MountOptions) -> Result<EmfsSb> {
        let size = opts.size.unwrap_or(DEFAULT_SIZE);
        let owner = EmOwnerRegistration::new(BLOCKSIZE as u32, true)?;
        pr_info!("mounted: owner {}, {} bytes\n", owner.owner().id(), size);
        Ok(EmfsSb { size, owner })
    }

    fn new_inode(sb: &EmfsSb, ino: u64, regular: bool) -> Result<EmfsInode> {
        if !regular {
            return Ok(EmfsInode { em: None });
        }
        let owner = sb.owner.owner().clone();
        let inode = owner.add_inode(ino)?;
        Ok(EmfsInode {
            em: Some((owner, inode)),
        })
    }

    fn statfs(sb: &EmfsSb) -> StatFs {
        let blocks = sb.size / BLOCKSIZE;
        StatFs {
            blocks,
            bfree: blocks,
            bavail: blocks,
            files: 0,
            ffree: 0,
            namelen: NAME_LEN,
        }
    }

    fn show_options(sb: &EmfsSb, m: &SeqFile) {
        if sb.size % (1 << 20) == 0 {
            seq_print!(m, ",size={}M", sb.size >> 20);
        } else {
            seq_print!(m, ",size={}k", sb.size >> 10);
        }
    }
}

filesystem!(Emfs);

#[kernel::macros::kunit_tests(emfs_fs)]
mod tests {
    use super::*;

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
        let mut try_opt =
            |key: &CStr, value: Option<&CStr>| Emfs::parse_param(&mut opts, key, value).err();
        assert_eq!(try_opt(c"bogus", None), Some(EINVAL));
        assert_eq!(try_opt(c"bogus", Some(c"1")), Some(EINVAL));
        assert_eq!(try_opt(c"size", None), Some(EINVAL));
        assert_eq!(try_opt(c"size", Some(c"abc")), Some(EINVAL));
        // Too small, too large, not a multiple of the block size.
        assert_eq!(try_opt(c"size", Some(c"4k")), Some(EINVAL));
        assert_eq!(try_opt(c"size", Some(c"1T")), Some(EINVAL));
        assert_eq!(try_opt(c"size", Some(c"1025k")), Some(EINVAL));
        assert_eq!(try_opt(c"size", Some(c"2M")), None);
        // Given twice.
        assert_eq!(try_opt(c"size", Some(c"4M")), Some(EINVAL));
        assert_eq!(opts.size, Some(2 << 20));
        Ok(())
    }
}
