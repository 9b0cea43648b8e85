// SPDX-License-Identifier: MIT
/*
 * AMD SVM + nested paging half of the x86 Linux partition example, under
 * QEMU TCG (-cpu qemu64,+svm,+npt).
 *
 * The guest owns its CPU's local APIC and the PC's legacy devices, and
 * physical interrupts: no INTR intercept, no V_INTR_MASKING, so an
 * interrupt is taken through the guest's IDT while it runs and waits, pending,
 * while the host handles an exit (the host runs with IF = 0). What the guest
 * must not reach is intercepted:
 *
 *  - SVM itself: VMRUN (which SVM requires), VMLOAD, VMSAVE, STGI, CLGI,
 *    SKINIT and INVLPGA exit and get #UD;
 *  - the MSR permission map traps linux.c's rules (the SVM MSRs, APIC_BASE,
 *    SYSCFG, HWCR, the MTRRs, EFER writes);
 *  - the I/O permission map traps linux.c's ports (reset, PCI configuration,
 *    the end-of-run port);
 *  - NMI (the host's kick arrives as an NMI), INIT and SHUTDOWN (a triple
 *    fault must not reset the physical CPU).
 *
 * VMRUN saves and #VMEXIT restores only part of the host's state. The rest
 * (FS, GS, TR, LDTR, KernelGsBase, STAR, LSTAR, CSTAR, SFMASK, SYSENTER_*)
 * is the guest's after a #VMEXIT until the host reloads it, so entry.S runs
 * VMLOAD (guest) / VMRUN / VMSAVE (guest) / VMLOAD (host, saved once here
 * with VMSAVE): the host's NMI handler and TR never run on the guest's.
 *
 * VMCB offsets and exit codes: ../x86-common/vmcb.h; the MSR and I/O
 * permission maps: AMD64 APM vol. 2, sections 15.10/15.11.
 */
#include "../common/klib.h"
#include "../x86-common/vmcb.h"
#include "../x86-common/x86.h"
#include "lx.h"
#include "s2mmu/x86-npt.h"

void svm_run_guest(struct lx_gprs *g, uint64_t vmcb_pa, uint64_t host_pa);

static uint8_t vmcb[4096] __attribute__((aligned(4096)));
static uint8_t hsave[4096] __attribute__((aligned(4096)));
static uint8_t host_save[4096] __attribute__((aligned(4096)));
static uint8_t msrpm[8192] __attribute__((aligned(4096)));
static uint8_t iopm[12288] __attribute__((aligned(4096)));
static struct lx_gprs gprs;
static uint8_t tlb_flush_type;
static uint64_t ncr3;
static uint64_t n_flushes, n_loads, n_entries;

#define V8(o) (*(volatile uint8_t *)(vmcb + (o)))
#define V16(o) (*(volatile uint16_t *)(vmcb + (o)))
#define V32(o) (*(volatile uint32_t *)(vmcb + (o)))
#define V64(o) (*(volatile uint64_t *)(vmcb + (o)))

static uint64_t pa(const void *p)
{
	return (uint64_t)(uintptr_t)p; /* the host is identity-mapped */
}

static int svm_caps(struct kvm_vm_params *p)
{
	uint32_t r[4];

	cpuid(0x80000001, 0, r);
	if (!(r[2] & (1u << 2))) {
		kprintf("svm: CPUID 8000_0001h:ECX.SVM = 0\n");
		return -1;
	}
	cpuid(0x8000000a, 0, r);
	if (!(r[3] & 1)) {
		kprintf("svm: no nested paging\n");
		return -1;
	}
	tlb_flush_type = (r[3] & (1u << 6)) ? TLB_CONTROL_FLUSH_ASID : TLB_CONTROL_FLUSH_ALL;
	p->fmt_flags |= S2_FMTF_AD;
	/* Guest RAM moves in 2 MiB blocks: no leaf larger than that. */
	p->max_leaf_level = 2;
	return 0;
}

/* The MSR permission map: 2 bits per MSR (read, write) in three ranges. */
static void msrpm_set(uint32_t msr, bool rd, bool wr)
{
	unsigned base, bit;

	if (msr <= 0x1fff)
		base = 0;
	else if (msr - 0xc0000000u <= 0x1fff)
		base = 0x800, msr -= 0xc0000000u;
	else if (msr - 0xc0010000u <= 0x1fff)
		base = 0x1000, msr -= 0xc0010000u;
	else
		lx_fail("MSR outside the permission map's ranges", (long)msr);
	bit = msr * 2;
	if (rd)
		msrpm[base + bit / 8] |= (uint8_t)(1u << (bit % 8));
	if (wr)
		msrpm[base + (bit + 1) / 8] |= (uint8_t)(1u << ((bit + 1) % 8));
}

