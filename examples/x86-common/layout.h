/* SPDX-License-Identifier: MIT */
/*
 * What the x86 example guest and hypervisor agree on: the guest-physical
 * layout, where each memslot is backed in host-physical memory, the emulated
 * UART and the hypercall numbers. Included by the 32-bit guest and by the
 * 64-bit hypervisor, so only plain constants live here.
 *
 * Guest-physical layout (the guest runs in 32-bit protected mode with paging
 * off, so its linear addresses are guest-physical addresses):
 *
 *   slot  gpa          size     backed at hpa  leaves
 *   0     0x00100000   1 MiB    0x01100000     4 KiB (slot smaller than 2 MiB)
 *   1     0x01000000   16 MiB   0x02000000     2 MiB (gpa and hpa congruent)
 *   2     0x03000000   64 KiB   0x03000000     4 KiB, read-only memslot
 *   3     0x40000000   1 GiB    0x40000000     1 GiB (needs 2 GiB of RAM)
 *   -     0x10000000   4 KiB    none           emulated 16550 UART (MMIO)
 *
 * The hypervisor itself lives below 0x01000000 (image, stacks, and the
 * library's page pool at 0x00800000); 0x04000000 is where the zap test's
 * page migrates to.
 */
#ifndef S2_EXAMPLES_X86_LAYOUT_H
#define S2_EXAMPLES_X86_LAYOUT_H

#define GUEST_BOOT_GPA 0x00100000u
#define GUEST_BOOT_SIZE 0x00100000u
#define GUEST_BOOT_HPA 0x01100000u
#define GUEST_STACK_TOP (GUEST_BOOT_GPA + GUEST_BOOT_SIZE - 16u)

#define GUEST_RAM_GPA 0x01000000u
#define GUEST_RAM_SIZE 0x01000000u
#define GUEST_RAM_HPA 0x02000000u

#define GUEST_ROM_GPA 0x03000000u
#define GUEST_ROM_SIZE 0x00010000u
#define GUEST_ROM_HPA 0x03000000u
#define GUEST_ROM_MAGIC 0x524f4d21u /* "!MOR": what the hypervisor puts in the ROM */

#define GUEST_HUGE_GPA 0x40000000u
#define GUEST_HUGE_SIZE 0x40000000u
#define GUEST_HUGE_HPA 0x40000000u

/* 16550-style UART, byte registers at consecutive addresses (reg-shift 0). */
#define GUEST_UART_GPA 0x10000000u
#define UART_THR 0 /* write: transmit */
#define UART_IER 1
#define UART_LSR 5 /* read: line status */
#define UART_SCR 7 /* scratch */
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40

#define HOST_POOL_HPA 0x00800000u
#define HOST_POOL_SIZE 0x00400000u

/* The pattern test: 8 MiB in slot 1 (2 MiB leaves) and 8 MiB in slot 3. */
#define PATTERN_BYTES 0x00800000u
#define PATTERN_RAM_GPA (GUEST_RAM_GPA + 0x00400000u)
#define PATTERN_HUGE_GPA (GUEST_HUGE_GPA + 0x12300000u)

/*
 * The range the hypervisor zaps while the guest runs (inside slot 1), and
 * the word in guest memory it sets once it zapped, which the guest polls
 * while it keeps reading the range (and counting its rounds in another).
 */
#define ZAP_GPA (GUEST_RAM_GPA + 0x00600000u)
#define ZAP_BYTES 0x00010000u
#define ZAP_FLAG_GPA (GUEST_BOOT_GPA + 0x000f0000u)
#define ZAP_ROUNDS_GPA (ZAP_FLAG_GPA + 4) /* the guest's progress, for the zapper */
#define ZAP_AFTER_ROUNDS 64u		  /* zap once the guest is this far in */
#define ZAP_SPIN_LIMIT 2000000u		  /* rounds over the range before giving up */
/*
 * While the range is invalidated the host moves the 2 MiB page behind it
 * (as compaction or migration would) to MIGRATE_HPA and fills the old one
 * with MIGRATE_POISON: a guest that still reads through a stale translation
 * sees the poison.
 */
/*
 * A memslot the host adds and deletes again during the zap, while the guest
 * runs on the other CPU (the guest never touches it): each change frees the
 * memslot array it replaced after a grace period, which the run counts.
 */
#define SCRATCH_GPA 0x05000000u
#define SCRATCH_SIZE 0x00010000u
#define SCRATCH_HPA 0x05000000u
#define MIGRATE_BYTES 0x00200000u
#define MIGRATE_HPA 0x04000000u
#define MIGRATE_POISON 0xdeaddeadu

/* The word the pattern test stores at guest-physical address @gpa. */
#define PATTERN_MUL 2654435761u
#define PATTERN_XOR 0x5a17c0deu
static inline unsigned pattern_word(unsigned gpa)
{
	return (gpa * PATTERN_MUL) ^ PATTERN_XOR;
}

/* Hypercalls: eax = number, ebx/ecx = arguments, result in eax. */
#define HC_REPORT 1    /* ebx = test id, ecx = 0 pass / failure detail */
#define HC_ZAP_ARM 2   /* ask the other CPU to zap [ZAP_GPA, +ZAP_BYTES) now */
#define HC_ZAP_EXITS 3 /* faults the hypervisor saw in the zapped range since */
#define HC_DONE 4      /* the guest is finished */

/* Test ids for HC_REPORT. */
#define T_UART 1
#define T_ROM 2
#define T_PATTERN_2M 3
#define T_PATTERN_1G 4
#define T_ZAP 5
#define T_NR 6

#endif
