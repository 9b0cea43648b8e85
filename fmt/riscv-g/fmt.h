/* SPDX-License-Identifier: MIT */
/*
 * RISC-V G-stage: the guest-physical stage of two-stage translation in the
 * hypervisor extension (privileged spec, "Two-Stage Address Translation"),
 * walks Sv39x4, Sv48x4 and Sv57x4.
 *
 * The contract is core/fmt_api.h; docs/fmt-riscv-g.md has the layout as a
 * table. Levels use the library's numbering (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB,
 * 4 = 512 GiB, 5 = 256 TiB); the spec counts from 0, so spec level i is our
 * level i + 1. The "x4" modes widen the root by two index bits: the root is
 * 2048 entries (16 KiB, 16 KiB aligned), every other table one 4 KiB page.
 *
 * Bits of an entry (hardware):
 *    0 V   1 R   2 W   3 X   4 U   5 G   6 A   7 D   9:8 RSW (software)
 *   53:10 PPN   60:54 reserved   62:61 PBMT (Svpbmt)   63 N (Svnapot)
 * R=W=X=0 with V=1 points at the next table; anything else with V=1 is a
 * leaf, at any level including the root (superpages). W without R is
 * reserved. G-stage accesses count as U-mode, so a leaf needs U=1.
 */
#ifndef S2MMU_FMT_RISCV_G_H
#define S2MMU_FMT_RISCV_G_H

#include <stdbool.h>
#include <stdint.h>

#include "core/fmt_api.h"
#include "s2mmu/config.h"
#include "s2mmu/env.h"
#include "s2mmu/errno.h"
#include "s2mmu/kvm.h"
#include "s2mmu/prot.h"
#include "s2mmu/riscv-g.h"
#include "s2mmu/types.h"

#define FMT_ID S2_FMT_RISCV_G
#define FMT_NAME "riscv-g"

/* Hardware bits. */
#define RVG_V (1ull << 0)
#define RVG_R (1ull << 1)
#define RVG_W (1ull << 2)
#define RVG_X (1ull << 3)
#define RVG_U (1ull << 4)
#define RVG_G (1ull << 5)
#define RVG_A (1ull << 6)
#define RVG_D (1ull << 7)
#define RVG_PPN_SHIFT 10
#define RVG_PPN_MASK (((1ull << 44) - 1) << RVG_PPN_SHIFT) /* bits 53:10 */
#define RVG_RSVD_MASK (0x7full << 54)			   /* bits 60:54 */
#define RVG_PBMT_SHIFT 61
#define RVG_PBMT_MASK (3ull << RVG_PBMT_SHIFT)
#define RVG_N (1ull << 63)
#define RVG_RWX (RVG_R | RVG_W | RVG_X)

#define RVG_HW_BITS                                                                     \
	(RVG_V | RVG_R | RVG_W | RVG_X | RVG_U | RVG_G | RVG_A | RVG_D | RVG_PPN_MASK | \
	 RVG_RSVD_MASK | RVG_PBMT_MASK | RVG_N)

/* Svpbmt memory types; 3 is reserved. */
#define RVG_PBMT_PMA 0ull
#define RVG_PBMT_NC 1ull
#define RVG_PBMT_IO 2ull

/*
 * Software bits. The PTE has only the two RSW bits that hardware ignores at
 * every level (bits 63:54 are reserved or taken by extensions), so they go
 * to the two states the core keeps per leaf. The frozen and MMIO values do
 * not need a third bit: they are non-present (V=0), and with V=0 every other
 * bit is the software's, so a pattern in bits 1..11 tells them apart.
 */
#define RVG_SW_HOST_WRITABLE (1ull << 8)
#define RVG_SW_MMU_WRITABLE (1ull << 9)
#define RVG_SW_BITS (RVG_SW_HOST_WRITABLE | RVG_SW_MMU_WRITABLE)

#define RVG_LOW_MASK 0xfffull

