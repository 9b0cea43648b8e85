// SPDX-License-Identifier: MIT
/*
 * Racing private faults against the TDX module model (tests/tdx/model.h),
 * for EPT 4 and 5 levels, also built with ThreadSanitizer: vcpu threads
 * fault the same and neighbouring private gfns (4 KiB and 2 MiB leaves),
 * enter and leave the guest (the model's TD epochs follow them) and accept
 * pages, while the main thread converts ranges private -> shared ->
 * private (BLOCK, TRACK, kick, REMOVE under the write side, demotions of
 * partly converted 2 MiB leaves) and collapses them back. The model is
 * serialised by one mutex in the hooks (the module serialises its own
 * SEPT operations); BUSY is injected in one call of five. Two faults of
 * one hot gfn meet in the private_pfn hook before they take mmu_lock, and
 * a fault's SEPT.ADD / PAGE.AUG yields its CPU before the call, so the
 * other fault of the pair runs while the entry is frozen (on two loaded
 * cores the window of a few hundred nanoseconds was never hit otherwise).
 *
 * Checked: every SEAMCALL the model saw was legal at the moment it came
 * (two PAGE.AUGs or SEPT.ADDs of one entry would be EPT_ENTRY_NOT_FREE, a
 * REMOVE while a vcpu still runs in the blocking epoch
 * TLB_TRACKING_NOT_DONE), after every round with the vcpus parked the
 * model's secure EPT and the mirror root are the same map with the same
 * S-EPT page counts and no direct root maps a private gfn, and teardown
 * leaves the model empty with every page back. Catches: the freeze of the
 * leaf entry in tdx_map() removed (two AUGs of one gfn: EPT_ENTRY_NOT_FREE
 * in every run); the kick of tdx_track() removed (TLB_TRACKING_NOT_DONE);
 * each applied by hand. It also found the model's page table reusing a
 * tombstone before searching the rest of the probe chain (tests/tdx/model.c).
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
#define G0 0x40000ull	     /* slot base gfn, 1 GiB aligned */
#define NPAGES 2048ull	     /* four 2 MiB blocks */
#define GMEM_PFN 0x900000ull /* private backing, 2 MiB aligned */
#define P KVM_MEMORY_ATTRIBUTE_PRIVATE
#define NVCPUS 3
#define ROUNDS 24
#define OPS_PER_ROUND 6

static struct tvm T;
static struct tdx_model *M;
static pthread_mutex_t mlock = PTHREAD_MUTEX_INITIALIZER;
static struct s2_tdx_ops ops;
static uint64_t pfn_gets, pfn_puts, installs, installed_pages; /* atomics */
static unsigned rendezvous[4], faults_done;
#define HOT (G0 + 0x3fe)

static int gmem_pfn(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, kvm_pfn_t *pfn,
		    int *max_level)
{
	(void)ctx;
	*pfn = GMEM_PFN + (gfn - slot->base_gfn);
	*max_level = 2;
	__atomic_fetch_add(&pfn_gets, 1, __ATOMIC_RELAXED);
	/* Faults on the hot gfns wait here (briefly) for a second one, so
	 * the two take mmu_lock and descend the mirror root together. */
	if (gfn >= HOT && gfn < HOT + 4) {
		unsigned *rv = &rendezvous[gfn - HOT];
		unsigned n = __atomic_add_fetch(rv, 1, __ATOMIC_ACQ_REL);

		/* The first of a pair spins (yielding now and then) until a
		 * second fault of the same gfn arrives, or gives up. */
		for (unsigned i = 0;
		     n % 2 && i < 20000 && __atomic_load_n(rv, __ATOMIC_ACQUIRE) == n; i++)
			if (!(i % 512))
				t_yield();
	}
	return 0;
}

static void gmem_put(void *ctx, kvm_pfn_t pfn, int level)
{
	(void)ctx;
	(void)pfn;
	__atomic_fetch_add(&pfn_puts, 1ull << (9 * (level - 1)), __ATOMIC_RELAXED);
}

/* Every model entry point under the one lock. */
#define LOCKED(expr)                          \
	({                                    \
		pthread_mutex_lock(&mlock);   \
		__typeof__(expr) r_ = (expr); \
		pthread_mutex_unlock(&mlock); \
		r_;                           \
	})
