/* SPDX-License-Identifier: MIT */
/* Small x86-64 helpers for the bare-metal example hypervisors. */
#ifndef S2_EXAMPLES_X86_H
#define S2_EXAMPLES_X86_H

#include <stdint.h>

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;

	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((uint64_t)hi << 32) | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__asm__ volatile("cpuid"
			 : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			 : "a"(leaf), "c"(sub));
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

/*
 * Spin @ticks TSC ticks. A failed run under QEMU keeps its tables this long
 * (2^34 ticks: seconds) after its "tables:" line, for its run script to save
 * them (../common/keep-tables.sh), which quits QEMU at once after.
 */
static inline void tsc_wait(uint64_t ticks)
{
	uint64_t t0 = rdtsc();

	while (rdtsc() - t0 < ticks)
		__asm__ volatile("pause");
}

#define X86_READ_CR(n)                                             \
	({                                                         \
		uint64_t v_;                                       \
		__asm__ volatile("mov %%cr" #n ", %0" : "=r"(v_)); \
		v_;                                                \
	})
#define X86_WRITE_CR(n, v) __asm__ volatile("mov %0, %%cr" #n : : "r"((uint64_t)(v)) : "memory")

#define MSR_EFER 0xc0000080u
#define EFER_LME (1ull << 8)
#define EFER_NXE (1ull << 11)
#define EFER_SVME (1ull << 12)

/* Host GDT selectors (start.S). */
#define SEL_CODE64 0x08
#define SEL_DATA 0x10
#define SEL_TSS 0x18 /* CPU 0's TSS; CPU 1's is at 0x28 */

/*
 * The running CPU's descriptor tables, as a VM exit must restore them (VMX
 * loads the host's TR, GDTR and IDTR from the VMCS): its TR selector and the
 * base of the 64-bit TSS descriptor it names in the GDT, the GDT and the IDT.
 * Read on the CPU that will run the vcpu, so each CPU gets its own TSS.
 */
struct x86_host_tables {
	uint16_t tr;
	uint64_t tr_base, gdt_base, idt_base;
};

static inline void x86_host_tables(struct x86_host_tables *t)
{
	struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} gdtr, idtr;
	const uint64_t *d;

	__asm__ volatile("sgdt %0" : "=m"(gdtr));
	__asm__ volatile("sidt %0" : "=m"(idtr));
	__asm__ volatile("str %0" : "=r"(t->tr));
	d = (const uint64_t *)(uintptr_t)(gdtr.base + (t->tr & ~7u));
	t->tr_base = ((d[0] >> 16) & 0xffffff) | ((d[0] >> 56) << 24) | (d[1] << 32);
	t->gdt_base = gdtr.base;
	t->idt_base = idtr.base;
}

#endif
