// SPDX-License-Identifier: MIT
/* Text and JSON output, progress lines, number parsing. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "s2mmu-tool.h"

void out_init(struct out *o, FILE *f, bool json)
{
	memset(o, 0, sizeof(*o));
	o->f = f;
	o->json = json;
	o->first[0] = true;
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void member(struct out *o, const char *name)
{
	if (!o->first[o->depth])
		fputc(',', o->f);
	o->first[o->depth] = false;
	if (name) {
		json_string(o->f, name);
		fputc(':', o->f);
	}
}

static void open(struct out *o, const char *name, char c)
{
	if (!o->json)
		return;
	member(o, name);
	fputc(c, o->f);
	if (o->depth < 15)
		o->depth++;
	o->first[o->depth] = true;
}

static void close_(struct out *o, char c)
{
	if (!o->json)
		return;
	fputc(c, o->f);
	if (o->depth > 0)
		o->depth--;
	if (o->depth == 0)
		fputc('\n', o->f);
}

void out_obj(struct out *o, const char *name)
{
	open(o, name, '{');
}

void out_arr(struct out *o, const char *name)
{
	open(o, name, '[');
}

void out_end_obj(struct out *o)
{
	close_(o, '}');
}

void out_end_arr(struct out *o)
{
	close_(o, ']');
}

void out_str(struct out *o, const char *name, const char *v)
{
	if (!o->json)
		return;
	member(o, name);
	json_string(o->f, v);
}

void out_hex(struct out *o, const char *name, uint64_t v)
{
	if (!o->json)
		return;
	member(o, name);
	fprintf(o->f, "\"%#" PRIx64 "\"", v);
}

void out_num(struct out *o, const char *name, uint64_t v)
{
	if (!o->json)
		return;
	member(o, name);
	fprintf(o->f, "%" PRIu64, v);
}

void out_int(struct out *o, const char *name, int64_t v)
{
	if (!o->json)
		return;
	member(o, name);
	fprintf(o->f, "%" PRId64, v);
}

void out_bool(struct out *o, const char *name, bool v)
{
	if (!o->json)
		return;
	member(o, name);
	fputs(v ? "true" : "false", o->f);
}

void out_fields(struct out *o, unsigned nf, const struct ent_field *f, unsigned np,
		const char (*p)[112])
{
	if (o->json) {
		out_arr(o, "fields");
		for (unsigned i = 0; i < nf; i++) {
			char bits[16];

			out_obj(o, NULL);
			out_str(o, "name", f[i].name);
			if (f[i].hi == f[i].lo)
				snprintf(bits, sizeof(bits), "%u", f[i].lo);
			else
				snprintf(bits, sizeof(bits), "%u:%u", f[i].hi, f[i].lo);
			out_str(o, "bits", bits);
			out_hex(o, "value", f[i].value);
			out_str(o, "meaning", f[i].meaning);
			out_end_obj(o);
		}
		out_end_arr(o);
		out_arr(o, "problems");
		for (unsigned i = 0; i < np; i++)
			out_str(o, NULL, p[i]);
		out_end_arr(o);
		return;
	}
	for (unsigned i = 0; i < nf; i++) {
		char bits[16];

		if (f[i].hi == f[i].lo)
			snprintf(bits, sizeof(bits), "%u", f[i].lo);
		else
			snprintf(bits, sizeof(bits), "%u:%u", f[i].hi, f[i].lo);
		fprintf(o->f, "  %-6s %-14s %#-14" PRIx64 " %s\n", bits, f[i].name, f[i].value,
			f[i].meaning);
	}
	for (unsigned i = 0; i < np; i++)
		fprintf(o->f, "  ! %s\n", p[i]);
}

/* Progress: at most a few updates a second would need a clock; every 2^16th
 * call is cheap and often enough for millions of lines or entries. */
static bool progress_shown;

void progress(const char *what, uint64_t done, uint64_t total)
{
	static int tty = -1;

	if (tty < 0)
		tty = isatty(STDERR_FILENO);
	if (!tty || (done & 0xffff))
		return;
	if (total)
		fprintf(stderr, "\r%s: %" PRIu64 "/%" PRIu64 " (%u%%)", what, done, total,
			(unsigned)(done * 100 / total));
	else
		fprintf(stderr, "\r%s: %" PRIu64, what, done);
	progress_shown = true;
}

void progress_end(void)
{
	if (progress_shown)
		fputs("\r\033[K", stderr);
	progress_shown = false;
}

bool parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!s || !*s || *s == '-')
		return false;
	errno = 0;
	*out = strtoull(s, &end, 0);
	return !errno && !*end;
}

bool parse_range(const char *s, uint64_t *start, uint64_t *end)
{
	const char *dash = strchr(s, '-');
	char buf[64];
	size_t n;

	if (!dash || (n = (size_t)(dash - s)) >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = 0;
	return parse_u64(buf, start) && parse_u64(dash + 1, end) && *start < *end;
}
