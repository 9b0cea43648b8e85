// SPDX-License-Identifier: MIT
/*
 * x86 Linux partition example: Debian's unmodified amd64 kernel as the guest
 * of a hypervisor on s2mmu, booted through the 32-bit boot protocol, its RAM
 * demand-faulted through the library (it starts with no nested mapping).
 *
 * Two CPUs. The boot CPU (linux_main) loads the kernel and runs the vcpu
 * (vcpu_loop); the second CPU (ap_main) plays the host's memory manager on
 * the guest's requests (port 0xf4, below): it moves 2 MiB blocks of guest RAM through the
 * MMU notifier while the guest checksums its memory, and it live-migrates the
 * guest's RAM to a new place (dirty-log pre-copy with write protection, stop,
 * copy the rest, compare byte for byte, switch). The library's kick is an
 * NMI to the vcpu's CPU, which SVM intercepts.
 *
 * The guest owns its CPU's local APIC and the legacy devices; linux.c says
 * what it must not reach (lx_msr_rules, lx_io_ports) and emulates that.
 *
 * The guest's port 0xf4 (intercepted; QEMU's isa-debug-exit sits behind it,
 * which only the host writes): OUT 1 booted, 2/3 moves start/stop, 4 migrate,
 * 5/6 memory check after the moves passed/failed, 7/8 the same after the
 * migration, 9 partition probes done, 0x10 end of run. IN returns 1 once the
 * migration is over.
 */
#include "../common/klib.h"
#include "../common/tables.h"
#include "../x86-common/smp.h"
#include "../x86-common/x86.h"
#include "lx.h"
#include "s2mmu/env-freestanding.h"
#include "s2mmu/notifier.h"

extern uint64_t host_gdt[];
extern volatile uint64_t nmi_count;
void nmi_isr(void);

#define NCPUS 2
/*
 * The RCU's CPU indices: the vcpu runs on the boot CPU (under bochs only
 * CPU 0 gets the PIC's interrupts, which the guest's timer needs), the
 * host's memory manager on the second one.
 */
#define CPU_VCPU 0
#define CPU_HOST 1
#define DEBUG_EXIT_PASS 0x10 /* QEMU status 33 */
#define DEBUG_EXIT_FAIL 0x11 /* QEMU status 35 */
#define COM1 0x3f8
#define PORT_HV 0xf4

static struct s2_page_pool pool;
static struct s2_freestanding fs;
static struct s2_fs_cpu rcu_cpus[NCPUS];
static uint8_t cpu_of_apic[256], cpu_known[256];
static struct kvm *kvm;
static unsigned vm_fmt_flags; /* its S2_FMTF_*, for the tables line */
static struct kvm_vcpu *vcpu;
static uint8_t host_tss[2][104] __attribute__((aligned(16)));
static volatile uint32_t host_apic_id, vcpu_apic_id;

/* Guest RAM's 2 MiB blocks: where each is in host-physical memory now. */
static volatile uint64_t blk_hpa[LX_NBLOCKS];
static uint64_t spare[LX_SPARE_SIZE / LX_BLOCK];
static unsigned nspare;

/* Between the CPUs: the guest's requests and the vcpu's stop. */
static volatile uint32_t moves_on, migrate_req, migrated, job_pending;
static volatile uint32_t pause_req, paused;
/* PML: the host's request that the vcpu hand its buffer over, and its answer. */
static volatile uint32_t sync_req, sync_done;
static volatile uint32_t in_flush;
static uint32_t flush_spins;

/* The boot protocol, from the multiboot information. */
static uint64_t kernel_addr, kernel_size, initrd_addr, initrd_size;
static char cmdline[1024];

static struct {
	uint64_t exits[LX_EXIT_NR];
	uint64_t fixed, spurious, retry;
	uint64_t msr_reads, msr_writes, msr_svm_writes, gp_injected, ud_injected;
	uint64_t io_exits, resets_blocked, a20_blocked, pci_writes_dropped, bus_master_blocked,
		kicks;
	bool booted, probes_done, moves_ok, moves_bad, mig_ok, mig_bad, ended;
	/* Moves. */
	uint64_t moves, moves_in_guest, moved_leaves;
	uint64_t move_kicks; /* kick exits while the moves ran */
	/* Migration. */
	uint64_t mig_rounds, mig_round_pages[8], mig_final_pages, mig_dropped, mig_diff_pages;
	uint64_t mig_wp_faults;
	bool mig_hw;
} st;

static const char *const exit_names[LX_EXIT_NR] = { "npf",	"msr",	    "io",   "kick",
						    "svm-insn", "shutdown", "init", "other" };

/* ---- console (COM1, shared with the guest's console between exits) ---- */

void klib_putc(char c)
{
	if (c == '\n')
		klib_putc('\r');
	while (!(inb(COM1 + 5) & 0x20))
		;
	outb(COM1, (uint8_t)c);
}

static void console_init(void)
{
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x80);
	outb(COM1 + 0, 0x01);
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03);
	outb(COM1 + 2, 0xc7);
}

static void __attribute__((noreturn)) finish(bool pass)
{
	static uint32_t finishing;

	/* One verdict, even if both CPUs get here. */
	if (__atomic_exchange_n(&finishing, 1, __ATOMIC_ACQ_REL))
		for (;;)
			__asm__ volatile("cli; hlt");
	kprintf("RESULT: %s\n", pass ? "PASS" : "FAIL");
	/*
	 * A failed run says where its tables are (the page pool) and, under
	 * QEMU, waits while run.sh saves them (../common/keep-tables.sh).
	 */
	if (!pass && kvm) {
		char line[192];

		kprintf("%s", tables_line(line, sizeof(line), "lx", kvm, vm_fmt_flags, 0,
					  LX_POOL_HPA, LX_POOL_SIZE));
		if (lx_arch.keep_tables)
			lx_arch.keep_tables();
	}
	outb(PORT_HV, pass ? DEBUG_EXIT_PASS : DEBUG_EXIT_FAIL);
	/* bochs has no isa-debug-exit: its magic breakpoint stops the run. */
	__asm__ volatile("xchg %%bx, %%bx" : : : "memory");
	for (;;)
		__asm__ volatile("cli; hlt");
}

void lx_fail(const char *what, long code)
{
	kprintf("lx: FATAL: %s (%ld)\n", what, code);
	finish(false);
}

static bool check(bool ok, const char *what)
{
	kprintf("  [%s] %s\n", ok ? " ok " : "FAIL", what);
	return ok;
}

/* ---- local APIC: the NMI kick, the vcpu's wake-up of the boot CPU ---- */

