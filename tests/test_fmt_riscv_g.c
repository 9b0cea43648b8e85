/* SPDX-License-Identifier: MIT */
/*
 * RISC-V G-stage format: every entry the format writes, checked bit by bit
 * and walked by the reference walker (tests/ref/riscv_walker.c, written from
 * the privileged spec). Tables are built with the fmt_* inlines in memory
 * from aligned_alloc, so pa == va.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s2mmu/config.h"

#if !S2_ENABLED(CONFIG_S2_FMT_RISCV_G)
/* The format is not in this build: nothing to test. */
#include "tests/lib/not_built.h"
T_NOT_BUILT_MAIN("fmt riscv-g")
#else

#include "fmt/riscv-g/fmt.h"
#include "tests/lib/fmt_quick.h"
#include "tests/lib/fmt_tables.h"
#include "s2mmu/riscv-g.h"
#include "tests/ref/riscv_walker.h"
#include "tests/lib/testlib.h"

#define MAX_PA (1ull << 56)

static const unsigned flag_sets[] = { 0, S2_FMTF_AD, S2_FMTF_PBMT, S2_FMTF_AD | S2_FMTF_PBMT };
static const unsigned widths[] = { 41, 50, 59 }; /* Sv39x4, Sv48x4, Sv57x4 */

static struct s2_fmt_cfg make_cfg(unsigned gpa_bits, unsigned flags)
{
	struct kvm_vm_params p = { .fmt = S2_FMT_RISCV_G,
				   .gpa_bits = gpa_bits,
				   .fmt_flags = flags };
	struct s2_fmt_cfg c;

	memset(&c, 0xa5, sizeof(c));
	assert_int_equal(fmt_init_cfg(&c, &p), 0);
	return c;
}

static uint64_t level_size(int level)
{
	return 1ull << (12 + 9 * (level - 1));
}

/* ---- table building (with the format's own make_table) ---- */

/* struct tables, tables_init(), slot_at(): tests/lib/fmt_tables.h */

static uint64_t hgatp_of(const struct s2_fmt_cfg *c, const struct tables *t)
{
	uint64_t hgatp = 0;

	assert_int_equal(s2_riscv_make_hgatp((hpa_t)(uintptr_t)t->root, c->levels, c->vmid, &hgatp),
			 0);
	return hgatp;
}

static unsigned walk_ext(const struct s2_fmt_cfg *c)
{
	return (c->flags & S2_FMTF_PBMT) ? REF_RISCV_SVPBMT : 0;
}

/* ---- what the format should do, written out independently ---- */

static bool expect_present(unsigned prot)
{
	return prot & (S2_PROT_R | S2_PROT_W | S2_PROT_X | S2_PROT_XU);
}

/* S2_PROT_* a leaf made with @prot reads back as. */
static unsigned expect_prot(unsigned flags, unsigned prot)
{
	unsigned e = prot & (S2_PROT_HOST_WRITABLE | S2_PROT_MMU_WRITABLE);

	if (prot & (S2_PROT_R | S2_PROT_W))
		e |= S2_PROT_R; /* W without R is reserved: W brings R */
	if (prot & S2_PROT_W)
		e |= S2_PROT_W;
	if (prot & (S2_PROT_X | S2_PROT_XU))
		e |= S2_PROT_X | S2_PROT_XU; /* one execute permission */
	if (flags & S2_FMTF_AD) {
		e |= prot & (S2_PROT_ACCESSED | S2_PROT_DIRTY);
	} else {
		/* No hardware updating: A always, D whenever writable. */
		e |= S2_PROT_ACCESSED;
		if (prot & (S2_PROT_W | S2_PROT_DIRTY))
			e |= S2_PROT_DIRTY;
	}
	return e;
}

static unsigned expect_memtype(unsigned flags, unsigned mt)
{
	if (!(flags & S2_FMTF_PBMT))
		return S2_MT_WB;
	switch (mt) {
	case S2_MT_WB: return S2_MT_WB;
	case S2_MT_WC:
	case S2_MT_WT:
	case S2_MT_WP: return S2_MT_WC;
	default: return S2_MT_UC;
	}
}

