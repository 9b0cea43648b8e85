// SPDX-License-Identifier: MIT
/*
 * riscv64-linux: an HS-mode hypervisor on s2mmu that boots Debian's
 * unmodified riscv64 Linux kernel in VS-mode under QEMU virt (H extension,
 * OpenSBI), one vcpu per hart, with a G-stage the library builds from
 * guest-page faults; docs/examples.md has the long form.
 *
 * The guest: 128 MiB of RAM at gpa 0x80000000 in one memslot whose hva
 * space is backed by 2 MiB host blocks through a block table (the "host page
 * tables"); the kernel Image and initramfs are put into it by QEMU loaders,
 * the device tree is written here. A trapped 16550 at gpa 0x10000000 (every
 * access decoded from the instruction, read with HLVX.HU since htinst is 0
 * on QEMU 7.2), polled by the kernel (no interrupt). SBI: BASE 2.0, TIME,
 * IPI, RFENCE, HSM, SRST, DBCN. The guest's timer is Sstc's vstimecmp.
 *
 * While the test init's checksumming workload runs, the boot hart moves
 * guest RAM: a 2 MiB block at a time through the MMU notifier (invalidate
 * start, copy, poison the old block, publish, end), one per tick of its own
 * timer; then it live-migrates the RAM with the dirty log (a full copy, then
 * rounds of the pages dirtied meanwhile, the vcpus paused for the last
 * round, an exact comparison, the memslot switched to the copy), and moves
 * blocks again. The guest's checksums must hold.
 *
 * Options come from QEMU's -append (the host device tree's bootargs):
 *   gpa_bits=41|50|59   Sv39x4, Sv48x4, Sv57x4
 *   mig=wp|hw|none      dirty logging by G-stage write protection, by the
 *                       hardware's dirty bits (QEMU sets G-stage A/D itself:
 *                       Svadu behaviour), or no migration
 *   manual=1            manual-protect rounds (get, then clear)
 *   moves=N             blocks moved before the migration (0: no moves)
 *   rounds=N            the guest workload's rounds; smp=1|2
 *   initrd=BYTES        the initramfs size; shell=1 interactive console
 *   wd=S                watchdog: FAIL when the console is silent S seconds
 *                       once the test init runs (default 40; 120 before),
 *                       or 4 times its longest silence since then if that
 *                       is longer; seconds of a clock that leaves out the
 *                       hypervisor's steps (../common/watchdog.h)
 *
 * Exit codes (QEMU's status through sifive_test): 0 pass, 1 a guest check
 * failed (boot, checksums, panic), 2 the moves were not done, 3 the
 * migration check failed, 4 an unexpected trap, 5 a library call failed,
 * 6 the watchdog fired.
 */
#include <stddef.h>
#include <stdint.h>

#include "../common/klib.h"
#include "../common/tables.h"
#include "../riscv64-common/rv.h"
#include "../common/watchdog.h"
#include "s2mmu/decode.h"
#include "s2mmu/dirty.h"
#include "s2mmu/env-freestanding.h"
#include "s2mmu/notifier.h"
#include "s2mmu/riscv-g.h"
#include "s2mmu/s2mmu.h"
#include "s2mmu/vcpu.h"

enum {
	EXIT_PASS = 0,
	EXIT_GUEST = 1,
	EXIT_MOVES = 2,
	EXIT_MIG = 3,
	EXIT_TRAP = 4,
	EXIT_LIB = 5,
	EXIT_WATCHDOG = 6,
};

/* ---- layout (run.sh puts the Image and the initramfs at H_A + offset) --- */

#define MiB (1ull << 20)
#define G_RAM 0x80000000ull
#define G_RAM_SIZE (128 * MiB)
#define G_IMAGE (G_RAM + 2 * MiB)
#define G_INITRD (G_RAM + 64 * MiB)
#define G_DTB (G_RAM + G_RAM_SIZE - 2 * MiB)
#define G_UART 0x10000000ull
#define BLK (2 * MiB)
#define NBLK (G_RAM_SIZE / BLK)
#define NPAGES (G_RAM_SIZE >> 12)
#define H_POOL 0x81000000ull
#define H_POOL_SIZE (8 * MiB)
#define H_SPARE 0x82000000ull /* NSPARE blocks for the moves */
#define NSPARE 8
#define H_A 0x84000000ull /* the RAM's first backing */
#define H_B 0x8c000000ull /* the migration's destination */
#define HVA_A 0x4000000000ull
#define HVA_B 0x8000000000ull
#define POISON 0xa5a5a5a5a5a5a5a5ull
#define POISON_OLD 0x5a5a5a5a5a5a5a5aull
#define VM_VMID 1
#define NHARTS 2
#define TICK 100000ull /* 10 ms of the 10 MHz timebase */
#define WD_BOOT 120    /* watchdog seconds before LX-BOOTED */
#define MOVE_TICKS 2   /* a move or migration step every other tick */
#define TIMEBASE 10000000ull

/* ---- the end of a run (the rest: ../riscv64-common/rv.h) ---------------- */

static void keep_tables(void);

static __attribute__((noreturn)) void finish(int code)
{
	static uint32_t finishing;

	/* One verdict, even if both harts get here. */
	if (__atomic_exchange_n(&finishing, 1, __ATOMIC_ACQ_REL))
		for (;;)
			__asm__ volatile("wfi");
	hlog("hyp: %s (exit code %d)\n", code ? "FAIL" : "PASS", code);
	if (code)
		keep_tables();
	rv_test_exit(code);
}

void rv_hyp_trap(uint64_t scause, uint64_t sepc, uint64_t stval)
{
	hlog("hyp: trap in HS-mode on hart %lu: scause 0x%lx sepc 0x%lx stval 0x%lx\n", hart_self(),
	     scause, sepc, stval);
	finish(EXIT_TRAP);
}

/* ---- options -------------------------------------------------------------- */

enum { MIG_NONE, MIG_WP, MIG_HW };

static struct {
	unsigned gpa_bits, mig, manual, moves, rounds, smp, shell, wd;
	uint64_t initrd;
} opt = { .gpa_bits = 41, .mig = MIG_WP, .moves = 32, .rounds = 8, .smp = 2, .wd = 40 };

