/* SPDX-License-Identifier: MIT */
/*
 * The split between the shared x86 example hypervisor (hv.c: memslots, the
 * fault path, MMIO/UART emulation, hypercalls, the zap from the other CPU,
 * the checks and the report) and the vendor part (vmx.c for Intel VMX + EPT,
 * svm.c for AMD SVM + NPT): the vendor part enters the guest and turns each
 * exit into a struct hv_exit. Everything but caps() runs on the vcpu's CPU.
 */
#ifndef S2_EXAMPLES_X86_HV_H
#define S2_EXAMPLES_X86_HV_H

#include <stdbool.h>
#include <stdint.h>

#include "s2mmu/s2mmu.h"

/* Guest general-purpose registers in x86 encoding order (rax = 0 .. r15). */
struct x86_gprs {
	uint64_t r[16];
};

enum hv_exit_kind {
	HV_EXIT_S2_FAULT,  /* EPT violation / nested page fault */
	HV_EXIT_HYPERCALL, /* VMCALL / VMMCALL */
	HV_EXIT_HLT,
	HV_EXIT_KICK,  /* an IPI (the library's kick) made the guest exit */
	HV_EXIT_OTHER, /* anything else: the run fails */
	HV_EXIT_NR,
};

struct hv_exit {
	enum hv_exit_kind kind;
	gpa_t gpa;	   /* S2_FAULT: the faulting guest-physical address */
	unsigned access;   /* S2_FAULT: S2_ACC_* from the qualification */
	uint64_t rip;	   /* guest rip of the exiting instruction */
	unsigned insn_len; /* its length as the hardware reports it; 0 if not */
	uint64_t raw[3];   /* vendor exit reason and qualification, for logs */
	bool mmio_exit;	   /* S2_FAULT: a cached MMIO entry's exit (docs/mmio.md):
			      an EPT misconfiguration, an NPF with P and RSV */
};

/* What the vendor part provides. */
struct hv_arch {
	const char *name; /* "VMX+EPT (bochs)" */
	enum s2_fmt_id fmt;
	/*
	 * Check the CPU's virtualization features and fill the VM parameters
	 * they decide (S2_FMTF_* such as hardware A/D, the largest leaf).
	 * Changes no CPU state. Returns 0, or -1 after printing what is missing.
	 */
	int (*caps)(struct kvm_vm_params *p);
	/* Enable virtualization on the calling CPU (VMXON, EFER.SVME). 0 or -1. */
	int (*cpu_init)(void);
	/* Build the VMCS/VMCB for @kvm: guest entry @rip, stack @rsp. */
	int (*setup)(struct kvm *kvm, uint64_t rip, uint64_t rsp);
	/* Handle pending requests, enter the guest, fill @e. 0 or -1. */
	int (*run)(struct kvm_vcpu *vcpu, struct hv_exit *e);
	void (*set_rip)(uint64_t rip);
	struct x86_gprs *(*gprs)(void);
	/* One line on the TLB flushes issued (INVEPT / TLB_CONTROL). */
	void (*print_flushes)(void);
};

extern const struct hv_arch hv_arch;

/*
 * The calling CPU leaves the library's RCU (hv.c: s2_fs_rcu_offline) and
 * rejoins it: the vendor part calls the first right before the VM entry,
 * after kvm_vcpu_enter_guest(), and the second right after the exit's
 * kvm_vcpu_exit_guest(). A running guest makes no library call, so a grace
 * period does not wait for its CPU.
 */
void hv_rcu_offline(void);
void hv_rcu_online(void);

/* Console output of the hypervisor (bochs: port 0xe9; QEMU: COM1). */
void hv_console_init(void);
/* End the run: @pass true prints RESULT: PASS; never returns. */
void hv_finish(bool pass) __attribute__((noreturn));
/* Print "hv: tables: fmt F gpa_bits N[ flags L], pool P size S, root R" (the
 * pool that holds every table page, ../common/tables.h) and set *@base and
 * *@size to P and S: false (nothing printed or set) before the VM exists.
 * hv.c. */
bool hv_print_tables(uint64_t *base, uint64_t *size);

/*
 * Set by the build (a test hook): the library's flush does not reach the
 * running vcpu. No kick hook (so a vcpu in guest mode is not made to exit)
 * and no INVEPT / TLB_CONTROL when KVM_REQ_TLB_FLUSH is handled.
 */
#ifndef BREAK_FLUSH
#define BREAK_FLUSH 0
#endif

#endif
