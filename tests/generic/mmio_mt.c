// SPDX-License-Identifier: MIT
/*
 * Cached MMIO entries under concurrency (docs/mmio.md), once per format: a
 * vcpu thread sends accesses to a window of gfns through
 * kvm_mmu_page_fault_mmio while the main thread adds and deletes a memslot
 * over that window, with 2 generation bits so the wrap-around zap runs
 * every other add. Whenever the window's state was stable for the whole of
 * an access (no change began or ended during it), the answer must match
 * it: RAM gives a mapping (fixed or spurious), no slot gives MMIO; a stale
 * entry trusted, or an MMIO entry written over a mapping, breaks that.
 * Bounded: MT_ROUNDS changes (a few seconds at most). Catches: the
 * generation check in kvm_mmu_page_fault_mmio removed (MMIO answered on
 * RAM). Not caught (the window is too narrow to hit in a bounded run):
 * s2_mmio_install without its memslots_gen re-check under mmu_lock, which
 * lets an entry of generation g be written after the bump to g + 1 and be
 * trusted again at g + 4, past the wrap zap at g + 1.
 */
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "core/kvm_internal.h"
#include "tests/lib/testlib.h"

#ifndef TEST_FMT
#error "build with -DTEST_FMT=S2_FMT_..."
#endif

#define HVA_BASE (0x7f0000000000ull)
#define G0 (0x40000ull)
#define WIN (G0 + 0x200) /* the window: its own leaf table */
#define WN 16
#define MT_ROUNDS 400

static struct tvm T;
static uint64_t phase; /* odd while a change runs; /2 odd: the slot is there */
static bool stop;
static uint64_t bad, checked, done;

static void *vcpu_thread(void *arg)
{
	(void)arg;
	for (unsigned i = 0; !__atomic_load_n(&stop, __ATOMIC_ACQUIRE); i++) {
		gfn_t g = WIN + i % WN;
		uint64_t p0 = __atomic_load_n(&phase, __ATOMIC_ACQUIRE);
		int r = kvm_mmu_page_fault_mmio(T.vcpu, g << 12, S2_ACC_READ);
		uint64_t p1 = __atomic_load_n(&phase, __ATOMIC_ACQUIRE);

		__atomic_add_fetch(&done, 1, __ATOMIC_RELEASE);
		if (r < 0) {
			__atomic_store_n(&bad, 1000000 + (uint64_t)-r, __ATOMIC_RELAXED);
			break;
		}
		if (p0 != p1 || (p0 & 1) || r == RET_PF_RETRY)
			continue;
		checked++;
		if ((p0 / 2) & 1 ? r == RET_PF_EMULATE_MMIO : r != RET_PF_EMULATE_MMIO)
			__atomic_add_fetch(&bad, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void test_changes_under_accesses(void **state)
{
	struct kvm_vm_params p = t_default_params(TEST_FMT);
	struct kvm_memory_slot s = {
		.id = 1, .base_gfn = WIN, .npages = WN, .userspace_addr = HVA_BASE + (1ull << 30)
	};
	pthread_t th;

	(void)state;
	p.max_leaf_level = 1;
	p.mmio_cache = S2_MMIO_CACHE_ON;
	p.mmio_gen_bits = 2;
	t_vm_init(&T, TEST_FMT, &p);
	t_slot(&T, 0, G0, 0x100, HVA_BASE, 0);
	assert_int_equal(pthread_create(&th, NULL, vcpu_thread, NULL), 0);
	for (unsigned i = 0; i < MT_ROUNDS; i++) {
		__atomic_add_fetch(&phase, 1, __ATOMIC_ACQ_REL);
		if (i & 1)
			assert_int_equal(kvm_delete_memslot(T.kvm, 1), 0);
		else
			assert_int_equal(kvm_set_memslot(T.kvm, &s), 0);
		__atomic_add_fetch(&phase, 1, __ATOMIC_ACQ_REL);
		/* Let the vcpu see each state for a few accesses. */
		uint64_t d = __atomic_load_n(&done, __ATOMIC_ACQUIRE);

		while (__atomic_load_n(&done, __ATOMIC_ACQUIRE) < d + 4 &&
		       !__atomic_load_n(&bad, __ATOMIC_RELAXED))
			t_yield();
	}
	__atomic_store_n(&stop, true, __ATOMIC_RELEASE);
	assert_int_equal(pthread_join(th, NULL), 0);
	if (bad)
		fail_msg("[%s] %llu answers did not match the window's state (of %llu checked)",
			 TEST_FMT_NAME, (unsigned long long)bad, (unsigned long long)checked);
	assert_true(t_stats(T.kvm).mmio_wraps >= MT_ROUNDS / 4 - 1);
	assert_true(checked >= MT_ROUNDS);
	print_message("[%s] %llu stable answers checked, %llu wraps, %llu cached exits\n",
		      TEST_FMT_NAME, (unsigned long long)checked,
		      (unsigned long long)t_stats(T.kvm).mmio_wraps,
		      (unsigned long long)t_stats(T.kvm).exits_mmio_cached);
	t_vm_fini(&T);
	T.kvm = NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_changes_under_accesses),
	};

	if (!s2_fmt_supported(TEST_FMT)) {
		print_message("format " TEST_FMT_NAME " not built: skipped\n");
		return 0;
	}
	return cmocka_run_group_tests_name("generic MMIO entries, concurrent [" TEST_FMT_NAME "]",
					   tests, NULL, NULL);
}
