// SPDX-License-Identifier: MIT
/*
 * Host-MM entry points, the range walker that serves all of them, and the
 * invalidation protocol faults retry against.
 *
 * The protocol (rule 4). invalidate_range_start, under the write side of
 * mmu_lock, raises mmu_invalidate_in_progress and widens the in-progress gfn
 * range before it zaps anything; _end bumps mmu_invalidate_seq and then
 * lowers in_progress. A fault snapshots the seq before it asks the host for
 * the pfn and, under mmu_lock, retries if its gfn is in an in-progress range
 * or the seq moved (s2_invalidate_retry()). So a pfn looked up before or
 * during an invalidation is never installed after the zap: either the fault
 * takes mmu_lock before start (and start zaps what it installed), or it sees
 * in_progress with its gfn in range, or it sees the seq bumped by _end.
 */
#include "notifier/notifier.h"

void s2_mn_warn_once(struct kvm *kvm, unsigned once, const char *msg, uint64_t val)
{
	if (__atomic_fetch_or(&kvm->notifier_warned, once, __ATOMIC_RELAXED) & once)
		return;
	s2_log(kvm, S2_LOG_WARN, msg, val);
}

/* ---- the invalidation protocol ---- */

void s2_mn_invalidate_range_add(struct kvm *kvm, gfn_t start, gfn_t end)
{
	s2_invalidate_add(kvm, start, end);
}

/* on_lock of start (core/kvm_internal.h, s2_invalidate_begin()). */
static int s2_mn_invalidate_begin(struct kvm *kvm)
{
	s2_invalidate_begin(kvm);
	return 0;
}

/*
 * on_lock of end. A batch that covered no gfn leaves the seq alone: host
 * changes to memory no memslot maps must not make faults retry.
 */
static int s2_mn_invalidate_end(struct kvm *kvm)
{
	if (!s2_invalidate_end(kvm)) {
		s2_mn_warn_once(kvm, S2_MN_WARN_END,
				"invalidate_range_end without invalidate_range_start, ignored; seq",
				kvm->mmu_invalidate_seq);
		return -EINVAL;
	}
	return 0;
}

/* ---- handlers ---- */

/* True when @slot, as the range saw it, is still one of the VM's memslots. */
static bool s2_mn_slot_live(struct kvm *kvm, const struct kvm_memory_slot *slot)
{
	const struct s2_memslots *ms;
	bool live = false;
	int i;

	s2_mn_rcu_read_lock(kvm);
	ms = __atomic_load_n(&kvm->memslots, __ATOMIC_ACQUIRE);
	i = s2_memslots_id_index(ms, slot->id);
	live = i >= 0 && ms->slots[i].base_gfn == slot->base_gfn &&
	       ms->slots[i].npages == slot->npages;
	s2_mn_rcu_read_unlock(kvm);
	return live;
}

long kvm_unmap_gfn_range(struct kvm *kvm, const struct kvm_gfn_range *range,
			 struct s2_change_acc *acc)
{
	/*
	 * Outside an invalidation a fault may be about to install a pfn it
	 * looked up before this zap, and nothing would make it retry. Only a
	 * memslot that is already gone cannot be faulted on again.
	 */
	if (!kvm->mmu_invalidate_in_progress && s2_mn_slot_live(kvm, &range->slot)) {
		s2_mn_warn_once(kvm, S2_MN_WARN_UNMAP,
				"kvm_unmap_gfn_range outside an invalidation refused; gfn",
				range->start);
		return -EINVAL;
	}
	return s2_zap_range_locked(kvm, range->start, range->end, acc);
}

/* invalidate_range_start's handler: record the gfns, then zap them. */
static long s2_mn_unmap(struct kvm *kvm, const struct kvm_gfn_range *range,
			struct s2_change_acc *acc)
{
	s2_mn_invalidate_range_add(kvm, range->start, range->end);
	return kvm_unmap_gfn_range(kvm, range, acc);
}

/*
 * Age under whichever side of mmu_lock the runner took (s2_mn_run: the
 * write side for large ranges). Under the write side the age visitor clears
 * with plain stores where hardware cannot write the leaf meanwhile, and the
 * range goes in chunks of yield_batch pages: between chunks the lock is
 * yielded to anyone waiting for it (faults), so they wait for one chunk,
 * never for the whole range (docs/rules.md "Aging"). The chunks are gfn
 * spans rather than the walker's leaf budget, which would count every leaf.
 */
