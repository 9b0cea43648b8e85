// SPDX-License-Identifier: MIT
/*
 * Roots: the set of second-stage roots of a VM, their references, loading a
 * vcpu's root, the fast zap and the teardown of obsolete roots
 * (docs/rules.md, "Roots").
 *
 * Lifecycle. A root is made (its page allocated before any lock) and
 * published under the shared side of mmu_lock, with one reference held by
 * the VM as the current root of its role and one per vcpu that runs on it
 * or keeps it. Only the write side invalidates a root (the fast zap, VM
 * destruction); the VM's reference then passes to the teardown, which
 * empties the root under the shared side, yielding as it goes. The last
 * reference, whoever drops it, frees the root's page after a grace period.
 *
 * Why no flush is owed when a root is replaced: every vcpu on an
 * invalidated root is told to reload (MMU_RELOAD) and the fast zap waits
 * until none is in guest mode, all under the write side, so nothing that
 * runs later (a notifier's zap, a memslot removal) needs the old root's
 * translations gone: none can be used again. A vcpu loads a root only
 * through KVM_ENTRY_LOAD_ROOT, which is always followed by
 * KVM_ENTRY_FLUSH_CURRENT: on x86 EPT the root's page may have been a root
 * before (the TLB is tagged by EPTP), and on VMID- or ASID-tagged TLBs
 * (arm64, RISC-V, NPT) the old root's translations share the tag.
 */
#include "core/kvm_internal.h"
#include "s2mmu/vmid.h"
#if S2_ENABLED(CONFIG_S2_FMT_X86_EPT)
#include "s2mmu/x86-ept.h"
#endif
#if S2_ENABLED(CONFIG_S2_FMT_X86_NPT)
#include "s2mmu/x86-npt.h"
#endif
#if S2_ENABLED(CONFIG_S2_FMT_ARM64_S2)
#include "s2mmu/arm64-s2.h"
#endif
#if S2_ENABLED(CONFIG_S2_FMT_RISCV_G)
#include "s2mmu/riscv-g.h"
#endif

/* The register value that points the hardware at @r. */
static int s2_root_reg(const struct kvm *kvm, const struct s2_root *r, uint64_t *reg)
{
	const struct s2_fmt_cfg *c = &kvm->cfg;

	(void)c;
	switch (kvm->ops->id) {
#if S2_ENABLED(CONFIG_S2_FMT_X86_EPT)
	case S2_FMT_X86_EPT:
		return s2_ept_make_eptp(r->pa, S2_EPTP_MT_WB, r->levels, c->flags & S2_FMTF_AD,
					reg);
#endif
#if S2_ENABLED(CONFIG_S2_FMT_X86_NPT)
	case S2_FMT_X86_NPT: return s2_npt_make_ncr3(r->pa, reg);
#endif
#if S2_ENABLED(CONFIG_S2_FMT_ARM64_S2)
	case S2_FMT_ARM64_S2:
		return s2_arm64_make_vttbr(r->pa, kvm_vmid(kvm), c->flags & S2_FMTF_VMID16, reg);
#endif
#if S2_ENABLED(CONFIG_S2_FMT_RISCV_G)
	case S2_FMT_RISCV_G: return s2_riscv_make_hgatp(r->pa, r->levels, kvm_vmid(kvm), reg);
#endif
	default: *reg = r->pa; return 0;
	}
}

static size_t s2_root_bytes_of(const struct kvm *kvm)
{
	return (size_t)s2_root_alloc_bytes(&kvm->cfg);
}

