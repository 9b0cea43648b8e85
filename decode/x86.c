// SPDX-License-Identifier: MIT
/*
 * x86 decoder for MMIO emulation (include/s2mmu/decode.h), written from the
 * Intel SDM vol. 2 (chapter 2's prefix, REX and ModR/M/SIB rules and the
 * one-byte opcode map). Only memory forms are accepted: a ModR/M with mod = 3
 * names a register and is refused, as is every opcode outside the list.
 */
#include "common.h"

/* What the prefix bytes said. */
struct x86_prefixes {
	unsigned rex; /* 0x40..0x4f, or 0 */
	int seg;      /* enum s2_x86_seg, or -1 */
	bool opsize, adsize, lock, rep, repne;
};

/* Decoding state: the bytes, the position, the mode's sizes. */
struct x86_ctx {
	const uint8_t *p;
	unsigned avail, i;
	bool long_mode;
	unsigned opsize;    /* operand size in bytes: 2, 4 or 8 */
	unsigned addr_size; /* 2, 4 or 8 */
	struct x86_prefixes px;
};

/* Reads @n little-endian bytes; false when they run past @avail or 15. */
static bool take(struct x86_ctx *c, unsigned n, uint64_t *v)
{
	uint64_t x = 0;

	if (c->i + n > c->avail || c->i + n > 15)
		return false;
	for (unsigned k = 0; k < n; k++)
		x |= (uint64_t)c->p[c->i + k] << (8 * k);
	c->i += n;
	*v = x;
	return true;
}

/* -EAGAIN when the bytes given ran out, -ENOTSUP past 15 bytes. */
static int short_insn(const struct x86_ctx *c, unsigned n)
{
	return c->i + n > 15 ? -ENOTSUP : -EAGAIN;
}

/* The SS default applies to rSP and rBP bases only (not r12, r13). */
static void default_seg(struct s2_insn *d, const struct x86_ctx *c)
{
	if (c->px.seg >= 0)
		d->seg = (uint8_t)c->px.seg;
	else if (d->base == 4 || d->base == 5)
		d->seg = S2_SEG_SS;
	else
		d->seg = S2_SEG_DS;
}

/* ModR/M with 16-bit addressing (67 in 32-bit code). */
static int modrm16(struct x86_ctx *c, unsigned mod, unsigned rm, struct s2_insn *d)
{
	static const uint8_t base16[8] = { 3, 3, 5, 5, 6, 7, 5, 3 };
	static const uint8_t index16[8] = { 6,		 7,	      6,	   7,
					    S2_REG_NONE, S2_REG_NONE, S2_REG_NONE, S2_REG_NONE };
	uint64_t v;

	d->base = base16[rm];
	d->index = index16[rm];
	if (mod == 0 && rm == 6) {
		d->base = S2_REG_NONE;
		if (!take(c, 2, &v))
			return short_insn(c, 2);
		d->disp = s2_dec_sext(v, 16);
	} else if (mod == 1 || mod == 2) {
		if (!take(c, mod == 1 ? 1 : 2, &v))
			return short_insn(c, mod == 1 ? 1 : 2);
		d->disp = s2_dec_sext(v, mod == 1 ? 8 : 16);
	}
	return 0;
}

/*
 * Decodes the ModR/M byte at the position (and its SIB and displacement)
 * into the address fields of @d; *@reg gets the reg field (with REX.R).
 */
static int modrm(struct x86_ctx *c, struct s2_insn *d, unsigned *reg)
{
	unsigned rex = c->px.rex, mod, rm;
	uint64_t v;
	int r;

	if (c->i >= c->avail)
		return short_insn(c, 1);
	mod = c->p[c->i] >> 6;
	rm = c->p[c->i] & 7;
	*reg = ((c->p[c->i] >> 3) & 7) | ((rex & 4) << 1);
	c->i++;
	if (mod == 3)
		return -ENOTSUP; /* a register operand: no memory access */
	d->addr_size = (uint8_t)c->addr_size;
	if (c->addr_size == 2) {
		r = modrm16(c, mod, rm, d);
		if (r)
			return r;
		default_seg(d, c);
		return 0;
	}
	if (rm == 4) {
		unsigned sib, base, index;

		if (!take(c, 1, &v))
			return short_insn(c, 1);
		sib = (unsigned)v;
		index = ((sib >> 3) & 7) | ((rex & 2) << 2);
		base = (sib & 7) | ((rex & 1) << 3);
		d->index = index == 4 ? S2_REG_NONE : (uint8_t)index;
		d->scale = (uint8_t)(sib >> 6);
		if (mod == 0 && (sib & 7) == 5) {
			d->base = S2_REG_NONE;
			mod = 2; /* disp32, no base */
		} else {
			d->base = (uint8_t)base;
		}
	} else if (mod == 0 && rm == 5) {
		d->base = c->long_mode ? S2_X86_RIP : S2_REG_NONE;
		mod = 2;
	} else {
		d->base = (uint8_t)(rm | ((rex & 1) << 3));
	}
	if (mod == 1 || mod == 2) {
		if (!take(c, mod == 1 ? 1 : 4, &v))
			return short_insn(c, mod == 1 ? 1 : 4);
		d->disp = s2_dec_sext(v, mod == 1 ? 8 : 32);
	}
	default_seg(d, c);
	return 0;
}