/* Raw bits every leaf must have, checked against the spec's bit numbers. */
static void check_leaf_bits(unsigned flags, uint64_t pte, unsigned prot, unsigned mt, hpa_t hpa)
{
	assert_true(pte & (1ull << 4));		    /* U */
	assert_false(pte & (1ull << 5));	    /* G */
	assert_int_equal(pte & (0x7full << 54), 0); /* reserved 60:54 */
	assert_false(pte & (1ull << 63));	    /* N */
	assert_int_equal((pte >> 10) & ((1ull << 44) - 1), hpa >> 12);
	if ((pte & 4) && !(pte & 2))
		fail_msg("W without R: %#llx", (unsigned long long)pte);
	assert_int_equal(!!(pte & 1), expect_present(prot));
	if (!(flags & S2_FMTF_PBMT))
		assert_int_equal(pte >> 61 & 3, 0);
	else
		assert_int_equal(pte >> 61 & 3, expect_memtype(flags, mt) == S2_MT_WB ? 0 :
						expect_memtype(flags, mt) == S2_MT_WC ? 1 :
											2);
	assert_int_equal(!!(pte & (1ull << 8)), !!(prot & S2_PROT_HOST_WRITABLE));
	assert_int_equal(!!(pte & (1ull << 9)), !!(prot & S2_PROT_MMU_WRITABLE));
}

/* ---- tests ---- */

/* Every width from 32 to 59 bits picks the shortest x4 mode that covers it,
 * always with the 16 KiB (2048-entry) root; anything else is refused. */
static void test_cfg_sizing(void **state)
{
	(void)state;
	for (unsigned bits = 32; bits <= 59; bits++) {
		struct s2_fmt_cfg c = make_cfg(bits, 0);
		unsigned levels = bits <= 41 ? 3 : bits <= 50 ? 4 : 5;

		assert_int_equal(c.levels, levels);
		assert_int_equal(c.root_bits, 11);
		assert_int_equal(s2_root_bytes(&c), 16384);
		assert_int_equal(c.bits_per_level, 9);
		assert_int_equal(c.page_shift, 12);
		assert_int_equal(c.gpa_bits, bits);
		assert_int_equal(c.pa_bits, 56);
		assert_int_equal(c.max_leaf_level, levels);
		assert_int_equal(c.min_leaf_level, 1);
		assert_int_equal(c.fmt_private, 8 + levels - 3);
		/* The root level covers exactly the mode's x4 width. */
		assert_int_equal(s2_level_shift(&c, levels) + c.root_bits, 12 + 9 * levels + 2);
	}
}

/* Bad widths, granules, flags and VMIDs are refused. */
static void test_cfg_bad_input(void **state)
{
	struct s2_fmt_cfg c;
	struct kvm_vm_params p = { .fmt = S2_FMT_RISCV_G, .gpa_bits = 41 };
	static const unsigned bad_bits[] = { 0, 12, 31, 60, 64, 1000 };
	static const unsigned bad_flags[] = { S2_FMTF_MBEC,   S2_FMTF_SUPPRESS_VE,
					      S2_FMTF_FWB,    S2_FMTF_HD,
					      S2_FMTF_XNX,    S2_FMTF_LPA2,
					      S2_FMTF_VMID16, 1u << 31 };

	(void)state;
	for (unsigned i = 0; i < sizeof(bad_bits) / sizeof(bad_bits[0]); i++) {
		p.gpa_bits = bad_bits[i];
		assert_int_equal(fmt_init_cfg(&c, &p), -EINVAL);
	}
	p.gpa_bits = 41;
	p.granule = 16384;
	assert_int_equal(fmt_init_cfg(&c, &p), -EINVAL);
	p.granule = 4096;
	assert_int_equal(fmt_init_cfg(&c, &p), 0);
	for (unsigned i = 0; i < sizeof(bad_flags) / sizeof(bad_flags[0]); i++) {
		p.fmt_flags = bad_flags[i];
		assert_int_equal(fmt_init_cfg(&c, &p), -EINVAL);
	}
	p.fmt_flags = S2_FMTF_AD | S2_FMTF_PBMT;
	assert_int_equal(fmt_init_cfg(&c, &p), 0);
	assert_int_equal(c.flags, S2_FMTF_AD | S2_FMTF_PBMT);
	p.vmid = 0x3fff;
	assert_int_equal(fmt_init_cfg(&c, &p), 0);
	assert_int_equal(c.vmid, 0x3fff);
	p.vmid = 0x4000;
	assert_int_equal(fmt_init_cfg(&c, &p), -EINVAL);
	assert_int_equal(fmt_init_cfg(NULL, &p), -EINVAL);
	assert_int_equal(fmt_init_cfg(&c, NULL), -EINVAL);
}

