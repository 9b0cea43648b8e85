// SPDX-License-Identifier: MIT
/*
 * Cached MMIO entries (docs/mmio.md, KVM's MMIO SPTE caching): a fault on a
 * gfn with no memslot leaves an MMIO entry carrying the memslot generation;
 * the MMIO exit (kvm_mmu_page_fault_mmio) trusts it while the generation is
 * current and falls back to a normal fault otherwise. When the generation
 * wraps in the bits an entry keeps, every MMIO entry is cleared first, so an
 * entry from a generation ago can never match again.
 */
#include "core/kvm_internal.h"

/* As kvm_tdp_page_fault's check (core/fault.c). */
#define S2_MMIO_ACC_ANY (S2_ACC_READ | S2_ACC_WRITE | S2_ACC_EXEC)
#define S2_MMIO_ACC_VALID (S2_MMIO_ACC_ANY | S2_ACC_USER)

/*
 * Install the MMIO entry for @f->gfn after a fault found no memslot at
 * memslots generation @gen (vcpu's cache topped up, its root followed).
 * Nothing is installed when the generation moved meanwhile (the entry
 * would be stale at once), the root went invalid, or a mapping got there.
 */
void s2_mmio_install(struct kvm_vcpu *vcpu, struct s2_fault *f, uint64_t gen)
{
	struct kvm *kvm = vcpu->kvm;

	f->level = 1;
	f->mmio = kvm->ops->make_mmio(&kvm->cfg, gen & kvm->mmio_gen_mask);
	s2_mmu_read_lock_vcpu(vcpu);
	if (__atomic_load_n(&kvm->memslots_gen, __ATOMIC_ACQUIRE) == gen &&
	    s2_root_valid(vcpu->root) && kvm->ops->map(kvm, vcpu, f) == RET_PF_EMULATE_MMIO)
		s2_stat_inc(&vcpu->stat.mmio_installed);
	s2_mmu_read_unlock_vcpu(vcpu);
	f->mmio = 0;
}

/*
 * Called by a memslot update (slots_lock and the write side of mmu_lock
 * held) right before it bumps memslots_gen to @next. When @next wraps to 0
 * in the entry's bits, clear the MMIO entries of every valid root (KVM zaps
 * all of them at this point too): entries written at generation @next minus
 * a multiple of the wrap would otherwise look current again. Entries in
 * invalid roots are never read (kvm_mmu_page_fault_mmio trusts only its
 * valid root).
 */
void s2_mmio_gen_bump_locked(struct kvm *kvm, uint64_t next)
{
	if (!kvm->mmio_cache || (next & kvm->mmio_gen_mask))
		return;
	for (unsigned i = 0; i < kvm->roots_hi; i++)
		if (s2_root_valid(&kvm->roots[i]))
			(void)kvm->ops->mmio_zap(kvm, &kvm->roots[i]);
	__atomic_store_n(&kvm->mmio_wraps, kvm->mmio_wraps + 1, __ATOMIC_RELAXED);
}

/* Whether the next memslots generation wraps (slots_lock held). */
bool s2_mmio_gen_wraps(const struct kvm *kvm)
{
	return kvm->mmio_cache &&
	       !((__atomic_load_n(&kvm->memslots_gen, __ATOMIC_RELAXED) + 1) & kvm->mmio_gen_mask);
}

int kvm_mmu_page_fault_mmio(struct kvm_vcpu *vcpu, gpa_t gpa, unsigned access)
{
	struct kvm *kvm;
	uint64_t gen;
	bool hit = false;

	if (!vcpu)
		return -EINVAL;
	kvm = vcpu->kvm;
	if (s2_kvm_dead(kvm))
		return -EIO;
	if (kvm->mmio_cache && !kvm->gfn_direct_bits && (access & S2_MMIO_ACC_ANY) &&
	    !(access & ~S2_MMIO_ACC_VALID) &&
	    !(gpa_to_gfn(gpa) >> (kvm->cfg.gpa_bits - S2_GFN_SHIFT))) {
		s2_mmu_read_lock_vcpu(vcpu);
		if (s2_root_valid(vcpu->root)) {
			gen = __atomic_load_n(&kvm->memslots_gen, __ATOMIC_ACQUIRE);
			hit = kvm->ops->mmio_gen(kvm, vcpu->root, gpa) ==
			      (gen & kvm->mmio_gen_mask);
		}
		s2_mmu_read_unlock_vcpu(vcpu);
	}
	if (hit) {
		s2_stat_inc(&vcpu->stat.mmio_cached);
		return RET_PF_EMULATE_MMIO;
	}
	/* Stale, gone, or not an MMIO entry: the normal fault decides (and
	 * writes a current entry when the gfn still has no memslot). */
	return kvm_tdp_page_fault(vcpu, gpa, access);
}

#if S2_ENABLED(CONFIG_S2_FMT_X86_EPT)
int kvm_handle_ept_misconfig(struct kvm_vcpu *vcpu, gpa_t gpa, unsigned access)
{
	return kvm_mmu_page_fault_mmio(vcpu, gpa, access);
}
#endif
