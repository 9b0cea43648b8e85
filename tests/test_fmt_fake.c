/* SPDX-License-Identifier: MIT */
/*
 * The scrambled fake format: entries decode correctly at the level they were
 * made for and nowhere else, special values are present at no level, and the
 * "hardware" flush hooks are reached. The last tests run the core on it, so
 * a core that mixes levels up fails here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "s2mmu/config.h"

#if !S2_ENABLED(CONFIG_S2_FMT_FAKE)
/* The format is not in this build: nothing to test. */
#include "tests/lib/not_built.h"
T_NOT_BUILT_MAIN("fmt-fake")
#else

#include "fmt/fake/fmt.h"
#include "s2mmu/env-hosted.h"
#include "s2mmu/kvm.h"
#include "s2mmu/memslot.h"
#include "s2mmu/mmu.h"
#include "s2mmu/vcpu.h"

#define PG 4096ull

static struct s2_fmt_cfg cfg_for(unsigned gpa_bits, unsigned flags)
{
	struct kvm_vm_params p = { .fmt = S2_FMT_FAKE, .gpa_bits = gpa_bits, .fmt_flags = flags };
	struct s2_fmt_cfg c;

	memset(&c, 0, sizeof(c));
	assert_int_equal(fmt_init_cfg(&c, &p), 0);
	return c;
}

static uint64_t level_size(int level)
{
	return 1ull << (12 + 9 * (level - 1));
}

static uint64_t max_hpa(int level)
{
	return (1ull << 52) - level_size(level);
}

/* Memory types the format must carry unchanged (it has no hardware to map
 * them to), with and without ignore-PAT. */
static const unsigned memtypes[] = {
	S2_MT_WB,
	S2_MT_UC,
	S2_MT_WC,
	S2_MT_WT,
	S2_MT_WP,
	S2_MT_DEVICE,
	S2_MT_WB | S2_MT_IGNORE_PAT,
	S2_MT_DEVICE | S2_MT_IGNORE_PAT,
};
#define NMT (sizeof(memtypes) / sizeof(memtypes[0]))

/* ---- descriptor -------------------------------------------------------- */

/* 4 levels of 4 KiB tables for every width 32..48; anything else refused. */
static void test_init_cfg(void **state)
{
	struct kvm_vm_params p = { .fmt = S2_FMT_FAKE };
	struct s2_fmt_cfg c;

	(void)state;
	for (unsigned bits = 32; bits <= 48; bits++) {
		p.gpa_bits = bits;
		assert_int_equal(fmt_init_cfg(&c, &p), 0);
		assert_int_equal(c.levels, 4);
		assert_int_equal(c.page_shift, 12);
		assert_int_equal(c.bits_per_level, 9);
		assert_int_equal(c.root_bits, 9);
		assert_int_equal(s2_root_bytes(&c), 4096);
		assert_int_equal(c.gpa_bits, bits);
		assert_int_equal(c.pa_bits, 52);
		assert_int_equal(c.max_leaf_level, 3);
		assert_int_equal(c.min_leaf_level, 1);
	}
	for (unsigned bits = 0; bits < 70; bits++) {
		if (bits >= 32 && bits <= 48)
			continue;
		p.gpa_bits = bits;
		assert_int_equal(fmt_init_cfg(&c, &p), -EINVAL);
	}
	p.gpa_bits = 48;
	p.fmt_flags = S2_FMTF_AD;
	assert_int_equal(fmt_init_cfg(&c, &p), 0);
	for (unsigned f = 1; f; f <<= 1) {
		if (f == S2_FMTF_AD)
			continue;
		p.fmt_flags = f;
		assert_int_equal(fmt_init_cfg(&c, &p), -EINVAL);
	}
	p.fmt_flags = 0;
	p.granule = 16384;
	assert_int_equal(fmt_init_cfg(&c, &p), -EINVAL);
	p.granule = 0;
	assert_int_equal(fmt_init_cfg(NULL, &p), -EINVAL);
	assert_int_equal(fmt_init_cfg(&c, NULL), -EINVAL);
}

/* ---- entries at their own level ------------------------------------------- */

/*
 * A leaf made at level L, for every prot, memory type and the hpas 0 and
 * the top of the 52-bit space, decodes at L to exactly what it was made from.
 */
