/* SPDX-License-Identifier: MIT */
/*
 * Basic types of s2mmu. Only freestanding headers are used here, so the same
 * header serves a hosted tool and a bare-metal hypervisor.
 *
 * Vocabulary (see docs/vocabulary.md): a gpa is a guest-physical address and a
 * gfn its 4 KiB frame number; hpa/pfn are the host-physical counterparts; an
 * hva is a host-virtual address. Ranges are half-open [start, end).
 */
#ifndef S2MMU_TYPES_H
#define S2MMU_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t gpa_t;
typedef uint64_t gfn_t;
typedef uint64_t hpa_t;
typedef uint64_t hva_t;
typedef uint64_t kvm_pfn_t;
/* One second-stage entry (an spte). Every supported format uses 64 bits. */
typedef uint64_t s2_pte_t;

#define S2_GFN_SHIFT 12
#define S2_GFN_SIZE (1ull << S2_GFN_SHIFT)

static inline gfn_t gpa_to_gfn(gpa_t gpa)
{
	return gpa >> S2_GFN_SHIFT;
}
static inline gpa_t gfn_to_gpa(gfn_t gfn)
{
	return gfn << S2_GFN_SHIFT;
}

/* Most levels any format walks (x86 5-level EPT/NPT, arm64 LPA2 from level -1). */
#define S2_MAX_LEVELS 5

#if defined(__GNUC__)
#define S2_MUST_CHECK __attribute__((warn_unused_result))
#else
#define S2_MUST_CHECK
#endif

#endif
