// SPDX-License-Identifier: MIT
/*
 * s2mmu insn: the library's instruction decoder (include/s2mmu/decode.h)
 * next to an independent disassembler, for one instruction per argument:
 * capstone for x86 and arm64, riscv64-linux-gnu-objdump for RISC-V (one run
 * for all the arguments), through tests/decode/show.c, the helpers the
 * decoder's differential tests use. Capstone is linked into this tool only,
 * never into the library.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../../tests/decode/show.h"
#include "s2mmu-tool.h"

static const char insn_help[] =
	"usage: s2mmu insn --arch A [--pc ADDR] [--json] HEX...\n"
	"\n"
	"Decodes one instruction per HEX argument with the library's MMIO decoder\n"
	"and prints it next to an independent disassembly (capstone for x86 and arm64,\n"
	"riscv64-linux-gnu-objdump for RISC-V): direction, size, extension, register(s),\n"
	"address, writeback and next pc, or why the decoder refuses it.\n"
	"\n"
	"  --arch A     x86_64, x86_32 (a 32-bit code segment), arm64, riscv64\n"
	"  --pc ADDR    address of the instruction (default 0: next pc, RIP-relative)\n"
	"  --json       one JSON document: {\"insns\": [...]}\n"
	"\n"
	"HEX is the instruction's bytes in memory order, as in a hex dump (\"48 89 08\",\n"
	"488908, 48:89:08); on arm64 and riscv64 also the instruction word as a number,\n"
	"0x-prefixed, as objdump and an exit handler print it (0xf9000020). x86 takes\n"
	"up to 15 bytes (what follows the instruction is not decoded); arm64 4, RISC-V\n"
	"2 (compressed) or 4.\n"
	"\n"
	"exit status: 0 every instruction decoded and the disassembler agrees on its\n"
	"length, 1 the decoder refused one (not a supported load/store form, or the\n"
	"bytes end before the instruction does) or the disassembler disagrees,\n"
	"2 usage error.\n";

static const struct {
	const char *name;
	enum s2_show_arch arch;
} arch_names[] = {
	{ "x86_64", S2_SHOW_X86_64 }, { "x86-64", S2_SHOW_X86_64 },   { "x86_32", S2_SHOW_X86_32 },
	{ "x86-32", S2_SHOW_X86_32 }, { "i386", S2_SHOW_X86_32 },     { "arm64", S2_SHOW_ARM64 },
	{ "aarch64", S2_SHOW_ARM64 }, { "riscv64", S2_SHOW_RISCV64 }, { "riscv", S2_SHOW_RISCV64 },
};

static const char *const canon_arch[] = { "x86_64", "x86_32", "arm64", "riscv64" };

struct one {
	uint8_t b[16];
	unsigned n;
	char oracle[128];
	unsigned oracle_len;
	int oracle_rc; /* 0, 1 invalid, -1 not run */
	int rc;	       /* the decoder's */
	struct s2_insn d;
	char problem[2][112];
	unsigned np;
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* One argument into @x's bytes; NULL or what is wrong with it. */
static const char *parse_insn(enum s2_show_arch arch, const char *s, struct one *x)
{
	bool x86 = arch == S2_SHOW_X86_64 || arch == S2_SHOW_X86_32;
	int hi = -1;

	x->n = 0;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		uint64_t w;

		if (x86)
			return "x86 takes the bytes in memory order, without 0x";
		if (!parse_u64(s, &w) || w > 0xffffffffu)
			return "not a 32-bit instruction word";
		x->n = arch == S2_SHOW_RISCV64 ? s2_riscv_insn_len((uint32_t)w) : 4;
		if (x->n == 2 && w > 0xffff)
			return "a compressed RISC-V instruction (low bits not 11) has 16 bits";
		for (unsigned i = 0; i < x->n; i++)
			x->b[i] = (uint8_t)(w >> (8 * i));
		return NULL;
	}
	for (; *s; s++) {
		int v = hexval(*s);

		if (*s == ' ' || *s == ':' || *s == '\t') {
			if (hi >= 0)
				return "an odd number of hex digits in a byte";
			continue;
		}
		if (v < 0)
			return "not hex bytes";
		if (hi < 0) {
			hi = v;
			continue;
		}
		if (x->n >= 15)
			return "more than 15 bytes";
		x->b[x->n++] = (uint8_t)(hi << 4 | v);
		hi = -1;
	}
	if (hi >= 0)
		return "an odd number of hex digits";
	if (!x->n)
		return "no bytes";
	if (arch == S2_SHOW_ARM64 && x->n != 4)
		return "an arm64 instruction has 4 bytes";
	if (arch == S2_SHOW_RISCV64 && x->n != s2_riscv_insn_len(x->b[0]))
		return "a RISC-V instruction has 2 bytes (low bits of the first byte not 11) or 4";
	return NULL;
}

static uint32_t word(const struct one *x)
{
	uint32_t w = 0;

	for (unsigned i = 0; i < 4 && i < x->n; i++)
		w |= (uint32_t)x->b[i] << (8 * i);
	return w;
}

