// SPDX-License-Identifier: MIT
/*
 * Range mapping (core/map.c), once per format: kvm_mmu_map_range() against a
 * brute-force model read back through the reference walker of the format
 * (tests/ref, never the library's decoders), unmapping and write-protecting
 * a range, and kvm_vcpu_pre_fault_memory() against faulting every page of a
 * twin VM.
 *
 * The model: with delta = gpa - hpa, the page at p lies in the leaf of the
 * largest level L (<= the VM's largest leaf) whose aligned block around p
 * lies inside the range and with delta a multiple of its size (the leaves
 * of the range are its buddy decomposition). It is stated per page, not as
 * the library's left-to-right greedy.
 *
 * Mutations run (each made the named tests fail, then was reverted):
 *  - s2_map_level() not checking hpa alignment: boundaries, adversarial,
 *    random, replace;
 *  - s2_map_level() not checking the end of the range (end - gpa >= sz):
 *    boundaries, adversarial, random, batches, wrprotect (leaves past the
 *    end);
 *  - the zap before mapping dropped: replace (the VM is bugged: rule 1
 *    refused a pfn change);
 *  - the batch bound (batch < budget) dropped: batches (one hold maps all);
 *  - s2_map_run() writing leaf k + 1's value at entry k: every mapping
 *    test; s2_map_run() running past the end of its table (no idx check):
 *    boundaries, adversarial, random;
 *  - pre-fault stepping one page at a time, not over the leaf: prefault
 *    (more faults than leaves);
 *  - kvm_mmu_wrprotect_range() on S2_RANGE_WRPROTECT (W only): wrprotect
 *    (MMU-writable kept);
 *  - protect_visit() owing no flush for a permission lost: protect (X
 *    removed without a flush);
 *  - w_direct forced true: protect_logging (W set at once in a logging
 *    slot, the write not recorded);
 *  - s2_map_fill() checking the cache one page short (cache.nr + 1 <
 *    levels - level): cache_per_leaf (the VM bugged).
 */
#include <stdlib.h>
#include <string.h>

#include "core/kvm_internal.h"
#include "tests/lib/testlib.h"

#ifndef TEST_FMT
#error "build with -DTEST_FMT=S2_FMT_..."
#endif

#define PG 4096ull
#define GB (1ull << 30)
#define MB (1ull << 20)
/* One memslot over [0, 64 GiB): ranges are placed inside it. */
#define SLOT_GB 64

static struct tvm T;
static unsigned seed = 4242;

static uint64_t rnd64(uint64_t n)
{
	uint64_t x = ((uint64_t)rand_r(&seed) << 31) ^ (uint64_t)rand_r(&seed);

	return n ? x % n : 0;
}

static uint64_t lsz(int l)
{
	return 1ull << s2_level_shift(&T.kvm->cfg, l);
}

static void up(void)
{
	t_vm_init(&T, TEST_FMT, NULL);
	t_slot(&T, 0, 0, (SLOT_GB * GB) >> 12, 1ull << 44, 0);
}

static void down(void)
{
	t_vm_fini(&T);
}

/* Model: the level of the leaf mapping page @p of [gpa, end) at delta. */
static int model_level(gpa_t p, gpa_t gpa, gpa_t end, hpa_t hpa)
{
	uint64_t delta = gpa - hpa;

	for (int l = T.kvm->max_leaf_level; l > 1; l--) {
		uint64_t sz = lsz(l), b = p & ~(sz - 1);

		if (!(delta & (sz - 1)) && b >= gpa && b + sz <= end)
			return l;
	}
	return 1;
}

/* Every leaf of [gpa, end) as the model says, read by the reference walker,
 * and the pages either side unmapped. Returns the leaves checked. */
static uint64_t check_range_x(gpa_t gpa, gpa_t end, hpa_t hpa, unsigned perm, bool edges)
{
	uint64_t n = 0;

	for (gpa_t p = gpa; p < end;) {
		int l = model_level(p, gpa, end, hpa);
		uint64_t sz = lsz(l);
		gpa_t ends[2] = { p, (p & ~(sz - 1)) + sz - PG };

		for (int i = 0; i < 2; i++) {
			struct ref_xlate x;

			assert_int_equal(ref_walk_kvm(T.kvm, ends[i], &x), 0);
			assert_int_equal(x.fault, 0);
			assert_int_equal(x.level, l);
			assert_int_equal(x.hpa, ends[i] - (gpa - hpa));
			assert_int_equal(x.perm & (S2_PROT_R | S2_PROT_W),
					 perm & (S2_PROT_R | S2_PROT_W));
			assert_int_equal(x.memtype & S2_MT_MASK, S2_MT_WB);
		}
		p = (p & ~(sz - 1)) + sz;
		n++;
	}
	if (edges && gpa)
		t_assert_unmapped(T.kvm, gpa - PG);
	if (edges)
		t_assert_unmapped(T.kvm, end);
	return n;
}

