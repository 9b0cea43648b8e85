/* SPDX-License-Identifier: MIT */
/*
 * arm64 stage 2 (Arm ARM, VMSAv8-64 stage 2 translation, 64-bit descriptors).
 *
 * The format contract is core/fmt_api.h; docs/fmt-arm64-s2.md has the layout
 * as tables. Levels use the library's numbering, ours = 4 - hw level: level 1
 * is the granule page (hw level 3), 2 the hw level-2 block (2 MiB / 32 MiB /
 * 512 MiB on 4K / 16K / 64K), 3 hw level 1, 4 hw level 0. (hw level -1, which
 * FEAT_LPA2 adds, would be our 5; the start-level rule below never needs it.)
 *
 * Granules: 4K (page_shift 12, 9 bits per level), 16K (14, 11), 64K (16, 13).
 *
 * Start level. The walk starts at the level that gives the fewest levels
 * while the start level resolves at most bits_per_level + 4 bits, i.e. at
 * most 16 concatenated tables, and never fewer than two levels:
 *
 *     levels = max(2, ceil((ipa_bits - page_shift - 4) / bits_per_level))
 *     root_bits = ipa_bits - page_shift - (levels - 1) * bits_per_level
 *
 * This is Linux KVM's choice (stage2_pgtable_levels() and the two-level
 * minimum of kvm_get_vtcr()), and it stays inside what the Arm ARM allows
 * (AArch64.S2InconsistentSL: the start level must resolve at least one and at
 * most stride + 4 bits; AArch64.S2InvalidSL: 16K level 0 needs VTCR.DS). The
 * two-level minimum matters only for 64K with a 32- or 33-bit IPA, which
 * could start at hw level 3 with 8 or 16 concatenated 64 KiB tables; two
 * levels keep 512 MiB blocks possible there. Examples: 4K 40-bit: hw level 1,
 * 2 concatenated tables; 4K 52-bit (LPA2): hw level 0 with 16; 16K 48-bit:
 * hw level 1 with 2; 64K 48-bit: hw level 1, 64 entries.
 *
 * Descriptor bits (block = bits[1:0] 0b01, table and page = 0b11):
 *    0 valid   1 table/page (0 = block; 0b01 at hw level 3 is reserved)
 *    5:2 MemAttr   7:6 S2AP (6 read, 7 write)   9:8 SH (or OA[51:50], LPA2)
 *   10 AF    11 RES0 (stage 2)
 *   47:ps output / next-table address; LPA2 on 4K/16K: bits 49:ps, OA[51:50]
 *         in 9:8; 64K with FEAT_LPA: OA[51:48] in 15:12
 *   51 DBM   52 contiguous   54:53 XN (XN[0] only with FEAT_XNX)
 *   58:55 reserved for software   62:59 PBHA   63 ignored
 *
 * Software bits: 55 host-writable, 56 MMU-writable. Bits 57 and 58 are left
 * free (FEAT_THE gives bit 58 a meaning when VTCR_EL2 asks for it).
 *
 * S2_FMTF_LPA2 means "52-bit addresses for this granule": FEAT_LPA2 with
 * VTCR_EL2.DS = 1 on 4K and 16K, FEAT_LPA (PS = 52 bits) on 64K. It allows
 * gpa_bits 49..52 and the largest block of the granule (4K: 512 GiB at hw
 * level 0; 16K: 64 GiB at hw level 1; 64K: 4 TiB at hw level 1).
 */
#ifndef S2MMU_FMT_ARM64_S2_H
#define S2MMU_FMT_ARM64_S2_H

#include <stdbool.h>
#include <stdint.h>

#include "core/fmt_api.h"
#include "s2mmu/config.h"
#include "s2mmu/env.h"
#include "s2mmu/errno.h"
#include "s2mmu/kvm.h"
#include "s2mmu/prot.h"
#include "s2mmu/types.h"

#define FMT_ID S2_FMT_ARM64_S2
#define FMT_NAME "arm64-s2"

