// SPDX-License-Identifier: MIT
/*
 * Worst-case table pages (include/s2mmu/sizing.h has the argument).
 *
 * For each level L below the root, the tables of level L are the aligned
 * blocks of 2^(page_shift + L * bits_per_level) bytes that touch a region
 * whose smallest leaf level is <= L. Regions are disjoint, so the blocks a
 * region touches are a run [first, last] and two runs meet, if at all, only
 * where an earlier region's last block is a later region's first: a block is
 * counted by the lowest region touching it. Quadratic in the number of
 * regions, with no sorting and no memory, so it also runs freestanding on
 * the embedder's own list.
 */
#include "core/kvm_internal.h"
#include "s2mmu/errno.h"
#include "s2mmu/sizing.h"

static bool sizing_cfg_ok(const struct s2_sizing_cfg *c)
{
	if (c->page_shift < 12 || c->page_shift > 16)
		return false;
	if (c->bits_per_level < 1 || c->bits_per_level > 13)
		return false;
	if (c->levels < 1 || c->levels > S2_MAX_LEVELS)
		return false;
	if (c->gpa_bits > 64 || c->gpa_bits <= c->page_shift + (c->levels - 1) * c->bits_per_level)
		return false;
	return c->max_leaf_level >= 1 && c->max_leaf_level <= c->levels;
}

static unsigned level_shift(const struct s2_sizing_cfg *c, unsigned level)
{
	return c->page_shift + (level - 1) * c->bits_per_level;
}

/* Smallest leaf level @r may use, or 0 when it cannot be mapped. */
static unsigned region_min_level(const struct s2_sizing_cfg *c, const struct s2_sizing_region *r)
{
	unsigned mask = r->leaf_levels, sh;
	uint64_t end;

	if ((mask & 1) || (mask >> (c->levels + 1)))
		return 0;
	mask &= (2u << c->max_leaf_level) - 1;
	if (!mask)
		return 0;
	for (unsigned l = 1; l <= c->levels; l++) {
		if (!(mask & S2_SIZING_LEAF(l)))
			continue;
		sh = level_shift(c, l);
		end = r->gpa + r->size;
		if (!r->size || end < r->gpa)
			return 0;
		if (c->gpa_bits < 64 && end > (1ull << c->gpa_bits))
			return 0;
		if ((r->gpa | r->size) & ((1ull << sh) - 1))
			return 0;
		return l;
	}
	return 0;
}

static bool regions_overlap(const struct s2_sizing_region *a, const struct s2_sizing_region *b)
{
	return a->gpa < b->gpa + b->size && b->gpa < a->gpa + a->size;
}

int s2_sizing_table_pages(const struct s2_sizing_cfg *cfg, const struct s2_sizing_region *r,
			  size_t n, uint64_t *pages)
{
	uint64_t total = 0;

	if (!cfg || !pages || (n && !r) || !sizing_cfg_ok(cfg))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!region_min_level(cfg, &r[i]))
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (regions_overlap(&r[i], &r[j]))
				return -EINVAL;
	}
	for (unsigned l = 1; l < cfg->levels; l++) {
		/* A level-l table spans one entry of level l + 1. */
		unsigned sh = level_shift(cfg, l + 1);

		for (size_t i = 0; i < n; i++) {
			uint64_t first = r[i].gpa >> sh, last = (r[i].gpa + r[i].size - 1) >> sh;

			if (region_min_level(cfg, &r[i]) > l)
				continue;
			total += last - first + 1;
			for (size_t j = 0; j < n; j++) {
				if (r[j].gpa >= r[i].gpa || region_min_level(cfg, &r[j]) > l)
					continue;
				if ((r[j].gpa + r[j].size - 1) >> sh == first) {
					total--;
					break;
				}
			}
		}
	}
	*pages = total;
	return 0;
}

int s2_sizing_pool_bytes(const struct s2_sizing_cfg *cfg, const struct s2_sizing_region *r,
			 size_t n, unsigned nr_vcpus, uint64_t *bytes)
{
	uint64_t pages;
	int ret;

	if (!bytes)
		return -EINVAL;
	ret = s2_sizing_table_pages(cfg, r, n, &pages);
	if (ret)
		return ret;
	pages += (uint64_t)nr_vcpus * (cfg->levels - 1);
	*bytes = cfg->root_bytes + (pages << cfg->page_shift);
	return 0;
}

int kvm_sizing_cfg(const struct kvm *kvm, struct s2_sizing_cfg *out)
{
	const struct s2_fmt_cfg *c;

	if (!kvm || !out)
		return -EINVAL;
	c = kvm_fmt_cfg(kvm);
	if (!c)
		return -EINVAL;
	*out = (struct s2_sizing_cfg){ .page_shift = c->page_shift,
				       .bits_per_level = c->bits_per_level,
				       .levels = c->levels,
				       .gpa_bits = c->gpa_bits,
				       /* the VM's, after the build's and
					  kvm_vm_params' clamps */
				       .max_leaf_level = kvm->max_leaf_level,
				       .root_bytes = s2_root_alloc_bytes(c) };
	return 0;
}
