// SPDX-License-Identifier: MIT
/*
 * Cached MMIO entries (core/mmio.c, core/mmio_tmpl.h, docs/mmio.md),
 * compiled once per format (TEST_FMT) and checked with the format's
 * reference walker. Every test names the change of the code it catches
 * ("Catches:"); each was applied by hand and made the test fail.
 */
#include <string.h>

#include "core/kvm_internal.h"
#include "tests/generic/dirty_sim.h"
#include "tests/lib/testlib.h"
#if S2_ENABLED(CONFIG_S2_FMT_X86_NPT)
#include "s2mmu/x86-npt.h"
#include "tests/ref/npt_walker.h"
#endif

#ifndef TEST_FMT
#error "build with -DTEST_FMT=S2_FMT_..."
#endif

#define HVA_BASE (0x7f0000000000ull) /* 1 GiB aligned */
#define G0 (0x40000ull)		     /* slot 0's base gfn, 1 GiB aligned */
#define NP 0x100ull		     /* slot 0's pages */
#define M (G0 + 0x120)		     /* no memslot; same leaf table as slot 0 */
#define G1 (G0 + 0x1000)	     /* where slot 1 comes and goes */
#define R S2_ACC_READ
#define W S2_ACC_WRITE

static struct tvm T;
/* NPT: kvm_vm_params.host_pa_bits of every VM (the group runs with 0, the
 * not-present form, and with 48, the reserved-bit form: hosted table addresses are
 * below 2^47). */
static unsigned host_pa;
#define NPT_RSVD_FORM (TEST_FMT == S2_FMT_X86_NPT && host_pa && host_pa < 52)

static void vm(unsigned cache, unsigned gen_bits)
{
	struct kvm_vm_params p = t_default_params(TEST_FMT);

	p.max_leaf_level = 1;
	p.mmio_cache = cache;
	p.mmio_gen_bits = gen_bits;
	p.host_pa_bits = host_pa;
	t_vm_init(&T, TEST_FMT, &p);
	t_slot(&T, 0, G0, NP, HVA_BASE, 0);
}

static int teardown(void **state)
{
	(void)state;
	if (T.kvm)
		t_vm_fini(&T);
	return 0;
}

/* The generation the MMIO entry at @g carries, or S2_MMIO_NONE. */
static uint64_t entry_gen(gfn_t g)
{
	return T.kvm->ops->mmio_gen(T.kvm, T.vcpu->root, g << 12);
}

static uint64_t cur_gen(void)
{
	return T.kvm->memslots_gen & T.kvm->mmio_gen_mask;
}

/* One kvm_mmu_page_fault_mmio at @g: whether it was answered from the
 * entry (no fault, no memslot lookup) or went the normal fault's way. */
static bool mmio_hit(gfn_t g, unsigned acc)
{
	struct kvm_mmu_stats s0 = t_stats(T.kvm), s1;
	int r = kvm_mmu_page_fault_mmio(T.vcpu, g << 12, acc);

	assert_int_equal(r, RET_PF_EMULATE_MMIO);
	s1 = t_stats(T.kvm);
	if (s1.exits_mmio_cached == s0.exits_mmio_cached + 1) {
		assert_int_equal(s1.faults, s0.faults);
		assert_int_equal(s1.exits_mmio, s0.exits_mmio);
		return true;
	}
	assert_int_equal(s1.exits_mmio_cached, s0.exits_mmio_cached);
	assert_int_equal(s1.exits_mmio, s0.exits_mmio + 1);
	return false;
}

#if S2_ENABLED(CONFIG_S2_FMT_X86_NPT)
/* NPT: the raw level-1 entry of @g (hosted: table pa == va). */
static uint64_t npt_pte1(gfn_t g)
{
	const uint64_t *t = (const uint64_t *)T.vcpu->root->pt;

	for (unsigned l = kvm_mmu_levels(T.kvm); l > 1; l--) {
		uint64_t e = t[(g >> (9 * (l - 1))) & 511];

		assert_true(e & 1);
		t = (const uint64_t *)(uintptr_t)(e & 0x000ffffffffff000ull);
	}
	return t[g & 511];
}

