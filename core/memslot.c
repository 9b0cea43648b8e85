// SPDX-License-Identifier: MIT
/*
 * Memslots. The set is an immutable array sorted by base_gfn, replaced as a
 * whole under slots_lock and published for RCU readers, so a fault looks a
 * gfn up in O(log n) without a lock. An update that removes mappings makes
 * the range an invalidation in progress, zaps it (yielding mmu_lock as it
 * goes, or by the fast zap when the range holds most of the VM's leaves),
 * then ends the invalidation, publishes and bumps memslots_gen in one hold:
 * a fault that resolved its slot from the old set retries on the range or
 * on the generation, and one that got the lock before the zap installed
 * before it, which removes it.
 *
 * slots_lock is a spinlock, so it is held only for what never sleeps:
 * checking an update against the current set, filling and publishing the
 * new one, and zapping what the update unmaps (so the update is one step
 * for every other update; a yield drops only mmu_lock). The environment hooks that may sleep run with no
 * lock held: the new array and a bitmap are allocated before (the check is
 * redone under the lock that publishes), and the zap's tables, dirty
 * logging's split or collapse, the grace period and the frees come after.
 */
#include "core/kvm_internal.h"

const struct kvm_memory_slot *s2_memslots_find(const struct s2_memslots *ms, gfn_t gfn)
{
	unsigned lo = 0, hi = ms->nr;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		const struct kvm_memory_slot *s = &ms->slots[mid];

		if (gfn < s->base_gfn)
			hi = mid;
		else if (gfn - s->base_gfn >= s->npages)
			lo = mid + 1;
		else
			return s;
	}
	return NULL;
}

static gfn_t s2_gfn_limit(const struct kvm *kvm)
{
	return 1ull << (kvm->cfg.gpa_bits - S2_GFN_SHIFT);
}

/* Range, alignment and flag checks that need no other slot. */
static int s2_slot_valid(const struct kvm *kvm, const struct kvm_memory_slot *s)
{
	uint64_t gran = 1ull << (kvm->cfg.page_shift - S2_GFN_SHIFT);

	if (!s->npages || (s->flags & ~KVM_MEM_FLAGS_VALID))
		return -EINVAL;
	if ((s->flags & KVM_MEM_READONLY) && (s->flags & KVM_MEM_LOG_DIRTY_PAGES))
		return -EINVAL; /* nothing to log: the guest cannot write */
	/* A TD: memslots are given without the shared bit; a logging slot
	 * logs its shared half only (private pages are never logged). */
	if (kvm->gfn_direct_bits &&
	    (s->base_gfn >= kvm->gfn_direct_bits || s->npages > kvm->gfn_direct_bits - s->base_gfn))
		return -EINVAL;
	if (s->userspace_addr & ((gran << S2_GFN_SHIFT) - 1))
		return -EINVAL;
	if ((s->base_gfn | s->npages) & (gran - 1))
		return -EINVAL;
	if (s->base_gfn >= s2_gfn_limit(kvm) || s->npages > s2_gfn_limit(kvm) - s->base_gfn)
		return -EINVAL;
	if (s->userspace_addr + (s->npages << S2_GFN_SHIFT) < s->userspace_addr)
		return -EINVAL;
	return 0;
}

static bool s2_overlaps(const struct kvm_memory_slot *a, const struct kvm_memory_slot *b)
{
	return a->base_gfn < b->base_gfn + b->npages && b->base_gfn < a->base_gfn + a->npages;
}

static const struct kvm_memory_slot *s2_find_id(const struct s2_memslots *ms, unsigned id)
{
	int i = s2_memslots_id_index(ms, id);

	return i < 0 ? NULL : &ms->slots[i];
}

/* Whether @s overlaps a slot of @ms other than the one with id @skip_id
 * (-1: none to skip). O(log n): the slots are sorted and disjoint, so only
 * the first two that end after @s's start can begin before its end. */
static bool s2_overlaps_any(const struct s2_memslots *ms, const struct kvm_memory_slot *s,
			    long skip_id)
{
	for (unsigned i = s2_memslots_gfn_lower(ms, s->base_gfn), n = 0; i < ms->nr && n < 2;
	     i++, n++) {
		if (skip_id >= 0 && ms->slots[i].id == (unsigned)skip_id)
			continue;
		return s2_overlaps(&ms->slots[i], s);
	}
	return false;
}

