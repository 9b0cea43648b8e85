/* SPDX-License-Identifier: MIT */
/* Guest entry: the hypervisor sets esp; clear .bss and run guest_main. */
	.section .text.entry, "ax"
	.code32
	.global guest_entry
guest_entry:
	mov	$__guest_bss_start, %edi
	mov	$__guest_bss_end, %ecx
	sub	%edi, %ecx
	xor	%eax, %eax
	cld
	rep stosb
	call	guest_main
1:	hlt
	jmp	1b
