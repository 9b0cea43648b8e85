/* SPDX-License-Identifier: MIT */
/*
 * Dirty logging's range kinds, compiled once per format: core/mmu_tmpl.h
 * includes this after its walker and visitors, so the fmt_* calls here are
 * the format's inlines and the walker is the same one-walker-many-visitors
 * loop. The format-neutral half (bitmaps, rings, locking, the order of
 * steps) is core/dirty.c; the arguments are in core/dirty_internal.h.
 *
 *  - split:   a huge leaf becomes a table of 4 KiB leaves with the same pfns
 *             (rule 1 allows it: no pfn changes) in one atomic install of a
 *             privately built subtree; it owes a flush (or flushes at once
 *             where the format needs break-before-make).
 *  - collapse: a table of contiguous, uniform leaves becomes one leaf, the
 *             table is freed after RCU; it owes a flush.
 *  - enable / mask: take hardware write access (or the dirty state) away
 *             from leaves, keeping MMU-writable, which rule 2 lets happen
 *             without a flush; the caller decides the flush for what it
 *             reaped.
 *  - fast write: give a write-protected, MMU-writable leaf its write access
 *             back without asking the host.
 */

/* Table pages it takes to split a leaf at @level down to 4 KiB leaves. */
static inline uint64_t S2_FN(split_need)(const struct s2_fmt_cfg *c, int level)
{
	uint64_t n = 0;

	for (int l = 2; l <= level; l++)
		n = 1 + (n << c->bits_per_level);
	return n;
}

/*
 * Fill the zeroed, not yet linked table @t of level-@cl entries so that it
 * maps what one level-(@cl + 1) leaf mapped at @hpa, with @prot and @mt, down
 * to level 1; deeper tables are pg[*next], pg[*next + 1], ... Every entry
 * is written, so a retry may fill the same pages again.
 */
static void S2_FN(split_fill)(struct kvm *kvm, s2_pte_t *t, int cl, hpa_t hpa, unsigned prot,
			      unsigned mt, const struct s2_page *pg, unsigned *next)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	const unsigned n = 1u << c->bits_per_level;
	const uint64_t csize = 1ull << s2_level_shift(c, cl);

	if (cl == 1) {
		s2_pte_t l0, step;

		if (S2_FN(leaf_run)(c, 1, hpa, csize, n, prot, mt, &l0, &step)) {
			/* n is a power of two of at least 512: four at a time. */
			for (unsigned i = 0; i < n; i += 4, l0 += 4 * step) {
				t[i] = l0;
				t[i + 1] = l0 + step;
				t[i + 2] = l0 + 2 * step;
				t[i + 3] = l0 + 3 * step;
			}
		} else {
			for (unsigned i = 0; i < n; i++)
				t[i] = fmt_make_leaf(c, 1, hpa + i * csize, prot, mt);
		}
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		const struct s2_page *p = &pg[(*next)++];

		S2_FN(split_fill)(kvm, p->va, cl - 1, hpa + i * csize, prot, mt, pg, next);
		t[i] = fmt_make_table(c, cl, p->pa);
	}
}

/*
 * Split the huge leaf @v visits into 4 KiB leaves without @a->clear_prot.
 * Returns 0 (split, or the leaf changed under us and was left alone), 1 when
 * short of pages (the walk stops), -EIO.
 */
static __attribute__((noinline)) long S2_FN(split_one)(struct kvm *kvm, struct s2_range_op *op,
						       struct s2_visit *v, struct s2_split_arg *a)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	const int level = v->level;
	uint64_t need = S2_FN(split_need)(c, level);
	struct s2_page_stack *ps = a->pages;
	const struct s2_page *pg;
	s2_pte_t old = v->old;

	if (!ps) {
		a->need += need;
		return 0;
	}
	if (ps->nr < need) {
		a->short_of_pages = true;
		return 1;
	}
	pg = &ps->pg[ps->nr - need];
	for (;;) {
		hpa_t hpa = fmt_leaf_hpa(c, old, level);
		unsigned prot = fmt_leaf_prot(c, old, level) & ~a->clear_prot;
		unsigned mt = fmt_leaf_memtype(c, old, level), next = 1;
		int r;

		S2_FN(split_fill)(kvm, pg[0].va, level - 1, hpa, prot, mt, pg, &next);
		r = S2_FN(set_bbm)(kvm, op->acc, v->ptep, &old, fmt_make_table(c, level, pg[0].pa),
				   gpa_to_gfn(v->addr), level);
		if (!r)
			break;
		if (r != -EBUSY)
			return r;
		/* Hardware set A/D meanwhile: rebuild from the fresh value. */
		if (!S2_FN(is_leaf_at)(c, old, level))
			return 0;
	}
	ps->nr -= (unsigned)need;
	op->acc->table_pages += (int64_t)(need * (s2_table_bytes(c) >> 12));
	op->acc->leaves[1] += (int64_t)1 << ((level - 1) * c->bits_per_level);
	a->split++;
	return 0;
}

