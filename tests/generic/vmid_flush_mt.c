// SPDX-License-Identifier: MIT
/*
 * VMs on the id allocator (kvm_vm_params.vmid_alloc): the library's own
 * flushes and the register values it gives must use each VM's current id,
 * through rollovers, once per format.
 *
 * Threads stand in for CPUs. Each CPU has a TLB model: entries tagged with
 * the hardware id they were filled under (the VMID in the VTTBR or hgatp
 * the library gave for the entry, the VPID or ASID elsewhere), with the VM
 * that filled them. A vcpu of a random VM enters on the CPU through
 * kvm_vcpu_entry_actions() and kvm_vcpu_vmid_update(), does its flush
 * actions on the id it loaded, and makes guest accesses: a hit uses the
 * entry without looking at the tables; a miss leaves the guest, faults if
 * needed and fills the entry from the tables (dropped if a flush reached
 * the CPU meanwhile, as a walk cannot outlive a TLBI). The env's
 * tlb_flush_vm / tlb_flush_range hooks are broadcast invalidations by the
 * id kvm_vmid() names (an SBI remote HFENCE.GVMA; arm64's TLBI ...IS does
 * the same in a freestanding build), so ranged flushes send no requests;
 * the allocator's vmid_flush_local empties the CPU's TLB.
 *
 * The main thread moves pages of random VMs to new host pages through the
 * MMU notifier and then marks the old pages freed. Failures: a hit on an
 * entry filled by another VM (two VMs on one id without a flush between),
 * a hit on a freed page (a flush that missed the VM's id: stale
 * translation after the notifier returned).
 *
 * With 9 VMs on 7 ids, nearly every visit of a VM rolls over.
 *
 * Mutations run (each made the arm64 and RISC-V runs fail, then was
 * reverted): kvm_vmid() returning the creation-time vmid (stale hits:
 * the flush missed the allocator's id); kvm_vcpu_vmid_update() giving the
 * register value with the creation-time vmid (s2_root_reg() on cfg.vmid:
 * hits on other VMs' entries).
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "core/kvm_internal.h"
#include "s2mmu/vmid.h"
#include "tests/lib/testlib.h"

#ifndef TEST_FMT
#error "build with -DTEST_FMT=S2_FMT_..."
#endif

#define NCPUS 3
#define NVMS 9
#define NPAGES 16
#define BASE_GFN 0x100
#define TLB_ENTRIES 48
#define MAX_PFNS (1u << 16)

struct tlb_entry {
	bool valid;
	uint32_t id;
	gfn_t gfn;
	kvm_pfn_t pfn;
	unsigned vm;
};

struct model_cpu {
	pthread_mutex_t lock;
	uint64_t epoch; /* bumped by every flush that reaches this CPU */
	struct tlb_entry e[TLB_ENTRIES];
	unsigned next;
};

struct vm {
	struct kvm *kvm;
	struct kvm_vcpu *vcpu[NCPUS];
	struct s2_vmid vmid;
	kvm_pfn_t backing[NPAGES]; /* atomics */
};

static struct {
	struct s2_hosted h;
	struct s2_vmid_alloc alloc;
	struct s2_vmid_cpu cpus[NCPUS];
	uint64_t map[S2_VMID_MAP_WORDS(16)];
	struct model_cpu cpu[NCPUS];
	struct vm vm[NVMS];
	uint8_t freed[MAX_PFNS]; /* atomics */
	kvm_pfn_t next_pfn;
	bool stop;
	uint64_t hits, fills, conflicts, stale, id_flushes, moves;
} S;

static hva_t vm_hva(unsigned v)
{
	return (hva_t)(v + 1) << 32;
}

static int gfn_to_pfn(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, bool write,
		      struct s2_pfn_info *out)
{
	unsigned v = (unsigned)(slot->userspace_addr >> 32) - 1;

	(void)ctx;
	(void)write;
	*out = (struct s2_pfn_info){ .pfn = __atomic_load_n(&S.vm[v].backing[gfn - slot->base_gfn],
							    __ATOMIC_ACQUIRE),
				     .writable = true,
				     .host_level = 1,
				     .memtype = S2_MT_WB };
	return 0;
}

/* Drop @cpu's entries with @id (every entry for id ~0). Lock held. */
static void drop_locked(struct model_cpu *m, uint32_t id)
{
	for (unsigned i = 0; i < TLB_ENTRIES; i++)
		if (id == ~0u || m->e[i].id == id)
			m->e[i].valid = false;
	m->epoch++;
}

