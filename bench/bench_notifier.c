// SPDX-License-Identifier: MIT
/*
 * bench_notifier: what the host-MM notifiers cost per 4 KiB page, for every
 * format built in, beside the bare operation measured in the same run.
 *
 *  unmap       kvm_mmu_notifier_invalidate_range_start + _end over the hva
 *              range of a memslot of BENCH_PAGES (default 256K) 4 KiB
 *              leaves, populated (untimed) before each run.
 *    limit     naive_zap (bench_walk.h, as bench_mmu's zap row): the same
 *              leaves in the same layout, a radix tree of 512-entry tables
 *              the naive walk populated just before (untimed); per leaf a
 *              plain load, the present test, a plain store of 0 and a
 *              count, each emptied table unlinked, every format. The old
 *              limit, plain_zap (the same loop over one flat array, left
 *              warm by the sweeps before it), was beaten by the code
 *              (0.77-0.87x in session 6) and prints below. The aging
 *              runs before left the leaves old, so hardware may still set A
 *              in them until the flush, but no slot logs through hardware
 *              dirty bits, so nothing reads what a zapped leaf held and the
 *              zap stores plainly (core/mmu_tmpl.h zap_table_locked());
 *              x86-ept-noad's hardware writes nothing anyway. Target 1.3x
 *              (issue 16; the locked sweep, one atomic exchange per entry,
 *              the limit of the formats with A/D before, prints below).
 *  age_young   kvm_mmu_notifier_clear_young over the same range, every leaf
 *              young (just faulted in, by write faults: dirty too). A range
 *              this large is aged under the write side of mmu_lock, where a
 *              leaf hardware has nothing left to write in may take a plain
 *              store (docs/rules.md "Aging").
 *    limit     plain_rmw: per entry a plain load and, where Accessed is set,
 *              a plain store without it (issue 16: at most 3.0x). The
 *              locked sweep (one atomic fetch-and per entry) is printed
 *              below the table for comparison.
 *  age_none    clear_young again: no leaf young, nothing written.
 *    limit     plain_scan: one plain load and bit test per entry.
 *  test_age    kvm_mmu_notifier_test_young with no leaf young (the case that
 *              reads every leaf; a young one would stop it at once).
 *    limit     plain_scan.
 *
 * Every format runs with hardware Accessed bits; x86-ept is also measured
 * without them ("x86-ept-noad"), where aging is access tracking (each young
 * leaf is made non-present, restorable). Runs are interleaved (BENCH_REPS,
 * default 7) and each row reports its best run (bench_common.h). Knobs:
 * BENCH_PAGES, BENCH_REPS, BENCH_FMT (one format name), BENCH_STRICT=1 (exit
 * 1 when a target is missed).
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

#define UNMAP_TARGET 1.3     /* issue 16: at most 1.3x the plain zap */
#define AGE_YOUNG_TARGET 3.0 /* issue 16: at most 3.0x the plain sweep */
#define AGE_NONE_TARGET 2.0  /* issue 4: at most 2x the plain scan */

#define BASE_GFN 0x100000ull
#define HVA_BASE 0x7f0000000000ull
#define ENTRY_PRESENT 0x7ull
#define ENTRY_A (1ull << 8)

static const struct {
	enum s2_fmt_id id;
	unsigned fmt_flags;
	const char *label;
} all_fmts[] = {
	{ S2_FMT_X86_EPT, S2_FMTF_AD, "x86-ept" },
	{ S2_FMT_ARM64_S2, S2_FMTF_AD | S2_FMTF_FWB, "arm64-s2" },
	{ S2_FMT_RISCV_G, S2_FMTF_AD, "riscv-g" },
	{ S2_FMT_X86_NPT, S2_FMTF_AD, "x86-npt" },
	{ S2_FMT_X86_EPT, 0, "x86-ept-noad" },
};
#define NR_FMTS (sizeof(all_fmts) / sizeof(all_fmts[0]))

enum { OP_UNMAP, OP_AGE_YOUNG, OP_AGE_NONE, OP_TEST_AGE, NR_OPS };

static const char *const op_name[NR_OPS] = { "unmap", "age_young", "age_none", "test_age" };

struct fmt_bench {
	enum s2_fmt_id id;
	unsigned fmt_flags;
	const char *name;
	struct s2_hosted h;
	struct kvm *kvm;
	struct kvm_vcpu *vcpu;
	struct bench_samples op[NR_OPS];
};