/*
 * The frozen value: V=0, and U=0 so it is unlike a leaf that lost its
 * permissions (those keep U=1, see rvg_encode_prot()).
 */
#define FMT_FROZEN 0x7e0ull
/*
 * The MMIO value: V=0, U=0, a pattern unlike FMT_FROZEN; the gfn in bits
 * 58:12 (reserved bits included: with V=0 hardware looks at nothing else).
 */
#define RVG_MMIO_LOW 0x00aull
#define RVG_MMIO_GFN_MASK ((1ull << 47) - 1)

/* hfence.gvma by address above this many pages becomes one by VMID. */
#ifdef CONFIG_S2_RISCV_G_FLUSH_RANGE_MAX_PAGES
#define RVG_FLUSH_RANGE_MAX_PAGES ((uint64_t)CONFIG_S2_RISCV_G_FLUSH_RANGE_MAX_PAGES)
#else
#define RVG_FLUSH_RANGE_MAX_PAGES 64ull
#endif

#define RVG_FMTF_ALL (S2_FMTF_AD | S2_FMTF_PBMT)

_Static_assert((RVG_SW_BITS & RVG_HW_BITS) == 0, "G-stage software bits overlap hardware bits");
_Static_assert((RVG_SW_HOST_WRITABLE & RVG_SW_MMU_WRITABLE) == 0,
	       "host-writable and MMU-writable need distinct bits");
_Static_assert((RVG_V & ~RVG_LOW_MASK) == 0, "the present test must look only at bits 0..11");
_Static_assert((FMT_FROZEN & ~RVG_LOW_MASK) == 0, "FMT_FROZEN must have bits 12 and up clear");
_Static_assert((FMT_FROZEN & RVG_V) == 0 && (RVG_MMIO_LOW & RVG_V) == 0,
	       "frozen and MMIO values must be non-present (V=0)");
_Static_assert((RVG_MMIO_LOW & ~RVG_LOW_MASK) == 0 && RVG_MMIO_LOW != FMT_FROZEN &&
		       RVG_MMIO_LOW != 0 && FMT_FROZEN != 0,
	       "frozen, MMIO and zapped values must differ in bits 0..11");
_Static_assert((FMT_FROZEN & RVG_U) == 0 && (RVG_MMIO_LOW & RVG_U) == 0,
	       "a leaf without permissions (V=0, U=1) must not look frozen or MMIO");
_Static_assert(RVG_MMIO_GFN_MASK == (1ull << (59 - 12)) - 1 &&
		       ((RVG_MMIO_GFN_MASK << 12) >> 12) == RVG_MMIO_GFN_MASK,
	       "the MMIO value holds every gfn of a 59-bit gpa above bit 11");
_Static_assert((RVG_PPN_MASK >> RVG_PPN_SHIFT) << 12 == (1ull << 56) - 4096,
	       "PPN 53:10 encodes a 56-bit physical address");
_Static_assert((8ull << 11) == 16384, "the x4 root is 2048 entries, 16 KiB");
_Static_assert(S2_HGATP_MODE_SV48X4 == S2_HGATP_MODE_SV39X4 + 1 &&
		       S2_HGATP_MODE_SV57X4 == S2_HGATP_MODE_SV39X4 + 2,
	       "fmt_init_cfg() derives hgatp.MODE from the level count");

/*
 * gpa_bits up to 41 walk Sv39x4 (3 levels), up to 50 Sv48x4 (4), up to 59
 * Sv57x4 (5). Narrower widths than the mode's still use its full root; under
 * 32 bits is refused as no RISC-V guest platform is that small. Leaves are
 * allowed at every level the walk has, the root included, as the spec does
 * (the core clamps to the configured largest leaf). cfg->fmt_private keeps
 * hgatp.MODE.
 */
