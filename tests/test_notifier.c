// SPDX-License-Identifier: MIT
/*
 * Host-MM notifiers, aging, memory attributes and the invalidation protocol,
 * on every format this build has (x86 EPT, arm64 stage-2, RISC-V G-stage,
 * x86 NPT; a format that is not built is skipped). Mappings are checked with
 * each format's reference walker (tests/ref/), which reads the raw tables
 * from the architectural register value and shares no code with fmt/.
 *
 * The simulated host is remappable: the tests replace the hosted
 * environment's gfn_to_pfn with one that reads a table they change, so an
 * hva's pfn can move (generation per page), a page can disappear, and a
 * huge host mapping can be split. The hosted pfn_hook runs inside that
 * lookup, between the fault's seq snapshot and its install: that is where
 * the interleaving tests run an invalidation.
 */
#include <string.h>

#include "core/kvm_internal.h"
#include "notifier/notifier.h"
#include "tests/lib/testlib.h"

#define MB (1ull << 20)
#define HVA_BASE 0x7f0000000000ull /* 1 GiB aligned */
#define HOST_PAGES (16 * 512)	   /* the remappable window: 32 MiB */
#define FAR_HVA 0x100000000000ull  /* backs no memslot */

static const unsigned RX = S2_PROT_R | S2_PROT_X;
static const unsigned RWX = S2_PROT_R | S2_PROT_W | S2_PROT_X;

static const enum s2_fmt_id FMTS[] = { S2_FMT_X86_EPT, S2_FMT_ARM64_S2, S2_FMT_RISCV_G,
				       S2_FMT_X86_NPT };

/* ---- the remappable host ---- */

static struct host {
	uint8_t gen[HOST_PAGES];	 /* pfn = hva >> 12 ^ gen << 24 */
	uint8_t gone[HOST_PAGES];	 /* no backing: gfn_to_pfn fails */
	uint8_t split[HOST_PAGES / 512]; /* 2 MiB block mapped with 4 KiB pages */
	int level;			 /* host level where not split */
} H;

static kvm_pfn_t host_pfn(hva_t hva)
{
	uint64_t i = (hva - HVA_BASE) >> 12;

	if (hva < HVA_BASE || i >= HOST_PAGES)
		return hva >> 12;
	return (hva >> 12) ^ ((uint64_t)H.gen[i] << 24);
}

static hpa_t host_hpa(hva_t hva)
{
	return (host_pfn(hva) << 12) | (hva & 0xfff);
}

static int host_gfn_to_pfn(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, bool write,
			   struct s2_pfn_info *out)
{
	struct s2_hosted *h = ctx;
	hva_t hva = slot->userspace_addr + ((gfn - slot->base_gfn) << 12);
	uint64_t i = (hva - HVA_BASE) >> 12;
	bool window = hva >= HVA_BASE && i < HOST_PAGES;

	(void)write;
	__atomic_fetch_add(&h->pfn_lookups, 1, __ATOMIC_RELAXED);
	if (window && H.gone[i])
		return -EFAULT;
	out->pfn = host_pfn(hva);
	out->writable = true;
	out->host_level = window ? (H.split[i / 512] ? 1 : H.level) : 1;
	out->memtype = S2_MT_WB;
	if (h->pfn_hook)
		h->pfn_hook(h, slot, gfn);
	return 0;
}

static void host_remap(hva_t start, hva_t end)
{
	for (hva_t a = start; a < end; a += 4096)
		H.gen[(a - HVA_BASE) >> 12]++;
}

/* ---- per-format VM ---- */

static struct tvm T;

static void vm_init(enum s2_fmt_id fmt, unsigned fmt_flags_off)
{
	struct kvm_vm_params p = t_default_params(fmt);

	p.fmt_flags &= ~fmt_flags_off;
	memset(&H, 0, sizeof(H));
	H.level = 1;
	t_vm_init(&T, fmt, &p);
	T.h.ops.gfn_to_pfn = host_gfn_to_pfn;
}

