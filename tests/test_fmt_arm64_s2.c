/* SPDX-License-Identifier: MIT */
/*
 * arm64 stage-2 format: every entry the format writes, checked bit by bit
 * against the Arm ARM's numbers and walked by the reference walker
 * (tests/ref/arm64_walker.c), with VTCR_EL2/VTTBR_EL2 from the builders.
 * Tables are built with the fmt_* inlines in memory from aligned_alloc, so
 * pa == va.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "s2mmu/config.h"

#if !S2_ENABLED(CONFIG_S2_FMT_ARM64_S2)
/* The format is not in this build: nothing to test. */
#include "tests/lib/not_built.h"
T_NOT_BUILT_MAIN("fmt-arm64-s2")
#else

#include "fmt/arm64-s2/fmt.h"
#include "tests/lib/fmt_quick.h"
#include "tests/lib/fmt_tables.h"
#include "ref/arm64_walker.h"
#include "s2mmu/arm64-s2.h"
#include "s2mmu/env-hosted.h"
#include "s2mmu/kvm.h"
#include "s2mmu/memslot.h"
#include "s2mmu/mmu.h"
#include "s2mmu/vcpu.h"

static const unsigned granules[] = { 4096, 16384, 65536 };

static const unsigned flag_sets[] = {
	0,
	S2_FMTF_AD,
	S2_FMTF_AD | S2_FMTF_HD,
	S2_FMTF_XNX,
	S2_FMTF_FWB,
	S2_FMTF_LPA2,
	S2_FMTF_AD | S2_FMTF_HD | S2_FMTF_XNX | S2_FMTF_FWB | S2_FMTF_LPA2 | S2_FMTF_VMID16,
};

static const unsigned memtypes[] = { S2_MT_WB, S2_MT_UC,     S2_MT_WC, S2_MT_WT,
				     S2_MT_WP, S2_MT_DEVICE, S2_MT_NR };

static unsigned gshift(unsigned granule)
{
	return granule == 16384 ? 14 : granule == 65536 ? 16 : 12;
}

static struct s2_fmt_cfg make_cfg(unsigned granule, unsigned gpa_bits, unsigned flags)
{
	struct kvm_vm_params p = {
		.fmt = S2_FMT_ARM64_S2, .gpa_bits = gpa_bits, .granule = granule, .fmt_flags = flags
	};
	struct s2_fmt_cfg c;

	memset(&c, 0xa5, sizeof(c));
	assert_int_equal(fmt_init_cfg(&c, &p), 0);
	return c;
}

static unsigned walk_ctl(unsigned flags)
{
	return ((flags & S2_FMTF_FWB) ? REF_A64_FWB : 0) |
	       ((flags & S2_FMTF_XNX) ? REF_A64_XNX : 0);
}

static unsigned out_bits(unsigned flags)
{
	return (flags & S2_FMTF_LPA2) ? 52 : 48;
}

static uint64_t vtcr_of(const struct s2_fmt_cfg *c)
{
	uint64_t v = 0;

	assert_int_equal(s2_arm64_make_vtcr(1u << c->page_shift, c->gpa_bits, c->levels,
					    out_bits(c->flags), c->flags, &v),
			 0);
	return v;
}

static uint64_t vttbr_of(const struct s2_fmt_cfg *c, const void *root)
{
	uint64_t v = 0;

	assert_int_equal(
		s2_arm64_make_vttbr((hpa_t)(uintptr_t)root, c->vmid, c->flags & S2_FMTF_VMID16, &v),
		0);
	return v;
}

/* ---- table building (with the format's own make_table) ---- */

/* struct tables, tables_init(), slot_at(): tests/lib/fmt_tables.h */

/* ---- what the format should do, written out independently ---- */

/* S2_PROT_* a leaf made with @prot reads back as. */
static unsigned expect_prot(unsigned flags, unsigned prot)
{
	unsigned e = prot &
		     (S2_PROT_R | S2_PROT_HOST_WRITABLE | S2_PROT_MMU_WRITABLE | S2_PROT_ACCESSED);

	if (prot & S2_PROT_W) {
		e |= S2_PROT_W;
		/* S2AP[1] is the dirty state: set at once without HD. */
		if (!(flags & S2_FMTF_HD) || (prot & S2_PROT_DIRTY))
			e |= S2_PROT_DIRTY;
	}
	if (flags & S2_FMTF_XNX)
		e |= prot & (S2_PROT_X | S2_PROT_XU);
	else if (prot & (S2_PROT_X | S2_PROT_XU))
		e |= S2_PROT_X | S2_PROT_XU;
	return e;
}

static unsigned expect_memtype(unsigned flags, unsigned mt)
{
	switch (mt) {
	case S2_MT_WB: return S2_MT_WB;
	case S2_MT_WC: return S2_MT_WC;
	case S2_MT_WT:
	case S2_MT_WP: return S2_MT_WT;
	case S2_MT_DEVICE: return S2_MT_DEVICE;
	default: (void)flags; return S2_MT_UC;
	}
}

/* MemAttr[3:0] (descriptor bits 5:2) the Arm ARM gives for each type. */
static unsigned expect_memattr(unsigned flags, unsigned mt)
{
	bool fwb = flags & S2_FMTF_FWB;

	switch (expect_memtype(flags, mt)) {
	case S2_MT_WB: return fwb ? 0x6 : 0xf;
	case S2_MT_WC: return fwb ? 0x5 : 0x5;
	case S2_MT_WT: return fwb ? 0x7 : 0xa;
	case S2_MT_DEVICE: return 0x1;
	default: return 0x0;
	}
}

/* XN[1:0] (bits 54:53) for the execute rights of @prot. */
static unsigned expect_xn(unsigned flags, unsigned prot)
{
	bool x = prot & S2_PROT_X, xu = prot & S2_PROT_XU;

	if (!(flags & S2_FMTF_XNX))
		return (x || xu) ? 0 : 2;
	if (x && xu)
		return 0;
	if (x)
		return 3; /* not at EL0 */
	if (xu)
		return 1; /* not at EL1 */
	return 2;
}

/* The level-@level size of a 2^ps granule. */
static uint64_t lsize(unsigned ps, int level)
{
	return 1ull << (ps + (unsigned)(level - 1) * (ps - 3));
}

/* Output address bits of a leaf, decoded by hand from the Arm ARM layout. */
static uint64_t manual_oa(unsigned ps, unsigned flags, uint64_t pte)
{
	uint64_t low = (1ull << ps) - 1;

	if (!(flags & S2_FMTF_LPA2))
		return pte & 0x0000ffffffffffffull & ~low;
	if (ps == 16)
		return (pte & 0x0000ffffffff0000ull) | (((pte >> 12) & 0xf) << 48);
	return (pte & 0x0003ffffffffffffull & ~low) | (((pte >> 8) & 3) << 50);
}

