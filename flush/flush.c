// SPDX-License-Identifier: MIT
/*
 * The one TLB-flush entry point. Every zap and protect path reaches these
 * through s2_acc_settle() before it drops mmu_lock.
 *
 * A full flush runs the format's hardware hook (a broadcast TLBI or HFENCE
 * where the architecture has one; nothing on x86, where INVEPT and the VMCB
 * TLB control act on one CPU only) and then raises KVM_REQ_TLB_FLUSH on every
 * vcpu, kicking those in guest mode, so each flushes locally before it next
 * enters the guest. A ranged flush is precise only when the format has a
 * ranged hardware hook, which is broadcast by construction; otherwise it is
 * a full flush.
 */
#include "core/kvm_internal.h"

void kvm_flush_remote_tlbs(struct kvm *kvm)
{
	if (!kvm)
		return;
	kvm->ops->tlb_flush_vm(kvm);
	kvm_make_all_cpus_request(kvm, KVM_REQ_TLB_FLUSH);
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
	__atomic_fetch_add(&kvm->stat_flushes_range, 1, __ATOMIC_RELAXED);
}

void kvm_flush_remote_tlbs_memslot(struct kvm *kvm, const struct kvm_memory_slot *slot)
{
	if (!kvm || !slot)
		return;
	kvm_flush_remote_tlbs_range(kvm, slot->base_gfn, slot->npages);
}
