// SPDX-License-Identifier: MIT
/*
 * The register values that point a CPU at a second-stage root, field by
 * field, from the manuals: EPTP (Intel SDM vol. 3C, "Extended-Page-Table
 * Pointer"), nCR3 (AMD APM vol. 2, VMCB N_CR3 and the long-mode CR3 layout),
 * VTTBR_EL2 and VTCR_EL2 (Arm ARM), hgatp (RISC-V privileged spec).
 */
#include <string.h>

#include "s2mmu-tool.h"

#define BIT(n) (1ull << (n))
#define BITS(v, hi, lo) (((v) >> (lo)) & (BIT((hi) - (lo) + 1) - 1))
#define GENMASK(hi, lo) ((~0ull >> (63 - (hi))) & ~(BIT(lo) - 1))

#define ADD(name, hi, lo, ...) ent_add(&r->nf, r->f, name, hi, lo, BITS(v, hi, lo), __VA_ARGS__)
#define PROBLEM(...) ent_problem(&r->np, r->problem, __VA_ARGS__)

static const struct {
	const char *name;
	enum reg_kind kind;
} reg_names[] = {
	{ "eptp", REG_EPTP }, { "ncr3", REG_NCR3 },   { "vttbr", REG_VTTBR },
	{ "vtcr", REG_VTCR }, { "hgatp", REG_HGATP },
};

int reg_by_name(const char *name)
{
	for (size_t i = 0; i < sizeof(reg_names) / sizeof(reg_names[0]); i++)
		if (!strcmp(name, reg_names[i].name))
			return (int)reg_names[i].kind;
	return 0;
}

const char *reg_name(enum reg_kind k)
{
	for (size_t i = 0; i < sizeof(reg_names) / sizeof(reg_names[0]); i++)
		if (reg_names[i].kind == k)
			return reg_names[i].name;
	return "?";
}

static void eptp(uint64_t v, struct reg_info *r)
{
	unsigned mt = BITS(v, 2, 0), walk = BITS(v, 5, 3);

	ADD("MT", 2, 0, "paging-structure memory type: %s",
	    mt == 0 ? "UC" :
	    mt == 6 ? "WB" :
		      "reserved");
	if (mt != 0 && mt != 6)
		PROBLEM("reserved: EPTP memory type %u (only UC 0 and WB 6)", mt);
	ADD("walk", 5, 3, "walk length minus 1: %u-level", walk + 1);
	if (walk != 3 && walk != 4)
		PROBLEM("reserved: walk length %u (4 or 5 levels)", walk + 1);
	ADD("AD", 6, 6, "accessed/dirty flags %s", v & BIT(6) ? "enabled" : "disabled");
	ADD("SSS", 7, 7, "supervisor shadow-stack control: %s", v & BIT(7) ? "set" : "clear");
	ADD("rsvd", 11, 8, "reserved (%#llx)", (unsigned long long)BITS(v, 11, 8));
	if (BITS(v, 11, 8))
		PROBLEM("reserved: bits 11:8 set");
	r->root = v & GENMASK(51, 12);
	ADD("root", 51, 12, "PML%u table at %#llx", walk + 1, (unsigned long long)r->root);
	ADD("rsvd", 63, 52, "reserved (%#llx)", (unsigned long long)BITS(v, 63, 52));
	if (BITS(v, 63, 52))
		PROBLEM("reserved: bits 63:52 set");
	r->levels = walk + 1;
	r->page_shift = 12;
	r->flags = v & BIT(6) ? TF_AD : 0;
}

