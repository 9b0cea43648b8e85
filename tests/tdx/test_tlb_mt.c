// SPDX-License-Identifier: MIT
/*
 * The flush promise for a TD's private half (issue 12; the private
 * counterpart of tests/generic/tlb_model_mt.c, which covers the shared
 * EPT): no vcpu runs on a private translation the secure EPT no longer
 * holds once a removal returns.
 *
 * vcpu threads run a TD: each has a simulated TLB of private translations
 * (gfn -> page), filled only from walks of the TDX module model's secure EPT
 * (tests/tdx/model.h) of a MAPPED leaf (a PENDING one is accepted first, as
 * the guest does on its #VE), and flushed only where the module flushes it:
 * at TDH.VP.ENTER when the TD's epoch moved since the vcpu's last entry (the
 * TLB tracking that TDH.MEM.TRACK starts). A walk that finds nothing or a
 * blocked entry is an EPT violation: the vcpu leaves the guest and calls
 * kvm_tdp_page_fault(). A kick only counts: the vcpu polls its mode before
 * each access and leaves when kicked. The main thread converts ranges
 * private -> shared -> private (BLOCK, TRACK, kick round, REMOVE, and
 * demotions), collapses (PROMOTE), and deletes and re-adds the memslot.
 *
 * The model's own check that REMOVE, DEMOTE, PROMOTE and SEPT.REMOVE come
 * after a completed TLB tracking is off here (skip_tracking_check), so that
 * this test sees for itself what the library's order leaves: after every
 * call of the main thread, with the faults held at a gate, each vcpu in the
 * guest holds only translations the secure EPT grants now (a present,
 * unblocked leaf of the same page), and a vcpu outside the guest that holds
 * a stale one has its flush owed (its last entry was in an older epoch).
 * Every other module check stays on. Catches: the kick round after TRACK
 * removed (scripts/mutations/tdx-track-kick.sh; stale translation of a
 * removed page in a running vcpu). TLB_SEED and TLB_OPS as the generic
 * checker takes them.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kvm_internal.h"
#include "s2mmu/notifier.h"
#include "s2mmu/tdx.h"
#include "tests/lib/testlib.h"
#include "tests/tdx/model.h"

#define HVA_BASE 0x7f0000000000ull
#define G0 0x40000ull
#define NPAGES 1024ull
#define GMEM_PFN 0x900000ull
#define P KVM_MEMORY_ATTRIBUTE_PRIVATE
#define NV 2
#define BATCH 64
#define DEFAULT_OPS 300

static struct tvm T;
static struct tdx_model *M;
static pthread_mutex_t mlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t gate = PTHREAD_RWLOCK_INITIALIZER;
static struct s2_tdx_ops ops;
static bool stop, failed;
static char failmsg[512];

struct vc {
	struct kvm_vcpu *v;
	unsigned id;
	pthread_t th;
	uint64_t rng;
	pthread_mutex_t lock; /* the TLB */
	uint64_t tlb[NPAGES]; /* page | 1, or 0 */
	uint64_t tlb_epoch;   /* the epoch the TLB was last flushed for */
	uint64_t accesses, hits, faults, fixed, flushes;
};
static struct vc V[NV];

