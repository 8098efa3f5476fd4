// SPDX-License-Identifier: GPL-2.0
/*
 * helpers.c - the C side of emfs.
 *
 * Instantiates the tracepoints of emfs_trace.h and wraps the kernel macros
 * and static inline functions the Rust code needs. Nothing here holds
 * logic: every function is one call to what it wraps.
 */

#include <linux/debug_locks.h>
#include <linux/delay.h>
#include <linux/fault-inject.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/lockdep.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/percpu.h>
#include <linux/posix_acl.h>
#include <linux/posix_acl_xattr.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/shrinker.h>
#include <linux/vmstat.h>
#include <linux/workqueue.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/spinlock.h>
#include <linux/uio.h>

#include "helpers.h"

#define CREATE_TRACE_POINTS
#include "emfs_trace.h"

/*
 * Fault injection for the module's own allocations (extent maps and tree
 * nodes), on top of failslab: a failure here is an allocation emfs asked
 * for, whatever slab cache it comes from.
 */
static DECLARE_FAULT_ATTR(emfs_fail_alloc);

void emfs_trace_em_cache_miss(u64 ino, u64 start, u64 len)
{
	trace_em_cache_miss(ino, start, len);
}

bool emfs_trace_em_cache_miss_enabled(void)
{
	return trace_em_cache_miss_enabled();
}

int emfs_trace_em_cache_miss_register(emfs_em_cache_miss_probe_t probe,
				      void *data)
{
	return register_trace_em_cache_miss(probe, data);
}

int emfs_trace_em_cache_miss_unregister(emfs_em_cache_miss_probe_t probe,
					void *data)
{
	return unregister_trace_em_cache_miss(probe, data);
}

void emfs_tracepoint_synchronize_unregister(void)
{
	tracepoint_synchronize_unregister();
}

void emfs_trace_em_shrinker_scan_enter(u64 owner, u64 nr_to_scan, s64 evictable)
{
	trace_em_shrinker_scan_enter(owner, nr_to_scan, evictable);
}

void emfs_trace_em_shrinker_scan_exit(u64 owner, u64 dropped, s64 evictable)
{
	trace_em_shrinker_scan_exit(owner, dropped, evictable);
}

void emfs_trace_em_shrinker_remove_em(u64 ino, u64 start, u64 len, u32 flags)
{
	trace_em_shrinker_remove_em(ino, start, len, flags);
}

void emfs_trace_em_handle_exist(u64 ino, u64 existing_start, u64 existing_len,
				u64 em_start, u64 em_len, u64 start, u64 len)
{
	trace_em_handle_exist(ino, existing_start, existing_len, em_start,
			      em_len, start, len);
}

void emfs_trace_em_merge(u64 ino, u64 start, u64 len, u64 absorbed_start,
			 u64 absorbed_len)
{
	trace_em_merge(ino, start, len, absorbed_start, absorbed_len);
}

void emfs_rwlock_init(rwlock_t *lock, const char *name,
		      struct lock_class_key *key)
{
#if defined(CONFIG_DEBUG_SPINLOCK) && !defined(CONFIG_PREEMPT_RT)
	__rwlock_init(lock, name, key);
#else
	rwlock_init(lock);
#endif
}

#ifdef CONFIG_PREEMPT_RT
/*
 * On PREEMPT_RT, rwlock_init() is init_rwbase_rt() then __rt_rwlock_init()
 * with a key of the macro's own, which would give every emfs rwlock one
 * lockdep class; rust/glue/rwlock.rs makes the two calls itself, with the
 * key of its new_rwlock! site, and does not call emfs_rwlock_init().
 */
void emfs_init_rwbase_rt(rwlock_t *lock)
{
	init_rwbase_rt(&lock->rwbase);
}
#endif

void emfs_read_lock(rwlock_t *lock)
{
	read_lock(lock);
}

void emfs_read_unlock(rwlock_t *lock)
{
	read_unlock(lock);
}

void emfs_write_lock(rwlock_t *lock)
{
	write_lock(lock);
}

int emfs_write_trylock(rwlock_t *lock)
{
	return write_trylock(lock);
}

int emfs_read_trylock(rwlock_t *lock)
{
	return read_trylock(lock);
}