/*
 * NPT: what the CPU makes of the MMIO entry at @g, by the reference walker
 * on a CPU of MAXPHYADDR host_pa: the reserved-bit form (P=1, bits 51:48)
 * stops the walk at level 1 with a reserved-bit fault (the NPF's RSV bit);
 * the P=0 form is not present. kvm_handle_npf() then answers the RSV fault
 * from the entry, and a not-present NPF is the normal fault.
 */
static void npt_check_entry(gfn_t g)
{
	struct ref_xlate x;
	uint64_t ncr3, e = npt_pte1(g);
	struct kvm_mmu_stats s0, s1;

	assert_int_equal(kvm_x86_npt_ncr3(T.kvm, &ncr3), 0);
	if (!NPT_RSVD_FORM) {
		assert_int_equal(e & 1, 0);
		assert_int_equal(ref_npt_walk(ncr3, kvm_mmu_levels(T.kvm) == 5, g << 12, &x),
				 REF_FAULT_NOT_PRESENT);
		return;
	}
	assert_int_equal(e & 1, 1);
	assert_int_equal(e >> host_pa & ((1ull << (52 - host_pa)) - 1),
			 (1ull << (52 - host_pa)) - 1);
	assert_int_equal(
		ref_npt_walk_maxphy(ncr3, kvm_mmu_levels(T.kvm) == 5, host_pa, g << 12, &x),
		REF_FAULT_RESERVED);
	assert_int_equal(x.level, 1);
	s0 = t_stats(T.kvm);
	assert_int_equal(kvm_handle_npf(T.vcpu, g << 12,
					S2_NPF_P | S2_NPF_RSV | S2_NPF_U | S2_NPF_W | S2_NPF_FINAL),
			 RET_PF_EMULATE_MMIO);
	s1 = t_stats(T.kvm);
	assert_int_equal(s1.exits_mmio_cached, s0.exits_mmio_cached + 1);
	assert_int_equal(s1.faults, s0.faults);
	/* RSV without P, as QEMU's TCG reports it: the same. */
	assert_int_equal(kvm_handle_npf(T.vcpu, g << 12, S2_NPF_RSV | S2_NPF_U | S2_NPF_FINAL),
			 RET_PF_EMULATE_MMIO);
	s1 = t_stats(T.kvm);
	assert_int_equal(s1.exits_mmio_cached, s0.exits_mmio_cached + 2);
	assert_int_equal(s1.faults, s0.faults);
	/* Without RSV: the normal fault (it rewrites the entry, same value). */
	assert_int_equal(kvm_handle_npf(T.vcpu, g << 12, S2_NPF_U | S2_NPF_FINAL),
			 RET_PF_EMULATE_MMIO);
	s0 = t_stats(T.kvm);
	assert_int_equal(s0.exits_mmio_cached, s1.exits_mmio_cached);
	assert_int_equal(s0.exits_mmio, s1.exits_mmio + 1);
	assert_int_equal(npt_pte1(g), e);
}
#endif

static void no_leaves(void)
{
	struct kvm_mmu_stats s = t_stats(T.kvm);

	for (int l = 1; l <= S2_MAX_LEVELS; l++)
		assert_int_equal(s.cur_leaves[l], 0);
}

/*
 * A fault with no memslot writes an MMIO entry of the current generation;
 * the MMIO exit then answers from it; the reference walker faults on it and
 * no statistic counts it as a leaf.
 * Catches: s2_mmio_install not called from the fault (no entry, no hit);
 * the installed entry counted in vcpu->stat.leaves (cur_leaves).
 */