static hva_t s2_hva_end(const struct kvm_memory_slot *s)
{
	return s->userspace_addr + (s->npages << S2_GFN_SHIFT);
}

/*
 * The first position >= @pos in by_hva[] whose slot ends after @start
 * (ms->hva_leaves: none): up from the leaf past every subtree whose largest
 * end is not after @start, then down to the leftmost leaf that is.
 */
static unsigned s2_hva_next_after(const struct s2_memslots *ms, unsigned pos, hva_t start)
{
	const hva_t *t = ms->hva_max;
	unsigned i = pos + ms->hva_leaves;

	if (pos >= ms->nr)
		return ms->hva_leaves;
	while (t[i] <= start) {
		while (i & 1) /* a right child: its parent's range is done */
			i >>= 1;
		if (!i)
			return ms->hva_leaves;
		i++;
	}
	while (i < ms->hva_leaves) {
		i *= 2;
		if (t[i] <= start)
			i++;
	}
	return i - ms->hva_leaves;
}

int s2_memslots_hva_first(struct s2_memslots_hva_iter *it, const struct s2_memslots *ms,
			  hva_t start, hva_t end)
{
	it->ms = ms;
	it->start = start;
	it->end = end;
	it->pos = 0;
	return s2_memslots_hva_next(it);
}

/* Positions come in hva order, so the first slot that starts at or after
 * end ends the search. */
int s2_memslots_hva_next(struct s2_memslots_hva_iter *it)
{
	const struct s2_memslots *ms = it->ms;
	unsigned k = s2_hva_next_after(ms, it->pos, it->start);

	if (k >= ms->nr || ms->slots[ms->by_hva[k]].userspace_addr >= it->end) {
		it->pos = ms->nr;
		return -1;
	}
	it->pos = k + 1;
	return ms->by_hva[k];
}

/* The dirty bitmap of slot @s of @ms (NULL: it does not log). */
static struct s2_slot_dirty *s2_dirty_of(const struct s2_memslots *ms,
					 const struct kvm_memory_slot *s)
{
	return ms->dirty[s - ms->slots];
}

/*
 * One memslot update. The plan is made under slots_lock against the current
 * set; the memory it needs is allocated with no lock held, and the plan is
 * made again under the lock that publishes it (another update may have come
 * in between), until what was allocated fits. What the publication leaves
 * behind is freed after the lock is dropped.
 */
struct s2_slot_update {
	/* The plan. */
	int drop_id;		     /* slot leaving the set (-1: none) */
	bool add;		     /* upd joins the set */
	struct kvm_memory_slot prev; /* drop_id as it was */
	struct kvm_memory_slot upd;  /* what joins */
	struct s2_slot_dirty *dirty; /* upd's bitmap, kept from prev (or NULL) */
	bool new_dirty;		     /* upd logs and needs a fresh bitmap */
	struct s2_slot_dirty *gone;  /* prev's bitmap when upd does not keep it */
	bool zap;		     /* unmap prev's range on publication */
	unsigned nr;		     /* slots in the new set */
	/* What publishing leaves for after slots_lock. */
	struct s2_memslots *old;  /* the replaced set */
	struct s2_change_acc acc; /* the zap's unlinked tables */
	uint64_t gen;		  /* memslots_gen of the new set */
	int dirty_change;	  /* S2_DIRTY_START / S2_DIRTY_STOP / 0 */
	/* The zap: by the fast zap (its pages allocated before slots_lock)
	 * or in place, and the leaves it removed. */
	bool fast;
	struct s2_fast_zap fz;
	long zapped;
};

typedef int (*s2_slot_plan_fn)(struct kvm *kvm, const struct s2_memslots *cur,
			       struct s2_slot_update *u);

/* Room for @cap slots, zeroed (NULL: -ENOMEM). No lock may be held. */
static struct s2_memslots *s2_memslots_alloc(struct kvm *kvm, unsigned cap)
{
	const struct s2_env *env = kvm->env;
	struct s2_memslots *ms;

	unsigned leaves = 1, hcap = 4;
	size_t bytes;

