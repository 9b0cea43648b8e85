// SPDX-License-Identifier: MIT
/*
 * The TDX module model (tests/tdx/model.h). Facts from the module's source,
 * our own code: PAGE.REMOVE needs a leaf that is blocked and whose blocking
 * epoch has been tracked, with no vcpu still running in that epoch
 * (TDX_GPA_RANGE_NOT_BLOCKED, TDX_TLB_TRACKING_NOT_DONE); SEPT.ADD and
 * PAGE.AUG need a free entry whose walk from the root goes through linked,
 * unblocked S-EPT pages (TDX_EPT_ENTRY_NOT_FREE, TDX_EPT_WALK_FAILED);
 * SEPT.REMOVE needs a blocked, tracked entry whose S-EPT page is empty
 * (TDX_EPT_PAGE_NOT_FREE); TRACK fails with TDX_PREVIOUS_TLB_EPOCH_BUSY
 * while a vcpu still runs in an epoch before the current one; RECLAIM of an
 * S-EPT page only after the key is released (TDX_LIFECYCLE_STATE_INCORRECT,
 * also for any SEPT call once the key is released). PAGE.ADD only before
 * the TD is finalized and PAGE.AUG only after: the TD's OP_STATE
 * (INITIALIZED, then RUNNABLE after TDH.MR.FINALIZE) does not allow the
 * leaf, TDX_OP_STATE_INCORRECT. A level or alignment the SEAMCALL does not
 * take is TDX_OPERAND_INVALID; PAGE.DEMOTE needs a blocked, tracked 2 MiB
 * or 1 GiB leaf and leaves 512 unblocked leaves of the next size in its
 * state; PAGE.PROMOTE (2 MiB or 1 GiB) needs a blocked, tracked table
 * whose 512 entries are leaves of
 * one state mapping one aligned run (else EPT_INVALID_PROMOTE_CONDITIONS,
 * which is legal: the host cannot know what the guest accepted) and gives
 * back the S-EPT page (WBINVD before reuse); RANGE.UNBLOCK needs a
 * blocked, tracked entry.
 */
#include <stdio.h>
#include <string.h>

#include "tests/tdx/model.h"

#define LIVE (1ull << 63)
#define TOMB 1ull

static uint64_t span(int level)
{
	return 1ull << (12 + 9 * (level - 1));
}

static uint64_t ekey(uint64_t gpa, int level)
{
	return (gpa & ~(span(level) - 1)) | (uint64_t)level | LIVE;
}

static unsigned hash(uint64_t k, unsigned cap)
{
	return (unsigned)((k * 0x9e3779b97f4a7c15ull) >> 40) & (cap - 1);
}

static struct tdxm_entry *efind(struct tdx_model *m, uint64_t gpa, int level)
{
	uint64_t k = ekey(gpa, level);

	for (unsigned h = hash(k, TDXM_CAP), n = 0; n < TDXM_CAP;
	     h = (h + 1) & (TDXM_CAP - 1), n++) {
		if (m->e[h].key == k)
			return &m->e[h];
		if (!m->e[h].key)
			return NULL;
	}
	return NULL;
}

static struct tdxm_entry *einsert(struct tdx_model *m, uint64_t gpa, int level)
{
	uint64_t k = ekey(gpa, level);

	for (unsigned h = hash(k, TDXM_CAP);; h = (h + 1) & (TDXM_CAP - 1)) {
		if (!m->e[h].key || m->e[h].key == TOMB) {
			memset(&m->e[h], 0, sizeof(m->e[h]));
			m->e[h].key = k;
			return &m->e[h];
		}
	}
}

