// SPDX-License-Identifier: MIT
/*
 * Range operations (include/s2mmu/map.h): mapping a gpa range to a host
 * range in batches under the read side of mmu_lock, unmapping and
 * write-protecting a range through the walker's zap and write-protect kinds,
 * and KVM_PRE_FAULT_MEMORY through the fault path.
 */
#include "core/dirty_internal.h"
#include "core/kvm_internal.h"
#include "s2mmu/map.h"

#define S2_MAP_PROT_OK (S2_PROT_R | S2_PROT_W | S2_PROT_X | S2_PROT_XU)

static bool s2_range_ok(const struct kvm *kvm, gpa_t gpa, uint64_t size)
{
	uint64_t lim = 1ull << kvm->cfg.gpa_bits;
	uint64_t pg = 1ull << S2_GFN_SHIFT;

	return size && !(gpa & (pg - 1)) && !(size & (pg - 1)) && gpa < lim && size <= lim - gpa;
}

/*
 * The largest leaf level for the block at @gpa: aligned in gpa and hpa,
 * inside [gpa, end) and the memslot, and allowed by the configuration (and
 * 4 KiB only while the memslot logs dirty pages).
 */
static int s2_map_level(const struct kvm *kvm, const struct kvm_memory_slot *slot, gpa_t gpa,
			hpa_t hpa, gpa_t end)
{
	int level = (slot->flags & KVM_MEM_LOG_DIRTY_PAGES) ? 1 : kvm->max_leaf_level;

	for (; level > 1; level--) {
		uint64_t sz = 1ull << s2_level_shift(&kvm->cfg, level);

		if (!((gpa | hpa) & (sz - 1)) && end - gpa >= sz)
			break;
	}
	return level;
}

/*
 * The table pages the vcpu's cache must hold before mapping the leaf of
 * level @level: the tables it may link. While gfns are write-tracked a
 * leaf may come out 4 KiB (s2_map_leaves()), so the most a 4 KiB one links;
 * a top-up short of what s2_map_leaves() then needs would stop it without
 * progress, again and again.
 */
static unsigned s2_map_need(const struct kvm *kvm, int level)
{
	if (__atomic_load_n(&kvm->dirty.write_track, __ATOMIC_RELAXED))
		level = 1;
	return kvm->cfg.levels - (unsigned)level;
}

/*
 * After map() installed a fresh leaf at f->ptep (mmu_lock's read side
 * held): the leaves of the same level that follow it in its table, up to
 * @max of them, inside [*gpa, end), each with one compare-and-exchange over
 * an empty entry (what map()'s install does, without the walk from the
 * root; rules 1 and 2 owe nothing for it), as leaf_run() computes them. An
 * entry that is not empty stops the run and map() takes it. Advances *@gpa
 * and *@hpa; returns the leaves installed.
 */
static uint64_t s2_map_run(struct kvm_vcpu *vcpu, const struct s2_fault *f, gpa_t *gpa, hpa_t *hpa,
			   gpa_t end, uint64_t max)
{
	struct kvm *kvm = vcpu->kvm;
	const struct s2_fmt_cfg *c = &kvm->cfg;
	int level = f->level;
	unsigned shift = s2_level_shift(c, level);
	uint64_t sz = 1ull << shift, per = 1ull << c->bits_per_level;
	uint64_t idx, n, k = 0;
	s2_pte_t first, step;

	if (level >= (int)c->levels)
		return 0; /* the root's entries: its own width */
	idx = (*gpa >> shift) & (per - 1);
	if (!idx)
		return 0; /* the next leaf is in another table */
	n = per - idx;
	if (n > (end - *gpa) >> shift) /* a shift: a division costs tens of cycles */
		n = (end - *gpa) >> shift;
	if (n > max)
		n = max;
	if (!n || !kvm->ops->leaf_run(c, level, *hpa, sz, (unsigned)n, f->prot, f->memtype, &first,
				      &step))
		return 0;
	for (; k < n; k++) {
		s2_pte_t old = kvm->nonpresent;

		if (!__atomic_compare_exchange_n(&f->ptep[1 + k], &old, first + k * step, false,
						 __ATOMIC_RELEASE, __ATOMIC_RELAXED))
			break;
	}
	__atomic_store_n(&vcpu->stat.leaves[level],
			 __atomic_load_n(&vcpu->stat.leaves[level], __ATOMIC_RELAXED) + k,
			 __ATOMIC_RELAXED);
	*gpa += k * sz;
	*hpa += k * sz;
	return k;
}

