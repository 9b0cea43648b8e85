// SPDX-License-Identifier: MIT
/*
 * Intel VMX + EPT half of the x86 example hypervisor, run under bochs
 * (cpu model corei7_skylake_x). The guest is 32-bit protected mode with
 * paging off, which "unrestricted guest" allows, so every guest address is a
 * guest-physical one and goes straight through the EPT tables s2mmu builds.
 *
 * VPID is on, so on real hardware VM entries and exits keep the guest's
 * cached translations and only INVEPT on KVM_REQ_TLB_FLUSH drops them (bochs
 * drops its whole TLB at every VM exit anyway). External interrupts exit
 * (acknowledged on exit): that is how the library's kick, an IPI from the
 * other CPU, takes the vcpu out of guest mode.
 *
 * Field encodings, control bits and capability MSRs: Intel SDM vol. 3C,
 * appendix B (VMCS encodings) and A (VMX capability reporting).
 */
#include "../common/klib.h"
#include "../x86-common/hv.h"
#include "../x86-common/smp.h"
#include "../x86-common/x86.h"
#include "s2mmu/x86-ept.h"

/* Capability MSRs. */
#define MSR_FEATURE_CONTROL 0x3a
#define MSR_VMX_BASIC 0x480
#define MSR_VMX_PINBASED 0x481
#define MSR_VMX_PROCBASED 0x482
#define MSR_VMX_EXIT 0x483
#define MSR_VMX_ENTRY 0x484
#define MSR_VMX_CR0_FIXED0 0x486
#define MSR_VMX_CR0_FIXED1 0x487
#define MSR_VMX_CR4_FIXED0 0x488
#define MSR_VMX_CR4_FIXED1 0x489
#define MSR_VMX_PROCBASED2 0x48b
#define MSR_VMX_EPT_VPID_CAP 0x48c
#define MSR_VMX_TRUE_PINBASED 0x48d
#define MSR_VMX_TRUE_PROCBASED 0x48e
#define MSR_VMX_TRUE_EXIT 0x48f
#define MSR_VMX_TRUE_ENTRY 0x490

/* EPT/VPID capabilities (MSR 0x48c). */
#define CAP_EPT_4LEVEL (1ull << 6)
#define CAP_EPT_WB (1ull << 14)
#define CAP_EPT_2M (1ull << 16)
#define CAP_EPT_1G (1ull << 17)
#define CAP_INVEPT (1ull << 20)
#define CAP_EPT_AD (1ull << 21)
#define CAP_INVEPT_SINGLE (1ull << 25)
#define CAP_INVEPT_ALL (1ull << 26)

