/* SPDX-License-Identifier: MIT */
/*
 * The hot algorithms of the MMU, compiled once per format.
 *
 * fmt/<name>/instance.c includes its fmt.h, defines FMT_SYM and includes this
 * file, so every fmt_* call below is an inline of that format: the optimiser
 * sees the real bit operations and no indirect call is made per entry. The
 * instance exports `const struct s2_fmt_ops s2_fmt_ops_<FMT_SYM>`, which the
 * public API calls once per operation.
 *
 * Three pieces live here:
 *  - the change handler: every write of an entry goes through set_atomic()
 *    or set_locked(), which refuse what rule 1 forbids and record in a
 *    struct s2_change_acc what rule 2 says must be flushed;
 *  - the walker: one depth-first iteration over [start, end) that calls a
 *    visitor at leaves and before/after tables; zap, write-protect and age
 *    are visitors;
 *  - the fault install: one descent for one gfn with compare-and-exchange.
 */
#ifndef FMT_SYM
#error "define FMT_SYM before including core/mmu_tmpl.h"
#endif

#include "core/kvm_internal.h"
#include "fmt/defaults.h"

#define S2_CAT2(a, b) a##_##b
#define S2_CAT(a, b) S2_CAT2(a, b)
#define S2_FN(name) S2_CAT(name, FMT_SYM)

static inline s2_pte_t S2_FN(pte_load)(const s2_pte_t *ptep)
{
	/* Acquire: a table found through this entry is read after it. */
	return __atomic_load_n(ptep, __ATOMIC_ACQUIRE);
}

static inline unsigned S2_FN(index)(const struct s2_fmt_cfg *c, gpa_t gpa, int level)
{
	return (unsigned)(gpa >> s2_level_shift(c, level)) & ((1u << s2_level_bits(c, level)) - 1);
}

static inline s2_pte_t *S2_FN(table_va)(struct kvm *kvm, s2_pte_t pte, int level)
{
	return s2_phys_to_virt(kvm, fmt_table_hpa(&kvm->cfg, pte, level));
}

/* ------------------------------------------------------------------------ */
/* The change handler                                                        */
/* ------------------------------------------------------------------------ */

static inline bool S2_FN(is_leaf_at)(const struct s2_fmt_cfg *c, s2_pte_t pte, int level)
{
	return fmt_is_present(c, pte, level) && fmt_is_leaf(c, pte, level);
}

/*
 * A run of @n leaves at @level mapping @hpa, @hpa + @size, ... with the same
 * attributes: the format contract puts the output address in one field, so
 * inside a naturally aligned block leaf i is *@first + i * *@step, and
 * loops that build or compare whole tables add instead of encoding each
 * entry. Checked against the encoder at the far end of the run; false when
 * it disagrees, and the caller encodes every leaf.
 */
static inline bool S2_FN(leaf_run)(const struct s2_fmt_cfg *c, int level, hpa_t hpa, uint64_t size,
				   unsigned n, unsigned prot, unsigned mt, s2_pte_t *first,
				   s2_pte_t *step)
{
	s2_pte_t l0 = fmt_make_leaf(c, level, hpa, prot, mt);
	s2_pte_t st = fmt_make_leaf(c, level, hpa + size, prot, mt) - l0;

	if (fmt_make_leaf(c, level, hpa + (n - 1) * size, prot, mt) != l0 + (s2_pte_t)(n - 1) * st)
		return false;
	*first = l0;
	*step = st;
	return true;
}

/*
 * Rule 1: a present leaf never becomes a present leaf of another output
 * address in one step; that needs zap, flush, install. Everything else is a
 * legal single step (permission and A/D changes, zaps, leaf <-> table with
 * a flush owed).
 */
static inline bool S2_FN(change_allowed)(const struct s2_fmt_cfg *c, s2_pte_t old, s2_pte_t new,
					 int level)
{
	/* An access-tracked leaf still maps its pfn (a TLB may hold it). */
	if (fmt_is_access_tracked(c, old, level))
		old = fmt_restore_access_tracked(c, old, level);
	if (fmt_is_access_tracked(c, new, level))
		new = fmt_restore_access_tracked(c, new, level);
	if (!S2_FN(is_leaf_at)(c, old, level) || !S2_FN(is_leaf_at)(c, new, level))
		return true;
	return fmt_leaf_hpa(c, old, level) == fmt_leaf_hpa(c, new, level);
}

/*
 * Hardware dirty state must not vanish with its leaf (hole 5 of issue 10):
 * where a slot logs through the leaves' dirty bits (no PML), a leaf that
 * holds D and is zapped, split or cleaned outside a harvest carries the only
 * record of a write since the last one. True when @old holds such state and
 * @new (a leaf at the same place, or anything else) does not keep it; the
 * caller then records the leaf's pages. Costs one load per change in VMs
 * that never logged so.
 */
static S2_ALWAYS_INLINE bool S2_FN(dirty_lost)(struct kvm *kvm, const struct s2_change_acc *acc,
					       s2_pte_t old, s2_pte_t new, int level)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;

	if (s2_likely(!__atomic_load_n(&kvm->dirty.hw_scan, __ATOMIC_RELAXED)) || acc->reaped)
		return false;
	if (fmt_is_access_tracked(c, old, level))
		old = fmt_restore_access_tracked(c, old, level);
	if (!S2_FN(is_leaf_at)(c, old, level) || !fmt_is_dirty(c, old, level))
		return false;
	if (fmt_is_access_tracked(c, new, level))
		new = fmt_restore_access_tracked(c, new, level);
	return !S2_FN(is_leaf_at)(c, new, level) || !fmt_is_dirty(c, new, level);
}

static inline void S2_FN(record_if_dirty_lost)(struct kvm *kvm, const struct s2_change_acc *acc,
					       gfn_t gfn, s2_pte_t old, s2_pte_t new, int level)
{
	uint64_t pages = 1ull << (s2_level_shift(&kvm->cfg, level) - S2_GFN_SHIFT);

	if (s2_unlikely(S2_FN(dirty_lost)(kvm, acc, old, new, level)))
		s2_dirty_record_removed(kvm, gfn & ~(pages - 1), pages);
}

/*
 * Rule 2, and the bookkeeping: record what the change of the entry at
 * (@gfn, @level) from @old to @new owes. A zap of anything present owes a
 * flush of the range the entry covered; losing MMU-writable owes one even
 * if the leaf was already read-only in hardware (a stale writable TLB entry
 * may survive from before). Clearing Accessed, clearing hardware W for dirty
 * logging and refreshing a read-only leaf owe nothing here.
 *
 * An access-tracked value (fmt/defaults.h) counts as a present leaf: making
 * a leaf tracked or restoring it is like clearing or setting Accessed and
 * owes nothing, but zapping a tracked leaf owes a flush, since aging without
 * a flush may have left its translation in a TLB.
 */
static inline void S2_FN(account_change)(struct kvm *kvm, struct s2_change_acc *acc, gfn_t gfn,
					 s2_pte_t old, s2_pte_t new, int level)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	bool was_tracked = fmt_is_access_tracked(c, old, level);
	bool is_tracked = fmt_is_access_tracked(c, new, level);
	bool was_present = was_tracked || fmt_is_present(c, old, level);
	bool is_present = is_tracked || fmt_is_present(c, new, level);
	bool was_leaf = was_tracked || (was_present && fmt_is_leaf(c, old, level));
	bool is_leaf = is_tracked || (is_present && fmt_is_leaf(c, new, level));
	uint64_t pages = 1ull << (s2_level_shift(c, level) - S2_GFN_SHIFT);
	gfn_t base = gfn & ~(pages - 1);

	S2_FN(record_if_dirty_lost)(kvm, acc, gfn, old, new, level);
	if (was_leaf != is_leaf || (was_leaf && !is_present)) {
		if (was_leaf)
			acc->leaves[level]--;
		if (is_leaf)
			acc->leaves[level]++;
	}
	if (was_present && !is_present) {
		s2_acc_need_flush(acc, base, base + pages);
		if (was_leaf)
			acc->zapped++;
		return;
	}
	if (was_leaf && !is_leaf) { /* a leaf replaced by a table: split */
		s2_acc_need_flush(acc, base, base + pages);
		return;
	}
	/* A table replaced by a leaf (collapse): the unlinked table is freed
	 * after RCU, and walks cached from it must be gone before it is reused. */
	if (was_present && !was_leaf && is_leaf) {
		s2_acc_need_flush(acc, base, base + pages);
		return;
	}
	if (was_tracked)
		old = fmt_restore_access_tracked(c, old, level);
	if (is_tracked)
		new = fmt_restore_access_tracked(c, new, level);
	if (was_leaf && is_leaf && fmt_is_mmu_writable(c, old, level) &&
	    !fmt_is_mmu_writable(c, new, level))
		s2_acc_need_flush(acc, base, base + pages);
}

static inline void S2_FN(refuse)(struct kvm *kvm, gfn_t gfn)
{
	__atomic_fetch_add(&kvm->stat_refused, 1, __ATOMIC_RELAXED);
	kvm_bug(kvm, "refused to replace a present leaf's pfn without a zap at gfn", gfn);
}

/*
 * Install @new over *@old with compare-and-exchange, for paths that hold the
 * read side of mmu_lock. Returns 0; -EBUSY when the entry changed under us,
 * with *@old refreshed so the caller retries on the fresh value; -EIO when
 * the change is refused (rule 1; the VM is then bugged).
 */
static inline S2_MUST_CHECK int S2_FN(set_atomic)(struct kvm *kvm, struct s2_change_acc *acc,
						  s2_pte_t *ptep, s2_pte_t *old, s2_pte_t new,
						  gfn_t gfn, int level)
{
	if (S2_ENABLED(CONFIG_S2_DEBUG) && s2_unlikely(!s2_mmu_lock_held(kvm))) {
		kvm_bug(kvm, "entry written with set_atomic without mmu_lock held, gfn", gfn);
		return -EIO;
	}
	if (s2_unlikely(!S2_FN(change_allowed)(&kvm->cfg, *old, new, level))) {
		S2_FN(refuse)(kvm, gfn);
		return -EIO;
	}
	if (!__atomic_compare_exchange_n(ptep, old, new, false, __ATOMIC_RELEASE, __ATOMIC_ACQUIRE))
		return -EBUSY;
	S2_FN(account_change)(kvm, acc, gfn, *old, new, level);
	return 0;
}

/*
 * Write @new under the write side of mmu_lock. The exchange is atomic
 * because hardware may still set A/D in the old value until the flush; the
 * value actually replaced is returned. Returns -EIO when refused (rule 1).
 */
static inline S2_MUST_CHECK int S2_FN(set_locked)(struct kvm *kvm, struct s2_change_acc *acc,
						  s2_pte_t *ptep, s2_pte_t old, s2_pte_t new,
						  gfn_t gfn, int level, s2_pte_t *replaced)
{
	if (S2_ENABLED(CONFIG_S2_DEBUG) &&
	    s2_unlikely(!s2_rwlock_is_write_locked(&kvm->mmu_lock))) {
		kvm_bug(kvm, "entry written with set_locked without mmu_lock held for write, gfn",
			gfn);
		return -EIO;
	}
	if (s2_unlikely(!S2_FN(change_allowed)(&kvm->cfg, old, new, level))) {
		S2_FN(refuse)(kvm, gfn);
		return -EIO;
	}
	old = __atomic_exchange_n(ptep, new, __ATOMIC_ACQ_REL);
	S2_FN(account_change)(kvm, acc, gfn, old, new, level);
	if (replaced)
		*replaced = old;
	return 0;
}

/*
 * The two hot cases of the change handler, with their rules worked out once
 * here rather than per entry in account_change():
 *
 * set_fresh() installs over an entry that is not present, not access-tracked
 * and not frozen (the caller checked): rule 1 cannot apply and rule 2 owes
 * nothing; the caller counts the leaf or table it made. Compare-and-exchange
 * under the read side of mmu_lock; false (with *@old refreshed) on a lost race.
 *
 * zap_locked() makes a present or access-tracked leaf non-present under the
 * write side: always allowed, and it owes a flush of the leaf's range. The
 * exchange is atomic because hardware may still set A/D until that flush.
 */
static inline bool S2_FN(set_fresh)(struct kvm *kvm, s2_pte_t *ptep, s2_pte_t *old, s2_pte_t new)
{
	(void)kvm;
	return __atomic_compare_exchange_n(ptep, old, new, false, __ATOMIC_RELEASE,
					   __ATOMIC_ACQUIRE);
}

static inline int S2_FN(zap_locked)(struct kvm *kvm, struct s2_change_acc *acc, s2_pte_t *ptep,
				    gfn_t gfn, int level)
{
	uint64_t pages = 1ull << (s2_level_shift(&kvm->cfg, level) - S2_GFN_SHIFT);
	gfn_t base = gfn & ~(pages - 1);

	if (S2_ENABLED(CONFIG_S2_DEBUG) &&
	    s2_unlikely(!s2_rwlock_is_write_locked(&kvm->mmu_lock))) {
		kvm_bug(kvm, "leaf zapped without mmu_lock held for write, gfn", gfn);
		return -EIO;
	}
	const s2_pte_t np = fmt_nonpresent(&kvm->cfg);

	S2_FN(record_if_dirty_lost)
	(kvm, acc, gfn, __atomic_exchange_n(ptep, np, __ATOMIC_ACQ_REL), np, level);
	acc->leaves[level]--;
	acc->zapped++;
	s2_acc_need_flush(acc, base, base + pages);
	return 0;
}

/* Whether hardware has nothing left to write in a leaf (core/dirty_tmpl.h). */
static S2_ALWAYS_INLINE bool S2_FN(hw_quiet)(const struct s2_fmt_cfg *c, s2_pte_t pte, int level);

/*
 * zap_table_locked() is zap_locked() for every leaf of the level-1 table @t
 * (mapping from @gfn) at once, when a zap under the write side covers all of
 * it: the same counts, and one flush owed for the table's span.
 *
 * The old value of a zapped leaf is read for one thing only: the hardware
 * dirty state a slot logging through the leaves' own D bits must not lose
 * (dirty_lost(), docs/rules.md "Hardware dirty state is never dropped"; the
 * host page was marked dirty when the fault mapped it writable, as
 * release_pfn() says). In a VM that logs so (scan), a leaf hardware may
 * still write (young writable clean, or not young) is taken with an
 * exchange, so a D set until the flush is seen; one it has nothing left to
 * write in (hw_quiet(), tested as masks derived once per table, as aging
 * does) with a plain store. Everywhere else every leaf takes a plain store:
 * A/D hardware sets between the load and the store would be overwritten by
 * the exchange too, and nothing reads them (docs/rules.md "Aging" says why
 * plain stores are safe under the write side).
 *
 * Without scan, the common entry costs one and-compare: a leaf that passes
 * the format's quick test (FMT_LEAF1_BITS) or an access-tracked one that
 * passes FMT_TRACKED1_* (whichever the table's first entry passes goes
 * first) is stored over and nothing else; zap_entry_slow() decides every
 * other entry with the full tests. The count is the table's size less the
 * entries left (empty, MMIO), so the quick path counts nothing. Returns the
 * leaves zapped.
 */
static S2_ALWAYS_INLINE int S2_FN(zap_entry_slow)(struct kvm *kvm, struct s2_change_acc *acc,
						  const struct s2_fmt_cfg *c, s2_pte_t *p,
						  s2_pte_t e, gfn_t gfn, bool scan, s2_pte_t qa,
						  s2_pte_t qw, s2_pte_t qd)
{
	const s2_pte_t np = fmt_nonpresent(c);

	if (!fmt_is_present(c, e, 1) && !fmt_is_access_tracked(c, e, 1))
		return 0;
	if (!scan) {
		__atomic_store_n(p, np, __ATOMIC_RELAXED);
		return 1;
	}
	if (!(c->flags & S2_FMTF_AD) || ((e & qa) && (!qd || (e & qd) || !(e & qw)))) {
		if (S2_ENABLED(CONFIG_S2_DEBUG) && (c->flags & S2_FMTF_AD) &&
		    s2_unlikely(!S2_FN(hw_quiet)(c, e, 1))) {
			kvm_bug(kvm, "zap: Accessed, Dirty or W is not the bits derived, gfn", gfn);
			return -EIO;
		}
		__atomic_store_n(p, np, __ATOMIC_RELAXED);
	} else {
		e = __atomic_exchange_n(p, np, __ATOMIC_ACQ_REL);
	}
	S2_FN(record_if_dirty_lost)(kvm, acc, gfn, e, np, 1);
	return 1;
}

static __attribute__((noinline)) uint64_t
S2_FN(zap_table_locked)(struct kvm *kvm, struct s2_change_acc *acc, s2_pte_t *t, gfn_t gfn)
{
	/* A local copy: the stores below cannot change it, so what the
	 * format's tests read stays in registers. */
	const struct s2_fmt_cfg cfg = kvm->cfg, *c = &cfg;
	const unsigned n = 1u << c->bits_per_level;
	const s2_pte_t np = fmt_nonpresent(c);
	const unsigned ra = S2_PROT_R | S2_PROT_ACCESSED, rwa = ra | S2_PROT_W;
	const s2_pte_t qa = fmt_accessed_mask(c, 1);
	const s2_pte_t qw =
		fmt_make_leaf(c, 1, 0, rwa, S2_MT_WB) ^ fmt_make_leaf(c, 1, 0, ra, S2_MT_WB);
	const s2_pte_t qd = fmt_make_leaf(c, 1, 0, rwa | S2_PROT_DIRTY, S2_MT_WB) ^
			    fmt_make_leaf(c, 1, 0, rwa, S2_MT_WB);
	/* Sticky, and set only by a slot that starts logging: once per table
	 * is as good as once per leaf (dirty_lost() reads it per change). */
	const bool scan = __atomic_load_n(&kvm->dirty.hw_scan, __ATOMIC_RELAXED) && !acc->reaped;
	/* The quick tests, none with scan; (e & m) == 1 never holds for m == 0. */
	s2_pte_t lm = scan ? 0 : FMT_LEAF1_BITS,
		 lv = FMT_LEAF1_BITS != 0 && !scan ? FMT_LEAF1_BITS : 1;
	s2_pte_t tm = scan ? 0 : FMT_TRACKED1_MASK, tv = scan ? 1 : FMT_TRACKED1_VALUE;
	gfn_t step = (gfn_t)1 << (c->page_shift - S2_GFN_SHIFT);
	s2_pte_t *p = t, *const end = t + n;
	uint64_t kept = 0;

	if (S2_ENABLED(CONFIG_S2_DEBUG) &&
	    s2_unlikely(!s2_rwlock_is_write_locked(&kvm->mmu_lock))) {
		kvm_bug(kvm, "table zapped without mmu_lock held for write, gfn", gfn);
		return 0;
	}
	/* Test first for what the first entry is: a table aged by access
	 * tracking holds mostly tracked leaves, others mostly present ones. */
	if ((__atomic_load_n(t, __ATOMIC_RELAXED) & tm) == tv) {
		s2_pte_t m = lm, v = lv;

		lm = tm, lv = tv, tm = m, tv = v;
	}
	for (; p < end; p++) {
		s2_pte_t e = __atomic_load_n(p, __ATOMIC_RELAXED);
		int r;

		if (s2_likely((e & lm) == lv) || (e & tm) == tv) {
			if (S2_ENABLED(CONFIG_S2_DEBUG) &&
			    s2_unlikely(!fmt_is_present(c, e, 1) &&
					!fmt_is_access_tracked(c, e, 1))) {
				kvm_bug(kvm,
					"zap: the format's quick test passed an empty entry, gfn",
					gfn + (gfn_t)(p - t) * step);
				kept += (uint64_t)(end - p);
				break;
			}
			__atomic_store_n(p, np, __ATOMIC_RELAXED);
			continue;
		}
		r = S2_FN(zap_entry_slow)(kvm, acc, c, p, e, gfn + (gfn_t)(p - t) * step, scan, qa,
					  qw, qd);
		if (s2_unlikely(r < 0)) { /* the VM is bugged: stop, count what was done */
			kept += (uint64_t)(end - p);
			break;
		}
		kept += (uint64_t)!r;
	}
	uint64_t zapped = n - kept;

	if (zapped) {
		uint64_t pages = 1ull << (s2_level_shift(c, 2) - S2_GFN_SHIFT);

		acc->leaves[1] -= (int64_t)zapped;
		acc->zapped += zapped;
		s2_acc_need_flush(acc, gfn, gfn + pages);
	}
	return zapped;
}

