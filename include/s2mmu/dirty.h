/* SPDX-License-Identifier: MIT */
/*
 * Dirty logging (live migration) and write tracking, as KVM does them.
 *
 * A memslot logs when its KVM_MEM_LOG_DIRTY_PAGES flag is set (at
 * kvm_set_memslot() or later with kvm_set_memslot_flags()). From then on every
 * guest write to it is recorded once per harvest round:
 *  - in the slot's dirty bitmap (one bit per 4 KiB gfn, bit i = base_gfn + i),
 *  - or, when the VM has dirty rings, in the ring of the vcpu that wrote
 *    (writes made outside any vcpu still go to the bitmap).
 *
 * How writes are seen depends on the VM:
 *  - write-protection (every format): enabling clears hardware write access
 *    and keeps the MMU-writable software bit, so the first write to a page
 *    faults; kvm_tdp_page_fault() restores write access in place without
 *    asking the host for the pfn and records the page exactly once.
 *  - hardware dirty state, where the format keeps a dirty bit that the
 *    hardware sets (EPT with A/D, arm64 with S2_FMTF_HD (DBM), RISC-V with
 *    Svadu (S2_FMTF_AD), AMD NPT): leaves stay writable, the dirty bits are
 *    cleared instead, and a harvest collects them (by scanning the slot, or
 *    from page-modification-log buffers the embedder hands over, see
 *    KVM_DIRTY_LOG_PML). KVM_DIRTY_LOG_WRPROTECT picks write-protection
 *    anyway.
 * Huge leaves never log at 4 KiB granularity: enabling splits them eagerly
 * (CONFIG_S2_EAGER_SPLIT) or write-protects them so a write faults in a 4 KiB
 * leaf; disabling collapses the slot back, in place, to the largest leaves
 * the backing allows.
 *
 * TLB flushes: harvesting (get, clear, ring reset) flushes once per call and
 * only when it collected something; enabling flushes once when a leaf was
 * writable (the state nobody logged before is reaped then); write tracking
 * always flushes when it takes a gfn's MMU-writable bit away.
 * docs/dirty-logging.md has the reasoning.
 *
 * Gfns are 4 KiB frames whatever the granule; with a larger granule one
 * write marks every gfn of its granule page.
 */
#ifndef S2MMU_DIRTY_H
#define S2MMU_DIRTY_H

#include "s2mmu/types.h"

struct kvm;
struct kvm_vcpu;

/*
 * kvm_tdp_page_fault() result (after the enum kvm_pf_ret values): a write to
 * a write-tracked gfn. Nothing was changed; the embedder emulates the write.
 */
#define RET_PF_WRITE_TRACKED 5

/* VM-wide dirty-logging options (KVM's capabilities). */
enum {
	/*
	 * kvm_get_dirty_log() only copies the bitmap; pages are re-protected
	 * (and their bits cleared) by kvm_clear_dirty_log(), so pages not yet
	 * cleared stay writable (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2).
	 */
	KVM_DIRTY_LOG_MANUAL_PROTECT = 1u << 0,
	/* Write-protect even where the VM has hardware dirty state. */
	KVM_DIRTY_LOG_WRPROTECT = 1u << 1,
	/*
	 * The embedder feeds each vcpu's page-modification log to
	 * kvm_flush_pml_buffer() (at every exit, and before harvesting), so a
	 * harvest need not scan the slot's dirty bits. EPT only: needs an
	 * x86 EPT VM with hardware dirty state (created with S2_FMTF_AD)
	 * and a library built with EPT (the entry point exists only there);
	 * any other VM refuses it with -EINVAL.
	 */
	KVM_DIRTY_LOG_PML = 1u << 2,
};
#define KVM_DIRTY_LOG_CAPS_VALID \
	(KVM_DIRTY_LOG_MANUAL_PROTECT | KVM_DIRTY_LOG_WRPROTECT | KVM_DIRTY_LOG_PML)

/*
 * Set the VM's dirty-logging options (KVM_DIRTY_LOG_*). Only while no memslot
 * logs. Returns 0, -EINVAL (NULL, unknown bits, PML on a VM that is not x86
 * EPT, without hardware dirty state or with KVM_DIRTY_LOG_WRPROTECT), -EBUSY
 * (a slot logs), -EIO. Nothing is changed on an error.
 */
int kvm_dirty_log_set_caps(struct kvm *kvm, unsigned caps) S2_MUST_CHECK;
unsigned kvm_dirty_log_caps(const struct kvm *kvm);

/* True when dirty logging on @kvm uses hardware dirty state (not write
 * protection) with its current options. */
bool kvm_dirty_log_hw(const struct kvm *kvm);

/*
 * Copy the dirty bitmap of slot @slot_id into @bitmap (npages bits, rounded
 * up to whole 64-bit words; bit i is gfn base_gfn + i). Without
 * KVM_DIRTY_LOG_MANUAL_PROTECT the bits are reset and the pages they name are
 * re-protected, with one TLB flush if any was set; with it nothing changes.
 * Returns 1 when any page was dirty, 0 when none (counting would cost more
 * than the copy), -EINVAL (NULL), -ENOENT (no such slot, or it does not
 * log), -EIO.
 */
long kvm_get_dirty_log(struct kvm *kvm, unsigned slot_id, uint64_t *bitmap);

/*
 * Manual-protect mode: for every page set in @bitmap (bit i is page
 * @first_page + i of the slot) that is dirty, clear its bit and re-protect
 * it, 64 pages at a time, with one TLB flush if any page was cleared. Pages
 * not named stay as they are. @first_page must be a multiple of 64, and
 * @num_pages too unless the range ends at the slot's end. Returns the number
 * of pages cleared (>= 0), -EINVAL (NULL, bad alignment, range past the
 * slot, not in manual-protect mode), -ENOENT, -EIO.
 */
long kvm_clear_dirty_log(struct kvm *kvm, unsigned slot_id, uint64_t first_page, uint64_t num_pages,
			 const uint64_t *bitmap);

/*
 * Record a write to @gfn made outside the MMU (device model, emulation):
 * into the slot's bitmap, or with a vcpu into its dirty ring (the bitmap
 * when the VM has no rings). No-op unless the gfn's slot logs. Returns 1
 * when recorded, 0, -EINVAL, -EIO. kvm_vcpu_mark_page_dirty() must be
 * called from @vcpu's thread (it owns the ring's producer side).
 */
int kvm_mark_page_dirty(struct kvm *kvm, gfn_t gfn);
int kvm_vcpu_mark_page_dirty(struct kvm_vcpu *vcpu, gfn_t gfn);

/* ---- dirty rings ---- */

/*
 * One ring entry: a dirty page as slot id and page offset in the slot. The
 * offset counts 4 KiB gfns; with a 16K or 64K granule one entry stands for
 * the whole granule page and names its first gfn (the harvester marks all
 * 4 or 16 gfns from there).
 */
struct kvm_dirty_gfn {
	uint32_t slot;
	uint32_t flags; /* 0 */
	uint64_t offset;
};

/*
 * Give every vcpu a dirty ring of @entries entries (a power of two, 16 ..
 * 65536); @reserve entries (< entries - 8) are kept free for pushes made
 * after the ring went soft-full: from then on KVM_REQ_DIRTY_RING_SOFT_FULL
 * is raised on the vcpu, which should exit until kvm_dirty_ring_reset() made
 * room (see kvm_dirty_ring_check_request()). A push into a full ring is
 * never lost: it goes to the slot's bitmap. Must be called before the first
 * vcpu is created (KVM's rule). Returns 0, -EINVAL, -EBUSY (vcpus exist or
 * rings are enabled), -EIO.
 */
int kvm_dirty_ring_enable(struct kvm *kvm, uint32_t entries, uint32_t reserve) S2_MUST_CHECK;

/*
 * Copy up to @max not yet harvested entries of @vcpu's ring into @out, in
 * push order, and mark them harvested (kvm_dirty_ring_reset() re-protects
 * harvested entries). Any thread. Returns the number copied, -EINVAL (NULL,
 * no rings).
 */
