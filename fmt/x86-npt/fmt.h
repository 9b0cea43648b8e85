/* SPDX-License-Identifier: MIT */
/*
 * AMD nested paging (AMD64 APM vol. 2, "Nested Paging" and "Long-Mode Page
 * Translation"): the nested table is an ordinary x86-64 long-mode page table
 * walked with guest-physical addresses as input.
 *
 * The contract is core/fmt_api.h; docs/fmt-x86-npt.md has the layout as a
 * table. Levels use the library's numbering: 1 PTE (4 KiB), 2 PDE (2 MiB),
 * 3 PDPE (1 GiB), 4 PML4E, 5 PML5E. Every table, the root included, is one
 * 4 KiB page of 512 entries.
 *
 * Bits of an entry (hardware):
 *    0 P   1 R/W   2 U/S   3 PWT   4 PCD   5 A
 *    6 D (leaves; ignored in tables)   7 PS at levels 2 and 3, PAT at level
 *    1, must be zero at 4 and 5   8 G (leaves; must be zero at 4 and 5)
 *   11:9 available   12 PAT of a 2 MiB / 1 GiB leaf   51:12 address (a large
 *   leaf's address starts at bit 21 or 30; the bits between are reserved)
 *   62:52 available   63 NX (execute disable; EFER.NXE is on in any
 *   64-bit host)
 * Nested walks are user-mode accesses, so U/S must be set at every level,
 * and write and execute are the AND over the levels, like any x86 walk.
 */
#ifndef S2MMU_FMT_X86_NPT_H
#define S2MMU_FMT_X86_NPT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/fmt_api.h"
#include "s2mmu/config.h"
#include "s2mmu/env.h"
#include "s2mmu/errno.h"
#include "s2mmu/kvm.h"
#include "s2mmu/prot.h"
#include "s2mmu/types.h"
#include "s2mmu/x86-npt.h"

#define FMT_ID S2_FMT_X86_NPT
#define FMT_NAME "x86-npt"

/* Hardware bits. */
#define NPT_P (1ull << 0)
#define NPT_RW (1ull << 1)
#define NPT_US (1ull << 2)
#define NPT_PWT (1ull << 3)
#define NPT_PCD (1ull << 4)
#define NPT_A (1ull << 5)
#define NPT_D (1ull << 6)
#define NPT_PS (1ull << 7)
#define NPT_PAT_4K (1ull << 7)
#define NPT_G (1ull << 8)
#define NPT_PAT_LARGE (1ull << 12)
#define NPT_ADDR_MASK 0x000ffffffffff000ull /* bits 51:12 */
#define NPT_NX (1ull << 63)

#define NPT_HW_BITS                                                                     \
	(NPT_P | NPT_RW | NPT_US | NPT_PWT | NPT_PCD | NPT_A | NPT_D | NPT_PS | NPT_G | \
	 NPT_ADDR_MASK | NPT_NX)

/*
 * Software bits: two of the AVL bits 11:9, which hardware ignores in every
 * entry at every level (bits 62:52 are free too, but 62:59 become the
 * protection key of a leaf under CR4.PKE on the stage-1 side of the same
 * format, so the low ones are the portable choice). Bit 11 stays free.
 */
#define NPT_SW_HOST_WRITABLE (1ull << 9)
#define NPT_SW_MMU_WRITABLE (1ull << 10)
#define NPT_SW_BITS (NPT_SW_HOST_WRITABLE | NPT_SW_MMU_WRITABLE)

#define NPT_LOW_MASK 0xfffull

/*
 * The frozen value: P=0, and U/S clear so it is unlike a leaf that lost all
 * permissions (those keep U/S set, see npt_encode_prot()).
 */
#define FMT_FROZEN 0x7e0ull
/*
 * The MMIO value (docs/mmio.md): U/S clear, a pattern unlike FMT_FROZEN in
 * bits 11:1, the memslot generation from bit 12 (the core keeps at most 40
 * bits of it; the field holds 45). Two forms, per VM (cfg->fmt_private):
 * - P=0: an access exits with a not-present NPF like any empty entry; with
 *   P=0 hardware looks at no other bit.
 * - P=1 with bits 51:M set, M the host's MAXPHYADDR below 52
 *   (kvm_vm_params.host_pa_bits, cached MMIO entries on): those address
 *   bits are reserved, so the walk stops there with a reserved-bit NPF
 *   (EXITINFO1 P and RSV set, APM vol. 2 "Page-Fault Error Code") and the
 *   embedder knows the entry is MMIO before asking the library (KVM's MMIO
 *   caching on SVM). The generation stays below bit M.
 * U/S clear keeps both forms out of fmt_is_present(): every present entry
 * the library writes has U/S (nested walks are user accesses).
 */