static int svm_setup(uint64_t entry, uint64_t boot_params)
{
	wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SVME);
	wrmsr(MSR_VM_HSAVE_PA, pa(hsave));
	/* The host's VMLOAD state, reloaded after every #VMEXIT (entry.S). */
	__asm__ volatile("vmsave" : : "a"(pa(host_save)) : "memory");

	for (unsigned i = 0; i < lx_msr_nrules; i++)
		for (uint32_t m = lx_msr_rules[i].first; m <= lx_msr_rules[i].last; m++)
			msrpm_set(m, lx_msr_rules[i].read, lx_msr_rules[i].write);
	for (unsigned i = 0; i < lx_io_nports; i++)
		iopm[lx_io_ports[i] / 8] |= (uint8_t)(1u << (lx_io_ports[i] % 8));

	V32(VMCB_INTERCEPT_EXC) = 0;
	V32(VMCB_INTERCEPT_MISC1) = INTERCEPT1_NMI | INTERCEPT1_INIT | INTERCEPT1_INVLPGA |
				    INTERCEPT1_IOIO_PROT | INTERCEPT1_MSR_PROT |
				    INTERCEPT1_SHUTDOWN;
	/* The SVM instructions: VMRUN VMLOAD VMSAVE STGI CLGI SKINIT (not VMMCALL). */
	V32(VMCB_INTERCEPT_MISC2) = INTERCEPT2_VMRUN | INTERCEPT2_VMLOAD_SKINIT;
	V64(VMCB_IOPM_BASE) = pa(iopm);
	V64(VMCB_MSRPM_BASE) = pa(msrpm);
	V32(VMCB_VINTR) = 0; /* no V_INTR_MASKING: the guest's IF masks interrupts */
	V32(VMCB_ASID) = 1;
	V64(VMCB_NP_ENABLE) = 1;
	V32(VMCB_CLEAN) = 0;

	/* The 32-bit boot protocol: flat segments (0x10 code, 0x18 data), paging off. */
	for (unsigned i = 0; i < 6; i++)
		vmcb_seg(vmcb, i, i == 1 ? 0x10 : 0x18, i == 1 ? 0xc9b : 0xc93, 0xffffffff, 0);
	vmcb_seg(vmcb, 6, 0, 0, 0x1f, LX_GDT_GPA); /* GDTR */
	vmcb_seg(vmcb, 7, 0, 0x82, 0xffff, 0);	   /* LDTR */
	vmcb_seg(vmcb, 8, 0, 0, 0, 0);		   /* IDTR: limit 0 */
	vmcb_seg(vmcb, 9, 0, 0x8b, 0xffff, 0);	   /* TR */
	V8(VMCB_CPL) = 0;
	V64(VMCB_EFER) = EFER_SVME; /* VMRUN requires it in the guest's EFER */
	V64(VMCB_CR4) = 0;
	V64(VMCB_CR3) = 0;
	V64(VMCB_CR0) = 0x11; /* PE | ET */
	V64(VMCB_DR7) = 0x400;
	V64(VMCB_DR6) = 0xffff0ff0;
	V64(VMCB_RFLAGS) = 2;
	V64(VMCB_RIP) = entry;
	V64(VMCB_RSP) = 0;
	V64(VMCB_RAX) = 0;
	V64(VMCB_GPAT) = S2_NPT_PAT_DEFAULT;
	gprs.r[6] = boot_params; /* esi; ebx = ebp = edi = 0 */
	return 0;
}

static int svm_run(struct kvm_vcpu *vcpu, struct lx_exit *e)
{
	struct kvm_entry_actions acts;
	uint64_t code, i1;
	int r;

	for (;;) {
		r = kvm_vcpu_entry_actions(vcpu, &acts);
		if (r)
			lx_fail("kvm_vcpu_entry_actions", r);
		for (unsigned i = 0; i < acts.nr; i++) {
			switch (acts.a[i].kind) {
			case KVM_ENTRY_LOAD_ROOT:
				ncr3 = acts.a[i].reg;
				V64(VMCB_NCR3) = ncr3;
				n_loads++;
				break;
			case KVM_ENTRY_FLUSH_CURRENT:
			case KVM_ENTRY_FLUSH_ALL:
				n_flushes++;
				if (!BREAK_FLUSH)
					V8(VMCB_TLB_CONTROL) = tlb_flush_type;
				break;
			case KVM_ENTRY_FLUSH_GUEST:
				/* TLB_CONTROL covers the ASID's guest translations too. */
				V8(VMCB_TLB_CONTROL) = tlb_flush_type;
				break;
			}
		}
		/*
		 * GIF = 0 from here to VMRUN: a kick (NMI) that arrives after
		 * the vcpu entered guest mode stays pending and makes VMRUN
		 * exit at once (NMI intercept) instead of being taken by the
		 * host, which would leave the guest running unkicked. The
		 * host's IF is 0 already.
		 */
		__asm__ volatile("clgi" ::: "memory");
		if (kvm_vcpu_enter_guest(vcpu))
			break;
		__asm__ volatile("stgi" ::: "memory");
	}
	n_entries++;
	lx_rcu_offline();
	svm_run_guest(&gprs, pa(vmcb), pa(host_save));
	kvm_vcpu_exit_guest(vcpu); /* first: a flush may be waiting for this exit */
	lx_rcu_online();
	V8(VMCB_TLB_CONTROL) = 0; /* acts at one VMRUN only */

	code = V64(VMCB_EXITCODE);
	i1 = V64(VMCB_EXITINFO1);
	*e = (struct lx_exit){ .kind = LX_EXIT_OTHER, .rip = V64(VMCB_RIP) };
	e->raw[0] = code;
	e->raw[1] = i1;
	e->raw[2] = V64(VMCB_EXITINFO2);
	switch (code) {
	case EXIT_NPF:
		e->kind = LX_EXIT_NPF;
		e->gpa = e->raw[2];
		e->access = s2_npt_fault_access(i1);
		break;
	case EXIT_MSR:
		e->kind = LX_EXIT_MSR;
		e->write = i1 & 1;
		e->msr = (uint32_t)gprs.r[1];
		e->next_rip = e->rip + 2; /* no nRIP under TCG: RDMSR/WRMSR are 0f 32 / 0f 30 */
		break;
	case EXIT_IOIO:
		e->kind = LX_EXIT_IO;
		e->write = !(i1 & 1);
		e->string = (i1 >> 2) & 1;
		e->size = (i1 & (1u << 4)) ? 1 : (i1 & (1u << 5)) ? 2 : 4;
		e->port = (uint16_t)(i1 >> 16);
		e->next_rip = e->raw[2];
		break;
	case EXIT_NMI: e->kind = LX_EXIT_KICK; break;
	case EXIT_INIT: e->kind = LX_EXIT_INIT; break;
	case EXIT_SHUTDOWN: e->kind = LX_EXIT_SHUTDOWN; break;
	case EXIT_INVLPGA:
	case EXIT_VMRUN ... EXIT_SKINIT: e->kind = LX_EXIT_SVM_INSN; break;
	case ~0ull: kprintf("svm: VMRUN failed: invalid guest state (VMEXIT_INVALID)\n"); return -1;
	default: break;
	}
	return 0;
}

static struct lx_gprs *svm_gprs(void)
{
	return &gprs;
}

static uint64_t svm_get_rax(void)
{
	return V64(VMCB_RAX);
}

static void svm_set_rax(uint64_t v)
{
	V64(VMCB_RAX) = v;
}

static void svm_set_rip(uint64_t rip)
{
	V64(VMCB_RIP) = rip;
}

static void svm_inject(unsigned vector)
{
	uint64_t ev = vector | (3u << 8) | (1u << 31); /* exception, valid */

	if (vector == 13)
		ev |= 1u << 11; /* error code 0 follows */
	V64(VMCB_EVENTINJ) = ev;
}

static uint64_t svm_get_efer(void)
{
	return V64(VMCB_EFER);
}

/* SVM demands EFER.SVME in the guest's EFER: the guest cannot clear it. */
static void svm_set_efer(uint64_t v)
{
	V64(VMCB_EFER) = v | EFER_SVME;
}

static bool svm_host_intact(void)
{
	return rdmsr(MSR_VM_HSAVE_PA) == pa(hsave) && (rdmsr(MSR_EFER) & EFER_SVME);
}

static void svm_print_stats(void)
{
	kprintf("svm: %llu VMRUNs, %llu root loads, %llu flushes (TLB_CONTROL %u)%s\n",
		(unsigned long long)n_entries, (unsigned long long)n_loads,
		(unsigned long long)n_flushes, tlb_flush_type,
		BREAK_FLUSH ? " [BREAK_FLUSH: flushes dropped, no kick]" : "");
}

/* Seconds (2^34 TSC ticks) for run.sh to save the failed run's tables; it
 * quits QEMU once it has them. */
static void svm_keep_tables(void)
{
	tsc_wait(1ull << 34);
}

const struct lx_arch lx_arch = {
	.name = "AMD SVM + NPT (QEMU TCG)",
	.fmt = S2_FMT_X86_NPT,
	.caps = svm_caps,
	.setup = svm_setup,
	.run = svm_run,
	.gprs = svm_gprs,
	.get_rax = svm_get_rax,
	.set_rax = svm_set_rax,
	.set_rip = svm_set_rip,
	.inject = svm_inject,
	.get_efer = svm_get_efer,
	.set_efer = svm_set_efer,
	.host_intact = svm_host_intact,
	.print_stats = svm_print_stats,
	.keep_tables = svm_keep_tables,
};
