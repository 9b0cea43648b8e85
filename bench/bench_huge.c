// SPDX-License-Identifier: MIT
/*
 * bench_huge: faults that install 2 MiB and 1 GiB leaves (issue 16), for
 * every format built in, beside the naive walk-and-install of the same leaf
 * at the same level, in the same run. ns per fault (each fault installs one
 * leaf; the BENCH line's ns_per_page is per leaf here).
 *
 *  populate_2m   one kvm_tdp_page_fault(READ|WRITE) per 2 MiB, sequential,
 *                BENCH_LEAVES_2M leaves (default 256K = 512 GiB of gpa) in
 *                one memslot of a VM with max_leaf_level = 2; the host maps
 *                1 GiB pages (host_level 3, block_stable), so a fault asks
 *                the host once per 1 GiB and the fault fast path serves the
 *                other 511 from the level-2 table it cached.
 *    limit       naive_walk_2m: per leaf, a walk from the root of a fresh
 *                radix tree through levels 4 and 3 (missing tables
 *                installed from the hosted env's alloc_table, as the library
 *                allocates) and the leaf's compare-and-exchange at level 2.
 *  populate_1g   the same with 1 GiB leaves: BENCH_LEAVES_1G (default 16K =
 *                16 TiB), max_leaf_level = 3, the host maps 512 GiB blocks
 *                (host_level 4: a block the simulated host promises, so one
 *                host answer covers a level-3 table's span, as 1 GiB pages
 *                do for 2 MiB leaves).
 *    limit       naive_walk_1g: the walk through level 4 and the exchange
 *                at level 3.
 *  populate_2m_full, populate_1g_full
 *                the same faults with the host asked every time
 *                (no_block_reuse: a host that maps each leaf with its own
 *                page, as THP does for 2 MiB), so every fault takes the full
 *                path. No target: it shows what the fast path saves.
 *
 * Every run checks that each fault returned RET_PF_FIXED and that exactly
 * the leaves asked for exist at their level (and for the fast rows that all
 * but one fault per leaf table took the fast path); the range is zapped
 * (checked empty) and the tables freed between runs, outside the timing.
 * Runs are interleaved: each of BENCH_REPS (default 7) measures, per format,
 * both naive walks and the four populates; loops are timed in chunks of
 * BENCH_CHUNK leaves (default 1024) and reported as the sum of each chunk's
 * best (bench_common.h). Knobs: BENCH_FMT, BENCH_STRICT=1, BENCH_OPS (without
 * "_full" in it: the fast rows only).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_common.h"
#include "bench/bench_walk.h"
#include "s2mmu/env-hosted.h"
#include "s2mmu/s2mmu.h"

#define HUGE_TARGET 1.3 /* issue 16: at most 1.3x the naive walk of the same leaf */

#define BASE_GFN 0x100000ull	   /* the memslot starts at 4 GiB (1 GiB aligned) */
#define HVA_BASE 0x7f0000000000ull /* simulated host memory, 512 GiB aligned */

enum { SZ_2M, SZ_1G, NR_SZ };

static const struct size {
	const char *op, *op_full, *limit;
	int level, host_level;
	const char *knob;
	long def_leaves;
} sizes[NR_SZ] = {
	{ "populate_2m", "populate_2m_full", "naive_walk_2m", 2, 3, "BENCH_LEAVES_2M", 1l << 18 },
	{ "populate_1g", "populate_1g_full", "naive_walk_1g", 3, 4, "BENCH_LEAVES_1G", 1l << 14 },
};

struct vm {
	struct s2_hosted h;
	struct kvm *kvm;
	struct kvm_vcpu *vcpu;
};

struct fmt_bench {
	enum s2_fmt_id id;
	unsigned fmt_flags;
	const char *name;
	struct vm fast[NR_SZ], full[NR_SZ];
	struct bench_chunks c_fast[NR_SZ], c_full[NR_SZ];
};

static uint64_t chunk_leaves;
static uint64_t leaves[NR_SZ];

static unsigned nr_chunks(uint64_t n)
{
	return (unsigned)((n + chunk_leaves - 1) / chunk_leaves);
}

static uint64_t leaf_pages(int sz)
{
	return 1ull << (9 * (sizes[sz].level - 1));
}

