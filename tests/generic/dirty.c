// SPDX-License-Identifier: MIT
/*
 * Dirty logging and write tracking, compiled once per format (TEST_FMT).
 * Mappings are checked with the format's reference walker (tests/ref/);
 * guest writes go through tests/generic/dirty_sim.h, which does what the
 * hardware does (a write to a non-writable leaf faults, a write to a clean
 * writable leaf sets its dirty flag where the hardware keeps one).
 *
 * Most tests run twice: with write-protection (KVM_DIRTY_LOG_WRPROTECT) and
 * with hardware dirty state where the format and VM have it (EPT with A/D,
 * arm64 with HD, RISC-V with Svadu, NPT).
 */
#include <string.h>

#include "core/kvm_internal.h"
#include "tests/generic/dirty_sim.h"
#include "tests/lib/testlib.h"

#ifndef TEST_FMT
#error "build with -DTEST_FMT=S2_FMT_..."
#endif

#define GB (1ull << 30)
#define MB (1ull << 20)
#define KB (1ull << 10)
#define HVA_BASE (0x7f0000000000ull) /* 1 GiB aligned */
#define HVA_4K (HVA_BASE + 4 * KB)   /* congruent with no huge block */

enum mode { MODE_WP, MODE_HW };

static struct tvm T;

static int teardown(void **state)
{
	(void)state;
	if (T.kvm)
		t_vm_fini(&T);
	return 0;
}

static struct kvm_vm_params params_for(enum mode m)
{
	struct kvm_vm_params p = t_default_params(TEST_FMT);

	if (m == MODE_HW && TEST_FMT == S2_FMT_ARM64_S2)
		p.fmt_flags |= S2_FMTF_HD;
	return p;
}

/* A VM (and vcpu 0) logging in mode @m with @caps; false when the format
 * cannot do @m (the caller skips it). */
static bool vm_mode(enum mode m, unsigned caps)
{
	struct kvm_vm_params p = params_for(m);

	t_vm_init(&T, TEST_FMT, &p);
	if (m == MODE_WP)
		caps |= KVM_DIRTY_LOG_WRPROTECT;
	/* PML needs an EPT VM with hardware dirty state. */
	if ((caps & KVM_DIRTY_LOG_PML) &&
	    (!kvm_dirty_log_hw(T.kvm) || TEST_FMT != S2_FMT_X86_EPT)) {
		t_vm_fini(&T);
		return false;
	}
	assert_int_equal(kvm_dirty_log_set_caps(T.kvm, caps), 0);
	if (m == MODE_HW && !kvm_dirty_log_hw(T.kvm)) {
		t_vm_fini(&T);
		return false;
	}
	assert_int_equal(kvm_dirty_log_hw(T.kvm), m == MODE_HW);
	return true;
}

#define FOR_EACH_MODE(m, caps)                         \
	for (enum mode m = MODE_WP; m <= MODE_HW; m++) \
		if (vm_mode(m, caps))

static int fault(gfn_t gfn, unsigned acc)
{
	return kvm_tdp_page_fault(T.vcpu, gfn << 12, acc);
}

static uint64_t flushes(void)
{
	struct kvm_mmu_stats s = t_stats(T.kvm);

	return s.flushes + s.flushes_range;
}

static struct kvm_dirty_stats dstats(void)
{
	struct kvm_dirty_stats s;

	assert_int_equal(kvm_get_dirty_stats(T.kvm, &s), 0);
	return s;
}

/* A guest write to @gfn: the hardware's way if it may, else fault and retry. */
static void gwrite(gfn_t gfn)
{
	bool newly;

	for (int i = 0; i < 4; i++) {
		if (sim_write(T.kvm, gfn << 12, &newly))
			return;
		int r = fault(gfn, S2_ACC_WRITE);
		assert_true(r == RET_PF_FIXED || r == RET_PF_SPURIOUS);
	}
	fail_msg("[%s] gfn %#llx: write never proceeds", TEST_FMT_NAME, (unsigned long long)gfn);
}

static struct ref_xlate walk(gfn_t gfn)
{
	struct ref_xlate x;

	ref_walk_kvm(T.kvm, gfn << 12, &x);
	return x;
}

/* Would a guest write to @gfn be seen (fault, or set a dirty flag)? */
static bool write_is_seen(gfn_t gfn, enum mode m)
{
	struct ref_xlate x = walk(gfn);

	assert_int_equal(x.fault, 0);
	if (!(x.perm & S2_PROT_W))
		return true;
	return m == MODE_HW && !x.dirty;
}

static unsigned mmu_prot(gfn_t gfn)
{
	struct s2_mapping mp;

	assert_int_equal(kvm_mmu_lookup(T.kvm, gfn << 12, &mp), 0);
	assert_true(mp.present);
	return mp.prot;
}

static void set_log(unsigned id, bool on)
{
	struct kvm_memory_slot s;

	assert_int_equal(kvm_id_to_memslot(T.kvm, id, &s), 0);
	assert_int_equal(kvm_set_memslot_flags(T.kvm, id,
					       on ? s.flags | KVM_MEM_LOG_DIRTY_PAGES :
						    s.flags & ~KVM_MEM_LOG_DIRTY_PAGES),
			 0);
}

/* kvm_get_dirty_log, returning the number of pages reported (or -errno);
 * the call itself says whether there was any. */
static long get_log(unsigned id, uint64_t *bm)
{
	struct kvm_memory_slot s;
	long r = kvm_get_dirty_log(T.kvm, id, bm), n = 0;

	if (r < 0)
		return r;
	assert_int_equal(kvm_id_to_memslot(T.kvm, id, &s), 0);
	for (uint64_t w = 0; w < (s.npages + 63) / 64; w++)
		n += __builtin_popcountll(bm[w]);
	assert_int_equal(r, n > 0);
	return n;
}

/* ---- enabling ---- */

/* Enabling logging protects every leaf of the slot (W, or the dirty state
 * where the hardware keeps it), keeps MMU-writable, reports nothing, and
 * flushes exactly once because writable leaves existed; with no such leaf
 * it does not flush at all. */
static void test_enable_protects_and_flushes_once(void **state)
{
	(void)state;
	FOR_EACH_MODE(m, 0)
	{
		uint64_t bm[4] = { 0 };

		t_slot(&T, 0, 0x40000, 0x100, HVA_4K, 0);
		t_slot(&T, 1, 0x50000, 0x100, HVA_4K + GB, 0);
		t_slot(&T, 2, 0x60000, 0x100, HVA_4K + 2 * GB, 0);
		for (gfn_t g = 0x40000; g < 0x40080; g++)
			gwrite(g);
		/* Slot 2 is backed read-only by the host: its leaves can never
		 * become writable without the host. */
		T.h.host_readonly = true;
		for (gfn_t g = 0x60000; g < 0x60010; g++)
			assert_int_equal(fault(g, S2_ACC_READ), RET_PF_FIXED);
		T.h.host_readonly = false;
		uint64_t f0 = flushes();

		set_log(0, true);
		assert_int_equal(flushes(), f0 + 1);
		for (gfn_t g = 0x40000; g < 0x40080; g++) {
			struct ref_xlate x = walk(g);

			assert_true(write_is_seen(g, m));
			assert_true(mmu_prot(g) & S2_PROT_MMU_WRITABLE);
			assert_int_equal(x.hpa, HVA_4K + ((g - 0x40000) << 12));
			if (m == MODE_HW)
				assert_true(x.perm & S2_PROT_W); /* no extra faults */
		}
		t_assert_unmapped(T.kvm, 0x40080ull << 12);
		assert_int_equal(get_log(0, bm), 0);
		assert_int_equal(flushes(), f0 + 1);

		/* Nothing mapped, or nothing that can become writable: no flush. */
		set_log(1, true);
		set_log(2, true);
		assert_int_equal(flushes(), f0 + 1);
		assert_false(walk(0x60000).perm & S2_PROT_W);
		t_vm_fini(&T);
	}
}

/* In a logging slot a read fault maps without W (so the first write is
 * seen) and records nothing; a write fault maps a 4 KiB leaf whatever the
 * host allows and records the page; the first write after a read fault is
 * fixed without the host and recorded once. Refreshing a read-only leaf
 * never flushes. */