/* Raw bits of every leaf, against the Arm ARM's bit numbers. */
static void check_leaf_bits(const struct s2_fmt_cfg *c, int level, uint64_t pte, unsigned prot,
			    unsigned mt, hpa_t hpa)
{
	unsigned flags = c->flags, ps = c->page_shift;
	bool w = prot & S2_PROT_W;
	bool hd = flags & S2_FMTF_HD;

	assert_int_equal(pte & 3, level == 1 ? 3 : 1);
	assert_int_equal((pte >> 2) & 0xf, expect_memattr(flags, mt));
	assert_int_equal(!!(pte & (1ull << 6)), !!(prot & S2_PROT_R));
	assert_int_equal(!!(pte & (1ull << 7)), w && (!hd || (prot & S2_PROT_DIRTY)));
	if ((flags & S2_FMTF_LPA2) && ps != 16)
		assert_int_equal((pte >> 8) & 3, (hpa >> 50) & 3);
	else
		assert_int_equal((pte >> 8) & 3, 3); /* inner shareable */
	assert_int_equal(!!(pte & (1ull << 10)), !!(prot & S2_PROT_ACCESSED));
	assert_false(pte & (1ull << 11));
	assert_int_equal(!!(pte & (1ull << 51)), w && hd);
	assert_false(pte & (1ull << 52)); /* contiguous */
	assert_int_equal((pte >> 53) & 3, expect_xn(flags, prot));
	assert_int_equal(!!(pte & (1ull << 55)), !!(prot & S2_PROT_HOST_WRITABLE));
	assert_int_equal(!!(pte & (1ull << 56)), !!(prot & S2_PROT_MMU_WRITABLE));
	assert_int_equal(pte >> 57, 0);
	assert_int_equal(manual_oa(ps, flags, pte), hpa);
	/* Bits between the granule and the block size are RES0. */
	assert_int_equal(manual_oa(ps, flags, pte) & (lsize(ps, level) - 1), 0);
}

/* ---- tests ---- */

/*
 * The start level for every IPA width, from the Arm ARM's stage-2 rules
 * (the start level resolves 1 .. stride + 4 bits, i.e. at most 16
 * concatenated tables) with the fewest levels and never fewer than two:
 * hardware start level by granule and IPA range.
 */
static const struct {
	unsigned granule, lo, hi;
	int hw_start;
} start_table[] = {
	{ 4096, 32, 34, 2 },  { 4096, 35, 43, 1 },  { 4096, 44, 52, 0 },  { 16384, 32, 40, 2 },
	{ 16384, 41, 51, 1 }, { 16384, 52, 52, 0 }, { 65536, 32, 46, 2 }, { 65536, 47, 52, 1 },
};

static int expected_hw_start(unsigned granule, unsigned ipa)
{
	for (size_t i = 0; i < sizeof(start_table) / sizeof(start_table[0]); i++)
		if (start_table[i].granule == granule && ipa >= start_table[i].lo &&
		    ipa <= start_table[i].hi)
			return start_table[i].hw_start;
	fail_msg("no start level for %u/%u", granule, ipa);
	return 9;
}

/* Largest leaf level (ours) the granule allows: hw 2 always, hw 1 on 4K or
 * with LPA2/LPA, hw 0 on 4K with LPA2; never above the walk's root. */
static unsigned expected_max_leaf(unsigned granule, unsigned flags, unsigned levels)
{
	unsigned m = 2;

	if (granule == 4096 || (flags & S2_FMTF_LPA2))
		m = 3;
	if (granule == 4096 && (flags & S2_FMTF_LPA2))
		m = 4;
	return m < levels ? m : levels;
}

/*
 * Every IPA width 32..48 (52 with LPA2) of every granule starts where the
 * table above says, with the root holding exactly the bits the start level
 * resolves (concatenated tables at most 16); the reference walker, given
 * only VTCR_EL2, accepts the configuration and reaches the last root entry.
 */
static void test_start_level_and_root(void **state)
{
	(void)state;
	for (size_t g = 0; g < 3; g++) {
		unsigned gran = granules[g], ps = gshift(gran), stride = ps - 3;

		for (unsigned lpa = 0; lpa < 2; lpa++) {
			unsigned flags = lpa ? S2_FMTF_LPA2 : 0;

			for (unsigned ipa = 32; ipa <= (lpa ? 52u : 48u); ipa++) {
				struct s2_fmt_cfg c = make_cfg(gran, ipa, flags);
				int hw = expected_hw_start(gran, ipa);
				unsigned lsb = ps + (unsigned)(3 - hw) * stride;
				unsigned levels = (unsigned)(4 - hw);
				struct tables t;
				struct ref_xlate x;
				uint64_t vtcr, vttbr, *e;
				void *next;

				assert_int_equal(c.levels, levels);
				assert_int_equal(c.root_bits, ipa - lsb);
				assert_true(ipa - lsb >= 1 && ipa - lsb <= stride + 4);
				assert_int_equal(c.page_shift, ps);
				assert_int_equal(c.bits_per_level, stride);
				assert_int_equal(c.gpa_bits, ipa);
				assert_int_equal(c.pa_bits, lpa ? 52 : 48);
				assert_int_equal(c.min_leaf_level, 1);
				assert_int_equal(c.max_leaf_level,
						 expected_max_leaf(gran, flags, levels));
				assert_int_equal(s2_table_bytes(&c), gran);
				assert_true(s2_root_bytes(&c) <= 16ull * gran);

				tables_init(&t, &c);
				vtcr = vtcr_of(&c);
				vttbr = vttbr_of(&c, t.root);
				assert_int_equal(ref_arm64_walk(vtcr, vttbr, 0, 0, &x),
						 REF_FAULT_NOT_PRESENT);
				assert_int_equal(x.level, (int)levels);
				/* The last root entry is where the top IPA lands. */
				next = zalloc_aligned(&t, gran);
				e = &t.root[(1ull << c.root_bits) - 1];
				*e = fmt_make_table(&c, (int)levels, (hpa_t)(uintptr_t)next);
				assert_int_equal(
					ref_arm64_walk(vtcr, vttbr, 0, (1ull << ipa) - 1, &x),
					REF_FAULT_NOT_PRESENT);
				assert_int_equal(x.level, (int)levels - 1);
				assert_int_equal(ref_arm64_walk(vtcr, vttbr, 0, 1ull << ipa, &x),
						 REF_FAULT_ADDR);
				tables_free(&t);
			}
		}
	}
}

/* Examples the task and the Linux/QEMU probes rely on, spelled out. */
static void test_start_level_examples(void **state)
{
	struct s2_fmt_cfg c;

	(void)state;
	c = make_cfg(4096, 40, 0); /* hw level 1, 2 concatenated tables */
	assert_int_equal(c.levels, 3);
	assert_int_equal(s2_root_bytes(&c), 8192);
	c = make_cfg(0, 48, 0); /* granule 0 means 4K */
	assert_int_equal(c.levels, 4);
	assert_int_equal(s2_root_bytes(&c), 4096);
	c = make_cfg(4096, 52, S2_FMTF_LPA2); /* hw 0 with 16 tables, not hw -1 */
	assert_int_equal(c.levels, 4);
	assert_int_equal(s2_root_bytes(&c), 16 * 4096);
	c = make_cfg(16384, 48, 0); /* hw 1, 2 tables */
	assert_int_equal(c.levels, 3);
	assert_int_equal(s2_root_bytes(&c), 2 * 16384);
	c = make_cfg(16384, 52, S2_FMTF_LPA2); /* hw 0, 32 entries */
	assert_int_equal(c.levels, 4);
	assert_int_equal(s2_root_bytes(&c), 256);
	c = make_cfg(65536, 48, 0); /* hw 1, 64 entries */
	assert_int_equal(c.levels, 3);
	assert_int_equal(s2_root_bytes(&c), 512);
	c = make_cfg(65536, 32, 0); /* two levels minimum: hw 2, 8 entries */
	assert_int_equal(c.levels, 2);
	assert_int_equal(s2_root_bytes(&c), 64);
	c = make_cfg(65536, 52, S2_FMTF_LPA2); /* hw 1, 1024 entries */
	assert_int_equal(c.levels, 3);
	assert_int_equal(s2_root_bytes(&c), 8192);
}

