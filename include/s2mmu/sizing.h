/* SPDX-License-Identifier: MIT */
/*
 * Worst-case table pages: how many table pages below the root a VM's tables
 * can ever hold at once for a given set of regions, so that a pool sized at
 * build time never runs dry (docs/static.md).
 *
 * A region is a gpa range with the leaf levels it allows (bit l of the mask
 * = level l, 1 = the granule; S2_SIZING_LEAF(1) | S2_SIZING_LEAF(2) is 4 KiB
 * and 2 MiB on a 4K granule). Every page of a region is mapped by a leaf of
 * one of those levels lying inside the region, as the fault path does with a
 * memslot per region. Since a leaf of level l needs its aligned block of
 * that level inside the region, a region must be aligned to its smallest
 * allowed level, and then the worst case is every page mapped at that level:
 * a table holding level-L entries exists exactly for the aligned blocks of
 * 2^(page_shift + L * bits_per_level) bytes that touch a region whose
 * smallest leaf level is <= L. The count is exact: faulting every page (or
 * every block) at the smallest level reaches it, and no mix of larger leaves
 * exceeds it.
 *
 * Not counted: the root (cfg->root_bytes, allocated by kvm_create_vm()),
 * the pages each vcpu's memory cache holds (levels - 1 per vcpu, topped up
 * before every fault), and pages of unlinked tables waiting for their RCU
 * grace period after a zap (none when nothing is ever unmapped).
 * s2_sizing_pool_bytes() adds the first two.
 */
#ifndef S2MMU_SIZING_H
#define S2MMU_SIZING_H

#include "s2mmu/types.h"

struct kvm;

/* Leaf level @l in a region's leaf_levels mask. */
#define S2_SIZING_LEAF(l) (1u << (l))

/* The table geometry of a VM (kvm_sizing_cfg() reads it off a live VM). */
struct s2_sizing_cfg {
	unsigned page_shift;	 /* log2 of the granule: 12, 14 or 16 */
	unsigned bits_per_level; /* log2 of the entries of a non-root table */
	unsigned levels;	 /* levels walked; the root is level `levels` */
	unsigned gpa_bits;	 /* regions must lie below 2^gpa_bits */
	unsigned max_leaf_level; /* largest level a leaf may have */
	uint64_t root_bytes;	 /* what the root's allocation takes (a
				    concatenated root: up to 16 pages) */
};

struct s2_sizing_region {
	gpa_t gpa;
	uint64_t size;
	unsigned leaf_levels; /* S2_SIZING_LEAF() mask; levels above
				 max_leaf_level are ignored */
};

/*
 * The worst-case number of table pages (each one granule) below the root
 * that mapping @n regions @r can link, into *@pages. Regions may come in any
 * order. Returns 0, or -EINVAL with *@pages untouched: NULL @cfg or @pages
 * (or @r with @n > 0), a geometry outside 12..16 bit granules, 1..5 levels,
 * 1..13 bits per level or wider than 64 bits, an empty region or one that
 * ends past 2^gpa_bits, a mask with bit 0 or levels above cfg->levels set or
 * with no level <= max_leaf_level, a region not aligned to its smallest
 * allowed leaf, overlapping regions. Pure: no state, no allocation.
 */
int s2_sizing_table_pages(const struct s2_sizing_cfg *cfg, const struct s2_sizing_region *r,
			  size_t n, uint64_t *pages) S2_MUST_CHECK;

/*
 * Bytes a pool needs for one VM: the root, the table pages of
 * s2_sizing_table_pages() and the memory caches of @nr_vcpus vcpus. Returns
 * 0 and *@bytes, or -EINVAL as s2_sizing_table_pages().
 */
int s2_sizing_pool_bytes(const struct s2_sizing_cfg *cfg, const struct s2_sizing_region *r,
			 size_t n, unsigned nr_vcpus, uint64_t *bytes) S2_MUST_CHECK;

/*
 * The geometry of @kvm into *@out. Returns 0, or -EINVAL (NULL arguments).
 */
