// SPDX-License-Identifier: MIT
/*
 * Aging a large range takes the write side of mmu_lock and clears Accessed
 * with plain stores where hardware has nothing left to write in a leaf
 * (docs/rules.md "Aging"). This pins the other half: a writable clean leaf
 * may get its Dirty flag from hardware at any moment, and aging must not
 * lose it. A thread plays the CPU (tests/generic/dirty_sim.h: a guest write
 * sets Dirty with a locked update) over every page in order while the main
 * thread ages the whole range again and again; every page the CPU wrote
 * must read dirty afterwards. Also under ThreadSanitizer.
 *
 * The same holds for dirty logging's write-protection (core/dirty_tmpl.h
 * protect_leaf(), also a plain store only where hw_quiet() says so): a slot
 * starts logging by write-protection while the CPU writes.
 *
 * The third test pins that such aging yields the lock between chunks to
 * waiters (and only to them); the fourth, that a zap (plain stores for
 * leaves hardware is done with) loses no write to a slot logging through
 * the Dirty flags.
 *
 * Mutations seen to fail here (each within a few hundred rounds, on every
 * format it runs on): the age visitor storing plainly under the write side
 * whatever the leaf (age_quiet() always true); protect_leaf() doing so
 * (hw_quiet() always true there); zap_table_locked() storing plainly
 * whatever the leaf, or taking its quick path (no exchange, no record) in a
 * VM that logs through the Dirty flags (in round 0: the zap waits for the
 * CPU's first writes); kvm_age_gfn() never yielding, or yielding with nobody
 * waiting.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/kvm_internal.h"
#include "tests/generic/dirty_sim.h"
#include "tests/lib/testlib.h"

#ifndef TEST_FMT
#error "build with -DTEST_FMT=S2_FMT_..."
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ROUNDS 60
#else
#define ROUNDS 1000
#endif
#define PAGES 2048 /* 8 MiB: past S2_MN_LARGE_BYTES, so the write side */
#define GFN0 0x40000ull
#define HVA0 0x7f0040000000ull

struct cpu {
	struct kvm *kvm;
	uint32_t go;
	bool down;     /* write from the last page down, to meet a forward walk */
	uint32_t done; /* pages written so far */
	bool written[PAGES];
};

