// SPDX-License-Identifier: MIT
/*
 * The fault path (KVM's kvm_tdp_page_fault): the format-neutral half. It
 * resolves the memslot and the host pfn without mmu_lock, picks the largest
 * leaf allowed, then takes the read side of mmu_lock, re-validates against
 * concurrent invalidations and memslot updates, and hands the install to the
 * format's compiled map().
 */
#include "core/kvm_internal.h"
#include "s2mmu/notifier.h"

#define S2_ACC_VALID (S2_ACC_READ | S2_ACC_WRITE | S2_ACC_EXEC | S2_ACC_USER)
/* In the fault cache's access key: its leaves are huge (never a valid access
 * bit, so the 4 KiB fast path's access check misses such a cache). */
#define S2_FC_HUGE (1u << 31)
_Static_assert(!(S2_ACC_VALID & S2_FC_HUGE), "S2_FC_HUGE is an access bit");

/*
 * The largest level whose aligned block around @gfn lies inside @slot, whose
 * hva and pfn are congruent with the gfn at that size, and that the host
 * mapping and configuration allow. Level 1 needs granule congruence too;
 * returns 0 when even that fails.
 */
static int s2_pick_level(const struct kvm *kvm, const struct kvm_memory_slot *slot, gfn_t gfn,
			 const struct s2_pfn_info *pi)
{
	int max = kvm->max_leaf_level;
	int level;

	if (pi->host_level < max)
		max = pi->host_level > 1 ? pi->host_level : 1;
	if (slot->flags & KVM_MEM_LOG_DIRTY_PAGES)
		max = 1;
	for (level = max; level >= 1; level--) {
		uint64_t n = 1ull << (s2_level_shift(&kvm->cfg, level) - S2_GFN_SHIFT);
		gfn_t base = gfn & ~(n - 1);

		if (base < slot->base_gfn || base + n > slot->base_gfn + slot->npages)
			continue;
		if (((slot->userspace_addr >> S2_GFN_SHIFT) ^ slot->base_gfn) & (n - 1))
			continue;
		if ((pi->pfn ^ gfn) & (n - 1))
			continue;
		return level;
	}
	return 0;
}

/*
 * Memory attributes: a leaf never covers gfns whose attributes differ from
 * those of @gfn (KVM caps the level where a block mixes them), or a shared
 * leaf would map private gfns. @attrs is @gfn's. Read before mmu_lock; a
 * conversion of any gfn of the block runs as an invalidation of its range,
 * which the leaf's retry check under mmu_lock sees. Returns the level.
 */
static int s2_attr_cap_level(struct kvm *kvm, gfn_t gfn, int level, uint64_t attrs)
{
	for (; level > 1; level--) {
		uint64_t n = 1ull << (s2_level_shift(&kvm->cfg, level) - S2_GFN_SHIFT);
		gfn_t base = gfn & ~(n - 1);

		if (kvm_range_has_memory_attributes(kvm, base, base + n, attrs))
			break;
	}
	return level;
}

static unsigned s2_fault_prot(const struct kvm_memory_slot *slot, const struct s2_pfn_info *pi,
			      bool write)
{
	unsigned prot = S2_PROT_R | S2_PROT_X | S2_PROT_XU | S2_PROT_ACCESSED;

	if (pi->writable) {
		prot |= S2_PROT_HOST_WRITABLE;
		if (!(slot->flags & KVM_MEM_READONLY)) {
			prot |= S2_PROT_MMU_WRITABLE;
			/* With dirty logging a read fault maps read-only, so the
			 * first write is seen (and fixed without the host). */
			if (write || !(slot->flags & KVM_MEM_LOG_DIRTY_PAGES))
				prot |= S2_PROT_W;
		}
	}
	if (write)
		prot |= S2_PROT_DIRTY;
	return prot;
}

/*
 * After aging: restore an access-tracked leaf or set Accessed on an old one
 * without asking the host for the pfn (the pfn is the one the leaf kept).
 * Returns 1 when that fixed the fault, 0 to take the full path, or -errno.
 */
