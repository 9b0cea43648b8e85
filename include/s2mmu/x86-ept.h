/* SPDX-License-Identifier: MIT */
/*
 * x86 EPT register values: the EPTP the embedder writes to the VMCS, and the
 * decoding of an EPT-violation exit qualification into S2_ACC_* for
 * kvm_tdp_page_fault(). Field positions follow the Intel SDM vol. 3C
 * ("Extended-Page-Table Pointer", "Exit Qualification for EPT Violations").
 */
#ifndef S2MMU_X86_EPT_H
#define S2MMU_X86_EPT_H

#include "s2mmu/types.h"

struct kvm;

/* EPTP fields. */
#define S2_EPTP_MT_UC 0u /* bits 2:0: paging-structure memory type */
#define S2_EPTP_MT_WB 6u
#define S2_EPTP_MT_MASK 0x7ull
#define S2_EPTP_WALK_SHIFT 3 /* bits 5:3: walk length minus 1 */
#define S2_EPTP_WALK_MASK (0x7ull << 3)
#define S2_EPTP_AD (1ull << 6)			/* accessed/dirty flags enabled */
#define S2_EPTP_SSS (1ull << 7)			/* supervisor shadow-stack control */
#define S2_EPTP_ROOT_MASK 0x000ffffffffff000ull /* bits 51:12 */

/*
 * Build an EPTP for the root table at @root: paging-structure memory type
 * @memtype (S2_EPTP_MT_UC or S2_EPTP_MT_WB, the only types the SDM allows),
 * walk length @levels (4 or 5), A/D flags enabled when @ad. The supervisor
 * shadow-stack bit is left 0. Returns 0 and *@eptp, or -EINVAL (NULL @eptp,
 * other memory type or level count, @root not 4 KiB aligned or above bit 51)
 * with *@eptp untouched.
 */
int s2_ept_make_eptp(hpa_t root, unsigned memtype, unsigned levels, bool ad, uint64_t *eptp);

/*
 * The EPTP of @kvm's root: write-back paging structures, the VM's walk
 * length, A/D enabled when the VM was created with S2_FMTF_AD. Returns 0 and
 * *@eptp, or -EINVAL (NULL arguments, a VM of another format).
 */
int kvm_x86_ept_eptp(const struct kvm *kvm, uint64_t *eptp);

struct s2_vmid;
/*
 * The EPTP of @kvm as kvm_x86_ept_eptp() builds it and, in *@vpid, the VPID
 * the allocator last gave @v (include/s2mmu/vmid.h, 16 bits, created with
 * first >= 1 so that VPID 0, the host's, is never handed out) for the VMCS
 * VPID field. Call s2_vmid_update() first, on the CPU about to enter.
 * Returns 0, or -EINVAL (NULL arguments, not an EPT VM, @v never updated,
 * an allocator wider than 16 bits or one that hands out 0); nothing is
 * written on error.
 */
int kvm_x86_ept_eptp_vpid(const struct kvm *kvm, const struct s2_vmid *v, uint64_t *eptp,
			  uint16_t *vpid);

/* EPT-violation exit qualification bits this library reads. */
#define S2_EPT_QUAL_READ (1ull << 0)	  /* the access was a data read */
#define S2_EPT_QUAL_WRITE (1ull << 1)	  /* a data write */
#define S2_EPT_QUAL_FETCH (1ull << 2)	  /* an instruction fetch */
#define S2_EPT_QUAL_GLA_VALID (1ull << 7) /* guest linear address valid */
#define S2_EPT_QUAL_GLA_XLATE \
	(1ull << 8) /* access to the translated page
					     (not to a guest paging entry) */
#define S2_EPT_QUAL_USER \
	(1ull << 9) /* advanced information: the linear
					  address is user-mode (guest U/S) */

/*
 * The access an EPT violation asks for, as S2_ACC_* (include/s2mmu/mmu.h):
 * READ, WRITE and EXEC from qualification bits 0..2. EXEC also gets USER when
 * the fetch was from a user-mode linear address (bits 7, 8 and 9 all set;
 * bit 9 is the "advanced VM-exit information" the CPU reports when it
 * supports it), which is what mode-based execute control checks against the
 * user-execute bit. Other bits are ignored.
 */
unsigned s2_ept_violation_access(uint64_t qual);

#endif
