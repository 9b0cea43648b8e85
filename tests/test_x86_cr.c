// SPDX-License-Identifier: MIT
/*
 * s2_x86_cr_update(): one test per SDM rule (vol. 3, "Operations that
 * Invalidate TLBs and Paging-Structure Caches"), each checking the request
 * raised and that nothing else was (no reload, no stage-2 flush).
 *
 * Mutations run (each made the named test fail; then restored):
 *  - PGE toggled only on 0 -> 1 (test_pge_toggled_flushes_guest, off case);
 *  - PCIDE tested 0 -> 1 instead of 1 -> 0 (test_pcide_off_flushes_guest,
 *    test_pcide_on_flushes_nothing);
 *  - SMEP tested either way (test_smep_off_flushes_nothing);
 *  - CR0.PG 1 -> 0 raising TLB_FLUSH instead of TLB_FLUSH_GUEST
 *    (test_paging_off_flushes_guest).
 */
#include <string.h>

#include "s2mmu/x86-cr.h"
#include "tests/lib/testlib.h"

#if !S2_ENABLED(CONFIG_S2_FMT_X86_EPT) && !S2_ENABLED(CONFIG_S2_FMT_X86_NPT)
int main(void)
{
	print_message("no x86 format built: s2_x86_cr_update is absent, skipped\n");
	return 0;
}
#else

static struct tvm T;

static int setup(void **state)
{
	(void)state;
	/* The helper needs a vcpu, of any format this build has. */
	t_vm_init(&T, t_any_fmt(), NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	t_vm_fini(&T);
	return 0;
}

/* The requests pending on the vcpu, as a mask of 1 << KVM_REQ_*, cleared. */
static unsigned pending(void)
{
	unsigned m = 0;

	for (unsigned r = 0; r < KVM_REQ_NR; r++)
		if (kvm_check_request(T.vcpu, r))
			m |= 1u << r;
	return m;
}

static void expect(unsigned reg, uint64_t old, uint64_t new, unsigned req_mask, bool mode)
{
	int r = s2_x86_cr_update(T.vcpu, reg, old, new);

	assert_true(r >= 0);
	assert_int_equal((unsigned)r & ~S2_X86_CR_MODE_CHANGED, req_mask);
	assert_int_equal(!!(r & S2_X86_CR_MODE_CHANGED), mode);
	assert_int_equal(pending(), req_mask);
}

#define GUEST (1u << KVM_REQ_TLB_FLUSH_GUEST)
#define CURRENT (1u << KVM_REQ_TLB_FLUSH_CURRENT)
#define CR4_BASE (S2_X86_CR4_PAE | S2_X86_CR4_PGE)

/* CR4.PGE changed either way: every PCID's translations, global ones too. */
static void test_pge_toggled_flushes_guest(void **state)
{
	(void)state;
	expect(S2_X86_CR4, CR4_BASE, CR4_BASE & ~S2_X86_CR4_PGE, GUEST, false);
	expect(S2_X86_CR4, CR4_BASE & ~S2_X86_CR4_PGE, CR4_BASE, GUEST, false);
}

/* CR4.PCIDE 1 -> 0 flushes every PCID's translations. */
static void test_pcide_off_flushes_guest(void **state)
{
	(void)state;
	expect(S2_X86_CR4, CR4_BASE | S2_X86_CR4_PCIDE, CR4_BASE, GUEST, false);
}

/* CR4.PCIDE 0 -> 1 flushes nothing (the SDM requires no invalidation). */
static void test_pcide_on_flushes_nothing(void **state)
{
	(void)state;
	expect(S2_X86_CR4, CR4_BASE, CR4_BASE | S2_X86_CR4_PCIDE, 0, false);
}

/* CR4.SMEP 0 -> 1 flushes the current PCID's translations; 1 -> 0 none. */
static void test_smep_on_flushes_current(void **state)
{
	(void)state;
	expect(S2_X86_CR4, CR4_BASE, CR4_BASE | S2_X86_CR4_SMEP, CURRENT, true);
}

static void test_smep_off_flushes_nothing(void **state)
{
	(void)state;
	expect(S2_X86_CR4, CR4_BASE | S2_X86_CR4_SMEP, CR4_BASE, 0, true);
}

/* CR4.PAE changed either way: the current PCID's translations. */
static void test_pae_changed_flushes_current(void **state)
{
	(void)state;
	expect(S2_X86_CR4, CR4_BASE, CR4_BASE & ~S2_X86_CR4_PAE, CURRENT, true);
	expect(S2_X86_CR4, CR4_BASE & ~S2_X86_CR4_PAE, CR4_BASE, CURRENT, true);
}

/* PGE and PAE at once: the wider flush alone. */
static void test_pge_and_pae_flush_guest_only(void **state)
{
	(void)state;
	expect(S2_X86_CR4, CR4_BASE, 0, GUEST, true);
}

/* CR0.PG 1 -> 0 (a MOV to CR0, or INIT) flushes every PCID's; 0 -> 1
 * flushes nothing; both are mode changes. */
static void test_paging_off_flushes_guest(void **state)
{
	const uint64_t on = S2_X86_CR0_PG | 0x11;

	(void)state;
	expect(S2_X86_CR0, on, on & ~S2_X86_CR0_PG, GUEST, true);
	expect(S2_X86_CR0, on, S2_X86_CR0_INIT, GUEST, true);
	expect(S2_X86_CR0, on & ~S2_X86_CR0_PG, on, 0, true);
	expect(S2_X86_CR0, 0x60000010, 0x11, 0, false);
}

/* EFER never flushes (LME/LMA change only with paging off); LMA and NXE
 * are mode changes. */
static void test_efer_flushes_nothing(void **state)
{
	(void)state;
	expect(S2_X86_EFER, 0, S2_X86_EFER_LME | S2_X86_EFER_LMA, 0, true);
	expect(S2_X86_EFER, 0, S2_X86_EFER_NXE, 0, true);
	expect(S2_X86_EFER, 0, S2_X86_EFER_LME, 0, false);
}

static void test_bad_input(void **state)
{
	(void)state;
	assert_int_equal(s2_x86_cr_update(NULL, S2_X86_CR0, 0, 0), -EINVAL);
	assert_int_equal(s2_x86_cr_update(T.vcpu, 3, 0, 1), -EINVAL);
	assert_int_equal(pending(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pge_toggled_flushes_guest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pcide_off_flushes_guest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pcide_on_flushes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_smep_on_flushes_current, setup, teardown),
		cmocka_unit_test_setup_teardown(test_smep_off_flushes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pae_changed_flushes_current, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pge_and_pae_flush_guest_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paging_off_flushes_guest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_efer_flushes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
	};

	return cmocka_run_group_tests_name("x86_cr", tests, NULL, NULL);
}
#endif
