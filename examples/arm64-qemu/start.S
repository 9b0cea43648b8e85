/* SPDX-License-Identifier: MIT */
/*
 * arm64 example hypervisor: the guest image it carries. Boot, the world
 * switch and the EL2 vectors are ../arm64-common/el2.S.
 */

	/* The guest image, built separately and linked at its gpa. */
	.section .rodata.guest, "a"
	.balign 16
	.global guest_image, guest_image_end
guest_image:
	.incbin GUEST_BIN
guest_image_end:
