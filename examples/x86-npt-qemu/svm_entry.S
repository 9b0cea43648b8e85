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
	mov	1*8(%rdi), %rcx
	mov	2*8(%rdi), %rdx
	mov	3*8(%rdi), %rbx
	mov	5*8(%rdi), %rbp
	mov	6*8(%rdi), %rsi
	mov	8*8(%rdi), %r8
	mov	9*8(%rdi), %r9
	mov	10*8(%rdi), %r10
	mov	11*8(%rdi), %r11
	mov	12*8(%rdi), %r12
	mov	13*8(%rdi), %r13
	mov	14*8(%rdi), %r14
	mov	15*8(%rdi), %r15
	mov	7*8(%rdi), %rdi
	clgi
	sti
	vmrun
	stgi
	cli
	push	%rdi
	mov	8(%rsp), %rdi
	mov	%rcx, 1*8(%rdi)
	mov	%rdx, 2*8(%rdi)
	mov	%rbx, 3*8(%rdi)
	mov	%rbp, 5*8(%rdi)
	mov	%rsi, 6*8(%rdi)
	mov	%r8, 8*8(%rdi)
	mov	%r9, 9*8(%rdi)
	mov	%r10, 10*8(%rdi)
	mov	%r11, 11*8(%rdi)
	mov	%r12, 12*8(%rdi)
	mov	%r13, 13*8(%rdi)
	mov	%r14, 14*8(%rdi)
	mov	%r15, 15*8(%rdi)
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
