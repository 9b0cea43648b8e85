// SPDX-License-Identifier: MIT
/* s2mmu decode: every field of entry or register values. */
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "s2mmu-tool.h"

static const char decode_help[] =
	"usage: s2mmu decode --fmt F [--level N] [--flags LIST] [--granule N] [--json] VALUE...\n"
	"       s2mmu decode --reg eptp|ncr3|vttbr|vtcr|hgatp [--json] VALUE...\n"
	"\n"
	"Names every field of each VALUE: present, leaf or table, address, permissions,\n"
	"memory type, A/D, the library's software bits, its frozen and MMIO values (with\n"
	"the MMIO entry's memslot generation), and what is reserved or inconsistent (lines starting with '!').\n"
	"\n"
	"  --fmt F        x86-ept (ept), x86-npt (npt), arm64-s2 (arm64), riscv-g (riscv)\n"
	"  --level N      level of the entry, 1 = 4 KiB leaf level (default 1; give it\n"
	"                 for table entries and large leaves)\n"
	"  --flags LIST   how the VM was created, comma-separated: ad, mbec, sve (EPT),\n"
	"                 fwb, hd, xnx, lpa2 (arm64), pbmt (RISC-V)\n"
	"  --granule N    arm64 granule: 4096 (default), 16384, 65536\n"
	"  --reg R        decode register values instead of entries\n"
	"  --json         one JSON document: {\"values\": [...]}\n"
	"\n"
	"exit status: 0 nothing reserved or inconsistent, 1 something is, 2 usage error.\n";

/* A problem that is only a remark does not change the exit status. */
static bool serious(const char *p)
{
	return strncmp(p, "note:", 5) != 0;
}

int tool_problems_serious(unsigned np, const char (*p)[112])
{
	int n = 0;

	for (unsigned i = 0; i < np; i++)
		n += serious(p[i]);
	return n;
}

static void print_entry(struct out *o, const struct geom *g, const struct entry *e)
{
	char prot[8], flags[64];

	prot_str(e->prot, prot);
	tool_flags_str(g->flags, flags, sizeof(flags));
	if (o->json) {
		out_obj(o, NULL);
		out_hex(o, "value", e->raw);
		out_str(o, "fmt", tool_fmt_name(g->fmt));
		out_num(o, "level", e->level);
		out_str(o, "kind", ent_kind_name(e->kind));
		out_bool(o, "present", e->kind == ENT_LEAF || e->kind == ENT_TABLE);
		if (e->kind == ENT_LEAF || e->kind == ENT_TABLE || e->kind == ENT_NOLEAF)
			out_hex(o, "addr", e->addr);
		if (e->kind == ENT_LEAF || e->kind == ENT_NOLEAF)
			out_hex(o, "size", e->size);
		if (e->kind == ENT_LEAF) {
			out_str(o, "prot", prot);
			out_str(o, "memtype", e->mt);
			out_bool(o, "accessed", e->prot & S2_PROT_ACCESSED);
			out_bool(o, "dirty", e->prot & S2_PROT_DIRTY);
			out_bool(o, "host_writable", e->prot & S2_PROT_HOST_WRITABLE);
			out_bool(o, "mmu_writable", e->prot & S2_PROT_MMU_WRITABLE);
		}
		if (e->kind == ENT_MMIO)
			out_hex(o, "mmio_gen", e->mmio_gen);
		out_fields(o, e->nf, e->f, e->np, e->problem);
		out_end_obj(o);
		return;
	}
	fprintf(o->f, "%s entry %#018" PRIx64 " at level %u%s%s: %s", tool_fmt_name(g->fmt), e->raw,
		e->level, *flags ? ", flags " : "", flags, ent_kind_name(e->kind));
	switch (e->kind) {
	case ENT_LEAF:
		fprintf(o->f, " %" PRIu64 " KiB -> %#" PRIx64 " %s %s%s%s%s%s\n", e->size >> 10,
			e->addr, prot, e->mt, e->prot & S2_PROT_ACCESSED ? " A" : "",
			e->prot & S2_PROT_DIRTY ? " D" : "",
			e->prot & S2_PROT_HOST_WRITABLE ? " host-writable" : "",
			e->prot & S2_PROT_MMU_WRITABLE ? " mmu-writable" : "");
		break;
	case ENT_TABLE: fprintf(o->f, " -> %#" PRIx64 "\n", e->addr); break;
	case ENT_NOLEAF: fprintf(o->f, " (keeps %#" PRIx64 ")\n", e->addr); break;
	case ENT_MMIO: fprintf(o->f, " generation %#" PRIx64 "\n", e->mmio_gen); break;
	default: fputc('\n', o->f);
	}
	out_fields(o, e->nf, e->f, e->np, e->problem);
}

