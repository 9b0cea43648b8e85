// SPDX-License-Identifier: MIT
/*
 * No write is lost (in the spirit of KVM's dirty_log_test), per format, also
 * under ThreadSanitizer.
 *
 * vcpu threads write random pages through a simulated access path that
 * honours the tables the way hardware does (tests/generic/dirty_sim.h): a
 * per-vcpu TLB caches translations, with their dirty state where the
 * hardware keeps one, and is dropped only when the vcpu is told to flush
 * (KVM_REQ_TLB_FLUSH with a kick, or a broadcast invalidation through the
 * environment's TLB hooks, which wait until every vcpu in guest mode has
 * acknowledged, as an IPI or a TLBI with DSB does). A write the tables do
 * not allow exits and calls kvm_tdp_page_fault(). Where the VM has page-
 * modification logging, newly dirtied pages go into a 512-entry per-vcpu
 * buffer handed over at every exit.
 *
 * Meanwhile a harvester thread enables logging while the vcpus run (so their
 * TLBs hold writable entries from before) and then harvests rounds. The
 * check: a write that started after round e completed must be reported by
 * some round after e. (A write that overlaps a round may be reported by it:
 * the migration copies the page after the round anyway.) Rounds are counted
 * in `epoch`, which a vcpu reads before each write. A missing flush (on
 * enabling or after reaping), a fast path that does not record, or a
 * harvest that loses bits all make this fail.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kvm_internal.h"
#include "tests/generic/dirty_sim.h"
#include "tests/lib/testlib.h"

#ifndef TEST_FMT
#error "build with -DTEST_FMT=S2_FMT_..."
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define T_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define T_SANITIZED 1
#endif
#endif

/* Writes per configuration; four configurations run per format, so the
 * plain build makes more than 10^6 writes per format. */
#ifdef T_SANITIZED
#define WRITES_PER_RUN (1u << 15)
#else
#define WRITES_PER_RUN (1u << 18)
#endif

#define NVCPUS 2
#define NPAGES 4096u
#define BASE_GFN 0x100000ull
#define HVA_BASE 0x7f0000000000ull
#define TLB_SIZE 64
#define PML_SIZE 512
#define SLOT_ID 5
/* A vcpu waits for the next round after this many writes, so that rounds
 * and writes interleave however the threads are scheduled. */
#define WRITES_PER_ROUND 2048

enum harvest { H_GET, H_CLEAR, H_RING };

struct cfg {
	const char *name;
	bool hw;  /* hardware dirty state (else KVM_DIRTY_LOG_WRPROTECT) */
	bool pml; /* ... fed through PML buffers */
	enum harvest how;
	int host_level; /* 2: 2 MiB leaves before logging (split, collapse);
			   1: 4 KiB leaves (only the enable's own flush
			   covers the TLBs' writable entries) */
};

/* A write (page, epochs at its start and end) or a report (page, round). */
struct rec {
	uint32_t page, round, end;
};

struct log {
	struct rec *r;
	size_t n, cap;
};

static void log_add(struct log *l, uint32_t page, uint32_t round, uint32_t end)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 4096;
		l->r = realloc(l->r, l->cap * sizeof(*l->r));
		assert_non_null(l->r);
	}
	l->r[l->n++] = (struct rec){ page, round, end };
}

struct tlb_entry {
	gfn_t gfn;
	bool valid, dirty;
};

struct sim_vcpu {
	struct kvm_vcpu *v;
	unsigned idx;
	uint64_t rng;
	struct tlb_entry tlb[TLB_SIZE];
	uint64_t pml[PML_SIZE];
	unsigned npml;
	uint64_t tlbi_seen;
	uint64_t tlbi_ack; /* atomic */
	struct log w;	   /* writes, one per page and epoch */
	uint32_t last_e[NPAGES], last_end[NPAGES];
	uint64_t writes, faults;
	uint32_t last_epoch;
	uint64_t writes_at_epoch;
	pthread_t th;
};

