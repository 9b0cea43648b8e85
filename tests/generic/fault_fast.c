// SPDX-License-Identifier: MIT
/*
 * The fault fast path (core/fault.c: s2_fault_fast, s2_fault_cache_fill),
 * compiled once per format (TEST_FMT), checked with the format's reference
 * walker. Hosted host: pfn = hva >> 12, block_stable promised. Most VMs cap
 * leaves at 4 KiB; arm64 VMs have FWB (without it the fast path is off:
 * test_no_fast_path_without_fwb). Every test names the change of the core
 * it catches ("Catches:"); each was applied by hand and made it fail.
 */
#include <string.h>

#include "core/kvm_internal.h"
#include "tests/lib/testlib.h"
#if S2_ENABLED(CONFIG_S2_FMT_ARM64_S2)
#include "s2mmu/arm64-s2.h"
#include "tests/ref/arm64_walker.h"
#endif

#ifndef TEST_FMT
#error "build with -DTEST_FMT=S2_FMT_..."
#endif

#define GB (1ull << 30)
#define MB (1ull << 20)
#define HVA_BASE (0x7f0000000000ull) /* 1 GiB aligned */
#define G0 (0x40000ull)		     /* slot base gfn, 1 GiB aligned */
#define A (G0 + 0x10)		     /* first gfn faulted (not entry 0 of its table) */
#define HPA(g) (HVA_BASE + (((g)-G0) << 12))
#define R S2_ACC_READ
#define W S2_ACC_WRITE
#define FIXED(g, acc) assert_int_equal(fault(g, acc), RET_PF_FIXED)

static const unsigned RW = S2_PROT_R | S2_PROT_W;
static const unsigned RWX = S2_PROT_R | S2_PROT_W | S2_PROT_X;

static struct tvm T;

/* Defaults, plus FWB and hardware dirty state on arm64 (so that a write
 * fault's leaf is dirty and a read fault's is not, as on the others). */
static struct kvm_vm_params params(unsigned max_leaf)
{
	struct kvm_vm_params p = t_default_params(TEST_FMT);

	if (TEST_FMT == S2_FMT_ARM64_S2)
		p.fmt_flags |= S2_FMTF_FWB | S2_FMTF_HD;
	p.max_leaf_level = max_leaf;
	return p;
}

static void vm(unsigned max_leaf)
{
	struct kvm_vm_params p = params(max_leaf);

	t_vm_init(&T, TEST_FMT, &p);
}

static int teardown(void **state)
{
	(void)state;
	if (T.kvm)
		t_vm_fini(&T);
	return 0;
}

static int fault(gfn_t gfn, unsigned acc)
{
	return kvm_tdp_page_fault(T.vcpu, gfn << 12, acc);
}

static struct ref_xlate walk(gfn_t gfn)
{
	struct ref_xlate x;

	ref_walk_kvm(T.kvm, gfn << 12, &x);
	return x;
}

static void maps(gfn_t gfn, hpa_t hpa, unsigned perm)
{
	t_assert_maps(T.kvm, gfn << 12, hpa, 1, perm);
}

static void unmapped(gfn_t gfn)
{
	t_assert_unmapped(T.kvm, gfn << 12);
}

/* Fault @gfn and assert that the fast path fixed it: the cache is live, so
 * what a test does next exercises the fast path's checks. */
static void fast_fault(gfn_t gfn, unsigned acc)
{
	uint64_t f0 = t_stats(T.kvm).faults_fast;

	FIXED(gfn, acc);
	assert_int_equal(t_stats(T.kvm).faults_fast, f0 + 1);
}

/* VM capped at 4 KiB, slot 0 [G0, +0x400) at HVA_BASE, A faulted by the
 * full path (which fills the cache), A + 5 by the fast path. */
static void filled(void)
{
	vm(1);
	t_slot(&T, 0, G0, 0x400, HVA_BASE, 0);
	FIXED(A, R);
	fast_fault(A + 5, R);
}

/* The leaf state a walk reports, apart from the address. */
static void same_leaf_state(gfn_t gfn, const struct ref_xlate *want)
{
	struct ref_xlate x = walk(gfn);

	if (x.fault || x.level != want->level || x.perm != want->perm ||
	    x.memtype != want->memtype || x.accessed != want->accessed || x.dirty != want->dirty)
		fail_msg(
			"[%s] gfn %#llx: level %d perm %#x mt %#x a %d d %d, want %d %#x %#x %d %d",
			TEST_FMT_NAME, (unsigned long long)gfn, x.level, x.perm, x.memtype,
			x.accessed, x.dirty, want->level, want->perm, want->memtype, want->accessed,
			want->dirty);
}

/* @n sequential read faults from G0 in a slot of @n pages at @hva: each
 * fixed, a 4 KiB leaf at its hpa in the first one's state, and the host
 * asked once per leaf table (the fast path serves the rest). */
