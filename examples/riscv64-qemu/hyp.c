// SPDX-License-Identifier: MIT
/*
 * riscv64 example hypervisor on s2mmu: HS-mode under OpenSBI on QEMU virt
 * with two harts, one guest in VS-mode with vsatp = 0, G-stage tables built
 * by the library.
 *
 * The boot hart runs the vcpu. The guest starts with an empty G-stage:
 * every page it touches is mapped by kvm_tdp_page_fault() from the
 * guest-page fault's gpa (htval << 2 | stval's low bits). A gpa with no
 * memslot is an emulated device (a UART and the test's control registers):
 * the faulting instruction is read from guest memory through the G-stage and
 * decoded (htinst is 0 under QEMU 7.2). A write to the read-only memslot
 * comes back as RET_PF_RO_WRITE and is dropped, as a ROM would.
 *
 * The other hart plays the host's memory manager. When the guest asks for
 * it, that hart invalidates the page the guest keeps reading, while the
 * guest runs on the vcpu hart without exiting, and then tells the guest
 * through guest memory. The guest's next access there must fault. QEMU
 * flushes a hart's whole TLB whenever it leaves V=1, so the vcpu hart's
 * stale translation survives only because the guest does not exit: the one
 * thing that can remove it is the remote HFENCE.GVMA the library's flush
 * reaches through the environment's TLB hook (SBI RFENCE). The break-flush
 * image leaves out both that and the format's own HFENCE.GVMA, and the check
 * fails.
 *
 * Both harts call into the library, so the environment runs the freestanding
 * quiescent-state RCU (s2_freestanding_smp(), CPU index from the hart id):
 * the vcpu hart is offline while the guest runs and reports a quiescent
 * state at the top of its loop; the host hart is online only while it
 * works (zap, kick) and offline while it waits or idles. The TLB hooks are
 * an SBI remote HFENCE.GVMA that OpenSBI completes on the other hart before
 * it returns, so they are declared broadcast (tlb_hooks_broadcast): a
 * ranged flush then needs no request or kick; a full flush still kicks.
 *
 * The run ends with the verdict in QEMU's exit status through sifive_test:
 * 0 pass, 1 the guest saw wrong data, 2 the zap check failed, 3 another
 * check failed, 4 an unexpected trap, 5 a library call failed.
 */
#include <stddef.h>
#include <stdint.h>

#include "../common/harness.h"
#include "../common/klib.h"
#include "../riscv64-common/rv.h"
#include "layout.h"
#include "s2mmu/decode.h"
#include "s2mmu/env-freestanding.h"
#include "s2mmu/notifier.h"
#include "s2mmu/riscv-g.h"
#include "s2mmu/s2mmu.h"
#include "s2mmu/sizing.h"

/* ---- the end of a run (the rest: ../riscv64-common/rv.h) ---------------- */

#define ZAP_DELAY 20000 /* 2 ms of the virt board's 10 MHz timebase */

static void keep_tables(void);

__attribute__((noreturn)) void finish(int code)
{
	static uint32_t finishing;

	/* One verdict, even if both harts get here. */
	if (__atomic_exchange_n(&finishing, 1, __ATOMIC_ACQ_REL))
		for (;;)
			__asm__ volatile("wfi");
	hlog("hyp: %s (exit code %d)\n", code ? "FAIL" : "PASS", code);
	if (code)
		keep_tables();
	rv_test_exit(code);
}

/* A trap of the hypervisor itself (hs.S): always a bug. */
void rv_hyp_trap(uint64_t scause, uint64_t sepc, uint64_t stval)
{
	hlog("hyp: trap in HS-mode on hart %lu: scause 0x%lx sepc 0x%lx stval 0x%lx\n", hart_self(),
	     scause, sepc, stval);
	finish(EXIT_TRAP);
}

/* ---- the environment ----------------------------------------------------- */

/*
 * The library's table pages (root, tables, the vcpu's memory cache) come
 * from their own pool at the start of H_POOL (so trace.sh's pmemsave of
 * H_POOL still holds them), sized at build time by the sizing calculator
 * (docs/static.md) for every region the guest can make the library map:
 * the MMIO window of the UART and control pages (cached MMIO entries need a
 * 4 KiB leaf's tables, docs/mmio.md), the huge slot's 1 GiB leaf (a root
 * entry: no table), the RAM slot in 2 MiB leaves, the 4 KiB-only slots
 * (small, ROM, scratch). Ascending gpa order; geometry: Sv39x4, 3 levels (a
 * root of four concatenated pages). Metadata (the VM, memslots) comes from
 * the rest of H_POOL (hv_env_init()). The rest of the figure, and
 * TABLE_POOL_SHORT: ../common/harness.h.
 */