static struct run {
	struct tvm t;
	const struct cfg *cfg;
	struct sim_vcpu vc[NVCPUS];
	uint32_t epoch;	  /* rounds completed; logging started at 1 */
	uint32_t writers; /* still running */
	uint64_t tlbi_gen;
	struct log rep; /* reports, in round order */
	struct log dev; /* writes made outside any vcpu */
	uint64_t rounds, reported;
} R;

/* ---- the environment's side: kicks and broadcast invalidation ---- */

/* An IPI: returns once the vcpu has left guest mode (in-flight accesses
 * done). */
static void sim_kick(void *ctx, struct kvm_vcpu *vcpu)
{
	(void)ctx;
	while (kvm_vcpu_mode(vcpu) == EXITING_GUEST_MODE)
		t_yield();
}

/* A broadcast TLB invalidation: every vcpu in guest mode drops its TLB
 * before this returns. */
static void sim_tlbi(void)
{
	uint64_t g = __atomic_add_fetch(&R.tlbi_gen, 1, __ATOMIC_SEQ_CST);

	for (unsigned i = 0; i < NVCPUS; i++) {
		struct sim_vcpu *s = &R.vc[i];

		while (kvm_vcpu_mode(s->v) != OUTSIDE_GUEST_MODE &&
		       __atomic_load_n(&s->tlbi_ack, __ATOMIC_SEQ_CST) < g)
			t_yield();
	}
}

static void sim_tlbi_vm(void *ctx, struct kvm *kvm)
{
	(void)ctx;
	(void)kvm;
	sim_tlbi();
}

static void sim_tlbi_range(void *ctx, struct kvm *kvm, gpa_t gpa, uint64_t size)
{
	(void)ctx;
	(void)kvm;
	(void)gpa;
	(void)size;
	sim_tlbi();
}

/* ---- a vcpu ---- */

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void tlb_drop(struct sim_vcpu *s)
{
	memset(s->tlb, 0, sizeof(s->tlb));
}

/* In guest mode, before an access: honour a broadcast invalidation. */
static void tlbi_check(struct sim_vcpu *s)
{
	uint64_t g = __atomic_load_n(&R.tlbi_gen, __ATOMIC_SEQ_CST);

	if (g != s->tlbi_seen) {
		tlb_drop(s);
		s->tlbi_seen = g;
		__atomic_store_n(&s->tlbi_ack, g, __ATOMIC_SEQ_CST);
	}
}

static void handle_requests(struct sim_vcpu *s)
{
	if (kvm_check_request(s->v, KVM_REQ_TLB_FLUSH) ||
	    kvm_check_request(s->v, KVM_REQ_TLB_FLUSH_CURRENT))
		tlb_drop(s);
	(void)kvm_check_request(s->v, KVM_REQ_MMU_RELOAD);
	/* Ring soft-full: exit to "userspace" until the harvester resets. */
	while (kvm_dirty_ring_check_request(s->v))
		t_yield();
}

static void pml_flush(struct sim_vcpu *s)
{
	if (!s->npml)
		return;
	assert_int_equal(kvm_flush_pml_buffer(s->v, s->pml, s->npml), s->npml);
	s->npml = 0;
}

static gfn_t next_page(struct sim_vcpu *s)
{
	uint64_t r = rnd(&s->rng);

	/* Mostly a hot window of 64 pages per vcpu that moves every 1024
	 * writes (so TLB entries are reused), sometimes anywhere. */
	if ((r & 7) == 0)
		return (r >> 8) % NPAGES;
	return ((s->writes >> 10) * 97 + s->idx * (NPAGES / 2) + (r >> 8) % 64) % NPAGES;
}

/* A write to @p that started in epoch @e (read before it) and is done now. */
static void record(struct sim_vcpu *s, gfn_t p, uint32_t e)
{
	uint32_t end = __atomic_load_n(&R.epoch, __ATOMIC_SEQ_CST);

	if (e && (s->last_e[p] != e || s->last_end[p] != end)) {
		s->last_e[p] = e;
		s->last_end[p] = end;
		log_add(&s->w, (uint32_t)p, e, end);
	}
	__atomic_store_n(&s->writes, s->writes + 1, __ATOMIC_RELAXED);
}

