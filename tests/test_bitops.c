// SPDX-License-Identifier: MIT
/*
 * The library's own bit scans (used where the builtins would call libgcc,
 * riscv64 without Zbb) agree with the compiler's on every single-bit word and
 * on pseudo-random words.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/bitops.h"

static void check(uint64_t x)
{
	assert_int_equal(s2_ctz64_soft(x), (unsigned)__builtin_ctzll(x));
	assert_int_equal(s2_clz64_soft(x), (unsigned)__builtin_clzll(x));
	assert_int_equal(s2_ctz64(x), (unsigned)__builtin_ctzll(x));
	assert_int_equal(s2_clz64(x), (unsigned)__builtin_clzll(x));
}

/* Every position of a lone bit, and of the lowest/highest bit of a word. */
static void test_single_and_edge_bits(void **state)
{
	(void)state;
	for (unsigned i = 0; i < 64; i++) {
		check(1ull << i);
		check((1ull << i) | (1ull << 63));
		check((1ull << i) | 1);
		check(~0ull << i);
	}
}

/* A million pseudo-random nonzero words. */
static void test_random_words(void **state)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;

	(void)state;
	for (unsigned i = 0; i < 1000000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		check(x >> (i % 64) ? x >> (i % 64) : 1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_and_edge_bits),
		cmocka_unit_test(test_random_words),
	};

	return cmocka_run_group_tests_name("bitops", tests, NULL, NULL);
}
