// SPDX-License-Identifier: MIT
/*
 * TDX private memory against the model of the TDX module (tests/tdx/model.h),
 * for EPT 4 levels (shared bit 47) and 5 levels (shared bit 51). After every
 * library call check() asserts: no SEAMCALL was out of order, the model's
 * secure EPT and the mirror root map the same private pages at the same
 * levels, the S-EPT page counts agree, and no direct root maps a private gfn;
 * teardown leaves the model empty with every page back. Each test names the
 * mutation of core/tdx.c it catches ("Catches:"); each was applied by hand
 * and made the test fail.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kvm_internal.h"
#include "s2mmu/notifier.h"
#include "s2mmu/tdx.h"
#include "tests/generic/dirty_sim.h"
#include "tests/lib/testlib.h"
#include "tests/tdx/model.h"

#define HVA_BASE 0x7f0000000000ull
#define G0 0x40000ull	     /* slot base gfn, 1 GiB aligned */
#define NPAGES 2048ull	     /* 8 MiB: four 2 MiB blocks */
#define GMEM_PFN 0x900000ull /* private backing, 2 MiB aligned */
#define P KVM_MEMORY_ATTRIBUTE_PRIVATE

static struct tvm T;
static struct tdx_model *M;
static struct s2_tdx_ops ops;
static unsigned gpa_bits;
static int gmem_level; /* largest level the private backing allows */
static bool td_no_ad;  /* the next td() without EPT A/D bits (aging tracks) */
/* The private_pfn hooks' books, in 4 KiB pages: gets (calls), pages put
 * back, and what the module took (AUG/ADD calls and their pages). A get the
 * fault did not install is put back as one page; every installed page is
 * put back once, whatever size its leaf had when it was removed. */
static uint64_t pfn_gets, pfn_puts, installs, installed_pages;

static int gmem_pfn(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, kvm_pfn_t *pfn,
		    int *max_level)
{
	(void)ctx;
	*pfn = GMEM_PFN + (gfn - slot->base_gfn);
	*max_level = gmem_level;
	pfn_gets++;
	return 0;
}

#include "tests/tdx/model_hooks.h"

static void td(unsigned bits, int backing, unsigned busy_one_in)
{
	struct kvm_vm_params p = t_default_params(S2_FMT_X86_EPT);
	struct kvm_tdx_params tp;

	gpa_bits = bits;
	gmem_level = backing;
	pfn_gets = pfn_puts = installs = installed_pages = 0;
	M = calloc(1, sizeof(*M));
	assert_non_null(M);
	p.gpa_bits = bits;
	if (td_no_ad)
		p.fmt_flags &= ~(unsigned)S2_FMTF_AD;
	td_no_ad = false;
	t_vm_init(&T, S2_FMT_X86_EPT, &p);
	t_kick_exits(&T);
	tdxm_init(M, kvm_mmu_levels(T.kvm), busy_one_in, 0x1234);
	ops = tdxm_ops_template;
	ops.track = w_track;
	ops.page_remove = w_remove;
	ops.sept_remove = w_sept_remove;
	ops.page_aug = w_aug;
	ops.page_add = w_add;
	ops.page_demote = w_demote;
	ops.page_promote = w_promote;
	ops.range_unblock = w_unblock;
	ops.private_pfn = gmem_pfn;
	ops.private_pfn_put = gmem_put;
	tp = (struct kvm_tdx_params){
		.ops = &ops, .ctx = M, .shared_bit = bits - 1, .busy_retries = 64
	};
	assert_int_equal(kvm_tdx_init(T.kvm, &tp), 0);
	t_slot(&T, 0, G0, NPAGES, HVA_BASE, 0);
}

/*
 * Every non-present entry of every table under @kvm's valid direct roots is
 * exactly @np (bit 63 in a TD, 0 elsewhere): present means R, W or X (no
 * MBEC here). Returns the non-present entries seen.
 */
static uint64_t nonpresent_table(struct kvm *kvm, const s2_pte_t *t, int level, s2_pte_t np)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < 512; i++) {
		s2_pte_t e = t[i];

		if (!(e & 7)) {
			if (e != np)
				fail_msg("level %d entry %u: non-present %#llx, not %#llx", level,
					 i, (unsigned long long)e, (unsigned long long)np);
			n++;
		} else if (level > 1 && !(e & (1ull << 7))) {
			n += nonpresent_table(kvm, s2_phys_to_virt(kvm, e & 0x000ffffffffff000ull),
					      level - 1, np);
		}
	}
	return n;
}

static uint64_t check_nonpresent(struct kvm *kvm, s2_pte_t np)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < kvm->nr_roots; i++)
		if (kvm->roots[i].state == S2_ROOT_VALID)
			n += nonpresent_table(kvm, kvm->roots[i].pt, kvm_mmu_levels(kvm), np);
	assert_true(n > 0);
	return n;
}

static void check(void)
{
	struct kvm_tdx_stats s;
	unsigned lib_leaves;

	if (M->illegal)
		fail_msg("illegal SEAMCALL: %s (%u)", M->first_illegal, M->illegal);
	assert_false(kvm_is_bugged(T.kvm));
	assert_int_equal(kvm_tdx_get_stats(T.kvm, &s), 0);
	lib_leaves = (unsigned)(s.cur_private_leaves[1] + s.cur_private_leaves[2] +
				s.cur_private_leaves[3]);
	assert_int_equal(tdxm_nr_leaves(M), lib_leaves);
	assert_int_equal(tdxm_nr_sept(M), s.cur_sept_pages);
	check_nonpresent(T.kvm, 1ull << 63);
	for (gfn_t g = G0; g < G0 + NPAGES; g++) {
		int ml = 0, ll = 0;
		uint64_t mh = 0;
		hpa_t lh = 0;
		enum tdxm_state st = tdxm_leaf(M, g << 12, &ml, &mh);
		int found = kvm_tdx_lookup_private(T.kvm, g, &lh, &ll);
		struct s2_mapping m;

		if (found != (st != TDXM_FREE))
			fail_msg("gfn %#llx: mirror %d, secure EPT state %d", (unsigned long long)g,
				 found, st);
		if (found) {
			assert_int_equal(ll, ml);
			assert_int_equal(lh, mh);
		}
		if (kvm_get_memory_attributes(T.kvm, g) & P) {
			assert_int_equal(kvm_mmu_lookup(T.kvm, (g | shared_gfn()) << 12, &m), 0);
			if (m.present)
				fail_msg("private gfn %#llx mapped in the direct root",
					 (unsigned long long)g);
		}
	}
}

/* A fault until it is not a retry (BUSY injection makes faults retry). */
static int fault(gpa_t gpa, unsigned acc)
{
	int r;

	for (int i = 0; i < 1000; i++) {
		r = kvm_tdp_page_fault(T.vcpu, gpa, acc);
		if (r != RET_PF_RETRY)
			break;
	}
	return r;
}

static void fini_checked(void)
{
	/* S-EPT pages: added, or made by a demotion; a promotion's comes back
	 * through WBINVD instead of RECLAIM. */
	uint64_t septs = M->n_sept_add + M->n_demote - M->n_promote;

	check();
	t_vm_fini(&T);
	T.kvm = NULL;
	if (M->illegal)
		fail_msg("illegal SEAMCALL at teardown: %s", M->first_illegal);
	assert_int_equal(tdxm_nr_leaves(M), 0);
	assert_int_equal(tdxm_nr_sept(M), 0);
	assert_int_equal(tdxm_pages_out(M), 0);
	assert_true(M->key_released);
	assert_int_equal(M->n_reclaim, septs);
	assert_int_equal(pfn_puts, installed_pages + (pfn_gets - installs));
	free(M);
	M = NULL;
}

static int teardown(void **state)
{
	(void)state;
	if (T.kvm)
		t_vm_fini(&T);
	T.kvm = NULL;
	free(M);
	M = NULL;
	return 0;
}

static unsigned bits_of(void **state)
{
	return (unsigned)(uintptr_t)*state;
}

/* A private fault at 4 KiB: one SEPT.ADD per missing level, one PAGE.AUG,
 * a pending page the guest accepts; a second fault on the gfn is spurious
 * and calls nothing. Catches: the mirror entry not published after
 * PAGE.AUG (the second fault AUGs again: EPT_ENTRY_NOT_FREE). */
static void test_private_fault_4k(void **state)
{
	gfn_t g = G0 + 5;
	int lvl;
	uint64_t h;

	td(bits_of(state), 1, 0);
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0, G0 + NPAGES, P), 0);
	check();
	assert_int_equal(fault(g << 12, S2_ACC_WRITE), RET_PF_FIXED);
	check();
	assert_int_equal(M->n_aug, 1);
	assert_int_equal(M->n_sept_add, kvm_mmu_levels(T.kvm) - 1);
	assert_int_equal(tdxm_leaf(M, g << 12, &lvl, &h), TDXM_PENDING);
	assert_int_equal(tdxm_accept(M, g << 12, 1), 0);
	assert_int_equal(fault(g << 12, S2_ACC_READ), RET_PF_SPURIOUS);
	assert_int_equal(M->n_aug, 1);
	assert_int_equal(h, (GMEM_PFN + 5) << 12);
	check();
	fini_checked();
}

/* Private 2 MiB leaves: PAGE.AUG at level 2 where the backing, the slot
 * and uniformly private attributes allow it; a block with one shared gfn
 * maps 4 KiB. Catches: tdx_pick_level() ignoring the attributes (AUG at
 * level 2 over a shared gfn). */
static void test_private_fault_2m(void **state)
{
	int lvl;
	uint64_t h;

	td(bits_of(state), 2, 0);
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0, G0 + NPAGES, P), 0);
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0 + 0x3ff, G0 + 0x400, 0), 0);
	assert_int_equal(fault((G0 + 0x10) << 12, S2_ACC_READ), RET_PF_FIXED);
	assert_int_equal(tdxm_leaf(M, (G0 + 0x10) << 12, &lvl, &h), TDXM_PENDING);
	assert_int_equal(lvl, 2);
	assert_int_equal(fault((G0 + 0x210) << 12, S2_ACC_READ), RET_PF_FIXED);
	assert_int_equal(tdxm_leaf(M, (G0 + 0x210) << 12, &lvl, &h), TDXM_PENDING);
	assert_int_equal(lvl, 1);
	check();
	fini_checked();
}

/* Shared and private faults against the attributes: a disagreeing one
 * installs nothing and says RET_PF_MEMORY_FAULT; a shared one maps in the
 * direct root at the gpa with the shared bit. Catches: the attribute check
 * of s2_tdx_fault() removed (the shared fault maps a private gfn). */
static void test_mismatch_and_shared(void **state)
{
	gfn_t s;

	td(bits_of(state), 1, 0);
	s = shared_gfn();
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0, G0 + 16, P), 0);
	assert_int_equal(fault(((G0 + 1) | s) << 12, S2_ACC_READ), RET_PF_MEMORY_FAULT);
	assert_int_equal(fault((G0 + 100) << 12, S2_ACC_READ), RET_PF_MEMORY_FAULT);
	check();
	assert_int_equal(M->n_aug, 0);
	assert_int_equal(fault(((G0 + 100) | s) << 12, S2_ACC_WRITE), RET_PF_FIXED);
	t_assert_maps(T.kvm, ((G0 + 100) | s) << 12, HVA_BASE + (100 << 12), 1, S2_PROT_W);
	t_assert_unmapped(T.kvm, (G0 + 100) << 12);
	check();
	fini_checked();
}

/* Conversions: private -> shared removes the private pages with BLOCK for
 * every leaf, then one TRACK and one kick round, then REMOVE and WBINVD of
 * each; shared -> private zaps the shared mapping. A vcpu in the guest
 * since before the block must have been kicked out for REMOVE to be legal.
 * Catches: the kick in tdx_track() removed (REMOVE while a vcpu still runs
 * in the blocking epoch: TLB_TRACKING_NOT_DONE); a TRACK per page (the
 * count below). */
static void test_conversion_order(void **state)
{
	gfn_t s;
	uint64_t tracks;

	td(bits_of(state), 1, 0);
	s = shared_gfn();
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0, G0 + 64, P), 0);
	for (gfn_t g = G0; g < G0 + 64; g += 4)
		assert_int_equal(fault(g << 12, S2_ACC_READ), RET_PF_FIXED);
	assert_true(kvm_vcpu_enter_guest(T.vcpu));
	tdxm_vcpu_enter(M, 0);
	tracks = M->n_track;
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0, G0 + 64, 0), 0);
	check();
	assert_int_equal(M->n_track, tracks + 1);
	assert_int_equal(M->n_remove, 16);
	assert_int_equal(M->n_wbinvd, 16);
	/* The order: every BLOCK, the TRACK, then REMOVE/WBINVD pairs. */
	for (unsigned i = 0; i < 16; i++)
		assert_int_equal(M->log[(M->nlog - 49 + i) % 64] >> 56, TDXM_OP_BLOCK);
	assert_int_equal(M->log[(M->nlog - 33) % 64] >> 56, TDXM_OP_TRACK);
	assert_int_equal(M->log[(M->nlog - 32) % 64] >> 56, TDXM_OP_REMOVE);
	assert_int_equal(M->log[(M->nlog - 31) % 64] >> 56, TDXM_OP_WBINVD);
	kvm_vcpu_exit_guest(T.vcpu);
	/* Shared -> private: the shared leaf goes. */
	assert_int_equal(fault(((G0 + 8) | s) << 12, S2_ACC_READ), RET_PF_FIXED);
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0 + 8, G0 + 9, P), 0);
	t_assert_unmapped(T.kvm, ((G0 + 8) | s) << 12);
	check();
	fini_checked();
}

/* A conversion of part of a private 2 MiB leaf demotes it first: BLOCK,
 * TRACK, kick, PAGE.DEMOTE (the model refuses any other order), then the
 * converted 4 KiB page goes the usual way; the other 511 stay mapped in
 * their state (the guest's accept survives). Converting it back and
 * collapsing promotes once all 512 are accepted, not before. Catches: the
 * TRACK before DEMOTE removed (TLB_TRACKING_NOT_DONE); the demoted
 * mirror table not published (the map check); the spare pair not taken
 * (the leaf goes whole: the spurious fault below becomes FIXED). */
static void test_partial_huge_conversion(void **state)
{
	struct kvm_tdx_stats st;
	int lvl;
	uint64_t h;

	td(bits_of(state), 2, 0);
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0, G0 + NPAGES, P), 0);
	assert_int_equal(fault((G0 + 1) << 12, S2_ACC_READ), RET_PF_FIXED);
	assert_int_equal(tdxm_accept(M, G0 << 12, 2), 0);
	assert_true(kvm_vcpu_enter_guest(T.vcpu));
	tdxm_vcpu_enter(M, 0);
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0 + 7, G0 + 8, 0), 0);
	kvm_vcpu_exit_guest(T.vcpu);
	check();
	assert_int_equal(M->n_demote, 1);
	assert_int_equal(kvm_tdx_get_stats(T.kvm, &st), 0);
	assert_int_equal(st.demoted, 1);
	assert_int_equal(st.cur_private_leaves[1], 511);
	assert_int_equal(fault((G0 + 1) << 12, S2_ACC_READ), RET_PF_SPURIOUS);
	assert_int_equal(tdxm_leaf(M, (G0 + 9) << 12, &lvl, &h), TDXM_MAPPED);
	assert_int_equal(lvl, 1);
	/* Back to private: the page faults in pending; no promotion until
	 * the guest accepts it (the module refuses, the table is unblocked). */
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0 + 7, G0 + 8, P), 0);
	assert_int_equal(fault((G0 + 7) << 12, S2_ACC_READ), RET_PF_FIXED);
	assert_int_equal(kvm_tdx_collapse(T.kvm, G0, G0 + NPAGES), 0);
	check();
	assert_int_equal(M->n_unblock, 1);
	assert_int_equal(tdxm_accept(M, (G0 + 7) << 12, 1), 0);
	assert_int_equal(kvm_tdx_collapse(T.kvm, G0, G0 + NPAGES), 1);
	check();
	assert_int_equal(tdxm_leaf(M, (G0 + 9) << 12, &lvl, &h), TDXM_MAPPED);
	assert_int_equal(lvl, 2);
	assert_int_equal(kvm_tdx_get_stats(T.kvm, &st), 0);
	assert_int_equal(st.promoted, 1);
	assert_int_equal(st.cur_private_leaves[2], 1);
	fini_checked();
}

/* Initial measured memory: PAGE.ADD before finalization maps MAPPED 4 KiB
 * pages (no accept needed), refused after it (-EINVAL, nothing called) and
 * for a shared gfn; private faults AUG after finalization. Catches: the
 * finalized check removed (the model counts PAGE.ADD after finalize). */
static void test_page_add(void **state)
{
	int lvl;
	uint64_t h, adds, augs;

	td(bits_of(state), 2, 0);
	M->finalized = false;
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0, G0 + 64, P), 0);
	for (gfn_t g = G0; g < G0 + 16; g++)
		assert_int_equal(kvm_tdx_page_add(T.kvm, g, 0x5000000 + (g - G0) * 4096), 0);
	assert_int_equal(kvm_tdx_page_add(T.kvm, G0 + 3, 0x5000000), -EEXIST);
	assert_int_equal(kvm_tdx_page_add(T.kvm, G0 + 100, 0x5000000), -EINVAL);
	assert_int_equal(kvm_tdx_page_add(T.kvm, G0 + 20, 0x5000001), -EINVAL);
	check();
	assert_int_equal(tdxm_leaf(M, (G0 + 5) << 12, &lvl, &h), TDXM_MAPPED);
	assert_int_equal(lvl, 1);
	M->finalized = true;
	assert_int_equal(kvm_tdx_finalized(T.kvm), 0);
	adds = M->n_add;
	assert_int_equal(kvm_tdx_page_add(T.kvm, G0 + 20, 0x5000000), -EINVAL);
	assert_int_equal(M->n_add, adds);
	/* The module's own answer (its OP_STATE check), asked by hand. */
	augs = M->n_aug;
	assert_int_equal(tdxm_page_add(M, (G0 + 30) << 12, 0x6000000, 0x5000000),
			 S2_TDX_OP_STATE_INCORRECT);
	assert_int_equal(M->illegal, 1);
	M->illegal = 0;
	M->finalized = false;
	assert_int_equal(tdxm_page_aug(M, (G0 + 30) << 12, 1, 0x6000000),
			 S2_TDX_OP_STATE_INCORRECT);
	assert_int_equal(M->illegal, 1);
	M->illegal = 0;
	M->finalized = true;
	M->n_add = adds;
	M->n_aug = augs;
	assert_int_equal(fault((G0 + 20) << 12, S2_ACC_READ), RET_PF_FIXED);
	check();
	fini_checked();
}

/* The fast zap and host-MM notifiers touch only the direct roots: private
 * mappings survive both. Memslot deletion removes them. Catches: the
 * private zap in the memslot update removed (the model keeps the leaves). */
static void test_fast_zap_notifier_delete(void **state)
{
	struct kvm_tdx_stats s0, s1;

	td(bits_of(state), 2, 0);
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0, G0 + 1024, P), 0);
	assert_int_equal(fault((G0 + 1) << 12, S2_ACC_READ), RET_PF_FIXED);
	assert_int_equal(fault((G0 + 1500) << 12 | (shared_gfn() << 12), S2_ACC_READ),
			 RET_PF_FIXED);

	assert_int_equal(kvm_tdx_get_stats(T.kvm, &s0), 0);
	{
		uint64_t reg;

		assert_int_equal(kvm_mmu_load(T.vcpu, (struct kvm_root_role){ 0, 0 }, &reg), 0);
	}
	assert_int_equal(kvm_mmu_zap_all_fast(T.kvm), 0);
	assert_int_equal(kvm_mmu_notifier_invalidate_range_start(T.kvm, HVA_BASE,
								 HVA_BASE + (NPAGES << 12), true),
			 0);
	assert_int_equal(kvm_mmu_notifier_invalidate_range_end(T.kvm, HVA_BASE,
							       HVA_BASE + (NPAGES << 12), true),
			 0);
	assert_int_equal(kvm_tdx_get_stats(T.kvm, &s1), 0);
	assert_int_equal(s1.cur_private_leaves[2], s0.cur_private_leaves[2]);
	assert_int_equal(s1.cur_private_leaves[2], 1);
	t_assert_unmapped(T.kvm, (G0 + 1500) << 12 | (shared_gfn() << 12));
	check();
	assert_int_equal(kvm_delete_memslot(T.kvm, 0), 0);
	assert_int_equal(tdxm_nr_leaves(M), 0);
	check();
	fini_checked();
}

/* Suppress-#VE: in a TD's direct root every non-present entry carries bit
 * 63 (check() looks at all of them) through shared faults at 4 KiB and
 * 2 MiB that link new tables, notifier zaps of leaves and whole tables, a
 * conversion's zap and a replaced root; an ordinary EPT VM keeps 0 after
 * the same. Catches: the fill of a new table in map() removed (its other
 * 511 entries read 0); zap_locked() writing 0; unlink_table() writing 0
 * (each made check() fail here). */
static void test_sve_nonpresent(void **state)
{
	gfn_t s;
	struct tvm plain;
	struct kvm_vm_params p = t_default_params(S2_FMT_X86_EPT);

	td(bits_of(state), 1, 0);
	s = shared_gfn();
	check();
	/* One private gfn makes its 2 MiB block map shared 4 KiB leaves. */
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0 + 0x7ff, G0 + 0x800, P), 0);
	for (gfn_t g = G0; g < G0 + NPAGES - 1; g += 0x81) {
		int r = fault((g | s) << 12, S2_ACC_WRITE);

		assert_true(r == RET_PF_FIXED || r == RET_PF_SPURIOUS);
	}
	check();
	assert_int_equal(kvm_mmu_notifier_invalidate_range_start(T.kvm, HVA_BASE + (0x81 << 12),
								 HVA_BASE + (0x82 << 12), true),
			 0);
	assert_int_equal(kvm_mmu_notifier_invalidate_range_end(T.kvm, HVA_BASE + (0x81 << 12),
							       HVA_BASE + (0x82 << 12), true),
			 0);
	check();
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0, G0 + 0x400, P), 0);
	check();
	assert_int_equal(kvm_mmu_notifier_invalidate_range_start(T.kvm, HVA_BASE,
								 HVA_BASE + (NPAGES << 12), true),
			 0);
	assert_int_equal(kvm_mmu_notifier_invalidate_range_end(T.kvm, HVA_BASE,
							       HVA_BASE + (NPAGES << 12), true),
			 0);
	check();
	assert_int_equal(kvm_mmu_zap_all_fast(T.kvm), 0);
	assert_int_equal(fault(((G0 + 0x500) | s) << 12, S2_ACC_READ), RET_PF_FIXED);
	check();
	fini_checked();

	p.gpa_bits = bits_of(state);
	t_vm_init(&plain, S2_FMT_X86_EPT, &p);
	t_slot(&plain, 0, G0, NPAGES, HVA_BASE, 0);
	for (gfn_t g = G0; g < G0 + NPAGES; g += 0x81) {
		int r = kvm_tdp_page_fault(plain.vcpu, g << 12, S2_ACC_WRITE);

		assert_true(r == RET_PF_FIXED || r == RET_PF_SPURIOUS);
	}
	assert_int_equal(kvm_mmu_notifier_invalidate_range_start(plain.kvm, HVA_BASE,
								 HVA_BASE + (0x100 << 12), true),
			 0);
	assert_int_equal(kvm_mmu_notifier_invalidate_range_end(plain.kvm, HVA_BASE,
							       HVA_BASE + (0x100 << 12), true),
			 0);
	check_nonpresent(plain.kvm, 0);
	t_vm_fini(&plain);
}

/* OPERAND_BUSY injected in one SEAMCALL of three everywhere: faults retry,
 * removals retry with kicks, teardown completes, nothing is illegal.
 * Catches: a BUSY answer to PAGE.AUG not restoring the frozen entry (the
 * next fault finds it frozen for ever: no progress). */
static void test_busy_everywhere(void **state)
{
	td(bits_of(state), 2, 3);
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0, G0 + NPAGES, P), 0);
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0 + 0x600, G0 + 0x601, 0), 0);
	for (gfn_t g = G0; g < G0 + NPAGES; g += 0x41) {
		int r = fault(g << 12, S2_ACC_READ);

		assert_true(r == RET_PF_FIXED || r == RET_PF_SPURIOUS || r == RET_PF_MEMORY_FAULT);
		check();
	}
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0 + 0x100, G0 + 0x300, 0), 0);
	check();
	assert_true(M->n_busy > 0);
	fini_checked();
}

/* Nothing of @gfn remains in the direct root, per the reference walker,
 * at the hardware gpa (shared bit set) or without it. */
static void assert_shared_gone(gfn_t g)
{
	struct ref_xlate x;

	if (!ref_walk_kvm(T.kvm, (g | shared_gfn()) << 12, &x))
		fail_msg("shared gfn %#llx still mapped (level %d)", (unsigned long long)g,
			 x.level);
	if (!ref_walk_kvm(T.kvm, g << 12, &x))
		fail_msg("gfn %#llx mapped without the shared bit", (unsigned long long)g);
}

static void assert_shared_mapped(gfn_t g)
{
	struct ref_xlate x;

	if (ref_walk_kvm(T.kvm, (g | shared_gfn()) << 12, &x))
		fail_msg("shared gfn %#llx not mapped: %s", (unsigned long long)g,
			 ref_fault_name(x.fault));
	assert_int_equal(x.hpa, HVA_BASE + ((g - G0) << 12));
}

static void notifier_unmap(gfn_t s, gfn_t e)
{
	hva_t a = HVA_BASE + ((s - G0) << 12), b = HVA_BASE + ((e - G0) << 12);

	assert_true(kvm_mmu_notifier_invalidate_range_start(T.kvm, a, b, true) >= 0);
	assert_true(kvm_mmu_notifier_invalidate_range_end(T.kvm, a, b, true) >= 0);
}

/* The shared half mapped by faults (4 KiB next to a private gfn, 2 MiB
 * elsewhere), aged and faulted again (the fault's own single-root walk),
 * then unmapped through the host-MM notifier, kvm_zap_gfn_range() and a
 * memslot deletion: per the reference walker nothing remains at the
 * shared-bit gpa, and a re-fault after aging is fixed by the aging walk of
 * the vcpu's root without asking the host again. Catches: s2_range()
 * dropping the shared-bit offset for a walk of one named root (the
 * re-fault after aging asks the host: pfn_lookups moves). */
static void test_shared_half_zapped(void **state)
{
	struct ref_xlate x;
	gfn_t s;
	uint64_t lookups;

	td_no_ad = true; /* aging makes leaves access-tracked */
	td(bits_of(state), 1, 0);
	s = shared_gfn();
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0 + 0x3ff, G0 + 0x400, P), 0);
	for (gfn_t g = G0; g < G0 + NPAGES; g += 0x33) {
		int r = g == G0 + 0x3ff ? RET_PF_FIXED : fault((g | s) << 12, S2_ACC_WRITE);

		assert_true(r == RET_PF_FIXED || r == RET_PF_SPURIOUS);
	}
	check();
	for (gfn_t g = G0; g < G0 + NPAGES; g += 0x33)
		if (g != G0 + 0x3ff)
			assert_shared_mapped(g);
	assert_shared_gone(G0 + 0x3ff);
	/* Aging: the re-fault takes the aging walk of its own root. */
	assert_true(kvm_mmu_notifier_clear_young(T.kvm, HVA_BASE, HVA_BASE + (NPAGES << 12)) > 0);
	lookups = T.h.pfn_lookups;
	assert_int_equal(fault(((G0 + 0x33) | s) << 12, S2_ACC_READ), RET_PF_FIXED);
	assert_int_equal(T.h.pfn_lookups, lookups);
	assert_shared_mapped(G0 + 0x33);
	for (gfn_t g = G0; g < G0 + NPAGES; g += 0x33)
		if (g != G0 + 0x3ff && ref_walk_kvm(T.kvm, (g | s) << 12, &x))
			assert_int_equal(fault((g | s) << 12, S2_ACC_READ), RET_PF_FIXED);
	assert_int_equal(T.h.pfn_lookups, lookups);
	/* The notifier over the first 2 MiB block and part of the second. */
	notifier_unmap(G0, G0 + 0x300);
	for (gfn_t g = G0; g < G0 + 0x300; g++)
		assert_shared_gone(g);
	assert_shared_mapped(G0 + 0x330);
	check();
	/* Zap by memslot gfns. */
	assert_true(kvm_zap_gfn_range(T.kvm, G0 + 0x300, G0 + 0x600) >= 0);
	for (gfn_t g = G0 + 0x300; g < G0 + 0x600; g++)
		assert_shared_gone(g);
	assert_shared_mapped(G0 + 0x660);
	check();
	assert_int_equal(kvm_delete_memslot(T.kvm, 0), 0);
	for (gfn_t g = G0; g < G0 + NPAGES; g++)
		assert_shared_gone(g);
	check();
	fini_checked();
}

/* One guest write to shared @g as the hardware does it (dirty_sim.h, at
 * the gpa with the shared bit), faulting until it goes through; with PML
 * the newly dirtied gpa goes to the log as the hardware would write it. */
static void shared_write(gfn_t g, bool pml)
{
	gpa_t gpa = (g | shared_gfn()) << 12;
	bool nd;

	for (int i = 0; !sim_write(T.kvm, gpa, &nd); i++) {
		int r = fault(gpa, S2_ACC_WRITE);

		assert_true(i < 4 && (r == RET_PF_FIXED || r == RET_PF_SPURIOUS));
	}
	if (pml && nd)
		assert_int_equal(kvm_flush_pml_buffer(T.vcpu, &gpa, 1), 1);
}

/*
 * Dirty logging on a TD's shared half, with write protection, hardware
 * dirty bits scanned, and PML: a logging slot of a TD logs exactly the
 * shared gfns the guest wrote in each round (bitmap in memslot gfns), never
 * a private one (private faults and conversions meanwhile leave it alone),
 * a shared leaf zapped while dirty keeps its write in the log, and when
 * logging stops the shared half collapses back to 2 MiB. Catches: the scan
 * taking bitmap gfns from the walked address (shared bit included: no bit
 * of the slot set); the re-protection walking memslot gfns (the second
 * round's writes do not fault, and are lost with write protection); the PML
 * gpa not stripped (nothing logged); the collapse comparing walked gfns with
 * the slot (no 2 MiB leaf comes back).
 */
static void td_dirty_log(unsigned bits, unsigned caps)
{
	const bool pml = caps & KVM_DIRTY_LOG_PML;
	uint64_t bm[NPAGES / 64], want[NPAGES / 64];
	struct ref_xlate x;
	gfn_t s;

	td(bits, 2, 0);
	s = shared_gfn();
	assert_int_equal(kvm_dirty_log_set_caps(T.kvm, caps), 0);
	/* [0x400, 0x800) private; the rest shared, mapped 2 MiB first. */
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0 + 0x400, G0 + 0x800, P), 0);
	for (gfn_t g = G0; g < G0 + NPAGES; g += 0x200) {
		gfn_t h = g >= G0 + 0x400 ? g : g | s;

		assert_int_equal(fault(h << 12, S2_ACC_WRITE), RET_PF_FIXED);
	}
	assert_int_equal(kvm_set_memslot_flags(T.kvm, 0, KVM_MEM_LOG_DIRTY_PAGES), 0);
	check();
	assert_true(kvm_get_dirty_log(T.kvm, 0, bm) >= 0); /* the round starts clean */
	for (unsigned round = 0; round < 3; round++) {
		memset(want, 0, sizeof(want));
		for (gfn_t i = round * 7; i < NPAGES; i += 13 + round) {
			if (i >= 0x400 && i < 0x800) {
				/* Private: the mirror root, never logged. */
				int r = fault((G0 + i) << 12, S2_ACC_WRITE);

				assert_true(r == RET_PF_FIXED || r == RET_PF_SPURIOUS);
				continue;
			}
			shared_write(G0 + i, pml);
			want[i / 64] |= 1ull << (i % 64);
		}
		if (round == 1) {
			/* A dirty shared leaf zapped before the harvest (its
			 * write must survive), and a conversion of private
			 * pages. */
			assert_true(kvm_zap_gfn_range(T.kvm, G0 + 0x100, G0 + 0x180) >= 0);
			assert_int_equal(
				kvm_vm_set_mem_attributes(T.kvm, G0 + 0x500, G0 + 0x510, 0), 0);
			assert_int_equal(
				kvm_vm_set_mem_attributes(T.kvm, G0 + 0x500, G0 + 0x510, P), 0);
		}
		check();
		memset(bm, 0, sizeof(bm));
		assert_true(kvm_get_dirty_log(T.kvm, 0, bm) >= 0);
		for (unsigned w = 0; w < NPAGES / 64; w++)
			if (bm[w] != want[w])
				fail_msg("round %u caps %#x word %u: logged %#llx, written %#llx",
					 round, caps, w, (unsigned long long)bm[w],
					 (unsigned long long)want[w]);
	}
	/* Logging stops: every gfn of shared block 1 written, so its 4 KiB
	 * leaves are all there and collapse back to one 2 MiB leaf. */
	for (gfn_t g = G0 + 0x200; g < G0 + 0x400; g++)
		shared_write(g, pml);
	assert_int_equal(kvm_set_memslot_flags(T.kvm, 0, 0), 0);
	assert_int_equal(ref_walk_kvm(T.kvm, ((G0 + 0x250) | s) << 12, &x), 0);
	assert_int_equal(x.level, 2);
	check();
	fini_checked();
}

static void test_td_dirty_log_wrprotect(void **state)
{
	td_dirty_log(bits_of(state), KVM_DIRTY_LOG_WRPROTECT);
}

static void test_td_dirty_log_hw(void **state)
{
	td_dirty_log(bits_of(state), 0);
}

static void test_td_dirty_log_pml(void **state)
{
	td_dirty_log(bits_of(state), KVM_DIRTY_LOG_PML);
}

/* Mirror and model agree on gfn @g (private half). */
static void check_private_gfn(gfn_t g)
{
	int ml = 0, ll = 0;
	uint64_t mh = 0;
	hpa_t lh = 0;
	enum tdxm_state st = tdxm_leaf(M, g << 12, &ml, &mh);
	int found = kvm_tdx_lookup_private(T.kvm, g, &lh, &ll);

	if (found != (st != TDXM_FREE) || (found && (ll != ml || lh != mh)))
		fail_msg("gfn %#llx: mirror %d level %d %#llx, secure EPT state %d level %d %#llx",
			 (unsigned long long)g, found, ll, (unsigned long long)lh, st, ml,
			 (unsigned long long)mh);
}

/*
 * 1 GiB private leaves: the module takes PAGE.AUG up to 2 MiB only, and
 * PAGE.PROMOTE / PAGE.DEMOTE at 2 MiB and 1 GiB (intel/tdx-module,
 * tdh_mem_page_{aug,promote,demote}.c), so a 1 GiB leaf exists only after
 * the collapse promotes 512 accepted 2 MiB leaves; a conversion of one
 * 4 KiB page inside it demotes it to 2 MiB leaves, then the cut 2 MiB leaf
 * to 4 KiB, and removes the page (two DEMOTE rounds, each BLOCK, TRACK,
 * kick); converted back, faulted and accepted, the collapse promotes it to
 * 2 MiB and then to 1 GiB again; teardown removes the 1 GiB leaf whole.
 * Catches: tdx_demote_ends() demoting at 2 MiB only (the 1 GiB leaf is
 * taken whole: the other pages' mirror and model leaves go, the spurious
 * fault below becomes FIXED); the collapse stopping at 2 MiB (no level-3
 * leaf after it).
 */
static void test_1g_promote_demote(void **state)
{
	const gfn_t g1 = 0x80000, n1 = 1ull << 18, cut = g1 + 0x12345;
	struct kvm_tdx_stats st;
	int lvl;
	uint64_t h;

	td(bits_of(state), 2, 0);
	t_slot(&T, 1, g1, n1, HVA_BASE + (1ull << 30), 0);
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, g1, g1 + n1, P), 0);
	for (gfn_t g = g1; g < g1 + n1; g += 512) {
		assert_int_equal(fault(g << 12, S2_ACC_READ), RET_PF_FIXED);
		assert_int_equal(tdxm_accept(M, g << 12, 2), 0);
	}
	check();
	assert_int_equal(kvm_tdx_collapse(T.kvm, g1, g1 + n1), 1);
	check();
	assert_int_equal(kvm_tdx_get_stats(T.kvm, &st), 0);
	assert_int_equal(st.cur_private_leaves[3], 1);
	assert_int_equal(st.cur_private_leaves[2], 0);
	assert_int_equal(tdxm_leaf(M, cut << 12, &lvl, &h), TDXM_MAPPED);
	assert_int_equal(lvl, 3);
	check_private_gfn(cut);
	/* Cut one page out of it: 1 GiB -> 2 MiB -> 4 KiB, one page goes. */
	{
		struct kvm_entry_actions act; /* the collapse's kicks left requests */

		assert_int_equal(kvm_vcpu_entry_actions(T.vcpu, &act), 0);
	}
	assert_true(kvm_vcpu_enter_guest(T.vcpu));
	tdxm_vcpu_enter(M, 0);
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, cut, cut + 1, 0), 0);
	kvm_vcpu_exit_guest(T.vcpu);
	check();
	assert_int_equal(M->n_demote, 2);
	assert_int_equal(kvm_tdx_get_stats(T.kvm, &st), 0);
	assert_int_equal(st.cur_private_leaves[3], 0);
	assert_int_equal(st.cur_private_leaves[2], 511);
	assert_int_equal(st.cur_private_leaves[1], 511);
	assert_int_equal(tdxm_leaf(M, cut << 12, &lvl, &h), TDXM_FREE);
	assert_int_equal(tdxm_leaf(M, (cut + 1) << 12, &lvl, &h), TDXM_MAPPED);
	assert_int_equal(lvl, 1);
	assert_int_equal(tdxm_leaf(M, (g1 + 0x3ff00) << 12, &lvl, &h), TDXM_MAPPED);
	assert_int_equal(lvl, 2);
	for (gfn_t g = g1; g < g1 + n1; g += 0x1ff)
		check_private_gfn(g);
	for (gfn_t g = (cut & ~511ull) - 2; g < (cut | 511) + 2; g++)
		check_private_gfn(g);
	assert_int_equal(fault((cut + 1) << 12, S2_ACC_READ), RET_PF_SPURIOUS);
	/* Back: the page faults in pending, is accepted, and the collapse
	 * makes the 2 MiB leaf and then the 1 GiB leaf again. */
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, cut, cut + 1, P), 0);
	assert_int_equal(fault(cut << 12, S2_ACC_WRITE), RET_PF_FIXED);
	assert_int_equal(tdxm_accept(M, cut << 12, 1), 0);
	assert_int_equal(kvm_tdx_collapse(T.kvm, g1, g1 + n1), 2);
	check();
	assert_int_equal(tdxm_leaf(M, cut << 12, &lvl, &h), TDXM_MAPPED);
	assert_int_equal(lvl, 3);
	check_private_gfn(cut);
	assert_int_equal(kvm_tdx_get_stats(T.kvm, &st), 0);
	assert_int_equal(st.cur_private_leaves[3], 1);
	assert_int_equal(st.promoted, 3);
	fini_checked();
}

