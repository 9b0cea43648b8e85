/* SPDX-License-Identifier: MIT */
/*
 * Intel TDX private memory (docs/tdx.md). Built with CONFIG_S2_TDX (the EPT
 * format only). A Trust Domain's private memory lives in a mirror root in
 * ordinary memory that the library walks; the TDX module's secure EPT is
 * changed only through the embedder's hooks below, one per SEAMCALL. Each
 * hook returns the module's status (RAX): S2_TDX_SUCCESS, S2_TDX_OPERAND_BUSY
 * (the library retries), or another error, which means the library broke
 * the module's order and marks the VM bugged.
 */
#ifndef S2MMU_TDX_H
#define S2MMU_TDX_H

#include "s2mmu/memslot.h"
#include "s2mmu/types.h"

struct kvm;

/* TDX module completion status codes (the module's ABI, tdx_error_codes). */
#define S2_TDX_SUCCESS 0ull
#define S2_TDX_OPERAND_BUSY 0x8000020000000000ull
#define S2_TDX_PREVIOUS_TLB_EPOCH_BUSY 0x8000020100000000ull
#define S2_TDX_EPT_WALK_FAILED 0xC0000B0000000000ull
#define S2_TDX_EPT_ENTRY_NOT_FREE 0xC0000B0200000000ull
#define S2_TDX_GPA_RANGE_NOT_BLOCKED 0xC0000B0600000000ull
#define S2_TDX_GPA_RANGE_ALREADY_BLOCKED 0x00000B0700000000ull
#define S2_TDX_TLB_TRACKING_NOT_DONE 0xC0000B0800000000ull
#define S2_TDX_EPT_ENTRY_STATE_INCORRECT 0xC0000B0D00000000ull
#define S2_TDX_EPT_PAGE_NOT_FREE 0xC0000B0E00000000ull
#define S2_TDX_PAGE_METADATA_INCORRECT 0xC000030000000000ull
#define S2_TDX_EPT_INVALID_PROMOTE_CONDITIONS 0xC0000B0900000000ull
#define S2_TDX_OPERAND_INVALID 0xC000010000000000ull
#define S2_TDX_LIFECYCLE_STATE_INCORRECT 0xC000060700000000ull
#define S2_TDX_OP_STATE_INCORRECT 0xC000060800000000ull
/* The status class without the operand id the module puts in bits 31:0. */
#define S2_TDX_STATUS(x) ((x)&0xffffffff00000000ull)

/*
 * The SEAMCALLs the library needs (TDR and other TD handles are the
 * embedder's, in @ctx). gpa is the private gpa (shared bit clear); level is
 * the library's (1 = 4 KiB, 2 = 2 MiB; for SEPT.ADD / SEPT.REMOVE the level
 * of the entry that points at the S-EPT page). Called under mmu_lock (any
 * side): a hook must not sleep or call back into the library.
 */
struct s2_tdx_ops {
	uint64_t (*sept_add)(void *ctx, gpa_t gpa, int level,
			     hpa_t sept_page);				   /* TDH.MEM.SEPT.ADD */
	uint64_t (*page_aug)(void *ctx, gpa_t gpa, int level, hpa_t page); /* TDH.MEM.PAGE.AUG */
	uint64_t (*page_add)(void *ctx, gpa_t gpa, hpa_t page, hpa_t src); /* TDH.MEM.PAGE.ADD */
	uint64_t (*range_block)(void *ctx, gpa_t gpa, int level);	   /* TDH.MEM.RANGE.BLOCK */
	uint64_t (*track)(void *ctx);					   /* TDH.MEM.TRACK */
	uint64_t (*page_remove)(void *ctx, gpa_t gpa, int level);	   /* TDH.MEM.PAGE.REMOVE */
	uint64_t (*sept_remove)(void *ctx, gpa_t gpa, int level);	   /* TDH.MEM.SEPT.REMOVE */
	uint64_t (*page_demote)(void *ctx, gpa_t gpa, int level, hpa_t sept_page); /* PAGE.DEMOTE */
	uint64_t (*page_promote)(void *ctx, gpa_t gpa, int level);  /* PAGE.PROMOTE */
	uint64_t (*range_unblock)(void *ctx, gpa_t gpa, int level); /* RANGE.UNBLOCK */
	uint64_t (*page_wbinvd)(void *ctx, hpa_t page);		    /* TDH.PHYMEM.PAGE.WBINVD */
	uint64_t (*page_reclaim)(void *ctx, hpa_t page);	    /* TDH.PHYMEM.PAGE.RECLAIM */
	/* Teardown: release the TD's private key (TDH.MNG.VPFLUSHDONE,
	 * TDH.PHYMEM.CACHE.WB, TDH.MNG.KEY.FREEID); S-EPT pages are reclaimed
	 * only after it. */
	void (*release_key)(void *ctx);
	/*
	 * Private backing (KVM's guest_memfd), never the hva path: the pfn of
	 * private @gfn of @slot and the largest level its backing allows in
	 * *@max_level. 0 or -errno. private_pfn_put hands a page back to the
	 * embedder: once it is removed and written back from the module
	 * (@level says its size), or when a fault did not install it.
	 */
	int (*private_pfn)(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, kvm_pfn_t *pfn,
			   int *max_level);
	void (*private_pfn_put)(void *ctx, kvm_pfn_t pfn, int level);
};