static void ncr3(uint64_t v, struct reg_info *r)
{
	ADD("ign", 2, 0, "ignored (%#llx)", (unsigned long long)BITS(v, 2, 0));
	ADD("PWT", 3, 3, "table walks write-through: %s", v & BIT(3) ? "set" : "clear");
	ADD("PCD", 4, 4, "table walks uncached: %s", v & BIT(4) ? "set" : "clear");
	ADD("ign", 11, 5, "ignored (%#llx)", (unsigned long long)BITS(v, 11, 5));
	r->root = v & GENMASK(51, 12);
	ADD("root", 51, 12, "top-level table at %#llx (4 or 5 levels: the host's CR4.LA57)",
	    (unsigned long long)r->root);
	ADD("rsvd", 63, 52, "reserved (%#llx)", (unsigned long long)BITS(v, 63, 52));
	if (BITS(v, 63, 52))
		PROBLEM("reserved: bits 63:52 set");
	if (v & (BIT(3) | BIT(4)))
		PROBLEM("inconsistent: the library builds nCR3 with PWT = PCD = 0");
	r->page_shift = 12;
	r->flags = TF_AD;
}

static void vttbr(uint64_t v, struct reg_info *r)
{
	ADD("CnP", 0, 0, "common not private: %s", v & 1 ? "set" : "clear");
	r->root = v & GENMASK(47, 1);
	r->root |= BITS(v, 5, 2) << 48;
	ADD("BADDR", 47, 1, "root table at %#llx (bits 5:2 are BADDR[51:48] with 52-bit PA)",
	    (unsigned long long)r->root);
	ADD("VMID", 63, 48, "VMID %#llx (8-bit without VTCR_EL2.VS: bits 55:48)",
	    (unsigned long long)BITS(v, 63, 48));
}

static void vtcr(uint64_t v, struct reg_info *r)
{
	unsigned t0sz = BITS(v, 5, 0), sl0 = BITS(v, 7, 6), tg0 = BITS(v, 15, 14);
	unsigned psz = BITS(v, 18, 16), ps = 0, bpl;
	int start = -9;
	static const unsigned pa[8] = { 32, 36, 40, 42, 44, 48, 52, 0 };
	static const char *const cache[4] = { "non-cacheable", "write-back write-allocate",
					      "write-through", "write-back no write-allocate" };
	static const char *const sh[4] = { "non-shareable", "reserved", "outer shareable",
					   "inner shareable" };
	bool ds = v & BIT(32), sl2 = v & BIT(33);

	r->gpa_bits = 64 - t0sz;
	ADD("T0SZ", 5, 0, "%u: IPA size %u bits", t0sz, r->gpa_bits);
	if (tg0 == 0)
		ps = 12;
	else if (tg0 == 1)
		ps = 16;
	else if (tg0 == 2)
		ps = 14;
	ADD("TG0", 15, 14, "granule %s",
	    ps ? (ps == 12 ? "4K" :
		  ps == 14 ? "16K" :
			     "64K") :
		 "reserved");
	if (!ps) {
		PROBLEM("reserved: TG0 0b11");
		ps = 12;
	}
	if (ps == 12)
		start = sl2 ? (sl0 == 0 ? -1 : -9) : sl0 == 0 ? 2 : sl0 == 1 ? 1 : sl0 == 2 ? 0 : 3;
	else
		start = 3 - (int)sl0;
	ADD("SL0", 7, 6, "start level: hw level %d", start);
	if (start == -9)
		PROBLEM("reserved: SL2 set with SL0 != 0");
	ADD("IRGN0", 9, 8, "walks inner %s", cache[BITS(v, 9, 8)]);
	ADD("ORGN0", 11, 10, "walks outer %s", cache[BITS(v, 11, 10)]);
	ADD("SH0", 13, 12, "walks %s", sh[BITS(v, 13, 12)]);
	if (BITS(v, 13, 12) == 1)
		PROBLEM("reserved: SH0 0b01");
	ADD("PS", 18, 16, "output size %u bits", pa[psz]);
	if (!pa[psz])
		PROBLEM("reserved: PS 0b111");
	ADD("VS", 19, 19, "%s-bit VMID", v & BIT(19) ? "16" : "8");
	ADD("HA", 21, 21, "hardware access flag: %s", v & BIT(21) ? "on" : "off");
	ADD("HD", 22, 22, "hardware dirty state (DBM): %s", v & BIT(22) ? "on" : "off");
	if ((v & BIT(22)) && !(v & BIT(21)))
		PROBLEM("inconsistent: HD without HA (the library refuses it)");
	ADD("RES1", 31, 31, "%s", v & BIT(31) ? "1" : "0 (should be 1)");
	if (!(v & BIT(31)))
		PROBLEM("reserved: bit 31 is RES1");
	ADD("DS", 32, 32, "52-bit addresses with LPA2: %s", ds ? "on" : "off");
	ADD("SL2", 33, 33, "start at hw level -1: %s", sl2 ? "on" : "off");
	bpl = ps - 3;
	r->page_shift = ps;
	r->start_hw_level = start;
	r->flags = (v & BIT(21) ? TF_AD : 0) | (v & BIT(22) ? TF_HD : 0) |
		   (ds || (ps == 16 && psz == 6) ? TF_LPA2 : 0);
	if (start != -9 && start <= 3) {
		unsigned levels = (unsigned)(4 - start);
		int root_bits = (int)r->gpa_bits - (int)ps - (int)(levels - 1) * (int)bpl;

		r->levels = levels;
		if (root_bits < 1 || root_bits > (int)bpl + 4) {
			PROBLEM("reserved: start level %d inconsistent with T0SZ %u", start, t0sz);
		} else {
			r->root_entries = 1u << root_bits;
			if (r->root_entries > (1u << bpl))
				ADD("root", 7, 6, "%u concatenated tables at the start level",
				    r->root_entries >> bpl);
		}
	}
	if (ps == 14 && start == 0 && !ds)
		PROBLEM("reserved: 16K start level 0 needs DS");
	if (ps == 16 && start == 0)
		PROBLEM("reserved: 64K has no hw level 0");
	if (ps == 12 && start == 3)
		PROBLEM("reserved: 4K start level 3 needs FEAT_TTST");
}