static void test_faults_in_logging_slot(void **state)
{
	(void)state;
	FOR_EACH_MODE(m, 0)
	{
		uint64_t bm[1 << 12] = { 0 };
		gfn_t g1 = 0x40123, g2 = 0x40456;

		T.h.host_level = 3;
		t_slot(&T, 0, 0x40000, 0x40000, HVA_BASE, KVM_MEM_LOG_DIRTY_PAGES);
		assert_int_equal(fault(g1, S2_ACC_READ), RET_PF_FIXED);
		struct ref_xlate x = walk(g1);
		assert_int_equal(x.level, 1);
		assert_false(x.perm & S2_PROT_W);
		assert_true(mmu_prot(g1) & S2_PROT_MMU_WRITABLE);
		assert_int_equal(dstats().marked, 0);
		uint64_t h = t_tables_hash(T.kvm), f0 = flushes();
		assert_int_equal(fault(g1, S2_ACC_READ), RET_PF_SPURIOUS);
		assert_true(h == t_tables_hash(T.kvm));

		assert_int_equal(fault(g2, S2_ACC_WRITE), RET_PF_FIXED);
		x = walk(g2);
		assert_int_equal(x.level, 1);
		assert_true(x.perm & S2_PROT_W);
		assert_int_equal(dstats().marked, 1);

		uint64_t lookups = T.h.pfn_lookups;
		assert_int_equal(fault(g1, S2_ACC_WRITE), RET_PF_FIXED);
		assert_int_equal(T.h.pfn_lookups, lookups);
		assert_true(walk(g1).perm & S2_PROT_W);
		assert_int_equal(dstats().marked, 2);
		assert_int_equal(dstats().fast_fixed, 1);
		assert_int_equal(flushes(), f0);

		assert_int_equal(get_log(0, bm), 2);
		assert_int_equal(bm[0x123 / 64], 1ull << (0x123 % 64));
		assert_int_equal(bm[0x456 / 64], 1ull << (0x456 % 64));
		assert_int_equal(flushes(), f0 + 1);
		t_vm_fini(&T);
	}
}

/* The fast path: a write fault on a write-protected, MMU-writable leaf gets
 * W back without a pfn lookup and without a flush, and records the page
 * exactly once; the same fault again is spurious and records nothing. */
static void test_fast_path_records_once(void **state)
{
	uint64_t bm[1] = { 0 };

	(void)state;
	assert_true(vm_mode(MODE_WP, 0));
	t_slot(&T, 0, 0x40000, 0x40, HVA_4K, 0);
	for (gfn_t g = 0x40000; g < 0x40040; g++)
		assert_int_equal(fault(g, S2_ACC_WRITE), RET_PF_FIXED);
	set_log(0, true);
	uint64_t lookups = T.h.pfn_lookups, f0 = flushes();

	assert_int_equal(fault(0x40003, S2_ACC_WRITE), RET_PF_FIXED);
	assert_int_equal(T.h.pfn_lookups, lookups);
	t_assert_maps(T.kvm, 0x40003ull << 12, HVA_4K + 0x3000, 1, S2_PROT_R | S2_PROT_W);
	assert_int_equal(fault(0x40003, S2_ACC_WRITE | S2_ACC_READ), RET_PF_SPURIOUS);
	assert_int_equal(T.h.pfn_lookups, lookups);
	/* Refreshing a read-only leaf: spurious, no flush. */
	assert_int_equal(fault(0x40004, S2_ACC_READ), RET_PF_SPURIOUS);
	assert_int_equal(flushes(), f0);
	struct kvm_dirty_stats d = dstats();
	assert_int_equal(d.fast_fixed, 1);
	assert_int_equal(d.marked, 1);
	assert_int_equal(get_log(0, bm), 1);
	assert_int_equal(bm[0], 1ull << 3);
	assert_false(walk(0x40003).perm & S2_PROT_W);
}

/* get_dirty_log reports exactly the pages written since the last get,
 * re-protects them, and flushes once for the call; a get with nothing to
 * report changes nothing and does not flush. */
static void test_get_dirty_log(void **state)
{
	static const gfn_t pages[] = { 0, 1, 2, 63, 64, 100, 127, 128, 150, 199 };

	(void)state;
	FOR_EACH_MODE(m, 0)
	{
		uint64_t bm[4], want[4] = { 0 };

		t_slot(&T, 0, 0x40000, 200, HVA_4K, 0);
		for (gfn_t g = 0; g < 200; g++)
			gwrite(0x40000 + g);
		set_log(0, true);
		for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
			gwrite(0x40000 + pages[i]);
			want[pages[i] / 64] |= 1ull << (pages[i] % 64);
		}
		uint64_t f0 = flushes();

		memset(bm, 0xa5, sizeof(bm));
		assert_int_equal(get_log(0, bm), 10);
		assert_memory_equal(bm, want, sizeof(bm));
		assert_int_equal(flushes(), f0 + 1);
		for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++)
			assert_true(write_is_seen(0x40000 + pages[i], m));

		uint64_t h = t_tables_hash(T.kvm);
		assert_int_equal(get_log(0, bm), 0);
		assert_int_equal(bm[0] | bm[1] | bm[2] | bm[3], 0);
		assert_int_equal(flushes(), f0 + 1);
		assert_true(h == t_tables_hash(T.kvm));

		/* Written again after the harvest: reported again. */
		gwrite(0x40000 + 150);
		assert_int_equal(get_log(0, bm), 1);
		assert_int_equal(bm[2], 1ull << (150 - 128));
		t_vm_fini(&T);
	}
}

/* Manual-protect mode: get only copies (nothing re-protected, no flush);
 * clear re-protects exactly the pages named that are dirty, 64 at a time,
 * flushing once; pages not cleared stay writable and stay reported. */
static void test_manual_protect_clear(void **state)
{
	(void)state;
	FOR_EACH_MODE(m, KVM_DIRTY_LOG_MANUAL_PROTECT)
	{
		uint64_t bm[4], clr[4] = { 0 };

		t_slot(&T, 0, 0x40000, 200, HVA_4K, 0);
		for (gfn_t g = 0; g < 200; g++)
			gwrite(0x40000 + g);
		set_log(0, true);
		gwrite(0x40000 + 5);
		gwrite(0x40000 + 6);
		gwrite(0x40000 + 70);
		gwrite(0x40000 + 199);
		uint64_t f0 = flushes();
		struct kvm_dirty_stats d0 = dstats();

		assert_int_equal(get_log(0, bm), 4);
		assert_int_equal(bm[0], (1ull << 5) | (1ull << 6));
		assert_int_equal(bm[1], 1ull << 6);
		assert_int_equal(bm[3], 1ull << (199 - 192));
		assert_int_equal(flushes(), f0);
		assert_false(write_is_seen(0x40000 + 5, m));

		/* Clear 5 and 70 (and 7, never dirty), not 6 nor 199. */
		clr[0] = (1ull << 5) | (1ull << 7);
		clr[1] = 1ull << 6;
		assert_int_equal(kvm_clear_dirty_log(T.kvm, 0, 0, 200, clr), 2);
		assert_int_equal(flushes(), f0 + 1);
		assert_int_equal(dstats().masks - d0.masks, 2);
		assert_true(write_is_seen(0x40000 + 5, m));
		assert_true(write_is_seen(0x40000 + 70, m));
		assert_false(write_is_seen(0x40000 + 6, m));
		assert_false(write_is_seen(0x40000 + 199, m));
		assert_int_equal(get_log(0, bm), 2);
		assert_int_equal(bm[0], 1ull << 6);
		assert_int_equal(bm[1], 0);

		/* Nothing named is dirty: no change, no flush. */
		assert_int_equal(kvm_clear_dirty_log(T.kvm, 0, 0, 200, clr), 0);
		assert_int_equal(flushes(), f0 + 1);
		/* A range ending at the slot's end may be partial. */
		memset(clr, 0xff, sizeof(clr));
		assert_int_equal(kvm_clear_dirty_log(T.kvm, 0, 192, 8, clr), 1);
		assert_true(write_is_seen(0x40000 + 199, m));
		assert_int_equal(flushes(), f0 + 2);
		t_vm_fini(&T);
	}
}

/* ---- split and collapse ---- */

struct sample {
	gfn_t gfn;
	struct ref_xlate x;
};

#define SPLIT_BASE 0x40000ull /* 1 GiB aligned */

