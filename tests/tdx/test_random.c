// SPDX-License-Identifier: MIT
/*
 * Random sequences over a TD, both halves, checked against the TDX module
 * model (tests/tdx/model.h) and a brute-force model of what must and may be
 * mapped, for EPT 4 and 5 levels. The sequence starts in the TD's build
 * phase (PAGE.ADD of initial memory, then finalization) and goes on with
 * private and shared faults, conversions of random ranges both ways (many
 * cutting 2 MiB private leaves: demotion), collapses (promotion once the
 * guest accepted a whole block), guest accepts at 4 KiB and 2 MiB, zaps and
 * host-MM invalidations of the shared half, memslot deletion and re-adding,
 * vcpu entries and exits (the model's TD epochs), with OPERAND_BUSY
 * injected in one SEAMCALL of seven.
 *
 * After every operation: no SEAMCALL was out of order, the VM is not
 * bugged, the model's and the mirror's leaf and S-EPT page counts agree,
 * and over the range the operation touched: the model's secure EPT and the
 * mirror root are the same map, each private page is the private backing
 * of its gfn, no direct root maps a private gfn (reference walker), every
 * shared translation is the memslot's page, and what a fault mapped since
 * its gfn's last invalidation is still mapped (private in the model, shared
 * in the walker). The whole window is checked every CHECK_EVERY operations
 * and at the end; teardown leaves the model empty with every page back.
 * Fixed seeds. Catches: the private removal in a memslot deletion skipped
 * (the model keeps leaves of a gfn with no slot: the leaf counts match, the
 * soundness check does not); the shared-side zap of a conversion to
 * private skipped (a private gfn mapped in the direct root); each applied.
 *
 * A failing seed leaves its run as a trace (docs/testing.md, "Failing cases
 * as traces"): the library's calls, a `tdx_model` line giving replay this
 * test's module (busy injection and seed, private backing), the guest's
 * accepts as `tdx_accept` lines, and where a check failed what it expected
 * (`expect_private`, `expect_map`, `expect_tdx_counts`), so `s2mmu replay`
 * stops at the same check. The vcpu's guest entries are not in it (replay
 * keeps the vcpu outside the guest: the same SEAMCALLs, as the kick makes
 * the vcpu leave before any removal).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kvm_internal.h"
#include "s2mmu/notifier.h"
#include "s2mmu/tdx.h"
#include "tests/lib/testlib.h"
#include "tests/tdx/model.h"

#define HVA_BASE 0x7f0000000000ull
#define G0 0x40000ull	     /* slot base gfn, 1 GiB aligned */
#define NPAGES 1024ull	     /* two 2 MiB blocks */
#define GMEM_PFN 0x900000ull /* private backing, 2 MiB aligned */
#define P KVM_MEMORY_ATTRIBUTE_PRIVATE
#define OPS 500
#define BUILD_OPS 40
#define CHECK_EVERY 50

static struct tvm T;
static struct tdx_model *M;
static struct s2_tdx_ops ops;
static unsigned gpa_bits;
static bool slot_in;		 /* the memslot is there */
static uint8_t must_map[NPAGES]; /* a fault mapped it since its last invalidation */
static uint64_t rng, cur_seed;
static struct {
	uint64_t priv_fixed, shared_fixed, memfault, mmio, conversions, added, accepted, promoted,
		demoted, removed;
} seen;
static uint64_t pfn_gets, pfn_puts, installs, installed_pages;
static uint64_t whole_before;		       /* removed_whole at the last forget() */
static uint64_t demoted_total, promoted_total; /* over a test's seeds */

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static uint64_t below(uint64_t n)
{
	return rnd() % n;
}

static int gmem_pfn(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, kvm_pfn_t *pfn,
		    int *max_level)
{
	(void)ctx;
	*pfn = GMEM_PFN + (gfn - slot->base_gfn);
	*max_level = 2;
	pfn_gets++;
	return 0;
}

#include "tests/tdx/model_hooks.h"

static void add_slot(void)
{
	t_slot(&T, 0, G0, NPAGES, HVA_BASE, 0);
	slot_in = true;
}

