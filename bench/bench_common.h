/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the benchmarks (each bench/NAME.c is its own binary, so
 * everything here is static inline): a monotonic clock, best-of-N sample
 * sets, the knobs every benchmark reads from the environment, and the two
 * outputs: a human table and one machine-readable line per row,
 *
 *   BENCH op=<name> fmt=<format> ns_per_page=<x> limit=<name> limit_ns=<y> ratio=<x/y>
 *
 * A "limit" is the same machine's cost of the bare operation, measured in the
 * same run, so the ratio says what the library adds on top and stays
 * comparable across machines and noisy neighbours. On a small shared machine
 * single runs jitter by tens of percent; the best of several runs is what
 * the code can do, so rows report the minimum (and keep the median for the
 * table, to show how noisy the run was).
 */
#ifndef S2MMU_BENCH_COMMON_H
#define S2MMU_BENCH_COMMON_H

#include <inttypes.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "s2mmu/env-hosted.h"
#include "s2mmu/s2mmu.h"

/*
 * Keep freed memory (zapped tables, the naive walks' trees) in malloc's
 * arenas instead of handing it back to the kernel at every free: otherwise
 * each run pays tens of thousands of kernel page faults to get it back, and
 * both the library's rows and their limits partly time glibc and the kernel.
 * Runs before main() in every benchmark.
 */
__attribute__((constructor)) static void bench_malloc_setup(void)
{
#ifdef M_TRIM_THRESHOLD
	mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

/* Nanoseconds from CLOCK_MONOTONIC. */
static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Keep the compiler from deleting work whose result is otherwise unused. */
static inline void bench_keep(uint64_t v)
{
	__asm__ __volatile__("" : : "r"(v) : "memory");
}

/* A positive integer knob from the environment (@def when unset or bad). */
static inline long bench_env_long(const char *name, long def)
{
	const char *s = getenv(name);
	char *end;
	long v;

	if (!s || !*s)
		return def;
	v = strtol(s, &end, 0);
	return (*end || v <= 0) ? def : v;
}

/* ---- sample sets: per-page costs of repeated runs ---- */

#define BENCH_MAX_SAMPLES 64

struct bench_samples {
	unsigned n;
	double v[BENCH_MAX_SAMPLES];
};

/* Record one run that took @ns for @pages pages (as ns per page). */
static inline void bench_add(struct bench_samples *s, uint64_t ns, uint64_t pages)
{
	if (s->n < BENCH_MAX_SAMPLES)
		s->v[s->n++] = (double)ns / (double)pages;
}

static inline double bench_best(const struct bench_samples *s)
{
	double b = s->n ? s->v[0] : 0;

	for (unsigned i = 1; i < s->n; i++)
		if (s->v[i] < b)
			b = s->v[i];
	return b;
}

static inline double bench_median(const struct bench_samples *s)
{
	double t[BENCH_MAX_SAMPLES];
	unsigned n = s->n;

	if (!n)
		return 0;
	memcpy(t, s->v, n * sizeof(t[0]));
	for (unsigned i = 1; i < n; i++) /* insertion sort: n is tiny */
		for (unsigned j = i; j && t[j - 1] > t[j]; j--) {
			double x = t[j];

			t[j] = t[j - 1];
			t[j - 1] = x;
		}
	return n & 1 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

/*
 * ---- chunked best-of-N ----
 *
 * A long loop (a million faults) is timed in fixed chunks, and each chunk
 * keeps its best time over the repetitions; the loop's cost is the sum of
 * those bests. On a shared machine a preemption or a burst of a neighbour
 * spoils a few chunks of one run, not the whole run, so the sum converges to
 * the quiet-machine cost with far fewer repetitions than a whole-run minimum.
 * It is still the cost of every page of the loop, in order.
 */
struct bench_chunks {
	unsigned n;		   /* chunks per run */
	uint64_t *best;		   /* best ns of each chunk so far (UINT64_MAX: none) */
	struct bench_samples runs; /* whole-run ns per page, for the median */
};

static inline void bench_chunks_init(struct bench_chunks *c, unsigned n)
{
	c->n = n;
	c->best = malloc(n * sizeof(*c->best));
	if (!c->best) {
		perror("bench: malloc");
		exit(2);
	}
	for (unsigned i = 0; i < n; i++)
		c->best[i] = UINT64_MAX;
	c->runs.n = 0;
}

static inline void bench_chunks_note(struct bench_chunks *c, unsigned i, uint64_t ns)
{
	if (ns < c->best[i])
		c->best[i] = ns;
}

/* Sum of the chunks' best times, as ns per page of the whole loop. */
static inline double bench_chunks_best(const struct bench_chunks *c, uint64_t pages)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < c->n; i++)
		sum += c->best[i];
	return (double)sum / (double)pages;
}

