// SPDX-License-Identifier: MIT
/*
 * The freestanding env's RCU on more than one CPU (threads standing in for
 * CPUs), also under ThreadSanitizer: a grace period waits for every online
 * CPU's quiescent state and for no offline CPU; the single-CPU default makes
 * the library refuse a second vcpu; a VM whose vcpu thread faults and marks
 * pages dirty while another CPU stops and restarts logging (freeing the
 * bitmap each time) and moves its memslot runs clean on the SMP RCU.
 * (Hole 4 of issue 10: the old default was a no-op synchronize_rcu with no
 * read side at all.)
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/lib/testlib.h"
/* Part of the freestanding build only; compiled in here. */
#include "env/freestanding/pool.c"
#include "env/freestanding/rcu.c"

#define POOL_BYTES (16u << 20)
#define FAKE_PA 0x40000000ull
#define NCPUS 2

static void *region;
static struct s2_page_pool pool;
static struct s2_freestanding fs;
static struct s2_fs_cpu cpus[NCPUS];
static _Thread_local unsigned my_cpu;

static unsigned this_cpu(void *ctx)
{
	(void)ctx;
	return my_cpu;
}

static void relax(void *ctx)
{
	(void)ctx;
	t_yield();
}

static int setup(void **state)
{
	(void)state;
	region = aligned_alloc(1 << 16, POOL_BYTES);
	assert_non_null(region);
	s2_pool_init(&pool, region, FAKE_PA, POOL_BYTES);
	s2_freestanding_init(&fs, &pool);
	fs.ops.relax = relax;
	my_cpu = 0;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(region);
	return 0;
}

/* ---- the grace period itself ---- */

#define POISON 0xdeadbeefdeadbeefull

struct box {
	uint64_t val;
};

static struct box *published;
static int reader_stop, reader_offline_now, reader_is_offline, reader_started;
static uint64_t reader_bad, reader_reads;

static void *reader(void *arg)
{
	(void)arg;
	my_cpu = 1;
	s2_fs_rcu_online(&fs, 1);
	while (!__atomic_load_n(&reader_stop, __ATOMIC_ACQUIRE)) {
		struct box *b = __atomic_load_n(&published, __ATOMIC_ACQUIRE);

		for (int i = 0; i < 8; i++) {
			if (b->val == POISON)
				reader_bad++;
			t_yield();
		}
		reader_reads++;
		s2_fs_rcu_quiescent(&fs, 1);
		if (reader_reads == 1)
			__atomic_store_n(&reader_started, 1, __ATOMIC_RELEASE);
		if (__atomic_load_n(&reader_offline_now, __ATOMIC_ACQUIRE)) {
			s2_fs_rcu_offline(&fs, 1);
			__atomic_store_n(&reader_is_offline, 1, __ATOMIC_RELEASE);
			while (__atomic_load_n(&reader_offline_now, __ATOMIC_ACQUIRE))
				t_yield();
			s2_fs_rcu_online(&fs, 1);
		}
	}
	return NULL;
}

/* Nothing a reader can still hold is poisoned: the writer publishes a new
 * box and poisons the old one for good, only after synchronize_rcu. Fails with a synchronize_rcu that does
 * not wait (the old single-CPU default on two CPUs). */
static void test_grace_period_waits_for_readers(void **state)
{
	static struct box boxes[2001];
	pthread_t t;

	(void)state;
	assert_int_equal(s2_freestanding_smp(&fs, cpus, NCPUS, this_cpu), 0);
	published = &boxes[0];
	reader_stop = reader_bad = reader_reads = reader_started = 0;
	s2_fs_rcu_online(&fs, 0);
	assert_int_equal(pthread_create(&t, NULL, reader, NULL), 0);
	while (!__atomic_load_n(&reader_started, __ATOMIC_ACQUIRE))
		t_yield();
	for (int i = 1; i <= 2000; i++) {
		struct box *old = published, *nb = &boxes[i];

		nb->val = (uint64_t)i;
		__atomic_store_n(&published, nb, __ATOMIC_RELEASE);
		fs.ops.synchronize_rcu(fs.env.ctx);
		old->val = POISON;
	}
	__atomic_store_n(&reader_stop, 1, __ATOMIC_RELEASE);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(reader_reads > 0);
	assert_int_equal(reader_bad, 0);
}