/* Claim a free slot (any lock or none: the claim is an exchange). */
static struct s2_root *s2_slot_claim(struct kvm *kvm)
{
	for (unsigned i = 0; i < kvm->nr_roots; i++) {
		struct s2_root *r = &kvm->roots[i];
		uint32_t st = S2_ROOT_FREE;
		unsigned hi;

		if (__atomic_load_n(&r->state, __ATOMIC_RELAXED) != S2_ROOT_FREE ||
		    !__atomic_compare_exchange_n(&r->state, &st, S2_ROOT_CLAIMED, false,
						 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			continue;
		hi = __atomic_load_n(&kvm->roots_hi, __ATOMIC_RELAXED);
		while (hi < i + 1 &&
		       !__atomic_compare_exchange_n(&kvm->roots_hi, &hi, i + 1, false,
						    __ATOMIC_RELEASE, __ATOMIC_RELAXED))
			;
		return r;
	}
	return NULL;
}

/* Fill a claimed slot with the page @pg and publish it as VALID. */
static void s2_slot_publish(struct kvm *kvm, struct s2_root *r, const struct s2_page *pg,
			    unsigned role, uint32_t refs)
{
	r->pt = pg->va;
	r->pa = pg->pa;
	r->role = (uint8_t)role;
	r->levels = kvm->cfg.levels;
	__atomic_store_n(&r->refs, refs, __ATOMIC_RELAXED);
	__atomic_store_n(&r->state, S2_ROOT_VALID, __ATOMIC_RELEASE);
}

static int s2_root_page_alloc(const struct kvm *kvm, struct s2_page *pg)
{
	const struct s2_env *env = kvm->env;

	pg->va = env->ops->alloc_table(env->ctx, s2_root_bytes_of(kvm), &pg->pa);
	if (pg->va && kvm->nonpresent)
		s2_table_fill(pg->va, s2_root_bytes_of(kvm) / sizeof(s2_pte_t), kvm->nonpresent);
	return pg->va ? 0 : -ENOMEM;
}

static void s2_root_page_free(const struct kvm *kvm, const struct s2_page *pg)
{
	const struct s2_env *env = kvm->env;

	env->ops->free_table(env->ctx, pg->va, pg->pa, s2_root_bytes_of(kvm));
}

/*
 * Drop a reference. The last one is only ever dropped on an invalid,
 * emptied root (the VM holds one while it is valid; the teardown holds that
 * one until it is done): its page goes after a grace period and the slot
 * is free again.
 */
static void s2_root_put(struct kvm *kvm, struct s2_root *r)
{
	if (__atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL))
		return;
	if (__atomic_load_n(&r->state, __ATOMIC_ACQUIRE) != S2_ROOT_INVALID) {
		kvm_bug(kvm, "last reference of a root that is still valid; slot",
			(uint64_t)(r - kvm->roots));
		return;
	}
	hpa_t pa = r->pa;

	__atomic_store_n(&r->pt[0], 0, __ATOMIC_RELAXED); /* the free list's end */
	__atomic_store_n(&r->state, S2_ROOT_FREE, __ATOMIC_RELEASE);
	s2_free_pages_rcu(kvm, pa, s2_root_bytes_of(kvm));
	__atomic_fetch_add(&kvm->stat_roots_freed, 1, __ATOMIC_RELAXED);
}

/*
 * A reference on the current root of @role, made if there is none: the
 * lookup and the publication run under the shared side of mmu_lock (with
 * roots_lock so two makers do not both publish); the page is allocated
 * before. Returns the root or NULL (-ENOMEM in *@err).
 */
static struct s2_root *s2_root_get_current(struct kvm *kvm, unsigned role, int *err)
{
	struct s2_page pg = { 0 };
	struct s2_root *r;

