// SPDX-License-Identifier: MIT
/*
 * Intel VMX + EPT half of the x86 Linux partition example, under bochs
 * (cpu model corei7_skylake_x): the twin of ../x86-linux-npt/svm.c, with
 * ../x86-linux-npt/linux.c shared.
 *
 * Unrestricted guest (the 32-bit boot protocol enters with paging off), EPT
 * and VPID, no external-interrupt exiting (the guest owns its local APIC and
 * takes physical interrupts through its own IDT), NMI exiting (the host's
 * kick). What VMX makes exit unconditionally is handled here: CPUID (VMX,
 * x2APIC and MONITOR hidden), XSETBV (executed for the guest: XCR0 is not
 * switched), INVD, the VMX instructions (#UD), triple fault and INIT. The
 * MSR bitmap and the I/O bitmaps carry linux.c's rules; MSRs outside the
 * bitmap's ranges always exit, and get #GP unless a rule shadows them.
 * CR0.NE and CR4.VMXE are host-owned (guest/host masks with read shadows):
 * VMX operation fixes them to 1, the kernel writes them as 0.
 *
 * Field encodings, controls, capability MSRs and the VMX instructions are
 * ../x86-common/vmcs.h's (shared with ../x86-ept-bochs/vmx.c).
 */
#include "../common/klib.h"
#include "../x86-common/vmcs.h"
#include "../x86-common/x86.h"
#include "../x86-linux-npt/lx.h"
#include "s2mmu/x86-ept.h"

#define CR0_NE (1ull << 5)
#define CR0_PG (1ull << 31)
#define CR4_OSXSAVE (1ull << 18)
#define EFER_LME_ (1ull << 8)
#define EFER_LMA (1ull << 10)

static uint8_t vmxon_region[4096] __attribute__((aligned(4096)));
static uint8_t vmcs[4096] __attribute__((aligned(4096)));
static uint8_t msr_bitmap[4096] __attribute__((aligned(4096)));
static uint8_t io_bitmap[8192] __attribute__((aligned(4096)));
/* The page-modification log: 512 guest-physical addresses, filled from the
 * top (the index counts down from 511). */
#define PML_ENTRIES 512
static uint64_t pml_log[PML_ENTRIES] __attribute__((aligned(4096)));
static uint64_t n_pml_entries, n_pml_flushes, n_pml_full, n_pml_dropped;
static struct lx_gprs gprs;
static uint64_t basic, ept_cap, eptp, cr0_fixed0;
static uint32_t proc2;
static bool launched;
static uint64_t n_entries, n_loads, n_invept, n_cpuid, n_xsetbv, n_cr;

void vmx_fatal(const char *what, uint64_t code)
{
	lx_fail(what, (long)code);
}

static void invept(unsigned type)
{
	vmx_invept(type, eptp);
	n_invept++;
}

static uint64_t pa(const void *p)
{
	return (uint64_t)(uintptr_t)p;
}

static int vmx_caps(struct kvm_vm_params *p)
{
	uint32_t r[4];
	uint64_t p2;

	cpuid(1, 0, r);
	if (!(r[2] & (1u << 5))) {
		kprintf("vmx: CPUID.1:ECX.VMX = 0\n");
		return -1;
	}
	basic = rdmsr(MSR_VMX_BASIC);
	p2 = rdmsr(MSR_VMX_PROCBASED2) >> 32;
	ept_cap = rdmsr(MSR_VMX_EPT_VPID_CAP);
	if (DIRTY_PML && (!(p2 & PROC2_PML) || !(ept_cap & CAP_EPT_AD))) {
		kprintf("vmx: DIRTY_PML: the CPU has no PML (or no EPT A/D)\n");
		return -1;
	}
	if (!(p2 & PROC2_EPT) || !(p2 & PROC2_UNRESTRICTED) || !(p2 & PROC2_VPID) ||
	    !(ept_cap & CAP_EPT_4LEVEL) || !(ept_cap & CAP_EPT_WB) || !(ept_cap & CAP_INVEPT)) {
		kprintf("vmx: need EPT (4-level, WB, INVEPT), VPID and unrestricted guest\n");
		return -1;
	}
	if (ept_cap & CAP_EPT_AD)
		p->fmt_flags |= S2_FMTF_AD;
	p->max_leaf_level = 2; /* guest RAM moves in 2 MiB blocks */
	kprintf("vmx: VMX_BASIC 0x%llx, secondary allowed-1 0x%llx, EPT/VPID cap 0x%llx\n",
		(unsigned long long)basic, (unsigned long long)p2, (unsigned long long)ept_cap);
	return 0;
}

