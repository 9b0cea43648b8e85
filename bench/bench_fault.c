// SPDX-License-Identifier: MIT
/*
 * bench_fault: what the fault path costs per 4 KiB page when it cannot take
 * the per-vcpu fast path, and how the fast path scales to two vcpus, for
 * every format built in, beside what the bare operation costs on the same
 * machine in the same run. bench_mmu's populate measures mostly the fast
 * path (a fault in the host block of the vcpu's last full fault is one
 * trylock, a few loads and one compare-and-exchange; docs/embedding.md).
 *
 *  populate_full   bench_mmu's populate (one kvm_tdp_page_fault per page,
 *                  sequential gfns, BENCH_PAGES pages, default 1M = 4 GiB of
 *                  gpa, in one memslot of a VM limited to 4 KiB leaves) on a
 *                  hosted env with no_block_reuse set, so gfn_to_pfn never
 *                  promises block_stable and every fault takes the full path:
 *                  memslot, gfn_to_pfn, level pick, mmu_lock, descent.
 *    limit         naive_walk: bench_mmu's (per page, a 4-level walk from the
 *                  root of a fresh radix tree, installing missing 512-entry
 *                  tables from the hosted env's alloc_table and the leaf with
 *                  compare-and-exchange). No target: the row says what a full
 *                  fault costs beside the fast one.
 *  populate_2vcpu  the same populate, fast path on, by two vcpus of one VM on
 *                  two threads started together: thread 0 faults the first
 *                  half of the memslot, thread 1 the second, each in order.
 *                  ns/page is the wall time of the whole populate (first
 *                  start to last end) over all pages.
 *    limit         naive_walk_2t: the same naive walk by two threads over the
 *                  same halves into one shared fresh radix tree (tables
 *                  installed by compare-and-exchange, so the threads share
 *                  the upper levels), timed the same way.
 *
 * Each populate_full run also checks that no fault took the fast path
 * (faults_fast stays 0), and a reference fast run (one vcpu, block_stable
 * on; printed below the table, not a BENCH row) that all but one fault per
 * 256 pages did. Every run checks that every fault returned RET_PF_FIXED and
 * that exactly BENCH_PAGES 4 KiB leaves exist; the range is zapped (and
 * checked empty) and s2_hosted_quiesce'd between runs.
 *
 * Table memory stays with the process: glibc hands the free top of a thread
 * arena back to the kernel (and the main arena's beyond 128 KiB), so every
 * two-thread run, and some one-thread runs, would page in afresh the memory
 * their tables take (~16 MiB for 1M pages: an aligned 4 KiB block costs
 * glibc up to 8 KiB), some 4000 page faults per run that on a VM cost more
 * than the walk itself (naive_walk_2t measured 5-9 ns/page with them, 2.2-3
 * without). bench_common.h raises M_TRIM_THRESHOLD for every benchmark, and
 * one untimed round of both naive walks fills the arenas first, so limit and
 * library alike install into memory the process already has.
 *
 * Runs are interleaved: each of BENCH_REPS (default 5) repetitions measures,
 * for every format in turn, the naive walk, populate_full, the reference
 * run, naive_walk_2t and populate_2vcpu. One-thread loops are timed in chunks
 * of BENCH_CHUNK pages (default 4096) and reported as the sum of each
 * chunk's best time (bench_common.h says why); two-thread runs are one wall
 * time each, reported as their best run. The limits are shared by every
 * format's rows. Other knobs: BENCH_PAGES, BENCH_FMT (one format name),
 * BENCH_OPS (populate_full or populate_2vcpu: only those rows; for
 * profiling), BENCH_STRICT=1 (exit 1 when a target is missed).
 */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_common.h"
#include "bench/bench_walk.h"
#include "s2mmu/env-hosted.h"
#include "s2mmu/s2mmu.h"

#define POPULATE_2VCPU_TARGET 1.5 /* as single-vcpu populate (issue 2) */

#define BASE_GFN 0x100000ull	   /* the memslot starts at 4 GiB */
#define HVA_BASE 0x7f0000000000ull /* simulated host memory */

/* One hosted VM with its vcpus. */
struct vm {
	struct s2_hosted h;
	struct kvm *kvm;
	struct kvm_vcpu *vcpu[2];
};