static void sequential(uint64_t n, hva_t hva)
{
	t_slot(&T, 0, G0, n, hva, 0);
	for (gfn_t g = G0; g < G0 + n; g++)
		FIXED(g, R);
	struct ref_xlate x0 = walk(G0);
	for (gfn_t g = G0; g < G0 + n; g++) {
		t_assert_maps(T.kvm, g << 12, hva + ((g - G0) << 12), 1, RWX);
		same_leaf_state(g, &x0);
	}
	if (T.h.pfn_lookups > n / 512 + 2)
		fail_msg("[%s] %llu host lookups for %llu faults", TEST_FMT_NAME,
			 (unsigned long long)T.h.pfn_lookups, (unsigned long long)n);
	struct kvm_mmu_stats s = t_stats(T.kvm);
	assert_int_equal(s.faults, n);
	assert_int_equal(s.faults_fixed, n);
	assert_int_equal(s.faults_fast, n - T.h.pfn_lookups);
	assert_int_equal(s.faults_spurious + s.faults_retry, 0);
	assert_int_equal(s.cur_leaves[1], n);
	assert_int_equal(s.cur_leaves[2] + s.cur_leaves[3], 0);
}

/*
 * 1. 2048 read faults, leaves capped at 4 KiB, host blocks of 1 GiB.
 * Catches: s2_fault_fast always -EAGAIN (lookups); page k's leaf taken as
 * leaf_lo + (k + 1) * step (hpa); the stat.fast increment dropped (stats).
 */
static void test_effective_sequential(void **state)
{
	(void)state;
	vm(1);
	assert_int_equal(T.kvm->light_read, T.h.ops.membarrier != NULL);
	sequential(2048, HVA_BASE);
}

/*
 * 1b. No cap, but 4 KiB leaves anyway, which the fast path serves: a slot
 * whose hva is congruent with no 2 MiB block; the tail of a congruent slot
 * of 0x300 pages (the first 2 MiB stays one huge leaf, from the full path);
 * a leaf table left where a 2 MiB leaf could go.
 * Catches: a fill that refuses when the VM allows huge leaves (inserted
 * "if (kvm->max_leaf_level > 1) return;"), or does not clip lo to the
 * level-1 table's span (G0 + 0x15 would go into the tail's table).
 */
static void test_effective_without_cap(void **state)
{
	(void)state;
	vm(0);
	sequential(1024, HVA_BASE + 4096);
	t_vm_fini(&T);

	vm(0);
	t_slot(&T, 0, G0, 0x300, HVA_BASE, 0);
	FIXED(G0 + 0x210, R);
	for (gfn_t g = G0 + 0x200; g < G0 + 0x300; g++) /* below the filler too */
		if (g != G0 + 0x210)
			fast_fault(g, R);
	FIXED(G0 + 0x15, R);
	t_assert_maps(T.kvm, (G0 + 0x15) << 12, HPA(G0 + 0x15), 2, RWX);
	for (gfn_t g = G0 + 0x200; g < G0 + 0x300; g++)
		maps(g, HPA(g), RWX);
	assert_int_equal(t_stats(T.kvm).cur_leaves[1], 0x100);
	assert_int_equal(t_stats(T.kvm).cur_leaves[2], 1);
	assert_int_equal(T.h.pfn_lookups, 2);

	T.h.host_level = 1; /* the table is made while the host maps 4 KiB */
	t_slot(&T, 1, G0 + 0x400, 0x200, HVA_BASE + GB, 0);
	FIXED(G0 + 0x410, R);
	T.h.host_level = 3;
	FIXED(G0 + 0x420, R);
	fast_fault(G0 + 0x421, R);
	maps(G0 + 0x420, HVA_BASE + GB + 0x20 * 4096, RWX);
	maps(G0 + 0x421, HVA_BASE + GB + 0x21 * 4096, RWX);
}

/*
 * 2. The env's opt-out (no block_stable) is honoured: the host is asked on
 * every fault. Catches: s2_fault_cache_fill ignoring pi->block_stable.
 */
static void test_no_block_stable_asks_every_fault(void **state)
{
	(void)state;
	vm(1);
	T.h.no_block_reuse = true;
	t_slot(&T, 0, G0, 0x400, HVA_BASE, 0);
	for (gfn_t g = G0; g < G0 + 0x400; g++)
		FIXED(g, R);
	assert_int_equal(T.h.pfn_lookups, 0x400);
	assert_int_equal(t_stats(T.kvm).faults_fast, 0);
	for (gfn_t g = G0; g < G0 + 0x400; g += 0x3f)
		maps(g, HPA(g), RWX);
}

/*
 * 3. The cached leaf table is unlinked and freed (zap of its 2 MiB and a
 * grace period; later a slot delete and re-add): the next fault in the
 * block installs into the live tables.
 * Catches: s2_fault_fast not comparing zap_gen, or S2_FN(range)
 * (core/mmu_tmpl.h) not calling s2_zap_gen_bump() for zaps: the leaf goes
 * into the freed table (walker: A + 1 unmapped; ASan: heap-use-after-free).
 */
static void test_table_freed_under_cache(void **state)
{
	(void)state;
	filled();
	assert_int_equal(kvm_zap_gfn_range(T.kvm, G0, G0 + 0x200), 2);
	s2_hosted_quiesce(&T.h);
	assert_int_equal(t_stats(T.kvm).cur_table_pages, 0);
	FIXED(A + 1, R);
	maps(A + 1, HPA(A + 1), RWX);
	unmapped(A);
	unmapped(A + 5);
	fast_fault(A + 2, R); /* the cache follows the new table */
	maps(A + 2, HPA(A + 2), RWX);

	assert_int_equal(kvm_delete_memslot(T.kvm, 0), 0);
	t_slot(&T, 0, G0, 0x400, HVA_BASE, 0);
	s2_hosted_quiesce(&T.h);
	FIXED(A + 3, R);
	maps(A + 3, HPA(A + 3), RWX);
	unmapped(A + 1);
	unmapped(A + 2);
	assert_int_equal(t_stats(T.kvm).cur_leaves[1], 1);
}

/*
 * 4. Invalidations of A + 1 only. In progress: A + 1 retries and stays
 * unmapped, A + 2 is fixed. Ended, with the host now read-only (seq moved,
 * nothing in progress): A + 1 maps read-only, not from the stale writable
 * answer; A keeps W.
 * Catches: s2_fault_fast checking only the seq (A + 1 fixed while in
 * progress), or only the in-progress range (A + 1 writable).
 */
static void test_invalidation(void **state)
{
	hva_t s = HPA(A + 1), e = s + 4096;

	(void)state;
	filled();
	assert_int_equal(kvm_mmu_notifier_invalidate_range_start(T.kvm, s, e, true), 0);
	assert_int_equal(fault(A + 1, R), RET_PF_RETRY);
	unmapped(A + 1);
	FIXED(A + 2, R);
	maps(A + 2, HPA(A + 2), RWX);
	T.h.host_readonly = true;
	assert_int_equal(kvm_mmu_notifier_invalidate_range_end(T.kvm, s, e, true), 0);
	FIXED(A + 1, R);
	maps(A + 1, HPA(A + 1), S2_PROT_R);
	assert_false(walk(A + 1).perm & S2_PROT_W);
	maps(A, HPA(A), RWX);
	assert_int_equal(t_stats(T.kvm).faults_retry, 1);
	assert_int_equal(t_stats(T.kvm).cur_leaves[1], 4);
}

/*
 * 5. Memslot updates that leave the cached table linked and the seq alone,
 * so that only memslots_gen says the answer is stale: the slot starts
 * logging (a read fault then maps read-only); a slot is deleted and
 * re-added with another backing, then moved by 8 pages (another slot keeps
 * the leaf table linked): faults map the new hpa, the old gpas are gone.
 * Catches: s2_fault_fast not comparing memslots_gen; a fill that caches in
 * logging slots (a write fault's page left out of the dirty log).
 */
static void test_memslot_generation(void **state)
{
	const hva_t h2 = HVA_BASE + 2 * GB;

	(void)state;
	filled();
	assert_int_equal(kvm_set_memslot_flags(T.kvm, 0, KVM_MEM_LOG_DIRTY_PAGES), 0);
	FIXED(A + 1, R);
	maps(A + 1, HPA(A + 1), S2_PROT_R);
	assert_false(walk(A + 1).perm & S2_PROT_W);
	uint64_t lookups = T.h.pfn_lookups, bm[0x400 / 64] = { 0 };
	FIXED(A + 2, R); /* logging slots stay off the fast path */
	FIXED(A + 3, W);
	FIXED(A + 4, W);
	assert_int_equal(T.h.pfn_lookups, lookups + 3);
	assert_int_equal(kvm_get_dirty_log(T.kvm, 0, bm), 1);
	assert_true(bm[0] == (3ull << (A + 3 - G0)));
	t_vm_fini(&T);

	vm(1);
	t_slot(&T, 0, G0, 0x100, HVA_BASE, 0);
	t_slot(&T, 1, G0 + 0x180, 0x80, HVA_BASE + GB, 0); /* same leaf table */
	FIXED(G0 + 0x1c0, R);
	FIXED(A, R);
	fast_fault(A + 5, R);
	assert_int_equal(kvm_delete_memslot(T.kvm, 0), 0);
	t_slot(&T, 0, G0, 0x100, h2, 0);
	unmapped(A);
	FIXED(A + 1, R);
	maps(A + 1, h2 + ((A + 1 - G0) << 12), RWX);
	fast_fault(A + 2, R);
	assert_int_equal(kvm_move_memslot(T.kvm, 0, G0 + 8), 0);
	unmapped(A + 1);
	unmapped(A + 2);
	FIXED(A + 3, R);
	maps(A + 3, h2 + ((A + 3 - (G0 + 8)) << 12), RWX);
	assert_int_equal(fault(G0, R), RET_PF_EMULATE_MMIO);
	unmapped(G0);
	maps(G0 + 0x1c0, HVA_BASE + GB + 0x40 * 4096, RWX);
	assert_int_equal(t_stats(T.kvm).cur_leaves[1], 2);
}

/*
 * 6. The cached range is clipped to the slot and to the leaf table. In one
 * table, slot 0 [G0, +0x80) and slot 1 [G0 + 0x100, +0x80), each inside a
 * 1 GiB host block that reaches over the gap and the other slot; then a
 * gfn of the cached host block in the next leaf table.
 * Catches: s2_fault_cache_fill not clipping hi or lo to the slot (the gap
 * mapped, a slot mapped with the other's backing), or hi to the table's
 * span (A + 0x201 written past the cached table: walker: unmapped; ASan:
 * heap-buffer-overflow).
 */