static void bitmap_set(uint8_t *map, unsigned bit)
{
	map[bit / 8] |= (uint8_t)(1u << (bit % 8));
}

static void setup_bitmaps(void)
{
	for (unsigned i = 0; i < lx_msr_nrules; i++) {
		for (uint32_t m = lx_msr_rules[i].first; m <= lx_msr_rules[i].last; m++) {
			unsigned base;

			if (m <= 0x1fff)
				base = 0;
			else if (m - 0xc0000000u <= 0x1fff)
				base = 0x400;
			else
				continue; /* outside the bitmap: always exits */
			if (lx_msr_rules[i].read)
				bitmap_set(msr_bitmap + base, m & 0x1fff);
			if (lx_msr_rules[i].write)
				bitmap_set(msr_bitmap + 0x800 + base, m & 0x1fff);
		}
	}
	for (unsigned i = 0; i < lx_io_nports; i++)
		bitmap_set(io_bitmap, lx_io_ports[i]);
}

static void seg(unsigned i, uint16_t sel, uint32_t ar, uint32_t limit, uint64_t base)
{
	vmwrite(GUEST_ES_SEL + 2 * i, sel);
	vmwrite(GUEST_ES_LIMIT + 2 * i, limit);
	vmwrite(GUEST_ES_AR + 2 * i, ar);
	vmwrite(GUEST_ES_BASE + 2 * i, base);
}

