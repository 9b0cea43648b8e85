// SPDX-License-Identifier: MIT
/*
 * Worst-case table pages (core/sizing.c) against real mappings, once per
 * format (and, on arm64, per granule): each layout of regions becomes one
 * memslot per region, its pages or blocks are faulted, and the VM's own
 * count of table pages (kvm_get_stats' cur_table_pages, cross-checked with
 * the hosted env's page counter) must never exceed the figure, and must
 * equal it when every page is faulted at the region's smallest leaf level,
 * which is the worst case.
 *
 * Mutations run (each made the named tests fail, then was reverted):
 *  - s2_sizing_table_pages() without the shared-block subtraction:
 *    straddle, random (over by the shared tables);
 *  - the subtraction without its `break` (a block shared by three regions
 *    taken off twice): straddle, random (under, even wrapping);
 *  - the level loop stopping one level early: straddle, random (under);
 *  - region_min_level() answering max_leaf_level: straddle, random (under);
 *  - the overlap check dropped: bad_input;
 *  - S2__SZ_LVL() counting from the region's start block only: the
 *    _Static_assert above stops the build;
 *  - S2__SZ_SHL() comparing the start blocks of both regions: macros.
 */
#include <stdlib.h>
#include <string.h>

#include "core/kvm_internal.h"
#include "s2mmu/sizing.h"
#include "tests/lib/testlib.h"

#ifndef TEST_FMT
#error "build with -DTEST_FMT=S2_FMT_..."
#endif

#define HVA_OFF (1ull << 44) /* aligned to every leaf size used here */
#define GPA_LIMIT (1ull << 46)
#define MAXR 12

/* Build-time use: a pool array sized by a constant expression. A region
 * [1 GiB - 8 KiB, 1 GiB + 8 KiB) of 4 KiB leaves on 4-level 4K tables
 * touches two 2 MiB blocks (two level-1 tables), two 1 GiB blocks (two
 * level-2 tables) and one 512 GiB block (one level-3 table). */
static char build_time_pool[S2_SIZING_REGION_PAGES(S2_SIZING_GEOM_4K(4), (1ull << 30) - 0x2000,
						   0x4000, 1)];
_Static_assert(sizeof(build_time_pool) == 5, "one region across 1 GiB");
/* Two neighbours sharing the 2 MiB block, the 1 GiB and the 512 GiB table
 * they both touch: 3 + 3 - 3. */
_Static_assert(S2_SIZING_REGION_PAGES(S2_SIZING_GEOM_4K(4), 0x1000, 0x1000, 1) +
			       S2_SIZING_REGION_PAGES(S2_SIZING_GEOM_4K(4), 0x3000, 0x1000, 1) -
			       S2_SIZING_SHARED_PAGES(S2_SIZING_GEOM_4K(4), 0x1000, 0x1000, 1,
						      0x3000, 1) ==
		       3,
	       "two regions in one 2 MiB block");

struct geom {
	unsigned granule, gpa_bits;
};

struct layout {
	struct s2_sizing_region r[MAXR];
	unsigned n;
};

static struct tvm T;
static unsigned seed = 12345;

static unsigned rnd(unsigned n)
{
	return (unsigned)(rand_r(&seed) % n);
}

static uint64_t rnd64(uint64_t n)
{
	uint64_t x = ((uint64_t)rand_r(&seed) << 31) ^ (uint64_t)rand_r(&seed);

	return n ? x % n : 0;
}

static unsigned geoms(struct geom *g)
{
	struct kvm_vm_params p = t_default_params(TEST_FMT);
	unsigned n = 0;

	g[n++] = (struct geom){ p.granule, p.gpa_bits };
	if (TEST_FMT == S2_FMT_ARM64_S2) {
		g[n++] = (struct geom){ 16384, 47 };
		g[n++] = (struct geom){ 65536, 42 };
		g[n++] = (struct geom){ 4096, 40 }; /* three levels, two root pages */
	}
	return n;
}

