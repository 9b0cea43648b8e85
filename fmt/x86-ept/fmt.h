/* SPDX-License-Identifier: MIT */
/*
 * Intel EPT (extended page tables), Intel SDM vol. 3C ch. 29 "EPT".
 *
 * The format contract is core/fmt_api.h; docs/fmt-x86-ept.md has the layout
 * as a table. Levels use the library's numbering: level 1 is the EPT PTE
 * (4 KiB), 2 the PDE (2 MiB), 3 the PDPTE (1 GiB), 4 the PML4E and 5 the
 * PML5E. Every table, the root included, is one 4 KiB page of 512 entries.
 *
 * Bits of an entry (hardware):
 *    0 R    1 W    2 X (supervisor-mode execute when MBEC is on)
 *    5:3 EPT memory type (leaves)      6 ignore PAT (leaves)
 *    7 page size (levels 2 and 3; reserved at 4 and 5; ignored at 1)
 *    8 accessed    9 dirty (leaves)   -- written by the CPU only when EPTP[6]
 *   10 user-mode execute (MBEC only)  11 ignored
 *   51:12 address (MAXPHYADDR taken as 52, the architectural maximum)
 *   56:52 ignored   57 verify-guest-paging, 58 paging-write (only with the
 *   matching VM-execution controls)   59 ignored   60 supervisor shadow
 *   stack (only with EPTP[7])   61 sub-page write (only with SPP)
 *   62 ignored   63 suppress #VE (leaves)
 *
 * An entry is used by the CPU when any of bits 2:0 is set, or bit 10 with
 * MBEC. W without R is an EPT misconfiguration, which is what the MMIO value
 * relies on; fmt_is_present() therefore means "usable": R, or X/XU without W.
 */
#ifndef S2MMU_FMT_X86_EPT_H
#define S2MMU_FMT_X86_EPT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/fmt_api.h"
#include "s2mmu/config.h"
#include "s2mmu/errno.h"
#include "s2mmu/kvm.h"
#include "s2mmu/prot.h"
#include "s2mmu/types.h"

#define FMT_ID S2_FMT_X86_EPT
#define FMT_NAME "x86-ept"

/* Hardware bits. */
#define EPT_R (1ull << 0)
#define EPT_W (1ull << 1)
#define EPT_X (1ull << 2)
#define EPT_MT_SHIFT 3
#define EPT_MT_MASK (7ull << EPT_MT_SHIFT)
#define EPT_IPAT (1ull << 6)
#define EPT_PS (1ull << 7)
#define EPT_A (1ull << 8)
#define EPT_D (1ull << 9)
#define EPT_XU (1ull << 10)
#define EPT_ADDR_MASK 0x000ffffffffff000ull /* bits 51:12 */
#define EPT_VGP (1ull << 57)
#define EPT_PW (1ull << 58)
#define EPT_SSS (1ull << 60)
#define EPT_SPP (1ull << 61)
#define EPT_SVE (1ull << 63)

/* Every bit hardware interprets under some VM-execution control. */
#define EPT_HW_BITS                                                                         \
	(EPT_R | EPT_W | EPT_X | EPT_MT_MASK | EPT_IPAT | EPT_PS | EPT_A | EPT_D | EPT_XU | \
	 EPT_ADDR_MASK | EPT_VGP | EPT_PW | EPT_SSS | EPT_SPP | EPT_SVE)

/* EPT memory types (SDM "EPT and memory typing"). 2, 3 and 7 are reserved. */
#define EPT_MT_UC 0u
#define EPT_MT_WC 1u
#define EPT_MT_WT 4u
#define EPT_MT_WP 5u
#define EPT_MT_WB 6u

/*
 * Software bits. Bits 59 and 62 are ignored in every EPT entry whatever the
 * VM-execution controls; KVM uses 57/58 instead, but those become
 * verify-guest-paging and paging-write when an embedder turns HLAT on, and
 * the embedder, not this library, owns the VMCS. Bits 56:52 stay free for
 * the MMIO value's gfn and for later formats' needs (TDX).
 */
#define EPT_SW_HOST_WRITABLE (1ull << 59)
#define EPT_SW_MMU_WRITABLE (1ull << 62)
#define EPT_SW_BITS (EPT_SW_HOST_WRITABLE | EPT_SW_MMU_WRITABLE)

/*
 * The frozen value: bits 2:0 and 10 clear, so the CPU sees a non-present
 * entry (also with MBEC). Bit 11 is ignored everywhere and makes the pattern
 * unlike anything the format writes otherwise.
 */
