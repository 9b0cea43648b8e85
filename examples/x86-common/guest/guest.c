// SPDX-License-Identifier: MIT
/*
 * The guest of the x86 example hypervisors: 32-bit protected mode, paging
 * off, flat segments, so every address below is a guest-physical address.
 * It starts with no second-stage mappings at all: each page it touches,
 * including its own code and stack, is mapped by the hypervisor's call to
 * kvm_tdp_page_fault() when the access exits.
 *
 * It talks to the hypervisor through an emulated 16550 UART (MMIO at a gpa
 * with no memslot, accessed with a few deliberately different MOV forms the
 * hypervisor must decode) and through hypercalls (VMCALL, or VMMCALL when
 * built with -DGUEST_SVM).
 */
#include "../layout.h"

typedef unsigned int u32;
typedef unsigned char u8;

#ifdef GUEST_SVM
#define HC_INSN "vmmcall"
#else
#define HC_INSN "vmcall"
#endif

static u32 hypercall(u32 nr, u32 a0, u32 a1)
{
	u32 r;

	__asm__ volatile(HC_INSN : "=a"(r) : "a"(nr), "b"(a0), "c"(a1) : "memory");
	return r;
}

#define UART ((volatile u8 *)GUEST_UART_GPA)

/* LSR with a disp8 load (0f b6 /r), THR with a register-indirect store (88 /r). */
static void putc(char c)
{
	u32 lsr;

	do {
		__asm__ volatile("movzbl %c2(%1), %0"
				 : "=r"(lsr)
				 : "r"(UART), "i"(UART_LSR)
				 : "memory");
	} while (!(lsr & UART_LSR_THRE));
	__asm__ volatile("movb %b0, (%1)" : : "q"(c), "r"(UART) : "memory");
}

static void puts(const char *s)
{
	while (*s)
		putc(*s++);
}

static void puthex(u32 v)
{
	puts("0x");
	for (int i = 28; i >= 0; i -= 4)
		putc("0123456789abcdef"[(v >> i) & 15]);
}

static void report(u32 test, const char *name, u32 detail)
{
	puts("guest: ");
	puts(name);
	puts(detail ? ": FAIL " : ": ok ");
	puthex(detail);
	puts("\n");
	hypercall(HC_REPORT, test, detail);
}

/*
 * The other store and load forms the hypervisor's decoder must handle, on
 * the scratch and interrupt-enable registers: store imm8 to disp32 (c6 /0),
 * load moffs into al (a0), store r8 to disp32 (88 /r), load disp32 into r8
 * (8a /r), store imm32 (c7 /0) and load moffs into eax (a1).
 */
static u32 uart_forms(void)
{
	u32 bad = 0, v;
	u8 b;

	__asm__ volatile("movb $0x5a, %0" : "=m"(UART[UART_SCR]) : : "memory");
	__asm__ volatile("movb %1, %0" : "=a"(b) : "m"(UART[UART_SCR]) : "memory");
	bad |= (b != 0x5a) << 0;
	__asm__ volatile("movb %1, %0" : "=m"(UART[UART_IER]) : "c"((u8)0x0f) : "memory");
	__asm__ volatile("movb %1, %0" : "=d"(b) : "m"(UART[UART_IER]) : "memory");
	bad |= (b != 0x0f) << 1;
	__asm__ volatile("movl $0xa5, %0" : "=m"(*(volatile u32 *)&UART[UART_SCR]) : : "memory");
	__asm__ volatile("movl %1, %0"
			 : "=a"(v)
			 : "m"(*(volatile u32 *)&UART[UART_SCR])
			 : "memory");
	bad |= (v != 0xa5) << 2;
	return bad;
}

/* The ROM reads back what the hypervisor put there, and ignores writes. */
static u32 rom_test(void)
{
	volatile u32 *rom = (volatile u32 *)GUEST_ROM_GPA;
	u32 bad = 0;

	bad |= (rom[0] != GUEST_ROM_MAGIC) << 0;
	__asm__ volatile("movl $0xdeadbeef, (%0)" : : "r"(&rom[1]) : "memory");
	bad |= (rom[1] != 0) << 1;
	bad |= (rom[0] != GUEST_ROM_MAGIC) << 2;
	return bad;
}

