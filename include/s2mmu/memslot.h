/* SPDX-License-Identifier: MIT */
/*
 * Memslots map a gfn range to host memory at userspace_addr. Updates are
 * serialised by the VM's slots lock; lookups are O(log n).
 */
#ifndef S2MMU_MEMSLOT_H
#define S2MMU_MEMSLOT_H

#include "s2mmu/types.h"

struct kvm;

enum {
	KVM_MEM_LOG_DIRTY_PAGES = 1u << 0, /* dirty logging (see dirty.h) */
	KVM_MEM_READONLY = 1u << 1,	   /* guest writes exit to the embedder */
};
#define KVM_MEM_FLAGS_VALID (KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY)

/* A memslot as the library reports it (a copy; never a live pointer). */
struct kvm_memory_slot {
	unsigned id; /* the embedder's slot id, unique per VM */
	gfn_t base_gfn;
	uint64_t npages;
	hva_t userspace_addr; /* page aligned */
	unsigned flags;	      /* KVM_MEM_* */
};

/*
 * Add memslot @slot->id covering [base_gfn, base_gfn + npages). Returns 0, or
 * -EINVAL (zero size, unaligned hva, overlap with another slot, past the gpa
 * width, unknown flag, id in use), -ENOSPC (too many slots), -ENOMEM, -EIO.
 */
int kvm_set_memslot(struct kvm *kvm, const struct kvm_memory_slot *slot) S2_MUST_CHECK;

/*
 * Delete slot @id: zap its range, flush, then forget it. Returns 0, -ENOENT,
 * -EINVAL, -EIO.
 */
int kvm_delete_memslot(struct kvm *kvm, unsigned id) S2_MUST_CHECK;

/*
 * Move slot @id to @new_base_gfn (same size, hva and flags): its old range is
 * zapped and flushed; the new range faults in on demand. Returns 0, -ENOENT,
 * -EINVAL (overlap, past the gpa width), -EIO.
 */
int kvm_move_memslot(struct kvm *kvm, unsigned id, gfn_t new_base_gfn) S2_MUST_CHECK;

/*
 * Change the flags of slot @id. Making a slot read-only write-protects it
 * (zaps writable leaves and flushes). Returns 0, -ENOENT, -EINVAL, -EIO.
 */
int kvm_set_memslot_flags(struct kvm *kvm, unsigned id, unsigned flags) S2_MUST_CHECK;

/* Copy the slot containing @gfn into *@out. Returns 0 or -ENOENT/-EINVAL. */
int kvm_gfn_to_memslot(struct kvm *kvm, gfn_t gfn, struct kvm_memory_slot *out);
/* Copy slot @id into *@out. Returns 0 or -ENOENT/-EINVAL. */
int kvm_id_to_memslot(struct kvm *kvm, unsigned id, struct kvm_memory_slot *out);
/* Number of memslots. */
unsigned kvm_nr_memslots(const struct kvm *kvm);

#endif