#define FMT_FROZEN 0x9a0ull
#define EPT_LOW_MASK 0xfffull

/*
 * The MMIO value: W without R is an EPT misconfiguration, so a guest access
 * exits with "EPT misconfiguration" instead of "EPT violation", and the
 * embedder emulates without a walk. The gfn sits in bits 56:12 (45 bits,
 * enough for a 57-bit gpa); those bits are address or ignored bits, never
 * looked at once the entry is found misconfigured.
 */
#define EPT_MMIO_LOW EPT_W
#define EPT_MMIO_GFN_MASK ((1ull << 45) - 1)

/*
 * "Usable" test over bits 0..11: something granted, and not W without R.
 * @pm is the mask of bits that make the CPU use the entry (bits 2:0, plus
 * bit 10 with MBEC).
 */
#define EPT_PRESENT_MASK_MBEC (EPT_R | EPT_W | EPT_X | EPT_XU)
#define EPT_PRESENT_MASK (EPT_R | EPT_W | EPT_X)
#define EPT_USABLE(v, pm) (((v) & (pm)) != 0 && ((v) & (EPT_R | EPT_W)) != EPT_W)

_Static_assert((EPT_SW_BITS & EPT_HW_BITS) == 0, "EPT software bits overlap hardware bits");
_Static_assert((EPT_PRESENT_MASK_MBEC & ~EPT_LOW_MASK) == 0,
	       "EPT present test must look only at bits 0..11");
_Static_assert((FMT_FROZEN & ~EPT_LOW_MASK) == 0, "FMT_FROZEN must have bits 12 and up clear");
_Static_assert(!EPT_USABLE(FMT_FROZEN, EPT_PRESENT_MASK_MBEC) &&
		       (FMT_FROZEN & EPT_PRESENT_MASK_MBEC) == 0,
	       "FMT_FROZEN must be non-present to software and hardware");
_Static_assert(!EPT_USABLE(EPT_MMIO_LOW, EPT_PRESENT_MASK_MBEC),
	       "the MMIO value must never be present");
_Static_assert((EPT_MMIO_LOW & (EPT_R | EPT_W)) == EPT_W,
	       "the MMIO value must be an EPT misconfiguration (W without R)");
_Static_assert((EPT_MMIO_LOW & ~EPT_LOW_MASK) == 0 && (EPT_MMIO_LOW & EPT_LOW_MASK) != FMT_FROZEN,
	       "MMIO and frozen values must be told apart by bits 0..11");
_Static_assert(((EPT_MMIO_GFN_MASK << 12) & (EPT_SW_BITS | EPT_SVE)) == 0,
	       "the MMIO gfn must not reach the software bits");
/* fmt_present_mask() turns S2_FMTF_MBEC into bit 10 with one shift. */
_Static_assert((unsigned long long)S2_FMTF_MBEC << 9 == EPT_XU,
	       "S2_FMTF_MBEC moved; fix fmt_present_mask()");
_Static_assert(S2_PROT_R == EPT_R && S2_PROT_W == EPT_W && S2_PROT_X == EPT_X,
	       "fmt_make_leaf() copies R/W/X straight from S2_PROT_*");

#define EPT_FMTF_ALL (S2_FMTF_AD | S2_FMTF_MBEC | S2_FMTF_SUPPRESS_VE)

/*
 * A TD's non-present value (issue 12, docs/tdx.md): a TD takes a #VE, not an
 * EPT violation, on any entry without suppress-#VE, so in a TD's direct root
 * every non-present entry (zapped, or never written in a new table) carries
 * bit 63, as KVM's SHADOW_NONPRESENT_VALUE. EPT_CFG_TD_SVE is a cfg->flags
 * bit set by kvm_tdx_init() only (fmt_init_cfg() refuses it from an
 * embedder); other VMs keep 0. Bit 31 of the flags becomes bit 63 with one
 * shift.
 */
#define EPT_CFG_TD_SVE (1u << 31)
#define FMT_HAS_NONPRESENT
static inline s2_pte_t fmt_nonpresent(const struct s2_fmt_cfg *c)
{
	return (s2_pte_t)(c->flags & EPT_CFG_TD_SVE) << 32;
}

