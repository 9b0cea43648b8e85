/* SPDX-License-Identifier: MIT */
/*
 * The scrambled fake format: a made-up 64-bit format for host tests, in the
 * manner of Hafnium's fake architecture (src/arch/fake/mm.c). No hardware
 * walks it. Its point is that every level encodes entries differently, so
 * code that builds an entry for one level and reads it at another (or copies
 * a raw entry between levels) gets an entry that is not present, or a
 * different address and permissions, and host tests fail.
 *
 * Geometry: 4 levels of 512-entry 4 KiB tables, gpa widths 32..48, leaves at
 * levels 1..3, outputs up to 52 bits.
 *
 * Bits 0..11 hold a 12-bit flag pattern rotated left by 3 * level (mod 12):
 *
 *     pattern bit  0 Z   must be 0        6 M2  always 1
 *                  1 P   present, 1       7 X
 *                  2 LEAF (0 = table)     8 XU
 *                  3 M1  always 1         9 M3  always 1
 *                  4 R                   10 A
 *                  5 W                   11 D
 *
 * An entry is present at level l when pattern bit Z reads 0 and P reads 1
 * after undoing level l's rotation. Read at a level d = 1..3 away, those two
 * bits land on pattern bits (9,10), (6,7) or (3,4) of the writer's pattern,
 * whose first bit is an always-1 marker: so an entry is never present at a
 * level other than its own. (A plain shift by one per level would not do:
 * the writer's P would become the reader's Z at the next level, but two
 * levels up R would read as P.)
 *
 * Bits 51:12 hold the address XORed with a per-level key, so an address read
 * at the wrong level is wrong too. Memory type (3 bits), ignore-PAT,
 * host-writable and MMU-writable form a 6-bit field at bit 52 + 2 * (level-1)
 * (levels 1..3, leaves only).
 */
#ifndef S2MMU_FMT_FAKE_H
#define S2MMU_FMT_FAKE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/fmt_api.h"
#include "s2mmu/errno.h"
#include "s2mmu/kvm.h"
#include "s2mmu/prot.h"
#include "s2mmu/types.h"

#define FMT_ID S2_FMT_FAKE
#define FMT_NAME "fake"

/* Pattern bits (before rotation). */
#define FAKE_P_Z 0
#define FAKE_P_P 1
#define FAKE_P_LEAF 2
#define FAKE_P_M1 3
#define FAKE_P_R 4
#define FAKE_P_W 5
#define FAKE_P_M2 6
#define FAKE_P_X 7
#define FAKE_P_XU 8
#define FAKE_P_M3 9
#define FAKE_P_A 10
#define FAKE_P_D 11
#define FAKE_MARKERS ((1u << FAKE_P_M1) | (1u << FAKE_P_M2) | (1u << FAKE_P_M3))

#define FAKE_LOW_MASK 0xfffull
#define FAKE_ADDR_MASK 0x000ffffffffff000ull /* bits 51:12 */

/* The rotation of level l, and rotating a 12-bit pattern. */
#define FAKE_ROT(l) ((3u * (unsigned)(l)) % 12u)
#define FAKE_ROL12(v, r) ((((v) << (r)) | ((v) >> ((12u - (r)) % 12u))) & 0xfffu)
#define FAKE_ROR12(v, r) FAKE_ROL12((v), (12u - (r)) % 12u)

/* Present test at level l on raw bits: Z clear, P set, after un-rotating. */
#define FAKE_PRESENT_AT(v, l)                                      \
	((FAKE_ROR12((unsigned)((v)&FAKE_LOW_MASK), FAKE_ROT(l)) & \
	  ((1u << FAKE_P_Z) | (1u << FAKE_P_P))) == (1u << FAKE_P_P))

/* High field of a leaf: memtype 2:0, ignore-PAT 3, host-W 4, MMU-W 5. */
#define FAKE_HI_SHIFT(l) (52u + 2u * ((unsigned)(l)-1u))
#define FAKE_HI_MT 0x7ull
#define FAKE_HI_IPAT 0x8ull
#define FAKE_HI_HOSTW 0x10ull
#define FAKE_HI_MMUW 0x20ull
#define FAKE_HI_MASK 0x3full

/*
 * Special values: pattern-free constants with bits 0, 3, 6 and 9 set. Those
 * are the Z position of every level's rotation (0 for level 4, 3, 6, 9 for
 * levels 1..3), so they are present at no level.
 */
#define FAKE_ALL_Z 0x249ull
#define FMT_FROZEN (FAKE_ALL_Z | 0x800ull)
#define FAKE_MMIO_LOW (FAKE_ALL_Z | 0x400ull)
#define FAKE_MMIO_GFN_MASK ((1ull << 40) - 1)

_Static_assert(FAKE_ROT(1) == 3 && FAKE_ROT(2) == 6 && FAKE_ROT(3) == 9 && FAKE_ROT(4) == 0,
	       "fake rotations");
