// SPDX-License-Identifier: MIT
/*
 * AMD SVM + nested paging half of the x86 example hypervisor, run under
 * QEMU's TCG (-cpu qemu64,+svm,+npt). The guest is 32-bit protected mode with
 * paging off, so every guest address is a guest-physical one and goes
 * straight through the nested tables s2mmu builds; nCR3 comes from
 * kvm_x86_npt_ncr3().
 *
 * TCG offers neither nRIP nor decode assists: an MMIO or read-only-memslot
 * exit says only the gpa and whether it was a write, so the shared code
 * decodes the instruction at the guest's rip from guest memory.
 *
 * The vcpu's CPU runs with interrupts off except around VMRUN (svm_entry.S):
 * with the INTR intercept and V_INTR_MASKING, the library's kick (an IPI
 * from the other CPU) makes the guest exit, and the host then takes the
 * interrupt (ipi_isr in start.S sends the EOI).
 *
 * VMCB offsets and exit codes: ../x86-common/vmcb.h.
 */
#include "../common/klib.h"
#include "../x86-common/hv.h"
#include "../x86-common/smp.h"
#include "../x86-common/vmcb.h"
#include "../x86-common/x86.h"
#include "s2mmu/x86-npt.h"

/* isa-debug-exit at port 0xf4: QEMU exits with status (code << 1) | 1. */
#define DEBUG_EXIT_PORT 0xf4
#define DEBUG_EXIT_PASS 0x10 /* status 33 */
#define DEBUG_EXIT_FAIL 0x11 /* status 35 */

#define COM1 0x3f8

void svm_enter(struct x86_gprs *g, uint64_t vmcb_pa);

static uint8_t vmcb[4096] __attribute__((aligned(4096)));
static uint8_t hsave[4096] __attribute__((aligned(4096)));
static struct x86_gprs gprs;
static uint8_t tlb_flush_type;
static uint64_t n_tlb_control, n_flush_requests, n_entries, n_loads;
static struct kvm *vm;
#define V8(o) (*(volatile uint8_t *)(vmcb + (o)))
#define V16(o) (*(volatile uint16_t *)(vmcb + (o)))
#define V32(o) (*(volatile uint32_t *)(vmcb + (o)))
#define V64(o) (*(volatile uint64_t *)(vmcb + (o)))

/* ---- console: COM1 (-serial stdio) and isa-debug-exit ---- */

void klib_putc(char c)
{
	if (c == '\n')
		klib_putc('\r');
	while (!(inb(COM1 + 5) & 0x20))
		;
	outb(COM1, (uint8_t)c);
}

void hv_console_init(void)
{
	outb(COM1 + 1, 0x00); /* no interrupts */
	outb(COM1 + 3, 0x80); /* DLAB: divisor 1, 115200 baud */
	outb(COM1 + 0, 0x01);
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03); /* 8N1 */
	outb(COM1 + 2, 0xc7); /* FIFOs on and cleared */
}

/*
 * A failed run keeps its tables a while for run.sh, which saves the pool
 * with QEMU's pmemsave when it sees the "hv: tables:" line and then quits
 * QEMU (../common/keep-tables.sh); unwatched, the run ends after about 2^34
 * TSC ticks (seconds).
 */
static void keep_tables(void)
{
	uint64_t pool, size;

	if (hv_print_tables(&pool, &size))
		tsc_wait(1ull << 34);
}

void hv_finish(bool pass)
{
	kprintf("RESULT: %s\n", pass ? "PASS" : "FAIL");
	if (!pass)
		keep_tables();
	outb(DEBUG_EXIT_PORT, pass ? DEBUG_EXIT_PASS : DEBUG_EXIT_FAIL);
	for (;;)
		__asm__ volatile("cli; hlt");
}

/* ---- hv_arch ---- */

