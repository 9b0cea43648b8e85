/* SPDX-License-Identifier: MIT */
/*
 * The x86 Linux partition example: the split between linux.c (memory, the
 * Linux boot protocol, the MSR and port policy, the moves and the migration,
 * the report) and the vendor half (svm.c: AMD SVM + NPT). The vendor half
 * enters the guest and turns each exit into a struct lx_exit.
 *
 * Host-physical layout (QEMU -m 1G; hva == hpa except guest RAM, whose 2 MiB
 * blocks the host moves):
 *
 *   0x00100000  the host image, then QEMU's multiboot modules (bzImage, initrd)
 *   0x04000000  the library's page pool (16 MiB)
 *   0x10000000  guest RAM, 128 MiB at gpa 0 (hva 0x10000000 + gpa)
 *   0x20000000  the migration's destination, 128 MiB
 *   0x30000000  spare 2 MiB blocks the moves take (64 MiB)
 */
#ifndef S2_EXAMPLES_X86_LINUX_LX_H
#define S2_EXAMPLES_X86_LINUX_LX_H

#include <stdbool.h>
#include <stdint.h>

#include "s2mmu/s2mmu.h"

#define LX_POOL_HPA 0x04000000u
#define LX_POOL_SIZE 0x01000000u
#define LX_RAM_HVA 0x10000000u
#define LX_RAM_SIZE 0x08000000u
#define LX_DEST_HPA 0x20000000u
#define LX_SPARE_HPA 0x30000000u
#define LX_SPARE_SIZE 0x04000000u
#define LX_BLOCK 0x00200000u
#define LX_NBLOCKS (LX_RAM_SIZE / LX_BLOCK)

#define LX_LAPIC_GPA 0xfee00000u

/* Where the boot protocol's pieces go in guest RAM. */
#define LX_GDT_GPA 0x00006000u
#define LX_ZERO_PAGE_GPA 0x00007000u
#define LX_CMDLINE_GPA 0x00020000u
#define LX_KERNEL_GPA 0x00100000u

/* Guest general-purpose registers in x86 encoding order (rax = 0 .. r15). */
struct lx_gprs {
	uint64_t r[16];
};

enum lx_exit_kind {
	LX_EXIT_NPF,	  /* nested page fault */
	LX_EXIT_MSR,	  /* RDMSR / WRMSR of an intercepted MSR */
	LX_EXIT_IO,	  /* IN / OUT on an intercepted port */
	LX_EXIT_KICK,	  /* NMI: the library's kick (or the host's stop) */
	LX_EXIT_SVM_INSN, /* VMRUN, VMLOAD, VMSAVE, STGI, CLGI, SKINIT, INVLPGA */
	LX_EXIT_SHUTDOWN, /* the guest triple-faulted */
	LX_EXIT_INIT,	  /* an INIT signal reached the vcpu's CPU */
	LX_EXIT_OTHER,
	LX_EXIT_NR,
};

struct lx_exit {
	enum lx_exit_kind kind;
	gpa_t gpa;	 /* NPF */
	unsigned access; /* NPF: S2_ACC_* */
	bool write;	 /* MSR: WRMSR; IO: OUT */
	uint32_t msr;	 /* MSR: ecx */
	uint16_t port;	 /* IO */
	unsigned size;	 /* IO: 1, 2 or 4 bytes */
	bool string;	 /* IO: INS/OUTS (not emulated: the run fails) */
	uint64_t rip, next_rip;
	uint64_t raw[3]; /* exit code, info1, info2 for logs */
};

struct lx_arch {
	const char *name;
	enum s2_fmt_id fmt;
	int (*caps)(struct kvm_vm_params *p);
	/* On the vcpu's CPU: enable SVM, build the VMCB, the MSR and I/O maps. */
	int (*setup)(uint64_t entry, uint64_t boot_params);
	/* Do the entry actions, enter, fill @e. 0, or -1 (VMRUN failed). */
	int (*run)(struct kvm_vcpu *vcpu, struct lx_exit *e);
	struct lx_gprs *(*gprs)(void);
	uint64_t (*get_rax)(void);
	void (*set_rax)(uint64_t v);
	void (*set_rip)(uint64_t rip);
	/* Inject a hardware exception (#UD 6, #GP 13 with error code 0). */
	void (*inject)(unsigned vector);
	/* EFER as the guest sees it, and set it (the guest's WRMSR). */
	uint64_t (*get_efer)(void);
	void (*set_efer)(uint64_t v);
	/* The host's checks that the guest did not reach the CPU's own state. */
	bool (*host_intact)(void);
	void (*print_stats)(void);
	/* PML entries handed to kvm_flush_pml_buffer() (NULL without PML). */
	uint64_t (*pml_entries)(void);
	/*
	 * After a failed run's tables line: wait while run.sh saves the tables
	 * (QEMU; ../common/keep-tables.sh). NULL: end at once (bochs).
	 */
	void (*keep_tables)(void);
};

extern const struct lx_arch lx_arch;

/* MSR permission map: which MSRs the vendor half intercepts (linux.c's policy). */
struct lx_msr_rule {
	uint32_t first, last;
	bool read, write;
};
extern const struct lx_msr_rule lx_msr_rules[];
extern const unsigned lx_msr_nrules;
/* Ports intercepted (both directions). */
extern const uint16_t lx_io_ports[];
extern const unsigned lx_io_nports;

void lx_rcu_offline(void);
void lx_rcu_online(void);
void lx_fail(const char *what, long code) __attribute__((noreturn));

#ifndef BREAK_FLUSH
#define BREAK_FLUSH 0
#endif
#ifndef DROP_DIRTY
#define DROP_DIRTY 0
#endif
/* Dirty logging from the hardware's A/D bits (EPT) instead of write protection. */
#ifndef DIRTY_HW
#define DIRTY_HW 0
#endif
/* ... read from the vcpu's page-modification log (EPT PML; implies DIRTY_HW). */
#ifndef DIRTY_PML
#define DIRTY_PML 0
#endif
#if DIRTY_PML && !DIRTY_HW
#error "DIRTY_PML needs DIRTY_HW"
#endif
#define DIRTY_NAME (DIRTY_PML ? "PML" : DIRTY_HW ? "hardware A/D" : "write-protection")

#endif
