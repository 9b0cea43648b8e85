/* SPDX-License-Identifier: MIT */
/*
 * Reference AMD nested-paging walker, written from the AMD64 APM vol. 2
 * ("Long-Mode Page Translation", "Page-Translation-Table Entry Fields",
 * "Page-Attribute Table Mechanism", "Nested Paging") and sharing nothing with
 * fmt/x86-npt. Table addresses are host pointers (pa == va).
 */
#ifndef S2MMU_TESTS_REF_NPT_WALKER_H
#define S2MMU_TESTS_REF_NPT_WALKER_H

#include <stdbool.h>
#include <stdint.h>

#include "ref.h"

/*
 * Translate @gpa through the nested tables @ncr3 points at, the way the CPU
 * does a nested walk: 5 levels from a PML5 when @five_level (host
 * CR4.LA57), else 4 from a PML4; every access a user access; EFER.NXE on;
 * 1 GiB pages supported; the host PAT MSR at its power-on value; physical
 * addresses of 52 bits (MAXPHYADDR). A gpa wider than the walk (48 or 57 bits) is
 * REF_FAULT_ADDR. Reserved bits (bits 63:52 of nCR3, PS or bit 8 at levels
 * 4/5, the bits between PAT and the address of a large page) are
 * REF_FAULT_RESERVED; U/S clear on any entry (a user access faults) is
 * REF_FAULT_MISCONFIG. perm: R, W when every level has R/W, X when no level
 * has NX. memtype: the leaf's PAT index under the power-on PAT (UC- is
 * S2_MT_UC). Fills *@out; returns out->fault.
 */
int ref_npt_walk(uint64_t ncr3, bool five_level, uint64_t gpa, struct ref_xlate *out);

/*
 * The same walk on a CPU whose MAXPHYADDR is @maxphyaddr (32..52): address
 * bits 51:maxphyaddr of nCR3 and of every entry are then reserved.
 */
int ref_npt_walk_maxphy(uint64_t ncr3, bool five_level, unsigned maxphyaddr, uint64_t gpa,
			struct ref_xlate *out);

#endif
