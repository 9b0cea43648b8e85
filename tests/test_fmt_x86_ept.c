/* SPDX-License-Identifier: MIT */
/*
 * x86 EPT format: every entry the format writes is checked bit by bit against
 * the SDM, and by walking hand-built tables with the reference walker
 * (tests/ref/ept_walker.c), which shares no code with fmt/x86-ept.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "s2mmu/config.h"

#if !S2_ENABLED(CONFIG_S2_FMT_X86_EPT)
/* The format is not in this build: nothing to test. */
#include "tests/lib/not_built.h"
T_NOT_BUILT_MAIN("fmt-x86-ept")
#else

#include "fmt/x86-ept/fmt.h"
#include "tests/lib/fmt_quick.h"
#include "s2mmu/env-hosted.h"
#include "s2mmu/kvm.h"
#include "s2mmu/memslot.h"
#include "s2mmu/mmu.h"
#include "s2mmu/vcpu.h"
#include "s2mmu/x86-ept.h"
#include "tests/ref/ept_walker.h"

#define PG 4096ull

/* ---- helpers ---------------------------------------------------------- */

static struct s2_fmt_cfg cfg_for(unsigned gpa_bits, unsigned flags)
{
	struct kvm_vm_params p = { .fmt = S2_FMT_X86_EPT,
				   .gpa_bits = gpa_bits,
				   .fmt_flags = flags };
	struct s2_fmt_cfg c;
	int r;

	memset(&c, 0, sizeof(c));
	r = fmt_init_cfg(&c, &p);
	if (r)
		fail_msg("fmt_init_cfg(gpa_bits %u, flags %#x) = %d", gpa_bits, flags, r);
	return c;
}

static uint64_t level_size(int level)
{
	return 1ull << (12 + 9 * (level - 1));
}

/* Largest hpa a level-@level leaf can map: the top of the 52-bit space. */
static uint64_t max_hpa(int level)
{
	return (1ull << 52) - level_size(level);
}

static uint64_t *new_table(void)
{
	uint64_t *t = aligned_alloc(PG, PG);

	assert_non_null(t);
	memset(t, 0, PG);
	return t;
}

/*
 * One translation path: tables from the root down to @leaf_level for @gpa,
 * linked with fmt_make_table(), and the slot where the leaf goes.
 */
struct path {
	uint64_t *tables[S2_MAX_LEVELS + 1]; /* tables[l] holds level-l entries */
	uint64_t *leaf_slot;
	int levels;
};

static void path_build(struct path *pt, const struct s2_fmt_cfg *c, uint64_t gpa, int leaf_level)
{
	memset(pt, 0, sizeof(*pt));
	pt->levels = c->levels;
	for (int l = c->levels; l >= leaf_level; l--) {
		pt->tables[l] = new_table();
		if (l < c->levels) {
			unsigned idx = (gpa >> (12 + 9 * l)) & 511;

			pt->tables[l + 1][idx] =
				fmt_make_table(c, l + 1, (uint64_t)(uintptr_t)pt->tables[l]);
		}
	}
	pt->leaf_slot = &pt->tables[leaf_level][(gpa >> (12 + 9 * (leaf_level - 1))) & 511];
}

static void path_free(struct path *pt)
{
	for (int l = 1; l <= S2_MAX_LEVELS; l++)
		free(pt->tables[l]);
}

static uint64_t eptp_of(const struct path *pt, bool ad)
{
	uint64_t eptp;

	assert_int_equal(s2_ept_make_eptp((uint64_t)(uintptr_t)pt->tables[pt->levels],
					  S2_EPTP_MT_WB, (unsigned)pt->levels, ad, &eptp),
			 0);
	return eptp;
}

/*
 * What a leaf made from @prot must grant, from the SDM alone: W cannot go
 * without R, so it brings R; without MBEC bit 2 governs every fetch, so X
 * and XU are one permission.
 */
static unsigned expected_hw(unsigned prot, unsigned flags)
{
	unsigned e = 0;
	bool x = prot & S2_PROT_X, xu = prot & S2_PROT_XU;

	if (prot & (S2_PROT_R | S2_PROT_W))
		e |= S2_PROT_R;
	if (prot & S2_PROT_W)
		e |= S2_PROT_W;
	if (!(flags & S2_FMTF_MBEC))
		x = xu = x || xu;
	if (x)
		e |= S2_PROT_X;
	if (xu)
		e |= S2_PROT_XU;
	return e;
}

/* Full S2_PROT_* fmt_leaf_prot() must report for a leaf made from @prot. */
static unsigned expected_prot(unsigned prot, unsigned flags)
{
	unsigned e = expected_hw(prot, flags);

	e |= prot & (S2_PROT_HOST_WRITABLE | S2_PROT_MMU_WRITABLE);
	if (flags & S2_FMTF_AD)
		e |= prot & (S2_PROT_ACCESSED | S2_PROT_DIRTY);
	else
		/* No hardware A/D: accessed while present, dirty while writable. */
		e |= S2_PROT_ACCESSED | ((e & S2_PROT_W) ? S2_PROT_DIRTY : 0);
	return e;
}

static unsigned expected_memtype(unsigned mt)
{
	unsigned base = mt & S2_MT_MASK;

	if (base == S2_MT_DEVICE || base >= S2_MT_NR)
		base = S2_MT_UC;
	return base | (mt & S2_MT_IGNORE_PAT);
}

/* EPT memory-type field value the SDM gives each type. */
static unsigned expected_emt(unsigned mt)
{
	switch (mt & S2_MT_MASK) {
	case S2_MT_WB: return 6;
	case S2_MT_WC: return 1;
	case S2_MT_WT: return 4;
	case S2_MT_WP: return 5;
	default: return 0;
	}
}

