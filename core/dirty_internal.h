/* SPDX-License-Identifier: MIT */
/*
 * Inside dirty logging and write tracking: the per-slot bitmap, the per-vcpu
 * ring, the write-tracked gfn set, and the arguments of the range kinds that
 * core/dirty_tmpl.h compiles per format. Included by core/kvm_internal.h
 * (before struct kvm_vcpu and struct kvm, which embed these).
 */
#ifndef S2MMU_CORE_DIRTY_INTERNAL_H
#define S2MMU_CORE_DIRTY_INTERNAL_H

#include "core/bitops.h"
#include "core/lock.h"
#include "s2mmu/dirty.h"
#include "s2mmu/memslot.h"

struct kvm;
struct kvm_vcpu;
struct s2_fault;
struct s2_page;

/*
 * The dirty bitmap of a logging slot: bit i is gfn base_gfn + i. Set with an
 * atomic OR by whoever records a write; collected with an atomic exchange or
 * AND under the slots lock. Lives as long as the slot logs, whichever memslot
 * arrays point at it (they are copied, the bitmap is not).
 */
struct s2_slot_dirty {
	uint64_t npages;
	uint64_t nwords;
	uint64_t bits[];
};

/*
 * A vcpu's dirty ring. Free-running indices: the vcpu's thread alone pushes
 * (push); harvesting copies [harvested, push) out; a reset re-protects
 * [reset, harvested) and only then frees those places. Consumers serialise
 * on kvm->dirty.lock.
 */
struct s2_dirty_ring {
	uint32_t size; /* entries, a power of two */
	uint32_t soft; /* used >= soft: soft-full */
	uint32_t push;
	uint32_t harvested;
	uint32_t reset;
	uint32_t pad;
	struct kvm_dirty_gfn e[];
};

/* The write-tracked gfns, sorted, with their add counts. Replaced as a whole
 * under mmu_lock held for write; readers hold mmu_lock or RCU. */
struct s2_write_track {
	unsigned nr;
	struct s2_wt_entry {
		gfn_t gfn;
		uint64_t count;
	} e[];
};

/* Per-VM state, embedded in struct kvm. */
struct s2_dirty_vm {
	uint32_t caps;		       /* KVM_DIRTY_LOG_* */
	uint32_t ring_size;	       /* entries per vcpu ring, 0 without rings */
	uint32_t ring_soft;	       /* soft-full limit */
	struct s2_spinlock lock;       /* ring consumers (harvest, reset) */
	struct s2_spinlock track_lock; /* write-track updates */
	struct s2_write_track *write_track;
	uint32_t fast_write; /* a slot logged: write faults try the fast path */
	uint32_t starting;   /* slots starting to log, not yet all protected */
	/* A slot logged with hardware dirty state and no PML (sticky): the
	 * leaves' dirty bits are then the only record of a write until the
	 * next harvest, so the change handler records a dirty leaf it
	 * removes (s2_dirty_record_removed). */
	uint32_t hw_scan;
	struct kvm_dirty_stats stat; /* atomics */
};

/* Table pages for splits, allocated before mmu_lock is taken. */
struct s2_page_stack {
	unsigned nr, cap;
	struct s2_page *pg;
};

/* ---- arguments of the range kinds in core/dirty_tmpl.h ---- */

/* S2_RANGE_SPLIT: huge leaves -> tables of 4 KiB leaves, same pfns. */
struct s2_split_arg {
	struct s2_page_stack *pages; /* NULL: only count what would be needed */
	unsigned clear_prot;	     /* S2_PROT_* the new leaves go without */
	uint64_t need;		     /* out (counting): table pages needed */
	long split;		     /* out: huge leaves split */
	bool short_of_pages;	     /* out: stopped, more pages needed */
};

/*
 * What protecting a leaf made of its attributes (the entry without its
 * address bits) last time: most leaves of a slot share them, so a format
 * whose write-protect decodes and re-encodes permissions does it once.
 */
struct s2_prot_memo {
	s2_pte_t addr_bits; /* bits a level-1 leaf's address may occupy (0: unset) */
	s2_pte_t in, out;
	int level;     /* 0: empty */
	int hw_writes; /* hardware may set A/D in leaves: 1, 0, -1 unknown */
	/*
	 * protect_run()'s fast case: the attributes of the last level-1 leaf
	 * it protected with a plain store, and the bits that store flipped
	 * (fast_flip 0: none yet). Presence, the change and whether a plain
	 * store may make it are all decided by the attributes, so a leaf with
	 * the same ones takes old ^ fast_flip with no other test.
	 */
	s2_pte_t fast_in, fast_flip;
};

/* S2_RANGE_DIRTY_ENABLE: a slot starts logging. */
struct s2_enable_arg {
	struct s2_split_arg split; /* split.pages NULL: no eager split */
	bool split_on;
	bool hw;     /* clear dirty state instead of W */
	long reaped; /* out: leaves possibly writable in a TLB */
	struct s2_prot_memo memo;
	unsigned id;	  /* the slot, and its range when the walk began */
	gfn_t start, end; /* (checked again after a yield) */
};

/*
 * Where the last mask found its leaves: a table and the gfns its entries
 * cover. Valid while mmu_lock stays held for write (zero it after taking
 * the lock), so consecutive masks descend once per leaf table.
 */
