// SPDX-License-Identifier: GPL-2.0
/*
 * vfs.c - the page cache side of emfs's data path, until it moves onto
 * iomap.
 *
 * The file and address space operation tables of regular files live here
 * for now (rust/glue/vfs.rs gives them to the inodes it makes); what needs
 * the filesystem calls the Rust trampolines of rust/glue/vfs.rs
 * (emfs_vfs_*), with the inode. No filesystem logic.
 *
 * Regular files keep their data in the page cache. read_folio and
 * readahead are iomap's, in Rust (rust/glue/iomap.rs). What else needs the
 * filesystem's block mapping goes to Rust: filling a folio for a partial
 * write, writing dirty
 * folios back (a run of up to EMFS_WB_BATCH consecutive folios at a time,
 * completed on the emfs-endio workqueue), fsync, truncate and fallocate
 * (FIEMAP and SEEK_DATA/SEEK_HOLE are iomap's too). The page cache side
 * stays here.
 *
 * Space reservation: a dirty folio holds one block of the disk, reserved
 * when it is dirtied (write_begin, page_mkwrite) and marked by the folio's
 * private flag; writeback consumes the reservation, invalidation of a
 * dirty folio gives it back, and so does writeback skipping a folio past
 * EOF. Giving it back takes no lock (an atomic count): release_folio and
 * invalidate_folio run from reclaim, which a task may have entered by
 * allocating while it holds a filesystem lock (rust/fs/disk.rs).
 *
 * Lock order: i_rwsem, then invalidate_lock, then folio locks (ascending
 * index), then the filesystem's own locks (rust/fs/file.rs). The endio
 * worker takes only the filesystem's locks.
 */

#include <linux/fs.h>
#include <linux/falloc.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/pagemap.h>
#include <linux/sched/mm.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/statfs.h>
#include <linux/string.h>
#include <linux/uio.h>
#include <linux/workqueue.h>
#include <linux/writeback.h>

#include "helpers.h"

static struct workqueue_struct *emfs_endio_wq;

/* Folios per write back run: 256 KiB with 4 KiB pages. */
#define EMFS_WB_BATCH	64

/* Reserves a block for @folio, which is about to be dirtied. */
static int emfs_folio_reserve(struct inode *inode, struct folio *folio)
{
	int ret;

	if (folio_test_private(folio))
		return 0;
	ret = emfs_vfs_reserve(inode->i_sb, 1);
	if (!ret)
		folio_attach_private(folio, (void *)1UL);
	return ret;
}

/* Gives back @folio's reservation, if it holds one. */
static void emfs_folio_unreserve(struct inode *inode, struct folio *folio)
{
	if (folio_detach_private(folio))
		emfs_vfs_unreserve(inode->i_sb, 1);
}

/*
 * Fills the locked, not uptodate @folio from the disk, and zeroes what
 * lies past EOF (which the disk may hold stale data for).
 */
static int emfs_fill_folio(struct inode *inode, struct folio *folio)
{
	loff_t size = i_size_read(inode);
	loff_t pos = folio_pos(folio);
	void *kaddr;
	int ret = 0;

	if (pos < size) {
		kaddr = kmap_local_folio(folio, 0);
		ret = emfs_vfs_read_block(inode, pos, size, kaddr);
		kunmap_local(kaddr);
		if (ret)
			return ret;
		if (size - pos < folio_size(folio))
			folio_zero_segment(folio, size - pos, folio_size(folio));
	} else {
		folio_zero_segment(folio, 0, folio_size(folio));
	}
	folio_mark_uptodate(folio);
	return 0;
}

/*
 * The folio at @index, locked and reserved for dirtying; filled from the
 * disk if it is not uptodate and @fill says its old contents are needed.
 */
static struct folio *emfs_get_folio(struct inode *inode, pgoff_t index,
				    fgf_t fgp, bool fill)
{
	struct folio *folio;
	int ret;

	folio = __filemap_get_folio(inode->i_mapping, index, fgp,
				    mapping_gfp_mask(inode->i_mapping));
	if (IS_ERR(folio))
		return folio;
	ret = emfs_folio_reserve(inode, folio);
	if (!ret && fill && !folio_test_uptodate(folio))
		ret = emfs_fill_folio(inode, folio);
	if (ret) {
		if (!folio_test_dirty(folio))
			emfs_folio_unreserve(inode, folio);
		folio_unlock(folio);
		folio_put(folio);
		return ERR_PTR(ret);
	}
	return folio;
}

