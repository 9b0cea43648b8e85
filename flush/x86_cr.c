// SPDX-License-Identifier: MIT
/*
 * The TLB flushes an x86 guest's control-register writes oblige
 * (include/s2mmu/x86-cr.h), raised as the narrowest request that covers
 * them: a change that the SDM says invalidates every PCID's translations
 * (global ones too) is FLUSH_GUEST; one that invalidates the current
 * PCID's only is FLUSH_CURRENT. Neither is a reload or a stage-2 flush.
 */
#include "core/kvm_internal.h"
#include "s2mmu/x86-cr.h"

/* x86 only: absent from builds without EPT and NPT. */
#if S2_ENABLED(CONFIG_S2_FMT_X86_EPT) || S2_ENABLED(CONFIG_S2_FMT_X86_NPT)

static bool s2_went_off(uint64_t old, uint64_t new, uint64_t bit)
{
	return (old & bit) && !(new &bit);
}

static bool s2_went_on(uint64_t old, uint64_t new, uint64_t bit)
{
	return !(old & bit) && (new &bit);
}

int s2_x86_cr_update(struct kvm_vcpu *vcpu, unsigned reg, uint64_t old, uint64_t new)
{
	uint64_t changed = old ^ new;
	unsigned req = KVM_REQ_NR;
	int out = 0;

	if (!vcpu)
		return -EINVAL;
	switch (reg) {
	case S2_X86_CR0:
		if (s2_went_off(old, new, S2_X86_CR0_PG))
			req = KVM_REQ_TLB_FLUSH_GUEST;
		if (changed & (S2_X86_CR0_PG | S2_X86_CR0_WP))
			out |= S2_X86_CR_MODE_CHANGED;
		break;
	case S2_X86_CR4:
		if ((changed & S2_X86_CR4_PGE) || s2_went_off(old, new, S2_X86_CR4_PCIDE))
			req = KVM_REQ_TLB_FLUSH_GUEST;
		else if ((changed & S2_X86_CR4_PAE) || s2_went_on(old, new, S2_X86_CR4_SMEP))
			req = KVM_REQ_TLB_FLUSH_CURRENT;
		if (changed & (S2_X86_CR4_PAE | S2_X86_CR4_PSE | S2_X86_CR4_LA57 | S2_X86_CR4_SMEP |
			       S2_X86_CR4_SMAP | S2_X86_CR4_PKE))
			out |= S2_X86_CR_MODE_CHANGED;
		break;
	case S2_X86_EFER:
		if (changed & (S2_X86_EFER_LMA | S2_X86_EFER_NXE))
			out |= S2_X86_CR_MODE_CHANGED;
		break;
	default: return -EINVAL;
	}
	if (req != KVM_REQ_NR) {
		kvm_make_request(vcpu, req);
		out |= 1 << req;
	}
	return out;
}
#endif