/*
 * Replace a present entry by one of another size or output address (split,
 * collapse). Where the format needs break-before-make (rules 5 and 7): freeze
 * the entry with compare-and-exchange, flush what the old entry may have left
 * in TLBs through the flush entry point (the IPA range for a leaf, the whole
 * VM for a table), clean the memory a new leaf maps, then publish @new; the
 * flush is done, not owed. Elsewhere one compare-and-exchange, with the flush
 * owed to @acc. Returns 0; -EBUSY with *@old refreshed; -EIO when refused.
 */
static inline S2_MUST_CHECK int S2_FN(set_bbm)(struct kvm *kvm, struct s2_change_acc *acc,
					       s2_pte_t *ptep, s2_pte_t *old, s2_pte_t new,
					       gfn_t gfn, int level)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	uint64_t pages = 1ull << (s2_level_shift(c, level) - S2_GFN_SHIFT);
	gfn_t base = gfn & ~(pages - 1);
	struct s2_change_acc done;

	if (!FMT_NEEDS_BBM || !fmt_is_present(c, *old, level))
		return S2_FN(set_atomic)(kvm, acc, ptep, old, new, gfn, level);
	if (s2_unlikely(!S2_FN(change_allowed)(c, *old, new, level))) {
		S2_FN(refuse)(kvm, gfn);
		return -EIO;
	}
	if (!__atomic_compare_exchange_n(ptep, old, FMT_FROZEN, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return -EBUSY;
	if (fmt_is_leaf(c, *old, level))
		kvm_flush_remote_tlbs_range(kvm, base, pages);
	else
		kvm_flush_remote_tlbs(kvm);
	if (fmt_is_present(c, new, level) && fmt_is_leaf(c, new, level))
		fmt_cache_clean(c, kvm->env, fmt_leaf_hpa(c, new, level), pages << S2_GFN_SHIFT);
	__atomic_store_n(ptep, new, __ATOMIC_RELEASE);
	/* Count the change; its flush has been issued already. */
	s2_acc_init(&done);
	done.reaped = acc->reaped;
	S2_FN(account_change)(kvm, &done, gfn, *old, new, level);
	for (int l = 1; l <= S2_MAX_LEVELS; l++)
		acc->leaves[l] += done.leaves[l];
	acc->zapped += done.zapped;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The walker                                                                */
/* ------------------------------------------------------------------------ */

enum {
	S2_VISIT_LEAF = 1u << 0,       /* a present leaf overlapping the range */
	S2_VISIT_TABLE_PRE = 1u << 1,  /* a table entry, before its children */
	S2_VISIT_TABLE_POST = 1u << 2, /* a table entry, after its children */
	S2_VISIT_TRACKED = 1u << 3,    /* an access-tracked leaf (not present to
					  hardware, still mapped) */
};

struct s2_visit {
	s2_pte_t *ptep;
	s2_pte_t old;
	gpa_t addr; /* start of the span the entry covers */
	int level;
	unsigned what; /* S2_VISIT_* */
};

/* A visitor returns 0 to go on, >0 to stop the walk (returned), <0 error. */
typedef long (*s2_visitor_fn)(struct kvm *kvm, struct s2_range_op *op, struct s2_visit *v);

/*
 * A run visitor takes a leaf table's part of the range at once: the entries
 * [ptep, last), the first mapping from @span, in one local loop with what
 * it needs in registers, instead of one visitor call per entry. It sees
 * every entry (present or not) and returns as a visitor does. Under a
 * leaf budget (op->budget, lock breaking) the walker hands it at most the
 * budget's rest, counting every entry it hands over as a leaf, and yields
 * before the next entry once the budget is spent (dirty logging's start).
 */
typedef long (*s2_run_fn)(struct kvm *kvm, struct s2_range_op *op, s2_pte_t *ptep, s2_pte_t *last,
			  gpa_t span);

/*
 * Depth-first over every entry whose span overlaps [start, end) (byte
 * addresses). The iteration keeps one table pointer per level: step down
 * into a table, step sideways to the next entry, step up when an index wraps
 * or the range ends, calling TABLE_POST on the way up. Always inlined with a
 * constant visitor, so each operation compiles to its own loop.
 */
static S2_ALWAYS_INLINE long S2_FN(walk_run)(struct kvm *kvm, struct s2_range_op *op, gpa_t start,
					     gpa_t end, unsigned what, s2_visitor_fn fn,
					     s2_run_fn run)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	const int top = c->levels;
	s2_pte_t *tbl[S2_MAX_LEVELS + 2];
	unsigned sh[S2_MAX_LEVELS + 2];
	uint64_t mask[S2_MAX_LEVELS + 2];
	int level = top;
	gpa_t addr = start;
	long r;

	/* Shift and index mask per level, once per walk rather than per entry. */
	for (int l = 1; l <= top; l++) {
		sh[l] = s2_level_shift(c, l);
		mask[l] = (1ull << s2_level_bits(c, l)) - 1;
	}
	sh[top + 1] = 64;
	tbl[top] = op->root->pt;
	for (;;) {
		unsigned shift = sh[level];
		s2_pte_t *ptep = &tbl[level][(addr >> shift) & mask[level]];
		gpa_t span = addr & ~((1ull << shift) - 1);
		s2_pte_t old;

		if (level == 1) {
			/*
			 * A leaf table holds leaves or nothing: run through its
			 * part of the range in one tight loop (the hot loop of
			 * every zap, age and protect).
			 */
			gpa_t tend = (span | ((1ull << sh[2]) - 1)) + 1;
			s2_pte_t *last =
				ptep +
				(((end < tend ? end : tend) - span + (1ull << shift) - 1) >> shift);

			if (run) {
				/* With a budget the run takes at most what is
				 * left of it, counting every entry (a bound on
				 * the leaves), and the next entry yields. */
				if (op->budget) {
					uint64_t n = (uint64_t)(last - ptep);

					if (op->visited >= op->budget) {
						op->resume = span;
						return S2_WALK_YIELD;
					}
					if (n > op->budget - op->visited)
						n = op->budget - op->visited;
					last = ptep + n;
					op->visited += n;
				}
				r = run(kvm, op, ptep, last, span);
				if (r)
					return r;
				addr = span + ((gpa_t)(last - ptep) << shift);
				goto step_up;
			}
			for (; ptep < last; ptep++, span += 1ull << shift) {
				old = S2_FN(pte_load)(ptep);
				/* Lock breaking: at most op->budget leaves per
				 * hold; the driver decides whether to yield. */
				if (op->budget && (fmt_is_present(c, old, 1) ||
						   fmt_is_access_tracked(c, old, 1))) {
					if (op->visited >= op->budget) {
						op->resume = span;
						return S2_WALK_YIELD;
					}
					op->visited++;
				}
				if (fmt_is_present(c, old, 1)) {
					if (what & S2_VISIT_LEAF) {
						struct s2_visit v = { ptep, old, span, 1,
								      S2_VISIT_LEAF };

						r = fn(kvm, op, &v);
						if (r)
							return r;
					}
				} else if ((what & S2_VISIT_TRACKED) &&
					   fmt_is_access_tracked(c, old, 1)) {
					struct s2_visit v = { ptep, old, span, 1,
							      S2_VISIT_TRACKED };

					r = fn(kvm, op, &v);
					if (r)
						return r;
				}
			}
			addr = span;
			goto step_up;
		}
		old = S2_FN(pte_load)(ptep);
		if (fmt_is_present(c, old, level)) {
			if (level > 1 && !fmt_is_leaf(c, old, level)) {
				if (what & S2_VISIT_TABLE_PRE) {
					struct s2_visit v = { ptep, old, span, level,
							      S2_VISIT_TABLE_PRE };
					r = fn(kvm, op, &v);
					if (r)
						return r;
					old = S2_FN(pte_load)(ptep);
				}
				if (fmt_is_present(c, old, level) && !fmt_is_leaf(c, old, level)) {
					tbl[level - 1] = S2_FN(table_va)(kvm, old, level);
					level--;
					continue;
				}
			} else if (what & S2_VISIT_LEAF) {
				struct s2_visit v = { ptep, old, span, level, S2_VISIT_LEAF };

				if (op->budget) {
					if (op->visited >= op->budget) {
						op->resume = span;
						return S2_WALK_YIELD;
					}
					op->visited++;
				}
				r = fn(kvm, op, &v);
				if (r)
					return r;
			}
		} else if ((what & S2_VISIT_TRACKED) && fmt_is_access_tracked(c, old, level)) {
			struct s2_visit v = { ptep, old, span, level, S2_VISIT_TRACKED };

			if (op->budget) {
				if (op->visited >= op->budget) {
					op->resume = span;
					return S2_WALK_YIELD;
				}
				op->visited++;
			}

			r = fn(kvm, op, &v);
			if (r)
				return r;
		}
		/* Step sideways; step up while the table is done or the range ended. */
		addr = span + (1ull << shift);
step_up:
		while (level < top) {
			unsigned up_shift = sh[level + 1];
			bool table_done = !(addr & ((1ull << up_shift) - 1));

			if (!table_done && addr < end)
				break;
			level++;
			if (what & S2_VISIT_TABLE_POST) {
				gpa_t tspan = (addr - 1) & ~((1ull << up_shift) - 1);
				s2_pte_t *pp = &tbl[level][(tspan >> sh[level]) & mask[level]];
				struct s2_visit v = { pp, S2_FN(pte_load)(pp), tspan, level,
						      S2_VISIT_TABLE_POST };

				r = fn(kvm, op, &v);
				if (r)
					return r;
			}
		}
		if (addr >= end)
			return 0;
	}
}

/* The walk with a visitor per entry. */
static S2_ALWAYS_INLINE long S2_FN(walk)(struct kvm *kvm, struct s2_range_op *op, gpa_t start,
					 gpa_t end, unsigned what, s2_visitor_fn fn)
{
	return S2_FN(walk_run)(kvm, op, start, end, what, fn, NULL);
}

/* ---- zap ---- */

/* Unlink the (now empty) table under v->ptep and queue it for freeing. */
static inline long S2_FN(unlink_table)(struct kvm *kvm, struct s2_range_op *op, struct s2_visit *v)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	s2_pte_t *child = S2_FN(table_va)(kvm, v->old, v->level);
	hpa_t pa = fmt_table_hpa(c, v->old, v->level);
	s2_pte_t replaced;

	if (S2_FN(set_locked)(kvm, op->acc, v->ptep, v->old, fmt_nonpresent(c), gpa_to_gfn(v->addr),
			      v->level, &replaced))
		return -EIO;
	/*
	 * Link the table into the free list through its first entry, as a
	 * frozen value: a walker that still holds a pointer to it (until the
	 * grace period) sees a non-present, frozen entry and retries.
	 */
	__atomic_store_n(&child[0], FMT_FROZEN | fmt_nonpresent(c) | op->acc->free_head,
			 __ATOMIC_RELEASE);
	op->acc->free_head = pa;
	op->acc->free_nr++;
	op->acc->table_pages -= (int64_t)(s2_table_bytes(c) >> 12);
	return 0;
}

static inline bool S2_FN(table_empty)(struct kvm *kvm, s2_pte_t table, int level)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	const s2_pte_t *t = S2_FN(table_va)(kvm, table, level);
	unsigned n = 1u << c->bits_per_level;

	for (unsigned i = 0; i < n; i++) {
		s2_pte_t e = __atomic_load_n(&t[i], __ATOMIC_RELAXED);

		if (fmt_is_present(c, e, level - 1) || fmt_is_access_tracked(c, e, level - 1))
			return false;
	}
	return true;
}

static S2_ALWAYS_INLINE long S2_FN(zap_visit)(struct kvm *kvm, struct s2_range_op *op,
					      struct s2_visit *v)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;

	if (v->what == S2_VISIT_TABLE_PRE) {
		/* A table of level-1 leaves wholly inside the range: sweep it
		 * in one loop and unlink it, rather than visit each leaf. */
		uint64_t span = 1ull << s2_level_shift(c, 2);

		if (v->level != 2 || v->addr < gfn_to_gpa(op->start) ||
		    v->addr + span > gfn_to_gpa(op->end))
			return 0;
		/* The sweep counts as a table's worth of leaves; past the
		 * budget the walk goes leaf by leaf (and yields on time). */
		if (op->budget) {
			uint64_t n = 1ull << c->bits_per_level;

			if (op->visited + n > op->budget)
				return 0;
			op->visited += n;
		}
		op->result += (long)S2_FN(zap_table_locked)(
			kvm, op->acc, S2_FN(table_va)(kvm, v->old, 2), gpa_to_gfn(v->addr));
		return S2_FN(unlink_table)(kvm, op, v);
	}
	if (v->what == S2_VISIT_LEAF || v->what == S2_VISIT_TRACKED) {
		if (S2_FN(zap_locked)(kvm, op->acc, v->ptep, gpa_to_gfn(v->addr), v->level))
			return -EIO;
		op->result++;
		return 0;
	}
	/* TABLE_POST: free the table if it is empty now. Fully covered
	 * tables are empty by construction (every child was just zapped under
	 * the write lock); partly covered ones are scanned. */
	if (!fmt_is_present(c, v->old, v->level) || fmt_is_leaf(c, v->old, v->level))
		return 0;
	uint64_t span = 1ull << s2_level_shift(c, v->level);
	gpa_t s = gfn_to_gpa(op->start), e = gfn_to_gpa(op->end);
	bool covered = v->addr >= s && v->addr + span <= e;

	if (!covered && !S2_FN(table_empty)(kvm, v->old, v->level))
		return 0;
	return S2_FN(unlink_table)(kvm, op, v);
}

/* ---- teardown of an obsolete root ---- */

/*
 * Empty an invalid root (S2_RANGE_TEARDOWN, the read side of mmu_lock): no
 * fault installs into it (faults check the root under mmu_lock and retry),
 * no walker visits it (they skip invalid roots) and no vcpu runs on it (each
 * reloaded, and flushes the root it loads). So its entries are cleared with
 * plain exchanges that owe no flush; leaves are counted as removed, and
 * hardware dirty state they hold is recorded first, as a zap would.
 */
static long S2_FN(teardown_visit)(struct kvm *kvm, struct s2_range_op *op, struct s2_visit *v)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	struct s2_change_acc *acc = op->acc;
	s2_pte_t old;

	if (v->what == S2_VISIT_LEAF || v->what == S2_VISIT_TRACKED) {
		old = __atomic_exchange_n(v->ptep, fmt_nonpresent(c), __ATOMIC_ACQ_REL);
		S2_FN(record_if_dirty_lost)
		(kvm, acc, gpa_to_gfn(v->addr), old, fmt_nonpresent(c), v->level);
		acc->leaves[v->level]--;
		acc->zapped++;
		op->result++;
		return 0;
	}
	if (v->what != S2_VISIT_TABLE_POST || !fmt_is_present(c, v->old, v->level) ||
	    fmt_is_leaf(c, v->old, v->level))
		return 0;
	/* Every child went before we came back up: unlink and queue it. */
	s2_pte_t *child = S2_FN(table_va)(kvm, v->old, v->level);

	__atomic_store_n(v->ptep, fmt_nonpresent(c), __ATOMIC_RELEASE);
	__atomic_store_n(&child[0], FMT_FROZEN | fmt_nonpresent(c) | acc->free_head,
			 __ATOMIC_RELEASE);
	acc->free_head = fmt_table_hpa(c, v->old, v->level);
	acc->free_nr++;
	acc->table_pages -= (int64_t)(s2_table_bytes(c) >> 12);
	return 0;
}

/* ---- write-protect ---- */

/*
 * The value wrprotect_visit() gives the leaf @old (S2_VISIT_TRACKED when
 * @tracked): W and, with @mmu, MMU-writable taken away. Returns false when
 * the leaf keeps its value.
 */
static S2_ALWAYS_INLINE bool S2_FN(wrprotect_new)(const struct s2_fmt_cfg *c, s2_pte_t old,
						  int level, bool tracked, bool mmu, s2_pte_t *out)
{
	s2_pte_t new = old;

	if (tracked) {
		/* Never writable in hardware; only MMU-writable can be lost. */
		s2_pte_t leaf = fmt_restore_access_tracked(c, old, level);

		if (!mmu || !fmt_is_mmu_writable(c, leaf, level))
			return false;
		leaf = fmt_leaf_set_prot(c, leaf, level,
					 fmt_leaf_prot(c, leaf, level) &
						 ~(S2_PROT_W | S2_PROT_MMU_WRITABLE));
		new = fmt_mk_access_tracked(c, leaf, level);
	} else if (mmu) {
		if (!fmt_is_mmu_writable(c, new, level))
			return false;
		new = fmt_leaf_set_prot(c, new, level,
					fmt_leaf_prot(c, new, level) &
						~(S2_PROT_W | S2_PROT_MMU_WRITABLE));
	} else {
		if (!fmt_is_writable(c, new, level))
			return false;
		new = fmt_wrprotect(c, new, level);
	}
	*out = new;
	return true;
}

static long S2_FN(wrprotect_visit)(struct kvm *kvm, struct s2_range_op *op, struct s2_visit *v)
{
	s2_pte_t new;

	if (!S2_FN(wrprotect_new)(&kvm->cfg, v->old, v->level, v->what == S2_VISIT_TRACKED,
				  op->kind == S2_RANGE_WRPROTECT_MMU, &new))
		return 0;
	if (S2_FN(set_locked)(kvm, op->acc, v->ptep, v->old, new, gpa_to_gfn(v->addr), v->level,
			      NULL))
		return -EIO;
	op->result++;
	return 0;
}

/*
 * The fast case of a run that flips the same bits of every leaf with a
 * pattern's attributes (wrprotect_run(), protect_run()): from @ptep, four
 * entries at a time while all four have @fin outside their address bits
 * (@keep holds the rest), each gets old ^ @flip with a plain store. The
 * four stores follow the four loads: the caller ensures hardware writes no
 * entry with these attributes. Nothing is done without a pattern (@flip 0;
 * @fin is then ~0, which the four-entry test would not reject). Debug
 * builds ask @ok(@arg, entry, old, new) about each change first and stop
 * before four of which one is refused, for the caller's one-entry loop to
 * report it. Returns the first entry not done (at most 3 before @last, or
 * one that does not match).
 */
typedef bool (*s2_flip_ok_fn)(const void *arg, const s2_pte_t *ptep, s2_pte_t old, s2_pte_t new);

static S2_ALWAYS_INLINE s2_pte_t *S2_FN(flip_fours)(s2_pte_t *ptep, s2_pte_t *last, s2_pte_t keep,
						    s2_pte_t fin, s2_pte_t flip, s2_flip_ok_fn ok,
						    const void *arg)
{
	while (flip && last - ptep >= 4) {
		s2_pte_t e0 = __atomic_load_n(&ptep[0], __ATOMIC_RELAXED);
		s2_pte_t e1 = __atomic_load_n(&ptep[1], __ATOMIC_RELAXED);
		s2_pte_t e2 = __atomic_load_n(&ptep[2], __ATOMIC_RELAXED);
		s2_pte_t e3 = __atomic_load_n(&ptep[3], __ATOMIC_RELAXED);

		if (((e0 ^ fin) | (e1 ^ fin) | (e2 ^ fin) | (e3 ^ fin)) & keep)
			break;
		if (S2_ENABLED(CONFIG_S2_DEBUG) &&
		    !(ok(arg, ptep, e0, e0 ^ flip) && ok(arg, ptep + 1, e1, e1 ^ flip) &&
		      ok(arg, ptep + 2, e2, e2 ^ flip) && ok(arg, ptep + 3, e3, e3 ^ flip)))
			break;
		__atomic_store_n(&ptep[0], e0 ^ flip, __ATOMIC_RELAXED);
		__atomic_store_n(&ptep[1], e1 ^ flip, __ATOMIC_RELAXED);
		__atomic_store_n(&ptep[2], e2 ^ flip, __ATOMIC_RELAXED);
		__atomic_store_n(&ptep[3], e3 ^ flip, __ATOMIC_RELAXED);
		ptep += 4;
	}
	return ptep;
}

