/* SPDX-License-Identifier: MIT */
/*
 * s2mmu, the command-line tool: what its files share.
 *
 * entry.c names the fields of one entry of any format, regs.c those of the
 * register values (EPTP, nCR3, VTTBR/VTCR, hgatp); both are written from the
 * architecture manuals and the docs/fmt-*.md pages (the library's software
 * bits, frozen and MMIO values), not from fmt/, so that the tool can check
 * what the library writes. walk.c walks tables inside a memory image with
 * them; decode.c, dump.c, replay.c and insn.c are the subcommands; out.c
 * prints text or JSON. insn.c links capstone (through tests/decode/show.c);
 * the library never does.
 */
#ifndef S2MMU_TOOL_H
#define S2MMU_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "s2mmu/prot.h"

/* Exit codes (docs/tools.md). */
enum {
	EXIT_OK = 0,	  /* done, nothing wrong found */
	EXIT_FOUND = 1,	  /* done, and something is wrong: a reserved bit, a
			      malformed table, a failed check or expectation */
	EXIT_USAGE = 2,	  /* bad command line or bad trace syntax */
	EXIT_IO = 3,	  /* a file could not be read or written */
	EXIT_LIBRARY = 4, /* the library refused something it should not have
			      (replay: a call failed without an expectation) */
};

/* ---- geometry of a walk, per format ---- */

/* Flags a format reads entries with (a subset of the library's S2_FMTF_*,
 * spelled on the command line as --flags ad,mbec,...). */
enum {
	TF_AD = 1u << 0,   /* hardware A/D (EPTP[6], VTCR.HA, Svadu) */
	TF_MBEC = 1u << 1, /* EPT mode-based execute control */
	TF_SVE = 1u << 2,  /* EPT suppress-#VE used */
	TF_FWB = 1u << 3,  /* arm64 FEAT_S2FWB */
	TF_HD = 1u << 4,   /* arm64 VTCR.HD (DBM) */
	TF_XNX = 1u << 5,  /* arm64 FEAT_XNX */
	TF_LPA2 = 1u << 6, /* arm64 52-bit (LPA2 on 4K/16K, LPA on 64K) */
	TF_PBMT = 1u << 7, /* RISC-V Svpbmt */
};

struct geom {
	int fmt;	     /* S2_FMT_* */
	unsigned flags;	     /* TF_* */
	unsigned page_shift; /* 12, 14 or 16 (arm64 granule) */
	unsigned bits_per_level;
	unsigned levels; /* walk length; the root is at level `levels` */
	unsigned gpa_bits;
	unsigned root_entries; /* entries of the root (concatenated tables) */
	uint64_t root;	       /* physical address of the root */
};

/* Name <-> S2_FMT_*; 0 when unknown. */
int tool_fmt_by_name(const char *name);
const char *tool_fmt_name(int fmt);
/* Parse "ad,mbec" into TF_*; -1 on an unknown name (which *bad points at). */
int tool_parse_flags(const char *s, unsigned *out, const char **bad);
void tool_flags_str(unsigned flags, char *buf, size_t len);

/*
 * Fill @g's walk geometry from fmt, flags, page_shift and gpa_bits (levels
 * 0 = derive). Returns 0 or a message saying what is unsupported.
 */
const char *geom_init(struct geom *g);
/* Bytes one entry at @level maps. */
uint64_t geom_level_size(const struct geom *g, unsigned level);
/* Entries of a table at @level. */
unsigned geom_entries(const struct geom *g, unsigned level);
/* Bytes of a table at @level (the root can be several pages, or less than one). */
uint64_t geom_table_bytes(const struct geom *g, unsigned level);

/* ---- one entry ---- */

enum ent_kind {
	ENT_EMPTY,   /* 0 */
	ENT_INVALID, /* not present, nothing the library writes */
	ENT_NOLEAF,  /* not present but keeps a leaf (no permissions, or
			    EPT access tracking) */
	ENT_FROZEN,  /* the library's frozen value */
	ENT_MMIO,    /* the library's MMIO value */
	ENT_TABLE,   /* points at the next table */
	ENT_LEAF,    /* maps memory */
};

#define ENT_MAX_FIELDS 40
#define ENT_MAX_PROBLEMS 12

struct ent_field {
	const char *name;
	unsigned hi, lo;
	uint64_t value;
	char meaning[80];
};

struct entry {
	uint64_t raw;
	unsigned level;
	enum ent_kind kind;
	uint64_t addr;	   /* output address (leaf) or next table (table) */
	uint64_t size;	   /* bytes a leaf maps */
	unsigned prot;	   /* S2_PROT_* the entry grants, with A/D and software bits */
	const char *mt;	   /* memory type name of a leaf */
	uint64_t mmio_gen; /* ENT_MMIO: the memslot generation it carries */
	unsigned nf, np;
	struct ent_field f[ENT_MAX_FIELDS];
	char problem[ENT_MAX_PROBLEMS][112];
};