static uint8_t *pfind(struct tdx_model *m, uint64_t hpa, bool add)
{
	uint64_t k = hpa | 4; /* pages are 4 KiB aligned: 4 marks live */
	uint8_t *tomb = NULL;

	/* The whole probe chain is searched before a tombstone is reused:
	 * the page may sit further along it (taking the first tombstone at
	 * once made a second record of a page, which a state change then
	 * missed). */
	for (unsigned h = hash(k, TDXM_PAGES), n = 0; n < TDXM_PAGES;
	     h = (h + 1) & (TDXM_PAGES - 1), n++) {
		if (m->page_hpa[h] == k)
			return &m->page_st[h];
		if (m->page_hpa[h] == TOMB && !tomb)
			tomb = &m->page_st[h];
		if (!m->page_hpa[h]) {
			if (!add)
				return NULL;
			if (!tomb)
				tomb = &m->page_st[h];
			break;
		}
	}
	if (!add || !tomb)
		return NULL;
	m->page_hpa[tomb - m->page_st] = k;
	*tomb = 0;
	return tomb;
}

static uint64_t bad(struct tdx_model *m, const char *what, uint64_t gpa, uint64_t st);

static void pset(struct tdx_model *m, uint64_t hpa, uint8_t st)
{
	uint8_t *p = pfind(m, hpa, st != 0);

	if (!p) {
		if (st)
			(void)bad(m, "model: page table full", hpa, 0);
		return;
	}
	*p = st;
	if (!st)
		m->page_hpa[p - m->page_st] = TOMB;
}

static uint8_t pget(struct tdx_model *m, uint64_t hpa)
{
	uint8_t *p = pfind(m, hpa, false);

	return p ? *p : 0;
}

static uint64_t bad(struct tdx_model *m, const char *what, uint64_t gpa, uint64_t st)
{
	if (!m->illegal++)
		snprintf(m->first_illegal, sizeof(m->first_illegal), "%s gpa %#llx: %#llx", what,
			 (unsigned long long)gpa, (unsigned long long)st);
	return st;
}

static void logop(struct tdx_model *m, unsigned op, uint64_t gpa)
{
	m->log[m->nlog++ % 64] = ((uint64_t)op << 56) | (gpa >> 12);
}

static bool busy(struct tdx_model *m)
{
	if (!m->busy_one_in)
		return false;
	m->rng ^= m->rng << 13;
	m->rng ^= m->rng >> 7;
	m->rng ^= m->rng << 17;
	if (m->rng % m->busy_one_in)
		return false;
	m->n_busy++;
	return true;
}

void tdxm_init(struct tdx_model *m, unsigned levels, unsigned busy_one_in, uint64_t seed)
{
	memset(m, 0, sizeof(*m));
	m->levels = levels;
	m->busy_one_in = busy_one_in;
	m->rng = seed | 1;
	m->epoch = 1;
	m->finalized = true;
}

/* The walk from the root to the entry (gpa, level): every entry above it
 * must point at a live (not blocked) S-EPT page. The root page is the TD's. */
static bool walk_ok(struct tdx_model *m, uint64_t gpa, int level)
{
	for (int l = (int)m->levels; l > level; l--) {
		struct tdxm_entry *e = efind(m, gpa, l);

		if (!e || e->st != TDXM_NL_MAPPED)
			return false;
	}
	return true;
}

static void parent_count(struct tdx_model *m, uint64_t gpa, int level, int d)
{
	struct tdxm_entry *p;

	if (level >= (int)m->levels)
		return; /* an entry of the root page */
	p = efind(m, gpa, level + 1);
	if (p)
		p->children += (unsigned)d;
}

static bool tracked(const struct tdx_model *m, const struct tdxm_entry *e)
{
	if (m->skip_tracking_check)
		return true;
	if (e->bepoch >= m->epoch)
		return false;
	for (unsigned i = 0; i < TDXM_VCPUS; i++)
		if (m->in_guest[i] && m->entered_epoch[i] <= e->bepoch)
			return false;
	return true;
}

static bool aligned(uint64_t gpa, int level)
{
	return !(gpa & (span(level) - 1));
}

