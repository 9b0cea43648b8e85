/* SPDX-License-Identifier: MIT */
/*
 * A software model of the TDX module's secure EPT for one TD, written from
 * the module's ABI and the preconditions its SEAMCALL handlers check
 * (intel/tdx-module, src/vmm_dispatcher/api_calls/tdh_mem_*.c). Hosted tests
 * only. It keeps its own tree as (level, gpa) -> entry, the per-entry
 * states, the TD epoch and the epoch each vcpu entered in, child counts of
 * S-EPT pages, the pages the TD owns, the key's lifecycle, and the guest's
 * TDG.MEM.PAGE.ACCEPT. Each call returns the module's status; one out of
 * order is counted in `illegal` with the first one's name kept, and changes
 * nothing. OPERAND_BUSY can be injected at random (before any change).
 */
#ifndef S2MMU_TESTS_TDX_MODEL_H
#define S2MMU_TESTS_TDX_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "s2mmu/tdx.h"

enum tdxm_state {
	TDXM_FREE = 0,
	TDXM_PENDING,	      /* AUG'd, not accepted by the guest */
	TDXM_MAPPED,	      /* accepted (or PAGE.ADD) */
	TDXM_BLOCKED,	      /* MAPPED, then RANGE.BLOCK */
	TDXM_PENDING_BLOCKED, /* PENDING, then RANGE.BLOCK */
	TDXM_NL_MAPPED,	      /* points at an S-EPT page */
	TDXM_NL_BLOCKED,
};

struct tdxm_entry {
	uint64_t key; /* gpa | level, 0 = empty slot */
	enum tdxm_state st;
	uint64_t hpa;	   /* page or S-EPT page */
	uint64_t bepoch;   /* TD epoch when blocked */
	unsigned children; /* S-EPT page: entries in it not FREE */
};

#define TDXM_CAP (1u << 16)
#define TDXM_VCPUS 8
#define TDXM_PAGES (1u << 16)

struct tdx_model {
	unsigned levels; /* of the TD's secure EPT */
	struct tdxm_entry e[TDXM_CAP];
	uint64_t epoch;
	bool in_guest[TDXM_VCPUS];
	uint64_t entered_epoch[TDXM_VCPUS];
	bool key_released;
	bool finalized; /* TDH.MR.FINALIZE: AUG from now on, no more PAGE.ADD */
	/* Take every blocked entry as tracked (the module's TLB_TRACKING_NOT_DONE
	 * check off): the TD TLB checker (test_tlb_mt.c) then sees for itself
	 * what an untracked removal leaves in the vcpus' TLBs. */
	bool skip_tracking_check;
	/* Pages the TD owns or that need work before the host may reuse
	 * them: hpa -> 1 owned by the TD, 2 removed (needs WBINVD), 3 S-EPT
	 * page removed (needs RECLAIM after the key release), 4 S-EPT live. */
	uint64_t page_hpa[TDXM_PAGES];
	uint8_t page_st[TDXM_PAGES];
	/* Misuse. */
	unsigned illegal;
	char first_illegal[160];
	/* Busy injection: one call in busy_one_in answers OPERAND_BUSY. */
	unsigned busy_one_in;
	uint64_t rng;
	/* Counts per SEAMCALL, and of the order of events for tests. */
	uint64_t n_sept_add, n_aug, n_block, n_track, n_remove, n_sept_remove, n_wbinvd, n_reclaim,
		n_busy, n_add, n_demote, n_promote, n_unblock;
	uint64_t log[64]; /* last calls: op << 56 | gpa >> 12 */
	unsigned nlog;
};

void tdxm_init(struct tdx_model *m, unsigned levels, unsigned busy_one_in, uint64_t seed);
/* The hook table that calls this model (ctx: struct tdx_model *, with the
 * test's private_pfn hooks filled by the caller). */
extern const struct s2_tdx_ops tdxm_ops_template;

/* The guest: TDG.MEM.PAGE.ACCEPT of @gpa at @level. */
uint64_t tdxm_accept(struct tdx_model *m, uint64_t gpa, int level);
/* vcpu @id enters / leaves the TD (TDH.VP.ENTER and its exit). */
void tdxm_vcpu_enter(struct tdx_model *m, unsigned id);
void tdxm_vcpu_exit(struct tdx_model *m, unsigned id);

/* The leaf that maps private @gpa: its level and state (FREE: none). */
enum tdxm_state tdxm_leaf(const struct tdx_model *m, uint64_t gpa, int *level, uint64_t *hpa);
/* Leaves (any state) and S-EPT pages in the model. */
unsigned tdxm_nr_leaves(const struct tdx_model *m);
unsigned tdxm_nr_sept(const struct tdx_model *m);
/* Pages not back with the host (owned, or removed without WBINVD /
 * RECLAIM). */
unsigned tdxm_pages_out(const struct tdx_model *m);
/* Call an entry of tdxm_ops_template by hand (tests of the model). */
uint64_t tdxm_sept_add(void *ctx, uint64_t gpa, int level, uint64_t page);
uint64_t tdxm_page_aug(void *ctx, uint64_t gpa, int level, uint64_t page);
uint64_t tdxm_range_block(void *ctx, uint64_t gpa, int level);
uint64_t tdxm_track(void *ctx);
uint64_t tdxm_page_remove(void *ctx, uint64_t gpa, int level);
uint64_t tdxm_sept_remove(void *ctx, uint64_t gpa, int level);
uint64_t tdxm_page_wbinvd(void *ctx, uint64_t page);
uint64_t tdxm_page_reclaim(void *ctx, uint64_t page);
void tdxm_release_key(void *ctx);
uint64_t tdxm_page_add(void *ctx, uint64_t gpa, uint64_t page, uint64_t src);
uint64_t tdxm_page_demote(void *ctx, uint64_t gpa, int level, uint64_t sept_page);
uint64_t tdxm_page_promote(void *ctx, uint64_t gpa, int level);
uint64_t tdxm_range_unblock(void *ctx, uint64_t gpa, int level);

enum {
	TDXM_OP_SEPT_ADD = 1,
	TDXM_OP_AUG,
	TDXM_OP_BLOCK,
	TDXM_OP_TRACK,
	TDXM_OP_REMOVE,
	TDXM_OP_SEPT_REMOVE,
	TDXM_OP_WBINVD,
	TDXM_OP_RECLAIM,
	TDXM_OP_ADD,
	TDXM_OP_DEMOTE,
	TDXM_OP_PROMOTE,
	TDXM_OP_UNBLOCK
};

#endif
