// SPDX-License-Identifier: MIT
/*
 * Intel TDX private memory (docs/tdx.md): the mirror root, private faults,
 * the removal order, teardown. EPT only: this file is compiled against the
 * EPT format's inlines and is empty without CONFIG_S2_TDX.
 *
 * The mirror root is an EPT tree in ordinary memory that only this file
 * walks (it is not in the VM's root set, so notifiers, dirty logging,
 * aging and the fast zap, which walk that set, never see it). Every mirror
 * table page is allocated as 8 KiB: the first 4 KiB is the mirror table, the
 * second the S-EPT page handed to the TDX module for the same table, so no
 * side structure maps one to the other. Every mirror change that must reach
 * the module follows rule 5: freeze the entry with compare-and-exchange
 * (under the read side) or a store (under the write side), call the hook,
 * then publish the final value, or restore the old one on error.
 *
 * A blocked leaf is FMT_FROZEN | its hpa: frozen to every walker (bits
 * 0..11), and it keeps the address for the REMOVE and WBINVD that follow.
 */
#include "core/kvm_internal.h"

#if S2_ENABLED(CONFIG_S2_TDX)
#include "fmt/x86-ept/fmt.h"
#include "s2mmu/notifier.h"
#include "s2mmu/tdx.h"

#define TDX_PAIR_BYTES 8192u /* mirror table + its S-EPT page */
#define TDX_PAGE 4096u
/* Private leaves: 4 KiB and 2 MiB from PAGE.AUG (its largest), 1 GiB only
 * from a PAGE.PROMOTE of 512 2 MiB leaves (kvm_tdx_collapse()). */
#define TDX_AUG_MAX 2
#define TDX_MAX_LEAF 3
/* S-EPT pairs kept for demotions under the write side of mmu_lock, where
 * nothing may be allocated: a range has two ends, and one conversion may
 * zap a few ranges. Topped up before the lock (s2_tdx_topup()). */
#define TDX_SPARES 4
/* tdx_map() without table pages found a table missing: the fault
 * allocates them outside mmu_lock and tries once more (511 faults of 512
 * find their tables and allocate nothing). */
#define TDX_NEED_PAGES 0x100

struct s2_tdx {
	struct kvm_tdx_params p;
	s2_pte_t *root;
	hpa_t root_pa;
	unsigned retries;
	int64_t leaves[TDX_MAX_LEAF + 1];
	int64_t sept_pages;
	uint64_t seamcalls, busy, tracks, kicks, removed;
	uint64_t demoted, promoted, added, whole; /* whole: partial 2 MiB removed whole */
	hpa_t dead_head;	 /* removed S-EPT pairs awaiting reclaim (teardown) */
	hpa_t spare[TDX_SPARES]; /* 0 or a free pair (exchanged atomically) */
	bool finalized;		 /* kvm_tdx_finalized(): no more PAGE.ADD */
};

enum tdx_op {
	TDX_SEPT_ADD,
	TDX_PAGE_AUG,
	TDX_RANGE_BLOCK,
	TDX_TRACK,
	TDX_PAGE_REMOVE,
	TDX_SEPT_REMOVE,
	TDX_PAGE_WBINVD,
	TDX_PAGE_RECLAIM,
	TDX_PAGE_ADD,
	TDX_PAGE_DEMOTE,
	TDX_PAGE_PROMOTE,
	TDX_RANGE_UNBLOCK,
};