static void tfail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void tfail(const char *fmt, ...)
{
	va_list ap;

	if (__atomic_exchange_n(&failed, true, __ATOMIC_ACQ_REL))
		return;
	va_start(ap, fmt);
	vsnprintf(failmsg, sizeof(failmsg), fmt, ap);
	va_end(ap);
	__atomic_store_n(&stop, true, __ATOMIC_RELEASE);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int gmem_pfn(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, kvm_pfn_t *pfn,
		    int *max_level)
{
	(void)ctx;
	*pfn = GMEM_PFN + (gfn - slot->base_gfn);
	*max_level = 2;
	return 0;
}

static void gmem_put(void *ctx, kvm_pfn_t pfn, int level)
{
	(void)ctx, (void)pfn, (void)level;
}

#define LOCKED(expr)                          \
	({                                    \
		pthread_mutex_lock(&mlock);   \
		__typeof__(expr) r_ = (expr); \
		pthread_mutex_unlock(&mlock); \
		r_;                           \
	})
static uint64_t l_sept_add(void *c, gpa_t g, int l, hpa_t p)
{
	return LOCKED(tdxm_sept_add(c, g, l, p));
}
static uint64_t l_aug(void *c, gpa_t g, int l, hpa_t p)
{
	return LOCKED(tdxm_page_aug(c, g, l, p));
}
static uint64_t l_block(void *c, gpa_t g, int l)
{
	return LOCKED(tdxm_range_block(c, g, l));
}
static uint64_t l_track(void *c)
{
	return LOCKED(tdxm_track(c));
}
static uint64_t l_remove(void *c, gpa_t g, int l)
{
	/* The removal's window: a vcpu still in the guest uses what its TLB
	 * holds meanwhile. */
	t_yield();
	return LOCKED(tdxm_page_remove(c, g, l));
}
static uint64_t l_sept_remove(void *c, gpa_t g, int l)
{
	return LOCKED(tdxm_sept_remove(c, g, l));
}
static uint64_t l_wbinvd(void *c, hpa_t p)
{
	return LOCKED(tdxm_page_wbinvd(c, p));
}
static uint64_t l_reclaim(void *c, hpa_t p)
{
	return LOCKED(tdxm_page_reclaim(c, p));
}
static void l_release_key(void *c)
{
	pthread_mutex_lock(&mlock);
	tdxm_release_key(c);
	pthread_mutex_unlock(&mlock);
}
static uint64_t l_demote(void *c, gpa_t g, int l, hpa_t p)
{
	return LOCKED(tdxm_page_demote(c, g, l, p));
}
static uint64_t l_promote(void *c, gpa_t g, int l)
{
	return LOCKED(tdxm_page_promote(c, g, l));
}
static uint64_t l_unblock(void *c, gpa_t g, int l)
{
	return LOCKED(tdxm_range_unblock(c, g, l));
}

static const struct s2_tdx_ops locked_ops = {
	.sept_add = l_sept_add,
	.page_aug = l_aug,
	.range_block = l_block,
	.track = l_track,
	.page_remove = l_remove,
	.sept_remove = l_sept_remove,
	.page_wbinvd = l_wbinvd,
	.page_reclaim = l_reclaim,
	.release_key = l_release_key,
	.page_demote = l_demote,
	.page_promote = l_promote,
	.range_unblock = l_unblock,
	.private_pfn = gmem_pfn,
	.private_pfn_put = gmem_put,
};

/* A guest access to private G0 + @i through the TLB. Returns false on an
 * EPT violation. TLB lock held; takes the model's. */
static bool guest_access(struct vc *s, uint64_t i)
{
	uint64_t gpa = (G0 + i) << 12, h = 0;
	int lvl = 0;
	enum tdxm_state st;

	if (s->tlb[i]) {
		s->hits++;
		return true;
	}
	pthread_mutex_lock(&mlock);
	st = tdxm_leaf(M, gpa, &lvl, &h);
	if (st == TDXM_PENDING) {
		/* #VE: the guest accepts the page and retries. */
		(void)tdxm_accept(M, gpa & ~((1ull << (12 + 9 * (lvl - 1))) - 1), lvl);
		st = tdxm_leaf(M, gpa, &lvl, &h);
	}
	pthread_mutex_unlock(&mlock);
	if (st != TDXM_MAPPED)
		return false;
	s->tlb[i] = h | 1;
	return true;
}

static void *vcpu_main(void *arg)
{
	struct vc *s = arg;

	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		struct kvm_entry_actions a;
		uint64_t fault = ~0ull;
		int r;

		if (kvm_vcpu_entry_actions(s->v, &a)) {
			tfail("vcpu %u: entry actions failed", s->id);
			break;
		}
		if (!kvm_vcpu_enter_guest(s->v))
			continue;
		/* TDH.VP.ENTER: the module flushes the TD's translations of
		 * this vcpu when the TD's epoch moved since its last entry. */
		pthread_mutex_lock(&s->lock);
		pthread_mutex_lock(&mlock);
		tdxm_vcpu_enter(M, s->id);
		if (s->tlb_epoch != M->epoch) {
			memset(s->tlb, 0, sizeof(s->tlb));
			s->tlb_epoch = M->epoch;
			s->flushes++;
		}
		pthread_mutex_unlock(&mlock);
		pthread_mutex_unlock(&s->lock);
		for (unsigned b = 0; b < BATCH; b++) {
			uint64_t x = rnd(&s->rng), i;
			bool ok;

			if (kvm_vcpu_mode(s->v) != IN_GUEST_MODE)
				break; /* kicked */
			i = (x & 3) ? 0x1f0 + (x >> 8) % 32 : (x >> 8) % NPAGES;
			pthread_mutex_lock(&s->lock);
			ok = guest_access(s, i);
			pthread_mutex_unlock(&s->lock);
			s->accesses++;
			if (!ok) {
				fault = i;
				break;
			}
			if (!(x & 15))
				t_yield();
		}
		pthread_mutex_lock(&mlock);
		tdxm_vcpu_exit(M, s->id);
		pthread_mutex_unlock(&mlock);
		kvm_vcpu_exit_guest(s->v);
		if (fault == ~0ull)
			continue;
		pthread_rwlock_rdlock(&gate);
		r = kvm_tdp_page_fault(s->v, (G0 + fault) << 12, S2_ACC_READ);
		pthread_rwlock_unlock(&gate);
		s->faults++;
		switch (r) {
		case RET_PF_FIXED: s->fixed++; break;
		case RET_PF_SPURIOUS:
		case RET_PF_RETRY:
		case RET_PF_MEMORY_FAULT: t_yield(); break;
		default:
			tfail("vcpu %u: fault of gfn %#llx: %d", s->id,
			      (unsigned long long)(G0 + fault), r);
		}
	}
	return NULL;
}

