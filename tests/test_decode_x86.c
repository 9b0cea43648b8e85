// SPDX-License-Identifier: MIT
/*
 * The x86 decoder (decode/x86.c) against capstone, in 64-bit and 32-bit code:
 * random byte strings and generated encodings of every supported form (random
 * prefixes, REX, ModR/M, SIB, displacements, immediates) are decoded by both;
 * they must agree on whether it is a supported form and on length, size,
 * direction, operation, register, immediate and every address field. A
 * refusal must be an instruction capstone does not call a supported form.
 * S2_DECODE_N sets the count per part (make decode-diff); a few known
 * encodings and the complete helper are checked by value.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <capstone/capstone.h>

#include "decode/show.h"

static unsigned long diff_n(unsigned long dflt)
{
	const char *e = getenv("S2_DECODE_N");

	return e ? strtoul(e, NULL, 0) : dflt;
}

/* What capstone says a supported instruction does, in the decoder's terms. */
struct want {
	unsigned len, size, reg_size, dir, op, reg, base, index, scale, seg, addr_size;
	bool high8, has_imm, lock, rep;
	uint64_t imm;
	int64_t disp;
};

/* x86 register -> (number, bytes, high8); false for anything else. */
static bool gpr_of(x86_reg r, unsigned *num, unsigned *bytes, bool *high8)
{
	static const x86_reg q[16] = { X86_REG_RAX, X86_REG_RCX, X86_REG_RDX, X86_REG_RBX,
				       X86_REG_RSP, X86_REG_RBP, X86_REG_RSI, X86_REG_RDI,
				       X86_REG_R8,  X86_REG_R9,	 X86_REG_R10, X86_REG_R11,
				       X86_REG_R12, X86_REG_R13, X86_REG_R14, X86_REG_R15 };
	static const x86_reg d[16] = { X86_REG_EAX,  X86_REG_ECX,  X86_REG_EDX,	 X86_REG_EBX,
				       X86_REG_ESP,  X86_REG_EBP,  X86_REG_ESI,	 X86_REG_EDI,
				       X86_REG_R8D,  X86_REG_R9D,  X86_REG_R10D, X86_REG_R11D,
				       X86_REG_R12D, X86_REG_R13D, X86_REG_R14D, X86_REG_R15D };
	static const x86_reg w[16] = { X86_REG_AX,   X86_REG_CX,   X86_REG_DX,	 X86_REG_BX,
				       X86_REG_SP,   X86_REG_BP,   X86_REG_SI,	 X86_REG_DI,
				       X86_REG_R8W,  X86_REG_R9W,  X86_REG_R10W, X86_REG_R11W,
				       X86_REG_R12W, X86_REG_R13W, X86_REG_R14W, X86_REG_R15W };
	static const x86_reg b[16] = { X86_REG_AL,   X86_REG_CL,   X86_REG_DL,	 X86_REG_BL,
				       X86_REG_SPL,  X86_REG_BPL,  X86_REG_SIL,	 X86_REG_DIL,
				       X86_REG_R8B,  X86_REG_R9B,  X86_REG_R10B, X86_REG_R11B,
				       X86_REG_R12B, X86_REG_R13B, X86_REG_R14B, X86_REG_R15B };
	static const x86_reg h[4] = { X86_REG_AH, X86_REG_CH, X86_REG_DH, X86_REG_BH };

	*high8 = false;
	for (unsigned i = 0; i < 16; i++) {
		*num = i;
		if (r == q[i] || r == d[i] || r == w[i] || r == b[i]) {
			*bytes = r == q[i] ? 8 : r == d[i] ? 4 : r == w[i] ? 2 : 1;
			return true;
		}
		if (i < 4 && r == h[i]) {
			*num = i + 4;
			*bytes = 1;
			*high8 = true;
			return true;
		}
	}
	return false;
}

