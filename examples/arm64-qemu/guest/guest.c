// SPDX-License-Identifier: MIT
/*
 * The arm64 example's guest (EL1, MMU off: its addresses are IPAs, and every
 * access is Device-nGnRnE, hence -mstrict-align). It prints through the
 * emulated PL011, writes and reads back patterns in memslots laid out for
 * 1 GiB, 2 MiB and 4 KiB leaves, reads the read-only slot and writes it
 * once, reads one device register with every load width and extension the
 * syndrome decoder must handle, and keeps reading a page while the
 * hypervisor zaps it, and reads a page before and after the hypervisor ages
 * it. It returns the number of wrong results (0 = pass);
 * _start hands that to CTL_EXIT.
 *
 * Device accesses are single loads/stores without writeback written in
 * assembly, so the data abort syndrome is valid (ISV = 1) whatever the
 * compiler would have chosen; except in isv0_forms(), whose writeback and
 * pair forms come with ISV = 0 and are completed by the hypervisor through
 * the library's instruction decoder.
 */
#include <stdint.h>

#include "../../common/klib.h"
#include "../layout.h"

static inline void w8(uint64_t a, uint8_t v)
{
	__asm__ volatile("strb %w0, [%1]" : : "r"(v), "r"(a) : "memory");
}

static inline void w64(uint64_t a, uint64_t v)
{
	__asm__ volatile("str %0, [%1]" : : "r"(v), "r"(a) : "memory");
}

static inline uint64_t r64(uint64_t a)
{
	uint64_t v;

	__asm__ volatile("ldr %0, [%1]" : "=r"(v) : "r"(a) : "memory");
	return v;
}

static inline uint32_t r32(uint64_t a)
{
	uint32_t v;

	__asm__ volatile("ldr %w0, [%1]" : "=r"(v) : "r"(a) : "memory");
	return v;
}

void klib_putc(char c)
{
	while (r32(G_UART + UART_FR) & UART_FR_TXFF)
		;
	w8(G_UART, (uint8_t)c);
}

static unsigned long errors;

static void phase(uint64_t n)
{
	w64(G_CTL + CTL_PHASE, n);
}

static void fill_check(const char *what, uint64_t gpa, uint64_t size, uint64_t seed)
{
	volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)gpa;
	unsigned long bad = 0;

	for (uint64_t i = 0; i < size / 8; i++)
		p[i] = PATTERN(gpa + i * 8, seed);
	for (uint64_t i = 0; i < size / 8; i++)
		if (p[i] != PATTERN(gpa + i * 8, seed))
			bad++;
	kprintf("%s: %lu KiB at gpa 0x%lx written and read back, %lu wrong\n", what,
		(unsigned long)(size >> 10), (unsigned long)gpa, bad);
	errors += bad;
}

static void rom(void)
{
	volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)G_ROM;
	unsigned long bad = 0;

	for (uint64_t i = 0; i < G_ROM_SIZE / 8; i++)
		if (p[i] != ROM_WORD(i))
			bad++;
	w64(G_ROM + 8, 0xdeadbeef); /* exits: RET_PF_RO_WRITE, dropped */
	if (p[1] != ROM_WORD(1))
		bad++;
	kprintf("rom: %lu KiB read, one write dropped, %lu wrong\n",
		(unsigned long)(G_ROM_SIZE >> 10), bad);
	errors += bad;
}

/* SAS, SSE and SF: one register, every load form that reads it differently. */
static void load_forms(void)
{
	uint64_t a = G_CTL + CTL_MAGIC, v[6];
	static const uint64_t want[6] = {
		0x000000008badf00dull, /* ldr x */
		0x000000008badf00dull, /* ldr w: zero-extended */
		0xffffffff8badf00dull, /* ldrsw x */
		0xfffffffffffff00dull, /* ldrsh x */
		0x000000000000f00dull, /* ldrh w */
		0x000000000000000dull, /* ldrb w */
	};
	unsigned long bad = 0;

	__asm__ volatile("ldr %0, [%1]" : "=r"(v[0]) : "r"(a) : "memory");
	__asm__ volatile("ldr %w0, [%1]" : "=r"(v[1]) : "r"(a) : "memory");
	__asm__ volatile("ldrsw %0, [%1]" : "=r"(v[2]) : "r"(a) : "memory");
	__asm__ volatile("ldrsh %0, [%1]" : "=r"(v[3]) : "r"(a) : "memory");
	__asm__ volatile("ldrh %w0, [%1]" : "=r"(v[4]) : "r"(a) : "memory");
	__asm__ volatile("ldrb %w0, [%1]" : "=r"(v[5]) : "r"(a) : "memory");
	for (int i = 0; i < 6; i++)
		if (v[i] != want[i]) {
			kprintf("load form %d read 0x%lx, want 0x%lx\n", i, (unsigned long)v[i],
				(unsigned long)want[i]);
			bad++;
		}
	kprintf("MMIO load forms (ldr x/w, ldrsw, ldrsh, ldrh, ldrb): %lu wrong\n", bad);
	errors += bad;
}

