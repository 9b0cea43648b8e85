/* SPDX-License-Identifier: MIT */
/* nCR3 builder and NPF decoding (AMD64 APM vol. 2, "Nested Paging"). */
#include "core/fmt_api.h"
#include "s2mmu/errno.h"
#include "s2mmu/kvm.h"
#include "s2mmu/mmu.h"
#include "s2mmu/x86-npt.h"

int s2_npt_make_ncr3(hpa_t root, uint64_t *out)
{
	if (!out)
		return -EINVAL;
	/* nCR3 bits 51:12 hold the root; bits 63:52 must be zero. */
	if (root & 0xfffull)
		return -EINVAL;
	if (root >> 52)
		return -EINVAL;
	*out = root;
	return 0;
}

int kvm_x86_npt_ncr3(const struct kvm *kvm, uint64_t *out)
{
	if (!kvm || !out || kvm_fmt(kvm) != S2_FMT_X86_NPT)
		return -EINVAL;
	return s2_npt_make_ncr3(kvm_mmu_root_hpa(kvm), out);
}

unsigned s2_npt_fault_access(uint64_t exitinfo1)
{
	if (exitinfo1 & S2_NPF_W)
		return S2_ACC_WRITE;
	if ((exitinfo1 & S2_NPF_ID) && !(exitinfo1 & S2_NPF_GPT))
		return S2_ACC_EXEC;
	return S2_ACC_READ;
}

int kvm_handle_npf(struct kvm_vcpu *vcpu, gpa_t gpa, uint64_t exitinfo1)
{
	unsigned access = s2_npt_fault_access(exitinfo1);

	/* RSV alone: a CPU sets P with it (reserved bits are checked in
	 * present entries only), QEMU's TCG leaves P clear. */
	if (exitinfo1 & S2_NPF_RSV)
		return kvm_mmu_page_fault_mmio(vcpu, gpa, access);
	return kvm_tdp_page_fault(vcpu, gpa, access);
}
