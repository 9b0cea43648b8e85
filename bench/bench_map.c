// SPDX-License-Identifier: MIT
/*
 * bench_map (issue 15): kvm_mmu_map_range() of 4 GiB with 4 KiB, 2 MiB and
 * 1 GiB leaves, every format, against the naive fill measured in the same
 * run: the naive walk of bench/bench_walk.h stopped at the leaf's level
 * (tables of 512 entries installed with compare-and-exchange, one walk from
 * the root per table of leaves, naive_fill()). Figures are ns per leaf; best and median of
 * BENCH_REPS runs (default 5); target within 2x of the naive fill.
 *
 * The 4 KiB and 2 MiB rows run on VMs whose largest leaf is that size (a
 * 4 KiB-only VM, as a memslot that logs dirty pages maps); the 1 GiB row on
 * one allowing 1 GiB leaves. Each call maps into an empty range and is
 * unmapped (not timed) before the next; a sample of the 2 MiB row is 4
 * calls, of the 1 GiB row 256 (calls_per_sample()), the naive fill's the
 * same. BENCH_MAP_LEVEL=N runs the row of level-N leaves only (profiling).
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

#define MAP_TARGET 2.0
#define GPA_BASE (4ull << 30)
#define HPA_BASE (64ull << 30)
#define MAP_BYTES (4ull << 30)

/*
 * The naive fill: a walk from the root to the table of @level (making the
 * tables on the way), then the leaves of that table's run, each with one
 * compare-and-exchange over an empty entry of the next value (the first
 * leaf's value plus a step, computed once per run); the next walk at the
 * next table. What kvm_mmu_map_range() does without the lock, the
 * invalidation and the checks (its leaf runs, s2_map_run(), also write a
 * table's run without walking again, from a first value and a step), so
 * the cheapest way to the same tables.
 */
static uint64_t naive_fill(uint64_t *root, uint64_t gfn0, uint64_t n, int level, uint64_t pfn0)
{
	const unsigned shift = 9 * (unsigned)(level - 1);
	uint64_t installed = 0;

	for (uint64_t i = 0; i < n;) {
		uint64_t gfn = gfn0 + (i << shift), *t = bench_naive_descend(root, gfn, level), run,
			 v0;
		unsigned idx = (gfn >> shift) & (BENCH_NAIVE_ENTRIES - 1), k;

		run = BENCH_NAIVE_ENTRIES - idx;
		if (run > n - i)
			run = n - i;
		v0 = ((pfn0 + (i << shift)) << 12) | BENCH_NAIVE_PRESENT | 0x80;
		for (k = 0; k < run; k++) {
			uint64_t old = 0;

			if (!__atomic_compare_exchange_n(&t[idx + k], &old,
							 v0 + ((uint64_t)k << (shift + 12)), false,
							 __ATOMIC_RELEASE, __ATOMIC_RELAXED))
				break;
		}
		installed += k;
		if (k < run)
			break;
		i += run;
	}
	return installed;
}

static void naive_free(uint64_t *t, int l, int leaf)
{
	if (l > leaf)
		for (unsigned i = 0; i < BENCH_NAIVE_ENTRIES; i++)
			if (t[i])
				naive_free(bench_naive_next(t[i]), l - 1, leaf);
	bench_naive_table_free(t);
}

/* Calls per sample: the 4 KiB row maps 1M leaves in one call; the 1 GiB
 * row's call maps 4, so one call is a few microseconds and a sample times
 * enough of them (each into an empty range, the tables freed between, not
 * timed) that the clock's resolution and a cold first call do not decide
 * the row. */
static unsigned calls_per_sample(int level)
{
	return level == 3 ? 256 : level == 2 ? 4 : 1;
}

static void naive_run(struct bench_samples *s, int level)
{
	uint64_t n = MAP_BYTES >> (12 + 9 * (level - 1)), total = 0;

	for (unsigned c = 0; c < calls_per_sample(level); c++) {
		uint64_t *root = bench_naive_table();
		uint64_t t0 = bench_now_ns(), got;

		got = naive_fill(root, GPA_BASE >> 12, n, level, HPA_BASE >> 12);
		total += bench_now_ns() - t0;
		if (got != n) {
			fprintf(stderr,
				"bench_map: naive fill installed %" PRIu64 " of %" PRIu64 "\n", got,
				n);
			exit(2);
		}
		naive_free(root, BENCH_NAIVE_LEVELS, level);
	}
	bench_add(s, total, n * calls_per_sample(level));
}

