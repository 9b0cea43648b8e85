// SPDX-License-Identifier: MIT
/*
 * A64 load/store decoder for data aborts with ESR_EL2.ISV = 0
 * (include/s2mmu/decode.h), written from the Arm ARM's "Loads and Stores"
 * encoding index (C4.1.4). Accepted: the load/store register classes
 * (unsigned immediate, unscaled and unprivileged immediate, pre/post-index,
 * register offset), load/store pair (offset, pre/post-index, no-allocate) and
 * the exclusive and ordered class of Armv8.0. CONSTRAINED
 * UNPREDICTABLE encodings (writeback onto the transfer register, a load pair
 * into one register, a status register that overlaps, should-be-one fields
 * that are not) are refused.
 */
#include "common.h"

#define BITS(x, hi, lo) (((x) >> (lo)) & ((1u << ((hi) - (lo) + 1)) - 1))

/* Element size and register kind of a single-register form (size, V, opc). */
static int single_kind(unsigned size, unsigned v, unsigned opc, struct s2_insn *d)
{
	if (v) {
		if (opc >= 2) {
			if (size)
				return -ENOTSUP;
			d->size = 16; /* Q */
		} else {
			d->size = (uint8_t)(1u << size);
		}
		d->flags |= S2_INSN_FP;
		d->reg_size = d->size;
		d->dir = (opc & 1) ? S2_DIR_LOAD : S2_DIR_STORE;
		return 0;
	}
	d->size = (uint8_t)(1u << size);
	switch (opc) {
	case 0: /* STR, STRB, STRH */
	case 1: /* LDR, LDRB, LDRH: zero-extend */
		d->dir = opc ? S2_DIR_LOAD : S2_DIR_STORE;
		d->reg_size = size == 3 ? 8 : 4;
		return 0;
	case 2: /* LDRSB, LDRSH, LDRSW to X (size 3: PRFM) */
		if (size == 3)
			return -ENOTSUP;
		d->reg_size = 8;
		break;
	default: /* LDRSB, LDRSH to W */
		if (size >= 2)
			return -ENOTSUP;
		d->reg_size = 4;
		break;
	}
	d->dir = S2_DIR_LOAD;
	d->flags |= S2_INSN_SIGNED;
	return 0;
}

/* Writeback onto the transfer register is CONSTRAINED UNPREDICTABLE. */
static bool wb_overlaps(const struct s2_insn *d, unsigned rn)
{
	if (!(d->flags & S2_INSN_WRITEBACK) || (d->flags & S2_INSN_FP) || rn == 31)
		return false;
	return d->reg == rn || (d->count == 2 && d->reg2 == rn);
}

static int ldst_reg(uint32_t insn, struct s2_insn *d)
{
	unsigned size = BITS(insn, 31, 30), v = BITS(insn, 26, 26), opc = BITS(insn, 23, 22);
	unsigned rn = BITS(insn, 9, 5);
	int r;

	r = single_kind(size, v, opc, d);
	if (r)
		return r;
	d->reg = (uint8_t)BITS(insn, 4, 0);
	d->base = (uint8_t)rn;
	if (BITS(insn, 25, 24) == 1) { /* unsigned offset, scaled */
		d->disp = (int64_t)BITS(insn, 21, 10) * d->size;
	} else if (!BITS(insn, 21, 21)) { /* imm9 */
		int64_t imm = s2_dec_sext(BITS(insn, 20, 12), 9);

		switch (BITS(insn, 11, 10)) {
		case 0: d->disp = imm; break; /* LDUR, STUR */
		case 1:			      /* post-index */
			d->flags |= S2_INSN_WRITEBACK | S2_INSN_POST;
			d->wb_offset = imm;
			break;
		case 2: /* LDTR, STTR: no SIMD/FP form */
			if (v)
				return -ENOTSUP;
			d->flags |= S2_INSN_UNPRIV;
			d->disp = imm;
			break;
		default: /* pre-index */
			d->flags |= S2_INSN_WRITEBACK;
			d->disp = imm;
			d->wb_offset = imm;
			break;
		}
	} else if (BITS(insn, 11, 10) == 2) { /* register offset */
		static const uint8_t ext[8] = { 0, 0, S2_EXT_UXTW, S2_EXT_LSL,
						0, 0, S2_EXT_SXTW, S2_EXT_SXTX };
		unsigned option = BITS(insn, 15, 13);

		if (!ext[option])
			return -ENOTSUP;
		d->index = (uint8_t)BITS(insn, 20, 16);
		d->extend = ext[option];
		/* The shift is log2 of the element size (no __builtin_ctz: libgcc on riscv64). */
		d->scale = BITS(insn, 12, 12) ? (uint8_t)(size | (d->size == 16 ? 4 : 0)) : 0;
	} else {
		return -ENOTSUP; /* atomic memory operations, LDRAA/LDRAB */
	}
	return wb_overlaps(d, rn) ? -ENOTSUP : 0;
}