long kvm_age_gfn(struct kvm *kvm, const struct kvm_gfn_range *range, struct s2_change_acc *acc)
{
	bool plain = s2_rwlock_is_write_locked(&kvm->mmu_lock);
	uint64_t chunk = plain ? kvm->yield_batch : range->end - range->start;
	struct s2_range_op op = { .kind = S2_RANGE_AGE, .acc = acc, .arg = &plain };
	long r = 0;

	for (gfn_t g = range->start; g < range->end;) {
		gfn_t next = range->end - g > chunk ? g + chunk : range->end;
		long n;

		op.start = g;
		op.end = next;
		n = s2_range(kvm, &op);
		if (n < 0)
			return n;
		r += n;
		g = next;
		if (g < range->end && __atomic_load_n(&kvm->mmu_lock.waiting, __ATOMIC_RELAXED)) {
			/* As the walker's lock breaking: nothing owed across the
			 * drop (rule 2), and the waiters get in first (bounded). */
			s2_acc_settle(kvm, acc);
			s2_write_unlock(&kvm->mmu_lock);
			for (unsigned i = 0;
			     i < 64 && __atomic_load_n(&kvm->mmu_lock.waiting, __ATOMIC_ACQUIRE);
			     i++)
				s2_relax(kvm->env);
			s2_mmu_write_lock(kvm);
			__atomic_fetch_add(&kvm->stat_yields, 1, __ATOMIC_RELAXED);
		}
	}

	/*
	 * Where hardware does not set Accessed itself, the next access to
	 * what was aged faults: let faults try the host-free fast path.
	 */
	if (r > 0 && !(kvm->cfg.flags & S2_FMTF_AD) &&
	    !__atomic_load_n(&kvm->mmu_aged, __ATOMIC_RELAXED))
		__atomic_store_n(&kvm->mmu_aged, true, __ATOMIC_RELAXED);
	return r;
}

long kvm_test_age_gfn(struct kvm *kvm, const struct kvm_gfn_range *range, struct s2_change_acc *acc)
{
	struct s2_range_op op = {
		.kind = S2_RANGE_TEST_AGE, .start = range->start, .end = range->end, .acc = acc
	};

	return s2_range(kvm, &op);
}

/* ---- the table and the one walker ---- */

const struct s2_mn_action s2_mn_actions[S2_MN_NR] = {
	/* The change handler already owes the flush of what the zap removed
	 * (whole huge leaves included), so no flush on return. */
	[S2_MN_INVALIDATE_START] = { .name = "invalidate_range_start",
				     .handler = s2_mn_unmap,
				     .on_lock = s2_mn_invalidate_begin,
				     .lock = S2_MN_LOCK_WRITE,
				     .always_lock = true },
	[S2_MN_INVALIDATE_END] = { .name = "invalidate_range_end",
				   .on_lock = s2_mn_invalidate_end,
				   .lock = S2_MN_LOCK_WRITE,
				   .always_lock = true },
	/* Clearing Accessed owes nothing by itself (rule 2); the flush here
	 * is the notifier's choice, made when something was young. */
	[S2_MN_CLEAR_FLUSH_YOUNG] = { .name = "clear_flush_young",
				      .handler = kvm_age_gfn,
				      .lock = S2_MN_LOCK_READ,
				      .write_if_large = true,
				      .flush_on_ret = true },
	[S2_MN_CLEAR_YOUNG] = { .name = "clear_young",
				.handler = kvm_age_gfn,
				.lock = S2_MN_LOCK_READ,
				.write_if_large = true },
	[S2_MN_TEST_YOUNG] = { .name = "test_young",
			       .handler = kvm_test_age_gfn,
			       .lock = S2_MN_LOCK_NONE,
			       .stop_on_ret = true },
	[S2_MN_ATTR_PRE] = { .name = "set_mem_attributes",
			     .handler = kvm_pre_set_memory_attributes,
			     .on_lock = s2_mn_invalidate_begin,
			     .lock = S2_MN_LOCK_WRITE,
			     .by_gfn = true,
			     .always_lock = true },
	[S2_MN_ATTR_POST] = { .name = "set_mem_attributes_end",
			      .on_lock = s2_mn_invalidate_end,
			      .lock = S2_MN_LOCK_WRITE,
			      .by_gfn = true,
			      .always_lock = true },
};

