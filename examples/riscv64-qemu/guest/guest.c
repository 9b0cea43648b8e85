// SPDX-License-Identifier: MIT
/*
 * The riscv64 example's guest (VS-mode, vsatp = 0: its addresses are gpas).
 * It prints through the emulated UART, writes and reads back patterns in
 * memslots laid out for 1 GiB, 2 MiB and 4 KiB leaves, reads the read-only
 * slot and writes it once, exercises a compressed MMIO load and store and
 * every load extension, keeps reading a page while the hypervisor zaps it,
 * and reads a page before and after the hypervisor ages it. It returns the
 * number of wrong words it saw (0 = pass); _start hands that to CTL_EXIT.
 */
#include <stdint.h>

#include "../../common/klib.h"
#include "../layout.h"

#define MMIO8(a) (*(volatile uint8_t *)(uintptr_t)(a))
#define MMIO64(a) (*(volatile uint64_t *)(uintptr_t)(a))

void klib_putc(char c)
{
	while (!(MMIO8(G_UART + UART_LSR) & 0x20)) /* lbu: an MMIO load */
		;
	MMIO8(G_UART) = (uint8_t)c; /* sb: an MMIO store */
}

static unsigned long errors;

static void phase(uint64_t n)
{
	MMIO64(G_CTL + CTL_PHASE) = n; /* sd */
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
	p[1] = 0xdeadbeef; /* exits: RET_PF_RO_WRITE, dropped */
	if (p[1] != ROM_WORD(1))
		bad++;
	kprintf("rom: %lu KiB read, one write dropped, %lu wrong\n",
		(unsigned long)(G_ROM_SIZE >> 10), bad);
	errors += bad;
}

/* The compressed forms of the MMIO decoder: c.sd and c.ld (x8..x15 only). */
static void compressed_mmio(void)
{
	register uint64_t base __asm__("a0") = G_CTL;
	register uint64_t val __asm__("a1") = 77;
	register uint64_t got __asm__("a2");

	__asm__ volatile(".option push\n\t.option rvc\n\t"
			 "c.sd a1, %[ph](a0)\n\t"
			 "c.ld a2, %[zd](a0)\n\t"
			 ".option pop"
			 : "=r"(got)
			 : "r"(base), "r"(val), [ph] "i"(CTL_PHASE), [zd] "i"(CTL_ZAP_DONE)
			 : "memory");
	kprintf("compressed MMIO: c.sd phase 77, c.ld zap count %lu\n", (unsigned long)got);
	if (got != 0)
		errors++;
}

/*
 * Read the zap page until the hypervisor's other hart has zapped it, then
 * once more: the first access after the zap must fault (the hypervisor
 * counts it), and the data must be intact (the zap unmapped, memory is
 * unchanged). The loop makes no exit: the zap is seen through the mailbox,
 * a word of guest memory the other hart sets, and only the zap page and the
 * mailbox are touched, so their TLB entries stay hot.
 */
static void zap_loop(void)
{
	volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)G_ZAP;
	volatile uint64_t *mailbox = (volatile uint64_t *)(uintptr_t)G_MAILBOX;
	unsigned long loops = 0, bad = 0;
	uint64_t sum = p[0];

	*mailbox = 0;
	MMIO64(G_CTL + CTL_ZAP_ARM) = 1;
	while (*mailbox != MAILBOX_ZAPPED) {
		sum += p[0];
		if (++loops > 1000000000) {
			kprintf("zap: the hypervisor never zapped\n");
			errors++;
			return;
		}
	}
	sum += p[0];
	for (uint64_t i = 0; i < ZAP_SIZE / 8; i++)
		if (p[i] != PATTERN(G_ZAP + i * 8, 1))
			bad++;
	kprintf("zap: zapped after %lu loops without an exit, page read again, %lu wrong "
		"(sum 0x%lx)\n",
		loops, bad, (unsigned long)sum);
	errors += bad;
}

/* Sign and zero extension: one register read with every load form. */
static void load_forms(void)
{
	uint64_t a = G_CTL + CTL_MAGIC;
	uint64_t v[5] = {
		*(volatile uint64_t *)(uintptr_t)a,	       /* ld */
		(uint64_t) * (volatile int32_t *)(uintptr_t)a, /* lw: sign-extended */
		*(volatile uint32_t *)(uintptr_t)a,	       /* lwu */
		(uint64_t) * (volatile int16_t *)(uintptr_t)a, /* lh */
		*(volatile uint8_t *)(uintptr_t)a,	       /* lbu */
	};
	static const uint64_t want[5] = {
		0x000000008badf00dull, 0xffffffff8badf00dull, 0x000000008badf00dull,
		0xfffffffffffff00dull, 0x000000000000000dull,
	};
	unsigned long bad = 0;

	for (int i = 0; i < 5; i++)
		if (v[i] != want[i]) {
			kprintf("load form %d read 0x%lx, want 0x%lx\n", i, (unsigned long)v[i],
				(unsigned long)want[i]);
			bad++;
		}
	kprintf("MMIO load forms (ld, lw, lwu, lh, lbu): %lu wrong\n", bad);
	errors += bad;
}

/* The hypervisor ages one page between two reads of it. */
static void aging(void)
{
	volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)G_AGE;
	uint64_t v = p[0];

	MMIO64(G_CTL + CTL_AGE) = 1; /* clear_flush_young */
	v += p[0];		     /* young again */
	MMIO64(G_CTL + CTL_AGE) = 2; /* test_young */
	if (v != 2 * PATTERN(G_AGE, 3))
		errors++;
	kprintf("aging: page read before and after clear_flush_young\n");
}

/*
 * Spin without exits while the other hart flushes the whole VM: the kick
 * makes this vcpu exit behind the guest's back, which it never notices.
 */
static void kicked(void)
{
	volatile uint64_t *mailbox = (volatile uint64_t *)(uintptr_t)G_MAILBOX;
	unsigned long loops = 0;

	MMIO64(G_CTL + CTL_KICK) = 1;
	while (*mailbox != MAILBOX_KICKED)
		if (++loops > 1000000000) {
			kprintf("kick: the hypervisor never flushed\n");
			errors++;
			return;
		}
	kprintf("kick: the other hart flushed while this one spun (%lu loops)\n", loops);
}

unsigned long guest_main(void);
unsigned long guest_main(void)
{
	kprintf("hello from VS-mode; no G-stage mapping existed when this line began\n");
	phase(1);
	fill_check("2M slot", G_PAT2M, PAT_SIZE, 1);
	phase(2);
	fill_check("1G slot", G_PAT1G, PAT_SIZE, 2);
	phase(3);
	fill_check("4K slot", G_SMALL, SMALL_TOUCH, 3);
	phase(4);
	rom();
	phase(5);
	compressed_mmio();
	load_forms();
	phase(6);
	zap_loop();
	phase(7);
	aging();
	phase(8);
	kicked();
	kprintf("guest done: %lu wrong\n", errors);
	return errors;
}
