/* SPDX-License-Identifier: MIT */
/*
 * A vcpu's translation hardware, for the TLB model checker
 * (tests/generic/tlb_model_mt.c): a TLB of leaf translations and a cache of
 * non-leaf entries (Intel's paging-structure caches, Arm's walk caches),
 * both filled only by walks of the live tables with atomic loads, and both
 * consulted before the tables, as hardware does. Entry bits come from
 * tests/generic/dirty_sim.h (the manuals, not fmt/).
 *
 * What an access does (sim_tlb_access):
 *  - a leaf entry covering the gpa that grants the access is used without
 *    reading the tables, however stale it is;
 *  - a write through an entry whose dirty state is not yet set (EPT A/D,
 *    NPT, RISC-V Svadu, arm64 DBM) sets it in the leaf it came from with a
 *    locked update, as the hardware's dirty-flag update does, and re-walks
 *    when that leaf no longer maps the same output writable;
 *  - otherwise the walk starts from the deepest cached non-leaf entry
 *    covering the gpa (or the root), sets Accessed where the hardware does
 *    (or faults where it does not: arm64 without HA, RISC-V without Svadu)
 *    and fills both caches;
 *  - an entry that denies the access is dropped before the walk (as an EPT
 *    violation or a page fault invalidates what translated its address);
 *    a fault also drops the faulting address's entries (sim_tlb_drop_gpa).
 * Nothing else removes entries: the owner acts on its entry actions
 * (sim_tlb_drop_current() for a FLUSH_CURRENT: INVEPT single-context, the
 * VMCB's TLB control, TLBI VMALLS12E1, a local HFENCE.GVMA; sim_tlb_drop_all()
 * for FLUSH_ALL), and broadcast invalidations (arm64 TLBI ...IS, an SBI
 * remote HFENCE) call sim_tlb_drop_range()/_all() on every vcpu's TLB under
 * its lock, which waits for a walk in progress as DSB does.
 *
 * Walks start at the root the vcpu loaded (sim_tlb_load(), its EPTP, VTTBR,
 * hgatp or nCR3). Entries are tagged as the architecture tags them: by the
 * root on EPT (the EP4TA), by the VMID or ASID elsewhere (one tag for every
 * root of the VM, so a translation of an old root stays usable after a load
 * until the flush that follows it); only entries with the current tag are
 * used.
 *
 * A freed table page is filled with SIM_POISON (the checker's env does
 * that): a walk that reads it returns SIM_POISONED instead of following it.
 * Under ASan the env also poisons it for ASan (so a library walk that reads
 * it, a lockless one too, is reported at once), and the walks here read
 * such an entry as SIM_POISON without touching it.
 *
 * Tables are allocated with pa == va (hosted).
 */
#ifndef S2MMU_TESTS_TLB_SIM_H
#define S2MMU_TESTS_TLB_SIM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/kvm_internal.h"
#include "tests/generic/dirty_sim.h"

/* What a freed table page (or metadata block) is filled with. */
#define SIM_POISON 0xa5a5a5a5a5a5a5a5ull

#if defined(__SANITIZE_ADDRESS__)
#define SIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIM_ASAN 1
#endif
#endif
#ifdef SIM_ASAN
#include <sanitizer/asan_interface.h>
#endif

/* A table entry as a walk reads it: SIM_POISON if its page is freed. */
static inline uint64_t sim_pte_load(uint64_t *ep)
{
#ifdef SIM_ASAN
	if (__asan_address_is_poisoned(ep))
		return SIM_POISON;
#endif
	return __atomic_load_n(ep, __ATOMIC_ACQUIRE);
}

#define SIM_TLB_LEAVES 64
#define SIM_TLB_WALKS 16

/* One cached translation. */
struct sim_tlb_leaf {
	bool valid;
	bool w;		/* writes allowed */
	bool dirty;	/* the leaf's dirty state was set when cached (or no
			   hardware dirty state): writes need no update */
	int level;	/* level of the leaf */
	gfn_t gfn;	/* first gfn the leaf maps */
	uint64_t pages; /* 4 KiB pages it maps */
	hpa_t pa;	/* output of gfn */
	uint64_t *ptep; /* the leaf entry it came from */
	uint64_t stamp; /* the caller's sim_access.stamp when it was filled */
	uint64_t tag;	/* root (EPT) or 0 (VMID / ASID) */
};

/* One cached non-leaf entry: the table of @level that maps [gfn, gfn+pages). */
struct sim_tlb_walk {
	bool valid;
	int level;
	gfn_t gfn;
	uint64_t pages;
	uint64_t *table;
	uint64_t tag;
};

