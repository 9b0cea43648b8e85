// SPDX-License-Identifier: MIT
/* The QEMU example hypervisors' shared harness (harness.h). */
#include "harness.h"

#include "klib.h"
#include "layout.h"
#include "s2mmu/notifier.h"
#include "tables.h"

struct s2_page_pool hv_pool, hv_table_pool;
static uint64_t table_bytes;  /* the table pool's size (T_POOL_BYTES) */
static uint64_t table_figure; /* s2_sizing_pool_bytes() at run time */
static bool vm_destroyed;

void lib_fail(const char *what, long r)
{
	hlog("hyp: %s failed: %ld\n", what, r);
	finish(EXIT_LIB);
}

/* ---- the environment ----------------------------------------------------- */

static void *env_alloc_table(void *ctx, size_t bytes, hpa_t *pa)
{
	(void)ctx;
	return s2_pool_alloc(&hv_table_pool, bytes, pa);
}

static void env_free_table(void *ctx, void *va, hpa_t pa, size_t bytes)
{
	(void)ctx;
	(void)pa;
	s2_pool_free(&hv_table_pool, va, bytes);
}

static int env_gfn_to_pfn(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, bool write,
			  struct s2_pfn_info *out)
{
	(void)ctx;
	(void)write;
	/* Untranslated (MMU off, satp = 0): an hva is a physical address,
	 * and every host page is writable and may be mapped at any size the
	 * slot allows. */
	out->pfn = (slot->userspace_addr >> 12) + (gfn - slot->base_gfn);
	out->writable = true;
	out->host_level = 3;
	out->memtype = S2_MT_WB;
	/* Identity-mapped and never remapped: a whole 1 GiB block around
	 * the hva is contiguous, so later faults in it may skip this call
	 * (the fault fast path). */
	out->block_stable = true;
	return 0;
}

static void env_log(void *ctx, enum s2_log_level level, const char *msg)
{
	(void)ctx;
	hlog("s2mmu[%d]: %s\n", (int)level, msg);
}

void hv_env_init(struct s2_freestanding *fs, uint64_t bytes)
{
	table_bytes = bytes;
	s2_pool_init(&hv_table_pool, (void *)(uintptr_t)H_POOL, H_POOL, bytes);
	s2_pool_init(&hv_pool, (void *)(uintptr_t)(H_POOL + bytes), H_POOL + bytes,
		     H_POOL_SIZE - bytes);
	s2_freestanding_init(fs, &hv_pool);
	fs->ops.alloc_table = env_alloc_table;
	fs->ops.free_table = env_free_table;
	fs->ops.gfn_to_pfn = env_gfn_to_pfn;
	fs->ops.log = env_log;
}

/* ---- the VM --------------------------------------------------------------- */

void hv_check_sizing(struct kvm *kvm, uint64_t figure)
{
	static const struct s2_sizing_region reg[] = {
		{ G_UART, T_MMIO_SIZE, S2_SIZING_LEAF(1) },
		{ G_RAM, G_RAM_SIZE, S2_SIZING_LEAF(2) },
		{ G_SMALL, G_SMALL_SIZE, S2_SIZING_LEAF(1) },
		{ G_ROM, G_ROM_SIZE, S2_SIZING_LEAF(1) },
		{ G_SCRATCH, G_SCRATCH_SIZE, S2_SIZING_LEAF(1) },
		{ G_HUGE, G_HUGE_SIZE, S2_SIZING_LEAF(3) },
	};
	struct s2_sizing_cfg cfg;
	int r = kvm_sizing_cfg(kvm, &cfg);

	if (!r)
		r = s2_sizing_pool_bytes(&cfg, reg, sizeof(reg) / sizeof(reg[0]), 1, &table_figure);
	if (r)
		lib_fail("s2_sizing_pool_bytes", r);
	if (table_figure != figure) {
		hlog("hyp: build-time table figure %lu, run-time %lu\n", (unsigned long)figure,
		     (unsigned long)table_figure);
		lib_fail("sizing macros", -1);
	}
}

