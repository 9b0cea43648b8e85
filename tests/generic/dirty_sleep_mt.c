// SPDX-License-Identifier: MIT
/*
 * The environment hooks that may sleep are never called under one of the
 * library's spinlocks (white box), compiled once per format (TEST_FMT).
 *
 * include/s2mmu/env.h lets gfn_to_pfn sleep and calls alloc_table "without
 * mmu_lock", and a real host's allocator and RCU wait sleep too; the
 * library's locks (slots_lock, mmu_lock, the dirty ring and write-track
 * locks, vcpus_lock) are spinlocks built on atomics, so none of these hooks
 * may run while one is held. The
 * hooks are wrapped: each wrapper checks the locks on the calling thread
 * (RCU callbacks run on liburcu's thread and free from there, which is
 * fine), counts its calls and calls the hosted default.
 *
 * Catches: the eager split's table pages (alloc_table, the page array's
 * zalloc) topped up under slots_lock; the collapse's gfn_to_pfn per 2 MiB
 * block under slots_lock; a memslot update allocating its array, waiting
 * for a grace period or freeing under slots_lock; write tracking allocating
 * or waiting under its lock.
 */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "core/kvm_internal.h"
#include "tests/generic/dirty_sim.h"
#include "tests/lib/testlib.h"

#ifndef TEST_FMT
#error "build with -DTEST_FMT=S2_FMT_..."
#endif

#define GB (1ull << 30)
#define HVA_BASE (0x7f0000000000ull) /* 1 GiB aligned */
#define BASE 0x40000ull		     /* 1 GiB aligned gfn */
#define NPAGES 0x400ull		     /* 4 MiB: two 2 MiB leaves */

enum mode { MODE_WP, MODE_HW };

enum hook {
	H_GFN_TO_PFN,
	H_RELEASE_PFN,
	H_ALLOC_TABLE,
	H_FREE_TABLE,
	H_ZALLOC,
	H_FREE,
	H_SYNC_RCU,
	H_CALL_RCU,
	H_NR
};

static const char *const hook_name[H_NR] = {
	"gfn_to_pfn", "release_pfn", "alloc_table",	"free_table",
	"zalloc",     "free",	     "synchronize_rcu", "call_rcu",
};

static struct tvm T;
static struct s2_env_ops orig; /* the hosted defaults the wrappers call */
static uint64_t calls[H_NR];   /* calls on the test's thread */
static uint64_t bad[H_NR];     /* of which with a library lock held */
static const char *bad_lock[H_NR];
static __thread bool test_thread; /* RCU callbacks run on another thread */
static __thread bool slow_host;	  /* gfn_to_pfn sleeps on this thread */
static struct kvm *watched;	  /* the VM whose locks are checked */

/* The name of a library lock held (by the test's thread: it is the only
 * one taking them here), or NULL. */
static const char *lock_held(void)
{
	struct kvm *kvm = watched;

	if (!kvm)
		return NULL;
	if (__atomic_load_n(&kvm->slots_lock.v, __ATOMIC_RELAXED))
		return "slots_lock";
	if (__atomic_load_n(&kvm->dirty.track_lock.v, __ATOMIC_RELAXED))
		return "dirty.track_lock";
	if (__atomic_load_n(&kvm->dirty.lock.v, __ATOMIC_RELAXED))
		return "dirty.lock";
	if (__atomic_load_n(&kvm->vcpus_lock.v, __ATOMIC_RELAXED))
		return "vcpus_lock";
	if (s2_mmu_lock_held(kvm))
		return "mmu_lock";
	return NULL;
}

/* Count a call of @h; never fail inside the library (a longjmp out of it
 * would leave its locks taken): the test checks the counts afterwards. */
static void note(enum hook h)
{
	const char *l;

	if (!test_thread)
		return;
	calls[h]++;
	l = lock_held();
	if (l) {
		bad[h]++;
		bad_lock[h] = l;
	}
}

static int w_gfn_to_pfn(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, bool write,
			struct s2_pfn_info *out)
{
	note(H_GFN_TO_PFN);
	if (slow_host)
		usleep(100); /* as a host that faults the page in */
	return orig.gfn_to_pfn(ctx, slot, gfn, write, out);
}

