// SPDX-License-Identifier: MIT
/*
 * Concurrency of the fault path, per format: vcpu threads faulting under the
 * read side of mmu_lock with compare-and-exchange, against each other and
 * against zaps under the write side. Also built with ThreadSanitizer.
 */
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <string.h>

#include "core/kvm_internal.h"
#include "tests/lib/testlib.h"

#ifndef TEST_FMT
#error "build with -DTEST_FMT=S2_FMT_..."
#endif

#define HVA_BASE (0x7f0000000000ull)
#define NPAGES 2048

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

struct worker {
	struct kvm_vcpu *vcpu;
	pthread_barrier_t *start;
	gfn_t base;
	unsigned first, step; /* which of the NPAGES gfns, in which order */
	bool reverse;
	unsigned rounds;
	const bool *stop; /* read with __atomic_load_n */
	unsigned fixed, spurious, retry, errors;
};

static void *fault_worker(void *arg)
{
	struct worker *w = arg;

	pthread_barrier_wait(w->start);
	for (unsigned r = 0; r < w->rounds || w->stop; r++) {
		if (w->stop && __atomic_load_n(w->stop, __ATOMIC_RELAXED))
			break;
		for (unsigned i = w->first; i < NPAGES; i += w->step) {
			unsigned k = w->reverse ? NPAGES - 1 - i : i;
			int ret = kvm_tdp_page_fault(w->vcpu, (w->base + k) << 12,
						     S2_ACC_READ | S2_ACC_WRITE);

			if (ret == RET_PF_FIXED)
				w->fixed++;
			else if (ret == RET_PF_SPURIOUS)
				w->spurious++;
			else if (ret == RET_PF_RETRY)
				w->retry++;
			else
				w->errors++;
		}
		if (!w->stop && r + 1 >= w->rounds)
			break;
	}
	return NULL;
}

static void run_two(struct worker *a, struct worker *b)
{
	pthread_t ta, tb;

	assert_int_equal(pthread_create(&ta, NULL, fault_worker, a), 0);
	assert_int_equal(pthread_create(&tb, NULL, fault_worker, b), 0);
	pthread_barrier_wait(a->start);
	assert_int_equal(pthread_join(ta, NULL), 0);
	assert_int_equal(pthread_join(tb, NULL), 0);
}

static void check_all_mapped(gfn_t base, hva_t hva)
{
	for (unsigned i = 0; i < NPAGES; i++)
		t_assert_maps(T.kvm, (base + i) << 12, hva + ((hpa_t)i << 12), 1,
			      S2_PROT_R | S2_PROT_W);
}

/* Two vcpus faulting the same gfns race safely: every leaf is installed
 * exactly once, the loser of each race finds it, and nothing leaks. */
static void test_same_gfns(void **state)
{
	pthread_barrier_t bar;
	struct kvm_vcpu *v1;
	const gfn_t base = 0x40000;
	const hva_t hva = HVA_BASE + 4096; /* 4 KiB leaves only */

	(void)state;
	assert_int_equal(kvm_vcpu_create(T.kvm, 1, &v1), 0);
	t_slot(&T, 0, base, NPAGES, hva, 0);
	pthread_barrier_init(&bar, NULL, 3);
	struct worker a = { .vcpu = T.vcpu, .start = &bar, .base = base, .step = 1, .rounds = 1 };
	struct worker b = a;
	b.vcpu = v1;
	b.reverse = true;
	run_two(&a, &b);
	pthread_barrier_destroy(&bar);

	assert_int_equal(a.errors + b.errors, 0);
	assert_int_equal(a.fixed + b.fixed, NPAGES);
	assert_int_equal(a.fixed + b.fixed + a.spurious + b.spurious + a.retry + b.retry,
			 2 * NPAGES);
	check_all_mapped(base, hva);
	struct kvm_mmu_stats s = t_stats(T.kvm);
	assert_int_equal(s.cur_leaves[1], NPAGES);
	assert_int_equal(s.faults_fixed, NPAGES);
	/* Every table page is either linked or in a vcpu's cache. */
	uint64_t linked = s.cur_table_pages;
	uint64_t in_use = s2_hosted_pages_in_use(&T.h);
	assert_true(in_use >= linked);
}

