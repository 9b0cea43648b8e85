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
 * Field encodings, control bits, capability MSRs and the VMX instructions
 * are ../x86-common/vmcs.h's (shared with ../x86-linux-ept/vmx.c).
 */
#include "../common/klib.h"
#include "../x86-common/hv.h"
#include "../x86-common/smp.h"
#include "../x86-common/vmcs.h"
#include "../x86-common/x86.h"
#include "s2mmu/x86-ept.h"

/* Exit reasons. */
#define REASON_HLT 12
#define REASON_VMCALL 18
#define REASON_EPT_VIOLATION 48
#define REASON_EPT_MISCONFIG 49
#define REASON_EXT_INTR 1

static uint8_t vmxon_region[4096] __attribute__((aligned(4096)));
static uint8_t vmcs[4096] __attribute__((aligned(4096)));
static struct x86_gprs gprs;
static uint64_t basic, ept_cap, eptp;
static bool launched;
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

/*
 * A failed run's table pool for run.sh's writemem at the magic breakpoint,
 * which reads these two words with the debugger's @addr (physical; nm
 * hv.elf gives their place): 0 bytes (a pass) writes nothing. In memory, not in
 * registers: the debugger's registers are CPU 0's, and either CPU may end
 * the run.
 */
volatile uint32_t hv_tables_range[2]; /* pool, size (below 4 GiB) */

void hv_finish(bool pass)
{
	uint64_t pool, size;

	kprintf("RESULT: %s\n", pass ? "PASS" : "FAIL");
	if (!pass && hv_print_tables(&pool, &size)) {
		hv_tables_range[0] = (uint32_t)pool;
		hv_tables_range[1] = (uint32_t)size;
	}
	/* bochs magic breakpoint: returns to the debugger, which runs run.sh's
	 * commands (writemem of the range above, "quit"). */
	__asm__ volatile("xchg %%bx, %%bx" : : : "memory");
	for (;;)
		__asm__ volatile("cli; hlt");
}

/* ---- VMX instructions (../x86-common/vmcs.c) ---- */

void vmx_fatal(const char *what, uint64_t code)
{
	kprintf("vmx: %s failed (0x%llx)\n", what, (unsigned long long)code);
	hv_finish(false);
}

static void invept(unsigned type)
{
	vmx_invept(type, eptp);
	n_invept++;
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
	return vmx_on(vmxon_region, vmcs, 0);
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
	uint32_t exit = vmx_adjust(MSR_VMX_EXIT, MSR_VMX_TRUE_EXIT,
				   EXIT_HOST_64 | EXIT_SAVE_EFER | EXIT_LOAD_EFER | EXIT_ACK_INTR,
				   0, "exit controls");

	vm = kvm;
	if (kvm_x86_ept_eptp(kvm, &eptp)) {
		kprintf("vmx: kvm_x86_ept_eptp failed\n");
		return -1;
	}
	kprintf("vmx: EPTP 0x%llx (root 0x%llx, %u-level%s)\n", (unsigned long long)eptp,
		(unsigned long long)kvm_mmu_root_hpa(kvm), kvm_mmu_levels(kvm),
		(eptp & S2_EPTP_AD) ? ", A/D" : "");
	vmwrite(PIN_CTLS, vmx_adjust(MSR_VMX_PINBASED, MSR_VMX_TRUE_PINBASED, PIN_EXT_INTR_EXITING,
				     0, "pin controls"));
	vmwrite(PROC_CTLS, vmx_adjust(MSR_VMX_PROCBASED, MSR_VMX_TRUE_PROCBASED,
				      PROC_HLT_EXITING | PROC_SECONDARY, 0, "processor controls"));
	vmwrite(PROC_CTLS2,
		vmx_adjust(MSR_VMX_PROCBASED2, 0, PROC2_EPT | PROC2_VPID | PROC2_UNRESTRICTED, 0,
			   "secondary controls"));
	vmwrite(EXIT_CTLS, exit);
	vmwrite(ENTRY_CTLS, vmx_adjust(MSR_VMX_ENTRY, MSR_VMX_TRUE_ENTRY, ENTRY_LOAD_EFER, 0,
				       "entry controls"));
	vmwrite(EXC_BITMAP, 0);
	vmwrite(CR3_TARGET_COUNT, 0);
	vmwrite(EXIT_MSR_STORE_COUNT, 0);
	vmwrite(EXIT_MSR_LOAD_COUNT, 0);
	vmwrite(ENTRY_MSR_LOAD_COUNT, 0);
	vmwrite(ENTRY_INTR_INFO, 0);
	vmwrite(VPID, 1);
	vmwrite(EPT_POINTER, eptp);
	/* This CPU's own TSS and IDT: an exit restores them (vmcs.c). */
	vmx_setup_host_state();
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
			if (!BREAK_FLUSH) {
				vmx_invvpid_single(1);
				n_invvpid++;
			}
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
	if (vmx_enter(gprs.r, launched)) {
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