/* An offline CPU holds grace periods up no more; back online it is waited
 * for again. Fails when offline is ignored (this would hang: the test's
 * timeout) or when online is (then reader_bad counts). */
static void test_offline_cpu_not_waited_for(void **state)
{
	struct box b = { 7 };
	pthread_t t;

	(void)state;
	assert_int_equal(s2_freestanding_smp(&fs, cpus, NCPUS, this_cpu), 0);
	published = &b;
	reader_stop = reader_bad = reader_is_offline = 0;
	reader_offline_now = 1;
	assert_int_equal(pthread_create(&t, NULL, reader, NULL), 0);
	while (!__atomic_load_n(&reader_is_offline, __ATOMIC_ACQUIRE))
		t_yield();
	for (int i = 0; i < 100; i++)
		fs.ops.synchronize_rcu(fs.env.ctx); /* returns though the reader never reports */
	__atomic_store_n(&reader_offline_now, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&reader_stop, 1, __ATOMIC_RELEASE);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(reader_bad, 0);
	assert_int_equal(s2_freestanding_smp(NULL, cpus, NCPUS, this_cpu), -EINVAL);
	assert_int_equal(s2_freestanding_smp(&fs, cpus, 0, this_cpu), -EINVAL);
	assert_int_equal(s2_freestanding_smp(&fs, cpus, NCPUS, NULL), -EINVAL);
}

/*
 * Two CPUs in synchronize_rcu at once, neither reporting otherwise: each is
 * quiescent while it waits, so both return. Fails (after 20 s rather than
 * hanging) when a waiting CPU does not report itself quiescent: each would
 * wait for the other for ever.
 */
static int sync_done;
static pthread_barrier_t sync_start;

