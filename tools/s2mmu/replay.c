// SPDX-License-Identifier: MIT
/*
 * s2mmu replay: run a trace of library calls on the hosted library, then
 * print the statistics, optionally dump the tables and save them as a memory
 * image, and check the final tables against the reference walkers of
 * tests/ref and against this tool's own walk of the image.
 *
 * The trace format (docs/tools.md) is one call a line, "verb key=value ...",
 * optionally ending in "=> RESULT" (the return value the call must give; a
 * number or -ENAME). '#' starts a comment. The first call is `vm`. Verbs not
 * known to this version are errors that name the line, so an old tool never
 * half-replays a newer trace; a TD's tdx_* lines run against the TDX module
 * model in builds with CONFIG_S2_TDX and are refused without it.
 *
 * Table pages come from one arena mapped by the tool (pa == va, as the
 * hosted environment and the reference walkers assume), so the arena is a
 * physical-memory image of every table, ready for `s2mmu dump`.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "s2mmu-tool.h"

#include "s2mmu/config.h"
#include "s2mmu/env-hosted.h"
#include "s2mmu/errno.h"
#include "s2mmu/s2mmu.h"
#if S2_ENABLED(CONFIG_S2_FMT_X86_EPT)
#include "s2mmu/x86-ept.h"
#endif
#if S2_ENABLED(CONFIG_S2_FMT_X86_NPT)
#include "s2mmu/x86-npt.h"
#endif
#if S2_ENABLED(CONFIG_S2_FMT_ARM64_S2)
#include "s2mmu/arm64-s2.h"
#endif
#if S2_ENABLED(CONFIG_S2_FMT_RISCV_G)
#include "s2mmu/riscv-g.h"
#endif

#include "tests/ref/arm64_walker.h"
#include "tests/ref/ept_walker.h"
#include "tests/ref/npt_walker.h"
#include "tests/ref/riscv_walker.h"
#if S2_ENABLED(CONFIG_S2_TDX)
/* The TDX module model of tests/tdx (hosted only): linked into the tool in
 * builds with CONFIG_S2_TDX so a TD's trace replays; the library never
 * links it. */
#include "s2mmu/tdx.h"
#include "tests/tdx/model.h"
#endif

static const char replay_help[] =
	"usage: s2mmu replay [--dump] [--image-out FILE] [--no-check] [--arena MIB] [--json]\n"
	"                    [--ignore-ad] TRACE\n"
	"\n"
	"Replays TRACE (a file, or - for stdin), one library call a line, on the hosted\n"
	"library, then prints the statistics, with --dump the mappings (as s2mmu dump\n"
	"would), and checks every leaf of the final tables against the reference walker\n"
	"of its format (tests/ref) and against this tool's own walk of the tables.\n"
	"\n"
	"  --dump            print the final mappings\n"
	"  --image-out FILE  save the table arena as a raw image; the summary prints the\n"
	"                    root and image base for s2mmu dump\n"
	"  --no-check        skip the reference check\n"
	"  --arena MIB       size of the table arena (default 256, reserved lazily)\n"
	"  --json            one JSON document\n"
	"  --ignore-ad       --dump without accessed and dirty (as s2mmu dump --ignore-ad)\n"
	"\n"
	"Trace lines (docs/tools.md has the whole format):\n"
	"  vm fmt=F [gpa_bits=N] [flags=ad,...] [granule=N] [max_leaf=N] [vcpus=N] [vmid=N]\n"
	"     [mmio_cache=0|1] [mmio_gen_bits=N] [host_pa_bits=N] [max_vcpus=N] [single_cpu=0|1]\n"
	"  host [level=N] [readonly=0|1] [block_reuse=0|1] [hva=A end=B]\n"
	"  host_block hva=A end=B [pfn_off=N] [readonly=0|1] [level=N]\n"
	"  memslot id=N gfn=G npages=N hva=H [flags=log,ro]   memslot_delete id=N\n"
	"  memslot_move id=N gfn=G   memslot_flags id=N flags=...\n"
	"  fault [vcpu=N] gpa=A access=rwxu   fault_mmio [vcpu=N] gpa=A access=rwxu\n"
	"  zap gfn=G end=G   zap_all\n"
	"  invalidate_start hva=H end=H   invalidate_end hva=H end=H\n"
	"  clear_flush_young|clear_young|test_young hva=H end=H\n"
	"  dirty_caps caps=manual,wrprotect,pml   get_dirty_log slot=N\n"
	"  clear_dirty_log slot=N first=N num=N [mask=M]   mark_dirty gfn=G\n"
	"  attributes gfn=G end=G attrs=private|0   write_track_add|write_track_remove gfn=G\n"
	"  vcpu id=N   zap_all_fast   mark_dirty [vcpu=N] gfn=G   pml [vcpu=N] gpa=A\n"
	"  dirty_ring_enable entries=N [reserve=N]   dirty_ring_harvest [vcpu=N] max=N\n"
	"  dirty_ring_reset   map_range [vcpu=N] gpa=A hpa=H size=S prot=P [memtype=M]\n"
	"  unmap_range|wrprotect_range gpa=A size=S   pre_fault [vcpu=N] gpa=A size=S\n"
	"  mmu_load [vcpu=N] [kind=K] [space=S]\n"
	"  tdx_model [busy_one_in=N] [seed=S] [private_pfn=P] [private_level=N]\n"
	"  tdx_init shared_bit=N ...   tdx_page_add gfn=G src=H   tdx_finalized\n"
	"  tdx_collapse gfn=G end=G   tdx_accept gfn=G [level=N]\n"
	"  tdx_promote_answer gfn=G level=N promoted=0|1\n"
	"  expect_map gpa=A hpa=H|none [write=0|1]   expect_private gfn=G [hpa=H|none]\n"
	"     [level=N]   expect_tdx_counts\n"
	"  ... => RESULT   the call must return RESULT (a number or -EINVAL style)\n"
	"\n"
	"exit status: 0 replayed and checked, 1 an expectation or the check failed,\n"
	"2 trace syntax error, 3 I/O error, 4 a call failed without an expectation.\n";

/* ---- the table arena ---- */

#define ARENA_CLASSES 9 /* 4 KiB .. 1 MiB */

static struct {
	uint8_t *base;
	size_t size, used;
	void *free[ARENA_CLASSES];
	pthread_mutex_t lock;
} arena = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int size_class(size_t bytes)
{
	for (int c = 0; c < ARENA_CLASSES; c++)
		if (bytes == (size_t)4096 << c)
			return c;
	return -1;
}

static void *arena_alloc(void *ctx, size_t bytes, hpa_t *pa)
{
	int c = size_class(bytes);
	uint8_t *p = NULL;

	(void)ctx;
	if (c < 0)
		return NULL;
	pthread_mutex_lock(&arena.lock);
	if (arena.free[c]) {
		p = arena.free[c];
		memcpy(&arena.free[c], p, sizeof(void *));
	} else {
		size_t at = (arena.used + bytes - 1) & ~(bytes - 1);

		if (at + bytes <= arena.size) {
			p = arena.base + at;
			arena.used = at + bytes;
		}
	}
	pthread_mutex_unlock(&arena.lock);
	if (!p)
		return NULL;
	memset(p, 0, bytes);
	*pa = (hpa_t)(uintptr_t)p;
	return p;
}

static void arena_free(void *ctx, void *va, hpa_t pa, size_t bytes)
{
	int c = size_class(bytes);

	(void)ctx;
	(void)pa;
	if (c < 0)
		return;
	/* Freed pages read as zero in a later image, not as stale tables. */
	memset(va, 0, bytes);
	pthread_mutex_lock(&arena.lock);
	memcpy(va, &arena.free[c], sizeof(void *));
	arena.free[c] = va;
	pthread_mutex_unlock(&arena.lock);
}