static int ldst_pair(uint32_t insn, struct s2_insn *d)
{
	unsigned opc = BITS(insn, 31, 30), v = BITS(insn, 26, 26), idx = BITS(insn, 24, 23);
	unsigned load = BITS(insn, 22, 22), rn = BITS(insn, 9, 5);
	int64_t off;

	if (opc == 3)
		return -ENOTSUP;
	if (v) {
		d->size = (uint8_t)(4u << opc);
		d->flags |= S2_INSN_FP;
	} else if (opc == 1) {
		if (!load || idx == 0)
			return -ENOTSUP; /* STGP (MTE); LDPSW has no no-allocate form */
		d->size = 4;
		d->flags |= S2_INSN_SIGNED;
	} else {
		d->size = opc ? 8 : 4;
	}
	d->reg_size = (d->flags & S2_INSN_SIGNED) ? 8 : d->size;
	d->dir = load ? S2_DIR_LOAD : S2_DIR_STORE;
	d->count = 2;
	d->reg = (uint8_t)BITS(insn, 4, 0);
	d->reg2 = (uint8_t)BITS(insn, 14, 10);
	d->base = (uint8_t)rn;
	off = s2_dec_sext(BITS(insn, 21, 15), 7) * d->size;
	switch (idx) {
	case 0:
		d->flags |= S2_INSN_NT;
		d->disp = off;
		break;
	case 1:
		d->flags |= S2_INSN_WRITEBACK | S2_INSN_POST;
		d->wb_offset = off;
		break;
	case 2: d->disp = off; break;
	default:
		d->flags |= S2_INSN_WRITEBACK;
		d->disp = off;
		d->wb_offset = off;
		break;
	}
	if (load && d->reg == d->reg2)
		return -ENOTSUP;
	return wb_overlaps(d, rn) ? -ENOTSUP : 0;
}

static int ldst_excl(uint32_t insn, struct s2_insn *d)
{
	unsigned size = BITS(insn, 31, 30), o2 = BITS(insn, 23, 23), load = BITS(insn, 22, 22);
	unsigned o1 = BITS(insn, 21, 21), rs = BITS(insn, 20, 16), o0 = BITS(insn, 15, 15);
	unsigned rt2 = BITS(insn, 14, 10), rn = BITS(insn, 9, 5), rt = BITS(insn, 4, 0);
	bool pair = !o2 && o1, store_excl = !o2 && !load;

	if (o2 && (o1 || !o0))
		return -ENOTSUP; /* CAS; LDLAR/STLLR (LORegions, Armv8.1) */
	if (pair && size < 2)
		return -ENOTSUP; /* CASP */
	/* Should-be-one fields: Rs except in a store exclusive, Rt2 except in a pair. */
	if ((!store_excl && rs != 31) || (!pair && rt2 != 31))
		return -ENOTSUP;
	d->size = (uint8_t)(pair ? 4u << (size & 1) : 1u << size);
	d->reg_size = (uint8_t)(size == 3 ? 8 : 4);
	d->dir = load ? S2_DIR_LOAD : S2_DIR_STORE;
	d->reg = (uint8_t)rt;
	d->base = (uint8_t)rn;
	if (pair) {
		d->count = 2;
		d->reg2 = (uint8_t)rt2;
	}
	if (!o2)
		d->flags |= S2_INSN_EXCL;
	if (o0) /* LDAR, STLR, LDAXR, STLXR */
		d->flags |= load ? S2_INSN_ACQUIRE : S2_INSN_RELEASE;
	if (store_excl) {
		d->status = (uint8_t)rs;
		if (rs == rt || (pair && rs == rt2) || (rs == rn && rn != 31))
			return -ENOTSUP;
	}
	if (pair && load && rt == rt2)
		return -ENOTSUP;
	return 0;
}

int s2_decode_arm64(uint32_t insn, uint64_t pc, struct s2_insn *out)
{
	struct s2_insn d;
	int r;

	if (!out)
		return -EINVAL;
	s2_dec_init(&d);
	if (BITS(insn, 29, 27) == 7 && !BITS(insn, 25, 25)) /* load/store register */
		r = ldst_reg(insn, &d);
	else if (BITS(insn, 29, 27) == 5 && !BITS(insn, 25, 25))
		r = ldst_pair(insn, &d);
	else if (BITS(insn, 29, 24) == 8)
		r = ldst_excl(insn, &d);
	else
		r = -ENOTSUP;
	if (r)
		return r;
	d.len = 4;
	d.next_pc = pc + 4;
	*out = d;
	return 0;
}

int s2_arm64_complete(const struct s2_insn *d, struct s2_arm64_regs *r, uint64_t val[4])
{
	unsigned regs[2];

	if (!d || !r || !val || d->len != 4 || !d->count || d->count > 2 || !d->size ||
	    d->size > 16 || (d->dir != S2_DIR_LOAD && d->dir != S2_DIR_STORE))
		return -EINVAL;
	regs[0] = d->reg;
	regs[1] = d->reg2;
	for (unsigned k = 0; k < d->count; k++) {
		unsigned reg = regs[k];

		if (reg > 31)
			return -EINVAL;
		if (d->flags & S2_INSN_FP) {
			uint64_t *v = r->v[reg];
			uint64_t *e = d->size == 16 ? &val[2 * k] : &val[k];

			if (d->dir == S2_DIR_LOAD) {
				v[0] = e[0] & s2_dec_mask(d->size);
				v[1] = d->size == 16 ? e[1] : 0;
			} else {
				e[0] = v[0] & s2_dec_mask(d->size);
				if (d->size == 16)
					e[1] = v[1];
			}
		} else if (d->dir == S2_DIR_LOAD) {
			uint64_t x = val[k] & s2_dec_mask(d->size);

			if (d->flags & S2_INSN_SIGNED)
				x = (uint64_t)s2_dec_sext(x, d->size * 8) &
				    s2_dec_mask(d->reg_size);
			if (reg != 31)
				r->x[reg] = x;
		} else {
			val[k] = reg == 31 ? 0 : r->x[reg] & s2_dec_mask(d->size);
		}
	}
	if (d->status != S2_REG_NONE && d->status < 31)
		r->x[d->status] = 0; /* the store exclusive succeeded */
	if (d->flags & S2_INSN_WRITEBACK) {
		if (d->base == 31)
			r->sp += (uint64_t)d->wb_offset;
		else if (d->base < 31)
			r->x[d->base] += (uint64_t)d->wb_offset;
	}
	r->pc = d->next_pc;
	return 0;
}