/*
 * The part of @slot that [@start, @end) covers, as gfns. hva ranges count
 * partial pages whole (KVM's rounding).
 */
static bool s2_mn_overlap(const struct kvm_memory_slot *slot, uint64_t start, uint64_t end,
			  bool by_gfn, gfn_t *gs, gfn_t *ge)
{
	if (by_gfn) {
		*gs = start > slot->base_gfn ? start : slot->base_gfn;
		*ge = end < slot->base_gfn + slot->npages ? end : slot->base_gfn + slot->npages;
		return *gs < *ge;
	}
	hva_t base = slot->userspace_addr;
	hva_t limit = base + (slot->npages << S2_GFN_SHIFT); /* no wrap: memslot checks */
	hva_t hs = start > base ? start : base;
	hva_t he = end < limit ? end : limit;

	if (hs >= he)
		return false;
	*gs = slot->base_gfn + ((hs - base) >> S2_GFN_SHIFT);
	*ge = slot->base_gfn + ((he - base + S2_GFN_SIZE - 1) >> S2_GFN_SHIFT);
	return true;
}

/*
 * The slots a range overlaps, found through the set's indexes (O(log n)
 * each), never by a scan of every slot: gfn ranges in gfn order from the
 * first slot that ends after start, hva ranges in hva order (slots may
 * share hvas). Returns an index in ms->slots, or -1 after the last.
 */
struct s2_mn_slot_iter {
	const struct s2_memslots *ms;
	bool by_gfn;
	int gi; /* the current slot by gfn, -1: none */
	gfn_t end;
	struct s2_memslots_hva_iter hva;
};

static int s2_mn_slot_gfn(struct s2_mn_slot_iter *it)
{
	const struct s2_memslots *ms = it->ms;

	return it->gi >= 0 && ms->slots[it->gi].base_gfn < it->end ? it->gi : -1;
}

static int s2_mn_slot_first(struct s2_mn_slot_iter *it, const struct s2_memslots *ms, bool by_gfn,
			    uint64_t start, uint64_t end)
{
	it->ms = ms;
	it->by_gfn = by_gfn;
	if (!by_gfn)
		return s2_memslots_hva_first(&it->hva, ms, start, end);
	it->gi = s2_memslots_gfn_lower(ms, start);
	it->end = end;
	return s2_mn_slot_gfn(it);
}

static int s2_mn_slot_next(struct s2_mn_slot_iter *it)
{
	if (!it->by_gfn)
		return s2_memslots_hva_next(&it->hva);
	it->gi = s2_memslots_gfn_next(it->ms, (unsigned)it->gi);
	return s2_mn_slot_gfn(it);
}

static enum s2_mn_lock s2_mn_lock(struct kvm *kvm, enum s2_mn_lock mode)
{
	if (mode == S2_MN_LOCK_NONE && !kvm->env->ops->rcu_read_lock)
		mode = S2_MN_LOCK_READ; /* no RCU readers: tables need the lock */
	if (mode == S2_MN_LOCK_WRITE)
		s2_mmu_write_lock(kvm);
	else if (mode == S2_MN_LOCK_READ)
		s2_mmu_read_lock(kvm);
	return mode;
}

static void s2_mn_unlock(struct kvm *kvm, enum s2_mn_lock mode)
{
	if (mode == S2_MN_LOCK_WRITE)
		s2_write_unlock(&kvm->mmu_lock);
	else if (mode == S2_MN_LOCK_READ)
		s2_read_unlock(&kvm->mmu_lock);
}

long s2_mn_run(struct kvm *kvm, enum s2_mn_action_id id, uint64_t start, uint64_t end,
	       union kvm_mmu_notifier_arg arg, bool may_block)
{
	return s2_mn_run_defer(kvm, id, start, end, arg, may_block, NULL);
}