static const unsigned flag_sets[] = {
	0,
	S2_FMTF_AD,
	S2_FMTF_MBEC,
	S2_FMTF_SUPPRESS_VE,
	S2_FMTF_AD | S2_FMTF_MBEC,
	S2_FMTF_AD | S2_FMTF_MBEC | S2_FMTF_SUPPRESS_VE,
};
#define NFLAGS (sizeof(flag_sets) / sizeof(flag_sets[0]))

/* ---- descriptor -------------------------------------------------------- */

/* Widths up to 48 bits walk 4 levels from one 4 KiB PML4; 49..57 walk 5. */
static void test_init_cfg_widths(void **state)
{
	(void)state;
	for (unsigned bits = 32; bits <= 57; bits++) {
		struct kvm_vm_params p = { .fmt = S2_FMT_X86_EPT, .gpa_bits = bits };
		struct s2_fmt_cfg c;
		int r;

		memset(&c, 0xff, sizeof(c));
		r = fmt_init_cfg(&c, &p);
#if !defined(CONFIG_S2_EPT_5LEVEL)
		if (bits > 48) {
			assert_int_equal(r, -EINVAL);
			continue;
		}
#endif
		assert_int_equal(r, 0);
		assert_int_equal(c.levels, bits <= 48 ? 4 : 5);
		assert_int_equal(c.page_shift, 12);
		assert_int_equal(c.bits_per_level, 9);
		assert_int_equal(c.root_bits, 9);
		assert_int_equal(s2_root_bytes(&c), 4096);
		assert_int_equal(s2_table_bytes(&c), 4096);
		assert_int_equal(c.gpa_bits, bits);
		assert_int_equal(c.pa_bits, 52);
		assert_int_equal(c.max_leaf_level, 3);
		assert_int_equal(c.min_leaf_level, 1);
		assert_int_equal(c.flags, 0);
		/* The walk covers the width: the root level's span reaches it. */
		assert_true(s2_level_shift(&c, c.levels) + c.root_bits >= bits);
		assert_true(s2_level_shift(&c, c.levels) + c.root_bits <
			    (c.levels == 4 ? 49u : 58u));
	}
}

/* Bad widths, granules, flags and NULL are refused. */
static void test_init_cfg_bad_input(void **state)
{
	static const unsigned bad_bits[] = { 0, 12, 31, 58, 64, 1000 };
	static const unsigned bad_flags[] = { S2_FMTF_FWB,  S2_FMTF_HD,	  S2_FMTF_XNX,
					      S2_FMTF_LPA2, S2_FMTF_PBMT, S2_FMTF_VMID16,
					      1u << 31 };
	struct kvm_vm_params p = { .fmt = S2_FMT_X86_EPT, .gpa_bits = 48 };
	struct s2_fmt_cfg c;

	(void)state;
	for (size_t i = 0; i < sizeof(bad_bits) / sizeof(bad_bits[0]); i++) {
		p.gpa_bits = bad_bits[i];
		assert_int_equal(fmt_init_cfg(&c, &p), -EINVAL);
	}
	p.gpa_bits = 48;
	for (size_t i = 0; i < sizeof(bad_flags) / sizeof(bad_flags[0]); i++) {
		p.fmt_flags = bad_flags[i] | S2_FMTF_AD;
		assert_int_equal(fmt_init_cfg(&c, &p), -EINVAL);
	}
	p.fmt_flags = 0;
	p.granule = 16384;
	assert_int_equal(fmt_init_cfg(&c, &p), -EINVAL);
	p.granule = 65536;
	assert_int_equal(fmt_init_cfg(&c, &p), -EINVAL);
	p.granule = 4096;
	assert_int_equal(fmt_init_cfg(&c, &p), 0);
	assert_int_equal(fmt_init_cfg(NULL, &p), -EINVAL);
	assert_int_equal(fmt_init_cfg(&c, NULL), -EINVAL);
	/* Every accepted flag, alone and together, is kept. */
	for (size_t i = 0; i < NFLAGS; i++) {
		p.fmt_flags = flag_sets[i];
		assert_int_equal(fmt_init_cfg(&c, &p), 0);
		assert_int_equal(c.flags, flag_sets[i]);
	}
}

/* ---- leaves ------------------------------------------------------------- */

/*
 * Leaves at levels 1..3, hpa 0 and the top of the 52-bit space, every prot
 * combination under every flag set: decoded by the format and by the
 * reference walker, and the raw bits match the SDM.
 */
static void check_leaves(unsigned gpa_bits)
{
	for (size_t fi = 0; fi < NFLAGS; fi++) {
		unsigned flags = flag_sets[fi];
		struct s2_fmt_cfg c = cfg_for(gpa_bits, flags);

		for (int level = 1; level <= 3; level++) {
			uint64_t size = level_size(level);
			uint64_t gpas[2] = { 0, (1ull << gpa_bits) - size };

			for (int gi = 0; gi < 2; gi++) {
				struct path pt;
				uint64_t eptp;
				uint64_t hpas[2] = { 0, max_hpa(level) };

				path_build(&pt, &c, gpas[gi], level);
				eptp = eptp_of(&pt, flags & S2_FMTF_AD);
				for (int hi = 0; hi < 2; hi++) {
					for (unsigned prot = 0; prot <= S2_PROT_ALL; prot++) {
						uint64_t hpa = hpas[hi];
						s2_pte_t pte = fmt_make_leaf(&c, level, hpa, prot,
									     S2_MT_WB);
						unsigned hw = expected_hw(prot, flags);
						bool present =
							hw & (S2_PROT_R | S2_PROT_X | S2_PROT_XU);
						struct ref_xlate x;
						uint64_t off = (gpas[gi] + 0x123) & (size - 1);

						*pt.leaf_slot = pte;
						ref_ept_walk(eptp,
							     (flags & S2_FMTF_MBEC) ? REF_EPT_MBEC :
										      0,
							     gpas[gi] + 0x123, &x);

						/* Raw bits the SDM prescribes. */
						assert_int_equal(pte & EPT_R ? 1 : 0,
								 hw & S2_PROT_R ? 1 : 0);
						assert_int_equal((pte >> 3) & 7, 6);
						assert_int_equal((pte >> 7) & 1, level > 1);
						assert_int_equal((pte >> 63) & 1,
								 !!(flags & S2_FMTF_SUPPRESS_VE));
						if (!(flags & S2_FMTF_MBEC))
							assert_int_equal(pte & (1ull << 10), 0);
						if (!(flags & S2_FMTF_AD))
							assert_int_equal(pte & (3ull << 8), 0);

						if (!present) {
							assert_false(
								fmt_is_present(&c, pte, level));
							assert_false(fmt_is_leaf(&c, pte, level));
							assert_int_equal(x.fault,
									 REF_FAULT_NOT_PRESENT);
							continue;
						}
						if (x.fault)
							fail_msg(
								"flags %#x level %d prot %#x: walker %s at %d",
								flags, level, prot,
								ref_fault_name(x.fault), x.level);
						assert_true(fmt_is_present(&c, pte, level));
						assert_true(fmt_is_leaf(&c, pte, level));
						assert_false(fmt_is_frozen(pte));
						assert_false(fmt_is_mmio(&c, pte));
						assert_int_equal(fmt_leaf_hpa(&c, pte, level), hpa);
						assert_int_equal(fmt_leaf_memtype(&c, pte, level),
								 S2_MT_WB);
						if (fmt_leaf_prot(&c, pte, level) !=
						    expected_prot(prot, flags))
							fail_msg(
								"flags %#x level %d prot %#x: got %#x want %#x",
								flags, level, prot,
								fmt_leaf_prot(&c, pte, level),
								expected_prot(prot, flags));

						assert_int_equal(x.level, level);
						assert_int_equal(x.size, size);
						assert_int_equal(x.hpa, hpa + off);
						assert_int_equal(x.perm, hw);
						assert_int_equal(x.memtype, S2_MT_WB);
						assert_int_equal(x.accessed,
								 (flags & S2_FMTF_AD) &&
									 (prot & S2_PROT_ACCESSED));
						assert_int_equal(x.dirty,
								 (flags & S2_FMTF_AD) &&
									 (prot & S2_PROT_DIRTY));

						/* Helpers agree with the decode. */
						assert_int_equal(fmt_is_writable(&c, pte, level),
								 !!(hw & S2_PROT_W));
						assert_int_equal(
							fmt_is_host_writable(&c, pte, level),
							!!(prot & S2_PROT_HOST_WRITABLE));
						assert_int_equal(
							fmt_is_mmu_writable(&c, pte, level),
							!!(prot & S2_PROT_MMU_WRITABLE));
					}
				}
				path_free(&pt);
			}
		}
	}
}

static void test_leaf_roundtrip_4level(void **state)
{
	(void)state;
	check_leaves(48);
	check_leaves(39);
}

static void test_leaf_roundtrip_5level(void **state)
{
	(void)state;
#if defined(CONFIG_S2_EPT_5LEVEL)
	check_leaves(57);
#else
	skip();
#endif
}

/*
 * fmt_leaf_set_prot() gives the same entry as making the leaf with the new
 * prot: address, memory type, size and suppress-#VE survive any change.
 */
static void test_leaf_set_prot(void **state)
{
	(void)state;
	for (size_t fi = 0; fi < NFLAGS; fi++) {
		struct s2_fmt_cfg c = cfg_for(48, flag_sets[fi]);

		for (int level = 1; level <= 3; level++) {
			for (unsigned from = 0; from <= S2_PROT_ALL; from += 7) {
				s2_pte_t pte = fmt_make_leaf(&c, level, max_hpa(level), from,
							     S2_MT_WT | S2_MT_IGNORE_PAT);

				for (unsigned to = 0; to <= S2_PROT_ALL; to++) {
					s2_pte_t want = fmt_make_leaf(&c, level, max_hpa(level), to,
								      S2_MT_WT | S2_MT_IGNORE_PAT);

					assert_int_equal(fmt_leaf_set_prot(&c, pte, level, to),
							 want);
				}
			}
		}
	}
}

/* Memory types map to the SDM's EPT memory types; ignore-PAT is bit 6. */
static void test_leaf_memtypes(void **state)
{
	(void)state;
	for (size_t fi = 0; fi < NFLAGS; fi++) {
		struct s2_fmt_cfg c = cfg_for(48, flag_sets[fi]);

		for (int level = 1; level <= 3; level++) {
			struct path pt;
			uint64_t eptp;

			path_build(&pt, &c, 0, level);
			eptp = eptp_of(&pt, false);
			for (unsigned mt = 0; mt <= S2_MT_NR; mt++) {
				for (unsigned ipat = 0; ipat <= S2_MT_IGNORE_PAT;
				     ipat += S2_MT_IGNORE_PAT) {
					unsigned m = mt | ipat;
					s2_pte_t pte = fmt_make_leaf(&c, level, 0, S2_PROT_RWX, m);
					struct ref_xlate x;

					assert_int_equal((pte >> 3) & 7, expected_emt(m));
					assert_int_equal((pte >> 6) & 1, ipat ? 1 : 0);
					assert_int_equal(fmt_leaf_memtype(&c, pte, level),
							 expected_memtype(m));
					*pt.leaf_slot = pte;
					assert_int_equal(ref_ept_walk(eptp, 0, 0, &x), 0);
					assert_int_equal(x.memtype, expected_memtype(m));
				}
			}
			path_free(&pt);
		}
	}
}