_Static_assert(((s2_pte_t)EPT_CFG_TD_SVE << 32) == EPT_SVE, "fix fmt_nonpresent()");
_Static_assert((EPT_FMTF_ALL & EPT_CFG_TD_SVE) == 0, "EPT_CFG_TD_SVE is not an embedder's flag");
_Static_assert(!EPT_USABLE(EPT_SVE, EPT_PRESENT_MASK_MBEC) && (EPT_SVE & EPT_LOW_MASK) == 0,
	       "the TD non-present value must be non-present, neither frozen nor MMIO");

static inline uint64_t fmt_present_mask(const struct s2_fmt_cfg *c)
{
	return EPT_PRESENT_MASK | (((uint64_t)c->flags & S2_FMTF_MBEC) << 9);
}

/*
 * gpa_bits up to 48 walk 4 levels from a PML4; 49..57 walk 5 from a PML5,
 * which needs CONFIG_S2_EPT_5LEVEL. Widths under 32 bits are refused as no
 * x86 guest has them.
 */
static inline int fmt_init_cfg(struct s2_fmt_cfg *c, const struct kvm_vm_params *p)
{
	unsigned levels;

	if (!c || !p)
		return -EINVAL;
	if (p->granule != 0 && p->granule != 4096)
		return -EINVAL;
	if (p->fmt_flags & ~(unsigned)EPT_FMTF_ALL)
		return -EINVAL;
	if (p->gpa_bits < 32 || p->gpa_bits > 57)
		return -EINVAL;
	levels = p->gpa_bits <= 48 ? 4 : 5;
#if !defined(CONFIG_S2_EPT_5LEVEL)
	if (levels == 5)
		return -EINVAL;
#endif
	c->levels = (uint8_t)levels;
	c->page_shift = 12;
	c->bits_per_level = 9;
	c->root_bits = 9;
	c->gpa_bits = (uint8_t)p->gpa_bits;
	c->pa_bits = 52;
	c->max_leaf_level = 3;
	c->min_leaf_level = 1;
	c->flags = p->fmt_flags;
	c->vmid = p->vmid;
	c->fmt_private = EPT_MT_WB; /* EPTP paging-structure memory type */
	return 0;
}

static inline uint64_t ept_encode_memtype(unsigned memtype)
{
	uint64_t mt;

	switch (memtype & S2_MT_MASK) {
	case S2_MT_WB: mt = EPT_MT_WB; break;
	case S2_MT_WC: mt = EPT_MT_WC; break;
	case S2_MT_WT: mt = EPT_MT_WT; break;
	case S2_MT_WP: mt = EPT_MT_WP; break;
	/* UC, device and anything unknown: uncacheable is always safe. */
	default: mt = EPT_MT_UC; break;
	}
	mt <<= EPT_MT_SHIFT;
	if (memtype & S2_MT_IGNORE_PAT)
		mt |= EPT_IPAT;
	return mt;
}

/*
 * Permission and state bits of a leaf from S2_PROT_*. W alone cannot be
 * expressed (it is a misconfiguration), so W brings R with it. Without MBEC
 * bit 2 grants execute in both modes, so either X or XU sets it; with MBEC
 * X is bit 2 and XU bit 10. A and D are written only when the EPTP enables
 * them (otherwise the CPU ignores bits 8 and 9 and so does the format).
 */
static inline uint64_t ept_encode_prot(const struct s2_fmt_cfg *c, unsigned prot)
{
	uint64_t v = prot & (S2_PROT_R | S2_PROT_W | S2_PROT_X);

	if (prot & S2_PROT_W)
		v |= EPT_R;
	if (c->flags & S2_FMTF_MBEC) {
		if (prot & S2_PROT_XU)
			v |= EPT_XU;
	} else if (prot & S2_PROT_XU) {
		v |= EPT_X;
	}
	if (c->flags & S2_FMTF_AD) {
		if (prot & S2_PROT_ACCESSED)
			v |= EPT_A;
		if (prot & S2_PROT_DIRTY)
			v |= EPT_D;
	}
	if (prot & S2_PROT_HOST_WRITABLE)
		v |= EPT_SW_HOST_WRITABLE;
	if (prot & S2_PROT_MMU_WRITABLE)
		v |= EPT_SW_MMU_WRITABLE;
	return v;
}

/* Bits ept_encode_prot() owns; fmt_leaf_set_prot() replaces exactly these. */
#define EPT_PROT_BITS (EPT_R | EPT_W | EPT_X | EPT_XU | EPT_A | EPT_D | EPT_SW_BITS)