static void lib_run(struct bench_samples *s, const struct bench_fmt *f, int level)
{
	uint64_t n = MAP_BYTES >> (12 + 9 * (level - 1));
	struct kvm_mmu_stats st;
	struct s2_hosted h;
	struct kvm_vcpu *vcpu;
	struct kvm *kvm;
	uint64_t t0, total = 0;
	int r;

	r = bench_vm_create(&h, f->id, f->fmt_flags, (unsigned)level, &kvm, &vcpu);
	if (!r)
		r = bench_vm_slot(kvm, 0, GPA_BASE >> 12, MAP_BYTES >> 12, HPA_BASE);
	if (r) {
		fprintf(stderr, "bench_map: %s: setup failed: %d\n", s2_fmt_name(f->id), r);
		exit(2);
	}
	for (unsigned c = 0; c < calls_per_sample(level); c++) {
		long z = 0;

		t0 = bench_now_ns();
		r = kvm_mmu_map_range(vcpu, GPA_BASE, HPA_BASE, MAP_BYTES, S2_PROT_R | S2_PROT_W,
				      S2_MT_WB);
		total += bench_now_ns() - t0;
		if (r || kvm_get_stats(kvm, &st) || st.cur_leaves[level] != n ||
		    (c + 1 < calls_per_sample(level) &&
		     (z = kvm_mmu_unmap_range(kvm, GPA_BASE, MAP_BYTES)) != (long)n)) {
			fprintf(stderr,
				"bench_map: %s: map_range %d, %" PRIu64
				" leaves of level %d, unmap %ld\n",
				s2_fmt_name(f->id), r, st.cur_leaves[level], level, z);
			exit(2);
		}
	}
	bench_add(s, total, n * calls_per_sample(level));
	kvm_destroy_vm(kvm);
	s2_hosted_quiesce(&h);
}

int main(void)
{
	static const char *const ops[] = { NULL, "map_range_4k", "map_range_2m", "map_range_1g" };
	unsigned reps = (unsigned)bench_env_long("BENCH_REPS", 5);
	const char *only_fmt = getenv("BENCH_FMT");
	/* BENCH_MAP_LEVEL=N: only the row of leaves of level N (profiling). */
	long only_level = bench_env_long("BENCH_MAP_LEVEL", 0);
	struct bench_row rows[3 * BENCH_NR_FMTS];
	unsigned nrows = 0;
	bool ok = true;

	if (reps > BENCH_MAX_SAMPLES)
		reps = BENCH_MAX_SAMPLES;
	printf("bench_map: kvm_mmu_map_range of 4 GiB, ns per leaf, %u runs, target <= %.1fx the "
	       "naive fill\n",
	       reps, MAP_TARGET);
	for (unsigned i = 0; i < BENCH_NR_FMTS; i++) {
		const struct bench_fmt *f = &bench_fmts[i];

		if (!s2_fmt_supported(f->id))
			continue;
		if (only_fmt && *only_fmt && strcmp(only_fmt, s2_fmt_name(f->id)))
			continue;
		for (int level = 1; level <= 3; level++) {
			struct bench_samples lib = { 0 }, naive = { 0 };

			if (only_level && only_level != level)
				continue;

			for (unsigned k = 0; k < reps; k++) {
				naive_run(&naive, level);
				lib_run(&lib, f, level);
			}
			rows[nrows++] = (struct bench_row){ .op = ops[level],
							    .fmt = s2_fmt_name(f->id),
							    .ns = bench_best(&lib),
							    .ns_median = bench_median(&lib),
							    .limit = "naive_fill",
							    .limit_ns = bench_best(&naive),
							    .limit_median = bench_median(&naive),
							    .target = MAP_TARGET };
		}
	}
	ok &= bench_print_rows(rows, nrows);
	printf("bench_map: %s\n", ok ? "every target met" : "some target MISSED");
	return 0;
}
