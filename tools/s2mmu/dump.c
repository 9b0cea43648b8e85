// SPDX-License-Identifier: MIT
/* s2mmu dump: the mappings of tables inside a raw physical-memory image. */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "s2mmu-tool.h"

static const char dump_help[] =
	"usage: s2mmu dump --fmt F --root HPA --image FILE [--image-base HPA]\n"
	"                  [--range GPA-GPA] [--flags LIST] [--granule N] [--gpa-bits N]\n"
	"                  [--levels N] [--ignore-ad] [--json]\n"
	"       s2mmu dump --image FILE --eptp V | --ncr3 V | --vttbr V --vtcr V | --hgatp V\n"
	"\n"
	"Walks the second-stage tables inside FILE, a raw image of physical memory\n"
	"(QEMU's pmemsave or dump-guest-memory -z none, a hosted VM's snapshot) whose\n"
	"first byte is at --image-base (default 0), and prints the mappings coalesced\n"
	"into runs (gpa range -> hpa range, leaf size and count, permissions, memory\n"
	"type), the library's frozen and MMIO entries, counts per level and every\n"
	"malformed thing (a table outside the image, a reserved bit, a table reached\n"
	"twice). Ranges are half-open [start, end).\n"
	"\n"
	"  --fmt F          x86-ept, x86-npt, arm64-s2, riscv-g\n"
	"  --root HPA       physical address of the root table\n"
	"  --eptp/--ncr3/--vttbr/--hgatp V   take root and walk from the register\n"
	"                   (--fmt follows); arm64 also needs --vtcr V\n"
	"  --gpa-bits N     guest-physical width (default: 48; RISC-V 50), picks the walk\n"
	"  --levels N       walk length (default: from --gpa-bits)\n"
	"  --range A-B      only gpas in [A, B)\n"
	"  --flags, --granule   as for decode\n"
	"  --ignore-ad      leave accessed and dirty out (they do not split runs):\n"
	"                   to compare tables whose A/D bits hardware set\n"
	"  --json           one JSON document\n"
	"\n"
	"exit status: 0 well-formed, 1 something malformed was found, 2 usage error,\n"
	"3 the image could not be read.\n";

struct dump {
	struct out *o;
	const struct geom *g;
};

static const char *size_name(uint64_t bytes, char *buf, size_t len)
{
	if (bytes >= 1ull << 40)
		snprintf(buf, len, "%" PRIu64 "T", bytes >> 40);
	else if (bytes >= 1ull << 30)
		snprintf(buf, len, "%" PRIu64 "G", bytes >> 30);
	else if (bytes >= 1ull << 20)
		snprintf(buf, len, "%" PRIu64 "M", bytes >> 20);
	else
		snprintf(buf, len, "%" PRIu64 "K", bytes >> 10);
	return buf;
}

static void on_run(void *arg, const struct walk_run *r)
{
	struct dump *d = arg;
	struct out *o = d->o;
	char prot[8], sz[16];

	prot_str(r->prot, prot);
	size_name(geom_level_size(d->g, r->level), sz, sizeof(sz));
	if (o->json) {
		out_obj(o, NULL);
		out_hex(o, "gpa", r->gpa);
		out_hex(o, "gpa_end", r->gpa + r->bytes);
		out_hex(o, "hpa", r->hpa);
		out_hex(o, "hpa_end", r->hpa + r->bytes);
		out_num(o, "level", r->level);
		out_str(o, "leaf_size", sz);
		out_num(o, "leaves", r->leaves);
		out_str(o, "prot", prot);
		out_str(o, "memtype", r->mt);
		out_bool(o, "accessed", r->prot & S2_PROT_ACCESSED);
		out_bool(o, "dirty", r->prot & S2_PROT_DIRTY);
		out_bool(o, "host_writable", r->prot & S2_PROT_HOST_WRITABLE);
		out_bool(o, "mmu_writable", r->prot & S2_PROT_MMU_WRITABLE);
		out_end_obj(o);
		return;
	}
	fprintf(o->f,
		"gpa 0x%012" PRIx64 "-0x%012" PRIx64 " -> hpa 0x%012" PRIx64 "-0x%012" PRIx64
		"  %4s x%-6" PRIu64 " %s %-3s%s%s%s%s\n",
		r->gpa, r->gpa + r->bytes, r->hpa, r->hpa + r->bytes, sz, r->leaves, prot, r->mt,
		r->prot & S2_PROT_ACCESSED ? " A" : "", r->prot & S2_PROT_DIRTY ? " D" : "",
		r->prot & S2_PROT_HOST_WRITABLE ? " hw" : "",
		r->prot & S2_PROT_MMU_WRITABLE ? " mw" : "");
}

