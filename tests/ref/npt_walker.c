/* SPDX-License-Identifier: MIT */
/*
 * Reference nested-paging walker: one x86-64 long-mode walk, entry kind by
 * entry kind as the APM's figures lay them out (PML5E, PML4E, PDPE, PDE,
 * PTE), with the nested-paging rules on top.
 */
#include "npt_walker.h"

#include <stddef.h>
#include <string.h>

#define BIT(n) (1ull << (n))
#define BITS(hi, lo) (((~0ull) >> (63 - (hi))) & ~(BIT(lo) - 1))

#define E_P BIT(0)
#define E_RW BIT(1)
#define E_US BIT(2)
#define E_PWT BIT(3)
#define E_PCD BIT(4)
#define E_A BIT(5)
#define E_D BIT(6)
#define E_PS BIT(7)
#define E_NX BIT(63)

/* Power-on PAT: PA0..PA7 = WB, WT, UC-, UC, WB, WT, UC-, UC. */
static const unsigned default_pat[8] = {
	S2_MT_WB, S2_MT_WT, S2_MT_UC /* UC- */, S2_MT_UC,
	S2_MT_WB, S2_MT_WT, S2_MT_UC /* UC- */, S2_MT_UC,
};

static int stop(struct ref_xlate *out, int fault, int level)
{
	out->fault = fault;
	out->level = level;
	return fault;
}

int ref_npt_walk_maxphy(uint64_t ncr3, bool five_level, unsigned maxphyaddr, uint64_t gpa,
			struct ref_xlate *out)
{
	int levels = five_level ? 5 : 4;
	uint64_t addr_rsvd = maxphyaddr < 52 ? BITS(51, maxphyaddr) : 0;
	uint64_t table, e = 0;
	bool w = true, x = true;
	int level;

	memset(out, 0, sizeof(*out));
	/* Long-mode CR3: bits 63:52 and 51:M reserved; 51:12 the table. */
	if (ncr3 & (BITS(63, 52) | addr_rsvd))
		return stop(out, REF_FAULT_RESERVED, 0);
	if (gpa >> (five_level ? 57 : 48))
		return stop(out, REF_FAULT_ADDR, levels);
	table = ncr3 & BITS(51, 12);

	for (level = levels;; level--) {
		unsigned shift = 12 + 9 * (unsigned)(level - 1);
		uint64_t idx = (gpa >> shift) & 0x1ff;
		bool page;

		e = __atomic_load_n((const uint64_t *)(uintptr_t)(table + idx * 8),
				    __ATOMIC_RELAXED);
		if (!(e & E_P))
			return stop(out, REF_FAULT_NOT_PRESENT, level);
		if (e & addr_rsvd)
			return stop(out, REF_FAULT_RESERVED, level);
		/* PML5E/PML4E: bits 8:7 must be zero (AMD: MBZ). */
		if (level >= 4 && (e & BITS(8, 7)))
			return stop(out, REF_FAULT_RESERVED, level);
		page = level == 1 || ((level == 2 || level == 3) && (e & E_PS));
		/* 1 GiB: bits 29:13 MBZ; 2 MiB: bits 20:13 MBZ (12 is PAT). */
		if (page && level == 3 && (e & BITS(29, 13)))
			return stop(out, REF_FAULT_RESERVED, level);
		if (page && level == 2 && (e & BITS(20, 13)))
			return stop(out, REF_FAULT_RESERVED, level);
		/* Nested walks are user accesses: U/S=0 anywhere faults. */
		if (!(e & E_US))
			return stop(out, REF_FAULT_MISCONFIG, level);
		if (!(e & E_RW))
			w = false;
		if (e & E_NX)
			x = false;
		if (page)
			break;
		table = e & BITS(51, 12);
	}

	{
		uint64_t size = 1ull << (12 + 9 * (unsigned)(level - 1));
		uint64_t base = e & BITS(51, 12) & ~(size - 1);
		unsigned pat = level == 1 ? (unsigned)((e >> 7) & 1) : (unsigned)((e >> 12) & 1);
		unsigned idx = pat << 2 | (unsigned)((e & E_PCD) ? 2 : 0) |
			       (unsigned)((e & E_PWT) ? 1 : 0);

		out->level = level;
		out->size = size;
		out->hpa = base + (gpa & (size - 1));
		out->perm = S2_PROT_R | (w ? S2_PROT_W : 0) | (x ? S2_PROT_X : 0);
		out->memtype = default_pat[idx];
		out->accessed = (e & E_A) != 0;
		out->dirty = (e & E_D) != 0;
	}
	return 0;
}

int ref_npt_walk(uint64_t ncr3, bool five_level, uint64_t gpa, struct ref_xlate *out)
{
	return ref_npt_walk_maxphy(ncr3, five_level, 52, gpa, out);
}
