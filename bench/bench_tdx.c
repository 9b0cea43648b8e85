// SPDX-License-Identifier: MIT
/*
 * bench_tdx: TDX private memory (issue 12, docs/tdx.md) on x86-ept, 4-level
 * (shared bit 47), with SEAMCALL hooks that do nothing but count (O(1)), so
 * every row is the library's own cost. Per 4 KiB page:
 *
 *  tdx_populate     one private kvm_tdp_page_fault per page, BENCH_TDX_PAGES
 *                   pages (default 64K) of one memslot, private backing at
 *                   4 KiB (a PAGE.AUG per page, SEPT.ADDs every 512th);
 *                   limit shared_fault: the same TD's shared full-path fault
 *                   over as many pages (host maps 4 KiB), the same run.
 *  tdx_populate_2m  the same with 2 MiB private backing over BENCH_TDX_2M_PAGES
 *                   (default 1M: 2048 faults, a PAGE.AUG at level 2 each);
 *                   limit shared_fault_2m: shared faults with 2 MiB host
 *                   pages over as many pages.
 *  tdx_zap          kvm_vm_set_mem_attributes(private -> shared) over the
 *                   populated range: BLOCK every leaf, one TRACK and one kick
 *                   round per call, REMOVE and WBINVD each; limit
 *                   seamcall_sweep: the least the same work needs, per leaf
 *                   the three hook calls through the same pointers and a
 *                   store of its entry, plus one TRACK.
 *  tdx_zap_pp       the same with params.track_per_page (KVM's order: a
 *                   TRACK and a kick round per page); same limit.
 *  tdx_zap_2m, tdx_zap_pp_2m   the same over 2 MiB leaves.
 *
 * Each zap row's extra line gives SEAMCALLs and kick rounds per zapped 4 KiB
 * page from kvm_tdx_get_stats(): a real kick round is IPIs to every vcpu in
 * the guest and waiting for their exits, which this hosted run (one vcpu,
 * never in the guest) does not pay, so the per-page TRACK's real cost is
 * larger than its row shows. BENCH_REPS (default 5) runs, best of each.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_common.h"
#include "s2mmu/config.h"
#include "s2mmu/tdx.h"

#if !S2_ENABLED(CONFIG_S2_TDX)
/* A build without TDX (arm64- or RISC-V-only) has no kvm_tdx_* at all. */
int main(void)
{
	printf("bench_tdx: no TDX in this build\n");
	return 0;
}
#else

#define BASE_GFN 0x100000ull /* 4 GiB, 1 GiB aligned */
#define HVA_BASE 0x100000000000ull
#define GMEM_PFN 0x4000000ull /* private backing: 256 GiB, 1 GiB aligned */
#define SHARED_GFN (1ull << (47 - 12))
/* Populate: as bench_mmu's populate against its limit. The zap rows have
 * no target yet (docs/bench.md: what their ratio holds). */
#define POPULATE_TARGET 1.5

static uint64_t calls;
static int gmem_level;

static uint64_t h_page(void *c, gpa_t g, int l, hpa_t p)
{
	(void)c, (void)g, (void)l, (void)p;
	calls++;
	return S2_TDX_SUCCESS;
}
static uint64_t h_add(void *c, gpa_t g, hpa_t p, hpa_t s)
{
	(void)c, (void)g, (void)p, (void)s;
	calls++;
	return S2_TDX_SUCCESS;
}
static uint64_t h_gl(void *c, gpa_t g, int l)
{
	(void)c, (void)g, (void)l;
	calls++;
	return S2_TDX_SUCCESS;
}
static uint64_t h_track(void *c)
{
	(void)c;
	calls++;
	return S2_TDX_SUCCESS;
}
static uint64_t h_pa(void *c, hpa_t p)
{
	(void)c, (void)p;
	calls++;
	return S2_TDX_SUCCESS;
}
static void h_key(void *c)
{
	(void)c;
}
static int h_pfn(void *c, const struct kvm_memory_slot *slot, gfn_t gfn, kvm_pfn_t *pfn,
		 int *max_level)
{
	(void)c;
	*pfn = GMEM_PFN + (gfn - slot->base_gfn);
	*max_level = gmem_level;
	return 0;
}
static void h_put(void *c, kvm_pfn_t pfn, int level)
{
	(void)c, (void)pfn, (void)level;
}

static const struct s2_tdx_ops ops = {
	.sept_add = h_page,
	.page_aug = h_page,
	.page_add = h_add,
	.range_block = h_gl,
	.track = h_track,
	.page_remove = h_gl,
	.sept_remove = h_gl,
	.page_demote = h_page,
	.page_promote = h_gl,
	.range_unblock = h_gl,
	.page_wbinvd = h_pa,
	.page_reclaim = h_pa,
	.release_key = h_key,
	.private_pfn = h_pfn,
	.private_pfn_put = h_put,
};