uint64_t tdxm_sept_add(void *ctx, uint64_t gpa, int level, uint64_t page)
{
	struct tdx_model *m = ctx;
	struct tdxm_entry *e;

	if (busy(m))
		return S2_TDX_OPERAND_BUSY;
	m->n_sept_add++;
	logop(m, TDXM_OP_SEPT_ADD, gpa);
	if (m->key_released)
		return bad(m, "SEPT.ADD after the key release", gpa,
			   S2_TDX_LIFECYCLE_STATE_INCORRECT);
	if (level < 2 || level > (int)m->levels || !aligned(gpa, level))
		return bad(m, "SEPT.ADD operand", gpa, S2_TDX_OPERAND_INVALID);
	if (!walk_ok(m, gpa, level))
		return bad(m, "SEPT.ADD walk", gpa, S2_TDX_EPT_WALK_FAILED);
	if (efind(m, gpa, level))
		return bad(m, "SEPT.ADD entry", gpa, S2_TDX_EPT_ENTRY_NOT_FREE);
	if (pget(m, page))
		return bad(m, "SEPT.ADD page owned", page, S2_TDX_PAGE_METADATA_INCORRECT);
	e = einsert(m, gpa, level);
	e->st = TDXM_NL_MAPPED;
	e->hpa = page;
	parent_count(m, gpa, level, 1);
	pset(m, page, 4);
	return 0;
}

uint64_t tdxm_page_aug(void *ctx, uint64_t gpa, int level, uint64_t page)
{
	struct tdx_model *m = ctx;
	struct tdxm_entry *e;

	if (busy(m))
		return S2_TDX_OPERAND_BUSY;
	m->n_aug++;
	logop(m, TDXM_OP_AUG, gpa);
	if (m->key_released)
		return bad(m, "PAGE.AUG after the key release", gpa,
			   S2_TDX_LIFECYCLE_STATE_INCORRECT);
	if (!m->finalized)
		return bad(m, "PAGE.AUG before finalize", gpa, S2_TDX_OP_STATE_INCORRECT);
	if (level < 1 || level > 2 || !aligned(gpa, level) || !aligned(page, level))
		return bad(m, "PAGE.AUG operand", gpa, S2_TDX_OPERAND_INVALID);
	if (!walk_ok(m, gpa, level))
		return bad(m, "PAGE.AUG walk", gpa, S2_TDX_EPT_WALK_FAILED);
	if (efind(m, gpa, level))
		return bad(m, "PAGE.AUG entry", gpa, S2_TDX_EPT_ENTRY_NOT_FREE);
	if (pget(m, page))
		return bad(m, "PAGE.AUG page owned", page, S2_TDX_PAGE_METADATA_INCORRECT);
	e = einsert(m, gpa, level);
	e->st = TDXM_PENDING;
	e->hpa = page;
	parent_count(m, gpa, level, 1);
	pset(m, page, 1);
	return 0;
}

uint64_t tdxm_page_add(void *ctx, uint64_t gpa, uint64_t page, uint64_t src)
{
	struct tdx_model *m = ctx;
	struct tdxm_entry *e;

	if (busy(m))
		return S2_TDX_OPERAND_BUSY;
	m->n_add++;
	logop(m, TDXM_OP_ADD, gpa);
	if (m->key_released)
		return bad(m, "PAGE.ADD after the key release", gpa,
			   S2_TDX_LIFECYCLE_STATE_INCORRECT);
	if (m->finalized)
		return bad(m, "PAGE.ADD after finalize", gpa, S2_TDX_OP_STATE_INCORRECT);
	if (!aligned(gpa, 1) || !aligned(page, 1) || !src)
		return bad(m, "PAGE.ADD operand", gpa, S2_TDX_OPERAND_INVALID);
	if (!walk_ok(m, gpa, 1))
		return bad(m, "PAGE.ADD walk", gpa, S2_TDX_EPT_WALK_FAILED);
	if (efind(m, gpa, 1))
		return bad(m, "PAGE.ADD entry", gpa, S2_TDX_EPT_ENTRY_NOT_FREE);
	if (pget(m, page))
		return bad(m, "PAGE.ADD page owned", page, S2_TDX_PAGE_METADATA_INCORRECT);
	e = einsert(m, gpa, 1);
	e->st = TDXM_MAPPED; /* added pages need no ACCEPT */
	e->hpa = page;
	parent_count(m, gpa, 1, 1);
	pset(m, page, 1);
	return 0;
}