long s2_mn_run_defer(struct kvm *kvm, enum s2_mn_action_id id, uint64_t start, uint64_t end,
		     union kvm_mmu_notifier_arg arg, bool may_block, struct s2_change_acc *defer)
{
	const struct s2_mn_action *a = &s2_mn_actions[id];
	const struct s2_memslots *ms;
	struct s2_mn_slot_iter it;
	struct s2_change_acc acc;
	enum s2_mn_lock held = S2_MN_LOCK_NONE, mode = a->lock;
	bool locked = false;
	long total = 0, r = 0;

	if (a->write_if_large && end - start >= S2_MN_LARGE_BYTES)
		mode = S2_MN_LOCK_WRITE;

	s2_acc_init(&acc);
	/* Memslots are read under RCU; the lock, when taken, nests inside. */
	s2_mn_rcu_read_lock(kvm);
	if (a->always_lock) {
		held = s2_mn_lock(kvm, mode);
		locked = true;
		if (a->on_lock)
			r = a->on_lock(kvm);
	}
	ms = __atomic_load_n(&kvm->memslots, __ATOMIC_ACQUIRE);
	for (int i = a->handler ? s2_mn_slot_first(&it, ms, a->by_gfn, start, end) : -1;
	     !r && i >= 0; i = s2_mn_slot_next(&it)) {
		struct kvm_gfn_range range = { .arg = arg, .may_block = may_block };

		if (!s2_mn_overlap(&ms->slots[i], start, end, a->by_gfn, &range.start, &range.end))
			continue;
		range.slot = ms->slots[i];
		if (!locked) {
			held = s2_mn_lock(kvm, mode);
			locked = true;
			if (a->on_lock && (r = a->on_lock(kvm)))
				break;
		}
		if (held == S2_MN_LOCK_NONE) { /* a walk without mmu_lock */
			s2_lockless_begin(kvm);
			r = a->handler(kvm, &range, &acc);
			s2_lockless_end(kvm);
		} else {
			r = a->handler(kvm, &range, &acc);
		}
		if (r < 0)
			break;
		if (r > 0 && a->flush_on_ret)
			s2_acc_need_flush(&acc, range.start, range.end);
		total += r;
		if (r > 0 && a->stop_on_ret)
			break;
		r = 0;
	}
	if (locked)
		s2_acc_settle(kvm, &acc); /* the one flush of this call, if owed */
	s2_mn_rcu_read_unlock(kvm);
	if (locked) {
		s2_mn_unlock(kvm, held);
		if (defer) { /* the caller holds a spinlock: it frees them later */
			defer->free_head = acc.free_head;
			defer->free_nr = acc.free_nr;
		} else if (held == S2_MN_LOCK_WRITE) {
			s2_acc_free_tables_write(kvm, &acc); /* flushed before the unlock */
		} else {
			s2_acc_free_tables(kvm, &acc); /* may wait for a grace period */
		}
	}
	return r < 0 ? r : total;
}

/* ---- entry points ---- */

static int s2_mn_check(struct kvm *kvm, uint64_t start, uint64_t end)
{
	if (!kvm || start > end)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	return 0;
}

static S2_ALWAYS_INLINE int kvm_mmu_notifier_invalidate_range_start_untraced(struct kvm *kvm,
									     hva_t start, hva_t end,
									     bool may_block)
{
	union kvm_mmu_notifier_arg none = { 0 };
	int r = s2_mn_check(kvm, start, end);

	if (r)
		return r;
	r = (int)s2_mn_run(kvm, S2_MN_INVALIDATE_START, start, end, none, may_block);
	return r < 0 ? r : 0;
}

int kvm_mmu_notifier_invalidate_range_start(struct kvm *kvm, hva_t start, hva_t end, bool may_block)
{
	int r = kvm_mmu_notifier_invalidate_range_start_untraced(kvm, start, end, may_block);

	S2_TRACE(kvm, "invalidate_start", r, S2_TA_HEX("hva", start), S2_TA_HEX("end", end),
		 S2_TA_DEC("may_block", may_block));
	return r;
}

static S2_ALWAYS_INLINE int kvm_mmu_notifier_invalidate_range_end_untraced(struct kvm *kvm,
									   hva_t start, hva_t end,
									   bool may_block)
{
	union kvm_mmu_notifier_arg none = { 0 };
	int r = s2_mn_check(kvm, start, end);

	if (r)
		return r;
	r = (int)s2_mn_run(kvm, S2_MN_INVALIDATE_END, start, end, none, may_block);
	return r < 0 ? r : 0;
}

