/* SPDX-License-Identifier: MIT */
/*
 * Helpers for a freestanding embedder (a bare-metal hypervisor): a page pool
 * that serves table pages and small metadata from one memory region the
 * hypervisor hands over, and an env with single-CPU defaults to start from.
 *
 * The embedder still owns its env: s2_freestanding_init() fills the ops with
 * the pool and trivial RCU (synchronize_rcu is a no-op, which is correct only
 * when no other CPU walks the tables in software: one hypervisor CPU, or CPUs
 * that take mmu_lock; hardware walks are covered by the flush that precedes
 * every free). It leaves gfn_to_pfn, kick, log and the TLB hooks NULL for the
 * embedder to set.
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

struct s2_freestanding {
	struct s2_env env;
	struct s2_env_ops ops;
	struct s2_page_pool *pool;
};

/* Fill @f with pool-backed allocation and single-CPU defaults (see above). */
void s2_freestanding_init(struct s2_freestanding *f, struct s2_page_pool *pool);

#endif
