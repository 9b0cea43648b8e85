// SPDX-License-Identifier: MIT
/*
 * Memslots. Readers (faults, notifiers, dirty logging) look slots up under
 * RCU in the published set (struct s2_memslots), which nobody edits. There
 * are two sets, used in turn as KVM does: an update edits the unpublished
 * one in place (O(log n): its treaps and id table) and publishes it under
 * slots_lock; after the grace period that follows, nobody reads the set it
 * replaced, and the same edit brings that one up to date as the next update's
 * spare. A set is copied whole only when none fits (the first updates, a
 * set grown by doubling, or updates that overlap in time).
 *
 * An update that removes mappings makes the range an invalidation in
 * progress, zaps it (yielding mmu_lock as it goes, or by the fast zap when
 * the range holds most of the VM's leaves), then ends the invalidation,
 * publishes and bumps memslots_gen in one hold: a fault that resolved its
 * slot from the old set retries on the range or on the generation, and one
 * that got the lock before the zap installed before it, which removes it.
 *
 * slots_lock is a spinlock, so it is held only for what never sleeps:
 * checking an update against the current set, editing and publishing the
 * other one, zapping what the update unmaps (so the update is one step for
 * every other update; a yield drops only mmu_lock), and, after the grace
 * period, the spare's edit. The environment hooks that may sleep run with
 * no lock held: a set and a bitmap are allocated before (the check is
 * redone under the lock that publishes), and the zap's tables, dirty
 * logging's split or collapse, the grace period and the frees come after.
 */
#include "core/kvm_internal.h"

/* The slot of @gfn: the one found last when it holds gfn (lookups come in
 * runs on one slot: faults, dirty marking), else a descent of the treap. */
const struct kvm_memory_slot *s2_memslots_find(const struct s2_memslots *ms, gfn_t gfn)
{
	unsigned h = __atomic_load_n(&ms->gfn_hint, __ATOMIC_RELAXED);

	if (h && h <= ms->nr && gfn >= ms->gfn[h - 1].base && gfn < ms->gfn[h - 1].end)
		return &ms->slots[h - 1];
	for (unsigned t = ms->gfn_root; t;) {
		const struct s2_gfn_node *n = &ms->gfn[t - 1];

		if (gfn < n->base) {
			t = n->kid[0];
		} else if (gfn >= n->end) {
			t = n->kid[1];
		} else {
			/* The hint is the one field readers write. */
			__atomic_store_n((uint16_t *)&ms->gfn_hint, (uint16_t)t, __ATOMIC_RELAXED);
			return &ms->slots[t - 1];
		}
	}
	return NULL;
}

static gfn_t s2_gfn_limit(const struct kvm *kvm)
{
	return 1ull << (kvm->cfg.gpa_bits - S2_GFN_SHIFT);
}

/* Range, alignment and flag checks that need no other slot. */
static int s2_slot_valid(const struct kvm *kvm, const struct kvm_memory_slot *s)
{
	uint64_t gran = 1ull << (kvm->cfg.page_shift - S2_GFN_SHIFT);

	if (!s->npages || (s->flags & ~KVM_MEM_FLAGS_VALID))
		return -EINVAL;
	if ((s->flags & KVM_MEM_READONLY) && (s->flags & KVM_MEM_LOG_DIRTY_PAGES))
		return -EINVAL; /* nothing to log: the guest cannot write */
	/* A TD: memslots are given without the shared bit; a logging slot
	 * logs its shared half only (private pages are never logged). */
	if (kvm->gfn_direct_bits &&
	    (s->base_gfn >= kvm->gfn_direct_bits || s->npages > kvm->gfn_direct_bits - s->base_gfn))
		return -EINVAL;
	if (s->userspace_addr & ((gran << S2_GFN_SHIFT) - 1))
		return -EINVAL;
	if ((s->base_gfn | s->npages) & (gran - 1))
		return -EINVAL;
	if (s->base_gfn >= s2_gfn_limit(kvm) || s->npages > s2_gfn_limit(kvm) - s->base_gfn)
		return -EINVAL;
	if (s->userspace_addr + (s->npages << S2_GFN_SHIFT) < s->userspace_addr)
		return -EINVAL;
	return 0;
}

static bool s2_overlaps(const struct kvm_memory_slot *a, const struct kvm_memory_slot *b)
{
	return a->base_gfn < b->base_gfn + b->npages && b->base_gfn < a->base_gfn + a->npages;
}

static const struct kvm_memory_slot *s2_find_id(const struct s2_memslots *ms, unsigned id)
{
	int i = s2_memslots_id_index(ms, id);

	return i < 0 ? NULL : &ms->slots[i];
}

/* Whether @s overlaps a slot of @ms other than the one with id @skip_id
 * (-1: none to skip). O(log n): the slots are disjoint, so only the first
 * two (by gfn) that end after @s's start can begin before its end. */
static bool s2_overlaps_any(const struct s2_memslots *ms, const struct kvm_memory_slot *s,
			    long skip_id)
{
	int i = s2_memslots_gfn_lower(ms, s->base_gfn);

	for (unsigned n = 0; i >= 0 && n < 2; i = s2_memslots_gfn_next(ms, (unsigned)i), n++) {
		if (skip_id >= 0 && ms->slots[i].id == (unsigned)skip_id)
			continue;
		return s2_overlaps(&ms->slots[i], s);
	}
	return false;
}

static hva_t s2_hva_end(const struct kvm_memory_slot *s)
{
	return s->userspace_addr + (s->npages << S2_GFN_SHIFT);
}

/*
 * The first slot of subtree @t (a node reference) in hva order that comes
 * after the last result and ends after it->start, or -1. A subtree whose
 * largest end is not after start is skipped whole; a left subtree that
 * fails does so at once but on the path of the last result, and a right
 * one entered after a failed left one lies wholly after the last result, so
 * it fails at once or succeeds: O(depth).
 */