struct kvm_tdx_params {
	const struct s2_tdx_ops *ops;
	void *ctx;
	/* The shared bit of a gpa: 47 (48-bit guest-physical width) or 51
	 * (52-bit, a 5-level EPT); it must be the top bit of the VM's width. */
	unsigned shared_bit;
	/* TDX_OPERAND_BUSY retries (with a kick round between) before a
	 * change gives up (-EBUSY, nothing changed). 0 = 16. */
	unsigned busy_retries;
	/* Removal in KVM's order, a TRACK and kick round per page, instead
	 * of one per call (kept to measure the two, bench/bench_tdx.c). */
	bool track_per_page;
};

/*
 * Make @kvm, an EPT VM just created (no memslot, no fault yet), a TD: its
 * mirror root is allocated and faults take the shared bit into account.
 * Returns 0, -EINVAL (not EPT, shared bit not the width's top bit, missing
 * hook, already a TD, not fresh), -ENOMEM. A build without CONFIG_S2_TDX
 * has none of the functions of this header (tests/tdx/nm_check.sh): test
 * S2_ENABLED(CONFIG_S2_TDX) (s2mmu/config.h) before calling them.
 */
int kvm_tdx_init(struct kvm *kvm, const struct kvm_tdx_params *p) S2_MUST_CHECK;

/*
 * Initial measured memory, before the TD is finalized: map private @gfn
 * (private in the attributes, in a memslot; its page from private_pfn) at
 * 4 KiB through TDH.MEM.PAGE.ADD with the contents of @src (4 KiB aligned).
 * Measurement (TDH.MR.EXTEND) stays the embedder's. Returns 0; -EINVAL
 * (not a TD, no page_add hook, finalized, gfn not private or not in a
 * slot); -EEXIST (mapped already); -EBUSY (OPERAND_BUSY: retry); -ENOMEM;
 * -EIO.
 */
int kvm_tdx_page_add(struct kvm *kvm, gfn_t gfn, hpa_t src) S2_MUST_CHECK;

/* The embedder ran TDH.MR.FINALIZE: PAGE.ADD is refused from now on. 0 or
 * -EINVAL (not a TD). */
int kvm_tdx_finalized(struct kvm *kvm);

/*
 * Promote private 4 KiB runs of [start, end) back to 2 MiB leaves where a
 * level-2 mirror table maps 512 pages of one aligned 2 MiB run, all private
 * in one memslot, and then runs of 512 such 2 MiB leaves to 1 GiB leaves
 * (where the VM's max_leaf_level allows 1 GiB; PAGE.AUG never maps 1 GiB):
 * BLOCK each, one TRACK and kick, PAGE.PROMOTE (refused by the module
 * unless the guest accepted all 512 alike: then RANGE.UNBLOCK, and the
 * table stays). Needs the page_promote and range_unblock hooks. Returns the
 * leaves made (of both sizes), -EINVAL, -EBUSY or -EIO.
 */
long kvm_tdx_collapse(struct kvm *kvm, gfn_t start, gfn_t end);

/* What the mirror root maps for private @gfn: 1 and *@hpa, *@level; or 0. */
int kvm_tdx_lookup_private(struct kvm *kvm, gfn_t gfn, hpa_t *hpa, int *level);

struct kvm_tdx_stats {
	uint64_t cur_private_leaves[4]; /* [1] 4 KiB, [2] 2 MiB, [3] 1 GiB */
	uint64_t cur_sept_pages;	/* S-EPT pages linked (the root's excluded) */
	uint64_t seamcalls;		/* hook calls, retries included */
	uint64_t busy;			/* TDX_OPERAND_BUSY answers */
	uint64_t tracks, kick_rounds;
	uint64_t removed; /* private leaves removed */
	uint64_t demoted, promoted, added;
	uint64_t removed_whole; /* 2 MiB leaves removed whole: no spare S-EPT page to demote */
};
int kvm_tdx_get_stats(struct kvm *kvm, struct kvm_tdx_stats *out);

#endif