/* Widths, granules, flags and VMIDs the format cannot do are refused. */
static void test_cfg_bad_input(void **state)
{
	static const struct {
		unsigned granule, bits, flags;
		uint32_t vmid;
	} bad[] = {
		{ 8192, 40, 0, 0 },
		{ 4096, 31, 0, 0 },
		{ 4096, 49, 0, 0 },
		{ 4096, 53, S2_FMTF_LPA2, 0 },
		{ 65536, 52, 0, 0 },
		{ 16384, 50, 0, 0 },
		{ 4096, 40, S2_FMTF_MBEC, 0 },
		{ 4096, 40, S2_FMTF_SUPPRESS_VE, 0 },
		{ 4096, 40, S2_FMTF_PBMT, 0 },
		{ 4096, 40, 1u << 20, 0 },
		{ 4096, 40, S2_FMTF_HD, 0 },
		{ 4096, 40, 0, 256 },
		{ 4096, 40, S2_FMTF_VMID16, 65536 },
	};
	struct kvm_vm_params ok = { .fmt = S2_FMT_ARM64_S2, .gpa_bits = 40 };
	struct s2_fmt_cfg c;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct kvm_vm_params p = { .fmt = S2_FMT_ARM64_S2,
					   .granule = bad[i].granule,
					   .gpa_bits = bad[i].bits,
					   .fmt_flags = bad[i].flags,
					   .vmid = bad[i].vmid };

		assert_int_equal(fmt_init_cfg(&c, &p), -EINVAL);
	}
	assert_int_equal(fmt_init_cfg(NULL, &ok), -EINVAL);
	assert_int_equal(fmt_init_cfg(&c, NULL), -EINVAL);
	ok.vmid = 255;
	assert_int_equal(fmt_init_cfg(&c, &ok), 0);
	assert_int_equal(c.vmid, 255);
	ok.vmid = 65535;
	ok.fmt_flags = S2_FMTF_VMID16;
	assert_int_equal(fmt_init_cfg(&c, &ok), 0);
}

/* A config per granule/flags that has every leaf level the granule allows. */
static struct s2_fmt_cfg full_cfg(unsigned gran, unsigned flags)
{
	return make_cfg(gran, (flags & S2_FMTF_LPA2) ? 52 : 48, flags);
}

/* A gpa with different index bits at every level. */
static gpa_t test_gpa(const struct s2_fmt_cfg *c)
{
	return 0x0005a5a5a5a5a5a5ull & ((1ull << c->gpa_bits) - 1) & ~0xfffull;
}

/*
 * Every leaf at every level each granule allows, at output 0, the highest
 * aligned output and a bit pattern, with every prot combination and every
 * memory type: the bits are the manual's, it decodes to what was asked
 * (normalised as documented) and the reference walker translates the gpa to
 * the same output with the same rights, type and A/D state.
 */
static void test_leaf_round_trip_and_walk(void **state)
{
	(void)state;
	for (size_t g = 0; g < 3; g++) {
		for (size_t f = 0; f < sizeof(flag_sets) / sizeof(flag_sets[0]); f++) {
			unsigned flags = flag_sets[f];
			struct s2_fmt_cfg c = full_cfg(granules[g], flags);
			unsigned ps = c.page_shift;
			gpa_t gpa = test_gpa(&c);

			for (int l = 1; l <= c.max_leaf_level; l++) {
				uint64_t size = lsize(ps, l);
				uint64_t top = (1ull << c.pa_bits) - size;
				hpa_t outs[3] = { 0, top, 0x000a5a5a5a5a5a5aull & top };
				struct tables t;
				uint64_t vtcr, vttbr, *e;

				tables_init(&t, &c);
				e = slot_at(&c, &t, gpa, l);
				vtcr = vtcr_of(&c);
				vttbr = vttbr_of(&c, t.root);
				for (size_t o = 0; o < 3; o++) {
					for (unsigned prot = 0; prot <= S2_PROT_ALL; prot++) {
						for (size_t m = 0;
						     m < sizeof(memtypes) / sizeof(memtypes[0]);
						     m++) {
							unsigned mt = memtypes[m],
								 ep = expect_prot(flags, prot);
							struct ref_xlate x;
							s2_pte_t pte = fmt_make_leaf(&c, l, outs[o],
										     prot, mt);

							check_leaf_bits(&c, l, pte, prot, mt,
									outs[o]);
							assert_true(fmt_is_present(&c, pte, l));
							assert_true(fmt_is_leaf(&c, pte, l));
							assert_false(fmt_is_frozen(pte));
							assert_false(fmt_is_mmio(&c, pte));
							assert_int_equal(fmt_leaf_hpa(&c, pte, l),
									 outs[o]);
							assert_int_equal(fmt_leaf_prot(&c, pte, l),
									 ep);
							assert_int_equal(
								fmt_leaf_memtype(&c, pte, l),
								expect_memtype(flags, mt));
							/* Same leaf, re-protected, equals a fresh one. */
							assert_int_equal(
								fmt_leaf_set_prot(
									&c,
									fmt_make_leaf(
										&c, l, outs[o],
										prot ^ 0xff, mt),
									l, prot),
								pte);

							*e = pte;
							assert_int_equal(
								ref_arm64_walk(vtcr, vttbr,
									       walk_ctl(flags),
									       gpa + 0x123, &x),
								0);
							assert_int_equal(x.level, l);
							assert_int_equal(x.size, size);
							assert_int_equal(x.hpa,
									 outs[o] + ((gpa + 0x123) &
										    (size - 1)));
							assert_int_equal(x.perm, ep & S2_PROT_RWX);
							assert_int_equal(x.memtype,
									 expect_memtype(flags, mt));
							assert_int_equal(x.accessed,
									 !!(ep & S2_PROT_ACCESSED));
							assert_int_equal(x.dirty,
									 !!(ep & S2_PROT_DIRTY));
						}
					}
				}
				tables_free(&t);
			}
		}
	}
}

/*
 * Table entries at every level above 1: 0b11 and the address (0, the
 * highest page, a pattern), nothing else; present, not a leaf.
 */
static void test_table_entries(void **state)
{
	(void)state;
	for (size_t g = 0; g < 3; g++) {
		for (size_t f = 0; f < sizeof(flag_sets) / sizeof(flag_sets[0]); f++) {
			unsigned flags = flag_sets[f];
			struct s2_fmt_cfg c = full_cfg(granules[g], flags);
			unsigned ps = c.page_shift;
			uint64_t top = (1ull << c.pa_bits) - (1ull << ps);
			hpa_t addrs[3] = { 0, top, 0x0005a5a5a5a5a000ull & top };

			for (int l = 2; l <= c.levels; l++) {
				for (size_t a = 0; a < 3; a++) {
					s2_pte_t pte = fmt_make_table(&c, l, addrs[a]);
					uint64_t attr_bits;

					assert_int_equal(pte & 3, 3);
					assert_int_equal(manual_oa(ps, flags, pte), addrs[a]);
					assert_true(fmt_is_present(&c, pte, l));
					assert_false(fmt_is_leaf(&c, pte, l));
					assert_int_equal(fmt_table_hpa(&c, pte, l), addrs[a]);
					/* No attribute bits at all (stage-2 tables have none). */
					attr_bits = pte & ~3ull;
					if ((flags & S2_FMTF_LPA2) && ps != 16)
						attr_bits &= ~(0x0003ffffffffffffull &
							       ~((1ull << ps) - 1)) &
							     ~(3ull << 8);
					else if ((flags & S2_FMTF_LPA2) && ps == 16)
						attr_bits &=
							~0x0000ffffffff0000ull & ~(0xfull << 12);
					else
						attr_bits &= ~(0x0000ffffffffffffull &
							       ~((1ull << ps) - 1));
					assert_int_equal(attr_bits, 0);
				}
			}
		}
	}
}

