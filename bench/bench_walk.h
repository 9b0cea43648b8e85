/* SPDX-License-Identifier: MIT */
/*
 * What bench_mmu and bench_fault (and bench_dirty's format list) share: the
 * formats every populate-style benchmark measures, and the naive walk that
 * is their limit, one copy so that every row named naive_walk times the
 * same code.
 */
#ifndef S2MMU_BENCH_WALK_H
#define S2MMU_BENCH_WALK_H

#include "bench/bench_common.h"
#include "s2mmu/env-hosted.h"

/*
 * Every format, each at its 4-level configuration with a 48-bit gpa. arm64
 * runs with FEAT_S2FWB, as hosts since Armv8.4 do: without it every new leaf
 * owes a data-cache clean of the page it maps (an architectural cost of the
 * hardware, not of the format layer; hosted, it is a counter bump).
 */
static const struct bench_fmt {
	enum s2_fmt_id id;
	unsigned fmt_flags;
} bench_fmts[] = {
	{ S2_FMT_X86_EPT, 0 },
	{ S2_FMT_ARM64_S2, S2_FMTF_FWB },
	{ S2_FMT_RISCV_G, 0 },
	{ S2_FMT_X86_NPT, 0 },
};
#define BENCH_NR_FMTS (sizeof(bench_fmts) / sizeof(bench_fmts[0]))

/*
 * The naive walk: per page, a 4-level walk from the root of a radix tree,
 * installing missing 512-entry tables and the leaf with compare-and-exchange.
 * The least any correct lock-free install does. Its tables come from the
 * hosted environment's own table allocator (env/hosted/hosted.c: pages
 * zeroed when freed and kept for reuse, aligned_alloc and memset past
 * that), so a limit pays for a table what the library pays.
 */
#define BENCH_NAIVE_LEVELS 4
#define BENCH_NAIVE_ENTRIES 512
#define BENCH_NAIVE_TABLE (BENCH_NAIVE_ENTRIES * sizeof(uint64_t))
#define BENCH_NAIVE_PRESENT 0x7ull

static inline struct s2_hosted *bench_naive_env(void)
{
	static struct s2_hosted h;
	static bool init;

	if (!init) {
		s2_hosted_init(&h);
		init = true;
	}
	return &h;
}

static inline uint64_t *bench_naive_table(void)
{
	struct s2_hosted *h = bench_naive_env();
	hpa_t pa;
	uint64_t *t = h->ops.alloc_table(h->env.ctx, BENCH_NAIVE_TABLE, &pa);

	if (!t) {
		fprintf(stderr, "bench: no table page\n");
		exit(2);
	}
	return t;
}

static inline void bench_naive_table_free(uint64_t *t)
{
	struct s2_hosted *h = bench_naive_env();

	h->ops.free_table(h->env.ctx, t, (hpa_t)(uintptr_t)t, BENCH_NAIVE_TABLE);
}

static inline uint64_t *bench_naive_next(uint64_t e)
{
	return (uint64_t *)(uintptr_t)(e & ~0xfffull);
}

/* The naive walk from @root to the table of @leaf_level for @gfn, making
 * the tables on the way (each installed with compare-and-exchange). */
static inline uint64_t *bench_naive_descend(uint64_t *root, uint64_t gfn, int leaf_level)
{
	uint64_t *t = root;

	for (int level = BENCH_NAIVE_LEVELS; level > leaf_level; level--) {
		uint64_t *e = &t[(gfn >> (9 * (level - 1))) & (BENCH_NAIVE_ENTRIES - 1)];
		uint64_t v = __atomic_load_n(e, __ATOMIC_ACQUIRE);

		if (!v) {
			uint64_t *nt = bench_naive_table();
			uint64_t nv = (uint64_t)(uintptr_t)nt | BENCH_NAIVE_PRESENT;

			if (__atomic_compare_exchange_n(e, &v, nv, false, __ATOMIC_RELEASE,
							__ATOMIC_ACQUIRE))
				v = nv;
			else
				bench_naive_table_free(nt);
		}
		t = bench_naive_next(v);
	}
	return t;
}

/* Install a 4 KiB leaf for each of @n gfns from @gfn0, each walked from the
 * root. Returns the leaves installed. */
static inline uint64_t bench_naive_populate(uint64_t *root, uint64_t gfn0, uint64_t n,
					    uint64_t pfn0)
{
	uint64_t installed = 0;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t gfn = gfn0 + i, *t = bench_naive_descend(root, gfn, 1), old = 0;

		installed += __atomic_compare_exchange_n(&t[gfn & (BENCH_NAIVE_ENTRIES - 1)], &old,
							 ((pfn0 + i) << 12) | BENCH_NAIVE_PRESENT,
							 false, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
	}
	return installed;
}

static inline void bench_naive_free(uint64_t *t, int level)
{
	if (level > 1)
		for (unsigned i = 0; i < BENCH_NAIVE_ENTRIES; i++)
			if (t[i])
				bench_naive_free(bench_naive_next(t[i]), level - 1);
	bench_naive_table_free(t);
}