static int vmx_setup(uint64_t entry, uint64_t boot_params)
{
	uint64_t cr4_0 = rdmsr(MSR_VMX_CR4_FIXED0), cr4_1 = rdmsr(MSR_VMX_CR4_FIXED1);
	uint64_t cr0_1 = rdmsr(MSR_VMX_CR0_FIXED1);
	uint32_t r[4];

	cr0_fixed0 = rdmsr(MSR_VMX_CR0_FIXED0);
	/* OSXSAVE on the host: XSETBV is executed here for the guest. */
	cpuid(1, 0, r);
	if (vmx_on(vmxon_region, vmcs, (r[2] & (1u << 26)) ? CR4_OSXSAVE : 0))
		lx_fail("VMXON", 0);
	setup_bitmaps();

	/*
	 * The kick is an NMI. One that arrives between kvm_vcpu_enter_guest()
	 * and VMRESUME is taken by the host (NMIs cannot be held back there as
	 * SVM's CLGI does) and the guest would run on unkicked: the
	 * VMX-preemption timer bounds that, an exit at least every 2^20 timer
	 * ticks of guest time. BREAK_FLUSH has neither kick nor timer: a
	 * flush then waits for an exit the guest makes on its own.
	 */
	vmwrite(PIN_CTLS, vmx_adjust(MSR_VMX_PINBASED, MSR_VMX_TRUE_PINBASED,
				     PIN_NMI_EXITING | (BREAK_FLUSH ? 0 : PIN_PREEMPT_TIMER), 0,
				     "pin controls"));
	vmwrite(PROC_CTLS, vmx_adjust(MSR_VMX_PROCBASED, MSR_VMX_TRUE_PROCBASED,
				      PROC_IO_BITMAPS | PROC_MSR_BITMAPS | PROC_SECONDARY, 0,
				      "processor controls"));
	proc2 = vmx_adjust(MSR_VMX_PROCBASED2, 0,
			   PROC2_EPT | PROC2_VPID | PROC2_UNRESTRICTED |
				   (DIRTY_PML ? PROC2_PML : 0),
			   PROC2_RDTSCP | PROC2_INVPCID | PROC2_XSAVES, "secondary controls");
	vmwrite(PROC_CTLS2, proc2);
	if (DIRTY_PML) {
		/* Logging needs the EPTP's A/D flag (kvm_x86_ept_eptp() sets it). */
		vmwrite(PML_ADDRESS, pa(pml_log));
		vmwrite(GUEST_PML_INDEX, PML_ENTRIES - 1);
	}
	vmwrite(EXIT_CTLS, vmx_adjust(MSR_VMX_EXIT, MSR_VMX_TRUE_EXIT,
				      EXIT_HOST_64 | EXIT_SAVE_EFER | EXIT_LOAD_EFER |
					      EXIT_SAVE_PAT | EXIT_LOAD_PAT,
				      0, "exit controls"));
	vmwrite(ENTRY_CTLS, vmx_adjust(MSR_VMX_ENTRY, MSR_VMX_TRUE_ENTRY,
				       ENTRY_LOAD_EFER | ENTRY_LOAD_PAT, 0, "entry controls"));
	vmwrite(EXC_BITMAP, 0);
	vmwrite(CR3_TARGET_COUNT, 0);
	vmwrite(EXIT_MSR_STORE_COUNT, 0);
	vmwrite(EXIT_MSR_LOAD_COUNT, 0);
	vmwrite(ENTRY_MSR_LOAD_COUNT, 0);
	vmwrite(ENTRY_INTR_INFO, 0);
	vmwrite(VPID, 1);
	vmwrite(MSR_BITMAP, pa(msr_bitmap));
	vmwrite(IO_BITMAP_A, pa(io_bitmap));
	vmwrite(IO_BITMAP_B, pa(io_bitmap + 4096));
	/* CR0.NE and CR4.VMXE belong to the host; the guest reads its own values. */
	vmwrite(CR0_MASK, CR0_NE);
	vmwrite(CR0_SHADOW, 0x11);
	vmwrite(CR4_MASK, CR4_VMXE);
	vmwrite(CR4_SHADOW, 0);
	/* This CPU's own TSS and IDT (the NMI gate): an exit restores them. */
	vmx_setup_host_state();

	/* The 32-bit boot protocol: flat 0x10 / 0x18, paging off. */
	for (unsigned i = 0; i < 6; i++)
		seg(i, i == 1 ? 0x10 : 0x18, i == 1 ? 0xc09b : 0xc093, 0xffffffff, 0);
	seg(6, 0, 0x10000, 0, 0);	    /* LDTR unusable */
	seg(7, 0, 0x8b, 0x67, 0);	    /* TR: a busy 32-bit TSS */
	vmwrite(GUEST_ES_LIMIT + 16, 0x1f); /* GDTR */
	vmwrite(GUEST_ES_BASE + 16, LX_GDT_GPA);
	vmwrite(GUEST_ES_LIMIT + 18, 0); /* IDTR */
	vmwrite(GUEST_ES_BASE + 18, 0);
	/* Unrestricted guest lifts the PE and PG requirement of CR0_FIXED0. */
	vmwrite(GUEST_CR0, (0x11 | (cr0_fixed0 & ~(CR0_PG | 1ull))) & cr0_1);
	vmwrite(GUEST_CR3, 0);
	vmwrite(GUEST_CR4, (cr4_0 | CR4_VMXE) & cr4_1);
	vmwrite(GUEST_DR7, 0x400);
	vmwrite(GUEST_RSP, 0);
	vmwrite(GUEST_RIP, entry);
	vmwrite(GUEST_RFLAGS, 2);
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
	gprs.r[6] = boot_params;
	return 0;
}

static void skip(void)
{
	vmwrite(GUEST_RIP, vmread(GUEST_RIP) + vmread(EXIT_INSN_LEN));
}

