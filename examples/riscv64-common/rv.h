/* SPDX-License-Identifier: MIT */
/*
 * What the riscv64 example hypervisors (examples/riscv64-qemu,
 * examples/riscv64-linux) share in C: CSR access and the bits they use, the
 * hypervisor fences, SBI calls, the console and the log (rv.c), the end of a
 * run through QEMU virt's sifive_test, the hart id, and the vcpu registers
 * the world switch (hs.S) saves.
 */
#ifndef S2_EXAMPLES_RV_H
#define S2_EXAMPLES_RV_H

#include <stddef.h>
#include <stdint.h>

#define CSR_HSTATUS 0x600
#define CSR_HGATP 0x680
#define CSR_VSATP 0x280
#define SSTATUS_SPIE (1ull << 5)
#define SSTATUS_SPP (1ull << 8)
#define SSTATUS_FS_INITIAL (1ull << 13)
#define HSTATUS_SPV (1ull << 7)
#define SIE_SSIE (1ull << 1)
#define SIE_STIE (1ull << 5)
#define SIP_SSIP (1ull << 1)
#define HVIP_VSSIP (1ull << 2)
#define SCAUSE_IRQ (1ull << 63)
#define IRQ_S_SOFT 1
#define IRQ_S_TIMER 5
#define EXC_VS_ECALL 10
#define EXC_INSN_GPF 20
#define EXC_LOAD_GPF 21
#define EXC_VIRT_INSN 22
#define EXC_STORE_GPF 23

#define csr_read(csr)                                          \
	__extension__({                                        \
		uint64_t v_;                                   \
		__asm__ volatile("csrr %0, " #csr : "=r"(v_)); \
		v_;                                            \
	})
#define csr_write(csr, val) \
	__asm__ volatile("csrw " #csr ", %0" : : "r"((uint64_t)(val)) : "memory")
#define csr_set(csr, val) __asm__ volatile("csrs " #csr ", %0" : : "r"((uint64_t)(val)) : "memory")
#define csr_clear(csr, val) \
	__asm__ volatile("csrc " #csr ", %0" : : "r"((uint64_t)(val)) : "memory")
/* HFENCE.GVMA x0, x0 and HFENCE.VVMA x0, x0 (no H in -march). */
#define hfence_gvma_all() __asm__ volatile(".insn r 0x73, 0, 0x31, x0, x0, x0" : : : "memory")
#define hfence_vvma_all() __asm__ volatile(".insn r 0x73, 0, 0x11, x0, x0, x0" : : : "memory")

/* QEMU virt: the 16550 console (klib_putc, rv.c) and the test device. */
#define HOST_UART 0x10000000ul
#define SIFIVE_TEST 0x100000ul

/* ---- SBI ------------------------------------------------------------------ */

struct sbiret {
	long error, value;
};

static inline struct sbiret sbi_call(long eid, long fid, long a0, long a1, long a2, long a3,
				     long a4)
{
	register long r0 __asm__("a0") = a0;
	register long r1 __asm__("a1") = a1;
	register long r2 __asm__("a2") = a2;
	register long r3 __asm__("a3") = a3;
	register long r4 __asm__("a4") = a4;
	register long r6 __asm__("a6") = fid;
	register long r7 __asm__("a7") = eid;

	__asm__ volatile("ecall"
			 : "+r"(r0), "+r"(r1)
			 : "r"(r2), "r"(r3), "r"(r4), "r"(r6), "r"(r7)
			 : "memory");
	return (struct sbiret){ r0, r1 };
}

#define SBI_EXT_BASE 0x10
#define SBI_EXT_TIME 0x54494d45
#define SBI_EXT_IPI 0x735049
#define SBI_EXT_RFENCE 0x52464e43
#define SBI_EXT_HSM 0x48534d
#define SBI_EXT_SRST 0x53525354
#define SBI_EXT_DBCN 0x4442434e
#define SBI_RFENCE_HFENCE_GVMA_VMID 3
#define SBI_ERR_FAILED (-1)
#define SBI_ERR_NOT_SUPPORTED (-2)
#define SBI_ERR_INVALID_PARAM (-3)
#define SBI_ERR_INVALID_ADDRESS (-5)
#define SBI_ERR_ALREADY_AVAILABLE (-6)

/* ---- log, end of run, harts ----------------------------------------------- */

/* One line (or a few) on the console, whole: both harts print. */
void hlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* sifive_test: QEMU exits with status @code (0: pass). */
__attribute__((noreturn)) void rv_test_exit(int code);

/* hs.S keeps each hart's id in tp (the compiler never uses it here). */
static inline uint64_t hart_self(void)
{
	uint64_t id;

	__asm__("mv %0, tp" : "=r"(id));
	return id;
}

/* hs.S: the second hart's entry, and the release of a hart parked in _start. */
extern char _start_secondary[];
extern uint32_t rv_park_release;

/* Each hypervisor's: the second hart's C entry (the boot hart's is
 * hyp_main(hart id, OpenSBI's device tree)), and a trap of the hypervisor
 * itself (a bug). */
void hyp_secondary(uint64_t hartid);
void rv_hyp_trap(uint64_t scause, uint64_t sepc, uint64_t stval);

/* ---- the vcpu's registers (offsets shared with hs.S) --------------------- */

struct rv_regs {
	uint64_t x[32];
	uint64_t pc;
	uint64_t host[16];
	uint64_t scause, stval, htval, htinst, sstatus;
};
_Static_assert(offsetof(struct rv_regs, pc) == 256, "hs.S R_PC");
_Static_assert(offsetof(struct rv_regs, host) == 264, "hs.S R_HOST");
_Static_assert(offsetof(struct rv_regs, scause) == 392, "hs.S R_SCAUSE");
_Static_assert(offsetof(struct rv_regs, htinst) == 416, "hs.S R_HTINST");
_Static_assert(offsetof(struct rv_regs, sstatus) == 424, "hs.S R_SSTATUS");

/* Run the guest until it exits: the cause is in regs->scause. */
void rv_run_guest(struct rv_regs *regs);
/* The guest's instruction halfword at @va (HLVX.HU), or -1 if that faults. */
uint64_t rv_hlvx_hu(uint64_t va);

#endif
