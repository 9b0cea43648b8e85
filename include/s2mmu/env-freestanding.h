/* SPDX-License-Identifier: MIT */
/*
 * Helpers for a freestanding embedder (a bare-metal hypervisor): a page pool
 * that serves table pages and small metadata from one memory region the
 * hypervisor hands over, and an env with single-CPU defaults to start from.
 *
 * The embedder still owns its env: s2_freestanding_init() fills the ops with
 * the pool and single-CPU RCU (synchronize_rcu is a no-op, correct only when
 * one CPU runs every vcpu of the VM and every library call: faults read the
 * memslot array and kvm_mark_page_dirty writes bitmaps without a lock, so on
 * a second CPU they could use an array or bitmap another CPU just freed; the
 * env says so with rcu_single_cpu, and the library then refuses a second
 * vcpu). A hypervisor with more CPUs calls s2_freestanding_smp() and drives
 * the quiescent-state RCU below from its CPUs' loops (docs/embedding.md).
 * It leaves gfn_to_pfn, kick, log and the TLB hooks NULL for the embedder
 * to set.
 */
#ifndef S2MMU_ENV_FREESTANDING_H
#define S2MMU_ENV_FREESTANDING_H

#include "s2mmu/env.h"

#define S2_POOL_CLASSES 11 /* 64 B .. 64 KiB, powers of two */

struct s2_page_pool {
	uint8_t *base; /* va of the region */
	hpa_t base_pa; /* pa of the region */
	size_t size;
	size_t used;		     /* bump pointer (bytes from base) */
	void *free[S2_POOL_CLASSES]; /* per-class free lists */
	uint32_t lock;
	size_t in_use; /* bytes handed out and not yet freed */
	size_t high_water;
};

/* Hand [va, va + bytes) (at physical address pa) to @pool. */
void s2_pool_init(struct s2_page_pool *pool, void *va, hpa_t pa, size_t bytes);
/*
 * A zeroed block of @bytes (rounded up to a power of two, 64 B .. 64 KiB),
 * aligned to its size. Returns NULL when the pool is exhausted.
 */
void *s2_pool_alloc(struct s2_page_pool *pool, size_t bytes, hpa_t *pa);
void s2_pool_free(struct s2_page_pool *pool, void *va, size_t bytes);

/* One CPU's state for the quiescent-state RCU; an array of them, one per
 * CPU that may call into the library, is the embedder's (no allocation). */
struct s2_fs_cpu {
	uint64_t qs_seq; /* the grace period of its last quiescent state */
	uint32_t online; /* 0: in an extended quiescent state */
} __attribute__((aligned(64)));

struct s2_freestanding {
	struct s2_env env;
	struct s2_env_ops ops;
	struct s2_page_pool *pool;
	/* Quiescent-state RCU (env/freestanding/rcu.c), after
	 * s2_freestanding_smp(). */
	struct s2_fs_cpu *cpus;
	unsigned ncpus;
	unsigned (*this_cpu)(void *ctx); /* index of the calling CPU */
	uint64_t gp_seq;		 /* grace periods opened */
};

/* Fill @f with pool-backed allocation and single-CPU defaults (see above). */
void s2_freestanding_init(struct s2_freestanding *f, struct s2_page_pool *pool);

/*
 * Make @f's RCU correct on @ncpus CPUs (indices 0 .. ncpus - 1, as
 * @this_cpu(env.ctx) returns them for the calling CPU): synchronize_rcu
 * waits until every other CPU is offline or has called
 * s2_fs_rcu_quiescent() since it began. All CPUs start offline: each calls
 * s2_fs_rcu_online() before its first call into the library. Call after
 * s2_freestanding_init(), before the VM is created. Returns 0 or -EINVAL.
 */
int s2_freestanding_smp(struct s2_freestanding *f, struct s2_fs_cpu *cpus, unsigned ncpus,
			unsigned (*this_cpu)(void *ctx));
/*
 * CPU @cpu holds no reference into the library's data: call it where none
 * of its calls into the library is in progress, at least once per turn of
 * the CPU's loop (before guest entry, at the top of a host loop).
 */
void s2_fs_rcu_quiescent(struct s2_freestanding *f, unsigned cpu);
/*
 * CPU @cpu makes no library call until s2_fs_rcu_online() (the guest runs,
 * the CPU idles or waits): grace periods do not wait for it meanwhile.
 * Around guest entry: offline right before, online right after the exit.
 */
void s2_fs_rcu_offline(struct s2_freestanding *f, unsigned cpu);
void s2_fs_rcu_online(struct s2_freestanding *f, unsigned cpu);

#endif
