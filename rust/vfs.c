// SPDX-License-Identifier: GPL-2.0
/*
 * vfs.c - the C half of emfs's VFS glue (rust/glue/vfs.rs).
 *
 * struct file_system_type, fs_context_operations and super_operations
 * are not in the kernel crate's bindings, so an out-of-tree module cannot
 * build them in Rust. They live here, as constant tables whose entries are
 * the Rust trampolines of rust/glue/vfs.rs (emfs_vfs_*), plus the few
 * macros and inline functions those need. No filesystem logic.
 */

#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/module.h>
#include <linux/seq_file.h>
#include <linux/statfs.h>
#include <linux/string.h>

#include "helpers.h"

/*
 * An emfs inode: the VFS inode, and the filesystem's own data for it
 * (built by emfs_vfs_new_inode_data(), dropped at eviction).
 */
struct emfs_inode {
	struct inode vfs_inode;
	void *data;
};

static struct kmem_cache *emfs_inode_cachep;

static inline struct emfs_inode *EMFS_I(struct inode *inode)
{
	return container_of(inode, struct emfs_inode, vfs_inode);
}

static void emfs_inode_init_once(void *p)
{
	struct emfs_inode *ei = p;

	inode_init_once(&ei->vfs_inode);
}

static struct inode *emfs_alloc_inode(struct super_block *sb)
{
	struct emfs_inode *ei = alloc_inode_sb(sb, emfs_inode_cachep, GFP_KERNEL);

	if (!ei)
		return NULL;
	ei->data = NULL;
	return &ei->vfs_inode;
}

static void emfs_free_inode(struct inode *inode)
{
	kmem_cache_free(emfs_inode_cachep, EMFS_I(inode));
}

static void emfs_evict_inode(struct inode *inode)
{
	truncate_inode_pages_final(&inode->i_data);
	clear_inode(inode);
	if (EMFS_I(inode)->data) {
		emfs_vfs_drop_inode_data(EMFS_I(inode)->data);
		EMFS_I(inode)->data = NULL;
	}
}

static const struct inode_operations emfs_dir_inode_ops;
static const struct inode_operations emfs_file_inode_ops;
static const struct file_operations emfs_file_ops;

static struct inode *emfs_get_inode(struct super_block *sb,
				    const struct inode *dir, umode_t mode)
{
	struct inode *inode = new_inode(sb);

	if (!inode)
		return NULL;
	inode->i_ino = get_next_ino();
	inode_init_owner(&nop_mnt_idmap, inode, dir, mode);
	simple_inode_init_ts(inode);
	if (S_ISDIR(mode)) {
		inode->i_op = &emfs_dir_inode_ops;
		inode->i_fop = &simple_dir_operations;
		/* Directories start with i_nlink == 2, for ".". */
		inc_nlink(inode);
	} else {
		inode->i_op = &emfs_file_inode_ops;
		inode->i_fop = &emfs_file_ops;
	}
	return inode;
}

static int emfs_mknod(struct inode *dir, struct dentry *dentry, umode_t mode)
{
	struct inode *inode = emfs_get_inode(dir->i_sb, dir, mode);
	int ret;

	if (!inode)
		return -ENOMEM;
	ret = emfs_vfs_new_inode_data(dir->i_sb, inode->i_ino, S_ISREG(mode),
				      &EMFS_I(inode)->data);
	if (ret) {
		iput(inode);
		return ret;
	}
	d_make_persistent(dentry, inode);
	inode_set_mtime_to_ts(dir, inode_set_ctime_current(dir));
	return 0;
}

static int emfs_create(struct mnt_idmap *idmap, struct inode *dir,
		       struct dentry *dentry, umode_t mode)
{
	return emfs_mknod(dir, dentry, (mode & ~S_IFMT) | S_IFREG);
}

static struct dentry *emfs_mkdir(struct mnt_idmap *idmap, struct inode *dir,
				 struct dentry *dentry, umode_t mode)
{
	int ret = emfs_mknod(dir, dentry, (mode & ~S_IFMT) | S_IFDIR);

	if (!ret)
		inc_nlink(dir);
	return ERR_PTR(ret);
}

static const struct inode_operations emfs_dir_inode_ops = {
	.create		= emfs_create,
	.lookup		= simple_lookup,
	.link		= simple_link,
	.unlink		= simple_unlink,
	.mkdir		= emfs_mkdir,
	.rmdir		= simple_rmdir,
	.rename		= simple_rename,
	.getattr	= simple_getattr,
	.setattr	= simple_setattr,
};

