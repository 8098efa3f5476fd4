// SPDX-License-Identifier: GPL-2.0

//! A synthetic owner of extent maps, to exercise the shrinker without a
//! filesystem: `/sys/kernel/debug/emfs/synthetic`.
//!
//! Writing `<inodes> <maps>` replaces the synthetic owner with a new one
//! holding `<maps>` cached maps in each of `<inodes>` inodes (none of them
//! mergeable), with its shrinker registered and its statistics in
//! `/proc/fs/emfs/<id>/stats`. Writing `0 0` removes it. Reading shows it.

use crate::{
    extent_map::{
        ExtentMapInfo,
        PreparedMap, //
    },
    glue::sched::cond_resched,
    shrinker::EmOwnerRegistration,
};
use core::fmt;
use kernel::{new_mutex, prelude::*, sync::Mutex, uaccess::UserSliceReader};

const BLOCK: u64 = 4096;
/// Limits on what may be asked for.
const MAX_INODES: u64 = 1 << 20;
const MAX_MAPS: u64 = 16 << 20;

struct Owner {
    reg: EmOwnerRegistration,
    inodes: u64,
    maps: u64,
}

/// The debugfs file's data.
#[pin_data]
pub(crate) struct Synthetic {
    #[pin]
    owner: Mutex<Option<Owner>>,
}

impl Synthetic {
    /// No synthetic owner yet.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            owner <- new_mutex!(None, "Synthetic::owner"),
        })
    }

    fn build(&self, inodes: u64, maps: u64) -> Result<Owner> {
        let reg = EmOwnerRegistration::new(BLOCK as u32, true)?;
        for ino in 1..=inodes {
            let inode = reg.owner().add_inode(ino)?;
            for i in 0..maps {
                let info =
                    ExtentMapInfo::regular(i * 2 * BLOCK, BLOCK, (ino << 32) + i * 2 * BLOCK);
                inode.tree().add(PreparedMap::new(info)?, false)?;
            }
            cond_resched();
        }
        Ok(Owner { reg, inodes, maps })
    }

    /// Handles a write to the file.
    pub(crate) fn store(&self, reader: &mut UserSliceReader) -> Result {
        let mut buf = [0u8; 64];
        let input = buf.get_mut(..reader.len()).ok_or(EINVAL)?;
        reader.read_slice(input)?;
        let (inodes, maps) = parse(input).inspect_err(|_| {
            pr_err!(
                "synthetic: expected \"<inodes> <maps per inode>\" with at most {} inodes and {} maps in all\n",
                MAX_INODES,
                MAX_MAPS
            );
        })?;
        let mut owner = self.owner.lock();
        // The old owner goes first, shrinker, worker and all.
        *owner = None;
        if inodes > 0 && maps > 0 {
            let built = self.build(inodes, maps)?;
            pr_info!(
                "synthetic: owner {} with {} inodes of {} maps\n",
                built.reg.owner().id(),
                inodes,
                maps
            );
            *owner = Some(built);
        }
        Ok(())
    }

    /// Handles a read of the file.
    pub(crate) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.owner.lock() {
            Some(o) => writeln!(
                f,
                "owner {} inodes {} maps {} cached {} evictable {}",
                o.reg.owner().id(),
                o.inodes,
                o.maps,
                o.reg.owner().counters().cached(),
                o.reg.owner().counters().evictable()
            ),
            None => writeln!(f, "none"),
        }
    }
}

/// Parses `<inodes> <maps>`.
fn parse(input: &[u8]) -> Result<(u64, u64)> {
    let text = core::str::from_utf8(input).map_err(|_| EINVAL)?;
    let mut words = text.split_ascii_whitespace();
    let mut next = || -> Result<u64> {
        words
            .next()
            .ok_or(EINVAL)?
            .parse::<u64>()
            .map_err(|_| EINVAL)
    };
    let (inodes, maps) = (next()?, next()?);
    if words.next().is_some() || inodes > MAX_INODES || inodes.saturating_mul(maps) > MAX_MAPS {
        return Err(EINVAL);
    }
    Ok((inodes, maps))
}
