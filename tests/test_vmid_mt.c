// SPDX-License-Identifier: MIT
/*
 * The VMID / VPID / ASID allocator (flush/vmid.c) against a TLB model, with
 * threads standing in for CPUs (also run under ThreadSanitizer).
 *
 * The model: per simulated CPU, the owner (a VM serial, never reused) of
 * each id whose translations that CPU's TLB may hold. A vcpu that enters on
 * a CPU with id x makes x's entries that VM's; the allocator's flush hooks
 * empty the CPU's set (local) or every set (broadcast). Entering with an id
 * whose entries belong to another VM, live or destroyed, is the bug the
 * allocator exists to prevent: two VMs sharing an id on one CPU's TLB with
 * no flush between.
 *
 * Mutations run (each made the named test fail, then was reverted):
 *  - vmid_flush_context() not marking CPUs flush_pending: rollover_local
 *    (model conflicts);
 *  - the lockless path without its `old != 0` test: rollover_local (a CPU
 *    skips its flush after a rollover);
 *  - s2_vmid_clear_active() storing its marker over a rollover's 0 (as
 *    arm64 KVM does, safe there only because its rollover broadcasts):
 *    rollover_local (conflicts). This was a real bug of the first version;
 *  - vmid_new() not moving reserved ids (vmid_update_reserved() skipped):
 *    widths and reserved_kept (the running VM's id changes);
 *  - vmid_new() re-using a VM's old index without checking the bitmap:
 *    rollover_local and rollover_broadcast;
 *  - s2_vmid_update() running the local flush without testing
 *    flush_pending: rollover_local (flushes with no rollover before them);
 *  (The register builders are tested in tests/test_vmid.c, without threads.)
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "s2mmu/vmid.h"
#include "tests/lib/testlib.h"

#define NCPUS 4
#define NVMS 24 /* more VMs than the 15 ids of the threaded tests */
#define MODEL_IDS (1u << 8)

struct model_cpu {
	pthread_mutex_t lock;
	uint64_t owner[MODEL_IDS]; /* VM serial whose entries the TLB may hold */
	uint64_t last_flush_rollovers;
	uint64_t flushes;
};

struct vm_slot {
	pthread_rwlock_t life; /* read: a vcpu runs it; write: replace it */
	struct s2_vmid vmid;
	uint64_t serial;
};

static struct {
	struct s2_env env;
	struct s2_env_ops ops;
	struct s2_vmid_alloc alloc;
	struct s2_vmid_cpu cpus[NCPUS];
	uint64_t map[S2_VMID_MAP_WORDS(16)];
	struct model_cpu model[NCPUS];
	struct vm_slot vms[NVMS];
	uint64_t next_serial;
	uint64_t conflicts;	    /* entries into another VM's id */
	uint64_t needless_flushes;  /* local flushes with no rollover since the last */
	uint64_t broadcast_flushes; /* vmid_flush_all calls */
	uint64_t bad_ids;	    /* ids outside [first, 1 << bits) */
	unsigned iters;
} S;

static void model_drop_all(struct model_cpu *m)
{
	memset(m->owner, 0, sizeof(m->owner));
}

/* Called on @cpu with the allocator's lock held, so rollovers is stable. */
static void flush_local(void *ctx, unsigned cpu)
{
	struct model_cpu *m = &S.model[cpu];

	(void)ctx;
	pthread_mutex_lock(&m->lock);
	if (S.alloc.rollovers == m->last_flush_rollovers)
		S.needless_flushes++;
	m->last_flush_rollovers = S.alloc.rollovers;
	m->flushes++;
	model_drop_all(m);
	pthread_mutex_unlock(&m->lock);
}

static void flush_all(void *ctx)
{
	(void)ctx;
	for (unsigned c = 0; c < NCPUS; c++) {
		pthread_mutex_lock(&S.model[c].lock);
		model_drop_all(&S.model[c]);
		pthread_mutex_unlock(&S.model[c].lock);
	}
	S.broadcast_flushes++; /* under the allocator's lock */
}

static void relax(void *ctx)
{
	(void)ctx;
	t_yield();
}

static void setup_alloc(unsigned bits, unsigned first, bool broadcast)
{
	memset(&S.ops, 0, sizeof(S.ops));
	S.ops.relax = relax;
	if (broadcast)
		S.ops.vmid_flush_all = flush_all;
	else
		S.ops.vmid_flush_local = flush_local;
	S.env = (struct s2_env){ .ops = &S.ops };
	assert_int_equal(s2_vmid_alloc_init(&S.alloc, &S.env, bits, first, NCPUS, S.cpus, S.map),
			 0);
	for (unsigned c = 0; c < NCPUS; c++) {
		pthread_mutex_init(&S.model[c].lock, NULL);
		model_drop_all(&S.model[c]);
		S.model[c].last_flush_rollovers = 0;
		S.model[c].flushes = 0;
	}
	for (unsigned i = 0; i < NVMS; i++) {
		pthread_rwlock_init(&S.vms[i].life, NULL);
		s2_vmid_init(&S.vms[i].vmid, &S.alloc);
		S.vms[i].serial = ++S.next_serial;
	}
	S.conflicts = S.needless_flushes = S.broadcast_flushes = S.bad_ids = 0;
}