struct td {
	struct s2_hosted h;
	struct kvm *kvm;
	struct kvm_vcpu *vcpu;
};

/* A TD with one slot of @pages at BASE_GFN, all private when @private. */
static int td_create(struct td *t, int level, bool private, bool per_page, uint64_t pages)
{
	struct kvm_tdx_params p = { .ops = &ops, .shared_bit = 47, .track_per_page = per_page };
	int r = bench_vm_create(&t->h, S2_FMT_X86_EPT, S2_FMTF_AD, (unsigned)level, &t->kvm,
				&t->vcpu);

	if (r)
		return r;
	t->h.host_level = level;
	gmem_level = level;
	r = kvm_tdx_init(t->kvm, &p);
	if (!r)
		r = bench_vm_slot(t->kvm, 0, BASE_GFN, pages, HVA_BASE);
	if (!r && private)
		r = kvm_vm_set_mem_attributes(t->kvm, BASE_GFN, BASE_GFN + pages,
					      KVM_MEMORY_ATTRIBUTE_PRIVATE);
	if (r)
		kvm_destroy_vm(t->kvm);
	return r;
}

/* One fault per leaf of @level over @pages; false when one did not fix. */
static bool populate(struct td *t, int level, bool shared, uint64_t pages, struct bench_samples *s)
{
	uint64_t step = level == 2 ? 512 : 1, t0, t1;
	bool ok = true;

	t0 = bench_now_ns();
	for (uint64_t i = 0; i < pages; i += step) {
		gfn_t g = (BASE_GFN + i) | (shared ? SHARED_GFN : 0);

		ok &= kvm_tdp_page_fault(t->vcpu, g << 12, S2_ACC_READ | S2_ACC_WRITE) ==
		      RET_PF_FIXED;
	}
	t1 = bench_now_ns();
	bench_add(s, t1 - t0, pages);
	return ok;
}

/* The least a removal of @leaves private leaves needs: BLOCK each through
 * the hook, one TRACK, REMOVE and WBINVD each, each entry stored twice. */
static void seamcall_sweep(uint64_t *e, uint64_t leaves, uint64_t pages, struct bench_samples *s)
{
	const struct s2_tdx_ops *volatile o = &ops;
	uint64_t t0, t1;

	for (uint64_t i = 0; i < leaves; i++)
		e[i] = (GMEM_PFN + i) << 12 | 0x87;
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < leaves; i++) {
		o->range_block(NULL, i << 12, 1);
		__atomic_store_n(&e[i], e[i] | (1ull << 62), __ATOMIC_RELEASE);
	}
	o->track(NULL);
	for (uint64_t i = 0; i < leaves; i++) {
		o->page_remove(NULL, i << 12, 1);
		o->page_wbinvd(NULL, e[i] & ~0xfffull);
		__atomic_store_n(&e[i], 0, __ATOMIC_RELEASE);
	}
	t1 = bench_now_ns();
	bench_add(s, t1 - t0, pages);
}

struct zap_run {
	struct bench_samples s;
	uint64_t seamcalls, kicks, pages;
};

/* Populate a private TD, then time its conversion to shared. */
static int zap(int level, bool per_page, uint64_t pages, struct zap_run *z)
{
	struct bench_samples ignore = { 0 };
	struct kvm_tdx_stats s0, s1;
	struct td t;
	uint64_t t0, t1;
	int r = td_create(&t, level, true, per_page, pages);

	if (r)
		return r;
	if (!populate(&t, level, false, pages, &ignore) || kvm_tdx_get_stats(t.kvm, &s0))
		r = -EFAULT;
	if (!r) {
		t0 = bench_now_ns();
		r = kvm_vm_set_mem_attributes(t.kvm, BASE_GFN, BASE_GFN + pages, 0);
		t1 = bench_now_ns();
		bench_add(&z->s, t1 - t0, pages);
	}
	if (!r &&
	    (kvm_tdx_get_stats(t.kvm, &s1) || s1.cur_private_leaves[1] ||
	     s1.cur_private_leaves[2] || s1.removed - s0.removed != pages / (level == 2 ? 512 : 1)))
		r = -EFAULT;
	if (!r) {
		z->seamcalls = s1.seamcalls - s0.seamcalls;
		z->kicks = s1.kick_rounds - s0.kick_rounds;
		z->pages = pages;
	}
	kvm_destroy_vm(t.kvm);
	return r;
}