/* VMCS fields. */
enum {
	VPID = 0x0000,
	GUEST_ES_SEL = 0x0800, /* ES CS SS DS FS GS LDTR TR, step 2 */
	HOST_ES_SEL = 0x0c00,  /* ES CS SS DS FS GS TR, step 2 */
	EPT_POINTER = 0x201a,
	GUEST_PHYS_ADDR = 0x2400,
	VMCS_LINK = 0x2800,
	GUEST_DEBUGCTL = 0x2802,
	GUEST_PAT = 0x2804,
	GUEST_EFER = 0x2806,
	HOST_PAT = 0x2c00,
	HOST_EFER = 0x2c02,
	PIN_CTLS = 0x4000,
	PROC_CTLS = 0x4002,
	EXC_BITMAP = 0x4004,
	CR3_TARGET_COUNT = 0x400a,
	EXIT_CTLS = 0x400c,
	EXIT_MSR_STORE_COUNT = 0x400e,
	EXIT_MSR_LOAD_COUNT = 0x4010,
	ENTRY_CTLS = 0x4012,
	ENTRY_MSR_LOAD_COUNT = 0x4014,
	ENTRY_INTR_INFO = 0x4016,
	PROC_CTLS2 = 0x401e,
	VM_INSN_ERROR = 0x4400,
	EXIT_REASON = 0x4402,
	EXIT_INSN_LEN = 0x440c,
	GUEST_ES_LIMIT = 0x4800, /* ES CS SS DS FS GS LDTR TR GDTR IDTR */
	GUEST_ES_AR = 0x4814,	 /* ES CS SS DS FS GS LDTR TR */
	GUEST_INTERRUPTIBILITY = 0x4824,
	GUEST_ACTIVITY = 0x4826,
	GUEST_SYSENTER_CS = 0x482a,
	HOST_SYSENTER_CS = 0x4c00,
	EXIT_QUAL = 0x6400,
	GUEST_LINEAR_ADDR = 0x640a,
	GUEST_CR0 = 0x6800,
	GUEST_CR3 = 0x6802,
	GUEST_CR4 = 0x6804,
	GUEST_ES_BASE = 0x6806, /* ES CS SS DS FS GS LDTR TR GDTR IDTR */
	GUEST_DR7 = 0x681a,
	GUEST_RSP = 0x681c,
	GUEST_RIP = 0x681e,
	GUEST_RFLAGS = 0x6820,
	GUEST_PENDING_DBG = 0x6822,
	GUEST_SYSENTER_ESP = 0x6824,
	GUEST_SYSENTER_EIP = 0x6826,
	HOST_CR0 = 0x6c00,
	HOST_CR3 = 0x6c02,
	HOST_CR4 = 0x6c04,
	HOST_FS_BASE = 0x6c06,
	HOST_GS_BASE = 0x6c08,
	HOST_TR_BASE = 0x6c0a,
	HOST_GDTR_BASE = 0x6c0c,
	HOST_IDTR_BASE = 0x6c0e,
	HOST_SYSENTER_ESP = 0x6c10,
	HOST_SYSENTER_EIP = 0x6c12,
	HOST_RIP = 0x6c16,
};

/* Control bits. */
#define PIN_EXT_INTR_EXITING (1u << 0)
#define PROC_HLT_EXITING (1u << 7)
#define PROC_SECONDARY (1u << 31)
#define PROC2_EPT (1u << 1)
#define PROC2_VPID (1u << 5)
#define PROC2_UNRESTRICTED (1u << 7)
#define EXIT_HOST_64 (1u << 9)
#define EXIT_ACK_INTR (1u << 15)
#define EXIT_SAVE_EFER (1u << 20)
#define EXIT_LOAD_EFER (1u << 21)
#define ENTRY_LOAD_EFER (1u << 15)

/* Exit reasons. */
#define REASON_HLT 12
#define REASON_VMCALL 18
#define REASON_EPT_VIOLATION 48
#define REASON_EPT_MISCONFIG 49
#define REASON_EXT_INTR 1

#define INVEPT_SINGLE 1
#define INVEPT_ALL 2

int vmx_enter(struct x86_gprs *g, int launched);
void vmx_exit_stub(void);

static uint8_t vmxon_region[4096] __attribute__((aligned(4096)));
static uint8_t vmcs[4096] __attribute__((aligned(4096)));
static struct x86_gprs gprs;
static uint64_t basic, ept_cap, eptp;
static bool true_ctls, launched;
static unsigned invept_type;
static uint64_t n_invept, n_invvpid, n_flush_requests, n_entries, n_loads;
/* The fast zap this example makes while its guest runs (issue 11): at
 * which VM entry, its result, and the EPTPs before and after the reload. */
#define FAST_ZAP_AT 3
static uint64_t fz_old_eptp, fz_new_eptp;
static int fz_result = 1;

static struct kvm *vm;

/* ---- console: bochs's port 0xe9 hack ---- */

void klib_putc(char c)
{
	outb(0xe9, (uint8_t)c);
}

void hv_console_init(void)
{
}

void hv_finish(bool pass)
{
	kprintf("RESULT: %s\n", pass ? "PASS" : "FAIL");
	/* bochs magic breakpoint: returns to the debugger, which runs "quit". */
	__asm__ volatile("xchg %%bx, %%bx" : : : "memory");
	for (;;)
		__asm__ volatile("cli; hlt");
}

/* ---- VMX instructions ---- */

static uint64_t vmread(uint64_t field)
{
	uint64_t v;

	__asm__ volatile("vmread %1, %0" : "=r"(v) : "r"(field) : "cc");
	return v;
}