/* Problems and special entries are collected in the text output as they come
 * and, in JSON, in arrays after the runs: keep them in a small list. */
struct note {
	uint64_t gpa, pa;
	unsigned level;
	char what[112];
};

struct notes {
	struct note n[256];
	unsigned count;
	uint64_t dropped;
};

static struct notes problems, specials;

static void keep(struct notes *ns, uint64_t gpa, unsigned level, uint64_t pa, const char *what)
{
	if (ns->count == sizeof(ns->n) / sizeof(ns->n[0])) {
		ns->dropped++;
		return;
	}
	ns->n[ns->count++] = (struct note){ .gpa = gpa, .pa = pa, .level = level };
	snprintf(ns->n[ns->count - 1].what, sizeof(ns->n[0].what), "%s", what);
}

static void on_problem(void *arg, uint64_t gpa, unsigned level, uint64_t pa, const char *what)
{
	(void)arg;
	keep(&problems, gpa, level, pa, what);
}

static void on_special(void *arg, uint64_t gpa, const struct entry *e)
{
	char what[112];

	(void)arg;
	if (e->kind == ENT_MMIO)
		snprintf(what, sizeof(what), "mmio generation %#" PRIx64, e->mmio_gen);
	else if (e->kind == ENT_FROZEN)
		snprintf(what, sizeof(what), "frozen");
	else
		snprintf(what, sizeof(what), "non-present leaf keeping %#" PRIx64, e->addr);
	keep(&specials, gpa, e->level, e->raw, what);
}

static void print_notes(struct out *o, const char *name, const struct notes *ns, bool pa)
{
	if (o->json) {
		out_arr(o, name);
		for (unsigned i = 0; i < ns->count; i++) {
			out_obj(o, NULL);
			out_hex(o, "gpa", ns->n[i].gpa);
			out_num(o, "level", ns->n[i].level);
			out_hex(o, pa ? "pa" : "value", ns->n[i].pa);
			out_str(o, "what", ns->n[i].what);
			out_end_obj(o);
		}
		out_end_arr(o);
		out_num(o, pa ? "problems_not_listed" : "special_not_listed", ns->dropped);
		return;
	}
	for (unsigned i = 0; i < ns->count; i++)
		fprintf(o->f, "%s gpa 0x%012" PRIx64 " level %u %s %#" PRIx64 ": %s\n",
			pa ? "!" : "*", ns->n[i].gpa, ns->n[i].level, pa ? "at pa" : "value",
			ns->n[i].pa, ns->n[i].what);
	if (ns->dropped)
		fprintf(o->f, "%s ... and %" PRIu64 " more\n", pa ? "!" : "*", ns->dropped);
}

bool dump_ignore_ad;