static void w_release_pfn(void *ctx, kvm_pfn_t pfn, bool dirty)
{
	note(H_RELEASE_PFN);
	if (orig.release_pfn)
		orig.release_pfn(ctx, pfn, dirty);
}

static void *w_alloc_table(void *ctx, size_t bytes, hpa_t *pa)
{
	note(H_ALLOC_TABLE);
	return orig.alloc_table(ctx, bytes, pa);
}

static void w_free_table(void *ctx, void *va, hpa_t pa, size_t bytes)
{
	note(H_FREE_TABLE);
	orig.free_table(ctx, va, pa, bytes);
}

static void *w_zalloc(void *ctx, size_t bytes)
{
	note(H_ZALLOC);
	return orig.zalloc(ctx, bytes);
}

static void w_free(void *ctx, void *p)
{
	note(H_FREE);
	orig.free(ctx, p);
}

static void w_synchronize_rcu(void *ctx)
{
	note(H_SYNC_RCU);
	orig.synchronize_rcu(ctx);
}

static int w_call_rcu(void *ctx, void (*fn)(void *arg), void *arg)
{
	note(H_CALL_RCU);
	return orig.call_rcu(ctx, fn, arg);
}

static void counts_reset(void)
{
	memset(calls, 0, sizeof(calls));
	memset(bad, 0, sizeof(bad));
}

/* No hook ran under a lock since the last reset (@what: the step). */
static void assert_no_sleep_under_lock(const char *what)
{
	for (int h = 0; h < H_NR; h++)
		if (bad[h])
			fail_msg("[%s] %s: %s called %llu of %llu times with %s held",
				 TEST_FMT_NAME, what, hook_name[h], (unsigned long long)bad[h],
				 (unsigned long long)calls[h], bad_lock[h]);
}

static void vm_fini(void)
{
	watched = NULL; /* kvm_destroy_vm frees what lock_held() reads */
	t_vm_fini(&T);
}

static int teardown(void **state)
{
	(void)state;
	if (T.kvm)
		vm_fini();
	return 0;
}

/* A VM and vcpu 0 in the hosted environment with the wrapped hooks,
 * logging in mode @m; false when the format cannot do @m. */
static bool vm_wrapped(enum mode m)
{
	struct kvm_vm_params p = t_default_params(TEST_FMT);

	if (m == MODE_HW && TEST_FMT == S2_FMT_ARM64_S2)
		p.fmt_flags |= S2_FMTF_HD;
	memset(&T, 0, sizeof(T));
	s2_hosted_init(&T.h);
	T.h.quiet = true;
	T.fmt = TEST_FMT;
	orig = T.h.ops;
	T.h.ops.gfn_to_pfn = w_gfn_to_pfn;
	T.h.ops.release_pfn = w_release_pfn;
	T.h.ops.alloc_table = w_alloc_table;
	T.h.ops.free_table = w_free_table;
	T.h.ops.zalloc = w_zalloc;
	T.h.ops.free = w_free;
	T.h.ops.synchronize_rcu = w_synchronize_rcu;
	T.h.ops.call_rcu = w_call_rcu;
	test_thread = true;
	p.env = &T.h.env;
	assert_int_equal(kvm_create_vm(&p, &T.kvm), 0);
	watched = T.kvm;
	assert_int_equal(kvm_vcpu_create(T.kvm, 0, &T.vcpu), 0);
	assert_int_equal(kvm_dirty_log_set_caps(T.kvm, m == MODE_WP ? KVM_DIRTY_LOG_WRPROTECT : 0),
			 0);
	if (kvm_dirty_log_hw(T.kvm) != (m == MODE_HW)) {
		vm_fini();
		return false;
	}
	counts_reset();
	return true;
}

static int fault(gfn_t gfn, unsigned acc)
{
	return kvm_tdp_page_fault(T.vcpu, gfn << 12, acc);
}

static struct ref_xlate walk(gfn_t gfn)
{
	struct ref_xlate x;

	ref_walk_kvm(T.kvm, gfn << 12, &x);
	return x;
}

