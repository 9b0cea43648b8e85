/* SPDX-License-Identifier: MIT */
/*
 * Contract functions a format may leave out, derived from fmt_leaf_prot() and
 * fmt_leaf_set_prot(). A format that has a faster form defines FMT_HAS_<NAME>
 * and its own function before including this header.
 */
#ifndef S2MMU_FMT_DEFAULTS_H
#define S2MMU_FMT_DEFAULTS_H

#include "s2mmu/prot.h"

/* The format's TLB instructions are broadcast by architecture (core/fmt_api.h
 * struct s2_fmt_ops tlb_broadcast); most act on the calling CPU only. */
#ifndef FMT_TLB_BROADCAST
#define FMT_TLB_BROADCAST 0
#endif

/*
 * Formats whose hardware-writable bit and software bits are one bit each, at
 * every level, say so with FMT_W_BIT, FMT_MMU_WRITABLE_BIT and
 * FMT_HOST_WRITABLE_BIT, and get these one-test forms instead of a decode.
 * FMT_WRPROTECT_CLEARS_W_BIT adds a write-protect that clears only that bit,
 * for formats where nothing else depends on it (RISC-V without Svadu keeps D
 * in step with W, so it writes protect through fmt_leaf_set_prot).
 */
#if defined(FMT_W_BIT) && !defined(FMT_HAS_IS_WRITABLE)
#define FMT_HAS_IS_WRITABLE
static inline bool fmt_is_writable(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	(void)l;
	return pte & FMT_W_BIT;
}
#endif
#if defined(FMT_WRPROTECT_CLEARS_W_BIT) && !defined(FMT_HAS_WRPROTECT)
#define FMT_HAS_WRPROTECT
static inline s2_pte_t fmt_wrprotect(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	(void)l;
	return pte & ~(s2_pte_t)FMT_W_BIT;
}
#endif
#if defined(FMT_MMU_WRITABLE_BIT) && !defined(FMT_HAS_IS_MMU_WRITABLE)
#define FMT_HAS_IS_MMU_WRITABLE
static inline bool fmt_is_mmu_writable(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	(void)l;
	return pte & FMT_MMU_WRITABLE_BIT;
}
#endif
#if defined(FMT_HOST_WRITABLE_BIT) && !defined(FMT_HAS_IS_HOST_WRITABLE)
#define FMT_HAS_IS_HOST_WRITABLE
static inline bool fmt_is_host_writable(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	(void)l;
	return pte & FMT_HOST_WRITABLE_BIT;
}
#endif

/*
 * The special values are told apart by their low 12 bits only (the format
 * contract), so FMT_FROZEN | table address is still frozen and an MMIO value
 * carries its gfn above them: FMT_FROZEN and FMT_MMIO_LOW are all a format
 * needs to give.
 */
#ifndef FMT_HAS_IS_FROZEN
static inline bool fmt_is_frozen(s2_pte_t pte)
{
	return (pte & 0xfffull) == FMT_FROZEN;
}
#endif
#ifndef FMT_HAS_IS_MMIO
static inline bool fmt_is_mmio(const struct s2_fmt_cfg *c, s2_pte_t pte)
{
	(void)c;
	return (pte & 0xfffull) == FMT_MMIO_LOW;
}
#endif

/*
 * The non-present value: what a zap writes and what fills a new table. 0
 * unless the format says otherwise for a VM (EPT in a TD: bit 63,
 * suppress-#VE, fmt/x86-ept/fmt.h). Whatever it is, it is not present, not
 * frozen, not MMIO and not access-tracked, so every walker that asks
 * fmt_is_present() and friends reads it as empty.
 */
#ifndef FMT_HAS_NONPRESENT
static inline s2_pte_t fmt_nonpresent(const struct s2_fmt_cfg *c)
{
	(void)c;
	return 0;
}
#endif

