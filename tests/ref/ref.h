/* SPDX-License-Identifier: MIT */
/*
 * Common result type of the reference walkers in tests/ref/.
 *
 * A reference walker is written from the architecture manual alone: it shares
 * no code or header with fmt/ (only include/s2mmu/prot.h for the S2_PROT_* and
 * S2_MT_* constants and include/s2mmu/types.h). It takes the raw register
 * value(s) the hardware would use (EPTP; VTCR_EL2 + VTTBR_EL2; hgatp; nCR3 plus
 * the 5-level flag) and a gpa, and treats every table physical address as a
 * host pointer: hosted tests allocate tables with aligned_alloc, so pa == va.
 * Each entry is read once, atomically (relaxed), as a hardware walker reads
 * it: multithreaded tests walk tables other threads are changing, and a
 * plain load there is a data race (TSan reported one, rarely, in
 * dirty_sleep_mt's check of slot 0 against concurrent memslot updates).
 *
 * Tests compare what the library's tables say (through the format inlines or
 * kvm_mmu_lookup) against what the reference walker computes from the raw bits.
 */
#ifndef S2MMU_TESTS_REF_H
#define S2MMU_TESTS_REF_H

#include <stdbool.h>
#include <stdint.h>

#include "s2mmu/prot.h"
#include "s2mmu/types.h"

/* ref_xlate.fault: why a walk stopped (0 = translated). */
enum {
	REF_FAULT_NOT_PRESENT = 1, /* an entry on the walk is not present */
	REF_FAULT_MISCONFIG = 2,   /* an encoding the manual forbids (e.g. EPT
				      W without R, reserved memory type) */
	REF_FAULT_RESERVED = 3,	   /* a reserved bit is set */
	REF_FAULT_ADDR = 4,	   /* the gpa is beyond the configured width */
};

/* What a hardware walk of one gpa yields. */
struct ref_xlate {
	int fault;	  /* 0 or REF_FAULT_* */
	uint64_t hpa;	  /* translation of the gpa (offset within the leaf added) */
	int level;	  /* level of the leaf or of the faulting entry:
			     1 = smallest leaf (4 KiB on 4K granule), 2 = 2 MiB,
			     3 = 1 GiB, 4 = 512 GiB, ... */
	uint64_t size;	  /* bytes the leaf maps */
	unsigned perm;	  /* S2_PROT_R/W/X/XU the walk grants (the AND of every
			     level where the architecture restricts at tables) */
	unsigned memtype; /* S2_MT_*, with S2_MT_IGNORE_PAT where it applies */
	bool accessed;	  /* accessed flag of the leaf (where the format has it) */
	bool dirty;	  /* dirty flag of the leaf */
};

/* Short name of a fault code for failure messages. */
static inline const char *ref_fault_name(int fault)
{
	switch (fault) {
	case 0: return "ok";
	case REF_FAULT_NOT_PRESENT: return "not-present";
	case REF_FAULT_MISCONFIG: return "misconfig";
	case REF_FAULT_RESERVED: return "reserved";
	case REF_FAULT_ADDR: return "addr";
	default: return "?";
	}
}

#endif