static void test_install_and_hit(void **state)
{
	struct ref_xlate x;

	(void)state;
	vm(S2_MMIO_CACHE_ON, 0);
	assert_int_equal(entry_gen(M), S2_MMIO_NONE);
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, M << 12, R), RET_PF_EMULATE_MMIO);
	assert_int_equal(t_stats(T.kvm).mmio_entries, 1);
	assert_int_equal(entry_gen(M), cur_gen());
	/* Hardware faults on it: on EPT with a misconfiguration (the exit
	 * kvm_handle_ept_misconfig takes), elsewhere as on an empty entry. */
	if (TEST_FMT != S2_FMT_X86_NPT)
		assert_int_equal(ref_walk_kvm(T.kvm, M << 12, &x), TEST_FMT == S2_FMT_X86_EPT ?
									   REF_FAULT_MISCONFIG :
									   REF_FAULT_NOT_PRESENT);
#if S2_ENABLED(CONFIG_S2_FMT_X86_NPT)
	else
		npt_check_entry(M);
#endif
	no_leaves();
	assert_true(mmio_hit(M, R));
	assert_true(mmio_hit(M, W));
	assert_true(mmio_hit(M, R));
	/* (npt_check_entry's not-present NPF wrote it once more) */
	assert_int_equal(t_stats(T.kvm).mmio_entries, NPT_RSVD_FORM ? 2 : 1);
	/* Beside it, RAM maps as usual and the MMIO entry stays. */
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, (G0 + 1) << 12, R), RET_PF_FIXED);
	assert_int_equal(t_stats(T.kvm).cur_leaves[1], 1);
	assert_true(mmio_hit(M, R));
	/* An access the fault refuses is refused here too, not answered. */
	assert_int_equal(kvm_mmu_page_fault_mmio(T.vcpu, M << 12, 0), -EINVAL);
	assert_int_equal(kvm_mmu_page_fault_mmio(NULL, M << 12, R), -EINVAL);
}

/*
 * Default and S2_MMIO_CACHE_OFF: off on every format (on EPT an entry
 * changes the exit the embedder sees, so it opts in). With it off, nothing
 * is written and the MMIO exit is the normal fault. Catches: the default
 * turned on (kvm_create_vm's kvm->mmio_cache).
 */
static void test_default_per_format(void **state)
{
	bool on = false;
	struct kvm_vm_params p = t_default_params(TEST_FMT);
	struct kvm *k = NULL;

	(void)state;
	vm(S2_MMIO_CACHE_DEFAULT, 0);
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, M << 12, R), RET_PF_EMULATE_MMIO);
	assert_int_equal(t_stats(T.kvm).mmio_entries, on);
	assert_true(mmio_hit(M, R) == on);
	t_vm_fini(&T);
	vm(S2_MMIO_CACHE_OFF, 0);
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, M << 12, R), RET_PF_EMULATE_MMIO);
	assert_int_equal(entry_gen(M), S2_MMIO_NONE);
	assert_false(mmio_hit(M, R));
	assert_int_equal(t_stats(T.kvm).mmio_entries, 0);
	/* Bad input: -EINVAL, nothing created (with an env, so that only the
	 * field under test is bad). */
	p.env = &T.h.env;
	assert_int_equal(kvm_create_vm(&p, &k), 0);
	kvm_destroy_vm(k);
	k = NULL;
	p.mmio_cache = 3;
	assert_int_equal(kvm_create_vm(&p, &k), -EINVAL);
	p.mmio_cache = 0;
	p.mmio_gen_bits = 41;
	assert_int_equal(kvm_create_vm(&p, &k), -EINVAL);
	assert_null(k);
}

/*
 * Every kind of memslot change moves the generation: the entry is stale,
 * the MMIO exit falls back to the normal fault, which writes a current
 * entry, and the next exit hits again. Catches: kvm_mmu_page_fault_mmio
 * ignoring the generation (a stale entry hits). A kind of change that
 * stopped bumping memslots_gen fails the memslots_gen assertion.
 */
