/* SPDX-License-Identifier: MIT */
/*
 * The MMU: the fault path, zapping, and read-only inspection of the tables.
 */
#ifndef S2MMU_MMU_H
#define S2MMU_MMU_H

#include "s2mmu/types.h"

struct kvm;
struct kvm_vcpu;

/* Access a fault asks for (from the exit's qualification/syndrome). */
enum {
	S2_ACC_READ = 1u << 0,
	S2_ACC_WRITE = 1u << 1,
	S2_ACC_EXEC = 1u << 2,
	S2_ACC_USER = 1u << 3, /* user-mode fetch (MBEC / XNX) */
};

/* Non-negative results of a fault (KVM's RET_PF_*). Errors are -errno. */
enum kvm_pf_ret {
	RET_PF_FIXED = 0,	 /* a leaf was installed or upgraded: re-enter */
	RET_PF_SPURIOUS = 1,	 /* the mapping was already there: re-enter */
	RET_PF_RETRY = 2,	 /* lost a race with an invalidation: re-enter */
	RET_PF_EMULATE_MMIO = 3, /* no memslot: emulate the access */
	RET_PF_RO_WRITE = 4,	 /* write to a read-only memslot: exit */
	/* 5 is RET_PF_WRITE_TRACKED (s2mmu/dirty.h). */
	RET_PF_MEMORY_FAULT = 6, /* TD: the fault's private/shared (its gpa's
				    shared bit) disagrees with the gfn's memory
				    attribute: nothing installed; convert and
				    re-enter (KVM_EXIT_MEMORY_FAULT) */
};

/*
 * Handle a second-stage fault of @vcpu at @gpa for @access (S2_ACC_*).
 * Resolves the memslot, asks the environment for the pfn, and maps the
 * largest leaf the memslot, the host mapping and the configuration allow,
 * under the read side of mmu_lock. Returns a kvm_pf_ret, or -EINVAL (bad
 * access bits, gpa past the gpa width), -ENOMEM (cache top-up failed; nothing
 * changed), -EFAULT (the host has no backing), -EIO (bugged VM).
 */
int kvm_tdp_page_fault(struct kvm_vcpu *vcpu, gpa_t gpa, unsigned access);
/* KVM's other name for the same entry point. */
int kvm_mmu_page_fault(struct kvm_vcpu *vcpu, gpa_t gpa, unsigned access);

/*
 * The MMIO exit (x86 EPT: the EPT-misconfiguration exit, KVM's
 * handle_ept_misconfig; any format when the VM caches MMIO entries, see
 * docs/mmio.md). When the entry at @gpa is an MMIO entry of the current
 * memslot generation, returns RET_PF_EMULATE_MMIO without a memslot lookup;
 * otherwise (stale generation, not an MMIO entry) it is a normal fault,
 * kvm_tdp_page_fault(vcpu, gpa, access), which returns the same kinds. A
 * misconfiguration exit reports no access: pass S2_ACC_READ (a write then
 * faults again as an EPT violation, as in KVM).
 */
int kvm_mmu_page_fault_mmio(struct kvm_vcpu *vcpu, gpa_t gpa, unsigned access);
/* KVM's name for it on VMX (defined only in libraries built with EPT). */
int kvm_handle_ept_misconfig(struct kvm_vcpu *vcpu, gpa_t gpa, unsigned access);

/*
 * Zap every leaf in [gfn_start, gfn_end), whole huge leaves included, free the
 * tables that become empty after a grace period, and flush once if anything
 * was removed. Returns the number of leaves zapped (>= 0) or -EINVAL (empty,
 * inverted or out-of-range), -EIO.
 */
long kvm_zap_gfn_range(struct kvm *kvm, gfn_t gfn_start, gfn_t gfn_end);

/*
 * Zap everything (KVM's kvm_mmu_zap_all). When every vcpu that entered a
 * guest loads its root through kvm_mmu_load() / kvm_vcpu_entry_actions(),
 * this is the fast zap below (the old roots emptied before it returns);
 * otherwise every leaf is zapped in place (yielding mmu_lock every
 * CONFIG_S2_YIELD_BATCH leaves). Returns the number of leaves removed.
 * -EIO on a bugged VM.
 */
long kvm_mmu_zap_all(struct kvm *kvm);