static void td(unsigned bits, uint64_t seed)
{
	struct kvm_vm_params p = t_default_params(S2_FMT_X86_EPT);
	struct kvm_tdx_params tp;

	gpa_bits = bits;
	rng = seed | 1;
	cur_seed = seed;
	memset(&seen, 0, sizeof(seen));
	memset(must_map, 0, sizeof(must_map));
	whole_before = 0;
	pfn_gets = pfn_puts = installs = installed_pages = 0;
	M = calloc(1, sizeof(*M));
	assert_non_null(M);
	p.gpa_bits = bits;
	t_trace_record(true);
	t_vm_init(&T, S2_FMT_X86_EPT, &p);
	t_kick_exits(&T);
	tdxm_init(M, kvm_mmu_levels(T.kvm), 7, seed);
	t_trace_line(&T, "tdx_model busy_one_in=7 seed=%#llx private_pfn=%#llx private_level=2",
		     (unsigned long long)seed, GMEM_PFN);
	M->finalized = false; /* the build phase: PAGE.ADD */
	ops = tdxm_ops_template;
	ops.track = w_track;
	ops.page_remove = w_remove;
	ops.sept_remove = w_sept_remove;
	ops.page_aug = w_aug;
	ops.page_add = w_add;
	ops.page_demote = w_demote;
	ops.page_promote = w_promote;
	ops.range_unblock = w_unblock;
	ops.private_pfn = gmem_pfn;
	ops.private_pfn_put = gmem_put;
	tp = (struct kvm_tdx_params){
		.ops = &ops, .ctx = M, .shared_bit = bits - 1, .busy_retries = 64
	};
	assert_int_equal(kvm_tdx_init(T.kvm, &tp), 0);
	add_slot();
}

static bool is_private(gfn_t g)
{
	return kvm_get_memory_attributes(T.kvm, g) & P;
}

/* The guest's TDG.MEM.PAGE.ACCEPT of G0 + @i's block at @level, also in the
 * trace (the library does not see it); the module's status. */
static uint64_t accept(uint64_t i, int level)
{
	gfn_t g = G0 + (i & ~(level == 2 ? 511ull : 0));
	uint64_t st = tdxm_accept(M, g << 12, level);

	t_trace_line(&T, "tdx_accept gfn=%#llx level=%d => %s", (unsigned long long)g, level,
		     st ? "-EIO" : "0");
	return st;
}

/* What a failed check wanted of G0 + @i's private page (its backing, or
 * none without the slot or the private attribute) and of its shared
 * translation (the memslot's page, or none), as trace lines. */
static void expect_private(uint64_t i, const char *why)
{
	if (slot_in && is_private(G0 + i))
		t_trace_line(&T, "expect_private gfn=%#llx hpa=%#llx # the private backing%s",
			     (unsigned long long)(G0 + i), (GMEM_PFN + i) << 12, why);
	else
		t_trace_line(&T, "expect_private gfn=%#llx hpa=none # %s",
			     (unsigned long long)(G0 + i), slot_in ? "shared" : "in no memslot");
}

static void expect_shared(uint64_t i, const char *why)
{
	unsigned long long gpa = ((G0 + i) | shared_gfn()) << 12;

	if (slot_in && !is_private(G0 + i))
		t_trace_line(&T, "expect_map gpa=%#llx hpa=%#llx # the memslot's page%s", gpa,
			     HVA_BASE + (i << 12), why);
	else
		t_trace_line(&T, "expect_map gpa=%#llx hpa=none # %s", gpa,
			     slot_in ? "private" : "in no memslot");
}