static void teardown_alloc(void)
{
	for (unsigned c = 0; c < NCPUS; c++)
		pthread_mutex_destroy(&S.model[c].lock);
	for (unsigned i = 0; i < NVMS; i++)
		pthread_rwlock_destroy(&S.vms[i].life);
}

/* A vcpu of @vm enters on @cpu: the allocator's id, then the model's check. */
static void enter(struct vm_slot *vm, unsigned cpu)
{
	struct model_cpu *m = &S.model[cpu];
	int id = s2_vmid_update(&vm->vmid, cpu);

	if (id < (int)S.alloc.first || id >= (1 << S.alloc.bits)) {
		__atomic_fetch_add(&S.bad_ids, 1, __ATOMIC_RELAXED);
		return;
	}
	pthread_mutex_lock(&m->lock);
	if (m->owner[id] && m->owner[id] != vm->serial)
		__atomic_fetch_add(&S.conflicts, 1, __ATOMIC_RELAXED);
	m->owner[id] = vm->serial;
	pthread_mutex_unlock(&m->lock);
}

static void *cpu_thread(void *arg)
{
	unsigned cpu = (unsigned)(uintptr_t)arg;
	unsigned seed = 0x9e3779b9u * (cpu + 1);

	for (unsigned i = 0; i < S.iters; i++) {
		struct vm_slot *vm = &S.vms[rand_r(&seed) % NVMS];
		unsigned r = rand_r(&seed);

		if (r % 97 == 0) {
			/* Destroy the VM and create another in its place, if
			 * no vcpu of it runs anywhere. */
			if (pthread_rwlock_trywrlock(&vm->life) == 0) {
				s2_vmid_init(&vm->vmid, &S.alloc);
				vm->serial =
					__atomic_add_fetch(&S.next_serial, 1, __ATOMIC_RELAXED);
				pthread_rwlock_unlock(&vm->life);
			}
			continue;
		}
		pthread_rwlock_rdlock(&vm->life);
		enter(vm, cpu);
		if (r % 3 == 0)
			t_yield(); /* stay in the guest a while */
		/* Several entries of the same vcpu in a row: the lockless path. */
		for (unsigned k = r % 4; k; k--)
			enter(vm, cpu);
		pthread_rwlock_unlock(&vm->life);
		if (r % 5 == 0)
			assert_int_equal(s2_vmid_clear_active(&S.alloc, cpu), 0);
	}
	return NULL;
}

static void run_cpus(unsigned iters)
{
	pthread_t t[NCPUS];

	S.iters = iters;
	for (unsigned c = 0; c < NCPUS; c++)
		assert_int_equal(pthread_create(&t[c], NULL, cpu_thread, (void *)(uintptr_t)c), 0);
	for (unsigned c = 0; c < NCPUS; c++)
		pthread_join(t[c], NULL);
}

/*
 * Four CPUs run 24 VMs (replaced now and then) on 15 ids with per-CPU local
 * flushes through thousands of rollovers: no CPU ever enters an id whose
 * entries are another VM's, every local flush follows a rollover (none is
 * wasted: each CPU flushes once per rollover it saw, however many happened
 * while it was away), and every CPU flushed at least once.
 */
static void test_rollover_local(void **state)
{
	(void)state;
	setup_alloc(4, 1, false);
	run_cpus(20000);
	print_message("rollovers %llu, local flushes %llu\n", (unsigned long long)S.alloc.rollovers,
		      (unsigned long long)S.alloc.local_flushes);
	assert_true(S.alloc.rollovers >= 1000);
	assert_int_equal(S.conflicts, 0);
	assert_int_equal(S.bad_ids, 0);
	assert_int_equal(S.needless_flushes, 0);
	assert_int_equal(S.broadcast_flushes, 0);
	for (unsigned c = 0; c < NCPUS; c++) {
		assert_true(S.model[c].flushes >= 1);
		assert_true(S.model[c].flushes <= S.alloc.rollovers);
	}
	teardown_alloc();
}

/*
 * The same with a broadcast flush: exactly one vmid_flush_all per rollover
 * and no local flush at all, still with no conflict.
 */
static void test_rollover_broadcast(void **state)
{
	(void)state;
	setup_alloc(4, 1, true);
	run_cpus(20000);
	assert_true(S.alloc.rollovers >= 1000);
	assert_int_equal(S.conflicts, 0);
	assert_int_equal(S.bad_ids, 0);
	assert_int_equal(S.broadcast_flushes, S.alloc.rollovers);
	assert_int_equal(S.alloc.local_flushes, 0);
	teardown_alloc();
}

/*
 * Every width hands out each id from first up once per generation: 8 and 16
 * bits (arm64), 14 (RISC-V VMIDLEN), 16 with 0 reserved (x86 VPID), then the
 * next VM rolls over and gets a fresh id while the VM running on CPU 0 keeps
 * its own.
 */
