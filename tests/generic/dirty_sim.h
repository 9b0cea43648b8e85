/* SPDX-License-Identifier: MIT */
/*
 * The hardware side of dirty logging, for the generic dirty suites: what a
 * CPU does with a VM's second-stage tables when the guest writes. It finds
 * the leaf (atomic loads, as a concurrent hardware walk), decides whether
 * the write may proceed, and sets the leaf's dirty flag with a locked update
 * where the hardware keeps one. Bit positions come from the manuals, not from
 * fmt/ (Intel SDM "EPT paging-structure entries" and "Accessed and Dirty
 * Flags for EPT"; AMD APM nested paging (long-mode PTE); RISC-V privileged
 * spec G-stage PTE and Svadu; Arm ARM VMSAv8-64 stage-2 descriptors, S2AP
 * and DBM with VTCR_EL2.HD). Only the table geometry (levels, entries per
 * table) is read from the VM.
 *
 * Hosted tests allocate tables with pa == va.
 */
#ifndef S2MMU_TESTS_DIRTY_SIM_H
#define S2MMU_TESTS_DIRTY_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "core/fmt_api.h"
#include "s2mmu/kvm.h"

#define SIM_BIT(n) (1ull << (n))

/*
 * Does the hardware translate through the entry at @level: present (valid)
 * and not an encoding that faults whatever the access? EPT: R, W or X (no
 * MBEC in these suites), but W without R is an EPT misconfiguration (the
 * library's MMIO value). NPT: P, and U/S, since nested walks are user
 * accesses (the library's reserved-bit MMIO value has P without U/S).
 * G-stage: V, but W without R is reserved (a guest-page fault).
 */
static inline bool sim_present(enum s2_fmt_id fmt, uint64_t e, int level)
{
	switch (fmt) {
	case S2_FMT_X86_EPT: return (e & 7) && (e & 3) != 2;
	case S2_FMT_X86_NPT: return (e & 5) == 5;
	case S2_FMT_RISCV_G: return (e & 1) && (e & 6) != 4;
	case S2_FMT_ARM64_S2: return (e & 1) && (level > 1 || (e & 2));
	default: return e & 1;
	}
}

/* A present entry that maps memory (a leaf) rather than a next table. */
static inline bool sim_leaf(enum s2_fmt_id fmt, uint64_t e, int level)
{
	switch (fmt) {
	case S2_FMT_X86_EPT:
	case S2_FMT_X86_NPT: return level == 1 || (e & SIM_BIT(7)); /* PS */
	case S2_FMT_RISCV_G: return e & 0xe;			    /* R, W or X */
	case S2_FMT_ARM64_S2: return level == 1 || !(e & 2);	    /* block: 0b01 */
	default: return true;
	}
}

static inline uint64_t sim_next(enum s2_fmt_id fmt, uint64_t e)
{
	switch (fmt) {
	case S2_FMT_RISCV_G: return ((e >> 10) & ((1ull << 44) - 1)) << 12;
	case S2_FMT_ARM64_S2: return e & 0x0000fffffffff000ull;
	default: return e & 0x000ffffffffff000ull;
	}
}

/* Does the VM's hardware set a dirty flag in leaves on the first write? */
static inline bool sim_hw_dirty(struct kvm *kvm)
{
	unsigned fl = kvm_fmt_cfg(kvm)->flags;

	switch (kvm_fmt(kvm)) {
	case S2_FMT_X86_EPT: return fl & S2_FMTF_AD;  /* EPTP[6] */
	case S2_FMT_X86_NPT: return true;	      /* nested walks always maintain A/D */
	case S2_FMT_RISCV_G: return fl & S2_FMTF_AD;  /* Svadu */
	case S2_FMT_ARM64_S2: return fl & S2_FMTF_HD; /* VTCR_EL2.HD with DBM */
	default: return false;
	}
}

static inline bool sim_writable(struct kvm *kvm, uint64_t e)
{
	switch (kvm_fmt(kvm)) {
	case S2_FMT_RISCV_G: return e & SIM_BIT(2);
	case S2_FMT_ARM64_S2:
		/* S2AP[1], or DBM when the hardware manages dirty state. */
		return (e & SIM_BIT(7)) || (sim_hw_dirty(kvm) && (e & SIM_BIT(51)));
	default: return e & SIM_BIT(1);
	}
}

/* The dirty flag's bit (0 where the hardware keeps none). */
static inline uint64_t sim_dirty_bit(struct kvm *kvm)
{
	if (!sim_hw_dirty(kvm))
		return 0;
	switch (kvm_fmt(kvm)) {
	case S2_FMT_X86_EPT: return SIM_BIT(9);
	case S2_FMT_X86_NPT: return SIM_BIT(6);
	case S2_FMT_RISCV_G: return SIM_BIT(7);
	case S2_FMT_ARM64_S2: return SIM_BIT(7); /* DBM: S2AP[1] set means written */
	default: return 0;
	}
}