static int s2_hva_search(const struct s2_memslots_hva_iter *it, unsigned t)
{
	const struct s2_hva_node *hv = it->ms->hva;

	while (t && hv[t - 1].max > it->start) {
		const struct s2_hva_node *n = &hv[t - 1];

		if (!it->started || n->addr > it->last_addr ||
		    (n->addr == it->last_addr && n->id > it->last_id)) {
			int r = s2_hva_search(it, n->kid[0]);

			if (r >= 0)
				return r;
			if (n->end > it->start)
				return (int)(t - 1);
		}
		t = n->kid[1];
	}
	return -1;
}

int s2_memslots_hva_first(struct s2_memslots_hva_iter *it, const struct s2_memslots *ms,
			  hva_t start, hva_t end)
{
	it->ms = ms;
	it->start = start;
	it->end = end;
	it->started = false;
	it->last_node = 0;
	return s2_memslots_hva_next(it);
}

/* Results come in hva order, so the first slot that starts at or after
 * end ends the search. */
/*
 * The first slot in hva order that ends after it->start, or -1. Where no two
 * slots share an hva (hva_overlaps == 0), a slot that holds start is that
 * slot (every slot before it ends at or before its start): the one the last
 * descent found is tried first (notifier calls come in runs on one slot: a
 * range's pages, reclaim's neighbours). Else a descent, one node per level
 * (each carries its children's max-end).
 */
static int s2_hva_first_after_start(const struct s2_memslots_hva_iter *it)
{
	const struct s2_memslots *ms = it->ms;
	const struct s2_hva_node *hv = ms->hva;
	unsigned t = ms->hva_root, h = __atomic_load_n(&ms->hva_hint, __ATOMIC_RELAXED);

	if (h && h <= ms->nr && !ms->hva_overlaps && hv[h - 1].addr <= it->start &&
	    it->start < hv[h - 1].end)
		return (int)h - 1;
	if (!t || hv[t - 1].max <= it->start)
		return -1;
	for (;;) { /* subtree t holds one: left of it, it, or right of it */
		const struct s2_hva_node *n = &hv[t - 1];

		if (n->kid_max[0] > it->start) {
			t = n->kid[0];
		} else if (n->end > it->start) {
			/* The hint is one of the two fields readers write. */
			if (n->addr <= it->start)
				__atomic_store_n((uint16_t *)&ms->hva_hint, (uint16_t)t,
						 __ATOMIC_RELAXED);
			return (int)t - 1;
		} else {
			t = n->kid[1];
		}
	}
}

int s2_memslots_hva_next(struct s2_memslots_hva_iter *it)
{
	const struct s2_hva_node *hv = it->ms->hva;
	int i = -1;

	/* The node after the last result is the next result or ends the
	 * search, in O(1), unless it ends at or before start. */
	if (it->last_node) {
		unsigned nx = hv[it->last_node - 1].next;

		if (!nx || hv[nx - 1].addr >= it->end)
			goto none;
		if (hv[nx - 1].end > it->start)
			i = (int)nx - 1;
	}
	if (i < 0)
		i = it->started ? s2_hva_search(it, it->ms->hva_root) :
				  s2_hva_first_after_start(it);
	if (i < 0 || hv[i].addr >= it->end)
		goto none;
	it->started = true;
	it->last_addr = hv[i].addr;
	it->last_id = hv[i].id;
	it->last_node = (unsigned)i + 1;
	return i;
none:
	it->started = true;
	it->last_addr = ~(hva_t)0; /* nothing after */
	it->last_id = ~0u;
	it->last_node = 0;
	return -1;
}

/* The dirty bitmap of slot @s of @ms (NULL: it does not log). */
static struct s2_slot_dirty *s2_dirty_of(const struct s2_memslots *ms,
					 const struct kvm_memory_slot *s)
{
	return ms->dirty[s - ms->slots];
}

/*
 * One memslot update. The plan is made under slots_lock against the current
 * set; the memory it needs is allocated with no lock held, and the plan is
 * made again under the lock that publishes it (another update may have come
 * in between), until what was allocated fits. What the publication leaves
 * behind is freed after the lock is dropped.
 */
struct s2_slot_update {
	/* The plan. */
	int drop_id;		     /* slot leaving the set (-1: none) */
	bool add;		     /* upd joins the set */
	struct kvm_memory_slot prev; /* drop_id as it was */
	struct kvm_memory_slot upd;  /* what joins */
	struct s2_slot_dirty *dirty; /* upd's bitmap, kept from prev (or NULL) */
	bool new_dirty;		     /* upd logs and needs a fresh bitmap */
	struct s2_slot_dirty *gone;  /* prev's bitmap when upd does not keep it */
	bool zap;		     /* unmap prev's range on publication */
	unsigned nr;		     /* slots in the new set */
	/* What publishing leaves for after slots_lock. */
	struct s2_memslots *old;  /* the replaced set */
	struct s2_change_acc acc; /* the zap's unlinked tables */
	uint64_t gen;		  /* memslots_gen of the new set */
	int dirty_change;	  /* S2_DIRTY_START / S2_DIRTY_STOP / 0 */
	/* The zap: by the fast zap (its pages allocated before slots_lock)
	 * or in place, and the leaves it removed. */
	bool fast;
	struct s2_fast_zap fz;
	long zapped;
};

typedef int (*s2_slot_plan_fn)(struct kvm *kvm, const struct s2_memslots *cur,
			       struct s2_slot_update *u);

/* Room for @cap slots, zeroed (NULL: -ENOMEM). No lock may be held. */
static struct s2_memslots *s2_memslots_alloc(struct kvm *kvm, unsigned cap)
{
	const struct s2_env *env = kvm->env;
	struct s2_memslots *ms;
	unsigned hcap = 4;
	size_t bytes;

