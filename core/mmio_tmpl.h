/* SPDX-License-Identifier: MIT */
/*
 * Cached MMIO entries (docs/mmio.md), compiled per format: included by
 * core/mmu_tmpl.h. The core installs them through S2_FN(map) (struct
 * s2_fault.mmio); here are the lookup and the wrap-around zap.
 *
 * An MMIO entry lives at level 1 only and is fmt_make_mmio(c, gen) with gen
 * the memslot generation masked to kvm->mmio_gen_mask (at most 40 bits, the
 * narrowest value field of the formats): the entry's place in the table
 * already names its gfn.
 */

/*
 * The generation an MMIO entry at @gpa in @root carries, or S2_MMIO_NONE
 * when the level-1 entry there is not an MMIO entry (or no table reaches
 * level 1). The read side of mmu_lock is held and @root is valid.
 */
static uint64_t S2_FN(mmio_gen)(struct kvm *kvm, const struct s2_root *root, gpa_t gpa)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	s2_pte_t *tbl = root->pt;

	for (int level = c->levels;; level--) {
		s2_pte_t e = S2_FN(pte_load)(&tbl[S2_FN(index)(c, gpa, level)]);

		if (level == 1)
			return fmt_is_mmio(c, e) ? (e >> 12) & kvm->mmio_gen_mask : S2_MMIO_NONE;
		if (!fmt_is_present(c, e, level) || fmt_is_leaf(c, e, level))
			return S2_MMIO_NONE;
		tbl = S2_FN(table_va)(kvm, e, level);
	}
}

/* Clear every MMIO entry under table @t of @level holding @n entries. */
static uint64_t S2_FN(mmio_zap_table)(struct kvm *kvm, s2_pte_t *t, int level, unsigned n)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;
	uint64_t zapped = 0;

	for (unsigned i = 0; i < n; i++) {
		s2_pte_t e = S2_FN(pte_load)(&t[i]);

		if (fmt_is_present(c, e, level)) {
			if (level > 1 && !fmt_is_leaf(c, e, level))
				zapped += S2_FN(mmio_zap_table)(kvm, S2_FN(table_va)(kvm, e, level),
								level - 1, 1u << c->bits_per_level);
		} else if (level == 1 && fmt_is_mmio(c, e)) {
			/* Never present: nothing for a TLB to hold, no flush. */
			__atomic_store_n(&t[i], fmt_nonpresent(c), __ATOMIC_RELAXED);
			zapped++;
		}
	}
	return zapped;
}

/*
 * Clear every MMIO entry of @root (mmu_lock held for write). The tables
 * stay: a later zap or teardown frees the ones left empty, as it does for
 * tables emptied otherwise (S2_FN(table_empty) never counted MMIO entries).
 */
static uint64_t S2_FN(mmio_zap)(struct kvm *kvm, struct s2_root *root)
{
	return S2_FN(mmio_zap_table)(kvm, root->pt, kvm->cfg.levels, 1u << kvm->cfg.root_bits);
}
