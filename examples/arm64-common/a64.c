// SPDX-License-Identifier: MIT
/* The arm64 example hypervisors' console and end of run (a64.h). */
#include "a64.h"

#include "../common/klib.h"

void klib_putc(char c)
{
	while (mmio_r32(HOST_UART + 0x18) & 0x20)
		;
	mmio_w32(HOST_UART, (uint8_t)c);
}

void a64_semihost_exit(int code)
{
	static volatile uint64_t block[2];

	block[0] = 0x20026; /* ADP_Stopped_ApplicationExit */
	block[1] = (uint64_t)code;
	/* Register variables are only bound at the asm: set them right here. */
	register uint64_t x0 __asm__("x0") = 0x18; /* SYS_EXIT */
	register uint64_t x1 __asm__("x1") = (uint64_t)(uintptr_t)block;

	__asm__ volatile("hlt #0xf000" : "+r"(x0) : "r"(x1) : "memory");
	for (;;)
		__asm__ volatile("wfi");
}