static long S2_FN(split_visit)(struct kvm *kvm, struct s2_range_op *op, struct s2_visit *v)
{
	if (v->level == 1)
		return 0;
	return S2_FN(split_one)(kvm, op, v, op->arg);
}

/*
 * What a leaf becomes when a slot starts logging or a harvested page is
 * re-protected: without hardware W (write-protection), or, with hardware
 * dirty state, a 4 KiB leaf without its dirty state and a huge leaf without
 * either (so a write faults in a 4 KiB leaf). MMU-writable always stays.
 */
static inline s2_pte_t S2_FN(protected)(const struct s2_fmt_cfg *c, s2_pte_t pte, int level,
					bool hw)
{
	if (!hw)
		return fmt_is_writable(c, pte, level) ? fmt_wrprotect(c, pte, level) : pte;
	if (level == 1)
		return fmt_is_dirty(c, pte, level) ? fmt_mkclean(c, pte, level) : pte;
	if (fmt_is_writable(c, pte, level) || fmt_is_dirty(c, pte, level))
		return fmt_wrprotect(c, fmt_mkclean(c, pte, level), level);
	return pte;
}

/* The bits a level-1 leaf's address may occupy, once per memo (bits 12 and
 * up: the format contract keeps presence and the special values below). */
static S2_ALWAYS_INLINE void S2_FN(memo_addr_bits)(const struct s2_fmt_cfg *c,
						   struct s2_prot_memo *m)
{
	if (s2_unlikely(!m->addr_bits)) {
		hpa_t top = ((1ull << c->pa_bits) - 1) & ~((1ull << c->page_shift) - 1);

		m->addr_bits =
			fmt_make_leaf(c, 1, top, 0, S2_MT_WB) ^ fmt_make_leaf(c, 1, 0, 0, S2_MT_WB);
	}
}

/*
 * protected(), remembered per attribute pattern: the entry without the bits
 * an address may occupy decides the result (protection never looks at the
 * address), so leaves that share attributes share the work.
 */
static S2_ALWAYS_INLINE s2_pte_t S2_FN(protected_memo)(const struct s2_fmt_cfg *c,
						       struct s2_prot_memo *m, s2_pte_t pte,
						       int level, bool hw)
{
	s2_pte_t attr, new;

#ifdef FMT_HAS_WRPROTECT
	/* The format's own write-protect is a bit operation already. */
	if (!hw)
		return S2_FN(protected)(c, pte, level, false);
#endif
	S2_FN(memo_addr_bits)(c, m);
	attr = pte & ~m->addr_bits;
	if (s2_likely(m->level == level && m->in == attr))
		return m->out | (pte & m->addr_bits);
	new = S2_FN(protected)(c, pte, level, hw);
	m->in = attr;
	m->out = new & ~m->addr_bits;
	m->level = level;
	return new;
}

/*
 * Debug builds check what the fast form below assumes: mmu_lock is held for
 * write and the change is one the change handler would accept without
 * owing a flush or changing a leaf count (it only takes W or D away).
 */
static bool S2_FN(owes_nothing)(struct kvm *kvm, s2_pte_t old, s2_pte_t new, gfn_t gfn, int level)
{
	struct s2_change_acc t;

	if (!s2_rwlock_is_write_locked(&kvm->mmu_lock) ||
	    !S2_FN(change_allowed)(&kvm->cfg, old, new, level))
		return false;
	s2_acc_init(&t);
	t.reaped = true; /* a check: it records nothing */
	S2_FN(account_change)(kvm, &t, gfn, old, new, level);
	for (int l = 1; l <= S2_MAX_LEVELS; l++)
		if (t.leaves[l])
			return false;
	return !t.flush && !t.zapped;
}

/*
 * Whether hardware may write the VM's leaves (set Accessed or Dirty) while
 * we hold mmu_lock: only then must a change be an atomic read-modify-write.
 * S2_FMTF_AD is that switch on every format (EPTP[6], VTCR_EL2.HA, Svadu,
 * always on NPT); a format that merely has an Accessed bit (arm64 without
 * HA) faults instead of writing it.
 */
static bool S2_FN(hw_writes_leaves)(const struct s2_fmt_cfg *c)
{
	return c->flags & S2_FMTF_AD;
}