/* Hardware bits of a stage-2 descriptor. */
#define A64_VALID (1ull << 0)
#define A64_TYPE (1ull << 1) /* table / page; clear = block */
#define A64_TYPE_MASK (A64_VALID | A64_TYPE)
#define A64_DESC_BLOCK A64_VALID
#define A64_DESC_TABLE (A64_VALID | A64_TYPE)
#define A64_DESC_PAGE (A64_VALID | A64_TYPE)
#define A64_MEMATTR_SHIFT 2
#define A64_MEMATTR_MASK (0xfull << A64_MEMATTR_SHIFT)
#define A64_S2AP_R (1ull << 6)
#define A64_S2AP_W (1ull << 7)
#define A64_SH_SHIFT 8
#define A64_SH_MASK (3ull << A64_SH_SHIFT)
#define A64_SH_IS (3ull << A64_SH_SHIFT) /* inner shareable */
#define A64_AF (1ull << 10)
#define A64_RES0_11 (1ull << 11)
#define A64_OA_HI64K_SHIFT 12 /* 64K + LPA: OA[51:48] in bits 15:12 */
#define A64_OA_HI64K_MASK (0xfull << A64_OA_HI64K_SHIFT)
#define A64_OA_HILPA2_SHIFT 8		    /* LPA2: OA[51:50] in bits 9:8 */
#define A64_ADDR_BITS 0x0003fffffffff000ull /* bits 49:12, every address form */
#define A64_DBM (1ull << 51)
#define A64_CONT (1ull << 52)
#define A64_XN_SHIFT 53
#define A64_XN_MASK (3ull << A64_XN_SHIFT)
#define A64_PBHA_MASK (0xfull << 59)
#define A64_BIT63 (1ull << 63)

/* XN[1:0] (FEAT_XNX): who may execute. Without FEAT_XNX only XN[1] exists. */
#define A64_XN_NONE 0ull /* EL1 and EL0 may execute */
#define A64_XN_PXN 1ull	 /* EL0 only */
#define A64_XN_ALL 2ull	 /* nobody */
#define A64_XN_UXN 3ull	 /* EL1 only */

/* MemAttr[3:0] without FEAT_S2FWB (combined with stage 1, the weaker wins). */
#define A64_MA_DEV_nGnRnE 0x0u
#define A64_MA_DEV_nGnRE 0x1u
#define A64_MA_NORMAL_NC 0x5u /* outer NC, inner NC */
#define A64_MA_NORMAL_WT 0xau /* outer WT, inner WT */
#define A64_MA_NORMAL_WB 0xfu /* outer WB, inner WB */
/* MemAttr with HCR_EL2.FWB = 1: bit 2 set = normal, [1:0] say which. */
#define A64_MA_FWB_DEV_nGnRnE 0x0u
#define A64_MA_FWB_DEV_nGnRE 0x1u
#define A64_MA_FWB_NORMAL_NC 0x5u
#define A64_MA_FWB_NORMAL_WB 0x6u /* forced write-back */
#define A64_MA_FWB_NORMAL_S1 0x7u /* stage 1's cacheability is used */

/*
 * Software bits: "reserved for software use" in block and page descriptors,
 * never interpreted by the walk.
 */
#define A64_SW_HOST_WRITABLE (1ull << 55)
#define A64_SW_MMU_WRITABLE (1ull << 56)
#define A64_SW_BITS (A64_SW_HOST_WRITABLE | A64_SW_MMU_WRITABLE)

#define A64_HW_BITS                                                                          \
	(A64_TYPE_MASK | A64_MEMATTR_MASK | A64_S2AP_R | A64_S2AP_W | A64_SH_MASK | A64_AF | \
	 A64_RES0_11 | A64_ADDR_BITS | A64_DBM | A64_CONT | A64_XN_MASK | A64_PBHA_MASK |    \
	 A64_BIT63)

#define A64_LOW_MASK 0xfffull

/*
 * The frozen value (break-before-make in progress): bit 0 clear, so the
 * walk sees an invalid descriptor and the guest faults; the pattern lives in
 * bits 1..11, which an invalid descriptor leaves to software.
 */
#define FMT_FROZEN 0x5a0ull

/*
 * The MMIO value: also invalid to hardware (bit 0 clear), told apart from
 * FMT_FROZEN and from 0 by bits 1..11; the gfn sits in bits 51:12.
 */
#define A64_MMIO_LOW 0x0c2ull
#define A64_MMIO_GFN_MASK ((1ull << 40) - 1)

/* Levels (our numbering) where a block may sit, kept in cfg->fmt_private. */
#define A64_BLOCK_LEVELS_MASK 0x1eu

_Static_assert((A64_SW_BITS & A64_HW_BITS) == 0, "arm64 software bits overlap hardware bits");
_Static_assert((A64_TYPE_MASK & ~A64_LOW_MASK) == 0,
	       "the present test must look only at bits 0..11");
_Static_assert((FMT_FROZEN & ~A64_LOW_MASK) == 0 && (FMT_FROZEN & A64_VALID) == 0,
	       "FMT_FROZEN: bits 1..11 only, never valid");
_Static_assert((A64_MMIO_LOW & ~A64_LOW_MASK) == 0 && (A64_MMIO_LOW & A64_VALID) == 0,
	       "the MMIO value must never be valid");
_Static_assert(A64_MMIO_LOW != FMT_FROZEN && A64_MMIO_LOW != 0 && FMT_FROZEN != 0,
	       "MMIO, frozen and empty are told apart by bits 0..11");
_Static_assert(((A64_MMIO_GFN_MASK << 12) & (A64_SW_BITS | ~0x000ffffffffff000ull)) == 0,
	       "the MMIO gfn must stay in bits 51:12");

#define A64_FMTF_ALL \
	(S2_FMTF_AD | S2_FMTF_HD | S2_FMTF_FWB | S2_FMTF_XNX | S2_FMTF_LPA2 | S2_FMTF_VMID16)

/*
 * Levels walked for an @ipa_bits IPA on a 2^@page_shift granule, by the rule
 * at the top of this file. @ipa_bits must be at least page_shift + 5.
 */
static inline unsigned a64_s2_levels(unsigned page_shift, unsigned ipa_bits)
{
	unsigned bpl = page_shift - 3;
	unsigned levels = (ipa_bits - page_shift - 4 + bpl - 1) / bpl;

	return levels < 2 ? 2 : levels;
}

/*
 * Our levels where the architecture allows a block (AArch64.BlockDescSupported):
 * hw level 2 always; hw level 1 on 4K, or with LPA2/LPA on 16K/64K; hw level
 * 0 on 4K with LPA2. Limited to the levels the walk has.
 */
static inline unsigned a64_block_levels(unsigned page_shift, unsigned flags, unsigned levels)
{
	bool lpa = flags & S2_FMTF_LPA2;
	unsigned mask = 1u << 2;

	if (page_shift == 12 || lpa)
		mask |= 1u << 3;
	if (page_shift == 12 && lpa)
		mask |= 1u << 4;
	return mask & ((2u << levels) - 1);
}

static inline int fmt_init_cfg(struct s2_fmt_cfg *c, const struct kvm_vm_params *p)
{
	unsigned ps, bpl, levels, mask, max_leaf;
	unsigned flags, max_ipa;

	if (!c || !p)
		return -EINVAL;
	switch (p->granule) {
	case 0:
	case 4096: ps = 12; break;
	case 16384: ps = 14; break;
	case 65536: ps = 16; break;
	default: return -EINVAL;
	}
	flags = p->fmt_flags;
	if (flags & ~(unsigned)A64_FMTF_ALL)
		return -EINVAL;
	if ((flags & S2_FMTF_HD) && !(flags & S2_FMTF_AD))
		return -EINVAL; /* VTCR_EL2.HD without HA is not a thing */
	max_ipa = (flags & S2_FMTF_LPA2) ? 52 : 48;
	if (p->gpa_bits < 32 || p->gpa_bits > max_ipa)
		return -EINVAL;
	if (p->vmid > ((flags & S2_FMTF_VMID16) ? 0xffffu : 0xffu))
		return -EINVAL;

	bpl = ps - 3;
	levels = a64_s2_levels(ps, p->gpa_bits);
	mask = a64_block_levels(ps, flags, levels);
	for (max_leaf = 1; mask >> (max_leaf + 1); max_leaf++)
		;
	c->levels = (uint8_t)levels;
	c->page_shift = (uint8_t)ps;
	c->bits_per_level = (uint8_t)bpl;
	c->root_bits = (uint8_t)(p->gpa_bits - ps - (levels - 1) * bpl);
	c->gpa_bits = (uint8_t)p->gpa_bits;
	c->pa_bits = (uint8_t)max_ipa;
	c->max_leaf_level = (uint8_t)max_leaf;
	c->min_leaf_level = 1;
	c->flags = flags;
	c->vmid = p->vmid;
	c->fmt_private = mask;
	return 0;
}