/* After a call returned: no vcpu in the guest holds a translation the
 * secure EPT does not grant now; one outside holds one only with its flush
 * owed. Faults wait at the gate meanwhile. */
static void check(const char *op, uint64_t n)
{
	pthread_rwlock_wrlock(&gate);
	for (unsigned k = 0; k < NV && !failed; k++) {
		struct vc *s = &V[k];

		pthread_mutex_lock(&s->lock);
		pthread_mutex_lock(&mlock);
		for (uint64_t i = 0; i < NPAGES; i++) {
			uint64_t h = 0;
			int lvl;
			enum tdxm_state st;

			if (!s->tlb[i])
				continue;
			st = tdxm_leaf(M, (G0 + i) << 12, &lvl, &h);
			if ((st == TDXM_MAPPED || st == TDXM_PENDING) && h == (s->tlb[i] & ~1ull))
				continue;
			if (!M->in_guest[k] && s->tlb_epoch != M->epoch)
				continue; /* flushed at its next entry */
			tfail("after %s (op %llu): vcpu %u %s the guest holds gfn %#llx -> %#llx, "
			      "secure EPT: state %d page %#llx (vcpu's epoch %llu, TD's %llu)",
			      op, (unsigned long long)n, k, M->in_guest[k] ? "in" : "outside",
			      (unsigned long long)(G0 + i), (unsigned long long)(s->tlb[i] & ~1ull),
			      st, (unsigned long long)h, (unsigned long long)s->tlb_epoch,
			      (unsigned long long)M->epoch);
			break;
		}
		if (M->illegal)
			tfail("illegal SEAMCALL: %s", M->first_illegal);
		pthread_mutex_unlock(&mlock);
		pthread_mutex_unlock(&s->lock);
	}
	pthread_rwlock_unlock(&gate);
}