#define T_TABLES_SUM                                                         \
	(T_PAGES(G_UART, T_MMIO_SIZE, 1) + T_PAGES(G_HUGE, G_HUGE_SIZE, 3) + \
	 T_PAGES(G_RAM, G_RAM_SIZE, 2) + T_PAGES(G_SMALL, G_SMALL_SIZE, 1) + \
	 T_PAGES(G_ROM, G_ROM_SIZE, 1) + T_PAGES(G_SCRATCH, G_SCRATCH_SIZE, 1))
#define T_TABLES_SHARED                                                                            \
	(T_SHARED(G_UART, T_MMIO_SIZE, 1, G_HUGE, 3) +                                             \
	 T_SHARED(G_HUGE, G_HUGE_SIZE, 3, G_RAM, 2) + T_SHARED(G_RAM, G_RAM_SIZE, 2, G_SMALL, 1) + \
	 T_SHARED(G_SMALL, G_SMALL_SIZE, 1, G_ROM, 1) +                                            \
	 T_SHARED(G_ROM, G_ROM_SIZE, 1, G_SCRATCH, 1))
#define T_TABLES (T_TABLES_SUM - T_TABLES_SHARED)
/* Root (four concatenated pages) + tables + one vcpu's cache (levels - 1). */
#define T_FIGURE ((4 + T_TABLES + 1 * 2) * 4096)

static struct s2_freestanding fs;

static uint64_t vcpu_hart, host_hart; /* hart ids */
#define VM_VMID 1

/* The RCU's CPUs: index 0 the vcpu hart, 1 the host hart. */
#define NCPUS 2
#define CPU_VCPU 0
#define CPU_HOST 1
#define MAX_HARTS 8
static struct s2_fs_cpu rcu_cpus[NCPUS];
static int cpu_of_hart[MAX_HARTS] = { -1, -1, -1, -1, -1, -1, -1, -1 };

static struct {
	unsigned hook_flush_vm, hook_flush_range, kicks, kicks_seen, rfence_errors;
} hw;

/*
 * The format runs HFENCE.GVMA on the hart that flushes (or, in the
 * break-flush image, nothing) and then calls these to reach the others: an
 * SBI remote HFENCE.GVMA for the VM's VMID on the other hart, which OpenSBI
 * runs there from M-mode. The break-flush image (BREAK_FLUSH) only counts.
 */
static void remote_hfence(struct kvm *kvm, gpa_t gpa, uint64_t size)
{
	uint64_t other = hart_self() == vcpu_hart ? host_hart : vcpu_hart;
	struct sbiret r;

	(void)kvm;
#ifdef BREAK_FLUSH
	(void)other;
	(void)gpa;
	(void)size;
	return;
#endif
	r = sbi_call(SBI_EXT_RFENCE, SBI_RFENCE_HFENCE_GVMA_VMID, 1, (long)other, (long)gpa,
		     (long)size, VM_VMID);
	if (r.error)
		__atomic_fetch_add(&hw.rfence_errors, 1, __ATOMIC_RELAXED);
}

static void env_tlb_flush_vm(void *ctx, struct kvm *kvm)
{
	(void)ctx;
	__atomic_fetch_add(&hw.hook_flush_vm, 1, __ATOMIC_RELAXED);
	remote_hfence(kvm, 0, ~0ull); /* size -1: every address */
}

static void env_tlb_flush_range(void *ctx, struct kvm *kvm, gpa_t gpa, uint64_t size)
{
	(void)ctx;
	__atomic_fetch_add(&hw.hook_flush_range, 1, __ATOMIC_RELAXED);
	remote_hfence(kvm, gpa, size);
}

/* A vcpu in guest mode must exit: a supervisor software interrupt (SBI IPI)
 * to its hart, which traps to HS-mode as the guest runs. */
static void env_kick(void *ctx, struct kvm_vcpu *vcpu)
{
	(void)ctx;
	(void)vcpu;
	__atomic_fetch_add(&hw.kicks, 1, __ATOMIC_RELAXED);
	sbi_call(SBI_EXT_IPI, 0, 1, (long)vcpu_hart, 0, 0, 0);
}

/* The RCU's this_cpu: the calling hart's index (hyp_main fills the map). */
static unsigned env_this_cpu(void *ctx)
{
	uint64_t h = hart_self();

	(void)ctx;
	if (h >= MAX_HARTS || cpu_of_hart[h] < 0) {
		hlog("hyp: library call on hart %lu, unknown to the RCU\n", h);
		finish(EXIT_TRAP);
	}
	return (unsigned)cpu_of_hart[h];
}