	while (hcap < 2 * cap)
		hcap <<= 1;
	bytes = sizeof(*ms) + cap * (sizeof(ms->slots[0]) + sizeof(ms->dirty[0]));
	bytes += cap * (sizeof(ms->hva[0]) + sizeof(ms->gfn[0]) + sizeof(ms->prio[0]));
	bytes += hcap * sizeof(ms->id_hash[0]);
	ms = env->ops->zalloc(env->ctx, bytes);
	if (ms) {
		ms->cap = cap;
		ms->dirty = (struct s2_slot_dirty **)&ms->slots[cap];
		ms->hva = (struct s2_hva_node *)&ms->dirty[cap];
		ms->gfn = (struct s2_gfn_node *)&ms->hva[cap];
		ms->prio = (uint32_t *)&ms->gfn[cap];
		ms->id_hash = (uint16_t *)&ms->prio[cap];
		ms->id_mask = hcap - 1;
	}
	return ms;
}

/* The capacity of a set allocated for @nr slots: doubled, so copies of
 * growing sets cost O(1) amortised per update. */
static unsigned s2_memslots_cap(unsigned nr)
{
	unsigned cap = nr < 4 ? 8 : 2 * nr;

	if (cap > CONFIG_S2_MAX_MEMSLOTS)
		cap = CONFIG_S2_MAX_MEMSLOTS;
	return cap < nr ? nr : cap;
}

/* Treap priority of a slot: a mix of its id (kept in ms->prio). */
static uint32_t s2_memslots_prio(unsigned id)
{
	uint64_t x = id + 0x9e3779b97f4a7c15ull;

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return (uint32_t)(x ^ (x >> 31));
}

static bool s2_prio_above(const struct s2_memslots *ms, unsigned a, unsigned b)
{
	uint32_t pa = ms->prio[a], pb = ms->prio[b];

	return pa > pb || (pa == pb && ms->slots[a].id > ms->slots[b].id);
}

/*
 * One of the two treaps (hva: the one with the max-end). Its nodes are
 * reached by offsets (the array, a node's size, where its children and next
 * link are), so the code that walks either tree does not branch on which
 * one it is; both keys lead their node (base, addr), ties go by slot id.
 */
struct s2_treap {
	struct s2_memslots *ms;
	uint16_t *root;
	bool hva;
	char *nodes;
	unsigned size, kid, next;
	/* Set by an insert, erase or relink: the nodes before and after the
	 * one it places or removes (0: none), from the path it walks. */
	unsigned pred, succ;
};
_Static_assert(offsetof(struct s2_gfn_node, base) == 0 && offsetof(struct s2_hva_node, addr) == 0,
	       "a treap node's key leads it");

/* The next-in-order link of node @i. */
static uint16_t *s2_next(struct s2_treap *tr, unsigned i)
{
	return (uint16_t *)(tr->nodes + (size_t)i * tr->size + tr->next);
}

/* Child @c (0: left) of node @i. */
static uint16_t *s2_kid(struct s2_treap *tr, unsigned i, unsigned c)
{
	return (uint16_t *)(tr->nodes + (size_t)i * tr->size + tr->kid) + c;
}

static bool s2_treap_less(struct s2_treap *tr, unsigned a, unsigned b)
{
	uint64_t ka = *(const uint64_t *)(tr->nodes + (size_t)a * tr->size);
	uint64_t kb = *(const uint64_t *)(tr->nodes + (size_t)b * tr->size);

	/* gfn keys never tie: the slots are disjoint */
	return ka < kb || (ka == kb && tr->ms->slots[a].id < tr->ms->slots[b].id);
}

/* Recompute node @i's max-end from its slot and its children. */
static void s2_treap_pull(struct s2_treap *tr, unsigned i)
{
	struct s2_hva_node *hv = tr->ms->hva, *n = &hv[i];
	hva_t m;

	if (!tr->hva)
		return;
	m = n->end;
	for (unsigned c = 0; c < 2; c++) {
		n->kid_max[c] = n->kid[c] ? hv[n->kid[c] - 1].max : 0;
		if (n->kid_max[c] > m)
			m = n->kid_max[c];
	}
	n->max = m;
}

/* Split subtree @t into the nodes before slot @x (to *@l) and after (*@r). */
static void s2_treap_split(struct s2_treap *tr, unsigned t, unsigned x, uint16_t *l, uint16_t *r)
{
	if (!t) {
		*l = *r = 0;
		return;
	}
	if (s2_treap_less(tr, t - 1, x)) {
		tr->pred = t;
		*l = (uint16_t)t;
		s2_treap_split(tr, *s2_kid(tr, t - 1, 1), x, s2_kid(tr, t - 1, 1), r);
	} else {
		tr->succ = t;
		*r = (uint16_t)t;
		s2_treap_split(tr, *s2_kid(tr, t - 1, 0), x, l, s2_kid(tr, t - 1, 0));
	}
	s2_treap_pull(tr, t - 1);
}

/* Subtree @t with slot @x inserted; returns the new subtree. */
static unsigned s2_treap_insert(struct s2_treap *tr, unsigned t, unsigned x)
{
	uint16_t *k;

	if (!t || s2_prio_above(tr->ms, x, t - 1)) {
		s2_treap_split(tr, t, x, s2_kid(tr, x, 0), s2_kid(tr, x, 1));
		s2_treap_pull(tr, x);
		return x + 1;
	}
	if (s2_treap_less(tr, x, t - 1)) {
		tr->succ = t;
		k = s2_kid(tr, t - 1, 0);
	} else {
		tr->pred = t;
		k = s2_kid(tr, t - 1, 1);
	}
	*k = (uint16_t)s2_treap_insert(tr, *k, x);
	s2_treap_pull(tr, t - 1);
	return t;
}

/* Subtrees @a and @b (all of @a before @b) joined. */
static unsigned s2_treap_merge(struct s2_treap *tr, unsigned a, unsigned b)
{
	uint16_t *k;

	if (!a || !b)
		return a ? a : b;
	if (s2_prio_above(tr->ms, a - 1, b - 1)) {
		k = s2_kid(tr, a - 1, 1);
		*k = (uint16_t)s2_treap_merge(tr, *k, b);
		s2_treap_pull(tr, a - 1);
		return a;
	}
	k = s2_kid(tr, b - 1, 0);
	*k = (uint16_t)s2_treap_merge(tr, a, *k);
	s2_treap_pull(tr, b - 1);
	return b;
}

/* Subtree @t without slot @x (which it holds). */
static unsigned s2_treap_erase(struct s2_treap *tr, unsigned t, unsigned x)
{
	uint16_t *k;

	if (t == x + 1) {
		unsigned m, l = *s2_kid(tr, x, 0);

		if (l) { /* the node before x: the last of its left subtree */
			while (*s2_kid(tr, l - 1, 1))
				l = *s2_kid(tr, l - 1, 1);
			tr->pred = l;
		}
		m = s2_treap_merge(tr, *s2_kid(tr, x, 0), *s2_kid(tr, x, 1));

		*s2_kid(tr, x, 0) = *s2_kid(tr, x, 1) = 0;
		return m;
	}
	bool right = !s2_treap_less(tr, x, t - 1);

	if (right)
		tr->pred = t;
	k = s2_kid(tr, t - 1, right);
	*k = (uint16_t)s2_treap_erase(tr, *k, x);
	s2_treap_pull(tr, t - 1);
	return t;
}

/* Whether nodes @a and @b (references, 0: none; @a before @b in hva
 * order) overlap: 1 or 0, for ms->hva_overlaps. */
static unsigned s2_hva_pair(const struct s2_memslots *ms, unsigned a, unsigned b)
{
	return a && b && ms->hva[a - 1].end > ms->hva[b - 1].addr;
}

/* Node @x into the tree, and into the order's links (and the hva tree's
 * count of overlapping neighbours: x comes between pred and succ). */
static void s2_treap_add(struct s2_treap *tr, unsigned x)
{
	struct s2_memslots *ms = tr->ms;

	tr->pred = tr->succ = 0;
	*tr->root = (uint16_t)s2_treap_insert(tr, *tr->root, x);
	*s2_next(tr, x) = (uint16_t)tr->succ;
	if (tr->pred)
		*s2_next(tr, tr->pred - 1) = (uint16_t)(x + 1);
	if (tr->hva)
		ms->hva_overlaps += s2_hva_pair(ms, tr->pred, x + 1) +
				    s2_hva_pair(ms, x + 1, tr->succ) -
				    s2_hva_pair(ms, tr->pred, tr->succ);
}

/* Node @x out of the tree and of the order's links (and the count). */
static void s2_treap_del(struct s2_treap *tr, unsigned x)
{
	struct s2_memslots *ms = tr->ms;
	unsigned succ = *s2_next(tr, x);

	tr->pred = 0;
	*tr->root = (uint16_t)s2_treap_erase(tr, *tr->root, x);
	if (tr->pred)
		*s2_next(tr, tr->pred - 1) = (uint16_t)succ;
	*s2_next(tr, x) = 0;
	if (tr->hva)
		ms->hva_overlaps += s2_hva_pair(ms, tr->pred, succ) -
				    s2_hva_pair(ms, tr->pred, x + 1) - s2_hva_pair(ms, x + 1, succ);
}

/* Repoint the link to node @from (whose keys, children and next node @to
 * now holds) at @to, and the next link of the node before it. */
static void s2_treap_relink(struct s2_treap *tr, unsigned from, unsigned to)
{
	uint16_t *link = tr->root;
	unsigned pred = 0, l;

	while (*link != from + 1) {
		bool right = !s2_treap_less(tr, to, *link - 1);

		if (right)
			pred = *link;
		link = s2_kid(tr, *link - 1, right);
	}
	*link = (uint16_t)(to + 1);
	l = *s2_kid(tr, to, 0);
	if (l) {
		while (*s2_kid(tr, l - 1, 1))
			l = *s2_kid(tr, l - 1, 1);
		pred = l;
	}
	if (pred)
		*s2_next(tr, pred - 1) = (uint16_t)(to + 1);
}

static struct s2_treap s2_treap_of(struct s2_memslots *ms, bool hva)
{
	if (hva)
		return (struct s2_treap){ .ms = ms,
					  .root = &ms->hva_root,
					  .hva = true,
					  .nodes = (char *)ms->hva,
					  .size = sizeof(ms->hva[0]),
					  .kid = offsetof(struct s2_hva_node, kid),
					  .next = offsetof(struct s2_hva_node, next) };
	return (struct s2_treap){ .ms = ms,
				  .root = &ms->gfn_root,
				  .nodes = (char *)ms->gfn,
				  .size = sizeof(ms->gfn[0]),
				  .kid = offsetof(struct s2_gfn_node, kid),
				  .next = offsetof(struct s2_gfn_node, next) };
}

static void s2_id_hash_add(struct s2_memslots *ms, unsigned i)
{
	unsigned h = s2_memslots_id_hash(ms->slots[i].id, ms->id_mask);

	while (ms->id_hash[h])
		h = (h + 1) & ms->id_mask;
	ms->id_hash[h] = (uint16_t)(i + 1);
}

/* The id table's entry for slot @i. */
static unsigned s2_id_hash_pos(const struct s2_memslots *ms, unsigned i)
{
	unsigned h = s2_memslots_id_hash(ms->slots[i].id, ms->id_mask);

	while (ms->id_hash[h] != i + 1)
		h = (h + 1) & ms->id_mask;
	return h;
}

/* Empty entry @h, moving back the later entries of its probe run that
 * would no longer be found past the hole. */
static void s2_id_hash_del(struct s2_memslots *ms, unsigned h)
{
	for (unsigned j = h;;) {
		unsigned k;

		j = (j + 1) & ms->id_mask;
		if (!ms->id_hash[j])
			break;
		k = s2_memslots_id_hash(ms->slots[ms->id_hash[j] - 1].id, ms->id_mask);
		/* The entry at j stays if its home k lies cyclically in (h, j]. */
		if (h <= j ? (h < k && k <= j) : (h < k || k <= j))
			continue;
		ms->id_hash[h] = ms->id_hash[j];
		h = j;
	}
	ms->id_hash[h] = 0;
}

