/* SPDX-License-Identifier: MIT */
/*
 * arm64 Linux example hypervisor: the second CPU's entry. CPU 0's boot, the
 * world switch and the EL2 vectors are ../arm64-common/el2.S.
 *
 * CPU 1 starts powered off; hyp_main starts it through QEMU's PSCI CPU_ON
 * (SMC) at _secondary with its stack top in x0.
 */

	.section .text.boot, "ax"
	.global _secondary
_secondary:
	mov sp, x0
	ldr x0, =a64_vectors
	msr vbar_el2, x0
	isb
	bl hyp_secondary
1:	wfi
	b 1b
