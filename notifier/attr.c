// SPDX-License-Identifier: MIT
/*
 * Memory attributes (private/shared) per gfn range.
 *
 * The attributes are a sorted array of disjoint, non-empty gfn ranges with
 * non-zero attributes (gfns in no range are shared, 0), adjacent ranges with
 * equal attributes merged. An update builds a new array before mmu_lock is
 * taken, converts under the invalidation protocol (faults on the changing
 * gfns retry until it ends), publishes the array for RCU readers and frees
 * the old one after a grace period. Updates are serialised by slots_lock,
 * as memslot updates are.
 */
#include "notifier/notifier.h"

struct s2_attr_range {
	gfn_t start, end;
	uint64_t attrs;
};

struct s2_mem_attrs {
	unsigned nr;
	struct s2_attr_range r[];
};

static const struct s2_mem_attrs *s2_attrs_get(const struct kvm *kvm)
{
	return __atomic_load_n((struct s2_mem_attrs *const *)&kvm->mem_attrs, __ATOMIC_ACQUIRE);
}

/* Index of the first range that ends after @gfn (nr if none). */
static unsigned s2_attrs_find(const struct s2_mem_attrs *a, gfn_t gfn)
{
	unsigned lo = 0, hi = a->nr;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (a->r[mid].end <= gfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

uint64_t s2_attrs_lookup(const struct kvm *kvm, gfn_t gfn)
{
	const struct s2_mem_attrs *a = s2_attrs_get(kvm);
	unsigned i;

	if (!a)
		return 0;
	i = s2_attrs_find(a, gfn);
	return i < a->nr && a->r[i].start <= gfn ? a->r[i].attrs : 0;
}

/*
 * Call @fn for every maximal piece of [start, end) whose attributes in @a
 * differ from @attrs. Returns the first non-zero result of @fn.
 */
static long s2_attrs_for_each_change(const struct s2_mem_attrs *a, gfn_t start, gfn_t end,
				     uint64_t attrs, long (*fn)(void *arg, gfn_t s, gfn_t e),
				     void *arg)
{
	unsigned i = a ? s2_attrs_find(a, start) : 0;
	gfn_t g = start;
	long r;

	while (g < end) {
		/* [g, next) has attributes cur. */
		gfn_t next;
		uint64_t cur;

		if (a && i < a->nr && a->r[i].start <= g) {
			cur = a->r[i].attrs;
			next = a->r[i].end;
			i++;
		} else {
			cur = 0;
			next = a && i < a->nr ? a->r[i].start : end;
		}
		if (next > end)
			next = end;
		if (cur != attrs && (r = fn(arg, g, next)))
			return r;
		g = next;
	}
	return 0;
}

static long s2_attrs_count_change(void *arg, gfn_t s, gfn_t e)
{
	(void)arg;
	(void)s;
	(void)e;
	return 1;
}

/* Append [start, end) with @attrs to @a, merging with an equal neighbour;
 * empty pieces and shared (0) ones are not stored. */
static void s2_attrs_push(struct s2_mem_attrs *a, gfn_t start, gfn_t end, uint64_t attrs)
{
	struct s2_attr_range *last = a->nr ? &a->r[a->nr - 1] : NULL;

	if (start >= end || !attrs)
		return;
	if (last && last->end == start && last->attrs == attrs)
		last->end = end;
	else
		a->r[a->nr++] = (struct s2_attr_range){ start, end, attrs };
}

/* Room for the array @old with one range set: at most one old range is
 * split in two, so old->nr + 2 entries always suffice. */
static unsigned s2_attrs_need(const struct s2_mem_attrs *old)
{
	return (old ? old->nr : 0) + 2;
}

/* Fill @a (zeroed, room for s2_attrs_need(@old)) with @old and [start, end)
 * set to @attrs. */
static void s2_attrs_build(struct s2_mem_attrs *a, const struct s2_mem_attrs *old, gfn_t start,
			   gfn_t end, uint64_t attrs)
{
	bool placed = false;

	for (unsigned i = 0; old && i < old->nr; i++) {
		const struct s2_attr_range *o = &old->r[i];

		if (o->end <= start) {
			s2_attrs_push(a, o->start, o->end, o->attrs);
			continue;
		}
		if (!placed) {
			s2_attrs_push(a, o->start, o->start < start ? start : o->start, o->attrs);
			s2_attrs_push(a, start, end, attrs);
			placed = true;
		}
		s2_attrs_push(a, o->start > end ? o->start : end, o->end, o->attrs);
	}
	if (!placed)
		s2_attrs_push(a, start, end, attrs);
}

struct s2_attr_zap {
	struct kvm *kvm;
	struct s2_change_acc *acc;
	long zapped;
};

static long s2_attr_zap_piece(void *arg, gfn_t s, gfn_t e)
{
	struct s2_attr_zap *z = arg;
	long r = s2_zap_range_locked(z->kvm, s, e, z->acc);

	if (r < 0)
		return r;
	z->zapped += r;
	/* A TD: the private side of a converted range goes too. */
	r = s2_tdx_zap_private(z->kvm, s, e);
	if (r < 0)
		return r;
	z->zapped += r;
	return 0;
}

/*
 * Conversion: the gfns whose attributes change lose their mappings in the
 * shared root. Their fault retries until the end of this invalidation, when
 * the new attributes are published. A huge leaf reaching outside the range
 * is zapped whole and faults back in smaller where the memslot allows.
 */
long kvm_pre_set_memory_attributes(struct kvm *kvm, const struct kvm_gfn_range *range,
				   struct s2_change_acc *acc)
{
	struct s2_attr_zap z = { kvm, acc, 0 };
	long r;

	s2_mn_invalidate_range_add(kvm, range->start, range->end);
	r = s2_attrs_for_each_change(s2_attrs_get(kvm), range->start, range->end,
				     range->arg.attributes, s2_attr_zap_piece, &z);
	return r < 0 ? r : z.zapped;
}

static int s2_attrs_check(struct kvm *kvm, gfn_t start, gfn_t end, uint64_t attrs)
{
	gfn_t gran = 1ull << (kvm->cfg.page_shift - S2_GFN_SHIFT);

	if (start >= end || end > 1ull << (kvm->cfg.gpa_bits - S2_GFN_SHIFT))
		return -EINVAL;
	if ((start | end) & (gran - 1))
		return -EINVAL;
	if (attrs & ~(uint64_t)KVM_MEMORY_ATTRIBUTES_VALID)
		return -EINVAL;
	return 0;
}

static S2_ALWAYS_INLINE int kvm_vm_set_mem_attributes_untraced(struct kvm *kvm, gfn_t start,
							       gfn_t end, uint64_t attrs)
{
	union kvm_mmu_notifier_arg arg = { .attributes = attrs };
	const struct s2_env *env;
	struct s2_mem_attrs *old, *new;
	struct s2_change_acc pre, post;
	unsigned cap;
	long r;

	if (!kvm)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	r = s2_attrs_check(kvm, start, end, attrs);
	if (r)
		return (int)r;
	env = kvm->env;
	s2_tdx_topup(kvm); /* a TD: S-EPT pages for demotions, before the lock */
	/*
	 * Nothing that may sleep under slots_lock (a spinlock): the new array
	 * is allocated with the lock dropped, for the size the current one
	 * needs, and built under the lock from whatever array is current then
	 * (another update in between only means allocating again if it grew).
	 */
	new = NULL;
	cap = 0;
	for (;;) {
		s2_spin_lock(&kvm->slots_lock, env);
		old = kvm->mem_attrs;
		if (!s2_attrs_for_each_change(old, start, end, attrs, s2_attrs_count_change,
					      NULL)) {
			s2_spin_unlock(&kvm->slots_lock);
			if (new)
				env->ops->free(env->ctx, new);
			return 0; /* nothing to convert */
		}
		if (s2_attrs_need(old) <= cap)
			break;
		cap = s2_attrs_need(old);
		s2_spin_unlock(&kvm->slots_lock);
		if (new)
			env->ops->free(env->ctx, new);
		new = env->ops->zalloc(env->ctx, sizeof(*new) + cap * sizeof(new->r[0]));
		if (!new)
			return -ENOMEM;
	}
	s2_attrs_build(new, old, start, end, attrs);
	s2_acc_init(&pre);
	s2_acc_init(&post);
	r = s2_mn_run_defer(kvm, S2_MN_ATTR_PRE, start, end, arg, true, &pre);
	if (r >= 0)
		__atomic_store_n(&kvm->mem_attrs, new, __ATOMIC_RELEASE);
	/* Ends the invalidation either way, so in_progress stays balanced. */
	(void)s2_mn_run_defer(kvm, S2_MN_ATTR_POST, start, end, arg, true, &post);
	s2_spin_unlock(&kvm->slots_lock);
	s2_acc_free_tables(kvm, &pre);
	s2_acc_free_tables(kvm, &post);
	if (r < 0) {
		env->ops->free(env->ctx, new);
		return (int)r;
	}
	if (old) {
		env->ops->synchronize_rcu(env->ctx);
		env->ops->free(env->ctx, old);
	}
	return 0;
}

int kvm_vm_set_mem_attributes(struct kvm *kvm, gfn_t start, gfn_t end, uint64_t attrs)
{
	int r = kvm_vm_set_mem_attributes_untraced(kvm, start, end, attrs);

	S2_TRACE(kvm, "attributes", r, S2_TA_HEX("gfn", start), S2_TA_HEX("end", end),
		 S2_TA_ATTR("attrs", attrs));
	return r;
}

uint64_t kvm_get_memory_attributes(struct kvm *kvm, gfn_t gfn)
{
	uint64_t a;

	if (!kvm)
		return 0;
	s2_mn_rcu_read_lock(kvm);
	a = s2_attrs_lookup(kvm, gfn);
	s2_mn_rcu_read_unlock(kvm);
	return a;
}

bool kvm_range_has_memory_attributes(struct kvm *kvm, gfn_t start, gfn_t end, uint64_t attrs)
{
	bool same;

	if (!kvm)
		return false;
	s2_mn_rcu_read_lock(kvm);
	same = !s2_attrs_for_each_change(s2_attrs_get(kvm), start, end, attrs,
					 s2_attrs_count_change, NULL);
	s2_mn_rcu_read_unlock(kvm);
	return same;
}

void s2_notifier_destroy(struct kvm *kvm)
{
	if (kvm->mem_attrs)
		kvm->env->ops->free(kvm->env->ctx, kvm->mem_attrs);
	kvm->mem_attrs = NULL;
}