static int op_of(unsigned id)
{
	switch (id) {
	case X86_INS_MOV:
	case X86_INS_MOVABS:
	case X86_INS_MOVZX:
	case X86_INS_MOVSX:
	case X86_INS_MOVSXD: return S2_OP_MOV;
	case X86_INS_XCHG: return S2_OP_XCHG;
	case X86_INS_ADD: return S2_OP_ADD;
	case X86_INS_OR: return S2_OP_OR;
	case X86_INS_AND: return S2_OP_AND;
	case X86_INS_SUB: return S2_OP_SUB;
	case X86_INS_XOR: return S2_OP_XOR;
	case X86_INS_CMP: return S2_OP_CMP;
	case X86_INS_TEST: return S2_OP_TEST;
	case X86_INS_STOSB:
	case X86_INS_STOSW:
	case X86_INS_STOSD:
	case X86_INS_STOSQ: return S2_OP_STOS;
	case X86_INS_MOVSB:
	case X86_INS_MOVSW:
	case X86_INS_MOVSD:
	case X86_INS_MOVSQ: return S2_OP_MOVS;
	default: return -1;
	}
}

static unsigned seg_of(x86_reg r)
{
	switch (r) {
	case X86_REG_ES: return S2_SEG_ES;
	case X86_REG_CS: return S2_SEG_CS;
	case X86_REG_SS: return S2_SEG_SS;
	case X86_REG_DS: return S2_SEG_DS;
	case X86_REG_FS: return S2_SEG_FS;
	case X86_REG_GS: return S2_SEG_GS;
	default: return 0xff;
	}
}

/* The legacy prefixes before the opcode, scanned from the bytes (the spec's
 * rule; capstone keeps one of F0/F2/F3 only). */
static void raw_prefixes(const uint8_t *b, bool m64, bool *lock, bool *f2, bool *f3)
{
	*lock = *f2 = *f3 = false;
	for (unsigned i = 0; i < 15; i++) {
		switch (b[i]) {
		case 0xf0: *lock = true; continue;
		case 0xf2: *f2 = true; continue;
		case 0xf3: *f3 = true; continue;
		case 0x26:
		case 0x2e:
		case 0x36:
		case 0x3e:
		case 0x64:
		case 0x65:
		case 0x66:
		case 0x67: continue;
		default:
			if (m64 && (b[i] & 0xf0) == 0x40)
				continue;
			return;
		}
	}
}

/*
 * Capstone's reading of @b as the decoder's description; false when it is
 * not a supported form: invalid, another instruction, no memory operand, a
 * segment or control register, LOCK where it #UDs, REPNE on a string op.
 */