static unsigned take_samples(struct sample *s)
{
	unsigned n = 0;

	for (gfn_t g = 0; g < 0x40000; g += 0x3d1) /* across the 1 GiB leaf */
		s[n++].gfn = SPLIT_BASE + g;
	s[n++].gfn = SPLIT_BASE + 0x3ffff;
	for (gfn_t g = 0x40000; g < 0x40400; g++) /* every page of both 2 MiB leaves */
		s[n++].gfn = SPLIT_BASE + g;
	for (unsigned i = 0; i < n; i++)
		s[i].x = walk(s[i].gfn);
	return n;
}

/* A slot of one 1 GiB leaf (written), one read-only 2 MiB leaf and one
 * written 2 MiB leaf. */
static void map_huge_slot(void)
{
	T.h.host_level = 3;
	t_slot(&T, 0, SPLIT_BASE, 0x40400, HVA_BASE, 0);
	assert_int_equal(fault(SPLIT_BASE + 5, S2_ACC_WRITE), RET_PF_FIXED);
	T.h.host_readonly = true;
	assert_int_equal(fault(SPLIT_BASE + 0x40000, S2_ACC_READ), RET_PF_FIXED);
	T.h.host_readonly = false;
	assert_int_equal(fault(SPLIT_BASE + 0x40200, S2_ACC_WRITE), RET_PF_FIXED);
	struct kvm_mmu_stats st = t_stats(T.kvm);
	assert_int_equal(st.cur_leaves[3], 1);
	assert_int_equal(st.cur_leaves[2], 2);
}

/* Eager split (CONFIG_S2_EAGER_SPLIT) turns each huge leaf into exactly the
 * 4 KiB leaves it covered: same pfns, memory types and permissions (less
 * the write access or dirty state logging takes away), MMU-writable kept. */
static void test_eager_split_exact(void **state)
{
	static struct sample before[0x600], after[0x600];

	(void)state;
	if (!S2_ENABLED(CONFIG_S2_EAGER_SPLIT))
		skip();
	FOR_EACH_MODE(m, 0)
	{
		map_huge_slot();
		unsigned n = take_samples(before);
		struct kvm_mmu_stats st0 = t_stats(T.kvm);

		set_log(0, true);
		take_samples(after);
		for (unsigned i = 0; i < n; i++) {
			struct ref_xlate *b = &before[i].x, *a = &after[i].x;

			assert_int_equal(b->fault, 0);
			assert_int_equal(a->fault, 0);
			assert_int_equal(a->level, 1);
			assert_int_equal(a->hpa, b->hpa);
			assert_int_equal(a->memtype, b->memtype);
			if (m == MODE_WP) {
				assert_int_equal(a->perm, b->perm & ~S2_PROT_W);
			} else {
				assert_int_equal(a->perm, b->perm);
				assert_false(a->dirty);
			}
			if (b->perm & S2_PROT_W)
				assert_true(mmu_prot(after[i].gfn) & S2_PROT_MMU_WRITABLE);
			else
				assert_false(mmu_prot(after[i].gfn) & S2_PROT_MMU_WRITABLE);
		}
		struct kvm_mmu_stats st = t_stats(T.kvm);
		assert_int_equal(st.cur_leaves[3] + st.cur_leaves[2], 0);
		assert_int_equal(st.cur_leaves[1], 512 * 512 + 1024);
		assert_int_equal(st.cur_table_pages, st0.cur_table_pages + 1 + 512 + 2);
		assert_int_equal(dstats().split_leaves, 3);
		if (TEST_FMT != S2_FMT_ARM64_S2) /* arm64 flushes each break-before-make */
			assert_int_equal(st.flushes + st.flushes_range,
					 st0.flushes + st0.flushes_range + 1);
		/* A write to a split page is fixed in place and recorded. */
		uint64_t lookups = T.h.pfn_lookups;
		gwrite(SPLIT_BASE + 0x40210);
		assert_int_equal(T.h.pfn_lookups, lookups);
		t_vm_fini(&T);
	}
}

/* The split kind itself (white box) keeps every permission, W included. */
static void test_split_kind_keeps_permissions(void **state)
{
	static struct sample before[0x600], after[0x600];
	struct s2_page pg[520];
	struct s2_page_stack ps = { 0, 520, pg };
	struct s2_split_arg a = { .pages = &ps };
	struct s2_change_acc acc;

	(void)state;
	t_vm_init(&T, TEST_FMT, NULL);
	map_huge_slot();
	unsigned n = take_samples(before);
	while (ps.nr < 515) {
		struct s2_page *p = &pg[ps.nr++];

		p->va = T.h.ops.alloc_table(&T.h, 4096, &p->pa);
		assert_non_null(p->va);
	}
	struct s2_range_op op = { .kind = S2_RANGE_SPLIT,
				  .start = SPLIT_BASE,
				  .end = SPLIT_BASE + 0x40400,
				  .acc = &acc,
				  .arg = &a };
	s2_acc_init(&acc);
	s2_mmu_write_lock(T.kvm);
	assert_int_equal(s2_range(T.kvm, &op), 0);
	s2_mmu_write_unlock(T.kvm, &acc);
	assert_int_equal(a.split, 3);
	assert_int_equal(ps.nr, 0);
	take_samples(after);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(after[i].x.level, 1);
		assert_int_equal(after[i].x.hpa, before[i].x.hpa);
		assert_int_equal(after[i].x.perm, before[i].x.perm);
		assert_int_equal(after[i].x.memtype, before[i].x.memtype);
	}
}

/* Disabling logging collapses the slot back, in place, into the largest
 * leaves the backing allows: no fault and no zap is needed, the split
 * tables are freed, and one flush per hold of mmu_lock covers it (it
 * yields every yield_batch leaves read). A block missing a page stays
 * split (and so does the 1 GiB block around it); a host that maps 4 KiB
 * pages gets no huge leaf back. */
static void test_collapse_restores_huge_leaves(void **state)
{
	static struct sample before[0x600], after[0x600];

	(void)state;
	if (!S2_ENABLED(CONFIG_S2_EAGER_SPLIT))
		skip();
	FOR_EACH_MODE(m, 0)
	{
		map_huge_slot();
		uint64_t pages0 = s2_hosted_pages_in_use(&T.h);
		struct kvm_mmu_stats st0 = t_stats(T.kvm);
		unsigned n = take_samples(before);

		set_log(0, true);
		gwrite(SPLIT_BASE + 0x1234); /* some children written, some not */
		gwrite(SPLIT_BASE + 0x40300);
		uint64_t lookups = T.h.pfn_lookups, f0 = flushes();
		struct kvm_mmu_stats st1 = t_stats(T.kvm);

		set_log(0, false);
		s2_hosted_quiesce(&T.h);
		struct kvm_mmu_stats st = t_stats(T.kvm);
		/* The collapse yields mmu_lock every yield_batch leaves it
		 * reads, settling what it owes first: one flush per hold. */
		uint64_t holds = 1 + st.yields - st1.yields;
		assert_true(holds > 1);
		/* The 1 GiB collapse reads its table after its children, past
		 * the batch by that one table at most (docs/rules.md). */
		assert_true(st.max_hold_leaves <=
			    T.kvm->yield_batch + (1u << kvm_fmt_cfg(T.kvm)->bits_per_level));
		assert_int_equal(st.cur_leaves[3], 1);
		assert_int_equal(st.cur_leaves[2], 2);
		assert_int_equal(st.cur_leaves[1], 0);
		assert_int_equal(st.cur_table_pages, st0.cur_table_pages);
		assert_int_equal(s2_hosted_pages_in_use(&T.h), pages0);
		assert_int_equal(st.zapped_leaves, st1.zapped_leaves);
		assert_int_equal(st.faults, st1.faults);
		assert_int_equal(T.h.pfn_lookups - lookups, 0x40400 / 512); /* one per 2 MiB */
		assert_int_equal(dstats().collapsed, 512 + 1 + 2);
		if (TEST_FMT != S2_FMT_ARM64_S2)
			assert_int_equal(flushes(), f0 + holds);
		take_samples(after);
		for (unsigned i = 0; i < n; i++) {
			assert_int_equal(after[i].x.level, before[i].x.level);
			assert_int_equal(after[i].x.hpa, before[i].x.hpa);
			assert_int_equal(after[i].x.memtype, before[i].x.memtype);
			assert_int_equal(after[i].x.perm | S2_PROT_W, before[i].x.perm | S2_PROT_W);
		}
		/* Writable again without the host (no longer recorded). */
		uint64_t marked = dstats().marked;
		lookups = T.h.pfn_lookups;
		gwrite(SPLIT_BASE + 0x40201);
		assert_int_equal(dstats().marked, marked);
		assert_int_equal(T.h.pfn_lookups, lookups);

		/* Again, with one page of the 1 GiB range zapped meanwhile. */
		set_log(0, true);
		assert_int_equal(kvm_zap_gfn_range(T.kvm, SPLIT_BASE + 0x401, SPLIT_BASE + 0x402),
				 1);
		set_log(0, false);
		st = t_stats(T.kvm);
		assert_int_equal(st.cur_leaves[3], 0);
		assert_int_equal(st.cur_leaves[2], 511 + 2);
		assert_int_equal(st.cur_leaves[1], 511);
		t_assert_unmapped(T.kvm, (SPLIT_BASE + 0x401) << 12);
		assert_int_equal(walk(SPLIT_BASE + 0x400).level, 1);
		assert_int_equal(walk(SPLIT_BASE + 0x200).level, 2);

		/* A host mapping 4 KiB pages only: nothing collapses. */
		assert_int_equal(kvm_zap_gfn_range(T.kvm, SPLIT_BASE, SPLIT_BASE + 0x40400) > 0, 1);
		assert_int_equal(fault(SPLIT_BASE + 0x40000, S2_ACC_WRITE), RET_PF_FIXED);
		set_log(0, true);
		T.h.host_level = 1;
		set_log(0, false);
		assert_int_equal(walk(SPLIT_BASE + 0x40000).level, 1);
		assert_int_equal(t_stats(T.kvm).cur_leaves[1], 512);
		t_vm_fini(&T);
	}
}