#define NPT_MMIO_LOW 0x00aull
#define NPT_MMIO_GFN_MASK ((1ull << 45) - 1)

/* PAT indices (PAT:PCD:PWT) under S2_NPT_PAT_DEFAULT. */
#define NPT_PAT_IDX_WB 0u
#define NPT_PAT_IDX_WT 1u
#define NPT_PAT_IDX_UC_MINUS 2u
#define NPT_PAT_IDX_UC 3u

#define NPT_FMTF_ALL S2_FMTF_AD

_Static_assert((NPT_SW_BITS & NPT_HW_BITS) == 0, "NPT software bits overlap hardware bits");
_Static_assert((NPT_SW_BITS & NPT_PAT_LARGE) == 0 &&
		       (NPT_SW_HOST_WRITABLE & NPT_SW_MMU_WRITABLE) == 0,
	       "NPT software bits must be distinct and clear of PAT");
_Static_assert((NPT_P & ~NPT_LOW_MASK) == 0, "the present test must look only at bits 0..11");
_Static_assert((FMT_FROZEN & ~NPT_LOW_MASK) == 0, "FMT_FROZEN must have bits 12 and up clear");
_Static_assert((FMT_FROZEN & NPT_P) == 0 && (NPT_MMIO_LOW & NPT_P) == 0,
	       "frozen and MMIO values must be non-present (P=0)");
_Static_assert((NPT_MMIO_LOW & ~NPT_LOW_MASK) == 0 && NPT_MMIO_LOW != FMT_FROZEN &&
		       NPT_MMIO_LOW != 0 && FMT_FROZEN != 0,
	       "frozen, MMIO and zapped values must differ in bits 0..11");
_Static_assert((FMT_FROZEN & NPT_US) == 0 && (NPT_MMIO_LOW & NPT_US) == 0,
	       "a leaf without permissions (P=0, U/S=1) must not look frozen or MMIO");
_Static_assert(((NPT_MMIO_LOW | NPT_P) & NPT_US) == 0 && (NPT_MMIO_LOW | NPT_P) != FMT_FROZEN,
	       "the reserved-bit MMIO form (P=1) must not be present to the library");
_Static_assert(((NPT_MMIO_GFN_MASK << 12) & NPT_NX) == 0 &&
		       NPT_MMIO_GFN_MASK == (1ull << (57 - 12)) - 1,
	       "the MMIO value holds every gfn of a 57-bit gpa");
_Static_assert(S2_NPT_PAT_DEFAULT == 0x0007040600070406ull,
	       "the memory type table below assumes the power-on PAT");

/*
 * gpa_bits up to 48 walk 4 levels from a PML4, 49..57 walk 5 from a PML5
 * (the host must then run with CR4.LA57). Under 32 bits is refused, as for
 * EPT. The CPU always maintains A and D in nested entries, so S2_FMTF_AD is
 * set whether asked for or not. cfg->vmid is the ASID the embedder puts in
 * the VMCB.
 */
static inline int fmt_init_cfg(struct s2_fmt_cfg *c, const struct kvm_vm_params *p)
{
	unsigned levels;

	if (!c || !p)
		return -EINVAL;
	if (p->granule != 0 && p->granule != 4096)
		return -EINVAL;
	if (p->fmt_flags & ~(unsigned)NPT_FMTF_ALL)
		return -EINVAL;
	if (p->gpa_bits < 32 || p->gpa_bits > 57)
		return -EINVAL;
	levels = p->gpa_bits <= 48 ? 4 : 5;
	c->levels = (uint8_t)levels;
	c->page_shift = 12;
	c->bits_per_level = 9;
	c->root_bits = 9;
	c->gpa_bits = (uint8_t)p->gpa_bits;
	c->pa_bits = 52;
	c->max_leaf_level = 3;
	c->min_leaf_level = 1;
	c->flags = p->fmt_flags | S2_FMTF_AD;
	c->vmid = p->vmid;
	c->fmt_private = 0;
	/*
	 * host_pa_bits: the host's MAXPHYADDR (0: not given). Below 52 and
	 * with cached MMIO entries on, MMIO entries take the reserved-bit form;
	 * the generation must fit below it.
	 */
	if (p->host_pa_bits && (p->host_pa_bits < 32 || p->host_pa_bits > 52))
		return -EINVAL;
	if (p->mmio_cache == S2_MMIO_CACHE_ON && p->host_pa_bits && p->host_pa_bits < 52) {
		if (12 + (p->mmio_gen_bits ? p->mmio_gen_bits : 20) > p->host_pa_bits)
			return -EINVAL;
		c->fmt_private = p->host_pa_bits;
	}
	return 0;
}

