// SPDX-License-Identifier: MIT
/*
 * The memslot set's indexes (core/kvm_internal.h struct s2_memslots): the id
 * table, the gfn and hva treaps (the latter with its max-end), the in-place
 * edits that update them, and the spare set that gets the same edit after
 * the grace period, against a brute-force model of the slots: long random
 * sequences of adds, deletes, moves and flag changes with many slots whose
 * hva ranges overlap, and per target size from 1 to 600 slots a check of
 * both sets after every operation; and the notifiers that use them, end to
 * end, on a VM of 509 one-page memslots.
 *
 * Mutations seen to fail here (each made once by hand, then restored):
 *  - s2_hva_search() taking a slot that ends at the range start;
 *  - s2_memslots_id_index() stopping at the first probe; s2_id_hash_del()
 *    not moving back the entries of the probe run;
 *  - s2_memslots_retire() making the replaced set the spare without the
 *    edit; s2_memslots_edit() not relinking the hva treap to the slot that
 *    fills a hole, or a flags change not taking the new bitmap;
 *  - s2_treap_pull() ignoring the right child; a constant priority (the
 *    509-slot VM's gfn treap becomes a list: too deep);
 *  - s2_overlaps_any() looking at one slot only (a replace whose own slot
 *    comes first misses the overlap with the next);
 *  - s2_mn_run() walking only the first slot the iterator returns.
 *  - s2_memslots_retire() making the spare without checking that no other
 *    update published in between, or checking it by the published pointer
 *    (the same set may be published again: found by test_concurrent_updates
 *    under TSan, then forced by test_update_in_anothers_grace_period through
 *    the env's synchronize_rcu);
 *  - s2_treap_split() not recording the successor; s2_treap_erase() not
 *    taking the left subtree's last node as the predecessor.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
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

/* Walk treap @t (a node reference) of @ms: in order, each node once, its
 * max-end right (hva); returns the subtree's depth. */
static unsigned walk(const struct s2_memslots *ms, bool hva, unsigned t, bool *seen, int *prev,
		     hva_t *max)
{
	const uint16_t *kid;
	unsigned i = t - 1, dl, dr;
	hva_t ml = 0, mr = 0, m;

	if (!t) {
		*max = 0;
		return 0;
	}
	assert_true(i < ms->nr);
	kid = hva ? ms->hva[i].kid : ms->gfn[i].kid;
	/* the node's keys are its slot's */
	assert_true(ms->gfn[i].base == ms->slots[i].base_gfn);
	assert_true(ms->gfn[i].end == ms->slots[i].base_gfn + ms->slots[i].npages);
	assert_true(ms->hva[i].addr == ms->slots[i].userspace_addr);
	assert_true(ms->hva[i].end == ms->slots[i].userspace_addr + (ms->slots[i].npages << 12));
	assert_int_equal(ms->hva[i].id, ms->slots[i].id);
	dl = walk(ms, hva, kid[0], seen, prev, &ml);
	assert_false(seen[i]);
	seen[i] = true;
	if (*prev >= 0) {
		const struct kvm_memory_slot *a = &ms->slots[*prev], *b = &ms->slots[i];

		if (hva)
			assert_true(a->userspace_addr < b->userspace_addr ||
				    (a->userspace_addr == b->userspace_addr && a->id < b->id));
		else
			assert_true(a->base_gfn + a->npages <= b->base_gfn);
	}
	if (*prev >= 0) /* the order's links follow the tree */
		assert_int_equal(hva ? ms->hva[*prev].next : ms->gfn[*prev].next, i + 1);
	*prev = (int)i;
	dr = walk(ms, hva, kid[1], seen, prev, &mr);
	m = ms->slots[i].userspace_addr + (ms->slots[i].npages << 12);
	m = ml > m ? ml : m;
	m = mr > m ? mr : m;
	if (hva) {
		assert_true(ms->hva[i].max == m);
		assert_true(ms->hva[i].kid_max[0] == ml && ms->hva[i].kid_max[1] == mr);
	}
	*max = m;
	return 1 + (dl > dr ? dl : dr);
}

/* Both treaps of @ms ordered, complete and shallow: a random BST of n <=
 * 512 nodes is deeper than 4 log2 n + 8 with negligible odds, while a
 * priority that follows the ids of slots numbered in gfn order makes a list. */
static void check_depth(const struct s2_memslots *ms)
{
	bool seen[CONFIG_S2_MAX_MEMSLOTS];
	unsigned n = ms->nr, lg = 0;
	int prev;
	hva_t max;

	while ((1u << lg) < n)
		lg++;
	for (int h = 0; h < 2; h++) {
		memset(seen, 0, sizeof(seen));
		prev = -1;
		assert_true(walk(ms, h, h ? ms->hva_root : ms->gfn_root, seen, &prev, &max) <=
			    4 * lg + 8);
		if (prev >= 0) /* the last one has no next */
			assert_int_equal(h ? ms->hva[prev].next : ms->gfn[prev].next, 0);
		for (unsigned i = 0; i < n; i++)
			assert_true(seen[i]);
	}
}

/* The model's slots in (hva, id) order, for qsort. */
static int by_hva(const void *pa, const void *pb)
{
	unsigned a = *(const unsigned *)pa, b = *(const unsigned *)pb;

	if (M[a].hva != M[b].hva)
		return M[a].hva < M[b].hva ? -1 : 1;
	return a < b ? -1 : a > b;
}

/* ms->hva_overlaps is the number of neighbours in hva order (the model's
 * slots sorted by (hva, id)) whose ranges overlap. */
static void check_hva_overlaps(const struct s2_memslots *ms)
{
	unsigned ids[ID_SPACE], n = 0, want = 0;

	for (unsigned id = 0; id < ID_SPACE; id++)
		if (M[id].used)
			ids[n++] = id;
	qsort(ids, n, sizeof(ids[0]), by_hva);
	for (unsigned k = 1; k < n; k++)
		want += M[ids[k - 1]].hva + (M[ids[k - 1]].npages << 12) > M[ids[k]].hva;
	assert_int_equal(ms->hva_overlaps, want);
}

/*
 * The set @ms (published or spare) against the model: the same slots, both
 * treaps ordered, complete, shallow (a random BST of n <= 512 nodes is
 * deeper than 4 log2 n + 8 with negligible odds: a priority that does not
 * vary makes a list), the id table finding every slot, the gfn order and
 * lookups those of the model. O(n log n).
 */
static void check_struct(const struct s2_memslots *ms)
{
	unsigned n = ms->nr, used = 0;
	int prev;

	assert_int_equal(n, model_nr());
	assert_true(n <= ms->cap || !n);
	check_depth(ms);
	for (unsigned i = 0; i < n; i++) {
		const struct kvm_memory_slot *s = &ms->slots[i];

		assert_true(s->id < ID_SPACE && M[s->id].used);
		assert_int_equal(s2_memslots_id_index(ms, s->id), (int)i);
		assert_int_equal(s->base_gfn, M[s->id].base);
		assert_int_equal(s->npages, M[s->id].npages);
		assert_int_equal(s->userspace_addr, M[s->id].hva);
		assert_int_equal(s->flags, M[s->id].flags);
		assert_int_equal(!!ms->dirty[i], !!(s->flags & KVM_MEM_LOG_DIRTY_PAGES));
	}
	for (unsigned h = 0; n && h <= ms->id_mask; h++)
		used += ms->id_hash[h] != 0;
	assert_int_equal(used, n);
	/* gfn order from the start: every slot once, by base. */
	prev = -1;
	used = 0;
	for (int i = s2_memslots_gfn_lower(ms, 0); i >= 0;
	     i = s2_memslots_gfn_next(ms, (unsigned)i)) {
		if (prev >= 0)
			assert_true(ms->slots[prev].base_gfn < ms->slots[i].base_gfn);
		prev = i;
		used++;
	}
	assert_int_equal(used, n);
	/* Point lookups and lower bounds at random gfns and at slot edges. */
	for (unsigned q = 0; q < 8; q++) {
		gfn_t g = rnd(1300 * GFN_GRID);
		const struct kvm_memory_slot *f;
		int lo;
		unsigned want = ID_SPACE, want_lo = ID_SPACE;

		if (q < 2 && n) {
			const struct kvm_memory_slot *s = &ms->slots[rnd(n)];

			g = q ? s->base_gfn + s->npages : s->base_gfn + s->npages - 1;
		}
		f = s2_memslots_find(ms, g);
		lo = s2_memslots_gfn_lower(ms, g);
		for (unsigned id = 0; id < ID_SPACE; id++) {
			if (!M[id].used || M[id].base + M[id].npages <= g)
				continue;
			if (M[id].base <= g)
				want = id;
			if (want_lo == ID_SPACE || M[id].base < M[want_lo].base)
				want_lo = id;
		}
		if (want == ID_SPACE)
			assert_null(f);
		else
			assert_int_equal(f->id, want);
		if (want_lo == ID_SPACE)
			assert_int_equal(lo, -1);
		else
			assert_int_equal(ms->slots[lo].id, want_lo);
	}
}

