// SPDX-License-Identifier: MIT
/*
 * Roots, the entry call and lock breaking, per format (TEST_FMT). Every
 * root is walked with the format's reference walker from the register
 * value the library hands out for it (KVM_ENTRY_LOAD_ROOT / kvm_mmu_load),
 * never through the library's own decoders.
 *
 * Mutations run (each made one of these tests fail; then restored):
 *  - flush/request.c: FLUSH_CURRENT pushed before LOAD_ROOT
 *    (test_entry_every_combination);
 *  - flush/request.c: TLB_FLUSH_CURRENT not turned into an action
 *    (test_entry_every_combination);
 *  - core/roots.c: s2_root_put() never frees the last reference
 *    (test_fast_zap_frees_old_roots: pages counted);
 *  - core/mmu_tmpl.h: the walker's budget check in the leaf-table loop
 *    removed (test_yield_bound_and_same_tables fails);
 *  - core/mmu_tmpl.h, range_root: resuming one gfn past the resume point
 *    (test_yield_bound_and_same_tables, test_teardown_yields: leaves left
 *    behind; resuming at the call's start instead is only slower);
 *  - core/mmu_tmpl.h, range: only the first valid root walked
 *    (test_two_spaces_agree: the second root keeps its leaves);
 *  - core/dirty.c, s2_dirty_fast_write: every root walked instead of the
 *    vcpu's (test_fault_fixes_own_root; found by tests/generic/tlb_model_mt.c);
 *  - core/memslot.c, s2_zap_choose_fast: never fast, or always fast
 *    (test_memslot_removal_chooses_zap; always fast also
 *    test_memslot_updates_yield);
 *  - core/mmu.c, s2_zap_range_yielding_locked without may_block
 *    (test_memslot_updates_yield: the bound);
 *  - core/dirty.c: the start's or the collapse's walk without a hold
 *    (test_memslot_updates_yield, test_split_and_collapse_yield);
 *  - core/dirty_tmpl.h, enable_visit: a split not counted against the
 *    batch (test_split_and_collapse_yield);
 *  - core/mmu_tmpl.h, walk_run: a run visitor handed a whole table's part
 *    past the batch (test_logging_start_yields_mid_table);
 *  - flush/request.c, s2_request_tlb_flush: CURRENT always, CURRENT for a
 *    vcpu that does not load its root, CURRENT never
 *    (test_flush_request_narrowest, test_memslot_removal_chooses_zap).
 */
#include <string.h>

#include "core/kvm_internal.h"
#include "s2mmu/dirty.h"
#include "tests/lib/testlib.h"
#if S2_ENABLED(CONFIG_S2_FMT_X86_EPT)
#include "s2mmu/x86-ept.h"
#include "tests/ref/ept_walker.h"
#endif
#if S2_ENABLED(CONFIG_S2_FMT_ARM64_S2)
#include "s2mmu/arm64-s2.h"
#include "tests/ref/arm64_walker.h"
#endif
#if S2_ENABLED(CONFIG_S2_FMT_RISCV_G)
#include "s2mmu/riscv-g.h"
#include "tests/ref/riscv_walker.h"
#endif
#if S2_ENABLED(CONFIG_S2_FMT_X86_NPT)
#include "s2mmu/x86-npt.h"
#include "tests/ref/npt_walker.h"
#endif

#ifndef TEST_FMT
#error "build with -DTEST_FMT=S2_FMT_..."
#endif

#define HVA_BASE (0x7f0000000000ull)
#define SLOT_GFN 0x100000ull /* 4 GiB */

static struct tvm T;

static int setup(void **state)
{
	(void)state;
	t_vm_init(&T, TEST_FMT, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	t_vm_fini(&T);
	return 0;
}

/* Walk @gpa from the register value @reg with the reference walker. */
static int walk_reg(struct kvm *kvm, uint64_t reg, gpa_t gpa, struct ref_xlate *x)
{
	memset(x, 0, sizeof(*x));
	switch (kvm_fmt(kvm)) {
#if S2_ENABLED(CONFIG_S2_FMT_X86_EPT)
	case S2_FMT_X86_EPT: return ref_ept_walk(reg, 0, gpa, x);
#endif
#if S2_ENABLED(CONFIG_S2_FMT_ARM64_S2)
	case S2_FMT_ARM64_S2: {
		uint64_t vtcr;

		assert_int_equal(kvm_arm64_vtcr(kvm, 48, &vtcr), 0);
		return ref_arm64_walk(vtcr, reg, 0, gpa, x);
	}
#endif
#if S2_ENABLED(CONFIG_S2_FMT_RISCV_G)
	case S2_FMT_RISCV_G: return ref_riscv_walk(reg, 0, gpa, x);
#endif
#if S2_ENABLED(CONFIG_S2_FMT_X86_NPT)
	case S2_FMT_X86_NPT: return ref_npt_walk(reg, kvm_mmu_levels(kvm) == 5, gpa, x);
#endif
	default: fail_msg("no reference walker"); return -1;
	}
}

/* Enter through the entry call; returns the actions as a string such as
 * "L C G" (L load, C flush current, A flush all, G flush guest). */
static const char *entry(struct kvm_vcpu *v, struct kvm_entry_actions *acts)
{
	static char buf[16];
	char *p = buf;

	assert_int_equal(kvm_vcpu_entry_actions(v, acts), 0);
	for (unsigned i = 0; i < acts->nr; i++) {
		static const char k[] = { '?', 'L', 'C', 'A', 'G' };

		if (p != buf)
			*p++ = ' ';
		*p++ = k[acts->a[i].kind];
	}
	*p = 0;
	return buf;
}

static uint64_t load_reg(const struct kvm_entry_actions *a)
{
	for (unsigned i = 0; i < a->nr; i++)
		if (a->a[i].kind == KVM_ENTRY_LOAD_ROOT)
			return a->a[i].reg;
	fail_msg("no LOAD_ROOT");
	return 0;
}

/* A vcpu's first entry through the entry call loads its root and flushes
 * it; the register points at the VM's root and walks. */
static void test_first_entry_loads(void **state)
{
	struct kvm_entry_actions a;
	struct ref_xlate x;

	(void)state;
	t_slot(&T, 0, SLOT_GFN, 16, HVA_BASE, 0);
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, SLOT_GFN << 12, S2_ACC_READ), RET_PF_FIXED);
	assert_string_equal(entry(T.vcpu, &a), "L C");
	assert_int_equal(a.a[0].hpa, kvm_mmu_root_hpa(T.kvm));
	assert_int_equal(walk_reg(T.kvm, load_reg(&a), SLOT_GFN << 12, &x), 0);
	assert_int_equal(x.hpa, HVA_BASE);
	assert_int_equal(a.nr_roots, 1);
	/* Nothing pending: nothing to do. */
	assert_string_equal(entry(T.vcpu, &a), "");
	assert_true(kvm_vcpu_enter_guest(T.vcpu));
	kvm_vcpu_exit_guest(T.vcpu);
}

/*
 * Every combination of the five requests the entry call consumes gives the
 * list docs/rules.md states: the load first, one stage-2 flush (ALL covers
 * CURRENT and the load's flush), the guest flush last; FREE_OBSOLETE_ROOTS
 * alone does nothing; the bits are consumed and DIRTY_RING_SOFT_FULL stays.
 */
static void test_entry_every_combination(void **state)
{
	/* Index bits: 1 TLB_FLUSH, 2 TLB_FLUSH_CURRENT, 4 TLB_FLUSH_GUEST,
	 * 8 MMU_RELOAD, 16 FREE_OBSOLETE_ROOTS. */
	static const char *const want[16] = {
		"",    "A",   "C",   "A",   "G",     "A G",   "C G",   "A G",
		"L C", "L A", "L C", "L A", "L C G", "L A G", "L C G", "L A G",
	};
	static const unsigned req[5] = { KVM_REQ_TLB_FLUSH, KVM_REQ_TLB_FLUSH_CURRENT,
					 KVM_REQ_TLB_FLUSH_GUEST, KVM_REQ_MMU_RELOAD,
					 KVM_REQ_FREE_OBSOLETE_ROOTS };
	struct kvm_entry_actions a;

	(void)state;
	(void)entry(T.vcpu, &a);
	for (unsigned m = 0; m < 32; m++) {
		for (unsigned b = 0; b < 5; b++)
			if (m & (1u << b))
				kvm_make_request(T.vcpu, req[b]);
		kvm_make_request(T.vcpu, KVM_REQ_DIRTY_RING_SOFT_FULL);
		const char *got = entry(T.vcpu, &a);

		if (strcmp(got, want[m & 15]))
			fail_msg("requests %#x: actions \"%s\", want \"%s\"", m, got, want[m & 15]);
		if (m & 8)
			assert_int_equal(a.a[0].hpa, kvm_vcpu_root_hpa(T.vcpu));
		for (unsigned b = 0; b < 5; b++)
			assert_false(kvm_check_request(T.vcpu, req[b]));
		assert_true(kvm_check_request(T.vcpu, KVM_REQ_DIRTY_RING_SOFT_FULL));
	}
}

/* Bad input changes nothing. */
static void test_bad_input(void **state)
{
	struct kvm_entry_actions a;
	struct kvm_root_role bad = { KVM_ROOT_DIRECT, KVM_ROOT_SPACES };
	struct kvm_root_role mirror = { KVM_ROOT_MIRROR, 0 };
	uint64_t reg = 7;

	(void)state;
	assert_int_equal(kvm_vcpu_entry_actions(NULL, &a), -EINVAL);
	assert_int_equal(kvm_vcpu_entry_actions(T.vcpu, NULL), -EINVAL);
	assert_int_equal(kvm_mmu_load(T.vcpu, bad, &reg), -EINVAL);
	assert_int_equal(kvm_mmu_load(T.vcpu, mirror, &reg), -ENOTSUP);
	assert_int_equal(reg, 7);
	assert_int_equal(kvm_mmu_zap_all_fast(NULL), -EINVAL);
	assert_int_equal(kvm_vcpu_root_hpa(T.vcpu), kvm_mmu_root_hpa(T.kvm));
}

/*
 * Two roots of different spaces live at once: each is filled by the faults
 * of the vcpu on it, and a zap, a dirty-log start and a fast zap change both
 * alike (walked from each register value).
 */
