/* SPDX-License-Identifier: MIT */
/*
 * What the two Intel VMX example hypervisors share (../x86-ept-bochs/vmx.c,
 * ../x86-linux-ept/vmx.c): the capability MSRs, the VMCS field encodings and
 * control bits they use, the VMX instructions, VMXON on the calling CPU, the
 * host-state area from that CPU's own tables, and the entry stub
 * (vmx_entry.S). Encodings, controls and capability MSRs: Intel SDM vol. 3C,
 * appendices A (VMX capability reporting) and B (VMCS encodings).
 */
#ifndef S2_EXAMPLES_X86_VMCS_H
#define S2_EXAMPLES_X86_VMCS_H

#include <stdbool.h>
#include <stdint.h>

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
	GUEST_PML_INDEX = 0x0812,
	HOST_ES_SEL = 0x0c00, /* ES CS SS DS FS GS TR, step 2 */
	IO_BITMAP_A = 0x2000,
	IO_BITMAP_B = 0x2002,
	MSR_BITMAP = 0x2004,
	PML_ADDRESS = 0x200e,
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
	ENTRY_EXC_ERROR = 0x4018,
	PROC_CTLS2 = 0x401e,
	VM_INSN_ERROR = 0x4400,
	EXIT_REASON = 0x4402,
	EXIT_INTR_INFO = 0x4404,
	EXIT_INSN_LEN = 0x440c,
	GUEST_ES_LIMIT = 0x4800, /* ES CS SS DS FS GS LDTR TR GDTR IDTR */
	GUEST_ES_AR = 0x4814,	 /* ES CS SS DS FS GS LDTR TR */
	GUEST_INTERRUPTIBILITY = 0x4824,
	GUEST_ACTIVITY = 0x4826,
	GUEST_SYSENTER_CS = 0x482a,
	PREEMPT_TIMER = 0x482e,
	HOST_SYSENTER_CS = 0x4c00,
	CR0_MASK = 0x6000,
	CR4_MASK = 0x6002,
	CR0_SHADOW = 0x6004,
	CR4_SHADOW = 0x6006,
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
	HOST_RSP = 0x6c14, /* vmx_entry.S writes it */
	HOST_RIP = 0x6c16,
};

/* Control bits. */
#define PIN_EXT_INTR_EXITING (1u << 0)
#define PIN_NMI_EXITING (1u << 3)
#define PIN_PREEMPT_TIMER (1u << 6)
#define PROC_HLT_EXITING (1u << 7)
#define PROC_IO_BITMAPS (1u << 25)
#define PROC_MSR_BITMAPS (1u << 28)
#define PROC_SECONDARY (1u << 31)
#define PROC2_EPT (1u << 1)
#define PROC2_RDTSCP (1u << 3)
#define PROC2_VPID (1u << 5)
#define PROC2_UNRESTRICTED (1u << 7)
#define PROC2_INVPCID (1u << 12)
#define PROC2_PML (1u << 17)
#define PROC2_XSAVES (1u << 20)
#define EXIT_HOST_64 (1u << 9)
#define EXIT_ACK_INTR (1u << 15)
#define EXIT_SAVE_PAT (1u << 18)
#define EXIT_LOAD_PAT (1u << 19)
#define EXIT_SAVE_EFER (1u << 20)
#define EXIT_LOAD_EFER (1u << 21)
#define ENTRY_IA32E (1u << 9)
#define ENTRY_LOAD_PAT (1u << 14)
#define ENTRY_LOAD_EFER (1u << 15)

#define CR4_VMXE (1ull << 13)

#define INVEPT_SINGLE 1
#define INVEPT_ALL 2

/* Each example's own end of the run for a VMX instruction that failed. */
void vmx_fatal(const char *what, uint64_t code) __attribute__((noreturn));

static inline uint64_t vmread(uint64_t field)
{
	uint64_t v;

	__asm__ volatile("vmread %1, %0" : "=r"(v) : "r"(field) : "cc");
	return v;
}

/* VMWRITE; a VMfail prints the field and the VM-instruction error, then vmx_fatal(). */
void vmwrite(uint64_t field, uint64_t v);

/* A VMX instruction on a physical-address operand; false on VMfail. */
#define VMX_PA_OP(insn, pa)                                                                      \
	({                                                                                       \
		uint64_t pa_ = (pa);                                                             \
		uint8_t bad_;                                                                    \
		__asm__ volatile(insn " %1; setna %0" : "=q"(bad_) : "m"(pa_) : "cc", "memory"); \
		!bad_;                                                                           \
	})

/* INVEPT of @type (INVEPT_SINGLE for @eptp, INVEPT_ALL); vmx_fatal() on VMfail. */
void vmx_invept(unsigned type, uint64_t eptp);
/* INVVPID single-context (type 1): @vpid's own (stage-1) translations. */
void vmx_invvpid_single(uint16_t vpid);

/*
 * A control field's value: @want and whatever of @optional the capability
 * MSR (its TRUE_ form where IA32_VMX_BASIC says so and @true_msr is given)
 * allows, with the bits it fixes to 1. Prints a line when some of @want is
 * not allowed.
 */
uint32_t vmx_adjust(uint32_t msr, uint32_t true_msr, uint32_t want, uint32_t optional,
		    const char *name);

/*
 * On the calling CPU: IA32_FEATURE_CONTROL (locked with VMX outside SMX if
 * the firmware left it open), CR0 and CR4 to their fixed bits with CR4.VMXE
 * and @cr4_extra, VMXON on @vmxon_region, then VMCLEAR and VMPTRLD of @vmcs
 * (both 4 KiB-aligned, identity-mapped). 0, or -1 with a line printed.
 */
int vmx_on(void *vmxon_region, void *vmcs, uint64_t cr4_extra);

/*
 * The current VMCS's host-state area from the calling CPU, the one that
 * will run the vcpu: CR0/CR3/CR4, flat selectors, its own TR with its TSS's
 * base, its GDT and IDT (an interrupt or NMI taken after an exit goes
 * through them), PAT and EFER, exits to vmx_exit_stub.
 */
void vmx_setup_host_state(void);

/*
 * vmx_entry.S: load the guest's general registers from @regs (x86 encoding
 * order, rax .. r15; rsp is the VMCS's), VMLAUNCH or VMRESUME, and return 0
 * after the exit with them stored back, or 1 when the entry failed (VMfail).
 */
int vmx_enter(uint64_t regs[16], int launched);
void vmx_exit_stub(void);

#endif