/* Everything the indexes must agree with, checked on the published set. */
static void check_set(struct kvm *kvm)
{
	const struct s2_memslots *ms = kvm->memslots;
	struct kvm_memory_slot out;
	hva_t last_s = HVA_BASE, last_e = HVA_BASE + 4096;

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
	check_struct(ms);
	check_hva_overlaps(ms);
	if (kvm->memslots_spare) {
		check_struct(kvm->memslots_spare);
		check_hva_overlaps(kvm->memslots_spare);
	}
	/* hva searches: exactly the overlapping slots, each once, in order;
	 * from q = 40 on, ranges that start in a slot, each searched twice (the
	 * second search may start from the hint the first left). */
	for (unsigned q = 0; q < 60; q++) {
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
		if (q >= 40 && ms->nr && q % 2 == 0) {
			const struct kvm_memory_slot *sl = &ms->slots[rnd(ms->nr)];

			s = sl->userspace_addr + (rnd(sl->npages) << 12);
			e = s + ((1 + rnd(8)) << 12);
		} else if (q >= 40) { /* the previous range again */
			s = last_s;
			e = last_e;
		}
		last_s = s;
		last_e = e;
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

/*
 * The hva of a new slot at @base: anywhere in the first 512 pages (slots
 * alias a lot), or, with @apart, the slot's own gfn range shifted (no two
 * slots share an hva until moves bring another slot's gfns there) but one
 * in 16 anywhere, so hva_overlaps goes up and down and the hva hint is used.
 */
static hva_t pick_hva(gfn_t base, bool apart)
{
	if (apart && rnd(16))
		return HVA_BASE + (base << 12);
	return HVA_BASE + (rnd(512) << 12);
}

/* Random adds, deletes, moves and flag changes against the model: every
 * return value and the whole published set agree, at every step. */
static void run_index_against_model(bool apart)
{
	struct tvm t;

	memset(M, 0, sizeof(M));
	t_vm_init(&t, t_any_fmt(), NULL);
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
				.flags = rnd(4) ? 0 : KVM_MEM_READONLY,
			};

			s.userspace_addr = pick_hva(s.base_gfn, apart);
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

/* Twice: with hvas that alias a lot, and with hvas mostly apart. */
static void test_index_against_model(void **state)
{
	(void)state;
	run_index_against_model(false);
	run_index_against_model(true);
}

/* A random slot flag set: read-only, logging, or none. */
static unsigned rnd_flags(void)
{
	unsigned r = (unsigned)rnd(4);

	return r == 0 ? KVM_MEM_READONLY : r == 1 ? KVM_MEM_LOG_DIRTY_PAGES : 0;
}

/*
 * One VM per target size from 1 to 600 slots (past CONFIG_S2_MAX_MEMSLOTS:
 * -ENOSPC): adds until the target, then adds, deletes, moves and flag
 * changes (logging included, so bitmaps move with their slots) around it;
 * after every operation the published set and the spare both agree with the
 * model and their treaps and id table hold (check_struct), and every tenth
 * the whole lookup check (check_set) runs too.
 */
static void test_update_sizes(void **state)
{
	static const unsigned sizes[] = { 1, 2, 3, 5, 8, 9, 17, 64, 65, 200, 509, 512, 600 };

	(void)state;
	for (unsigned z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
		unsigned target = sizes[z], mixed = 0;
		struct tvm t;

		memset(M, 0, sizeof(M));
		t_vm_init(&t, S2_FMT_X86_EPT, NULL);
		for (unsigned step = 0; mixed < 150; step++) {
			unsigned nr = model_nr(), op = (unsigned)rnd(8), id;
			int r, want;

			if (!mixed && nr < target && nr < CONFIG_S2_MAX_MEMSLOTS &&
			    step < 20 * target)
				op = 0; /* grow first */
			else
				mixed++;
			/* an id in use for the updates of one, a fresh one to add */
			do
				id = (unsigned)rnd(ID_SPACE);
			while (op && nr && !M[id].used);
			if (op == 0 || (op < 3 && nr < target)) {
				struct kvm_memory_slot s = {
					.id = id,
					.base_gfn = rnd(1200) * GFN_GRID,
					.npages = GFN_GRID / (1 + rnd(2)),
					.userspace_addr = HVA_BASE + (rnd(512) << 12),
					.flags = rnd_flags(),
				};

				want = nr >= CONFIG_S2_MAX_MEMSLOTS ? -ENOSPC :
				       M[id].used || model_overlaps(ID_SPACE, s.base_gfn,
								    s.npages) ?
								      -EINVAL :
								      0;
				r = kvm_set_memslot(t.kvm, &s);
				assert_int_equal(r, want);
				if (!r)
					M[id] = (struct mslot){ true, s.base_gfn, s.npages,
								s.userspace_addr, s.flags };
			} else if (op < 4) {
				want = M[id].used ? 0 : -ENOENT;
				assert_int_equal(kvm_delete_memslot(t.kvm, id), want);
				M[id].used = false;
			} else if (op < 6) {
				gfn_t nb = rnd(1200) * GFN_GRID;

				want = !M[id].used			    ? -ENOENT :
				       model_overlaps(id, nb, M[id].npages) ? -EINVAL :
									      0;
				assert_int_equal(kvm_move_memslot(t.kvm, id, nb), want);
				if (!want)
					M[id].base = nb;
			} else {
				unsigned f = rnd_flags();

				want = M[id].used ? 0 : -ENOENT;
				assert_int_equal(kvm_set_memslot_flags(t.kvm, id, f), want);
				if (!want)
					M[id].flags = f;
			}
			check_struct(t.kvm->memslots);
			if (t.kvm->memslots_spare)
				check_struct(t.kvm->memslots_spare);
			if (step % 10 == 0)
				check_set(t.kvm);
			if (step > 20 * target + 1000)
				fail(); /* the growth could not reach the target */
		}
		/* it did get there (and stayed near) */
		assert_true(model_nr() + 40 >=
			    (target < CONFIG_S2_MAX_MEMSLOTS ? target : CONFIG_S2_MAX_MEMSLOTS));
		t_vm_fini(&t);
	}
}

/*
 * Updates that overlap in time: two threads, each with its own ids and gfn
 * region, add, move, change and delete their slots at once, so one's
 * publication often falls in the other's grace period (the spare is then
 * taken, or must not be made from a set that is no longer the published
 * one's predecessor). Afterwards both sets agree with the model.
 */
struct upd_thread {
	struct kvm *kvm;
	unsigned first_id;
	uint64_t rng;
};

static uint64_t trnd(struct upd_thread *u, uint64_t n)
{
	u->rng ^= u->rng << 13;
	u->rng ^= u->rng >> 7;
	u->rng ^= u->rng << 17;
	return u->rng % n;
}

static void *updater(void *arg)
{
	struct upd_thread *u = arg;
	gfn_t region = 0x100000ull * (1 + u->first_id / 64);

	for (unsigned step = 0; step < 400; step++) {
		unsigned k = (unsigned)trnd(u, 24), id = u->first_id + k, op = (unsigned)trnd(u, 4);
		struct mslot *m = &M[id];

		if (!m->used) {
			struct kvm_memory_slot sl = { .id = id,
						      .base_gfn = region + 0x100 * k,
						      .npages = 0x40,
						      .userspace_addr =
							      HVA_BASE + (trnd(u, 64) << 12),
						      .flags = 0 };

			int r = kvm_set_memslot(u->kvm, &sl);

			if (r) {
				fprintf(stderr, "add id %u gfn %#llx: %d\n", id,
					(unsigned long long)sl.base_gfn, r);
				return "add";
			}
			*m = (struct mslot){ true, sl.base_gfn, sl.npages, sl.userspace_addr, 0 };
		} else if (op == 0) {
			if (kvm_delete_memslot(u->kvm, id))
				return "delete";
			m->used = false;
		} else if (op == 1) {
			gfn_t nb = region + 0x100 * k + (m->base & 0x80 ? 0 : 0x80);

			if (kvm_move_memslot(u->kvm, id, nb))
				return "move";
			m->base = nb;
		} else {
			unsigned f = trnd(u, 2) ? KVM_MEM_LOG_DIRTY_PAGES : 0;

			if (kvm_set_memslot_flags(u->kvm, id, f))
				return "flags";
			m->flags = f;
		}
	}
	return NULL;
}

static void test_concurrent_updates(void **state)
{
	struct upd_thread u[2];
	pthread_t th[2];
	struct tvm t;

	(void)state;
	for (unsigned round = 0; round < 2; round++) {
		memset(M, 0, sizeof(M));
		t_vm_init(&t, S2_FMT_X86_EPT, NULL);
		for (unsigned i = 0; i < 2; i++) {
			u[i] = (struct upd_thread){ .kvm = t.kvm,
						    .first_id = 64 * i,
						    .rng = 0x9e37 + i + 2 * round };
			assert_int_equal(pthread_create(&th[i], NULL, updater, &u[i]), 0);
		}
		for (unsigned i = 0; i < 2; i++) {
			void *r;

			assert_int_equal(pthread_join(th[i], &r), 0);
			if (r)
				fail_msg("thread %u: %s failed", i, (const char *)r);
		}
		check_struct(t.kvm->memslots);
		if (t.kvm->memslots_spare)
			check_struct(t.kvm->memslots_spare);
		check_set(t.kvm);
		t_vm_fini(&t);
	}
}

/*
 * The interleaving the spare must survive, forced: A's update publishes and
 * waits in its grace period while B's update publishes over it (with no
 * spare: it copies) and enters its own, where it waits for A's update to
 * finish; A's replaced set must then not become the spare (it lacks B's
 * slot), B's may. Both sets agree with the
 * model afterwards.
 */
static void (*orig_sync)(void *ctx);
static _Thread_local int sync_role; /* 1: thread A, 2: thread B */
static _Thread_local int sync_calls;
static int sync_stage, sync_b_waits_at; /* B waits in its n-th grace period */

static void sync_hook(void *ctx)
{
	sync_calls++;
	if (sync_role == 1 && __atomic_load_n(&sync_stage, __ATOMIC_ACQUIRE) == 0) {
		__atomic_store_n(&sync_stage, 1, __ATOMIC_RELEASE); /* A published */
		while (__atomic_load_n(&sync_stage, __ATOMIC_ACQUIRE) != 2)
			sched_yield();
	} else if (sync_role == 2 && sync_calls == sync_b_waits_at) {
		__atomic_store_n(&sync_stage, 2, __ATOMIC_RELEASE); /* B published */
		while (__atomic_load_n(&sync_stage, __ATOMIC_ACQUIRE) != 3)
			sched_yield(); /* A's update has finished */
	}
	orig_sync(ctx);
}

struct forced {
	struct kvm *kvm;
	int role;
	unsigned id;
};

static void *forced_updater(void *arg)
{
	struct forced *f = arg;
	struct kvm_memory_slot sl = { .id = f->id,
				      .base_gfn = 0x1000 * (1 + f->id),
				      .npages = 0x40,
				      .userspace_addr = HVA_BASE + ((hva_t)f->id << 20) };

	int r = 0;

	sync_role = f->role;
	sync_calls = 0;
	if (f->role == 2)
		while (__atomic_load_n(&sync_stage, __ATOMIC_ACQUIRE) != 1)
			sched_yield();
	/* B adds sync_b_waits_at slots: ids id, id + 1, ... */
	for (int k = 0; k < (f->role == 2 ? sync_b_waits_at : 1) && !r; k++) {
		sl.id = f->id + (unsigned)k;
		sl.base_gfn = 0x1000 * (1 + sl.id);
		sl.userspace_addr = HVA_BASE + ((hva_t)sl.id << 20);
		r = kvm_set_memslot(f->kvm, &sl);
	}
	if (f->role == 1)
		__atomic_store_n(&sync_stage, 3, __ATOMIC_RELEASE);
	return r ? "add" : NULL;
}

/* B makes @b_updates updates and waits in the grace period of its last. */
static void run_forced(unsigned b_updates)
{
	struct forced f[2];
	pthread_t th[2];
	struct tvm t;

	memset(M, 0, sizeof(M));
	t_vm_init(&t, S2_FMT_X86_EPT, NULL);
	for (unsigned id = 0; id < 3; id++) { /* a spare exists from here on */
		struct kvm_memory_slot sl = { .id = 10 + id,
					      .base_gfn = 0x100000 + 0x100 * id,
					      .npages = 0x40,
					      .userspace_addr = HVA_BASE };

		assert_int_equal(kvm_set_memslot(t.kvm, &sl), 0);
		M[10 + id] = (struct mslot){ true, sl.base_gfn, sl.npages, sl.userspace_addr, 0 };
	}
	assert_non_null(t.kvm->memslots_spare);
	orig_sync = t.h.ops.synchronize_rcu;
	t.h.ops.synchronize_rcu = sync_hook;
	sync_stage = 0;
	sync_b_waits_at = (int)b_updates;
	for (unsigned i = 0; i < 2; i++) {
		f[i] = (struct forced){ .kvm = t.kvm, .role = (int)i + 1, .id = i ? 1 : 0 };
		assert_int_equal(pthread_create(&th[i], NULL, forced_updater, &f[i]), 0);
	}
	for (unsigned id = 0; id < 1 + b_updates; id++)
		M[id] = (struct mslot){ true, 0x1000 * (1 + id), 0x40, HVA_BASE + ((hva_t)id << 20),
					0 };
	for (unsigned i = 0; i < 2; i++) {
		void *r;

		assert_int_equal(pthread_join(th[i], &r), 0);
		assert_null(r);
	}
	t.h.ops.synchronize_rcu = orig_sync;
	assert_int_equal(sync_stage, 3);
	check_struct(t.kvm->memslots);
	assert_non_null(t.kvm->memslots_spare); /* B's last replaced set */
	check_struct(t.kvm->memslots_spare);
	check_set(t.kvm);
	t_vm_fini(&t);
}

/* One update of B over A's: A's replaced set is not its successor's
 * predecessor. Two: B's second update publishes again the very set A
 * published (the spare B's first made of it), so the published pointer is
 * A's again while other updates came in between. */
static void test_update_in_anothers_grace_period(void **state)
{
	(void)state;
	run_forced(1);
	run_forced(2);
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
	t_vm_init(&t, t_any_fmt(), NULL);
	for (unsigned i = 0; i < NSLOT_MAX; i++) {
		hva[i] = HVA_BASE + ((hva_t)(NSLOT_MAX - i) << 13);
		if (i % 4 == 3)
			hva[i] = hva[i - 1];
		t_slot(&t, i, 0x1000 + 2 * i, 1, hva[i], 0);
	}
	check_depth(t.kvm->memslots);
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
		cmocka_unit_test(test_update_sizes),
		cmocka_unit_test(test_concurrent_updates),
		cmocka_unit_test(test_update_in_anothers_grace_period),
		cmocka_unit_test(test_notifiers_with_509_memslots),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