/* Hand-written descriptors from the manual's bit numbers. */
static void test_manual_examples(void **state)
{
	struct s2_fmt_cfg c;
	const unsigned rwx = S2_PROT_RWX | S2_PROT_ACCESSED;

	(void)state;
	/* 4K page, RWX, normal WB, AF: 0b11 | MemAttr 0xf | S2AP 11 | SH 11 | AF. */
	c = make_cfg(4096, 40, 0);
	assert_int_equal(fmt_make_leaf(&c, 1, 0x40100000, rwx, S2_MT_WB), 0x401007ffull);
	/* Read-only, not executable: XN[1] (bit 54). */
	assert_int_equal(fmt_make_leaf(&c, 1, 0x40100000, S2_PROT_R | S2_PROT_ACCESSED, S2_MT_WB),
			 0x4010077full | (1ull << 54));
	/* 2 MiB block, device-nGnRE, RW: 0b01 and MemAttr 0b0001. */
	assert_int_equal(fmt_make_leaf(&c, 2, 0x40200000, S2_PROT_R | S2_PROT_W | S2_PROT_ACCESSED,
				       S2_MT_DEVICE),
			 0x40200000ull | 0x1 | (0x1 << 2) | 0xc0 | 0x300 | 0x400 | (1ull << 54));
	/* Normal non-cacheable is 0b0101. */
	assert_int_equal((fmt_make_leaf(&c, 1, 0, 0, S2_MT_WC) >> 2) & 0xf, 0x5);
	/* A table is the address and 0b11. */
	assert_int_equal(fmt_make_table(&c, 3, 0x12345000), 0x12345003ull);

	/* FWB: forced write-back is 0b0110, device-nGnRE 0b0001, NC 0b0101. */
	c = make_cfg(4096, 40, S2_FMTF_FWB);
	assert_int_equal((fmt_make_leaf(&c, 1, 0, rwx, S2_MT_WB) >> 2) & 0xf, 0x6);
	assert_int_equal((fmt_make_leaf(&c, 1, 0, rwx, S2_MT_DEVICE) >> 2) & 0xf, 0x1);
	assert_int_equal((fmt_make_leaf(&c, 1, 0, rwx, S2_MT_WC) >> 2) & 0xf, 0x5);

	/* XNX: X only = UXN (0b11), XU only = PXN (0b01), none = 0b10. */
	c = make_cfg(4096, 40, S2_FMTF_XNX);
	assert_int_equal(fmt_make_leaf(&c, 1, 0, S2_PROT_R | S2_PROT_X, 0) >> 53 & 3, 3);
	assert_int_equal(fmt_make_leaf(&c, 1, 0, S2_PROT_R | S2_PROT_XU, 0) >> 53 & 3, 1);
	assert_int_equal(fmt_make_leaf(&c, 1, 0, S2_PROT_R, 0) >> 53 & 3, 2);

	/* HD: writable-clean is DBM with S2AP[1] clear. */
	c = make_cfg(4096, 40, S2_FMTF_AD | S2_FMTF_HD);
	assert_int_equal(fmt_make_leaf(&c, 1, 0, S2_PROT_R | S2_PROT_W, 0) & 0x0008000000000080ull,
			 1ull << 51);

	/* 64K + LPA: OA[51:48] in bits 15:12. */
	c = make_cfg(65536, 52, S2_FMTF_LPA2);
	assert_int_equal(fmt_make_leaf(&c, 1, 0x000f000000010000ull, 0, S2_MT_WB) &
				 0x0000fffffffff000ull,
			 0x000000000001f000ull);
	/* 4K + LPA2: OA[51:50] in bits 9:8, OA[49:48] in place, no SH. */
	c = make_cfg(4096, 52, S2_FMTF_LPA2);
	assert_int_equal(fmt_make_leaf(&c, 1, 0x000e000000001000ull, 0, S2_MT_WB) &
				 0x0003fffffffff300ull,
			 0x0002000000001300ull);
}

/*
 * Blocks exist only where the architecture has them: 0b01 at level 1 is
 * reserved; 16K/64K hw level 1 and 4K hw level 0 need LPA2. The format says
 * "not present" there and the reference walker refuses such tables.
 */
static void test_block_levels(void **state)
{
	static const struct {
		unsigned granule, flags;
		int level; /* ours */
		bool ok;   /* the format allows a block there */
		bool hw;   /* the architecture does (CPU with PAMax 52) */
	} cases[] = {
		{ 4096, 0, 1, false, false },
		{ 4096, 0, 2, true, true },
		{ 4096, 0, 3, true, true },
		{ 4096, 0, 4, false, false },
		{ 4096, S2_FMTF_LPA2, 4, true, true },
		{ 16384, 0, 2, true, true },
		{ 16384, 0, 3, false, false },
		{ 16384, S2_FMTF_LPA2, 3, true, true },
		{ 16384, S2_FMTF_LPA2, 4, false, false },
		{ 65536, 0, 2, true, true },
		/* 4 TiB blocks need FEAT_LPA, which the VM did not say it has. */
		{ 65536, 0, 3, false, true },
		{ 65536, S2_FMTF_LPA2, 3, true, true },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct s2_fmt_cfg c = full_cfg(cases[i].granule, cases[i].flags);
		s2_pte_t block = 0x1ull | (0xfull << 2) | 0xc0 | 0x300 | 0x400;
		struct tables t;
		struct ref_xlate x;
		uint64_t *e;
		gpa_t gpa = test_gpa(&c);
		int want;

		assert_int_equal(fmt_is_present(&c, block, cases[i].level), cases[i].ok);
		assert_int_equal(fmt_is_leaf(&c, block, cases[i].level), cases[i].ok);
		tables_init(&t, &c);
		e = slot_at(&c, &t, gpa, cases[i].level);
		*e = block;
		want = cases[i].hw ? 0 : REF_FAULT_RESERVED;
		assert_int_equal(ref_arm64_walk(vtcr_of(&c), vttbr_of(&c, t.root), 0, gpa, &x),
				 want);
		assert_int_equal(x.level, cases[i].level);
		tables_free(&t);
	}
}

/*
 * The frozen and MMIO values are invalid descriptors at every level,
 * recognised by bits 0..11 alone; the walker faults on them.
 */