/* Two vcpus faulting different gfns of the same leaf tables both install,
 * sharing the tables one of them linked. */
static void test_different_gfns(void **state)
{
	pthread_barrier_t bar;
	struct kvm_vcpu *v1;
	const gfn_t base = 0x80000;
	const hva_t hva = HVA_BASE + 4096;

	(void)state;
	assert_int_equal(kvm_vcpu_create(T.kvm, 1, &v1), 0);
	t_slot(&T, 0, base, NPAGES, hva, 0);
	pthread_barrier_init(&bar, NULL, 3);
	struct worker a = {
		.vcpu = T.vcpu, .start = &bar, .base = base, .first = 0, .step = 2, .rounds = 1
	};
	struct worker b = a;
	b.vcpu = v1;
	b.first = 1;
	run_two(&a, &b);
	pthread_barrier_destroy(&bar);

	assert_int_equal(a.errors + b.errors, 0);
	assert_int_equal(a.fixed, NPAGES / 2);
	assert_int_equal(b.fixed, NPAGES / 2);
	check_all_mapped(base, hva);
	assert_int_equal(t_stats(T.kvm).cur_leaves[1], NPAGES);
}

/* Faults under the read side race zaps under the write side: nothing is
 * lost, counted twice or leaked, and every gfn maps correctly afterwards. */
static void test_faults_race_zaps(void **state)
{
	pthread_barrier_t bar;
	struct kvm_vcpu *v1;
	bool stop = false;
	const gfn_t base = 0xc0000;
	const hva_t hva = HVA_BASE + 4096;
	pthread_t ta, tb;

	(void)state;
	assert_int_equal(kvm_vcpu_create(T.kvm, 1, &v1), 0);
	t_slot(&T, 0, base, NPAGES, hva, 0);
	pthread_barrier_init(&bar, NULL, 3);
	struct worker a = { .vcpu = T.vcpu, .start = &bar, .base = base, .step = 1, .stop = &stop };
	struct worker b = a;
	b.vcpu = v1;
	b.reverse = true;
	assert_int_equal(pthread_create(&ta, NULL, fault_worker, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, fault_worker, &b), 0);
	pthread_barrier_wait(&bar);
	unsigned seed = 12345;
	long zapped = 0;
	for (int i = 0; i < 200; i++) {
		seed = seed * 1103515245u + 12345u;
		gfn_t s = base + (seed >> 8) % NPAGES;
		gfn_t e = s + 1 + (seed >> 4) % 600;

		if (e > base + NPAGES)
			e = base + NPAGES;
		long r = kvm_zap_gfn_range(T.kvm, s, e);
		assert_true(r >= 0);
		zapped += r;
	}
	__atomic_store_n(&stop, true, __ATOMIC_RELAXED);
	assert_int_equal(pthread_join(ta, NULL), 0);
	assert_int_equal(pthread_join(tb, NULL), 0);
	pthread_barrier_destroy(&bar);
	assert_int_equal(a.errors + b.errors, 0);

	/* The books balance: installed - zapped = present. */
	struct kvm_mmu_stats s = t_stats(T.kvm);
	assert_int_equal(s.faults_fixed - s.zapped_leaves, s.cur_leaves[1]);
	assert_int_equal((uint64_t)zapped, s.zapped_leaves);
	/* Map everything once more and check it against the walker. */
	for (unsigned i = 0; i < NPAGES; i++)
		assert_true(kvm_tdp_page_fault(T.vcpu, (base + i) << 12, S2_ACC_WRITE) >= 0);
	check_all_mapped(base, hva);
	assert_int_equal(t_stats(T.kvm).cur_leaves[1], NPAGES);
}