/*
 * Roots (docs/rules.md, "Roots"). A VM holds a set of roots, each with a
 * role, a level count, a reference count and an invalid flag. A vcpu runs on
 * one root and holds a reference on it; the VM holds one on the current
 * root of each role. A root's pages are freed only when it is invalid, its
 * last reference is gone and a grace period has passed.
 *
 * Roles: the kind (direct; mirror is reserved for TDX private memory, issue
 * 12) and an address space (KVM_ROOT_SPACES of them, KVM's SMM bit is the
 * model): roots of different spaces over the same memslots live at once,
 * each filled by the faults of the vcpus that run on it, and every zap,
 * protection, aging or dirty-log operation changes all of them alike.
 */
enum kvm_root_kind {
	KVM_ROOT_DIRECT = 0,
	KVM_ROOT_MIRROR = 1, /* TDX private memory: not built (-ENOTSUP) */
};
#define KVM_ROOT_SPACES 2
struct kvm_root_role {
	uint8_t kind;  /* enum kvm_root_kind */
	uint8_t space; /* < KVM_ROOT_SPACES */
};

/*
 * Make @vcpu run on the current valid root of @role, creating it (under the
 * shared side of mmu_lock; its page is allocated before) if there is none,
 * and store in *@reg the register value to load (EPTP, VTTBR, hgatp, nCR3).
 * The vcpu keeps its previous root as a reference it may switch back to.
 * The caller loads *@reg and flushes it (KVM_ENTRY_FLUSH_CURRENT) before
 * entry; kvm_vcpu_entry_actions() does this call itself when a request
 * needs it. Returns 0, -EINVAL (bad role), -ENOTSUP (mirror), -ENOMEM, -EIO.
 */
int kvm_mmu_load(struct kvm_vcpu *vcpu, struct kvm_root_role role, uint64_t *reg) S2_MUST_CHECK;
/* The root @vcpu runs on (0 for NULL). */
hpa_t kvm_vcpu_root_hpa(const struct kvm_vcpu *vcpu);
/* Role of the root @vcpu runs on. */
struct kvm_root_role kvm_vcpu_root_role(const struct kvm_vcpu *vcpu);

/*
 * Fast zap (KVM's kvm_mmu_zap_all_fast): under the write side of mmu_lock,
 * mark every root invalid and give each role a fresh empty current root (its
 * page allocated before the lock), in O(1) per root; raise MMU_RELOAD on
 * every vcpu running on an invalidated root (FREE_OBSOLETE_ROOTS on one that
 * only keeps one) and wait until none is in guest mode on it; then tear the
 * obsolete roots down under the shared side of mmu_lock, yielding every
 * CONFIG_S2_YIELD_BATCH leaves, so no vcpu waits for the teardown. No flush
 * is owed: no vcpu can enter on an invalid root, and every load of a root
 * flushes it on its CPU. Unmapped (and unreachable) when it returns.
 * Returns 0, -ENOMEM (nothing changed), -ENOTSUP (a vcpu entered a guest
 * without loading its root through kvm_mmu_load / kvm_vcpu_entry_actions
 * and would not reload; a vcpu that never entered one moves to the new root
 * at its next fault), -EINVAL, -EIO.
 */
int kvm_mmu_zap_all_fast(struct kvm *kvm) S2_MUST_CHECK;

/* What the tables hold for one gpa, decoded through the format. */
struct s2_mapping {
	bool present;
	int level;	  /* level of the leaf (1 = 4 KiB) */
	hpa_t hpa;	  /* translation of the gpa asked about */
	uint64_t size;	  /* bytes the leaf covers */
	unsigned prot;	  /* S2_PROT_* including software and A/D state */
	unsigned memtype; /* S2_MT_* */
	s2_pte_t pte;	  /* raw entry */
};

/*
 * Look @gpa up in the tables. Returns 0 (present or not, see out->present),
 * -EINVAL (past the gpa width, NULL), -EIO.
 */
int kvm_mmu_lookup(struct kvm *kvm, gpa_t gpa, struct s2_mapping *out);

/*
 * Call @fn for every present leaf in [gfn_start, gfn_end) in gfn order, under
 * the read side of mmu_lock (so @fn must not call back into the library).
 * Stops early and returns @fn's value when it is non-zero. Returns 0, -EINVAL.
 */
typedef int (*s2_leaf_fn)(void *arg, gfn_t gfn, const struct s2_mapping *m);
int kvm_mmu_for_each_leaf(struct kvm *kvm, gfn_t gfn_start, gfn_t gfn_end, s2_leaf_fn fn,
			  void *arg);

#endif
