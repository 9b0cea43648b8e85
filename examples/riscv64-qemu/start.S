/* SPDX-License-Identifier: MIT */
/*
 * riscv64 example hypervisor: the guest image it carries. Boot, the world
 * switch and the trap vector are ../riscv64-common/hs.S.
 */

	/* The guest image, built separately and linked at its gpa. */
	.section .rodata.guest, "a"
	.balign 16
	.global guest_image, guest_image_end
guest_image:
	.incbin GUEST_BIN
guest_image_end:
