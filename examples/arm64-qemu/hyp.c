// SPDX-License-Identifier: MIT
/*
 * arm64 example hypervisor on s2mmu: EL2 on QEMU virt (virtualization=on),
 * one guest at EL1 with its MMU off, stage-2 tables built by the library.
 *
 * The guest starts with an empty stage 2: every page it touches is mapped
 * by kvm_tdp_page_fault() from the abort's IPA (HPFAR_EL2 for the page,
 * FAR_EL2 for the offset). A gpa with no memslot is an emulated device (a
 * PL011 subset and the test's control registers), decoded from the data
 * abort syndrome (ISV, SAS, SSE, SRT, SF, WnR), or, when ISV = 0
 * (writeback and pair forms), from the instruction through the library's
 * decoder (s2_decode_arm64, s2_arm64_complete). A write to the read-only
 * memslot comes back as RET_PF_RO_WRITE and is dropped, as a ROM would. When
 * the guest asks for it, the EL2 physical timer's interrupt zaps a range it
 * is reading in a loop; its next access there must abort again, which only
 * happens if the format's TLBI reached QEMU's TLB.
 *
 * Without hardware Access flag management (cortex-a57: ID_AA64MMFR1.HAFDBS
 * = 0) an access to a leaf with AF = 0 faults. The library installs every
 * leaf with AF set (its fault path passes S2_PROT_ACCESSED), so no Access
 * flag fault is expected; one that comes anyway is handed to the fault
 * path, which sets AF (and counted). With HAFDBS >= 1 (-cpu max) the VM is
 * created with VTCR_EL2.HA, and with HD too when HAFDBS = 2: writable leaves
 * mapped by a read fault are then clean (DBM set, S2AP[1] clear) and the
 * guest's first write is recorded by hardware without an exit. Where
 * FEAT_S2FWB exists (-cpu max) the VM uses it (HCR_EL2.FWB): stage 2 then
 * forces write-back and the library skips cleaning fresh leaves to the
 * point of coherency, which it does otherwise (DC CIVAC) because the guest
 * runs with its caches off.
 *
 * One CPU (-smp 1) runs the vcpu and makes every library call, so the
 * freestanding env's single-CPU RCU is correct here (synchronize_rcu has no
 * other CPU to wait for) and stays: the library then refuses a second vcpu
 * (-ENOTSUP), which the run checks. A hypervisor that calls the library
 * from more CPUs switches to s2_freestanding_smp() (the riscv64 and x86
 * examples).
 *
 * The run ends with the verdict as QEMU's exit status through semihosting
 * SYS_EXIT: 0 pass, 1 the guest saw wrong data, 2 the zap check failed, 3
 * another check failed, 4 an unexpected exception, 5 a library call failed.
 */
#include <stddef.h>
#include <stdint.h>

#include "../arm64-common/a64.h"
#include "../common/klib.h"
#include "../common/tables.h"
#include "layout.h"
#include "s2mmu/arm64-s2.h"
#include "s2mmu/decode.h"
#include "s2mmu/env-freestanding.h"
#include "s2mmu/notifier.h"
#include "s2mmu/s2mmu.h"
#include "s2mmu/sizing.h"

enum {
	EXIT_PASS = 0,
	EXIT_GUEST = 1,
	EXIT_ZAP = 2,
	EXIT_CHECK = 3,
	EXIT_TRAP = 4,
	EXIT_LIB = 5,
};

/* ---- hardware ------------------------------------------------------------ */

#define GICD 0x08000000ul
#define GICC 0x08010000ul
#define INTID_HYP_TIMER 26 /* CNTHP, PPI 10 */

static void keep_tables(void);

static __attribute__((noreturn)) void finish(int code)
{
	kprintf("hyp: %s (exit code %d)\n", code ? "FAIL" : "PASS", code);
	if (code)
		keep_tables();
	a64_semihost_exit(code);
}

/* An exception taken at EL2 (el2.S): always a bug. */
void a64_hyp_trap(uint64_t vector)
{
	kprintf("hyp: exception at EL2: vector %lu ESR_EL2 0x%lx ELR_EL2 0x%lx FAR_EL2 0x%lx\n",
		vector, sysreg_read(esr_el2), sysreg_read(elr_el2), sysreg_read(far_el2));
	finish(EXIT_TRAP);
}

/* The EL2 physical timer through the GICv2 of the virt board. */
static void gic_init(void)
{
	mmio_w32(GICD + 0x000, 1);		       /* GICD_CTLR: enable */
	mmio_w32(GICD + 0x100, 1u << INTID_HYP_TIMER); /* GICD_ISENABLER0 */
	mmio_w32(GICC + 0x004, 0xff);		       /* GICC_PMR: all */
	mmio_w32(GICC + 0x000, 1);		       /* GICC_CTLR: enable */
}

static void timer_arm(uint64_t ticks)
{
	sysreg_write(cnthp_tval_el2, ticks);
	sysreg_write(cnthp_ctl_el2, 1); /* ENABLE, not masked */
	isb();
}

/* ---- the environment ----------------------------------------------------- */

static struct s2_page_pool pool;
static struct s2_freestanding fs;

/*
 * The library's table pages (root, tables, the vcpu's memory cache) come
 * from their own pool at the start of H_POOL (so trace.sh's pmemsave of
 * H_POOL still holds them), sized at build time by the sizing calculator
 * (docs/static.md) for every region the guest can make the library map:
 * the MMIO window of the UART and control pages (cached MMIO entries need a
 * 4 KiB leaf's tables, docs/mmio.md), the RAM slot in 2 MiB blocks, the
 * 4 KiB-only slots (small, ROM, scratch) and the huge slot's 1 GiB block
 * (a root entry: no table). Ascending gpa order; geometry: 4 KiB granule,
 * 40-bit IPA, 3 levels (a root of two concatenated pages). Metadata (the
 * VM, memslots) comes from the rest of H_POOL. TABLE_POOL_SHORT=n builds a
 * pool n pages short, to see a run fail (docs/static.md).
 */