static void die(const struct fmt_bench *b, const char *what, long got, uint64_t want)
{
	fprintf(stderr, "bench_notifier: %s: %s: got %ld, want %" PRIu64 "\n", b->name, what, got,
		want);
	exit(2);
}

/* ---- limits ---- */

static void fill(uint64_t *e, uint64_t pages, uint64_t extra)
{
	for (uint64_t i = 0; i < pages; i++)
		e[i] = (((HVA_BASE >> 12) + i) << 12) | ENTRY_PRESENT | extra;
}

static void measure_and_sweep(struct bench_samples *s, uint64_t *e, uint64_t pages)
{
	uint64_t sum = 0, t0;

	fill(e, pages, ENTRY_A);
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < pages; i++)
		sum += !!(__atomic_fetch_and(&e[i], ~ENTRY_A, __ATOMIC_RELAXED) & ENTRY_A);
	t0 = bench_now_ns() - t0;
	bench_keep(sum);
	bench_add(s, t0, pages);
}

static void measure_plain_scan(struct bench_samples *s, uint64_t *e, uint64_t pages)
{
	const volatile uint64_t *v = e;
	uint64_t sum = 0, t0;

	fill(e, pages, 0);
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < pages; i++)
		sum += (v[i] & (ENTRY_PRESENT | ENTRY_A)) == (ENTRY_PRESENT | ENTRY_A);
	t0 = bench_now_ns() - t0;
	bench_keep(sum);
	bench_add(s, t0, pages);
}

/* ---- the library ---- */

static int fmt_setup(struct fmt_bench *b, uint64_t pages)
{
	int r = bench_vm_create(&b->h, b->id, b->fmt_flags, 1, &b->kvm, &b->vcpu);

	if (!r && (r = bench_vm_slot(b->kvm, 0, BASE_GFN, pages, HVA_BASE)))
		kvm_destroy_vm(b->kvm);
	return r;
}

static void populate(struct fmt_bench *b, uint64_t pages)
{
	uint64_t fixed = 0;

	for (gfn_t g = BASE_GFN; g < BASE_GFN + pages; g++)
		fixed += kvm_tdp_page_fault(b->vcpu, gfn_to_gpa(g), S2_ACC_READ | S2_ACC_WRITE) ==
			 RET_PF_FIXED;
	if (fixed != pages)
		die(b, "faults fixed", (long)fixed, pages);
}

static void measure(struct fmt_bench *b, uint64_t pages)
{
	hva_t s = HVA_BASE, e = HVA_BASE + (pages << 12);
	struct kvm_mmu_stats st0, st1;
	uint64_t t0;
	long r;

	populate(b, pages);

	t0 = bench_now_ns();
	r = kvm_mmu_notifier_clear_young(b->kvm, s, e);
	t0 = bench_now_ns() - t0;
	if (r < 0 || (uint64_t)r != pages)
		die(b, "age_young: young leaves", r, pages);
	bench_add(&b->op[OP_AGE_YOUNG], t0, pages);

	t0 = bench_now_ns();
	r = kvm_mmu_notifier_clear_young(b->kvm, s, e);
	t0 = bench_now_ns() - t0;
	if (r)
		die(b, "age_none: young leaves", r, 0);
	bench_add(&b->op[OP_AGE_NONE], t0, pages);

	t0 = bench_now_ns();
	r = kvm_mmu_notifier_test_young(b->kvm, s, e);
	t0 = bench_now_ns() - t0;
	if (r)
		die(b, "test_age: young", r, 0);
	bench_add(&b->op[OP_TEST_AGE], t0, pages);

	if (kvm_get_stats(b->kvm, &st0))
		die(b, "stats", -1, 0);
	t0 = bench_now_ns();
	r = kvm_mmu_notifier_invalidate_range_start(b->kvm, s, e, true);
	r |= kvm_mmu_notifier_invalidate_range_end(b->kvm, s, e, true);
	t0 = bench_now_ns() - t0;
	if (r || kvm_get_stats(b->kvm, &st1) || st1.cur_leaves[1] ||
	    st1.zapped_leaves - st0.zapped_leaves != pages ||
	    st1.flushes + st1.flushes_range != st0.flushes + st0.flushes_range + 1)
		die(b, "unmap: leaves left", (long)st1.cur_leaves[1], 0);
	bench_add(&b->op[OP_UNMAP], t0, pages);
	s2_hosted_quiesce(&b->h); /* free the unlinked tables before the next run */
}