static void pace(struct sim_vcpu *s)
{
	uint32_t e = __atomic_load_n(&R.epoch, __ATOMIC_SEQ_CST);

	if (e != s->last_epoch) {
		s->last_epoch = e;
		s->writes_at_epoch = s->writes;
		return;
	}
	if (s->writes - s->writes_at_epoch < WRITES_PER_ROUND)
		return;
	while (__atomic_load_n(&R.epoch, __ATOMIC_SEQ_CST) == e)
		t_yield();
}

static void *vcpu_thread(void *arg)
{
	struct sim_vcpu *s = arg;
	struct kvm *kvm = R.t.kvm;
	bool hwd = sim_dirty_bit(kvm) != 0;

	while (s->writes < WRITES_PER_RUN) {
		gfn_t fault_page = ~0ull;

		if (!kvm_vcpu_enter_guest(s->v)) {
			handle_requests(s);
			continue;
		}
		for (unsigned b = 0; b < 128 && s->writes < WRITES_PER_RUN; b++) {
			if (kvm_vcpu_mode(s->v) != IN_GUEST_MODE)
				break; /* kicked */
			tlbi_check(s);

			gfn_t p = next_page(s);
			struct tlb_entry *te = &s->tlb[p % TLB_SIZE];
			uint32_t e = __atomic_load_n(&R.epoch, __ATOMIC_SEQ_CST);
			bool newly;

			if (te->valid && te->gfn == p && (te->dirty || !hwd)) {
				record(s, p, e); /* a TLB hit: the tables are not read */
				continue;
			}
			if (!sim_write(kvm, gfn_to_gpa(BASE_GFN + p), &newly)) {
				fault_page = p;
				break;
			}
			*te = (struct tlb_entry){ .gfn = p, .valid = true, .dirty = true };
			record(s, p, e);
			if (newly && R.cfg->pml) {
				s->pml[s->npml++] = gfn_to_gpa(BASE_GFN + p);
				if (s->npml == PML_SIZE)
					break; /* PML-full exit */
			}
		}
		/* The PML buffer is handed over at the start of every exit
		 * (the PML-full one included), before the vcpu is out of guest
		 * mode: a kick that waited for the exit finds it flushed. */
		pml_flush(s);
		kvm_vcpu_exit_guest(s->v);
		if (fault_page != ~0ull) {
			int r = kvm_tdp_page_fault(s->v, gfn_to_gpa(BASE_GFN + fault_page),
						   S2_ACC_WRITE);

			if (r != RET_PF_FIXED && r != RET_PF_SPURIOUS && r != RET_PF_RETRY)
				fail_msg("[%s/%s] fault on page %#llx returned %d", TEST_FMT_NAME,
					 R.cfg->name, (unsigned long long)fault_page, r);
			s->faults++;
		}
		handle_requests(s);
		pace(s);
	}
	__atomic_fetch_sub(&R.writers, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* ---- the harvester ---- */

static void saw(uint64_t page, uint32_t round)
{
	assert_true(page < NPAGES);
	log_add(&R.rep, (uint32_t)page, round, round);
	R.reported++;
}

static void saw_bitmap(const uint64_t *bm, uint32_t round)
{
	for (unsigned w = 0; w < NPAGES / 64; w++)
		for (uint64_t m = bm[w]; m; m &= m - 1)
			saw(w * 64 + (unsigned)__builtin_ctzll(m), round);
}

static void harvest_round(uint32_t round)
{
	static uint64_t bm[NPAGES / 64];
	static struct kvm_dirty_gfn ents[256];
	struct kvm *kvm = R.t.kvm;
	long n;

	/* As KVM before it harvests with PML: kick every vcpu out of guest
	 * mode, which hands its PML buffer over. */
	if (R.cfg->pml)
		kvm_make_all_cpus_request(kvm, KVM_REQ_TLB_FLUSH_CURRENT);
	switch (R.cfg->how) {
	case H_GET:
		assert_true(kvm_get_dirty_log(kvm, SLOT_ID, bm) >= 0);
		saw_bitmap(bm, round);
		break;
	case H_CLEAR:
		assert_true(kvm_get_dirty_log(kvm, SLOT_ID, bm) >= 0);
		saw_bitmap(bm, round);
		assert_true(kvm_clear_dirty_log(kvm, SLOT_ID, 0, NPAGES, bm) >= 0);
		break;
	case H_RING:
		for (unsigned i = 0; i < NVCPUS; i++) {
			while ((n = kvm_dirty_ring_harvest(R.vc[i].v, ents, 256)) > 0) {
				for (long k = 0; k < n; k++) {
					assert_int_equal(ents[k].slot, SLOT_ID);
					saw(ents[k].offset, round);
				}
			}
			assert_true(n == 0);
		}
		assert_true(kvm_dirty_ring_reset(kvm) >= 0);
		/* Writes outside any vcpu, and pushes a full ring refused. */
		assert_true(kvm_get_dirty_log(kvm, SLOT_ID, bm) >= 0);
		saw_bitmap(bm, round);
		break;
	}
	R.rounds++;
}

/* A device writes a page (outside any vcpu). */
static void device_write(uint64_t *rng)
{
	gfn_t p = rnd(rng) % NPAGES;
	uint32_t e = __atomic_load_n(&R.epoch, __ATOMIC_SEQ_CST);

	assert_int_equal(kvm_mark_page_dirty(R.t.kvm, BASE_GFN + p), 1);
	log_add(&R.dev, (uint32_t)p, e, __atomic_load_n(&R.epoch, __ATOMIC_SEQ_CST));
}

static uint64_t total_writes(void)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < NVCPUS; i++)
		n += __atomic_load_n(&R.vc[i].writes, __ATOMIC_RELAXED);
	return n;
}