/* A fault's SEAMCALL gives its CPU away first: the mirror entry stays
 * frozen that long, and a racing fault of the same gfn runs meanwhile. */
static uint64_t l_sept_add(void *c, gpa_t g, int l, hpa_t p)
{
	t_yield();
	return LOCKED(tdxm_sept_add(c, g, l, p));
}
static uint64_t l_aug(void *c, gpa_t g, int l, hpa_t p)
{
	uint64_t st;

	t_yield();
	st = LOCKED(tdxm_page_aug(c, g, l, p));

	if (!st) {
		__atomic_fetch_add(&installs, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&installed_pages, 1ull << (9 * (l - 1)), __ATOMIC_RELAXED);
	}
	return st;
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

static void td(unsigned bits)
{
	struct kvm_vm_params p = t_default_params(S2_FMT_X86_EPT);
	struct kvm_tdx_params tp;

	pfn_gets = pfn_puts = installs = installed_pages = 0;
	M = calloc(1, sizeof(*M));
	assert_non_null(M);
	p.gpa_bits = bits;
	t_vm_init(&T, S2_FMT_X86_EPT, &p);
	tdxm_init(M, kvm_mmu_levels(T.kvm), 5, 0x5151 + bits);
	ops = locked_ops;
	tp = (struct kvm_tdx_params){
		.ops = &ops, .ctx = M, .shared_bit = bits - 1, .busy_retries = 64
	};
	assert_int_equal(kvm_tdx_init(T.kvm, &tp), 0);
	t_slot(&T, 0, G0, NPAGES, HVA_BASE, 0);
	assert_int_equal(kvm_vm_set_mem_attributes(T.kvm, G0, G0 + NPAGES, P), 0);
}

/* With every vcpu parked outside the guest: the model and the mirror root
 * are the same map, and no direct root maps a private gfn. */
/* The first failure of check(), for the main thread to report once the
 * vcpu threads are stopped. */
static char why[256];

#define CHECK(cond, ...)                                         \
	do {                                                     \
		if (!(cond)) {                                   \
			snprintf(why, sizeof(why), __VA_ARGS__); \
			return false;                            \
		}                                                \
	} while (0)

static bool check(unsigned bits)
{
	struct kvm_tdx_stats s;
	gfn_t shared = 1ull << (bits - 1 - 12);

	CHECK(!M->illegal, "illegal SEAMCALL: %s (%u)", M->first_illegal, M->illegal);
	CHECK(!kvm_is_bugged(T.kvm), "VM bugged");
	CHECK(!kvm_tdx_get_stats(T.kvm, &s), "stats");
	CHECK(tdxm_nr_leaves(M) ==
		      s.cur_private_leaves[1] + s.cur_private_leaves[2] + s.cur_private_leaves[3],
	      "leaves: model %u, mirror %llu", tdxm_nr_leaves(M),
	      (unsigned long long)(s.cur_private_leaves[1] + s.cur_private_leaves[2] +
				   s.cur_private_leaves[3]));
	CHECK(tdxm_nr_sept(M) == s.cur_sept_pages, "S-EPT pages: model %u, mirror %llu",
	      tdxm_nr_sept(M), (unsigned long long)s.cur_sept_pages);
	for (gfn_t g = G0; g < G0 + NPAGES; g++) {
		int ml = 0, ll = 0;
		uint64_t mh = 0;
		hpa_t lh = 0;
		enum tdxm_state st = tdxm_leaf(M, g << 12, &ml, &mh);
		int found = kvm_tdx_lookup_private(T.kvm, g, &lh, &ll);
		struct ref_xlate x;

		CHECK(found == (st != TDXM_FREE), "gfn %#llx: mirror %d, secure EPT state %d",
		      (unsigned long long)g, found, st);
		CHECK(!found || (ll == ml && lh == mh),
		      "gfn %#llx: mirror level %d hpa %#llx, secure EPT %d %#llx",
		      (unsigned long long)g, ll, (unsigned long long)lh, ml,
		      (unsigned long long)mh);
		CHECK(!found || lh == (GMEM_PFN + (g - G0)) << 12, "gfn %#llx: private page %#llx",
		      (unsigned long long)g, (unsigned long long)lh);
		CHECK(!(kvm_get_memory_attributes(T.kvm, g) & P) ||
			      ref_walk_kvm(T.kvm, (g | shared) << 12, &x),
		      "private gfn %#llx mapped in the direct root", (unsigned long long)g);
	}
	return true;
}

struct vcpu_thread {
	struct kvm_vcpu *vcpu;
	unsigned id;
	uint64_t seed;
	unsigned fixed, spurious, retry, memfault, accepted, bad;
};

static bool stop, pause_req;
static pthread_barrier_t parked, resumed;

static uint64_t rnd(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 33;
}

/* The gfns vcpus fault: four hot gfns across a 2 MiB boundary that every
 * vcpu faults at once after each conversion, their neighbourhood, a gfn
 * of another block (2 MiB leaves), and anywhere in the slot. */
static gfn_t pick_gfn(uint64_t *s)
{
	switch (rnd(s) % 8) {
	case 0:
	case 1:
	case 2:
	case 3: return HOT + rnd(s) % 4;
	case 4: return HOT - 16 + rnd(s) % 36;
	case 5: return G0 + 0x10 + rnd(s) % 8;
	default: return G0 + rnd(s) % NPAGES;
	}
}

static void *vcpu_loop(void *arg)
{
	struct vcpu_thread *t = arg;

	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		struct kvm_entry_actions a;
		gfn_t g;
		int r;

		if (__atomic_load_n(&pause_req, __ATOMIC_ACQUIRE)) {
			pthread_barrier_wait(&parked);
			pthread_barrier_wait(&resumed);
			continue;
		}
		if (kvm_vcpu_entry_actions(t->vcpu, &a)) {
			t->bad++;
			continue;
		}
		if (kvm_vcpu_enter_guest(t->vcpu)) {
			/* TDH.VP.ENTER: the guest runs (and accepts a page)
			 * in the epoch it entered in. */
			pthread_mutex_lock(&mlock);
			tdxm_vcpu_enter(M, t->id);
			g = pick_gfn(&t->seed);
			if (rnd(&t->seed) % 2) {
				int lvl = rnd(&t->seed) % 3 ? 1 : 2;
				gfn_t base = lvl == 2 ? g & ~511ull : g;

				t->accepted += !tdxm_accept(M, base << 12, lvl);
			}
			pthread_mutex_unlock(&mlock);
			t_yield();
			pthread_mutex_lock(&mlock);
			tdxm_vcpu_exit(M, t->id);
			pthread_mutex_unlock(&mlock);
			kvm_vcpu_exit_guest(t->vcpu);
		}
		/* The exit was an EPT violation on a private gpa. */
		g = pick_gfn(&t->seed);
		r = kvm_tdp_page_fault(t->vcpu, g << 12,
				       rnd(&t->seed) % 2 ? S2_ACC_WRITE : S2_ACC_READ);
		__atomic_fetch_add(&faults_done, 1, __ATOMIC_RELEASE);
		switch (r) {
		case RET_PF_FIXED: t->fixed++; break;
		case RET_PF_SPURIOUS: t->spurious++; break;
		case RET_PF_RETRY: t->retry++; break;
		case RET_PF_MEMORY_FAULT: t->memfault++; break; /* converted meanwhile */
		default: t->bad++; break;
		}
	}
	return NULL;
}