/* Is a leaf readable? (NPT: present is readable.) */
static inline bool sim_readable(enum s2_fmt_id fmt, uint64_t e)
{
	switch (fmt) {
	case S2_FMT_X86_EPT: return e & SIM_BIT(0);
	case S2_FMT_RISCV_G: return e & SIM_BIT(1);
	case S2_FMT_ARM64_S2: return e & SIM_BIT(6); /* S2AP[0] */
	default: return true;
	}
}

/* The Accessed flag's bit (0 where the VM keeps none: EPT without A/D). */
static inline uint64_t sim_accessed_bit(struct kvm *kvm)
{
	switch (kvm_fmt(kvm)) {
	case S2_FMT_X86_EPT: return (kvm_fmt_cfg(kvm)->flags & S2_FMTF_AD) ? SIM_BIT(8) : 0;
	case S2_FMT_X86_NPT: return SIM_BIT(5);
	case S2_FMT_RISCV_G: return SIM_BIT(6);
	case S2_FMT_ARM64_S2: return SIM_BIT(10); /* AF */
	default: return 0;
	}
}

/*
 * Does the hardware set Accessed itself? Otherwise an access through a leaf
 * with it clear faults (arm64 without VTCR_EL2.HA: access flag fault; RISC-V
 * without Svadu: guest page fault).
 */
static inline bool sim_hw_accessed(struct kvm *kvm)
{
	switch (kvm_fmt(kvm)) {
	case S2_FMT_X86_NPT: return true;
	default: return kvm_fmt_cfg(kvm)->flags & S2_FMTF_AD;
	}
}

/*
 * Must the dirty flag be set before a write proceeds, with no hardware to
 * set it? (RISC-V without Svadu faults on a write to a leaf with D clear.)
 */
static inline bool sim_write_needs_dirty(struct kvm *kvm)
{
	return kvm_fmt(kvm) == S2_FMT_RISCV_G && !sim_hw_dirty(kvm);
}

/* log2 of the bytes an entry at @level maps. */
static inline unsigned sim_level_shift(const struct s2_fmt_cfg *c, int level)
{
	return c->page_shift + (unsigned)(level - 1) * c->bits_per_level;
}

/* The entry of table @t (at @level) that translates @gpa. */
static inline uint64_t *sim_entry(const struct s2_fmt_cfg *c, uint64_t *t, int level, gpa_t gpa)
{
	unsigned bits = level == c->levels ? c->root_bits : c->bits_per_level;

	return &t[(gpa >> sim_level_shift(c, level)) & ((1ull << bits) - 1)];
}

/* Output address of a leaf at @level (the base of the block it maps). */
static inline uint64_t sim_leaf_pa(const struct s2_fmt_cfg *c, enum s2_fmt_id fmt, uint64_t e,
				   int level)
{
	return sim_next(fmt, e) & ~((1ull << sim_level_shift(c, level)) - 1);
}

/* The leaf entry mapping @gpa (and its level), or NULL. */
static inline uint64_t *sim_leaf_ptr(struct kvm *kvm, gpa_t gpa, int *level)
{
	const struct s2_fmt_cfg *c = kvm_fmt_cfg(kvm);
	enum s2_fmt_id fmt = kvm_fmt(kvm);
	uint64_t *t = (uint64_t *)(uintptr_t)kvm_mmu_root_hpa(kvm);

	for (int l = c->levels; l >= 1; l--) {
		unsigned bits = l == c->levels ? c->root_bits : c->bits_per_level;
		unsigned shift = c->page_shift + (unsigned)(l - 1) * c->bits_per_level;
		uint64_t *e = &t[(gpa >> shift) & ((1ull << bits) - 1)];
		uint64_t v = __atomic_load_n(e, __ATOMIC_ACQUIRE);

		if (!sim_present(fmt, v, l))
			return NULL;
		if (sim_leaf(fmt, v, l)) {
			*level = l;
			return e;
		}
		t = (uint64_t *)(uintptr_t)sim_next(fmt, v);
	}
	return NULL;
}

/*
 * A guest write to @gpa as the hardware does it: true when it proceeds
 * (setting the dirty flag with a locked update where the hardware keeps
 * one; *@newly_dirty says whether this write set it, which is when PML
 * logs), false when it faults.
 */
static inline bool sim_write(struct kvm *kvm, gpa_t gpa, bool *newly_dirty)
{
	uint64_t dbit = sim_dirty_bit(kvm);
	int level;

	*newly_dirty = false;
	for (;;) {
		uint64_t *e = sim_leaf_ptr(kvm, gpa, &level);
		uint64_t v;

		if (!e)
			return false;
		v = __atomic_load_n(e, __ATOMIC_ACQUIRE);
		if (!sim_present(kvm_fmt(kvm), v, level) || !sim_leaf(kvm_fmt(kvm), v, level))
			continue; /* changed under us: walk again */
		if (!sim_writable(kvm, v))
			return false;
		if (!dbit || (v & dbit))
			return true;
		if (__atomic_compare_exchange_n(e, &v, v | dbit, false, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE)) {
			*newly_dirty = true;
			return true;
		}
	}
}

#endif
