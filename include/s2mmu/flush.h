/* SPDX-License-Identifier: MIT */
/*
 * The one TLB-flush entry point. Every zap and protect path flushes through
 * these. A flush invalidates through the format's hardware hook when it has
 * one, raises KVM_REQ_TLB_FLUSH on every vcpu (KVM_REQ_TLB_FLUSH_CURRENT on a
 * vcpu that loads its root through kvm_mmu_load() / kvm_vcpu_entry_actions()
 * while the VM has exactly one valid root: docs/rules.md, "Requests") and
 * kicks those in guest mode.
 */
#ifndef S2MMU_FLUSH_H
#define S2MMU_FLUSH_H

#include "s2mmu/types.h"

struct kvm;
struct kvm_memory_slot;

/* Flush every translation of @kvm on every vcpu. */
void kvm_flush_remote_tlbs(struct kvm *kvm);
/*
 * Flush [gfn, gfn + nr_pages). Precise when the format has a ranged flush,
 * otherwise a full flush. nr_pages == 0 does nothing.
 */
void kvm_flush_remote_tlbs_range(struct kvm *kvm, gfn_t gfn, uint64_t nr_pages);
/* Flush the range of @slot. */
void kvm_flush_remote_tlbs_memslot(struct kvm *kvm, const struct kvm_memory_slot *slot);

#endif