_Static_assert(FAKE_ROR12(FAKE_ROL12(0xabcu, 9u), 9u) == 0xabcu && FAKE_ROL12(0x801u, 3u) == 0x00cu,
	       "fake 12-bit rotation");
_Static_assert((FMT_FROZEN & ~FAKE_LOW_MASK) == 0, "FMT_FROZEN must have bits 12 and up clear");
_Static_assert(!FAKE_PRESENT_AT(FMT_FROZEN, 1) && !FAKE_PRESENT_AT(FMT_FROZEN, 2) &&
		       !FAKE_PRESENT_AT(FMT_FROZEN, 3) && !FAKE_PRESENT_AT(FMT_FROZEN, 4),
	       "FMT_FROZEN must be present at no level");
_Static_assert(!FAKE_PRESENT_AT(FAKE_MMIO_LOW, 1) && !FAKE_PRESENT_AT(FAKE_MMIO_LOW, 2) &&
		       !FAKE_PRESENT_AT(FAKE_MMIO_LOW, 3) && !FAKE_PRESENT_AT(FAKE_MMIO_LOW, 4),
	       "the MMIO value must be present at no level");
_Static_assert(FAKE_MMIO_LOW != FMT_FROZEN, "MMIO and frozen must differ in bits 0..11");
/* The markers are what keeps an entry from being present at another level. */
_Static_assert(!FAKE_PRESENT_AT(FAKE_ROL12((1u << FAKE_P_P) | 0xffcu, FAKE_ROT(1)), 2) &&
		       !FAKE_PRESENT_AT(FAKE_ROL12((1u << FAKE_P_P) | 0xffcu, FAKE_ROT(1)), 3) &&
		       !FAKE_PRESENT_AT(FAKE_ROL12((1u << FAKE_P_P) | 0xffcu, FAKE_ROT(1)), 4),
	       "an all-flags level-1 entry must be present at no other level");
/* Software bits (high field) never reach the address or the low pattern. */
_Static_assert(((FAKE_HI_MASK << FAKE_HI_SHIFT(1)) & (FAKE_ADDR_MASK | FAKE_LOW_MASK)) == 0 &&
		       FAKE_HI_SHIFT(3) + 6 <= 62,
	       "fake high field overlaps");
_Static_assert(((FAKE_MMIO_GFN_MASK << 12) & ~FAKE_ADDR_MASK) == 0,
	       "the MMIO gfn must stay in the address bits");

static inline int fmt_init_cfg(struct s2_fmt_cfg *c, const struct kvm_vm_params *p)
{
	if (!c || !p)
		return -EINVAL;
	if (p->granule != 0 && p->granule != 4096)
		return -EINVAL;
	if (p->fmt_flags & ~(unsigned)S2_FMTF_AD)
		return -EINVAL;
	if (p->gpa_bits < 32 || p->gpa_bits > 48)
		return -EINVAL;
	c->levels = 4;
	c->page_shift = 12;
	c->bits_per_level = 9;
	c->root_bits = 9;
	c->gpa_bits = (uint8_t)p->gpa_bits;
	c->pa_bits = 52;
	c->max_leaf_level = 3;
	c->min_leaf_level = 1;
	c->flags = p->fmt_flags;
	c->vmid = p->vmid;
	c->fmt_private = 0;
	return 0;
}

/* Per-level address key: distinct, non-zero, inside bits 51:12. */
static inline uint64_t fake_addr_key(int l)
{
	return ((uint64_t)(unsigned)l * 0x9e3779b97f4a7c15ull) & FAKE_ADDR_MASK;
}

static inline uint64_t fake_low(unsigned pattern, int l)
{
	return FAKE_ROL12(pattern & 0xfffu, FAKE_ROT(l));
}

static inline unsigned fake_pattern(s2_pte_t pte, int l)
{
	return FAKE_ROR12((unsigned)(pte & FAKE_LOW_MASK), FAKE_ROT(l));
}

static inline unsigned fake_prot_pattern(unsigned prot)
{
	unsigned v = 0;

	v |= (prot & S2_PROT_R) ? 1u << FAKE_P_R : 0;
	v |= (prot & S2_PROT_W) ? 1u << FAKE_P_W : 0;
	v |= (prot & S2_PROT_X) ? 1u << FAKE_P_X : 0;
	v |= (prot & S2_PROT_XU) ? 1u << FAKE_P_XU : 0;
	v |= (prot & S2_PROT_ACCESSED) ? 1u << FAKE_P_A : 0;
	v |= (prot & S2_PROT_DIRTY) ? 1u << FAKE_P_D : 0;
	return v;
}

static inline uint64_t fake_hi(unsigned prot, unsigned memtype)
{
	uint64_t hi = (memtype & S2_MT_MASK) < S2_MT_NR ? (memtype & S2_MT_MASK) : S2_MT_UC;

	if (memtype & S2_MT_IGNORE_PAT)
		hi |= FAKE_HI_IPAT;
	if (prot & S2_PROT_HOST_WRITABLE)
		hi |= FAKE_HI_HOSTW;
	if (prot & S2_PROT_MMU_WRITABLE)
		hi |= FAKE_HI_MMUW;
	return hi;
}

