// SPDX-License-Identifier: MIT
/*
 * Roots under concurrency, per format (also built with ThreadSanitizer):
 * vcpu threads run the embedder's loop (entry actions, enter, exit, fault)
 * while the main thread fast-zaps, and a second thread zaps ranges. The
 * reference counts survive the race: no vcpu is in guest mode on a root
 * whose page went back, every old root is freed once every vcpu has
 * reloaded, and every page returns (t_vm_fini).
 *
 * Mutations run (each made this test fail; then restored):
 *  - core/roots.c: kvm_mmu_zap_all_fast tearing the old roots down before
 *    it raises MMU_RELOAD (the in-guest check below: a vcpu still in guest
 *    mode on a root being torn down);
 *  - core/roots.c: s2_vcpu_switch not dropping the extra reference when
 *    the current root is the one it runs on (roots_freed, pages leaked);
 *  - core/memslot.c: a removal's range not made an invalidation in
 *    progress while its zap yields (test_faults_race_memslot_moves: a leaf
 *    left in the range the slot moved from).
 */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "core/kvm_internal.h"
#include "tests/lib/testlib.h"

#ifndef TEST_FMT
#error "build with -DTEST_FMT=S2_FMT_..."
#endif

#define HVA_BASE (0x7f0000000000ull)
#define SLOT_GFN 0x100000ull
#define NPAGES 1024
#define NVCPUS 3
#define ZAPS 20

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

struct vcpu_thread {
	struct kvm_vcpu *vcpu;
	const bool *stop;
	unsigned entries, loads, faults_fixed, retries, bad;
};

/* Counter @i of @n, one per vcpu thread, @stride bytes apart. */
static unsigned counter(const unsigned *first, size_t stride, unsigned i)
{
	return __atomic_load_n((const unsigned *)((const char *)first + i * stride),
			       __ATOMIC_ACQUIRE);
}

/*
 * Wait until each of @n counters has moved by @by: the vcpus ran between
 * two operations of the main thread. Waiting on progress, not on a count
 * of sched_yield() calls: with more busy threads than CPUs each yield can
 * hand a vcpu a whole time slice, and a fixed count of them took from 0.2
 * to 18 s a run.
 */
static void wait_progress(const unsigned *first, size_t stride, unsigned n, unsigned by)
{
	unsigned start[NVCPUS];

	for (unsigned i = 0; i < n; i++)
		start[i] = counter(first, stride, i);
	for (unsigned i = 0; i < n; i++)
		while (counter(first, stride, i) - start[i] < by)
			t_yield();
}

static void *vcpu_loop(void *arg)
{
	struct vcpu_thread *t = arg;
	uint64_t seed = 0x9e3779b97f4a7c15ull * (kvm_vcpu_id(t->vcpu) + 1);

	while (!__atomic_load_n(t->stop, __ATOMIC_ACQUIRE)) {
		struct kvm_entry_actions a;

		if (kvm_vcpu_entry_actions(t->vcpu, &a)) {
			t->bad++;
			continue;
		}
		for (unsigned i = 0; i < a.nr; i++)
			t->loads += a.a[i].kind == KVM_ENTRY_LOAD_ROOT;
		if (!kvm_vcpu_enter_guest(t->vcpu))
			continue;
		/*
		 * In guest mode ("running" a while): the root this vcpu runs
		 * on keeps its page (a reference), and its tables are not
		 * torn down; an invalidated root's teardown waits until the
		 * vcpu has left guest mode (it is still marked for teardown).
		 */
		const struct s2_root *r = __atomic_load_n(&t->vcpu->root, __ATOMIC_ACQUIRE);

		for (unsigned k = 0; k < 8; k++) {
			uint32_t st = __atomic_load_n(&r->state, __ATOMIC_ACQUIRE);

			if (st != S2_ROOT_VALID &&
			    (st != S2_ROOT_INVALID ||
			     !__atomic_load_n(&r->teardown, __ATOMIC_ACQUIRE)))
				t->bad++;
			if (!__atomic_load_n(&r->refs, __ATOMIC_ACQUIRE))
				t->bad++;
			t_yield();
		}
		__atomic_store_n(&t->entries, t->entries + 1, __ATOMIC_RELEASE);
		kvm_vcpu_exit_guest(t->vcpu);
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		int ret = kvm_tdp_page_fault(t->vcpu, (SLOT_GFN + (seed >> 33) % NPAGES) << 12,
					     S2_ACC_READ | S2_ACC_WRITE);
		if (ret == RET_PF_FIXED)
			t->faults_fixed++;
		else if (ret == RET_PF_RETRY)
			t->retries++;
		else if (ret != RET_PF_SPURIOUS)
			t->bad++;
	}
	return NULL;
}

