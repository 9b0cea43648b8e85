// SPDX-License-Identifier: MIT
#include "fdt.h"

#include "../common/klib.h"

#define FDT_MAGIC 0xd00dfeedu
#define FDT_BEGIN_NODE 1u
#define FDT_END_NODE 2u
#define FDT_PROP 3u
#define FDT_END 9u
#define HDR 40	  /* header bytes */
#define RSVMAP 16 /* one empty memory reservation entry */

static uint32_t be32(uint32_t v)
{
	return __builtin_bswap32(v);
}

static void put_word(struct fdt *f, uint32_t v)
{
	if (HDR + RSVMAP + (f->st_len + 1) * 4 > f->cap) {
		f->err = 1;
		return;
	}
	f->st[f->st_len++] = be32(v);
}

/* Bytes padded to a word, into the structure block. */
static void put_bytes(struct fdt *f, const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i += 4) {
		uint32_t w = 0;

		for (size_t k = 0; k < 4; k++)
			w = (w << 8) | (i + k < len ? b[i + k] : 0);
		put_word(f, w);
	}
}

static uint32_t str_off(struct fdt *f, const char *name)
{
	size_t n = strlen(name) + 1;

	for (size_t o = 0; o < f->strs_len; o += strlen(f->strs + o) + 1)
		if (!memcmp(f->strs + o, name, n))
			return (uint32_t)o;
	if (f->strs_len + n > sizeof(f->strs)) {
		f->err = 1;
		return 0;
	}
	memcpy(f->strs + f->strs_len, name, n);
	f->strs_len += n;
	return (uint32_t)(f->strs_len - n);
}

void fdt_begin(struct fdt *f, void *buf, size_t cap)
{
	memset(f, 0, sizeof(*f));
	f->buf = buf;
	f->cap = cap;
	f->st = (uint32_t *)(f->buf + HDR + RSVMAP);
	f->err = cap < HDR + RSVMAP;
}

void fdt_node(struct fdt *f, const char *name)
{
	put_word(f, FDT_BEGIN_NODE);
	put_bytes(f, name, strlen(name) + 1);
}

void fdt_end_node(struct fdt *f)
{
	put_word(f, FDT_END_NODE);
}

void fdt_prop(struct fdt *f, const char *name, const void *val, size_t len)
{
	put_word(f, FDT_PROP);
	put_word(f, (uint32_t)len);
	put_word(f, str_off(f, name));
	put_bytes(f, val, len);
}

void fdt_prop_str(struct fdt *f, const char *name, const char *s)
{
	fdt_prop(f, name, s, strlen(s) + 1);
}

void fdt_prop_cells(struct fdt *f, const char *name, const uint32_t *cells, unsigned n)
{
	put_word(f, FDT_PROP);
	put_word(f, n * 4);
	put_word(f, str_off(f, name));
	for (unsigned i = 0; i < n; i++)
		put_word(f, cells[i]);
}

void fdt_prop_u32(struct fdt *f, const char *name, uint32_t v)
{
	fdt_prop_cells(f, name, &v, 1);
}

void fdt_prop_u64(struct fdt *f, const char *name, uint64_t v)
{
	uint32_t c[2] = { (uint32_t)(v >> 32), (uint32_t)v };

	fdt_prop_cells(f, name, c, 2);
}

size_t fdt_finish(struct fdt *f)
{
	uint32_t *h = (uint32_t *)f->buf;
	size_t st_bytes, total;

	put_word(f, FDT_END);
	st_bytes = f->st_len * 4;
	total = HDR + RSVMAP + st_bytes + f->strs_len;
	if (f->err || total > f->cap)
		return 0;
	memcpy(f->buf + HDR + RSVMAP + st_bytes, f->strs, f->strs_len);
	memset(f->buf + HDR, 0, RSVMAP);
	h[0] = be32(FDT_MAGIC);
	h[1] = be32((uint32_t)total);
	h[2] = be32((uint32_t)(HDR + RSVMAP));		  /* off_dt_struct */
	h[3] = be32((uint32_t)(HDR + RSVMAP + st_bytes)); /* off_dt_strings */
	h[4] = be32(HDR);				  /* off_mem_rsvmap */
	h[5] = be32(17);				  /* version */
	h[6] = be32(16);				  /* last_comp_version */
	h[7] = be32(0);					  /* boot_cpuid_phys */
	h[8] = be32((uint32_t)f->strs_len);
	h[9] = be32((uint32_t)st_bytes);
	return total;
}