/*
 * The naive zap: the least work that removes every leaf and table of a
 * radix tree built by bench_naive_populate() (issue 16: the same work on the
 * same entries as a zap of 4 KiB leaves, in the same layout: 512-entry
 * tables, each from bench_naive_table()). Per leaf a plain (volatile: one
 * entry at a time, not vectorised) load, the present test, a plain store of
 * 0 and a count; each emptied table below the root is unlinked (its parent
 * entry zeroed) and chained through its first entry on *@free for
 * bench_naive_free_list(), outside the timing (the library frees its tables
 * after a grace period, also outside it). Returns the leaves removed.
 */
static inline uint64_t bench_naive_zap(uint64_t *t, int level, uint64_t **free)
{
	volatile uint64_t *v = t;
	uint64_t zapped = 0;

	if (level == 1) {
		for (unsigned i = 0; i < BENCH_NAIVE_ENTRIES; i++) {
			uint64_t x = v[i];

			if (x & BENCH_NAIVE_PRESENT) {
				v[i] = 0;
				zapped++;
			}
		}
		return zapped;
	}
	for (unsigned i = 0; i < BENCH_NAIVE_ENTRIES; i++) {
		uint64_t x = v[i], *child;

		if (!(x & BENCH_NAIVE_PRESENT))
			continue;
		child = bench_naive_next(x);
		zapped += bench_naive_zap(child, level - 1, free);
		v[i] = 0;
		child[0] = (uint64_t)(uintptr_t)*free;
		*free = child;
	}
	return zapped;
}

static inline void bench_naive_free_list(uint64_t *t)
{
	while (t) {
		uint64_t *next = (uint64_t *)(uintptr_t)t[0];

		bench_naive_table_free(t);
		t = next;
	}
}

/* The naive zap of a tree the naive walk just populated with @pages 4 KiB
 * leaves from @gfn0 (pfns from @pfn0): the zap alone timed, into @s. */
static inline void bench_naive_zap_measure(struct bench_samples *s, uint64_t gfn0, uint64_t pages,
					   uint64_t pfn0)
{
	uint64_t *root = bench_naive_table(), *free_list = NULL, t0, z;

	if (bench_naive_populate(root, gfn0, pages, pfn0) != pages) {
		fprintf(stderr, "bench: naive populate failed\n");
		exit(2);
	}
	t0 = bench_now_ns();
	z = bench_naive_zap(root, BENCH_NAIVE_LEVELS, &free_list);
	t0 = bench_now_ns() - t0;
	if (z != pages) {
		fprintf(stderr, "bench: naive zap removed %" PRIu64 " leaves\n", z);
		exit(2);
	}
	bench_naive_free_list(free_list);
	bench_naive_table_free(root);
	bench_add(s, t0, pages);
}

/*
 * The naive walk for huge leaves: @n leaves at @level (2: 2 MiB, 3: 1 GiB),
 * the i-th mapping gfn @gfn0 + i leaves and pfn @pfn0 + as much, each walked
 * from the root of the radix tree (levels BENCH_NAIVE_LEVELS down to
 * @level + 1, installing missing tables as above) and installed with
 * compare-and-exchange at @level. Returns the leaves installed.
 */
static inline uint64_t bench_naive_populate_at(uint64_t *root, uint64_t gfn0, uint64_t n,
					       uint64_t pfn0, int leaf_level)
{
	unsigned lshift = 9 * (unsigned)(leaf_level - 1);
	uint64_t installed = 0;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t gfn = gfn0 + (i << lshift),
			 *t = bench_naive_descend(root, gfn, leaf_level), old = 0;

		installed += __atomic_compare_exchange_n(
			&t[(gfn >> lshift) & (BENCH_NAIVE_ENTRIES - 1)], &old,
			((pfn0 + (i << lshift)) << 12) | BENCH_NAIVE_PRESENT | 0x80, false,
			__ATOMIC_RELEASE, __ATOMIC_RELAXED);
	}
	return installed;
}

/* Free a tree whose leaves are at @leaf_level (0x80: a huge leaf's size bit). */
static inline void bench_naive_free_at(uint64_t *t, int level, int leaf_level)
{
	if (level > leaf_level)
		for (unsigned i = 0; i < BENCH_NAIVE_ENTRIES; i++)
			if (t[i])
				bench_naive_free_at(bench_naive_next(t[i]), level - 1, leaf_level);
	bench_naive_table_free(t);
}

/* Time the naive walk over @pages gfns from @gfn0 (pfns from @pfn0) in
 * chunks of @chunk pages into a fresh tree (@c's chunks), and free it. */
static inline void bench_naive_walk(struct bench_chunks *c, uint64_t pages, uint64_t chunk,
				    uint64_t gfn0, uint64_t pfn0)
{
	uint64_t *root = bench_naive_table();
	uint64_t got = 0, total = 0;

	for (unsigned k = 0; k < c->n; k++) {
		uint64_t first = k * chunk;
		uint64_t n = pages - first < chunk ? pages - first : chunk;
		uint64_t t0 = bench_now_ns();

		got += bench_naive_populate(root, gfn0 + first, n, pfn0 + first);
		t0 = bench_now_ns() - t0;
		bench_chunks_note(c, k, t0);
		total += t0;
	}
	if (got != pages) {
		fprintf(stderr, "bench: naive walk installed %" PRIu64 " of %" PRIu64 "\n", got,
			pages);
		exit(2);
	}
	bench_add(&c->runs, total, pages);
	bench_naive_free(root, BENCH_NAIVE_LEVELS);
}

#endif