static void *harvester_thread(void *arg)
{
	struct kvm *kvm = R.t.kvm;
	uint64_t rng = 0x1234567;
	uint32_t round = 1;

	(void)arg;
	/* Let the vcpus fill their TLBs with writable entries first. */
	while (total_writes() < 2000 && __atomic_load_n(&R.writers, __ATOMIC_SEQ_CST))
		t_yield();
	assert_int_equal(kvm_set_memslot_flags(kvm, SLOT_ID, KVM_MEM_LOG_DIRTY_PAGES), 0);
	__atomic_store_n(&R.epoch, round, __ATOMIC_SEQ_CST);
	/* Give TLB entries from before the enable time to be (mis)used. */
	uint64_t w0 = total_writes();
	while (total_writes() < w0 + 400 && __atomic_load_n(&R.writers, __ATOMIC_SEQ_CST))
		t_yield();
	/* Two rounds back to back: a write those TLB entries let through
	 * unseen is not hidden by the page being written again in time. */
	harvest_round(++round);
	__atomic_store_n(&R.epoch, round, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&R.writers, __ATOMIC_SEQ_CST)) {
		if (R.cfg->how == H_RING)
			for (int i = 0; i < 4; i++)
				device_write(&rng);
		harvest_round(++round);
		__atomic_store_n(&R.epoch, round, __ATOMIC_SEQ_CST);
		t_yield();
	}
	return NULL;
}

/* ---- the check ---- */

/*
 * A write that started after round e completed and was done before round
 * f completed is reported by a round in [e + 1, f + 2]: after e, since the
 * write may come after anything earlier rounds saw, and by f + 2, since the
 * record that let it through (the fault, the hardware dirty flag, the PML
 * entry handed over at the next round's kick) is collected by the first
 * round that starts after it, and a write through a stale TLB entry is
 * impossible after a harvest's flush. (f, not e: a vcpu preempted between
 * the two holds up only rounds that flush.) Returns the number of writes
 * with no such report (@who: vcpu index, NVCPUS: device).
 */