/* wrprotect_run()'s check for flip_fours(): @arg is the format. */
static S2_ALWAYS_INLINE bool S2_FN(wrprotect_ok)(const void *arg, const s2_pte_t *ptep,
						 s2_pte_t old, s2_pte_t new)
{
	(void)ptep;
	return S2_FN(change_allowed)(arg, old, new, 1);
}

/*
 * S2_RANGE_WRPROTECT_MMU (kvm_mmu_wrprotect_range(), write tracking) over a
 * leaf table's run at once. A leaf whose attributes (every bit but the
 * address) are those of the last leaf this run changed with a plain store
 * gets the same bits flipped, with no other test: what wrprotect_visit()
 * and set_locked() decide for a leaf (presence, the new value, the rule
 * check, what account_change() owes) depends on its attributes alone, and
 * the address bits are left alone. A pattern is taken only from a present
 * leaf that hardware does not write meanwhile (no hardware A/D, or
 * hw_quiet()) and whose change loses no hardware dirty state (dirty_lost(),
 * which looks at attributes only: nothing is recorded for it); its flush
 * (MMU-writable lost)
 * is owed once for the span of the leaves the run changed. Every other
 * entry takes wrprotect_visit(). About 5 instructions per matching leaf
 * against about 60 through set_locked() (bench_dirty's wrprotect_range).
 */
static __attribute__((noinline)) long S2_FN(wrprotect_run)(struct kvm *kvm, struct s2_range_op *op,
							   s2_pte_t *ptep, s2_pte_t *last,
							   gpa_t span)
{
	const struct s2_fmt_cfg cfg = kvm->cfg, *c = &cfg;
	const unsigned gshift = c->page_shift - S2_GFN_SHIFT;
	const hpa_t top = ((1ull << c->pa_bits) - 1) & ~((1ull << c->page_shift) - 1);
	const s2_pte_t keep =
		~(fmt_make_leaf(c, 1, top, 0, S2_MT_WB) ^ fmt_make_leaf(c, 1, 0, 0, S2_MT_WB));
	const bool hw = c->flags & S2_FMTF_AD;
	s2_pte_t *const first = ptep, *lo = NULL, *hi = NULL;
	/* No pattern yet: ~0 holds address bits, which no attributes do. */
	s2_pte_t fin = ~0ull, flip = 0;
	bool owes = false; /* the pattern's change owes a flush of its leaf */
	long n = 0, r = 0;

	while (ptep < last) {
		s2_pte_t *run = ptep, old = 0, new;
		gpa_t addr;

		/* The leaves that match the pattern: a load, a test, a store;
		 * four at a time while all four match, then one at a time.
		 * The single loop reports a change debug builds refuse. */
		ptep = S2_FN(flip_fours)(ptep, last, keep, fin, flip, S2_FN(wrprotect_ok), c);
		for (; ptep < last; ptep++) {
			old = __atomic_load_n(ptep, __ATOMIC_RELAXED);
			if ((old & keep) != fin)
				break;
			if (S2_ENABLED(CONFIG_S2_DEBUG) &&
			    s2_unlikely(!S2_FN(change_allowed)(c, old, old ^ flip, 1))) {
				S2_FN(refuse)
				(kvm, gpa_to_gfn(span) + ((gfn_t)(ptep - first) << gshift));
				r = -EIO;
				goto out;
			}
			__atomic_store_n(ptep, old ^ flip, __ATOMIC_RELAXED);
		}
		if (ptep != run) {
			n += ptep - run;
			if (owes) {
				if (!lo)
					lo = run;
				hi = ptep - 1;
			}
		}
		if (ptep == last)
			break;
		/* Anything else: wrprotect_visit(), and a pattern from it. */
		addr = span + ((gpa_t)(ptep - first) << c->page_shift);
		if (fmt_is_present(c, old, 1)) {
			struct s2_visit v = { ptep, old, addr, 1, S2_VISIT_LEAF };

			if (S2_FN(wrprotect_new)(c, old, 1, false, true, &new)) {
				r = S2_FN(wrprotect_visit)(kvm, op, &v);
				if (r)
					goto out;
				if ((!hw || S2_FN(hw_quiet)(c, old, 1)) &&
				    !S2_FN(dirty_lost)(kvm, op->acc, old, new, 1)) {
					fin = old & keep;
					flip = old ^ new;
					owes = fmt_is_mmu_writable(c, old, 1) &&
					       !fmt_is_mmu_writable(c, new, 1);
				}
			}
		} else if (fmt_is_access_tracked(c, old, 1)) {
			struct s2_visit v = { ptep, old, addr, 1, S2_VISIT_TRACKED };

			r = S2_FN(wrprotect_visit)(kvm, op, &v);
			if (r)
				goto out;
		}
		ptep++;
	}
out:
	op->result += n;
	/* The span of the leaves changed under a pattern that owed a flush. */
	if (lo)
		s2_acc_need_flush(op->acc, gpa_to_gfn(span) + ((gfn_t)(lo - first) << gshift),
				  gpa_to_gfn(span) + ((gfn_t)(hi - first + 1) << gshift));
	return r;
}

/* ---- permissions over a range ---- */

/*
 * S2_RANGE_PROTECT: give each leaf X and XU as asked, and W as asked where
 * the host allows writes (HOST_WRITABLE): with W asked, MMU-writable comes
 * back, and W itself only when w_direct (else the first write faults and
 * the fast path records it, as dirty logging and write tracking need);
 * without it W and MMU-writable go. A permission lost owes a flush of the
 * leaf; one gained owes none (a stale TLB entry at most faults once).
 */
static long S2_FN(protect_visit)(struct kvm *kvm, struct s2_range_op *op, struct s2_visit *v)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	const struct s2_protect_arg *a = op->arg;
	const unsigned hw = S2_PROT_W | S2_PROT_X | S2_PROT_XU;
	bool tracked = v->what == S2_VISIT_TRACKED;
	s2_pte_t leaf = tracked ? fmt_restore_access_tracked(c, v->old, v->level) : v->old;
	unsigned oldp = fmt_leaf_prot(c, leaf, v->level), newp;
	s2_pte_t new;

	newp = (oldp & ~(hw | S2_PROT_MMU_WRITABLE)) | (a->prot & (S2_PROT_X | S2_PROT_XU));
	if ((a->prot & S2_PROT_W) && (oldp & S2_PROT_HOST_WRITABLE)) {
		newp |= S2_PROT_MMU_WRITABLE;
		/* A read-only leaf that hardware may not mark dirty stays
		 * so: W would let a write through unrecorded. */
		if (a->w_direct || (oldp & S2_PROT_W))
			newp |= S2_PROT_W;
	}
	new = fmt_leaf_set_prot(c, leaf, v->level, newp);
	if (tracked)
		new = fmt_mk_access_tracked(c, new, v->level);
	if (new == v->old)
		return 0;
	if (S2_FN(set_locked)(kvm, op->acc, v->ptep, v->old, new, gpa_to_gfn(v->addr), v->level,
			      NULL))
		return -EIO;
	/* A hardware permission lost (as the format encodes it) is flushed;
	 * losing MMU-writable alone has set_locked() owe it already. */
	if (oldp & hw & ~fmt_leaf_prot(c, fmt_leaf_set_prot(c, leaf, v->level, newp), v->level)) {
		uint64_t pages = 1ull << (s2_level_shift(c, v->level) - S2_GFN_SHIFT);
		gfn_t base = gpa_to_gfn(v->addr) & ~(pages - 1);

		s2_acc_need_flush(op->acc, base, base + pages);
	}
	op->result++;
	return 0;
}

/* ---- age ---- */

/* Whether hardware has nothing left to write in a leaf (core/dirty_tmpl.h). */
static S2_ALWAYS_INLINE bool S2_FN(hw_quiet)(const struct s2_fmt_cfg *c, s2_pte_t pte, int level);

/*
 * What aging works from, per walk: the Accessed bits per level
 * (fmt_accessed_mask()), and for the write side the bits hardware may still
 * set in a young leaf: Dirty and write permission per level (derived like
 * the Accessed mask; d is 0 where hardware keeps no dirty state), so that
 * hw_quiet() is a mask test, not a decode of every leaf.
 */
struct s2_age_masks {
	s2_pte_t a[S2_MAX_LEVELS + 1];
	s2_pte_t d[S2_MAX_LEVELS + 1];
	s2_pte_t w[S2_MAX_LEVELS + 1];
	bool plain; /* write side: plain stores where hardware cannot write */
	bool hw_ad; /* hardware sets A/D (S2_FMTF_AD) */
};

/* hw_quiet() of a young @old, from the masks. */
static S2_ALWAYS_INLINE bool S2_FN(age_quiet)(const struct s2_age_masks *m, s2_pte_t old, int level)
{
	return !m->hw_ad || !m->d[level] || (old & m->d[level]) || !(old & m->w[level]);
}

/*
 * Clear Accessed, or test it (formats with an Accessed bit), as masks.
 *
 * Under the read side of mmu_lock faults may change a leaf at any time, so
 * each young leaf is cleared by compare-and-exchange. Under the write side
 * (kvm_age_gfn() on large ranges: m->plain) only hardware writes entries: a
 * leaf it has nothing left to write in (hw_quiet(): no hardware A/D, or
 * young and dirty or not writable) takes a plain store, and one that is
 * writable and clean an atomic AND, which keeps a Dirty flag hardware sets
 * meanwhile (docs/rules.md "Aging").
 */