long kvm_dirty_ring_harvest(struct kvm_vcpu *vcpu, struct kvm_dirty_gfn *out, uint32_t max);

/*
 * Re-protect the pages of every harvested entry of every vcpu's ring,
 * coalescing entries of the same slot within 64 pages into one mask, free
 * their places, and flush once if any entry was reset. Returns the number of
 * entries reset, -EINVAL (no rings), -EIO.
 */
long kvm_dirty_ring_reset(struct kvm *kvm);

/* Entries of @vcpu's ring in use (pushed and not reset); 0 without rings. */
uint32_t kvm_dirty_ring_used(const struct kvm_vcpu *vcpu);

/*
 * At guest entry: test and clear KVM_REQ_DIRTY_RING_SOFT_FULL. Returns true
 * when the ring is still soft-full (the request is raised again, so the vcpu
 * stays out until a reset made room), false otherwise.
 */
bool kvm_dirty_ring_check_request(struct kvm_vcpu *vcpu);

/* ---- page-modification logging (EPT PML) ---- */

/*
 * Hand over @n guest-physical addresses the hardware logged for @vcpu (its
 * PML buffer entries, in any order; page offsets are ignored). Each is
 * recorded like a write of @vcpu. Call from @vcpu's thread, at every exit
 * that leaves entries and before the VM's dirty state is harvested. Returns
 * the number recorded, -EINVAL (NULL, VM not in KVM_DIRTY_LOG_PML mode), -EIO.
 */
/* Defined only in libraries built with EPT (kvm_dirty_log_set_caps refuses
 * KVM_DIRTY_LOG_PML elsewhere). */
long kvm_flush_pml_buffer(struct kvm_vcpu *vcpu, const uint64_t *gpas, unsigned n);

/* ---- write tracking ---- */

/*
 * Write-protect @gfn for an embedder that shadows guest page tables,
 * whatever dirty logging does: its leaf loses write access and the
 * MMU-writable bit (so no fast path can restore it; a TLB flush is issued
 * before mmu_lock is dropped, even if the leaf was already read-only in
 * hardware), no huge leaf covers it, and a write fault on it returns
 * RET_PF_WRITE_TRACKED. Counted: n adds need n removes. Returns 0, -EINVAL
 * (NULL, gfn past the gpa width), -ENOMEM (nothing changed), -EIO.
 */
int kvm_write_track_add_gfn(struct kvm *kvm, gfn_t gfn) S2_MUST_CHECK;
/* Undo one add. Returns 0, -EINVAL, -ENOENT (not tracked), -ENOMEM, -EIO. */
int kvm_write_track_remove_gfn(struct kvm *kvm, gfn_t gfn) S2_MUST_CHECK;
bool kvm_gfn_is_write_tracked(struct kvm *kvm, gfn_t gfn);

/* ---- statistics ---- */

struct kvm_dirty_stats {
	uint64_t fast_fixed;	       /* write faults fixed without a pfn lookup */
	uint64_t marked;	       /* pages recorded (bitmap bits set, ring pushes) */
	uint64_t ring_pushes;	       /* entries pushed into rings */
	uint64_t ring_overflows;       /* pushes a full ring sent to the bitmap */
	uint64_t ring_soft_full;       /* soft-full requests raised */
	uint64_t reaped;	       /* pages re-protected by get, clear, ring reset */
	uint64_t masks;		       /* 64-page masks re-protected (after coalescing) */
	uint64_t split_leaves;	       /* huge leaves split */
	uint64_t collapsed;	       /* tables collapsed into huge leaves */
	uint64_t write_tracked_faults; /* RET_PF_WRITE_TRACKED returned */
	uint64_t removed_dirty;	       /* pages recorded because a leaf holding
					  unharvested hardware dirty state was
					  zapped, split or cleaned */
};
int kvm_get_dirty_stats(const struct kvm *kvm, struct kvm_dirty_stats *out);

#endif
