/* SPDX-License-Identifier: MIT */
/*
 * The arm64 Linux example's memory map (host physical = the hypervisor's
 * addresses, its MMU is off) and the guest's physical map.
 *
 * QEMU virt with -m 1G has RAM at [0x40000000, 0x80000000); it loads the
 * hypervisor ELF at 0x40080000, and run.sh has it load the kernel Image and
 * the initramfs straight into the guest RAM's backing (-device loader) and
 * write the run's parameters into the info page.
 */
#ifndef A64_LINUX_LAYOUT_H
#define A64_LINUX_LAYOUT_H

#ifdef __ASSEMBLER__
#define U64(x) x
#else
#define U64(x) x##ull
#endif

/* Host: the page pool for stage-2 tables and the library's metadata. */
#define H_POOL U64(0x41000000)
#define H_POOL_SIZE (U64(16) << 20)

/* Host: run parameters, 64-bit words written by run.sh (INFO_*). */
#define H_INFO U64(0x43000000) /* above the pool and the big tables (hyp.c H_BIG) */
#define INFO_INITRD_SIZE 0     /* bytes of the initramfs at G_INITRD */
#define INFO_FLAGS 1	       /* RUNF_* */
#define INFO_GRANULE 2	       /* stage-2 granule: 4096, 16384, 65536 */
#define INFO_IPA_BITS 3	       /* 40, 48, 52 */
#define INFO_MOVES 4	       /* blocks to move (0: none) */
#define INFO_MOVE_MS 5	       /* ms between two moves (0: hyp.c MOVE_EVERY_MS) */
#define INFO_WORDS 6
#define RUNF_MIGRATE 0x1       /* live migration after the moves */
#define RUNF_RING 0x2	       /* dirty rings (else the bitmap) */
#define RUNF_MANUAL 0x4	       /* manual protect (with the bitmap) */
#define RUNF_WRPROTECT 0x8     /* write-protection even where DBM exists */
#define RUNF_INTERACTIVE 0x10  /* a shell, no checks, no watchdog */
#define RUNF_NO_S2_HAFDBS 0x20 /* stage 2 without hardware AF and dirty state (VTCR_EL2.HA, HD) */
#define RUNF_DIAG_TEST 0x40    /* the guest poisons a word of a file itself (init.sh diag) */

/*
 * Guest RAM: one memslot. Its hvas are region A; each 2 MiB block of A is
 * backed by a host block the hypervisor may move (the notifier's moves), at
 * first the block at the same offset of H_RAM. The migration copies it to
 * region B (hva = hpa, never moved) and switches the memslot there.
 */
#define G_RAM U64(0x40000000)
#define G_RAM_SIZE (U64(128) << 20)
#define MOVE_BLOCK (U64(2) << 20)
#define HVA_A U64(0x44000000) /* region A: hva of the slot before migration */
#define H_RAM U64(0x44000000) /* initial backing of region A */
#define H_SPARE U64(0x4c000000)
#define SPARE_BLOCKS 16
#define HVA_B U64(0x50000000) /* region B: the migration's copy, hva = hpa */

/* What the guest finds in its RAM. */
#define G_DTB G_RAM
#define DTB_MAX (U64(64) << 10)
#define G_KERNEL (G_RAM + (U64(2) << 20))
#define G_INITRD (G_RAM + (U64(96) << 20))
#define INITRD_MAX (U64(16) << 20)

/* Devices passed through (identity, device memslots). */
#define G_GICD U64(0x08000000)
#define GICD_SIZE U64(0x10000)
#define G_GICR U64(0x080a0000) /* per CPU: RD frame, then SGI frame */
#define GICR_STRIDE U64(0x20000)
#define G_UART U64(0x09000000)

/*
 * The test's control registers (32-bit, no memslot: every access exits).
 * The test init reaches them with busybox devmem.
 */
#define G_CTL U64(0x0c000000)
#define CTL_PHASE 0x00	  /* write: 1 workload started */
#define CTL_VERDICT 0x04  /* write: the guest's verdict, 0 = checksums held */
#define CTL_HYP_DONE 0x08 /* read: 1 once the moves and the migration are done */
#define CTL_ROUND 0x0c	  /* write: a workload round finished (progress) */
/*
 * A checksum failure's evidence (init.sh diag): the 8 bytes the file holds
 * now and the 8 its copy holds at the first differing word, as 32-bit halves,
 * then that word's offset in its 4 KiB page, which starts the hypervisor's
 * search of host RAM for both words (hyp.c memcheck_diag).
 */
#define CTL_DIAG_BAD_LO 0x10
#define CTL_DIAG_BAD_HI 0x14
#define CTL_DIAG_GOOD_LO 0x18
#define CTL_DIAG_GOOD_HI 0x1c
#define CTL_DIAG_GO 0x20
#define CTL_FAILED 0x24 /* write: a worker's check failed just now (its number) */
#define CTL_SIZE 0x28

#define NR_CPUS 2

#endif