/* What the sequence may have left at gfn G0 + @i, against both models. */
static void check_gfn(uint64_t i, uint64_t op)
{
	gfn_t g = G0 + i;
	int ml = 0, ll = 0;
	uint64_t mh = 0;
	hpa_t lh = 0;
	enum tdxm_state st = tdxm_leaf(M, g << 12, &ml, &mh);
	int found = kvm_tdx_lookup_private(T.kvm, g, &lh, &ll);
	struct ref_xlate x;
	bool shared_mapped = !ref_walk_kvm(T.kvm, (g | shared_gfn()) << 12, &x);

	if (found != (st != TDXM_FREE) || (found && (ll != ml || lh != mh))) {
		t_trace_line(&T, "expect_private gfn=%#llx # the mirror and the secure EPT agree",
			     (unsigned long long)g);
		fail_msg("op %llu gfn %#llx: mirror %d (level %d %#llx), secure EPT state %d "
			 "(level %d %#llx)",
			 (unsigned long long)op, (unsigned long long)g, found, ll,
			 (unsigned long long)lh, st, ml, (unsigned long long)mh);
	}
	if (found && (!slot_in || !is_private(g) || lh != (GMEM_PFN + i) << 12)) {
		expect_private(i, "");
		fail_msg("op %llu gfn %#llx: private page %#llx (slot %d, private %d)",
			 (unsigned long long)op, (unsigned long long)g, (unsigned long long)lh,
			 slot_in, is_private(g));
	}
	if (shared_mapped && (!slot_in || is_private(g) || x.hpa != HVA_BASE + (i << 12))) {
		expect_shared(i, "");
		fail_msg("op %llu gfn %#llx: shared translation %#llx (slot %d, private %d)",
			 (unsigned long long)op, (unsigned long long)g, (unsigned long long)x.hpa,
			 slot_in, is_private(g));
	}
	if (!ref_walk_kvm(T.kvm, g << 12, &x)) {
		t_trace_line(
			&T, "expect_map gpa=%#llx hpa=none # no direct leaf without the shared bit",
			(unsigned long long)g << 12);
		fail_msg("op %llu gfn %#llx mapped without the shared bit", (unsigned long long)op,
			 (unsigned long long)g);
	}
	if (must_map[i] && !(is_private(g) ? found : shared_mapped)) {
		if (is_private(g))
			expect_private(i, " since its fault");
		else
			expect_shared(i, " since its fault");
		fail_msg("op %llu gfn %#llx (%s): faulted in, not mapped", (unsigned long long)op,
			 (unsigned long long)g, is_private(g) ? "private" : "shared");
	}
}

static void check_op(uint64_t op, uint64_t a, uint64_t b)
{
	struct kvm_tdx_stats s;

	if (M->illegal)
		fail_msg("op %llu: illegal SEAMCALL: %s", (unsigned long long)op, M->first_illegal);
	assert_false(kvm_is_bugged(T.kvm));
	assert_int_equal(kvm_tdx_get_stats(T.kvm, &s), 0);
	if (tdxm_nr_leaves(M) !=
		    s.cur_private_leaves[1] + s.cur_private_leaves[2] + s.cur_private_leaves[3] ||
	    tdxm_nr_sept(M) != s.cur_sept_pages)
		t_trace_line(&T, "expect_tdx_counts");
	assert_int_equal(tdxm_nr_leaves(M), s.cur_private_leaves[1] + s.cur_private_leaves[2] +
						    s.cur_private_leaves[3]);
	assert_int_equal(tdxm_nr_sept(M), s.cur_sept_pages);
	for (uint64_t i = a; i < b && i < NPAGES; i++)
		check_gfn(i, op);
}

/* Whether a fault's answer may be this one; must_map follows. */
static void do_fault(uint64_t i, bool shared)
{
	gfn_t g = G0 + i;
	bool priv = is_private(g);
	int r;

	for (int k = 0;; k++) {
		r = kvm_tdp_page_fault(T.vcpu, (shared ? g | shared_gfn() : g) << 12,
				       below(2) ? S2_ACC_WRITE : S2_ACC_READ);
		if (r != RET_PF_RETRY)
			break;
		assert_true(k < 200);
	}
	if (shared != !priv) {
		/* The exit disagrees with the attribute: convert first. */
		assert_int_equal(r, RET_PF_MEMORY_FAULT);
		seen.memfault++;
		return;
	}
	if (!slot_in) {
		assert_int_equal(r, shared ? RET_PF_EMULATE_MMIO : RET_PF_MEMORY_FAULT);
		seen.mmio++;
		return;
	}
	if (r != RET_PF_FIXED && r != RET_PF_SPURIOUS)
		fail_msg("%s fault of gfn %#llx: %d", shared ? "shared" : "private",
			 (unsigned long long)g, r);
	must_map[i] = 1;
	if (r == RET_PF_FIXED)
		shared ? seen.shared_fixed++ : seen.priv_fixed++;
}