static void test_two_spaces_agree(void **state)
{
	struct kvm_root_role s1 = { KVM_ROOT_DIRECT, 1 };
	struct kvm_vcpu *v1;
	struct kvm_entry_actions a;
	struct ref_xlate x0, x1;
	uint64_t r0, r1;

	(void)state;
	t_slot(&T, 0, SLOT_GFN, 64, HVA_BASE, 0);
	assert_int_equal(kvm_vcpu_create(T.kvm, 1, &v1), 0);
	(void)entry(T.vcpu, &a);
	r0 = load_reg(&a);
	assert_int_equal(kvm_mmu_load(v1, s1, &r1), 0);
	assert_true(r0 != r1);
	assert_int_equal(t_stats(T.kvm).cur_roots_valid, 2);
	for (gfn_t g = SLOT_GFN; g < SLOT_GFN + 64; g++) {
		assert_int_equal(kvm_tdp_page_fault(T.vcpu, g << 12, S2_ACC_WRITE), RET_PF_FIXED);
		assert_int_equal(kvm_tdp_page_fault(v1, g << 12, S2_ACC_WRITE), RET_PF_FIXED);
	}
	for (gfn_t g = SLOT_GFN; g < SLOT_GFN + 64; g++) {
		assert_int_equal(walk_reg(T.kvm, r0, g << 12, &x0), 0);
		assert_int_equal(walk_reg(T.kvm, r1, g << 12, &x1), 0);
		assert_int_equal(x0.hpa, x1.hpa);
		assert_int_equal(x0.perm & S2_PROT_W, S2_PROT_W);
		assert_int_equal(x1.perm & S2_PROT_W, S2_PROT_W);
	}
	/* A zap reaches both roots. */
	assert_int_equal(kvm_zap_gfn_range(T.kvm, SLOT_GFN, SLOT_GFN + 8), 16);
	for (gfn_t g = SLOT_GFN; g < SLOT_GFN + 8; g++) {
		assert_int_not_equal(walk_reg(T.kvm, r0, g << 12, &x0), 0);
		assert_int_not_equal(walk_reg(T.kvm, r1, g << 12, &x1), 0);
	}
	/* Dirty logging write-protects both. */
	assert_int_equal(kvm_set_memslot_flags(T.kvm, 0, KVM_MEM_LOG_DIRTY_PAGES), 0);
	for (gfn_t g = SLOT_GFN + 8; g < SLOT_GFN + 64; g++) {
		assert_int_equal(walk_reg(T.kvm, r0, g << 12, &x0), 0);
		assert_int_equal(walk_reg(T.kvm, r1, g << 12, &x1), 0);
		assert_int_equal(x0.perm, x1.perm);
		assert_int_equal(x0.dirty, x1.dirty);
	}
	/* Aging clears Accessed in both (where the format has it). */
	assert_true(kvm_mmu_notifier_clear_young(T.kvm, HVA_BASE, HVA_BASE + 64 * 4096) > 0);
	for (gfn_t g = SLOT_GFN + 8; g < SLOT_GFN + 64; g++) {
		assert_int_equal(walk_reg(T.kvm, r0, g << 12, &x0),
				 walk_reg(T.kvm, r1, g << 12, &x1));
		assert_false(x0.accessed);
		assert_false(x1.accessed);
	}
	(void)entry(T.vcpu, &a); /* what the dirty-log start owed */
	(void)entry(v1, &a);
	/* A fast zap replaces both; each vcpu reloads its own space. */
	assert_int_equal(kvm_mmu_zap_all_fast(T.kvm), 0);
	assert_string_equal(entry(T.vcpu, &a), "L C");
	assert_int_not_equal(load_reg(&a), r0);
	assert_string_equal(entry(v1, &a), "L C");
	assert_int_not_equal(load_reg(&a), r1);
	assert_int_equal(kvm_vcpu_root_role(v1).space, 1);
	assert_int_equal(t_stats(T.kvm).cur_roots_valid, 2);
	assert_int_equal(t_stats(T.kvm).cur_leaves[1], 0);
}

/*
 * A fault is fixed in the root its vcpu runs on: the fault fast paths after
 * aging (restore Accessed) and under dirty logging (restore W) never count
 * another root's leaf, or the vcpu would fault for ever.
 */
static void test_fault_fixes_own_root(void **state)
{
	struct kvm_root_role s1 = { KVM_ROOT_DIRECT, 1 };
	struct kvm_entry_actions a;
	struct kvm_vcpu *v1;
	struct ref_xlate x;
	uint64_t r0, r1;

	(void)state;
	T.h.host_level = 1;
	t_slot(&T, 0, SLOT_GFN, 64, HVA_BASE, KVM_MEM_LOG_DIRTY_PAGES);
	assert_int_equal(kvm_vcpu_create(T.kvm, 1, &v1), 0);
	(void)entry(T.vcpu, &a);
	r0 = load_reg(&a);
	assert_int_equal(kvm_mmu_load(v1, s1, &r1), 0);
	/* Logging: v1's read fault maps read-only in root 1; its write then
	 * takes the dirty-log fast path there. */
	assert_int_equal(kvm_tdp_page_fault(v1, SLOT_GFN << 12, S2_ACC_READ), RET_PF_FIXED);
	assert_int_equal(kvm_tdp_page_fault(v1, SLOT_GFN << 12, S2_ACC_WRITE), RET_PF_FIXED);
	/* vcpu 0 writes the same page: it must be mapped in root 0. */
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, SLOT_GFN << 12, S2_ACC_WRITE), RET_PF_FIXED);
	assert_int_equal(walk_reg(T.kvm, r0, SLOT_GFN << 12, &x), 0);
	assert_int_equal(x.perm & S2_PROT_W, S2_PROT_W);
	/* After aging, the same for a read of a page only root 1 maps. */
	assert_int_equal(kvm_tdp_page_fault(v1, (SLOT_GFN + 1) << 12, S2_ACC_READ), RET_PF_FIXED);
	assert_true(kvm_mmu_notifier_clear_young(T.kvm, HVA_BASE, HVA_BASE + 64 * 4096) > 0);
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, (SLOT_GFN + 1) << 12, S2_ACC_READ),
			 RET_PF_FIXED);
	assert_int_equal(walk_reg(T.kvm, r0, (SLOT_GFN + 1) << 12, &x), 0);
	assert_int_equal(walk_reg(T.kvm, r1, (SLOT_GFN + 1) << 12, &x), 0);
}

/*
 * A fast zap: the vcpu on the old root retries its faults until it
 * reloads, no vcpu is left on an obsolete root after its next entry, and
 * every page of the old roots goes back (pages counted in the env).
 */
static void test_fast_zap_frees_old_roots(void **state)
{
	struct kvm_entry_actions a;
	struct kvm_vcpu *v1;
	struct ref_xlate x;
	uint64_t old_reg, new_reg;
	hpa_t old_root;

	(void)state;
	T.h.host_level = 2; /* 2 MiB leaves, and 4 KiB ones past them */
	t_slot(&T, 0, SLOT_GFN, 2048 + 300, HVA_BASE, 0);
	assert_int_equal(kvm_vcpu_create(T.kvm, 1, &v1), 0);
	(void)entry(T.vcpu, &a);
	old_reg = load_reg(&a);
	(void)entry(v1, &a);
	for (gfn_t g = SLOT_GFN + 1; g < SLOT_GFN + 2048 + 300; g += 3) {
		int r = kvm_tdp_page_fault(T.vcpu, g << 12, S2_ACC_READ);

		assert_true(r == RET_PF_FIXED || r == RET_PF_SPURIOUS);
	}
	assert_true(t_stats(T.kvm).cur_leaves[2] > 0);
	assert_true(t_stats(T.kvm).cur_table_pages > 0);
	old_root = kvm_mmu_root_hpa(T.kvm);

	assert_int_equal(kvm_mmu_zap_all_fast(T.kvm), 0);
	assert_int_not_equal(kvm_mmu_root_hpa(T.kvm), old_root);
	struct kvm_mmu_stats s = t_stats(T.kvm);
	assert_int_equal(s.cur_leaves[1] + s.cur_leaves[2] + s.cur_leaves[3], 0);
	assert_int_equal(s.cur_table_pages, 0);
	assert_int_equal(s.cur_roots, 2); /* the old one: the vcpus still hold it */
	assert_int_equal(s.fast_zaps, 1);
	/* The old root is empty already, while the vcpus still hold it. */
	for (gfn_t g = SLOT_GFN + 1; g < SLOT_GFN + 2048 + 300; g += 97)
		assert_int_not_equal(walk_reg(T.kvm, old_reg, g << 12, &x), 0);
	/* Before its reload a vcpu's fault retries and maps nothing. */
	assert_int_equal(kvm_vcpu_root_hpa(T.vcpu), old_root);
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, SLOT_GFN << 12, S2_ACC_READ), RET_PF_RETRY);
	assert_false(kvm_vcpu_enter_guest(T.vcpu)); /* MMU_RELOAD is pending */
	assert_string_equal(entry(T.vcpu, &a), "L C");
	new_reg = load_reg(&a);
	assert_int_not_equal(new_reg, old_reg);
	assert_int_equal(kvm_vcpu_root_hpa(T.vcpu), kvm_mmu_root_hpa(T.kvm));
	assert_true(kvm_vcpu_enter_guest(T.vcpu));
	kvm_vcpu_exit_guest(T.vcpu);
	assert_int_equal(t_stats(T.kvm).roots_freed, 0); /* v1 still holds it */
	assert_string_equal(entry(v1, &a), "L C");
	assert_int_equal(t_stats(T.kvm).roots_freed, 1);
	assert_int_equal(t_stats(T.kvm).cur_roots, 1);
	/* Every page of the old root is back: only the new root and the
	 * vcpus' memory caches remain. */
	s2_hosted_quiesce(&T.h);
	assert_int_equal(s2_hosted_pages_in_use(&T.h),
			 s2_root_alloc_bytes(&T.kvm->cfg) / 4096 +
				 (T.vcpu->cache.nr + v1->cache.nr) *
					 (s2_table_bytes(&T.kvm->cfg) / 4096));
	/* The new root fills again and walks from the new register. */
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, SLOT_GFN << 12, S2_ACC_READ), RET_PF_FIXED);
	assert_int_equal(walk_reg(T.kvm, new_reg, SLOT_GFN << 12, &x), 0);
	assert_int_equal(x.hpa, HVA_BASE);
}

/* A vcpu that entered a guest without loading its root through the
 * library would not reload: the fast zap refuses, and zap-all zaps in place
 * instead. */
static void test_legacy_vcpu_zaps_in_place(void **state)
{
	hpa_t root = kvm_mmu_root_hpa(T.kvm);

	(void)state;
	t_slot(&T, 0, SLOT_GFN, 16, HVA_BASE, 0);
	for (gfn_t g = SLOT_GFN; g < SLOT_GFN + 16; g++)
		assert_int_equal(kvm_tdp_page_fault(T.vcpu, g << 12, S2_ACC_READ), RET_PF_FIXED);
	assert_true(kvm_vcpu_enter_guest(T.vcpu));
	kvm_vcpu_exit_guest(T.vcpu);
	assert_int_equal(kvm_mmu_zap_all_fast(T.kvm), -ENOTSUP);
	assert_int_equal(t_stats(T.kvm).cur_leaves[1], 16);
	assert_int_equal(kvm_mmu_zap_all(T.kvm), 16);
	assert_int_equal(kvm_mmu_root_hpa(T.kvm), root);
	t_assert_unmapped(T.kvm, SLOT_GFN << 12);
}

/* A vcpu that never loads a root and never entered a guest (one an
 * embedder only faults through) does not stop a fast zap: its next fault
 * moves it to the new root. */
static void test_fault_only_vcpu_follows(void **state)
{
	struct kvm_entry_actions a;
	struct kvm_vcpu *v1;
	hpa_t old;

	(void)state;
	t_slot(&T, 0, SLOT_GFN, 16, HVA_BASE, 0);
	assert_int_equal(kvm_vcpu_create(T.kvm, 1, &v1), 0);
	(void)entry(T.vcpu, &a);
	assert_int_equal(kvm_tdp_page_fault(v1, SLOT_GFN << 12, S2_ACC_READ), RET_PF_FIXED);
	old = kvm_vcpu_root_hpa(v1);
	assert_int_equal(kvm_mmu_zap_all_fast(T.kvm), 0);
	assert_int_equal(kvm_tdp_page_fault(v1, SLOT_GFN << 12, S2_ACC_READ), RET_PF_FIXED);
	assert_int_not_equal(kvm_vcpu_root_hpa(v1), old);
	assert_int_equal(kvm_vcpu_root_hpa(v1), kvm_mmu_root_hpa(T.kvm));
	t_assert_maps(T.kvm, SLOT_GFN << 12, HVA_BASE, 1, S2_PROT_R);
}

struct leaf_sum {
	uint64_t n, h;
};

static int sum_leaf(void *arg, gfn_t gfn, const struct s2_mapping *m)
{
	struct leaf_sum *s = arg;

	s->n++;
	s->h = s->h * 31 + (gfn ^ m->pte);
	return 0;
}

/* Map @n 4 KiB pages (every @stride-th) of a slot in @t and zap
 * [zs, ze) with the batch @batch; return what is left. */
static struct leaf_sum zap_run(struct tvm *t, unsigned batch, gfn_t zs, gfn_t ze,
			       struct kvm_mmu_stats *st)
{
	struct leaf_sum sum = { 0 };

	t->h.host_level = 1;
	t_slot(t, 0, SLOT_GFN, 8192, HVA_BASE, 0);
	for (gfn_t g = SLOT_GFN; g < SLOT_GFN + 8192; g++)
		assert_int_equal(kvm_tdp_page_fault(t->vcpu, g << 12, S2_ACC_READ), RET_PF_FIXED);
	t->kvm->yield_batch = batch;
	/* may_block: every batch yields (the in-place zap of kvm_mmu_zap_all
	 * passes it; this range is partial to leave tables to compare). */
	assert_int_equal(s2_zap_yielding(t->kvm, zs, ze, true), (long)(ze - zs));
	*st = t_stats(t->kvm);
	assert_int_equal(kvm_mmu_for_each_leaf(t->kvm, 0, 1ull << (kvm_gpa_bits(t->kvm) - 12),
					       sum_leaf, &sum),
			 0);
	return sum;
}

/*
 * Lock breaking: no hold of mmu_lock visits more leaves than the batch, and
 * a zap interrupted by yields leaves exactly the leaves and table pages an
 * uninterrupted one leaves.
 */
static void test_yield_bound_and_same_tables(void **state)
{
	struct tvm u;
	struct kvm_mmu_stats a, b;
	gfn_t zs = SLOT_GFN + 0x123, ze = SLOT_GFN + 0x1f77;

	(void)state;
	struct leaf_sum yielded = zap_run(&T, 512, zs, ze, &a);

	t_vm_init(&u, TEST_FMT, NULL);
	struct leaf_sum whole = zap_run(&u, 1u << 30, zs, ze, &b);

	assert_true(a.max_hold_leaves <= 512);
	assert_true(a.max_hold_leaves > 0);
	assert_true(a.yields >= (ze - zs) / 512);
	assert_int_equal(b.yields, 0);
	assert_int_equal(yielded.n, whole.n);
	assert_int_equal(yielded.n, 8192 - (ze - zs));
	assert_int_equal(yielded.h, whole.h);
	assert_int_equal(a.cur_table_pages, b.cur_table_pages);
	assert_int_equal(a.cur_leaves[1], b.cur_leaves[1]);
	/* The leftover tables are the same shape: both zap the rest the same. */
	assert_int_equal(kvm_zap_gfn_range(T.kvm, SLOT_GFN, SLOT_GFN + 8192),
			 kvm_zap_gfn_range(u.kvm, SLOT_GFN, SLOT_GFN + 8192));
	assert_int_equal(t_stats(T.kvm).cur_table_pages, 0);
	assert_int_equal(t_stats(u.kvm).cur_table_pages, 0);
	t_vm_fini(&u);
}

/* The teardown of an obsolete root yields too (it may block). */
static void test_teardown_yields(void **state)
{
	struct kvm_entry_actions a;

	(void)state;
	T.h.host_level = 1;
	t_slot(&T, 0, SLOT_GFN, 4096, HVA_BASE, 0);
	(void)entry(T.vcpu, &a);
	for (gfn_t g = SLOT_GFN; g < SLOT_GFN + 4096; g++)
		assert_int_equal(kvm_tdp_page_fault(T.vcpu, g << 12, S2_ACC_READ), RET_PF_FIXED);
	T.kvm->yield_batch = 512;
	/* fast (the vcpu reloads), and it counts what its teardown removed */
	assert_int_equal(kvm_mmu_zap_all(T.kvm), 4096);
	assert_int_equal(t_stats(T.kvm).fast_zaps, 1);
	struct kvm_mmu_stats s = t_stats(T.kvm);
	assert_true(s.yields >= 4096 / 512 - 1);
	assert_true(s.max_hold_leaves <= 512);
	assert_int_equal(s.cur_leaves[1], 0);
}

/* Leaves of [gfn, gfn + n) in the current root of space 0. */
static uint64_t leaves_in(struct kvm *kvm, gfn_t gfn, uint64_t n)
{
	struct leaf_sum sum = { 0 };

	assert_int_equal(kvm_mmu_for_each_leaf(kvm, gfn, gfn + n, sum_leaf, &sum), 0);
	return sum.n;
}

/* Fault every page of [gfn, gfn + n) (reads, or writes with @write). */
static void fault_all(struct kvm_vcpu *v, gfn_t gfn, uint64_t n, bool write)
{
	for (gfn_t g = gfn; g < gfn + n; g++) {
		int r = kvm_tdp_page_fault(v, g << 12, write ? S2_ACC_WRITE : S2_ACC_READ);

		assert_true(r == RET_PF_FIXED || r == RET_PF_SPURIOUS);
	}
}

/*
 * A memslot removal zaps in place when its range holds few of the VM's
 * leaves (or a large slot holds few leaves: counted), and takes the fast
 * zap when it holds most of them (7/8, at least fast_zap_min). Either way
 * nothing maps the old range afterwards, walked by the reference walker
 * from the register of the root the vcpu runs on; after the fast zap the
 * old root is empty too and the vcpu reloads.
 */
static void test_memslot_removal_chooses_zap(void **state)
{
	const gfn_t a = SLOT_GFN, b = SLOT_GFN + 0x10000, c = SLOT_GFN + 0x20000;
	const gfn_t moved = SLOT_GFN + 0x40000;
	struct kvm_entry_actions acts;
	struct ref_xlate x;
	uint64_t reg, old_reg;

	(void)state;
	T.h.host_level = 1;
	T.kvm->fast_zap_min = 256;
	t_slot(&T, 0, a, 2048, HVA_BASE, 0);
	t_slot(&T, 1, b, 64, HVA_BASE + 0x10000000, 0);
	(void)entry(T.vcpu, &acts);
	reg = load_reg(&acts);
	fault_all(T.vcpu, a, 2048, false);
	fault_all(T.vcpu, b, 64, false);

	/* 64 of 2112 leaves: in place, the root stays. */
	assert_int_equal(kvm_delete_memslot(T.kvm, 1), 0);
	assert_int_equal(t_stats(T.kvm).fast_zaps, 0);
	assert_string_equal(entry(T.vcpu, &acts), "C"); /* one valid root */
	for (gfn_t g = b; g < b + 64; g += 7)
		assert_int_not_equal(walk_reg(T.kvm, reg, g << 12, &x), 0);
	assert_int_equal(walk_reg(T.kvm, reg, (a + 5) << 12, &x), 0);
	assert_int_equal(x.hpa, HVA_BASE + 5 * 4096);
	assert_int_equal(leaves_in(T.kvm, a, 2048), 2048);

	/* Every leaf of the VM: the fast zap; the vcpu reloads. */
	old_reg = reg;
	assert_int_equal(kvm_move_memslot(T.kvm, 0, moved), 0);
	struct kvm_mmu_stats st = t_stats(T.kvm);
	assert_int_equal(st.fast_zaps, 1);
	assert_int_equal(st.cur_leaves[1] + st.cur_leaves[2] + st.cur_leaves[3], 0);
	for (gfn_t g = a; g < a + 2048; g += 61)
		assert_int_not_equal(walk_reg(T.kvm, old_reg, g << 12, &x), 0);
	assert_string_equal(entry(T.vcpu, &acts), "L C");
	reg = load_reg(&acts);
	assert_int_not_equal(reg, old_reg);
	for (gfn_t g = a; g < a + 2048; g += 61)
		assert_int_not_equal(walk_reg(T.kvm, reg, g << 12, &x), 0);
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, a << 12, S2_ACC_READ), RET_PF_EMULATE_MMIO);
	fault_all(T.vcpu, moved, 2048, false);
	assert_int_equal(walk_reg(T.kvm, reg, (moved + 9) << 12, &x), 0);
	assert_int_equal(x.hpa, HVA_BASE + 9 * 4096); /* a move keeps the hva */

	/* A large slot with few leaves: counted, so in place. */
	t_slot(&T, 2, c, 8192, HVA_BASE + 0x20000000, 0);
	fault_all(T.vcpu, c, 100, false);
	assert_int_equal(kvm_delete_memslot(T.kvm, 2), 0);
	assert_int_equal(t_stats(T.kvm).fast_zaps, 1);
	assert_string_equal(entry(T.vcpu, &acts), "C");
	assert_int_equal(leaves_in(T.kvm, c, 8192), 0);
	assert_int_equal(leaves_in(T.kvm, moved, 2048), 2048);

	/* Becoming read-only zaps too: most of the VM, so fast again, and
	 * the slot faults back read-only. */
	assert_int_equal(kvm_set_memslot_flags(T.kvm, 0, KVM_MEM_READONLY), 0);
	assert_int_equal(t_stats(T.kvm).fast_zaps, 2);
	assert_string_equal(entry(T.vcpu, &acts), "L C");
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, moved << 12, S2_ACC_WRITE), RET_PF_RO_WRITE);
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, moved << 12, S2_ACC_READ), RET_PF_FIXED);
	t_assert_maps(T.kvm, moved << 12, HVA_BASE, 1, S2_PROT_R);

	/* A vcpu that entered a guest without loading its root: never fast. */
	struct kvm_vcpu *legacy;

	assert_int_equal(kvm_vcpu_create(T.kvm, 1, &legacy), 0);
	assert_true(kvm_vcpu_enter_guest(legacy));
	kvm_vcpu_exit_guest(legacy);
	fault_all(T.vcpu, moved, 2048, false);
	assert_int_equal(kvm_delete_memslot(T.kvm, 0), 0);
	assert_int_equal(t_stats(T.kvm).fast_zaps, 2);
	assert_int_equal(leaves_in(T.kvm, moved, 2048), 0);
}