/* Stops kvm_mmu_for_each_leaf() at the first leaf: the range is not empty
 * (a read-side walk, cheaper than the write side a zap takes). */
static int s2_map_any_leaf(void *arg, gfn_t gfn, const struct s2_mapping *m)
{
	(void)arg;
	(void)gfn;
	(void)m;
	return 1;
}

/*
 * Begin or end an invalidation of [start, end) (rule 4's protocol, as the
 * MMU notifier runs it): from begin on, a fault of a gfn inside retries
 * instead of installing; after end, one that resolved its pfn before
 * retries too (the seq moved).
 */
static void s2_map_invalidate(struct kvm *kvm, gfn_t start, gfn_t end, bool begin)
{
	struct s2_change_acc acc;

	s2_acc_init(&acc);
	s2_mmu_write_lock(kvm);
	if (begin) {
		s2_invalidate_begin(kvm);
		s2_invalidate_add(kvm, start, end);
	} else {
		(void)s2_invalidate_end(kvm);
	}
	s2_mmu_write_unlock(kvm, &acc);
}

/* The leaves' protection and the access a fault of them would make. */
static unsigned s2_map_prot(const struct kvm_memory_slot *slot, unsigned prot, unsigned *access)
{
	*access = S2_ACC_READ | ((prot & S2_PROT_W) ? S2_ACC_WRITE : 0) |
		  ((prot & S2_PROT_X) ? S2_ACC_EXEC : 0);
	prot |= S2_PROT_ACCESSED;
	if (prot & S2_PROT_W) {
		prot |= S2_PROT_HOST_WRITABLE | S2_PROT_MMU_WRITABLE | S2_PROT_DIRTY;
		/* A logging slot sees the first write (as a read fault). */
		if (slot->flags & KVM_MEM_LOG_DIRTY_PAGES) {
			prot &= ~(S2_PROT_W | S2_PROT_DIRTY);
			*access &= ~S2_ACC_WRITE;
		}
	}
	return prot;
}

/*
 * Install leaves from *@gpa on (mmu_lock held, either side), at most
 * @budget of them and each only while the vcpu's cache holds the tables it
 * may link; advances *@gpa and *@hpa. Returns the leaves installed, or a
 * negative errno (map() failed); a frozen entry stops it (to be retried
 * after the lock), and with @only_empty so does anything present where a
 * leaf goes.
 */
static long s2_map_leaves(struct kvm_vcpu *vcpu, const struct kvm_memory_slot *slot, gpa_t *gpa,
			  hpa_t *hpa, gpa_t end, unsigned prot, unsigned access, unsigned memtype,
			  uint64_t budget, bool only_empty)
{
	struct kvm *kvm = vcpu->kvm;
	uint64_t batch = 0;

	while (*gpa < end && batch < budget) {
		struct s2_fault f = { .gfn = gpa_to_gfn(*gpa),
				      .access = access,
				      .hpa = *hpa,
				      .prot = prot,
				      .memtype = memtype,
				      .only_empty = only_empty };
		uint64_t sz;
		int r, level;
		bool tracked;

		level = f.level = s2_map_level(kvm, slot, *gpa, *hpa, end);
		/* Write tracking, read under mmu_lock as a fault reads it (its
		 * set is published under the write side): a tracked gfn gets
		 * neither W nor MMU-writable, and no huge leaf covers one
		 * (dirty.h). No run after such a leaf: the next gfns may be
		 * tracked; each takes this check. */
		tracked = __atomic_load_n(&kvm->dirty.write_track, __ATOMIC_RELAXED) != NULL;
		if (s2_unlikely(tracked)) {
			(void)s2_write_track_fault(kvm, &f, false);
			if (!(f.prot & S2_PROT_W))
				f.access &= ~(unsigned)S2_ACC_WRITE;
			level = f.level;
		}
		if (vcpu->cache.nr < kvm->cfg.levels - (unsigned)level)
			break;
		sz = 1ull << s2_level_shift(&kvm->cfg, level);
		r = kvm->ops->map(kvm, vcpu, &f);
		if (r == RET_PF_RETRY)
			break; /* a frozen entry (or not empty): after the lock */
		if (r < 0)
			return r;
		/* A table already there made the leaf smaller. */
		if (f.installed_level > 0 && f.installed_level < level)
			sz = 1ull << s2_level_shift(&kvm->cfg, f.installed_level);
		*gpa += sz;
		*hpa += sz;
		batch++;
		if (r == RET_PF_FIXED && f.ptep && f.installed_level == f.level && !tracked)
			batch += s2_map_run(vcpu, &f, gpa, hpa, end, budget - batch);
	}
	return (long)batch;
}