/* ---- the VM --------------------------------------------------------------- */

static struct kvm *kvm;
#define VM_FMT_FLAGS S2_FMTF_AD /* the VM's, for the tables line */

/*
 * A failed run says where its tables are (the table pool at H_POOL: every
 * table page) and keeps them KEEP_TABLES_S seconds of the 10 MHz timebase
 * for run.sh, which saves them with QEMU's pmemsave and quits QEMU
 * (../common/keep-tables.sh); unwatched, the run then ends as before.
 */
#define KEEP_TABLES_S 10

static void keep_tables(void)
{
	uint64_t t0;

	if (!hv_keep_tables_line(kvm, VM_FMT_FLAGS))
		return;
	t0 = csr_read(time);
	while (csr_read(time) - t0 < KEEP_TABLES_S * 10000000ull)
		;
}
static struct kvm_vcpu *vcpu;
static struct rv_regs regs;

static struct {
	unsigned gpf[3]; /* fetch, load, store guest-page faults */
	unsigned mmio_load, mmio_store, mmio_uart, mmio_ctl;
	unsigned ro_write;
	unsigned req_flush;		       /* stage-2 flush actions not owed by a load */
	unsigned loads;			       /* LOAD_ROOT actions */
	unsigned zap_armed, zap_started, zaps; /* written by the other hart: atomics */
	unsigned kick_armed, kick_flushes;
	enum kvm_vcpu_mode kick_mode_after; /* right after the flush: never EXITING */
	unsigned zap_leaves, zap_flushes, zap_refaults;
	unsigned zap_kicks;   /* kicks during the zap's ranged flush: 0 */
	uint64_t gp_scratch;  /* grace periods for the scratch slot */
	long age_cleared;     /* clear_flush_young: young leaves found */
	int age_right_after;  /* test_young right after: 0 expected */
	int age_after_access; /* test_young after the guest's read: 1 */
	unsigned age_faults;  /* guest-page faults on G_AGE since the aging */
	bool aging;
	bool first_exit_seen, first_exit_ok;
	bool done;
	uint64_t verdict;
	struct hv_faults pf;
} st;

/* Read guest memory the way the hart fetched it: gpa -> hpa through the
 * G-stage tables (the guest runs with vsatp = 0, so its pc is a gpa). */
static int guest_read16(gpa_t gpa, uint16_t *out)
{
	uint64_t hpa;

	if (hv_guest_hpa(kvm, gpa, &hpa))
		return -1;
	*out = *(volatile uint16_t *)(uintptr_t)hpa;
	return 0;
}

/* The faulting load/store, through the library's decoder: from htinst when
 * the hart gave one, else from guest memory at pc. */
static int fetch_decode(struct s2_insn *d, uint32_t *raw)
{
	uint16_t lo, hi = 0;

	if (regs.htinst && s2_decode_riscv_htinst(regs.htinst, regs.pc, d) == 0) {
		*raw = (uint32_t)regs.htinst;
		return 0;
	}
	if (guest_read16(regs.pc, &lo))
		return -1;
	if ((lo & 3) == 3 && guest_read16(regs.pc + 2, &hi))
		return -1;
	*raw = lo | (uint32_t)hi << 16;
	if (s2_decode_riscv(*raw, regs.pc, d))
		return -1;
	/* The guest has no FP state here (built without F/D). */
	return (d->flags & S2_INSN_FP) ? -1 : 0;
}

/* The library's complete helper on the guest's registers: a load's rd
 * (extended, never x0), a store's value, the pc. */
static void complete(const struct s2_insn *d, uint64_t *val)
{
	struct s2_riscv_regs r = { .pc = regs.pc };

	for (unsigned i = 0; i < 32; i++)
		r.x[i] = regs.x[i];
	if (s2_riscv_complete(d, &r, val))
		finish(EXIT_TRAP);
	for (unsigned i = 1; i < 32; i++)
		regs.x[i] = r.x[i];
	regs.pc = r.pc;
}

/* ---- emulated devices ---------------------------------------------------- */

static void age(uint64_t step);

static int dev_read(gpa_t gpa, unsigned width, uint64_t *val)
{
	(void)width;
	*val = 0;
	if (gpa >= G_UART && gpa < G_UART + 8) {
		st.mmio_uart++;
		if (gpa - G_UART == UART_LSR)
			*val = UART_LSR_IDLE;
		return 0;
	}
	if (gpa >= G_CTL && gpa < G_CTL + 0x100) {
		st.mmio_ctl++;
		if (gpa - G_CTL == CTL_ZAP_DONE)
			*val = __atomic_load_n(&st.zaps, __ATOMIC_ACQUIRE);
		else if (gpa - G_CTL == CTL_MAGIC)
			*val = MAGIC;
		return 0;
	}
	return -1;
}