static void tdx_add(uint64_t *p, uint64_t v)
{
	__atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

/* One kick round: every vcpu leaves guest mode (and so the TD epoch of
 * its next entry is the current one) before this returns. */
static void tdx_kick(struct kvm *kvm, struct s2_tdx *t)
{
	kvm_make_all_cpus_request(kvm, KVM_REQ_TLB_FLUSH);
	tdx_add(&t->kicks, 1);
}

static uint64_t tdx_call_once(struct s2_tdx *t, enum tdx_op op, gpa_t gpa, int level, hpa_t pa,
			      hpa_t src)
{
	const struct s2_tdx_ops *o = t->p.ops;
	void *ctx = t->p.ctx;

	tdx_add(&t->seamcalls, 1);
	switch (op) {
	case TDX_SEPT_ADD: return o->sept_add(ctx, gpa, level, pa);
	case TDX_PAGE_AUG: return o->page_aug(ctx, gpa, level, pa);
	case TDX_RANGE_BLOCK: return o->range_block(ctx, gpa, level);
	case TDX_TRACK: return o->track(ctx);
	case TDX_PAGE_REMOVE: return o->page_remove(ctx, gpa, level);
	case TDX_SEPT_REMOVE: return o->sept_remove(ctx, gpa, level);
	case TDX_PAGE_WBINVD: return o->page_wbinvd(ctx, pa);
	case TDX_PAGE_RECLAIM: return o->page_reclaim(ctx, pa);
	case TDX_PAGE_ADD: return o->page_add(ctx, gpa, pa, src);
	case TDX_PAGE_DEMOTE: return o->page_demote(ctx, gpa, level, pa);
	case TDX_PAGE_PROMOTE: return o->page_promote(ctx, gpa, level);
	case TDX_RANGE_UNBLOCK: return o->range_unblock(ctx, gpa, level);
	}
	return S2_TDX_OPERAND_INVALID;
}

/*
 * A SEAMCALL that must win (removal, teardown): TDX_OPERAND_BUSY (the TD's
 * own accesses or another CPU hold the entry) is retried, with a kick round
 * between tries so that vcpus in the guest get out of its way. Any other
 * failure is the library's bug: the VM is marked bugged.
 */
static int tdx_call(struct kvm *kvm, struct s2_tdx *t, enum tdx_op op, gpa_t gpa, int level,
		    hpa_t pa)
{
	for (unsigned n = 0;; n++) {
		uint64_t st = tdx_call_once(t, op, gpa, level, pa, 0);

		if (st == S2_TDX_SUCCESS)
			return 0;
		if (S2_TDX_STATUS(st) != S2_TDX_OPERAND_BUSY &&
		    S2_TDX_STATUS(st) != S2_TDX_PREVIOUS_TLB_EPOCH_BUSY) {
			kvm_bug(kvm,
				"TDX module refused a SEAMCALL (status) in the library's order",
				st);
			return -EIO;
		}
		tdx_add(&t->busy, 1);
		if (n >= t->retries)
			return -EBUSY;
		tdx_kick(kvm, t);
	}
}

static s2_pte_t *tdx_va(struct kvm *kvm, hpa_t pa)
{
	return s2_phys_to_virt(kvm, pa);
}

static uint64_t tdx_span(const struct s2_fmt_cfg *c, int level)
{
	return 1ull << s2_level_shift(c, level);
}

/* ---- private faults ---- */

static s2_pte_t tdx_leaf(const struct s2_fmt_cfg *c, int level, hpa_t hpa)
{
	/* RWX, never write-protected, aged or logged: A and D set for good. */
	return fmt_make_leaf(c, level, hpa,
			     S2_PROT_R | S2_PROT_W | S2_PROT_X | S2_PROT_XU | S2_PROT_ACCESSED |
				     S2_PROT_DIRTY | S2_PROT_HOST_WRITABLE | S2_PROT_MMU_WRITABLE,
			     S2_MT_WB);
}

/*
 * Descend the mirror root to @level for @gfn under the read side of
 * mmu_lock, linking tables from @pg (each linked through SEPT.ADD), and
 * install the leaf through PAGE.AUG. A frozen entry is another CPU's change
 * in flight: retry. TDX_OPERAND_BUSY restores the entry and retries the
 * fault (the vcpu re-enters), as KVM does. Returns a RET_PF_* or -EIO.
 */
static int tdx_map(struct kvm *kvm, struct s2_tdx *t, gfn_t gfn, int level, hpa_t hpa,
		   struct s2_page *pg, unsigned npg, unsigned *used, hpa_t src)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	gpa_t gpa = gfn_to_gpa(gfn);
	s2_pte_t *tbl = t->root;

	for (int l = c->levels;; l--) {
		s2_pte_t *ptep = &tbl[(gpa >> s2_level_shift(c, l)) & 511];
		uint64_t span = tdx_span(c, l);
		s2_pte_t old = __atomic_load_n(ptep, __ATOMIC_ACQUIRE);
		uint64_t st;

again:
		if (fmt_is_frozen(old))
			return RET_PF_RETRY;
		if (fmt_is_present(c, old, l)) {
			if (fmt_is_leaf(c, old, l))
				return RET_PF_SPURIOUS; /* RWX: every access is granted */
			if (l == level)
				level = l - 1; /* a table where the huge leaf would go */
			tbl = tdx_va(kvm, fmt_table_hpa(c, old, l));
			continue;
		}
		if (l == level) {
			hpa_t leaf = hpa & ~(span - 1);

			if (!__atomic_compare_exchange_n(ptep, &old, FMT_FROZEN, false,
							 __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
				goto again;
			/* src: initial measured memory (PAGE.ADD, 4 KiB). */
			st = tdx_call_once(t, src ? TDX_PAGE_ADD : TDX_PAGE_AUG, gpa & ~(span - 1),
					   l, leaf, src);
			if (st) {
				__atomic_store_n(ptep, 0, __ATOMIC_RELEASE);
				goto failed;
			}
			__atomic_store_n(ptep, tdx_leaf(c, l, leaf), __ATOMIC_RELEASE);
			__atomic_fetch_add(&t->leaves[l], 1, __ATOMIC_RELAXED);
			return RET_PF_FIXED;
		}
		if (*used >= npg) {
			if (!npg)
				return TDX_NEED_PAGES; /* nothing changed yet */
			kvm_bug(kvm, "TDX: no table page for the mirror root at gfn", gfn);
			return -EIO;
		}
		if (!__atomic_compare_exchange_n(ptep, &old, FMT_FROZEN, false, __ATOMIC_ACQUIRE,
						 __ATOMIC_ACQUIRE))
			goto again;
		st = tdx_call_once(t, TDX_SEPT_ADD, gpa & ~(span - 1), l, pg[*used].pa + TDX_PAGE,
				   0);
		if (st) {
			__atomic_store_n(ptep, 0, __ATOMIC_RELEASE);
			goto failed;
		}
		__atomic_store_n(ptep, fmt_make_table(c, l, pg[*used].pa), __ATOMIC_RELEASE);
		__atomic_fetch_add(&t->sept_pages, 1, __ATOMIC_RELAXED);
		tbl = pg[(*used)++].va;
		continue;
failed:
		if (S2_TDX_STATUS(st) == S2_TDX_OPERAND_BUSY) {
			tdx_add(&t->busy, 1);
			return RET_PF_RETRY;
		}
		kvm_bug(kvm, "TDX module refused a private fault's SEAMCALL (status)", st);
		return -EIO;
	}
}

/* The largest private leaf for @gfn: the backing, the slot, the pfn's
 * alignment and uniformly private attributes allow it. */
static int tdx_pick_level(struct kvm *kvm, const struct kvm_memory_slot *slot, gfn_t gfn,
			  kvm_pfn_t pfn, int max)
{
	int level = max < kvm->max_leaf_level ? max : kvm->max_leaf_level;

	if (level > TDX_AUG_MAX)
		level = TDX_AUG_MAX;
	for (; level > 1; level--) {
		uint64_t n = tdx_span(&kvm->cfg, level) >> S2_GFN_SHIFT;
		gfn_t base = gfn & ~(n - 1);

		if (base >= slot->base_gfn && base + n <= slot->base_gfn + slot->npages &&
		    !((pfn ^ gfn) & (n - 1)) &&
		    kvm_range_has_memory_attributes(kvm, base, base + n,
						    KVM_MEMORY_ATTRIBUTE_PRIVATE))
			break;
	}
	return level < 1 ? 1 : level;
}

/* Fill the spare S-EPT pairs (not under mmu_lock): a failed allocation
 * only leaves fewer spares, and a demotion without one removes the whole
 * 2 MiB leaf instead (counted). */
void s2_tdx_topup(struct kvm *kvm)
{
	struct s2_tdx *t = kvm->tdx;
	const struct s2_env *env = kvm->env;

	if (!t)
		return;
	for (unsigned i = 0; i < TDX_SPARES; i++) {
		hpa_t pa = 0, none = 0;
		void *va;

		if (__atomic_load_n(&t->spare[i], __ATOMIC_RELAXED))
			continue;
		va = env->ops->alloc_table(env->ctx, TDX_PAIR_BYTES, &pa);
		if (!va)
			return;
		if (!__atomic_compare_exchange_n(&t->spare[i], &none, pa, false, __ATOMIC_RELEASE,
						 __ATOMIC_RELAXED))
			env->ops->free_table(env->ctx, va, pa, TDX_PAIR_BYTES);
	}
}

static hpa_t tdx_take_spare(struct s2_tdx *t)
{
	for (unsigned i = 0; i < TDX_SPARES; i++) {
		hpa_t pa = __atomic_exchange_n(&t->spare[i], 0, __ATOMIC_ACQUIRE);

		if (pa)
			return pa;
	}
	return 0;
}

static void tdx_put_spare(struct kvm *kvm, struct s2_tdx *t, hpa_t pa)
{
	for (unsigned i = 0; i < TDX_SPARES; i++) {
		hpa_t none = 0;

		if (__atomic_compare_exchange_n(&t->spare[i], &none, pa, false, __ATOMIC_RELEASE,
						__ATOMIC_RELAXED))
			return;
	}
	kvm->env->ops->free_table(kvm->env->ctx, s2_phys_to_virt(kvm, pa), pa, TDX_PAIR_BYTES);
}

static int tdx_fault_private(struct kvm_vcpu *vcpu, gfn_t gfn)
{
	struct kvm *kvm = vcpu->kvm;
	struct s2_tdx *t = kvm->tdx;
	const struct s2_env *env = kvm->env;
	struct s2_page pg[S2_MAX_LEVELS] = { 0 };
	struct kvm_memory_slot slot;
	unsigned npg, used = 0;
	uint64_t seq, gen, n;
	kvm_pfn_t pfn;
	int level, max = 1, r;

	s2_stat_inc(&vcpu->stat.faults);
	if (!(kvm_get_memory_attributes(kvm, gfn) & KVM_MEMORY_ATTRIBUTE_PRIVATE))
		return RET_PF_MEMORY_FAULT;
	/* Snapshot before the pfn is resolved; re-checked under mmu_lock. */
	seq = __atomic_load_n(&kvm->mmu_invalidate_seq, __ATOMIC_ACQUIRE);
	if (s2_memslot_snapshot(kvm, gfn, &slot, &gen))
		return RET_PF_MEMORY_FAULT; /* private gfns need a memslot */
	r = t->p.ops->private_pfn(t->p.ctx, &slot, gfn, &pfn, &max);
	if (r)
		return r < 0 ? r : -EFAULT;
	level = tdx_pick_level(kvm, &slot, gfn, pfn, max);
	n = tdx_span(&kvm->cfg, level) >> S2_GFN_SHIFT;
	s2_tdx_topup(kvm);
	/* First without table pages; where a mirror table is missing, its
	 * pairs (mirror + S-EPT page) are allocated before the lock and the
	 * descent runs again. */
	for (npg = 0;;) {
		s2_mmu_read_lock_vcpu(vcpu);
		if (s2_invalidate_retry(kvm, seq, gfn & ~(n - 1), (gfn & ~(n - 1)) + n) ||
		    __atomic_load_n(&kvm->memslots_gen, __ATOMIC_ACQUIRE) != gen)
			r = RET_PF_RETRY;
		else
			r = tdx_map(kvm, t, gfn, level, (hpa_t)pfn << S2_GFN_SHIFT, pg, npg, &used,
				    0);
		s2_mmu_read_unlock_vcpu(vcpu);
		if (r != TDX_NEED_PAGES)
			break;
		npg = kvm->cfg.levels - (unsigned)level;
		for (unsigned i = 0; i < npg; i++) {
			pg[i].va = env->ops->alloc_table(env->ctx, TDX_PAIR_BYTES, &pg[i].pa);
			if (!pg[i].va) {
				r = -ENOMEM;
				goto out;
			}
		}
	}
out:
	for (unsigned i = used; i < npg; i++)
		if (pg[i].va)
			env->ops->free_table(env->ctx, pg[i].va, pg[i].pa, TDX_PAIR_BYTES);
	switch (r) {
	case RET_PF_FIXED: s2_stat_inc(&vcpu->stat.fixed); return r;
	case RET_PF_SPURIOUS: s2_stat_inc(&vcpu->stat.spurious); break;
	case RET_PF_RETRY: s2_stat_inc(&vcpu->stat.retry); break;
	default: break;
	}
	if (t->p.ops->private_pfn_put)
		t->p.ops->private_pfn_put(t->p.ctx, pfn, 1);
	return r;
}

int s2_tdx_fault(struct kvm_vcpu *vcpu, gpa_t gpa, unsigned access, gfn_t *gfn)
{
	struct kvm *kvm = vcpu->kvm;
	gfn_t bits = kvm->gfn_direct_bits;
	gfn_t g = gpa_to_gfn(gpa);

	if (!(access & (S2_ACC_READ | S2_ACC_WRITE | S2_ACC_EXEC)) ||
	    (g >> (kvm->cfg.gpa_bits - S2_GFN_SHIFT)))
		return -EINVAL;
	if (!(g & bits))
		return tdx_fault_private(vcpu, g);
	*gfn = g & ~bits;
	if (kvm_get_memory_attributes(kvm, *gfn) & KVM_MEMORY_ATTRIBUTE_PRIVATE) {
		s2_stat_inc(&vcpu->stat.faults);
		return RET_PF_MEMORY_FAULT;
	}
	return -EAGAIN;
}

/* ---- removal: BLOCK, TRACK, kick, REMOVE, WBINVD ---- */

enum tdx_pass { TDX_BLOCK_LEAVES, TDX_REMOVE_LEAVES, TDX_BLOCK_TABLES, TDX_REMOVE_TABLES };

struct tdx_walk {
	struct kvm *kvm;
	struct s2_tdx *t;
	gpa_t s, e; /* bytes, half-open */
	enum tdx_pass pass;
	int tlevel;   /* the table passes: level of the entries removed */
	gpa_t bs, be; /* the leaves BLOCK_LEAVES blocked span [bs, be) */
	uint64_t done;
	int err;
};

static int tdx_track(struct kvm *kvm, struct s2_tdx *t);

/* REMOVE and WBINVD the blocked (frozen) leaf at @ptep, hand it back. */
static int tdx_remove_leaf(struct tdx_walk *w, s2_pte_t *ptep, gpa_t a, int l)
{
	struct s2_tdx *t = w->t;
	hpa_t hpa = __atomic_load_n(ptep, __ATOMIC_RELAXED) & EPT_ADDR_MASK;

	if ((w->err = tdx_call(w->kvm, t, TDX_PAGE_REMOVE, a, l, 0)) ||
	    (w->err = tdx_call(w->kvm, t, TDX_PAGE_WBINVD, 0, l, hpa)))
		return w->err;
	__atomic_store_n(ptep, 0, __ATOMIC_RELEASE);
	__atomic_fetch_sub(&t->leaves[l], 1, __ATOMIC_RELAXED);
	tdx_add(&t->removed, 1);
	if (t->p.ops->private_pfn_put)
		t->p.ops->private_pfn_put(t->p.ctx, hpa >> S2_GFN_SHIFT, l);
	return 0;
}

/* One pass over the mirror table @tbl of level @l that maps from @base. */
static void tdx_walk(struct tdx_walk *w, s2_pte_t *tbl, int l, gpa_t base)
{
	struct kvm *kvm = w->kvm;
	const struct s2_fmt_cfg *c = &kvm->cfg;
	uint64_t span = tdx_span(c, l);

	for (unsigned i = 0; i < 512 && !w->err; i++) {
		gpa_t a = base + i * span;
		s2_pte_t *ptep = &tbl[i];
		s2_pte_t old = __atomic_load_n(ptep, __ATOMIC_ACQUIRE);

		if (a >= w->e || a + span <= w->s || !old)
			continue;
		if (w->pass == TDX_REMOVE_LEAVES && fmt_is_frozen(old) && l <= TDX_MAX_LEAF) {
			if (tdx_remove_leaf(w, ptep, a, l))
				return;
			w->done++;
			continue;
		}
		if (w->pass == TDX_REMOVE_TABLES && fmt_is_frozen(old) && l == w->tlevel) {
			hpa_t pa = old & EPT_ADDR_MASK;

			if ((w->err = tdx_call(kvm, w->t, TDX_SEPT_REMOVE, a, l, 0)))
				return;
			__atomic_store_n(ptep, 0, __ATOMIC_RELEASE);
			/* The pair waits for the key's release, linked through
			 * the (empty) mirror table's first entry. */
			__atomic_store_n(tdx_va(kvm, pa), w->t->dead_head, __ATOMIC_RELAXED);
			w->t->dead_head = pa;
			__atomic_fetch_sub(&w->t->sept_pages, 1, __ATOMIC_RELAXED);
			w->done++;
			continue;
		}
		if (!fmt_is_present(c, old, l))
			continue;
		if (fmt_is_leaf(c, old, l)) {
			if (w->pass != TDX_BLOCK_LEAVES)
				continue;
			/* A 2 MiB leaf reaching outside the range goes whole
			 * only when no spare pair was left to demote it. */
			if ((w->err = tdx_call(kvm, w->t, TDX_RANGE_BLOCK, a, l, 0)))
				return;
			__atomic_store_n(ptep, FMT_FROZEN | fmt_leaf_hpa(c, old, l),
					 __ATOMIC_RELEASE);
			if (a < w->bs)
				w->bs = a;
			if (a + span > w->be)
				w->be = a + span;
			w->done++;
			/* KVM's order, kept to measure against
			 * (params.track_per_page): TRACK and kick per leaf,
			 * then its REMOVE and WBINVD. */
			if (w->t->p.track_per_page &&
			    ((w->err = tdx_track(kvm, w->t)) || tdx_remove_leaf(w, ptep, a, l)))
				return;
			continue;
		}
		if (w->pass == TDX_BLOCK_TABLES && l == w->tlevel) {
			if ((w->err = tdx_call(kvm, w->t, TDX_RANGE_BLOCK, a, l, 0)))
				return;
			__atomic_store_n(ptep, FMT_FROZEN | fmt_table_hpa(c, old, l),
					 __ATOMIC_RELEASE);
			w->done++;
			continue;
		}
		if (l - 1 >= (w->pass >= TDX_BLOCK_TABLES ? w->tlevel : 1))
			tdx_walk(w, tdx_va(kvm, fmt_table_hpa(c, old, l)), l - 1, a);
	}
}

static int tdx_pass(struct tdx_walk *w, enum tdx_pass pass)
{
	w->pass = pass;
	w->done = 0;
	tdx_walk(w, w->t->root, w->kvm->cfg.levels, 0);
	return w->err;
}

/* After a blocking pass: one TRACK, and one kick round so every vcpu that
 * may hold the old translations has left the guest (the epoch moved). */
static int tdx_track(struct kvm *kvm, struct s2_tdx *t)
{
	int r = tdx_call(kvm, t, TDX_TRACK, 0, 0, 0);

	if (r)
		return r;
	tdx_add(&t->tracks, 1);
	tdx_kick(kvm, t);
	return 0;
}

/* The mirror entry of @level that covers @gpa, or NULL where a table
 * above it is missing or @level holds no entry (a leaf above). */
static s2_pte_t *tdx_entry(struct kvm *kvm, struct s2_tdx *t, gpa_t gpa, int level)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	s2_pte_t *tbl = t->root;

	for (int l = c->levels;; l--) {
		s2_pte_t *ptep = &tbl[(gpa >> s2_level_shift(c, l)) & 511];
		s2_pte_t e = __atomic_load_n(ptep, __ATOMIC_ACQUIRE);

		if (l == level)
			return ptep;
		if (!fmt_is_present(c, e, l) || fmt_is_leaf(c, e, l))
			return NULL;
		tbl = tdx_va(kvm, fmt_table_hpa(c, e, l));
	}
}

/*
 * Demote the private leaves of @level (2 MiB or 1 GiB) that [s, e) (bytes)
 * covers only in part, in the module's order: BLOCK each, one TRACK and
 * kick round, then PAGE.DEMOTE with a spare S-EPT pair; the mirror gets the
 * table of 512 leaves of the next size over the same pages. Only the two ends of the range can
 * straddle a leaf. Without a spare the leaf stays and the removal takes it
 * whole (counted in `whole`). Write side of mmu_lock.
 */
static int tdx_demote_level(struct kvm *kvm, struct s2_tdx *t, gpa_t s, gpa_t e, int level)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	const uint64_t span = tdx_span(c, level), cspan = tdx_span(c, level - 1);
	gpa_t at[2] = { s & ~(span - 1), (e - 1) & ~(span - 1) };
	s2_pte_t *ptep[2] = { NULL, NULL };
	hpa_t pair[2] = { 0, 0 }, leaf[2] = { 0, 0 };
	unsigned n = 0;
	int r = 0;

	for (unsigned i = 0; i < 2; i++) {
		gpa_t a = at[i];
		s2_pte_t *p, old;

		if ((a >= s && a + span <= e) || (i == 1 && at[1] == at[0]))
			continue; /* covered whole, or the same leaf */
		p = tdx_entry(kvm, t, a, level);
		old = p ? __atomic_load_n(p, __ATOMIC_ACQUIRE) : 0;
		if (!p || !fmt_is_leaf(c, old, level))
			continue;
		if (!(pair[n] = tdx_take_spare(t))) {
			tdx_add(&t->whole, 1);
			continue;
		}
		if ((r = tdx_call(kvm, t, TDX_RANGE_BLOCK, a, level, 0))) {
			tdx_put_spare(kvm, t, pair[n]);
			pair[n] = 0;
			break;
		}
		leaf[n] = fmt_leaf_hpa(c, old, level);
		__atomic_store_n(p, FMT_FROZEN | leaf[n], __ATOMIC_RELEASE);
		ptep[n] = p;
		at[n++] = a;
	}
	if (n && !r)
		r = tdx_track(kvm, t);
	for (unsigned i = 0; i < n; i++) {
		s2_pte_t *tbl = tdx_va(kvm, pair[i]);

		if (!r)
			r = tdx_call(kvm, t, TDX_PAGE_DEMOTE, at[i], level, pair[i] + TDX_PAGE);
		if (r) {
			/* Left blocked (frozen) for the removal that follows,
			 * or for teardown; the pair goes back. */
			tdx_put_spare(kvm, t, pair[i]);
			continue;
		}
		for (unsigned j = 0; j < 512; j++)
			__atomic_store_n(&tbl[j],
					 tdx_leaf(c, level - 1, leaf[i] + (hpa_t)j * cspan),
					 __ATOMIC_RELAXED);
		__atomic_store_n(ptep[i], fmt_make_table(c, level, pair[i]), __ATOMIC_RELEASE);
		__atomic_fetch_sub(&t->leaves[level], 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&t->leaves[level - 1], 512, __ATOMIC_RELAXED);
		__atomic_fetch_add(&t->sept_pages, 1, __ATOMIC_RELAXED);
		tdx_add(&t->demoted, 1);
	}
	return r;
}