/*
 * Whether hardware that maintains A/D has nothing left to write in @pte: it
 * sets Accessed only where it is clear, and Dirty (or, on arm64 with DBM,
 * the write permission) only on a write through a writable clean leaf. So a
 * young leaf that is dirty or not writable is not written by hardware until
 * software changes it, and under the write side of mmu_lock (no fault runs)
 * a plain store replaces it without losing anything (KVM's "volatile bits"
 * rule, the SDM's and the Arm ARM's A/D update conditions).
 */
static S2_ALWAYS_INLINE bool S2_FN(hw_quiet)(const struct s2_fmt_cfg *c, s2_pte_t pte, int level)
{
	return fmt_is_young(c, pte, level) &&
	       (fmt_is_dirty(c, pte, level) || !fmt_is_writable(c, pte, level));
}

/*
 * Protect the leaf at @ptep (mmu_lock held for write, so only hardware A/D
 * updates race with us). Bypasses set_locked() for speed: the change only
 * clears W or D, which rule 2 says owes nothing by itself; the caller
 * records the flush its reaping owes. Where hardware may set A/D in this
 * leaf meanwhile an atomic AND keeps them; elsewhere (no hardware A/D, or a
 * leaf hardware has nothing to write in, hw_quiet()) nothing else writes
 * the entry and a plain store does (as KVM writes non-volatile sptes).
 * Returns 1 if the leaf changed, 0, or -EIO.
 */
static S2_ALWAYS_INLINE long S2_FN(protect_leaf_c)(struct kvm *kvm, const struct s2_fmt_cfg *c,
						   struct s2_prot_memo *m, s2_pte_t *ptep,
						   s2_pte_t old, gfn_t gfn, int level, bool hw,
						   bool hw_writes)
{
	for (;;) {
		s2_pte_t new = S2_FN(protected_memo)(c, m, old, level, hw);

		if (new == old)
			return 0;
		if (S2_ENABLED(CONFIG_S2_DEBUG) &&
		    s2_unlikely(!S2_FN(owes_nothing)(kvm, old, new, gfn, level))) {
			kvm_bug(kvm, "dirty-log protection would change more than W or D, gfn",
				gfn);
			return -EIO;
		}
		if (!hw_writes || S2_FN(hw_quiet)(c, old, level)) {
			__atomic_store_n(ptep, new, __ATOMIC_RELAXED);
			return 1;
		}
		if (!(new & ~old)) {
			__atomic_fetch_and(ptep, ~(old & ~new), __ATOMIC_RELAXED);
			return 1;
		}
		if (__atomic_compare_exchange_n(ptep, &old, new, false, __ATOMIC_RELAXED,
						__ATOMIC_RELAXED))
			return 1;
		if (!S2_FN(is_leaf_at)(c, old, level))
			return 0;
	}
}

static S2_ALWAYS_INLINE long S2_FN(protect_leaf)(struct kvm *kvm, struct s2_prot_memo *m,
						 s2_pte_t *ptep, s2_pte_t old, gfn_t gfn, int level,
						 bool hw, bool hw_writes)
{
	return S2_FN(protect_leaf_c)(kvm, &kvm->cfg, m, ptep, old, gfn, level, hw, hw_writes);
}

/*
 * protect_leaf() over the level-1 entries [ptep, last), the first mapping
 * @gfn, in one local loop: the format's descriptor and the memo in
 * registers (the stores cannot change local copies), no call per entry.
 * Entries that are not present are skipped; with @reaped, it is set when a
 * leaf is or may become writable without the host (enable_visit()'s
 * count; access-tracked entries too). Returns 0, or -EIO.
 *
 * The fast case is a plain sweep: a leaf whose attributes (the entry
 * without its address bits) are those of the last leaf this memo protected
 * with a plain store gets old ^ flip, the same bits flipped, with no other
 * test. Everything the slow case decides for that leaf depends on the
 * attributes alone: presence (the format contract keeps it in bits 0..11,
 * below every address bit), the change (protected_memo()), whether a plain
 * store may make it (hw_quiet(): Accessed, Dirty, W), and the reaped count
 * (the leaf that set the pattern was writable or MMU-writable, so it was
 * counted in this same walk: the memo and @reaped live together).
 */
/* The gfn of @ptep in a run from @first, which maps @gfn. */
static S2_ALWAYS_INLINE gfn_t S2_FN(run_gfn)(gfn_t gfn, const s2_pte_t *first, const s2_pte_t *ptep,
					     unsigned gshift)
{
	return gfn + ((gfn_t)(ptep - first) << gshift);
}

/* protect_run()'s check for flip_fours(): owes_nothing() at the entry's gfn. */
struct s2_protect_at {
	struct kvm *kvm;
	const s2_pte_t *first; /* the run's first entry, which maps gfn */
	gfn_t gfn;
	unsigned gshift;
};

