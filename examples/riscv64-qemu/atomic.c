// SPDX-License-Identifier: MIT
/*
 * The one libatomic routine the library needs on riscv64: gcc 12 does not
 * inline atomics narrower than 32 bits there (core/kvm.c exchanges a bool),
 * and the toolchain's libatomic is built for the lp64d ABI, which does not
 * link with this soft-float image. A byte exchange is a compare-and-exchange
 * loop on the aligned word that holds the byte (LR.W/SC.W).
 */
#include <stdbool.h>
#include <stdint.h>

uint8_t rv_atomic_exchange_1(volatile void *ptr, uint8_t val, int order) __asm__("__atomic_exchange_1");
uint8_t rv_atomic_exchange_1(volatile void *ptr, uint8_t val, int order)
{
	uintptr_t a = (uintptr_t)ptr;
	volatile uint32_t *word = (volatile uint32_t *)(a & ~(uintptr_t)3);
	unsigned shift = (unsigned)(a & 3) * 8;
	uint32_t mask = 0xffu << shift;
	uint32_t old = __atomic_load_n(word, __ATOMIC_RELAXED), new;

	(void)order; /* every exchange is made sequentially consistent */
	do {
		new = (old & ~mask) | ((uint32_t)val << shift);
	} while (!__atomic_compare_exchange_n(word, &old, new, true, __ATOMIC_SEQ_CST,
					      __ATOMIC_RELAXED));
	return (uint8_t)(old >> shift);
}