static const struct inode_operations emfs_file_inode_ops = {
	.getattr	= simple_getattr,
	.setattr	= simple_setattr,
};

/* The data path through the extent map cache comes with the address
 * space operations; until then files have no read or write method.
 */
static const struct file_operations emfs_file_ops = {
	.llseek		= generic_file_llseek,
};

void emfs_init_root_inode(struct inode *inode)
{
	inode->i_op = &emfs_dir_inode_ops;
	inode->i_fop = &simple_dir_operations;
}

static int emfs_parse_param(struct fs_context *fc, struct fs_parameter *param)
{
	const char *value = NULL;

	/* The device name: "none" or anything, it means nothing to emfs. */
	if (!strcmp(param->key, "source"))
		return -ENOPARAM;
	if (param->type == fs_value_is_string)
		value = param->string;
	else if (param->type != fs_value_is_flag)
		return invalfc(fc, "%s: value must be a string", param->key);
	return emfs_vfs_parse_param(fc->fs_private, param->key, value);
}

static int emfs_fill_super(struct super_block *sb, struct fs_context *fc)
{
	return emfs_vfs_fill_super(sb, fc->fs_private);
}

static int emfs_get_tree(struct fs_context *fc)
{
	return get_tree_nodev(fc, emfs_fill_super);
}

static void emfs_free_fc(struct fs_context *fc)
{
	emfs_vfs_free_options(fc->fs_private);
	fc->fs_private = NULL;
}

static const struct fs_context_operations emfs_context_ops = {
	.free		= emfs_free_fc,
	.parse_param	= emfs_parse_param,
	.get_tree	= emfs_get_tree,
};

static int emfs_init_fs_context(struct fs_context *fc)
{
	fc->fs_private = emfs_vfs_new_options();
	if (!fc->fs_private)
		return -ENOMEM;
	fc->ops = &emfs_context_ops;
	return 0;
}

static void emfs_kill_sb(struct super_block *sb)
{
	kill_anon_super(sb);
	/* The filesystem's data goes after the VFS is done with the sb. */
	emfs_vfs_put_super_data(sb);
}

static int emfs_statfs(struct dentry *dentry, struct kstatfs *buf)
{
	struct emfs_statfs st = {};
	int ret = emfs_vfs_statfs(dentry->d_sb, &st);

	if (ret)
		return ret;
	buf->f_type = dentry->d_sb->s_magic;
	buf->f_bsize = dentry->d_sb->s_blocksize;
	buf->f_frsize = dentry->d_sb->s_blocksize;
	buf->f_blocks = st.blocks;
	buf->f_bfree = st.bfree;
	buf->f_bavail = st.bavail;
	buf->f_files = st.files;
	buf->f_ffree = st.ffree;
	buf->f_namelen = st.namelen;
	return 0;
}

static int emfs_show_options(struct seq_file *m, struct dentry *root)
{
	return emfs_vfs_show_options(m, root->d_sb);
}

static const struct super_operations emfs_super_ops = {
	.alloc_inode	= emfs_alloc_inode,
	.free_inode	= emfs_free_inode,
	.evict_inode	= emfs_evict_inode,
	.statfs		= emfs_statfs,
	.show_options	= emfs_show_options,
};

static struct file_system_type emfs_fs_type = {
	.owner			= THIS_MODULE,
	.name			= "emfs",
	.init_fs_context	= emfs_init_fs_context,
	.kill_sb		= emfs_kill_sb,
};

int emfs_register_fs(void)
{
	int ret;

	emfs_inode_cachep = kmem_cache_create("emfs_inode",
					      sizeof(struct emfs_inode), 0,
					      SLAB_RECLAIM_ACCOUNT | SLAB_ACCOUNT,
					      emfs_inode_init_once);
	if (!emfs_inode_cachep)
		return -ENOMEM;
	ret = register_filesystem(&emfs_fs_type);
	if (ret)
		kmem_cache_destroy(emfs_inode_cachep);
	return ret;
}

void emfs_unregister_fs(void)
{
	unregister_filesystem(&emfs_fs_type);
	/* Inodes are freed after an RCU grace period. */
	rcu_barrier();
	kmem_cache_destroy(emfs_inode_cachep);
}

void emfs_sb_set_ops(struct super_block *sb)
{
	sb->s_op = &emfs_super_ops;
}