/*
 * Zeroes [@from, @to) of one block in the page cache and dirties it: the
 * partial blocks of a punched hole, and the tail of the block at an old
 * EOF before the file grows past it.
 */
static int emfs_zero_range(struct inode *inode, loff_t from, loff_t to)
{
	struct folio *folio;

	if (from >= to)
		return 0;
	folio = emfs_get_folio(inode, from >> PAGE_SHIFT,
			       FGP_LOCK | FGP_CREAT | FGP_STABLE, true);
	if (IS_ERR(folio))
		return PTR_ERR(folio);
	folio_zero_range(folio, offset_in_folio(folio, from), to - from);
	folio_mark_dirty(folio);
	folio_unlock(folio);
	folio_put(folio);
	return 0;
}

static int emfs_zero_eof_tail(struct inode *inode, loff_t size)
{
	if (!offset_in_page(size))
		return 0;
	return emfs_zero_range(inode, size, round_up(size, PAGE_SIZE));
}

static int emfs_write_begin(const struct kiocb *iocb,
			    struct address_space *mapping, loff_t pos,
			    unsigned int len, struct folio **foliop,
			    void **fsdata)
{
	/* A partial write needs what is around it. */
	struct folio *folio = emfs_get_folio(mapping->host, pos >> PAGE_SHIFT,
					     FGP_WRITEBEGIN,
					     len != PAGE_SIZE);

	if (IS_ERR(folio))
		return PTR_ERR(folio);
	*foliop = folio;
	return 0;
}

static int emfs_write_end(const struct kiocb *iocb,
			  struct address_space *mapping, loff_t pos,
			  unsigned int len, unsigned int copied,
			  struct folio *folio, void *fsdata)
{
	struct inode *inode = mapping->host;

	if (!folio_test_uptodate(folio)) {
		/* A whole-folio write that copied short: retried by the caller. */
		if (copied < len)
			copied = 0;
		else
			folio_mark_uptodate(folio);
	}
	if (copied) {
		/* i_rwsem is held: i_size cannot change under us. */
		if (pos + copied > inode->i_size)
			i_size_write(inode, pos + copied);
		folio_mark_dirty(folio);
	} else if (!folio_test_dirty(folio)) {
		emfs_folio_unreserve(inode, folio);
	}
	folio_unlock(folio);
	folio_put(folio);
	return copied;
}

/* A write back run in flight, completed by emfs_end_writeback(). */
struct emfs_ioend {
	struct work_struct work;
	struct inode *inode;
	void *wb;
	unsigned int nr;
	struct folio *folios[EMFS_WB_BATCH];
};

/* Consecutive dirty folios, locked, gathered for one write back. */
struct emfs_wb_run {
	struct inode *inode;
	loff_t pos;
	unsigned int nr;
	struct folio *folios[EMFS_WB_BATCH];
};

static void emfs_end_writeback(struct work_struct *work)
{
	struct emfs_ioend *end = container_of(work, struct emfs_ioend, work);
	unsigned int nofs = memalloc_nofs_save();
	unsigned int i;

	/* Records the extents and unpins the maps, then ends writeback. */
	emfs_vfs_finish_write_back(end->inode, end->wb);
	memalloc_nofs_restore(nofs);
	/* The inode may go once the last folio's writeback ends. */
	for (i = 0; i < end->nr; i++)
		folio_end_writeback(end->folios[i]);
	kfree(end);
}

static int emfs_submit_run(struct emfs_wb_run *run,
			   struct writeback_control *wbc)
{
	struct inode *inode = run->inode;
	struct emfs_ioend *end;
	unsigned int i, nofs;
	int ret = -ENOMEM;