#define T_GEOM S2_SIZING_GEOM_4K(3)
#define T_PAGES(g, s, m) S2_SIZING_REGION_PAGES(T_GEOM, g, s, m)
#define T_SHARED(ag, as, am, bg, bm) S2_SIZING_SHARED_PAGES(T_GEOM, ag, as, am, bg, bm)
#define T_MMIO_SIZE (G_CTL + 4096 - G_UART)
#define T_TABLES_SUM                                                         \
	(T_PAGES(G_UART, T_MMIO_SIZE, 1) + T_PAGES(G_RAM, G_RAM_SIZE, 2) +   \
	 T_PAGES(G_SMALL, G_SMALL_SIZE, 1) + T_PAGES(G_ROM, G_ROM_SIZE, 1) + \
	 T_PAGES(G_SCRATCH, G_SCRATCH_SIZE, 1) + T_PAGES(G_HUGE, G_HUGE_SIZE, 3))
#define T_TABLES_SHARED                                                                            \
	(T_SHARED(G_UART, T_MMIO_SIZE, 1, G_RAM, 2) + T_SHARED(G_RAM, G_RAM_SIZE, 2, G_SMALL, 1) + \
	 T_SHARED(G_SMALL, G_SMALL_SIZE, 1, G_ROM, 1) +                                            \
	 T_SHARED(G_ROM, G_ROM_SIZE, 1, G_SCRATCH, 1) +                                            \
	 T_SHARED(G_SCRATCH, G_SCRATCH_SIZE, 1, G_HUGE, 3))
#define T_TABLES (T_TABLES_SUM - T_TABLES_SHARED)
/* Root (two concatenated pages) + tables + one vcpu's cache (levels - 1). */
#define T_FIGURE ((2 + T_TABLES + 1 * 2) * 4096)
#ifndef TABLE_POOL_SHORT
#define TABLE_POOL_SHORT 0
#endif
#define T_POOL_BYTES (T_FIGURE - TABLE_POOL_SHORT * 4096)
static struct s2_page_pool table_pool;
static uint64_t table_figure; /* s2_sizing_pool_bytes() at run time */

static void *env_alloc_table(void *ctx, size_t bytes, hpa_t *pa)
{
	(void)ctx;
	return s2_pool_alloc(&table_pool, bytes, pa);
}

static void env_free_table(void *ctx, void *va, hpa_t pa, size_t bytes)
{
	(void)ctx;
	(void)pa;
	s2_pool_free(&table_pool, va, bytes);
}

static struct {
	unsigned hook_flush_vm, hook_flush_range, kicks;
	unsigned rcu_syncs; /* synchronize_rcu calls: grace periods */
} hw;

/* The single-CPU default's synchronize_rcu, counted. */
static void (*fs_synchronize_rcu)(void *ctx);

static void env_synchronize_rcu(void *ctx)
{
	hw.rcu_syncs++;
	fs_synchronize_rcu(ctx);
}