static S2_ALWAYS_INLINE bool S2_FN(protect_ok)(const void *arg, const s2_pte_t *ptep, s2_pte_t old,
					       s2_pte_t new)
{
	const struct s2_protect_at *at = arg;

	return S2_FN(owes_nothing)(at->kvm, old, new,
				   S2_FN(run_gfn)(at->gfn, at->first, ptep, at->gshift), 1);
}

static __attribute__((noinline)) long S2_FN(protect_run)(struct kvm *kvm, struct s2_prot_memo *mp,
							 s2_pte_t *ptep, s2_pte_t *last, gfn_t gfn,
							 bool hw, bool hw_writes, long *reaped)
{
	const struct s2_fmt_cfg cfg = kvm->cfg, *c = &cfg;
	const unsigned gshift = c->page_shift - S2_GFN_SHIFT;
	s2_pte_t *const first = ptep;
	const struct s2_protect_at at = { kvm, first, gfn, gshift };
	struct s2_prot_memo m = *mp;
	long re = reaped ? *reaped : 1, r = 0;
	s2_pte_t keep, fin, flip;

	S2_FN(memo_addr_bits)(c, &m);
	keep = ~m.addr_bits;
	/* No pattern yet: ~0 holds address bits, which no attributes do. */
	fin = m.fast_flip ? m.fast_in : ~0ull;
	flip = m.fast_flip;
	for (; ptep < last; ptep++) {
		s2_pte_t old, new;
		gfn_t g;

		/* Four at a time while all four take the fast case: hardware
		 * writes none of them (a plain store is allowed for their
		 * attributes). The one-entry case below reports a change debug
		 * builds refuse. */
		ptep = S2_FN(flip_fours)(ptep, last, keep, fin, flip, S2_FN(protect_ok), &at);
		if (ptep == last)
			break;
		old = __atomic_load_n(ptep, __ATOMIC_RELAXED);
		g = S2_FN(run_gfn)(gfn, first, ptep, gshift);
		if (s2_likely((old & keep) == fin)) {
			if (S2_ENABLED(CONFIG_S2_DEBUG) &&
			    s2_unlikely(!S2_FN(owes_nothing)(kvm, old, old ^ flip, g, 1))) {
				r = -EIO;
				kvm_bug(kvm,
					"dirty-log protection would change more than W or D, gfn",
					g);
				break;
			}
			__atomic_store_n(ptep, old ^ flip, __ATOMIC_RELAXED);
			continue;
		}
		if (!fmt_is_present(c, old, 1)) {
			if (!re && fmt_is_access_tracked(c, old, 1) &&
			    fmt_is_mmu_writable(c, fmt_restore_access_tracked(c, old, 1), 1))
				re = 1;
			continue;
		}
		if (!re && (fmt_is_mmu_writable(c, old, 1) || fmt_is_writable(c, old, 1)))
			re = 1;
		new = S2_FN(protected_memo)(c, &m, old, 1, hw);
		if (new == old)
			continue;
		if (!hw_writes || S2_FN(hw_quiet)(c, old, 1)) {
			/* A plain store: the pattern of the fast case from now on. */
			fin = old & keep;
			flip = old ^ new;
		}
		r = S2_FN(protect_leaf_c)(kvm, c, &m, ptep, old, g, 1, hw, hw_writes);
		if (s2_unlikely(r < 0))
			break;
	}
	if (flip) {
		m.fast_in = fin;
		m.fast_flip = flip;
	}
	*mp = m;
	if (reaped)
		*reaped = re;
	return r < 0 ? r : 0;
}

/* ---- a slot starts logging ---- */

/* Inlined into the walker's leaf loop: this runs once per leaf of the slot. */
static S2_ALWAYS_INLINE long S2_FN(enable_visit)(struct kvm *kvm, struct s2_range_op *op,
						 struct s2_visit *v)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	struct s2_enable_arg *a = op->arg;
	long r;

	/*
	 * A leaf that is or may become writable without the host may have a
	 * writable (or dirty-cached) translation in some TLB that no log saw:
	 * aging and restoring access-tracked leaves, and earlier protection
	 * without a harvest, never flushed. Count them; one flush covers all.
	 */
	if (v->what == S2_VISIT_TRACKED) {
		if (fmt_is_mmu_writable(c, fmt_restore_access_tracked(c, v->old, v->level),
					v->level))
			a->reaped = 1;
		return 0;
	}
	if (!a->reaped &&
	    (fmt_is_mmu_writable(c, v->old, v->level) || fmt_is_writable(c, v->old, v->level)))
		a->reaped = 1;
	if (v->level > 1 && a->split_on) {
		long before = a->split.split;
		uint64_t n = 1ull << c->bits_per_level;

		/* The split writes a table of leaves: they count against the
		 * hold's budget (the walker counted this leaf already). */
		if (op->budget) {
			if (op->visited > 1 && op->visited - 1 + n > op->budget) {
				op->resume = v->addr;
				return S2_WALK_YIELD;
			}
			op->visited += n - 1;
		}

		r = S2_FN(split_one)(kvm, op, v, &a->split);
		if (r || a->split.split != before)
			return r;
	}
	r = S2_FN(protect_leaf)(kvm, &a->memo, v->ptep, v->old, gpa_to_gfn(v->addr), v->level,
				a->hw, a->memo.hw_writes);
	return r < 0 ? r : 0;
}

