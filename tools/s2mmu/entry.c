// SPDX-License-Identifier: MIT
/*
 * Every field of one second-stage entry, per format, written from the
 * manuals (Intel SDM vol. 3C "EPT Translation Mechanism" and "EPT
 * Misconfigurations"; AMD APM vol. 2 "Nested Paging" and the long-mode page
 * table formats; Arm ARM VMSAv8-64 stage-2 descriptors; RISC-V privileged
 * spec "Two-Stage Address Translation") and from docs/fmt-*.md for what the
 * library puts in the bits hardware ignores (software bits, frozen and MMIO
 * values). Nothing here includes fmt/: the tool is a second opinion on what
 * the library writes. What the formats share is data (fmt_descs[]: the
 * library's special values, the kept non-present leaf, the software bits,
 * what hardware ignores) read by absent_decode() and sw_bits(); each
 * format's function decodes only the encodings its hardware defines.
 */
#include <stdarg.h>
#include <string.h>

#include "s2mmu-tool.h"

#define BIT(n) (1ull << (n))
#define BITS(v, hi, lo) (((v) >> (lo)) & ((hi) - (lo) == 63 ? ~0ull : BIT((hi) - (lo) + 1) - 1))
#define GENMASK(hi, lo) ((~0ull >> (63 - (hi))) & ~(BIT(lo) - 1))

static const struct {
	const char *name;
	int fmt;
} fmt_names[] = {
	{ "x86-ept", S2_FMT_X86_EPT },	 { "ept", S2_FMT_X86_EPT },
	{ "x86-npt", S2_FMT_X86_NPT },	 { "npt", S2_FMT_X86_NPT },
	{ "arm64-s2", S2_FMT_ARM64_S2 }, { "arm64", S2_FMT_ARM64_S2 },
	{ "riscv-g", S2_FMT_RISCV_G },	 { "riscv", S2_FMT_RISCV_G },
};

int tool_fmt_by_name(const char *name)
{
	for (size_t i = 0; i < sizeof(fmt_names) / sizeof(fmt_names[0]); i++)
		if (!strcmp(name, fmt_names[i].name))
			return fmt_names[i].fmt;
	return 0;
}

const char *tool_fmt_name(int fmt)
{
	for (size_t i = 0; i < sizeof(fmt_names) / sizeof(fmt_names[0]); i++)
		if (fmt_names[i].fmt == fmt)
			return fmt_names[i].name;
	return "?";
}

static const char *const flag_names[] = { "ad", "mbec", "sve", "fwb", "hd", "xnx", "lpa2", "pbmt" };
#define NR_FLAGS (sizeof(flag_names) / sizeof(flag_names[0]))

int tool_parse_flags(const char *s, unsigned *out, const char **bad)
{
	unsigned f = 0;

	while (*s) {
		size_t n = strcspn(s, ",");
		unsigned i;

		for (i = 0; i < NR_FLAGS; i++)
			if (strlen(flag_names[i]) == n && !strncmp(s, flag_names[i], n))
				break;
		if (n && i == NR_FLAGS) {
			*bad = s;
			return -1;
		}
		if (n)
			f |= 1u << i;
		s += n;
		if (*s == ',')
			s++;
	}
	*out = f;
	return 0;
}

void tool_flags_str(unsigned flags, char *buf, size_t len)
{
	size_t at = 0;

	buf[0] = 0;
	for (unsigned i = 0; i < NR_FLAGS && at < len; i++)
		if (flags & (1u << i))
			at += (size_t)snprintf(buf + at, len - at, "%s%s", at ? "," : "",
					       flag_names[i]);
}

const char *geom_init(struct geom *g)
{
	switch (g->fmt) {
	case S2_FMT_X86_EPT:
	case S2_FMT_X86_NPT:
		g->page_shift = 12;
		g->bits_per_level = 9;
		if (!g->levels)
			g->levels = g->gpa_bits > 48 ? 5 : 4;
		if (g->levels != 4 && g->levels != 5)
			return "x86 walks have 4 or 5 levels";
		g->gpa_bits = g->levels == 4 ? 48 : 57;
		g->root_entries = 512;
		return NULL;
	case S2_FMT_RISCV_G:
		g->page_shift = 12;
		g->bits_per_level = 9;
		if (!g->levels)
			g->levels = g->gpa_bits <= 41 ? 3 : g->gpa_bits <= 50 ? 4 : 5;
		if (g->levels < 3 || g->levels > 5)
			return "G-stage walks have 3 (Sv39x4), 4 (Sv48x4) or 5 (Sv57x4) levels";
		g->gpa_bits = 41 + 9 * (g->levels - 3);
		g->root_entries = 2048; /* the x4 modes: two more bits at the root */
		return NULL;
	case S2_FMT_ARM64_S2: {
		unsigned ps = g->page_shift ? g->page_shift : 12, bpl, root_bits;

		if (ps != 12 && ps != 14 && ps != 16)
			return "the arm64 granule is 4096, 16384 or 65536";
		bpl = ps - 3;
		if (g->gpa_bits < 25 || g->gpa_bits > 52)
			return "arm64 IPA sizes are 25..52 bits";
		if (!g->levels) {
			unsigned need = g->gpa_bits - ps;

			g->levels = need > 4 ? (need - 4 + bpl - 1) / bpl : 1;
			if (g->levels < 2)
				g->levels = 2;
		}
		if (g->levels < 1 || g->levels > 5 || g->gpa_bits <= ps + (g->levels - 1) * bpl)
			return "the start level does not fit the IPA size";
		root_bits = g->gpa_bits - ps - (g->levels - 1) * bpl;
		if (root_bits > bpl + 4)
			return "the start level would need more than 16 concatenated tables";
		g->page_shift = ps;
		g->bits_per_level = bpl;
		g->root_entries = 1u << root_bits;
		return NULL;
	}
	default: return "unknown format";
	}
}