#define LAPIC ((volatile uint32_t *)(uintptr_t)0xfee00000u)
#define APIC_ICR_LO (0x300 / 4)
#define APIC_ICR_HI (0x310 / 4)

static void icr(uint32_t dest, uint32_t lo)
{
	while (LAPIC[APIC_ICR_LO] & (1u << 12))
		__asm__ volatile("pause");
	LAPIC[APIC_ICR_HI] = dest << 24;
	LAPIC[APIC_ICR_LO] = lo;
	while (LAPIC[APIC_ICR_LO] & (1u << 12))
		__asm__ volatile("pause");
}

/* The host's CPU -> the vcpu's: an NMI, which SVM/VMX turn into an exit. */
static void kick_vcpu(void)
{
	icr(vcpu_apic_id, (4u << 8) | (1u << 14)); /* delivery mode NMI, assert */
}

/*
 * vcpu's CPU -> the host's: a fixed IPI through the local APIC the guest owns.
 * The guest may be between its writes of ICR_HI and ICR_LO: keep its ICR_HI.
 */
static void wake_host(void)
{
	uint32_t hi = LAPIC[APIC_ICR_HI];

	icr(host_apic_id, (1u << 14) | WAKE_VECTOR);
	LAPIC[APIC_ICR_HI] = hi;
}

/* The host IDT's NMI gate (smp.c fills vectors 32-255 only). */
static void install_nmi_gate(void)
{
	struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} idtr;
	uint64_t a = (uint64_t)(uintptr_t)nmi_isr;
	volatile uint32_t *g;

	__asm__ volatile("sidt %0" : "=m"(idtr));
	g = (volatile uint32_t *)(uintptr_t)(idtr.base + 2 * 16);
	g[0] = (uint32_t)((a & 0xffff) | ((uint32_t)SEL_CODE64 << 16));
	g[1] = (uint32_t)((a & 0xffff0000) | 0x8e00);
	g[2] = (uint32_t)(a >> 32);
	g[3] = 0;
}

/* ---- environment hooks and RCU ---- */

static hpa_t hva_to_hpa(uint64_t hva)
{
	if (hva - LX_RAM_HVA < LX_RAM_SIZE) {
		uint64_t off = hva - LX_RAM_HVA;

		return __atomic_load_n(&blk_hpa[off / LX_BLOCK], __ATOMIC_ACQUIRE) + off % LX_BLOCK;
	}
	return hva;
}

static int gfn_to_pfn(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, bool write,
		      struct s2_pfn_info *out)
{
	uint64_t hva = slot->userspace_addr + ((gfn - slot->base_gfn) << 12);

	(void)ctx;
	(void)write;
	out->pfn = hva_to_hpa(hva) >> 12;
	out->writable = true;
	if (hva - LX_RAM_HVA < LX_RAM_SIZE) {
		out->host_level = 2; /* blocks move whole: 2 MiB at most */
		out->memtype = S2_MT_WB;
	} else {
		out->host_level = 1; /* the local APIC page */
		out->memtype = S2_MT_UC;
	}
	return 0;
}

static void env_log(void *ctx, enum s2_log_level level, const char *msg)
{
	(void)ctx;
	kprintf("s2mmu[%d]: %s\n", (int)level, msg);
}

static void env_kick(void *ctx, struct kvm_vcpu *v)
{
	(void)ctx;
	(void)v;
	kick_vcpu();
}

static uint32_t lapic_id_now(void)
{
	return LAPIC[0x20 / 4] >> 24;
}

/*
 * BREAK_FLUSH has no kick: a flush of the boot CPU's waits for a vcpu that
 * nothing makes leave guest mode. After this many spins the run ends with
 * the check that says so, instead of hanging.
 */
#define FLUSH_SPIN_LIMIT 1000000u
static void env_relax(void *ctx)
{
	(void)ctx;
	__asm__ volatile("pause");
	if (in_flush && lapic_id_now() == host_apic_id && ++flush_spins == FLUSH_SPIN_LIMIT) {
		kprintf("checks:\n  [FAIL] a move's flush still waits for the vcpu to leave guest "
			"mode after %u spins: it was never kicked\n",
			flush_spins);
		finish(false);
	}
}

static unsigned this_cpu(void *ctx)
{
	uint32_t id = lapic_id_now() & 0xff;

	(void)ctx;
	if (!__atomic_load_n(&cpu_known[id], __ATOMIC_ACQUIRE))
		lx_fail("library call from a CPU the RCU does not know", (long)id);
	return cpu_of_apic[id];
}

static void cpu_register(uint32_t apic_id, unsigned cpu)
{
	cpu_of_apic[apic_id & 0xff] = (uint8_t)cpu;
	__atomic_store_n(&cpu_known[apic_id & 0xff], 1, __ATOMIC_RELEASE);
}

void lx_rcu_offline(void)
{
	s2_fs_rcu_offline(&fs, this_cpu(NULL));
}

void lx_rcu_online(void)
{
	s2_fs_rcu_online(&fs, this_cpu(NULL));
}

/* ---- the partition: MSRs ---- */

#define MSR_APIC_BASE 0x1bu
#define MSR_MTRR_DEF_TYPE 0x2ffu
#define MSR_SYSCFG 0xc0010010u
#define MSR_HWCR 0xc0010015u
#define MSR_VM_CR 0xc0010114u
#define MSR_VM_HSAVE_PA 0xc0010117u

/*
 * Intercepted MSRs. The SVM MSRs (VM_CR, IGNNE, SMM_CTL, VM_HSAVE_PA,
 * SVM_KEY): a guest that repointed VM_HSAVE_PA would own the host at the
 * next #VMEXIT. APIC_BASE writes: the local APIC must stay where the host's
 * kick and memslot expect it. SYSCFG, HWCR and the MTRRs: memory types and
 * model controls of the physical CPU. EFER writes: SVME must stay set. All
 * but EFER and APIC_BASE are emulated by shadows the guest reads back.
 */
const struct lx_msr_rule lx_msr_rules[] = {
	{ MSR_APIC_BASE, MSR_APIC_BASE, false, true },
	{ 0x200, 0x20f, true, true }, /* variable-range MTRRs */
	{ 0x250, 0x250, true, true }, /* fixed-range MTRRs */
	{ 0x258, 0x259, true, true }, /* fixed-range MTRRs */
	{ 0x268, 0x26f, true, true }, /* fixed-range MTRRs */
	{ MSR_MTRR_DEF_TYPE, MSR_MTRR_DEF_TYPE, true, true },
	{ MSR_EFER, MSR_EFER, false, true },
	{ MSR_SYSCFG, MSR_SYSCFG, true, true },
	{ MSR_HWCR, MSR_HWCR, true, true },
	{ 0xc0010114, 0xc0010118, true, true },
};
const unsigned lx_msr_nrules = sizeof(lx_msr_rules) / sizeof(lx_msr_rules[0]);

