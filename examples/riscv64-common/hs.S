/* SPDX-License-Identifier: MIT */
/*
 * The riscv64 example hypervisors' HS-mode code (examples/riscv64-qemu and
 * examples/riscv64-linux): boot, the world switch, the trap vector and
 * HLVX.HU with a fault fixup.
 *
 * OpenSBI enters _start in HS-mode (a0 = hart id, a1 = its device tree) on
 * the hart it booted, and on some runs on the other one too. The first hart
 * through clears .bss and runs hyp_main(hart id); a later one parks until
 * hyp_main releases it (rv_park_release). A hart started by hyp_main (SBI
 * HSM) or released runs _start_secondary, then hyp_secondary(hart id). Each
 * hart keeps its id in tp, has its own stack (hart id 0 or 1), runs with
 * satp = 0 and sstatus.SIE = 0: interrupts reach it only as guest exits (an
 * HS-level interrupt is always taken while V=1).
 *
 * rv_run_guest(regs) saves the hypervisor's callee-saved registers, loads
 * the guest's and enters it with sret (the caller set sepc's value in
 * regs->pc, hstatus.SPV and sstatus.SPP). While the guest runs, sscratch
 * holds @regs, which tells a guest exit (save the guest, restore the
 * hypervisor, return from rv_run_guest) from a trap of the hypervisor itself
 * (sscratch = 0: rv_hyp_trap, a bug, unless rv_hlvx_hu faulted). Offsets
 * match struct rv_regs in rv.h (checked there).
 */
#define R_X(n) ((n) * 8)
#define R_PC 256
#define R_HOST 264
#define R_SCAUSE 392
#define R_STVAL 400
#define R_HTVAL 408
#define R_HTINST 416
#define R_SSTATUS 424

#define CSR_HTVAL 0x643
#define CSR_HTINST 0x64a
#define STACK_SIZE 0x10000

	.section .text.boot, "ax"
	.global _start
_start:
	mv tp, a0			/* hart id, for hart_self() */
	/*
	 * OpenSBI may send every hart here, not only the one it booted (its
	 * HSM keeps the others stopped on some runs, not on others). The
	 * first one through becomes the boot hart; a later one parks until
	 * hyp_main releases it to _start_secondary.
	 */
	la t0, boot_lottery
	li t1, 1
	amoswap.w t1, t1, (t0)
	bnez t1, park
	call set_stack
	la t0, __bss_start
	la t1, __bss_end
1:	bgeu t0, t1, 2f
	sd zero, 0(t0)
	addi t0, t0, 8
	j 1b
2:	la t0, rv_trap_entry
	csrw stvec, t0
	csrw sscratch, zero
	mv a0, tp
	call hyp_main
3:	wfi
	j 3b

park:
	la t0, rv_park_release
1:	lw t1, 0(t0)
	beqz t1, 1b
	fence r, rw
	/* fall through */

	/* The second hart, started by hyp_main (SBI HSM, or the release). */
	.global _start_secondary
_start_secondary:
	mv tp, a0
	call set_stack
	la t0, rv_trap_entry
	csrw stvec, t0
	csrw sscratch, zero
	mv a0, tp
	call hyp_secondary
4:	wfi
	j 4b

/* sp = the top of hart tp's stack (tp is 0 or 1). */
set_stack:
	la sp, hyp_stacks
	addi t0, tp, 1
	li t1, STACK_SIZE
	mul t0, t0, t1
	add sp, sp, t0
	ret

	.text
	.global rv_run_guest
rv_run_guest:
	sd ra, R_HOST + 0(a0)
	sd sp, R_HOST + 8(a0)
	sd gp, R_HOST + 16(a0)
	sd tp, R_HOST + 24(a0)
	sd s0, R_HOST + 32(a0)
	sd s1, R_HOST + 40(a0)
	sd s2, R_HOST + 48(a0)
	sd s3, R_HOST + 56(a0)
	sd s4, R_HOST + 64(a0)
	sd s5, R_HOST + 72(a0)
	sd s6, R_HOST + 80(a0)
	sd s7, R_HOST + 88(a0)
	sd s8, R_HOST + 96(a0)
	sd s9, R_HOST + 104(a0)
	sd s10, R_HOST + 112(a0)
	sd s11, R_HOST + 120(a0)
	ld t0, R_PC(a0)
	csrw sepc, t0
	csrw sscratch, a0
	.irp n, 1,2,3,4,5,6,7,8,9,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	ld x\n, R_X(\n)(a0)
	.endr
	ld a0, R_X(10)(a0)
	sret

	.balign 4
rv_trap_entry:
	csrrw a0, sscratch, a0
	beqz a0, hyp_trap
	.irp n, 1,2,3,4,5,6,7,8,9,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	sd x\n, R_X(\n)(a0)
	.endr
	csrr t0, sscratch
	sd t0, R_X(10)(a0)
	csrw sscratch, zero
	csrr t0, sepc
	sd t0, R_PC(a0)
	csrr t0, scause
	sd t0, R_SCAUSE(a0)
	csrr t0, stval
	sd t0, R_STVAL(a0)
	csrr t0, CSR_HTVAL
	sd t0, R_HTVAL(a0)
	csrr t0, CSR_HTINST
	sd t0, R_HTINST(a0)
	csrr t0, sstatus
	sd t0, R_SSTATUS(a0)
	ld ra, R_HOST + 0(a0)
	ld sp, R_HOST + 8(a0)
	ld gp, R_HOST + 16(a0)
	ld tp, R_HOST + 24(a0)
	ld s0, R_HOST + 32(a0)
	ld s1, R_HOST + 40(a0)
	ld s2, R_HOST + 48(a0)
	ld s3, R_HOST + 56(a0)
	ld s4, R_HOST + 64(a0)
	ld s5, R_HOST + 72(a0)
	ld s6, R_HOST + 80(a0)
	ld s7, R_HOST + 88(a0)
	ld s8, R_HOST + 96(a0)
	ld s9, R_HOST + 104(a0)
	ld s10, R_HOST + 112(a0)
	ld s11, R_HOST + 120(a0)
	ret

	/*
	 * A trap of the hypervisor: the HLVX.HU below may fault (the page
	 * went away since the guest fetched it); it then returns -1. Anything
	 * else is a bug, reported by rv_hyp_trap (t0 and t1 are lost).
	 */
hyp_trap:
	csrrw a0, sscratch, a0
	csrr t0, sepc
	la t1, hlvx_insn
	bne t0, t1, 1f
	la t1, hlvx_fixup
	csrw sepc, t1
	sret
1:	csrr a0, scause
	csrr a1, sepc
	csrr a2, stval
	j rv_hyp_trap

	/* uint64_t rv_hlvx_hu(uint64_t va): the guest's halfword at @va,
	 * read as the guest's instruction fetch would (vsatp, hgatp, the
	 * privilege in hstatus.SPVP), or -1 if that faults. */
	.global rv_hlvx_hu
rv_hlvx_hu:
	mv t0, a0
hlvx_insn:
	.insn r 0x73, 4, 0x32, a0, t0, x3
	ret
hlvx_fixup:
	li a0, -1
	ret

	.data
	.balign 4
boot_lottery:
	.word 0
	.global rv_park_release
rv_park_release:
	.word 0

	.bss
	.balign 16
hyp_stacks:
	.skip 2 * STACK_SIZE
