/* SPDX-License-Identifier: MIT */
/*
 * What the arm64 example hypervisors (examples/arm64-qemu, examples/arm64-linux)
 * share in C: system-register access, the EL2 register bits and syndrome
 * fields they use, MMIO, the PL011 console (a64.c), the end of a run through
 * semihosting, and the vcpu registers the world switch (el2.S) saves.
 */
#ifndef S2_EXAMPLES_A64_H
#define S2_EXAMPLES_A64_H

#include <stddef.h>
#include <stdint.h>

#define sysreg_read(r)                                      \
	__extension__({                                     \
		uint64_t v_;                                \
		__asm__ volatile("mrs %0, " #r : "=r"(v_)); \
		v_;                                         \
	})
#define sysreg_write(r, v) __asm__ volatile("msr " #r ", %0" : : "r"((uint64_t)(v)) : "memory")
#define isb() __asm__ volatile("isb" : : : "memory")

#define HCR_VM (1ull << 0)
#define HCR_FMO (1ull << 3)
#define HCR_IMO (1ull << 4)
#define HCR_AMO (1ull << 5)
#define HCR_TSC (1ull << 19)
#define HCR_RW (1ull << 31)
#define HCR_APK (1ull << 40)
#define HCR_API (1ull << 41)
#define HCR_FWB (1ull << 46)
#define SPSR_EL1H_DAIF 0x3c5ull		/* EL1h, D/A/I/F masked */
#define SCTLR_EL1_MMU_OFF 0x30d00800ull /* RES1 bits, M = C = I = 0 */

#define ESR_EC(esr) (((esr) >> 26) & 0x3f)
#define EC_HVC64 0x16
#define EC_SMC64 0x17
#define EC_SYSREG 0x18
#define EC_IABT_LOW 0x20
#define EC_DABT_LOW 0x24
#define ESR_ISV (1ull << 24)
#define ESR_SAS(esr) (((esr) >> 22) & 3)
#define ESR_SSE (1ull << 21)
#define ESR_SRT(esr) (((esr) >> 16) & 0x1f)
#define ESR_SF (1ull << 15)
#define ESR_S1PTW (1ull << 7)
#define ESR_WNR (1ull << 6)
#define ESR_FSC(esr) ((esr)&0x3f)
/* Fault status classes (the low two bits are the level). */
#define FSC_CLASS(fsc) ((fsc)&0x3c)
#define FSC_TRANSLATION 0x04
#define FSC_ACCESS_FLAG 0x08
#define FSC_PERMISSION 0x0c

/* QEMU virt's PL011, the hypervisors' console (klib_putc, a64.c). */
#define HOST_UART 0x09000000ul

static inline void mmio_w32(uintptr_t a, uint32_t v)
{
	*(volatile uint32_t *)a = v;
}

static inline uint32_t mmio_r32(uintptr_t a)
{
	return *(volatile uint32_t *)a;
}

/* Semihosting SYS_EXIT with ADP_Stopped_ApplicationExit: QEMU exits with
 * @code as its status (run with -semihosting). */
__attribute__((noreturn)) void a64_semihost_exit(int code);

/* ---- the vcpu's registers (offsets shared with el2.S) -------------------- */

/* Exit reasons (the lower-EL vector that was taken, el2.S). */
enum { REASON_SYNC = 0, REASON_IRQ = 1, REASON_FIQ = 2, REASON_SERROR = 3 };

struct a64_regs {
	uint64_t x[31];
	uint64_t pc, pstate, reason;
	uint64_t host[13]; /* x19..x30, sp */
};
_Static_assert(offsetof(struct a64_regs, pc) == 248, "el2.S R_PC");
_Static_assert(offsetof(struct a64_regs, pstate) == 256, "el2.S R_PSTATE");
_Static_assert(offsetof(struct a64_regs, reason) == 264, "el2.S R_REASON");
_Static_assert(offsetof(struct a64_regs, host) == 272, "el2.S R_HOST");

/* Run the guest until an exception from it: the reason is in regs->reason. */
void a64_run_guest(struct a64_regs *regs);
/* Each hypervisor's: an exception taken at EL2 itself (a bug). */
void a64_hyp_trap(uint64_t vector);

#endif
