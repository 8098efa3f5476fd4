// SPDX-License-Identifier: GPL-2.0
/*
 * sample_helpers.c - the C side of the extent map tree, for emfs_sample.
 *
 * The sample compiles the tree's Rust sources in (see walkthrough.rs), so
 * it needs the C functions they call: the reader-writer lock wrappers, the
 * allocation scope and the tracepoints of rust/helpers.c. They are built
 * here from the same file, with the tracepoints under the system
 * "emfs_sample" so that they do not collide with emfs's own.
 */

#define EMFS_TRACE_SYSTEM_SAMPLE
#include "helpers.c"
