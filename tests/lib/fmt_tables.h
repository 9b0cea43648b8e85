/* SPDX-License-Identifier: MIT */
/*
 * Hand-built tables for the tests of one format (tests/test_fmt_<f>.c):
 * included after that format's fmt/<f>/fmt.h, whose fmt_is_present(),
 * fmt_make_table(), fmt_is_leaf() and fmt_table_hpa() it links tables with.
 * Every page is zeroed, aligned to its size and freed by tables_free().
 */
#ifndef S2MMU_TESTS_FMT_TABLES_H
#define S2MMU_TESTS_FMT_TABLES_H

#include <stdlib.h>
#include <string.h>

struct tables {
	void *pages[8];
	unsigned nr;
	uint64_t *root;
};

/* A zeroed block of @bytes (at least 64), aligned to its size. */
static inline void *zalloc_aligned(struct tables *t, size_t bytes)
{
	size_t sz = bytes < 64 ? 64 : bytes;
	void *p = aligned_alloc(sz, sz);

	assert_non_null(p);
	memset(p, 0, sz);
	assert_true(t->nr < 8);
	t->pages[t->nr++] = p;
	return p;
}

/* An empty root of the size @c asks (concatenated roots included). */
static inline void tables_init(struct tables *t, const struct s2_fmt_cfg *c)
{
	memset(t, 0, sizeof(*t));
	t->root = zalloc_aligned(t, s2_root_bytes(c));
}

static inline void tables_free(struct tables *t)
{
	for (unsigned i = 0; i < t->nr; i++)
		free(t->pages[i]);
	t->nr = 0;
}

static inline unsigned index_of(const struct s2_fmt_cfg *c, gpa_t gpa, int level)
{
	return (unsigned)((gpa >> s2_level_shift(c, level)) &
			  ((1ull << s2_level_bits(c, level)) - 1));
}

/* The entry at @level on @gpa's path, creating tables above it. */
static inline uint64_t *slot_at(const struct s2_fmt_cfg *c, struct tables *t, gpa_t gpa, int level)
{
	uint64_t *table = t->root;

	for (int l = c->levels; l > level; l--) {
		uint64_t *e = &table[index_of(c, gpa, l)];

		if (!fmt_is_present(c, *e, l)) {
			void *next = zalloc_aligned(t, s2_table_bytes(c));

			*e = fmt_make_table(c, l, (hpa_t)(uintptr_t)next);
			assert_true(fmt_is_present(c, *e, l));
			assert_false(fmt_is_leaf(c, *e, l));
		}
		table = (uint64_t *)(uintptr_t)fmt_table_hpa(c, *e, l);
	}
	return &table[index_of(c, gpa, level)];
}

#endif
