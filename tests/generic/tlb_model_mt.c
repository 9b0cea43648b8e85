// SPDX-License-Identifier: MIT
/*
 * The flush promise, checked against a model of the hardware (issue 10;
 * docs/testing.md "The TLB model checker" is the long form).
 *
 * vcpu threads run a guest: each owns a simulated TLB (tests/generic/
 * tlb_sim.h: leaf translations and non-leaf walk entries, filled only by
 * walks of the live tables from the root the vcpu loaded, tagged by root on
 * EPT and by VMID / ASID elsewhere, Accessed and Dirty set as the format's
 * hardware sets them) and makes random reads and writes through it. The
 * vcpu loop is docs/embedding.md's: quiescent state, kvm_vcpu_entry_actions()
 * and its actions (LOAD_ROOT, FLUSH_CURRENT, FLUSH_ALL), kvm_vcpu_enter_guest(),
 * accesses until the TLB and the tables say no (exit, kvm_tdp_page_fault())
 * or a kick moved the mode on (exit at the next access), now and then a
 * switch of address space (kvm_mmu_load). One configuration per format keeps
 * the older loop that handles requests itself and never loads a root. The
 * env's TLB hooks are the architecture's broadcast invalidations where it
 * has them (arm64 TLBI ...IS; for RISC-V an SBI remote HFENCE in some
 * configurations, none at all in others): they empty the matching entries
 * of every vcpu's TLB at once, waiting for an access in progress (TLBI +
 * DSB). A kick only counts: the vcpu polls its mode before every access.
 *
 * A mutator thread drives the VM with a seeded random mix: zaps, zap-all,
 * host invalidations (start, the host moves the pages to new frames, end;
 * sometimes a memslot added, moved or deleted inside, and bursts of that
 * while the vcpus crowd on the slot), memslot add / delete / move /
 * read-only, dirty logging on and off (eager split, collapse), harvest
 * rounds (get, get + clear, PML, dirty rings), write tracking, aging, memory
 * attribute conversions, kvm_mmu_map_range() and kvm_mmu_unmap_range()
 * (map_one(): from a vcpu of the mutator's own that never runs, ranges of a
 * few pages, which take the read-side try into empty entries and the write
 * side's replace from the first present one, or up to a slot, which take
 * the invalidation and the batched fill, at times twice in a row; mapped,
 * where the model allows, to the frames the host does NOT back the pages
 * with, after which the host backs them with those: see PFN_BASE). A device
 * thread writes pages outside any vcpu (kvm_mark_page_dirty), flushes
 * (kvm_flush_remote_tlbs*: flushes race flushes) and asks test_young (half
 * of them where the mutator zaps or maps now, and often stopped inside its
 * RCU section: a lockless walk of tables a write side may unlink) and
 * lookups. Env hooks add random delays and
 * "preempt" the calling thread a few microseconds later (a timer signal
 * whose handler sleeps), which opens windows that contain no hook.
 *
 * What is checked:
 *  1. After every mutator call: no vcpu in guest mode (IN_GUEST or EXITING)
 *     holds a usable TLB entry the tables of its root no longer grant
 *     (another pfn or none, write access gone without even MMU-writable, a
 *     walk entry for a table no longer linked there) or runs on an invalid
 *     root, and a vcpu outside guest mode holding one has a flush or reload
 *     pending. For the gfns a dirty-logging call that promises a flush
 *     covers (enabling, get, clear, ring reset), no cached write access over
 *     a leaf that lost it and no cached dirty state over a leaf whose dirty
 *     state was collected either. Concurrency is resolved by serialising:
 *     only the mutator calls what changes entries (the device thread
 *     records, flushes and reads), and vcpu faults, which may zap a huge
 *     leaf and flush, wait at a gate while a check reads the TLBs and the
 *     tables; so whatever a check finds stale was left by a call that
 *     returned.
 *  2. At every access, under the TLB lock: the pfn used is the one the host
 *     backs the page with now (either frame while a kvm_mmu_map_range()
 *     that moves it runs; after it, only the new one), and the host is not
 *     changing that page
 *     (between its invalidate_range_start and _end); a walk never reads a
 *     freed table. A fault that ran entirely inside one invalidation of its
 *     page does not return RET_PF_FIXED, and one that asks the host for a
 *     page being changed, through the slot it found, finds the gfn inside
 *     the invalidation in progress (a slot added or moved meanwhile joins
 *     it before it can be found). Right after kvm_mmu_map_range() returns,
 *     the vcpu's root maps the range to what the call was given.
 *  3. Dirty logging: at the end of every harvest round, every write that
 *     completed before the round began (from a vcpu, through a stale TLB
 *     entry too, or emulated, or from the device) was reported by a round
 *     that began after the write did, including writes whose leaf was
 *     zapped, unmapped, moved or zapped-all in between.
 *  4. Memory reuse: the env poisons metadata blocks and table pages when the
 *     library frees them and keeps them in quarantine (poison checked intact
 *     when they are released; under ASan both are also poisoned for ASan,
 *     so a read of a freed memslot array or bitmap, or a walk of a freed
 *     table by the library (a lockless test_young too), is reported at once;
 *     the simulated hardware reads such a table as poison); and
 *     it checks the RCU it provides: when synchronize_rcu returns, or a
 *     call_rcu callback runs, no read-side section (liburcu) that began
 *     before may still run, and no CPU online all along may have reported
 *     no quiescent state (the freestanding SMP RCU).
 *
 * What it catches is shown by `make mutations` (scripts/mutations/,
 * docs/testing.md): among them map_range's write-side replace without its
 * flush (map-hold-flush), its read-side try installing over present leaves
 * (map-empty-replaces), a write side's unlinked tables freed before its
 * flush (free-before-flush) or under a lockless walk (free-now-walkers,
 * under ASan).
 *
 * Environment: TLB_SEED (default: a fixed seed per configuration, printed
 * in every failure), TLB_CFG=<name> (one configuration), TLB_OPS (mutator
 * operations, default 3000), TLB_SECONDS (at most so long per configuration),
 * TLB_ONLY=<operation> (only that one: zap, invalidate, burst, map_range,
 * unmap_range, ...),
 * TLB_TRACE=1 (every operation on stderr), TLB_VERBOSE=1 (statistics),
 * TLB_SPACES=0 (vcpus stay in address space 0), TLB_MAP_TRACKED=0 (skip
 * the check that map_range leaves write-tracked gfns read-only),
 * TLB_BATCH (the VM's yield
 * batch, default 256 leaves), TLB_FAST_MIN (the least leaves a memslot
 * removal takes the fast zap for, default 64), TLB_RECORD=0 (no trace of
 * the run; a failing run's trace goes to $S2_TRACE_DIR, S2_TRACE_ALL=1
 * keeps passing runs' too: docs/testing.md). The operations each thread
 * chooses follow from the seed; the interleaving does not.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "s2mmu/dirty.h"
#include "s2mmu/notifier.h"
#include "tests/generic/tlb_sim.h"
#include "tests/lib/testlib.h"
#include "s2mmu/config.h"
#include "s2mmu/tdx.h"

#ifndef TEST_FMT
#error "build with -DTEST_FMT=S2_FMT_..."
#endif

#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define T_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define T_TSAN 1
#endif
#endif
/* The freestanding env's quiescent-state RCU (part of the freestanding
 * build only), compiled in here as test_env_freestanding.c does the pool. */
#if defined(__has_include)
#if __has_include("env/freestanding/rcu.c")
#define T_FS_RCU 1
#include "env/freestanding/pool.c"
#include "env/freestanding/rcu.c"
#endif
#endif
#ifdef T_ASAN
#include <sanitizer/asan_interface.h>
#define t_asan_poison(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define t_asan_unpoison(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define t_asan_poison(p, n) ((void)(p), (void)(n))
#define t_asan_unpoison(p, n) ((void)(p), (void)(n))
#endif

/* Mutator operations per configuration (TLB_OPS overrides), and at most
 * so many seconds of them (TLB_SECONDS): make check stays bounded on a slow
 * machine, the operations done are the same prefix of the seed's sequence.
 * A mutator making no progress for WATCHDOG_S aborts with the seed. */
#define DEFAULT_OPS 3000
#if defined(T_TSAN)
#define DEFAULT_SECONDS "1.5"
#elif defined(T_ASAN)
#define DEFAULT_SECONDS "1"
#else
#define DEFAULT_SECONDS "1.5"
#endif
#define WATCHDOG_S 30

#define MAXV 4
#define NSLOTS 6
/* Each slot id owns a fixed 16 MiB of host-virtual memory; a slot uses its
 * first npages (moves keep the hva, as kvm_move_memslot does). */
#define REGION_PAGES 4096ull
#define HOST_PAGES (NSLOTS * REGION_PAGES)
#define HVA_BASE 0x100000000000ull
/* The pfn of host page p at version v is PFN_BASE + p + v * R.vstride: the
 * host "moves" a page (a new frame) by bumping its version. Each version has
 * a second frame ALT_OFF pfns above: kvm_mmu_map_range() maps a range to the
 * frames the host does not back it with, and the host then backs the pages
 * with those (R.alt; faults resolve them from then on). */
#define PFN_BASE (1ull << 20)
#define ALT_OFF (1ull << 16)
#define ALT_ON 1   /* R.alt: backed by the other frame */
#define ALT_BOTH 2 /* R.alt: a kvm_mmu_map_range() moving it runs: either frame */
/* Guest-physical window the slots are placed in (gfns). */
#define GFN_LO 0x40000ull
#define GFN_WINDOW (1ull << 16)
#define PML_SIZE 512
#define BATCH 64
#define MAX_TRACKED 16

enum hooks { HOOKS_BCAST, HOOKS_NONE };

struct cfg {
	enum s2_fmt_id fmt;
	const char *name;
	unsigned flags_set, flags_clear; /* S2_FMTF_* against t_default_params */
	unsigned caps;			 /* KVM_DIRTY_LOG_* */
	bool rings;
	enum hooks hooks;
	int host_level; /* largest level the host maps at (1 or 2) */
	unsigned nvcpus;
	bool fsrcu;  /* RCU from env/freestanding (quiescent states), else liburcu */
	bool legacy; /* the vcpu loop checks requests itself and never loads a
			root (no kvm_vcpu_entry_actions): zap-all zaps in place */
	bool td;     /* a TD (x86-ept with CONFIG_S2_TDX): memslots are its shared
			half, every guest access and fault goes through the shared
			bit, conversions to private make a gfn exit (MEMORY_FAULT);
			its private half has its own checker (tests/tdx/test_tlb_mt.c) */
};

/* A TD's shared bit as a gfn (0 for other VMs): the vcpus' accesses, their
 * TLB entries and the hardware walks are at memslot gfn | t_sbit. */
static gfn_t t_sbit;

/* ---- run state ---- */

/* Threads that call into the library, as CPUs of the freestanding RCU:
 * main, the vcpus, the mutator, the device. */
#define NCPUS (MAXV + 3)
#define CPU_MUTATOR (MAXV + 1)
#define CPU_DEVICE (MAXV + 2)

struct vc {
	struct kvm_vcpu *v;
	unsigned idx;
	uint64_t rng;
	struct sim_tlb tlb;
	uint64_t pml[PML_SIZE];
	unsigned npml;
	uint64_t exits; /* atomic: guest sessions ended (PML handed over) */
	bool session;	/* atomic: from entry to the PML hand-over after the exit */
	bool acting;	/* between kvm_vcpu_entry_actions() and doing them (TLB lock) */
	unsigned space; /* the address space of the root it runs on */
	/* the access to repeat after an exit (hardware re-executes it) */
	bool have_pending;
	gpa_t pend_gpa;
	bool pend_write;
	unsigned spurious_in_a_row;
	/* where this vcpu works */
	unsigned hot_slot;
	uint64_t hot_off, hot_left;
	/* the last events of this vcpu, for failure reports (atomic words:
	 * time in us << 24 | event << 20 | mutator operation & 0xfffff) */
	uint64_t ev[32];
	unsigned nev;
	/* statistics (owner only, read after join) */
	uint64_t accesses, writes, hits, faults, fixed, spurious, retries, mmio, ro, tracked,
		emulated, pml_handed;
	pthread_t th;
};

struct slotm {
	bool present;
	gfn_t base;
	uint64_t npages;
	unsigned flags;
	uint64_t session; /* logging: rounds_done when it began (else UINT64_MAX) */
};

struct qent {
	void *p; /* block as the base env handed it out */
	size_t bytes;
	hpa_t pa;
	bool table;
};
#define QCAP 2048

#define RCU_READERS 64

static struct run {
	const struct cfg *cfg;
	uint64_t seed;
	struct s2_hosted h;
	struct s2_env_ops base; /* the hosted hooks, called through */
	struct kvm *kvm;
	unsigned nv; /* vcpus created (atomic) */
	struct vc vc[MAXV];
	struct kvm_vcpu *mv; /* the mutator's vcpu, never run: kvm_mmu_map_range() */
	bool hwd;	     /* dirty logging uses hardware dirty state */
	bool spaces;	     /* vcpus switch address spaces (TLB_SPACES, default 1) */
	bool map_tracked;    /* TLB_MAP_TRACKED: map_range leaves tracked gfns read-only */
	uint64_t vstride;    /* pfns between host page versions */

	/* host memory */
	uint8_t ver[HOST_PAGES];	  /* atomic */
	uint8_t flux[HOST_PAGES];	  /* atomic: invalidations in progress */
	uint32_t fluxgen[HOST_PAGES];	  /* atomic: invalidations begun */
	uint32_t remap_op[HOST_PAGES][2]; /* atomic: operations of its last two remaps */
	uint8_t uni[HOST_PAGES / 512];	  /* atomic: 2 MiB block has one version */
	uint8_t alt[HOST_PAGES];	  /* atomic: ALT_ON, ALT_BOTH */

	/* memslots: the mutator's model, and what vcpus and the device read */
	struct slotm slot[NSLOTS];
	uint64_t lay_base[NSLOTS], lay_np[NSLOTS]; /* atomic; base ~0: none */
	uint64_t lay_seq;			   /* atomic, odd while changing */
	unsigned focus;				   /* atomic: slot id + 1 vcpus crowd on, or 0 */
	gfn_t tracked[MAX_TRACKED];
	unsigned ntracked;

	/* dirty logging */
	uint64_t rounds_started, rounds_done; /* atomic */
	uint64_t mx[HOST_PAGES];	      /* atomic: max (e + 1) of writes done */
	uint64_t lastrep[HOST_PAGES];	      /* round that last reported the page */
	uint64_t snap[HOST_PAGES];

	/* the check gate: vcpu faults (read side) against checks (write) */
	pthread_rwlock_t gate;

	/* quarantine of freed memory */
	pthread_mutex_t qlock;
	struct qent q[QCAP];
	unsigned qhead, qn;

#ifdef T_FS_RCU
	struct s2_freestanding fs;
	struct s2_fs_cpu fs_cpus[NCPUS];
#endif
	/* Each CPU's quiescent states and offline periods as this test reports
	 * them (see fs_qs). */
	struct {
		uint64_t ev;
		uint32_t online;
	} cpu[NCPUS];

	/* RCU readers, for the grace-period check */
	uint64_t rcu_ticket;
	uint64_t rcu_start[RCU_READERS]; /* atomic: ticket when the section began, 0 idle */
	unsigned rcu_nreaders;

	/* progress, failure, stop */
	bool stop;	    /* atomic */
	bool failed;	    /* atomic */
	char failmsg[2048]; /* the first failure */
	uint64_t ops_done;  /* atomic */
	uint64_t hint;	    /* atomic: host page + 1 where the mutator zaps or maps now */
	uint64_t op_t0;	    /* when the current operation began (ns) */
	const char *cur_op; /* atomic pointer: the mutator's current operation */

	/* statistics */
	struct {
		const char *name;
		uint64_t n, ns;
	} opstat[20];
	uint64_t checks, checked_entries, rounds, reported, lost, kicks, bcast, quarantined,
		rcu_checks, host_remaps, device_writes, device_flushes, preempts, maps, map_moves,
		map_pages;
} R;

static __thread int t_reader = -1;
static __thread timer_t t_timer; /* this thread's preemption timer */
static __thread bool t_timer_ok;
static __thread uint64_t t_sleep_rng;
static __thread int t_cpu = -1; /* this thread's CPU index (freestanding RCU) */
static __thread int t_depth;	/* rcu_read_lock nesting */
static __thread uint64_t t_rng; /* jitter */
static __thread const char *t_who = "main";
static __thread bool t_young; /* in the device's test_young */

/* ---- failures ---- */

