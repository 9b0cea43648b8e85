// SPDX-License-Identifier: MIT
/* The riscv64 example hypervisors' console, log and end of run (rv.h). */
#include <stdarg.h>

#include "rv.h"

#include "../common/klib.h"

void klib_putc(char c)
{
	volatile uint8_t *uart = (volatile uint8_t *)HOST_UART;

	while (!(uart[5] & 0x20))
		;
	uart[0] = (uint8_t)c;
}

static uint32_t log_lock;

void hlog(const char *fmt, ...)
{
	char buf[320];
	va_list ap;

	va_start(ap, fmt);
	kvsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	while (__atomic_exchange_n(&log_lock, 1, __ATOMIC_ACQUIRE))
		;
	for (const char *c = buf; *c; c++)
		klib_putc(*c);
	__atomic_store_n(&log_lock, 0, __ATOMIC_RELEASE);
}

void rv_test_exit(int code)
{
	volatile uint32_t *test = (volatile uint32_t *)SIFIVE_TEST;

	*test = code ? ((uint32_t)code << 16) | 0x3333 : 0x5555;
	for (;;)
		__asm__ volatile("wfi");
}
