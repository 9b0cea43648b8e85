// SPDX-License-Identifier: MIT
/*
 * The invalidation protocol and aging under real concurrency (also run under
 * ThreadSanitizer). vcpu threads fault at random while a host thread keeps
 * moving pages (invalidate start, new pfn, end), an aging thread clears and
 * tests Accessed, and an attribute thread converts ranges. The checks are
 * invariants that must hold in every interleaving:
 *  - between a start and its end, no gfn of the range is mapped;
 *  - after an end, every mapped gfn of the range maps the host's new pfn
 *    (the stale pfn a racing fault looked up is never installed);
 *  - at the end, every mapped gfn maps the host's current pfn (checked with
 *    the reference walker), the leaf counters match a zap of everything,
 *    and every table page comes back.
 * Worker threads never call cmocka: they record the first violation, which
 * the main thread reports.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kvm_internal.h"
#include "tests/lib/testlib.h"

#define HVA_BASE 0x7f0000000000ull
#define NPAGES 2048 /* 8 MiB: four 2 MiB blocks */
#define BASE_GFN 0x40000ull
#define NVCPUS 3

static const enum s2_fmt_id FMTS[] = { S2_FMT_X86_EPT, S2_FMT_ARM64_S2, S2_FMT_RISCV_G,
				       S2_FMT_X86_NPT };

static struct tvm T;
static uint32_t gen[NPAGES]; /* pfn = hva >> 12 ^ (gen & 0xff) << 24 */
static int host_level;	     /* 1, or 2: the host maps 2 MiB blocks */
static int stop;
static uint64_t nfaults; /* faults done, so the host lets vcpus run between moves */
static char failure[256];
static int failed;

static void fail_once(const char *what, gfn_t gfn, uint64_t got, uint64_t want)
{
	if (__atomic_exchange_n(&failed, 1, __ATOMIC_ACQ_REL))
		return;
	snprintf(failure, sizeof(failure), "%s: gfn %#llx got %#llx want %#llx", what,
		 (unsigned long long)gfn, (unsigned long long)got, (unsigned long long)want);
}

static kvm_pfn_t host_pfn(uint64_t page)
{
	uint32_t g = __atomic_load_n(&gen[page], __ATOMIC_ACQUIRE);

	return ((HVA_BASE >> 12) + page) ^ ((uint64_t)(g & 0xff) << 24);
}

static int host_gfn_to_pfn(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, bool write,
			   struct s2_pfn_info *out)
{
	struct s2_hosted *h = ctx;
	uint64_t page = (slot->userspace_addr - HVA_BASE) / 4096 + (gfn - slot->base_gfn);

	(void)write;
	__atomic_fetch_add(&h->pfn_lookups, 1, __ATOMIC_RELAXED);
	out->pfn = host_pfn(page);
	out->writable = true;
	out->host_level = host_level;
	out->memtype = S2_MT_WB;
	return 0;
}

static uint64_t rnd_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Mapped gfn must map @page's current pfn; unmapped is fine. */
static void check_gfn(gfn_t gfn, const char *what)
{
	struct s2_mapping m;
	uint64_t page = gfn - BASE_GFN;

	if (kvm_mmu_lookup(T.kvm, gfn << 12, &m)) {
		fail_once("lookup failed", gfn, 0, 0);
		return;
	}
	if (m.present && m.hpa >> 12 != host_pfn(page))
		fail_once(what, gfn, m.hpa >> 12, host_pfn(page));
}

static void *vcpu_thread(void *arg)
{
	struct kvm_vcpu *vcpu = arg;
	uint64_t s = 0x9e3779b97f4a7c15ull * (kvm_vcpu_id(vcpu) + 1);

	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		uint64_t r = rnd_next(&s);
		gfn_t gfn = BASE_GFN + r % NPAGES;
		unsigned acc = (r >> 20) & 1 ? S2_ACC_WRITE : S2_ACC_READ;
		int ret = kvm_tdp_page_fault(vcpu, gfn << 12, acc);

		if (ret != RET_PF_FIXED && ret != RET_PF_SPURIOUS && ret != RET_PF_RETRY)
			fail_once("fault returned", gfn, (uint64_t)(int64_t)ret, 0);
		if (!(__atomic_fetch_add(&nfaults, 1, __ATOMIC_RELAXED) & 63))
			t_yield(); /* few CPUs: let the host thread run */
	}
	return NULL;
}

