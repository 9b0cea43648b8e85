// SPDX-License-Identifier: MIT
/*
 * The VMX helpers the two Intel examples share (vmcs.h says what each does).
 */
#include "vmcs.h"

#include "../common/klib.h"
#include "x86.h"

void vmwrite(uint64_t field, uint64_t v)
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
		vmx_fatal("vmwrite", field);
	}
}

void vmx_invept(unsigned type, uint64_t eptp)
{
	struct {
		uint64_t eptp, zero;
	} desc = { eptp, 0 };
	uint8_t bad;

	__asm__ volatile("invept %1, %2; setna %0"
			 : "=q"(bad)
			 : "m"(desc), "r"((uint64_t)type)
			 : "cc", "memory");
	if (bad)
		vmx_fatal("invept", type);
}

void vmx_invvpid_single(uint16_t vpid)
{
	struct {
		uint64_t vpid, gla;
	} desc = { vpid, 0 };
	uint8_t bad;

	__asm__ volatile("invvpid %1, %2; setna %0"
			 : "=q"(bad)
			 : "m"(desc), "r"((uint64_t)1)
			 : "cc", "memory");
	if (bad)
		vmx_fatal("invvpid", vpid);
}

uint32_t vmx_adjust(uint32_t msr, uint32_t true_msr, uint32_t want, uint32_t optional,
		    const char *name)
{
	bool true_ctls = (rdmsr(MSR_VMX_BASIC) >> 55) & 1;
	uint64_t cap = rdmsr(true_ctls && true_msr ? true_msr : msr);
	uint32_t allowed1 = (uint32_t)(cap >> 32);
	uint32_t v = (want | (optional & allowed1) | (uint32_t)cap) & allowed1;

	if ((v & want) != want)
		kprintf("vmx: %s: wanted 0x%x, allowed 0x%x\n", name, want, v);
	return v;
}

int vmx_on(void *vmxon_region, void *vmcs, uint64_t cr4_extra)
{
	uint64_t fc = rdmsr(MSR_FEATURE_CONTROL);
	uint32_t rev = (uint32_t)rdmsr(MSR_VMX_BASIC) & 0x7fffffff;

	if (!(fc & 1)) {
		wrmsr(MSR_FEATURE_CONTROL, fc | 1 | 4); /* lock, VMX outside SMX */
	} else if (!(fc & 4)) {
		kprintf("vmx: disabled by IA32_FEATURE_CONTROL\n");
		return -1;
	}
	X86_WRITE_CR(0, (X86_READ_CR(0) | rdmsr(MSR_VMX_CR0_FIXED0)) & rdmsr(MSR_VMX_CR0_FIXED1));
	X86_WRITE_CR(4, (X86_READ_CR(4) | rdmsr(MSR_VMX_CR4_FIXED0) | CR4_VMXE | cr4_extra) &
				rdmsr(MSR_VMX_CR4_FIXED1));
	*(uint32_t *)vmxon_region = rev;
	*(uint32_t *)vmcs = rev;
	if (!VMX_PA_OP("vmxon", (uint64_t)(uintptr_t)vmxon_region) ||
	    !VMX_PA_OP("vmclear", (uint64_t)(uintptr_t)vmcs) ||
	    !VMX_PA_OP("vmptrld", (uint64_t)(uintptr_t)vmcs)) {
		kprintf("vmx: VMXON/VMCLEAR/VMPTRLD failed\n");
		return -1;
	}
	return 0;
}

void vmx_setup_host_state(void)
{
	struct x86_host_tables t;

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