static struct {
	uint32_t msr;
	uint64_t val;
} shadow[64];
static unsigned nshadow;

static void shadow_init(void)
{
	bool amd = lx_arch.fmt == S2_FMT_X86_NPT;

	for (unsigned i = 0; i < lx_msr_nrules; i++) {
		const struct lx_msr_rule *r = &lx_msr_rules[i];

		if (!r->read)
			continue;
		for (uint32_t m = r->first; m <= r->last; m++) {
			if (nshadow == sizeof(shadow) / sizeof(shadow[0]))
				lx_fail("too many shadowed MSRs", (long)m);
			shadow[nshadow].msr = m;
			/*
			 * The SVM MSRs read 0 (VM_CR: SVM enabled, not locked);
			 * on Intel the AMD ones do not exist: 0 as well.
			 */
			shadow[nshadow].val =
				m >= MSR_VM_CR || (m >= MSR_SYSCFG && !amd) ? 0 : rdmsr(m);
			nshadow++;
		}
	}
}

static uint64_t *shadow_of(uint32_t msr)
{
	for (unsigned i = 0; i < nshadow; i++)
		if (shadow[i].msr == msr)
			return &shadow[i].val;
	return NULL;
}

static void handle_msr(const struct lx_exit *e)
{
	struct lx_gprs *g = lx_arch.gprs();
	uint64_t v = (lx_arch.get_rax() & 0xffffffff) | (g->r[2] << 32);
	uint64_t *sh = shadow_of(e->msr);

	if (!e->write) {
		st.msr_reads++;
		if (!sh) {
			lx_arch.inject(13);
			st.gp_injected++;
			return;
		}
		lx_arch.set_rax(*sh & 0xffffffff);
		g->r[2] = *sh >> 32;
		lx_arch.set_rip(e->next_rip);
		return;
	}
	st.msr_writes++;
	if (e->msr == MSR_EFER) {
		lx_arch.set_efer(v);
	} else if (e->msr == MSR_APIC_BASE) {
		/* Same value (or only BSP/enable bits as they are): a no-op; else #GP. */
		if (v != rdmsr(MSR_APIC_BASE)) {
			lx_arch.inject(13);
			st.gp_injected++;
			return;
		}
	} else if (sh) {
		if (e->msr >= MSR_VM_CR)
			st.msr_svm_writes++;
		*sh = v;
	} else {
		/* VMX: MSRs outside the bitmap's ranges exit whether a rule names them or not. */
		lx_arch.inject(13);
		st.gp_injected++;
		return;
	}
	lx_arch.set_rip(e->next_rip);
}

/* ---- the partition: I/O ports ---- */

const uint16_t lx_io_ports[] = {
	0x64,				     /* i8042 command: reset pulse, output port */
	0x92,				     /* system control port A: fast reset */
	0xcf8, 0xcf9, 0xcfa, 0xcfb,	     /* PCI address; 0xcf9 reset control */
	0xcfc, 0xcfd, 0xcfe, 0xcff, PORT_HV, /* PCI data, the guest's hypervisor port */
};
const unsigned lx_io_nports = sizeof(lx_io_ports) / sizeof(lx_io_ports[0]);

static uint32_t pci_addr;
static uint8_t port92 = 2; /* what the guest reads back: A20 on */
static struct {
	uint32_t addr, orig;
} bar_orig[64];
static unsigned nbar_orig;