uint64_t tdxm_page_demote(void *ctx, uint64_t gpa, int level, uint64_t sept_page)
{
	struct tdx_model *m = ctx;
	struct tdxm_entry *e;
	enum tdxm_state st;

	if (busy(m))
		return S2_TDX_OPERAND_BUSY;
	m->n_demote++;
	logop(m, TDXM_OP_DEMOTE, gpa);
	if (level < 2 || level > 3 || !aligned(gpa, level))
		return bad(m, "PAGE.DEMOTE operand", gpa, S2_TDX_OPERAND_INVALID);
	if (!walk_ok(m, gpa, level))
		return bad(m, "PAGE.DEMOTE walk", gpa, S2_TDX_EPT_WALK_FAILED);
	e = efind(m, gpa, level);
	if (!e || e->st == TDXM_NL_MAPPED || e->st == TDXM_NL_BLOCKED)
		return bad(m, "PAGE.DEMOTE not a leaf", gpa, S2_TDX_EPT_ENTRY_STATE_INCORRECT);
	if (e->st != TDXM_BLOCKED && e->st != TDXM_PENDING_BLOCKED)
		return bad(m, "PAGE.DEMOTE not blocked", gpa, S2_TDX_GPA_RANGE_NOT_BLOCKED);
	if (!tracked(m, e))
		return bad(m, "PAGE.DEMOTE not tracked", gpa, S2_TDX_TLB_TRACKING_NOT_DONE);
	if (pget(m, sept_page))
		return bad(m, "PAGE.DEMOTE S-EPT page owned", sept_page,
			   S2_TDX_PAGE_METADATA_INCORRECT);
	st = e->st == TDXM_BLOCKED ? TDXM_MAPPED : TDXM_PENDING;
	for (unsigned i = 0; i < 512; i++) {
		struct tdxm_entry *c = einsert(m, gpa + i * span(level - 1), level - 1);

		c->st = st;
		c->hpa = e->hpa + i * span(level - 1);
		if (i)
			pset(m, c->hpa, 1);
	}
	e->st = TDXM_NL_MAPPED;
	e->hpa = sept_page;
	e->children = 512;
	pset(m, sept_page, 4);
	return 0;
}

uint64_t tdxm_page_promote(void *ctx, uint64_t gpa, int level)
{
	struct tdx_model *m = ctx;
	struct tdxm_entry *e, *c0;

	if (busy(m))
		return S2_TDX_OPERAND_BUSY;
	logop(m, TDXM_OP_PROMOTE, gpa);
	if (level < 2 || level > 3 || !aligned(gpa, level))
		return bad(m, "PAGE.PROMOTE operand", gpa, S2_TDX_OPERAND_INVALID);
	if (!walk_ok(m, gpa, level))
		return bad(m, "PAGE.PROMOTE walk", gpa, S2_TDX_EPT_WALK_FAILED);
	e = efind(m, gpa, level);
	if (!e || (e->st != TDXM_NL_MAPPED && e->st != TDXM_NL_BLOCKED))
		return bad(m, "PAGE.PROMOTE not a table", gpa, S2_TDX_EPT_ENTRY_STATE_INCORRECT);
	if (e->st != TDXM_NL_BLOCKED)
		return bad(m, "PAGE.PROMOTE not blocked", gpa, S2_TDX_GPA_RANGE_NOT_BLOCKED);
	if (!tracked(m, e))
		return bad(m, "PAGE.PROMOTE not tracked", gpa, S2_TDX_TLB_TRACKING_NOT_DONE);
	c0 = efind(m, gpa, level - 1);
	for (unsigned i = 0; i < 512; i++) {
		struct tdxm_entry *c = efind(m, gpa + i * span(level - 1), level - 1);

		/* Legal to ask: the host cannot see what the guest accepted. */
		if (!c0 || !c || c->st != c0->st || c->hpa != c0->hpa + i * span(level - 1) ||
		    !aligned(c0->hpa, level) || (c->st != TDXM_MAPPED && c->st != TDXM_PENDING))
			return S2_TDX_EPT_INVALID_PROMOTE_CONDITIONS;
	}
	m->n_promote++;	    /* counts promotions made */
	pset(m, e->hpa, 2); /* the S-EPT page: the host's after WBINVD */
	e->st = c0->st;
	e->hpa = c0->hpa;
	e->children = 0;
	for (unsigned i = 0; i < 512; i++) {
		struct tdxm_entry *c = efind(m, gpa + i * span(level - 1), level - 1);

		if (i)
			pset(m, c->hpa, 0); /* one page, kept under its base */
		c->key = TOMB;
	}
	return 0;
}

