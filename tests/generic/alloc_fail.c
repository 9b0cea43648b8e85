// SPDX-License-Identifier: MIT
/*
 * Allocation failure at every allocation site, per format (TEST_FMT).
 *
 * Each scenario builds a VM state, then makes one public call that
 * allocates. The driver runs the call once with no failure (the reference
 * result), then for N = 1, 2, ... on a fresh VM with the same state, with
 * the hosted env failing the Nth allocation the library asks for
 * (alloc_table, zalloc, call_rcu: s2_hosted_fail_nth()), once, and again
 * with every allocation from the Nth on failing; it stops at the first N the
 * call no longer reaches. For every N:
 *  - the call returns -ENOMEM, or its reference result where the library
 *    documents a fallback (a table batch freed after synchronize_rcu instead
 *    of call_rcu, an eager split replaced by write-protection, a collapse
 *    skipped);
 *  - after -ENOMEM, the tables (t_tables_hash), the statistics, the dirty
 *    state (bitmaps, rings, write tracking), the memslots, the memory
 *    attributes, the invalidation counters, the vcpus' requests and the
 *    env's flush and kick counters are as before, and so is the memory the
 *    library holds from the env (table pages kept in a vcpu's fault cache
 *    excepted: they are the cache, not a leak); the call then succeeds with
 *    the reference result and the reference leaves;
 *  - after a fallback every leaf still agrees, through the reference walker,
 *    with the memslots (the model);
 *  - destroying the VM returns every table page, metadata block and queued
 *    callback to the env (counted here; LeakSanitizer checks the same in the
 *    asan build).
 * Every scenario that has a failure path must see -ENOMEM at some N, so a
 * scenario whose allocations stopped reaching the env is noticed.
 */
#include <stdio.h>
#include <string.h>

#include "core/kvm_internal.h"
#include "s2mmu/dirty.h"
#include "tests/lib/testlib.h"

#ifndef TEST_FMT
#error "build with -DTEST_FMT=S2_FMT_..."
#endif

#define HVA_BASE (0x7f0000000000ull) /* 1 GiB aligned */
#define SLOT_GFN 0x40000ull	     /* 1 GiB */
#define SLOT_PAGES 0x600ull	     /* 6 MiB: three 2 MiB blocks */
#define SLOT2_GFN 0x80000ull
#define GFN_2M 512ull
#define MAX_N 4096

struct af {
	struct s2_hosted h;
	struct kvm *kvm;
	struct kvm_vcpu *vcpu; /* vcpu 0, or NULL before it exists */
};

struct af_case {
	const char *name;
	unsigned caps;	   /* kvm_dirty_log_set_caps() */
	uint32_t ring;	   /* dirty ring entries (0: none) */
	bool no_vcpu;	   /* prep runs without vcpu 0 */
	bool can_fail;	   /* some N must give -ENOMEM */
	bool may_fallback; /* an injected failure may be absorbed */
	void (*prep)(struct af *a);
	long (*call)(struct af *a);
};

/* ---- building states ---- */

static void af_slot(struct af *a, unsigned id, gfn_t gfn, uint64_t npages, unsigned flags)
{
	struct kvm_memory_slot s = { .id = id,
				     .base_gfn = gfn,
				     .npages = npages,
				     .userspace_addr = HVA_BASE + (gfn << 12),
				     .flags = flags };

	assert_int_equal(kvm_set_memslot(a->kvm, &s), 0);
}

static void af_fault(struct af *a, gfn_t gfn, unsigned acc)
{
	int r = kvm_tdp_page_fault(a->vcpu, gfn << 12, acc);

	assert_true(r == RET_PF_FIXED || r == RET_PF_SPURIOUS);
}

/* Slot 0, mapped with huge leaves where they fit, plus slot 1 (4 KiB). */
static void prep_populated(struct af *a)
{
	af_slot(a, 0, SLOT_GFN, SLOT_PAGES, 0);
	af_slot(a, 1, SLOT2_GFN + 3, 16, 0);
	for (gfn_t g = 0; g < SLOT_PAGES; g += GFN_2M)
		af_fault(a, SLOT_GFN + g, S2_ACC_READ | S2_ACC_WRITE);
	for (gfn_t g = 0; g < 16; g += 3)
		af_fault(a, SLOT2_GFN + 3 + g, S2_ACC_READ);
}

/* prep_populated, then slots up to the room of the memslot sets (8: the
 * published one and the spare, core/memslot.c), so the next add needs a
 * bigger set. */
static void prep_full_set(struct af *a)
{
	prep_populated(a);
	for (unsigned k = 0; k < 6; k++)
		af_slot(a, 10 + k, SLOT2_GFN + 0x2000 + k * 0x100, 16, 0);
	assert_int_equal(a->kvm->memslots->cap, a->kvm->memslots->nr);
}

static void prep_slots_only(struct af *a)
{
	af_slot(a, 0, SLOT_GFN, SLOT_PAGES, 0);
}

/* Slot 0 logging, written at 4 KiB here and there (through write faults:
 * marked in the bitmap or the ring whatever the dirty mode). */
static void prep_logging(struct af *a)
{
	prep_populated(a);
	assert_int_equal(kvm_set_memslot_flags(a->kvm, 0, KVM_MEM_LOG_DIRTY_PAGES), 0);
	for (gfn_t g = 0; g < SLOT_PAGES; g += 37)
		af_fault(a, SLOT_GFN + g, S2_ACC_READ | S2_ACC_WRITE);
	assert_int_equal(kvm_mark_page_dirty(a->kvm, SLOT_GFN + 5), 1);
	assert_int_equal(kvm_vcpu_mark_page_dirty(a->vcpu, SLOT_GFN + 0x107), 1);
}

/* Slot 0 logging and mapped at 4 KiB all over (what collapse undoes). */
static void prep_logging_split(struct af *a)
{
	prep_logging(a);
	for (gfn_t g = 0; g < SLOT_PAGES; g++)
		af_fault(a, SLOT_GFN + g, S2_ACC_READ);
}

/* The same with the last 2 MiB block unmapped. */
static void prep_logging_zapped(struct af *a)
{
	prep_logging(a);
	assert_true(kvm_zap_gfn_range(a->kvm, SLOT_GFN + 2 * GFN_2M, SLOT_GFN + 3 * GFN_2M) > 0);
}

static void prep_harvested_ring(struct af *a)
{
	struct kvm_dirty_gfn e[64];

	prep_logging(a);
	assert_true(kvm_dirty_ring_harvest(a->vcpu, e, 64) > 0);
}

static void prep_tracked(struct af *a)
{
	prep_populated(a);
	assert_int_equal(kvm_write_track_add_gfn(a->kvm, SLOT_GFN + 7), 0);
	assert_int_equal(kvm_write_track_add_gfn(a->kvm, SLOT_GFN + 700), 0);
}

static void prep_private(struct af *a)
{
	prep_populated(a);
	assert_int_equal(kvm_vm_set_mem_attributes(a->kvm, SLOT_GFN + GFN_2M, SLOT_GFN + 2 * GFN_2M,
						   KVM_MEMORY_ATTRIBUTE_PRIVATE),
			 0);
}

/* ---- the calls ---- */

static long call_vcpu_create(struct af *a)
{
	struct kvm_vcpu *v = NULL;
	int r = kvm_vcpu_create(a->kvm, 0, &v);

	if (!r)
		a->vcpu = v;
	return r;
}

static long call_vcpu_create_second(struct af *a)
{
	struct kvm_vcpu *v = NULL;

	return kvm_vcpu_create(a->kvm, 1, &v);
}

static long call_slot_add(struct af *a)
{
	struct kvm_memory_slot s = { .id = 5,
				     .base_gfn = SLOT2_GFN + 0x1000,
				     .npages = 0x400,
				     .userspace_addr = HVA_BASE + ((SLOT2_GFN + 0x1000) << 12) };

	return kvm_set_memslot(a->kvm, &s);
}

static long call_slot_add_logging(struct af *a)
{
	struct kvm_memory_slot s = { .id = 5,
				     .base_gfn = SLOT2_GFN + 0x1000,
				     .npages = 0x400,
				     .userspace_addr = HVA_BASE + ((SLOT2_GFN + 0x1000) << 12),
				     .flags = KVM_MEM_LOG_DIRTY_PAGES };

	return kvm_set_memslot(a->kvm, &s);
}

static long call_slot_delete(struct af *a)
{
	return kvm_delete_memslot(a->kvm, 0);
}

static long call_slot_move(struct af *a)
{
	return kvm_move_memslot(a->kvm, 0, SLOT_GFN + 0x10000);
}

static long call_slot_readonly(struct af *a)
{
	return kvm_set_memslot_flags(a->kvm, 0, KVM_MEM_READONLY);
}

static long call_log_start(struct af *a)
{
	return kvm_set_memslot_flags(a->kvm, 0, KVM_MEM_LOG_DIRTY_PAGES);
}

static long call_log_stop(struct af *a)
{
	return kvm_set_memslot_flags(a->kvm, 0, 0);
}

static long call_fault(struct af *a)
{
	return kvm_tdp_page_fault(a->vcpu, (SLOT_GFN + 0x203) << 12, S2_ACC_READ | S2_ACC_WRITE);
}

static long call_fault_logging(struct af *a)
{
	/* A 4 KiB write fault where logging forbids the huge leaf. */
	return kvm_tdp_page_fault(a->vcpu, (SLOT_GFN + 2 * GFN_2M + 0x11) << 12,
				  S2_ACC_READ | S2_ACC_WRITE);
}

static long call_topup(struct af *a)
{
	return kvm_mmu_topup_memory_cache(a->vcpu);
}

static long call_zap(struct af *a)
{
	return kvm_zap_gfn_range(a->kvm, SLOT_GFN, SLOT_GFN + SLOT_PAGES);
}

static long call_zap_all(struct af *a)
{
	return kvm_mmu_zap_all(a->kvm);
}

static long call_invalidate(struct af *a)
{
	hva_t s = HVA_BASE + (SLOT_GFN << 12), e = s + (SLOT_PAGES << 12);
	int r = kvm_mmu_notifier_invalidate_range_start(a->kvm, s, e, true);

	if (r)
		return r;
	return kvm_mmu_notifier_invalidate_range_end(a->kvm, s, e, true);
}

static long call_age(struct af *a)
{
	hva_t s = HVA_BASE + (SLOT_GFN << 12);

	return kvm_mmu_notifier_clear_flush_young(a->kvm, s, s + (SLOT_PAGES << 12));
}

static long call_get_log(struct af *a)
{
	uint64_t bm[SLOT_PAGES / 64];

	return kvm_get_dirty_log(a->kvm, 0, bm);
}

static long call_clear_log(struct af *a)
{
	uint64_t bm[SLOT_PAGES / 64];

	memset(bm, 0xff, sizeof(bm));
	return kvm_clear_dirty_log(a->kvm, 0, 0, SLOT_PAGES, bm);
}

static long call_ring_reset(struct af *a)
{
	return kvm_dirty_ring_reset(a->kvm);
}

static long call_track_add(struct af *a)
{
	return kvm_write_track_add_gfn(a->kvm, SLOT_GFN + 0x212);
}

static long call_track_remove(struct af *a)
{
	return kvm_write_track_remove_gfn(a->kvm, SLOT_GFN + 7);
}

static long call_attr_private(struct af *a)
{
	return kvm_vm_set_mem_attributes(a->kvm, SLOT_GFN + 0x10, SLOT_GFN + 0x300,
					 KVM_MEMORY_ATTRIBUTE_PRIVATE);
}

static long call_attr_shared(struct af *a)
{
	return kvm_vm_set_mem_attributes(a->kvm, SLOT_GFN + GFN_2M + 0x40, SLOT_GFN + 2 * GFN_2M,
					 0);
}

static const struct af_case cases[] = {
	{ "vcpu_create", .no_vcpu = true, .can_fail = true, .call = call_vcpu_create },
	{ "vcpu_create+ring", .ring = 64, .no_vcpu = true, .can_fail = true,
	  .call = call_vcpu_create },
	{ "vcpu_create second", .can_fail = true, .prep = prep_populated,
	  .call = call_vcpu_create_second },
	/* The spare set has room: nothing to allocate. */
	{ "set_memslot", .prep = prep_populated, .call = call_slot_add },
	{ "set_memslot growing the set", .can_fail = true, .prep = prep_full_set,
	  .call = call_slot_add },
	{ "set_memslot logging", .can_fail = true, .prep = prep_populated,
	  .call = call_slot_add_logging },
	/* These edit the spare set: only the zap allocates, and absorbs it. */
	{ "delete_memslot", .may_fallback = true, .prep = prep_populated,
	  .call = call_slot_delete },
	{ "move_memslot", .may_fallback = true, .prep = prep_populated, .call = call_slot_move },
	{ "memslot readonly", .may_fallback = true, .prep = prep_populated,
	  .call = call_slot_readonly },
	{ "dirty log start (hw)", .can_fail = true, .may_fallback = true, .prep = prep_populated,
	  .call = call_log_start },
	{ "dirty log start (wrprotect)", .caps = KVM_DIRTY_LOG_WRPROTECT, .can_fail = true,
	  .may_fallback = true, .prep = prep_populated, .call = call_log_start },
	{ "dirty log stop (collapse)", .may_fallback = true, /* spare set, no bitmap */
	  .prep = prep_logging_split, .call = call_log_stop },
	{ "page fault", .can_fail = true, .prep = prep_slots_only, .call = call_fault },
	/* Allocates only what the fault cache lacks after the prep. */
	{ "page fault in logging slot", .prep = prep_logging_zapped, .call = call_fault_logging },
	{ "topup", .can_fail = true, .prep = prep_slots_only, .call = call_topup },
	{ "zap range", .may_fallback = true, .prep = prep_populated, .call = call_zap },
	{ "zap all", .may_fallback = true, .prep = prep_populated, .call = call_zap_all },
	{ "notifier invalidate", .may_fallback = true, .prep = prep_populated,
	  .call = call_invalidate },
	{ "notifier age", .may_fallback = true, .prep = prep_populated, .call = call_age },
	{ "get_dirty_log", .may_fallback = true, .prep = prep_logging, .call = call_get_log },
	{ "get_dirty_log (wrprotect)", .caps = KVM_DIRTY_LOG_WRPROTECT, .may_fallback = true,
	  .prep = prep_logging, .call = call_get_log },
	{ "clear_dirty_log", .caps = KVM_DIRTY_LOG_MANUAL_PROTECT, .may_fallback = true,
	  .prep = prep_logging, .call = call_clear_log },
	{ "dirty ring reset", .ring = 256, .caps = KVM_DIRTY_LOG_WRPROTECT, .may_fallback = true,
	  .prep = prep_harvested_ring, .call = call_ring_reset },
	{ "write track add", .can_fail = true, .may_fallback = true, .prep = prep_tracked,
	  .call = call_track_add },
	{ "write track remove", .can_fail = true, .may_fallback = true, .prep = prep_tracked,
	  .call = call_track_remove },
	{ "attributes private", .can_fail = true, .may_fallback = true, .prep = prep_populated,
	  .call = call_attr_private },
	{ "attributes shared", .can_fail = true, .may_fallback = true, .prep = prep_private,
	  .call = call_attr_shared },
};

/* ---- state ---- */

static uint64_t mix(uint64_t h, uint64_t v)
{
	return h ^ (v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2));
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = mix(h, b[i]);
	return h;
}

/* Table pages the vcpus' fault caches hold (4 KiB units). */
static uint64_t cache_pages(struct kvm *kvm)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < kvm->max_vcpus; i++)
		if (kvm->vcpus[i])
			n += kvm->vcpus[i]->cache.nr;
	return n * (s2_table_bytes(&kvm->cfg) >> 12);
}

/* Everything a failed call must leave as it was. */
struct af_state {
	uint64_t tables, stats, dstats, slots, dirty, rings, track, attrs, reqs;
	uint64_t inv_seq, inv_in_progress;
	uint64_t kicks, hw_flush_vm, hw_flush_range;
	uint64_t pages, meta;
	uint64_t faults;
};

static struct af_state snapshot(struct af *a)
{
	struct kvm *kvm = a->kvm;
	struct af_state s = { 0 };
	struct kvm_mmu_stats st = t_stats(kvm);
	struct kvm_dirty_stats ds;
	const struct s2_memslots *ms = kvm->memslots;
	const struct s2_write_track *wt = kvm->dirty.write_track;

	s2_hosted_quiesce(&a->h);
	s.tables = t_tables_hash(kvm);
	/* faults counts the calls that reached the MMU, failed ones too: a
	 * count of calls, not state. */
	s.faults = st.faults;
	st.faults = 0;
	s.stats = hash_bytes(0, &st, sizeof(st));
	assert_int_equal(kvm_get_dirty_stats(kvm, &ds), 0);
	s.dstats = hash_bytes(0, &ds, sizeof(ds));
	s.slots = hash_bytes(ms->nr, ms->slots, ms->nr * sizeof(ms->slots[0]));
	for (unsigned i = 0; i < ms->nr; i++) {
		const struct s2_slot_dirty *d = ms->dirty[i];

		s.dirty = mix(s.dirty, d ? hash_bytes(d->npages, d->bits, d->nwords * 8) : 1);
	}
	for (unsigned i = 0; i < kvm->max_vcpus; i++) {
		const struct s2_dirty_ring *r;

		if (!kvm->vcpus[i])
			continue;
		r = kvm->vcpus[i]->dirty_ring;

		s.reqs = mix(s.reqs, kvm->vcpus[i]->requests);
		if (r)
			s.rings = hash_bytes(s.rings, r, sizeof(*r) + r->size * sizeof(r->e[0]));
	}
	s.track = wt ? hash_bytes(wt->nr, wt->e, wt->nr * sizeof(wt->e[0])) : 0;
	for (gfn_t g = SLOT_GFN - 1; g < SLOT_GFN + SLOT_PAGES + 1; g++)
		s.attrs = mix(s.attrs, kvm_get_memory_attributes(kvm, g));
	s.inv_seq = kvm_mmu_invalidate_seq(kvm);
	s.inv_in_progress = kvm_mmu_invalidate_in_progress(kvm);
	s.kicks = a->h.kicks;
	s.hw_flush_vm = a->h.hw_flush_vm;
	s.hw_flush_range = a->h.hw_flush_range;
	s.pages = s2_hosted_pages_in_use(&a->h) + s2_hosted_rcu_pending(&a->h) - cache_pages(kvm);
	s.meta = s2_hosted_meta_in_use(&a->h);
	return s;
}

#define SAME(f)                                                                                \
	do {                                                                                   \
		if (before->f != after->f)                                                     \
			fail_msg("[%s] %s, N=%ld%s: -ENOMEM changed " #f " (%#llx -> %#llx)",  \
				 TEST_FMT_NAME, c->name, n, persist ? " and on" : "",          \
				 (unsigned long long)before->f, (unsigned long long)after->f); \
	} while (0)

static void assert_unchanged(const struct af_case *c, long n, bool persist,
			     const struct af_state *before, const struct af_state *after)
{
	SAME(tables);
	SAME(stats);
	SAME(dstats);
	SAME(slots);
	SAME(dirty);
	SAME(rings);
	SAME(track);
	SAME(attrs);
	SAME(reqs);
	SAME(inv_seq);
	SAME(inv_in_progress);
	SAME(kicks);
	SAME(hw_flush_vm);
	SAME(hw_flush_range);
	SAME(pages);
	SAME(meta);
	/* Each fault call counts once, whatever it returns. */
	assert_in_range(after->faults - before->faults, 0, 2);
}

/* The leaves, as gfn and raw entry (no table addresses: comparable
 * between VMs). */
static int leaf_digest_fn(void *arg, gfn_t gfn, const struct s2_mapping *m)
{
	uint64_t *h = arg;

	*h = mix(mix(*h, gfn), m->pte);
	return 0;
}

static uint64_t leaf_digest(struct kvm *kvm)
{
	uint64_t h = 0;

	assert_int_equal(
		kvm_mmu_for_each_leaf(kvm, 0, 1ull << (kvm_gpa_bits(kvm) - 12), leaf_digest_fn, &h),
		0);
	return h;
}

/* Every leaf maps what its memslot backs (hpa == hva in the hosted env),
 * per the reference walker, without W in read-only slots and on tracked
 * gfns. */
static int model_fn(void *arg, gfn_t gfn, const struct s2_mapping *m)
{
	struct kvm *kvm = arg;
	struct kvm_memory_slot s;
	struct ref_xlate x;

	for (uint64_t off = 0; off < m->size; off += 4096) {
		gfn_t g = gfn + (off >> 12);

		if (kvm_gfn_to_memslot(kvm, g, &s))
			fail_msg("[%s] gfn %#llx mapped outside every memslot", TEST_FMT_NAME,
				 (unsigned long long)g);
		assert_int_equal(ref_walk_kvm(kvm, g << 12, &x), 0);
		if (x.hpa != s.userspace_addr + ((g - s.base_gfn) << 12))
			fail_msg("[%s] gfn %#llx maps hpa %#llx, slot says %#llx", TEST_FMT_NAME,
				 (unsigned long long)g, (unsigned long long)x.hpa,
				 (unsigned long long)(s.userspace_addr + ((g - s.base_gfn) << 12)));
		if ((x.perm & S2_PROT_W) &&
		    ((s.flags & KVM_MEM_READONLY) || kvm_gfn_is_write_tracked(kvm, g)))
			fail_msg("[%s] gfn %#llx writable in a read-only slot or tracked",
				 TEST_FMT_NAME, (unsigned long long)g);
		if (kvm_get_memory_attributes(kvm, g) & KVM_MEMORY_ATTRIBUTE_PRIVATE)
			fail_msg("[%s] private gfn %#llx mapped in the shared root", TEST_FMT_NAME,
				 (unsigned long long)g);
	}
	return 0;
}

static void assert_model(struct kvm *kvm)
{
	assert_int_equal(
		kvm_mmu_for_each_leaf(kvm, 0, 1ull << (kvm_gpa_bits(kvm) - 12), model_fn, kvm), 0);
}

/* ---- the driver ---- */

static void af_open(struct af *a, const struct af_case *c)
{
	struct kvm_vm_params p = t_default_params(TEST_FMT);

	memset(a, 0, sizeof(*a));
	s2_hosted_init(&a->h);
	a->h.quiet = true;
	p.env = &a->h.env;
	assert_int_equal(kvm_create_vm(&p, &a->kvm), 0);
	if (c->caps)
		assert_int_equal(kvm_dirty_log_set_caps(a->kvm, c->caps), 0);
	if (c->ring)
		assert_int_equal(kvm_dirty_ring_enable(a->kvm, c->ring, 16), 0);
	if (!c->no_vcpu)
		assert_int_equal(kvm_vcpu_create(a->kvm, 0, &a->vcpu), 0);
	if (c->prep)
		c->prep(a);
}

static void af_close(struct af *a, const char *what)
{
	s2_hosted_fail_nth(&a->h, 0, false);
	kvm_destroy_vm(a->kvm);
	s2_hosted_quiesce(&a->h);
	if (s2_hosted_allocs_in_use(&a->h))
		fail_msg("[%s] %s: %llu pages, %llu blocks, %llu callbacks not returned",
			 TEST_FMT_NAME, what, (unsigned long long)s2_hosted_pages_in_use(&a->h),
			 (unsigned long long)s2_hosted_meta_in_use(&a->h),
			 (unsigned long long)s2_hosted_rcu_pending(&a->h));
}

struct af_result {
	long r;
	uint64_t leaves;
	uint64_t allocs;
};

static struct af_result af_reference(const struct af_case *c)
{
	struct af a;
	struct af_result ref;

	af_open(&a, c);
	s2_hosted_fail_nth(&a.h, 0, false);
	ref.r = c->call(&a);
	ref.allocs = a.h.alloc_calls;
	if (ref.r < 0)
		fail_msg("[%s] %s: fails with %ld without injection", TEST_FMT_NAME, c->name,
			 ref.r);
	assert_model(a.kvm);
	ref.leaves = leaf_digest(a.kvm);
	af_close(&a, c->name);
	return ref;
}

/* Returns how many N gave -ENOMEM. */
static unsigned af_sweep(const struct af_case *c, const struct af_result *ref, bool persist)
{
	unsigned enomem = 0;
	long n;

	for (n = 1; n <= MAX_N; n++) {
		struct af a;
		struct af_state before, after;
		uint64_t failed;
		long r;

		af_open(&a, c);
		before = snapshot(&a);
		s2_hosted_fail_nth(&a.h, n, persist);
		r = c->call(&a);
		failed = a.h.alloc_failed;
		s2_hosted_fail_nth(&a.h, 0, false);
		if (!failed) {
			/* Past the call's last allocation: the sweep is done. */
			assert_int_equal(r, ref->r);
			af_close(&a, c->name);
			break;
		}
		if (r == -ENOMEM) {
			enomem++;
			after = snapshot(&a);
			assert_unchanged(c, n, persist, &before, &after);
			r = c->call(&a);
			if (r != ref->r)
				fail_msg("[%s] %s, N=%ld: retry after -ENOMEM gives %ld, want %ld",
					 TEST_FMT_NAME, c->name, n, r, ref->r);
			if (leaf_digest(a.kvm) != ref->leaves)
				fail_msg("[%s] %s, N=%ld: retry after -ENOMEM left other leaves",
					 TEST_FMT_NAME, c->name, n);
		} else if (!c->may_fallback || r != ref->r) {
			fail_msg("[%s] %s, N=%ld%s: injected failure gave %ld (want -ENOMEM%s)",
				 TEST_FMT_NAME, c->name, n, persist ? " and on" : "", r,
				 c->may_fallback ? " or the reference result" : "");
		}
		assert_false(kvm_is_bugged(a.kvm));
		assert_model(a.kvm);
		af_close(&a, c->name);
	}
	if (n > MAX_N)
		fail_msg("[%s] %s: still allocating after %d allocations", TEST_FMT_NAME, c->name,
			 MAX_N);
	if (!persist && (uint64_t)n != ref->allocs + 1)
		fail_msg(
			"[%s] %s: the sweep ended at N=%ld, the reference run allocated %llu times",
			TEST_FMT_NAME, c->name, n, (unsigned long long)ref->allocs);
	return enomem;
}

/* Each scenario, every N, one failure and failures from N on. */
static void test_every_call_every_allocation(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct af_case *c = &cases[i];
		struct af_result ref = af_reference(c);
		unsigned once = af_sweep(c, &ref, false);
		unsigned on = af_sweep(c, &ref, true);

		print_message("  %-28s %3llu allocations, -ENOMEM at %u (once) / %u (from N on)\n",
			      c->name, (unsigned long long)ref.allocs, once, on);
		if (c->can_fail && (!once || !on))
			fail_msg("[%s] %s: no injected failure gave -ENOMEM", TEST_FMT_NAME,
				 c->name);
	}
}

/* kvm_create_vm: -ENOMEM with *out NULL and nothing held, at every N. */
static void test_create_vm_every_allocation(void **state)
{
	for (int persist = 0; persist < 2; persist++) {
		long n;

		for (n = 1; n <= MAX_N; n++) {
			struct s2_hosted h;
			struct kvm_vm_params p = t_default_params(TEST_FMT);
			struct kvm *kvm = (struct kvm *)1;
			int r;

			s2_hosted_init(&h);
			h.quiet = true;
			p.env = &h.env;
			s2_hosted_fail_nth(&h, n, persist);
			r = kvm_create_vm(&p, &kvm);
			if (!h.alloc_failed) {
				assert_int_equal(r, 0);
				kvm_destroy_vm(kvm);
				break;
			}
			assert_int_equal(r, -ENOMEM);
			assert_null(kvm);
			s2_hosted_quiesce(&h);
			assert_int_equal(s2_hosted_allocs_in_use(&h), 0);
		}
		assert_true(n > 1 && n <= MAX_N);
	}
}

static void af_cb_ran(void *arg)
{
	__atomic_store_n((int *)arg, 1, __ATOMIC_RELEASE);
}

/* The env's own counting: the Nth call fails once (or from then on), every
 * kind of allocation counts (call_rcu too), and the in-use count includes
 * queued callbacks. The sweeps rely on it; a counter that skipped a kind
 * would end them early. */
static void test_env_fail_nth(void **state)
{
	struct s2_hosted h;
	hpa_t pa;
	void *p[3];
	int ran = 0;

	s2_hosted_init(&h);
	s2_hosted_fail_nth(&h, 2, false);
	p[0] = h.ops.zalloc(h.env.ctx, 16);
	p[1] = h.ops.alloc_table(h.env.ctx, 4096, &pa);
	p[2] = h.ops.zalloc(h.env.ctx, 16);
	assert_non_null(p[0]);
	assert_null(p[1]);
	assert_non_null(p[2]);
	assert_int_equal(h.alloc_calls, 3);
	assert_int_equal(h.alloc_failed, 1);
	s2_hosted_fail_nth(&h, 1, true);
	assert_int_equal(h.ops.call_rcu(h.env.ctx, af_cb_ran, &ran), -ENOMEM);
	assert_null(h.ops.zalloc(h.env.ctx, 16));
	assert_int_equal(h.alloc_failed, 2);
	s2_hosted_fail_nth(&h, 0, false);
	assert_int_equal(s2_hosted_allocs_in_use(&h), 2);
	h.ops.synchronize_rcu(h.env.ctx);
	assert_int_equal(h.ops.call_rcu(h.env.ctx, af_cb_ran, &ran), 0);
	s2_hosted_quiesce(&h);
	assert_int_equal(__atomic_load_n(&ran, __ATOMIC_ACQUIRE), 1);
	assert_int_equal(s2_hosted_rcu_pending(&h), 0);
	h.ops.free(h.env.ctx, p[0]);
	h.ops.free(h.env.ctx, p[2]);
	assert_int_equal(s2_hosted_allocs_in_use(&h), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_env_fail_nth),
		cmocka_unit_test(test_create_vm_every_allocation),
		cmocka_unit_test(test_every_call_every_allocation),
	};

	if (!s2_fmt_supported(TEST_FMT)) {
		print_message("format " TEST_FMT_NAME " not built: skipped\n");
		return 0;
	}
	return cmocka_run_group_tests_name("allocation failure [" TEST_FMT_NAME "]", tests, NULL,
					   NULL);
}