/* A 1 GiB leaf an end cuts becomes 512 2 MiB leaves first; then a 2 MiB
 * leaf an end cuts (one of those, or one of its own) becomes 4 KiB leaves.
 * Each level is one BLOCK/TRACK/kick/DEMOTE round. */
static int tdx_demote_ends(struct kvm *kvm, struct s2_tdx *t, gpa_t s, gpa_t e)
{
	int r = 0;

	for (int level = TDX_MAX_LEAF; level >= 2 && !r; level--)
		if (level <= kvm->cfg.levels)
			r = tdx_demote_level(kvm, t, s, e, level);
	return r;
}

/*
 * Remove the private leaves of [start, end): block the whole range, TRACK
 * once and kick once, then REMOVE and WBINVD each page and hand it back
 * (KVM tracks per page; params.track_per_page does that too, to measure
 * it). A 2 MiB leaf the range covers in part is demoted first. Under the
 * write side of mmu_lock, so no private fault runs meanwhile and every
 * frozen mirror entry is one this call blocked.
 */
long s2_tdx_zap_private(struct kvm *kvm, gfn_t start, gfn_t end)
{
	struct s2_tdx *t = kvm->tdx;
	struct tdx_walk w = { .kvm = kvm, .t = t, .s = gfn_to_gpa(start), .e = gfn_to_gpa(end) };
	int r;

	if (!t || start >= end)
		return 0;
	if ((r = tdx_demote_ends(kvm, t, w.s, w.e)))
		return r;
	w.bs = ~0ull;
	w.be = 0;
	if ((r = tdx_pass(&w, TDX_BLOCK_LEAVES)))
		return r;
	if (t->p.track_per_page)
		return (long)w.done;
	if (!w.done)
		return 0;
	if ((r = tdx_track(kvm, t)))
		return r;
	/* Huge leaves blocked whole (no spare to demote them) reach past
	 * the range: remove over what was blocked. */
	w.s = w.bs < w.s ? w.bs : w.s;
	w.e = w.be > w.e ? w.be : w.e;
	if ((r = tdx_pass(&w, TDX_REMOVE_LEAVES)))
		return r;
	return (long)w.done;
}