static bool oracle(csh h, const uint8_t *b, bool m64, uint64_t rip, struct want *w, char *text)
{
	cs_insn *ci;
	cs_x86 *x;
	const cs_x86_op *mem = NULL, *src = NULL;
	unsigned nmem = 0, bytes;
	bool ok = false, lock, f2, f3, hi;
	int op;

	memset(w, 0, sizeof(*w));
	strcpy(text, "invalid");
	if (cs_disasm(h, b, 15, rip, 1, &ci) != 1)
		return false;
	snprintf(text, 200, "%s %s", ci->mnemonic, ci->op_str);
	x = &ci->detail->x86;
	op = op_of(ci->id);
	if (op < 0)
		goto out;
	for (unsigned i = 0; i < x->op_count; i++) {
		const cs_x86_op *o = &x->operands[i];

		if (o->type == X86_OP_MEM) {
			nmem++;
			/* MOVS: the source is the [rSI] operand. */
			if (!mem || (op == S2_OP_MOVS && i == 1))
				mem = o;
		} else if (o->type == X86_OP_REG) {
			unsigned n;

			if (!gpr_of(o->reg, &n, &bytes, &hi))
				goto out; /* xmm (SSE movsd), segment, control registers */
			src = o;
		} else if (o->type == X86_OP_IMM) {
			w->has_imm = true;
			w->imm = (uint64_t)o->imm;
		}
	}
	if (!mem)
		goto out;
	w->len = ci->size;
	w->op = (unsigned)op;
	w->size = mem->size;
	w->reg_size = src && op == S2_OP_MOV ? src->size : mem->size;
	w->reg = S2_REG_NONE;
	if (src)
		gpr_of(src->reg, &w->reg, &bytes, &w->high8);
	if (w->has_imm)
		w->imm &= w->size >= 8 ? ~0ull : (1ull << (8 * w->size)) - 1;
	/* Capstone 4.0.2 marks TEST r/m, imm as writing its memory operand. */
	if (op == S2_OP_MOVS)
		w->dir = S2_DIR_RMW;
	else if (op == S2_OP_TEST || op == S2_OP_CMP)
		w->dir = S2_DIR_LOAD;
	else
		w->dir = ((mem->access & CS_AC_READ) ? S2_DIR_LOAD : 0) |
			 ((mem->access & CS_AC_WRITE) ? S2_DIR_STORE : 0);
	w->base = w->index = S2_REG_NONE;
	w->addr_size = m64 ? 8 : 4;
	if (mem->mem.base == X86_REG_RIP || mem->mem.base == X86_REG_EIP) {
		w->base = S2_X86_RIP;
		w->addr_size = mem->mem.base == X86_REG_RIP ? 8 : 4;
	} else if (mem->mem.base != X86_REG_INVALID) {
		gpr_of(mem->mem.base, &w->base, &w->addr_size, &hi);
	}
	if (mem->mem.index != X86_REG_INVALID)
		gpr_of(mem->mem.index, &w->index, &w->addr_size, &hi);
	if (x->prefix[3] == X86_PREFIX_ADDRSIZE && w->base == S2_REG_NONE &&
	    w->index == S2_REG_NONE)
		w->addr_size = m64 ? 4 : 2;
	/*
	 * Capstone 4.0.2 prints 63 /r without REX.W as MOVSXD r64, r/m32; the SDM
	 * gives it as a plain move, r32 <- r/m32 (r16 <- r/m16 with 66).
	 */
	if (ci->id == X86_INS_MOVSXD && !(x->rex & 8))
		w->size = w->reg_size = x->prefix[2] == X86_PREFIX_OPSIZE ? 2 : 4;
	/* Capstone 4.0.2 reads 66 F3 AB as REP STOSD (F3 66 AB as STOSW); the
	 * order of legacy prefixes does not matter (SDM 2.1.1). */
	if ((op == S2_OP_STOS || op == S2_OP_MOVS) && x->prefix[2] == X86_PREFIX_OPSIZE &&
	    !(x->rex & 8) && (x->opcode[0] & 1))
		w->size = w->reg_size = 2;
	w->scale = mem->mem.scale == 8 ? 3 : mem->mem.scale == 4 ? 2 : mem->mem.scale == 2 ? 1 : 0;
	w->disp = mem->mem.disp;
	w->seg = seg_of(mem->mem.segment);
	if (w->seg == 0xff)
		w->seg = (op == S2_OP_STOS)		? S2_SEG_ES :
			 (w->base == 4 || w->base == 5) ? S2_SEG_SS :
							  S2_SEG_DS;
	raw_prefixes(b, m64, &lock, &f2, &f3);
	w->lock = lock || op == S2_OP_XCHG;
	w->rep = (op == S2_OP_STOS || op == S2_OP_MOVS) && f3;
	if (lock && (w->dir != S2_DIR_RMW || op == S2_OP_MOVS))
		goto out; /* #UD */
	if (f2 || (f3 && op != S2_OP_STOS && op != S2_OP_MOVS))
		goto out; /* REPNE on a string op: undefined; F2/F3 elsewhere: refused by design */
	ok = nmem == 1 || (op == S2_OP_MOVS && nmem == 2);
out:
	cs_free(ci, 1);
	return ok;
}

struct stats {
	unsigned long total, supported, refused;
};