int main(void)
{
	uint64_t pages = (uint64_t)bench_env_long("BENCH_PAGES", 1l << 18);
	unsigned reps = (unsigned)bench_env_long("BENCH_REPS", 7);
	const char *only_fmt = getenv("BENCH_FMT");
	bool strict = bench_env_long("BENCH_STRICT", 0) == 1;
	struct fmt_bench fb[NR_FMTS];
	struct bench_samples xchg = { 0 }, and = { 0 }, scan = { 0 }, rmw = { 0 }, pzap = { 0 },
			     nzap = { 0 };
	unsigned nr = 0;
	uint64_t *entries;
	bool ok = true;

	if (reps > BENCH_MAX_SAMPLES)
		reps = BENCH_MAX_SAMPLES;
	for (unsigned i = 0; i < NR_FMTS; i++) {
		struct fmt_bench *b = &fb[nr];
		int r;

		if (!s2_fmt_supported(all_fmts[i].id))
			continue;
		if (only_fmt && *only_fmt && strcmp(only_fmt, all_fmts[i].label))
			continue;
		memset(b, 0, sizeof(*b));
		b->id = all_fmts[i].id;
		b->fmt_flags = all_fmts[i].fmt_flags;
		b->name = all_fmts[i].label;
		r = fmt_setup(b, pages);
		if (r) {
			fprintf(stderr, "bench_notifier: %s: setup failed: %d\n", b->name, r);
			return 2;
		}
		nr++;
	}
	if (!nr) {
		printf("bench_notifier: no format to measure\n");
		return 0;
	}
	entries = calloc(pages, sizeof(*entries));
	if (!entries) {
		perror("bench_notifier: calloc");
		return 2;
	}

	printf("bench_notifier: %" PRIu64 " pages of 4 KiB leaves in one memslot, %u runs, "
	       "best run per row\n",
	       pages, reps);
	fflush(stdout);
	for (unsigned rep = 0; rep < reps; rep++) {
		for (unsigned i = 0; i < nr; i++) {
			measure(&fb[i], pages);
			bench_xchg_sweep(&xchg, entries, pages, HVA_BASE, ENTRY_PRESENT | ENTRY_A);
			measure_and_sweep(&and, entries, pages);
			measure_plain_scan(&scan, entries, pages);
			bench_plain_rmw_sweep(&rmw, entries, pages, HVA_BASE,
					      ENTRY_PRESENT | ENTRY_A, ENTRY_A);
			bench_plain_zap_sweep(&pzap, entries, pages, HVA_BASE, ENTRY_PRESENT);
			bench_naive_zap_measure(&nzap, BASE_GFN, pages, HVA_BASE >> 12);
		}
	}

	static const double target[NR_OPS] = { UNMAP_TARGET, AGE_YOUNG_TARGET, AGE_NONE_TARGET, 0 };
	const struct bench_samples *limit[NR_OPS] = { &nzap, &rmw, &scan, &scan };
	static const char *const limit_name[NR_OPS] = { "naive_zap", "plain_rmw", "plain_scan",
							"plain_scan" };
	struct bench_row rows[NR_OPS * NR_FMTS];
	unsigned nrows = 0;

	for (unsigned i = 0; i < nr; i++)
		for (unsigned o = 0; o < NR_OPS; o++) {
			const struct bench_samples *l = limit[o];

			rows[nrows++] = (struct bench_row){
				.op = op_name[o],
				.fmt = fb[i].name,
				.ns = bench_best(&fb[i].op[o]),
				.ns_median = bench_median(&fb[i].op[o]),
				.limit = limit_name[o],
				.limit_ns = bench_best(l),
				.limit_median = bench_median(l),
				.target = target[o],
			};
		}
	ok &= bench_print_rows(rows, nrows);
	printf("bench_notifier: for comparison, locked_sweep (atomic fetch-and per entry) "
	       "%.2f ns/page (median %.2f), locked_sweep (atomic exchange per entry) %.2f "
	       "ns/page (median %.2f), plain_zap (one flat array) %.2f ns/page (median %.2f)\n",
	       bench_best(&and), bench_median(&and), bench_best(&xchg), bench_median(&xchg),
	       bench_best(&pzap), bench_median(&pzap));
	printf("bench_notifier: %s\n", ok ? "every target met" : "some target MISSED");

	for (unsigned i = 0; i < nr; i++)
		kvm_destroy_vm(fb[i].kvm);
	free(entries);
	return strict && !ok;
}
