/* SPDX-License-Identifier: MIT */
/*
 * vcpus: request bits and the guest-mode handshake that flushes and kicks use,
 * plus the per-vcpu memory cache that lets faults install without allocating
 * under mmu_lock.
 */
#ifndef S2MMU_VCPU_H
#define S2MMU_VCPU_H

#include "s2mmu/types.h"

struct kvm;
struct kvm_vcpu;

/* Request bits (KVM_REQ_*). A flush raises TLB_FLUSH on every vcpu. */
enum {
	KVM_REQ_TLB_FLUSH = 0,	       /* flush all of this VM's translations */
	KVM_REQ_TLB_FLUSH_CURRENT = 1, /* flush the current root only */
	KVM_REQ_TLB_FLUSH_GUEST = 2,   /* flush guest (stage-1) translations */
	KVM_REQ_MMU_RELOAD = 3,	       /* reload the root pointer */
	KVM_REQ_FREE_OBSOLETE_ROOTS = 4,
	KVM_REQ_DIRTY_RING_SOFT_FULL = 5,
	KVM_REQ_NR = 6,
};

/* vcpu->mode (KVM's OUTSIDE_GUEST_MODE / IN_GUEST_MODE / EXITING_GUEST_MODE). */
enum kvm_vcpu_mode {
	OUTSIDE_GUEST_MODE = 0,
	IN_GUEST_MODE = 1,
	EXITING_GUEST_MODE = 2,
};

/*
 * Create vcpu @id (< max_vcpus, unique). Returns 0 and *@out, or -EINVAL,
 * -EEXIST, -ENOMEM, -EIO, or -ENOTSUP for a second vcpu when the env's
 * RCU is single-CPU (rcu_single_cpu). The vcpu is destroyed with the VM.
 */
int kvm_vcpu_create(struct kvm *kvm, unsigned id, struct kvm_vcpu **out) S2_MUST_CHECK;
unsigned kvm_vcpu_id(const struct kvm_vcpu *vcpu);
struct kvm *kvm_vcpu_kvm(const struct kvm_vcpu *vcpu);
/* Embedder's private pointer (e.g. its own vcpu struct). */
void kvm_vcpu_set_private(struct kvm_vcpu *vcpu, void *p);
void *kvm_vcpu_private(const struct kvm_vcpu *vcpu);

/* Raise request @req on @vcpu and kick it if it is in guest mode. */
void kvm_make_request(struct kvm_vcpu *vcpu, unsigned req);
/* Raise @req on every vcpu, kicking those in guest mode. Returns the number
 * of vcpus kicked. */
unsigned kvm_make_all_cpus_request(struct kvm *kvm, unsigned req);
/* Test and clear request @req. */
bool kvm_check_request(struct kvm_vcpu *vcpu, unsigned req);
/* True when any request is pending. */
bool kvm_request_pending(const struct kvm_vcpu *vcpu);

/*
 * Guest entry handshake. Call kvm_vcpu_enter_guest() with interrupts off
 * right before VM entry: it sets IN_GUEST_MODE and returns false (and leaves
 * OUTSIDE_GUEST_MODE) when a request arrived meanwhile, so the caller handles
 * requests and tries again. Call kvm_vcpu_exit_guest() after VM exit.
 */
bool kvm_vcpu_enter_guest(struct kvm_vcpu *vcpu);
void kvm_vcpu_exit_guest(struct kvm_vcpu *vcpu);
enum kvm_vcpu_mode kvm_vcpu_mode(const struct kvm_vcpu *vcpu);

/*
 * Fill @vcpu's memory cache with the table pages one fault may need, without
 * holding any lock. kvm_tdp_page_fault() calls it itself; an embedder that
 * must not allocate on the fault path calls it earlier. Returns 0 or -ENOMEM.
 */
int kvm_mmu_topup_memory_cache(struct kvm_vcpu *vcpu) S2_MUST_CHECK;

#endif