/* Debug builds: the masks agree with the format's decoders for @old. */
static inline bool S2_FN(age_masks_wrong)(struct kvm *kvm, const struct s2_age_masks *m,
					  s2_pte_t old, int level, gpa_t addr)
{
	const s2_pte_t a = m->a[level];

	if (!(!(old & a) != !fmt_is_young(&kvm->cfg, old, level) ||
	      ((old & a) && (old & ~a) != fmt_mkold(&kvm->cfg, old, level)) ||
	      ((old & a) && m->hw_ad &&
	       S2_FN(age_quiet)(m, old, level) != S2_FN(hw_quiet)(&kvm->cfg, old, level))))
		return false;
	kvm_bug(kvm, "Accessed, Dirty or W is not the bits aging derived, gfn", gpa_to_gfn(addr));
	return true;
}

static S2_ALWAYS_INLINE long S2_FN(age_visit)(struct kvm *kvm, struct s2_range_op *op,
					      struct s2_visit *v)
{
	const struct s2_age_masks *m = op->arg;
	const s2_pte_t a = m->a[v->level];
	s2_pte_t old = v->old;

	if (S2_ENABLED(CONFIG_S2_DEBUG) &&
	    s2_unlikely(S2_FN(age_masks_wrong)(kvm, m, old, v->level, v->addr)))
		return -EIO;
	if (!(old & a))
		return 0;
	op->result++;
	if (op->kind == S2_RANGE_TEST_AGE)
		return 1;
	if (m->plain) {
		if (S2_FN(age_quiet)(m, old, v->level))
			__atomic_store_n(v->ptep, old & ~a, __ATOMIC_RELAXED);
		else
			__atomic_fetch_and(v->ptep, ~a, __ATOMIC_RELAXED);
		return 0;
	}
	/* Clearing Accessed is the one change that never flushes. A lost race
	 * (hardware setting A/D, a fault) retries on the fresh value; one that
	 * stopped being a young leaf (frozen, say) is left alone. */
	while (!__atomic_compare_exchange_n(v->ptep, &old, old & ~a, false, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED))
		if (!S2_FN(is_leaf_at)(&kvm->cfg, old, v->level) || !(old & a))
			return 0;
	return 0;
}

/*
 * age_visit() under the write side (m->plain, S2_RANGE_AGE) for a leaf
 * table's run of entries at once: the masks and the count in registers, no
 * call and no visit per entry. The same stores: plain where hardware has
 * nothing left to write (age_quiet()), an atomic AND for a young writable
 * clean leaf of a VM with hardware A/D. No lock breaking inside: aging
 * under the write side bounds each hold by gfns (kvm_age_gfn()).
 */
static __attribute__((noinline)) long S2_FN(age_run)(struct kvm *kvm, struct s2_range_op *op,
						     s2_pte_t *ptep, s2_pte_t *last, gpa_t span)
{
	/* A local copy: the stores below cannot change it, so what the
	 * format's present test reads stays in registers. */
	const struct s2_fmt_cfg cfg = kvm->cfg, *c = &cfg;
	const struct s2_age_masks *m = op->arg;
	const s2_pte_t a = m->a[1];
	/* A young leaf needs the atomic AND when (old & dw) == wc: writable
	 * and clean, hardware A/D on (else dw = 0, wc = 1: never). */
	const bool hw_d = m->hw_ad && m->d[1];
	const s2_pte_t dw = hw_d ? m->d[1] | m->w[1] : 0, wc = hw_d ? m->w[1] : 1;
	s2_pte_t *const first = ptep;
	long young = 0;

	for (; ptep < last; ptep++) {
		s2_pte_t old = __atomic_load_n(ptep, __ATOMIC_RELAXED);

		if (S2_ENABLED(CONFIG_S2_DEBUG) && fmt_is_present(c, old, 1) &&
		    s2_unlikely(S2_FN(age_masks_wrong)(
			    kvm, m, old, 1, span + ((gpa_t)(ptep - first) << c->page_shift))))
			return -EIO;
		if (!(old & a) || !fmt_is_present(c, old, 1))
			continue;
		young++;
		if (s2_unlikely((old & dw) == wc))
			__atomic_fetch_and(ptep, ~a, __ATOMIC_RELAXED);
		else
			__atomic_store_n(ptep, old & ~a, __ATOMIC_RELAXED);
	}
	op->result += young;
	return 0;
}

/*
 * No Accessed bit, access tracking: every present leaf counts as young and
 * becomes access-tracked (not present to hardware, restorable). Same pfn,
 * and still a leaf to the change handler, which would record nothing: a
 * bare compare-and-exchange does under the read side of mmu_lock, against
 * faults; under the write side a plain store (hardware that keeps no
 * Accessed bit writes nothing in the entry).
 */
static S2_ALWAYS_INLINE long S2_FN(age_track_visit)(struct kvm *kvm, struct s2_range_op *op,
						    struct s2_visit *v)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	const struct s2_age_masks *m = op->arg;
	s2_pte_t old = v->old;

	op->result++;
	if (m->plain) {
		__atomic_store_n(v->ptep, fmt_mk_access_tracked(c, old, v->level),
				 __ATOMIC_RELAXED);
		return 0;
	}
	while (!__atomic_compare_exchange_n(v->ptep, &old, fmt_mk_access_tracked(c, old, v->level),
					    false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		if (!S2_FN(is_leaf_at)(c, old, v->level))
			return 0;
	return 0;
}

/* age_track_visit() under the write side for a leaf table's run at once
 * (as age_run()). */
static __attribute__((noinline)) long S2_FN(age_track_run)(struct kvm *kvm, struct s2_range_op *op,
							   s2_pte_t *ptep, s2_pte_t *last,
							   gpa_t span)
{
	const struct s2_fmt_cfg cfg = kvm->cfg, *c = &cfg;
	long young = 0;

	(void)span;
	for (; ptep < last; ptep++) {
		s2_pte_t old = __atomic_load_n(ptep, __ATOMIC_RELAXED);

		if (!fmt_is_present(c, old, 1))
			continue;
		young++;
		__atomic_store_n(ptep, fmt_mk_access_tracked(c, old, 1), __ATOMIC_RELAXED);
	}
	op->result += young;
	return 0;
}

/* No Accessed bit and no tracking: every present leaf is reported young
 * (test_age stops at the first). */
static long S2_FN(age_report_visit)(struct kvm *kvm, struct s2_range_op *op, struct s2_visit *v)
{
	(void)kvm;
	(void)v;
	op->result++;
	return op->kind == S2_RANGE_TEST_AGE;
}

static inline bool S2_FN(leaf_grants)(const struct s2_fmt_cfg *c, s2_pte_t pte, int level,
				      unsigned access);

/*
 * For a fault, without the host: restore an access-tracked leaf, or set
 * Accessed on an old one (arm64 without hardware AF updates faults on it).
 * op->arg points at the fault's S2_ACC_*; op->result becomes 1 when the
 * leaf was changed and now grants the access (the fault is fixed), else 0.
 */
static long S2_FN(mkyoung_visit)(struct kvm *kvm, struct s2_range_op *op, struct s2_visit *v)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	unsigned access = *(const unsigned *)op->arg;
	s2_pte_t old = v->old;

	for (;;) {
		s2_pte_t new;
		int r;

		if (fmt_is_access_tracked(c, old, v->level))
			new = fmt_restore_access_tracked(c, old, v->level);
		else if (S2_FN(is_leaf_at)(c, old, v->level) && !fmt_is_young(c, old, v->level))
			new = fmt_mkyoung(c, old, v->level);
		else
			return 0;
		r = S2_FN(set_atomic)(kvm, op->acc, v->ptep, &old, new, gpa_to_gfn(v->addr),
				      v->level);
		if (r == -EBUSY)
			continue;
		if (r)
			return r;
		op->result = S2_FN(leaf_grants)(c, new, v->level, access);
		return 0;
	}
}

/* Dirty logging's kinds: split, collapse, protect, fast write. */
#include "core/dirty_tmpl.h"

/* One pass of op->kind over [s, e) of op->root (it may stop to yield). */
static long S2_FN(range_pass)(struct kvm *kvm, struct s2_range_op *op, gpa_t s, gpa_t e)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	long r;

	switch (op->kind) {
	case S2_RANGE_ZAP:
		r = S2_FN(walk)(kvm, op, s, e,
				S2_VISIT_LEAF | S2_VISIT_TRACKED | S2_VISIT_TABLE_PRE |
					S2_VISIT_TABLE_POST,
				S2_FN(zap_visit));
		break;
	case S2_RANGE_TEARDOWN:
		r = S2_FN(walk)(kvm, op, s, e,
				S2_VISIT_LEAF | S2_VISIT_TRACKED | S2_VISIT_TABLE_POST,
				S2_FN(teardown_visit));
		break;
	case S2_RANGE_WRPROTECT:
		r = S2_FN(walk)(kvm, op, s, e, S2_VISIT_LEAF, S2_FN(wrprotect_visit));
		break;
	case S2_RANGE_WRPROTECT_MMU:
		r = S2_FN(walk_run)(kvm, op, s, e, S2_VISIT_LEAF | S2_VISIT_TRACKED,
				    S2_FN(wrprotect_visit), S2_FN(wrprotect_run));
		break;
	case S2_RANGE_PROTECT:
		r = S2_FN(walk)(kvm, op, s, e, S2_VISIT_LEAF | S2_VISIT_TRACKED,
				S2_FN(protect_visit));
		break;
	case S2_RANGE_AGE:
	case S2_RANGE_TEST_AGE: {
		/* AGE's own argument: a bool *, true when the caller holds the
		 * write side and wants plain stores (NULL: read side). */
		const bool *plain = op->arg;
		struct s2_age_masks m = { .plain = plain && *plain && op->kind == S2_RANGE_AGE,
					  .hw_ad = c->flags & S2_FMTF_AD };
		s2_pte_t any = 0;
		void *arg = op->arg;

		for (int l = 1; l <= c->max_leaf_level; l++) {
			const unsigned rw = S2_PROT_R | S2_PROT_W | S2_PROT_ACCESSED;
			s2_pte_t with_w = fmt_make_leaf(c, l, 0, rw, S2_MT_WB);

			any |= m.a[l] = fmt_accessed_mask(c, l);
			m.d[l] = fmt_make_leaf(c, l, 0, rw | S2_PROT_DIRTY, S2_MT_WB) ^ with_w;
			m.w[l] = with_w ^ fmt_make_leaf(c, l, 0, rw & ~S2_PROT_W, S2_MT_WB);
		}
		op->arg = &m;
		if (any && m.plain)
			r = S2_FN(walk_run)(kvm, op, s, e, S2_VISIT_LEAF, S2_FN(age_visit),
					    S2_FN(age_run));
		else if (any)
			r = S2_FN(walk)(kvm, op, s, e, S2_VISIT_LEAF, S2_FN(age_visit));
		else if (op->kind == S2_RANGE_AGE && fmt_can_access_track(c) && m.plain)
			r = S2_FN(walk_run)(kvm, op, s, e, S2_VISIT_LEAF, S2_FN(age_track_visit),
					    S2_FN(age_track_run));
		else if (op->kind == S2_RANGE_AGE && fmt_can_access_track(c))
			r = S2_FN(walk)(kvm, op, s, e, S2_VISIT_LEAF, S2_FN(age_track_visit));
		else
			r = S2_FN(walk)(kvm, op, s, e, S2_VISIT_LEAF, S2_FN(age_report_visit));
		op->arg = arg;
		break;
	}
	case S2_RANGE_MKYOUNG:
		r = S2_FN(walk)(kvm, op, s, e, S2_VISIT_LEAF | S2_VISIT_TRACKED,
				S2_FN(mkyoung_visit));
		break;
	default: r = S2_FN(dirty_range)(kvm, op, s, e); break;
	}
	return r;
}