#define FOR_EACH_FMT(f)                                                         \
	for (size_t f##_i = 0; f##_i < sizeof(FMTS) / sizeof(FMTS[0]); f##_i++) \
		for (enum s2_fmt_id f = FMTS[f##_i]; f && s2_fmt_supported(f); f = 0)

static int fault(gfn_t gfn, unsigned acc)
{
	return kvm_tdp_page_fault(T.vcpu, gfn << 12, acc);
}

static hva_t slot_hva(const struct kvm_memory_slot *s, gfn_t gfn)
{
	return s->userspace_addr + ((gfn - s->base_gfn) << 12);
}

static struct kvm_memory_slot add_slot(unsigned id, gfn_t gfn, uint64_t npages, hva_t hva)
{
	struct kvm_memory_slot s = {
		.id = id, .base_gfn = gfn, .npages = npages, .userspace_addr = hva
	};

	assert_int_equal(kvm_set_memslot(T.kvm, &s), 0);
	return s;
}

static void fault_all(const struct kvm_memory_slot *s, gfn_t first, gfn_t end)
{
	for (gfn_t g = first; g < end; g++)
		assert_int_equal(fault(g, S2_ACC_READ | S2_ACC_WRITE), RET_PF_FIXED);
	(void)s;
}

static void assert_mapped_4k(const struct kvm_memory_slot *s, gfn_t g)
{
	t_assert_maps(T.kvm, g << 12, host_hpa(slot_hva(s, g)), 1, S2_PROT_R);
}

static uint64_t flushes(void)
{
	struct kvm_mmu_stats s = t_stats(T.kvm);

	return s.flushes + s.flushes_range;
}

static uint64_t hw_flushes(void)
{
	return T.h.hw_flush_vm + T.h.hw_flush_range;
}

static int start(hva_t s, hva_t e)
{
	return kvm_mmu_notifier_invalidate_range_start(T.kvm, s, e, true);
}

static int end(hva_t s, hva_t e)
{
	return kvm_mmu_notifier_invalidate_range_end(T.kvm, s, e, true);
}

/* ------------------------------------------------------------------------ */

/*
 * invalidate_range_start zaps exactly the gfns behind the hva range, with
 * one flush, and raises the protocol state first; faults in the range retry
 * without installing anything until _end, which bumps the seq, lowers
 * in_progress and flushes nothing; then the new pfn maps.
 */
static void test_invalidate_protocol(void **state)
{
	(void)state;
	FOR_EACH_FMT(fmt)
	{
		vm_init(fmt, 0);
		struct kvm_memory_slot s = add_slot(0, 0x1000, 512, HVA_BASE);
		fault_all(&s, 0x1000, 0x1010);
		uint64_t seq = kvm_mmu_invalidate_seq(T.kvm), f0 = flushes(), hw0 = hw_flushes();

		assert_int_equal(start(slot_hva(&s, 0x1004), slot_hva(&s, 0x1008)), 0);
		assert_int_equal(flushes(), f0 + 1);
		assert_true(hw_flushes() <= hw0 + 1);
		assert_int_equal(kvm_mmu_invalidate_in_progress(T.kvm), 1);
		assert_int_equal(T.kvm->mmu_invalidate_range_start, 0x1004);
		assert_int_equal(T.kvm->mmu_invalidate_range_end, 0x1008);
		assert_int_equal(t_stats(T.kvm).zapped_leaves, 4);
		for (gfn_t g = 0x1000; g < 0x1010; g++) {
			if (g >= 0x1004 && g < 0x1008)
				t_assert_unmapped(T.kvm, g << 12);
			else
				assert_mapped_4k(&s, g);
		}
		/* In range: retry, nothing installed. Outside: business as usual. */
		assert_int_equal(fault(0x1005, S2_ACC_READ), RET_PF_RETRY);
		t_assert_unmapped(T.kvm, 0x1005ull << 12);
		assert_int_equal(fault(0x1009, S2_ACC_READ), RET_PF_SPURIOUS);
		assert_int_equal(fault(0x1020, S2_ACC_READ), RET_PF_FIXED);

		host_remap(slot_hva(&s, 0x1004), slot_hva(&s, 0x1008));
		assert_int_equal(end(slot_hva(&s, 0x1004), slot_hva(&s, 0x1008)), 0);
		assert_int_equal(kvm_mmu_invalidate_in_progress(T.kvm), 0);
		assert_int_equal(kvm_mmu_invalidate_seq(T.kvm), seq + 1);
		assert_int_equal(flushes(), f0 + 1);

		assert_int_equal(fault(0x1005, S2_ACC_READ), RET_PF_FIXED);
		assert_mapped_4k(&s, 0x1005);
		assert_true(host_pfn(slot_hva(&s, 0x1005)) != slot_hva(&s, 0x1005) >> 12);
		t_vm_fini(&T);
	}
}

/* What the pfn hook does while a fault is between its lookup and install. */
enum hook_mode {
	HOOK_START_END,	 /* a whole invalidation (with remap) of the fault's hva */
	HOOK_START_ONLY, /* start and remap; _end comes after the fault */
	HOOK_OTHER_SLOT, /* a whole invalidation of another memslot's hva */
	HOOK_NO_SLOT,	 /* a whole invalidation of hva no memslot maps */
	HOOK_ATTRS,	 /* a private/shared conversion of the fault's gfn */
};

static struct hook_ctl {
	enum hook_mode mode;
	hva_t s, e; /* the range it invalidates */
	gfn_t gfn;  /* for HOOK_ATTRS */
	int runs;
} HK;

static void pfn_hook(struct s2_hosted *h, const struct kvm_memory_slot *slot, gfn_t gfn)
{
	(void)slot;
	(void)gfn;
	if (HK.runs++)
		return; /* only the first lookup races */
	if (HK.mode == HOOK_ATTRS) {
		assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, HK.gfn, HK.gfn + 1,
							   KVM_MEMORY_ATTRIBUTE_PRIVATE),
				 0);
		return;
	}
	assert_int_equal(start(HK.s, HK.e), 0);
	if (HK.mode != HOOK_OTHER_SLOT && HK.mode != HOOK_NO_SLOT)
		host_remap(HK.s, HK.e);
	if (HK.mode != HOOK_START_ONLY)
		assert_int_equal(end(HK.s, HK.e), 0);
	(void)h;
}

/*
 * The interleavings, run inside the fault's pfn lookup: the stale pfn the
 * lookup returned is never installed, and the retried fault installs the
 * new one. An invalidation of memory no memslot maps does not make the
 * fault retry.
 */
static void test_interleave_lookup_and_install(void **state)
{
	static const struct {
		enum hook_mode mode;
		int want;
	} cases[] = {
		{ HOOK_START_END, RET_PF_RETRY },  { HOOK_START_ONLY, RET_PF_RETRY },
		{ HOOK_OTHER_SLOT, RET_PF_RETRY }, { HOOK_NO_SLOT, RET_PF_FIXED },
		{ HOOK_ATTRS, RET_PF_RETRY },
	};

	(void)state;
	FOR_EACH_FMT(fmt)
	{
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			vm_init(fmt, 0);
			struct kvm_memory_slot s = add_slot(0, 0x1000, 512, HVA_BASE);
			struct kvm_memory_slot o = add_slot(1, 0x2000, 512, HVA_BASE + 2 * MB);
			gfn_t g = 0x1042;
			hpa_t stale = host_hpa(slot_hva(&s, g));

			HK = (struct hook_ctl){ .mode = cases[i].mode, .gfn = g };
			HK.s = slot_hva(&s, g);
			HK.e = HK.s + 4096;
			if (cases[i].mode == HOOK_OTHER_SLOT)
				HK.s = slot_hva(&o, 0x2001), HK.e = HK.s + 4096;
			if (cases[i].mode == HOOK_NO_SLOT)
				HK.s = FAR_HVA, HK.e = FAR_HVA + 4096;
			T.h.pfn_hook = pfn_hook;

			int r = fault(g, S2_ACC_READ);
			if (r != cases[i].want)
				fail_msg("[%s] case %zu: fault %d, want %d", s2_fmt_name(fmt), i, r,
					 cases[i].want);
			assert_int_equal(HK.runs, 1);
			if (r == RET_PF_RETRY) {
				t_assert_unmapped(T.kvm, g << 12);
				assert_int_equal(t_stats(T.kvm).faults_retry, 1);
			}
			if (cases[i].mode == HOOK_START_ONLY) {
				/* Still in progress: retries again, then _end. */
				assert_int_equal(fault(g, S2_ACC_READ), RET_PF_RETRY);
				assert_int_equal(end(HK.s, HK.e), 0);
			}
			if (cases[i].mode == HOOK_ATTRS) {
				/* The shared mapping of a private gfn is the
				 * embedder's call (no private faults yet): the
				 * retried fault maps the same pfn again. */
				assert_int_equal(kvm_get_memory_attributes(T.kvm, g),
						 KVM_MEMORY_ATTRIBUTE_PRIVATE);
			}
			if (r == RET_PF_RETRY)
				assert_int_equal(fault(g, S2_ACC_READ), RET_PF_FIXED);
			hpa_t now = host_hpa(slot_hva(&s, g));
			t_assert_maps(T.kvm, g << 12, now, 1, S2_PROT_R);
			if (cases[i].mode == HOOK_START_END || cases[i].mode == HOOK_START_ONLY)
				assert_true(now != stale);
			T.h.pfn_hook = NULL;
			t_vm_fini(&T);
		}
	}
}

/*
 * A huge leaf a fault would install must not span a page under
 * invalidation, even when the fault's own gfn is outside the range.
 */
static void test_interleave_huge_leaf_spans_invalidated_page(void **state)
{
	(void)state;
	FOR_EACH_FMT(fmt)
	{
		vm_init(fmt, 0);
		H.level = 2;
		struct kvm_memory_slot s = add_slot(0, 0x200, 512, HVA_BASE);

		HK = (struct hook_ctl){ .mode = HOOK_START_ONLY };
		HK.s = slot_hva(&s, 0x3f0);
		HK.e = HK.s + 4096;
		T.h.pfn_hook = pfn_hook;
		/* gfn 0x210 is outside [0x3f0, 0x3f1), its 2 MiB leaf is not. */
		assert_int_equal(fault(0x210, S2_ACC_READ), RET_PF_RETRY);
		t_assert_unmapped(T.kvm, 0x210ull << 12);
		T.h.pfn_hook = NULL;
		/* The host split the block and dropped the page. */
		H.split[0] = 1;
		H.gone[0x1f0] = 1;
		assert_int_equal(end(HK.s, HK.e), 0);
		assert_int_equal(fault(0x210, S2_ACC_READ), RET_PF_FIXED);
		t_assert_maps(T.kvm, 0x210ull << 12, host_hpa(slot_hva(&s, 0x210)), 1, S2_PROT_R);
		assert_int_equal(fault(0x3f0, S2_ACC_READ), -EFAULT);
		t_assert_unmapped(T.kvm, 0x3f0ull << 12);
		t_vm_fini(&T);
	}
}

/*
 * One range over three memslots with contiguous hvas zaps the covered part
 * of each (the first and last partly), flushes once, and records one
 * in-progress gfn range spanning all three.
 */
static void test_range_over_several_memslots(void **state)
{
	(void)state;
	FOR_EACH_FMT(fmt)
	{
		vm_init(fmt, 0);
		struct kvm_memory_slot a = add_slot(0, 0x1000, 64, HVA_BASE);
		struct kvm_memory_slot b = add_slot(1, 0x3000, 64, HVA_BASE + 64 * 4096);
		struct kvm_memory_slot c = add_slot(2, 0x2000, 64, HVA_BASE + 128 * 4096);
		fault_all(&a, 0x1000, 0x1040);
		fault_all(&b, 0x3000, 0x3040);
		fault_all(&c, 0x2000, 0x2040);
		uint64_t f0 = flushes();

		assert_int_equal(start(slot_hva(&a, 0x1020), slot_hva(&c, 0x2020)), 0);
		assert_int_equal(flushes(), f0 + 1);
		assert_int_equal(t_stats(T.kvm).zapped_leaves, 32 + 64 + 32);
		for (gfn_t i = 0; i < 64; i++) {
			if (i < 32) {
				assert_mapped_4k(&a, 0x1000 + i);
				t_assert_unmapped(T.kvm, (0x2000 + i) << 12);
			} else {
				t_assert_unmapped(T.kvm, (0x1000 + i) << 12);
				assert_mapped_4k(&c, 0x2000 + i);
			}
			t_assert_unmapped(T.kvm, (0x3000 + i) << 12);
		}
		assert_int_equal(T.kvm->mmu_invalidate_range_start, 0x1020);
		assert_int_equal(T.kvm->mmu_invalidate_range_end, 0x3040);
		assert_int_equal(end(slot_hva(&a, 0x1020), slot_hva(&c, 0x2020)), 0);
		assert_int_equal(flushes(), f0 + 1);
		t_vm_fini(&T);
	}
}

/* Partial overlaps: a range that starts before a memslot or inside a page,
 * or ends inside a page, covers every page it touches, and no other. */
static void test_partial_overlaps(void **state)
{
	(void)state;
	FOR_EACH_FMT(fmt)
	{
		vm_init(fmt, 0);
		struct kvm_memory_slot s = add_slot(0, 0x1000, 16, HVA_BASE + 16 * 4096);
		fault_all(&s, 0x1000, 0x1010);

		/* Unaligned inside: [page 2 + 0x800, page 5 + 1) touches 2..5. */
		assert_int_equal(start(slot_hva(&s, 0x1002) + 0x800, slot_hva(&s, 0x1005) + 1), 0);
		assert_int_equal(end(slot_hva(&s, 0x1002) + 0x800, slot_hva(&s, 0x1005) + 1), 0);
		for (gfn_t g = 0x1000; g < 0x1010; g++)
			if (g >= 0x1002 && g <= 0x1005)
				t_assert_unmapped(T.kvm, g << 12);
			else
				assert_mapped_4k(&s, g);
		/* From before the slot into its first page. */
		assert_int_equal(start(HVA_BASE, s.userspace_addr + 1), 0);
		assert_int_equal(end(HVA_BASE, s.userspace_addr + 1), 0);
		t_assert_unmapped(T.kvm, 0x1000ull << 12);
		assert_mapped_4k(&s, 0x1001);
		/* From the last page to past the end. */
		assert_int_equal(start(slot_hva(&s, 0x100f) + 0xfff, HVA_BASE + 64 * MB), 0);
		assert_int_equal(end(slot_hva(&s, 0x100f) + 0xfff, HVA_BASE + 64 * MB), 0);
		t_assert_unmapped(T.kvm, 0x100full << 12);
		assert_mapped_4k(&s, 0x100e);
		assert_int_equal(t_stats(T.kvm).zapped_leaves, 4 + 1 + 1);
		t_vm_fini(&T);
	}
}

/* Two memslots backed by the same hvas: one invalidation zaps both, with
 * one flush, and faults through either retry. */
static void test_aliased_memslots(void **state)
{
	(void)state;
	FOR_EACH_FMT(fmt)
	{
		vm_init(fmt, 0);
		struct kvm_memory_slot a = add_slot(0, 0x1000, 32, HVA_BASE);
		struct kvm_memory_slot b = add_slot(1, 0x5000, 32, HVA_BASE);
		fault_all(&a, 0x1000, 0x1020);
		fault_all(&b, 0x5000, 0x5020);
		t_assert_maps(T.kvm, 0x1003ull << 12, host_hpa(HVA_BASE + 3 * 4096), 1, RWX);
		t_assert_maps(T.kvm, 0x5003ull << 12, host_hpa(HVA_BASE + 3 * 4096), 1, RWX);
		uint64_t f0 = flushes();

		assert_int_equal(start(HVA_BASE + 3 * 4096, HVA_BASE + 5 * 4096), 0);
		assert_int_equal(flushes(), f0 + 1);
		for (gfn_t i = 0; i < 32; i++) {
			bool gone = i == 3 || i == 4;

			if (gone) {
				t_assert_unmapped(T.kvm, (0x1000 + i) << 12);
				t_assert_unmapped(T.kvm, (0x5000 + i) << 12);
			} else {
				assert_mapped_4k(&a, 0x1000 + i);
				assert_mapped_4k(&b, 0x5000 + i);
			}
		}
		assert_int_equal(fault(0x1003, S2_ACC_READ), RET_PF_RETRY);
		assert_int_equal(fault(0x5004, S2_ACC_READ), RET_PF_RETRY);
		host_remap(HVA_BASE + 3 * 4096, HVA_BASE + 5 * 4096);
		assert_int_equal(end(HVA_BASE + 3 * 4096, HVA_BASE + 5 * 4096), 0);
		assert_int_equal(fault(0x1003, S2_ACC_READ), RET_PF_FIXED);
		assert_int_equal(fault(0x5003, S2_ACC_READ), RET_PF_FIXED);
		t_assert_maps(T.kvm, 0x5003ull << 12, host_hpa(HVA_BASE + 3 * 4096), 1, S2_PROT_R);
		assert_true(host_hpa(HVA_BASE + 3 * 4096) != HVA_BASE + 3 * 4096);
		t_vm_fini(&T);
	}
}

/*
 * Ranges that change nothing: empty, covering no memslot, or covering a
 * memslot with nothing mapped. No table changes, no flush; only a range
 * that covered gfns moves the seq.
 */
