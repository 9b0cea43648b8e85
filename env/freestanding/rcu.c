// SPDX-License-Identifier: MIT
/*
 * RCU for freestanding embedders with more than one CPU: quiescent-state
 * based (QSBR), as liburcu's qsbr flavour and Linux's classic RCU are.
 *
 * Readers (faults looking memslots up, kvm_mark_page_dirty writing a bitmap,
 * lockless walks) take no lock at all. Instead every CPU that may run the
 * library's code says when it holds no reference into the library's RCU-
 * protected data: s2_fs_rcu_quiescent() at a point of its loop where no call
 * into the library is in progress (the top of the vcpu loop, the host's main
 * loop), and s2_fs_rcu_offline() / _online() around long stretches in which
 * it makes no such call (the guest running, idle, waiting for an interrupt).
 *
 * synchronize_rcu() opens a new grace period (gp_seq + 1) and waits until
 * every other registered CPU is offline or has reported a quiescent state in
 * it: anything that CPU read before that report is done with, so whatever
 * was unpublished before the grace period opened can be freed. The caller's
 * own CPU is quiescent by definition (the core calls it with no lock held and
 * inside no read section).
 *
 * Ordering: each side fences (sequentially consistent) between its store and
 * its load: the writer between unpublishing / opening the grace period and
 * reading a CPU's state, a CPU between reading the library's data and
 * reporting, or between coming online and reading. So either the writer sees
 * the report (or the CPU online and waits for it), or the CPU's later reads
 * see the data unpublished.
 */
#include "s2mmu/env-freestanding.h"
#include "s2mmu/errno.h"

/*
 * A full barrier between a store and a later load. ThreadSanitizer models
 * no fences (GCC refuses them under -fsanitize=thread), so there every
 * barrier is instead a sequentially consistent read-modify-write of one
 * shared word: all of them are totally ordered and each synchronises with
 * the one before, which gives the same store-then-load guarantee in the
 * memory model TSan checks.
 */
#if defined(__SANITIZE_THREAD__)
#define S2_FS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define S2_FS_TSAN 1
#endif
#endif
#ifdef S2_FS_TSAN
static uint64_t s2_fs_barrier_word;
#define s2_fs_mb() ((void)__atomic_fetch_add(&s2_fs_barrier_word, 0, __ATOMIC_SEQ_CST))
#else
#define s2_fs_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#endif

static void s2_fs_relax(const struct s2_freestanding *f)
{
	if (f->ops.relax)
		f->ops.relax(f->env.ctx);
}

static void f_synchronize_rcu_smp(void *ctx)
{
	struct s2_freestanding *f = ctx;
	unsigned self = f->this_cpu(f->env.ctx);
	uint64_t seq;

	seq = __atomic_add_fetch(&f->gp_seq, 1, __ATOMIC_SEQ_CST);
	s2_fs_mb();
	for (unsigned i = 0; i < f->ncpus; i++) {
		const struct s2_fs_cpu *c = &f->cpus[i];

		if (i == self)
			continue;
		while (__atomic_load_n(&c->online, __ATOMIC_SEQ_CST) &&
		       __atomic_load_n(&c->qs_seq, __ATOMIC_ACQUIRE) < seq) {
			/*
			 * This CPU holds no reference while it waits: say so,
			 * or two CPUs synchronizing at once would each wait
			 * for the other's report for ever.
			 */
			s2_fs_rcu_quiescent(f, self);
			s2_fs_relax(f);
		}
	}
	s2_fs_mb();
}

int s2_freestanding_smp(struct s2_freestanding *f, struct s2_fs_cpu *cpus, unsigned ncpus,
			unsigned (*this_cpu)(void *ctx))
{
	if (!f || !cpus || !ncpus || !this_cpu)
		return -EINVAL;
	for (unsigned i = 0; i < ncpus; i++) {
		cpus[i].qs_seq = 0;
		cpus[i].online = 0;
	}
	f->cpus = cpus;
	f->ncpus = ncpus;
	f->this_cpu = this_cpu;
	f->gp_seq = 0;
	f->ops.synchronize_rcu = f_synchronize_rcu_smp;
	f->ops.rcu_single_cpu = false;
	return 0;
}

void s2_fs_rcu_quiescent(struct s2_freestanding *f, unsigned cpu)
{
	if (!f || cpu >= f->ncpus)
		return;
	s2_fs_mb();
	__atomic_store_n(&f->cpus[cpu].qs_seq, __atomic_load_n(&f->gp_seq, __ATOMIC_SEQ_CST),
			 __ATOMIC_RELEASE);
}

void s2_fs_rcu_offline(struct s2_freestanding *f, unsigned cpu)
{
	if (!f || cpu >= f->ncpus)
		return;
	s2_fs_mb();
	__atomic_store_n(&f->cpus[cpu].online, 0, __ATOMIC_RELEASE);
}

void s2_fs_rcu_online(struct s2_freestanding *f, unsigned cpu)
{
	if (!f || cpu >= f->ncpus)
		return;
	__atomic_store_n(&f->cpus[cpu].online, 1, __ATOMIC_SEQ_CST);
	s2_fs_mb();
}