int kvm_sizing_cfg(const struct kvm *kvm, struct s2_sizing_cfg *out);

/*
 * The same count as constant expressions, for pools sized at build time.
 * PS, BPL, LEVELS: the geometry (S2_SIZING_GEOM_* below name the usual ones);
 * a region is GPA, SIZE and MINL, its smallest leaf level (the macros do not
 * validate: give what s2_sizing_table_pages() would accept).
 *
 * S2_SIZING_REGION_PAGES(geometry, region) counts one region alone. For
 * several regions listed in ascending gpa order, the exact total is the sum
 * of their S2_SIZING_REGION_PAGES() minus S2_SIZING_SHARED_PAGES() of each
 * pair of neighbours in the list (the tables a region shares with the one
 * before it: two regions can share a table only at the end of one and the
 * start of the next, and a region whose smallest leaf is larger than a
 * table's entries covers whole tables of that level, so regions farther
 * apart never share one). The sum alone is never under.
 */
#define S2_SIZING_GEOM_4K(levels) 12, 9, (levels)
#define S2_SIZING_GEOM_16K(levels) 14, 11, (levels)
#define S2_SIZING_GEOM_64K(levels) 16, 13, (levels)

#define S2__SZ_SHR(x, s) ((s) >= 64 ? 0 : (uint64_t)(x) >> ((s)&63))
/* Tables of level L (holding level-L entries) region (G, S, M) touches. */
#define S2__SZ_LVL(PS, BPL, LV, L, G, S, M)                                           \
	((L) < (LV) && (M) <= (L) ? S2__SZ_SHR((G) + (S)-1, (PS) + (L) * (BPL)) -     \
					    S2__SZ_SHR((G), (PS) + (L) * (BPL)) + 1 : \
				    0)
#define S2__SZ_REGION(PS, BPL, LV, G, S, M)                                          \
	(S2__SZ_LVL(PS, BPL, LV, 1, G, S, M) + S2__SZ_LVL(PS, BPL, LV, 2, G, S, M) + \
	 S2__SZ_LVL(PS, BPL, LV, 3, G, S, M) + S2__SZ_LVL(PS, BPL, LV, 4, G, S, M))
/* 1 when the level-L table holding A's last byte is also B's first. */
#define S2__SZ_SHL(PS, BPL, LV, L, AG, AS, AM, BG, BM)                    \
	((L) < (LV) && (AM) <= (L) && (BM) <= (L) &&                      \
			 S2__SZ_SHR((AG) + (AS)-1, (PS) + (L) * (BPL)) == \
				 S2__SZ_SHR((BG), (PS) + (L) * (BPL)) ?   \
		 1 :                                                      \
		 0)
#define S2__SZ_SHARED(PS, BPL, LV, AG, AS, AM, BG, BM)    \
	(S2__SZ_SHL(PS, BPL, LV, 1, AG, AS, AM, BG, BM) + \
	 S2__SZ_SHL(PS, BPL, LV, 2, AG, AS, AM, BG, BM) + \
	 S2__SZ_SHL(PS, BPL, LV, 3, AG, AS, AM, BG, BM) + \
	 S2__SZ_SHL(PS, BPL, LV, 4, AG, AS, AM, BG, BM))
/* The extra level of indirection expands S2_SIZING_GEOM_*() into three
 * arguments. */
#define S2_SIZING_REGION_PAGES(geom, gpa, size, min_level) \
	S2__SZ_REGION_X(geom, gpa, size, min_level)
#define S2__SZ_REGION_X(...) S2__SZ_REGION(__VA_ARGS__)
#define S2_SIZING_SHARED_PAGES(geom, a_gpa, a_size, a_min, b_gpa, b_min) \
	S2__SZ_SHARED_X(geom, a_gpa, a_size, a_min, b_gpa, b_min)
#define S2__SZ_SHARED_X(...) S2__SZ_SHARED(__VA_ARGS__)

#endif