void hv_add_slot(struct kvm *kvm, unsigned id, gpa_t gpa, uint64_t size, uint64_t hva,
		 unsigned flags)
{
	struct kvm_memory_slot s = { .id = id,
				     .base_gfn = gpa_to_gfn(gpa),
				     .npages = size >> 12,
				     .userspace_addr = hva,
				     .flags = flags };
	int r = kvm_set_memslot(kvm, &s);

	if (r)
		lib_fail("kvm_set_memslot", r);
}

void hv_load_guest(struct kvm *kvm, const char *image, const char *image_end)
{
	hv_add_slot(kvm, 0, G_RAM, G_RAM_SIZE, H_RAM, 0);
	hv_add_slot(kvm, 1, G_HUGE, G_HUGE_SIZE, H_HUGE, 0);
	hv_add_slot(kvm, 2, G_SMALL, G_SMALL_SIZE, H_SMALL, 0);
	hv_add_slot(kvm, 3, G_ROM, G_ROM_SIZE, H_ROM, KVM_MEM_READONLY);

	/* The guest's code and data, and the ROM's contents. */
	memcpy((void *)(uintptr_t)H_RAM, image, (size_t)(image_end - image));
	for (uint64_t i = 0; i < G_ROM_SIZE / 8; i++)
		((volatile uint64_t *)(uintptr_t)H_ROM)[i] = ROM_WORD(i);
}

int hv_guest_hpa(struct kvm *kvm, gpa_t gpa, uint64_t *hpa)
{
	struct s2_mapping m;
	struct kvm_memory_slot slot;

	if (kvm_mmu_lookup(kvm, gpa, &m) == 0 && m.present) {
		*hpa = m.hpa;
		return 0;
	}
	if (kvm_gfn_to_memslot(kvm, gpa_to_gfn(gpa), &slot))
		return -1;
	*hpa = slot.userspace_addr + (gpa - gfn_to_gpa(slot.base_gfn));
	return 0;
}

hva_t hv_hva_of(struct kvm *kvm, gpa_t gpa)
{
	struct kvm_memory_slot slot;

	if (kvm_gfn_to_memslot(kvm, gpa_to_gfn(gpa), &slot))
		lib_fail("kvm_gfn_to_memslot", -1);
	return slot.userspace_addr + (gpa - gfn_to_gpa(slot.base_gfn));
}

void hv_stats(struct kvm *kvm, struct kvm_mmu_stats *s)
{
	if (kvm_get_stats(kvm, s))
		lib_fail("kvm_get_stats", -1);
}

static void track_leaves(struct kvm *kvm, uint64_t max_leaves[4])
{
	struct kvm_mmu_stats s;

	if (kvm_get_stats(kvm, &s))
		return;
	for (int l = 1; l <= 3; l++)
		if (s.cur_leaves[l] > max_leaves[l])
			max_leaves[l] = s.cur_leaves[l];
}

int hv_page_fault(struct kvm *kvm, struct kvm_vcpu *vcpu, gpa_t gpa, unsigned access,
		  struct hv_faults *f)
{
	int r = kvm_mmu_page_fault_mmio(vcpu, gpa, access);

	switch (r) {
	case RET_PF_FIXED:
		f->fixed++;
		track_leaves(kvm, f->max_leaves);
		break;
	case RET_PF_SPURIOUS: f->spurious++; break;
	case RET_PF_RETRY: f->retry++; break;
	case RET_PF_EMULATE_MMIO:
	case RET_PF_RO_WRITE: break;
	default: lib_fail("kvm_mmu_page_fault_mmio", r);
	}
	/* A fault that neither maps nor emulates must not repeat forever. */
	if (r == RET_PF_SPURIOUS || r == RET_PF_RETRY) {
		f->same_gpa = gpa == f->last_gpa ? f->same_gpa + 1 : 0;
		if (f->same_gpa > 1000) {
			hlog("hyp: gpa 0x%lx keeps faulting (%d)\n", gpa, r);
			finish(EXIT_CHECK);
		}
	}
	f->last_gpa = gpa;
	return r;
}

