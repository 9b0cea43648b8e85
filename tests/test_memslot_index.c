// SPDX-License-Identifier: MIT
/*
 * The memslot set's indexes (core/kvm_internal.h struct s2_memslots): the id
 * table, the hva order with its max-end segment tree, and the binary-search
 * overlap checks of updates, against a brute-force model of the slots, over
 * long random sequences of adds, deletes, moves and flag changes with many
 * slots whose hva ranges overlap; and the notifiers that use them, end to
 * end, on a VM of 509 one-page memslots.
 *
 * Mutations seen to fail here (each made once by hand, then restored):
 *  - s2_hva_next_after() pruning with `<` for `<=` (a slot that ends at the
 *    range start is reported) and without the climb past right children;
 *  - s2_memslots_id_index() stopping at the first probe;
 *  - s2_memslots_fill() placing the added slot one past its hole, or not
 *    renumbering by_hva past the dropped slot;
 *  - s2_overlaps_any() looking at one slot only (a replace whose own slot
 *    comes first misses the overlap with the next);
 *  - s2_mn_run() walking only the first slot the iterator returns.
 */
#include <stdlib.h>
#include <string.h>

#include "core/kvm_internal.h"
#include "tests/lib/testlib.h"

#define NSLOT_MAX 509
#define ID_SPACE 2048
#define GFN_GRID 64ull /* candidate slot bases: multiples of 64 pages */
#define HVA_BASE 0x7f0000000000ull

struct mslot {
	bool used;
	gfn_t base;
	uint64_t npages;
	hva_t hva;
	unsigned flags;
};

static struct mslot M[ID_SPACE];

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static uint64_t rnd(uint64_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state % n;
}

static bool model_overlaps(unsigned skip, gfn_t base, uint64_t npages)
{
	for (unsigned i = 0; i < ID_SPACE; i++)
		if (M[i].used && i != skip && M[i].base < base + npages &&
		    base < M[i].base + M[i].npages)
			return true;
	return false;
}

static unsigned model_nr(void)
{
	unsigned n = 0;

	for (unsigned i = 0; i < ID_SPACE; i++)
		n += M[i].used;
	return n;
}

/* Everything the indexes must agree with, checked on the published set. */
static void check_set(struct kvm *kvm)
{
	const struct s2_memslots *ms = kvm->memslots;
	struct kvm_memory_slot out;
	bool seen[CONFIG_S2_MAX_MEMSLOTS] = { false };

	assert_int_equal(ms->nr, model_nr());
	for (unsigned id = 0; id < ID_SPACE; id++) {
		int r = kvm_id_to_memslot(kvm, id, &out);

		if (!M[id].used) {
			assert_int_equal(r, -ENOENT);
			assert_int_equal(s2_memslots_id_index(ms, id), -1);
			continue;
		}
		assert_int_equal(r, 0);
		assert_int_equal(out.id, id);
		assert_int_equal(out.base_gfn, M[id].base);
		assert_int_equal(out.userspace_addr, M[id].hva);
		assert_int_equal(out.flags, M[id].flags);
	}
	/* by_hva: a permutation, sorted by hva. */
	for (unsigned k = 0; k < ms->nr; k++) {
		unsigned i = ms->by_hva[k];

		assert_true(i < ms->nr);
		assert_false(seen[i]);
		seen[i] = true;
		if (k)
			assert_true(ms->slots[ms->by_hva[k - 1]].userspace_addr <=
				    ms->slots[i].userspace_addr);
	}
	/* hva searches: exactly the overlapping slots, each once, in order. */
	for (unsigned q = 0; q < 40; q++) {
		hva_t s = HVA_BASE + (rnd(600) << 12), e = s + ((1 + rnd(q & 1 ? 8 : 300)) << 12);
		struct s2_memslots_hva_iter it;
		bool got[CONFIG_S2_MAX_MEMSLOTS] = { false };
		hva_t last = 0;

		if (q == 0) { /* the boundary: a slot that ends at s is not in */
			unsigned i = (unsigned)rnd(ms->nr ? ms->nr : 1);

			if (ms->nr)
				s = ms->slots[i].userspace_addr + (ms->slots[i].npages << 12);
			e = s + 4096;
		}
		for (int i = s2_memslots_hva_first(&it, ms, s, e); i >= 0;
		     i = s2_memslots_hva_next(&it)) {
			assert_true((unsigned)i < ms->nr);
			assert_false(got[i]);
			got[i] = true;
			assert_true(ms->slots[i].userspace_addr >= last);
			last = ms->slots[i].userspace_addr;
		}
		for (unsigned i = 0; i < ms->nr; i++) {
			const struct kvm_memory_slot *sl = &ms->slots[i];
			bool want = sl->userspace_addr < e &&
				    s < sl->userspace_addr + (sl->npages << 12);

			assert_int_equal(got[i], want);
		}
	}
}

/* Random adds, deletes, moves and flag changes against the model: every
 * return value and the whole published set agree, at every step. */