static void tr_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void tfail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void tfail(const char *fmt, ...)
{
	bool was = false;
	va_list ap;

	if (!__atomic_compare_exchange_n(&R.failed, &was, true, false, __ATOMIC_SEQ_CST,
					 __ATOMIC_SEQ_CST)) {
		__atomic_store_n(&R.stop, true, __ATOMIC_SEQ_CST);
		return;
	}
	int n = snprintf(R.failmsg, sizeof(R.failmsg),
			 "[%s/%s seed=%#" PRIx64 " %s, op %" PRIu64 " %s] ", TEST_FMT_NAME,
			 R.cfg->name, R.seed, t_who, __atomic_load_n(&R.ops_done, __ATOMIC_RELAXED),
			 __atomic_load_n(&R.cur_op, __ATOMIC_RELAXED));
	va_start(ap, fmt);
	vsnprintf(R.failmsg + n, sizeof(R.failmsg) - (size_t)n, fmt, ap);
	va_end(ap);
	fprintf(stderr, "FAIL %s\n", R.failmsg);
	tr_line("# FAIL %s", R.failmsg); /* where in the calls it was found */
	__atomic_store_n(&R.stop, true, __ATOMIC_SEQ_CST);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* TLB_TRACE=1: every mutator operation on stderr, with its arguments. */
static bool tracing;

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...)
{
	va_list ap;

	if (!tracing)
		return;
	fprintf(stderr,
		"op %" PRIu64 " @%" PRIu64 "us: ", __atomic_load_n(&R.ops_done, __ATOMIC_RELAXED),
		(uint64_t)(now_ns() / 1000) % 100000000);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static bool stopping(void)
{
	return __atomic_load_n(&R.stop, __ATOMIC_RELAXED);
}

/*
 * ---- the run as a trace (CONFIG_S2_TRACE builds; docs/testing.md) ----
 *
 * The library's call trace of every thread goes into one buffer (a line is
 * appended where an atomic counter says: no lock, no syscall on the vcpus'
 * paths), with the simulated host as host / host_block lines and the
 * failure as a comment; a failing configuration keeps it as
 * $S2_TRACE_DIR/tlb_model-<fmt>-<cfg>-<seed>.trace. The mutator's and the
 * main thread's lines keep their results; a vcpu's or the device's line
 * keeps its result as a comment (those calls race the mutator's, so a
 * one-thread replay need not meet them).
 */
#define TR_CAP (256ull << 20)
static struct {
	char *buf;
	uint64_t len; /* bytes claimed */
	uint64_t end; /* TR_CAP, or where the first line that did not fit began */
} TR;

static void tr_put(const char *line, size_t n)
{
	uint64_t at, end;

	if (!TR.buf)
		return;
	at = __atomic_fetch_add(&TR.len, n, __ATOMIC_RELAXED);
	if (at + n <= TR_CAP) {
		memcpy(TR.buf + at, line, n);
		return;
	}
	end = __atomic_load_n(&TR.end, __ATOMIC_RELAXED);
	while (at < end && !__atomic_compare_exchange_n(&TR.end, &end, at, false, __ATOMIC_RELAXED,
							__ATOMIC_RELAXED))
		;
}

static void tr_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void tr_line(const char *fmt, ...)
{
	char line[1200];
	va_list ap;
	int n;

	if (!TR.buf)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	for (int i = 0; i < n; i++)
		if (line[i] == '\n')
			line[i] = ' '; /* one line (a failure message may hold more) */
	line[n++] = '\n';
	tr_put(line, (size_t)n);
}

static uint64_t pfn_of(uint64_t page, unsigned version);
static uint64_t frame_of(uint64_t page);

/* The host's backing of pages [p0, p1) as host_block lines: runs of one
 * frame offset (version and frame), at 2 MiB where the host maps the block
 * whole. */
static void tr_host(uint64_t p0, uint64_t p1)
{
	for (uint64_t p = p0, q; p < p1; p = q) {
		uint64_t off = frame_of(p) - p;
		bool uni = __atomic_load_n(&R.uni[p / 512], __ATOMIC_RELAXED);

		for (q = p + 1; q < p1 && frame_of(q) - q == off; q++)
			;
		tr_line("host_block hva=%#llx end=%#llx pfn_off=%#llx level=%d",
			(unsigned long long)(HVA_BASE + p * 4096),
			(unsigned long long)(HVA_BASE + q * 4096),
			(unsigned long long)(off - (HVA_BASE >> S2_GFN_SHIFT)),
			R.cfg->host_level >= 2 && uni ? 2 : 1);
	}
}

/* Keep the run's trace (a failure, or S2_TRACE_ALL set). */
static void tr_save(void)
{
	const char *dir = getenv("S2_TRACE_DIR");
	char path[4096];
	uint64_t len = __atomic_load_n(&TR.len, __ATOMIC_RELAXED);
	FILE *f;

	if (!TR.buf)
		return;
	if (len > TR.end)
		len = TR.end;
	snprintf(path, sizeof(path), "%s/tlb_model-%s-%s-%" PRIx64 ".trace",
		 dir && *dir ? dir : ".", TEST_FMT_NAME, R.cfg->name, R.seed);
	f = fopen(path, "w");
	if (!f || fwrite(TR.buf, 1, len, f) != len || fclose(f)) {
		print_error("cannot write the run's trace %s\n", path);
		return;
	}
	print_error("the run as a trace: %s%s (s2mmu replay %s; docs/testing.md says what it "
		    "reproduces)\n",
		    path, TR.end < TR_CAP ? " (cut short: the buffer filled)" : "", path);
}

/* The env's log hook: the library's trace lines into the buffer. */
static void w_log(void *ctx, enum s2_log_level level, const char *msg)
{
	const char *res;

	if (level != S2_LOG_TRACE) {
		R.base.log(ctx, level, msg);
		return;
	}
	res = strstr(msg, " => ");
	if (res && (!strncmp(msg, "clear_flush_young ", 18) || !strncmp(msg, "clear_young ", 12) ||
		    !strncmp(msg, "test_young ", 11)))
		/* The simulated hardware's Accessed bits are not in the trace. */
		tr_line("%.*s # %s, hardware A bits%s", (int)(res - msg), msg, t_who, res);
	else if (!res || !strcmp(t_who, "mutator") || !strcmp(t_who, "main"))
		tr_line("%s", msg);
	else
		tr_line("%.*s # %s%s", (int)(res - msg), msg, t_who, res);
}

static uint64_t rnd(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static uint64_t rnd_below(uint64_t *s, uint64_t n)
{
	return n ? rnd(s) % n : 0;
}

/* Let the vcpus run for about @us microseconds (a yield would give the
 * mutator's core away for a whole time slice). */
static void fs_qs(void);

static void spin_us(uint64_t us)
{
	uint64_t end = now_ns() + us * 1000;

	while (now_ns() < end && !stopping())
		fs_qs(); /* no reference held while waiting */
}

/* ---- host memory ---- */

static uint64_t pfn_of(uint64_t page, unsigned version)
{
	return PFN_BASE + page + (uint64_t)version * R.vstride;
}

/* The frame the host backs @page with now. */
static uint64_t frame_of(uint64_t page)
{
	return pfn_of(page, __atomic_load_n(&R.ver[page], __ATOMIC_ACQUIRE)) +
	       (__atomic_load_n(&R.alt[page], __ATOMIC_ACQUIRE) & ALT_ON ? ALT_OFF : 0);
}

/* Host page and version of @pa, and whether it is the version's other
 * frame (@alt may be NULL); false when no host page ever had it. */
static bool host_page_of(hpa_t pa, uint64_t *page, unsigned *version, bool *alt)
{
	uint64_t pfn = pa >> S2_GFN_SHIFT, low = pfn % R.vstride;
	bool a = low >= PFN_BASE + ALT_OFF;

	if (a)
		low -= ALT_OFF;
	if (low < PFN_BASE || low - PFN_BASE >= HOST_PAGES || pfn / R.vstride > 255)
		return false;
	*page = low - PFN_BASE;
	*version = (unsigned)(pfn / R.vstride);
	if (alt)
		*alt = a;
	return true;
}

/* A 2 MiB block is one host mapping while its pages have one version and
 * one kind of frame. */
static void host_block_update(uint64_t b)
{
	uint8_t v0 = __atomic_load_n(&R.ver[b * 512], __ATOMIC_RELAXED);
	uint8_t a0 = __atomic_load_n(&R.alt[b * 512], __ATOMIC_RELAXED) & ALT_ON;
	bool uni = true;

	for (unsigned i = 1; i < 512 && uni; i++)
		uni = __atomic_load_n(&R.ver[b * 512 + i], __ATOMIC_RELAXED) == v0 &&
		      (__atomic_load_n(&R.alt[b * 512 + i], __ATOMIC_RELAXED) & ALT_ON) == a0;
	__atomic_store_n(&R.uni[b], uni, __ATOMIC_RELEASE);
}

/* The host backs pages [p0, p1) with new frames (inside an invalidation). */
static void host_remap(uint64_t p0, uint64_t p1)
{
	for (uint64_t b = p0 / 512; b <= (p1 - 1) / 512; b++)
		__atomic_store_n(&R.uni[b], 0, __ATOMIC_RELEASE);
	for (uint64_t p = p0; p < p1; p++) {
		__atomic_store_n(&R.remap_op[p][1], R.remap_op[p][0], __ATOMIC_RELAXED);
		__atomic_store_n(&R.remap_op[p][0],
				 (uint32_t)__atomic_load_n(&R.ops_done, __ATOMIC_RELAXED),
				 __ATOMIC_RELAXED);
		/* The new frame is the version's own (no longer the one
		 * kvm_mmu_map_range() gave). */
		__atomic_store_n(&R.alt[p], 0, __ATOMIC_RELEASE);
		__atomic_store_n(&R.ver[p], (uint8_t)(R.ver[p] + 1), __ATOMIC_RELEASE);
	}
	for (uint64_t b = p0 / 512; b <= (p1 - 1) / 512; b++)
		host_block_update(b);
	/* The trace: the blocks touched, as the host backs them now. */
	tr_host(p0 / 512 * 512, ((p1 - 1) / 512 + 1) * 512);
	R.host_remaps++;
}

static void host_flux(uint64_t p0, uint64_t p1, int d)
{
	for (uint64_t p = p0; p < p1; p++) {
		if (d > 0)
			__atomic_fetch_add(&R.fluxgen[p], 1, __ATOMIC_SEQ_CST);
		__atomic_fetch_add(&R.flux[p], (uint8_t)d, __ATOMIC_SEQ_CST);
	}
}

/* Check 2: the translation a vcpu just used. */
static void host_check_access(struct vc *s, const struct sim_access *a);

/* ---- preemption ---- */

/*
 * Some windows are a few instructions long and contain no hook (a memslot
 * published before the write side of mmu_lock is taken): only an interrupt
 * or a preemption at the wrong instruction opens them. So hooks arm a
 * one-shot timer of the calling thread a random 0.2..few microseconds ahead
 * (preempt_soon), and its signal handler sleeps 20..150 us, as a preempted
 * thread would: the thread stops at a random instruction just after the
 * hook, with whatever it had half done visible to the others.
 */
static void on_preempt(int sig)
{
	struct timespec ts;

	(void)sig;
	t_sleep_rng = t_sleep_rng * 6364136223846793005ull + 1442695040888963407ull;
	ts.tv_sec = 0;
	ts.tv_nsec = 20000 + (long)((t_sleep_rng >> 33) % 130000);
	nanosleep(&ts, NULL);
	__atomic_fetch_add(&R.preempts, 1, __ATOMIC_RELAXED);
}

static void preempt_thread_init(void)
{
	struct sigevent sev;

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIGUSR1;
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif
	sev.sigev_notify_thread_id = (pid_t)syscall(SYS_gettid);
	t_timer_ok = !timer_create(CLOCK_MONOTONIC, &sev, &t_timer);
	t_sleep_rng = R.seed ^ (uint64_t)(uintptr_t)&t_sleep_rng;
	/* Timers fire when asked, not up to 50 us later. */
	(void)prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0);
}

static void preempt_thread_fini(void)
{
	if (t_timer_ok)
		timer_delete(t_timer);
	t_timer_ok = false;
}

/* With probability 1/@one_in, interrupt this thread 0.2 .. @max_ns from now. */
static void preempt_soon(unsigned one_in, uint64_t max_ns)
{
	struct itimerspec its;
	uint64_t r;

	if (!t_timer_ok)
		return;
	if (!t_rng)
		t_rng = R.seed ^ (uint64_t)(uintptr_t)&t_rng;
	r = rnd(&t_rng);
	if (r % one_in)
		return;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_nsec = 200 + (long)((r >> 16) % max_ns);
	timer_settime(t_timer, 0, &its, NULL);
}

/* ---- the env: jitter, quarantine, RCU checks, host, TLB hooks ---- */

/* Short random delays in hooks, to widen race windows. */
static void jitter(unsigned shift)
{
	if (!t_rng)
		t_rng = R.seed ^ (uint64_t)(uintptr_t)&t_rng;
	uint64_t r = rnd(&t_rng);

	if ((r & ((1u << shift) - 1)) == 0) {
		if ((r >> 20) % 8 == 0)
			usleep(20 + (unsigned)((r >> 24) % 150));
		else
			t_yield();
	}
}

static void q_verify_release(struct qent *e)
{
	const uint64_t *w = e->p;

	t_asan_unpoison(e->p, e->bytes);
	for (size_t i = 0; i < e->bytes / 8; i++) {
		if (w[i] != SIM_POISON) {
			tfail("freed %s %p (%zu bytes) was written after it was freed: word %zu is %#" PRIx64,
			      e->table ? "table page" : "metadata block", e->p, e->bytes, i, w[i]);
			break;
		}
	}
	if (e->table)
		R.base.free_table(&R.h, e->p, e->pa, e->bytes);
	else
		R.base.free(&R.h, e->p);
}

static void q_push(void *p, size_t bytes, hpa_t pa, bool table)
{
	struct qent old = { 0 };
	bool evict = false;

	for (size_t i = 0; i < bytes / 8; i++)
		((uint64_t *)p)[i] = SIM_POISON;
	t_asan_poison(p, bytes);
	pthread_mutex_lock(&R.qlock);
	if (R.qn == QCAP) {
		old = R.q[R.qhead];
		R.qhead = (R.qhead + 1) % QCAP;
		R.qn--;
		evict = true;
	}
	R.q[(R.qhead + R.qn) % QCAP] = (struct qent){ p, bytes, pa, table };
	R.qn++;
	__atomic_fetch_add(&R.quarantined, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&R.qlock);
	if (evict)
		q_verify_release(&old);
}

static void q_drain(void)
{
	pthread_mutex_lock(&R.qlock);
	while (R.qn) {
		struct qent e = R.q[R.qhead];

		R.qhead = (R.qhead + 1) % QCAP;
		R.qn--;
		q_verify_release(&e);
	}
	pthread_mutex_unlock(&R.qlock);
}

static void *w_alloc_table(void *ctx, size_t bytes, hpa_t *pa)
{
	jitter(7);
	preempt_soon(32, 3000);
	return R.base.alloc_table(ctx, bytes, pa);
}

static void w_free_table(void *ctx, void *va, hpa_t pa, size_t bytes)
{
	(void)ctx;
	jitter(7);
	q_push(va, bytes, pa, true);
}

/* Metadata carries its size in front, so free() can poison all of it. */
#define META_HDR 64

static void *w_zalloc(void *ctx, size_t bytes)
{
	uint8_t *p;

	jitter(6);
	preempt_soon(4, 3000);
	p = R.base.zalloc(ctx, bytes + META_HDR);
	if (!p)
		return NULL;
	*(size_t *)p = bytes + META_HDR;
	return p + META_HDR;
}

static void w_free(void *ctx, void *ptr)
{
	uint8_t *p = ptr;

	(void)ctx;
	if (!p)
		return;
	jitter(6);
	p -= META_HDR;
	q_push(p, *(size_t *)p, 0, false);
	preempt_soon(32, 2000);
}

static uint64_t *rcu_slot(void)
{
	if (t_reader < 0) {
		t_reader = (int)__atomic_fetch_add(&R.rcu_nreaders, 1, __ATOMIC_RELAXED);
		if (t_reader >= RCU_READERS) {
			tfail("more than %d threads read under RCU", RCU_READERS);
			t_reader = RCU_READERS - 1;
		}
	}
	return &R.rcu_start[t_reader];
}

static void w_rcu_read_lock(void *ctx)
{
	R.base.rcu_read_lock(ctx);
	/* A reader stopped inside its section; often the device's test_young,
	 * which walks the tables without mmu_lock (a write side may unlink a
	 * table meanwhile, and free it only a grace period later). */
	if (t_young)
		preempt_soon(4, 3000);
	else
		preempt_soon(128, 1000);
	if (t_depth++ == 0)
		__atomic_store_n(rcu_slot(), __atomic_add_fetch(&R.rcu_ticket, 1, __ATOMIC_SEQ_CST),
				 __ATOMIC_SEQ_CST);
}

static void w_rcu_read_unlock(void *ctx)
{
	if (--t_depth == 0)
		__atomic_store_n(rcu_slot(), 0, __ATOMIC_SEQ_CST);
	R.base.rcu_read_unlock(ctx);
}

/* No read-side section that began before ticket @t0 may still run. */
static void rcu_check_gp(uint64_t t0, const char *what)
{
	unsigned n = __atomic_load_n(&R.rcu_nreaders, __ATOMIC_SEQ_CST);

	__atomic_fetch_add(&R.rcu_checks, 1, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < n && i < RCU_READERS; i++) {
		uint64_t s = __atomic_load_n(&R.rcu_start[i], __ATOMIC_SEQ_CST);

		if (s && s < t0)
			tfail("%s while a read-side section that began before it still runs "
			      "(reader %u, tickets %" PRIu64 " < %" PRIu64 ")",
			      what, i, s, t0);
	}
}

/* ---- the freestanding RCU's CPUs ---- */

/*
 * Each report and each offline transition is bracketed by two increments of
 * the CPU's event count (odd while one is in progress), and the online flag
 * is set only once the CPU is online: a grace-period check that sees an even,
 * unchanged count and the flag set at both ends knows the CPU was online and
 * reported nothing all along.
 */
static void fs_qs(void)
{
#ifdef T_FS_RCU
	if (!R.cfg->fsrcu || t_cpu < 0)
		return;
	__atomic_fetch_add(&R.cpu[t_cpu].ev, 1, __ATOMIC_SEQ_CST);
	s2_fs_rcu_quiescent(&R.fs, (unsigned)t_cpu);
	__atomic_fetch_add(&R.cpu[t_cpu].ev, 1, __ATOMIC_SEQ_CST);
#endif
}

static void fs_offline(void)
{
#ifdef T_FS_RCU
	if (!R.cfg->fsrcu)
		return;
	__atomic_fetch_add(&R.cpu[t_cpu].ev, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&R.cpu[t_cpu].online, 0, __ATOMIC_SEQ_CST);
	s2_fs_rcu_offline(&R.fs, (unsigned)t_cpu);
	__atomic_fetch_add(&R.cpu[t_cpu].ev, 1, __ATOMIC_SEQ_CST);
#endif
}

static void fs_online(void)
{
#ifdef T_FS_RCU
	if (!R.cfg->fsrcu)
		return;
	s2_fs_rcu_online(&R.fs, (unsigned)t_cpu);
	__atomic_store_n(&R.cpu[t_cpu].online, 1, __ATOMIC_SEQ_CST);
#endif
}

#ifdef T_FS_RCU
static unsigned fs_this_cpu(void *ctx)
{
	(void)ctx;
	return t_cpu < 0 ? 0 : (unsigned)t_cpu;
}

/* The freestanding synchronize_rcu, checked: every other CPU that stayed
 * online all along must have reported a quiescent state meanwhile. */
static void fs_synchronize_rcu(void)
{
	uint64_t ev[NCPUS];
	bool on[NCPUS];

	for (unsigned i = 0; i < NCPUS; i++) {
		on[i] = __atomic_load_n(&R.cpu[i].online, __ATOMIC_SEQ_CST);
		ev[i] = __atomic_load_n(&R.cpu[i].ev, __ATOMIC_SEQ_CST);
	}
	/* The caller reports itself quiescent while it waits (rcu.c): to the
	 * others' checks it is a report in progress all along. */
	if (t_cpu >= 0)
		__atomic_fetch_add(&R.cpu[t_cpu].ev, 1, __ATOMIC_SEQ_CST);
	R.fs.ops.synchronize_rcu(R.fs.env.ctx);
	if (t_cpu >= 0)
		__atomic_fetch_add(&R.cpu[t_cpu].ev, 1, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&R.rcu_checks, 1, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < NCPUS; i++) {
		if ((int)i == t_cpu || !on[i] || (ev[i] & 1))
			continue;
		if (__atomic_load_n(&R.cpu[i].online, __ATOMIC_SEQ_CST) &&
		    __atomic_load_n(&R.cpu[i].ev, __ATOMIC_SEQ_CST) == ev[i])
			tfail("synchronize_rcu returned while CPU %u, online all along, reported no "
			      "quiescent state (it may still use what was freed; its state: online %u, "
			      "quiescent in grace period %" PRIu64 " of %" PRIu64 ")",
			      i, R.fs_cpus[i].online, R.fs_cpus[i].qs_seq, R.fs.gp_seq);
	}
}
#endif

static void w_synchronize_rcu(void *ctx)
{
	uint64_t t0 = __atomic_add_fetch(&R.rcu_ticket, 1, __ATOMIC_SEQ_CST);

	jitter(5);
	preempt_soon(8, 3000);
#ifdef T_FS_RCU
	if (R.cfg->fsrcu) {
		fs_synchronize_rcu();
		return;
	}
#endif
	R.base.synchronize_rcu(ctx);
	rcu_check_gp(t0, "synchronize_rcu returned");
}

struct w_cb {
	void (*fn)(void *arg);
	void *arg;
	uint64_t t0;
};

static void w_rcu_cb(void *arg)
{
	struct w_cb cb = *(struct w_cb *)arg;

	free(arg);
	rcu_check_gp(cb.t0, "a call_rcu callback ran");
	cb.fn(cb.arg);
}

static int w_call_rcu(void *ctx, void (*fn)(void *arg), void *arg)
{
	struct w_cb *cb = malloc(sizeof(*cb));
	int r;

	if (!cb)
		return -ENOMEM;
	jitter(6);
	*cb = (struct w_cb){ fn, arg, __atomic_add_fetch(&R.rcu_ticket, 1, __ATOMIC_SEQ_CST) };
	r = R.base.call_rcu(ctx, w_rcu_cb, cb);
	if (r)
		free(cb);
	return r;
}

static void w_relax(void *ctx)
{
	preempt_soon(64, 800);
	R.base.relax(ctx);
}

static void w_membarrier(void *ctx)
{
	/* Called as a writer takes mmu_lock: delays here stretch every window
	 * between a change that is published and the write-locked step after,
	 * and a preemption a little later lands in the short ones that follow
	 * a write-locked section (its unlock and the next lock). */
	jitter(3);
	preempt_soon(4, 800);
	R.base.membarrier(ctx);
}

static void w_kick(void *ctx, struct kvm_vcpu *vcpu)
{
	(void)ctx;
	(void)vcpu;
	/* The vcpu sees the mode moved on at its next access (an IPI that
	 * does not wait: kvm_vcpu_mode() is what the vcpu polls). */
	__atomic_fetch_add(&R.kicks, 1, __ATOMIC_RELAXED);
}

/*
 * A fault asks for the pfn of @gfn of @slot, backed by host page @page,
 * which the host is changing: the gfn must be in the invalidation in
 * progress (notifier.md: a slot added or moved while one runs has its gfns
 * join it before it can be found). Read without the lock, which would wait
 * for a late widening: in correct code the widening happens before the
 * publication the fault acquired when it found the slot, or before the
 * start that set the flux flag read first. Only for the slot the layout has
 * at that base (a copy from before a move may be outside the range: its
 * fault retries), and only while that same invalidation is in progress all
 * along (the flux generation does not move).
 */
#ifdef T_TSAN
/* Deliberately racy reads of fields written under mmu_lock. */
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
#define racy_begin() AnnotateIgnoreReadsBegin(__FILE__, __LINE__)
#define racy_end() AnnotateIgnoreReadsEnd(__FILE__, __LINE__)
#else
#define racy_begin() ((void)0)
#define racy_end() ((void)0)
#endif

static void check_in_invalidation(const struct kvm_memory_slot *slot, gfn_t gfn, uint64_t page)
{
	uint32_t g0 = __atomic_load_n(&R.fluxgen[page], __ATOMIC_SEQ_CST);
	uint64_t ip;
	gfn_t rs, re;

	if (!__atomic_load_n(&R.flux[page], __ATOMIC_SEQ_CST))
		return;
	racy_begin();
	ip = __atomic_load_n(&R.kvm->mmu_invalidate_in_progress, __ATOMIC_ACQUIRE);
	rs = __atomic_load_n(&R.kvm->mmu_invalidate_range_start, __ATOMIC_RELAXED);
	re = __atomic_load_n(&R.kvm->mmu_invalidate_range_end, __ATOMIC_RELAXED);
	racy_end();
	if (!__atomic_load_n(&R.flux[page], __ATOMIC_SEQ_CST) ||
	    __atomic_load_n(&R.fluxgen[page], __ATOMIC_SEQ_CST) != g0)
		return;
	if (!ip || gfn < rs || gfn >= re)
		tfail("a fault found slot %u (gfn %#" PRIx64 "+%#" PRIx64
		      ") and asks for gfn %#" PRIx64 ", whose host page %" PRIu64
		      " is being changed, but the gfn is not in the "
		      "invalidation in progress (%" PRIu64 " in progress, gfns %#" PRIx64
		      "-%#" PRIx64 ")",
		      slot->id, slot->base_gfn, slot->npages, gfn, page, ip, rs, re);
}

static int w_gfn_to_pfn(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, bool write,
			struct s2_pfn_info *out)
{
	hva_t hva = slot->userspace_addr + ((gfn - slot->base_gfn) << S2_GFN_SHIFT);
	uint64_t page = (hva - HVA_BASE) >> S2_GFN_SHIFT;

	(void)ctx;
	(void)write;
	if (hva < HVA_BASE || page >= HOST_PAGES)
		return -EFAULT;
	if (slot->id < NSLOTS &&
	    __atomic_load_n(&R.lay_base[slot->id], __ATOMIC_ACQUIRE) == slot->base_gfn)
		check_in_invalidation(slot, gfn, page);
	jitter(5);
	preempt_soon(128, 2000);
	out->pfn = frame_of(page);
	out->writable = true;
	out->host_level =
		R.cfg->host_level >= 2 && __atomic_load_n(&R.uni[page / 512], __ATOMIC_ACQUIRE) ?
			2 :
			1;
	out->memtype = S2_MT_WB;
	/* The host changes a page only inside an invalidation of it. */
	out->block_stable = true;
	return 0;
}

/* A broadcast invalidation (TLBI ...IS + DSB, SBI remote HFENCE): every
 * vcpu's matching entries, under its TLB lock (an access in progress
 * finishes first). */
static void bcast_drop(gfn_t gfn, uint64_t n, bool all)
{
	unsigned nv = __atomic_load_n(&R.nv, __ATOMIC_ACQUIRE);

	__atomic_fetch_add(&R.bcast, 1, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < nv; i++) {
		struct sim_tlb *t = &R.vc[i].tlb;

		pthread_mutex_lock(&t->lock);
		if (all)
			sim_tlb_drop_all(t);
		else
			sim_tlb_drop_range(t, gfn, n);
		pthread_mutex_unlock(&t->lock);
	}
}

static void w_tlb_flush_vm(void *ctx, struct kvm *kvm)
{
	(void)ctx;
	(void)kvm;
	bcast_drop(0, 0, true);
}

static void w_tlb_flush_range(void *ctx, struct kvm *kvm, gpa_t gpa, uint64_t size)
{
	(void)ctx;
	(void)kvm;
	bcast_drop(gpa_to_gfn(gpa), gpa_to_gfn(gpa + size + S2_GFN_SIZE - 1) - gpa_to_gfn(gpa),
		   false);
}

static void env_init(void)
{
	s2_hosted_init(&R.h);
	R.h.quiet = true;
	R.base = R.h.ops;
	R.h.ops.alloc_table = w_alloc_table;
	R.h.ops.free_table = w_free_table;
	R.h.ops.zalloc = w_zalloc;
	R.h.ops.free = w_free;
	R.h.ops.synchronize_rcu = w_synchronize_rcu;
	R.h.ops.call_rcu = w_call_rcu;
	R.h.ops.rcu_read_lock = w_rcu_read_lock;
	R.h.ops.rcu_read_unlock = w_rcu_read_unlock;
	R.h.ops.relax = w_relax;
	if (R.base.membarrier)
		R.h.ops.membarrier = w_membarrier;
#ifdef T_FS_RCU
	if (R.cfg->fsrcu) {
		/* Allocation stays the hosted one (poisoned, quarantined); RCU is
		 * the freestanding quiescent-state one: no read side, no
		 * call_rcu (tables are freed after synchronize_rcu). */
		static struct s2_page_pool unused;

		s2_freestanding_init(&R.fs, &unused);
		R.fs.ops.relax = R.base.relax;
		R.fs.env.ctx = &R.fs;
		assert_int_equal(s2_freestanding_smp(&R.fs, R.fs_cpus, NCPUS, fs_this_cpu), 0);
		R.h.ops.call_rcu = NULL;
		R.h.ops.rcu_barrier = NULL;
		R.h.ops.rcu_read_lock = NULL;
		R.h.ops.rcu_read_unlock = NULL;
		/* Every CPU offline until its thread comes online. */
		for (unsigned i = 0; i < NCPUS; i++)
			s2_fs_rcu_offline(&R.fs, i);
	}
#endif
	R.h.ops.kick = w_kick;
	R.h.ops.gfn_to_pfn = w_gfn_to_pfn;
	R.h.ops.release_pfn = NULL;
	if (R.cfg->hooks == HOOKS_NONE) {
		R.h.ops.tlb_flush_vm = NULL;
		R.h.ops.tlb_flush_range = NULL;
	} else {
		R.h.ops.tlb_flush_vm = w_tlb_flush_vm;
		R.h.ops.tlb_flush_range = w_tlb_flush_range;
		/* Broadcast by construction: the hooks reach every vcpu. */
		R.h.ops.tlb_hooks_broadcast = true;
	}
}

/*
 * The check gate. A thread blocked on it holds no reference into the
 * library's data and is offline meanwhile: a fault holding the read side
 * may be waiting in synchronize_rcu for every online CPU, and a writer
 * waiting here would otherwise never report.
 */
static void gate_lock(bool write)
{
	fs_offline();
	if (write)
		pthread_rwlock_wrlock(&R.gate);
	else
		pthread_rwlock_rdlock(&R.gate);
	fs_online();
}

/* ---- the memslot layout vcpus and the device see ---- */

static void lay_begin(void)
{
	__atomic_add_fetch(&R.lay_seq, 1, __ATOMIC_SEQ_CST);
}

static void lay_end(void)
{
	__atomic_add_fetch(&R.lay_seq, 1, __ATOMIC_SEQ_CST);
}

static void lay_set(unsigned k, gfn_t base, uint64_t np)
{
	__atomic_store_n(&R.lay_np[k], np, __ATOMIC_RELAXED);
	__atomic_store_n(&R.lay_base[k], base, __ATOMIC_RELEASE);
}

/* Host page of @gfn in the published layout (false: none, or changing). */
static bool lay_page_of(gfn_t gfn, uint64_t *page, unsigned *slot_id)
{
	for (unsigned k = 0; k < NSLOTS; k++) {
		uint64_t b = __atomic_load_n(&R.lay_base[k], __ATOMIC_ACQUIRE);
		uint64_t n = __atomic_load_n(&R.lay_np[k], __ATOMIC_RELAXED);

		if (b != ~0ull && gfn - b < n) {
			*page = k * REGION_PAGES + (gfn - b);
			*slot_id = k;
			return true;
		}
	}
	return false;
}

/* ---- dirty bookkeeping ---- */

/* A write to host page @page, begun when @e rounds were done, is complete. */
static void record_write(uint64_t page, uint64_t e)
{
	uint64_t want = e + 1, cur = __atomic_load_n(&R.mx[page], __ATOMIC_RELAXED);

	while (cur < want && !__atomic_compare_exchange_n(&R.mx[page], &cur, want, false,
							  __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
		;
}

/* An emulated write to @gfn (outside the MMU): recorded through the API. */
static void emulated_write(struct vc *s, gfn_t gfn)
{
	uint64_t seq = __atomic_load_n(&R.lay_seq, __ATOMIC_SEQ_CST);
	uint64_t e = __atomic_load_n(&R.rounds_done, __ATOMIC_SEQ_CST);
	uint64_t page;
	unsigned id;
	int r;

	if ((seq & 1) || !lay_page_of(gfn, &page, &id))
		return;
	r = s ? kvm_vcpu_mark_page_dirty(s->v, gfn) : kvm_mark_page_dirty(R.kvm, gfn);
	if (r < 0) {
		tfail("kvm_%smark_page_dirty(%#" PRIx64 ") returned %d", s ? "vcpu_" : "", gfn, r);
		return;
	}
	/* Counted only when the layout did not change meanwhile (the page the
	 * call recorded is then the one computed above). */
	if (__atomic_load_n(&R.lay_seq, __ATOMIC_SEQ_CST) == seq)
		record_write(page, e);
}

/* ---- a vcpu ---- */

enum vev {
	EV_ENTER = 1,
	EV_ENTER_REFUSED,
	EV_EXIT,
	EV_FLUSHED,
	EV_FAULT,
	EV_FAULT_DONE,
	EV_LOAD,
	EV_FLUSHED_CURRENT,
};

static void vev(struct vc *s, enum vev e)
{
	uint64_t w = ((now_ns() / 1000) << 24) | ((uint64_t)e << 20) |
		     (__atomic_load_n(&R.ops_done, __ATOMIC_RELAXED) & 0xfffff);

	__atomic_store_n(&s->ev[s->nev++ % 32], w, __ATOMIC_RELAXED);
}

/* The vcpu's last events, oldest first (for failure messages). */
static void vev_print(char *buf, size_t len, struct vc *s)
{
	static const char *const names[] = { "?",	   "enter",   "refused",
					     "exit",	   "flushed", "fault",
					     "fault-done", "load",    "flushed-current" };
	size_t n = 0;

	for (unsigned i = 0; i < 32 && n < len; i++) {
		uint64_t w = __atomic_load_n(&s->ev[(s->nev + i) % 32], __ATOMIC_RELAXED);
		unsigned e = (unsigned)(w >> 20) & 15;

		if (w)
			n += (size_t)snprintf(buf + n, len - n, " %s@%" PRIu64 "us/op%" PRIu64,
					      names[e < 9 ? e : 0], (w >> 24) % 100000000,
					      w & 0xfffff);
	}
}

/* The older loop: requests handled by the embedder itself, every one a
 * flush of everything (the vcpu never loads another root). Under the TLB
 * lock, so a check sees a request and the entries it covers consistently. */
static void handle_requests(struct vc *s)
{
	if (kvm_check_request(s->v, KVM_REQ_TLB_FLUSH) |
	    kvm_check_request(s->v, KVM_REQ_TLB_FLUSH_CURRENT) |
	    kvm_check_request(s->v, KVM_REQ_MMU_RELOAD)) {
		sim_tlb_drop_all(&s->tlb);
		vev(s, EV_FLUSHED);
	}
	(void)kvm_check_request(s->v, KVM_REQ_TLB_FLUSH_GUEST); /* stage 1: nothing cached */
	(void)kvm_check_request(s->v, KVM_REQ_FREE_OBSOLETE_ROOTS);
}

static void host_check_access(struct vc *s, const struct sim_access *a)
{
	static char hist[1024];
	uint64_t page;
	unsigned v, cur, alt;
	bool other;
	const char *why = NULL;

	if (!host_page_of(a->pa, &page, &v, &other)) {
		tfail("vcpu %u %s gpa %#" PRIx64 " through pa %#" PRIx64
		      ", which the host never backed anything with",
		      s->idx, a->write ? "wrote" : "read", a->gpa, a->pa);
		return;
	}
	cur = __atomic_load_n(&R.ver[page], __ATOMIC_ACQUIRE);
	alt = __atomic_load_n(&R.alt[page], __ATOMIC_ACQUIRE);
	if (cur != v)
		why = "through a stale pfn";
	else if (!(alt & ALT_BOTH) && other != !!(alt & ALT_ON))
		why = other ? "through the page's other frame, which the host no longer backs it with" :
			      "through the page's own frame after kvm_mmu_map_range() returned, "
			      "having mapped the gfn to the other one";
	else if (__atomic_load_n(&R.flux[page], __ATOMIC_ACQUIRE))
		why = "while the host is changing the page (between invalidate_range_start and _end)";
	if (!why)
		return;
	vev_print(hist, sizeof(hist), s);
	tfail("vcpu %u %s gpa %#" PRIx64 " %s: host page %" PRIu64 " version %u, now %u (remapped "
	      "in operations %u and %u); the translation: %s, level-%d entry for gfn %#" PRIx64
	      "+%#" PRIx64 " filled in operation %" PRIu64 "; vcpu events:%s",
	      s->idx, a->write ? "wrote" : "read", a->gpa, why, page, v, cur,
	      __atomic_load_n(&R.remap_op[page][0], __ATOMIC_RELAXED),
	      __atomic_load_n(&R.remap_op[page][1], __ATOMIC_RELAXED), a->hit ? "TLB hit" : "walk",
	      a->used.level, a->used.gfn, a->used.pages, a->used.stamp, hist);
}

static void pick_access(struct vc *s, gpa_t *gpa, bool *write)
{
	uint64_t r = rnd(&s->rng), b = ~0ull, n = 0;
	unsigned k = s->hot_slot;

	if (!s->hot_left) {
		s->hot_slot = (unsigned)rnd_below(&s->rng, NSLOTS);
		s->hot_off = rnd_below(&s->rng, REGION_PAGES);
		s->hot_left = 256;
	}
	s->hot_left--;
	*write = (r >> 40) & 1;
	if ((r & 63) == 0) {
		/* Anywhere in the window: an MMIO exit, or a slot's gfn this
		 * vcpu does not know is there yet. */
		*gpa = gfn_to_gpa(GFN_LO + (r >> 16) % GFN_WINDOW);
		return;
	}
	/* Mostly a hot window of 64 pages, else anywhere in a slot; an absent
	 * slot is replaced by the next present one. While the mutator races
	 * memslot updates against invalidations, most accesses go to that
	 * slot, present or not yet. */
	unsigned f = __atomic_load_n(&R.focus, __ATOMIC_RELAXED);

	if (f && (r & 3)) {
		b = __atomic_load_n(&R.lay_base[f - 1], __ATOMIC_ACQUIRE);
		n = __atomic_load_n(&R.lay_np[f - 1], __ATOMIC_RELAXED);
		if (b != ~0ull && n) {
			*gpa = gfn_to_gpa(b + (r >> 8) % (n < 64 ? n : 64));
			return;
		}
	}
	if (!(r & 7))
		k = (unsigned)((r >> 3) % NSLOTS);
	for (unsigned i = 0; i < NSLOTS; i++, k = (k + 1) % NSLOTS) {
		b = __atomic_load_n(&R.lay_base[k], __ATOMIC_ACQUIRE);
		n = __atomic_load_n(&R.lay_np[k], __ATOMIC_RELAXED);
		if (b != ~0ull && n)
			break;
	}
	if (b == ~0ull || !n) {
		*gpa = gfn_to_gpa(GFN_LO + (r >> 16) % GFN_WINDOW);
		return;
	}
	*gpa = gfn_to_gpa(b + ((r & 7) ? s->hot_off + ((r >> 8) % 64) : (r >> 8)) % n);
}

/* Guest mode: accesses until an exit. Returns true when the last access
 * faulted (s->pend_* say which). */
static bool guest_run(struct vc *s)
{
	struct kvm *kvm = R.kvm;

	for (unsigned b = 0; b < BATCH; b++) {
		struct sim_access a = { 0 };
		enum sim_result res;
		uint64_t e;

		if (kvm_vcpu_mode(s->v) != IN_GUEST_MODE || stopping())
			return false; /* kicked */
		/* Now and then the kick takes a while to land (a long
		 * instruction, interrupts masked): EXITING lasts. */
		if ((s->rng & 1023) == 7)
			spin_us(2 + (s->rng >> 10) % 30);
		if (s->have_pending) {
			a.gpa = s->pend_gpa;
			a.write = s->pend_write;
		} else {
			pick_access(s, &a.gpa, &a.write);
			a.gpa |= gfn_to_gpa(t_sbit);
		}
		e = __atomic_load_n(&R.rounds_done, __ATOMIC_SEQ_CST);
		a.stamp = __atomic_load_n(&R.ops_done, __ATOMIC_RELAXED);
		pthread_mutex_lock(&s->tlb.lock);
		res = sim_tlb_access(kvm, &s->tlb, &a);
		/* The access happens now: checked before the TLB lock goes, as
		 * a broadcast invalidation (which takes it) may complete, and
		 * the host change the page, right after. */
		if (res == SIM_OK)
			host_check_access(s, &a);
		pthread_mutex_unlock(&s->tlb.lock);
		if (res == SIM_POISONED) {
			tfail("vcpu %u walked into a freed table: gpa %#" PRIx64 " read %#" PRIx64
			      " at level %d (entry %p)",
			      s->idx, a.gpa, (uint64_t)SIM_POISON, a.bad_level, (void *)a.bad);
			return false;
		}
		if (res == SIM_FAULT) {
			s->have_pending = true;
			s->pend_gpa = a.gpa;
			s->pend_write = a.write;
			return true;
		}
		s->have_pending = false;
		s->spurious_in_a_row = 0;
		s->accesses++;
		s->hits += a.hit;
		if (a.write) {
			uint64_t page;
			unsigned v;

			s->writes++;
			if (host_page_of(a.pa, &page, &v, NULL))
				record_write(page, e);
			if (a.newly_dirty && (R.cfg->caps & KVM_DIRTY_LOG_PML)) {
				s->pml[s->npml++] = a.gpa;
				if (s->npml == PML_SIZE)
					return false; /* PML-full exit */
			}
		}
	}
	return false;
}

static void pml_handover(struct vc *s)
{
	long r;

	if (!s->npml)
		return;
	r = kvm_flush_pml_buffer(s->v, s->pml, s->npml);
	if (r < 0)
		tfail("vcpu %u: kvm_flush_pml_buffer returned %ld", s->idx, r);
	s->pml_handed += s->npml;
	s->npml = 0;
}

static void vcpu_fault(struct vc *s)
{
	gpa_t gpa = s->pend_gpa;
	int r;

	/* The fault drops what translated the address (x86 does; on arm64 and
	 * RISC-V it is the embedder's local flush of a relaxed permission). */
	pthread_mutex_lock(&s->tlb.lock);
	sim_tlb_drop_gpa(&s->tlb, gpa);
	pthread_mutex_unlock(&s->tlb.lock);

	/* A fault that runs entirely inside one invalidation of its page must
	 * not map it (notifier.h: such faults return RET_PF_RETRY). The slot
	 * the library finds for the gfn, if any, is the published layout's: it
	 * is set before an add or move and cleared after a delete. */
	uint64_t page = 0;
	unsigned id, f0 = 0, g0 = 0;
	bool known = lay_page_of(gpa_to_gfn(gpa) & ~t_sbit, &page, &id);

	if (known) {
		g0 = __atomic_load_n(&R.fluxgen[page], __ATOMIC_SEQ_CST);
		f0 = __atomic_load_n(&R.flux[page], __ATOMIC_SEQ_CST);
	}
	vev(s, EV_FAULT);
	gate_lock(false);
	r = kvm_tdp_page_fault(s->v, gpa, s->pend_write ? S2_ACC_WRITE : S2_ACC_READ);
	pthread_rwlock_unlock(&R.gate);
	vev(s, EV_FAULT_DONE);
	s->faults++;
	if (r == RET_PF_FIXED && known && f0 && __atomic_load_n(&R.flux[page], __ATOMIC_SEQ_CST) &&
	    __atomic_load_n(&R.fluxgen[page], __ATOMIC_SEQ_CST) == g0)
		tfail("vcpu %u: a %s fault on gpa %#" PRIx64 " (slot %u, host page %" PRIu64
		      ") returned RET_PF_FIXED while the host was changing the page all along",
		      s->idx, s->pend_write ? "write" : "read", gpa, id, page);
	switch (r) {
	case RET_PF_FIXED: s->fixed++; return;
	case RET_PF_RETRY:
		s->retries++;
		t_yield();
		return;
	case RET_PF_SPURIOUS:
		s->spurious++;
		if (++s->spurious_in_a_row > 1000)
			tfail("vcpu %u: %s of gpa %#" PRIx64
			      " faults in the simulated hardware, and "
			      "kvm_tdp_page_fault says the mapping is there (1000 times; the vcpu "
			      "runs on root %#" PRIx64
			      " of space %u, the VM's first root is %#" PRIx64 ")",
			      s->idx, s->pend_write ? "write" : "read", gpa,
			      (uint64_t)kvm_vcpu_root_hpa(s->v), s->space,
			      (uint64_t)kvm_mmu_root_hpa(R.kvm));
		return;
	case RET_PF_EMULATE_MMIO: s->mmio++; break;
	case RET_PF_RO_WRITE: s->ro++; break;
	case RET_PF_MEMORY_FAULT:
		/* A TD's gfn converted to private: the embedder converts back
		 * or the guest moves on; this one moves on. */
		if (!t_sbit)
			tfail("vcpu %u: RET_PF_MEMORY_FAULT outside a TD", s->idx);
		s->mmio++;
		break;
	case RET_PF_WRITE_TRACKED:
		/* The embedder emulates the write, which marks the page. */
		s->tracked++;
		s->emulated++;
		emulated_write(s, gpa_to_gfn(gpa) & ~t_sbit);
		break;
	default: tfail("vcpu %u: kvm_tdp_page_fault(%#" PRIx64 ") returned %d", s->idx, gpa, r);
	}
	s->have_pending = false; /* handled outside the MMU: next access */
}

/* The entry call, then its actions in order (docs/embedding.md's loop):
 * returns with the TLB lock held. */
static void entry_actions(struct vc *s)
{
	struct kvm_entry_actions acts;
	int r;

	/* Not under the TLB lock: the call may take mmu_lock, whose writer may
	 * be waiting in a broadcast invalidation for this TLB. The requests it
	 * consumes are owed until the actions are done: `acting` says so. */
	pthread_mutex_lock(&s->tlb.lock);
	s->acting = true;
	pthread_mutex_unlock(&s->tlb.lock);
	r = kvm_vcpu_entry_actions(s->v, &acts);
	pthread_mutex_lock(&s->tlb.lock);
	if (r) {
		tfail("vcpu %u: kvm_vcpu_entry_actions returned %d", s->idx, r);
		acts.nr = 0;
	}
	for (unsigned i = 0; i < acts.nr; i++) {
		switch (acts.a[i].kind) {
		case KVM_ENTRY_LOAD_ROOT:
			sim_tlb_load(&s->tlb, acts.a[i].hpa);
			vev(s, EV_LOAD);
			break;
		case KVM_ENTRY_FLUSH_CURRENT:
			sim_tlb_drop_current(&s->tlb);
			vev(s, EV_FLUSHED_CURRENT);
			break;
		case KVM_ENTRY_FLUSH_ALL:
			/* EPT: INVEPT all-context only when the VM has more than
			 * one root, else single-context (docs/embedding.md). */
			if (s->tlb.tag_by_root && acts.nr_roots <= 1)
				sim_tlb_drop_current(&s->tlb);
			else
				sim_tlb_drop_all(&s->tlb);
			vev(s, EV_FLUSHED);
			break;
		case KVM_ENTRY_FLUSH_GUEST: break; /* stage 1: nothing cached */
		}
	}
	s->acting = false;
}

/* Now and then the vcpu switches address space (as SMM entry and exit
 * do): kvm_mmu_load, the register, and the flush a load owes. */
static void switch_space(struct vc *s)
{
	struct kvm_root_role role = { .kind = KVM_ROOT_DIRECT, .space = (uint8_t)(s->space ^ 1) };
	uint64_t reg;
	int r;

	pthread_mutex_lock(&s->tlb.lock);
	s->acting = true;
	pthread_mutex_unlock(&s->tlb.lock);
	r = kvm_mmu_load(s->v, role, &reg);
	pthread_mutex_lock(&s->tlb.lock);
	if (!r) {
		sim_tlb_load(&s->tlb, kvm_vcpu_root_hpa(s->v));
		sim_tlb_drop_current(&s->tlb);
		vev(s, EV_LOAD);
		s->space ^= 1;
	} else if (r != -ENOMEM) {
		tfail("vcpu %u: kvm_mmu_load(space %u) returned %d", s->idx, role.space, r);
	}
	s->acting = false;
	pthread_mutex_unlock(&s->tlb.lock);
}

static void *vcpu_main(void *arg)
{
	struct vc *s = arg;
	char who[16];

	snprintf(who, sizeof(who), "vcpu %u", s->idx);
	t_who = who;
	t_cpu = (int)(1 + s->idx);
	preempt_thread_init();
	fs_online();
	if (R.cfg->legacy) {
		/* A vcpu that never loads a root runs on the VM's first one. */
		pthread_mutex_lock(&s->tlb.lock);
		sim_tlb_load(&s->tlb, kvm_vcpu_root_hpa(s->v));
		pthread_mutex_unlock(&s->tlb.lock);
	}
	while (!stopping()) {
		bool in, fault;

		/* No call into the library in progress: a quiescent state. */
		fs_qs();
		if (R.cfg->legacy) {
			pthread_mutex_lock(&s->tlb.lock);
			handle_requests(s);
		} else {
			entry_actions(s); /* returns with the TLB lock held */
		}
		fs_offline(); /* the guest makes no library call */
		__atomic_store_n(&s->session, true, __ATOMIC_SEQ_CST);
		in = kvm_vcpu_enter_guest(s->v);
		vev(s, in ? EV_ENTER : EV_ENTER_REFUSED);
		pthread_mutex_unlock(&s->tlb.lock);
		if (!in) {
			__atomic_store_n(&s->session, false, __ATOMIC_SEQ_CST);
			fs_online();
			/* A request arrived: a full dirty ring keeps us out until
			 * the mutator resets it. */
			while (kvm_dirty_ring_check_request(s->v) && !stopping()) {
				fs_qs();
				t_yield();
			}
			continue;
		}
		fault = guest_run(s);
		/* First thing after every exit: a flush may be waiting for it. */
		kvm_vcpu_exit_guest(s->v);
		vev(s, EV_EXIT);
		fs_online();
		/* Then the PML buffer goes over; a harvest's kick waits for this
		 * (sync_vcpus), not only for the exit. */
		pml_handover(s);
		__atomic_fetch_add(&s->exits, 1, __ATOMIC_SEQ_CST);
		__atomic_store_n(&s->session, false, __ATOMIC_SEQ_CST);
		if (fault)
			vcpu_fault(s);
		if (!R.cfg->legacy && R.spaces && rnd_below(&s->rng, 512) == 0)
			switch_space(s);
		if (rnd_below(&s->rng, 64) == 0) {
			gpa_t gpa;
			bool w;

			pick_access(s, &gpa, &w);
			s->emulated++;
			emulated_write(s, gpa_to_gfn(gpa));
		}
	}
	pml_handover(s);
	fs_offline();
	preempt_thread_fini();
	return NULL;
}

/*
 * Every vcpu that is in a guest session now ends it (and hands its PML
 * buffer over) before this returns: KVM's kick before a PML harvest. Waits
 * itself, for the hand-over that follows the exit.
 */
static void sync_vcpus(void)
{
	uint64_t seen[MAXV];
	bool in[MAXV];

	for (unsigned i = 0; i < R.cfg->nvcpus; i++) {
		seen[i] = __atomic_load_n(&R.vc[i].exits, __ATOMIC_SEQ_CST);
		in[i] = __atomic_load_n(&R.vc[i].session, __ATOMIC_SEQ_CST);
	}
	kvm_make_all_cpus_request(R.kvm, KVM_REQ_TLB_FLUSH_CURRENT);
	/* (A session that ended with a refused entry ran nothing.) */
	for (unsigned i = 0; i < R.cfg->nvcpus; i++)
		while (in[i] && __atomic_load_n(&R.vc[i].exits, __ATOMIC_SEQ_CST) == seen[i] &&
		       __atomic_load_n(&R.vc[i].session, __ATOMIC_SEQ_CST) && !stopping()) {
			fs_qs();
			t_yield();
		}
}

/* ---- check 1: what the TLBs may still hold after a promising call ---- */

/* What a call covers: gfns or host pages [lo, hi); strict: the dirty-log
 * promise (cached write access and dirty state too). */
struct span {
	bool host; /* lo/hi are host pages, else gfns */
	bool strict;
	uint64_t lo, hi;
};
#define MAXSPANS 16

struct snap {
	struct sim_tlb_leaf leaf[SIM_TLB_LEAVES];
	struct sim_tlb_walk walk[SIM_TLB_WALKS];
	hpa_t root;   /* loaded */
	uint64_t tag; /* current tag: only such entries are used */
	enum kvm_vcpu_mode mode;
	bool flush_pending; /* a flush or reload is owed before the next entry */
};

/* Is @pa a valid root of the VM? (Roots become invalid only under the
 * write side of mmu_lock, which no check overlaps.) */
static bool root_valid(hpa_t pa)
{
	struct kvm *kvm = R.kvm;
	unsigned hi = __atomic_load_n(&kvm->roots_hi, __ATOMIC_ACQUIRE);

	for (unsigned i = 0; i < hi; i++) {
		const struct s2_root *r = &kvm->roots[i];

		if (__atomic_load_n(&r->state, __ATOMIC_ACQUIRE) == S2_ROOT_VALID && r->pa == pa)
			return true;
	}
	return false;
}

/* Offsets [k0, k1) of leaf @e that span @sp covers. */
static bool leaf_offsets(const struct span *sp, const struct sim_tlb_leaf *e, uint64_t *k0,
			 uint64_t *k1)
{
	uint64_t first;

	if (sp->host) {
		unsigned v;

		if (!host_page_of(e->pa, &first, &v, NULL))
			return false;
	} else {
		first = e->gfn;
	}
	uint64_t lo = first > sp->lo ? first : sp->lo;
	uint64_t hi = first + e->pages < sp->hi ? first + e->pages : sp->hi;

	if (lo >= hi)
		return false;
	*k0 = lo - first;
	*k1 = hi - first;
	return true;
}

static const char *mode_name(enum kvm_vcpu_mode m)
{
	return m == IN_GUEST_MODE ? "IN_GUEST" : m == EXITING_GUEST_MODE ? "EXITING" : "OUTSIDE";
}

/* Is page @k of leaf @e still granted as cached, under @root? NULL if so,
 * else why not. */
static const char *leaf_stale(hpa_t root, const struct sim_tlb_leaf *e, uint64_t k, bool strict,
			      struct sim_view *vw)
{
	sim_view(R.kvm, root, e->gfn + k, vw);
	if (vw->poison)
		return "the walk to it reads a freed table";
	if (!vw->mapped)
		return "the tables no longer map the gfn";
	if (vw->pa != e->pa + (k << S2_GFN_SHIFT))
		return "the tables map the gfn to another pfn";
	if (e->w && !vw->w && !vw->mmu_w)
		return "write access was taken away (not even MMU-writable)";
	if (strict && e->w && !vw->w)
		return "dirty logging protected the leaf, the TLB still lets writes through";
	if (strict && R.hwd && e->w && e->dirty && !vw->dirty)
		return "dirty logging collected the leaf's dirty state, the TLB still has it set";
	return NULL;
}

/*
 * Check 1 after the call @what returned, over @sp. The gate keeps vcpu
 * faults out while the TLBs are copied and the tables read.
 */
static void check_promise(const char *what, const struct span *sp, unsigned nsp)
{
	struct span tsp[MAXSPANS];
	unsigned nv = R.cfg->nvcpus;

	/* A TD's TLB entries are at the shared-bit gfns of the memslot gfns
	 * the calls name. */
	if (t_sbit && nsp <= MAXSPANS) {
		for (unsigned x = 0; x < nsp; x++) {
			tsp[x] = sp[x];
			if (!tsp[x].host) {
				tsp[x].lo += t_sbit;
				tsp[x].hi += t_sbit;
			}
		}
		sp = tsp;
	}
	static struct snap sn[MAXV];
	static char hist[1024];
	uint64_t rng = R.seed ^ R.checks;

	if (stopping())
		return;
	R.checks++;
	gate_lock(true);
	for (unsigned i = 0; i < nv; i++) {
		struct vc *s = &R.vc[i];

		pthread_mutex_lock(&s->tlb.lock);
		memcpy(sn[i].leaf, s->tlb.leaf, sizeof(sn[i].leaf));
		memcpy(sn[i].walk, s->tlb.walk, sizeof(sn[i].walk));
		sn[i].root = s->tlb.root;
		sn[i].tag = sim_tlb_tag(&s->tlb);
		sn[i].mode = kvm_vcpu_mode(s->v);
		/* Owed before the next entry: a flush request, a reload (which
		 * flushes), or the actions of an entry call in progress. */
		sn[i].flush_pending =
			s->acting ||
			(__atomic_load_n(&s->v->requests, __ATOMIC_ACQUIRE) &
			 ((1ull << KVM_REQ_TLB_FLUSH) | (1ull << KVM_REQ_TLB_FLUSH_CURRENT) |
			  (1ull << KVM_REQ_MMU_RELOAD)));
		pthread_mutex_unlock(&s->tlb.lock);
	}
	for (unsigned i = 0; i < nv && !stopping(); i++) {
		bool must_be_clean = sn[i].mode != OUTSIDE_GUEST_MODE || !sn[i].flush_pending;

		if (!must_be_clean || !sn[i].root)
			continue;
		/* No vcpu runs, or will enter without a reload, on an invalid
		 * root (the fast zap's promise). */
		if (!root_valid(sn[i].root)) {
			vev_print(hist, sizeof(hist), &R.vc[i]);
			tfail("after %s: vcpu %u (%s%s) is on root %#" PRIx64
			      ", which is not a valid root; vcpu events:%s",
			      what, i, mode_name(sn[i].mode),
			      sn[i].flush_pending ? ", reload or flush pending" :
						    ", nothing pending",
			      sn[i].root, hist);
			goto out;
		}
		for (unsigned j = 0; j < SIM_TLB_LEAVES; j++) {
			const struct sim_tlb_leaf *e = &sn[i].leaf[j];
			uint64_t probe[8], k0, k1;
			bool strict[8];
			unsigned np = 0;

			if (!e->valid || e->tag != sn[i].tag)
				continue; /* not usable with the loaded root */
			/* Pages of the entry the call covers: both ends and a few
			 * more; elsewhere one page, under the lax rule only (every
			 * removal owes a flush, whichever call made it). */
			for (unsigned x = 0; x < nsp && np < 8; x++) {
				if (!leaf_offsets(&sp[x], e, &k0, &k1))
					continue;
				probe[np] = k0;
				strict[np++] = sp[x].strict;
				if (k1 - k0 > 1 && np < 8) {
					probe[np] = k1 - 1;
					strict[np++] = sp[x].strict;
				}
				for (unsigned q = 0; q < 2 && np < 8 && k1 - k0 > 2; q++) {
					probe[np] = k0 + rnd_below(&rng, k1 - k0);
					strict[np++] = sp[x].strict;
				}
			}
			if (!np) {
				probe[np] = rnd_below(&rng, e->pages);
				strict[np++] = false;
			}
			R.checked_entries++;
			for (unsigned q = 0; q < np; q++) {
				struct sim_view vw;
				const char *why =
					leaf_stale(sn[i].root, e, probe[q], strict[q], &vw);

				if (!why)
					continue;
				vev_print(hist, sizeof(hist), &R.vc[i]);
				/* What the tables said, for the trace's replay. */
				if (sn[i].root == kvm_mmu_root_hpa(R.kvm) && vw.mapped &&
				    !vw.tracked)
					tr_line("expect_map gpa=%#llx hpa=%#llx # the tables at "
						"the failure",
						(unsigned long long)(e->gfn + probe[q]) << 12,
						(unsigned long long)vw.pa);
				else if (sn[i].root == kvm_mmu_root_hpa(R.kvm))
					tr_line("expect_map gpa=%#llx hpa=none # the tables at the "
						"failure",
						(unsigned long long)(e->gfn + probe[q]) << 12);
				tfail("after %s: vcpu %u (%s%s) holds a TLB entry for gfn %#" PRIx64
				      " -> pa %#" PRIx64 " (level %d%s%s) that is stale: %s "
				      "(tables: %s pa %#" PRIx64 " level %d pte %#" PRIx64
				      "%s%s); the call began at %" PRIu64 "us, vcpu events:%s",
				      what, i, mode_name(sn[i].mode),
				      sn[i].flush_pending ? ", flush pending" :
							    ", no flush pending",
				      e->gfn + probe[q], e->pa + (probe[q] << S2_GFN_SHIFT),
				      e->level, e->w ? ", writable" : "", e->dirty ? ", dirty" : "",
				      why, vw.mapped ? "mapped" : "unmapped", vw.pa, vw.level,
				      vw.pte, vw.w ? " W" : "", vw.mmu_w ? " MMU-W" : "",
				      (R.op_t0 / 1000) % 100000000, hist);
				goto out;
			}
		}
		for (unsigned j = 0; j < SIM_TLB_WALKS; j++) {
			const struct sim_tlb_walk *w = &sn[i].walk[j];
			struct sim_view vw;

			if (!w->valid || w->tag != sn[i].tag)
				continue;
			R.checked_entries++;
			sim_view(R.kvm, sn[i].root, w->gfn, &vw);
			if (vw.table_at[w->level] == w->table && !vw.poison)
				continue;
			tfail("after %s: vcpu %u (%s%s) caches a walk through the level-%d table %p for "
			      "gfns %#" PRIx64 "+%#" PRIx64
			      ", which is no longer linked there (%s)",
			      what, i, mode_name(sn[i].mode),
			      sn[i].flush_pending ? ", flush pending" : ", no flush pending",
			      w->level, (void *)w->table, w->gfn, w->pages,
			      vw.poison		    ? "the walk reads a freed table" :
			      vw.table_at[w->level] ? "another table is" :
						      "a leaf or nothing is");
			goto out;
		}
	}
out:
	pthread_rwlock_unlock(&R.gate);
}

/* ---- the mutator ---- */

static struct span *gspan(struct span *sp, unsigned *n, gfn_t lo, gfn_t hi, bool strict)
{
	if (*n < MAXSPANS && lo < hi)
		sp[(*n)++] = (struct span){ .lo = lo, .hi = hi, .strict = strict };
	return sp;
}

/* Host pages [p0, p1): their span, and the gfns the present slots map
 * them at (for walk entries). */
static void hspans(struct span *sp, unsigned *n, uint64_t p0, uint64_t p1)
{
	if (*n < MAXSPANS)
		sp[(*n)++] = (struct span){ .host = true, .lo = p0, .hi = p1 };
	for (unsigned k = 0; k < NSLOTS; k++) {
		const struct slotm *m = &R.slot[k];
		uint64_t r0 = k * REGION_PAGES, lo, hi;

		if (!m->present)
			continue;
		lo = p0 > r0 ? p0 : r0;
		hi = p1 < r0 + m->npages ? p1 : r0 + m->npages;
		if (lo < hi)
			gspan(sp, n, m->base + (lo - r0), m->base + (hi - r0), false);
	}
}

/* Would [base, base + np) overlap a present slot (slot @k's own range too
 * when @self: a move goes somewhere disjoint, so that while it runs no gfn
 * is mapped by the old slot at one page and by the published layout at
 * another)? */
static bool overlaps(unsigned k, gfn_t base, uint64_t np, bool self)
{
	for (unsigned j = 0; j < NSLOTS; j++) {
		const struct slotm *m = &R.slot[j];

		if ((j != k || self) && m->present && base < m->base + m->npages &&
		    m->base < base + np)
			return true;
	}
	return false;
}

static bool place(uint64_t *rng, unsigned k, uint64_t np, bool self, gfn_t *base)
{
	for (int tries = 0; tries < 50; tries++) {
		gfn_t b = GFN_LO + rnd_below(rng, GFN_WINDOW - np);

		/* Mostly 2 MiB aligned (huge leaves possible: the hva is), some
		 * not (4 KiB only). */
		if (rnd_below(rng, 4))
			b &= ~511ull;
		if (b < GFN_LO || b + np > GFN_LO + GFN_WINDOW)
			continue;
		if (!overlaps(k, b, np, self)) {
			*base = b;
			return true;
		}
	}
	return false;
}

static void op_failed(const char *call, long r)
{
	tfail("%s returned %ld", call, r);
}

static unsigned logging_flags(unsigned k)
{
	return R.slot[k].flags & KVM_MEM_LOG_DIRTY_PAGES;
}

/* Logging begins (at add or by a flag change) after the call returned:
 * writes begun after this count. */
static void session_begin(unsigned k)
{
	uint64_t r = __atomic_add_fetch(&R.rounds_started, 1, __ATOMIC_SEQ_CST);

	__atomic_store_n(&R.rounds_done, r, __ATOMIC_SEQ_CST);
	R.slot[k].session = r;
}

static void session_end(unsigned k)
{
	R.slot[k].session = UINT64_MAX;
}

static void op_add(uint64_t *rng, unsigned k, bool during_invalidation, uint64_t p0, uint64_t p1)
{
	static const uint64_t sizes[] = { 512, 1024, 1536, 2048, 700, 2560, 4096, 1 };
	struct slotm *m = &R.slot[k];
	struct kvm_memory_slot s = { .id = k,
				     .userspace_addr = HVA_BASE + k * REGION_PAGES * 4096 };
	uint64_t np = sizes[rnd_below(rng, 8)];
	unsigned flags = 0;
	gfn_t base;
	int r;

	if (!place(rng, k, np, false, &base))
		return;
	if (rnd_below(rng, 4) == 0)
		flags |= KVM_MEM_LOG_DIRTY_PAGES;
	else if (rnd_below(rng, 10) == 0)
		flags |= KVM_MEM_READONLY;
	s.base_gfn = base;
	s.npages = np;
	s.flags = flags;
	/* Published to the vcpus first, so they fault on it while it is
	 * being added (a slot added during an invalidation must not map). */
	lay_begin();
	lay_set(k, base, np);
	trace("add slot %u at gfn %#" PRIx64 "+%#" PRIx64 " flags %#x%s", k, base, np, flags,
	      during_invalidation ? " during an invalidation" : "");
	r = kvm_set_memslot(R.kvm, &s);
	if (r) {
		lay_set(k, ~0ull, 0);
		lay_end();
		op_failed("kvm_set_memslot", r);
		return;
	}
	*m = (struct slotm){ true, base, np, flags, UINT64_MAX };
	lay_end();
	if (flags & KVM_MEM_LOG_DIRTY_PAGES)
		session_begin(k);
	if (during_invalidation) {
		/* Its gfns whose hva the host is changing joined the
		 * invalidation: nothing maps them, nothing caches them. */
		struct span sp[MAXSPANS];
		unsigned n = 0;

		hspans(sp, &n, p0, p1);
		check_promise("kvm_set_memslot during an invalidation", sp, n);
	}
}

static void op_delete(unsigned k)
{
	struct slotm *m = &R.slot[k];
	struct span sp[MAXSPANS];
	unsigned n = 0;
	int r;

	trace("delete slot %u (gfn %#" PRIx64 "+%#" PRIx64 ")", k, m->base, m->npages);
	lay_begin();
	r = kvm_delete_memslot(R.kvm, k);
	if (r) {
		lay_end();
		op_failed("kvm_delete_memslot", r);
		return;
	}
	lay_set(k, ~0ull, 0);
	session_end(k);
	gspan(sp, &n, m->base, m->base + m->npages, false);
	m->present = false;
	lay_end();
	check_promise("kvm_delete_memslot", sp, n);
}

static void op_move(uint64_t *rng, unsigned k)
{
	struct slotm *m = &R.slot[k];
	struct span sp[MAXSPANS];
	unsigned n = 0;
	gfn_t base, old = m->base;
	int r;

	if (!place(rng, k, m->npages, true, &base))
		return;
	lay_begin();
	lay_set(k, base, m->npages);
	trace("move slot %u from gfn %#" PRIx64 " to %#" PRIx64 " (+%#" PRIx64 ")", k, old, base,
	      m->npages);
	r = kvm_move_memslot(R.kvm, k, base);
	if (r) {
		lay_set(k, old, m->npages);
		lay_end();
		op_failed("kvm_move_memslot", r);
		return;
	}
	m->base = base;
	lay_end();
	gspan(sp, &n, old, old + m->npages, false);
	check_promise("kvm_move_memslot", sp, n);
}

static void op_flags(uint64_t *rng, unsigned k)
{
	struct slotm *m = &R.slot[k];
	struct span sp[MAXSPANS];
	unsigned n = 0, flags = m->flags;
	const char *what;
	int r;

	if (m->flags & KVM_MEM_READONLY) {
		flags &= ~KVM_MEM_READONLY;
		what = "kvm_set_memslot_flags(read-only off)";
	} else if (!(m->flags & KVM_MEM_LOG_DIRTY_PAGES) && rnd_below(rng, 5) == 0) {
		flags |= KVM_MEM_READONLY;
		what = "kvm_set_memslot_flags(read-only)";
	} else {
		flags ^= KVM_MEM_LOG_DIRTY_PAGES;
		what = flags & KVM_MEM_LOG_DIRTY_PAGES ? "kvm_set_memslot_flags(logging on)" :
							 "kvm_set_memslot_flags(logging off)";
	}
	trace("slot %u (gfn %#" PRIx64 "+%#" PRIx64 ") flags %#x -> %#x", k, m->base, m->npages,
	      m->flags, flags);
	lay_begin();
	r = kvm_set_memslot_flags(R.kvm, k, flags);
	lay_end();
	if (r) {
		op_failed(what, r);
		return;
	}
	if ((flags ^ m->flags) & KVM_MEM_LOG_DIRTY_PAGES) {
		if (flags & KVM_MEM_LOG_DIRTY_PAGES)
			session_begin(k);
		else
			session_end(k);
	}
	m->flags = flags;
	/* Logging on: every leaf protected, TLBs flushed (strict). Logging
	 * off collapses (a table replaced by a leaf owes a flush); read-only
	 * takes write access away. */
	gspan(sp, &n, m->base, m->base + m->npages, (flags & KVM_MEM_LOG_DIRTY_PAGES) != 0);
	check_promise(what, sp, n);
}

/*
 * A range [*lo, *hi) of gfns from a random page of slot @m. With @within,
 * 1 to @within pages cut at the slot's end. Without, 1 to the slot's size
 * (two times in three at most 64), ending up to 600 past the slot and at
 * times starting up to 600 before the page.
 */
static void range_in_slot(uint64_t *rng, const struct slotm *m, uint64_t within, gfn_t *lo,
			  gfn_t *hi)
{
	uint64_t a = rnd_below(rng, m->npages), len;

	*lo = m->base + a;
	if (within) {
		len = 1 + rnd_below(rng, within);
		*hi = *lo + (len < m->npages - a ? len : m->npages - a);
		return;
	}
	len = 1 + rnd_below(rng, rnd_below(rng, 3) ? 64 : m->npages);
	*hi = *lo + len;
	if (*hi > m->base + m->npages + 600)
		*hi = m->base + m->npages + 600;
	if (*lo >= 600 && rnd_below(rng, 8) == 0)
		*lo -= rnd_below(rng, 600);
}

static int pick_present(uint64_t *rng)
{
	unsigned k0 = (unsigned)rnd_below(rng, NSLOTS);

	for (unsigned i = 0; i < NSLOTS; i++)
		if (R.slot[(k0 + i) % NSLOTS].present)
			return (int)((k0 + i) % NSLOTS);
	return -1;
}

static int pick_absent(uint64_t *rng)
{
	unsigned k0 = (unsigned)rnd_below(rng, NSLOTS);

	for (unsigned i = 0; i < NSLOTS; i++)
		if (!R.slot[(k0 + i) % NSLOTS].present)
			return (int)((k0 + i) % NSLOTS);
	return -1;
}

/* The device's lockless walks go where gfn @lo of slot @k is (op_zap). */
static void hint_at(unsigned k, gfn_t lo)
{
	const struct slotm *m = &R.slot[k];

	__atomic_store_n(&R.hint, k * REGION_PAGES + (lo > m->base ? lo - m->base : 0) + 1,
			 __ATOMIC_RELAXED);
}

/* kvm_zap_gfn_range() over a present slot's range, or (@bytes) the same
 * through kvm_mmu_unmap_range(), its form in bytes. */
static void zap_range_op(uint64_t *rng, bool bytes)
{
	const char *call = bytes ? "kvm_mmu_unmap_range" : "kvm_zap_gfn_range";
	struct span sp[MAXSPANS];
	unsigned n = 0;
	int k = pick_present(rng);
	gfn_t lo, hi;
	long r;

	if (k < 0)
		return;
	range_in_slot(rng, &R.slot[k], 0, &lo, &hi);
	hint_at((unsigned)k, lo);
	trace("%s gfns %#" PRIx64 "-%#" PRIx64, bytes ? "unmap_range" : "zap", lo, hi);
	r = bytes ? kvm_mmu_unmap_range(R.kvm, gfn_to_gpa(lo), (hi - lo) << S2_GFN_SHIFT) :
		    kvm_zap_gfn_range(R.kvm, lo, hi);
	if (r < 0) {
		op_failed(call, r);
		return;
	}
	gspan(sp, &n, lo, hi, false);
	check_promise(call, sp, n);
}

static void op_zap(uint64_t *rng)
{
	zap_range_op(rng, false);
}

static void op_zap_all(void)
{
	struct span sp[MAXSPANS];
	unsigned n = 0;
	long r;

	trace("zap all");
	r = kvm_mmu_zap_all(R.kvm);

	if (r < 0) {
		op_failed("kvm_mmu_zap_all", r);
		return;
	}
	gspan(sp, &n, 0, ~0ull, false);
	check_promise("kvm_mmu_zap_all", sp, n);
}

/* The host changes pages [p0, p1) (hva page indexes): start, the change,
 * maybe a memslot update meanwhile, end. */
static void op_invalidate(uint64_t *rng)
{
	unsigned k = (unsigned)rnd_below(rng, NSLOTS);
	uint64_t r0 = k * REGION_PAGES, p0, p1;
	hva_t h0, h1;
	struct span sp[MAXSPANS];
	unsigned n = 0;
	int r;

	p0 = r0 + rnd_below(rng, REGION_PAGES);
	p1 = p0 + 1 + rnd_below(rng, rnd_below(rng, 2) ? 16 : 1024);
	if (p1 > HOST_PAGES)
		p1 = HOST_PAGES;
	h0 = HVA_BASE + p0 * 4096;
	h1 = HVA_BASE + p1 * 4096;
	if (rnd_below(rng, 4) == 0) { /* partial pages count whole */
		h0 += rnd_below(rng, 4096);
		h1 -= rnd_below(rng, 4096);
		if (h1 <= h0)
			h1 = h0 + 1;
	}
	trace("invalidate host pages %" PRIu64 "-%" PRIu64 " (hva %#" PRIx64 "-%#" PRIx64 ")", p0,
	      p1, h0, h1);
	r = kvm_mmu_notifier_invalidate_range_start(R.kvm, h0, h1, true);
	if (r) {
		op_failed("kvm_mmu_notifier_invalidate_range_start", r);
		return;
	}
	hspans(sp, &n, p0, p1);
	check_promise("kvm_mmu_notifier_invalidate_range_start", sp, n);
	host_flux(p0, p1, 1);
	host_remap(p0, p1);
	switch (rnd_below(rng, 8)) {
	case 0: {
		/* The slot whose hva this is appears, moves or goes while the
		 * host changes its pages. */
		if (!R.slot[k].present)
			op_add(rng, k, true, p0, p1);
		else if (rnd_below(rng, 2))
			op_move(rng, k);
		else
			op_delete(k);
		break;
	}
	case 1:
	case 2:
		/* The vcpus run while the host changes the pages. */
		spin_us(10 + rnd_below(rng, 100));
		break;
	default: break;
	}
	host_flux(p0, p1, -1);
	trace("invalidate end");
	r = kvm_mmu_notifier_invalidate_range_end(R.kvm, h0, h1, true);
	if (r)
		op_failed("kvm_mmu_notifier_invalidate_range_end", r);
}

/*
 * Many quick cycles of one pattern while the vcpus crowd on the slot: the
 * host starts invalidating a slot's hva, the slot is added (or moved there)
 * meanwhile, then deleted, and the invalidation ends. A fault that finds the
 * new slot before its gfns joined the invalidation would map a page the host
 * is changing (the access check sees the guest use it).
 */
static void op_slot_burst(uint64_t *rng)
{
	int k = pick_absent(rng);

	if (k < 0 && (k = pick_present(rng)) >= 0)
		op_delete((unsigned)k);
	if (k < 0)
		return;
	__atomic_store_n(&R.focus, (unsigned)k + 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 25 && !stopping(); i++) {
		uint64_t p0 = k * REGION_PAGES, p1 = p0 + REGION_PAGES;
		int r = kvm_mmu_notifier_invalidate_range_start(R.kvm, HVA_BASE + p0 * 4096,
								HVA_BASE + p1 * 4096, true);

		if (r) {
			op_failed("kvm_mmu_notifier_invalidate_range_start", r);
			break;
		}
		host_flux(p0, p1, 1);
		host_remap(p0, p0 + 512);
		op_add(rng, (unsigned)k, true, p0, p1);
		if (R.slot[k].present && rnd_below(rng, 2))
			op_move(rng, (unsigned)k);
		if (R.slot[k].present)
			op_delete((unsigned)k);
		host_flux(p0, p1, -1);
		r = kvm_mmu_notifier_invalidate_range_end(R.kvm, HVA_BASE + p0 * 4096,
							  HVA_BASE + p1 * 4096, true);
		if (r) {
			op_failed("kvm_mmu_notifier_invalidate_range_end", r);
			break;
		}
	}
	__atomic_store_n(&R.focus, 0, __ATOMIC_RELAXED);
}

static void op_track(uint64_t *rng)
{
	struct span sp[MAXSPANS];
	unsigned n = 0;
	int k, r;

	if (R.ntracked && (R.ntracked == MAX_TRACKED || rnd_below(rng, 2))) {
		unsigned i = (unsigned)rnd_below(rng, R.ntracked);

		r = kvm_write_track_remove_gfn(R.kvm, R.tracked[i]);
		if (r)
			op_failed("kvm_write_track_remove_gfn", r);
		R.tracked[i] = R.tracked[--R.ntracked];
		return;
	}
	k = pick_present(rng);
	if (k < 0)
		return;
	gfn_t g = R.slot[k].base + rnd_below(rng, R.slot[k].npages);

	trace("track gfn %#" PRIx64, g);
	r = kvm_write_track_add_gfn(R.kvm, g);
	if (r) {
		op_failed("kvm_write_track_add_gfn", r);
		return;
	}
	R.tracked[R.ntracked++] = g;
	gspan(sp, &n, g, g + 1, false);
	check_promise("kvm_write_track_add_gfn", sp, n);
}

/*
 * kvm_mmu_wrprotect_range() over up to 2048 pages of a present slot: W and
 * MMU-writable go, so no vcpu may keep a writable entry for them (its run
 * visitor changes leaves of one pattern with plain stores and owes their
 * flush at once; issue 16). Not on TDs (their shared half is at t_sbit).
 */
static void op_wrprotect(uint64_t *rng)
{
	struct span sp[MAXSPANS];
	unsigned n = 0;
	int k = pick_present(rng);
	gfn_t lo, hi;
	long r;

	if (k < 0 || t_sbit)
		return;
	range_in_slot(rng, &R.slot[k], 2048, &lo, &hi);
	trace("wrprotect gfns %#" PRIx64 "-%#" PRIx64, lo, hi);
	r = kvm_mmu_wrprotect_range(R.kvm, gfn_to_gpa(lo), (hi - lo) << 12);
	if (r < 0) {
		op_failed("kvm_mmu_wrprotect_range", r);
		return;
	}
	gspan(sp, &n, lo, hi, false);
	check_promise("kvm_mmu_wrprotect_range", sp, n);
}

/*
 * The first gfn of [lo, hi) whose frame the host may not change before a
 * kvm_mmu_map_range() into root @tgt (gate held), or @hi: one that another
 * valid root maps (or keeps access-tracked), or that @tgt maps with a leaf
 * a fault may need more of (not writable, when @need_w; access-tracked).
 * Such a fault, during the call, asks for the new frame, finds the old
 * one's leaf, and rule 1 would refuse the change: the host changes its
 * backing only where every fault finds what it needs, or nothing.
 */
static gfn_t move_stop(hpa_t tgt, gfn_t lo, gfn_t hi, bool need_w)
{
	struct kvm *kvm = R.kvm;
	unsigned n = __atomic_load_n(&kvm->roots_hi, __ATOMIC_ACQUIRE);

	for (gfn_t g = lo; g < hi; g++) {
		for (unsigned i = 0; i < n; i++) {
			const struct s2_root *r = &kvm->roots[i];
			struct sim_view vw;

			if (__atomic_load_n(&r->state, __ATOMIC_ACQUIRE) != S2_ROOT_VALID)
				continue;
			sim_view(kvm, r->pa, g, &vw);
			if (r->pa != tgt ?
				    vw.mapped || vw.poison :
				    vw.poison || (vw.mapped && (vw.tracked || (need_w && !vw.w))))
				return g;
		}
	}
	return hi;
}

/*
 * kvm_mmu_map_range() of gfns [lo, *hi) of present slot @k, from the
 * mutator's vcpu (never run), with @prot. The pages are cut to a run the
 * host backs with one version and one kind of frame (contiguous frames).
 * Up to where move_stop() says, the range is mapped to the frames the host
 * does NOT back it with (R.alt flips: the host backs the pages with those
 * from now on and faults resolve them); where it stops at once, to the
 * ones it does, as faults would (other roots keep what they map:
 * docs/static.md).
 * The flip is made at the gate (no fault in flight has resolved a pfn
 * before it); while the call runs either frame is a valid translation
 * (check 2), after it only the new one. Right after the call the vcpu's
 * root maps the range to what it was given.
 */
static void map_one(unsigned k, gfn_t lo, gfn_t *hi, unsigned prot)
{
	struct slotm *m = &R.slot[k];
	uint64_t p0 = k * REGION_PAGES + (lo - m->base), np = *hi - lo, probe[8];
	unsigned v0 = R.ver[p0], a0 = R.alt[p0] & ALT_ON, kind = a0, nprobe = 0;
	struct span sp[MAXSPANS];
	unsigned n = 0;
	hpa_t tgt, hpa;
	bool move;
	int r;

	for (uint64_t i = 1; i < np; i++)
		if (R.ver[p0 + i] != v0 || (R.alt[p0 + i] & ALT_ON) != a0)
			np = i;
	*hi = lo + np;
	gate_lock(true);
	tgt = kvm_vcpu_root_hpa(R.mv);
	if (!root_valid(tgt))
		tgt = kvm_mmu_root_hpa(R.kvm); /* where the call follows to */
	np = move_stop(tgt, lo, *hi, !(m->flags & KVM_MEM_READONLY)) - lo;
	move = np > 0;
	if (move) {
		*hi = lo + np;
		kind = a0 ^ ALT_ON;
		for (uint64_t p = p0; p < p0 + np; p++)
			__atomic_store_n(&R.alt[p], kind | ALT_BOTH, __ATOMIC_RELEASE);
		for (uint64_t b = p0 / 512; b <= (p0 + np - 1) / 512; b++)
			host_block_update(b);
		tr_host(p0 / 512 * 512, ((p0 + np - 1) / 512 + 1) * 512);
		R.map_moves++;
	} else {
		np = *hi - lo;
	}
	pthread_rwlock_unlock(&R.gate);
	hint_at(k, lo);
	hpa = (pfn_of(p0, v0) + (kind ? ALT_OFF : 0)) << S2_GFN_SHIFT;
	trace("map_range gfns %#" PRIx64 "-%#" PRIx64 " -> pfn %#" PRIx64 " (%s frames) prot %#x",
	      lo, *hi, hpa >> S2_GFN_SHIFT, move ? "the other" : "the host's", prot);
	r = kvm_mmu_map_range(R.mv, gfn_to_gpa(lo), hpa, np << S2_GFN_SHIFT, prot, S2_MT_WB);
	if (move)
		for (uint64_t p = p0; p < p0 + np; p++)
			__atomic_store_n(&R.alt[p], kind, __ATOMIC_RELEASE);
	if (r) {
		op_failed("kvm_mmu_map_range", r);
		return;
	}
	R.maps++;
	R.map_pages += np;
	/* What the call was given is what the vcpu's root maps, where it maps
	 * anything (faults since resolve the same frames; one may have zapped
	 * a huge leaf the call installed where the host maps 4 KiB, to map
	 * smaller); both ends and a few inside. */
	probe[nprobe++] = 0;
	probe[nprobe++] = np - 1;
	for (uint64_t rr = R.seed ^ R.maps; nprobe < 8 && np > 2;)
		probe[nprobe++] = rnd_below(&rr, np);
	gate_lock(true);
	tgt = kvm_vcpu_root_hpa(R.mv);
	for (unsigned i = 0; i < nprobe && root_valid(tgt); i++) {
		struct sim_view vw;

		sim_view(R.kvm, tgt, lo + probe[i], &vw);
		if (vw.poison || (vw.mapped && vw.pa != hpa + (probe[i] << S2_GFN_SHIFT))) {
			tfail("kvm_mmu_map_range(gfns %#" PRIx64 "-%#" PRIx64 " -> pa %#" PRIx64
			      ") returned 0, but the vcpu's root maps gfn %#" PRIx64
			      " %s %#" PRIx64,
			      lo, *hi, hpa, lo + probe[i],
			      vw.poison ? "through a freed table, pte" : "to pa",
			      vw.poison ? vw.pte : vw.pa);
			break;
		}
	}
	/* Nor does it make a write-tracked gfn writable (dirty.h: its leaf
	 * has neither W nor MMU-writable; TLB_MAP_TRACKED=0 skips this). It
	 * did until s2_map_leaves() read the tracked set (2026-12-06). */
	for (unsigned t = 0; R.map_tracked && t < R.ntracked && root_valid(tgt); t++) {
		struct sim_view vw;

		if (R.tracked[t] < lo || R.tracked[t] >= *hi)
			continue;
		sim_view(R.kvm, tgt, R.tracked[t], &vw);
		if (vw.mapped && (vw.w || vw.mmu_w))
			tfail("kvm_mmu_map_range(gfns %#" PRIx64 "-%#" PRIx64
			      ", prot %#x) made the "
			      "write-tracked gfn %#" PRIx64 " %s",
			      lo, *hi, prot, R.tracked[t], vw.w ? "writable" : "MMU-writable");
	}
	pthread_rwlock_unlock(&R.gate);
	gspan(sp, &n, lo, *hi, false);
	check_promise("kvm_mmu_map_range", sp, n);
}

/*
 * kvm_mmu_map_range() over a range of a present slot (not on TDs: -ENOTSUP
 * there). A few pages (fewer leaves than a batch: the read-side try into
 * empty entries, and the write side's zap and install from the first
 * present one), or up to the slot's size (from 256 4 KiB leaves on, the
 * invalidation and the batched fill), and at times the same range again
 * at once, so the second call replaces what the first installed with the
 * other frames. W only where the slot is writable; at times R or RW only,
 * so faults add what the leaves lack.
 */
static void op_map_range(uint64_t *rng)
{
	int k = pick_present(rng);
	uint64_t mode = rnd_below(rng, 8), x = rnd_below(rng, 5);
	unsigned prot = S2_PROT_R;
	gfn_t lo, hi;

	if (k < 0 || t_sbit || !R.mv)
		return;
	if (!(R.slot[k].flags & KVM_MEM_READONLY) && x)
		prot |= S2_PROT_W;
	if (x > 1)
		prot |= S2_PROT_X;
	range_in_slot(rng, &R.slot[k], mode < 4 ? 64 : R.slot[k].npages, &lo, &hi);
	/* Writable leaves first, so the second call may change their frame. */
	map_one((unsigned)k, lo, &hi,
		mode >= 6 && (prot & S2_PROT_W) ? S2_PROT_R | S2_PROT_W | S2_PROT_X : prot);
	if (mode >= 6 && !stopping())
		map_one((unsigned)k, lo, &hi, prot);
}

/* kvm_mmu_unmap_range() (kvm_zap_gfn_range() in bytes) over a range as
 * op_zap picks it. */
static void op_unmap_range(uint64_t *rng)
{
	zap_range_op(rng, true);
}

static void op_age(uint64_t *rng)
{
	uint64_t p0 = rnd_below(rng, HOST_PAGES), p1 = p0 + 1 + rnd_below(rng, 2048);
	long r;

	if (p1 > HOST_PAGES)
		p1 = HOST_PAGES;
	trace("age host pages %" PRIu64 "-%" PRIu64, p0, p1);
	if (rnd_below(rng, 2))
		r = kvm_mmu_notifier_clear_flush_young(R.kvm, HVA_BASE + p0 * 4096,
						       HVA_BASE + p1 * 4096);
	else
		r = kvm_mmu_notifier_clear_young(R.kvm, HVA_BASE + p0 * 4096, HVA_BASE + p1 * 4096);
	if (r < 0)
		op_failed("kvm_mmu_notifier_clear_(flush_)young", r);
}

static void op_attr(uint64_t *rng)
{
	struct span sp[MAXSPANS];
	unsigned n = 0;
	int k = pick_present(rng);
	gfn_t lo, hi;
	int r;

	if (k < 0)
		return;
	range_in_slot(rng, &R.slot[k], 0, &lo, &hi);
	trace("attributes gfns %#" PRIx64 "-%#" PRIx64, lo, hi);
	r = kvm_vm_set_mem_attributes(R.kvm, lo, hi,
				      rnd_below(rng, 2) ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0);
	if (r) {
		op_failed("kvm_vm_set_mem_attributes", r);
		return;
	}
	gspan(sp, &n, lo, hi, false);
	check_promise("kvm_vm_set_mem_attributes", sp, n);
}

/* ---- harvest rounds (check 3) ---- */

static void report(unsigned k, uint64_t off, uint64_t round)
{
	if (k >= NSLOTS || off >= REGION_PAGES) {
		tfail("harvest reported slot %u page %" PRIu64 ", which no slot has", k, off);
		return;
	}
	R.lastrep[k * REGION_PAGES + off] = round;
	R.reported++;
}

static void report_bitmap(unsigned k, const uint64_t *bm, uint64_t np, uint64_t round)
{
	for (uint64_t w = 0; w < (np + 63) / 64; w++)
		for (uint64_t m = bm[w]; m; m &= m - 1)
			report(k, w * 64 + (unsigned)__builtin_ctzll(m), round);
}

static void op_harvest(void)
{
	static uint64_t bm[REGION_PAGES / 64];
	static struct kvm_dirty_gfn ents[256];
	struct span sp[MAXSPANS];
	unsigned n = 0;
	bool any = false;
	uint64_t round;
	long r;

	for (unsigned k = 0; k < NSLOTS; k++)
		if (R.slot[k].present && logging_flags(k))
			any = true;
	if (!any && !R.cfg->rings)
		return;
	/* Writes done before the round begins must be reported by it. */
	for (unsigned k = 0; k < NSLOTS; k++)
		for (uint64_t p = 0; p < REGION_PAGES; p++)
			R.snap[k * REGION_PAGES + p] =
				__atomic_load_n(&R.mx[k * REGION_PAGES + p], __ATOMIC_SEQ_CST);
	round = __atomic_add_fetch(&R.rounds_started, 1, __ATOMIC_SEQ_CST);
	trace("harvest round %" PRIu64, round);
	if (R.cfg->caps & KVM_DIRTY_LOG_PML)
		sync_vcpus();
	for (unsigned k = 0; k < NSLOTS; k++) {
		const struct slotm *m = &R.slot[k];

		if (!m->present || !logging_flags(k))
			continue;
		memset(bm, 0, sizeof(bm));
		r = kvm_get_dirty_log(R.kvm, k, bm);
		if (r < 0) {
			op_failed("kvm_get_dirty_log", r);
			return;
		}
		report_bitmap(k, bm, m->npages, round);
		if (R.cfg->caps & KVM_DIRTY_LOG_MANUAL_PROTECT) {
			r = kvm_clear_dirty_log(R.kvm, k, 0, m->npages, bm);
			if (r < 0) {
				op_failed("kvm_clear_dirty_log", r);
				return;
			}
		}
		gspan(sp, &n, m->base, m->base + m->npages, true);
	}
	if (R.cfg->rings) {
		for (unsigned i = 0; i < R.cfg->nvcpus; i++) {
			while ((r = kvm_dirty_ring_harvest(R.vc[i].v, ents, 256)) > 0)
				for (long j = 0; j < r; j++)
					if (R.slot[ents[j].slot % NSLOTS].present)
						report(ents[j].slot, ents[j].offset, round);
			if (r < 0) {
				op_failed("kvm_dirty_ring_harvest", r);
				return;
			}
		}
		r = kvm_dirty_ring_reset(R.kvm);
		if (r < 0) {
			op_failed("kvm_dirty_ring_reset", r);
			return;
		}
	}
	__atomic_store_n(&R.rounds_done, round, __ATOMIC_SEQ_CST);
	R.rounds++;
	check_promise("a harvest round (get / clear / ring reset)", sp, n);

	for (unsigned k = 0; k < NSLOTS; k++) {
		const struct slotm *m = &R.slot[k];

		if (!m->present || !logging_flags(k))
			continue;
		for (uint64_t off = 0; off < m->npages; off++) {
			uint64_t p = k * REGION_PAGES + off, need = R.snap[p];

			if (need <= m->session || R.lastrep[p] >= need)
				continue;
			R.lost++;
			tfail("harvest round %" PRIu64 ": a write to slot %u page %" PRIu64
			      " (gfn %#" PRIx64 "), begun after round %" PRIu64
			      " and done before this one began, was not reported (last report: round %" PRIu64
			      ")",
			      round, k, off, m->base + off, need - 1, R.lastrep[p]);
			return;
		}
	}
}

/* ---- the device ---- */

static void *device_main(void *arg)
{
	uint64_t rng = R.seed * 7 + 3;
	long r;

	(void)arg;
	t_who = "device";
	t_cpu = CPU_DEVICE;
	preempt_thread_init();
	fs_online();
	while (!stopping()) {
		uint64_t x = rnd(&rng);

		fs_qs();
		if (x % 8 < 5) {
			unsigned k = (unsigned)(x >> 8) % NSLOTS;
			uint64_t b = __atomic_load_n(&R.lay_base[k], __ATOMIC_ACQUIRE);
			uint64_t n = __atomic_load_n(&R.lay_np[k], __ATOMIC_RELAXED);

			if (b != ~0ull && n) {
				emulated_write(NULL, b + (x >> 20) % n);
				__atomic_fetch_add(&R.device_writes, 1, __ATOMIC_RELAXED);
			}
		} else if (x % 64 == 5 || x % 64 == 13) {
			/* The embedder flushes too (it changes no entry), from a
			 * thread with no vcpu: flushes race each other. */
			if (x % 64 == 5)
				kvm_flush_remote_tlbs(R.kvm);
			else
				kvm_flush_remote_tlbs_range(R.kvm, GFN_LO + (x >> 16) % GFN_WINDOW,
							    1 + (x >> 40) % 512);
			__atomic_fetch_add(&R.device_flushes, 1, __ATOMIC_RELAXED);
		} else if (x % 8 == 5) {
			uint64_t p0 = (x >> 8) % HOST_PAGES,
				 h = __atomic_load_n(&R.hint, __ATOMIC_RELAXED);

			/* Half the time over the 2 MiB where the mutator zaps or
			 * maps now: a lockless walk inside the tables a write side
			 * unlinks and frees (a grace period later while one runs). */
			if (h && ((x >> 40) & 1))
				p0 = (h - 1) & ~511ull;

			t_young = true;
			r = kvm_mmu_notifier_test_young(R.kvm, HVA_BASE + p0 * 4096,
							HVA_BASE + (p0 + 512) * 4096);
			t_young = false;
			if (r < 0)
				tfail("kvm_mmu_notifier_test_young returned %ld", r);
		} else {
			struct s2_mapping m;

			r = kvm_mmu_lookup(
				R.kvm, gfn_to_gpa((GFN_LO + (x >> 8) % GFN_WINDOW) | t_sbit), &m);
			if (r < 0)
				tfail("kvm_mmu_lookup returned %ld", r);
		}
		if (x % 4 == 0)
			t_yield();
	}
	fs_offline();
	preempt_thread_fini();
	return NULL;
}

/* ---- the mutator's loop ---- */

struct mut_arg {
	uint64_t ops;
	double seconds;
	uint64_t only; /* < 1000: every operation is that one (TLB_ONLY) */
};

static void *mutator_main(void *arg)
{
	const struct mut_arg *ma = arg;
	uint64_t rng = R.seed;
	uint64_t deadline = now_ns() + (uint64_t)(ma->seconds * 1e9);

	t_who = "mutator";
	t_cpu = CPU_MUTATOR;
	preempt_thread_init();
	fs_online();
	/* A few slots to start with. */
	for (unsigned k = 0; k < 4; k++)
		op_add(&rng, k, false, 0, 0);
	for (uint64_t i = 0; i < ma->ops && !stopping() && now_ns() < deadline; i++) {
		uint64_t x = rnd_below(&rng, 1000), checks0 = R.checks, t0 = now_ns();

		if (ma->only < 1000)
			x = ma->only; /* TLB_ONLY: one kind of operation */
		R.op_t0 = t0;
		int k;

#define OP(name) __atomic_store_n(&R.cur_op, name, __ATOMIC_RELAXED)
		if (x < 120) {
			OP("pause");
			spin_us(10 + rnd_below(&rng, 200));
		} else if (x < 250) {
			OP("zap");
			op_zap(&rng);
		} else if (x < 255) {
			OP("zap_all");
			op_zap_all();
		} else if (x < 390) {
			OP("invalidate");
			op_invalidate(&rng);
		} else if (x < 450) {
			OP("add");
			if ((k = pick_absent(&rng)) >= 0)
				op_add(&rng, (unsigned)k, false, 0, 0);
		} else if (x < 490) {
			OP("delete");
			if ((k = pick_present(&rng)) >= 0)
				op_delete((unsigned)k);
		} else if (x < 540) {
			OP("move");
			if ((k = pick_present(&rng)) >= 0)
				op_move(&rng, (unsigned)k);
		} else if (x < 640) {
			OP("flags");
			if ((k = pick_present(&rng)) >= 0)
				op_flags(&rng, (unsigned)k);
		} else if (x < 820) {
			OP("harvest");
			op_harvest();
		} else if (x < 845) {
			OP("track");
			op_track(&rng);
		} else if (x < 860) {
			OP("wrprotect");
			op_wrprotect(&rng);
		} else if (x < 912) {
			OP("age");
			op_age(&rng);
		} else if (x < 920) {
			OP("slot burst");
			op_slot_burst(&rng);
		} else if (x < 975) {
			OP("attr");
			op_attr(&rng);
		} else if (x < 995) {
			OP("map_range");
			op_map_range(&rng);
		} else {
			OP("unmap_range");
			op_unmap_range(&rng);
		}
#undef OP
		/* Every call leaves no stale entry behind (whatever else it
		 * promises): check after those that did not check themselves. */
		if (R.checks == checks0)
			check_promise(__atomic_load_n(&R.cur_op, __ATOMIC_RELAXED), NULL, 0);
		for (unsigned j = 0; j < 20; j++) {
			if (!R.opstat[j].name || R.opstat[j].name == R.cur_op) {
				R.opstat[j].name = R.cur_op;
				R.opstat[j].n++;
				R.opstat[j].ns += now_ns() - t0;
				break;
			}
		}
		__atomic_store_n(&R.cur_op, "between operations", __ATOMIC_RELAXED);
		__atomic_add_fetch(&R.ops_done, 1, __ATOMIC_RELAXED);
		fs_qs();
		spin_us(20);
	}
	fs_offline();
	preempt_thread_fini();
	/* Let every write reach the log: one more round with the vcpus out. */
	__atomic_store_n(&R.stop, true, __ATOMIC_SEQ_CST);
	return NULL;
}

/* ---- one configuration ---- */

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *s = getenv(name);

	return s && *s ? strtoull(s, NULL, 0) : dflt;
}

static uint64_t name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 0x100000001b3ull;
	return h;
}

#if S2_ENABLED(CONFIG_S2_TDX)
/* A TD with no private memory: its SEAMCALL hooks succeed and are never
 * needed but for teardown (the private half: tests/tdx/test_tlb_mt.c). */
static uint64_t td_ok_gl(void *c, gpa_t g, int l)
{
	(void)c, (void)g, (void)l;
	return S2_TDX_SUCCESS;
}
static uint64_t td_ok_glp(void *c, gpa_t g, int l, hpa_t p)
{
	(void)c, (void)g, (void)l, (void)p;
	return S2_TDX_SUCCESS;
}
static uint64_t td_ok(void *c)
{
	(void)c;
	return S2_TDX_SUCCESS;
}
static uint64_t td_ok_p(void *c, hpa_t p)
{
	(void)c, (void)p;
	return S2_TDX_SUCCESS;
}
static int td_no_pfn(void *c, const struct kvm_memory_slot *slot, gfn_t gfn, kvm_pfn_t *pfn,
		     int *max_level)
{
	(void)c, (void)slot, (void)gfn, (void)pfn, (void)max_level;
	return -EFAULT;
}
static const struct s2_tdx_ops td_ops = {
	.sept_add = td_ok_glp,
	.page_aug = td_ok_glp,
	.range_block = td_ok_gl,
	.track = td_ok,
	.page_remove = td_ok_gl,
	.sept_remove = td_ok_gl,
	.page_wbinvd = td_ok_p,
	.page_reclaim = td_ok_p,
	.private_pfn = td_no_pfn,
};
#endif

static void td_init(unsigned gpa_bits)
{
#if S2_ENABLED(CONFIG_S2_TDX)
	struct kvm_tdx_params tp = { .ops = &td_ops, .shared_bit = gpa_bits - 1 };

	assert_int_equal(kvm_tdx_init(R.kvm, &tp), 0);
	t_sbit = 1ull << (gpa_bits - 1 - S2_GFN_SHIFT);
	assert_true(GFN_LO + GFN_WINDOW <= t_sbit);
#else
	(void)gpa_bits;
#endif
}

static void run_cfg(const struct cfg *cfg)
{
	struct kvm_vm_params p = t_default_params(TEST_FMT);
	pthread_rwlockattr_t ga;
	pthread_t mt, dt;
	struct mut_arg ma;
	bool verbose = env_u64("TLB_VERBOSE", 0);

	tracing = env_u64("TLB_TRACE", 0);

	memset(&R, 0, sizeof(R));
	R.cfg = cfg;
	R.seed = env_u64("TLB_SEED", name_hash(cfg->name) ^ name_hash(TEST_FMT_NAME));
	if (!R.seed)
		R.seed = 1;
	ma.ops = env_u64("TLB_OPS", DEFAULT_OPS);
	ma.seconds =
		strtod(getenv("TLB_SECONDS") && *getenv("TLB_SECONDS") ? getenv("TLB_SECONDS") :
									 DEFAULT_SECONDS,
		       NULL);
	ma.only = 1000;
	if (getenv("TLB_ONLY")) {
		/* The mix's thresholds, by operation name. */
		static const struct {
			const char *name;
			unsigned x;
		} ops[] = { { "pause", 0 },	   { "zap", 120 },	 { "zap_all", 250 },
			    { "invalidate", 255 }, { "add", 390 },	 { "delete", 450 },
			    { "move", 490 },	   { "flags", 540 },	 { "harvest", 640 },
			    { "track", 820 },	   { "wrprotect", 845 }, { "age", 860 },
			    { "burst", 912 },	   { "attr", 920 },	 { "map_range", 975 },
			    { "unmap_range", 995 } };

		for (size_t j = 0; j < sizeof(ops) / sizeof(ops[0]); j++)
			if (!strcmp(getenv("TLB_ONLY"), ops[j].name))
				ma.only = ops[j].x;
	}
	pthread_mutex_init(&R.qlock, NULL);
	pthread_rwlockattr_init(&ga);
	pthread_rwlockattr_setkind_np(&ga, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&R.gate, &ga);
	for (uint64_t b = 0; b < HOST_PAGES / 512; b++)
		R.uni[b] = 1;
	for (unsigned k = 0; k < NSLOTS; k++) {
		R.lay_base[k] = ~0ull;
		R.slot[k].session = UINT64_MAX;
	}
	R.spaces = env_u64("TLB_SPACES", 1);
	R.map_tracked = env_u64("TLB_MAP_TRACKED", 1);
	t_cpu = 0;
	env_init();
	fs_online();

	p.fmt_flags = (p.fmt_flags | cfg->flags_set) & ~cfg->flags_clear;
	p.max_vcpus = MAXV;
	p.env = &R.h.env;
	if (S2_ENABLED(CONFIG_S2_TRACE) && env_u64("TLB_RECORD", 1)) {
		void *b = mmap(NULL, TR_CAP, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		TR.buf = b == MAP_FAILED ? NULL : b;
		TR.len = 0;
		TR.end = TR_CAP;
		R.h.ops.log = w_log;
		R.h.env.trace = TR.buf != NULL;
		tr_line("# s2mmu trace 1: tests/generic/tlb_model_mt %s %s seed=%#" PRIx64
			" (the library's calls of every thread in the order they returned)",
			TEST_FMT_NAME, cfg->name, R.seed);
		tr_line("host level=1 hva=%#llx end=%#llx", HVA_BASE,
			HVA_BASE + HOST_PAGES * 4096ull);
		tr_host(0, HOST_PAGES);
	}
	assert_int_equal(kvm_create_vm(&p, &R.kvm), 0);
	t_sbit = 0;
	if (cfg->td)
		td_init(p.gpa_bits);
	/* Small batches, so the long walks (memslot zaps, dirty-log start,
	 * collapse, zap-all) yield mmu_lock inside these small slots and
	 * faults and notifiers run in between; and memslot removals take the
	 * fast zap when their slot holds most of the VM's leaves. */
	R.kvm->yield_batch = (unsigned)env_u64("TLB_BATCH", 256);
	R.kvm->fast_zap_min = env_u64("TLB_FAST_MIN", 64);
	R.vstride = 1ull << (kvm_fmt_cfg(R.kvm)->pa_bits - S2_GFN_SHIFT - 8);
	assert_true(R.vstride >= PFN_BASE + ALT_OFF + HOST_PAGES);
	assert_int_equal(kvm_dirty_log_set_caps(R.kvm, cfg->caps), 0);
	R.hwd = kvm_dirty_log_hw(R.kvm);
	if (cfg->rings)
		assert_int_equal(kvm_dirty_ring_enable(R.kvm, 1024, 256), 0);
	for (unsigned i = 0; i < cfg->nvcpus; i++) {
		struct vc *s = &R.vc[i];

		sim_tlb_init(&s->tlb, TEST_FMT == S2_FMT_X86_EPT);
		s->idx = i;
		s->rng = R.seed * (i + 11) + 0x9e3779b97f4a7c15ull;
		assert_int_equal(kvm_vcpu_create(R.kvm, i, &s->v), 0);
		__atomic_store_n(&R.nv, i + 1, __ATOMIC_RELEASE);
	}
	/* The mutator's own vcpu, for kvm_mmu_map_range(): never entered, it
	 * follows a fast zap at its next call (not on TDs: -ENOTSUP). */
	if (!cfg->td)
		assert_int_equal(kvm_vcpu_create(R.kvm, cfg->nvcpus, &R.mv), 0);

	uint64_t t0 = now_ns();

	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_preempt;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGUSR1, &sa, NULL), 0);
	/* The main thread makes no library call while the others run. */
	fs_offline();
	for (unsigned i = 0; i < cfg->nvcpus; i++)
		assert_int_equal(pthread_create(&R.vc[i].th, NULL, vcpu_main, &R.vc[i]), 0);
	assert_int_equal(pthread_create(&dt, NULL, device_main, NULL), 0);
	assert_int_equal(pthread_create(&mt, NULL, mutator_main, &ma), 0);

	/* Watchdog: the mutator must make progress. */
	uint64_t last = 0, last_t = now_ns();

	while (!__atomic_load_n(&R.stop, __ATOMIC_SEQ_CST)) {
		usleep(20000);
		uint64_t d = __atomic_load_n(&R.ops_done, __ATOMIC_RELAXED);

		if (d != last) {
			last = d;
			last_t = now_ns();
		} else if (now_ns() - last_t > (uint64_t)WATCHDOG_S * 1000000000ull) {
			fprintf(stderr,
				"[%s/%s seed=%#" PRIx64
				"] no progress for %ds in operation %" PRIu64 " (%s); vcpu modes:",
				TEST_FMT_NAME, cfg->name, R.seed, WATCHDOG_S, d,
				__atomic_load_n(&R.cur_op, __ATOMIC_RELAXED));
			for (unsigned i = 0; i < cfg->nvcpus; i++)
				fprintf(stderr, " %s", mode_name(kvm_vcpu_mode(R.vc[i].v)));
			fprintf(stderr, "\n");
			for (unsigned i = 0; i < cfg->nvcpus; i++) {
				static char hist[1024];

				vev_print(hist, sizeof(hist), &R.vc[i]);
				fprintf(stderr, "vcpu %u events:%s\n", i, hist);
			}
#ifdef T_FS_RCU
			if (cfg->fsrcu)
				for (unsigned i = 0; i < NCPUS; i++)
					fprintf(stderr,
						"cpu %u: online %u, quiescent in grace period %" PRIu64
						" of %" PRIu64 "\n",
						i, R.fs_cpus[i].online, R.fs_cpus[i].qs_seq,
						R.fs.gp_seq);
#endif
			if (env_u64("TLB_GDB", 0)) {
				char cmd[128];

				/* Every thread's stack (Yama may only let a child attach
				 * to its parent when the parent allows it). */
				(void)prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
				snprintf(
					cmd, sizeof(cmd),
					"gdb -p %d -batch -ex 'thread apply all bt' >&2 2>/dev/null",
					(int)getpid());
				if (system(cmd))
					fprintf(stderr, "(gdb failed)\n");
			}
			abort();
		}
	}
	assert_int_equal(pthread_join(mt, NULL), 0);
	assert_int_equal(pthread_join(dt, NULL), 0);
	for (unsigned i = 0; i < cfg->nvcpus; i++)
		assert_int_equal(pthread_join(R.vc[i].th, NULL), 0);
	fs_online();

	/* Everything the vcpus wrote is in the log or the tables: a last round. */
	if (!R.failed) {
		R.stop = false;
		__atomic_store_n(&R.cur_op, "final harvest", __ATOMIC_RELAXED);
		op_harvest();
	}

	uint64_t acc = 0, wr = 0, hits = 0, faults = 0, fixed = 0, retries = 0, spur = 0;

	for (unsigned i = 0; i < cfg->nvcpus; i++) {
		acc += R.vc[i].accesses;
		wr += R.vc[i].writes;
		hits += R.vc[i].hits;
		faults += R.vc[i].faults;
		fixed += R.vc[i].fixed;
		retries += R.vc[i].retries;
		spur += R.vc[i].spurious;
	}
	struct kvm_mmu_stats ks;

	assert_int_equal(kvm_get_stats(R.kvm, &ks), 0);
	if (verbose || R.failed)
		print_message("[%s] %-22s %" PRIu64 " flushes, %" PRIu64 " ranged, %" PRIu64
			      " fast zaps, %" PRIu64 " yields (at most %" PRIu64
			      " leaves a hold), tables a write side unlinked: %" PRIu64
			      " freed at once, %" PRIu64 " after a grace period\n",
			      TEST_FMT_NAME, cfg->name, ks.flushes, ks.flushes_range, ks.fast_zaps,
			      ks.yields, ks.max_hold_leaves, ks.tables_freed_now,
			      ks.tables_freed_later);
	if (verbose || R.failed)
		print_message(
			"[%s] %-22s seed=%#" PRIx64 " %" PRIu64 " ops in %.1fs: %" PRIu64
			" accesses (%" PRIu64 " writes, %" PRIu64 " TLB hits), %" PRIu64
			" faults (%" PRIu64 " fixed, %" PRIu64 " retry, %" PRIu64
			" spurious), %" PRIu64 " checks (%" PRIu64 " entries), %" PRIu64
			" rounds, %" PRIu64 " reports, %" PRIu64 " kicks, %" PRIu64
			" broadcasts, %" PRIu64 " remaps, %" PRIu64 " freed blocks, %" PRIu64
			" grace periods checked, %" PRIu64 " preemptions, %" PRIu64
			" map_range calls (%" PRIu64 " to the other frames, %" PRIu64 " pages)\n",
			TEST_FMT_NAME, cfg->name, R.seed, R.ops_done, (double)(now_ns() - t0) / 1e9,
			acc, wr, hits, faults, fixed, retries, spur, R.checks, R.checked_entries,
			R.rounds, R.reported, __atomic_load_n(&R.kicks, __ATOMIC_RELAXED),
			__atomic_load_n(&R.bcast, __ATOMIC_RELAXED), R.host_remaps,
			__atomic_load_n(&R.quarantined, __ATOMIC_RELAXED),
			__atomic_load_n(&R.rcu_checks, __ATOMIC_RELAXED),
			__atomic_load_n(&R.preempts, __ATOMIC_RELAXED), R.maps, R.map_moves,
			R.map_pages);

	if (verbose)
		for (unsigned j = 0; j < 20 && R.opstat[j].name; j++)
			print_message("    %-12s %6" PRIu64 " x %8.1f us\n", R.opstat[j].name,
				      R.opstat[j].n,
				      (double)R.opstat[j].ns / 1e3 / (double)R.opstat[j].n);
	if (R.failed || getenv("S2_TRACE_ALL"))
		tr_save();
	R.h.env.trace = false;
	if (TR.buf)
		munmap(TR.buf, TR_CAP);
	TR.buf = NULL;
	if (R.failed)
		fail_msg("%s\n(reproduce: TLB_SEED=%#" PRIx64 " TLB_CFG=%s TLB_OPS=%" PRIu64 " %s)",
			 R.failmsg, R.seed, cfg->name, ma.ops,
			 "tests/test_generic_tlb_model_mt_<fmt>");
	assert_false(kvm_is_bugged(R.kvm));
	assert_true(acc > 0);
	kvm_destroy_vm(R.kvm);
	s2_hosted_quiesce(&R.h);
	q_drain();
	if (R.failed)
		fail_msg("%s", R.failmsg);
	assert_int_equal(s2_hosted_pages_in_use(&R.h), 0);
	assert_int_equal(s2_hosted_meta_in_use(&R.h), 0);
	pthread_rwlock_destroy(&R.gate);
	pthread_mutex_destroy(&R.qlock);
	for (unsigned i = 0; i < cfg->nvcpus; i++)
		pthread_mutex_destroy(&R.vc[i].tlb.lock);
}