static void print_reg(struct out *o, const struct reg_info *r)
{
	if (o->json) {
		out_obj(o, NULL);
		out_hex(o, "value", r->raw);
		out_str(o, "reg", reg_name(r->kind));
		if (r->kind != REG_VTCR)
			out_hex(o, "root", r->root);
		if (r->levels)
			out_num(o, "levels", r->levels);
		if (r->gpa_bits)
			out_num(o, "gpa_bits", r->gpa_bits);
		if (r->root_entries)
			out_num(o, "root_entries", r->root_entries);
		out_fields(o, r->nf, r->f, r->np, r->problem);
		out_end_obj(o);
		return;
	}
	fprintf(o->f, "%s %#018" PRIx64, reg_name(r->kind), r->raw);
	if (r->kind != REG_VTCR)
		fprintf(o->f, ": root %#" PRIx64, r->root);
	if (r->levels)
		fprintf(o->f, ", %u levels", r->levels);
	if (r->gpa_bits)
		fprintf(o->f, ", %u-bit gpa", r->gpa_bits);
	if (r->root_entries)
		fprintf(o->f, ", root of %u entries", r->root_entries);
	fputc('\n', o->f);
	out_fields(o, r->nf, r->f, r->np, r->problem);
}

int geom_option(const char *cmd, int c, const char *arg, struct geom *g)
{
	uint64_t n;
	const char *bad;

	switch (c) {
	case 'f':
		g->fmt = tool_fmt_by_name(arg);
		if (!g->fmt) {
			usage_error(cmd, "unknown format '%s'", arg);
			return -1;
		}
		return 0;
	case 'F':
		if (tool_parse_flags(arg, &g->flags, &bad)) {
			usage_error(cmd, "unknown flag in '%s'", bad);
			return -1;
		}
		return 0;
	case 'g':
		if (!parse_u64(arg, &n) || (n != 4096 && n != 16384 && n != 65536)) {
			usage_error(cmd, "bad granule '%s'", arg);
			return -1;
		}
		g->page_shift = n == 4096 ? 12 : n == 16384 ? 14 : 16;
		return 0;
	case 'b':
		if (!parse_u64(arg, &n) || n < 25 || n > 64) {
			usage_error(cmd, "bad gpa width '%s'", arg);
			return -1;
		}
		g->gpa_bits = (unsigned)n;
		return 0;
	case 'L':
		if (!parse_u64(arg, &n) || n < 1 || n > 5) {
			usage_error(cmd, "bad level count '%s'", arg);
			return -1;
		}
		g->levels = (unsigned)n;
		return 0;
	}
	return 1;
}

int cmd_decode(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "fmt", required_argument, NULL, 'f' },
		{ "level", required_argument, NULL, 'l' },
		{ "flags", required_argument, NULL, 'F' },
		{ "granule", required_argument, NULL, 'g' },
		{ "gpa-bits", required_argument, NULL, 'b' },
		{ "reg", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct geom g = { .gpa_bits = 48 };
	uint64_t level = 0, v;
	bool json = false;
	int reg = 0, c, bad = 0;
	struct out o;
	const char *why;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		int r = geom_option("decode", c, optarg, &g);

		if (r < 0)
			return EXIT_USAGE;
		if (!r)
			continue;
		switch (c) {
		case 'l':
			if (!parse_u64(optarg, &level) || level < 1 || level > 5) {
				usage_error("decode", "bad level '%s' (1..5)", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'r':
			reg = reg_by_name(optarg);
			if (!reg) {
				usage_error("decode", "unknown register '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'j': json = true; break;
		case 'h': fputs(decode_help, stdout); return EXIT_OK;
		default:
			usage_error("decode", "unknown option '%s'", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage_error("decode", "no VALUE given");
		return EXIT_USAGE;
	}
	if (!reg && !g.fmt) {
		usage_error("decode", "--fmt or --reg is needed");
		return EXIT_USAGE;
	}
	if (g.fmt == S2_FMT_RISCV_G && g.gpa_bits == 48)
		g.gpa_bits = 50;
	if (!reg) {
		if ((why = geom_init(&g))) {
			usage_error("decode", "%s", why);
			return EXIT_USAGE;
		}
		if (!level)
			level = 1;
		if (level > g.levels) {
			usage_error("decode", "level %u is above the %u-level walk",
				    (unsigned)level, g.levels);
			return EXIT_USAGE;
		}
	}
	for (int i = optind; i < argc; i++)
		if (!parse_u64(argv[i], &v)) {
			usage_error("decode", "bad value '%s'", argv[i]);
			return EXIT_USAGE;
		}
	out_init(&o, stdout, json);
	out_obj(&o, NULL);
	out_arr(&o, "values");
	for (int i = optind; i < argc; i++) {
		parse_u64(argv[i], &v);
		if (reg) {
			struct reg_info r;

			reg_decode(reg, v, &r);
			print_reg(&o, &r);
			bad += tool_problems_serious(r.np, r.problem);
		} else {
			struct entry e;

			entry_decode(&g, v, (unsigned)level, &e);
			print_entry(&o, &g, &e);
			bad += tool_problems_serious(e.np, e.problem);
		}
	}
	out_end_arr(&o);
	out_end_obj(&o);
	return bad ? EXIT_FOUND : EXIT_OK;
}
