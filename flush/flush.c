// SPDX-License-Identifier: MIT
/*
 * The one TLB-flush entry point. Every zap and protect path reaches these
 * through s2_acc_settle() before it drops mmu_lock.
 *
 * A full flush runs the format's hardware hook (a broadcast TLBI where the
 * architecture has one; HFENCE.GVMA or INVEPT on this CPU and the env's hooks
 * elsewhere), then raises KVM_REQ_TLB_FLUSH on every vcpu (TLB_FLUSH_CURRENT
 * where that is exact, s2_request_tlb_flush()), kicks those in
 * guest mode and waits until each has left it (flush/request.c): when it
 * returns, no vcpu runs the guest on a translation from before, and each
 * flushes its own CPU before it enters again.
 *
 * A ranged flush runs the format's ranged hook. When that hook reaches every
 * CPU by itself (kvm->tlb_complete: arm64 TLBI IPAS2E1IS, or env hooks the
 * embedder declares broadcast) that is all; otherwise it is as strong as the
 * full flush: the same requests, kicks and wait follow the local part.
 */
#include "core/kvm_internal.h"

void kvm_flush_remote_tlbs(struct kvm *kvm)
{
	if (!kvm)
		return;
	kvm->ops->tlb_flush_vm(kvm);
	s2_request_tlb_flush(kvm);
	__atomic_fetch_add(&kvm->stat_flushes, 1, __ATOMIC_RELAXED);
}

void kvm_flush_remote_tlbs_range(struct kvm *kvm, gfn_t gfn, uint64_t nr_pages)
{
	gfn_t limit;

	if (!kvm || !nr_pages)
		return;
	limit = 1ull << (kvm->cfg.gpa_bits - S2_GFN_SHIFT);
	if (!kvm->ops->tlb_flush_range || gfn >= limit || nr_pages > limit - gfn) {
		kvm_flush_remote_tlbs(kvm);
		return;
	}
	kvm->ops->tlb_flush_range(kvm, gfn_to_gpa(gfn), nr_pages << S2_GFN_SHIFT);
	if (!kvm->tlb_complete)
		s2_request_tlb_flush(kvm);
	__atomic_fetch_add(&kvm->stat_flushes_range, 1, __ATOMIC_RELAXED);
}

void kvm_flush_remote_tlbs_memslot(struct kvm *kvm, const struct kvm_memory_slot *slot)
{
	if (!kvm || !slot)
		return;
	kvm_flush_remote_tlbs_range(kvm, slot->base_gfn, slot->npages);
}