/* Without eager split, huge leaves are write-protected instead and the
 * first write maps a 4 KiB leaf in their place. */
static void test_huge_leaf_without_split(void **state)
{
	(void)state;
	FOR_EACH_MODE(m, 0)
	{
		T.h.host_level = 2;
		t_slot(&T, 0, 0x40000, 0x400, HVA_BASE, 0);
		assert_int_equal(fault(0x40000, S2_ACC_WRITE), RET_PF_FIXED);
		/* Make the split run out of memory: the bitmap is the last
		 * allocation that succeeds. */
		T.h.fail_alloc_after = S2_ENABLED(CONFIG_S2_EAGER_SPLIT) ? 2 : -1;
		set_log(0, true);
		T.h.fail_alloc_after = -1;
		struct ref_xlate x = walk(0x40005);
		assert_int_equal(x.level, 2);
		assert_false(x.perm & S2_PROT_W);
		gwrite(0x40005);
		assert_int_equal(walk(0x40005).level, 1);
		uint64_t bm[16] = { 0 };
		assert_int_equal(get_log(0, bm), 1);
		assert_int_equal(bm[0], 1ull << 5);
		t_vm_fini(&T);
	}
}

/* ---- rings ---- */

static void vm_with_rings(uint32_t size, uint32_t reserve)
{
	struct kvm_vm_params p = t_default_params(TEST_FMT);

	memset(&T, 0, sizeof(T));
	s2_hosted_init(&T.h);
	T.h.quiet = true;
	T.fmt = TEST_FMT;
	p.env = &T.h.env;
	assert_int_equal(kvm_create_vm(&p, &T.kvm), 0);
	assert_int_equal(kvm_dirty_log_set_caps(T.kvm, KVM_DIRTY_LOG_WRPROTECT), 0);
	assert_int_equal(kvm_dirty_ring_enable(T.kvm, size, reserve), 0);
	assert_int_equal(kvm_dirty_ring_enable(T.kvm, size, reserve), -EBUSY);
	assert_int_equal(kvm_vcpu_create(T.kvm, 0, &T.vcpu), 0);
}

/* A vcpu's writes go to its ring: soft-full raises the request that makes
 * the vcpu exit, a full ring sends further pages to the bitmap (never lost),
 * harvest copies entries in order, and reset re-protects what was harvested
 * with one flush, coalescing neighbours into one mask. */
static void test_ring_soft_full_full_reset(void **state)
{
	struct kvm_dirty_gfn e[64];
	uint64_t bm[1] = { 0 };

	(void)state;
	vm_with_rings(16, 4);
	t_slot(&T, 3, 0x40000, 64, HVA_4K, 0);
	for (gfn_t g = 0; g < 64; g++)
		assert_int_equal(fault(0x40000 + g, S2_ACC_WRITE), RET_PF_FIXED);
	set_log(3, true);
	kvm_check_request(T.vcpu, KVM_REQ_TLB_FLUSH); /* the enable's flush */

	for (gfn_t g = 0; g < 12; g++) {
		assert_false(kvm_request_pending(T.vcpu));
		assert_int_equal(fault(0x40000 + g, S2_ACC_WRITE), RET_PF_FIXED);
	}
	assert_int_equal(kvm_dirty_ring_used(T.vcpu), 12);
	assert_true(kvm_request_pending(T.vcpu));
	assert_false(kvm_vcpu_enter_guest(T.vcpu));
	assert_true(kvm_dirty_ring_check_request(T.vcpu));
	assert_true(kvm_dirty_ring_check_request(T.vcpu)); /* still soft-full */
	for (gfn_t g = 12; g < 17; g++)
		assert_int_equal(fault(0x40000 + g, S2_ACC_WRITE), RET_PF_FIXED);
	assert_int_equal(kvm_dirty_ring_used(T.vcpu), 16);
	struct kvm_dirty_stats d = dstats();
	assert_int_equal(d.ring_pushes, 16);
	assert_int_equal(d.ring_overflows, 1);
	assert_int_equal(d.ring_soft_full, 1);

	assert_int_equal(kvm_dirty_ring_harvest(T.vcpu, e, 5), 5);
	assert_int_equal(kvm_dirty_ring_harvest(T.vcpu, e + 5, 64), 11);
	assert_int_equal(kvm_dirty_ring_harvest(T.vcpu, e, 64), 0);
	for (unsigned i = 0; i < 16; i++) {
		assert_int_equal(e[i].slot, 3);
		assert_int_equal(e[i].offset, i);
	}
	uint64_t f0 = flushes();
	assert_int_equal(kvm_dirty_ring_reset(T.kvm), 16);
	assert_int_equal(flushes(), f0 + 1);
	assert_int_equal(dstats().masks, 1);
	assert_int_equal(kvm_dirty_ring_used(T.vcpu), 0);
	for (gfn_t g = 0; g < 16; g++)
		assert_false(walk(0x40000 + g).perm & S2_PROT_W);
	assert_true(walk(0x40000 + 16).perm & S2_PROT_W);
	assert_false(kvm_dirty_ring_check_request(T.vcpu));
	kvm_check_request(T.vcpu, KVM_REQ_TLB_FLUSH); /* the reset's flush */
	assert_false(kvm_request_pending(T.vcpu));
	/* The overflow went to the bitmap. */
	assert_int_equal(get_log(3, bm), 1);
	assert_int_equal(bm[0], 1ull << 16);
	/* Nothing harvested: nothing reset, no flush. */
	f0 = flushes();
	assert_int_equal(kvm_dirty_ring_reset(T.kvm), 0);
	assert_int_equal(flushes(), f0);
}

/* Writes outside any vcpu go to the bitmap, a vcpu's to its ring; a page is
 * pushed once however often it faults; reset coalesces entries of a slot
 * within 64 pages (in any order) and skips entries of a slot gone since. */
