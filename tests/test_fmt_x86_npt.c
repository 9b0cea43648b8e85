/* SPDX-License-Identifier: MIT */
/*
 * AMD nested paging format: every entry the format writes, checked bit by
 * bit and walked by the reference walker (tests/ref/npt_walker.c, written
 * from the AMD APM). Tables are built with the fmt_* inlines in memory from
 * aligned_alloc, so pa == va.
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

#if !S2_ENABLED(CONFIG_S2_FMT_X86_NPT)
/* The format is not in this build: nothing to test. */
#include "tests/lib/not_built.h"
T_NOT_BUILT_MAIN("fmt x86-npt")
#else

#include "fmt/x86-npt/fmt.h"
#include "tests/lib/fmt_quick.h"
#include "tests/lib/fmt_tables.h"
#include "s2mmu/mmu.h"
#include "s2mmu/x86-npt.h"
#include "tests/ref/npt_walker.h"
#include "tests/lib/testlib.h"

#define MAX_PA (1ull << 52)

static const unsigned widths[] = { 48, 57 }; /* 4-level, 5-level */

static struct s2_fmt_cfg make_cfg(unsigned gpa_bits, unsigned flags)
{
	struct kvm_vm_params p = { .fmt = S2_FMT_X86_NPT,
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

static uint64_t ncr3_of(const struct tables *t)
{
	uint64_t ncr3 = 0;

	assert_int_equal(s2_npt_make_ncr3((hpa_t)(uintptr_t)t->root, &ncr3), 0);
	return ncr3;
}

/* ---- what the format should do, written out independently ---- */

static bool expect_present(unsigned prot)
{
	return prot & (S2_PROT_R | S2_PROT_W | S2_PROT_X | S2_PROT_XU);
}

/* S2_PROT_* a present leaf made with @prot reads back as: x86 always grants
 * read, has one execute permission, and keeps A/D as asked. */
static unsigned expect_prot(unsigned prot)
{
	unsigned e = prot & (S2_PROT_HOST_WRITABLE | S2_PROT_MMU_WRITABLE | S2_PROT_ACCESSED |
			     S2_PROT_DIRTY | S2_PROT_W);

	if (expect_present(prot))
		e |= S2_PROT_R;
	if (prot & (S2_PROT_X | S2_PROT_XU))
		e |= S2_PROT_X | S2_PROT_XU;
	return e;
}

/* Under the power-on PAT: WB, WT exact; WC and WP fall back to UC- (read
 * as UC); UC, device and unknown are UC. */
static unsigned expect_memtype(unsigned mt)
{
	switch (mt) {
	case S2_MT_WB: return S2_MT_WB;
	case S2_MT_WT: return S2_MT_WT;
	default: return S2_MT_UC;
	}
}

/* Raw bits every leaf must have, by the APM's bit numbers. */
static void check_leaf_bits(uint64_t pte, int l, unsigned prot, unsigned mt, hpa_t hpa)
{
	unsigned pat_idx = (unsigned)((pte >> 3) & 3);

	assert_true(pte & (1ull << 2));			 /* U/S */
	assert_false(pte & (1ull << 8));		 /* G */
	assert_int_equal(!!(pte & (1ull << 7)), l >= 2); /* PS / PAT(4K) */
	if (l >= 2)
		assert_false(pte & (1ull << 12)); /* PAT (large) */
	assert_int_equal(pte & 0x000ffffffffff000ull & ~(level_size(l) - 1), hpa);
	assert_int_equal(pte & 0x7ff0000000000000ull, 0); /* 62:52 unused */
	assert_int_equal(!!(pte & 1), expect_present(prot));
	assert_int_equal(!!(pte & 2), !!(prot & S2_PROT_W));
	assert_int_equal(!(pte >> 63), !!(prot & (S2_PROT_X | S2_PROT_XU)));
	assert_int_equal(!!(pte & (1ull << 5)), !!(prot & S2_PROT_ACCESSED));
	assert_int_equal(!!(pte & (1ull << 6)), !!(prot & S2_PROT_DIRTY));
	assert_int_equal(!!(pte & (1ull << 9)), !!(prot & S2_PROT_HOST_WRITABLE));
	assert_int_equal(!!(pte & (1ull << 10)), !!(prot & S2_PROT_MMU_WRITABLE));
	switch (mt) {
	case S2_MT_WB: assert_int_equal(pat_idx, 0); break;
	case S2_MT_WT: assert_int_equal(pat_idx, 1); break;
	case S2_MT_WC:
	case S2_MT_WP: assert_int_equal(pat_idx, 2); break;
	default: assert_int_equal(pat_idx, 3); break;
	}
}

/* ---- tests ---- */

/* 32..48 bits walk 4 levels, 49..57 walk 5; the root is one page; leaves at
 * levels 1..3; A/D is always on. */
static void test_cfg_sizing(void **state)
{
	(void)state;
	for (unsigned bits = 32; bits <= 57; bits++) {
		struct s2_fmt_cfg c = make_cfg(bits, 0);
		unsigned levels = bits <= 48 ? 4 : 5;

		assert_int_equal(c.levels, levels);
		assert_int_equal(c.root_bits, 9);
		assert_int_equal(s2_root_bytes(&c), 4096);
		assert_int_equal(c.bits_per_level, 9);
		assert_int_equal(c.page_shift, 12);
		assert_int_equal(c.gpa_bits, bits);
		assert_int_equal(c.pa_bits, 52);
		assert_int_equal(c.max_leaf_level, 3);
		assert_int_equal(c.min_leaf_level, 1);
		assert_int_equal(c.flags, S2_FMTF_AD);
		assert_int_equal(s2_level_shift(&c, levels) + c.root_bits, levels == 4 ? 48 : 57);
		assert_int_equal(make_cfg(bits, S2_FMTF_AD).flags, S2_FMTF_AD);
	}
}

/* Bad widths, granules and flags are refused. */
static void test_cfg_bad_input(void **state)
{
	struct s2_fmt_cfg c;
	struct kvm_vm_params p = { .fmt = S2_FMT_X86_NPT, .gpa_bits = 48 };
	static const unsigned bad_bits[] = { 0, 12, 31, 58, 64, 1000 };
	static const unsigned bad_flags[] = { S2_FMTF_MBEC, S2_FMTF_SUPPRESS_VE, S2_FMTF_FWB,
					      S2_FMTF_HD,   S2_FMTF_XNX,	 S2_FMTF_LPA2,
					      S2_FMTF_PBMT, S2_FMTF_VMID16,	 1u << 31 };

	(void)state;
	for (unsigned i = 0; i < sizeof(bad_bits) / sizeof(bad_bits[0]); i++) {
		p.gpa_bits = bad_bits[i];
		assert_int_equal(fmt_init_cfg(&c, &p), -EINVAL);
	}
	p.gpa_bits = 48;
	p.granule = 65536;
	assert_int_equal(fmt_init_cfg(&c, &p), -EINVAL);
	p.granule = 4096;
	assert_int_equal(fmt_init_cfg(&c, &p), 0);
	for (unsigned i = 0; i < sizeof(bad_flags) / sizeof(bad_flags[0]); i++) {
		p.fmt_flags = bad_flags[i];
		assert_int_equal(fmt_init_cfg(&c, &p), -EINVAL);
	}
	p.fmt_flags = 0;
	p.vmid = 0xffffffffu; /* the ASID: 32 bits in the VMCB */
	assert_int_equal(fmt_init_cfg(&c, &p), 0);
	assert_int_equal(c.vmid, 0xffffffffu);
	assert_int_equal(fmt_init_cfg(NULL, &p), -EINVAL);
	assert_int_equal(fmt_init_cfg(&c, NULL), -EINVAL);
}

/*
 * Every leaf at levels 1..3 of both walk lengths, at output addresses 0
 * and the largest aligned one, with every S2_PROT_* combination and memory
 * type: raw bits follow the APM, the format reads back what was asked for,
 * and the reference walker (tables from the format's make_table, nCR3 from
 * the builder) translates the lowest and highest gpa the leaf can hold to
 * the same answer.
 */
static void test_leaf_round_trip_and_walk(void **state)
{
	(void)state;
	for (unsigned w = 0; w < 2; w++) {
		struct s2_fmt_cfg c = make_cfg(widths[w], 0);

		for (int l = 1; l <= 3; l++) {
			uint64_t size = level_size(l);
			hpa_t hpas[2] = { 0, MAX_PA - size };
			gpa_t gpas[2] = { 0, (1ull << widths[w]) - 1 };

			for (unsigned g = 0; g < 2; g++) {
				struct tables t;
				uint64_t *e, ncr3;

				tables_init(&t, &c);
				e = slot_at(&c, &t, gpas[g], l);
				ncr3 = ncr3_of(&t);
				for (unsigned h = 0; h < 2; h++)
					for (unsigned prot = 0; prot <= S2_PROT_ALL; prot++)
						for (unsigned mt = 0; mt < S2_MT_NR; mt++) {
							struct ref_xlate x;
							uint64_t pte = fmt_make_leaf(&c, l, hpas[h],
										     prot, mt);
							unsigned ep = expect_prot(prot);

							check_leaf_bits(pte, l, prot, mt, hpas[h]);
							assert_false(fmt_is_frozen(pte));
							assert_false(fmt_is_mmio(&c, pte));
							*e = pte;
							ref_npt_walk(ncr3, c.levels == 5, gpas[g],
								     &x);
							if (!expect_present(prot)) {
								assert_false(
									fmt_is_present(&c, pte, l));
								assert_false(
									fmt_is_leaf(&c, pte, l));
								assert_int_equal(
									x.fault,
									REF_FAULT_NOT_PRESENT);
								assert_int_equal(x.level, l);
								continue;
							}
							assert_true(fmt_is_present(&c, pte, l));
							assert_true(fmt_is_leaf(&c, pte, l));
							assert_int_equal(fmt_leaf_hpa(&c, pte, l),
									 hpas[h]);
							assert_int_equal(fmt_leaf_prot(&c, pte, l),
									 ep);
							assert_int_equal(
								fmt_leaf_memtype(&c, pte, l),
								expect_memtype(mt));
							assert_int_equal(
								fmt_leaf_set_prot(&c, pte, l, ep),
								pte);
							if (x.fault)
								fail_msg(
									"walk fault %s level %d pte %#llx",
									ref_fault_name(x.fault),
									x.level,
									(unsigned long long)pte);
							assert_int_equal(x.level, l);
							assert_int_equal(x.size, size);
							assert_int_equal(
								x.hpa,
								hpas[h] + (gpas[g] & (size - 1)));
							assert_int_equal(x.perm, ep & (S2_PROT_R |
										       S2_PROT_W |
										       S2_PROT_X));
							assert_int_equal(
								x.memtype,
								fmt_leaf_memtype(&c, pte, l));
							assert_int_equal(
								x.accessed,
								!!(prot & S2_PROT_ACCESSED));
							assert_int_equal(x.dirty,
									 !!(prot & S2_PROT_DIRTY));
						}
				tables_free(&t);
			}
		}
	}
}

/* Protection changes keep the address, size, U/S and memory type. */
static void test_set_prot(void **state)
{
	struct s2_fmt_cfg c = make_cfg(57, 0);

	(void)state;
	for (int l = 1; l <= 3; l++) {
		hpa_t hpa = MAX_PA - level_size(l);

		for (unsigned mt = 0; mt < S2_MT_NR; mt++)
			for (unsigned from = 0; from <= S2_PROT_ALL; from += 7)
				for (unsigned to = 0; to <= S2_PROT_ALL; to++) {
					uint64_t a = fmt_make_leaf(&c, l, hpa, from, mt);

					assert_int_equal(fmt_leaf_set_prot(&c, a, l, to),
							 fmt_make_leaf(&c, l, hpa, to, mt));
				}
	}
}

/* Every table entry at levels 2..5 pointing at 0 and the highest page: P,
 * R/W, U/S and the address, nothing else (no PS, no G, no NX, no A). */
static void test_table_entries(void **state)
{
	(void)state;
	for (unsigned w = 0; w < 2; w++) {
		struct s2_fmt_cfg c = make_cfg(widths[w], 0);
		hpa_t tabs[3] = { 0, 0x123456789000ull, MAX_PA - 4096 };

		for (int l = 2; l <= c.levels; l++) {
			for (unsigned i = 0; i < 3; i++) {
				uint64_t e = fmt_make_table(&c, l, tabs[i]);

				assert_int_equal(e, tabs[i] | 0x7);
				assert_true(fmt_is_present(&c, e, l));
				assert_false(fmt_is_leaf(&c, e, l));
				assert_int_equal(fmt_table_hpa(&c, e, l), tabs[i]);
				assert_false(fmt_is_frozen(e));
				assert_false(fmt_is_mmio(&c, e));
			}
		}
	}
	/* Bit 7 at levels 4 and 5 is never read as a leaf marker. */
	{
		struct s2_fmt_cfg c = make_cfg(57, 0);

		assert_false(fmt_is_leaf(&c, 0x1000 | 0x87, 4));
		assert_false(fmt_is_leaf(&c, 0x1000 | 0x87, 5));
		assert_true(fmt_is_leaf(&c, 0x1000 | 0x7, 1)); /* bit 7 is PAT at 1 */
		/* Bit 12 of a 2 MiB / 1 GiB leaf is PAT, not address. */
		assert_int_equal(fmt_leaf_hpa(&c, 0x40201000ull | 0x87, 2), 0x40200000ull);
		assert_int_equal(fmt_leaf_hpa(&c, 0x40201000ull | 0x87, 3), 0x40000000ull);
		assert_int_equal(fmt_leaf_hpa(&c, 0x40201000ull | 0x7, 1), 0x40201000ull);
	}
}

/* Frozen (with or without a table address) and MMIO values for the lowest
 * and highest gfn: never present, never confused, walked as not present. */
static void test_frozen_and_mmio(void **state)
{
	struct s2_fmt_cfg c = make_cfg(57, 0);
	static const uint64_t hpas[] = { 0, 0x1000, 0xabcdef000ull, MAX_PA - 4096 };
	static const gfn_t gfns[] = { 0, 1, 0x12345, (1ull << 45) - 1 };
	struct tables t;
	uint64_t *e, ncr3;
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
	for (int l = 1; l <= 3; l++) {
		uint64_t z = fmt_make_leaf(&c, l, 0, S2_PROT_ACCESSED | S2_PROT_DIRTY, 0);

		assert_false(fmt_is_present(&c, z, l));
		assert_false(fmt_is_frozen(z));
		assert_false(fmt_is_mmio(&c, z));
	}

	tables_init(&t, &c);
	ncr3 = ncr3_of(&t);
	e = slot_at(&c, &t, 0x5000, 1);
	*e = FMT_FROZEN;
	assert_int_equal(ref_npt_walk(ncr3, true, 0x5000, &x), REF_FAULT_NOT_PRESENT);
	*e = fmt_make_mmio(&c, 5);
	assert_int_equal(ref_npt_walk(ncr3, true, 0x5000, &x), REF_FAULT_NOT_PRESENT);
	tables_free(&t);
}

/*
 * The reserved-bit MMIO form (host_pa_bits below 52, cached MMIO entries
 * on): P=1, U/S clear, bits 51:host_pa_bits set, the generation below them.
 * The library never takes it for present (no level), it is MMIO and not
 * frozen, and the reference walker on a CPU of that MAXPHYADDR stops at it
 * with a reserved-bit fault, the NPF whose RSV bit kvm_handle_npf() routes
 * to the MMIO exit; host_pa_bits 52 (no reserved address bits) or the cache
 * off keeps the P=0 form. Catches: the reserved bits written from bit
 * host_pa_bits + 1 (the walker at host_pa_bits 40 still faults, but bit 40
 * is clear: the exact value check), P left out.
 */
static void test_mmio_reserved_form(void **state)
{
	struct kvm_vm_params p = { .fmt = S2_FMT_X86_NPT,
				   .gpa_bits = 48,
				   .mmio_cache = S2_MMIO_CACHE_ON,
				   .host_pa_bits = 40 };
	static const gfn_t gens[] = { 0, 1, 0x12345, (1ull << 20) - 1 };
	struct s2_fmt_cfg c;
	struct tables t;
	uint64_t *e, ncr3;
	struct ref_xlate x;

	(void)state;
	assert_int_equal(fmt_init_cfg(&c, &p), 0);
	for (unsigned i = 0; i < 4; i++) {
		uint64_t m = fmt_make_mmio(&c, gens[i]);

		/* 0x00b | bits 51:40 | gen << 12 */
		assert_int_equal(m, 0x000fff000000000bull | gens[i] << 12);
		assert_true(fmt_is_mmio(&c, m));
		assert_false(fmt_is_frozen(m));
		for (int l = 1; l <= 5; l++) {
			assert_false(fmt_is_present(&c, m, l));
			assert_false(fmt_is_leaf(&c, m, l));
		}
	}
	/* The walk, on a CPU of MAXPHYADDR 48 (hosted tables lie below 2^47). */
	p.host_pa_bits = 48;
	assert_int_equal(fmt_init_cfg(&c, &p), 0);
	tables_init(&t, &c);
	ncr3 = ncr3_of(&t);
	assert_int_equal(ncr3 >> 47, 0);
	e = slot_at(&c, &t, 0x5000, 1);
	*e = fmt_make_mmio(&c, 5);
	assert_int_equal(*e, 0x000f00000000500bull);
	assert_int_equal(ref_npt_walk_maxphy(ncr3, c.levels == 5, 48, 0x5000, &x),
			 REF_FAULT_RESERVED);
	assert_int_equal(x.level, 1);
	/* A CPU with MAXPHYADDR 52 would read an address there: the library
	 * never writes this form for it. */
	p.host_pa_bits = 52;
	assert_int_equal(fmt_init_cfg(&c, &p), 0);
	assert_int_equal(fmt_make_mmio(&c, 5), 0x500a);
	p.host_pa_bits = 40;
	p.mmio_cache = S2_MMIO_CACHE_OFF;
	assert_int_equal(fmt_init_cfg(&c, &p), 0);
	assert_int_equal(fmt_make_mmio(&c, 5), 0x500a);
	/* The generation must fit below the reserved bits; 32..52 only. */
	p.mmio_cache = S2_MMIO_CACHE_ON;
	p.mmio_gen_bits = 29;
	assert_int_equal(fmt_init_cfg(&c, &p), -EINVAL);
	p.mmio_gen_bits = 28;
	assert_int_equal(fmt_init_cfg(&c, &p), 0);
	p.host_pa_bits = 53;
	assert_int_equal(fmt_init_cfg(&c, &p), -EINVAL);
	tables_free(&t);
}

/* Derived helpers with hardware A/D: write-protect keeps MMU-writable,
 * aging clears A, cleaning clears D. */
static void test_helpers(void **state)
{
	struct s2_fmt_cfg c = make_cfg(48, 0);
	unsigned all = S2_PROT_RWX | S2_PROT_HOST_WRITABLE | S2_PROT_MMU_WRITABLE |
		       S2_PROT_ACCESSED | S2_PROT_DIRTY;

	(void)state;
	for (int l = 1; l <= 3; l++) {
		uint64_t pte = fmt_make_leaf(&c, l, level_size(l), all, S2_MT_WB);
		uint64_t wp = fmt_wrprotect(&c, pte, l);

		assert_true(fmt_is_writable(&c, pte, l));
		assert_true(fmt_is_mmu_writable(&c, pte, l));
		assert_true(fmt_is_host_writable(&c, pte, l));
		assert_int_equal(wp, pte & ~2ull);
		assert_true(fmt_is_mmu_writable(&c, wp, l));
		assert_int_equal(fmt_mkwritable(&c, wp, l), pte);
		assert_true(fmt_is_young(&c, pte, l));
		assert_int_equal(fmt_mkold(&c, pte, l), pte & ~(1ull << 5));
		assert_int_equal(fmt_mkclean(&c, pte, l), pte & ~(1ull << 6));
		assert_false(fmt_is_young(&c, fmt_mkold(&c, pte, l), l));
		assert_false(fmt_is_dirty(&c, fmt_mkclean(&c, pte, l), l));
	}
}

/* nCR3 is the root with PWT=PCD=0; the walker accepts it. */
static void test_ncr3_builder(void **state)
{
	static const hpa_t roots[] = { 0, 0x1000, 0x80000000ull, MAX_PA - 4096 };

	(void)state;
	for (unsigned i = 0; i < 4; i++) {
		uint64_t v = ~0ull;

		assert_int_equal(s2_npt_make_ncr3(roots[i], &v), 0);
		assert_int_equal(v & 0x000ffffffffff000ull, roots[i]);
		assert_int_equal(v & (1ull << 3), 0); /* PWT */
		assert_int_equal(v & (1ull << 4), 0); /* PCD */
		assert_int_equal(v >> 52, 0);
		assert_int_equal(v, roots[i]);
	}
}

/* Bad input to the builders: -EINVAL and nothing written. */
static void test_ncr3_bad_input(void **state)
{
	uint64_t v = 0x1122334455667788ull;

	(void)state;
	assert_int_equal(s2_npt_make_ncr3(0x800, &v), -EINVAL);
	assert_int_equal(s2_npt_make_ncr3(0x1008, &v), -EINVAL);
	assert_int_equal(s2_npt_make_ncr3(MAX_PA, &v), -EINVAL);
	assert_int_equal(s2_npt_make_ncr3(~0ull << 12, &v), -EINVAL);
	assert_int_equal(v, 0x1122334455667788ull);
	assert_int_equal(s2_npt_make_ncr3(0x1000, NULL), -EINVAL);
	assert_int_equal(kvm_x86_npt_ncr3(NULL, &v), -EINVAL);
	assert_int_equal(v, 0x1122334455667788ull);
}

/* NPF EXITINFO1 decoding: fetch, write, read; faults on the guest's own
 * tables are data accesses. */
static void test_fault_access(void **state)
{
	(void)state;
	/* Not present, final translation: read, write, fetch (U always set). */
	assert_int_equal(s2_npt_fault_access(S2_NPF_FINAL | S2_NPF_U), S2_ACC_READ);
	assert_int_equal(s2_npt_fault_access(S2_NPF_FINAL | S2_NPF_U | S2_NPF_W), S2_ACC_WRITE);
	assert_int_equal(s2_npt_fault_access(S2_NPF_FINAL | S2_NPF_U | S2_NPF_ID), S2_ACC_EXEC);
	/* Protection faults (P set) decode the same. */
	assert_int_equal(s2_npt_fault_access(S2_NPF_FINAL | S2_NPF_P | S2_NPF_U | S2_NPF_W),
			 S2_ACC_WRITE);
	assert_int_equal(s2_npt_fault_access(S2_NPF_FINAL | S2_NPF_P | S2_NPF_U | S2_NPF_ID),
			 S2_ACC_EXEC);
	/* Guest table walk: a read, or a write of its A/D bits. */
	assert_int_equal(s2_npt_fault_access(S2_NPF_GPT | S2_NPF_U), S2_ACC_READ);
	assert_int_equal(s2_npt_fault_access(S2_NPF_GPT | S2_NPF_U | S2_NPF_ID), S2_ACC_READ);
	assert_int_equal(s2_npt_fault_access(S2_NPF_GPT | S2_NPF_U | S2_NPF_W | S2_NPF_P),
			 S2_ACC_WRITE);
	/* The bit numbers themselves (APM: error code + bits 32/33). */
	assert_int_equal(S2_NPF_W, 2);
	assert_int_equal(S2_NPF_ID, 16);
	assert_int_equal(S2_NPF_FINAL, 1ull << 32);
	assert_int_equal(S2_NPF_GPT, 1ull << 33);
}

/*
 * The reference walker can fail: each encoding the APM reserves, a missing
 * U/S, and the AND of R/W and NX over levels are caught, so a format bug
 * cannot hide behind a permissive walker.
 */
static void test_walker_catches_bad_entries(void **state)
{
	struct s2_fmt_cfg c = make_cfg(48, 0);
	struct tables t;
	struct ref_xlate x;
	uint64_t *e4, *e3, *e2, *e1, ncr3, t4, t3, t2;
	gpa_t gpa = 0x8040201000ull; /* 1 at every level */
	unsigned all = S2_PROT_RWX | S2_PROT_ACCESSED;

	(void)state;
	tables_init(&t, &c);
	e1 = slot_at(&c, &t, gpa, 1);
	e2 = slot_at(&c, &t, gpa, 2);
	e3 = slot_at(&c, &t, gpa, 3);
	e4 = slot_at(&c, &t, gpa, 4);
	t4 = *e4, t3 = *e3, t2 = *e2;
	ncr3 = ncr3_of(&t);
	*e1 = fmt_make_leaf(&c, 1, 0x7000, all, S2_MT_WB);
	assert_int_equal(ref_npt_walk(ncr3, false, gpa, &x), 0);
	assert_int_equal(x.hpa, 0x7000);
	assert_int_equal(x.perm, S2_PROT_R | S2_PROT_W | S2_PROT_X);

	*e4 = t4 | (1ull << 7);
	assert_int_equal(ref_npt_walk(ncr3, false, gpa, &x), REF_FAULT_RESERVED);
	*e4 = t4 | (1ull << 8);
	assert_int_equal(ref_npt_walk(ncr3, false, gpa, &x), REF_FAULT_RESERVED);
	*e4 = t4 & ~4ull;
	assert_int_equal(ref_npt_walk(ncr3, false, gpa, &x), REF_FAULT_MISCONFIG);
	*e4 = t4 & ~2ull; /* R/W clear above */
	assert_int_equal(ref_npt_walk(ncr3, false, gpa, &x), 0);
	assert_int_equal(x.perm, S2_PROT_R | S2_PROT_X);
	*e4 = t4 | (1ull << 63); /* NX above */
	assert_int_equal(ref_npt_walk(ncr3, false, gpa, &x), 0);
	assert_int_equal(x.perm, S2_PROT_R | S2_PROT_W);
	*e4 = t4;

	*e2 = fmt_make_leaf(&c, 2, 0x200000, all, S2_MT_WB);
	assert_int_equal(ref_npt_walk(ncr3, false, gpa, &x), 0);
	assert_int_equal(x.hpa, 0x200000 + (gpa & 0x1fffff));
	*e2 |= 1ull << 13; /* 2 MiB reserved */
	assert_int_equal(ref_npt_walk(ncr3, false, gpa, &x), REF_FAULT_RESERVED);
	*e2 = fmt_make_leaf(&c, 2, 0x200000, all, S2_MT_WB) | (1ull << 12); /* PAT */
	assert_int_equal(ref_npt_walk(ncr3, false, gpa, &x), 0);
	assert_int_equal(x.hpa, 0x200000 + (gpa & 0x1fffff));
	*e2 = t2;
	*e3 = fmt_make_leaf(&c, 3, 0x40000000, all, S2_MT_WB) | (1ull << 29);
	assert_int_equal(ref_npt_walk(ncr3, false, gpa, &x), REF_FAULT_RESERVED);
	*e3 = t3;

	*e1 = fmt_make_leaf(&c, 1, 1ull << 45, all, S2_MT_WB);
	assert_int_equal(ref_npt_walk(ncr3, false, gpa, &x), 0);
	assert_int_equal(ref_npt_walk_maxphy(ncr3, false, 40, gpa, &x), REF_FAULT_RESERVED);
	assert_int_equal(ref_npt_walk(ncr3, false, 1ull << 48, &x), REF_FAULT_ADDR);
	assert_int_equal(ref_npt_walk(ncr3 | (1ull << 52), false, gpa, &x), REF_FAULT_RESERVED);
	tables_free(&t);
}

/* ---- flush hooks: NPT flushes on the vcpu (TLB_CONTROL), not here ---- */

static unsigned hook_calls;

static void hook_vm(void *ctx, struct kvm *kvm)
{
	(void)ctx;
	(void)kvm;
	hook_calls++;
}

/* fmt_tlb_flush_vm is a no-op and there is no ranged form. */
static void test_flush(void **state)
{
	struct s2_fmt_cfg c = make_cfg(48, 0);
	struct s2_env_ops ops = { .tlb_flush_vm = hook_vm };
	struct s2_env env = { .ops = &ops };

	(void)state;
	assert_int_equal(FMT_HAS_TLB_FLUSH_RANGE, 0);
	fmt_tlb_flush_vm(&c, &env, NULL);
	assert_int_equal(hook_calls, 0);
}

/* ---- real VMs (hosted environment) ---- */

/*
 * kvm_x86_npt_ncr3() of a 4- and a 5-level VM points at the VM's root, and
 * the reference walker started from it finds what faults mapped, with the
 * permissions and A/D state kvm_mmu_lookup() reports.
 */
static void test_kvm_ncr3(void **state)
{
	(void)state;
	for (unsigned w = 0; w < 2; w++) {
		struct kvm_vm_params p = t_default_params(S2_FMT_X86_NPT);
		/* Two 2 MiB-aligned regions and a misaligned slot (4 KiB leaves). */
		static const gpa_t gpas[] = { 0x200000, 0x5ff000, 0x1003000 };
		struct tvm t;
		uint64_t ncr3;

		p.gpa_bits = widths[w];
		t_vm_init(&t, S2_FMT_X86_NPT, &p);
		assert_int_equal(kvm_mmu_levels(t.kvm), w ? 5 : 4);
		assert_int_equal(kvm_x86_npt_ncr3(t.kvm, &ncr3), 0);
		assert_int_equal(ncr3, kvm_mmu_root_hpa(t.kvm));
		t_slot(&t, 1, 0x200, 1024, 0x40000000ull, 0);
		t_slot(&t, 2, 0x1001, 16, 0x50001000ull, 0);
		for (unsigned i = 0; i < 3; i++) {
			struct s2_mapping m;
			struct ref_xlate x;

			assert_int_equal(kvm_tdp_page_fault(t.vcpu, gpas[i], S2_ACC_WRITE),
					 RET_PF_FIXED);
			assert_int_equal(kvm_mmu_lookup(t.kvm, gpas[i], &m), 0);
			assert_int_equal(ref_npt_walk(ncr3, w == 1, gpas[i], &x), 0);
			assert_int_equal(x.hpa, m.hpa);
			assert_int_equal(x.level, m.level);
			assert_int_equal(x.perm, S2_PROT_R | S2_PROT_W | S2_PROT_X);
			assert_int_equal(x.memtype, S2_MT_WB);
			assert_int_equal(x.accessed, !!(m.prot & S2_PROT_ACCESSED));
			assert_int_equal(x.dirty, !!(m.prot & S2_PROT_DIRTY));
		}
		t_vm_fini(&t);
	}
#if S2_ENABLED(CONFIG_S2_FMT_X86_EPT)
	{
		struct tvm t;
		uint64_t v = 7;

		t_vm_init(&t, S2_FMT_X86_EPT, NULL);
		assert_int_equal(kvm_x86_npt_ncr3(t.kvm, &v), -EINVAL);
		assert_int_equal(v, 7);
		t_vm_fini(&t);
	}
#endif
}

/* The zap's quick tests (tests/lib/fmt_quick.h), with and without A/D. */
static void test_quick_tests(void **state)
{
	(void)state;
	for (unsigned f = 0; f < 2; f++) {
		struct s2_fmt_cfg c = make_cfg(48, f ? S2_FMTF_AD : 0);

		check_quick_tests(&c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kvm_ncr3),
		cmocka_unit_test(test_cfg_sizing),
		cmocka_unit_test(test_quick_tests),
		cmocka_unit_test(test_cfg_bad_input),
		cmocka_unit_test(test_leaf_round_trip_and_walk),
		cmocka_unit_test(test_set_prot),
		cmocka_unit_test(test_table_entries),
		cmocka_unit_test(test_frozen_and_mmio),
		cmocka_unit_test(test_mmio_reserved_form),
		cmocka_unit_test(test_helpers),
		cmocka_unit_test(test_ncr3_builder),
		cmocka_unit_test(test_ncr3_bad_input),
		cmocka_unit_test(test_fault_access),
		cmocka_unit_test(test_walker_catches_bad_entries),
		cmocka_unit_test(test_flush),
	};

	return cmocka_run_group_tests_name("fmt x86-npt", tests, NULL, NULL);
}

#endif