/* The host: move pages (start, new pfn, end) and check around it. */
static void *host_thread(void *arg)
{
	uint64_t s = 0x1234567ull, iters = (uint64_t)(uintptr_t)arg;
	uint64_t block = host_level == 2 ? 512 : 1;

	for (uint64_t it = 0; it < iters && !__atomic_load_n(&failed, __ATOMIC_RELAXED); it++) {
		uint64_t r = rnd_next(&s);
		uint64_t first = (r % NPAGES) & ~(block - 1);
		uint64_t n = block * (1 + (r >> 32) % (host_level == 2 ? 2 : 16));
		bool remap = host_level == 1 || (r >> 40) & 1;
		hva_t hs, he;

		if (first + n > NPAGES)
			n = NPAGES - first;
		if (!remap) {
			/* An invalidation that moves nothing, on any pages
			 * (partly covering huge leaves). */
			first = r % NPAGES;
			n = 1 + (r >> 48) % 8;
			if (first + n > NPAGES)
				n = NPAGES - first;
		}
		hs = HVA_BASE + first * 4096;
		he = hs + n * 4096;
		if (kvm_mmu_notifier_invalidate_range_start(T.kvm, hs, he, true))
			fail_once("start failed", first, 0, 0);
		for (uint64_t p = first; p < first + n; p++) {
			struct s2_mapping m;

			if (kvm_mmu_lookup(T.kvm, (BASE_GFN + p) << 12, &m) || m.present)
				fail_once("mapped during invalidation", BASE_GFN + p, m.hpa, 0);
		}
		if (remap)
			for (uint64_t p = first; p < first + n; p++)
				__atomic_fetch_add(&gen[p], 1, __ATOMIC_RELEASE);
		if (kvm_mmu_notifier_invalidate_range_end(T.kvm, hs, he, true))
			fail_once("end failed", first, 0, 0);
		for (uint64_t p = first; p < first + n; p++)
			check_gfn(BASE_GFN + p, "stale pfn after invalidation");
		/* Let the vcpus fault outside an invalidation for a while. */
		uint64_t f0 = __atomic_load_n(&nfaults, __ATOMIC_RELAXED);
		while (__atomic_load_n(&nfaults, __ATOMIC_RELAXED) < f0 + 256 &&
		       !__atomic_load_n(&failed, __ATOMIC_RELAXED))
			t_yield();
	}
	return NULL;
}

static void *ager_thread(void *arg)
{
	uint64_t s = 0xabcdefull;

	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		uint64_t r = rnd_next(&s);
		hva_t hs = HVA_BASE + (r % NPAGES) * 4096;
		hva_t he = hs + (1 + (r >> 32) % 256) * 4096;
		long y;

		switch ((r >> 50) % 3) {
		case 0: y = kvm_mmu_notifier_clear_young(T.kvm, hs, he); break;
		case 1: y = kvm_mmu_notifier_clear_flush_young(T.kvm, hs, he); break;
		default: y = kvm_mmu_notifier_test_young(T.kvm, hs, he); break;
		}
		if (y < 0)
			fail_once("aging failed", hs, (uint64_t)y, 0);
		t_yield();
	}
	return NULL;
}

static void *attr_thread(void *arg)
{
	uint64_t s = 0x55aa55aaull;

	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		uint64_t r = rnd_next(&s);
		gfn_t a = BASE_GFN + r % NPAGES, b = a + 1 + (r >> 32) % 64;
		uint64_t v = (r >> 60) & 1 ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;

		if (kvm_vm_set_mem_attributes(T.kvm, a, b, v))
			fail_once("set_mem_attributes failed", a, 0, 0);
		else if (kvm_get_memory_attributes(T.kvm, a) != v)
			fail_once("attributes read back", a, kvm_get_memory_attributes(T.kvm, a),
				  v);
		t_yield();
	}
	return NULL;
}

static int count_leaf(void *arg, gfn_t gfn, const struct s2_mapping *m)
{
	uint64_t *n = arg;

	*n += m->size >> 12;
	(void)gfn;
	return 0;
}

