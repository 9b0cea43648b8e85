// SPDX-License-Identifier: MIT
/*
 * bench_roots: the fast zap and lock breaking (issue 11), on x86-ept (or
 * BENCH_FMT), with BENCH_GIB GiB (default 16) of 4 KiB leaves.
 *
 * Rows (ns per page for the zaps, ns per fault for the latencies):
 *
 *  zap_all_fast   the longest a thread probing mmu_lock (lookups in a
 *                 loop, each timed) waited during kvm_mmu_zap_all_fast,
 *                 i.e. its write-side hold, per page of the VM; limit
 *                 zap_inplace: one kvm_zap_gfn_range over everything with
 *                 nobody waiting, which holds the write side for all of it
 *                 (today's zap-all), per page.
 *  fault_lat_{p50,p99,max}_zap   a vcpu's fault latency while another
 *                 thread zaps everything in place (yielding every
 *                 CONFIG_S2_YIELD_BATCH leaves to the waiting vcpu);
 *  fault_lat_{p50,p99,max}_fast  the same while it fast-zaps (the vcpu
 *                 reloads through the entry call);
 *                 each beside the same vcpu's latency with no zap running
 *                 (limit fault_idle_*), as ratios, in one run.
 *
 * BENCH_REPS (default 3) runs, each row its best run (as bench_common.h
 * explains: a preemption of the lock holder or of the probe on a shared
 * machine spoils one run, not what the code does): zap_inplace its
 * shortest, zap_all_fast the run whose longest wait was shortest (0 when
 * no lookup had to wait at all), each latency percentile its lowest.
 */
#include <pthread.h>
#include <sched.h>

#include "bench/bench_common.h"

#define BASE_GFN 0x100000ull	   /* 4 GiB */
#define HVA_BASE 0x100000000000ull /* the big slot */
#define VCPU_GFN 0x10000000ull	   /* 1 TiB: the vcpu's own slot */
#define VCPU_HVA 0x200000000000ull
#define VCPU_PAGES (1ull << 20)
#define MAX_SAMPLES (1u << 20)

struct vcpu_probe {
	struct kvm *kvm;
	struct kvm_vcpu *vcpu;
	bool lookup_only; /* probe mmu_lock with lookups, no faults */
	int go;		  /* 1 run, 0 stop (atomics) */
	uint64_t *lat;	  /* per fault, ns */
	unsigned n;
	uint64_t max_gap; /* lookup_only: the longest gap between lookups */
	gfn_t next;
};

/* When this thread first spun on mmu_lock during the current call (the
 * env's relax hook runs only while a lock is held by another side). */
static __thread uint64_t spin_first;

static void spin_relax(void *ctx)
{
	(void)ctx;
	if (!spin_first)
		spin_first = bench_now_ns();
	sched_yield();
}

static void *vcpu_thread(void *arg)
{
	struct vcpu_probe *p = arg;
	while (__atomic_load_n(&p->go, __ATOMIC_ACQUIRE)) {
		struct kvm_entry_actions a;
		uint64_t t0, t1;

		if (p->lookup_only) {
			struct s2_mapping m;

			/* How long a lookup waited for the read side, from
			 * its first spin to its return (preemptions outside
			 * a wait are not counted). */
			spin_first = 0;
			(void)kvm_mmu_lookup(p->kvm, gfn_to_gpa(BASE_GFN), &m);
			t1 = bench_now_ns();
			if (spin_first && t1 - spin_first > p->max_gap)
				p->max_gap = t1 - spin_first;
			continue;
		}
		if (kvm_vcpu_entry_actions(p->vcpu, &a) || !kvm_vcpu_enter_guest(p->vcpu))
			continue;
		kvm_vcpu_exit_guest(p->vcpu);
		if (p->next >= VCPU_GFN + VCPU_PAGES)
			p->next = VCPU_GFN;
		t0 = bench_now_ns();
		int r = kvm_tdp_page_fault(p->vcpu, gfn_to_gpa(p->next),
					   S2_ACC_READ | S2_ACC_WRITE);
		t1 = bench_now_ns();
		if (r == RET_PF_FIXED || r == RET_PF_SPURIOUS)
			p->next++;
		if (p->n < MAX_SAMPLES)
			p->lat[p->n++] = t1 - t0;
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, unsigned n, double p)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	unsigned i = (unsigned)(p * (n - 1));

	return (double)v[i];
}

static void die(const char *what, long v)
{
	fprintf(stderr, "bench_roots: %s: %ld\n", what, v);
	exit(2);
}