static void test_frozen_and_mmio(void **state)
{
	(void)state;
	for (size_t g = 0; g < 3; g++) {
		struct s2_fmt_cfg c = full_cfg(granules[g], S2_FMTF_LPA2);
		gfn_t gfns[3] = { 0, 0x123456789ull, (1ull << 40) - 1 };
		struct tables t;
		struct ref_xlate x;
		gpa_t gpa = test_gpa(&c);

		for (int l = 1; l <= c.levels; l++) {
			assert_false(fmt_is_present(&c, FMT_FROZEN, l));
			assert_false(fmt_is_present(&c, FMT_FROZEN | 0x123000, l));
			for (size_t i = 0; i < 3; i++)
				assert_false(fmt_is_present(&c, fmt_make_mmio(&c, gfns[i]), l));
			assert_false(fmt_is_present(&c, 0, l));
		}
		assert_int_equal(FMT_FROZEN & 1, 0);
		assert_int_equal(FMT_FROZEN & ~0xffeull, 0);
		assert_true(fmt_is_frozen(FMT_FROZEN));
		assert_true(fmt_is_frozen(FMT_FROZEN | 0x0000fffffffff000ull));
		assert_false(fmt_is_frozen(0));
		assert_false(fmt_is_mmio(&c, 0));
		assert_false(fmt_is_mmio(&c, FMT_FROZEN));
		for (size_t i = 0; i < 3; i++) {
			s2_pte_t m = fmt_make_mmio(&c, gfns[i]);

			assert_true(fmt_is_mmio(&c, m));
			assert_false(fmt_is_frozen(m));
			assert_int_equal(m & 1, 0);
			assert_int_equal(m >> 12, gfns[i]);
		}
		tables_init(&t, &c);
		*slot_at(&c, &t, gpa, 1) = FMT_FROZEN;
		assert_int_equal(ref_arm64_walk(vtcr_of(&c), vttbr_of(&c, t.root), 0, gpa, &x),
				 REF_FAULT_NOT_PRESENT);
		assert_int_equal(x.level, 1);
		*slot_at(&c, &t, gpa, 1) = fmt_make_mmio(&c, gpa >> 12);
		assert_int_equal(ref_arm64_walk(vtcr_of(&c), vttbr_of(&c, t.root), 0, gpa, &x),
				 REF_FAULT_NOT_PRESENT);
		tables_free(&t);
	}
}

/*
 * Derived helpers: write-protect removes S2AP[1] and DBM (hardware cannot
 * write any more), mkold clears AF only, mkclean with HD keeps the leaf
 * writable through DBM, the software bits read back.
 */
static void test_helpers(void **state)
{
	const unsigned all = S2_PROT_ALL;
	struct s2_fmt_cfg c;
	s2_pte_t p, q;

	(void)state;
	c = make_cfg(4096, 48, 0);
	p = fmt_make_leaf(&c, 2, 0x200000, all, S2_MT_WB);
	assert_true(fmt_is_writable(&c, p, 2));
	assert_true(fmt_is_dirty(&c, p, 2));
	q = fmt_wrprotect(&c, p, 2);
	assert_false(fmt_is_writable(&c, q, 2));
	assert_false(q & ((1ull << 7) | (1ull << 51)));
	assert_int_equal(q, p & ~(1ull << 7));
	assert_true(fmt_is_mmu_writable(&c, q, 2));
	assert_true(fmt_is_host_writable(&c, q, 2));
	assert_true(fmt_is_young(&c, p, 2));
	q = fmt_mkold(&c, p, 2);
	assert_int_equal(q, p & ~(1ull << 10));
	assert_false(fmt_is_young(&c, q, 2));
	assert_true(fmt_is_dirty(&c, fmt_mkclean(&c, p, 2), 2)); /* no HD: stays */
	q = fmt_mkwritable(&c, fmt_wrprotect(&c, p, 2), 2);
	assert_int_equal(q, p);

	c = make_cfg(4096, 48, S2_FMTF_AD | S2_FMTF_HD);
	p = fmt_make_leaf(&c, 1, 0x1000, all, S2_MT_WB);
	assert_true(p & (1ull << 51));
	assert_true(p & (1ull << 7));
	assert_true(fmt_is_dirty(&c, p, 1));
	q = fmt_mkclean(&c, p, 1);
	assert_int_equal(q, p & ~(1ull << 7)); /* DBM stays: still writable */
	assert_true(fmt_is_writable(&c, q, 1));
	assert_false(fmt_is_dirty(&c, q, 1));
	q = fmt_wrprotect(&c, p, 1);
	assert_int_equal(q, p & ~((1ull << 7) | (1ull << 51)));
	assert_false(fmt_is_writable(&c, q, 1));
	/* Without HD, DBM alone grants nothing. */
	c = make_cfg(4096, 48, 0);
	assert_false(fmt_is_writable(&c, p & ~(1ull << 7), 1));
	assert_false(fmt_leaf_prot(&c, p & ~(1ull << 7), 1) & S2_PROT_W);
}

/* ---- VTCR_EL2 / VTTBR_EL2 ---- */

/* The probe in shared/probes/arm64 runs with this value for 4K, 40 bits. */
static void test_vtcr_probe_value(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_int_equal(s2_arm64_make_vtcr(4096, 40, 3, 40, 0, &v), 0);
	assert_int_equal(v, 0x80023558ull);
}

/* SL0 the Arm ARM gives per granule and hardware start level (-1: SL2). */
static int manual_sl0(unsigned granule, int hw)
{
	if (granule == 4096)
		return hw == 2 ? 0 : hw == 1 ? 1 : hw == 0 ? 2 : hw == -1 ? 0 : -1;
	return 3 - hw;
}

/* Valid IPA ranges per granule and hardware start level (S2InconsistentSL
 * bounds, 52 only with LPA2, no FEAT_TTST, 16K level 0 and 4K level -1 only
 * with DS). Returns whether @ipa may start at @hw. */
static bool manual_valid(unsigned granule, int hw, unsigned ipa, bool lpa)
{
	unsigned lo, hi;

	if (ipa < 25 || ipa > (lpa ? 52u : 48u))
		return false;
	switch (granule) {
	case 4096:
		switch (hw) {
		case -1:
			if (!lpa)
				return false;
			lo = 49;
			hi = 52;
			break;
		case 0:
			lo = 40;
			hi = 52;
			break;
		case 1:
			lo = 31;
			hi = 43;
			break;
		case 2:
			lo = 22;
			hi = 34;
			break;
		default: return false;
		}
		break;
	case 16384:
		switch (hw) {
		case 0:
			if (!lpa)
				return false;
			lo = 48;
			hi = 52;
			break;
		case 1:
			lo = 37;
			hi = 51;
			break;
		case 2:
			lo = 26;
			hi = 40;
			break;
		case 3:
			lo = 15;
			hi = 29;
			break;
		default: return false;
		}
		break;
	default:
		switch (hw) {
		case 1:
			lo = 43;
			hi = 59;
			break;
		case 2:
			lo = 30;
			hi = 46;
			break;
		case 3:
			lo = 17;
			hi = 33;
			break;
		default: return false;
		}
		break;
	}
	return ipa >= lo && ipa <= hi;
}

/*
 * Field by field for every granule, IPA width and walk length: T0SZ, SL0
 * (and SL2 for level -1), the walk attributes, TG0, PS, RES1, DS, nothing
 * else; the builder accepts exactly the start levels the manual allows, and
 * the reference walker accepts every value it builds.
 */