static int dev_write(gpa_t gpa, unsigned width, uint64_t val)
{
	(void)width;
	if (gpa >= G_UART && gpa < G_UART + 8) {
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
		case CTL_ZAP_ARM: __atomic_store_n(&st.zap_armed, 1, __ATOMIC_RELEASE); break;
		case CTL_PHASE: hlog("hyp: guest phase %lu (%u-byte store)\n", val, width); break;
		case CTL_AGE: age(val); break;
		case CTL_KICK: __atomic_store_n(&st.kick_armed, 1, __ATOMIC_RELEASE); break;
		default: break;
		}
		return 0;
	}
	return -1;
}

/* Emulate the load/store at the guest's pc against a device at @gpa. */
static void emulate_mmio(gpa_t gpa)
{
	struct s2_insn d;
	uint32_t raw = 0;
	uint64_t v = 0;

	if (fetch_decode(&d, &raw)) {
		hlog("hyp: cannot decode insn 0x%x at 0x%lx for MMIO at 0x%lx\n", raw, regs.pc,
		     gpa);
		finish(EXIT_TRAP);
	}
	if (d.dir == S2_DIR_STORE) {
		st.mmio_store++;
		complete(&d, &v);
		if (dev_write(gpa, d.size, v))
			goto unknown;
	} else {
		st.mmio_load++;
		if (dev_read(gpa, d.size, &v))
			goto unknown;
		complete(&d, &v);
	}
	return;
unknown:
	hlog("hyp: guest access to unknown gpa 0x%lx (insn 0x%x at 0x%lx)\n", gpa, raw, regs.pc);
	finish(EXIT_TRAP);
}

/* The guest wrote to the read-only slot: drop the write, as a ROM would. */
static void drop_ro_write(gpa_t gpa)
{
	struct s2_insn d;
	uint32_t raw = 0;

	if (fetch_decode(&d, &raw) || d.dir != S2_DIR_STORE) {
		hlog("hyp: cannot decode the store at 0x%lx\n", regs.pc);
		finish(EXIT_TRAP);
	}
	st.ro_write++;
	hlog("hyp: RET_PF_RO_WRITE: %u-byte write of 0x%lx to read-only gpa 0x%lx dropped\n",
	     d.size, d.reg ? regs.x[d.reg] : 0, gpa);
	regs.pc = d.next_pc;
}

/* ---- exits ---------------------------------------------------------------- */

/*
 * A memslot appears and goes again on the host hart while the guest runs on
 * the other (the guest never touches it). Each change frees the memslot
 * array it replaced after synchronize_rcu, which must find the vcpu hart
 * offline (in the guest) or past a quiescent state: a hart that never
 * reported one would hang here, and a no-op grace period is not counted.
 */
static void scratch_slot(void)
{
	uint64_t gp = __atomic_load_n(&fs.gp_seq, __ATOMIC_RELAXED);

	hv_scratch_slot(kvm);
	st.gp_scratch = __atomic_load_n(&fs.gp_seq, __ATOMIC_RELAXED) - gp;
}

/*
 * The host hart: its memory manager is about to move the page behind G_ZAP
 * (as migration or swap would). The notifier's invalidate_range_start zaps
 * every leaf backing the hva range (the whole 2 MiB leaf) and flushes once
 * (kvm_flush_remote_tlbs_range: HFENCE.GVMA here, SBI remote HFENCE.GVMA on
 * the vcpu hart through the env hook) before it returns. The guest, which
 * never exits meanwhile, is told through its mailbox; its next access to the
 * page must fault.
 */
static void host_zap(void)
{
	hva_t hva = hv_hva_of(kvm, G_ZAP);
	uint64_t pc = regs.pc, leaves, flushes;
	unsigned kicks = __atomic_load_n(&hw.kicks, __ATOMIC_RELAXED);

	/* From here on, a fault on the page proves its translation was dropped
	 * (while the invalidation is in progress it returns RET_PF_RETRY). */
	__atomic_store_n(&st.zap_started, 1, __ATOMIC_RELEASE);
	hv_zap(kvm, hva, ZAP_SIZE, &leaves, &flushes);
	st.zap_kicks = __atomic_load_n(&hw.kicks, __ATOMIC_RELAXED) - kicks;
	st.zap_leaves = (unsigned)leaves;
	st.zap_flushes = (unsigned)flushes;
	scratch_slot();
	__atomic_store_n(&st.zaps, 1, __ATOMIC_RELEASE);
	*(volatile uint64_t *)(uintptr_t)hv_hva_of(kvm, G_MAILBOX) = MAILBOX_ZAPPED;
	hlog("hyp: hart %lu: invalidated hva [0x%lx, 0x%lx) (gpa 0x%llx) while the guest ran on "
	     "hart %lu (last exit at pc 0x%lx): %u leaves zapped, %u flushes; guest told\n",
	     hart_self(), hva, (hva_t)(hva + ZAP_SIZE), G_ZAP, vcpu_hart, pc, st.zap_leaves,
	     st.zap_flushes);
}