static uint64_t check_log(const struct log *w, const uint32_t *first, const uint32_t *rounds,
			  unsigned who)
{
	uint64_t lost = 0;

	for (size_t k = 0; k < w->n; k++) {
		uint32_t pg = w->r[k].page, e = w->r[k].round, f = w->r[k].end;
		uint32_t lo = first[pg], hi = first[pg + 1];

		while (lo < hi) { /* first report in round e + 1 or later */
			uint32_t mid = lo + (hi - lo) / 2;

			if (rounds[mid] <= e)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < first[pg + 1] && rounds[lo] <= f + 2)
			continue;
		if (lost++ < 5)
			print_message("[%s/%s] page %u written by %s%u after round %u: next report "
				      "in round %u\n",
				      TEST_FMT_NAME, R.cfg->name, pg,
				      who < NVCPUS ? "vcpu " : "device ", who, e,
				      lo < first[pg + 1] ? rounds[lo] : 0);
	}
	return lost;
}

/* ---- one configuration ---- */

static void run_cfg(const struct cfg *cfg)
{
	struct kvm_vm_params p = t_default_params(TEST_FMT);
	struct kvm_memory_slot slot = {
		.id = SLOT_ID, .base_gfn = BASE_GFN, .npages = NPAGES, .userspace_addr = HVA_BASE
	};
	pthread_t ht;

	memset(&R, 0, sizeof(R));
	R.cfg = cfg;
	if (cfg->hw && TEST_FMT == S2_FMT_ARM64_S2)
		p.fmt_flags |= S2_FMTF_HD;
	s2_hosted_init(&R.t.h);
	R.t.h.quiet = true;
	R.t.h.host_level = cfg->host_level;
	R.t.h.ops.kick = sim_kick;
	R.t.h.ops.tlb_flush_vm = sim_tlbi_vm;
	R.t.h.ops.tlb_flush_range = sim_tlbi_range;
	R.t.fmt = TEST_FMT;
	p.env = &R.t.h.env;
	p.max_vcpus = NVCPUS;
	assert_int_equal(kvm_create_vm(&p, &R.t.kvm), 0);
	if (cfg->pml && TEST_FMT != S2_FMT_X86_EPT) {
		print_message("[%s] %s: PML is EPT's, skipped\n", TEST_FMT_NAME, cfg->name);
		kvm_destroy_vm(R.t.kvm);
		return;
	}
	if (cfg->hw && !kvm_dirty_log_hw(R.t.kvm)) {
		print_message("[%s] %s: no hardware dirty state, skipped\n", TEST_FMT_NAME,
			      cfg->name);
		kvm_destroy_vm(R.t.kvm);
		return;
	}
	assert_int_equal(
		kvm_dirty_log_set_caps(
			R.t.kvm, (cfg->hw ? 0 : KVM_DIRTY_LOG_WRPROTECT) |
					 (cfg->pml ? KVM_DIRTY_LOG_PML : 0) |
					 (cfg->how == H_CLEAR ? KVM_DIRTY_LOG_MANUAL_PROTECT : 0)),
		0);
	if (cfg->how == H_RING)
		assert_int_equal(kvm_dirty_ring_enable(R.t.kvm, 1024, 600), 0);
	for (unsigned i = 0; i < NVCPUS; i++) {
		struct sim_vcpu *s = &R.vc[i];

		assert_int_equal(kvm_vcpu_create(R.t.kvm, i, &s->v), 0);
		kvm_vcpu_set_private(s->v, s);
		s->idx = i;
		s->rng = 0x9e3779b97f4a7c15ull * (i + 1);
	}
	R.t.vcpu = R.vc[0].v;
	assert_int_equal(kvm_set_memslot(R.t.kvm, &slot), 0);
	/* Mapped writable before logging starts; with 4 KiB leaves one page in
	 * four is left for the full fault path to map (and record). */
	for (gfn_t g = 0; g < NPAGES; g += cfg->host_level == 2 ? 512 : 1 + (g % 4 == 2))
		assert_int_equal(
			kvm_tdp_page_fault(R.vc[0].v, gfn_to_gpa(BASE_GFN + g), S2_ACC_WRITE),
			RET_PF_FIXED);

	R.writers = NVCPUS;
	for (unsigned i = 0; i < NVCPUS; i++)
		assert_int_equal(pthread_create(&R.vc[i].th, NULL, vcpu_thread, &R.vc[i]), 0);
	assert_int_equal(pthread_create(&ht, NULL, harvester_thread, NULL), 0);
	for (unsigned i = 0; i < NVCPUS; i++)
		assert_int_equal(pthread_join(R.vc[i].th, NULL), 0);
	assert_int_equal(pthread_join(ht, NULL), 0);
	/* Everything written is out of the vcpus (PML flushed at exit); one
	 * more round collects what the last one missed. */
	uint32_t final = R.epoch + 1;
	harvest_round(final);

	uint64_t lost = 0, writes = 0, faults = 0;
	uint32_t *first = calloc(NPAGES + 1, sizeof(*first));
	uint32_t *rounds = malloc((R.rep.n + 1) * sizeof(*rounds));

	/* Reports by page, in round order. */
	assert_non_null(first);
	assert_non_null(rounds);
	for (size_t k = 0; k < R.rep.n; k++)
		first[R.rep.r[k].page + 1]++;
	for (unsigned pg = 0; pg < NPAGES; pg++)
		first[pg + 1] += first[pg];
	uint32_t *fill = calloc(NPAGES, sizeof(*fill));
	assert_non_null(fill);
	for (size_t k = 0; k < R.rep.n; k++) {
		uint32_t pg = R.rep.r[k].page;

		rounds[first[pg] + fill[pg]++] = R.rep.r[k].round;
	}
	for (unsigned i = 0; i <= NVCPUS; i++) {
		const struct log *w = i < NVCPUS ? &R.vc[i].w : &R.dev;

		if (i < NVCPUS) {
			writes += R.vc[i].writes;
			faults += R.vc[i].faults;
		}
		lost += check_log(w, first, rounds, i);
	}
	free(fill);
	free(first);
	free(rounds);
	print_message("[%s] %-10s %llu writes, %llu faults, %llu rounds, %llu pages reported, "
		      "%llu lost\n",
		      TEST_FMT_NAME, cfg->name, (unsigned long long)writes,
		      (unsigned long long)faults, (unsigned long long)R.rounds,
		      (unsigned long long)R.reported, (unsigned long long)lost);
	assert_int_equal(lost, 0);
	assert_true(writes >= (uint64_t)NVCPUS * WRITES_PER_RUN);
	assert_true(R.rounds > 2);
	assert_true(R.reported > 0);
	if (!cfg->hw)
		assert_true(faults > 0);

	/* Logging off: the slot collapses back (after an eager split every
	 * page is still mapped) and maps what it did. */
	assert_int_equal(kvm_set_memslot_flags(R.t.kvm, SLOT_ID, 0), 0);
	if (S2_ENABLED(CONFIG_S2_EAGER_SPLIT) || cfg->host_level == 1)
		for (gfn_t g = 0; g < NPAGES; g += 37)
			if (cfg->host_level == 2 || g % 4 != 3) /* those may be unmapped */
				t_assert_maps(R.t.kvm, gfn_to_gpa(BASE_GFN + g),
					      HVA_BASE + gfn_to_gpa(g), cfg->host_level, S2_PROT_R);
	t_vm_fini(&R.t);
	for (unsigned i = 0; i < NVCPUS; i++)
		free(R.vc[i].w.r);
	free(R.rep.r);
	free(R.dev.r);
}