static void test_vtcr_fields(void **state)
{
	void *root = aligned_alloc(1 << 20, 1 << 20);
	const uint64_t known = 0x3f | (3 << 6) | (0xfff << 8) | (7 << 16) | (1 << 19) | (1 << 21) |
			       (1 << 22) | (1ull << 31) | (1ull << 32) | (1ull << 33);

	(void)state;
	assert_non_null(root);
	memset(root, 0, 1 << 20);
	for (size_t g = 0; g < 3; g++) {
		unsigned gran = granules[g];

		for (unsigned lpa = 0; lpa < 2; lpa++) {
			unsigned flags = lpa ? S2_FMTF_LPA2 : 0;
			unsigned pa = lpa ? 52 : 48;

			for (unsigned ipa = 20; ipa <= 53; ipa++) {
				for (unsigned levels = 0; levels <= 6; levels++) {
					int hw = 4 - (int)levels;
					bool want = levels >= 1 && levels <= 5 &&
						    manual_valid(gran, hw, ipa, lpa);
					uint64_t v = 0x5555;
					struct ref_xlate x;
					int r = s2_arm64_make_vtcr(gran, ipa, levels, pa, flags,
								   &v);

					if (!want) {
						assert_int_equal(r, -EINVAL);
						assert_int_equal(v, 0x5555);
						continue;
					}
					assert_int_equal(r, 0);
					assert_int_equal(v & 0x3f, 64 - ipa);
					assert_int_equal((v >> 6) & 3, manual_sl0(gran, hw));
					assert_int_equal(!!(v & (1ull << 33)), hw == -1);
					assert_int_equal((v >> 8) & 3, 1);  /* IRGN0 WBWA */
					assert_int_equal((v >> 10) & 3, 1); /* ORGN0 WBWA */
					assert_int_equal((v >> 12) & 3, 3); /* SH0 inner */
					assert_int_equal((v >> 14) & 3, gran == 4096  ? 0 :
									gran == 65536 ? 1 :
											2);
					assert_int_equal((v >> 16) & 7, lpa ? 6 : 5);
					assert_true(v & (1ull << 31));
					assert_int_equal(!!(v & (1ull << 32)),
							 lpa && gran != 65536);
					assert_int_equal(v & ((1 << 19) | (1 << 21) | (1 << 22)),
							 0);
					assert_int_equal(v & ~known, 0);
					assert_int_not_equal(
						ref_arm64_walk(v, (uint64_t)(uintptr_t)root, 0, 0,
							       &x),
						REF_FAULT_MISCONFIG);
					assert_int_equal(x.level, (int)levels);
				}
			}
		}
	}
	free(root);
}

/* PS for each output size; HA, HD and VS from the flags. */
static void test_vtcr_ps_and_flags(void **state)
{
	static const unsigned pas[] = { 32, 36, 40, 42, 44, 48, 52 };
	uint64_t v;

	(void)state;
	for (unsigned i = 0; i < 7; i++) {
		assert_int_equal(s2_arm64_make_vtcr(4096, 32, 2, pas[i], S2_FMTF_LPA2, &v), 0);
		assert_int_equal((v >> 16) & 7, i);
	}
	assert_int_equal(s2_arm64_make_vtcr(4096, 40, 3, 40, S2_FMTF_AD, &v), 0);
	assert_int_equal(v, 0x80023558ull | (1ull << 21));
	assert_int_equal(s2_arm64_make_vtcr(4096, 40, 3, 40, S2_FMTF_AD | S2_FMTF_HD, &v), 0);
	assert_int_equal(v, 0x80023558ull | (1ull << 21) | (1ull << 22));
	assert_int_equal(s2_arm64_make_vtcr(4096, 40, 3, 40, S2_FMTF_VMID16, &v), 0);
	assert_int_equal(v, 0x80023558ull | (1ull << 19));
	assert_int_equal(s2_arm64_make_vtcr(4096, 40, 3, 40, S2_FMTF_FWB | S2_FMTF_XNX, &v), 0);
	assert_int_equal(v, 0x80023558ull);
	assert_int_equal(s2_arm64_make_vtcr(0, 40, 3, 40, 0, &v), 0);
	assert_int_equal(v, 0x80023558ull);
}

static void test_vtcr_bad_input(void **state)
{
	uint64_t v = 7;

	(void)state;
	assert_int_equal(s2_arm64_make_vtcr(4096, 40, 3, 40, 0, NULL), -EINVAL);
	assert_int_equal(s2_arm64_make_vtcr(8192, 40, 3, 40, 0, &v), -EINVAL);
	assert_int_equal(s2_arm64_make_vtcr(4096, 40, 3, 41, 0, &v), -EINVAL);
	assert_int_equal(s2_arm64_make_vtcr(4096, 40, 3, 52, 0, &v), -EINVAL);
	assert_int_equal(s2_arm64_make_vtcr(4096, 40, 3, 40, S2_FMTF_HD, &v), -EINVAL);
	assert_int_equal(s2_arm64_make_vtcr(4096, 40, 3, 40, S2_FMTF_MBEC, &v), -EINVAL);
	assert_int_equal(s2_arm64_make_vtcr(4096, 40, 3, 40, S2_FMTF_PBMT, &v), -EINVAL);
	assert_int_equal(s2_arm64_make_vtcr(4096, 40, 2, 40, 0, &v), -EINVAL);
	assert_int_equal(s2_arm64_make_vtcr(4096, 40, 4, 40, 0, &v), 0); /* 2 entries at hw 0 */
	v = 7;
	assert_int_equal(s2_arm64_make_vtcr(4096, 49, 4, 48, 0, &v), -EINVAL);
	assert_int_equal(s2_arm64_make_vtcr(16384, 52, 4, 48, 0, &v), -EINVAL);
	assert_int_equal(v, 7);
}

static void test_vttbr(void **state)
{
	uint64_t v = 3;

	(void)state;
	assert_int_equal(s2_arm64_make_vttbr(0x12345000, 0x5a, false, &v), 0);
	assert_int_equal(v, 0x005a000012345000ull);
	assert_int_equal(s2_arm64_make_vttbr(0x0000ffffffffe000ull, 0xbeef, true, &v), 0);
	assert_int_equal(v, 0xbeefffffffffe000ull);
	assert_int_equal(s2_arm64_make_vttbr(0x40, 0, false, &v), 0);
	assert_int_equal(v, 0x40);
	/* 52-bit root: BADDR[51:48] in bits 5:2, CnP clear. */
	assert_int_equal(s2_arm64_make_vttbr(0x000f000012340000ull, 1, false, &v), 0);
	assert_int_equal(v, (1ull << 48) | 0x0000000012340000ull | (0xfull << 2));
	v = 3;
	assert_int_equal(s2_arm64_make_vttbr(0x1000, 0, false, NULL), -EINVAL);
	assert_int_equal(s2_arm64_make_vttbr(0x1020, 0, false, &v), -EINVAL);
	assert_int_equal(s2_arm64_make_vttbr(1ull << 52, 0, false, &v), -EINVAL);
	assert_int_equal(s2_arm64_make_vttbr(0x1000, 256, false, &v), -EINVAL);
	assert_int_equal(s2_arm64_make_vttbr(0x1000, 65536, true, &v), -EINVAL);
	assert_int_equal(v, 3);
}

/*
 * kvm_arm64_vtcr()/kvm_arm64_vttbr() describe the VM's own tables: after a
 * fault the reference walker, given only those two registers, translates
 * the gpa to the host page the environment handed out.
 */