/*
 * Teardown, vcpus out of guest mode: every private leaf removed, then the
 * S-EPT pages bottom up (a page only once its children are gone: block,
 * TRACK, SEPT.REMOVE per level), then the key is released and only then
 * the S-EPT pages are reclaimed from the module and freed.
 */
void s2_tdx_destroy(struct kvm *kvm)
{
	struct s2_tdx *t = kvm->tdx;
	const struct s2_env *env = kvm->env;
	struct s2_change_acc acc;
	gpa_t top;
	int r = 0;

	if (!t)
		return;
	top = 1ull << kvm->cfg.gpa_bits;
	s2_acc_init(&acc);
	s2_mmu_write_lock(kvm);
	if (!s2_kvm_dead(kvm))
		r = (int)s2_tdx_zap_private(kvm, 0, top >> S2_GFN_SHIFT);
	for (int l = 2; r >= 0 && !s2_kvm_dead(kvm) && l <= kvm->cfg.levels; l++) {
		struct tdx_walk w = { .kvm = kvm, .t = t, .e = top, .tlevel = l };

		if ((r = tdx_pass(&w, TDX_BLOCK_TABLES)) || !w.done)
			continue;
		if (!(r = tdx_track(kvm, t)))
			r = tdx_pass(&w, TDX_REMOVE_TABLES);
	}
	s2_mmu_write_unlock(kvm, &acc);
	if (t->p.ops->release_key)
		t->p.ops->release_key(t->p.ctx);
	while (t->dead_head) {
		hpa_t pa = t->dead_head;
		s2_pte_t *va = tdx_va(kvm, pa);

		t->dead_head = va[0];
		va[0] = 0;
		/* A bugged VM leaks the page rather than reuse one the
		 * module may still own. */
		if (!s2_kvm_dead(kvm) && !tdx_call(kvm, t, TDX_PAGE_RECLAIM, 0, 0, pa + TDX_PAGE))
			env->ops->free_table(env->ctx, va, pa, TDX_PAIR_BYTES);
	}
	for (hpa_t pa; (pa = tdx_take_spare(t));)
		env->ops->free_table(env->ctx, tdx_va(kvm, pa), pa, TDX_PAIR_BYTES);
	if (!t->sept_pages)
		env->ops->free_table(env->ctx, t->root, t->root_pa, TDX_PAGE);
	kvm->tdx = NULL;
	env->ops->free(env->ctx, t);
}