static void test_ring_bitmap_and_coalescing(void **state)
{
	struct kvm_dirty_gfn e[16];
	uint64_t bm[2] = { 0 };

	(void)state;
	vm_with_rings(64, 8);
	t_slot(&T, 3, 0x40000, 128, HVA_4K, 0);
	t_slot(&T, 4, 0x50000, 16, HVA_4K + GB, KVM_MEM_LOG_DIRTY_PAGES);
	for (gfn_t g = 0; g < 128; g++)
		assert_int_equal(fault(0x40000 + g, S2_ACC_WRITE), RET_PF_FIXED);
	set_log(3, true);

	assert_int_equal(kvm_mark_page_dirty(T.kvm, 0x40000 + 20), 1);
	assert_int_equal(kvm_mark_page_dirty(T.kvm, 0x60000), 0); /* no slot */
	assert_int_equal(kvm_dirty_ring_used(T.vcpu), 0);
	assert_int_equal(fault(0x40000 + 40, S2_ACC_WRITE), RET_PF_FIXED);
	assert_int_equal(fault(0x40000 + 40, S2_ACC_WRITE), RET_PF_SPURIOUS);
	assert_int_equal(kvm_vcpu_mark_page_dirty(T.vcpu, 0x40000 + 35), 1);
	assert_int_equal(fault(0x40000 + 36, S2_ACC_WRITE), RET_PF_FIXED);
	assert_int_equal(fault(0x40000 + 100, S2_ACC_WRITE), RET_PF_FIXED);
	assert_int_equal(fault(0x50000 + 1, S2_ACC_WRITE), RET_PF_FIXED);
	assert_int_equal(kvm_dirty_ring_used(T.vcpu), 5);
	assert_int_equal(kvm_dirty_ring_harvest(T.vcpu, e, 16), 5);
	assert_int_equal(e[0].offset, 40);
	assert_int_equal(e[1].offset, 35);
	assert_int_equal(e[4].slot, 4);
	assert_int_equal(e[4].offset, 1);
	/* Slot 4 goes away before the reset. */
	assert_int_equal(kvm_delete_memslot(T.kvm, 4), 0);
	uint64_t f0 = flushes();
	assert_int_equal(kvm_dirty_ring_reset(T.kvm), 5);
	assert_int_equal(flushes(), f0 + 1);
	/* {40, 35, 36} in one mask, {100} in another; slot 4's is skipped. */
	assert_int_equal(dstats().masks, 2);
	assert_false(walk(0x40000 + 35).perm & S2_PROT_W);
	assert_false(walk(0x40000 + 36).perm & S2_PROT_W);
	assert_false(walk(0x40000 + 40).perm & S2_PROT_W);
	assert_false(walk(0x40000 + 100).perm & S2_PROT_W);
	assert_int_equal(get_log(3, bm), 1);
	assert_int_equal(bm[0], 1ull << 20);
}

/*
 * arm64 with the 64 KiB granule: gfns stay 4 KiB, a leaf covers 16 of them.
 * A write anywhere in a 64 KiB page pushes one ring entry naming the page's
 * first gfn (what a harvester must expand: dirty.h), once per page until the
 * reset, which re-protects the whole page; a push into a full ring marks all
 * 16 gfns of the page in the bitmap. Other formats: skipped.
 */
static void test_ring_64k_granule(void **state)
{
	struct kvm_dirty_gfn e[8];
	uint64_t bm[1] = { 0 };
	struct kvm_vm_params p = t_default_params(TEST_FMT);

	(void)state;
	if (TEST_FMT != S2_FMT_ARM64_S2)
		skip();
	p.granule = 65536;
	memset(&T, 0, sizeof(T));
	s2_hosted_init(&T.h);
	T.h.quiet = true;
	T.fmt = TEST_FMT;
	p.env = &T.h.env;
	assert_int_equal(kvm_create_vm(&p, &T.kvm), 0);
	assert_int_equal(kvm_dirty_log_set_caps(T.kvm, KVM_DIRTY_LOG_WRPROTECT), 0);
	assert_int_equal(kvm_dirty_ring_enable(T.kvm, 16, 4), 0);
	assert_int_equal(kvm_vcpu_create(T.kvm, 0, &T.vcpu), 0);
	/* 4 pages of 64 KiB; the hva congruent with no huge block. */
	t_slot(&T, 3, 0x40000, 64, HVA_BASE + 64 * KB, 0);
	for (gfn_t g = 0; g < 64; g += 16)
		assert_int_equal(fault(0x40000 + g, S2_ACC_WRITE), RET_PF_FIXED);
	set_log(3, true);
	kvm_check_request(T.vcpu, KVM_REQ_TLB_FLUSH);

	/* A write to gfn 5 of page 0 and to gfn 3 of page 1. */
	assert_int_equal(fault(0x40000 + 5, S2_ACC_WRITE), RET_PF_FIXED);
	assert_int_equal(fault(0x40000 + 9, S2_ACC_WRITE), RET_PF_SPURIOUS); /* same page */
	assert_int_equal(fault(0x40000 + 16 + 3, S2_ACC_WRITE), RET_PF_FIXED);
	assert_int_equal(kvm_dirty_ring_used(T.vcpu), 2);
	assert_int_equal(kvm_dirty_ring_harvest(T.vcpu, e, 8), 2);
	assert_int_equal(e[0].slot, 3);
	assert_int_equal(e[0].offset, 0);
	assert_int_equal(e[1].offset, 16);
	for (gfn_t g = 0; g < 32; g++)
		assert_true(walk(0x40000 + g).perm & S2_PROT_W);
	assert_int_equal(kvm_dirty_ring_reset(T.kvm), 2);
	for (gfn_t g = 0; g < 32; g++)
		assert_false(walk(0x40000 + g).perm & S2_PROT_W);
	for (gfn_t g = 32; g < 64; g++) /* protected by the enable, never written */
		assert_false(walk(0x40000 + g).perm & S2_PROT_W);

	/* The reset covered gfn 15 too: its write faults and pushes page 0. */
	assert_int_equal(fault(0x40000 + 15, S2_ACC_WRITE), RET_PF_FIXED);
	assert_int_equal(kvm_dirty_ring_harvest(T.vcpu, e, 8), 1);
	assert_int_equal(e[0].offset, 0);

	/* A full ring: page 3's write goes to the bitmap, all 16 gfns. */
	for (unsigned i = 1; i < 16; i++)
		assert_true(kvm_vcpu_mark_page_dirty(T.vcpu, 0x40000 + 16) == 1);
	assert_int_equal(kvm_dirty_ring_used(T.vcpu), 16);
	assert_int_equal(fault(0x40000 + 48 + 7, S2_ACC_WRITE), RET_PF_FIXED);
	assert_int_equal(dstats().ring_overflows, 1);
	assert_int_equal(get_log(3, bm), 16);
	assert_int_equal(bm[0], 0xffffull << 48);
}

/* ---- hardware assists ---- */

/* PML is EPT's: a VM of another format with hardware dirty state (NPT,
 * arm64 with HD, RISC-V with Svadu) refuses KVM_DIRTY_LOG_PML with -EINVAL
 * and keeps its options; kvm_flush_pml_buffer (where it exists) refuses too. */
static void test_pml_refused_without_ept(void **state)
{
	(void)state;
	if (TEST_FMT == S2_FMT_X86_EPT)
		skip();
	if (!vm_mode(MODE_HW, KVM_DIRTY_LOG_MANUAL_PROTECT))
		skip();
	assert_int_equal(kvm_dirty_log_set_caps(T.kvm, KVM_DIRTY_LOG_PML), -EINVAL);
	assert_int_equal(
		kvm_dirty_log_set_caps(T.kvm, KVM_DIRTY_LOG_PML | KVM_DIRTY_LOG_MANUAL_PROTECT),
		-EINVAL);
	assert_int_equal(kvm_dirty_log_caps(T.kvm), KVM_DIRTY_LOG_MANUAL_PROTECT);
	assert_true(kvm_dirty_log_hw(T.kvm));
#if S2_ENABLED(CONFIG_S2_FMT_X86_EPT)
	{
		const uint64_t gpa = 0x40000ull << 12;

		assert_int_equal(kvm_flush_pml_buffer(T.vcpu, &gpa, 1), -EINVAL);
	}
#endif
}

/* With hardware dirty state and PML, the embedder's PML entries are what a
 * harvest reports (no scan of the slot); without PML the slot's dirty bits
 * are collected. Either way the harvest cleans what it reports. */