static int env_gfn_to_pfn(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, bool write,
			  struct s2_pfn_info *out)
{
	(void)ctx;
	(void)write;
	/* MMU off: an hva is a physical address, and every host page is
	 * writable and may be mapped at any size the slot allows. */
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

/*
 * In the freestanding aarch64 build the format runs TLBI itself and never
 * calls these; only the break-flush image (breakflush.c) does, and there
 * they only count. run.sh prints the counts: 0 means the real instructions
 * did the work.
 */
static void env_tlb_flush_vm(void *ctx, struct kvm *kvm)
{
	(void)ctx;
	(void)kvm;
	hw.hook_flush_vm++;
}

static void env_tlb_flush_range(void *ctx, struct kvm *kvm, gpa_t gpa, uint64_t size)
{
	(void)ctx;
	(void)kvm;
	(void)gpa;
	(void)size;
	hw.hook_flush_range++;
}

static void env_kick(void *ctx, struct kvm_vcpu *vcpu)
{
	(void)ctx;
	(void)vcpu;
	hw.kicks++;
}

static void env_log(void *ctx, enum s2_log_level level, const char *msg)
{
	(void)ctx;
	kprintf("s2mmu[%d]: %s\n", (int)level, msg);
}

/* ---- the VM --------------------------------------------------------------- */

static struct kvm *kvm;
static unsigned vm_fmt_flags; /* its S2_FMTF_*, for the tables line */
static bool vm_destroyed;

/*
 * A failed run says where its tables are (the table pool at H_POOL: every
 * table page) and keeps them KEEP_TABLES_S seconds for run.sh, which saves
 * them with QEMU's pmemsave and quits QEMU (../common/keep-tables.sh);
 * unwatched, the run then ends as before.
 */
#define KEEP_TABLES_S 10

static void keep_tables(void)
{
	char line[192];
	uint64_t t0, wait;

	if (!kvm || vm_destroyed)
		return;
	kprintf("%s",
		tables_line(line, sizeof(line), "hyp", kvm, vm_fmt_flags, 0, H_POOL, T_POOL_BYTES));
	isb();
	t0 = sysreg_read(cntpct_el0);
	wait = sysreg_read(cntfrq_el0) * KEEP_TABLES_S;
	do
		isb();
	while (sysreg_read(cntpct_el0) - t0 < wait);
}
static struct kvm_vcpu *vcpu;
static struct a64_regs regs;

static struct {
	unsigned dabt[4], iabt[4]; /* by fault class: other, translation, AF, permission */
	unsigned fixed, spurious, retry;
	unsigned mmio_load, mmio_store, mmio_uart, mmio_ctl;
	unsigned mmio_isv0; /* completed through the library's decoder */
	unsigned ro_write;
	unsigned irq_timer;
	unsigned req_flush; /* stage-2 flush actions not owed by a load */
	unsigned loads;	    /* LOAD_ROOT actions */
	unsigned zaps, zap_leaves, zap_flushes, zap_refaults;
	unsigned gp_scratch;	/* grace periods for the scratch slot */
	int second_vcpu;	/* kvm_vcpu_create of a second vcpu */
	long age_cleared;	/* clear_flush_young: young leaves found */
	int age_right_after;	/* test_young right after: 0 expected */
	int age_after_access;	/* test_young after the guest's read: 1 */
	unsigned age_af_faults; /* Access flag faults since the aging */
	bool first_exit_seen, first_exit_ok;
	bool done;
	uint64_t verdict;
	uint64_t last_gpa;
	unsigned same_gpa;
	uint64_t max_leaves[4];
	unsigned hafdbs;
	bool fwb;
} st;

static __attribute__((noreturn)) void lib_fail(const char *what, long r)
{
	kprintf("hyp: %s failed: %ld\n", what, r);
	finish(EXIT_LIB);
}

static void track_leaves(void)
{
	struct kvm_mmu_stats s;

	if (kvm_get_stats(kvm, &s))
		return;
	for (int l = 1; l <= 3; l++)
		if (s.cur_leaves[l] > st.max_leaves[l])
			st.max_leaves[l] = s.cur_leaves[l];
}

/* ---- emulated devices ---------------------------------------------------- */

static void age(uint64_t step);

static char uart_line[128];
static unsigned uart_len;

static void uart_out(char c)
{
	if (c != '\n' && uart_len < sizeof(uart_line) - 1) {
		uart_line[uart_len++] = c;
		return;
	}
	uart_line[uart_len] = 0;
	kprintf("guest| %s\n", uart_line);
	uart_len = 0;
}

static int dev_read(gpa_t gpa, uint64_t *val)
{
	*val = 0;
	if (gpa >= G_UART && gpa < G_UART + 0x1000) {
		st.mmio_uart++;
		return 0; /* FR: TXFF clear, always ready */
	}
	if (gpa >= G_CTL && gpa < G_CTL + 0x100) {
		st.mmio_ctl++;
		if (gpa - G_CTL == CTL_ZAP_DONE)
			*val = st.zaps;
		else if (gpa - G_CTL == CTL_MAGIC)
			*val = MAGIC;
		return 0;
	}
	return -1;
}

static int dev_write(gpa_t gpa, uint64_t val)
{
	if (gpa >= G_UART && gpa < G_UART + 0x1000) {
		st.mmio_uart++;
		if (gpa == G_UART)
			uart_out((char)val);
		return 0;
	}
	if (gpa >= G_CTL && gpa < G_CTL + 0x100) {
		st.mmio_ctl++;
		switch (gpa - G_CTL) {
		case CTL_EXIT:
			st.done = true;
			st.verdict = val;
			break;
		case CTL_ZAP_ARM:
			timer_arm(sysreg_read(cntfrq_el0) / 500); /* 2 ms */
			break;
		case CTL_PHASE: kprintf("hyp: guest phase %lu\n", val); break;
		case CTL_AGE: age(val); break;
		default: break;
		}
		return 0;
	}
	return -1;
}

/* Read guest memory the way the vcpu fetched it (the guest runs with its
 * MMU off, so pc is an IPA): through stage 2, else the memslot. */
static int guest_read32(gpa_t gpa, uint32_t *out)
{
	struct s2_mapping m;
	struct kvm_memory_slot slot;
	uint64_t hpa;

	if (kvm_mmu_lookup(kvm, gpa, &m) == 0 && m.present) {
		hpa = m.hpa;
	} else {
		if (kvm_gfn_to_memslot(kvm, gpa_to_gfn(gpa), &slot))
			return -1;
		hpa = slot.userspace_addr + (gpa - gfn_to_gpa(slot.base_gfn));
	}
	*out = *(volatile uint32_t *)(uintptr_t)hpa;
	return 0;
}

/* The scratch registers take any access width; the rest are 64-bit. */
static uint8_t scratch[CTL_SCRATCH_SIZE];

static int dev_elem(gpa_t gpa, unsigned size, bool write, uint64_t *val)
{
	uint64_t off = gpa - (G_CTL + CTL_SCRATCH);

	if (gpa >= G_CTL + CTL_SCRATCH && off + size <= CTL_SCRATCH_SIZE && size <= 8) {
		st.mmio_ctl++;
		if (!write)
			*val = 0;
		for (unsigned i = 0; i < size; i++) {
			if (write)
				scratch[off + i] = (uint8_t)(*val >> (8 * i));
			else
				*val |= (uint64_t)scratch[off + i] << (8 * i);
		}
		return 0;
	}
	return write ? dev_write(gpa, *val) : dev_read(gpa, val);
}

/*
 * ISV = 0: decode the instruction at pc, check that its address is the
 * faulting one, do each element's device access and let the library apply
 * the result (registers, base writeback, pc).
 */
static void emulate_isv0(uint64_t esr, gpa_t gpa)
{
	static struct s2_arm64_regs r;
	struct s2_insn d;
	uint32_t insn = 0;
	uint64_t val[4] = { 0 }, addr, idx;
	int ret;

	if (guest_read32(regs.pc, &insn) || (ret = s2_decode_arm64(insn, regs.pc, &d)) ||
	    (d.flags & S2_INSN_FP) || d.base == 31) {
		kprintf("hyp: MMIO at gpa 0x%lx, ISV = 0 (ESR 0x%lx): cannot emulate insn 0x%08x "
			"at pc 0x%lx\n",
			gpa, esr, insn, regs.pc);
		finish(EXIT_TRAP);
	}
	addr = regs.x[d.base] + ((d.flags & S2_INSN_POST) ? 0 : (uint64_t)d.disp);
	if (d.index != S2_REG_NONE) {
		idx = d.index == 31 ? 0 : regs.x[d.index];
		if (d.extend == S2_EXT_UXTW)
			idx = (uint32_t)idx;
		else if (d.extend == S2_EXT_SXTW)
			idx = (uint64_t)(int64_t)(int32_t)idx;
		addr += idx << d.scale;
	}
	if (addr >> 12 != gpa >> 12 || addr + (uint64_t)d.size * d.count - 1 < gpa) {
		kprintf("hyp: decoded address 0x%lx does not cover the fault at 0x%lx\n", addr,
			gpa);
		finish(EXIT_CHECK);
	}
	for (unsigned i = 0; i < 31; i++)
		r.x[i] = regs.x[i];
	r.pc = regs.pc;
	if (d.dir == S2_DIR_LOAD) {
		for (unsigned k = 0; k < d.count; k++)
			if (dev_elem(addr + k * d.size, d.size, false, &val[k]))
				goto unknown;
		ret = s2_arm64_complete(&d, &r, val);
	} else {
		ret = s2_arm64_complete(&d, &r, val);
		for (unsigned k = 0; k < d.count && !ret; k++)
			if (dev_elem(addr + k * d.size, d.size, true, &val[k]))
				goto unknown;
	}
	if (ret)
		lib_fail("s2_arm64_complete", ret);
	for (unsigned i = 0; i < 31; i++)
		regs.x[i] = r.x[i];
	regs.pc = r.pc;
	if (d.dir == S2_DIR_LOAD)
		st.mmio_load++;
	else
		st.mmio_store++;
	st.mmio_isv0++;
	return;
unknown:
	kprintf("hyp: guest access to unknown gpa 0x%lx (insn 0x%08x, pc 0x%lx)\n", addr, insn,
		regs.pc);
	finish(EXIT_TRAP);
}

/* Emulate the single load or store the syndrome describes (ISV = 1). */
static void emulate_mmio(uint64_t esr, gpa_t gpa)
{
	unsigned width = 1u << ESR_SAS(esr), srt = ESR_SRT(esr);
	uint64_t v;

	if (!(esr & ESR_ISV)) {
		emulate_isv0(esr, gpa);
		return;
	}
	if (esr & ESR_WNR) {
		st.mmio_store++;
		v = srt == 31 ? 0 : regs.x[srt];
		if (width < 8)
			v &= (1ull << (width * 8)) - 1;
		if (dev_elem(gpa, width, true, &v))
			goto unknown;
	} else {
		st.mmio_load++;
		if (dev_elem(gpa, width, false, &v))
			goto unknown;
		if (width < 8) {
			v &= (1ull << (width * 8)) - 1;
			if ((esr & ESR_SSE) && (v >> (width * 8 - 1)))
				v |= ~0ull << (width * 8);
		}
		if (!(esr & ESR_SF))
			v &= 0xffffffffull; /* a W register */
		if (srt != 31)
			regs.x[srt] = v;
	}
	regs.pc += 4;
	return;
unknown:
	kprintf("hyp: guest access to unknown gpa 0x%lx (ESR 0x%lx, pc 0x%lx)\n", gpa, esr,
		regs.pc);
	finish(EXIT_TRAP);
}

/* The guest wrote to the read-only slot: drop the write, as a ROM would. */
static void drop_ro_write(uint64_t esr, gpa_t gpa)
{
	unsigned srt = ESR_SRT(esr);

	if (!(esr & ESR_ISV)) {
		kprintf("hyp: read-only write at 0x%lx without a valid syndrome\n", gpa);
		finish(EXIT_TRAP);
	}
	st.ro_write++;
	kprintf("hyp: RET_PF_RO_WRITE: %u-byte write of 0x%lx to read-only gpa 0x%lx dropped\n",
		1u << ESR_SAS(esr), srt == 31 ? 0 : regs.x[srt], gpa);
	regs.pc += 4;
}

/* ---- exits ---------------------------------------------------------------- */

/* The hva behind @gpa (slot 0 or 2): what the host's memory manager knows. */
static hva_t hva_of(gpa_t gpa)
{
	struct kvm_memory_slot slot;

	if (kvm_gfn_to_memslot(kvm, gpa_to_gfn(gpa), &slot))
		lib_fail("kvm_gfn_to_memslot", -1);
	return slot.userspace_addr + (gpa - gfn_to_gpa(slot.base_gfn));
}

static void stats(struct kvm_mmu_stats *s)
{
	if (kvm_get_stats(kvm, s))
		lib_fail("kvm_get_stats", -1);
}

static void add_slot(unsigned id, gpa_t gpa, uint64_t size, uint64_t hva, unsigned flags);

/*
 * A memslot appears and goes again (a device's memory plugged and unplugged;
 * the guest never touches it): each change frees the memslot array it
 * replaced after synchronize_rcu, counted. One CPU: each grace period is
 * over at once.
 */
static void scratch_slot(void)
{
	unsigned gp = hw.rcu_syncs;
	int r;

	add_slot(4, G_SCRATCH, G_SCRATCH_SIZE, H_SCRATCH, 0);
	r = kvm_delete_memslot(kvm, 4);
	if (r)
		lib_fail("kvm_delete_memslot", r);
	st.gp_scratch = hw.rcu_syncs - gp;
}

/*
 * The host is about to move the page behind G_ZAP (as migration or swap
 * would): the notifier's invalidate_range_start zaps every leaf backing its
 * hva range (the whole 2 MiB block) and flushes once, through
 * kvm_flush_remote_tlbs_range and the format's TLBI, before it returns.
 * The guest's next access there must abort again.
 */
static void zap_while_guest_runs(void)
{
	hva_t hva = hva_of(G_ZAP);
	struct kvm_mmu_stats a, b;
	int r;

	stats(&a);
	r = kvm_mmu_notifier_invalidate_range_start(kvm, hva, hva + ZAP_SIZE, false);
	if (r)
		lib_fail("kvm_mmu_notifier_invalidate_range_start", r);
	/* (The host would change the page here; this one keeps it.) */
	r = kvm_mmu_notifier_invalidate_range_end(kvm, hva, hva + ZAP_SIZE, false);
	if (r)
		lib_fail("kvm_mmu_notifier_invalidate_range_end", r);
	stats(&b);
	scratch_slot();
	st.zaps++;
	st.zap_leaves += (unsigned)(b.zapped_leaves - a.zapped_leaves);
	st.zap_flushes += (unsigned)(b.flushes + b.flushes_range - a.flushes - a.flushes_range);
	kprintf("hyp: timer: invalidated hva [0x%lx, 0x%lx) (gpa 0x%llx) while the guest ran "
		"at pc 0x%lx: %lu leaves zapped, %lu flushes\n",
		hva, (hva_t)(hva + ZAP_SIZE), G_ZAP, regs.pc, b.zapped_leaves - a.zapped_leaves,
		b.flushes + b.flushes_range - a.flushes - a.flushes_range);
}

/*
 * Page reclaim asks whether G_AGE was used: clear_flush_young clears AF and
 * flushes, so the guest's next access sets it again, by hardware (HA) or by
 * an Access flag fault the fault path fixes (no HA).
 */
static void age(uint64_t step)
{
	hva_t hva = hva_of(G_AGE);

	if (step == 1) {
		st.age_cleared = kvm_mmu_notifier_clear_flush_young(kvm, hva, hva + 4096);
		st.age_right_after = kvm_mmu_notifier_test_young(kvm, hva, hva + 4096);
		st.age_af_faults = st.dabt[2] + st.iabt[2];
		kprintf("hyp: aging gpa 0x%llx: clear_flush_young %ld, test_young right after %d\n",
			G_AGE, st.age_cleared, st.age_right_after);
	} else {
		st.age_after_access = kvm_mmu_notifier_test_young(kvm, hva, hva + 4096);
		st.age_af_faults = st.dabt[2] + st.iabt[2] - st.age_af_faults;
		kprintf("hyp: aging gpa 0x%llx: test_young after the guest's read %d, "
			"Access flag faults %u\n",
			G_AGE, st.age_after_access, st.age_af_faults);
	}
}

static void irq_exit(void)
{
	uint32_t iar = mmio_r32(GICC + 0x00c); /* GICC_IAR */
	unsigned intid = iar & 0x3ff;

	if (intid == 1023)
		return; /* spurious */
	if (intid != INTID_HYP_TIMER) {
		kprintf("hyp: unexpected interrupt %u\n", intid);
		finish(EXIT_TRAP);
	}
	st.irq_timer++;
	sysreg_write(cnthp_ctl_el2, 0);
	isb();
	mmio_w32(GICC + 0x010, iar); /* GICC_EOIR */
	zap_while_guest_runs();
}

static void stage2_abort(uint64_t esr)
{
	bool data = ESR_EC(esr) == EC_DABT_LOW;
	unsigned fsc = ESR_FSC(esr);
	gpa_t gpa = ((sysreg_read(hpfar_el2) >> 4) << 12) | (sysreg_read(far_el2) & 0xfff);
	unsigned access = !data ? S2_ACC_EXEC : (esr & ESR_WNR) ? S2_ACC_WRITE : S2_ACC_READ;
	unsigned cls;
	int r;

	switch (FSC_CLASS(fsc)) {
	case FSC_TRANSLATION: cls = 1; break;
	case FSC_ACCESS_FLAG: cls = 2; break;
	case FSC_PERMISSION: cls = 3; break;
	default:
		kprintf("hyp: %s abort with FSC 0x%x at pc 0x%lx (ESR 0x%lx)\n",
			data ? "data" : "instruction", fsc, regs.pc, esr);
		finish(EXIT_TRAP);
	}
	if (data)
		st.dabt[cls]++;
	else
		st.iabt[cls]++;
	if (!st.first_exit_seen) {
		st.first_exit_seen = true;
		st.first_exit_ok = !data && cls == 1 && gpa == G_RAM;
		kprintf("hyp: first exit: %s abort, FSC 0x%x, at IPA 0x%lx (empty stage 2)\n",
			data ? "data" : "instruction", fsc, gpa);
	}
	if (st.zaps && gpa >= G_ZAP && gpa < G_ZAP + ZAP_SIZE)
		st.zap_refaults++;

	/*
	 * Every stage-2 fault through the MMIO exit (docs/mmio.md): the abort
	 * cannot tell a cached MMIO entry from an empty one, so each pays one
	 * walk for the device accesses (almost all of this guest's faults) to
	 * skip the fault path and the memslot lookup.
	 */
	r = kvm_mmu_page_fault_mmio(vcpu, gpa, access);
	switch (r) {
	case RET_PF_FIXED:
		st.fixed++;
		track_leaves();
		break;
	case RET_PF_SPURIOUS: st.spurious++; break;
	case RET_PF_RETRY: st.retry++; break;
	case RET_PF_EMULATE_MMIO:
		if (!data) {
			kprintf("hyp: guest fetch from gpa 0x%lx with no memslot\n", gpa);
			finish(EXIT_TRAP);
		}
		emulate_mmio(esr, gpa);
		break;
	case RET_PF_RO_WRITE: drop_ro_write(esr, gpa); break;
	default: lib_fail("kvm_mmu_page_fault_mmio", r);
	}
	/* A fault that neither maps nor emulates must not repeat forever. */
	if (r == RET_PF_SPURIOUS || r == RET_PF_RETRY) {
		st.same_gpa = gpa == st.last_gpa ? st.same_gpa + 1 : 0;
		if (st.same_gpa > 1000) {
			kprintf("hyp: gpa 0x%lx keeps faulting (%d, FSC 0x%x)\n", gpa, r, fsc);
			finish(EXIT_CHECK);
		}
	}
	st.last_gpa = gpa;
}

static void handle_exit(void)
{
	uint64_t esr;

	if (regs.reason == REASON_IRQ) {
		irq_exit();
		return;
	}
	esr = sysreg_read(esr_el2);
	if (regs.reason == REASON_SYNC &&
	    (ESR_EC(esr) == EC_DABT_LOW || ESR_EC(esr) == EC_IABT_LOW)) {
		stage2_abort(esr);
		return;
	}
	kprintf("hyp: unexpected guest exit: reason %lu ESR_EL2 0x%lx pc 0x%lx FAR_EL2 0x%lx\n",
		regs.reason, esr, regs.pc, sysreg_read(far_el2));
	finish(EXIT_TRAP);
}

/* The run-time calculator over the same regions must give T_FIGURE. */
static void check_sizing(void)
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
	if (table_figure != T_FIGURE) {
		kprintf("hyp: build-time table figure %lu, run-time %lu\n", (unsigned long)T_FIGURE,
			(unsigned long)table_figure);
		lib_fail("sizing macros", -1);
	}
}

