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

/*
 * Request bits (KVM_REQ_*): what a vcpu owes before its next guest entry
 * (docs/rules.md, "Requests"). kvm_vcpu_entry_actions() turns them into the
 * ordered list of what to do; the instruction per architecture is in the
 * table there.
 *
 * TLB_FLUSH          every stage-2 and combined translation of this VM, of
 *                    every root, on this CPU.
 * TLB_FLUSH_CURRENT  the translations of the root the vcpu runs on only. A
 *                    change of the tables raises it instead of TLB_FLUSH on
 *                    a vcpu that loads its root through the library while
 *                    the VM has exactly one valid root.
 * TLB_FLUSH_GUEST    the guest's own stage-1 translations (x86 INVVPID,
 *                    RISC-V HFENCE.VVMA, arm64 TLBI VMALLE1 for the VMID);
 *                    raised by the embedder (s2_x86_cr_update()), never by a
 *                    change of the stage-2 tables.
 * MMU_RELOAD         the root the vcpu runs on was invalidated (a fast zap):
 *                    load the current valid root before entry. Not a flush;
 *                    the flush a load needs is listed with the load.
 * FREE_OBSOLETE_ROOTS  the vcpu keeps a reference on an invalid root it does
 *                    not run on (its previous root): drop it so the root's
 *                    pages can go. No action for the embedder.
 */
enum {
	KVM_REQ_TLB_FLUSH = 0,
	KVM_REQ_TLB_FLUSH_CURRENT = 1,
	KVM_REQ_TLB_FLUSH_GUEST = 2,
	KVM_REQ_MMU_RELOAD = 3,
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

/* One step before guest entry, in the order kvm_vcpu_entry_actions() lists. */
enum kvm_entry_action_kind {
	/* Load .reg (EPTP / VTTBR / hgatp / nCR3 for the root at .hpa). */
	KVM_ENTRY_LOAD_ROOT = 1,
	/* Flush the loaded root's translations on this CPU (x86 EPT: INVEPT
	 * single-context with the loaded EPTP; NPT: TLB_CONTROL flush of the
	 * ASID; arm64: TLBI VMALLS12E1 with the VMID; RISC-V: HFENCE.GVMA
	 * with the VMID). */
	KVM_ENTRY_FLUSH_CURRENT,
	/* Flush every root of this VM on this CPU (x86 EPT: INVEPT
	 * all-context when .nr_roots > 1, else single-context; the VMID- or
	 * ASID-scoped forms elsewhere, which cover every root already). */
	KVM_ENTRY_FLUSH_ALL,
	/* Flush the guest's stage-1 translations (x86: INVVPID
	 * single-context; arm64: TLBI VMALLE1 for the VMID; RISC-V:
	 * HFENCE.VVMA for the VMID). */
	KVM_ENTRY_FLUSH_GUEST,
};

struct kvm_entry_action {
	enum kvm_entry_action_kind kind;
	uint64_t reg; /* LOAD_ROOT: the register value */
	hpa_t hpa;    /* LOAD_ROOT: the root it points at */
};

#define KVM_ENTRY_MAX_ACTIONS 4
struct kvm_entry_actions {
	unsigned nr;
	struct kvm_entry_action a[KVM_ENTRY_MAX_ACTIONS];
	unsigned nr_roots; /* valid roots of the VM when the list was made */
};

/*
 * Turn @vcpu's pending requests into the ordered list of what to do before
 * entry, and clear them: FREE_OBSOLETE_ROOTS drops references (no action);
 * a reload (MMU_RELOAD, or a first entry) gives LOAD_ROOT and, after it,
 * FLUSH_CURRENT (the root's pages may have been a root before, and on
 * VMID- or ASID-tagged TLBs the old root's translations share the tag);
 * TLB_FLUSH gives FLUSH_ALL, which covers FLUSH_CURRENT; TLB_FLUSH_GUEST
 * gives FLUSH_GUEST, last. DIRTY_RING_SOFT_FULL stays pending for the
 * embedder. Call it before kvm_vcpu_enter_guest() (it may allocate a root,
 * so before interrupts are disabled for the entry), do the actions in
 * order, and call it again when the entry is refused. A vcpu that enters on another physical CPU than at
 * its previous entry owes FLUSH_CURRENT there (the embedder knows this).
 * Returns 0, -EINVAL, -ENOMEM (no root could be made; nothing changed,
 * the requests stay pending), -EIO.
 */
int kvm_vcpu_entry_actions(struct kvm_vcpu *vcpu, struct kvm_entry_actions *out) S2_MUST_CHECK;

/*
 * For a VM on the id allocator (kvm_vm_params.vmid_alloc), with interrupts
 * (or preemption) off on the CPU numbered @cpu in the allocator, after
 * kvm_vcpu_entry_actions() and before its flush actions and
 * kvm_vcpu_enter_guest(): s2_vmid_update() of the VM's id (a new id when its
 * generation is over; the CPU's flush when a rollover asked for one), then
 * *@reg, the register value of the root @vcpu runs on with that id (VTTBR,
 * hgatp; EPTP and nCR3 carry no id). Load *@reg in place of a LOAD_ROOT
 * action's value (which may hold the id from before a rollover), then do
 * the flush actions with it. Returns the id (VPID, ASID: >= the allocator's
 * first), or -EINVAL (NULL, @cpu out of range, a VM without allocator),
 * -EIO.
 */
int kvm_vcpu_vmid_update(struct kvm_vcpu *vcpu, unsigned cpu, uint64_t *reg) S2_MUST_CHECK;

/*
 * Fill @vcpu's memory cache with the table pages one fault may need, without
 * holding any lock. kvm_tdp_page_fault() calls it itself; an embedder that
 * must not allocate on the fault path calls it earlier. Returns 0 or -ENOMEM.
 */
int kvm_mmu_topup_memory_cache(struct kvm_vcpu *vcpu) S2_MUST_CHECK;

#endif
