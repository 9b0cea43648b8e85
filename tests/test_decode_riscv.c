// SPDX-License-Identifier: MIT
/*
 * The RISC-V decoder (decode/riscv.c) against binutils: random encodings
 * (32-bit and compressed) and generated ones of every supported form are
 * disassembled in batches by riscv64-linux-gnu-objdump (one assembler and
 * one objdump run per batch, rv64gc + Zfh) and decoded; both must agree on
 * whether it is a supported load/store and on size, extension, direction,
 * register, base and offset. A refusal must be something objdump does not
 * print as one of those loads and stores. S2_DECODE_N sets the count per
 * part (make decode-diff). Also: htinst and the complete helper by value.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "decode/show.h"

#define BATCH 65536

static unsigned long diff_n(unsigned long dflt)
{
	const char *e = getenv("S2_DECODE_N");

	return e ? strtoul(e, NULL, 0) : dflt;
}

struct want {
	unsigned size, dir, reg, base, flags, len;
	int64_t disp;
};

/* objdump's mnemonic -> size, direction, sign, FP; false if not ours. */
static bool form_of(const char *m, struct want *w)
{
	static const struct {
		const char *name;
		unsigned size, dir, flags;
	} forms[] = {
		{ "lb", 1, S2_DIR_LOAD, S2_INSN_SIGNED },
		{ "lh", 2, S2_DIR_LOAD, S2_INSN_SIGNED },
		{ "lw", 4, S2_DIR_LOAD, S2_INSN_SIGNED },
		{ "ld", 8, S2_DIR_LOAD, 0 },
		{ "lbu", 1, S2_DIR_LOAD, 0 },
		{ "lhu", 2, S2_DIR_LOAD, 0 },
		{ "lwu", 4, S2_DIR_LOAD, 0 },
		{ "sb", 1, S2_DIR_STORE, 0 },
		{ "sh", 2, S2_DIR_STORE, 0 },
		{ "sw", 4, S2_DIR_STORE, 0 },
		{ "sd", 8, S2_DIR_STORE, 0 },
		{ "flh", 2, S2_DIR_LOAD, S2_INSN_FP },
		{ "flw", 4, S2_DIR_LOAD, S2_INSN_FP },
		{ "fld", 8, S2_DIR_LOAD, S2_INSN_FP },
		{ "fsh", 2, S2_DIR_STORE, S2_INSN_FP },
		{ "fsw", 4, S2_DIR_STORE, S2_INSN_FP },
		{ "fsd", 8, S2_DIR_STORE, S2_INSN_FP },
		{ "c.lw", 4, S2_DIR_LOAD, S2_INSN_SIGNED },
		{ "c.ld", 8, S2_DIR_LOAD, 0 },
		{ "c.sw", 4, S2_DIR_STORE, 0 },
		{ "c.sd", 8, S2_DIR_STORE, 0 },
		{ "c.fld", 8, S2_DIR_LOAD, S2_INSN_FP },
		{ "c.fsd", 8, S2_DIR_STORE, S2_INSN_FP },
		{ "c.lwsp", 4, S2_DIR_LOAD, S2_INSN_SIGNED },
		{ "c.ldsp", 8, S2_DIR_LOAD, 0 },
		{ "c.swsp", 4, S2_DIR_STORE, 0 },
		{ "c.sdsp", 8, S2_DIR_STORE, 0 },
		{ "c.fldsp", 8, S2_DIR_LOAD, S2_INSN_FP },
		{ "c.fsdsp", 8, S2_DIR_STORE, S2_INSN_FP },
	};

	for (unsigned i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		if (!strcmp(m, forms[i].name)) {
			w->size = forms[i].size;
			w->dir = forms[i].dir;
			w->flags = forms[i].flags;
			w->len = m[0] == 'c' ? 2 : 4;
			return true;
		}
	}
	return false;
}

/* "x10" or "f3" -> 10 or 3 (and the kind must match the form's). */
static bool reg_num(const char *s, bool fp, unsigned *n)
{
	char *end;

	if (s[0] != (fp ? 'f' : 'x'))
		return false;
	*n = (unsigned)strtoul(s + 1, &end, 10);
	return end != s + 1 && *n < 32;
}