	while (leaves < cap)
		leaves <<= 1;
	while (hcap < 2 * cap)
		hcap <<= 1;
	bytes = sizeof(*ms) + cap * (sizeof(ms->slots[0]) + sizeof(ms->dirty[0]));
	bytes += 2 * leaves * sizeof(ms->hva_max[0]);
	bytes += cap * sizeof(ms->by_hva[0]) + hcap * sizeof(ms->id_hash[0]);
	ms = env->ops->zalloc(env->ctx, bytes);
	if (ms) {
		ms->dirty = (struct s2_slot_dirty **)&ms->slots[cap];
		ms->hva_max = (hva_t *)&ms->dirty[cap];
		ms->by_hva = (uint16_t *)&ms->hva_max[2 * leaves];
		ms->id_hash = &ms->by_hva[cap];
		ms->hva_leaves = leaves;
		ms->id_mask = hcap - 1;
	}
	return ms;
}

/*
 * Fill @ms (fresh, zeroed, room for the result) with the set @old minus slot
 * @drop_id (if any) plus @add (if non-NULL, with the dirty bitmap
 * @add_dirty), sorted, and build its indexes. The other slots keep their
 * bitmaps. O(n), and the hva order is merged from @old's, not sorted again.
 */
static void s2_memslots_fill(struct s2_memslots *ms, const struct s2_memslots *old, int drop_id,
			     const struct kvm_memory_slot *add, struct s2_slot_dirty *add_dirty)
{
	int di = drop_id >= 0 ? s2_memslots_id_index(old, (unsigned)drop_id) : -1;
	unsigned d = di >= 0 ? (unsigned)di : old->nr, a = ~0u, j, n = old->nr - (di >= 0);
	/* The kept slots, as two runs of @old, land at [0, n) of the new set
	 * with a hole at a for @add: a is the number of kept slots at or
	 * below add's base_gfn. */
	const unsigned run[2][2] = { { 0, d }, { d + 1, old->nr } };

	if (add) {
		a = s2_memslots_gfn_lower(old, add->base_gfn); /* kept ones end before add */
		a -= d < a;
		ms->slots[a] = *add;
		ms->dirty[a] = add_dirty;
	}
	for (unsigned r = 0, at = 0; r < 2; r++) {
		unsigned lo = run[r][0], hi = run[r][1] > old->nr ? old->nr : run[r][1];

		while (lo < hi) {
			unsigned len = hi - lo, to = at;

			if (at < a && at + len > a)
				len = a - at; /* up to the hole */
			to += at >= a;
			for (unsigned k = 0; k < len; k++) {
				ms->slots[to + k] = old->slots[lo + k];
				ms->dirty[to + k] = old->dirty[lo + k];
			}
			lo += len;
			at += len;
		}
	}
	ms->nr = n + !!add;
	ms->generation = old->generation + 1;

	/* hva order: @old's, renumbered (old index i moved down past the
	 * dropped slot d and up past the added one at a), with @add merged in
	 * before the first slot that starts after it. */
	bool placed = !add;

	j = 0;
	for (unsigned k = 0; k < old->nr; k++) {
		unsigned i = old->by_hva[k], to;

		if (i == d)
			continue;
		to = i - (i > d);
		to += to >= a;
		if (!placed && add->userspace_addr < ms->slots[to].userspace_addr) {
			ms->by_hva[j++] = (uint16_t)a;
			placed = true;
		}
		ms->by_hva[j++] = (uint16_t)to;
	}
	if (!placed)
		ms->by_hva[j++] = (uint16_t)a;
	for (unsigned k = 0; k < ms->nr; k++)
		ms->hva_max[ms->hva_leaves + k] = s2_hva_end(&ms->slots[ms->by_hva[k]]);
	for (unsigned i = ms->hva_leaves - 1; i; i--) {
		hva_t l = ms->hva_max[2 * i], r = ms->hva_max[2 * i + 1];

		ms->hva_max[i] = l > r ? l : r;
	}
	for (unsigned i = 0; i < ms->nr; i++) {
		unsigned h = s2_memslots_id_hash(ms->slots[i].id, ms->id_mask);

		while (ms->id_hash[h])
			h = (h + 1) & ms->id_mask;
		ms->id_hash[h] = (uint16_t)(i + 1);
	}
}

/*
 * Publish @ms in place of the current set (slots_lock held). When the update
 * zaps (a slot leaves, moves or becomes read-only), prev's range becomes an
 * invalidation in progress first, so the zap may yield mmu_lock: a fault
 * that resolved the slot from the set still published retries instead of
 * mapping it again behind the zap's cursor. The zap runs while the old set
 * is still the published one, so the dirty pages of leaves it removes are
 * found in the slot's bitmap at their old gfns (a move keeps the bitmap);
 * the invalidation ends and the new set is published in one hold, after
 * the zap. With u->fast the zap is the fast zap: every root is invalidated
 * in O(1) and the old ones are emptied under the shared side (the vcpus
 * fault on the fresh roots meanwhile), still before the publication.
 * Nothing here sleeps: the replaced set and the zap's tables wait in @u.
 */
static void s2_memslots_publish(struct kvm *kvm, struct s2_memslots *ms, struct s2_slot_update *u)
{
	bool adds = u->add && (u->drop_id < 0 || u->upd.base_gfn != u->prev.base_gfn);
	/* The generation wraps in MMIO entries' bits: they go first. */
	bool wrap = s2_mmio_gen_wraps(kvm);
	gfn_t zs = u->prev.base_gfn, ze = u->prev.base_gfn + u->prev.npages;

	if (adds || u->zap || wrap)
		s2_mmu_write_lock(kvm);
	if (u->zap) {
		s2_invalidate_begin(kvm);
		s2_invalidate_add(kvm, zs, ze);
		kvm->slot_zap_start = zs; /* for kvm_mmu_map_range() */
		kvm->slot_zap_end = ze;
		if (u->fast && !s2_fast_zap_locked(kvm, &u->fz)) {
			s2_mmu_write_unlock_keep_tables(kvm, &u->acc);
			u->zapped = s2_fast_zap_teardown(kvm, &u->fz, &u->acc);
			s2_mmu_write_lock(kvm);
		}
		/* In place; after a fast zap this finds what faults mapped
		 * in the fresh roots meanwhile, none of it in the range. */
		u->zapped += s2_zap_range_yielding_locked(kvm, zs, ze, &u->acc);
		/* A TD's private mappings of the slot go too (docs/tdx.md). */
		(void)s2_tdx_zap_private(kvm, zs, ze);
		(void)s2_invalidate_end(kvm);
		kvm->slot_zap_start = kvm->slot_zap_end = 0;
	}
	if (wrap)
		s2_mmio_gen_bump_locked(kvm, kvm->memslots_gen + 1);
	/*
	 * New gfns join an invalidation in progress before the slot can be
	 * found: invalidate_range_start reads the slots under the write side
	 * too, so it either sees the new set or has raised in_progress by now.
	 */
	if (adds)
		s2_notifier_slot_adding(kvm, &u->upd, &u->acc);
	u->old = kvm->memslots;
	__atomic_store_n(&kvm->memslots, ms, __ATOMIC_RELEASE);
	u->gen = __atomic_add_fetch(&kvm->memslots_gen, 1, __ATOMIC_SEQ_CST);
	if (adds || u->zap || wrap)
		s2_mmu_write_unlock_keep_tables(kvm, &u->acc);
}

/*
 * Run the update @plan describes. Under slots_lock: plan, and, once the
 * allocations fit the plan, publish and zap (the update is atomic to every
 * other holder of the lock). With no lock held: the allocations before, and
 * after the publication the freeing of the zap's tables, dirty logging's
 * start or stop, the grace period and the frees.
 */
static int s2_memslots_update(struct kvm *kvm, s2_slot_plan_fn plan, struct s2_slot_update *u)
{
	const struct s2_env *env = kvm->env;
	struct s2_slot_dirty *fresh = NULL;
	struct s2_memslots *ms = NULL;
	unsigned cap = 0;
	int r;

	s2_acc_init(&u->acc);
	for (;;) {
		s2_spin_lock(&kvm->slots_lock, env);
		r = plan(kvm, kvm->memslots, u);
		if (r)
			goto unlock;
		if ((!u->new_dirty || (fresh && fresh->npages == u->upd.npages)) && ms &&
		    cap >= u->nr)
			break;
		s2_spin_unlock(&kvm->slots_lock);
		/* Allocate what the plan needs, then plan again under the lock. */
		if (u->new_dirty && (!fresh || fresh->npages != u->upd.npages)) {
			s2_dirty_slot_free(kvm, fresh);
			fresh = s2_dirty_slot_alloc(kvm, &u->upd);
			if (!fresh) {
				r = -ENOMEM;
				goto out;
			}
		}
		if (!ms || cap < u->nr) {
			if (ms)
				env->ops->free(env->ctx, ms);
			cap = u->nr;
			ms = s2_memslots_alloc(kvm, cap);
			if (!ms) {
				r = -ENOMEM;
				goto out;
			}
		}
	}
	if (u->new_dirty) {
		u->dirty = fresh;
		fresh = NULL;
	}
	s2_memslots_fill(ms, kvm->memslots, u->drop_id, u->add ? &u->upd : NULL, u->dirty);
	if (u->add && u->drop_id >= 0)
		u->dirty_change = s2_dirty_slot_published(kvm, &u->prev, &u->upd);
	s2_memslots_publish(kvm, ms, u);
	ms = NULL;
unlock:
	s2_spin_unlock(&kvm->slots_lock);
	if (r)
		goto out;
	s2_acc_free_tables(kvm, &u->acc);
	/* Published: start logging (split, protect) or stop it (collapse). */
	if (u->dirty_change)
		s2_dirty_slot_flags_changed(kvm, &u->upd, u->dirty_change, u->gen);
	/* After the grace period nobody uses the old set or the bitmap. */
	env->ops->synchronize_rcu(env->ctx);
	env->ops->free(env->ctx, u->old);
	s2_dirty_slot_free(kvm, u->gone);
out:
	s2_dirty_slot_free(kvm, fresh);
	if (ms)
		env->ops->free(env->ctx, ms);
	return r;
}