static void add_slot(unsigned id, gpa_t gpa, uint64_t size, uint64_t hva, unsigned flags)
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

extern const char guest_image[], guest_image_end[];

/* ID_AA64MMFR0_EL1.PARange in bits; 52 is used as 48 (no LPA2 here). */
static unsigned pa_range_bits(void)
{
	static const unsigned bits[] = { 32, 36, 40, 42, 44, 48, 48 };
	unsigned r = sysreg_read(id_aa64mmfr0_el1) & 0xf;

	return r < sizeof(bits) / sizeof(bits[0]) ? bits[r] : 48;
}

static void setup(void)
{
	struct kvm_vm_params p = {
		.fmt = S2_FMT_ARM64_S2, .gpa_bits = 40, .vmid = 1, .mmio_cache = S2_MMIO_CACHE_ON
	};
	uint64_t vtcr;
	unsigned pa_bits = pa_range_bits();
	int r;

	st.hafdbs = sysreg_read(id_aa64mmfr1_el1) & 0xf;
	if (st.hafdbs >= 1)
		p.fmt_flags |= S2_FMTF_AD;
	if (st.hafdbs >= 2)
		p.fmt_flags |= S2_FMTF_HD;
	/* FEAT_S2FWB: stage 2 forces write-back, no cache cleaning on map. */
	st.fwb = ((sysreg_read(id_aa64mmfr2_el1) >> 40) & 0xf) == 1;
	if (st.fwb)
		p.fmt_flags |= S2_FMTF_FWB;

	s2_pool_init(&table_pool, (void *)(uintptr_t)H_POOL, H_POOL, T_POOL_BYTES);
	s2_pool_init(&pool, (void *)(uintptr_t)(H_POOL + T_POOL_BYTES), H_POOL + T_POOL_BYTES,
		     H_POOL_SIZE - T_POOL_BYTES);
	s2_freestanding_init(&fs, &pool);
	fs.ops.alloc_table = env_alloc_table;
	fs.ops.free_table = env_free_table;
	fs.ops.gfn_to_pfn = env_gfn_to_pfn;
	fs.ops.tlb_flush_vm = env_tlb_flush_vm;
	fs.ops.tlb_flush_range = env_tlb_flush_range;
	fs.ops.kick = env_kick;
	fs.ops.log = env_log;
	/* Single-CPU RCU (the default, rcu_single_cpu), counted. */
	fs_synchronize_rcu = fs.ops.synchronize_rcu;
	fs.ops.synchronize_rcu = env_synchronize_rcu;
	p.env = &fs.env;
	vm_fmt_flags = p.fmt_flags;

	r = kvm_create_vm(&p, &kvm);
	if (r)
		lib_fail("kvm_create_vm", r);
	check_sizing();
	r = kvm_vcpu_create(kvm, 0, &vcpu);
	if (r)
		lib_fail("kvm_vcpu_create", r);
	{
		/* With single-CPU RCU the library must refuse a second vcpu:
		 * another CPU running it could use freed memslot arrays. */
		struct kvm_vcpu *v2 = NULL;

		kprintf("hyp: a second vcpu on single-CPU RCU (must be refused):\n");
		st.second_vcpu = kvm_vcpu_create(kvm, 1, &v2);
	}
	add_slot(0, G_RAM, G_RAM_SIZE, H_RAM, 0);
	add_slot(1, G_HUGE, G_HUGE_SIZE, H_HUGE, 0);
	add_slot(2, G_SMALL, G_SMALL_SIZE, H_SMALL, 0);
	add_slot(3, G_ROM, G_ROM_SIZE, H_ROM, KVM_MEM_READONLY);

	/* The guest's code and data, and the ROM's contents. */
	memcpy((void *)(uintptr_t)H_RAM, guest_image, (size_t)(guest_image_end - guest_image));
	for (uint64_t i = 0; i < G_ROM_SIZE / 8; i++)
		((volatile uint64_t *)(uintptr_t)H_ROM)[i] = ROM_WORD(i);

	r = kvm_arm64_vtcr(kvm, pa_bits, &vtcr);
	if (r)
		lib_fail("kvm_arm64_vtcr", r);
	/* VTTBR_EL2 is written by the first entry's LOAD_ROOT (run()). */
	sysreg_write(vtcr_el2, vtcr);
	sysreg_write(hcr_el2,
		     HCR_RW | HCR_VM | HCR_IMO | HCR_FMO | HCR_AMO | (st.fwb ? HCR_FWB : 0));
	sysreg_write(sctlr_el1, SCTLR_EL1_MMU_OFF);
	isb();
	kprintf("hyp: %s, %u levels, IPA 40 bits, PA %u bits, HAFDBS %u (%s%s), %s, "
		"VTCR_EL2 0x%lx, root 0x%lx, HCR_EL2 0x%lx\n",
		s2_fmt_name(kvm_fmt(kvm)), kvm_mmu_levels(kvm), pa_bits, st.hafdbs,
		(p.fmt_flags & S2_FMTF_AD) ? "HA" : "no HA: AF set at install",
		(p.fmt_flags & S2_FMTF_HD) ? "+HD" : "",
		st.fwb ? "S2FWB (forced write-back)" : "no S2FWB (DC CIVAC on map)",
		sysreg_read(vtcr_el2), (unsigned long)kvm_mmu_root_hpa(kvm), sysreg_read(hcr_el2));
	gic_init();
	regs.pc = G_RAM;
	regs.pstate = SPSR_EL1H_DAIF;
}

