// SPDX-License-Identifier: GPL-2.0
/*
 * bench_floor.c - the floor for the extent map benchmark.
 *
 * A lookup written in C the way btrfs writes it: read_lock, an rb-tree
 * walk over maps laid out like struct extent_map, refcount_inc,
 * read_unlock, then the reference dropped. The benchmark (rust/bench.rs)
 * runs the same lookups against ExtentMapTree and prints the ratio. Maps
 * come from a kmem_cache, as btrfs's do, so their memory cost can be
 * compared too.
 */

#include <linux/list.h>
#include <linux/rbtree.h>
#include <linux/refcount.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

#include "helpers.h"

/* struct extent_map, field for field. */
struct floor_em {
	struct rb_node rb_node;
	u64 start;
	u64 len;
	u64 disk_bytenr;
	u64 disk_num_bytes;
	u64 offset;
	u64 ram_bytes;
	u64 generation;
	u32 flags;
	refcount_t refs;
	struct list_head list;
};

struct emfs_floor_tree {
	struct rb_root root;
	rwlock_t lock;
	struct kmem_cache *cache;
	unsigned long nr;
};

static u64 floor_em_end(const struct floor_em *em)
{
	if (em->start + em->len < em->start)
		return (u64)-1;
	return em->start + em->len;
}

struct emfs_floor_tree *emfs_floor_create(void)
{
	struct emfs_floor_tree *tree = kzalloc(sizeof(*tree), GFP_KERNEL);

	if (!tree)
		return NULL;
	tree->cache = kmem_cache_create("emfs_floor_em", sizeof(struct floor_em),
					0, 0, NULL);
	if (!tree->cache) {
		kfree(tree);
		return NULL;
	}
	tree->root = RB_ROOT;
	rwlock_init(&tree->lock);
	return tree;
}

void emfs_floor_destroy(struct emfs_floor_tree *tree)
{
	struct floor_em *em, *next;

	rbtree_postorder_for_each_entry_safe(em, next, &tree->root, rb_node)
		kmem_cache_free(tree->cache, em);
	kmem_cache_destroy(tree->cache);
	kfree(tree);
}

/* tree_insert() of extent_map.c, without the neighbour checks. */
int emfs_floor_insert(struct emfs_floor_tree *tree, u64 start, u64 len,
		      u64 disk_bytenr)
{
	struct floor_em *em = kmem_cache_zalloc(tree->cache, GFP_NOFS);
	struct rb_node **p;
	struct rb_node *parent = NULL;

	if (!em)
		return -ENOMEM;
	em->start = start;
	em->len = len;
	em->disk_bytenr = disk_bytenr;
	em->disk_num_bytes = len;
	em->ram_bytes = len;
	refcount_set(&em->refs, 1);
	INIT_LIST_HEAD(&em->list);

	write_lock(&tree->lock);
	p = &tree->root.rb_node;
	while (*p) {
		struct floor_em *entry;

		parent = *p;
		entry = rb_entry(parent, struct floor_em, rb_node);
		if (start < entry->start) {
			p = &(*p)->rb_left;
		} else if (start >= floor_em_end(entry)) {
			p = &(*p)->rb_right;
		} else {
			write_unlock(&tree->lock);
			kmem_cache_free(tree->cache, em);
			return -EEXIST;
		}
	}
	rb_link_node(&em->rb_node, parent, p);
	rb_insert_color(&em->rb_node, &tree->root);
	tree->nr++;
	write_unlock(&tree->lock);
	return 0;
}

/* lookup_extent_mapping() for a map containing @offset. */
static struct floor_em *floor_lookup(struct emfs_floor_tree *tree, u64 offset)
{
	struct rb_node *n = tree->root.rb_node;

	while (n) {
		struct floor_em *entry = rb_entry(n, struct floor_em, rb_node);

		if (offset < entry->start)
			n = n->rb_left;
		else if (offset >= floor_em_end(entry))
			n = n->rb_right;
		else
			return entry;
	}
	return NULL;
}

u64 emfs_floor_lookup_all(struct emfs_floor_tree *tree, const u64 *offsets,
			  size_t nr)
{
	u64 hits = 0;
	size_t i;

	for (i = 0; i < nr; i++) {
		struct floor_em *em;

		read_lock(&tree->lock);
		em = floor_lookup(tree, offsets[i]);
		if (em)
			refcount_inc(&em->refs);
		read_unlock(&tree->lock);
		if (em) {
			hits++;
			/* btrfs_free_extent_map(): the tree still holds one. */
			if (refcount_dec_and_test(&em->refs))
				kmem_cache_free(tree->cache, em);
		}
	}
	return hits;
}