/*
 * kvm_mmu_map_range() of a few leaves into an empty range: under the read
 * side, each leaf with one compare-and-exchange over an empty entry, as a
 * fault installs, with no invalidation and no zap. Nothing present is
 * replaced, so rule 1 owes nothing and nothing is flushed. A fault racing
 * it either installed first (the try stops at its leaf, and the write-side
 * path replaces what the range holds from there on) or finds this call's
 * leaf and keeps it, as it would after the call; faults that resolved
 * another pfn are what the write side's invalidation is for, and they only
 * matter where a leaf is replaced. Returns 0 when the range is mapped,
 * -EAGAIN when it stopped short (not empty, the cache, a memslot update,
 * an invalid root) with *@gpa and *@hpa at what is left, or an errno.
 */
static int s2_map_empty(struct kvm_vcpu *vcpu, const struct kvm_memory_slot *slot, uint64_t gen,
			gpa_t *gpa, hpa_t *hpa, gpa_t end, int level, unsigned prot,
			unsigned memtype)
{
	struct kvm *kvm = vcpu->kvm;
	unsigned access;
	long n = 0;
	int r;

	/* The first leaf's (@level) tables; the rest of a run shares them. */
	r = s2_mmu_topup(vcpu, s2_map_need(kvm, level));
	if (r)
		return r;
	if (s2_unlikely(!s2_root_valid(vcpu->root)) && (r = s2_vcpu_follow(vcpu)))
		return r;
	prot = s2_map_prot(slot, prot, &access);
	s2_mmu_read_lock_vcpu_call(vcpu);
	/* As the batched fill checks: the memslot, the root, and a memslot
	 * update zapping the range (it publishes the new set after). */
	if (__atomic_load_n(&kvm->memslots_gen, __ATOMIC_ACQUIRE) == gen &&
	    s2_root_valid(vcpu->root) &&
	    !(gpa_to_gfn(*gpa) < kvm->slot_zap_end && gpa_to_gfn(end) > kvm->slot_zap_start)) {
		n = s2_map_leaves(vcpu, slot, gpa, hpa, end, prot, access, memtype,
				  kvm->yield_batch ? kvm->yield_batch : 1, true);
		if (n > 0)
			s2_hold_stat(kvm, (uint64_t)n);
	}
	s2_mmu_read_unlock_vcpu(vcpu);
	if (n < 0)
		return (int)n;
	return *gpa < end ? -EAGAIN : 0;
}

/*
 * kvm_mmu_map_range() in one write-side hold, the whole invalidation
 * inside it: begin, zap what the range holds, install, end (faults that
 * resolved a pfn before it retry on the seq it moves). For a range of few
 * leaves this is one lock acquisition instead of three (the invalidation's
 * two ends and the fill's read side); no fault can run in between, so the
 * zap needs no emptiness check first. Returns 0 when the range is mapped,
 * -EAGAIN when it stopped short (the cache, the batch, a memslot update,
 * an invalid root) with *@gpa and *@hpa at what is left, or an errno.
 */