static void set_log(unsigned id, bool on)
{
	assert_int_equal(kvm_set_memslot_flags(T.kvm, id, on ? KVM_MEM_LOG_DIRTY_PAGES : 0), 0);
}

/* A guest write to @gfn: the hardware's way if it may, else fault and retry. */
static void gwrite(gfn_t gfn)
{
	bool newly;

	for (int i = 0; i < 4; i++) {
		if (sim_write(T.kvm, gfn << 12, &newly))
			return;
		int r = fault(gfn, S2_ACC_WRITE);
		assert_true(r == RET_PF_FIXED || r == RET_PF_SPURIOUS);
	}
	fail_msg("[%s] gfn %#llx: write never proceeds", TEST_FMT_NAME, (unsigned long long)gfn);
}

/* Starting and stopping dirty logging on a slot of 2 MiB leaves: the eager
 * split tops its table pages up and the collapse asks the host once per
 * 2 MiB block, both with no lock held; the end states are those of
 * test_eager_split_exact and test_collapse_restores_huge_leaves. */
static void test_start_stop_logging_sleeps_unlocked(void **state)
{
	(void)state;
	for (enum mode m = MODE_WP; m <= MODE_HW; m++) {
		if (!vm_wrapped(m))
			continue;
		T.h.host_level = 2;
		t_slot(&T, 0, BASE, NPAGES, HVA_BASE, 0);
		assert_int_equal(fault(BASE + 5, S2_ACC_WRITE), RET_PF_FIXED);
		assert_int_equal(fault(BASE + 0x200, S2_ACC_WRITE), RET_PF_FIXED);
		assert_int_equal(t_stats(T.kvm).cur_leaves[2], 2);
		assert_no_sleep_under_lock("adding a slot, faults");

		/* Start: split (with eager split) and protect. */
		counts_reset();
		set_log(0, true);
		assert_no_sleep_under_lock("start logging");
		assert_true(calls[H_ZALLOC] > 0); /* the bitmap, the memslot array */
		if (S2_ENABLED(CONFIG_S2_EAGER_SPLIT)) {
			assert_true(calls[H_ALLOC_TABLE] >= 2); /* one table per 2 MiB leaf */
			assert_int_equal(t_stats(T.kvm).cur_leaves[2], 0);
		}
		for (gfn_t g = BASE; g < BASE + NPAGES; g += 0x31) {
			struct ref_xlate x = walk(g);

			assert_int_equal(x.fault, 0);
			assert_int_equal(x.hpa, HVA_BASE + ((g - BASE) << 12));
			if (S2_ENABLED(CONFIG_S2_EAGER_SPLIT))
				assert_int_equal(x.level, 1);
			/* A write would be seen: no W, or (hardware dirty state,
			 * 4 KiB leaves) clean. */
			assert_true(!(x.perm & S2_PROT_W) ||
				    (m == MODE_HW && x.level == 1 && !x.dirty));
		}
		gwrite(BASE + 0x210);
		uint64_t bm[NPAGES / 64] = { 0 };
		counts_reset();
		assert_int_equal(kvm_get_dirty_log(T.kvm, 0, bm), 1);
		assert_int_equal(bm[0x210 / 64], 1ull << (0x210 % 64));
		assert_no_sleep_under_lock("get dirty log");

		/* Stop: collapse, asking the host once per 2 MiB block. */
		counts_reset();
		set_log(0, false);
		assert_no_sleep_under_lock("stop logging");
		assert_int_equal(calls[H_GFN_TO_PFN], NPAGES / 512);
		assert_true(calls[H_FREE] > 0); /* the bitmap, the old memslot array */
		assert_true(calls[H_SYNC_RCU] > 0);
		if (S2_ENABLED(CONFIG_S2_EAGER_SPLIT)) {
			s2_hosted_quiesce(&T.h);
			struct kvm_mmu_stats st = t_stats(T.kvm);
			assert_int_equal(st.cur_leaves[2], 2);
			assert_int_equal(st.cur_leaves[1], 0);
			assert_int_equal(walk(BASE + 0x3ff).level, 2);
			assert_int_equal(walk(BASE + 0x3ff).hpa, HVA_BASE + (0x3ffull << 12));
		}
		vm_fini();
	}
}

