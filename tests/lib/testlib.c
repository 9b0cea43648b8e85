// SPDX-License-Identifier: MIT
#include "tests/lib/testlib.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/kvm_internal.h"
#include "s2mmu/config.h"
#if S2_ENABLED(CONFIG_S2_FMT_X86_EPT)
#include "s2mmu/x86-ept.h"
#include "tests/ref/ept_walker.h"
#endif
#if S2_ENABLED(CONFIG_S2_FMT_ARM64_S2)
#include "s2mmu/arm64-s2.h"
#include "tests/ref/arm64_walker.h"
#endif
#if S2_ENABLED(CONFIG_S2_FMT_RISCV_G)
#include "s2mmu/riscv-g.h"
#include "tests/ref/riscv_walker.h"
#endif
#if S2_ENABLED(CONFIG_S2_FMT_X86_NPT)
#include "s2mmu/x86-npt.h"
#include "tests/ref/npt_walker.h"
#define T_HAVE_NPT_WALKER 1
#endif

enum s2_fmt_id t_any_fmt(void)
{
	static const enum s2_fmt_id any[] = { S2_FMT_X86_EPT, S2_FMT_X86_NPT, S2_FMT_ARM64_S2,
					      S2_FMT_RISCV_G, S2_FMT_FAKE };

	for (unsigned i = 0; i < sizeof(any) / sizeof(any[0]); i++)
		if (s2_fmt_supported(any[i]))
			return any[i];
	fail_msg("this build has no format");
	return S2_FMT_X86_EPT;
}

struct kvm_vm_params t_default_params(enum s2_fmt_id fmt)
{
	struct kvm_vm_params p = { .fmt = fmt };

	switch (fmt) {
	case S2_FMT_X86_EPT:
		p.gpa_bits = 48;
		p.fmt_flags = S2_FMTF_AD;
		break;
	case S2_FMT_ARM64_S2:
		p.gpa_bits = 48;
		p.granule = 4096;
		p.fmt_flags = S2_FMTF_AD;
		break;
	case S2_FMT_RISCV_G:
		p.gpa_bits = 50; /* Sv48x4 */
		p.fmt_flags = S2_FMTF_AD;
		break;
	case S2_FMT_X86_NPT:
		p.gpa_bits = 48;
		p.fmt_flags = S2_FMTF_AD;
		break;
	default: p.gpa_bits = 48; break;
	}
	return p;
}

static void t_kick_exit(void *ctx, struct kvm_vcpu *vcpu)
{
	struct s2_hosted *h = ctx;

	__atomic_fetch_add(&h->kicks, 1, __ATOMIC_RELAXED);
	kvm_vcpu_exit_guest(vcpu);
}

void t_kick_exits(struct tvm *t)
{
	t->h.ops.kick = t_kick_exit;
}

static bool t_trace_on;

void t_vm_init(struct tvm *t, enum s2_fmt_id fmt, const struct kvm_vm_params *pp)
{
	struct kvm_vm_params p = pp ? *pp : t_default_params(fmt);

	memset(t, 0, sizeof(*t));
	s2_hosted_init(&t->h);
	t->h.quiet = true;
	t->fmt = fmt;
	t->trace_fd = -1;
	if (S2_ENABLED(CONFIG_S2_TRACE) && t_trace_on) {
		t->trace_fd = memfd_create("s2mmu-trace", 0);
		assert_true(t->trace_fd >= 0);
		dprintf(t->trace_fd,
			"# s2mmu trace 1: the library's calls (tests/lib t_vm_init)\n"
			"host level=%d\n",
			t->h.host_level);
		t->h.trace_fd = t->trace_fd;
		t->h.env.trace = true;
	}
	p.env = &t->h.env;
	assert_int_equal(kvm_create_vm(&p, &t->kvm), 0);
	assert_int_equal(kvm_vcpu_create(t->kvm, 0, &t->vcpu), 0);
}

void t_trace_record(bool on)
{
	t_trace_on = on;
}

void t_trace_line(struct tvm *t, const char *fmt, ...)
{
	va_list ap;

	if (t->trace_fd <= 0)
		return;
	va_start(ap, fmt);
	vdprintf(t->trace_fd, fmt, ap);
	va_end(ap);
	dprintf(t->trace_fd, "\n");
}