static const struct cfg cfgs[] = {
	{ "wp-get", false, false, H_GET, 1 },	{ "wp-clear", false, false, H_CLEAR, 2 },
	{ "hw-get", true, false, H_GET, 1 },	{ "hw-pml-clr", true, true, H_CLEAR, 2 },
	{ "wp-ring", false, false, H_RING, 2 },
};

static void test_no_write_lost_wp_get(void **state)
{
	(void)state;
	run_cfg(&cfgs[0]);
}

static void test_no_write_lost_wp_clear(void **state)
{
	(void)state;
	run_cfg(&cfgs[1]);
}

static void test_no_write_lost_hw_get(void **state)
{
	(void)state;
	run_cfg(&cfgs[2]);
}

static void test_no_write_lost_hw_pml_clear(void **state)
{
	(void)state;
	run_cfg(&cfgs[3]);
}

static void test_no_write_lost_ring(void **state)
{
	(void)state;
	run_cfg(&cfgs[4]);
}

/* ---- the fast path under a race ---- */

struct racer {
	struct kvm_vcpu *v;
	pthread_barrier_t *bar;
	unsigned rounds;
	unsigned fixed, spurious;
};

static void *racer_thread(void *arg)
{
	struct racer *r = arg;

	for (unsigned i = 0; i < r->rounds; i++) {
		pthread_barrier_wait(r->bar);
		int ret = kvm_tdp_page_fault(r->v, gfn_to_gpa(BASE_GFN + i % 64), S2_ACC_WRITE);

		if (ret == RET_PF_FIXED)
			r->fixed++;
		else if (ret == RET_PF_SPURIOUS)
			r->spurious++;
		pthread_barrier_wait(r->bar);
	}
	return NULL;
}