/*
 * The host hart flushes the whole VM while the vcpu is in guest mode:
 * kvm_flush_remote_tlbs() raises KVM_REQ_TLB_FLUSH on the vcpu and kicks it
 * (env_kick: an SBI IPI), so the vcpu exits and sees the request before it
 * enters again; the vcpu-mode handshake across harts.
 */
static void host_kick(void)
{
	uint64_t t = csr_read(time);

	while (kvm_vcpu_mode(vcpu) != IN_GUEST_MODE) {
		s2_fs_rcu_quiescent(&fs, CPU_HOST);
		if (csr_read(time) - t > 10 * ZAP_DELAY) {
			hlog("hyp: hart %lu: the vcpu never entered guest mode\n", hart_self());
			finish(EXIT_CHECK);
		}
	}
	kvm_flush_remote_tlbs(kvm);
	/* It returned once the kicked vcpu had left guest mode: outside now,
	 * or back in after the request, not still on its way out. */
	st.kick_mode_after = kvm_vcpu_mode(vcpu);
	__atomic_store_n(&st.kick_flushes, 1, __ATOMIC_RELEASE);
	*(volatile uint64_t *)(uintptr_t)hv_hva_of(kvm, G_MAILBOX) = MAILBOX_KICKED;
	hlog("hyp: hart %lu: kvm_flush_remote_tlbs() with the vcpu in guest mode: %u kick(s)\n",
	     hart_self(), __atomic_load_n(&hw.kicks, __ATOMIC_RELAXED));
}

/* The host hart's loop: wait until the guest arms the zap, let it run 2 ms
 * reading the page, zap; then the same for the kick; then idle. */
void hyp_secondary(uint64_t hartid)
{
	uint64_t t;

	(void)hartid; /* host_hart */
	/* It starts offline (s2_freestanding_smp) and is online only while
	 * it calls into the library: a waiting hart holds no grace period. */
	hlog("hyp: hart %lu up: host memory manager\n", hart_self());
	while (!__atomic_load_n(&st.zap_armed, __ATOMIC_ACQUIRE))
		;
	t = csr_read(time);
	while (csr_read(time) - t < ZAP_DELAY)
		;
	s2_fs_rcu_online(&fs, CPU_HOST);
	host_zap();
	s2_fs_rcu_offline(&fs, CPU_HOST);
	while (!__atomic_load_n(&st.kick_armed, __ATOMIC_ACQUIRE))
		;
	s2_fs_rcu_online(&fs, CPU_HOST);
	host_kick();
	s2_fs_rcu_offline(&fs, CPU_HOST);
	for (;;)
		__asm__ volatile("wfi");
}

/*
 * Page reclaim asks whether G_AGE was used: clear_flush_young clears A and
 * flushes, so the guest's next access sets it again (QEMU updates A in the
 * G-stage itself, which is why the VM is created with S2_FMTF_AD; a hart
 * that faults instead would exit and have the fault path set it).
 */
static void age(uint64_t step)
{
	hva_t hva = hv_hva_of(kvm, G_AGE);

	if (step == 1) {
		st.age_cleared = kvm_mmu_notifier_clear_flush_young(kvm, hva, hva + 4096);
		st.age_right_after = kvm_mmu_notifier_test_young(kvm, hva, hva + 4096);
		st.aging = true;
		hlog("hyp: aging gpa 0x%llx: clear_flush_young %ld, test_young right after %d\n",
		     G_AGE, st.age_cleared, st.age_right_after);
	} else {
		st.age_after_access = kvm_mmu_notifier_test_young(kvm, hva, hva + 4096);
		st.aging = false;
		hlog("hyp: aging gpa 0x%llx: test_young after the guest's read %d, "
		     "guest-page faults there %u\n",
		     G_AGE, st.age_after_access, st.age_faults);
	}
}