struct zapper {
	const bool *stop;
	unsigned zaps;
};

static void *range_zapper(void *arg)
{
	struct zapper *z = arg;

	while (!__atomic_load_n(z->stop, __ATOMIC_ACQUIRE)) {
		if (kvm_zap_gfn_range(T.kvm, SLOT_GFN + 100, SLOT_GFN + 700) < 0)
			break;
		z->zaps++;
		t_yield();
	}
	return NULL;
}

/* vcpus racing fast zaps and ranged zaps: refcounts hold, old roots go. */
static void test_vcpus_race_fast_zap(void **state)
{
	struct vcpu_thread vt[NVCPUS] = { 0 };
	pthread_t th[NVCPUS], zt;
	struct zapper z = { 0 };
	bool stop = false;

	(void)state;
	T.h.host_level = 1;
	t_slot(&T, 0, SLOT_GFN, NPAGES, HVA_BASE, 0);
	T.kvm->yield_batch = 512;
	vt[0].vcpu = T.vcpu;
	for (unsigned i = 1; i < NVCPUS; i++)
		assert_int_equal(kvm_vcpu_create(T.kvm, i, &vt[i].vcpu), 0);
	/* Every vcpu loads through the library before the first fast zap. */
	for (unsigned i = 0; i < NVCPUS; i++) {
		struct kvm_entry_actions a;

		assert_int_equal(kvm_vcpu_entry_actions(vt[i].vcpu, &a), 0);
		vt[i].stop = &stop;
	}
	z.stop = &stop;
	for (unsigned i = 0; i < NVCPUS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, vcpu_loop, &vt[i]), 0);
	assert_int_equal(pthread_create(&zt, NULL, range_zapper, &z), 0);
	/* Every vcpu in its loop before the first fast zap, however the
	 * threads are scheduled (a loaded machine may start one late). */
	for (unsigned i = 0; i < NVCPUS; i++)
		while (!__atomic_load_n(&vt[i].entries, __ATOMIC_ACQUIRE))
			t_yield();
	for (unsigned n = 0; n < ZAPS; n++) {
		wait_progress(&vt[0].entries, sizeof(vt[0]), NVCPUS, 4);
		assert_int_equal(kvm_mmu_zap_all_fast(T.kvm), 0);
	}
	__atomic_store_n(&stop, true, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < NVCPUS; i++)
		pthread_join(th[i], NULL);
	pthread_join(zt, NULL);
	/* One more entry each: no vcpu stays on an obsolete root. */
	for (unsigned i = 0; i < NVCPUS; i++) {
		struct kvm_entry_actions a;

		assert_int_equal(kvm_vcpu_entry_actions(vt[i].vcpu, &a), 0);
		assert_int_equal(kvm_vcpu_root_hpa(vt[i].vcpu), kvm_mmu_root_hpa(T.kvm));
		assert_int_equal(vt[i].bad, 0);
		assert_true(vt[i].entries > 0);
	}
	struct kvm_mmu_stats s = t_stats(T.kvm);
	assert_int_equal(s.fast_zaps, ZAPS);
	assert_int_equal(s.roots_freed, ZAPS);
	assert_int_equal(s.cur_roots, 1);
	assert_false(kvm_is_bugged(T.kvm));
}

#define MOVE_GFN (SLOT_GFN + 0x10000)
#define MOVES 24

struct mover_vcpu {
	struct kvm_vcpu *vcpu;
	const bool *stop;
	unsigned rounds, bad;
};