	for (;;) {
		s2_mmu_read_lock(kvm);
		r = __atomic_load_n(&kvm->cur[role], __ATOMIC_ACQUIRE);
		if (r) {
			__atomic_fetch_add(&r->refs, 1, __ATOMIC_RELAXED);
		} else if (pg.va) {
			s2_spin_lock(&kvm->roots_lock, kvm->env);
			r = __atomic_load_n(&kvm->cur[role], __ATOMIC_ACQUIRE);
			if (r) {
				__atomic_fetch_add(&r->refs, 1, __ATOMIC_RELAXED);
			} else if ((r = s2_slot_claim(kvm))) {
				s2_slot_publish(kvm, r, &pg, role, 2); /* VM + caller */
				__atomic_store_n(&kvm->cur[role], r, __ATOMIC_RELEASE);
				pg.va = NULL;
			}
			s2_spin_unlock(&kvm->roots_lock);
		}
		s2_mmu_read_unlock_plain(kvm);
		if (r || pg.va) /* got one, or no slot was free */
			break;
		if (s2_root_page_alloc(kvm, &pg)) {
			*err = -ENOMEM;
			return NULL;
		}
	}
	if (pg.va)
		s2_root_page_free(kvm, &pg);
	if (!r)
		*err = -ENOMEM;
	return r;
}

int s2_roots_init(struct kvm *kvm)
{
	const struct s2_env *env = kvm->env;
	struct s2_page pg;

	/* Every vcpu keeps at most two roots; each role has a current one
	 * and may have one being torn down per concurrent fast zap. */
	kvm->nr_roots = 2 * kvm->max_vcpus + 4 * S2_ROLES;
	kvm->roots = env->ops->zalloc(env->ctx, sizeof(*kvm->roots) * kvm->nr_roots);
	if (!kvm->roots)
		return -ENOMEM;
	if (s2_root_page_alloc(kvm, &pg)) {
		env->ops->free(env->ctx, kvm->roots);
		return -ENOMEM;
	}
	kvm->yield_batch = CONFIG_S2_YIELD_BATCH;
	kvm->fast_zap_min = S2_FAST_ZAP_MIN_LEAVES;
	kvm->roots_hi = 1;
	kvm->roots[0].state = S2_ROOT_CLAIMED;
	s2_slot_publish(kvm, &kvm->roots[0], &pg, 0, 1);
	kvm->cur[0] = &kvm->roots[0];
	return 0;
}

int s2_vcpu_root_init(struct kvm_vcpu *vcpu)
{
	int err = 0;

	vcpu->root = s2_root_get_current(vcpu->kvm, 0, &err);
	return vcpu->root ? 0 : err;
}

void s2_vcpu_root_fini(struct kvm_vcpu *vcpu)
{
	if (vcpu->prev_root)
		s2_root_put(vcpu->kvm, vcpu->prev_root);
	if (vcpu->root)
		s2_root_put(vcpu->kvm, vcpu->root);
	vcpu->root = vcpu->prev_root = NULL;
}

unsigned s2_roots_valid(const struct kvm *kvm)
{
	unsigned n = 0;

	for (unsigned i = 0; i < __atomic_load_n(&kvm->roots_hi, __ATOMIC_ACQUIRE); i++)
		n += s2_root_valid(&kvm->roots[i]);
	return n;
}

/*
 * Switch @vcpu to the current root of @role. The root it leaves is kept as
 * prev_root while valid (a switch back costs no lookup of a new root), else
 * dropped. What the fault fast path cached belongs to the old root.
 */
static int s2_vcpu_switch(struct kvm_vcpu *vcpu, unsigned role, struct kvm_entry_action *act)
{
	struct kvm *kvm = vcpu->kvm;
	struct s2_root *r, *old = vcpu->root;
	int err = 0;

	r = s2_root_get_current(kvm, role, &err);
	if (!r)
		return err;
	if (r == old) {
		s2_root_put(kvm, r);
	} else {
		if (vcpu->prev_root == r) {
			__atomic_store_n(&vcpu->prev_root, NULL, __ATOMIC_RELEASE);
			s2_root_put(kvm, r); /* it was kept; now it is run */
		}
		__atomic_store_n(&vcpu->root, r, __ATOMIC_RELEASE);
		if (s2_root_valid(old) && !vcpu->prev_root) {
			/* Read by fast zaps on other threads (acquire). */
			__atomic_store_n(&vcpu->prev_root, old, __ATOMIC_RELEASE);
		} else {
			s2_root_put(kvm, old);
		}
		vcpu->fc.hi = vcpu->fc.lo;
		/* The trace: a vcpu that loads its roots moved to another one
		 * (kvm_mmu_load, or a reload in kvm_vcpu_entry_actions), so a
		 * replay's faults of this vcpu go to the same root. */
		if (__atomic_load_n(&vcpu->loads_root, __ATOMIC_RELAXED))
			S2_TRACE(kvm, "mmu_load", S2_TRACE_NORET, S2_TA_DEC("vcpu", vcpu->id),
				 S2_TA_DEC("kind", role / KVM_ROOT_SPACES),
				 S2_TA_DEC("space", role % KVM_ROOT_SPACES));
	}
	act->kind = KVM_ENTRY_LOAD_ROOT;
	act->hpa = r->pa;
	return s2_root_reg(kvm, r, &act->reg);
}

int s2_vcpu_reload(struct kvm_vcpu *vcpu, bool reload, struct kvm_entry_action *act)
{
	struct kvm *kvm = vcpu->kvm;
	struct s2_root *prev = vcpu->prev_root;
	int r;

	/* The first entry through this call loads the root like a reload. */
	if (!__atomic_load_n(&vcpu->loads_root, __ATOMIC_RELAXED))
		reload = true;
	__atomic_store_n(&vcpu->loads_root, true, __ATOMIC_RELAXED);
	if (prev && !s2_root_valid(prev)) {
		__atomic_store_n(&vcpu->prev_root, NULL, __ATOMIC_RELEASE);
		s2_root_put(kvm, prev);
	}
	if (!reload && s2_root_valid(vcpu->root))
		return 0;
	r = s2_vcpu_switch(vcpu, vcpu->root->role, act);
	return r ? r : 1;
}

int s2_vcpu_follow(struct kvm_vcpu *vcpu)
{
	struct kvm_entry_action act;

	if (__atomic_load_n(&vcpu->loads_root, __ATOMIC_RELAXED) || s2_root_valid(vcpu->root))
		return 0;
	return s2_vcpu_switch(vcpu, vcpu->root->role, &act);
}

int kvm_mmu_load(struct kvm_vcpu *vcpu, struct kvm_root_role role, uint64_t *reg)
{
	struct kvm_entry_action act;
	int r;

	if (!vcpu || !reg || role.kind >= S2_ROOT_KINDS || role.space >= KVM_ROOT_SPACES)
		return -EINVAL;
	if (s2_kvm_dead(vcpu->kvm))
		return -EIO;
	if (role.kind == KVM_ROOT_MIRROR)
		return -ENOTSUP;
	__atomic_store_n(&vcpu->loads_root, true, __ATOMIC_RELAXED);
	r = s2_vcpu_switch(vcpu, s2_role_idx(role), &act);
	if (!r)
		*reg = act.reg;
	return r;
}

int kvm_vcpu_vmid_update(struct kvm_vcpu *vcpu, unsigned cpu, uint64_t *reg)
{
	struct s2_root *r;
	int id, e;

	if (!vcpu || !reg || !vcpu->kvm->vmid_alloc)
		return -EINVAL;
	if (s2_kvm_dead(vcpu->kvm))
		return -EIO;
	id = s2_vmid_update(vcpu->kvm->vmid_alloc, cpu);
	if (id < 0)
		return id;
	/* The vcpu's own root: only its thread changes it. */
	r = vcpu->root;
	e = s2_root_reg(vcpu->kvm, r, reg);
	return e ? e : id;
}

hpa_t kvm_vcpu_root_hpa(const struct kvm_vcpu *vcpu)
{
	const struct s2_root *r = vcpu ? __atomic_load_n(&vcpu->root, __ATOMIC_ACQUIRE) : NULL;

	return r ? r->pa : 0;
}

struct kvm_root_role kvm_vcpu_root_role(const struct kvm_vcpu *vcpu)
{
	struct kvm_root_role role = { 0, 0 };