static void vmwrite(uint64_t field, uint64_t v)
{
	uint8_t bad;

	__asm__ volatile("vmwrite %2, %1; setna %0"
			 : "=q"(bad)
			 : "r"(field), "r"(v)
			 : "cc", "memory");
	if (bad) {
		kprintf("vmx: vmwrite 0x%llx = 0x%llx failed, error %llu\n",
			(unsigned long long)field, (unsigned long long)v,
			(unsigned long long)vmread(VM_INSN_ERROR));
		hv_finish(false);
	}
}

/* A VMX instruction on a physical address operand; false on VMfail. */
#define VMX_PA_OP(insn, pa)                                                                      \
	({                                                                                       \
		uint64_t pa_ = (pa);                                                             \
		uint8_t bad_;                                                                    \
		__asm__ volatile(insn " %1; setna %0" : "=q"(bad_) : "m"(pa_) : "cc", "memory"); \
		!bad_;                                                                           \
	})

static void invept(unsigned type)
{
	struct {
		uint64_t eptp, zero;
	} desc = { eptp, 0 };
	uint8_t bad;

	__asm__ volatile("invept %1, %2; setna %0"
			 : "=q"(bad)
			 : "m"(desc), "r"((uint64_t)type)
			 : "cc", "memory");
	if (bad) {
		kprintf("vmx: invept type %u failed\n", type);
		hv_finish(false);
	}
	n_invept++;
}

/* INVVPID single-context (type 1) for the guest's VPID: its own (stage-1)
 * translations, KVM_ENTRY_FLUSH_GUEST. */
static void invvpid_single(uint16_t vpid)
{
	struct {
		uint64_t vpid, gla;
	} desc = { vpid, 0 };
	uint8_t bad;

	__asm__ volatile("invvpid %1, %2; setna %0"
			 : "=q"(bad)
			 : "m"(desc), "r"((uint64_t)1)
			 : "cc", "memory");
	if (bad) {
		kprintf("vmx: invvpid failed\n");
		hv_finish(false);
	}
	n_invvpid++;
}

/* Allowed-0/allowed-1 settings of a control MSR applied to what we want. */
static uint32_t adjust(uint32_t msr, uint32_t true_msr, uint32_t want, const char *name)
{
	uint64_t cap = rdmsr(true_ctls && true_msr ? true_msr : msr);
	uint32_t v = (want | (uint32_t)cap) & (uint32_t)(cap >> 32);

	if ((v & want) != want)
		kprintf("vmx: %s: wanted 0x%x, allowed 0x%x\n", name, want, v);
	return v;
}

/* ---- hv_arch ---- */

static int vmx_caps(struct kvm_vm_params *p)
{
	uint32_t r[4];
	uint64_t procbased2;

	cpuid(1, 0, r);
	if (!(r[2] & (1u << 5))) {
		kprintf("vmx: CPUID.1:ECX.VMX = 0\n");
		return -1;
	}
	basic = rdmsr(MSR_VMX_BASIC);
	true_ctls = (basic >> 55) & 1;
	procbased2 = rdmsr(MSR_VMX_PROCBASED2) >> 32;
	ept_cap = rdmsr(MSR_VMX_EPT_VPID_CAP);
	kprintf("vmx: VMX_BASIC 0x%llx, secondary allowed-1 0x%llx, EPT/VPID cap 0x%llx\n",
		(unsigned long long)basic, (unsigned long long)procbased2,
		(unsigned long long)ept_cap);
	if (!(procbased2 & PROC2_EPT) || !(procbased2 & PROC2_UNRESTRICTED) ||
	    !(procbased2 & PROC2_VPID) || !(ept_cap & CAP_EPT_4LEVEL) || !(ept_cap & CAP_EPT_WB) ||
	    !(ept_cap & CAP_INVEPT) || !(ept_cap & (CAP_INVEPT_SINGLE | CAP_INVEPT_ALL))) {
		kprintf("vmx: need EPT (4-level, WB, INVEPT), VPID and unrestricted guest\n");
		return -1;
	}
	invept_type = (ept_cap & CAP_INVEPT_SINGLE) ? INVEPT_SINGLE : INVEPT_ALL;
	if (ept_cap & CAP_EPT_AD)
		p->fmt_flags |= S2_FMTF_AD;
	p->max_leaf_level = (ept_cap & CAP_EPT_1G) ? 3 : (ept_cap & CAP_EPT_2M) ? 2 : 1;
	/* Repeated device accesses exit as EPT misconfigurations and are
	 * answered from the cached MMIO entry (docs/mmio.md). */
	p->mmio_cache = S2_MMIO_CACHE_ON;
	kprintf("vmx: EPT A/D %s, largest leaf level %u, INVEPT %s-context\n",
		(p->fmt_flags & S2_FMTF_AD) ? "on" : "off", p->max_leaf_level,
		invept_type == INVEPT_SINGLE ? "single" : "all");
	return 0;
}

