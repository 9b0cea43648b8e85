// SPDX-License-Identifier: MIT
/*
 * Memslots. The set is an immutable array sorted by base_gfn, replaced as a
 * whole under slots_lock and published for RCU readers, so a fault looks a
 * gfn up in O(log n) without a lock. An update that removes mappings bumps
 * memslots_gen before it zaps: a fault that resolved its slot from the old
 * set sees the new generation under mmu_lock and retries, and one that got
 * the lock earlier installed before the zap, which removes it.
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

/*
 * Build the set @old minus slot @drop_id (if any) plus @add (if non-NULL,
 * with the dirty bitmap @add_dirty), sorted. The other slots keep their
 * bitmaps. Returns NULL on -ENOMEM.
 */
static struct s2_memslots *s2_memslots_build(struct kvm *kvm, const struct s2_memslots *old,
					     int drop_id, const struct kvm_memory_slot *add,
					     struct s2_slot_dirty *add_dirty)
{
	const struct s2_env *env = kvm->env;
	unsigned n = old->nr + (add ? 1 : 0);
	struct s2_memslots *ms;
	unsigned j = 0;
	bool placed = !add;

	ms = env->ops->zalloc(env->ctx,
			      sizeof(*ms) + n * (sizeof(ms->slots[0]) + sizeof(ms->dirty[0])));
	if (!ms)
		return NULL;
	ms->dirty = (struct s2_slot_dirty **)&ms->slots[n];
	for (unsigned i = 0; i < old->nr; i++) {
		const struct kvm_memory_slot *s = &old->slots[i];

		if (drop_id >= 0 && s->id == (unsigned)drop_id)
			continue;
		if (!placed && add->base_gfn < s->base_gfn) {
			ms->dirty[j] = add_dirty;
			ms->slots[j++] = *add;
			placed = true;
		}
		ms->dirty[j] = old->dirty[i];
		ms->slots[j++] = *s;
	}
	if (!placed) {
		ms->dirty[j] = add_dirty;
		ms->slots[j++] = *add;
	}
	ms->nr = j;
	ms->generation = old->generation + 1;
	return ms;
}

static const struct kvm_memory_slot *s2_find_id(const struct s2_memslots *ms, unsigned id)
{
	for (unsigned i = 0; i < ms->nr; i++)
		if (ms->slots[i].id == id)
			return &ms->slots[i];
	return NULL;
}

/* The dirty bitmap of slot @s of @ms (NULL: it does not log). */
static struct s2_slot_dirty *s2_dirty_of(const struct s2_memslots *ms,
					 const struct kvm_memory_slot *s)
{
	return ms->dirty[s - ms->slots];
}

/*
 * Publish @ms in place of the current set; when @zap is set, first bump the
 * generation and zap [zap->base_gfn, +npages) with a flush. Then wait for
 * readers and free the old set. Called with slots_lock held.
 */
static void s2_memslots_commit(struct kvm *kvm, struct s2_memslots *ms,
			       const struct kvm_memory_slot *zap)
{
	const struct s2_env *env = kvm->env;
	struct s2_memslots *old = kvm->memslots;

	__atomic_store_n(&kvm->memslots, ms, __ATOMIC_RELEASE);
	__atomic_fetch_add(&kvm->memslots_gen, 1, __ATOMIC_SEQ_CST);
	if (zap) {
		struct s2_change_acc acc;

		s2_acc_init(&acc);
		s2_mmu_write_lock(kvm);
		(void)s2_zap_range_locked(kvm, zap->base_gfn, zap->base_gfn + zap->npages, &acc);
		s2_mmu_write_unlock(kvm, &acc);
	}
	env->ops->synchronize_rcu(env->ctx);
	env->ops->free(env->ctx, old);
}

int kvm_set_memslot(struct kvm *kvm, const struct kvm_memory_slot *slot)
{
	struct s2_memslots *old, *ms;
	struct s2_slot_dirty *d = NULL;
	int r = 0;

	if (!kvm || !slot)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	r = s2_slot_valid(kvm, slot);
	if (r)
		return r;
	s2_spin_lock(&kvm->slots_lock, kvm->env);
	old = kvm->memslots;
	if (old->nr >= CONFIG_S2_MAX_MEMSLOTS) {
		r = -ENOSPC;
		goto out;
	}
	if (s2_find_id(old, slot->id)) {
		r = -EINVAL;
		goto out;
	}
	for (unsigned i = 0; i < old->nr; i++) {
		if (s2_overlaps(&old->slots[i], slot)) {
			r = -EINVAL;
			goto out;
		}
	}
	if (slot->flags & KVM_MEM_LOG_DIRTY_PAGES) {
		d = s2_dirty_slot_alloc(kvm, slot);
		if (!d) {
			r = -ENOMEM;
			goto out;
		}
	}
	ms = s2_memslots_build(kvm, old, -1, slot, d);
	if (!ms) {
		s2_dirty_slot_free(kvm, d);
		r = -ENOMEM;
		goto out;
	}
	s2_memslots_commit(kvm, ms, NULL);
	s2_notifier_slot_added(kvm, slot);
out:
	s2_spin_unlock(&kvm->slots_lock);
	return r;
}