static void populate(struct kvm_vcpu *v, uint64_t pages)
{
	struct kvm_entry_actions a;

	if (kvm_vcpu_entry_actions(v, &a))
		die("entry", 0);
	for (gfn_t g = BASE_GFN; g < BASE_GFN + pages; g++) {
		int r = kvm_tdp_page_fault(v, gfn_to_gpa(g), S2_ACC_READ | S2_ACC_WRITE);

		if (r != RET_PF_FIXED)
			die("populate fault", r);
	}
}

/* How long a phase without a zap lasts: as long as the zaps' phases, so
 * the same preemptions of a shared machine fall into the idle figures. */
static uint64_t idle_ns = 30000000;

/* Run @p while @zap runs on this thread; returns the zap's duration. */
static uint64_t with_probe(struct vcpu_probe *p, int (*zap)(struct kvm *, uint64_t), uint64_t pages)
{
	pthread_t t;
	uint64_t t0, t1;

	p->n = 0;
	p->max_gap = 0;
	__atomic_store_n(&p->go, 1, __ATOMIC_RELEASE);
	if (pthread_create(&t, NULL, vcpu_thread, p))
		die("pthread_create", 0);
	/* Let the probe reach its loop. */
	for (uint64_t w = bench_now_ns(); bench_now_ns() - w < 2000000;)
		;
	t0 = bench_now_ns();
	if (zap && zap(p->kvm, pages) < 0)
		die("zap", 0);
	t1 = bench_now_ns();
	if (!zap)
		while (bench_now_ns() - t0 < idle_ns)
			;
	__atomic_store_n(&p->go, 0, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	return t1 - t0;
}

static int zap_inplace(struct kvm *kvm, uint64_t pages)
{
	long z = kvm_zap_gfn_range(kvm, BASE_GFN, BASE_GFN + pages);

	return z == (long)pages ? 0 : -1;
}

static int zap_fast(struct kvm *kvm, uint64_t pages)
{
	(void)pages;
	return kvm_mmu_zap_all_fast(kvm);
}

int main(void)
{
	uint64_t gib = (uint64_t)bench_env_long("BENCH_GIB", 16);
	uint64_t pages = gib << 18;
	unsigned reps = (unsigned)bench_env_long("BENCH_REPS", 3);
	const char *only_fmt = getenv("BENCH_FMT");
	enum s2_fmt_id fmt = S2_FMT_X86_EPT;
	struct bench_samples inplace = { 0 };
	uint64_t worst_wait = 0; /* the longest a probe lookup waited, best run */
	struct s2_hosted h;
	struct kvm *kvm;
	struct kvm_vcpu *v0, *v1;
	struct vcpu_probe p = { 0 };
	uint64_t *idle, *during_zap, *during_fast;
	unsigned n_idle = 0, n_zap = 0, n_fast = 0;
	bool have[3] = { false, false, false };

	if (only_fmt && *only_fmt) {
		for (unsigned f = 1; f < 16; f++)
			if (s2_fmt_name(f) && !strcmp(s2_fmt_name(f), only_fmt))
				fmt = f;
	}
	if (!s2_fmt_supported(fmt)) {
		printf("bench_roots: %s not built in\n", s2_fmt_name(fmt));
		return 0;
	}
	struct kvm_vm_params vp = {
		.fmt = fmt, .gpa_bits = 48, .max_leaf_level = 1, .max_vcpus = 2, .env = &h.env
	};
	int err;

	s2_hosted_init(&h);
	h.quiet = true;
	h.ops.relax = spin_relax;
	err = kvm_create_vm(&vp, &kvm);
	if (err || (err = kvm_vcpu_create(kvm, 0, &v0)) ||
	    (err = bench_vm_slot(kvm, 0, BASE_GFN, pages, HVA_BASE)) ||
	    (err = bench_vm_slot(kvm, 1, VCPU_GFN, VCPU_PAGES, VCPU_HVA)) ||
	    (err = kvm_vcpu_create(kvm, 1, &v1)))
		die("setup", err);
	struct kvm_entry_actions ea;

	/* Both vcpus load their roots through the library: zap-all is fast. */
	if ((err = kvm_vcpu_entry_actions(v1, &ea)))
		die("entry", err);
	p.kvm = kvm;
	p.vcpu = v1;
	p.next = VCPU_GFN;
	idle = malloc(3 * MAX_SAMPLES * sizeof(uint64_t));
	if (!idle)
		die("malloc", 0);
	during_zap = idle + MAX_SAMPLES;
	during_fast = during_zap + MAX_SAMPLES;
	printf("bench_roots: %s, %" PRIu64 " GiB of 4 KiB leaves (%" PRIu64 " pages), %u runs\n",
	       s2_fmt_name(fmt), gib, pages, reps);
	fflush(stdout);

	/* The write-side hold: today's single-hold zap vs the fast zap's. */
	p.lookup_only = true;
	for (unsigned r = 0; r < reps; r++) {
		populate(v0, pages);
		uint64_t t0 = bench_now_ns();

		if (zap_inplace(kvm, pages))
			die("in-place zap", 0);
		bench_add(&inplace, bench_now_ns() - t0, pages);
		s2_hosted_quiesce(&h);
		populate(v0, pages);
		with_probe(&p, zap_fast, pages);
		if (!r || p.max_gap < worst_wait)
			worst_wait = p.max_gap;
		s2_hosted_quiesce(&h);
	}

	/* Fault latency: idle, during an in-place zap, during a fast zap;
	 * each percentile the best of the runs (a preemption on a shared
	 * machine spoils one run's tail, not what the code does). */
	double lat[3][3] = { { 0 } }; /* [idle, zap, fast][p50, p99, max] */
	static const double q[3] = { 0.5, 0.99, 1.0 };

	p.lookup_only = false;
	for (unsigned r = 0; r < reps; r++) {
		double cur[3][3];

		uint64_t dz, df;

		populate(v0, pages);
		p.next = VCPU_GFN;
		p.lat = during_zap;
		dz = with_probe(&p, zap_inplace, pages);
		n_zap = p.n;
		(void)kvm_zap_gfn_range(kvm, VCPU_GFN, VCPU_GFN + VCPU_PAGES);
		populate(v0, pages);
		p.next = VCPU_GFN;
		p.lat = during_fast;
		df = with_probe(&p, zap_fast, pages);
		n_fast = p.n;
		(void)kvm_zap_gfn_range(kvm, VCPU_GFN, VCPU_GFN + VCPU_PAGES);
		p.next = VCPU_GFN;
		p.lat = idle;
		idle_ns = dz > df ? dz : df;
		with_probe(&p, NULL, 0);
		n_idle = p.n;
		(void)kvm_zap_gfn_range(kvm, VCPU_GFN, VCPU_GFN + VCPU_PAGES);
		s2_hosted_quiesce(&h);
		for (unsigned i = 0; i < 3; i++) {
			cur[0][i] = pct(idle, n_idle, q[i]);
			cur[1][i] = pct(during_zap, n_zap, q[i]);
			cur[2][i] = pct(during_fast, n_fast, q[i]);
		}
		unsigned n[3] = { n_idle, n_zap, n_fast };

		for (unsigned k = 0; k < 3; k++) {
			if (!n[k]) /* the zap ended before the vcpu faulted */
				continue;
			for (unsigned i = 0; i < 3; i++)
				if (!have[k] || cur[k][i] < lat[k][i])
					lat[k][i] = cur[k][i];
			have[k] = true;
		}
	}

	struct kvm_mmu_stats st;

	if (kvm_get_stats(kvm, &st))
		die("stats", 0);
	struct bench_row rows[8];
	unsigned nr = 0;
	const char *fname = s2_fmt_name(fmt);

	rows[nr++] = (struct bench_row){ .op = "zap_all_fast",
					 .fmt = fname,
					 .ns = (double)worst_wait / (double)pages,
					 .ns_median = (double)worst_wait / (double)pages,
					 .limit = "zap_inplace",
					 .limit_ns = bench_best(&inplace),
					 .limit_median = bench_median(&inplace) };
	static const char *const names[3][2] = {
		{ "fault_lat_p50_zap", "fault_lat_p50_fast" },
		{ "fault_lat_p99_zap", "fault_lat_p99_fast" },
		{ "fault_lat_max_zap", "fault_lat_max_fast" },
	};
	static const char *const idle_names[3] = { "fault_idle_p50", "fault_idle_p99",
						   "fault_idle_max" };
	for (unsigned i = 0; i < 3; i++) {
		rows[nr++] = (struct bench_row){ .op = names[i][0],
						 .fmt = fname,
						 .ns = lat[1][i],
						 .ns_median = lat[1][i],
						 .limit = idle_names[i],
						 .limit_ns = lat[0][i],
						 .limit_median = lat[0][i] };
		rows[nr++] = (struct bench_row){ .op = names[i][1],
						 .fmt = fname,
						 .ns = lat[2][i],
						 .ns_median = lat[2][i],
						 .limit = idle_names[i],
						 .limit_ns = lat[0][i],
						 .limit_median = lat[0][i] };
	}
	printf("  faults sampled: idle %u, during the zap %u, during the fast zap %u; "
	       "mmu_lock yields %" PRIu64 "\n\n",
	       n_idle, n_zap, n_fast, st.yields);
	bench_print_table_head();
	for (unsigned i = 0; i < nr; i++)
		(void)bench_print_table_row(&rows[i]);
	printf("\n");
	for (unsigned i = 0; i < nr; i++)
		bench_print_line(&rows[i]);
	kvm_destroy_vm(kvm);
	free(idle);
	return 0;
}
