// SPDX-License-Identifier: GPL-2.0
/*
 * helpers.c - the C side of emfs.
 *
 * Instantiates the tracepoints of emfs_trace.h and wraps the kernel macros
 * and static inline functions the Rust code needs. Nothing here holds
 * logic: every function is one call to what it wraps.
 */

#include "helpers.h"

#define CREATE_TRACE_POINTS
#include "emfs_trace.h"

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