int dump_image(struct out *o, const struct geom *g, const struct image *img, uint64_t start,
	       uint64_t end, const char *image_name)
{
	struct dump d = { .o = o, .g = g };
	struct walk_ops ops = { .run = on_run,
				.problem = on_problem,
				.special = on_special,
				.arg = &d,
				.show_progress = true,
				.ignore_ad = dump_ignore_ad };
	struct walk_stats st;
	char flags[64];

	memset(&problems, 0, sizeof(problems));
	memset(&specials, 0, sizeof(specials));
	tool_flags_str(g->flags, flags, sizeof(flags));
	out_obj(o, NULL);
	out_str(o, "fmt", tool_fmt_name(g->fmt));
	out_num(o, "levels", g->levels);
	out_num(o, "gpa_bits", g->gpa_bits);
	out_hex(o, "root", g->root);
	out_str(o, "flags", flags);
	out_str(o, "image", image_name);
	out_hex(o, "image_base", img->base);
	out_hex(o, "image_size", img->size);
	if (!o->json)
		fprintf(o->f,
			"%s, %u levels, %u-bit gpa, root %#" PRIx64 "%s%s; image %s: %#" PRIx64
			" bytes at %#" PRIx64 "\n",
			tool_fmt_name(g->fmt), g->levels, g->gpa_bits, g->root, *flags ? ", " : "",
			flags, image_name, img->size, img->base);
	out_arr(o, "runs");
	walk_image(g, img, start, end, &ops, &st);
	out_end_arr(o);
	print_notes(o, "special", &specials, false);
	print_notes(o, "problems", &problems, true);
	if (o->json) {
		out_obj(o, "per_level");
		for (unsigned l = g->levels; l >= 1; l--) {
			char name[16];

			snprintf(name, sizeof(name), "%u", l);
			out_obj(o, name);
			out_num(o, "tables", st.tables[l]);
			out_num(o, "leaves", st.leaves[l]);
			out_num(o, "special", st.special[l]);
			out_end_obj(o);
		}
		out_end_obj(o);
		out_num(o, "runs_total", st.runs);
		out_hex(o, "bytes_mapped", st.bytes_mapped);
		out_num(o, "problems_total", st.problems);
		out_end_obj(o);
	} else {
		fprintf(o->f, "level  tables  leaves  special\n");
		for (unsigned l = g->levels; l >= 1; l--)
			fprintf(o->f, "%5u %7" PRIu64 " %7" PRIu64 " %8" PRIu64 "\n", l,
				st.tables[l], st.leaves[l], st.special[l]);
		fprintf(o->f, "%" PRIu64 " runs, %#" PRIx64 " bytes mapped, %" PRIu64 " problems\n",
			st.runs, st.bytes_mapped, st.problems);
	}
	return st.problems ? EXIT_FOUND : EXIT_OK;
}