static void drop(unsigned cpu, uint32_t id)
{
	pthread_mutex_lock(&S.cpu[cpu].lock);
	drop_locked(&S.cpu[cpu], id);
	pthread_mutex_unlock(&S.cpu[cpu].lock);
}

/* A broadcast invalidation by the id the library names for @kvm. */
static void flush_by_id(struct kvm *kvm)
{
	uint32_t id = kvm_vmid(kvm);

	for (unsigned c = 0; c < NCPUS; c++)
		drop(c, id);
	__atomic_fetch_add(&S.id_flushes, 1, __ATOMIC_RELAXED);
}

static void hook_flush_vm(void *ctx, struct kvm *kvm)
{
	(void)ctx;
	flush_by_id(kvm);
}

static void hook_flush_range(void *ctx, struct kvm *kvm, gpa_t gpa, uint64_t size)
{
	(void)ctx;
	(void)gpa;
	(void)size;
	flush_by_id(kvm);
}

/* The allocator's local flush: every id, on @cpu (its lock held). */
static void hook_vmid_flush_local(void *ctx, unsigned cpu)
{
	(void)ctx;
	drop(cpu, ~0u);
}

/* The id the loaded register value carries (the VPID or ASID on x86). */
static uint32_t reg_id(uint64_t reg, int id)
{
	switch (TEST_FMT) {
	case S2_FMT_ARM64_S2: return (uint32_t)(reg >> 48) & 0xff;  /* VTTBR.VMID */
	case S2_FMT_RISCV_G: return (uint32_t)(reg >> 44) & 0x3fff; /* hgatp.VMID */
	default: return (uint32_t)id;
	}
}

static void setup(void)
{
	memset(&S, 0, sizeof(S));
	s2_hosted_init(&S.h);
	S.h.quiet = true;
	S.h.ops.gfn_to_pfn = gfn_to_pfn;
	S.h.ops.tlb_flush_vm = hook_flush_vm;
	S.h.ops.tlb_flush_range = hook_flush_range;
	S.h.ops.tlb_hooks_broadcast = true;
	S.h.ops.vmid_flush_local = hook_vmid_flush_local;
	assert_int_equal(s2_vmid_alloc_init(&S.alloc, &S.h.env, 3, 1, NCPUS, S.cpus, S.map), 0);
	for (unsigned c = 0; c < NCPUS; c++)
		pthread_mutex_init(&S.cpu[c].lock, NULL);
	S.next_pfn = 0x1000;
	for (unsigned v = 0; v < NVMS; v++) {
		struct kvm_vm_params p = t_default_params(TEST_FMT);
		struct kvm_memory_slot s = {
			.id = 0, .base_gfn = BASE_GFN, .npages = NPAGES, .userspace_addr = vm_hva(v)
		};

		s2_vmid_init(&S.vm[v].vmid, &S.alloc);
		p.env = &S.h.env;
		p.max_vcpus = NCPUS;
		p.vmid_alloc = &S.vm[v].vmid;
		for (unsigned i = 0; i < NPAGES; i++)
			S.vm[v].backing[i] = S.next_pfn++;
		assert_int_equal(kvm_create_vm(&p, &S.vm[v].kvm), 0);
		for (unsigned c = 0; c < NCPUS; c++)
			assert_int_equal(kvm_vcpu_create(S.vm[v].kvm, c, &S.vm[v].vcpu[c]), 0);
		assert_int_equal(kvm_set_memslot(S.vm[v].kvm, &s), 0);
	}
}

static void teardown(void)
{
	for (unsigned v = 0; v < NVMS; v++)
		kvm_destroy_vm(S.vm[v].kvm);
	s2_hosted_quiesce(&S.h);
	assert_int_equal(s2_hosted_pages_in_use(&S.h), 0);
	assert_int_equal(s2_hosted_meta_in_use(&S.h), 0);
	for (unsigned c = 0; c < NCPUS; c++)
		pthread_mutex_destroy(&S.cpu[c].lock);
}

