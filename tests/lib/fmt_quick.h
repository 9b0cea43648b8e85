/* SPDX-License-Identifier: MIT */
/*
 * The quick tests of a format's level-1 entries (fmt/defaults.h:
 * FMT_LEAF1_BITS, FMT_TRACKED1_MASK and FMT_TRACKED1_VALUE, which the zap of
 * a whole leaf table takes instead of the full tests) checked against the
 * format's own fmt_is_present() and fmt_is_access_tracked(): a value that
 * passes one is what it claims, whatever its other bits are (random), and
 * the non-present value, the frozen value (with a table address, as the
 * free list links them) and MMIO values (random gfns) pass neither.
 * Included by tests/test_fmt_<f>.c after the format's fmt.h.
 */
#ifndef S2MMU_TESTS_FMT_QUICK_H
#define S2MMU_TESTS_FMT_QUICK_H

static inline bool quick_leaf1(s2_pte_t e)
{
	const s2_pte_t m = FMT_LEAF1_BITS;

	return m && (e & m) == m;
}

static inline bool quick_tracked1(s2_pte_t e)
{
	const s2_pte_t m = FMT_TRACKED1_MASK, v = FMT_TRACKED1_VALUE;

	return m && (e & m) == v;
}

static inline void check_quick_tests(const struct s2_fmt_cfg *c)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;

	assert_false(quick_leaf1(fmt_nonpresent(c)) || quick_tracked1(fmt_nonpresent(c)));
	for (unsigned i = 0; i < 100000; i++) {
		s2_pte_t e, frozen;

		x ^= x << 13; /* xorshift64 */
		x ^= x >> 7;
		x ^= x << 17;
		if (FMT_LEAF1_BITS) {
			e = x | FMT_LEAF1_BITS;
			if (!fmt_is_present(c, e, 1))
				fail_msg("%#llx passes FMT_LEAF1_BITS, not present",
					 (unsigned long long)e);
		}
		if (FMT_TRACKED1_MASK) {
			e = (x & ~(s2_pte_t)FMT_TRACKED1_MASK) | FMT_TRACKED1_VALUE;
			if (!fmt_is_access_tracked(c, e, 1))
				fail_msg("%#llx passes FMT_TRACKED1_*, not tracked",
					 (unsigned long long)e);
		}
		e = fmt_make_mmio(c, x);
		frozen = FMT_FROZEN | (x & 0x000ffffffffff000ull); /* a table address */
		if (quick_leaf1(e) || quick_tracked1(e) || quick_leaf1(frozen) ||
		    quick_tracked1(frozen))
			fail_msg("an MMIO (%#llx) or frozen (%#llx) value passes a quick test",
				 (unsigned long long)e, (unsigned long long)frozen);
	}
}

#endif