static int s2_map_one_hold(struct kvm_vcpu *vcpu, const struct kvm_memory_slot *slot, uint64_t gen,
			   gpa_t *gpa, hpa_t *hpa, gpa_t end, unsigned prot, unsigned memtype)
{
	struct kvm *kvm = vcpu->kvm;
	struct s2_change_acc acc;
	struct s2_range_op op = { .kind = S2_RANGE_ZAP,
				  .start = gpa_to_gfn(*gpa),
				  .end = gpa_to_gfn(end),
				  .acc = &acc,
				  .hold = S2_HOLD_WRITE };
	unsigned access;
	long n;
	int r;

	/* The first leaf's tables (s2_map_leaves stops where the cache runs
	 * short, and the batched path tops up for the rest). */
	r = s2_mmu_topup(vcpu, s2_map_need(kvm, s2_map_level(kvm, slot, *gpa, *hpa, end)));
	if (r)
		return r;
	if (s2_unlikely(!s2_root_valid(vcpu->root)) && (r = s2_vcpu_follow(vcpu)))
		return r;
	prot = s2_map_prot(slot, prot, &access);
	s2_acc_init(&acc);
	s2_mmu_write_lock(kvm);
	s2_invalidate_begin(kvm);
	s2_invalidate_add(kvm, op.start, op.end);
	/* Rule 1: what the range holds goes first (flushed at the unlock
	 * only when it removed something). The zap may yield the lock; the
	 * invalidation keeps faults out of the range meanwhile. */
	n = s2_range(kvm, &op);
	if (n >= 0 && __atomic_load_n(&kvm->memslots_gen, __ATOMIC_ACQUIRE) == gen &&
	    s2_root_valid(vcpu->root) &&
	    !(op.start < kvm->slot_zap_end && op.end > kvm->slot_zap_start)) {
		n = s2_map_leaves(vcpu, slot, gpa, hpa, end, prot, access, memtype,
				  kvm->yield_batch ? kvm->yield_batch : 1, false);
		if (n > 0)
			s2_hold_stat(kvm, (uint64_t)n);
	} else if (n >= 0) {
		n = 0; /* the memslot or the root moved: the batched path */
	}
	(void)s2_invalidate_end(kvm);
	s2_mmu_write_unlock(kvm, &acc);
	if (n < 0)
		return (int)n;
	return *gpa < end ? -EAGAIN : 0;
}

/* kvm_mmu_map_range() inside its invalidation: zap, then fill. */
static int s2_map_fill(struct kvm_vcpu *vcpu, struct kvm_memory_slot *slotp, uint64_t gen,
		       gpa_t gpa, hpa_t hpa, gpa_t end, unsigned prot, unsigned memtype)
{
	struct kvm *kvm = vcpu->kvm;
	struct kvm_memory_slot slot = *slotp;
	unsigned need, access;
	long z;
	int r;

	/* Rule 1: what the range holds goes first, flushed by the zap only
	 * when it removed something. No fault can install in the range any
	 * more (the invalidation is in progress), so what the check finds
	 * empty stays empty. */
	z = kvm_mmu_for_each_leaf(kvm, gpa_to_gfn(gpa), gpa_to_gfn(end), s2_map_any_leaf, NULL);
	if (z > 0)
		z = kvm_zap_gfn_range(kvm, gpa_to_gfn(gpa), gpa_to_gfn(end));
	if (z < 0)
		return (int)z;
	prot = s2_map_prot(&slot, prot, &access);
	while (gpa < end) {
		uint64_t budget = kvm->yield_batch ? kvm->yield_batch : 1;
		long n;

		/* A leaf of level L links at most levels - L tables: the cache
		 * is filled for the next leaf (three pages for a 4 KiB leaf of
		 * a 4-level table, one for a 1 GiB leaf), not always for the
		 * worst. */
		need = s2_map_need(kvm, s2_map_level(kvm, &slot, gpa, hpa, end));
		r = s2_mmu_topup(vcpu, need);
		if (r)
			return r;
		if (s2_unlikely(!s2_root_valid(vcpu->root)) && (r = s2_vcpu_follow(vcpu)))
			return r;
		s2_mmu_read_lock_vcpu_call(vcpu);
		if (__atomic_load_n(&kvm->memslots_gen, __ATOMIC_ACQUIRE) != gen ||
		    !s2_root_valid(vcpu->root)) {
			s2_mmu_read_unlock_vcpu(vcpu);
			/* The memslot moved: check the range again. */
			if (s2_memslot_snapshot(kvm, gpa_to_gfn(gpa), &slot, &gen) ||
			    gpa_to_gfn(end - 1) >= slot.base_gfn + slot.npages)
				return -ENOENT;
			continue;
		}
		/* A memslot update is zapping the range and may yield before
		 * it publishes the new set (this call's own invalidation does
		 * not stop itself): wait for it, then check the slot again. */
		if (s2_unlikely(gpa_to_gfn(gpa) < kvm->slot_zap_end &&
				gpa_to_gfn(end) > kvm->slot_zap_start)) {
			s2_mmu_read_unlock_vcpu(vcpu);
			s2_relax(kvm->env);
			continue;
		}
		/* Each leaf only while the cache holds the tables it may link. */
		n = s2_map_leaves(vcpu, &slot, &gpa, &hpa, end, prot, access, memtype, budget,
				  false);
		if (n < 0) {
			s2_mmu_read_unlock_vcpu(vcpu);
			return (int)n;
		}
		s2_hold_stat(kvm, (uint64_t)n);
		s2_mmu_read_unlock_vcpu(vcpu);
	}
	return 0;
}