static void *syncer(void *arg)
{
	my_cpu = (unsigned)(uintptr_t)arg;
	s2_fs_rcu_online(&fs, my_cpu);
	pthread_barrier_wait(&sync_start); /* both online before either syncs */
	for (int i = 0; i < 2000; i++)
		fs.ops.synchronize_rcu(fs.env.ctx);
	s2_fs_rcu_offline(&fs, my_cpu);
	__atomic_fetch_add(&sync_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void test_concurrent_synchronize(void **state)
{
	pthread_t t[NCPUS];

	(void)state;
	assert_int_equal(s2_freestanding_smp(&fs, cpus, NCPUS, this_cpu), 0);
	sync_done = 0;
	assert_int_equal(pthread_barrier_init(&sync_start, NULL, NCPUS), 0);
	for (unsigned i = 0; i < NCPUS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, syncer, (void *)(uintptr_t)i), 0);
	for (int ms = 0; ms < 20000 && __atomic_load_n(&sync_done, __ATOMIC_ACQUIRE) < NCPUS;
	     ms++) {
		struct timespec ts = { 0, 1000000 };

		nanosleep(&ts, NULL);
	}
	if (__atomic_load_n(&sync_done, __ATOMIC_ACQUIRE) < NCPUS)
		fail_msg("two CPUs in synchronize_rcu at once never returned");
	for (unsigned i = 0; i < NCPUS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	pthread_barrier_destroy(&sync_start);
}

/* ---- the library on it ---- */

static int fs_gfn_to_pfn(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, bool write,
			 struct s2_pfn_info *out)
{
	(void)ctx;
	(void)write;
	out->pfn = (slot->userspace_addr >> 12) + (gfn - slot->base_gfn);
	out->writable = true;
	out->host_level = 1;
	out->memtype = S2_MT_WB;
	return 0;
}

static struct kvm *vm_on_pool(void)
{
	struct kvm_vm_params p = t_default_params(S2_FMT_X86_EPT);
	struct kvm *kvm;

	fs.ops.gfn_to_pfn = fs_gfn_to_pfn;
	if (!s2_fmt_supported(p.fmt))
		p = t_default_params(S2_FMT_ARM64_S2);
	if (!s2_fmt_supported(p.fmt))
		p = t_default_params(S2_FMT_RISCV_G);
	p.env = &fs.env;
	p.max_vcpus = 4;
	assert_int_equal(kvm_create_vm(&p, &kvm), 0);
	return kvm;
}

/* With the single-CPU default a second vcpu is refused, with -ENOTSUP and
 * nothing created; on the SMP RCU it is created. */
static void test_second_vcpu_needs_smp_rcu(void **state)
{
	struct kvm_vcpu *v0, *v1;
	struct kvm *kvm;

	(void)state;
	kvm = vm_on_pool();
	assert_int_equal(kvm_vcpu_create(kvm, 0, &v0), 0);
	size_t used = pool.in_use;
	assert_int_equal(kvm_vcpu_create(kvm, 1, &v1), -ENOTSUP);
	assert_null(v1);
	assert_int_equal(pool.in_use, used);
	kvm_destroy_vm(kvm);
	assert_int_equal(pool.in_use, 0);

	assert_int_equal(s2_freestanding_smp(&fs, cpus, NCPUS, this_cpu), 0);
	kvm = vm_on_pool();
	assert_int_equal(kvm_vcpu_create(kvm, 0, &v0), 0);
	assert_int_equal(kvm_vcpu_create(kvm, 1, &v1), 0);
	kvm_destroy_vm(kvm);
	assert_int_equal(pool.in_use, 0);
}

struct vcpu_cpu {
	struct kvm *kvm;
	struct kvm_vcpu *vcpu;
	int stop;
	uint64_t ops, bad;
};

static void *vcpu_cpu_thread(void *arg)
{
	struct vcpu_cpu *c = arg;
	uint64_t i = 0;

	my_cpu = 1;
	s2_fs_rcu_online(&fs, 1);
	while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
		gfn_t g = 0x1000 + (i++ % 256);
		int r = kvm_tdp_page_fault(c->vcpu, g << 12, S2_ACC_READ | S2_ACC_WRITE);

		if (r < 0 || r == RET_PF_RO_WRITE)
			c->bad++;
		r = kvm_vcpu_mark_page_dirty(c->vcpu, g);
		if (r < 0)
			c->bad++;
		__atomic_store_n(&c->ops, c->ops + 1, __ATOMIC_RELAXED);
		s2_fs_rcu_quiescent(&fs, 1); /* the top of the vcpu loop */
	}
	s2_fs_rcu_offline(&fs, 1);
	return NULL;
}

/* Two CPUs, one vcpu thread: the main thread (CPU 0) stops and restarts
 * logging (freeing the bitmap the vcpu writes) and the vcpu faults and marks
 * pages all the while; everything returns to the pool. */
static void test_vm_two_cpus(void **state)
{
	struct vcpu_cpu c = { 0 };
	struct kvm_vcpu *v0;
	pthread_t t;

	(void)state;
	assert_int_equal(s2_freestanding_smp(&fs, cpus, NCPUS, this_cpu), 0);
	s2_fs_rcu_online(&fs, 0);
	c.kvm = vm_on_pool();
	assert_int_equal(kvm_vcpu_create(c.kvm, 0, &v0), 0);
	assert_int_equal(kvm_vcpu_create(c.kvm, 1, &c.vcpu), 0);
	struct kvm_memory_slot s = {
		.id = 0, .base_gfn = 0x1000, .npages = 0x100, .userspace_addr = 0x200000000ull
	};
	assert_int_equal(kvm_set_memslot(c.kvm, &s), 0);
	assert_int_equal(pthread_create(&t, NULL, vcpu_cpu_thread, &c), 0);
	while (!__atomic_load_n(&c.ops, __ATOMIC_RELAXED))
		t_yield();
	for (int i = 0; i < 300; i++) {
		/* Logging on and off: the bitmap is freed each time. */
		assert_int_equal(kvm_set_memslot_flags(c.kvm, 0, KVM_MEM_LOG_DIRTY_PAGES), 0);
		assert_int_equal(kvm_set_memslot_flags(c.kvm, 0, 0), 0);
		s2_fs_rcu_quiescent(&fs, 0);
	}
	__atomic_store_n(&c.stop, 1, __ATOMIC_RELEASE);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(c.ops > 0);
	assert_int_equal(c.bad, 0);
	kvm_destroy_vm(c.kvm);
	assert_int_equal(pool.in_use, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_grace_period_waits_for_readers, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_offline_cpu_not_waited_for, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_synchronize, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_vcpu_needs_smp_rcu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vm_two_cpus, setup, teardown),
	};

	return cmocka_run_group_tests_name("freestanding env, SMP", tests, NULL, NULL);
}
