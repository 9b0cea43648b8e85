/* SPDX-License-Identifier: MIT */
/*
 * struct kvm and struct kvm_vcpu, shared by core/, flush/ and notifier/ and
 * by white-box tests. Not installed.
 */
#ifndef S2MMU_CORE_KVM_INTERNAL_H
#define S2MMU_CORE_KVM_INTERNAL_H

#include "core/fmt_api.h"
#include "core/lock.h"
#include "core/trace.h"
#include "s2mmu/config.h"
#include "s2mmu/errno.h"
#include "s2mmu/flush.h"
#include "s2mmu/kvm.h"
#include "s2mmu/memslot.h"
#include "s2mmu/mmu.h"
#include "s2mmu/vcpu.h"

#ifndef CONFIG_S2_MAX_LEAF_LEVEL
#define CONFIG_S2_MAX_LEAF_LEVEL 3
#endif
#ifndef CONFIG_S2_MAX_MEMSLOTS
#define CONFIG_S2_MAX_MEMSLOTS 512
#endif

#ifndef CONFIG_S2_YIELD_BATCH
#define CONFIG_S2_YIELD_BATCH 4096
#endif

#define S2_ALWAYS_INLINE inline __attribute__((always_inline))
#define s2_likely(x) __builtin_expect(!!(x), 1)
#define s2_unlikely(x) __builtin_expect(!!(x), 0)

/*
 * A memslot set. Readers (RCU) see only a published set, which nobody
 * edits; an update edits the other, unpublished one in place and publishes
 * it (core/memslot.c: two sets used in turn, as KVM does), so an update costs
 * O(log n), not a copy of the set.
 *
 * slots[0, nr) holds the slots in no particular order (an index stays put
 * while its slot is in the set, but for the last one, which fills the hole a
 * deleted slot leaves), dirty[i] the bitmap of slot i when it logs (NULL
 * otherwise). Three indexes over them, each updated in O(log n) or O(1):
 *  - gfn_root/gfn[]: a treap ordered by base_gfn (the slots are disjoint);
 *  - hva_root/hva[]: a treap ordered by (userspace_addr, id), with max the
 *    largest hva end in the node's subtree, so a search for the slots an
 *    hva range overlaps skips whole subtrees (aliases included);
 *  - id_hash: open addressing (linear probing, id_mask + 1 entries, at
 *    least twice cap) of index + 1, 0 for empty.
 * hva_overlaps counts the pairs of slots next to each other in hva order
 * whose ranges overlap: 0 means no two slots share an hva (no aliases), so
 * the slot that holds an hva is the first in hva order to end after it.
 * Node references are index + 1, 0 for none. A treap node's priority,
 * prio[i], is a hash of its slot's id (ties broken by id), so both trees
 * are random binary search trees, O(log n) deep expected. Node i of each
 * tree carries its slot's keys and its children, so a search loads one node
 * per level. The zeroed set of a new VM is empty.
 */
struct s2_gfn_node {
	gfn_t base, end; /* slot i's gfns */
	uint16_t kid[2]; /* left, right */
	uint16_t next;	 /* the next node in order (0: none) */
};
struct s2_hva_node {
	hva_t addr, end;  /* slot i's hvas */
	hva_t max;	  /* the largest end in this subtree */
	hva_t kid_max[2]; /* the children's max (0: none) */
	unsigned id;	  /* slot i's id: the order of equal addrs */
	uint16_t kid[2];
	uint16_t next; /* the next node in order (0: none) */
};

struct s2_memslots {
	unsigned nr;
	unsigned cap; /* room for cap slots */
	unsigned id_mask;
	uint16_t gfn_root, hva_root;
	unsigned hva_overlaps; /* adjacent pairs in hva order that overlap */
	struct s2_slot_dirty **dirty;
	struct s2_gfn_node *gfn;
	struct s2_hva_node *hva;
	uint32_t *prio; /* treap priority of slot i (updates only) */
	uint16_t *id_hash;
	/* The index + 1 of the slot s2_memslots_find() found last, and of
	 * the slot the last hva search that descended started from (0: none;
	 * may be stale, checked before use): readers store them (relaxed),
	 * as KVM's last_used_slot, on a miss only, 64 bytes away from what
	 * they only read (no alignment attribute: the env's zalloc need not
	 * align to 64). */
	char hint_pad0[64];
	uint16_t gfn_hint, hva_hint;
	char hint_pad1[60];
	struct kvm_memory_slot slots[];
};

/* The id table's hash: Fibonacci hashing, the top bits of id * 2^32/phi. */
static inline unsigned s2_memslots_id_hash(unsigned id, unsigned mask)
{
	return (unsigned)(((uint64_t)id * 0x9e3779b97f4a7c15ull) >> 40) & mask;
}

/* Index in ms->slots of the slot with @id, or -1. O(1). */
static inline int s2_memslots_id_index(const struct s2_memslots *ms, unsigned id)
{
	if (!ms->nr)
		return -1;
	for (unsigned h = s2_memslots_id_hash(id, ms->id_mask);; h = (h + 1) & ms->id_mask) {
		unsigned v = ms->id_hash[h];

		if (!v)
			return -1;
		if (ms->slots[v - 1].id == id)
			return (int)(v - 1);
	}
}

/*
 * The slots whose hva range overlaps [start, end), in hva order, each once:
 * s2_memslots_hva_first() sets @it up and returns the first index in
 * ms->slots (-1: none), s2_memslots_hva_next() the next. O(log n) per
 * result.
 */
struct s2_memslots_hva_iter {
	const struct s2_memslots *ms;
	hva_t start, end;
	bool started;	 /* last_* hold the last result */
	hva_t last_addr; /* its (userspace_addr, id): the next comes after */
	unsigned last_id;
	unsigned last_node; /* its index + 1 (0: none, or after the end) */
};
int s2_memslots_hva_first(struct s2_memslots_hva_iter *it, const struct s2_memslots *ms,
			  hva_t start, hva_t end);