/*
 * Writeback and pair forms on device memory: the data abort has ISV = 0 and
 * the hypervisor decodes the instruction (s2_decode_arm64) to complete it.
 * Outputs are early-clobber so that no load writes back onto its own base
 * (CONSTRAINED UNPREDICTABLE, which the decoder refuses).
 */
static void isv0_forms(void)
{
	const uint64_t a = G_CTL + CTL_SCRATCH, one = 0x1111111111111111ull,
		       two = 0x2222222222222222ull, three = 0x3333333333333333ull;
	uint64_t p = a, q = a, v0, v1, v2, s0, s1;
	unsigned long bad = 0;

	/* post-index store, then a pair store at the written-back base */
	__asm__ volatile("str %1, [%0], #8" : "+r"(p) : "r"(one) : "memory");
	__asm__ volatile("stp %1, %2, [%0]" : : "r"(p), "r"(two), "r"(three) : "memory");
	/* post-index pair load, pre-index load back */
	__asm__ volatile("ldp %1, %2, [%0], #16" : "+r"(q), "=&r"(v0), "=&r"(v1) : : "memory");
	__asm__ volatile("ldr %1, [%0, #-8]!" : "+r"(q), "=&r"(v2) : : "memory");
	/* a sign-extending pair: MAGIC's low word is negative as an int32 */
	__asm__ volatile("ldpsw %0, %1, [%2]"
			 : "=&r"(s0), "=&r"(s1)
			 : "r"(G_CTL + CTL_MAGIC)
			 : "memory");
	bad += p != a + 8;
	bad += v0 != one;
	bad += v1 != two;
	bad += v2 != two;
	bad += q != a + 8;
	bad += s0 != 0xffffffff8badf00dull;
	bad += s1 != 0;
	kprintf("MMIO ISV=0 forms (str post, stp, ldp post, ldr pre, ldpsw): %lu wrong\n", bad);
	errors += bad;
}

/*
 * Read the zap page until the hypervisor's timer has zapped it, then once
 * more: the first access after the zap must fault (the hypervisor counts
 * it), and the data must be intact (the zap unmapped, memory is unchanged).
 * Only this page is touched in the loop, so its TLB entry stays hot.
 */
static void zap_loop(void)
{
	volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)G_ZAP;
	unsigned long loops = 0, bad = 0;
	uint64_t sum = p[0];

	w64(G_CTL + CTL_ZAP_ARM, 1);
	while (!r64(G_CTL + CTL_ZAP_DONE)) {
		sum += p[0];
		if (++loops > 1000000) { /* each loop exits once: seconds */
			kprintf("zap: the hypervisor never zapped\n");
			errors++;
			return;
		}
	}
	sum += p[0];
	for (uint64_t i = 0; i < ZAP_SIZE / 8; i++)
		if (p[i] != PATTERN(G_ZAP + i * 8, 1))
			bad++;
	kprintf("zap: zapped after %lu loops, page read again, %lu wrong (sum 0x%lx)\n", loops, bad,
		(unsigned long)sum);
	errors += bad;
}

/* The hypervisor ages one page between two reads of it. */
static void aging(void)
{
	volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)G_AGE;
	uint64_t v = p[0];

	w64(G_CTL + CTL_AGE, 1); /* clear_flush_young */
	v += p[0];		 /* young again: by hardware or an AF fault */
	w64(G_CTL + CTL_AGE, 2); /* test_young */
	if (v != 2 * PATTERN(G_AGE, 3))
		errors++;
	kprintf("aging: page read before and after clear_flush_young\n");
}

unsigned long guest_main(void);
unsigned long guest_main(void)
{
	kprintf("hello from EL1; no stage-2 mapping existed when this line began\n");
	phase(1);
	fill_check("2M slot", G_PAT2M, PAT_SIZE, 1);
	phase(2);
	fill_check("1G slot", G_PAT1G, PAT_SIZE, 2);
	phase(3);
	fill_check("4K slot", G_SMALL, SMALL_TOUCH, 3);
	phase(4);
	rom();
	phase(5);
	load_forms();
	isv0_forms();
	phase(6);
	zap_loop();
	phase(7);
	aging();
	kprintf("guest done: %lu wrong\n", errors);
	return errors;
}