	if (vcpu && vcpu->root) {
		role.kind = (uint8_t)(vcpu->root->role / KVM_ROOT_SPACES);
		role.space = (uint8_t)(vcpu->root->role % KVM_ROOT_SPACES);
	}
	return role;
}

hpa_t kvm_mmu_root_hpa(const struct kvm *kvm)
{
	return kvm ? s2_root0(kvm)->pa : 0;
}

/* A root's teardown field: the token of the fast zap that invalidated it,
 * with S2_TD_EMPTIED once its teardown emptied it (its reference still to
 * drop, s2_fast_zap_finish). */
#define S2_TD_EMPTIED 0x80000000u

/*
 * Empty every root @fz invalidated (no lock held on entry), under the
 * shared side of mmu_lock, yielding every batch. With @keep, the unlinked
 * tables are left in it for the caller to free (it may hold a spinlock),
 * else freed here. The roots keep the teardown's reference until
 * s2_fast_zap_finish(). Returns the leaves removed.
 */
long s2_fast_zap_teardown(struct kvm *kvm, struct s2_fast_zap *fz, struct s2_change_acc *keep)
{
	long leaves = 0;

	for (unsigned i = 0; i < __atomic_load_n(&kvm->roots_hi, __ATOMIC_ACQUIRE); i++) {
		struct s2_root *r = &kvm->roots[i];
		struct s2_change_acc own, *acc = keep ? keep : &own;

		if (!fz->token || __atomic_load_n(&r->teardown, __ATOMIC_ACQUIRE) != fz->token)
			continue;
		struct s2_range_op op = {
			.kind = S2_RANGE_TEARDOWN,
			.start = 0,
			.end = 1ull << (kvm->cfg.gpa_bits - S2_GFN_SHIFT),
			.acc = acc,
			.root = r,
			.hold = S2_HOLD_READ,
			.may_block = true,
		};

		if (!keep)
			s2_acc_init(&own);
		s2_mmu_read_lock(kvm);
		(void)s2_range(kvm, &op);
		s2_acc_settle(kvm, acc);
		s2_mmu_read_unlock_plain(kvm);
		if (!keep)
			s2_acc_free_tables(kvm, &own);
		__atomic_store_n(&r->teardown, fz->token | S2_TD_EMPTIED, __ATOMIC_RELEASE);
		leaves += op.result;
	}
	return leaves;
}

/* Drop the references the teardown held (roots @fz emptied) and free the
 * fresh pages @fz did not use. No spinlock may be held: a root's last
 * reference queues its page for a grace period. */
void s2_fast_zap_finish(struct kvm *kvm, struct s2_fast_zap *fz)
{
	for (unsigned i = 0; fz->token && i < __atomic_load_n(&kvm->roots_hi, __ATOMIC_ACQUIRE);
	     i++) {
		struct s2_root *r = &kvm->roots[i];

		if (__atomic_load_n(&r->teardown, __ATOMIC_ACQUIRE) != (fz->token | S2_TD_EMPTIED))
			continue;
		__atomic_store_n(&r->teardown, 0, __ATOMIC_RELAXED);
		s2_root_put(kvm, r);
	}
	for (unsigned role = 0; role < S2_ROLES; role++)
		if (fz->pg[role].va)
			s2_root_page_free(kvm, &fz->pg[role]);
	*fz = (struct s2_fast_zap){ 0 };
}

/* A token no other fast zap in flight uses (write side held). */
static uint32_t s2_fast_zap_token(struct kvm *kvm)
{
	uint32_t t = (kvm->fast_zap_token + 1) & ~S2_TD_EMPTIED;

	kvm->fast_zap_token = t ? t : 1;
	return kvm->fast_zap_token;
}

/* Under the write side: @r stops being valid; the VM's reference (it was
 * current) passes to the teardown of the fast zap @token. The token first:
 * whoever reads the state INVALID (acquire) also reads the teardown that
 * owns the root (a vcpu in guest mode reads them without the lock). */
static void s2_root_invalidate(struct kvm *kvm, struct s2_root *r, uint32_t token)
{
	if (kvm->cur[r->role] == r)
		__atomic_store_n(&kvm->cur[r->role], NULL, __ATOMIC_RELEASE);
	__atomic_store_n(&r->teardown, token, __ATOMIC_RELEASE);
	__atomic_store_n(&r->state, S2_ROOT_INVALID, __ATOMIC_RELEASE);
}

static bool s2_vcpu_on_invalid(const struct kvm_vcpu *v)
{
	return !s2_root_valid(__atomic_load_n(&v->root, __ATOMIC_ACQUIRE));
}

static bool s2_vcpu_keeps_invalid(const struct kvm_vcpu *v)
{
	const struct s2_root *p = __atomic_load_n(&v->prev_root, __ATOMIC_ACQUIRE);

	return p && !s2_root_valid(p) && !s2_vcpu_on_invalid(v);
}

int s2_fast_zap_prepare(struct kvm *kvm, struct s2_fast_zap *fz)
{
	*fz = (struct s2_fast_zap){ 0 };
	/* A role made after this gets no fresh root (a vcpu's load makes
	 * it). */
	for (unsigned role = 0; role < S2_ROLES; role++) {
		if (!__atomic_load_n(&kvm->cur[role], __ATOMIC_ACQUIRE))
			continue;
		if (s2_root_page_alloc(kvm, &fz->pg[role])) {
			s2_fast_zap_finish(kvm, fz);
			return -ENOMEM;
		}
	}
	return 0;
}

int s2_fast_zap_locked(struct kvm *kvm, struct s2_fast_zap *fz)
{
	struct s2_root *slot[S2_ROLES] = { 0 };
	int r = 0;

	for (unsigned i = 0, n = s2_vcpus_hi(kvm); i < n; i++) {
		const struct kvm_vcpu *v = __atomic_load_n(&kvm->vcpus[i], __ATOMIC_ACQUIRE);

		/* A vcpu that entered a guest without loading its root
		 * through the library would not reload. One that never
		 * entered (a vcpu used only to fault) follows at its next
		 * fault (s2_vcpu_follow). */
		if (v && !__atomic_load_n(&v->loads_root, __ATOMIC_RELAXED) &&
		    __atomic_load_n(&v->guest_state, __ATOMIC_ACQUIRE))
			return -ENOTSUP;
	}
	for (unsigned role = 0; role < S2_ROLES && !r; role++) {
		if (fz->pg[role].va && kvm->cur[role] && !(slot[role] = s2_slot_claim(kvm)))
			r = -ENOMEM;
	}
	if (r) {
		for (unsigned role = 0; role < S2_ROLES; role++)
			if (slot[role])
				__atomic_store_n(&slot[role]->state, S2_ROOT_FREE,
						 __ATOMIC_RELEASE);
		return r;
	}
	fz->token = s2_fast_zap_token(kvm);
	/* O(1) per root: nothing of the tables is touched here. */
	for (unsigned i = 0; i < kvm->roots_hi; i++)
		if (s2_root_valid(&kvm->roots[i]))
			s2_root_invalidate(kvm, &kvm->roots[i], fz->token);
	for (unsigned role = 0; role < S2_ROLES; role++) {
		if (!slot[role])
			continue;
		s2_slot_publish(kvm, slot[role], &fz->pg[role], role, 1);
		__atomic_store_n(&kvm->cur[role], slot[role], __ATOMIC_RELEASE);
		fz->pg[role].va = NULL;
	}
	s2_zap_gen_bump(kvm);
	/*
	 * Still under the write side: once it is dropped a notifier may zap
	 * (valid roots only) and the host reuse a page, so no vcpu may be in
	 * guest mode on an old root by then. MMU_RELOAD waits for that.
	 */
	s2_request_vcpus(kvm, KVM_REQ_MMU_RELOAD, s2_vcpu_on_invalid);
	s2_request_vcpus(kvm, KVM_REQ_FREE_OBSOLETE_ROOTS, s2_vcpu_keeps_invalid);
	__atomic_fetch_add(&kvm->stat_fast_zaps, 1, __ATOMIC_RELAXED);
	return 0;
}

/* The fast zap; returns the leaves its teardown removed, or -errno. */
long s2_zap_all_fast(struct kvm *kvm)
{
	struct s2_fast_zap fz;
	struct s2_change_acc acc;
	long r;

	if (!kvm)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	/* The fresh roots' pages, before the lock. */
	r = s2_fast_zap_prepare(kvm, &fz);
	if (r)
		return r;
	s2_acc_init(&acc);
	/* Under slots_lock from the invalidation to the teardown's end, as a
	 * memslot update's own fast zap: the teardown records the dirty state
	 * of the leaves it removes against the memslots it finds, so no
	 * update (a move of a logging slot) may publish while the invalid
	 * roots still hold leaves of the old layout (their writes would be
	 * lost). Its tables are freed once the spinlock is dropped. */
	s2_spin_lock(&kvm->slots_lock, kvm->env);
	s2_mmu_write_lock(kvm);
	r = s2_fast_zap_locked(kvm, &fz);
	s2_mmu_write_unlock_keep_tables(kvm, &acc);
	if (!r)
		r = s2_fast_zap_teardown(kvm, &fz, &acc);
	s2_spin_unlock(&kvm->slots_lock);
	s2_acc_free_tables(kvm, &acc);
	s2_fast_zap_finish(kvm, &fz);
	return r;
}

static S2_ALWAYS_INLINE int kvm_mmu_zap_all_fast_untraced(struct kvm *kvm)
{
	long r = s2_zap_all_fast(kvm);

	return r < 0 ? (int)r : 0;
}

int kvm_mmu_zap_all_fast(struct kvm *kvm)
{
	int r = kvm_mmu_zap_all_fast_untraced(kvm);

	S2_TRACE0(kvm, "zap_all_fast", r);
	return r;
}

void s2_roots_destroy(struct kvm *kvm)
{
	struct s2_fast_zap fz = { 0 };
	struct s2_change_acc acc;

	s2_acc_init(&acc);
	s2_mmu_write_lock(kvm);
	fz.token = s2_fast_zap_token(kvm);
	for (unsigned i = 0; i < kvm->roots_hi; i++)
		if (s2_root_valid(&kvm->roots[i]))
			s2_root_invalidate(kvm, &kvm->roots[i], fz.token);
	s2_mmu_write_unlock(kvm, &acc);
	(void)s2_fast_zap_teardown(kvm, &fz, NULL);
	s2_fast_zap_finish(kvm, &fz);
	for (unsigned i = 0; i < kvm->max_vcpus; i++)
		if (kvm->vcpus[i])
			s2_vcpu_root_fini(kvm->vcpus[i]);
}
