/* SPDX-License-Identifier: GPL-2.0 */
/*
 * emfs_trace.h - tracepoints of the emfs module, system "emfs".
 *
 * The events are defined here in C because an out-of-tree module cannot add
 * to the kernel crate's bindings; rust/helpers.c instantiates them and
 * exports one plain function per event for the Rust side to call.
 *
 * A module that compiles the extent map tree in as a library (the sample in
 * samples/) defines EMFS_TRACE_SYSTEM_SAMPLE, so that its events are its
 * own, under "emfs_sample", when it is loaded next to emfs.
 */
#undef TRACE_SYSTEM
#ifdef EMFS_TRACE_SYSTEM_SAMPLE
#define TRACE_SYSTEM emfs_sample
#else
#define TRACE_SYSTEM emfs
#endif

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

/**
 * em_shrinker_scan_enter - the shrinker worker starts a run
 * @owner: id of the filesystem whose maps it scans
 * @nr_to_scan: maps the run may scan
 * @evictable: maps the shrinker could drop when the run starts
 */
TRACE_EVENT(em_shrinker_scan_enter,
	TP_PROTO(u64 owner, u64 nr_to_scan, s64 evictable),
	TP_ARGS(owner, nr_to_scan, evictable),
	TP_STRUCT__entry(
		__field(u64, owner)
		__field(u64, nr_to_scan)
		__field(s64, evictable)
	),
	TP_fast_assign(
		__entry->owner = owner;
		__entry->nr_to_scan = nr_to_scan;
		__entry->evictable = evictable;
	),
	TP_printk("owner=%llu nr_to_scan=%llu evictable=%lld",
		  __entry->owner, __entry->nr_to_scan, __entry->evictable)
);

/**
 * em_shrinker_scan_exit - the shrinker worker ends a run
 * @owner: id of the filesystem whose maps it scanned
 * @dropped: maps the run dropped
 * @evictable: maps the shrinker could drop when the run ends
 */
TRACE_EVENT(em_shrinker_scan_exit,
	TP_PROTO(u64 owner, u64 dropped, s64 evictable),
	TP_ARGS(owner, dropped, evictable),
	TP_STRUCT__entry(
		__field(u64, owner)
		__field(u64, dropped)
		__field(s64, evictable)
	),
	TP_fast_assign(
		__entry->owner = owner;
		__entry->dropped = dropped;
		__entry->evictable = evictable;
	),
	TP_printk("owner=%llu dropped=%llu evictable=%lld",
		  __entry->owner, __entry->dropped, __entry->evictable)
);

/**
 * em_shrinker_remove_em - the shrinker worker drops one extent map
 * @ino: inode the map belonged to
 * @start: file offset of the map
 * @len: length of the map
 * @flags: the map's flags (EXTENT_FLAG_* bits)
 */
TRACE_EVENT(em_shrinker_remove_em,
	TP_PROTO(u64 ino, u64 start, u64 len, u32 flags),
	TP_ARGS(ino, start, len, flags),
	TP_STRUCT__entry(
		__field(u64, ino)
		__field(u64, start)
		__field(u64, len)
		__field(u32, flags)
	),
	TP_fast_assign(
		__entry->ino = ino;
		__entry->start = start;
		__entry->len = len;
		__entry->flags = flags;
	),
	TP_printk("ino=%llu start=%llu len=%llu flags=0x%x",
		  __entry->ino, __entry->start, __entry->len, __entry->flags)
);

/**
 * em_handle_exist - adding a map met an overlapping cached map
 * @ino: inode of the tree
 * @existing_start: start of the cached map found
 * @existing_len: length of the cached map found
 * @em_start: start of the map being added
 * @em_len: length of the map being added
 * @start: start of the range the caller asked for
 * @len: length of the range the caller asked for
 */
TRACE_EVENT(em_handle_exist,
	TP_PROTO(u64 ino, u64 existing_start, u64 existing_len, u64 em_start,
		 u64 em_len, u64 start, u64 len),
	TP_ARGS(ino, existing_start, existing_len, em_start, em_len, start, len),
	TP_STRUCT__entry(
		__field(u64, ino)
		__field(u64, existing_start)
		__field(u64, existing_len)
		__field(u64, em_start)
		__field(u64, em_len)
		__field(u64, start)
		__field(u64, len)
	),
	TP_fast_assign(
		__entry->ino = ino;
		__entry->existing_start = existing_start;
		__entry->existing_len = existing_len;
		__entry->em_start = em_start;
		__entry->em_len = em_len;
		__entry->start = start;
		__entry->len = len;
	),
	TP_printk("ino=%llu start=%llu len=%llu existing=(%llu %llu) em=(%llu %llu)",
		  __entry->ino, __entry->start, __entry->len,
		  __entry->existing_start, __entry->existing_len,
		  __entry->em_start, __entry->em_len)
);

/**
 * em_merge - two adjacent extent maps became one
 * @ino: inode of the tree
 * @start: start of the merged map
 * @len: length of the merged map
 * @absorbed_start: start of the neighbour merged in
 * @absorbed_len: length of the neighbour merged in
 */
TRACE_EVENT(em_merge,
	TP_PROTO(u64 ino, u64 start, u64 len, u64 absorbed_start,
		 u64 absorbed_len),
	TP_ARGS(ino, start, len, absorbed_start, absorbed_len),
	TP_STRUCT__entry(
		__field(u64, ino)
		__field(u64, start)
		__field(u64, len)
		__field(u64, absorbed_start)
		__field(u64, absorbed_len)
	),
	TP_fast_assign(
		__entry->ino = ino;
		__entry->start = start;
		__entry->len = len;
		__entry->absorbed_start = absorbed_start;
		__entry->absorbed_len = absorbed_len;
	),
	TP_printk("ino=%llu start=%llu len=%llu absorbed=(%llu %llu)",
		  __entry->ino, __entry->start, __entry->len,
		  __entry->absorbed_start, __entry->absorbed_len)
);

#endif /* _EMFS_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE emfs_trace
#include <trace/define_trace.h>