/*
 * Lock breaking: the pass stopped after op->budget leaves. Yield when the
 * call may block or the other side of mmu_lock waits (a writer's pending
 * bit; a reader spinning on the lock): settle what is owed (rule 2: the
 * flush before the lock is dropped), drop and retake the lock. Unlinked
 * tables stay queued in op->acc for the caller's unlock (it may hold a
 * spinlock under which they cannot be freed). Returns true when it yielded.
 */
static bool S2_FN(range_yield)(struct kvm *kvm, struct s2_range_op *op)
{
	uint32_t v = __atomic_load_n(&kvm->mmu_lock.v, __ATOMIC_RELAXED);
	bool waiter = op->hold == S2_HOLD_WRITE ?
			      __atomic_load_n(&kvm->mmu_lock.waiting, __ATOMIC_RELAXED) != 0 :
			      (v & S2_RW_PENDING) != 0;

	if (!op->may_block && !waiter)
		return false;
	s2_acc_settle(kvm, op->acc);
	/* Let the waiters in before taking the lock again (they count
	 * themselves out once they hold it); bounded, so a waiter that
	 * never comes cannot stall the walk. */
	if (op->hold == S2_HOLD_WRITE) {
		s2_write_unlock(&kvm->mmu_lock);
		for (unsigned i = 0;
		     i < 64 && __atomic_load_n(&kvm->mmu_lock.waiting, __ATOMIC_ACQUIRE); i++)
			s2_relax(kvm->env);
		s2_mmu_write_lock(kvm);
	} else {
		s2_read_unlock(&kvm->mmu_lock);
		for (unsigned i = 0;
		     i < 64 &&
		     (__atomic_load_n(&kvm->mmu_lock.v, __ATOMIC_ACQUIRE) & S2_RW_PENDING);
		     i++)
			s2_relax(kvm->env);
		s2_mmu_read_lock(kvm);
	}
	__atomic_fetch_add(&kvm->stat_yields, 1, __ATOMIC_RELAXED);
	return true;
}

/* op->kind over [op->start, op->end) of op->root, yielding as allowed. */
static long S2_FN(range_root)(struct kvm *kvm, struct s2_range_op *op)
{
	gfn_t start = op->start;
	uint64_t hold = 0; /* leaves visited since the lock was taken */
	long r;

	op->budget = op->hold != S2_HOLD_NONE ? kvm->yield_batch : 0;
	for (;;) {
		op->visited = 0;
		r = S2_FN(range_pass)(kvm, op, gfn_to_gpa(op->start), gfn_to_gpa(op->end));
		hold += op->visited;
		if (r != S2_WALK_YIELD)
			break;
		/* Resume where the pass stopped: tables before it were dealt
		 * with, and those it is inside are checked as partly covered. */
		op->start = gpa_to_gfn(op->resume);
		if (!S2_FN(range_yield)(kvm, op))
			continue;
		if (op->budget)
			s2_hold_stat(kvm, hold);
		hold = 0;
		/* Faults may have cached tables of this root meanwhile. */
		if (op->kind == S2_RANGE_ZAP || op->kind == S2_RANGE_COLLAPSE)
			s2_zap_gen_bump(kvm);
		/* The root went while the lock was dropped (a fast zap): its
		 * teardown owns it now; nothing of it is ours to finish. */
		if (op->kind != S2_RANGE_TEARDOWN && !s2_root_valid(op->root)) {
			r = 0;
			break;
		}
		/* What the caller validated may have changed meanwhile. */
		if (op->recheck && !op->recheck(kvm, op)) {
			op->stale = true;
			r = 0;
			break;
		}
	}
	if (op->budget)
		s2_hold_stat(kvm, hold);
	op->start = start;
	op->budget = 0;
	return r;
}

/*
 * Run op->kind over every valid root (or over op->root alone when the
 * caller set it). Every root gets the same change, so roots of different
 * spaces keep agreeing; counts add up over the roots.
 */
static long S2_FN(range)(struct kvm *kvm, struct s2_range_op *op)
{
	long r = 0;

	op->result = 0;
	/* The only kinds that zap or unlink tables (under the write side):
	 * once per call, what vcpus cached for the fault fast path ends. */
	if (op->kind == S2_RANGE_ZAP || op->kind == S2_RANGE_COLLAPSE)
		s2_zap_gen_bump(kvm);
	if (op->root) {
		/* One root: the teardown's (invalid), or a fault's vcpu root,
		 * which a fast zap may have invalidated (the full fault then
		 * retries): an invalid root is walked by its teardown only. */
		if (op->kind == S2_RANGE_TEARDOWN || s2_root_valid(op->root))
			r = S2_FN(range_root)(kvm, op);
	} else {
		for (unsigned i = 0; i < __atomic_load_n(&kvm->roots_hi, __ATOMIC_ACQUIRE); i++) {
			if (!s2_root_valid(&kvm->roots[i]))
				continue;
			op->root = &kvm->roots[i];
			r = S2_FN(range_root)(kvm, op);
			if (r || op->stale)
				break; /* an error, TEST_AGE found a young leaf, or
					  the caller's check failed after a yield */
		}
		op->root = NULL;
	}
	if (r < 0)
		return r;
	return op->result;
}

/* ---- inspection ---- */

static void S2_FN(decode)(const struct s2_fmt_cfg *c, s2_pte_t pte, int level, gpa_t gpa,
			  struct s2_mapping *out)
{
	uint64_t size = 1ull << s2_level_shift(c, level);

	out->present = true;
	out->level = level;
	out->size = size;
	out->hpa = fmt_leaf_hpa(c, pte, level) + (gpa & (size - 1));
	out->prot = fmt_leaf_prot(c, pte, level);
	out->memtype = fmt_leaf_memtype(c, pte, level);
	out->pte = pte;
}

static int S2_FN(lookup)(struct kvm *kvm, gpa_t gpa, struct s2_mapping *out)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	s2_pte_t *tbl = s2_root0(kvm)->pt;

	*out = (struct s2_mapping){ 0 };
	for (int level = c->levels; level >= 1; level--) {
		s2_pte_t pte = S2_FN(pte_load)(&tbl[S2_FN(index)(c, gpa, level)]);

		out->pte = pte;
		if (!fmt_is_present(c, pte, level))
			return 0;
		if (level == 1 || fmt_is_leaf(c, pte, level)) {
			S2_FN(decode)(c, pte, level, gpa, out);
			return 0;
		}
		tbl = S2_FN(table_va)(kvm, pte, level);
	}
	return 0;
}

struct S2_FN(each_arg) {
	s2_leaf_fn fn;
	void *arg;
};

static long S2_FN(each_visit)(struct kvm *kvm, struct s2_range_op *op, struct s2_visit *v)
{
	const struct S2_FN(each_arg) *a = op->arg;
	struct s2_mapping m;

	S2_FN(decode)(&kvm->cfg, v->old, v->level, v->addr, &m);
	return a->fn(a->arg, gpa_to_gfn(v->addr), &m);
}

static int S2_FN(for_each_leaf)(struct kvm *kvm, gfn_t start, gfn_t end, s2_leaf_fn fn, void *arg)
{
	struct S2_FN(each_arg) a = { fn, arg };
	struct s2_range_op op = { .start = start, .end = end, .arg = &a, .root = s2_root0(kvm) };

	return (int)S2_FN(walk)(kvm, &op, gfn_to_gpa(start), gfn_to_gpa(end), S2_VISIT_LEAF,
				S2_FN(each_visit));
}

/* ------------------------------------------------------------------------ */
/* The fault install                                                         */
/* ------------------------------------------------------------------------ */

static inline bool S2_FN(leaf_grants)(const struct s2_fmt_cfg *c, s2_pte_t pte, int level,
				      unsigned access)
{
	unsigned p = fmt_leaf_prot(c, pte, level);

	if ((access & S2_ACC_READ) && !(p & S2_PROT_R))
		return false;
	if ((access & S2_ACC_WRITE) && !(p & S2_PROT_W))
		return false;
	if ((access & S2_ACC_EXEC) &&
	    !(p &
	      ((access & S2_ACC_USER) && (c->flags & (S2_FMTF_MBEC | S2_FMTF_XNX)) ? S2_PROT_XU :
										     S2_PROT_X)))
		return false;
	return true;
}

/*
 * A leaf at @level already maps the gfn. Nothing to do when it grants the
 * access. Otherwise, if it is no larger than the fault may map, give it the
 * fault's permissions in place (same pfn, so rule 1 holds). A larger leaf
 * than allowed is zapped (and flushed right away) so the caller can map
 * smaller. Returns a RET_PF_* value, -EAGAIN after such a zap, or -EIO.
 */