static inline s2_pte_t fmt_make_leaf(const struct s2_fmt_cfg *c, int l, hpa_t hpa, unsigned prot,
				     unsigned memtype)
{
	s2_pte_t pte =
		(hpa & EPT_ADDR_MASK) | ept_encode_prot(c, prot) | ept_encode_memtype(memtype);

	if (l == 2 || l == 3)
		pte |= EPT_PS;
	if (c->flags & S2_FMTF_SUPPRESS_VE)
		pte |= EPT_SVE;
	return pte;
}

/*
 * A non-leaf grants everything: permissions are decided at the leaf. Bits
 * 7:3 must stay clear (reserved) and bit 7 clear means "table" at levels 2/3.
 */
static inline s2_pte_t fmt_make_table(const struct s2_fmt_cfg *c, int l, hpa_t table)
{
	(void)l;
	return (table & EPT_ADDR_MASK) | EPT_R | EPT_W | EPT_X |
	       (((uint64_t)c->flags & S2_FMTF_MBEC) << 9);
}

static inline bool fmt_is_present(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)l;
	return EPT_USABLE(pte, fmt_present_mask(c));
}

/* Page size is a leaf marker only at levels 2 and 3; level 1 always maps. */
static inline bool fmt_is_leaf(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	return fmt_is_present(c, pte, l) && (l == 1 || ((l == 2 || l == 3) && (pte & EPT_PS)));
}

static inline hpa_t fmt_leaf_hpa(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	(void)l;
	return pte & EPT_ADDR_MASK;
}

static inline hpa_t fmt_table_hpa(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	(void)l;
	return pte & EPT_ADDR_MASK;
}

/*
 * Without A/D enabled the CPU never writes bits 8 and 9, so they say
 * nothing. The leaf is then reported the way KVM treats an A/D-less spte:
 * accessed while present (aging cannot tell, so the core uses access
 * tracking, below) and dirty while writable (dirty logging
 * must write-protect to learn anything; never losing a write is what counts).
 */
static inline unsigned fmt_leaf_prot(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	unsigned prot = (unsigned)(pte & (EPT_R | EPT_W | EPT_X));

	(void)l;
	if (c->flags & S2_FMTF_MBEC) {
		if (pte & EPT_XU)
			prot |= S2_PROT_XU;
	} else if (pte & EPT_X) {
		prot |= S2_PROT_XU;
	}
	if (c->flags & S2_FMTF_AD) {
		if (pte & EPT_A)
			prot |= S2_PROT_ACCESSED;
		if (pte & EPT_D)
			prot |= S2_PROT_DIRTY;
	} else {
		prot |= S2_PROT_ACCESSED;
		if (pte & EPT_W)
			prot |= S2_PROT_DIRTY;
	}
	if (pte & EPT_SW_HOST_WRITABLE)
		prot |= S2_PROT_HOST_WRITABLE;
	if (pte & EPT_SW_MMU_WRITABLE)
		prot |= S2_PROT_MMU_WRITABLE;
	return prot;
}

static inline unsigned fmt_leaf_memtype(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	unsigned mt;

	(void)c;
	(void)l;
	switch ((pte & EPT_MT_MASK) >> EPT_MT_SHIFT) {
	case EPT_MT_WB: mt = S2_MT_WB; break;
	case EPT_MT_WC: mt = S2_MT_WC; break;
	case EPT_MT_WT: mt = S2_MT_WT; break;
	case EPT_MT_WP: mt = S2_MT_WP; break;
	default: mt = S2_MT_UC; break;
	}
	if (pte & EPT_IPAT)
		mt |= S2_MT_IGNORE_PAT;
	return mt;
}

/*
 * Same leaf with new S2_PROT_*: address, memory type, page size and
 * suppress-#VE are kept. Granting nothing (no R/X/XU) makes the entry
 * non-present; that is the caller's choice to make.
 */
static inline s2_pte_t fmt_leaf_set_prot(const struct s2_fmt_cfg *c, s2_pte_t pte, int l,
					 unsigned prot)
{
	(void)l;
	return (pte & ~EPT_PROT_BITS) | ept_encode_prot(c, prot);
}

static inline s2_pte_t fmt_make_mmio(const struct s2_fmt_cfg *c, gfn_t gfn)
{
	(void)c;
	return ((gfn & EPT_MMIO_GFN_MASK) << 12) | EPT_MMIO_LOW;
}

