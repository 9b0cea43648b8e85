// SPDX-License-Identifier: MIT
/*
 * bench_memslots: what memslot-indexed calls cost with many memslots, beside
 * the same call on a VM with one memslot, measured in the same run (issue
 * 16: QEMU-style VMs use up to 509 memslots; each call below must cost at
 * most 1.3x what it costs with one).
 *
 * The VM of N memslots has N slots of SLOT_PAGES pages each, at spread-out
 * gfns and hvas (the hvas in the reverse order of the gfns, so the two
 * orders differ); every call targets the slot in the middle. Rows, per call
 * (ns_per_page is ns per call here; each notifier call covers one page):
 *
 *  mn_start_end_N  kvm_mmu_notifier_invalidate_range_start + _end on one
 *                  page (nothing mapped: the cost is the hva -> memslot
 *                  search, the lock and the protocol).
 *  test_young_N    kvm_mmu_notifier_test_young on one unmapped page.
 *  test_young_spread_N  the same, each call on a page of another slot (the
 *                  k-th call on slot 97 k mod N): no call finds the slot
 *                  the last one found, so each descends the hva index. No
 *                  target (what a lookup that misses the hint costs).
 *  id_lookup_N     kvm_id_to_memslot of the middle slot's id.
 *  gfn_lookup_N    kvm_gfn_to_memslot of a gfn of the middle slot.
 *  add_delete_N    kvm_set_memslot of one more slot, then kvm_delete_memslot
 *                  of it (the set has N slots, then N + 1, then N).
 *    limit         the same op with N = 1 ("one_memslot"), target 1.3x.
 *
 * N is 1, 64 and 509 (BENCH_SLOTS_MAX changes the largest). Rows report the
 * best of BENCH_REPS (default 7) interleaved repetitions of BENCH_CALLS
 * calls (default 2000; add/delete does a tenth of that). Knobs: BENCH_REPS,
 * BENCH_CALLS, BENCH_SLOTS_MAX, BENCH_STRICT=1.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_common.h"
#include "s2mmu/env-hosted.h"
#include "s2mmu/s2mmu.h"

#define TARGET 1.3
#define SLOT_PAGES 512ull
#define GFN_BASE 0x100000ull
#define GFN_STRIDE 0x1000ull /* 16 MiB between slots */
#define HVA_TOP 0x7f0000000000ull
#define HVA_STRIDE 0x2000000ull /* 32 MiB */
#define EXTRA_ID 100000u

enum { OP_MN, OP_TEST_YOUNG, OP_TEST_YOUNG_SPREAD, OP_ID, OP_GFN, OP_ADD_DEL, NR_OPS };
static const char *const op_name[NR_OPS] = { "mn_start_end", "test_young", "test_young_spread",
					     "id_lookup",    "gfn_lookup", "add_delete" };

struct vm {
	unsigned nslots;
	struct s2_hosted h;
	struct kvm *kvm;
	struct kvm_vcpu *vcpu;
	struct bench_samples op[NR_OPS];
};

static void die(const struct vm *v, const char *what, long got)
{
	fprintf(stderr, "bench_memslots: %u memslots: %s: got %ld\n", v->nslots, what, got);
	exit(2);
}

static gfn_t slot_gfn(unsigned i)
{
	return GFN_BASE + i * GFN_STRIDE;
}

static hva_t slot_hva(unsigned i)
{
	return HVA_TOP - (hva_t)(i + 1) * HVA_STRIDE;
}

static void vm_setup(struct vm *v, unsigned n)
{
	int r;

	v->nslots = n;
	r = bench_vm_create(&v->h, S2_FMT_X86_EPT, S2_FMTF_AD, 1, &v->kvm, &v->vcpu);
	if (r)
		die(v, "create", r);
	for (unsigned i = 0; i < n; i++) {
		r = bench_vm_slot(v->kvm, i, slot_gfn(i), SLOT_PAGES, slot_hva(i));
		if (r)
			die(v, "set_memslot", r);
	}
}