/*
 * Every leaf at every level of every mode, at output addresses 0 and the
 * largest aligned one, with every S2_PROT_* combination and memory type:
 * the raw bits follow the spec, the format reads back what was asked for,
 * and the reference walker (on tables built with the format's make_table,
 * hgatp from the builder) translates the lowest and highest gpa the leaf
 * can hold to the same answer.
 */
static void test_leaf_round_trip_and_walk(void **state)
{
	(void)state;
	for (unsigned w = 0; w < 3; w++) {
		for (unsigned f = 0; f < 4; f++) {
			struct s2_fmt_cfg c = make_cfg(widths[w], flag_sets[f]);

			for (int l = 1; l <= c.levels; l++) {
				uint64_t size = level_size(l);
				hpa_t hpas[2] = { 0, MAX_PA - size };
				gpa_t gpas[2] = { 0, (1ull << widths[w]) - 1 };

				for (unsigned g = 0; g < 2; g++) {
					struct tables t;
					uint64_t *e, hgatp;

					tables_init(&t, &c);
					e = slot_at(&c, &t, gpas[g], l);
					hgatp = hgatp_of(&c, &t);
					for (unsigned h = 0; h < 2; h++)
						for (unsigned prot = 0; prot <= S2_PROT_ALL; prot++)
							for (unsigned mt = 0; mt < S2_MT_NR; mt++) {
								struct ref_xlate x;
								uint64_t pte = fmt_make_leaf(
									&c, l, hpas[h], prot, mt);
								unsigned ep =
									expect_prot(c.flags, prot);

								check_leaf_bits(c.flags, pte, prot,
										mt, hpas[h]);
								assert_false(fmt_is_frozen(pte));
								assert_false(fmt_is_mmio(&c, pte));
								*e = pte;
								ref_riscv_walk(hgatp, walk_ext(&c),
									       gpas[g], &x);
								if (!expect_present(prot)) {
									assert_false(fmt_is_present(
										&c, pte, l));
									assert_false(fmt_is_leaf(
										&c, pte, l));
									assert_int_equal(
										x.fault,
										REF_FAULT_NOT_PRESENT);
									assert_int_equal(x.level,
											 l);
									continue;
								}
								assert_true(
									fmt_is_present(&c, pte, l));
								assert_true(
									fmt_is_leaf(&c, pte, l));
								assert_int_equal(
									fmt_leaf_hpa(&c, pte, l),
									hpas[h]);
								assert_int_equal(
									fmt_leaf_prot(&c, pte, l),
									ep);
								assert_int_equal(
									fmt_leaf_memtype(&c, pte,
											 l),
									expect_memtype(c.flags,
										       mt));
								assert_int_equal(
									fmt_leaf_set_prot(&c, pte,
											  l, ep),
									pte);
								if (x.fault)
									fail_msg(
										"walk fault %s level %d pte %#llx",
										ref_fault_name(
											x.fault),
										x.level,
										(unsigned long long)
											pte);
								assert_int_equal(x.level, l);
								assert_int_equal(x.size, size);
								assert_int_equal(
									x.hpa,
									hpas[h] + (gpas[g] &
										   (size - 1)));
								assert_int_equal(x.perm,
										 ep & (S2_PROT_R |
										       S2_PROT_W |
										       S2_PROT_X));
								assert_int_equal(
									x.memtype,
									fmt_leaf_memtype(&c, pte,
											 l));
								assert_int_equal(
									x.accessed,
									!!(ep & S2_PROT_ACCESSED));
								assert_int_equal(
									x.dirty,
									!!(ep & S2_PROT_DIRTY));
							}
					tables_free(&t);
				}
			}
		}
	}
}

/* Protection changes keep the address, U and PBMT, at every level, and a
 * leaf that lost all permissions comes back with them. */