/* ---- promotion ---- */

/* TRACK and kick once for the @n blocked tables of @level (2: of 4 KiB
 * leaves, 3: of 2 MiB leaves), then PROMOTE each (or UNBLOCK it where the
 * module refuses). */
static int tdx_promote_blocked(struct kvm *kvm, struct s2_tdx *t, int level, s2_pte_t **p,
			       const gpa_t *at, unsigned n, long *done)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	int r = tdx_track(kvm, t);

	for (unsigned i = 0; i < n; i++) {
		hpa_t pa = __atomic_load_n(p[i], __ATOMIC_RELAXED) & EPT_ADDR_MASK;
		s2_pte_t *tbl = tdx_va(kvm, pa);
		hpa_t base = fmt_leaf_hpa(c, tbl[0], level - 1);
		uint64_t st = 0;

		for (unsigned k = 0; !r; k++) {
			st = tdx_call_once(t, TDX_PAGE_PROMOTE, at[i], level, 0, 0);
			if (S2_TDX_STATUS(st) != S2_TDX_OPERAND_BUSY)
				break;
			tdx_add(&t->busy, 1);
			if (k >= t->retries)
				r = -EBUSY;
			else
				tdx_kick(kvm, t);
		}
		/*
		 * The module's answer tells what the guest accepted (promoted:
		 * the 512 alike, refused: some accepted, some not), which a
		 * replay's module model cannot know: a trace line for it,
		 * before the collapse's own (docs/tools.md, tdx_promote_answer).
		 */
		if (!r && (!st || S2_TDX_STATUS(st) == S2_TDX_EPT_INVALID_PROMOTE_CONDITIONS))
			S2_TRACE(kvm, "tdx_promote_answer", S2_TRACE_NORET,
				 S2_TA_HEX("gfn", at[i] >> S2_GFN_SHIFT), S2_TA_DEC("level", level),
				 S2_TA_DEC("promoted", !st));
		if (!r && S2_TDX_STATUS(st) == S2_TDX_EPT_INVALID_PROMOTE_CONDITIONS)
			st = 0, r = tdx_call(kvm, t, TDX_RANGE_UNBLOCK, at[i], level, 0) ? -EIO : 1;
		if (r == 1) { /* not promotable: the table is live again */
			__atomic_store_n(p[i], fmt_make_table(c, level, pa), __ATOMIC_RELEASE);
			r = 0;
			continue;
		}
		if (!r && st) {
			kvm_bug(kvm, "TDX module refused PAGE.PROMOTE (status)", st);
			r = -EIO;
		}
		if (r) {
			/* Blocked for good: the next removal or teardown takes
			 * it (its leaves are still linked below). */
			__atomic_store_n(p[i], fmt_make_table(c, level, pa), __ATOMIC_RELEASE);
			return r;
		}
		/* The merged S-EPT page is the host's after a write-back. */
		if ((r = tdx_call(kvm, t, TDX_PAGE_WBINVD, 0, 1, pa + TDX_PAGE)))
			return r;
		__atomic_store_n(p[i], tdx_leaf(c, level, base), __ATOMIC_RELEASE);
		__atomic_fetch_sub(&t->leaves[level - 1], 512, __ATOMIC_RELAXED);
		__atomic_fetch_add(&t->leaves[level], 1, __ATOMIC_RELAXED);
		__atomic_fetch_sub(&t->sept_pages, 1, __ATOMIC_RELAXED);
		tdx_add(&t->promoted, 1);
		(*done)++;
		/* No walker reads the mirror without mmu_lock, and this is
		 * the write side: the pair can go now. */
		kvm->env->ops->free_table(kvm->env->ctx, tbl, pa, TDX_PAIR_BYTES);
	}
	return r;
}