static inline int fmt_init_cfg(struct s2_fmt_cfg *c, const struct kvm_vm_params *p)
{
	unsigned levels;

	if (!c || !p)
		return -EINVAL;
	if (p->granule != 0 && p->granule != 4096)
		return -EINVAL;
	if (p->fmt_flags & ~(unsigned)RVG_FMTF_ALL)
		return -EINVAL;
	if (p->gpa_bits < 32 || p->gpa_bits > 59)
		return -EINVAL;
	if (p->vmid > S2_HGATP_VMID_MAX)
		return -EINVAL;
	levels = p->gpa_bits <= 41 ? 3 : p->gpa_bits <= 50 ? 4 : 5;
	c->levels = (uint8_t)levels;
	c->page_shift = 12;
	c->bits_per_level = 9;
	c->root_bits = 11;
	c->gpa_bits = (uint8_t)p->gpa_bits;
	c->pa_bits = 56;
	c->max_leaf_level = (uint8_t)levels;
	c->min_leaf_level = 1;
	c->flags = p->fmt_flags;
	c->vmid = p->vmid;
	c->fmt_private = (uint32_t)(S2_HGATP_MODE_SV39X4 + (levels - 3));
	return 0;
}

/*
 * Svpbmt type of an S2_MT_*. Without Svpbmt the bits are reserved and only
 * PMA (the platform's attribute, normally write-back) is expressible, so
 * every type encodes as PMA. With it: WB is PMA, WC is NC; WT and WP, which
 * have no RISC-V counterpart, become NC too (never stale, still idempotent);
 * UC, device and anything unknown become IO.
 */
static inline uint64_t rvg_encode_memtype(const struct s2_fmt_cfg *c, unsigned memtype)
{
	uint64_t t;

	if (!(c->flags & S2_FMTF_PBMT))
		return 0;
	switch (memtype & S2_MT_MASK) {
	case S2_MT_WB: t = RVG_PBMT_PMA; break;
	case S2_MT_WC:
	case S2_MT_WT:
	case S2_MT_WP: t = RVG_PBMT_NC; break;
	default: t = RVG_PBMT_IO; break;
	}
	return t << RVG_PBMT_SHIFT;
}

/*
 * V, R/W/X, A/D and software bits of a leaf from S2_PROT_*.
 *
 * W without R is reserved, so W brings R. The G-stage has one execute
 * permission, so X or XU sets it. With Svadu (S2_FMTF_AD) A and D are what
 * @prot says and hardware sets them. Without it a hart faults on A=0, or on
 * a write with D=0, and expects software to set them; the core does not
 * handle such faults, so A is always set and D whenever the leaf is writable,
 * here and on every protection change (a fault would otherwise find nothing
 * to fix and repeat). A leaf that grants nothing cannot be encoded (R=W=X=0
 * with V=1 points at a table), so it is made non-present (V=0) instead; it
 * keeps U=1, which the frozen and MMIO values never have.
 */
static inline uint64_t rvg_encode_prot(const struct s2_fmt_cfg *c, unsigned prot)
{
	uint64_t v = 0;

	if (prot & (S2_PROT_R | S2_PROT_W))
		v |= RVG_R;
	if (prot & S2_PROT_W)
		v |= RVG_W;
	if (prot & (S2_PROT_X | S2_PROT_XU))
		v |= RVG_X;
	if (v)
		v |= RVG_V;
	if (c->flags & S2_FMTF_AD) {
		if (prot & S2_PROT_ACCESSED)
			v |= RVG_A;
		if (prot & S2_PROT_DIRTY)
			v |= RVG_D;
	} else {
		v |= RVG_A;
		if (prot & (S2_PROT_W | S2_PROT_DIRTY))
			v |= RVG_D;
	}
	if (prot & S2_PROT_HOST_WRITABLE)
		v |= RVG_SW_HOST_WRITABLE;
	if (prot & S2_PROT_MMU_WRITABLE)
		v |= RVG_SW_MMU_WRITABLE;
	return v;
}