/* One comparison; prints both readings on a mismatch. */
static bool compare(csh h, const uint8_t *b, bool m64, struct stats *st)
{
	struct want w;
	struct s2_insn d;
	char text[200], desc[256];
	uint64_t rip = m64 ? 0xffffffff80001000ull : 0x100000;
	bool ok = oracle(h, b, m64, rip, &w, text);
	int r = s2_decode_x86(b, 15, m64 ? S2_X86_MODE_64 : S2_X86_MODE_32, rip, &d);
	const char *why = NULL;

	st->total++;
	if (!ok) {
		st->refused++;
		if (r != -ENOTSUP)
			why = "decoder accepts what the oracle does not";
	} else if (r) {
		why = "decoder refuses a supported form";
	} else {
		st->supported++;
		if (d.len != w.len)
			why = "length";
		else if (d.size != w.size || d.reg_size != w.reg_size)
			why = "size";
		else if (d.dir != w.dir)
			why = "direction";
		else if (d.op != w.op)
			why = "operation";
		else if (d.reg != w.reg || !!(d.flags & S2_INSN_HIGH8) != w.high8)
			why = "register";
		else if (!!(d.flags & S2_INSN_IMM) != w.has_imm || (w.has_imm && d.imm != w.imm))
			why = "immediate";
		else if (d.base != w.base || d.index != w.index ||
			 (d.index != S2_REG_NONE && d.scale != w.scale) || d.disp != w.disp)
			why = "address";
		else if (d.addr_size != w.addr_size || d.seg != w.seg)
			why = "address size or segment";
		else if (!!(d.flags & S2_INSN_LOCK) != w.lock || !!(d.flags & S2_INSN_REP) != w.rep)
			why = "lock or rep";
		else if (d.next_pc != rip + d.len)
			why = "next pc";
	}
	if (!why)
		return true;
	fprintf(stderr, "x86-%d mismatch (%s):", m64 ? 64 : 32, why);
	for (unsigned i = 0; i < 15; i++)
		fprintf(stderr, " %02x", b[i]);
	fprintf(stderr, "\n  capstone: %s\n  s2mmu:    %s\n", text,
		r ? "refused" : s2_insn_describe(&d, desc, sizeof(desc)));
	return false;
}

/* The opcodes of every supported form ((two-byte: 0x0f in front). */
static const uint16_t forms[] = {
	0x00, 0x01, 0x02, 0x03, 0x08, 0x09, 0x0a, 0x0b,	  0x20,	  0x21,	  0x22,	  0x23, 0x28, 0x29,
	0x2a, 0x2b, 0x30, 0x31, 0x32, 0x33, 0x38, 0x39,	  0x3a,	  0x3b,	  0x80,	  0x81, 0x82, 0x83,
	0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b,	  0xc6,	  0xc7,	  0xf6,	  0xf7, 0xa0, 0xa1,
	0xa2, 0xa3, 0xa4, 0xa5, 0xaa, 0xab, 0x63, 0x0fb6, 0x0fb7, 0x0fbe, 0x0fbf,
};

static const uint8_t legacy[] = {
	0x66, 0x67, 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0xf0, 0xf2, 0xf3
};

/* A generated encoding: up to 3 prefixes (rarer ones less often), REX,
 * the opcode, a ModR/M that is mostly a memory form, random bytes after. */
static void generate(uint64_t *s, uint8_t *b, bool m64)
{
	uint64_t r = s2_rng_next(s);
	unsigned i = 0, np = r % 4, form;

	for (unsigned k = 0; k < 15; k++)
		b[k] = (uint8_t)s2_rng_next(s);
	for (unsigned k = 0; k < np; k++) {
		uint8_t p = legacy[(r >> (8 + 4 * k)) % sizeof(legacy)];

		/* LOCK and F2/F3 in one of four, so the valid forms dominate. */
		if ((p == 0xf0 || p == 0xf2 || p == 0xf3) && ((r >> (24 + 2 * k)) & 3))
			p = 0x66 + ((r >> 40) & 1);
		b[i++] = p;
	}
	if (m64 && (r >> 32) % 3)
		b[i++] = (uint8_t)(0x40 | ((r >> 36) & 15));
	form = forms[(r >> 44) % (sizeof(forms) / sizeof(forms[0]))];
	if (form > 0xff)
		b[i++] = 0x0f;
	b[i++] = (uint8_t)form;
	/* ModR/M: mod 3 (a register) one time in eight. */
	if ((r >> 52) & 7)
		b[i] = (uint8_t)((b[i] & 0x3f) | (((r >> 56) % 3) << 6));
}