/* On the vcpu's CPU: IA32_FEATURE_CONTROL, CR0/CR4 as VMX requires, VMXON. */
static int vmx_cpu_init(void)
{
	uint64_t fc = rdmsr(MSR_FEATURE_CONTROL);

	if (!(fc & 1)) {
		wrmsr(MSR_FEATURE_CONTROL, fc | 1 | 4); /* lock, VMX outside SMX */
	} else if (!(fc & 4)) {
		kprintf("vmx: disabled by IA32_FEATURE_CONTROL\n");
		return -1;
	}
	X86_WRITE_CR(0, (X86_READ_CR(0) | rdmsr(MSR_VMX_CR0_FIXED0)) & rdmsr(MSR_VMX_CR0_FIXED1));
	X86_WRITE_CR(4, (X86_READ_CR(4) | rdmsr(MSR_VMX_CR4_FIXED0) | (1u << 13)) &
				rdmsr(MSR_VMX_CR4_FIXED1));
	*(uint32_t *)vmxon_region = (uint32_t)basic & 0x7fffffff;
	*(uint32_t *)vmcs = (uint32_t)basic & 0x7fffffff;
	if (!VMX_PA_OP("vmxon", (uint64_t)(uintptr_t)vmxon_region) ||
	    !VMX_PA_OP("vmclear", (uint64_t)(uintptr_t)vmcs) ||
	    !VMX_PA_OP("vmptrld", (uint64_t)(uintptr_t)vmcs)) {
		kprintf("vmx: VMXON/VMCLEAR/VMPTRLD failed\n");
		return -1;
	}
	return 0;
}

static void setup_host_state(void)
{
	struct x86_host_tables t;

	/* This CPU's own TSS and its IDT: an exit restores them, and an
	 * interrupt or NMI the host takes after it goes through them. */
	x86_host_tables(&t);
	vmwrite(HOST_CR0, X86_READ_CR(0));
	vmwrite(HOST_CR3, X86_READ_CR(3));
	vmwrite(HOST_CR4, X86_READ_CR(4));
	for (unsigned i = 0; i < 6; i++)
		vmwrite(HOST_ES_SEL + 2 * i, i == 1 ? SEL_CODE64 : SEL_DATA);
	vmwrite(HOST_ES_SEL + 12, t.tr);
	vmwrite(HOST_FS_BASE, 0);
	vmwrite(HOST_GS_BASE, 0);
	vmwrite(HOST_TR_BASE, t.tr_base);
	vmwrite(HOST_GDTR_BASE, t.gdt_base);
	vmwrite(HOST_IDTR_BASE, t.idt_base);
	vmwrite(HOST_SYSENTER_CS, 0);
	vmwrite(HOST_SYSENTER_ESP, 0);
	vmwrite(HOST_SYSENTER_EIP, 0);
	vmwrite(HOST_PAT, rdmsr(0x277));
	vmwrite(HOST_EFER, rdmsr(MSR_EFER));
	vmwrite(HOST_RIP, (uint64_t)(uintptr_t)vmx_exit_stub);
	/* HOST_RSP is written by vmx_enter() right before each entry. */
}