static void park(void)
{
	__atomic_store_n(&pause_req, true, __ATOMIC_RELEASE);
	pthread_barrier_wait(&parked);
}

static void resume(void)
{
	__atomic_store_n(&pause_req, false, __ATOMIC_RELEASE);
	pthread_barrier_wait(&resumed);
}

static void test_racing_private_faults(void **state)
{
	unsigned bits = (unsigned)(uintptr_t)*state;
	struct vcpu_thread vt[NVCPUS] = { 0 };
	pthread_t th[NVCPUS];
	uint64_t seed = 0xabcdef + bits, septs;
	unsigned fixed = 0, conversions = 0, collapsed = 0;
	struct kvm_tdx_stats s;

	td(bits);
	stop = pause_req = false;
	why[0] = 0;
	pthread_barrier_init(&parked, NULL, NVCPUS + 1);
	pthread_barrier_init(&resumed, NULL, NVCPUS + 1);
	for (unsigned i = 0; i < NVCPUS; i++) {
		vt[i].id = i;
		vt[i].seed = 0x9e3779b97f4a7c15ull * (i + 1) + bits;
		if (i)
			assert_int_equal(kvm_vcpu_create(T.kvm, i, &vt[i].vcpu), 0);
		else
			vt[i].vcpu = T.vcpu;
		assert_int_equal(pthread_create(&th[i], NULL, vcpu_loop, &vt[i]), 0);
	}
	for (unsigned round = 0; round < ROUNDS; round++) {
		for (unsigned op = 0; op < OPS_PER_ROUND; op++) {
			/* A range inside one or two 2 MiB blocks, often around
			 * the hot gfns: private -> shared -> private. */
			gfn_t a = rnd(&seed) % 2 ? HOT - rnd(&seed) % 8 : G0 + rnd(&seed) % NPAGES;
			gfn_t b = a + 1 + rnd(&seed) % (rnd(&seed) % 2 ? 16 : 700);
			long c;

			if (b > G0 + NPAGES)
				b = G0 + NPAGES;
			if (kvm_vm_set_mem_attributes(T.kvm, a, b, 0) ||
			    kvm_vm_set_mem_attributes(T.kvm, a, b, P)) {
				snprintf(why, sizeof(why),
					 "conversion of [%#llx, %#llx) failed (%s)",
					 (unsigned long long)a, (unsigned long long)b,
					 M->first_illegal);
				break;
			}
			conversions++;
			/* Let the vcpus race on what the conversion removed. */
			for (unsigned i = 0, f = __atomic_load_n(&faults_done, __ATOMIC_ACQUIRE);
			     i < 2000 && __atomic_load_n(&faults_done, __ATOMIC_ACQUIRE) < f + 12;
			     i++)
				t_yield();
			c = kvm_tdx_collapse(T.kvm, G0, G0 + NPAGES);
			if (c < 0) {
				snprintf(why, sizeof(why), "collapse: %ld (%s)", c,
					 M->first_illegal);
				break;
			}
			collapsed += (unsigned)c;
		}
		park();
		if (!why[0])
			(void)check(bits);
		if (why[0])
			__atomic_store_n(&stop, true, __ATOMIC_RELEASE);
		resume();
		if (why[0])
			break;
	}
	__atomic_store_n(&stop, true, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < NVCPUS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		fixed += vt[i].fixed;
	}
	pthread_barrier_destroy(&parked);
	pthread_barrier_destroy(&resumed);
	if (why[0] || !check(bits))
		fail_msg("%s", why);
	for (unsigned i = 0; i < NVCPUS; i++)
		assert_int_equal(vt[i].bad, 0);
	assert_int_equal(kvm_tdx_get_stats(T.kvm, &s), 0);
	/* The races happened: faults installed pages, lost some races
	 * (retries), and BUSY answers were retried. */
	assert_true(fixed > 0);
	assert_true(M->n_busy > 0);
	assert_true(s.removed > 0);
	print_message("bits %u: %u fixed, %u retries, %u memory faults, %u conversions, %llu "
		      "removed, %llu demoted, %u promoted, %llu busy\n",
		      bits, fixed, vt[0].retry + vt[1].retry + vt[2].retry,
		      vt[0].memfault + vt[1].memfault + vt[2].memfault, conversions,
		      (unsigned long long)s.removed, (unsigned long long)s.demoted, collapsed,
		      (unsigned long long)M->n_busy);
	septs = M->n_sept_add + M->n_demote - M->n_promote;
	t_vm_fini(&T);
	T.kvm = NULL;
	if (M->illegal)
		fail_msg("illegal SEAMCALL at teardown: %s", M->first_illegal);
	assert_int_equal(tdxm_nr_leaves(M), 0);
	assert_int_equal(tdxm_nr_sept(M), 0);
	assert_int_equal(tdxm_pages_out(M), 0);
	assert_int_equal(M->n_reclaim, septs);
	assert_int_equal(pfn_puts, installed_pages + (pfn_gets - installs));
	free(M);
	M = NULL;
}

static int teardown(void **state)
{
	(void)state;
	if (T.kvm)
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
		cmocka_unit_test_prestate_setup_teardown(test_racing_private_faults, NULL, teardown,
							 (void *)b48),
		cmocka_unit_test_prestate_setup_teardown(test_racing_private_faults, NULL, teardown,
							 (void *)b52),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