static uint64_t check_range(gpa_t gpa, gpa_t end, hpa_t hpa, unsigned perm)
{
	return check_range_x(gpa, end, hpa, perm, true);
}

static uint64_t leaves_now(void)
{
	struct kvm_mmu_stats s = t_stats(T.kvm);
	uint64_t n = 0;

	for (int l = 1; l <= S2_MAX_LEVELS; l++)
		n += s.cur_leaves[l];
	return n;
}

static void map_check(gpa_t gpa, uint64_t size, hpa_t hpa)
{
	uint64_t before = leaves_now(), n;

	assert_int_equal(kvm_mmu_map_range(T.vcpu, gpa, hpa, size, S2_PROT_R | S2_PROT_W, S2_MT_WB),
			 0);
	n = check_range(gpa, gpa + size, hpa, S2_PROT_R | S2_PROT_W);
	assert_int_equal(leaves_now() - before, n);
	assert_false(kvm_is_bugged(T.kvm));
	assert_true(kvm_mmu_unmap_range(T.kvm, gpa, size) >= (long)n);
	assert_int_equal(leaves_now(), before);
}

/* Ranges starting and ending one page either side of every level's block
 * boundary, with hpa as aligned as gpa. */
static void test_boundaries(void **st)
{
	(void)st;
	up();
	for (int l = 2; l <= T.kvm->max_leaf_level && lsz(l) <= 4 * GB; l++) {
		gpa_t b = 4 * lsz(l);

		if (b + 2 * lsz(l) > SLOT_GB * GB)
			continue;
		map_check(b - PG, 2 * PG, b - PG + 2 * GB);
		map_check(b - PG, lsz(l) + 2 * PG, b - PG + 2 * GB);
		map_check(b, lsz(l), b + 2 * GB);
		map_check(b, lsz(l) - PG, b + 2 * GB);
		map_check(b + PG, lsz(l) - PG, b + PG + 2 * GB);
		map_check(b - lsz(l) + PG, 2 * lsz(l) - 2 * PG, b + 2 * GB);
	}
	down();
}

/* hpa misaligned against gpa at each level: the leaves shrink to what both
 * share. */
static void test_adversarial(void **st)
{
	(void)st;
	up();
	for (int l = 1; l <= T.kvm->max_leaf_level && lsz(l) <= GB; l++) {
		/* delta a multiple of lsz(l) only: no leaf above l. */
		map_check(2 * GB, GB + 4 * MB, 8 * GB + lsz(l));
		map_check(2 * GB - lsz(l), 2 * lsz(l) + PG, 16 * GB + lsz(l));
	}
	down();
}

static void test_random(void **st)
{
	(void)st;
	up();
	for (int i = 0; i < 60; i++) {
		uint64_t align = lsz(1 + (int)rnd64((uint64_t)T.kvm->max_leaf_level));
		gpa_t gpa = (rnd64(SLOT_GB * GB / 2) & ~(align - 1)) + PG * rnd64(3);
		uint64_t size = PG * (1 + rnd64(i % 3 ? 2048 : 600000));
		hpa_t hpa = (rnd64(1ull << 38) & ~(align - 1)) + (gpa & (align - 1));

		if (rnd64(4) == 0)
			hpa += PG * rnd64(512);
		if (gpa + size > SLOT_GB * GB)
			size = SLOT_GB * GB - gpa;
		map_check(gpa, size, hpa);
	}
	down();
}

/* A range mapped over another mapping: the old leaves are zapped first (one
 * flush), a fresh range owes none. */
static void test_replace(void **st)
{
	struct kvm_mmu_stats a, b;

	(void)st;
	up();
	a = t_stats(T.kvm);
	assert_int_equal(kvm_mmu_map_range(T.vcpu, 0, GB, 8 * MB, S2_PROT_R, S2_MT_WB), 0);
	b = t_stats(T.kvm);
	assert_int_equal(b.flushes + b.flushes_range, a.flushes + a.flushes_range);
	assert_int_equal(
		kvm_mmu_map_range(T.vcpu, 2 * MB, 3 * GB, 4 * MB, S2_PROT_R | S2_PROT_W, S2_MT_WB),
		0);
	a = t_stats(T.kvm);
	assert_true(a.flushes + a.flushes_range > b.flushes + b.flushes_range);
	assert_false(kvm_is_bugged(T.kvm));
	assert_int_equal(a.refused_changes, 0);
	check_range_x(2 * MB, 6 * MB, 3 * GB, S2_PROT_R | S2_PROT_W, false);
	down();
}