static int decode_one(enum s2_show_arch arch, struct one *x, uint64_t pc)
{
	switch (arch) {
	case S2_SHOW_X86_64:
	case S2_SHOW_X86_32:
		return s2_decode_x86(x->b, x->n,
				     arch == S2_SHOW_X86_64 ? S2_X86_MODE_64 : S2_X86_MODE_32, pc,
				     &x->d);
	case S2_SHOW_ARM64: return s2_decode_arm64(word(x), pc, &x->d);
	default: return s2_decode_riscv(word(x), pc, &x->d);
	}
}

static const char *rc_name(int rc)
{
	switch (rc) {
	case 0: return "ok";
	case -ENOTSUP: return "ENOTSUP";
	case -EAGAIN: return "EAGAIN";
	case -EINVAL: return "EINVAL";
	default: return "?";
	}
}

static const char *rc_text(int rc)
{
	switch (rc) {
	case -ENOTSUP: return "not a supported load/store form";
	case -EAGAIN: return "the bytes end before the instruction does";
	default: return "bad arguments";
	}
}

static void out_reg(struct out *o, const char *name, unsigned r)
{
	if (r != S2_REG_NONE)
		out_num(o, name, r);
}

static void print_json(struct out *o, enum s2_show_arch arch, const struct one *x, uint64_t pc)
{
	static const char *const dir[] = { "?", "load", "store", "rmw" };
	static const char *const op[] = { "mov", "xchg", "add",	 "or",	 "and", "sub",
					  "xor", "cmp",	 "test", "stos", "movs" };
	static const char *const ext[] = { "none", "uxtw", "lsl", "sxtw", "sxtx" };
	static const char *const seg[] = { "es", "cs", "ss", "ds", "fs", "gs" };
	static const char *const flag[] = { "signed",	 "fp",	      "imm",	"high8", "reg_dst",
					    "writeback", "post",      "rep",	"lock",	 "acquire",
					    "release",	 "exclusive", "unpriv", "nt",	 "htinst" };
	const struct s2_insn *d = &x->d;
	char hex[48], dis[160];
	bool x86 = arch == S2_SHOW_X86_64 || arch == S2_SHOW_X86_32;

	for (unsigned i = 0; i < x->n; i++)
		snprintf(hex + 2 * i, sizeof(hex) - 2 * i, "%02x", x->b[i]);
	out_obj(o, NULL);
	out_str(o, "arch", canon_arch[arch]);
	out_str(o, "bytes", hex);
	out_hex(o, "pc", pc);
	out_obj(o, "oracle");
	out_str(o, "name", s2_insn_oracle_name(arch));
	out_str(o, "status", x->oracle_rc < 0 ? "not run" : x->oracle_rc ? "invalid" : "ok");
	if (!x->oracle_rc) {
		out_str(o, "text", x->oracle);
		out_num(o, "len", x->oracle_len);
	}
	out_end_obj(o);
	out_str(o, "result", rc_name(x->rc));
	if (!x->rc) {
		out_str(o, "description", s2_insn_describe(d, dis, sizeof(dis)));
		out_obj(o, "insn");
		out_str(o, "dir", d->dir <= 3 ? dir[d->dir] : "?");
		out_str(o, "op", d->op <= S2_OP_MOVS ? op[d->op] : "?");
		out_num(o, "size", d->size);
		out_num(o, "count", d->count);
		out_num(o, "reg_size", d->reg_size);
		out_reg(o, "reg", d->reg);
		if (d->count > 1)
			out_reg(o, "reg2", d->reg2);
		out_reg(o, "status_reg", d->status);
		if (d->flags & S2_INSN_IMM)
			out_hex(o, "imm", d->imm);
		if (x86 && d->base == S2_X86_RIP)
			out_str(o, "base", "rip");
		else
			out_reg(o, "base", d->base);
		out_reg(o, "index", d->index);
		if (d->index != S2_REG_NONE) {
			out_num(o, "scale", d->scale);
			if (!x86)
				out_str(o, "extend",
					d->extend <= S2_EXT_SXTX ? ext[d->extend] : "?");
		}
		out_int(o, "disp", d->disp);
		if (d->flags & S2_INSN_WRITEBACK)
			out_int(o, "wb_offset", d->wb_offset);
		if (x86) {
			out_str(o, "seg", d->seg <= S2_SEG_GS ? seg[d->seg] : "?");
			out_num(o, "addr_size", d->addr_size);
		}
		out_arr(o, "flags");
		for (unsigned i = 0; i < sizeof(flag) / sizeof(flag[0]); i++)
			if (d->flags & (1u << i))
				out_str(o, NULL, flag[i]);
		out_end_arr(o);
		out_num(o, "len", d->len);
		out_hex(o, "next_pc", d->next_pc);
		out_end_obj(o);
	}
	out_arr(o, "problems");
	for (unsigned i = 0; i < x->np; i++)
		out_str(o, NULL, x->problem[i]);
	out_end_arr(o);
	out_end_obj(o);
}

