// SPDX-License-Identifier: MIT
/*
 * kvm_mmu_map_range() racing faults and MMU-notifier invalidations of its
 * range, once per format (also under ThreadSanitizer).
 *
 * The memslot's host pages (what faults resolve: the hosted env's pfn of
 * the hva) differ from the host range map_range is given, so a fault that
 * installs its pfn between map_range's zap and its install would make the
 * install replace a present leaf's pfn: rule 1 refuses that and bugs the VM.
 * map_range takes its range through the invalidation protocol, so faults of
 * the range retry until it is done. One thread maps (and now and then
 * unmaps) random sub-ranges, two vcpu threads read-fault random pages of the
 * range, one thread runs notifier invalidations over random parts of its
 * lower half. Every call must succeed (a fault may ask to retry), the VM
 * must never be bugged, each page of the upper half that a map_range
 * covered must map the host page it was given when the call returns, and a
 * last map_range of the whole range must leave every page mapped so, by
 * the reference walker.
 *
 * A range of few leaves is first tried under the read side, installing
 * only over empty entries (s2_map_empty() in core/map.c); what it finds
 * present goes to the write side's zap and install.
 *
 * Mutation run: the read-side try taking what it finds present (map()
 * without only_empty): wrong_pfn on every format (0x7e on x86-ept).
 * Mutation run: map_range without its invalidation (s2_map_invalidate()
 * calls removed): wrong_pfn on every format. A read fault that got in
 * between map_range's zap and its install left the memslot's page mapped
 * and map_range, finding a leaf that grants its access, kept it (had the
 * leaf lacked a permission map_range asked for, rule 1 would have refused
 * the change and bugged the VM).
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "core/kvm_internal.h"
#include "tests/lib/testlib.h"

#ifndef TEST_FMT
#error "build with -DTEST_FMT=S2_FMT_..."
#endif

#define PG 4096ull
#define NPAGES 64
#define GPA0 (1ull << 30)
#define HVA0 (1ull << 40)
#define HPA0 ((2ull << 30) + PG) /* not the memslot's pages; 4 KiB leaves */
#define MAPS 1000

static struct tvm T;
static struct kvm_vcpu *V[3];
static bool stop;
static uint64_t bad_faults, bad_maps, invalidations, faults, wrong_pfn;

/* Right after map_range returned: pages of the upper half (no notifier
 * there, and only this thread unmaps) map what it was given. */
static void check_mapped(unsigned i, unsigned n)
{
	for (unsigned k = i < NPAGES / 2 ? NPAGES / 2 : i; k < i + n; k++) {
		struct s2_mapping m;

		if (kvm_mmu_lookup(T.kvm, GPA0 + k * PG, &m) || !m.present ||
		    m.hpa != HPA0 + k * PG)
			wrong_pfn++;
	}
}