/*
 * INVEPT invalidates only the logical CPU that runs it, so there is nothing
 * to broadcast: every vcpu runs INVEPT when it handles KVM_REQ_TLB_FLUSH,
 * which the core's flush raises. Hence no ranged flush either.
 */
static inline void fmt_tlb_flush_vm(const struct s2_fmt_cfg *c, const struct s2_env *env,
				    struct kvm *kvm)
{
	(void)c;
	(void)env;
	(void)kvm;
}

#define FMT_HAS_TLB_FLUSH_RANGE 0

/*
 * Access tracking (fmt/defaults.h), for VMs without A/D: aging makes a leaf
 * non-present by clearing bits 2:0 and 10, and keeps what R, X and XU were
 * in bits 52..54 (ignored in every entry; with R/W/X/XU all clear the CPU
 * looks at nothing else). W is dropped, as KVM does: the first write after
 * the restore faults, so write tracking and dirty logging see it. A saved
 * bit is always set (a leaf grants R, X or XU), so the value is never 0,
 * never the MMIO value (W set) and never frozen (bits 52 and up clear).
 */
#define EPT_AT_SAVED_SHIFT 52
#define EPT_AT_SAVED_R (1ull << 52)
#define EPT_AT_SAVED_X (1ull << 53)
#define EPT_AT_SAVED_XU (1ull << 54)
#define EPT_AT_SAVED (EPT_AT_SAVED_R | EPT_AT_SAVED_X | EPT_AT_SAVED_XU)

_Static_assert((EPT_AT_SAVED & (EPT_HW_BITS | EPT_SW_BITS)) == 0,
	       "access-tracking bits overlap hardware or software bits");
_Static_assert((FMT_FROZEN & EPT_AT_SAVED) == 0 && (EPT_ADDR_MASK & EPT_AT_SAVED) == 0,
	       "a frozen value (with a table address) must never look access-tracked");
_Static_assert((EPT_MMIO_LOW & EPT_W) != 0,
	       "the MMIO value has W, which an access-tracked value never has");

#define FMT_HAS_ACCESS_TRACK 1
static inline bool fmt_can_access_track(const struct s2_fmt_cfg *c)
{
	return !(c->flags & S2_FMTF_AD);
}

static inline bool fmt_is_access_tracked(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	(void)l;
	return !(pte & (EPT_R | EPT_W | EPT_X | EPT_XU)) && (pte & EPT_AT_SAVED);
}

static inline s2_pte_t fmt_mk_access_tracked(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	s2_pte_t saved = 0;

	(void)l;
	if (pte & EPT_R)
		saved |= EPT_AT_SAVED_R;
	if (pte & EPT_X)
		saved |= EPT_AT_SAVED_X;
	if ((c->flags & S2_FMTF_MBEC) && (pte & EPT_XU))
		saved |= EPT_AT_SAVED_XU;
	return (pte & ~(EPT_R | EPT_W | EPT_X | EPT_XU)) | saved;
}

static inline s2_pte_t fmt_restore_access_tracked(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	s2_pte_t v = pte & ~EPT_AT_SAVED;

	(void)c;
	(void)l;
	if (pte & EPT_AT_SAVED_R)
		v |= EPT_R;
	if (pte & EPT_AT_SAVED_X)
		v |= EPT_X;
	if (pte & EPT_AT_SAVED_XU)
		v |= EPT_XU;
	return v;
}

/* One bit each at every level: fmt/defaults.h derives the fast tests. */
#define FMT_WRPROTECT_CLEARS_W_BIT
#define FMT_W_BIT EPT_W
#define FMT_MMU_WRITABLE_BIT EPT_SW_MMU_WRITABLE
#define FMT_HOST_WRITABLE_BIT EPT_SW_HOST_WRITABLE

/* fmt/defaults.h derives fmt_is_frozen() and fmt_is_mmio() from these. */
#define FMT_MMIO_LOW EPT_MMIO_LOW

/* The quick tests of a level-1 entry (fmt/defaults.h): R makes it usable
 * (W without R is the only unusable combination with R, X or XU set); a
 * saved R with R, W, X and XU clear is an access-tracked leaf. */
#define FMT_LEAF1_BITS EPT_R
#define FMT_TRACKED1_MASK (EPT_R | EPT_W | EPT_X | EPT_XU | EPT_AT_SAVED_R)
#define FMT_TRACKED1_VALUE EPT_AT_SAVED_R

#include "fmt/defaults.h"

#endif