void emfs_write_unlock(rwlock_t *lock)
{
	write_unlock(lock);
}

int emfs_rwlock_needbreak(rwlock_t *lock)
{
	return rwlock_needbreak(lock);
}

int emfs_cond_resched_rwlock_write(rwlock_t *lock)
{
	return cond_resched_rwlock_write(lock);
}

void emfs_lockdep_assert_held_write(rwlock_t *lock)
{
	lockdep_assert_held_write(lock);
}

u64 __percpu *emfs_alloc_percpu_u64(void)
{
	return alloc_percpu(u64);
}

void emfs_this_cpu_add_u64(u64 __percpu *p, u64 n)
{
	this_cpu_add(*p, n);
}

u64 *emfs_per_cpu_ptr_u64(u64 __percpu *p, unsigned int cpu)
{
	return per_cpu_ptr(p, cpu);
}

bool emfs_cpu_possible(unsigned int cpu)
{
	return cpu_possible(cpu);
}

void emfs_cond_resched(void)
{
	cond_resched();
}

bool emfs_need_resched(void)
{
	return need_resched();
}

void emfs_mdelay(unsigned int msecs)
{
	mdelay(msecs);
}

unsigned int emfs_num_online_cpus(void)
{
	return num_online_cpus();
}

unsigned int emfs_memalloc_nofs_save(void)
{
	return memalloc_nofs_save();
}

void emfs_memalloc_nofs_restore(unsigned int flags)
{
	memalloc_nofs_restore(flags);
}

bool emfs_memalloc_nofs_active(void)
{
	return current->flags & PF_MEMALLOC_NOFS;
}

bool emfs_lockdep_proving(void)
{
	return IS_ENABLED(CONFIG_PROVE_LOCKING);
}

bool emfs_debug_locks(void)
{
	return READ_ONCE(debug_locks);
}

void emfs_fs_reclaim_acquire(void)
{
	fs_reclaim_acquire(GFP_KERNEL);
}

void emfs_fs_reclaim_release(void)
{
	fs_reclaim_release(GFP_KERNEL);
}

bool emfs_should_fail_alloc(void)
{
	return should_fail(&emfs_fail_alloc, 1);
}

void emfs_fail_alloc_arm(unsigned long interval, int times)
{
#ifdef CONFIG_FAULT_INJECTION
	emfs_fail_alloc.interval = interval;
	atomic_set(&emfs_fail_alloc.times, times);
	emfs_fail_alloc.verbose = 0;
	WRITE_ONCE(emfs_fail_alloc.probability, 100);
#endif
}

void emfs_fail_alloc_disarm(void)
{
#ifdef CONFIG_FAULT_INJECTION
	WRITE_ONCE(emfs_fail_alloc.probability, 0);
#endif
}

bool emfs_fault_injection_active(void)
{
#ifdef CONFIG_FAULT_INJECTION
	return current->make_it_fail ||
	       READ_ONCE(emfs_fail_alloc.probability) != 0;
#else
	return false;
#endif
}

unsigned int emfs_current_flags(void)
{
	return current->flags;
}

u64 emfs_slab_bytes(void)
{
	return (global_node_page_state_pages(NR_SLAB_UNRECLAIMABLE_B) +
		global_node_page_state_pages(NR_SLAB_RECLAIMABLE_B)) * PAGE_SIZE;
}

struct shrinker *emfs_shrinker_alloc(const char *name)
{
	return shrinker_alloc(0, "%s", name);
}

struct workqueue_struct *emfs_alloc_workqueue(const char *name,
					     unsigned int flags, int max_active)
{
	return alloc_workqueue("%s", flags, max_active, name);
}

bool emfs_gfp_allows_fs(gfp_t gfp)
{
	return gfp & __GFP_FS;
}

bool emfs_gfp_allows_io(gfp_t gfp)
{
	return gfp & __GFP_IO;
}

struct proc_dir_entry *emfs_proc_mkdir(const char *name,
				       struct proc_dir_entry *parent)
{
	return proc_mkdir(name, parent);
}

struct proc_dir_entry *
emfs_proc_create_single_data(const char *name, struct proc_dir_entry *parent,
			     int (*show)(struct seq_file *, void *),
			     void *data)
{
	return proc_create_single_data(name, 0444, parent, show, data);
}