/* ---- tables --------------------------------------------------------------- */

/*
 * Table entries at levels 2..5 (5 only with the 5-level walk) at address 0
 * and the top: present, not leaves, grant everything, reserved bits 7:3
 * clear, and point where they were told.
 */
static void test_table_entries(void **state)
{
	(void)state;
	for (size_t fi = 0; fi < NFLAGS; fi++) {
		unsigned flags = flag_sets[fi];
		struct s2_fmt_cfg c = cfg_for(
#if defined(CONFIG_S2_EPT_5LEVEL)
			57,
#else
			48,
#endif
			flags);
		uint64_t addrs[2] = { 0, (1ull << 52) - PG };

		for (int level = 2; level <= c.levels; level++) {
			for (int ai = 0; ai < 2; ai++) {
				s2_pte_t pte = fmt_make_table(&c, level, addrs[ai]);

				assert_true(fmt_is_present(&c, pte, level));
				assert_false(fmt_is_leaf(&c, pte, level));
				assert_false(fmt_is_frozen(pte));
				assert_false(fmt_is_mmio(&c, pte));
				assert_int_equal(fmt_table_hpa(&c, pte, level), addrs[ai]);
				assert_int_equal(pte & 7, 7);
				assert_int_equal(pte & (0x1full << 3), 0);
				assert_int_equal((pte >> 10) & 1, !!(flags & S2_FMTF_MBEC));
				assert_int_equal(pte & ~0xfffull, addrs[ai]);
				/* Bit 7 makes a leaf only at levels 2 and 3; at 4 and 5
				 * it is reserved, and no level-4 entry maps memory. */
				assert_int_equal(fmt_is_leaf(&c, pte | EPT_PS, level), level <= 3);
			}
		}
	}
}

/* ---- special values --------------------------------------------------- */

/* The frozen value is never present, also with an address or'ed in. */
static void test_frozen(void **state)
{
	(void)state;
	assert_int_equal(FMT_FROZEN >> 12, 0);
	for (size_t fi = 0; fi < NFLAGS; fi++) {
		struct s2_fmt_cfg c = cfg_for(48, flag_sets[fi]);
		uint64_t addrs[3] = { 0, 0x123456789000ull, (1ull << 52) - PG };

		for (int ai = 0; ai < 3; ai++) {
			s2_pte_t v = FMT_FROZEN | addrs[ai];

			assert_true(fmt_is_frozen(v));
			assert_false(fmt_is_mmio(&c, v));
			for (int level = 1; level <= 5; level++) {
				assert_false(fmt_is_present(&c, v, level));
				assert_false(fmt_is_leaf(&c, v, level));
			}
		}
		assert_false(fmt_is_frozen(0));
		assert_false(fmt_is_frozen(fmt_make_mmio(&c, 0)));
	}
}

/* The CPU also sees the frozen value as not present (walked at the root). */
static void test_frozen_hardware_view(void **state)
{
	struct s2_fmt_cfg c = cfg_for(48, S2_FMTF_MBEC);
	struct path pt;
	struct ref_xlate x;

	(void)state;
	path_build(&pt, &c, 0, 1);
	*pt.leaf_slot = FMT_FROZEN | 0x5000;
	assert_int_equal(ref_ept_walk(eptp_of(&pt, true), REF_EPT_MBEC, 0, &x),
			 REF_FAULT_NOT_PRESENT);
	assert_int_equal(x.level, 1);
	pt.tables[4][0] = FMT_FROZEN | (uint64_t)(uintptr_t)pt.tables[3];
	assert_int_equal(ref_ept_walk(eptp_of(&pt, true), REF_EPT_MBEC, 0, &x),
			 REF_FAULT_NOT_PRESENT);
	assert_int_equal(x.level, 4);
	path_free(&pt);
}

/*
 * The MMIO value keeps the gfn (0 and the largest 57-bit gfn), is never
 * present, and makes the CPU report a misconfiguration at any level.
 */
static void test_mmio(void **state)
{
	(void)state;
	for (size_t fi = 0; fi < NFLAGS; fi++) {
		struct s2_fmt_cfg c = cfg_for(48, flag_sets[fi]);
		gfn_t gfns[3] = { 0, 0x12345, (1ull << 45) - 1 };

		for (int gi = 0; gi < 3; gi++) {
			s2_pte_t v = fmt_make_mmio(&c, gfns[gi]);

			assert_true(fmt_is_mmio(&c, v));
			assert_false(fmt_is_frozen(v));
			assert_int_equal((v >> 12) & ((1ull << 45) - 1), gfns[gi]);
			assert_int_equal(v & (EPT_SW_BITS | EPT_SVE), 0);
			for (int level = 1; level <= 5; level++) {
				assert_false(fmt_is_present(&c, v, level));
				assert_false(fmt_is_leaf(&c, v, level));
			}
		}
		assert_false(fmt_is_mmio(&c, 0));
		/* Only the MMIO value itself, not every misconfiguration. */
		assert_false(fmt_is_mmio(&c, EPT_W | EPT_X | 0x5000));
		assert_false(fmt_is_mmio(&c, EPT_W | EPT_PS | 0x5000));
		assert_false(fmt_is_mmio(&c, fmt_make_table(&c, 2, 0)));
		assert_false(fmt_is_mmio(&c, fmt_make_leaf(&c, 1, 0, S2_PROT_W, S2_MT_WB)));
	}
	for (int level = 1; level <= 4; level++) {
		struct s2_fmt_cfg c = cfg_for(48, 0);
		struct path pt;
		struct ref_xlate x;

		path_build(&pt, &c, 0, level);
		*pt.leaf_slot = fmt_make_mmio(&c, 0x42);
		assert_int_equal(ref_ept_walk(eptp_of(&pt, false), 0, 0, &x), REF_FAULT_MISCONFIG);
		assert_int_equal(x.level, level);
		path_free(&pt);
	}
}