static void *fault_thread(void *arg)
{
	struct kvm_vcpu *vcpu = arg;
	unsigned seed = (unsigned)(uintptr_t)arg;

	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		gpa_t p = GPA0 + ((unsigned)rand_r(&seed) % NPAGES) * PG;
		int r = kvm_tdp_page_fault(vcpu, p, S2_ACC_READ);

		if (r != RET_PF_FIXED && r != RET_PF_SPURIOUS && r != RET_PF_RETRY)
			__atomic_fetch_add(&bad_faults, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&faults, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void *notifier_thread(void *arg)
{
	unsigned seed = 99;

	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		unsigned i = (unsigned)rand_r(&seed) % (NPAGES / 2),
			 n = 1 + (unsigned)rand_r(&seed) % 8;
		hva_t a, b;

		if (i + n > NPAGES / 2) /* the lower half only */
			n = NPAGES / 2 - i;
		a = HVA0 + i * PG;
		b = a + n * PG;

		if (kvm_mmu_notifier_invalidate_range_start(T.kvm, a, b, true) ||
		    kvm_mmu_notifier_invalidate_range_end(T.kvm, a, b, true))
			__atomic_fetch_add(&bad_maps, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&invalidations, 1, __ATOMIC_RELAXED);
		t_yield();
	}
	return NULL;
}

static void test_map_races_faults(void **st)
{
	pthread_t t[3];
	unsigned seed = 5;

	(void)st;
	t_vm_init(&T, TEST_FMT, NULL);
	T.h.host_level = 1;
	T.h.quiet = true;
	t_slot(&T, 0, GPA0 >> 12, NPAGES, HVA0, 0);
	V[0] = T.vcpu;
	for (unsigned i = 1; i < 3; i++)
		assert_int_equal(kvm_vcpu_create(T.kvm, i, &V[i]), 0);
	stop = false;
	bad_faults = bad_maps = invalidations = faults = wrong_pfn = 0;
	assert_int_equal(pthread_create(&t[0], NULL, fault_thread, V[1]), 0);
	assert_int_equal(pthread_create(&t[1], NULL, fault_thread, V[2]), 0);
	assert_int_equal(pthread_create(&t[2], NULL, notifier_thread, NULL), 0);
	/* At least MAPS maps, and on until the other threads did some work. */
	for (unsigned k = 0; (k < MAPS || __atomic_load_n(&invalidations, __ATOMIC_RELAXED) < 20 ||
			      __atomic_load_n(&faults, __ATOMIC_RELAXED) < 3000) &&
			     !kvm_is_bugged(T.kvm);
	     k++) {
		unsigned i = (unsigned)rand_r(&seed) % NPAGES, n = 1 + (unsigned)rand_r(&seed) % 16;

		if (i + n > NPAGES)
			n = NPAGES - i;
		if (k % 5 == 0 && kvm_mmu_unmap_range(T.kvm, GPA0 + i * PG, n * PG) < 0)
			bad_maps++;
		if (kvm_mmu_map_range(V[0], GPA0 + i * PG, HPA0 + i * PG, n * PG, S2_PROT_R,
				      S2_MT_WB))
			bad_maps++;
		check_mapped(i, n);
	}
	__atomic_store_n(&stop, true, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	assert_false(kvm_is_bugged(T.kvm));
	assert_int_equal(bad_maps, 0);
	assert_int_equal(wrong_pfn, 0);
	assert_int_equal(bad_faults, 0);
	assert_true(invalidations > 0);
	assert_int_equal(kvm_mmu_invalidate_in_progress(T.kvm), 0);
	assert_int_equal(kvm_mmu_map_range(V[0], GPA0, HPA0, NPAGES * PG, S2_PROT_R, S2_MT_WB), 0);
	for (unsigned i = 0; i < NPAGES; i++)
		t_assert_maps(T.kvm, GPA0 + i * PG, HPA0 + i * PG, 1, S2_PROT_R);
	t_vm_fini(&T);
}

/*
 * map_range racing the deletion of its memslot: one thread maps random
 * small ranges (the read-side try) while the main thread deletes the slot
 * and adds it back. Once the delete returned, nothing may be mapped in the
 * slot's range until it is back: a map_range that looked the slot up
 * before the delete must see the generation move, or the delete's zap in
 * progress, under mmu_lock and not install. Each call returns 0 or
 * -ENOENT (no slot). Mutation run: s2_map_empty() without its memslot
 * generation and slot-zap checks: stale leaves after the delete.
 */
static uint64_t maps_done;
static void *map_thread(void *arg)
{
	unsigned seed = 17;

	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		unsigned i = (unsigned)rand_r(&seed) % NPAGES, n = 1 + (unsigned)rand_r(&seed) % 8;
		int r;

		if (i + n > NPAGES)
			n = NPAGES - i;
		r = kvm_mmu_map_range(V[0], GPA0 + i * PG, HPA0 + i * PG, n * PG, S2_PROT_R,
				      S2_MT_WB);
		if (r && r != -ENOENT)
			__atomic_fetch_add(&bad_maps, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&maps_done, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void test_map_races_slot_delete(void **st)
{
	uint64_t stale = 0;
	pthread_t t;

	(void)st;
	t_vm_init(&T, TEST_FMT, NULL);
	T.h.quiet = true;
	t_slot(&T, 0, GPA0 >> 12, NPAGES, HVA0, 0);
	V[0] = T.vcpu;
	stop = false;
	bad_maps = maps_done = 0;
	assert_int_equal(pthread_create(&t, NULL, map_thread, NULL), 0);
	for (unsigned k = 0; k < 300 && !kvm_is_bugged(T.kvm); k++) {
		uint64_t seen = __atomic_load_n(&maps_done, __ATOMIC_RELAXED);

		/* Let a few maps in while the slot is there. */
		while (__atomic_load_n(&maps_done, __ATOMIC_RELAXED) < seen + 3)
			t_yield();
		assert_int_equal(kvm_delete_memslot(T.kvm, 0), 0);
		seen = __atomic_load_n(&maps_done, __ATOMIC_RELAXED);
		/* Until the thread has made two more calls (one starts after
		 * the delete), nothing may appear in the range. */
		do {
			for (unsigned i = 0; i < NPAGES; i++) {
				struct s2_mapping m;

				if (!kvm_mmu_lookup(T.kvm, GPA0 + i * PG, &m) && m.present)
					stale++;
			}
		} while (__atomic_load_n(&maps_done, __ATOMIC_RELAXED) < seen + 2);
		t_slot(&T, 0, GPA0 >> 12, NPAGES, HVA0, 0);
	}
	__atomic_store_n(&stop, true, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	assert_false(kvm_is_bugged(T.kvm));
	assert_int_equal(bad_maps, 0);
	assert_int_equal(stale, 0);
	t_vm_fini(&T);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_map_races_faults),
		cmocka_unit_test(test_map_races_slot_delete),
	};

	return cmocka_run_group_tests_name("map_range races", tests, NULL, NULL);
}