/* Decode @v as an entry at @level of the walk @g describes. */
void entry_decode(const struct geom *g, uint64_t v, unsigned level, struct entry *e);
const char *ent_kind_name(enum ent_kind k);
/* "rwx" style string of S2_PROT_R/W/X/XU, 5 bytes. */
void prot_str(unsigned prot, char buf[8]);

/* ---- registers ---- */

enum reg_kind { REG_EPTP = 1, REG_NCR3, REG_VTTBR, REG_VTCR, REG_HGATP };

struct reg_info {
	enum reg_kind kind;
	uint64_t raw;
	unsigned nf, np;
	struct ent_field f[ENT_MAX_FIELDS];
	char problem[ENT_MAX_PROBLEMS][112];
	/* What the register says about the walk (where it does). */
	uint64_t root;
	unsigned levels, page_shift, gpa_bits, root_entries, flags;
	int start_hw_level; /* arm64 */
};

int reg_by_name(const char *name); /* REG_* or 0 */
const char *reg_name(enum reg_kind k);
void reg_decode(enum reg_kind k, uint64_t v, struct reg_info *r);

/* Shared by entry.c and regs.c. */
void ent_add(unsigned *nf, struct ent_field *f, const char *name, unsigned hi, unsigned lo,
	     uint64_t v, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
void ent_problem(unsigned *np, char (*p)[112], const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- output ---- */

struct out {
	FILE *f;
	bool json;
	int depth;
	bool first[16];
};

void out_init(struct out *o, FILE *f, bool json);
/* JSON only: open/close an object or array (name NULL inside arrays). */
void out_obj(struct out *o, const char *name);
void out_arr(struct out *o, const char *name);
void out_end_obj(struct out *o);
void out_end_arr(struct out *o);
/* JSON members; 64-bit values as "0x..." strings, small counts as numbers. */
void out_str(struct out *o, const char *name, const char *v);
void out_hex(struct out *o, const char *name, uint64_t v);
void out_num(struct out *o, const char *name, uint64_t v);
void out_int(struct out *o, const char *name, int64_t v);
void out_bool(struct out *o, const char *name, bool v);
void out_fields(struct out *o, unsigned nf, const struct ent_field *f, unsigned np,
		const char (*p)[112]);

/* Progress on stderr, only when stderr is a terminal. */
void progress(const char *what, uint64_t done, uint64_t total);
void progress_end(void);

/* ---- parsing ---- */
bool parse_u64(const char *s, uint64_t *out);
/* "START-END" half-open; returns false on bad syntax or START >= END. */
bool parse_range(const char *s, uint64_t *start, uint64_t *end);

/* ---- walking a memory image ---- */

struct image {
	const uint8_t *data;
	uint64_t size;
	uint64_t base; /* physical address of data[0] */
};

struct walk_run {
	uint64_t gpa, hpa, bytes; /* coalesced run */
	unsigned level;		  /* leaf level of every entry in it */
	uint64_t leaves;
	unsigned prot;
	const char *mt;
};

struct walk_stats {
	uint64_t tables[8];  /* tables visited per level */
	uint64_t leaves[8];  /* leaves per level */
	uint64_t special[8]; /* frozen, MMIO, not-present leaves */
	uint64_t problems;
	uint64_t runs;
	uint64_t bytes_mapped;
};

/* Called for every run (after coalescing), and for every problem. */
struct walk_ops {
	void (*run)(void *arg, const struct walk_run *r);
	void (*problem)(void *arg, uint64_t gpa, unsigned level, uint64_t pa, const char *what);
	void (*special)(void *arg, uint64_t gpa, const struct entry *e);
	void *arg;
	bool show_progress;
	bool ignore_ad; /* accessed and dirty neither split runs nor show */
};

/* dump --ignore-ad, replay --ignore-ad: for dump_image(). */
extern bool dump_ignore_ad;

/*
 * Walk the tables of @g (root at g->root) inside @img over gpas [start, end).
 * Every table is read from the image only; a table outside it, an entry with
 * reserved bits, a table reached twice (a loop or a shared table) is passed
 * to ops->problem and not followed. Never reads outside the image.
 */
void walk_image(const struct geom *g, const struct image *img, uint64_t start, uint64_t end,
		const struct walk_ops *ops, struct walk_stats *st);

/* --fmt/--flags/--granule/--gpa-bits/--levels (getopt values 'f' 'F' 'g'
 * 'b' 'L'): 0 taken, 1 not one of them, -1 bad (already reported). */
int geom_option(const char *cmd, int c, const char *arg, struct geom *g);
/* Problems that are not "note:" remarks. */
int tool_problems_serious(unsigned np, const char (*p)[112]);

/* Print the walk of @img (dump's output); returns EXIT_OK or EXIT_FOUND. */
int dump_image(struct out *o, const struct geom *g, const struct image *img, uint64_t start,
	       uint64_t end, const char *image_name);

int cmd_decode(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_insn(int argc, char **argv);

extern const char *tool_argv0;
void usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