uint64_t tdxm_range_unblock(void *ctx, uint64_t gpa, int level)
{
	struct tdx_model *m = ctx;
	struct tdxm_entry *e;

	if (busy(m))
		return S2_TDX_OPERAND_BUSY;
	m->n_unblock++;
	logop(m, TDXM_OP_UNBLOCK, gpa);
	if (!aligned(gpa, level) || !walk_ok(m, gpa, level))
		return bad(m, "RANGE.UNBLOCK walk", gpa, S2_TDX_EPT_WALK_FAILED);
	e = efind(m, gpa, level);
	if (!e)
		return bad(m, "RANGE.UNBLOCK free entry", gpa, S2_TDX_EPT_ENTRY_STATE_INCORRECT);
	if (!tracked(m, e))
		return bad(m, "RANGE.UNBLOCK not tracked", gpa, S2_TDX_TLB_TRACKING_NOT_DONE);
	switch (e->st) {
	case TDXM_BLOCKED: e->st = TDXM_MAPPED; break;
	case TDXM_PENDING_BLOCKED: e->st = TDXM_PENDING; break;
	case TDXM_NL_BLOCKED: e->st = TDXM_NL_MAPPED; break;
	default: return bad(m, "RANGE.UNBLOCK not blocked", gpa, S2_TDX_GPA_RANGE_NOT_BLOCKED);
	}
	return 0;
}

uint64_t tdxm_range_block(void *ctx, uint64_t gpa, int level)
{
	struct tdx_model *m = ctx;
	struct tdxm_entry *e;

	if (busy(m))
		return S2_TDX_OPERAND_BUSY;
	m->n_block++;
	logop(m, TDXM_OP_BLOCK, gpa);
	if (!aligned(gpa, level) || !walk_ok(m, gpa, level))
		return bad(m, "RANGE.BLOCK walk", gpa, S2_TDX_EPT_WALK_FAILED);
	e = efind(m, gpa, level);
	if (!e)
		return bad(m, "RANGE.BLOCK free entry", gpa, S2_TDX_EPT_ENTRY_STATE_INCORRECT);
	switch (e->st) {
	case TDXM_MAPPED: e->st = TDXM_BLOCKED; break;
	case TDXM_PENDING: e->st = TDXM_PENDING_BLOCKED; break;
	case TDXM_NL_MAPPED: e->st = TDXM_NL_BLOCKED; break;
	default: return bad(m, "RANGE.BLOCK twice", gpa, S2_TDX_GPA_RANGE_ALREADY_BLOCKED);
	}
	e->bepoch = m->epoch;
	return 0;
}