/*
 * Legacy prefixes and REX; stops at the opcode. REX counts only right before
 * the opcode: a legacy prefix after it cancels it.
 */
static int prefixes(struct x86_ctx *c)
{
	static const int8_t seg_of[4] = { S2_SEG_ES, S2_SEG_CS, S2_SEG_SS, S2_SEG_DS };
	struct x86_prefixes *px = &c->px;

	px->seg = -1;
	for (;; c->i++) {
		uint8_t b;

		if (c->i >= c->avail)
			return short_insn(c, 1);
		if (c->i >= 15)
			return -ENOTSUP;
		b = c->p[c->i];
		if (c->long_mode && (b & 0xf0) == 0x40) {
			px->rex = b;
			continue;
		}
		switch (b) {
		case 0x26:
		case 0x2e:
		case 0x36:
		case 0x3e: px->seg = seg_of[(b >> 3) & 3]; break;
		case 0x64: px->seg = S2_SEG_FS; break;
		case 0x65: px->seg = S2_SEG_GS; break;
		case 0x66: px->opsize = true; break;
		case 0x67: px->adsize = true; break;
		case 0xf0: px->lock = true; break;
		case 0xf2: px->repne = true; break;
		case 0xf3: px->rep = true; break;
		default: return 0;
		}
		px->rex = 0;
	}
}

/* Group 1 (80-83 /reg) and the two-operand ALU rows: op by reg field. */
static const uint8_t alu_op[8] = { S2_OP_ADD, S2_OP_OR,	 0xff,	    0xff,
				   S2_OP_AND, S2_OP_SUB, S2_OP_XOR, S2_OP_CMP };

/* Reads an immediate of @n bytes into d->imm, sign-extended to d->size. */
static int immediate(struct x86_ctx *c, struct s2_insn *d, unsigned n)
{
	uint64_t v;

	if (!take(c, n, &v))
		return short_insn(c, n);
	d->imm = (uint64_t)s2_dec_sext(v, n * 8) & s2_dec_mask(d->size);
	d->flags |= S2_INSN_IMM;
	return 0;
}

/* Register operand of a byte access: AH..BH without REX. */
static void set_reg(struct s2_insn *d, const struct x86_ctx *c, unsigned reg)
{
	d->reg = (uint8_t)reg;
	if (d->size == 1 && !c->px.rex && reg >= 4 && reg < 8)
		d->flags |= S2_INSN_HIGH8;
}