static void run_one(enum s2_fmt_id fmt, unsigned flags_off, int level, uint64_t iters)
{
	struct kvm_vm_params p = t_default_params(fmt);
	struct kvm_vcpu *vcpus[NVCPUS];
	pthread_t vt[NVCPUS], ht, at, tt;

	p.fmt_flags &= ~flags_off;
	memset(gen, 0, sizeof(gen));
	host_level = level;
	stop = 0;
	failed = 0;
	nfaults = 0;
	t_vm_init(&T, fmt, &p);
	T.h.ops.gfn_to_pfn = host_gfn_to_pfn;
	t_slot(&T, 0, BASE_GFN, NPAGES, HVA_BASE, 0);
	vcpus[0] = T.vcpu;
	for (unsigned i = 1; i < NVCPUS; i++)
		assert_int_equal(kvm_vcpu_create(T.kvm, i, &vcpus[i]), 0);

	for (unsigned i = 0; i < NVCPUS; i++)
		assert_int_equal(pthread_create(&vt[i], NULL, vcpu_thread, vcpus[i]), 0);
	assert_int_equal(pthread_create(&at, NULL, ager_thread, NULL), 0);
	assert_int_equal(pthread_create(&tt, NULL, attr_thread, NULL), 0);
	assert_int_equal(pthread_create(&ht, NULL, host_thread, (void *)(uintptr_t)iters), 0);
	pthread_join(ht, NULL);
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < NVCPUS; i++)
		pthread_join(vt[i], NULL);
	pthread_join(at, NULL);
	pthread_join(tt, NULL);
	if (failed)
		fail_msg("[%s flags-off %#x level %d] %s", s2_fmt_name(fmt), flags_off, level,
			 failure);

	/* Quiescent: every mapping is current, per the reference walker. */
	for (uint64_t pg = 0; pg < NPAGES; pg++) {
		struct ref_xlate x;
		gpa_t gpa = (BASE_GFN + pg) << 12;

		if (ref_walk_kvm(T.kvm, gpa, &x) == 0 && x.hpa >> 12 != host_pfn(pg))
			fail_msg("[%s] gfn %#llx maps pfn %#llx, host has %#llx", s2_fmt_name(fmt),
				 (unsigned long long)(BASE_GFN + pg),
				 (unsigned long long)(x.hpa >> 12),
				 (unsigned long long)host_pfn(pg));
	}
	struct kvm_mmu_stats st = t_stats(T.kvm);
	uint64_t mapped = 0;

	if (getenv("S2_TEST_VERBOSE"))
		printf("[%s flags-off %#x level %d] faults %llu fixed %llu retry %llu flushes %llu\n",
		       s2_fmt_name(fmt), flags_off, level, (unsigned long long)st.faults,
		       (unsigned long long)st.faults_fixed, (unsigned long long)st.faults_retry,
		       (unsigned long long)(st.flushes + st.flushes_range));

	assert_int_equal(
		kvm_mmu_for_each_leaf(T.kvm, BASE_GFN, BASE_GFN + NPAGES, count_leaf, &mapped), 0);
	assert_true(st.cur_leaves[1] + 512 * st.cur_leaves[2] >= mapped);
	assert_int_equal(kvm_mmu_invalidate_in_progress(T.kvm), 0);
	/* Leaf counters survived the races: a zap of everything empties them. */
	assert_int_equal(kvm_mmu_zap_all(T.kvm), (long)(st.cur_leaves[1] + st.cur_leaves[2]));
	st = t_stats(T.kvm);
	for (int l = 1; l <= 3; l++)
		assert_int_equal(st.cur_leaves[l], 0);
	assert_int_equal(st.refused_changes, 0);
	assert_false(kvm_is_bugged(T.kvm));
	t_vm_fini(&T);
}

/* Every format with Accessed bits, 4 KiB host pages. */
static void test_invalidate_vs_faults(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(FMTS) / sizeof(FMTS[0]); i++)
		if (s2_fmt_supported(FMTS[i]))
			run_one(FMTS[i], 0, 1, 120);
}

/* 2 MiB host pages: huge leaves, partly covered invalidations. */
static void test_invalidate_vs_faults_huge(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(FMTS) / sizeof(FMTS[0]); i++)
		if (s2_fmt_supported(FMTS[i]))
			run_one(FMTS[i], 0, 2, 60);
}

/* Without Accessed bits: EPT's access tracking and arm64 without hardware
 * AF updates (faults set Accessed), racing with zaps and restores. */
static void test_invalidate_vs_faults_no_ad(void **state)
{
	(void)state;
	if (s2_fmt_supported(S2_FMT_X86_EPT)) {
		run_one(S2_FMT_X86_EPT, S2_FMTF_AD, 1, 120);
		run_one(S2_FMT_X86_EPT, S2_FMTF_AD, 2, 60);
	}
	if (s2_fmt_supported(S2_FMT_ARM64_S2))
		run_one(S2_FMT_ARM64_S2, S2_FMTF_AD, 1, 120);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_invalidate_vs_faults),
		cmocka_unit_test(test_invalidate_vs_faults_huge),
		cmocka_unit_test(test_invalidate_vs_faults_no_ad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