/* Parses "mnemonic reg,offset(base)"; false when not a supported form. */
static bool oracle(const char *text, struct want *w)
{
	char m[32], reg[16], base[16];
	long long off;

	memset(w, 0, sizeof(*w));
	if (sscanf(text, "%31s %15[^,],%lld(%15[^)])", m, reg, &off, base) != 4)
		return false;
	if (!form_of(m, w))
		return false;
	w->disp = off;
	return reg_num(reg, w->flags & S2_INSN_FP, &w->reg) && reg_num(base, false, &w->base);
}

struct stats {
	unsigned long total, supported, refused;
};

static unsigned long compare_batch(const uint32_t *insn, size_t n, char (*text)[96],
				   struct stats *st)
{
	unsigned long bad = 0;

	assert_int_equal(s2_riscv_objdump(insn, n, text), 0);
	for (size_t i = 0; i < n && bad < 20; i++) {
		struct want w;
		struct s2_insn d;
		char desc[256];
		bool ok = oracle(text[i], &w);
		int r = s2_decode_riscv(insn[i], 0x80001000, &d);
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
			if (d.size != w.size || d.reg_size != 8 || d.count != 1)
				why = "size";
			else if (d.dir != w.dir)
				why = "direction";
			else if ((d.flags & (S2_INSN_SIGNED | S2_INSN_FP)) != w.flags)
				why = "extension or register kind";
			else if (d.reg != w.reg)
				why = "register";
			else if (d.base != w.base || d.disp != w.disp)
				why = "address";
			else if (d.len != w.len || d.next_pc != 0x80001000 + w.len)
				why = "length";
		}
		if (why) {
			bad++;
			fprintf(stderr, "riscv mismatch (%s): %0*x\n  objdump: %s\n  s2mmu:   %s\n",
				why, (insn[i] & 3) == 3 ? 8 : 4,
				(insn[i] & 3) == 3 ? insn[i] : insn[i] & 0xffff, text[i],
				r ? "refused" : s2_insn_describe(&d, desc, sizeof(desc)));
		}
	}
	return bad;
}

/* 48-bit and longer encodings (bits 4:2 = 111) are not given to the
 * assembler; the decoder must refuse them without an oracle. */
static uint32_t random_insn(uint64_t *s, struct stats *st, unsigned long *bad)
{
	for (;;) {
		uint32_t x = (uint32_t)s2_rng_next(s);
		struct s2_insn d;

		if ((x & 3) != 3)
			return x & 0xffff;
		if ((x & 0x1c) != 0x1c)
			return x;
		st->total++;
		st->refused++;
		if (s2_decode_riscv(x, 0, &d) != -ENOTSUP)
			++*bad;
	}
}

/* Every supported major opcode and compressed quadrant, random fields. */
static uint32_t generated_insn(uint64_t *s)
{
	static const uint8_t opcodes[] = { 0x03, 0x07, 0x23, 0x27 };
	uint64_t r = s2_rng_next(s);
	uint32_t x = (uint32_t)r;

	switch ((r >> 32) % 3) {
	case 0: return (x & ~0x7fu) | opcodes[(r >> 40) & 3];
	case 1: return (x & 0xfffc) | 0;  /* quadrant 0 */
	default: return (x & 0xfffc) | 2; /* quadrant 2 */
	}
}

static void run_diff(bool random_only, unsigned long n, uint64_t seed)
{
	uint32_t *insn = malloc(BATCH * sizeof(*insn));
	char(*text)[96] = malloc(BATCH * sizeof(*text));
	struct stats st = { 0 };
	unsigned long bad = 0;
	uint64_t s = seed;

	assert_non_null(insn);
	assert_non_null(text);
	while (st.total < n && !bad) {
		size_t k = n - st.total < BATCH ? n - st.total : BATCH;

		for (size_t i = 0; i < k; i++)
			insn[i] = random_only ? random_insn(&s, &st, &bad) : generated_insn(&s);
		bad += compare_batch(insn, k, text, &st);
	}
	free(insn);
	free(text);
	printf("riscv64 %s: %lu compared, %lu supported, %lu refused, %lu mismatches\n",
	       random_only ? "random" : "generated", st.total, st.supported, st.refused, bad);
	assert_int_equal(bad, 0);
	assert_true(random_only ? st.refused > st.total / 2 : st.supported > st.total / 4);
}

