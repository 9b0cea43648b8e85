/* SPDX-License-Identifier: MIT */
/*
 * Reference arm64 stage-2 walker; see arm64_walker.h. Written from the Arm
 * ARM alone: register fields and descriptor bits are spelled out here again
 * on purpose, so a misreading in fmt/arm64-s2 cannot hide behind a shared
 * definition.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "arm64_walker.h"

/* VTCR_EL2 */
#define VTCR_T0SZ(v) ((int)((v)&0x3f))
#define VTCR_SL0(v) ((unsigned)(((v) >> 6) & 0x3))
#define VTCR_TG0(v) ((unsigned)(((v) >> 14) & 0x3))
#define VTCR_PS(v) ((unsigned)(((v) >> 16) & 0x7))
#define VTCR_HA(v) (((v) >> 21) & 1)
#define VTCR_HD(v) (((v) >> 22) & 1)
#define VTCR_DS(v) (((v) >> 32) & 1)
#define VTCR_SL2(v) (((v) >> 33) & 1)

/* What the walk needs to know, from VTCR_EL2 alone. */
struct s2params {
	int gbits;   /* log2 granule */
	int stride;  /* gbits - 3 */
	bool ds;     /* 52-bit descriptors on 4K/16K (VTCR.DS) */
	int oa_bits; /* effective output address size */
	int ia_bits; /* 64 - T0SZ */
	int start;   /* hardware start level, -1..3 */
	bool ha, hd;
};

static int fault(struct ref_xlate *out, int why, int level)
{
	out->fault = why;
	out->level = level;
	return why;
}

static int granule_bits(unsigned tg0)
{
	switch (tg0) {
	case 0: return 12;
	case 2: return 14;
	case 1: return 16;
	default: return 0; /* 0b11 reserved */
	}
}

static int ps_bits(unsigned ps)
{
	static const int bits[8] = { 32, 36, 40, 42, 44, 48, 52, 0 };

	return bits[ps & 7];
}

/*
 * AArch64.S2StartLevel plus AArch64.S2InvalidSL for a CPU with PAMax 52 and
 * no FEAT_TTST. Returns 4 (impossible) for an invalid encoding.
 */
static int start_level(const struct s2params *p, uint64_t vtcr)
{
	unsigned sl0 = VTCR_SL0(vtcr);

	if (p->gbits == 12) {
		if (p->ds && VTCR_SL2(vtcr))
			return sl0 == 0 ? -1 : 4;
		switch (sl0) {
		case 0: return 2;
		case 1: return 1;
		case 2: return 0;
		default: return 4; /* level 3 start needs FEAT_TTST */
		}
	}
	if (p->gbits == 14) {
		if (sl0 == 3)
			return p->ds ? 0 : 4;
		return 3 - (int)sl0;
	}
	if (sl0 == 3)
		return 4;
	return 3 - (int)sl0;
}

static int parse_vtcr(uint64_t vtcr, struct s2params *p)
{
	int min_t0sz, min_ia, max_ia;

	memset(p, 0, sizeof(*p));
	p->gbits = granule_bits(VTCR_TG0(vtcr));
	if (!p->gbits)
		return -1;
	p->stride = p->gbits - 3;
	/* DS exists for the 4K and 16K granules; 64K gets 52 bits from LPA. */
	p->ds = p->gbits != 16 && VTCR_DS(vtcr);
	p->oa_bits = ps_bits(VTCR_PS(vtcr));
	if (!p->oa_bits)
		return -1;
	if (p->oa_bits > 48 && p->gbits != 16 && !p->ds)
		p->oa_bits = 48;
	p->ha = VTCR_HA(vtcr);
	p->hd = p->ha && VTCR_HD(vtcr);

	/* AArch64.S2TxSZFaults: 25..48 bits, 52 with DS or the 64K granule. */
	min_t0sz = (p->ds || p->gbits == 16) ? 12 : 16;
	if (VTCR_T0SZ(vtcr) < min_t0sz || VTCR_T0SZ(vtcr) > 39)
		return -1;
	p->ia_bits = 64 - VTCR_T0SZ(vtcr);

	p->start = start_level(p, vtcr);
	if (p->start > 3)
		return -1;
	/*
	 * AArch64.S2InconsistentSL: the start level resolves at least one bit
	 * and at most a full table plus 4 bits of concatenation (16 tables).
	 */
	min_ia = (3 - p->start) * p->stride + p->gbits + 1;
	max_ia = min_ia + (p->stride - 1) + 4;
	if (p->ia_bits < min_ia || p->ia_bits > max_ia)
		return -1;
	return 0;
}

/* AArch64.BlockDescSupported with PAMax 52. */
static bool block_allowed(const struct s2params *p, int level)
{
	switch (p->gbits) {
	case 12: return level == 1 || level == 2 || (level == 0 && p->ds);
	case 14: return level == 2 || (level == 1 && p->ds);
	default: return level == 1 || level == 2;
	}
}

/*
 * Output (or next-table) address of a descriptor, or ~0 when it has address
 * bits the configuration forbids (RES0 bits 49:48 without DS, or above the
 * output size: an address size fault).
 */
static uint64_t desc_address(const struct s2params *p, uint64_t desc)
{
	uint64_t low = (1ull << p->gbits) - 1, addr;

	if (p->ds) {
		addr = (desc & 0x0003ffffffffffffull & ~low) | (((desc >> 8) & 0x3) << 50);
	} else {
		if (desc & (0x3ull << 48))
			return ~0ull;
		addr = desc & 0x0000ffffffffffffull & ~low;
		if (p->gbits == 16)
			addr |= ((desc >> 12) & 0xf) << 48; /* FEAT_LPA */
	}
	if (p->oa_bits < 64 && (addr >> p->oa_bits))
		return ~0ull;
	return addr;
}