static void test_pml_and_scan(void **state)
{
	uint64_t bm[1];
	bool newly;

	(void)state;
	if (!vm_mode(MODE_HW, KVM_DIRTY_LOG_PML))
		skip();
	t_slot(&T, 0, 0x40000, 64, HVA_4K, 0);
	for (gfn_t g = 0; g < 64; g++)
		gwrite(0x40000 + g);
	set_log(0, true);
	assert_true(sim_write(T.kvm, (0x40000ull + 9) << 12, &newly));
	assert_true(newly);
	assert_true(sim_write(T.kvm, (0x40000ull + 10) << 12, &newly));
	assert_true(newly);
	assert_true(sim_write(T.kvm, (0x40000ull + 10) << 12, &newly));
	assert_false(newly); /* no second PML entry */
	uint64_t gpa = ((0x40000ull + 9) << 12) + 0x123;
	assert_int_equal(kvm_flush_pml_buffer(T.vcpu, &gpa, 1), 1);
	assert_int_equal(get_log(0, bm), 1); /* 10 is still in the vcpu's buffer */
	assert_int_equal(bm[0], 1ull << 9);
	assert_false(walk(0x40000 + 9).dirty);
	assert_true(walk(0x40000 + 10).dirty);
	gpa = (0x40000ull + 10) << 12;
	assert_int_equal(kvm_flush_pml_buffer(T.vcpu, &gpa, 1), 1);
	assert_int_equal(get_log(0, bm), 1);
	assert_int_equal(bm[0], 1ull << 10);
	t_vm_fini(&T);

	assert_true(vm_mode(MODE_HW, 0));
	t_slot(&T, 0, 0x40000, 64, HVA_4K, 0);
	for (gfn_t g = 0; g < 64; g++)
		gwrite(0x40000 + g);
	set_log(0, true);
	gpa = 0x40000ull << 12;
	assert_int_equal(kvm_flush_pml_buffer(T.vcpu, &gpa, 1), -EINVAL);
	assert_true(sim_write(T.kvm, (0x40000ull + 33) << 12, &newly));
	assert_int_equal(get_log(0, bm), 1);
	assert_int_equal(bm[0], 1ull << 33);
	assert_false(walk(0x40000 + 33).dirty);
}

/*
 * Hardware dirty state is never lost with its leaf (hole 5 of issue 10).
 * With dirty bits and no PML, after a harvest a leaf stays writable with D
 * clear; the guest writes, the CPU sets D and records nothing else. Every
 * way of removing that leaf before the next harvest (a zap, a notifier
 * unmap, zap-all, a memslot move, write tracking, which clears W and on
 * arm64 with DBM the dirty state with it) must move the page into the log:
 * the next kvm_get_dirty_log reports it. Fails when the change handler
 * drops the removed leaf's dirty state.
 */
enum removal { RM_ZAP, RM_NOTIFIER, RM_ZAP_ALL, RM_MOVE, RM_TRACK, RM_NR };

static void test_hw_dirty_survives_removal(void **state)
{
	static const char *const names[RM_NR] = { "zap", "notifier", "zap-all", "move", "track" };

	(void)state;
	for (enum removal rm = RM_ZAP; rm < RM_NR; rm++) {
		uint64_t bm[1] = { 0 };
		gfn_t base = 0x40000, g = base + 21;
		bool newly;

		if (!vm_mode(MODE_HW, 0))
			return;
		t_slot(&T, 0, base, 64, HVA_4K, KVM_MEM_LOG_DIRTY_PAGES);
		gwrite(g);
		get_log(0, bm); /* harvested: the leaf stays writable, D clear */
		assert_false(walk(g).dirty);
		assert_true(walk(g).perm & S2_PROT_W);
		assert_true(sim_write(T.kvm, g << 12, &newly)); /* D set, nothing else */
		assert_true(newly);
		switch (rm) {
		case RM_ZAP: assert_int_equal(kvm_zap_gfn_range(T.kvm, g, g + 1), 1); break;
		case RM_NOTIFIER: {
			hva_t h = HVA_4K + ((g - base) << 12);

			assert_int_equal(
				kvm_mmu_notifier_invalidate_range_start(T.kvm, h, h + 4096, false),
				0);
			assert_int_equal(
				kvm_mmu_notifier_invalidate_range_end(T.kvm, h, h + 4096, false),
				0);
			break;
		}
		case RM_ZAP_ALL: assert_true(kvm_mmu_zap_all(T.kvm) >= 1); break;
		case RM_MOVE: assert_int_equal(kvm_move_memslot(T.kvm, 0, base + 0x1000), 0); break;
		case RM_TRACK: assert_int_equal(kvm_write_track_add_gfn(T.kvm, g), 0); break;
		default: break;
		}
		if (rm != RM_TRACK && rm != RM_MOVE)
			t_assert_unmapped(T.kvm, g << 12);
		memset(bm, 0, sizeof(bm));
		if (get_log(0, bm) != 1 || bm[0] != 1ull << 21)
			fail_msg("[%s] %s: the write before it is not in the log (%#llx)",
				 TEST_FMT_NAME, names[rm], (unsigned long long)bm[0]);
		assert_true(dstats().removed_dirty >= 1 || rm == RM_TRACK);
		if (rm == RM_TRACK)
			assert_int_equal(kvm_write_track_remove_gfn(T.kvm, g), 0);
		t_vm_fini(&T);
	}
}

/*
 * The same with PML: the write's PML entry is still in the vcpu's buffer when
 * the slot moves, so the buffer handed over afterwards names a gpa that is no
 * longer the slot's (found by make tlb-model-long, ad-pml-clear, 1 run in 40).
 * The removed leaf's D flag must be the record. Fails when hardware dirty
 * state is recorded on removal only without PML.
 */
static void test_pml_dirty_survives_move(void **state)
{
	uint64_t bm[1] = { 0 };
	gfn_t base = 0x40000, g = base + 21;
	bool newly;

	(void)state;
	if (!vm_mode(MODE_HW, KVM_DIRTY_LOG_PML))
		skip();
	t_slot(&T, 0, base, 64, HVA_4K, 0);
	for (gfn_t i = 0; i < 64; i++)
		gwrite(base + i);
	set_log(0, true);
	assert_true(sim_write(T.kvm, g << 12, &newly)); /* D set, PML entry in the buffer */
	assert_true(newly);
	assert_int_equal(kvm_move_memslot(T.kvm, 0, base + 0x1000), 0);
	uint64_t gpa = g << 12; /* the buffer handed over after the move */
	(void)kvm_flush_pml_buffer(T.vcpu, &gpa, 1);
	if (get_log(0, bm) != 1 || bm[0] != 1ull << 21)
		fail_msg("[%s] PML: the write before the move is not in the log (%#llx)",
			 TEST_FMT_NAME, (unsigned long long)bm[0]);
	assert_true(dstats().removed_dirty >= 1);
}

/* ---- write tracking ---- */

/*
 * Where a flush becomes visible: the kick of a vcpu in guest mode (formats
 * whose vcpus flush on KVM_REQ_TLB_FLUSH) or the hardware hook (formats with
 * broadcast invalidation). Each records whether mmu_lock was still held.
 */
static unsigned flush_events, flush_unlocked;
static void flush_seen(void)
{
	flush_events++;
	if (!s2_rwlock_is_write_locked(&T.kvm->mmu_lock))
		flush_unlocked++;
}
static void kick_hook(void *ctx, struct kvm_vcpu *vcpu)
{
	(void)ctx;
	flush_seen();
	kvm_vcpu_exit_guest(vcpu); /* the IPI's exit: the flush waits for it */
}
static void tlb_vm_hook(void *ctx, struct kvm *kvm)
{
	(void)ctx;
	(void)kvm;
	flush_seen();
}
static void tlb_range_hook(void *ctx, struct kvm *kvm, gpa_t gpa, uint64_t size)
{
	(void)ctx;
	(void)kvm;
	(void)gpa;
	(void)size;
	flush_seen();
}
static void watch_flushes(void)
{
	T.h.ops.kick = kick_hook;
	T.h.ops.tlb_flush_vm = tlb_vm_hook;
	T.h.ops.tlb_flush_range = tlb_range_hook;
	flush_events = flush_unlocked = 0;
}

/* Write tracking takes a gfn's MMU-writable bit and flushes before mmu_lock
 * is dropped, even when dirty logging had already taken hardware W; a write
 * fault on it returns RET_PF_WRITE_TRACKED and changes nothing; no huge leaf
 * covers it; adds are counted; after the last remove a write maps it
 * writable again through the host. */
