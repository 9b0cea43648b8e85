/* SPDX-License-Identifier: MIT */
/*
 * The arm64 example hypervisors' EL2 code (examples/arm64-qemu and
 * examples/arm64-linux): boot of the first CPU, the world switch and the EL2
 * vectors.
 *
 * QEMU enters _start at EL2 (virt with virtualization=on) with the MMU off
 * and DAIF masked; _start sets the stack (hyp_stack_top, from the linker
 * script), clears .bss, installs the vectors and calls hyp_main. The
 * hypervisor keeps its MMU off and DAIF masked, so interrupts reach it only
 * as exits from the guest (HCR_EL2.IMO routes them to EL2). Another CPU
 * installs the vectors (a64_vectors) itself.
 *
 * a64_run_guest(regs) saves the hypervisor's callee-saved registers and sp
 * in @regs, keeps @regs in TPIDR_EL2 (one per CPU), loads the guest's
 * registers, ELR_EL2 and SPSR_EL2 and enters the guest with eret. An
 * exception from the guest lands on the lower-EL vectors with SP_EL2 still
 * the hypervisor's stack: they save the guest's registers and the exit reason
 * in @regs and return from a64_run_guest. An exception taken at EL2 itself is
 * a bug and goes to a64_hyp_trap. Offsets match struct a64_regs in each
 * hyp.c (checked there).
 */
#define R_PC 248
#define R_PSTATE 256
#define R_REASON 264
#define R_HOST 272

	.section .text.boot, "ax"
	.global _start
_start:
	ldr x0, =hyp_stack_top
	mov sp, x0
	ldr x1, =__bss_start
	ldr x2, =__bss_end
1:	cmp x1, x2
	b.hs 2f
	str xzr, [x1], #8
	b 1b
2:	ldr x0, =a64_vectors
	msr vbar_el2, x0
	isb
	bl hyp_main
3:	wfi
	b 3b

	.text
	.global a64_run_guest
a64_run_guest:
	stp x19, x20, [x0, #R_HOST + 0]
	stp x21, x22, [x0, #R_HOST + 16]
	stp x23, x24, [x0, #R_HOST + 32]
	stp x25, x26, [x0, #R_HOST + 48]
	stp x27, x28, [x0, #R_HOST + 64]
	stp x29, x30, [x0, #R_HOST + 80]
	mov x1, sp
	str x1, [x0, #R_HOST + 96]
	msr tpidr_el2, x0
	ldr x1, [x0, #R_PC]
	msr elr_el2, x1
	ldr x1, [x0, #R_PSTATE]
	msr spsr_el2, x1
	ldp x2, x3, [x0, #16]
	ldp x4, x5, [x0, #32]
	ldp x6, x7, [x0, #48]
	ldp x8, x9, [x0, #64]
	ldp x10, x11, [x0, #80]
	ldp x12, x13, [x0, #96]
	ldp x14, x15, [x0, #112]
	ldp x16, x17, [x0, #128]
	ldp x18, x19, [x0, #144]
	ldp x20, x21, [x0, #160]
	ldp x22, x23, [x0, #176]
	ldp x24, x25, [x0, #192]
	ldp x26, x27, [x0, #208]
	ldp x28, x29, [x0, #224]
	ldr x30, [x0, #240]
	ldp x0, x1, [x0, #0]
	eret

	/* Exit reason @n: save the guest, restore the hypervisor, return. */
guest_exit:
	mrs x0, tpidr_el2
	str x1, [x0, #R_REASON]
	stp x2, x3, [x0, #16]
	stp x4, x5, [x0, #32]
	stp x6, x7, [x0, #48]
	stp x8, x9, [x0, #64]
	stp x10, x11, [x0, #80]
	stp x12, x13, [x0, #96]
	stp x14, x15, [x0, #112]
	stp x16, x17, [x0, #128]
	stp x18, x19, [x0, #144]
	stp x20, x21, [x0, #160]
	stp x22, x23, [x0, #176]
	stp x24, x25, [x0, #192]
	stp x26, x27, [x0, #208]
	stp x28, x29, [x0, #224]
	str x30, [x0, #240]
	ldp x2, x3, [sp], #16
	stp x2, x3, [x0, #0]
	mrs x1, elr_el2
	str x1, [x0, #R_PC]
	mrs x1, spsr_el2
	str x1, [x0, #R_PSTATE]
	ldp x19, x20, [x0, #R_HOST + 0]
	ldp x21, x22, [x0, #R_HOST + 16]
	ldp x23, x24, [x0, #R_HOST + 32]
	ldp x25, x26, [x0, #R_HOST + 48]
	ldp x27, x28, [x0, #R_HOST + 64]
	ldp x29, x30, [x0, #R_HOST + 80]
	ldr x1, [x0, #R_HOST + 96]
	mov sp, x1
	ret

	.macro exit_vector n
	.balign 0x80
	stp x0, x1, [sp, #-16]!
	mov x1, #\n
	b guest_exit
	.endm

	.macro hyp_vector n
	.balign 0x80
	mov x0, #\n
	b a64_hyp_trap
	.endm

	.balign 2048
	.global a64_vectors
a64_vectors:
	hyp_vector 0	/* current EL, SP_EL0: sync, IRQ, FIQ, SError */
	hyp_vector 1
	hyp_vector 2
	hyp_vector 3
	hyp_vector 4	/* current EL, SP_ELx */
	hyp_vector 5
	hyp_vector 6
	hyp_vector 7
	exit_vector 0	/* lower EL, AArch64: sync */
	exit_vector 1	/* IRQ */
	exit_vector 2	/* FIQ */
	exit_vector 3	/* SError */
	hyp_vector 12	/* lower EL, AArch32 */
	hyp_vector 13
	hyp_vector 14
	hyp_vector 15