int s2_memslots_hva_next(struct s2_memslots_hva_iter *it);

/* Index of the first slot (by gfn) that ends after @gfn, or -1. O(log n). */
static inline int s2_memslots_gfn_lower(const struct s2_memslots *ms, gfn_t gfn)
{
	int best = -1;

	for (unsigned t = ms->gfn_root; t;) {
		const struct s2_gfn_node *n = &ms->gfn[t - 1];

		if (n->end > gfn)
			best = (int)(t - 1);
		t = n->kid[n->end <= gfn];
	}
	return best;
}

/* Index of the slot after slot @i in gfn order, or -1. O(1). */
static inline int s2_memslots_gfn_next(const struct s2_memslots *ms, unsigned i)
{
	return (int)ms->gfn[i].next - 1;
}

/* Table pages a fault may need, allocated before mmu_lock is taken. */
#define S2_CACHE_CAP 8
struct s2_page {
	void *va;
	hpa_t pa;
};
struct s2_mmu_cache {
	unsigned nr;
	struct s2_page pages[S2_CACHE_CAP];
};

/* Per-vcpu counters: written only by their vcpu's thread (relaxed atomics so
 * kvm_get_stats may read them concurrently). */
struct s2_vcpu_stats {
	uint64_t faults, fixed, spurious, retry, mmio, ro_write;
	/* MMIO exits answered from an MMIO entry, entries installed */
	uint64_t mmio_cached, mmio_installed;
	/* fast-path faults by the level of their leaf: each also a fault,
	 * fixed, and a leaf (kvm_get_stats adds them in) */
	uint64_t fast[S2_MAX_LEVELS + 1];
	int64_t leaves[S2_MAX_LEVELS + 1]; /* leaves this vcpu installed, net */
};

/* Dirty logging and write tracking (core/dirty.c). */
#include "core/dirty_internal.h"

/*
 * The fault fast path (core/fault.c, S2_FN(fault_fast) in core/mmu_tmpl.h):
 * what the vcpu's last full fault learnt, kept so that the next fault in the
 * same host block and the same leaf table takes one lock, one load and one
 * compare-and-exchange. Each part carries the generation that invalidates it:
 * the host answer mmu_invalidate_seq (it holds until an invalidation of its
 * block begins or ends), the memslot memslots_gen, the table pointer
 * zap_gen (bumped by every zap and every unlink of a table, so a zap also
 * makes the next fault ask the host again, as KVM's zap-to-recompute
 * memtype and permissions expects). For leaves of the level the full fault
 * installed (4 KiB, 2 MiB or 1 GiB: the table cached is the one that holds
 * them), only in slots without dirty logging; lo == hi when empty, [lo, hi)
 * is made of whole leaves and never leaves the span of the cached table.
 */
struct s2_fault_cache {
	gfn_t lo, hi;	  /* gfns the host answer covers, inside the slot */
	hpa_t hpa_lo;	  /* backing of gfn lo */
	unsigned access;  /* the S2_ACC_* the answer was taken for */
	s2_pte_t leaf_lo; /* the leaf for gfn lo, */
	s2_pte_t step;	  /* and what one leaf more adds to it */
	unsigned shift;	  /* log2 of the gfns one leaf maps (0: 4 KiB) */
	int level;	  /* the leaves' level */
	uint64_t seq;	  /* mmu_invalidate_seq before the host was asked */
	uint64_t slot_gen;
	s2_pte_t *tbl; /* the table of the leaves that maps tbl_gfn, or NULL */
	gfn_t tbl_gfn; /* first gfn that table maps */
	uint64_t tbl_gen;
};

/*
 * A root (core/roots.c, docs/rules.md "Roots"). The slot's state moves
 * FREE -> CLAIMED -> VALID when a root is made (under the shared side of
 * mmu_lock: readers see it once VALID), VALID -> INVALID only under the write
 * side, and INVALID -> FREE when the last reference goes (its pages are then
 * freed after a grace period). Walkers under either side of mmu_lock only
 * touch VALID roots, which cannot become invalid while they hold it.
 */
enum { S2_ROOT_FREE = 0, S2_ROOT_CLAIMED, S2_ROOT_VALID, S2_ROOT_INVALID };
#define S2_ROOT_KINDS 2 /* direct, mirror (TDX, issue 12) */
#define S2_ROLES (S2_ROOT_KINDS * KVM_ROOT_SPACES)

struct s2_root {
	s2_pte_t *pt;
	hpa_t pa;
	uint32_t state; /* S2_ROOT_* */
	uint32_t refs;	/* vcpus on it or keeping it, the VM while it is current
			   (handed to the teardown when it is invalidated) */
	uint8_t role;	/* s2_role_idx(): kind and space */
	uint8_t levels;
	uint32_t teardown; /* the token of the fast zap that invalidated it
			      and owns its teardown (0: none), with
			      S2_TD_EMPTIED once emptied (core/roots.c) */
};

static inline unsigned s2_role_idx(struct kvm_root_role r)
{
	return (unsigned)r.kind * KVM_ROOT_SPACES + r.space;
}