/* The other memslot updates and dirty-log calls: adding (with logging),
 * get, moving and becoming read-only (zaps whose tables go to RCU), write
 * tracking, deleting. */
static void test_updates_sleep_unlocked(void **state)
{
	uint64_t bm[NPAGES / 64];

	(void)state;
	if (!vm_wrapped(MODE_WP))
		return;
	T.h.host_level = 2;
	t_slot(&T, 0, BASE, NPAGES, HVA_BASE, 0);
	t_slot(&T, 1, BASE + NPAGES, NPAGES, HVA_BASE + GB, KVM_MEM_LOG_DIRTY_PAGES);
	for (gfn_t g = BASE; g < BASE + 2 * NPAGES; g += 0x200)
		assert_int_equal(fault(g, S2_ACC_WRITE), RET_PF_FIXED);
	assert_int_equal(kvm_get_dirty_log(T.kvm, 1, bm), 1);
	assert_int_equal(kvm_move_memslot(T.kvm, 0, BASE + 0x10000), 0);
	assert_int_equal(kvm_set_memslot_flags(T.kvm, 0, KVM_MEM_READONLY), 0);
	assert_int_equal(kvm_set_memslot_flags(T.kvm, 0, 0), 0);
	assert_int_equal(fault(BASE + 0x10000, S2_ACC_WRITE), RET_PF_FIXED);
	assert_int_equal(kvm_write_track_add_gfn(T.kvm, BASE + 0x10001), 0);
	assert_int_equal(kvm_write_track_add_gfn(T.kvm, BASE + 0x10002), 0);
	assert_int_equal(kvm_write_track_remove_gfn(T.kvm, BASE + 0x10001), 0);
	assert_int_equal(kvm_write_track_remove_gfn(T.kvm, BASE + 0x10002), 0);
	set_log(1, false);
	assert_int_equal(kvm_delete_memslot(T.kvm, 0), 0);
	assert_int_equal(kvm_delete_memslot(T.kvm, 1), 0);
	assert_no_sleep_under_lock("memslot updates");
	assert_true(calls[H_ZALLOC] > 0 && calls[H_FREE] > 0 && calls[H_SYNC_RCU] > 0);
	assert_true(calls[H_CALL_RCU] + calls[H_SYNC_RCU] > 0);
	t_assert_unmapped(T.kvm, (BASE + 0x10000) << 12);
	assert_int_equal(kvm_nr_memslots(T.kvm), 0);
}

/* Private/shared conversion (kvm_vm_set_mem_attributes, serialised by
 * slots_lock): the new attribute array is allocated, and the tables the
 * conversion's zap unlinks are freed, with no lock held. */
static void test_mem_attributes_sleep_unlocked(void **state)
{
	(void)state;
	if (!vm_wrapped(MODE_WP))
		return;
	T.h.host_level = 1; /* 4 KiB leaves: the zap unlinks their tables */
	t_slot(&T, 0, BASE, NPAGES, HVA_BASE, 0);
	for (gfn_t g = BASE; g < BASE + NPAGES; g++)
		assert_int_equal(fault(g, S2_ACC_WRITE), RET_PF_FIXED);
	counts_reset();
	assert_int_equal(
		kvm_vm_set_mem_attributes(T.kvm, BASE, BASE + NPAGES, KVM_MEMORY_ATTRIBUTE_PRIVATE),
		0);
	/* A hole in the middle: the array grows by a range. */
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, BASE + 0x100, BASE + 0x180, 0), 0);
	assert_no_sleep_under_lock("memory attributes");
	assert_true(calls[H_ZALLOC] >= 2);
	assert_true(calls[H_CALL_RCU] + calls[H_SYNC_RCU] > 0);
	assert_int_equal(kvm_get_memory_attributes(T.kvm, BASE), KVM_MEMORY_ATTRIBUTE_PRIVATE);
	assert_int_equal(kvm_get_memory_attributes(T.kvm, BASE + 0x100), 0);
	assert_int_equal(kvm_get_memory_attributes(T.kvm, BASE + 0x180),
			 KVM_MEMORY_ATTRIBUTE_PRIVATE);
	t_assert_unmapped(T.kvm, BASE << 12);
	t_assert_unmapped(T.kvm, (BASE + NPAGES - 1) << 12);
	s2_hosted_quiesce(&T.h);
	assert_int_equal(t_stats(T.kvm).cur_table_pages, 0);
}