void hv_entry_actions(struct kvm_vcpu *vcpu, const struct hv_entry_ops *ops, unsigned *loads,
		      unsigned *req_flush)
{
	struct kvm_entry_actions acts;
	bool loaded = false;
	int r = kvm_vcpu_entry_actions(vcpu, &acts);

	if (r)
		lib_fail("kvm_vcpu_entry_actions", r);
	for (unsigned i = 0; i < acts.nr; i++) {
		switch (acts.a[i].kind) {
		case KVM_ENTRY_LOAD_ROOT:
			ops->load_root(acts.a[i].reg);
			(*loads)++;
			loaded = true;
			break;
		case KVM_ENTRY_FLUSH_CURRENT:
		case KVM_ENTRY_FLUSH_ALL:
			ops->flush_vmid();
			if (!loaded)
				(*req_flush)++;
			break;
		case KVM_ENTRY_FLUSH_GUEST: ops->flush_guest(); break;
		default: break;
		}
	}
}

void hv_zap(struct kvm *kvm, hva_t hva, uint64_t size, uint64_t *leaves, uint64_t *flushes)
{
	struct kvm_mmu_stats a, b;
	int r;

	hv_stats(kvm, &a);
	r = kvm_mmu_notifier_invalidate_range_start(kvm, hva, hva + size, false);
	if (r)
		lib_fail("kvm_mmu_notifier_invalidate_range_start", r);
	/* (The host would change the page here; this one keeps it.) */
	r = kvm_mmu_notifier_invalidate_range_end(kvm, hva, hva + size, false);
	if (r)
		lib_fail("kvm_mmu_notifier_invalidate_range_end", r);
	hv_stats(kvm, &b);
	*leaves = b.zapped_leaves - a.zapped_leaves;
	*flushes = b.flushes + b.flushes_range - a.flushes - a.flushes_range;
}

void hv_scratch_slot(struct kvm *kvm)
{
	int r;

	hv_add_slot(kvm, 4, G_SCRATCH, G_SCRATCH_SIZE, H_SCRATCH, 0);
	r = kvm_delete_memslot(kvm, 4);
	if (r)
		lib_fail("kvm_delete_memslot", r);
}

/* ---- the guest's console --------------------------------------------------- */

static char uart_line[128];
static unsigned uart_len;

void hv_uart_out(char c)
{
	if (c != '\n' && uart_len < sizeof(uart_line) - 1) {
		uart_line[uart_len++] = c;
		return;
	}
	uart_line[uart_len] = 0;
	hlog("guest| %s\n", uart_line);
	uart_len = 0;
}

/* ---- the end of the run ---------------------------------------------------- */

void hv_check(int *code, bool ok, int c, const char *what)
{
	hlog("hyp: check %-52s %s\n", what, ok ? "ok" : "FAILED");
	if (!ok && *code == EXIT_PASS)
		*code = c;
}

bool hv_keep_tables_line(struct kvm *kvm, unsigned fmt_flags)
{
	char line[192];

	if (!kvm || vm_destroyed)
		return false;
	hlog("%s", tables_line(line, sizeof(line), "hyp", kvm, fmt_flags, 0, H_POOL, table_bytes));
	return true;
}

int hv_destroy(struct kvm *kvm, int code)
{
	/* A failed run keeps its tables for finish() (keep_tables). */
	if (code != EXIT_PASS)
		return code;
	kvm_destroy_vm(kvm);
	vm_destroyed = true;
	hlog("hyp: VM destroyed; pool bytes in use %lu (high water %lu)\n",
	     (unsigned long)hv_pool.in_use, (unsigned long)hv_pool.high_water);
	hlog("sizing: calculator figure %lu bytes (root, tables, vcpu cache), table pool high "
	     "water %lu bytes, %lu in use after destroy\n",
	     (unsigned long)table_figure, (unsigned long)hv_table_pool.high_water,
	     (unsigned long)hv_table_pool.in_use);
	if (hv_pool.in_use || hv_table_pool.in_use || hv_table_pool.high_water > table_figure)
		code = EXIT_CHECK;
	return code;
}

void hv_trace_end(struct kvm *kvm, int code, unsigned fmt_flags)
{
	char line[192];

	hlog("hyp: trace end: verdict %d\n", code);
	hlog("%s", tables_line(line, sizeof(line), "hyp", kvm, fmt_flags, 0, H_POOL, H_POOL_SIZE));
	for (;;)
		__asm__ volatile("wfi");
}