/*
 * A write-tracked gfn inside the range: its leaf is 4 KiB with neither W
 * nor MMU-writable (dirty.h), the gfns beside it in its 2 MiB block are
 * 4 KiB and writable, and the blocks around are still 2 MiB. Both through
 * the read-side try (a small range) and the batches (a large one, with a
 * batch of 16 leaves). Fails without s2_map_leaves()'s check of the
 * tracked set (the tracked gfn writable, inside a 2 MiB leaf).
 */
static void test_write_tracked(void **st)
{
	const gfn_t g = (4 * MB + 5 * PG) >> 12;
	struct s2_mapping m;

	(void)st;
	for (int big = 0; big < 2; big++) {
		up();
		if (big)
			T.kvm->yield_batch = 16;
		assert_int_equal(kvm_write_track_add_gfn(T.kvm, g), 0);
		assert_int_equal(kvm_mmu_map_range(T.vcpu, 0, GB, big ? 64 * MB : 8 * MB,
						   S2_PROT_R | S2_PROT_W, S2_MT_WB),
				 0);
		assert_int_equal(kvm_mmu_lookup(T.kvm, g << 12, &m), 0);
		assert_true(m.present);
		assert_int_equal(m.level, 1);
		assert_int_equal(m.hpa, GB + (g << 12));
		assert_false(m.prot & (S2_PROT_W | S2_PROT_MMU_WRITABLE));
		assert_int_equal(kvm_mmu_lookup(T.kvm, (g + 1) << 12, &m), 0);
		assert_true(m.present && m.level == 1 && (m.prot & S2_PROT_W));
		assert_int_equal(kvm_mmu_lookup(T.kvm, 2 * MB, &m), 0);
		assert_true(m.present && m.level == 2 && (m.prot & S2_PROT_W));
		assert_int_equal(kvm_mmu_lookup(T.kvm, 6 * MB, &m), 0);
		assert_true(m.present && m.level == 2 && (m.prot & S2_PROT_W));
		assert_false(kvm_is_bugged(T.kvm));
		assert_int_equal(kvm_write_track_remove_gfn(T.kvm, g), 0);
		down();
	}
}

/* One hold of mmu_lock maps at most yield_batch leaves. */
static void test_batches(void **st)
{
	struct kvm_mmu_stats s;

	(void)st;
	up();
	T.kvm->yield_batch = 64;
	assert_int_equal(kvm_mmu_map_range(T.vcpu, 0, GB, 4 * MB, S2_PROT_R, S2_MT_WB), 0);
	check_range(0, 4 * MB, GB, S2_PROT_R);
	/* 2 MiB hpa misaligned: 1024 leaves of 4 KiB. */
	assert_int_equal(kvm_mmu_map_range(T.vcpu, 8 * MB, GB + PG, 4 * MB, S2_PROT_R, S2_MT_WB),
			 0);
	s = t_stats(T.kvm);
	assert_true(s.max_hold_leaves <= 64);
	assert_true(s.max_hold_leaves > 0);
	down();
}

static void test_wrprotect(void **st)
{
	struct ref_xlate x;

	(void)st;
	up();
	assert_int_equal(kvm_mmu_map_range(T.vcpu, 0, GB, 8 * MB, S2_PROT_R | S2_PROT_W, S2_MT_WB),
			 0);
	/* 2 MiB leaves; protect one and one page of the next (whole leaves). */
	assert_int_equal(kvm_mmu_wrprotect_range(T.kvm, 2 * MB, 2 * MB + PG), 2);
	check_range_x(0, 2 * MB, GB, S2_PROT_R | S2_PROT_W, false);
	check_range_x(6 * MB, 8 * MB, GB + 6 * MB, S2_PROT_R | S2_PROT_W, false);
	for (gpa_t p = 2 * MB; p < 6 * MB; p += MB) {
		struct s2_mapping m;

		assert_int_equal(ref_walk_kvm(T.kvm, p, &x), 0);
		assert_int_equal(x.fault, 0);
		assert_false(x.perm & S2_PROT_W);
		assert_int_equal(kvm_mmu_lookup(T.kvm, p, &m), 0);
		assert_false(m.prot & S2_PROT_MMU_WRITABLE);
	}
	down();
}