uint64_t geom_level_size(const struct geom *g, unsigned level)
{
	unsigned shift = g->page_shift + (level - 1) * g->bits_per_level;

	return shift >= 64 ? 0 : BIT(shift);
}

unsigned geom_entries(const struct geom *g, unsigned level)
{
	return level == g->levels ? g->root_entries : 1u << g->bits_per_level;
}

uint64_t geom_table_bytes(const struct geom *g, unsigned level)
{
	return (uint64_t)geom_entries(g, level) * 8;
}

const char *ent_kind_name(enum ent_kind k)
{
	static const char *const n[] = { "empty", "invalid", "non-present leaf", "frozen", "mmio",
					 "table", "leaf" };
	return n[k];
}

void prot_str(unsigned prot, char buf[8])
{
	buf[0] = (prot & S2_PROT_R) ? 'r' : '-';
	buf[1] = (prot & S2_PROT_W) ? 'w' : '-';
	buf[2] = (prot & S2_PROT_X) ? 'x' : '-';
	buf[3] = (prot & S2_PROT_XU) ? 'u' : '-';
	buf[4] = 0;
}

void ent_add(unsigned *nf, struct ent_field *f, const char *name, unsigned hi, unsigned lo,
	     uint64_t v, const char *fmt, ...)
{
	va_list ap;

	if (*nf >= ENT_MAX_FIELDS)
		return;
	f += (*nf)++;
	f->name = name;
	f->hi = hi;
	f->lo = lo;
	f->value = v;
	va_start(ap, fmt);
	vsnprintf(f->meaning, sizeof(f->meaning), fmt, ap);
	va_end(ap);
}

void ent_problem(unsigned *np, char (*p)[112], const char *fmt, ...)
{
	va_list ap;

	if (*np >= ENT_MAX_PROBLEMS)
		return;
	va_start(ap, fmt);
	vsnprintf(p[(*np)++], 112, fmt, ap);
	va_end(ap);
}

#define ADD(name, hi, lo, ...) ent_add(&e->nf, e->f, name, hi, lo, BITS(v, hi, lo), __VA_ARGS__)
#define PROBLEM(...) ent_problem(&e->np, e->problem, __VA_ARGS__)

static const char *yes(uint64_t b)
{
	return b ? "set" : "clear";
}

/* The software-bit rules every format shares (docs/format-contract.md): a
 * writable leaf is MMU-writable, an MMU-writable one host-writable. */
static void check_sw_bits(struct entry *e)
{
	if ((e->prot & S2_PROT_W) && !(e->prot & S2_PROT_MMU_WRITABLE))
		PROBLEM("inconsistent: writable without the MMU-writable software bit");
	if ((e->prot & S2_PROT_MMU_WRITABLE) && !(e->prot & S2_PROT_HOST_WRITABLE))
		PROBLEM("inconsistent: MMU-writable without host-writable");
}

/* The address field of a leaf: bits below the leaf size must be 0. */
static void check_leaf_align(struct entry *e, unsigned low_ok)
{
	uint64_t below = e->addr & (e->size - 1) & ~(BIT(low_ok) - 1);

	if (below)
		PROBLEM("reserved: address bits below the %s leaf size set (%#llx)",
			e->size >= BIT(30) ? "1G+" :
			e->size >= BIT(21) ? "large" :
					     "page",
			(unsigned long long)below);
}

/*
 * The library's MMIO value (docs/mmio.md): the format's pattern in bits 11:0
 * (@what says what hardware makes of it), the memslot generation from bit 12
 * up to @hi, masked to the VM's kvm_vm_params.mmio_gen_bits (20 unless set,
 * at most 40). The entry's place in the table names its gfn; the library
 * writes MMIO entries at level 1 only.
 */
static void mmio_value(struct entry *e, uint64_t v, unsigned L, unsigned hi, const char *what)
{
	e->kind = ENT_MMIO;
	e->mmio_gen = BITS(v, hi, 12);
	ADD("mmio", 11, 0, "%s", what);
	ADD("gen", hi, 12, "memslot generation %#llx (its low mmio_gen_bits bits)",
	    (unsigned long long)e->mmio_gen);
	if (e->mmio_gen >> 40)
		PROBLEM("inconsistent: MMIO generation wider than 40 bits (mmio_gen_bits <= 40)");
	if (L != 1)
		PROBLEM("inconsistent: the library writes MMIO entries at level 1 only");
}

/* ------------------------------------------------- the formats, as data */

struct fmt_desc;
typedef void decode_fn(const struct fmt_desc *d, const struct geom *g, uint64_t v, unsigned L,
		       struct entry *e);

/*
 * One row per format: what the library writes beside the hardware's own
 * encodings (docs/fmt-*.md: the frozen and MMIO values, a non-present leaf
 * that keeps its address, the two software bits) and what the hardware
 * makes of a non-present entry. absent_decode() and sw_bit() read it for
 * every format; each format's decode function keeps only the encodings its
 * hardware defines, which the formats do not share.
 */
