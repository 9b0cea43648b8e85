/* SPDX-License-Identifier: MIT */
/* Helpers shared by the decoders in decode/ (not public). */
#ifndef S2_DECODE_COMMON_H
#define S2_DECODE_COMMON_H

#include "s2mmu/decode.h"

/* The low @size bytes set (size 8 or more: all). */
static inline uint64_t s2_dec_mask(unsigned size)
{
	return size >= 8 ? ~0ull : (1ull << (size * 8)) - 1;
}

/* @v's low @bits bits, sign-extended to 64. */
static inline int64_t s2_dec_sext(uint64_t v, unsigned bits)
{
	uint64_t sign = 1ull << (bits - 1);

	v &= bits >= 64 ? ~0ull : (1ull << bits) - 1;
	return (int64_t)((v ^ sign) - sign);
}

/* A fresh description: nothing transferred, no base, no index. */
static inline void s2_dec_init(struct s2_insn *d)
{
	*d = (struct s2_insn){ .reg = S2_REG_NONE,
			       .reg2 = S2_REG_NONE,
			       .status = S2_REG_NONE,
			       .base = S2_REG_NONE,
			       .index = S2_REG_NONE,
			       .count = 1,
			       .addr_size = 8 };
}

#endif