/*
 * Quick tests for loops over a whole level-1 table (the zap of a table,
 * core/mmu_tmpl.h zap_table_locked()): an entry with every bit of
 * FMT_LEAF1_BITS set is present at level 1 (so a leaf: level 1 holds
 * nothing else), and one with (pte & FMT_TRACKED1_MASK) ==
 * FMT_TRACKED1_VALUE is access-tracked at level 1. They are one and-compare
 * in place of the format's full tests for the common entry, and need only be
 * sound, not exact: an entry that fails them takes the full tests. The
 * defaults pass nothing. Bits 0..11 only, so no MMIO gfn or address can make
 * the frozen or MMIO value pass.
 */
#ifndef FMT_LEAF1_BITS
#define FMT_LEAF1_BITS 0
#endif
#ifndef FMT_TRACKED1_MASK
#define FMT_TRACKED1_MASK 0
#define FMT_TRACKED1_VALUE 1
#endif
_Static_assert((FMT_LEAF1_BITS & ~0xfffull) == 0 &&
		       (FMT_LEAF1_BITS == 0 || ((FMT_FROZEN & FMT_LEAF1_BITS) != FMT_LEAF1_BITS &&
						(FMT_MMIO_LOW & FMT_LEAF1_BITS) != FMT_LEAF1_BITS)),
	       "FMT_LEAF1_BITS must look at bits 0..11 only and never pass frozen or MMIO values");
_Static_assert((FMT_TRACKED1_VALUE & ~FMT_TRACKED1_MASK) == 0 || FMT_TRACKED1_MASK == 0,
	       "FMT_TRACKED1_VALUE must lie inside FMT_TRACKED1_MASK");

#ifndef FMT_HAS_IS_YOUNG
static inline bool fmt_is_young(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	return fmt_leaf_prot(c, pte, l) & S2_PROT_ACCESSED;
}
#endif
#ifndef FMT_HAS_MKOLD
static inline s2_pte_t fmt_mkold(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	return fmt_leaf_set_prot(c, pte, l, fmt_leaf_prot(c, pte, l) & ~S2_PROT_ACCESSED);
}
#endif
#ifndef FMT_HAS_MKYOUNG
static inline s2_pte_t fmt_mkyoung(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	return fmt_leaf_set_prot(c, pte, l, fmt_leaf_prot(c, pte, l) | S2_PROT_ACCESSED);
}
#endif
/*
 * The bits of a level-@l leaf that hold Accessed, where the format keeps it
 * in the entry (aging tests and clears them as a mask; debug builds check
 * that against fmt_is_young/fmt_mkold): derived from a leaf made with and
 * without S2_PROT_ACCESSED. 0 where every present leaf reads accessed (EPT
 * without A/D, G-stage without Svadu); aging then needs access tracking
 * (below) or can only answer "young". A format whose Accessed state is not
 * such a mask defines FMT_HAS_ACCESSED_MASK and a function returning 0.
 */
#ifndef FMT_HAS_ACCESSED_MASK
static inline s2_pte_t fmt_accessed_mask(const struct s2_fmt_cfg *c, int l)
{
	unsigned p = S2_PROT_R | S2_PROT_X;

	return fmt_make_leaf(c, l, 0, p | S2_PROT_ACCESSED, S2_MT_WB) ^
	       fmt_make_leaf(c, l, 0, p, S2_MT_WB);
}
#endif
/*
 * Access tracking: aging without Accessed bits. A format that can make a
 * present leaf non-present to hardware but restorable defines
 * FMT_HAS_ACCESS_TRACK and these four:
 *   bool fmt_can_access_track(c)       this VM uses it (e.g. EPT without A/D)
 *   s2_pte_t fmt_mk_access_tracked(c, pte, l)
 *       a value hardware treats as not present, that is neither 0, frozen
 *       nor MMIO, and keeps the output address, memory type, page size,
 *       software bits and the R/X/XU permissions (not W: a write after the
 *       restore faults, so write tracking and dirty logging see it)
 *   bool fmt_is_access_tracked(c, pte, l)   such a value, at level l
 *   s2_pte_t fmt_restore_access_tracked(c, pte, l)
 *       the present leaf again (R/X/XU, accessed, not writable)
 * The core then treats a tracked value as a mapped leaf everywhere except
 * in what hardware sees: zap removes it (with a flush, a TLB may hold it),
 * write-protection edits it, and a fault restores it without asking the
 * host for the pfn. The default says "unsupported".
 */
