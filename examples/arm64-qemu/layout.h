/* SPDX-License-Identifier: MIT */
/*
 * The arm64 example's memory map, shared by the hypervisor and the guest.
 *
 * QEMU virt with -m 2G has RAM at [0x40000000, 0xc0000000) and loads the
 * hypervisor ELF at 0x40080000, entered at EL2 (virtualization=on). The
 * hypervisor runs with its MMU off, so its addresses (the memslots' hvas)
 * are physical.
 *
 * The guest sees four memslots and two emulated devices at gpas with no
 * memslot. Each slot's host backing is chosen for the leaf size it should
 * get: congruent modulo 2 MiB (2 MiB blocks), 1 GiB-aligned on both sides
 * and 1 GiB long (a 1 GiB block), or off by 4 KiB (only 4 KiB pages fit).
 */
#ifndef A64_EXAMPLE_LAYOUT_H
#define A64_EXAMPLE_LAYOUT_H

#ifdef __ASSEMBLER__
#define U64(x) x
#else
#define U64(x) x##ull
#endif

/* Emulated devices (gpa, no memslot: every access exits as a data abort). */
#define G_UART U64(0x09000000) /* PL011 subset: DR at +0, FR at +0x18 */
#define UART_FR 0x18
#define UART_FR_TXFF 0x20
#define G_CTL U64(0x09010000) /* the test's control registers (64-bit) */
#define CTL_EXIT 0x00	      /* write: the guest's verdict, 0 = pass */
#define CTL_ZAP_ARM 0x08      /* write: arm the timer whose interrupt zaps G_ZAP */
#define CTL_ZAP_DONE 0x10     /* read: zaps done so far */
#define CTL_PHASE 0x18	      /* write: the guest's phase number (logged) */
#define CTL_MAGIC 0x20	      /* read: MAGIC, for sign/zero-extension checks */
#define CTL_AGE 0x28	      /* write 1: clear_flush_young G_AGE; 2: test_young */
#define CTL_SCRATCH 0x40      /* 32 bytes of device memory for the ISV = 0 forms */
#define CTL_SCRATCH_SIZE 32
#define MAGIC U64(0x000000008badf00d)

/* Slot 0: code, data, stack and an 8 MiB pattern; 2 MiB blocks. */
#define G_RAM U64(0x40000000)
#define G_RAM_SIZE (U64(32) << 20)
#define H_RAM U64(0x44000000)
#define G_PAT2M (G_RAM + (U64(8) << 20))
#define PAT_SIZE (U64(8) << 20)
/*
 * The page the hypervisor zaps while the guest runs (inside G_PAT2M; the
 * whole 2 MiB leaf holding it goes). Its frame number is 32 modulo 64, so
 * in QEMU's direct-mapped TLB (64 entries or more, indexed by page number)
 * it shares no slot with the guest's code, data and stack pages at the
 * start of G_RAM: a stale entry for it is never evicted by accident, and a
 * missing flush cannot go unnoticed.
 */
#define G_ZAP (G_PAT2M + (U64(0x120) << 12))
#define ZAP_SIZE U64(4096)

/* Slot 1: 1 GiB, 1 GiB-aligned gpa and backing; one 1 GiB block. */
#define G_HUGE U64(0xc0000000)
#define G_HUGE_SIZE (U64(1) << 30)
#define H_HUGE U64(0x80000000)
#define G_PAT1G (G_HUGE + (U64(256) << 20))

/* Slot 2: 4 MiB whose backing is off by 4 KiB: 4 KiB pages only. */
#define G_SMALL U64(0x50000000)
#define G_SMALL_SIZE (U64(4) << 20)
#define H_SMALL U64(0x46001000)
#define SMALL_TOUCH (U64(256) << 10)
/* The page the hypervisor ages (a 4 KiB leaf; frame 48 modulo 64). */
#define G_AGE (G_SMALL + (U64(0x30) << 12))

/* Slot 3: read-only, 64 KiB, filled by the hypervisor (ROM_WORD). */
#define G_ROM U64(0x50800000)
#define G_ROM_SIZE (U64(64) << 10)
#define H_ROM U64(0x46800000)
#define ROM_WORD(i) (U64(0x524f4d0000000000) | (unsigned long long)(i))

/*
 * Slot 4, host-only: added and deleted again during the zap (the guest never
 * touches it); each change frees the memslot array it replaced after
 * synchronize_rcu, which the run counts.
 */
#define G_SCRATCH U64(0x51000000)
#define G_SCRATCH_SIZE (U64(64) << 10)
#define H_SCRATCH U64(0x46900000)

/* Host-only: the page pool for the stage-2 tables and metadata. */
#define H_POOL U64(0x41000000)
#define H_POOL_SIZE (U64(8) << 20)

/* The pattern both sides can recompute: word at gpa @a. */
#define PATTERN(a, seed) (((unsigned long long)(a)*U64(0x9e3779b97f4a7c15)) ^ (seed))

#endif
