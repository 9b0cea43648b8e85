/* SPDX-License-Identifier: MIT */
/*
 * Floppy boot sector for the bochs image (bochs has no -kernel loader):
 * reads NSECT sectors that follow it to 0x10000 with BIOS int 13h, one at a
 * time (CHS, 18 sectors per track, 2 heads), enables A20, switches to 32-bit
 * protected mode with flat segments and jumps to the payload's first byte.
 */
	.code16
	.global _start
_start:
	cli
	xor	%ax, %ax
	mov	%ax, %ds
	mov	%ax, %ss
	mov	$0x7c00, %sp
	mov	%dl, drive
	mov	$0x1000, %ax
	mov	%ax, %es
	xor	%bx, %bx
	mov	$2, %cl				/* sector (1-based), cylinder 0, head 0 */
	xor	%ch, %ch
	xor	%dh, %dh
	mov	$NSECT, %si
1:	mov	$0x0201, %ax			/* read 1 sector */
	mov	drive, %dl
	int	$0x13
	jc	disk_error
	mov	%es, %ax
	add	$0x20, %ax			/* next 512 bytes */
	mov	%ax, %es
	inc	%cl
	cmp	$19, %cl
	jb	2f
	mov	$1, %cl
	inc	%dh
	cmp	$2, %dh
	jb	2f
	xor	%dh, %dh
	inc	%ch
2:	dec	%si
	jnz	1b

	in	$0x92, %al			/* A20 through the fast gate */
	or	$2, %al
	out	%al, $0x92
	lgdt	gdtr
	mov	%cr0, %eax
	or	$1, %eax
	mov	%eax, %cr0
	ljmp	$0x08, $pm32

disk_error:
	mov	$0xe9, %dx
	mov	$'E', %al
	out	%al, %dx
	hlt
	jmp	disk_error

	.code32
pm32:
	mov	$0x10, %ax
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	mov	$0x7c00, %esp
	mov	$0x10000, %eax
	jmp	*%eax

	.balign	8
gdt:
	.quad	0
	.quad	0x00CF9A000000FFFF		/* 0x08: 32-bit code */
	.quad	0x00CF92000000FFFF		/* 0x10: data */
gdtr:
	.word	23
	.long	gdt
drive:
	.byte	0
	.org	510
	.word	0xAA55