/* enable_visit() for a leaf table's run at once (protect_run()). */
static S2_ALWAYS_INLINE long S2_FN(enable_run)(struct kvm *kvm, struct s2_range_op *op,
					       s2_pte_t *ptep, s2_pte_t *last, gpa_t span)
{
	struct s2_enable_arg *a = op->arg;
	long r = S2_FN(protect_run)(kvm, &a->memo, ptep, last, gpa_to_gfn(span), a->hw,
				    a->memo.hw_writes, &a->reaped);

	return r < 0 ? r : 0;
}

/* ---- re-protect the pages of one 64-bit mask ---- */

/*
 * Point @cur at the table holding the leaf that maps @gfn, descending from
 * the root. Returns false when nothing maps @gfn.
 */
static bool S2_FN(cursor_seek)(struct kvm *kvm, struct s2_mask_cursor *cur, gfn_t gfn)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	s2_pte_t *tbl = cur->root->pt, *ptbl = NULL;
	gfn_t pstart = 0, pend = ~0ull;

	for (int level = c->levels; level >= 1; level--) {
		unsigned shift = s2_level_shift(c, level);
		unsigned tshift = shift + s2_level_bits(c, level) - S2_GFN_SHIFT;
		s2_pte_t old = S2_FN(pte_load)(&tbl[S2_FN(index)(c, gfn_to_gpa(gfn), level)]);
		gfn_t start = level == c->levels ? 0 : gfn & ~((1ull << tshift) - 1);
		gfn_t end = level == c->levels ? ~0ull : start + (1ull << tshift);

		if (!fmt_is_present(c, old, level))
			return false;
		if (level == 1 || fmt_is_leaf(c, old, level)) {
			cur->tbl = tbl;
			cur->level = level;
			cur->gshift = shift - S2_GFN_SHIFT;
			cur->start = start;
			cur->end = end;
			cur->ptbl = level == 1 ? ptbl : NULL;
			cur->pstart = pstart;
			cur->pend = pend;
			return true;
		}
		if (level == 2) {
			ptbl = tbl;
			pstart = start;
			pend = end;
		}
		tbl = S2_FN(table_va)(kvm, old, level);
	}
	return false;
}

/*
 * Point @cur at the leaf table of @gfn through the level-2 table that
 * linked the one it holds (no descent from the root): false when @gfn lies
 * outside that level-2 table or its entry is not a table (cursor_seek()
 * then looks from the root).
 */
static S2_ALWAYS_INLINE bool S2_FN(cursor_next)(struct kvm *kvm, struct s2_mask_cursor *cur,
						gfn_t gfn)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	unsigned tshift = s2_level_shift(c, 2) - S2_GFN_SHIFT;
	s2_pte_t old;

	if (!cur->tbl || !cur->ptbl || gfn < cur->pstart || gfn >= cur->pend)
		return false;
	old = S2_FN(pte_load)(&cur->ptbl[S2_FN(index)(c, gfn_to_gpa(gfn), 2)]);
	if (!fmt_is_present(c, old, 2) || fmt_is_leaf(c, old, 2))
		return false;
	cur->tbl = S2_FN(table_va)(kvm, old, 2);
	cur->start = gfn & ~((1ull << tshift) - 1);
	cur->end = cur->start + (1ull << tshift);
	return true;
}

/*
 * The pages base + 64 * w + i for the bits i of masks[w], under mmu_lock
 * held for write: each found through the cursor (one descent per leaf
 * table, not per mask) and protected. A huge leaf is protected once for all
 * its bits.
 */