static void test_cache_clipped(void **state)
{
	const hva_t h1 = HVA_BASE + GB + 0x100 * 4096;

	(void)state;
	vm(1);
	t_slot(&T, 0, G0, 0x80, HVA_BASE, 0);
	t_slot(&T, 1, G0 + 0x100, 0x80, h1, 0);
	FIXED(G0 + 0x10, R);
	fast_fault(G0 + 0x11, R);
	assert_int_equal(fault(G0 + 0x90, R), RET_PF_EMULATE_MMIO);
	FIXED(G0 + 0x110, R);
	maps(G0 + 0x110, h1 + 0x10 * 4096, RWX);
	fast_fault(G0 + 0x111, R);
	assert_int_equal(fault(G0 + 0x90, R), RET_PF_EMULATE_MMIO);
	unmapped(G0 + 0x90);
	FIXED(G0 + 0x20, R);
	maps(G0 + 0x20, HPA(G0 + 0x20), RWX);
	t_vm_fini(&T);

	filled();
	FIXED(A + 0x201, R);
	maps(A + 0x201, HPA(A + 0x201), RWX);
	unmapped(A + 1);
	fast_fault(A + 0x202, R);
	maps(A + 0x202, HPA(A + 0x202), RWX);
	unmapped(A + 2);
}

/*
 * 7. The cache answers only faults of its access: a write after a read gets
 * the write fault's leaf (writable and dirty), a read after a write the read
 * fault's (clean), as the full path makes them in another table.
 * Catches: s2_fault_fast not comparing access with fc->access.
 */
static void test_access_key(void **state)
{
	(void)state;
	vm(1);
	t_slot(&T, 0, G0, 0x400, HVA_BASE, 0);
	FIXED(G0 + 0x300, W);
	struct ref_xlate xw = walk(G0 + 0x300);
	FIXED(G0 + 0x280, R);
	struct ref_xlate xr = walk(G0 + 0x280);
	assert_true((xw.perm & RW) == RW && xw.dirty);
	assert_true((xr.perm & RW) == RW && !xr.dirty);

	FIXED(A, R);
	FIXED(A + 1, W);
	fast_fault(A + 2, W);
	FIXED(A + 3, R);
	fast_fault(A + 4, R);
	same_leaf_state(A, &xr);
	same_leaf_state(A + 1, &xw);
	same_leaf_state(A + 2, &xw);
	same_leaf_state(A + 3, &xr);
	same_leaf_state(A + 4, &xr);
	for (gfn_t g = A; g <= A + 4; g++)
		maps(g, HPA(g), RW);
}

/*
 * 8. Write tracking begun after the cache was filled: a read fault on a
 * tracked gfn maps it read-only, a write fault returns WRITE_TRACKED.
 * Catches: s2_fault_fast not checking kvm->dirty.write_track.
 */
static void test_write_tracking(void **state)
{
	struct s2_mapping m;

	(void)state;
	filled();
	assert_int_equal(kvm_write_track_add_gfn(T.kvm, A + 1), 0);
	FIXED(A + 1, R);
	maps(A + 1, HPA(A + 1), S2_PROT_R);
	assert_false(walk(A + 1).perm & S2_PROT_W);
	assert_int_equal(kvm_mmu_lookup(T.kvm, (A + 1) << 12, &m), 0);
	assert_false(m.prot & S2_PROT_MMU_WRITABLE);

	FIXED(A + 2, W);
	assert_int_equal(kvm_write_track_add_gfn(T.kvm, A + 3), 0);
	assert_int_equal(fault(A + 3, W), RET_PF_WRITE_TRACKED);
	unmapped(A + 3);
	assert_int_equal(kvm_write_track_remove_gfn(T.kvm, A + 1), 0);
	assert_int_equal(kvm_write_track_remove_gfn(T.kvm, A + 3), 0);
	FIXED(A + 3, W);
	maps(A + 3, HPA(A + 3), RW);
}

/*
 * 8b. A read fault on a write-tracked gfn keeps no answer for the block:
 * once tracking ends, the block's other gfns map as the full path maps them
 * (writable), not with the tracked gfn's cut permissions.
 * Catches: s2_fault_full filling the cache while write_track is set.
 */
static void test_write_tracked_fault_fills_nothing(void **state)
{
	(void)state;
	vm(1);
	t_slot(&T, 0, G0, 0x400, HVA_BASE, 0);
	assert_int_equal(kvm_write_track_add_gfn(T.kvm, A + 1), 0);
	FIXED(A + 1, R);
	assert_false(walk(A + 1).perm & S2_PROT_W);
	assert_int_equal(kvm_write_track_remove_gfn(T.kvm, A + 1), 0);
	FIXED(A + 2, R);
	maps(A + 2, HPA(A + 2), RWX);
	fast_fault(A + 3, R); /* and that full fault filled it */
	maps(A + 3, HPA(A + 3), RWX);
}

/*
 * 8c. A zap that leaves the cached table linked still ends the cached host
 * answer: the next fault in the block asks the host again (an embedder
 * zaps a range to have its memory type or permissions recomputed).
 * Catches: s2_zap_range_locked not bumping zap_gen (the refault would take
 * the fast path with the old answer and no host lookup).
 */
static void test_zap_asks_host_again(void **state)
{
	(void)state;
	filled();
	uint64_t lookups = T.h.pfn_lookups, fast = t_stats(T.kvm).faults_fast;

	assert_int_equal(kvm_zap_gfn_range(T.kvm, A + 5, A + 6), 1);
	maps(A, HPA(A), RWX); /* the table stays */
	FIXED(A + 5, R);
	assert_int_equal(T.h.pfn_lookups, lookups + 1);
	assert_int_equal(t_stats(T.kvm).faults_fast, fast);
	maps(A + 5, HPA(A + 5), RWX);
	fast_fault(A + 6, R);
}

/*
 * 9. A + 1 already mapped by vcpu 1: vcpu 0's fault on it, inside its
 * cached block, is spurious, counted so, and changes nothing.
 * Catches: s2_fault_fast claiming FIXED when its compare-and-exchange
 * fails, or storing over the entry without comparing.
 */
static void test_present_entry_is_spurious(void **state)
{
	struct kvm_vcpu *v1;

	(void)state;
	vm(1);
	assert_int_equal(kvm_vcpu_create(T.kvm, 1, &v1), 0);
	t_slot(&T, 0, G0, 0x400, HVA_BASE, 0);
	assert_int_equal(kvm_tdp_page_fault(v1, (A + 1) << 12, W), RET_PF_FIXED);
	struct ref_xlate x1 = walk(A + 1);
	FIXED(A, R);
	fast_fault(A + 5, R);
	uint64_t h = t_tables_hash(T.kvm);
	assert_int_equal(fault(A + 1, R), RET_PF_SPURIOUS);
	assert_true(h == t_tables_hash(T.kvm));
	same_leaf_state(A + 1, &x1);
	struct kvm_mmu_stats s = t_stats(T.kvm);
	assert_int_equal(s.faults, 4);
	assert_int_equal(s.faults_fixed, 3);
	assert_int_equal(s.faults_fast, 1);
	assert_int_equal(s.faults_spurious, 1);
	assert_int_equal(s.cur_leaves[1], 3);
}

/* make_leaf(hpa + k pages) == make_leaf(hpa) + k * step over the aligned
 * block of @pages pages at @base: every k of a 2 MiB block, every 509th and
 * the last of a 1 GiB one. */
static void check_block(const struct kvm *kvm, hpa_t base, uint64_t pages, unsigned prot,
			unsigned mt)
{
	const struct s2_fmt_cfg *c = kvm_fmt_cfg(kvm);
	s2_pte_t l0 = kvm->ops->make_leaf(c, 1, base, prot, mt);
	s2_pte_t step = kvm->ops->make_leaf(c, 1, base + 4096, prot, mt) - l0;
	uint64_t stride = pages > 512 ? 509 : 1;

	assert_true(step != 0);
	for (uint64_t k = 0; k < pages;
	     k = k + stride >= pages && k != pages - 1 ? pages - 1 : k + stride) {
		s2_pte_t got = kvm->ops->make_leaf(c, 1, base + k * 4096, prot, mt);

		if (got != l0 + k * step)
			fail_msg("[%s] flags %#x hpa %#llx + %llu pages prot %#x mt %#x: %#llx, "
				 "linear %#llx",
				 TEST_FMT_NAME, c->flags, (unsigned long long)base,
				 (unsigned long long)k, prot, mt, (unsigned long long)got,
				 (unsigned long long)(l0 + k * step));
	}
}

/*
 * 10. What the fill relies on: inside an aligned host block the 4 KiB leaf
 * is linear in the page index, for several prots and every memory type,
 * 2 MiB and 1 GiB blocks low and up to the pa limit, in several
 * configurations (arm64 also 52-bit LPA2: OA[51:50] in bits 9:8).
 * Catches a leaf encoding that is not linear (e.g. EPT's make_leaf masking
 * hpa with bit 21 dropped).
 */
static void test_leaf_linear_in_block(void **state)
{
	static const unsigned prots[] = {
		S2_PROT_R,
		S2_PROT_X,
		S2_PROT_R | S2_PROT_XU | S2_PROT_ACCESSED,
		S2_PROT_RWX | S2_PROT_ACCESSED | S2_PROT_HOST_WRITABLE | S2_PROT_MMU_WRITABLE,
		S2_PROT_ALL,
	};
	unsigned flags[3] = { t_default_params(TEST_FMT).fmt_flags }, gpa_bits[3] = { 48 };
	unsigned n = 1;

	(void)state;
	if (TEST_FMT == S2_FMT_X86_EPT)
		flags[n++] = S2_FMTF_AD | S2_FMTF_MBEC | S2_FMTF_SUPPRESS_VE;
	if (TEST_FMT == S2_FMT_ARM64_S2) {
		flags[n++] = S2_FMTF_AD | S2_FMTF_HD | S2_FMTF_FWB | S2_FMTF_XNX;
		flags[n] = S2_FMTF_AD | S2_FMTF_FWB | S2_FMTF_LPA2;
		gpa_bits[n++] = 52;
	}
	if (TEST_FMT == S2_FMT_RISCV_G)
		flags[n++] = S2_FMTF_PBMT;
	for (unsigned i = 0; i < n; i++) {
		struct kvm_vm_params p = t_default_params(TEST_FMT);

		p.fmt_flags = flags[i];
		if (TEST_FMT != S2_FMT_RISCV_G)
			p.gpa_bits = gpa_bits[i] ? gpa_bits[i] : 48;
		t_vm_init(&T, TEST_FMT, &p);
		uint64_t top = 1ull << kvm_fmt_cfg(T.kvm)->pa_bits;
		const hpa_t base[] = { 0,  2 * MB,  0x123400000ull, top / 2 - 2 * MB, top - 2 * MB,
				       GB, top - GB };
		for (unsigned pi = 0; pi < sizeof(prots) / sizeof(prots[0]); pi++)
			for (unsigned mt = 0; mt < 2 * S2_MT_NR; mt++)
				for (unsigned b = 0; b < sizeof(base) / sizeof(base[0]); b++)
					check_block(
						T.kvm, base[b], b < 5 ? 512 : 1u << 18, prots[pi],
						(mt % S2_MT_NR) |
							(mt >= S2_MT_NR ? S2_MT_IGNORE_PAT : 0));
		t_vm_fini(&T);
	}
}