/* kvm_set_memslot's plan: add u->upd. */
static int s2_plan_add(struct kvm *kvm, const struct s2_memslots *cur, struct s2_slot_update *u)
{
	(void)kvm;
	if (cur->nr >= CONFIG_S2_MAX_MEMSLOTS)
		return -ENOSPC;
	if (s2_find_id(cur, u->upd.id) || s2_overlaps_any(cur, &u->upd, -1))
		return -EINVAL;
	u->drop_id = -1;
	u->add = true;
	u->new_dirty = u->upd.flags & KVM_MEM_LOG_DIRTY_PAGES;
	u->nr = cur->nr + 1;
	return 0;
}

static S2_ALWAYS_INLINE int kvm_set_memslot_untraced(struct kvm *kvm,
						     const struct kvm_memory_slot *slot)
{
	struct s2_slot_update u = { 0 };
	int r;

	if (!kvm || !slot)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	r = s2_slot_valid(kvm, slot);
	if (r)
		return r;
	u.upd = *slot;
	return s2_memslots_update(kvm, s2_plan_add, &u);
}

int kvm_set_memslot(struct kvm *kvm, const struct kvm_memory_slot *slot)
{
	int r = kvm_set_memslot_untraced(kvm, slot);

	if (slot)
		S2_TRACE(kvm, "memslot", r, S2_TA_DEC("id", slot->id),
			 S2_TA_HEX("gfn", slot->base_gfn), S2_TA_HEX("npages", slot->npages),
			 S2_TA_HEX("hva", slot->userspace_addr), S2_TA_SLOTF("flags", slot->flags));
	return r;
}

static int s2_count_leaf(void *arg, gfn_t gfn, const struct s2_mapping *m)
{
	(void)gfn;
	(void)m;
	++*(uint64_t *)arg;
	return 0;
}

/*
 * Whether the zap of @s's range (a slot about to leave, move or become
 * read-only) should be the fast zap: when the range holds at least 7/8 of
 * the leaves of a root, and that is at least kvm->fast_zap_min leaves
 * (docs/rules.md, "The fast zap and when each zap is chosen"). The VM's
 * leaves come from the statistics (over its valid roots); the range's are
 * counted in the current root of space 0 under the shared side of
 * mmu_lock, a chunk per hold, and only while 7/8 can still be reached. A
 * guess made before slots_lock: either choice is correct. With no lock
 * held; prepares @fz when it says yes.
 */
static bool s2_zap_choose_fast(struct kvm *kvm, const struct kvm_memory_slot *s,
			       struct s2_fast_zap *fz)
{
	uint64_t total = 0, need, n = 0, chunk = 64ull * (kvm->yield_batch ? kvm->yield_batch : 1);
	gfn_t end = s->base_gfn + s->npages;
	struct kvm_mmu_stats st;
	unsigned roots = s2_roots_valid(kvm);

	if (kvm->gfn_direct_bits || kvm_get_stats(kvm, &st))
		return false;
	for (int l = 1; l <= S2_MAX_LEVELS; l++)
		total += (uint64_t)st.cur_leaves[l];
	total /= roots ? roots : 1;
	need = total - total / 8;
	if (!need || need < kvm->fast_zap_min || s->npages < need)
		return false;
	for (gfn_t g = s->base_gfn; g < end && n < need; g += chunk) {
		if (n + (end - g) < need ||
		    kvm_mmu_for_each_leaf(kvm, g, end - g > chunk ? g + chunk : end, s2_count_leaf,
					  &n))
			return false;
	}
	return n >= need && !s2_fast_zap_prepare(kvm, fz);
}