	if (!run->nr)
		return 0;
	end = kmalloc_obj(*end, GFP_NOFS);
	if (end) {
		nofs = memalloc_nofs_save();
		ret = emfs_vfs_write_back(inode, run->pos, run->folios, run->nr,
					  &end->wb);
		memalloc_nofs_restore(nofs);
	}
	if (ret) {
		/* Nothing changed: the folios stay dirty and reserved. */
		for (i = 0; i < run->nr; i++) {
			folio_redirty_for_writepage(wbc, run->folios[i]);
			folio_unlock(run->folios[i]);
		}
		kfree(end);
		run->nr = 0;
		return ret;
	}
	end->inode = inode;
	end->nr = run->nr;
	for (i = 0; i < run->nr; i++) {
		struct folio *folio = run->folios[i];

		/* The write back used the reservation. */
		folio_detach_private(folio);
		folio_start_writeback(folio);
		folio_unlock(folio);
		end->folios[i] = folio;
	}
	run->nr = 0;
	INIT_WORK(&end->work, emfs_end_writeback);
	queue_work(emfs_endio_wq, &end->work);
	return 0;
}

static int emfs_writepages(struct address_space *mapping,
			   struct writeback_control *wbc)
{
	struct emfs_wb_run *run;
	struct folio *folio = NULL;
	int error = 0, ret;

	run = kmalloc_obj(*run, GFP_NOFS);
	if (!run)
		return -ENOMEM;
	run->inode = mapping->host;
	run->nr = 0;
	while ((folio = writeback_iter(mapping, wbc, folio, &error))) {
		loff_t size = i_size_read(mapping->host);
		loff_t pos = folio_pos(folio);

		error = 0;
		if (pos >= size) {
			/*
			 * Being truncated. writeback_iter() cleared the dirty
			 * bit: the folio is clean now, so its reservation goes
			 * back here, not when reclaim releases it.
			 */
			emfs_folio_unreserve(mapping->host, folio);
			folio_unlock(folio);
			continue;
		}
		/* Nothing past EOF reaches the disk (mmap may have put some). */
		if (size - pos < folio_size(folio))
			folio_zero_segment(folio, size - pos, folio_size(folio));
		/* Dirtied without a reservation: never, but be safe. */
		if (emfs_folio_reserve(mapping->host, folio)) {
			pr_err_ratelimited("emfs: ino %llu: no space to write back\n",
					   mapping->host->i_ino);
			folio_redirty_for_writepage(wbc, folio);
			folio_unlock(folio);
			error = -ENOSPC;
			continue;
		}
		if (run->nr && (run->nr == EMFS_WB_BATCH ||
				pos != run->pos + run->nr * PAGE_SIZE))
			error = emfs_submit_run(run, wbc);
		if (!run->nr)
			run->pos = pos;
		run->folios[run->nr++] = folio;
	}
	ret = emfs_submit_run(run, wbc);
	kfree(run);
	return error ?: ret;
}

/*
 * invalidate_folio and release_folio may run in reclaim, entered by a
 * task that holds any filesystem lock: they take none (giving back a
 * reservation is an atomic operation) and never sleep.
 */
static void emfs_invalidate_folio(struct folio *folio, size_t offset,
				  size_t len)
{
	if (offset == 0 && len == folio_size(folio))
		emfs_folio_unreserve(folio->mapping->host, folio);
}

static bool emfs_release_folio(struct folio *folio, gfp_t gfp)
{
	if (folio_test_dirty(folio))
		return false;
	emfs_folio_unreserve(folio->mapping->host, folio);
	return true;
}

const struct address_space_operations emfs_aops = {
	.read_folio		= emfs_vfs_read_folio,
	.readahead		= emfs_vfs_readahead,
	.writepages		= emfs_writepages,
	.dirty_folio		= filemap_dirty_folio,
	.write_begin		= emfs_write_begin,
	.write_end		= emfs_write_end,
	.invalidate_folio	= emfs_invalidate_folio,
	.release_folio		= emfs_release_folio,
};

