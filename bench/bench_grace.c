// SPDX-License-Identifier: MIT
/*
 * bench_grace: how long a grace period of the hosted environment takes while
 * other threads are in and out of read-side sections, as memslot updates
 * and the end of dirty logging wait for one with vcpus faulting.
 *
 * Rows (x86-ept; us per call: median, 99th percentile and largest of
 * BENCH_GP_SAMPLES calls, default 200, and how many took 5 ms or more):
 *
 *  memslot_Rr   kvm_set_memslot of a one-page slot, then kvm_delete_memslot
 *               of it, each call timed (each waits for one grace period),
 *               while R threads (0, 1, 2) each fault in a loop through
 *               kvm_tdp_page_fault on their own vcpu over a 512-page
 *               memslot (after the first pass every fault finds its leaf:
 *               short read sections, the memslot lookup).
 *  sync_Rr      the environment's synchronize_rcu alone while R threads
 *               loop over rcu_read_lock, a 50-iteration loop of volatile
 *               adds and rcu_read_unlock.
 *  barrier_0r   the environment's call_rcu of an empty callback, then its
 *               rcu_barrier (what kvm_destroy_vm and s2_hosted_quiesce
 *               wait for), no reader; a quarter of BENCH_GP_SAMPLES calls.
 *
 * The BENCH line's limit is the same op with no reader (no target: the
 * rows say what a grace period costs, they do not bound it). Knobs:
 * BENCH_GP_SAMPLES.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_common.h"
#include "s2mmu/env-hosted.h"
#include "s2mmu/s2mmu.h"

#define MAX_READERS 2
#define SLOT_GFN 0x1000ull
#define SLOT_PAGES 512ull
#define EXTRA_ID 7u
#define EXTRA_GFN 0x100000ull
#define MAX_SAMPLES 5000

struct gp {
	struct s2_hosted h;
	struct kvm *kvm;
	struct kvm_vcpu *vcpu[MAX_READERS];
	enum { MODE_SYNC, MODE_MEMSLOT, MODE_BARRIER } mode;
	int stop;
	int started;
	uint64_t reader_ops[MAX_READERS];
	int reader_err;
};

struct reader {
	struct gp *g;
	unsigned i;
};

static void *reader_fn(void *arg)
{
	struct reader *rd = arg;
	struct gp *g = rd->g;
	const struct s2_env_ops *o = g->h.env.ops;
	uint64_t n = 0;
	gfn_t gfn = 0;

	__atomic_fetch_add(&g->started, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&g->stop, __ATOMIC_ACQUIRE)) {
		if (g->mode == MODE_MEMSLOT) {
			int r = kvm_tdp_page_fault(g->vcpu[rd->i], (SLOT_GFN + gfn) << 12,
						   S2_ACC_READ);

			if (r != RET_PF_FIXED && r != RET_PF_SPURIOUS && r != RET_PF_RETRY)
				__atomic_store_n(&g->reader_err, r ? r : -1, __ATOMIC_RELAXED);
			gfn = (gfn + 1) % SLOT_PAGES;
		} else {
			volatile unsigned spin = 0;

			o->rcu_read_lock(g->h.env.ctx);
			for (unsigned k = 0; k < 50; k++)
				spin += k;
			o->rcu_read_unlock(g->h.env.ctx);
		}
		n++;
	}
	__atomic_store_n(&g->reader_ops[rd->i], n, __ATOMIC_RELAXED);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct result {
	double median_us, p99_us, max_us;
	unsigned slow; /* calls of 5 ms or more (a sleeping wait) */
};

static void die(const char *what, long r)
{
	fprintf(stderr, "bench_grace: %s: %ld\n", what, r);
	exit(2);
}

static void nop_cb(void *arg)
{
	(void)arg;
}

/* @samples timed calls of @mode's op with @nreaders readers. */
static struct result run(struct gp *g, int mode, unsigned nreaders, unsigned samples)
{
	static uint64_t t[MAX_SAMPLES];
	struct reader rd[MAX_READERS];
	pthread_t th[MAX_READERS];
	unsigned n = 0;
	struct result res;