struct fmt_desc {
	int fmt;
	decode_fn *decode;
	const char *absent;	 /* "not present": what hardware calls an absent entry */
	const char *ignored;	 /* what it does with the other bits */
	unsigned ignored_lo;	 /* lowest of those bits */
	unsigned frozen;	 /* FMT_FROZEN, bits 11:0 */
	const char *frozen_what; /* its meaning */
	unsigned chain_hi;	 /* top bit of the table address it chains */
	unsigned mmio;		 /* the MMIO value, bits 11:0 */
	const char *mmio_what;	 /* its meaning */
	unsigned mmio_hi;	 /* top bit of its generation field */
	unsigned keep;		 /* bit set in a non-present leaf kept by the library (0: none) */
	const char *keep_name;
	const char *oa_name;	  /* the output address field of a leaf */
	unsigned oa_hi, oa_lo;	  /* oa_lo < 12: a page number (RISC-V PPN) */
	unsigned sw_host, sw_mmu; /* software bits: host-writable, MMU-writable */
	const char *sw;		  /* the hardware's name for the bits they are in */
};

/* A leaf's output address from the format's address field. */
static uint64_t desc_oa(const struct fmt_desc *d, uint64_t v)
{
	if (d->oa_lo < 12)
		return BITS(v, d->oa_hi, d->oa_lo) << 12;
	return v & GENMASK(d->oa_hi, d->oa_lo);
}

/* A non-present entry: 0, or one of the library's values, or nothing it writes. */
static void absent_decode(const struct fmt_desc *d, const struct geom *g, uint64_t v, unsigned L,
			  struct entry *e)
{
	if (!v) {
		e->kind = ENT_EMPTY;
	} else if ((v & 0xfff) == d->frozen) {
		e->kind = ENT_FROZEN;
		e->addr = v & GENMASK(d->chain_hi, 12);
		ADD("frozen", 11, 0, "%s", d->frozen_what);
		ADD("chain", d->chain_hi, 12, "next unlinked table %#llx (0: none)",
		    (unsigned long long)e->addr);
	} else if ((v & 0xfff) == d->mmio) {
		mmio_value(e, v, L, d->mmio_hi, d->mmio_what);
	} else if (d->keep && (v & BIT(d->keep))) {
		e->kind = ENT_NOLEAF;
		e->addr = desc_oa(d, v);
		e->size = geom_level_size(g, L);
		ADD(d->keep_name, d->keep, d->keep,
		    "set: a leaf that grants nothing, kept by the library");
		ADD(d->oa_name, d->oa_hi, d->oa_lo, "output address %#llx",
		    (unsigned long long)e->addr);
	} else {
		e->kind = ENT_INVALID;
		ADD("ignored", 63, d->ignored_lo, "%s", d->ignored);
		PROBLEM("%s, but neither 0 nor a value the library writes", d->absent);
	}
}

/* The host-writable (@mmu false) or MMU-writable software bit, named. */
static void sw_bit(const struct fmt_desc *d, uint64_t v, bool mmu, struct entry *e)
{
	unsigned b = mmu ? d->sw_mmu : d->sw_host;

	if (mmu)
		ADD("MMU-writable", b, b, "%s: MMU may make it writable: %s", d->sw,
		    yes(v & BIT(b)));
	else
		ADD("host-writable", b, b, "%s: host mapping writable: %s", d->sw, yes(v & BIT(b)));
}

/* Both software bits of a leaf, named, and what they grant. */
static void sw_bits(const struct fmt_desc *d, uint64_t v, struct entry *e)
{
	sw_bit(d, v, false, e);
	sw_bit(d, v, true, e);
	e->prot |= (v & BIT(d->sw_host) ? S2_PROT_HOST_WRITABLE : 0) |
		   (v & BIT(d->sw_mmu) ? S2_PROT_MMU_WRITABLE : 0);
}

/* ------------------------------------------------------------------ EPT */

static const char *ept_mt(unsigned mt)
{
	static const char *const n[8] = { "UC", "WC", "reserved(2)", "reserved(3)",
					  "WT", "WP", "WB",	     "reserved(7)" };
	return n[mt & 7];
}

static void ept_decode(const struct fmt_desc *d, const struct geom *g, uint64_t v, unsigned L,
		       struct entry *e)
{
	bool mbec = g->flags & TF_MBEC, ad = g->flags & TF_AD;
	bool r = v & BIT(0), w = v & BIT(1), x = v & BIT(2), xu = v & BIT(10);
	bool ps = v & BIT(7);
	bool leaf = L == 1 || (ps && L <= 3);

	ADD("R", 0, 0, "read %s", yes(r));
	ADD("W", 1, 1, "write %s", yes(w));
	ADD("X", 2, 2, mbec ? "supervisor-mode execute %s" : "execute %s", yes(x));

	if (!r && !w && !x && !(mbec && xu)) {
		/* Not present to the CPU; the library's own values. */
		uint64_t saved = BITS(v, 54, 52);

		if (v == BIT(63)) {
			/* A TD's direct root: KVM's SHADOW_NONPRESENT_VALUE. */
			e->kind = ENT_EMPTY;
			ADD("suppress-#VE", 63, 63, "a TD's non-present value: suppress #VE");
		} else if (v && (v & 0xfff) != d->frozen && !xu && saved) {
			e->kind = ENT_NOLEAF;
			e->addr = desc_oa(d, v);
			e->size = geom_level_size(g, L);
			ADD("saved", 54, 52, "access-tracked leaf: saved XU/X/R %c%c%c",
			    (saved & 4) ? 'u' : '-', (saved & 2) ? 'x' : '-',
			    (saved & 1) ? 'r' : '-');
			ADD(d->oa_name, d->oa_hi, d->oa_lo, "output address %#llx",
			    (unsigned long long)e->addr);
			sw_bit(d, v, false, e);
			sw_bit(d, v, true, e);
		} else {
			absent_decode(d, g, v, L, e);
		}
		return;
	}
	if (w && !r) {
		if ((v & 0xfff) == d->mmio) {
			mmio_value(e, v, L, d->mmio_hi, d->mmio_what);
			if (v & GENMASK(63, 57))
				PROBLEM("reserved: MMIO value with bits 63:57 set");
			return;
		}
		PROBLEM("misconfiguration: W without R");
	}
	if (leaf) {
		unsigned mt = BITS(v, 5, 3);

		e->kind = ENT_LEAF;
		e->size = geom_level_size(g, L);
		e->addr = v & GENMASK(51, 12);
		e->prot = (r ? S2_PROT_R : 0) | (w ? S2_PROT_W : 0);
		if (mbec)
			e->prot |= (x ? S2_PROT_X : 0) | (xu ? S2_PROT_XU : 0);
		else if (x)
			e->prot |= S2_PROT_X | S2_PROT_XU;
		e->mt = ept_mt(mt);
		ADD("MT", 5, 3, "memory type %u: %s", mt, e->mt);
		if (mt == 2 || mt == 3 || mt == 7)
			PROBLEM("misconfiguration: reserved memory type %u", mt);
		ADD("IPAT", 6, 6, "ignore guest PAT: %s", yes(v & BIT(6)));
		ADD("PS", 7, 7, L == 1 ? "ignored at level 1" : "page size: %s (a large leaf)",
		    yes(ps));
		ADD("A", 8, 8, ad ? "accessed: %s" : "accessed: %s (A/D off: CPU never writes it)",
		    yes(v & BIT(8)));
		ADD("D", 9, 9, ad ? "dirty: %s" : "dirty: %s (A/D off: CPU never writes it)",
		    yes(v & BIT(9)));
		if (ad)
			e->prot |= (v & BIT(8) ? S2_PROT_ACCESSED : 0) |
				   (v & BIT(9) ? S2_PROT_DIRTY : 0);
		else
			e->prot |= S2_PROT_ACCESSED | (w ? S2_PROT_DIRTY : 0);
		ADD("XU", 10, 10, mbec ? "user-mode execute: %s" : "ignored without MBEC (%s)",
		    yes(xu));
		ADD("ign11", 11, 11, "ignored (%s)", yes(v & BIT(11)));
		ADD("addr", 51, 12, "output address %#llx, %llu KiB leaf",
		    (unsigned long long)e->addr, (unsigned long long)(e->size >> 10));
		check_leaf_align(e, 12);
		ADD("saved", 54, 52, "access-tracking save area (0 in a present leaf)");
		if (BITS(v, 54, 52))
			PROBLEM("inconsistent: access-tracking bits 54:52 set in a present leaf");
	} else {
		e->kind = ENT_TABLE;
		e->addr = v & GENMASK(51, 12);
		e->prot = (r ? S2_PROT_R : 0) | (w ? S2_PROT_W : 0) | (x ? S2_PROT_X : 0);
		ADD("rsvd", 6, 3, "reserved in a table entry (%#llx)",
		    (unsigned long long)BITS(v, 6, 3));
		if (BITS(v, 6, 3))
			PROBLEM("misconfiguration: reserved bits 6:3 set in a table entry");
		ADD("PS", 7, 7, L >= 4 ? "reserved at level %u (%s)" : "0: table (level %u, %s)", L,
		    yes(ps));
		if (ps)
			PROBLEM("misconfiguration: PS set at level %u, where no leaf may be", L);
		ADD("A", 8, 8, "accessed: %s", yes(v & BIT(8)));
		ADD("ign9", 9, 9, "ignored (%s)", yes(v & BIT(9)));
		ADD("XU", 10, 10,
		    mbec ? "user-mode execute below: %s" : "ignored without MBEC (%s)", yes(xu));
		ADD("ign11", 11, 11, "ignored (%s)", yes(v & BIT(11)));
		ADD("addr", 51, 12, "next table %#llx", (unsigned long long)e->addr);
		if (!r || !w || !x)
			PROBLEM("inconsistent: the library's table entries grant RWX (this one %c%c%c)",
				r ? 'r' : '-', w ? 'w' : '-', x ? 'x' : '-');
		if (BITS(v, 63, 52))
			PROBLEM("inconsistent: the library writes 0 in bits 63:52 of a table entry");
	}
	ADD("ign56", 56, 55, "ignored");
	ADD("HLAT", 58, 57, "verify-guest-paging / paging-write (HLAT only)");
	sw_bit(d, v, false, e);
	ADD("SSS", 60, 60, "supervisor shadow stack (EPTP[7] only): %s", yes(v & BIT(60)));
	ADD("SPP", 61, 61, "sub-page write permissions (SPP only): %s", yes(v & BIT(61)));
	sw_bit(d, v, true, e);
	ADD("SVE", 63, 63, "suppress #VE: %s", yes(v & BIT(63)));
	if (e->kind == ENT_LEAF) {
		e->prot |= (v & BIT(d->sw_host) ? S2_PROT_HOST_WRITABLE : 0) |
			   (v & BIT(d->sw_mmu) ? S2_PROT_MMU_WRITABLE : 0);
		if (BITS(v, 58, 55) || (v & GENMASK(61, 60)))
			PROBLEM("inconsistent: bits the library leaves 0 are set (%#llx)",
				(unsigned long long)(v & (GENMASK(58, 55) | GENMASK(61, 60))));
		if (x && !r && !w)
			PROBLEM("note: execute-only; needs IA32_VMX_EPT_VPID_CAP bit 0");
		check_sw_bits(e);
	}
}

/* ------------------------------------------------------------------ NPT */