static void test_set_prot(void **state)
{
	(void)state;
	for (unsigned f = 0; f < 4; f++) {
		struct s2_fmt_cfg c = make_cfg(59, flag_sets[f]);

		for (int l = 1; l <= c.levels; l++) {
			hpa_t hpa = MAX_PA - level_size(l);

			for (unsigned from = 0; from <= S2_PROT_ALL; from += 7)
				for (unsigned to = 0; to <= S2_PROT_ALL; to++) {
					uint64_t a = fmt_make_leaf(&c, l, hpa, from, S2_MT_UC);
					uint64_t b = fmt_leaf_set_prot(&c, a, l, to);

					assert_int_equal(b,
							 fmt_make_leaf(&c, l, hpa, to, S2_MT_UC));
				}
		}
	}
}

/* Every table entry at every level, pointing at 0 and the highest page:
 * V plus the PPN and nothing else (U, A, D, PBMT are reserved there). */
static void test_table_entries(void **state)
{
	(void)state;
	for (unsigned w = 0; w < 3; w++) {
		for (unsigned f = 0; f < 4; f++) {
			struct s2_fmt_cfg c = make_cfg(widths[w], flag_sets[f]);
			hpa_t tabs[3] = { 0, 0x123456789000ull, MAX_PA - 4096 };

			for (int l = 2; l <= c.levels; l++) {
				for (unsigned i = 0; i < 3; i++) {
					uint64_t e = fmt_make_table(&c, l, tabs[i]);

					assert_int_equal(e, (tabs[i] >> 12 << 10) | 1);
					assert_true(fmt_is_present(&c, e, l));
					assert_false(fmt_is_leaf(&c, e, l));
					assert_int_equal(fmt_table_hpa(&c, e, l), tabs[i]);
					assert_false(fmt_is_frozen(e));
					assert_false(fmt_is_mmio(&c, e));
				}
			}
		}
	}
}

/* The frozen value, with or without a table address in bits 12 and up, and
 * MMIO values for the lowest and highest gfn are never present, never
 * confused with each other or with 0, and the walker faults on them. */
static void test_frozen_and_mmio(void **state)
{
	struct s2_fmt_cfg c = make_cfg(59, S2_FMTF_AD | S2_FMTF_PBMT);
	static const uint64_t hpas[] = { 0, 0x1000, 0xabcdef000ull, MAX_PA - 4096 };
	static const gfn_t gfns[] = { 0, 1, 0x12345, (1ull << 47) - 1 };
	struct tables t;
	uint64_t *e, hgatp;
	struct ref_xlate x;

	(void)state;
	assert_false(fmt_is_frozen(0));
	assert_false(fmt_is_mmio(&c, 0));
	assert_false(FMT_FROZEN & ~0xfffull);
	for (unsigned i = 0; i < 4; i++) {
		uint64_t fz = FMT_FROZEN | hpas[i];

		assert_true(fmt_is_frozen(fz));
		assert_false(fmt_is_mmio(&c, fz));
		for (int l = 1; l <= 5; l++) {
			assert_false(fmt_is_present(&c, fz, l));
			assert_false(fmt_is_leaf(&c, fz, l));
		}
	}
	for (unsigned i = 0; i < 4; i++) {
		uint64_t m = fmt_make_mmio(&c, gfns[i]);

		assert_true(fmt_is_mmio(&c, m));
		assert_false(fmt_is_frozen(m));
		assert_int_equal(m >> 12, gfns[i]);
		for (int l = 1; l <= 5; l++)
			assert_false(fmt_is_present(&c, m, l));
	}
	/* A leaf that grants nothing is non-present, yet neither special. */
	for (int l = 1; l <= 5; l++) {
		uint64_t z = fmt_make_leaf(&c, l, 0, S2_PROT_ACCESSED | S2_PROT_DIRTY, 0);

		assert_false(fmt_is_present(&c, z, l));
		assert_false(fmt_is_frozen(z));
		assert_false(fmt_is_mmio(&c, z));
	}

	tables_init(&t, &c);
	hgatp = hgatp_of(&c, &t);
	e = slot_at(&c, &t, 0x5000, 1);
	*e = FMT_FROZEN;
	assert_int_equal(ref_riscv_walk(hgatp, REF_RISCV_SVPBMT, 0x5000, &x),
			 REF_FAULT_NOT_PRESENT);
	*e = fmt_make_mmio(&c, 5);
	assert_int_equal(ref_riscv_walk(hgatp, REF_RISCV_SVPBMT, 0x5000, &x),
			 REF_FAULT_NOT_PRESENT);
	tables_free(&t);
}