static void test_generation_bump_each_change(void **state)
{
	struct kvm_memory_slot s = {
		.id = 1, .base_gfn = G1, .npages = 16, .userspace_addr = HVA_BASE + (NP << 12)
	};

	(void)state;
	vm(S2_MMIO_CACHE_ON, 0);
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, M << 12, R), RET_PF_EMULATE_MMIO);
	assert_true(mmio_hit(M, R));
	for (int step = 0; step < 6; step++) {
		uint64_t g = T.kvm->memslots_gen;

		switch (step) {
		case 0: assert_int_equal(kvm_set_memslot(T.kvm, &s), 0); break;
		case 1:
			assert_int_equal(kvm_set_memslot_flags(T.kvm, 1, KVM_MEM_READONLY), 0);
			break;
		case 2:
			assert_int_equal(kvm_set_memslot_flags(T.kvm, 1, KVM_MEM_LOG_DIRTY_PAGES),
					 0);
			break;
		case 3: assert_int_equal(kvm_set_memslot_flags(T.kvm, 1, 0), 0); break;
		case 4: assert_int_equal(kvm_move_memslot(T.kvm, 1, G1 + 0x100), 0); break;
		default: assert_int_equal(kvm_delete_memslot(T.kvm, 1), 0); break;
		}
		assert_int_equal(T.kvm->memslots_gen, g + 1);
		assert_int_not_equal(entry_gen(M), cur_gen());
		assert_false(mmio_hit(M, R)); /* stale: the normal fault */
		assert_int_equal(entry_gen(M), cur_gen());
		assert_true(mmio_hit(M, R));
	}
	assert_int_equal(t_stats(T.kvm).mmio_entries, 7);
	no_leaves();
}

/*
 * With 2 generation bits, the entry written at generation g would match
 * again at g + 4: each wrap of the generation to 0 in those bits clears
 * every MMIO entry first (and only then). Catches: s2_mmio_gen_bump_locked
 * not zapping (the entry at M matches again four changes later); the wrap
 * tested on the wrong side of the bump (s2_mmio_gen_bump_locked given the
 * old generation: mmio_wraps counted a change late).
 */
static void test_wrap_zaps_all(void **state)
{
	struct kvm_memory_slot s = {
		.id = 1, .base_gfn = G1, .npages = 16, .userspace_addr = HVA_BASE + (NP << 12)
	};
	unsigned wraps = 0;

	(void)state;
	vm(S2_MMIO_CACHE_ON, 2);
	assert_int_equal(T.kvm->mmio_gen_mask, 3);
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, M << 12, R), RET_PF_EMULATE_MMIO);
	for (gfn_t i = 0; i < 12; i++) {
		/* An entry of this generation at M + 1 + i. */
		assert_int_equal(kvm_tdp_page_fault(T.vcpu, (M + 1 + i) << 12, R),
				 RET_PF_EMULATE_MMIO);
		assert_int_equal(entry_gen(M + 1 + i), cur_gen());
		if (i & 1)
			assert_int_equal(kvm_delete_memslot(T.kvm, 1), 0);
		else
			assert_int_equal(kvm_set_memslot(T.kvm, &s), 0);
		if (!cur_gen()) {
			wraps++;
			for (gfn_t j = 0; j <= i + 1; j++)
				assert_int_equal(entry_gen(M + j), S2_MMIO_NONE);
		} else {
			assert_int_equal(entry_gen(M + 1 + i), (cur_gen() - 1) & 3);
		}
		assert_int_equal(t_stats(T.kvm).mmio_wraps, wraps);
		/* The entry from the start is never current again. */
		assert_true(entry_gen(M) == S2_MMIO_NONE || entry_gen(M) != cur_gen());
	}
	assert_int_equal(wraps, 3);
	assert_false(mmio_hit(M, R));
	assert_true(mmio_hit(M, R));
	no_leaves();
}

/*
 * A slot added over an MMIO entry: the entry is stale, the MMIO exit falls
 * back to the fault, which maps the page over it (the entry is never
 * present: no rule-1 refusal, no zap). Catches: S2_FN(map) treating an MMIO
 * value like a frozen one (RET_PF_RETRY for ever);
 * kvm_mmu_page_fault_mmio trusting the entry without the generation
 * (RET_PF_EMULATE_MMIO on RAM).
 */