static void npt_decode(const struct fmt_desc *d, const struct geom *g, uint64_t v, unsigned L,
		       struct entry *e)
{
	bool p = v & BIT(0), ps = v & BIT(7), us = v & BIT(2);
	bool leaf = L == 1 || (ps && L <= 3);
	/* Power-on PAT: PA0..PA7 = WB, WT, UC-, UC, WB, WT, UC-, UC. */
	static const char *const pat[8] = { "WB", "WT", "UC-", "UC", "WB", "WT", "UC-", "UC" };

	ADD("P", 0, 0, "present: %s", yes(p));
	if (!p) {
		absent_decode(d, g, v, L, e);
		return;
	}
	if ((v & 0xffe) == 0x00a) {
		/* The reserved-bit MMIO form (docs/fmt-x86-npt.md): bits 51:M
		 * set, M the host's MAXPHYADDR, the generation below them. */
		unsigned m = 52;

		while (m > 12 && (v & BIT(m - 1)))
			m--;
		mmio_value(e, v, L, m > 12 ? m - 1 : 12,
			   "0x00b: the library's MMIO value, reserved-bit form (P=1)");
		if (m == 52) {
			PROBLEM("reserved-bit MMIO form without bit 51 set: a present entry to the CPU");
		} else {
			ADD("rsvd", 51, m,
			    "set: reserved where MAXPHYADDR <= %u (reserved-bit NPF)", m);
			if (m < 32)
				PROBLEM("inconsistent: reserved bits from bit %u (host_pa_bits >= 32)",
					m);
		}
		if (v & GENMASK(63, 52))
			PROBLEM("inconsistent: MMIO value with bits 63:52 set");
		return;
	}
	ADD("R/W", 1, 1, "write: %s", yes(v & BIT(1)));
	ADD("U/S", 2, 2, "user: %s (nested walks are user accesses)", yes(us));
	if (!us)
		PROBLEM("inconsistent: U/S clear; every nested access faults");
	ADD("PWT", 3, 3, "%s", yes(v & BIT(3)));
	ADD("PCD", 4, 4, "%s", yes(v & BIT(4)));
	ADD("A", 5, 5, "accessed: %s", yes(v & BIT(5)));
	if (leaf) {
		unsigned patbit = L == 1 ? 7 : 12;
		unsigned idx = ((unsigned)BITS(v, patbit, patbit) << 2) | (unsigned)BITS(v, 4, 3);

		e->kind = ENT_LEAF;
		e->size = geom_level_size(g, L);
		e->addr = v & GENMASK(51, 12) & ~(L > 1 ? BIT(12) : 0);
		e->mt = pat[idx];
		e->prot = S2_PROT_R | (v & BIT(1) ? S2_PROT_W : 0) |
			  (v & BIT(63) ? 0 : S2_PROT_X | S2_PROT_XU) |
			  (v & BIT(5) ? S2_PROT_ACCESSED : 0) | (v & BIT(6) ? S2_PROT_DIRTY : 0);
		ADD("D", 6, 6, "dirty: %s", yes(v & BIT(6)));
		if (L == 1)
			ADD("PAT", 7, 7, "PAT index bit 2: %s", yes(v & BIT(7)));
		else
			ADD("PS", 7, 7, "page size: set (%s leaf)", L == 2 ? "2 MiB" : "1 GiB");
		ADD("G", 8, 8, "global: %s (ignored in nested walks)", yes(v & BIT(8)));
		sw_bits(d, v, e);
		ADD("AVL11", 11, 11, "available (%s)", yes(v & BIT(11)));
		if (L > 1)
			ADD("PAT", 12, 12, "PAT index bit 2: %s", yes(v & BIT(12)));
		ADD("memtype", 4, 3, "PAT entry %u with the power-on PAT: %s", idx, e->mt);
		if (idx >= 4)
			PROBLEM("inconsistent: the library never sets a PAT bit");
		ADD("addr", 51, 12, "output address %#llx, %llu KiB leaf",
		    (unsigned long long)e->addr, (unsigned long long)(e->size >> 10));
		check_leaf_align(e, L > 1 ? 13 : 12);
		check_sw_bits(e);
	} else {
		e->kind = ENT_TABLE;
		e->addr = v & GENMASK(51, 12);
		e->prot = S2_PROT_R | (v & BIT(1) ? S2_PROT_W : 0) | (v & BIT(63) ? 0 : S2_PROT_X);
		ADD("ign6", 6, 6, "ignored in a table entry (%s)", yes(v & BIT(6)));
		ADD("PS", 7, 7, L >= 4 ? "reserved at level %u (%s)" : "0: table (level %u, %s)", L,
		    yes(ps));
		if (ps)
			PROBLEM("reserved: PS set at level %u", L);
		ADD("G", 8, 8,
		    L >= 4 ? "reserved at level %u on AMD (%s)" : "ignored (level %u, %s)", L,
		    yes(v & BIT(8)));
		if (L >= 4 && (v & BIT(8)))
			PROBLEM("reserved: G set at level %u", L);
		ADD("AVL", 11, 9, "available (%#llx)", (unsigned long long)BITS(v, 11, 9));
		ADD("addr", 51, 12, "next table %#llx", (unsigned long long)e->addr);
		/* A (bit 5) is the walker's: the CPU sets it in the table
		 * entries of every nested walk (seen in QEMU's images). */
		if (!(v & BIT(1)) || (v & GENMASK(11, 3) & ~BIT(5)) || (v & BIT(63)))
			PROBLEM("inconsistent: the library's table entries are 0x7 | address, "
				"with A the walker's");
	}
	ADD("avail", 62, 52, "available (%#llx)", (unsigned long long)BITS(v, 62, 52));
	if (BITS(v, 62, 52))
		PROBLEM("inconsistent: the library leaves bits 62:52 clear");
	ADD("NX", 63, 63, "no execute: %s", yes(v & BIT(63)));
}

/* ---------------------------------------------------------------- arm64 */

static const char *a64_cache(unsigned c)
{
	static const char *const n[4] = { "?", "non-cacheable", "write-through", "write-back" };
	return n[c & 3];
}

static const char *a64_memattr(const struct geom *g, unsigned ma, struct entry *e, char *buf,
			       size_t len)
{
	static const char *const dev[4] = { "Device-nGnRnE", "Device-nGnRE", "Device-nGRE",
					    "Device-GRE" };

	if (g->flags & TF_FWB) {
		if (!(ma & 4)) {
			if (ma & 8)
				PROBLEM("reserved: MemAttr %#x with FWB", ma);
			snprintf(buf, len, "%s", dev[ma & 3]);
			return (ma & 3) ? "DEVICE" : "UC";
		}
		switch (ma & 3) {
		case 1: snprintf(buf, len, "Normal non-cacheable (FWB)"); return "WC";
		case 2: snprintf(buf, len, "Normal write-back, forced (FWB)"); return "WB";
		case 3: snprintf(buf, len, "stage 1 decides (FWB)"); return "WT";
		default:
			PROBLEM("reserved: MemAttr %#x with FWB", ma);
			snprintf(buf, len, "reserved");
			return "?";
		}
	}
	if (!(ma >> 2)) {
		snprintf(buf, len, "%s", dev[ma & 3]);
		return (ma & 3) ? "DEVICE" : "UC";
	}
	if (!(ma & 3)) {
		PROBLEM("reserved: MemAttr %#x (normal outer, inner 00)", ma);
		snprintf(buf, len, "reserved");
		return "?";
	}
	snprintf(buf, len, "Normal, outer %s, inner %s", a64_cache(ma >> 2), a64_cache(ma));
	if ((ma >> 2) == 1 || (ma & 3) == 1)
		return "WC";
	return ma == 0xf ? "WB" : "WT";
}

/* May a block sit at our level @L (hw level 4 - L)? */
static bool a64_block_ok(const struct geom *g, unsigned L)
{
	bool lpa2 = g->flags & TF_LPA2;

	if (L == 2)
		return true;
	if (L == 3)
		return g->page_shift == 12 || lpa2;
	if (L == 4)
		return g->page_shift == 12 && lpa2;
	return false;
}

/* Output or next-table address, with the LPA/LPA2 high bits. */
static uint64_t a64_addr(const struct geom *g, uint64_t v)
{
	uint64_t a = v & GENMASK(47, g->page_shift);

	if (g->flags & TF_LPA2) {
		if (g->page_shift == 16)
			a |= BITS(v, 15, 12) << 48;
		else
			a |= (v & GENMASK(49, 48)) | (BITS(v, 9, 8) << 50);
	}
	return a;
}

static void a64_decode(const struct fmt_desc *d, const struct geom *g, uint64_t v, unsigned L,
		       struct entry *e)
{
	bool lpa2_sh = (g->flags & TF_LPA2) && g->page_shift != 16;
	unsigned hw = 4 - L;