static S2_ALWAYS_INLINE int kvm_mmu_map_range_untraced(struct kvm_vcpu *vcpu, gpa_t gpa, hpa_t hpa,
						       uint64_t size, unsigned prot,
						       unsigned memtype)
{
	struct kvm_memory_slot slot;
	struct kvm *kvm;
	uint64_t gen;
	gpa_t end;
	int r, level;

	if (!vcpu)
		return -EINVAL;
	kvm = vcpu->kvm;
	if (s2_kvm_dead(kvm))
		return -EIO;
	if (kvm->gfn_direct_bits)
		return -ENOTSUP;
	if (!s2_range_ok(kvm, gpa, size) || (hpa & ((1ull << S2_GFN_SHIFT) - 1)) ||
	    (kvm->cfg.pa_bits < 64 &&
	     (hpa >> kvm->cfg.pa_bits || size > (1ull << kvm->cfg.pa_bits) - hpa)))
		return -EINVAL;
	if (!(prot & S2_PROT_R) || (prot & ~S2_MAP_PROT_OK) ||
	    (memtype & ~(S2_MT_MASK | S2_MT_IGNORE_PAT)) || (memtype & S2_MT_MASK) >= S2_MT_NR)
		return -EINVAL;
	end = gpa + size;
	if (s2_vcpu_slot(vcpu, gpa_to_gfn(gpa), &slot, &gen) ||
	    gpa_to_gfn(end - 1) >= slot.base_gfn + slot.npages)
		return -ENOENT;
	if ((prot & S2_PROT_W) && (slot.flags & KVM_MEM_READONLY))
		return -EINVAL;
	/* Faults of the range retry until the mapping is complete: one that
	 * resolved another pfn cannot get in between the zap and the install
	 * (rule 1 would refuse the install and bug the VM). */
	/* One hold when the range needs few leaves (the common static map:
	 * a few huge leaves); what that left goes through the batches. */
	level = s2_map_level(kvm, &slot, gpa, hpa, end);
	if (size >> s2_level_shift(&kvm->cfg, level) < (kvm->yield_batch ? kvm->yield_batch : 1)) {
		/* Into an empty range under the read side; from what is not
		 * empty on, under the write side. */
		r = s2_map_empty(vcpu, &slot, gen, &gpa, &hpa, end, level, prot, memtype);
		if (r != -EAGAIN)
			return r;
		r = s2_map_one_hold(vcpu, &slot, gen, &gpa, &hpa, end, prot, memtype);
		if (r != -EAGAIN)
			return r;
	}
	s2_map_invalidate(kvm, gpa_to_gfn(gpa), gpa_to_gfn(end), true);
	r = s2_map_fill(vcpu, &slot, gen, gpa, hpa, end, prot, memtype);
	s2_map_invalidate(kvm, gpa_to_gfn(gpa), gpa_to_gfn(end), false);
	return r;
}

