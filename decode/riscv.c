// SPDX-License-Identifier: MIT
/*
 * RV64 load/store decoder for guest-page faults with htinst = 0
 * (include/s2mmu/decode.h), written from the unprivileged spec's opcode map
 * (LOAD 0x03, STORE 0x23, LOAD-FP 0x07, STORE-FP 0x27; funct3 is width and
 * signedness) and the RVC quadrants 0 and 2. FLQ/FSQ are refused: the
 * register file the complete helper updates holds 64-bit f registers.
 * LOAD-FP/STORE-FP widths 0, 5, 6, 7 are vector accesses and refused too.
 */
#include "common.h"

#define BITS(x, hi, lo) (((x) >> (lo)) & ((1u << ((hi) - (lo) + 1)) - 1))

/* funct3 of LOAD: 0 LB 1 LH 2 LW 3 LD 4 LBU 5 LHU 6 LWU. */
static int load_width(unsigned funct3, bool fp, struct s2_insn *d)
{
	if (fp) {
		if (funct3 < 1 || funct3 > 3)
			return -ENOTSUP;
		d->size = (uint8_t)(1u << funct3);
		d->flags |= S2_INSN_FP;
	} else {
		if (funct3 == 7)
			return -ENOTSUP;
		d->size = (uint8_t)(1u << (funct3 & 3));
		if (funct3 < 3)
			d->flags |= S2_INSN_SIGNED;
	}
	d->reg_size = 8;
	return 0;
}

static int decode32(uint32_t insn, struct s2_insn *d)
{
	unsigned opcode = insn & 0x7f, funct3 = BITS(insn, 14, 12);
	bool fp = opcode == 0x07 || opcode == 0x27;
	int r;

	switch (opcode) {
	case 0x03:
	case 0x07:
		r = load_width(funct3, fp, d);
		if (r)
			return r;
		d->dir = S2_DIR_LOAD;
		d->reg = (uint8_t)BITS(insn, 11, 7);
		d->disp = s2_dec_sext(insn >> 20, 12);
		break;
	case 0x23:
	case 0x27:
		if (fp ? funct3 < 1 || funct3 > 3 : funct3 > 3)
			return -ENOTSUP;
		d->size = (uint8_t)(1u << funct3);
		d->reg_size = 8;
		if (fp)
			d->flags |= S2_INSN_FP;
		d->dir = S2_DIR_STORE;
		d->reg = (uint8_t)BITS(insn, 24, 20);
		d->disp = s2_dec_sext((BITS(insn, 31, 25) << 5) | BITS(insn, 11, 7), 12);
		break;
	default: return -ENOTSUP;
	}
	d->base = (uint8_t)BITS(insn, 19, 15);
	d->len = 4;
	return 0;
}

/* Quadrant 0: 3-bit register fields naming x8..x15 / f8..f15. */
static int decode_q0(unsigned insn, struct s2_insn *d)
{
	unsigned funct3 = BITS(insn, 15, 13);
	unsigned off_d = (BITS(insn, 12, 10) << 3) | (BITS(insn, 6, 5) << 6);
	unsigned off_w =
		(BITS(insn, 12, 10) << 3) | (BITS(insn, 6, 6) << 2) | (BITS(insn, 5, 5) << 6);

	switch (funct3) {
	case 1: /* C.FLD */
	case 5: /* C.FSD */
		d->flags |= S2_INSN_FP;
		d->size = 8;
		d->disp = off_d;
		break;
	case 2: /* C.LW */
	case 6: /* C.SW */
		d->flags |= funct3 == 2 ? S2_INSN_SIGNED : 0;
		d->size = 4;
		d->disp = off_w;
		break;
	case 3: /* C.LD */
	case 7: /* C.SD */
		d->size = 8;
		d->disp = off_d;
		break;
	default: return -ENOTSUP; /* C.ADDI4SPN, reserved */
	}
	d->dir = funct3 < 4 ? S2_DIR_LOAD : S2_DIR_STORE;
	d->reg = (uint8_t)(8 + BITS(insn, 4, 2));
	d->base = (uint8_t)(8 + BITS(insn, 9, 7));
	return 0;
}

/* Quadrant 2: the SP-relative forms. */
static int decode_q2(unsigned insn, struct s2_insn *d)
{
	unsigned funct3 = BITS(insn, 15, 13), rd = BITS(insn, 11, 7);

	switch (funct3) {
	case 1: /* C.FLDSP */
	case 3: /* C.LDSP */
		if (funct3 == 3 && !rd)
			return -ENOTSUP;
		d->size = 8;
		d->disp = (BITS(insn, 12, 12) << 5) | (BITS(insn, 6, 5) << 3) |
			  (BITS(insn, 4, 2) << 6);
		break;
	case 2: /* C.LWSP */
		if (!rd)
			return -ENOTSUP;
		d->size = 4;
		d->flags |= S2_INSN_SIGNED;
		d->disp = (BITS(insn, 12, 12) << 5) | (BITS(insn, 6, 4) << 2) |
			  (BITS(insn, 3, 2) << 6);
		break;
	case 5: /* C.FSDSP */
	case 7: /* C.SDSP */
		d->size = 8;
		d->disp = (BITS(insn, 12, 10) << 3) | (BITS(insn, 9, 7) << 6);
		break;
	case 6: /* C.SWSP */
		d->size = 4;
		d->disp = (BITS(insn, 12, 9) << 2) | (BITS(insn, 8, 7) << 6);
		break;
	default: return -ENOTSUP;
	}
	if (funct3 == 1 || funct3 == 5)
		d->flags |= S2_INSN_FP;
	d->dir = funct3 < 4 ? S2_DIR_LOAD : S2_DIR_STORE;
	d->reg = (uint8_t)(funct3 < 4 ? rd : BITS(insn, 6, 2));
	d->base = 2; /* sp */
	return 0;
}

int s2_decode_riscv(uint32_t insn, uint64_t pc, struct s2_insn *out)
{
	struct s2_insn d;
	int r;

	if (!out)
		return -EINVAL;
	s2_dec_init(&d);
	switch (insn & 3) {
	case 0: r = decode_q0(insn & 0xffff, &d); break;
	case 2: r = decode_q2(insn & 0xffff, &d); break;
	case 3: r = decode32(insn, &d); break;
	default: r = -ENOTSUP; /* quadrant 1 has no loads or stores */
	}
	if (r)
		return r;
	if (!d.len) {
		d.len = 2;
		d.reg_size = 8;
	}
	d.next_pc = pc + d.len;
	*out = d;
	return 0;
}

int s2_decode_riscv_htinst(uint64_t htinst, uint64_t pc, struct s2_insn *out)
{
	struct s2_insn d;
	int r;

	if (!out)
		return -EINVAL;
	/* Bit 0 set: a transformed standard instruction (0 and the
	 * pseudoinstructions have it clear); bit 1 clear: it was compressed. */
	if (!(htinst & 1) || htinst >> 32)
		return -ENOTSUP;
	s2_dec_init(&d);
	r = decode32((uint32_t)htinst | 2, &d);
	if (r)
		return r;
	/* rs1 holds the faulting address's offset, the immediate is 0. */
	d.base = S2_REG_NONE;
	d.disp = 0;
	d.flags |= S2_INSN_HTINST;
	d.len = (htinst & 2) ? 4 : 2;
	d.next_pc = pc + d.len;
	*out = d;
	return 0;
}

int s2_riscv_complete(const struct s2_insn *d, struct s2_riscv_regs *r, uint64_t *val)
{
	uint64_t m;

	if (!d || !r || !val || (d->len != 2 && d->len != 4) || d->reg > 31 || !d->size ||
	    d->size > 8 || d->count != 1 || (d->dir != S2_DIR_LOAD && d->dir != S2_DIR_STORE))
		return -EINVAL;
	m = s2_dec_mask(d->size);
	if (d->dir == S2_DIR_STORE) {
		*val = ((d->flags & S2_INSN_FP) ? r->f[d->reg] : r->x[d->reg]) & m;
	} else if (d->flags & S2_INSN_FP) {
		r->f[d->reg] = (*val & m) | ~m; /* NaN-boxed */
	} else if (d->reg) {
		r->x[d->reg] = (d->flags & S2_INSN_SIGNED) ?
				       (uint64_t)s2_dec_sext(*val, d->size * 8) :
				       *val & m;
	}
	r->pc = d->next_pc;
	return 0;
}