uint64_t tdxm_track(void *ctx)
{
	struct tdx_model *m = ctx;

	if (busy(m))
		return S2_TDX_OPERAND_BUSY;
	logop(m, TDXM_OP_TRACK, 0);
	for (unsigned i = 0; i < TDXM_VCPUS; i++)
		if (m->in_guest[i] && m->entered_epoch[i] < m->epoch)
			return S2_TDX_PREVIOUS_TLB_EPOCH_BUSY; /* legal: kick and retry */
	m->n_track++;
	m->epoch++;
	return 0;
}

uint64_t tdxm_page_remove(void *ctx, uint64_t gpa, int level)
{
	struct tdx_model *m = ctx;
	struct tdxm_entry *e;

	if (busy(m))
		return S2_TDX_OPERAND_BUSY;
	m->n_remove++;
	logop(m, TDXM_OP_REMOVE, gpa);
	if (!aligned(gpa, level) || !walk_ok(m, gpa, level))
		return bad(m, "PAGE.REMOVE walk", gpa, S2_TDX_EPT_WALK_FAILED);
	e = efind(m, gpa, level);
	if (!e || e->st == TDXM_NL_MAPPED || e->st == TDXM_NL_BLOCKED)
		return bad(m, "PAGE.REMOVE not a leaf", gpa, S2_TDX_EPT_ENTRY_STATE_INCORRECT);
	if (e->st != TDXM_BLOCKED && e->st != TDXM_PENDING_BLOCKED)
		return bad(m, "PAGE.REMOVE not blocked", gpa, S2_TDX_GPA_RANGE_NOT_BLOCKED);
	if (!tracked(m, e))
		return bad(m, "PAGE.REMOVE not tracked", gpa, S2_TDX_TLB_TRACKING_NOT_DONE);
	pset(m, e->hpa, 2);
	e->key = TOMB;
	parent_count(m, gpa, level, -1);
	return 0;
}

uint64_t tdxm_sept_remove(void *ctx, uint64_t gpa, int level)
{
	struct tdx_model *m = ctx;
	struct tdxm_entry *e;

	if (busy(m))
		return S2_TDX_OPERAND_BUSY;
	m->n_sept_remove++;
	logop(m, TDXM_OP_SEPT_REMOVE, gpa);
	if (level < 2 || !aligned(gpa, level) || !walk_ok(m, gpa, level))
		return bad(m, "SEPT.REMOVE walk", gpa, S2_TDX_EPT_WALK_FAILED);
	e = efind(m, gpa, level);
	if (!e || (e->st != TDXM_NL_MAPPED && e->st != TDXM_NL_BLOCKED))
		return bad(m, "SEPT.REMOVE not a table", gpa, S2_TDX_EPT_ENTRY_STATE_INCORRECT);
	if (e->st != TDXM_NL_BLOCKED)
		return bad(m, "SEPT.REMOVE not blocked", gpa, S2_TDX_GPA_RANGE_NOT_BLOCKED);
	if (!tracked(m, e))
		return bad(m, "SEPT.REMOVE not tracked", gpa, S2_TDX_TLB_TRACKING_NOT_DONE);
	if (e->children)
		return bad(m, "SEPT.REMOVE page not empty", gpa, S2_TDX_EPT_PAGE_NOT_FREE);
	pset(m, e->hpa, 3);
	e->key = TOMB;
	parent_count(m, gpa, level, -1);
	return 0;
}

uint64_t tdxm_page_wbinvd(void *ctx, uint64_t page)
{
	struct tdx_model *m = ctx;

	if (busy(m))
		return S2_TDX_OPERAND_BUSY;
	m->n_wbinvd++;
	logop(m, TDXM_OP_WBINVD, page);
	if (pget(m, page) != 2)
		return bad(m, "PAGE.WBINVD of a page not removed", page,
			   S2_TDX_PAGE_METADATA_INCORRECT);
	pset(m, page, 0);
	return 0;
}