bool t_trace_save(struct tvm *t, const char *name)
{
	const char *dir = getenv("S2_TRACE_DIR");
	char path[4096], buf[65536];
	ssize_t n;
	int out;

	if (t->trace_fd <= 0)
		return false;
	snprintf(path, sizeof(path), "%s/%s.trace", dir && *dir ? dir : ".", name);
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (out < 0 || lseek(t->trace_fd, 0, SEEK_SET) < 0) {
		print_error("cannot write the failing case's trace %s\n", path);
		if (out >= 0)
			close(out);
		return false;
	}
	while ((n = read(t->trace_fd, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			break;
	close(out);
	print_error("the failing case as a trace: %s (s2mmu replay %s)\n", path, path);
	return true;
}

void t_vm_fini(struct tvm *t)
{
	if (t->trace_fd > 0) { /* 0: a tvm t_vm_init did not fill */
		t->h.env.trace = false;
		close(t->trace_fd);
		t->trace_fd = -1;
	}
	kvm_destroy_vm(t->kvm);
	t->kvm = NULL;
	s2_hosted_quiesce(&t->h);
	assert_int_equal(s2_hosted_pages_in_use(&t->h), 0);
	assert_int_equal(s2_hosted_meta_in_use(&t->h), 0);
}

void t_slot(struct tvm *t, unsigned id, gfn_t gfn, uint64_t npages, hva_t hva, unsigned flags)
{
	struct kvm_memory_slot s = {
		.id = id, .base_gfn = gfn, .npages = npages, .userspace_addr = hva, .flags = flags
	};

	assert_int_equal(kvm_set_memslot(t->kvm, &s), 0);
}

int ref_walk_kvm(struct kvm *kvm, gpa_t gpa, struct ref_xlate *out)
{
	uint64_t r0 = 0, r1 = 0;

	memset(out, 0, sizeof(*out));
	switch (kvm_fmt(kvm)) {
#if S2_ENABLED(CONFIG_S2_FMT_X86_EPT)
	case S2_FMT_X86_EPT:
		assert_int_equal(kvm_x86_ept_eptp(kvm, &r0), 0);
		return ref_ept_walk(r0, (kvm_fmt_cfg(kvm)->flags & S2_FMTF_MBEC) ? REF_EPT_MBEC : 0,
				    gpa, out);
#endif
#if S2_ENABLED(CONFIG_S2_FMT_ARM64_S2)
	case S2_FMT_ARM64_S2:
		assert_int_equal(kvm_arm64_vtcr(kvm, 48, &r0), 0);
		assert_int_equal(kvm_arm64_vttbr(kvm, &r1), 0);
		return ref_arm64_walk(
			r0, r1,
			((kvm_fmt_cfg(kvm)->flags & S2_FMTF_FWB) ? REF_A64_FWB : 0) |
				((kvm_fmt_cfg(kvm)->flags & S2_FMTF_XNX) ? REF_A64_XNX : 0),
			gpa, out);
#endif
#if S2_ENABLED(CONFIG_S2_FMT_RISCV_G)
	case S2_FMT_RISCV_G:
		assert_int_equal(kvm_riscv_hgatp(kvm, &r0), 0);
		return ref_riscv_walk(r0, 0, gpa, out);
#endif
#ifdef T_HAVE_NPT_WALKER
	case S2_FMT_X86_NPT:
		assert_int_equal(kvm_x86_npt_ncr3(kvm, &r0), 0);
		return ref_npt_walk(r0, kvm_mmu_levels(kvm) == 5, gpa, out);
#endif
	default:
		(void)r1;
		fail_msg("no reference walker for format %d", kvm_fmt(kvm));
		return -1;
	}
}

void t_assert_maps(struct kvm *kvm, gpa_t gpa, hpa_t hpa, int level, unsigned perm)
{
	struct ref_xlate x;

	ref_walk_kvm(kvm, gpa, &x);
	if (x.fault)
		fail_msg("[%s] gpa %#llx: reference walk fault %s at level %d",
			 s2_fmt_name(kvm_fmt(kvm)), (unsigned long long)gpa,
			 ref_fault_name(x.fault), x.level);
	if (x.hpa != hpa || x.level != level || (x.perm & perm) != perm)
		fail_msg("[%s] gpa %#llx: walker says hpa %#llx level %d perm %#x, want hpa %#llx "
			 "level %d perm >= %#x",
			 s2_fmt_name(kvm_fmt(kvm)), (unsigned long long)gpa,
			 (unsigned long long)x.hpa, x.level, x.perm, (unsigned long long)hpa, level,
			 perm);
}

void t_assert_unmapped(struct kvm *kvm, gpa_t gpa)
{
	struct ref_xlate x;

	if (!ref_walk_kvm(kvm, gpa, &x))
		fail_msg("[%s] gpa %#llx: still maps to %#llx (level %d)",
			 s2_fmt_name(kvm_fmt(kvm)), (unsigned long long)gpa,
			 (unsigned long long)x.hpa, x.level);
	/* A cached MMIO entry on EPT (W without R, docs/mmio.md) is an EPT
	 * misconfiguration, the exit kvm_handle_ept_misconfig takes. */
	if (x.fault == REF_FAULT_MISCONFIG && kvm_fmt(kvm) == S2_FMT_X86_EPT && x.level == 1 &&
	    kvm->mmio_cache)
		return;
	assert_int_equal(x.fault, REF_FAULT_NOT_PRESENT);
}

struct kvm_mmu_stats t_stats(struct kvm *kvm)
{
	struct kvm_mmu_stats s;

	assert_int_equal(kvm_get_stats(kvm, &s), 0);
	return s;
}

static uint64_t t_mix(uint64_t h, uint64_t v)
{
	return h ^ (v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2));
}

static int t_hash_leaf(void *arg, gfn_t gfn, const struct s2_mapping *m)
{
	uint64_t *h = arg;

	*h = t_mix(t_mix(*h, gfn), m->pte);
	return 0;
}

uint64_t t_tables_hash(struct kvm *kvm)
{
	const struct s2_fmt_cfg *c = kvm_fmt_cfg(kvm);
	const uint64_t *root = (const uint64_t *)(uintptr_t)kvm_mmu_root_hpa(kvm);
	uint64_t h = t_stats(kvm).cur_table_pages;

	/* Every raw root entry (table links), then every leaf with its gfn. */
	for (unsigned i = 0; i < (1u << c->root_bits); i++)
		h = t_mix(h, root[i]);
	/* Through the format's iterator directly: this must work on a bugged
	 * VM too, to show that it was left unchanged. */
	assert_int_equal(
		kvm->ops->for_each_leaf(kvm, 0, 1ull << (kvm_gpa_bits(kvm) - 12), t_hash_leaf, &h),
		0);
	return h;
}

/*
 * Under ThreadSanitizer: liburcu is not instrumented, so its internal hand-
 * overs (the call_rcu thread freeing what another thread allocated) look like
 * races. Suppress reports whose racing access comes from inside liburcu; the
 * library's own hand-over to our callbacks is annotated in env/hosted.
 */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
	return "called_from_lib:liburcu-bp.so\n"
	       "called_from_lib:liburcu-common.so\n";
}