/* ---- the same updates from several threads ---- */

/*
 * Now that a start's split and protect, and a stop's collapse, run after
 * slots_lock is dropped, other updates come in between. Each round, two
 * updaters enable logging on slot 0 at once (one starts it, the other's
 * update keeps it logging) and each checks, when its call returns, that
 * every leaf of the slot is a write-protected 4 KiB leaf; then one stops it
 * (collapse) while the other enables it again (before, after or during the
 * collapse), moves slot 1 away and back, toggles its logging and deletes
 * and re-adds slot 2; when both are done, if slot 0 logs, its leaves are
 * checked again. A vcpu reads slot 0 and writes slots 1 and 2 all along.
 * At the end every mapping is the one its slot says, nothing is bugged,
 * and nothing leaked (t_vm_fini).
 *
 * Catches: an update that keeps slot 0 logging returning while the start
 * of another is still protecting it; a collapse that does not see the slot
 * log again (huge writable leaves in a logging slot); a zap of a moved or
 * deleted slot not done before the next update places a slot there.
 */
#define MT_ROUNDS 150
#define S1_BASE (BASE + 0x40000ull) /* the next GiB */
#define S1_ALT (BASE + 0x80000ull)
#define S2_BASE (BASE + 0xc0000ull)

static struct {
	pthread_barrier_t bar;
	int stop;
	uint64_t bad_leaves; /* a leaf of slot 0 not protected after enable */
	uint64_t bad_calls;  /* an update or fault that failed */
	uint64_t faults;
} MT;

static void mt_bad(uint64_t *ctr)
{
	__atomic_fetch_add(ctr, 1, __ATOMIC_RELAXED);
}

/* Every leaf of slot 0 is a 4 KiB leaf without W (reference walker, under
 * RCU: tables of other slots may be freed meanwhile). */
static void mt_check_slot0(void)
{
	for (gfn_t g = BASE; g < BASE + NPAGES; g++) {
		struct ref_xlate x;

		orig.rcu_read_lock(&T.h);
		ref_walk_kvm(T.kvm, g << 12, &x);
		orig.rcu_read_unlock(&T.h);
		if (x.fault)
			continue;
		if ((S2_ENABLED(CONFIG_S2_EAGER_SPLIT) && x.level != 1) || (x.perm & S2_PROT_W) ||
		    x.hpa != HVA_BASE + ((g - BASE) << 12))
			mt_bad(&MT.bad_leaves);
	}
}

static void mt_call(int r)
{
	if (r)
		mt_bad(&MT.bad_calls);
}

static void *mt_updater(void *arg)
{
	bool first = arg != NULL;

	/* The stop's collapse asks the host slowly: the other updater's
	 * start gets in between, and done, before the collapse runs. */
	slow_host = first;
	for (int i = 0; i < MT_ROUNDS; i++) {
		pthread_barrier_wait(&MT.bar);
		mt_call(kvm_set_memslot_flags(T.kvm, 0, KVM_MEM_LOG_DIRTY_PAGES));
		mt_check_slot0();
		pthread_barrier_wait(&MT.bar);
		if (first) {
			mt_call(kvm_set_memslot_flags(T.kvm, 0, 0));
		} else {
			/* Before or after the other's stop, or during its
			 * collapse. */
			mt_call(kvm_set_memslot_flags(T.kvm, 0, KVM_MEM_LOG_DIRTY_PAGES));
			struct kvm_memory_slot s2 = { .id = 2,
						      .base_gfn = S2_BASE,
						      .npages = NPAGES,
						      .userspace_addr = HVA_BASE + 3 * GB };

			mt_call(kvm_move_memslot(T.kvm, 1, S1_ALT));
			mt_call(kvm_set_memslot_flags(T.kvm, 1,
						      (i & 1) ? KVM_MEM_LOG_DIRTY_PAGES : 0));
			mt_call(kvm_move_memslot(T.kvm, 1, S1_BASE));
			mt_call(kvm_delete_memslot(T.kvm, 2));
			mt_call(kvm_set_memslot(T.kvm, &s2));
		}
		pthread_barrier_wait(&MT.bar);
		if (!first) {
			struct kvm_memory_slot s0;

			mt_call(kvm_id_to_memslot(T.kvm, 0, &s0));
			if (s0.flags & KVM_MEM_LOG_DIRTY_PAGES)
				mt_check_slot0();
		}
	}
	return NULL;
}

