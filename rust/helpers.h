/* SPDX-License-Identifier: GPL-2.0 */
/*
 * helpers.h - C functions the emfs Rust code calls.
 *
 * Each one wraps a kernel macro or static inline function (or a tracepoint)
 * that bindgen cannot turn into a callable symbol. The Rust declarations
 * are generated from this file (rust/bindings_helper.h, rust/glue/ffi.rs).
 */
#ifndef _EMFS_HELPERS_H
#define _EMFS_HELPERS_H

#include <linux/types.h>
#include <linux/percpu.h>
#include <linux/spinlock_types.h>
#include <linux/time64.h>

struct lock_class_key;

/* rwlock_t: rust/glue/rwlock.rs */
void emfs_rwlock_init(rwlock_t *lock, const char *name,
		      struct lock_class_key *key);
/* CONFIG_PREEMPT_RT only: init_rwbase_rt(&lock->rwbase). */
void emfs_init_rwbase_rt(rwlock_t *lock);
void emfs_read_lock(rwlock_t *lock);
void emfs_read_unlock(rwlock_t *lock);
void emfs_write_lock(rwlock_t *lock);
int emfs_write_trylock(rwlock_t *lock);
int emfs_read_trylock(rwlock_t *lock);
void emfs_write_unlock(rwlock_t *lock);
int emfs_rwlock_needbreak(rwlock_t *lock);
int emfs_cond_resched_rwlock_write(rwlock_t *lock);
void emfs_lockdep_assert_held_write(rwlock_t *lock);

/* Allocation scopes, reclaim annotations, fault injection: rust/glue/alloc.rs */
bool emfs_should_fail_alloc(void);
void emfs_fail_alloc_arm(unsigned long interval, int times);
void emfs_fail_alloc_disarm(void);
bool emfs_fault_injection_active(void);
unsigned int emfs_memalloc_nofs_save(void);
void emfs_memalloc_nofs_restore(unsigned int flags);
bool emfs_memalloc_nofs_active(void);
bool emfs_lockdep_proving(void);
bool emfs_debug_locks(void);
void emfs_fs_reclaim_acquire(void);
void emfs_fs_reclaim_release(void);

/* Per-CPU counts: rust/glue/percpu.rs */
u64 __percpu *emfs_alloc_percpu_u64(void);
void emfs_this_cpu_add_u64(u64 __percpu *p, u64 n);
u64 *emfs_per_cpu_ptr_u64(u64 __percpu *p, unsigned int cpu);
bool emfs_cpu_possible(unsigned int cpu);

/* Scheduler and delays: rust/glue/sched.rs */
void emfs_cond_resched(void);
bool emfs_need_resched(void);
void emfs_mdelay(unsigned int msecs);
unsigned int emfs_num_online_cpus(void);

typedef void (*emfs_em_cache_miss_probe_t)(void *data, u64 ino, u64 start,
					   u64 len);

void emfs_trace_em_cache_miss(u64 ino, u64 start, u64 len);
bool emfs_trace_em_cache_miss_enabled(void);
int emfs_trace_em_cache_miss_register(emfs_em_cache_miss_probe_t probe,
				      void *data);
int emfs_trace_em_cache_miss_unregister(emfs_em_cache_miss_probe_t probe,
					void *data);
void emfs_tracepoint_synchronize_unregister(void);
void emfs_trace_em_shrinker_scan_enter(u64 owner, u64 nr_to_scan, s64 evictable);
void emfs_trace_em_shrinker_scan_exit(u64 owner, u64 dropped, s64 evictable);
void emfs_trace_em_shrinker_remove_em(u64 ino, u64 start, u64 len, u32 flags);
void emfs_trace_em_handle_exist(u64 ino, u64 existing_start, u64 existing_len,
				u64 em_start, u64 em_len, u64 start, u64 len);
void emfs_trace_em_merge(u64 ino, u64 start, u64 len, u64 absorbed_start,
			 u64 absorbed_len);

/* Shrinkers: rust/glue/shrinker.rs */
struct shrinker;
struct shrinker *emfs_shrinker_alloc(const char *name);

/* Workqueues: rust/glue/workqueue.rs */
struct workqueue_struct;
struct workqueue_struct *emfs_alloc_workqueue(const char *name,
					     unsigned int flags, int max_active);