static void test_ranges_that_change_nothing(void **state)
{
	(void)state;
	FOR_EACH_FMT(fmt)
	{
		vm_init(fmt, 0);
		struct kvm_memory_slot s = add_slot(0, 0x1000, 64, HVA_BASE);
		add_slot(1, 0x4000, 64, HVA_BASE + MB);
		fault_all(&s, 0x1000, 0x1008);
		uint64_t h = t_tables_hash(T.kvm), seq = kvm_mmu_invalidate_seq(T.kvm);
		uint64_t f0 = flushes(), hw0 = hw_flushes();
		const hva_t ranges[][2] = {
			{ slot_hva(&s, 0x1004), slot_hva(&s, 0x1004) }, /* empty */
			{ FAR_HVA, FAR_HVA + 64 * MB },			/* no memslot */
			{ HVA_BASE + MB, HVA_BASE + MB + 64 * 4096 },	/* nothing mapped */
		};

		for (size_t i = 0; i < 3; i++) {
			assert_int_equal(start(ranges[i][0], ranges[i][1]), 0);
			assert_int_equal(kvm_mmu_invalidate_in_progress(T.kvm), 1);
			/* A fault elsewhere goes on during it. */
			assert_int_equal(fault(0x1000, S2_ACC_READ), RET_PF_SPURIOUS);
			assert_int_equal(end(ranges[i][0], ranges[i][1]), 0);
			assert_int_equal(kvm_mmu_invalidate_in_progress(T.kvm), 0);
			assert_int_equal(
				kvm_mmu_notifier_clear_young(T.kvm, ranges[i][0], ranges[i][1]), 0);
			assert_int_equal(kvm_mmu_notifier_clear_flush_young(T.kvm, ranges[i][0],
									    ranges[i][1]),
					 0);
			assert_int_equal(
				kvm_mmu_notifier_test_young(T.kvm, ranges[i][0], ranges[i][1]), 0);
			assert_true(h == t_tables_hash(T.kvm));
			assert_int_equal(flushes(), f0);
			assert_int_equal(hw_flushes(), hw0);
			assert_int_equal(kvm_mmu_invalidate_seq(T.kvm), seq + (i == 2));
		}
		assert_int_equal(t_stats(T.kvm).zapped_leaves, 0);
		t_vm_fini(&T);
	}
}

/*
 * A huge leaf partly covered is zapped whole with one flush; while the
 * invalidation runs, no fault rebuilds a leaf over the page being changed;
 * afterwards a refault maps only what the host still backs, at the size the
 * host now maps.
 */
static void test_huge_leaf_partly_covered(void **state)
{
	(void)state;
	FOR_EACH_FMT(fmt)
	{
		vm_init(fmt, 0);
		H.level = 2;
		struct kvm_memory_slot s = add_slot(0, 0x200, 1024, HVA_BASE);

		assert_int_equal(fault(0x205, S2_ACC_WRITE), RET_PF_FIXED);
		assert_int_equal(fault(0x405, S2_ACC_WRITE), RET_PF_FIXED);
		t_assert_maps(T.kvm, 0x205ull << 12, host_hpa(slot_hva(&s, 0x205)), 2, RWX);
		assert_int_equal(t_stats(T.kvm).cur_leaves[2], 2);
		uint64_t f0 = flushes();

		assert_int_equal(start(slot_hva(&s, 0x207), slot_hva(&s, 0x208)), 0);
		assert_int_equal(flushes(), f0 + 1);
		assert_int_equal(t_stats(T.kvm).zapped_leaves, 1);
		assert_int_equal(t_stats(T.kvm).cur_leaves[2], 1);
		t_assert_unmapped(T.kvm, 0x200ull << 12);
		t_assert_unmapped(T.kvm, 0x3ffull << 12);
		t_assert_maps(T.kvm, 0x405ull << 12, host_hpa(slot_hva(&s, 0x405)), 2, RWX);
		/* The host still maps 2 MiB here: a leaf would span page 7. */
		assert_int_equal(fault(0x300, S2_ACC_READ), RET_PF_RETRY);
		H.split[0] = 1;
		H.gone[7] = 1;
		assert_int_equal(end(slot_hva(&s, 0x207), slot_hva(&s, 0x208)), 0);

		assert_int_equal(fault(0x300, S2_ACC_READ), RET_PF_FIXED);
		t_assert_maps(T.kvm, 0x300ull << 12, host_hpa(slot_hva(&s, 0x300)), 1, S2_PROT_R);
		t_assert_unmapped(T.kvm, 0x301ull << 12);
		assert_int_equal(fault(0x206, S2_ACC_READ), RET_PF_FIXED);
		assert_int_equal(fault(0x207, S2_ACC_READ), -EFAULT);
		t_assert_unmapped(T.kvm, 0x207ull << 12);
		assert_int_equal(t_stats(T.kvm).cur_leaves[1], 2);
		t_vm_fini(&T);
	}
}

/*
 * Nested invalidations: the in-progress range is the union until the last
 * one ends; each _end bumps the seq once.
 */
static void test_nested_invalidations(void **state)
{
	(void)state;
	FOR_EACH_FMT(fmt)
	{
		vm_init(fmt, 0);
		struct kvm_memory_slot s = add_slot(0, 0x1000, 64, HVA_BASE);
		uint64_t seq = kvm_mmu_invalidate_seq(T.kvm);

		assert_int_equal(start(slot_hva(&s, 0x1002), slot_hva(&s, 0x1003)), 0);
		assert_int_equal(start(slot_hva(&s, 0x1010), slot_hva(&s, 0x1011)), 0);
		assert_int_equal(kvm_mmu_invalidate_in_progress(T.kvm), 2);
		assert_int_equal(end(slot_hva(&s, 0x1002), slot_hva(&s, 0x1003)), 0);
		assert_int_equal(kvm_mmu_invalidate_seq(T.kvm), seq + 1);
		/* The union [0x1002, 0x1011) stays in progress. */
		assert_int_equal(fault(0x1002, S2_ACC_READ), RET_PF_RETRY);
		assert_int_equal(fault(0x1008, S2_ACC_READ), RET_PF_RETRY);
		assert_int_equal(fault(0x1011, S2_ACC_READ), RET_PF_FIXED);
		assert_int_equal(end(slot_hva(&s, 0x1010), slot_hva(&s, 0x1011)), 0);
		assert_int_equal(kvm_mmu_invalidate_seq(T.kvm), seq + 2);
		assert_int_equal(kvm_mmu_invalidate_in_progress(T.kvm), 0);
		assert_int_equal(fault(0x1008, S2_ACC_READ), RET_PF_FIXED);
		t_vm_fini(&T);
	}
}

/*
 * A memslot added while an invalidation runs was not seen by its start, yet
 * its hva may be one the host is changing: its gfns join the in-progress
 * range, so faults on it retry until the end, then map the new pfn.
 */
static void test_memslot_added_during_invalidation(void **state)
{
	(void)state;
	FOR_EACH_FMT(fmt)
	{
		vm_init(fmt, 0);
		uint64_t seq = kvm_mmu_invalidate_seq(T.kvm);

		assert_int_equal(start(HVA_BASE, HVA_BASE + 16 * 4096), 0);
		struct kvm_memory_slot s = add_slot(0, 0x1000, 16, HVA_BASE);
		assert_int_equal(fault(0x1003, S2_ACC_READ), RET_PF_RETRY);
		t_assert_unmapped(T.kvm, 0x1003ull << 12);
		host_remap(HVA_BASE, HVA_BASE + 16 * 4096);
		assert_int_equal(end(HVA_BASE, HVA_BASE + 16 * 4096), 0);
		assert_int_equal(kvm_mmu_invalidate_seq(T.kvm), seq + 1);
		assert_int_equal(fault(0x1003, S2_ACC_READ), RET_PF_FIXED);
		assert_mapped_4k(&s, 0x1003);
		assert_true(host_hpa(HVA_BASE + 3 * 4096) != HVA_BASE + 3 * 4096);
		/* Outside an invalidation, adding a slot changes nothing. */
		add_slot(1, 0x2000, 16, HVA_BASE + MB);
		assert_int_equal(fault(0x2003, S2_ACC_READ), RET_PF_FIXED);
		assert_int_equal(kvm_mmu_invalidate_seq(T.kvm), seq + 1);
		t_vm_fini(&T);
	}
}

