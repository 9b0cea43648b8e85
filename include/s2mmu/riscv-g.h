/* SPDX-License-Identifier: MIT */
/*
 * RISC-V G-stage register values (privileged spec, hypervisor extension).
 *
 * hgatp (RV64) holds the G-stage walk mode in bits 63:60, the VMID in bits
 * 57:44 and the physical page number of the 16 KiB root in bits 43:0. A VM
 * created on S2_FMT_RISCV_G walks Sv39x4 (gpa_bits <= 41), Sv48x4 (<= 50) or
 * Sv57x4 (<= 59); docs/fmt-riscv-g.md has the entry layout.
 */
#ifndef S2MMU_RISCV_G_H
#define S2MMU_RISCV_G_H

#include "s2mmu/types.h"

struct kvm;

/* hgatp.MODE values (RV64). */
#define S2_HGATP_MODE_BARE 0ull
#define S2_HGATP_MODE_SV39X4 8ull
#define S2_HGATP_MODE_SV48X4 9ull
#define S2_HGATP_MODE_SV57X4 10ull
#define S2_HGATP_MODE_SHIFT 60
#define S2_HGATP_VMID_SHIFT 44
#define S2_HGATP_VMID_MAX 0x3fffu /* 14 bits; a hart may implement fewer */
#define S2_HGATP_PPN_MASK ((1ull << 44) - 1)

/*
 * Build hgatp for a G-stage walk of @mode_levels levels (3 Sv39x4, 4 Sv48x4,
 * 5 Sv57x4) from the root at @root (16 KiB aligned, below 2^56) with @vmid
 * (at most S2_HGATP_VMID_MAX; the hart keeps only its VMIDLEN low bits).
 * Returns 0 and the value in *@out, or -EINVAL (bad levels, misaligned or
 * too wide root, VMID too wide, NULL @out); *@out is untouched on error.
 */
int s2_riscv_make_hgatp(hpa_t root, unsigned mode_levels, uint32_t vmid, uint64_t *out);

/*
 * hgatp of @kvm (its root, walk length and the VMID it was created with).
 * Returns 0, or -EINVAL when @kvm or @out is NULL or @kvm is not a RISC-V
 * G-stage VM.
 */
int kvm_riscv_hgatp(const struct kvm *kvm, uint64_t *out);

struct s2_vmid;
/*
 * hgatp of @kvm with the VMID the allocator last gave @v
 * (include/s2mmu/vmid.h; call s2_vmid_update() first, on the hart about to
 * enter; size the allocator to the VMIDLEN the embedder probed). Returns 0
 * and *@out, or -EINVAL (NULL arguments, not a RISC-V VM, @v never updated,
 * an allocator wider than 14 bits).
 */
int kvm_riscv_hgatp_vmid(const struct kvm *kvm, const struct s2_vmid *v, uint64_t *out);

#endif
