// SPDX-License-Identifier: MIT
/*
 * bench_mmu: what populating and zapping second-stage tables costs, per 4 KiB
 * page, for every format built in, beside what the bare operation costs on
 * the same machine in the same run.
 *
 *  populate  one kvm_tdp_page_fault per page, sequential gfns, in a memslot
 *            of BENCH_PAGES pages (default 1M = 4 GiB of gpa) on a VM limited
 *            to 4 KiB leaves, so every fault installs a leaf and every 512th
 *            links a table. The hosted environment simulates host memory
 *            (pfn = hva >> 12), so no guest memory is touched.
 *    limit   naive_walk: per page, a 4-level walk from the root of a fresh
 *            radix tree, installing missing 512-entry tables (the hosted
 *            env's alloc_table, as the library's) and the leaf with
 *            compare-and-exchange. The least any correct lock-free install
 *            does.
 *  zap       kvm_zap_gfn_range over the whole populated range (the tables
 *            it unlinks are freed after a grace period, outside the timing).
 *    limit   naive_zap: the same leaves in the same layout, a radix tree of
 *            512-entry tables built by the naive walk just before (untimed,
 *            as populate builds the library's tree just before its zap),
 *            zapped with a plain load, present test, plain store of 0 and
 *            count per leaf, each emptied table unlinked (bench_walk.h;
 *            issue 16: the cheapest honest zap of these leaves, target
 *            1.3x). No exchange is needed: no slot logs through hardware
 *            dirty bits, so nothing reads what a zapped leaf held
 *            (docs/rules.md "Aging"). Printed below the table for
 *            comparison: plain_zap, the same plain loop over one flat array
 *            (right after the locked sweep over that array, which leaves it
 *            warmer than a tree populated page by page: docs/bench.md), and
 *            the locked sweep (one atomic exchange per entry).
 *
 * Runs are interleaved: each of BENCH_REPS (default 7) repetitions measures
 * every format and both limits, so a noisy minute hurts all alike. A populate
 * loop is timed in chunks of BENCH_CHUNK pages (default 4096) and reported as
 * the sum of each chunk's best time (bench_common.h says why); a zap is one
 * call, reported as its best run, and so is the sweep. The limits are shared
 * by every format's rows. Other knobs: BENCH_PAGES, BENCH_FMT (one format
 * name), BENCH_OPS (populate or zap: print only those rows; for profiling),
 * BENCH_STRICT=1 (exit 1 when a target is missed), BENCH_INPLACE=1 (also
 * time a plain sweep of each VM's own leaf tables in place, below).
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

#define POPULATE_TARGET 1.5 /* issue 2: at most 1.5x the naive walk */
#define ZAP_TARGET 1.3	    /* issue 16: at most 1.3x the naive zap */
#define VS_EPT_TARGET 1.10  /* issue 3: populate ratio within 10% of EPT's */

#define BASE_GFN 0x100000ull	   /* the memslot starts at 4 GiB */
#define HVA_BASE 0x7f0000000000ull /* simulated host memory */

struct fmt_bench {
	enum s2_fmt_id id;
	unsigned fmt_flags;
	const char *name;
	struct s2_hosted h;
	struct kvm *kvm;
	struct kvm_vcpu *vcpu;
	struct bench_chunks populate;
	struct bench_samples zap;
	struct bench_samples inplace; /* BENCH_INPLACE=1 */
};

/* Pages per timed chunk of a populate loop (see bench_common.h). */
static uint64_t chunk_pages;

static unsigned nr_chunks(uint64_t pages)
{
	return (unsigned)((pages + chunk_pages - 1) / chunk_pages);
}

/* ------------------------------------------------------------------------ */
/* The limits                                                                */
/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/* The library                                                               */
/* ------------------------------------------------------------------------ */