static uint32_t pci_in(uint16_t port, unsigned size)
{
	__asm__ volatile("outl %0, %w1" : : "a"(pci_addr & ~3u), "Nd"((uint16_t)0xcf8));
	if (size == 1)
		return inb(port);
	if (size == 2) {
		uint16_t v;

		__asm__ volatile("inw %w1, %0" : "=a"(v) : "Nd"(port));
		return v;
	}
	uint32_t v;

	__asm__ volatile("inl %w1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static void pci_out(uint16_t port, unsigned size, uint32_t v)
{
	__asm__ volatile("outl %0, %w1" : : "a"(pci_addr & ~3u), "Nd"((uint16_t)0xcf8));
	if (size == 1)
		outb(port, (uint8_t)v);
	else if (size == 2)
		__asm__ volatile("outw %w0, %w1" : : "a"((uint16_t)v), "Nd"(port));
	else
		__asm__ volatile("outl %0, %w1" : : "a"(v), "Nd"(port));
}

/*
 * PCI configuration writes: the command register (bus mastering forced off:
 * no DMA without an IOMMU), the interrupt line, and a BAR's sizing (all
 * ones) and restore (its value before the sizing). Anything else (moving a
 * BAR, the chipset's PAM/SMRAM and routing registers) is dropped.
 */
static void pci_write(uint16_t port, unsigned size, uint32_t v)
{
	unsigned reg = (pci_addr & 0xfc) + (port - 0xcfc);

	if (!(pci_addr & 0x80000000u)) {
		st.pci_writes_dropped++;
		return;
	}
	if (reg <= 0x04 && reg + size > 0x04) {
		unsigned bit = (0x04 - reg) * 8 + 2; /* PCI_COMMAND_MASTER */

		if (v & (1u << bit))
			st.bus_master_blocked++;
		pci_out(port, size, v & ~(1u << bit));
		return;
	}
	if (reg == 0x3c && size == 1) {
		pci_out(port, size, v);
		return;
	}
	if (size == 4 && ((reg >= 0x10 && reg <= 0x24) || reg == 0x30)) {
		uint32_t a = pci_addr & ~3u;

		if (v >= 0xfffff800u) {
			uint32_t cur = pci_in(port, 4);
			unsigned i;

			for (i = 0; i < nbar_orig && bar_orig[i].addr != a; i++)
				;
			if (i == nbar_orig && nbar_orig < 64)
				bar_orig[nbar_orig++] = (typeof(bar_orig[0])){ a, cur };
			else if (i < nbar_orig)
				bar_orig[i].orig = cur;
			pci_out(port, size, v);
			return;
		}
		for (unsigned i = 0; i < nbar_orig; i++)
			if (bar_orig[i].addr == a && bar_orig[i].orig == v) {
				pci_out(port, size, v);
				return;
			}
	}
	st.pci_writes_dropped++;
}

static void hv_port_out(uint32_t v);

static void handle_io(const struct lx_exit *e)
{
	uint32_t mask = e->size == 4 ? 0xffffffffu : (1u << (8 * e->size)) - 1;
	uint32_t v = (uint32_t)lx_arch.get_rax() & mask, in = mask;

	st.io_exits++;
	if (e->string)
		lx_fail("string I/O on an intercepted port", e->port);
	if (e->write) {
		switch (e->port) {
		case 0x64:
			/*
			 * Pulse commands with line 0 (reset) low are a reset;
			 * writing the output port (0xd1) or disabling A20 (0xdd)
			 * would mask address bit 20 for the host too.
			 */
			if (e->size == 1 && (v & 0xf0) == 0xf0 && !(v & 1))
				st.resets_blocked++;
			else if (e->size == 1 && (v == 0xd1 || v == 0xdd))
				st.a20_blocked++;
			else
				outb(0x64, (uint8_t)v);
			break;
		case 0x92:
			/* Bit 0 resets the machine, bit 1 gates A20: both stay the host's. */
			if (v & 1)
				st.resets_blocked++;
			if (!(v & 2))
				st.a20_blocked++;
			port92 = (uint8_t)(v & ~1u);
			break;
		case 0xcf8 ... 0xcfb:
			if (e->port == 0xcf8 && e->size == 4)
				pci_addr = v;
			else if (e->port == 0xcf9 && e->size == 1 && (v & 4))
				st.resets_blocked++;
			break;
		case 0xcfc ... 0xcff: pci_write(e->port, e->size, v); break;
		case PORT_HV: hv_port_out(v & 0xff); break;
		default: lx_fail("OUT to a port without a rule", e->port);
		}
	} else {
		switch (e->port) {
		case 0x64: in = inb(0x64); break;
		case 0x92: in = port92; break;
		case 0xcf8 ... 0xcfb:
			if (e->port == 0xcf8 && e->size == 4)
				in = pci_addr;
			else if (e->port == 0xcf9 && e->size == 1)
				in = 0;
			break;
		case 0xcfc ... 0xcff:
			if (pci_addr & 0x80000000u)
				in = pci_in(e->port, e->size);
			break;
		case PORT_HV: in = __atomic_load_n(&migrated, __ATOMIC_ACQUIRE) ? 1 : 0; break;
		default: lx_fail("IN from a port without a rule", e->port);
		}
		lx_arch.set_rax((lx_arch.get_rax() & ~(uint64_t)mask) | (in & mask));
	}
	lx_arch.set_rip(e->next_rip);
}

/* ---- the boot CPU's jobs: moves and the migration ---- */

static void copy64(uint64_t dst, uint64_t src, uint64_t bytes)
{
	for (uint64_t i = 0; i < bytes; i += 8)
		*(volatile uint64_t *)(uintptr_t)(dst + i) =
			*(volatile uint64_t *)(uintptr_t)(src + i);
}

static void fill64(uint64_t dst, uint64_t v, uint64_t bytes)
{
	for (uint64_t i = 0; i < bytes; i += 8)
		*(volatile uint64_t *)(uintptr_t)(dst + i) = v;
}

static bool same(uint64_t a, uint64_t b, uint64_t bytes)
{
	for (uint64_t i = 0; i < bytes; i += 8)
		if (*(volatile uint64_t *)(uintptr_t)(a + i) !=
		    *(volatile uint64_t *)(uintptr_t)(b + i))
			return false;
	return true;
}

#define POISON 0xdeadbeefdeadbeefull

/*
 * One move, as a host memory manager moves a page a VM uses: invalidate the
 * block's hva range (the library zaps its gfns and flushes, kicking the vcpu
 * out of guest mode), copy it to a spare block, poison the old one, repoint
 * the host's mapping, end the invalidation. The guest keeps running.
 */
static void move_block(unsigned i)
{
	uint64_t hva = LX_RAM_HVA + (uint64_t)i * LX_BLOCK, old = blk_hpa[i], to;
	struct kvm_mmu_stats before, after;
	bool in_guest;
	int r;

	if (!nspare)
		lx_fail("no spare block", 0);
	to = spare[--nspare];
	kvm_get_stats(kvm, &before);
	in_guest = kvm_vcpu_mode(vcpu) == IN_GUEST_MODE;
	in_flush = 1;
	flush_spins = 0;
	r = kvm_mmu_notifier_invalidate_range_start(kvm, hva, hva + LX_BLOCK, false);
	in_flush = 0;
	if (r)
		lx_fail("invalidate_range_start", r);
	copy64(to, old, LX_BLOCK);
	fill64(old, POISON, LX_BLOCK);
	__atomic_store_n(&blk_hpa[i], to, __ATOMIC_RELEASE);
	r = kvm_mmu_notifier_invalidate_range_end(kvm, hva, hva + LX_BLOCK, false);
	if (r)
		lx_fail("invalidate_range_end", r);
	kvm_get_stats(kvm, &after);
	spare[nspare++] = old;
	st.moves++;
	st.moved_leaves += after.zapped_leaves - before.zapped_leaves;
	if (in_guest && after.zapped_leaves != before.zapped_leaves)
		st.moves_in_guest++;
}

/* Moves until the guest says stop, one every few milliseconds. */
static void moves_job(void)
{
	unsigned i = 0;

	kprintf("lx[cpu %u]: moving guest RAM blocks while the guest checksums\n", host_apic_id);
	while (__atomic_load_n(&moves_on, __ATOMIC_ACQUIRE)) {
		uint64_t t = rdtsc();

		move_block(i);
		i = (i + 37) % LX_NBLOCKS;
		while (rdtsc() - t < 40000000ull && __atomic_load_n(&moves_on, __ATOMIC_ACQUIRE)) {
			s2_fs_rcu_quiescent(&fs, CPU_HOST);
			__asm__ volatile("pause");
		}
	}
	kprintf("lx[cpu %u]: %llu moves, %llu of them zapped leaves while the vcpu ran\n",
		host_apic_id, (unsigned long long)st.moves, (unsigned long long)st.moves_in_guest);
}

static uint64_t dirty_bitmap[LX_RAM_SIZE / 4096 / 64];

/*
 * Copy the pages the bitmap names to the destination. DROP_DIRTY (the
 * sabotaged build) loses one page: the first dirty page whose contents
 * differ from the destination's is never copied, in this harvest or any
 * later one (a migration that lost track of it), so the comparison at the
 * stop must find it. The guest may have written that page back to what the
 * destination holds by the stop (its file's data recur in the page cache;
 * a run once passed that way): then the last harvest, with the vcpu
 * stopped, drops its first differing page instead.
 */
static uint64_t dropped_gpa = ~0ull;

static uint64_t copy_dirty(bool at_stop)
{
	uint64_t n = 0;

	if (DROP_DIRTY && at_stop && dropped_gpa != ~0ull &&
	    same(LX_DEST_HPA + dropped_gpa, hva_to_hpa(LX_RAM_HVA + dropped_gpa), 4096)) {
		kprintf("lx: DROP_DIRTY: the page dropped at gpa 0x%llx holds the destination's "
			"contents again\n",
			(unsigned long long)dropped_gpa);
		dropped_gpa = ~0ull;
	}

	for (unsigned w = 0; w < sizeof(dirty_bitmap) / 8; w++) {
		uint64_t bits = dirty_bitmap[w];

		while (bits) {
			unsigned b = (unsigned)__builtin_ctzll(bits);
			uint64_t gpa = ((uint64_t)w * 64 + b) << 12;

			bits &= bits - 1;
			n++;
			if (DROP_DIRTY && dropped_gpa == ~0ull &&
			    !same(LX_DEST_HPA + gpa, hva_to_hpa(LX_RAM_HVA + gpa), 4096)) {
				dropped_gpa = gpa;
				st.mig_dropped++;
				kprintf("lx: DROP_DIRTY: dirty page at gpa 0x%llx is never copied\n",
					(unsigned long long)gpa);
			}
			if (gpa == dropped_gpa)
				continue;
			copy64(LX_DEST_HPA + gpa, hva_to_hpa(LX_RAM_HVA + gpa), 4096);
		}
	}
	return n;
}

static void stop_vcpu(void)
{
	__atomic_store_n(&pause_req, 1, __ATOMIC_RELEASE);
	kick_vcpu();
	while (!__atomic_load_n(&paused, __ATOMIC_ACQUIRE)) {
		s2_fs_rcu_quiescent(&fs, CPU_HOST);
		__asm__ volatile("pause");
	}
}

static void resume_vcpu(void)
{
	__atomic_store_n(&pause_req, 0, __ATOMIC_RELEASE);
}

/*
 * PML: the vcpu hands its page-modification log to the library after every
 * exit (vmx.c), so a harvest must first see the vcpu pass through host mode:
 * kick it and wait until its loop answered this request. Entries it logs
 * after that are the next harvest's.
 */
static void sync_vcpu(void)
{
	uint32_t want = __atomic_add_fetch(&sync_req, 1, __ATOMIC_ACQ_REL);

	kick_vcpu();
	while (__atomic_load_n(&sync_done, __ATOMIC_ACQUIRE) != want) {
		s2_fs_rcu_quiescent(&fs, CPU_HOST);
		__asm__ volatile("pause");
	}
}

/*
 * Live migration of the guest's RAM to LX_DEST_HPA: dirty logging by write
 * protection, a full copy while the guest runs, pre-copy rounds of the pages
 * dirtied since, then the vcpu stops, the last dirty pages are copied, the
 * two copies are compared byte for byte, and the host switches the guest to
 * the destination (through the notifier, as a move of every block) and
 * poisons the source.
 */
static void migrate_job(void)
{
	struct kvm_dirty_stats ds0, ds1;
	long r;

	kprintf("lx[cpu %u]: migrating guest RAM to hpa 0x%x (%s dirty log)\n", host_apic_id,
		LX_DEST_HPA, DIRTY_NAME);
	kvm_get_dirty_stats(kvm, &ds0);
	r = kvm_set_memslot_flags(kvm, 0, KVM_MEM_LOG_DIRTY_PAGES);
	if (r)
		lx_fail("kvm_set_memslot_flags(LOG_DIRTY_PAGES)", r);
	st.mig_hw = kvm_dirty_log_hw(kvm);
	for (unsigned i = 0; i < LX_NBLOCKS; i++) {
		copy64(LX_DEST_HPA + (uint64_t)i * LX_BLOCK, blk_hpa[i], LX_BLOCK);
		s2_fs_rcu_quiescent(&fs, CPU_HOST);
	}
	for (unsigned round = 0; round < 8; round++) {
		if (DIRTY_PML)
			sync_vcpu();
		r = kvm_get_dirty_log(kvm, 0, dirty_bitmap);
		if (r < 0)
			lx_fail("kvm_get_dirty_log", r);
		st.mig_round_pages[round] = copy_dirty(false);
		st.mig_rounds++;
		s2_fs_rcu_quiescent(&fs, CPU_HOST);
		if (st.mig_round_pages[round] < 256 && round >= 1)
			break;
	}
	stop_vcpu();
	r = kvm_get_dirty_log(kvm, 0, dirty_bitmap);
	if (r < 0)
		lx_fail("kvm_get_dirty_log (final)", r);
	st.mig_final_pages = copy_dirty(true);
	for (uint64_t gpa = 0; gpa < LX_RAM_SIZE; gpa += 4096)
		if (!same(LX_DEST_HPA + gpa, hva_to_hpa(LX_RAM_HVA + gpa), 4096))
			st.mig_diff_pages++;
	kvm_get_dirty_stats(kvm, &ds1);
	st.mig_wp_faults = ds1.fast_fixed - ds0.fast_fixed;
	kprintf("lx: migration: %llu pre-copy rounds (", (unsigned long long)st.mig_rounds);
	for (unsigned i = 0; i < st.mig_rounds; i++)
		kprintf("%s%llu", i ? " " : "", (unsigned long long)st.mig_round_pages[i]);
	kprintf(" pages), vcpu stopped, %llu dirty pages copied at the stop, %llu pages differ "
		"after the copy\n",
		(unsigned long long)st.mig_final_pages, (unsigned long long)st.mig_diff_pages);
	if (st.mig_diff_pages) {
		kprintf("checks:\n  [FAIL] destination differs from the stopped guest's RAM in %llu "
			"pages: not switching\n",
			(unsigned long long)st.mig_diff_pages);
		finish(false);
	}
	/* Switch: every block now lives at the destination; the source is poisoned. */
	r = kvm_mmu_notifier_invalidate_range_start(kvm, LX_RAM_HVA, LX_RAM_HVA + LX_RAM_SIZE,
						    false);
	if (r)
		lx_fail("invalidate_range_start (switch)", r);
	for (unsigned i = 0; i < LX_NBLOCKS; i++) {
		uint64_t old = blk_hpa[i];

		__atomic_store_n(&blk_hpa[i], LX_DEST_HPA + (uint64_t)i * LX_BLOCK,
				 __ATOMIC_RELEASE);
		fill64(old, POISON, LX_BLOCK);
	}
	r = kvm_mmu_notifier_invalidate_range_end(kvm, LX_RAM_HVA, LX_RAM_HVA + LX_RAM_SIZE, false);
	if (r)
		lx_fail("invalidate_range_end (switch)", r);
	r = kvm_set_memslot_flags(kvm, 0, 0);
	if (r)
		lx_fail("kvm_set_memslot_flags(0)", r);
	__atomic_store_n(&migrated, 1, __ATOMIC_RELEASE);
	resume_vcpu();
	kprintf("lx[cpu %u]: switched, the guest runs from the destination\n", host_apic_id);
}

/* ---- the report ---- */

static void __attribute__((noreturn)) report_and_finish(void);
static void report_and_finish(void)
{
	struct kvm_mmu_stats s;
	char buf[512], what[192];
	bool pass = true;

	kvm_get_stats(kvm, &s);
	kvm_format_stats(kvm, buf, sizeof(buf));
	kprintf("\n==== x86 Linux partition, %s: summary ====\n", lx_arch.name);
	kprintf("exits:");
	for (unsigned k = 0; k < LX_EXIT_NR; k++)
		kprintf(" %s=%llu", exit_names[k], (unsigned long long)st.exits[k]);
	kprintf("\nnested faults: fixed=%llu spurious=%llu retry=%llu\n",
		(unsigned long long)st.fixed, (unsigned long long)st.spurious,
		(unsigned long long)st.retry);
	kprintf("partition: %llu MSR reads, %llu MSR writes (%llu to SVM MSRs, shadowed), %llu "
		"#GP and %llu #UD injected, %llu port exits, %llu resets blocked, %llu PCI config "
		"writes dropped, %llu bus-master enables refused, %llu A20 changes refused\n",
		(unsigned long long)st.msr_reads, (unsigned long long)st.msr_writes,
		(unsigned long long)st.msr_svm_writes, (unsigned long long)st.gp_injected,
		(unsigned long long)st.ud_injected, (unsigned long long)st.io_exits,
		(unsigned long long)st.resets_blocked, (unsigned long long)st.pci_writes_dropped,
		(unsigned long long)st.bus_master_blocked, (unsigned long long)st.a20_blocked);
	kprintf("library: %s\n", buf);
	lx_arch.print_stats();
	kprintf("kicks: %llu NMIs taken by the vcpu's host\n", (unsigned long long)nmi_count);
	kprintf("page pool: %zu KiB in use, high water %zu KiB\n", pool.in_use >> 10,
		pool.high_water >> 10);

	kprintf("checks:\n");
	pass &= check(st.booted, "Linux reached /init (GUEST-OK)");
	pass &= check(st.probes_done && st.msr_svm_writes > 0 && lx_arch.host_intact(),
		      "the guest's writes to VM_HSAVE_PA and the SVM MSRs were shadowed; the "
		      "CPU's own are intact");
	pass &= check(st.resets_blocked >= 3,
		      "the guest's reset attempts (0xcf9, 0x64, 0x92) were blocked");
	pass &= check(st.gp_injected > 0, "moving APIC_BASE got #GP");
	ksnprintf(what, sizeof(what),
		  "%llu moves through the notifier while the guest checksummed, %llu zapped "
		  "leaves of a running vcpu",
		  (unsigned long long)st.moves, (unsigned long long)st.moves_in_guest);
	pass &= check(st.moves >= 8 && st.moves_in_guest >= 1, what);
	/*
	 * A flush that finds the vcpu in guest mode must kick it out. Without
	 * the kick (BREAK_FLUSH) the flush either waits until relax() gives up,
	 * or, when the guest happens to exit on its own soon enough (its port
	 * I/O), returns late and the run gets here: the emulators' TLBs do not
	 * outlive a world switch, so nothing else shows it.
	 */
	ksnprintf(what, sizeof(what),
		  "the moves' flushes kicked the running vcpu out (%llu kick exits during the "
		  "moves)",
		  (unsigned long long)st.move_kicks);
	pass &= check(st.move_kicks > 0, what);
	pass &= check(st.moves_ok && !st.moves_bad, "the guest's memory check after the moves");
	ksnprintf(what, sizeof(what),
		  "migration: %s dirty log (%llu write faults, %llu PML entries), %llu pages dirty "
		  "at the stop, 0 pages differ",
		  DIRTY_NAME, (unsigned long long)st.mig_wp_faults,
		  (unsigned long long)(lx_arch.pml_entries ? lx_arch.pml_entries() : 0),
		  (unsigned long long)st.mig_final_pages);
	/*
	 * Write protection takes write faults; hardware dirty bits need none.
	 * With PML the logs the vcpu handed over are the only record a harvest
	 * reads (no scan of the dirty bits): the byte comparison depends on them.
	 */
	pass &= check(migrated && st.mig_hw == DIRTY_HW && (DIRTY_HW || st.mig_wp_faults > 0) &&
			      (!DIRTY_PML || (lx_arch.pml_entries && lx_arch.pml_entries() > 0)) &&
			      st.mig_final_pages > 0 && !st.mig_diff_pages,
		      what);
	pass &= check(st.mig_ok && !st.mig_bad, "the guest's memory check after the migration");
	pass &= check(!st.exits[LX_EXIT_SHUTDOWN] && !st.exits[LX_EXIT_OTHER] &&
			      !st.exits[LX_EXIT_INIT],
		      "no shutdown, INIT or unexpected exit");
	pass &= check(!kvm_is_bugged(kvm) && !s.refused_changes, "library not bugged");
	finish(pass);
}

static void hv_port_out(uint32_t v)
{
	switch (v) {
	case 1:
		st.booted = true;
		kprintf("lx: the guest reached /init\n");
		break;
	case 2:
		__atomic_store_n(&moves_on, 1, __ATOMIC_RELEASE);
		__atomic_store_n(&job_pending, 1, __ATOMIC_RELEASE);
		wake_host();
		break;
	case 3: __atomic_store_n(&moves_on, 0, __ATOMIC_RELEASE); break;
	case 4:
		__atomic_store_n(&migrate_req, 1, __ATOMIC_RELEASE);
		__atomic_store_n(&job_pending, 1, __ATOMIC_RELEASE);
		wake_host();
		break;
	case 5: st.moves_ok = true; break;
	case 6: st.moves_bad = true; break;
	case 7: st.mig_ok = true; break;
	case 8: st.mig_bad = true; break;
	case 9: st.probes_done = true; break;
	case 0x10:
		/* The boot CPU's jobs are over when the guest ends (it waited). */
		report_and_finish();
	default: kprintf("lx: guest wrote 0x%x to port 0xf4\n", v);
	}
}

/* ---- the vcpu ---- */

static void handle_npf(const struct lx_exit *e)
{
	int r = kvm_tdp_page_fault(vcpu, e->gpa, e->access);

	switch (r) {
	case RET_PF_FIXED: st.fixed++; break;
	case RET_PF_SPURIOUS: st.spurious++; break;
	case RET_PF_RETRY: st.retry++; break;
	default:
		kprintf("lx: nested fault at gpa 0x%llx (access 0x%x, rip 0x%llx, info 0x%llx): "
			"%d, no memslot or device there\n",
			(unsigned long long)e->gpa, e->access, (unsigned long long)e->rip,
			(unsigned long long)e->raw[1], r);
		lx_fail("nested fault", r);
	}
}

static void load_host_tss(unsigned cpu)
{
	uint64_t t = (uint64_t)(uintptr_t)host_tss[cpu];
	unsigned slot = 3 + 2 * cpu;

	host_tss[cpu][102] = sizeof(host_tss[cpu]);
	host_gdt[slot] = (sizeof(host_tss[cpu]) - 1) | ((t & 0xffffff) << 16) | (0x89ull << 40) |
			 (((t >> 24) & 0xff) << 56);
	host_gdt[slot + 1] = t >> 32;
	__asm__ volatile("ltr %w0" : : "r"((uint16_t)(slot * 8)) : "memory");
}

/* ---- loading Linux (the 32-bit boot protocol) ---- */

static uint8_t *gmem(uint64_t gpa)
{
	return (uint8_t *)(uintptr_t)hva_to_hpa(LX_RAM_HVA + gpa);
}

static void e820(uint8_t *zp, unsigned i, uint64_t addr, uint64_t size, uint32_t type)
{
	uint8_t *e = zp + 0x2d0 + 20 * i;

	memcpy(e, &addr, 8);
	memcpy(e + 8, &size, 8);
	memcpy(e + 16, &type, 4);
}

static void load_linux(void)
{
	const uint8_t *k = (const uint8_t *)(uintptr_t)kernel_addr;
	uint8_t *zp = gmem(LX_ZERO_PAGE_GPA);
	unsigned setup_sects = k[0x1f1] ? k[0x1f1] : 4, hdr_end = 0x202 + k[0x201];
	uint64_t pm_off = (setup_sects + 1) * 512ull, pm_size = kernel_size - pm_off;
	uint32_t v, initrd_gpa;
	uint16_t version;
	uint64_t gdt[4] = { 0, 0, 0x00cf9a000000ffffull, 0x00cf92000000ffffull };

	if (memcmp(k + 0x202, "HdrS", 4))
		lx_fail("module 0 is no bzImage (no HdrS)", 0);
	memcpy(&version, k + 0x206, 2);
	if (version < 0x20c)
		lx_fail("boot protocol too old", version);
	/* QEMU's RAM starts zeroed; the first MiB is the BIOS area the kernel reads. */
	memset(gmem(0), 0, 0x100000);
	memcpy(zp + 0x1f1, k + 0x1f1, hdr_end - 0x1f1);
	zp[0x210] = 0xff;	     /* type_of_loader: undefined */
	zp[0x211] &= (uint8_t)~0x20; /* loadflags: no QUIET_FLAG */
	v = LX_KERNEL_GPA;
	memcpy(zp + 0x214, &v, 4); /* code32_start */
	v = LX_CMDLINE_GPA;
	memcpy(zp + 0x228, &v, 4); /* cmd_line_ptr */
	initrd_gpa = (uint32_t)((LX_RAM_SIZE - initrd_size) & ~0xfffffull);
	memcpy(zp + 0x218, &initrd_gpa, 4);
	v = (uint32_t)initrd_size;
	memcpy(zp + 0x21c, &v, 4);
	zp[0x1e8] = 4; /* e820_entries */
	e820(zp, 0, 0, 0x9fc00, 1);
	e820(zp, 1, 0x9fc00, 0x400, 2);
	e820(zp, 2, 0xf0000, 0x10000, 2);
	e820(zp, 3, 0x100000, LX_RAM_SIZE - 0x100000, 1);
	memcpy(gmem(LX_GDT_GPA), gdt, sizeof(gdt));
	memcpy(gmem(LX_CMDLINE_GPA), cmdline, strlen(cmdline) + 1);
	memcpy(gmem(LX_KERNEL_GPA), k + pm_off, pm_size);
	memcpy(gmem(initrd_gpa), (const void *)(uintptr_t)initrd_addr, initrd_size);
	kprintf("lx: bzImage protocol %u.%02u, %llu bytes at gpa 0x%x, initrd %llu bytes at 0x%x\n"
		"lx: command line \"%s\"\n",
		version >> 8, version & 0xff, (unsigned long long)pm_size, LX_KERNEL_GPA,
		(unsigned long long)initrd_size, initrd_gpa, cmdline);
}

/* Multiboot v1: the bzImage and the initrd are modules 0 and 1; the command
 * line's first word is the image's own name (QEMU), the rest Linux's. */
static void read_multiboot(uint32_t mbi_pa)
{
	const uint32_t *mbi = (const uint32_t *)(uintptr_t)mbi_pa;
	const char *c = "";

	if (!(mbi[0] & (1u << 3)) || mbi[5] < 2)
		lx_fail("need two multiboot modules (bzImage, initrd)", mbi[5]);
	const uint32_t *mods = (const uint32_t *)(uintptr_t)mbi[6];

	kernel_addr = mods[0];
	kernel_size = mods[1] - mods[0];
	initrd_addr = mods[4];
	initrd_size = mods[5] - mods[4];
	if (mbi[0] & (1u << 2))
		c = (const char *)(uintptr_t)mbi[4];
	while (*c && *c != ' ')
		c++;
	while (*c == ' ')
		c++;
	if (strlen(c) >= sizeof(cmdline))
		lx_fail("command line too long", (long)strlen(c));
	memcpy(cmdline, c, strlen(c) + 1);
	if (initrd_addr + initrd_size > LX_POOL_HPA)
		lx_fail("modules overlap the page pool", (long)(initrd_addr + initrd_size));
}

static void setup_vm(void)
{
	struct kvm_vm_params p = { 0 };
	struct kvm_memory_slot ram = {
		.id = 0, .base_gfn = 0, .npages = LX_RAM_SIZE >> 12, .userspace_addr = LX_RAM_HVA
	};
	struct kvm_memory_slot lapic = {
		.id = 1, .base_gfn = LX_LAPIC_GPA >> 12, .npages = 1, .userspace_addr = LX_LAPIC_GPA
	};
	int r;

	for (unsigned i = 0; i < LX_NBLOCKS; i++)
		blk_hpa[i] = LX_RAM_HVA + (uint64_t)i * LX_BLOCK;
	for (nspare = 0; nspare < LX_SPARE_SIZE / LX_BLOCK; nspare++)
		spare[nspare] = LX_SPARE_HPA + (uint64_t)nspare * LX_BLOCK;
	s2_pool_init(&pool, (void *)(uintptr_t)LX_POOL_HPA, LX_POOL_HPA, LX_POOL_SIZE);
	s2_freestanding_init(&fs, &pool);
	r = s2_freestanding_smp(&fs, rcu_cpus, NCPUS, this_cpu);
	if (r)
		lx_fail("s2_freestanding_smp", r);
	s2_fs_rcu_online(&fs, CPU_VCPU);
	fs.ops.gfn_to_pfn = gfn_to_pfn;
	fs.ops.log = env_log;
	fs.ops.relax = env_relax;
	fs.ops.kick = BREAK_FLUSH ? NULL : env_kick;
	p.fmt = lx_arch.fmt;
	p.gpa_bits = 48;
	p.env = &fs.env;
	if (lx_arch.caps(&p))
		lx_fail("CPU lacks what the example needs", 0);
	vm_fmt_flags = p.fmt_flags;
	r = kvm_create_vm(&p, &kvm);
	if (r)
		lx_fail("kvm_create_vm", r);
	/*
	 * NPT: dirty logging by write protection, not the hardware's D bits.
	 * DIRTY_HW (EPT with A/D): the hardware's dirty bits instead, found by
	 * a scan at each harvest, or with DIRTY_PML from the vcpu's PML buffer.
	 */
	r = kvm_dirty_log_set_caps(kvm, DIRTY_PML ? KVM_DIRTY_LOG_PML :
					DIRTY_HW  ? 0 :
						    KVM_DIRTY_LOG_WRPROTECT);
	if (r)
		lx_fail("kvm_dirty_log_set_caps", r);
	r = kvm_vcpu_create(kvm, 0, &vcpu);
	if (r)
		lx_fail("kvm_vcpu_create", r);
	r = kvm_set_memslot(kvm, &ram);
	if (!r)
		r = kvm_set_memslot(kvm, &lapic);
	if (r)
		lx_fail("kvm_set_memslot", r);
}

/* The vcpu's CPU (the boot CPU): enter Linux and handle its exits. */
static void __attribute__((noreturn)) vcpu_loop(void)
{
	struct lx_exit e;

	if (lx_arch.setup(LX_KERNEL_GPA, LX_ZERO_PAGE_GPA))
		lx_fail("SVM/VMX set-up", 0);
	kprintf("lx[cpu %u]: entering Linux at gpa 0x%x, boot_params at 0x%x\n", vcpu_apic_id,
		LX_KERNEL_GPA, LX_ZERO_PAGE_GPA);
	for (;;) {
		uint32_t sync = __atomic_load_n(&sync_req, __ATOMIC_ACQUIRE);

		/* The last exit's PML entries are handed over: answer the host. */
		if (sync != sync_done)
			__atomic_store_n(&sync_done, sync, __ATOMIC_RELEASE);
		s2_fs_rcu_quiescent(&fs, CPU_VCPU);
		if (__atomic_load_n(&pause_req, __ATOMIC_ACQUIRE)) {
			s2_fs_rcu_offline(&fs, CPU_VCPU);
			__atomic_store_n(&paused, 1, __ATOMIC_RELEASE);
			while (__atomic_load_n(&pause_req, __ATOMIC_ACQUIRE))
				__asm__ volatile("pause");
			__atomic_store_n(&paused, 0, __ATOMIC_RELEASE);
			s2_fs_rcu_online(&fs, CPU_VCPU);
		}
		if (lx_arch.run(vcpu, &e))
			lx_fail("VM entry", 0);
		st.exits[e.kind]++;
		switch (e.kind) {
		case LX_EXIT_NPF: handle_npf(&e); break;
		case LX_EXIT_MSR: handle_msr(&e); break;
		case LX_EXIT_IO: handle_io(&e); break;
		case LX_EXIT_KICK:
			st.kicks++;
			if (__atomic_load_n(&moves_on, __ATOMIC_ACQUIRE))
				st.move_kicks++;
			break;
		case LX_EXIT_SVM_INSN:
			lx_arch.inject(6);
			st.ud_injected++;
			break;
		case LX_EXIT_SHUTDOWN:
			kprintf("lx: the guest shut down (triple fault) at rip 0x%llx\n",
				(unsigned long long)e.rip);
			report_and_finish();
		default:
			kprintf("lx: unexpected exit %s: 0x%llx 0x%llx 0x%llx at rip 0x%llx\n",
				exit_names[e.kind], (unsigned long long)e.raw[0],
				(unsigned long long)e.raw[1], (unsigned long long)e.raw[2],
				(unsigned long long)e.rip);
			report_and_finish();
		}
	}
}

/*
 * The second CPU: the host's memory manager. It sleeps until the guest asks
 * for moves or the migration (an IPI wakes the HLT; `sti; hlt` takes an
 * interrupt that arrived before it).
 */
void ap_main(void);
void ap_main(void)
{
	load_host_tss(1);
	smp_init_ap();
	LAPIC[0x350 / 4] = 1u << 16; /* LINT0 masked: the PIC is the guest's */
	host_apic_id = lapic_id_now();
	cpu_register(host_apic_id, CPU_HOST);
	s2_fs_rcu_online(&fs, CPU_HOST);
	__atomic_store_n(&smp_ap_running, 1, __ATOMIC_RELEASE);
	for (;;) {
		s2_fs_rcu_quiescent(&fs, CPU_HOST);
		s2_fs_rcu_offline(&fs, CPU_HOST);
		while (!__atomic_load_n(&job_pending, __ATOMIC_ACQUIRE))
			__asm__ volatile("sti; hlt; cli" : : : "memory");
		s2_fs_rcu_online(&fs, CPU_HOST);
		job_pending = 0;
		if (__atomic_load_n(&moves_on, __ATOMIC_ACQUIRE))
			moves_job();
		if (__atomic_exchange_n(&migrate_req, 0, __ATOMIC_ACQ_REL))
			migrate_job();
	}
}

void linux_main(uint32_t mbi_pa);
void linux_main(uint32_t mbi_pa)
{
	console_init();
	kprintf("\nlx: s2mmu x86 Linux partition, %s%s%s\n", lx_arch.name,
		BREAK_FLUSH ? " [BREAK_FLUSH: no kick, no TLB flush]" : "",
		DROP_DIRTY ? " [DROP_DIRTY: the migration drops one dirty page]" : "");
	read_multiboot(mbi_pa);
	load_host_tss(0);
	smp_init_bsp();
	install_nmi_gate();
	vcpu_apic_id = lapic_id_now();
	cpu_register(vcpu_apic_id, CPU_VCPU);
	setup_vm();
	load_linux();
	shadow_init();
	if (smp_start_ap())
		lx_fail("the second CPU did not start", 0);
	vcpu_loop();
}