static void guest_page_fault(unsigned cause)
{
	gpa_t gpa = (regs.htval << 2) | (regs.stval & 3);
	unsigned access = cause == EXC_INSN_GPF ? S2_ACC_EXEC :
			  cause == EXC_LOAD_GPF ? S2_ACC_READ :
						  S2_ACC_WRITE;

	st.gpf[cause == EXC_INSN_GPF ? 0 : cause == EXC_LOAD_GPF ? 1 : 2]++;
	if (!st.first_exit_seen) {
		st.first_exit_seen = true;
		st.first_exit_ok = cause == EXC_INSN_GPF && gpa == G_RAM;
		hlog("hyp: first exit: %s guest-page fault at gpa 0x%lx (empty G-stage)\n",
		     cause == EXC_INSN_GPF ? "fetch" : "data", gpa);
	}
	if (__atomic_load_n(&st.zap_started, __ATOMIC_ACQUIRE) && gpa >= G_ZAP &&
	    gpa < G_ZAP + ZAP_SIZE)
		st.zap_refaults++;
	if (st.aging && gpa >= G_AGE && gpa < G_AGE + 4096)
		st.age_faults++;

	switch (hv_page_fault(kvm, vcpu, gpa, access, &st.pf)) {
	case RET_PF_EMULATE_MMIO:
		if (cause == EXC_INSN_GPF) {
			hlog("hyp: guest fetch from gpa 0x%lx with no memslot\n", gpa);
			finish(EXIT_TRAP);
		}
		emulate_mmio(gpa);
		break;
	case RET_PF_RO_WRITE: drop_ro_write(gpa); break;
	default: break;
	}
}

static void handle_exit(void)
{
	uint64_t cause = regs.scause;

	if (cause == (SCAUSE_IRQ | IRQ_S_SOFT)) {
		/* A kick: the request it announces is handled before re-entry. */
		csr_clear(sip, SIP_SSIP);
		hw.kicks_seen++;
		return;
	}
	switch (cause) {
	case EXC_INSN_GPF:
	case EXC_LOAD_GPF:
	case EXC_STORE_GPF: guest_page_fault((unsigned)cause); return;
	default:
		hlog("hyp: unexpected guest exit: scause 0x%lx sepc 0x%lx stval 0x%lx htval 0x%lx\n",
		     cause, regs.pc, regs.stval, regs.htval);
		finish(EXIT_TRAP);
	}
}

extern const char guest_image[], guest_image_end[];

static void setup(void)
{
	/* QEMU 7.2 sets A and D in G-stage entries itself: hardware A/D. */
	struct kvm_vm_params p = {
		.fmt = S2_FMT_RISCV_G,
		.gpa_bits = 41,
		.vmid = VM_VMID,
		.fmt_flags = VM_FMT_FLAGS,
		.mmio_cache = S2_MMIO_CACHE_ON,
	};
	int r;

	hv_env_init(&fs, T_POOL_BYTES);
	/* Both harts call into the library: quiescent-state RCU. */
	r = s2_freestanding_smp(&fs, rcu_cpus, NCPUS, env_this_cpu);
	if (r)
		lib_fail("s2_freestanding_smp", r);
	s2_fs_rcu_online(&fs, CPU_VCPU);
	fs.ops.tlb_flush_vm = env_tlb_flush_vm;
	fs.ops.tlb_flush_range = env_tlb_flush_range;
	/*
	 * HFENCE.GVMA on this hart (the format) and the SBI remote fence on
	 * the other, which OpenSBI runs there and waits for: every hart that
	 * may run the vcpu has dropped the translations when the hooks
	 * return, so a ranged flush needs no request, kick or wait. (The
	 * break-flush image declares the same with hooks that skip the remote
	 * fence: the zap check must then see the stale translation.)
	 */
	fs.ops.tlb_hooks_broadcast = true;
	fs.ops.kick = env_kick;
	p.env = &fs.env;

	r = kvm_create_vm(&p, &kvm);
	if (r)
		lib_fail("kvm_create_vm", r);
	hv_check_sizing(kvm, T_FIGURE);
	r = kvm_vcpu_create(kvm, 0, &vcpu);
	if (r)
		lib_fail("kvm_vcpu_create", r);
	hv_load_guest(kvm, guest_image, guest_image_end);
	__asm__ volatile("fence rw, rw\n\tfence.i" : : : "memory");

	/* hgatp is written by the first entry's LOAD_ROOT (run()). */
	hlog("hyp: %s, Sv39x4 (%u levels), hardware A/D, VMID %u, root 0x%lx\n",
	     s2_fmt_name(kvm_fmt(kvm)), kvm_mmu_levels(kvm), VM_VMID, kvm_mmu_root_hpa(kvm));
	csr_write(0x280, 0); /* vsatp: the guest runs untranslated (VA = gpa) */
	csr_set(sie, SIE_SSIE);
	regs.pc = G_RAM;
}

