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

#include <stdarg.h>

#include "../arm64-common/a64.h"
#include "../common/harness.h"
#include "../common/klib.h"
#include "layout.h"
#include "s2mmu/arm64-s2.h"
#include "s2mmu/decode.h"
#include "s2mmu/env-freestanding.h"
#include "s2mmu/notifier.h"
#include "s2mmu/s2mmu.h"
#include "s2mmu/sizing.h"

/* ---- hardware ------------------------------------------------------------ */

#define GICD 0x08000000ul
#define GICC 0x08010000ul
#define INTID_HYP_TIMER 26 /* CNTHP, PPI 10 */

static void keep_tables(void);

/* One CPU: no lock around the console (harness.h). */
void hlog(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kvprintf(fmt, ap);
	va_end(ap);
}

__attribute__((noreturn)) void finish(int code)
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
 * VM, memslots) comes from the rest of H_POOL (hv_env_init()). The rest
 * of the figure, and TABLE_POOL_SHORT: ../common/harness.h.
 */
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

/* ---- the VM --------------------------------------------------------------- */

static struct kvm *kvm;
static unsigned vm_fmt_flags; /* its S2_FMTF_*, for the tables line */

/*
 * A failed run says where its tables are (the table pool at H_POOL: every
 * table page) and keeps them KEEP_TABLES_S seconds for run.sh, which saves
 * them with QEMU's pmemsave and quits QEMU (../common/keep-tables.sh);
 * unwatched, the run then ends as before.
 */
#define KEEP_TABLES_S 10

static void keep_tables(void)
{
	uint64_t t0, wait;

	if (!hv_keep_tables_line(kvm, vm_fmt_flags))
		return;
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
	struct hv_faults pf;
	unsigned hafdbs;
	bool fwb;
} st;

/* ---- emulated devices ---------------------------------------------------- */

static void age(uint64_t step);

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
			hv_uart_out((char)val);
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
	uint64_t hpa;

	if (hv_guest_hpa(kvm, gpa, &hpa))
		return -1;
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

/*
 * A memslot appears and goes again (a device's memory plugged and unplugged;
 * the guest never touches it): each change frees the memslot array it
 * replaced after synchronize_rcu, counted. One CPU: each grace period is
 * over at once.
 */
static void scratch_slot(void)
{
	unsigned gp = hw.rcu_syncs;

	hv_scratch_slot(kvm);
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
	hva_t hva = hv_hva_of(kvm, G_ZAP);
	uint64_t leaves, flushes;

	hv_zap(kvm, hva, ZAP_SIZE, &leaves, &flushes);
	scratch_slot();
	st.zaps++;
	st.zap_leaves += (unsigned)leaves;
	st.zap_flushes += (unsigned)flushes;
	kprintf("hyp: timer: invalidated hva [0x%lx, 0x%lx) (gpa 0x%llx) while the guest ran "
		"at pc 0x%lx: %lu leaves zapped, %lu flushes\n",
		hva, (hva_t)(hva + ZAP_SIZE), G_ZAP, regs.pc, leaves, flushes);
}

/*
 * Page reclaim asks whether G_AGE was used: clear_flush_young clears AF and
 * flushes, so the guest's next access sets it again, by hardware (HA) or by
 * an Access flag fault the fault path fixes (no HA).
 */
static void age(uint64_t step)
{
	hva_t hva = hv_hva_of(kvm, G_AGE);

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

	switch (hv_page_fault(kvm, vcpu, gpa, access, &st.pf)) {
	case RET_PF_EMULATE_MMIO:
		if (!data) {
			kprintf("hyp: guest fetch from gpa 0x%lx with no memslot\n", gpa);
			finish(EXIT_TRAP);
		}
		emulate_mmio(esr, gpa);
		break;
	case RET_PF_RO_WRITE: drop_ro_write(esr, gpa); break;
	default: break;
	}
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

	hv_env_init(&fs, T_POOL_BYTES);
	fs.ops.tlb_flush_vm = env_tlb_flush_vm;
	fs.ops.tlb_flush_range = env_tlb_flush_range;
	fs.ops.kick = env_kick;
	/* Single-CPU RCU (the default, rcu_single_cpu), counted. */
	fs_synchronize_rcu = fs.ops.synchronize_rcu;
	fs.ops.synchronize_rcu = env_synchronize_rcu;
	p.env = &fs.env;
	vm_fmt_flags = p.fmt_flags;

	r = kvm_create_vm(&p, &kvm);
	if (r)
		lib_fail("kvm_create_vm", r);
	hv_check_sizing(kvm, T_FIGURE);
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
	hv_load_guest(kvm, guest_image, guest_image_end);

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
 * The entry actions' instructions (hv_entry_actions(), in the order
 * kvm_vcpu_entry_actions() lists them, docs/rules.md "Requests"): load the
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
static void load_root(uint64_t reg)
{
	sysreg_write(vttbr_el2, reg);
	isb(); /* the TLBI below names the new VMID */
}

static void flush_vmid(void)
{
#ifndef BREAK_FLUSH
	__asm__ volatile("dsb ishst\n\ttlbi vmalls12e1\n\tdsb nsh\n\tisb" : : : "memory");
#endif
}

static void flush_guest(void)
{
	__asm__ volatile("dsb ishst\n\ttlbi vmalle1\n\tdsb nsh\n\tisb" : : : "memory");
}

static const struct hv_entry_ops entry_ops = { load_root, flush_vmid, flush_guest };

static void run(void)
{
	while (!st.done) {
		hv_entry_actions(vcpu, &entry_ops, &st.loads, &st.req_flush);
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

	hv_stats(kvm, &s);
	kvm_format_stats(kvm, buf, sizeof(buf));
	kprintf("hyp: guest done, verdict %lu\n", st.verdict);
	kprintf("hyp: exits: data aborts translation=%u access-flag=%u permission=%u, "
		"instruction aborts translation=%u access-flag=%u permission=%u\n",
		st.dabt[1], st.dabt[2], st.dabt[3], st.iabt[1], st.iabt[2], st.iabt[3]);
	kprintf("hyp: exits: fixed=%u spurious=%u retry=%u, mmio load=%u store=%u (isv0=%u uart=%u "
		"ctl=%u), ro_write=%u, timer irq=%u\n",
		st.pf.fixed, st.pf.spurious, st.pf.retry, st.mmio_load, st.mmio_store, st.mmio_isv0,
		st.mmio_uart, st.mmio_ctl, st.ro_write, st.irq_timer);
	kprintf("hyp: stats: %s\n", buf);
	kprintf("hyp: most leaves at once: 4K=%lu 2M=%lu 1G=%lu\n", st.pf.max_leaves[1],
		st.pf.max_leaves[2], st.pf.max_leaves[3]);
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

#define CHECK(cond, c, what) hv_check(&code, (cond), (c), (what))
	CHECK(st.first_exit_ok, EXIT_CHECK, "first exit: fetch fault at the entry point");
	CHECK(st.verdict == 0, EXIT_GUEST, "guest read back every pattern");
	CHECK(st.pf.max_leaves[3] >= 1, EXIT_CHECK, "1 GiB block used");
	CHECK(st.pf.max_leaves[2] >= 4, EXIT_CHECK, "2 MiB blocks used");
	CHECK(st.pf.max_leaves[1] >= SMALL_TOUCH / 4096, EXIT_CHECK, "4 KiB pages used");
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
	hv_trace_end(kvm, code, vm_fmt_flags);
#endif
	return hv_destroy(kvm, code);
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