/* Two vcpus take the same write fault on a write-protected page at once:
 * exactly one restores write access and pushes the page, every round. */
static void test_fast_path_race_records_once(void **state)
{
	struct kvm_vm_params p = t_default_params(TEST_FMT);
	struct kvm_memory_slot slot = {
		.id = SLOT_ID, .base_gfn = BASE_GFN, .npages = 64, .userspace_addr = HVA_BASE + 4096
	};
	struct racer rc[2];
	struct kvm_dirty_gfn e[8];
	pthread_barrier_t bar;
	const unsigned rounds = 2000;

	(void)state;
	memset(&R, 0, sizeof(R));
	s2_hosted_init(&R.t.h);
	R.t.h.quiet = true;
	p.env = &R.t.h.env;
	assert_int_equal(kvm_create_vm(&p, &R.t.kvm), 0);
	assert_int_equal(kvm_dirty_log_set_caps(R.t.kvm, KVM_DIRTY_LOG_WRPROTECT), 0);
	assert_int_equal(kvm_dirty_ring_enable(R.t.kvm, 64, 8), 0);
	pthread_barrier_init(&bar, NULL, 3);
	for (unsigned i = 0; i < 2; i++) {
		rc[i] = (struct racer){ .bar = &bar, .rounds = rounds };
		assert_int_equal(kvm_vcpu_create(R.t.kvm, i, &rc[i].v), 0);
	}
	R.t.vcpu = rc[0].v;
	assert_int_equal(kvm_set_memslot(R.t.kvm, &slot), 0);
	for (gfn_t g = 0; g < 64; g++)
		assert_int_equal(
			kvm_tdp_page_fault(rc[0].v, gfn_to_gpa(BASE_GFN + g), S2_ACC_WRITE),
			RET_PF_FIXED);
	assert_int_equal(kvm_set_memslot_flags(R.t.kvm, SLOT_ID, KVM_MEM_LOG_DIRTY_PAGES), 0);
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&R.vc[i].th, NULL, racer_thread, &rc[i]), 0);
	for (unsigned i = 0; i < rounds; i++) {
		long n = 0;

		pthread_barrier_wait(&bar); /* both fault now */
		pthread_barrier_wait(&bar); /* both done */
		for (unsigned v = 0; v < 2; v++) {
			long k = kvm_dirty_ring_harvest(rc[v].v, e, 8);

			assert_true(k >= 0);
			for (long j = 0; j < k; j++)
				assert_int_equal(e[j].offset, i % 64);
			n += k;
		}
		if (n != 1)
			fail_msg("[%s] round %u: %ld ring entries for one page", TEST_FMT_NAME, i,
				 n);
		assert_int_equal(kvm_dirty_ring_reset(R.t.kvm), 1);
	}
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(pthread_join(R.vc[i].th, NULL), 0);
	pthread_barrier_destroy(&bar);
	assert_int_equal(rc[0].fixed + rc[1].fixed, rounds);
	assert_int_equal(rc[0].spurious + rc[1].spurious, rounds);
	t_vm_fini(&R.t);
}

