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
#define TDX_MAX_LEAF 2 /* private leaves: 4 KiB and 2 MiB */

struct s2_tdx {
	struct kvm_tdx_params p;
	s2_pte_t *root;
	hpa_t root_pa;
	unsigned retries;
	int64_t leaves[TDX_MAX_LEAF + 1];
	int64_t sept_pages;
	uint64_t seamcalls, busy, tracks, kicks, removed;
	hpa_t dead_head; /* removed S-EPT pairs awaiting reclaim (teardown) */
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

static uint64_t tdx_call_once(struct s2_tdx *t, enum tdx_op op, gpa_t gpa, int level, hpa_t pa)
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
	}
	return S2_TDX_LIFECYCLE_STATE_INCORRECT;
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
		uint64_t st = tdx_call_once(t, op, gpa, level, pa);

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
		   struct s2_page *pg, unsigned npg, unsigned *used)
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
			st = tdx_call_once(t, TDX_PAGE_AUG, gpa & ~(span - 1), l, leaf);
			if (st) {
				__atomic_store_n(ptep, 0, __ATOMIC_RELEASE);
				goto failed;
			}
			__atomic_store_n(ptep, tdx_leaf(c, l, leaf), __ATOMIC_RELEASE);
			__atomic_fetch_add(&t->leaves[l], 1, __ATOMIC_RELAXED);
			return RET_PF_FIXED;
		}
		if (*used >= npg) {
			kvm_bug(kvm, "TDX: no table page for the mirror root at gfn", gfn);
			return -EIO;
		}
		if (!__atomic_compare_exchange_n(ptep, &old, FMT_FROZEN, false, __ATOMIC_ACQUIRE,
						 __ATOMIC_ACQUIRE))
			goto again;
		st = tdx_call_once(t, TDX_SEPT_ADD, gpa & ~(span - 1), l, pg[*used].pa + TDX_PAGE);
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

	if (level > TDX_MAX_LEAF)
		level = TDX_MAX_LEAF;
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
	/* Mirror and S-EPT pages, before the lock (the root is there). */
	npg = kvm->cfg.levels - (unsigned)level;
	for (unsigned i = 0; i < npg; i++) {
		pg[i].va = env->ops->alloc_table(env->ctx, TDX_PAIR_BYTES, &pg[i].pa);
		if (!pg[i].va) {
			r = -ENOMEM;
			goto out;
		}
	}
	s2_mmu_read_lock_vcpu(vcpu);
	if (s2_invalidate_retry(kvm, seq, gfn & ~(n - 1), (gfn & ~(n - 1)) + n) ||
	    __atomic_load_n(&kvm->memslots_gen, __ATOMIC_ACQUIRE) != gen)
		r = RET_PF_RETRY;
	else
		r = tdx_map(kvm, t, gfn, level, (hpa_t)pfn << S2_GFN_SHIFT, pg, npg, &used);
	s2_mmu_read_unlock_vcpu(vcpu);
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
	int tlevel; /* the table passes: level of the entries removed */
	uint64_t done;
	int err;
};

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
			hpa_t hpa = old & EPT_ADDR_MASK;

			if ((w->err = tdx_call(kvm, w->t, TDX_PAGE_REMOVE, a, l, 0)) ||
			    (w->err = tdx_call(kvm, w->t, TDX_PAGE_WBINVD, 0, l, hpa)))
				return;
			__atomic_store_n(ptep, 0, __ATOMIC_RELEASE);
			__atomic_fetch_sub(&w->t->leaves[l], 1, __ATOMIC_RELAXED);
			tdx_add(&w->t->removed, 1);
			if (w->t->p.ops->private_pfn_put)
				w->t->p.ops->private_pfn_put(w->t->p.ctx, hpa >> S2_GFN_SHIFT, l);
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
			 * (demotion first is left to do, docs/tdx.md). */
			if ((w->err = tdx_call(kvm, w->t, TDX_RANGE_BLOCK, a, l, 0)))
				return;
			__atomic_store_n(ptep, FMT_FROZEN | fmt_leaf_hpa(c, old, l),
					 __ATOMIC_RELEASE);
			w->done++;
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

/*
 * Remove the private leaves of [start, end): block the whole range, TRACK
 * once and kick once, then REMOVE and WBINVD each page and hand it back
 * (KVM tracks per page). Under the write side of mmu_lock, so no private
 * fault runs meanwhile and every frozen mirror entry is one this call
 * blocked.
 */
long s2_tdx_zap_private(struct kvm *kvm, gfn_t start, gfn_t end)
{
	struct s2_tdx *t = kvm->tdx;
	struct tdx_walk w = { .kvm = kvm, .t = t, .s = gfn_to_gpa(start), .e = gfn_to_gpa(end) };
	uint64_t span2;
	int r;

	if (!t)
		return 0;
	if ((r = tdx_pass(&w, TDX_BLOCK_LEAVES)))
		return r;
	if (!w.done)
		return 0;
	if ((r = tdx_track(kvm, t)))
		return r;
	/* Whole 2 MiB leaves were blocked: remove over their span. */
	span2 = tdx_span(&kvm->cfg, TDX_MAX_LEAF);
	w.s &= ~(span2 - 1);
	w.e = (w.e + span2 - 1) & ~(span2 - 1);
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
	if (!t->sept_pages)
		env->ops->free_table(env->ctx, t->root, t->root_pa, TDX_PAGE);
	kvm->tdx = NULL;
	env->ops->free(env->ctx, t);
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

int kvm_tdx_init(struct kvm *kvm, const struct kvm_tdx_params *p)
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
	__atomic_store_n(&kvm->gfn_direct_bits, 1ull << (p->shared_bit - S2_GFN_SHIFT),
			 __ATOMIC_RELEASE);
	return 0;
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
	return 0;
}
#endif