struct kvm_vcpu {
	struct kvm *kvm;
	/* The root this vcpu runs on (a reference; never NULL after create),
	 * and the one it ran on before, kept to switch back (a reference, or
	 * NULL). Written only by the vcpu's thread. */
	struct s2_root *root;
	struct s2_root *prev_root;
	bool loads_root; /* uses kvm_mmu_load / kvm_vcpu_entry_actions */
	unsigned id;
	/* enum kvm_vcpu_mode in bits 0-1, the number of guest exits above
	 * (flush/request.c): one word, so a flusher reads both at once. */
	uint64_t guest_state;
	uint64_t requests; /* bit per KVM_REQ_* */
	void *priv;
	uint32_t mmu_reading; /* this vcpu holds the read side of mmu_lock */
	/* Its read side may be fence-free (the VM's light_read, once the vcpu
	 * published itself in kvm->light_readers; s2_mmu_read_lock_vcpu). */
	bool light_ok;
	struct s2_mmu_cache cache;
	struct s2_vcpu_stats stat;
	/* The memslot of the last fault, by value, with the generation it was
	 * read in (KVM's last_used_slot): sequential faults skip the lookup. */
	uint64_t slot_cache_gen;
	struct kvm_memory_slot slot_cache;
	struct s2_dirty_ring *dirty_ring; /* NULL without dirty rings */
	struct s2_fault_cache fc;
	void *alloc_base; /* what zalloc returned (the vcpu is aligned in it) */
} __attribute__((aligned(64)));

struct kvm {
	const struct s2_fmt_ops *ops;
	struct s2_fmt_cfg cfg;
	const struct s2_env *env;
	struct s2_vmid *vmid_alloc; /* kvm_vm_params.vmid_alloc, or NULL */
	/* Roots: a slot array (capacity nr_roots, sized so every vcpu can
	 * keep two and every role have a current and a dying one), the
	 * slots ever used (roots_hi, so walks look at few), and the current
	 * valid root of each role (NULL until a vcpu loads that role; direct
	 * space 0 always has one). */
	struct s2_root *roots;
	unsigned nr_roots;
	unsigned roots_hi;
	struct s2_root *cur[S2_ROLES];
	struct s2_spinlock roots_lock; /* two makers of one role's root */
	unsigned yield_batch;	       /* CONFIG_S2_YIELD_BATCH; tests lower it */
	uint64_t fast_zap_min;	       /* S2_FAST_ZAP_MIN_LEAVES; tests lower it */
	uint32_t fast_zap_token;       /* last fast zap's token (write side) */
	uint8_t max_leaf_level;	       /* cfg clamped by Kconfig and params */
	bool tlb_complete;	       /* a hardware flush reaches every CPU: ranged
				   flushes raise no requests (flush/flush.c) */
	bool p2v_linear;	       /* env has no phys_to_virt: va = pa + p2v_offset */
	bool light_read;	       /* env has membarrier: vcpus' read side is fence-free */
	uint32_t light_readers;	       /* set once a vcpu may read fence-free: from
				  then on writers call env->membarrier */
	uint32_t lockless_walkers;     /* walks of the tables in flight without
				  mmu_lock (test_young): while none is, a
				  write side's unlinked tables are freed at
				  once (s2_lockless_begin()) */
	uint64_t stat_freed_now;       /* tables a write side freed at once, and */
	uint64_t stat_freed_later;     /* after a grace period (a walk in flight) */
	uint64_t p2v_offset;

	struct s2_rwlock mmu_lock;
	struct s2_spinlock slots_lock;	    /* serialises memslot updates */
	struct s2_memslots *memslots;	    /* RCU-published */
	struct s2_memslots *memslots_spare; /* the other set: unpublished, past
					       its grace period, equal to
					       memslots (slots_lock), or NULL */
	uint64_t memslots_gen;		    /* bumped before a slot update zaps */
	bool mmio_cache;		    /* faults install MMIO entries (docs/mmio.md) */
	uint64_t mmio_gen_mask;		    /* generation bits an MMIO entry keeps */
	uint64_t mmio_wraps;		    /* wraps of memslots_gen & mmio_gen_mask */
	uint64_t zap_gen;		    /* bumped by zaps and table unlinks */
	gfn_t slot_zap_start;		    /* the range a memslot update zaps while */
	gfn_t slot_zap_end;		    /* it may yield (write side; empty: none) */

	/* Invalidation protocol (notifier/): faults retry against these. */
	uint64_t mmu_invalidate_seq;
	uint64_t mmu_invalidate_in_progress;
	gfn_t mmu_invalidate_range_start;
	gfn_t mmu_invalidate_range_end;
	bool mmu_aged;		  /* aging cleared Accessed or tracked a leaf: faults
				 first try S2_RANGE_MKYOUNG */
	void *mem_attrs;	  /* notifier/: memory attributes, RCU-published */
	struct s2_tdx *tdx;	  /* core/tdx.c: a TD's mirror root and hooks, or NULL */
	gfn_t gfn_direct_bits;	  /* a TD's shared bit as a gfn: where the direct
				     roots map memslot gfns (0 for other VMs) */
	s2_pte_t nonpresent;	  /* what empty entries of the direct roots hold:
				     fmt_nonpresent(&cfg), for the code outside
				     the format templates (0 but for a TD) */
	uint32_t notifier_warned; /* notifier/: misuse already reported */

	unsigned max_vcpus;
	/* One more than the highest vcpu id created (vcpus_lock; read by the
	 * scans over vcpus[], which need not look further). */
	unsigned vcpus_hi;
	unsigned nr_vcpus;
	struct kvm_vcpu **vcpus;
	struct s2_spinlock vcpus_lock;

	uint32_t bugged; /* 32 bits: bare-metal targets lack 1-byte atomics */
	bool destroying;

	struct s2_dirty_vm dirty; /* dirty logging, write tracking */

	/* Counters not owned by a vcpu (atomics). */
	uint64_t stat_flushes, stat_flushes_range, stat_zapped, stat_refused;
	int64_t stat_leaves_removed[S2_MAX_LEVELS + 1]; /* subtracted from installs */
	int64_t stat_table_pages;
	uint64_t stat_faults_nonvcpu;
	uint64_t stat_roots_freed, stat_fast_zaps, stat_yields, stat_max_hold;
	struct s2_reserve *reserve; /* kvm_mmu_prepare() (core/map.c) */
	uint64_t rcu_table_pages;   /* tables on their way back to it */
};