uint64_t tdxm_page_reclaim(void *ctx, uint64_t page)
{
	struct tdx_model *m = ctx;

	if (busy(m))
		return S2_TDX_OPERAND_BUSY;
	m->n_reclaim++;
	logop(m, TDXM_OP_RECLAIM, page);
	if (!m->key_released)
		return bad(m, "PAGE.RECLAIM before the key release", page,
			   S2_TDX_LIFECYCLE_STATE_INCORRECT);
	if (pget(m, page) != 3)
		return bad(m, "PAGE.RECLAIM of a page not removed", page,
			   S2_TDX_PAGE_METADATA_INCORRECT);
	pset(m, page, 0);
	return 0;
}

void tdxm_release_key(void *ctx)
{
	struct tdx_model *m = ctx;

	if (m->key_released)
		(void)bad(m, "key released twice", 0, S2_TDX_LIFECYCLE_STATE_INCORRECT);
	m->key_released = true;
}

uint64_t tdxm_accept(struct tdx_model *m, uint64_t gpa, int level)
{
	struct tdxm_entry *e = efind(m, gpa, level);

	if (!e || (e->st != TDXM_PENDING && e->st != TDXM_MAPPED))
		return S2_TDX_EPT_ENTRY_STATE_INCORRECT; /* the guest's #VE, not misuse */
	if (e->st == TDXM_MAPPED)
		return 0x00000B0A00000000ull; /* TDX_PAGE_ALREADY_ACCEPTED */
	e->st = TDXM_MAPPED;
	return 0;
}

void tdxm_vcpu_enter(struct tdx_model *m, unsigned id)
{
	m->in_guest[id] = true;
	m->entered_epoch[id] = m->epoch;
}

void tdxm_vcpu_exit(struct tdx_model *m, unsigned id)
{
	m->in_guest[id] = false;
}

enum tdxm_state tdxm_leaf(const struct tdx_model *m, uint64_t gpa, int *level, uint64_t *hpa)
{
	for (int l = 1; l <= 3; l++) {
		const struct tdxm_entry *e = efind((struct tdx_model *)m, gpa, l);

		if (e && e->st != TDXM_NL_MAPPED && e->st != TDXM_NL_BLOCKED) {
			*level = l;
			*hpa = e->hpa + (gpa & (span(l) - 1) & ~0xfffull);
			return e->st;
		}
	}
	return TDXM_FREE;
}

unsigned tdxm_nr_leaves(const struct tdx_model *m)
{
	unsigned n = 0;

	for (unsigned i = 0; i < TDXM_CAP; i++)
		if ((m->e[i].key & LIVE) && m->e[i].st != TDXM_NL_MAPPED &&
		    m->e[i].st != TDXM_NL_BLOCKED)
			n++;
	return n;
}

unsigned tdxm_nr_sept(const struct tdx_model *m)
{
	unsigned n = 0;

	for (unsigned i = 0; i < TDXM_CAP; i++)
		if ((m->e[i].key & LIVE) &&
		    (m->e[i].st == TDXM_NL_MAPPED || m->e[i].st == TDXM_NL_BLOCKED))
			n++;
	return n;
}

unsigned tdxm_pages_out(const struct tdx_model *m)
{
	unsigned n = 0;

	for (unsigned i = 0; i < TDXM_PAGES; i++)
		if ((m->page_hpa[i] & 4) && m->page_hpa[i] != TOMB && m->page_st[i])
			n++;
	return n;
}

const struct s2_tdx_ops tdxm_ops_template = {
	.sept_add = tdxm_sept_add,
	.page_aug = tdxm_page_aug,
	.range_block = tdxm_range_block,
	.track = tdxm_track,
	.page_remove = tdxm_page_remove,
	.sept_remove = tdxm_sept_remove,
	.page_wbinvd = tdxm_page_wbinvd,
	.page_reclaim = tdxm_page_reclaim,
	.release_key = tdxm_release_key,
	.page_add = tdxm_page_add,
	.page_demote = tdxm_page_demote,
	.page_promote = tdxm_page_promote,
	.range_unblock = tdxm_range_unblock,
};