int cmd_dump(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "fmt", required_argument, NULL, 'f' },
		{ "flags", required_argument, NULL, 'F' },
		{ "granule", required_argument, NULL, 'g' },
		{ "gpa-bits", required_argument, NULL, 'b' },
		{ "levels", required_argument, NULL, 'L' },
		{ "root", required_argument, NULL, 'r' },
		{ "image", required_argument, NULL, 'i' },
		{ "image-base", required_argument, NULL, 'B' },
		{ "range", required_argument, NULL, 'R' },
		{ "eptp", required_argument, NULL, 1000 + REG_EPTP },
		{ "ncr3", required_argument, NULL, 1000 + REG_NCR3 },
		{ "vttbr", required_argument, NULL, 1000 + REG_VTTBR },
		{ "vtcr", required_argument, NULL, 1000 + REG_VTCR },
		{ "hgatp", required_argument, NULL, 1000 + REG_HGATP },
		{ "json", no_argument, NULL, 'j' },
		{ "ignore-ad", no_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct geom g = { 0 };
	uint64_t start = 0, end = ~0ull, v;
	bool json = false, have_root = false;
	const char *file = NULL, *why;
	struct image img = { 0 };
	struct reg_info regs[8];
	bool have_reg[8] = { false };
	struct stat sb;
	struct out o;
	int c, fd, rc;
	unsigned flags_given = 0;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		int r = geom_option("dump", c, optarg, &g);

		if (r < 0)
			return EXIT_USAGE;
		if (!r) {
			if (c == 'F')
				flags_given = g.flags;
			continue;
		}
		switch (c) {
		case 'r':
			if (!parse_u64(optarg, &g.root)) {
				usage_error("dump", "bad root '%s'", optarg);
				return EXIT_USAGE;
			}
			have_root = true;
			break;
		case 'i': file = optarg; break;
		case 'A': dump_ignore_ad = true; break;
		case 'B':
			if (!parse_u64(optarg, &img.base)) {
				usage_error("dump", "bad image base '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'R':
			if (!parse_range(optarg, &start, &end)) {
				usage_error("dump", "bad range '%s' (START-END, START < END)",
					    optarg);
				return EXIT_USAGE;
			}
			break;
		case 'j': json = true; break;
		case 'h': fputs(dump_help, stdout); return EXIT_OK;
		default:
			if (c > 1000 && c <= 1000 + REG_HGATP) {
				if (!parse_u64(optarg, &v)) {
					usage_error("dump", "bad register value '%s'", optarg);
					return EXIT_USAGE;
				}
				reg_decode(c - 1000, v, &regs[c - 1000]);
				have_reg[c - 1000] = true;
				break;
			}
			usage_error("dump", "unknown option '%s'", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		usage_error("dump", "unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	/* A register value gives the format, the root and the walk. */
	for (int k = REG_EPTP; k <= REG_HGATP; k++) {
		static const int fmt_of[] = { [REG_EPTP] = S2_FMT_X86_EPT,
					      [REG_NCR3] = S2_FMT_X86_NPT,
					      [REG_VTTBR] = S2_FMT_ARM64_S2,
					      [REG_VTCR] = S2_FMT_ARM64_S2,
					      [REG_HGATP] = S2_FMT_RISCV_G };
		struct reg_info *r = &regs[k];

		if (!have_reg[k])
			continue;
		if (tool_problems_serious(r->np, r->problem)) {
			usage_error("dump", "%s %#" PRIx64 ": %s", reg_name(k), r->raw,
				    r->problem[0]);
			return EXIT_USAGE;
		}
		if (g.fmt && g.fmt != fmt_of[k]) {
			usage_error("dump", "--%s does not go with --fmt %s", reg_name(k),
				    tool_fmt_name(g.fmt));
			return EXIT_USAGE;
		}
		g.fmt = fmt_of[k];
		g.flags |= r->flags;
		if (k != REG_VTCR) {
			g.root = r->root;
			have_root = true;
		}
		if (r->levels)
			g.levels = r->levels;
		if (r->gpa_bits)
			g.gpa_bits = r->gpa_bits;
		if (k == REG_VTCR)
			g.page_shift = r->page_shift;
	}
	g.flags |= flags_given;
	if (have_reg[REG_VTTBR] != have_reg[REG_VTCR]) {
		usage_error("dump", "--vttbr and --vtcr go together");
		return EXIT_USAGE;
	}
	if (!g.fmt || !have_root || !file) {
		usage_error("dump", "--fmt, --root (or a register) and --image are needed");
		return EXIT_USAGE;
	}
	if (!g.gpa_bits)
		g.gpa_bits = g.fmt == S2_FMT_RISCV_G ? 50 : 48;
	if ((why = geom_init(&g))) {
		usage_error("dump", "%s", why);
		return EXIT_USAGE;
	}
	fd = open(file, O_RDONLY);
	if (fd < 0 || fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
		fprintf(stderr, "s2mmu dump: cannot read %s: %m\n", file);
		if (fd >= 0)
			close(fd);
		return EXIT_IO;
	}
	img.size = (uint64_t)sb.st_size;
	if (img.size) {
		img.data = mmap(NULL, (size_t)img.size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (img.data == MAP_FAILED) {
			fprintf(stderr, "s2mmu dump: cannot map %s: %m\n", file);
			close(fd);
			return EXIT_IO;
		}
	}
	close(fd);
	if (img.base + img.size < img.base) {
		usage_error("dump", "image base + size wraps around");
		return EXIT_USAGE;
	}
	out_init(&o, stdout, json);
	rc = dump_image(&o, &g, &img, start, end, file);
	if (img.size)
		munmap((void *)img.data, (size_t)img.size);
	return rc;
}