static uint32_t be32(const void *p)
{
	const uint8_t *b = p;

	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* 0 when @s starts with @prefix. */
static int strcmp_prefix(const char *s, const char *prefix)
{
	while (*prefix)
		if (*s++ != *prefix++)
			return 1;
	return 0;
}

/* The host device tree's /chosen/bootargs (QEMU's -append), or NULL. */
static const char *host_bootargs(const uint8_t *fdt)
{
	const uint8_t *st, *p;
	const char *strs;
	int depth = 0, in_chosen = 0;

	if (!fdt || be32(fdt) != 0xd00dfeed)
		return NULL;
	st = fdt + be32(fdt + 8);
	strs = (const char *)fdt + be32(fdt + 12);
	p = st;
	for (;;) {
		uint32_t tok = be32(p);

		p += 4;
		if (tok == 1) { /* BEGIN_NODE */
			const char *name = (const char *)p;

			depth++;
			if (depth == 2 && !strcmp_prefix(name, "chosen"))
				in_chosen = 1;
			p += (strlen(name) + 4) & ~3ul;
		} else if (tok == 2) { /* END_NODE */
			if (depth == 2)
				in_chosen = 0;
			depth--;
		} else if (tok == 3) { /* PROP */
			uint32_t len = be32(p), nameoff = be32(p + 4);

			if (in_chosen && !strcmp_prefix(strs + nameoff, "bootargs") &&
			    strlen(strs + nameoff) == 8)
				return (const char *)p + 8;
			p += 8 + ((len + 3) & ~3u);
		} else if (tok == 4) { /* NOP */
		} else {
			return NULL;
		}
	}
}

static uint64_t parse_num(const char *s)
{
	uint64_t v = 0;

	while (*s >= '0' && *s <= '9')
		v = v * 10 + (uint64_t)(*s++ - '0');
	return v;
}

static void parse_options(const char *a)
{
	while (a && *a) {
		while (*a == ' ')
			a++;
		if (!strcmp_prefix(a, "gpa_bits="))
			opt.gpa_bits = (unsigned)parse_num(a + 9);
		else if (!strcmp_prefix(a, "mig=wp"))
			opt.mig = MIG_WP;
		else if (!strcmp_prefix(a, "mig=hw"))
			opt.mig = MIG_HW;
		else if (!strcmp_prefix(a, "mig=none"))
			opt.mig = MIG_NONE;
		else if (!strcmp_prefix(a, "manual="))
			opt.manual = (unsigned)parse_num(a + 7);
		else if (!strcmp_prefix(a, "moves="))
			opt.moves = (unsigned)parse_num(a + 6);
		else if (!strcmp_prefix(a, "rounds="))
			opt.rounds = (unsigned)parse_num(a + 7);
		else if (!strcmp_prefix(a, "smp="))
			opt.smp = (unsigned)parse_num(a + 4);
		else if (!strcmp_prefix(a, "shell="))
			opt.shell = (unsigned)parse_num(a + 6);
		else if (!strcmp_prefix(a, "wd="))
			opt.wd = (unsigned)parse_num(a + 3);
		else if (!strcmp_prefix(a, "initrd="))
			opt.initrd = parse_num(a + 7);
		while (*a && *a != ' ')
			a++;
	}
	if (opt.smp < 1 || opt.smp > NHARTS)
		opt.smp = NHARTS;
}

/* ---- host memory: hva blocks -> host physical blocks ---------------------- */

/*
 * The slot's hvas are not addresses the hypervisor uses (it runs with
 * satp = 0): like a host process's, they go through "page tables", here one
 * entry per 2 MiB block. A move changes an entry inside invalidate_range
 * start/end, so gfn_to_pfn, called outside, sees the old or the new block,
 * and the library refuses a fault that looked up the old one.
 */
static uint64_t blk_a[NBLK], blk_b[NBLK];
static uint64_t spare[NSPARE];
static unsigned nspare;
static hva_t ram_hva = HVA_A; /* the RAM slot's hva: HVA_B after the migration */

static uint64_t hva_to_hpa(hva_t hva)
{
	if (hva >= HVA_A && hva < HVA_A + G_RAM_SIZE)
		return __atomic_load_n(&blk_a[(hva - HVA_A) / BLK], __ATOMIC_ACQUIRE) +
		       (hva - HVA_A) % BLK;
	if (hva >= HVA_B && hva < HVA_B + G_RAM_SIZE)
		return __atomic_load_n(&blk_b[(hva - HVA_B) / BLK], __ATOMIC_ACQUIRE) +
		       (hva - HVA_B) % BLK;
	return 0;
}

/* A guest RAM address as the hypervisor reaches it (0: not RAM). */
static uint64_t gpa_to_hpa(gpa_t gpa)
{
	if (gpa < G_RAM || gpa >= G_RAM + G_RAM_SIZE)
		return 0;
	return hva_to_hpa(__atomic_load_n(&ram_hva, __ATOMIC_ACQUIRE) + (gpa - G_RAM));
}

static void copy64(uint64_t dst, uint64_t src, uint64_t bytes)
{
	volatile uint64_t *d = (volatile uint64_t *)(uintptr_t)dst;
	const volatile uint64_t *s = (const volatile uint64_t *)(uintptr_t)src;

	for (uint64_t i = 0; i < bytes / 8; i++)
		d[i] = s[i];
}

static void fill64(uint64_t dst, uint64_t v, uint64_t bytes)
{
	volatile uint64_t *d = (volatile uint64_t *)(uintptr_t)dst;

	for (uint64_t i = 0; i < bytes / 8; i++)
		d[i] = v;
}

static bool same64(uint64_t a, uint64_t b, uint64_t bytes)
{
	const volatile uint64_t *x = (const volatile uint64_t *)(uintptr_t)a;
	const volatile uint64_t *y = (const volatile uint64_t *)(uintptr_t)b;

	for (uint64_t i = 0; i < bytes / 8; i++)
		if (x[i] != y[i])
			return false;
	return true;
}

/* ---- the environment ----------------------------------------------------- */

static struct s2_page_pool pool;
static struct s2_freestanding fs;
static struct s2_fs_cpu rcu_cpus[NHARTS];
static struct kvm *kvm;
static bool vm_destroyed;
#define VM_FMT_FLAGS S2_FMTF_AD /* the VM's, for the tables line */

static struct {
	unsigned hook_vm, hook_range, kicks, rfence_errors;
} hw;

/*
 * A failed run says where its tables are (the pool: every table page, no
 * guest RAM) and keeps them KEEP_TABLES_S seconds for run.sh, which saves
 * them with QEMU's pmemsave and quits QEMU (../common/keep-tables.sh);
 * unwatched, the run then ends as before.
 */
#define KEEP_TABLES_S 10

static void keep_tables(void)
{
	char line[192];
	uint64_t t0;

	if (!kvm || vm_destroyed)
		return;
	hlog("%s",
	     tables_line(line, sizeof(line), "hyp", kvm, VM_FMT_FLAGS, 0, H_POOL, H_POOL_SIZE));
	t0 = csr_read(time);
	while (csr_read(time) - t0 < KEEP_TABLES_S * TIMEBASE)
		;
}

static int env_gfn_to_pfn(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, bool write,
			  struct s2_pfn_info *out)
{
	hva_t hva = slot->userspace_addr + ((gfn - slot->base_gfn) << 12);
	uint64_t hpa = hva_to_hpa(hva);

	(void)ctx;
	(void)write;
	if (!hpa)
		return -EFAULT;
	out->pfn = hpa >> 12;
	out->writable = true;
	out->host_level = 2;
	out->memtype = S2_MT_WB;
	/* The 2 MiB block around the hva is one host block until an
	 * invalidation covering it begins. */
	out->block_stable = true;
	return 0;
}

/* The format ran HFENCE.GVMA on this hart; the other hart gets an SBI
 * remote HFENCE.GVMA for the VMID, which OpenSBI completes before it
 * returns (so the hooks are broadcast). BREAK_FLUSH skips it. */
static void remote_hfence(gpa_t gpa, uint64_t size)
{
	struct sbiret r;

#ifdef BREAK_FLUSH
	(void)gpa;
	(void)size;
	(void)r;
	return;
#else
	r = sbi_call(SBI_EXT_RFENCE, 3 /* remote_hfence_gvma_vmid */, 1, (long)(hart_self() ^ 1),
		     (long)gpa, (long)size, VM_VMID);
	if (r.error)
		__atomic_fetch_add(&hw.rfence_errors, 1, __ATOMIC_RELAXED);
#endif
}

static void env_tlb_flush_vm(void *ctx, struct kvm *k)
{
	(void)ctx;
	(void)k;
	__atomic_fetch_add(&hw.hook_vm, 1, __ATOMIC_RELAXED);
	remote_hfence(0, ~0ull);
}

static void env_tlb_flush_range(void *ctx, struct kvm *k, gpa_t gpa, uint64_t size)
{
	(void)ctx;
	(void)k;
	__atomic_fetch_add(&hw.hook_range, 1, __ATOMIC_RELAXED);
	remote_hfence(gpa, size);
}

static void env_kick(void *ctx, struct kvm_vcpu *v)
{
	(void)ctx;
	__atomic_fetch_add(&hw.kicks, 1, __ATOMIC_RELAXED);
	sbi_call(SBI_EXT_IPI, 0, 1, (long)kvm_vcpu_id(v), 0, 0, 0);
}

static void env_log(void *ctx, enum s2_log_level level, const char *msg)
{
	(void)ctx;
	hlog("s2mmu[%d]: %s\n", (int)level, msg);
}

static unsigned env_this_cpu(void *ctx)
{
	(void)ctx;
	return (unsigned)hart_self();
}

static __attribute__((noreturn)) void lib_fail(const char *what, long r)
{
	hlog("hyp: %s failed: %ld\n", what, r);
	finish(EXIT_LIB);
}

/* ---- the device tree the guest gets --------------------------------------- */

static uint8_t dtb_struct[4096];
static char dtb_strings[512];
static unsigned dtb_slen, dtb_stlen;

static void dt_u32(uint32_t v)
{
	dtb_struct[dtb_slen++] = (uint8_t)(v >> 24);
	dtb_struct[dtb_slen++] = (uint8_t)(v >> 16);
	dtb_struct[dtb_slen++] = (uint8_t)(v >> 8);
	dtb_struct[dtb_slen++] = (uint8_t)v;
}

static void dt_bytes(const void *p, unsigned n)
{
	memcpy(dtb_struct + dtb_slen, p, n);
	dtb_slen += n;
	while (dtb_slen & 3)
		dtb_struct[dtb_slen++] = 0;
}

static void dt_begin(const char *name)
{
	dt_u32(1);
	dt_bytes(name, (unsigned)strlen(name) + 1);
}

static void dt_end(void)
{
	dt_u32(2);
}

static uint32_t dt_string(const char *s)
{
	for (unsigned i = 0; i < dtb_stlen; i += (unsigned)strlen(dtb_strings + i) + 1)
		if (!strcmp_prefix(dtb_strings + i, s) && strlen(dtb_strings + i) == strlen(s))
			return i;
	memcpy(dtb_strings + dtb_stlen, s, strlen(s) + 1);
	dtb_stlen += (unsigned)strlen(s) + 1;
	return dtb_stlen - (unsigned)strlen(s) - 1;
}

static void dt_prop(const char *name, const void *val, unsigned len)
{
	dt_u32(3);
	dt_u32(len);
	dt_u32(dt_string(name));
	dt_bytes(val, len);
}

static void dt_prop_str(const char *name, const char *s)
{
	dt_prop(name, s, (unsigned)strlen(s) + 1);
}

static void dt_prop_cells(const char *name, const uint32_t *c, unsigned n)
{
	uint8_t b[32];

	for (unsigned i = 0; i < n; i++) {
		b[4 * i] = (uint8_t)(c[i] >> 24);
		b[4 * i + 1] = (uint8_t)(c[i] >> 16);
		b[4 * i + 2] = (uint8_t)(c[i] >> 8);
		b[4 * i + 3] = (uint8_t)c[i];
	}
	dt_prop(name, b, 4 * n);
}

static void dt_prop_u32(const char *name, uint32_t v)
{
	dt_prop_cells(name, &v, 1);
}

static void dt_prop_u64(const char *name, uint64_t v)
{
	uint32_t c[2] = { (uint32_t)(v >> 32), (uint32_t)v };

	dt_prop_cells(name, c, 2);
}

static char guest_bootargs[160];

/*
 * What the kernel needs and nothing else: harts (the ISA string of QEMU
 * 7.2's rv64 without "h", Sstc for the timer), memory, the 16550 without an
 * interrupt (polled), /chosen with the initramfs. Written into guest RAM at
 * G_DTB; returns its size.
 */
static unsigned build_dtb(uint64_t hpa)
{
	uint32_t hdr[10];
	uint8_t *out = (uint8_t *)(uintptr_t)hpa;
	unsigned off_struct = 40 + 16, total;
	char name[32];

	dt_begin("");
	dt_prop_u32("#address-cells", 2);
	dt_prop_u32("#size-cells", 2);
	dt_prop_str("compatible", "riscv-virtio");
	dt_prop_str("model", "s2mmu riscv64-linux example");
	dt_begin("chosen");
	dt_prop_str("bootargs", guest_bootargs);
	dt_prop_str("stdout-path", "/soc/serial@10000000");
	dt_prop_u64("linux,initrd-start", G_INITRD);
	dt_prop_u64("linux,initrd-end", G_INITRD + opt.initrd);
	dt_end();
	dt_begin("cpus");
	dt_prop_u32("#address-cells", 1);
	dt_prop_u32("#size-cells", 0);
	dt_prop_u32("timebase-frequency", (uint32_t)TIMEBASE);
	for (unsigned h = 0; h < opt.smp; h++) {
		ksnprintf(name, sizeof(name), "cpu@%u", h);
		dt_begin(name);
		dt_prop_str("device_type", "cpu");
		dt_prop_u32("reg", h);
		dt_prop_str("status", "okay");
		dt_prop_str("compatible", "riscv");
		dt_prop_str("riscv,isa",
			    "rv64imafdc_zicsr_zifencei_zihintpause_zba_zbb_zbc_zbs_sstc");
		dt_prop_str("mmu-type", "riscv,sv57");
		dt_begin("interrupt-controller");
		dt_prop_u32("#interrupt-cells", 1);
		dt_prop("interrupt-controller", NULL, 0);
		dt_prop_str("compatible", "riscv,cpu-intc");
		dt_prop_u32("phandle", h + 1);
		dt_end();
		dt_end();
	}
	dt_end();
	ksnprintf(name, sizeof(name), "memory@%llx", G_RAM);
	dt_begin(name);
	dt_prop_str("device_type", "memory");
	{
		uint32_t reg[4] = { 0, (uint32_t)G_RAM, 0, (uint32_t)G_RAM_SIZE };

		dt_prop_cells("reg", reg, 4);
	}
	dt_end();
	dt_begin("soc");
	dt_prop_u32("#address-cells", 2);
	dt_prop_u32("#size-cells", 2);
	dt_prop_str("compatible", "simple-bus");
	dt_prop("ranges", NULL, 0);
	dt_begin("serial@10000000");
	dt_prop_str("compatible", "ns16550a");
	{
		uint32_t reg[4] = { 0, (uint32_t)G_UART, 0, 0x100 };

		dt_prop_cells("reg", reg, 4);
	}
	dt_prop_u32("clock-frequency", 3686400);
	dt_end();
	dt_end();
	dt_end();
	dt_u32(9); /* FDT_END */

	total = off_struct + dtb_slen + dtb_stlen;
	hdr[0] = 0xd00dfeed;
	hdr[1] = total;
	hdr[2] = off_struct;
	hdr[3] = off_struct + dtb_slen; /* strings */
	hdr[4] = 40;			/* memory reservation map: empty */
	hdr[5] = 17;
	hdr[6] = 16;
	hdr[7] = 0; /* boot cpu: the kernel takes it from a0 */
	hdr[8] = dtb_stlen;
	hdr[9] = dtb_slen;
	for (unsigned i = 0; i < 10; i++)
		for (unsigned b = 0; b < 4; b++)
			out[4 * i + b] = (uint8_t)(hdr[i] >> (24 - 8 * b));
	memset(out + 40, 0, 16);
	memcpy(out + off_struct, dtb_struct, dtb_slen);
	memcpy(out + off_struct + dtb_slen, dtb_strings, dtb_stlen);
	return total;
}

/* ---- vcpus --------------------------------------------------------------- */

enum { HSM_STARTED = 0, HSM_STOPPED = 1, HSM_START_PENDING = 2 };

static struct vcpu {
	struct kvm_vcpu *v;
	struct rv_regs regs;
	unsigned hsm; /* HSM_* (atomic) */
	uint64_t start_pc, start_arg;
	unsigned ipi;	  /* a guest IPI for this vcpu is pending (atomic) */
	unsigned paused;  /* acknowledges pause_req (atomic) */
	unsigned looping; /* the hart reached vcpu_loop (atomic) */
	uint64_t exits, gpf[3], fixed, spurious, retry, mmio, sbi, ssip, stip, from_vu;
	uint64_t retry_waits;
	bool first_exit_seen;
} vc[NHARTS];

static uint64_t boot_hart;
static unsigned pause_req;
static unsigned ready; /* the VM and its vcpus exist (atomic) */

/* Everything the run checks, written by either hart. */
static struct {
	bool first_exit_ok, booted, memcheck_start, memcheck_ok, memcheck_fail, panic;
	unsigned cpus_seen;
	int reset_type;
	uint64_t sbi_counts[8]; /* per extension, see sbi_ext_idx() */
	uint64_t hsm_starts, ipis_sent, rfences;
	uint64_t dbcn_bytes, uart_exits;
	uint64_t max_leaves[4];
	/* moves */
	unsigned phase, moves, moves_during_workload, moves_after_mig;
	unsigned next_move;
	/* migration */
	unsigned mig_rounds, mig_state, mig_blk;
	uint64_t mig_pages, mig_final_pages, mig_first_round_pages, mig_mismatch, mig_dropped;
	uint64_t mig_t0, mig_t1, mig_downtime;
	bool mig_done, mig_hw;
	unsigned rounds_after_mig, rounds_seen;
} st;

static struct wd wd; /* the watchdog: the boot hart's ticks, console bytes from either hart */

enum { PH_BOOT, PH_MOVES, PH_MIG, PH_AFTER };

static void pause_others(void);
static void resume_others(void);
static __attribute__((noreturn)) void shutdown(void);

static void track_leaves(void)
{
	struct kvm_mmu_stats s;

	if (kvm_get_stats(kvm, &s))
		return;
	for (int l = 1; l <= 3; l++)
		if (s.cur_leaves[l] > st.max_leaves[l])
			st.max_leaves[l] = s.cur_leaves[l];
}

static void dump(struct vcpu *c, const char *why)
{
	hlog("hyp: hart %lu: %s: scause 0x%lx pc 0x%lx stval 0x%lx htval 0x%lx htinst 0x%lx "
	     "ra 0x%lx sp 0x%lx\n",
	     hart_self(), why, c->regs.scause, c->regs.pc, c->regs.stval, c->regs.htval,
	     c->regs.htinst, c->regs.x[1], c->regs.x[2]);
}

/* ---- the console: a trapped 16550 ------------------------------------------ */

static char line[256];
static unsigned line_len;
static uint32_t line_lock;
static uint8_t uart_reg[8]; /* IER, LCR, MCR, SCR, DLL, DLM as written */

static void console_line(void)
{
	line[line_len] = 0;
	if (!opt.shell)
		hlog("guest| %s\n", line);
	if (!strcmp_prefix(line, "LX-BOOTED")) {
		st.booted = true;
		wd_learn(&wd); /* the boot's silences do not set the pace */
		for (const char *p = line; *p; p++)
			if (!strcmp_prefix(p, " cpus") && p > line)
				st.cpus_seen = (unsigned)(p[-1] - '0');
	} else if (!strcmp_prefix(line, "MEMCHECK-START")) {
		st.memcheck_start = true;
	} else if (!strcmp_prefix(line, "MEMCHECK-ROUND")) {
		st.rounds_seen++;
		if (st.mig_done)
			st.rounds_after_mig++;
	} else if (!strcmp_prefix(line, "MEMCHECK-OK")) {
		st.memcheck_ok = true;
	} else if (!strcmp_prefix(line, "MEMCHECK-FAIL")) {
		st.memcheck_fail = true;
	} else {
		for (const char *p = line; *p; p++)
			if (!strcmp_prefix(p, "Kernel panic"))
				st.panic = true;
	}
	line_len = 0;
}

static void console_byte(char c)
{
	while (__atomic_exchange_n(&line_lock, 1, __ATOMIC_ACQUIRE))
		;
	wd_progress(&wd);
	if (opt.shell)
		hlog("%c", c);
	if (c == '\n' || line_len == sizeof(line) - 1)
		console_line();
	else if (c != '\r')
		line[line_len++] = c;
	__atomic_store_n(&line_lock, 0, __ATOMIC_RELEASE);
}

static uint64_t uart_read(unsigned reg)
{
	volatile uint8_t *host = (volatile uint8_t *)HOST_UART;
	bool dlab = uart_reg[3] & 0x80;

	switch (reg) {
	case 0: return dlab ? uart_reg[4] : (host[5] & 1) ? host[0] : 0; /* RBR from the host */
	case 1: return dlab ? uart_reg[5] : uart_reg[1];
	case 2: /* IIR, FIFOs on: what the polling driver acts on (no real IRQ) */
		if ((uart_reg[1] & 1) && (host[5] & 1))
			return 0xc4; /* received data */
		if (uart_reg[1] & 2)
			return 0xc2; /* THR empty (always) */
		return 0xc1;	     /* nothing pending */
	case 3: return uart_reg[3];
	case 4: return uart_reg[6];
	case 5: return 0x60 | (host[5] & 1); /* LSR: THR empty, idle; data ready */
	case 6: return 0xb0;		     /* MSR: DCD, DSR, CTS */
	default: return uart_reg[7];
	}
}

static void uart_write(unsigned reg, uint64_t v)
{
	bool dlab = uart_reg[3] & 0x80;

	switch (reg) {
	case 0:
		if (dlab)
			uart_reg[4] = (uint8_t)v;
		else
			console_byte((char)v);
		break;
	case 1:
		if (dlab)
			uart_reg[5] = (uint8_t)v;
		else
			uart_reg[1] = (uint8_t)v;
		break;
	case 3: uart_reg[3] = (uint8_t)v; break;
	case 4: uart_reg[6] = (uint8_t)v; break;
	case 7: uart_reg[7] = (uint8_t)v; break;
	default: break; /* FCR */
	}
}

/* Decode the load/store at the guest's pc (htinst, else the instruction read
 * with HLVX.HU through the guest's own translation) and emulate it. Returns
 * false when the instruction could not be read (re-enter: it faults again). */
static bool emulate_uart(struct vcpu *c, gpa_t gpa)
{
	struct s2_insn d;
	struct s2_riscv_regs r;
	uint64_t lo, hi = 0, v = 0;
	uint32_t raw;

	if (!(c->regs.htinst && s2_decode_riscv_htinst(c->regs.htinst, c->regs.pc, &d) == 0)) {
		lo = rv_hlvx_hu(c->regs.pc);
		if (lo == ~0ull)
			return false;
		if ((lo & 3) == 3) {
			hi = rv_hlvx_hu(c->regs.pc + 2);
			if (hi == ~0ull)
				return false;
		}
		raw = (uint32_t)(lo | hi << 16);
		if (s2_decode_riscv(raw, c->regs.pc, &d) || (d.flags & S2_INSN_FP)) {
			dump(c, "cannot decode the UART access");
			finish(EXIT_TRAP);
		}
	}
	memset(&r, 0, sizeof(r));
	for (unsigned i = 0; i < 32; i++)
		r.x[i] = c->regs.x[i];
	r.pc = c->regs.pc;
	if (d.dir == S2_DIR_STORE) {
		if (s2_riscv_complete(&d, &r, &v))
			finish(EXIT_TRAP);
		uart_write((unsigned)(gpa - G_UART) & 7, v);
	} else {
		v = uart_read((unsigned)(gpa - G_UART) & 7);
		if (s2_riscv_complete(&d, &r, &v))
			finish(EXIT_TRAP);
	}
	for (unsigned i = 1; i < 32; i++)
		c->regs.x[i] = r.x[i];
	c->regs.pc = r.pc;
	st.uart_exits++;
	return true;
}

/* ---- guest-page faults --------------------------------------------------- */

static void guest_page_fault(struct vcpu *c, unsigned cause)
{
	gpa_t gpa = (c->regs.htval << 2) | (c->regs.stval & 3);
	unsigned access = cause == EXC_INSN_GPF ? S2_ACC_EXEC :
			  cause == EXC_LOAD_GPF ? S2_ACC_READ :
						  S2_ACC_WRITE;
	int r;

	c->gpf[cause == EXC_INSN_GPF ? 0 : cause == EXC_LOAD_GPF ? 1 : 2]++;
	if (!c->first_exit_seen && c == &vc[boot_hart]) {
		c->first_exit_seen = true;
		st.first_exit_ok = cause == EXC_INSN_GPF && gpa == G_IMAGE;
		hlog("hyp: first exit: %s guest-page fault at gpa 0x%lx (empty G-stage)\n",
		     cause == EXC_INSN_GPF ? "fetch" : "data", gpa);
	}
	if (!(c->regs.sstatus & SSTATUS_SPP))
		c->from_vu++;
	r = kvm_tdp_page_fault(c->v, gpa, access);
	switch (r) {
	case RET_PF_FIXED:
		c->fixed++;
		track_leaves();
		break;
	case RET_PF_SPURIOUS: c->spurious++; break;
	case RET_PF_RETRY:
		/* A move of this block is in progress: wait for its end
		 * rather than re-fault in a loop (reporting quiescent states:
		 * the mover may wait for a grace period). */
		c->retry++;
		while (kvm_mmu_invalidate_in_progress(kvm)) {
			c->retry_waits++;
			s2_fs_rcu_quiescent(&fs, (unsigned)hart_self());
		}
		break;
	case RET_PF_EMULATE_MMIO:
		if (cause != EXC_INSN_GPF && gpa >= G_UART && gpa < G_UART + 8) {
			c->mmio++;
			emulate_uart(c, gpa);
			break;
		}
		dump(c, "access to a gpa with no memslot and no device");
		finish(EXIT_TRAP);
	default: lib_fail("kvm_tdp_page_fault", r);
	}
}

/* ---- SBI for the guest ---------------------------------------------------- */

static unsigned sbi_ext_idx(uint64_t eid)
{
	switch (eid) {
	case SBI_EXT_BASE: return 0;
	case SBI_EXT_TIME: return 1;
	case SBI_EXT_IPI: return 2;
	case SBI_EXT_RFENCE: return 3;
	case SBI_EXT_HSM: return 4;
	case SBI_EXT_SRST: return 5;
	case SBI_EXT_DBCN: return 6;
	default: return 7;
	}
}

/* The vcpus (= harts) named by an SBI hart mask. */
static uint64_t hart_mask(uint64_t mask, uint64_t base)
{
	if (base == ~0ull)
		return (1ull << opt.smp) - 1;
	if (base >= NHARTS)
		return 0;
	return (mask << base) & ((1ull << opt.smp) - 1);
}

static void send_guest_ipi(uint64_t targets)
{
	for (unsigned h = 0; h < opt.smp; h++) {
		if (!(targets & (1ull << h)))
			continue;
		st.ipis_sent++;
		if (h == hart_self()) {
			csr_set(0x645, HVIP_VSSIP);
			continue;
		}
		__atomic_store_n(&vc[h].ipi, 1, __ATOMIC_RELEASE);
		sbi_call(SBI_EXT_IPI, 0, 1, (long)h, 0, 0, 0);
	}
}

static void rfence(uint64_t fid, uint64_t targets, uint64_t start, uint64_t size)
{
	uint64_t others = targets & ~(1ull << hart_self());

	st.rfences++;
	if (targets & (1ull << hart_self())) {
		if (fid == 0)
			__asm__ volatile("fence.i" ::: "memory");
		else
			hfence_vvma_all();
	}
	if (!others)
		return;
	if (fid == 0)
		sbi_call(SBI_EXT_RFENCE, 0, (long)others, 0, 0, 0, 0);
	else /* remote_hfence_vvma: the guest's VMID, every address */
		sbi_call(SBI_EXT_RFENCE, 6, (long)others, 0, 0, -1l, 0);
	(void)start;
	(void)size;
}

static void handle_sbi(struct vcpu *c)
{
	uint64_t *a = &c->regs.x[10]; /* a0..a7 */
	uint64_t eid = a[7], fid = a[6];
	long err = 0, val = 0;

	c->sbi++;
	st.sbi_counts[sbi_ext_idx(eid)]++;
	switch (eid) {
	case SBI_EXT_BASE:
		switch (fid) {
		case 0: val = 2l << 24; break; /* SBI 2.0 */
		case 1:
		case 2:
		case 4:
		case 5:
		case 6: val = sbi_call(SBI_EXT_BASE, (long)fid, 0, 0, 0, 0, 0).value; break;
		case 3:
			val = a[0] == SBI_EXT_TIME || a[0] == SBI_EXT_IPI ||
			      a[0] == SBI_EXT_RFENCE || a[0] == SBI_EXT_HSM ||
			      a[0] == SBI_EXT_SRST || a[0] == SBI_EXT_DBCN;
			break;
		default: err = SBI_ERR_NOT_SUPPORTED;
		}
		break;
	case SBI_EXT_TIME:
		if (fid == 0)
			csr_write(0x24d, a[0]); /* vstimecmp */
		else
			err = SBI_ERR_NOT_SUPPORTED;
		break;
	case SBI_EXT_IPI:
		if (fid == 0)
			send_guest_ipi(hart_mask(a[0], a[1]));
		else
			err = SBI_ERR_NOT_SUPPORTED;
		break;
	case SBI_EXT_RFENCE:
		if (fid <= 2)
			rfence(fid, hart_mask(a[0], a[1]), a[2], a[3]);
		else
			err = SBI_ERR_NOT_SUPPORTED;
		break;
	case SBI_EXT_HSM:
		if (fid == 0) { /* hart_start(hartid, addr, opaque) */
			unsigned exp = HSM_STOPPED;

			if (a[0] >= opt.smp) {
				err = SBI_ERR_INVALID_PARAM;
				break;
			}
			vc[a[0]].start_pc = a[1];
			vc[a[0]].start_arg = a[2];
			if (!__atomic_compare_exchange_n(&vc[a[0]].hsm, &exp, HSM_START_PENDING,
							 false, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
				err = SBI_ERR_ALREADY_AVAILABLE;
			else
				st.hsm_starts++;
		} else if (fid == 1) { /* hart_stop */
			__atomic_store_n(&c->hsm, HSM_STOPPED, __ATOMIC_RELEASE);
		} else if (fid == 2) {
			if (a[0] >= opt.smp)
				err = SBI_ERR_INVALID_PARAM;
			else
				val = __atomic_load_n(&vc[a[0]].hsm, __ATOMIC_ACQUIRE);
		} else {
			err = SBI_ERR_NOT_SUPPORTED;
		}
		break;
	case SBI_EXT_SRST:
		if (fid == 0 && a[0] <= 2) {
			st.reset_type = (int)a[0];
			shutdown();
		}
		err = SBI_ERR_INVALID_PARAM;
		break;
	case SBI_EXT_DBCN:
		if (fid == 0) { /* write(num_bytes, base_lo, base_hi) */
			uint64_t n = a[0];

			for (uint64_t i = 0; i < n; i++) {
				uint64_t hpa = gpa_to_hpa(a[1] + i);

				if (!hpa) {
					err = SBI_ERR_INVALID_PARAM;
					break;
				}
				console_byte(*(volatile char *)(uintptr_t)hpa);
				val++;
			}
			st.dbcn_bytes += (uint64_t)val;
		} else if (fid == 1) {
			val = 0; /* read: nothing */
		} else if (fid == 2) {
			console_byte((char)a[0]);
			st.dbcn_bytes++;
		} else {
			err = SBI_ERR_NOT_SUPPORTED;
		}
		break;
	default: err = SBI_ERR_NOT_SUPPORTED;
	}
	if (c->hsm == HSM_STOPPED && eid == SBI_EXT_HSM && fid == 1)
		return; /* hart_stop does not return */
	a[0] = (uint64_t)err;
	a[1] = (uint64_t)val;
	c->regs.pc += 4;
}

/* ---- memory moves through the notifier ------------------------------------ */

static uint64_t *cur_table(void)
{
	return __atomic_load_n(&ram_hva, __ATOMIC_ACQUIRE) == HVA_A ? blk_a : blk_b;
}

/* Move the next 2 MiB block of guest RAM to a spare host block while the
 * other vcpu may be running on it. */
static void move_block(void)
{
	uint64_t *tbl = cur_table();
	unsigned i = st.next_move++ % NBLK;
	hva_t hva = __atomic_load_n(&ram_hva, __ATOMIC_ACQUIRE) + (uint64_t)i * BLK;
	uint64_t old = tbl[i], nb = spare[--nspare];
	int r;

	r = kvm_mmu_notifier_invalidate_range_start(kvm, hva, hva + BLK, true);
	if (r)
		lib_fail("kvm_mmu_notifier_invalidate_range_start", r);
	copy64(nb, old, BLK);
	fill64(old, POISON, BLK);
	__atomic_store_n(&tbl[i], nb, __ATOMIC_RELEASE);
	__asm__ volatile("fence rw, rw\n\tfence.i" ::: "memory");
	r = kvm_mmu_notifier_invalidate_range_end(kvm, hva, hva + BLK, true);
	if (r)
		lib_fail("kvm_mmu_notifier_invalidate_range_end", r);
	spare[nspare++] = old;
	st.moves++;
	if (st.memcheck_start && !st.memcheck_ok && !st.memcheck_fail)
		st.moves_during_workload++;
	if (st.mig_done)
		st.moves_after_mig++;
}

/* ---- live migration with the dirty log ------------------------------------- */

static uint64_t bitmap[NPAGES / 64];
enum { MIG_IDLE, MIG_COPY_ALL, MIG_ROUNDS, MIG_FINAL };
#define MIG_STEP_BLOCKS 8 /* 16 MiB per step */
#define MIG_MAX_ROUNDS 8
#define MIG_DONE_PAGES 64 /* a round this small ends the pre-copy */

static void copy_page(uint64_t page)
{
	uint64_t src = hva_to_hpa(HVA_A + (page << 12)),
		 dst = blk_b[page / 512] + (page % 512) * 4096;

	copy64(dst, src, 4096);
}

/* Lowest set bit of @m (not 0); libgcc's ctz is built for another ABI. */
static uint64_t ctz64(uint64_t m)
{
	uint64_t n = 0;

	while (!(m & 1)) {
		m >>= 1;
		n++;
	}
	return n;
}

/* Copy the pages of one round (harvested into bitmap); returns how many. */
static uint64_t harvest_round(bool final)
{
	uint64_t n = 0;
	long r = kvm_get_dirty_log(kvm, 0, bitmap);

	if (r < 0)
		lib_fail("kvm_get_dirty_log", r);
	if (opt.manual) {
		r = kvm_clear_dirty_log(kvm, 0, 0, NPAGES, bitmap);
		if (r < 0)
			lib_fail("kvm_clear_dirty_log", r);
	}
	for (uint64_t w = 0; w < NPAGES / 64; w++) {
		for (uint64_t m = bitmap[w]; m; m &= m - 1) {
			uint64_t page = w * 64 + ctz64(m);

#ifdef DROP_DIRTY_PAGE
			/* The sabotaged build: the last round forgets the first
			 * dirty page whose copy is stale. */
			if (final && !st.mig_dropped &&
			    !same64(hva_to_hpa(HVA_A + (page << 12)),
				    blk_b[page / 512] + (page % 512) * 4096, 4096)) {
				st.mig_dropped = page + 1;
				continue;
			}
#endif
			(void) final;
			copy_page(page);
			n++;
		}
	}
	return n;
}

static void mig_start(void)
{
	int r;

	if (opt.manual) {
		r = kvm_dirty_log_set_caps(
			kvm, KVM_DIRTY_LOG_MANUAL_PROTECT |
				     (opt.mig == MIG_WP ? KVM_DIRTY_LOG_WRPROTECT : 0));
	} else {
		r = kvm_dirty_log_set_caps(kvm, opt.mig == MIG_WP ? KVM_DIRTY_LOG_WRPROTECT : 0);
	}
	if (r)
		lib_fail("kvm_dirty_log_set_caps", r);
	st.mig_t0 = csr_read(time);
	r = kvm_set_memslot_flags(kvm, 0, KVM_MEM_LOG_DIRTY_PAGES);
	if (r)
		lib_fail("kvm_set_memslot_flags(LOG_DIRTY)", r);
	st.mig_hw = kvm_dirty_log_hw(kvm);
	track_leaves();
	hlog("hyp: migration: dirty logging on (%s%s); round 0 copies all %llu pages\n",
	     st.mig_hw ? "hardware dirty bits" : "G-stage write protection",
	     opt.manual ? ", manual protect" : ", bitmap", NPAGES);
	st.mig_state = MIG_COPY_ALL;
	st.mig_blk = 0;
}

/* Round 0, MIG_STEP_BLOCKS blocks per step while both vcpus run. */
static void mig_copy_all(void)
{
	for (unsigned n = 0; n < MIG_STEP_BLOCKS && st.mig_blk < NBLK; n++, st.mig_blk++)
		copy64(blk_b[st.mig_blk], blk_a[st.mig_blk], BLK);
	if (st.mig_blk == NBLK) {
		st.mig_pages = NPAGES;
		st.mig_state = MIG_ROUNDS;
	}
}

static void mig_final(void)
{
	uint64_t t = csr_read(time), n;
	int r;

	pause_others();
	n = harvest_round(true);
	st.mig_final_pages = n;
	st.mig_pages += n;
	st.mig_rounds++;
	/* The two copies must now be identical. */
	for (uint64_t p = 0; p < NPAGES; p++)
		if (!same64(hva_to_hpa(HVA_A + (p << 12)), blk_b[p / 512] + (p % 512) * 4096, 4096))
			st.mig_mismatch++;
	/* Switch the RAM slot to the copy and poison the source. */
	r = kvm_delete_memslot(kvm, 0);
	if (r)
		lib_fail("kvm_delete_memslot", r);
	__atomic_store_n(&ram_hva, HVA_B, __ATOMIC_RELEASE);
	{
		struct kvm_memory_slot s = { .id = 0,
					     .base_gfn = gpa_to_gfn(G_RAM),
					     .npages = NPAGES,
					     .userspace_addr = HVA_B };

		r = kvm_set_memslot(kvm, &s);
		if (r)
			lib_fail("kvm_set_memslot (the copy)", r);
	}
	st.mig_downtime = csr_read(time) - t;
	st.mig_t1 = csr_read(time);
	st.mig_done = true;
	st.mig_state = MIG_IDLE;
	hlog("hyp: migration: stop-and-copy %llu pages%s, %llu pages differ, switched to the copy; "
	     "downtime %llu us, %u rounds, %llu pages copied in all\n",
	     (unsigned long long)n,
	     st.mig_dropped ? " (one stale dirty page dropped on purpose: DROP_DIRTY_PAGE)" : "",
	     (unsigned long long)st.mig_mismatch, (unsigned long long)st.mig_downtime / 10,
	     st.mig_rounds, (unsigned long long)st.mig_pages);
	/* A copy that differs from the source is a failed migration: say so
	 * now, before the guest runs on the wrong page (it may then hang and
	 * the watchdog would report that instead of the comparison). */
	if (st.mig_mismatch) {
		hlog("hyp: check migration: the copy equals the source before the switch  FAIL\n");
		finish(EXIT_MIG);
	}
	resume_others();
	st.mig_blk = 0;
}

/* The source is no one's now: poison it, a few blocks per step. */
static void mig_poison(void)
{
	for (unsigned n = 0; n < MIG_STEP_BLOCKS && st.mig_blk < NBLK; n++, st.mig_blk++)
		fill64(blk_a[st.mig_blk], POISON_OLD, BLK);
}

static void mig_round(void)
{
	uint64_t n = harvest_round(false);

	st.mig_rounds++;
	st.mig_pages += n;
	if (st.mig_rounds == 1)
		st.mig_first_round_pages = n;
	hlog("hyp: migration: round %u copied %llu dirty pages\n", st.mig_rounds,
	     (unsigned long long)n);
	/* The last round comes at the next step: the guest writes meanwhile. */
	if (n <= MIG_DONE_PAGES || st.mig_rounds >= MIG_MAX_ROUNDS)
		st.mig_state = MIG_FINAL;
}

/* The boot hart's timer tick, outside guest mode: moves, then migration,
 * then moves again, at most one step per tick. */
static void tick_work(void)
{
	switch (st.phase) {
	case PH_BOOT:
		if (!st.memcheck_start)
			return;
		st.phase = opt.moves ? PH_MOVES : PH_MIG;
		return;
	case PH_MOVES:
		if (st.moves < opt.moves) {
			move_block();
			return;
		}
		st.phase = PH_MIG;
		return;
	case PH_MIG:
		if (opt.mig == MIG_NONE) {
			st.phase = PH_AFTER;
			return;
		}
		if (st.mig_state == MIG_IDLE && !st.mig_done)
			mig_start();
		else if (st.mig_state == MIG_COPY_ALL)
			mig_copy_all();
		else if (st.mig_state == MIG_ROUNDS)
			mig_round();
		else if (st.mig_state == MIG_FINAL)
			mig_final();
		if (st.mig_done)
			st.phase = PH_AFTER;
		return;
	default:
		if (st.mig_done && st.mig_blk < NBLK)
			mig_poison();
		else if (st.moves_after_mig < opt.moves && !st.memcheck_ok && !st.memcheck_fail)
			move_block();
		return;
	}
}

static void arm_timer(void)
{
	sbi_call(SBI_EXT_TIME, 0, (long)(csr_read(time) + TICK), 0, 0, 0, 0);
}

/* The boot hart's tick: the guest printed nothing for too long (../common/watchdog.h). */
static void watchdog(void)
{
	/* Until the test init runs, the kernel's own boot may be silent for
	 * long: a higher floor then. */
	unsigned base = st.booted ? opt.wd : WD_BOOT;

	if (opt.wd && !opt.shell && wd_expired(&wd, base * TIMEBASE)) {
		hlog("hyp: watchdog: the guest printed nothing for %lu s of guest time (limit %lu s: "
		     "at least %u s, %u times its longest silence; phase %u, %u moves, migration "
		     "state %u): stuck\n",
		     (unsigned long)(wd_silence(&wd) / TIMEBASE),
		     (unsigned long)(wd_limit(&wd, base * TIMEBASE) / TIMEBASE), base, WD_PACE,
		     st.phase, st.moves, st.mig_state);
		finish(EXIT_WATCHDOG);
	}
}

/* ---- pausing the other vcpu ------------------------------------------------- */

/* Every other hart leaves guest mode and waits (RCU offline) until
 * resume_others(); this hart keeps reporting quiescent states meanwhile. */
/*
 * A hart that does not acknowledge within PAUSE_LIMIT of the counter is
 * stuck (in the hypervisor, or never started: one loaded run's second
 * hart came up after Linux's 1 s bring-up timeout and the shutdown then
 * waited for it forever): a FAIL line that says where it is, not a hang.
 */
#define PAUSE_LIMIT (60 * TIMEBASE)

static void pause_others(void)
{
	unsigned self = (unsigned)hart_self();

	__atomic_store_n(&pause_req, 1, __ATOMIC_SEQ_CST);
	for (unsigned h = 0; h < opt.smp; h++) {
		uint64_t t0 = csr_read(time);

		if (h == self)
			continue;
		sbi_call(SBI_EXT_IPI, 0, 1, (long)h, 0, 0, 0);
		while (!__atomic_load_n(&vc[h].paused, __ATOMIC_ACQUIRE)) {
			s2_fs_rcu_quiescent(&fs, self);
			if (csr_read(time) - t0 > PAUSE_LIMIT) {
				hlog("hyp: hart %u did not pause within %llu s (HSM state %u, %s the "
				     "vcpu loop): stuck\n",
				     h, PAUSE_LIMIT / TIMEBASE,
				     __atomic_load_n(&vc[h].hsm, __ATOMIC_ACQUIRE),
				     __atomic_load_n(&vc[h].looping, __ATOMIC_ACQUIRE) ?
					     "in" :
					     "never in");
				finish(EXIT_WATCHDOG);
			}
		}
	}
}

static void resume_others(void)
{
	__atomic_store_n(&pause_req, 0, __ATOMIC_RELEASE);
}

static void maybe_pause(unsigned self)
{
	if (!__atomic_load_n(&pause_req, __ATOMIC_ACQUIRE))
		return;
	s2_fs_rcu_offline(&fs, self);
	__atomic_store_n(&vc[self].paused, 1, __ATOMIC_RELEASE);
	while (__atomic_load_n(&pause_req, __ATOMIC_ACQUIRE))
		;
	__atomic_store_n(&vc[self].paused, 0, __ATOMIC_RELEASE);
	s2_fs_rcu_online(&fs, self);
}

/* ---- the vcpu loop ---------------------------------------------------------- */

static void handle_exit(struct vcpu *c)
{
	uint64_t cause = c->regs.scause;

	c->exits++;
	if (cause == (SCAUSE_IRQ | IRQ_S_SOFT)) {
		/* A kick, a pause, or another vcpu's IPI for this one. */
		csr_clear(sip, SIP_SSIP);
		c->ssip++;
		return;
	}
	if (cause == (SCAUSE_IRQ | IRQ_S_TIMER)) {
		c->stip++;
		if (hart_self() == boot_hart) {
			wd_tick(&wd, csr_read(time));
			watchdog();
			if (c->stip % MOVE_TICKS == 0)
				tick_work();
			/* The watchdog times the guest, not the hypervisor's
			 * steps (the other vcpu may wait for this one). */
			wd_tick_done(&wd, csr_read(time));
		}
		/* From now: a step's own time does not count against the
		 * guest's (a bounded rate of moves). */
		arm_timer();
		return;
	}
	switch (cause) {
	case EXC_VS_ECALL: handle_sbi(c); return;
	case EXC_INSN_GPF:
	case EXC_LOAD_GPF:
	case EXC_STORE_GPF: guest_page_fault(c, (unsigned)cause); return;
	case EXC_VIRT_INSN: dump(c, "virtual-instruction exit"); finish(EXIT_TRAP);
	default: dump(c, "unexpected guest exit"); finish(EXIT_TRAP);
	}
}

/* Per-hart H state before the first entry. */
static void hart_init(void)
{
	csr_write(0x602, 0xb15dull);	      /* hedeleg: misaligned, illegal, breakpoint, U ecall,
					      page faults go straight to VS */
	csr_write(0x603, 0x444ull);	      /* hideleg: VSSIP, VSTIP, VSEIP */
	csr_write(0x645, 0);		      /* hvip */
	csr_write(0x604, 0);		      /* hie */
	csr_write(0x606, ~0ull);	      /* hcounteren: time, cycle, instret */
	csr_write(0x60a, 1ull << 63);	      /* henvcfg.STCE: the guest's stimecmp is vstimecmp */
	csr_write(0x24d, ~0ull);	      /* vstimecmp */
	csr_write(0x605, 0);		      /* htimedelta */
	csr_write(0x280, 0);		      /* vsatp */
	csr_write(0x200, 0);		      /* vsstatus */
	csr_set(sstatus, SSTATUS_FS_INITIAL); /* FP on in HS too, or the guest's FP traps */
	csr_set(sie, SIE_SSIE | SIE_STIE);
	/*
	 * Only the boot hart has a timer (the steps, the watchdog): the
	 * other hart's guest then exits only when it must, so its TLB (which
	 * QEMU flushes on every exit) keeps stale translations unless a
	 * remote fence removes them, and the break-flush image can fail.
	 */
	if (hart_self() == boot_hart)
		arm_timer();
}

static void vcpu_loop(unsigned self)
{
	struct vcpu *c = &vc[self];
	struct kvm_entry_actions acts;

	s2_fs_rcu_online(&fs, self);
	__atomic_store_n(&c->looping, 1, __ATOMIC_RELEASE);
	for (;;) {
		s2_fs_rcu_quiescent(&fs, self);
		maybe_pause(self);
		if (__atomic_load_n(&c->hsm, __ATOMIC_ACQUIRE) != HSM_STARTED) {
			if (__atomic_load_n(&c->hsm, __ATOMIC_ACQUIRE) != HSM_START_PENDING) {
				/* Stopped: wait offline for hart_start. */
				s2_fs_rcu_offline(&fs, self);
				while (__atomic_load_n(&c->hsm, __ATOMIC_ACQUIRE) == HSM_STOPPED &&
				       !__atomic_load_n(&pause_req, __ATOMIC_ACQUIRE))
					;
				s2_fs_rcu_online(&fs, self);
				continue;
			}
			memset(c->regs.x, 0, sizeof(c->regs.x));
			c->regs.x[10] = self;
			c->regs.x[11] = c->start_arg;
			c->regs.pc = c->start_pc;
			c->regs.sstatus = SSTATUS_SPP;
			csr_write(0x280, 0); /* vsatp */
			csr_write(0x200, 0); /* vsstatus */
			__atomic_store_n(&c->hsm, HSM_STARTED, __ATOMIC_RELEASE);
		}
		if (__atomic_exchange_n(&c->ipi, 0, __ATOMIC_ACQUIRE))
			csr_set(0x645, HVIP_VSSIP);
		if (kvm_vcpu_entry_actions(c->v, &acts))
			lib_fail("kvm_vcpu_entry_actions", -1);
		for (unsigned i = 0; i < acts.nr; i++) {
			switch (acts.a[i].kind) {
			case KVM_ENTRY_LOAD_ROOT: csr_write(0x680, acts.a[i].reg); break;
			case KVM_ENTRY_FLUSH_CURRENT:
			case KVM_ENTRY_FLUSH_ALL: hfence_gvma_all(); break;
			case KVM_ENTRY_FLUSH_GUEST: hfence_vvma_all(); break;
			}
		}
		if (!kvm_vcpu_enter_guest(c->v))
			continue;
		s2_fs_rcu_offline(&fs, self);
		csr_set(0x600, HSTATUS_SPV);
		if (c->regs.sstatus & SSTATUS_SPP)
			csr_set(sstatus, SSTATUS_SPP);
		else
			csr_clear(sstatus, SSTATUS_SPP);
		rv_run_guest(&c->regs);
		kvm_vcpu_exit_guest(c->v);
		s2_fs_rcu_online(&fs, self);
		handle_exit(c);
	}
}

/* ---- the end: report and checks ------------------------------------------- */

static __attribute__((noreturn)) void shutdown(void)
{
	struct kvm_mmu_stats s;
	struct kvm_dirty_stats ds;
	char buf[400];
	int code = EXIT_PASS;
	struct vcpu t = { 0 };

	pause_others();
	if (kvm_get_stats(kvm, &s) || kvm_get_dirty_stats(kvm, &ds))
		lib_fail("kvm_get_stats", -1);
	kvm_format_stats(kvm, buf, sizeof(buf));
	track_leaves();
	for (unsigned h = 0; h < opt.smp; h++) {
		struct vcpu *c = &vc[h];

		hlog("hyp: vcpu %u: %llu exits: guest-page faults fetch=%llu load=%llu store=%llu "
		     "(fixed %llu, spurious %llu, retry %llu after %llu waits, from VU %llu), "
		     "uart %llu, sbi %llu, ssip %llu, timer %llu\n",
		     h, (unsigned long long)c->exits, (unsigned long long)c->gpf[0],
		     (unsigned long long)c->gpf[1], (unsigned long long)c->gpf[2],
		     (unsigned long long)c->fixed, (unsigned long long)c->spurious,
		     (unsigned long long)c->retry, (unsigned long long)c->retry_waits,
		     (unsigned long long)c->from_vu, (unsigned long long)c->mmio,
		     (unsigned long long)c->sbi, (unsigned long long)c->ssip,
		     (unsigned long long)c->stip);
		t.exits += c->exits;
	}
	hlog("hyp: sbi calls: base %llu time %llu ipi %llu rfence %llu hsm %llu srst %llu dbcn %llu "
	     "other %llu; hart starts %llu, guest IPIs %llu, remote fences %llu, DBCN bytes %llu\n",
	     (unsigned long long)st.sbi_counts[0], (unsigned long long)st.sbi_counts[1],
	     (unsigned long long)st.sbi_counts[2], (unsigned long long)st.sbi_counts[3],
	     (unsigned long long)st.sbi_counts[4], (unsigned long long)st.sbi_counts[5],
	     (unsigned long long)st.sbi_counts[6], (unsigned long long)st.sbi_counts[7],
	     (unsigned long long)st.hsm_starts, (unsigned long long)st.ipis_sent,
	     (unsigned long long)st.rfences, (unsigned long long)st.dbcn_bytes);
	hlog("hyp: stats: %s\n", buf);
	hlog("hyp: leaves at most: 4K=%llu 2M=%llu 1G=%llu; faults %llu (fast %llu), zapped "
	     "leaves %llu\n",
	     (unsigned long long)st.max_leaves[1], (unsigned long long)st.max_leaves[2],
	     (unsigned long long)st.max_leaves[3], (unsigned long long)s.faults,
	     (unsigned long long)s.faults_fast, (unsigned long long)s.zapped_leaves);
	hlog("hyp: flushes: full %llu, ranged %llu; env hooks (SBI remote HFENCE.GVMA%s): vm %u, "
	     "range %u, errors %u; kicks %u\n",
	     (unsigned long long)s.flushes, (unsigned long long)s.flushes_range,
#ifdef BREAK_FLUSH
	     ", skipped: BREAK_FLUSH",
#else
	     "",
#endif
	     hw.hook_vm, hw.hook_range, hw.rfence_errors, hw.kicks);
	hlog("hyp: moves: %u blocks of 2 MiB (%u while the workload ran, %u after the migration)\n",
	     st.moves, st.moves_during_workload, st.moves_after_mig);
	hlog("hyp: migration: %s, %u rounds, %llu pages copied (first round %llu, last %llu), "
	     "%llu differ, downtime %llu us; dirty stats: marked %llu, fast fixes %llu, reaped "
	     "%llu, split %llu\n",
	     opt.mig == MIG_NONE ? "off" :
	     st.mig_hw		 ? "hardware dirty bits" :
				   "write protection",
	     st.mig_rounds, (unsigned long long)st.mig_pages,
	     (unsigned long long)st.mig_first_round_pages, (unsigned long long)st.mig_final_pages,
	     (unsigned long long)st.mig_mismatch, (unsigned long long)st.mig_downtime / 10,
	     (unsigned long long)ds.marked, (unsigned long long)ds.fast_fixed,
	     (unsigned long long)ds.reaped, (unsigned long long)ds.split_leaves);
	hlog("hyp: RCU: %llu grace periods; pool high water %lu bytes\n",
	     (unsigned long long)__atomic_load_n(&fs.gp_seq, __ATOMIC_RELAXED),
	     (unsigned long)pool.high_water);

#define CHECK(cond, c, what)                                                \
	do {                                                                \
		bool ok_ = (cond);                                          \
		hlog("hyp: check %-56s %s\n", what, ok_ ? "ok" : "FAILED"); \
		if (!ok_ && code == EXIT_PASS)                              \
			code = (c);                                         \
	} while (0)
	/* First: a stale copy is the migration's failure even when the guest
	 * then fails too (it runs on the copy). */
	if (opt.mig != MIG_NONE)
		CHECK(st.mig_done && st.mig_mismatch == 0, EXIT_MIG,
		      "migration: both copies identical before the switch");
	CHECK(st.first_exit_ok, EXIT_GUEST, "first exit: fetch fault at the Image's entry");
	CHECK(st.booted && st.cpus_seen == opt.smp, EXIT_GUEST,
	      "Linux ran the test init on every hart");
	CHECK(st.reset_type == 0 && !st.panic, EXIT_GUEST, "powered off (SBI SRST), no panic");
	if (!opt.shell)
		CHECK(st.memcheck_ok && !st.memcheck_fail, EXIT_GUEST,
		      "the guest's checksums held (MEMCHECK-OK)");
	if (opt.moves)
		CHECK(st.moves >= opt.moves && st.moves_during_workload >= opt.moves, EXIT_MOVES,
		      "RAM blocks moved while the workload ran");
	if (opt.mig != MIG_NONE) {
		CHECK(st.mig_done && st.mig_rounds >= 2, EXIT_MIG,
		      "migration: pre-copy rounds done");
		CHECK(st.rounds_after_mig >= 1, EXIT_MIG,
		      "migration: the workload went on after the switch");
		CHECK(st.mig_hw == (opt.mig == MIG_HW), EXIT_MIG,
		      "migration: dirty state as asked");
	}
	CHECK(hw.rfence_errors == 0, EXIT_LIB, "SBI remote HFENCE.GVMA accepted");
	CHECK(!kvm_is_bugged(kvm) && s.refused_changes == 0, EXIT_LIB, "VM not bugged");
#undef CHECK
	/* A failed run keeps its tables for finish() (keep_tables). */
	if (code != EXIT_PASS)
		finish(code);
	kvm_destroy_vm(kvm);
	vm_destroyed = true;
	hlog("hyp: VM destroyed; pool bytes in use %lu; %llu exits in all\n",
	     (unsigned long)pool.in_use, (unsigned long long)t.exits);
	if (pool.in_use && code == EXIT_PASS)
		code = EXIT_LIB;
	finish(code);
}

/* ---- setup ------------------------------------------------------------------ */

void hyp_secondary(uint64_t hartid)
{
	while (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE))
		;
	if (hartid >= opt.smp) /* smp=1: this hart stays out of the way */
		for (;;)
			__asm__ volatile("wfi");
	hart_init();
	vcpu_loop((unsigned)hartid);
}

void hyp_main(uint64_t hartid, const uint8_t *host_fdt);
void hyp_main(uint64_t hartid, const uint8_t *host_fdt)
{
	struct kvm_vm_params p = { .fmt = S2_FMT_RISCV_G,
				   .vmid = VM_VMID,
				   .fmt_flags = VM_FMT_FLAGS };
	struct kvm *k;
	struct sbiret sr;
	const uint8_t *img = (const uint8_t *)(uintptr_t)(H_A + (G_IMAGE - G_RAM));
	const uint8_t *ird = (const uint8_t *)(uintptr_t)(H_A + (G_INITRD - G_RAM));
	int r;

	boot_hart = hartid;
	parse_options(host_bootargs(host_fdt));
	hlog("hyp: s2mmu riscv64-linux example, HS-mode on hart %lu; gpa_bits %u, %u vcpus, "
	     "migration %s%s, %u moves before it\n",
	     hartid, opt.gpa_bits, opt.smp,
	     opt.mig == MIG_NONE ? "off" :
	     opt.mig == MIG_HW	 ? "by hardware dirty bits" :
				   "by write protection",
	     opt.manual ? " (manual protect)" : "", opt.moves);
	if (hartid >= NHARTS) {
		hlog("hyp: booted on hart %lu: run with -smp 2\n", hartid);
		finish(EXIT_TRAP);
	}
	if (img[0x38] != 'R' || img[0x39] != 'S' || img[0x3a] != 'C' || img[0x3b] != 5 ||
	    ird[0] != 0x1f || ird[1] != 0x8b || !opt.initrd) {
		hlog("hyp: no kernel Image at hpa 0x%llx or no gzip initramfs at hpa 0x%llx "
		     "(initrd=%llu): see run.sh\n",
		     H_A + (G_IMAGE - G_RAM), H_A + (G_INITRD - G_RAM),
		     (unsigned long long)opt.initrd);
		finish(EXIT_TRAP);
	}
	for (uint64_t i = 0; i < NBLK; i++) {
		blk_a[i] = H_A + i * BLK;
		blk_b[i] = H_B + i * BLK;
	}
	for (unsigned i = 0; i < NSPARE; i++)
		spare[nspare++] = H_SPARE + i * BLK;
	ksnprintf(guest_bootargs, sizeof(guest_bootargs),
		  "console=ttyS0 earlycon=sbi panic=-1 lxrounds=%u%s", opt.rounds,
		  opt.shell ? " lxshell" : "");
	build_dtb(H_A + (G_DTB - G_RAM));

	s2_pool_init(&pool, (void *)(uintptr_t)H_POOL, H_POOL, H_POOL_SIZE);
	s2_freestanding_init(&fs, &pool);
	r = s2_freestanding_smp(&fs, rcu_cpus, NHARTS, env_this_cpu);
	if (r)
		lib_fail("s2_freestanding_smp", r);
	fs.ops.gfn_to_pfn = env_gfn_to_pfn;
	fs.ops.tlb_flush_vm = env_tlb_flush_vm;
	fs.ops.tlb_flush_range = env_tlb_flush_range;
	fs.ops.tlb_hooks_broadcast = true;
	fs.ops.kick = env_kick;
	fs.ops.log = env_log;
	p.env = &fs.env;
	p.gpa_bits = opt.gpa_bits;
	s2_fs_rcu_online(&fs, (unsigned)hartid);
	r = kvm_create_vm(&p, &k);
	if (r)
		lib_fail("kvm_create_vm", r);
	kvm = k;
	for (unsigned h = 0; h < opt.smp; h++) {
		r = kvm_vcpu_create(k, h, &vc[h].v);
		if (r)
			lib_fail("kvm_vcpu_create", r);
		vc[h].hsm = HSM_STOPPED;
	}
	{
		struct kvm_memory_slot s = { .id = 0,
					     .base_gfn = gpa_to_gfn(G_RAM),
					     .npages = NPAGES,
					     .userspace_addr = HVA_A };

		r = kvm_set_memslot(k, &s);
		if (r)
			lib_fail("kvm_set_memslot", r);
	}
	hlog("hyp: %s, %u levels (Sv%ux4), hardware A/D; guest RAM 128 MiB at gpa 0x%llx, "
	     "kernel %s\n",
	     s2_fmt_name(kvm_fmt(k)), kvm_mmu_levels(k), 39 + 9 * (kvm_mmu_levels(k) - 3), G_RAM,
	     "Image at gpa 0x80200000");
	s2_fs_rcu_offline(&fs, (unsigned)hartid);

	/* The boot vcpu starts at the Image with a0 = hart id, a1 = the DTB. */
	vc[hartid].start_pc = G_IMAGE;
	vc[hartid].start_arg = G_DTB;
	vc[hartid].hsm = HSM_START_PENDING;
	wd_init(&wd, csr_read(time), 2 * TICK);
	__atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
	{
		sr = sbi_call(SBI_EXT_HSM, 0, (long)(hartid ^ 1), (long)_start_secondary, 0, 0, 0);
		if (sr.error == SBI_ERR_ALREADY_AVAILABLE)
			__atomic_store_n(&rv_park_release, 1, __ATOMIC_RELEASE);
		else if (sr.error) {
			hlog("hyp: cannot start hart %lu (SBI error %ld): run with -smp 2\n",
			     hartid ^ 1, sr.error);
			finish(EXIT_TRAP);
		}
	}
	hart_init();
	vcpu_loop((unsigned)hartid);
}