#ifndef FMT_HAS_ACCESS_TRACK
#define FMT_HAS_ACCESS_TRACK 0
static inline bool fmt_can_access_track(const struct s2_fmt_cfg *c)
{
	(void)c;
	return false;
}
static inline s2_pte_t fmt_mk_access_tracked(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	(void)l;
	return pte;
}
static inline bool fmt_is_access_tracked(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	(void)pte;
	(void)l;
	return false;
}
static inline s2_pte_t fmt_restore_access_tracked(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	(void)c;
	(void)l;
	return pte;
}
#endif
#ifndef FMT_HAS_IS_DIRTY
static inline bool fmt_is_dirty(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	return fmt_leaf_prot(c, pte, l) & S2_PROT_DIRTY;
}
#endif
#ifndef FMT_HAS_MKCLEAN
static inline s2_pte_t fmt_mkclean(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	return fmt_leaf_set_prot(c, pte, l, fmt_leaf_prot(c, pte, l) & ~S2_PROT_DIRTY);
}
#endif
#ifndef FMT_HAS_IS_WRITABLE
static inline bool fmt_is_writable(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	return fmt_leaf_prot(c, pte, l) & S2_PROT_W;
}
#endif
#ifndef FMT_HAS_WRPROTECT
/* Clear hardware write access; MMU-writable stays, so a write fault can
 * restore it without the host (dirty logging's fast path). */
static inline s2_pte_t fmt_wrprotect(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	return fmt_leaf_set_prot(c, pte, l, fmt_leaf_prot(c, pte, l) & ~S2_PROT_W);
}
#endif
#ifndef FMT_HAS_MKWRITABLE
static inline s2_pte_t fmt_mkwritable(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	return fmt_leaf_set_prot(c, pte, l, fmt_leaf_prot(c, pte, l) | S2_PROT_W);
}
#endif
#ifndef FMT_HAS_IS_MMU_WRITABLE
static inline bool fmt_is_mmu_writable(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	return fmt_leaf_prot(c, pte, l) & S2_PROT_MMU_WRITABLE;
}
#endif
#ifndef FMT_HAS_IS_HOST_WRITABLE
static inline bool fmt_is_host_writable(const struct s2_fmt_cfg *c, s2_pte_t pte, int l)
{
	return fmt_leaf_prot(c, pte, l) & S2_PROT_HOST_WRITABLE;
}
#endif

/*
 * Break-before-make (arm64): a format whose architecture forbids changing a
 * valid entry's output address or size in one write defines FMT_NEEDS_BBM 1
 * and fmt_cache_clean() (clean newly mapped memory to the point of coherency,
 * unless the VM's attributes make that unnecessary, which
 * fmt_leaf_needs_clean() says). The core then freezes, flushes through the
 * one flush entry point, cleans and publishes (core/mmu_tmpl.h set_bbm()),
 * and cleans before installing a fresh leaf (which keeps such leaves off the
 * fault fast path, core/fault.c). Everyone else gets a no-op.
 */
#ifndef FMT_NEEDS_BBM
#define FMT_NEEDS_BBM 0
static inline bool fmt_leaf_needs_clean(const struct s2_fmt_cfg *c)
{
	(void)c;
	return false;
}
static inline void fmt_cache_clean(const struct s2_fmt_cfg *c, const struct s2_env *env, hpa_t pa,
				   uint64_t size)
{
	(void)c;
	(void)env;
	(void)pa;
	(void)size;
}
#endif

#endif