	ADD("valid", 0, 0, "%s", yes(v & 1));
	if (!(v & 1)) {
		absent_decode(d, g, v, L, e);
		return;
	}
	if (!(v & 2) && !(L > 1 && a64_block_ok(g, L))) {
		e->kind = ENT_INVALID;
		ADD("type", 1, 1, "0b01 at hw level %d: no block allowed here (translation fault)",
		    (int)hw);
		PROBLEM("reserved: block descriptor at hw level %d", (int)hw);
		return;
	}
	if (L == 1 || !(v & 2)) {
		unsigned ma = BITS(v, 5, 2), ap = BITS(v, 7, 6), xn = BITS(v, 54, 53);
		char mbuf[48];
		static const char *const apn[4] = { "no access", "read-only", "write-only",
						    "read/write" };

		e->kind = ENT_LEAF;
		e->size = geom_level_size(g, L);
		e->addr = a64_addr(g, v);
		ADD("type", 1, 1, L == 1 ? "0b11: page (hw level 3)" : "0b01: block (hw level %d)",
		    (int)hw);
		e->mt = a64_memattr(g, ma, e, mbuf, sizeof(mbuf));
		ADD("MemAttr", 5, 2, "%#x: %s", ma, mbuf);
		ADD("S2AP", 7, 6, "%s", apn[ap]);
		e->prot |= (ap & 1 ? S2_PROT_R : 0) | (ap & 2 ? S2_PROT_W | S2_PROT_DIRTY : 0);
		if (lpa2_sh) {
			ADD("OA[51:50]", 9, 8, "output address bits 51:50 (LPA2)");
		} else {
			static const char *const shn[4] = { "non-shareable", "reserved",
							    "outer shareable", "inner shareable" };
			ADD("SH", 9, 8, "%s", shn[BITS(v, 9, 8)]);
			if (BITS(v, 9, 8) == 1)
				PROBLEM("reserved: SH 0b01");
		}
		ADD("AF", 10, 10, "access flag: %s", yes(v & BIT(10)));
		if (v & BIT(10))
			e->prot |= S2_PROT_ACCESSED;
		ADD("rsvd11", 11, 11, "RES0 at stage 2 (%s)", yes(v & BIT(11)));
		if (v & BIT(11))
			PROBLEM("inconsistent: bit 11 is RES0 at stage 2 here");
		if (g->page_shift == 16)
			ADD("OA[51:48]", 15, 12,
			    g->flags & TF_LPA2 ? "output address bits 51:48 (LPA)" :
						 "RES0 without LPA");
		ADD("OA", 49, g->page_shift, "output address %#llx, %llu KiB leaf",
		    (unsigned long long)e->addr, (unsigned long long)(e->size >> 10));
		check_leaf_align(e, g->page_shift);
		if (!(g->flags & TF_LPA2) && BITS(v, 49, 48))
			PROBLEM("reserved: OA bits 49:48 set without LPA2");
		if (g->page_shift == 16 && !(g->flags & TF_LPA2) && BITS(v, 15, 12))
			PROBLEM("reserved: bits 15:12 set without LPA");
		ADD("rsvd50", 50, 50, "RES0 (%s)", yes(v & BIT(50)));
		ADD("DBM", 51, 51,
		    g->flags & TF_HD ? "dirty bit modifier: %s (writable-clean)" :
				       "dirty bit modifier: %s (HD off: ignored)",
		    yes(v & BIT(51)));
		if ((g->flags & TF_HD) && (v & BIT(51)))
			e->prot |= S2_PROT_W;
		ADD("Contiguous", 52, 52, "%s", yes(v & BIT(52)));
		if (v & BIT(52))
			PROBLEM("inconsistent: the library never sets the contiguous hint");
		if (g->flags & TF_XNX) {
			static const char *const xnn[4] = { "EL1 and EL0 execute", "PXN: EL0 only",
							    "no execute", "UXN: EL1 only" };
			ADD("XN", 54, 53, "%s (FEAT_XNX)", xnn[xn]);
			e->prot |= (xn == 0 || xn == 3 ? S2_PROT_X : 0) |
				   (xn == 0 || xn == 1 ? S2_PROT_XU : 0);
		} else {
			ADD("XN", 54, 53, "%s", xn & 2 ? "no execute" : "execute");
			if (!(xn & 2))
				e->prot |= S2_PROT_X | S2_PROT_XU;
		}
		sw_bits(d, v, e);
		ADD("sw", 58, 57, "software, unused by the library (%#llx)",
		    (unsigned long long)BITS(v, 58, 57));
		ADD("PBHA", 62, 59, "ignored (page-based hardware attributes)");
		ADD("ign63", 63, 63, "ignored (%s)", yes(v & BIT(63)));
		check_sw_bits(e);
	} else {
		e->kind = ENT_TABLE;
		e->addr = a64_addr(g, v);
		e->prot = S2_PROT_RWX;
		ADD("type", 1, 1, "0b11: table (hw level %d)", (int)hw);
		ADD("ign", 7, 2, "ignored in a table descriptor (%#llx)",
		    (unsigned long long)BITS(v, 7, 2));
		if (lpa2_sh)
			ADD("NLTA[51:50]", 9, 8, "next-level table bits 51:50 (LPA2)");
		ADD("ign", 11, 10, "ignored (%#llx)", (unsigned long long)BITS(v, 11, 10));
		ADD("NLTA", 47, g->page_shift, "next table %#llx", (unsigned long long)e->addr);
		ADD("attrs", 63, 59, "table attributes: RES0/ignored at stage 2 (%#llx)",
		    (unsigned long long)BITS(v, 63, 59));
		if (e->addr & (geom_table_bytes(g, L - 1) - 1))
			PROBLEM("reserved: next table not aligned to its size");
		if ((v & ~(GENMASK(47, g->page_shift) | 3)) &
		    ~((g->flags & TF_LPA2) ?
			      (g->page_shift == 16 ? GENMASK(15, 12) :
						     GENMASK(49, 48) | GENMASK(9, 8)) :
			      0))
			PROBLEM("inconsistent: the library's table descriptors are 0b11 | address");
	}
}

/* --------------------------------------------------------------- RISC-V */

static void rv_decode(const struct fmt_desc *d, const struct geom *g, uint64_t v, unsigned L,
		      struct entry *e)
{
	bool V = v & 1, R = v & 2, W = v & 4, X = v & 8, U = v & 16;
	unsigned pbmt = BITS(v, 62, 61);
	static const char *const pbn[4] = { "PMA", "NC", "IO", "reserved" };