bool emfs_gfp_allows_fs(gfp_t gfp);
bool emfs_gfp_allows_io(gfp_t gfp);

/* /proc: rust/glue/proc.rs */
struct proc_dir_entry;
struct seq_file;
struct proc_dir_entry *emfs_proc_mkdir(const char *name,
				       struct proc_dir_entry *parent);
struct proc_dir_entry *
emfs_proc_create_single_data(const char *name, struct proc_dir_entry *parent,
			     int (*show)(struct seq_file *, void *),
			     void *data);
void emfs_proc_remove(struct proc_dir_entry *entry);
void *emfs_seq_private(struct seq_file *m);

/* Memory accounting: rust/glue/mm.rs */
unsigned int emfs_current_flags(void);
u64 emfs_slab_bytes(void);

/* The C floor of the benchmark: rust/bench_floor.c, rust/glue/bench_floor.rs */
struct emfs_floor_tree;
struct emfs_floor_tree *emfs_floor_create(void);
void emfs_floor_destroy(struct emfs_floor_tree *tree);
int emfs_floor_insert(struct emfs_floor_tree *tree, u64 start, u64 len,
		      u64 disk_bytenr);
u64 emfs_floor_lookup_all(struct emfs_floor_tree *tree, const u64 *offsets,
			  size_t nr);

/* VFS: rust/glue/vfs.rs */
struct fs_context;
struct super_block;
struct dentry;
struct kstatfs;
struct file_system_type;
struct kmem_cache;
struct inode;
/* Static inlines and macros of <linux/fs.h>, for rust/glue/vfs.rs. */
void *emfs_alloc_inode_sb(struct super_block *sb, struct kmem_cache *cache,
			  gfp_t gfp);
unsigned int emfs_inode_state_read(struct inode *inode);
void emfs___iget(struct inode *inode);
bool emfs_inode_unhashed(struct inode *inode);
void emfs_inode_set_mtime_to_ts(struct inode *inode, struct timespec64 ts);
void emfs_inode_set_cached_link(struct inode *inode, char *link, int linklen);
loff_t emfs_i_size_read(const struct inode *inode);
void emfs_inode_lock_shared(struct inode *inode);
void emfs_inode_unlock_shared(struct inode *inode);
/* POSIX ACLs: <linux/posix_acl.h>, <linux/posix_acl_xattr.h> */
struct posix_acl;
void emfs_posix_acl_release(struct posix_acl *acl);
size_t emfs_posix_acl_xattr_size(const struct posix_acl *acl);

/* The data path of regular files: rust/glue/file.rs, rust/glue/iomap.rs */
struct address_space;
struct file;
struct kiocb;
void emfs_inode_lock(struct inode *inode);
void emfs_inode_unlock(struct inode *inode);
void emfs_i_size_write(struct inode *inode, loff_t size);
void emfs_filemap_invalidate_lock(struct address_space *mapping);
void emfs_filemap_invalidate_unlock(struct address_space *mapping);
void emfs_filemap_invalidate_lock_shared(struct address_space *mapping);
void emfs_filemap_invalidate_unlock_shared(struct address_space *mapping);
bool emfs_filemap_range_needs_writeback(struct address_space *mapping,
					loff_t start, loff_t end);
void emfs_sb_start_pagefault(struct super_block *sb);
void emfs_sb_end_pagefault(struct super_block *sb);
void emfs_mapping_set_large_folios(struct address_space *mapping);
void emfs_mapping_set_unevictable(struct address_space *mapping);
void emfs_file_accessed(struct file *file);
ssize_t emfs_generic_write_sync(struct kiocb *iocb, ssize_t count);
struct iov_iter;
size_t emfs_iov_iter_count(const struct iov_iter *i);

/* Folios: rust/glue/iomap.rs */
struct folio;
loff_t emfs_folio_pos(const struct folio *folio);
size_t emfs_folio_size(const struct folio *folio);
void *emfs_kmap_local_folio(struct folio *folio, size_t offset);
struct folio *emfs_folio_alloc(gfp_t gfp, unsigned int order);
void emfs_folio_put(struct folio *folio);
struct folio *emfs_filemap_grab_folio(struct address_space *mapping, pgoff_t index);
void emfs_folio_mark_uptodate(struct folio *folio);

#endif /* _EMFS_HELPERS_H */
