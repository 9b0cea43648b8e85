// SPDX-License-Identifier: MIT
/*
 * Walk second-stage tables inside a raw physical-memory image, with
 * entry.c's decoder, and coalesce the leaves into runs.
 *
 * Nothing in the image is trusted: a table is read only when all of it lies
 * inside the image; a table reached a second time (a loop, or one table
 * linked twice) is reported and not entered again, so a hostile image costs
 * at most one visit per table page; the depth is the walk length.
 */
#include <stdlib.h>
#include <string.h>

#include "s2mmu-tool.h"

/* Visited tables: an open-addressing set of table addresses. */
struct seen {
	uint64_t *slot;
	size_t cap, n;
};

static bool seen_add(struct seen *s, uint64_t pa)
{
	size_t i;

	if ((s->n + 1) * 2 > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		uint64_t *n = calloc(cap, sizeof(*n));

		if (!n)
			abort();
		for (size_t j = 0; j < s->cap; j++) {
			if (!s->slot[j])
				continue;
			i = (size_t)(s->slot[j] * 0x9e3779b97f4a7c15ull >> 20) & (cap - 1);
			while (n[i])
				i = (i + 1) & (cap - 1);
			n[i] = s->slot[j];
		}
		free(s->slot);
		s->slot = n;
		s->cap = cap;
	}
	/* Addresses are stored + 1 so that a table at 0 is not the empty slot. */
	pa++;
	i = (size_t)(pa * 0x9e3779b97f4a7c15ull >> 20) & (s->cap - 1);
	while (s->slot[i]) {
		if (s->slot[i] == pa)
			return false;
		i = (i + 1) & (s->cap - 1);
	}
	s->slot[i] = pa;
	s->n++;
	return true;
}

struct walker {
	const struct geom *g;
	const struct image *img;
	const struct walk_ops *ops;
	struct walk_stats *st;
	struct seen seen;
	uint64_t start, end;
	struct walk_run run; /* pending run, run.bytes == 0: none */
	uint64_t entries;
};

static void flush_run(struct walker *w)
{
	if (!w->run.bytes)
		return;
	w->st->runs++;
	if (w->ops->run)
		w->ops->run(w->ops->arg, &w->run);
	w->run.bytes = 0;
}

static void problem(struct walker *w, uint64_t gpa, unsigned level, uint64_t pa, const char *what)
{
	w->st->problems++;
	if (w->ops->problem)
		w->ops->problem(w->ops->arg, gpa, level, pa, what);
}

static void leaf(struct walker *w, uint64_t gpa, const struct entry *e)
{
	struct walk_run *r = &w->run;
	unsigned prot = w->ops->ignore_ad ? e->prot & ~(S2_PROT_ACCESSED | S2_PROT_DIRTY) : e->prot;

	w->st->leaves[e->level]++;
	w->st->bytes_mapped += e->size;
	if (r->bytes && r->gpa + r->bytes == gpa && r->hpa + r->bytes == e->addr &&
	    r->level == e->level && r->prot == prot && !strcmp(r->mt, e->mt)) {
		r->bytes += e->size;
		r->leaves++;
		return;
	}
	flush_run(w);
	*r = (struct walk_run){ .gpa = gpa,
				.hpa = e->addr,
				.bytes = e->size,
				.level = e->level,
				.leaves = 1,
				.prot = prot,
				.mt = e->mt };
}

static void walk_table(struct walker *w, uint64_t pa, unsigned level, uint64_t base)
{
	uint64_t bytes = geom_table_bytes(w->g, level), esize = geom_level_size(w->g, level);
	unsigned n = geom_entries(w->g, level);
	const uint8_t *t;

	if (pa < w->img->base || pa - w->img->base > w->img->size ||
	    bytes > w->img->size - (pa - w->img->base)) {
		flush_run(w);
		problem(w, base, level, pa, "table outside the image");
		return;
	}
	if (!seen_add(&w->seen, pa)) {
		flush_run(w);
		problem(w, base, level, pa, "table reached twice (a loop or a shared table)");
		return;
	}
	w->st->tables[level]++;
	t = w->img->data + (pa - w->img->base);
	for (unsigned i = 0; i < n; i++) {
		uint64_t gpa = base + (uint64_t)i * esize, v;
		struct entry e;

		if (gpa >= w->end || (esize && gpa + esize <= w->start) ||
		    (esize && gpa + esize < gpa))
			continue;
		memcpy(&v, t + (size_t)i * 8, 8); /* images are little-endian */
		if (w->ops->show_progress)
			progress("dump: entries", ++w->entries, 0);
		if (!v) {
			flush_run(w);
			continue;
		}
		entry_decode(w->g, v, level, &e);
		for (unsigned p = 0; p < e.np; p++)
			if (strncmp(e.problem[p], "note:", 5))
				problem(w, gpa, level, pa + (uint64_t)i * 8, e.problem[p]);
		switch (e.kind) {
		case ENT_LEAF: leaf(w, gpa, &e); break;
		case ENT_TABLE:
			if (level == 1) {
				flush_run(w);
				break;
			}
			walk_table(w, e.addr, level - 1, gpa);
			break;
		default:
			flush_run(w);
			if (e.kind != ENT_INVALID) {
				w->st->special[level]++;
				if (w->ops->special)
					w->ops->special(w->ops->arg, gpa, &e);
			}
		}
	}
}

void walk_image(const struct geom *g, const struct image *img, uint64_t start, uint64_t end,
		const struct walk_ops *ops, struct walk_stats *st)
{
	struct walker w = { .g = g, .img = img, .ops = ops, .st = st, .start = start, .end = end };

	memset(st, 0, sizeof(*st));
	walk_table(&w, g->root, g->levels, 0);
	flush_run(&w);
	if (ops->show_progress)
		progress_end();
	free(w.seen.slot);
}