static void test_write_tracking(void **state)
{
	struct kvm_vcpu *v1;

	(void)state;
	assert_true(vm_mode(MODE_WP, 0));
	watch_flushes();
	assert_int_equal(kvm_vcpu_create(T.kvm, 1, &v1), 0);
	t_slot(&T, 0, 0x40000, 0x40, HVA_4K, KVM_MEM_LOG_DIRTY_PAGES);
	assert_int_equal(fault(0x40001, S2_ACC_READ), RET_PF_FIXED); /* read-only in hw */
	assert_false(walk(0x40001).perm & S2_PROT_W);
	assert_true(mmu_prot(0x40001) & S2_PROT_MMU_WRITABLE);
	uint64_t f0 = flushes();

	assert_true(kvm_vcpu_enter_guest(v1));
	assert_int_equal(kvm_write_track_add_gfn(T.kvm, 0x40001), 0);
	assert_int_equal(flushes(), f0 + 1);
	assert_true(flush_events >= 1);
	assert_int_equal(flush_unlocked, 0);
	kvm_vcpu_exit_guest(v1);
	assert_false(mmu_prot(0x40001) & S2_PROT_MMU_WRITABLE);
	assert_true(kvm_gfn_is_write_tracked(T.kvm, 0x40001));

	uint64_t h = t_tables_hash(T.kvm), lookups = T.h.pfn_lookups;
	assert_int_equal(fault(0x40001, S2_ACC_WRITE), RET_PF_WRITE_TRACKED);
	assert_int_equal(fault(0x40001, S2_ACC_WRITE | S2_ACC_READ), RET_PF_WRITE_TRACKED);
	assert_true(h == t_tables_hash(T.kvm));
	assert_int_equal(T.h.pfn_lookups, lookups);
	assert_int_equal(dstats().write_tracked_faults, 2);
	assert_int_equal(fault(0x40001, S2_ACC_READ), RET_PF_SPURIOUS);
	/* A tracked gfn never mapped: a read maps it read-only for good. */
	assert_int_equal(kvm_write_track_add_gfn(T.kvm, 0x40002), 0);
	assert_int_equal(fault(0x40002, S2_ACC_READ), RET_PF_FIXED);
	assert_false(mmu_prot(0x40002) & (S2_PROT_W | S2_PROT_MMU_WRITABLE));

	/* Counted. */
	assert_int_equal(kvm_write_track_add_gfn(T.kvm, 0x40001), 0);
	assert_int_equal(kvm_write_track_remove_gfn(T.kvm, 0x40001), 0);
	assert_int_equal(fault(0x40001, S2_ACC_WRITE), RET_PF_WRITE_TRACKED);
	assert_int_equal(kvm_write_track_remove_gfn(T.kvm, 0x40001), 0);
	assert_int_equal(kvm_write_track_remove_gfn(T.kvm, 0x40001), -ENOENT);
	assert_false(kvm_gfn_is_write_tracked(T.kvm, 0x40001));
	lookups = T.h.pfn_lookups;
	assert_int_equal(fault(0x40001, S2_ACC_WRITE), RET_PF_FIXED); /* through the host */
	assert_int_equal(T.h.pfn_lookups, lookups + 1);
	assert_true(walk(0x40001).perm & S2_PROT_W);
	assert_int_equal(kvm_write_track_remove_gfn(T.kvm, 0x40002), 0);
	t_vm_fini(&T);

	/* A huge leaf over a gfn that becomes tracked loses MMU-writable
	 * whole; writes elsewhere in it map 4 KiB leaves instead. */
	t_vm_init(&T, TEST_FMT, NULL);
	T.h.host_level = 2;
	t_slot(&T, 0, 0x40000, 0x400, HVA_BASE, 0);
	assert_int_equal(fault(0x40000, S2_ACC_WRITE), RET_PF_FIXED);
	assert_int_equal(walk(0x40010).level, 2);
	f0 = flushes();
	assert_int_equal(kvm_write_track_add_gfn(T.kvm, 0x40010), 0);
	assert_int_equal(flushes(), f0 + 1);
	assert_false(walk(0x40010).perm & S2_PROT_W);
	assert_int_equal(fault(0x40011, S2_ACC_WRITE), RET_PF_FIXED);
	assert_int_equal(walk(0x40011).level, 1);
	assert_true(walk(0x40011).perm & S2_PROT_W);
	assert_int_equal(fault(0x40010, S2_ACC_WRITE), RET_PF_WRITE_TRACKED);
	assert_int_equal(fault(0x40010, S2_ACC_READ), RET_PF_FIXED);
	assert_int_equal(walk(0x40010).level, 1);
	assert_false(walk(0x40010).perm & S2_PROT_W);
	/* Blocks without a tracked gfn still map huge. */
	assert_int_equal(fault(0x40200, S2_ACC_WRITE), RET_PF_FIXED);
	assert_int_equal(walk(0x40200).level, 2);
}

/* Every harvest flushes before mmu_lock is dropped. */
static void test_reap_flushes_under_lock(void **state)
{
	struct kvm_vcpu *v1;
	uint64_t bm[1];

	(void)state;
	assert_true(vm_mode(MODE_WP, 0));
	watch_flushes();
	assert_int_equal(kvm_vcpu_create(T.kvm, 1, &v1), 0);
	t_slot(&T, 0, 0x40000, 0x40, HVA_4K, KVM_MEM_LOG_DIRTY_PAGES);
	assert_int_equal(fault(0x40001, S2_ACC_WRITE), RET_PF_FIXED);
	assert_int_equal(flush_events, 0);
	assert_true(kvm_vcpu_enter_guest(v1));
	assert_int_equal(get_log(0, bm), 1);
	assert_true(flush_events >= 1);
	assert_int_equal(flush_unlocked, 0);
	if (!T.kvm->ops->tlb_flush_range)
		assert_true(kvm_check_request(v1, KVM_REQ_TLB_FLUSH));
	kvm_vcpu_exit_guest(v1);
}

/* ---- lifecycle and bad input ---- */

/* The bitmap lives while the slot logs: freed on disable and delete, kept
 * (with its bits) across a move; enabling fails cleanly without memory. */
static void test_bitmap_lifecycle(void **state)
{
	uint64_t bm[1];

	(void)state;
	assert_true(vm_mode(MODE_WP, 0));
	t_slot(&T, 0, 0x40000, 0x40, HVA_4K, 0);
	/* One more update: the memslot sets' spare exists from now on
	 * (core/memslot.c), so the counts below see only the bitmap. */
	assert_int_equal(kvm_set_memslot_flags(T.kvm, 0, 0), 0);
	assert_int_equal(fault(0x40001, S2_ACC_WRITE), RET_PF_FIXED);
	uint64_t meta = s2_hosted_meta_in_use(&T.h);
	uint64_t h = t_tables_hash(T.kvm);

	T.h.fail_alloc_after = 0;
	assert_int_equal(kvm_set_memslot_flags(T.kvm, 0, KVM_MEM_LOG_DIRTY_PAGES), -ENOMEM);
	T.h.fail_alloc_after = -1;
	assert_true(h == t_tables_hash(T.kvm));
	assert_int_equal(get_log(0, bm), -ENOENT);
	assert_int_equal(s2_hosted_meta_in_use(&T.h), meta);

	set_log(0, true);
	assert_int_equal(s2_hosted_meta_in_use(&T.h), meta + 1);
	assert_int_equal(fault(0x40001, S2_ACC_WRITE), RET_PF_FIXED);
	assert_int_equal(kvm_move_memslot(T.kvm, 0, 0x50000), 0);
	assert_int_equal(get_log(0, bm), 1);
	assert_int_equal(bm[0], 1ull << 1);
	assert_int_equal(fault(0x50002, S2_ACC_WRITE), RET_PF_FIXED);
	assert_int_equal(get_log(0, bm), 1);
	assert_int_equal(bm[0], 1ull << 2);
	set_log(0, false);
	s2_hosted_quiesce(&T.h); /* the move's zapped tables wait for RCU */
	assert_int_equal(s2_hosted_meta_in_use(&T.h), meta);
	assert_int_equal(get_log(0, bm), -ENOENT);
	set_log(0, true);
	assert_int_equal(kvm_delete_memslot(T.kvm, 0), 0);
	s2_hosted_quiesce(&T.h); /* the zap's tables wait for RCU in a batch */
	assert_int_equal(s2_hosted_meta_in_use(&T.h), meta);
}