/*
 * Tables a write side unlinks are freed at once while no walk without
 * mmu_lock is in flight (core/mmu.c, s2_acc_free_tables_write()); the only
 * such walk is the notifier's test_young, under RCU. An aging thread walks
 * the range with test_young over and over (its leaves aged first, so the
 * walk goes through every table) while this thread faults a page in each
 * of 16 4 KiB tables, clears Accessed, and zaps them one table at a time
 * (few enough per write-side hold to be freed at once). Both
 * ways of freeing must happen (the counts), the walks must never read a
 * freed table (AddressSanitizer: the hosted env's page cache is off there,
 * so a table goes back to the allocator; ThreadSanitizer likewise), and
 * every table page must come back. Mutation run: s2_lockless_begin() not
 * counting: heap-use-after-free under ASan (and all frees immediate).
 */
struct ager {
	const bool *stop;
	hva_t start, end;
	unsigned walks;
};

static void *ager_thread(void *arg)
{
	struct ager *g = arg;

	while (!__atomic_load_n(g->stop, __ATOMIC_ACQUIRE)) {
		(void)kvm_mmu_notifier_test_young(T.kvm, g->start, g->end);
		g->walks++;
	}
	return NULL;
}

static void test_young_races_table_frees(void **state)
{
	const gfn_t base = 0x200000; /* 8 GiB: its own 1 GiB region */
	const hva_t hva = HVA_BASE + (64ull << 20);
	const unsigned npages = 16 * 512; /* 16 leaf tables */
	bool stop = false;
	struct ager g = { &stop, hva, hva + (uint64_t)npages * 4096, 0 };
	pthread_t t;

	(void)state;
	T.h.host_level = 1; /* 4 KiB leaves: one table per 512 pages */
	t_slot(&T, 0, base, npages, hva, 0);
	assert_int_equal(pthread_create(&t, NULL, ager_thread, &g), 0);
	for (unsigned round = 0;
	     round < 100 || ((__atomic_load_n(&T.kvm->stat_freed_later, __ATOMIC_RELAXED) == 0 ||
			      __atomic_load_n(&T.kvm->stat_freed_now, __ATOMIC_RELAXED) == 0) &&
			     round < 20000);
	     round++) {
		for (unsigned k = round % 512; k < npages; k += 512)
			assert_true(kvm_tdp_page_fault(T.vcpu, (base + k) << 12, S2_ACC_READ) >= 0);
		assert_true(kvm_mmu_notifier_clear_young(T.kvm, g.start, g.end) >= 0);
		/* One table per zap: few enough to be freed at once. */
		for (unsigned k = 0; k < npages; k += 512)
			assert_int_equal(kvm_zap_gfn_range(T.kvm, base + k, base + k + 512), 1);
	}
	__atomic_store_n(&stop, true, __ATOMIC_RELEASE);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(g.walks > 0);
	assert_true(t_stats(T.kvm).tables_freed_now > 0);
	assert_true(t_stats(T.kvm).tables_freed_later > 0);
	s2_hosted_quiesce(&T.h);
	assert_int_equal(t_stats(T.kvm).cur_table_pages, 0);
}

/* ---- mmu_lock exclusion, deterministically ---- */

struct excl {
	struct kvm_vcpu *vcpu;
	gfn_t gfn;
	int done; /* the blocked side finished (atomic) */
	int ret;
};