/* Bits rvg_encode_prot() owns; fmt_leaf_set_prot() replaces exactly these. */
#define RVG_PROT_BITS (RVG_V | RVG_RWX | RVG_A | RVG_D | RVG_SW_BITS)

static inline uint64_t rvg_pa_to_ppn(hpa_t pa)
{
	return (pa >> 12 << RVG_PPN_SHIFT) & RVG_PPN_MASK;
}

static inline hpa_t rvg_ppn_to_pa(s2_pte_t pte)
{
	return (pte & RVG_PPN_MASK) >> RVG_PPN_SHIFT << 12;
}

static inline s2_pte_t fmt_make_leaf(const struct s2_fmt_cfg *c, int l, hpa_t hpa, unsigned prot,
				     unsigned memtype)
{
	(void)l;
	return rvg_pa_to_ppn(hpa) | RVG_U | rvg_encode_prot(c, prot) |
	       rvg_encode_memtype(c, memtype);
}

/* A non-leaf is V with R=W=X=0; U, A, D and PBMT must be zero there. */
static inline s2_pte_t fmt_make_table(const struct s2_fmt_cfg *c, int l, hpa_t table)
{
	(void)c;
	(void)l;
	return rvg_pa_to_ppn(table) | RVG_V;
}

static inline bool fmt_is_present(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	(void)l;
	return pte & RVG_V;
}

/* Any of R/W/X makes a leaf at any level; level 1 holds nothing else. */
static inline bool fmt_is_leaf(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	return (pte & RVG_V) && (l == 1 || (pte & RVG_RWX));
}

static inline hpa_t fmt_leaf_hpa(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	(void)l;
	return rvg_ppn_to_pa(pte);
}

static inline hpa_t fmt_table_hpa(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	(void)l;
	return rvg_ppn_to_pa(pte);
}

/* The single execute permission is reported as both X and XU, as EPT
 * without MBEC does. */
static inline unsigned fmt_leaf_prot(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	unsigned prot = 0;

	(void)c;
	(void)l;
	if (pte & RVG_R)
		prot |= S2_PROT_R;
	if (pte & RVG_W)
		prot |= S2_PROT_W;
	if (pte & RVG_X)
		prot |= S2_PROT_X | S2_PROT_XU;
	if (pte & RVG_A)
		prot |= S2_PROT_ACCESSED;
	if (pte & RVG_D)
		prot |= S2_PROT_DIRTY;
	if (pte & RVG_SW_HOST_WRITABLE)
		prot |= S2_PROT_HOST_WRITABLE;
	if (pte & RVG_SW_MMU_WRITABLE)
		prot |= S2_PROT_MMU_WRITABLE;
	return prot;
}

static inline unsigned fmt_leaf_memtype(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)l;
	if (!(c->flags & S2_FMTF_PBMT))
		return S2_MT_WB;
	switch ((pte & RVG_PBMT_MASK) >> RVG_PBMT_SHIFT) {
	case RVG_PBMT_PMA: return S2_MT_WB;
	case RVG_PBMT_NC: return S2_MT_WC;
	default: return S2_MT_UC;
	}
}

/* Same leaf with new S2_PROT_*: address, U and PBMT are kept. */
static inline s2_pte_t fmt_leaf_set_prot(const struct s2_fmt_cfg *c, s2_pte_t pte, int l,
					 unsigned prot)
{
	(void)l;
	return (pte & ~RVG_PROT_BITS) | rvg_encode_prot(c, prot);
}

static inline s2_pte_t fmt_make_mmio(const struct s2_fmt_cfg *c, gfn_t gfn)
{
	(void)c;
	return ((gfn & RVG_MMIO_GFN_MASK) << 12) | RVG_MMIO_LOW;
}

/*
 * HFENCE.GVMA (R-type, opcode SYSTEM 0x73, funct3 0, funct7 0x31, rd x0):
 * rs1 = gpa >> 2 or x0 for every address, rs2 = VMID. It orders this hart's
 * earlier page-table stores before its later G-stage walks and drops its
 * cached translations; it is local to the hart that runs it. Emitted only in
 * the freestanding riscv64 build, where the library runs in HS-mode; a
 * hosted build (tests, tools) has no such instruction to run.
 */
