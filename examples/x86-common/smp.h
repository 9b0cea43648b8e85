/* SPDX-License-Identifier: MIT */
/*
 * Two CPUs for the x86 examples: the boot CPU plays the host's memory
 * manager, the second CPU runs the vcpu. Local APIC IPIs connect them: the
 * vcpu wakes the boot CPU to ask for the zap, the library's kick hook makes
 * the vcpu leave guest mode so that it flushes before it re-enters.
 */
#ifndef S2_EXAMPLES_X86_SMP_H
#define S2_EXAMPLES_X86_SMP_H

#include <stdbool.h>
#include <stdint.h>

#define WAKE_VECTOR 0x41 /* vcpu -> boot CPU: a request is waiting */
#define KICK_VECTOR 0x42 /* boot CPU -> vcpu: leave guest mode */
#define SPURIOUS_VECTOR 0xff

/* Boot CPU: IDT, legacy PICs masked, its local APIC enabled. */
void smp_init_bsp(void);
/* Start the second CPU at ap_main(); returns once it runs, or -1. */
int smp_start_ap(void);
/* Second CPU: the same IDT, its own local APIC enabled. */
void smp_init_ap(void);

uint32_t lapic_id(void);
void lapic_send_ipi(uint32_t apic_id, uint8_t vector);
void lapic_eoi(void);

/* Set by the second CPU once it runs. */
extern volatile uint32_t smp_ap_running;

/* Interrupts taken by the hosts (start.S). */
extern volatile uint64_t ipi_isr_count;

#endif