static void *zap_thread(void *arg)
{
	struct excl *x = arg;

	x->ret = (int)kvm_zap_gfn_range(T.kvm, x->gfn, x->gfn + 1);
	__atomic_store_n(&x->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void *fault_thread(void *arg)
{
	struct excl *x = arg;

	x->ret = kvm_tdp_page_fault(x->vcpu, x->gfn << 12, S2_ACC_READ);
	__atomic_store_n(&x->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { 0, (long)ms * 1000000L };

	nanosleep(&ts, NULL);
}

/* A vcpu holding the read side of mmu_lock (its own flag) holds off a zap,
 * which runs as soon as the vcpu lets go; and a zap holding the write side
 * holds off a vcpu's fault. */
static void test_mmu_lock_excludes(void **state)
{
	struct excl x = { .vcpu = T.vcpu, .gfn = 0x40000 };
	struct s2_change_acc acc;
	pthread_t t;

	(void)state;
	t_slot(&T, 0, 0x40000, 16, HVA_BASE + 4096, 0);
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, 0x40000ull << 12, S2_ACC_READ), RET_PF_FIXED);

	s2_mmu_read_lock_vcpu(T.vcpu);
	assert_int_equal(pthread_create(&t, NULL, zap_thread, &x), 0);
	sleep_ms(150);
	assert_int_equal(__atomic_load_n(&x.done, __ATOMIC_SEQ_CST), 0);
	t_assert_maps(T.kvm, 0x40000ull << 12, HVA_BASE + 4096, 1, S2_PROT_R);
	s2_mmu_read_unlock_vcpu(T.vcpu);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(x.ret, 1);
	t_assert_unmapped(T.kvm, 0x40000ull << 12);

	x.done = 0;
	s2_acc_init(&acc);
	s2_mmu_write_lock(T.kvm);
	assert_int_equal(pthread_create(&t, NULL, fault_thread, &x), 0);
	sleep_ms(150);
	assert_int_equal(__atomic_load_n(&x.done, __ATOMIC_SEQ_CST), 0);
	t_assert_unmapped(T.kvm, 0x40000ull << 12);
	s2_mmu_write_unlock(T.kvm, &acc);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(x.ret, RET_PF_FIXED);
	t_assert_maps(T.kvm, 0x40000ull << 12, HVA_BASE + 4096, 1, S2_PROT_R);
}

/*
 * A flush returns only after every vcpu that was in guest mode has left it
 * (hole 2 of issue 10). The vcpu thread sees its kick late, marks that it
 * stopped using its TLB, then exits; the zap must not return before. Both
 * ways in: IN_GUEST (this flush kicks) and EXITING (an earlier request's
 * kick is still on its way, and this flush finds the vcpu already moved to
 * EXITING). Fails when the requester waits for nobody, or only for vcpus
 * whose kick it sent itself.
 */
struct late_vcpu {
	struct kvm_vcpu *vcpu;
	int kicked;  /* set by the env's kick */
	int stopped; /* the vcpu no longer uses its old translations */
	int entered;
};

static struct late_vcpu *late;

static void late_kick(void *ctx, struct kvm_vcpu *vcpu)
{
	(void)ctx;
	(void)vcpu;
	__atomic_store_n(&late->kicked, 1, __ATOMIC_SEQ_CST);
}

static void *late_vcpu_thread(void *arg)
{
	struct late_vcpu *l = arg;

	while (!kvm_vcpu_enter_guest(l->vcpu))
		kvm_check_request(l->vcpu, KVM_REQ_TLB_FLUSH);
	__atomic_store_n(&l->entered, 1, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&l->kicked, __ATOMIC_SEQ_CST))
		t_yield();
	sleep_ms(100); /* the IPI takes its time */
	__atomic_store_n(&l->stopped, 1, __ATOMIC_SEQ_CST);
	kvm_vcpu_exit_guest(l->vcpu);
	return NULL;
}

static void test_flush_waits_for_guest_exit(void **state)
{
	struct late_vcpu l = { 0 };
	pthread_t t;

	(void)state;
	late = &l;
	T.h.ops.kick = late_kick;
	assert_int_equal(kvm_vcpu_create(T.kvm, 1, &l.vcpu), 0);
	t_slot(&T, 0, 0x40000, 16, HVA_BASE + 4096, 0);
	for (int way = 0; way < 2; way++) {
		l.kicked = l.stopped = l.entered = 0;
		assert_int_equal(kvm_tdp_page_fault(T.vcpu, 0x40000ull << 12, S2_ACC_READ),
				 RET_PF_FIXED);
		assert_int_equal(pthread_create(&t, NULL, late_vcpu_thread, &l), 0);
		while (!__atomic_load_n(&l.entered, __ATOMIC_SEQ_CST))
			t_yield();
		if (way == 1) {
			/* A request that does not wait moves it to EXITING. */
			kvm_make_request(l.vcpu, KVM_REQ_DIRTY_RING_SOFT_FULL);
			assert_int_equal(kvm_vcpu_mode(l.vcpu), EXITING_GUEST_MODE);
		}
		assert_int_equal(kvm_zap_gfn_range(T.kvm, 0x40000, 0x40010), 1);
		assert_int_equal(__atomic_load_n(&l.stopped, __ATOMIC_SEQ_CST), 1);
		assert_int_equal(kvm_vcpu_mode(l.vcpu), OUTSIDE_GUEST_MODE);
		assert_int_equal(pthread_join(t, NULL), 0);
		assert_true(kvm_check_request(l.vcpu, KVM_REQ_TLB_FLUSH));
		kvm_check_request(l.vcpu, KVM_REQ_DIRTY_RING_SOFT_FULL);
	}
}