/*
 * Bad input: a NULL VM, inverted ranges, an end without a start, unknown
 * attribute bits... return -EINVAL and change nothing; misuse is reported
 * once; a bugged VM answers -EIO.
 */
static void test_bad_input(void **state)
{
	(void)state;
	assert_int_equal(kvm_mmu_notifier_invalidate_range_start(NULL, 0, 4096, true), -EINVAL);
	assert_int_equal(kvm_mmu_notifier_invalidate_range_end(NULL, 0, 4096, true), -EINVAL);
	assert_int_equal(kvm_mmu_notifier_clear_flush_young(NULL, 0, 4096), -EINVAL);
	assert_int_equal(kvm_mmu_notifier_clear_young(NULL, 0, 4096), -EINVAL);
	assert_int_equal(kvm_mmu_notifier_test_young(NULL, 0, 4096), -EINVAL);
	assert_int_equal(kvm_vm_set_mem_attributes(NULL, 0, 1, 0), -EINVAL);
	assert_int_equal(kvm_get_memory_attributes(NULL, 0), 0);
	assert_false(kvm_range_has_memory_attributes(NULL, 0, 1, 0));
	assert_int_equal(kvm_mmu_invalidate_in_progress(NULL), 0);
	assert_int_equal(kvm_mmu_invalidate_seq(NULL), 0);

	FOR_EACH_FMT(fmt)
	{
		vm_init(fmt, 0);
		struct kvm_memory_slot s = add_slot(0, 0x1000, 64, HVA_BASE);
		fault_all(&s, 0x1000, 0x1010);
		uint64_t h = t_tables_hash(T.kvm), seq = kvm_mmu_invalidate_seq(T.kvm);
		uint64_t f0 = flushes(), logs = T.h.logs;
		hva_t a = slot_hva(&s, 0x1002), b = slot_hva(&s, 0x1004);
		gfn_t lim = 1ull << (kvm_gpa_bits(T.kvm) - 12);

		assert_int_equal(start(b, a), -EINVAL);
		assert_int_equal(end(b, a), -EINVAL);
		assert_int_equal(kvm_mmu_notifier_clear_flush_young(T.kvm, b, a), -EINVAL);
		assert_int_equal(kvm_mmu_notifier_clear_young(T.kvm, b, a), -EINVAL);
		assert_int_equal(kvm_mmu_notifier_test_young(T.kvm, b, a), -EINVAL);
		assert_int_equal(kvm_mmu_invalidate_in_progress(T.kvm), 0);

		/* An end without a start: refused, reported once. */
		assert_int_equal(end(a, b), -EINVAL);
		assert_int_equal(end(a, b), -EINVAL);
		assert_int_equal(T.h.logs, logs + 1);
		assert_int_equal(kvm_mmu_invalidate_in_progress(T.kvm), 0);
		assert_int_equal(kvm_mmu_invalidate_seq(T.kvm), seq);

		assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, 0x1002, 0x1002, 0), -EINVAL);
		assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, 0x1004, 0x1002, 0), -EINVAL);
		assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, lim - 1, lim + 1,
							   KVM_MEMORY_ATTRIBUTE_PRIVATE),
				 -EINVAL);
		assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, 0x1000, 0x1001, 1), -EINVAL);
		assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, 0x1000, 0x1001, 1ull << 63),
				 -EINVAL);
		assert_true(h == t_tables_hash(T.kvm));
		assert_int_equal(flushes(), f0);
		assert_int_equal(kvm_mmu_invalidate_seq(T.kvm), seq);

		/* A range whose end wraps the address space is still valid:
		 * it just covers everything from @a up. */
		assert_int_equal(start(a, ~0ull), 0);
		assert_int_equal(end(a, ~0ull), 0);
		t_assert_unmapped(T.kvm, 0x1002ull << 12);
		assert_mapped_4k(&s, 0x1001);

		kvm_bug(T.kvm, "test", 0);
		assert_int_equal(start(a, b), -EIO);
		assert_int_equal(end(a, b), -EIO);
		assert_int_equal(kvm_mmu_notifier_clear_young(T.kvm, a, b), -EIO);
		assert_int_equal(kvm_mmu_notifier_clear_flush_young(T.kvm, a, b), -EIO);
		assert_int_equal(kvm_mmu_notifier_test_young(T.kvm, a, b), -EIO);
		assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, 0x1000, 0x1001, 0), -EIO);
		t_vm_fini(&T);
	}
}

/*
 * kvm_unmap_gfn_range refuses outside an invalidation (a fault could be
 * about to install what it zaps): it reports once and changes nothing. For
 * a memslot that is gone (deletion) it runs.
 */
static void test_unmap_outside_invalidation_refused(void **state)
{
	(void)state;
	FOR_EACH_FMT(fmt)
	{
		vm_init(fmt, 0);
		struct kvm_memory_slot s = add_slot(0, 0x1000, 64, HVA_BASE);
		fault_all(&s, 0x1000, 0x1010);
		uint64_t h = t_tables_hash(T.kvm), f0 = flushes(), logs = T.h.logs;
		struct kvm_gfn_range r = { .slot = s, .start = 0x1000, .end = 0x1008 };
		struct s2_change_acc acc;

		for (int i = 0; i < 2; i++) {
			s2_acc_init(&acc);
			s2_mmu_write_lock(T.kvm);
			assert_int_equal(kvm_unmap_gfn_range(T.kvm, &r, &acc), -EINVAL);
			s2_mmu_write_unlock(T.kvm, &acc);
		}
		assert_int_equal(T.h.logs, logs + 1);
		assert_true(h == t_tables_hash(T.kvm));
		assert_int_equal(flushes(), f0);

		/* Inside an invalidation it zaps and owes one flush. */
		T.kvm->mmu_invalidate_in_progress = 1;
		s2_acc_init(&acc);
		s2_mmu_write_lock(T.kvm);
		assert_int_equal(kvm_unmap_gfn_range(T.kvm, &r, &acc), 8);
		s2_mmu_write_unlock(T.kvm, &acc);
		T.kvm->mmu_invalidate_in_progress = 0;
		assert_int_equal(flushes(), f0 + 1);
		t_assert_unmapped(T.kvm, 0x1000ull << 12);

		/* A deleted slot's range: allowed without an invalidation. */
		struct kvm_memory_slot d = add_slot(1, 0x3000, 16, HVA_BASE + MB);
		fault_all(&d, 0x3000, 0x3004);
		assert_int_equal(kvm_delete_memslot(T.kvm, 1), 0);
		r = (struct kvm_gfn_range){ .slot = d, .start = 0x3000, .end = 0x3010 };
		s2_acc_init(&acc);
		s2_mmu_write_lock(T.kvm);
		assert_int_equal(kvm_unmap_gfn_range(T.kvm, &r, &acc), 0);
		s2_mmu_write_unlock(T.kvm, &acc);
		assert_int_equal(T.h.logs, logs + 1);
		t_vm_fini(&T);
	}
}

/* ---- aging ---- */

static bool ref_young(gfn_t g)
{
	struct ref_xlate x;

	assert_int_equal(ref_walk_kvm(T.kvm, g << 12, &x), 0);
	return x.accessed;
}

/*
 * With Accessed bits (every format with S2_FMTF_AD): clear_young clears
 * them and reports the young leaves without a flush; clear_flush_young
 * flushes exactly once when something was young and never otherwise;
 * test_young only reports; an access (here: a fault that finds the leaf
 * old) makes a leaf young again.
 */
