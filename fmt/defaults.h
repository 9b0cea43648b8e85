/* SPDX-License-Identifier: MIT */
/*
 * Contract functions a format may leave out, derived from fmt_leaf_prot() and
 * fmt_leaf_set_prot(). A format that has a faster form defines FMT_HAS_<NAME>
 * and its own function before including this header.
 */
#ifndef S2MMU_FMT_DEFAULTS_H
#define S2MMU_FMT_DEFAULTS_H

#include "s2mmu/prot.h"

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

#endif
