/* SPDX-License-Identifier: MIT */
/*
 * Format-neutral permissions, memory types and format identifiers. Every format
 * translates these to and from its own bits; see docs/format-contract.md.
 */
#ifndef S2MMU_PROT_H
#define S2MMU_PROT_H

/* Permissions and state of a leaf, as the core sees them. */
enum {
	S2_PROT_R = 1u << 0,  /* guest may read */
	S2_PROT_W = 1u << 1,  /* guest may write (hardware-writable) */
	S2_PROT_X = 1u << 2,  /* guest may execute (supervisor with MBEC/XNX) */
	S2_PROT_XU = 1u << 3, /* user-mode execute, where the format splits it */
	/* Software state, kept in bits hardware ignores. */
	S2_PROT_HOST_WRITABLE = 1u << 4, /* the host mapping allows writes */
	S2_PROT_MMU_WRITABLE = 1u << 5,	 /* the MMU may make the leaf writable
					    without asking the host */
	/* Hardware-maintained state; a format without A/D ignores them. */
	S2_PROT_ACCESSED = 1u << 6,
	S2_PROT_DIRTY = 1u << 7,
};
#define S2_PROT_RWX (S2_PROT_R | S2_PROT_W | S2_PROT_X | S2_PROT_XU)
#define S2_PROT_ALL 0xffu

/* Memory types. Formats map them to EMT/MemAttr/PBMT/PAT bits. */
enum s2_memtype {
	S2_MT_WB = 0, /* normal write-back (default) */
	S2_MT_UC,     /* uncacheable / device-nGnRnE */
	S2_MT_WC,     /* write-combining / normal non-cacheable */
	S2_MT_WT,     /* write-through */
	S2_MT_WP,     /* write-protect (x86 only) */
	S2_MT_DEVICE, /* device memory (arm64 Device-nGnRE; UC elsewhere) */
	S2_MT_NR
};
/* EPT ignore-PAT: the EPT memory type overrides the guest PAT. */
#define S2_MT_IGNORE_PAT 0x100u
#define S2_MT_MASK 0xffu

/* Formats the library knows. Which are built is a Kconfig choice. */
enum s2_fmt_id {
	S2_FMT_X86_EPT = 1,
	S2_FMT_ARM64_S2 = 2,
	S2_FMT_RISCV_G = 3,
	S2_FMT_X86_NPT = 4,
	S2_FMT_FAKE = 5, /* scrambled test format: bits shifted per level */
};

#endif