/*
 * A memslot added while an invalidation is in progress is covered by it
 * from the moment a fault can find the slot (hole 3 of issue 10): the host
 * may be changing the slot's hva range, so no fault may install a pfn from
 * it until the invalidation ends. One thread adds and deletes the slot
 * inside start/end over its whole hva range, another faults on it all the
 * while: every fault must retry (or find no slot), never map. Fails when
 * the slot is published before the in-progress range is widened.
 */
struct added_race {
	struct kvm_vcpu *vcpu;
	int stop;
	uint64_t fixed, tries;
};

static void *added_fault_thread(void *arg)
{
	struct added_race *a = arg;

	while (!__atomic_load_n(&a->stop, __ATOMIC_ACQUIRE)) {
		for (gfn_t g = 0; g < 4; g++) {
			int r = kvm_tdp_page_fault(a->vcpu, (0x80000ull + g) << 12, S2_ACC_READ);

			a->tries++;
			if (r == RET_PF_FIXED || r == RET_PF_SPURIOUS)
				a->fixed++;
		}
	}
	return NULL;
}

static void test_slot_added_during_invalidation(void **state)
{
	struct added_race a = { 0 };
	const hva_t hva = HVA_BASE + 0x100000;
	struct kvm_memory_slot s = {
		.id = 7, .base_gfn = 0x80000, .npages = 4, .userspace_addr = hva
	};
	pthread_t t;

	(void)state;
	assert_int_equal(kvm_vcpu_create(T.kvm, 1, &a.vcpu), 0);
	assert_int_equal(pthread_create(&t, NULL, added_fault_thread, &a), 0);
	/* 3000 cycles, or as many as fit in 1.5 s past the first 300: each
	 * add and delete waits a grace period, and liburcu-bp's waits sleep
	 * 10 ms while a reader (the faulting thread) is inside its section,
	 * which under TSan is most of the time (0.7 to 20 s for 3000). */
	uint64_t t0 = t_now_ns();

	for (int i = 0; i < 3000 && (i < 300 || t_now_ns() - t0 < 1500000000ull); i++) {
		assert_int_equal(
			kvm_mmu_notifier_invalidate_range_start(T.kvm, hva, hva + 0x4000, false),
			0);
		assert_int_equal(kvm_set_memslot(T.kvm, &s), 0);
		for (int k = 0; k < 16 && !(i & 1); k++)
			t_yield(); /* let the faults find the slot */
		assert_int_equal(kvm_delete_memslot(T.kvm, s.id), 0);
		assert_int_equal(
			kvm_mmu_notifier_invalidate_range_end(T.kvm, hva, hva + 0x4000, false), 0);
	}
	__atomic_store_n(&a.stop, 1, __ATOMIC_RELEASE);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(a.tries > 0);
	assert_int_equal(a.fixed, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_same_gfns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_different_gfns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_faults_race_zaps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_young_races_table_frees, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mmu_lock_excludes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_waits_for_guest_exit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slot_added_during_invalidation, setup,
						teardown),
	};

	if (!s2_fmt_supported(TEST_FMT)) {
		print_message("format " TEST_FMT_NAME " not built: skipped\n");
		return 0;
	}
	return cmocka_run_group_tests_name("generic mmu_mt [" TEST_FMT_NAME "]", tests, NULL, NULL);
}