/* The derived helpers: write-protect keeps MMU-writable, aging clears A only
 * where hardware sets it again (Svadu). */
static void test_helpers(void **state)
{
	(void)state;
	for (unsigned f = 0; f < 4; f++) {
		struct s2_fmt_cfg c = make_cfg(41, flag_sets[f]);
		unsigned all = S2_PROT_RWX | S2_PROT_HOST_WRITABLE | S2_PROT_MMU_WRITABLE |
			       S2_PROT_ACCESSED | S2_PROT_DIRTY;
		uint64_t pte = fmt_make_leaf(&c, 2, 0x200000, all, S2_MT_WB);
		uint64_t wp = fmt_wrprotect(&c, pte, 2);

		assert_true(fmt_is_writable(&c, pte, 2));
		assert_true(fmt_is_mmu_writable(&c, pte, 2));
		assert_true(fmt_is_host_writable(&c, pte, 2));
		assert_false(fmt_is_writable(&c, wp, 2));
		assert_true(fmt_is_mmu_writable(&c, wp, 2));
		assert_true(fmt_is_present(&c, wp, 2));
		assert_int_equal(fmt_mkwritable(&c, wp, 2), pte);
		assert_true(fmt_is_young(&c, pte, 2));
		assert_true(fmt_is_dirty(&c, pte, 2));
		if (c.flags & S2_FMTF_AD) {
			assert_false(fmt_is_young(&c, fmt_mkold(&c, pte, 2), 2));
			assert_false(fmt_is_dirty(&c, fmt_mkclean(&c, pte, 2), 2));
			assert_int_equal(fmt_mkold(&c, pte, 2), pte & ~(1ull << 6));
		} else {
			/* Quirk: without Svadu A stays set (A=0 would fault and
			 * nothing would set it again) and so does D while W. */
			assert_int_equal(fmt_mkold(&c, pte, 2), pte);
			assert_int_equal(fmt_mkclean(&c, pte, 2), pte);
		}
	}
}

/* hgatp: MODE 63:60, VMID 57:44, PPN 43:0, checked field by field. */
static void test_hgatp_builder(void **state)
{
	static const hpa_t roots[] = { 0, 0x4000, 0x80000000ull, MAX_PA - 16384 };
	static const uint32_t vmids[] = { 0, 1, 0x1234, 0x3fff };

	(void)state;
	for (unsigned lv = 3; lv <= 5; lv++)
		for (unsigned r = 0; r < 4; r++)
			for (unsigned v = 0; v < 4; v++) {
				uint64_t h = ~0ull;

				assert_int_equal(s2_riscv_make_hgatp(roots[r], lv, vmids[v], &h),
						 0);
				assert_int_equal(h >> 60, 8 + lv - 3);
				assert_int_equal((h >> 58) & 3, 0);
				assert_int_equal((h >> 44) & 0x3fff, vmids[v]);
				assert_int_equal(h & ((1ull << 44) - 1), roots[r] >> 12);
				assert_int_equal(h & 3, 0); /* 16 KiB root: PPN[1:0] = 0 */
			}
	/* The probe's Sv39x4 value: (8 << 60) | root >> 12. */
	{
		uint64_t h;

		assert_int_equal(s2_riscv_make_hgatp(0x80400000ull, 3, 0, &h), 0);
		assert_int_equal(h, (8ull << 60) | (0x80400000ull >> 12));
	}
}

