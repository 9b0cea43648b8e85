/* SPDX-License-Identifier: MIT */
/*
 * void svm_enter(struct x86_gprs *g, uint64_t vmcb_pa): load the guest's
 * general registers from @g (all but rax and rsp, which live in the VMCB),
 * VMRUN, and store them back after the #VMEXIT. VMRUN saves and #VMEXIT
 * restores the host's rsp, rax, segment and control state; every other
 * register holds the guest's value when the #VMEXIT returns here.
 *
 * Interrupts: the host sets IF only for the VMRUN (under GIF = 0), so with
 * V_INTR_MASKING a physical interrupt that arrives while the guest runs
 * makes it exit (INTR intercept); STGI then lets the host take it (ipi_isr
 * in start.S, which preserves every register) before CLI closes it again.
 */
#include "../x86-common/gprs.inc"

	.text
	.code64
	.global svm_enter
svm_enter:
	push	%rbx
	push	%rbp
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	push	%rdi
	mov	%rsi, %rax
	GPRS_LOAD_BUT_RAX_RDI
	mov	7*8(%rdi), %rdi
	clgi
	sti
	vmrun
	stgi
	cli
	push	%rdi
	mov	8(%rsp), %rdi
	GPRS_STORE_BUT_RAX_RDI
	pop	%rax
	mov	%rax, 7*8(%rdi)
	pop	%rdi
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%rbp
	pop	%rbx
	ret

	.section .note.GNU-stack, "", @progbits