static long S2_FN(protect_bits)(struct kvm *kvm, struct s2_mask_cursor *cur, gfn_t base, uint64_t m,
				bool hw, bool hw_writes)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	bool sought = false;
	long changed = 0;

	while (m) {
		gfn_t gfn = base + (gfn_t)s2_ctz64(m);
		s2_pte_t *ptep, old;
		long r;

		if ((!cur->tbl || gfn < cur->start || gfn >= cur->end) &&
		    !S2_FN(cursor_seek)(kvm, cur, gfn)) {
			cur->tbl = NULL; /* nothing maps it */
			m &= m - 1;
			continue;
		}
		ptep = &cur->tbl[(gfn - cur->start) >> cur->gshift];
		old = S2_FN(pte_load)(ptep);
		if (!S2_FN(is_leaf_at)(c, old, cur->level)) {
			/* A table beside the huge leaf the cursor was left at:
			 * seek once more from the root. */
			if (!sought && fmt_is_present(c, old, cur->level) &&
			    S2_FN(cursor_seek)(kvm, cur, gfn)) {
				sought = true;
				continue;
			}
			sought = false;
			m &= m - 1;
			continue;
		}
		sought = false;
		r = S2_FN(protect_leaf)(kvm, &cur->memo, ptep, old, gfn, cur->level, hw, hw_writes);
		if (r < 0)
			return r;
		changed += r;
		m &= m - 1;
	}
	return changed;
}

static long S2_FN(protect_mask)(struct kvm *kvm, struct s2_range_op *op)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	const struct s2_mask_arg *a = op->arg;
	struct s2_mask_cursor *cur = a->cur;
	const bool hw = a->hw;
	const uint64_t *const masks = a->masks, nmasks = a->nmasks;
	bool hw_writes;

	if (s2_unlikely(cur->memo.hw_writes < 0))
		cur->memo.hw_writes = S2_FN(hw_writes_leaves)(c);
	hw_writes = cur->memo.hw_writes;
	/* The cursor holds a table of one root: another root seeks afresh. */
	if (cur->root != op->root) {
		cur->root = op->root;
		cur->tbl = NULL;
	}
	for (uint64_t w = 0; w < nmasks; w++) {
		uint64_t m = masks[w];
		/* The bitmap's memslot gfns, walked where the root maps them
		 * (a TD's shared half: at the shared-bit offset). */
		gfn_t base = a->base + kvm->gfn_direct_bits + w * 64;
		long r;

		if (!m)
			continue;
		/* The common case: all 64 pages are 4 KiB entries of the leaf
		 * table the cursor holds, or of the one a seek finds for the
		 * first (a new table every 512 pages). */
		if ((!cur->tbl || base < cur->start || base + 64 > cur->end) &&
		    !S2_FN(cursor_next)(kvm, cur, base) && !S2_FN(cursor_seek)(kvm, cur, base))
			cur->tbl = NULL;
		if (cur->tbl && cur->level == 1 && !cur->gshift && base >= cur->start &&
		    base + 64 <= cur->end) {
			s2_pte_t *t = &cur->tbl[base - cur->start];

			if (m == ~0ull) {
				/* Dense: in order, no bit scan, with the dense
				 * words after it in the same table. */
				uint64_t n = 1, nmax = (cur->end - base) / 64;

				if (nmax > nmasks - w)
					nmax = nmasks - w;
				while (n < nmax && masks[w + n] == ~0ull)
					n++;
				r = S2_FN(protect_run)(kvm, &cur->memo, t, t + 64 * n, base, hw,
						       hw_writes, NULL);
				if (r < 0)
					return r;
				w += n - 1;
				continue;
			}
			do {
				unsigned i = (unsigned)s2_ctz64(m);
				s2_pte_t old = S2_FN(pte_load)(&t[i]);

				if (fmt_is_present(c, old, 1)) {
					r = S2_FN(protect_leaf)(kvm, &cur->memo, &t[i], old,
								base + i, 1, hw, hw_writes);
					if (r < 0)
						return r;
				}
				m &= m - 1;
			} while (m);
			continue;
		}
		r = S2_FN(protect_bits)(kvm, cur, base, m, hw, hw_writes);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- collect hardware dirty state ---- */

static long S2_FN(scan_visit)(struct kvm *kvm, struct s2_range_op *op, struct s2_visit *v)
{
	const struct s2_scan_arg *a = op->arg;
	gfn_t gfn = s2_slot_gfn(kvm, gpa_to_gfn(v->addr));
	gfn_t end = gfn + (1ull << (s2_level_shift(&kvm->cfg, v->level) - S2_GFN_SHIFT));

	if (!fmt_is_dirty(&kvm->cfg, v->old, v->level))
		return 0;
	if (gfn < a->base)
		gfn = a->base;
	if (end > a->end)
		end = a->end;
	for (; gfn < end; gfn++) {
		uint64_t i = gfn - a->base, bit = 1ull << (i & 63);

		if (!(__atomic_load_n(&a->bits[i >> 6], __ATOMIC_RELAXED) & bit))
			__atomic_fetch_or(&a->bits[i >> 6], bit, __ATOMIC_RELAXED);
		op->result++;
	}
	return 0;
}

/* ---- a write fault's fast path ---- */

/*
 * The leaf lost hardware W but kept MMU-writable (dirty logging, or a
 * restored access-tracked leaf): give W back (and D, so the hardware dirty
 * state agrees with the page being recorded) with compare-and-exchange under
 * the read side of mmu_lock. The pfn is the one the leaf kept, so no host
 * lookup is needed. While the slot logs, a huge leaf is left for the full
 * path, which maps 4 KiB.
 */
static long S2_FN(fast_write_visit)(struct kvm *kvm, struct s2_range_op *op, struct s2_visit *v)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	struct s2_fast_arg *a = op->arg;
	const int level = v->level;
	s2_pte_t old = v->old;

	if (v->what != S2_VISIT_LEAF)
		return 0;
	for (;;) {
		s2_pte_t new;
		int r;

		if (!S2_FN(is_leaf_at)(c, old, level) || !fmt_is_mmu_writable(c, old, level))
			return 0;
		if (fmt_is_writable(c, old, level)) {
			/* Another vcpu fixed it first. */
			if (S2_FN(leaf_grants)(c, old, level, a->access) &&
			    fmt_is_young(c, old, level))
				a->ret = RET_PF_SPURIOUS;
			return 0;
		}
		if (level > 1 && a->logging)
			return 0;
		new = fmt_leaf_set_prot(c, old, level,
					fmt_leaf_prot(c, old, level) | S2_PROT_W | S2_PROT_DIRTY |
						S2_PROT_ACCESSED);
		if (!S2_FN(leaf_grants)(c, new, level, a->access))
			return 0;
		r = S2_FN(set_atomic)(kvm, op->acc, v->ptep, &old, new, gpa_to_gfn(v->addr), level);
		if (r == -EBUSY)
			continue;
		if (r)
			return r;
		a->ret = RET_PF_FIXED;
		return 0;
	}
}