static void test_aging_with_accessed_bits(void **state)
{
	(void)state;
	FOR_EACH_FMT(fmt)
	{
		vm_init(fmt, 0);
		H.level = 2;
		struct kvm_memory_slot s = add_slot(0, 0x200, 1024, HVA_BASE);
		struct kvm_memory_slot t = add_slot(1, 0x2000, 64, HVA_BASE + 4 * MB + 4096);
		assert_int_equal(fault(0x200, S2_ACC_READ), RET_PF_FIXED); /* 2 MiB */
		fault_all(&t, 0x2000, 0x2010);				   /* 4 KiB */
		hva_t all_s = s.userspace_addr, all_e = slot_hva(&t, 0x2040);
		uint64_t f0 = flushes(), hw0 = hw_flushes(), lookups;

		assert_true(ref_young(0x200) && ref_young(0x2003));
		assert_int_equal(kvm_mmu_notifier_test_young(T.kvm, all_s, all_e), 1);
		assert_int_equal(kvm_mmu_notifier_clear_young(T.kvm, all_s, all_e), 17);
		assert_int_equal(flushes(), f0);
		assert_int_equal(hw_flushes(), hw0);
		assert_false(ref_young(0x200));
		for (gfn_t g = 0x2000; g < 0x2010; g++)
			assert_false(ref_young(g));
		assert_int_equal(t_stats(T.kvm).cur_leaves[1], 16);
		assert_int_equal(kvm_mmu_notifier_test_young(T.kvm, all_s, all_e), 0);
		assert_int_equal(kvm_mmu_notifier_clear_young(T.kvm, all_s, all_e), 0);
		assert_int_equal(kvm_mmu_notifier_clear_flush_young(T.kvm, all_s, all_e), 0);
		assert_int_equal(flushes(), f0);

		/* An access to an old leaf: the fault sets Accessed in place. */
		lookups = T.h.pfn_lookups;
		assert_int_equal(fault(0x2005, S2_ACC_READ), RET_PF_FIXED);
		assert_true(ref_young(0x2005));
		assert_false(ref_young(0x2004));
		if (!(kvm_fmt_cfg(T.kvm)->flags & S2_FMTF_AD))
			assert_int_equal(T.h.pfn_lookups, lookups);
		assert_int_equal(kvm_mmu_notifier_test_young(T.kvm, slot_hva(&t, 0x2005),
							     slot_hva(&t, 0x2006)),
				 1);
		assert_int_equal(kvm_mmu_notifier_test_young(T.kvm, all_s, slot_hva(&t, 0x2005)),
				 0);
		assert_int_equal(kvm_mmu_notifier_clear_flush_young(T.kvm, all_s, all_e), 1);
		assert_int_equal(flushes(), f0 + 1);
		assert_true(hw_flushes() <= hw0 + 1);
		assert_false(ref_young(0x2005));
		assert_int_equal(kvm_mmu_notifier_clear_flush_young(T.kvm, all_s, all_e), 0);
		assert_int_equal(flushes(), f0 + 1);
		/* Aging never touched a mapping. */
		t_assert_maps(T.kvm, 0x3ffull << 12, host_hpa(slot_hva(&s, 0x3ff)), 2, RWX);
		assert_mapped_4k(&t, 0x200f);
		assert_int_equal(t_stats(T.kvm).zapped_leaves, 0);
		t_vm_fini(&T);
	}
}

/* test_young stops at the first young leaf: within a memslot's walk and
 * across memslots (the handler's own count shows it). */
static void test_test_young_stops_at_first(void **state)
{
	(void)state;
	FOR_EACH_FMT(fmt)
	{
		vm_init(fmt, 0);
		struct kvm_memory_slot a = add_slot(0, 0x1000, 16, HVA_BASE);
		struct kvm_memory_slot b = add_slot(1, 0x3000, 16, HVA_BASE + 16 * 4096);
		fault_all(&a, 0x1000, 0x1008);
		fault_all(&b, 0x3000, 0x3008);
		union kvm_mmu_notifier_arg none = { 0 };
		struct kvm_gfn_range r = { .slot = a, .start = 0x1000, .end = 0x1010 };

		assert_int_equal(kvm_test_age_gfn(T.kvm, &r, NULL), 1);
		assert_int_equal(s2_mn_run(T.kvm, S2_MN_TEST_YOUNG, HVA_BASE, HVA_BASE + 32 * 4096,
					   none, false),
				 1);
		assert_int_equal(s2_mn_run(T.kvm, S2_MN_CLEAR_YOUNG, HVA_BASE, HVA_BASE + 32 * 4096,
					   none, false),
				 16);
		t_vm_fini(&T);
	}
}

/*
 * Without Accessed bits and without tracking (G-stage without Svadu), every
 * present leaf is reported young and nothing changes.
 */
static void test_aging_without_accessed_bits_reports_young(void **state)
{
	(void)state;
	if (!s2_fmt_supported(S2_FMT_RISCV_G))
		skip();
	vm_init(S2_FMT_RISCV_G, S2_FMTF_AD);
	struct kvm_memory_slot s = add_slot(0, 0x1000, 16, HVA_BASE);
	fault_all(&s, 0x1000, 0x1004);
	uint64_t h = t_tables_hash(T.kvm), f0 = flushes();

	assert_int_equal(kvm_mmu_notifier_clear_young(T.kvm, HVA_BASE, HVA_BASE + MB), 4);
	assert_int_equal(kvm_mmu_notifier_clear_flush_young(T.kvm, HVA_BASE, HVA_BASE + MB), 4);
	assert_int_equal(kvm_mmu_notifier_test_young(T.kvm, HVA_BASE, HVA_BASE + MB), 1);
	assert_true(h == t_tables_hash(T.kvm));
	assert_int_equal(flushes(), f0 + 1);
	t_vm_fini(&T);
}

/*
 * Access tracking (EPT without A/D): aging makes leaves non-present to
 * hardware but keeps them as leaves (stats, no zap, no flush for
 * clear_young); they test old; the next read restores them without asking
 * the host, without W; a write then faults through the host; a zap of a
 * tracked leaf flushes (a TLB may still hold it); huge leaves too.
 */