/* ---- derived helpers ---------------------------------------------------- */

/*
 * wrprotect clears hardware W only (MMU-writable stays, so a write fault can
 * restore it); mkwritable restores it; with A/D, mkold and mkclean clear
 * exactly bits 8 and 9.
 */
static void test_helpers(void **state)
{
	(void)state;
	for (size_t fi = 0; fi < NFLAGS; fi++) {
		unsigned flags = flag_sets[fi];
		struct s2_fmt_cfg c = cfg_for(48, flags);

		for (int level = 1; level <= 3; level++) {
			unsigned prot = S2_PROT_ALL;
			s2_pte_t pte = fmt_make_leaf(&c, level, max_hpa(level), prot, S2_MT_WB);
			s2_pte_t ro = fmt_wrprotect(&c, pte, level);

			assert_int_equal(ro, pte & ~EPT_W);
			assert_false(fmt_is_writable(&c, ro, level));
			assert_true(fmt_is_mmu_writable(&c, ro, level));
			assert_true(fmt_is_host_writable(&c, ro, level));
			assert_true(fmt_is_present(&c, ro, level));
			assert_int_equal(fmt_mkwritable(&c, ro, level), pte);
			if (flags & S2_FMTF_AD) {
				assert_true(fmt_is_young(&c, pte, level));
				assert_true(fmt_is_dirty(&c, pte, level));
				assert_int_equal(fmt_mkold(&c, pte, level), pte & ~EPT_A);
				assert_int_equal(fmt_mkclean(&c, pte, level), pte & ~EPT_D);
				assert_false(fmt_is_young(&c, fmt_mkold(&c, pte, level), level));
				assert_false(fmt_is_dirty(&c, fmt_mkclean(&c, pte, level), level));
			} else {
				/* Quirk: without hardware A/D a leaf stays young and a
				 * writable one stays dirty; only zap or wrprotect change
				 * what the core learns. */
				assert_true(fmt_is_young(&c, pte, level));
				assert_int_equal(fmt_mkold(&c, pte, level), pte);
				assert_true(fmt_is_dirty(&c, pte, level));
				assert_false(fmt_is_dirty(&c, ro, level));
			}
		}
	}
}

/* Hardware-set A/D bits are read only when A/D is enabled. */
static void test_hw_ad_bits(void **state)
{
	struct s2_fmt_cfg ad = cfg_for(48, S2_FMTF_AD), noad = cfg_for(48, 0);
	s2_pte_t pte = fmt_make_leaf(&noad, 1, 0x1000, S2_PROT_R, S2_MT_WB) | EPT_A | EPT_D;

	(void)state;
	assert_int_equal(fmt_leaf_prot(&ad, pte, 1) & (S2_PROT_ACCESSED | S2_PROT_DIRTY),
			 S2_PROT_ACCESSED | S2_PROT_DIRTY);
	/* Read-only without A/D: accessed by convention, never dirty. */
	assert_int_equal(fmt_leaf_prot(&noad, pte, 1) & (S2_PROT_ACCESSED | S2_PROT_DIRTY),
			 S2_PROT_ACCESSED);
}

/* ---- walks through several levels --------------------------------------- */

/*
 * Permissions restrict at every level: a table entry without W makes the
 * whole region read-only for the CPU, whatever the leaf says.
 */
static void test_walk_and_of_levels(void **state)
{
	struct s2_fmt_cfg c = cfg_for(48, S2_FMTF_MBEC);
	struct path pt;
	struct ref_xlate x;
	uint64_t gpa = 0x0000123456789000ull & ((1ull << 48) - 1);

	(void)state;
	path_build(&pt, &c, gpa, 1);
	*pt.leaf_slot = fmt_make_leaf(&c, 1, 0xabcd000, S2_PROT_RWX, S2_MT_WB);
	assert_int_equal(ref_ept_walk(eptp_of(&pt, false), REF_EPT_MBEC, gpa, &x), 0);
	assert_int_equal(x.perm, S2_PROT_RWX);
	assert_int_equal(x.hpa, 0xabcd000);
	/* Strip W and XU from the level-3 table entry. */
	pt.tables[3][(gpa >> 30) & 511] &= ~(EPT_W | EPT_XU);
	assert_int_equal(ref_ept_walk(eptp_of(&pt, false), REF_EPT_MBEC, gpa, &x), 0);
	assert_int_equal(x.perm, S2_PROT_R | S2_PROT_X);
	path_free(&pt);
}

/*
 * Misconfigurations the walker reports, so tests relying on it can fail:
 * W without R, reserved memory types, page size at level 4, reserved bits of
 * a 2 MiB leaf and of a table entry.
 */