static long s2_fault_mkyoung(struct kvm_vcpu *vcpu, gfn_t gfn, unsigned access)
{
	struct kvm *kvm = vcpu->kvm;
	struct s2_change_acc acc;
	/* The faulting vcpu's root only (another root's leaf fixes nothing
	 * for this vcpu). */
	struct s2_range_op op = { .kind = S2_RANGE_MKYOUNG,
				  .start = gfn,
				  .end = gfn + 1,
				  .acc = &acc,
				  .arg = &access,
				  .root = vcpu->root };
	long r;

	s2_acc_init(&acc);
	s2_mmu_read_lock(kvm);
	r = s2_range(kvm, &op);
	s2_mmu_read_unlock(kvm, &acc);
	return r;
}

/*
 * After a full fault installed a leaf: keep what it learnt for the fast path
 * (struct s2_fault_cache) when the host promised its block (the range kept
 * is where the full path would do the same, see below). Runs with mmu_lock
 * still held, so zap_gen is the one the table pointer belongs to.
 */
static void s2_fault_cache_fill(struct kvm_vcpu *vcpu, const struct kvm_memory_slot *slot,
				const struct s2_pfn_info *pi, const struct s2_fault *f,
				uint64_t seq, uint64_t gen)
{
	const struct kvm *kvm = vcpu->kvm;
	const struct s2_fmt_cfg *c = &kvm->cfg;
	struct s2_fault_cache *fc = &vcpu->fc;
	int level = f->installed_level, host_level = pi->host_level < 1 ? 1 : pi->host_level;
	unsigned shift;
	uint64_t span, leaf, hva, blk, off;
	gfn_t tbl_gfn;

	if (!pi->block_stable || level < 1 || !f->ptep || s2_level_shift(c, 1) != S2_GFN_SHIFT ||
	    (slot->flags & KVM_MEM_LOG_DIRTY_PAGES))
		return;
	shift = s2_level_shift(c, level) - S2_GFN_SHIFT; /* gfns per leaf, log2 */
	leaf = 1ull << shift;
	span = leaf << c->bits_per_level; /* gfns the leaf table maps */
	tbl_gfn = f->gfn & ~(span - 1);
	if (host_level > (int)c->levels)
		host_level = (int)c->levels;
	hva = slot->userspace_addr + gfn_to_gpa(f->gfn - slot->base_gfn);
	blk = 1ull << s2_level_shift(c, host_level);
	off = (hva & (blk - 1)) >> S2_GFN_SHIFT;
	/*
	 * The range is the host block, clipped to the slot and to the span of
	 * the leaf table, in whole leaves. Inside one table span every gfn
	 * shares every block above the leaf's level with f->gfn, and every
	 * leaf of the range lies in the slot and in the host block, whose pfns
	 * follow its gfns (so hva and pfn congruence hold for each as for
	 * f->gfn): the full path would pick the same level for each and, as
	 * for f->gfn, end in this table while it stays linked (zap_gen).
	 * (The full path picked this level, so the host block is at least a
	 * leaf, and the slot holds f->gfn's whole leaf.)
	 */
	fc->lo = f->gfn - off;
	fc->hi = fc->lo + (blk >> S2_GFN_SHIFT);
	if (fc->lo < slot->base_gfn || fc->lo > f->gfn) /* clipped, or wrapped */
		fc->lo = slot->base_gfn;
	if (fc->hi > slot->base_gfn + slot->npages || fc->hi <= f->gfn)
		fc->hi = slot->base_gfn + slot->npages;
	if (fc->lo < tbl_gfn)
		fc->lo = tbl_gfn;
	if (fc->hi - tbl_gfn > span)
		fc->hi = tbl_gfn + span;
	fc->lo = (fc->lo + leaf - 1) & ~(leaf - 1);
	fc->hi &= ~(leaf - 1);
	/* Not over gfns of other memory attributes: the fast path checks none. */
	if (__atomic_load_n(&kvm->mem_attrs, __ATOMIC_ACQUIRE) &&
	    !kvm_range_has_memory_attributes(
		    (struct kvm *)kvm, fc->lo, fc->hi,
		    kvm_get_memory_attributes((struct kvm *)kvm, f->gfn))) {
		fc->lo = f->gfn & ~(leaf - 1);
		fc->hi = fc->lo + leaf;
	}
	fc->hpa_lo = gfn_to_gpa(pi->pfn - (f->gfn - fc->lo));
	/* The leaf of leaf k is leaf_lo + k * step (the format contract's one
	 * address field, checked at the far end); not cached otherwise. */
	if (!kvm->ops->leaf_run(c, level, fc->hpa_lo, 1ull << s2_level_shift(c, level),
				(unsigned)((fc->hi - fc->lo) >> shift), f->prot, f->memtype,
				&fc->leaf_lo, &fc->step)) {
		fc->hi = fc->lo;
		return;
	}
	fc->access = f->access | (shift ? S2_FC_HUGE : 0);
	fc->shift = shift;
	fc->level = level;
	fc->seq = seq;
	fc->slot_gen = gen;
	fc->tbl = f->ptep - ((f->gfn - tbl_gfn) >> shift);
	fc->tbl_gfn = tbl_gfn;
	fc->tbl_gen = __atomic_load_n(&kvm->zap_gen, __ATOMIC_RELAXED);
}