static void test_new_slot_replaces_entry(void **state)
{
	(void)state;
	vm(S2_MMIO_CACHE_ON, 0);
	for (gfn_t g = M; g < M + 4; g++)
		assert_int_equal(kvm_tdp_page_fault(T.vcpu, g << 12, R), RET_PF_EMULATE_MMIO);
	t_slot(&T, 1, M, 2, HVA_BASE + (NP << 12), 0);
	assert_int_equal(kvm_mmu_page_fault_mmio(T.vcpu, M << 12, W), RET_PF_FIXED);
	t_assert_maps(T.kvm, M << 12, HVA_BASE + (NP << 12), 1, S2_PROT_R | S2_PROT_W);
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, (M + 1) << 12, R), RET_PF_FIXED);
	t_assert_maps(T.kvm, (M + 1) << 12, HVA_BASE + ((NP + 1) << 12), 1, S2_PROT_R);
	assert_int_equal(t_stats(T.kvm).cur_leaves[1], 2);
	assert_int_equal(t_stats(T.kvm).refused_changes, 0);
	/* Past the slot: still MMIO, rewritten at the current generation. */
	assert_false(mmio_hit(M + 2, R));
	assert_true(mmio_hit(M + 2, R));
	/* The slot goes: its leaves are zapped, the fault writes MMIO again. */
	assert_int_equal(kvm_delete_memslot(T.kvm, 1), 0);
	assert_false(mmio_hit(M, R));
	assert_true(mmio_hit(M, R));
	no_leaves();
}

/*
 * Zaps, the notifier and dirty logging walk past MMIO entries: the leaves
 * they count and the pages they report are the slot's only, and the MMIO
 * entries in the same leaf table stay (a range zap of part of the table)
 * or go with the table (a zap covering it; destroy returns every page).
 * Catches: S2_FN(zap_table_locked) taking an MMIO value for a leaf (the
 * table zap counts 16, not 8).
 */
static void test_walkers_skip_entries(void **state)
{
	uint64_t bm[NP / 64];
	long n;

	(void)state;
	vm(S2_MMIO_CACHE_ON, 0);
	for (gfn_t g = G0; g < G0 + 8; g++)
		assert_int_equal(kvm_tdp_page_fault(T.vcpu, g << 12, W), RET_PF_FIXED);
	for (gfn_t g = M; g < M + 8; g++)
		assert_int_equal(kvm_tdp_page_fault(T.vcpu, g << 12, R), RET_PF_EMULATE_MMIO);
	/* Dirty logging: write-protects the 8 leaves, reports only them. */
	assert_int_equal(kvm_set_memslot_flags(T.kvm, 0, KVM_MEM_LOG_DIRTY_PAGES), 0);
	/* Spurious where logging cleans hardware dirty bits instead. */
	for (gfn_t g = G0; g < G0 + 8; g++)
		assert_true(kvm_tdp_page_fault(T.vcpu, g << 12, W) <= RET_PF_SPURIOUS);
	memset(bm, 0, sizeof(bm));
	n = kvm_get_dirty_log(T.kvm, 0, bm);
	assert_true(n >= 0);
	/* Whether the 8 are reported depends on how the format logs (hardware
	 * dirty bits no test sets here); nothing else is, and the MMIO entries
	 * are still there (stale: the flags changed). */
	assert_int_equal(bm[0] & ~0xffull, 0);
	for (gfn_t g = M; g < M + 8; g++)
		assert_int_not_equal(entry_gen(g), S2_MMIO_NONE);
	for (unsigned i = 1; i < NP / 64; i++)
		assert_int_equal(bm[i], 0);
	/* Notifier over the slot's whole hva range: 8 leaves. */
	struct kvm_mmu_stats s0 = t_stats(T.kvm);
	assert_int_equal(kvm_mmu_notifier_invalidate_range_start(T.kvm, HVA_BASE,
								 HVA_BASE + (NP << 12), true),
			 0);
	assert_int_equal(
		kvm_mmu_notifier_invalidate_range_end(T.kvm, HVA_BASE, HVA_BASE + (NP << 12), true),
		0);
	assert_int_equal(t_stats(T.kvm).zapped_leaves, s0.zapped_leaves + 8);
	no_leaves();
	/* A partial zap over the MMIO entries: nothing counted, they stay. */
	assert_int_equal(kvm_set_memslot_flags(T.kvm, 0, 0), 0);
	for (gfn_t g = G0; g < G0 + 8; g++)
		assert_int_equal(kvm_tdp_page_fault(T.vcpu, g << 12, R), RET_PF_FIXED);
	for (gfn_t g = M; g < M + 8; g++)
		(void)kvm_mmu_page_fault_mmio(T.vcpu, g << 12, R);
	assert_int_equal(kvm_zap_gfn_range(T.kvm, M, M + 8), 0);
	for (gfn_t g = M; g < M + 8; g++)
		assert_true(mmio_hit(g, R));
	/* A zap covering the whole leaf table (the table sweep): 8 leaves. */
	n = kvm_zap_gfn_range(T.kvm, G0, G0 + 0x200);
	assert_int_equal(n, 8);
	no_leaves();
	assert_int_equal(t_stats(T.kvm).refused_changes, 0);
}

