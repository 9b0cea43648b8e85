// SPDX-License-Identifier: MIT
/*
 * Dirty logging and write tracking: the format-neutral half. Bitmaps, rings,
 * the order of steps and the locks are here; what touches entries is a
 * range kind compiled per format (core/dirty_tmpl.h).
 *
 * Locks: the slots lock serialises whatever looks at a slot's logging state
 * from outside the fault path (flag changes, get, clear, ring reset, caps),
 * then mmu_lock is taken for write around entry changes. Ring consumers
 * (harvest, reset) also hold kvm->dirty.lock; the ring's producer is its
 * vcpu's thread. Write-tracking updates hold kvm->dirty.track_lock. All are
 * spinlocks: no hook that may sleep (gfn_to_pfn, table and metadata
 * allocation and freeing, synchronize_rcu) is called under one. A slot's
 * start (split, protect) and stop (collapse) run after the memslot update
 * published it and dropped the slots lock, and check under mmu_lock that
 * the slot is still what they work on.
 *
 * Recording a write never needs mmu_lock for write: a fault records under
 * the read side, anything else under RCU only. Bitmaps are looked up from
 * the published memslot array inside an RCU read section and freed only
 * after a grace period, so a recorder never touches a freed bitmap.
 *
 * Flushes (rule 2): a harvest that collected anything flushes once, before
 * mmu_lock is dropped, through the acc it settles; enabling flushes once when
 * a leaf in the slot was (or could be made) writable without a fault; write
 * tracking flushes when a leaf loses MMU-writable (the change handler owes
 * it). docs/dirty-logging.md has the reasoning.
 */
#include "core/kvm_internal.h"

#define S2_RING_MIN 16u
#define S2_CLEAR_CHUNK 64u /* bitmap words a clear collects per re-protection */
#define S2_RING_MAX 65536u

/* ---- small helpers ---- */

static void s2_rcu_lock(const struct kvm *kvm)
{
	if (kvm->env->ops->rcu_read_lock)
		kvm->env->ops->rcu_read_lock(kvm->env->ctx);
}

static void s2_rcu_unlock(const struct kvm *kvm)
{
	if (kvm->env->ops->rcu_read_unlock)
		kvm->env->ops->rcu_read_unlock(kvm->env->ctx);
}

static gfn_t s2_gfn_limit(const struct kvm *kvm)
{
	return 1ull << (kvm->cfg.gpa_bits - S2_GFN_SHIFT);
}

static void s2_dstat_add(uint64_t *ctr, uint64_t v)
{
	if (v)
		__atomic_fetch_add(ctr, v, __ATOMIC_RELAXED);
}

static const struct s2_memslots *s2_slots(const struct kvm *kvm)
{
	return __atomic_load_n(&kvm->memslots, __ATOMIC_ACQUIRE);
}