/* The full fault: everything the fast path does not cover. */
static __attribute__((noinline)) int s2_fault_full(struct kvm_vcpu *vcpu, gpa_t gpa,
						   unsigned access)
{
	const struct s2_env *env;
	struct kvm_memory_slot slot;
	struct s2_pfn_info pi;
	struct s2_fault f;
	struct kvm *kvm;
	uint64_t seq, gen, leaf_pages;
	bool write;
	int r;

	kvm = vcpu->kvm;
	env = kvm->env;
	if (!(access & (S2_ACC_READ | S2_ACC_WRITE | S2_ACC_EXEC)) || (access & ~S2_ACC_VALID))
		return -EINVAL;
	if (gpa_to_gfn(gpa) >> (kvm->cfg.gpa_bits - S2_GFN_SHIFT))
		return -EINVAL;
	write = access & S2_ACC_WRITE;
	s2_stat_inc(&vcpu->stat.faults);

	if (__atomic_load_n(&kvm->mmu_aged, __ATOMIC_RELAXED)) {
		long y = s2_fault_mkyoung(vcpu, gpa_to_gfn(gpa), access);

		if (y < 0)
			return (int)y;
		if (y) {
			s2_stat_inc(&vcpu->stat.fixed);
			return RET_PF_FIXED;
		}
	}
	if (write && s2_unlikely(__atomic_load_n(&kvm->dirty.fast_write, __ATOMIC_RELAXED) ||
				 __atomic_load_n(&kvm->dirty.write_track, __ATOMIC_RELAXED))) {
		/* Write-protected but MMU-writable (dirty logging): restore W
		 * without asking the host, recording the page once. */
		r = s2_dirty_fast_write(vcpu, gpa_to_gfn(gpa), access);
		if (r == RET_PF_FIXED || r == RET_PF_SPURIOUS) {
			s2_stat_inc(r == RET_PF_FIXED ? &vcpu->stat.fixed : &vcpu->stat.spurious);
			return r;
		}
		if (r != -EAGAIN)
			return r;
		/* Checked again under mmu_lock below; this saves the host
		 * lookup in the common case. */
		if (kvm_gfn_is_write_tracked(kvm, gpa_to_gfn(gpa))) {
			s2_stat_add_shared(&kvm->dirty.stat.write_tracked_faults, 1);
			return RET_PF_WRITE_TRACKED;
		}
	}
	if (vcpu->cache.nr < kvm->cfg.levels - 1u) {
		r = kvm_mmu_topup_memory_cache(vcpu);
		if (r)
			return r;
	}
	/* A fast zap took the root of a vcpu that never loads one itself. */
	if (s2_unlikely(!s2_root_valid(vcpu->root)) && (r = s2_vcpu_follow(vcpu)))
		return r;
	/* Snapshot before the pfn is resolved; re-checked under mmu_lock. */
	seq = __atomic_load_n(&kvm->mmu_invalidate_seq, __ATOMIC_ACQUIRE);
	f = (struct s2_fault){ .gfn = gpa_to_gfn(gpa), .access = access };
	if (s2_vcpu_slot(vcpu, f.gfn, &slot, &gen)) {
		s2_stat_inc(&vcpu->stat.mmio);
		/* The next access finds an MMIO entry (docs/mmio.md). */
		if (kvm->mmio_cache && !kvm->gfn_direct_bits)
			s2_mmio_install(vcpu, &f, gen);
		return RET_PF_EMULATE_MMIO;
	}
	if (write && (slot.flags & KVM_MEM_READONLY)) {
		s2_stat_inc(&vcpu->stat.ro_write);
		return RET_PF_RO_WRITE;
	}
	pi = (struct s2_pfn_info){ .host_level = 1, .memtype = S2_MT_WB };
	r = env->ops->gfn_to_pfn(env->ctx, &slot, f.gfn, write, &pi);
	if (r)
		return r < 0 ? r : -EFAULT;
	f.level = s2_pick_level(kvm, &slot, f.gfn, &pi);
	if (f.level > 1 && __atomic_load_n(&kvm->mem_attrs, __ATOMIC_ACQUIRE))
		f.level = s2_attr_cap_level(kvm, f.gfn, f.level,
					    kvm_get_memory_attributes(kvm, f.gfn));
	if ((write && !pi.writable) || !f.level || (pi.pfn >> (kvm->cfg.pa_bits - S2_GFN_SHIFT))) {
		/* The host cannot back this access as asked. */
		r = -EFAULT;
		goto release;
	}
	f.hpa = pi.pfn << S2_GFN_SHIFT;
	f.prot = s2_fault_prot(&slot, &pi, write);
	f.memtype = pi.memtype;

	leaf_pages = 1ull << (s2_level_shift(&kvm->cfg, f.level) - S2_GFN_SHIFT);

	s2_mmu_read_lock_vcpu(vcpu);
	/* A root invalidated by a fast zap takes no new leaf: the vcpu has
	 * MMU_RELOAD pending and reloads at its next entry. */
	if (s2_invalidate_retry(kvm, seq, f.gfn & ~(leaf_pages - 1),
				(f.gfn & ~(leaf_pages - 1)) + leaf_pages) ||
	    __atomic_load_n(&kvm->memslots_gen, __ATOMIC_ACQUIRE) != gen ||
	    s2_unlikely(!s2_root_valid(vcpu->root)))
		r = RET_PF_RETRY;
	else if (!__atomic_load_n(&kvm->dirty.write_track, __ATOMIC_RELAXED) ||
		 !(r = s2_write_track_fault(kvm, &f, write))) {
		/* A TD's direct root maps the gfn with the shared bit. */
		f.gfn |= kvm->gfn_direct_bits;
		r = kvm->ops->map(kvm, vcpu, &f);
		f.gfn &= ~kvm->gfn_direct_bits;
		/* Not while gfns are write-tracked: f.prot may have lost W
		 * for this gfn only; and not for a TD (the fast path is off
		 * for its faults, as in KVM). */
		if (r == RET_PF_FIXED && !kvm->gfn_direct_bits &&
		    !__atomic_load_n(&kvm->dirty.write_track, __ATOMIC_RELAXED))
			s2_fault_cache_fill(vcpu, &slot, &pi, &f, seq, gen);
		/* A leaf made writable in a logging slot: record the page. */
		if (r == RET_PF_FIXED && f.made_writable && (slot.flags & KVM_MEM_LOG_DIRTY_PAGES))
			s2_dirty_mark_fault(vcpu, f.gfn);
	}
	s2_mmu_read_unlock_vcpu(vcpu);

	switch (r) {
	case RET_PF_FIXED: s2_stat_inc(&vcpu->stat.fixed); break;
	case RET_PF_SPURIOUS: s2_stat_inc(&vcpu->stat.spurious); break;
	case RET_PF_RETRY: s2_stat_inc(&vcpu->stat.retry); break;
	default: break;
	}
release:
	if (env->ops->release_pfn)
		env->ops->release_pfn(env->ctx, pi.pfn, write && r == RET_PF_FIXED);
	return r;
}