int main(void)
{
	long pages4 = bench_env_long("BENCH_TDX_PAGES", 1 << 16);
	long pages2 = bench_env_long("BENCH_TDX_2M_PAGES", 1 << 20);
	long reps = bench_env_long("BENCH_REPS", 5);
	struct bench_row rows[6];
	struct zap_run zr[4];
	unsigned nr = 0;
	bool ok = true;

	if (pages4 < 512 || pages4 > (1 << 22) || pages2 < 512 || pages2 > (1 << 24) ||
	    (pages2 & 511) || reps < 1 || reps > BENCH_MAX_SAMPLES) {
		fprintf(stderr,
			"bench_tdx: BENCH_TDX_PAGES 512..4M, BENCH_TDX_2M_PAGES 512..16M "
			"(whole 2 MiB), BENCH_REPS 1..%d\n",
			BENCH_MAX_SAMPLES);
		return 2;
	}
	{
		struct td t;
		int r = td_create(&t, 1, true, false, 512);

		if (r) {
			fprintf(stderr, "bench_tdx: setup failed (%d)\n", r);
			return 1;
		}
		kvm_destroy_vm(t.kvm);
	}
	for (int level = 1; level <= 2; level++) {
		uint64_t pages = (uint64_t)(level == 1 ? pages4 : pages2);
		struct bench_samples sp = { 0 }, ss = { 0 }, sl = { 0 };
		uint64_t leaves = level == 2 ? pages / 512 : pages;
		uint64_t *e = calloc(leaves, sizeof(*e));

		if (!e)
			return 1;
		memset(zr, 0, sizeof(zr));
		for (long i = 0; i < reps; i++) {
			struct td p, s;

			if (td_create(&p, level, true, false, pages) ||
			    td_create(&s, level, false, false, pages)) {
				fprintf(stderr, "bench_tdx: setup failed\n");
				return 1;
			}
			if (!populate(&p, level, false, pages, &sp) ||
			    !populate(&s, level, true, pages, &ss)) {
				fprintf(stderr, "bench_tdx: a fault did not install\n");
				return 1;
			}
			kvm_destroy_vm(p.kvm);
			kvm_destroy_vm(s.kvm);
			for (int pp = 0; pp < 2; pp++)
				if (zap(level, pp, pages, &zr[pp])) {
					fprintf(stderr, "bench_tdx: a zap left private leaves\n");
					return 1;
				}
			seamcall_sweep(e, leaves, pages, &sl);
		}
		free(e);
		rows[nr++] =
			(struct bench_row){ .op = level == 1 ? "tdx_populate" : "tdx_populate_2m",
					    .fmt = "x86-ept",
					    .ns = bench_best(&sp),
					    .ns_median = bench_median(&sp),
					    .limit =
						    level == 1 ? "shared_fault" : "shared_fault_2m",
					    .limit_ns = bench_best(&ss),
					    .limit_median = bench_median(&ss),
					    .target = 1.5 };
		for (int pp = 0; pp < 2; pp++) {
			static const char *const names[2][2] = {
				{ "tdx_zap", "tdx_zap_pp" }, { "tdx_zap_2m", "tdx_zap_pp_2m" }
			};

			rows[nr++] = (struct bench_row){ .op = names[level - 1][pp],
							 .fmt = "x86-ept",
							 .ns = bench_best(&zr[pp].s),
							 .ns_median = bench_median(&zr[pp].s),
							 .limit = "seamcall_sweep",
							 .limit_ns = bench_best(&sl),
							 .limit_median = bench_median(&sl),
							 .target = 0 };
			printf("bench_tdx: %s: %" PRIu64 " pages, %" PRIu64 " SEAMCALLs (%.4f per "
			       "page), %" PRIu64 " kick rounds (%.6f per page)\n",
			       names[level - 1][pp], zr[pp].pages, zr[pp].seamcalls,
			       (double)zr[pp].seamcalls / (double)zr[pp].pages, zr[pp].kicks,
			       (double)zr[pp].kicks / (double)zr[pp].pages);
		}
	}
	printf("bench_tdx: %ld pages at 4 KiB, %ld at 2 MiB, %ld runs; ns per 4 KiB page, O(1) "
	       "SEAMCALL hooks:\n",
	       pages4, pages2, reps);
	bench_print_table_head();
	for (unsigned i = 0; i < nr; i++)
		ok &= bench_print_table_row(&rows[i]);
	for (unsigned i = 0; i < nr; i++)
		bench_print_line(&rows[i]);
	printf("bench_tdx: %s\n", ok ? "every target met" : "some target MISSED");
	return 0;
}
#endif