/*
 * What the pending requests oblige before entry, in the order
 * kvm_vcpu_entry_actions() lists it (docs/rules.md, "Requests"): load the
 * root into VTTBR_EL2 (the VMID with it), then the stage-2 flush of this
 * VMID on this CPU, TLBI VMALLS12E1, for FLUSH_CURRENT and FLUSH_ALL alike
 * (the TLB is tagged by VMID, not by root), then the guest's stage 1, TLBI
 * VMALLE1. The first entry loads the root. Ranged flushes raise no request
 * here (the format's TLBI ... IS reaches every CPU), so the zap check stays
 * a test of the library's own TLBI. The break-flush image (BREAK_FLUSH)
 * leaves these TLBIs out as well: without the format's TLBI the library's
 * ranged flushes are no longer complete and raise requests, and a local
 * TLBI on them would stand in for the missing one on this single CPU.
 */
static void entry_actions(void)
{
	struct kvm_entry_actions acts;
	bool loaded = false;
	int r = kvm_vcpu_entry_actions(vcpu, &acts);

	if (r)
		lib_fail("kvm_vcpu_entry_actions", r);
	for (unsigned i = 0; i < acts.nr; i++) {
		switch (acts.a[i].kind) {
		case KVM_ENTRY_LOAD_ROOT:
			sysreg_write(vttbr_el2, acts.a[i].reg);
			isb(); /* the TLBI below names the new VMID */
			st.loads++;
			loaded = true;
			break;
		case KVM_ENTRY_FLUSH_CURRENT:
		case KVM_ENTRY_FLUSH_ALL:
#ifndef BREAK_FLUSH
			__asm__ volatile("dsb ishst\n\ttlbi vmalls12e1\n\tdsb nsh\n\tisb"
					 :
					 :
					 : "memory");
#endif
			if (!loaded)
				st.req_flush++;
			break;
		case KVM_ENTRY_FLUSH_GUEST:
			__asm__ volatile("dsb ishst\n\ttlbi vmalle1\n\tdsb nsh\n\tisb"
					 :
					 :
					 : "memory");
			break;
		default: break;
		}
	}
}