/* Catches: any decoder bug on a supported form (e.g. a C.LWSP offset bit
 * taken from the wrong place, C.LW not sign-extending). */
static void test_diff_generated(void **state)
{
	run_diff(false, diff_n(100000), 0x1234567887654321ull);
}

/* Catches: accepting what is not a supported form (e.g. vector loads in
 * LOAD-FP, or C.LDSP with rd = 0). */
static void test_diff_random(void **state)
{
	run_diff(true, diff_n(100000), 0x9e3779b97f4a7c15ull);
}

/* htinst and complete by value. Catches: the compressed bit of htinst
 * ignored (len 4 for a C.LW), LBU sign-extending, x0 written, FLW not
 * NaN-boxed. */
static void test_complete(void **state)
{
	struct s2_riscv_regs r = { .pc = 0x1000 };
	struct s2_insn d;
	uint64_t v;

	/* lw a0 transformed from c.lw: bit 1 clear */
	assert_int_equal(s2_decode_riscv_htinst(0x00002501, 0x1000, &d), 0);
	assert_int_equal(d.len, 2);
	assert_int_equal(d.reg, 10);
	assert_int_equal(d.size, 4);
	assert_true(d.flags & S2_INSN_HTINST);
	assert_int_equal(s2_decode_riscv_htinst(0, 0x1000, &d), -ENOTSUP);
	assert_int_equal(s2_decode_riscv_htinst(0x3000, 0x1000, &d), -ENOTSUP);
	assert_int_equal(s2_decode_riscv(0x0005c503, 0x1000, &d), 0); /* lbu x10,0(x11) */
	v = 0x80;
	assert_int_equal(s2_riscv_complete(&d, &r, &v), 0);
	assert_int_equal(r.x[10], 0x80);
	assert_int_equal(r.pc, 0x1004);
	assert_int_equal(s2_decode_riscv(0x00058503, 0x1000, &d), 0); /* lb x10,0(x11) */
	s2_riscv_complete(&d, &r, &v);
	assert_int_equal(r.x[10], 0xffffffffffffff80ull);
	assert_int_equal(s2_decode_riscv(0x00058003, 0x1000, &d), 0); /* lb x0,0(x11) */
	s2_riscv_complete(&d, &r, &v);
	assert_int_equal(r.x[0], 0);
	assert_int_equal(s2_decode_riscv(0x0005a007, 0x1000, &d), 0); /* flw f0,0(x11) */
	v = 0x3f800000;
	s2_riscv_complete(&d, &r, &v);
	assert_int_equal(r.f[0], 0xffffffff3f800000ull);
	assert_int_equal(s2_decode_riscv(0xe022, 0x1000, &d), 0); /* c.sdsp x8,0(x2) */
	r.x[8] = 0x1234;
	s2_riscv_complete(&d, &r, &v);
	assert_int_equal(v, 0x1234);
	assert_int_equal(r.pc, 0x1002);
	assert_int_equal(s2_decode_riscv(0x0005c503, 0x1000, NULL), -EINVAL);
}

static void test_show(void **state)
{
	const uint8_t b[] = { 0x03, 0xc5, 0x05, 0x00 }; /* lbu x10,0(x11) */
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);

	assert_int_equal(s2_insn_show(f, S2_SHOW_RISCV64, b, sizeof(b), 0), 0);
	fclose(f);
	assert_non_null(strstr(buf, "objdump:  lbu x10,0(x11)"));
	assert_non_null(strstr(buf, "s2mmu:    mov load 1B->8B r10 [r11 +0]"));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_complete),
		cmocka_unit_test(test_show),
		cmocka_unit_test(test_diff_generated),
		cmocka_unit_test(test_diff_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