static vm_fault_t emfs_page_mkwrite(struct vm_fault *vmf)
{
	struct inode *inode = file_inode(vmf->vma->vm_file);
	struct address_space *mapping = inode->i_mapping;
	struct folio *folio = page_folio(vmf->page);
	vm_fault_t ret = VM_FAULT_LOCKED;
	int err;

	sb_start_pagefault(inode->i_sb);
	file_update_time(vmf->vma->vm_file);
	filemap_invalidate_lock_shared(mapping);
	folio_lock(folio);
	if (folio->mapping != mapping ||
	    folio_pos(folio) >= i_size_read(inode)) {
		folio_unlock(folio);
		ret = VM_FAULT_NOPAGE;
		goto out;
	}
	err = emfs_folio_reserve(inode, folio);
	if (err) {
		folio_unlock(folio);
		ret = vmf_error(err);
		goto out;
	}
	folio_mark_dirty(folio);
	folio_wait_stable(folio);
out:
	filemap_invalidate_unlock_shared(mapping);
	sb_end_pagefault(inode->i_sb);
	return ret;
}

static const struct vm_operations_struct emfs_file_vm_ops = {
	.fault		= filemap_fault,
	.map_pages	= filemap_map_pages,
	.page_mkwrite	= emfs_page_mkwrite,
};

static int emfs_file_mmap_prepare(struct vm_area_desc *desc)
{
	file_accessed(desc->file);
	desc->vm_ops = &emfs_file_vm_ops;
	return 0;
}

static ssize_t emfs_file_write_iter(struct kiocb *iocb, struct iov_iter *from)
{
	struct inode *inode = file_inode(iocb->ki_filp);
	ssize_t ret;

	inode_lock(inode);
	ret = generic_write_checks(iocb, from);
	if (ret <= 0)
		goto out;
	ret = file_modified(iocb->ki_filp);
	if (ret)
		goto out;
	/* Bytes between the old EOF and the write must read as zeroes. */
	if (iocb->ki_pos > inode->i_size) {
		ret = emfs_zero_eof_tail(inode, inode->i_size);
		if (ret)
			goto out;
	}
	ret = generic_perform_write(iocb, from);
out:
	inode_unlock(inode);
	if (ret > 0)
		ret = generic_write_sync(iocb, ret);
	return ret;
}

static int emfs_fsync(struct file *file, loff_t start, loff_t end,
		      int datasync)
{
	struct inode *inode = file_inode(file);
	int ret;

	/* Waits for the ordered extents: they end with the writeback. */
	ret = file_write_and_wait_range(file, start, end);
	if (ret)
		return ret;
	return emfs_vfs_fsync(inode);
}

static int emfs_punch_hole(struct inode *inode, loff_t start, loff_t end)
{
	loff_t bstart = round_up(start, PAGE_SIZE);
	loff_t bend = round_down(end, PAGE_SIZE);
	int ret;

	ret = filemap_write_and_wait_range(inode->i_mapping, start, end - 1);
	if (ret)
		return ret;
	ret = emfs_zero_range(inode, start, min(end, bstart));
	if (!ret && bend >= bstart)
		ret = emfs_zero_range(inode, bend, end);
	if (ret || bend <= bstart)
		return ret;
	truncate_pagecache_range(inode, bstart, bend - 1);
	return emfs_vfs_punch_hole(inode, bstart, bend);
}

static long emfs_fallocate(struct file *file, int mode, loff_t offset,
			   loff_t len)
{
	struct inode *inode = file_inode(file);
	loff_t end = offset + len;
	loff_t size;
	int ret;

	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE))
		return -EOPNOTSUPP;
	inode_lock(inode);
	filemap_invalidate_lock(inode->i_mapping);
	size = i_size_read(inode);
	if (mode & FALLOC_FL_PUNCH_HOLE) {
		/* Nothing past EOF to punch. */
		ret = offset < size ? emfs_punch_hole(inode, offset,
						      min(end, size)) : 0;
	} else {
		ret = inode_newsize_ok(inode, end);
		if (!ret)
			ret = filemap_write_and_wait_range(inode->i_mapping,
							   offset, end - 1);
		if (!ret)
			ret = emfs_vfs_allocate(inode, round_down(offset, PAGE_SIZE),
						round_up(end, PAGE_SIZE));
		if (!ret && !(mode & FALLOC_FL_KEEP_SIZE) && end > size) {
			ret = emfs_zero_eof_tail(inode, size);
			if (!ret)
				i_size_write(inode, end);
		}
	}
	if (!ret)
		ret = file_modified(file);
	filemap_invalidate_unlock(inode->i_mapping);
	inode_unlock(inode);
	return ret;
}

