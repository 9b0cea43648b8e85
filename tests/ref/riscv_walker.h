/* SPDX-License-Identifier: MIT */
/*
 * Reference RISC-V G-stage walker, written from the privileged spec
 * ("Two-Stage Address Translation", "Guest Physical Address Translation",
 * "Virtual Address Translation Process", Svpbmt) and sharing nothing with
 * fmt/riscv-g. Table addresses are host pointers (pa == va).
 */
#ifndef S2MMU_TESTS_REF_RISCV_WALKER_H
#define S2MMU_TESTS_REF_RISCV_WALKER_H

#include <stdint.h>

#include "ref.h"

/* Extensions of the hart being modelled. */
enum {
	REF_RISCV_SVPBMT = 1u << 0, /* bits 62:61 are PBMT, not reserved */
};

/*
 * Translate @gpa through the G-stage tables @hgatp (RV64) points at, the way
 * a hart with the extensions in @ext (REF_RISCV_*) would. Svnapot is taken
 * as absent (N is reserved) and hgatp as holding the full 14-bit VMID.
 * Beyond what the hardware checks, the walk also fails where the library
 * must never write something: a non-leaf with U, A, D, G or PBMT set, a leaf
 * with G set or U clear (U=0 faults every G-stage access), hgatp.PPN not
 * 16 KiB aligned (hardware would silently clear the low bits).
 * Fills *@out; a bad hgatp (mode not Sv39x4/Sv48x4/Sv57x4) is
 * REF_FAULT_MISCONFIG at level 0. Returns out->fault.
 */
int ref_riscv_walk(uint64_t hgatp, unsigned ext, uint64_t gpa, struct ref_xlate *out);

#endif