static void vm_up(const struct geom *g, struct s2_sizing_cfg *cfg)
{
	struct kvm_vm_params p = t_default_params(TEST_FMT);

	p.granule = g->granule;
	p.gpa_bits = g->gpa_bits;
	t_vm_init(&T, TEST_FMT, &p);
	assert_int_equal(kvm_sizing_cfg(T.kvm, cfg), 0);
}

static uint64_t lsz(const struct s2_sizing_cfg *c, unsigned l)
{
	return 1ull << (c->page_shift + (l - 1) * c->bits_per_level);
}

static unsigned min_level(const struct s2_sizing_region *r)
{
	return (unsigned)__builtin_ctz(r->leaf_levels);
}

/* Largest smallest-leaf the tests use: blocks of at most 1 GiB. */
static unsigned top_level(const struct s2_sizing_cfg *c)
{
	unsigned l = c->max_leaf_level;

	while (l > 1 && lsz(c, l) > (1ull << 30))
		l--;
	return l;
}

static void add_slots(const struct s2_sizing_cfg *c, const struct layout *L)
{
	(void)c;
	for (unsigned i = 0; i < L->n; i++)
		t_slot(&T, i, L->r[i].gpa >> 12, L->r[i].size >> 12, L->r[i].gpa + HVA_OFF, 0);
}

static void fault_at(gpa_t gpa, int host_level)
{
	int ret;

	T.h.host_level = host_level;
	ret = kvm_tdp_page_fault(T.vcpu, gpa, S2_ACC_READ | S2_ACC_WRITE);
	assert_true(ret == RET_PF_FIXED || ret == RET_PF_SPURIOUS);
}

/* Every block of every region at its smallest leaf: the worst case. */
static void fault_worst(const struct s2_sizing_cfg *c, const struct layout *L)
{
	for (unsigned i = 0; i < L->n; i++) {
		unsigned m = min_level(&L->r[i]);

		for (uint64_t off = 0; off < L->r[i].size; off += lsz(c, m))
			fault_at(L->r[i].gpa + off, (int)m);
	}
}

/* Random pages with random host levels from the region's smallest up. */
static void fault_mixed(const struct s2_sizing_cfg *c, const struct layout *L, unsigned nr)
{
	for (unsigned k = 0; k < nr && L->n; k++) {
		const struct s2_sizing_region *r = &L->r[rnd(L->n)];
		unsigned m = min_level(r), hl = m + rnd(c->max_leaf_level - m + 1);

		fault_at(r->gpa + (rnd64(r->size >> c->page_shift) << c->page_shift), (int)hl);
	}
}

/* Table pages the VM holds, in granules, checked against the env's count:
 * root + tables + the vcpu's memory cache. */
static uint64_t tables_now(const struct s2_sizing_cfg *c)
{
	uint64_t per = (1ull << c->page_shift) >> 12, tables = t_stats(T.kvm).cur_table_pages;

	assert_int_equal(tables % per, 0);
	assert_int_equal(s2_hosted_pages_in_use(&T.h),
			 c->root_bytes / 4096 + tables + T.vcpu->cache.nr * per);
	return tables / per;
}

static uint64_t figure(const struct s2_sizing_cfg *c, const struct layout *L)
{
	struct s2_sizing_region shuffled[MAXR];
	uint64_t pages = ~0ull, again = ~0ull;

	assert_int_equal(s2_sizing_table_pages(c, L->r, L->n, &pages), 0);
	/* The order of the list does not matter. */
	memcpy(shuffled, L->r, sizeof(shuffled));
	for (unsigned i = L->n; i > 1; i--) {
		unsigned j = rnd(i);
		struct s2_sizing_region t = shuffled[i - 1];

		shuffled[i - 1] = shuffled[j];
		shuffled[j] = t;
	}
	assert_int_equal(s2_sizing_table_pages(c, shuffled, L->n, &again), 0);
	assert_int_equal(again, pages);
	return pages;
}

/* The worst case reaches the figure exactly; a mix of leaves and a partial
 * fill stay at or below it, also once the worst fill is added on top. */
