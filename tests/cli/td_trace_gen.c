// SPDX-License-Identifier: MIT
/*
 * td_trace_gen SEED CALLS FILE: a hosted TD (EPT with CONFIG_S2_TDX, the
 * TDX module model of tests/tdx answering its SEAMCALLs) driven with the
 * library's call trace on (CONFIG_S2_TRACE), for tests/cli/tdx.sh. FILE gets
 * the library's own lines (tdx_init, tdx_page_add, tdx_finalized,
 * tdx_collapse, faults, attribute conversions, zaps, memslot calls) plus
 * what the library cannot see and this program adds: the `host` line and
 * `tdx_accept` lines (the guest's TDG.MEM.PAGE.ACCEPT before a collapse).
 * The library's own tdx_promote_answer lines let the trace replay without
 * the tdx_accept lines too, as a real TD's would (tests/cli/tdx.sh).
 * `s2mmu replay` of FILE must meet every result. Prints the model's leaf and
 * S-EPT page counts and its illegal-call count at the end (before the VM is
 * destroyed, which is not in the trace), as replay's summary prints them.
 * Exit 0; 1 when the build has no trace or no TDX; 2 usage; 3/4 setup.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "s2mmu/config.h"
#include "s2mmu/env-hosted.h"
#include "s2mmu/errno.h"
#include "s2mmu/s2mmu.h"
#if S2_ENABLED(CONFIG_S2_TDX)
#include "s2mmu/tdx.h"
#include "tests/tdx/model.h"

/* The private pages: replay's choice (tools/s2mmu/replay.c), so both runs
 * hand the module the same pages. */
#define PRIVATE_PFN (1ull << 36)
#define SHARED_GFN (1ull << (47 - 12))
#define NPAGES 0x1000ull

static uint64_t rng;

static uint64_t rnd(uint64_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return n ? rng % n : 0;
}

static int private_pfn(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, kvm_pfn_t *pfn,
		       int *max_level)
{
	(void)ctx;
	*pfn = PRIVATE_PFN + ((uint64_t)slot->id << 24) + (gfn - slot->base_gfn);
	*max_level = 2;
	return 0;
}

/* A result the trace records and replay checks; nothing to do with it here. */
static void ign(long r)
{
	(void)r;
}

static struct tdx_model M;
static int fd;

/* The guest accepts [g, g + n) at 4 KiB: a tdx_accept line each. */
static void accept(gfn_t g, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t st = tdxm_accept(&M, (g + i) << 12, 1);

		dprintf(fd, "tdx_accept gfn=%#llx level=1 => %s\n", (unsigned long long)(g + i),
			st ? "-EIO" : "0");
	}
}

int main(int argc, char **argv)
{
	static struct s2_hosted h;
	struct kvm_vm_params p = { 0 };
	struct kvm_tdx_params tp = { 0 };
	struct s2_tdx_ops ops;
	struct kvm_memory_slot s = {
		.id = 0, .base_gfn = 0, .npages = NPAGES, .userspace_addr = 0x7f0000000000
	};
	struct kvm *kvm;
	struct kvm_vcpu *vcpu;
	unsigned long calls;
	int r;

	if (argc != 4) {
		fprintf(stderr, "usage: td_trace_gen SEED CALLS FILE\n");
		return 2;
	}
	if (!S2_ENABLED(CONFIG_S2_TRACE)) {
		fprintf(stderr, "td_trace_gen: this build has no call trace (CONFIG_S2_TRACE)\n");
		return 1;
	}
	rng = strtoull(argv[1], NULL, 0) * 0x9e3779b97f4a7c15ull | 1;
	calls = strtoul(argv[2], NULL, 0);
	fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return 3;
	dprintf(fd,
		"# s2mmu trace 1, a TD written by the library (td_trace_gen %s %s)\nhost level=2\n",
		argv[1], argv[2]);
	s2_hosted_init(&h);
	h.quiet = true;
	h.host_level = 2;
	h.trace_fd = fd;
	h.env.trace = true;
	p.env = &h.env;
	p.fmt = S2_FMT_X86_EPT;
	p.fmt_flags = S2_FMTF_AD;
	p.gpa_bits = 48;
	p.max_vcpus = 1;
	if (kvm_create_vm(&p, &kvm))
		return 4;
	tdxm_init(&M, (unsigned)kvm_mmu_levels(kvm), 0, 1);
	M.finalized = false; /* the build phase: PAGE.ADD */
	ops = tdxm_ops_template;
	ops.private_pfn = private_pfn;
	tp.ops = &ops;
	tp.ctx = &M;
	tp.shared_bit = 47;
	if (kvm_tdx_init(kvm, &tp) || kvm_vcpu_create(kvm, 0, &vcpu) || kvm_set_memslot(kvm, &s))
		return 4;

	/* Build: private [0, 0x800), initial memory by PAGE.ADD, finalize. */
	r = kvm_vm_set_mem_attributes(kvm, 0, 0x800, KVM_MEMORY_ATTRIBUTE_PRIVATE);
	for (gfn_t g = 0; g < 8; g++)
		r |= kvm_tdx_page_add(kvm, g, 0x1000000 + (g << 12));
	if (r) {
		fprintf(stderr, "td_trace_gen: PAGE.ADD failed (%d): %s\n", r, M.first_illegal);
		return 4;
	}
	ign(kvm_tdx_page_add(kvm, 0, 0x1000000));     /* -EEXIST */
	ign(kvm_tdx_page_add(kvm, 0x900, 0x1000000)); /* shared: -EINVAL */
	M.finalized = true;			      /* TDH.MR.FINALIZE */
	(void)kvm_tdx_finalized(kvm);
	ign(kvm_tdx_page_add(kvm, 8, 0x1000000)); /* finalized: -EINVAL */

	/* A 2 MiB private leaf, cut by a conversion, accepted, collapsed. */
	(void)kvm_tdp_page_fault(vcpu, 0x200ull << 12, S2_ACC_WRITE);
	ign(kvm_vm_set_mem_attributes(kvm, 0x300, 0x301, 0));
	ign(kvm_vm_set_mem_attributes(kvm, 0x300, 0x301, KVM_MEMORY_ATTRIBUTE_PRIVATE));
	for (gfn_t g = 0x200; g < 0x400; g++)
		(void)kvm_tdp_page_fault(vcpu, g << 12, S2_ACC_WRITE);
	accept(0x200, 0x200);
	(void)kvm_tdx_collapse(kvm, 0x200, 0x400);
	/* A block the guest accepted half of: PAGE.PROMOTE refused (0 made),
	 * then the rest: promoted. Its replay without the tdx_accept lines
	 * (a real TD's trace) takes the answers from the library's
	 * tdx_promote_answer lines. */
	(void)kvm_tdp_page_fault(vcpu, 0x400ull << 12, S2_ACC_WRITE);
	ign(kvm_vm_set_mem_attributes(kvm, 0x500, 0x501, 0));
	ign(kvm_vm_set_mem_attributes(kvm, 0x500, 0x501, KVM_MEMORY_ATTRIBUTE_PRIVATE));
	for (gfn_t g = 0x400; g < 0x600; g++)
		(void)kvm_tdp_page_fault(vcpu, g << 12, S2_ACC_WRITE);
	accept(0x400, 0x100);
	(void)kvm_tdx_collapse(kvm, 0x400, 0x600);
	accept(0x500, 0x100);
	(void)kvm_tdx_collapse(kvm, 0x400, 0x600);

	/* Random faults (private and shared), conversions, zaps, collapses. */
	for (unsigned long n = 0; n < calls; n++) {
		gfn_t g = rnd(NPAGES);
		unsigned k = (unsigned)rnd(100);
		unsigned acc = rnd(2) ? S2_ACC_WRITE : S2_ACC_READ;

		if (k < 40) {
			(void)kvm_tdp_page_fault(vcpu, g << 12, acc);
		} else if (k < 70) {
			(void)kvm_tdp_page_fault(vcpu, (g | SHARED_GFN) << 12, acc);
		} else if (k < 85) {
			gfn_t e = g + 1 + rnd(64);

			ign(kvm_vm_set_mem_attributes(kvm, g, e > NPAGES ? NPAGES : e,
						      rnd(2) ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0));
		} else if (k < 92) {
			gfn_t b = g & ~0x1ffull;

			accept(b + rnd(8), 1 + (unsigned)rnd(4));
			(void)kvm_tdx_collapse(kvm, b, b + 0x200);
		} else {
			(void)kvm_zap_gfn_range(kvm, g, g + 1 + rnd(32));
		}
	}
	printf("model: %u leaves, %u sept pages, %u illegal%s%s\n", tdxm_nr_leaves(&M),
	       tdxm_nr_sept(&M), M.illegal, M.illegal ? ": " : "", M.first_illegal);
	kvm_destroy_vm(kvm);
	s2_hosted_quiesce(&h);
	return M.illegal ? 5 : 0;
}
#else
int main(void)
{
	fprintf(stderr, "td_trace_gen: this build has no TDX (CONFIG_S2_TDX)\n");
	return 1;
}
#endif