static inline bool a64_block_ok(const struct s2_fmt_cfg *c, int l)
{
	return (c->fmt_private >> l) & 1u;
}

static inline uint64_t a64_level_mask(const struct s2_fmt_cfg *c, int l)
{
	return ~((1ull << s2_level_shift(c, l)) - 1);
}

/* An output or next-table address into descriptor bits. */
static inline uint64_t a64_addr_to_desc(const struct s2_fmt_cfg *c, uint64_t pa)
{
	uint64_t low = ~((1ull << c->page_shift) - 1);

	if (!(c->flags & S2_FMTF_LPA2))
		return pa & 0x0000ffffffffffffull & low;
	if (c->page_shift == 16)
		return (pa & 0x0000ffffffffffffull & low) |
		       (((pa >> 48) & 0xf) << A64_OA_HI64K_SHIFT);
	return (pa & 0x0003ffffffffffffull & low) | (((pa >> 50) & 0x3) << A64_OA_HILPA2_SHIFT);
}

static inline uint64_t a64_desc_to_addr(const struct s2_fmt_cfg *c, s2_pte_t pte)
{
	uint64_t low = ~((1ull << c->page_shift) - 1);

	if (!(c->flags & S2_FMTF_LPA2))
		return pte & 0x0000ffffffffffffull & low;
	if (c->page_shift == 16)
		return (pte & 0x0000ffffffffffffull & low) |
		       (((pte >> A64_OA_HI64K_SHIFT) & 0xf) << 48);
	return (pte & 0x0003ffffffffffffull & low) | (((pte >> A64_OA_HILPA2_SHIFT) & 0x3) << 50);
}

/* With LPA2 on 4K/16K, SH comes from VTCR_EL2.SH0 and bits 9:8 are address. */
static inline bool a64_sh_in_desc(const struct s2_fmt_cfg *c)
{
	return !(c->flags & S2_FMTF_LPA2) || c->page_shift == 16;
}

/*
 * MemAttr of an S2_MT_*. Without FWB stage 2 can only make stage 1's type
 * weaker, so WB here means "whatever the guest chose". With FWB, WB forces
 * write-back; write-through (and write-protect, which only x86 has) have no
 * FWB encoding and get "stage 1's cacheability" (0b0111): the guest's own
 * choice, never stronger than what it asked for. Unknown types and UC are
 * Device-nGnRnE, the strictest.
 */
static inline uint64_t a64_encode_memattr(const struct s2_fmt_cfg *c, unsigned memtype)
{
	unsigned ma;
	bool fwb = c->flags & S2_FMTF_FWB;

	switch (memtype & S2_MT_MASK) {
	case S2_MT_WB: ma = fwb ? A64_MA_FWB_NORMAL_WB : A64_MA_NORMAL_WB; break;
	case S2_MT_WC: ma = fwb ? A64_MA_FWB_NORMAL_NC : A64_MA_NORMAL_NC; break;
	case S2_MT_WT:
	case S2_MT_WP: ma = fwb ? A64_MA_FWB_NORMAL_S1 : A64_MA_NORMAL_WT; break;
	case S2_MT_DEVICE: ma = fwb ? A64_MA_FWB_DEV_nGnRE : A64_MA_DEV_nGnRE; break;
	default: ma = fwb ? A64_MA_FWB_DEV_nGnRnE : A64_MA_DEV_nGnRnE; break;
	}
	return (uint64_t)ma << A64_MEMATTR_SHIFT;
}

/*
 * Permission and state bits from S2_PROT_*:
 *  - R -> S2AP[0]. W -> S2AP[1]; with hardware dirty state (HD) W sets DBM
 *    instead and S2AP[1] only when DIRTY, so the first write is recorded by
 *    hardware setting S2AP[1]. DIRTY without W cannot be expressed.
 *  - ACCESSED -> AF. The core passes ACCESSED when it installs; AF = 0 makes
 *    the next access fault on CPUs without HA (or be recorded with HA).
 *  - X/XU: with FEAT_XNX, X is EL1 execute and XU EL0 execute. Without it
 *    one XN bit covers both, set unless X or XU is given (as EPT without
 *    MBEC).
 */