static void test_widths(void **state)
{
	static const unsigned widths[][2] = { { 8, 1 }, { 16, 1 }, { 14, 1 }, { 14, 0 }, { 3, 0 } };
	static struct s2_vmid vms[1u << 16];
	static uint8_t seen[1u << 16];

	(void)state;
	for (unsigned w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
		unsigned bits = widths[w][0], first = widths[w][1], n = 1u << bits;
		struct s2_vmid extra;
		int id;

		setup_alloc(bits, first, false);
		memset(seen, 0, n);
		for (unsigned i = first; i < n; i++) {
			s2_vmid_init(&vms[i], &S.alloc);
			id = s2_vmid_update(&vms[i], 0);
			assert_true(id >= (int)first && id < (int)n);
			assert_int_equal(seen[id], 0);
			seen[id] = 1;
			assert_int_equal(s2_vmid_id(&vms[i]), id);
		}
		assert_int_equal(S.alloc.rollovers, 0);
		/* CPU 0 runs the last VM; the next new one rolls over. */
		s2_vmid_init(&extra, &S.alloc);
		id = s2_vmid_update(&extra, 1);
		assert_int_equal(S.alloc.rollovers, 1);
		assert_true(id >= (int)first && id < (int)n);
		assert_int_not_equal(id, s2_vmid_id(&vms[n - 1]));
		assert_int_equal(s2_vmid_update(&vms[n - 1], 0), s2_vmid_id(&vms[n - 1]));
		assert_int_equal(S.conflicts, 0);
		teardown_alloc();
	}
}

/*
 * Reserved ids survive rollovers: a VM running on CPU 0 keeps its id through
 * many rollovers forced by VMs on CPU 1, and no other VM gets that id
 * meanwhile.
 */
static void test_reserved_kept(void **state)
{
	struct s2_vmid a, others[40];
	int ida;

	(void)state;
	setup_alloc(3, 1, false); /* 7 ids */
	s2_vmid_init(&a, &S.alloc);
	ida = s2_vmid_update(&a, 0);
	for (unsigned round = 0; round < 20; round++) {
		for (unsigned i = 0; i < 40; i++) {
			int id;

			s2_vmid_init(&others[i], &S.alloc);
			id = s2_vmid_update(&others[i], 1 + i % 3);
			assert_int_not_equal(id, ida);
		}
		assert_int_equal(s2_vmid_update(&a, 0), ida);
	}
	assert_true(S.alloc.rollovers >= 20);
	teardown_alloc();
}

/* Bad input gets -EINVAL and changes nothing. */
static void test_bad_input(void **state)
{
	struct s2_vmid_alloc before;
	struct s2_vmid v, nov = { 0 };

	(void)state;
	setup_alloc(4, 1, false);
	before = S.alloc;
	assert_int_equal(s2_vmid_alloc_init(&S.alloc, &S.env, 0, 0, NCPUS, S.cpus, S.map), -EINVAL);
	assert_int_equal(s2_vmid_alloc_init(&S.alloc, &S.env, 17, 1, NCPUS, S.cpus, S.map),
			 -EINVAL);
	/* 16 ids, first 12: 4 usable, not more than the 4 CPUs. */
	assert_int_equal(s2_vmid_alloc_init(&S.alloc, &S.env, 4, 12, NCPUS, S.cpus, S.map),
			 -EINVAL);
	assert_int_equal(s2_vmid_alloc_init(&S.alloc, &S.env, 4, 16, 1, S.cpus, S.map), -EINVAL);
	assert_int_equal(s2_vmid_alloc_init(&S.alloc, &S.env, 4, 1, 0, S.cpus, S.map), -EINVAL);
	assert_int_equal(s2_vmid_alloc_init(&S.alloc, &S.env, 4, 1, NCPUS, NULL, S.map), -EINVAL);
	assert_int_equal(s2_vmid_alloc_init(&S.alloc, &S.env, 4, 1, NCPUS, S.cpus, NULL), -EINVAL);
	S.ops.vmid_flush_local = NULL;
	assert_int_equal(s2_vmid_alloc_init(&S.alloc, &S.env, 4, 1, NCPUS, S.cpus, S.map), -EINVAL);
	S.ops.vmid_flush_local = flush_local;
	assert_memory_equal(&before, &S.alloc, sizeof(before));

	s2_vmid_init(&v, &S.alloc);
	assert_int_equal(s2_vmid_update(&v, NCPUS), -EINVAL);
	assert_int_equal(v.id, 0);
	assert_int_equal(s2_vmid_update(&nov, 0), -EINVAL);
	assert_int_equal(s2_vmid_update(NULL, 0), -EINVAL);
	assert_int_equal(s2_vmid_clear_active(&S.alloc, NCPUS), -EINVAL);
	assert_int_equal(s2_vmid_clear_active(NULL, 0), -EINVAL);
	assert_memory_equal(&before, &S.alloc, sizeof(before));
	assert_int_equal(s2_vmid_id(&nov), 0);
	teardown_alloc();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rollover_local), cmocka_unit_test(test_rollover_broadcast),
		cmocka_unit_test(test_widths),	       cmocka_unit_test(test_reserved_kept),
		cmocka_unit_test(test_bad_input),
	};

	return cmocka_run_group_tests_name("vmid allocator", tests, NULL, NULL);
}