static void test_access_tracking(void **state)
{
	(void)state;
	if (!s2_fmt_supported(S2_FMT_X86_EPT))
		skip();
	vm_init(S2_FMT_X86_EPT, S2_FMTF_AD);
	H.level = 2;
	struct kvm_memory_slot s = add_slot(0, 0x200, 512, HVA_BASE);
	struct kvm_memory_slot t = add_slot(1, 0x2000, 16, HVA_BASE + 4 * MB + 4096);
	assert_int_equal(fault(0x210, S2_ACC_WRITE), RET_PF_FIXED); /* 2 MiB */
	fault_all(&t, 0x2000, 0x2004);
	hva_t all_s = s.userspace_addr, all_e = slot_hva(&t, 0x2010);
	uint64_t f0 = flushes(), lookups;
	struct kvm_mmu_stats st;
	struct s2_mapping m;

	assert_int_equal(kvm_mmu_notifier_test_young(T.kvm, all_s, all_e), 1);
	assert_int_equal(kvm_mmu_notifier_clear_young(T.kvm, all_s, all_e), 5);
	assert_int_equal(flushes(), f0);
	t_assert_unmapped(T.kvm, 0x210ull << 12);
	t_assert_unmapped(T.kvm, 0x2001ull << 12);
	st = t_stats(T.kvm);
	assert_int_equal(st.cur_leaves[2], 1);
	assert_int_equal(st.cur_leaves[1], 4);
	assert_int_equal(st.zapped_leaves, 0);
	assert_int_equal(kvm_mmu_notifier_test_young(T.kvm, all_s, all_e), 0);
	assert_int_equal(kvm_mmu_notifier_clear_flush_young(T.kvm, all_s, all_e), 0);
	assert_int_equal(flushes(), f0);

	/* The raw entry keeps the pfn, but the CPU sees nothing. */
	assert_int_equal(kvm_mmu_lookup(T.kvm, 0x2001ull << 12, &m), 0);
	assert_false(m.present);
	assert_true(m.pte != 0);

	/* A read restores without the host: same pfn, R/X, not W. */
	lookups = T.h.pfn_lookups;
	assert_int_equal(fault(0x2001, S2_ACC_READ), RET_PF_FIXED);
	assert_int_equal(T.h.pfn_lookups, lookups);
	t_assert_maps(T.kvm, 0x2001ull << 12, host_hpa(slot_hva(&t, 0x2001)), 1, RX);
	struct ref_xlate x;
	ref_walk_kvm(T.kvm, 0x2001ull << 12, &x);
	assert_false(x.perm & S2_PROT_W);
	/* A write then goes through the host and gets W back. */
	assert_int_equal(fault(0x2001, S2_ACC_WRITE), RET_PF_FIXED);
	assert_int_equal(T.h.pfn_lookups, lookups + 1);
	t_assert_maps(T.kvm, 0x2001ull << 12, host_hpa(slot_hva(&t, 0x2001)), 1, RWX);
	/* A write to a tracked leaf: restored, then upgraded through the host. */
	assert_int_equal(fault(0x2002, S2_ACC_WRITE), RET_PF_FIXED);
	t_assert_maps(T.kvm, 0x2002ull << 12, host_hpa(slot_hva(&t, 0x2002)), 1, RWX);
	/* The huge leaf comes back whole. */
	assert_int_equal(fault(0x3ff, S2_ACC_EXEC), RET_PF_FIXED);
	t_assert_maps(T.kvm, 0x200ull << 12, host_hpa(slot_hva(&s, 0x200)), 2, RX);
	assert_int_equal(kvm_mmu_notifier_test_young(T.kvm, all_s, all_e), 1);
	assert_int_equal(flushes(), f0);

	/* Zapping a tracked leaf (0x2003) owes a flush; the stats follow. */
	assert_int_equal(start(slot_hva(&t, 0x2003), slot_hva(&t, 0x2004)), 0);
	assert_int_equal(flushes(), f0 + 1);
	st = t_stats(T.kvm);
	assert_int_equal(st.zapped_leaves, 1);
	assert_int_equal(st.cur_leaves[1], 3);
	assert_int_equal(kvm_mmu_lookup(T.kvm, 0x2003ull << 12, &m), 0);
	assert_true(m.pte == 0);
	assert_int_equal(end(slot_hva(&t, 0x2003), slot_hva(&t, 0x2004)), 0);
	/* clear_flush_young flushes when it tracked something. */
	assert_int_equal(kvm_mmu_notifier_clear_flush_young(T.kvm, all_s, all_e), 3);
	assert_int_equal(flushes(), f0 + 2);
	/* A table left holding only tracked leaves is not empty. */
	struct kvm_memory_slot u = add_slot(2, 0x3000, 2, HVA_BASE + 6 * MB);
	fault_all(&u, 0x3000, 0x3002);
	assert_int_equal(
		kvm_mmu_notifier_clear_young(T.kvm, u.userspace_addr, slot_hva(&u, 0x3002)), 2);
	assert_int_equal(fault(0x3000, S2_ACC_READ), RET_PF_FIXED);
	assert_int_equal(start(u.userspace_addr, slot_hva(&u, 0x3001)), 0);
	assert_int_equal(end(u.userspace_addr, slot_hva(&u, 0x3001)), 0);
	s2_hosted_quiesce(&T.h);
	lookups = T.h.pfn_lookups;
	assert_int_equal(fault(0x3001, S2_ACC_READ), RET_PF_FIXED);
	assert_int_equal(T.h.pfn_lookups, lookups);
	t_assert_maps(T.kvm, 0x3001ull << 12, host_hpa(slot_hva(&u, 0x3001)), 1, RX);
	assert_int_equal(kvm_delete_memslot(T.kvm, 2), 0);
	/* Deleting the memslot removes tracked leaves and their tables. */
	assert_int_equal(kvm_delete_memslot(T.kvm, 1), 0);
	assert_int_equal(t_stats(T.kvm).cur_leaves[1], 0);
	t_vm_fini(&T);
}

/*
 * Write-protection for write tracking reaches tracked leaves: MMU-writable
 * is cleared in the tracked value (with a flush: a stale writable TLB entry
 * may survive aging), so the restored leaf cannot be made writable without
 * the host. Dirty-logging write-protection skips them (never writable).
 */
static void test_access_tracking_and_write_protection(void **state)
{
	(void)state;
	if (!s2_fmt_supported(S2_FMT_X86_EPT))
		skip();
	vm_init(S2_FMT_X86_EPT, S2_FMTF_AD);
	struct kvm_memory_slot s = add_slot(0, 0x1000, 16, HVA_BASE);
	fault_all(&s, 0x1000, 0x1002);
	assert_int_equal(kvm_mmu_notifier_clear_young(T.kvm, HVA_BASE, HVA_BASE + MB), 2);
	uint64_t f0 = flushes();
	struct s2_change_acc acc;
	struct s2_range_op op = {
		.kind = S2_RANGE_WRPROTECT, .start = 0x1000, .end = 0x1002, .acc = &acc
	};

	s2_acc_init(&acc);
	s2_mmu_write_lock(T.kvm);
	assert_int_equal(s2_range(T.kvm, &op), 0);
	op.kind = S2_RANGE_WRPROTECT_MMU;
	assert_int_equal(s2_range(T.kvm, &op), 2);
	assert_int_equal(s2_range(T.kvm, &op), 0);
	s2_mmu_write_unlock(T.kvm, &acc);
	assert_int_equal(flushes(), f0 + 1);
	t_assert_unmapped(T.kvm, 0x1000ull << 12);
	assert_int_equal(fault(0x1000, S2_ACC_READ), RET_PF_FIXED);
	struct s2_mapping m;
	assert_int_equal(kvm_mmu_lookup(T.kvm, 0x1000ull << 12, &m), 0);
	assert_true(m.present);
	assert_false(m.prot & (S2_PROT_W | S2_PROT_MMU_WRITABLE));
	assert_true(m.prot & S2_PROT_HOST_WRITABLE);
	t_vm_fini(&T);
}

/* ---- memory attributes ---- */

/*
 * A conversion zaps exactly the gfns whose attributes change, with one
 * flush, inside an invalidation (seq bumped, in_progress back to 0); setting
 * what is set changes nothing; attributes of gfns without a memslot are
 * kept; splits and merges read back right.
 */
static void test_mem_attributes(void **state)
{
	(void)state;
	FOR_EACH_FMT(fmt)
	{
		vm_init(fmt, 0);
		struct kvm_memory_slot s = add_slot(0, 0x1000, 64, HVA_BASE);
		fault_all(&s, 0x1000, 0x1010);
		uint64_t f0 = flushes(), seq = kvm_mmu_invalidate_seq(T.kvm), h;
		const uint64_t P = KVM_MEMORY_ATTRIBUTE_PRIVATE;

		assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, 0x1004, 0x1008, P), 0);
		assert_int_equal(flushes(), f0 + 1);
		assert_int_equal(kvm_mmu_invalidate_seq(T.kvm), seq + 1);
		assert_int_equal(kvm_mmu_invalidate_in_progress(T.kvm), 0);
		for (gfn_t g = 0x1000; g < 0x1010; g++) {
			bool priv = g >= 0x1004 && g < 0x1008;

			assert_int_equal(kvm_get_memory_attributes(T.kvm, g), priv ? P : 0);
			if (priv)
				t_assert_unmapped(T.kvm, g << 12);
			else
				assert_mapped_4k(&s, g);
		}
		assert_true(kvm_range_has_memory_attributes(T.kvm, 0x1004, 0x1008, P));
		assert_false(kvm_range_has_memory_attributes(T.kvm, 0x1003, 0x1008, P));
		assert_true(kvm_range_has_memory_attributes(T.kvm, 0x1008, 0x1100, 0));

		/* Again: nothing changes, no flush, no invalidation. */
		h = t_tables_hash(T.kvm);
		assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, 0x1004, 0x1008, P), 0);
		assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, 0x1010, 0x1020, 0), 0);
		assert_true(h == t_tables_hash(T.kvm));
		assert_int_equal(flushes(), f0 + 1);
		assert_int_equal(kvm_mmu_invalidate_seq(T.kvm), seq + 1);

		/* Widening over [0x1000, 0x100c): only 0x1000..3 and 8..b change. */
		assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, 0x1000, 0x100c, P), 0);
		assert_int_equal(t_stats(T.kvm).zapped_leaves, 4 + 8);
		assert_int_equal(flushes(), f0 + 2);
		assert_mapped_4k(&s, 0x100c);

		/* Back to shared in the middle: a split. The zap finds nothing
		 * mapped (private gfns are not mapped here): no flush. */
		assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, 0x1004, 0x1006, 0), 0);
		assert_int_equal(flushes(), f0 + 2);
		assert_int_equal(kvm_get_memory_attributes(T.kvm, 0x1003), P);
		assert_int_equal(kvm_get_memory_attributes(T.kvm, 0x1004), 0);
		assert_int_equal(kvm_get_memory_attributes(T.kvm, 0x1005), 0);
		assert_int_equal(kvm_get_memory_attributes(T.kvm, 0x1006), P);

		/* No memslot there: kept, nothing zapped, seq unchanged. */
		seq = kvm_mmu_invalidate_seq(T.kvm);
		assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, 0x80000, 0x80010, P), 0);
		assert_int_equal(kvm_get_memory_attributes(T.kvm, 0x8000f), P);
		assert_int_equal(kvm_mmu_invalidate_seq(T.kvm), seq);
		assert_int_equal(flushes(), f0 + 2);
		t_vm_fini(&T);
	}
}

/* The attribute store against a per-gfn model: random sets over a small
 * range, every gfn read back after each. */
static void test_mem_attributes_model(void **state)
{
	enum { N = 200 };
	uint64_t model[N] = { 0 };
	uint64_t rnd = 0x243f6a8885a308d3ull;

	(void)state;
	FOR_EACH_FMT(fmt)
	{
		vm_init(fmt, 0);
		for (int it = 0; it < 400; it++) {
			rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
			gfn_t a = (rnd >> 33) % N, b = (rnd >> 17) % N;
			uint64_t v = (rnd >> 7) & 1 ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;

			if (a == b)
				continue;
			if (a > b) {
				gfn_t t = a;
				a = b;
				b = t;
			}
			assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, a, b, v), 0);
			for (gfn_t g = a; g < b; g++)
				model[g] = v;
			for (gfn_t g = 0; g < N; g++)
				if (kvm_get_memory_attributes(T.kvm, g) != model[g])
					fail_msg("it %d gfn %llu: %llu, want %llu", it,
						 (unsigned long long)g,
						 (unsigned long long)kvm_get_memory_attributes(
							 T.kvm, g),
						 (unsigned long long)model[g]);
		}
		memset(model, 0, sizeof(model));
		t_vm_fini(&T);
	}
}

/* Failing to allocate the new attribute array changes nothing. */
static void test_mem_attributes_enomem(void **state)
{
	(void)state;
	FOR_EACH_FMT(fmt)
	{
		vm_init(fmt, 0);
		struct kvm_memory_slot s = add_slot(0, 0x1000, 16, HVA_BASE);
		fault_all(&s, 0x1000, 0x1004);
		uint64_t h = t_tables_hash(T.kvm), seq = kvm_mmu_invalidate_seq(T.kvm);

		T.h.fail_alloc_after = 0;
		assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, 0x1000, 0x1004,
							   KVM_MEMORY_ATTRIBUTE_PRIVATE),
				 -ENOMEM);
		T.h.fail_alloc_after = -1;
		assert_true(h == t_tables_hash(T.kvm));
		assert_int_equal(kvm_mmu_invalidate_seq(T.kvm), seq);
		assert_int_equal(kvm_get_memory_attributes(T.kvm, 0x1000), 0);
		t_vm_fini(&T);
	}
}

/* The table drives every entry point: locks and flush rules as documented. */
static void test_action_table(void **state)
{
	(void)state;
	const struct s2_mn_action *a = s2_mn_actions;

	assert_int_equal(a[S2_MN_INVALIDATE_START].lock, S2_MN_LOCK_WRITE);
	assert_int_equal(a[S2_MN_INVALIDATE_END].lock, S2_MN_LOCK_WRITE);
	assert_int_equal(a[S2_MN_CLEAR_FLUSH_YOUNG].lock, S2_MN_LOCK_READ);
	assert_int_equal(a[S2_MN_CLEAR_YOUNG].lock, S2_MN_LOCK_READ);
	assert_int_equal(a[S2_MN_TEST_YOUNG].lock, S2_MN_LOCK_NONE);
	assert_true(a[S2_MN_CLEAR_FLUSH_YOUNG].flush_on_ret);
	assert_false(a[S2_MN_CLEAR_YOUNG].flush_on_ret);
	assert_false(a[S2_MN_TEST_YOUNG].flush_on_ret);
	assert_true(a[S2_MN_ATTR_PRE].by_gfn && a[S2_MN_ATTR_POST].by_gfn);
	for (int i = 0; i < S2_MN_NR; i++)
		assert_non_null(a[i].name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_invalidate_protocol),
		cmocka_unit_test(test_interleave_lookup_and_install),
		cmocka_unit_test(test_interleave_huge_leaf_spans_invalidated_page),
		cmocka_unit_test(test_range_over_several_memslots),
		cmocka_unit_test(test_partial_overlaps),
		cmocka_unit_test(test_aliased_memslots),
		cmocka_unit_test(test_ranges_that_change_nothing),
		cmocka_unit_test(test_huge_leaf_partly_covered),
		cmocka_unit_test(test_nested_invalidations),
		cmocka_unit_test(test_memslot_added_during_invalidation),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_unmap_outside_invalidation_refused),
		cmocka_unit_test(test_aging_with_accessed_bits),
		cmocka_unit_test(test_test_young_stops_at_first),
		cmocka_unit_test(test_aging_without_accessed_bits_reports_young),
		cmocka_unit_test(test_access_tracking),
		cmocka_unit_test(test_access_tracking_and_write_protection),
		cmocka_unit_test(test_mem_attributes),
		cmocka_unit_test(test_mem_attributes_model),
		cmocka_unit_test(test_mem_attributes_enomem),
		cmocka_unit_test(test_action_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