static uint64_t flushes(void)
{
	struct kvm_mmu_stats s = t_stats(T.kvm);

	return s.flushes + s.flushes_range;
}

/* Every page of [gpa, end) per the reference walker: @want of W and X set,
 * the rest of them clear. */
static void check_perm(gpa_t gpa, gpa_t end, unsigned want)
{
	for (gpa_t p = gpa; p < end; p += 64 * PG) {
		struct ref_xlate x;

		assert_int_equal(ref_walk_kvm(T.kvm, p, &x), 0);
		assert_int_equal(x.fault, 0);
		assert_int_equal(x.perm & (S2_PROT_R | S2_PROT_W | S2_PROT_X),
				 want & (S2_PROT_R | S2_PROT_W | S2_PROT_X));
	}
}

/*
 * kvm_mmu_protect_range(): X off and on, W off and on, over 2 MiB and
 * 4 KiB leaves, read back by the reference walker; a flush for each
 * permission lost, none for one gained; bad input changes nothing.
 */
static void test_protect(void **st)
{
	const unsigned rwx = S2_PROT_R | S2_PROT_W | S2_PROT_X;
	gpa_t end = 8 * MB + 64 * 1024;
	uint64_t f, h;
	struct s2_mapping m;

	(void)st;
	up();
	assert_int_equal(kvm_mmu_map_range(T.vcpu, 0, GB, 8 * MB, rwx, S2_MT_WB), 0);
	assert_int_equal(
		kvm_mmu_map_range(T.vcpu, 8 * MB, GB + 8 * MB + PG, 64 * 1024, rwx, S2_MT_WB), 0);
	check_perm(0, end, rwx);
	f = flushes();
	assert_int_equal(kvm_mmu_protect_range(T.kvm, 0, end, S2_PROT_R | S2_PROT_W), 4 + 16);
	check_perm(0, end, S2_PROT_R | S2_PROT_W);
	assert_true(flushes() > f);
	f = flushes();
	assert_int_equal(kvm_mmu_protect_range(T.kvm, 0, end, rwx), 4 + 16);
	check_perm(0, end, rwx);
	assert_int_equal(flushes(), f);
	/* Nothing to change: nothing changed, no flush. */
	assert_int_equal(kvm_mmu_protect_range(T.kvm, 0, end, rwx), 0);
	assert_int_equal(kvm_mmu_protect_range(T.kvm, 0, end, S2_PROT_R | S2_PROT_X), 4 + 16);
	check_perm(0, end, S2_PROT_R | S2_PROT_X);
	assert_int_equal(kvm_mmu_lookup(T.kvm, 8 * MB, &m), 0);
	assert_false(m.prot & S2_PROT_MMU_WRITABLE);
	assert_true(flushes() > f);
	f = flushes();
	assert_int_equal(kvm_mmu_protect_range(T.kvm, 0, end, rwx), 4 + 16);
	check_perm(0, end, rwx);
	assert_int_equal(kvm_mmu_lookup(T.kvm, 8 * MB, &m), 0);
	assert_true(m.prot & S2_PROT_MMU_WRITABLE);
	assert_int_equal(flushes(), f);

	h = t_tables_hash(T.kvm);
	assert_int_equal(kvm_mmu_protect_range(NULL, 0, PG, S2_PROT_R), -EINVAL);
	assert_int_equal(kvm_mmu_protect_range(T.kvm, 0, PG, S2_PROT_W), -EINVAL);
	assert_int_equal(kvm_mmu_protect_range(T.kvm, 0, PG, S2_PROT_R | S2_PROT_DIRTY), -EINVAL);
	assert_int_equal(kvm_mmu_protect_range(T.kvm, 1, PG, S2_PROT_R), -EINVAL);
	assert_int_equal(kvm_mmu_protect_range(T.kvm, 0, 0, S2_PROT_R), -EINVAL);
	assert_int_equal(kvm_mmu_protect_range(T.kvm, 0, 1ull << 60, S2_PROT_R), -EINVAL);
	assert_int_equal(t_tables_hash(T.kvm), h);
	down();
}

/*
 * W asked back over a slot that logs dirty pages (write protection): the
 * leaves get MMU-writable but not W, so the first write faults and is
 * recorded; W over a read-only slot is refused.
 */