/*
 * Aging and whole-VM zaps: aging the slot's hva range reports and clears
 * only the 8 leaves; kvm_mmu_zap_all counts 8 (in place or by a new root)
 * and leaves no MMIO entry the exit trusts wrongly: afterwards the exit
 * falls back once and hits again; kvm_mmu_zap_all_fast likewise, and
 * t_vm_fini finds every table page back. Catches: S2_FN(walk) visiting an
 * MMIO value as a level-1 leaf (aging and the teardown count it).
 */
static void test_aging_and_zap_all(void **state)
{
	long n;

	(void)state;
	vm(S2_MMIO_CACHE_ON, 0);
	for (gfn_t g = G0; g < G0 + 8; g++)
		assert_int_equal(kvm_tdp_page_fault(T.vcpu, g << 12, R), RET_PF_FIXED);
	for (gfn_t g = M; g < M + 8; g++)
		assert_int_equal(kvm_tdp_page_fault(T.vcpu, g << 12, R), RET_PF_EMULATE_MMIO);
	n = kvm_mmu_notifier_clear_young(T.kvm, HVA_BASE, HVA_BASE + (NP << 12));
	assert_true(n >= 0 && n <= 8);
	n = kvm_mmu_notifier_test_young(T.kvm, HVA_BASE, HVA_BASE + (NP << 12));
	assert_int_equal(n, 0);
	for (gfn_t g = M; g < M + 8; g++)
		assert_true(mmio_hit(g, R));
	assert_int_equal(kvm_mmu_zap_all(T.kvm), 8);
	no_leaves();
	for (gfn_t g = M; g < M + 8; g++)
		(void)mmio_hit(g, R); /* a new root: the fallback writes them again */
	for (gfn_t g = M; g < M + 8; g++)
		assert_true(mmio_hit(g, R));
	assert_int_equal(kvm_mmu_zap_all_fast(T.kvm), 0);
	assert_false(mmio_hit(M, R));
	assert_true(mmio_hit(M, R));
	assert_int_equal(t_stats(T.kvm).refused_changes, 0);
}

/*
 * The simulated hardware of the dirty and TLB-model suites
 * (tests/generic/dirty_sim.h) never writes or translates through an MMIO
 * entry, in either NPT form, while it does through a writable leaf beside
 * it. Catches: sim_present taking EPT's W-only MMIO value for a present
 * leaf (the write "succeeds"), or NPT's P=1 form (U/S not checked).
 */