	ADD("V", 0, 0, "valid: %s", yes(V));
	if (!V) {
		absent_decode(d, g, v, L, e);
		return;
	}
	ADD("R", 1, 1, "read: %s", yes(R));
	ADD("W", 2, 2, "write: %s", yes(W));
	ADD("X", 3, 3, "execute: %s", yes(X));
	ADD("U", 4, 4, "user: %s", yes(U));
	ADD("G", 5, 5, "global: %s (unused at G-stage)", yes(v & BIT(5)));
	ADD("A", 6, 6, "accessed: %s", yes(v & BIT(6)));
	ADD("D", 7, 7, "dirty: %s", yes(v & BIT(7)));
	e->addr = BITS(v, 53, 10) << 12;
	if (R || W || X) {
		e->kind = ENT_LEAF;
		e->size = geom_level_size(g, L);
		e->prot = (R ? S2_PROT_R : 0) | (W ? S2_PROT_W : 0) |
			  (X ? S2_PROT_X | S2_PROT_XU : 0) | (v & BIT(6) ? S2_PROT_ACCESSED : 0) |
			  (v & BIT(7) ? S2_PROT_DIRTY : 0);
		e->mt = (g->flags & TF_PBMT) ? (pbmt == 0 ? "WB" : pbmt == 1 ? "WC" : "UC") : "WB";
		if (W && !R)
			PROBLEM("reserved: W without R");
		if (!U)
			PROBLEM("inconsistent: U clear; every G-stage access faults");
		if (v & BIT(5))
			PROBLEM("inconsistent: G set in a G-stage leaf");
		sw_bits(d, v, e);
		ADD("PPN", 53, 10, "output address %#llx, %llu KiB leaf",
		    (unsigned long long)e->addr, (unsigned long long)(e->size >> 10));
		if (e->addr & (e->size - 1))
			PROBLEM("reserved: misaligned superpage (PPN bits below the leaf size set)");
		if (!(g->flags & TF_AD) && (!(v & BIT(6)) || (W && !(v & BIT(7)))))
			PROBLEM("note: A or D clear without Svadu: the access faults (Svade)");
		check_sw_bits(e);
	} else {
		e->kind = ENT_TABLE;
		e->prot = S2_PROT_RWX;
		ADD("RSW", 9, 8, "software (%#llx)", (unsigned long long)BITS(v, 9, 8));
		ADD("PPN", 53, 10, "next table %#llx", (unsigned long long)e->addr);
		if (L == 1)
			PROBLEM("reserved: a pointer at the last level (page fault)");
		if (v & (BIT(4) | BIT(5) | BIT(6) | BIT(7)))
			PROBLEM("reserved: U, G, A or D set in a non-leaf entry");
		if (pbmt || (v & BIT(63)))
			PROBLEM("reserved: PBMT or N set in a non-leaf entry");
	}
	ADD("rsvd", 60, 54, "reserved (%#llx)", (unsigned long long)BITS(v, 60, 54));
	if (BITS(v, 60, 54))
		PROBLEM("reserved: bits 60:54 set");
	ADD("PBMT", 62, 61, (g->flags & TF_PBMT) ? "Svpbmt: %s" : "reserved without Svpbmt (%s)",
	    pbn[pbmt]);
	if (e->kind == ENT_LEAF && (pbmt == 3 || (pbmt && !(g->flags & TF_PBMT))))
		PROBLEM("reserved: PBMT %u", pbmt);
	ADD("N", 63, 63, "NAPOT: %s (Svnapot, unused by the library)", yes(v & BIT(63)));
	if (e->kind == ENT_LEAF && (v & BIT(63)))
		PROBLEM("reserved: N set (Svnapot not used)");
}

static const struct fmt_desc fmt_descs[] = {
	{
		.fmt = S2_FMT_X86_EPT,
		.decode = ept_decode,
		.absent = "not present",
		.ignored = "not present: the CPU ignores the other bits",
		.ignored_lo = 3,
		.frozen = 0x9a0,
		.frozen_what = "0x9a0: the library's frozen value",
		.chain_hi = 51,
		.mmio = 0x002,
		.mmio_what = "0x002 (W without R: EPT misconfiguration)",
		.mmio_hi = 56,
		.oa_name = "addr",
		.oa_hi = 51,
		.oa_lo = 12,
		.sw_host = 59,
		.sw_mmu = 62,
		.sw = "software",
	},
	{
		.fmt = S2_FMT_X86_NPT,
		.decode = npt_decode,
		.absent = "not present",
		.ignored = "not present: the CPU ignores the other bits",
		.ignored_lo = 1,
		.frozen = 0x7e0,
		.frozen_what = "0x7e0: the library's frozen value",
		.chain_hi = 51,
		.mmio = 0x00a,
		.mmio_what = "0x00a: the library's MMIO value (not present)",
		.mmio_hi = 56,
		.keep = 2,
		.keep_name = "U/S",
		.oa_name = "addr",
		.oa_hi = 51,
		.oa_lo = 12,
		.sw_host = 9,
		.sw_mmu = 10,
		.sw = "software (AVL)",
	},
	{
		.fmt = S2_FMT_ARM64_S2,
		.decode = a64_decode,
		.absent = "invalid",
		.ignored = "invalid descriptor: the other bits are ignored",
		.ignored_lo = 1,
		.frozen = 0x5a0,
		.frozen_what = "0x5a0: the library's frozen value (break-before-make)",
		.chain_hi = 47,
		.mmio = 0x0c2,
		.mmio_what = "0x0c2: the library's MMIO value (invalid descriptor)",
		.mmio_hi = 51,
		.oa_name = "OA",
		.oa_hi = 47,
		.oa_lo = 12,
		.sw_host = 55,
		.sw_mmu = 56,
		.sw = "software",
	},
	{
		.fmt = S2_FMT_RISCV_G,
		.decode = rv_decode,
		.absent = "not valid",
		.ignored = "not valid: the hart ignores the other bits",
		.ignored_lo = 1,
		.frozen = 0x7e0,
		.frozen_what = "0x7e0: the library's frozen value",
		.chain_hi = 55,
		.mmio = 0x00a,
		.mmio_what = "0x00a: the library's MMIO value (not valid)",
		.mmio_hi = 58,
		.keep = 4,
		.keep_name = "U",
		.oa_name = "PPN",
		.oa_hi = 53,
		.oa_lo = 10,
		.sw_host = 8,
		.sw_mmu = 9,
		.sw = "software (RSW)",
	},
};

void entry_decode(const struct geom *g, uint64_t v, unsigned level, struct entry *e)
{
	memset(e, 0, sizeof(*e));
	e->raw = v;
	e->level = level;
	e->mt = "";
	for (size_t i = 0; i < sizeof(fmt_descs) / sizeof(fmt_descs[0]); i++)
		if (fmt_descs[i].fmt == g->fmt)
			fmt_descs[i].decode(&fmt_descs[i], g, v, level, e);
}