static void test_walker_misconfig(void **state)
{
	struct s2_fmt_cfg c = cfg_for(48, 0);
	struct path pt;
	struct ref_xlate x;
	uint64_t eptp;

	(void)state;
	path_build(&pt, &c, 0, 2);
	eptp = eptp_of(&pt, false);
	*pt.leaf_slot = fmt_make_leaf(&c, 2, 0x200000, S2_PROT_R, S2_MT_WB);
	assert_int_equal(ref_ept_walk(eptp, 0, 0x1234, &x), 0);
	assert_int_equal(x.hpa, 0x201234);
	assert_int_equal(x.size, 2ull << 20);

	*pt.leaf_slot = (fmt_make_leaf(&c, 2, 0x200000, S2_PROT_R, S2_MT_WB) & ~7ull) | EPT_W;
	assert_int_equal(ref_ept_walk(eptp, 0, 0, &x), REF_FAULT_MISCONFIG);
	for (unsigned emt = 2; emt <= 7; emt += (emt == 3 ? 4 : 1)) {
		*pt.leaf_slot =
			(fmt_make_leaf(&c, 2, 0x200000, S2_PROT_R, S2_MT_WB) & ~EPT_MT_MASK) |
			((uint64_t)emt << 3);
		assert_int_equal(ref_ept_walk(eptp, 0, 0, &x), REF_FAULT_MISCONFIG);
	}
	/* An unaligned 2 MiB leaf sets reserved bits 20:12. */
	*pt.leaf_slot = fmt_make_leaf(&c, 2, 0x201000, S2_PROT_R, S2_MT_WB);
	assert_int_equal(ref_ept_walk(eptp, 0, 0, &x), REF_FAULT_RESERVED);
	assert_int_equal(x.level, 2);
	*pt.leaf_slot = fmt_make_leaf(&c, 2, 0x200000, S2_PROT_R, S2_MT_WB);
	/* Page size in a PML4E is reserved; memory-type bits in a table too. */
	pt.tables[4][0] |= EPT_PS;
	assert_int_equal(ref_ept_walk(eptp, 0, 0, &x), REF_FAULT_RESERVED);
	assert_int_equal(x.level, 4);
	pt.tables[4][0] &= ~EPT_PS;
	pt.tables[3][0] |= 6ull << 3;
	assert_int_equal(ref_ept_walk(eptp, 0, 0, &x), REF_FAULT_RESERVED);
	assert_int_equal(x.level, 3);
	pt.tables[3][0] &= ~(7ull << 3);
	/* Beyond the 4-level walk's 48 bits. */
	assert_int_equal(ref_ept_walk(eptp, 0, 1ull << 48, &x), REF_FAULT_ADDR);
	path_free(&pt);
}

/* A format-made table tree mapping several gpas at every leaf size walks to
 * the addresses the leaves were given. */
static void test_walk_mixed_tree(void **state)
{
	struct s2_fmt_cfg c = cfg_for(48, S2_FMTF_AD);
	uint64_t *l4 = new_table(), *l3 = new_table(), *l2 = new_table(), *l1 = new_table();
	uint64_t eptp;
	struct ref_xlate x;

	(void)state;
	/* gpa 0..1G via l3[0] -> l2; l2[0] -> l1 (4K), l2[1] = 2M leaf;
	 * l3[1] = 1G leaf. */
	l4[0] = fmt_make_table(&c, 4, (uint64_t)(uintptr_t)l3);
	l3[0] = fmt_make_table(&c, 3, (uint64_t)(uintptr_t)l2);
	l3[1] = fmt_make_leaf(&c, 3, 0x40000000ull * 7, S2_PROT_R | S2_PROT_X, S2_MT_WB);
	l2[0] = fmt_make_table(&c, 2, (uint64_t)(uintptr_t)l1);
	l2[1] = fmt_make_leaf(&c, 2, 0x200000ull * 9, S2_PROT_R | S2_PROT_W, S2_MT_UC);
	l1[5] = fmt_make_leaf(&c, 1, 0x77000, S2_PROT_R | S2_PROT_ACCESSED | S2_PROT_DIRTY,
			      S2_MT_WB);
	assert_int_equal(s2_ept_make_eptp((uint64_t)(uintptr_t)l4, S2_EPTP_MT_WB, 4, true, &eptp),
			 0);

	assert_int_equal(ref_ept_walk(eptp, 0, 0x5abc, &x), 0);
	assert_int_equal(x.hpa, 0x77abc);
	assert_int_equal(x.level, 1);
	assert_true(x.accessed && x.dirty);
	assert_int_equal(ref_ept_walk(eptp, 0, 0x4000, &x), REF_FAULT_NOT_PRESENT);
	assert_int_equal(x.level, 1);
	assert_int_equal(ref_ept_walk(eptp, 0, 0x212345, &x), 0);
	assert_int_equal(x.hpa, 0x200000ull * 9 + 0x12345);
	assert_int_equal(x.memtype, S2_MT_UC);
	assert_int_equal(x.perm, S2_PROT_R | S2_PROT_W);
	assert_int_equal(ref_ept_walk(eptp, 0, 0x40000000ull + 0x1234567, &x), 0);
	assert_int_equal(x.hpa, 0x40000000ull * 7 + 0x1234567);
	assert_int_equal(x.level, 3);
	assert_int_equal(x.perm, S2_PROT_R | S2_PROT_X | S2_PROT_XU);
	assert_int_equal(ref_ept_walk(eptp, 0, 0x80000000ull, &x), REF_FAULT_NOT_PRESENT);
	assert_int_equal(x.level, 3);
	free(l1);
	free(l2);
	free(l3);
	free(l4);
}

/* ---- registers -------------------------------------------------------------- */

