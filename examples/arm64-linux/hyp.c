// SPDX-License-Identifier: MIT
/*
 * arm64 Linux example hypervisor on s2mmu: Debian's unmodified arm64 kernel
 * at EL1 under a thin EL2 hypervisor on QEMU virt (virtualization=on,
 * gic-version=3), one vcpu per physical CPU, 2 CPUs.
 *
 * Stage 2 starts empty: every RAM page the guest touches is mapped by
 * kvm_tdp_page_fault() from the abort's IPA. The GIC distributor, the
 * redistributors' RD frames and the PL011 are device memslots (passed
 * through, identity); the redistributors' SGI frames have no memslot, so the
 * guest's accesses there exit and are forwarded, less the two interrupts the
 * hypervisor keeps for itself (its timer, PPI 26, and its kick, SGI 15).
 * Interrupts are routed to EL2 (HCR_EL2.IMO/FMO): the hypervisor acknowledges
 * each (EOImode 1: priority drop only) and injects it through a GICv3 list
 * register with HW = 1, so the guest's EOI deactivates the physical one; SGIs
 * are deactivated here and injected without HW; the guest's ICC_SGI1R_EL1
 * writes trap and are sent physically (the guest's MPIDRs are the real ones).
 * PSCI is answered over HVC (and trapped SMC): CPU_ON starts the second vcpu
 * on CPU 1, SYSTEM_OFF ends the run with the report.
 *
 * The host side, on CPU 0's EL2 timer (every TICK_MS while the guest runs):
 *  - memory moves: guest RAM is backed by 2 MiB host blocks; one at a time,
 *    invalidate_range_start over the block's hva, copy it to a free block,
 *    poison the old one, repoint the hva, invalidate_range_end;
 *  - a live migration through the dirty log: logging on, a full copy to
 *    region B in chunks, rounds that copy what the bitmap (or the rings, or
 *    the manual-protect bitmap) names while the guest writes, then both vcpus
 *    stopped, the last dirty pages copied, region A compared with B
 *    (must be exact), the memslot switched to B, A poisoned, vcpus resumed;
 *  - a watchdog: no progress from the guest for WATCHDOG_S seconds (of a
 *    clock that leaves out the hypervisor's own steps, and longer if the
 *    guest's pace is slow: ../common/watchdog.h) is a FAIL line and the
 *    run's end, not a hang.
 * The guest's test init checksums what it writes while that goes on and
 * reports through the control registers (G_CTL, busybox devmem).
 *
 * Both CPUs call the library, so RCU is the freestanding quiescent-state one
 * (s2_freestanding_smp): each CPU is offline while its guest runs or while it
 * waits, and reports a quiescent state at the top of its loop.
 *
 * QEMU's exit status (semihosting SYS_EXIT) is the verdict: enum exit_code.
 */
#include <stddef.h>
#include <stdint.h>

#include "../arm64-common/a64.h"
#include "../common/klib.h"
#include "../common/tables.h"
#include "../common/watchdog.h"
#include "fdt.h"
#include "layout.h"
#include "s2mmu/arm64-s2.h"
#include "s2mmu/dirty.h"
#include "s2mmu/env-freestanding.h"
#include "s2mmu/notifier.h"
#include "s2mmu/s2mmu.h"

enum exit_code {
	EXIT_PASS = 0,
	EXIT_GUEST = 1,	    /* the guest's checksums failed */
	EXIT_HANG = 2,	    /* the watchdog: the guest stopped making progress */
	EXIT_CHECK = 3,	    /* another check failed */
	EXIT_TRAP = 4,	    /* an exit the hypervisor cannot handle */
	EXIT_LIB = 5,	    /* a library call failed */
	EXIT_MIGRATE = 6,   /* region B differs from A at the switch */
	EXIT_PANIC = 7,	    /* the guest reset itself (panic=-1) */
	EXIT_UNOFFERED = 8, /* the stage-2 configuration asked for is not offered */
};

#define TICK_MS 10
#define WATCHDOG_S 20
#define WATCHDOG_BOOT_S 120 /* until the test init first writes: the boot itself */
#define MOVE_EVERY_MS 20
#define MIG_CHUNK (U64(16) << 20) /* bytes of the first full copy per tick */
#define MIG_MAX_ROUNDS 6	  /* rounds after the full copy, then stop */
#define MIG_FEW_PAGES 64	  /* a round this small ends the pre-copy */
#define RAM_SLOT 0
#define RAM_PAGES (G_RAM_SIZE >> 12)
#define RAM_BLOCKS (G_RAM_SIZE / MOVE_BLOCK)
#define INTID_KICK 15	   /* SGI: make the CPU exit */
#define INTID_HYP_TIMER 26 /* CNTHP */
#define HYP_INTIDS ((1u << INTID_KICK) | (1u << INTID_HYP_TIMER))

/* ---- hardware ------------------------------------------------------------ */

/* GICv3 CPU interface and list registers by encoding (any assembler). */
#define ICC_IAR1_EL1 S3_0_C12_C12_0
#define ICC_EOIR1_EL1 S3_0_C12_C12_1
#define ICC_DIR_EL1 S3_0_C12_C11_1
#define ICC_SGI1R_EL1 S3_0_C12_C11_5
#define ICC_PMR_EL1 S3_0_C4_C6_0
#define ICC_CTLR_EL1 S3_0_C12_C12_4
#define ICC_IGRPEN1_EL1 S3_0_C12_C12_7
#define ICC_SRE_EL2 S3_4_C12_C9_5
#define ICH_HCR_EL2 S3_4_C12_C11_0
#define ICH_VTR_EL2 S3_4_C12_C11_1
#define ICH_ELRSR_EL2 S3_4_C12_C11_5
#define ICH_LR0_EL2 S3_4_C12_C12_0
#define ICH_LR1_EL2 S3_4_C12_C12_1
#define ICH_LR2_EL2 S3_4_C12_C12_2
#define ICH_LR3_EL2 S3_4_C12_C12_3
#define sysreg_read_s(r) sysreg_read(r)
#define sysreg_write_s(r, v) sysreg_write(r, v)

#define CPTR_EL2_NO_TRAPS 0x22ffull /* RES1 bits; TFP, TZ, TSM, TTA clear */

/* EC 0x18 ISS without Rt and direction: ICC_SGI1R_EL1. */
#define ISS_SYSREG_MASK 0x3ffc1eull
#define ISS_ICC_SGI1R 0x3a3016ull

static unsigned this_cpu(void)
{
	return sysreg_read(mpidr_el1) & 0xff;
}

static uint64_t now_ticks(void)
{
	isb();
	return sysreg_read(cntpct_el0);
}

static uint64_t ms_ticks(uint64_t ms)
{
	return sysreg_read(cntfrq_el0) * ms / 1000;
}

/* ---- console and the end of the run ------------------------------------- */

static uint32_t print_lock;

static void lock(uint32_t *l)
{
	while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
		while (__atomic_load_n(l, __ATOMIC_RELAXED))
			__asm__ volatile("yield");
}

