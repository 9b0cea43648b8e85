/* SPDX-License-Identifier: MIT */
/*
 * Inside notifier/: the one range walker and the handlers it calls. Not
 * installed; white-box tests include it.
 *
 * Every entry point is an action: a row of a small table saying which lock
 * to take, what to do first under it (raise or lower the invalidation), which
 * handler to call for each memslot the range overlaps, and whether a handler
 * that found something owes a flush. s2_mn_run() is the only loop over
 * memslots; each call settles one struct s2_change_acc, so it flushes at most
 * once, and only when an entry changed in a way that needs it.
 */
#ifndef S2MMU_NOTIFIER_INTERNAL_H
#define S2MMU_NOTIFIER_INTERNAL_H

#include "core/kvm_internal.h"
#include "s2mmu/notifier.h"

/*
 * A handler runs with the action's lock held for one memslot's range and
 * records what it owes in @acc. Returns what it found (leaves zapped, young
 * leaves), or -errno, which stops the walk.
 */
typedef long (*s2_gfn_handler_t)(struct kvm *kvm, const struct kvm_gfn_range *range,
				 struct s2_change_acc *acc);

/* Zap @range's gfns (mmu_lock held for write). Refuses (reports once,
 * changes nothing, returns -EINVAL) unless an invalidation is in progress
 * or the range's memslot is gone from the VM (memslot deletion or move). */
long kvm_unmap_gfn_range(struct kvm *kvm, const struct kvm_gfn_range *range,
			 struct s2_change_acc *acc);
/* Clear Accessed (or access-track) every leaf; returns young leaves. */
long kvm_age_gfn(struct kvm *kvm, const struct kvm_gfn_range *range, struct s2_change_acc *acc);
/* 1 at the first young leaf, else 0; changes nothing. */
long kvm_test_age_gfn(struct kvm *kvm, const struct kvm_gfn_range *range,
		      struct s2_change_acc *acc);
/* The attribute handler: zap the gfns whose attributes change to
 * range->arg.attributes (the new set is not published yet). */
long kvm_pre_set_memory_attributes(struct kvm *kvm, const struct kvm_gfn_range *range,
				   struct s2_change_acc *acc);

enum s2_mn_lock {
	S2_MN_LOCK_NONE,  /* RCU only (read side of mmu_lock if the env lacks it) */
	S2_MN_LOCK_READ,  /* read side of mmu_lock: changes by compare-and-exchange */
	S2_MN_LOCK_WRITE, /* write side of mmu_lock */
};

enum s2_mn_action_id {
	S2_MN_INVALIDATE_START,
	S2_MN_INVALIDATE_END,
	S2_MN_CLEAR_FLUSH_YOUNG,
	S2_MN_CLEAR_YOUNG,
	S2_MN_TEST_YOUNG,
	S2_MN_ATTR_PRE,
	S2_MN_ATTR_POST,
	S2_MN_NR
};

struct s2_mn_action {
	const char *name;
	s2_gfn_handler_t handler;	 /* per overlapping memslot; NULL: none */
	int (*on_lock)(struct kvm *kvm); /* first thing under the lock; may refuse */
	enum s2_mn_lock lock;
	bool flush_on_ret; /* a handler result > 0 owes a flush of its range */
	bool by_gfn;	   /* the range is gfns (attributes), not hvas */
	bool always_lock;  /* lock (and on_lock) even if no memslot overlaps */
	bool stop_on_ret;  /* stop at the first handler result > 0 */
	/* Take the write side instead of @lock for ranges of at least
	 * S2_MN_LARGE_BYTES (aging: plain stores instead of an atomic per
	 * leaf pay for the write side's cost past that size). */
	bool write_if_large;
};

/* 2 MiB: the write side (its membarrier and the wait for vcpus' read
 * flags) costs about what an atomic per leaf does over 512 leaves. */
#define S2_MN_LARGE_BYTES (512ull << S2_GFN_SHIFT)

extern const struct s2_mn_action s2_mn_actions[S2_MN_NR];

/*
 * Run action @id over [@start, @end) (hvas, or gfns for by_gfn actions).
 * Returns the sum of the handlers' results, or the first -errno.
 */
long s2_mn_run(struct kvm *kvm, enum s2_mn_action_id id, uint64_t start, uint64_t end,
	       union kvm_mmu_notifier_arg arg, bool may_block);
/* The same, for a caller that holds a spinlock: the tables it unlinked are
 * handed over in @defer (free_head, free_nr; @defer initialised with
 * s2_acc_init) for s2_acc_free_tables() once the spinlock is dropped. */
long s2_mn_run_defer(struct kvm *kvm, enum s2_mn_action_id id, uint64_t start, uint64_t end,
		     union kvm_mmu_notifier_arg arg, bool may_block, struct s2_change_acc *defer);

/* Widen the in-progress range by gfns [start, end) (mmu_lock for write). */
void s2_mn_invalidate_range_add(struct kvm *kvm, gfn_t start, gfn_t end);

/* Report @msg once per VM (bit @once of kvm->notifier_warned). */
void s2_mn_warn_once(struct kvm *kvm, unsigned once, const char *msg, uint64_t val);
enum {
	S2_MN_WARN_UNMAP = 1u << 0,
	S2_MN_WARN_END = 1u << 1,
};

/* Attributes of @gfn as published (caller in an RCU read section or
 * holding what serialises updates). */
uint64_t s2_attrs_lookup(const struct kvm *kvm, gfn_t gfn);

static inline void s2_mn_rcu_read_lock(const struct kvm *kvm)
{
	if (kvm->env->ops->rcu_read_lock)
		kvm->env->ops->rcu_read_lock(kvm->env->ctx);
}

static inline void s2_mn_rcu_read_unlock(const struct kvm *kvm)
{
	if (kvm->env->ops->rcu_read_unlock)
		kvm->env->ops->rcu_read_unlock(kvm->env->ctx);
}

#endif
