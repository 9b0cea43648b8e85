/* SPDX-License-Identifier: MIT */
/*
 * Reference arm64 stage-2 walker, written from the Arm ARM (VMSAv8-64 stage 2
 * translation: VTCR_EL2, VTTBR_EL2, the AArch64.S2Walk pseudocode and its
 * checks S2TxSZFaults / S2InvalidSL / S2InconsistentSL / BlockDescSupported,
 * the stage-2 block and page descriptor attributes, FEAT_S2FWB, FEAT_XNX,
 * FEAT_LPA/FEAT_LPA2, FEAT_HAFDBS) and sharing nothing with fmt/arm64-s2.
 * Table addresses are host pointers (pa == va).
 */
#ifndef S2MMU_TESTS_REF_ARM64_WALKER_H
#define S2MMU_TESTS_REF_ARM64_WALKER_H

#include <stdint.h>

#include "ref.h"

/* State outside VTCR_EL2/VTTBR_EL2 that changes how descriptors read. */
enum {
	REF_A64_FWB = 1u << 0, /* HCR_EL2.FWB = 1 (FEAT_S2FWB) */
	REF_A64_XNX = 1u << 1, /* FEAT_XNX: XN[0] splits EL1 / EL0 execute */
};

/*
 * Translate @ipa through the stage-2 tables described by @vtcr and @vttbr,
 * the way a CPU with PAMax = 52 (FEAT_LPA and FEAT_LPA2), without FEAT_TTST,
 * and with the state in @ctl (REF_A64_*) would. Granule, start level and the
 * concatenation of the root come from VTCR_EL2 alone.
 *
 * Faults (out->level is 0 for a configuration fault, otherwise the level of
 * the entry, our numbering: 1 = granule page):
 *  - REF_FAULT_MISCONFIG: reserved TG0 or PS, T0SZ out of range, an SL0/SL2
 *    that is invalid for the granule or inconsistent with T0SZ, VTTBR BADDR
 *    not aligned to the root, a reserved MemAttr or SH encoding in a leaf.
 *  - REF_FAULT_ADDR: @ipa above the 2^(64 - T0SZ) input range.
 *  - REF_FAULT_NOT_PRESENT: an invalid descriptor (bit 0 clear).
 *  - REF_FAULT_RESERVED: a block descriptor where the granule allows none,
 *    0b01 at hw level 3 (both translation faults on hardware, reported
 *    apart here), or a table/output address above the PS output size (an
 *    address size fault).
 * On success out->perm has S2_PROT_R (S2AP[0]), S2_PROT_W (S2AP[1], or DBM
 * when VTCR_EL2.HD is set: hardware would make the write succeed), S2_PROT_X
 * (EL1 execute) and S2_PROT_XU (EL0 execute) from XN; out->accessed is AF,
 * out->dirty is S2AP[1]. out->memtype: S2_MT_WB normal write-back (with FWB:
 * forced write-back), S2_MT_WC normal non-cacheable (either cacheability
 * non-cacheable without FWB), S2_MT_WT write-through (with FWB: "stage 1
 * decides", 0b0111), S2_MT_DEVICE Device-nGnRE/nGRE/GRE, S2_MT_UC
 * Device-nGnRnE. Returns out->fault.
 */
int ref_arm64_walk(uint64_t vtcr, uint64_t vttbr, unsigned ctl, uint64_t ipa,
		   struct ref_xlate *out);

#endif
