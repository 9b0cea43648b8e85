/* SPDX-License-Identifier: MIT */
/*
 * The x86 Linux NPT example's assembly: the multiboot handover, the VMRUN
 * stub and the host's NMI handler.
 *
 * hv_main: x86-common/start.S calls it in long mode with ebx still holding
 * the multiboot information's address (start.S's set-up never touches ebx),
 * so it passes ebx on as the first argument of linux_main().
 */
#include "../x86-common/gprs.inc"

	.text
	.code64
	.global hv_main
hv_main:
	mov	%ebx, %edi		/* zero-extends: the mbi is below 4 GiB */
	jmp	linux_main

/*
 * void svm_run_guest(struct x86_gprs *g, uint64_t vmcb_pa, uint64_t host_pa):
 * load the guest's general registers (all but rax and rsp, which live in the
 * VMCB), VMLOAD the guest's FS/GS/TR/LDTR/KernelGsBase/STAR/LSTAR/CSTAR/
 * SFMASK/SYSENTER state from its VMCB, VMRUN, VMSAVE it back after the
 * #VMEXIT and VMLOAD the host's own from @host_pa (saved there once by
 * VMSAVE), then store the guest's registers.
 *
 * GIF: clgi before, stgi after. The host's IF stays 0 throughout (no
 * interrupt intercept: physical interrupts belong to the guest and arrive
 * through its IDT while it runs), so after stgi only an NMI can be taken
 * here: the kick, which the NMI intercept turned into a #VMEXIT and which is
 * then delivered to nmi_isr.
 */
	.global svm_run_guest
svm_run_guest:
	push	%rbx
	push	%rbp
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	push	%rdx			/* host save area */
	push	%rsi			/* vmcb */
	push	%rdi			/* gprs */
	mov	%rsi, %rax
	GPRS_LOAD_BUT_RAX_RDI
	mov	7*8(%rdi), %rdi
	clgi
	vmload
	vmrun
	vmsave
	push	%rdi
	mov	8(%rsp), %rdi		/* gprs */
	GPRS_STORE_BUT_RAX_RDI
	pop	%rax
	mov	%rax, 7*8(%rdi)
	pop	%rdi
	pop	%rsi
	pop	%rax			/* host save area */
	vmload
	stgi
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%rbp
	pop	%rbx
	ret

/* NMIs the host takes: the kicks. Counted, nothing else to do. */
	.global nmi_isr, nmi_count
nmi_isr:
	lock incq nmi_count(%rip)
	iretq

	.data
	.balign	8
nmi_count:
	.quad	0

	.section .note.GNU-stack, "", @progbits