static void unlock(uint32_t *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

#define hlog(...)                     \
	do {                          \
		lock(&print_lock);    \
		kprintf(__VA_ARGS__); \
		unlock(&print_lock);  \
	} while (0)

static void keep_tables(void);

static __attribute__((noreturn)) void finish(int code)
{
	static uint32_t finishing;

	/* One verdict, even if both CPUs get here. */
	if (__atomic_exchange_n(&finishing, 1, __ATOMIC_ACQ_REL))
		for (;;)
			__asm__ volatile("wfe");
	hlog("hyp: %s (exit code %d)\n", code ? "FAIL" : "PASS", code);
	if (code)
		keep_tables();
	a64_semihost_exit(code);
}

static __attribute__((noreturn)) void fail(int code, const char *what)
{
	hlog("hyp: FAIL: %s\n", what);
	finish(code);
}

void a64_hyp_trap(uint64_t vector)
{
	kprintf("hyp: exception at EL2 on CPU %u: vector %lu ESR_EL2 0x%lx ELR_EL2 0x%lx "
		"FAR_EL2 0x%lx\n",
		this_cpu(), vector, sysreg_read(esr_el2), sysreg_read(elr_el2),
		sysreg_read(far_el2));
	finish(EXIT_TRAP);
}

/* ---- per-CPU state -------------------------------------------------------- */

enum vcpu_state { VCPU_OFF = 0, VCPU_ON };

/* The FP/SIMD registers, saved only to check them (fpsimd_check). */
struct fpsimd {
	uint64_t q[64]; /* q0..q31, low and high halves */
	uint64_t fpsr, fpcr;
} __attribute__((aligned(16)));

struct pcpu {
	struct a64_regs regs;
	struct kvm_vcpu *vcpu;
	unsigned id;
	uint32_t state; /* enum vcpu_state */
	uint32_t paused;
	uint32_t irq_queue[16]; /* acknowledged, no free list register yet */
	unsigned nq;
	/* exits */
	unsigned long exits, hvc, smc, sysreg, sgi_sent, irq_inj, irq_timer, irq_kick, spurious;
	unsigned long dabt[4], iabt[4], fixed, fspur, retry, mmio_ctl, mmio_sgi, s1ptw;
	unsigned long lr_full, flush_actions, loads;
	/* the guest's FP/SIMD registers at its last exit (fpsimd_check) */
	struct fpsimd fp_exit;
	bool fp_saved;
};

static struct pcpu cpus[NR_CPUS];
static unsigned nr_lrs;

static void fill_words(uint64_t dst, uint64_t bytes, uint64_t v);

/* ---- the environment ----------------------------------------------------- */

static struct s2_page_pool pool;
static struct s2_freestanding fs;
static struct s2_fs_cpu rcu_cpus[NR_CPUS];
static struct kvm *kvm;
static unsigned vm_fmt_flags; /* its S2_FMTF_*, for the tables line */
static bool vm_destroyed;
static uint64_t info[INFO_WORDS];
static unsigned granule = 4096;

/* Region A's blocks: the host block behind each 2 MiB of the slot's hva. */
static uint64_t blk_hpa[RAM_BLOCKS];
static uint64_t spare[SPARE_BLOCKS];
static unsigned nspare;

static struct {
	unsigned long kicks, rcu_syncs, hook_flush_vm, hook_flush_range;
} hw;

/*
 * Tables larger than the pool's largest class (64 KiB): the 256 KiB root of
 * a 16K-granule VM with a 40-bit IPA (16 concatenated tables), and the one a
 * fast zap may make beside it. Slots of 256 KiB, aligned to it, above the
 * pool; anything smaller goes to the pool.
 */
#define BIG_SLOT (U64(256) << 10)
#define BIG_SLOTS 4
#define H_BIG (H_POOL + H_POOL_SIZE)
static uint32_t big_used[BIG_SLOTS];
static void *(*pool_alloc_table)(void *ctx, size_t bytes, hpa_t *pa);
static void (*pool_free_table)(void *ctx, void *va, hpa_t pa, size_t bytes);

static void *env_alloc_table(void *ctx, size_t bytes, hpa_t *pa)
{
	if (bytes <= 65536)
		return pool_alloc_table(ctx, bytes, pa);
	if (bytes > BIG_SLOT)
		return NULL;
	for (unsigned i = 0; i < BIG_SLOTS; i++)
		if (!__atomic_exchange_n(&big_used[i], 1, __ATOMIC_ACQUIRE)) {
			*pa = H_BIG + i * BIG_SLOT;
			fill_words(*pa, bytes, 0);
			return (void *)(uintptr_t)*pa;
		}
	return NULL;
}

static void env_free_table(void *ctx, void *va, hpa_t pa, size_t bytes)
{
	if (bytes <= 65536) {
		pool_free_table(ctx, va, pa, bytes);
		return;
	}
	__atomic_store_n(&big_used[(pa - H_BIG) / BIG_SLOT], 0, __ATOMIC_RELEASE);
}

/*
 * A failed run says where its tables are (the pool and the big slots above
 * it: every table page, no guest RAM) and keeps them KEEP_TABLES_S seconds
 * for run.sh, which saves them with QEMU's pmemsave and quits QEMU
 * (../common/keep-tables.sh); unwatched, the run then ends as before.
 */
#define KEEP_TABLES_S 10

static void keep_tables(void)
{
	char line[192];
	uint64_t t0;

	if (!kvm || vm_destroyed)
		return;
	hlog("%s", tables_line(line, sizeof(line), "hyp", kvm, vm_fmt_flags, granule, H_POOL,
			       H_BIG + BIG_SLOTS * BIG_SLOT - H_POOL));
	t0 = now_ticks();
	while (now_ticks() - t0 < ms_ticks(KEEP_TABLES_S * 1000))
		;
}

static unsigned env_this_cpu(void *ctx)
{
	(void)ctx;
	return this_cpu();
}

static void (*fs_synchronize_rcu)(void *ctx);

static void env_synchronize_rcu(void *ctx)
{
	__atomic_fetch_add(&hw.rcu_syncs, 1, __ATOMIC_RELAXED);
	fs_synchronize_rcu(ctx);
}

/* Largest leaf level a 2 MiB block of backing allows for this granule. */
static int move_block_level(void)
{
	return granule == 4096 ? 2 : 1;
}

static int env_gfn_to_pfn(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, bool write,
			  struct s2_pfn_info *out)
{
	hva_t hva = slot->userspace_addr + ((gfn - slot->base_gfn) << 12);
	uint64_t hpa;

	(void)ctx;
	(void)write;
	out->writable = true;
	out->memtype = S2_MT_WB;
	out->block_stable = true;
	if (hva >= HVA_A && hva < HVA_A + G_RAM_SIZE) {
		uint64_t off = hva - HVA_A;

		hpa = __atomic_load_n(&blk_hpa[off / MOVE_BLOCK], __ATOMIC_ACQUIRE) +
		      off % MOVE_BLOCK;
		out->host_level = move_block_level();
	} else if (hva >= HVA_B && hva < HVA_B + G_RAM_SIZE) {
		hpa = hva; /* never moved */
		out->host_level = 3;
	} else if (hva < 0x40000000) {
		hpa = hva; /* devices: identity */
		out->host_level = 1;
		out->memtype = S2_MT_DEVICE;
	} else {
		return -EFAULT;
	}
	out->pfn = hpa >> 12;
	return 0;
}

/* Called only by the break-flush image's format instance: counted. */
static void env_tlb_flush_vm(void *ctx, struct kvm *k)
{
	(void)ctx;
	(void)k;
	__atomic_fetch_add(&hw.hook_flush_vm, 1, __ATOMIC_RELAXED);
}

static void env_tlb_flush_range(void *ctx, struct kvm *k, gpa_t gpa, uint64_t size)
{
	(void)ctx;
	(void)k;
	(void)gpa;
	(void)size;
	__atomic_fetch_add(&hw.hook_flush_range, 1, __ATOMIC_RELAXED);
}

/* SGI 15 to @cpu's physical CPU (Aff0 = cpu, the other affinities 0). */
static void send_kick(unsigned cpu)
{
	sysreg_write_s(ICC_SGI1R_EL1, ((uint64_t)INTID_KICK << 24) | (1ull << cpu));
	isb();
}

static void env_kick(void *ctx, struct kvm_vcpu *vcpu)
{
	(void)ctx;
	__atomic_fetch_add(&hw.kicks, 1, __ATOMIC_RELAXED);
	send_kick(kvm_vcpu_id(vcpu));
}

static void env_relax(void *ctx)
{
	(void)ctx;
	__asm__ volatile("yield");
}

static void env_log(void *ctx, enum s2_log_level level, const char *msg)
{
	(void)ctx;
	hlog("s2mmu[%d]: %s\n", (int)level, msg);
}

static __attribute__((noreturn)) void lib_fail(const char *what, long r)
{
	hlog("hyp: %s failed: %ld\n", what, r);
	finish(EXIT_LIB);
}

/* ---- the run's state ---------------------------------------------------- */

enum mig_state { MIG_OFF, MIG_WAIT, MIG_FULL, MIG_ROUNDS, MIG_DONE };

static struct {
	uint32_t phase, verdict_set, verdict, rounds_seen;
	uint64_t next_move;
	bool first_exit_seen, first_exit_ok;
	unsigned cpu_on;
	/* moves */
	unsigned moves, moves_want, move_next;
	unsigned long move_leaves, move_flushes;
	/* migration */
	enum mig_state mig;
	uint64_t mig_full_off;
	unsigned mig_rounds;
	unsigned long mig_pages, mig_bytes_full, mig_last_round_pages, mig_final_pages;
	long mig_mismatch; /* pages of A differing from B at the switch, -1 before */
	bool mig_switched;
	unsigned long mig_dropped;
	uint64_t mig_stop_ticks;
	uint32_t hyp_done;
	uint64_t max_leaves[6];
	/* for a checksum failure's report (memcheck_diag) */
	uint64_t phase_t0;			   /* when the workload started */
	uint32_t diag_bad[2], diag_good[2];	   /* CTL_DIAG_* halves */
	uint64_t mig_round_ms[MIG_MAX_ROUNDS + 2]; /* ms after phase_t0 */
	uint64_t mig_start_ms, mig_full_ms, mig_switch_ms;
} st;

/* Every move, for a checksum failure's report: block, old and new hpa, when. */
#define MOVE_HIST 1024
static struct move_rec {
	uint32_t b;
	uint32_t ms; /* after the workload started */
	uint64_t old, new;
} move_hist[MOVE_HIST];

static uint64_t phase_ms(void)
{
	return (now_ticks() - st.phase_t0) * 1000 / sysreg_read(cntfrq_el0);
}

static struct wd wd; /* the watchdog (CPU 0's ticks, progress from either CPU) */

static uint32_t pause_req; /* a CPU wants every other vcpu out of the guest */

/* ---- GICv3 ---------------------------------------------------------------- */

static void gic_cpu_init(unsigned cpu)
{
	uintptr_t rd = G_GICR + cpu * GICR_STRIDE, sgi = rd + 0x10000;

	sysreg_write_s(ICC_SRE_EL2, 0xf); /* SRE, DFB, DIB, Enable (EL1 may use SRE) */
	isb();
	sysreg_write_s(ICC_PMR_EL1, 0xff);
	sysreg_write_s(ICC_CTLR_EL1, 1u << 1); /* EOImode: EOIR drops priority only */
	sysreg_write_s(ICC_IGRPEN1_EL1, 1);
	sysreg_write_s(ICH_HCR_EL2, 1); /* En: the virtual CPU interface */
	isb();
	/* Wake the redistributor (GICR_WAKER.ProcessorSleep) and give the
	 * hypervisor's two interrupts group 1, enabled. */
	mmio_w32(rd + 0x14, mmio_r32(rd + 0x14) & ~2u);
	while (mmio_r32(rd + 0x14) & 4u)
		;
	mmio_w32(sgi + 0x80, mmio_r32(sgi + 0x80) | HYP_INTIDS);
	mmio_w32(sgi + 0x100, HYP_INTIDS);
	nr_lrs = (sysreg_read_s(ICH_VTR_EL2) & 0x1f) + 1;
	if (nr_lrs > 4)
		nr_lrs = 4;
}

static void gicd_init(void)
{
	/* GICD_CTLR: ARE_NS | EnableGrp1NS; the guest sets it up again. */
	mmio_w32(G_GICD, (1u << 4) | (1u << 1));
}

static uint64_t lr_read(unsigned n)
{
	switch (n) {
	case 0: return sysreg_read_s(ICH_LR0_EL2);
	case 1: return sysreg_read_s(ICH_LR1_EL2);
	case 2: return sysreg_read_s(ICH_LR2_EL2);
	default: return sysreg_read_s(ICH_LR3_EL2);
	}
}

static void lr_write(unsigned n, uint64_t v)
{
	switch (n) {
	case 0: sysreg_write_s(ICH_LR0_EL2, v); break;
	case 1: sysreg_write_s(ICH_LR1_EL2, v); break;
	case 2: sysreg_write_s(ICH_LR2_EL2, v); break;
	default: sysreg_write_s(ICH_LR3_EL2, v); break;
	}
}

#define LR_PENDING (1ull << 62)
#define LR_HW (1ull << 61)
#define LR_GROUP1 (1ull << 60)
#define LR_PRIO(p) ((uint64_t)(p) << 48)

/* Put @intid in a free list register; false when none is free. */
static bool lr_inject(uint32_t intid)
{
	uint64_t elrsr = sysreg_read_s(ICH_ELRSR_EL2);
	uint64_t v = LR_PENDING | LR_GROUP1 | LR_PRIO(0xa0) | intid;

	/* An SGI already pending in a register: one delivery covers both. */
	for (unsigned n = 0; n < nr_lrs; n++)
		if (!(elrsr & (1u << n)) && (lr_read(n) & 0xffffffffu) == intid &&
		    (lr_read(n) >> 62) == 1)
			return true;
	if (intid >= 16)
		v |= LR_HW | ((uint64_t)intid << 32);
	for (unsigned n = 0; n < nr_lrs; n++)
		if (elrsr & (1u << n)) {
			lr_write(n, v);
			return true;
		}
	return false;
}

static void lr_flush_queue(struct pcpu *c)
{
	unsigned k = 0;

	for (unsigned i = 0; i < c->nq; i++)
		if (!lr_inject(c->irq_queue[i]))
			c->irq_queue[k++] = c->irq_queue[i];
	c->nq = k;
}

static void tick(struct pcpu *c);

static void irq_exit(struct pcpu *c)
{
	uint32_t iar = (uint32_t)sysreg_read_s(ICC_IAR1_EL1), intid = iar & 0xffffff;

	if (intid >= 1020) {
		c->spurious++;
		return;
	}
	sysreg_write_s(ICC_EOIR1_EL1, iar); /* priority drop */
	if (intid < 16 || intid == INTID_HYP_TIMER) {
		/* SGIs and the hypervisor's timer are deactivated here. */
		sysreg_write_s(ICC_DIR_EL1, iar);
		isb();
	}
	if (intid == INTID_HYP_TIMER) {
		c->irq_timer++;
		sysreg_write(cnthp_ctl_el2, 0);
		isb();
		tick(c);
		return;
	}
	if (intid == INTID_KICK) {
		c->irq_kick++;
		return;
	}
	c->irq_inj++;
	if (!lr_inject(intid)) {
		c->lr_full++;
		if (c->nq < sizeof(c->irq_queue) / sizeof(c->irq_queue[0]))
			c->irq_queue[c->nq++] = intid;
		else
			fail(EXIT_TRAP, "interrupt queue overflow");
	}
}

static void timer_arm(uint64_t ms)
{
	sysreg_write(cnthp_tval_el2, ms_ticks(ms));
	sysreg_write(cnthp_ctl_el2, 1);
	isb();
}

/* ---- memslots, copies ---------------------------------------------------- */

static void add_slot(unsigned id, gpa_t gpa, uint64_t size, uint64_t hva, unsigned flags)
{
	struct kvm_memory_slot s = { .id = id,
				     .base_gfn = gpa_to_gfn(gpa),
				     .npages = size >> 12,
				     .userspace_addr = hva,
				     .flags = flags };
	int r = kvm_set_memslot(kvm, &s);

	if (r)
		lib_fail("kvm_set_memslot", r);
}

/* Host address of region A's byte at @off (through the block table). */
static uint64_t a_hpa(uint64_t off)
{
	return blk_hpa[off / MOVE_BLOCK] + off % MOVE_BLOCK;
}

static void copy_words(uint64_t dst, uint64_t src, uint64_t bytes)
{
	volatile uint64_t *d = (volatile uint64_t *)(uintptr_t)dst;
	const volatile uint64_t *s = (const volatile uint64_t *)(uintptr_t)src;

	for (uint64_t i = 0; i < bytes / 8; i += 4) {
		uint64_t a = s[i], b = s[i + 1], e = s[i + 2], f = s[i + 3];

		d[i] = a;
		d[i + 1] = b;
		d[i + 2] = e;
		d[i + 3] = f;
	}
}

static bool same_words(uint64_t x, uint64_t y, uint64_t bytes)
{
	const volatile uint64_t *a = (const volatile uint64_t *)(uintptr_t)x;
	const volatile uint64_t *b = (const volatile uint64_t *)(uintptr_t)y;
	uint64_t diff = 0;

	for (uint64_t i = 0; i < bytes / 8; i += 4)
		diff |= (a[i] ^ b[i]) | (a[i + 1] ^ b[i + 1]) | (a[i + 2] ^ b[i + 2]) |
			(a[i + 3] ^ b[i + 3]);
	return diff == 0;
}

static void fill_words(uint64_t dst, uint64_t bytes, uint64_t v)
{
	volatile uint64_t *d = (volatile uint64_t *)(uintptr_t)dst;

	for (uint64_t i = 0; i < bytes / 8; i++)
		d[i] = v;
}

static void track_leaves(void)
{
	struct kvm_mmu_stats s;

	if (kvm_get_stats(kvm, &s))
		return;
	for (int l = 1; l <= 5; l++)
		if (s.cur_leaves[l] > st.max_leaves[l])
			st.max_leaves[l] = s.cur_leaves[l];
}

/* ---- memory moves --------------------------------------------------------- */

#define POISON U64(0xdeadbeefdeadbeef)

/*
 * Move block @b of region A to a spare host block, the way a host's
 * migration or compaction would: the notifier zaps and flushes every leaf
 * over the block's hva before anything is copied, the old block is poisoned
 * (a guest still reading it through a stale TLB entry sees garbage, one
 * still writing it loses the write), and only then does the hva point at
 * the copy; faults in between retry until invalidate_range_end.
 */
static void move_block(unsigned b)
{
	hva_t hva = HVA_A + (uint64_t)b * MOVE_BLOCK;
	uint64_t old = blk_hpa[b], new;
	struct kvm_mmu_stats s0, s1;
	int r;

	if (!nspare)
		fail(EXIT_CHECK, "no spare host block to move to");
	new = spare[--nspare];
	kvm_get_stats(kvm, &s0);
	r = kvm_mmu_notifier_invalidate_range_start(kvm, hva, hva + MOVE_BLOCK, true);
	if (r)
		lib_fail("kvm_mmu_notifier_invalidate_range_start", r);
	copy_words(new, old, MOVE_BLOCK);
	fill_words(old, MOVE_BLOCK, POISON);
	__atomic_store_n(&blk_hpa[b], new, __ATOMIC_RELEASE);
	r = kvm_mmu_notifier_invalidate_range_end(kvm, hva, hva + MOVE_BLOCK, true);
	if (r)
		lib_fail("kvm_mmu_notifier_invalidate_range_end", r);
	kvm_get_stats(kvm, &s1);
	spare[nspare++] = old;
	if (st.moves < MOVE_HIST)
		move_hist[st.moves] = (struct move_rec){
			.b = b, .ms = (uint32_t)phase_ms(), .old = old, .new = new
		};
	st.moves++;
	st.move_leaves += s1.zapped_leaves - s0.zapped_leaves;
	st.move_flushes += (s1.flushes + s1.flushes_range) - (s0.flushes + s0.flushes_range);
}

/* ---- pausing the other vcpus --------------------------------------------- */

/* A CPU that does not acknowledge within 60 s of the counter is stuck (in
 * the hypervisor, or never started): a FAIL line that says so, not a run
 * only the outer timeout ends (the RISC-V example's shutdown once waited
 * forever for a hart that came up after Linux's bring-up timeout). */
static void pause_others(unsigned self)
{
	__atomic_store_n(&pause_req, 1, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < NR_CPUS; i++) {
		uint64_t t0 = now_ticks();

		if (i == self)
			continue;
		send_kick(i);
		while (!__atomic_load_n(&cpus[i].paused, __ATOMIC_ACQUIRE)) {
			__asm__ volatile("yield");
			if (now_ticks() - t0 > ms_ticks(60000)) {
				hlog("hyp: CPU %u did not pause within 60 s (vcpu %s): stuck\n", i,
				     __atomic_load_n(&cpus[i].state, __ATOMIC_ACQUIRE) == VCPU_ON ?
					     "on" :
					     "off");
				finish(EXIT_HANG);
			}
		}
	}
}

static void resume_others(void)
{
	__atomic_store_n(&pause_req, 0, __ATOMIC_RELEASE);
}

/* Called by a CPU between guest entries or while it waits: offline. */
static void park_if_asked(struct pcpu *c, bool online)
{
	if (!__atomic_load_n(&pause_req, __ATOMIC_ACQUIRE))
		return;
	if (online)
		s2_fs_rcu_offline(&fs, c->id);
	__atomic_store_n(&c->paused, 1, __ATOMIC_RELEASE);
	while (__atomic_load_n(&pause_req, __ATOMIC_ACQUIRE))
		__asm__ volatile("yield");
	__atomic_store_n(&c->paused, 0, __ATOMIC_RELEASE);
	if (online)
		s2_fs_rcu_online(&fs, c->id);
}

/* ---- live migration through the dirty log -------------------------------- */

static uint64_t dirty[RAM_PAGES / 64];
static uint64_t dirty_tmp[RAM_PAGES / 64];
static struct kvm_dirty_gfn ring_out[512];

/*
 * A ring entry names a granule page by its first 4 KiB gfn
 * (docs/dirty-logging.md): with 16K or 64K the write may have hit any of its
 * 4 or 16 gfns, so every one is dirty.
 */
static void mark_granule_page(uint64_t off)
{
	for (uint64_t p = off; p < off + granule / 4096 && p < RAM_PAGES; p++)
		dirty[p / 64] |= 1ull << (p % 64);
}

/*
 * Bits set in @w with general registers only: __builtin_popcountll is a
 * call to libgcc's __popcountdi2 here, which uses d0/v0 and so changed the
 * guest's v0 in every migration round (check-no-fp.sh, fpsimd_check).
 */
static unsigned popcount64(uint64_t w)
{
	w = w - ((w >> 1) & 0x5555555555555555ull);
	w = (w & 0x3333333333333333ull) + ((w >> 2) & 0x3333333333333333ull);
	w = (w + (w >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (unsigned)((w * 0x0101010101010101ull) >> 56);
}

/* Collect the pages written since the last harvest into dirty[]. */
static long harvest(void)
{
	long r, n = 0;

	memset(dirty, 0, sizeof(dirty));
	if (info[INFO_FLAGS] & RUNF_RING) {
		for (unsigned i = 0; i < NR_CPUS; i++)
			while ((r = kvm_dirty_ring_harvest(cpus[i].vcpu, ring_out,
							   sizeof(ring_out) /
								   sizeof(ring_out[0]))) > 0)
				for (long k = 0; k < r; k++)
					if (ring_out[k].slot == RAM_SLOT)
						mark_granule_page(ring_out[k].offset);
		r = kvm_dirty_ring_reset(kvm);
		if (r < 0)
			lib_fail("kvm_dirty_ring_reset", r);
		/* Pushes a full ring sent to the bitmap. */
		r = kvm_get_dirty_log(kvm, RAM_SLOT, dirty_tmp);
		if (r < 0)
			lib_fail("kvm_get_dirty_log", r);
		for (unsigned i = 0; i < RAM_PAGES / 64; i++)
			dirty[i] |= dirty_tmp[i];
	} else {
		r = kvm_get_dirty_log(kvm, RAM_SLOT, dirty);
		if (r < 0)
			lib_fail("kvm_get_dirty_log", r);
		if (info[INFO_FLAGS] & RUNF_MANUAL) {
			r = kvm_clear_dirty_log(kvm, RAM_SLOT, 0, RAM_PAGES, dirty);
			if (r < 0)
				lib_fail("kvm_clear_dirty_log", r);
		}
	}
	for (unsigned i = 0; i < RAM_PAGES / 64; i++)
		n += popcount64(dirty[i]);
	return n;
}

/*
 * Copy the pages dirty[] names from A to B. The sabotaged build
 * (DROP_DIRTY) picks the first dirty page whose contents differ from B's
 * and never copies it, in this round or any later one: the comparison at
 * the switch must then fail.
 */
static unsigned long copy_dirty(void)
{
	static uint64_t dropped = ~0ull;
	unsigned long n = 0;

	for (uint64_t p = 0; p < RAM_PAGES; p++) {
		if (!(dirty[p / 64] & (1ull << (p % 64))))
			continue;
#ifdef DROP_DIRTY
		if (dropped == ~0ull && !same_words(a_hpa(p << 12), HVA_B + (p << 12), 4096)) {
			dropped = p;
			st.mig_dropped = 1;
			hlog("hyp: DROP_DIRTY build: dirty gfn 0x%lx is never copied\n",
			     gpa_to_gfn(G_RAM) + p);
		}
#endif
		if (p == dropped)
			continue;
		copy_words(HVA_B + (p << 12), a_hpa(p << 12), 4096);
		n++;
	}
	st.mig_pages += n;
	return n;
}

static void mig_start(void)
{
	int r;

	if (info[INFO_FLAGS] & RUNF_MANUAL) {
		r = kvm_dirty_log_set_caps(kvm,
					   kvm_dirty_log_caps(kvm) | KVM_DIRTY_LOG_MANUAL_PROTECT);
		if (r)
			lib_fail("kvm_dirty_log_set_caps", r);
	}
	r = kvm_set_memslot_flags(kvm, RAM_SLOT, KVM_MEM_LOG_DIRTY_PAGES);
	if (r)
		lib_fail("kvm_set_memslot_flags(LOG_DIRTY_PAGES)", r);
	hlog("hyp: migration: dirty logging on (%s, %s), full copy to region B\n",
	     (info[INFO_FLAGS] & RUNF_RING)   ? "rings" :
	     (info[INFO_FLAGS] & RUNF_MANUAL) ? "bitmap, manual protect" :
						"bitmap",
	     kvm_dirty_log_hw(kvm) ? "hardware dirty state (DBM)" : "write protection");
	st.mig = MIG_FULL;
	st.mig_full_off = 0;
	st.mig_start_ms = phase_ms();
}

/* Vcpus stopped: the last pages, the comparison, the switch to B. */
static void mig_finish(struct pcpu *c)
{
	uint64_t t0 = now_ticks(), t1, t2;
	long n;
	int r;

	pause_others(c->id);
	n = harvest();
	st.mig_final_pages = copy_dirty();
	t1 = now_ticks();
	st.mig_mismatch = 0;
	for (uint64_t off = 0; off < G_RAM_SIZE; off += 4096)
		if (!same_words(a_hpa(off), HVA_B + off, 4096))
			st.mig_mismatch++;
	t2 = now_ticks();
	hlog("hyp: migration: vcpus stopped, final round %ld dirty pages, %lu copied (%lu ms); "
	     "region A vs B: %ld pages differ (compared in %lu ms)\n",
	     n, st.mig_final_pages, (unsigned long)((t1 - t0) * 1000 / sysreg_read(cntfrq_el0)),
	     st.mig_mismatch, (unsigned long)((t2 - t1) * 1000 / sysreg_read(cntfrq_el0)));
	if (st.mig_mismatch) {
		resume_others();
		fail(EXIT_MIGRATE, "migration: the copy differs from the source at the switch");
	}
	r = kvm_delete_memslot(kvm, RAM_SLOT);
	if (r)
		lib_fail("kvm_delete_memslot", r);
	add_slot(RAM_SLOT, G_RAM, G_RAM_SIZE, HVA_B, 0);
	/* A word of poison every 512 bytes of A: a guest still using it
	 * reads garbage (a whole fill would cost as much as the compare). */
	for (uint64_t off = 0; off < G_RAM_SIZE; off += 512)
		*(volatile uint64_t *)(uintptr_t)a_hpa(off) = POISON;
	st.mig_switched = true;
	st.mig_switch_ms = phase_ms();
	st.mig = MIG_DONE;
	st.mig_stop_ticks = now_ticks() - t0;
	__atomic_store_n(&st.hyp_done, 1, __ATOMIC_RELEASE);
	hlog("hyp: migration: memslot switched to region B, region A poisoned; vcpus stopped "
	     "%lu ms\n",
	     (unsigned long)(st.mig_stop_ticks * 1000 / sysreg_read(cntfrq_el0)));
	resume_others();
}

static void mig_step(struct pcpu *c)
{
	long n;

	switch (st.mig) {
	case MIG_WAIT: mig_start(); break;
	case MIG_FULL: {
		uint64_t end = st.mig_full_off + MIG_CHUNK;

		for (; st.mig_full_off < end && st.mig_full_off < G_RAM_SIZE;
		     st.mig_full_off += MOVE_BLOCK)
			copy_words(HVA_B + st.mig_full_off, a_hpa(st.mig_full_off), MOVE_BLOCK);
		st.mig_bytes_full = st.mig_full_off;
		if (st.mig_full_off >= G_RAM_SIZE) {
			st.mig = MIG_ROUNDS;
			st.mig_full_ms = phase_ms();
		}
		break;
	}
	case MIG_ROUNDS:
		n = harvest();
		st.mig_last_round_pages = copy_dirty();
		st.mig_rounds++;
		if (st.mig_rounds < sizeof(st.mig_round_ms) / sizeof(st.mig_round_ms[0]))
			st.mig_round_ms[st.mig_rounds] = phase_ms();
		hlog("hyp: migration: round %u: %ld dirty pages copied\n", st.mig_rounds, n);
		if (st.mig_rounds >= MIG_MAX_ROUNDS || n < MIG_FEW_PAGES)
			mig_finish(c);
		break;
	default: break;
	}
}

/* ---- CPU 0's timer: moves, migration, watchdog ----------------------------- */

static void tick(struct pcpu *c)
{
	uint64_t t = now_ticks();

	uint64_t base = ms_ticks((st.phase ? WATCHDOG_S : WATCHDOG_BOOT_S) * 1000);

	wd_tick(&wd, t);
	if (!(info[INFO_FLAGS] & RUNF_INTERACTIVE) && wd_expired(&wd, base)) {
		hlog("hyp: watchdog: no progress from the guest for %lu s of guest time (limit %lu s: "
		     "at least %u s, %u times its longest silence; phase %u, %u rounds, %u moves)\n",
		     (unsigned long)(wd_silence(&wd) / ms_ticks(1000)),
		     (unsigned long)(wd_limit(&wd, base) / ms_ticks(1000)),
		     st.phase ? WATCHDOG_S : WATCHDOG_BOOT_S, WD_PACE, st.phase, st.rounds_seen,
		     st.moves);
		fail(EXIT_HANG, "watchdog: the guest is stuck");
	}
	if (st.phase >= 1 && st.moves < st.moves_want && t >= st.next_move) {
		move_block(st.move_next);
		st.move_next = (st.move_next + 7) % RAM_BLOCKS; /* every block, spread out */
		st.next_move =
			t + ms_ticks(info[INFO_MOVE_MS] ? info[INFO_MOVE_MS] : MOVE_EVERY_MS);
	} else if (st.phase >= 1 && st.moves >= st.moves_want) {
		if (st.mig == MIG_OFF)
			__atomic_store_n(&st.hyp_done, 1, __ATOMIC_RELEASE);
		else
			mig_step(c);
	}
	wd_tick_done(&wd, now_ticks());
	timer_arm(TICK_MS);
}

/* ---- a checksum failure's evidence ---------------------------------------- */

/* The hpa the memslot's backing gives @gpa now (region A's block table, or
 * region B after the switch), ~0 outside guest RAM. */
static uint64_t backing_hpa(uint64_t gpa)
{
	if (gpa < G_RAM || gpa >= G_RAM + G_RAM_SIZE)
		return ~0ull;
	return st.mig_switched ? HVA_B + (gpa - G_RAM) : a_hpa(gpa - G_RAM);
}

struct backing_check {
	unsigned long leaves, wrong;
};

static int backing_leaf(void *arg, gfn_t gfn, const struct s2_mapping *m)
{
	struct backing_check *bc = arg;
	uint64_t gpa = gfn << 12, last = gpa + m->size - 4096;

	bc->leaves++;
	if (m->hpa != backing_hpa(gpa) || m->hpa + m->size - 4096 != backing_hpa(last)) {
		if (bc->wrong++ < 8)
			hlog("hyp: stage 2 maps gpa 0x%lx (%lu KiB, level %d) to hpa 0x%lx, its "
			     "backing is at 0x%lx\n",
			     gpa, (unsigned long)(m->size >> 10), m->level, m->hpa,
			     backing_hpa(gpa));
	}
	return 0;
}

/*
 * Stage 2 against the memslot's backing: every RAM leaf must translate to
 * where the block table (or region B) says the gpa lives now; a leaf still
 * naming a moved block's old copy would be the library's bug. Returns the
 * leaves that do not.
 */
static unsigned long check_backing(unsigned long *leaves)
{
	struct backing_check bc = { 0, 0 };

	if (kvm_mmu_for_each_leaf(kvm, gpa_to_gfn(G_RAM), gpa_to_gfn(G_RAM + G_RAM_SIZE),
				  backing_leaf, &bc))
		bc.wrong++;
	if (leaves)
		*leaves = bc.leaves;
	return bc.wrong;
}

/* Where host block @blk (2 MiB aligned) stands in the move history. */
static void say_block(uint64_t blk)
{
	unsigned n = st.moves < MOVE_HIST ? st.moves : MOVE_HIST;

	for (unsigned i = n; i-- > 0;) {
		const struct move_rec *m = &move_hist[i];

		if (m->new == blk) {
			hlog("hyp:     host block 0x%lx: the copy of gpa block 0x%lx since move %u "
			     "(%u ms)%s\n",
			     blk, (uint64_t)(G_RAM + m->b * MOVE_BLOCK), i, m->ms,
			     blk_hpa[m->b] == blk ? ", region A's block for it now" : "");
			return;
		}
		if (m->old == blk) {
			hlog("hyp:     host block 0x%lx: the old copy (poisoned) of gpa block 0x%lx "
			     "since move %u (%u ms)\n",
			     blk, (uint64_t)(G_RAM + m->b * MOVE_BLOCK), i, m->ms);
			return;
		}
	}
	hlog("hyp:     host block 0x%lx: never moved\n", blk);
}

/* One hit of the search: which host memory, which gpa, what stage 2 says. */
static void say_hit(const char *what, uint64_t hpa)
{
	uint64_t gpa = ~0ull;
	const char *where = "other host memory";
	struct s2_mapping m = { 0 };

	if (hpa >= HVA_B && hpa < HVA_B + G_RAM_SIZE) {
		gpa = G_RAM + (hpa - HVA_B);
		where = st.mig_switched ? "region B (the slot's backing)" : "region B (the copy)";
	}
	for (unsigned b = 0; b < RAM_BLOCKS; b++)
		if (hpa - blk_hpa[b] < MOVE_BLOCK) {
			gpa = G_RAM + (uint64_t)b * MOVE_BLOCK + (hpa - blk_hpa[b]);
			where = st.mig_switched ? "region A (the old backing)" :
						  "region A (the slot's backing)";
		}
	for (unsigned i = 0; i < nspare; i++)
		if (hpa - spare[i] < MOVE_BLOCK)
			where = "a spare block";
	if (gpa != ~0ull && !kvm_mmu_lookup(kvm, gpa, &m) && m.present)
		hlog("hyp:   %s word at hpa 0x%lx: %s, gpa 0x%lx; stage 2: hpa 0x%lx, level %d, "
		     "prot 0x%x\n",
		     what, hpa, where, gpa, m.hpa, m.level, m.prot);
	else if (gpa != ~0ull)
		hlog("hyp:   %s word at hpa 0x%lx: %s, gpa 0x%lx; stage 2: not mapped\n", what, hpa,
		     where, gpa);
	else
		hlog("hyp:   %s word at hpa 0x%lx: %s\n", what, hpa, where);
	if (hpa >= H_RAM && hpa < H_SPARE + SPARE_BLOCKS * MOVE_BLOCK)
		say_block(hpa & ~(MOVE_BLOCK - 1));
}

/*
 * The guest's checksum failed: it sent the word its file holds now (bad)
 * and the one its copy holds (good), and their offset in the page. Find
 * both in all host RAM at that page offset (a page cache page is 4 KiB
 * aligned in the guest, so is its backing), tie each hit to a gpa, the
 * stage-2 leaf and the move history, and check stage 2 against the
 * backing. A good word found only in an old (poisoned) block: a write went
 * through a stale translation; a poison bad word: a read did.
 */
static void memcheck_diag(struct pcpu *c, uint64_t off)
{
	uint64_t bad = st.diag_bad[0] | (uint64_t)st.diag_bad[1] << 32,
		 good = st.diag_good[0] | (uint64_t)st.diag_good[1] << 32;
	unsigned nbad = 0, ngood = 0, nmoves = st.moves < MOVE_HIST ? st.moves : MOVE_HIST;
	unsigned long wrong, leaves;

	hlog("hyp: MEMCHECK-DIAG on CPU %u at %lu ms: bad word 0x%016lx%s, good 0x%016lx, page "
	     "offset 0x%lx; moves done %u (last at %u ms), migration: logging on at %lu ms, full "
	     "copy done at %lu ms, switch at %lu ms\n",
	     c->id, (unsigned long)phase_ms(), bad, bad == POISON ? " (POISON)" : "", good, off,
	     st.moves, nmoves ? move_hist[nmoves - 1].ms : 0, (unsigned long)st.mig_start_ms,
	     (unsigned long)st.mig_full_ms, (unsigned long)st.mig_switch_ms);
	for (unsigned i = 1; i <= st.mig_rounds && i < MIG_MAX_ROUNDS + 2; i++)
		hlog("hyp:   migration round %u at %lu ms\n", i, (unsigned long)st.mig_round_ms[i]);
	for (uint64_t hpa = 0x40000000 + off; hpa < 0x80000000; hpa += 4096) {
		uint64_t v = *(volatile uint64_t *)(uintptr_t)hpa;

		if (v == good && ngood++ < 8)
			say_hit("good", hpa);
		if (v == bad && bad != good && bad != POISON && nbad++ < 8)
			say_hit("bad", hpa);
	}
	hlog("hyp:   the good word is in %u host pages, the bad one in %u%s\n", ngood, nbad,
	     bad == POISON ? " (poison: not searched)" : "");
	wrong = check_backing(&leaves);
	hlog("hyp:   stage 2 against the backing: %lu RAM leaves, %lu wrong\n", leaves, wrong);
	for (unsigned i = nmoves > 64 ? nmoves - 64 : 0; i < nmoves; i++)
		hlog("hyp:   move %u at %u ms: gpa block 0x%lx from hpa 0x%lx to 0x%lx\n", i,
		     move_hist[i].ms, (uint64_t)(G_RAM + move_hist[i].b * MOVE_BLOCK),
		     move_hist[i].old, move_hist[i].new);
}

/* ---- MMIO: the control registers and the SGI frames ---------------------- */

static int ctl_access(struct pcpu *c, uint64_t off, bool write, uint64_t *val)
{
	c->mmio_ctl++;
	if (!write) {
		*val = off == CTL_HYP_DONE ? __atomic_load_n(&st.hyp_done, __ATOMIC_ACQUIRE) : 0;
		return 0;
	}
	wd_progress(&wd);
	switch (off) {
	case CTL_PHASE:
		st.phase = (uint32_t)*val;
		st.phase_t0 = now_ticks();
		wd_learn(&wd); /* the boot's silence does not set the pace */
		hlog("hyp: guest phase %u on CPU %u\n", st.phase, c->id);
		break;
	case CTL_VERDICT:
		st.verdict = (uint32_t)*val;
		st.verdict_set = 1;
		break;
	case CTL_ROUND: st.rounds_seen++; break;
	case CTL_DIAG_BAD_LO: st.diag_bad[0] = (uint32_t)*val; break;
	case CTL_DIAG_BAD_HI: st.diag_bad[1] = (uint32_t)*val; break;
	case CTL_DIAG_GOOD_LO: st.diag_good[0] = (uint32_t)*val; break;
	case CTL_DIAG_GOOD_HI: st.diag_good[1] = (uint32_t)*val; break;
	case CTL_DIAG_GO: memcheck_diag(c, *val & 0xff8); break;
	case CTL_FAILED:
		hlog("hyp: worker %u's check failed at %lu ms (CPU %u; moves done %u, migration "
		     "rounds %u)\n",
		     (unsigned)*val, (unsigned long)phase_ms(), c->id, st.moves, st.mig_rounds);
		break;
	default: return -1;
	}
	return 0;
}

/*
 * An SGI frame: forward the access to the physical one, keeping the
 * hypervisor's interrupts enabled, group 1, not pending-cleared, not
 * deactivated.
 */
static int sgi_frame_access(struct pcpu *c, uint64_t gpa, unsigned width, bool write, uint64_t *val)
{
	uint64_t off = (gpa - G_GICR) % GICR_STRIDE - 0x10000;

	c->mmio_sgi++;
	if (!write) {
		if (width == 8)
			*val = *(volatile uint64_t *)(uintptr_t)gpa;
		else if (width == 4)
			*val = *(volatile uint32_t *)(uintptr_t)gpa;
		else if (width == 2)
			*val = *(volatile uint16_t *)(uintptr_t)gpa;
		else
			*val = *(volatile uint8_t *)(uintptr_t)gpa;
		return 0;
	}
	if (width == 4) {
		uint32_t v = (uint32_t)*val;

		if (off == 0x180 || off == 0x280 || off == 0x380 || off == 0xd00)
			v &= ~HYP_INTIDS; /* ICENABLER0, ICPENDR0, ICACTIVER0, IGRPMODR0 */
		else if (off == 0x80)
			v |= HYP_INTIDS; /* IGROUPR0 */
		*(volatile uint32_t *)(uintptr_t)gpa = v;
	} else if (width == 8) {
		*(volatile uint64_t *)(uintptr_t)gpa = *val;
	} else if (width == 2) {
		*(volatile uint16_t *)(uintptr_t)gpa = (uint16_t)*val;
	} else {
		*(volatile uint8_t *)(uintptr_t)gpa = (uint8_t)*val;
	}
	return 0;
}

static bool is_sgi_frame(uint64_t gpa)
{
	return gpa >= G_GICR && gpa < G_GICR + NR_CPUS * GICR_STRIDE &&
	       (gpa - G_GICR) % GICR_STRIDE >= 0x10000;
}

static void emulate_mmio(struct pcpu *c, uint64_t esr, gpa_t gpa)
{
	unsigned width = 1u << ESR_SAS(esr), srt = ESR_SRT(esr);
	bool write = esr & ESR_WNR;
	uint64_t v = 0;
	int r;

	if (!(esr & ESR_ISV)) {
		hlog("hyp: MMIO at gpa 0x%lx without a valid syndrome (ESR 0x%lx, pc 0x%lx)\n", gpa,
		     esr, c->regs.pc);
		finish(EXIT_TRAP);
	}
	if (write) {
		v = srt == 31 ? 0 : c->regs.x[srt];
		if (width < 8)
			v &= (1ull << (width * 8)) - 1;
	}
	if (gpa >= G_CTL && gpa < G_CTL + CTL_SIZE)
		r = ctl_access(c, gpa - G_CTL, write, &v);
	else if (is_sgi_frame(gpa))
		r = sgi_frame_access(c, gpa, width, write, &v);
	else
		r = -1;
	if (r) {
		hlog("hyp: guest %s of %u bytes at unknown gpa 0x%lx (pc 0x%lx)\n",
		     write ? "write" : "read", width, gpa, c->regs.pc);
		finish(EXIT_TRAP);
	}
	if (!write && srt != 31) {
		if (width < 8) {
			v &= (1ull << (width * 8)) - 1;
			if ((esr & ESR_SSE) && (v >> (width * 8 - 1)))
				v |= ~0ull << (width * 8);
		}
		if (!(esr & ESR_SF))
			v &= 0xffffffffull;
		c->regs.x[srt] = v;
	}
	c->regs.pc += 4;
}

/* ---- stage-2 aborts ------------------------------------------------------- */

static void stage2_abort(struct pcpu *c, uint64_t esr)
{
	bool data = ESR_EC(esr) == EC_DABT_LOW;
	unsigned fsc = ESR_FSC(esr), cls;
	gpa_t gpa = ((sysreg_read(hpfar_el2) >> 4) << 12) | (sysreg_read(far_el2) & 0xfff);
	unsigned access;
	int r;

	/* A stage-1 walk may set AF / DBM in the guest's tables: a write. */
	if (esr & ESR_S1PTW) {
		access = S2_ACC_READ | S2_ACC_WRITE;
		c->s1ptw++;
	} else {
		access = !data ? S2_ACC_EXEC : (esr & ESR_WNR) ? S2_ACC_WRITE : S2_ACC_READ;
	}
	switch (FSC_CLASS(fsc)) {
	case FSC_TRANSLATION: cls = 1; break;
	case FSC_ACCESS_FLAG: cls = 2; break;
	case FSC_PERMISSION: cls = 3; break;
	default:
		hlog("hyp: %s abort with FSC 0x%x at pc 0x%lx (ESR 0x%lx)\n",
		     data ? "data" : "instruction", fsc, c->regs.pc, esr);
		finish(EXIT_TRAP);
	}
	if (data)
		c->dabt[cls]++;
	else
		c->iabt[cls]++;
	if (!st.first_exit_seen) {
		st.first_exit_seen = true;
		st.first_exit_ok = !data && cls == 1 && gpa == G_KERNEL;
		hlog("hyp: first exit: %s abort, FSC 0x%x, at IPA 0x%lx (empty stage 2)\n",
		     data ? "data" : "instruction", fsc, gpa);
	}
	r = kvm_tdp_page_fault(c->vcpu, gpa, access);
	switch (r) {
	case RET_PF_FIXED:
		c->fixed++;
		if (c->id == 0)
			track_leaves();
		break;
	case RET_PF_SPURIOUS: c->fspur++; break;
	case RET_PF_RETRY: c->retry++; break;
	case RET_PF_EMULATE_MMIO:
		if (!data) {
			hlog("hyp: guest fetch from gpa 0x%lx with no memslot\n", gpa);
			finish(EXIT_TRAP);
		}
		emulate_mmio(c, esr, gpa);
		break;
	default: lib_fail("kvm_tdp_page_fault", r);
	}
}

/* ---- PSCI ------------------------------------------------------------------ */

#define PSCI_VERSION 0x84000000u
#define PSCI_CPU_SUSPEND 0x84000001u
#define PSCI_CPU_OFF 0x84000002u
#define PSCI_CPU_ON 0x84000003u
#define PSCI_AFFINITY_INFO 0x84000004u
#define PSCI_MIGRATE_INFO_TYPE 0x84000006u
#define PSCI_SYSTEM_OFF 0x84000008u
#define PSCI_SYSTEM_RESET 0x84000009u
#define PSCI_FEATURES 0x8400000au
#define PSCI_64 0x40000000u
#define PSCI_NOT_SUPPORTED (-1ll)
#define PSCI_INVALID (-2ll)
#define PSCI_ALREADY_ON (-4ll)

static int report(struct pcpu *c, int code);

static bool psci_known(uint32_t fn)
{
	switch (fn & ~PSCI_64) {
	case PSCI_VERSION:
	case PSCI_CPU_OFF:
	case PSCI_CPU_ON:
	case PSCI_AFFINITY_INFO:
	case PSCI_MIGRATE_INFO_TYPE:
	case PSCI_SYSTEM_OFF:
	case PSCI_SYSTEM_RESET:
	case PSCI_FEATURES: return true;
	default: return false;
	}
}

static void psci(struct pcpu *c)
{
	uint32_t fn = (uint32_t)c->regs.x[0];
	uint64_t target = c->regs.x[1];
	int64_t ret = PSCI_NOT_SUPPORTED;
	unsigned t;

	switch (fn & ~PSCI_64) {
	case PSCI_VERSION: ret = 0x10000; break;     /* 1.0 */
	case PSCI_MIGRATE_INFO_TYPE: ret = 2; break; /* no trusted OS */
	case PSCI_FEATURES: ret = psci_known((uint32_t)target) ? 0 : PSCI_NOT_SUPPORTED; break;
	case PSCI_CPU_ON:
		t = target & 0xff;
		if ((target & ~0xffull) || t >= NR_CPUS) {
			ret = PSCI_INVALID;
		} else if (__atomic_load_n(&cpus[t].state, __ATOMIC_ACQUIRE) == VCPU_ON) {
			ret = PSCI_ALREADY_ON;
		} else {
			struct a64_regs *r = &cpus[t].regs;

			memset(r, 0, sizeof(*r));
			r->pc = c->regs.x[2];
			r->x[0] = c->regs.x[3];
			r->pstate = SPSR_EL1H_DAIF;
			st.cpu_on++;
			__atomic_store_n(&cpus[t].state, VCPU_ON, __ATOMIC_RELEASE);
			ret = 0;
		}
		break;
	case PSCI_AFFINITY_INFO:
		t = target & 0xff;
		ret = t < NR_CPUS ?
			      (__atomic_load_n(&cpus[t].state, __ATOMIC_ACQUIRE) == VCPU_ON ? 0 :
											      1) :
			      PSCI_INVALID;
		break;
	case PSCI_CPU_OFF: __atomic_store_n(&c->state, VCPU_OFF, __ATOMIC_RELEASE); return;
	case PSCI_SYSTEM_OFF: finish(report(c, EXIT_PASS));
	case PSCI_SYSTEM_RESET:
		hlog("hyp: guest asked for SYSTEM_RESET (a panic, with panic=-1)\n");
		finish(report(c, EXIT_PANIC));
	default: break;
	}
	c->regs.x[0] = (uint64_t)ret;
}

/* ---- exits ------------------------------------------------------------------ */

static void sysreg_trap(struct pcpu *c, uint64_t esr)
{
	unsigned rt = (esr >> 5) & 0x1f;
	bool read = esr & 1;

	c->sysreg++;
	if ((esr & ISS_SYSREG_MASK) == ISS_ICC_SGI1R && !read) {
		/* The guest's MPIDRs are the physical ones: send it as is. */
		sysreg_write_s(ICC_SGI1R_EL1, rt == 31 ? 0 : c->regs.x[rt]);
		isb();
		c->sgi_sent++;
	} else {
		hlog("hyp: CPU %u: system register trap, ISS 0x%lx: RAZ/WI\n", c->id,
		     esr & 0x1ffffff);
		if (read && rt != 31)
			c->regs.x[rt] = 0;
	}
	c->regs.pc += 4;
}

static void handle_exit(struct pcpu *c)
{
	uint64_t esr;

	c->exits++;
	if (c->regs.reason == REASON_IRQ) {
		irq_exit(c);
		return;
	}
	esr = sysreg_read(esr_el2);
	if (c->regs.reason == REASON_SYNC) {
		switch (ESR_EC(esr)) {
		case EC_DABT_LOW:
		case EC_IABT_LOW: stage2_abort(c, esr); return;
		case EC_HVC64:
			c->hvc++;
			psci(c);
			return;
		case EC_SMC64:
			c->smc++;
			psci(c);
			c->regs.pc += 4; /* a trapped SMC returns to itself */
			return;
		case EC_SYSREG: sysreg_trap(c, esr); return;
		default: break;
		}
	}
	hlog("hyp: CPU %u: unexpected guest exit: reason %lu ESR_EL2 0x%lx pc 0x%lx FAR_EL2 "
	     "0x%lx\n",
	     c->id, c->regs.reason, esr, c->regs.pc, sysreg_read(far_el2));
	finish(EXIT_TRAP);
}

/* ---- per-CPU EL2 setup ------------------------------------------------------ */

static uint64_t vtcr, hcr;

static void el2_cpu_init(unsigned cpu)
{
	uint64_t isar1 = sysreg_read(id_aa64isar1_el1);

	sysreg_write(vtcr_el2, vtcr);
	sysreg_write(hcr_el2, hcr);
	sysreg_write(cptr_el2, CPTR_EL2_NO_TRAPS);
	sysreg_write(mdcr_el2, (sysreg_read(pmcr_el0) >> 11) & 0x1f); /* HPMN = N */
	sysreg_write(hstr_el2, 0);
	sysreg_write(cnthctl_el2, 3); /* EL1PCTEN | EL1PCEN */
	sysreg_write(cntvoff_el2, 0);
	sysreg_write(vpidr_el2, sysreg_read(midr_el1));
	sysreg_write(vmpidr_el2, sysreg_read(mpidr_el1));
	sysreg_write(sctlr_el1, SCTLR_EL1_MMU_OFF);
	isb();
	(void)isar1;
	gic_cpu_init(cpu);
	__asm__ volatile("dsb ishst\n\ttlbi vmalls12e1\n\tdsb nsh\n\tisb" : : : "memory");
}

/* PAuth (APA/API/GPA/GPI in ISAR1, APA3/GPA3 in ISAR2): don't trap its keys
 * or instructions (HCR_EL2.API/APK). */
static bool has_pauth(void)
{
	uint64_t isar1 = sysreg_read(id_aa64isar1_el1);
	uint64_t isar2 = sysreg_read(S3_0_C0_C6_2);

	return ((isar1 >> 4) & 0xff) || ((isar1 >> 24) & 0xff) || ((isar2 >> 8) & 0xff);
}

/* ---- the vcpu loop -------------------------------------------------------- */

static void do_entry_actions(struct pcpu *c)
{
	struct kvm_entry_actions acts;
	int r = kvm_vcpu_entry_actions(c->vcpu, &acts);

	if (r)
		lib_fail("kvm_vcpu_entry_actions", r);
	for (unsigned i = 0; i < acts.nr; i++) {
		switch (acts.a[i].kind) {
		case KVM_ENTRY_LOAD_ROOT:
			sysreg_write(vttbr_el2, acts.a[i].reg);
			isb();
			c->loads++;
			break;
		case KVM_ENTRY_FLUSH_CURRENT:
		case KVM_ENTRY_FLUSH_ALL:
			/*
			 * Without the format's TLBI (the break-flush image)
			 * the library asks every vcpu to flush instead; that
			 * image leaves this flush out too, so nothing at all
			 * invalidates stage 2 there.
			 */
#ifndef BREAK_FLUSH
			__asm__ volatile("dsb ishst\n\ttlbi vmalls12e1\n\tdsb nsh\n\tisb"
					 :
					 :
					 : "memory");
#endif
			c->flush_actions++;
			break;
		case KVM_ENTRY_FLUSH_GUEST:
			__asm__ volatile("dsb ishst\n\ttlbi vmalle1\n\tdsb nsh\n\tisb"
					 :
					 :
					 : "memory");
			c->flush_actions++;
			break;
		}
	}
}

/* Wait offline until the vcpu is switched on (PSCI CPU_ON by the other). */
static void wait_for_on(struct pcpu *c)
{
	s2_fs_rcu_offline(&fs, c->id);
	while (__atomic_load_n(&c->state, __ATOMIC_ACQUIRE) != VCPU_ON) {
		park_if_asked(c, false);
		__asm__ volatile("yield");
	}
	s2_fs_rcu_online(&fs, c->id);
}

/*
 * The guest's FP/SIMD registers stay in the CPU while the hypervisor runs
 * (the world switch saves none: hyp.c, the library and klib are built with
 * -mgeneral-regs-only, and the link refuses any FP/SIMD instruction, see
 * the Makefile's check-no-fp). This checks it at run time: the registers
 * as the guest left them at its exit must be what it finds at its next
 * entry. libgcc's __popcountdi2 (fmov d0 / cnt / addv: it is not built
 * with -mgeneral-regs-only) once ran in every migration round and changed
 * the guest's v0 under it, about once in 40 boots a checksum (docs/examples.md).
 */
static void fpsimd_save(struct fpsimd *f)
{
	__asm__ volatile(".arch_extension fp\n\t"
			 ".arch_extension simd\n\t"
			 "stp q0, q1, [%0, #0]\n\t"
			 "stp q2, q3, [%0, #32]\n\t"
			 "stp q4, q5, [%0, #64]\n\t"
			 "stp q6, q7, [%0, #96]\n\t"
			 "stp q8, q9, [%0, #128]\n\t"
			 "stp q10, q11, [%0, #160]\n\t"
			 "stp q12, q13, [%0, #192]\n\t"
			 "stp q14, q15, [%0, #224]\n\t"
			 "stp q16, q17, [%0, #256]\n\t"
			 "stp q18, q19, [%0, #288]\n\t"
			 "stp q20, q21, [%0, #320]\n\t"
			 "stp q22, q23, [%0, #352]\n\t"
			 "stp q24, q25, [%0, #384]\n\t"
			 "stp q26, q27, [%0, #416]\n\t"
			 "stp q28, q29, [%0, #448]\n\t"
			 "stp q30, q31, [%0, #480]\n\t"
			 "mrs x9, fpsr\n\t"
			 "str x9, [%0, #512]\n\t"
			 "mrs x9, fpcr\n\t"
			 "str x9, [%0, #520]"
			 :
			 : "r"(f)
			 : "x9", "memory");
}

/* Before an entry: the guest's FP/SIMD registers must be as it left them. */
static void fpsimd_check(struct pcpu *c)
{
	struct fpsimd now;

	if (!c->fp_saved)
		return;
	fpsimd_save(&now);
	for (unsigned i = 0; i < 66; i++) {
		const uint64_t *a = &c->fp_exit.q[0], *b = &now.q[0];

		if (a[i] == b[i])
			continue;
		hlog("hyp: CPU %u: the guest's FP/SIMD registers changed while the hypervisor ran "
		     "(exit %lu): %s%u %s 0x%016lx, now 0x%016lx\n",
		     c->id, c->exits, i < 64 ? "q" : "fp", i < 64 ? i / 2 : i - 64,
		     i < 64 ? (i % 2 ? "high" : "low") : (i == 64 ? "sr" : "cr"), a[i], b[i]);
		fail(EXIT_CHECK, "the guest's FP/SIMD state was not preserved");
	}
}

static __attribute__((noreturn)) void vcpu_loop(struct pcpu *c)
{
	s2_fs_rcu_online(&fs, c->id);
	for (;;) {
		s2_fs_rcu_quiescent(&fs, c->id);
		park_if_asked(c, true);
		if (__atomic_load_n(&c->state, __ATOMIC_ACQUIRE) != VCPU_ON) {
			wait_for_on(c);
			continue;
		}
		if (kvm_dirty_ring_check_request(c->vcpu)) {
			/* Soft-full ring: CPU 0 harvests now, CPU 1 waits for it. */
			if (c->id == 0 && st.mig == MIG_ROUNDS) {
				mig_step(c);
			} else {
				s2_fs_rcu_offline(&fs, c->id);
				__asm__ volatile("yield");
				s2_fs_rcu_online(&fs, c->id);
			}
			continue;
		}
		do_entry_actions(c);
		lr_flush_queue(c);
		if (!kvm_vcpu_enter_guest(c->vcpu))
			continue;
		s2_fs_rcu_offline(&fs, c->id);
		fpsimd_check(c);
		a64_run_guest(&c->regs);
		fpsimd_save(&c->fp_exit);
		c->fp_saved = true;
		kvm_vcpu_exit_guest(c->vcpu);
		s2_fs_rcu_online(&fs, c->id);
		handle_exit(c);
	}
}

/* ---- setup ------------------------------------------------------------------ */

/* ID_AA64MMFR0_EL1.PARange in bits. */
static unsigned pa_range_bits(void)
{
	static const unsigned bits[] = { 32, 36, 40, 42, 44, 48, 52 };
	unsigned r = sysreg_read(id_aa64mmfr0_el1) & 0xf;

	return r < sizeof(bits) / sizeof(bits[0]) ? bits[r] : 48;
}

/*
 * What ID_AA64MMFR0_EL1 says of @granule at stage 2: 0 not implemented, 1
 * implemented, 2 implemented with 52-bit addresses (FEAT_LPA2). A
 * TGran*_2 field of 0 means "as stage 1" (TGran4/TGran16/TGran64, each with
 * its own encoding). A CPU walks an unimplemented granule as one it has
 * (CONSTRAINED UNPREDICTABLE): QEMU's cortex-a57 has no 16K granule, and a
 * 16K stage 2 there makes the kernel stall after its first faults.
 */
static unsigned s2_granule_support(unsigned gran, uint64_t mmfr0)
{
	unsigned sh2 = gran == 4096 ? 40 : gran == 16384 ? 32 : 36;
	unsigned f2 = (mmfr0 >> sh2) & 0xf, f1;

	if (f2)
		return f2 == 1 ? 0 : f2 - 1;
	if (gran == 4096) {
		f1 = (mmfr0 >> 28) & 0xf; /* 0 yes, 1 LPA2, 0xf no */
		return f1 == 0xf ? 0 : f1 + 1;
	}
	if (gran == 16384)
		return (mmfr0 >> 20) & 0xf;	     /* 0 no, 1 yes, 2 LPA2 */
	return ((mmfr0 >> 24) & 0xf) == 0xf ? 0 : 1; /* 64K: 0 yes, 0xf no */
}

static size_t build_dtb(void)
{
	static struct fdt f;
	uint32_t gic = 1, clk = 2;
	char bootargs[160];

	ksnprintf(bootargs, sizeof(bootargs),
		  "console=ttyAMA0 panic=-1 rdinit=/init cma=0 loglevel=%d%s%s",
		  (info[INFO_FLAGS] & RUNF_INTERACTIVE) ? 7 : 4,
		  (info[INFO_FLAGS] & RUNF_INTERACTIVE) ? " s2test=shell" : "",
		  (info[INFO_FLAGS] & RUNF_DIAG_TEST) ? " s2test=poison" : "");
	fdt_begin(&f, (void *)(uintptr_t)a_hpa(G_DTB - G_RAM), DTB_MAX);
	fdt_node(&f, "");
	fdt_prop_u32(&f, "#address-cells", 2);
	fdt_prop_u32(&f, "#size-cells", 2);
	fdt_prop_str(&f, "compatible", "linux,dummy-virt");
	fdt_prop_str(&f, "model", "s2mmu arm64-linux example");
	fdt_prop_u32(&f, "interrupt-parent", gic);

	fdt_node(&f, "chosen");
	fdt_prop_str(&f, "bootargs", bootargs);
	fdt_prop_str(&f, "stdout-path", "/pl011@9000000");
	fdt_prop_u64(&f, "linux,initrd-start", G_INITRD);
	fdt_prop_u64(&f, "linux,initrd-end", G_INITRD + info[INFO_INITRD_SIZE]);
	fdt_end_node(&f);

	fdt_node(&f, "memory@40000000");
	fdt_prop_str(&f, "device_type", "memory");
	{
		uint32_t reg[4] = { 0, (uint32_t)G_RAM, 0, (uint32_t)G_RAM_SIZE };

		fdt_prop_cells(&f, "reg", reg, 4);
	}
	fdt_end_node(&f);

	fdt_node(&f, "cpus");
	fdt_prop_u32(&f, "#address-cells", 1);
	fdt_prop_u32(&f, "#size-cells", 0);
	for (unsigned i = 0; i < NR_CPUS; i++) {
		char name[16];

		ksnprintf(name, sizeof(name), "cpu@%u", i);
		fdt_node(&f, name);
		fdt_prop_str(&f, "device_type", "cpu");
		fdt_prop_str(&f, "compatible", "arm,armv8");
		fdt_prop_u32(&f, "reg", i);
		fdt_prop_str(&f, "enable-method", "psci");
		fdt_end_node(&f);
	}
	fdt_end_node(&f);

	fdt_node(&f, "psci");
	fdt_prop(&f, "compatible", "arm,psci-1.0\0arm,psci-0.2", 25);
	fdt_prop_str(&f, "method", "hvc");
	fdt_end_node(&f);

	fdt_node(&f, "timer");
	{
		/* PPIs: secure and non-secure physical, virtual, hypervisor. */
		uint32_t irqs[12] = { 1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4 };

		fdt_prop_str(&f, "compatible", "arm,armv8-timer");
		fdt_prop_cells(&f, "interrupts", irqs, 12);
		fdt_prop(&f, "always-on", NULL, 0);
	}
	fdt_end_node(&f);

	fdt_node(&f, "intc@8000000");
	{
		uint32_t reg[8] = { 0, (uint32_t)G_GICD, 0, (uint32_t)GICD_SIZE,
				    0, (uint32_t)G_GICR, 0, (uint32_t)(NR_CPUS * GICR_STRIDE) };

		fdt_prop_str(&f, "compatible", "arm,gic-v3");
		fdt_prop_u32(&f, "#interrupt-cells", 3);
		fdt_prop(&f, "interrupt-controller", NULL, 0);
		fdt_prop_u32(&f, "#redistributor-regions", 1);
		fdt_prop_cells(&f, "reg", reg, 8);
		fdt_prop_u32(&f, "phandle", gic);
	}
	fdt_end_node(&f);

	fdt_node(&f, "apb-pclk");
	fdt_prop_str(&f, "compatible", "fixed-clock");
	fdt_prop_u32(&f, "#clock-cells", 0);
	fdt_prop_u32(&f, "clock-frequency", 24000000);
	fdt_prop_str(&f, "clock-output-names", "clk24mhz");
	fdt_prop_u32(&f, "phandle", clk);
	fdt_end_node(&f);

	fdt_node(&f, "pl011@9000000");
	{
		uint32_t reg[4] = { 0, (uint32_t)G_UART, 0, 0x1000 };
		uint32_t irq[3] = { 0, 1, 4 };
		uint32_t clks[2] = { clk, clk };

		fdt_prop(&f, "compatible", "arm,pl011\0arm,primecell", 24);
		fdt_prop_cells(&f, "reg", reg, 4);
		fdt_prop_cells(&f, "interrupts", irq, 3);
		fdt_prop_cells(&f, "clocks", clks, 2);
		fdt_prop(&f, "clock-names", "uartclk\0apb_pclk", 17);
	}
	fdt_end_node(&f);
	fdt_end_node(&f);
	return fdt_finish(&f);
}

static void secondary_start(void)
{
	extern char _secondary[], hyp_stack1_top[];
	register uint64_t x0 __asm__("x0") = 0xc4000003; /* CPU_ON, SMC64 */
	register uint64_t x1 __asm__("x1") = 1;		 /* MPIDR Aff0 = 1 */
	register uint64_t x2 __asm__("x2") = (uint64_t)(uintptr_t)_secondary;
	register uint64_t x3 __asm__("x3") = (uint64_t)(uintptr_t)hyp_stack1_top;

	__asm__ volatile("smc #0" : "+r"(x0) : "r"(x1), "r"(x2), "r"(x3) : "memory");
	if (x0)
		lib_fail("PSCI CPU_ON of CPU 1 (QEMU's firmware)", (long)x0);
}

static uint32_t cpu1_ready;

void hyp_secondary(void);
void hyp_secondary(void)
{
	struct pcpu *c = &cpus[1];

	el2_cpu_init(1);
	__atomic_store_n(&cpu1_ready, 1, __ATOMIC_RELEASE);
	vcpu_loop(c);
}

static void setup(void)
{
	struct kvm_vm_params p = { .fmt = S2_FMT_ARM64_S2, .vmid = 1 };
	unsigned pa_bits = pa_range_bits(), hafdbs = sysreg_read(id_aa64mmfr1_el1) & 0xf;
	bool fwb = ((sysreg_read(id_aa64mmfr2_el1) >> 40) & 0xf) == 1;
	uint64_t lpa2 = 0, mmfr0 = sysreg_read(id_aa64mmfr0_el1);
	size_t dtb;
	int r;

	for (unsigned i = 0; i < INFO_WORDS; i++)
		info[i] = ((volatile uint64_t *)(uintptr_t)H_INFO)[i];
	granule = info[INFO_GRANULE] ? (unsigned)info[INFO_GRANULE] : 4096;
	p.granule = granule;
	p.gpa_bits = info[INFO_IPA_BITS] ? (unsigned)info[INFO_IPA_BITS] : 40;
	if (!s2_granule_support(granule, mmfr0)) {
		hlog("hyp: a %u-byte granule at stage 2: not offered by this CPU "
		     "(ID_AA64MMFR0_EL1 0x%lx)\n",
		     granule, mmfr0);
		finish(EXIT_UNOFFERED);
	}
	if (p.gpa_bits > 48) {
		/* 52 bits: FEAT_LPA2 (4K, 16K) or FEAT_LPA (64K). */
		lpa2 = granule == 65536 ? pa_bits == 52 : s2_granule_support(granule, mmfr0) == 2;
		if (!lpa2 || pa_bits < 52) {
			hlog("hyp: 52-bit IPA with %u-byte granule: not offered by this CPU "
			     "(PARange %u bits, ID_AA64MMFR0_EL1 0x%lx)\n",
			     granule, pa_bits, mmfr0);
			finish(EXIT_UNOFFERED);
		}
		p.fmt_flags |= S2_FMTF_LPA2;
	}
	if (p.gpa_bits > pa_bits) {
		hlog("hyp: a %u-bit IPA needs PARange >= %u bits (this CPU: %u)\n", p.gpa_bits,
		     p.gpa_bits, pa_bits);
		finish(EXIT_UNOFFERED);
	}
	if (hafdbs >= 1 && !(info[INFO_FLAGS] & RUNF_NO_S2_HAFDBS))
		p.fmt_flags |= S2_FMTF_AD;
	if (hafdbs >= 2 && !(info[INFO_FLAGS] & RUNF_NO_S2_HAFDBS))
		p.fmt_flags |= S2_FMTF_HD;
	if (fwb)
		p.fmt_flags |= S2_FMTF_FWB;

	s2_pool_init(&pool, (void *)(uintptr_t)H_POOL, H_POOL, H_POOL_SIZE);
	s2_freestanding_init(&fs, &pool);
	fs.ops.gfn_to_pfn = env_gfn_to_pfn;
	pool_alloc_table = fs.ops.alloc_table;
	pool_free_table = fs.ops.free_table;
	fs.ops.alloc_table = env_alloc_table;
	fs.ops.free_table = env_free_table;
	fs.ops.tlb_flush_vm = env_tlb_flush_vm;
	fs.ops.tlb_flush_range = env_tlb_flush_range;
	fs.ops.kick = env_kick;
	fs.ops.relax = env_relax;
	fs.ops.log = env_log;
	r = s2_freestanding_smp(&fs, rcu_cpus, NR_CPUS, env_this_cpu);
	if (r)
		lib_fail("s2_freestanding_smp", r);
	fs_synchronize_rcu = fs.ops.synchronize_rcu;
	fs.ops.synchronize_rcu = env_synchronize_rcu;
	p.env = &fs.env;
	vm_fmt_flags = p.fmt_flags;
	r = kvm_create_vm(&p, &kvm);
	if (r)
		lib_fail("kvm_create_vm", r);
	if (info[INFO_FLAGS] & RUNF_WRPROTECT) {
		r = kvm_dirty_log_set_caps(kvm, KVM_DIRTY_LOG_WRPROTECT);
		if (r)
			lib_fail("kvm_dirty_log_set_caps(WRPROTECT)", r);
	}
	if (info[INFO_FLAGS] & RUNF_RING) {
		r = kvm_dirty_ring_enable(kvm, 2048, 256); /* 32 KiB a vcpu */
		if (r)
			lib_fail("kvm_dirty_ring_enable", r);
	}
	for (unsigned i = 0; i < NR_CPUS; i++) {
		cpus[i].id = i;
		r = kvm_vcpu_create(kvm, i, &cpus[i].vcpu);
		if (r)
			lib_fail("kvm_vcpu_create", r);
	}

	/* Guest RAM (region A, block table at identity) and the devices. */
	for (unsigned b = 0; b < RAM_BLOCKS; b++)
		blk_hpa[b] = H_RAM + (uint64_t)b * MOVE_BLOCK;
	for (unsigned i = 0; i < SPARE_BLOCKS; i++)
		spare[nspare++] = H_SPARE + (uint64_t)i * MOVE_BLOCK;
	add_slot(RAM_SLOT, G_RAM, G_RAM_SIZE, HVA_A, 0);
	add_slot(1, G_GICD, GICD_SIZE, G_GICD, 0);
	for (unsigned i = 0; i < NR_CPUS; i++)
		add_slot(2 + i, G_GICR + i * GICR_STRIDE, 0x10000, G_GICR + i * GICR_STRIDE, 0);
	add_slot(2 + NR_CPUS, G_UART, 0x10000, G_UART, 0);

	dtb = build_dtb();
	if (!dtb)
		fail(EXIT_CHECK, "device tree does not fit");
	/* VTCR_EL2.PS: 52 only with LPA2 (the VM's flag), else at most 48. */
	r = kvm_arm64_vtcr(kvm, lpa2 ? pa_bits : pa_bits > 48 ? 48 : pa_bits, &vtcr);
	if (r)
		lib_fail("kvm_arm64_vtcr", r);
	hcr = HCR_RW | HCR_VM | HCR_IMO | HCR_FMO | HCR_AMO | HCR_TSC | (fwb ? HCR_FWB : 0) |
	      (has_pauth() ? HCR_API | HCR_APK : 0);
	el2_cpu_init(0);
	gicd_init();
	hlog("hyp: %s, granule %u, IPA %u bits, %u levels, PA %u bits, HAFDBS %u (%s), %s, "
	     "dirty log by %s; VTCR_EL2 0x%lx HCR_EL2 0x%lx; DTB %lu bytes, initrd %lu bytes\n",
	     s2_fmt_name(kvm_fmt(kvm)), granule, kvm_gpa_bits(kvm), kvm_mmu_levels(kvm), pa_bits,
	     hafdbs,
	     (p.fmt_flags & S2_FMTF_HD) ? "HA+HD" :
	     (p.fmt_flags & S2_FMTF_AD) ? "HA" :
					  "none",
	     fwb ? "S2FWB" : "no S2FWB", kvm_dirty_log_hw(kvm) ? "DBM" : "write protection", vtcr,
	     hcr, (unsigned long)dtb, (unsigned long)info[INFO_INITRD_SIZE]);

	cpus[0].regs.pc = G_KERNEL;
	cpus[0].regs.x[0] = G_DTB;
	cpus[0].regs.pstate = SPSR_EL1H_DAIF;
	cpus[0].state = VCPU_ON;
	st.moves_want = (unsigned)info[INFO_MOVES];
	st.mig = (info[INFO_FLAGS] & RUNF_MIGRATE) ? MIG_WAIT : MIG_OFF;
	st.mig_mismatch = -1;
	wd_init(&wd, now_ticks(), ms_ticks(2 * TICK_MS));
	secondary_start();
	while (!__atomic_load_n(&cpu1_ready, __ATOMIC_ACQUIRE))
		__asm__ volatile("yield");
	timer_arm(TICK_MS);
}

/* ---- the report ------------------------------------------------------------- */

/* The report and checks; @code: the verdict already known (EXIT_PASS: none). */
static int report(struct pcpu *c, int code)
{
	struct kvm_mmu_stats s;
	struct kvm_dirty_stats ds;
	char buf[512];
	bool checks = !(info[INFO_FLAGS] & RUNF_INTERACTIVE);

	pause_others(c->id);
	if (kvm_get_stats(kvm, &s) || kvm_get_dirty_stats(kvm, &ds))
		lib_fail("kvm_get_stats", -1);
	track_leaves();
	kvm_format_stats(kvm, buf, sizeof(buf));
	hlog("hyp: guest powered off (PSCI SYSTEM_OFF on CPU %u)\n", c->id);
	for (unsigned i = 0; i < NR_CPUS; i++) {
		struct pcpu *p = &cpus[i];

		hlog("hyp: CPU %u exits=%lu: aborts data translation=%lu access-flag=%lu "
		     "permission=%lu, instruction translation=%lu permission=%lu (s1ptw=%lu); "
		     "fixed=%lu spurious=%lu retry=%lu; mmio ctl=%lu sgi-frame=%lu; hvc=%lu smc=%lu "
		     "sysreg=%lu (sgi sent=%lu); irqs injected=%lu timer=%lu kick=%lu spurious=%lu "
		     "lr-full=%lu; root loads=%lu flush actions=%lu\n",
		     i, p->exits, p->dabt[1], p->dabt[2], p->dabt[3], p->iabt[1], p->iabt[3],
		     p->s1ptw, p->fixed, p->fspur, p->retry, p->mmio_ctl, p->mmio_sgi, p->hvc,
		     p->smc, p->sysreg, p->sgi_sent, p->irq_inj, p->irq_timer, p->irq_kick,
		     p->spurious, p->lr_full, p->loads, p->flush_actions);
	}
	hlog("hyp: leaves at most, per level: L1=%lu L2=%lu L3=%lu L4=%lu\n",
	     (unsigned long)st.max_leaves[1], (unsigned long)st.max_leaves[2],
	     (unsigned long)st.max_leaves[3], (unsigned long)st.max_leaves[4]);
	hlog("hyp: flushes: full=%lu ranged=%lu; env TLB hooks called: vm=%lu range=%lu; "
	     "kicks=%lu; grace periods=%lu\n",
	     (unsigned long)s.flushes, (unsigned long)s.flushes_range, hw.hook_flush_vm,
	     hw.hook_flush_range, hw.kicks, hw.rcu_syncs);
	hlog("hyp: moves: %u of %u blocks of 2 MiB, %lu leaves zapped, %lu flushes\n", st.moves,
	     st.moves_want, st.move_leaves, st.move_flushes);
	hlog("hyp: migration: %s; full copy %lu MiB, %u rounds, %lu pages copied in rounds "
	     "(last %lu), %lu in the final stop; pages differing at the switch %ld; dirty stats: "
	     "marked=%lu reaped=%lu fast=%lu ring pushes=%lu overflows=%lu split=%lu "
	     "collapsed=%lu\n",
	     st.mig == MIG_OFF ? "off" :
	     st.mig_switched   ? "switched to region B" :
				 "unfinished",
	     st.mig_bytes_full >> 20, st.mig_rounds, st.mig_pages - st.mig_final_pages,
	     st.mig_last_round_pages, st.mig_final_pages, st.mig_mismatch, (unsigned long)ds.marked,
	     (unsigned long)ds.reaped, (unsigned long)ds.fast_fixed, (unsigned long)ds.ring_pushes,
	     (unsigned long)ds.ring_overflows, (unsigned long)ds.split_leaves,
	     (unsigned long)ds.collapsed);
	hlog("hyp: stats: %s\n", buf);

#define CHECK(cond, c_, what)                                               \
	do {                                                                \
		bool ok_ = (cond);                                          \
		hlog("hyp: check %-50s %s\n", what, ok_ ? "ok" : "FAILED"); \
		if (!ok_ && code == EXIT_PASS)                              \
			code = (c_);                                        \
	} while (0)
	if (checks) {
		CHECK(st.first_exit_ok, EXIT_CHECK, "first exit: fetch at the kernel's entry");
		CHECK(st.phase >= 1, EXIT_CHECK, "the test init ran");
		CHECK(st.verdict_set && st.verdict == 0, EXIT_GUEST,
		      "guest checksums held (MEMCHECK-OK)");
		CHECK(st.cpu_on == 1 && cpus[1].exits > 0, EXIT_CHECK,
		      "second vcpu started by PSCI CPU_ON and ran");
		CHECK(st.moves == st.moves_want, EXIT_CHECK, "every requested move done");
		if (st.moves_want)
			CHECK(st.move_leaves >= 1 && st.move_flushes >= 1, EXIT_CHECK,
			      "moves zapped leaves and flushed");
		if (st.mig != MIG_OFF) {
			CHECK(st.mig_switched && st.mig_mismatch == 0, EXIT_MIGRATE,
			      "migration: region B exact at the switch");
			CHECK(st.mig_rounds >= 1 && ds.reaped > 0, EXIT_CHECK,
			      "migration: dirty rounds reaped pages");
		}
		CHECK(check_backing(NULL) == 0, EXIT_CHECK, "stage 2 maps RAM to its backing");
		CHECK(!kvm_is_bugged(kvm) && s.refused_changes == 0, EXIT_CHECK, "VM not bugged");
	}
#undef CHECK
	/* A failed run keeps its tables for finish() (keep_tables). */
	if (code != EXIT_PASS)
		return code;
	kvm_destroy_vm(kvm);
	vm_destroyed = true;
	hlog("hyp: VM destroyed; pool bytes in use %lu (high water %lu)\n",
	     (unsigned long)pool.in_use, (unsigned long)pool.high_water);
	if (pool.in_use && code == EXIT_PASS)
		code = EXIT_CHECK;
	return code;
}

void hyp_main(void);
void hyp_main(void)
{
	hlog("hyp: s2mmu arm64-linux example, EL%lu, MIDR 0x%lx\n", sysreg_read(CurrentEL) >> 2,
	     sysreg_read(midr_el1));
	if ((sysreg_read(CurrentEL) >> 2) != 2)
		fail(EXIT_TRAP, "not entered at EL2 (virtualization=on?)");
	setup();
	vcpu_loop(&cpus[0]);
}
