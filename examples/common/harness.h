/* SPDX-License-Identifier: MIT */
/*
 * What the two bare-metal QEMU example hypervisors (arm64-qemu and
 * riscv64-qemu) share apart from their architecture: the verdict codes, the
 * table and metadata pools, their sizing check and the environment hooks
 * that do not touch the hardware, the memslots and the guest image, the
 * stage-2 faults' outcomes, the entry actions' loop (around the target's
 * instructions), the calls the checks are made of (the notifier zap, the
 * scratch memslot), the check lines and the end of the run. harness.c is
 * built with the target's own layout.h (both memory maps name the same
 * regions; harness.mk). The target provides hlog() and finish(); each
 * hyp.c keeps its exits, devices, TLB hooks, RCU and the checks of its own.
 */
#ifndef S2_EXAMPLES_HARNESS_H
#define S2_EXAMPLES_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "s2mmu/env-freestanding.h"
#include "s2mmu/s2mmu.h"
#include "s2mmu/sizing.h"

/* The run's verdict: QEMU's exit status. */
enum {
	EXIT_PASS = 0,
	EXIT_GUEST = 1, /* the guest saw wrong data */
	EXIT_ZAP = 2,	/* the zap check failed */
	EXIT_CHECK = 3, /* another check failed */
	EXIT_TRAP = 4,	/* an unexpected exception or trap */
	EXIT_LIB = 5,	/* a library call failed */
};

/*
 * The table pool's size at build time, by the sizing calculator
 * (docs/static.md): both VMs have a 4 KiB granule and 3 levels, and the
 * MMIO window spans the UART and control pages. Each hyp.c adds up its
 * regions (T_TABLES) and its root's pages into T_FIGURE.
 * TABLE_POOL_SHORT=n builds a pool n pages short, to see a run fail.
 */
#define T_GEOM S2_SIZING_GEOM_4K(3)
#define T_PAGES(g, s, m) S2_SIZING_REGION_PAGES(T_GEOM, g, s, m)
#define T_SHARED(ag, as, am, bg, bm) S2_SIZING_SHARED_PAGES(T_GEOM, ag, as, am, bg, bm)
#define T_MMIO_SIZE (G_CTL + 4096 - G_UART)
#ifndef TABLE_POOL_SHORT
#define TABLE_POOL_SHORT 0
#endif
#define T_POOL_BYTES (T_FIGURE - TABLE_POOL_SHORT * 4096)

/* Provided by the target: one formatted line to the console, and the end
 * of the run with @code (keeps the tables first when it is not a pass). */
void hlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void finish(int code);

/* A library call failed: the run ends with EXIT_LIB. */
__attribute__((noreturn)) void lib_fail(const char *what, long r);

/* The metadata pool (the VM, memslots) and the table pool (root, tables,
 * the vcpu's memory cache), at the start of H_POOL. */
extern struct s2_page_pool hv_pool, hv_table_pool;

/*
 * Both pools (the table pool @table_bytes long), @fs on the metadata pool,
 * and the hooks that do not depend on the architecture: tables from the
 * table pool, host pages identity-mapped and block-stable (the hypervisor
 * runs untranslated), the library's log through hlog().
 */
void hv_env_init(struct s2_freestanding *fs, uint64_t table_bytes);

/* The run-time calculator over the regions T_TABLES adds up (any order)
 * must give @figure, T_FIGURE: the figure the end of the run compares the
 * table pool's high water with. */
void hv_check_sizing(struct kvm *kvm, uint64_t figure);

void hv_add_slot(struct kvm *kvm, unsigned id, gpa_t gpa, uint64_t size, uint64_t hva,
		 unsigned flags);
/* Slots 0-3 (RAM, huge, small, the read-only ROM), the guest's code and
 * data at H_RAM, the ROM's contents. */
void hv_load_guest(struct kvm *kvm, const char *image, const char *image_end);

/* The hpa of guest memory at @gpa, the way the vcpu reached it: through
 * the stage-2 tables, else (zapped since) the memslot. -1 without one. */