static void test_protect_logging(void **st)
{
	uint64_t bitmap[1024 / 64] = { 0 };
	struct s2_mapping m;
	uint64_t h;

	(void)st;
	t_vm_init(&T, TEST_FMT, NULL);
	assert_int_equal(kvm_dirty_log_set_caps(T.kvm, KVM_DIRTY_LOG_WRPROTECT), 0);
	t_slot(&T, 0, 0, 1024, 1ull << 44, 0);
	t_slot(&T, 1, 1024, 16, (1ull << 44) + 8 * MB, KVM_MEM_READONLY);
	assert_int_equal(kvm_mmu_map_range(T.vcpu, 0, GB, 4 * MB, S2_PROT_R | S2_PROT_W, S2_MT_WB),
			 0);
	assert_int_equal(kvm_set_memslot_flags(T.kvm, 0, KVM_MEM_LOG_DIRTY_PAGES), 0);
	assert_true(kvm_get_dirty_log(T.kvm, 0, bitmap) >= 0);
	assert_true(kvm_mmu_protect_range(T.kvm, 0, 4 * MB, S2_PROT_R) > 0);
	check_perm(0, 4 * MB, S2_PROT_R);
	assert_true(kvm_mmu_protect_range(T.kvm, 0, 4 * MB, S2_PROT_R | S2_PROT_W) > 0);
	check_perm(0, 4 * MB, S2_PROT_R);
	assert_int_equal(kvm_mmu_lookup(T.kvm, 5 * PG, &m), 0);
	assert_true(m.prot & S2_PROT_MMU_WRITABLE);
	assert_int_equal(kvm_tdp_page_fault(T.vcpu, 5 * PG, S2_ACC_WRITE), RET_PF_FIXED);
	check_perm(5 * PG, 6 * PG, S2_PROT_R | S2_PROT_W);
	assert_int_equal(kvm_get_dirty_log(T.kvm, 0, bitmap), 1);
	assert_int_equal(bitmap[0], 1ull << 5);
	/* W over the read-only slot: refused, nothing changed. */
	h = t_tables_hash(T.kvm);
	assert_int_equal(kvm_mmu_protect_range(T.kvm, 4 * MB - PG, 2 * PG, S2_PROT_R | S2_PROT_W),
			 -EINVAL);
	assert_int_equal(t_tables_hash(T.kvm), h);
	t_vm_fini(&T);
}

/*
 * The memory cache is filled per leaf (levels - level pages), so a batch
 * may start short of the worst case: a 1 GiB leaf at the end of one
 * 512 GiB region takes the cache from full to two pages, and the 4 KiB
 * leaf that follows in the next region needs all three tables; map_range
 * must stop and top up rather than map it from two (the VM would be
 * bugged: "memory cache empty under mmu_lock").
 */
static void test_cache_per_leaf(void **st)
{
	const gpa_t g = 511 * GB;

	(void)st;
	t_vm_init(&T, TEST_FMT, NULL);
	t_slot(&T, 0, g >> 12, (GB + 2 * MB) >> 12, 1ull << 44, 0);
	assert_int_equal(kvm_mmu_topup_memory_cache(T.vcpu), 0);
	assert_int_equal(kvm_mmu_map_range(T.vcpu, g, 3 * GB, GB + PG, S2_PROT_R, S2_MT_WB), 0);
	assert_false(kvm_is_bugged(T.kvm));
	t_assert_maps(T.kvm, g, 3 * GB, T.kvm->max_leaf_level >= 3 ? 3 : 2, S2_PROT_R);
	t_assert_maps(T.kvm, g + GB, 4 * GB, 1, S2_PROT_R);
	t_vm_fini(&T);
}