static void check_layout(const struct geom *g, const struct layout *L)
{
	struct s2_sizing_cfg c;
	uint64_t want;

	vm_up(g, &c);
	want = figure(&c, L);
	add_slots(&c, L);
	fault_worst(&c, L);
	assert_int_equal(tables_now(&c), want);
	t_vm_fini(&T);

	vm_up(g, &c);
	add_slots(&c, L);
	fault_mixed(&c, L, 64);
	assert_true(tables_now(&c) <= want);
	fault_worst(&c, L);
	assert_true(tables_now(&c) <= want);
	t_vm_fini(&T);
}

static void add_region(const struct s2_sizing_cfg *c, struct layout *L, gpa_t gpa, uint64_t blocks,
		       unsigned m)
{
	unsigned mask = S2_SIZING_LEAF(m);

	/* Larger leaves allowed too, sometimes: they do not change the worst
	 * case. */
	for (unsigned l = m + 1; l <= c->max_leaf_level; l++)
		if (rnd(2))
			mask |= S2_SIZING_LEAF(l);
	assert_true(L->n < MAXR);
	L->r[L->n++] = (struct s2_sizing_region){ gpa, blocks * lsz(c, m), mask };
}

/*
 * A region across a boundary of every level's tables, with every smallest
 * leaf the boundary allows: misaligned by a block of that leaf on each side.
 */
static void test_straddle(void **state)
{
	struct geom gs[4];
	unsigned ng = geoms(gs);

	(void)state;
	for (unsigned gi = 0; gi < ng; gi++) {
		struct s2_sizing_cfg c;

		vm_up(&gs[gi], &c);
		t_vm_fini(&T);
		for (unsigned l = 1; l < c.levels; l++) {
			uint64_t span = 1ull << (c.page_shift + l * c.bits_per_level);
			gpa_t b = span * (1 + rnd(3));

			if (b + span > GPA_LIMIT || b + span > (1ull << c.gpa_bits))
				continue;
			for (unsigned m = 1; m <= top_level(&c) && m <= l; m++) {
				struct layout L = { .n = 0 };

				add_region(&c, &L, b - lsz(&c, m), 2, m);
				check_layout(&gs[gi], &L);
				/* And a run of regions up to, and from, the boundary. */
				L.n = 0;
				add_region(&c, &L, b - 2 * lsz(&c, m), 2, m);
				add_region(&c, &L, b, 1, m);
				add_region(&c, &L, b + 2 * lsz(&c, m), 1, m);
				check_layout(&gs[gi], &L);
			}
		}
	}
}

/* Random layouts around random table boundaries, regions of mixed smallest
 * leaves, adjacent or with gaps. */
static void test_random(void **state)
{
	struct geom gs[4];
	unsigned ng = geoms(gs);

	(void)state;
	for (unsigned gi = 0; gi < ng; gi++) {
		struct s2_sizing_cfg c;

		vm_up(&gs[gi], &c);
		t_vm_fini(&T);
		for (unsigned iter = 0; iter < 16; iter++) {
			struct layout L = { .n = 0 };
			unsigned lv = 1 + rnd(c.levels - 1), top = top_level(&c);
			uint64_t span = 1ull << (c.page_shift + lv * c.bits_per_level);
			uint64_t lim =
				GPA_LIMIT < (1ull << c.gpa_bits) ? GPA_LIMIT : (1ull << c.gpa_bits);
			gpa_t cur = span * (1 + rnd64(lim / span - 2));

			if (cur > 4 * lsz(&c, top))
				cur -= rnd64(4) * lsz(&c, top);
			for (unsigned k = 1 + rnd(MAXR - 1); k; k--) {
				unsigned m = 1 + rnd(top);
				uint64_t bs = lsz(&c, m), blocks = 1 + rnd(m == 1 ? 24 : 3);
				gpa_t g = (cur + (rnd(2) ? 0 : rnd64(3) * lsz(&c, 1)) + bs - 1) &
					  ~(bs - 1);

				if (g + blocks * bs > lim)
					break;
				add_region(&c, &L, g, blocks, m);
				cur = g + blocks * bs;
			}
			check_layout(&gs[gi], &L);
		}
	}
}