/* ---- configurations per format ---- */

#define AD S2_FMTF_AD
#define WP KVM_DIRTY_LOG_WRPROTECT
#define MAN KVM_DIRTY_LOG_MANUAL_PROTECT
#define PML KVM_DIRTY_LOG_PML

static const struct cfg cfgs[] = {
	{ S2_FMT_X86_EPT, "ad-hw-get", 0, 0, 0, false, HOOKS_BCAST, 2, 2, false, false, false },
	{ S2_FMT_X86_EPT, "ad-pml-clear", 0, 0, PML | MAN, false, HOOKS_BCAST, 2, 2, false, false,
	  false },
	{ S2_FMT_X86_EPT, "noad-wp-ring", 0, AD, WP, true, HOOKS_BCAST, 2, 2, false, false, false },
	{ S2_FMT_X86_EPT, "ad-wp-clear-4k", 0, 0, WP | MAN, false, HOOKS_BCAST, 1, 3, false, false,
	  false },
	/* A TD's shared half (no A/D: access tracking; write protection,
	 * rings); PML on a TD's shared half: tests/tdx test_td_dirty_log_pml. */
	{ S2_FMT_X86_EPT, "td-noad-wp-ring", 0, AD, WP, true, HOOKS_BCAST, 2, 2, false, false,
	  true },
	{ S2_FMT_X86_NPT, "hw-get", 0, 0, 0, false, HOOKS_BCAST, 2, 2, false, false, false },
	{ S2_FMT_X86_NPT, "wp-ring", 0, 0, WP, true, HOOKS_BCAST, 2, 2, false, false, false },
	{ S2_FMT_X86_NPT, "hw-clear-4k", 0, 0, MAN, false, HOOKS_BCAST, 1, 3, false, false, false },
	{ S2_FMT_ARM64_S2, "ha-hd-get", S2_FMTF_HD, 0, 0, false, HOOKS_BCAST, 2, 2, false, false,
	  false },
	{ S2_FMT_ARM64_S2, "ha-wp-clear", 0, 0, WP | MAN, false, HOOKS_BCAST, 2, 2, false, false,
	  false },
	{ S2_FMT_ARM64_S2, "noha-wp-ring", 0, AD, WP, true, HOOKS_BCAST, 2, 2, false, false,
	  false },
	{ S2_FMT_ARM64_S2, "ha-hd-clear-4k", S2_FMTF_HD, 0, MAN, false, HOOKS_BCAST, 1, 3, false,
	  false, false },
	{ S2_FMT_RISCV_G, "svadu-hw-get-local", 0, 0, 0, false, HOOKS_NONE, 2, 2, false, false,
	  false },
	{ S2_FMT_RISCV_G, "svadu-hw-clear-sbi", 0, 0, MAN, false, HOOKS_BCAST, 2, 2, false, false,
	  false },
	{ S2_FMT_RISCV_G, "nosvadu-wp-ring-local", 0, AD, WP, true, HOOKS_NONE, 2, 2, false, false,
	  false },
	{ S2_FMT_RISCV_G, "nosvadu-wp-get-sbi", 0, AD, WP, false, HOOKS_BCAST, 1, 3, false, false,
	  false },
	/* vcpus that check requests themselves and never load a root: zap-all
	 * zaps in place, and the flush requests act on the VM's first root. */
	{ S2_FMT_X86_EPT, "legacy-ad-wp-get", 0, 0, WP, false, HOOKS_BCAST, 2, 2, false, true,
	  false },
	{ S2_FMT_X86_NPT, "legacy-hw-get", 0, 0, 0, false, HOOKS_BCAST, 2, 2, false, true, false },
	{ S2_FMT_ARM64_S2, "legacy-ha-hd-get", S2_FMTF_HD, 0, 0, false, HOOKS_BCAST, 2, 2, false,
	  true, false },
	{ S2_FMT_RISCV_G, "legacy-svadu-hw-get-local", 0, 0, 0, false, HOOKS_NONE, 2, 2, false,
	  true, false },
	/* The freestanding env's SMP RCU (quiescent states from the loops). */
	{ S2_FMT_X86_EPT, "ad-hw-get-fsrcu", 0, 0, 0, false, HOOKS_BCAST, 2, 2, true, false,
	  false },
	{ S2_FMT_X86_NPT, "wp-ring-fsrcu", 0, 0, WP, true, HOOKS_BCAST, 2, 2, true, false, false },
	{ S2_FMT_ARM64_S2, "ha-hd-clear-fsrcu", S2_FMTF_HD, 0, MAN, false, HOOKS_BCAST, 2, 2, true,
	  false, false },
	{ S2_FMT_RISCV_G, "svadu-hw-get-local-fsrcu", 0, 0, 0, false, HOOKS_NONE, 2, 2, true, false,
	  false },
};

