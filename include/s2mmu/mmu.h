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
 * Zap every leaf in [gfn_start, gfn_end), whole huge leaves included, free the
 * tables that become empty after a grace period, and flush once if anything
 * was removed. Returns the number of leaves zapped (>= 0) or -EINVAL (empty,
 * inverted or out-of-range), -EIO.
 */
long kvm_zap_gfn_range(struct kvm *kvm, gfn_t gfn_start, gfn_t gfn_end);

/* Zap everything (KVM's kvm_mmu_zap_all). Returns leaves zapped or -EIO. */
long kvm_mmu_zap_all(struct kvm *kvm);

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
