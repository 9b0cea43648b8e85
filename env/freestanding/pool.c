// SPDX-License-Identifier: MIT
/*
 * A page pool for freestanding embedders: power-of-two size classes from
 * 64 B to 64 KiB, each block aligned to its size, carved from one region by a
 * bump pointer and recycled through per-class free lists. Small and
 * predictable rather than clever: a hypervisor sizes the region for its VMs.
 */
#include "s2mmu/env-freestanding.h"

#define S2_POOL_MIN_SHIFT 6

static int s2_pool_class(size_t bytes)
{
	int c = 0;
	size_t sz = 1u << S2_POOL_MIN_SHIFT;

	while (sz < bytes) {
		sz <<= 1;
		c++;
	}
	return c < S2_POOL_CLASSES ? c : -1;
}

static void s2_pool_lock(struct s2_page_pool *p)
{
	uint32_t z = 0;

	while (!__atomic_compare_exchange_n(&p->lock, &z, 1, false, __ATOMIC_ACQUIRE,
					    __ATOMIC_RELAXED))
		z = 0;
}

static void s2_pool_unlock(struct s2_page_pool *p)
{
	__atomic_store_n(&p->lock, 0, __ATOMIC_RELEASE);
}

static void s2_zero(void *va, size_t bytes)
{
	volatile uint64_t *q = va;

	for (size_t i = 0; i < bytes / 8; i++)
		q[i] = 0;
}

void s2_pool_init(struct s2_page_pool *pool, void *va, hpa_t pa, size_t bytes)
{
	s2_zero(pool, sizeof(*pool));
	pool->base = va;
	pool->base_pa = pa;
	pool->size = bytes;
}

void *s2_pool_alloc(struct s2_page_pool *pool, size_t bytes, hpa_t *pa)
{
	int c = s2_pool_class(bytes);
	size_t sz, off;
	uint8_t *va = NULL;

	if (c < 0 || !pool)
		return NULL;
	sz = (size_t)1 << (c + S2_POOL_MIN_SHIFT);
	s2_pool_lock(pool);
	if (pool->free[c]) {
		va = pool->free[c];
		pool->free[c] = *(void **)va;
	} else {
		/* Align the bump pointer in physical terms. */
		off = pool->used;
		off += (sz - ((pool->base_pa + off) & (sz - 1))) & (sz - 1);
		if (off <= pool->size && sz <= pool->size - off) {
			va = pool->base + off;
			pool->used = off + sz;
		}
	}
	if (va) {
		pool->in_use += sz;
		if (pool->in_use > pool->high_water)
			pool->high_water = pool->in_use;
	}
	s2_pool_unlock(pool);
	if (!va)
		return NULL;
	s2_zero(va, sz);
	if (pa)
		*pa = pool->base_pa + (hpa_t)(va - pool->base);
	return va;
}

void s2_pool_free(struct s2_page_pool *pool, void *va, size_t bytes)
{
	int c = s2_pool_class(bytes);

	if (!va || c < 0 || !pool)
		return;
	s2_pool_lock(pool);
	*(void **)va = pool->free[c];
	pool->free[c] = va;
	pool->in_use -= (size_t)1 << (c + S2_POOL_MIN_SHIFT);
	s2_pool_unlock(pool);
}

/* Metadata blocks carry their size in a 64-byte header so free() needs none. */
#define S2_META_HDR 64

static void *f_alloc_table(void *ctx, size_t bytes, hpa_t *pa)
{
	struct s2_freestanding *f = ctx;

	return s2_pool_alloc(f->pool, bytes, pa);
}

static void f_free_table(void *ctx, void *va, hpa_t pa, size_t bytes)
{
	struct s2_freestanding *f = ctx;

	(void)pa;
	s2_pool_free(f->pool, va, bytes);
}

static void *f_zalloc(void *ctx, size_t bytes)
{
	struct s2_freestanding *f = ctx;
	uint8_t *p = s2_pool_alloc(f->pool, bytes + S2_META_HDR, NULL);

	if (!p)
		return NULL;
	*(size_t *)p = bytes + S2_META_HDR;
	return p + S2_META_HDR;
}

static void f_free(void *ctx, void *ptr)
{
	struct s2_freestanding *f = ctx;
	uint8_t *p = ptr;

	if (!p)
		return;
	p -= S2_META_HDR;
	s2_pool_free(f->pool, p, *(size_t *)p);
}

static void f_synchronize_rcu(void *ctx)
{
	(void)ctx;
}

void s2_freestanding_init(struct s2_freestanding *f, struct s2_page_pool *pool)
{
	s2_zero(f, sizeof(*f));
	f->pool = pool;
	f->ops.alloc_table = f_alloc_table;
	f->ops.free_table = f_free_table;
	f->ops.zalloc = f_zalloc;
	f->ops.free = f_free;
	f->ops.synchronize_rcu = f_synchronize_rcu;
	f->ops.rcu_single_cpu = true;
	/* Tables all come from the pool: a constant offset, no hook call. */
	f->env.virt_offset = (int64_t)((uintptr_t)pool->base - (uintptr_t)pool->base_pa);
	f->env.ops = &f->ops;
	f->env.ctx = f;
	/* A CONFIG_S2_TRACE build traces to the embedder's log hook. */
	f->env.trace = true;
}