static int vm_setup(const struct fmt_bench *b, struct vm *vm, int sz, bool full)
{
	struct kvm_vm_params p = { .fmt = b->id,
				   .gpa_bits = 48,
				   .fmt_flags = b->fmt_flags,
				   .max_leaf_level = (unsigned)sizes[sz].level,
				   .max_vcpus = 1,
				   .env = &vm->h.env };
	int r;

	s2_hosted_init(&vm->h);
	vm->h.quiet = true;
	vm->h.host_level = sizes[sz].host_level;
	vm->h.no_block_reuse = full;
	r = kvm_create_vm(&p, &vm->kvm);
	if (r)
		return r;
	r = kvm_vcpu_create(vm->kvm, 0, &vm->vcpu);
	if (!r)
		r = bench_vm_slot(vm->kvm, 0, BASE_GFN, leaves[sz] * leaf_pages(sz), HVA_BASE);
	if (r)
		kvm_destroy_vm(vm->kvm);
	return r;
}

static void fail(const struct fmt_bench *b, const char *what, long got, uint64_t want)
{
	fprintf(stderr, "bench_huge: %s: %s: got %ld, want %" PRIu64 "\n", b->name, what, got,
		want);
	exit(2);
}

static struct kvm_mmu_stats stats(const struct fmt_bench *b, struct vm *vm)
{
	struct kvm_mmu_stats st;

	if (kvm_get_stats(vm->kvm, &st))
		fail(b, "kvm_get_stats", -1, 0);
	return st;
}

/* Fault every leaf of size @sz in order, timed in chunks into @c; check
 * the result, zap it all and free the tables (untimed). */
static void populate(const struct fmt_bench *b, struct vm *vm, int sz, struct bench_chunks *c,
		     bool full)
{
	uint64_t n = leaves[sz], step = leaf_pages(sz), fixed = 0, total = 0;
	uint64_t fast0 = stats(b, vm).faults_fast;
	int level = sizes[sz].level;
	struct kvm_mmu_stats st;
	long z;

	for (unsigned k = 0; k < c->n; k++) {
		uint64_t i = k * chunk_leaves, end = i + chunk_leaves < n ? i + chunk_leaves : n;
		uint64_t t0 = bench_now_ns();

		for (; i < end; i++)
			fixed += kvm_tdp_page_fault(vm->vcpu, gfn_to_gpa(BASE_GFN + i * step),
						    S2_ACC_READ | S2_ACC_WRITE) == RET_PF_FIXED;
		t0 = bench_now_ns() - t0;
		bench_chunks_note(c, k, t0);
		total += t0;
	}
	if (fixed != n)
		fail(b, "faults fixed", (long)fixed, n);
	st = stats(b, vm);
	for (int l = 1; l <= 4; l++)
		if (st.cur_leaves[l] != (l == level ? n : 0))
			fail(b, "leaves at the level", (long)st.cur_leaves[l], l == level ? n : 0);
	if (full && st.faults_fast != fast0)
		fail(b, "full path: fast-path faults", (long)(st.faults_fast - fast0), 0);
	if (!full && st.faults_fast - fast0 < n - n / 256 - 1)
		fail(b, "fast-path faults", (long)(st.faults_fast - fast0), n - n / 256 - 1);
	bench_add(&c->runs, total, n);

	z = kvm_zap_gfn_range(vm->kvm, BASE_GFN, BASE_GFN + n * step);
	if (z < 0)
		fail(b, "zap", z, 0);
	st = stats(b, vm);
	if (st.cur_table_pages || st.cur_leaves[level])
		fail(b, "left after zap", (long)st.cur_leaves[level], 0);
	s2_hosted_quiesce(&vm->h);
}

static void naive(struct bench_chunks *c, int sz)
{
	uint64_t n = leaves[sz], step = leaf_pages(sz), got = 0, total = 0;
	uint64_t *root = bench_naive_table();

	for (unsigned k = 0; k < c->n; k++) {
		uint64_t i = k * chunk_leaves, m = n - i < chunk_leaves ? n - i : chunk_leaves;
		uint64_t t0 = bench_now_ns();

		got += bench_naive_populate_at(root, BASE_GFN + i * step, m,
					       (HVA_BASE >> 12) + i * step, sizes[sz].level);
		t0 = bench_now_ns() - t0;
		bench_chunks_note(c, k, t0);
		total += t0;
	}
	if (got != n) {
		fprintf(stderr, "bench_huge: naive walk installed %" PRIu64 " of %" PRIu64 "\n",
			got, n);
		exit(2);
	}
	bench_add(&c->runs, total, n);
	bench_naive_free_at(root, BENCH_NAIVE_LEVELS, sizes[sz].level);
}

int main(void)
{
	unsigned reps = (unsigned)bench_env_long("BENCH_REPS", 7);
	const char *only_fmt = getenv("BENCH_FMT");
	bool strict = bench_env_long("BENCH_STRICT", 0) == 1;
	/* BENCH_OPS without "_full": the fast rows only (profiling). */
	const char *ops = getenv("BENCH_OPS");
	bool do_full = !ops || !*ops || strstr(ops, "_full");
	struct fmt_bench *fb;
	struct bench_chunks walk[NR_SZ];
	unsigned nr = 0;
	bool ok = true;

	chunk_leaves = (uint64_t)bench_env_long("BENCH_CHUNK", 1024);
	if (reps > BENCH_MAX_SAMPLES)
		reps = BENCH_MAX_SAMPLES;
	for (int sz = 0; sz < NR_SZ; sz++) {
		leaves[sz] = (uint64_t)bench_env_long(sizes[sz].knob, sizes[sz].def_leaves);
		if (leaves[sz] < 1 || leaves[sz] > (1ull << 35) / leaf_pages(sz)) {
			fprintf(stderr, "bench_huge: %s out of range\n", sizes[sz].knob);
			return 2;
		}
		bench_chunks_init(&walk[sz], nr_chunks(leaves[sz]));
	}
	fb = calloc(BENCH_NR_FMTS, sizeof(*fb));
	if (!fb) {
		perror("bench_huge: calloc");
		return 2;
	}
	for (unsigned i = 0; i < BENCH_NR_FMTS; i++) {
		struct fmt_bench *b = &fb[nr];
		int r = 0;

		if (!s2_fmt_supported(bench_fmts[i].id))
			continue;
		if (only_fmt && *only_fmt && strcmp(only_fmt, s2_fmt_name(bench_fmts[i].id)))
			continue;
		b->id = bench_fmts[i].id;
		b->fmt_flags = bench_fmts[i].fmt_flags;
		b->name = s2_fmt_name(b->id);
		for (int sz = 0; sz < NR_SZ && !r; sz++) {
			bench_chunks_init(&b->c_fast[sz], nr_chunks(leaves[sz]));
			bench_chunks_init(&b->c_full[sz], nr_chunks(leaves[sz]));
			r = vm_setup(b, &b->fast[sz], sz, false);
			if (!r)
				r = vm_setup(b, &b->full[sz], sz, true);
		}
		if (r) {
			fprintf(stderr, "bench_huge: %s: setup failed: %d\n", b->name, r);
			return 2;
		}
		nr++;
	}
	if (!nr) {
		printf("bench_huge: no format to measure\n");
		return 0;
	}

	printf("bench_huge: %" PRIu64 " 2 MiB and %" PRIu64 " 1 GiB leaves, %u runs, ns per "
	       "fault (per leaf): sum over chunks of %" PRIu64 " leaves of each chunk's best\n",
	       leaves[SZ_2M], leaves[SZ_1G], reps, chunk_leaves);
	fflush(stdout);
	for (unsigned rep = 0; rep < reps; rep++)
		for (unsigned i = 0; i < nr; i++)
			for (int sz = 0; sz < NR_SZ; sz++) {
				naive(&walk[sz], sz);
				populate(&fb[i], &fb[i].fast[sz], sz, &fb[i].c_fast[sz], false);
				if (do_full)
					populate(&fb[i], &fb[i].full[sz], sz, &fb[i].c_full[sz],
						 true);
			}

	struct bench_row rows[2 * NR_SZ * BENCH_NR_FMTS];
	unsigned nrows = 0;

	for (int full = 0; full < 1 + do_full; full++)
		for (int sz = 0; sz < NR_SZ; sz++)
			for (unsigned i = 0; i < nr; i++) {
				struct bench_chunks *c =
					full ? &fb[i].c_full[sz] : &fb[i].c_fast[sz];

				rows[nrows++] = (struct bench_row){
					.op = full ? sizes[sz].op_full : sizes[sz].op,
					.fmt = fb[i].name,
					.ns = bench_chunks_best(c, leaves[sz]),
					.ns_median = bench_median(&c->runs),
					.limit = sizes[sz].limit,
					.limit_ns = bench_chunks_best(&walk[sz], leaves[sz]),
					.limit_median = bench_median(&walk[sz].runs),
					.target = full ? 0 : HUGE_TARGET,
				};
			}
	ok &= bench_print_rows(rows, nrows);
	printf("bench_huge: %s\n", ok ? "every target met" : "some target MISSED");

	for (unsigned i = 0; i < nr; i++)
		for (int sz = 0; sz < NR_SZ; sz++) {
			kvm_destroy_vm(fb[i].fast[sz].kvm);
			kvm_destroy_vm(fb[i].full[sz].kvm);
			bench_chunks_free(&fb[i].c_fast[sz]);
			bench_chunks_free(&fb[i].c_full[sz]);
		}
	for (int sz = 0; sz < NR_SZ; sz++)
		bench_chunks_free(&walk[sz]);
	free(fb);
	return strict && !ok;
}
