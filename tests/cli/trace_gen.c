// SPDX-License-Identifier: MIT
/*
 * trace_gen FMT SEED CALLS PREFIX: a hosted run of random library calls with
 * the call trace on (CONFIG_S2_TRACE, env.trace), for tests/cli/trace.sh.
 * Writes PREFIX.trace (the library's own trace lines, nothing added by this
 * program but the `host` line that names the simulated host), PREFIX.img
 * (the table pages: they come from one arena, physical address = virtual
 * address, as in s2mmu replay) and prints on stdout the dump arguments
 * (format, root, image base, gpa width) and the statistics line, which
 * `s2mmu dump` and `s2mmu replay --dump` must reproduce from the trace.
 * Exit 0, 1 when the build has no trace (CONFIG_S2_TRACE off), 2 usage.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "s2mmu/config.h"
#include "s2mmu/env-hosted.h"
#include "s2mmu/errno.h"
#include "s2mmu/s2mmu.h"

#define ARENA_MIB 64

static uint8_t *arena;
static size_t arena_used;
static void *arena_free_list[9];
/* Pages are freed from the env's RCU callback thread too. */
static pthread_mutex_t arena_lock = PTHREAD_MUTEX_INITIALIZER;

static int size_class(size_t bytes)
{
	for (int c = 0; c < 9; c++)
		if (bytes == (size_t)4096 << c)
			return c;
	return -1;
}

/* The same arena as s2mmu replay's: first-fit bump with per-size free lists. */
static void *a_alloc(void *ctx, size_t bytes, hpa_t *pa)
{
	int c = size_class(bytes);
	uint8_t *p = NULL;

	(void)ctx;
	if (c < 0)
		return NULL;
	pthread_mutex_lock(&arena_lock);
	if (arena_free_list[c]) {
		p = arena_free_list[c];
		memcpy(&arena_free_list[c], p, sizeof(void *));
	} else {
		size_t at = (arena_used + bytes - 1) & ~(bytes - 1);

		if (at + bytes <= (size_t)ARENA_MIB << 20) {
			p = arena + at;
			arena_used = at + bytes;
		}
	}
	pthread_mutex_unlock(&arena_lock);
	if (!p)
		return NULL;
	memset(p, 0, bytes);
	*pa = (hpa_t)(uintptr_t)p;
	return p;
}

static void a_free(void *ctx, void *va, hpa_t pa, size_t bytes)
{
	int c = size_class(bytes);

	(void)ctx;
	(void)pa;
	if (c < 0)
		return;
	memset(va, 0, bytes);
	pthread_mutex_lock(&arena_lock);
	memcpy(va, &arena_free_list[c], sizeof(void *));
	arena_free_list[c] = va;
	pthread_mutex_unlock(&arena_lock);
}

static uint64_t rng;

static uint64_t rnd(uint64_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return n ? rng % n : 0;
}

struct slot {
	unsigned id;
	gfn_t gfn;
	uint64_t npages;
	hva_t hva;
	unsigned flags;
};