/* Slot @i's per-slot entries (slot, bitmap, nodes, priority) copied from
 * slot @j of @src. */
static void s2_memslots_move(struct s2_memslots *ms, unsigned i, const struct s2_memslots *src,
			     unsigned j)
{
	ms->slots[i] = src->slots[j];
	ms->dirty[i] = src->dirty[j];
	ms->gfn[i] = src->gfn[j];
	ms->hva[i] = src->hva[j];
	ms->prio[i] = src->prio[j];
}

/* @ms (fresh, zeroed, room for @src's slots) made a copy of @src. O(n). */
static void s2_memslots_copy(struct s2_memslots *ms, const struct s2_memslots *src)
{
	ms->nr = src->nr;
	ms->gfn_root = src->gfn_root;
	ms->hva_root = src->hva_root;
	ms->hva_overlaps = src->hva_overlaps;
	for (unsigned i = 0; i < src->nr; i++) {
		s2_memslots_move(ms, i, src, i);
		s2_id_hash_add(ms, i);
	}
}

/*
 * Edit @ms (unpublished) in place: drop slot @drop_id (if >= 0) and add
 * @add (if non-NULL) with the dirty bitmap @add_dirty; the other slots keep
 * their bitmaps. A replace (the same id, same hva and size) keeps its index
 * and moves in the gfn treap only when its base changes. O(log n) expected;
 * @ms has room for the result.
 */
static void s2_memslots_edit(struct s2_memslots *ms, int drop_id, const struct kvm_memory_slot *add,
			     struct s2_slot_dirty *add_dirty)
{
	struct s2_treap g = s2_treap_of(ms, false), v = s2_treap_of(ms, true);
	int d = drop_id >= 0 ? s2_memslots_id_index(ms, (unsigned)drop_id) : -1;

	if (d >= 0 && add) { /* a move or a flags change */
		unsigned i = (unsigned)d;
		bool moves = ms->slots[i].base_gfn != add->base_gfn;

		if (moves)
			s2_treap_del(&g, i);
		ms->slots[i] = *add;
		ms->dirty[i] = add_dirty;
		if (moves) {
			ms->gfn[i].base = add->base_gfn;
			ms->gfn[i].end = add->base_gfn + add->npages;
			s2_treap_add(&g, i);
		}
		return;
	}
	if (d >= 0) {
		unsigned i = (unsigned)d, last = ms->nr - 1;

		s2_treap_del(&g, i);
		s2_treap_del(&v, i);
		s2_id_hash_del(ms, s2_id_hash_pos(ms, i));
		if (i != last) { /* the last slot fills the hole */
			unsigned h = s2_id_hash_pos(ms, last);

			s2_memslots_move(ms, i, ms, last);
			s2_treap_relink(&g, last, i);
			s2_treap_relink(&v, last, i);
			ms->id_hash[h] = (uint16_t)(i + 1);
		}
		ms->slots[last] = (struct kvm_memory_slot){ 0 };
		ms->dirty[last] = NULL;
		ms->gfn[last] = (struct s2_gfn_node){ 0 };
		ms->hva[last] = (struct s2_hva_node){ 0 };
		ms->nr = last;
	}
	if (add) {
		unsigned i = ms->nr++;
		hva_t end = s2_hva_end(add);

		ms->slots[i] = *add;
		ms->dirty[i] = add_dirty;
		ms->prio[i] = s2_memslots_prio(add->id);
		ms->gfn[i] = (struct s2_gfn_node){ .base = add->base_gfn,
						   .end = add->base_gfn + add->npages };
		ms->hva[i] = (struct s2_hva_node){
			.addr = add->userspace_addr, .end = end, .max = end, .id = add->id
		};
		s2_id_hash_add(ms, i);
		s2_treap_add(&g, i);
		s2_treap_add(&v, i);
	}
}

/*
 * Publish @ms in place of the current set (slots_lock held). When the update
 * zaps (a slot leaves, moves or becomes read-only), prev's range becomes an
 * invalidation in progress first, so the zap may yield mmu_lock: a fault
 * that resolved the slot from the set still published retries instead of
 * mapping it again behind the zap's cursor. The zap runs while the old set
 * is still the published one, so the dirty pages of leaves it removes are
 * found in the slot's bitmap at their old gfns (a move keeps the bitmap);
 * the invalidation ends and the new set is published in one hold, after
 * the zap. With u->fast the zap is the fast zap: every root is invalidated
 * in O(1) and the old ones are emptied under the shared side (the vcpus
 * fault on the fresh roots meanwhile), still before the publication.
 * Nothing here sleeps: the replaced set and the zap's tables wait in @u.
 */