/* Before an update of slot @id that zaps when @zaps(slot) says so: choose
 * how (s2_zap_choose_fast). */
static void s2_zap_plan_fast(struct kvm *kvm, struct s2_slot_update *u, unsigned id,
			     bool (*zaps)(const struct kvm_memory_slot *s, const void *arg),
			     const void *arg)
{
	struct kvm_memory_slot s;

	if (!kvm_id_to_memslot(kvm, id, &s) && zaps(&s, arg))
		u->fast = s2_zap_choose_fast(kvm, &s, &u->fz);
}

static bool s2_delete_zaps(const struct kvm_memory_slot *s, const void *arg)
{
	(void)s;
	(void)arg;
	return true;
}

/* kvm_delete_memslot's plan: drop slot u->prev.id and zap what it mapped. */
static int s2_plan_delete(struct kvm *kvm, const struct s2_memslots *cur, struct s2_slot_update *u)
{
	const struct kvm_memory_slot *s = s2_find_id(cur, u->prev.id);

	(void)kvm;
	if (!s)
		return -ENOENT;
	u->prev = *s;
	u->drop_id = (int)s->id;
	u->add = false;
	u->gone = s2_dirty_of(cur, s);
	u->zap = true;
	u->nr = cur->nr - 1;
	return 0;
}

static S2_ALWAYS_INLINE int kvm_delete_memslot_untraced(struct kvm *kvm, unsigned id)
{
	struct s2_slot_update u = { .prev.id = id };
	int r;

	if (!kvm)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	s2_zap_plan_fast(kvm, &u, id, s2_delete_zaps, NULL);
	r = s2_memslots_update(kvm, s2_plan_delete, &u);
	if (u.fast)
		s2_fast_zap_finish(kvm, &u.fz);
	return r;
}

int kvm_delete_memslot(struct kvm *kvm, unsigned id)
{
	int r = kvm_delete_memslot_untraced(kvm, id);

	S2_TRACE(kvm, "memslot_delete", r, S2_TA_DEC("id", id));
	return r;
}

/* What kvm_move_memslot / kvm_set_memslot_flags change. */
struct s2_replace {
	struct s2_slot_update u; /* first: the plan gets &u */
	unsigned id;
	gfn_t base;
	bool set_base;
	unsigned flags;
	bool set_flags;
};

/* Their plan: give slot @id a new base and/or flags, zapping what it
 * mapped when it moves or becomes read-only. */
static int s2_plan_replace(struct kvm *kvm, const struct s2_memslots *cur, struct s2_slot_update *u)
{
	const struct s2_replace *rp = (const struct s2_replace *)u;
	const struct kvm_memory_slot *s = s2_find_id(cur, rp->id);
	struct s2_slot_dirty *prev_dirty;
	int r;

	if (!s)
		return -ENOENT;
	u->prev = u->upd = *s;
	if (rp->set_base)
		u->upd.base_gfn = rp->base;
	if (rp->set_flags)
		u->upd.flags = rp->flags;
	r = s2_slot_valid(kvm, &u->upd);
	if (r)
		return r;
	if (s2_overlaps_any(cur, &u->upd, rp->id))
		return -EINVAL;
	/* A slot that keeps logging keeps its bitmap (moves included). */
	prev_dirty = s2_dirty_of(cur, s);
	u->dirty = (u->upd.flags & KVM_MEM_LOG_DIRTY_PAGES) ? prev_dirty : NULL;
	u->new_dirty = (u->upd.flags & KVM_MEM_LOG_DIRTY_PAGES) && !prev_dirty;
	u->gone = u->dirty == prev_dirty ? NULL : prev_dirty;
	u->drop_id = (int)rp->id;
	u->add = true;
	/* Moving unmaps the old range; becoming read-only unmaps writable
	 * leaves (they fault back read-only). */
	u->zap = u->upd.base_gfn != u->prev.base_gfn ||
		 ((u->upd.flags & KVM_MEM_READONLY) && !(u->prev.flags & KVM_MEM_READONLY));
	u->nr = cur->nr;
	return 0;
}