static int decode_op(struct x86_ctx *c, struct s2_insn *d)
{
	unsigned op, reg, opsize = c->opsize;
	uint64_t v;
	int r;

	op = c->p[c->i++];
	d->size = (uint8_t)opsize;
	d->op = S2_OP_MOV;
	switch (op) {
	case 0x00 ... 0x03:
	case 0x08 ... 0x0b:
	case 0x20 ... 0x23:
	case 0x28 ... 0x2b:
	case 0x30 ... 0x33:
	case 0x38 ... 0x3b:
		d->op = alu_op[op >> 3];
		if (!(op & 1))
			d->size = 1;
		r = modrm(c, d, &reg);
		if (r)
			return r;
		set_reg(d, c, reg);
		if (op & 2) {
			d->flags |= S2_INSN_REG_DST;
			d->dir = S2_DIR_LOAD;
		} else {
			d->dir = d->op == S2_OP_CMP ? S2_DIR_LOAD : S2_DIR_RMW;
		}
		break;
	case 0x80 ... 0x83:
		if (op == 0x82 && c->long_mode)
			return -ENOTSUP;
		r = modrm(c, d, &reg);
		if (r)
			return r;
		d->op = alu_op[reg & 7];
		if (d->op == 0xff)
			return -ENOTSUP; /* ADC, SBB */
		d->dir = d->op == S2_OP_CMP ? S2_DIR_LOAD : S2_DIR_RMW;
		if (op != 0x81)
			d->size = op == 0x83 ? (uint8_t)opsize : 1;
		r = immediate(c, d, op == 0x81 ? (opsize == 2 ? 2 : 4) : 1);
		if (r)
			return r;
		break;
	case 0x84:
	case 0x85:
	case 0x86:
	case 0x87:
		if (!(op & 1))
			d->size = 1;
		r = modrm(c, d, &reg);
		if (r)
			return r;
		set_reg(d, c, reg);
		d->op = op < 0x86 ? S2_OP_TEST : S2_OP_XCHG;
		d->dir = op < 0x86 ? S2_DIR_LOAD : S2_DIR_RMW;
		if (op >= 0x86)
			d->flags |= S2_INSN_LOCK; /* always locked */
		break;
	case 0x88 ... 0x8b:
		if (!(op & 1))
			d->size = 1;
		r = modrm(c, d, &reg);
		if (r)
			return r;
		set_reg(d, c, reg);
		d->dir = (op & 2) ? S2_DIR_LOAD : S2_DIR_STORE;
		break;
	case 0xc6:
	case 0xc7:
	case 0xf6:
	case 0xf7:
		if (!(op & 1))
			d->size = 1;
		r = modrm(c, d, &reg);
		if (r)
			return r;
		/* C6/C7: only /0 is MOV; F6/F7: /0 and its alias /1 are TEST. */
		if (op < 0xf6 ? reg & 7 : (reg & 7) > 1)
			return -ENOTSUP;
		d->op = op < 0xf6 ? S2_OP_MOV : S2_OP_TEST;
		d->dir = op < 0xf6 ? S2_DIR_STORE : S2_DIR_LOAD;
		r = immediate(c, d, d->size == 1 ? 1 : d->size == 2 ? 2 : 4);
		if (r)
			return r;
		break;
	case 0xa0 ... 0xa3:
		d->addr_size = (uint8_t)c->addr_size;
		if (!take(c, c->addr_size, &v))
			return short_insn(c, c->addr_size);
		d->disp = (int64_t)v; /* an absolute offset, not sign-extended */
		if (!(op & 1))
			d->size = 1;
		d->reg = 0;
		d->dir = op < 0xa2 ? S2_DIR_LOAD : S2_DIR_STORE;
		d->seg = c->px.seg >= 0 ? (uint8_t)c->px.seg : S2_SEG_DS;
		break;
	case 0xa4:
	case 0xa5:
	case 0xaa:
	case 0xab:
		if (!(op & 1))
			d->size = 1;
		d->addr_size = (uint8_t)c->addr_size;
		d->op = op < 0xaa ? S2_OP_MOVS : S2_OP_STOS;
		if (op < 0xaa) {
			d->dir = S2_DIR_RMW;
			d->base = 6; /* reads seg:[rSI], writes ES:[rDI] */
			d->seg = c->px.seg >= 0 ? (uint8_t)c->px.seg : S2_SEG_DS;
		} else {
			d->dir = S2_DIR_STORE;
			d->base = 7;
			d->reg = 0;
			d->seg = S2_SEG_ES;
		}
		if (c->px.rep)
			d->flags |= S2_INSN_REP;
		break;
	case 0x63:
		if (!c->long_mode)
			return -ENOTSUP; /* ARPL */
		r = modrm(c, d, &reg);
		if (r)
			return r;
		d->reg = (uint8_t)reg;
		d->reg_size = (uint8_t)opsize;
		d->dir = S2_DIR_LOAD;
		if (opsize == 8) {
			d->size = 4;
			d->flags |= S2_INSN_SIGNED;
		}
		break;
	case 0x0f:
		if (c->i >= c->avail)
			return short_insn(c, 1);
		op = c->p[c->i++];
		if (op != 0xb6 && op != 0xb7 && op != 0xbe && op != 0xbf)
			return -ENOTSUP;
		r = modrm(c, d, &reg);
		if (r)
			return r;
		d->size = (op & 1) ? 2 : 1;
		d->reg = (uint8_t)reg;
		d->reg_size = (uint8_t)opsize;
		d->dir = S2_DIR_LOAD;
		if (op >= 0xbe)
			d->flags |= S2_INSN_SIGNED;
		break;
	default: return -ENOTSUP;
	}
	return 0;
}