/*
 * An invalidation of [a, b): nothing there must stay mapped; nor must a
 * shared gfn of a 2 MiB block it cuts (a shared huge leaf goes whole), nor
 * a private one where a 2 MiB private leaf went whole for want of a spare
 * S-EPT page (counted in removed_whole); other private leaves of the
 * block stay (demotion).
 */
static void forget(uint64_t a, uint64_t b)
{
	struct kvm_tdx_stats s;
	bool whole;

	assert_int_equal(kvm_tdx_get_stats(T.kvm, &s), 0);
	whole = s.removed_whole != whole_before;
	whole_before = s.removed_whole;
	for (uint64_t i = a & ~511ull; i < ((b + 511) & ~511ull) && i < NPAGES; i++)
		if ((i >= a && i < b) || whole || !is_private(G0 + i))
			must_map[i] = 0;
}

/* A gfn whose attribute is private (@priv) or shared, three times in
 * four; any gfn otherwise. */
static uint64_t pick(bool priv)
{
	uint64_t i = below(NPAGES);

	for (unsigned k = 0; k < 16 && below(4) && is_private(G0 + i) != priv; k++)
		i = below(NPAGES);
	return i;
}

static void random_range(uint64_t *a, uint64_t *b)
{
	switch (below(4)) {
	case 0: /* inside one 2 MiB block, often cutting a leaf */
		*a = below(NPAGES);
		*b = *a + 1 + below(40);
		break;
	case 1: /* across the 2 MiB boundary */
		*a = 512 - 1 - below(64);
		*b = 512 + 1 + below(64);
		break;
	case 2: /* a whole block */
		*a = below(2) * 512;
		*b = *a + 512;
		break;
	default:
		*a = below(NPAGES);
		*b = *a + 1 + below(NPAGES);
		break;
	}
	if (*b > NPAGES)
		*b = NPAGES;
}

/*
 * S2_TRACE_ALL set (tests/cli/tdx.sh): the first seed of each width only,
 * its trace kept though it passed, ending with the final state of every gfn
 * as expectations (each private page and shared translation the library
 * has, and the counts), so a replay that took another path than the test
 * fails.
 */
static void keep_passing_trace(unsigned bits, uint64_t seed)
{
	char name[64];

	for (uint64_t i = 0; i < NPAGES; i++) {
		gfn_t g = G0 + i;
		hpa_t lh;
		int ll;
		struct ref_xlate x;

		if (kvm_tdx_lookup_private(T.kvm, g, &lh, &ll) == 1)
			t_trace_line(&T, "expect_private gfn=%#llx hpa=%#llx level=%d",
				     (unsigned long long)g, (unsigned long long)lh, ll);
		else
			t_trace_line(&T, "expect_private gfn=%#llx hpa=none",
				     (unsigned long long)g);
		if (!ref_walk_kvm(T.kvm, (g | shared_gfn()) << 12, &x))
			t_trace_line(&T, "expect_map gpa=%#llx hpa=%#llx",
				     (unsigned long long)(g | shared_gfn()) << 12,
				     (unsigned long long)x.hpa);
		else
			t_trace_line(&T, "expect_map gpa=%#llx hpa=none",
				     (unsigned long long)(g | shared_gfn()) << 12);
	}
	t_trace_line(&T, "expect_tdx_counts");
	snprintf(name, sizeof(name), "tdx_random-%u-%llx", bits, (unsigned long long)seed);
	t_trace_save(&T, name);
}