struct fmt_bench {
	enum s2_fmt_id id;
	unsigned fmt_flags;
	const char *name;
	struct vm full; /* no_block_reuse: every fault takes the full path */
	struct vm fast; /* two vcpus, fast path on */
	struct bench_chunks populate_full;
	struct bench_chunks populate_fast; /* the reference run, vcpu 0 alone */
	struct bench_samples populate_2vcpu;
};

/* Pages per timed chunk of a one-thread populate loop (see bench_common.h). */
static uint64_t chunk_pages;

static unsigned nr_chunks(uint64_t pages)
{
	return (unsigned)((pages + chunk_pages - 1) / chunk_pages);
}

/* ------------------------------------------------------------------------ */
/* The limits                                                                */
/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/* Two threads started together                                             */
/* ------------------------------------------------------------------------ */

/*
 * Thread i (0 or 1) does its half, [first, first + n) of the pages, once
 * both are running, and notes when it started and ended; the run's time is
 * from the first start to the last end, so thread creation and joining are
 * not in it. The threads meet at a spinning barrier: at a sleeping one
 * (pthread_barrier_wait) the last to arrive starts at once while the other
 * waits for its wake-up, which on a VM whose other cpu is idle (halted) took
 * 1-4 ms, as long as half a run.
 */
struct half {
	unsigned *ready; /* threads at the barrier */
	uint64_t first, n;
	uint64_t *root;	       /* naive walk: the shared tree */
	struct kvm_vcpu *vcpu; /* library: this thread's vcpu */
	uint64_t done;	       /* leaves installed / faults fixed */
	uint64_t t0, t1;
};

static void start_together(unsigned *ready)
{
	__atomic_add_fetch(ready, 1, __ATOMIC_ACQ_REL);
	/* Spin while the other thread may be on its way to a cpu; yield now
	 * and then in case the scheduler put both on this one. */
	for (unsigned i = 1; __atomic_load_n(ready, __ATOMIC_ACQUIRE) < 2; i++)
		if (!(i % 4096))
			sched_yield();
}

static void *naive_half(void *arg)
{
	struct half *w = arg;

	start_together(w->ready);
	w->t0 = bench_now_ns();
	w->done = bench_naive_populate(w->root, BASE_GFN + w->first, w->n,
				       (HVA_BASE >> 12) + w->first);
	w->t1 = bench_now_ns();
	return NULL;
}

static void *fault_half(void *arg)
{
	struct half *w = arg;
	uint64_t fixed = 0;

	start_together(w->ready);
	w->t0 = bench_now_ns();
	for (gfn_t g = BASE_GFN + w->first, end = g + w->n; g < end; g++)
		fixed += kvm_tdp_page_fault(w->vcpu, gfn_to_gpa(g), S2_ACC_READ | S2_ACC_WRITE) ==
			 RET_PF_FIXED;
	w->t1 = bench_now_ns();
	w->done = fixed;
	return NULL;
}

/* Run @fn on two threads over the two halves of @pages; returns the wall
 * time and the sum of their done counts in *@done. */