/*
 * The fault fast path: a fault on a gfn that the vcpu's last full fault
 * already resolved (same host block, same access, a leaf of the same level)
 * whose leaf table it still holds. Under the read side of mmu_lock, every
 * generation the cached parts depend on is re-checked (struct
 * s2_fault_cache), the invalidation range over the whole leaf; then the leaf
 * goes in with one compare-and-exchange over an empty entry, which rules 1
 * and 2 allow with nothing owed (as the full path's set_fresh). Anything else
 * (another table, a present or special entry, a moved generation, write
 * tracking) returns -EAGAIN and the full path decides exactly as it would
 * have without the cache. No format code: the leaf is leaf_lo + k * step
 * (s2_fault_cache_fill checked that). Compiled twice: for 4 KiB leaves
 * (@shift 0, @level 1, constants: the shifts vanish) and for huge ones,
 * whose cache has S2_FC_HUGE in its access key: the fault entry picks the
 * one the key says with one compare (a huge fault no longer tries the
 * 4 KiB path and calls out of line first: 117 -> 94 instructions per huge
 * fast fault, 77 -> 78 per 4 KiB one, callgrind on bench_huge/bench_fault).
 */
static S2_ALWAYS_INLINE int s2_fault_fast_at(struct kvm_vcpu *vcpu, gfn_t gfn, unsigned access,
					     unsigned shift, int level)
{
	struct kvm *kvm = vcpu->kvm;
	struct s2_fault_cache *fc = &vcpu->fc;
	s2_pte_t old = 0, new;
	uint64_t k;
	gfn_t base;
	int r = -EAGAIN;

	/* [lo, hi) lies inside the cached table's span (the fill clips it). */
	if (gfn - fc->lo >= fc->hi - fc->lo || access != fc->access)
		return -EAGAIN;
	k = (gfn - fc->lo) >> shift;
	base = fc->lo + (k << shift); /* the leaf's first gfn (gfn for 4 KiB) */
	new = fc->leaf_lo + k * fc->step;
	/* A writer holds or wants mmu_lock: the full path waits for it. No
	 * call on this path, so the compiler keeps it free of spills. */
	if (!s2_read_trylock_local(&kvm->mmu_lock, &vcpu->mmu_reading, vcpu->light_ok))
		return -EAGAIN;
	if (s2_unlikely(__atomic_load_n(&kvm->zap_gen, __ATOMIC_RELAXED) != fc->tbl_gen ||
			__atomic_load_n(&kvm->memslots_gen, __ATOMIC_ACQUIRE) != fc->slot_gen ||
			s2_invalidate_retry(kvm, fc->seq, base, base + (1ull << shift)) ||
			__atomic_load_n(&kvm->dirty.write_track, __ATOMIC_RELAXED))) {
		fc->hi = fc->lo; /* a generation moved: ask the host again */
		goto out;
	}
	if (!__atomic_compare_exchange_n(&fc->tbl[(base - fc->tbl_gfn) >> shift], &old, new, false,
					 __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		goto out;
	s2_stat_inc(&vcpu->stat.fast[level]);
	r = RET_PF_FIXED;
out:
	s2_mmu_read_unlock_vcpu(vcpu);
	return r;
}

static S2_ALWAYS_INLINE int kvm_tdp_page_fault_untraced(struct kvm_vcpu *vcpu, gpa_t gpa,
							unsigned access)
{
	if (!vcpu)
		return -EINVAL;
	if (s2_kvm_dead(vcpu->kvm))
		return -EIO;
#if S2_ENABLED(CONFIG_S2_TDX)
	/* A TD: private faults go to the mirror root; shared ones take the
	 * full path with the shared bit stripped. */
	if (s2_unlikely(vcpu->kvm->gfn_direct_bits)) {
		gfn_t gfn;
		int r = s2_tdx_fault(vcpu, gpa, access, &gfn);

		return r == -EAGAIN ? s2_fault_full(vcpu, gfn_to_gpa(gfn), access) : r;
	}
#endif
	/* A gfn the last full fault resolved: the cache's checks include
	 * the full path's (its access and range were validated then). */
	if (s2_likely(vcpu->fc.access == access)) {
		if (s2_likely(s2_fault_fast_at(vcpu, gpa_to_gfn(gpa), access, 0, 1) ==
			      RET_PF_FIXED))
			return RET_PF_FIXED;
	} else if (vcpu->fc.access == (access | S2_FC_HUGE)) {
		if (s2_fault_fast_at(vcpu, gpa_to_gfn(gpa), access | S2_FC_HUGE, vcpu->fc.shift,
				     vcpu->fc.level) == RET_PF_FIXED)
			return RET_PF_FIXED;
	}
	return s2_fault_full(vcpu, gpa, access);
}

int kvm_tdp_page_fault(struct kvm_vcpu *vcpu, gpa_t gpa, unsigned access)
{
	int r = kvm_tdp_page_fault_untraced(vcpu, gpa, access);

	if (vcpu)
		S2_TRACE(vcpu->kvm, "fault", r, S2_TA_DEC("vcpu", vcpu->id), S2_TA_HEX("gpa", gpa),
			 S2_TA_ACC("access", access));
	return r;
}

int kvm_mmu_page_fault(struct kvm_vcpu *vcpu, gpa_t gpa, unsigned access)
{
	return kvm_tdp_page_fault(vcpu, gpa, access);
}