static void test_bad_input(void **st)
{
	uint64_t h;

	(void)st;
	up();
	assert_int_equal(kvm_mmu_map_range(T.vcpu, 0, GB, 2 * MB, S2_PROT_R, S2_MT_WB), 0);
	h = t_tables_hash(T.kvm);
	assert_int_equal(kvm_mmu_map_range(NULL, 0, 0, PG, S2_PROT_R, 0), -EINVAL);
	assert_int_equal(kvm_mmu_map_range(T.vcpu, 1, 0, PG, S2_PROT_R, 0), -EINVAL);
	assert_int_equal(kvm_mmu_map_range(T.vcpu, 0, 1, PG, S2_PROT_R, 0), -EINVAL);
	assert_int_equal(kvm_mmu_map_range(T.vcpu, 0, 0, 0, S2_PROT_R, 0), -EINVAL);
	assert_int_equal(kvm_mmu_map_range(T.vcpu, 0, 0, PG + 1, S2_PROT_R, 0), -EINVAL);
	assert_int_equal(kvm_mmu_map_range(T.vcpu, 0, 0, PG, S2_PROT_W, 0), -EINVAL);
	assert_int_equal(kvm_mmu_map_range(T.vcpu, 0, 0, PG, S2_PROT_R | S2_PROT_DIRTY, 0),
			 -EINVAL);
	assert_int_equal(kvm_mmu_map_range(T.vcpu, 0, 0, PG, S2_PROT_R, S2_MT_NR), -EINVAL);
	assert_int_equal(
		kvm_mmu_map_range(T.vcpu, 1ull << T.kvm->cfg.gpa_bits, 0, PG, S2_PROT_R, 0),
		-EINVAL);
	assert_int_equal(kvm_mmu_map_range(T.vcpu, 0, ~0ull << 12, 2 * PG, S2_PROT_R, 0), -EINVAL);
	/* Past the memslot. */
	assert_int_equal(kvm_mmu_map_range(T.vcpu, SLOT_GB * GB - PG, 0, 2 * PG, S2_PROT_R, 0),
			 -ENOENT);
	assert_int_equal(kvm_mmu_unmap_range(T.kvm, PG, 0), -EINVAL);
	assert_int_equal(kvm_mmu_wrprotect_range(T.kvm, 3, PG), -EINVAL);
	assert_int_equal(kvm_vcpu_pre_fault_memory(T.vcpu, 0, PG - 1), -EINVAL);
	assert_int_equal(t_tables_hash(T.kvm), h);
	/* No memslot (the fault may leave an MMIO entry, as faulting would). */
	assert_int_equal(kvm_vcpu_pre_fault_memory(T.vcpu, SLOT_GB * GB, PG), -ENOENT);
	down();
}

/* Pre-faulting a range gives what a read fault on each of its pages gives
 * a twin VM (same memslots, hva misaligned against gpa in part), in one
 * fault per leaf. */
static void test_prefault(void **st)
{
	struct tvm U;
	struct kvm_mmu_stats s;
	gpa_t gpa = GB - 6 * MB - 3 * PG;
	uint64_t size = 14 * MB + 5 * PG, leaves = 0;

	(void)st;
	t_vm_init(&T, TEST_FMT, NULL);
	t_vm_init(&U, TEST_FMT, NULL);
	for (struct tvm *t = &T; t; t = (t == &T ? &U : NULL)) {
		t_slot(t, 0, 0, (GB >> 12) - 1024, 1ull << 40, 0);
		/* Host blocks one page off the gpa's: 4 KiB leaves only. */
		t_slot(t, 1, (GB >> 12) - 1024, 8192, (1ull << 40) + GB + PG, 0);
		t_slot(t, 2, (GB >> 12) + 7168, 8192, (1ull << 41) + GB + 28 * MB, 0);
	}
	assert_int_equal(kvm_vcpu_pre_fault_memory(T.vcpu, gpa, size), (long)size);
	for (gpa_t p = gpa; p < gpa + size; p += PG)
		assert_true(kvm_tdp_page_fault(U.vcpu, p, S2_ACC_READ) >= 0);
	for (gpa_t p = gpa - PG; p < gpa + size + PG; p += PG) {
		struct ref_xlate a, b;

		(void)ref_walk_kvm(T.kvm, p, &a);
		(void)ref_walk_kvm(U.kvm, p, &b);
		assert_int_equal(a.fault, b.fault);
		if (a.fault)
			continue;
		assert_int_equal(a.hpa, b.hpa);
		assert_int_equal(a.level, b.level);
		assert_int_equal(a.perm, b.perm);
		assert_int_equal(a.memtype, b.memtype);
		if (p == (p & ~(a.size - 1)) || p == gpa)
			leaves++;
	}
	s = t_stats(T.kvm);
	assert_true(leaves > 0);
	assert_int_equal(s.faults, leaves);
	t_vm_fini(&U);
	down();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_boundaries),     cmocka_unit_test(test_adversarial),
		cmocka_unit_test(test_random),	       cmocka_unit_test(test_replace),
		cmocka_unit_test(test_batches),	       cmocka_unit_test(test_wrprotect),
		cmocka_unit_test(test_protect),	       cmocka_unit_test(test_protect_logging),
		cmocka_unit_test(test_cache_per_leaf), cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_prefault),       cmocka_unit_test(test_write_tracked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