static uint64_t run_2t(void *(*fn)(void *), struct half w[2], uint64_t pages, uint64_t *done)
{
	unsigned ready = 0;
	pthread_t t[2];
	int r;

	for (unsigned i = 0; i < 2; i++) {
		w[i].ready = &ready;
		w[i].first = i ? pages / 2 : 0;
		w[i].n = i ? pages - pages / 2 : pages / 2;
		w[i].done = 0;
		if ((r = pthread_create(&t[i], NULL, fn, &w[i]))) {
			fprintf(stderr, "bench_fault: pthread_create: %s\n", strerror(r));
			exit(2);
		}
	}
	for (unsigned i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	*done = w[0].done + w[1].done;
	return (w[0].t1 > w[1].t1 ? w[0].t1 : w[1].t1) - (w[0].t0 < w[1].t0 ? w[0].t0 : w[1].t0);
}

static void measure_naive_walk_2t(struct bench_samples *s, uint64_t pages)
{
	struct half w[2] = { { .root = bench_naive_table() }, { 0 } };
	uint64_t got, ns;

	w[1].root = w[0].root;
	ns = run_2t(naive_half, w, pages, &got);
	if (got != pages) {
		fprintf(stderr,
			"bench_fault: two-thread naive walk installed %" PRIu64 " of %" PRIu64 "\n",
			got, pages);
		exit(2);
	}
	bench_add(s, ns, pages);
	bench_naive_free(w[0].root, BENCH_NAIVE_LEVELS);
}

/* ------------------------------------------------------------------------ */
/* The library                                                               */
/* ------------------------------------------------------------------------ */

/*
 * A quiet hosted VM of @b's format (48-bit gpa, 4 KiB leaves only) with
 * @nr_vcpus vcpus and one memslot of @pages pages; @no_block_reuse is set
 * before the VM exists. As bench_vm_create + bench_vm_slot, which have one
 * vcpu and no say over the env.
 */
static int vm_setup(const struct fmt_bench *b, struct vm *vm, unsigned nr_vcpus,
		    bool no_block_reuse, uint64_t pages)
{
	struct kvm_vm_params p = { .fmt = b->id,
				   .gpa_bits = 48,
				   .fmt_flags = b->fmt_flags,
				   .max_leaf_level = 1,
				   .max_vcpus = nr_vcpus,
				   .env = &vm->h.env };
	int r;

	s2_hosted_init(&vm->h);
	vm->h.quiet = true;
	vm->h.no_block_reuse = no_block_reuse;
	r = kvm_create_vm(&p, &vm->kvm);
	if (r)
		return r;
	for (unsigned i = 0; i < nr_vcpus && !r; i++)
		r = kvm_vcpu_create(vm->kvm, i, &vm->vcpu[i]);
	if (!r)
		r = bench_vm_slot(vm->kvm, 0, BASE_GFN, pages, HVA_BASE);
	if (r)
		kvm_destroy_vm(vm->kvm);
	return r;
}

static void fail(const struct fmt_bench *b, const char *what, long got, uint64_t want)
{
	fprintf(stderr, "bench_fault: %s: %s: got %ld, want %" PRIu64 "\n", b->name, what, got,
		want);
	exit(2);
}

static uint64_t faults_fast(const struct fmt_bench *b, struct vm *vm)
{
	struct kvm_mmu_stats st;

	if (kvm_get_stats(vm->kvm, &st))
		fail(b, "kvm_get_stats", -1, 0);
	return st.faults_fast;
}

/* After a populate: @fixed faults returned RET_PF_FIXED, and exactly @pages
 * 4 KiB leaves exist, or we timed errors. */
static void check_populated(const struct fmt_bench *b, struct vm *vm, uint64_t fixed,
			    uint64_t pages)
{
	struct kvm_mmu_stats st;

	if (fixed != pages)
		fail(b, "faults fixed", (long)fixed, pages);
	if (kvm_get_stats(vm->kvm, &st) || st.cur_leaves[1] != pages || st.cur_leaves[2])
		fail(b, "4 KiB leaves", (long)st.cur_leaves[1], pages);
}

/* Zap the whole range, check it left nothing, free the tables. */
static void zap(const struct fmt_bench *b, struct vm *vm, uint64_t pages)
{
	struct kvm_mmu_stats st;
	long z = kvm_zap_gfn_range(vm->kvm, BASE_GFN, BASE_GFN + pages);

	if (z < 0 || (uint64_t)z != pages)
		fail(b, "leaves zapped", z, pages);
	if (kvm_get_stats(vm->kvm, &st) || st.cur_table_pages || st.cur_leaves[1])
		fail(b, "table pages left after zap", (long)st.cur_table_pages, 0);
	s2_hosted_quiesce(&vm->h);
}

/* One vcpu faults every page in order, timed in chunks into @c. */
static void populate_1(const struct fmt_bench *b, struct vm *vm, struct bench_chunks *c,
		       uint64_t pages)
{
	uint64_t fixed = 0, total = 0;

	for (unsigned k = 0; k < c->n; k++) {
		gfn_t g = BASE_GFN + k * chunk_pages;
		gfn_t end = g + chunk_pages < BASE_GFN + pages ? g + chunk_pages : BASE_GFN + pages;
		uint64_t t0 = bench_now_ns();

		for (; g < end; g++)
			fixed += kvm_tdp_page_fault(vm->vcpu[0], gfn_to_gpa(g),
						    S2_ACC_READ | S2_ACC_WRITE) == RET_PF_FIXED;
		t0 = bench_now_ns() - t0;
		bench_chunks_note(c, k, t0);
		total += t0;
	}
	check_populated(b, vm, fixed, pages);
	bench_add(&c->runs, total, pages);
}

static void measure_populate_full(struct fmt_bench *b, uint64_t pages)
{
	populate_1(b, &b->full, &b->populate_full, pages);
	/* Not one fault may have taken the fast path (since the VM began). */
	if (faults_fast(b, &b->full))
		fail(b, "populate_full: fast-path faults", (long)faults_fast(b, &b->full), 0);
	zap(b, &b->full, pages);
}

/* Fast-path faults in a populate of @pages by @vm since *@before: all but
 * the first fault under each 512-entry table, with room to spare. */
static void check_fast(const struct fmt_bench *b, struct vm *vm, const char *what, uint64_t *before,
		       uint64_t pages)
{
	uint64_t now = faults_fast(b, vm);

	if (now - *before < pages - pages / 256)
		fail(b, what, (long)(now - *before), pages - pages / 256);
	*before = now;
}

static void measure_populate_fast(struct fmt_bench *b, uint64_t pages)
{
	uint64_t before = faults_fast(b, &b->fast);

	populate_1(b, &b->fast, &b->populate_fast, pages);
	check_fast(b, &b->fast, "reference populate: fast-path faults", &before, pages);
	zap(b, &b->fast, pages);
}

static void measure_populate_2vcpu(struct fmt_bench *b, uint64_t pages)
{
	struct half w[2] = { { .vcpu = b->fast.vcpu[0] }, { .vcpu = b->fast.vcpu[1] } };
	uint64_t before = faults_fast(b, &b->fast), fixed, ns;

	ns = run_2t(fault_half, w, pages, &fixed);
	check_populated(b, &b->fast, fixed, pages);
	check_fast(b, &b->fast, "populate_2vcpu: fast-path faults", &before, pages);
	bench_add(&b->populate_2vcpu, ns, pages);
	zap(b, &b->fast, pages);
}

int main(void)
{
	uint64_t pages = (uint64_t)bench_env_long("BENCH_PAGES", 1l << 20);
	unsigned reps = (unsigned)bench_env_long("BENCH_REPS", 5);
	const char *only_fmt = getenv("BENCH_FMT");
	const char *ops = getenv("BENCH_OPS");
	bool do_full = !ops || !*ops || strstr(ops, "populate_full");
	bool do_2vcpu = !ops || !*ops || strstr(ops, "populate_2vcpu");
	bool strict = bench_env_long("BENCH_STRICT", 0) == 1;
	struct fmt_bench *fb;
	struct bench_chunks walk;
	struct bench_samples walk_2t = { 0 };
	unsigned nr = 0;
	bool ok = true;

	chunk_pages = (uint64_t)bench_env_long("BENCH_CHUNK", 4096);
	if (reps > BENCH_MAX_SAMPLES)
		reps = BENCH_MAX_SAMPLES;
	if (pages < 2) {
		fprintf(stderr, "bench_fault: BENCH_PAGES must be at least 2\n");
		return 2;
	}
	fb = calloc(BENCH_NR_FMTS, sizeof(*fb));
	if (!fb) {
		perror("bench_fault: calloc");
		return 2;
	}
	bench_chunks_init(&walk, nr_chunks(pages));
	for (unsigned i = 0; i < BENCH_NR_FMTS; i++) {
		struct fmt_bench *b = &fb[nr];
		int r;

		if (!s2_fmt_supported(bench_fmts[i].id))
			continue;
		if (only_fmt && *only_fmt && strcmp(only_fmt, s2_fmt_name(bench_fmts[i].id)))
			continue;
		b->id = bench_fmts[i].id;
		b->fmt_flags = bench_fmts[i].fmt_flags;
		b->name = s2_fmt_name(b->id);
		bench_chunks_init(&b->populate_full, nr_chunks(pages));
		bench_chunks_init(&b->populate_fast, nr_chunks(pages));
		r = vm_setup(b, &b->full, 1, true, pages);
		if (!r && (r = vm_setup(b, &b->fast, 2, false, pages)))
			kvm_destroy_vm(b->full.kvm);
		if (r) {
			fprintf(stderr, "bench_fault: %s: setup failed: %d\n", b->name, r);
			return 2;
		}
		nr++;
	}
	if (!nr) {
		printf("bench_fault: no format to measure\n");
		return 0;
	}

	printf("bench_fault: %" PRIu64 " pages (%" PRIu64 " MiB of gpa) of 4 KiB leaves, %u runs:\n"
	       "  populate_full: sum over chunks of %" PRIu64
	       " pages of each chunk's best; populate_2vcpu: best wall time of two threads\n",
	       pages, pages >> 8, reps, chunk_pages);
	fflush(stdout);
	{
		/* Warm-up, not reported: fills the main and two thread arenas. */
		struct bench_chunks c;
		struct bench_samples s = { 0 };

		bench_chunks_init(&c, nr_chunks(pages));
		bench_naive_walk(&c, pages, chunk_pages, BASE_GFN, HVA_BASE >> 12);
		measure_naive_walk_2t(&s, pages);
		bench_chunks_free(&c);
	}
	for (unsigned rep = 0; rep < reps; rep++) {
		for (unsigned i = 0; i < nr; i++) {
			if (do_full) {
				bench_naive_walk(&walk, pages, chunk_pages, BASE_GFN,
						 HVA_BASE >> 12);
				measure_populate_full(&fb[i], pages);
			}
			measure_populate_fast(&fb[i], pages);
			if (do_2vcpu) {
				measure_naive_walk_2t(&walk_2t, pages);
				measure_populate_2vcpu(&fb[i], pages);
			}
		}
	}

	struct bench_row rows[2 * BENCH_NR_FMTS];
	unsigned nrows = 0;

	for (unsigned i = 0; i < nr; i++) {
		if (do_full)
			rows[nrows++] = (struct bench_row){
				.op = "populate_full",
				.fmt = fb[i].name,
				.ns = bench_chunks_best(&fb[i].populate_full, pages),
				.ns_median = bench_median(&fb[i].populate_full.runs),
				.limit = "naive_walk",
				.limit_ns = bench_chunks_best(&walk, pages),
				.limit_median = bench_median(&walk.runs),
				.target = 0,
			};
		if (do_2vcpu)
			rows[nrows++] = (struct bench_row){
				.op = "populate_2vcpu",
				.fmt = fb[i].name,
				.ns = bench_best(&fb[i].populate_2vcpu),
				.ns_median = bench_median(&fb[i].populate_2vcpu),
				.limit = "naive_walk_2t",
				.limit_ns = bench_best(&walk_2t),
				.limit_median = bench_median(&walk_2t),
				.target = POPULATE_2VCPU_TARGET,
			};
	}
	printf("\n");
	bench_print_table_head();
	for (unsigned i = 0; i < nrows; i++)
		ok &= bench_print_table_row(&rows[i]);

	/* The reference run, for scale: bench_mmu's populate row measures it. */
	printf("\nfor reference, populate with the fast path (1 vcpu, chunked as above):\n");
	for (unsigned i = 0; i < nr; i++) {
		double fast = bench_chunks_best(&fb[i].populate_fast, pages);

		printf("  %-10s %6.2f ns/page (median %.2f)", fb[i].name, fast,
		       bench_median(&fb[i].populate_fast.runs));
		if (do_full && fast > 0)
			printf("; a full fault costs %.2fx that",
			       bench_chunks_best(&fb[i].populate_full, pages) / fast);
		if (do_2vcpu && fast > 0)
			printf("; 2 vcpus run %.2fx as fast per page",
			       fast / bench_best(&fb[i].populate_2vcpu));
		printf("\n");
	}
	printf("\n");
	for (unsigned i = 0; i < nrows; i++)
		bench_print_line(&rows[i]);
	printf("bench_fault: %s\n", ok ? "every target met" : "some target MISSED");

	for (unsigned i = 0; i < nr; i++) {
		kvm_destroy_vm(fb[i].full.kvm);
		kvm_destroy_vm(fb[i].fast.kvm);
		bench_chunks_free(&fb[i].populate_full);
		bench_chunks_free(&fb[i].populate_fast);
	}
	bench_chunks_free(&walk);
	free(fb);
	return strict && !ok;
}