/*
 * Lock breaking in the memslot updates (docs/rules.md, "Yielding"): a move,
 * a delete, the start of dirty logging and the collapse when it stops each
 * visit at most the batch in one hold of mmu_lock on a large slot, and a
 * move interrupted by yields leaves what an uninterrupted one leaves.
 */
static struct kvm_mmu_stats slot_ops_run(struct tvm *t, unsigned batch, uint64_t *left)
{
	const gfn_t base = SLOT_GFN, moved = SLOT_GFN + 0x40000;
	struct kvm_mmu_stats st;

	t->h.host_level = 1;
	t->kvm->fast_zap_min = ~0ull; /* in place */
	t_slot(t, 0, base, 8192, HVA_BASE, 0);
	t_slot(t, 1, base + 0x10000, 16, HVA_BASE + 0x10000000, 0);
	fault_all(t->vcpu, base, 8192, true);
	fault_all(t->vcpu, base + 0x10000, 16, true);
	t->kvm->yield_batch = batch;
	assert_int_equal(kvm_move_memslot(t->kvm, 0, moved), 0);
	st = t_stats(t->kvm);
	*left = leaves_in(t->kvm, 0, 1ull << (kvm_gpa_bits(t->kvm) - 12));
	assert_int_equal(leaves_in(t->kvm, base, 8192), 0);
	return st;
}

static void test_memslot_updates_yield(void **state)
{
	const gfn_t moved = SLOT_GFN + 0x40000;
	struct kvm_mmu_stats a, b, s0, s;
	struct tvm u;
	uint64_t la, lb;

	(void)state;
	a = slot_ops_run(&T, 512, &la);
	t_vm_init(&u, TEST_FMT, NULL);
	b = slot_ops_run(&u, 1u << 30, &lb);
	t_vm_fini(&u);
	assert_true(a.max_hold_leaves <= 512);
	assert_true(a.yields >= 8192 / 512 - 1);
	assert_int_equal(b.yields, 0);
	assert_int_equal(la, 16);
	assert_int_equal(lb, 16);
	assert_int_equal(a.cur_table_pages, b.cur_table_pages);
	assert_int_equal(a.cur_leaves[1], b.cur_leaves[1]);

	/* Dirty logging starts on the moved slot: every leaf protected. */
	fault_all(T.vcpu, moved, 8192, true);
	s0 = t_stats(T.kvm);
	assert_int_equal(kvm_set_memslot_flags(T.kvm, 0, KVM_MEM_LOG_DIRTY_PAGES), 0);
	s = t_stats(T.kvm);
	assert_true(s.max_hold_leaves <= 512);
	assert_true(s.yields - s0.yields >= 8192 / 512 - 1);
	for (gfn_t g = moved; g < moved + 8192; g += 37) {
		struct s2_mapping m;

		assert_int_equal(kvm_mmu_lookup(T.kvm, g << 12, &m), 0);
		assert_true(m.present);
		assert_false(m.prot & (kvm_dirty_log_hw(T.kvm) ? S2_PROT_DIRTY : S2_PROT_W));
	}
	assert_int_equal(kvm_set_memslot_flags(T.kvm, 0, 0), 0);

	/* A delete. */
	s0 = t_stats(T.kvm);
	assert_int_equal(kvm_delete_memslot(T.kvm, 0), 0);
	s = t_stats(T.kvm);
	assert_true(s.max_hold_leaves <= 512);
	assert_true(s.yields - s0.yields >= 8192 / 512 - 1);
	assert_int_equal(leaves_in(T.kvm, moved, 8192), 0);
	assert_int_equal(s.cur_leaves[1], 16);
}

/* The start of logging protects a leaf table's part in one run visitor
 * call: with a batch that is not a multiple of a table, the walker cuts the
 * run where the batch ends and yields there, and the walk resumes inside the
 * table (every leaf protected, no hold above the batch). */
static void test_logging_start_yields_mid_table(void **state)
{
	struct kvm_mmu_stats s0, s;

	(void)state;
	T.h.host_level = 1;
	t_slot(&T, 0, SLOT_GFN, 8192, HVA_BASE, 0);
	fault_all(T.vcpu, SLOT_GFN, 8192, true);
	T.kvm->yield_batch = 300;
	s0 = t_stats(T.kvm);
	assert_true(s0.max_hold_leaves <= 300);
	assert_int_equal(kvm_set_memslot_flags(T.kvm, 0, KVM_MEM_LOG_DIRTY_PAGES), 0);
	s = t_stats(T.kvm);
	assert_true(s.max_hold_leaves <= 300);
	assert_true(s.yields - s0.yields >= 8192 / 300 - 1);
	for (gfn_t g = SLOT_GFN; g < SLOT_GFN + 8192; g++) {
		struct s2_mapping m;

		assert_int_equal(kvm_mmu_lookup(T.kvm, g << 12, &m), 0);
		assert_true(m.present);
		assert_false(m.prot & (kvm_dirty_log_hw(T.kvm) ? S2_PROT_DIRTY : S2_PROT_W));
	}
}