static void run_diff(bool m64, bool random_only, unsigned long n, uint64_t seed)
{
	csh h;
	struct stats st = { 0 };
	unsigned long bad = 0;
	uint8_t b[15];
	uint64_t s = seed;

	assert_int_equal(cs_open(CS_ARCH_X86, m64 ? CS_MODE_64 : CS_MODE_32, &h), CS_ERR_OK);
	cs_option(h, CS_OPT_DETAIL, CS_OPT_ON);
	for (unsigned long k = 0; k < n; k++) {
		if (random_only)
			for (unsigned j = 0; j < 15; j++)
				b[j] = (uint8_t)s2_rng_next(&s);
		else
			generate(&s, b, m64);
		if (!compare(h, b, m64, &st) && ++bad >= 20)
			break;
	}
	cs_close(&h);
	printf("x86-%d %s: %lu compared, %lu supported, %lu refused, %lu mismatches\n",
	       m64 ? 64 : 32, random_only ? "random" : "generated", st.total, st.supported,
	       st.refused, bad);
	assert_int_equal(bad, 0);
	/* The generator must reach the supported forms, the random part refusals. */
	assert_true(random_only ? st.refused > st.total / 2 : st.supported > st.total / 3);
}

/* Catches: any decoder bug on a generated supported form (e.g. SIB base 5
 * with mod 0 taken as rBP: mutating modrm() fails "address" at once). */
static void test_diff_generated_64(void **state)
{
	run_diff(true, false, diff_n(300000), 0x1234567887654321ull);
}

static void test_diff_generated_32(void **state)
{
	run_diff(false, false, diff_n(300000), 0x0badc0ffee123457ull);
}

/* Catches: accepting what is not a supported form (e.g. C6 /1..7 as MOV). */
static void test_diff_random_64(void **state)
{
	run_diff(true, true, diff_n(300000), 0x9e3779b97f4a7c15ull);
}

static void test_diff_random_32(void **state)
{
	run_diff(false, true, diff_n(300000), 0x5bd1e9955bd1e995ull);
}

static struct s2_insn dec64(const char *hex)
{
	uint8_t b[15];
	unsigned n = 0;
	struct s2_insn d;

	while (*hex && n < 15) {
		b[n++] = (uint8_t)strtoul(hex, (char **)&hex, 16);
		while (*hex == ' ')
			hex++;
	}
	assert_int_equal(s2_decode_x86(b, n, S2_X86_MODE_64, 0x1000, &d), 0);
	return d;
}

/* Known encodings by value: REX.R register, SIB, RIP-relative, moffs. */
static void test_known(void **state)
{
	struct s2_insn d;
	uint8_t b[] = { 0x4c, 0x89, 0x44, 0x8b, 0x10 }; /* mov [rbx+rcx*4+0x10], r8 */

	d = dec64("4c 89 44 8b 10");
	assert_int_equal(d.dir, S2_DIR_STORE);
	assert_int_equal(d.size, 8);
	assert_int_equal(d.reg, 8);
	assert_int_equal(d.base, 3);
	assert_int_equal(d.index, 1);
	assert_int_equal(d.scale, 2);
	assert_int_equal(d.disp, 0x10);
	assert_int_equal(d.len, 5);
	assert_int_equal(d.next_pc, 0x1005);
	d = dec64("8b 05 f0 ff ff ff"); /* mov eax, [rip-0x10] */
	assert_int_equal(d.base, S2_X86_RIP);
	assert_int_equal(d.disp, -0x10);
	d = dec64("48 a1 88 77 66 55 44 33 22 11"); /* mov rax, moffs64 */
	assert_int_equal((uint64_t)d.disp, 0x1122334455667788ull);
	assert_int_equal(d.len, 10);
	/* Bytes that end early ask for more; bad arguments are -EINVAL. */
	assert_int_equal(s2_decode_x86(b, 4, S2_X86_MODE_64, 0, &d), -EAGAIN);
	assert_int_equal(s2_decode_x86(b, 5, 16, 0, &d), -EINVAL);
	assert_int_equal(s2_decode_x86(NULL, 5, S2_X86_MODE_64, 0, &d), -EINVAL);
}

/* Complete: loads merge/zero-extend/sign-extend, AH, ALU flags, XCHG, REP
 * STOS one element per call. Catches: 32-bit load not zero-extending, AH
 * written to AL, CF of SUB inverted, rip advanced before rCX reaches 0. */
