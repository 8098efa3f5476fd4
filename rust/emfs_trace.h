/* SPDX-License-Identifier: GPL-2.0 */
/*
 * emfs_trace.h - tracepoints of the emfs module, system "emfs".
 *
 * The events are defined here in C because an out-of-tree module cannot add
 * to the kernel crate's bindings; rust/helpers.c instantiates them and
 * exports one plain function per event for the Rust side to call.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM emfs

#if !defined(_EMFS_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _EMFS_TRACE_H

#include <linux/tracepoint.h>

/**
 * em_cache_miss - a lookup missed the extent map cache
 * @ino: inode number the lookup was for
 * @start: file offset looked up, in bytes
 * @len: length of the range looked up, in bytes
 *
 * Fired when a lookup finds no cached extent map and the map has to be
 * rebuilt from the file's extent records.
 */
TRACE_EVENT(em_cache_miss,
	TP_PROTO(u64 ino, u64 start, u64 len),
	TP_ARGS(ino, start, len),
	TP_STRUCT__entry(
		__field(u64, ino)
		__field(u64, start)
		__field(u64, len)
	),
	TP_fast_assign(
		__entry->ino = ino;
		__entry->start = start;
		__entry->len = len;
	),
	TP_printk("ino=%llu start=%llu len=%llu",
		  __entry->ino, __entry->start, __entry->len)
);

#endif /* _EMFS_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE emfs_trace
#include <trace/define_trace.h>