void emfs_proc_remove(struct proc_dir_entry *entry)
{
	proc_remove(entry);
}

void *emfs_seq_private(struct seq_file *m)
{
	return m->private;
}

void *emfs_alloc_inode_sb(struct super_block *sb, struct kmem_cache *cache,
			  gfp_t gfp)
{
	return alloc_inode_sb(sb, cache, gfp);
}

unsigned int emfs_inode_state_read(struct inode *inode)
{
	return inode_state_read(inode);
}

void emfs___iget(struct inode *inode)
{
	__iget(inode);
}

bool emfs_inode_unhashed(struct inode *inode)
{
	return inode_unhashed(inode);
}

void emfs_inode_set_mtime_to_ts(struct inode *inode, struct timespec64 ts)
{
	inode_set_mtime_to_ts(inode, ts);
}

void emfs_inode_set_cached_link(struct inode *inode, char *link, int linklen)
{
	inode_set_cached_link(inode, link, linklen);
}

void emfs_posix_acl_release(struct posix_acl *acl)
{
	posix_acl_release(acl);
}

size_t emfs_posix_acl_xattr_size(const struct posix_acl *acl)
{
	return posix_acl_xattr_size(acl->a_count);
}

loff_t emfs_i_size_read(const struct inode *inode)
{
	return i_size_read(inode);
}

void emfs_inode_lock_shared(struct inode *inode)
{
	inode_lock_shared(inode);
}

void emfs_inode_lock(struct inode *inode)
{
	inode_lock(inode);
}

void emfs_inode_unlock(struct inode *inode)
{
	inode_unlock(inode);
}

void emfs_i_size_write(struct inode *inode, loff_t size)
{
	i_size_write(inode, size);
}

void emfs_filemap_invalidate_lock(struct address_space *mapping)
{
	filemap_invalidate_lock(mapping);
}

void emfs_filemap_invalidate_unlock(struct address_space *mapping)
{
	filemap_invalidate_unlock(mapping);
}

void emfs_filemap_invalidate_lock_shared(struct address_space *mapping)
{
	filemap_invalidate_lock_shared(mapping);
}

void emfs_filemap_invalidate_unlock_shared(struct address_space *mapping)
{
	filemap_invalidate_unlock_shared(mapping);
}

bool emfs_filemap_range_needs_writeback(struct address_space *mapping,
					loff_t start, loff_t end)
{
	return filemap_range_needs_writeback(mapping, start, end);
}

void emfs_sb_start_pagefault(struct super_block *sb)
{
	sb_start_pagefault(sb);
}

void emfs_sb_end_pagefault(struct super_block *sb)
{
	sb_end_pagefault(sb);
}

void emfs_mapping_set_large_folios(struct address_space *mapping)
{
	mapping_set_large_folios(mapping);
}

void emfs_mapping_set_unevictable(struct address_space *mapping)
{
	mapping_set_unevictable(mapping);
}

void emfs_file_accessed(struct file *file)
{
	file_accessed(file);
}

ssize_t emfs_generic_write_sync(struct kiocb *iocb, ssize_t count)
{
	return generic_write_sync(iocb, count);
}

size_t emfs_iov_iter_count(const struct iov_iter *i)
{
	return iov_iter_count(i);
}

void emfs_inode_unlock_shared(struct inode *inode)
{
	inode_unlock_shared(inode);
}

loff_t emfs_folio_pos(const struct folio *folio)
{
	return folio_pos(folio);
}

size_t emfs_folio_size(const struct folio *folio)
{
	return folio_size(folio);
}

void *emfs_kmap_local_folio(struct folio *folio, size_t offset)
{
	return kmap_local_folio(folio, offset);
}

struct folio *emfs_folio_alloc(gfp_t gfp, unsigned int order)
{
	return folio_alloc(gfp, order);
}

void emfs_folio_put(struct folio *folio)
{
	folio_put(folio);
}

struct folio *emfs_filemap_grab_folio(struct address_space *mapping, pgoff_t index)
{
	return filemap_grab_folio(mapping, index);
}

void emfs_folio_mark_uptodate(struct folio *folio)
{
	folio_mark_uptodate(folio);
}
