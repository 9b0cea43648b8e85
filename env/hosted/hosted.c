// SPDX-License-Identifier: MIT
/* The hosted environment: POSIX, liburcu-bp's grace periods with this env's
 * own call_rcu thread, simulated host memory. */
#include "s2mmu/env-hosted.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <urcu-bp.h>
/* liburcu maps the short names to its flavour with macros, which would also
 * rename the ops struct's fields: use the flavour's own names. */
#undef synchronize_rcu
#undef call_rcu
#undef rcu_barrier
#undef rcu_read_lock
#undef rcu_read_unlock

#include "s2mmu/memslot.h"

/*
 * ThreadSanitizer does not see the ordering liburcu's grace periods give
 * (the library is not instrumented): readers release a token that grace
 * periods acquire (below).
 */
#if defined(__SANITIZE_THREAD__)
#define H_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define H_TSAN 1
#endif
#endif
#ifdef H_TSAN
#include <sanitizer/tsan_interface.h>
#define h_tsan_release(p) __tsan_release(p)
#define h_tsan_acquire(p) __tsan_acquire(p)
#else
#define h_tsan_release(p) ((void)(p))
#define h_tsan_acquire(p) ((void)(p))
#endif

static struct s2_hosted *H(void *ctx)
{
	return ctx;
}

/* Count-based injection: the fail_alloc_nth-th counted call fails. */
static bool h_nth_fails(struct s2_hosted *h)
{
	uint64_t k = __atomic_add_fetch(&h->alloc_calls, 1, __ATOMIC_RELAXED);
	long nth = __atomic_load_n(&h->fail_alloc_nth, __ATOMIC_RELAXED);

	if (nth <= 0 || k < (uint64_t)nth || (k > (uint64_t)nth && !h->fail_alloc_persist))
		return false;
	__atomic_fetch_add(&h->alloc_failed, 1, __ATOMIC_RELAXED);
	return true;
}

static bool h_may_alloc(struct s2_hosted *h)
{
	long left = __atomic_load_n(&h->fail_alloc_after, __ATOMIC_RELAXED);

	if (h_nth_fails(h))
		return false;
	if (left < 0)
		return true;
	if (left == 0)
		return false;
	__atomic_fetch_sub(&h->fail_alloc_after, 1, __ATOMIC_RELAXED);
	return true;
}

/*
 * Freed 4 KiB table pages kept for reuse, up to H_PAGE_CACHE of them for the
 * process: glibc's aligned_alloc of one page splits a larger chunk and
 * consolidates on free (about 1 us a page in bench_map, five times the rest
 * of a 1 GiB kvm_mmu_map_range call). A page is zeroed when it is freed
 * and handed out as it is: the caller that links a new table does not wait
 * for 64 cold cache lines to be written (about 150 ns a page in bench_map),
 * as a kernel that zeroes pages on free or in the background does. Most
 * tables are freed after a grace period by the call_rcu thread, which
 * then does the zeroing; the few a write side unlinks while no lockless
 * walk is in flight are freed at once by the thread that unlinked them
 * (core/mmu.c), and come back hot, last in first out. Linked through each
 * page's first word (cleared when taken), under a spinlock. Off under the
 * sanitizers, which must see every page freed and allocated (use after
 * free).
 */
#if defined(H_TSAN) || defined(__SANITIZE_ADDRESS__)
#define H_PAGE_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define H_PAGE_CACHE 0
#endif
#endif
#ifndef H_PAGE_CACHE
#define H_PAGE_CACHE 1024
#endif
#if H_PAGE_CACHE
static struct {
	void *head;
	unsigned n;
	uint32_t lock;
} h_pages;

static void h_pages_lock(void)
{
	while (__atomic_exchange_n(&h_pages.lock, 1, __ATOMIC_ACQUIRE))
		sched_yield();
}

static void h_pages_unlock(void)
{
	__atomic_store_n(&h_pages.lock, 0, __ATOMIC_RELEASE);
}

static void *h_pages_get(size_t bytes)
{
	void *p = NULL;

	if (bytes != 4096 || !__atomic_load_n(&h_pages.n, __ATOMIC_RELAXED))
		return NULL;
	h_pages_lock();
	if (h_pages.head) {
		p = h_pages.head;
		h_pages.head = *(void **)p;
		h_pages.n--;
	}
	h_pages_unlock();
	if (p)
		*(void **)p = NULL; /* the rest was zeroed by h_pages_put() */
	return p;
}

static bool h_pages_put(void *p, size_t bytes)
{
	bool kept = false;

	if (bytes != 4096 || __atomic_load_n(&h_pages.n, __ATOMIC_RELAXED) >= H_PAGE_CACHE)
		return false;
	memset(p, 0, bytes);
	h_pages_lock();
	if (h_pages.n < H_PAGE_CACHE) {
		*(void **)p = h_pages.head;
		h_pages.head = p;
		h_pages.n++;
		kept = true;
	}
	h_pages_unlock();
	return kept;
}
#else
static void *h_pages_get(size_t bytes)
{
	(void)bytes;
	return NULL;
}

static bool h_pages_put(void *p, size_t bytes)
{
	(void)p;
	(void)bytes;
	return false;
}
#endif

static void *h_alloc_table(void *ctx, size_t bytes, hpa_t *pa)
{
	struct s2_hosted *h = H(ctx);
	void *p;

	if (bytes < 4096 || (bytes & (bytes - 1)) || !h_may_alloc(h))
		return NULL;
	p = h_pages_get(bytes);
	if (!p) {
		p = aligned_alloc(bytes, bytes);
		if (!p)
			return NULL;
		memset(p, 0, bytes);
	}
	*pa = (hpa_t)(uintptr_t)p;
	__atomic_fetch_add(&h->table_allocs, bytes >> 12, __ATOMIC_RELAXED);
	return p;
}

static void h_free_table(void *ctx, void *va, hpa_t pa, size_t bytes)
{
	struct s2_hosted *h = H(ctx);

	(void)pa;
	__atomic_fetch_add(&h->table_frees, bytes >> 12, __ATOMIC_RELAXED);
	if (!h_pages_put(va, bytes))
		free(va);
}

static void *h_zalloc(void *ctx, size_t bytes)
{
	struct s2_hosted *h = H(ctx);
	void *p;

	if (!h_may_alloc(h))
		return NULL;
	p = calloc(1, bytes);
	if (p)
		__atomic_fetch_add(&h->meta_allocs, 1, __ATOMIC_RELAXED);
	return p;
}

static void h_free(void *ctx, void *p)
{
	struct s2_hosted *h = H(ctx);

	if (!p)
		return;
	__atomic_fetch_add(&h->meta_frees, 1, __ATOMIC_RELAXED);
	free(p);
}

/*
 * Every read-side critical section ends before a grace period that began
 * after it does: readers release this token on unlock, grace periods (and
 * the callbacks run after them) acquire it, so TSan sees a free after
 * synchronize_rcu ordered after the readers' last access.
 */
static char h_reader_token;

static void h_synchronize_rcu(void *ctx)
{
	(void)ctx;
	urcu_bp_synchronize_rcu();
	h_tsan_acquire(&h_reader_token);
}

/*
 * call_rcu and rcu_barrier: a queue this env owns and one thread that runs
 * it, instead of liburcu's call_rcu thread. liburcu's thread sleeps 10 ms
 * after every wake-up before it takes its batch, so each rcu_barrier (every
 * kvm_destroy_vm, every s2_hosted_quiesce) waited about 10 ms: most of the
 * wall time of tests that make many VMs (bench_grace, docs/bench.md). Ours
 * takes what is queued at once, waits for one grace period
 * (urcu_bp_synchronize_rcu, the same readers) and runs the batch; a barrier
 * waits until every callback queued before it has run. The queue's mutex
 * orders the hand-offs for ThreadSanitizer too. Started on the first
 * call_rcu; it never exits (nothing is queued once the process ends).
 */
struct h_rcu_cb {
	struct h_rcu_cb *next;
	void (*fn)(void *arg);
	void *arg;
	struct s2_hosted *h;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t work; /* the queue became non-empty */
	pthread_cond_t done; /* a batch has run */
	struct h_rcu_cb *head, **tail;
	uint64_t queued, ran; /* callbacks queued and run, under lock */
	bool started;
} h_cbq = { .lock = PTHREAD_MUTEX_INITIALIZER,
	    .work = PTHREAD_COND_INITIALIZER,
	    .done = PTHREAD_COND_INITIALIZER,
	    .tail = &h_cbq.head };

static void *h_cb_thread(void *arg)
{
	(void)arg;
	for (;;) {
		struct h_rcu_cb *cb;
		uint64_t n = 0;

		pthread_mutex_lock(&h_cbq.lock);
		while (!h_cbq.head)
			pthread_cond_wait(&h_cbq.work, &h_cbq.lock);
		cb = h_cbq.head;
		h_cbq.head = NULL;
		h_cbq.tail = &h_cbq.head;
		pthread_mutex_unlock(&h_cbq.lock);
		/* One grace period for the batch: every reader that could see
		 * what a callback frees was inside before it was queued. */
		urcu_bp_synchronize_rcu();
		h_tsan_acquire(&h_reader_token);
		while (cb) {
			struct h_rcu_cb *next = cb->next;
			struct s2_hosted *h = cb->h;

			cb->fn(cb->arg);
			free(cb);
			__atomic_fetch_add(&h->rcu_done, 1, __ATOMIC_RELEASE);
			n++;
			cb = next;
		}
		pthread_mutex_lock(&h_cbq.lock);
		h_cbq.ran += n;
		pthread_cond_broadcast(&h_cbq.done);
		pthread_mutex_unlock(&h_cbq.lock);
	}
	return NULL;
}

static int h_call_rcu(void *ctx, void (*fn)(void *arg), void *arg)
{
	struct h_rcu_cb *cb;
	int r = 0;

	if (!h_may_alloc(H(ctx)))
		return -ENOMEM;
	cb = malloc(sizeof(*cb));
	if (!cb)
		return -ENOMEM;
	*cb = (struct h_rcu_cb){ .fn = fn, .arg = arg, .h = H(ctx) };
	pthread_mutex_lock(&h_cbq.lock);
	if (!h_cbq.started) {
		pthread_attr_t a;
		pthread_t t;

		if (pthread_attr_init(&a)) {
			r = -ENOMEM;
		} else {
			pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
			r = pthread_create(&t, &a, h_cb_thread, NULL) ? -ENOMEM : 0;
			pthread_attr_destroy(&a);
		}
		h_cbq.started = !r;
	}
	if (!r) {
		__atomic_fetch_add(&cb->h->rcu_queued, 1, __ATOMIC_RELAXED);
		*h_cbq.tail = cb;
		h_cbq.tail = &cb->next;
		h_cbq.queued++;
		pthread_cond_signal(&h_cbq.work);
	}
	pthread_mutex_unlock(&h_cbq.lock);
	if (r)
		free(cb); /* the caller waits for a grace period itself */
	return r;
}

static void h_rcu_barrier_all(void)
{
	pthread_mutex_lock(&h_cbq.lock);
	for (uint64_t target = h_cbq.queued; h_cbq.ran < target;)
		pthread_cond_wait(&h_cbq.done, &h_cbq.lock);
	pthread_mutex_unlock(&h_cbq.lock);
}

static void h_rcu_barrier(void *ctx)
{
	(void)ctx;
	h_rcu_barrier_all();
}

static void h_rcu_read_lock(void *ctx)
{
	(void)ctx;
	urcu_bp_read_lock();
}

static void h_rcu_read_unlock(void *ctx)
{
	(void)ctx;
	h_tsan_release(&h_reader_token);
	urcu_bp_read_unlock();
}

static void h_relax(void *ctx)
{
	(void)ctx;
	sched_yield();
}

/* Every thread of this process that is running executes a full barrier
 * (registered in s2_hosted_init; without registration the hook is unset). */
static void h_membarrier(void *ctx)
{
	(void)ctx;
	/* Registered, so it cannot fail short of a kernel bug. */
	while (syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0))
		sched_yield();
}

static void h_kick(void *ctx, struct kvm_vcpu *vcpu)
{
	(void)vcpu;
	__atomic_fetch_add(&H(ctx)->kicks, 1, __ATOMIC_RELAXED);
}

/* The simulated host maps hva to pfn hva >> 12, as huge as host_level says
 * where alignment allows (the core checks congruence itself). */
static int h_gfn_to_pfn(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, bool write,
			struct s2_pfn_info *out)
{
	struct s2_hosted *h = H(ctx);
	hva_t hva = slot->userspace_addr + ((gfn - slot->base_gfn) << 12);

	/* A relaxed load and store, not a locked add: this runs on every
	 * fault, and tests read the count only when their vcpus are idle. */
	__atomic_store_n(&h->pfn_lookups, __atomic_load_n(&h->pfn_lookups, __ATOMIC_RELAXED) + 1,
			 __ATOMIC_RELAXED);
	if (write && h->host_readonly)
		return -EFAULT;
	out->pfn = hva >> 12;
	out->writable = !h->host_readonly;
	out->host_level = h->host_level;
	out->memtype = 0;
	/* The simulated host maps every block congruently (pfn = hva >> 12)
	 * and changes only with an invalidation, which tests issue. */
	out->block_stable = !h->no_block_reuse && !h->pfn_hook;
	if (h->pfn_hook)
		h->pfn_hook(h, slot, gfn);
	return 0;
}

static void h_tlb_flush_vm(void *ctx, struct kvm *kvm)
{
	(void)kvm;
	__atomic_fetch_add(&H(ctx)->hw_flush_vm, 1, __ATOMIC_RELAXED);
}

static void h_tlb_flush_range(void *ctx, struct kvm *kvm, gpa_t gpa, uint64_t size)
{
	(void)kvm;
	(void)gpa;
	(void)size;
	__atomic_fetch_add(&H(ctx)->hw_flush_range, 1, __ATOMIC_RELAXED);
}

static void h_dcache_clean_inval(void *ctx, hpa_t pa, uint64_t size)
{
	struct s2_hosted *h = H(ctx);

	__atomic_fetch_add(&h->dcache_cleans, 1, __ATOMIC_RELAXED);
	/* Faults on several vcpus clean concurrently. */
	__atomic_store_n(&h->last_clean_pa, pa, __ATOMIC_RELAXED);
	__atomic_store_n(&h->last_clean_size, size, __ATOMIC_RELAXED);
}

static void h_log(void *ctx, enum s2_log_level level, const char *msg)
{
	struct s2_hosted *h = H(ctx);

	if (level == S2_LOG_TRACE) {
		char line[400];
		int n = snprintf(line, sizeof(line), "%s\n", msg);

		/* One write a line: concurrent callers' lines do not mix. */
		if (h->trace_fd >= 0 && n > 0 && (size_t)n < sizeof(line))
			(void)!write(h->trace_fd, line, (size_t)n);
		return;
	}
	__atomic_fetch_add(&h->logs, 1, __ATOMIC_RELAXED);
	snprintf(h->last_log, sizeof(h->last_log), "%s", msg);
	if (!h->quiet)
		fprintf(stderr, "[%d] %s\n", (int)level, msg);
}

void s2_hosted_init(struct s2_hosted *h)
{
	memset(h, 0, sizeof(*h));
	h->ops = (struct s2_env_ops){
		.alloc_table = h_alloc_table,
		.free_table = h_free_table,
		.zalloc = h_zalloc,
		.free = h_free,
		.synchronize_rcu = h_synchronize_rcu,
		.call_rcu = h_call_rcu,
		.rcu_barrier = h_rcu_barrier,
		.rcu_read_lock = h_rcu_read_lock,
		.rcu_read_unlock = h_rcu_read_unlock,
		.relax = h_relax,
		.kick = h_kick,
		.gfn_to_pfn = h_gfn_to_pfn,
		.tlb_flush_vm = h_tlb_flush_vm,
		.tlb_flush_range = h_tlb_flush_range,
		.dcache_clean_inval = h_dcache_clean_inval,
		.log = h_log,
	};
	/* The fence-free read side of mmu_lock, where the kernel offers the
	 * barrier (Linux 4.14 and later; a seccomp filter may refuse it). */
	if (!syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0))
		h->ops.membarrier = h_membarrier;
	h->env.ops = &h->ops;
	h->env.ctx = h;
	h->host_level = 3;
	h->fail_alloc_after = -1;
	h->trace_fd = -1;
}

uint64_t s2_hosted_pages_in_use(const struct s2_hosted *h)
{
	return __atomic_load_n(&h->table_allocs, __ATOMIC_RELAXED) -
	       __atomic_load_n(&h->table_frees, __ATOMIC_RELAXED);
}

uint64_t s2_hosted_meta_in_use(const struct s2_hosted *h)
{
	return __atomic_load_n(&h->meta_allocs, __ATOMIC_RELAXED) -
	       __atomic_load_n(&h->meta_frees, __ATOMIC_RELAXED);
}

uint64_t s2_hosted_rcu_pending(const struct s2_hosted *h)
{
	/* Done first: a callback counted done was counted queued before. */
	uint64_t done = __atomic_load_n(&h->rcu_done, __ATOMIC_ACQUIRE);

	return __atomic_load_n(&h->rcu_queued, __ATOMIC_RELAXED) - done;
}

uint64_t s2_hosted_allocs_in_use(const struct s2_hosted *h)
{
	return s2_hosted_pages_in_use(h) + s2_hosted_meta_in_use(h) + s2_hosted_rcu_pending(h);
}

void s2_hosted_fail_nth(struct s2_hosted *h, long nth, bool persist)
{
	h->fail_alloc_persist = persist;
	__atomic_store_n(&h->alloc_calls, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&h->alloc_failed, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&h->fail_alloc_nth, nth > 0 ? nth : 0, __ATOMIC_RELAXED);
}

void s2_hosted_quiesce(struct s2_hosted *h)
{
	(void)h;
	h_rcu_barrier_all();
}
