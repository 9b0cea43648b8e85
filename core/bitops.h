/* SPDX-License-Identifier: MIT */
/*
 * Bit scans on 64-bit words. The compiler's builtins are single instructions
 * on x86_64 and aarch64, but on riscv64 without Zbb gcc turns them into calls
 * to libgcc (__ctzdi2, __clzdi2), which a bare-metal embedder may not have
 * (Debian's cross libgcc is hard-float and does not link with soft-float
 * objects). There the library uses its own.
 */
#ifndef S2MMU_CORE_BITOPS_H
#define S2MMU_CORE_BITOPS_H

#include <stdint.h>

/* Trailing zeros of a nonzero @x, without the builtin. */
static inline unsigned s2_ctz64_soft(uint64_t x)
{
	unsigned n = 0;

	for (unsigned s = 32; s; s >>= 1) {
		if (!(x & ((1ull << s) - 1))) {
			n += s;
			x >>= s;
		}
	}
	return n;
}

/* Leading zeros of a nonzero @x, without the builtin. */
static inline unsigned s2_clz64_soft(uint64_t x)
{
	unsigned n = 0;

	for (unsigned s = 32; s; s >>= 1) {
		if (!(x >> (64 - s))) {
			n += s;
			x <<= s;
		}
	}
	return n;
}

#if defined(__riscv) && !defined(__riscv_zbb)
static inline unsigned s2_ctz64(uint64_t x)
{
	return s2_ctz64_soft(x);
}

static inline unsigned s2_clz64(uint64_t x)
{
	return s2_clz64_soft(x);
}
#else
static inline unsigned s2_ctz64(uint64_t x)
{
	return (unsigned)__builtin_ctzll(x);
}

static inline unsigned s2_clz64(uint64_t x)
{
	return (unsigned)__builtin_clzll(x);
}
#endif

#endif