/* Bits set in @w, without a libgcc call where the ISA lacks an instruction. */
static inline unsigned s2_popcount(uint64_t w)
{
	w = w - ((w >> 1) & 0x5555555555555555ull);
	w = (w & 0x3333333333333333ull) + ((w >> 2) & 0x3333333333333333ull);
	w = (w + (w >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (unsigned)((w * 0x0101010101010101ull) >> 56);
}

/* The bitmap of slot @s of @ms (NULL: the slot does not log). */
static struct s2_slot_dirty *s2_slot_dirty_of(const struct s2_memslots *ms,
					      const struct kvm_memory_slot *s)
{
	return ms->dirty[s - ms->slots];
}

/* Index of slot @id in @ms, or -1. */
static int s2_slot_index(const struct s2_memslots *ms, unsigned id)
{
	return s2_memslots_id_index(ms, id); /* O(1): the set's id table */
}

/*
 * Whether the VM's leaves keep a dirty state the hardware sets on the first
 * write: a fresh writable leaf made without S2_PROT_DIRTY reads back clean.
 * Formats without one report a writable leaf as dirty (EPT without A/D,
 * arm64 without HD, RISC-V without Svadu).
 */
static bool s2_dirty_capable(const struct kvm *kvm)
{
	const struct s2_fmt_ops *o = kvm->ops;
	unsigned prot = S2_PROT_R | S2_PROT_W | S2_PROT_HOST_WRITABLE | S2_PROT_MMU_WRITABLE |
			S2_PROT_ACCESSED;
	s2_pte_t leaf = o->make_leaf(&kvm->cfg, 1, 0, prot, S2_MT_WB);

	return !(o->leaf_prot(&kvm->cfg, leaf, 1) & S2_PROT_DIRTY);
}

static unsigned s2_caps(const struct kvm *kvm)
{
	return __atomic_load_n(&kvm->dirty.caps, __ATOMIC_RELAXED);
}

bool kvm_dirty_log_hw(const struct kvm *kvm)
{
	return kvm && !(s2_caps(kvm) & KVM_DIRTY_LOG_WRPROTECT) && s2_dirty_capable(kvm);
}

unsigned kvm_dirty_log_caps(const struct kvm *kvm)
{
	return kvm ? s2_caps(kvm) : 0;
}

static bool s2_any_slot_logs(const struct s2_memslots *ms)
{
	for (unsigned i = 0; i < ms->nr; i++)
		if (ms->dirty[i])
			return true;
	return false;
}

static S2_ALWAYS_INLINE int kvm_dirty_log_set_caps_untraced(struct kvm *kvm, unsigned caps)
{
	int r = 0;

	if (!kvm || (caps & ~KVM_DIRTY_LOG_CAPS_VALID))
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	/* PML is EPT's (kvm_flush_pml_buffer exists only with EPT built); an
	 * NPT, arm64 or RISC-V VM refuses it whatever its dirty state. */
	if ((caps & KVM_DIRTY_LOG_PML) &&
	    (!S2_ENABLED(CONFIG_S2_FMT_X86_EPT) || kvm->ops->id != S2_FMT_X86_EPT ||
	     (caps & KVM_DIRTY_LOG_WRPROTECT) || !s2_dirty_capable(kvm)))
		return -EINVAL;
	s2_spin_lock(&kvm->slots_lock, kvm->env);
	if (s2_any_slot_logs(kvm->memslots))
		r = -EBUSY;
	else
		__atomic_store_n(&kvm->dirty.caps, caps, __ATOMIC_RELAXED);
	s2_spin_unlock(&kvm->slots_lock);
	return r;
}

int kvm_dirty_log_set_caps(struct kvm *kvm, unsigned caps)
{
	int r = kvm_dirty_log_set_caps_untraced(kvm, caps);

	S2_TRACE(kvm, "dirty_caps", r, S2_TA_CAPS("caps", caps));
	return r;
}

int kvm_get_dirty_stats(const struct kvm *kvm, struct kvm_dirty_stats *out)
{
	const uint64_t *src;
	uint64_t *dst;

	if (!kvm || !out)
		return -EINVAL;
	src = (const uint64_t *)&kvm->dirty.stat;
	dst = (uint64_t *)out;
	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
	return 0;
}

/* ---- bitmaps ---- */

struct s2_slot_dirty *s2_dirty_slot_alloc(struct kvm *kvm, const struct kvm_memory_slot *slot)
{
	const struct s2_env *env = kvm->env;
	uint64_t nwords = (slot->npages + 63) / 64;
	struct s2_slot_dirty *d;

	d = env->ops->zalloc(env->ctx, sizeof(*d) + nwords * sizeof(d->bits[0]));
	if (!d)
		return NULL;
	d->npages = slot->npages;
	d->nwords = nwords;
	/* From now on write faults may find write-protected, MMU-writable
	 * leaves: let them try the fast path. */
	__atomic_store_n(&kvm->dirty.fast_write, 1, __ATOMIC_RELAXED);
	/* Caps change only while no slot logs: these are the slot's. */
	/* With PML too: a buffer handed over after the vcpu's exit may name
	 * a gfn whose slot moved meanwhile, so the leaf's own D is recorded. */
	if (kvm_dirty_log_hw(kvm))
		__atomic_store_n(&kvm->dirty.hw_scan, 1, __ATOMIC_RELAXED);
	return d;
}

void s2_dirty_slot_free(struct kvm *kvm, struct s2_slot_dirty *d)
{
	if (d)
		kvm->env->ops->free(kvm->env->ctx, d);
}

static void s2_bit_set(uint64_t *bits, uint64_t i)
{
	uint64_t bit = 1ull << (i & 63);

	if (!(__atomic_load_n(&bits[i >> 6], __ATOMIC_RELAXED) & bit))
		__atomic_fetch_or(&bits[i >> 6], bit, __ATOMIC_RELAXED);
}

/* ---- rings ---- */

static S2_ALWAYS_INLINE int kvm_dirty_ring_enable_untraced(struct kvm *kvm, uint32_t entries,
							   uint32_t reserve)
{
	int r = 0;

	if (!kvm)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	if (entries < S2_RING_MIN || entries > S2_RING_MAX || (entries & (entries - 1)) ||
	    reserve >= entries - 8)
		return -EINVAL;
	s2_spin_lock(&kvm->vcpus_lock, kvm->env);
	if (kvm->nr_vcpus || kvm->dirty.ring_size)
		r = -EBUSY;
	else {
		kvm->dirty.ring_soft = entries - reserve;
		__atomic_store_n(&kvm->dirty.ring_size, entries, __ATOMIC_RELEASE);
	}
	s2_spin_unlock(&kvm->vcpus_lock);
	return r;
}

int kvm_dirty_ring_enable(struct kvm *kvm, uint32_t entries, uint32_t reserve)
{
	int r = kvm_dirty_ring_enable_untraced(kvm, entries, reserve);

	S2_TRACE(kvm, "dirty_ring_enable", r, S2_TA_DEC("entries", entries),
		 S2_TA_DEC("reserve", reserve));
	return r;
}

int s2_dirty_vcpu_init(struct kvm_vcpu *vcpu)
{
	struct kvm *kvm = vcpu->kvm;
	uint32_t size = __atomic_load_n(&kvm->dirty.ring_size, __ATOMIC_ACQUIRE);
	struct s2_dirty_ring *r;

	if (!size)
		return 0;
	r = kvm->env->ops->zalloc(kvm->env->ctx, sizeof(*r) + size * sizeof(r->e[0]));
	if (!r)
		return -ENOMEM;
	r->size = size;
	r->soft = kvm->dirty.ring_soft;
	vcpu->dirty_ring = r;
	return 0;
}

void s2_dirty_vcpu_free(struct kvm_vcpu *vcpu)
{
	if (vcpu->dirty_ring)
		vcpu->kvm->env->ops->free(vcpu->kvm->env->ctx, vcpu->dirty_ring);
	vcpu->dirty_ring = NULL;
}

uint32_t kvm_dirty_ring_used(const struct kvm_vcpu *vcpu)
{
	const struct s2_dirty_ring *r = vcpu ? vcpu->dirty_ring : NULL;

	if (!r)
		return 0;
	return __atomic_load_n(&r->push, __ATOMIC_ACQUIRE) -
	       __atomic_load_n(&r->reset, __ATOMIC_ACQUIRE);
}

/*
 * Push (slot @id, page @off) into @vcpu's ring (from the vcpu's thread).
 * Returns false when the ring is full: the caller records in the bitmap.
 */
static bool s2_ring_push(struct kvm *kvm, struct kvm_vcpu *vcpu, unsigned id, uint64_t off)
{
	struct s2_dirty_ring *r = vcpu->dirty_ring;
	uint32_t push = __atomic_load_n(&r->push, __ATOMIC_RELAXED);
	uint32_t reset = __atomic_load_n(&r->reset, __ATOMIC_ACQUIRE);
	struct kvm_dirty_gfn *e;

	if (push - reset >= r->size) {
		s2_dstat_add(&kvm->dirty.stat.ring_overflows, 1);
		kvm_make_request(vcpu, KVM_REQ_DIRTY_RING_SOFT_FULL);
		return false;
	}
	e = &r->e[push & (r->size - 1)];
	e->slot = id;
	e->flags = 0;
	e->offset = off;
	__atomic_store_n(&r->push, push + 1, __ATOMIC_RELEASE);
	s2_dstat_add(&kvm->dirty.stat.ring_pushes, 1);
	if (push + 1 - reset >= r->soft) {
		if (!(__atomic_load_n(&vcpu->requests, __ATOMIC_RELAXED) &
		      (1ull << KVM_REQ_DIRTY_RING_SOFT_FULL)))
			s2_dstat_add(&kvm->dirty.stat.ring_soft_full, 1);
		kvm_make_request(vcpu, KVM_REQ_DIRTY_RING_SOFT_FULL);
	}
	return true;
}

bool kvm_dirty_ring_check_request(struct kvm_vcpu *vcpu)
{
	const struct s2_dirty_ring *r;

	if (!vcpu || !kvm_check_request(vcpu, KVM_REQ_DIRTY_RING_SOFT_FULL))
		return false;
	r = vcpu->dirty_ring;
	if (r && kvm_dirty_ring_used(vcpu) >= r->soft) {
		kvm_make_request(vcpu, KVM_REQ_DIRTY_RING_SOFT_FULL);
		return true;
	}
	return false;
}

static S2_ALWAYS_INLINE long
kvm_dirty_ring_harvest_untraced(struct kvm_vcpu *vcpu, struct kvm_dirty_gfn *out, uint32_t max)
{
	struct s2_dirty_ring *r;
	struct kvm *kvm;
	uint32_t h, n;

	if (!vcpu || !vcpu->dirty_ring || (!out && max))
		return -EINVAL;
	kvm = vcpu->kvm;
	r = vcpu->dirty_ring;
	s2_spin_lock(&kvm->dirty.lock, kvm->env);
	h = r->harvested;
	n = __atomic_load_n(&r->push, __ATOMIC_ACQUIRE) - h;
	if (n > max)
		n = max;
	for (uint32_t k = 0; k < n; k++)
		out[k] = r->e[(h + k) & (r->size - 1)];
	r->harvested = h + n;
	s2_spin_unlock(&kvm->dirty.lock);
	return n;
}

long kvm_dirty_ring_harvest(struct kvm_vcpu *vcpu, struct kvm_dirty_gfn *out, uint32_t max)
{
	long r = kvm_dirty_ring_harvest_untraced(vcpu, out, max);

	if (vcpu)
		S2_TRACE(vcpu->kvm, "dirty_ring_harvest", r, S2_TA_DEC("vcpu", vcpu->id),
			 S2_TA_DEC("max", max));
	return r;
}

/* ---- recording a write ---- */

/*
 * Record a write to @gfn of slot @s (bitmap @d): into @vcpu's ring when it
 * has one and there is room, else the bitmap. With a granule larger than
 * 4 KiB the write may have hit any gfn of its granule page: every one is
 * recorded (the ring names the first; re-protection covers the page).
 */
static void s2_dirty_mark_slot(struct kvm *kvm, struct kvm_vcpu *vcpu,
			       const struct kvm_memory_slot *s, struct s2_slot_dirty *d, gfn_t gfn)
{
	uint64_t gran = 1ull << (kvm->cfg.page_shift - S2_GFN_SHIFT);
	uint64_t off = (gfn - s->base_gfn) & ~(gran - 1);

	s2_dstat_add(&kvm->dirty.stat.marked, 1);
	if (vcpu && vcpu->dirty_ring && s2_ring_push(kvm, vcpu, s->id, off))
		return;
	for (uint64_t k = 0; k < gran && off + k < d->npages; k++)
		s2_bit_set(d->bits, off + k);
}

/* Look @gfn's slot up (RCU) and record the write if it logs. */
static int s2_dirty_mark(struct kvm *kvm, struct kvm_vcpu *vcpu, gfn_t gfn)
{
	const struct s2_memslots *ms;
	const struct kvm_memory_slot *s;
	struct s2_slot_dirty *d = NULL;

	s2_rcu_lock(kvm);
	ms = s2_slots(kvm);
	s = s2_memslots_find(ms, gfn);
	if (s)
		d = s2_slot_dirty_of(ms, s);
	if (d)
		s2_dirty_mark_slot(kvm, vcpu, s, d, gfn);
	s2_rcu_unlock(kvm);
	return d != NULL;
}

void s2_dirty_mark_fault(struct kvm_vcpu *vcpu, gfn_t gfn)
{
	(void)s2_dirty_mark(vcpu->kvm, vcpu, gfn);
}

static S2_ALWAYS_INLINE int kvm_mark_page_dirty_untraced(struct kvm *kvm, gfn_t gfn)
{
	if (!kvm || gfn >= s2_gfn_limit(kvm))
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	return s2_dirty_mark(kvm, NULL, gfn);
}

int kvm_mark_page_dirty(struct kvm *kvm, gfn_t gfn)
{
	int r = kvm_mark_page_dirty_untraced(kvm, gfn);

	S2_TRACE(kvm, "mark_dirty", r, S2_TA_HEX("gfn", gfn));
	return r;
}

static S2_ALWAYS_INLINE int kvm_vcpu_mark_page_dirty_untraced(struct kvm_vcpu *vcpu, gfn_t gfn)
{
	if (!vcpu || gfn >= s2_gfn_limit(vcpu->kvm))
		return -EINVAL;
	if (s2_kvm_dead(vcpu->kvm))
		return -EIO;
	return s2_dirty_mark(vcpu->kvm, vcpu, gfn);
}

int kvm_vcpu_mark_page_dirty(struct kvm_vcpu *vcpu, gfn_t gfn)
{
	int r = kvm_vcpu_mark_page_dirty_untraced(vcpu, gfn);

	if (vcpu)
		S2_TRACE(vcpu->kvm, "mark_dirty", r, S2_TA_DEC("vcpu", vcpu->id),
			 S2_TA_HEX("gfn", gfn));
	return r;
}

/* EPT's page-modification log: absent from builds without EPT. */
#if S2_ENABLED(CONFIG_S2_FMT_X86_EPT)
static S2_ALWAYS_INLINE long kvm_flush_pml_buffer_untraced(struct kvm_vcpu *vcpu,
							   const uint64_t *gpas, unsigned n)
{
	const struct s2_memslots *ms;
	struct kvm *kvm;
	long done = 0;

	if (!vcpu || (!gpas && n))
		return -EINVAL;
	kvm = vcpu->kvm;
	if (s2_kvm_dead(kvm))
		return -EIO;
	if (!(s2_caps(kvm) & KVM_DIRTY_LOG_PML))
		return -EINVAL;
	s2_rcu_lock(kvm);
	ms = s2_slots(kvm);
	for (unsigned i = 0; i < n; i++) {
		/* A TD's hardware logs the shared half's gpa (shared bit set). */
		gfn_t gfn = s2_slot_gfn(kvm, gpa_to_gfn(gpas[i]));
		const struct kvm_memory_slot *s;
		struct s2_slot_dirty *d;

		if (gfn >= s2_gfn_limit(kvm))
			continue;
		s = s2_memslots_find(ms, gfn);
		d = s ? s2_slot_dirty_of(ms, s) : NULL;
		if (!d)
			continue;
		s2_dirty_mark_slot(kvm, vcpu, s, d, gfn);
		done++;
	}
	s2_rcu_unlock(kvm);
	return done;
}

long kvm_flush_pml_buffer(struct kvm_vcpu *vcpu, const uint64_t *gpas, unsigned n)
{
	long r = kvm_flush_pml_buffer_untraced(vcpu, gpas, n);

	/* One line a logged gpa (a buffer holds 512), the result on the last. */
	if (vcpu && gpas)
		for (unsigned i = 0; i < n; i++)
			S2_TRACE(vcpu->kvm, "pml", i + 1 < n ? S2_TRACE_NORET : r,
				 S2_TA_DEC("vcpu", vcpu->id), S2_TA_HEX("gpa", gpas[i]));
	return r;
}
#endif

void s2_dirty_record_removed(struct kvm *kvm, gfn_t walked, uint64_t pages)
{
	const struct s2_memslots *ms;
	gfn_t gfn = s2_slot_gfn(kvm, walked), end = gfn + pages;

	s2_rcu_lock(kvm);
	ms = s2_slots(kvm);
	/* From the first slot that ends after gfn, in gfn order (disjoint). */
	for (int i = s2_memslots_gfn_lower(ms, gfn); i >= 0 && ms->slots[i].base_gfn < end;
	     i = s2_memslots_gfn_next(ms, (unsigned)i)) {
		const struct kvm_memory_slot *s = &ms->slots[i];
		struct s2_slot_dirty *d = ms->dirty[i];
		gfn_t a = gfn > s->base_gfn ? gfn : s->base_gfn;
		gfn_t b = end < s->base_gfn + s->npages ? end : s->base_gfn + s->npages;

		if (!d)
			continue;
		for (gfn_t g = a; g < b; g++)
			s2_bit_set(d->bits, g - s->base_gfn);
		s2_dstat_add(&kvm->dirty.stat.removed_dirty, b - a);
	}
	s2_rcu_unlock(kvm);
}

/* ---- the fault path ---- */

int s2_dirty_fast_write(struct kvm_vcpu *vcpu, gfn_t gfn, unsigned access)
{
	struct kvm *kvm = vcpu->kvm;
	struct s2_fast_arg a = { .access = access, .ret = -EAGAIN };
	struct s2_change_acc acc;
	/* The faulting vcpu's root only: another root's leaf fixes nothing
	 * for this vcpu (it would fault again and again). */
	struct s2_range_op op = { .kind = S2_RANGE_FAST_WRITE,
				  .start = gfn,
				  .end = gfn + 1,
				  .acc = &acc,
				  .arg = &a,
				  .root = vcpu->root };
	const struct s2_memslots *ms;
	const struct kvm_memory_slot *s;

	/* No slot has logged: nothing was write-protected for it, and the
	 * common fault pays nothing. (Leaves restored from access tracking
	 * keep taking the full path until then.) */
	if (!__atomic_load_n(&kvm->dirty.fast_write, __ATOMIC_RELAXED))
		return -EAGAIN;
	s2_acc_init(&acc);
	s2_mmu_read_lock(kvm);
	/* Looked up after mmu_lock is taken: a slot that just started
	 * logging was published before its leaves were protected, so a leaf
	 * found write-protected here is recorded in its bitmap. */
	s2_rcu_lock(kvm);
	ms = s2_slots(kvm);
	s = s2_memslots_find(ms, gfn);
	if (s && !(s->flags & KVM_MEM_READONLY)) {
		struct s2_slot_dirty *d = s2_slot_dirty_of(ms, s);
		long r;

		a.logging = d != NULL;
		r = s2_range(kvm, &op);
		if (r < 0)
			a.ret = (int)r;
		/* Only the exchange that restored W records the page. */
		if (a.ret == RET_PF_FIXED && d)
			s2_dirty_mark_slot(kvm, vcpu, s, d, gfn);
	}
	s2_rcu_unlock(kvm);
	s2_mmu_read_unlock(kvm, &acc);
	if (a.ret == RET_PF_FIXED)
		s2_dstat_add(&kvm->dirty.stat.fast_fixed, 1);
	return a.ret;
}

int s2_write_track_fault(struct kvm *kvm, struct s2_fault *f, bool write)
{
	const struct s2_write_track *wt =
		__atomic_load_n(&kvm->dirty.write_track, __ATOMIC_ACQUIRE);

	if (!wt)
		return 0;
	if (s2_wt_any(wt, f->gfn, f->gfn + 1)) {
		if (write) {
			s2_dstat_add(&kvm->dirty.stat.write_tracked_faults, 1);
			return RET_PF_WRITE_TRACKED;
		}
		f->prot &= ~(unsigned)(S2_PROT_W | S2_PROT_MMU_WRITABLE | S2_PROT_DIRTY);
	}
	/* No huge leaf over a tracked gfn: the fast path could make it all
	 * writable again. */
	while (f->level > 1) {
		uint64_t n = 1ull << (s2_level_shift(&kvm->cfg, f->level) - S2_GFN_SHIFT);
		gfn_t base = f->gfn & ~(n - 1);

		if (!s2_wt_any(wt, base, base + n))
			break;
		f->level--;
	}
	return 0;
}

/* ---- re-protection ---- */

/*
 * Re-protect the pages base + 64 * w + i for the set bits i of masks[w],
 * with mmu_lock held for write; @cur (zeroed when the lock was taken)
 * carries the leaf table from one mask to the next.
 */
static long s2_protect_masks(struct kvm *kvm, gfn_t base, const uint64_t *masks, uint64_t n,
			     bool hw, struct s2_mask_cursor *cur, struct s2_change_acc *acc)
{
	struct s2_mask_arg a = { .base = base, .masks = masks, .nmasks = n, .hw = hw, .cur = cur };
	struct s2_range_op op = { .kind = S2_RANGE_DIRTY_MASK,
				  .start = base,
				  .end = base + 64 * n,
				  .acc = acc,
				  .arg = &a };

	return s2_range(kvm, &op);
}

/* The span [lo, hi) of gfns a harvest collected, for its one flush, and
 * where its re-protection got to. */
struct s2_reap {
	gfn_t lo, hi;
	uint64_t pages;
	uint64_t masks;
	struct s2_mask_cursor cur; /* zero when mmu_lock is taken */
};

/* @pages pages of @masks masks reaped within [lo, hi) (@pages > 0). */
static void s2_reap_span(struct s2_reap *rp, gfn_t lo, gfn_t hi, uint64_t pages, uint64_t masks)
{
	if (!rp->pages || lo < rp->lo)
		rp->lo = lo;
	if (!rp->pages || hi > rp->hi)
		rp->hi = hi;
	rp->pages += pages;
	rp->masks += masks;
}

static void s2_reap_add(struct s2_reap *rp, gfn_t base, uint64_t mask)
{
	s2_reap_span(rp, base + (gfn_t)s2_ctz64(mask), base + 64 - (gfn_t)s2_clz64(mask),
		     s2_popcount(mask), 1);
}

/* Rule 2 for dirty logging: flush once, and only if something was reaped. */
static void s2_reap_settle(struct kvm *kvm, const struct s2_reap *rp, struct s2_change_acc *acc)
{
	if (!rp->pages)
		return;
	/* Where the tables map them: a TD's shared half at its offset. */
	s2_acc_need_flush(acc, rp->lo + kvm->gfn_direct_bits, rp->hi + kvm->gfn_direct_bits);
	s2_dstat_add(&kvm->dirty.stat.reaped, rp->pages);
	s2_dstat_add(&kvm->dirty.stat.masks, rp->masks);
}

/* ---- get / clear ---- */

/* Find logging slot @id under the slots lock. */
static int s2_logging_slot(struct kvm *kvm, unsigned id, const struct kvm_memory_slot **s,
			   struct s2_slot_dirty **d)
{
	const struct s2_memslots *ms = kvm->memslots;
	int i = s2_slot_index(ms, id);

	if (i < 0 || !ms->dirty[i])
		return -ENOENT;
	*s = &ms->slots[i];
	*d = ms->dirty[i];
	return 0;
}

/* Hardware dirty state without PML: OR the leaves' dirty bits in. */
static long s2_scan_slot(struct kvm *kvm, const struct kvm_memory_slot *s, struct s2_slot_dirty *d,
			 struct s2_change_acc *acc)
{
	struct s2_scan_arg a = { .base = s->base_gfn,
				 .end = s->base_gfn + s->npages,
				 .bits = d->bits };
	struct s2_range_op op = {
		.kind = S2_RANGE_DIRTY_SCAN, .start = a.base, .end = a.end, .acc = acc, .arg = &a
	};

	return s2_range(kvm, &op);
}

static S2_ALWAYS_INLINE long kvm_get_dirty_log_untraced(struct kvm *kvm, unsigned slot_id,
							uint64_t *bitmap)
{
	const struct kvm_memory_slot *s;
	struct s2_slot_dirty *d;
	struct s2_change_acc acc;
	struct s2_reap rp = { .cur.memo.hw_writes = -1 };
	unsigned caps;
	bool hw, manual, scan;
	uint64_t any = 0;
	long r = 0;

	if (!kvm || !bitmap)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	caps = s2_caps(kvm);
	hw = kvm_dirty_log_hw(kvm);
	manual = caps & KVM_DIRTY_LOG_MANUAL_PROTECT;
	scan = hw && !(caps & KVM_DIRTY_LOG_PML);
	s2_acc_init(&acc);
	acc.reaped = true; /* the dirty state it clears is what it collects */
	s2_spin_lock(&kvm->slots_lock, kvm->env);
	r = s2_logging_slot(kvm, slot_id, &s, &d);
	if (r)
		goto out;
	if (manual && !scan) {
		/* Only a copy: no entry changes, no lock. Each word is read
		 * atomically (recorders set bits meanwhile), four at a time. */
		uint64_t w = 0;

		for (; w + 4 <= d->nwords; w += 4) {
			uint64_t m0 = __atomic_load_n(&d->bits[w], __ATOMIC_RELAXED);
			uint64_t m1 = __atomic_load_n(&d->bits[w + 1], __ATOMIC_RELAXED);
			uint64_t m2 = __atomic_load_n(&d->bits[w + 2], __ATOMIC_RELAXED);
			uint64_t m3 = __atomic_load_n(&d->bits[w + 3], __ATOMIC_RELAXED);

			bitmap[w] = m0;
			bitmap[w + 1] = m1;
			bitmap[w + 2] = m2;
			bitmap[w + 3] = m3;
			any |= (m0 | m1) | (m2 | m3);
		}
		for (; w < d->nwords; w++) {
			uint64_t m = __atomic_load_n(&d->bits[w], __ATOMIC_RELAXED);

			bitmap[w] = m;
			any |= m;
		}
		goto out;
	}
	s2_mmu_write_lock(kvm);
	if (scan)
		r = s2_scan_slot(kvm, s, d, &acc);
	for (uint64_t w = 0; w < d->nwords; w++) {
		uint64_t m = __atomic_load_n(&d->bits[w], __ATOMIC_RELAXED);

		if (m && !manual) {
			m = __atomic_exchange_n(&d->bits[w], 0, __ATOMIC_ACQ_REL);
			if (m)
				s2_reap_add(&rp, s->base_gfn + w * 64, m);
		}
		bitmap[w] = m;
		any |= m;
	}
	/* What was collected is re-protected before the lock is dropped. */
	if (!manual && any && r >= 0)
		r = s2_protect_masks(kvm, s->base_gfn, bitmap, d->nwords, hw, &rp.cur, &acc);
	s2_reap_settle(kvm, &rp, &acc);
	s2_mmu_write_unlock_keep_tables(kvm, &acc);
out:
	s2_spin_unlock(&kvm->slots_lock);
	s2_acc_free_tables(kvm, &acc);
	return r < 0 ? r : any != 0;
}

long kvm_get_dirty_log(struct kvm *kvm, unsigned slot_id, uint64_t *bitmap)
{
	long r = kvm_get_dirty_log_untraced(kvm, slot_id, bitmap);

	S2_TRACE(kvm, "get_dirty_log", r, S2_TA_DEC("slot", slot_id));
	return r;
}

static S2_ALWAYS_INLINE long kvm_clear_dirty_log_untraced(struct kvm *kvm, unsigned slot_id,
							  uint64_t first_page, uint64_t num_pages,
							  const uint64_t *bitmap)
{
	const struct kvm_memory_slot *s;
	struct s2_slot_dirty *d;
	struct s2_change_acc acc;
	struct s2_reap rp = { .cur.memo.hw_writes = -1 };
	uint64_t words, tail;
	bool hw;
	long r;

	if (!kvm || !bitmap)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	if (!(s2_caps(kvm) & KVM_DIRTY_LOG_MANUAL_PROTECT) || (first_page & 63))
		return -EINVAL;
	hw = kvm_dirty_log_hw(kvm);
	s2_acc_init(&acc);
	acc.reaped = true; /* the dirty state it clears is what it collects */
	s2_spin_lock(&kvm->slots_lock, kvm->env);
	r = s2_logging_slot(kvm, slot_id, &s, &d);
	if (r)
		goto out;
	if (first_page > d->npages || num_pages > d->npages - first_page ||
	    ((num_pages & 63) && first_page + num_pages != d->npages)) {
		r = -EINVAL;
		goto out;
	}
	words = (num_pages + 63) / 64;
	tail = num_pages & 63 ? (1ull << (num_pages & 63)) - 1 : ~0ull;
	s2_mmu_write_lock(kvm);
	/*
	 * Bits cleared 64 words at a time, then their pages re-protected and
	 * the chunk's span and count reaped at once (a dense log's full words
	 * need no bit counting). The last word of a range that ends inside it
	 * keeps only the range's bits.
	 */
	for (uint64_t i = 0; i < words && r >= 0; i += S2_CLEAR_CHUNK) {
		uint64_t cleared[S2_CLEAR_CHUNK], n, any = 0, pages = 0, nm = 0, lo = 0, hi = 0;
		uint64_t nw = words - i < S2_CLEAR_CHUNK ? words - i : S2_CLEAR_CHUNK;
		uint64_t *bits = &d->bits[first_page / 64 + i];
		gfn_t base = s->base_gfn + first_page + i * 64;

		for (n = 0; n < nw; n++) {
			uint64_t m = bitmap[i + n] & (i + n == words - 1 ? tail : ~0ull);

			m &= __atomic_load_n(&bits[n], __ATOMIC_RELAXED);
			/* Only the bits this call cleared are re-protected. */
			if (m)
				m &= __atomic_fetch_and(&bits[n], ~m, __ATOMIC_ACQ_REL);
			cleared[n] = m;
			if (m) {
				lo = any ? lo : n;
				hi = n;
				pages += m == ~0ull ? 64 : s2_popcount(m);
				nm++;
			}
			any |= m;
		}
		if (any) {
			s2_reap_span(&rp, base + lo * 64 + s2_ctz64(cleared[lo]),
				     base + hi * 64 + 64 - s2_clz64(cleared[hi]), pages, nm);
			r = s2_protect_masks(kvm, base, cleared, nw, hw, &rp.cur, &acc);
		}
	}
	s2_reap_settle(kvm, &rp, &acc);
	s2_mmu_write_unlock_keep_tables(kvm, &acc);
	if (r >= 0)
		r = (long)rp.pages;
out:
	s2_spin_unlock(&kvm->slots_lock);
	s2_acc_free_tables(kvm, &acc);
	return r;
}

long kvm_clear_dirty_log(struct kvm *kvm, unsigned slot_id, uint64_t first_page, uint64_t num_pages,
			 const uint64_t *bitmap)
{
	long r = kvm_clear_dirty_log_untraced(kvm, slot_id, first_page, num_pages, bitmap);

#if S2_ENABLED(CONFIG_S2_TRACE)
	/*
	 * One line per 16 words (1024 pages) of the bitmap, the result on the
	 * last; a refused call (nothing done) as one line with the whole
	 * range and its first words, which replay pads with zeros.
	 */
	if (bitmap)
		for (uint64_t w = 0; w * 64 < num_pages; w += 16) {
			uint64_t left = num_pages - w * 64, n = left < 1024 ? left : 1024;
			bool last = r < 0 || left <= 1024;

			S2_TRACE(kvm, "clear_dirty_log", last ? r : S2_TRACE_NORET,
				 S2_TA_DEC("slot", slot_id),
				 S2_TA_HEX("first", first_page + w * 64),
				 S2_TA_DEC("num", r < 0 ? num_pages : n),
				 S2_TA_WORDS("mask", bitmap + w, (n + 63) / 64));
			if (last)
				break;
		}
#endif
	return r;
}

/* ---- ring reset ---- */

/* Entries of one slot within 64 pages, gathered into a mask. */
struct s2_coalesce {
	bool valid;
	unsigned slot;
	uint64_t base;
	uint64_t mask;
};

static long s2_coalesce_flush(struct kvm *kvm, struct s2_coalesce *co, bool hw, struct s2_reap *rp,
			      struct s2_change_acc *acc)
{
	const struct s2_memslots *ms = kvm->memslots;
	int i;
	uint64_t m = co->mask;
	long r = 0;

	if (!co->valid)
		return 0;
	co->valid = false;
	i = s2_slot_index(ms, co->slot);
	/* A slot deleted or no longer logging since the push: nothing to do. */
	if (i < 0 || !ms->dirty[i] || co->base >= ms->slots[i].npages)
		return 0;
	if (ms->slots[i].npages - co->base < 64)
		m &= (1ull << (ms->slots[i].npages - co->base)) - 1;
	if (!m)
		return 0;
	r = s2_protect_masks(kvm, ms->slots[i].base_gfn + co->base, &m, 1, hw, &rp->cur, acc);
	s2_reap_add(rp, ms->slots[i].base_gfn + co->base, m);
	return r;
}

/* Add entry @e to @co, flushing @co first when @e does not fit in it. */
static long s2_coalesce_add(struct kvm *kvm, struct s2_coalesce *co, const struct kvm_dirty_gfn *e,
			    bool hw, struct s2_reap *rp, struct s2_change_acc *acc)
{
	long r;

	if (co->valid && co->slot == e->slot) {
		if (e->offset >= co->base && e->offset - co->base < 64) {
			co->mask |= 1ull << (e->offset - co->base);
			return 0;
		}
		/* Below the base: shift the mask up if the span still fits. */
		if (e->offset < co->base &&
		    co->base - e->offset + 63 - (uint64_t)s2_clz64(co->mask) < 64) {
			co->mask = (co->mask << (co->base - e->offset)) | 1;
			co->base = e->offset;
			return 0;
		}
	}
	r = s2_coalesce_flush(kvm, co, hw, rp, acc);
	*co = (struct s2_coalesce){ .valid = true, .slot = e->slot, .base = e->offset, .mask = 1 };
	return r;
}

static S2_ALWAYS_INLINE long kvm_dirty_ring_reset_untraced(struct kvm *kvm)
{
	struct s2_change_acc acc;
	struct s2_reap rp = { .cur.memo.hw_writes = -1 };
	struct s2_coalesce co = { 0 };
	bool hw;
	long r = 0, total = 0;

	if (!kvm)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	if (!__atomic_load_n(&kvm->dirty.ring_size, __ATOMIC_ACQUIRE))
		return -EINVAL;
	hw = kvm_dirty_log_hw(kvm);
	s2_acc_init(&acc);
	acc.reaped = true; /* the dirty state it clears is what it collects */
	s2_spin_lock(&kvm->slots_lock, kvm->env);
	s2_spin_lock(&kvm->dirty.lock, kvm->env);
	s2_mmu_write_lock(kvm);
	for (unsigned v = 0, n = s2_vcpus_hi(kvm); v < n && r >= 0; v++) {
		struct kvm_vcpu *vcpu = __atomic_load_n(&kvm->vcpus[v], __ATOMIC_ACQUIRE);
		struct s2_dirty_ring *ring = vcpu ? vcpu->dirty_ring : NULL;
		uint32_t i, h;

		if (!ring)
			continue;
		h = ring->harvested;
		for (i = ring->reset; i != h && r >= 0; i++) {
			r = s2_coalesce_add(kvm, &co, &ring->e[i & (ring->size - 1)], hw, &rp,
					    &acc);
			total++;
		}
		if (r >= 0)
			r = s2_coalesce_flush(kvm, &co, hw, &rp, &acc);
		/* Re-protected: the places may be pushed into again. */
		__atomic_store_n(&ring->reset, i, __ATOMIC_RELEASE);
	}
	/* Ring entries reaped: one flush (rp counts the pages; total the
	 * entries, which may name pages of slots gone since). */
	s2_reap_settle(kvm, &rp, &acc);
	s2_mmu_write_unlock_keep_tables(kvm, &acc);
	s2_spin_unlock(&kvm->dirty.lock);
	s2_spin_unlock(&kvm->slots_lock);
	s2_acc_free_tables(kvm, &acc);
	return r < 0 ? r : total;
}

long kvm_dirty_ring_reset(struct kvm *kvm)
{
	long r = kvm_dirty_ring_reset_untraced(kvm);

	S2_TRACE0(kvm, "dirty_ring_reset", r);
	return r;
}

/* ---- a slot starts or stops logging ---- */

static int s2_pages_topup(struct kvm *kvm, struct s2_page_stack *ps, uint64_t need)
{
	const struct s2_env *env = kvm->env;
	size_t bytes = (size_t)s2_table_bytes(&kvm->cfg);

	if (need > 0x7fffffffu)
		return -ENOMEM;
	if (need > ps->cap) {
		struct s2_page *pg = env->ops->zalloc(env->ctx, need * sizeof(*pg));

		if (!pg)
			return -ENOMEM;
		for (unsigned i = 0; i < ps->nr; i++)
			pg[i] = ps->pg[i];
		if (ps->pg)
			env->ops->free(env->ctx, ps->pg);
		ps->pg = pg;
		ps->cap = (unsigned)need;
	}
	while (ps->nr < need) {
		struct s2_page *p = &ps->pg[ps->nr];

		p->va = s2_table_alloc(kvm, bytes, &p->pa);
		if (!p->va)
			return -ENOMEM;
		ps->nr++;
	}
	return 0;
}

static void s2_pages_release(struct kvm *kvm, struct s2_page_stack *ps)
{
	const struct s2_env *env = kvm->env;
	size_t bytes = (size_t)s2_table_bytes(&kvm->cfg);

	while (ps->nr) {
		ps->nr--;
		s2_table_free(kvm, ps->pg[ps->nr].va, ps->pg[ps->nr].pa, bytes);
	}
	if (ps->pg)
		env->ops->free(env->ctx, ps->pg);
	*ps = (struct s2_page_stack){ 0 };
}

/* Table pages an eager split of [start, end) needs (read side of mmu_lock). */
static uint64_t s2_split_count(struct kvm *kvm, gfn_t start, gfn_t end)
{
	struct s2_split_arg a = { 0 };
	struct s2_change_acc acc;
	struct s2_range_op op = {
		.kind = S2_RANGE_SPLIT, .start = start, .end = end, .acc = &acc, .arg = &a
	};

	s2_acc_init(&acc);
	s2_mmu_read_lock(kvm);
	(void)s2_range(kvm, &op);
	s2_mmu_read_unlock(kvm, &acc);
	return a.need;
}

/* Whether any huge leaf is mapped (statistics): without one, enabling needs
 * no split pass at all. */
static bool s2_has_huge_leaves(const struct kvm *kvm)
{
	struct kvm_mmu_stats st;

	if (kvm_get_stats(kvm, &st))
		return true;
	for (int l = 2; l <= S2_MAX_LEVELS; l++)
		if (st.cur_leaves[l])
			return true;
	return false;
}

/*
 * Slot @id as the published set has it now, if it logs: its range. Under
 * mmu_lock held for write; the set is read under RCU, since the updates
 * that replace it do not take mmu_lock.
 */
static bool s2_slot_logs_now(struct kvm *kvm, unsigned id, gfn_t *start, gfn_t *end)
{
	const struct s2_memslots *ms;
	bool logs = false;
	int i;

	s2_rcu_lock(kvm);
	ms = s2_slots(kvm);
	i = s2_slot_index(ms, id);
	if (i >= 0 && ms->dirty[i]) {
		*start = ms->slots[i].base_gfn;
		*end = ms->slots[i].base_gfn + ms->slots[i].npages;
		logs = true;
	}
	s2_rcu_unlock(kvm);
	return logs;
}

#define S2_ENABLE_PASSES 8

/* After a yield of the start's walk: the slot still logs over the range
 * the pass looked up (else the pass stops and looks it up again). */
static bool s2_dirty_start_recheck(struct kvm *kvm, struct s2_range_op *op)
{
	const struct s2_enable_arg *a = op->arg;
	gfn_t start, end;

	return s2_slot_logs_now(kvm, a->id, &start, &end) && start == a->start && end == a->end;
}

/*
 * Start logging slot @s, published with its bitmap (faults record from
 * then on): eagerly split its huge leaves (CONFIG_S2_EAGER_SPLIT), then
 * protect every leaf. The flush owed by splits and by the pre-log state
 * being reaped is one settle.
 *
 * Runs with no lock held between passes: the table pages for the split are
 * counted and allocated before mmu_lock is taken (if that fails huge leaves
 * are only write-protected). Other memslot updates may come in meanwhile,
 * so each pass looks the slot up again under mmu_lock and works on the slot
 * as it is then: one that no longer logs is left alone (whoever stopped or
 * deleted it collapses or zaps it), one that moved is protected where it is.
 * The walk yields mmu_lock every yield_batch leaves (docs/rules.md,
 * "Yielding"); after each yield it checks that the slot still logs over the
 * same range, else the pass stops and looks the slot up again. Updates that
 * come after the look-up wait for mmu_lock to zap, collapse or protect, a
 * fault behind the cursor records the page it makes writable (the slot
 * logs), and a fault that resolved the slot before its publication retries
 * on the generation, so every leaf of the slot is protected, or was made
 * writable by a fault that recorded its page, when this returns.
 */
static void s2_dirty_start(struct kvm *kvm, const struct kvm_memory_slot *s)
{
	struct s2_page_stack ps = { 0 };
	bool split = S2_ENABLED(CONFIG_S2_EAGER_SPLIT) && kvm->max_leaf_level > 1 &&
		     s2_has_huge_leaves(kvm);
	gfn_t start = s->base_gfn, end = s->base_gfn + s->npages;

	for (int pass = 0; pass < S2_ENABLE_PASSES; pass++) {
		/* The last pass only protects, so it never stops short. */
		struct s2_enable_arg a = {
			.memo.hw_writes = -1,
			.split_on = split && pass < S2_ENABLE_PASSES - 1,
			.split = { .pages = &ps },
		};
		struct s2_change_acc acc;
		struct s2_range_op op = { .kind = S2_RANGE_DIRTY_ENABLE,
					  .acc = &acc,
					  .arg = &a,
					  .hold = S2_HOLD_WRITE,
					  .may_block = true,
					  .recheck = s2_dirty_start_recheck };
		bool logs;

		if (a.split_on && s2_pages_topup(kvm, &ps, s2_split_count(kvm, start, end)))
			a.split_on = false;
		s2_acc_init(&acc);
		s2_mmu_write_lock(kvm);
		logs = s2_slot_logs_now(kvm, s->id, &start, &end);
		if (logs) {
			/* Caps change only while no slot logs, so they are
			 * those the slot logs with. */
			a.hw = kvm_dirty_log_hw(kvm);
			a.split.clear_prot = a.hw ? S2_PROT_DIRTY : S2_PROT_W;
			acc.reaped = true; /* dirty state from before logging */
			op.start = a.start = start;
			op.end = a.end = end;
			a.id = s->id;
			(void)s2_range(kvm, &op);
		}
		s2_mmu_write_unlock(kvm, &acc);
		s2_dstat_add(&kvm->dirty.stat.split_leaves, (uint64_t)a.split.split);
		/* The slot changed while the walk yielded (moved, stopped
		 * logging, deleted): look it up again; this pass does not
		 * count, so the last one still only protects. */
		if (op.stale) {
			pass--;
			continue;
		}
		if (!logs || !a.split.short_of_pages)
			break;
	}
	s2_pages_release(kvm, &ps);
}

/*
 * Whether slot @s, published at memslots generation @gen without logging,
 * is still the VM's slot @s->id as it was (mmu_lock held for write). Any
 * later update that unmaps it, or starts logging on it, waits for mmu_lock
 * to zap or split after the collapse.
 */
static bool s2_slot_unchanged(struct kvm *kvm, const struct kvm_memory_slot *s, uint64_t gen)
{
	const struct s2_memslots *ms;
	const struct kvm_memory_slot *o;
	bool same;
	int i;

	if (__atomic_load_n(&kvm->memslots_gen, __ATOMIC_ACQUIRE) == gen)
		return true;
	s2_rcu_lock(kvm);
	ms = s2_slots(kvm);
	i = s2_slot_index(ms, s->id);
	o = i >= 0 ? &ms->slots[i] : NULL;
	same = o && !ms->dirty[i] && o->base_gfn == s->base_gfn && o->npages == s->npages &&
	       o->userspace_addr == s->userspace_addr && o->flags == s->flags;
	s2_rcu_unlock(kvm);
	return same;
}

/* After a yield of the collapse: the slot is as it was validated, no
 * invalidation touched its blocks since, and the write-tracked set is
 * read again (one added meanwhile must not be collapsed over). */
static bool s2_collapse_recheck(struct kvm *kvm, struct s2_range_op *op)
{
	struct s2_collapse_arg *a = op->arg;

	a->wt = kvm->dirty.write_track;
	return s2_slot_unchanged(kvm, a->slot, a->gen) &&
	       !s2_invalidate_retry(kvm, a->seq, a->blk0, a->blk0 + (a->nblk << a->blk_shift));
}

/*
 * Stop logging slot @s, published at memslots generation @gen: collapse its
 * tables back into the largest leaves the backing allows, in place. What the
 * backing allows is asked of the host once per level-2 block with no lock
 * held (gfn_to_pfn may sleep); a memslot update of the slot or an
 * invalidation since then cancels the collapse (the leaves stay as they
 * are, which is correct, only smaller), also when it comes while the walk
 * yields mmu_lock (checked again after every yield, s2_collapse_recheck).
 */
static void s2_dirty_collapse(struct kvm *kvm, const struct kvm_memory_slot *s, uint64_t gen)
{
	const struct s2_env *env = kvm->env;
	const struct s2_fmt_cfg *c = &kvm->cfg;
	unsigned shift = s2_level_shift(c, 2) - S2_GFN_SHIFT;
	uint64_t n2 = 1ull << shift;
	gfn_t first = (s->base_gfn + n2 - 1) & ~(n2 - 1);
	gfn_t last = (s->base_gfn + s->npages) & ~(n2 - 1);
	struct s2_collapse_blk *blk;
	struct s2_collapse_arg a;
	struct s2_change_acc acc;
	struct s2_range_op op;
	uint64_t seq, nblk;

	if (kvm->max_leaf_level < 2 || first >= last)
		return;
	nblk = (last - first) >> shift;
	blk = env->ops->zalloc(env->ctx, nblk * sizeof(*blk));
	if (!blk)
		return; /* no memory: the slot stays split, which is correct */
	seq = __atomic_load_n(&kvm->mmu_invalidate_seq, __ATOMIC_ACQUIRE);
	for (uint64_t b = 0; b < nblk; b++) {
		gfn_t gfn = first + (b << shift);
		struct s2_pfn_info pi = { .host_level = 1, .memtype = S2_MT_WB };
		int level;

		if (env->ops->gfn_to_pfn(env->ctx, s, gfn, false, &pi))
			continue;
		level = pi.host_level < kvm->max_leaf_level ? pi.host_level : kvm->max_leaf_level;
		for (; level >= 2; level--) {
			uint64_t n = 1ull << (s2_level_shift(c, level) - S2_GFN_SHIFT);
			gfn_t base = gfn & ~(n - 1);

			if (base < s->base_gfn || base + n > s->base_gfn + s->npages)
				continue;
			if ((((s->userspace_addr >> S2_GFN_SHIFT) ^ s->base_gfn) & (n - 1)) ||
			    ((pi.pfn ^ gfn) & (n - 1)))
				continue;
			break;
		}
		blk[b].pfn = pi.pfn;
		blk[b].max_level = (uint8_t)(level >= 2 ? level : 0);
		if (env->ops->release_pfn)
			env->ops->release_pfn(env->ctx, pi.pfn, false);
	}
	a = (struct s2_collapse_arg){ .start = s->base_gfn,
				      .end = s->base_gfn + s->npages,
				      .blk0 = first,
				      .nblk = nblk,
				      .blk_shift = shift,
				      .blk = blk,
				      .slot = s,
				      .gen = gen,
				      .seq = seq };
	op = (struct s2_range_op){ .kind = S2_RANGE_COLLAPSE,
				   .start = first,
				   .end = last,
				   .acc = &acc,
				   .arg = &a,
				   .hold = S2_HOLD_WRITE,
				   .may_block = true,
				   .recheck = s2_collapse_recheck };
	s2_acc_init(&acc);
	s2_mmu_write_lock(kvm);
	a.wt = kvm->dirty.write_track;
	if (s2_slot_unchanged(kvm, s, gen) && !s2_invalidate_retry(kvm, seq, first, last))
		(void)s2_range(kvm, &op);
	s2_mmu_write_unlock(kvm, &acc);
	s2_dstat_add(&kvm->dirty.stat.collapsed, (uint64_t)a.collapsed);
	env->ops->free(env->ctx, blk);
}

int s2_dirty_slot_published(struct kvm *kvm, const struct kvm_memory_slot *prev,
			    const struct kvm_memory_slot *upd)
{
	bool was = prev->flags & KVM_MEM_LOG_DIRTY_PAGES;
	bool is = upd->flags & KVM_MEM_LOG_DIRTY_PAGES;

	/*
	 * Another update's start may still be protecting the slot after the
	 * lock it published under was dropped: an update that keeps it
	 * logging protects it too, so that it also returns with every leaf
	 * protected (the passes are idempotent). Until a start is done, the
	 * count stays up; its drop is ordered after its last pass.
	 */
	if (is && (!was || __atomic_load_n(&kvm->dirty.starting, __ATOMIC_ACQUIRE))) {
		__atomic_fetch_add(&kvm->dirty.starting, 1, __ATOMIC_RELAXED);
		return S2_DIRTY_START;
	}
	return was && !is ? S2_DIRTY_STOP : 0;
}

void s2_dirty_slot_flags_changed(struct kvm *kvm, const struct kvm_memory_slot *upd, int change,
				 uint64_t gen)
{
	if (change == S2_DIRTY_START) {
		s2_dirty_start(kvm, upd);
		__atomic_fetch_sub(&kvm->dirty.starting, 1, __ATOMIC_RELEASE);
	} else if (change == S2_DIRTY_STOP) {
		s2_dirty_collapse(kvm, upd, gen);
	}
}

/* ---- write tracking ---- */

/*
 * Publish @nw (may be NULL) as the tracked set under mmu_lock held for
 * write, and write-protect [@wp_gfn, +1) if @protect (track_lock held).
 * Returns the old set, which the caller frees after readers (faults under
 * mmu_lock or RCU) are done with it, once track_lock is dropped.
 */
static struct s2_write_track *s2_wt_publish(struct kvm *kvm, struct s2_write_track *nw,
					    bool protect, gfn_t wp_gfn)
{
	struct s2_write_track *old = kvm->dirty.write_track;
	struct s2_change_acc acc;
	struct s2_range_op op = {
		.kind = S2_RANGE_WRPROTECT_MMU, .start = wp_gfn, .end = wp_gfn + 1, .acc = &acc
	};

	s2_acc_init(&acc);
	s2_mmu_write_lock(kvm);
	__atomic_store_n(&kvm->dirty.write_track, nw, __ATOMIC_RELEASE);
	/* Losing MMU-writable owes a flush even if W was already clear: the
	 * change handler records it and the unlock issues it. Protecting
	 * unlinks no table, so there is nothing to free after the lock. */
	if (protect)
		(void)s2_range(kvm, &op);
	s2_mmu_write_unlock_keep_tables(kvm, &acc);
	return old;
}

/* Room for @nr tracked gfns (no lock held; NULL: -ENOMEM). */
static struct s2_write_track *s2_wt_alloc(struct kvm *kvm, unsigned nr)
{
	return kvm->env->ops->zalloc(kvm->env->ctx, sizeof(struct s2_write_track) +
							    nr * sizeof(struct s2_wt_entry));
}

/* Fill @nw (room for the result) with @wt (may be NULL) with @gfn inserted
 * (add) or removed. */
static void s2_wt_fill(struct s2_write_track *nw, const struct s2_write_track *wt, gfn_t gfn,
		       bool add)
{
	unsigned nr = wt ? wt->nr : 0, at = wt ? s2_wt_lower_bound(wt, gfn) : 0, j = 0;

	for (unsigned i = 0; i < nr; i++) {
		if (i == at && add)
			nw->e[j++] = (struct s2_wt_entry){ gfn, 1 };
		if (i == at && !add)
			continue;
		nw->e[j++] = wt->e[i];
	}
	if (at == nr && add)
		nw->e[j++] = (struct s2_wt_entry){ gfn, 1 };
	nw->nr = j;
}

/*
 * Add (@add) or remove a tracking of @gfn. The new set is allocated with no
 * lock held and filled under track_lock from the set current then (a
 * concurrent update that grew it makes the allocation too small: allocate
 * again); the old set is freed after a grace period, once the lock is
 * dropped.
 */
static int s2_write_track_update(struct kvm *kvm, gfn_t gfn, bool add)
{
	const struct s2_env *env = kvm->env;
	struct s2_write_track *wt, *nw = NULL, *old = NULL;
	unsigned cap = 0;
	int r = 0;

	for (;;) {
		unsigned i, nnr;

		s2_spin_lock(&kvm->dirty.track_lock, env);
		wt = kvm->dirty.write_track;
		i = wt ? s2_wt_lower_bound(wt, gfn) : 0;
		if (add && wt && i < wt->nr && wt->e[i].gfn == gfn) {
			/* Already protected; faults only test membership. */
			__atomic_fetch_add(&wt->e[i].count, 1, __ATOMIC_RELAXED);
			break;
		}
		if (!add && (!wt || i >= wt->nr || wt->e[i].gfn != gfn)) {
			r = -ENOENT;
			break;
		}
		if (!add && __atomic_load_n(&wt->e[i].count, __ATOMIC_RELAXED) > 1) {
			__atomic_fetch_sub(&wt->e[i].count, 1, __ATOMIC_RELAXED);
			break;
		}
		nnr = add ? (wt ? wt->nr : 0) + 1 : wt->nr - 1;
		if (!nnr || (nw && cap >= nnr)) {
			if (nnr)
				s2_wt_fill(nw, wt, gfn, add);
			/* Removing: the leaf stays read-only; the next write
			 * fault maps it writable. */
			old = s2_wt_publish(kvm, nnr ? nw : NULL, add, gfn);
			if (nnr)
				nw = NULL;
			break;
		}
		s2_spin_unlock(&kvm->dirty.track_lock);
		if (nw)
			env->ops->free(env->ctx, nw);
		cap = nnr;
		nw = s2_wt_alloc(kvm, cap);
		if (!nw)
			return -ENOMEM;
	}
	s2_spin_unlock(&kvm->dirty.track_lock);
	if (nw)
		env->ops->free(env->ctx, nw);
	if (old) {
		env->ops->synchronize_rcu(env->ctx);
		env->ops->free(env->ctx, old);
	}
	return r;
}

static S2_ALWAYS_INLINE int kvm_write_track_add_gfn_untraced(struct kvm *kvm, gfn_t gfn)
{
	if (!kvm || gfn >= s2_gfn_limit(kvm))
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	return s2_write_track_update(kvm, gfn, true);
}

int kvm_write_track_add_gfn(struct kvm *kvm, gfn_t gfn)
{
	int r = kvm_write_track_add_gfn_untraced(kvm, gfn);

	S2_TRACE(kvm, "write_track_add", r, S2_TA_HEX("gfn", gfn));
	return r;
}

static S2_ALWAYS_INLINE int kvm_write_track_remove_gfn_untraced(struct kvm *kvm, gfn_t gfn)
{
	if (!kvm || gfn >= s2_gfn_limit(kvm))
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	return s2_write_track_update(kvm, gfn, false);
}

int kvm_write_track_remove_gfn(struct kvm *kvm, gfn_t gfn)
{
	int r = kvm_write_track_remove_gfn_untraced(kvm, gfn);

	S2_TRACE(kvm, "write_track_remove", r, S2_TA_HEX("gfn", gfn));
	return r;
}

bool kvm_gfn_is_write_tracked(struct kvm *kvm, gfn_t gfn)
{
	bool r;

	if (!kvm)
		return false;
	/* No gfn was ever tracked: the common fault takes no RCU lock. */
	if (!__atomic_load_n(&kvm->dirty.write_track, __ATOMIC_ACQUIRE))
		return false;
	s2_rcu_lock(kvm);
	r = s2_wt_any(__atomic_load_n(&kvm->dirty.write_track, __ATOMIC_ACQUIRE), gfn, gfn + 1);
	s2_rcu_unlock(kvm);
	return r;
}

/* ---- teardown ---- */

void s2_dirty_destroy(struct kvm *kvm)
{
	const struct s2_memslots *ms = kvm->memslots;

	for (unsigned i = 0; i < ms->nr; i++)
		s2_dirty_slot_free(kvm, ms->dirty[i]);
	if (kvm->dirty.write_track)
		kvm->env->ops->free(kvm->env->ctx, kvm->dirty.write_track);
	kvm->dirty.write_track = NULL;
}