/*
 * PWT/PCD of a leaf for an S2_MT_*, under the power-on PAT (PAT bit clear,
 * so indices 0..3): WB 0, WT 1, UC 3. The power-on PAT has no WC or WP, so
 * both take UC- (index 2: uncacheable unless an MTRR says WC), the usual
 * fallback; device and unknown types take UC.
 */
static inline uint64_t npt_encode_memtype(unsigned memtype)
{
	switch (memtype & S2_MT_MASK) {
	case S2_MT_WB: return 0;
	case S2_MT_WT: return NPT_PWT;
	case S2_MT_WC:
	case S2_MT_WP: return NPT_PCD;
	default: return NPT_PCD | NPT_PWT;
	}
}

/*
 * P, R/W, NX, A/D and software bits of a leaf from S2_PROT_*. x86 cannot
 * express write or execute without read, so P stands for "anything
 * granted"; one execute permission, so X or XU clears NX. A leaf that grants
 * nothing is written non-present (P=0) with the rest kept (U/S included,
 * which the frozen and MMIO values never have).
 */
static inline uint64_t npt_encode_prot(unsigned prot)
{
	uint64_t v = NPT_NX;

	if (prot & (S2_PROT_R | S2_PROT_W | S2_PROT_X | S2_PROT_XU))
		v |= NPT_P;
	if (prot & S2_PROT_W)
		v |= NPT_RW;
	if (prot & (S2_PROT_X | S2_PROT_XU))
		v &= ~NPT_NX;
	if (prot & S2_PROT_ACCESSED)
		v |= NPT_A;
	if (prot & S2_PROT_DIRTY)
		v |= NPT_D;
	if (prot & S2_PROT_HOST_WRITABLE)
		v |= NPT_SW_HOST_WRITABLE;
	if (prot & S2_PROT_MMU_WRITABLE)
		v |= NPT_SW_MMU_WRITABLE;
	return v;
}

/* Bits npt_encode_prot() owns; fmt_leaf_set_prot() replaces exactly these. */
#define NPT_PROT_BITS (NPT_P | NPT_RW | NPT_NX | NPT_A | NPT_D | NPT_SW_BITS)

/* Address bits of a leaf at @l: 51:12, 51:21 or 51:30 (PAT sits at 12). */
static inline uint64_t npt_leaf_addr_mask(int l)
{
	return NPT_ADDR_MASK & ~((1ull << (12 + 9 * (l - 1))) - 1);
}

static inline s2_pte_t fmt_make_leaf(const struct s2_fmt_cfg *c, int l, hpa_t hpa, unsigned prot,
				     unsigned memtype)
{
	(void)c;
	return (hpa & npt_leaf_addr_mask(l)) | NPT_US | npt_encode_prot(prot) |
	       npt_encode_memtype(memtype) | (l >= 2 ? NPT_PS : 0);
}

/*
 * A table entry grants everything (write and execute are ANDed over the
 * levels, so they are decided at the leaf) and must have U/S. A is left to
 * the CPU; PS, G (reserved at levels 4 and 5) and PWT/PCD stay clear.
 */
static inline s2_pte_t fmt_make_table(const struct s2_fmt_cfg *c, int l, hpa_t table)
{
	(void)c;
	(void)l;
	return (table & NPT_ADDR_MASK) | NPT_P | NPT_RW | NPT_US;
}

/* P and U/S: the reserved-bit MMIO form has P without U/S. */
static inline bool fmt_is_present(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	(void)l;
	return (pte & (NPT_P | NPT_US)) == (NPT_P | NPT_US);
}

/* PS marks a leaf at levels 2 and 3 only (bit 7 is PAT at level 1). */
static inline bool fmt_is_leaf(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	return fmt_is_present(c, pte, l) && (l == 1 || (l <= 3 && (pte & NPT_PS)));
}

static inline hpa_t fmt_leaf_hpa(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	return pte & npt_leaf_addr_mask(l);
}