/*
 * Adversarial sharing: many one-page regions in one 2 MiB block (a table
 * shared by all of them, counted once), a huge-leaf region between two
 * small ones (a separator: they share no table), and small regions on both
 * sides of a top-level boundary.
 */
static void test_adversarial(void **state)
{
	struct geom gs[4];
	unsigned ng = geoms(gs);

	(void)state;
	for (unsigned gi = 0; gi < ng; gi++) {
		struct s2_sizing_cfg c;
		struct layout L = { .n = 0 };
		uint64_t b2;

		vm_up(&gs[gi], &c);
		t_vm_fini(&T);
		b2 = lsz(&c, 2);
		for (unsigned i = 0; i < 8; i++)
			add_region(&c, &L, 5 * b2 + i * 2 * lsz(&c, 1), 1, 1);
		check_layout(&gs[gi], &L);

		if (top_level(&c) >= 2) {
			L.n = 0;
			add_region(&c, &L, 8 * b2 - lsz(&c, 1), 1, 1);
			add_region(&c, &L, 8 * b2, 2, 2);
			add_region(&c, &L, 10 * b2, 3, 1);
			add_region(&c, &L, 10 * b2 + 4 * lsz(&c, 1), 1, 1);
			check_layout(&gs[gi], &L);
		}

		if (c.levels >= 2) {
			uint64_t top = 1ull << (c.page_shift + (c.levels - 1) * c.bits_per_level);

			if (2 * top <= (1ull << c.gpa_bits) && 2 * top <= GPA_LIMIT) {
				L.n = 0;
				add_region(&c, &L, top - lsz(&c, 1), 1, 1);
				add_region(&c, &L, top, 1, 1);
				add_region(&c, &L, top + 3 * lsz(&c, 1), 2, 1);
				check_layout(&gs[gi], &L);
			}
		}
	}
}

/* The constant-expression form equals the function on sorted random
 * layouts: the regions' sum minus what neighbours share. */
static void test_macros(void **state)
{
	struct geom gs[4];
	unsigned ng = geoms(gs);

	(void)state;
	assert_int_equal(sizeof(build_time_pool), 5);
	for (unsigned gi = 0; gi < ng; gi++) {
		struct s2_sizing_cfg c;

		vm_up(&gs[gi], &c);
		t_vm_fini(&T);
		for (unsigned iter = 0; iter < 200; iter++) {
			struct layout L = { .n = 0 };
			gpa_t cur =
				rnd64(1ull << (c.gpa_bits - 2)) & ~(lsz(&c, c.max_leaf_level) - 1);
			uint64_t sum = 0, pages;

			for (unsigned k = 1 + rnd(MAXR - 1); k; k--) {
				unsigned m = 1 + rnd(c.max_leaf_level);
				uint64_t bs = lsz(&c, m);
				gpa_t g =
					(cur + rnd64(3) * lsz(&c, 1 + rnd(m)) + bs - 1) & ~(bs - 1);

				if (g + 4 * bs > (1ull << c.gpa_bits))
					break;
				add_region(&c, &L, g, 1 + rnd(4), m);
				cur = L.r[L.n - 1].gpa + L.r[L.n - 1].size;
			}
			for (unsigned i = 0; i < L.n; i++) {
				const struct s2_sizing_region *r = &L.r[i],
							      *p = i ? &L.r[i - 1] : r;

				sum += S2__SZ_REGION(c.page_shift, c.bits_per_level, c.levels,
						     r->gpa, r->size, min_level(r));
				if (i)
					sum -= S2__SZ_SHARED(c.page_shift, c.bits_per_level,
							     c.levels, p->gpa, p->size,
							     min_level(p), r->gpa, min_level(r));
			}
			assert_int_equal(s2_sizing_table_pages(&c, L.r, L.n, &pages), 0);
			assert_int_equal(sum, pages);
		}
	}
}

