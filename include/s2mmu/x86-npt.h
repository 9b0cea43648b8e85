/* SPDX-License-Identifier: MIT */
/*
 * AMD nested paging (AMD64 APM vol. 2, "Nested Paging"): the nCR3 value of a
 * VM on S2_FMT_X86_NPT and the decoding of a nested page fault (#VMEXIT
 * NPF). docs/fmt-x86-npt.md has the entry layout.
 */
#ifndef S2MMU_X86_NPT_H
#define S2MMU_X86_NPT_H

#include "s2mmu/types.h"

struct kvm;
struct kvm_vcpu;

/*
 * The host PAT MSR layout the format's memory types assume: the power-on
 * value (index 0 WB, 1 WT, 2 UC-, 3 UC, repeated for 4..7). Nested entries
 * are typed through the host PAT, so an embedder that reprograms PAT keeps
 * entries 0..3 as here (or accepts that WT and WC read differently).
 */
#define S2_NPT_PAT_DEFAULT 0x0007040600070406ull

/* NPF EXITINFO1 bits (the page-fault error code plus two nested bits). */
#define S2_NPF_P (1ull << 0)	  /* the entry was present: a protection fault */
#define S2_NPF_W (1ull << 1)	  /* write access */
#define S2_NPF_U (1ull << 2)	  /* user access (always set for nested walks) */
#define S2_NPF_RSV (1ull << 3)	  /* a reserved bit was set */
#define S2_NPF_ID (1ull << 4)	  /* instruction fetch */
#define S2_NPF_FINAL (1ull << 32) /* fault on the final guest-physical access */
#define S2_NPF_GPT (1ull << 33)	  /* fault while walking the guest's tables */

/*
 * Build nCR3 for the nested root @root (4 KiB aligned, below 2^52). PWT and
 * PCD (bits 3 and 4) stay clear: tables are fetched write-back. Whether the
 * walk has 4 or 5 levels is not in nCR3: it follows the host's CR4.LA57 at
 * VMRUN, so a 5-level VM (gpa_bits > 48) needs a 5-level host. Returns 0 and
 * *@out, or -EINVAL (misaligned or too wide root, NULL @out; *@out untouched).
 */
int s2_npt_make_ncr3(hpa_t root, uint64_t *out);

/*
 * nCR3 of @kvm. Returns 0, or -EINVAL when @kvm or @out is NULL or @kvm is
 * not an NPT VM.
 */
int kvm_x86_npt_ncr3(const struct kvm *kvm, uint64_t *out);

/*
 * The S2_ACC_* access of a nested page fault from its EXITINFO1: EXEC for an
 * instruction fetch, WRITE for a write, READ otherwise. A fault while the
 * CPU walked the guest's own page tables (S2_NPF_GPT) is a data access to
 * those tables (READ, or WRITE when it set their A/D bits), never EXEC.
 */
unsigned s2_npt_fault_access(uint64_t exitinfo1);

/*
 * Handle a nested page fault: @gpa is EXITINFO2, @exitinfo1 the error code.
 * A reserved-bit fault (S2_NPF_RSV; a CPU sets S2_NPF_P with it, QEMU's TCG
 * does not, so P is not looked at) is what an access to the
 * library's reserved-bit MMIO entry gives (kvm_vm_params.host_pa_bits below
 * 52, cached MMIO entries on): it goes to kvm_mmu_page_fault_mmio(), which
 * answers RET_PF_EMULATE_MMIO from a current entry without a memslot lookup
 * and falls back to the fault otherwise; every other NPF goes to
 * kvm_tdp_page_fault(). The access is s2_npt_fault_access(@exitinfo1).
 * Returns what they return.
 */
int kvm_handle_npf(struct kvm_vcpu *vcpu, gpa_t gpa, uint64_t exitinfo1);

#endif
