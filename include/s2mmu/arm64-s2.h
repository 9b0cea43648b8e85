/* SPDX-License-Identifier: MIT */
/*
 * arm64 stage-2 register values (Arm ARM, VTCR_EL2 and VTTBR_EL2).
 *
 * A VM created on S2_FMT_ARM64_S2 walks the number of levels
 * kvm_mmu_levels() reports, from a root of up to 16 concatenated tables;
 * docs/fmt-arm64-s2.md has the descriptor layout and the start-level rule.
 * The embedder writes these values before entering the guest (and sets
 * HCR_EL2.FWB itself when the VM was created with S2_FMTF_FWB).
 */
#ifndef S2MMU_ARM64_S2_H
#define S2MMU_ARM64_S2_H

#include "s2mmu/types.h"

struct kvm;

/* VTCR_EL2 fields. */
#define S2_VTCR_T0SZ_MASK 0x3full /* 64 - IPA bits */
#define S2_VTCR_SL0_SHIFT 6	  /* start level, per granule */
#define S2_VTCR_SL0_MASK (0x3ull << 6)
#define S2_VTCR_IRGN0_WBWA (1ull << 8)	/* walks: inner write-back */
#define S2_VTCR_ORGN0_WBWA (1ull << 10) /* walks: outer write-back */
#define S2_VTCR_SH0_INNER (3ull << 12)	/* walks: inner shareable */
#define S2_VTCR_TG0_SHIFT 14
#define S2_VTCR_TG0_MASK (0x3ull << 14)
#define S2_VTCR_TG0_4K (0ull << 14)
#define S2_VTCR_TG0_64K (1ull << 14)
#define S2_VTCR_TG0_16K (2ull << 14)
#define S2_VTCR_PS_SHIFT 16 /* physical address size */
#define S2_VTCR_PS_MASK (0x7ull << 16)
#define S2_VTCR_VS (1ull << 19) /* 16-bit VMID */
#define S2_VTCR_HA (1ull << 21) /* hardware access flag */
#define S2_VTCR_HD (1ull << 22) /* hardware dirty state (DBM) */
#define S2_VTCR_RES1 (1ull << 31)
#define S2_VTCR_DS (1ull << 32)	 /* FEAT_LPA2 52-bit, 4K/16K */
#define S2_VTCR_SL2 (1ull << 33) /* with SL0 = 0: start at -1 */

/* VTTBR_EL2 fields. */
#define S2_VTTBR_CNP (1ull << 0)
#define S2_VTTBR_BADDR_MASK 0x0000fffffffffffeull /* BADDR[47:1] */
#define S2_VTTBR_BADDR_HI_SHIFT 2		  /* BADDR[51:48] in bits 5:2 */
#define S2_VTTBR_VMID_SHIFT 48

/*
 * Build VTCR_EL2 for a stage-2 walk of @levels levels (our numbering: the
 * root is level @levels, so the hardware start level is 4 - @levels; 5
 * means hw level -1 and sets SL2) over an @ipa_bits IPA with a @granule
 * (4096, 16384 or 65536; 0 = 4096) granule, and PS for an @pa_bits output
 * size (32, 36, 40, 42, 44, 48 or 52). @flags are the VM's S2_FMTF_*:
 * S2_FMTF_AD sets HA, S2_FMTF_HD sets HD (needs AD), S2_FMTF_VMID16 sets
 * VS, S2_FMTF_LPA2 allows 52-bit sizes and on 4K/16K sets DS;
 * S2_FMTF_FWB and S2_FMTF_XNX are accepted and change nothing here.
 * Table walks are inner/outer write-back, inner shareable. The start level
 * must be one the architecture accepts for @ipa_bits (resolving 1 to
 * stride + 4 bits at the start level: at most 16 concatenated tables).
 * Returns 0 and *@out, or -EINVAL (NULL @out, unknown granule or flag, HD
 * without AD, IPA outside 25..48 (52 with LPA2), PA size not in the list or
 * 52 without LPA2, a start level the granule lacks or that does not fit
 * @ipa_bits); *@out is untouched on error.
 */
int s2_arm64_make_vtcr(unsigned granule, unsigned ipa_bits, unsigned levels, unsigned pa_bits,
		       unsigned flags, uint64_t *out);

/*
 * Build VTTBR_EL2 for the root table at @root (64-byte aligned, below 2^52;
 * BADDR[51:48] goes to bits 5:2 when @root is above 2^48, which the CPU
 * reads so only with 52-bit PS) and @vmid (8 bits, or 16 with @vmid16).
 * CnP is 0. Returns 0 and *@out, or -EINVAL (NULL @out, misaligned or too
 * wide root, VMID too wide); *@out is untouched on error.
 */
int s2_arm64_make_vttbr(hpa_t root, uint32_t vmid, bool vmid16, uint64_t *out);

/*
 * VTCR_EL2 of @kvm (its granule, IPA size, walk length and flags) for an
 * output size of @pa_bits (the CPU's ID_AA64MMFR0_EL1.PARange in bits).
 * Returns 0 and *@out, or -EINVAL (NULL arguments, not an arm64 VM, bad
 * @pa_bits).
 */
int kvm_arm64_vtcr(const struct kvm *kvm, unsigned pa_bits, uint64_t *out);

/*
 * VTTBR_EL2 of @kvm: its root and the VMID it was created with (16-bit
 * when created with S2_FMTF_VMID16). Returns 0 and *@out, or -EINVAL (NULL
 * arguments, not an arm64 VM).
 */
int kvm_arm64_vttbr(const struct kvm *kvm, uint64_t *out);

struct s2_vmid;
/*
 * VTTBR_EL2 of @kvm with the VMID the allocator last gave @v
 * (include/s2mmu/vmid.h; call s2_vmid_update() first, on the CPU about to
 * enter) instead of kvm_vm_params.vmid. Returns 0 and *@out, or -EINVAL
 * (NULL arguments, not an arm64 VM, @v never updated, an allocator wider
 * than the VM's VMID: 8 bits, 16 with S2_FMTF_VMID16).
 */
int kvm_arm64_vttbr_vmid(const struct kvm *kvm, const struct s2_vmid *v, uint64_t *out);

#endif