/* Bad input to the builders: nothing written, -EINVAL. */
static void test_hgatp_bad_input(void **state)
{
	uint64_t h = 0x1122334455667788ull;

	(void)state;
	assert_int_equal(s2_riscv_make_hgatp(0, 2, 0, &h), -EINVAL);
	assert_int_equal(s2_riscv_make_hgatp(0, 6, 0, &h), -EINVAL);
	assert_int_equal(s2_riscv_make_hgatp(0, 0, 0, &h), -EINVAL);
	assert_int_equal(s2_riscv_make_hgatp(0x1000, 3, 0, &h), -EINVAL);
	assert_int_equal(s2_riscv_make_hgatp(0x2000, 4, 0, &h), -EINVAL);
	assert_int_equal(s2_riscv_make_hgatp(0x3000, 5, 0, &h), -EINVAL);
	assert_int_equal(s2_riscv_make_hgatp(MAX_PA, 3, 0, &h), -EINVAL);
	assert_int_equal(s2_riscv_make_hgatp(~0ull << 14, 3, 0, &h), -EINVAL);
	assert_int_equal(s2_riscv_make_hgatp(0, 3, 0x4000, &h), -EINVAL);
	assert_int_equal(s2_riscv_make_hgatp(0, 3, ~0u, &h), -EINVAL);
	assert_int_equal(h, 0x1122334455667788ull);
	assert_int_equal(s2_riscv_make_hgatp(0, 3, 0, NULL), -EINVAL);
	assert_int_equal(kvm_riscv_hgatp(NULL, &h), -EINVAL);
	assert_int_equal(h, 0x1122334455667788ull);
}

/*
 * The reference walker can fail: each encoding the spec forbids (or the
 * library must never write) is caught, so a format bug cannot hide behind a
 * permissive walker.
 */
static void test_walker_catches_bad_entries(void **state)
{
	struct s2_fmt_cfg c = make_cfg(41, S2_FMTF_AD | S2_FMTF_PBMT);
	struct tables t;
	struct ref_xlate x;
	uint64_t *e2, *e1, hgatp, table, leaf2;
	gpa_t gpa = 0x40201000ull; /* root 1, l2 1, l1 1 */

	(void)state;
	tables_init(&t, &c);
	e1 = slot_at(&c, &t, gpa, 1);
	e2 = slot_at(&c, &t, gpa, 2);
	table = *e2;
	hgatp = hgatp_of(&c, &t);
	*e1 = fmt_make_leaf(&c, 1, 0x7000, S2_PROT_RWX | S2_PROT_ACCESSED, S2_MT_WB);
	assert_int_equal(ref_riscv_walk(hgatp, REF_RISCV_SVPBMT, gpa, &x), 0);
	assert_int_equal(x.hpa, 0x7000);

	*e1 = 0x7000 >> 2 | 0x1 | 0x4 | 0x10; /* W without R */
	assert_int_equal(ref_riscv_walk(hgatp, REF_RISCV_SVPBMT, gpa, &x), REF_FAULT_MISCONFIG);
	*e1 = 0x7000 >> 2 | 0x1 | 0x2; /* U clear */
	assert_int_equal(ref_riscv_walk(hgatp, REF_RISCV_SVPBMT, gpa, &x), REF_FAULT_MISCONFIG);
	*e1 = 0x7000 >> 2 | 0x13 | (1ull << 54); /* reserved bit */
	assert_int_equal(ref_riscv_walk(hgatp, REF_RISCV_SVPBMT, gpa, &x), REF_FAULT_RESERVED);
	*e1 = 0x7000 >> 2 | 0x13 | (3ull << 61); /* PBMT 3 */
	assert_int_equal(ref_riscv_walk(hgatp, REF_RISCV_SVPBMT, gpa, &x), REF_FAULT_MISCONFIG);
	*e1 = 0x7000 >> 2 | 0x13 | (1ull << 61); /* PBMT without Svpbmt */
	assert_int_equal(ref_riscv_walk(hgatp, 0, gpa, &x), REF_FAULT_RESERVED);
	*e1 = 0x1; /* pointer at level 1 */
	assert_int_equal(ref_riscv_walk(hgatp, REF_RISCV_SVPBMT, gpa, &x), REF_FAULT_MISCONFIG);

	*e2 = table | (1ull << 6); /* non-leaf with A */
	assert_int_equal(ref_riscv_walk(hgatp, REF_RISCV_SVPBMT, gpa, &x), REF_FAULT_RESERVED);
	*e2 = table | (1ull << 4); /* non-leaf with U */
	assert_int_equal(ref_riscv_walk(hgatp, REF_RISCV_SVPBMT, gpa, &x), REF_FAULT_RESERVED);
	leaf2 = fmt_make_leaf(&c, 2, 0x200000, S2_PROT_R, S2_MT_WB);
	*e2 = leaf2;
	assert_int_equal(ref_riscv_walk(hgatp, REF_RISCV_SVPBMT, gpa, &x), 0);
	assert_int_equal(x.hpa, 0x200000 + (gpa & 0x1fffff));
	*e2 = leaf2 | (1ull << 10); /* misaligned 2 MiB */
	assert_int_equal(ref_riscv_walk(hgatp, REF_RISCV_SVPBMT, gpa, &x), REF_FAULT_MISCONFIG);
	*e2 = table;

	assert_int_equal(ref_riscv_walk(hgatp, REF_RISCV_SVPBMT, 1ull << 41, &x), REF_FAULT_ADDR);
	assert_int_equal(ref_riscv_walk(hgatp & ~(0xfull << 60), REF_RISCV_SVPBMT, gpa, &x),
			 REF_FAULT_MISCONFIG);
	assert_int_equal(ref_riscv_walk(hgatp | 1, REF_RISCV_SVPBMT, gpa, &x), REF_FAULT_MISCONFIG);
	tables_free(&t);
}