int emfs_setsize(struct inode *inode, loff_t size)
{
	loff_t old = i_size_read(inode);
	int ret = 0;

	filemap_invalidate_lock(inode->i_mapping);
	if (size > old) {
		ret = emfs_zero_eof_tail(inode, old);
		if (!ret)
			truncate_setsize(inode, size);
	} else {
		/* Drops the page cache past @size, waiting for its writeback. */
		truncate_setsize(inode, size);
		ret = emfs_vfs_truncate(inode, size);
	}
	filemap_invalidate_unlock(inode->i_mapping);
	return ret;
}

const struct file_operations emfs_file_ops = {
	.llseek		= emfs_vfs_llseek,
	.read_iter	= generic_file_read_iter,
	.write_iter	= emfs_file_write_iter,
	.mmap_prepare	= emfs_file_mmap_prepare,
	.fsync		= emfs_fsync,
	.fallocate	= emfs_fallocate,
	.splice_read	= filemap_splice_read,
	.splice_write	= iter_file_splice_write,
};

void emfs_folio_copy_out(struct folio *folio, void *dst)
{
	memcpy_from_folio(dst, folio, 0, PAGE_SIZE);
}

static bool emfs_index_dirty(struct address_space *mapping, pgoff_t index)
{
	return xa_get_mark(&mapping->i_pages, index, PAGECACHE_TAG_DIRTY) ||
	       xa_get_mark(&mapping->i_pages, index, PAGECACHE_TAG_WRITEBACK);
}

bool emfs_mapping_dirty_range(struct address_space *mapping, u64 from, u64 to,
			      u64 *start, u64 *end)
{
	pgoff_t last, first, wb, next;

	if (from >= to)
		return false;
	first = from >> PAGE_SHIFT;
	last = (to - 1) >> PAGE_SHIFT;
	wb = first;
	if (!xa_find(&mapping->i_pages, &first, last, PAGECACHE_TAG_DIRTY))
		first = ULONG_MAX;
	if (!xa_find(&mapping->i_pages, &wb, last, PAGECACHE_TAG_WRITEBACK))
		wb = ULONG_MAX;
	first = min(first, wb);
	if (first == ULONG_MAX)
		return false;
	for (next = first + 1; next <= last; next++) {
		if (!emfs_index_dirty(mapping, next))
			break;
		cond_resched();
	}
	*start = (u64)first << PAGE_SHIFT;
	*end = (u64)next << PAGE_SHIFT;
	return true;
}

/* Folios of @mapping holding a space reservation (the private flag). */
u64 emfs_mapping_reserved(struct address_space *mapping)
{
	XA_STATE(xas, &mapping->i_pages, 0);
	struct folio *folio;
	u64 n = 0, seen = 0;

	rcu_read_lock();
	xas_for_each(&xas, folio, ULONG_MAX) {
		if (xas_retry(&xas, folio) || xa_is_value(folio))
			continue;
		if (folio_test_private(folio))
			n++;
		/* A large page cache: let others run now and then. */
		if (++seen % 1024 == 0) {
			xas_pause(&xas);
			rcu_read_unlock();
			cond_resched();
			rcu_read_lock();
		}
	}
	rcu_read_unlock();
	return n;
}

/*
 * What the C half of an emfs needs while the filesystem type is registered
 * (rust/glue/vfs.rs, Registration): the endio workqueue. Set up before the type is registered, torn down after it is
 * unregistered; Registration refuses a second registration before this.
 */
int emfs_vfs_resources_init(void)
{
	emfs_endio_wq = alloc_workqueue("emfs-endio",
					WQ_MEM_RECLAIM | WQ_UNBOUND, 0);
	return emfs_endio_wq ? 0 : -ENOMEM;
}

void emfs_vfs_resources_exit(void)
{
	destroy_workqueue(emfs_endio_wq);
	emfs_endio_wq = NULL;
}