static void hgatp(uint64_t v, struct reg_info *r)
{
	unsigned mode = BITS(v, 63, 60);

	ADD("MODE", 63, 60, "%s",
	    mode == 0  ? "Bare (no translation)" :
	    mode == 8  ? "Sv39x4" :
	    mode == 9  ? "Sv48x4" :
	    mode == 10 ? "Sv57x4" :
			 "reserved");
	if (mode && (mode < 8 || mode > 10))
		PROBLEM("reserved: MODE %u", mode);
	ADD("zero", 59, 58, "must be 0 (%#llx)", (unsigned long long)BITS(v, 59, 58));
	if (BITS(v, 59, 58))
		PROBLEM("reserved: bits 59:58 set");
	ADD("VMID", 57, 44, "VMID %#llx", (unsigned long long)BITS(v, 57, 44));
	r->root = BITS(v, 43, 0) << 12;
	ADD("PPN", 43, 0, "root table at %#llx (16 KiB: 2048 entries)",
	    (unsigned long long)r->root);
	if (r->root & 0x3fff)
		PROBLEM("inconsistent: root not 16 KiB aligned (the hart clears PPN[1:0])");
	r->page_shift = 12;
	if (mode >= 8 && mode <= 10) {
		r->levels = mode - 5;
		r->gpa_bits = 41 + 9 * (mode - 8);
		r->root_entries = 2048;
	}
}

void reg_decode(enum reg_kind k, uint64_t v, struct reg_info *r)
{
	memset(r, 0, sizeof(*r));
	r->kind = k;
	r->raw = v;
	switch (k) {
	case REG_EPTP: eptp(v, r); break;
	case REG_NCR3: ncr3(v, r); break;
	case REG_VTTBR: vttbr(v, r); break;
	case REG_VTCR: vtcr(v, r); break;
	case REG_HGATP: hgatp(v, r); break;
	}
}