static void test_index_against_model(void **state)
{
	struct tvm t;

	(void)state;
	memset(M, 0, sizeof(M));
	t_vm_init(&t, S2_FMT_X86_EPT, NULL);
	for (unsigned step = 0; step < 6000; step++) {
		unsigned id = (unsigned)rnd(ID_SPACE), op = (unsigned)rnd(10);
		/* Dense near the full set later on, sparse at first. */
		unsigned want_many = step > 2000 ? 8 : 6;
		int r, want;

		if (op < want_many) {
			struct kvm_memory_slot s = {
				.id = id,
				.base_gfn = rnd(1200) * GFN_GRID,
				.npages = (1 + rnd(3)) * GFN_GRID / (1 + rnd(2)),
				.userspace_addr = HVA_BASE + (rnd(512) << 12),
				.flags = rnd(4) ? 0 : KVM_MEM_READONLY,
			};

			want = model_nr() >= CONFIG_S2_MAX_MEMSLOTS ? -ENOSPC :
			       M[id].used || model_overlaps(ID_SPACE, s.base_gfn, s.npages) ?
								      -EINVAL :
								      0;
			r = kvm_set_memslot(t.kvm, &s);
			assert_int_equal(r, want);
			if (!r)
				M[id] = (struct mslot){ true, s.base_gfn, s.npages,
							s.userspace_addr, s.flags };
		} else if (op == 8) {
			want = M[id].used ? 0 : -ENOENT;
			assert_int_equal(kvm_delete_memslot(t.kvm, id), want);
			M[id].used = false;
		} else if (M[id].used && rnd(2)) {
			gfn_t nb = M[id].base + (rnd(2) ? GFN_GRID : 0) - (rnd(2) ? GFN_GRID : 0);

			if (nb > (1ull << 30))
				nb = 0;
			want = model_overlaps(id, nb, M[id].npages) ? -EINVAL : 0;
			assert_int_equal(kvm_move_memslot(t.kvm, id, nb), want);
			if (!want)
				M[id].base = nb;
		} else {
			unsigned f = rnd(2) ? KVM_MEM_READONLY : 0;

			want = M[id].used ? 0 : -ENOENT;
			assert_int_equal(kvm_set_memslot_flags(t.kvm, id, f), want);
			if (!want)
				M[id].flags = f;
		}
		if (step % 16 == 0 || step > 5900)
			check_set(t.kvm);
	}
	assert_true(model_nr() > 300); /* the sequence did reach many slots */
	t_vm_fini(&t);
}

/*
 * 509 one-page memslots whose hvas are spread in the reverse order of their
 * gfns, every fourth one aliasing the hva of its neighbour; one mapped page
 * each. An invalidation of an hva range zaps exactly the pages of the slots
 * that map it (aliases included), test_young finds a young page exactly
 * where one remains, and the rest stays mapped.
 */
static void test_notifiers_with_509_memslots(void **state)
{
	struct tvm t;
	hva_t hva[NSLOT_MAX];

	(void)state;
	t_vm_init(&t, S2_FMT_X86_EPT, NULL);
	for (unsigned i = 0; i < NSLOT_MAX; i++) {
		hva[i] = HVA_BASE + ((hva_t)(NSLOT_MAX - i) << 13);
		if (i % 4 == 3)
			hva[i] = hva[i - 1];
		t_slot(&t, i, 0x1000 + 2 * i, 1, hva[i], 0);
	}
	for (unsigned round = 0; round < 30; round++) {
		unsigned a = (unsigned)rnd(NSLOT_MAX), n = 1 + (unsigned)rnd(round & 1 ? 3 : 60);
		hva_t s = hva[a], e = s + ((hva_t)n << 13) - (rnd(2) << 12);
		bool in[NSLOT_MAX];
		bool any = false;

		for (unsigned i = 0; i < NSLOT_MAX; i++) {
			struct ref_xlate x;

			if (ref_walk_kvm(t.kvm, gfn_to_gpa(0x1000 + 2 * i), &x))
				assert_int_equal(kvm_tdp_page_fault(t.vcpu,
								    gfn_to_gpa(0x1000 + 2 * i),
								    S2_ACC_READ | S2_ACC_WRITE),
						 RET_PF_FIXED);
			in[i] = hva[i] < e && s < hva[i] + 4096;
			any |= in[i];
		}
		assert_true(any);
		assert_int_equal(kvm_mmu_notifier_test_young(t.kvm, s, e), 1);
		assert_int_equal(kvm_mmu_notifier_invalidate_range_start(t.kvm, s, e, true), 0);
		assert_int_equal(kvm_mmu_notifier_invalidate_range_end(t.kvm, s, e, true), 0);
		for (unsigned i = 0; i < NSLOT_MAX; i++) {
			struct ref_xlate x;
			int f = ref_walk_kvm(t.kvm, gfn_to_gpa(0x1000 + 2 * i), &x);

			if (in[i])
				assert_int_not_equal(f, 0);
			else
				assert_int_equal(f, 0);
		}
		assert_int_equal(kvm_mmu_notifier_test_young(t.kvm, s, e), 0);
	}
	t_vm_fini(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index_against_model),
		cmocka_unit_test(test_notifiers_with_509_memslots),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