/*
 * The entry actions' instructions (hv_entry_actions(), in the order
 * kvm_vcpu_entry_actions() lists them, docs/rules.md "Requests"): load the
 * root into hgatp (the VMID with it), then the G-stage flush of this VMID
 * on this hart, HFENCE.GVMA with rs2 = VMID, for FLUSH_CURRENT and
 * FLUSH_ALL alike (the TLB is tagged by VMID, not by root), then the
 * guest's VS-stage, HFENCE.VVMA (for the VMID in hgatp). The first entry
 * loads the root. Ranged flushes raise no request here (HFENCE.GVMA on the
 * flushing hart and the SBI remote fence reach both harts), so the zap
 * check stays a test of the library's own fences; the full flush of
 * host_kick() does raise one.
 */
static void load_root(uint64_t reg)
{
	csr_write(0x680, reg); /* hgatp */
}

static void flush_vmid(void)
{
	/* hfence.gvma x0, vmid */
	__asm__ volatile(".insn r 0x73, 0, 0x31, x0, x0, %0" : : "r"((uint64_t)VM_VMID) : "memory");
}

static void flush_guest(void)
{
	/* hfence.vvma x0, x0: the VMID in hgatp */
	__asm__ volatile(".insn r 0x73, 0, 0x11, x0, x0, x0" : : : "memory");
}

static const struct hv_entry_ops entry_ops = { load_root, flush_vmid, flush_guest };

static void run(void)
{
	while (!st.done) {
		/* No library call in progress: a quiescent state. */
		s2_fs_rcu_quiescent(&fs, CPU_VCPU);
		hv_entry_actions(vcpu, &entry_ops, &st.loads, &st.req_flush);
		csr_set(0x600, HSTATUS_SPV);
		csr_set(sstatus, SSTATUS_SPP);
		if (!kvm_vcpu_enter_guest(vcpu))
			continue;
		/* The guest makes no library call: grace periods go on. */
		s2_fs_rcu_offline(&fs, CPU_VCPU);
		rv_run_guest(&regs);
		/* First thing after the exit: a flush may be waiting for it. */
		kvm_vcpu_exit_guest(vcpu);
		s2_fs_rcu_online(&fs, CPU_VCPU);
		handle_exit();
	}
}