static inline uint64_t a64_encode_prot(const struct s2_fmt_cfg *c, unsigned prot)
{
	uint64_t v = 0, xn;

	if (prot & S2_PROT_R)
		v |= A64_S2AP_R;
	if (prot & S2_PROT_W) {
		if (c->flags & S2_FMTF_HD) {
			v |= A64_DBM;
			if (prot & S2_PROT_DIRTY)
				v |= A64_S2AP_W;
		} else {
			v |= A64_S2AP_W;
		}
	}
	if (prot & S2_PROT_ACCESSED)
		v |= A64_AF;
	if (c->flags & S2_FMTF_XNX) {
		switch (prot & (S2_PROT_X | S2_PROT_XU)) {
		case S2_PROT_X | S2_PROT_XU: xn = A64_XN_NONE; break;
		case S2_PROT_X: xn = A64_XN_UXN; break;
		case S2_PROT_XU: xn = A64_XN_PXN; break;
		default: xn = A64_XN_ALL; break;
		}
	} else {
		xn = (prot & (S2_PROT_X | S2_PROT_XU)) ? A64_XN_NONE : A64_XN_ALL;
	}
	v |= xn << A64_XN_SHIFT;
	if (prot & S2_PROT_HOST_WRITABLE)
		v |= A64_SW_HOST_WRITABLE;
	if (prot & S2_PROT_MMU_WRITABLE)
		v |= A64_SW_MMU_WRITABLE;
	return v;
}

/* Bits a64_encode_prot() owns; fmt_leaf_set_prot() replaces exactly these. */
#define A64_PROT_BITS (A64_S2AP_R | A64_S2AP_W | A64_DBM | A64_AF | A64_XN_MASK | A64_SW_BITS)

/* Always inlined: at -O2 gcc kept it out of line, a call on every fault. */
static inline __attribute__((always_inline)) s2_pte_t
fmt_make_leaf(const struct s2_fmt_cfg *c, int l, hpa_t hpa, unsigned prot, unsigned memtype)
{
	s2_pte_t pte = a64_addr_to_desc(c, hpa & a64_level_mask(c, l)) |
		       (l == 1 ? A64_DESC_PAGE : A64_DESC_BLOCK) | a64_encode_memattr(c, memtype) |
		       a64_encode_prot(c, prot);

	if (a64_sh_in_desc(c))
		pte |= A64_SH_IS;
	return pte;
}

/* Stage-2 table descriptors carry no attributes: address and 0b11. */
static inline s2_pte_t fmt_make_table(const struct s2_fmt_cfg *c, int l, hpa_t table)
{
	(void)l;
	return a64_addr_to_desc(c, table) | A64_DESC_TABLE;
}

/*
 * What the walk uses: bit 0, and at levels above 1 either a table or a block
 * where blocks are allowed (elsewhere 0b01 is a translation fault). At level
 * 1 only 0b11 (page) is valid. Looks at bits 0..1 only.
 */
static inline bool fmt_is_present(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	if ((pte & A64_TYPE_MASK) == A64_DESC_TABLE)
		return true;
	return (pte & A64_TYPE_MASK) == A64_DESC_BLOCK && l > 1 && a64_block_ok(c, l);
}

static inline bool fmt_is_leaf(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	if (l == 1)
		return (pte & A64_TYPE_MASK) == A64_DESC_PAGE;
	return (pte & A64_TYPE_MASK) == A64_DESC_BLOCK && a64_block_ok(c, l);
}

static inline hpa_t fmt_leaf_hpa(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	return a64_desc_to_addr(c, pte) & a64_level_mask(c, l);
}

static inline hpa_t fmt_table_hpa(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)l;
	return a64_desc_to_addr(c, pte);
}

/*
 * S2_PROT_* of a leaf. W is S2AP[1], or DBM when hardware dirty state is on
 * (a write then only sets S2AP[1]). DIRTY is S2AP[1]: with HD that is what
 * hardware wrote; without HD a writable leaf may be written unseen, so it
 * counts as dirty while writable (as EPT without A/D).
 */