static int S2_FN(fix_existing)(struct kvm *kvm, struct s2_change_acc *acc, struct s2_fault *f,
			       s2_pte_t *ptep, s2_pte_t old, int level)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	uint64_t size = 1ull << s2_level_shift(c, level);

	for (;;) {
		s2_pte_t new;
		int r;

		f->installed_level = level;
		if (S2_FN(leaf_grants)(c, old, level, f->access)) {
			/* An old leaf: without hardware AF updates (arm64
			 * without HA) the access faulted on Accessed. */
			if (fmt_is_young(c, old, level))
				return RET_PF_SPURIOUS;
			new = fmt_mkyoung(c, old, level);
			r = S2_FN(set_atomic)(kvm, acc, ptep, &old, new, f->gfn, level);
			if (r == -EBUSY) {
				if (!S2_FN(is_leaf_at)(c, old, level))
					return RET_PF_RETRY;
				continue;
			}
			return r ? r : RET_PF_FIXED;
		}
		if (fmt_leaf_hpa(c, old, level) != (f->hpa & ~(size - 1))) {
			S2_FN(refuse)(kvm, f->gfn);
			return -EIO;
		}
		if (level > f->level)
			new = fmt_nonpresent(c);
		else
			new = fmt_leaf_set_prot(c, old, level,
						f->prot | (fmt_leaf_prot(c, old, level) &
							   (S2_PROT_ACCESSED | S2_PROT_DIRTY)));
		r = S2_FN(set_atomic)(kvm, acc, ptep, &old, new, f->gfn, level);
		if (r == -EBUSY) {
			if (!S2_FN(is_leaf_at)(c, old, level))
				return RET_PF_RETRY;
			continue;
		}
		if (r)
			return r;
		if (new != fmt_nonpresent(c)) {
			f->made_writable =
				fmt_is_writable(c, new, level) && !fmt_is_writable(c, old, level);
			return RET_PF_FIXED;
		}
		s2_acc_settle(kvm, acc); /* flush the zapped leaf before mapping smaller */
		return -EAGAIN;
	}
}

/*
 * Descend to f->level for f->gfn, linking tables from @vcpu's cache, and
 * install the leaf with compare-and-exchange. Runs under the read side of
 * mmu_lock; a lost exchange retries on the value that won. A table already
 * where a huge leaf could go makes the fault map smaller underneath it.
 */
static int S2_FN(map)(struct kvm *kvm, struct kvm_vcpu *vcpu, struct s2_fault *f)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	gpa_t gpa = gfn_to_gpa(f->gfn);
	s2_pte_t *tbl = vcpu->root->pt;
	/* The common fault only installs, and counts its leaf and tables
	 * itself: the full accounting (acc) is set up only on the rare paths
	 * that need it, not zeroed and settled on every fault. */
	struct s2_change_acc acc;
	bool acc_used = false;
	int64_t tables = 0;
	int level = c->levels;
	/* The index of each level, kept as a shift and a width while the
	 * descent steps down, rather than recomputed per level. */
	unsigned shift = s2_level_shift(c, level), bits = c->root_bits;
	bool restored = false;
	int ret;

	for (;;) {
		s2_pte_t *ptep = &tbl[(gpa >> shift) & ((1u << bits) - 1)];
		s2_pte_t old = S2_FN(pte_load)(ptep);
		s2_pte_t new;
		struct s2_page pg;

again:
		if (fmt_is_present(c, old, level)) {
			/* An MMIO entry never replaces a mapping (docs/mmio.md;
			 * its f->level is 1, where every entry is a leaf), nor
			 * does an install that asked for empty entries only
			 * (kvm_mmu_map_range()'s read-side try): either stops
			 * at a leaf, or at a table where its leaf would go. */
			if (s2_unlikely(f->mmio || f->only_empty) &&
			    (level == f->level || fmt_is_leaf(c, old, level))) {
				ret = RET_PF_RETRY;
				break;
			}
			if (level == 1 || fmt_is_leaf(c, old, level)) {
				if (!acc_used) {
					s2_acc_init(&acc);
					acc_used = true;
				}
				ret = S2_FN(fix_existing)(kvm, &acc, f, ptep, old, level);
				if (ret != -EAGAIN)
					break;
				old = S2_FN(pte_load)(ptep);
				goto again;
			}
			if (level == f->level)
				f->level = level - 1;
			tbl = S2_FN(table_va)(kvm, old, level);
			level--;
			shift -= c->bits_per_level;
			bits = c->bits_per_level;
			continue;
		}
		/* Not present: frozen (retry), access-tracked (restore), or free. */
		if (s2_unlikely(fmt_is_frozen(old))) {
			ret = RET_PF_RETRY;
			break;
		}
		if (fmt_is_access_tracked(c, old, level)) {
			if (s2_unlikely(f->mmio || f->only_empty)) {
				ret = RET_PF_RETRY;
				break;
			}
			/* Aged without Accessed bits: restore it, then treat
			 * it as the leaf it was (same pfn, so rule 1 holds). */
			if (!acc_used) {
				s2_acc_init(&acc);
				acc_used = true;
			}
			new = fmt_restore_access_tracked(c, old, level);
			ret = S2_FN(set_atomic)(kvm, &acc, ptep, &old, new, f->gfn, level);
			if (ret && ret != -EBUSY)
				break;
			if (!ret) {
				old = new;
				restored = true;
			}
			goto again;
		}
		/* An MMIO entry, or a stale one, is overwritten like an empty
		 * entry (never present: rule 1 has nothing to say). */
		if (s2_unlikely(f->mmio) && level == 1) {
			if (!S2_FN(set_fresh)(kvm, ptep, &old, f->mmio))
				goto again;
			ret = RET_PF_EMULATE_MMIO;
			break;
		}
		if (level == f->level) {
			uint64_t size = 1ull << shift;

			new = fmt_make_leaf(c, level, f->hpa & ~(size - 1), f->prot, f->memtype);
			/* arm64 without FWB: the guest may map it non-cacheable. */
			if (FMT_NEEDS_BBM)
				fmt_cache_clean(c, kvm->env, f->hpa & ~(size - 1), size);
			if (!S2_FN(set_fresh)(kvm, ptep, &old, new))
				goto again;
			/* Counted on the vcpu: no shared atomic per fault. */
			__atomic_store_n(
				&vcpu->stat.leaves[level],
				__atomic_load_n(&vcpu->stat.leaves[level], __ATOMIC_RELAXED) + 1,
				__ATOMIC_RELAXED);
			f->installed_level = level;
			f->made_writable = fmt_is_writable(c, new, level);
			/* For the fault fast path, unless a fresh leaf owes more
			 * than its compare-and-exchange. */
			if (!FMT_NEEDS_BBM || !fmt_leaf_needs_clean(c))
				f->ptep = ptep;
			ret = RET_PF_FIXED;
			break;
		}
		if (s2_unlikely(!s2_cache_pop(vcpu, &pg))) {
			kvm_bug(kvm, "memory cache empty under mmu_lock at gfn", f->gfn);
			ret = -EIO;
			break;
		}
		if (fmt_nonpresent(c))
			s2_table_fill(pg.va, 1ull << c->bits_per_level, fmt_nonpresent(c));
		new = fmt_make_table(c, level, pg.pa);
		if (!S2_FN(set_fresh)(kvm, ptep, &old, new)) {
			s2_cache_push(vcpu, &pg);
			goto again;
		}
		tables++;
		tbl = pg.va;
		level--;
		shift -= c->bits_per_level;
		bits = c->bits_per_level;
	}
	if (restored && ret == RET_PF_SPURIOUS)
		ret = RET_PF_FIXED;
	/* Other changes (restores, zaps of a larger leaf) settle as usual. */
	if (s2_unlikely(acc_used)) {
		acc.table_pages += tables * (int64_t)(s2_table_bytes(c) >> 12);
		s2_acc_settle(kvm, &acc);
	} else if (tables) {
		__atomic_fetch_add(&kvm->stat_table_pages,
				   tables * (int64_t)(s2_table_bytes(c) >> 12), __ATOMIC_RELAXED);
	}
	return ret;
}

/* ---- hardware flush hooks and raw helpers ---- */

static void S2_FN(tlb_flush_vm)(struct kvm *kvm)
{
	fmt_tlb_flush_vm(&kvm->cfg, kvm->env, kvm);
}

#if FMT_HAS_TLB_FLUSH_RANGE
static void S2_FN(tlb_flush_range)(struct kvm *kvm, gpa_t gpa, uint64_t size)
{
	fmt_tlb_flush_range(&kvm->cfg, kvm->env, kvm, gpa, size);
}
#endif

static s2_pte_t S2_FN(raw_make_leaf)(const struct s2_fmt_cfg *c, int level, hpa_t hpa,
				     unsigned prot, unsigned memtype)
{
	return fmt_make_leaf(c, level, hpa, prot, memtype);
}
static unsigned S2_FN(raw_leaf_prot)(const struct s2_fmt_cfg *c, s2_pte_t pte, int level)
{
	return fmt_leaf_prot(c, pte, level);
}

#include "core/mmio_tmpl.h"

const struct s2_fmt_ops S2_CAT(s2_fmt_ops, FMT_SYM) = {
	.id = FMT_ID,
	.name = FMT_NAME,
	.init_cfg = fmt_init_cfg,
	.map = S2_FN(map),
	.range = S2_FN(range),
	.lookup = S2_FN(lookup),
	.for_each_leaf = S2_FN(for_each_leaf),
	.tlb_flush_vm = S2_FN(tlb_flush_vm),
#if FMT_HAS_TLB_FLUSH_RANGE
	.tlb_flush_range = S2_FN(tlb_flush_range),
#endif
	.tlb_broadcast = FMT_TLB_BROADCAST,
	.make_leaf = S2_FN(raw_make_leaf),
	.leaf_run = S2_FN(leaf_run),
	.leaf_prot = S2_FN(raw_leaf_prot),
	.make_mmio = fmt_make_mmio,
	.mmio_gen = S2_FN(mmio_gen),
	.mmio_zap = S2_FN(mmio_zap),
};
