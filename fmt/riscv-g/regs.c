/* SPDX-License-Identifier: MIT */
/* hgatp builders (RISC-V privileged spec, hypervisor extension, "hgatp"). */
#include "core/fmt_api.h"
#include "s2mmu/errno.h"
#include "s2mmu/kvm.h"
#include "s2mmu/riscv-g.h"
#include "s2mmu/vmid.h"

int s2_riscv_make_hgatp(hpa_t root, unsigned mode_levels, uint32_t vmid, uint64_t *out)
{
	uint64_t mode;

	if (!out)
		return -EINVAL;
	switch (mode_levels) {
	case 3: mode = S2_HGATP_MODE_SV39X4; break;
	case 4: mode = S2_HGATP_MODE_SV48X4; break;
	case 5: mode = S2_HGATP_MODE_SV57X4; break;
	default: return -EINVAL;
	}
	/* The x4 root is 16 KiB and aligned to it: hgatp.PPN[1:0] read as 0. */
	if (root & 0x3fffull)
		return -EINVAL;
	if ((root >> 12) & ~S2_HGATP_PPN_MASK)
		return -EINVAL;
	if (vmid > S2_HGATP_VMID_MAX)
		return -EINVAL;
	*out = mode << S2_HGATP_MODE_SHIFT | (uint64_t)vmid << S2_HGATP_VMID_SHIFT | root >> 12;
	return 0;
}

int kvm_riscv_hgatp(const struct kvm *kvm, uint64_t *out)
{
	const struct s2_fmt_cfg *c;

	if (!kvm || !out || kvm_fmt(kvm) != S2_FMT_RISCV_G)
		return -EINVAL;
	c = kvm_fmt_cfg(kvm);
	return s2_riscv_make_hgatp(kvm_mmu_root_hpa(kvm), c->levels, kvm_vmid(kvm), out);
}

int kvm_riscv_hgatp_vmid(const struct kvm *kvm, const struct s2_vmid *v, uint64_t *out)
{
	const struct s2_fmt_cfg *c;

	if (!kvm || !v || !v->alloc || !v->id || !out || kvm_fmt(kvm) != S2_FMT_RISCV_G)
		return -EINVAL;
	if ((1u << v->alloc->bits) - 1 > S2_HGATP_VMID_MAX)
		return -EINVAL;
	c = kvm_fmt_cfg(kvm);
	return s2_riscv_make_hgatp(kvm_mmu_root_hpa(kvm), c->levels, s2_vmid_id(v), out);
}