static void check_vm(unsigned granule, unsigned gpa_bits, unsigned flags, uint32_t vmid)
{
	struct s2_hosted h;
	struct kvm_vm_params p = { .fmt = S2_FMT_ARM64_S2,
				   .gpa_bits = gpa_bits,
				   .granule = granule,
				   .fmt_flags = flags,
				   .vmid = vmid };
	struct kvm_memory_slot slot = {
		.id = 1, .base_gfn = 0x100000, .npages = 4096, .userspace_addr = 0x7f0000000000ull
	};
	struct kvm *kvm;
	struct kvm_vcpu *vcpu;
	struct ref_xlate x;
	uint64_t vtcr = 0, vttbr = 0;
	gpa_t gpa = gfn_to_gpa(slot.base_gfn) + 0x3456;
	int r;

	s2_hosted_init(&h);
	h.quiet = true;
	p.env = &h.env;
	assert_int_equal(kvm_create_vm(&p, &kvm), 0);
	assert_int_equal(kvm_vcpu_create(kvm, 0, &vcpu), 0);
	assert_int_equal(kvm_set_memslot(kvm, &slot), 0);

	assert_int_equal(kvm_arm64_vtcr(kvm, 48, &vtcr), 0);
	assert_int_equal(kvm_arm64_vttbr(kvm, &vttbr), 0);
	assert_int_equal(vtcr & 0x3f, 64 - gpa_bits);
	assert_int_equal(vttbr & 0x0000fffffffffffeull, kvm_mmu_root_hpa(kvm));
	assert_int_equal(vttbr >> 48, vmid);
	assert_int_equal(!!(vtcr & (1ull << 21)), !!(flags & S2_FMTF_AD));

	assert_int_equal(ref_arm64_walk(vtcr, vttbr, walk_ctl(flags), gpa, &x),
			 REF_FAULT_NOT_PRESENT);
	r = kvm_tdp_page_fault(vcpu, gpa, S2_ACC_WRITE);
	assert_int_equal(r, RET_PF_FIXED);
	assert_int_equal(ref_arm64_walk(vtcr, vttbr, walk_ctl(flags), gpa, &x), 0);
	assert_int_equal(x.hpa, slot.userspace_addr + 0x3456);
	assert_true(x.perm & S2_PROT_W);
	assert_true(x.perm & S2_PROT_R);
	assert_true(x.accessed);
	assert_int_equal(x.memtype, S2_MT_WB);

	kvm_destroy_vm(kvm);
	s2_hosted_quiesce(&h);
	assert_int_equal(s2_hosted_pages_in_use(&h), 0);
}

static void test_vm_registers(void **state)
{
	(void)state;
	check_vm(4096, 40, 0, 1);
	check_vm(4096, 48, S2_FMTF_AD | S2_FMTF_HD | S2_FMTF_VMID16, 0x1234);
	check_vm(16384, 48, S2_FMTF_XNX, 7);
	check_vm(65536, 42, S2_FMTF_FWB, 200);
}

/*
 * Roots smaller than a page are real: 64K with a 48-bit IPA starts at hw
 * level 1 with 64 entries (512 bytes), 4K with 36 bits at hw level 1 with 64.
 * The VM must still be created and walkable.
 */
static void test_vm_small_root(void **state)
{
	(void)state;
	check_vm(65536, 48, 0, 3);
	check_vm(4096, 36, 0, 0);
}

/* The builders refuse a VM of another format and NULL. */
static void test_vm_registers_bad(void **state)
{
	static const struct {
		enum s2_fmt_id fmt;
		unsigned bits;
	} others[] = {
		{ S2_FMT_X86_EPT, 48 },
		{ S2_FMT_RISCV_G, 41 },
		{ S2_FMT_X86_NPT, 48 },
		{ S2_FMT_FAKE, 48 },
	};
	uint64_t v = 0x1234;

	(void)state;
	assert_int_equal(kvm_arm64_vtcr(NULL, 48, &v), -EINVAL);
	assert_int_equal(kvm_arm64_vttbr(NULL, &v), -EINVAL);
	assert_int_equal(v, 0x1234);
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		struct s2_hosted h;
		struct kvm_vm_params p = { .fmt = others[i].fmt, .gpa_bits = others[i].bits };
		struct kvm *kvm;

		if (!s2_fmt_supported(others[i].fmt))
			continue;
		s2_hosted_init(&h);
		h.quiet = true;
		p.env = &h.env;
		if (kvm_create_vm(&p, &kvm))
			continue;
		assert_int_equal(kvm_arm64_vtcr(kvm, 48, &v), -EINVAL);
		assert_int_equal(kvm_arm64_vttbr(kvm, &v), -EINVAL);
		assert_int_equal(v, 0x1234);
		kvm_destroy_vm(kvm);
		s2_hosted_quiesce(&h);
	}
	{
		struct s2_hosted h;
		struct kvm_vm_params p = { .fmt = S2_FMT_ARM64_S2, .gpa_bits = 40 };
		struct kvm *kvm;

		s2_hosted_init(&h);
		h.quiet = true;
		p.env = &h.env;
		assert_int_equal(kvm_create_vm(&p, &kvm), 0);
		assert_int_equal(kvm_arm64_vtcr(kvm, 48, NULL), -EINVAL);
		assert_int_equal(kvm_arm64_vttbr(kvm, NULL), -EINVAL);
		assert_int_equal(kvm_arm64_vtcr(kvm, 50, &v), -EINVAL);
		assert_int_equal(kvm_arm64_vtcr(kvm, 52, &v), -EINVAL); /* no LPA2 */
		assert_int_equal(v, 0x1234);
		kvm_destroy_vm(kvm);
		s2_hosted_quiesce(&h);
	}
}

/* ---- the reference walker itself must be able to say no ---- */