static int svm_caps(struct kvm_vm_params *p)
{
	uint32_t r[4];

	cpuid(0x80000001, 0, r);
	if (!(r[2] & (1u << 2))) {
		kprintf("svm: CPUID 8000_0001h:ECX.SVM = 0\n");
		return -1;
	}
	cpuid(0x8000000a, 0, r);
	kprintf("svm: revision %u, %u ASIDs, features 0x%x (NP %u, nRIP %u, FlushByAsid %u, "
		"DecodeAssists %u)\n",
		r[0] & 0xff, r[1], r[3], r[3] & 1, (r[3] >> 3) & 1, (r[3] >> 6) & 1,
		(r[3] >> 7) & 1);
	if (!(r[3] & 1)) {
		kprintf("svm: no nested paging\n");
		return -1;
	}
	tlb_flush_type = (r[3] & (1u << 6)) ? TLB_CONTROL_FLUSH_ASID : TLB_CONTROL_FLUSH_ALL;
	/* Nested tables always have hardware A/D; 1 GiB leaves need PDPE1GB. */
	p->fmt_flags |= S2_FMTF_AD;
	cpuid(0x80000001, 0, r);
	p->max_leaf_level = (r[3] & (1u << 26)) ? 3 : 2;
	/*
	 * MAXPHYADDR (less SME's reduction): below 52, cached MMIO entries set
	 * the address bits above it, and a repeated device access exits as an
	 * NPF with RSV, answered without a memslot lookup (docs/mmio.md).
	 */
	cpuid(0x80000008, 0, r);
	p->host_pa_bits = r[0] & 0xff;
	cpuid(0x80000000, 0, r);
	if (r[0] >= 0x8000001f) {
		cpuid(0x8000001f, 0, r);
		if (r[0] & 1) /* SME: the C-bit takes address bits */
			p->host_pa_bits -= (r[1] >> 6) & 0x3f;
	}
	if (p->host_pa_bits >= 32 && p->host_pa_bits < 52)
		p->mmio_cache = S2_MMIO_CACHE_ON;
	else
		p->host_pa_bits = 0;
	kprintf("svm: largest nested leaf level %u, TLB_CONTROL %u on flush, MAXPHYADDR %u: "
		"MMIO entries %s\n",
		p->max_leaf_level, tlb_flush_type, p->host_pa_bits,
		p->mmio_cache == S2_MMIO_CACHE_ON ? "cached (reserved-bit NPF)" : "not cached");
	return 0;
}

/* On the vcpu's CPU: EFER.SVME and the host save area are per CPU. */
static int svm_cpu_init(void)
{
	wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SVME);
	wrmsr(MSR_VM_HSAVE_PA, (uint64_t)(uintptr_t)hsave);
	return 0;
}

static int svm_setup(struct kvm *kvm, uint64_t rip, uint64_t rsp)
{
	uint64_t ncr3;

	vm = kvm;
	if (kvm_x86_npt_ncr3(kvm, &ncr3)) {
		kprintf("svm: kvm_x86_npt_ncr3 failed\n");
		return -1;
	}
	kprintf("svm: nCR3 0x%llx (%u-level)\n", (unsigned long long)ncr3, kvm_mmu_levels(kvm));
	V32(VMCB_INTERCEPT_MISC1) = INTERCEPT1_INTR | INTERCEPT1_HLT;
	V32(VMCB_VINTR) = V_INTR_MASKING; /* the host's IF gates physical interrupts */
	V32(VMCB_INTERCEPT_MISC2) = INTERCEPT2_VMRUN | INTERCEPT2_VMMCALL;
	V32(VMCB_ASID) = 1;
	V8(VMCB_TLB_CONTROL) = TLB_CONTROL_FLUSH_ALL; /* nothing stale from before */
	V64(VMCB_NP_ENABLE) = 1;
	V64(VMCB_NCR3) = ncr3;
	V32(VMCB_CLEAN) = 0;

	/* 32-bit protected mode, flat segments, paging off. */
	for (unsigned i = 0; i < 6; i++)
		vmcb_seg(vmcb, i, i == 1 ? 0x08 : 0x10, i == 1 ? 0xc9b : 0xc93, 0xffffffff, 0);
	vmcb_seg(vmcb, 6, 0, 0, 0xffff, 0);    /* GDTR */
	vmcb_seg(vmcb, 7, 0, 0x82, 0xffff, 0); /* LDTR */
	vmcb_seg(vmcb, 8, 0, 0, 0xffff, 0);    /* IDTR */
	vmcb_seg(vmcb, 9, 0, 0x8b, 0xffff, 0); /* TR */
	V8(VMCB_CPL) = 0;
	V64(VMCB_EFER) = EFER_SVME; /* VMRUN requires it in the guest's EFER */
	V64(VMCB_CR4) = 0;
	V64(VMCB_CR3) = 0;
	V64(VMCB_CR0) = 0x11; /* PE | ET */
	V64(VMCB_DR7) = 0x400;
	V64(VMCB_DR6) = 0xffff0ff0;
	V64(VMCB_RFLAGS) = 2;
	V64(VMCB_RIP) = rip;
	V64(VMCB_RSP) = rsp;
	V64(VMCB_GPAT) = S2_NPT_PAT_DEFAULT;
	return 0;
}

/*
 * Act on the requests the library raised, before the next VMRUN, in the
 * order kvm_vcpu_entry_actions() lists. NPT's TLB is tagged by ASID, not by
 * the root: a root load writes nCR3 and the flush that follows it, like
 * FLUSH_CURRENT and FLUSH_ALL, is TLB_CONTROL's flush of this guest's ASID
 * (everything, where the CPU lacks FlushByAsid); FLUSH_GUEST, the guest's
 * own translations, is the same ASID flush on SVM.
 */
static void handle_requests(struct kvm_vcpu *vcpu)
{
	struct kvm_entry_actions acts;
	bool flush = false;

	if (kvm_vcpu_entry_actions(vcpu, &acts))
		hv_finish(false);
	for (unsigned i = 0; i < acts.nr; i++) {
		switch (acts.a[i].kind) {
		case KVM_ENTRY_LOAD_ROOT:
			V64(VMCB_NCR3) = acts.a[i].reg;
			n_loads++;
			break;
		case KVM_ENTRY_FLUSH_CURRENT:
		case KVM_ENTRY_FLUSH_ALL:
		case KVM_ENTRY_FLUSH_GUEST: flush = true; break;
		}
	}
	(void)kvm_check_request(vcpu, KVM_REQ_DIRTY_RING_SOFT_FULL);
	if (flush) {
		n_flush_requests++;
		if (!BREAK_FLUSH) {
			V8(VMCB_TLB_CONTROL) = tlb_flush_type;
			n_tlb_control++;
		}
	}
}

static int svm_run(struct kvm_vcpu *vcpu, struct hv_exit *e)
{
	uint64_t code;

	do
		handle_requests(vcpu);
	while (!kvm_vcpu_enter_guest(vcpu));
	n_entries++;
	V64(VMCB_RAX) = gprs.r[0];
	hv_rcu_offline();
	svm_enter(&gprs, (uint64_t)(uintptr_t)vmcb);
	/* First thing after the exit: a flush may be waiting for it. */
	kvm_vcpu_exit_guest(vcpu);
	hv_rcu_online();
	gprs.r[0] = V64(VMCB_RAX);
	gprs.r[4] = V64(VMCB_RSP);
	/* TLB_CONTROL acts at one VMRUN only. */
	V8(VMCB_TLB_CONTROL) = 0;

	code = V64(VMCB_EXITCODE);
	*e = (struct hv_exit){ .kind = HV_EXIT_OTHER, .rip = V64(VMCB_RIP) };
	e->raw[0] = code;
	e->raw[1] = V64(VMCB_EXITINFO1);
	e->raw[2] = V64(VMCB_EXITINFO2);
	switch (code) {
	case EXIT_NPF:
		e->kind = HV_EXIT_S2_FAULT;
		e->gpa = e->raw[2];
		e->access = s2_npt_fault_access(e->raw[1]);
		/* RSV: a cached MMIO entry (kvm_handle_npf's rule). */
		e->mmio_exit = e->raw[1] & S2_NPF_RSV;
		break;
	case EXIT_VMMCALL:
		e->kind = HV_EXIT_HYPERCALL;
		e->insn_len = 3; /* no nRIP under TCG; VMMCALL is 0f 01 d9 */
		break;
	case EXIT_HLT: e->kind = HV_EXIT_HLT; break;
	case EXIT_INTR: e->kind = HV_EXIT_KICK; break;
	case ~0ull: kprintf("svm: VMRUN failed: invalid guest state (VMEXIT_INVALID)\n"); return -1;
	default: break;
	}
	return 0;
}

static void svm_set_rip(uint64_t rip)
{
	V64(VMCB_RIP) = rip;
}

static struct x86_gprs *svm_gprs(void)
{
	return &gprs;
}

static void svm_print_flushes(void)
{
	kprintf("TLB: %llu flush requests handled before VMRUN, %llu with TLB_CONTROL=%u%s, %llu "
		"VMRUNs\n",
		(unsigned long long)n_flush_requests, (unsigned long long)n_tlb_control,
		tlb_flush_type, BREAK_FLUSH ? " [BREAK_FLUSH: requests ignored]" : "",
		(unsigned long long)n_entries);
	kprintf("roots: %llu loaded through kvm_vcpu_entry_actions\n", (unsigned long long)n_loads);
}

const struct hv_arch hv_arch = {
	.name = "AMD SVM + NPT (QEMU TCG)",
	.fmt = S2_FMT_X86_NPT,
	.caps = svm_caps,
	.cpu_init = svm_cpu_init,
	.setup = svm_setup,
	.run = svm_run,
	.set_rip = svm_set_rip,
	.gprs = svm_gprs,
	.print_flushes = svm_print_flushes,
};
