// SPDX-License-Identifier: MIT
/*
 * The generation-based id allocator (include/s2mmu/vmid.h).
 *
 * The scheme is arm64 KVM's VMID allocator: an id is generation | index,
 * with the generation in units of 1 << bits; a VM whose id is of the current
 * generation keeps it. Each CPU publishes the id it runs in its `active`
 * word. A rollover (under the lock) swaps every active word to 0 and keeps
 * what it held (or, for a CPU that had not entered since the previous
 * rollover, what was reserved then) as that CPU's reserved id, marked taken
 * in the fresh bitmap; the VM that owns a reserved id finds it there and
 * moves it to the new generation unchanged.
 *
 * Entry without the lock: when the CPU's active word is non-zero (it has
 * entered since the last rollover, so its TLB was flushed since) and the
 * VM's id is of the current generation, one compare-and-exchange of the
 * active word from the value just read publishes the id. A rollover that
 * zeroed the word in between makes the exchange fail and the CPU takes the
 * lock; a rollover after it finds the id active and reserves it. Either
 * way no id of a running VM is handed to another VM.
 *
 * The flush: zeroing every active word forces every CPU through the locked
 * path before its next entry, and that path runs the CPU's pending local
 * flush (or none, when the rollover broadcast one to all CPUs already).
 */
#include "core/lock.h"
#include "s2mmu/env.h"
#include "s2mmu/errno.h"
#include "s2mmu/vmid.h"

static bool vmid_gen_match(const struct s2_vmid_alloc *a, uint64_t id)
{
	return !((id ^ __atomic_load_n(&a->gen, __ATOMIC_RELAXED)) >> a->bits);
}

static uint64_t vmid_idx(const struct s2_vmid_alloc *a, uint64_t id)
{
	return id & ((1ull << a->bits) - 1);
}

static void map_set(uint64_t *map, uint64_t i)
{
	map[i / 64] |= 1ull << (i % 64);
}

static bool map_test_and_set(uint64_t *map, uint64_t i)
{
	bool was = (map[i / 64] >> (i % 64)) & 1;

	map[i / 64] |= 1ull << (i % 64);
	return was;
}

/* First clear bit in [from, n), or n. */
static uint64_t map_find_zero(const uint64_t *map, uint64_t from, uint64_t n)
{
	for (uint64_t i = from; i < n; i++) {
		if (!(i % 64) && map[i / 64] == ~0ull) {
			i += 63;
			continue;
		}
		if (!((map[i / 64] >> (i % 64)) & 1))
			return i;
	}
	return n;
}

static void vmid_lock(struct s2_vmid_alloc *a)
{
	s2_spin_lock((struct s2_spinlock *)&a->lock, a->env);
}

static void vmid_unlock(struct s2_vmid_alloc *a)
{
	s2_spin_unlock((struct s2_spinlock *)&a->lock);
}

/* A fresh bitmap with only the ids that must survive: below first, and what
 * each CPU runs (or kept from the previous rollover). Lock held. */
static void vmid_flush_context(struct s2_vmid_alloc *a)
{
	uint64_t n = 1ull << a->bits;

	for (uint64_t w = 0; w < S2_VMID_MAP_WORDS(a->bits); w++)
		a->map[w] = 0;
	for (uint64_t i = 0; i < a->first && i < n; i++)
		map_set(a->map, i);
	for (unsigned c = 0; c < a->nr_cpus; c++) {
		struct s2_vmid_cpu *cpu = &a->cpus[c];
		uint64_t id = __atomic_exchange_n(&cpu->active, 0, __ATOMIC_RELAXED);

		if (id == 0)
			id = cpu->reserved;
		if (id == S2_VMID_INACTIVE)
			id = 0;
		if (id)
			map_set(a->map, vmid_idx(a, id));
		cpu->reserved = id;
		cpu->flush_pending = true;
	}
	__atomic_store_n(&a->rollovers, a->rollovers + 1, __ATOMIC_RELAXED); /* read any time */
	if (a->env->ops->vmid_flush_all) {
		a->env->ops->vmid_flush_all(a->env->ctx);
		for (unsigned c = 0; c < a->nr_cpus; c++)
			a->cpus[c].flush_pending = false;
	}
}

/* If @id is some CPU's reserved id, move every such record to @newid. */
static bool vmid_update_reserved(struct s2_vmid_alloc *a, uint64_t id, uint64_t newid)
{
	bool hit = false;

	for (unsigned c = 0; c < a->nr_cpus; c++) {
		if (a->cpus[c].reserved == id) {
			hit = true;
			a->cpus[c].reserved = newid;
		}
	}
	return hit;
}

/* An id of the current generation for @v. Lock held. */
static uint64_t vmid_new(struct s2_vmid_alloc *a, struct s2_vmid *v)
{
	uint64_t id = __atomic_load_n(&v->id, __ATOMIC_RELAXED);
	uint64_t gen = __atomic_load_n(&a->gen, __ATOMIC_RELAXED);
	uint64_t n = 1ull << a->bits, i;

	if (id) {
		uint64_t newid = gen | vmid_idx(a, id);

		/* Kept across the rollover because a CPU ran it. */
		if (vmid_update_reserved(a, id, newid))
			return newid;
		/* Not taken by anyone in this generation yet. */
		if (vmid_idx(a, id) >= a->first && !map_test_and_set(a->map, vmid_idx(a, id)))
			return newid;
	}
	i = map_find_zero(a->map, a->next, n);
	if (i == n) {
		gen += n;
		__atomic_store_n(&a->gen, gen, __ATOMIC_RELAXED);
		vmid_flush_context(a);
		/* More ids than CPUs (checked at init): one is free. */
		i = map_find_zero(a->map, a->first, n);
	}
	map_set(a->map, i);
	a->next = (unsigned)i;
	return gen | i;
}

int s2_vmid_alloc_init(struct s2_vmid_alloc *a, const struct s2_env *env, unsigned bits,
		       unsigned first, unsigned nr_cpus, struct s2_vmid_cpu *cpus, uint64_t *map)
{
	if (!a || !env || !env->ops || !cpus || !map)
		return -EINVAL;
	if (!env->ops->vmid_flush_local && !env->ops->vmid_flush_all)
		return -EINVAL;
	if (bits < 1 || bits > S2_VMID_BITS_MAX || nr_cpus == 0)
		return -EINVAL;
	if (first >= (1u << bits) || (1u << bits) - first <= nr_cpus)
		return -EINVAL;
	*a = (struct s2_vmid_alloc){ .env = env,
				     .cpus = cpus,
				     .map = map,
				     .nr_cpus = nr_cpus,
				     .bits = bits,
				     .first = first,
				     .next = first,
				     .gen = 1ull << bits };
	for (unsigned c = 0; c < nr_cpus; c++)
		cpus[c] = (struct s2_vmid_cpu){ .active = 0, .reserved = 0 };
	for (uint64_t w = 0; w < S2_VMID_MAP_WORDS(bits); w++)
		map[w] = 0;
	for (unsigned i = 0; i < first; i++)
		map_set(map, i);
	return 0;
}

void s2_vmid_init(struct s2_vmid *v, struct s2_vmid_alloc *a)
{
	if (!v)
		return;
	v->id = 0;
	v->alloc = a;
}

int s2_vmid_update(struct s2_vmid *v, unsigned cpu)
{
	struct s2_vmid_alloc *a;
	struct s2_vmid_cpu *pc;
	uint64_t id, old;

	if (!v || !v->alloc)
		return -EINVAL;
	a = v->alloc;
	if (cpu >= a->nr_cpus)
		return -EINVAL;
	pc = &a->cpus[cpu];

	id = __atomic_load_n(&v->id, __ATOMIC_RELAXED);
	old = __atomic_load_n(&pc->active, __ATOMIC_RELAXED);
	if (old != 0 && vmid_gen_match(a, id) &&
	    __atomic_compare_exchange_n(&pc->active, &old, id, false, __ATOMIC_RELAXED,
					__ATOMIC_RELAXED))
		return (int)vmid_idx(a, id);

	vmid_lock(a);
	id = __atomic_load_n(&v->id, __ATOMIC_RELAXED);
	if (!vmid_gen_match(a, id)) {
		id = vmid_new(a, v);
		__atomic_store_n(&v->id, id, __ATOMIC_RELAXED);
	}
	if (pc->flush_pending) {
		a->env->ops->vmid_flush_local(a->env->ctx, cpu);
		a->local_flushes++;
		pc->flush_pending = false;
	}
	__atomic_store_n(&pc->active, id, __ATOMIC_RELAXED);
	vmid_unlock(a);
	return (int)vmid_idx(a, id);
}

int s2_vmid_clear_active(struct s2_vmid_alloc *a, unsigned cpu)
{
	uint64_t old;

	if (!a || cpu >= a->nr_cpus)
		return -EINVAL;
	/*
	 * A 0 left by a rollover stays: it sends the next entry through the
	 * lock, which runs the CPU's pending flush. (arm64 KVM stores its
	 * marker unconditionally; its rollover flushes every CPU at once.)
	 */
	old = __atomic_load_n(&a->cpus[cpu].active, __ATOMIC_RELAXED);
	while (old && !__atomic_compare_exchange_n(&a->cpus[cpu].active, &old, S2_VMID_INACTIVE,
						   false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	return 0;
}
