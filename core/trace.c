// SPDX-License-Identifier: MIT
/*
 * The call trace (CONFIG_S2_TRACE; core/trace.h): one line of `s2mmu
 * replay`'s trace format per public call, sent to the log hook at
 * S2_LOG_TRACE. Freestanding: no libc, a line is built on the stack.
 */
#include "core/trace.h"

#if S2_ENABLED(CONFIG_S2_TRACE)
#include "s2mmu/dirty.h"
#include "s2mmu/errno.h"
#include "s2mmu/kvm.h"
#include "s2mmu/memslot.h"
#include "s2mmu/mmu.h"

struct s2_tbuf {
	char *p, *end;
};

static void tb_c(struct s2_tbuf *b, char c)
{
	if (b->p < b->end)
		*b->p++ = c;
}

static void tb_s(struct s2_tbuf *b, const char *s)
{
	while (*s)
		tb_c(b, *s++);
}

static void tb_dec(struct s2_tbuf *b, uint64_t v)
{
	char tmp[20];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		tb_c(b, tmp[--n]);
}

static void tb_hex(struct s2_tbuf *b, uint64_t v)
{
	char tmp[16];
	int n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	tb_s(b, "0x");
	while (n)
		tb_c(b, tmp[--n]);
}

/* Bits of @v named by @names (bit i = names[i]); "0" for none. */
static void tb_names(struct s2_tbuf *b, uint64_t v, const char *const *names, unsigned n)
{
	bool first = true;

	for (unsigned i = 0; i < n; i++)
		if (v & (1ull << i)) {
			if (!first)
				tb_c(b, ',');
			tb_s(b, names[i]);
			first = false;
		}
	if (first)
		tb_c(b, '0');
}

static void tb_letters(struct s2_tbuf *b, uint64_t v)
{
	static const char l[] = "rwxu";
	bool any = false;

	for (unsigned i = 0; i < 4; i++)
		if (v & (1u << i)) {
			tb_c(b, l[i]);
			any = true;
		}
	if (!any)
		tb_c(b, '0');
}

static const char *const s2_errno_names[] = {
	[S2_ENOENT] = "ENOENT", [S2_EIO] = "EIO",	  [S2_ENOMEM] = "ENOMEM",
	[S2_EFAULT] = "EFAULT", [S2_EBUSY] = "EBUSY",	  [S2_EEXIST] = "EEXIST",
	[S2_EINVAL] = "EINVAL", [S2_ENOSPC] = "ENOSPC",	  [S2_ERANGE] = "ERANGE",
	[S2_EAGAIN] = "EAGAIN", [S2_ENOTSUP] = "ENOTSUP",
};

void s2_trace_emit(const struct s2_env *env, const char *verb, const struct s2_trace_arg *a,
		   unsigned n, long ret)
{
	/* The names follow docs/tools.md, bit i = 1 << i of the enums. */
	static const char *const fmtf[] = { "ad",  "mbec", "sve",  "fwb",   "hd",
					    "xnx", "lpa2", "pbmt", "vmid16" };
	static const char *const slotf[] = { "log", "ro" };
	static const char *const caps[] = { "manual", "wrprotect", "pml" };
	char line[512];
	struct s2_tbuf b = { line, line + sizeof(line) - 1 };

	if (!env->ops->log)
		return;
	tb_s(&b, verb);
	for (unsigned i = 0; i < n; i++) {
		tb_c(&b, ' ');
		tb_s(&b, a[i].key);
		tb_c(&b, '=');
		switch (a[i].kind) {
		case S2_TK_HEX: tb_hex(&b, a[i].v); break;
		case S2_TK_DEC: tb_dec(&b, a[i].v); break;
		case S2_TK_STR: tb_s(&b, a[i].s ? a[i].s : "?"); break;
		case S2_TK_ACC:
		case S2_TK_PROT: tb_letters(&b, a[i].v); break;
		case S2_TK_FMTF: tb_names(&b, a[i].v, fmtf, sizeof(fmtf) / sizeof(fmtf[0])); break;
		case S2_TK_SLOTF:
			tb_names(&b, a[i].v, slotf, sizeof(slotf) / sizeof(slotf[0]));
			break;
		case S2_TK_CAPS: tb_names(&b, a[i].v, caps, sizeof(caps) / sizeof(caps[0])); break;
		case S2_TK_ATTR: tb_s(&b, a[i].v ? "private" : "0"); break;
		case S2_TK_WORDS:
			for (uint64_t k = 0; k < a[i].v; k++) {
				if (k)
					tb_c(&b, ',');
				tb_hex(&b, a[i].w[k]);
			}
			break;
		}
	}
	if (ret == S2_TRACE_NORET) {
		/* no result */
	} else if (tb_s(&b, " => "), ret < 0) {
		unsigned long e = (unsigned long)-ret;

		if (e < sizeof(s2_errno_names) / sizeof(s2_errno_names[0]) && s2_errno_names[e]) {
			tb_c(&b, '-');
			tb_s(&b, s2_errno_names[e]);
		} else {
			tb_c(&b, '-');
			tb_dec(&b, e);
		}
	} else {
		tb_dec(&b, (uint64_t)ret);
	}
	*b.p = 0;
	env->ops->log(env->ctx, S2_LOG_TRACE, line);
}
#endif