/* ---- setup and inspection ---- */

/*
 * Suppress-#VE for the direct roots: a TD takes a #VE on an EPT violation
 * of any entry whose bit 63 is clear, so from now on every leaf carries it
 * (S2_FMTF_SUPPRESS_VE) and so does the non-present value
 * (fmt_nonpresent(), KVM's SHADOW_NONPRESENT_VALUE): zaps write it and new
 * tables are filled with it. The VM is fresh, so its current roots are
 * empty and are refilled here. The mirror root keeps 0: no hardware walks
 * it, and the module keeps suppress-#VE in the secure EPT itself.
 */
static void tdx_nonpresent_init(struct kvm *kvm)
{
	kvm->cfg.flags |= S2_FMTF_SUPPRESS_VE | EPT_CFG_TD_SVE;
	kvm->nonpresent = fmt_nonpresent(&kvm->cfg);
	for (unsigned i = 0; i < kvm->nr_roots; i++) {
		struct s2_root *r = &kvm->roots[i];

		if (__atomic_load_n(&r->state, __ATOMIC_ACQUIRE) == S2_ROOT_VALID)
			s2_table_fill(r->pt, s2_root_alloc_bytes(&kvm->cfg) / sizeof(s2_pte_t),
				      kvm->nonpresent);
	}
}

