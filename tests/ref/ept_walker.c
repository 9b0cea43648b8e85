/* SPDX-License-Identifier: MIT */
/*
 * Reference EPT walker. Written from the SDM tables of the EPTP and of each
 * entry kind; kept deliberately plain (one entry kind at a time) so that it
 * reads like the manual and not like the format it checks.
 */
#include "ept_walker.h"

#include <stddef.h>
#include <string.h>

#define BIT(n) (1ull << (n))
/* Bits hi:lo set. */
#define BITS(hi, lo) (((~0ull) >> (63 - (hi))) & ~(BIT(lo) - 1))

#define MAXPHYADDR 52

static int stop(struct ref_xlate *out, int fault, int level)
{
	out->fault = fault;
	out->level = level;
	return fault;
}

/* EPT memory type field of a leaf -> S2_MT_*, or -1 when reserved (2, 3, 7). */
static int decode_memtype(unsigned emt)
{
	switch (emt) {
	case 0: return S2_MT_UC;
	case 1: return S2_MT_WC;
	case 4: return S2_MT_WT;
	case 5: return S2_MT_WP;
	case 6: return S2_MT_WB;
	default: return -1;
	}
}

/*
 * Reserved bits of an entry at @level, given whether it maps a page. Bits
 * 51:MAXPHYADDR are reserved everywhere (none when MAXPHYADDR is 52).
 *  - PML5E/PML4E: bits 7:3 reserved (bit 7 included: no pages here).
 *  - PDPTE/PDE referencing a table: bits 6:3 reserved, bit 7 is 0.
 *  - PDPTE mapping 1 GiB: bits 29:12 reserved. PDE mapping 2 MiB: 20:12.
 *  - PTE: nothing below MAXPHYADDR.
 */
static uint64_t reserved_bits(int level, bool page)
{
	uint64_t r = MAXPHYADDR < 52 ? BITS(51, MAXPHYADDR) : 0;

	if (level >= 4)
		return r | BITS(7, 3);
	if (level == 3)
		return r | (page ? BITS(29, 12) : BITS(6, 3));
	if (level == 2)
		return r | (page ? BITS(20, 12) : BITS(6, 3));
	return r;
}

int ref_ept_walk(uint64_t eptp, unsigned ctl, uint64_t gpa, struct ref_xlate *out)
{
	bool mbec = ctl & REF_EPT_MBEC;
	unsigned walk, emt;
	bool ad;
	int level, mt;
	unsigned r = 1, w = 1, x = 1, xu = 1;
	const uint64_t *table;
	uint64_t e = 0;

	memset(out, 0, sizeof(*out));

	/* EPTP: 2:0 memory type (UC or WB), 5:3 walk length - 1, 6 A/D,
	 * 7 supervisor shadow stack, 11:8 reserved, 51:12 root, 63:52 reserved. */
	emt = eptp & 7;
	walk = ((eptp >> 3) & 7) + 1;
	ad = eptp & BIT(6);
	if (eptp & (BITS(11, 8) | BITS(63, MAXPHYADDR)))
		return stop(out, REF_FAULT_RESERVED, 0);
	if ((emt != 0 && emt != 6) || (walk != 4 && walk != 5))
		return stop(out, REF_FAULT_MISCONFIG, 0);

	/* A 4-level walk translates bits 47:0, a 5-level walk bits 56:0. */
	if (gpa >> (walk == 4 ? 48 : 57))
		return stop(out, REF_FAULT_ADDR, 0);

	table = (const uint64_t *)(uintptr_t)(eptp & BITS(51, 12));
	for (level = (int)walk; level >= 1; level--) {
		unsigned shift = 12 + 9 * (unsigned)(level - 1);
		bool page;

		e = __atomic_load_n(&table[(gpa >> shift) & 511], __ATOMIC_RELAXED);

		/* Present: any of bits 2:0, or bit 10 with MBEC. */
		if (!(e & 7) && !(mbec && (e & BIT(10))))
			return stop(out, REF_FAULT_NOT_PRESENT, level);
		/* Write without read is a misconfiguration at any level. */
		if ((e & BIT(1)) && !(e & BIT(0)))
			return stop(out, REF_FAULT_MISCONFIG, level);

		page = level == 1 || ((level == 2 || level == 3) && (e & BIT(7)));
		if (e & reserved_bits(level, page))
			return stop(out, REF_FAULT_RESERVED, level);

		r &= (unsigned)(e >> 0) & 1;
		w &= (unsigned)(e >> 1) & 1;
		x &= (unsigned)(e >> 2) & 1;
		/* Without MBEC bit 2 controls every fetch; with it bit 10
		 * controls user-mode fetches. */
		xu &= mbec ? (unsigned)(e >> 10) & 1 : (unsigned)(e >> 2) & 1;

		if (page)
			break;
		table = (const uint64_t *)(uintptr_t)(e & BITS(51, 12));
	}

	{
		unsigned shift = 12 + 9 * (unsigned)(level - 1);

		mt = decode_memtype((unsigned)(e >> 3) & 7);
		if (mt < 0)
			return stop(out, REF_FAULT_MISCONFIG, level);
		out->memtype = (unsigned)mt | ((e & BIT(6)) ? S2_MT_IGNORE_PAT : 0);
		out->level = level;
		out->size = 1ull << shift;
		out->hpa = (e & BITS(51, shift)) | (gpa & (out->size - 1));
		out->perm = (r ? S2_PROT_R : 0) | (w ? S2_PROT_W : 0) | (x ? S2_PROT_X : 0) |
			    (xu ? S2_PROT_XU : 0);
		/* Bits 8 and 9 are the CPU's only when the EPTP enables A/D. */
		out->accessed = ad && (e & BIT(8));
		out->dirty = ad && (e & BIT(9));
	}
	return 0;
}
