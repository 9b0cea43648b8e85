/* SPDX-License-Identifier: MIT */
/*
 * Reference EPT walker, written from the Intel SDM vol. 3C ("EPT Translation
 * Mechanism", "EPT Misconfigurations", "EPT and Memory Typing") and sharing
 * nothing with fmt/x86-ept. Table addresses are host pointers (pa == va).
 */
#ifndef S2MMU_TESTS_REF_EPT_WALKER_H
#define S2MMU_TESTS_REF_EPT_WALKER_H

#include <stdint.h>

#include "ref.h"

/* VM-execution controls that change how entries read (not in the EPTP). */
enum {
	REF_EPT_MBEC = 1u << 0, /* mode-based execute control for EPT */
};

/*
 * Translate @gpa through the EPT hierarchy @eptp points at, the way the CPU
 * would with the controls in @ctl (REF_EPT_*). Execute-only entries, 1 GiB
 * pages and 5-level walks are taken as supported and MAXPHYADDR as 52. Fills
 * *@out (out->fault says whether and why the walk stopped: an invalid EPTP is
 * REF_FAULT_MISCONFIG or REF_FAULT_RESERVED with level 0). Returns out->fault.
 */
int ref_ept_walk(uint64_t eptp, unsigned ctl, uint64_t gpa, struct ref_xlate *out);

#endif
