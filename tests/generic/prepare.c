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
 *    it holds: prepare_fails_clean (t_vm_fini finds pages missing);
 *  - s2_acc_free_tables() giving a prepared VM's unlinked tables to the
 *    env (not back to the reserve): cycles_all_fail and cycles_tables_fail
 *    (a remap finds the reserve empty: -ENOMEM);
 *  - s2_table_alloc() not waiting for tables in flight (no rcu_barrier):
 *    cycles_tables_fail (call_rcu works there: the remap comes before the
 *    grace period ends).
 *
 * The cycles tests: after prepare, with every allocation failing
 * (cycles_all_fail) or every table-page allocation failing while metadata
 * may still be allocated (cycles_tables_fail), random unmap / remap of the
 * range-mapped region, zap / fault of the faulted one and, in the second,
 * dirty logging switched on (huge leaves split) and off (collapsed) never
 * give -ENOMEM, and in the end everything maps as the model says. In the
 * first, switching logging on is refused with -ENOMEM: the memslot update
 * allocates its memslot array and bitmap (metadata, outside the reserve).
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

static void *(*env_alloc_table)(void *ctx, size_t bytes, hpa_t *pa);
static uint64_t tables_refused;

/* Every table page refused, metadata still given. */
static void *refuse_table(void *ctx, size_t bytes, hpa_t *pa)
{
	(void)ctx;
	(void)bytes;
	(void)pa;
	tables_refused++;
	return NULL;
}

#define HPA0 (2 * GB + PG) /* R[0]'s host range: one page off, 4 KiB leaves */

/* Random page-aligned [*a, *a + *n) inside region @r, up to 3 MiB. */
static void pick(const struct s2_sizing_region *r, unsigned *seed, gpa_t *a, uint64_t *n)
{
	uint64_t pages = r->size / PG, first = (uint64_t)rand_r(seed) % pages;
	uint64_t len = 1 + (uint64_t)rand_r(seed) % (3 * MB / PG);

	if (len > pages - first)
		len = pages - first;
	*a = r->gpa + first * PG;
	*n = len * PG;
}

static void cycles(bool all_fail)
{
	unsigned seed = all_fail ? 7 : 11;
	bool logging = false;
	struct kvm_dirty_stats ds;

	setup();
	/* R[1] with 2 MiB leaves where the host allows (split material). */
	T.h.host_level = all_fail ? 1 : 2;
	assert_int_equal(kvm_mmu_prepare(T.kvm, R, 2, 1), 0);
	if (all_fail) {
		s2_hosted_fail_nth(&T.h, 1, true);
	} else {
		env_alloc_table = T.h.ops.alloc_table;
		T.h.ops.alloc_table = refuse_table;
		tables_refused = 0;
	}
	assert_int_equal(kvm_mmu_map_range(T.vcpu, R[0].gpa, HPA0, R[0].size, S2_PROT_R, S2_MT_WB),
			 0);
	for (unsigned k = 0; k < 300; k++) {
		unsigned op = (unsigned)rand_r(&seed) % 8;
		gpa_t a;
		uint64_t n;

		if (op <= 2) { /* unmap part of R[0], then map it again */
			pick(&R[0], &seed, &a, &n);
			assert_true(kvm_mmu_unmap_range(T.kvm, a, n) >= 0);
			if (op)
				assert_int_equal(kvm_mmu_map_range(T.vcpu, a, HPA0 + (a - R[0].gpa),
								   n, S2_PROT_R, S2_MT_WB),
						 0);
		} else if (op <= 4) { /* zap part of R[1] */
			pick(&R[1], &seed, &a, &n);
			assert_true(kvm_zap_gfn_range(T.kvm, a >> 12, (a + n) >> 12) >= 0);
		} else if (op <= 6) { /* fault pages of R[1], reads and writes */
			pick(&R[1], &seed, &a, &n);
			for (gpa_t p = a; p < a + n; p += 16 * PG) {
				int r = kvm_tdp_page_fault(
					T.vcpu, p, S2_ACC_READ | (p & PG ? S2_ACC_WRITE : 0));

				assert_true(r == RET_PF_FIXED || r == RET_PF_SPURIOUS);
			}
		} else { /* dirty logging on (split) or off (collapse) on R[1] */
			int r = kvm_set_memslot_flags(T.kvm, 1,
						      logging ? 0 : KVM_MEM_LOG_DIRTY_PAGES);

			if (all_fail) {
				assert_int_equal(r, -ENOMEM);
			} else {
				assert_int_equal(r, 0);
				logging = !logging;
			}
		}
	}
	/* Everything back, then every page of both regions as the model. */
	assert_int_equal(kvm_mmu_map_range(T.vcpu, R[0].gpa, HPA0, R[0].size, S2_PROT_R, S2_MT_WB),
			 0);
	for (gpa_t p = R[1].gpa; p < R[1].gpa + R[1].size; p += PG) {
		int r = kvm_tdp_page_fault(T.vcpu, p, S2_ACC_READ);

		assert_true(r == RET_PF_FIXED || r == RET_PF_SPURIOUS);
	}
	for (gpa_t p = R[0].gpa; p < R[0].gpa + R[0].size; p += PG)
		t_assert_maps(T.kvm, p, HPA0 + (p - R[0].gpa), 1, S2_PROT_R);
	for (gpa_t p = R[1].gpa; p < R[1].gpa + R[1].size; p += PG) {
		struct ref_xlate x;

		/* Leaf size as the logging state left it: the output counts. */
		assert_int_equal(ref_walk_kvm(T.kvm, p, &x), 0);
		assert_int_equal(x.hpa, (1ull << 42) + 8 * GB + 2 * MB + (p - R[1].gpa));
	}
	assert_false(kvm_is_bugged(T.kvm));
	if (all_fail) {
		/* Only the refused memslot updates (and RCU records) failed. */
		s2_hosted_fail_nth(&T.h, 0, false);
	} else {
		assert_int_equal(kvm_get_dirty_stats(T.kvm, &ds), 0);
		print_message("split %llu, collapsed %llu, env table allocations refused %llu\n",
			      (unsigned long long)ds.split_leaves, (unsigned long long)ds.collapsed,
			      (unsigned long long)tables_refused);
		assert_true(ds.split_leaves > 0);
		assert_true(ds.collapsed > 0);
		assert_int_equal(tables_refused, 0);
		T.h.ops.alloc_table = env_alloc_table;
	}
	t_vm_fini(&T);
}

static void test_cycles_all_fail(void **st)
{
	(void)st;
	cycles(true);
}

static void test_cycles_tables_fail(void **st)
{
	(void)st;
	cycles(false);
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
		cmocka_unit_test(test_cycles_all_fail),
		cmocka_unit_test(test_cycles_tables_fail),
		cmocka_unit_test(test_bad_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
