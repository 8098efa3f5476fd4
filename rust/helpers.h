/* SPDX-License-Identifier: GPL-2.0 */
/*
 * helpers.h - C functions the emfs Rust code calls.
 *
 * Each one wraps a kernel macro or static inline function (or a tracepoint)
 * that bindgen cannot turn into a callable symbol. The Rust declarations
 * are in rust/glue/; keep both sides in step.
 */
#ifndef _EMFS_HELPERS_H
#define _EMFS_HELPERS_H

#include <linux/types.h>

typedef void (*emfs_em_cache_miss_probe_t)(void *data, u64 ino, u64 start,
					   u64 len);

void emfs_trace_em_cache_miss(u64 ino, u64 start, u64 len);
bool emfs_trace_em_cache_miss_enabled(void);
int emfs_trace_em_cache_miss_register(emfs_em_cache_miss_probe_t probe,
				      void *data);
int emfs_trace_em_cache_miss_unregister(emfs_em_cache_miss_probe_t probe,
					void *data);
void emfs_tracepoint_synchronize_unregister(void);

#endif /* _EMFS_HELPERS_H */