/* 32-bit protected mode, flat 4 GiB segments, paging off. */
static void setup_guest_state(uint64_t rip, uint64_t rsp)
{
	uint64_t cr0_0 = rdmsr(MSR_VMX_CR0_FIXED0), cr0_1 = rdmsr(MSR_VMX_CR0_FIXED1);
	uint64_t cr4_0 = rdmsr(MSR_VMX_CR4_FIXED0), cr4_1 = rdmsr(MSR_VMX_CR4_FIXED1);

	for (unsigned i = 0; i < 6; i++) {
		vmwrite(GUEST_ES_SEL + 2 * i, i == 1 ? 0x08 : 0x10);
		vmwrite(GUEST_ES_LIMIT + 2 * i, 0xffffffff);
		vmwrite(GUEST_ES_AR + 2 * i, i == 1 ? 0xc09b : 0xc093);
		vmwrite(GUEST_ES_BASE + 2 * i, 0);
	}
	/* LDTR unusable, TR a busy 32-bit TSS (entry checks want one). */
	vmwrite(GUEST_ES_SEL + 12, 0);
	vmwrite(GUEST_ES_LIMIT + 12, 0);
	vmwrite(GUEST_ES_AR + 12, 0x10000);
	vmwrite(GUEST_ES_BASE + 12, 0);
	vmwrite(GUEST_ES_SEL + 14, 0);
	vmwrite(GUEST_ES_LIMIT + 14, 0x67);
	vmwrite(GUEST_ES_AR + 14, 0x8b);
	vmwrite(GUEST_ES_BASE + 14, 0);
	for (unsigned i = 8; i < 10; i++) { /* GDTR, IDTR */
		vmwrite(GUEST_ES_LIMIT + 2 * i, 0xffff);
		vmwrite(GUEST_ES_BASE + 2 * i, 0);
	}
	/* Unrestricted guest lifts the PG (and PE) requirement of CR0_FIXED0. */
	vmwrite(GUEST_CR0, (((1u << 0) | (1u << 4) | (1u << 5) | cr0_0) & cr0_1) & ~(1ull << 31));
	vmwrite(GUEST_CR3, 0);
	vmwrite(GUEST_CR4, cr4_0 & cr4_1);
	vmwrite(GUEST_DR7, 0x400);
	vmwrite(GUEST_RSP, rsp);
	vmwrite(GUEST_RIP, rip);
	/*
	 * IF = 1 although the guest takes no interrupts: with external-
	 * interrupt exiting every interrupt exits instead (the SDM says IF does
	 * not matter then, but bochs 2.7 holds the interrupt back while the
	 * guest's IF is 0, and the kick would never arrive).
	 */
	vmwrite(GUEST_RFLAGS, 0x202);
	vmwrite(GUEST_PENDING_DBG, 0);
	vmwrite(GUEST_INTERRUPTIBILITY, 0);
	vmwrite(GUEST_ACTIVITY, 0);
	vmwrite(GUEST_SYSENTER_CS, 0);
	vmwrite(GUEST_SYSENTER_ESP, 0);
	vmwrite(GUEST_SYSENTER_EIP, 0);
	vmwrite(GUEST_DEBUGCTL, 0);
	vmwrite(GUEST_PAT, 0x0007040600070406ull);
	vmwrite(GUEST_EFER, 0);
	vmwrite(VMCS_LINK, ~0ull);
}

