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
	return register_filesystem(&emfs_fs_type);
}

void emfs_unregister_fs(void)
{
	unregister_filesystem(&emfs_fs_type);
}

void emfs_sb_set_ops(struct super_block *sb)
{
	sb->s_op = &emfs_super_ops;
}