/* EPTP fields sit where the SDM puts them. */
static void test_eptp_fields(void **state)
{
	uint64_t roots[3] = { 0, 0x123456789000ull, (1ull << 52) - PG };
	uint64_t eptp;

	(void)state;
	for (int ri = 0; ri < 3; ri++) {
		for (unsigned levels = 4; levels <= 5; levels++) {
			for (int ad = 0; ad <= 1; ad++) {
				for (unsigned mt = 0; mt <= 6; mt += 6) {
					assert_int_equal(
						s2_ept_make_eptp(roots[ri], mt, levels, ad, &eptp),
						0);
					assert_int_equal(eptp & 7, mt);
					assert_int_equal((eptp >> 3) & 7, levels - 1);
					assert_int_equal((eptp >> 6) & 1, (unsigned)ad);
					assert_int_equal((eptp >> 7) & 1, 0);
					assert_int_equal((eptp >> 8) & 0xf, 0);
					assert_int_equal(eptp & 0x000ffffffffff000ull, roots[ri]);
					assert_int_equal(eptp >> 52, 0);
				}
			}
		}
	}
	/* The one field combination, spelled out. */
	assert_int_equal(s2_ept_make_eptp(0x1000, S2_EPTP_MT_WB, 4, true, &eptp), 0);
	assert_int_equal(eptp, 0x105eull);
	assert_int_equal(s2_ept_make_eptp(0x2000, S2_EPTP_MT_UC, 5, false, &eptp), 0);
	assert_int_equal(eptp, 0x2020ull);
}

/* Bad input leaves *eptp untouched and returns -EINVAL. */
static void test_eptp_bad_input(void **state)
{
	uint64_t eptp = 0xdeadbeef;

	(void)state;
	for (unsigned mt = 0; mt < 8; mt++) {
		if (mt == 0 || mt == 6)
			continue;
		assert_int_equal(s2_ept_make_eptp(0x1000, mt, 4, false, &eptp), -EINVAL);
	}
	assert_int_equal(s2_ept_make_eptp(0x1000, 6, 3, false, &eptp), -EINVAL);
	assert_int_equal(s2_ept_make_eptp(0x1000, 6, 6, false, &eptp), -EINVAL);
	assert_int_equal(s2_ept_make_eptp(0x1000, 6, 0, false, &eptp), -EINVAL);
	assert_int_equal(s2_ept_make_eptp(0x1001, 6, 4, false, &eptp), -EINVAL);
	assert_int_equal(s2_ept_make_eptp(0x1800, 6, 4, false, &eptp), -EINVAL);
	assert_int_equal(s2_ept_make_eptp(1ull << 52, 6, 4, false, &eptp), -EINVAL);
	assert_int_equal(s2_ept_make_eptp(1ull << 63, 6, 4, false, &eptp), -EINVAL);
	assert_int_equal(eptp, 0xdeadbeef);
	assert_int_equal(s2_ept_make_eptp(0x1000, 6, 4, false, NULL), -EINVAL);
	assert_int_equal(kvm_x86_ept_eptp(NULL, &eptp), -EINVAL);
	assert_int_equal(eptp, 0xdeadbeef);
}

/* Every EPTP the builder accepts is one the reference walker accepts. */
static void test_eptp_walkable(void **state)
{
	struct ref_xlate x;
	uint64_t *root = new_table();
	uint64_t eptp;

	(void)state;
	for (unsigned levels = 4; levels <= 5; levels++) {
		assert_int_equal(s2_ept_make_eptp((uint64_t)(uintptr_t)root, S2_EPTP_MT_WB, levels,
						  true, &eptp),
				 0);
		assert_int_equal(ref_ept_walk(eptp, 0, 0, &x), REF_FAULT_NOT_PRESENT);
		assert_int_equal(x.level, (int)levels);
	}
	free(root);
}

/*
 * kvm_x86_ept_eptp() points at the VM's root with its walk length and A/D
 * setting, and the tables the core builds behind it translate a faulted gpa
 * to the host page the environment gave, as the CPU would walk them.
 */
static void check_vm_eptp(unsigned gpa_bits, unsigned flags)
{
	struct s2_hosted h;
	struct kvm_vm_params p = { .fmt = S2_FMT_X86_EPT,
				   .gpa_bits = gpa_bits,
				   .fmt_flags = flags };
	struct kvm_memory_slot slot = {
		.id = 1, .base_gfn = 0x100000, .npages = 1024, .userspace_addr = 0x7f0000000000ull
	};
	struct kvm *kvm;
	struct kvm_vcpu *vcpu;
	struct ref_xlate x;
	uint64_t eptp = 0;
	gpa_t gpa = gfn_to_gpa(slot.base_gfn) + 0x3456;
	int r;

	s2_hosted_init(&h);
	h.quiet = true;
	p.env = &h.env;
	assert_int_equal(kvm_create_vm(&p, &kvm), 0);
	assert_int_equal(kvm_vcpu_create(kvm, 0, &vcpu), 0);
	assert_int_equal(kvm_set_memslot(kvm, &slot), 0);

	assert_int_equal(kvm_x86_ept_eptp(kvm, &eptp), 0);
	assert_int_equal(eptp & 7, S2_EPTP_MT_WB);
	assert_int_equal(((eptp >> 3) & 7) + 1, gpa_bits <= 48 ? 4 : 5);
	assert_int_equal((eptp >> 6) & 1, !!(flags & S2_FMTF_AD));
	assert_int_equal(eptp & S2_EPTP_ROOT_MASK, kvm_mmu_root_hpa(kvm));
	assert_int_equal(eptp & ~(S2_EPTP_ROOT_MASK | 0x7f), 0);

	assert_int_equal(ref_ept_walk(eptp, 0, gpa, &x), REF_FAULT_NOT_PRESENT);
	r = kvm_tdp_page_fault(vcpu, gpa, S2_ACC_WRITE);
	assert_int_equal(r, RET_PF_FIXED);
	assert_int_equal(ref_ept_walk(eptp, (flags & S2_FMTF_MBEC) ? REF_EPT_MBEC : 0, gpa, &x), 0);
	assert_int_equal(x.hpa, slot.userspace_addr + 0x3456);
	assert_true(x.perm & S2_PROT_W);
	assert_true(x.perm & S2_PROT_R);
	assert_int_equal(x.memtype & S2_MT_MASK, S2_MT_WB);

	kvm_destroy_vm(kvm);
	s2_hosted_quiesce(&h);
	assert_int_equal(s2_hosted_pages_in_use(&h), 0);
}

