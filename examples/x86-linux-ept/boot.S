/* SPDX-License-Identifier: MIT */
/*
 * Hard-disk boot sector of the x86 Linux EPT example (bochs has no -kernel
 * or multiboot loader). The disk holds, after this sector, the host image,
 * the bzImage and the initrd, each starting on a sector boundary; the
 * Makefile passes their first sectors, sizes in sectors and load addresses
 * (-D). Each piece is read with int 13h AH=42h (extended read) into a 32 KiB
 * bounce buffer at 0x10000 and copied to its place above 1 MiB with int 15h
 * AH=87h. Then A20 on, 32-bit protected mode with flat segments, and a jump
 * to the host image with ebx pointing at a multiboot v1 information block
 * built here (the modules and the command line), which is what QEMU's
 * multiboot loader hands the NPT twin.
 */
	.code16
	.global _start
_start:
	cli
	xor	%ax, %ax
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	mov	$0x7c00, %sp
	sti
	mov	%dl, drive
	mov	$jobs, %si
job:
	cmpl	$0, 8(%si)		/* sectors left */
	je	next
	mov	8(%si), %ecx
	cmp	$64, %ecx
	jbe	1f
	mov	$64, %ecx
1:	mov	%cx, dap_count
	mov	4(%si), %eax
	mov	%eax, dap_lba
	push	%si
	push	%cx
	mov	$dap, %si
	mov	drive, %dl
	mov	$0x42, %ah
	int	$0x13
	jc	err
	pop	%cx
	pop	%si
	mov	(%si), %eax		/* destination into the copy descriptor */
	mov	%ax, gdt_dst + 2
	shr	$16, %eax
	mov	%al, gdt_dst + 4
	mov	%ah, gdt_dst + 7
	push	%si
	push	%cx
	shl	$8, %cx			/* words */
	mov	$gdt, %si
	mov	$0x87, %ah
	int	$0x15
	jc	err
	pop	%cx
	pop	%si
	movzx	%cx, %ecx
	add	%ecx, 4(%si)
	sub	%ecx, 8(%si)
	shl	$9, %ecx
	add	%ecx, (%si)
	jmp	job
next:
	add	$12, %si
	cmp	$jobs_end, %si
	jb	job

	cli
	in	$0x92, %al		/* A20 */
	or	$2, %al
	and	$0xfe, %al
	out	%al, $0x92
	lgdt	pm_gdtr
	mov	%cr0, %eax
	or	$1, %eax
	mov	%eax, %cr0
	ljmp	$0x08, $pm32
err:
	mov	$0xe9, %dx
	mov	$'E', %al
	out	%al, %dx
	hlt
	jmp	err

	.code32
pm32:
	mov	$0x10, %ax
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	mov	$0x7c00, %esp
	mov	$mbi, %ebx
	mov	$HV_ADDR, %eax
	jmp	*%eax

	.balign	8
pm_gdt:	.quad	0
	.quad	0x00CF9A000000FFFF
	.quad	0x00CF92000000FFFF
pm_gdtr: .word	23
	.long	pm_gdt
drive:	.byte	0, 0
	.balign	4
dap:	.byte	16, 0
dap_count: .word 0
	.word	0, 0x1000		/* buffer 0x1000:0000 */
dap_lba: .long	0, 0
gdt:	.quad	0, 0
	.word	0xffff, 0x0000		/* source: 0x010000 */
	.byte	0x01, 0x93, 0, 0
gdt_dst: .word	0xffff, 0
	.byte	0, 0x93, 0, 0
	.quad	0, 0
	.balign	4
jobs:	/* destination, first sector, sectors */
	.long	HV_ADDR, HV_LBA, HV_NSECT
	.long	K_ADDR, K_LBA, K_NSECT
	.long	I_ADDR, I_LBA, I_NSECT
jobs_end:
mbi:	/* multiboot v1 information: flags (cmdline, mods), cmdline, count, addr */
	.long	(1 << 2) | (1 << 3), 0, 0, 0, cmdline, 2, mods
mods:	.long	K_ADDR, K_ADDR + K_SIZE, 0, 0
	.long	I_ADDR, I_ADDR + I_SIZE, 0, 0
cmdline: .ascii	"hv console=ttyS0 rdinit=/init acpi=off nokaslr nmi_watchdog=0 quiet"
	.byte	0
	.org	510
	.byte	0x55, 0xaa