static void test_walker_catches_bad_entries(void **state)
{
	struct s2_fmt_cfg c = make_cfg(4096, 48, 0);
	const s2_pte_t leaf_attrs = (0xfull << 2) | 0xc0 | 0x300 | 0x400;
	struct tables t;
	struct ref_xlate x;
	uint64_t vtcr, vttbr, *e;
	gpa_t gpa = test_gpa(&c);

	(void)state;
	tables_init(&t, &c);
	vtcr = vtcr_of(&c);
	vttbr = vttbr_of(&c, t.root);
	e = slot_at(&c, &t, gpa, 1);

	*e = 0x1000 | 3 | leaf_attrs;
	assert_int_equal(ref_arm64_walk(vtcr, vttbr, 0, gpa, &x), 0);
	*e = 0x1000 | 1 | leaf_attrs; /* 0b01 at hw level 3 */
	assert_int_equal(ref_arm64_walk(vtcr, vttbr, 0, gpa, &x), REF_FAULT_RESERVED);
	*e = 0x1000 | 3 | (leaf_attrs & ~(0xfull << 2)) | (0x4 << 2); /* inner 00 */
	assert_int_equal(ref_arm64_walk(vtcr, vttbr, 0, gpa, &x), REF_FAULT_MISCONFIG);
	*e = 0x1000 | 3 | (leaf_attrs & ~0x300ull) | 0x100; /* SH 0b01 */
	assert_int_equal(ref_arm64_walk(vtcr, vttbr, 0, gpa, &x), REF_FAULT_MISCONFIG);
	*e = (1ull << 48) | 3 | leaf_attrs; /* bit 48: RES0 without DS */
	assert_int_equal(ref_arm64_walk(vtcr, vttbr, 0, gpa, &x), REF_FAULT_RESERVED);
	*e = 0x1000 | 3 | leaf_attrs | (1ull << 54);
	assert_int_equal(ref_arm64_walk(vtcr, vttbr, 0, gpa, &x), 0);
	assert_int_equal(x.perm, S2_PROT_R | S2_PROT_W);
	*e = 0x1000 | 3 | leaf_attrs | (1ull << 53); /* PXN with XNX: EL0 only */
	assert_int_equal(ref_arm64_walk(vtcr, vttbr, REF_A64_XNX, gpa, &x), 0);
	assert_int_equal(x.perm, S2_PROT_R | S2_PROT_W | S2_PROT_XU);
	*e = 0x1000 | 3 | (leaf_attrs & ~0x80ull) | (1ull << 51); /* DBM, no HD */
	assert_int_equal(ref_arm64_walk(vtcr, vttbr, 0, gpa, &x), 0);
	assert_false(x.perm & S2_PROT_W);
	assert_int_equal(ref_arm64_walk(vtcr | (3ull << 21), vttbr, 0, gpa, &x), 0);
	assert_true(x.perm & S2_PROT_W);
	assert_false(x.dirty);

	/* Configuration faults. */
	assert_int_equal(ref_arm64_walk(vtcr | (3ull << 14), vttbr, 0, gpa, &x),
			 REF_FAULT_MISCONFIG); /* TG0 0b11 */
	assert_int_equal(ref_arm64_walk(vtcr | (7ull << 16), vttbr, 0, gpa, &x),
			 REF_FAULT_MISCONFIG); /* PS 0b111 */
	assert_int_equal(ref_arm64_walk((vtcr & ~(3ull << 6)) | (1ull << 6), vttbr, 0, gpa, &x),
			 REF_FAULT_MISCONFIG); /* 48 bits from hw level 1 */
	assert_int_equal(ref_arm64_walk(vtcr | (3ull << 6), vttbr, 0, gpa, &x),
			 REF_FAULT_MISCONFIG); /* hw level 3 start: no TTST */
	assert_int_equal(ref_arm64_walk((vtcr & ~0x3full) | 12, vttbr, 0, gpa, &x),
			 REF_FAULT_MISCONFIG); /* 52 bits without DS */
	assert_int_equal(ref_arm64_walk(vtcr, vttbr | 0x800, 0, gpa, &x),
			 REF_FAULT_MISCONFIG); /* BADDR not aligned to the root */
	assert_int_equal(ref_arm64_walk(vtcr, vttbr, 0, 1ull << 48, &x), REF_FAULT_ADDR);
	tables_free(&t);
}

/* The output size check of the walker, with a 40-bit PS. */
static void test_walker_output_size(void **state)
{
	struct s2_fmt_cfg c = make_cfg(4096, 40, 0);
	struct tables t;
	struct ref_xlate x;
	uint64_t vtcr = 0, vttbr, *e;
	gpa_t gpa = 0x12345000;

	(void)state;
	tables_init(&t, &c);
	assert_int_equal(s2_arm64_make_vtcr(4096, 40, c.levels, 40, 0, &vtcr), 0);
	vttbr = vttbr_of(&c, t.root);
	e = slot_at(&c, &t, gpa, 1);
	*e = fmt_make_leaf(&c, 1, (1ull << 40) - 4096, S2_PROT_RWX, S2_MT_WB);
	if ((uintptr_t)t.root >> 40) {
		/* Host pointers above 2^40 cannot be walked with PS = 40. */
		assert_int_equal(ref_arm64_walk(vtcr, vttbr, 0, gpa, &x), REF_FAULT_RESERVED);
	} else {
		assert_int_equal(ref_arm64_walk(vtcr, vttbr, 0, gpa, &x), 0);
		*e = fmt_make_leaf(&c, 1, 1ull << 40, S2_PROT_RWX, S2_MT_WB);
		assert_int_equal(ref_arm64_walk(vtcr, vttbr, 0, gpa, &x), REF_FAULT_RESERVED);
	}
	tables_free(&t);
}

/* ---- flush hooks (hosted build: the embedder's hooks) ---- */

struct flush_log {
	unsigned vm, range, dc;
	gpa_t gpa;
	uint64_t size;
	hpa_t dc_pa;
	uint64_t dc_size;
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

static void hook_dc(void *ctx, hpa_t pa, uint64_t size)
{
	struct flush_log *lg = ctx;

	lg->dc++;
	lg->dc_pa = pa;
	lg->dc_size = size;
}

/*
 * TLB maintenance reaches the embedder's hooks; break-before-make
 * invalidates the whole range the old entry covered (it may have been a
 * table); cache maintenance is skipped with FWB; missing hooks are fine.
 */
static void test_flush_hooks(void **state)
{
	struct s2_fmt_cfg c = make_cfg(4096, 48, 0);
	struct flush_log lg = { 0 };
	struct s2_env_ops ops = { .tlb_flush_vm = hook_vm,
				  .tlb_flush_range = hook_range,
				  .dcache_clean_inval = hook_dc };
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

	fmt_cache_clean(&c, &env, 0x80000000, 0x200000);
	assert_int_equal(lg.dc, 1);
	assert_int_equal(lg.dc_pa, 0x80000000);
	assert_int_equal(lg.dc_size, 0x200000);
	c = make_cfg(4096, 48, S2_FMTF_FWB);
	fmt_cache_clean(&c, &env, 0x80000000, 0x200000);
	assert_int_equal(lg.dc, 1);

	ops.tlb_flush_range = NULL;
	fmt_tlb_flush_range(&c, &env, k, 0x200000, 0x3000);
	assert_int_equal(lg.vm, 2);
	ops.tlb_flush_vm = NULL;
	ops.dcache_clean_inval = NULL;
	fmt_tlb_flush_vm(&c, &env, k);
	fmt_tlb_flush_range(&c, &env, k, 0, 0x1000);
	fmt_cache_clean(&c, &env, 0, 0x1000);
	assert_int_equal(lg.vm, 2);
	assert_int_equal(lg.dc, 1);
}

/* The zap's quick tests (tests/lib/fmt_quick.h), each granule. */
static void test_quick_tests(void **state)
{
	(void)state;
	for (size_t g = 0; g < 3; g++) {
		struct s2_fmt_cfg c = make_cfg(granules[g], 48, S2_FMTF_AD | S2_FMTF_HD);

		check_quick_tests(&c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_level_and_root),
		cmocka_unit_test(test_quick_tests),
		cmocka_unit_test(test_start_level_examples),
		cmocka_unit_test(test_cfg_bad_input),
		cmocka_unit_test(test_leaf_round_trip_and_walk),
		cmocka_unit_test(test_table_entries),
		cmocka_unit_test(test_manual_examples),
		cmocka_unit_test(test_block_levels),
		cmocka_unit_test(test_frozen_and_mmio),
		cmocka_unit_test(test_helpers),
		cmocka_unit_test(test_vtcr_probe_value),
		cmocka_unit_test(test_vtcr_fields),
		cmocka_unit_test(test_vtcr_ps_and_flags),
		cmocka_unit_test(test_vtcr_bad_input),
		cmocka_unit_test(test_vttbr),
		cmocka_unit_test(test_vm_registers),
		cmocka_unit_test(test_vm_small_root),
		cmocka_unit_test(test_vm_registers_bad),
		cmocka_unit_test(test_walker_catches_bad_entries),
		cmocka_unit_test(test_walker_output_size),
		cmocka_unit_test(test_flush_hooks),
	};

	return cmocka_run_group_tests_name("fmt-arm64-s2", tests, NULL, NULL);
}
#endif
