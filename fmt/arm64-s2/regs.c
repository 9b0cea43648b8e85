/* SPDX-License-Identifier: MIT */
/*
 * arm64 stage-2 register builders (include/s2mmu/arm64-s2.h).
 */
#include "s2mmu/arm64-s2.h"

#include "fmt/arm64-s2/fmt.h"
#include "s2mmu/errno.h"
#include "s2mmu/kvm.h"
#include "s2mmu/vmid.h"

static int a64_ps_code(unsigned pa_bits)
{
	switch (pa_bits) {
	case 32: return 0;
	case 36: return 1;
	case 40: return 2;
	case 42: return 3;
	case 44: return 4;
	case 48: return 5;
	case 52: return 6;
	default: return -1;
	}
}

/*
 * SL0 (and SL2) of hardware start level @hw on a 2^@ps granule, or -1 when
 * the granule has no such start level here: 4K level 3 needs FEAT_TTST,
 * 16K level 0 and 4K level -1 need DS (LPA2), 64K has neither 0 nor -1.
 */
static int a64_sl_code(unsigned ps, int hw, bool ds, uint64_t *sl)
{
	if (ps == 12) {
		switch (hw) {
		case -1:
			if (!ds)
				return -1;
			*sl = S2_VTCR_SL2;
			return 0;
		case 0: *sl = 2ull << S2_VTCR_SL0_SHIFT; return 0;
		case 1: *sl = 1ull << S2_VTCR_SL0_SHIFT; return 0;
		case 2: *sl = 0; return 0;
		default: return -1;
		}
	}
	if (hw < 0 || hw > 3 || (hw == 0 && (ps == 16 || !ds)))
		return -1;
	*sl = (uint64_t)(3 - hw) << S2_VTCR_SL0_SHIFT;
	return 0;
}

int s2_arm64_make_vtcr(unsigned granule, unsigned ipa_bits, unsigned levels, unsigned pa_bits,
		       unsigned flags, uint64_t *out)
{
	unsigned ps, stride, min_ia, max_ia;
	bool lpa = flags & S2_FMTF_LPA2;
	uint64_t v, sl, tg;
	int ps_code;

	if (!out)
		return -EINVAL;
	switch (granule) {
	case 0:
	case 4096:
		ps = 12;
		tg = S2_VTCR_TG0_4K;
		break;
	case 16384:
		ps = 14;
		tg = S2_VTCR_TG0_16K;
		break;
	case 65536:
		ps = 16;
		tg = S2_VTCR_TG0_64K;
		break;
	default: return -EINVAL;
	}
	if (flags & ~(unsigned)A64_FMTF_ALL)
		return -EINVAL;
	if ((flags & S2_FMTF_HD) && !(flags & S2_FMTF_AD))
		return -EINVAL;
	if (ipa_bits < 25 || ipa_bits > (lpa ? 52u : 48u))
		return -EINVAL;
	ps_code = a64_ps_code(pa_bits);
	if (ps_code < 0 || (pa_bits == 52 && !lpa))
		return -EINVAL;
	if (levels < 1 || levels > 5)
		return -EINVAL;
	if (a64_sl_code(ps, 4 - (int)levels, lpa, &sl))
		return -EINVAL;
	/* The start level resolves 1 .. stride + 4 bits (S2InconsistentSL). */
	stride = ps - 3;
	min_ia = (levels - 1) * stride + ps + 1;
	max_ia = min_ia + stride - 1 + 4;
	if (ipa_bits < min_ia || ipa_bits > max_ia)
		return -EINVAL;

	v = (uint64_t)(64 - ipa_bits) | sl | S2_VTCR_IRGN0_WBWA | S2_VTCR_ORGN0_WBWA |
	    S2_VTCR_SH0_INNER | tg | ((uint64_t)ps_code << S2_VTCR_PS_SHIFT) | S2_VTCR_RES1;
	if (flags & S2_FMTF_VMID16)
		v |= S2_VTCR_VS;
	if (flags & S2_FMTF_AD)
		v |= S2_VTCR_HA;
	if (flags & S2_FMTF_HD)
		v |= S2_VTCR_HD;
	if (lpa && ps != 16)
		v |= S2_VTCR_DS;
	*out = v;
	return 0;
}

int s2_arm64_make_vttbr(hpa_t root, uint32_t vmid, bool vmid16, uint64_t *out)
{
	if (!out)
		return -EINVAL;
	if ((root & 0x3f) || (root >> 52))
		return -EINVAL;
	if (vmid > (vmid16 ? 0xffffu : 0xffu))
		return -EINVAL;
	*out = a64_vttbr(root, vmid, vmid16);
	return 0;
}

int kvm_arm64_vtcr(const struct kvm *kvm, unsigned pa_bits, uint64_t *out)
{
	const struct s2_fmt_cfg *c;

	if (!kvm || !out || kvm_fmt(kvm) != S2_FMT_ARM64_S2)
		return -EINVAL;
	c = kvm_fmt_cfg(kvm);
	if (!c)
		return -EINVAL;
	return s2_arm64_make_vtcr(1u << c->page_shift, c->gpa_bits, c->levels, pa_bits, c->flags,
				  out);
}

int kvm_arm64_vttbr(const struct kvm *kvm, uint64_t *out)
{
	const struct s2_fmt_cfg *c;

	if (!kvm || !out || kvm_fmt(kvm) != S2_FMT_ARM64_S2)
		return -EINVAL;
	c = kvm_fmt_cfg(kvm);
	if (!c)
		return -EINVAL;
	return s2_arm64_make_vttbr(kvm_mmu_root_hpa(kvm), kvm_vmid(kvm), c->flags & S2_FMTF_VMID16,
				   out);
}

int kvm_arm64_vttbr_vmid(const struct kvm *kvm, const struct s2_vmid *v, uint64_t *out)
{
	const struct s2_fmt_cfg *c;
	bool vmid16;

	if (!kvm || !v || !v->alloc || !v->id || !out || kvm_fmt(kvm) != S2_FMT_ARM64_S2)
		return -EINVAL;
	c = kvm_fmt_cfg(kvm);
	if (!c)
		return -EINVAL;
	vmid16 = c->flags & S2_FMTF_VMID16;
	if (v->alloc->bits > (vmid16 ? 16u : 8u))
		return -EINVAL;
	return s2_arm64_make_vttbr(kvm_mmu_root_hpa(kvm), s2_vmid_id(v), vmid16, out);
}
