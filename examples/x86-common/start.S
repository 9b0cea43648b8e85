/* SPDX-License-Identifier: MIT */
/*
 * Entry of the x86 example hypervisors, shared by the bochs (boot sector) and
 * QEMU (multiboot) images. Both loaders arrive in 32-bit protected mode with
 * flat segments: at the image's first byte (bochs boot sector) or at
 * _start32 (multiboot entry_addr). We zero .bss, identity-map the first
 * 4 GiB with 2 MiB pages, switch to long mode and call hv_main().
 *
 * The second CPU starts in real mode at the trampoline (linked to run at
 * 0x8000, copied there by smp.c), reuses the boot CPU's page tables and GDT
 * and calls ap_main() on its own stack. The interrupt stubs at the end serve
 * both CPUs: every interrupt the hosts take is an IPI that only needs an EOI.
 */
	.section .text.boot, "ax"
	.code32
	.global _image_start
_image_start:
	jmp	_start32

	/* Multiboot v1 header, "a.out kludge" form: QEMU 7.2 refuses ELF64
	 * multiboot images, so the flat binary carries its own load layout. */
	.balign	4
mb_header:
	.long	0x1BADB002
	.long	0x00010000
	.long	-(0x1BADB002 + 0x00010000)
	.long	mb_header
	.long	__load_start
	.long	__load_end
	.long	__bss_end
	.long	_start32

	.global _start32
_start32:
	cli
	mov	$boot_stack_top, %esp
	mov	$__bss_start, %edi
	mov	$__bss_end, %ecx
	sub	%edi, %ecx
	xor	%eax, %eax
	cld
	rep stosb

	/* PML4[0] -> PDPT, PDPT[0..3] -> four PDs of 2 MiB pages. */
	mov	$host_pdpt, %eax
	or	$3, %eax
	mov	%eax, host_pml4
	xor	%ecx, %ecx
1:	mov	%ecx, %eax
	shl	$12, %eax
	add	$host_pd, %eax
	or	$3, %eax
	mov	%eax, host_pdpt(,%ecx,8)
	inc	%ecx
	cmp	$4, %ecx
	jb	1b
	xor	%ecx, %ecx			/* 2048 PD entries: ecx = 2 MiB frame */
2:	mov	%ecx, %eax
	shl	$21, %eax
	or	$0x83, %eax			/* P | RW | PS */
	mov	%eax, host_pd(,%ecx,8)
	mov	%ecx, %eax
	shr	$11, %eax			/* bits 32+ of the frame address */
	mov	%eax, host_pd+4(,%ecx,8)
	inc	%ecx
	cmp	$2048, %ecx
	jb	2b

	mov	$host_pml4, %eax
	mov	%eax, %cr3
	mov	%cr4, %eax
	or	$0x20, %eax			/* PAE */
	mov	%eax, %cr4
	mov	$0xC0000080, %ecx
	rdmsr
	or	$0x100, %eax			/* EFER.LME */
	wrmsr
	mov	%cr0, %eax
	or	$0x80000001, %eax		/* PG | PE */
	and	$0x9fffffff, %eax		/* caches on: CD = NW = 0 */
	mov	%eax, %cr0
	lgdt	host_gdt_ptr
	ljmp	$0x08, $start64

	.code64
start64:
	mov	$0x10, %ax
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	mov	%ax, %fs
	mov	%ax, %gs
	mov	$boot_stack_top, %rsp
	call	hv_main
3:	cli
	hlt
	jmp	3b

ap_start64:
	mov	$0x10, %ax
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	mov	%ax, %fs
	mov	%ax, %gs
	mov	$ap_stack_top, %rsp
	call	ap_main
4:	cli
	hlt
	jmp	4b

	/* Interrupt stubs: count, EOI to the local APIC, return. */
	.global ipi_isr, spurious_isr, ipi_isr_count, lapic_eoi_reg
ipi_isr:
	push	%rax
	lock incq ipi_isr_count(%rip)
	mov	lapic_eoi_reg(%rip), %rax
	movl	$0, (%rax)
	pop	%rax
	iretq
spurious_isr:
	iretq

	/* Real-mode entry of the second CPU (SIPI vector 0x08: cs = 0x800). */
	.section .trampoline, "ax"
	.code16
	.global ap_trampoline
ap_trampoline:
	cli
	xor	%ax, %ax
	mov	%ax, %ds
	lgdtl	tramp_gdtr
	mov	%cr0, %eax
	or	$1, %eax
	mov	%eax, %cr0
	ljmpl	$0x08, $ap_pm32
	.code32
ap_pm32:
	mov	$0x10, %ax
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	mov	$host_pml4, %eax
	mov	%eax, %cr3
	mov	%cr4, %eax
	or	$0x20, %eax
	mov	%eax, %cr4
	mov	$0xC0000080, %ecx
	rdmsr
	or	$0x100, %eax
	wrmsr
	mov	%cr0, %eax
	or	$0x80000001, %eax
	and	$0x9fffffff, %eax
	mov	%eax, %cr0
	lgdt	host_gdt_ptr
	ljmp	$0x08, $ap_start64
	.balign	8
tramp_gdt:
	.quad	0
	.quad	0x00CF9A000000FFFF		/* 0x08: 32-bit code */
	.quad	0x00CF92000000FFFF		/* 0x10: data */
tramp_gdtr:
	.word	23
	.long	tramp_gdt
	.text

	.data
	.balign	16
	.global host_gdt, host_gdt_ptr
host_gdt:
	.quad	0
	.quad	0x00AF9A000000FFFF		/* 0x08: 64-bit code */
	.quad	0x00CF92000000FFFF		/* 0x10: data */
	.quad	0, 0				/* 0x18: TSS of CPU 0, filled in C */
	.quad	0, 0				/* 0x28: TSS of CPU 1 */
host_gdt_ptr:
	.word	55
	.quad	host_gdt
	.balign	8
ipi_isr_count:
	.quad	0
lapic_eoi_reg:
	.quad	0xfee000b0

	.bss
	.balign	4096
	.global host_pml4
host_pml4:
	.skip	4096
host_pdpt:
	.skip	4096
host_pd:
	.skip	4 * 4096
	.balign	16
	.skip	16384
	.global boot_stack_top
boot_stack_top:
	.skip	16384
	.global ap_stack_top
ap_stack_top:
