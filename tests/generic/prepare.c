// SPDX-License-Identifier: MIT
/*
 * Prepare / commit (core/map.c), once per format: kvm_mmu_prepare() reserves
 * what core/sizing.c counts and fails with -ENOMEM before anything changes;
 * after it, with every allocation of the hosted env made to fail
 * (s2_hosted_fail_nth with persist), kvm_mmu_map_range() and faults over
 * the prepared regions at their worst case (every page a 4 KiB leaf) never
 * see -ENOMEM.
 *
 * Mutations run (each made the named tests fail, then was reverted):
 *  - s2_table_alloc() ignoring the reserve: commit_never_fails;
 *  - kvm_mmu_prepare() without the vcpu caches' pages: commit_never_fails
 *    (the last top-up finds the reserve empty);
 *  - kvm_mmu_prepare()'s -ENOMEM path freeing the stack but not the pages
 *    it holds: prepare_fails_clean (t_vm_fini finds pages missing).
 */
#include <stdlib.h>
#include <string.h>

#include "core/kvm_internal.h"
#include "tests/lib/testlib.h"

#ifndef TEST_FMT
#error "build with -DTEST_FMT=S2_FMT_..."
#endif

#define PG 4096ull
#define MB (1ull << 20)
#define GB (1ull << 30)

static struct tvm T;

/* Two regions: A straddles a 1 GiB boundary, mapped by range with hpa one
 * page off (4 KiB leaves only); B is faulted page by page with the host
 * promising 4 KiB only. Both are allowed every leaf size. */
static struct s2_sizing_region R[2];

static void setup(void)
{
	unsigned all = 0;

	t_vm_init(&T, TEST_FMT, NULL);
	for (int l = 1; l <= T.kvm->max_leaf_level; l++)
		all |= S2_SIZING_LEAF(l);
	R[0] = (struct s2_sizing_region){ GB - 3 * MB - PG, 6 * MB + 3 * PG, all };
	R[1] = (struct s2_sizing_region){ 5 * GB + 2 * MB, 5 * MB, all };
	t_slot(&T, 0, R[0].gpa >> 12, R[0].size >> 12, 1ull << 42, 0);
	t_slot(&T, 1, R[1].gpa >> 12, R[1].size >> 12, (1ull << 42) + 8 * GB + 2 * MB, 0);
	T.h.host_level = 1;
}

static void test_commit_never_fails(void **st)
{
	struct kvm_mmu_stats s;

	(void)st;
	setup();
	assert_int_equal(kvm_mmu_prepare(T.kvm, R, 2, 1), 0);
	assert_true(kvm_mmu_reserve_pages(T.kvm) > 0);
	s2_hosted_fail_nth(&T.h, 1, true);
	assert_int_equal(
		kvm_mmu_map_range(T.vcpu, R[0].gpa, 2 * GB + PG, R[0].size, S2_PROT_R, S2_MT_WB),
		0);
	for (gpa_t p = R[1].gpa; p < R[1].gpa + R[1].size; p += PG)
		assert_int_equal(kvm_tdp_page_fault(T.vcpu, p, S2_ACC_READ | S2_ACC_WRITE),
				 RET_PF_FIXED);
	/* Faults again (spurious) and a write upgrade: still no allocation. */
	for (gpa_t p = R[0].gpa; p < R[0].gpa + R[0].size; p += 64 * PG)
		assert_true(kvm_tdp_page_fault(T.vcpu, p, S2_ACC_READ) >= 0);
	assert_int_equal(T.h.alloc_failed, 0);
	s = t_stats(T.kvm);
	assert_int_equal(s.cur_leaves[1], (R[0].size + R[1].size) / PG);
	for (gpa_t p = R[0].gpa; p < R[0].gpa + R[0].size; p += PG)
		t_assert_maps(T.kvm, p, 2 * GB + PG + (p - R[0].gpa), 1, S2_PROT_R);
	s2_hosted_fail_nth(&T.h, 0, false);
	t_vm_fini(&T);
}

/* Every allocation prepare makes, failed in turn: -ENOMEM, no reserve,
 * nothing allocated left behind, and a map afterwards still allocates
 * from the env as before. */
static void test_prepare_fails_clean(void **st)
{
	(void)st;
	setup();
	for (long nth = 1;; nth++) {
		uint64_t before = t_tables_hash(T.kvm);
		int r;

		s2_hosted_fail_nth(&T.h, nth, false);
		r = kvm_mmu_prepare(T.kvm, R, 2, 1);
		s2_hosted_fail_nth(&T.h, 0, false);
		if (!r) {
			assert_true(nth > 2);
			break;
		}
		assert_int_equal(r, -ENOMEM);
		assert_int_equal(kvm_mmu_reserve_pages(T.kvm), 0);
		assert_null(T.kvm->reserve);
		assert_int_equal(t_tables_hash(T.kvm), before);
	}
	assert_int_equal(kvm_mmu_prepare(T.kvm, R, 2, 1), -EBUSY);
	t_vm_fini(&T); /* every page back: t_vm_fini checks */
}

static void test_bad_input(void **st)
{
	struct s2_sizing_region bad = { PG + 1, PG, S2_SIZING_LEAF(1) };

	(void)st;
	setup();
	assert_int_equal(kvm_mmu_prepare(NULL, R, 2, 1), -EINVAL);
	assert_int_equal(kvm_mmu_prepare(T.kvm, NULL, 2, 1), -EINVAL);
	assert_int_equal(kvm_mmu_prepare(T.kvm, &bad, 1, 1), -EINVAL);
	assert_int_equal(kvm_mmu_prepare(T.kvm, R, 2, 100000), -EINVAL);
	assert_null(T.kvm->reserve);
	t_vm_fini(&T);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commit_never_fails),
		cmocka_unit_test(test_prepare_fails_clean),
		cmocka_unit_test(test_bad_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