static void run(void)
{
	while (!st.done) {
		entry_actions();
		if (!kvm_vcpu_enter_guest(vcpu))
			continue;
		a64_run_guest(&regs);
		kvm_vcpu_exit_guest(vcpu);
		handle_exit();
	}
}

static int report(void)
{
	struct kvm_mmu_stats s;
	char buf[320];
	int code = EXIT_PASS;

	if (kvm_get_stats(kvm, &s))
		lib_fail("kvm_get_stats", -1);
	kvm_format_stats(kvm, buf, sizeof(buf));
	kprintf("hyp: guest done, verdict %lu\n", st.verdict);
	kprintf("hyp: exits: data aborts translation=%u access-flag=%u permission=%u, "
		"instruction aborts translation=%u access-flag=%u permission=%u\n",
		st.dabt[1], st.dabt[2], st.dabt[3], st.iabt[1], st.iabt[2], st.iabt[3]);
	kprintf("hyp: exits: fixed=%u spurious=%u retry=%u, mmio load=%u store=%u (isv0=%u uart=%u "
		"ctl=%u), ro_write=%u, timer irq=%u\n",
		st.fixed, st.spurious, st.retry, st.mmio_load, st.mmio_store, st.mmio_isv0,
		st.mmio_uart, st.mmio_ctl, st.ro_write, st.irq_timer);
	kprintf("hyp: stats: %s\n", buf);
	kprintf("hyp: most leaves at once: 4K=%lu 2M=%lu 1G=%lu\n", st.max_leaves[1],
		st.max_leaves[2], st.max_leaves[3]);
	kprintf("hyp: flushes: full=%lu ranged=%lu (TLBI by the format); env TLB hooks called: "
		"vm=%u range=%u; flush requests=%u kicks=%u; roots loaded=%u (VTTBR 0x%lx)\n",
		s.flushes, s.flushes_range, hw.hook_flush_vm, hw.hook_flush_range, st.req_flush,
		hw.kicks, st.loads, sysreg_read(vttbr_el2));
	kprintf("hyp: zap: %u zaps, %u leaves zapped, %u flushes, %u faults in the range "
		"afterwards\n",
		st.zaps, st.zap_leaves, st.zap_flushes, st.zap_refaults);
	kprintf("hyp: RCU (single-CPU default): %u grace periods (synchronize_rcu), %u of them for "
		"the scratch memslot's add and delete; second vcpu: %d\n",
		hw.rcu_syncs, st.gp_scratch, st.second_vcpu);

#define CHECK(cond, c, what)                                                   \
	do {                                                                   \
		bool ok_ = (cond);                                             \
		kprintf("hyp: check %-52s %s\n", what, ok_ ? "ok" : "FAILED"); \
		if (!ok_ && code == EXIT_PASS)                                 \
			code = (c);                                            \
	} while (0)
	CHECK(st.first_exit_ok, EXIT_CHECK, "first exit: fetch fault at the entry point");
	CHECK(st.verdict == 0, EXIT_GUEST, "guest read back every pattern");
	CHECK(st.max_leaves[3] >= 1, EXIT_CHECK, "1 GiB block used");
	CHECK(st.max_leaves[2] >= 4, EXIT_CHECK, "2 MiB blocks used");
	CHECK(st.max_leaves[1] >= SMALL_TOUCH / 4096, EXIT_CHECK, "4 KiB pages used");
	/* Without S2FWB every fresh page is cleaned: the full path does it. */
	CHECK(st.fwb ? s.faults_fast >= 1 : s.faults_fast == 0, EXIT_CHECK,
	      st.fwb ? "fault fast path (4 KiB pages of one block)" :
		       "no fault fast path without S2FWB (DC CIVAC per page)");
	CHECK(st.ro_write == 1 && s.exits_ro_write == 1, EXIT_CHECK,
	      "read-only write exit (RET_PF_RO_WRITE)");
	CHECK(st.mmio_load > 0 && st.mmio_store > 0 &&
		      s.exits_mmio + s.exits_mmio_cached == st.mmio_load + st.mmio_store,
	      EXIT_CHECK, "MMIO exits decoded from the syndrome");
	CHECK(s.exits_mmio_cached > 0 && s.exits_mmio_cached > s.exits_mmio, EXIT_CHECK,
	      "most MMIO exits answered from cached entries");
	/* isv0_forms(): str post, stp, ldp post, ldr pre, ldpsw. */
	CHECK(st.mmio_isv0 == 5, EXIT_CHECK, "MMIO exits with ISV = 0 completed by the decoder");
	CHECK(st.zaps == 1 && st.zap_leaves >= 1 && st.zap_flushes == 1, EXIT_CHECK,
	      "notifier zap while running: leaves gone, one flush");
	CHECK(st.zap_refaults >= 1, EXIT_ZAP, "guest faulted again in the zapped range");
	CHECK(st.age_cleared == 1 && st.age_right_after == 0 && st.age_after_access == 1,
	      EXIT_CHECK, "aging: young, old when cleared, young again");
	if (st.hafdbs)
		CHECK(st.age_af_faults == 0, EXIT_CHECK,
		      "aging: AF set by hardware (HA), no fault");
	else
		CHECK(st.age_af_faults == 1, EXIT_CHECK, "aging: one Access flag fault, fixed");
	/* Every flush here is ranged (zap, aging) and TLBI ...IS reaches
	 * every CPU: the library raises no request and kicks nobody. */
	CHECK(s.flushes == 0 && st.req_flush == 0 && hw.kicks == 0, EXIT_CHECK,
	      "ranged flushes broadcast (TLBI IS): no request, no kick");
	CHECK(st.loads == 1, EXIT_CHECK, "root loaded once, by the entry actions");
	CHECK(st.gp_scratch >= 2, EXIT_CHECK, "a grace period per memslot change");
	CHECK(st.second_vcpu == -ENOTSUP, EXIT_CHECK,
	      "single-CPU RCU: a second vcpu refused (-ENOTSUP)");
	CHECK(!kvm_is_bugged(kvm) && s.refused_changes == 0, EXIT_CHECK, "VM not bugged");
#undef CHECK

#ifdef TRACE_ROUNDTRIP
	/*
	 * trace.sh (the library built with CONFIG_S2_TRACE has printed every
	 * call as an "s2mmu[4]: " line): the tables stay as they are; the
	 * tables line names the whole pool (tables and metadata), which
	 * ../common/trace-roundtrip.sh saves with QEMU's pmemsave before it
	 * quits QEMU.
	 */
	{
		char line[192];

		kprintf("hyp: trace end: verdict %d\n", code);
		kprintf("%s", tables_line(line, sizeof(line), "hyp", kvm, vm_fmt_flags, 0, H_POOL,
					  H_POOL_SIZE));
	}
	for (;;)
		__asm__ volatile("wfi");
#endif
	/* A failed run keeps its tables for finish() (keep_tables). */
	if (code != EXIT_PASS)
		return code;
	kvm_destroy_vm(kvm);
	vm_destroyed = true;
	kprintf("hyp: VM destroyed; pool bytes in use %lu (high water %lu)\n",
		(unsigned long)pool.in_use, (unsigned long)pool.high_water);
	kprintf("sizing: calculator figure %lu bytes (root, tables, vcpu cache), table pool "
		"high water %lu bytes, %lu in use after destroy\n",
		(unsigned long)table_figure, (unsigned long)table_pool.high_water,
		(unsigned long)table_pool.in_use);
	if ((pool.in_use || table_pool.in_use || table_pool.high_water > table_figure) &&
	    code == EXIT_PASS)
		code = EXIT_CHECK;
	return code;
}

void hyp_main(void);
void hyp_main(void)
{
	kprintf("hyp: s2mmu arm64 example, EL%lu, MIDR 0x%lx\n", sysreg_read(CurrentEL) >> 2,
		sysreg_read(midr_el1));
	if ((sysreg_read(CurrentEL) >> 2) != 2) {
		kprintf("hyp: not entered at EL2 (virtualization=on?)\n");
		finish(EXIT_TRAP);
	}
	setup();
	run();
	finish(report());
}
