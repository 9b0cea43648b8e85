/* SPDX-License-Identifier: MIT */
/*
 * int vmx_enter(struct x86_gprs *g, int launched): load the guest's general
 * registers from @g, VMLAUNCH (or VMRESUME once launched), and return 0
 * after the VM exit with the guest's registers stored back into @g, or 1 if
 * the entry itself failed (VMfail: execution continues after the VMLAUNCH).
 *
 * The exit lands on vmx_exit_stub with rsp = HOST_RSP, which points at the
 * saved @g pointer pushed below; rax..r15 then hold the guest's values.
 */
	.text
	.code64
	.global vmx_enter, vmx_exit_stub
vmx_enter:
	push	%rbx
	push	%rbp
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	push	%rdi
	mov	$0x6c14, %rax			/* HOST_RSP */
	vmwrite	%rsp, %rax
	test	%esi, %esi			/* flags survive the movs below */
	mov	0*8(%rdi), %rax
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
	jnz	1f
	vmlaunch
	jmp	2f
1:	vmresume
2:	pop	%rdi
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%rbp
	pop	%rbx
	mov	$1, %eax
	ret

vmx_exit_stub:
	push	%rdi
	mov	8(%rsp), %rdi
	mov	%rax, 0*8(%rdi)
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
	xor	%eax, %eax
	ret