static void *mt_vcpu(void *arg)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;

	(void)arg;
	while (!__atomic_load_n(&MT.stop, __ATOMIC_ACQUIRE)) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		gfn_t off = x % NPAGES;
		gfn_t gfn = (x >> 32) % 3 == 0 ? BASE + off :
			    (x >> 32) % 3 == 1 ? S1_BASE + off :
						 S2_BASE + off;
		int r = fault(gfn, gfn < S1_BASE ? S2_ACC_READ : S2_ACC_WRITE);

		/* MMIO: slot 1 or 2 is away at this moment. */
		if (r < 0)
			mt_bad(&MT.bad_calls);
		MT.faults++;
	}
	return NULL;
}

/* Every present leaf in [base, base + n) maps hva + (gfn - base) pages. */
static void assert_maps_slot(gfn_t base, uint64_t n, hva_t hva)
{
	for (gfn_t g = base; g < base + n; g++) {
		struct ref_xlate x = walk(g);

		if (!x.fault)
			assert_int_equal(x.hpa, hva + ((g - base) << 12));
	}
}

static void test_concurrent_updates(void **state)
{
	pthread_t a, b, v;

	(void)state;
	if (!vm_wrapped(MODE_WP))
		return;
	test_thread = false; /* other threads hold the locks meanwhile */
	memset(&MT, 0, sizeof(MT));
	T.h.host_level = 2;
	t_slot(&T, 0, BASE, NPAGES, HVA_BASE, 0);
	t_slot(&T, 1, S1_BASE, NPAGES, HVA_BASE + 2 * GB, 0);
	t_slot(&T, 2, S2_BASE, NPAGES, HVA_BASE + 3 * GB, 0);
	pthread_barrier_init(&MT.bar, NULL, 2);
	assert_int_equal(pthread_create(&v, NULL, mt_vcpu, NULL), 0);
	assert_int_equal(pthread_create(&a, NULL, mt_updater, &MT), 0);
	assert_int_equal(pthread_create(&b, NULL, mt_updater, NULL), 0);
	assert_int_equal(pthread_join(a, NULL), 0);
	assert_int_equal(pthread_join(b, NULL), 0);
	__atomic_store_n(&MT.stop, 1, __ATOMIC_RELEASE);
	assert_int_equal(pthread_join(v, NULL), 0);
	pthread_barrier_destroy(&MT.bar);
	test_thread = true;

	assert_int_equal(MT.bad_calls, 0);
	assert_int_equal(MT.bad_leaves, 0);
	assert_true(MT.faults > 0);
	assert_false(kvm_is_bugged(T.kvm));
	assert_int_equal(kvm_nr_memslots(T.kvm), 3);
	assert_maps_slot(BASE, NPAGES, HVA_BASE);
	assert_maps_slot(S1_BASE, NPAGES, HVA_BASE + 2 * GB);
	assert_maps_slot(S2_BASE, NPAGES, HVA_BASE + 3 * GB);
	for (gfn_t g = S1_ALT; g < S1_ALT + NPAGES; g += 0x40)
		t_assert_unmapped(T.kvm, g << 12);
	vm_fini();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_start_stop_logging_sleeps_unlocked, teardown),
		cmocka_unit_test_teardown(test_updates_sleep_unlocked, teardown),
		cmocka_unit_test_teardown(test_mem_attributes_sleep_unlocked, teardown),
		cmocka_unit_test_teardown(test_concurrent_updates, teardown),
	};

	if (!s2_fmt_supported(TEST_FMT)) {
		print_message("format " TEST_FMT_NAME " not built: skipped\n");
		return 0;
	}
	return cmocka_run_group_tests_name("generic dirty_sleep [" TEST_FMT_NAME "]", tests, NULL,
					   NULL);
}