/* Fill @cpu's entry for @gfn of VM @v under @id (outside guest mode). */
static void fill(unsigned cpu, unsigned v, struct kvm_vcpu *vcpu, uint32_t id, gfn_t gfn)
{
	struct model_cpu *m = &S.cpu[cpu];
	struct s2_mapping map;
	uint64_t epoch;

	pthread_mutex_lock(&m->lock);
	epoch = m->epoch;
	pthread_mutex_unlock(&m->lock);
	assert_int_equal(kvm_mmu_lookup(S.vm[v].kvm, gfn_to_gpa(gfn), &map), 0);
	if (!map.present) {
		int r = kvm_tdp_page_fault(vcpu, gfn_to_gpa(gfn), S2_ACC_READ);

		assert_true(r >= 0);
		assert_int_equal(kvm_mmu_lookup(S.vm[v].kvm, gfn_to_gpa(gfn), &map), 0);
		if (!map.present)
			return;
	}
	pthread_mutex_lock(&m->lock);
	if (m->epoch == epoch) {
		struct tlb_entry *e = &m->e[m->next++ % TLB_ENTRIES];

		*e = (struct tlb_entry){ true, id, gfn, map.hpa >> 12, v };
		__atomic_fetch_add(&S.fills, 1, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&m->lock);
}

/* One entry of a vcpu of VM @v on @cpu and up to 8 accesses. */
static void visit(unsigned cpu, unsigned v, unsigned *seed)
{
	struct kvm_vcpu *vcpu = S.vm[v].vcpu[cpu];
	struct model_cpu *m = &S.cpu[cpu];

	for (unsigned n = 0; n < 8;) {
		struct kvm_entry_actions acts;
		uint64_t reg;
		uint32_t id;
		int r;
		gfn_t gfn = 0;
		bool miss = false;

		assert_int_equal(kvm_vcpu_entry_actions(vcpu, &acts), 0);
		r = kvm_vcpu_vmid_update(vcpu, cpu, &reg);
		assert_true(r >= 1 && r < 8);
		id = reg_id(reg, r);
		for (unsigned a = 0; a < acts.nr; a++)
			if (acts.a[a].kind == KVM_ENTRY_FLUSH_CURRENT ||
			    acts.a[a].kind == KVM_ENTRY_FLUSH_ALL)
				drop(cpu, id);
		if (!kvm_vcpu_enter_guest(vcpu))
			continue;
		for (; n < 8 && !miss; n++) {
			gfn = BASE_GFN + (unsigned)rand_r(seed) % NPAGES;
			miss = true;
			pthread_mutex_lock(&m->lock);
			for (unsigned i = 0; i < TLB_ENTRIES; i++) {
				struct tlb_entry *e = &m->e[i];

				if (!e->valid || e->id != id || e->gfn != gfn)
					continue;
				miss = false;
				__atomic_fetch_add(&S.hits, 1, __ATOMIC_RELAXED);
				if (e->vm != v)
					__atomic_fetch_add(&S.conflicts, 1, __ATOMIC_RELAXED);
				else if (__atomic_load_n(&S.freed[e->pfn % MAX_PFNS],
							 __ATOMIC_ACQUIRE))
					__atomic_fetch_add(&S.stale, 1, __ATOMIC_RELAXED);
				break;
			}
			pthread_mutex_unlock(&m->lock);
		}
		kvm_vcpu_exit_guest(vcpu);
		if (miss)
			fill(cpu, v, vcpu, id, gfn);
	}
}

static void *cpu_thread(void *arg)
{
	unsigned cpu = (unsigned)(uintptr_t)arg;
	unsigned seed = 0x9e3779b9u * (cpu + 1);

	while (!__atomic_load_n(&S.stop, __ATOMIC_ACQUIRE)) {
		unsigned r = (unsigned)rand_r(&seed);

		visit(cpu, r % NVMS, &seed);
		if (r % 7 == 0)
			assert_int_equal(s2_vmid_clear_active(&S.alloc, cpu), 0);
	}
	return NULL;
}

/* Move [i, i + n) of VM @v to new host pages, then free the old ones. */
static void move_pages(unsigned v, unsigned i, unsigned n)
{
	struct vm *vm = &S.vm[v];
	hva_t start = vm_hva(v) + ((hva_t)i << 12), end = start + ((hva_t)n << 12);
	kvm_pfn_t old[NPAGES];

	assert_int_equal(kvm_mmu_notifier_invalidate_range_start(vm->kvm, start, end, true), 0);
	for (unsigned k = 0; k < n; k++) {
		old[k] = vm->backing[i + k];
		__atomic_store_n(&vm->backing[i + k], S.next_pfn++, __ATOMIC_RELEASE);
	}
	assert_int_equal(kvm_mmu_notifier_invalidate_range_end(vm->kvm, start, end, true), 0);
	for (unsigned k = 0; k < n; k++)
		__atomic_store_n(&S.freed[old[k] % MAX_PFNS], 1, __ATOMIC_RELEASE);
	S.moves++;
}

static void test_flush_current_id(void **state)
{
	pthread_t t[NCPUS];
	unsigned seed = 12345;

	(void)state;
	setup();
	for (unsigned c = 0; c < NCPUS; c++)
		assert_int_equal(pthread_create(&t[c], NULL, cpu_thread, (void *)(uintptr_t)c), 0);
	for (unsigned k = 0; k < 600 && S.next_pfn < MAX_PFNS - NPAGES; k++) {
		unsigned v = (unsigned)rand_r(&seed) % NVMS, i = (unsigned)rand_r(&seed) % NPAGES;
		unsigned n = 1 + (unsigned)rand_r(&seed) % 4;

		move_pages(v, i, i + n <= NPAGES ? n : NPAGES - i);
		if (k % 8 == 0)
			t_yield();
	}
	/* The CPU threads' progress, not the moves' count, says when the run
	 * has seen enough: on a loaded machine they may have had little CPU
	 * while the moves ran (3 rollovers once at load 5). Up to 20 s. */
	for (uint64_t t0 = t_now_ns();
	     (__atomic_load_n(&S.alloc.rollovers, __ATOMIC_RELAXED) < 20 ||
	      __atomic_load_n(&S.hits, __ATOMIC_RELAXED) < 100) &&
	     t_now_ns() - t0 < 20000000000ull;)
		t_yield();
	__atomic_store_n(&S.stop, true, __ATOMIC_RELEASE);
	for (unsigned c = 0; c < NCPUS; c++)
		pthread_join(t[c], NULL);
	print_message("[%s] rollovers %llu, hits %llu, fills %llu, id flushes %llu\n",
		      s2_fmt_name(TEST_FMT), (unsigned long long)S.alloc.rollovers,
		      (unsigned long long)S.hits, (unsigned long long)S.fills,
		      (unsigned long long)S.id_flushes);
	assert_int_equal(S.conflicts, 0);
	assert_int_equal(S.stale, 0);
	for (unsigned v = 0; v < NVMS; v++)
		assert_false(kvm_is_bugged(S.vm[v].kvm));
	assert_true(S.alloc.rollovers >= 20);
	assert_true(S.hits >= 100);
	teardown();
}

/* Bad parameters: a vmid beside the allocator, an allocator wider than the
 * format's id, VPID/ASID 0 handed out on x86; kvm_vcpu_vmid_update() on a
 * VM without allocator. */
static void test_bad_params(void **state)
{
	struct s2_vmid_alloc wide;
	struct s2_vmid_cpu cpus[NCPUS];
	uint64_t map[S2_VMID_MAP_WORDS(16)];
	struct s2_vmid v;
	struct kvm_vm_params p = t_default_params(TEST_FMT);
	struct kvm *kvm = NULL;
	struct tvm T;
	uint64_t reg;

	(void)state;
	setup();
	p.env = &S.h.env;
	s2_vmid_init(&v, &S.alloc);
	p.vmid_alloc = &v;
	p.vmid = 1;
	assert_int_equal(kvm_create_vm(&p, &kvm), -EINVAL);
	p.vmid = 0;
	/* 9 bits: past arm64's 8-bit VMID; 15: past RISC-V's 14; 16 with 0
	 * handed out: the host's VPID/ASID on x86. */
	assert_int_equal(s2_vmid_alloc_init(&wide, &S.h.env,
					    TEST_FMT == S2_FMT_ARM64_S2 ? 9 :
					    TEST_FMT == S2_FMT_RISCV_G	? 15 :
									  16,
					    0, NCPUS, cpus, map),
			 0);
	s2_vmid_init(&v, &wide);
	assert_int_equal(kvm_create_vm(&p, &kvm), -EINVAL);
	assert_null(kvm);
	s2_vmid_init(&v, NULL);
	assert_int_equal(kvm_create_vm(&p, &kvm), -EINVAL);
	t_vm_init(&T, TEST_FMT, NULL);
	assert_int_equal(kvm_vcpu_vmid_update(T.vcpu, 0, &reg), -EINVAL);
	assert_int_equal(kvm_vmid(T.kvm), 0);
	t_vm_fini(&T);
	assert_int_equal(kvm_vcpu_vmid_update(S.vm[0].vcpu[0], NCPUS, &reg), -EINVAL);
	assert_int_equal(kvm_vcpu_vmid_update(S.vm[0].vcpu[0], 0, NULL), -EINVAL);
	teardown();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flush_current_id),
		cmocka_unit_test(test_bad_params),
	};

	return cmocka_run_group_tests_name("vmid flush", tests, NULL, NULL);
}
