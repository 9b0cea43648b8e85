// SPDX-License-Identifier: MIT
/*
 * s2demo: the README's `make run` until the emulator examples exist. Creates
 * a VM on the x86 EPT format (or the first format built, in a configuration
 * without EPT) in the hosted environment, faults in a few
 * thousand pages of two memslots (one 2 MiB-aligned, one not, so both 2 MiB
 * and 4 KiB leaves appear), zaps a range, and prints what the tables hold
 * and the statistics.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "s2mmu/env-hosted.h"
#include "s2mmu/s2mmu.h"
#include "s2mmu/config.h"
#if S2_ENABLED(CONFIG_S2_FMT_X86_EPT)
#include "s2mmu/x86-ept.h"
#endif

static int print_leaf(void *arg, gfn_t gfn, const struct s2_mapping *m)
{
	unsigned *left = arg;

	if (!(*left)--)
		return 1;
	printf("  gpa %#014" PRIx64 " -> hpa %#014" PRIx64 "  %s  %c%c%c  pte %#018" PRIx64 "\n",
	       gfn << 12, m->hpa,
	       m->level == 1 ? "4K" :
	       m->level == 2 ? "2M" :
			       "1G",
	       (m->prot & S2_PROT_R) ? 'r' : '-', (m->prot & S2_PROT_W) ? 'w' : '-',
	       (m->prot & S2_PROT_X) ? 'x' : '-', m->pte);
	return 0;
}

static void show(struct kvm *kvm, const char *when)
{
	char buf[512];
	unsigned left = 6;

	kvm_format_stats(kvm, buf, sizeof(buf));
	printf("%s\n  %s\n", when, buf);
	kvm_mmu_for_each_leaf(kvm, 0, 1ull << (kvm_gpa_bits(kvm) - 12), print_leaf, &left);
}

static int die(const char *what, int r)
{
	fprintf(stderr, "s2demo: %s failed: %d\n", what, r);
	return 1;
}

int main(void)
{
	struct s2_hosted h;
	struct kvm *kvm;
	struct kvm_vcpu *vcpu;
	int r;

	s2_hosted_init(&h);
	static const enum s2_fmt_id order[] = { S2_FMT_X86_EPT, S2_FMT_X86_NPT, S2_FMT_ARM64_S2,
						S2_FMT_RISCV_G };
	struct kvm_vm_params p = { .gpa_bits = 48, .fmt_flags = S2_FMTF_AD, .env = &h.env };
	for (unsigned i = 0; i < sizeof(order) / sizeof(order[0]) && !p.fmt; i++)
		if (s2_fmt_supported(order[i]))
			p.fmt = order[i];
	if (p.fmt == S2_FMT_RISCV_G)
		p.gpa_bits = 50; /* Sv48x4 */
	r = kvm_create_vm(&p, &kvm);
	if (r)
		return die("kvm_create_vm", r);
	r = kvm_vcpu_create(kvm, 0, &vcpu);
	if (r)
		return die("kvm_vcpu_create", r);
	/* 16 MiB at 1 GiB, 2 MiB-congruent: 2 MiB leaves. */
	struct kvm_memory_slot big = {
		.id = 0, .base_gfn = 0x40000, .npages = 4096, .userspace_addr = 0x7f0000000000ull
	};
	/* 8 MiB at 3 GiB whose hva is off by 4 KiB: only 4 KiB leaves fit. */
	struct kvm_memory_slot small = {
		.id = 1, .base_gfn = 0xc0000, .npages = 2048, .userspace_addr = 0x7f1000001000ull
	};
	if ((r = kvm_set_memslot(kvm, &big)) || (r = kvm_set_memslot(kvm, &small)))
		return die("kvm_set_memslot", r);
	printf("s2mmu demo: %s, %u-level, root at %#" PRIx64, s2_fmt_name(p.fmt),
	       kvm_mmu_levels(kvm), kvm_mmu_root_hpa(kvm));
#if S2_ENABLED(CONFIG_S2_FMT_X86_EPT)
	if (p.fmt == S2_FMT_X86_EPT) {
		uint64_t eptp;

		r = kvm_x86_ept_eptp(kvm, &eptp);
		if (r)
			return die("kvm_x86_ept_eptp", r);
		printf(", EPTP %#" PRIx64, eptp);
	}
#endif
	printf("\n");

	for (gfn_t g = 0; g < big.npages; g++) {
		r = kvm_tdp_page_fault(vcpu, (big.base_gfn + g) << 12, S2_ACC_READ | S2_ACC_WRITE);
		if (r < 0)
			return die("fault", r);
	}
	for (gfn_t g = 0; g < small.npages; g++) {
		r = kvm_tdp_page_fault(vcpu, (small.base_gfn + g) << 12, S2_ACC_READ);
		if (r < 0)
			return die("fault", r);
	}
	r = kvm_tdp_page_fault(vcpu, 0xfee00000, S2_ACC_WRITE);
	printf("fault at 0xfee00000 (no memslot): %s\n",
	       r == RET_PF_EMULATE_MMIO ? "MMIO exit" : "unexpected");
	show(kvm, "after faulting 6144 pages of two memslots:");

	long z = kvm_zap_gfn_range(kvm, big.base_gfn + 256, big.base_gfn + 1024 + 3);
	printf("zapped gfn [%#" PRIx64 ", %#" PRIx64 "): %ld leaves\n", big.base_gfn + 256,
	       big.base_gfn + 1027, z);
	z = kvm_zap_gfn_range(kvm, small.base_gfn, small.base_gfn + 1024);
	printf("zapped gfn [%#" PRIx64 ", %#" PRIx64 "): %ld leaves\n", small.base_gfn,
	       small.base_gfn + 1024, z);
	show(kvm, "after the zaps:");

	kvm_destroy_vm(kvm);
	s2_hosted_quiesce(&h);
	printf("destroyed: table pages in use %" PRIu64 ", metadata blocks in use %" PRIu64 "\n",
	       s2_hosted_pages_in_use(&h), s2_hosted_meta_in_use(&h));
	return s2_hosted_pages_in_use(&h) || s2_hosted_meta_in_use(&h);
}