/* The IA-32e-mode-guest entry control follows EFER.LMA (entry checks it). */
static void sync_ia32e(void)
{
	uint64_t ctl = vmread(ENTRY_CTLS);
	bool lma = vmread(GUEST_EFER) & EFER_LMA;

	if (!!(ctl & ENTRY_IA32E) != lma)
		vmwrite(ENTRY_CTLS, lma ? ctl | ENTRY_IA32E : ctl & ~(uint64_t)ENTRY_IA32E);
}

static void emulate_cpuid(void)
{
	uint32_t leaf = (uint32_t)gprs.r[0], sub = (uint32_t)gprs.r[1], r[4];

	cpuid(leaf, sub, r);
	if (leaf == 1) {
		r[2] &= ~((1u << 5) | (1u << 21) | (1u << 3)); /* VMX, x2APIC, MONITOR */
		/* OSXSAVE mirrors the guest's CR4, not the host's (user space tests it). */
		r[2] &= ~(1u << 27);
		if (vmread(GUEST_CR4) & CR4_OSXSAVE)
			r[2] |= 1u << 27;
	}
	if (leaf == 7 && sub == 0 && !(proc2 & PROC2_INVPCID))
		r[1] &= ~(1u << 10);
	if (leaf == 0xd && sub == 1 && !(proc2 & PROC2_XSAVES))
		r[0] &= ~(1u << 3);
	if (leaf == 0x80000001 && !(proc2 & PROC2_RDTSCP))
		r[3] &= ~(1u << 27);
	if ((leaf & 0xf0000000u) == 0x40000000u)
		r[0] = r[1] = r[2] = r[3] = 0; /* no hypervisor leaves */
	for (unsigned i = 0; i < 4; i++)
		gprs.r[i == 0 ? 0 : i == 1 ? 3 : i == 2 ? 1 : 2] = r[i];
	n_cpuid++;
	skip();
}

/* MOV to CR0/CR4 that changes a host-owned bit (NE, VMXE) against the shadow. */
static void emulate_cr(uint64_t qual)
{
	unsigned cr = qual & 15, type = (qual >> 4) & 3, reg = (qual >> 8) & 15;
	uint64_t v = reg == 4 ? vmread(GUEST_RSP) : gprs.r[reg];

	n_cr++;
	if (type != 0 || (cr != 0 && cr != 4))
		lx_fail("CR access exit of a kind not emulated", (long)qual);
	if (cr == 0) {
		uint64_t old = vmread(GUEST_CR0), efer = vmread(GUEST_EFER);

		vmwrite(CR0_SHADOW, v);
		vmwrite(GUEST_CR0, v | CR0_NE);
		if ((v & CR0_PG) && !(old & CR0_PG) && (efer & EFER_LME_))
			vmwrite(GUEST_EFER, efer | EFER_LMA);
		if (!(v & CR0_PG) && (old & CR0_PG))
			vmwrite(GUEST_EFER, efer & ~EFER_LMA);
	} else {
		if (v & CR4_VMXE) {
			lx_arch.inject(13);
			return;
		}
		vmwrite(CR4_SHADOW, v);
		vmwrite(GUEST_CR4, v | CR4_VMXE);
	}
	skip();
}

/*
 * Hand the page-modification log to the library (after every exit, on the
 * vcpu's CPU) and rearm it. The CPU writes entry INDEX, then decrements it:
 * entries INDEX+1 .. 511 are valid, all 512 once INDEX wrapped below 0 (the
 * log-full exit). DROP_PML (sabotaged) rearms the log without handing it
 * over: a page the guest dirtied sets its leaf's D bit and is logged once,
 * and a harvest with PML reads only the logs (no scan of the D bits), so the
 * migration loses it and the byte comparison at the stop must find it.
 */
static void pml_flush(struct kvm_vcpu *vcpu)
{
	uint16_t idx = (uint16_t)vmread(GUEST_PML_INDEX);
	unsigned first = idx >= PML_ENTRIES ? 0 : idx + 1u;
	long r;

	if (first == PML_ENTRIES)
		return;
	if (DROP_PML) {
		n_pml_dropped += PML_ENTRIES - first;
		vmwrite(GUEST_PML_INDEX, PML_ENTRIES - 1);
		return;
	}
	r = kvm_flush_pml_buffer(vcpu, &pml_log[first], PML_ENTRIES - first);
	if (r < 0)
		lx_fail("kvm_flush_pml_buffer", r);
	n_pml_entries += PML_ENTRIES - first;
	n_pml_flushes++;
	vmwrite(GUEST_PML_INDEX, PML_ENTRIES - 1);
}

static int vmx_run(struct kvm_vcpu *vcpu, struct lx_exit *e)
{
	for (;;) {
		struct kvm_entry_actions acts;
		uint64_t reason, qual;
		int r;

		for (;;) {
			r = kvm_vcpu_entry_actions(vcpu, &acts);
			if (r)
				lx_fail("kvm_vcpu_entry_actions", r);
			for (unsigned i = 0; i < acts.nr; i++) {
				switch (acts.a[i].kind) {
				case KVM_ENTRY_LOAD_ROOT:
					eptp = acts.a[i].reg;
					vmwrite(EPT_POINTER, eptp);
					n_loads++;
					break;
				case KVM_ENTRY_FLUSH_CURRENT:
				case KVM_ENTRY_FLUSH_ALL:
					if (!BREAK_FLUSH)
						invept((ept_cap & CAP_INVEPT_SINGLE) &&
								       acts.nr_roots <= 1 ?
							       INVEPT_SINGLE :
							       INVEPT_ALL);
					break;
				case KVM_ENTRY_FLUSH_GUEST:
					if (!BREAK_FLUSH)
						invept(INVEPT_ALL);
					break;
				}
			}
			if (kvm_vcpu_enter_guest(vcpu))
				break;
		}
		sync_ia32e();
		if (!BREAK_FLUSH)
			vmwrite(PREEMPT_TIMER, 1u << 20);
		n_entries++;
		lx_rcu_offline();
		r = vmx_enter(gprs.r, launched);
		kvm_vcpu_exit_guest(vcpu);
		lx_rcu_online();
		if (r) {
			kprintf("vmx: VM entry failed, VM-instruction error %llu\n",
				(unsigned long long)vmread(VM_INSN_ERROR));
			return -1;
		}
		if (DIRTY_PML)
			pml_flush(vcpu);
		launched = true;
		reason = vmread(EXIT_REASON);
		qual = vmread(EXIT_QUAL);
		*e = (struct lx_exit){ .kind = LX_EXIT_OTHER, .rip = vmread(GUEST_RIP) };
		e->raw[0] = reason;
		e->raw[1] = qual;
		if (reason & (1u << 31)) {
			kprintf("vmx: VM-entry failure, reason 0x%llx qualification 0x%llx\n",
				(unsigned long long)reason, (unsigned long long)qual);
			return -1;
		}
		switch (reason & 0xffff) {
		case 0: /* exception or NMI: only NMIs (empty exception bitmap) */
			e->kind = LX_EXIT_KICK;
			e->raw[2] = vmread(EXIT_INTR_INFO);
			/* An NMI exit leaves NMIs blocked until an IRET: the host's own. */
			__asm__ volatile("int $2" ::: "memory");
			return 0;
		case 52: /* preemption timer: a kick that may have been missed */
			e->kind = LX_EXIT_KICK;
			return 0;
		case 2: e->kind = LX_EXIT_SHUTDOWN; return 0;
		case 3: e->kind = LX_EXIT_INIT; return 0;
		case 10: emulate_cpuid(); continue;
		case 13: skip(); continue; /* INVD: caches are coherent here */
		case 18 ... 27:
		case 50:
		case 53: e->kind = LX_EXIT_SVM_INSN; return 0; /* VMX instructions: #UD */
		case 28: emulate_cr(qual); continue;
		case 30:
			e->kind = LX_EXIT_IO;
			e->size = (qual & 7) + 1;
			e->write = !(qual & 8);
			e->string = (qual >> 4) & 1;
			e->port = (uint16_t)(qual >> 16);
			e->next_rip = e->rip + vmread(EXIT_INSN_LEN);
			return 0;
		case 31:
		case 32:
			e->kind = LX_EXIT_MSR;
			e->write = (reason & 0xffff) == 32;
			e->msr = (uint32_t)gprs.r[1];
			e->next_rip = e->rip + vmread(EXIT_INSN_LEN);
			return 0;
		case 48:
			e->kind = LX_EXIT_NPF;
			e->gpa = vmread(GUEST_PHYS_ADDR);
			e->access = s2_ept_violation_access(qual);
			e->raw[2] = e->gpa;
			return 0;
		case 62: /* PML log full: handed over above */ n_pml_full++; continue;
		case 55: /* XSETBV: XCR0 is shared with the host; set it for the guest */
			__asm__ volatile("xsetbv"
					 :
					 : "c"((uint32_t)gprs.r[1]), "a"((uint32_t)gprs.r[0]),
					   "d"((uint32_t)gprs.r[2]));
			n_xsetbv++;
			skip();
			continue;
		default: return 0;
		}
	}
}