static void test_cfg(void **state)
{
	const struct cfg *cfg = *state;

	if (cfg->td && !S2_ENABLED(CONFIG_S2_TDX)) {
		print_message("%s skipped: built without CONFIG_S2_TDX\n", cfg->name);
		return;
	}
#ifndef T_FS_RCU
	if (cfg->fsrcu) {
		print_message("%s skipped: no env/freestanding/rcu.c in this tree\n", cfg->name);
		return;
	}
#endif
	run_cfg(cfg);
}

int main(void)
{
	struct CMUnitTest tests[sizeof(cfgs) / sizeof(cfgs[0]) + 1];
	const char *only = getenv("TLB_CFG");
	size_t n = 0;

	if (!s2_fmt_supported(TEST_FMT)) {
		print_message("format " TEST_FMT_NAME " not built: skipped\n");
		return 0;
	}
	for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++) {
		if (cfgs[i].fmt != TEST_FMT || (only && *only && strcmp(only, cfgs[i].name)))
			continue;
		tests[n] = (struct CMUnitTest){ .name = cfgs[i].name,
						.test_func = test_cfg,
						.initial_state = (void *)&cfgs[i] };
		n++;
	}
	return _cmocka_run_group_tests("generic tlb_model_mt [" TEST_FMT_NAME "]", tests, n, NULL,
				       NULL);
}
