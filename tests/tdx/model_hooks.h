/* SPDX-License-Identifier: MIT */
/*
 * The single-threaded TDX tests' SEAMCALL hooks onto the TDX-module model
 * (tests/tdx/model.h). Included by test_tdx.c and test_random.c after they
 * declare the state these use: T (the test VM), M (the model), gpa_bits
 * and the counters pfn_puts, installs and installed_pages.
 */
#ifndef S2_TESTS_TDX_MODEL_HOOKS_H
#define S2_TESTS_TDX_MODEL_HOOKS_H

/* The private_pfn put hook: pages given back, in 4 KiB pages. */
static void gmem_put(void *ctx, kvm_pfn_t pfn, int level)
{
	(void)ctx;
	(void)pfn;
	pfn_puts += 1ull << (9 * (level - 1));
}

/* The model learns that a vcpu left the guest when the library's kick made
 * it exit (the env's kick ends guest mode at once: t_kick_exits). */
static void sync_vcpus(void)
{
	if (T.vcpu && M->in_guest[0] && kvm_vcpu_mode(T.vcpu) != IN_GUEST_MODE)
		tdxm_vcpu_exit(M, 0);
}
#define WRAP(name, args, call)        \
	static uint64_t w_##name args \
	{                             \
		sync_vcpus();         \
		return call;          \
	}
WRAP(track, (void *c), tdxm_track(c))
WRAP(remove, (void *c, gpa_t g, int l), tdxm_page_remove(c, g, l))
WRAP(sept_remove, (void *c, gpa_t g, int l), tdxm_sept_remove(c, g, l))
WRAP(demote, (void *c, gpa_t g, int l, hpa_t p), tdxm_page_demote(c, g, l, p))
WRAP(promote, (void *c, gpa_t g, int l), tdxm_page_promote(c, g, l))
WRAP(unblock, (void *c, gpa_t g, int l), tdxm_range_unblock(c, g, l))
#undef WRAP

static uint64_t w_aug(void *c, gpa_t g, int l, hpa_t page)
{
	uint64_t st = tdxm_page_aug(c, g, l, page);

	if (!st) {
		installs++;
		installed_pages += 1ull << (9 * (l - 1));
	}
	return st;
}

static uint64_t w_add(void *c, gpa_t g, hpa_t page, hpa_t src)
{
	uint64_t st = tdxm_page_add(c, g, page, src);

	if (!st) {
		installs++;
		installed_pages++;
	}
	return st;
}

/* The first gfn of the shared half (the shared bit, as a gfn). */
static gfn_t shared_gfn(void)
{
	return 1ull << (gpa_bits - 1 - 12);
}

#endif