static void test_vm_eptp(void **state)
{
	(void)state;
	check_vm_eptp(48, 0);
	check_vm_eptp(48, S2_FMTF_AD);
	check_vm_eptp(39, S2_FMTF_AD | S2_FMTF_MBEC | S2_FMTF_SUPPRESS_VE);
#if defined(CONFIG_S2_EPT_5LEVEL)
	check_vm_eptp(57, S2_FMTF_AD);
#endif
}

/* A VM of another format has no EPTP. */
static void test_vm_eptp_other_format(void **state)
{
	static const struct {
		enum s2_fmt_id fmt;
		unsigned bits;
	} others[] = {
		{ S2_FMT_ARM64_S2, 40 },
		{ S2_FMT_RISCV_G, 41 },
		{ S2_FMT_X86_NPT, 48 },
		{ S2_FMT_FAKE, 48 },
	};
	int tried = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		struct s2_hosted h;
		struct kvm_vm_params p = { .fmt = others[i].fmt, .gpa_bits = others[i].bits };
		struct kvm *kvm;
		uint64_t eptp = 0x1234;

		if (!s2_fmt_supported(others[i].fmt))
			continue;
		s2_hosted_init(&h);
		h.quiet = true;
		p.env = &h.env;
		if (kvm_create_vm(&p, &kvm))
			continue;
		tried++;
		assert_int_equal(kvm_x86_ept_eptp(kvm, &eptp), -EINVAL);
		assert_int_equal(eptp, 0x1234);
		kvm_destroy_vm(kvm);
		s2_hosted_quiesce(&h);
	}
	if (!tried)
		skip();
}

/* Exit-qualification bits 0..2 become READ/WRITE/EXEC; USER needs 7+8+9. */
static void test_violation_access(void **state)
{
	(void)state;
	assert_int_equal(s2_ept_violation_access(0), 0);
	assert_int_equal(s2_ept_violation_access(1), S2_ACC_READ);
	assert_int_equal(s2_ept_violation_access(2), S2_ACC_WRITE);
	assert_int_equal(s2_ept_violation_access(4), S2_ACC_EXEC);
	assert_int_equal(s2_ept_violation_access(3), S2_ACC_READ | S2_ACC_WRITE);
	/* Entry permissions (bits 3..6) and other bits are not the access. */
	assert_int_equal(s2_ept_violation_access(0x78 | 1), S2_ACC_READ);
	assert_int_equal(s2_ept_violation_access(0x4 | 0x380), S2_ACC_EXEC | S2_ACC_USER);
	assert_int_equal(s2_ept_violation_access(0x4 | 0x300), S2_ACC_EXEC);
	assert_int_equal(s2_ept_violation_access(0x4 | 0x280), S2_ACC_EXEC);
	assert_int_equal(s2_ept_violation_access(0x1 | 0x380), S2_ACC_READ);
	assert_int_equal(s2_ept_violation_access(~0ull & ~7ull), 0);
}

/* The zap's quick tests (tests/lib/fmt_quick.h), every flag set. */
static void test_quick_tests(void **state)
{
	(void)state;
	for (unsigned f = 0; f < NFLAGS; f++) {
		struct s2_fmt_cfg c = cfg_for(48, flag_sets[f]);

		check_quick_tests(&c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_cfg_widths),
		cmocka_unit_test(test_init_cfg_bad_input),
		cmocka_unit_test(test_leaf_roundtrip_4level),
		cmocka_unit_test(test_leaf_roundtrip_5level),
		cmocka_unit_test(test_leaf_set_prot),
		cmocka_unit_test(test_leaf_memtypes),
		cmocka_unit_test(test_table_entries),
		cmocka_unit_test(test_frozen),
		cmocka_unit_test(test_frozen_hardware_view),
		cmocka_unit_test(test_mmio),
		cmocka_unit_test(test_helpers),
		cmocka_unit_test(test_hw_ad_bits),
		cmocka_unit_test(test_walk_and_of_levels),
		cmocka_unit_test(test_walker_misconfig),
		cmocka_unit_test(test_walk_mixed_tree),
		cmocka_unit_test(test_eptp_fields),
		cmocka_unit_test(test_eptp_bad_input),
		cmocka_unit_test(test_eptp_walkable),
		cmocka_unit_test(test_violation_access),
		cmocka_unit_test(test_vm_eptp),
		cmocka_unit_test(test_vm_eptp_other_format),
		cmocka_unit_test(test_quick_tests),
	};

	return cmocka_run_group_tests_name("fmt-x86-ept", tests, NULL, NULL);
}

#endif /* CONFIG_S2_FMT_X86_EPT */
