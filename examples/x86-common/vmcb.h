/* SPDX-License-Identifier: MIT */
/*
 * What the two AMD SVM example hypervisors share (../x86-npt-qemu/svm.c,
 * ../x86-linux-npt/svm.c): the byte offsets of the VMCB fields they use, the
 * intercept and control bits, the exit codes, and the writing of a segment
 * of the state-save area. AMD64 APM vol. 2, appendix B (VMCB layout, exit
 * codes); the VMCB is one 4 KiB page, the control area at 0x000, the
 * state-save area at 0x400.
 */
#ifndef S2_EXAMPLES_X86_VMCB_H
#define S2_EXAMPLES_X86_VMCB_H

#include <stdint.h>

#define MSR_VM_HSAVE_PA 0xc0010117u

/* Control area. */
#define VMCB_INTERCEPT_EXC 0x008   /* one bit per exception vector */
#define VMCB_INTERCEPT_MISC1 0x00c /* INTERCEPT1_* */
#define VMCB_INTERCEPT_MISC2 0x010 /* INTERCEPT2_* */
#define VMCB_IOPM_BASE 0x040
#define VMCB_MSRPM_BASE 0x048
#define VMCB_ASID 0x058
#define VMCB_TLB_CONTROL 0x05c /* one byte: TLB_CONTROL_* */
#define VMCB_VINTR 0x060       /* V_TPR, V_IRQ, ..., V_INTR_MASKING */
#define VMCB_EXITCODE 0x070
#define VMCB_EXITINFO1 0x078
#define VMCB_EXITINFO2 0x080
#define VMCB_NP_ENABLE 0x090 /* bit 0: nested paging */
#define VMCB_EVENTINJ 0x0a8
#define VMCB_NCR3 0x0b0
#define VMCB_CLEAN 0x0c0
/* State-save area. */
#define VMCB_ES 0x400 /* ES CS SS DS FS GS GDTR LDTR IDTR TR, 16 bytes each */
#define VMCB_CPL 0x4cb
#define VMCB_EFER 0x4d0
#define VMCB_CR4 0x548
#define VMCB_CR3 0x550
#define VMCB_CR0 0x558
#define VMCB_DR7 0x560
#define VMCB_DR6 0x568
#define VMCB_RFLAGS 0x570
#define VMCB_RIP 0x578
#define VMCB_RSP 0x5d8
#define VMCB_RAX 0x5f8
#define VMCB_GPAT 0x668

/* VMCB_INTERCEPT_MISC1 (intercept vector 3): bit n is exit code 0x60 + n. */
#define INTERCEPT1_INTR (1u << 0)
#define INTERCEPT1_NMI (1u << 1)
#define INTERCEPT1_INIT (1u << 3)
#define INTERCEPT1_HLT (1u << 24)
#define INTERCEPT1_INVLPGA (1u << 26)
#define INTERCEPT1_IOIO_PROT (1u << 27)
#define INTERCEPT1_MSR_PROT (1u << 28)
#define INTERCEPT1_SHUTDOWN (1u << 31)
/* VMCB_INTERCEPT_MISC2 (intercept vector 4): bit n is exit code 0x80 + n. */
#define INTERCEPT2_VMRUN (1u << 0)
#define INTERCEPT2_VMMCALL (1u << 1)
/* VMLOAD, VMSAVE, STGI, CLGI, SKINIT: bits 2-6 (exit codes 0x82-0x86). */
#define INTERCEPT2_VMLOAD_SKINIT (0x1fu << 2)

/* VMCB_VINTR: the host's EFLAGS.IF gates physical interrupts. */
#define V_INTR_MASKING (1u << 24)

/* VMCB_TLB_CONTROL: acts at the next VMRUN only. */
#define TLB_CONTROL_FLUSH_ALL 1
#define TLB_CONTROL_FLUSH_ASID 3

/* Exit codes (VMCB_EXITCODE). */
#define EXIT_INTR 0x60
#define EXIT_NMI 0x61
#define EXIT_INIT 0x63
#define EXIT_HLT 0x78
#define EXIT_INVLPGA 0x7a
#define EXIT_IOIO 0x7b
#define EXIT_MSR 0x7c
#define EXIT_SHUTDOWN 0x7f
#define EXIT_VMRUN 0x80
#define EXIT_VMMCALL 0x81
#define EXIT_SKINIT 0x86
#define EXIT_NPF 0x400

/* Segment i (0 ES .. 5 GS, 6 GDTR, 7 LDTR, 8 IDTR, 9 TR) of the state-save
 * area: selector, attributes, limit, base. */
static inline void vmcb_seg(volatile uint8_t *vmcb, unsigned i, uint16_t sel, uint16_t attr,
			    uint32_t limit, uint64_t base)
{
	volatile uint8_t *s = vmcb + VMCB_ES + 16 * i;

	*(volatile uint16_t *)s = sel;
	*(volatile uint16_t *)(s + 2) = attr;
	*(volatile uint32_t *)(s + 4) = limit;
	*(volatile uint64_t *)(s + 8) = base;
}

#endif