static int vmx_setup(struct kvm *kvm, uint64_t rip, uint64_t rsp)
{
	uint32_t exit = adjust(MSR_VMX_EXIT, MSR_VMX_TRUE_EXIT,
			       EXIT_HOST_64 | EXIT_SAVE_EFER | EXIT_LOAD_EFER | EXIT_ACK_INTR,
			       "exit controls");

	vm = kvm;
	if (kvm_x86_ept_eptp(kvm, &eptp)) {
		kprintf("vmx: kvm_x86_ept_eptp failed\n");
		return -1;
	}
	kprintf("vmx: EPTP 0x%llx (root 0x%llx, %u-level%s)\n", (unsigned long long)eptp,
		(unsigned long long)kvm_mmu_root_hpa(kvm), kvm_mmu_levels(kvm),
		(eptp & S2_EPTP_AD) ? ", A/D" : "");
	vmwrite(PIN_CTLS, adjust(MSR_VMX_PINBASED, MSR_VMX_TRUE_PINBASED, PIN_EXT_INTR_EXITING,
				 "pin controls"));
	vmwrite(PROC_CTLS, adjust(MSR_VMX_PROCBASED, MSR_VMX_TRUE_PROCBASED,
				  PROC_HLT_EXITING | PROC_SECONDARY, "processor controls"));
	vmwrite(PROC_CTLS2,
		adjust(MSR_VMX_PROCBASED2, 0, PROC2_EPT | PROC2_VPID | PROC2_UNRESTRICTED,
		       "secondary controls"));
	vmwrite(EXIT_CTLS, exit);
	vmwrite(ENTRY_CTLS,
		adjust(MSR_VMX_ENTRY, MSR_VMX_TRUE_ENTRY, ENTRY_LOAD_EFER, "entry controls"));
	vmwrite(EXC_BITMAP, 0);
	vmwrite(CR3_TARGET_COUNT, 0);
	vmwrite(EXIT_MSR_STORE_COUNT, 0);
	vmwrite(EXIT_MSR_LOAD_COUNT, 0);
	vmwrite(ENTRY_MSR_LOAD_COUNT, 0);
	vmwrite(ENTRY_INTR_INFO, 0);
	vmwrite(VPID, 1);
	vmwrite(EPT_POINTER, eptp);
	setup_host_state();
	setup_guest_state(rip, rsp);
	/* Nothing stale from before this VM: start from an empty TLB. */
	invept(INVEPT_ALL);
	return 0;
}

/*
 * Act on the requests the library raised, before the next VM entry, in the
 * order kvm_vcpu_entry_actions() lists: load the root, then INVEPT
 * single-context for the current root (all-context only when the VM has
 * several valid roots), then INVVPID for the guest's own translations.
 */
static void handle_requests(struct kvm_vcpu *vcpu)
{
	struct kvm_entry_actions acts;

	if (kvm_vcpu_entry_actions(vcpu, &acts))
		hv_finish(false);
	for (unsigned i = 0; i < acts.nr; i++) {
		switch (acts.a[i].kind) {
		case KVM_ENTRY_LOAD_ROOT:
			eptp = acts.a[i].reg;
			vmwrite(EPT_POINTER, eptp);
			n_loads++;
			break;
		case KVM_ENTRY_FLUSH_CURRENT:
		case KVM_ENTRY_FLUSH_ALL:
			n_flush_requests++;
			if (!BREAK_FLUSH)
				invept(acts.a[i].kind == KVM_ENTRY_FLUSH_ALL && acts.nr_roots > 1 ?
					       INVEPT_ALL :
					       invept_type);
			break;
		case KVM_ENTRY_FLUSH_GUEST:
			if (!BREAK_FLUSH)
				invvpid_single(1);
			break;
		}
	}
	(void)kvm_check_request(vcpu, KVM_REQ_DIRTY_RING_SOFT_FULL);
}

/* A fast zap while the guest runs: every mapping goes at once, the vcpu
 * loads the new root before its next entry, and the guest faults its
 * memory back while it goes on with its checks. */
static void fast_zap_now(struct kvm_vcpu *vcpu)
{
	fz_old_eptp = eptp;
	fz_result = kvm_mmu_zap_all_fast(vm);
	if (fz_result)
		return;
	handle_requests(vcpu); /* MMU_RELOAD: LOAD_ROOT, INVEPT */
	fz_new_eptp = eptp;
}