static int decode_memattr(unsigned ma, bool fwb, unsigned *mt)
{
	if (fwb) {
		/* HCR_EL2.FWB: MemAttr[2] = 0 device, 1 normal (MemAttr[3] RES0). */
		if (ma & 0x8)
			return -1;
		if (!(ma & 0x4)) {
			*mt = (ma & 3) == 0 ? S2_MT_UC : S2_MT_DEVICE;
			return 0;
		}
		switch (ma & 3) {
		case 1: *mt = S2_MT_WC; return 0; /* non-cacheable */
		case 2: *mt = S2_MT_WB; return 0; /* forced write-back */
		case 3: *mt = S2_MT_WT; return 0; /* stage 1 decides */
		default: return -1;		  /* reserved */
		}
	}
	/* MemAttr[3:2] outer: 00 device, 01 NC, 10 WT, 11 WB; [1:0] inner. */
	if ((ma >> 2) == 0) {
		*mt = (ma & 3) == 0 ? S2_MT_UC : S2_MT_DEVICE;
		return 0;
	}
	if ((ma & 3) == 0)
		return -1; /* normal with inner 0b00: reserved */
	if ((ma >> 2) == 1 || (ma & 3) == 1)
		*mt = S2_MT_WC;
	else if ((ma >> 2) == 3 && (ma & 3) == 3)
		*mt = S2_MT_WB;
	else
		*mt = S2_MT_WT;
	return 0;
}

static unsigned decode_exec(uint64_t desc, bool xnx)
{
	unsigned xn = (unsigned)((desc >> 53) & 3);

	if (!xnx)
		return (xn & 2) ? 0 : S2_PROT_X | S2_PROT_XU;
	switch (xn) {
	case 0: return S2_PROT_X | S2_PROT_XU;
	case 1: return S2_PROT_XU; /* not at EL1 */
	case 3: return S2_PROT_X;  /* not at EL0 */
	default: return 0;
	}
}

int ref_arm64_walk(uint64_t vtcr, uint64_t vttbr, unsigned ctl, uint64_t ipa, struct ref_xlate *out)
{
	struct s2params p;
	uint64_t table, root_bytes;
	int level, first_bits;

	memset(out, 0, sizeof(*out));
	if (parse_vtcr(vtcr, &p))
		return fault(out, REF_FAULT_MISCONFIG, 0);
	if (p.ia_bits < 64 && (ipa >> p.ia_bits))
		return fault(out, REF_FAULT_ADDR, 0);

	/* VTTBR_EL2.BADDR: bits 47:1, with BADDR[51:48] in 5:2 for 52 bits. */
	if (p.oa_bits == 52) {
		table = (vttbr & 0x0000ffffffffffc0ull) | (((vttbr >> 2) & 0xf) << 48);
	} else {
		table = vttbr & 0x0000fffffffffffeull;
		if (table >> p.oa_bits)
			return fault(out, REF_FAULT_RESERVED, 0);
	}
	first_bits = p.ia_bits - (p.gbits + (3 - p.start) * p.stride);
	root_bytes = 8ull << first_bits;
	if (table & (root_bytes - 1))
		return fault(out, REF_FAULT_MISCONFIG, 0);

	for (level = p.start;; level++) {
		int lsb = p.gbits + (3 - level) * p.stride;
		int bits = level == p.start ? first_bits : p.stride;
		uint64_t idx = (ipa >> lsb) & ((1ull << bits) - 1);
		uint64_t desc = __atomic_load_n(&((const uint64_t *)(uintptr_t)table)[idx],
						__ATOMIC_RELAXED);
		uint64_t addr, size;
		int ours = 4 - level;
		unsigned mt;

		if (!(desc & 1))
			return fault(out, REF_FAULT_NOT_PRESENT, ours);
		addr = desc_address(&p, desc);
		if (addr == ~0ull)
			return fault(out, REF_FAULT_RESERVED, ours);
		if ((desc & 2) && level < 3) {
			table = addr;
			continue;
		}
		if (!(desc & 2) && (level == 3 || !block_allowed(&p, level)))
			return fault(out, REF_FAULT_RESERVED, ours);

		/* A page (level 3, 0b11) or a block (0b01). */
		if (decode_memattr((unsigned)((desc >> 2) & 0xf), ctl & REF_A64_FWB, &mt))
			return fault(out, REF_FAULT_MISCONFIG, ours);
		if (!p.ds && ((desc >> 8) & 3) == 1)
			return fault(out, REF_FAULT_MISCONFIG, ours); /* SH 0b01 */
		size = 1ull << lsb;
		out->fault = 0;
		out->level = ours;
		out->size = size;
		out->hpa = (addr & ~(size - 1)) | (ipa & (size - 1));
		out->memtype = mt;
		if (desc & (1ull << 6))
			out->perm |= S2_PROT_R;
		if ((desc & (1ull << 7)) || (p.hd && (desc & (1ull << 51))))
			out->perm |= S2_PROT_W;
		out->perm |= decode_exec(desc, ctl & REF_A64_XNX);
		out->accessed = desc & (1ull << 10);
		out->dirty = desc & (1ull << 7);
		return 0;
	}
}