/* ---- collapse ---- */

/*
 * After its children were visited: the table at @v becomes one leaf when
 * it lies in the slot, the backing allows a leaf of its size there (as the
 * host said before mmu_lock was taken), no gfn in it is write-tracked, and
 * its children are present leaves of contiguous pfns from the block's host
 * pfn with the same attributes (apart from W, Accessed and Dirty). The new
 * leaf is writable only if every child was, young or dirty if any was.
 */
static long S2_FN(collapse_visit)(struct kvm *kvm, struct s2_range_op *op, struct s2_visit *v)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	struct s2_collapse_arg *a = op->arg;
	const int level = v->level, cl = level - 1;
	const unsigned n = 1u << c->bits_per_level;
	const uint64_t csize = 1ull << s2_level_shift(c, cl);
	const unsigned adw = S2_PROT_W | S2_PROT_ACCESSED | S2_PROT_DIRTY;
	gfn_t gfn = s2_slot_gfn(kvm, gpa_to_gfn(v->addr));
	uint64_t pages = 1ull << (s2_level_shift(c, level) - S2_GFN_SHIFT);
	s2_pte_t old = v->old, e0, ign, ref, step = 0, diff = 0, and_raw = ~0ull, or_raw = 0, *t,
		 new;
	bool run;
	const struct s2_collapse_blk *b;
	unsigned base, mt, prot = 0;
	hpa_t hpa0;
	uint64_t idx;
	int r;

	/* A table of 4 KiB leaves is collapsed before the walk enters it (the
	 * walk then steps over the new leaf instead of scanning the table
	 * twice); larger tables after their children, which may have just
	 * become leaves themselves. */
	if ((v->what == S2_VISIT_TABLE_PRE) != (level == 2))
		return 0;
	if (level < 2 || level > kvm->max_leaf_level)
		return 0;
	if (!fmt_is_present(c, old, level) || fmt_is_leaf(c, old, level))
		return 0;
	if (gfn < a->start || gfn + pages > a->end || gfn < a->blk0)
		return 0;
	idx = (gfn - a->blk0) >> a->blk_shift;
	if (idx >= a->nblk)
		return 0;
	b = &a->blk[idx];
	if (b->max_level < level || s2_wt_any(a->wt, gfn, gfn + pages))
		return 0;
	/* A table collapsed counts its leaves against the hold's budget
	 * (docs/rules.md, "Yielding"; one that is not is walked into, and its
	 * leaves count there). Only a level-2 table (visited before its
	 * children) yields here, resuming at itself; a larger one is visited
	 * after its children, which a resumed walk would count again, so it
	 * goes on and the next leaf or level-2 table yields. */
	if (op->budget && level == 2 && op->visited && op->visited + n > op->budget) {
		op->resume = v->addr;
		return S2_WALK_YIELD;
	}
	t = S2_FN(table_va)(kvm, old, level);
	e0 = __atomic_load_n(&t[0], __ATOMIC_RELAXED);
	if (!S2_FN(is_leaf_at)(c, e0, cl))
		return 0;
	hpa0 = fmt_leaf_hpa(c, e0, cl);
	if (hpa0 != (b->pfn << S2_GFN_SHIFT) || (hpa0 & ((pages << S2_GFN_SHIFT) - 1)))
		return 0;
	base = fmt_leaf_prot(c, e0, cl) & ~adw;
	mt = fmt_leaf_memtype(c, e0, cl);
	/* Raw bits that W, Accessed and Dirty may change; all else must match. */
	ref = fmt_make_leaf(c, cl, hpa0, base, mt);
	ign = fmt_make_leaf(c, cl, hpa0, base | adw, mt) ^ ref;
	/* One difference accumulated over the table and tested once (a table
	 * that fails is rare and costs the same scan); the expected leaves
	 * by addition, or encoded one by one where the format disagrees. */
	run = S2_FN(leaf_run)(c, cl, hpa0, csize, n, base, mt, &e0, &step);
	for (unsigned i = 0; i < n; i++, e0 += step) {
		s2_pte_t e = __atomic_load_n(&t[i], __ATOMIC_RELAXED);

		diff |= e ^ (run ? e0 : fmt_make_leaf(c, cl, hpa0 + i * csize, base, mt));
		and_raw &= e;
		or_raw |= e;
	}
	if (diff & ~ign)
		return 0;
	if (fmt_is_writable(c, (ref & ~ign) | (and_raw & ign), cl))
		prot |= S2_PROT_W;
	if (fmt_is_young(c, (ref & ~ign) | (or_raw & ign), cl))
		prot |= S2_PROT_ACCESSED;
	if ((prot & S2_PROT_W) && fmt_is_dirty(c, (ref & ~ign) | (or_raw & ign), cl))
		prot |= S2_PROT_DIRTY;
	new = fmt_make_leaf(c, level, hpa0, base | prot, mt);
	r = S2_FN(set_bbm)(kvm, op->acc, v->ptep, &old, new, gpa_to_gfn(v->addr), level);
	if (r)
		return r == -EBUSY ? 0 : r;
	/* The old table waits for a grace period, linked through entry 0
	 * (frozen, so a walker still inside it retries). */
	__atomic_store_n(&t[0], FMT_FROZEN | fmt_nonpresent(c) | op->acc->free_head,
			 __ATOMIC_RELEASE);
	op->acc->free_head = fmt_table_hpa(c, old, level);
	op->acc->free_nr++;
	op->acc->table_pages -= (int64_t)(s2_table_bytes(c) >> 12);
	op->acc->leaves[cl] -= (int64_t)n;
	a->collapsed++;
	if (op->budget)
		op->visited += n;
	return 0;
}