static int report(void)
{
	struct kvm_mmu_stats s;
	char buf[320];
	int code = EXIT_PASS;

	/* Pairs with host_zap()'s release: its counters are visible after. */
	(void)__atomic_load_n(&st.zaps, __ATOMIC_ACQUIRE);
	hv_stats(kvm, &s);
	kvm_format_stats(kvm, buf, sizeof(buf));
	hlog("hyp: guest done, verdict %lu\n", st.verdict);
	hlog("hyp: exits: guest-page faults fetch=%u load=%u store=%u (fixed=%u spurious=%u "
	     "retry=%u), mmio load=%u store=%u (uart=%u ctl=%u), ro_write=%u, kicks=%u\n",
	     st.gpf[0], st.gpf[1], st.gpf[2], st.pf.fixed, st.pf.spurious, st.pf.retry,
	     st.mmio_load, st.mmio_store, st.mmio_uart, st.mmio_ctl, st.ro_write, hw.kicks_seen);
	hlog("hyp: stats: %s\n", buf);
	hlog("hyp: most leaves at once: 4K=%lu 2M=%lu 1G=%lu\n", st.pf.max_leaves[1],
	     st.pf.max_leaves[2], st.pf.max_leaves[3]);
	hlog("hyp: flushes: full=%lu ranged=%lu; env hooks after HFENCE.GVMA (SBI remote "
	     "HFENCE.GVMA%s): vm=%u range=%u, errors %u; flush requests=%u kicks=%u; "
	     "roots loaded=%u (hgatp 0x%lx)\n",
	     s.flushes, s.flushes_range,
#ifdef BREAK_FLUSH
	     ", skipped: break-flush image",
#else
	     "",
#endif
	     hw.hook_flush_vm, hw.hook_flush_range, hw.rfence_errors, st.req_flush, hw.kicks,
	     st.loads, csr_read(0x680));
	hlog("hyp: zap: %u zaps, %u leaves zapped, %u flushes (%u kicks), %u faults in the range "
	     "afterwards\n",
	     st.zaps, st.zap_leaves, st.zap_flushes, st.zap_kicks, st.zap_refaults);
	hlog("hyp: RCU (quiescent-state, %u harts): %lu grace periods (synchronize_rcu), %lu of "
	     "them for the scratch memslot's add and delete\n",
	     NCPUS, (unsigned long)__atomic_load_n(&fs.gp_seq, __ATOMIC_RELAXED),
	     (unsigned long)st.gp_scratch);

#define CHECK(cond, c, what) hv_check(&code, (cond), (c), (what))
	CHECK(st.first_exit_ok, EXIT_CHECK, "first exit: fetch fault at the entry point");
	CHECK(st.verdict == 0, EXIT_GUEST, "guest read back every pattern");
	CHECK(st.pf.max_leaves[3] >= 1, EXIT_CHECK, "1 GiB leaf used");
	CHECK(st.pf.max_leaves[2] >= 4, EXIT_CHECK, "2 MiB leaves used");
	CHECK(st.pf.max_leaves[1] >= SMALL_TOUCH / 4096, EXIT_CHECK, "4 KiB leaves used");
	CHECK(s.faults_fast >= 1, EXIT_CHECK, "fault fast path (4 KiB leaves of one block)");
	CHECK(st.ro_write == 1 && s.exits_ro_write == 1, EXIT_CHECK,
	      "read-only write exit (RET_PF_RO_WRITE)");
	CHECK(st.mmio_load > 0 && st.mmio_store > 0 &&
		      s.exits_mmio + s.exits_mmio_cached == st.mmio_load + st.mmio_store,
	      EXIT_CHECK, "MMIO exits decoded and emulated");
	CHECK(s.exits_mmio_cached > 0 && s.exits_mmio_cached > s.exits_mmio, EXIT_CHECK,
	      "most MMIO exits answered from cached entries");
	CHECK(st.zaps == 1 && st.zap_leaves >= 1 && st.zap_flushes == 1, EXIT_CHECK,
	      "notifier zap while running: leaves gone, one flush");
	/*
	 * Ranged flushes (the zap, the aging) rely on the broadcast hooks:
	 * no request, no kick; the one request seen is the full flush's
	 * (host_kick). A library that ignored tlb_hooks_broadcast would
	 * raise 3 (the kick may not show: the remote fence alone often makes
	 * the guest fault out before the request is raised).
	 */
	CHECK(st.zap_kicks == 0 && st.req_flush == 1, EXIT_CHECK,
	      "ranged flushes: broadcast hooks, no request or kick");
	CHECK(st.zap_refaults >= 1, EXIT_ZAP, "guest faulted again in the zapped range");
	CHECK(st.age_cleared == 1 && st.age_right_after == 0 && st.age_after_access == 1,
	      EXIT_CHECK, "aging: young, old when cleared, young again");
	CHECK(st.kick_flushes == 1 && hw.kicks == 1 && hw.kicks_seen >= 1 && st.req_flush >= 1,
	      EXIT_CHECK, "kick: remote flush made the running vcpu exit");
	CHECK(st.kick_mode_after != EXITING_GUEST_MODE, EXIT_CHECK,
	      "kick: flush returned once the vcpu left the guest");
	CHECK(hw.rfence_errors == 0, EXIT_CHECK, "SBI remote HFENCE.GVMA accepted");
	CHECK(st.loads == 1, EXIT_CHECK, "root loaded once, by the entry actions");
	CHECK(st.gp_scratch >= 2, EXIT_CHECK, "a grace period per memslot change on two harts");
	CHECK(!kvm_is_bugged(kvm) && s.refused_changes == 0, EXIT_CHECK, "VM not bugged");
#undef CHECK

#ifdef TRACE_ROUNDTRIP
	hv_trace_end(kvm, code, VM_FMT_FLAGS);
#endif
	return hv_destroy(kvm, code);
}

void hyp_main(uint64_t hartid);
void hyp_main(uint64_t hartid)
{
	struct sbiret r;

	vcpu_hart = hartid;
	host_hart = hartid ^ 1; /* -smp 2: harts 0 and 1 */
	cpu_of_hart[vcpu_hart] = CPU_VCPU;
	cpu_of_hart[host_hart] = CPU_HOST;
	hlog("hyp: s2mmu riscv64 example, HS-mode on hart %lu, hstatus 0x%lx\n", hartid,
	     csr_read(0x600));
	setup();
	r = sbi_call(SBI_EXT_HSM, 0 /* hart_start */, (long)host_hart, (long)_start_secondary, 0, 0,
		     0);
	if (r.error == SBI_ERR_ALREADY_AVAILABLE) {
		/* It came through _start too and is parked there. */
		hlog("hyp: hart %lu was parked in _start: released\n", host_hart);
		__atomic_store_n(&rv_park_release, 1, __ATOMIC_RELEASE);
	} else if (r.error) {
		hlog("hyp: cannot start hart %lu (SBI error %ld): run with -smp 2\n", host_hart,
		     r.error);
		finish(EXIT_TRAP);
	}
	run();
	finish(report());
}