static void test_leaf_roundtrip(void **state)
{
	struct s2_fmt_cfg c = cfg_for(48, 0);

	(void)state;
	for (int l = 1; l <= 3; l++) {
		uint64_t hpas[2] = { 0, max_hpa(l) };

		for (int hi = 0; hi < 2; hi++) {
			for (size_t mi = 0; mi < NMT; mi++) {
				for (unsigned prot = 0; prot <= S2_PROT_ALL; prot++) {
					s2_pte_t pte =
						fmt_make_leaf(&c, l, hpas[hi], prot, memtypes[mi]);

					assert_true(fmt_is_present(&c, pte, l));
					assert_true(fmt_is_leaf(&c, pte, l));
					assert_false(fmt_is_frozen(pte));
					assert_false(fmt_is_mmio(&c, pte));
					assert_int_equal(fmt_leaf_hpa(&c, pte, l), hpas[hi]);
					assert_int_equal(fmt_leaf_prot(&c, pte, l), prot);
					assert_int_equal(fmt_leaf_memtype(&c, pte, l),
							 memtypes[mi]);
					assert_int_equal(fmt_is_writable(&c, pte, l),
							 !!(prot & S2_PROT_W));
					assert_int_equal(fmt_is_young(&c, pte, l),
							 !!(prot & S2_PROT_ACCESSED));
					assert_int_equal(fmt_is_dirty(&c, pte, l),
							 !!(prot & S2_PROT_DIRTY));
					assert_int_equal(fmt_is_host_writable(&c, pte, l),
							 !!(prot & S2_PROT_HOST_WRITABLE));
					assert_int_equal(fmt_is_mmu_writable(&c, pte, l),
							 !!(prot & S2_PROT_MMU_WRITABLE));
				}
			}
		}
	}
}

/* Table entries at levels 2..4 point where they were told, and are not leaves. */
static void test_table_roundtrip(void **state)
{
	struct s2_fmt_cfg c = cfg_for(48, 0);
	uint64_t addrs[3] = { 0, 0x123456789000ull, (1ull << 52) - PG };

	(void)state;
	for (int l = 2; l <= 4; l++) {
		for (int ai = 0; ai < 3; ai++) {
			s2_pte_t pte = fmt_make_table(&c, l, addrs[ai]);

			assert_true(fmt_is_present(&c, pte, l));
			assert_false(fmt_is_leaf(&c, pte, l));
			assert_false(fmt_is_frozen(pte));
			assert_false(fmt_is_mmio(&c, pte));
			assert_int_equal(fmt_table_hpa(&c, pte, l), addrs[ai]);
		}
	}
	/* The root level holds no leaves, whatever its leaf bit says. */
	assert_true(fmt_is_present(
		&c, fake_low((1u << FAKE_P_P) | (1u << FAKE_P_LEAF) | FAKE_MARKERS, 4), 4));
	assert_false(fmt_is_leaf(
		&c, fake_low((1u << FAKE_P_P) | (1u << FAKE_P_LEAF) | FAKE_MARKERS, 4), 4));
}

/* fmt_leaf_set_prot keeps address and memory type for every change. */
static void test_set_prot_and_helpers(void **state)
{
	struct s2_fmt_cfg c = cfg_for(48, S2_FMTF_AD);

	(void)state;
	for (int l = 1; l <= 3; l++) {
		for (unsigned from = 0; from <= S2_PROT_ALL; from += 5) {
			s2_pte_t pte = fmt_make_leaf(&c, l, max_hpa(l), from, S2_MT_WC);

			for (unsigned to = 0; to <= S2_PROT_ALL; to++)
				assert_int_equal(fmt_leaf_set_prot(&c, pte, l, to),
						 fmt_make_leaf(&c, l, max_hpa(l), to, S2_MT_WC));
			assert_int_equal(fmt_leaf_prot(&c, fmt_wrprotect(&c, pte, l), l),
					 from & ~S2_PROT_W);
			assert_int_equal(fmt_leaf_prot(&c, fmt_mkwritable(&c, pte, l), l),
					 from | S2_PROT_W);
			assert_int_equal(fmt_leaf_prot(&c, fmt_mkold(&c, pte, l), l),
					 from & ~S2_PROT_ACCESSED);
			assert_int_equal(fmt_leaf_prot(&c, fmt_mkclean(&c, pte, l), l),
					 from & ~S2_PROT_DIRTY);
		}
	}
}

/* ---- entries at the wrong level ------------------------------------------- */

/*
 * The point of the format: an entry made at level L is present at no other
 * level, and its address read at another level is not what was put in.
 * (Permissions may by chance decode alike; the address never does.)
 */