	g->mode = mode;
	g->stop = 0;
	g->started = 0;
	for (unsigned i = 0; i < nreaders; i++) {
		rd[i] = (struct reader){ .g = g, .i = i };
		if (pthread_create(&th[i], NULL, reader_fn, &rd[i]))
			die("pthread_create", -1);
	}
	while (__atomic_load_n(&g->started, __ATOMIC_ACQUIRE) < (int)nreaders)
		;
	while (n < samples) {
		uint64_t t0 = bench_now_ns();
		long r;

		if (mode == MODE_MEMSLOT) {
			struct kvm_memory_slot s = { .id = EXTRA_ID,
						     .base_gfn = EXTRA_GFN,
						     .npages = 1,
						     .userspace_addr = 0x40000000 };

			r = kvm_set_memslot(g->kvm, &s);
			if (r)
				die("kvm_set_memslot", r);
			t[n++] = bench_now_ns() - t0;
			t0 = bench_now_ns();
			r = kvm_delete_memslot(g->kvm, EXTRA_ID);
			if (r)
				die("kvm_delete_memslot", r);
		} else if (mode == MODE_SYNC) {
			g->h.env.ops->synchronize_rcu(g->h.env.ctx);
		} else {
			r = g->h.env.ops->call_rcu(g->h.env.ctx, nop_cb, NULL);
			if (r)
				die("call_rcu", r);
			g->h.env.ops->rcu_barrier(g->h.env.ctx);
		}
		if (n < samples)
			t[n++] = bench_now_ns() - t0;
	}
	__atomic_store_n(&g->stop, 1, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < nreaders; i++)
		pthread_join(th[i], NULL);
	if (g->reader_err)
		die("kvm_tdp_page_fault", g->reader_err);
	qsort(t, n, sizeof(t[0]), cmp_u64);
	res.median_us = t[n / 2] / 1e3;
	res.p99_us = t[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1e3;
	res.max_us = t[n - 1] / 1e3;
	res.slow = 0;
	for (unsigned i = 0; i < n; i++)
		res.slow += t[i] >= 5000000;
	return res;
}

int main(void)
{
	unsigned samples = (unsigned)bench_env_long("BENCH_GP_SAMPLES", 200);
	struct kvm_vm_params p = { .fmt = S2_FMT_X86_EPT,
				   .gpa_bits = 48,
				   .max_vcpus = MAX_READERS };
	static struct gp g;
	struct kvm_memory_slot s = {
		.id = 0, .base_gfn = SLOT_GFN, .npages = SLOT_PAGES, .userspace_addr = 0x10000000
	};
	struct result base = { 0 };
	long r;

	if (samples < 2 || samples > MAX_SAMPLES)
		die("BENCH_GP_SAMPLES out of range (2..5000)", (long)samples);
	if (!s2_fmt_supported(S2_FMT_X86_EPT)) {
		printf("bench_grace: x86-ept not built in, skipped\n");
		return 0;
	}
	s2_hosted_init(&g.h);
	g.h.quiet = true;
	p.env = &g.h.env;
	r = kvm_create_vm(&p, &g.kvm);
	if (r)
		die("kvm_create_vm", r);
	for (unsigned i = 0; i < MAX_READERS; i++) {
		r = kvm_vcpu_create(g.kvm, i, &g.vcpu[i]);
		if (r)
			die("kvm_vcpu_create", r);
	}
	r = kvm_set_memslot(g.kvm, &s);
	if (r)
		die("kvm_set_memslot", r);

	printf("bench_grace: x86-ept, %u calls per row, us per call\n", samples);
	printf("%-12s %10s %10s %10s %8s\n", "op", "median_us", "p99_us", "max_us", ">=5ms");
	for (unsigned k = 0; k < 7; k++) {
		static const char *const names[] = { "sync", "memslot", "barrier" };
		int mode = k < 3 ? MODE_MEMSLOT : k < 6 ? MODE_SYNC : MODE_BARRIER;
		unsigned nr = k < 6 ? k % 3 : 0;
		unsigned n = mode == MODE_BARRIER ? (samples / 4 > 2 ? samples / 4 : 2) : samples;
		struct result x = run(&g, mode, nr, n);
		char name[32];
		struct bench_row row;

		if (!nr)
			base = x;
		snprintf(name, sizeof(name), "%s_%ur", names[mode], nr);
		printf("%-12s %10.1f %10.1f %10.1f %8u\n", name, x.median_us, x.p99_us, x.max_us,
		       x.slow);
		row = (struct bench_row){ .op = name,
					  .fmt = "x86-ept",
					  .ns = x.median_us * 1e3,
					  .ns_median = x.median_us * 1e3,
					  .limit = "no_readers",
					  .limit_ns = base.median_us * 1e3,
					  .limit_median = base.median_us * 1e3 };
		bench_print_line(&row);
		fflush(stdout);
	}
	kvm_destroy_vm(g.kvm);
	return 0;
}
