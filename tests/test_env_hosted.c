// SPDX-License-Identifier: MIT
/*
 * The hosted environment's table pages (env/hosted/hosted.c): every page
 * alloc_table hands out is zeroed and aligned, whether it is fresh or one
 * that free_table kept for reuse (zeroed when freed), and the counters
 * balance. A table the library frees is not always empty (a collapsed
 * table still holds its leaves), so a page kept without zeroing would
 * reach the next table with entries in it.
 */
#include <stdlib.h>
#include <string.h>

#include "tests/lib/testlib.h"

#define PAGES 1500 /* more than the env keeps (1024) */

static void *alloc_page(struct s2_hosted *h, hpa_t *pa)
{
	void *p = h->ops.alloc_table(h->env.ctx, 4096, pa);

	assert_non_null(p);
	assert_int_equal((uintptr_t)p & 4095, 0);
	assert_int_equal(*pa, (hpa_t)(uintptr_t)p);
	assert_true(t_all_zero(p, 4096));
	return p;
}

/*
 * 1. Pages filled with entries, freed, then asked for again: zero every
 * time, also the ones reused. Catches: h_pages_put() keeping a page
 * without zeroing it, h_pages_get() leaving its link word in it.
 */
static void test_reused_pages_are_zero(void **state)
{
	static void *pages[PAGES];
	struct s2_hosted h;
	hpa_t pa;

	(void)state;
	s2_hosted_init(&h);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < PAGES; i++) {
			pages[i] = alloc_page(&h, &pa);
			memset(pages[i], 0xa5, 4096);
		}
		for (int i = 0; i < PAGES; i++)
			h.ops.free_table(h.env.ctx, pages[i], (hpa_t)(uintptr_t)pages[i], 4096);
	}
	assert_int_equal(h.table_allocs, 3 * PAGES);
	assert_int_equal(h.table_frees, 3 * PAGES);
	assert_int_equal(s2_hosted_pages_in_use(&h), 0);
	/* One page freed and taken at once: the most likely to be reused. */
	for (int i = 0; i < 64; i++) {
		void *p = alloc_page(&h, &pa);

		memset(p, 0xff, 4096);
		h.ops.free_table(h.env.ctx, p, pa, 4096);
	}
}

/*
 * 2. Larger tables (16 KiB and 64 KiB granules) never go through the 4 KiB
 * cache: aligned to their size, zero.
 */
static void test_large_tables(void **state)
{
	struct s2_hosted h;

	(void)state;
	s2_hosted_init(&h);
	for (size_t bytes = 16384; bytes <= 65536; bytes *= 4) {
		for (int i = 0; i < 8; i++) {
			hpa_t pa;
			void *p = h.ops.alloc_table(h.env.ctx, bytes, &pa);

			assert_non_null(p);
			assert_int_equal((uintptr_t)p & (bytes - 1), 0);
			assert_true(t_all_zero(p, bytes));
			memset(p, 0x5a, bytes);
			h.ops.free_table(h.env.ctx, p, pa, bytes);
		}
	}
	assert_int_equal(s2_hosted_pages_in_use(&h), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reused_pages_are_zero),
		cmocka_unit_test(test_large_tables),
	};

	return cmocka_run_group_tests_name("hosted env table pages", tests, NULL, NULL);
}