static inline unsigned fmt_leaf_prot(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	unsigned prot = 0;

	(void)l;
	if (pte & A64_S2AP_R)
		prot |= S2_PROT_R;
	if (pte & A64_S2AP_W)
		prot |= S2_PROT_W | S2_PROT_DIRTY;
	else if ((c->flags & S2_FMTF_HD) && (pte & A64_DBM))
		prot |= S2_PROT_W;
	if (pte & A64_AF)
		prot |= S2_PROT_ACCESSED;
	if (c->flags & S2_FMTF_XNX) {
		switch ((pte & A64_XN_MASK) >> A64_XN_SHIFT) {
		case A64_XN_NONE: prot |= S2_PROT_X | S2_PROT_XU; break;
		case A64_XN_UXN: prot |= S2_PROT_X; break;
		case A64_XN_PXN: prot |= S2_PROT_XU; break;
		default: break;
		}
	} else if (!(pte & (A64_XN_ALL << A64_XN_SHIFT))) {
		prot |= S2_PROT_X | S2_PROT_XU;
	}
	if (pte & A64_SW_HOST_WRITABLE)
		prot |= S2_PROT_HOST_WRITABLE;
	if (pte & A64_SW_MMU_WRITABLE)
		prot |= S2_PROT_MMU_WRITABLE;
	return prot;
}

static inline unsigned fmt_leaf_memtype(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	unsigned ma = (unsigned)((pte & A64_MEMATTR_MASK) >> A64_MEMATTR_SHIFT);

	(void)l;
	if (c->flags & S2_FMTF_FWB) {
		if (!(ma & 4))
			return (ma & 3) == 0 ? S2_MT_UC : S2_MT_DEVICE;
		switch (ma & 3) {
		case 1: return S2_MT_WC;
		case 2: return S2_MT_WB;
		case 3: return S2_MT_WT;
		default: return S2_MT_UC; /* reserved; never written */
		}
	}
	if ((ma >> 2) == 0)
		return (ma & 3) == 0 ? S2_MT_UC : S2_MT_DEVICE;
	if (ma == A64_MA_NORMAL_WB)
		return S2_MT_WB;
	if ((ma >> 2) == 1 || (ma & 3) == 1)
		return S2_MT_WC; /* non-cacheable on either side wins */
	return S2_MT_WT;
}

/* Same leaf with new S2_PROT_*: address, MemAttr, SH and type are kept. */
static inline s2_pte_t fmt_leaf_set_prot(const struct s2_fmt_cfg *c, s2_pte_t pte, int l,
					 unsigned prot)
{
	(void)l;
	return (pte & ~A64_PROT_BITS) | a64_encode_prot(c, prot);
}

static inline s2_pte_t fmt_make_mmio(const struct s2_fmt_cfg *c, gfn_t gfn)
{
	(void)c;
	return ((gfn & A64_MMIO_GFN_MASK) << 12) | A64_MMIO_LOW;
}

/* Faster forms of the derived helpers. */
#define FMT_HAS_IS_WRITABLE
static inline bool fmt_is_writable(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)l;
	return (pte & A64_S2AP_W) || ((c->flags & S2_FMTF_HD) && (pte & A64_DBM));
}

/* Write-protect: neither S2AP[1] nor DBM, so hardware cannot make it writable. */
#define FMT_HAS_WRPROTECT
static inline s2_pte_t fmt_wrprotect(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	(void)l;
	return pte & ~(A64_S2AP_W | A64_DBM);
}

#define FMT_HAS_IS_MMU_WRITABLE
static inline bool fmt_is_mmu_writable(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	(void)l;
	return pte & A64_SW_MMU_WRITABLE;
}

#define FMT_HAS_IS_HOST_WRITABLE
static inline bool fmt_is_host_writable(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	(void)l;
	return pte & A64_SW_HOST_WRITABLE;
}

/* ------------------------------------------------------------------------ */
/* TLB and cache maintenance (break-before-make)                            */
/* ------------------------------------------------------------------------ */