static bool arena_init(size_t mib)
{
	size_t align = 1u << 20, len = (mib << 20) + align;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return false;
	arena.base = (uint8_t *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
	arena.size = mib << 20;
	return true;
}

/* ---- trace parsing ---- */

struct line {
	unsigned no;
	char *verb;
	unsigned nargs;
	char *key[16], *val[16];
	bool has_expect;
	long long expect;
	const char *file;
};

static int syntax(const struct line *l, const char *fmt, const char *a)
{
	fprintf(stderr, "%s:%u: ", l->file, l->no);
	fprintf(stderr, fmt, a);
	fputc('\n', stderr);
	return EXIT_USAGE;
}

static const struct {
	const char *name;
	int v;
} errnos[] = {
	{ "EPERM", EPERM },   { "ENOENT", ENOENT },   { "EIO", EIO },	    { "E2BIG", E2BIG },
	{ "ENOMEM", ENOMEM }, { "EFAULT", EFAULT },   { "EBUSY", EBUSY },   { "EEXIST", EEXIST },
	{ "EINVAL", EINVAL }, { "ENOSPC", ENOSPC },   { "ERANGE", ERANGE }, { "EAGAIN", EAGAIN },
	{ "ENOSYS", ENOSYS }, { "ENOTSUP", ENOTSUP },
};

static bool parse_result(const char *s, long long *out)
{
	uint64_t v;

	if (s[0] == '-' && s[1] == 'E') {
		for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
			if (!strcmp(s + 1, errnos[i].name)) {
				*out = -errnos[i].v;
				return true;
			}
		return false;
	}
	if (s[0] == '-') {
		if (!parse_u64(s + 1, &v))
			return false;
		*out = -(long long)v;
		return true;
	}
	if (!parse_u64(s, &v))
		return false;
	*out = (long long)v;
	return true;
}

/* Split @buf into a line; returns 0, EXIT_USAGE, or -1 for a blank line. */
static int split(char *buf, struct line *l)
{
	char *s = buf, *tok;

	l->verb = NULL;
	l->nargs = 0;
	l->has_expect = false;
	if ((tok = strchr(s, '#')))
		*tok = 0;
	while ((tok = strsep(&s, " \t\r\n"))) {
		if (!*tok)
			continue;
		if (!l->verb) {
			l->verb = tok;
			continue;
		}
		if (!strcmp(tok, "=>")) {
			while ((tok = strsep(&s, " \t\r\n")) && !*tok)
				;
			if (!tok || !parse_result(tok, &l->expect))
				return syntax(l, "'=>' needs a result (a number or -ENAME)%s", "");
			l->has_expect = true;
			while ((tok = strsep(&s, " \t\r\n")))
				if (*tok)
					return syntax(l, "'%s' after the result", tok);
			break;
		}
		if (l->nargs == 16)
			return syntax(l, "too many arguments%s", "");
		l->key[l->nargs] = tok;
		tok = strchr(tok, '=');
		if (!tok)
			return syntax(l, "'%s' is not key=value", l->key[l->nargs]);
		*tok = 0;
		l->val[l->nargs++] = tok + 1;
	}
	return l->verb ? 0 : -1;
}

/* An argument's value without consuming it (NULL when absent). */
static const char *peek(const struct line *l, const char *key)
{
	for (unsigned i = 0; i < l->nargs; i++)
		if (l->key[i] && !strcmp(l->key[i], key))
			return l->val[i];
	return NULL;
}

/* Argument lookup: every key given must be used exactly by the verb. */
static const char *arg(struct line *l, const char *key)
{
	for (unsigned i = 0; i < l->nargs; i++)
		if (l->key[i] && !strcmp(l->key[i], key)) {
			const char *v = l->val[i];

			l->key[i] = NULL; /* consumed */
			return v;
		}
	return NULL;
}

struct parse_err {
	const char *key, *val; /* what was wrong */
	bool missing;
};

static uint64_t num(struct line *l, const char *key, uint64_t dflt, bool required,
		    struct parse_err *pe)
{
	const char *v = arg(l, key);
	uint64_t n;

	if (!v) {
		if (required && !pe->key) {
			pe->key = key;
			pe->missing = true;
		}
		return dflt;
	}
	if (!parse_u64(v, &n)) {
		if (!pe->key) {
			pe->key = key;
			pe->val = v;
		}
		return dflt;
	}
	return n;
}

/* "a,b,c" against @names (bit i = names[i]); NULL-terminated. */
static unsigned names(struct line *l, const char *key, const char *const *nm, const unsigned *bits,
		      struct parse_err *pe)
{
	const char *v = arg(l, key), *s;
	unsigned out = 0;

	if (!v || !strcmp(v, "0"))
		return 0;
	for (s = v; *s;) {
		size_t n = strcspn(s, ",|");
		unsigned i;

		for (i = 0; nm[i]; i++)
			if (strlen(nm[i]) == n && !strncmp(s, nm[i], n))
				break;
		if (n && !nm[i]) {
			if (!pe->key) {
				pe->key = key;
				pe->val = v;
			}
			return 0;
		}
		if (n)
			out |= bits[i];
		s += n;
		if (*s)
			s++;
	}
	return out;
}

/* ---- replay ---- */

#define MAX_VCPUS 64

struct replay {
	struct s2_hosted h;
	struct s2_env_ops ops;
	struct kvm *kvm;
	struct kvm_vcpu *vcpu[MAX_VCPUS];
	unsigned nr_vcpus;
	unsigned fmt_flags;
	uint64_t lines, calls, failed_expect, failed_calls, raced;
	/* Per vcpu (the first 64): the gpa page of a fault the trace saw
	 * retry (a race with a concurrent call) that the replay fixed. */
	gpa_t raced_gpa[64];
	uint64_t raced_valid;
	/* A fault the run completed that the replay found inside an
	 * invalidation (its line came before the invalidation's end, whose
	 * line is also written at return): run again after each next line
	 * until it gives what the trace says. */
	char deferred[512];
	const char *deferred_text; /* the current line before split() */
	unsigned deferred_no;
	long long deferred_expect;
	struct kvm_vm_params p;
#if S2_ENABLED(CONFIG_S2_TDX)
	struct tdx_model *tdxm; /* the TD's module, from its tdx_init line */
	struct s2_tdx_ops tdx_ops;
#endif
};

/*
 * The simulated host beyond `host`: host_block lines (a test's host that
 * remaps, e.g. the fuzzer's) override pfn offset, writability and level
 * over an hva range, the last line covering an hva wins; `host hva=A
 * end=B` makes gfn_to_pfn fail (-EFAULT) outside [A, B).
 */
struct host_block {
	hva_t start, end;
	uint64_t pfn_off;
	bool ro;
	int level;
};

static struct {
	struct host_block *b;
	size_t n, cap;
	hva_t start, end; /* valid hvas; end 0: all */
} hostmap;

static int replay_gfn_to_pfn(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, bool write,
			     struct s2_pfn_info *out)
{
	struct s2_hosted *h = ctx;
	hva_t hva = slot->userspace_addr + ((gfn - slot->base_gfn) << 12);
	const struct host_block *b = NULL;

	if (hostmap.end && (hva < hostmap.start || hva >= hostmap.end))
		return -EFAULT;
	for (size_t i = hostmap.n; i-- > 0;)
		if (hva >= hostmap.b[i].start && hva < hostmap.b[i].end) {
			b = &hostmap.b[i];
			break;
		}
	if (!b)
		return h->ops.gfn_to_pfn(ctx, slot, gfn, write, out);
	if (write && b->ro)
		return -EFAULT;
	out->pfn = (hva >> 12) + b->pfn_off;
	out->writable = !b->ro;
	out->host_level = b->level;
	out->memtype = 0;
	out->block_stable = !h->no_block_reuse;
	return 0;
}

static const char *const fmtf_names[] = { "ad",	 "mbec", "sve",	 "fwb",	   "hd",
					  "xnx", "lpa2", "pbmt", "vmid16", NULL };
static const unsigned fmtf_bits[] = { S2_FMTF_AD,   S2_FMTF_MBEC, S2_FMTF_SUPPRESS_VE,
				      S2_FMTF_FWB,  S2_FMTF_HD,	  S2_FMTF_XNX,
				      S2_FMTF_LPA2, S2_FMTF_PBMT, S2_FMTF_VMID16 };
static const char *const slotf_names[] = { "log", "ro", NULL };
static const unsigned slotf_bits[] = { KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY };
static const char *const caps_names[] = { "manual", "wrprotect", "pml", NULL };
static const unsigned caps_bits[] = { KVM_DIRTY_LOG_MANUAL_PROTECT, KVM_DIRTY_LOG_WRPROTECT,
				      KVM_DIRTY_LOG_PML };
static const char *const acc_names[] = {
	"r", "w", "x", "u", "read", "write", "exec", "user", NULL
};
static const unsigned acc_bits[] = { S2_ACC_READ, S2_ACC_WRITE, S2_ACC_EXEC, S2_ACC_USER,
				     S2_ACC_READ, S2_ACC_WRITE, S2_ACC_EXEC, S2_ACC_USER };

/* Access "rw" without commas means each letter. */
static unsigned access_arg(struct line *l, struct parse_err *pe)
{
	const char *v = NULL;
	unsigned out = 0;

	for (unsigned i = 0; i < l->nargs; i++)
		if (l->key[i] && !strcmp(l->key[i], "access"))
			v = l->val[i];
	if (v && !strcmp(v, "0")) {
		arg(l, "access");
		return 0;
	}
	if (v && !strchr(v, ',') && strlen(v) <= 4 && strspn(v, "rwxu") == strlen(v)) {
		arg(l, "access");
		for (const char *s = v; *s; s++)
			out |= *s == 'r' ? S2_ACC_READ :
			       *s == 'w' ? S2_ACC_WRITE :
			       *s == 'x' ? S2_ACC_EXEC :
					   S2_ACC_USER;
		return out;
	}
	return names(l, "access", acc_names, acc_bits, pe);
}

#if S2_ENABLED(CONFIG_S2_TDX)
/* A TD's private pages (its guest_memfd): pfns of their own, far above any
 * hva the traces use, one 64 GiB window a memslot; the largest leaf is the
 * `host` line's level, as for shared pages. */
#define TDX_PRIVATE_PFN (1ull << 36)
static int replay_host_level = 1;

/*
 * A `tdx_model` line before `tdx_init` makes the model the test had:
 * OPERAND_BUSY one SEAMCALL in busy_one_in from the model's seed (the same
 * SEAMCALLs in the same order meet the same busy answers), its own private
 * backing (base pfn) and largest private leaf.
 */
static struct {
	bool set;
	unsigned busy_one_in;
	uint64_t seed, private_pfn;
	int private_level; /* 0: the host line's level */
} tdx_model_args = { .seed = 1, .private_pfn = TDX_PRIVATE_PFN };

static int replay_private_pfn(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn,
			      kvm_pfn_t *pfn, int *max_level)
{
	(void)ctx;
	*pfn = tdx_model_args.private_pfn + ((uint64_t)slot->id << 24) + (gfn - slot->base_gfn);
	*max_level = replay_host_level;
	return 0;
}

/*
 * The module's TD is in its build phase (PAGE.ADD, no PAGE.AUG) until
 * TDH.MR.FINALIZE, which the embedder runs and tells the library with
 * kvm_tdx_finalized(): the model follows the tdx_finalized line. A trace
 * with no tdx_page_add before its first PAGE.AUG is of a TD finalized
 * without initial memory (the embedder need not tell the library then).
 */
static bool replay_tdx_added;

static uint64_t replay_page_aug(void *ctx, gpa_t gpa, int level, hpa_t page)
{
	struct tdx_model *m = ctx;

	if (!m->finalized && !replay_tdx_added)
		m->finalized = true;
	return tdxm_page_aug(ctx, gpa, level, page);
}

/*
 * The library's tdx_promote_answer lines (before its tdx_collapse line): the
 * module's answers to PAGE.PROMOTE, which depend on what the guest accepted.
 * They wait here until the collapse asks the model; a promotion the module
 * made finds the 512 pages alike (the pending ones are accepted when some
 * are not: the guest had accepted the rest), a refused one finds them mixed
 * (the first is accepted when all are pending: the guest had accepted part).
 * A trace with the guest's own tdx_accept lines already has the states, and
 * nothing changes.
 */
static struct promote_answer {
	gpa_t gpa;
	int level;
	bool promoted, used;
} * answers;
static size_t n_answers, cap_answers;

static uint64_t replay_page_promote(void *ctx, gpa_t gpa, int level)
{
	struct tdx_model *m = ctx;
	unsigned pending = 0, mapped = 0;
	uint64_t cspan = 1ull << (12 + 9 * (level - 2));
	struct promote_answer *a = NULL;

	for (size_t i = 0; i < n_answers && !a; i++)
		if (!answers[i].used && answers[i].gpa == gpa && answers[i].level == level)
			a = &answers[i];
	for (unsigned i = 0; a && i < 512; i++) {
		int l = 0;
		uint64_t h;
		enum tdxm_state st = tdxm_leaf(m, gpa + i * cspan, &l, &h);

		if (l != level - 1)
			a = NULL; /* not 512 leaves: the model answers alone */
		else
			pending += st == TDXM_PENDING, mapped += st == TDXM_MAPPED;
	}
	if (a && a->promoted && pending && mapped) {
		for (unsigned i = 0; i < 512; i++)
			(void)tdxm_accept(m, gpa + i * cspan, level - 1);
	} else if (a && !a->promoted && pending == 512) {
		(void)tdxm_accept(m, gpa, level - 1);
	}
	return tdxm_page_promote(ctx, gpa, level);
}

/* tdx_init, tdx_page_add, tdx_finalized, tdx_collapse (the library's lines),
 * tdx_accept gfn= level= (the guest's TDG.MEM.PAGE.ACCEPT, which a trace
 * writer adds: the library does not see it) and tdx_model (the model a test
 * had, before tdx_init). */
static int tdx_call(struct replay *r, struct line *l, struct parse_err *pe, long long *ret)
{
	const char *v = l->verb;

	if (!strcmp(v, "tdx_model")) {
		uint64_t b = num(l, "busy_one_in", 0, false, pe);
		uint64_t sd = num(l, "seed", 1, false, pe);
		uint64_t pp = num(l, "private_pfn", TDX_PRIVATE_PFN, false, pe);
		uint64_t pl = num(l, "private_level", 0, false, pe);

		if (pe->key)
			return 0;
		if (r->tdxm || tdx_model_args.set)
			return syntax(l, "'tdx_model' must come once, before 'tdx_init'%s", "");
		if (b > 1000000 || pl > 3 || pp >= (1ull << 40))
			return syntax(l,
				      "tdx_model needs busy_one_in <= 1000000, private_level "
				      "0..3, private_pfn < 2^40%s",
				      "");
		tdx_model_args.set = true;
		tdx_model_args.busy_one_in = (unsigned)b;
		tdx_model_args.seed = sd;
		tdx_model_args.private_pfn = pp;
		tdx_model_args.private_level = (int)pl;
		return 0;
	}
	if (!strcmp(v, "tdx_init")) {
		struct kvm_tdx_params tp = { 0 };

		tp.shared_bit = (unsigned)num(l, "shared_bit", 0, true, pe);
		tp.busy_retries = (unsigned)num(l, "busy_retries", 0, false, pe);
		tp.track_per_page = num(l, "track_per_page", 0, false, pe) != 0;
		if (pe->key)
			return 0;
		if (r->tdxm)
			return syntax(l, "a second 'tdx_init' line%s", "");
		r->tdxm = calloc(1, sizeof(*r->tdxm));
		if (!r->tdxm)
			return syntax(l, "out of memory for the TDX module model%s", "");
		tdxm_init(r->tdxm, (unsigned)kvm_mmu_levels(r->kvm), tdx_model_args.busy_one_in,
			  tdx_model_args.seed);
		replay_host_level = tdx_model_args.private_level ? tdx_model_args.private_level :
				    r->h.host_level > 0		 ? r->h.host_level :
								   1;
		r->tdx_ops = tdxm_ops_template;
		r->tdxm->finalized = false;
		r->tdx_ops.page_aug = replay_page_aug;
		r->tdx_ops.page_promote = replay_page_promote;
		r->tdx_ops.private_pfn = replay_private_pfn;
		tp.ops = &r->tdx_ops;
		tp.ctx = r->tdxm;
		*ret = kvm_tdx_init(r->kvm, &tp);
		return 0;
	}
	if (!r->tdxm)
		return syntax(l, "'%s' before 'tdx_init'", v);
	if (!strcmp(v, "tdx_page_add")) {
		gfn_t g = num(l, "gfn", 0, true, pe);
		hpa_t src = num(l, "src", 0, true, pe);

		if (!pe->key) {
			replay_tdx_added = true;
			*ret = kvm_tdx_page_add(r->kvm, g, src);
		}
	} else if (!strcmp(v, "tdx_finalized")) {
		r->tdxm->finalized = true; /* TDH.MR.FINALIZE, the embedder's */
		*ret = kvm_tdx_finalized(r->kvm);
	} else if (!strcmp(v, "tdx_collapse")) {
		gfn_t s = num(l, "gfn", 0, true, pe), e = num(l, "end", 0, true, pe);

		if (!pe->key)
			*ret = kvm_tdx_collapse(r->kvm, s, e);
		n_answers = 0; /* the answers were this call's */
	} else if (!strcmp(v, "tdx_promote_answer")) {
		gfn_t g = num(l, "gfn", 0, true, pe);
		uint64_t lv = num(l, "level", 0, true, pe), pr = num(l, "promoted", 0, true, pe);

		if (pe->key)
			return 0;
		if (lv < 2 || lv > 3 || pr > 1)
			return syntax(l, "tdx_promote_answer needs level=2|3 and promoted=0|1%s",
				      "");
		if (n_answers == cap_answers) {
			cap_answers = cap_answers ? 2 * cap_answers : 64;
			answers = realloc(answers, cap_answers * sizeof(*answers));
			if (!answers)
				abort();
		}
		answers[n_answers++] = (struct promote_answer){ .gpa = g << 12,
								.level = (int)lv,
								.promoted = pr != 0 };
	} else if (!strcmp(v, "tdx_accept")) {
		gfn_t g = num(l, "gfn", 0, true, pe);
		int lv = (int)num(l, "level", 1, false, pe);

		if (!pe->key)
			*ret = (long long)tdxm_accept(r->tdxm, g << 12, lv) ? -EIO : 0;
	} else {
		return syntax(l, "unknown call '%s'", v);
	}
	return 0;
}

/*
 * expect_private gfn=G [hpa=H|none] [level=N]: a test's statement about a
 * TD's private gfn G: the library's mirror leaf (kvm_tdx_lookup_private)
 * and the model's secure-EPT leaf agree (both absent, or the same level
 * and page), and with hpa= both map G to page H (none: neither maps it),
 * with level= at that level. expect_tdx_counts: the model's leaves and
 * S-EPT pages are those the library counts (kvm_tdx_get_stats). *ret is 0
 * when it holds, 1 when not (a failed expectation, said on stderr).
 */
static void tdx_expect_counts(struct replay *r, struct line *l, long long *ret)
{
	struct kvm_tdx_stats s;
	uint64_t lib;

	l->has_expect = true;
	l->expect = 0;
	if (kvm_tdx_get_stats(r->kvm, &s)) {
		fprintf(stderr, "%s:%u: expect_tdx_counts: no TDX statistics\n", l->file, l->no);
		*ret = 1;
		return;
	}
	lib = s.cur_private_leaves[1] + s.cur_private_leaves[2] + s.cur_private_leaves[3];
	if (lib != tdxm_nr_leaves(r->tdxm) || s.cur_sept_pages != tdxm_nr_sept(r->tdxm)) {
		fprintf(stderr,
			"%s:%u: expect_tdx_counts: the library counts %" PRIu64
			" private leaves and %" PRIu64 " S-EPT pages, the module model %u and %u\n",
			l->file, l->no, lib, s.cur_sept_pages, tdxm_nr_leaves(r->tdxm),
			tdxm_nr_sept(r->tdxm));
		*ret = 1;
	}
}

static int tdx_expect(struct replay *r, struct line *l, struct parse_err *pe, long long *ret)
{
	gfn_t g = num(l, "gfn", 0, true, pe);
	const char *hs = arg(l, "hpa");
	uint64_t want = 0, wl = num(l, "level", 0, false, pe);
	bool none = hs && !strcmp(hs, "none");
	int ml = 0, ll = 0, found;
	uint64_t mh = 0;
	hpa_t lh = 0;
	enum tdxm_state st;
	const char *why = NULL;

	if (pe->key)
		return 0;
	if (hs && !none && !parse_u64(hs, &want))
		return syntax(l, "bad value for '%s'", "hpa");
	l->has_expect = true;
	l->expect = 0;
	st = tdxm_leaf(r->tdxm, g << 12, &ml, &mh);
	found = kvm_tdx_lookup_private(r->kvm, g, &lh, &ll);
	if (found < 0)
		found = 0;
	if (!!found != (st != TDXM_FREE) || (found && (ll != ml || lh != mh)))
		why = "the mirror and the secure EPT differ";
	else if (hs && none && found)
		why = "mapped";
	else if (hs && !none && (!found || lh != want))
		why = found ? "another page" : "not mapped";
	else if (wl && found && (uint64_t)ll != wl)
		why = "another level";
	if (why) {
		fprintf(stderr,
			"%s:%u: expect_private gfn %#" PRIx64 ": %s: mirror %s (level %d %#" PRIx64
			"), secure EPT state %d (level %d %#" PRIx64 "), the trace expects %s\n",
			l->file, l->no, g, why, found ? "maps it" : "none", ll, lh, (int)st, ml, mh,
			hs ? hs : "them to agree");
		*ret = 1;
	}
	return 0;
}
#endif

/*
 * A fault the trace saw return RET_PF_RETRY lost a race with a call that
 * ran at the same time (the trace has each call's line when it returned,
 * so an invalidation that began during the fault is written before it).
 * The replay runs the calls one after another and may fix that fault at
 * once; then the run's own retry of it finds the leaf (SPURIOUS where the
 * trace says FIXED). Both are counted as raced, not as failures: what the
 * tables hold is still checked by the lines that follow.
 */
static bool raced_fault(struct replay *r, const struct line *l, const char *v, const char *g,
			long long ret)
{
	unsigned id;
	gpa_t page;

	if (strcmp(l->verb, "fault") || !v || !g)
		return false;
	id = (unsigned)strtoull(v, NULL, 0);
	page = strtoull(g, NULL, 0) & ~0xfffull;
	if (id >= 64)
		return false;
	if (l->expect == RET_PF_RETRY) {
		if (ret == RET_PF_FIXED) {
			r->raced_gpa[id] = page;
			r->raced_valid |= 1ull << id;
		}
		r->raced += ret != RET_PF_RETRY;
		return true;
	}
	if (ret == RET_PF_RETRY && (l->expect == RET_PF_FIXED || l->expect == RET_PF_SPURIOUS) &&
	    r->deferred_text) {
		if (r->deferred[0]) { /* one at a time: the earlier one failed */
			r->failed_expect++;
			fprintf(stderr,
				"%s:%u: fault retried in the replay (an invalidation in progress) "
				"and never gave %lld afterwards\n",
				l->file, r->deferred_no, r->deferred_expect);
		}
		snprintf(r->deferred, sizeof(r->deferred), "%s", r->deferred_text);
		r->deferred_no = l->no;
		r->deferred_expect = l->expect;
		r->raced++;
		return true;
	}
	if (((r->raced_valid >> id) & 1) && r->raced_gpa[id] == page && l->expect == RET_PF_FIXED &&
	    ret == RET_PF_SPURIOUS) {
		r->raced_valid &= ~(1ull << id);
		r->raced++;
		return true;
	}
	r->raced_valid &= ~(1ull << id);
	return false;
}

static int call(struct replay *r, struct line *l, long long *ret);

/* The deferred fault again, after the line @cur: done when it gives what
 * the trace said (FIXED may come back SPURIOUS if a later fault of the
 * trace mapped the page first). */
static void run_deferred(struct replay *r, const struct line *cur)
{
	char text[sizeof(r->deferred)];
	struct line d = { .no = r->deferred_no, .file = cur->file };
	long long ret;

	snprintf(text, sizeof(text), "%s", r->deferred);
	if (split(text, &d) || call(r, &d, &ret))
		return;
	if (ret == r->deferred_expect ||
	    (r->deferred_expect == RET_PF_FIXED && ret == RET_PF_SPURIOUS))
		r->deferred[0] = 0;
}

static int do_vm(struct replay *r, struct line *l, struct parse_err *pe, long long *ret)
{
	const char *f = arg(l, "fmt");
	uint64_t vcpus, max_vcpus, mc;

	if (r->kvm)
		return syntax(l, "a second 'vm' line%s", "");
	memset(&r->p, 0, sizeof(r->p));
	r->p.fmt = f ? tool_fmt_by_name(f) : 0;
	if (!f)
		return syntax(l, "vm needs fmt=%s", "");
	if (!r->p.fmt && strcmp(f, "fake"))
		return syntax(l, "unknown format '%s'", f);
	if (!strcmp(f, "fake"))
		r->p.fmt = S2_FMT_FAKE;
	r->p.gpa_bits = (unsigned)num(l, "gpa_bits", 48, false, pe);
	r->p.fmt_flags = r->fmt_flags = names(l, "flags", fmtf_names, fmtf_bits, pe);
	r->p.granule = (unsigned)num(l, "granule", 0, false, pe);
	r->p.max_leaf_level = (unsigned)num(l, "max_leaf", 0, false, pe);
	r->p.vmid = (uint32_t)num(l, "vmid", 0, false, pe);
	/* Absent: the library's default; 1 on, 0 off. */
	mc = num(l, "mmio_cache", 2, false, pe);
	r->p.mmio_cache = mc == 2 ? S2_MMIO_CACHE_DEFAULT :
			  mc	  ? S2_MMIO_CACHE_ON :
				    S2_MMIO_CACHE_OFF;
	r->p.mmio_gen_bits = (unsigned)num(l, "mmio_gen_bits", 0, false, pe);
	r->p.host_pa_bits = (unsigned)num(l, "host_pa_bits", 0, false, pe);
	/* An env with single-CPU RCU (env.h rcu_single_cpu), as the traced one. */
	r->ops.rcu_single_cpu = num(l, "single_cpu", 0, false, pe) != 0;
	vcpus = num(l, "vcpus", 1, false, pe);
	max_vcpus = num(l, "max_vcpus", vcpus, false, pe);
	/* max_vcpus=0 is the library's default (64), as kvm_vm_params says. */
	if (vcpus > MAX_VCPUS || max_vcpus > MAX_VCPUS || vcpus > (max_vcpus ? max_vcpus : 64))
		return syntax(l, "vcpus and max_vcpus must be 0..64, vcpus <= max_vcpus%s", "");
	r->p.max_vcpus = (unsigned)max_vcpus;
	r->p.env = &r->h.env;
	if (pe->key)
		return 0;
	*ret = kvm_create_vm(&r->p, &r->kvm);
	if (*ret)
		return 0;
	for (unsigned i = 0; i < vcpus; i++) {
		int e = kvm_vcpu_create(r->kvm, i, &r->vcpu[i]);

		if (e) {
			*ret = e;
			return 0;
		}
	}
	r->nr_vcpus = (unsigned)vcpus;
	return 0;
}

static int expect_map(struct replay *r, struct line *l, struct parse_err *pe, long long *ret);

/* The calls made on a vcpu: dirty_ring_harvest, pml, map_range, pre_fault,
 * mmu_load. */
static int vcpu_call(struct replay *r, struct line *l, struct parse_err *pe, long long *ret)
{
	const char *v = l->verb;
	uint64_t vc = num(l, "vcpu", 0, false, pe);
	struct kvm_vcpu *vcpu;

	if (!pe->key && (vc >= r->nr_vcpus || !r->vcpu[vc]))
		return syntax(l, "no such vcpu%s", "");
	vcpu = r->vcpu[vc];
	if (!strcmp(v, "dirty_ring_harvest")) {
		uint64_t max = num(l, "max", 0, true, pe);
		struct kvm_dirty_gfn *out;

		if (pe->key)
			return 0;
		if (max > (1u << 20))
			return syntax(l, "dirty_ring_harvest takes at most max=1048576%s", "");
		out = calloc(max ? max : 1, sizeof(*out));
		if (!out)
			abort();
		*ret = kvm_dirty_ring_harvest(vcpu, out, (uint32_t)max);
		free(out);
	} else if (!strcmp(v, "pml")) {
		uint64_t gpa = num(l, "gpa", 0, true, pe);

#if S2_ENABLED(CONFIG_S2_FMT_X86_EPT)
		if (!pe->key)
			*ret = kvm_flush_pml_buffer(vcpu, &gpa, 1);
#else
		(void)gpa;
		if (!pe->key)
			return syntax(l, "pml: this s2mmu is built without x86-ept%s", "");
#endif
	} else if (!strcmp(v, "mmu_load")) {
		uint64_t kind = num(l, "kind", 0, false, pe), space = num(l, "space", 0, false, pe);
		uint64_t reg;

		if (!pe->key && (kind > 255 || space > 255))
			return syntax(l, "mmu_load needs kind and space 0..255%s", "");
		if (!pe->key)
			*ret = kvm_mmu_load(vcpu,
					    (struct kvm_root_role){ .kind = (uint8_t)kind,
								    .space = (uint8_t)space },
					    &reg);
	} else if (!strcmp(v, "map_range")) {
		gpa_t gpa = num(l, "gpa", 0, true, pe);
		hpa_t hpa = num(l, "hpa", 0, true, pe);
		uint64_t size = num(l, "size", 0, true, pe), prot = num(l, "prot", 0, true, pe);
		uint64_t mt = num(l, "memtype", 0, false, pe);

		if (!pe->key)
			*ret = kvm_mmu_map_range(vcpu, gpa, hpa, size, (unsigned)prot,
						 (unsigned)mt);
	} else {
		gpa_t gpa = num(l, "gpa", 0, true, pe);
		uint64_t size = num(l, "size", 0, true, pe);

		if (!pe->key)
			*ret = kvm_vcpu_pre_fault_memory(vcpu, gpa, size);
	}
	return 0;
}

/* One call; *ret gets its result. Returns EXIT_USAGE on a syntax error. */
static int call(struct replay *r, struct line *l, long long *ret)
{
	struct parse_err pe = { 0 };
	const char *v = l->verb;
	struct kvm *kvm = r->kvm;
	int rc = 0;

	*ret = 0;
	if (!strcmp(v, "vm")) {
		rc = do_vm(r, l, &pe, ret);
		goto out;
	}
	if (!strcmp(v, "host_block")) {
		struct host_block b = {
			.start = num(l, "hva", 0, true, &pe),
			.end = num(l, "end", 0, true, &pe),
			.pfn_off = num(l, "pfn_off", 0, false, &pe),
			.ro = num(l, "readonly", 0, false, &pe),
			.level = (int)num(l, "level", (uint64_t)r->h.host_level, false, &pe),
		};

		if (!pe.key && (b.start >= b.end || b.level < 1 || b.level > 5))
			return syntax(l, "host_block needs hva < end and level 1..5%s", "");
		if (!pe.key) {
			if (hostmap.n == hostmap.cap) {
				hostmap.cap = hostmap.cap ? 2 * hostmap.cap : 64;
				hostmap.b = realloc(hostmap.b, hostmap.cap * sizeof(b));
				if (!hostmap.b)
					abort();
			}
			hostmap.b[hostmap.n++] = b;
		}
		goto out;
	}
	if (!strcmp(v, "host")) {
		if (kvm)
			return syntax(l, "'host' must come before 'vm'%s", "");
		r->h.host_level = (int)num(l, "level", (uint64_t)r->h.host_level, false, &pe);
		hostmap.start = num(l, "hva", 0, false, &pe);
		hostmap.end = num(l, "end", 0, false, &pe);
		r->h.host_readonly = num(l, "readonly", 0, false, &pe);
		r->h.no_block_reuse = !num(l, "block_reuse", 1, false, &pe);
		goto out;
	}
	if (!kvm) {
		return syntax(l, "'%s' before the 'vm' line (or vm creation failed)", v);
	}
	if (!strcmp(v, "vcpu")) {
		uint64_t id = num(l, "id", 0, true, &pe);

		if (!pe.key && id >= MAX_VCPUS)
			return syntax(l, "vcpu id must be below 64%s", "");
		if (!pe.key && r->vcpu[id])
			return syntax(l, "vcpu %s was created before", l->val[0]);
		if (!pe.key) {
			*ret = kvm_vcpu_create(kvm, (unsigned)id, &r->vcpu[id]);
			if (!*ret && id >= r->nr_vcpus)
				r->nr_vcpus = (unsigned)id + 1;
		}
	} else if (!strcmp(v, "memslot")) {
		struct kvm_memory_slot s = {
			.id = (unsigned)num(l, "id", 0, true, &pe),
			.base_gfn = num(l, "gfn", 0, true, &pe),
			.npages = num(l, "npages", 0, true, &pe),
			.userspace_addr = num(l, "hva", 0, true, &pe),
			.flags = names(l, "flags", slotf_names, slotf_bits, &pe),
		};
		if (!pe.key)
			*ret = kvm_set_memslot(kvm, &s);
	} else if (!strcmp(v, "memslot_delete")) {
		unsigned id = (unsigned)num(l, "id", 0, true, &pe);

		if (!pe.key)
			*ret = kvm_delete_memslot(kvm, id);
	} else if (!strcmp(v, "memslot_move")) {
		unsigned id = (unsigned)num(l, "id", 0, true, &pe);
		gfn_t g = num(l, "gfn", 0, true, &pe);

		if (!pe.key)
			*ret = kvm_move_memslot(kvm, id, g);
	} else if (!strcmp(v, "memslot_flags")) {
		unsigned id = (unsigned)num(l, "id", 0, true, &pe);
		unsigned f = names(l, "flags", slotf_names, slotf_bits, &pe);

		if (!pe.key)
			*ret = kvm_set_memslot_flags(kvm, id, f);
	} else if (!strcmp(v, "fault") || !strcmp(v, "fault_mmio")) {
		uint64_t vc = num(l, "vcpu", 0, false, &pe);
		gpa_t gpa = num(l, "gpa", 0, true, &pe);
		unsigned acc = access_arg(l, &pe);

		if (!pe.key && (vc >= r->nr_vcpus || !r->vcpu[vc]))
			return syntax(l, "no such vcpu%s", "");
		if (!pe.key)
			*ret = v[5] ? kvm_mmu_page_fault_mmio(r->vcpu[vc], gpa, acc) :
				      kvm_tdp_page_fault(r->vcpu[vc], gpa, acc);
	} else if (!strcmp(v, "zap")) {
		gfn_t s = num(l, "gfn", 0, true, &pe), e = num(l, "end", 0, true, &pe);

		if (!pe.key)
			*ret = kvm_zap_gfn_range(kvm, s, e);
	} else if (!strcmp(v, "zap_all")) {
		*ret = kvm_mmu_zap_all(kvm);
	} else if (!strcmp(v, "zap_all_fast")) {
		*ret = kvm_mmu_zap_all_fast(kvm);
	} else if (!strcmp(v, "invalidate_start") || !strcmp(v, "invalidate_end") ||
		   !strcmp(v, "clear_flush_young") || !strcmp(v, "clear_young") ||
		   !strcmp(v, "test_young")) {
		hva_t s = num(l, "hva", 0, true, &pe), e = num(l, "end", 0, true, &pe);
		bool block = num(l, "may_block", 1, false, &pe);

		if (pe.key)
			goto out;
		if (!strcmp(v, "invalidate_start"))
			*ret = kvm_mmu_notifier_invalidate_range_start(kvm, s, e, block);
		else if (!strcmp(v, "invalidate_end"))
			*ret = kvm_mmu_notifier_invalidate_range_end(kvm, s, e, block);
		else if (!strcmp(v, "clear_flush_young"))
			*ret = kvm_mmu_notifier_clear_flush_young(kvm, s, e);
		else if (!strcmp(v, "clear_young"))
			*ret = kvm_mmu_notifier_clear_young(kvm, s, e);
		else
			*ret = kvm_mmu_notifier_test_young(kvm, s, e);
	} else if (!strcmp(v, "dirty_caps")) {
		unsigned c = names(l, "caps", caps_names, caps_bits, &pe);

		if (!pe.key)
			*ret = kvm_dirty_log_set_caps(kvm, c);
	} else if (!strcmp(v, "get_dirty_log")) {
		unsigned id = (unsigned)num(l, "slot", 0, true, &pe);
		struct kvm_memory_slot s;
		uint64_t *bm;

		if (pe.key)
			goto out;
		if (kvm_id_to_memslot(kvm, id, &s)) {
			*ret = -ENOENT;
			goto out;
		}
		bm = calloc((size_t)(s.npages + 63) / 64 + 1, sizeof(*bm));
		if (!bm)
			abort();
		*ret = kvm_get_dirty_log(kvm, id, bm);
		free(bm);
	} else if (!strcmp(v, "clear_dirty_log")) {
		unsigned id = (unsigned)num(l, "slot", 0, true, &pe);
		uint64_t first = num(l, "first", 0, true, &pe), n = num(l, "num", 0, true, &pe);
		const char *m = arg(l, "mask");
		uint64_t *mask;
		size_t words;

		if (pe.key)
			goto out;
		if (n > (1u << 24))
			return syntax(l, "clear_dirty_log takes at most num=16777216%s", "");
		/* mask=W0,W1,...: bit i of word k is page first + 64k + i;
		 * words not given are 0; no mask: every page named. */
		words = (size_t)(n + 63) / 64 + 1;
		mask = calloc(words, sizeof(*mask));
		if (!mask)
			abort();
		if (!m) {
			memset(mask, 0xff, words * sizeof(*mask));
		} else {
			for (size_t k = 0; *m; k++) {
				char w[24];
				size_t len = strcspn(m, ",");

				if (k >= words || len >= sizeof(w)) {
					free(mask);
					return syntax(l, "bad value for 'mask'%s", "");
				}
				memcpy(w, m, len);
				w[len] = 0;
				if (!parse_u64(w, &mask[k])) {
					free(mask);
					return syntax(l, "bad value for 'mask'%s", "");
				}
				m += len + (m[len] == ',');
			}
		}
		*ret = kvm_clear_dirty_log(kvm, id, first, n, mask);
		free(mask);
	} else if (!strcmp(v, "mark_dirty")) {
		const char *vs = arg(l, "vcpu");
		uint64_t vc = 0;
		gfn_t g = num(l, "gfn", 0, true, &pe);

		if (vs && (!parse_u64(vs, &vc) || vc >= r->nr_vcpus || !r->vcpu[vc]))
			return syntax(l, "no such vcpu '%s'", vs);
		if (!pe.key)
			*ret = vs ? kvm_vcpu_mark_page_dirty(r->vcpu[vc], g) :
				    kvm_mark_page_dirty(kvm, g);
	} else if (!strcmp(v, "dirty_ring_enable")) {
		uint64_t n = num(l, "entries", 0, true, &pe),
			 res = num(l, "reserve", 0, false, &pe);

		if (!pe.key)
			*ret = kvm_dirty_ring_enable(kvm, (uint32_t)n, (uint32_t)res);
	} else if (!strcmp(v, "dirty_ring_harvest") || !strcmp(v, "pml") ||
		   !strcmp(v, "map_range") || !strcmp(v, "pre_fault") || !strcmp(v, "mmu_load")) {
		rc = vcpu_call(r, l, &pe, ret);
	} else if (!strcmp(v, "expect_map")) {
		rc = expect_map(r, l, &pe, ret);
	} else if (!strcmp(v, "expect_private") || !strcmp(v, "expect_tdx_counts")) {
#if S2_ENABLED(CONFIG_S2_TDX)
		if (!r->tdxm)
			return syntax(l, "'%s' before 'tdx_init'", v);
		if (v[7] == 't')
			tdx_expect_counts(r, l, ret);
		else
			rc = tdx_expect(r, l, &pe, ret);
#else
		return syntax(l, "'%s' needs an s2mmu built with CONFIG_S2_TDX", v);
#endif
	} else if (!strcmp(v, "dirty_ring_reset")) {
		*ret = kvm_dirty_ring_reset(kvm);
	} else if (!strcmp(v, "unmap_range") || !strcmp(v, "wrprotect_range")) {
		gpa_t gpa = num(l, "gpa", 0, true, &pe);
		uint64_t size = num(l, "size", 0, true, &pe);

		if (!pe.key)
			*ret = v[0] == 'u' ? kvm_mmu_unmap_range(kvm, gpa, size) :
					     kvm_mmu_wrprotect_range(kvm, gpa, size);
	} else if (!strcmp(v, "attributes")) {
		static const char *const an[] = { "private", "0", "none", NULL };
		static const unsigned ab[] = { 1, 0, 0 };
		gfn_t s = num(l, "gfn", 0, true, &pe), e = num(l, "end", 0, true, &pe);
		unsigned a = names(l, "attrs", an, ab, &pe);

		if (!pe.key)
			*ret = kvm_vm_set_mem_attributes(kvm, s, e,
							 a ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0);
	} else if (!strcmp(v, "write_track_add") || !strcmp(v, "write_track_remove")) {
		gfn_t g = num(l, "gfn", 0, true, &pe);

		if (!pe.key)
			*ret = v[12] == 'a' ? kvm_write_track_add_gfn(kvm, g) :
					      kvm_write_track_remove_gfn(kvm, g);
	} else if (!strncmp(v, "tdx", 3)) {
#if S2_ENABLED(CONFIG_S2_TDX)
		rc = tdx_call(r, l, &pe, ret);
#else
		return syntax(l, "'%s' needs an s2mmu built with CONFIG_S2_TDX", v);
#endif
	} else {
		return syntax(l, "unknown call '%s'", v);
	}
out:
	if (rc)
		return rc;
	if (pe.key)
		return pe.missing ? syntax(l, "missing %s=", pe.key) :
				    syntax(l, "bad value for '%s'", pe.key);
	for (unsigned i = 0; i < l->nargs; i++)
		if (l->key[i])
			return syntax(l, "unknown argument '%s'", l->key[i]);
	return 0;
}

/* ---- the check ---- */

struct check {
	struct replay *r;
	const struct geom *g;
	uint64_t regs[2];
	uint64_t leaves, mismatches, bytes;
	struct out *o;
};

static int ref_walk(struct check *c, uint64_t gpa, struct ref_xlate *x)
{
	unsigned f = c->r->fmt_flags;

	memset(x, 0, sizeof(*x));
	switch (c->r->p.fmt) {
	case S2_FMT_X86_EPT:
		return ref_ept_walk(c->regs[0], f & S2_FMTF_MBEC ? REF_EPT_MBEC : 0, gpa, x);
	case S2_FMT_X86_NPT:
		return ref_npt_walk(c->regs[0], kvm_mmu_levels(c->r->kvm) == 5, gpa, x);
	case S2_FMT_ARM64_S2:
		return ref_arm64_walk(c->regs[0], c->regs[1],
				      (f & S2_FMTF_FWB ? REF_A64_FWB : 0) |
					      (f & S2_FMTF_XNX ? REF_A64_XNX : 0),
				      gpa, x);
	case S2_FMT_RISCV_G:
		return ref_riscv_walk(c->regs[0], f & S2_FMTF_PBMT ? REF_RISCV_SVPBMT : 0, gpa, x);
	default: return -1;
	}
	return -1;
}

static void mismatch(struct check *c, gfn_t gfn, const char *what, uint64_t want, uint64_t got)
{
	if (c->mismatches++ < 20)
		fprintf(stderr,
			"s2mmu replay: check: gpa %#" PRIx64 ": %s: library %#" PRIx64
			", reference walker %#" PRIx64 "\n",
			gfn << 12, what, want, got);
}

static int check_leaf(void *arg, gfn_t gfn, const struct s2_mapping *m)
{
	struct check *c = arg;
	/* The first and the last byte of the leaf. */
	uint64_t gpa[2] = { gfn << 12, (gfn << 12) + m->size - 1 };

	struct entry e;
	unsigned mask =
		S2_PROT_R | S2_PROT_W | S2_PROT_X | S2_PROT_HOST_WRITABLE | S2_PROT_MMU_WRITABLE;

	c->leaves++;
	c->bytes += m->size;
	/* This tool's decoder must read the raw entry as the library does. */
	entry_decode(c->g, m->pte, (unsigned)m->level, &e);
	if (e.kind != ENT_LEAF)
		mismatch(c, gfn, "decoder: not a leaf", (uint64_t)ENT_LEAF, (uint64_t)e.kind);
	else if (e.addr != m->hpa || e.size != m->size || (e.prot & mask) != (m->prot & mask))
		mismatch(c, gfn, "decoder: address, size or permissions", m->pte, e.addr);
	for (int i = 0; i < 2; i++) {
		struct ref_xlate x;

		if (ref_walk(c, gpa[i], &x)) {
			mismatch(c, gfn, "reference walk faults", 0, (uint64_t)x.fault);
			return 0;
		}
		if (x.hpa != m->hpa + (gpa[i] - (gfn << 12)))
			mismatch(c, gfn, "hpa", m->hpa, x.hpa - (gpa[i] - (gfn << 12)));
		if (x.level != m->level)
			mismatch(c, gfn, "level", (uint64_t)m->level, (uint64_t)x.level);
		if ((x.perm & (S2_PROT_R | S2_PROT_W)) != (m->prot & (S2_PROT_R | S2_PROT_W)))
			mismatch(c, gfn, "read/write permission", m->prot & 3, x.perm & 3);
	}
	return 0;
}

static int register_values(struct replay *r, uint64_t regs[2], struct geom *g)
{
	struct kvm *kvm = r->kvm;
	int e = -EINVAL;

	memset(g, 0, sizeof(*g));
	g->fmt = r->p.fmt;
	g->levels = kvm_mmu_levels(kvm);
	g->gpa_bits = kvm_gpa_bits(kvm);
	g->root = kvm_mmu_root_hpa(kvm);
	g->flags = (r->fmt_flags & S2_FMTF_AD ? TF_AD : 0) |
		   (r->fmt_flags & S2_FMTF_MBEC ? TF_MBEC : 0) |
		   (r->fmt_flags & S2_FMTF_SUPPRESS_VE ? TF_SVE : 0) |
		   (r->fmt_flags & S2_FMTF_FWB ? TF_FWB : 0) |
		   (r->fmt_flags & S2_FMTF_HD ? TF_HD : 0) |
		   (r->fmt_flags & S2_FMTF_XNX ? TF_XNX : 0) |
		   (r->fmt_flags & S2_FMTF_LPA2 ? TF_LPA2 : 0) |
		   (r->fmt_flags & S2_FMTF_PBMT ? TF_PBMT : 0);
	g->page_shift = r->p.granule == 16384 ? 14 : r->p.granule == 65536 ? 16 : 12;
	switch (r->p.fmt) {
#if S2_ENABLED(CONFIG_S2_FMT_X86_EPT)
	case S2_FMT_X86_EPT: e = kvm_x86_ept_eptp(kvm, &regs[0]); break;
#endif
#if S2_ENABLED(CONFIG_S2_FMT_X86_NPT)
	case S2_FMT_X86_NPT: e = kvm_x86_npt_ncr3(kvm, &regs[0]); break;
#endif
#if S2_ENABLED(CONFIG_S2_FMT_ARM64_S2)
	case S2_FMT_ARM64_S2:
		e = kvm_arm64_vtcr(kvm, 48, &regs[0]);
		if (!e)
			e = kvm_arm64_vttbr(kvm, &regs[1]);
		break;
#endif
#if S2_ENABLED(CONFIG_S2_FMT_RISCV_G)
	case S2_FMT_RISCV_G: e = kvm_riscv_hgatp(kvm, &regs[0]); break;
#endif
	default: break; /* the fake format has no registers */
	}
	if (!e && geom_init(g))
		e = -EINVAL;
	return e;
}

/*
 * expect_map gpa=A hpa=H|none [write=0|1]: a test's statement about the
 * tables at this point (tests write it where they found a wrong state):
 * the reference walker of the format translates A to H (with or without
 * write permission), or faults. *ret is 0 when it holds, 1 when not (the
 * line then counts as a failed expectation).
 */
static int expect_map(struct replay *r, struct line *l, struct parse_err *pe, long long *ret)
{
	gpa_t gpa = num(l, "gpa", 0, true, pe);
	const char *hs = arg(l, "hpa");
	uint64_t want = 0, wr = num(l, "write", 2, false, pe);
	bool none = hs && !strcmp(hs, "none");
	struct check c = { .r = r };
	struct ref_xlate x;
	struct geom g;
	int f;

	if (!hs && !pe->key) {
		pe->key = "hpa";
		pe->missing = true;
	}
	if (pe->key)
		return 0;
	if (!none && !parse_u64(hs, &want))
		return syntax(l, "bad value for '%s'", "hpa");
	l->has_expect = true;
	l->expect = 0;
	if (register_values(r, c.regs, &g)) {
		fprintf(stderr, "%s:%u: expect_map: no register values for this VM\n", l->file,
			l->no);
		*ret = 1;
		return 0;
	}
	f = ref_walk(&c, gpa, &x);
	if (none ? !f : f || x.hpa != want || (wr < 2 && !!(x.perm & S2_PROT_W) != !!wr)) {
		fprintf(stderr,
			"%s:%u: expect_map gpa %#" PRIx64 ": the reference walker %s %#" PRIx64
			"%s, the trace expects %s%s\n",
			l->file, l->no, gpa, f ? "faults at level" : "translates to",
			f ? (uint64_t)x.level : x.hpa,
			f		     ? "" :
			(x.perm & S2_PROT_W) ? " writable" :
					       " read-only",
			hs,
			wr == 2 ? "" :
			wr	? " writable" :
				  " read-only");
		*ret = 1;
	}
	return 0;
}

/* This tool's walk of the arena must find the leaves the library reports. */
struct own {
	uint64_t leaves, bytes, problems;
};

static void own_run(void *arg, const struct walk_run *run)
{
	struct own *w = arg;

	w->leaves += run->leaves;
	w->bytes += run->bytes;
}

static void own_problem(void *arg, uint64_t gpa, unsigned level, uint64_t pa, const char *what)
{
	struct own *w = arg;

	w->problems++;
	fprintf(stderr, "s2mmu replay: check: gpa %#" PRIx64 " level %u (pa %#" PRIx64 "): %s\n",
		gpa, level, pa, what);
}

int cmd_replay(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dump", no_argument, NULL, 'd' },
		{ "image-out", required_argument, NULL, 'o' },
		{ "no-check", no_argument, NULL, 'n' },
		{ "arena", required_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "ignore-ad", no_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false, dump = false, check = true;
	const char *image_out = NULL, *file;
	uint64_t arena_mib = 256;
	static struct replay r;
	struct line l = { 0 };
	char *buf = NULL;
	size_t cap = 0;
	FILE *in;
	struct out o;
	int c, rc = EXIT_OK;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dump = true; break;
		case 'o': image_out = optarg; break;
		case 'n': check = false; break;
		case 'a':
			if (!parse_u64(optarg, &arena_mib) || !arena_mib ||
			    arena_mib > (1u << 20)) {
				usage_error("replay", "bad arena size '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'j': json = true; break;
		case 'A': dump_ignore_ad = true; break;
		case 'h': fputs(replay_help, stdout); return EXIT_OK;
		default:
			usage_error("replay", "unknown option '%s'", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		usage_error("replay", "one TRACE file is needed");
		return EXIT_USAGE;
	}
	file = argv[optind];
	in = strcmp(file, "-") ? fopen(file, "r") : stdin;
	if (!in) {
		fprintf(stderr, "s2mmu replay: cannot read %s: %m\n", file);
		return EXIT_IO;
	}
	if (!arena_init((size_t)arena_mib)) {
		fprintf(stderr, "s2mmu replay: cannot map a %" PRIu64 " MiB arena\n", arena_mib);
		return EXIT_IO;
	}
	s2_hosted_init(&r.h);
	r.h.quiet = true;
	r.ops = *r.h.env.ops;
	r.ops.alloc_table = arena_alloc;
	r.ops.free_table = arena_free;
	r.ops.phys_to_virt = NULL;
	r.ops.gfn_to_pfn = replay_gfn_to_pfn;
	r.h.env.ops = &r.ops;
	r.h.env.virt_offset = 0;
	l.file = file;

	while (getline(&buf, &cap, in) > 0) {
		char raw[512];
		const char *fault_vcpu, *fault_gpa;
		long long ret;
		int s;

		l.no++;
		progress("replay: lines", l.no, 0);
		snprintf(raw, sizeof(raw), "%s", buf);
		r.deferred_text = strlen(buf) < sizeof(raw) ? raw : NULL;
		s = split(buf, &l);
		if (s < 0)
			continue;
		/* Before call(): it consumes the arguments. */
		fault_vcpu = peek(&l, "vcpu");
		fault_gpa = peek(&l, "gpa");
		if (s || (s = call(&r, &l, &ret))) {
			rc = s;
			break;
		}
		r.calls++;
		if (l.has_expect && raced_fault(&r, &l, fault_vcpu, fault_gpa, ret))
			continue;
		if (l.has_expect && ret != l.expect) {
			r.failed_expect++;
			if (!strncmp(l.verb, "expect_", 7))
				continue; /* it said what differed */
			fprintf(stderr, "%s:%u: %s returned %lld, the trace expects %lld\n", file,
				l.no, l.verb, ret, l.expect);
		} else if (!l.has_expect && ret < 0) {
			r.failed_calls++;
			fprintf(stderr, "%s:%u: %s failed: %lld\n", file, l.no, l.verb, ret);
		}
		if (!r.kvm && !strcmp(l.verb, "vm") && !l.has_expect) {
			rc = EXIT_LIBRARY;
			break;
		}
		if (r.deferred[0] && r.deferred_no != l.no)
			run_deferred(&r, &l);
	}
	if (r.deferred[0]) {
		r.failed_expect++;
		fprintf(stderr,
			"%s:%u: fault retried in the replay (an invalidation in progress) and "
			"never gave %lld afterwards\n",
			file, r.deferred_no, r.deferred_expect);
	}
	progress_end();
	free(buf);
	if (in != stdin)
		fclose(in);
	if (rc == EXIT_OK && !r.kvm) {
		fprintf(stderr, "%s: no VM was created (the first call must be 'vm')\n", file);
		rc = EXIT_USAGE;
	}
	if (rc != EXIT_OK && rc != EXIT_LIBRARY)
		goto done;

	out_init(&o, stdout, json);
	out_obj(&o, NULL);
	out_str(&o, "trace", file);
	out_num(&o, "calls", r.calls);
	out_num(&o, "failed_expectations", r.failed_expect);
	out_num(&o, "failed_calls", r.failed_calls);
	out_num(&o, "raced_faults", r.raced);
	if (r.kvm) {
		struct kvm_mmu_stats st;
		struct kvm_dirty_stats ds;
		char line[512];
		uint64_t regs[2] = { 0, 0 };
		struct geom g;
		struct image img = { .data = arena.base,
				     .size = arena.used,
				     .base = (uint64_t)(uintptr_t)arena.base };

		if (kvm_get_stats(r.kvm, &st) || kvm_get_dirty_stats(r.kvm, &ds)) {
			fprintf(stderr, "s2mmu replay: the VM is bugged\n");
			rc = EXIT_FOUND;
		}
		kvm_format_stats(r.kvm, line, sizeof(line));
		out_str(&o, "fmt", s2_fmt_name(kvm_fmt(r.kvm)));
		out_hex(&o, "root", kvm_mmu_root_hpa(r.kvm));
		out_hex(&o, "image_base", img.base);
		out_hex(&o, "image_size", img.size);
		out_obj(&o, "stats");
		out_num(&o, "faults", st.faults);
		out_num(&o, "faults_fixed", st.faults_fixed);
		out_num(&o, "faults_spurious", st.faults_spurious);
		out_num(&o, "faults_retry", st.faults_retry);
		out_num(&o, "exits_mmio", st.exits_mmio);
		out_num(&o, "exits_mmio_cached", st.exits_mmio_cached);
		out_num(&o, "mmio_entries", st.mmio_entries);
		out_num(&o, "mmio_wraps", st.mmio_wraps);
		out_num(&o, "exits_ro_write", st.exits_ro_write);
		out_num(&o, "flushes", st.flushes);
		out_num(&o, "zapped_leaves", st.zapped_leaves);
		out_num(&o, "cur_table_pages", st.cur_table_pages);
		out_num(&o, "dirty_marked", ds.marked);
		out_num(&o, "dirty_reaped", ds.reaped);
		out_end_obj(&o);
		if (!json) {
			printf("replayed %" PRIu64 " calls from %s: %" PRIu64
			       " failed expectations, %" PRIu64 " failed calls, %" PRIu64
			       " faults that raced in the run\n",
			       r.calls, file, r.failed_expect, r.failed_calls, r.raced);
			printf("%s, root %#" PRIx64 "; image base %#" PRIx64 " size %#" PRIx64 "\n",
			       s2_fmt_name(kvm_fmt(r.kvm)), kvm_mmu_root_hpa(r.kvm), img.base,
			       img.size);
			printf("stats: %s\n", line);
		}
		if (register_values(&r, regs, &g)) {
			fprintf(stderr, "s2mmu replay: no register values for this VM\n");
			rc = EXIT_FOUND;
		} else {
			if (dump) {
				if (o.json) {
					out_arr(&o, "dump");
					dump_image(&o, &g, &img, 0, ~0ull, "(arena)");
					out_end_arr(&o);
				} else {
					dump_image(&o, &g, &img, 0, ~0ull, "(arena)");
				}
			}
			if (check) {
				struct check ck = {
					.r = &r, .g = &g, .regs = { regs[0], regs[1] }, .o = &o
				};
				struct own own = { 0 };
				struct walk_ops ops = { .run = own_run,
							.problem = own_problem,
							.arg = &own };
				struct walk_stats ws;

				kvm_mmu_for_each_leaf(r.kvm, 0, 1ull << (kvm_gpa_bits(r.kvm) - 12),
						      check_leaf, &ck);
				walk_image(&g, &img, 0, ~0ull, &ops, &ws);
				if (own.leaves != ck.leaves || own.bytes != ck.bytes) {
					fprintf(stderr,
						"s2mmu replay: check: the library lists %" PRIu64
						" leaves (%#" PRIx64
						" bytes), the image walk %" PRIu64 " (%#" PRIx64
						")\n",
						ck.leaves, ck.bytes, own.leaves, own.bytes);
					ck.mismatches++;
				}
				ck.mismatches += own.problems;
				out_obj(&o, "check");
				out_num(&o, "leaves", ck.leaves);
				out_hex(&o, "bytes", ck.bytes);
				out_num(&o, "mismatches", ck.mismatches);
				out_end_obj(&o);
				if (!json)
					printf("check: %" PRIu64 " leaves (%#" PRIx64
					       " bytes) against the reference walker and the image "
					       "walk: %" PRIu64 " mismatches\n",
					       ck.leaves, ck.bytes, ck.mismatches);
				if (ck.mismatches)
					rc = EXIT_FOUND;
			}
		}
		if (image_out) {
			FILE *f = fopen(image_out, "wb");

			if (!f || fwrite(arena.base, 1, arena.used, f) != arena.used || fclose(f)) {
				fprintf(stderr, "s2mmu replay: cannot write %s: %m\n", image_out);
				rc = EXIT_IO;
			}
		}
	}
#if S2_ENABLED(CONFIG_S2_TDX)
	if (r.tdxm) {
		out_obj(&o, "tdx_model");
		out_num(&o, "illegal", r.tdxm->illegal);
		out_num(&o, "leaves", tdxm_nr_leaves(r.tdxm));
		out_num(&o, "sept_pages", tdxm_nr_sept(r.tdxm));
		out_num(&o, "busy", r.tdxm->n_busy);
		out_end_obj(&o);
		if (!json)
			printf("tdx module model: %u leaves, %u S-EPT pages, %u illegal calls, "
			       "%" PRIu64 " busy answers%s%s\n",
			       tdxm_nr_leaves(r.tdxm), tdxm_nr_sept(r.tdxm), r.tdxm->illegal,
			       r.tdxm->n_busy, r.tdxm->illegal ? ", the first: " : "",
			       r.tdxm->first_illegal);
		if (r.tdxm->illegal)
			rc = EXIT_FOUND;
	}
#endif
	out_end_obj(&o);
	if (r.failed_expect && rc == EXIT_OK)
		rc = EXIT_FOUND;
	if (r.failed_calls && rc == EXIT_OK)
		rc = EXIT_LIBRARY;
done:
	if (r.kvm) {
		kvm_destroy_vm(r.kvm);
		s2_hosted_quiesce(&r.h);
	}
#if S2_ENABLED(CONFIG_S2_TDX)
	free(r.tdxm);
	free(answers);
#endif
	return rc;
}