int kvm_mmu_map_range(struct kvm_vcpu *vcpu, gpa_t gpa, hpa_t hpa, uint64_t size, unsigned prot,
		      unsigned memtype)
{
	int r = kvm_mmu_map_range_untraced(vcpu, gpa, hpa, size, prot, memtype);

	if (vcpu)
		S2_TRACE(vcpu->kvm, "map_range", r, S2_TA_DEC("vcpu", vcpu->id),
			 S2_TA_HEX("gpa", gpa), S2_TA_HEX("hpa", hpa), S2_TA_HEX("size", size),
			 S2_TA_HEX("prot", prot), S2_TA_HEX("memtype", memtype));
	return r;
}

long kvm_mmu_unmap_range(struct kvm *kvm, gpa_t gpa, uint64_t size)
{
	if (!kvm)
		return -EINVAL;
	if (!s2_range_ok(kvm, gpa, size))
		return -EINVAL;
	return kvm_zap_gfn_range(kvm, gpa_to_gfn(gpa), gpa_to_gfn(gpa + size));
}

static S2_ALWAYS_INLINE long kvm_mmu_wrprotect_range_untraced(struct kvm *kvm, gpa_t gpa,
							      uint64_t size)
{
	struct s2_change_acc acc;
	struct s2_range_op op = { .kind = S2_RANGE_WRPROTECT_MMU,
				  .acc = &acc,
				  .hold = S2_HOLD_WRITE };
	long r;

	if (!kvm)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	if (!s2_range_ok(kvm, gpa, size))
		return -EINVAL;
	op.start = gpa_to_gfn(gpa);
	op.end = gpa_to_gfn(gpa + size);
	s2_acc_init(&acc);
	s2_mmu_write_lock(kvm);
	r = s2_range(kvm, &op);
	s2_mmu_write_unlock(kvm, &acc);
	return r;
}

long kvm_mmu_wrprotect_range(struct kvm *kvm, gpa_t gpa, uint64_t size)
{
	long r = kvm_mmu_wrprotect_range_untraced(kvm, gpa, size);

	S2_TRACE(kvm, "wrprotect_range", r, S2_TA_HEX("gpa", gpa), S2_TA_HEX("size", size));
	return r;
}

/*
 * Whether W may go straight into the leaves of [start, end) (mmu_lock held
 * for write): no memslot over it logs dirty pages and nothing is
 * write-tracked. -EINVAL when W is asked over a read-only memslot.
 */
static int s2_protect_w_direct(struct kvm *kvm, gfn_t start, gfn_t end, bool *direct)
{
	const struct s2_memslots *ms;
	int r = 0;

	*direct = !__atomic_load_n(&kvm->dirty.write_track, __ATOMIC_ACQUIRE);
	if (kvm->env->ops->rcu_read_lock)
		kvm->env->ops->rcu_read_lock(kvm->env->ctx);
	ms = __atomic_load_n(&kvm->memslots, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < ms->nr; i++) {
		const struct kvm_memory_slot *sl = &ms->slots[i];

		if (sl->base_gfn >= end || sl->base_gfn + sl->npages <= start)
			continue;
		if (sl->flags & KVM_MEM_READONLY)
			r = -EINVAL;
		if (ms->dirty[i] || (sl->flags & KVM_MEM_LOG_DIRTY_PAGES))
			*direct = false;
	}
	if (kvm->env->ops->rcu_read_unlock)
		kvm->env->ops->rcu_read_unlock(kvm->env->ctx);
	return r;
}

