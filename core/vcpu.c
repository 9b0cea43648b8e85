// SPDX-License-Identifier: MIT
/*
 * vcpus: creation, the embedder's pointer and the memory cache. Requests and
 * the guest-mode handshake are flush/'s (flush/request.c).
 */
#include "core/kvm_internal.h"

/*
 * A vcpu on cache lines of its own: its faults write its read flag of
 * mmu_lock and its counters on every fault and read its fault cache, so no
 * other vcpu's fields may share those lines (zalloc only promises the
 * alignment of malloc).
 */
static struct kvm_vcpu *s2_vcpu_alloc(const struct s2_env *env)
{
	const uintptr_t line = _Alignof(struct kvm_vcpu);
	void *base = env->ops->zalloc(env->ctx, sizeof(struct kvm_vcpu) + line);
	struct kvm_vcpu *vcpu;

	if (!base)
		return NULL;
	vcpu = (struct kvm_vcpu *)(((uintptr_t)base + line - 1) & ~(line - 1));
	vcpu->alloc_base = base;
	return vcpu;
}

static S2_ALWAYS_INLINE int kvm_vcpu_create_untraced(struct kvm *kvm, unsigned id,
						     struct kvm_vcpu **out)
{
	const struct s2_env *env;
	struct kvm_vcpu *vcpu;
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!kvm)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	if (id >= kvm->max_vcpus)
		return -EINVAL;
	env = kvm->env;
	vcpu = s2_vcpu_alloc(env);
	if (!vcpu)
		return -ENOMEM;
	vcpu->kvm = kvm;
	vcpu->id = id;
	if (s2_dirty_vcpu_init(vcpu)) {
		env->ops->free(env->ctx, vcpu->alloc_base);
		return -ENOMEM;
	}
	/* A reference on the VM's current root: a vcpu that never loads
	 * one (kvm_mmu_load) runs on it. */
	if (s2_vcpu_root_init(vcpu)) {
		s2_dirty_vcpu_free(vcpu);
		env->ops->free(env->ctx, vcpu->alloc_base);
		return -ENOMEM;
	}
	s2_spin_lock(&kvm->vcpus_lock, env);
	r = kvm->vcpus[id] ? -EEXIST : 0;
	if (!r && env->ops->rcu_single_cpu && kvm->nr_vcpus)
		r = -ENOTSUP;
	if (r) {
		s2_spin_unlock(&kvm->vcpus_lock);
		if (r == -ENOTSUP)
			s2_log(kvm, S2_LOG_ERR,
			       "a second vcpu needs SMP-safe RCU (s2_freestanding_smp()); vcpu",
			       id);
		s2_vcpu_root_fini(vcpu);
		s2_dirty_vcpu_free(vcpu);
		env->ops->free(env->ctx, vcpu->alloc_base);
		return r;
	}
	__atomic_store_n(&kvm->vcpus[id], vcpu, __ATOMIC_RELEASE);
	if (id >= kvm->vcpus_hi)
		__atomic_store_n(&kvm->vcpus_hi, id + 1, __ATOMIC_SEQ_CST);
	kvm->nr_vcpus++;
	s2_spin_unlock(&kvm->vcpus_lock);
	*out = vcpu;
	return 0;
}

int kvm_vcpu_create(struct kvm *kvm, unsigned id, struct kvm_vcpu **out)
{
	int r = kvm_vcpu_create_untraced(kvm, id, out);

	S2_TRACE(kvm, "vcpu", r, S2_TA_DEC("id", id));
	return r;
}

void s2_vcpu_free(struct kvm_vcpu *vcpu);
void s2_vcpu_free(struct kvm_vcpu *vcpu)
{
	const struct s2_env *env = vcpu->kvm->env;
	size_t bytes = (size_t)s2_table_bytes(&vcpu->kvm->cfg);
	struct s2_page pg;

	while (s2_cache_pop(vcpu, &pg))
		s2_table_free(vcpu->kvm, pg.va, pg.pa, bytes);
	s2_vcpu_root_fini(vcpu);
	s2_dirty_vcpu_free(vcpu);
	env->ops->free(env->ctx, vcpu->alloc_base);
}

/*
 * The first read side a vcpu takes: publish in kvm->light_readers that this
 * vcpu will read fence-free (writers then call env->membarrier), then take
 * this acquisition fenced. The publication's store comes before the fenced
 * flag store and lock load in the single total order of sequentially
 * consistent operations, so a writer that read light_readers clear (and so
 * skipped the barrier) took its exchange before this load, which sees it
 * and backs off; later fence-free acquisitions only follow a completed one.
 * A VM that no vcpu has faulted in (static partitioning mapping its ranges
 * at creation) pays no barrier on its write side.
 */
void s2_mmu_read_lock_vcpu_first(struct kvm_vcpu *vcpu)
{
	struct kvm *kvm = vcpu->kvm;

	/* Always this vcpu's own store (once per vcpu): a store of another
	 * vcpu's, seen by a relaxed load, would not order this acquisition. */
	if (kvm->light_read)
		__atomic_store_n(&kvm->light_readers, 1, __ATOMIC_SEQ_CST);
	s2_read_lock_local(&kvm->mmu_lock, &vcpu->mmu_reading, kvm->env, false);
	vcpu->light_ok = kvm->light_read;
}

unsigned kvm_vcpu_id(const struct kvm_vcpu *vcpu)
{
	return vcpu ? vcpu->id : 0;
}

struct kvm *kvm_vcpu_kvm(const struct kvm_vcpu *vcpu)
{
	return vcpu ? vcpu->kvm : NULL;
}

void kvm_vcpu_set_private(struct kvm_vcpu *vcpu, void *p)
{
	if (vcpu)
		vcpu->priv = p;
}

void *kvm_vcpu_private(const struct kvm_vcpu *vcpu)
{
	return vcpu ? vcpu->priv : NULL;
}

int kvm_mmu_topup_memory_cache(struct kvm_vcpu *vcpu)
{
	if (!vcpu)
		return -EINVAL;
	/* One table per level below the root is the most a fault links. */
	return s2_mmu_topup(vcpu, vcpu->kvm->cfg.levels - 1u);
}

int s2_mmu_topup(struct kvm_vcpu *vcpu, unsigned need)
{
	struct kvm *kvm = vcpu->kvm;
	size_t bytes = (size_t)s2_table_bytes(&kvm->cfg);

	while (vcpu->cache.nr < need) {
		struct s2_page pg;

		pg.va = s2_table_alloc(kvm, bytes, &pg.pa);
		if (!pg.va)
			return -ENOMEM;
		s2_cache_push(vcpu, &pg);
	}
	return 0;
}
