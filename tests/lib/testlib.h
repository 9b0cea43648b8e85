/* SPDX-License-Identifier: MIT */
/*
 * Shared test scaffolding: a VM in the hosted environment for any format, and
 * ref_walk_kvm(), which walks a VM's tables with the independent reference
 * walker of its format, starting from the architectural register value the
 * library built (EPTP, VTCR/VTTBR, hgatp, nCR3), never from the library's
 * own decoders.
 */
#ifndef S2MMU_TESTS_TESTLIB_H
#define S2MMU_TESTS_TESTLIB_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <sched.h>
#include <time.h>

#include "s2mmu/config.h"
#include "s2mmu/env-hosted.h"
#include "s2mmu/s2mmu.h"
#include "tests/ref/ref.h"

/*
 * A spin-wait's pause in the multithreaded tests: sched_yield(), and every
 * eighth call on a thread a 20 us sleep. make check runs on two CPUs with
 * more busy threads than that; a waiter that only yields stays runnable
 * and can keep the thread it waits for off a CPU for whole time slices
 * (the same test took from 1 to 28 s under TSan). The sleep takes the
 * waiter off the run queue. Interleavings stay as varied: the sleeps only
 * come in waits that are already spinning.
 */
static inline void t_yield(void)
{
	static _Thread_local unsigned n;

	if (++n % 8)
		sched_yield();
	else
		nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
}

/* Monotonic nanoseconds: for capping a stress loop's time, never for
 * asserting on it (speed is measured by make bench). */
static inline uint64_t t_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Whether @n bytes at @p are all zero (a page an allocator hands out). */
static inline bool t_all_zero(const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		if (c[i])
			return false;
	return true;
}

#if !S2_ENABLED(CONFIG_S2_FMT_X86_EPT)
/* A library without EPT has no PML entry point; the generic tests' PML
 * cases skip on every other format and their bad-input checks get what a
 * format without PML answers. */
#define kvm_flush_pml_buffer t_no_pml_buffer
static inline long t_no_pml_buffer(struct kvm_vcpu *vcpu, const uint64_t *gpas, unsigned n)
{
	(void)vcpu;
	(void)gpas;
	(void)n;
	return -EINVAL;
}
#endif

struct tvm {
	struct s2_hosted h;
	struct kvm *kvm;
	struct kvm_vcpu *vcpu;
	enum s2_fmt_id fmt;
	int trace_fd; /* t_trace_record(): the trace of this VM, or -1 (or 0) */
};

/*
 * Failing cases as traces (docs/testing.md). After t_trace_record(true),
 * t_vm_init() turns the library's call trace on (CONFIG_S2_TRACE builds;
 * a no-op otherwise) into a temporary file, t->trace_fd. A test that finds
 * a wrong state writes what it expected with t_trace_line() (e.g.
 * "expect_map gpa=A hpa=H", which s2mmu replay checks) and, when the test
 * fails, t_trace_save() keeps the file as $S2_TRACE_DIR/NAME.trace (default
 * the current directory) and prints its path: `s2mmu replay PATH`
 * reproduces the case. t_vm_fini() drops the trace of a VM that passed.
 */
void t_trace_record(bool on);
void t_trace_line(struct tvm *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Keep the trace (if any) as NAME.trace; returns true when one was kept. */
bool t_trace_save(struct tvm *t, const char *name);

/* Parameters a test VM of @fmt uses by default: 4 levels where the format
 * has them, 4K granule, hardware A/D where the format has it. */
struct kvm_vm_params t_default_params(enum s2_fmt_id fmt);
/*
 * The first format this build has, EPT first: for tests of code that is the
 * same on every format (memslots, vcpu requests), which a one-format build
 * must still run. Fails the test when the build has none.
 */
enum s2_fmt_id t_any_fmt(void);
/* Create a VM (and vcpu 0) of @fmt with @p (NULL: defaults) into @t. */
void t_vm_init(struct tvm *t, enum s2_fmt_id fmt, const struct kvm_vm_params *p);
/*
 * Make the env's kick end guest mode at once (kvm_vcpu_exit_guest), as an
 * IPI forcing a VM exit would, still counted in t->h.kicks: for tests that
 * put a vcpu in guest mode and flush from the same thread, where a flush
 * would otherwise wait for that vcpu's exit forever.
 */
void t_kick_exits(struct tvm *t);
/* Destroy it and assert that every table page and metadata block is back. */
void t_vm_fini(struct tvm *t);

/* Add slot @id: [gfn, gfn+npages) backed at @hva, with @flags. */
void t_slot(struct tvm *t, unsigned id, gfn_t gfn, uint64_t npages, hva_t hva, unsigned flags);

/* Walk @gpa with the reference walker of the VM's format. Returns fault. */
int ref_walk_kvm(struct kvm *kvm, gpa_t gpa, struct ref_xlate *out);

/* Assert that @gpa translates, per the reference walker, to @hpa with a leaf
 * of @level and at least @perm. */
void t_assert_maps(struct kvm *kvm, gpa_t gpa, hpa_t hpa, int level, unsigned perm);
/* Assert that the reference walker finds no translation for @gpa. */
void t_assert_unmapped(struct kvm *kvm, gpa_t gpa);

/* Stats snapshot shorthand. */
struct kvm_mmu_stats t_stats(struct kvm *kvm);

/* Hash of every table page reachable from the root, for "unchanged" checks. */
uint64_t t_tables_hash(struct kvm *kvm);

#endif