static void s2_memslots_publish(struct kvm *kvm, struct s2_memslots *ms, struct s2_slot_update *u)
{
	bool adds = u->add && (u->drop_id < 0 || u->upd.base_gfn != u->prev.base_gfn);
	/* The generation wraps in MMIO entries' bits: they go first. */
	bool wrap = s2_mmio_gen_wraps(kvm);
	gfn_t zs = u->prev.base_gfn, ze = u->prev.base_gfn + u->prev.npages;

	if (adds || u->zap || wrap)
		s2_mmu_write_lock(kvm);
	if (u->zap) {
		s2_invalidate_begin(kvm);
		s2_invalidate_add(kvm, zs, ze);
		kvm->slot_zap_start = zs; /* for kvm_mmu_map_range() */
		kvm->slot_zap_end = ze;
		if (u->fast && !s2_fast_zap_locked(kvm, &u->fz)) {
			s2_mmu_write_unlock_keep_tables(kvm, &u->acc);
			u->zapped = s2_fast_zap_teardown(kvm, &u->fz, &u->acc);
			s2_mmu_write_lock(kvm);
		}
		/* In place; after a fast zap this finds what faults mapped
		 * in the fresh roots meanwhile, none of it in the range. */
		u->zapped += s2_zap_range_yielding_locked(kvm, zs, ze, &u->acc);
		/* A TD's private mappings of the slot go too (docs/tdx.md). */
		(void)s2_tdx_zap_private(kvm, zs, ze);
		(void)s2_invalidate_end(kvm);
		kvm->slot_zap_start = kvm->slot_zap_end = 0;
	}
	if (wrap)
		s2_mmio_gen_bump_locked(kvm, kvm->memslots_gen + 1);
	/*
	 * New gfns join an invalidation in progress before the slot can be
	 * found: invalidate_range_start reads the slots under the write side
	 * too, so it either sees the new set or has raised in_progress by now.
	 */
	if (adds)
		s2_notifier_slot_adding(kvm, &u->upd, &u->acc);
	u->old = kvm->memslots;
	__atomic_store_n(&kvm->memslots, ms, __ATOMIC_RELEASE);
	u->gen = __atomic_add_fetch(&kvm->memslots_gen, 1, __ATOMIC_SEQ_CST);
	if (adds || u->zap || wrap)
		s2_mmu_write_unlock_keep_tables(kvm, &u->acc);
}

/*
 * After the grace period that followed the publication of @u (no lock
 * held): the set it replaced, which nobody reads now, gets the same edit
 * and becomes the spare, if no other update has published since (the
 * generation is still @u's: the replaced set then equals the published
 * one; a pointer compare would not do, as the set @u published may have
 * been replaced and published again since) and it has room. Otherwise it is
 * freed.
 */
static void s2_memslots_retire(struct kvm *kvm, struct s2_slot_update *u)
{
	const struct s2_env *env = kvm->env;
	struct s2_memslots *old = u->old;

	s2_spin_lock(&kvm->slots_lock, env);
	if (__atomic_load_n(&kvm->memslots_gen, __ATOMIC_RELAXED) == u->gen &&
	    !kvm->memslots_spare && old->cap >= kvm->memslots->nr) {
		s2_memslots_edit(old, u->drop_id, u->add ? &u->upd : NULL, u->dirty);
		kvm->memslots_spare = old;
		old = NULL;
	}
	s2_spin_unlock(&kvm->slots_lock);
	if (old)
		env->ops->free(env->ctx, old);
}

/*
 * Run the update @plan describes. Under slots_lock: plan, and, once the
 * memory fits the plan, edit the spare set (or a copy of the published one
 * when there is no spare with room), publish it and zap (the update is
 * atomic to every other holder of the lock). With no lock held: the
 * allocations before, and after the publication the freeing of the zap's
 * tables, dirty logging's start or stop, the grace period, the replaced
 * set's edit into the next spare and the frees.
 */
static int s2_memslots_update(struct kvm *kvm, s2_slot_plan_fn plan, struct s2_slot_update *u)
{
	const struct s2_env *env = kvm->env;
	struct s2_slot_dirty *fresh = NULL;
	struct s2_memslots *ms = NULL, *next, *stale = NULL;
	int r;

	s2_acc_init(&u->acc);
	for (;;) {
		struct s2_memslots *sp;

		s2_spin_lock(&kvm->slots_lock, env);
		r = plan(kvm, kvm->memslots, u);
		if (r)
			goto unlock;
		sp = kvm->memslots_spare;
		if ((!u->new_dirty || (fresh && fresh->npages == u->upd.npages)) &&
		    ((sp && sp->cap >= u->nr) || (ms && ms->cap >= u->nr)))
			break;
		s2_spin_unlock(&kvm->slots_lock);
		/* Allocate what the plan needs, then plan again under the lock. */
		if (u->new_dirty && (!fresh || fresh->npages != u->upd.npages)) {
			s2_dirty_slot_free(kvm, fresh);
			fresh = s2_dirty_slot_alloc(kvm, &u->upd);
			if (!fresh) {
				r = -ENOMEM;
				goto out;
			}
		}
		if ((!sp || sp->cap < u->nr) && (!ms || ms->cap < u->nr)) {
			if (ms)
				env->ops->free(env->ctx, ms);
			ms = s2_memslots_alloc(kvm, s2_memslots_cap(u->nr));
			if (!ms) {
				r = -ENOMEM;
				goto out;
			}
		}
	}
	if (u->new_dirty) {
		u->dirty = fresh;
		fresh = NULL;
	}
	next = kvm->memslots_spare;
	kvm->memslots_spare = NULL;
	if (!next || next->cap < u->nr) {
		stale = next; /* too small: a copy of the published set instead */
		next = ms;
		ms = NULL;
		s2_memslots_copy(next, kvm->memslots);
	}
	s2_memslots_edit(next, u->drop_id, u->add ? &u->upd : NULL, u->dirty);
	if (u->add && u->drop_id >= 0)
		u->dirty_change = s2_dirty_slot_published(kvm, &u->prev, &u->upd);
	s2_memslots_publish(kvm, next, u);
unlock:
	s2_spin_unlock(&kvm->slots_lock);
	if (r)
		goto out;
	s2_acc_free_tables(kvm, &u->acc);
	/* Published: start logging (split, protect) or stop it (collapse). */
	if (u->dirty_change)
		s2_dirty_slot_flags_changed(kvm, &u->upd, u->dirty_change, u->gen);
	/* After the grace period nobody uses the old set or the bitmap. */
	env->ops->synchronize_rcu(env->ctx);
	s2_memslots_retire(kvm, u);
	s2_dirty_slot_free(kvm, u->gone);
out:
	s2_dirty_slot_free(kvm, fresh);
	if (ms)
		env->ops->free(env->ctx, ms);
	if (stale)
		env->ops->free(env->ctx, stale);
	return r;
}

/* kvm_set_memslot's plan: add u->upd. */
static int s2_plan_add(struct kvm *kvm, const struct s2_memslots *cur, struct s2_slot_update *u)
{
	(void)kvm;
	if (cur->nr >= CONFIG_S2_MAX_MEMSLOTS)
		return -ENOSPC;
	if (s2_find_id(cur, u->upd.id) || s2_overlaps_any(cur, &u->upd, -1))
		return -EINVAL;
	u->drop_id = -1;
	u->add = true;
	u->new_dirty = u->upd.flags & KVM_MEM_LOG_DIRTY_PAGES;
	u->nr = cur->nr + 1;
	return 0;
}

static S2_ALWAYS_INLINE int kvm_set_memslot_untraced(struct kvm *kvm,
						     const struct kvm_memory_slot *slot)
{
	struct s2_slot_update u = { 0 };
	int r;

	if (!kvm || !slot)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	r = s2_slot_valid(kvm, slot);
	if (r)
		return r;
	u.upd = *slot;
	return s2_memslots_update(kvm, s2_plan_add, &u);
}

int kvm_set_memslot(struct kvm *kvm, const struct kvm_memory_slot *slot)
{
	int r = kvm_set_memslot_untraced(kvm, slot);

	if (slot)
		S2_TRACE(kvm, "memslot", r, S2_TA_DEC("id", slot->id),
			 S2_TA_HEX("gfn", slot->base_gfn), S2_TA_HEX("npages", slot->npages),
			 S2_TA_HEX("hva", slot->userspace_addr), S2_TA_SLOTF("flags", slot->flags));
	return r;
}

static int s2_count_leaf(void *arg, gfn_t gfn, const struct s2_mapping *m)
{
	(void)gfn;
	(void)m;
	++*(uint64_t *)arg;
	return 0;
}

/*
 * Whether the zap of @s's range (a slot about to leave, move or become
 * read-only) should be the fast zap: when the range holds at least 7/8 of
 * the leaves of a root, and that is at least kvm->fast_zap_min leaves
 * (docs/rules.md, "The fast zap and when each zap is chosen"). The VM's
 * leaves come from the statistics (over its valid roots); the range's are
 * counted in the current root of space 0 under the shared side of
 * mmu_lock, a chunk per hold, and only while 7/8 can still be reached. A
 * guess made before slots_lock: either choice is correct. With no lock
 * held; prepares @fz when it says yes.
 */
static bool s2_zap_choose_fast(struct kvm *kvm, const struct kvm_memory_slot *s,
			       struct s2_fast_zap *fz)
{
	uint64_t total = 0, need, n = 0, chunk = 64ull * (kvm->yield_batch ? kvm->yield_batch : 1);
	gfn_t end = s->base_gfn + s->npages;
	struct kvm_mmu_stats st;
	unsigned roots = s2_roots_valid(kvm);

	if (kvm->gfn_direct_bits || kvm_get_stats(kvm, &st))
		return false;
	for (int l = 1; l <= S2_MAX_LEVELS; l++)
		total += (uint64_t)st.cur_leaves[l];
	total /= roots ? roots : 1;
	need = total - total / 8;
	if (!need || need < kvm->fast_zap_min || s->npages < need)
		return false;
	for (gfn_t g = s->base_gfn; g < end && n < need; g += chunk) {
		if (n + (end - g) < need ||
		    kvm_mmu_for_each_leaf(kvm, g, end - g > chunk ? g + chunk : end, s2_count_leaf,
					  &n))
			return false;
	}
	return n >= need && !s2_fast_zap_prepare(kvm, fz);
}

/* Before an update of slot @id that zaps when @zaps(slot) says so: choose
 * how (s2_zap_choose_fast). */
static void s2_zap_plan_fast(struct kvm *kvm, struct s2_slot_update *u, unsigned id,
			     bool (*zaps)(const struct kvm_memory_slot *s, const void *arg),
			     const void *arg)
{
	struct kvm_memory_slot s;

	if (!kvm_id_to_memslot(kvm, id, &s) && zaps(&s, arg))
		u->fast = s2_zap_choose_fast(kvm, &s, &u->fz);
}

static bool s2_delete_zaps(const struct kvm_memory_slot *s, const void *arg)
{
	(void)s;
	(void)arg;
	return true;
}

/* kvm_delete_memslot's plan: drop slot u->prev.id and zap what it mapped. */
static int s2_plan_delete(struct kvm *kvm, const struct s2_memslots *cur, struct s2_slot_update *u)
{
	const struct kvm_memory_slot *s = s2_find_id(cur, u->prev.id);

	(void)kvm;
	if (!s)
		return -ENOENT;
	u->prev = *s;
	u->drop_id = (int)s->id;
	u->add = false;
	u->gone = s2_dirty_of(cur, s);
	u->zap = true;
	u->nr = cur->nr - 1;
	return 0;
}

static S2_ALWAYS_INLINE int kvm_delete_memslot_untraced(struct kvm *kvm, unsigned id)
{
	struct s2_slot_update u = { .prev.id = id };
	int r;

	if (!kvm)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	s2_zap_plan_fast(kvm, &u, id, s2_delete_zaps, NULL);
	r = s2_memslots_update(kvm, s2_plan_delete, &u);
	if (u.fast)
		s2_fast_zap_finish(kvm, &u.fz);
	return r;
}

int kvm_delete_memslot(struct kvm *kvm, unsigned id)
{
	int r = kvm_delete_memslot_untraced(kvm, id);

	S2_TRACE(kvm, "memslot_delete", r, S2_TA_DEC("id", id));
	return r;
}

/* What kvm_move_memslot / kvm_set_memslot_flags change. */
struct s2_replace {
	struct s2_slot_update u; /* first: the plan gets &u */
	unsigned id;
	gfn_t base;
	bool set_base;
	unsigned flags;
	bool set_flags;
};

/* Their plan: give slot @id a new base and/or flags, zapping what it
 * mapped when it moves or becomes read-only. */
static int s2_plan_replace(struct kvm *kvm, const struct s2_memslots *cur, struct s2_slot_update *u)
{
	const struct s2_replace *rp = (const struct s2_replace *)u;
	const struct kvm_memory_slot *s = s2_find_id(cur, rp->id);
	struct s2_slot_dirty *prev_dirty;
	int r;

	if (!s)
		return -ENOENT;
	u->prev = u->upd = *s;
	if (rp->set_base)
		u->upd.base_gfn = rp->base;
	if (rp->set_flags)
		u->upd.flags = rp->flags;
	r = s2_slot_valid(kvm, &u->upd);
	if (r)
		return r;
	if (s2_overlaps_any(cur, &u->upd, rp->id))
		return -EINVAL;
	/* A slot that keeps logging keeps its bitmap (moves included). */
	prev_dirty = s2_dirty_of(cur, s);
	u->dirty = (u->upd.flags & KVM_MEM_LOG_DIRTY_PAGES) ? prev_dirty : NULL;
	u->new_dirty = (u->upd.flags & KVM_MEM_LOG_DIRTY_PAGES) && !prev_dirty;
	u->gone = u->dirty == prev_dirty ? NULL : prev_dirty;
	u->drop_id = (int)rp->id;
	u->add = true;
	/* Moving unmaps the old range; becoming read-only unmaps writable
	 * leaves (they fault back read-only). */
	u->zap = u->upd.base_gfn != u->prev.base_gfn ||
		 ((u->upd.flags & KVM_MEM_READONLY) && !(u->prev.flags & KVM_MEM_READONLY));
	u->nr = cur->nr;
	return 0;
}

/* Whether the replace @arg (a struct s2_replace) zaps slot @s, as
 * s2_plan_replace decides it. */
static bool s2_replace_zaps(const struct kvm_memory_slot *s, const void *arg)
{
	const struct s2_replace *rp = arg;

	return (rp->set_base && rp->base != s->base_gfn) ||
	       (rp->set_flags && (rp->flags & KVM_MEM_READONLY) && !(s->flags & KVM_MEM_READONLY));
}

static int s2_memslot_replace(struct kvm *kvm, unsigned id, gfn_t base, bool set_base,
			      unsigned flags, bool set_flags)
{
	struct s2_replace rp = {
		.id = id, .base = base, .set_base = set_base, .flags = flags, .set_flags = set_flags
	};

	int r;

	if (!kvm)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	s2_zap_plan_fast(kvm, &rp.u, id, s2_replace_zaps, &rp);
	r = s2_memslots_update(kvm, s2_plan_replace, &rp.u);
	if (rp.u.fast)
		s2_fast_zap_finish(kvm, &rp.u.fz);
	return r;
}

static S2_ALWAYS_INLINE int kvm_move_memslot_untraced(struct kvm *kvm, unsigned id,
						      gfn_t new_base_gfn)
{
	return s2_memslot_replace(kvm, id, new_base_gfn, true, 0, false);
}

int kvm_move_memslot(struct kvm *kvm, unsigned id, gfn_t new_base_gfn)
{
	int r = kvm_move_memslot_untraced(kvm, id, new_base_gfn);

	S2_TRACE(kvm, "memslot_move", r, S2_TA_DEC("id", id), S2_TA_HEX("gfn", new_base_gfn));
	return r;
}

static S2_ALWAYS_INLINE int kvm_set_memslot_flags_untraced(struct kvm *kvm, unsigned id,
							   unsigned flags)
{
	return s2_memslot_replace(kvm, id, 0, false, flags, true);
}

int kvm_set_memslot_flags(struct kvm *kvm, unsigned id, unsigned flags)
{
	int r = kvm_set_memslot_flags_untraced(kvm, id, flags);

	S2_TRACE(kvm, "memslot_flags", r, S2_TA_DEC("id", id), S2_TA_SLOTF("flags", flags));
	return r;
}

static void s2_slots_read_lock(const struct kvm *kvm)
{
	if (kvm->env->ops->rcu_read_lock)
		kvm->env->ops->rcu_read_lock(kvm->env->ctx);
}

static void s2_slots_read_unlock(const struct kvm *kvm)
{
	if (kvm->env->ops->rcu_read_unlock)
		kvm->env->ops->rcu_read_unlock(kvm->env->ctx);
}

/* Copy the slot of @gfn and the generation it belongs to. */
int s2_memslot_snapshot(const struct kvm *kvm, gfn_t gfn, struct kvm_memory_slot *out,
			uint64_t *gen)
{
	const struct kvm_memory_slot *s;
	int r = -ENOENT;

	*gen = __atomic_load_n(&kvm->memslots_gen, __ATOMIC_ACQUIRE);
	s2_slots_read_lock(kvm);
	s = s2_memslots_find(__atomic_load_n(&kvm->memslots, __ATOMIC_ACQUIRE), gfn);
	if (s) {
		*out = *s;
		r = 0;
	}
	s2_slots_read_unlock(kvm);
	return r;
}

int kvm_gfn_to_memslot(struct kvm *kvm, gfn_t gfn, struct kvm_memory_slot *out)
{
	uint64_t gen;

	if (!kvm || !out)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	return s2_memslot_snapshot(kvm, gfn, out, &gen);
}

int kvm_id_to_memslot(struct kvm *kvm, unsigned id, struct kvm_memory_slot *out)
{
	const struct kvm_memory_slot *s;
	int r = -ENOENT;

	if (!kvm || !out)
		return -EINVAL;
	if (s2_kvm_dead(kvm))
		return -EIO;
	s2_spin_lock(&kvm->slots_lock, kvm->env);
	s = s2_find_id(kvm->memslots, id);
	if (s) {
		*out = *s;
		r = 0;
	}
	s2_spin_unlock(&kvm->slots_lock);
	return r;
}

unsigned kvm_nr_memslots(const struct kvm *kvm)
{
	unsigned n;

	if (!kvm)
		return 0;
	s2_slots_read_lock(kvm);
	n = __atomic_load_n(&kvm->memslots, __ATOMIC_ACQUIRE)->nr;
	s2_slots_read_unlock(kvm);
	return n;
}