/* ---- environment helpers ---- */
static inline void *s2_phys_to_virt(const struct kvm *kvm, hpa_t pa)
{
	const struct s2_env *env = kvm->env;

	if (s2_likely(kvm->p2v_linear))
		return (void *)(uintptr_t)(pa + kvm->p2v_offset);
	return env->ops->phys_to_virt(env->ctx, pa);
}

void s2_log(const struct kvm *kvm, enum s2_log_level lvl, const char *msg, uint64_t val);

/*
 * Mark @kvm bugged: log @msg (with @val) once and make every later call
 * return -EIO. For invariants that failed, never for bad input.
 */
void kvm_bug(struct kvm *kvm, const char *msg, uint64_t val);

static inline bool s2_kvm_dead(const struct kvm *kvm)
{
	return __atomic_load_n(&kvm->bugged, __ATOMIC_RELAXED);
}

static inline void s2_stat_inc(uint64_t *p)
{
	__atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

static inline void s2_stat_add_shared(uint64_t *p, uint64_t v)
{
	__atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

/* ---- changes of entries: see core/change.h for the rules ---- */

/*
 * What one operation owes before it drops mmu_lock: a flush (and its gfn
 * range), statistics, and unlinked tables to free after a grace period.
 */
struct s2_change_acc {
	bool flush;
	gfn_t flush_start, flush_end;
	uint64_t zapped;
	int64_t leaves[S2_MAX_LEVELS + 1];
	int64_t table_pages;
	hpa_t free_head; /* unlinked tables, linked through their entry 0 */
	uint64_t free_nr;
	/* The hardware dirty state this operation clears was collected by
	 * it (a dirty-log harvest) or does not count (logging starts): the
	 * change handler does not record it (s2_dirty_record_removed). */
	bool reaped;
};

static inline void s2_acc_init(struct s2_change_acc *acc)
{
	/* Field by field: a compound literal of this size becomes rep stos,
	 * whose start-up cost showed as the largest item of a fault. */
	acc->flush = false;
	acc->flush_start = ~0ull;
	acc->flush_end = 0;
	acc->zapped = 0;
	for (int l = 0; l <= S2_MAX_LEVELS; l++)
		acc->leaves[l] = 0;
	acc->table_pages = 0;
	acc->free_head = 0;
	acc->free_nr = 0;
	acc->reaped = false;
}

static inline void s2_acc_need_flush(struct s2_change_acc *acc, gfn_t start, gfn_t end)
{
	acc->flush = true;
	if (start < acc->flush_start)
		acc->flush_start = start;
	if (end > acc->flush_end)
		acc->flush_end = end;
}

/* Issue the owed flush and fold statistics in. Called with mmu_lock held,
 * right before it is dropped; this is the only place an operation flushes. */
void s2_acc_settle_slow(struct kvm *kvm, struct s2_change_acc *acc);
static inline void s2_acc_settle(struct kvm *kvm, struct s2_change_acc *acc)
{
	int64_t any = acc->flush | (int64_t)acc->zapped | acc->table_pages;

	for (int l = 1; l <= S2_MAX_LEVELS; l++)
		any |= acc->leaves[l];
	if (any)
		s2_acc_settle_slow(kvm, acc);
}
/* After mmu_lock is dropped: free the tables @acc unlinked, after RCU. */
void s2_acc_free_tables(struct kvm *kvm, struct s2_change_acc *acc);
/*
 * The same after a write-side hold, whose flush (settled before the unlock)
 * reached every CPU: no fault, lookup or walk under either side of mmu_lock
 * can still hold the unlinked tables (the write side excluded them all
 * while they were unlinked), so only a walk without mmu_lock can. While
 * none is in flight the tables are freed at once, hot, instead of a grace
 * period later (docs/rules.md, "Unlinked tables").
 */
void s2_acc_free_tables_write(struct kvm *kvm, struct s2_change_acc *acc);
/*
 * Around a walk of the tables without mmu_lock (inside an RCU read
 * section): counted, so a writer that unlinked tables knows whether one
 * may still hold them. Both sides read the count with a read-modify-write
 * (acquire and release): the walker's increment before its first load,
 * the writer's (adding 0) after its unlinks. The two are ordered in the
 * count's modification order: if the walker's comes second it reads the
 * writer's and synchronizes with it, so its walk sees the unlinks and
 * cannot reach the tables; if it comes first the writer reads it (or the
 * walker's decrement, after which its walk is over) and waits for a grace
 * period.
 */
static inline void s2_lockless_begin(struct kvm *kvm)
{
	__atomic_fetch_add(&kvm->lockless_walkers, 1, __ATOMIC_ACQ_REL);
}
static inline void s2_lockless_end(struct kvm *kvm)
{
	__atomic_fetch_sub(&kvm->lockless_walkers, 1, __ATOMIC_RELEASE);
}

/*
 * mmu_lock with its settle step, so no path can drop the lock owing a flush.
 * A vcpu's faults take the read side through their own flag (lock.h); a
 * writer waits for those flags after it holds the shared word.
 */
/* The vcpus[] scans' bound: every vcpu created before a sequentially
 * consistent point of the caller is below it (vcpu.c stores it so). */
static inline unsigned s2_vcpus_hi(const struct kvm *kvm)
{
	return __atomic_load_n(&kvm->vcpus_hi, __ATOMIC_SEQ_CST);
}

static inline void s2_mmu_write_lock(struct kvm *kvm)
{
	s2_write_lock(&kvm->mmu_lock, kvm->env);
	/* A vcpu that read the lock free set its flag before the barrier
	 * (we see it below) or reads the lock after it (and sees us). Until
	 * a vcpu has published that it reads fence-free, every read side is
	 * fenced and no barrier is owed: a vcpu publishes before its first,
	 * fenced, acquisition, so either we see light_readers set, or its
	 * acquisition comes after our exchange in the total order of
	 * sequentially consistent operations and sees us (docs/rules.md). */
	if (kvm->light_read && __atomic_load_n(&kvm->light_readers, __ATOMIC_SEQ_CST))
		kvm->env->ops->membarrier(kvm->env->ctx);
	for (unsigned i = 0, n = s2_vcpus_hi(kvm); i < n; i++) {
		const struct kvm_vcpu *v = __atomic_load_n(&kvm->vcpus[i], __ATOMIC_ACQUIRE);

		if (v)
			s2_rwlock_wait_local(&v->mmu_reading, kvm->env);
	}
}
/* A vcpu's first read side: publish, then acquire fenced (core/kvm.c). */
void s2_mmu_read_lock_vcpu_first(struct kvm_vcpu *vcpu);
static inline void s2_mmu_read_lock_vcpu(struct kvm_vcpu *vcpu)
{
	if (s2_unlikely(!vcpu->light_ok)) {
		s2_mmu_read_lock_vcpu_first(vcpu);
		return;
	}
	s2_read_lock_local(&vcpu->kvm->mmu_lock, &vcpu->mmu_reading, vcpu->kvm->env, true);
}
/* The read side of a vcpu's call other than a fault (kvm_mmu_map_range()):
 * fence-free once the vcpu has published that it reads so, fenced and
 * unpublished before. It never publishes: a partitioning hypervisor maps
 * before its vcpus run, and its writers owe no barrier until they do. */
static inline void s2_mmu_read_lock_vcpu_call(struct kvm_vcpu *vcpu)
{
	s2_read_lock_local(&vcpu->kvm->mmu_lock, &vcpu->mmu_reading, vcpu->kvm->env,
			   vcpu->light_ok);
}
static inline void s2_mmu_read_unlock_vcpu(struct kvm_vcpu *vcpu)
{
	s2_read_unlock_local(&vcpu->mmu_reading);
}
/* Debug checks: is mmu_lock held in any mode by anyone? */
static inline bool s2_mmu_lock_held(const struct kvm *kvm)
{
	if (__atomic_load_n(&kvm->mmu_lock.v, __ATOMIC_RELAXED))
		return true;
	for (unsigned i = 0, n = s2_vcpus_hi(kvm); i < n; i++) {
		const struct kvm_vcpu *v = __atomic_load_n(&kvm->vcpus[i], __ATOMIC_ACQUIRE);

		if (v && __atomic_load_n(&v->mmu_reading, __ATOMIC_RELAXED))
			return true;
	}
	return false;
}
/*
 * Drop mmu_lock held for write, settling what @acc owes (the flush) first,
 * but keep the tables @acc unlinked: freeing them waits for a grace period
 * (or allocates for call_rcu), which must not happen under a spinlock such
 * as slots_lock. s2_acc_free_tables() frees them once that is dropped.
 */
static inline void s2_mmu_write_unlock_keep_tables(struct kvm *kvm, struct s2_change_acc *acc)
{
	s2_acc_settle(kvm, acc);
	s2_write_unlock(&kvm->mmu_lock);
}
static inline void s2_mmu_write_unlock(struct kvm *kvm, struct s2_change_acc *acc)
{
	s2_mmu_write_unlock_keep_tables(kvm, acc);
	s2_acc_free_tables_write(kvm, acc);
}
static inline void s2_mmu_read_lock(struct kvm *kvm)
{
	s2_read_lock(&kvm->mmu_lock, kvm->env);
}
static inline void s2_mmu_read_unlock_plain(struct kvm *kvm)
{
	s2_read_unlock(&kvm->mmu_lock);
}
static inline void s2_mmu_read_unlock(struct kvm *kvm, struct s2_change_acc *acc)
{
	s2_acc_settle(kvm, acc);
	s2_read_unlock(&kvm->mmu_lock);
	s2_acc_free_tables(kvm, acc);
}

/* ---- range operations (one walker, many visitors) ---- */
enum s2_range_kind {
	S2_RANGE_ZAP = 1,	/* make every leaf non-present, free empty tables */
	S2_RANGE_WRPROTECT_MMU, /* clear MMU-writable and W (write tracking) */
	S2_RANGE_WRPROTECT,	/* clear W only (dirty logging) */
	S2_RANGE_PROTECT,	/* set W / X / XU as a struct s2_protect_arg says */
	S2_RANGE_AGE,		/* clear Accessed, report young */
	S2_RANGE_TEST_AGE,	/* report young, stop at the first */
	S2_RANGE_MKYOUNG,	/* a fault's fast path: restore an access-tracked
				   leaf or set Accessed (arg: unsigned *access) */
	/* Dirty logging (core/dirty_tmpl.h; args in core/dirty_internal.h). */
	S2_RANGE_DIRTY_ENABLE, /* a slot starts logging: split, protect */
	S2_RANGE_DIRTY_MASK,   /* re-protect the pages of a 64-bit mask */
	S2_RANGE_DIRTY_SCAN,   /* collect hardware dirty bits into a bitmap */
	S2_RANGE_FAST_WRITE,   /* a write fault's fast path: restore W */
	S2_RANGE_SPLIT,	       /* huge leaves -> tables of 4 KiB leaves */
	S2_RANGE_COLLAPSE,     /* tables of uniform leaves -> huge leaves */
	S2_RANGE_TEARDOWN,     /* empty op->root, an invalid root nobody walks
				  or runs on, under the read side; no flush */
	S2_RANGE_NR
};

/* S2_RANGE_PROTECT's argument (kvm_mmu_protect_range(), core/map.c). */
struct s2_protect_arg {
	unsigned prot; /* S2_PROT_R, and of W, X, XU those the leaves keep */
	bool w_direct; /* W may be set at once (no slot of the range logs,
			   nothing is write-tracked); else MMU-writable only */
};

/* How an operation holds mmu_lock, so a long walk can yield it. */
enum s2_hold {
	S2_HOLD_NONE = 0, /* never yields (the caller holds a spinlock, or
			     the walk is short) */
	S2_HOLD_WRITE,	  /* s2_mmu_write_lock() */
	S2_HOLD_READ,	  /* s2_mmu_read_lock() (the shared word) */
};

struct s2_range_op {
	enum s2_range_kind kind;
	gfn_t start, end; /* half-open, in 4 KiB gfns */
	struct s2_change_acc *acc;
	long result; /* leaves changed / young found */
	void *arg;   /* the kind's own argument */
	/* Lock breaking (docs/rules.md "Yielding"): with hold set, the walk
	 * stops after yield_batch leaves when may_block or another side of
	 * mmu_lock waits, settles what it owes, drops and retakes the lock
	 * and resumes at the gfn it stopped at. */
	enum s2_hold hold;
	bool may_block;
	/* After a yield, before the walk resumes: whether what the caller
	 * checked when it took the lock still holds (NULL: nothing to
	 * check). When it says no, the walk stops and sets stale. */
	bool (*recheck)(struct kvm *kvm, struct s2_range_op *op);
	bool stale;
	/* Set by the range driver: the root walked now (a caller may preset
	 * it to walk that root only, as the teardown does), leaves visited
	 * in this hold, the budget, and where to resume after a yield. */
	struct s2_root *root;
	uint64_t visited;
	uint64_t budget;
	gpa_t resume;
};

/* A walk that stopped to yield mmu_lock (op->resume says where). */
#define S2_WALK_YIELD 0x7ffffff0L

/*
 * Run @op's kind over its range. Caller holds mmu_lock as the kind needs.
 * A TD's direct roots map memslot gfns with the shared bit set, where the
 * hardware walks them; a range given in memslot gfns is walked there, also
 * when the caller names one root (a fault's aging or dirty-logging walk of
 * its vcpu's root). Only a teardown walks its root's own gfns: it empties
 * the whole root.
 */
static inline long s2_range(struct kvm *kvm, struct s2_range_op *op)
{
	gfn_t bits = kvm->gfn_direct_bits;
	long r;

	if (s2_likely(!bits) || op->kind == S2_RANGE_TEARDOWN)
		return kvm->ops->range(kvm, op);
	op->start |= bits;
	op->end |= bits;
	r = kvm->ops->range(kvm, op);
	op->start &= ~bits;
	op->end &= ~bits;
	return r;
}

/* The memslot gfn of @gfn as a walk of a direct root meets it (a TD's
 * shared half is walked at the shared-bit offset: s2_range()). Dirty
 * logging's bitmaps, write tracking and collapse hints are in memslot gfns. */
static inline gfn_t s2_slot_gfn(const struct kvm *kvm, gfn_t walked)
{
	return walked & ~kvm->gfn_direct_bits;
}

/* ---- TDX (core/tdx.c, docs/tdx.md) ---- */
#if S2_ENABLED(CONFIG_S2_TDX)
/* A TD's fault: private ones go to the mirror root (returns the result);
 * shared ones return -EAGAIN with *@gfn the memslot gfn for the full path,
 * or RET_PF_MEMORY_FAULT when the attribute disagrees. */
int s2_tdx_fault(struct kvm_vcpu *vcpu, gpa_t gpa, unsigned access, gfn_t *gfn);
/* Remove the private mappings of [start, end) (write side of mmu_lock):
 * memslot removal and conversions. Returns leaves removed or -errno. */
long s2_tdx_zap_private(struct kvm *kvm, gfn_t start, gfn_t end);
/* Spare S-EPT pages for demotions, allocated before mmu_lock is taken. */
void s2_tdx_topup(struct kvm *kvm);
/* kvm_destroy_vm: remove everything, release the key, reclaim S-EPT pages. */
void s2_tdx_destroy(struct kvm *kvm);
#else
static inline long s2_tdx_zap_private(struct kvm *kvm, gfn_t start, gfn_t end)
{
	(void)kvm;
	(void)start;
	(void)end;
	return 0;
}
static inline void s2_tdx_destroy(struct kvm *kvm)
{
	(void)kvm;
}
static inline void s2_tdx_topup(struct kvm *kvm)
{
	(void)kvm;
}
#endif

/* The fault, after the format-neutral part has resolved everything. */
struct s2_fault {
	gfn_t gfn;
	unsigned access; /* S2_ACC_* */
	int level;	 /* leaf level to install (may shrink) */
	hpa_t hpa;	 /* aligned to the level */
	unsigned prot;	 /* S2_PROT_* */
	unsigned memtype;
	int installed_level; /* out: level of the leaf installed/found */
	bool made_writable;  /* out: a leaf became writable (dirty logging
				records the page) */
	s2_pte_t *ptep;	     /* out: where a fresh leaf was installed */
	s2_pte_t mmio;	     /* nonzero: install this MMIO value at level 1
				instead of a leaf (docs/mmio.md) */
	bool only_empty;     /* install only over an empty entry: a leaf, or a
				table where the leaf goes, stops the install
				(RET_PF_RETRY) instead of being taken */
};

/* Cached MMIO entries (core/mmio.c). */
void s2_mmio_install(struct kvm_vcpu *vcpu, struct s2_fault *f, uint64_t gen);
void s2_mmio_gen_bump_locked(struct kvm *kvm, uint64_t next);
bool s2_mmio_gen_wraps(const struct kvm *kvm);

/* A zap or a collapse (mmu_lock held for write; S2_FN(range) calls it once
 * per such call): what vcpus cached for the fault fast path (struct
 * s2_fault_cache) stops being used, the table pointers and the host's
 * answers alike. */
static inline void s2_zap_gen_bump(struct kvm *kvm)
{
	__atomic_store_n(&kvm->zap_gen, __atomic_load_n(&kvm->zap_gen, __ATOMIC_RELAXED) + 1,
			 __ATOMIC_RELAXED);
}

/* Fill a fresh table of @n entries with the non-present value @np, before
 * it is linked (environments hand out zeroed pages: only a TD's direct root
 * needs this, docs/tdx.md). */
static inline void s2_table_fill(s2_pte_t *t, uint64_t n, s2_pte_t np)
{
	for (uint64_t i = 0; i < n; i++)
		__atomic_store_n(&t[i], np, __ATOMIC_RELAXED);
}

/* Fetch a zeroed table page from @vcpu's cache (NULL when empty). */
static inline bool s2_cache_pop(struct kvm_vcpu *vcpu, struct s2_page *pg)
{
	if (!vcpu->cache.nr)
		return false;
	*pg = vcpu->cache.pages[--vcpu->cache.nr];
	return true;
}
static inline void s2_cache_push(struct kvm_vcpu *vcpu, const struct s2_page *pg)
{
	vcpu->cache.pages[vcpu->cache.nr++] = *pg;
}

/* ---- roots (core/roots.c) ---- */

/* The current direct root of space 0: the one a legacy vcpu runs on and
 * lookups and dumps read. Never NULL while the VM lives. */
static inline struct s2_root *s2_root0(const struct kvm *kvm)
{
	return __atomic_load_n(&kvm->cur[0], __ATOMIC_ACQUIRE);
}
static inline bool s2_root_valid(const struct s2_root *r)
{
	return __atomic_load_n(&r->state, __ATOMIC_ACQUIRE) == S2_ROOT_VALID;
}
/* Take a reference on the current root of @role for @vcpu's running root,
 * making one if there is none (allocates; no lock held). */
int s2_vcpu_root_init(struct kvm_vcpu *vcpu);
/* Drop @vcpu's references (vcpu destruction). */
void s2_vcpu_root_fini(struct kvm_vcpu *vcpu);
/* flush/request.c, at entry: drop references on invalid roots; with
 * @reload (or when the running root is invalid) switch to the current root
 * of the vcpu's role and fill *@act (LOAD_ROOT). Returns 1 when *@act was
 * filled, 0 when not, -ENOMEM, -EIO. */
int s2_vcpu_reload(struct kvm_vcpu *vcpu, bool reload, struct kvm_entry_action *act);
/* kvm_create_vm: the slot array and the first root. */
int s2_roots_init(struct kvm *kvm);
/* flush/request.c: after a change of the tables, TLB_FLUSH_CURRENT or
 * TLB_FLUSH on every vcpu, whichever is exact for it, with the wait. */
void s2_request_tlb_flush(struct kvm *kvm);
/* flush/request.c: raise @req (with its wait) on the vcpus @pick selects. */
void s2_request_vcpus(struct kvm *kvm, unsigned req, bool (*pick)(const struct kvm_vcpu *v));
/* A vcpu that does not load its root through the library (and never
 * entered a guest) moves to the current root of its role when its own was
 * invalidated: the fault path calls this before it takes mmu_lock. Returns
 * 0, -ENOMEM. */
int s2_vcpu_follow(struct kvm_vcpu *vcpu);
/* Valid roots now (for the entry list's nr_roots). */
unsigned s2_roots_valid(const struct kvm *kvm);
/* Destroy: invalidate and tear down every root (vcpus out of guest). */
void s2_roots_destroy(struct kvm *kvm);
/* Free a list of pages linked through their entry 0 after a grace period. */
void s2_free_pages_rcu(struct kvm *kvm, hpa_t head, size_t bytes);
/* Fold one hold's visited leaves into the statistic. */
static inline void s2_hold_stat(struct kvm *kvm, uint64_t leaves)
{
	uint64_t m = __atomic_load_n(&kvm->stat_max_hold, __ATOMIC_RELAXED);

	while (leaves > m && !__atomic_compare_exchange_n(&kvm->stat_max_hold, &m, leaves, false,
							  __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/* Table pages of @kvm's granule: from the reserve kvm_mmu_prepare() made,
 * else from the env; freed ones refill the reserve first (core/map.c). */
void *s2_table_alloc(struct kvm *kvm, size_t bytes, hpa_t *pa);
/* Fill @vcpu's memory cache to @need pages (<= levels - 1): 0 or -ENOMEM. */
int s2_mmu_topup(struct kvm_vcpu *vcpu, unsigned need);
void s2_table_free(struct kvm *kvm, void *va, hpa_t pa, size_t bytes);
void s2_reserve_destroy(struct kvm *kvm);

/* Take the write side and zap [start, end), yielding (core/mmu.c). */
long s2_zap_yielding(struct kvm *kvm, gfn_t start, gfn_t end, bool may_block);

/* kvm_mmu_zap_all_fast() returning the leaves its teardown removed (for
 * kvm_mmu_zap_all), or -errno (core/roots.c). */
long s2_zap_all_fast(struct kvm *kvm);

/*
 * The fast zap in its parts, for callers that run other steps between them
 * (a memslot removal, core/memslot.c): prepare allocates the fresh roots'
 * pages (no lock held; -ENOMEM); locked (write side held) invalidates every
 * valid root, publishes the fresh ones and waits for the vcpus' reloads,
 * or changes nothing (-ENOTSUP: a vcpu would not reload; -ENOMEM: no free
 * root slot); teardown empties the roots it invalidated; finish drops
 * their last references and frees unused pages (no spinlock held). finish
 * is always called after prepare succeeded.
 */
struct s2_fast_zap {
	struct s2_page pg[S2_ROLES];
	uint32_t token; /* marks the roots it invalidated (0: none) */
};
int s2_fast_zap_prepare(struct kvm *kvm, struct s2_fast_zap *fz);
int s2_fast_zap_locked(struct kvm *kvm, struct s2_fast_zap *fz);
long s2_fast_zap_teardown(struct kvm *kvm, struct s2_fast_zap *fz, struct s2_change_acc *keep);
void s2_fast_zap_finish(struct kvm *kvm, struct s2_fast_zap *fz);

/*
 * A memslot removal (delete, move, read-only) zaps in place up to this many
 * leaves of its range; past it, and when the range holds at least 7/8 of
 * the VM's leaves, it takes the fast zap instead (docs/rules.md, "The fast
 * zap and when each zap is chosen").
 */
#define S2_FAST_ZAP_MIN_LEAVES (1ull << 16)

/* Zap [start, end) of every valid root, mmu_lock held for write, yielding
 * it every yield_batch leaves (a memslot removal, slots_lock held: nothing
 * unlinked is freed before the caller's unlock). */
long s2_zap_range_yielding_locked(struct kvm *kvm, gfn_t start, gfn_t end,
				  struct s2_change_acc *acc);

/* Zap [start, end) with mmu_lock held for write; flush owed goes to @acc. */
long s2_zap_range_locked(struct kvm *kvm, gfn_t start, gfn_t end, struct s2_change_acc *acc);

/* The ops table of a built-in format, or NULL. */
const struct s2_fmt_ops *s2_fmt_lookup(enum s2_fmt_id id);

/* Memslot lookup in a published array (O(log n)); NULL when none. */
const struct kvm_memory_slot *s2_memslots_find(const struct s2_memslots *ms, gfn_t gfn);

/* Copy the memslot holding @gfn (RCU-safe) and the generation seen. */
int s2_memslot_snapshot(const struct kvm *kvm, gfn_t gfn, struct kvm_memory_slot *out,
			uint64_t *gen);

/*
 * The memslot of @gfn, by value, and the memslot generation it belongs to.
 * The vcpu's copy from its last fault (or kvm_mmu_map_range()) serves while
 * the generation has not moved (every memslot update moves it), so
 * sequential calls take no RCU read lock and search nothing; the generation
 * is re-checked under mmu_lock either way. The vcpu's thread only.
 */
static inline int s2_vcpu_slot(struct kvm_vcpu *vcpu, gfn_t gfn, struct kvm_memory_slot *slot,
			       uint64_t *gen)
{
	uint64_t g = __atomic_load_n(&vcpu->kvm->memslots_gen, __ATOMIC_ACQUIRE);
	int r;

	if (g == vcpu->slot_cache_gen &&
	    gfn - vcpu->slot_cache.base_gfn < vcpu->slot_cache.npages) {
		*slot = vcpu->slot_cache;
		*gen = g;
		return 0;
	}
	r = s2_memslot_snapshot(vcpu->kvm, gfn, slot, gen);
	if (!r) {
		vcpu->slot_cache = *slot;
		vcpu->slot_cache_gen = *gen;
	}
	return r;
}

/*
 * notifier/: a memslot is about to cover new gfns; while an invalidation is
 * in progress they join its range (and are zapped into @acc). Called with
 * mmu_lock held for write *before* the slot is published, so that no fault
 * can find the slot while its gfns are outside the in-progress range.
 */
void s2_notifier_slot_adding(struct kvm *kvm, const struct kvm_memory_slot *slot,
			     struct s2_change_acc *acc);
/* notifier/: free what it keeps per VM (kvm_destroy_vm). */
void s2_notifier_destroy(struct kvm *kvm);

/*
 * Fault paths use these to validate mmu_invalidate_* (notifier/), with
 * mmu_lock held: retry when the gfns [start, end) the new leaf would map
 * meet an in-progress invalidation (the whole leaf, so a huge leaf never
 * spans a page being changed), or when one ended since @seq was read.
 */
/*
 * The invalidation protocol's two ends (rule 4), mmu_lock held for write:
 * the MMU notifier (notifier/range.c), kvm_mmu_map_range() (core/map.c)
 * and memslot updates that zap (core/memslot.c) run them. Begin raises mmu_invalidate_in_progress (the first of a nested
 * batch starts from an empty range: start > end) and adds [start, end) to
 * the in-progress range; end bumps mmu_invalidate_seq when the batch
 * covered any gfn, then lowers in_progress (release: whoever sees it
 * lowered sees the new seq). End returns false, changing nothing, when no
 * invalidation is in progress.
 */
static inline void s2_invalidate_begin(struct kvm *kvm)
{
	uint64_t n = kvm->mmu_invalidate_in_progress;

	if (!n) {
		kvm->mmu_invalidate_range_start = ~(gfn_t)0;
		kvm->mmu_invalidate_range_end = 0;
	}
	__atomic_store_n(&kvm->mmu_invalidate_in_progress, n + 1, __ATOMIC_RELAXED);
}

static inline void s2_invalidate_add(struct kvm *kvm, gfn_t start, gfn_t end)
{
	if (start < kvm->mmu_invalidate_range_start)
		kvm->mmu_invalidate_range_start = start;
	if (end > kvm->mmu_invalidate_range_end)
		kvm->mmu_invalidate_range_end = end;
}

static inline bool s2_invalidate_end(struct kvm *kvm)
{
	uint64_t n = kvm->mmu_invalidate_in_progress;

	if (!n)
		return false;
	if (kvm->mmu_invalidate_range_start < kvm->mmu_invalidate_range_end)
		__atomic_store_n(&kvm->mmu_invalidate_seq, kvm->mmu_invalidate_seq + 1,
				 __ATOMIC_RELEASE);
	__atomic_store_n(&kvm->mmu_invalidate_in_progress, n - 1, __ATOMIC_RELEASE);
	return true;
}

static inline bool s2_invalidate_retry(struct kvm *kvm, uint64_t seq, gfn_t start, gfn_t end)
{
	if (s2_unlikely(__atomic_load_n(&kvm->mmu_invalidate_in_progress, __ATOMIC_RELAXED)) &&
	    start < kvm->mmu_invalidate_range_end && end > kvm->mmu_invalidate_range_start)
		return true;
	return __atomic_load_n(&kvm->mmu_invalidate_seq, __ATOMIC_RELAXED) != seq;
}

#endif