static void test_complete(void **state)
{
	struct s2_x86_regs r = { .rip = 0x1000 };
	struct s2_insn d;
	uint64_t st;

	r.gpr[0] = 0x1111111111111111ull;
	d = dec64("8a 20"); /* mov ah, [rax] */
	assert_int_equal(s2_x86_complete(&d, &r, 0xab, &st), 0);
	assert_int_equal(r.gpr[0], 0x111111111111ab11ull);
	assert_int_equal(r.rip, 0x1002);
	d = dec64("8b 08"); /* mov ecx, [rax] */
	r.gpr[1] = ~0ull;
	s2_x86_complete(&d, &r, 0x80000000ull, &st);
	assert_int_equal(r.gpr[1], 0x80000000ull);
	d = dec64("66 8b 08"); /* mov cx, [rax] */
	s2_x86_complete(&d, &r, 0xbeef, &st);
	assert_int_equal(r.gpr[1], 0x8000beefull);
	d = dec64("48 0f be 08"); /* movsx rcx, byte [rax] */
	s2_x86_complete(&d, &r, 0x80, &st);
	assert_int_equal(r.gpr[1], 0xffffffffffffff80ull);
	d = dec64("48 63 08"); /* movsxd rcx, dword [rax] */
	s2_x86_complete(&d, &r, 0xfffffffe, &st);
	assert_int_equal(r.gpr[1], (uint64_t)-2);
	d = dec64("c7 00 ff ff ff ff"); /* mov dword [rax], -1 */
	assert_int_equal(s2_x86_complete(&d, &r, 0, &st), 1);
	assert_int_equal(st, 0xffffffffull);
	d = dec64("83 28 05"); /* sub dword [rax], 5 */
	r.rflags = 0;
	assert_int_equal(s2_x86_complete(&d, &r, 3, &st), 1);
	assert_int_equal(st, 0xfffffffeull);
	assert_int_equal(r.rflags & 0x8d5, 0x91); /* CF AF SF; not PF ZF OF */
	d = dec64("39 08");			  /* cmp [rax], ecx */
	r.gpr[1] = 7;
	assert_int_equal(s2_x86_complete(&d, &r, 7, &st), 0);
	assert_int_equal(r.rflags & 0x8d5, 0x44); /* ZF PF */
	d = dec64("87 08");			  /* xchg [rax], ecx */
	r.gpr[1] = 0x1234;
	assert_int_equal(s2_x86_complete(&d, &r, 0x5678, &st), 1);
	assert_int_equal(st, 0x1234);
	assert_int_equal(r.gpr[1], 0x5678);
	d = dec64("f3 ab"); /* rep stosd */
	r.rip = 0x1000;
	r.gpr[0] = 0xaabbccdd;
	r.gpr[1] = 2;
	r.gpr[7] = 0x100;
	assert_int_equal(s2_x86_complete(&d, &r, 0, &st), 1);
	assert_int_equal(st, 0xaabbccdd);
	assert_int_equal(r.gpr[7], 0x104);
	assert_int_equal(r.gpr[1], 1);
	assert_int_equal(r.rip, 0x1000);
	assert_int_equal(s2_x86_complete(&d, &r, 0, &st), 1);
	assert_int_equal(r.gpr[1], 0);
	assert_int_equal(r.rip, 0x1002);
	assert_int_equal(s2_x86_complete(&d, &r, 0, &st), -EINVAL);
}

/* The CLI's view: both readings, side by side. */
static void test_show(void **state)
{
	uint8_t b[] = { 0x89, 0x08 };
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);

	assert_int_equal(s2_insn_show(f, S2_SHOW_X86_64, b, sizeof(b), 0), 0);
	fclose(f);
	assert_non_null(strstr(buf, "capstone: mov dword ptr [rax], ecx"));
	assert_non_null(strstr(buf, "s2mmu:    mov store 4B r1 [r0 +0]"));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known),
		cmocka_unit_test(test_complete),
		cmocka_unit_test(test_show),
		cmocka_unit_test(test_diff_generated_64),
		cmocka_unit_test(test_diff_generated_32),
		cmocka_unit_test(test_diff_random_64),
		cmocka_unit_test(test_diff_random_32),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