static S2_ALWAYS_INLINE int kvm_tdx_init_untraced(struct kvm *kvm, const struct kvm_tdx_params *p)
{
	const struct s2_tdx_ops *o = p ? p->ops : NULL;
	const struct s2_env *env;
	struct s2_tdx *t;

	if (!kvm || !o || kvm->ops->id != S2_FMT_X86_EPT || kvm->tdx)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	if (p->shared_bit + 1 != kvm->cfg.gpa_bits || (p->shared_bit != 47 && p->shared_bit != 51))
		return -EINVAL;
	if (!o->sept_add || !o->page_aug || !o->range_block || !o->track || !o->page_remove ||
	    !o->sept_remove || !o->page_wbinvd || !o->page_reclaim || !o->private_pfn)
		return -EINVAL;
	if (kvm->memslots->nr || kvm->mem_attrs || kvm->dirty.hw_scan)
		return -EINVAL;
	env = kvm->env;
	t = env->ops->zalloc(env->ctx, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->root = env->ops->alloc_table(env->ctx, TDX_PAGE, &t->root_pa);
	if (!t->root) {
		env->ops->free(env->ctx, t);
		return -ENOMEM;
	}
	t->p = *p;
	t->retries = p->busy_retries ? p->busy_retries : 16;
	tdx_nonpresent_init(kvm);
	__atomic_store_n(&kvm->tdx, t, __ATOMIC_RELEASE);
	s2_tdx_topup(kvm);
	__atomic_store_n(&kvm->gfn_direct_bits, 1ull << (p->shared_bit - S2_GFN_SHIFT),
			 __ATOMIC_RELEASE);
	return 0;
}

int kvm_tdx_init(struct kvm *kvm, const struct kvm_tdx_params *p)
{
	int r = kvm_tdx_init_untraced(kvm, p);

	if (p)
		S2_TRACE(kvm, "tdx_init", r, S2_TA_DEC("shared_bit", p->shared_bit),
			 S2_TA_DEC("busy_retries", p->busy_retries),
			 S2_TA_DEC("track_per_page", p->track_per_page));
	return r;
}

static S2_ALWAYS_INLINE int kvm_tdx_page_add_untraced(struct kvm *kvm, gfn_t gfn, hpa_t src)
{
	struct s2_tdx *t = kvm ? kvm->tdx : NULL;
	const struct s2_env *env;
	struct s2_page pg[S2_MAX_LEVELS] = { 0 };
	struct s2_change_acc acc;
	struct kvm_memory_slot slot;
	unsigned npg, used = 0;
	uint64_t gen;
	kvm_pfn_t pfn;
	int max = 1, r;

	if (!t || !t->p.ops->page_add || !src || (src & (TDX_PAGE - 1)) ||
	    (gfn >> (kvm->cfg.gpa_bits - 1 - S2_GFN_SHIFT)))
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	if (__atomic_load_n(&t->finalized, __ATOMIC_ACQUIRE) ||
	    !(kvm_get_memory_attributes(kvm, gfn) & KVM_MEMORY_ATTRIBUTE_PRIVATE) ||
	    s2_memslot_snapshot(kvm, gfn, &slot, &gen))
		return -EINVAL;
	env = kvm->env;
	r = t->p.ops->private_pfn(t->p.ctx, &slot, gfn, &pfn, &max);
	if (r)
		return r < 0 ? r : -EFAULT;
	npg = kvm->cfg.levels - 1u;
	for (unsigned i = 0; i < npg; i++) {
		pg[i].va = env->ops->alloc_table(env->ctx, TDX_PAIR_BYTES, &pg[i].pa);
		if (!pg[i].va) {
			r = -ENOMEM;
			goto out;
		}
	}
	/* The write side: nothing races the descent, so a frozen or
	 * present entry is a gfn already added (or faulted). */
	s2_acc_init(&acc);
	s2_mmu_write_lock(kvm);
	r = tdx_map(kvm, t, gfn, 1, (hpa_t)pfn << S2_GFN_SHIFT, pg, npg, &used, src);
	s2_mmu_write_unlock(kvm, &acc);
	if (r == RET_PF_FIXED) {
		tdx_add(&t->added, 1);
		r = 0;
	} else if (r >= 0) {
		r = r == RET_PF_SPURIOUS ? -EEXIST : -EBUSY;
	}
out:
	for (unsigned i = used; i < npg; i++)
		if (pg[i].va)
			env->ops->free_table(env->ctx, pg[i].va, pg[i].pa, TDX_PAIR_BYTES);
	if (r && t->p.ops->private_pfn_put)
		t->p.ops->private_pfn_put(t->p.ctx, pfn, 1);
	return r;
}

int kvm_tdx_page_add(struct kvm *kvm, gfn_t gfn, hpa_t src)
{
	int r = kvm_tdx_page_add_untraced(kvm, gfn, src);

	S2_TRACE(kvm, "tdx_page_add", r, S2_TA_HEX("gfn", gfn), S2_TA_HEX("src", src));
	return r;
}

static S2_ALWAYS_INLINE int kvm_tdx_finalized_untraced(struct kvm *kvm)
{
	if (!kvm || !kvm->tdx)
		return -EINVAL;
	__atomic_store_n(&kvm->tdx->finalized, true, __ATOMIC_RELEASE);
	return 0;
}

int kvm_tdx_finalized(struct kvm *kvm)
{
	int r = kvm_tdx_finalized_untraced(kvm);

	S2_TRACE0(kvm, "tdx_finalized", r);
	return r;
}

/*
 * Promote: each level-2 mirror table of [start, end) whose 512 leaves map
 * one 2 MiB-aligned run of pages, in gfns that are all private and inside
 * one memslot, is BLOCKed; one TRACK and kick round; then PAGE.PROMOTE
 * each. The module refuses (EPT_INVALID_PROMOTE_CONDITIONS) when the
 * guest has not accepted all 512 alike: that table is UNBLOCKed and stays.
 * The merged S-EPT page comes back (WBINVD) and its pair is freed.
 */
/* The promotions of @level over [start, end), write side of mmu_lock. */
static int tdx_collapse_level(struct kvm *kvm, struct s2_tdx *t, gfn_t start, gfn_t end, int level,
			      long *done)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	const uint64_t n2 = tdx_span(c, level) >> S2_GFN_SHIFT, cspan = tdx_span(c, level - 1);
	s2_pte_t *cand[16];
	gpa_t at[16];
	unsigned n = 0;
	int r = 0;

	for (gfn_t g = (start + n2 - 1) & ~(n2 - 1); g + n2 <= end && !r; g += n2) {
		gpa_t a = gfn_to_gpa(g);
		s2_pte_t *p = tdx_entry(kvm, t, a, level), e, *tbl;
		struct kvm_memory_slot slot;
		uint64_t gen;
		hpa_t base;
		unsigned i;

		e = p ? __atomic_load_n(p, __ATOMIC_ACQUIRE) : 0;
		if (!p || !fmt_is_present(c, e, level) || fmt_is_leaf(c, e, level))
			continue;
		tbl = tdx_va(kvm, fmt_table_hpa(c, e, level));
		base = fmt_leaf_hpa(c, tbl[0], level - 1);
		for (i = 0; i < 512; i++)
			if (!fmt_is_leaf(c, tbl[i], level - 1) ||
			    fmt_leaf_hpa(c, tbl[i], level - 1) != base + (hpa_t)i * cspan)
				break;
		if (i < 512 || (base & (tdx_span(c, level) - 1)) ||
		    !kvm_range_has_memory_attributes(kvm, g, g + n2,
						     KVM_MEMORY_ATTRIBUTE_PRIVATE) ||
		    s2_memslot_snapshot(kvm, g, &slot, &gen) ||
		    g + n2 > slot.base_gfn + slot.npages)
			continue;
		if ((r = tdx_call(kvm, t, TDX_RANGE_BLOCK, a, level, 0)))
			break;
		__atomic_store_n(p, FMT_FROZEN | fmt_table_hpa(c, e, level), __ATOMIC_RELEASE);
		cand[n] = p;
		at[n++] = a;
		if (n == 16 || g + 2 * n2 > end) {
			r = tdx_promote_blocked(kvm, t, level, cand, at, n, done);
			n = 0;
		}
	}
	if (n && !r)
		r = tdx_promote_blocked(kvm, t, level, cand, at, n, done);
	return r;
}