/*
 * A fast zap's teardown against a memslot move of a slot logging with
 * hardware dirty state. kvm_mmu_zap_all() on one thread invalidates the
 * roots and then empties them under the shared side of mmu_lock, yielding;
 * the move on another thread zaps the slot in the valid roots only and
 * publishes. The teardown's leaves that carry D must still land in the
 * slot's log: the next kvm_get_dirty_log reports every page written.
 */
struct zapper {
	struct kvm *kvm;
	pthread_barrier_t *bar;
	long r;
};

static void *zap_all_thread(void *arg)
{
	struct zapper *z = arg;

	pthread_barrier_wait(z->bar);
	z->r = kvm_mmu_zap_all(z->kvm);
	return NULL;
}

static void test_zap_all_against_move(void **state)
{
	const uint64_t n = 4096;
	const unsigned rounds = 20;
	uint64_t *bm = calloc(n / 64, sizeof(*bm));
	struct tvm t = { 0 };
	struct kvm_vm_params p = t_default_params(TEST_FMT);

	(void)state;
	assert_non_null(bm);
	if (TEST_FMT == S2_FMT_ARM64_S2)
		p.fmt_flags |= S2_FMTF_HD;
	for (unsigned round = 0; round < rounds; round++) {
		struct zapper z;
		pthread_barrier_t bar;
		pthread_t th;
		uint64_t got = 0;
		bool newly;

		t_vm_init(&t, TEST_FMT, &p);
		if (kvm_dirty_log_set_caps(t.kvm, 0) || !kvm_dirty_log_hw(t.kvm)) {
			t_vm_fini(&t);
			free(bm);
			skip();
		}
		t.kvm->yield_batch = 16;
		t_slot(&t, 0, BASE_GFN, n, HVA_BASE, KVM_MEM_LOG_DIRTY_PAGES);
		for (gfn_t g = 0; g < n; g++)
			assert_int_equal(
				kvm_tdp_page_fault(t.vcpu, gfn_to_gpa(BASE_GFN + g), S2_ACC_WRITE),
				RET_PF_FIXED);
		assert_true(kvm_get_dirty_log(t.kvm, 0, bm) >= 0); /* harvested: D clear */
		for (gfn_t g = 0; g < n; g++)
			assert_true(sim_write(t.kvm, gfn_to_gpa(BASE_GFN + g), &newly));
		z = (struct zapper){ .kvm = t.kvm, .bar = &bar };
		pthread_barrier_init(&bar, NULL, 2);
		assert_int_equal(pthread_create(&th, NULL, zap_all_thread, &z), 0);
		pthread_barrier_wait(&bar);
		for (unsigned i = 0; i < 200; i++)
			t_yield(); /* let the zap invalidate and start emptying */
		assert_int_equal(kvm_move_memslot(t.kvm, 0, BASE_GFN + 2 * n), 0);
		assert_int_equal(pthread_join(th, NULL), 0);
		pthread_barrier_destroy(&bar);
		assert_true(z.r >= 0);
		memset(bm, 0, n / 8);
		assert_true(kvm_get_dirty_log(t.kvm, 0, bm) >= 0);
		for (uint64_t w = 0; w < n / 64; w++)
			got += (uint64_t)__builtin_popcountll(bm[w]);
		if (got != n)
			fail_msg("[%s] round %u: %llu of %llu written pages in the log after a "
				 "zap-all raced a move",
				 TEST_FMT_NAME, round, (unsigned long long)got,
				 (unsigned long long)n);
		t_vm_fini(&t);
	}
	free(bm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_write_lost_wp_get),
		cmocka_unit_test(test_no_write_lost_wp_clear),
		cmocka_unit_test(test_no_write_lost_hw_get),
		cmocka_unit_test(test_no_write_lost_hw_pml_clear),
		cmocka_unit_test(test_no_write_lost_ring),
		cmocka_unit_test(test_fast_path_race_records_once),
		cmocka_unit_test(test_zap_all_against_move),
	};

	if (!s2_fmt_supported(TEST_FMT)) {
		print_message("format " TEST_FMT_NAME " not built: skipped\n");
		return 0;
	}
	return cmocka_run_group_tests_name("generic dirty_mt [" TEST_FMT_NAME "]", tests, NULL,
					   NULL);
}