static inline hpa_t fmt_table_hpa(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	(void)l;
	return pte & NPT_ADDR_MASK;
}

/* A present leaf grants read; execute reads back as both X and XU. */
static inline unsigned fmt_leaf_prot(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	unsigned prot = 0;

	(void)c;
	(void)l;
	if (pte & NPT_P)
		prot |= S2_PROT_R;
	if (pte & NPT_RW)
		prot |= S2_PROT_W;
	if (!(pte & NPT_NX))
		prot |= S2_PROT_X | S2_PROT_XU;
	if (pte & NPT_A)
		prot |= S2_PROT_ACCESSED;
	if (pte & NPT_D)
		prot |= S2_PROT_DIRTY;
	if (pte & NPT_SW_HOST_WRITABLE)
		prot |= S2_PROT_HOST_WRITABLE;
	if (pte & NPT_SW_MMU_WRITABLE)
		prot |= S2_PROT_MMU_WRITABLE;
	return prot;
}

/*
 * The type the power-on PAT gives the leaf's PAT index. Its entries 4..7
 * repeat 0..3, so the PAT bit (never set by this format) changes nothing;
 * UC- reads as UC.
 */
static inline unsigned fmt_leaf_memtype(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	(void)l;
	switch ((pte & (NPT_PWT | NPT_PCD)) >> 3) {
	case NPT_PAT_IDX_WB: return S2_MT_WB;
	case NPT_PAT_IDX_WT: return S2_MT_WT;
	default: return S2_MT_UC;
	}
}

/* Same leaf with new S2_PROT_*: address, size, U/S and memory type kept. */
static inline s2_pte_t fmt_leaf_set_prot(const struct s2_fmt_cfg *c, s2_pte_t pte, int l,
					 unsigned prot)
{
	(void)c;
	(void)l;
	return (pte & ~NPT_PROT_BITS) | npt_encode_prot(prot);
}

/* @gen: the memslot generation (the core's masked value, below bit M - 12). */
static inline s2_pte_t fmt_make_mmio(const struct s2_fmt_cfg *c, gfn_t gen)
{
	s2_pte_t v = ((gen & NPT_MMIO_GFN_MASK) << 12) | NPT_MMIO_LOW;

	if (c->fmt_private)
		v |= NPT_P | (NPT_ADDR_MASK & ~((1ull << c->fmt_private) - 1));
	return v;
}

/* Either form: bits 11:1 (P says which form). */
#define FMT_HAS_IS_MMIO
static inline bool fmt_is_mmio(const struct s2_fmt_cfg *c, s2_pte_t pte)
{
	(void)c;
	return (pte & (NPT_LOW_MASK & ~NPT_P)) == NPT_MMIO_LOW;
}

/*
 * Nested TLB entries are tagged by ASID and dropped by the VMCB's
 * TLB_CONTROL at the next VMRUN, which only the vcpu's own CPU can do: each
 * vcpu sets it when it handles KVM_REQ_TLB_FLUSH, which the core's flush
 * raises. Nothing to broadcast, and no ranged form (INVLPGA takes guest
 * virtual addresses, not guest-physical ones).
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
 * The CPU always keeps A and D in nested entries, so every dirty-log
 * protection and every aging asks whether a leaf is young and dirty (is
 * hardware done writing it?): one bit each, at every level, tested directly
 * rather than through fmt_leaf_prot().
 */
#define FMT_HAS_IS_YOUNG
static inline bool fmt_is_young(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	(void)l;
	return pte & NPT_A;
}
#define FMT_HAS_IS_DIRTY
static inline bool fmt_is_dirty(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	(void)l;
	return pte & NPT_D;
}

/* One bit each at every level: fmt/defaults.h derives the fast tests. */
#define FMT_WRPROTECT_CLEARS_W_BIT
#define FMT_W_BIT NPT_RW
#define FMT_MMU_WRITABLE_BIT NPT_SW_MMU_WRITABLE
#define FMT_HOST_WRITABLE_BIT NPT_SW_HOST_WRITABLE

/* fmt/defaults.h derives fmt_is_frozen() and fmt_is_mmio() from these. */
#define FMT_MMIO_LOW NPT_MMIO_LOW

/* The quick test of a level-1 entry (fmt/defaults.h): P and U/S are
 * fmt_is_present() itself. */
#define FMT_LEAF1_BITS (NPT_P | NPT_US)

#include "fmt/defaults.h"

#endif