/*
 * Write the pattern over [gpa, gpa + bytes), read it back; returns the OR of
 * every difference (0: all words right). Four words per round: under bochs
 * these 2 x 16 MiB of accesses are most of the run's instructions.
 */
static u32 pattern_test(u32 gpa, u32 bytes)
{
	const u32 k = 4 * PATTERN_MUL; /* from one word's product to the next */
	u32 diff = 0, a, m;

	for (a = gpa, m = gpa * PATTERN_MUL; a - gpa < bytes; a += 16, m += 4 * k) {
		volatile u32 *p = (volatile u32 *)a;

		p[0] = m ^ PATTERN_XOR;
		p[1] = (m + k) ^ PATTERN_XOR;
		p[2] = (m + 2 * k) ^ PATTERN_XOR;
		p[3] = (m + 3 * k) ^ PATTERN_XOR;
	}
	for (a = gpa, m = gpa * PATTERN_MUL; a - gpa < bytes; a += 16, m += 4 * k) {
		volatile u32 *p = (volatile u32 *)a;

		diff |= p[0] ^ m ^ PATTERN_XOR;
		diff |= p[1] ^ (m + k) ^ PATTERN_XOR;
		diff |= p[2] ^ (m + 2 * k) ^ PATTERN_XOR;
		diff |= p[3] ^ (m + 3 * k) ^ PATTERN_XOR;
	}
	return diff;
}

static u32 touch(u32 gpa, u32 bytes)
{
	u32 bad = 0;

	for (u32 a = gpa; a - gpa < bytes; a += 4096)
		bad += *(volatile u32 *)a != pattern_word(a);
	return bad;
}

/*
 * Warm the TLB on the range, ask the hypervisor's other CPU to zap it, and
 * keep reading the range until the hypervisor says (through a word in guest
 * memory) that it zapped it behind our back, moving the page meanwhile.
 * The data must still read right, and the hypervisor must have seen the range
 * fault again after the zap, which it only can if the flush reached the TLB
 * of the CPU running us.
 */
static u32 zap_test(void)
{
	volatile u32 *done = (volatile u32 *)ZAP_FLAG_GPA;
	volatile u32 *progress = (volatile u32 *)ZAP_ROUNDS_GPA;
	u32 bad = 0, rounds = 0;

	*done = 0;
	*progress = 0;
	bad |= (touch(ZAP_GPA, ZAP_BYTES) != 0) << 0;
	hypercall(HC_ZAP_ARM, ZAP_GPA, ZAP_BYTES);
	while (!*done && rounds < ZAP_SPIN_LIMIT) {
		bad |= (touch(ZAP_GPA, ZAP_BYTES) != 0) << 1;
		*progress = ++rounds;
	}
	bad |= (!*done) << 2;
	bad |= (touch(ZAP_GPA, ZAP_BYTES) != 0) << 3;
	bad |= (hypercall(HC_ZAP_EXITS, 0, 0) == 0) << 4;
	puts("guest: the zap came after ");
	puthex(rounds);
	puts(" rounds over the range\n");
	return bad;
}

void guest_main(void);
void guest_main(void)
{
	puts("guest: hello from the guest (32-bit, paging off, no stage-2 mappings at start)\n");
	report(T_UART, "uart store/load forms", uart_forms());
	report(T_ROM, "read-only memslot", rom_test());
	report(T_PATTERN_2M, "8 MiB pattern, 2 MiB slot",
	       pattern_test(PATTERN_RAM_GPA, PATTERN_BYTES));
	report(T_PATTERN_1G, "8 MiB pattern, 1 GiB slot",
	       pattern_test(PATTERN_HUGE_GPA, PATTERN_BYTES));
	report(T_ZAP, "zap from the other CPU, range faults again", zap_test());
	puts("guest: done\n");
	hypercall(HC_DONE, 0, 0);
	for (;;)
		__asm__ volatile("hlt");
}