/* Bad input gets -EINVAL and leaves *pages alone. */
static void test_bad_input(void **state)
{
	struct s2_sizing_cfg c, bad;
	struct s2_sizing_region r[2] = { { 0x200000, 0x200000, S2_SIZING_LEAF(1) },
					 { 0x600000, 0x1000, S2_SIZING_LEAF(1) } };
	uint64_t pages = 77, bytes = 77, tmp;

	(void)state;
	vm_up(&(struct geom){ t_default_params(TEST_FMT).granule,
			      t_default_params(TEST_FMT).gpa_bits },
	      &c);
	t_vm_fini(&T);
	assert_int_equal(s2_sizing_table_pages(&c, r, 2, &pages), 0);
	assert_int_equal(s2_sizing_table_pages(&c, r, 0, &pages), 0);
	assert_int_equal(pages, 0);
	pages = 77;
#define BAD(expr) assert_int_equal((expr), -EINVAL)
	BAD(s2_sizing_table_pages(NULL, r, 2, &pages));
	BAD(s2_sizing_table_pages(&c, NULL, 2, &pages));
	BAD(s2_sizing_table_pages(&c, r, 2, NULL));
	bad = c, bad.page_shift = 13;
	BAD(s2_sizing_table_pages(&bad, r, 2, &pages));
	bad = c, bad.levels = 0;
	BAD(s2_sizing_table_pages(&bad, r, 2, &pages));
	bad = c, bad.gpa_bits = 65;
	BAD(s2_sizing_table_pages(&bad, r, 2, &pages));
	bad = c, bad.max_leaf_level = c.levels + 1;
	BAD(s2_sizing_table_pages(&bad, r, 2, &pages));
	r[1].size = 0;
	BAD(s2_sizing_table_pages(&c, r, 2, &pages));
	r[1].size = 0x1000, r[1].gpa = (1ull << c.gpa_bits) - 0x1000;
	assert_int_equal(s2_sizing_table_pages(&c, r, 2, &tmp), 0);
	r[1].size = 0x2000; /* past the gpa width */
	BAD(s2_sizing_table_pages(&c, r, 2, &pages));
	r[1].gpa = 0x600000, r[1].size = 0x1000;
	r[1].leaf_levels = 1; /* bit 0 */
	BAD(s2_sizing_table_pages(&c, r, 2, &pages));
	r[1].leaf_levels = S2_SIZING_LEAF(c.levels + 1);
	BAD(s2_sizing_table_pages(&c, r, 2, &pages));
	r[1].leaf_levels = 0;
	BAD(s2_sizing_table_pages(&c, r, 2, &pages));
	r[1].leaf_levels = S2_SIZING_LEAF(2); /* 0x1000 not a 2 MiB block */
	BAD(s2_sizing_table_pages(&c, r, 2, &pages));
	if (c.max_leaf_level < c.levels) {
		r[1].leaf_levels = S2_SIZING_LEAF(c.levels); /* above max_leaf_level only */
		BAD(s2_sizing_table_pages(&c, r, 2, &pages));
	}
	r[1].leaf_levels = S2_SIZING_LEAF(1), r[1].gpa = 0x3ff000; /* overlaps r[0] */
	BAD(s2_sizing_table_pages(&c, r, 2, &pages));
	BAD(s2_sizing_pool_bytes(&c, r, 2, 1, &bytes));
	BAD(s2_sizing_pool_bytes(&c, r, 1, 1, NULL));
	BAD(kvm_sizing_cfg(NULL, &c));
#undef BAD
	assert_int_equal(pages, 77);
	assert_int_equal(bytes, 77);
	/* The pool: root, tables, and (levels - 1) pages per vcpu. */
	assert_int_equal(s2_sizing_table_pages(&c, r, 1, &pages), 0);
	assert_int_equal(s2_sizing_pool_bytes(&c, r, 1, 3, &bytes), 0);
	assert_int_equal(bytes, c.root_bytes + ((pages + 3 * (c.levels - 1)) << c.page_shift));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_straddle),    cmocka_unit_test(test_random),
		cmocka_unit_test(test_adversarial), cmocka_unit_test(test_macros),
		cmocka_unit_test(test_bad_input),
	};

	return cmocka_run_group_tests_name("sizing " TEST_FMT_NAME, tests, NULL, NULL);
}