static int fmt_setup(struct fmt_bench *b, uint64_t pages)
{
	int r = bench_vm_create(&b->h, b->id, b->fmt_flags, 1, &b->kvm, &b->vcpu);

	if (!r && (r = bench_vm_slot(b->kvm, 0, BASE_GFN, pages, HVA_BASE)))
		kvm_destroy_vm(b->kvm);
	return r;
}

static void fail(const struct fmt_bench *b, const char *what, long got, uint64_t want)
{
	fprintf(stderr, "bench_mmu: %s: %s: got %ld, want %" PRIu64 "\n", b->name, what, got, want);
	exit(2);
}

static void measure_populate(struct fmt_bench *b, uint64_t pages)
{
	struct kvm_mmu_stats st;
	uint64_t fixed = 0, total = 0;

	for (unsigned k = 0; k < b->populate.n; k++) {
		gfn_t g = BASE_GFN + k * chunk_pages;
		gfn_t end = g + chunk_pages < BASE_GFN + pages ? g + chunk_pages : BASE_GFN + pages;
		uint64_t t0 = bench_now_ns();

		for (; g < end; g++)
			fixed += kvm_tdp_page_fault(b->vcpu, gfn_to_gpa(g),
						    S2_ACC_READ | S2_ACC_WRITE) == RET_PF_FIXED;
		t0 = bench_now_ns() - t0;
		bench_chunks_note(&b->populate, k, t0);
		total += t0;
	}
	/* Every fault must have installed one 4 KiB leaf, or we timed errors. */
	if (fixed != pages)
		fail(b, "faults fixed", (long)fixed, pages);
	if (kvm_get_stats(b->kvm, &st) || st.cur_leaves[1] != pages || st.cur_leaves[2])
		fail(b, "4 KiB leaves", (long)st.cur_leaves[1], pages);
	bench_add(&b->populate.runs, total, pages);
}

/*
 * BENCH_INPLACE=1: what a plain sweep of the library's own leaf tables costs
 * right after a populate, the zap's very entries in place: each leaf table
 * found from the root (hosted: hpa == va; every format's table address
 * decoded here, 4 levels of 512-entry tables at these gpas), per entry a
 * plain load, the present test and a plain store of the same value (the
 * zap's memory traffic, leaving the VM as it was). Then the zap removes
 * them, untimed. A diagnostic of the limit (docs/bench.md), not a row.
 */
static uint64_t *table_of(enum s2_fmt_id fmt, uint64_t e)
{
	if (fmt == S2_FMT_RISCV_G)
		return (uint64_t *)(uintptr_t)(((e >> 10) & ((1ull << 44) - 1)) << 12);
	if (fmt == S2_FMT_ARM64_S2)
		return (uint64_t *)(uintptr_t)(e & 0x0000fffffffff000ull);
	return (uint64_t *)(uintptr_t)(e & 0x000ffffffffff000ull);
}

static void measure_inplace(struct fmt_bench *b, uint64_t pages)
{
	uint64_t present = b->id == S2_FMT_X86_EPT ? 0x7 : 0x1, seen = 0, t0;

	measure_populate(b, pages);
	t0 = bench_now_ns();
	for (uint64_t k = 0; k < pages; k += 512) {
		gfn_t g = BASE_GFN + k;
		uint64_t *t = (uint64_t *)(uintptr_t)kvm_vcpu_root_hpa(b->vcpu);
		volatile uint64_t *v;

		for (int l = 4; l > 1; l--)
			t = table_of(b->id, t[(g >> (9 * (l - 1))) & 511]);
		v = t;
		for (unsigned i = 0; i < 512; i++) {
			uint64_t x = v[i];

			if (x & present) {
				v[i] = x;
				seen++;
			}
		}
	}
	t0 = bench_now_ns() - t0;
	if (seen != pages)
		fail(b, "in-place sweep: leaves seen", (long)seen, pages);
	bench_add(&b->inplace, t0, pages);
	if (kvm_zap_gfn_range(b->kvm, BASE_GFN, BASE_GFN + pages) != (long)pages)
		fail(b, "in-place sweep: zap", 0, pages);
	s2_hosted_quiesce(&b->h);
}