/*
 * Above this many granule pages a ranged invalidation becomes one
 * invalidation of the whole VMID (as Linux's MAX_TLBI_OPS).
 */
#define A64_TLBI_MAX_PAGES 512u

/*
 * VTTBR_EL2 of a root: BADDR[47:1], with BADDR[51:48] in bits 5:2 for a
 * 52-bit root (FEAT_LPA / FEAT_LPA2), VMID in 63:48 (16-bit) or 55:48. CnP 0.
 */
static inline uint64_t a64_vttbr(hpa_t root, uint32_t vmid, bool vmid16)
{
	uint64_t v = root & 0x0000fffffffffffeull;

	v |= ((root >> 48) & 0xf) << 2;
	v |= (uint64_t)(vmid & (vmid16 ? 0xffffu : 0xffu)) << 48;
	return v;
}

#if defined(__aarch64__) && S2_ENABLED(CONFIG_S2_ENV_FREESTANDING)
/* TLBI ...IS with DSB ISH completes on every CPU of the inner shareable
 * domain before the DSB does: the core's flush needs no vcpu requests. */
#define FMT_TLB_BROADCAST 1
/*
 * The real instructions. TLBI by IPA and VMALLS12E1IS act on the VMID in
 * the current VTTBR_EL2, so the VM's VTTBR is loaded around them when the
 * current one is another (as Linux's __tlb_switch_to_guest): callers need
 * not be in the VM's context. This assumes a non-VHE EL2 (HCR_EL2.TGE = 0,
 * else VMALLE1IS would hit the host's EL2&0 regime) with interrupts masked
 * for the duration, which is how a bare-metal hypervisor runs.
 */
static inline uint64_t a64_enter_vmid(const struct s2_fmt_cfg *c, struct kvm *kvm)
{
	uint64_t cur,
		want = a64_vttbr(kvm_mmu_root_hpa(kvm), kvm_vmid(kvm), c->flags & S2_FMTF_VMID16);

	__asm__ volatile("mrs %0, vttbr_el2" : "=r"(cur));
	if (cur != want)
		__asm__ volatile("msr vttbr_el2, %0\n\tisb" : : "r"(want) : "memory");
	return cur;
}

static inline void a64_exit_vmid(const struct s2_fmt_cfg *c, struct kvm *kvm, uint64_t saved)
{
	uint64_t want = a64_vttbr(kvm_mmu_root_hpa(kvm), kvm_vmid(kvm), c->flags & S2_FMTF_VMID16);

	if (saved != want)
		__asm__ volatile("msr vttbr_el2, %0\n\tisb" : : "r"(saved) : "memory");
}

/* Everything of this VMID, stage 1 and stage 2 (TLBI VMALLS12E1IS). */
static inline void fmt_tlb_flush_vm(const struct s2_fmt_cfg *c, const struct s2_env *env,
				    struct kvm *kvm)
{
	uint64_t saved;

	(void)env;
	saved = a64_enter_vmid(c, kvm);
	__asm__ volatile("dsb ishst\n\t"
			 "tlbi vmalls12e1is\n\t"
			 "dsb ish\n\t"
			 "isb"
			 :
			 :
			 : "memory");
	a64_exit_vmid(c, kvm, saved);
}

/*
 * Stage-2 entries for each granule page of [gpa, gpa + size) (TLBI
 * IPAS2E1IS, which also drops cached table entries for that IPA), then all
 * stage-1 entries of the VMID (VMALLE1IS): combined stage-1+2 TLB entries
 * cannot be found by IPA.
 */
#define FMT_HAS_TLB_FLUSH_RANGE 1
static inline void fmt_tlb_flush_range(const struct s2_fmt_cfg *c, const struct s2_env *env,
				       struct kvm *kvm, gpa_t gpa, uint64_t size)
{
	uint64_t page = 1ull << c->page_shift;
	uint64_t start = gpa & ~(page - 1), end = gpa + size, saved;