/* Whether the replace @arg (a struct s2_replace) zaps slot @s, as
 * s2_plan_replace decides it. */
static bool s2_replace_zaps(const struct kvm_memory_slot *s, const void *arg)
{
	const struct s2_replace *rp = arg;

	return (rp->set_base && rp->base != s->base_gfn) ||
	       (rp->set_flags && (rp->flags & KVM_MEM_READONLY) && !(s->flags & KVM_MEM_READONLY));
}

static int s2_memslot_replace(struct kvm *kvm, unsigned id, gfn_t base, bool set_base,
			      unsigned flags, bool set_flags)
{
	struct s2_replace rp = {
		.id = id, .base = base, .set_base = set_base, .flags = flags, .set_flags = set_flags
	};

	int r;

	if (!kvm)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	s2_zap_plan_fast(kvm, &rp.u, id, s2_replace_zaps, &rp);
	r = s2_memslots_update(kvm, s2_plan_replace, &rp.u);
	if (rp.u.fast)
		s2_fast_zap_finish(kvm, &rp.u.fz);
	return r;
}

static S2_ALWAYS_INLINE int kvm_move_memslot_untraced(struct kvm *kvm, unsigned id,
						      gfn_t new_base_gfn)
{
	return s2_memslot_replace(kvm, id, new_base_gfn, true, 0, false);
}

int kvm_move_memslot(struct kvm *kvm, unsigned id, gfn_t new_base_gfn)
{
	int r = kvm_move_memslot_untraced(kvm, id, new_base_gfn);

	S2_TRACE(kvm, "memslot_move", r, S2_TA_DEC("id", id), S2_TA_HEX("gfn", new_base_gfn));
	return r;
}

static S2_ALWAYS_INLINE int kvm_set_memslot_flags_untraced(struct kvm *kvm, unsigned id,
							   unsigned flags)
{
	return s2_memslot_replace(kvm, id, 0, false, flags, true);
}

int kvm_set_memslot_flags(struct kvm *kvm, unsigned id, unsigned flags)
{
	int r = kvm_set_memslot_flags_untraced(kvm, id, flags);

	S2_TRACE(kvm, "memslot_flags", r, S2_TA_DEC("id", id), S2_TA_SLOTF("flags", flags));
	return r;
}

static void s2_slots_read_lock(const struct kvm *kvm)
{
	if (kvm->env->ops->rcu_read_lock)
		kvm->env->ops->rcu_read_lock(kvm->env->ctx);
}

static void s2_slots_read_unlock(const struct kvm *kvm)
{
	if (kvm->env->ops->rcu_read_unlock)
		kvm->env->ops->rcu_read_unlock(kvm->env->ctx);
}

/* Copy the slot of @gfn and the generation it belongs to. */
int s2_memslot_snapshot(const struct kvm *kvm, gfn_t gfn, struct kvm_memory_slot *out,
			uint64_t *gen)
{
	const struct kvm_memory_slot *s;
	int r = -ENOENT;

	*gen = __atomic_load_n(&kvm->memslots_gen, __ATOMIC_ACQUIRE);
	s2_slots_read_lock(kvm);
	s = s2_memslots_find(__atomic_load_n(&kvm->memslots, __ATOMIC_ACQUIRE), gfn);
	if (s) {
		*out = *s;
		r = 0;
	}
	s2_slots_read_unlock(kvm);
	return r;
}

int kvm_gfn_to_memslot(struct kvm *kvm, gfn_t gfn, struct kvm_memory_slot *out)
{
	uint64_t gen;

	if (!kvm || !out)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	return s2_memslot_snapshot(kvm, gfn, out, &gen);
}

int kvm_id_to_memslot(struct kvm *kvm, unsigned id, struct kvm_memory_slot *out)
{
	const struct kvm_memory_slot *s;
	int r = -ENOENT;

	if (!kvm || !out)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	s2_spin_lock(&kvm->slots_lock, kvm->env);
	s = s2_find_id(kvm->memslots, id);
	if (s) {
		*out = *s;
		r = 0;
	}
	s2_spin_unlock(&kvm->slots_lock);
	return r;
}

unsigned kvm_nr_memslots(const struct kvm *kvm)
{
	unsigned n;

	if (!kvm)
		return 0;
	s2_slots_read_lock(kvm);
	n = __atomic_load_n(&kvm->memslots, __ATOMIC_ACQUIRE)->nr;
	s2_slots_read_unlock(kvm);
	return n;
}