static void measure(struct vm *v, unsigned calls)
{
	unsigned mid = v->nslots / 2;
	hva_t hs = slot_hva(mid) + 7 * 4096, he = hs + 4096;
	struct kvm_memory_slot out;
	uint64_t t0, sum = 0;
	long r = 0;

	t0 = bench_now_ns();
	for (unsigned i = 0; i < calls; i++) {
		r |= kvm_mmu_notifier_invalidate_range_start(v->kvm, hs, he, true);
		r |= kvm_mmu_notifier_invalidate_range_end(v->kvm, hs, he, true);
	}
	t0 = bench_now_ns() - t0;
	if (r)
		die(v, "invalidate", r);
	bench_add(&v->op[OP_MN], t0, calls);

	t0 = bench_now_ns();
	for (unsigned i = 0; i < calls; i++)
		r |= kvm_mmu_notifier_test_young(v->kvm, hs, he);
	t0 = bench_now_ns() - t0;
	if (r)
		die(v, "test_young", r);
	bench_add(&v->op[OP_TEST_YOUNG], t0, calls);

	t0 = bench_now_ns();
	for (unsigned i = 0; i < calls; i++) {
		hva_t s = slot_hva((i * 97) % v->nslots) + 7 * 4096;

		r |= kvm_mmu_notifier_test_young(v->kvm, s, s + 4096);
	}
	t0 = bench_now_ns() - t0;
	if (r)
		die(v, "test_young (spread)", r);
	bench_add(&v->op[OP_TEST_YOUNG_SPREAD], t0, calls);

	t0 = bench_now_ns();
	for (unsigned i = 0; i < calls; i++) {
		r |= kvm_id_to_memslot(v->kvm, mid, &out);
		sum += out.base_gfn;
	}
	t0 = bench_now_ns() - t0;
	if (r || out.base_gfn != slot_gfn(mid))
		die(v, "id_to_memslot", r);
	bench_add(&v->op[OP_ID], t0, calls);

	t0 = bench_now_ns();
	for (unsigned i = 0; i < calls; i++) {
		r |= kvm_gfn_to_memslot(v->kvm, slot_gfn(mid) + 3, &out);
		sum += out.id;
	}
	t0 = bench_now_ns() - t0;
	if (r || out.id != mid)
		die(v, "gfn_to_memslot", r);
	bench_add(&v->op[OP_GFN], t0, calls);
	bench_keep(sum);

	/* One more slot past the others (gfn and hva), added and deleted. */
	unsigned ad = calls / 10 ? calls / 10 : 1;

	t0 = bench_now_ns();
	for (unsigned i = 0; i < ad; i++) {
		r |= bench_vm_slot(v->kvm, EXTRA_ID, slot_gfn(v->nslots), SLOT_PAGES,
				   slot_hva(v->nslots));
		r |= kvm_delete_memslot(v->kvm, EXTRA_ID);
	}
	t0 = bench_now_ns() - t0;
	if (r || kvm_nr_memslots(v->kvm) != v->nslots)
		die(v, "add/delete", r);
	bench_add(&v->op[OP_ADD_DEL], t0, ad);
}

int main(void)
{
	unsigned reps = (unsigned)bench_env_long("BENCH_REPS", 7);
	unsigned calls = (unsigned)bench_env_long("BENCH_CALLS", 2000);
	unsigned nmax = (unsigned)bench_env_long("BENCH_SLOTS_MAX", 509);
	bool strict = bench_env_long("BENCH_STRICT", 0) == 1;
	unsigned sizes[3] = { 1, 64, nmax };
	struct vm vms[3];
	struct bench_row rows[NR_OPS * 3];
	unsigned nrows = 0;
	char names[NR_OPS * 3][32];
	bool ok = true;

	if (reps > BENCH_MAX_SAMPLES)
		reps = BENCH_MAX_SAMPLES;
	if (nmax >= EXTRA_ID || nmax < 2) {
		fprintf(stderr, "bench_memslots: BENCH_SLOTS_MAX out of range\n");
		return 2;
	}
	if (sizes[1] >= nmax)
		sizes[1] = nmax / 2;
	memset(vms, 0, sizeof(vms));
	for (unsigned s = 0; s < 3; s++)
		vm_setup(&vms[s], sizes[s]);

	printf("bench_memslots: x86-ept, %u/%u/%u memslots, %u calls per run, %u runs, "
	       "ns per call\n",
	       sizes[0], sizes[1], sizes[2], calls, reps);
	fflush(stdout);
	for (unsigned rep = 0; rep < reps; rep++)
		for (unsigned s = 0; s < 3; s++)
			measure(&vms[s], calls);

	for (unsigned o = 0; o < NR_OPS; o++)
		for (unsigned s = 0; s < 3; s++) {
			snprintf(names[nrows], sizeof(names[nrows]), "%s_%u", op_name[o], sizes[s]);
			rows[nrows] = (struct bench_row){
				.op = names[nrows],
				.fmt = "x86-ept",
				.ns = bench_best(&vms[s].op[o]),
				.ns_median = bench_median(&vms[s].op[o]),
				.limit = "one_memslot",
				.limit_ns = bench_best(&vms[0].op[o]),
				.limit_median = bench_median(&vms[0].op[o]),
				.target = s && o != OP_TEST_YOUNG_SPREAD ? TARGET : 0,
			};
			nrows++;
		}
	ok &= bench_print_rows(rows, nrows);
	printf("bench_memslots: %s\n", ok ? "every target met" : "some target MISSED");
	for (unsigned s = 0; s < 3; s++)
		kvm_destroy_vm(vms[s].kvm);
	return strict && !ok;
}
