// SPDX-License-Identifier: MIT
/*
 * Local APIC, IDT and the start of the second CPU (INIT, then two STARTUP
 * IPIs at the real-mode trampoline that start.S links to run at 0x8000).
 * Register offsets: Intel SDM vol. 3A, "Advanced Programmable Interrupt
 * Controller"; the start-up sequence: "MP Initialization".
 */
#include "smp.h"

#include "../common/klib.h"
#include "x86.h"

#define MSR_APIC_BASE 0x1b
#define APIC_ID 0x020
#define APIC_EOI 0x0b0
#define APIC_SVR 0x0f0
#define APIC_ICR_LO 0x300
#define APIC_ICR_HI 0x310
#define ICR_PENDING (1u << 12)
#define ICR_LEVEL_ASSERT (1u << 14)
#define ICR_ALL_BUT_SELF (3u << 18)
#define ICR_INIT (5u << 8)
#define ICR_STARTUP (6u << 8)

#define TRAMPOLINE 0x8000u

void ipi_isr(void);
void spurious_isr(void);
extern char __tramp_load[], __tramp_size[];
extern uint64_t lapic_eoi_reg;

static volatile uint32_t *lapic;
volatile uint32_t smp_ap_running;

static struct {
	uint16_t off_lo, sel;
	uint8_t ist, type;
	uint16_t off_mid;
	uint32_t off_hi, zero;
} idt[256] __attribute__((aligned(16)));

static void lidt(void)
{
	struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} idtr = { sizeof(idt) - 1, (uint64_t)(uintptr_t)idt };

	__asm__ volatile("lidt %0" : : "m"(idtr));
}

static void lapic_enable(void)
{
	lapic[APIC_SVR / 4] = 0x100 | SPURIOUS_VECTOR;
}

/*
 * Vectors 32..255 only: every interrupt here is an IPI that needs an EOI.
 * Vectors 0..31 stay absent, so a host exception is a triple fault that
 * ends the run instead of a loop.
 */
void smp_init_bsp(void)
{
	for (unsigned v = 32; v < 256; v++) {
		uint64_t a = (uint64_t)(uintptr_t)(v == SPURIOUS_VECTOR ? spurious_isr : ipi_isr);

		idt[v].off_lo = (uint16_t)a;
		idt[v].sel = SEL_CODE64;
		idt[v].type = 0x8e; /* present, DPL 0, 64-bit interrupt gate */
		idt[v].off_mid = (uint16_t)(a >> 16);
		idt[v].off_hi = (uint32_t)(a >> 32);
	}
	lidt();
	outb(0x21, 0xff); /* the legacy PICs stay silent */
	outb(0xa1, 0xff);
	lapic = (volatile uint32_t *)(uintptr_t)(rdmsr(MSR_APIC_BASE) & 0xffffff000ull);
	lapic_eoi_reg = (uint64_t)(uintptr_t)lapic + APIC_EOI;
	lapic_enable();
}

void smp_init_ap(void)
{
	lidt();
	lapic_enable();
}

uint32_t lapic_id(void)
{
	return lapic[APIC_ID / 4] >> 24;
}

static void icr_wait(void)
{
	while (lapic[APIC_ICR_LO / 4] & ICR_PENDING)
		__asm__ volatile("pause");
}

static void icr_send(uint32_t dest, uint32_t lo)
{
	icr_wait();
	lapic[APIC_ICR_HI / 4] = dest << 24;
	lapic[APIC_ICR_LO / 4] = lo;
	icr_wait();
}

void lapic_send_ipi(uint32_t apic_id, uint8_t vector)
{
	icr_send(apic_id, ICR_LEVEL_ASSERT | vector);
}

void lapic_eoi(void)
{
	lapic[APIC_EOI / 4] = 0;
}

/* The emulators deliver INIT and STARTUP at once; a short pause is enough. */
static void delay(unsigned n)
{
	for (volatile unsigned i = 0; i < n; i++)
		__asm__ volatile("pause");
}

int smp_start_ap(void)
{
	memcpy((void *)(uintptr_t)TRAMPOLINE, __tramp_load, (size_t)(uintptr_t)__tramp_size);
	icr_send(0, ICR_ALL_BUT_SELF | ICR_LEVEL_ASSERT | ICR_INIT);
	delay(10000);
	for (unsigned i = 0; i < 2 && !smp_ap_running; i++) {
		icr_send(0, ICR_ALL_BUT_SELF | ICR_STARTUP | (TRAMPOLINE >> 12));
		delay(10000);
	}
	for (unsigned i = 0; i < 1000000 && !__atomic_load_n(&smp_ap_running, __ATOMIC_ACQUIRE);
	     i++)
		__asm__ volatile("pause");
	return smp_ap_running ? 0 : -1;
}
