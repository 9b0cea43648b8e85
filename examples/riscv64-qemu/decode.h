/* SPDX-License-Identifier: MIT */
/*
 * The few RISC-V load/store forms the example's guest uses for MMIO, decoded
 * from the instruction bits: QEMU 7.2 leaves htinst at 0 on guest-page
 * faults, so the hypervisor reads the faulting instruction from guest memory
 * and decodes it itself.
 */
#ifndef RV_EXAMPLE_DECODE_H
#define RV_EXAMPLE_DECODE_H

#include <stdbool.h>
#include <stdint.h>

struct rv_mmio_insn {
	unsigned len; /* 2 (compressed) or 4 bytes */
	bool store;
	unsigned width; /* access size in bytes: 1, 2, 4 or 8 */
	bool sign;	/* load: sign-extend to 64 bits */
	unsigned reg;	/* load: rd; store: rs2 */
};

/*
 * Decode @insn (the low 16 bits alone when compressed) as a load or store:
 * LB LH LW LD LBU LHU LWU SB SH SW SD, C.LW C.LD C.SW C.SD. Returns 0 and
 * fills *@out, or -1 for anything else.
 */
int rv_decode_mmio(uint32_t insn, struct rv_mmio_insn *out);

/*
 * Decode a nonzero htinst: the trapping load/store transformed by the hart
 * (bit 0 set; bit 1 clear when the original was compressed). Returns 0 and
 * fills *@out, or -1 when htinst holds nothing usable.
 */
int rv_decode_htinst(uint64_t htinst, struct rv_mmio_insn *out);

#endif