static int vmx_run(struct kvm_vcpu *vcpu, struct hv_exit *e)
{
	uint64_t reason;

	if (n_entries == FAST_ZAP_AT)
		fast_zap_now(vcpu);
	do
		handle_requests(vcpu);
	while (!kvm_vcpu_enter_guest(vcpu));
	n_entries++;
	hv_rcu_offline();
	if (vmx_enter(&gprs, launched)) {
		kvm_vcpu_exit_guest(vcpu);
		hv_rcu_online();
		kprintf("vmx: VM entry failed, VM-instruction error %llu\n",
			(unsigned long long)vmread(VM_INSN_ERROR));
		return -1;
	}
	/* First thing after the exit: a flush may be waiting for it. */
	kvm_vcpu_exit_guest(vcpu);
	hv_rcu_online();
	launched = true;

	reason = vmread(EXIT_REASON);
	*e = (struct hv_exit){ .kind = HV_EXIT_OTHER, .rip = vmread(GUEST_RIP) };
	e->raw[0] = reason;
	e->raw[1] = vmread(EXIT_QUAL);
	if (reason & (1u << 31)) {
		kprintf("vmx: VM-entry failure, reason 0x%llx qualification 0x%llx\n",
			(unsigned long long)reason, (unsigned long long)e->raw[1]);
		return -1;
	}
	switch (reason & 0xffff) {
	case REASON_EPT_VIOLATION:
		e->kind = HV_EXIT_S2_FAULT;
		e->gpa = vmread(GUEST_PHYS_ADDR);
		e->access = s2_ept_violation_access(e->raw[1]);
		e->insn_len = (unsigned)vmread(EXIT_INSN_LEN);
		e->raw[2] = e->gpa;
		break;
	case REASON_VMCALL:
		e->kind = HV_EXIT_HYPERCALL;
		e->insn_len = (unsigned)vmread(EXIT_INSN_LEN);
		break;
	case REASON_HLT: e->kind = HV_EXIT_HLT; break;
	case REASON_EXT_INTR:
		/* Acknowledged by the exit itself: only the EOI is left. */
		e->kind = HV_EXIT_KICK;
		lapic_eoi();
		break;
	case REASON_EPT_MISCONFIG:
		/* The cached MMIO entries (caps() turns them on): no access
		 * reported; a read is what KVM assumes (docs/mmio.md). */
		e->kind = HV_EXIT_S2_FAULT;
		e->mmio_exit = true;
		e->gpa = vmread(GUEST_PHYS_ADDR);
		e->access = S2_ACC_READ;
		/* The SDM leaves the instruction length undefined here: the
		 * decoder's length moves rip (insn_len 0). */
		e->raw[2] = e->gpa;
		break;
	default: break;
	}
	return 0;
}

static void vmx_set_rip(uint64_t rip)
{
	vmwrite(GUEST_RIP, rip);
}

static struct x86_gprs *vmx_gprs(void)
{
	return &gprs;
}

static void vmx_print_flushes(void)
{
	bool fz_ok = !fz_result && fz_new_eptp && fz_new_eptp != fz_old_eptp;

	kprintf("  [%s] fast zap at VM entry %u while the guest ran (result %d): root 0x%llx -> "
		"0x%llx, loaded before the next entry\n",
		fz_ok ? "ok" : "FAIL", FAST_ZAP_AT, fz_result,
		(unsigned long long)(fz_old_eptp & ~0xfffull),
		(unsigned long long)(fz_new_eptp & ~0xfffull));
	if (!fz_ok)
		hv_finish(false);
	kprintf("TLB: %llu flush requests handled before entry, %llu INVEPT (type %u), %llu "
		"INVVPID%s, %llu VM entries, %llu root loads\n",
		(unsigned long long)n_flush_requests, (unsigned long long)n_invept, invept_type,
		(unsigned long long)n_invvpid,
		BREAK_FLUSH ? " [BREAK_FLUSH: requests ignored]" : "",
		(unsigned long long)n_entries, (unsigned long long)n_loads);
}

const struct hv_arch hv_arch = {
	.name = "Intel VMX + EPT (bochs)",
	.fmt = S2_FMT_X86_EPT,
	.caps = vmx_caps,
	.cpu_init = vmx_cpu_init,
	.setup = vmx_setup,
	.run = vmx_run,
	.set_rip = vmx_set_rip,
	.gprs = vmx_gprs,
	.print_flushes = vmx_print_flushes,
};