int kvm_mmu_notifier_invalidate_range_end(struct kvm *kvm, hva_t start, hva_t end, bool may_block)
{
	int r = kvm_mmu_notifier_invalidate_range_end_untraced(kvm, start, end, may_block);

	S2_TRACE(kvm, "invalidate_end", r, S2_TA_HEX("hva", start), S2_TA_HEX("end", end),
		 S2_TA_DEC("may_block", may_block));
	return r;
}

static S2_ALWAYS_INLINE long kvm_mmu_notifier_clear_flush_young_untraced(struct kvm *kvm,
									 hva_t start, hva_t end)
{
	union kvm_mmu_notifier_arg none = { 0 };
	int r = s2_mn_check(kvm, start, end);

	return r ? r : s2_mn_run(kvm, S2_MN_CLEAR_FLUSH_YOUNG, start, end, none, false);
}

long kvm_mmu_notifier_clear_flush_young(struct kvm *kvm, hva_t start, hva_t end)
{
	long r = kvm_mmu_notifier_clear_flush_young_untraced(kvm, start, end);

	S2_TRACE(kvm, "clear_flush_young", r, S2_TA_HEX("hva", start), S2_TA_HEX("end", end));
	return r;
}

static S2_ALWAYS_INLINE long kvm_mmu_notifier_clear_young_untraced(struct kvm *kvm, hva_t start,
								   hva_t end)
{
	union kvm_mmu_notifier_arg none = { 0 };
	int r = s2_mn_check(kvm, start, end);

	return r ? r : s2_mn_run(kvm, S2_MN_CLEAR_YOUNG, start, end, none, false);
}

long kvm_mmu_notifier_clear_young(struct kvm *kvm, hva_t start, hva_t end)
{
	long r = kvm_mmu_notifier_clear_young_untraced(kvm, start, end);

	S2_TRACE(kvm, "clear_young", r, S2_TA_HEX("hva", start), S2_TA_HEX("end", end));
	return r;
}

static S2_ALWAYS_INLINE int kvm_mmu_notifier_test_young_untraced(struct kvm *kvm, hva_t start,
								 hva_t end)
{
	union kvm_mmu_notifier_arg none = { 0 };
	int r = s2_mn_check(kvm, start, end);
	long y;

	if (r)
		return r;
	y = s2_mn_run(kvm, S2_MN_TEST_YOUNG, start, end, none, false);
	return y < 0 ? (int)y : y > 0;
}

int kvm_mmu_notifier_test_young(struct kvm *kvm, hva_t start, hva_t end)
{
	int r = kvm_mmu_notifier_test_young_untraced(kvm, start, end);

	S2_TRACE(kvm, "test_young", r, S2_TA_HEX("hva", start), S2_TA_HEX("end", end));
	return r;
}

uint64_t kvm_mmu_invalidate_in_progress(const struct kvm *kvm)
{
	return kvm ? __atomic_load_n(&kvm->mmu_invalidate_in_progress, __ATOMIC_ACQUIRE) : 0;
}

uint64_t kvm_mmu_invalidate_seq(const struct kvm *kvm)
{
	return kvm ? __atomic_load_n(&kvm->mmu_invalidate_seq, __ATOMIC_ACQUIRE) : 0;
}

/*
 * A memslot is being added (or moved) while an invalidation may be running:
 * the running invalidations did not see it, yet its hva may be one they
 * cover. Its gfns join the in-progress range before the slot is published
 * (mmu_lock held for write, as start holds it: a start that runs later sees
 * the slot itself). The zap clears what an earlier slot may have left at
 * those gfns while the host changes the memory behind them.
 */
void s2_notifier_slot_adding(struct kvm *kvm, const struct kvm_memory_slot *slot,
			     struct s2_change_acc *acc)
{
	if (!kvm->mmu_invalidate_in_progress)
		return;
	s2_mn_invalidate_range_add(kvm, slot->base_gfn, slot->base_gfn + slot->npages);
	(void)s2_zap_range_locked(kvm, slot->base_gfn, slot->base_gfn + slot->npages, acc);
}