/* A TD's fault results are distinct: a write-tracked gfn's write fault
 * (RET_PF_WRITE_TRACKED) and a shared fault on a private gfn
 * (RET_PF_MEMORY_FAULT) tell the embedder different things (emulate the
 * write; convert). Catches: the two results sharing a value (they did:
 * both were 5). */
static void test_fault_results_distinct(void **state)
{
	gfn_t s;

	td(bits_of(state), 1, 0);
	s = shared_gfn();
	assert_int_not_equal(RET_PF_MEMORY_FAULT, RET_PF_WRITE_TRACKED);
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0 + 1, G0 + 2, P), 0);
	assert_int_equal(kvm_write_track_add_gfn(T.kvm, G0 + 3), 0);
	assert_int_equal(fault(((G0 + 1) | s) << 12, S2_ACC_WRITE), RET_PF_MEMORY_FAULT);
	assert_int_equal(fault(((G0 + 3) | s) << 12, S2_ACC_WRITE), RET_PF_WRITE_TRACKED);
	assert_int_equal(fault(((G0 + 4) | s) << 12, S2_ACC_WRITE), RET_PF_FIXED);
	assert_int_equal(kvm_write_track_remove_gfn(T.kvm, G0 + 3), 0);
	check();
	fini_checked();
}

/*
 * Allocation failure at every allocation a private operation makes (a
 * fault linking tables at 4 KiB and 2 MiB, PAGE.ADD, a conversion cutting
 * a 2 MiB leaf, whose spare S-EPT pages are topped up first): -ENOMEM or
 * success, never an illegal SEAMCALL, the model and the mirror the same map
 * after each attempt, and teardown gives every page back (t_vm_fini checks
 * the env's table pages; fini_checked the model's pages and the private
 * pfns). Catches: the lazily allocated table pages of a private fault not
 * freed on -ENOMEM (t_vm_fini: pages still in use).
 */
static void test_private_alloc_failure(void **state)
{
	long attempts = 0;

	td(bits_of(state), 2, 0);
	M->finalized = false;
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0, G0 + NPAGES, P), 0);
	for (long n = 1;; n++) {
		int r;

		s2_hosted_fail_nth(&T.h, n, true);
		r = kvm_tdx_page_add(T.kvm, G0 + 0x600, 0x5000000);
		s2_hosted_fail_nth(&T.h, 0, false);
		check();
		attempts++;
		if (!r)
			break;
		assert_int_equal(r, -ENOMEM);
	}
	M->finalized = true;
	assert_int_equal(kvm_tdx_finalized(T.kvm), 0);
	/* Faults where no mirror table is yet: a second slot, 1 GiB away. */
	t_slot(&T, 1, 0x80000, 1024, HVA_BASE + (1ull << 30), 0);
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, 0x80000, 0x80400, P), 0);
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, 0x803ff, 0x80400, 0), 0);
	for (unsigned k = 0; k < 2; k++) {
		gfn_t g = k ? 0x803f3 /* 4 KiB: a mixed block */ : 0x80010 /* 2 MiB */;

		for (long n = 1;; n++) {
			int r;

			s2_hosted_fail_nth(&T.h, n, true);
			r = kvm_tdp_page_fault(T.vcpu, g << 12, S2_ACC_READ);
			s2_hosted_fail_nth(&T.h, 0, false);
			check();
			attempts++;
			if (r == RET_PF_FIXED)
				break;
			assert_true(r == -ENOMEM || r == RET_PF_RETRY);
		}
	}
	assert_int_equal(tdxm_accept(M, 0x80000ull << 12, 2), 0);
	for (long n = 1;; n++) {
		int r;

		s2_hosted_fail_nth(&T.h, n, true);
		r = kvm_vm_set_mem_attributes(T.kvm, 0x80005, 0x80006, 0);
		s2_hosted_fail_nth(&T.h, 0, false);
		check();
		attempts++;
		if (!r)
			break;
		assert_int_equal(r, -ENOMEM);
	}
	assert_true(attempts > 4);
	fini_checked();
}

int main(void)
{
	static uintptr_t b48 = 48, b52 = 52;
	const struct CMUnitTest tests[] = {
#define BOTH(fn)                                                                   \
	cmocka_unit_test_prestate_setup_teardown(fn, NULL, teardown, (void *)b48), \
		cmocka_unit_test_prestate_setup_teardown(fn, NULL, teardown, (void *)b52)
		BOTH(test_private_fault_4k),
		BOTH(test_private_fault_2m),
		BOTH(test_mismatch_and_shared),
		BOTH(test_conversion_order),
		BOTH(test_partial_huge_conversion),
		BOTH(test_fast_zap_notifier_delete),
		BOTH(test_busy_everywhere),
		BOTH(test_sve_nonpresent),
		BOTH(test_page_add),
		BOTH(test_shared_half_zapped),
		BOTH(test_td_dirty_log_wrprotect),
		BOTH(test_td_dirty_log_hw),
		BOTH(test_td_dirty_log_pml),
		BOTH(test_1g_promote_demote),
		BOTH(test_fault_results_distinct),
		BOTH(test_private_alloc_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