/* Every call rejects bad input with its errno and changes nothing. */
static void test_bad_input(void **state)
{
	uint64_t bm[8] = { ~0ull, ~0ull, ~0ull, ~0ull, ~0ull, ~0ull, ~0ull, ~0ull };
	struct kvm_dirty_gfn e[4];
	struct kvm_dirty_stats ds;

	(void)state;
	assert_true(vm_mode(MODE_WP, KVM_DIRTY_LOG_MANUAL_PROTECT));
	gfn_t limit = 1ull << (kvm_gpa_bits(T.kvm) - 12);
	t_slot(&T, 0, 0x40000, 200, HVA_4K, 0);
	t_slot(&T, 1, 0x50000, 64, HVA_4K + GB, KVM_MEM_LOG_DIRTY_PAGES);
	for (gfn_t g = 0; g < 64; g++)
		assert_int_equal(fault(0x50000 + g, S2_ACC_WRITE), RET_PF_FIXED);
	uint64_t h = t_tables_hash(T.kvm), f0 = flushes();

	/* Logging on a read-only slot, unknown flags. */
	struct kvm_memory_slot s = { .id = 7,
				     .base_gfn = 0x60000,
				     .npages = 16,
				     .userspace_addr = HVA_BASE,
				     .flags = KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY };
	assert_int_equal(kvm_set_memslot(T.kvm, &s), -EINVAL);
	assert_int_equal(
		kvm_set_memslot_flags(T.kvm, 0, KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY),
		-EINVAL);
	/* get / clear */
	assert_int_equal(kvm_get_dirty_log(NULL, 1, bm), -EINVAL);
	assert_int_equal(kvm_get_dirty_log(T.kvm, 1, NULL), -EINVAL);
	assert_int_equal(kvm_get_dirty_log(T.kvm, 0, bm), -ENOENT); /* not logging */
	assert_int_equal(kvm_get_dirty_log(T.kvm, 9, bm), -ENOENT);
	assert_int_equal(kvm_clear_dirty_log(NULL, 1, 0, 64, bm), -EINVAL);
	assert_int_equal(kvm_clear_dirty_log(T.kvm, 1, 0, 64, NULL), -EINVAL);
	assert_int_equal(kvm_clear_dirty_log(T.kvm, 1, 1, 63, bm), -EINVAL);  /* unaligned */
	assert_int_equal(kvm_clear_dirty_log(T.kvm, 1, 32, 32, bm), -EINVAL); /* unaligned */
	assert_int_equal(kvm_clear_dirty_log(T.kvm, 1, 0, 65, bm), -EINVAL);  /* past the slot */
	assert_int_equal(kvm_clear_dirty_log(T.kvm, 1, 64, 64, bm), -EINVAL); /* past the slot */
	assert_int_equal(kvm_clear_dirty_log(T.kvm, 1, 128, 0, bm), -EINVAL);
	assert_int_equal(kvm_clear_dirty_log(T.kvm, 1, 0, 1ull << 63, bm), -EINVAL);
	assert_int_equal(kvm_clear_dirty_log(T.kvm, 9, 0, 64, bm), -ENOENT);
	assert_int_equal(kvm_clear_dirty_log(T.kvm, 0, 0, 64, bm), -ENOENT);
	assert_true(h == t_tables_hash(T.kvm));
	assert_int_equal(flushes(), f0);
	set_log(0, true);
	f0 = flushes();
	assert_int_equal(kvm_clear_dirty_log(T.kvm, 0, 0, 100, bm), -EINVAL); /* not at the end */
	assert_int_equal(kvm_clear_dirty_log(T.kvm, 0, 0, 0, bm), 0);
	/* caps */
	assert_int_equal(kvm_dirty_log_set_caps(NULL, 0), -EINVAL);
	assert_int_equal(kvm_dirty_log_set_caps(T.kvm, 1u << 9), -EINVAL);
	assert_int_equal(kvm_dirty_log_set_caps(T.kvm, 0), -EBUSY); /* slots log */
	assert_int_equal(kvm_dirty_log_set_caps(T.kvm, KVM_DIRTY_LOG_PML | KVM_DIRTY_LOG_WRPROTECT),
			 -EINVAL);
	/* rings */
	assert_int_equal(kvm_dirty_ring_enable(T.kvm, 64, 8), -EBUSY); /* vcpus exist */
	assert_int_equal(kvm_dirty_ring_enable(NULL, 64, 8), -EINVAL);
	assert_int_equal(kvm_dirty_ring_harvest(T.vcpu, e, 4), -EINVAL);
	assert_int_equal(kvm_dirty_ring_harvest(NULL, e, 4), -EINVAL);
	assert_int_equal(kvm_dirty_ring_reset(T.kvm), -EINVAL);
	assert_int_equal(kvm_dirty_ring_used(T.vcpu), 0);
	assert_false(kvm_dirty_ring_check_request(NULL));
	/* PML, marks, tracking, stats */
	uint64_t gpa = 0x50000ull << 12;
	assert_int_equal(kvm_flush_pml_buffer(T.vcpu, &gpa, 1), -EINVAL);
	assert_int_equal(kvm_flush_pml_buffer(NULL, &gpa, 1), -EINVAL);
	assert_int_equal(kvm_flush_pml_buffer(T.vcpu, NULL, 1), -EINVAL);
	assert_int_equal(kvm_mark_page_dirty(NULL, 0x50000), -EINVAL);
	assert_int_equal(kvm_mark_page_dirty(T.kvm, limit), -EINVAL);
	assert_int_equal(kvm_vcpu_mark_page_dirty(NULL, 0x50000), -EINVAL);
	assert_int_equal(kvm_write_track_add_gfn(T.kvm, limit), -EINVAL);
	assert_int_equal(kvm_write_track_add_gfn(NULL, 1), -EINVAL);
	assert_int_equal(kvm_write_track_remove_gfn(T.kvm, 0x50000), -ENOENT);
	assert_int_equal(kvm_write_track_remove_gfn(T.kvm, limit), -EINVAL);
	assert_false(kvm_gfn_is_write_tracked(NULL, 1));
	assert_int_equal(kvm_get_dirty_stats(NULL, &ds), -EINVAL);
	assert_int_equal(kvm_get_dirty_stats(T.kvm, NULL), -EINVAL);

	assert_int_equal(flushes(), f0);
	/* The writes made before are all still reported (manual mode). */
	assert_int_equal(get_log(1, bm), 64);
	assert_false(kvm_is_bugged(T.kvm));
	for (gfn_t g = 0; g < 64; g++)
		assert_true(walk(0x50000 + g).perm & S2_PROT_W);

	/* Ring geometry. */
	struct kvm_vm_params p = t_default_params(TEST_FMT);
	struct kvm *k;
	p.env = &T.h.env;
	assert_int_equal(kvm_create_vm(&p, &k), 0);
	assert_int_equal(kvm_dirty_ring_enable(k, 8, 0), -EINVAL);
	assert_int_equal(kvm_dirty_ring_enable(k, 100, 0), -EINVAL);
	assert_int_equal(kvm_dirty_ring_enable(k, 1u << 20, 0), -EINVAL);
	assert_int_equal(kvm_dirty_ring_enable(k, 64, 60), -EINVAL);
	assert_int_equal(kvm_dirty_ring_enable(k, 64, 8), 0);
	kvm_destroy_vm(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_enable_protects_and_flushes_once, teardown),
		cmocka_unit_test_teardown(test_faults_in_logging_slot, teardown),
		cmocka_unit_test_teardown(test_fast_path_records_once, teardown),
		cmocka_unit_test_teardown(test_get_dirty_log, teardown),
		cmocka_unit_test_teardown(test_manual_protect_clear, teardown),
		cmocka_unit_test_teardown(test_eager_split_exact, teardown),
		cmocka_unit_test_teardown(test_split_kind_keeps_permissions, teardown),
		cmocka_unit_test_teardown(test_collapse_restores_huge_leaves, teardown),
		cmocka_unit_test_teardown(test_huge_leaf_without_split, teardown),
		cmocka_unit_test_teardown(test_ring_soft_full_full_reset, teardown),
		cmocka_unit_test_teardown(test_ring_bitmap_and_coalescing, teardown),
		cmocka_unit_test_teardown(test_ring_64k_granule, teardown),
		cmocka_unit_test_teardown(test_pml_and_scan, teardown),
		cmocka_unit_test_teardown(test_pml_refused_without_ept, teardown),
		cmocka_unit_test_teardown(test_hw_dirty_survives_removal, teardown),
		cmocka_unit_test_teardown(test_pml_dirty_survives_move, teardown),
		cmocka_unit_test_teardown(test_write_tracking, teardown),
		cmocka_unit_test_teardown(test_reap_flushes_under_lock, teardown),
		cmocka_unit_test_teardown(test_bitmap_lifecycle, teardown),
		cmocka_unit_test_teardown(test_bad_input, teardown),
	};

	if (!s2_fmt_supported(TEST_FMT)) {
		print_message("format " TEST_FMT_NAME " not built: skipped\n");
		return 0;
	}
	return cmocka_run_group_tests_name("generic dirty [" TEST_FMT_NAME "]", tests, NULL, NULL);
}
