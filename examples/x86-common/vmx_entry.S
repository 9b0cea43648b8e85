/* SPDX-License-Identifier: MIT */
/*
 * int vmx_enter(uint64_t regs[16], int launched): load the guest's general
 * registers from @regs, VMLAUNCH (or VMRESUME once launched), and return 0
 * after the VM exit with the guest's registers stored back into @regs, or 1 if
 * the entry itself failed (VMfail: execution continues after the VMLAUNCH).
 *
 * The exit lands on vmx_exit_stub with rsp = HOST_RSP, which points at the
 * saved @regs pointer pushed below; rax..r15 then hold the guest's values.
 */
#include "gprs.inc"

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
	mov	$0x6c14, %rax			/* HOST_RSP (vmcs.h) */
	vmwrite	%rsp, %rax
	test	%esi, %esi			/* flags survive the movs below */
	mov	0*8(%rdi), %rax
	GPRS_LOAD_BUT_RAX_RDI
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
	xor	%eax, %eax
	ret