static int (*host_gfn_to_pfn)(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, bool write,
			      struct s2_pfn_info *out);
static uint64_t pfn_delta;

/* The hosted host with every pfn moved by pfn_delta: blocks stay
 * contiguous (block_stable holds) but are no longer aligned. */
static int shifted_gfn_to_pfn(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, bool write,
			      struct s2_pfn_info *out)
{
	int r = host_gfn_to_pfn(ctx, slot, gfn, write, out);

	out->pfn += pfn_delta;
	return r;
}

/* A host block whose hpas cross @boundary at G0 + 0x100 (inside the first
 * leaf table): the pages on both sides map right (walked with the VM's
 * output size, 52 bits with LPA2), or fail as the full path fails them. */
static void straddle(hpa_t boundary, bool past_is_backed)
{
	host_gfn_to_pfn = T.h.ops.gfn_to_pfn;
	T.h.ops.gfn_to_pfn = shifted_gfn_to_pfn;
	pfn_delta = (boundary >> 12) - 0x100 - (HVA_BASE >> 12);
	t_slot(&T, 0, G0, 0x400, HVA_BASE, 0);
	for (gfn_t g = G0 + 0xfe; g < G0 + 0x103; g++) {
		hpa_t hpa = boundary + ((g - G0 - 0x100) << 12);
		int r = fault(g, R);
		struct ref_xlate x = { 0 };

		if (hpa >= boundary && !past_is_backed) {
			assert_int_equal(r, -EFAULT);
			unmapped(g);
			continue;
		}
		assert_int_equal(r, RET_PF_FIXED);
#if S2_ENABLED(CONFIG_S2_FMT_ARM64_S2)
		uint64_t vtcr, vttbr;

		if (TEST_FMT == S2_FMT_ARM64_S2) {
			assert_int_equal(kvm_arm64_vtcr(T.kvm, kvm_fmt_cfg(T.kvm)->pa_bits, &vtcr),
					 0);
			assert_int_equal(kvm_arm64_vttbr(T.kvm, &vttbr), 0);
			ref_arm64_walk(vtcr, vttbr, REF_A64_FWB, g << 12, &x);
		} else
#endif
			x = walk(g);
		if (x.fault || x.hpa != hpa || x.level != 1 || !(x.perm & S2_PROT_W))
			fail_msg("[%s] gfn %#llx: fault %d hpa %#llx level %d, want %#llx",
				 TEST_FMT_NAME, (unsigned long long)g, x.fault,
				 (unsigned long long)x.hpa, x.level, (unsigned long long)hpa);
	}
	T.h.ops.gfn_to_pfn = host_gfn_to_pfn;
}

/*
 * 10b. A host block that is contiguous but not aligned, crossing the
 * format's output-address limit (arm64 LPA2 also 2^50, where the address
 * goes on in descriptor bits 9:8): the fill sees that the block's last leaf
 * is not linear and keeps nothing, so each page is decided by the full path.
 * Catches: s2_fault_cache_fill without its end check (the pages past the
 * boundary fixed with a wrapped or mis-encoded address).
 */
static void test_fill_checks_block_ends(void **state)
{
	(void)state;
	vm(1);
	straddle(1ull << kvm_fmt_cfg(T.kvm)->pa_bits, false);
	t_vm_fini(&T);
	if (TEST_FMT == S2_FMT_ARM64_S2) {
		struct kvm_vm_params p = params(1);

		p.gpa_bits = 52;
		p.fmt_flags = S2_FMTF_AD | S2_FMTF_FWB | S2_FMTF_LPA2;
		t_vm_init(&T, TEST_FMT, &p);
		straddle(1ull << 50, true);
	}
}

/*
 * 11. The env without membarrier: the fenced read side of mmu_lock serves
 * the fast path just as well.
 * Catches: kvm_create_vm setting light_read without membarrier (a NULL
 * call in s2_mmu_write_lock), a fast path that works only with light_read.
 */
static void test_without_membarrier(void **state)
{
	struct kvm_vm_params p = params(1);

	(void)state;
	memset(&T, 0, sizeof(T));
	s2_hosted_init(&T.h);
	T.h.quiet = true;
	T.h.ops.membarrier = NULL;
	T.fmt = TEST_FMT;
	p.env = &T.h.env;
	assert_int_equal(kvm_create_vm(&p, &T.kvm), 0);
	assert_int_equal(kvm_vcpu_create(T.kvm, 0, &T.vcpu), 0);
	assert_false(T.kvm->light_read);
	sequential(2048, HVA_BASE);
	/* A writer takes mmu_lock (no membarrier to call), then a fault. */
	assert_int_equal(kvm_zap_gfn_range(T.kvm, G0 + 0x7ff, G0 + 0x800), 1);
	unmapped(G0 + 0x7ff);
	FIXED(G0 + 0x7ff, R);
	maps(G0 + 0x7ff, HPA(G0 + 0x7ff), RWX);
}