static void measure_zap(struct fmt_bench *b, uint64_t pages)
{
	struct kvm_mmu_stats st;
	uint64_t t0, t1;
	long z;

	t0 = bench_now_ns();
	z = kvm_zap_gfn_range(b->kvm, BASE_GFN, BASE_GFN + pages);
	t1 = bench_now_ns();
	if (z < 0 || (uint64_t)z != pages)
		fail(b, "leaves zapped", z, pages);
	/* Every table was unlinked; they are freed before the next run. */
	if (kvm_get_stats(b->kvm, &st) || st.cur_table_pages || st.cur_leaves[1])
		fail(b, "table pages left after zap", (long)st.cur_table_pages, 0);
	s2_hosted_quiesce(&b->h);
	bench_add(&b->zap, t1 - t0, pages);
}

int main(void)
{
	uint64_t pages = (uint64_t)bench_env_long("BENCH_PAGES", 1l << 20);
	unsigned reps = (unsigned)bench_env_long("BENCH_REPS", 7);
	const char *only_fmt = getenv("BENCH_FMT");
	const char *ops = getenv("BENCH_OPS");
	bool do_populate = !ops || !*ops || strstr(ops, "populate");
	bool do_zap = !ops || !*ops || strstr(ops, "zap");
	bool strict = bench_env_long("BENCH_STRICT", 0) == 1;
	bool inplace = bench_env_long("BENCH_INPLACE", 0) == 1;
	struct fmt_bench fb[BENCH_NR_FMTS];
	struct bench_chunks walk;
	struct bench_samples sweep = { 0 }, plain = { 0 }, naive_zap = { 0 };
	unsigned nr = 0;
	uint64_t *entries;
	bool ok = true;

	chunk_pages = (uint64_t)bench_env_long("BENCH_CHUNK", 4096);
	if (reps > BENCH_MAX_SAMPLES)
		reps = BENCH_MAX_SAMPLES;
	bench_chunks_init(&walk, nr_chunks(pages));
	for (unsigned i = 0; i < BENCH_NR_FMTS; i++) {
		struct fmt_bench *b = &fb[nr];
		int r;

		if (!s2_fmt_supported(bench_fmts[i].id))
			continue;
		if (only_fmt && *only_fmt && strcmp(only_fmt, s2_fmt_name(bench_fmts[i].id)))
			continue;
		memset(b, 0, sizeof(*b));
		b->id = bench_fmts[i].id;
		b->fmt_flags = bench_fmts[i].fmt_flags;
		b->name = s2_fmt_name(b->id);
		bench_chunks_init(&b->populate, nr_chunks(pages));
		r = fmt_setup(b, pages);
		if (r) {
			fprintf(stderr, "bench_mmu: %s: setup failed: %d\n", b->name, r);
			return 2;
		}
		nr++;
	}
	if (!nr) {
		printf("bench_mmu: no format to measure\n");
		return 0;
	}
	entries = calloc(pages, sizeof(*entries));
	if (!entries) {
		perror("bench_mmu: calloc");
		return 2;
	}

	printf("bench_mmu: %" PRIu64 " pages (%" PRIu64 " MiB of gpa) of 4 KiB leaves, %u runs:\n"
	       "  populate: sum over chunks of %" PRIu64
	       " pages of each chunk's best; zap: best run\n",
	       pages, pages >> 8, reps, chunk_pages);
	fflush(stdout);
	for (unsigned rep = 0; rep < reps; rep++) {
		for (unsigned i = 0; i < nr; i++) {
			if (do_populate)
				bench_naive_walk(&walk, pages, chunk_pages, BASE_GFN,
						 HVA_BASE >> 12);
			measure_populate(&fb[i], pages);
			measure_zap(&fb[i], pages);
			if (do_zap) {
				bench_naive_zap_measure(&naive_zap, BASE_GFN, pages,
							HVA_BASE >> 12);
				bench_xchg_sweep(&sweep, entries, pages, HVA_BASE,
						 BENCH_NAIVE_PRESENT);
				bench_plain_zap_sweep(&plain, entries, pages, HVA_BASE,
						      BENCH_NAIVE_PRESENT);
				if (inplace)
					measure_inplace(&fb[i], pages);
			}
		}
	}

	struct bench_row rows[2 * BENCH_NR_FMTS];
	unsigned nrows = 0;

	for (unsigned i = 0; i < nr; i++) {
		if (do_populate)
			rows[nrows++] = (struct bench_row){
				.op = "populate",
				.fmt = fb[i].name,
				.ns = bench_chunks_best(&fb[i].populate, pages),
				.ns_median = bench_median(&fb[i].populate.runs),
				.limit = "naive_walk",
				.limit_ns = bench_chunks_best(&walk, pages),
				.limit_median = bench_median(&walk.runs),
				.target = POPULATE_TARGET,
			};
		if (do_zap)
			rows[nrows++] = (struct bench_row){
				.op = "zap",
				.fmt = fb[i].name,
				.ns = bench_best(&fb[i].zap),
				.ns_median = bench_median(&fb[i].zap),
				.limit = "naive_zap",
				.limit_ns = bench_best(&naive_zap),
				.limit_median = bench_median(&naive_zap),
				.target = ZAP_TARGET,
			};
	}
	printf("\n");
	bench_print_table_head();
	for (unsigned i = 0; i < nrows; i++)
		ok &= bench_print_table_row(&rows[i]);

	/* Issue 3: the format layer costs no format more than 10% over EPT. */
	if (do_populate && !strcmp(fb[0].name, s2_fmt_name(S2_FMT_X86_EPT)) && nr > 1) {
		double ept = bench_ratio(&rows[0]);

		printf("\npopulate ratio relative to x86-ept (target <= %.2f):\n", VS_EPT_TARGET);
		for (unsigned i = 1; i < nrows; i++) {
			double rel;

			if (strcmp(rows[i].op, "populate"))
				continue;
			rel = bench_ratio(&rows[i]) / ept;
			printf("  %-10s %.3f  %s\n", rows[i].fmt, rel,
			       rel <= VS_EPT_TARGET ? "ok" : "MISSED");
			ok &= rel <= VS_EPT_TARGET;
		}
	}
	printf("\n");
	for (unsigned i = 0; i < nrows; i++)
		bench_print_line(&rows[i]);
	if (do_zap)
		printf("bench_mmu: for comparison, plain_zap (the naive zap's leaf loop over one "
		       "flat array, after the locked sweep) %.2f ns/page (median %.2f), "
		       "locked_sweep (atomic exchange per entry) %.2f ns/page (median %.2f)\n",
		       bench_best(&plain), bench_median(&plain), bench_best(&sweep),
		       bench_median(&sweep));
	for (unsigned i = 0; inplace && do_zap && i < nr; i++)
		printf("bench_mmu: %s: inplace_sweep (a plain load and store back of each of its own "
		       "leaves, right after a populate) %.2f ns/page (median %.2f), zap %.2fx it\n",
		       fb[i].name, bench_best(&fb[i].inplace), bench_median(&fb[i].inplace),
		       bench_best(&fb[i].zap) / bench_best(&fb[i].inplace));
	printf("bench_mmu: %s\n", ok ? "every target met" : "some target MISSED");

	for (unsigned i = 0; i < nr; i++) {
		kvm_destroy_vm(fb[i].kvm);
		bench_chunks_free(&fb[i].populate);
	}
	bench_chunks_free(&walk);
	free(entries);
	return strict && !ok;
}