static void test_sim_hardware_faults(void **state)
{
	bool nd;
	int level;

	(void)state;
	vm(S2_MMIO_CACHE_ON, 0);
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, G0 << 12, W), RET_PF_FIXED);
	assert_true(sim_write(T.kvm, G0 << 12, &nd));
	assert_non_null(sim_leaf_ptr(T.kvm, G0 << 12, &level));
	for (gfn_t g = M; g < M + 4; g++) {
		assert_int_equal(kvm_tdp_page_fault(T.vcpu, g << 12, W), RET_PF_EMULATE_MMIO);
		assert_int_not_equal(entry_gen(g), S2_MMIO_NONE);
		assert_null(sim_leaf_ptr(T.kvm, g << 12, &level));
		assert_false(sim_write(T.kvm, g << 12, &nd));
	}
}

/*
 * NPT's host_pa_bits: 32..52, and the generation must fit below it in the
 * reserved-bit form; the generation of an entry stays below bit host_pa
 * through memslot changes (the reserved bits are never overwritten by it).
 * Catches: fmt_make_mmio setting the reserved bits without P (a not-present
 * entry: the reference walker's fault is not RESERVED); fmt_is_present
 * testing P only (the P=1 entry taken for a table: every test fails).
 */
static void test_npt_host_pa_bits(void **state)
{
#if S2_ENABLED(CONFIG_S2_FMT_X86_NPT)
	struct kvm_vm_params p = t_default_params(TEST_FMT);
	struct kvm *k = NULL;

	(void)state;
	if (TEST_FMT != S2_FMT_X86_NPT)
		return;
	vm(S2_MMIO_CACHE_ON, 20);
	p.env = &T.h.env;
	p.mmio_cache = S2_MMIO_CACHE_ON;
	p.host_pa_bits = 31;
	assert_int_equal(kvm_create_vm(&p, &k), -EINVAL);
	p.host_pa_bits = 53;
	assert_int_equal(kvm_create_vm(&p, &k), -EINVAL);
	p.host_pa_bits = 32;
	p.mmio_gen_bits = 21;
	assert_int_equal(kvm_create_vm(&p, &k), -EINVAL);
	assert_null(k);
	p.mmio_gen_bits = 20;
	assert_int_equal(kvm_create_vm(&p, &k), 0);
	kvm_destroy_vm(k);
	if (!NPT_RSVD_FORM)
		return;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(kvm_tdp_page_fault(T.vcpu, (M + i) << 12, R), RET_PF_EMULATE_MMIO);
		npt_check_entry(M + i);
		assert_int_equal(entry_gen(M + i), cur_gen());
		t_slot(&T, 1 + i, G1 + i, 1, HVA_BASE + ((NP + i) << 12), 0);
	}
#else
	(void)state;
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_install_and_hit, teardown),
		cmocka_unit_test_teardown(test_default_per_format, teardown),
		cmocka_unit_test_teardown(test_generation_bump_each_change, teardown),
		cmocka_unit_test_teardown(test_wrap_zaps_all, teardown),
		cmocka_unit_test_teardown(test_new_slot_replaces_entry, teardown),
		cmocka_unit_test_teardown(test_walkers_skip_entries, teardown),
		cmocka_unit_test_teardown(test_aging_and_zap_all, teardown),
		cmocka_unit_test_teardown(test_sim_hardware_faults, teardown),
		cmocka_unit_test_teardown(test_npt_host_pa_bits, teardown),
	};
	int r;

	if (!s2_fmt_supported(TEST_FMT)) {
		print_message("format " TEST_FMT_NAME " not built: skipped\n");
		return 0;
	}
	r = cmocka_run_group_tests_name("generic MMIO entries [" TEST_FMT_NAME "]", tests, NULL,
					NULL);
	if (TEST_FMT != S2_FMT_X86_NPT)
		return r;
	/* NPT again with MMIO entries in the reserved-bit form. */
	host_pa = 48;
	return r | cmocka_run_group_tests_name("generic MMIO entries [" TEST_FMT_NAME
					       ", host_pa_bits 48: reserved-bit form]",
					       tests, NULL, NULL);
}
