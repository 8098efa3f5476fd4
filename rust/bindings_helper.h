/* SPDX-License-Identifier: GPL-2.0 */
/*
 * bindings_helper.h - what emfs's Rust code declares through bindgen
 * (see Kbuild and rust/glue/ffi.rs): the project's C helpers, and kernel
 * functions and types the kernel crate's bindings lack.
 */

#include <linux/fs.h>
#include <linux/falloc.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/iomap.h>
#include <linux/posix_acl.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/spinlock.h>
#include <linux/statfs.h>

#include "helpers.h"

/* Macro constants, as the kernel crate's bindings_helper.h does them. */
const loff_t EMFS_MAX_LFS_FILESIZE = MAX_LFS_FILESIZE;
const slab_flags_t EMFS_SLAB_RECLAIM_ACCOUNT = SLAB_RECLAIM_ACCOUNT;
const slab_flags_t EMFS_SLAB_ACCOUNT = SLAB_ACCOUNT;
const fmode_t EMFS_FMODE_CAN_ODIRECT = FMODE_CAN_ODIRECT;
const unsigned long EMFS_SB_POSIXACL = SB_POSIXACL;
const int EMFS_ACL_TYPE_ACCESS = ACL_TYPE_ACCESS;
const int EMFS_ACL_TYPE_DEFAULT = ACL_TYPE_DEFAULT;