	if (size == 0)
		return;
	if ((end - start + page - 1) >> c->page_shift > A64_TLBI_MAX_PAGES) {
		fmt_tlb_flush_vm(c, env, kvm);
		return;
	}
	saved = a64_enter_vmid(c, kvm);
	__asm__ volatile("dsb ishst" : : : "memory");
	for (; start < end; start += page)
		__asm__ volatile("tlbi ipas2e1is, %0"
				 :
				 : "r"((start >> 12) & 0xffffffffffull)
				 : "memory");
	__asm__ volatile("dsb ish\n\t"
			 "tlbi vmalle1is\n\t"
			 "dsb ish\n\t"
			 "isb"
			 :
			 :
			 : "memory");
	a64_exit_vmid(c, kvm, saved);
}

/*
 * Clean and invalidate [pa, pa + size) to the point of coherency by VA
 * (DC CIVAC over the smallest data cache line CTR_EL0.DminLine reports), so
 * a guest running with its caches off sees what the host wrote.
 */
static inline void a64_dcache_clean_inval(const struct s2_env *env, hpa_t pa, uint64_t size)
{
	uint64_t ctr, line;
	uintptr_t va, end;

	if (env->ops->phys_to_virt)
		va = (uintptr_t)env->ops->phys_to_virt(env->ctx, pa);
	else
		va = (uintptr_t)(pa + (uint64_t)env->virt_offset);
	end = va + size;
	__asm__ volatile("mrs %0, ctr_el0" : "=r"(ctr));
	line = 4ull << ((ctr >> 16) & 0xf);
	for (va &= ~(uintptr_t)(line - 1); va < end; va += line)
		__asm__ volatile("dc civac, %0" : : "r"(va) : "memory");
	__asm__ volatile("dsb sy" : : : "memory");
}
#else
/*
 * Hosted builds and other CPUs: the environment's hooks, when it has them
 * (tests count the calls; an embedder driving arm64 from elsewhere, e.g. a
 * remote or emulated CPU, does the real work there). A missing ranged hook
 * falls back to the whole-VM hook.
 */
static inline void fmt_tlb_flush_vm(const struct s2_fmt_cfg *c, const struct s2_env *env,
				    struct kvm *kvm)
{
	(void)c;
	if (env && env->ops->tlb_flush_vm)
		env->ops->tlb_flush_vm(env->ctx, kvm);
}

#define FMT_HAS_TLB_FLUSH_RANGE 1
static inline void fmt_tlb_flush_range(const struct s2_fmt_cfg *c, const struct s2_env *env,
				       struct kvm *kvm, gpa_t gpa, uint64_t size)
{
	if (size == 0 || !env)
		return;
	if (env->ops->tlb_flush_range)
		env->ops->tlb_flush_range(env->ctx, kvm, gpa, size);
	else
		fmt_tlb_flush_vm(c, env, kvm);
}

static inline void a64_dcache_clean_inval(const struct s2_env *env, hpa_t pa, uint64_t size)
{
	if (env && env->ops->dcache_clean_inval)
		env->ops->dcache_clean_inval(env->ctx, pa, size);
}
#endif

/*
 * Break-before-make: a valid entry changes output address or size only
 * through invalid (rule 7). The core freezes it, flushes its range through
 * kvm_flush_remote_tlbs_range() (this format's TLBI by IPA; the VMID for a
 * table), cleans the new leaf's memory (below), then publishes.
 */
#define FMT_NEEDS_BBM 1

/*
 * Break-before-make, cache step: before memory at @pa is mapped, clean it to
 * the point of coherency so a guest with caches off (or mapping it
 * non-cacheable) reads what the host wrote. FEAT_S2FWB forces write-back
 * and makes this unnecessary.
 */
static inline bool fmt_leaf_needs_clean(const struct s2_fmt_cfg *c)
{
	return !(c->flags & S2_FMTF_FWB);
}

static inline void fmt_cache_clean(const struct s2_fmt_cfg *c, const struct s2_env *env, hpa_t pa,
				   uint64_t size)
{
	if (!fmt_leaf_needs_clean(c))
		return;
	a64_dcache_clean_inval(env, pa, size);
}

/* fmt/defaults.h derives fmt_is_frozen() and fmt_is_mmio() from these. */
#define FMT_MMIO_LOW A64_MMIO_LOW

/* The quick test of a level-1 entry (fmt/defaults.h): a page descriptor,
 * 0b11, is fmt_is_present() at level 1. */
#define FMT_LEAF1_BITS A64_DESC_PAGE

#include "fmt/defaults.h"

#endif