/* ---- flush hooks (hosted build: the embedder's hooks) ---- */

struct flush_log {
	unsigned vm, range;
	gpa_t gpa;
	uint64_t size;
	struct kvm *kvm;
};

static void hook_vm(void *ctx, struct kvm *kvm)
{
	struct flush_log *lg = ctx;

	lg->vm++;
	lg->kvm = kvm;
}

static void hook_range(void *ctx, struct kvm *kvm, gpa_t gpa, uint64_t size)
{
	struct flush_log *lg = ctx;

	lg->range++;
	lg->kvm = kvm;
	lg->gpa = gpa;
	lg->size = size;
}

/* Flushes reach the embedder's hooks; a ranged flush without a range hook
 * falls back to the VM hook; no hooks is fine. */
static void test_flush_hooks(void **state)
{
	struct s2_fmt_cfg c = make_cfg(41, 0);
	struct flush_log lg = { 0 };
	struct s2_env_ops ops = { .tlb_flush_vm = hook_vm, .tlb_flush_range = hook_range };
	struct s2_env env = { .ops = &ops, .ctx = &lg };
	struct kvm *k = (struct kvm *)(uintptr_t)0x1234;

	(void)state;
	assert_int_equal(FMT_HAS_TLB_FLUSH_RANGE, 1);
	fmt_tlb_flush_vm(&c, &env, k);
	assert_int_equal(lg.vm, 1);
	assert_ptr_equal(lg.kvm, k);
	fmt_tlb_flush_range(&c, &env, k, 0x200000, 0x3000);
	assert_int_equal(lg.range, 1);
	assert_int_equal(lg.gpa, 0x200000);
	assert_int_equal(lg.size, 0x3000);
	ops.tlb_flush_range = NULL;
	fmt_tlb_flush_range(&c, &env, k, 0x200000, 0x3000);
	assert_int_equal(lg.vm, 2);
	assert_int_equal(lg.range, 1);
	ops.tlb_flush_vm = NULL;
	fmt_tlb_flush_vm(&c, &env, k);
	fmt_tlb_flush_range(&c, &env, k, 0, 0x1000);
	assert_int_equal(lg.vm, 2);
}

/* ---- real VMs (hosted environment) ---- */

/* Fault @gpa for write and check the reference walker, started from
 * kvm_riscv_hgatp(), agrees with kvm_mmu_lookup(). */
static struct ref_xlate fault_and_walk(struct tvm *t, gpa_t gpa, unsigned ext)
{
	struct s2_mapping m;
	struct ref_xlate x;
	uint64_t hgatp;

	assert_int_equal(kvm_tdp_page_fault(t->vcpu, gpa, S2_ACC_WRITE), RET_PF_FIXED);
	assert_int_equal(kvm_mmu_lookup(t->kvm, gpa, &m), 0);
	assert_true(m.present);
	assert_int_equal(kvm_riscv_hgatp(t->kvm, &hgatp), 0);
	assert_int_equal(ref_riscv_walk(hgatp, ext, gpa, &x), 0);
	assert_int_equal(x.hpa, m.hpa);
	assert_int_equal(x.level, m.level);
	assert_int_equal(x.perm, S2_PROT_R | S2_PROT_W | S2_PROT_X);
	return x;
}