/* The embedder's loop, faulting at both places the slot moves between. */
static void *mover_vcpu_loop(void *arg)
{
	struct mover_vcpu *t = arg;
	uint64_t seed = 0x9e3779b97f4a7c15ull * (kvm_vcpu_id(t->vcpu) + 3);

	while (!__atomic_load_n(t->stop, __ATOMIC_ACQUIRE)) {
		struct kvm_entry_actions a;

		if (kvm_vcpu_entry_actions(t->vcpu, &a)) {
			t->bad++;
			continue;
		}
		if (!kvm_vcpu_enter_guest(t->vcpu))
			continue;
		kvm_vcpu_exit_guest(t->vcpu);
		for (unsigned k = 0; k < 16; k++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			gfn_t g = ((seed >> 63) ? MOVE_GFN : SLOT_GFN) + (seed >> 33) % NPAGES;
			int ret = kvm_tdp_page_fault(t->vcpu, g << 12, S2_ACC_READ);

			if (ret != RET_PF_FIXED && ret != RET_PF_RETRY && ret != RET_PF_SPURIOUS &&
			    ret != RET_PF_EMULATE_MMIO)
				t->bad++;
		}
		__atomic_store_n(&t->rounds, t->rounds + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static int count_leaf(void *arg, gfn_t gfn, const struct s2_mapping *m)
{
	(void)gfn;
	(void)m;
	++*(uint64_t *)arg;
	return 0;
}

/*
 * Memslot moves that yield mmu_lock while vcpus fault on the moving slot
 * (and on where it goes), in place and by the fast zap in turn: once a
 * move returns, nothing maps the range the slot left (a fault that got
 * the lock during a yield and mapped it behind the zap's cursor would
 * leave a leaf there), and every leaf of the slot maps its hva.
 */
static void test_faults_race_memslot_moves(void **state)
{
	struct mover_vcpu vt[NVCPUS] = { 0 };
	pthread_t th[NVCPUS];
	bool stop = false;

	(void)state;
	T.h.host_level = 1;
	t_slot(&T, 0, SLOT_GFN, NPAGES, HVA_BASE, 0);
	T.kvm->yield_batch = 64;
	vt[0].vcpu = T.vcpu;
	for (unsigned i = 1; i < NVCPUS; i++)
		assert_int_equal(kvm_vcpu_create(T.kvm, i, &vt[i].vcpu), 0);
	for (unsigned i = 0; i < NVCPUS; i++) {
		struct kvm_entry_actions a;

		assert_int_equal(kvm_vcpu_entry_actions(vt[i].vcpu, &a), 0);
		vt[i].stop = &stop;
	}
	for (gfn_t g = SLOT_GFN; g < SLOT_GFN + NPAGES; g++)
		assert_int_equal(kvm_tdp_page_fault(T.vcpu, g << 12, S2_ACC_READ), RET_PF_FIXED);
	for (unsigned i = 0; i < NVCPUS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, mover_vcpu_loop, &vt[i]), 0);
	for (unsigned i = 0; i < NVCPUS; i++)
		while (!__atomic_load_n(&vt[i].rounds, __ATOMIC_ACQUIRE))
			t_yield();
	for (unsigned n = 0; n < MOVES; n++) {
		gfn_t from = n & 1 ? MOVE_GFN : SLOT_GFN, to = n & 1 ? SLOT_GFN : MOVE_GFN;
		uint64_t left = 0;

		/* Every other pair of moves may take the fast zap. */
		T.kvm->fast_zap_min = n & 2 ? 1 : ~0ull;
		wait_progress(&vt[0].rounds, sizeof(vt[0]), NVCPUS, 8);
		assert_int_equal(kvm_move_memslot(T.kvm, 0, to), 0);
		assert_int_equal(
			kvm_mmu_for_each_leaf(T.kvm, from, from + NPAGES, count_leaf, &left), 0);
		assert_int_equal(left, 0);
		for (gfn_t g = to; g < to + NPAGES; g += 13) {
			struct s2_mapping m;

			assert_int_equal(kvm_mmu_lookup(T.kvm, g << 12, &m), 0);
			if (m.present)
				assert_int_equal(m.hpa, HVA_BASE + ((g - to) << 12));
		}
	}
	__atomic_store_n(&stop, true, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < NVCPUS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(vt[i].bad, 0);
	}
	struct kvm_mmu_stats s = t_stats(T.kvm);
	assert_true(s.yields > 0);
	assert_false(kvm_is_bugged(T.kvm));
	if (getenv("ROOTS_VERBOSE"))
		print_message("%u moves: %" PRIu64 " fast zaps, %" PRIu64 " yields\n", MOVES,
			      s.fast_zaps, s.yields);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_vcpus_race_fast_zap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_faults_race_memslot_moves, setup, teardown),
	};

	return cmocka_run_group_tests_name(s2_fmt_name(TEST_FMT), tests, NULL, NULL);
}