int kvm_delete_memslot(struct kvm *kvm, unsigned id)
{
	const struct kvm_memory_slot *s;
	struct kvm_memory_slot gone;
	struct s2_slot_dirty *gone_dirty;
	struct s2_memslots *ms;
	int r = 0;

	if (!kvm)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	s2_spin_lock(&kvm->slots_lock, kvm->env);
	s = s2_find_id(kvm->memslots, id);
	if (!s) {
		r = -ENOENT;
		goto out;
	}
	gone = *s;
	gone_dirty = s2_dirty_of(kvm->memslots, s);
	ms = s2_memslots_build(kvm, kvm->memslots, (int)id, NULL, NULL);
	if (!ms) {
		r = -ENOMEM;
		goto out;
	}
	s2_memslots_commit(kvm, ms, &gone);
	/* After the commit's grace period nobody records into it. */
	s2_dirty_slot_free(kvm, gone_dirty);
out:
	s2_spin_unlock(&kvm->slots_lock);
	return r;
}

/* Give slot @id a new base and/or flags, zapping what it mapped when it moves
 * or becomes read-only. */
static int s2_memslot_replace(struct kvm *kvm, unsigned id, gfn_t base, bool set_base,
			      unsigned flags, bool set_flags)
{
	const struct kvm_memory_slot *s;
	struct kvm_memory_slot upd, prev;
	struct s2_slot_dirty *prev_dirty, *d;
	struct s2_memslots *ms;
	bool zap;
	int r;

	if (!kvm)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	s2_spin_lock(&kvm->slots_lock, kvm->env);
	s = s2_find_id(kvm->memslots, id);
	if (!s) {
		r = -ENOENT;
		goto out;
	}
	prev = upd = *s;
	if (set_base)
		upd.base_gfn = base;
	if (set_flags)
		upd.flags = flags;
	r = s2_slot_valid(kvm, &upd);
	if (r)
		goto out;
	for (unsigned i = 0; i < kvm->memslots->nr; i++) {
		const struct kvm_memory_slot *o = &kvm->memslots->slots[i];

		if (o->id != id && s2_overlaps(o, &upd)) {
			r = -EINVAL;
			goto out;
		}
	}
	/* A slot that keeps logging keeps its bitmap (moves included). */
	prev_dirty = d = s2_dirty_of(kvm->memslots, s);
	if (!(upd.flags & KVM_MEM_LOG_DIRTY_PAGES))
		d = NULL;
	else if (!d && !(d = s2_dirty_slot_alloc(kvm, &upd))) {
		r = -ENOMEM;
		goto out;
	}
	ms = s2_memslots_build(kvm, kvm->memslots, (int)id, &upd, d);
	if (!ms) {
		if (d != prev_dirty)
			s2_dirty_slot_free(kvm, d);
		r = -ENOMEM;
		goto out;
	}
	/* Moving unmaps the old range; becoming read-only unmaps writable
	 * leaves (they fault back read-only). */
	zap = (set_base && upd.base_gfn != prev.base_gfn) ||
	      ((upd.flags & KVM_MEM_READONLY) && !(prev.flags & KVM_MEM_READONLY));
	s2_memslots_commit(kvm, ms, zap ? &prev : NULL);
	if (upd.base_gfn != prev.base_gfn)
		s2_notifier_slot_added(kvm, &upd);
	/* Published: start logging (protect, split) or stop it (collapse). */
	s2_dirty_slot_flags_changed(kvm, &prev, &upd);
	if (prev_dirty != d)
		s2_dirty_slot_free(kvm, prev_dirty);
out:
	s2_spin_unlock(&kvm->slots_lock);
	return r;
}

int kvm_move_memslot(struct kvm *kvm, unsigned id, gfn_t new_base_gfn)
{
	return s2_memslot_replace(kvm, id, new_base_gfn, true, 0, false);
}

int kvm_set_memslot_flags(struct kvm *kvm, unsigned id, unsigned flags)
{
	return s2_memslot_replace(kvm, id, 0, false, flags, true);
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