/*
 * 11b. The write side owes env->membarrier only once a vcpu may read
 * fence-free: a VM whose vcpus never took the read side (a static
 * partitioning hypervisor mapping ranges at creation) takes mmu_lock for
 * write without the barrier; a vcpu's first fault publishes it (taking
 * that read side fenced), and every write side after it calls the
 * barrier, for faults on both paths (the fast one only ever runs after a
 * full one). Catches: the writer calling the barrier regardless (counted
 * before any fault), a vcpu never publishing (no barrier after a fault:
 * its fence-free reads would go unseen), publishing by another vcpu
 * counting for this one.
 */
static unsigned long barriers;
static void (*real_membarrier)(void *ctx);
static void counting_membarrier(void *ctx)
{
	barriers++;
	real_membarrier(ctx);
}

static void test_membarrier_after_first_reader(void **state)
{
	struct kvm_vcpu *v1;
	struct s2_mapping m;

	(void)state;
	vm(1);
	if (!T.h.ops.membarrier)
		skip(); /* the kernel refused the registration: nothing to count */
	real_membarrier = T.h.ops.membarrier;
	T.h.ops.membarrier = counting_membarrier;
	barriers = 0;
	assert_int_equal(kvm_vcpu_create(T.kvm, 1, &v1), 0);
	t_slot(&T, 0, G0, 0x400, HVA_BASE, 0);
	assert_int_equal(kvm_mmu_map_range(T.vcpu, G0 << 12, HVA_BASE, 0x4000,
					   S2_PROT_R | S2_PROT_W, S2_MT_WB),
			 0);
	assert_int_equal(kvm_zap_gfn_range(T.kvm, G0, G0 + 1), 1);
	assert_int_equal(kvm_mmu_lookup(T.kvm, (G0 + 1) << 12, &m), 0);
	assert_true(m.present);
	assert_int_equal(barriers, 0);
	assert_false(T.vcpu->light_ok);
	/* vcpu 0's first fault: fenced, and published. */
	FIXED(G0 + 0x200, R);
	assert_true(T.vcpu->light_ok);
	assert_false(v1->light_ok);
	assert_int_equal(barriers, 0);
	assert_int_equal(kvm_zap_gfn_range(T.kvm, G0 + 0x200, G0 + 0x201), 1);
	assert_int_equal(barriers, 1);
	FIXED(G0 + 0x201, R); /* the fence-free read side now */
	assert_int_equal(kvm_zap_gfn_range(T.kvm, G0 + 0x201, G0 + 0x202), 1);
	assert_int_equal(barriers, 2);
	T.h.ops.membarrier = real_membarrier;
}

/*
 * 12. arm64 without FWB: a fresh leaf owes a cache clean, so every fault
 * takes the full path and cleans its page; the others never clean and the
 * fast path serves. Catches: map() (core/mmu_tmpl.h) handing f->ptep to
 * the fill even when fmt_leaf_needs_clean() (arm64: 1 clean, 1 lookup).
 */
static void test_no_fast_path_without_fwb(void **state)
{
	struct kvm_vm_params p = t_default_params(TEST_FMT);
	const bool a64 = TEST_FMT == S2_FMT_ARM64_S2;

	(void)state;
	p.max_leaf_level = 1;
	t_vm_init(&T, TEST_FMT, &p);
	t_slot(&T, 0, G0, 0x200, HVA_BASE, 0);
	for (gfn_t g = G0; g < G0 + 64; g++) {
		FIXED(g, R);
		maps(g, HPA(g), RWX);
		assert_int_equal(T.h.dcache_cleans, a64 ? g - G0 + 1 : 0);
		if (a64) {
			assert_int_equal(T.h.last_clean_pa, HPA(g));
			assert_int_equal(T.h.last_clean_size, 4096);
		}
	}
	assert_int_equal(T.h.pfn_lookups, a64 ? 64 : 1);
	assert_int_equal(t_stats(T.kvm).faults_fast, a64 ? 0 : 63);
}

/*
 * 17. Huge leaves: @n leaves at @level in one slot, the host mapping
 * @host_level blocks (block_stable), one read fault per leaf at a different
 * offset inside each: each leaf at its level and hpa, the host asked once
 * for the leaf table (the fast path serves the rest), the leaves counted at
 * their level.
 * Catches: a fill that refuses huge leaves (lookups); the leaf index or the
 * leaf taken per page rather than per leaf (hpa, level, or the index past
 * the table: ASan); fast-path leaves counted at level 1 (cur_leaves).
 */
