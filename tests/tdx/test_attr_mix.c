// SPDX-License-Identifier: MIT
/*
 * A shared fault never installs a leaf that covers gfns whose memory
 * attributes differ from the faulting gfn's (the fuzzer's find: with a 1 GiB
 * host mapping a shared fault next to a private gfn mapped the private gfn
 * in the same huge leaf), and the fault fast path never answers a gfn of
 * other attributes from a block it cached. Each test names the mutation of
 * core/fault.c it catches; each was applied and made the test fail.
 */
#include <string.h>

#include "core/kvm_internal.h"
#include "s2mmu/notifier.h"
#include "tests/lib/testlib.h"

#define HVA_BASE (0x7f0000000000ull) /* 1 GiB aligned */
#define G0 (0x40000ull)		     /* slot base gfn, 1 GiB aligned */
#define NPAGES (1ull << 18)	     /* 1 GiB */

static struct tvm T;

static int teardown(void **state)
{
	(void)state;
	if (T.kvm)
		t_vm_fini(&T);
	return 0;
}

static void vm(unsigned max_leaf)
{
	struct kvm_vm_params p = t_default_params(S2_FMT_X86_EPT);

	p.max_leaf_level = max_leaf;
	t_vm_init(&T, S2_FMT_X86_EPT, &p);
	t_slot(&T, 0, G0, NPAGES, HVA_BASE, 0);
}

static int level_of(gfn_t gfn)
{
	struct ref_xlate x;

	if (ref_walk_kvm(T.kvm, gfn << 12, &x))
		return 0;
	return x.level;
}

/* One private gfn inside a 2 MiB block: a shared fault in that block maps
 * 4 KiB, one in another block of the same 1 GiB maps 2 MiB, and the private
 * gfn itself is not mapped by either. Catches: s2_attr_cap_level() not
 * called (the fault maps 1 GiB over the private gfn). */
static void test_shared_fault_capped_by_mixed_attrs(void **state)
{
	(void)state;
	vm(3);
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0 + 0x205, G0 + 0x206,
						   KVM_MEMORY_ATTRIBUTE_PRIVATE),
			 0);
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, (G0 + 0x200) << 12, S2_ACC_READ), RET_PF_FIXED);
	assert_int_equal(level_of(G0 + 0x200), 1);
	t_assert_unmapped(T.kvm, (G0 + 0x205) << 12);
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, (G0 + 0x400) << 12, S2_ACC_READ), RET_PF_FIXED);
	assert_int_equal(level_of(G0 + 0x400), 2);
	t_assert_unmapped(T.kvm, (G0 + 0x205) << 12);
	/* Uniform attributes elsewhere: the cap costs nothing. */
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0 + 0x205, G0 + 0x206, 0), 0);
	assert_true(kvm_zap_gfn_range(T.kvm, G0, G0 + NPAGES) >= 0);
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, (G0 + 0x600) << 12, S2_ACC_READ), RET_PF_FIXED);
	assert_int_equal(level_of(G0 + 0x600), 3);
}

/* 4 KiB leaves with a cached host block: the fast path does not answer the
 * private gfn of the block (nor any gfn of it, as the block is mixed), so
 * such a fault takes the full path. Catches: the clip in
 * s2_fault_cache_fill() removed (the private gfn is installed fast). */
static void test_fast_path_not_over_mixed_attrs(void **state)
{
	struct kvm_mmu_stats s0, s1;

	(void)state;
	vm(1);
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0 + 0x15, G0 + 0x16,
						   KVM_MEMORY_ATTRIBUTE_PRIVATE),
			 0);
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, (G0 + 0x10) << 12, S2_ACC_READ), RET_PF_FIXED);
	s0 = t_stats(T.kvm);
	(void)kvm_tdp_page_fault(T.vcpu, (G0 + 0x15) << 12, S2_ACC_READ);
	s1 = t_stats(T.kvm);
	assert_int_equal(s1.faults_fast, s0.faults_fast);
	/* A block of uniform attributes is still cached whole. */
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, (G0 + 0x400) << 12, S2_ACC_READ), RET_PF_FIXED);
	s0 = t_stats(T.kvm);
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, (G0 + 0x401) << 12, S2_ACC_READ), RET_PF_FIXED);
	s1 = t_stats(T.kvm);
	assert_int_equal(s1.faults_fast, s0.faults_fast + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_shared_fault_capped_by_mixed_attrs, teardown),
		cmocka_unit_test_teardown(test_fast_path_not_over_mixed_attrs, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