int hv_guest_hpa(struct kvm *kvm, gpa_t gpa, uint64_t *hpa);
/* The hva behind @gpa: what the host's memory manager knows. */
hva_t hv_hva_of(struct kvm *kvm, gpa_t gpa);
void hv_stats(struct kvm *kvm, struct kvm_mmu_stats *s);

/* The outcomes of the stage-2 faults (hv_page_fault()). */
struct hv_faults {
	unsigned fixed, spurious, retry;
	uint64_t max_leaves[4]; /* the most leaves of each level (1..3) at once */
	uint64_t last_gpa;	/* the repeat guard's */
	unsigned same_gpa;
};

/*
 * A stage-2 fault at @gpa, through the MMIO exit (docs/mmio.md): the exit
 * cannot tell a cached MMIO entry from an empty one, so each pays one walk
 * for the device accesses (almost all of these guests' faults) to skip the
 * fault path and the memslot lookup. Counts the outcome in @f; returns it.
 * RET_PF_EMULATE_MMIO and RET_PF_RO_WRITE are the caller's to handle; any
 * other result but FIXED, SPURIOUS and RETRY fails the run, and so does a
 * fault that neither maps nor emulates, repeated at one gpa.
 */
int hv_page_fault(struct kvm *kvm, struct kvm_vcpu *vcpu, gpa_t gpa, unsigned access,
		  struct hv_faults *f);

/* What the target runs for the entry actions: its instructions. */
struct hv_entry_ops {
	void (*load_root)(uint64_t reg); /* KVM_ENTRY_LOAD_ROOT: the root and VMID */
	void (*flush_vmid)(void);	 /* FLUSH_CURRENT and FLUSH_ALL: the VMID here */
	void (*flush_guest)(void);	 /* FLUSH_GUEST: the guest's own stage 1 */
};

/*
 * What the pending requests oblige before entry, in the order
 * kvm_vcpu_entry_actions() lists it (docs/rules.md, "Requests"). Counts
 * the roots loaded in *@loads, and in *@req_flush the stage-2 flushes not
 * owed by a load.
 */
void hv_entry_actions(struct kvm_vcpu *vcpu, const struct hv_entry_ops *ops, unsigned *loads,
		      unsigned *req_flush);

/*
 * The host is about to move the page behind @hva (as migration or swap
 * would): the notifier's invalidate_range_start zaps every leaf backing
 * [hva, hva + size) and flushes before it returns, then the range ends
 * (the host keeps the page). @leaves and @flushes: what it took.
 */
void hv_zap(struct kvm *kvm, hva_t hva, uint64_t size, uint64_t *leaves, uint64_t *flushes);
/* Slot 4 (G_SCRATCH) added and deleted again: each change frees the
 * memslot array it replaced after a grace period. */
void hv_scratch_slot(struct kvm *kvm);

/* The guest's UART output, a line at a time ("guest| ..."). */
void hv_uart_out(char c);

/* One check line; the first failed check sets *@code to @c. */
void hv_check(int *code, bool ok, int c, const char *what);

/*
 * The tables line of a failed run (../common/tables.h, with the table pool:
 * every table page), for the run script to save them; false when there is
 * no VM (any more) and nothing to keep.
 */
bool hv_keep_tables_line(struct kvm *kvm, unsigned fmt_flags);

/*
 * The end of report(): a failed run keeps its VM and tables for finish();
 * a passed one destroys the VM, and every page must be back in its pool,
 * the table pool's high water within the calculator's figure. Returns
 * @code, or EXIT_CHECK where a pool fails that.
 */
int hv_destroy(struct kvm *kvm, int code);

/*
 * trace.sh (the library built with CONFIG_S2_TRACE has printed every call
 * as an "s2mmu[4]: " line): the tables stay as they are; the tables line
 * names the whole pool (tables and metadata), which
 * ../common/trace-roundtrip.sh saves with QEMU's pmemsave before it quits
 * QEMU.
 */
__attribute__((noreturn)) void hv_trace_end(struct kvm *kvm, int code, unsigned fmt_flags);

#endif