struct s2_mask_cursor {
	struct s2_root *root; /* the root tbl belongs to */
	s2_pte_t *tbl;
	gfn_t start, end;
	int level;	 /* level of the entries of tbl */
	unsigned gshift; /* log2 gfns per entry */
	/* With a table of 4 KiB leaves: the level-2 table that links it and
	 * the gfns that one covers, so the next leaf table is one load away. */
	s2_pte_t *ptbl;
	gfn_t pstart, pend;
	struct s2_prot_memo memo;
};

/* S2_RANGE_DIRTY_MASK: re-protect pages base + 64 * w + i for the bits i
 * of masks[w]. */
struct s2_mask_arg {
	gfn_t base;
	const uint64_t *masks;
	uint64_t nmasks;
	bool hw;
	struct s2_mask_cursor *cur;
};

/* S2_RANGE_DIRTY_SCAN: OR the leaves' hardware dirty bits into a bitmap. */
struct s2_scan_arg {
	gfn_t base; /* gfn of bit 0 */
	gfn_t end;
	uint64_t *bits;
};

/* S2_RANGE_FAST_WRITE: a write fault on a leaf that may be made writable
 * without the host. ret: RET_PF_FIXED, RET_PF_SPURIOUS or -EAGAIN. */
struct s2_fast_arg {
	unsigned access;
	bool logging;
	int ret;
};

/* What the host said about one level-2 block of a slot, for collapse. */
struct s2_collapse_blk {
	kvm_pfn_t pfn;	   /* pfn of the block's first gfn */
	uint8_t max_level; /* largest leaf the backing allows here (0: none) */
};

/* S2_RANGE_COLLAPSE: tables of contiguous, uniform leaves -> one leaf. */
struct s2_collapse_arg {
	gfn_t start, end; /* the slot */
	gfn_t blk0;	  /* gfn of blk[0]; blocks are level-2 sized */
	uint64_t nblk;
	unsigned blk_shift; /* log2 gfns per level-2 block */
	const struct s2_collapse_blk *blk;
	const struct s2_write_track *wt;
	long collapsed;
	/* What the collapse was validated against (checked again after a
	 * yield): the slot as published at gen, the invalidation seq. */
	const struct kvm_memory_slot *slot;
	uint64_t gen, seq;
};

/* ---- hooks the rest of core/ calls (core/dirty.c) ---- */

/* Memslots: a logging slot's bitmap (-ENOMEM: NULL). No lock may be held. */
struct s2_slot_dirty *s2_dirty_slot_alloc(struct kvm *kvm, const struct kvm_memory_slot *slot);
void s2_dirty_slot_free(struct kvm *kvm, struct s2_slot_dirty *d);
/*
 * A slot changes from @prev to @upd (same id). s2_dirty_slot_published(),
 * with the slots lock held as the change is published, says what logging
 * needs done: S2_DIRTY_START (split, protect), S2_DIRTY_STOP (collapse) or
 * 0. s2_dirty_slot_flags_changed() does it once the slots lock is dropped,
 * with no lock held (it allocates table pages, asks the host for pfns); @gen
 * is the memslots_gen the change was published with.
 */
#define S2_DIRTY_START 1
#define S2_DIRTY_STOP 2
int s2_dirty_slot_published(struct kvm *kvm, const struct kvm_memory_slot *prev,
			    const struct kvm_memory_slot *upd);
void s2_dirty_slot_flags_changed(struct kvm *kvm, const struct kvm_memory_slot *upd, int change,
				 uint64_t gen);

/*
 * The change handler removed (zapped, split, cleaned) a leaf that held
 * hardware dirty state for [@gfn, @gfn + @pages), not yet harvested: record
 * those pages in the log of every logging slot they belong to. mmu_lock held.
 */
void s2_dirty_record_removed(struct kvm *kvm, gfn_t gfn, uint64_t pages);

/* vcpus: the ring (0 or -ENOMEM) and its release. */
int s2_dirty_vcpu_init(struct kvm_vcpu *vcpu);
void s2_dirty_vcpu_free(struct kvm_vcpu *vcpu);

/* kvm_destroy_vm: free the bitmaps and the write-track set. */
void s2_dirty_destroy(struct kvm *kvm);

/*
 * Fault path. s2_dirty_fast_write(): fix a write fault on an MMU-writable
 * leaf without the host (RET_PF_FIXED / RET_PF_SPURIOUS), or -EAGAIN for the
 * full path. s2_write_track_fault(): under mmu_lock, RET_PF_WRITE_TRACKED
 * for a write to a tracked gfn, else 0 after keeping the new leaf off
 * tracked gfns. s2_dirty_mark_fault(): record the write of a fault that
 * made a leaf writable (mmu_lock held).
 */
int s2_dirty_fast_write(struct kvm_vcpu *vcpu, gfn_t gfn, unsigned access);
int s2_write_track_fault(struct kvm *kvm, struct s2_fault *f, bool write);
void s2_dirty_mark_fault(struct kvm_vcpu *vcpu, gfn_t gfn);

/* Index of the first entry with gfn >= @gfn. */
static inline unsigned s2_wt_lower_bound(const struct s2_write_track *wt, gfn_t gfn)
{
	unsigned lo = 0, hi = wt->nr;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (wt->e[mid].gfn < gfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* True when a gfn in [start, end) is tracked. */
static inline bool s2_wt_any(const struct s2_write_track *wt, gfn_t start, gfn_t end)
{
	unsigned i;

	if (!wt)
		return false;
	i = s2_wt_lower_bound(wt, start);
	return i < wt->nr && wt->e[i].gfn < end;
}

#endif