long kvm_mmu_protect_range(struct kvm *kvm, gpa_t gpa, uint64_t size, unsigned prot)
{
	struct s2_change_acc acc;
	struct s2_protect_arg a = { .prot = prot };
	struct s2_range_op op = {
		.kind = S2_RANGE_PROTECT, .acc = &acc, .arg = &a, .hold = S2_HOLD_WRITE
	};
	long r;

	if (!kvm)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	if (!s2_range_ok(kvm, gpa, size) || !(prot & S2_PROT_R) || (prot & ~S2_PROT_RWX))
		return -EINVAL;
	if (kvm->gfn_direct_bits)
		return -ENOTSUP; /* private memory is RWX (rule 6) */
	op.start = gpa_to_gfn(gpa);
	op.end = gpa_to_gfn(gpa + size);
	s2_acc_init(&acc);
	s2_mmu_write_lock(kvm);
	/* Under the lock: a slot that starts logging later protects the
	 * leaves after this, under it too. */
	r = s2_protect_w_direct(kvm, op.start, op.end, &a.w_direct);
	if (!r || !(prot & S2_PROT_W))
		r = s2_range(kvm, &op);
	s2_mmu_write_unlock(kvm, &acc);
	return r;
}

long kvm_vcpu_pre_fault_memory(struct kvm_vcpu *vcpu, gpa_t gpa, uint64_t size)
{
	gpa_t start = gpa, end;
	struct kvm *kvm;

	if (!vcpu)
		return -EINVAL;
	kvm = vcpu->kvm;
	if (s2_kvm_dead(kvm))
		return -EIO;
	if (!s2_range_ok(kvm, gpa, size))
		return -EINVAL;
	end = gpa + size;
	while (gpa < end) {
		struct s2_mapping m;
		int r = kvm_tdp_page_fault(vcpu, gpa, S2_ACC_READ);

		if (r == RET_PF_RETRY)
			continue;
		if (r == RET_PF_EMULATE_MMIO)
			r = -ENOENT;
		else if (r != RET_PF_FIXED && r != RET_PF_SPURIOUS && r >= 0)
			r = -EFAULT;
		if (!r || r == RET_PF_SPURIOUS)
			r = kvm_mmu_lookup(kvm, gpa, &m);
		if (!r && !m.present)
			continue; /* zapped at once by an invalidation: again */
		if (r)
			return gpa > start ? (long)(gpa - start) : r;
		/* To the end of the leaf that maps gpa. */
		gpa = (gpa & ~(m.size - 1)) + m.size;
	}
	return (long)(end - start);
}

/* ---- prepare / commit ---- */

/*
 * The table pages kvm_mmu_prepare() reserved: a stack under a spinlock
 * (top-ups of several vcpus may pop at once). Pages go back zeroed, as the
 * env hands them out.
 */
struct s2_reserve {
	struct s2_spinlock lock;
	size_t bytes; /* one table page of the VM's granule */
	uint64_t nr, cap;
	struct s2_page pg[];
};

static void s2_page_zero(void *va, size_t bytes)
{
	uint64_t *p = va;

	for (size_t i = 0; i < bytes / sizeof(*p); i++)
		p[i] = 0;
}

void *s2_table_alloc(struct kvm *kvm, size_t bytes, hpa_t *pa)
{
	struct s2_reserve *rs = __atomic_load_n(&kvm->reserve, __ATOMIC_ACQUIRE);
	const struct s2_env *env = kvm->env;
	void *va = NULL;

	if (rs && bytes == rs->bytes) {
		for (int tries = 0; tries < 2 && !va; tries++) {
			s2_spin_lock(&rs->lock, env);
			if (rs->nr) {
				rs->nr--;
				va = rs->pg[rs->nr].va;
				*pa = rs->pg[rs->nr].pa;
			}
			s2_spin_unlock(&rs->lock);
			/*
			 * Empty while unlinked tables wait for their grace
			 * period: wait for them rather than go to the env
			 * (no lock is held here; a VM that unmaps and maps
			 * again stays inside its reserve).
			 */
			if (!va && !tries &&
			    __atomic_load_n(&kvm->rcu_table_pages, __ATOMIC_ACQUIRE) &&
			    env->ops->rcu_barrier)
				env->ops->rcu_barrier(env->ctx);
			else
				break;
		}
		if (va)
			return va;
	}
	return env->ops->alloc_table(env->ctx, bytes, pa);
}

