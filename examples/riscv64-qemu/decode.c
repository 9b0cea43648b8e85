// SPDX-License-Identifier: MIT
/*
 * Loads and stores from the unprivileged spec: opcode LOAD (0x03) and STORE
 * (0x23) with funct3 giving width and signedness; compressed quadrant 0
 * (C.LW/C.LD funct3 2/3, C.SW/C.SD funct3 6/7) with 3-bit register fields
 * naming x8..x15.
 */
#include "decode.h"

static int rv_decode32(uint32_t insn, struct rv_mmio_insn *out)
{
	unsigned funct3 = (insn >> 12) & 7;

	switch (insn & 0x7f) {
	case 0x03: /* LOAD: 0 LB 1 LH 2 LW 3 LD 4 LBU 5 LHU 6 LWU */
		if (funct3 == 7)
			return -1;
		out->store = false;
		out->width = 1u << (funct3 & 3);
		out->sign = funct3 < 4 && funct3 != 3;
		out->reg = (insn >> 7) & 31;
		break;
	case 0x23: /* STORE: 0 SB 1 SH 2 SW 3 SD */
		if (funct3 > 3)
			return -1;
		out->store = true;
		out->width = 1u << funct3;
		out->sign = false;
		out->reg = (insn >> 20) & 31;
		break;
	default: return -1;
	}
	out->len = 4;
	return 0;
}

static int rv_decode16(uint16_t insn, struct rv_mmio_insn *out)
{
	unsigned funct3 = (insn >> 13) & 7;
	unsigned reg = 8 + ((insn >> 2) & 7); /* rd' or rs2' */

	if ((insn & 3) != 0)
		return -1;
	switch (funct3) {
	case 2: /* C.LW */
	case 3: /* C.LD (RV64) */
		out->store = false;
		out->sign = funct3 == 2;
		break;
	case 6: /* C.SW */
	case 7: /* C.SD (RV64) */
		out->store = true;
		out->sign = false;
		break;
	default: return -1;
	}
	out->width = (funct3 & 1) ? 8 : 4;
	out->reg = reg;
	out->len = 2;
	return 0;
}

int rv_decode_mmio(uint32_t insn, struct rv_mmio_insn *out)
{
	if ((insn & 3) == 3)
		return rv_decode32(insn, out);
	return rv_decode16((uint16_t)insn, out);
}

int rv_decode_htinst(uint64_t htinst, struct rv_mmio_insn *out)
{
	/* Bit 0 set: a transformed standard instruction; bit 1 says whether the
	 * original was 32-bit. rs1 holds an address offset, which we ignore. */
	if (!(htinst & 1))
		return -1;
	if (rv_decode32((uint32_t)htinst | 2, out))
		return -1;
	out->len = (htinst & 2) ? 4 : 2;
	return 0;
}