struct sim_tlb {
	pthread_mutex_t lock; /* the owner's accesses, drops, snapshots */
	hpa_t root;	      /* the loaded root (0: none yet) */
	bool tag_by_root;     /* EPT: entries are tagged with their root */
	struct sim_tlb_leaf leaf[SIM_TLB_LEAVES];
	struct sim_tlb_walk walk[SIM_TLB_WALKS];
	unsigned next_leaf, next_walk; /* round-robin replacement */
	uint64_t hits, walks, fills, drops_all;
};

enum sim_result {
	SIM_OK,
	SIM_FAULT,    /* exit to the hypervisor (kvm_tdp_page_fault) */
	SIM_POISONED, /* the walk read a freed table */
};

/* An access and what it found. */
struct sim_access {
	gpa_t gpa;
	bool write;
	hpa_t pa;	  /* out: the translation used */
	bool hit;	  /* out: no walk */
	bool newly_dirty; /* out: this write set the leaf's dirty state (PML logs it) */
	uint64_t *bad;	  /* out (SIM_POISONED): the entry that held poison */
	int bad_level;
	uint64_t stamp;		  /* in: recorded in an entry this access fills */
	struct sim_tlb_leaf used; /* out (SIM_OK): the entry used or filled */
};

static inline void sim_tlb_init(struct sim_tlb *t, bool tag_by_root)
{
	memset(t, 0, sizeof(*t));
	t->tag_by_root = tag_by_root;
	pthread_mutex_init(&t->lock, NULL);
}

static inline uint64_t sim_tlb_tag(const struct sim_tlb *t)
{
	return t->tag_by_root ? t->root : 0;
}

/* Load a root (the register write). Caller holds t->lock. */
static inline void sim_tlb_load(struct sim_tlb *t, hpa_t root)
{
	t->root = root;
}

static inline uint64_t sim_level_pages(const struct s2_fmt_cfg *c, int level)
{
	return 1ull << (sim_level_shift(c, level) - S2_GFN_SHIFT);
}

/* Everything (INVEPT single-context, TLBI VMALLS12E1, HFENCE.GVMA vmid).
 * Caller holds t->lock. */
static inline void sim_tlb_drop_all(struct sim_tlb *t)
{
	for (unsigned i = 0; i < SIM_TLB_LEAVES; i++)
		t->leaf[i].valid = false;
	for (unsigned i = 0; i < SIM_TLB_WALKS; i++)
		t->walk[i].valid = false;
	t->drops_all++;
}

/* The current tag's entries (INVEPT single-context with the loaded EPTP;
 * elsewhere the VMID / ASID, which is everything). Caller holds t->lock. */
static inline void sim_tlb_drop_current(struct sim_tlb *t)
{
	uint64_t tag = sim_tlb_tag(t);

	for (unsigned i = 0; i < SIM_TLB_LEAVES; i++)
		if (t->leaf[i].tag == tag)
			t->leaf[i].valid = false;
	for (unsigned i = 0; i < SIM_TLB_WALKS; i++)
		if (t->walk[i].tag == tag)
			t->walk[i].valid = false;
}

/* Every leaf and non-leaf entry that translates some gfn of [gfn, gfn+n)
 * (TLBI IPAS2E1 drops the walk entries used for the IPA too). Caller holds
 * t->lock. */
static inline void sim_tlb_drop_range(struct sim_tlb *t, gfn_t gfn, uint64_t n)
{
	for (unsigned i = 0; i < SIM_TLB_LEAVES; i++) {
		struct sim_tlb_leaf *e = &t->leaf[i];

		if (e->valid && e->gfn < gfn + n && gfn < e->gfn + e->pages)
			e->valid = false;
	}
	for (unsigned i = 0; i < SIM_TLB_WALKS; i++) {
		struct sim_tlb_walk *w = &t->walk[i];

		if (w->valid && w->gfn < gfn + n && gfn < w->gfn + w->pages)
			w->valid = false;
	}
}

static inline void sim_tlb_drop_gpa(struct sim_tlb *t, gpa_t gpa)
{
	sim_tlb_drop_range(t, gpa_to_gfn(gpa), 1);
}

static inline struct sim_tlb_leaf *sim_tlb_find(struct sim_tlb *t, gfn_t gfn)
{
	uint64_t tag = sim_tlb_tag(t);

	for (unsigned i = 0; i < SIM_TLB_LEAVES; i++) {
		struct sim_tlb_leaf *e = &t->leaf[i];

		if (e->valid && e->tag == tag && gfn - e->gfn < e->pages)
			return e;
	}
	return NULL;
}