void s2_table_free(struct kvm *kvm, void *va, hpa_t pa, size_t bytes)
{
	struct s2_reserve *rs = __atomic_load_n(&kvm->reserve, __ATOMIC_ACQUIRE);
	const struct s2_env *env = kvm->env;

	if (rs && bytes == rs->bytes && !__atomic_load_n(&kvm->destroying, __ATOMIC_ACQUIRE)) {
		bool kept = false;

		s2_page_zero(va, bytes);
		s2_spin_lock(&rs->lock, env);
		if (rs->nr < rs->cap) {
			rs->pg[rs->nr].va = va;
			rs->pg[rs->nr].pa = pa;
			rs->nr++;
			kept = true;
		}
		s2_spin_unlock(&rs->lock);
		if (kept)
			return;
	}
	env->ops->free_table(env->ctx, va, pa, bytes);
}

static void s2_reserve_free(const struct s2_env *env, struct s2_reserve *rs)
{
	while (rs->nr) {
		rs->nr--;
		env->ops->free_table(env->ctx, rs->pg[rs->nr].va, rs->pg[rs->nr].pa, rs->bytes);
	}
	env->ops->free(env->ctx, rs);
}

void s2_reserve_destroy(struct kvm *kvm)
{
	if (kvm->reserve)
		s2_reserve_free(kvm->env, kvm->reserve);
	kvm->reserve = NULL;
}

int kvm_mmu_prepare(struct kvm *kvm, const struct s2_sizing_region *r, size_t n, unsigned nr_vcpus)
{
	const struct s2_env *env;
	struct s2_sizing_cfg cfg;
	struct s2_reserve *rs;
	uint64_t pages;
	int ret;

	if (!kvm || (!r && n))
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	if (kvm->gfn_direct_bits)
		return -ENOTSUP;
	if (nr_vcpus > kvm->max_vcpus)
		return -EINVAL;
	ret = kvm_sizing_cfg(kvm, &cfg);
	if (!ret)
		ret = s2_sizing_table_pages(&cfg, r, n, &pages);
	if (ret)
		return ret;
	/* What the vcpus' caches hold beyond the linked tables. */
	pages += (uint64_t)nr_vcpus * (kvm->cfg.levels - 1u);
	if (__atomic_load_n(&kvm->reserve, __ATOMIC_ACQUIRE))
		return -EBUSY;
	if (pages > ((uint64_t)1 << 40) / sizeof(struct s2_page))
		return -ENOMEM;
	env = kvm->env;
	rs = env->ops->zalloc(env->ctx, sizeof(*rs) + pages * sizeof(rs->pg[0]));
	if (!rs)
		return -ENOMEM;
	rs->bytes = (size_t)s2_table_bytes(&kvm->cfg);
	rs->cap = pages;
	while (rs->nr < pages) {
		struct s2_page *p = &rs->pg[rs->nr];

		p->va = env->ops->alloc_table(env->ctx, rs->bytes, &p->pa);
		if (!p->va) {
			s2_reserve_free(env, rs);
			return -ENOMEM;
		}
		rs->nr++;
	}
	/* Only one prepare wins; the other gives its pages back. */
	{
		struct s2_reserve *none = NULL;

		if (!__atomic_compare_exchange_n(&kvm->reserve, &none, rs, false, __ATOMIC_RELEASE,
						 __ATOMIC_RELAXED)) {
			s2_reserve_free(env, rs);
			return -EBUSY;
		}
	}
	return 0;
}

uint64_t kvm_mmu_reserve_pages(const struct kvm *kvm)
{
	struct s2_reserve *rs;
	uint64_t nr;

	if (!kvm || !(rs = __atomic_load_n(&kvm->reserve, __ATOMIC_ACQUIRE)))
		return 0;
	s2_spin_lock(&rs->lock, kvm->env);
	nr = rs->nr;
	s2_spin_unlock(&rs->lock);
	return nr;
}
