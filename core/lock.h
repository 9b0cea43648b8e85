/* SPDX-License-Identifier: MIT */
/*
 * The core's locks, built on compiler atomics so they need no OS: mmu_lock is
 * a reader-writer spinlock whose read side faults share, and a plain spinlock
 * serialises memslot updates. Waiting spins through env->relax (pause,
 * sched_yield, wfe), which is the only host service they use.
 */
#ifndef S2MMU_CORE_LOCK_H
#define S2MMU_CORE_LOCK_H

#include "s2mmu/env.h"

/* bit 31: a writer holds the lock; bit 30: a writer waits (readers back off,
 * so a stream of faults cannot starve a zap); bits 29..0: readers. */
#define S2_RW_WRITER 0x80000000u
#define S2_RW_PENDING 0x40000000u

struct s2_rwlock {
	uint32_t v;
	/* Readers spinning for a writer to leave: a long write-side walk
	 * yields to them at its batch (core/mmu_tmpl.h, range_yield). */
	uint32_t waiting;
};

struct s2_spinlock {
	uint32_t v;
};

static inline void s2_relax(const struct s2_env *env)
{
	if (env->ops->relax)
		env->ops->relax(env->ctx);
}

static inline void s2_read_lock(struct s2_rwlock *l, const struct s2_env *env)
{
	for (;;) {
		uint32_t x = __atomic_fetch_add(&l->v, 1, __ATOMIC_ACQUIRE);

		if (!(x & (S2_RW_WRITER | S2_RW_PENDING)))
			return;
		__atomic_fetch_sub(&l->v, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&l->waiting, 1, __ATOMIC_RELAXED);
		while (__atomic_load_n(&l->v, __ATOMIC_RELAXED) & (S2_RW_WRITER | S2_RW_PENDING))
			s2_relax(env);
		__atomic_fetch_sub(&l->waiting, 1, __ATOMIC_RELAXED);
	}
}

static inline void s2_read_unlock(struct s2_rwlock *l)
{
	__atomic_fetch_sub(&l->v, 1, __ATOMIC_RELEASE);
}

static inline void s2_write_lock(struct s2_rwlock *l, const struct s2_env *env)
{
	for (;;) {
		uint32_t x = __atomic_load_n(&l->v, __ATOMIC_RELAXED);

		if ((x == 0 || x == S2_RW_PENDING) &&
		    __atomic_compare_exchange_n(&l->v, &x, S2_RW_WRITER, false, __ATOMIC_SEQ_CST,
						__ATOMIC_RELAXED))
			return;
		/* Another writer's acquisition consumed the pending bit: raise it
		 * again so new readers keep backing off. */
		if (!(x & S2_RW_PENDING))
			__atomic_fetch_or(&l->v, S2_RW_PENDING, __ATOMIC_SEQ_CST);
		s2_relax(env);
	}
}

static inline void s2_write_unlock(struct s2_rwlock *l)
{
	__atomic_fetch_and(&l->v, ~S2_RW_WRITER, __ATOMIC_RELEASE);
}

static inline bool s2_rwlock_is_write_locked(const struct s2_rwlock *l)
{
	return __atomic_load_n(&l->v, __ATOMIC_RELAXED) & S2_RW_WRITER;
}

/*
 * A reader's own flag: the read side for one thread that reads often (a
 * vcpu's faults), as in a per-CPU reader-writer semaphore. Taking it is one
 * store and one load, both sequentially consistent, on a cache line no one
 * else writes; the writer, after raising its bit on the shared word, waits
 * for every such flag to drop (s2_rwlock_wait_local). Either the reader's
 * load sees the writer's bit and it backs off, or the writer's later load
 * sees the reader's flag and waits: the stores and loads are in one total
 * order. Not nestable with the shared read side while a writer waits.
 */
/* One attempt: true when the read side is held. */
static inline bool s2_read_trylock_local(struct s2_rwlock *l, uint32_t *flag, bool light)
{
	if (light) {
		/* The writer's env->membarrier() stands for the full barrier
		 * between this store and load (s2_mmu_write_lock): here they
		 * only must not be reordered by the compiler. */
		__atomic_store_n(flag, 1, __ATOMIC_RELAXED);
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		if (!(__atomic_load_n(&l->v, __ATOMIC_ACQUIRE) & (S2_RW_WRITER | S2_RW_PENDING)))
			return true;
	} else {
		__atomic_store_n(flag, 1, __ATOMIC_SEQ_CST);
		if (!(__atomic_load_n(&l->v, __ATOMIC_SEQ_CST) & (S2_RW_WRITER | S2_RW_PENDING)))
			return true;
	}
	__atomic_store_n(flag, 0, __ATOMIC_RELEASE);
	return false;
}

/* Out of line, so the uncontended caller keeps a small frame. */
static __attribute__((noinline, cold)) void
s2_read_lock_local_slow(struct s2_rwlock *l, uint32_t *flag, const struct s2_env *env, bool light)
{
	__atomic_fetch_add(&l->waiting, 1, __ATOMIC_RELAXED);
	do {
		while (__atomic_load_n(&l->v, __ATOMIC_RELAXED) & (S2_RW_WRITER | S2_RW_PENDING))
			s2_relax(env);
	} while (!s2_read_trylock_local(l, flag, light));
	__atomic_fetch_sub(&l->waiting, 1, __ATOMIC_RELAXED);
}

static inline void s2_read_lock_local(struct s2_rwlock *l, uint32_t *flag, const struct s2_env *env,
				      bool light)
{
	if (s2_read_trylock_local(l, flag, light))
		return;
	s2_read_lock_local_slow(l, flag, env, light);
}

static inline void s2_read_unlock_local(uint32_t *flag)
{
	__atomic_store_n(flag, 0, __ATOMIC_RELEASE);
}

/* For a writer holding @l: wait until the reader of @flag is out. */
static inline void s2_rwlock_wait_local(const uint32_t *flag, const struct s2_env *env)
{
	while (__atomic_load_n(flag, __ATOMIC_SEQ_CST))
		s2_relax(env);
}

static inline void s2_spin_lock(struct s2_spinlock *l, const struct s2_env *env)
{
	uint32_t z = 0;

	while (!__atomic_compare_exchange_n(&l->v, &z, 1, false, __ATOMIC_ACQUIRE,
					    __ATOMIC_RELAXED)) {
		z = 0;
		s2_relax(env);
	}
}

static inline void s2_spin_unlock(struct s2_spinlock *l)
{
	__atomic_store_n(&l->v, 0, __ATOMIC_RELEASE);
}

#endif
