/* SPDX-License-Identifier: MIT */
/*
 * For x86 embedders that emulate the guest's CR0, CR4 and EFER: which
 * changes oblige a TLB flush before the next entry (Intel SDM vol. 3,
 * "Operations that Invalidate TLBs and Paging-Structure Caches"; AMD APM
 * vol. 2 agrees), raised as vcpu requests. Separate from any reset of an
 * MMU context: a change of paging mode is reported, never acted on.
 */
#ifndef S2MMU_X86_CR_H
#define S2MMU_X86_CR_H

#include "s2mmu/types.h"

struct kvm_vcpu;

enum s2_x86_reg {
	S2_X86_CR0 = 0,
	S2_X86_CR4 = 4,
	S2_X86_EFER = 0xc0000080u, /* the MSR number */
};

#define S2_X86_CR0_WP (1ull << 16)
#define S2_X86_CR0_PG (1ull << 31)
/* CR0 after INIT (CD, NW, ET): paging off. */
#define S2_X86_CR0_INIT 0x60000010ull
#define S2_X86_CR4_PSE (1ull << 4)
#define S2_X86_CR4_PAE (1ull << 5)
#define S2_X86_CR4_PGE (1ull << 7)
#define S2_X86_CR4_LA57 (1ull << 12)
#define S2_X86_CR4_PCIDE (1ull << 17)
#define S2_X86_CR4_SMEP (1ull << 20)
#define S2_X86_CR4_SMAP (1ull << 21)
#define S2_X86_CR4_PKE (1ull << 22)
#define S2_X86_EFER_LME (1ull << 8)
#define S2_X86_EFER_LMA (1ull << 10)
#define S2_X86_EFER_NXE (1ull << 11)

/* Set in s2_x86_cr_update()'s result when the guest's paging mode changed
 * (an embedder that shadows guest tables resets its context; the stage-2
 * tables are not affected). */
#define S2_X86_CR_MODE_CHANGED (1u << 16)

/*
 * The guest's @reg went from @old to @new (an emulated MOV to CR0/CR4, WRMSR
 * to EFER, or INIT: CR0 to S2_X86_CR0_INIT). Raises on @vcpu:
 *  - KVM_REQ_TLB_FLUSH_GUEST (every PCID, global entries too) when CR0.PG
 *    goes 1 -> 0, CR4.PGE changes either way, or CR4.PCIDE goes 1 -> 0;
 *  - otherwise KVM_REQ_TLB_FLUSH_CURRENT when CR4.PAE changes or CR4.SMEP
 *    goes 0 -> 1 (the current PCID's translations).
 * EFER changes flush nothing (LME and LMA change only with paging off,
 * which CR0.PG already flushed). Returns the KVM_REQ_* bits raised (as
 * 1 << req) plus S2_X86_CR_MODE_CHANGED when CR0.PG/WP, CR4.PAE/PSE/LA57/
 * SMEP/SMAP/PKE or EFER.LMA/NXE changed; -EINVAL for a NULL vcpu or
 * another register.
 */
int s2_x86_cr_update(struct kvm_vcpu *vcpu, unsigned reg, uint64_t old, uint64_t new);

#endif