static void run(unsigned bits, uint64_t seed)
{
	struct kvm_tdx_stats s;
	uint64_t septs;
	bool in_guest = false;

	td(bits, seed);
	/* Build phase: some private pages added with their contents. */
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0, G0 + NPAGES / 2, P), 0);
	for (unsigned k = 0; k < BUILD_OPS; k++) {
		uint64_t i = below(NPAGES / 2);
		int r = kvm_tdx_page_add(T.kvm, G0 + i, 0x5000000 + (i << 12));

		assert_true(r == 0 || r == -EEXIST || r == -EBUSY);
		if (!r) {
			seen.added++;
			must_map[i] = 1;
		}
		check_op(k, i, i + 1);
	}
	M->finalized = true;
	assert_int_equal(kvm_tdx_finalized(T.kvm), 0);
	check_op(BUILD_OPS, 0, NPAGES);
	for (uint64_t op = 0; op < OPS; op++) {
		uint64_t a = 0, b = 0, i;

		switch (below(16)) {
		case 0:
		case 1:
		case 2:
		case 3: /* private fault, mostly on a private gfn */
			i = pick(true);
			do_fault(i, false);
			a = i, b = i + 1;
			break;
		case 4:
		case 5:
		case 6: /* shared fault, mostly on a shared gfn */
			i = pick(false);
			do_fault(i, true);
			a = i & ~511ull, b = a + 512;
			break;
		case 7:
		case 8: { /* conversion */
			bool to_private = below(2);
			int lvl = 0;
			uint64_t h;

			random_range(&a, &b);
			i = below(2) * 512;
			if (below(3) == 0 && tdxm_leaf(M, (G0 + i) << 12, &lvl, &h) != TDXM_FREE &&
			    lvl == 2) {
				/* Cut a private 2 MiB leaf: demotion. */
				to_private = false;
				a = i + below(500);
				b = a + 1 + below(8);
			}
			if (to_private && below(2)) { /* whole blocks: 2 MiB private leaves */
				a &= ~511ull;
				b = (b + 511) & ~511ull;
			}
			assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0 + a, G0 + b,
								   to_private ? P : 0),
					 0);
			forget(a, b);
			seen.conversions++;
			a &= ~511ull;
			b = (b + 511) & ~511ull;
			break;
		}
		case 9: /* collapse */
			random_range(&a, &b);
			assert_true(kvm_tdx_collapse(T.kvm, G0 + a, G0 + b) >= 0);
			a &= ~511ull;
			b = (b + 511) & ~511ull;
			break;
		case 10: /* the guest accepts a pending page (or asks in vain) */
			for (unsigned k = 0; k < 32; k++) {
				int lvl;
				uint64_t h;

				i = below(NPAGES);
				if (tdxm_leaf(M, (G0 + i) << 12, &lvl, &h) != TDXM_PENDING &&
				    k < 31)
					continue;
				seen.accepted += !accept(i, lvl ? lvl : 1);
				break;
			}
			break;
		case 11: /* shared half: zap or host-MM invalidation */
			random_range(&a, &b);
			if (below(2)) {
				assert_true(kvm_zap_gfn_range(T.kvm, G0 + a, G0 + b) >= 0);
			} else {
				hva_t ha = HVA_BASE + (a << 12), hb = HVA_BASE + (b << 12);

				assert_true(kvm_mmu_notifier_invalidate_range_start(T.kvm, ha, hb,
										    true) >= 0);
				assert_true(kvm_mmu_notifier_invalidate_range_end(T.kvm, ha, hb,
										  true) >= 0);
			}
			for (uint64_t k = a & ~511ull; k < ((b + 511) & ~511ull); k++)
				if (!is_private(G0 + k))
					must_map[k] = 0;
			a &= ~511ull;
			b = (b + 511) & ~511ull;
			break;
		case 12: /* memslot out or back */
			if (slot_in && below(6) == 0) {
				assert_int_equal(kvm_delete_memslot(T.kvm, 0), 0);
				slot_in = false;
				forget(0, NPAGES);
				a = 0, b = NPAGES;
			} else if (!slot_in) {
				add_slot();
			}
			break;
		case 13: { /* the vcpu enters or leaves the TD */
			struct kvm_entry_actions act;

			if (!in_guest && !kvm_vcpu_entry_actions(T.vcpu, &act) &&
			    kvm_vcpu_enter_guest(T.vcpu)) {
				tdxm_vcpu_enter(M, 0);
				in_guest = true;
			} else if (in_guest) {
				if (M->in_guest[0])
					tdxm_vcpu_exit(M, 0);
				kvm_vcpu_exit_guest(T.vcpu);
				in_guest = false;
			}
			break;
		}
		case 14: /* the guest touches and accepts all of a block */
			a = below(2) * 512, b = a + 512;
			for (i = a; i < b; i++) {
				int lvl;
				uint64_t h;

				if (!is_private(G0 + i))
					continue;
				do_fault(i, false);
				if (tdxm_leaf(M, (G0 + i) << 12, &lvl, &h) == TDXM_PENDING)
					seen.accepted += !accept(i, lvl);
			}
			break;
		default: /* a few faults in a row on one block */
			i = below(NPAGES);
			for (uint64_t k = 0; k < 8; k++)
				do_fault((i + k * 37) % NPAGES, below(2));
			a = 0, b = NPAGES;
			break;
		}
		/* A kick made the vcpu leave (t_kick_exits): it re-enters
		 * only through case 13. */
		if (in_guest && kvm_vcpu_mode(T.vcpu) != IN_GUEST_MODE) {
			if (M->in_guest[0])
				tdxm_vcpu_exit(M, 0);
			in_guest = false;
		}
		check_op(op, a, b);
		if (op % CHECK_EVERY == CHECK_EVERY - 1)
			check_op(op, 0, NPAGES);
	}
	if (in_guest) {
		if (M->in_guest[0])
			tdxm_vcpu_exit(M, 0);
		kvm_vcpu_exit_guest(T.vcpu);
	}
	check_op(OPS, 0, NPAGES);
	assert_int_equal(kvm_tdx_get_stats(T.kvm, &s), 0);
	seen.promoted = s.promoted;
	seen.demoted = s.demoted;
	demoted_total += s.demoted;
	promoted_total += s.promoted;
	seen.removed = s.removed;
	print_message("bits %u seed %#llx: %llu private and %llu shared faults fixed, %llu "
		      "memory faults, %llu mmio, %llu conversions, %llu added, %llu accepted, "
		      "%llu removed, %llu demoted, %llu promoted, %llu busy\n",
		      bits, (unsigned long long)seed, (unsigned long long)seen.priv_fixed,
		      (unsigned long long)seen.shared_fixed, (unsigned long long)seen.memfault,
		      (unsigned long long)seen.mmio, (unsigned long long)seen.conversions,
		      (unsigned long long)seen.added, (unsigned long long)seen.accepted,
		      (unsigned long long)seen.removed, (unsigned long long)seen.demoted,
		      (unsigned long long)seen.promoted, (unsigned long long)M->n_busy);
	/* The sequence did what it is for. */
	assert_true(seen.priv_fixed > 20 && seen.shared_fixed > 20 && seen.memfault > 5 &&
		    seen.conversions > 20 && seen.added > 5 && seen.removed > 20 && M->n_busy > 0);
	septs = M->n_sept_add + M->n_demote - M->n_promote;
	if (getenv("S2_TRACE_ALL"))
		keep_passing_trace(bits, seed);
	t_vm_fini(&T);
	T.kvm = NULL;
	if (M->illegal)
		fail_msg("illegal SEAMCALL at teardown: %s", M->first_illegal);
	assert_int_equal(tdxm_nr_leaves(M), 0);
	assert_int_equal(tdxm_nr_sept(M), 0);
	assert_int_equal(tdxm_pages_out(M), 0);
	assert_true(M->key_released);
	assert_int_equal(M->n_reclaim, septs);
	assert_int_equal(pfn_puts, installed_pages + (pfn_gets - installs));
	free(M);
	M = NULL;
}

