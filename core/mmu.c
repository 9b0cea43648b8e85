// SPDX-License-Identifier: MIT
/*
 * Format-neutral MMU operations: settling what a change owes (the single
 * place a flush is decided and issued), deferred freeing of unlinked tables,
 * zap and inspection entry points.
 */
#include "core/kvm_internal.h"

void s2_acc_settle_slow(struct kvm *kvm, struct s2_change_acc *acc)
{
	if (acc->flush) {
		kvm_flush_remote_tlbs_range(kvm, acc->flush_start,
					    acc->flush_end - acc->flush_start);
		acc->flush = false;
		acc->flush_start = ~0ull;
		acc->flush_end = 0;
	}
	for (int l = 1; l <= S2_MAX_LEVELS; l++) {
		if (acc->leaves[l]) {
			__atomic_fetch_add(&kvm->stat_leaves_removed[l], acc->leaves[l],
					   __ATOMIC_RELAXED);
			acc->leaves[l] = 0;
		}
	}
	if (acc->zapped) {
		__atomic_fetch_add(&kvm->stat_zapped, acc->zapped, __ATOMIC_RELAXED);
		acc->zapped = 0;
	}
	if (acc->table_pages) {
		__atomic_fetch_add(&kvm->stat_table_pages, acc->table_pages, __ATOMIC_RELAXED);
		acc->table_pages = 0;
	}
}

/* A list of unlinked pages waiting for a grace period. */
struct s2_free_batch {
	struct kvm *kvm; /* tables of a VM with a reserve: they refill it */
	const struct s2_env *env;
	hpa_t head;
	size_t bytes;
};

static void *s2_env_p2v(const struct s2_env *env, hpa_t pa)
{
	if (env->ops->phys_to_virt)
		return env->ops->phys_to_virt(env->ctx, pa);
	return (void *)(uintptr_t)(pa + (uint64_t)env->virt_offset);
}

static hpa_t s2_free_next(const struct s2_env *env, hpa_t pa)
{
	const s2_pte_t *t = s2_env_p2v(env, pa);

	/* Bit 63 is a TD's suppress-#VE (fmt_nonpresent()), no address. */
	return t[0] & ~(hpa_t)0xfff & ~(1ull << 63);
}

/*
 * Free a list. Table pages of a VM with a reserve (@kvm set) go back into
 * it (s2_table_free() zeroes them; the env gets what does not fit), and
 * the count of its pages in flight drops with each.
 */
static void s2_free_list(struct kvm *kvm, const struct s2_env *env, hpa_t head, size_t bytes)
{
	while (head) {
		hpa_t next = s2_free_next(env, head);
		void *t = s2_env_p2v(env, head);

		if (kvm) {
			s2_table_free(kvm, t, head, bytes);
			__atomic_fetch_sub(&kvm->rcu_table_pages, 1, __ATOMIC_RELEASE);
		} else {
			env->ops->free_table(env->ctx, t, head, bytes);
		}
		head = next;
	}
}

static void s2_free_batch_cb(void *arg)
{
	struct s2_free_batch *b = arg;
	const struct s2_env *env = b->env;

	s2_free_list(b->kvm, env, b->head, b->bytes);
	env->ops->free(env->ctx, b);
}

static void s2_free_rcu(struct kvm *kvm, struct kvm *to, hpa_t head, size_t bytes)
{
	const struct s2_env *env = kvm->env;
	struct s2_free_batch *b;

	if (env->ops->call_rcu) {
		b = env->ops->zalloc(env->ctx, sizeof(*b));
		if (b) {
			*b = (struct s2_free_batch){ to, env, head, bytes };
			if (!env->ops->call_rcu(env->ctx, s2_free_batch_cb, b))
				return;
			env->ops->free(env->ctx, b);
		}
	}
	/* No call_rcu, or no memory for the batch: wait here instead. */
	env->ops->synchronize_rcu(env->ctx);
	s2_free_list(to, env, head, bytes);
}

void s2_free_pages_rcu(struct kvm *kvm, hpa_t head, size_t bytes)
{
	s2_free_rcu(kvm, NULL, head, bytes);
}

static void s2_acc_free(struct kvm *kvm, struct s2_change_acc *acc, bool now)
{
	struct kvm *to = NULL;

	/* A prepared VM gets its tables back (kvm_mmu_prepare()): counted in
	 * flight first, so an allocation that finds the reserve empty knows
	 * to wait for them. */
	if (__atomic_load_n(&kvm->reserve, __ATOMIC_ACQUIRE) &&
	    !__atomic_load_n(&kvm->destroying, __ATOMIC_ACQUIRE)) {
		uint64_t n = 0;

		for (hpa_t p = acc->free_head; p; p = s2_free_next(kvm->env, p))
			n++;
		__atomic_fetch_add(&kvm->rcu_table_pages, n, __ATOMIC_RELAXED);
		to = kvm;
	}
	if (now)
		s2_free_list(to, kvm->env, acc->free_head, (size_t)s2_table_bytes(&kvm->cfg));
	else
		s2_free_rcu(kvm, to, acc->free_head, (size_t)s2_table_bytes(&kvm->cfg));
	acc->free_head = 0;
	acc->free_nr = 0;
}

void s2_acc_free_tables(struct kvm *kvm, struct s2_change_acc *acc)
{
	if (acc->free_head)
		s2_acc_free(kvm, acc, false);
}

/*
 * At most this many tables unlinked by one write-side hold are freed at
 * once: the few a small unmap or invalidation empties, whose pages the next
 * tables made reuse hot. A larger batch (a zap of gigabytes unlinks a table
 * per 512 leaves) goes to the grace period as before: freeing it costs the
 * env's work per page (the hosted env zeroes each one, and gives what its
 * cache cannot keep back to malloc), better done off the zapping thread,
 * and only the last few pages freed would be hot anyway.
 */
#define S2_FREE_NOW_MAX 4

void s2_acc_free_tables_write(struct kvm *kvm, struct s2_change_acc *acc)
{
	bool now;

	if (!acc->free_head)
		return;
	if (acc->free_nr > S2_FREE_NOW_MAX) {
		__atomic_fetch_add(&kvm->stat_freed_later, acc->free_nr, __ATOMIC_RELAXED);
		s2_acc_free(kvm, acc, false);
		return;
	}
	/* The unlinks (under the write side, before the unlock), then the
	 * count, read with a read-modify-write: see s2_lockless_begin(). */
	now = !__atomic_fetch_add(&kvm->lockless_walkers, 0, __ATOMIC_ACQ_REL);
	__atomic_fetch_add(now ? &kvm->stat_freed_now : &kvm->stat_freed_later, acc->free_nr,
			   __ATOMIC_RELAXED);
	s2_acc_free(kvm, acc, now);
}

static gfn_t s2_gfn_limit(const struct kvm *kvm)
{
	return 1ull << (kvm->cfg.gpa_bits - S2_GFN_SHIFT);
}

/* Zap [start, end) under the write side of mmu_lock. */
long s2_zap_range_locked(struct kvm *kvm, gfn_t start, gfn_t end, struct s2_change_acc *acc)
{
	struct s2_range_op op = { .kind = S2_RANGE_ZAP, .start = start, .end = end, .acc = acc };

	return s2_range(kvm, &op);
}

long s2_zap_range_yielding_locked(struct kvm *kvm, gfn_t start, gfn_t end,
				  struct s2_change_acc *acc)
{
	struct s2_range_op op = { .kind = S2_RANGE_ZAP,
				  .start = start,
				  .end = end,
				  .acc = acc,
				  .hold = S2_HOLD_WRITE,
				  .may_block = true };

	return s2_range(kvm, &op);
}

static S2_ALWAYS_INLINE long kvm_zap_gfn_range_untraced(struct kvm *kvm, gfn_t gfn_start,
							gfn_t gfn_end)
{
	if (!kvm)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	if (gfn_start >= gfn_end || gfn_end > s2_gfn_limit(kvm))
		return -EINVAL;
	return s2_zap_yielding(kvm, gfn_start, gfn_end, false);
}

long kvm_zap_gfn_range(struct kvm *kvm, gfn_t gfn_start, gfn_t gfn_end)
{
	long r = kvm_zap_gfn_range_untraced(kvm, gfn_start, gfn_end);

	S2_TRACE(kvm, "zap", r, S2_TA_HEX("gfn", gfn_start), S2_TA_HEX("end", gfn_end));
	return r;
}

/*
 * Zap [start, end) of every valid root under the write side, yielding
 * mmu_lock every yield_batch leaves when another side waits, or always when
 * @may_block (docs/rules.md, "Yielding").
 */
long s2_zap_yielding(struct kvm *kvm, gfn_t start, gfn_t end, bool may_block)
{
	struct s2_change_acc acc;
	struct s2_range_op op = { .kind = S2_RANGE_ZAP,
				  .start = start,
				  .end = end,
				  .acc = &acc,
				  .hold = S2_HOLD_WRITE,
				  .may_block = may_block };
	long r;

	s2_acc_init(&acc);
	s2_mmu_write_lock(kvm);
	r = s2_range(kvm, &op);
	s2_mmu_write_unlock(kvm, &acc);
	return r;
}

static S2_ALWAYS_INLINE long kvm_mmu_zap_all_untraced(struct kvm *kvm)
{
	long r;

	if (!kvm)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	/* Fast when every vcpu reloads its root at entry; otherwise (or out
	 * of memory for the fresh roots) in place, yielding as it goes. */
	r = s2_zap_all_fast(kvm);
	if (r != -ENOTSUP && r != -ENOMEM)
		return r;
	return s2_zap_yielding(kvm, 0, s2_gfn_limit(kvm), true);
}

long kvm_mmu_zap_all(struct kvm *kvm)
{
	long r = kvm_mmu_zap_all_untraced(kvm);

	S2_TRACE0(kvm, "zap_all", r);
	return r;
}

int kvm_mmu_lookup(struct kvm *kvm, gpa_t gpa, struct s2_mapping *out)
{
	struct s2_change_acc acc;
	int r;

	if (!kvm || !out)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	if (gpa_to_gfn(gpa) >= s2_gfn_limit(kvm))
		return -EINVAL;
	s2_acc_init(&acc);
	s2_mmu_read_lock(kvm);
	r = kvm->ops->lookup(kvm, gpa, out);
	s2_mmu_read_unlock(kvm, &acc);
	return r;
}

int kvm_mmu_for_each_leaf(struct kvm *kvm, gfn_t gfn_start, gfn_t gfn_end, s2_leaf_fn fn, void *arg)
{
	struct s2_change_acc acc;
	int r;

	if (!kvm || !fn)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	if (gfn_start >= gfn_end || gfn_end > s2_gfn_limit(kvm))
		return -EINVAL;
	s2_acc_init(&acc);
	s2_mmu_read_lock(kvm);
	r = kvm->ops->for_each_leaf(kvm, gfn_start, gfn_end, fn, arg);
	s2_mmu_read_unlock(kvm, &acc);
	return r;
}