/*
 * LOCK only on a locking op with a memory destination. F2/F3: a lone F3 on a
 * string op is REP (REPNE there is undefined); elsewhere they are the
 * XACQUIRE/XRELEASE hints or change nothing, but with 66 they also select
 * other instructions in neighbouring opcode rows, so they are refused
 * rather than reasoned about.
 */
static bool prefixes_valid(const struct x86_ctx *c, const struct s2_insn *d)
{
	bool string = d->op == S2_OP_MOVS || d->op == S2_OP_STOS;

	if (c->px.repne || (c->px.rep && !string))
		return false;
	if (c->px.lock && (d->dir != S2_DIR_RMW || string))
		return false;
	return true;
}

int s2_decode_x86(const uint8_t *bytes, unsigned avail, enum s2_x86_mode mode, uint64_t rip,
		  struct s2_insn *out)
{
	struct x86_ctx c = { .p = bytes, .avail = avail };
	struct s2_insn d;
	int r;

	if (!bytes || !out || (mode != S2_X86_MODE_32 && mode != S2_X86_MODE_64))
		return -EINVAL;
	c.long_mode = mode == S2_X86_MODE_64;
	r = prefixes(&c);
	if (r)
		return r;
	if (c.long_mode) {
		c.opsize = (c.px.rex & 8) ? 8 : c.px.opsize ? 2 : 4;
		c.addr_size = c.px.adsize ? 4 : 8;
	} else {
		c.opsize = c.px.opsize ? 2 : 4;
		c.addr_size = c.px.adsize ? 2 : 4;
	}
	s2_dec_init(&d);
	r = decode_op(&c, &d);
	if (r)
		return r;
	if (!prefixes_valid(&c, &d))
		return -ENOTSUP;
	if (c.px.lock)
		d.flags |= S2_INSN_LOCK;
	if (!d.reg_size)
		d.reg_size = d.size;
	d.len = (uint8_t)c.i;
	d.next_pc = rip + c.i;
	if (!c.long_mode)
		d.next_pc &= 0xffffffffull;
	*out = d;
	return 0;
}

/* ---- completion ---------------------------------------------------------- */

#define RFLAGS_CF (1ull << 0)
#define RFLAGS_PF (1ull << 2)
#define RFLAGS_AF (1ull << 4)
#define RFLAGS_ZF (1ull << 6)
#define RFLAGS_SF (1ull << 7)
#define RFLAGS_DF (1ull << 10)
#define RFLAGS_OF (1ull << 11)
#define RFLAGS_ARITH (RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_ZF | RFLAGS_SF | RFLAGS_OF)

static uint64_t reg_read(const struct s2_insn *d, const struct s2_x86_regs *r, unsigned size)
{
	if (d->flags & S2_INSN_HIGH8)
		return (r->gpr[d->reg - 4] >> 8) & 0xff;
	return r->gpr[d->reg] & s2_dec_mask(size);
}

/* Writes @v to a register of @size bytes: 4 zero-extends, 1 and 2 merge. */
static void gpr_write(uint64_t *g, unsigned size, uint64_t v)
{
	if (size >= 4)
		*g = v & s2_dec_mask(size);
	else
		*g = (*g & ~s2_dec_mask(size)) | (v & s2_dec_mask(size));
}

static void reg_write(const struct s2_insn *d, struct s2_x86_regs *r, unsigned size, uint64_t v)
{
	if (d->flags & S2_INSN_HIGH8) {
		uint64_t *g = &r->gpr[d->reg - 4];

		*g = (*g & ~0xff00ull) | ((v & 0xff) << 8);
		return;
	}
	gpr_write(&r->gpr[d->reg], size, v);
}

/* PF: the low byte has an even number of ones (no __builtin_popcount: a
 * libgcc call on riscv64). */
static bool parity_even(uint64_t v)
{
	unsigned b = (unsigned)(v & 0xff);

	b ^= b >> 4;
	b ^= b >> 2;
	b ^= b >> 1;
	return !(b & 1);
}