static void test_random_td_sequences(void **state)
{
	unsigned bits = (unsigned)(uintptr_t)*state;

	demoted_total = promoted_total = 0;
	run(bits, 0x7d1 + bits);
	if (getenv("S2_TRACE_ALL"))
		return; /* one seed a width, kept as a trace (tests/cli/tdx.sh) */
	run(bits, 0x5eed0000 + bits);
	/* Partial conversions of 2 MiB leaves and promotions happened. */
	assert_true(demoted_total > 0 && promoted_total > 0);
}

static int teardown(void **state)
{
	char name[64];

	if (T.kvm) {
		/* A seed failed: keep its run as a trace. */
		snprintf(name, sizeof(name), "tdx_random-%u-%llx", (unsigned)(uintptr_t)*state,
			 (unsigned long long)cur_seed);
		t_trace_save(&T, name);
		t_vm_fini(&T);
	}
	T.kvm = NULL;
	free(M);
	M = NULL;
	return 0;
}

int main(void)
{
	static uintptr_t b48 = 48, b52 = 52;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_prestate_setup_teardown(test_random_td_sequences, NULL, teardown,
							 (void *)b48),
		cmocka_unit_test_prestate_setup_teardown(test_random_td_sequences, NULL, teardown,
							 (void *)b52),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