/* The start of logging splits huge leaves (the tables it writes count
 * against the batch), and the collapse when logging stops reads a table of
 * leaves per block: both yield on a large slot, and the collapse restores
 * the huge leaves. */
static void test_split_and_collapse_yield(void **state)
{
	struct kvm_mmu_stats s0, s;

	(void)state;
	if (!S2_ENABLED(CONFIG_S2_EAGER_SPLIT) || T.kvm->max_leaf_level < 2)
		skip();
	T.h.host_level = 2;
	t_slot(&T, 0, SLOT_GFN, 8192, HVA_BASE, 0);
	fault_all(T.vcpu, SLOT_GFN, 8192, true);
	assert_int_equal(t_stats(T.kvm).cur_leaves[2], 16);
	T.kvm->yield_batch = 512;
	s0 = t_stats(T.kvm);
	assert_int_equal(kvm_set_memslot_flags(T.kvm, 0, KVM_MEM_LOG_DIRTY_PAGES), 0);
	s = t_stats(T.kvm);
	assert_int_equal(s.cur_leaves[2], 0);
	assert_int_equal(s.cur_leaves[1], 8192);
	assert_true(s.max_hold_leaves <= 512);
	assert_true(s.yields - s0.yields >= 16 - 1);
	s0 = s;
	assert_int_equal(kvm_set_memslot_flags(T.kvm, 0, 0), 0);
	s = t_stats(T.kvm);
	assert_int_equal(s.cur_leaves[2], 16);
	assert_int_equal(s.cur_leaves[1], 0);
	assert_true(s.max_hold_leaves <= 512);
	assert_true(s.yields - s0.yields >= 16 - 1);
	t_assert_maps(T.kvm, (SLOT_GFN + 0x345) << 12, HVA_BASE + 0x345000, 2, S2_PROT_R);
}

/*
 * A change of the tables raises the narrowest flush request that is exact
 * (docs/rules.md, "Requests"): TLB_FLUSH_CURRENT on a vcpu that loads its
 * root through the library while one root is valid; TLB_FLUSH once a
 * second root is valid (the vcpu may run on the other one later with what
 * its TLB holds of it), and on a vcpu whose embedder handles requests by
 * hand.
 */
static void test_flush_request_narrowest(void **state)
{
	struct kvm_entry_actions a;
	struct kvm_vcpu *v1;
	uint64_t reg;

	(void)state;
	T.h.host_level = 1;
	t_slot(&T, 0, SLOT_GFN, 16, HVA_BASE, 0);
	assert_int_equal(kvm_vcpu_create(T.kvm, 1, &v1), 0); /* never loads a root */
	(void)entry(T.vcpu, &a);
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, SLOT_GFN << 12, S2_ACC_READ), RET_PF_FIXED);
	assert_int_equal(kvm_zap_gfn_range(T.kvm, SLOT_GFN, SLOT_GFN + 16), 1);
	assert_false(kvm_check_request(T.vcpu, KVM_REQ_TLB_FLUSH));
	assert_true(kvm_check_request(T.vcpu, KVM_REQ_TLB_FLUSH_CURRENT));
	assert_true(kvm_check_request(v1, KVM_REQ_TLB_FLUSH));
	assert_false(kvm_check_request(v1, KVM_REQ_TLB_FLUSH_CURRENT));
	kvm_flush_remote_tlbs(T.kvm);
	assert_string_equal(entry(T.vcpu, &a), "C");
	assert_true(kvm_check_request(v1, KVM_REQ_TLB_FLUSH));

	/* A second valid root (address space 1): TLB_FLUSH, and the entry
	 * list flushes every root. */
	assert_int_equal(kvm_mmu_load(T.vcpu, (struct kvm_root_role){ KVM_ROOT_DIRECT, 1 }, &reg),
			 0);
	assert_int_equal(t_stats(T.kvm).cur_roots_valid, 2);
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, SLOT_GFN << 12, S2_ACC_READ), RET_PF_FIXED);
	assert_int_equal(kvm_zap_gfn_range(T.kvm, SLOT_GFN, SLOT_GFN + 16), 1);
	assert_true(kvm_check_request(T.vcpu, KVM_REQ_TLB_FLUSH));
	assert_false(kvm_check_request(T.vcpu, KVM_REQ_TLB_FLUSH_CURRENT));
	kvm_flush_remote_tlbs_range(T.kvm, SLOT_GFN, 1);
	struct kvm_entry_actions b;

	assert_string_equal(entry(T.vcpu, &b), T.kvm->tlb_complete ? "" : "A");
	assert_int_equal(b.nr_roots, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_first_entry_loads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_entry_every_combination, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_spaces_agree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_fixes_own_root, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fast_zap_frees_old_roots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_legacy_vcpu_zaps_in_place, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_only_vcpu_follows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_yield_bound_and_same_tables, setup, teardown),
		cmocka_unit_test_setup_teardown(test_teardown_yields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memslot_removal_chooses_zap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memslot_updates_yield, setup, teardown),
		cmocka_unit_test_setup_teardown(test_split_and_collapse_yield, setup, teardown),
		cmocka_unit_test_setup_teardown(test_logging_start_yields_mid_table, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_flush_request_narrowest, setup, teardown),
	};

	return cmocka_run_group_tests_name(s2_fmt_name(TEST_FMT), tests, NULL, NULL);
}