/* Arithmetic flags of @res = @a op @b on @size bytes. */
static uint64_t alu_flags(unsigned op, uint64_t a, uint64_t b, uint64_t res, unsigned size)
{
	uint64_t m = s2_dec_mask(size), sign = 1ull << (size * 8 - 1), f = 0;

	res &= m;
	if (op == S2_OP_ADD) {
		if (res < (a & m))
			f |= RFLAGS_CF;
		if ((a ^ res) & (b ^ res) & sign)
			f |= RFLAGS_OF;
		f |= (a ^ b ^ res) & RFLAGS_AF;
	} else if (op == S2_OP_SUB || op == S2_OP_CMP) {
		if ((a & m) < (b & m))
			f |= RFLAGS_CF;
		if ((a ^ b) & (a ^ res) & sign)
			f |= RFLAGS_OF;
		f |= (a ^ b ^ res) & RFLAGS_AF;
	}
	if (!res)
		f |= RFLAGS_ZF;
	if (res & sign)
		f |= RFLAGS_SF;
	if (parity_even(res))
		f |= RFLAGS_PF;
	return f;
}

static uint64_t alu(unsigned op, uint64_t a, uint64_t b)
{
	switch (op) {
	case S2_OP_ADD: return a + b;
	case S2_OP_OR: return a | b;
	case S2_OP_AND:
	case S2_OP_TEST: return a & b;
	case S2_OP_XOR: return a ^ b;
	default: return a - b; /* SUB, CMP */
	}
}

/* One element of a string op: advance rSI/rDI, count rCX down. */
static int string_step(const struct s2_insn *d, struct s2_x86_regs *r)
{
	unsigned as = d->addr_size;
	uint64_t step = (r->rflags & RFLAGS_DF) ? -(uint64_t)d->size : d->size;
	uint64_t cx = r->gpr[1] & s2_dec_mask(as);

	if ((d->flags & S2_INSN_REP) && !cx)
		return -EINVAL;
	if (d->op == S2_OP_MOVS)
		gpr_write(&r->gpr[6], as, r->gpr[6] + step);
	gpr_write(&r->gpr[7], as, r->gpr[7] + step);
	if (d->flags & S2_INSN_REP) {
		gpr_write(&r->gpr[1], as, cx - 1);
		if (cx - 1)
			return 0; /* rip stays: the next element faults again */
	}
	r->rip = d->next_pc;
	return 0;
}

int s2_x86_complete(const struct s2_insn *d, struct s2_x86_regs *r, uint64_t loaded,
		    uint64_t *store)
{
	uint64_t m, src, res;
	int ret;

	if (!d || !r || !store || d->op > S2_OP_MOVS || !d->size || d->size > 8 ||
	    (d->reg != S2_REG_NONE && d->reg > 15))
		return -EINVAL;
	m = s2_dec_mask(d->size);
	loaded &= m;
	if (d->op == S2_OP_STOS || d->op == S2_OP_MOVS) {
		if ((d->flags & S2_INSN_REP) && !(r->gpr[1] & s2_dec_mask(d->addr_size)))
			return -EINVAL;
		*store = d->op == S2_OP_STOS ? r->gpr[0] & m : loaded;
		ret = string_step(d, r);
		return ret ? ret : 1;
	}
	if (d->reg == S2_REG_NONE && !(d->flags & S2_INSN_IMM))
		return -EINVAL;
	src = (d->flags & S2_INSN_IMM) ? d->imm & m : reg_read(d, r, d->size);
	ret = 0;
	switch (d->op) {
	case S2_OP_MOV:
		if (d->dir == S2_DIR_STORE) {
			*store = src;
			ret = 1;
			break;
		}
		res = loaded;
		if (d->flags & S2_INSN_SIGNED)
			res = (uint64_t)s2_dec_sext(loaded, d->size * 8);
		reg_write(d, r, d->reg_size, res);
		break;
	case S2_OP_XCHG:
		*store = src;
		reg_write(d, r, d->size, loaded);
		ret = 1;
		break;
	default:
		if (d->flags & S2_INSN_REG_DST) {
			res = alu(d->op, src, loaded) & m;
			r->rflags = (r->rflags & ~RFLAGS_ARITH) |
				    alu_flags(d->op, src, loaded, res, d->size);
			if (d->op != S2_OP_CMP && d->op != S2_OP_TEST)
				reg_write(d, r, d->size, res);
		} else {
			res = alu(d->op, loaded, src) & m;
			r->rflags = (r->rflags & ~RFLAGS_ARITH) |
				    alu_flags(d->op, loaded, src, res, d->size);
			if (d->op != S2_OP_CMP && d->op != S2_OP_TEST) {
				*store = res;
				ret = 1;
			}
		}
		break;
	}
	r->rip = d->next_pc;
	return ret;
}