static inline s2_pte_t fmt_make_leaf(const struct s2_fmt_cfg *c, int l, hpa_t hpa, unsigned prot,
				     unsigned memtype)
{
	unsigned pat =
		(1u << FAKE_P_P) | (1u << FAKE_P_LEAF) | FAKE_MARKERS | fake_prot_pattern(prot);

	(void)c;
	return fake_low(pat, l) | ((hpa ^ fake_addr_key(l)) & FAKE_ADDR_MASK) |
	       (fake_hi(prot, memtype) << FAKE_HI_SHIFT(l));
}

/* Tables grant everything; LEAF is 0. */
static inline s2_pte_t fmt_make_table(const struct s2_fmt_cfg *c, int l, hpa_t table)
{
	unsigned pat = (1u << FAKE_P_P) | FAKE_MARKERS | (1u << FAKE_P_R) | (1u << FAKE_P_W) |
		       (1u << FAKE_P_X) | (1u << FAKE_P_XU);

	(void)c;
	return fake_low(pat, l) | ((table ^ fake_addr_key(l)) & FAKE_ADDR_MASK);
}

static inline bool fmt_is_present(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	return FAKE_PRESENT_AT(pte, l);
}

/* Leaves exist at levels 1..3; every present level-1 entry is one. */
static inline bool fmt_is_leaf(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	return fmt_is_present(c, pte, l) &&
	       (l == 1 || (l <= 3 && (fake_pattern(pte, l) & (1u << FAKE_P_LEAF))));
}

static inline hpa_t fmt_leaf_hpa(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	return (pte & FAKE_ADDR_MASK) ^ fake_addr_key(l);
}

static inline hpa_t fmt_table_hpa(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	return (pte & FAKE_ADDR_MASK) ^ fake_addr_key(l);
}

static inline unsigned fmt_leaf_prot(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	unsigned pat = fake_pattern(pte, l);
	uint64_t hi = (pte >> FAKE_HI_SHIFT(l)) & FAKE_HI_MASK;
	unsigned prot = 0;

	(void)c;
	prot |= (pat & (1u << FAKE_P_R)) ? S2_PROT_R : 0;
	prot |= (pat & (1u << FAKE_P_W)) ? S2_PROT_W : 0;
	prot |= (pat & (1u << FAKE_P_X)) ? S2_PROT_X : 0;
	prot |= (pat & (1u << FAKE_P_XU)) ? S2_PROT_XU : 0;
	prot |= (pat & (1u << FAKE_P_A)) ? S2_PROT_ACCESSED : 0;
	prot |= (pat & (1u << FAKE_P_D)) ? S2_PROT_DIRTY : 0;
	prot |= (hi & FAKE_HI_HOSTW) ? S2_PROT_HOST_WRITABLE : 0;
	prot |= (hi & FAKE_HI_MMUW) ? S2_PROT_MMU_WRITABLE : 0;
	return prot;
}

static inline unsigned fmt_leaf_memtype(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	uint64_t hi = (pte >> FAKE_HI_SHIFT(l)) & FAKE_HI_MASK;

	(void)c;
	return (unsigned)(hi & FAKE_HI_MT) | ((hi & FAKE_HI_IPAT) ? S2_MT_IGNORE_PAT : 0);
}

static inline s2_pte_t fmt_leaf_set_prot(const struct s2_fmt_cfg *c, s2_pte_t pte, int l,
					 unsigned prot)
{
	return fmt_make_leaf(c, l, fmt_leaf_hpa(c, pte, l), prot, fmt_leaf_memtype(c, pte, l));
}

static inline s2_pte_t fmt_make_mmio(const struct s2_fmt_cfg *c, gfn_t gfn)
{
	(void)c;
	return ((gfn & FAKE_MMIO_GFN_MASK) << 12) | FAKE_MMIO_LOW;
}

/*
 * "Hardware" invalidation is the environment's: hosted tests count calls to
 * these hooks. Having a ranged flush makes the fake format the one that
 * drives the core's precise ranged-flush path.
 */
static inline void fmt_tlb_flush_vm(const struct s2_fmt_cfg *c, const struct s2_env *env,
				    struct kvm *kvm)
{
	(void)c;
	if (env && env->ops && env->ops->tlb_flush_vm)
		env->ops->tlb_flush_vm(env->ctx, kvm);
}

#define FMT_HAS_TLB_FLUSH_RANGE 1
static inline void fmt_tlb_flush_range(const struct s2_fmt_cfg *c, const struct s2_env *env,
				       struct kvm *kvm, gpa_t gpa, uint64_t size)
{
	(void)c;
	if (env && env->ops && env->ops->tlb_flush_range)
		env->ops->tlb_flush_range(env->ctx, kvm, gpa, size);
}

/* fmt/defaults.h derives fmt_is_frozen() and fmt_is_mmio() from these. */
#define FMT_MMIO_LOW FAKE_MMIO_LOW

#include "fmt/defaults.h"

#endif
