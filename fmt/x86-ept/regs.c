/* SPDX-License-Identifier: MIT */
/*
 * EPT register builders (include/s2mmu/x86-ept.h).
 */
#include "s2mmu/x86-ept.h"

#include "core/fmt_api.h"
#include "s2mmu/errno.h"
#include "s2mmu/kvm.h"
#include "s2mmu/mmu.h"
#include "s2mmu/vmid.h"

int s2_ept_make_eptp(hpa_t root, unsigned memtype, unsigned levels, bool ad, uint64_t *eptp)
{
	if (!eptp)
		return -EINVAL;
	if (memtype != S2_EPTP_MT_UC && memtype != S2_EPTP_MT_WB)
		return -EINVAL;
	if (levels != 4 && levels != 5)
		return -EINVAL;
	if (root & ~S2_EPTP_ROOT_MASK)
		return -EINVAL;
	*eptp = root | memtype | ((uint64_t)(levels - 1) << S2_EPTP_WALK_SHIFT) |
		(ad ? S2_EPTP_AD : 0);
	return 0;
}

int kvm_x86_ept_eptp(const struct kvm *kvm, uint64_t *eptp)
{
	const struct s2_fmt_cfg *c;

	if (!kvm || !eptp || kvm_fmt(kvm) != S2_FMT_X86_EPT)
		return -EINVAL;
	c = kvm_fmt_cfg(kvm);
	if (!c)
		return -EINVAL;
	return s2_ept_make_eptp(kvm_mmu_root_hpa(kvm), S2_EPTP_MT_WB, c->levels,
				c->flags & S2_FMTF_AD, eptp);
}

int kvm_x86_ept_eptp_vpid(const struct kvm *kvm, const struct s2_vmid *v, uint64_t *eptp,
			  uint16_t *vpid)
{
	uint64_t e;
	int r;

	if (!v || !v->alloc || !v->id || !vpid || v->alloc->bits > 16 || v->alloc->first < 1)
		return -EINVAL;
	r = kvm_x86_ept_eptp(kvm, &e);
	if (r)
		return r;
	*eptp = e;
	*vpid = (uint16_t)s2_vmid_id(v);
	return 0;
}

unsigned s2_ept_violation_access(uint64_t qual)
{
	const uint64_t user = S2_EPT_QUAL_GLA_VALID | S2_EPT_QUAL_GLA_XLATE | S2_EPT_QUAL_USER;
	unsigned acc = 0;

	if (qual & S2_EPT_QUAL_READ)
		acc |= S2_ACC_READ;
	if (qual & S2_EPT_QUAL_WRITE)
		acc |= S2_ACC_WRITE;
	if (qual & S2_EPT_QUAL_FETCH) {
		acc |= S2_ACC_EXEC;
		if ((qual & user) == user)
			acc |= S2_ACC_USER;
	}
	return acc;
}