static struct lx_gprs *vmx_gprs(void)
{
	return &gprs;
}

static uint64_t vmx_get_rax(void)
{
	return gprs.r[0];
}

static void vmx_set_rax(uint64_t v)
{
	gprs.r[0] = v;
}

static void vmx_set_rip(uint64_t rip)
{
	vmwrite(GUEST_RIP, rip);
}

static void vmx_inject(unsigned vector)
{
	uint32_t info = vector | (3u << 8) | (1u << 31);

	if (vector == 13) {
		info |= 1u << 11;
		vmwrite(ENTRY_EXC_ERROR, 0);
	}
	vmwrite(ENTRY_INTR_INFO, info);
}

static uint64_t vmx_get_efer(void)
{
	return vmread(GUEST_EFER);
}

static void vmx_set_efer(uint64_t v)
{
	/* LMA is the CPU's: keep it as it is. */
	vmwrite(GUEST_EFER, (v & ~EFER_LMA) | (vmread(GUEST_EFER) & EFER_LMA));
}

static bool vmx_host_intact(void)
{
	return (X86_READ_CR(4) & CR4_VMXE) != 0;
}

static uint64_t vmx_pml_entries(void)
{
	return n_pml_entries;
}

static void vmx_print_stats(void)
{
	if (DIRTY_PML)
		kprintf("vmx: PML: %llu entries handed over in %llu flushes, %llu log-full exits\n",
			(unsigned long long)n_pml_entries, (unsigned long long)n_pml_flushes,
			(unsigned long long)n_pml_full);
	if (DROP_PML)
		kprintf("vmx: [DROP_PML: %llu PML entries never handed to the library]\n",
			(unsigned long long)n_pml_dropped);
	kprintf("vmx: %llu VM entries, %llu EPTP loads, %llu INVEPT, %llu CPUID, %llu XSETBV, %llu "
		"CR exits%s\n",
		(unsigned long long)n_entries, (unsigned long long)n_loads,
		(unsigned long long)n_invept, (unsigned long long)n_cpuid,
		(unsigned long long)n_xsetbv, (unsigned long long)n_cr,
		BREAK_FLUSH ? " [BREAK_FLUSH: flushes dropped, no kick]" : "");
}

const struct lx_arch lx_arch = {
	.name = DROP_PML ?
			"Intel VMX + EPT (bochs) [DROP_PML: PML logs never handed to the library]" :
			"Intel VMX + EPT (bochs)",
	.fmt = S2_FMT_X86_EPT,
	.caps = vmx_caps,
	.setup = vmx_setup,
	.run = vmx_run,
	.gprs = vmx_gprs,
	.get_rax = vmx_get_rax,
	.set_rax = vmx_set_rax,
	.set_rip = vmx_set_rip,
	.inject = vmx_inject,
	.get_efer = vmx_get_efer,
	.set_efer = vmx_set_efer,
	.host_intact = vmx_host_intact,
	.print_stats = vmx_print_stats,
	.pml_entries = DIRTY_PML ? vmx_pml_entries : NULL,
};