static inline void bench_chunks_free(struct bench_chunks *c)
{
	free(c->best);
	c->best = NULL;
}

/* ---- rows ---- */

struct bench_row {
	const char *op;	 /* "populate", "zap", ... */
	const char *fmt; /* "x86-ept", ... */
	double ns;	 /* best ns per page */
	double ns_median;
	const char *limit; /* "naive_walk", "locked_sweep", ... */
	double limit_ns;
	double limit_median;
	double target; /* largest acceptable ratio; 0 = none */
};

static inline double bench_ratio(const struct bench_row *r)
{
	return r->limit_ns > 0 ? r->ns / r->limit_ns : 0;
}

/* Decimals to print @ns with: 2, or 4 below 0.1 ns (get_dirty_log's copy
 * of one bit per page), so that a row and its limit stay readable. */
static inline int bench_prec(double ns)
{
	return ns < 0.1 ? 4 : 2;
}

/* The machine-readable line, one per row (scripts grep "^BENCH "). */
static inline void bench_print_line(const struct bench_row *r)
{
	printf("BENCH op=%s fmt=%s ns_per_page=%.*f limit=%s limit_ns=%.*f ratio=%.3f\n", r->op,
	       r->fmt, bench_prec(r->ns), r->ns, r->limit, bench_prec(r->limit_ns), r->limit_ns,
	       bench_ratio(r));
}

static inline void bench_print_table_head(void)
{
	printf("%-14s %-12s %10s %10s  %-13s %9s %9s %7s %7s  %s\n", "op", "format", "ns/page",
	       "(median)", "limit", "ns/page", "(median)", "ratio", "target", "");
}

/* One row of the human table; returns false when it misses its target. */
static inline bool bench_print_table_row(const struct bench_row *r)
{
	double ratio = bench_ratio(r);
	bool ok = !r->target || ratio <= r->target;

	printf("%-14s %-12s %10.*f %10.*f  %-13s %9.*f %9.*f %6.2fx ", r->op, r->fmt,
	       bench_prec(r->ns), r->ns, bench_prec(r->ns_median), r->ns_median, r->limit,
	       bench_prec(r->limit_ns), r->limit_ns, bench_prec(r->limit_median), r->limit_median,
	       ratio);
	if (r->target)
		printf("%6.2fx  %s\n", r->target, ok ? "ok" : "MISSED");
	else
		printf("%7s\n", "-");
	return ok;
}

/*
 * The human table of @n rows after a blank line, then a blank line and their
 * machine-readable lines; returns false when a row misses its target.
 */
static inline bool bench_print_rows(const struct bench_row *rows, unsigned n)
{
	bool ok = true;

	printf("\n");
	bench_print_table_head();
	for (unsigned i = 0; i < n; i++)
		ok &= bench_print_table_row(&rows[i]);
	printf("\n");
	for (unsigned i = 0; i < n; i++)
		bench_print_line(&rows[i]);
	return ok;
}

/* ---- the limits and the library, as every benchmark sets them up ---- */

/*
 * The locked-sweep limit: @pages entries, each (pfn of @first_pa + i) | @bits,
 * swept with one atomic exchange each. The least a zap that must see the A/D
 * bits hardware may set concurrently does.
 */
