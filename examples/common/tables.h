/* SPDX-License-Identifier: MIT */
/*
 * Where a failed run's stage-2 tables are, in the line the example
 * hypervisors print after their FAIL verdict (then they wait a few seconds):
 *
 *   WHO: tables: fmt F gpa_bits N[ granule G][ flags L], pool P size S, root R
 *
 * [P, P + S) is the host-physical range that holds every table page (the
 * table pool, not guest RAM), R the VM's current root; L the VM's format
 * flags by s2mmu's --flags names. The run scripts watch for it
 * (../common/keep-tables.sh): they save [P, P + S) with QEMU's pmemsave and
 * print the s2mmu dump command for it (docs/examples.md).
 */
#ifndef S2_EXAMPLES_TABLES_H
#define S2_EXAMPLES_TABLES_H

#include <stddef.h>
#include <stdint.h>

#include "klib.h"
#include "s2mmu/s2mmu.h"

/* Writes the line (with its newline) into @buf; returns @buf. */
static inline const char *tables_line(char *buf, size_t len, const char *who, const struct kvm *kvm,
				      unsigned fmt_flags, unsigned granule, uint64_t pool,
				      uint64_t size)
{
	/* s2mmu's --flags names (docs/tools.md): bit i is 1 << i of S2_FMTF_*. */
	static const char *const names[] = {
		"ad", "mbec", "sve", "fwb", "hd", "xnx", "lpa2", "pbmt"
	};
	char fl[64], gr[24] = "";
	size_t n = 0;

	fl[0] = 0;
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (fmt_flags & (1u << i))
			n += (size_t)ksnprintf(fl + n, sizeof(fl) - n, "%s%s", n ? "," : "",
					       names[i]);
	if (granule && granule != 4096)
		ksnprintf(gr, sizeof(gr), " granule %u", granule);
	ksnprintf(buf, len,
		  "%s: tables: fmt %s gpa_bits %u%s%s%s, pool 0x%llx size 0x%llx, root 0x%llx\n",
		  who, s2_fmt_name(kvm_fmt(kvm)), kvm_gpa_bits(kvm), gr, n ? " flags " : "", fl,
		  (unsigned long long)pool, (unsigned long long)size,
		  (unsigned long long)kvm_mmu_root_hpa(kvm));
	return buf;
}

#endif
