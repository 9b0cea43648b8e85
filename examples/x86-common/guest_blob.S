/* SPDX-License-Identifier: MIT */
/* The guest's flat binary (GUEST_BIN, from the Makefile), linked into the host image. */
	.section .rodata
	.balign	16
	.global guest_blob, guest_blob_end
guest_blob:
	.incbin	GUEST_BIN
guest_blob_end:
	.section .note.GNU-stack, "", @progbits