static inline void bench_xchg_sweep(struct bench_samples *s, uint64_t *e, uint64_t pages,
				    uint64_t first_pa, uint64_t bits)
{
	uint64_t sum = 0, t0, t1;

	for (uint64_t i = 0; i < pages; i++)
		e[i] = (((first_pa >> 12) + i) << 12) | bits;
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < pages; i++)
		sum += !!(__atomic_exchange_n(&e[i], 0, __ATOMIC_ACQ_REL) & bits);
	t1 = bench_now_ns();
	bench_keep(sum);
	bench_add(s, t1 - t0, pages);
}

/*
 * The plain-sweep limit: the same entries, each read and, where it holds
 * any of @clear, written back without them, one entry at a time with plain
 * (volatile: not vectorised, as a walker that hardware may race with reads
 * and writes each entry once) loads and stores. The least an operation
 * that may use plain stores does to every entry (aging under the write
 * side, write-protection for dirty logging).
 */
static inline void bench_plain_rmw_sweep(struct bench_samples *s, uint64_t *e, uint64_t pages,
					 uint64_t first_pa, uint64_t bits, uint64_t clear)
{
	volatile uint64_t *v = e;
	uint64_t t0, t1;

	for (uint64_t i = 0; i < pages; i++)
		e[i] = (((first_pa >> 12) + i) << 12) | bits;
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < pages; i++) {
		uint64_t x = v[i];

		if (x & clear)
			v[i] = x & ~clear;
	}
	t1 = bench_now_ns();
	bench_add(s, t1 - t0, pages);
}

/*
 * The plain-store limit of a zap: per entry a plain (volatile) load and,
 * where it is present (@bits), a plain store of 0. The least a zap does
 * where no exchange is needed: no hardware A/D, or leaves hardware has
 * nothing left to write in (young and dirty), as KVM zaps non-volatile
 * sptes.
 */
static inline void bench_plain_zap_sweep(struct bench_samples *s, uint64_t *e, uint64_t pages,
					 uint64_t first_pa, uint64_t bits)
{
	volatile uint64_t *v = e;
	uint64_t t0, t1, sum = 0;

	for (uint64_t i = 0; i < pages; i++)
		e[i] = (((first_pa >> 12) + i) << 12) | bits;
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < pages; i++) {
		uint64_t x = v[i];

		if (x & bits) {
			v[i] = 0;
			sum++;
		}
	}
	t1 = bench_now_ns();
	bench_keep(sum);
	bench_add(s, t1 - t0, pages);
}

/*
 * A quiet hosted VM of @fmt (48-bit gpa) with one vcpu, leaves up to
 * @max_leaf. Returns 0 or the failing call's errno, with nothing left behind.
 */
static inline int bench_vm_create(struct s2_hosted *h, enum s2_fmt_id fmt, unsigned fmt_flags,
				  unsigned max_leaf, struct kvm **kvm, struct kvm_vcpu **vcpu)
{
	struct kvm_vm_params p = { .fmt = fmt,
				   .gpa_bits = 48,
				   .fmt_flags = fmt_flags,
				   .max_leaf_level = max_leaf,
				   .max_vcpus = 1,
				   .env = &h->env };
	int r;

	s2_hosted_init(h);
	h->quiet = true;
	r = kvm_create_vm(&p, kvm);
	if (r)
		return r;
	r = kvm_vcpu_create(*kvm, 0, vcpu);
	if (r)
		kvm_destroy_vm(*kvm);
	return r;
}

/* Memslot @id: @pages 4 KiB pages at @base_gfn, backed from @hva. */
static inline int bench_vm_slot(struct kvm *kvm, unsigned id, gfn_t base_gfn, uint64_t pages,
				hva_t hva)
{
	struct kvm_memory_slot slot = {
		.id = id, .base_gfn = base_gfn, .npages = pages, .userspace_addr = hva
	};

	return kvm_set_memslot(kvm, &slot);
}

#endif