static void huge_sequential(int level, int host_level, uint64_t n)
{
	uint64_t lp = 1ull << (9 * (level - 1));

	vm((unsigned)level);
	T.h.host_level = host_level;
	t_slot(&T, 0, G0, n * lp, HVA_BASE, 0);
	for (uint64_t i = 0; i < n; i++)
		FIXED(G0 + i * lp + (i * 37) % lp, R);
	for (uint64_t i = 0; i < n; i++) {
		gfn_t g = G0 + i * lp + (i * 11) % lp;

		t_assert_maps(T.kvm, g << 12, HPA(g), level, RWX);
	}
	assert_int_equal(T.h.pfn_lookups, 1);
	struct kvm_mmu_stats s = t_stats(T.kvm);
	assert_int_equal(s.faults, n);
	assert_int_equal(s.faults_fast, n - 1);
	assert_int_equal(s.cur_leaves[level], n);
	for (int l = 1; l <= 4; l++)
		if (l != level)
			assert_int_equal(s.cur_leaves[l], 0);
	t_vm_fini(&T);
}

static void test_huge_sequential(void **state)
{
	(void)state;
	huge_sequential(2, 3, 64); /* 2 MiB leaves, 1 GiB host pages */
	huge_sequential(3, 4, 6);  /* 1 GiB leaves, 512 GiB host blocks */
}

/*
 * 18. An invalidation of one page inside a 2 MiB leaf the fast path would
 * install: a fault at another gfn of that leaf retries while it runs (the
 * leaf would map the page being invalidated); after it ends the fault asks
 * the host again (the cache was filled while the invalidation ran, by a
 * fault on the leaf before). A slot whose end is not 2 MiB aligned: its tail is mapped
 * with 4 KiB leaves by the full path, never with a cached huge leaf.
 * Catches: the fast path checking the invalidation range over the faulting
 * gfn only (s2_invalidate_retry(..., base, base + 1)); a fill that does not
 * round hi down to whole leaves (the tail's leaf would cover gfns past the
 * slot).
 */
static void test_huge_invalidation_and_tail(void **state)
{
	const gfn_t B = G0 + 0x200; /* the second 2 MiB leaf */
	hva_t s = HPA(B + 0x100), e = s + 4096;

	(void)state;
	vm(2);
	t_slot(&T, 0, G0, 0x700, HVA_BASE, 0);
	/* The cache is filled while the invalidation runs (its seq then
	 * moves only at the end): only the range says B is off limits. */
	assert_int_equal(kvm_mmu_notifier_invalidate_range_start(T.kvm, s, e, true), 0);
	FIXED(G0 + 3, R);
	t_assert_maps(T.kvm, (G0 + 3) << 12, HPA(G0 + 3), 2, RWX);
	assert_int_equal(fault(B + 5, R), RET_PF_RETRY);
	unmapped(B + 5);
	assert_int_equal(kvm_mmu_notifier_invalidate_range_end(T.kvm, s, e, true), 0);
	FIXED(B + 5, R);
	t_assert_maps(T.kvm, (B + 0x100) << 12, HPA(B + 0x100), 2, RWX);
	assert_int_equal(T.h.pfn_lookups, 3); /* the retry asked too */
	fast_fault(G0 + 0x5ff, R);	      /* refilled: [G0, G0 + 0x600) */
	t_assert_maps(T.kvm, (G0 + 0x400) << 12, HPA(G0 + 0x400), 2, RWX);
	FIXED(G0 + 0x6ff, R); /* the tail: 4 KiB */
	t_assert_maps(T.kvm, (G0 + 0x6ff) << 12, HPA(G0 + 0x6ff), 1, RWX);
	assert_int_equal(T.h.pfn_lookups, 4);
	fast_fault(G0 + 0x600, R);
	t_assert_maps(T.kvm, (G0 + 0x600) << 12, HPA(G0 + 0x600), 1, RWX);
	unmapped(G0 + 0x700);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_effective_sequential, teardown),
		cmocka_unit_test_teardown(test_effective_without_cap, teardown),
		cmocka_unit_test_teardown(test_no_block_stable_asks_every_fault, teardown),
		cmocka_unit_test_teardown(test_table_freed_under_cache, teardown),
		cmocka_unit_test_teardown(test_invalidation, teardown),
		cmocka_unit_test_teardown(test_memslot_generation, teardown),
		cmocka_unit_test_teardown(test_cache_clipped, teardown),
		cmocka_unit_test_teardown(test_access_key, teardown),
		cmocka_unit_test_teardown(test_write_tracking, teardown),
		cmocka_unit_test_teardown(test_write_tracked_fault_fills_nothing, teardown),
		cmocka_unit_test_teardown(test_zap_asks_host_again, teardown),
		cmocka_unit_test_teardown(test_present_entry_is_spurious, teardown),
		cmocka_unit_test_teardown(test_leaf_linear_in_block, teardown),
		cmocka_unit_test_teardown(test_fill_checks_block_ends, teardown),
		cmocka_unit_test_teardown(test_without_membarrier, teardown),
		cmocka_unit_test_teardown(test_membarrier_after_first_reader, teardown),
		cmocka_unit_test_teardown(test_no_fast_path_without_fwb, teardown),
		cmocka_unit_test_teardown(test_huge_sequential, teardown),
		cmocka_unit_test_teardown(test_huge_invalidation_and_tail, teardown),
	};

	if (!s2_fmt_supported(TEST_FMT)) {
		print_message("format " TEST_FMT_NAME " not built: skipped\n");
		return 0;
	}
	return cmocka_run_group_tests_name("generic fault fast path [" TEST_FMT_NAME "]", tests,
					   NULL, NULL);
}
