// SPDX-License-Identifier: MIT
/*
 * bench_mmio (issue 14): an MMIO access answered from a cached MMIO entry
 * (kvm_mmu_page_fault_mmio, docs/mmio.md) against the uncached path measured
 * in the same run (kvm_tdp_page_fault on a VM with S2_MMIO_CACHE_OFF: the
 * fault's checks and the memslot lookup that finds no slot). Every format
 * with the cache forced on (S2_MMIO_CACHE_ON). Both VMs have BENCH_SLOTS
 * memslots (default 16) around the MMIO window, so the lookup searches a set
 * as a guest with a few RAM and ROM regions has. Figures are ns per access
 * over BENCH_MMIO_PAGES distinct gfns (default 4096), best and median of
 * BENCH_REPS runs (default 5); target: the cached access no slower than the
 * uncached one.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench/bench_common.h"
#include "s2mmu/env-hosted.h"
#include "s2mmu/s2mmu.h"

#define MMIO_TARGET 1.0
#define SLOT_PAGES 0x100ull
#define MMIO_GFN (0x100000ull) /* 4 GiB: past the slots below */
#define HVA_BASE (0x7f0000000000ull)

struct mvm {
	struct s2_hosted h;
	struct kvm *kvm;
	struct kvm_vcpu *vcpu;
};

static int mvm_create(struct mvm *m, enum s2_fmt_id fmt, unsigned cache, unsigned slots)
{
	struct kvm_vm_params p = { .fmt = fmt,
				   .gpa_bits = 48,
				   .max_leaf_level = 1,
				   .max_vcpus = 1,
				   .mmio_cache = cache,
				   .env = &m->h.env };
	int r;

	s2_hosted_init(&m->h);
	m->h.quiet = true;
	r = kvm_create_vm(&p, &m->kvm);
	if (r)
		return r;
	r = kvm_vcpu_create(m->kvm, 0, &m->vcpu);
	/* Slots below and above the MMIO window, one page apart. */
	for (unsigned i = 0; !r && i < slots; i++) {
		gfn_t base = i < slots / 2 ? i * 2 * SLOT_PAGES :
					     MMIO_GFN + 0x100000 + (i - slots / 2) * 2 * SLOT_PAGES;

		r = bench_vm_slot(m->kvm, i, base, SLOT_PAGES, HVA_BASE + ((uint64_t)i << 32));
	}
	if (r)
		kvm_destroy_vm(m->kvm);
	return r;
}

/* One pass of @n MMIO accesses; false when one is not RET_PF_EMULATE_MMIO. */
static bool pass(struct mvm *m, bool cached, uint64_t n, struct bench_samples *s)
{
	uint64_t t0 = bench_now_ns(), t1;
	int bad = 0;

	for (uint64_t i = 0; i < n; i++) {
		gpa_t gpa = (MMIO_GFN + i) << 12;
		int r = cached ? kvm_mmu_page_fault_mmio(m->vcpu, gpa, S2_ACC_WRITE) :
				 kvm_tdp_page_fault(m->vcpu, gpa, S2_ACC_WRITE);

		bad |= r != RET_PF_EMULATE_MMIO;
	}
	t1 = bench_now_ns();
	if (s)
		bench_add(s, t1 - t0, n);
	return !bad;
}

int main(void)
{
	long pages = bench_env_long("BENCH_MMIO_PAGES", 4096);
	long reps = bench_env_long("BENCH_REPS", 5);
	long slots = bench_env_long("BENCH_SLOTS", 16);
	static const enum s2_fmt_id fmts[] = { S2_FMT_X86_EPT, S2_FMT_X86_NPT, S2_FMT_ARM64_S2,
					       S2_FMT_RISCV_G };
	struct bench_row rows[4];
	unsigned nr = 0;
	bool ok = true;

	if (pages < 1 || pages > 0x100000 || reps < 1 || reps > BENCH_MAX_SAMPLES || slots < 0 ||
	    slots > 64) {
		fprintf(stderr,
			"bench_mmio: BENCH_MMIO_PAGES 1..1M, BENCH_REPS 1..%d, "
			"BENCH_SLOTS 0..64\n",
			BENCH_MAX_SAMPLES);
		return 2;
	}
	for (unsigned f = 0; f < sizeof(fmts) / sizeof(fmts[0]); f++) {
		struct bench_samples sc = { 0 }, su = { 0 };
		struct kvm_mmu_stats st;
		struct mvm *c, *u;

		if (!s2_fmt_supported(fmts[f]))
			continue;
		c = calloc(1, sizeof(*c));
		u = calloc(1, sizeof(*u));
		if (!c || !u || mvm_create(c, fmts[f], S2_MMIO_CACHE_ON, (unsigned)slots) ||
		    mvm_create(u, fmts[f], S2_MMIO_CACHE_OFF, (unsigned)slots)) {
			fprintf(stderr, "bench_mmio: %s: setup failed\n", s2_fmt_name(fmts[f]));
			return 1;
		}
		/* Prime: the first access writes the entries (and tables). */
		if (!pass(c, true, (uint64_t)pages, NULL) ||
		    !pass(u, false, (uint64_t)pages, NULL)) {
			fprintf(stderr, "bench_mmio: %s: an access was not MMIO\n",
				s2_fmt_name(fmts[f]));
			return 1;
		}
		for (long i = 0; i < reps; i++) {
			ok &= pass(c, true, (uint64_t)pages, &sc);
			ok &= pass(u, false, (uint64_t)pages, &su);
		}
		/* Every timed cached access came from an entry. */
		if (kvm_get_stats(c->kvm, &st) ||
		    st.exits_mmio_cached != (uint64_t)pages * (uint64_t)reps ||
		    st.mmio_entries != (uint64_t)pages) {
			fprintf(stderr,
				"bench_mmio: %s: %" PRIu64 " cached exits, %" PRIu64 " entries\n",
				s2_fmt_name(fmts[f]), st.exits_mmio_cached, st.mmio_entries);
			return 1;
		}
		rows[nr++] = (struct bench_row){ .op = "mmio_exit",
						 .fmt = s2_fmt_name(fmts[f]),
						 .ns = bench_best(&sc),
						 .ns_median = bench_median(&sc),
						 .limit = "uncached",
						 .limit_ns = bench_best(&su),
						 .limit_median = bench_median(&su),
						 .target = MMIO_TARGET };
		kvm_destroy_vm(c->kvm);
		kvm_destroy_vm(u->kvm);
		free(c);
		free(u);
	}
	printf("bench_mmio: %ld MMIO gfns, %ld memslots, %ld runs; ns per access, cached entry "
	       "(kvm_mmu_page_fault_mmio) vs uncached (fault + memslot lookup):\n",
	       pages, slots, reps);
	bench_print_table_head();
	for (unsigned i = 0; i < nr; i++)
		ok &= bench_print_table_row(&rows[i]);
	for (unsigned i = 0; i < nr; i++)
		bench_print_line(&rows[i]);
	printf("bench_mmio: %s\n", ok ? "every target met" : "some target MISSED");
	return 0;
}