static long S2_FN(dirty_range)(struct kvm *kvm, struct s2_range_op *op, gpa_t s, gpa_t e)
{
	long r;

	switch (op->kind) {
	case S2_RANGE_DIRTY_ENABLE: {
		struct s2_enable_arg *a = op->arg;

		if (a->memo.hw_writes < 0)
			a->memo.hw_writes = S2_FN(hw_writes_leaves)(&kvm->cfg);
		r = S2_FN(walk_run)(kvm, op, s, e, S2_VISIT_LEAF | S2_VISIT_TRACKED,
				    S2_FN(enable_visit), S2_FN(enable_run));
		/* The pre-log state is reaped: one flush for the call. */
		if (r >= 0 && a->reaped)
			s2_acc_need_flush(op->acc, op->start, op->end);
		return r;
	}
	case S2_RANGE_DIRTY_MASK: return S2_FN(protect_mask)(kvm, op);
	case S2_RANGE_DIRTY_SCAN:
		return S2_FN(walk)(kvm, op, s, e, S2_VISIT_LEAF, S2_FN(scan_visit));
	case S2_RANGE_FAST_WRITE:
		return S2_FN(walk)(kvm, op, s, e, S2_VISIT_LEAF | S2_VISIT_TRACKED,
				   S2_FN(fast_write_visit));
	case S2_RANGE_SPLIT: return S2_FN(walk)(kvm, op, s, e, S2_VISIT_LEAF, S2_FN(split_visit));
	case S2_RANGE_COLLAPSE:
		return S2_FN(walk)(kvm, op, s, e, S2_VISIT_TABLE_PRE | S2_VISIT_TABLE_POST,
				   S2_FN(collapse_visit));
	default: return -EINVAL;
	}
}