static void test_leaf_wrong_level(void **state)
{
	struct s2_fmt_cfg c = cfg_for(48, 0);
	uint64_t hpa_set[3] = { 0, 0x40000000ull * 3, (1ull << 52) - (1ull << 30) };

	(void)state;
	for (int l = 1; l <= 3; l++) {
		for (int hi = 0; hi < 3; hi++) {
			for (unsigned prot = 0; prot <= S2_PROT_ALL; prot++) {
				s2_pte_t pte = fmt_make_leaf(&c, l, hpa_set[hi], prot, S2_MT_WB);

				for (int m = 1; m <= 4; m++) {
					if (m == l)
						continue;
					if (fmt_is_present(&c, pte, m) || fmt_is_leaf(&c, pte, m))
						fail_msg("leaf made at %d prot %#x present at %d",
							 l, prot, m);
					assert_int_not_equal(fmt_leaf_hpa(&c, pte, m), hpa_set[hi]);
					assert_int_not_equal(fmt_table_hpa(&c, pte, m),
							     hpa_set[hi]);
				}
			}
		}
	}
}

static void test_table_wrong_level(void **state)
{
	struct s2_fmt_cfg c = cfg_for(48, 0);

	(void)state;
	for (int l = 2; l <= 4; l++) {
		s2_pte_t pte = fmt_make_table(&c, l, 0x1234000);

		for (int m = 1; m <= 4; m++) {
			if (m == l)
				continue;
			assert_false(fmt_is_present(&c, pte, m));
			assert_false(fmt_is_leaf(&c, pte, m));
			assert_int_not_equal(fmt_table_hpa(&c, pte, m), 0x1234000);
		}
	}
}

/*
 * Exhaustively over every flag combination the format can write (leaf bit,
 * R, W, X, XU, A, D): no low pattern is present at two levels.
 */
static void test_no_pattern_present_twice(void **state)
{
	(void)state;
	for (unsigned flags = 0; flags < 128; flags++) {
		unsigned pat = (1u << FAKE_P_P) | FAKE_MARKERS;

		pat |= (flags & 1) ? 1u << FAKE_P_LEAF : 0;
		pat |= (flags & 2) ? 1u << FAKE_P_R : 0;
		pat |= (flags & 4) ? 1u << FAKE_P_W : 0;
		pat |= (flags & 8) ? 1u << FAKE_P_X : 0;
		pat |= (flags & 16) ? 1u << FAKE_P_XU : 0;
		pat |= (flags & 32) ? 1u << FAKE_P_A : 0;
		pat |= (flags & 64) ? 1u << FAKE_P_D : 0;
		for (int l = 1; l <= 4; l++) {
			uint64_t v = fake_low(pat, l);

			assert_true(FAKE_PRESENT_AT(v, l));
			for (int m = 1; m <= 4; m++)
				if (m != l)
					assert_false(FAKE_PRESENT_AT(v, m));
		}
	}
}

/* ---- special values ----------------------------------------------------- */

static void test_frozen_and_mmio(void **state)
{
	struct s2_fmt_cfg c = cfg_for(48, 0);
	uint64_t addrs[3] = { 0, 0x123456789000ull, (1ull << 52) - PG };
	gfn_t gfns[3] = { 0, 0x12345, (1ull << 36) - 1 };

	(void)state;
	assert_int_equal(FMT_FROZEN >> 12, 0);
	for (int i = 0; i < 3; i++) {
		s2_pte_t fz = FMT_FROZEN | addrs[i];
		s2_pte_t mm = fmt_make_mmio(&c, gfns[i]);

		assert_true(fmt_is_frozen(fz));
		assert_false(fmt_is_mmio(&c, fz));
		assert_true(fmt_is_mmio(&c, mm));
		assert_false(fmt_is_frozen(mm));
		assert_int_equal(mm >> 12, gfns[i]);
		for (int l = 1; l <= 4; l++) {
			assert_false(fmt_is_present(&c, fz, l));
			assert_false(fmt_is_leaf(&c, fz, l));
			assert_false(fmt_is_present(&c, mm, l));
			assert_false(fmt_is_leaf(&c, mm, l));
		}
	}
	for (int l = 1; l <= 4; l++)
		assert_false(fmt_is_present(&c, 0, l));
	assert_false(fmt_is_frozen(0));
	assert_false(fmt_is_mmio(&c, 0));
}

/* ---- a walk that uses the right levels, and one that does not -------------- */

static uint64_t *new_table(void)
{
	uint64_t *t = aligned_alloc(PG, PG);

	assert_non_null(t);
	memset(t, 0, PG);
	return t;
}

/* Walk with the format at the correct level of every entry. */
static bool walk(const struct s2_fmt_cfg *c, const uint64_t *root, uint64_t gpa, uint64_t *hpa,
		 int *level)
{
	const uint64_t *t = root;

	for (int l = c->levels; l >= 1; l--) {
		s2_pte_t e = t[(gpa >> (12 + 9 * (l - 1))) & 511];

		if (!fmt_is_present(c, e, l))
			return false;
		if (fmt_is_leaf(c, e, l)) {
			*hpa = fmt_leaf_hpa(c, e, l) + (gpa & (level_size(l) - 1));
			*level = l;
			return true;
		}
		t = (const uint64_t *)(uintptr_t)fmt_table_hpa(c, e, l);
	}
	return false;
}

/*
 * A tree built right walks; the same tree with one entry made for the wrong
 * level (the bug this format exists to catch) does not.
 */
static void test_wrong_level_breaks_walk(void **state)
{
	struct s2_fmt_cfg c = cfg_for(48, 0);
	uint64_t *l4 = new_table(), *l3 = new_table(), *l2 = new_table();
	uint64_t hpa;
	int level;

	(void)state;
	l4[0] = fmt_make_table(&c, 4, (uint64_t)(uintptr_t)l3);
	l3[0] = fmt_make_table(&c, 3, (uint64_t)(uintptr_t)l2);
	l2[3] = fmt_make_leaf(&c, 2, 0x40000000, S2_PROT_RWX, S2_MT_WB);
	assert_true(walk(&c, l4, 3 * (2ull << 20) + 0x1234, &hpa, &level));
	assert_int_equal(hpa, 0x40001234);
	assert_int_equal(level, 2);

	/* A 2 MiB leaf built as if for level 3 or 1 is simply not there. */
	l2[3] = fmt_make_leaf(&c, 3, 0x40000000, S2_PROT_RWX, S2_MT_WB);
	assert_false(walk(&c, l4, 3 * (2ull << 20), &hpa, &level));
	l2[3] = fmt_make_leaf(&c, 1, 0x40000000, S2_PROT_RWX, S2_MT_WB);
	assert_false(walk(&c, l4, 3 * (2ull << 20), &hpa, &level));
	/* A table entry made for the level below breaks the path too. */
	l2[3] = fmt_make_leaf(&c, 2, 0x40000000, S2_PROT_RWX, S2_MT_WB);
	l3[0] = fmt_make_table(&c, 2, (uint64_t)(uintptr_t)l2);
	assert_false(walk(&c, l4, 3 * (2ull << 20), &hpa, &level));
	free(l2);
	free(l3);
	free(l4);
}

/* ---- flush hooks --------------------------------------------------------- */

struct flush_count {
	int vm, range;
	gpa_t gpa;
	uint64_t size;
	struct kvm *kvm;
};

static void count_vm(void *ctx, struct kvm *kvm)
{
	struct flush_count *fc = ctx;

	fc->vm++;
	fc->kvm = kvm;
}

static void count_range(void *ctx, struct kvm *kvm, gpa_t gpa, uint64_t size)
{
	struct flush_count *fc = ctx;

	fc->range++;
	fc->kvm = kvm;
	fc->gpa = gpa;
	fc->size = size;
}

/* The flushes reach the environment's hooks with their arguments; missing
 * hooks are skipped. */
static void test_flush_hooks(void **state)
{
	struct s2_fmt_cfg c = cfg_for(48, 0);
	struct flush_count fc = { 0 };
	struct s2_env_ops ops = { .tlb_flush_vm = count_vm, .tlb_flush_range = count_range };
	struct s2_env env = { .ops = &ops, .ctx = &fc };
	struct kvm *fake_kvm = (struct kvm *)(uintptr_t)0x1000;

	(void)state;
	assert_int_equal(FMT_HAS_TLB_FLUSH_RANGE, 1);
	fmt_tlb_flush_vm(&c, &env, fake_kvm);
	assert_int_equal(fc.vm, 1);
	assert_ptr_equal(fc.kvm, fake_kvm);
	fmt_tlb_flush_range(&c, &env, fake_kvm, 0x200000, 0x3000);
	assert_int_equal(fc.range, 1);
	assert_int_equal(fc.gpa, 0x200000);
	assert_int_equal(fc.size, 0x3000);

	ops.tlb_flush_vm = NULL;
	ops.tlb_flush_range = NULL;
	fmt_tlb_flush_vm(&c, &env, fake_kvm);
	fmt_tlb_flush_range(&c, &env, fake_kvm, 0, PG);
	fmt_tlb_flush_vm(&c, NULL, fake_kvm);
	fmt_tlb_flush_range(&c, NULL, fake_kvm, 0, PG);
	assert_int_equal(fc.vm, 1);
	assert_int_equal(fc.range, 1);
}

/* ---- the core on the fake format ------------------------------------------ */

struct vm {
	struct s2_hosted h;
	struct kvm *kvm;
	struct kvm_vcpu *vcpu;
};

static void vm_create(struct vm *vm, const struct kvm_memory_slot *slot)
{
	struct kvm_vm_params p = { .fmt = S2_FMT_FAKE, .gpa_bits = 48 };

	s2_hosted_init(&vm->h);
	vm->h.quiet = true;
	p.env = &vm->h.env;
	assert_int_equal(kvm_create_vm(&p, &vm->kvm), 0);
	assert_int_equal(kvm_vcpu_create(vm->kvm, 0, &vm->vcpu), 0);
	assert_int_equal(kvm_set_memslot(vm->kvm, slot), 0);
}

static void vm_destroy(struct vm *vm)
{
	kvm_destroy_vm(vm->kvm);
	s2_hosted_quiesce(&vm->h);
	assert_int_equal(s2_hosted_pages_in_use(&vm->h), 0);
}

/*
 * Faults at every leaf size land where the host said, read back through the
 * core at the right level (a core that decodes at the wrong level sees
 * nothing or a wrong address here).
 */
static void test_core_faults(void **state)
{
	struct kvm_memory_slot slot = { .id = 1,
					.base_gfn = 0x40000,
					.npages = 0x100000,
					.userspace_addr = 0x7f0000000000ull };
	struct vm vm;
	static const int host_levels[] = { 1, 2, 3 };

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		gpa_t gpa = gfn_to_gpa(slot.base_gfn) + (i + 1) * (1ull << 30) + 0x5678;
		struct s2_mapping m;

		vm_create(&vm, &slot);
		vm.h.host_level = host_levels[i];
		assert_int_equal(kvm_tdp_page_fault(vm.vcpu, gpa, S2_ACC_WRITE), RET_PF_FIXED);
		assert_int_equal(kvm_tdp_page_fault(vm.vcpu, gpa, S2_ACC_WRITE), RET_PF_SPURIOUS);
		assert_int_equal(kvm_mmu_lookup(vm.kvm, gpa, &m), 0);
		assert_true(m.present);
		assert_int_equal(m.level, host_levels[i]);
		assert_int_equal(m.hpa, slot.userspace_addr + (gpa - gfn_to_gpa(slot.base_gfn)));
		assert_true(m.prot & S2_PROT_W);
		vm_destroy(&vm);
	}
}

/* Zapping a small range goes through the format's precise ranged flush. */
static void test_core_ranged_flush(void **state)
{
	struct kvm_memory_slot slot = {
		.id = 1, .base_gfn = 0x40000, .npages = 512, .userspace_addr = 0x7f0000000000ull
	};
	struct vm vm;
	struct kvm_mmu_stats st;

	(void)state;
	vm_create(&vm, &slot);
	vm.h.host_level = 1;
	for (gfn_t g = 0; g < 8; g++)
		assert_int_equal(
			kvm_tdp_page_fault(vm.vcpu, gfn_to_gpa(slot.base_gfn + g), S2_ACC_READ),
			RET_PF_FIXED);
	assert_int_equal(kvm_zap_gfn_range(vm.kvm, slot.base_gfn + 2, slot.base_gfn + 4), 2);
	assert_int_equal(kvm_get_stats(vm.kvm, &st), 0);
	assert_true(vm.h.hw_flush_range >= 1);
	assert_true(st.flushes_range >= 1);
	vm_destroy(&vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_cfg),
		cmocka_unit_test(test_leaf_roundtrip),
		cmocka_unit_test(test_table_roundtrip),
		cmocka_unit_test(test_set_prot_and_helpers),
		cmocka_unit_test(test_leaf_wrong_level),
		cmocka_unit_test(test_table_wrong_level),
		cmocka_unit_test(test_no_pattern_present_twice),
		cmocka_unit_test(test_frozen_and_mmio),
		cmocka_unit_test(test_wrong_level_breaks_walk),
		cmocka_unit_test(test_flush_hooks),
		cmocka_unit_test(test_core_faults),
		cmocka_unit_test(test_core_ranged_flush),
	};

	return cmocka_run_group_tests_name("fmt-fake", tests, NULL, NULL);
}

#endif /* CONFIG_S2_FMT_FAKE */