static void print_text(FILE *f, enum s2_show_arch arch, const struct one *x, uint64_t pc)
{
	char dis[160];

	fprintf(f, "%s", canon_arch[arch]);
	for (unsigned i = 0; i < x->n; i++)
		fprintf(f, " %02x", x->b[i]);
	fprintf(f, " at 0x%" PRIx64 "\n", pc);
	fprintf(f, "  %-9s ",
		strcmp(s2_insn_oracle_name(arch), "capstone") ? "objdump:" : "capstone:");
	if (x->oracle_rc < 0)
		fprintf(f, "(not run)\n");
	else if (x->oracle_rc)
		fprintf(f, "invalid%s%s\n", *x->oracle ? ": " : "", x->oracle);
	else
		fprintf(f, "%s (%u bytes)\n", x->oracle, x->oracle_len);
	if (x->rc)
		fprintf(f, "  s2mmu:    refused: %s (%s)\n", rc_text(x->rc), rc_name(x->rc));
	else
		fprintf(f, "  s2mmu:    %s\n", s2_insn_describe(&x->d, dis, sizeof(dis)));
	for (unsigned i = 0; i < x->np; i++)
		fprintf(f, "  ! %s\n", x->problem[i]);
}

/* What the two readings say that does not fit together. */
static void compare(enum s2_show_arch arch, struct one *x)
{
	if (!x->rc && x->d.len < x->n && (arch == S2_SHOW_X86_64 || arch == S2_SHOW_X86_32))
		snprintf(x->problem[x->np++], 112,
			 "note: %u byte(s) after the instruction not decoded", x->n - x->d.len);
	if (x->rc || x->oracle_rc < 0)
		return;
	if (x->oracle_rc)
		snprintf(x->problem[x->np++], 112, "%s calls it no instruction",
			 s2_insn_oracle_name(arch));
	else if (x->oracle_len != x->d.len)
		snprintf(x->problem[x->np++], 112, "%s's length %u differs from the decoder's %u",
			 s2_insn_oracle_name(arch), x->oracle_len, x->d.len);
}

int cmd_insn(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "arch", required_argument, NULL, 'a' },
		{ "pc", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int arch = -1, c, bad = 0, n;
	uint64_t pc = 0;
	bool json = false;
	struct one *xs;
	struct out o;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			arch = -1;
			for (size_t i = 0; i < sizeof(arch_names) / sizeof(arch_names[0]); i++)
				if (!strcmp(optarg, arch_names[i].name))
					arch = (int)arch_names[i].arch;
			if (arch < 0) {
				usage_error("insn", "unknown architecture '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'p':
			if (!parse_u64(optarg, &pc)) {
				usage_error("insn", "bad pc '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'j': json = true; break;
		case 'h': fputs(insn_help, stdout); return EXIT_OK;
		default:
			usage_error("insn", "unknown option '%s'", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (arch < 0) {
		usage_error("insn", "--arch is needed");
		return EXIT_USAGE;
	}
	n = argc - optind;
	if (n <= 0) {
		usage_error("insn", "no instruction given");
		return EXIT_USAGE;
	}
	xs = calloc((size_t)n, sizeof(*xs));
	if (!xs) {
		fprintf(stderr, "s2mmu insn: out of memory\n");
		return EXIT_IO;
	}
	for (int i = 0; i < n; i++) {
		const char *why = parse_insn(arch, argv[optind + i], &xs[i]);

		if (why) {
			usage_error("insn", "'%s': %s", argv[optind + i], why);
			free(xs);
			return EXIT_USAGE;
		}
	}
	if (arch == S2_SHOW_RISCV64) {
		/* One objdump run for every argument. */
		uint32_t *w = calloc((size_t)n, sizeof(*w));
		char(*t)[96] = calloc((size_t)n, sizeof(*t));
		int r = w && t ? 0 : -1;

		for (int i = 0; !r && i < n; i++)
			w[i] = word(&xs[i]);
		if (!r)
			r = s2_riscv_objdump(w, (size_t)n, t);
		for (int i = 0; i < n; i++)
			xs[i].oracle_rc =
				r ? -1 :
				    s2_riscv_oracle_text(t[i], xs[i].oracle, sizeof(xs[i].oracle),
							 &xs[i].oracle_len, w[i]);
		free(w);
		free(t);
	} else {
		for (int i = 0; i < n; i++)
			xs[i].oracle_rc = s2_insn_oracle(arch, xs[i].b, xs[i].n, pc, xs[i].oracle,
							 sizeof(xs[i].oracle), &xs[i].oracle_len);
	}
	out_init(&o, stdout, json);
	out_obj(&o, NULL);
	out_arr(&o, "insns");
	for (int i = 0; i < n; i++) {
		struct one *x = &xs[i];

		x->rc = decode_one(arch, x, pc);
		compare(arch, x);
		bad += x->rc != 0 || tool_problems_serious(x->np, x->problem);
		if (json)
			print_json(&o, arch, x, pc);
		else
			print_text(stdout, arch, x, pc);
	}
	out_end_arr(&o);
	out_end_obj(&o);
	free(xs);
	return bad ? EXIT_FOUND : EXIT_OK;
}
