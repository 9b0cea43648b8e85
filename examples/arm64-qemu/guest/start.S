/* SPDX-License-Identifier: MIT */
/* The guest's entry (EL1, MMU off): stack, bss, guest_main, then verdict. */
#include "../layout.h"

	.section .text.boot, "ax"
	.global _start
_start:
	ldr x0, =guest_stack_top
	mov sp, x0
	ldr x1, =__bss_start
	ldr x2, =__bss_end
1:	cmp x1, x2
	b.hs 2f
	str xzr, [x1], #8
	b 1b
2:	bl guest_main
	ldr x1, =G_CTL + CTL_EXIT
	str x0, [x1]
3:	b 3b