int main(int argc, char **argv)
{
	static struct s2_hosted h;
	struct s2_env_ops ops;
	struct kvm_vm_params p = { 0 };
	struct kvm *kvm;
	struct kvm_vcpu *vcpu[2];
	/* 1 GiB-aligned hvas and gfns: every leaf size can be used. */
	struct slot slots[3] = {
		{ 0, 0x40000, 0x40000, 0x7f0000000000, 0 },
		{ 1, 0x100000, 0x800, 0x7f4000000000, 0 },
		{ 2, 0x200000, 0x200, 0x7f8000000000, KVM_MEM_READONLY },
	};
	static uint64_t dbm[0x40000 / 64 + 1];
	char path[4096], line[320];
	unsigned long calls;
	const char *fmt;
	uint64_t regs_root;
	int fd, r;
	FILE *f;

	if (argc != 5) {
		fprintf(stderr, "usage: trace_gen FMT SEED CALLS PREFIX\n");
		return 2;
	}
	if (!S2_ENABLED(CONFIG_S2_TRACE)) {
		fprintf(stderr, "trace_gen: this build has no call trace (CONFIG_S2_TRACE)\n");
		return 1;
	}
	fmt = argv[1];
	rng = strtoull(argv[2], NULL, 0) * 0x9e3779b97f4a7c15ull | 1;
	calls = strtoul(argv[3], NULL, 0);
	arena = mmap(NULL, ((size_t)ARENA_MIB << 20) + (1u << 20), PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (arena == MAP_FAILED)
		return 3;
	arena = (uint8_t *)(((uintptr_t)arena + (1u << 20) - 1) & ~(uintptr_t)((1u << 20) - 1));

	s2_hosted_init(&h);
	h.quiet = true;
	ops = *h.env.ops;
	ops.alloc_table = a_alloc;
	ops.free_table = a_free;
	ops.phys_to_virt = NULL;
	h.env.ops = &ops;
	h.env.virt_offset = 0;
	snprintf(path, sizeof(path), "%s.trace", argv[4]);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return 3;
	/* The simulated host, as replay's default: 1 GiB host mappings. */
	dprintf(fd, "# s2mmu trace 1, written by the library (trace_gen %s %s %s)\nhost level=3\n",
		argv[1], argv[2], argv[3]);
	h.trace_fd = fd;
	h.env.trace = true;

	p.env = &h.env;
	p.gpa_bits = 48;
	p.max_vcpus = 2;
	if (!strcmp(fmt, "x86-ept")) {
		p.fmt = S2_FMT_X86_EPT;
		p.fmt_flags = S2_FMTF_AD;
	} else if (!strcmp(fmt, "x86-npt")) {
		p.fmt = S2_FMT_X86_NPT;
	} else if (!strcmp(fmt, "arm64-s2")) {
		p.fmt = S2_FMT_ARM64_S2;
		p.gpa_bits = 40;
		p.fmt_flags = S2_FMTF_FWB;
	} else if (!strcmp(fmt, "riscv-g")) {
		p.fmt = S2_FMT_RISCV_G;
		p.gpa_bits = 41;
	} else {
		fprintf(stderr, "trace_gen: unknown format %s\n", fmt);
		return 2;
	}
	if (kvm_create_vm(&p, &kvm) || kvm_vcpu_create(kvm, 0, &vcpu[0]) ||
	    kvm_vcpu_create(kvm, 1, &vcpu[1]) ||
	    kvm_dirty_log_set_caps(kvm, KVM_DIRTY_LOG_MANUAL_PROTECT | KVM_DIRTY_LOG_WRPROTECT))
		return 4;
	for (int i = 0; i < 3; i++) {
		struct kvm_memory_slot s = { .id = slots[i].id,
					     .base_gfn = slots[i].gfn,
					     .npages = slots[i].npages,
					     .userspace_addr = slots[i].hva,
					     .flags = slots[i].flags };
		if (kvm_set_memslot(kvm, &s))
			return 4;
	}

	/* Random calls; every result, refusals included, is in the trace. */
	for (unsigned long n = 0; n < calls; n++) {
		struct slot *s = &slots[rnd(3)];
		gfn_t g = s->gfn + rnd(s->npages);
		uint64_t bm[8] = { 0 };
		unsigned k = (unsigned)rnd(100);

		if (k < 55) {
			static const unsigned acc[] = { S2_ACC_READ, S2_ACC_WRITE,
							S2_ACC_READ | S2_ACC_WRITE,
							S2_ACC_READ | S2_ACC_EXEC };
			gpa_t gpa = (g << 12) | rnd(4096);

			if (!rnd(20))
				gpa = (0x300000ull + rnd(64)) << 12; /* no memslot */
			r = kvm_tdp_page_fault(vcpu[rnd(2)], gpa, acc[rnd(4)]);
		} else if (k < 60) {
			r = (int)kvm_zap_gfn_range(kvm, g, g + 1 + rnd(1024));
		} else if (k < 64) {
			hva_t a = s->hva + (rnd(s->npages) << 12), e = a + ((1 + rnd(600)) << 12);

			r = kvm_mmu_notifier_invalidate_range_start(kvm, a, e, true);
			r = kvm_mmu_notifier_invalidate_range_end(kvm, a, e, true);
		} else if (k < 68) {
			hva_t a = s->hva + (rnd(s->npages) << 12), e = a + ((1 + rnd(600)) << 12);

			r = rnd(2) ? (int)kvm_mmu_notifier_clear_young(kvm, a, e) :
				     kvm_mmu_notifier_test_young(kvm, a, e);
		} else if (k < 72) {
			/* Logging on or off (never on the read-only slot). */
			if (s->flags & KVM_MEM_READONLY)
				continue;
			s->flags ^= KVM_MEM_LOG_DIRTY_PAGES;
			r = kvm_set_memslot_flags(kvm, s->id, s->flags);
		} else if (k < 76) {
			r = (int)kvm_get_dirty_log(kvm, s->id, dbm);
		} else if (k < 80) {
			uint64_t first = rnd(s->npages / 64) * 64;

			for (int w = 0; w < 8; w++)
				bm[w] = rnd(UINT64_MAX);
			r = (int)kvm_clear_dirty_log(kvm, s->id, first, 64 * (1 + rnd(2)), bm);
		} else if (k < 83) {
			r = kvm_mark_page_dirty(kvm, g);
		} else if (k < 86) {
			r = rnd(2) ? kvm_write_track_add_gfn(kvm, g) :
				     kvm_write_track_remove_gfn(kvm, g);
		} else if (k < 89) {
			r = (int)kvm_mmu_wrprotect_range(kvm, (g & ~511ull) << 12, 2ull << 20);
		} else if (k < 92) {
			/* Move slot 1 between two places (its leaves go). */
			if (s->id != 1)
				continue;
			s->gfn = s->gfn == 0x100000 ? 0x180000 : 0x100000;
			r = kvm_move_memslot(kvm, 1, s->gfn);
		} else if (k < 94) {
			/* The pages faults map there too (pfn = hva >> 12): a
			 * range mapping to other pages would break rule 1. */
			uint64_t off = rnd(slots[0].npages / 512) * 512;

			r = kvm_mmu_map_range(vcpu[0], (slots[0].gfn + off) << 12,
					      slots[0].hva + (off << 12), 2u << 20,
					      S2_PROT_R | S2_PROT_W, S2_MT_WB);
		} else if (k < 95) {
			r = (int)kvm_mmu_zap_all(kvm);
		} else {
			r = kvm_tdp_page_fault(vcpu[rnd(2)], g << 12, S2_ACC_READ);
		}
		(void)r;
	}
	h.env.trace = false;
	close(fd);

	snprintf(path, sizeof(path), "%s.img", argv[4]);
	f = fopen(path, "wb");
	if (!f || fwrite(arena, 1, arena_used, f) != arena_used || fclose(f))
		return 3;
	regs_root = kvm_mmu_root_hpa(kvm);
	kvm_format_stats(kvm, line, sizeof(line));
	printf("fmt=%s root=%#" PRIx64 " base=%#" PRIx64 " gpa_bits=%u levels=%u\n", fmt, regs_root,
	       (uint64_t)(uintptr_t)arena, kvm_gpa_bits(kvm), kvm_mmu_levels(kvm));
	printf("stats: %s\n", line);
	kvm_destroy_vm(kvm);
	s2_hosted_quiesce(&h);
	return 0;
}