#if defined(__riscv) && __riscv_xlen == 64 && defined(CONFIG_S2_ENV_FREESTANDING)
#define RVG_HAVE_HFENCE 1
static inline void rvg_hfence_gvma_vmid(uint64_t vmid)
{
	__asm__ volatile(".insn r 0x73, 0, 0x31, x0, x0, %0" : : "r"(vmid) : "memory");
}

static inline void rvg_hfence_gvma_gpa(uint64_t gpa, uint64_t vmid)
{
	__asm__ volatile(".insn r 0x73, 0, 0x31, x0, %0, %1"
			 :
			 : "r"(gpa >> 2), "r"(vmid)
			 : "memory");
}
#else
#define RVG_HAVE_HFENCE 0
#endif

/*
 * Flush the whole VMID: HFENCE.GVMA on this hart (freestanding riscv64),
 * then the embedder's hook, if any, which reaches the other harts (SBI
 * remote HFENCE or IPIs). vcpus also get KVM_REQ_TLB_FLUSH from the core and
 * fence on their own hart before re-entry.
 */
static inline void fmt_tlb_flush_vm(const struct s2_fmt_cfg *c, const struct s2_env *env,
				    struct kvm *kvm)
{
	(void)c;
#if RVG_HAVE_HFENCE
	rvg_hfence_gvma_vmid(kvm_vmid(kvm));
#endif
	if (env && env->ops && env->ops->tlb_flush_vm)
		env->ops->tlb_flush_vm(env->ctx, kvm);
}

#define FMT_HAS_TLB_FLUSH_RANGE 1

/*
 * Flush [gpa, gpa + size): one HFENCE.GVMA per 4 KiB page (a fence by
 * address drops every translation that covers it, superpages too), or one
 * by VMID when the range is longer than RVG_FLUSH_RANGE_MAX_PAGES, where a
 * full flush is cheaper than the loop. The embedder's range hook (or, if it
 * has none, its VM hook) then covers the other harts.
 */
static inline void fmt_tlb_flush_range(const struct s2_fmt_cfg *c, const struct s2_env *env,
				       struct kvm *kvm, gpa_t gpa, uint64_t size)
{
#if RVG_HAVE_HFENCE
	uint64_t start = gpa & ~0xfffull;
	uint64_t pages = (gpa + size - start + 0xfff) >> 12;
	uint64_t vmid = kvm_vmid(kvm);

	if (pages > RVG_FLUSH_RANGE_MAX_PAGES) {
		rvg_hfence_gvma_vmid(vmid);
	} else {
		for (uint64_t i = 0; i < pages; i++)
			rvg_hfence_gvma_gpa(start + (i << 12), vmid);
	}
#endif
	(void)c;
	if (!env || !env->ops)
		return;
	if (env->ops->tlb_flush_range)
		env->ops->tlb_flush_range(env->ctx, kvm, gpa, size);
	else if (env->ops->tlb_flush_vm)
		env->ops->tlb_flush_vm(env->ctx, kvm);
}

/* One bit each at every level: fmt/defaults.h derives the fast tests. */
#define FMT_W_BIT RVG_W
#define FMT_MMU_WRITABLE_BIT RVG_SW_MMU_WRITABLE
#define FMT_HOST_WRITABLE_BIT RVG_SW_HOST_WRITABLE

/* fmt/defaults.h derives fmt_is_frozen() and fmt_is_mmio() from these. */
#define FMT_MMIO_LOW RVG_MMIO_LOW

/* The quick test of a level-1 entry (fmt/defaults.h): V is fmt_is_present()
 * itself. */
#define FMT_LEAF1_BITS RVG_V

#include "fmt/defaults.h"

#endif