static void test_private_tlb(void **state)
{
	unsigned bits = (unsigned)(uintptr_t)*state;
	struct kvm_vm_params p = t_default_params(S2_FMT_X86_EPT);
	struct kvm_tdx_params tp;
	const char *e = getenv("TLB_SEED");
	const uint64_t seed0 = e ? strtoull(e, NULL, 0) : 0x7b1 + bits;
	uint64_t seed = seed0, nops;
	uint64_t acc = 0, fixed = 0, flushes = 0;
	bool slot_in = true;

	e = getenv("TLB_OPS");
	nops = e ? strtoull(e, NULL, 0) / 10 : DEFAULT_OPS;
	stop = failed = false;
	M = calloc(1, sizeof(*M));
	assert_non_null(M);
	p.gpa_bits = bits;
	p.max_vcpus = NV;
	t_vm_init(&T, S2_FMT_X86_EPT, &p);
	tdxm_init(M, kvm_mmu_levels(T.kvm), 11, seed);
	M->skip_tracking_check = true;
	ops = locked_ops;
	tp = (struct kvm_tdx_params){
		.ops = &ops, .ctx = M, .shared_bit = bits - 1, .busy_retries = 64
	};
	assert_int_equal(kvm_tdx_init(T.kvm, &tp), 0);
	t_slot(&T, 0, G0, NPAGES, HVA_BASE, 0);
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0, G0 + NPAGES, P), 0);
	for (unsigned i = 0; i < NV; i++) {
		V[i] = (struct vc){ .id = i, .rng = (seed + i) * 0x9e3779b97f4a7c15ull | 1 };
		pthread_mutex_init(&V[i].lock, NULL);
		if (i)
			assert_int_equal(kvm_vcpu_create(T.kvm, i, &V[i].v), 0);
		else
			V[i].v = T.vcpu;
		assert_int_equal(pthread_create(&V[i].th, NULL, vcpu_main, &V[i]), 0);
	}
	for (uint64_t n = 0; n < nops && !failed; n++) {
		uint64_t x = rnd(&seed), a, b;

		/* Let the vcpus fill their TLBs. */
		for (unsigned k = 0; k < 20; k++)
			t_yield();
		switch (x % 8) {
		case 6: /* collapse */
			if (kvm_tdx_collapse(T.kvm, G0, G0 + NPAGES) < 0)
				tfail("collapse failed (%s)", M->first_illegal);
			check("collapse", n);
			break;
		case 7: /* the memslot goes (private pages removed) and comes back */
			if (slot_in && !(x & 0x70)) {
				if (kvm_delete_memslot(T.kvm, 0))
					tfail("memslot deletion failed");
				slot_in = false;
				check("memslot delete", n);
			} else if (!slot_in) {
				t_slot(&T, 0, G0, NPAGES, HVA_BASE, 0);
				slot_in = true;
			}
			break;
		default: /* a conversion round trip, mostly on the vcpus' hot pages */
			a = (x & 0x100) ? 0x1f0 + (x >> 12) % 32 : (x >> 12) % NPAGES;
			b = a + 1 + (x >> 24) % ((x & 0x200) ? 8 : 600);
			if (b > NPAGES)
				b = NPAGES;
			if (kvm_vm_set_mem_attributes(T.kvm, G0 + a, G0 + b, 0)) {
				tfail("conversion to shared failed (%s)", M->first_illegal);
				break;
			}
			check("conversion to shared", n);
			if (kvm_vm_set_mem_attributes(T.kvm, G0 + a, G0 + b, P))
				tfail("conversion to private failed (%s)", M->first_illegal);
			break;
		}
	}
	__atomic_store_n(&stop, true, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < NV; i++) {
		assert_int_equal(pthread_join(V[i].th, NULL), 0);
		acc += V[i].accesses;
		fixed += V[i].fixed;
		flushes += V[i].flushes;
		pthread_mutex_destroy(&V[i].lock);
	}
	if (failed)
		fail_msg("%s (TLB_SEED=%#llx, gpa bits %u)", failmsg, (unsigned long long)seed0,
			 bits);
	print_message("bits %u: %llu accesses, %llu faults fixed, %llu entry flushes, %llu "
		      "TRACKs, %llu removed\n",
		      bits, (unsigned long long)acc, (unsigned long long)fixed,
		      (unsigned long long)flushes, (unsigned long long)M->n_track,
		      (unsigned long long)M->n_remove);
	/* The vcpus ran, faulted pages in and lost them to removals. */
	assert_true(acc > 0 && fixed > 0 && flushes > 0 && M->n_remove > 0);
	assert_false(kvm_is_bugged(T.kvm));
	t_vm_fini(&T);
	T.kvm = NULL;
	assert_int_equal(M->illegal, 0);
	assert_int_equal(tdxm_nr_leaves(M), 0);
	assert_int_equal(tdxm_pages_out(M), 0);
	free(M);
	M = NULL;
}

static int teardown(void **state)
{
	(void)state;
	if (T.kvm && !failed)
		t_vm_fini(&T);
	T.kvm = NULL;
	free(M);
	M = NULL;
	return 0;
}

int main(void)
{
	static uintptr_t b48 = 48, b52 = 52;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_prestate_setup_teardown(test_private_tlb, NULL, teardown,
							 (void *)b48),
		cmocka_unit_test_prestate_setup_teardown(test_private_tlb, NULL, teardown,
							 (void *)b52),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
