/* SPDX-License-Identifier: MIT */
/*
 * Reference G-stage walker. It follows the spec's numbered translation
 * steps (i counts down from LEVELS-1 to 0, the spec's numbering) with the
 * G-stage changes: the root index is two bits wider, the guest-physical
 * address must fit the widened width, and every access counts as U-mode.
 */
#include "riscv_walker.h"

#include <stddef.h>
#include <string.h>

#define BIT(n) (1ull << (n))
#define BITS(hi, lo) (((~0ull) >> (63 - (hi))) & ~(BIT(lo) - 1))

#define PTE_V BIT(0)
#define PTE_R BIT(1)
#define PTE_W BIT(2)
#define PTE_X BIT(3)
#define PTE_U BIT(4)
#define PTE_G BIT(5)
#define PTE_A BIT(6)
#define PTE_D BIT(7)
#define PTE_PPN BITS(53, 10)
#define PTE_RESERVED BITS(60, 54)
#define PTE_PBMT BITS(62, 61)
#define PTE_N BIT(63)

#define PAGESIZE 4096ull
#define PTESIZE 8ull

static int stop(struct ref_xlate *out, int fault, int level)
{
	out->fault = fault;
	out->level = level;
	return fault;
}

int ref_riscv_walk(uint64_t hgatp, unsigned ext, uint64_t gpa, struct ref_xlate *out)
{
	unsigned mode = (unsigned)(hgatp >> 60);
	uint64_t root_ppn = hgatp & BITS(43, 0);
	int levels, i;
	unsigned width;
	uint64_t a, pte = 0;

	memset(out, 0, sizeof(*out));
	switch (mode) {
	case 8: levels = 3; break;
	case 9: levels = 4; break;
	case 10: levels = 5; break;
	default: return stop(out, REF_FAULT_MISCONFIG, 0);
	}
	/* Bits 59:58 of hgatp are zero (WARL); the root is 16 KiB aligned. */
	if (hgatp & BITS(59, 58))
		return stop(out, REF_FAULT_RESERVED, 0);
	if (root_ppn & 3)
		return stop(out, REF_FAULT_MISCONFIG, 0);

	/* Sv39x4: 41 bits, Sv48x4: 50, Sv57x4: 59; higher bits must be 0. */
	width = 12 + 9 * (unsigned)levels + 2;
	if (gpa >> width)
		return stop(out, REF_FAULT_ADDR, levels);

	/* Step 1: a = hgatp.ppn * PAGESIZE, i = LEVELS - 1. */
	a = root_ppn * PAGESIZE;
	for (i = levels - 1;; i--) {
		unsigned shift = 12 + 9 * (unsigned)i;
		/* The root index takes the two extra bits of the x4 modes. */
		uint64_t vpn = (gpa >> shift) & (i == levels - 1 ? 0x7ff : 0x1ff);
		int level = i + 1;

		/* Step 2: pte = the entry at a + vpn[i] * PTESIZE. */
		pte = __atomic_load_n((const uint64_t *)(uintptr_t)(a + vpn * PTESIZE),
				      __ATOMIC_RELAXED);

		/* Step 3: V=0, W without R, or reserved bits or encodings. */
		if (!(pte & PTE_V))
			return stop(out, REF_FAULT_NOT_PRESENT, level);
		if ((pte & PTE_W) && !(pte & PTE_R))
			return stop(out, REF_FAULT_MISCONFIG, level);
		if (pte & (PTE_RESERVED | PTE_N))
			return stop(out, REF_FAULT_RESERVED, level);
		if (pte & PTE_PBMT) {
			if (!(ext & REF_RISCV_SVPBMT))
				return stop(out, REF_FAULT_RESERVED, level);
			if ((pte & PTE_PBMT) == PTE_PBMT)
				return stop(out, REF_FAULT_MISCONFIG, level);
		}

		/* Step 4: R or X makes a leaf; otherwise descend. */
		if (pte & (PTE_R | PTE_X))
			break;
		/*
		 * Non-leaf: D, A, U (and PBMT) are reserved for future use
		 * and must be cleared by software; G is unused in G-stage
		 * tables and should be cleared.
		 */
		if (pte & (PTE_D | PTE_A | PTE_U | PTE_G | PTE_PBMT))
			return stop(out, REF_FAULT_RESERVED, level);
		if (i == 0) /* a pointer at the last level */
			return stop(out, REF_FAULT_MISCONFIG, level);
		a = ((pte & PTE_PPN) >> 10) * PAGESIZE;
	}

	/* Step 5: G-stage accesses are U-mode accesses, so U must be set. */
	if (!(pte & PTE_U) || (pte & PTE_G))
		return stop(out, REF_FAULT_MISCONFIG, i + 1);

	/* Step 6: a superpage's low PPN parts must be zero. */
	{
		uint64_t ppn = (pte & PTE_PPN) >> 10;
		uint64_t low = i > 0 ? ppn & ((1ull << (9 * (unsigned)i)) - 1) : 0;
		uint64_t size = 1ull << (12 + 9 * (unsigned)i);

		if (low)
			return stop(out, REF_FAULT_MISCONFIG, i + 1);
		/* Step 8: pa.ppn[i-1:0] = va.vpn[i-1:0], page offset kept. */
		out->hpa = ppn * PAGESIZE + (gpa & (size - 1));
		out->size = size;
	}
	out->level = i + 1;
	if (pte & PTE_R)
		out->perm |= S2_PROT_R;
	if (pte & PTE_W)
		out->perm |= S2_PROT_W;
	if (pte & PTE_X)
		out->perm |= S2_PROT_X;
	switch ((pte & PTE_PBMT) >> 61) {
	case 0: out->memtype = S2_MT_WB; break;	 /* PMA */
	case 1: out->memtype = S2_MT_WC; break;	 /* NC */
	default: out->memtype = S2_MT_UC; break; /* IO */
	}
	out->accessed = (pte & PTE_A) != 0;
	out->dirty = (pte & PTE_D) != 0;
	return 0;
}