static inline void sim_tlb_fill_walk(struct sim_tlb *t, int level, gfn_t gfn, uint64_t pages,
				     uint64_t *table)
{
	struct sim_tlb_walk *w = &t->walk[t->next_walk++ % SIM_TLB_WALKS];

	*w = (struct sim_tlb_walk){ true, level, gfn, pages, table, sim_tlb_tag(t) };
}

/*
 * Set the bits @set in the leaf at @ptep if it still maps @pa_base writable
 * (@need_w) or at all, as the hardware's locked A/D update: false when the
 * leaf changed so that the translation is gone (the caller walks again).
 */
static inline bool sim_set_flags(struct kvm *kvm, uint64_t *ptep, int level, hpa_t pa_base,
				 bool need_w, uint64_t set, struct sim_access *a)
{
	const struct s2_fmt_cfg *c = kvm_fmt_cfg(kvm);
	enum s2_fmt_id fmt = kvm_fmt(kvm);
	uint64_t v = sim_pte_load(ptep);

	for (;;) {
		if (v == SIM_POISON) {
			a->bad = ptep;
			a->bad_level = level;
			return false;
		}
		if (!sim_present(fmt, v, level) || !sim_leaf(fmt, v, level) ||
		    sim_leaf_pa(c, fmt, v, level) != pa_base || (need_w && !sim_writable(kvm, v)))
			return false;
		if ((v & set) == set)
			return true;
		if (__atomic_compare_exchange_n(ptep, &v, v | set, false, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			return true;
	}
}

/*
 * Walk the live tables for a->gpa, starting from the deepest cached walk
 * entry, and fill the caches. Caller holds t->lock.
 */
static inline enum sim_result sim_tlb_walk(struct kvm *kvm, struct sim_tlb *t, struct sim_access *a)
{
	const struct s2_fmt_cfg *c = kvm_fmt_cfg(kvm);
	enum s2_fmt_id fmt = kvm_fmt(kvm);
	gfn_t gfn = gpa_to_gfn(a->gpa);
	uint64_t *tbl = (uint64_t *)(uintptr_t)t->root;
	int level = c->levels;
	uint64_t abit = sim_accessed_bit(kvm), dbit = sim_dirty_bit(kvm), tag = sim_tlb_tag(t);

	if (!tbl)
		return SIM_FAULT; /* no root loaded */
	t->walks++;
	for (unsigned i = 0; i < SIM_TLB_WALKS; i++) {
		struct sim_tlb_walk *w = &t->walk[i];

		if (w->valid && w->tag == tag && gfn - w->gfn < w->pages && w->level < level) {
			level = w->level;
			tbl = w->table;
		}
	}
	for (;; level--) {
		uint64_t *ep = sim_entry(c, tbl, level, a->gpa);
		uint64_t v = sim_pte_load(ep);

		if (v == SIM_POISON) {
			a->bad = ep;
			a->bad_level = level;
			return SIM_POISONED;
		}
		if (!sim_present(fmt, v, level))
			return SIM_FAULT;
		if (!sim_leaf(fmt, v, level)) {
			uint64_t span = sim_level_pages(c, level);

			tbl = (uint64_t *)(uintptr_t)sim_next(fmt, v);
			sim_tlb_fill_walk(t, level - 1, gfn & ~(span - 1), span, tbl);
			continue;
		}

		/* A leaf: permissions, then Accessed and Dirty. */
		uint64_t pages = sim_level_pages(c, level);
		hpa_t base = sim_leaf_pa(c, fmt, v, level);
		uint64_t set = 0;

		if (!sim_readable(fmt, v) || (a->write && !sim_writable(kvm, v)))
			return SIM_FAULT;
		if (abit && !(v & abit)) {
			if (!sim_hw_accessed(kvm))
				return SIM_FAULT;
			set |= abit;
		}
		if (a->write && dbit && !(v & dbit)) {
			if (!sim_hw_dirty(kvm))
				return SIM_FAULT; /* RISC-V without Svadu */
			set |= dbit;
		}
		if (set && !sim_set_flags(kvm, ep, level, base, a->write, set, a))
			return a->bad ? SIM_POISONED : SIM_FAULT;
		if (a->write && (set & dbit))
			a->newly_dirty = true;

		struct sim_tlb_leaf *e = &t->leaf[t->next_leaf++ % SIM_TLB_LEAVES];

		*e = (struct sim_tlb_leaf){
			.valid = true,
			.w = sim_writable(kvm, v),
			.dirty = !dbit || (v & dbit) || (a->write && (set & dbit)),
			.level = level,
			.gfn = gfn & ~(pages - 1),
			.pages = pages,
			.pa = base,
			.ptep = ep,
			.stamp = a->stamp,
			.tag = tag,
		};
		t->fills++;
		a->used = *e;
		a->pa = base + ((gfn & (pages - 1)) << S2_GFN_SHIFT);
		return SIM_OK;
	}
}

/* One guest access (the gpa's page; the offset in it does not matter).
 * Caller holds t->lock. */
static inline enum sim_result sim_tlb_access(struct kvm *kvm, struct sim_tlb *t,
					     struct sim_access *a)
{
	gfn_t gfn = gpa_to_gfn(a->gpa);
	struct sim_tlb_leaf *e = sim_tlb_find(t, gfn);

	a->hit = false;
	a->newly_dirty = false;
	a->bad = NULL;
	if (e && (!a->write || e->w)) {
		if (a->write && !e->dirty) {
			/* The hardware's dirty-flag update through the cached
			 * translation (no full walk), if the leaf still maps it. */
			if (!sim_set_flags(kvm, e->ptep, e->level, e->pa, true, sim_dirty_bit(kvm),
					   a)) {
				e->valid = false;
				if (a->bad)
					return SIM_POISONED;
				return sim_tlb_walk(kvm, t, a);
			}
			e->dirty = true;
			a->newly_dirty = true;
		}
		a->hit = true;
		a->used = *e;
		a->pa = e->pa + ((gfn - e->gfn) << S2_GFN_SHIFT);
		t->hits++;
		return SIM_OK;
	}
	if (e)
		e->valid = false; /* denies the access: a fault drops it */
	return sim_tlb_walk(kvm, t, a);
}

/* ---- what the tables grant now (for the checker) ---- */

/*
 * The translation of @gfn in the live tables under @root, as the library
 * keeps it:
 * hardware-visible leaves, plus EPT's access-tracked ones (aging without
 * Accessed bits makes a leaf non-present to hardware but keeps its pfn and
 * software bits, fmt-x86-ept.md; tracked leaves may stay in TLBs since aging
 * owes no flush). @table_at[l] gets the table of level l on the way (NULL
 * below where the walk stopped).
 */
struct sim_view {
	bool mapped;  /* a present or access-tracked leaf */
	bool tracked; /* access-tracked */
	bool poison;  /* the walk read a freed table */
	int level;
	hpa_t pa; /* output of gfn */
	bool w, dirty, mmu_w;
	uint64_t pte;
	uint64_t *table_at[S2_MAX_LEVELS + 2];
};

static inline bool sim_ept_tracked(enum s2_fmt_id fmt, uint64_t v)
{
	/* EPT_R|W|X|XU clear, a saved R/X/XU in bits 54:52 (fmt/x86-ept). */
	return fmt == S2_FMT_X86_EPT && !(v & 0x407) && (v & (7ull << 52));
}

static inline void sim_view(struct kvm *kvm, hpa_t root, gfn_t gfn, struct sim_view *out)
{
	const struct s2_fmt_cfg *c = kvm_fmt_cfg(kvm);
	enum s2_fmt_id fmt = kvm_fmt(kvm);
	uint64_t *tbl = (uint64_t *)(uintptr_t)root;
	gpa_t gpa = gfn_to_gpa(gfn);
	uint64_t dbit = sim_dirty_bit(kvm);

	memset(out, 0, sizeof(*out));
	for (int level = c->levels; level >= 1; level--) {
		uint64_t *ep = sim_entry(c, tbl, level, gpa);
		uint64_t v = sim_pte_load(ep);
		bool tracked = sim_ept_tracked(fmt, v);

		out->table_at[level] = tbl;
		out->pte = v;
		if (v == SIM_POISON) {
			out->poison = true;
			return;
		}
		if (!tracked && !sim_present(fmt, v, level))
			return;
		if (tracked || sim_leaf(fmt, v, level)) {
			uint64_t pages = sim_level_pages(c, level);
			unsigned prot = kvm->ops->leaf_prot(c, v, level);

			out->mapped = true;
			out->tracked = tracked;
			out->level = level;
			out->pa = sim_leaf_pa(c, fmt, v, level) +
				  ((gfn & (pages - 1)) << S2_GFN_SHIFT);
			out->w = !tracked && sim_writable(kvm, v);
			out->dirty = !dbit || (v & dbit);
			out->mmu_w = prot & S2_PROT_MMU_WRITABLE;
			return;
		}
		tbl = (uint64_t *)(uintptr_t)sim_next(fmt, v);
	}
}

#endif
