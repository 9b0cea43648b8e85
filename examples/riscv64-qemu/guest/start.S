/* SPDX-License-Identifier: MIT */
/* The guest's entry: stack, bss, guest_main, then report its verdict. */
#include "../layout.h"

	.section .text.boot, "ax"
	.global _start
_start:
	la sp, guest_stack_top
	la t0, __bss_start
	la t1, __bss_end
1:	bgeu t0, t1, 2f
	sd zero, 0(t0)
	addi t0, t0, 8
	j 1b
2:	call guest_main
	li t0, G_CTL + CTL_EXIT
	sd a0, 0(t0)
3:	j 3b
