/* SPDX-License-Identifier: MIT */
/*
 * The host memory manager's entry points (KVM's MMU notifier) and memory
 * attributes. docs/notifier.md is the long form.
 *
 * The host calls invalidate_range_start() before it changes or drops the
 * pages behind an hva range and invalidate_range_end() afterwards; between
 * the two, faults on the gfns that range backs return RET_PF_RETRY, and a
 * fault that looked its pfn up before the change and installs after it is
 * refused the same way (mmu_invalidate_seq). The aging entry points let the
 * host's page reclaim ask whether the guest used a range. Every hva range is
 * cut into one struct kvm_gfn_range per memslot it overlaps; a range that
 * covers no memslot changes nothing.
 *
 * There is no change_pte entry: the host always wraps a pte change in
 * invalidate start/end, so the entry is zapped before such a callback could
 * run and it would never find a present entry to update.
 *
 * Only the VM's ordinary (shared) root is affected; private (TDX mirror)
 * roots are touched by private faults, memslot removal and attribute
 * conversion only (a later issue).
 */
#ifndef S2MMU_NOTIFIER_H
#define S2MMU_NOTIFIER_H

#include "s2mmu/memslot.h"
#include "s2mmu/types.h"

struct kvm;

/* Memory attributes (KVM's KVM_MEMORY_ATTRIBUTE_*). */
#define KVM_MEMORY_ATTRIBUTE_PRIVATE (1ull << 3)
#define KVM_MEMORY_ATTRIBUTES_VALID KVM_MEMORY_ATTRIBUTE_PRIVATE

/* What one action hands its per-memslot handler besides the range. */
union kvm_mmu_notifier_arg {
	uint64_t attributes; /* kvm_vm_set_mem_attributes(): the new attributes */
};

/*
 * One memslot's share of a notifier or attribute range: gfns [start, end)
 * of @slot (a copy taken under RCU), with the action's argument. @may_block
 * says the host allows the handler to sleep (it is passed on; the library
 * never sleeps under mmu_lock).
 */
struct kvm_gfn_range {
	struct kvm_memory_slot slot;
	gfn_t start, end;
	union kvm_mmu_notifier_arg arg;
	bool may_block;
};

/*
 * The host is about to change the pages behind hva [@start, @end): raise
 * mmu_invalidate_in_progress, add the gfns of every overlapping memslot to
 * the in-progress range, then zap them (huge leaves that reach outside are
 * zapped whole) and flush once if anything was zapped. Partial pages count
 * whole. An empty range (@start == @end) still counts as an invalidation.
 * Returns 0 (then call _end with the same range), -EINVAL (NULL kvm,
 * @start > @end; nothing changed), -EIO (bugged VM).
 */
int kvm_mmu_notifier_invalidate_range_start(struct kvm *kvm, hva_t start, hva_t end,
					    bool may_block) S2_MUST_CHECK;

/*
 * The host finished changing hva [@start, @end): bump mmu_invalidate_seq
 * (when this batch of invalidations covered any gfn), then lower
 * mmu_invalidate_in_progress. Never flushes. Returns 0, -EINVAL (NULL kvm,
 * @start > @end, or no invalidation in progress: an end without a start is
 * reported once through the log and changes nothing), -EIO.
 */
int kvm_mmu_notifier_invalidate_range_end(struct kvm *kvm, hva_t start, hva_t end, bool may_block);

/*
 * Page reclaim: clear Accessed on every leaf backing hva [@start, @end) and
 * report whether any was young; flush once when one was, so later accesses
 * set Accessed again (clear_flush_young), or never flush (clear_young: the
 * host accepts that cached translations hide some accesses). Without
 * Accessed bits (EPT without A/D) leaves are made access-tracked instead:
 * not present to hardware, restored by the next fault without asking the
 * host. Where neither exists every present leaf is reported young. Runs
 * under the read side of mmu_lock. Returns the number of young leaves
 * (> 0: young), 0, or -EINVAL / -EIO.
 */
long kvm_mmu_notifier_clear_flush_young(struct kvm *kvm, hva_t start, hva_t end);
long kvm_mmu_notifier_clear_young(struct kvm *kvm, hva_t start, hva_t end);

/*
 * Report whether any leaf backing hva [@start, @end) is young, changing
 * nothing and stopping at the first young one. Runs without mmu_lock (under
 * RCU) where the environment has rcu_read_lock. Returns 1 (young), 0, or
 * -EINVAL / -EIO.
 */
int kvm_mmu_notifier_test_young(struct kvm *kvm, hva_t start, hva_t end);

/*
 * Set the attributes of gfns [@start, @end) to @attrs (0 = shared, or
 * KVM_MEMORY_ATTRIBUTE_PRIVATE). The gfns whose attribute changes are
 * converted: within an invalidation (faults on them retry until it ends)
 * their mappings in the shared root are zapped and flushed once. Gfns
 * without a memslot may carry attributes too. Setting what is already set
 * changes nothing. Returns 0, -EINVAL (NULL kvm, empty or inverted range,
 * past the gpa width or not aligned to the granule, unknown attribute bits),
 * -ENOMEM (nothing changed), -EIO.
 */
int kvm_vm_set_mem_attributes(struct kvm *kvm, gfn_t start, gfn_t end,
			      uint64_t attrs) S2_MUST_CHECK;

/* The attributes of @gfn (0 for a NULL kvm). */
uint64_t kvm_get_memory_attributes(struct kvm *kvm, gfn_t gfn);

/*
 * True when every gfn in [@start, @end) has exactly @attrs (an empty range
 * has). For embedders that check a fault against the attributes.
 */
bool kvm_range_has_memory_attributes(struct kvm *kvm, gfn_t start, gfn_t end, uint64_t attrs);

/* Invalidations in progress and the sequence count faults retry against
 * (for embedders' own caches of gfn -> pfn, like KVM's gfn_to_pfn_cache). */
uint64_t kvm_mmu_invalidate_in_progress(const struct kvm *kvm);
uint64_t kvm_mmu_invalidate_seq(const struct kvm *kvm);

#endif