static S2_ALWAYS_INLINE long kvm_tdx_collapse_untraced(struct kvm *kvm, gfn_t start, gfn_t end)
{
	struct s2_tdx *t = kvm ? kvm->tdx : NULL;
	struct s2_change_acc acc;
	long done = 0;
	int r = 0;

	if (!t || start >= end || !t->p.ops->page_promote || !t->p.ops->range_unblock ||
	    (end > (1ull << (kvm->cfg.gpa_bits - 1 - S2_GFN_SHIFT))))
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	s2_acc_init(&acc);
	s2_mmu_write_lock(kvm);
	/* 4 KiB runs into 2 MiB leaves, then runs of 512 2 MiB leaves (those
	 * just made too) into 1 GiB leaves where the VM maps 1 GiB. */
	for (int level = 2; level <= TDX_MAX_LEAF && level <= kvm->max_leaf_level && !r; level++)
		r = tdx_collapse_level(kvm, t, start, end, level, &done);
	s2_mmu_write_unlock(kvm, &acc);
	return r ? r : done;
}

long kvm_tdx_collapse(struct kvm *kvm, gfn_t start, gfn_t end)
{
	long r = kvm_tdx_collapse_untraced(kvm, start, end);

	S2_TRACE(kvm, "tdx_collapse", r, S2_TA_HEX("gfn", start), S2_TA_HEX("end", end));
	return r;
}

int kvm_tdx_lookup_private(struct kvm *kvm, gfn_t gfn, hpa_t *hpa, int *level)
{
	const struct s2_fmt_cfg *c;
	s2_pte_t *tbl;
	int found = 0;

	if (!kvm || !kvm->tdx || !hpa || !level)
		return -EINVAL;
	c = &kvm->cfg;
	s2_mmu_read_lock(kvm);
	tbl = kvm->tdx->root;
	for (int l = c->levels; l >= 1; l--) {
		gpa_t gpa = gfn_to_gpa(gfn);
		s2_pte_t e = __atomic_load_n(&tbl[(gpa >> s2_level_shift(c, l)) & 511],
					     __ATOMIC_ACQUIRE);

		if (!fmt_is_present(c, e, l))
			break;
		if (fmt_is_leaf(c, e, l)) {
			*hpa = fmt_leaf_hpa(c, e, l) + (gpa & (tdx_span(c, l) - 1));
			*level = l;
			found = 1;
			break;
		}
		tbl = tdx_va(kvm, fmt_table_hpa(c, e, l));
	}
	s2_mmu_read_unlock_plain(kvm);
	return found;
}

int kvm_tdx_get_stats(struct kvm *kvm, struct kvm_tdx_stats *out)
{
	struct s2_tdx *t;

	if (!kvm || !out || !(t = kvm->tdx))
		return -EINVAL;
	for (int l = 0; l <= TDX_MAX_LEAF; l++)
		out->cur_private_leaves[l] =
			(uint64_t)__atomic_load_n(&t->leaves[l], __ATOMIC_RELAXED);
	out->cur_sept_pages = (uint64_t)__atomic_load_n(&t->sept_pages, __ATOMIC_RELAXED);
	out->seamcalls = __atomic_load_n(&t->seamcalls, __ATOMIC_RELAXED);
	out->busy = __atomic_load_n(&t->busy, __ATOMIC_RELAXED);
	out->tracks = __atomic_load_n(&t->tracks, __ATOMIC_RELAXED);
	out->kick_rounds = __atomic_load_n(&t->kicks, __ATOMIC_RELAXED);
	out->removed = __atomic_load_n(&t->removed, __ATOMIC_RELAXED);
	out->demoted = __atomic_load_n(&t->demoted, __ATOMIC_RELAXED);
	out->promoted = __atomic_load_n(&t->promoted, __ATOMIC_RELAXED);
	out->added = __atomic_load_n(&t->added, __ATOMIC_RELAXED);
	out->removed_whole = __atomic_load_n(&t->whole, __ATOMIC_RELAXED);
	return 0;
}
#endif