static void *cpu_thread(void *arg)
{
	struct cpu *c = arg;
	const struct s2_env *env = c->kvm->env;

	while (!__atomic_load_n(&c->go, __ATOMIC_ACQUIRE))
		;
	for (unsigned k = 0; k < PAGES; k++) {
		unsigned i = c->down ? PAGES - 1 - k : k;
		bool newly;

		/* A hardware walk ends before the zap's flush returns; the
		 * simulated one reads tables under RCU, so none is freed under it. */
		env->ops->rcu_read_lock(env->ctx);
		c->written[i] = sim_write(c->kvm, gfn_to_gpa(GFN0 + i), &newly);
		env->ops->rcu_read_unlock(env->ctx);
		__atomic_store_n(&c->done, k + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* Fresh writable clean leaves for the whole slot: zap, then read faults. */
static void fresh_clean_leaves(struct tvm *t, uint64_t dbit)
{
	assert_int_equal(
		kvm_mmu_notifier_invalidate_range_start(t->kvm, HVA0, HVA0 + PAGES * 4096ull, true),
		0);
	assert_int_equal(
		kvm_mmu_notifier_invalidate_range_end(t->kvm, HVA0, HVA0 + PAGES * 4096ull, true),
		0);
	for (unsigned i = 0; i < PAGES; i++) {
		int level;
		uint64_t *e;

		assert_int_equal(kvm_tdp_page_fault(t->vcpu, gfn_to_gpa(GFN0 + i), S2_ACC_READ),
				 RET_PF_FIXED);
		e = sim_leaf_ptr(t->kvm, gfn_to_gpa(GFN0 + i), &level);
		assert_non_null(e);
		assert_true(sim_writable(t->kvm, *e));
		assert_false(*e & dbit);
	}
}

/* Pages the CPU wrote whose leaf no longer reads dirty (0 when none lost). */
static unsigned count_lost(struct tvm *t, const struct cpu *c, uint64_t dbit)
{
	unsigned lost = 0;

	for (unsigned i = 0; i < PAGES; i++) {
		int level;
		uint64_t *e = sim_leaf_ptr(t->kvm, gfn_to_gpa(GFN0 + i), &level);

		assert_non_null(e);
		if (c->written[i] && !(__atomic_load_n(e, __ATOMIC_RELAXED) & dbit))
			lost++;
	}
	return lost;
}

static void vm_init(struct tvm *t, uint64_t *dbit)
{
	struct kvm_vm_params p = t_default_params(TEST_FMT);

	p.max_leaf_level = 1;
	if (TEST_FMT == S2_FMT_ARM64_S2)
		p.fmt_flags |= S2_FMTF_HD;
	t_vm_init(t, TEST_FMT, &p);
	*dbit = sim_dirty_bit(t->kvm);
	assert_true(*dbit != 0);
	t_slot(t, 0, GFN0, PAGES, HVA0, 0);
}

/* Hardware-set Dirty survives aging under the write side, every round. */
static void test_age_keeps_hardware_dirty(void **state)
{
	uint64_t dbit;
	struct tvm t;
	unsigned lost = 0;

	(void)state;
	vm_init(&t, &dbit);
	for (unsigned round = 0; round < ROUNDS && !lost; round++) {
		struct cpu c = { .kvm = t.kvm };
		unsigned written = 0;
		pthread_t th;
		long young = 0;

		fresh_clean_leaves(&t, dbit);
		assert_int_equal(pthread_create(&th, NULL, cpu_thread, &c), 0);
		__atomic_store_n(&c.go, 1, __ATOMIC_RELEASE);
		for (unsigned k = 0; k < 4; k++) {
			long r = kvm_mmu_notifier_clear_young(t.kvm, HVA0, HVA0 + PAGES * 4096ull);

			assert_true(r >= 0);
			young += r;
		}
		assert_int_equal(pthread_join(th, NULL), 0);
		assert_true(young >= PAGES); /* the first pass found every page young */
		for (unsigned i = 0; i < PAGES; i++)
			written += c.written[i];
		assert_int_equal(written, PAGES); /* aging never write-protects */
		lost = count_lost(&t, &c, dbit);
		if (lost)
			print_error("%s: aging, round %u: %u hardware Dirty flags lost\n",
				    TEST_FMT_NAME, round, lost);
	}
	assert_int_equal(lost, 0);
	t_vm_fini(&t);
}

/*
 * Hardware-set Dirty survives a slot starting to log by write-protection
 * (writes that got in before their leaf was protected keep their flag).
 * Not on arm64: with DBM the dirty state is the write permission itself
 * (S2AP[1]), which write-protection takes away by design.
 */
static void test_protect_keeps_hardware_dirty(void **state)
{
	uint64_t dbit;
	struct tvm t;
	unsigned lost = 0;

	(void)state;
	if (TEST_FMT == S2_FMT_ARM64_S2)
		skip();
	vm_init(&t, &dbit);
	assert_int_equal(kvm_dirty_log_set_caps(t.kvm, KVM_DIRTY_LOG_WRPROTECT), 0);
	for (unsigned round = 0; round < ROUNDS && !lost; round++) {
		struct cpu c = { .kvm = t.kvm };
		pthread_t th;

		assert_int_equal(kvm_set_memslot_flags(t.kvm, 0, 0), 0);
		fresh_clean_leaves(&t, dbit);
		assert_int_equal(pthread_create(&th, NULL, cpu_thread, &c), 0);
		__atomic_store_n(&c.go, 1, __ATOMIC_RELEASE);
		assert_int_equal(kvm_set_memslot_flags(t.kvm, 0, KVM_MEM_LOG_DIRTY_PAGES), 0);
		assert_int_equal(pthread_join(th, NULL), 0);
		lost = count_lost(&t, &c, dbit);
		if (lost)
			print_error("%s: protection, round %u: %u hardware Dirty flags lost\n",
				    TEST_FMT_NAME, round, lost);
	}
	assert_int_equal(lost, 0);
	t_vm_fini(&t);
}

/*
 * Aging a large range under the write side yields mmu_lock between chunks
 * of yield_batch pages to whoever waits for it (a fault), and only then:
 * faults never wait for the whole range. The waiter is simulated by the
 * lock's waiting count; every leaf is still aged once.
 */
static void test_age_yields_to_waiters(void **state)
{
	uint64_t dbit, y0;
	struct tvm t;

	(void)state;
	vm_init(&t, &dbit);
	t.kvm->yield_batch = 256;
	for (int waiter = 0; waiter < 2; waiter++) {
		fresh_clean_leaves(&t, dbit);
		y0 = __atomic_load_n(&t.kvm->stat_yields, __ATOMIC_RELAXED);
		__atomic_store_n(&t.kvm->mmu_lock.waiting, waiter, __ATOMIC_RELAXED);
		assert_int_equal(kvm_mmu_notifier_clear_young(t.kvm, HVA0, HVA0 + PAGES * 4096ull),
				 PAGES);
		__atomic_store_n(&t.kvm->mmu_lock.waiting, 0, __ATOMIC_RELAXED);
		assert_int_equal(__atomic_load_n(&t.kvm->stat_yields, __ATOMIC_RELAXED) - y0,
				 waiter ? PAGES / 256 - 1 : 0);
		assert_int_equal(kvm_mmu_notifier_test_young(t.kvm, HVA0, HVA0 + PAGES * 4096ull),
				 0);
	}
	t_vm_fini(&t);
}

/*
 * A zap under the write side stores plainly into leaves hardware has nothing
 * left to write in and exchanges the others (core/mmu_tmpl.h
 * zap_table_locked()). In a slot that logs through the leaves' Dirty flags
 * (no PML), a write the CPU makes while the range is unmapped must reach the
 * dirty log: either its leaf was zapped holding Dirty (and recorded), or the
 * write found no leaf and faulted. The zap starts once the CPU has written
 * the top eighth, so every round zaps leaves that hold Dirty (the writes
 * that race the zap come on top).
 */
static void test_zap_keeps_hardware_dirty(void **state)
{
	uint64_t dbit, bm[PAGES / 64];
	struct tvm t;
	unsigned lost = 0;

	(void)state;
	vm_init(&t, &dbit);
	if (!kvm_dirty_log_hw(t.kvm))
		skip();
	for (unsigned round = 0; round < ROUNDS && !lost; round++) {
		struct cpu c = { .kvm = t.kvm, .down = true };
		pthread_t th;

		assert_int_equal(kvm_set_memslot_flags(t.kvm, 0, 0), 0);
		fresh_clean_leaves(&t, dbit);
		assert_int_equal(kvm_set_memslot_flags(t.kvm, 0, KVM_MEM_LOG_DIRTY_PAGES), 0);
		assert_true(kvm_get_dirty_log(t.kvm, 0, bm) >= 0); /* start from a clean log */
		assert_int_equal(pthread_create(&th, NULL, cpu_thread, &c), 0);
		__atomic_store_n(&c.go, 1, __ATOMIC_RELEASE);
		while (__atomic_load_n(&c.done, __ATOMIC_ACQUIRE) < PAGES / 8)
			;
		assert_int_equal(kvm_mmu_notifier_invalidate_range_start(
					 t.kvm, HVA0, HVA0 + PAGES * 4096ull, true),
				 0);
		assert_int_equal(kvm_mmu_notifier_invalidate_range_end(
					 t.kvm, HVA0, HVA0 + PAGES * 4096ull, true),
				 0);
		assert_int_equal(pthread_join(th, NULL), 0);
		assert_true(kvm_get_dirty_log(t.kvm, 0, bm) >= 0);
		for (unsigned i = 0; i < PAGES; i++)
			if (c.written[i] && !(bm[i / 64] & (1ull << (i % 64))))
				lost++;
		if (lost)
			print_error("%s: zap, round %u: %u written pages not logged\n",
				    TEST_FMT_NAME, round, lost);
	}
	assert_int_equal(lost, 0);
	t_vm_fini(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_age_keeps_hardware_dirty),
		cmocka_unit_test(test_protect_keeps_hardware_dirty),
		cmocka_unit_test(test_age_yields_to_waiters),
		cmocka_unit_test(test_zap_keeps_hardware_dirty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