/*
 * kvm_riscv_hgatp() of a VM of each mode holds the VM's root, mode and
 * VMID, and is what the reference walker needs to find a faulted-in page.
 */
static void test_kvm_hgatp(void **state)
{
	(void)state;
	for (unsigned w = 0; w < 3; w++) {
		struct kvm_vm_params p = t_default_params(S2_FMT_RISCV_G);
		struct tvm t;
		uint64_t h;
		hpa_t root;

		p.gpa_bits = widths[w];
		p.vmid = 0x2a5 + w;
		t_vm_init(&t, S2_FMT_RISCV_G, &p);
		root = kvm_mmu_root_hpa(t.kvm);
		assert_int_equal(root & 0x3fff, 0);
		assert_int_equal(kvm_riscv_hgatp(t.kvm, &h), 0);
		assert_int_equal(h >> 60, 8 + w);
		assert_int_equal((h >> 44) & 0x3fff, 0x2a5 + w);
		assert_int_equal(h & ((1ull << 44) - 1), root >> 12);
		t_slot(&t, 1, 0x200, 1024, 0x40000000ull, 0);
		t_slot(&t, 2, 0x1001, 16, 0x50001000ull, 0);
		fault_and_walk(&t, 0x200000, 0);
		fault_and_walk(&t, 0x5ff000, 0);
		assert_int_equal(fault_and_walk(&t, 0x1003000, 0).level, 1);
		t_vm_fini(&t);
	}
#if S2_ENABLED(CONFIG_S2_FMT_X86_EPT)
	{
		struct tvm t;
		uint64_t h = 7;

		t_vm_init(&t, S2_FMT_X86_EPT, NULL);
		assert_int_equal(kvm_riscv_hgatp(t.kvm, &h), -EINVAL);
		assert_int_equal(h, 7);
		t_vm_fini(&t);
	}
#endif
}

/* Without Svadu the leaves a fault installs carry A, and D when writable,
 * so a hart that does not update them never faults on them; with Svpbmt the
 * default type is PMA. */
static void test_kvm_no_svadu(void **state)
{
	struct kvm_vm_params p = t_default_params(S2_FMT_RISCV_G);
	struct ref_xlate x;
	struct tvm t;

	(void)state;
	p.gpa_bits = 41;
	p.fmt_flags = S2_FMTF_PBMT;
	t_vm_init(&t, S2_FMT_RISCV_G, &p);
	t_slot(&t, 1, 0x100, 16, 0x40100000ull, 0);
	x = fault_and_walk(&t, 0x103000, REF_RISCV_SVPBMT);
	assert_true(x.accessed);
	assert_true(x.dirty);
	assert_int_equal(x.memtype, S2_MT_WB);
	t_vm_fini(&t);
}

/* The zap's quick tests (tests/lib/fmt_quick.h), every flag set. */
static void test_quick_tests(void **state)
{
	(void)state;
	for (unsigned f = 0; f < 4; f++) {
		struct s2_fmt_cfg c = make_cfg(50, flag_sets[f]);

		check_quick_tests(&c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kvm_hgatp),
		cmocka_unit_test(test_kvm_no_svadu),
		cmocka_unit_test(test_quick_tests),
		cmocka_unit_test(test_cfg_sizing),
		cmocka_unit_test(test_cfg_bad_input),
		cmocka_unit_test(test_leaf_round_trip_and_walk),
		cmocka_unit_test(test_set_prot),
		cmocka_unit_test(test_table_entries),
		cmocka_unit_test(test_frozen_and_mmio),
		cmocka_unit_test(test_helpers),
		cmocka_unit_test(test_hgatp_builder),
		cmocka_unit_test(test_hgatp_bad_input),
		cmocka_unit_test(test_walker_catches_bad_entries),
		cmocka_unit_test(test_flush_hooks),
	};

	return cmocka_run_group_tests_name("fmt riscv-g", tests, NULL, NULL);
}

#endif
