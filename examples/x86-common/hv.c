// SPDX-License-Identifier: MIT
/*
 * The shared half of the x86 example hypervisors (Intel VMX + EPT under
 * bochs, AMD SVM + NPT under QEMU): a VM on s2mmu with four memslots, a guest
 * that starts with no second-stage mappings, and an exit loop that sends
 * every second-stage fault to kvm_tdp_page_fault() and acts on its answer:
 * re-enter, emulate MMIO (a 16550 UART, decoded from the guest's
 * instruction) or drop a write to the read-only memslot. At the end it
 * checks what the guest reported against what it saw itself and prints
 * RESULT: PASS or FAIL.
 *
 * Two CPUs: the vcpu runs on the second one (ap_main); the boot CPU (hv_main)
 * sets the VM up and then plays the host's memory manager. On the guest's
 * request, while the guest keeps running, it invalidates the hva range behind
 * a guest range through the notifier entry points, moves the page behind it
 * and flushes; the library's flush kicks the vcpu out of guest mode (an IPI),
 * waits until it has left it, and the vcpu flushes its TLB before it
 * re-enters. The faults that follow in that range are counted: only a flush
 * that reached the running CPU's TLB makes them happen.
 *
 * Both CPUs call into the library, so the environment runs the freestanding
 * quiescent-state RCU (s2_freestanding_smp(), CPU index from the local APIC
 * id): each CPU comes online before its first library call, reports a
 * quiescent state at the top of its loop, and is offline while it runs the
 * guest (the vcpu's CPU) or sleeps in HLT (the boot CPU). With the
 * single-CPU default the library would refuse the second (probe) vcpu.
 *
 * Host memory is identity-mapped (hva == hpa) except for the page the zap
 * moves, so hva_to_hpa() is the host's whole page table.
 */
#include "hv.h"

#include "../common/klib.h"
#include "../common/tables.h"
#include "layout.h"
#include "s2mmu/decode.h"
#include "s2mmu/env-freestanding.h"
#include "s2mmu/notifier.h"
#include "smp.h"
#include "x86.h"

extern const uint8_t guest_blob[], guest_blob_end[];
extern uint64_t host_gdt[];

static struct s2_page_pool pool;
static struct s2_freestanding fs;

#ifndef HV_PREPARED
#define HV_PREPARED 0
#endif
#if HV_PREPARED
#include "s2mmu/map.h"
#endif
/*
 * The library's table pages come from their own pool, a static array of
 * exactly what the sizing calculator counts at build time for the regions
 * the guest can make the library map (docs/static.md): root, tables and
 * the two vcpus' memory caches. Regions in ascending gpa order with their
 * smallest leaf: the UART page gets MMIO entries (tables like a 4 KiB
 * leaf's, docs/mmio.md); the huge slot is counted at 2 MiB, its leaf on a
 * CPU without 1 GiB pages. Demand faulting (the default), the pool's high
 * water must stay within the figure; fully prepared (HV_PREPARED), every
 * region is mapped when the VM is created from the pages kvm_mmu_prepare()
 * reserved, and any table page the library asks of the env after prepare
 * is a failure. HV_TABLE_POOL_SHORT=n builds a pool n pages short.
 */
#define HV_GEOM S2_SIZING_GEOM_4K(4)
#define HV_GEOM_PAGES(g, s, m) S2_SIZING_REGION_PAGES(HV_GEOM, g, s, m)
#define HV_GEOM_SHARED(ag, as, am, bg, bm) S2_SIZING_SHARED_PAGES(HV_GEOM, ag, as, am, bg, bm)
#define HV_TABLES_SUM                                        \
	(HV_GEOM_PAGES(GUEST_BOOT_GPA, GUEST_BOOT_SIZE, 1) + \
	 HV_GEOM_PAGES(GUEST_RAM_GPA, GUEST_RAM_SIZE, 2) +   \
	 HV_GEOM_PAGES(GUEST_ROM_GPA, GUEST_ROM_SIZE, 1) +   \
	 HV_GEOM_PAGES(GUEST_UART_GPA, 4096u, 1) +           \
	 HV_GEOM_PAGES(GUEST_HUGE_GPA, GUEST_HUGE_SIZE, 2))
#define HV_TABLES_SHARED                                                        \
	(HV_GEOM_SHARED(GUEST_BOOT_GPA, GUEST_BOOT_SIZE, 1, GUEST_RAM_GPA, 2) + \
	 HV_GEOM_SHARED(GUEST_RAM_GPA, GUEST_RAM_SIZE, 2, GUEST_ROM_GPA, 1) +   \
	 HV_GEOM_SHARED(GUEST_ROM_GPA, GUEST_ROM_SIZE, 1, GUEST_UART_GPA, 1) +  \
	 HV_GEOM_SHARED(GUEST_UART_GPA, 4096u, 1, GUEST_HUGE_GPA, 2))
#define HV_TABLES (HV_TABLES_SUM - HV_TABLES_SHARED)
/* Root + tables + each vcpu's memory cache (levels - 1 pages). */
#define HV_TABLE_PAGES (1 + HV_TABLES + HV_NCPUS_VCPUS * 3)
#define HV_NCPUS_VCPUS 2
#ifndef HV_TABLE_POOL_SHORT
#define HV_TABLE_POOL_SHORT 0
#endif
static uint8_t table_mem[(HV_TABLE_PAGES - HV_TABLE_POOL_SHORT) * 4096]
	__attribute__((aligned(4096)));
static struct s2_page_pool table_pool;
static uint64_t table_figure; /* bytes: s2_sizing_pool_bytes() */
#if HV_PREPARED
static volatile bool prepared;
static uint64_t allocs_after_prepare;
#endif

static void *hv_alloc_table(void *ctx, size_t bytes, hpa_t *pa)
{
	(void)ctx;
#if HV_PREPARED
	if (prepared) {
		allocs_after_prepare++;
		kprintf("hv: [FAIL] the library asked the env for a %zu-byte table page after "
			"kvm_mmu_prepare()\n",
			bytes);
		return NULL;
	}
#endif
	return s2_pool_alloc(&table_pool, bytes, pa);
}

static void hv_free_table(void *ctx, void *va, hpa_t pa, size_t bytes)
{
	(void)ctx;
	(void)pa;
	s2_pool_free(&table_pool, va, bytes);
}
/* The RCU's per-CPU state: index 0 the boot CPU, 1 the vcpu's CPU. */
#define HV_NCPUS 2
static struct s2_fs_cpu rcu_cpus[HV_NCPUS];
/* Local APIC id -> CPU index, filled by each CPU before it comes online. */
static uint8_t cpu_of_apic[256];
static uint8_t cpu_known[256];
static struct kvm *kvm;
static struct kvm_vcpu *vcpu;
/* A second vcpu the boot CPU faults with, to watch the invalidation protocol. */
static struct kvm_vcpu *probe_vcpu;
/* The leaf size the huge slot gets: 1 GiB unless the CPU lacks it. */
static unsigned huge_leaf_level;
static unsigned vm_fmt_flags; /* the VM's S2_FMTF_*, for hv_print_tables() */
static bool mmio_cache_on;    /* the vendor part turned cached MMIO entries on */

static uint8_t host_tss[2][104] __attribute__((aligned(16)));

/* Between the two CPUs. */
static volatile uint32_t bsp_apic_id, ap_apic_id;
static volatile uint32_t zap_requested, zap_asked, zap_done;
static volatile uint64_t kicks_sent;
/* The host's one non-identity mapping: the migrated page, once moved. */
static volatile uint32_t migrated;
static uint64_t migrate_hva;

/* What happened, for the report and the checks. */
static struct {
	uint64_t exits[HV_EXIT_NR];
	uint64_t fixed, spurious, retry, mmio, ro_write;
	uint64_t mmio_exits; /* exits a cached MMIO entry caused */
	uint64_t slot_faults[4];
	uint64_t decode_len_mismatch, decode_dir_mismatch;
	uint64_t uart_chars;
	bool reported[T_NR];
	uint32_t detail[T_NR];
	/* The zap check (zap_* written by the boot CPU, the rest by the vcpu). */
	uint64_t kicks;
	volatile bool zap_armed;
	gpa_t zap_start, zap_end;
	uint64_t zap_refaults, zap_leaves;
	bool zap_retry_inside, zap_while_in_guest;
	/* vcpu mode right after each flush returned (never EXITING). */
	enum kvm_vcpu_mode mode_after_zap, mode_after_flush;
	/* Grace periods (synchronize_rcu) in the whole run and in the scratch
	 * memslot's add and delete during the zap (each frees the memslot
	 * array it replaced once the grace period is over). */
	uint64_t gp_scratch;
	bool scratch_vcpu_online;
	/* Interrupts the vcpu's CPU took on its own IDT after its first exit. */
	uint64_t host_irqs_after_exit;
} st;

static const char *const exit_names[HV_EXIT_NR] = { "s2-fault", "hypercall", "hlt", "kick",
						    "other" };
static const char *const slot_names[4] = { "boot", "ram", "rom", "huge" };

static const struct kvm_memory_slot slots[4] = {
	{ .id = 0,
	  .base_gfn = GUEST_BOOT_GPA >> 12,
	  .npages = GUEST_BOOT_SIZE >> 12,
	  .userspace_addr = GUEST_BOOT_HPA },
	{ .id = 1,
	  .base_gfn = GUEST_RAM_GPA >> 12,
	  .npages = GUEST_RAM_SIZE >> 12,
	  .userspace_addr = GUEST_RAM_HPA },
	{ .id = 2,
	  .base_gfn = GUEST_ROM_GPA >> 12,
	  .npages = GUEST_ROM_SIZE >> 12,
	  .userspace_addr = GUEST_ROM_HPA,
	  .flags = KVM_MEM_READONLY },
	{ .id = 3,
	  .base_gfn = GUEST_HUGE_GPA >> 12,
	  .npages = GUEST_HUGE_SIZE >> 12,
	  .userspace_addr = GUEST_HUGE_HPA },
};

/*
 * Where the stage-2 tables are, for a memory image of them (a failed run
 * saves it: QEMU's pmemsave, ../common/keep-tables.sh, or bochs's
 * writemem; docs/examples.md shows the s2mmu dump of it): prints the pool
 * holding every table page and the root (../common/tables.h) and gives the
 * pool's range. False (nothing printed) before the VM exists.
 */
bool hv_print_tables(uint64_t *base, uint64_t *size)
{
	char line[192];

	if (!kvm)
		return false;
	/* Every table page comes from table_mem, prepared or not (hv_alloc_table). */
	*base = (uint64_t)(uintptr_t)table_mem;
	*size = sizeof(table_mem);
	kprintf("%s", tables_line(line, sizeof(line), "hv", kvm, vm_fmt_flags, 0, *base, *size));
	return true;
}

static void fail(const char *what, long code)
{
	kprintf("hv: FATAL: %s (%ld)\n", what, code);
	hv_finish(false);
}

/* ---- environment hooks ---- */

static hpa_t hva_to_hpa(uint64_t hva)
{
	if (__atomic_load_n(&migrated, __ATOMIC_ACQUIRE) && hva - migrate_hva < MIGRATE_BYTES)
		return MIGRATE_HPA + (hva - migrate_hva);
	return hva;
}

/*
 * Backing memory is physically contiguous (2 MiB pieces at least), so the
 * host never limits the leaf size: the library still checks slot bounds and
 * gpa/hpa congruence.
 */
static int hv_gfn_to_pfn(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, bool write,
			 struct s2_pfn_info *out)
{
	(void)ctx;
	(void)write;
	out->pfn = hva_to_hpa(slot->userspace_addr + ((gfn - slot->base_gfn) << 12)) >> 12;
	out->writable = true;
	out->host_level = 3;
	out->memtype = S2_MT_WB;
	return 0;
}

static void hv_log(void *ctx, enum s2_log_level level, const char *msg)
{
	(void)ctx;
	kprintf("s2mmu[%d]: %s\n", (int)level, msg);
}

/* The library's kick: make the vcpu in guest mode exit, with an IPI. */
static void hv_kick(void *ctx, struct kvm_vcpu *v)
{
	(void)ctx;
	(void)v;
	kicks_sent++;
	lapic_send_ipi(ap_apic_id, KICK_VECTOR);
}

/*
 * BREAK_FLUSH has no kick, so the zap's flush waits for a vcpu that nothing
 * makes leave guest mode: the library's wait only ends when the guest gives
 * up its loop (ZAP_SPIN_LIMIT rounds, far too slow under bochs). The boot
 * CPU's relax then ends the run after this many spins in that flush, with
 * the zap check failed, as it is.
 */
#define BREAK_FLUSH_SPINS 1000000u
static volatile uint32_t zap_in_flush;
static uint32_t zap_flush_spins;

static void hv_relax(void *ctx)
{
	(void)ctx;
	__asm__ volatile("pause");
	if (BREAK_FLUSH && zap_in_flush && lapic_id() == bsp_apic_id &&
	    ++zap_flush_spins == BREAK_FLUSH_SPINS) {
		kprintf("checks:\n  [FAIL] zapped range faulted again after the flush: the flush "
			"still waits for the vcpu to leave guest mode after %u spins (no kick)\n",
			zap_flush_spins);
		hv_finish(false);
	}
}

/* ---- RCU: which CPU is this, and its quiescent states ---- */

static void cpu_register(uint32_t apic_id, unsigned cpu)
{
	cpu_of_apic[apic_id & 0xff] = (uint8_t)cpu;
	__atomic_store_n(&cpu_known[apic_id & 0xff], 1, __ATOMIC_RELEASE);
}

/* The env's this_cpu: the calling CPU's index, from its local APIC id. */
static unsigned hv_this_cpu(void *ctx)
{
	uint32_t id = lapic_id() & 0xff;

	(void)ctx;
	if (!__atomic_load_n(&cpu_known[id], __ATOMIC_ACQUIRE))
		fail("library call from a CPU the RCU does not know; APIC id", (long)id);
	return cpu_of_apic[id];
}

static unsigned self(void)
{
	return hv_this_cpu(NULL);
}

void hv_rcu_offline(void)
{
	s2_fs_rcu_offline(&fs, self());
}

void hv_rcu_online(void)
{
	s2_fs_rcu_online(&fs, self());
}

/* ---- guest memory ---- */

/* Host pointer to guest-physical @gpa, or NULL when no memslot holds it. */
static uint8_t *gpa_to_host(gpa_t gpa)
{
	struct kvm_memory_slot s;

	if (kvm_gfn_to_memslot(kvm, gpa >> 12, &s))
		return NULL;
	return (uint8_t *)(uintptr_t)hva_to_hpa(s.userspace_addr + (gpa - (s.base_gfn << 12)));
}

/*
 * Fetch the instruction at the guest's rip. The guest runs with paging off
 * and a zero CS base, so rip is a guest-physical address. Returns the bytes
 * read (up to 15; fewer when a page past the first has no memslot).
 */
static unsigned fetch_insn(uint64_t rip, uint8_t buf[15])
{
	unsigned n;

	for (n = 0; n < 15; n++) {
		const uint8_t *p = gpa_to_host(rip + n);

		if (!p)
			break;
		buf[n] = *p;
	}
	return n;
}

/* The guest runs 32-bit protected-mode code: the library's decoder in that mode. */
static int decode_at(const struct hv_exit *e, struct s2_insn *m)
{
	uint8_t insn[15];
	unsigned n = fetch_insn(e->rip, insn);
	int r = s2_decode_x86(insn, n, S2_X86_MODE_32, e->rip, m);

	if (r) {
		kprintf("hv: cannot decode at rip 0x%llx (%d):", (unsigned long long)e->rip, r);
		for (unsigned i = 0; i < n && i < 8; i++)
			kprintf(" %02x", insn[i]);
		kprintf("\n");
		return -1;
	}
	/* Cross-check the hardware's instruction length where it gives one. */
	if (e->insn_len && e->insn_len != m->len) {
		if (!st.decode_len_mismatch)
			kprintf("hv: decoded length %u != exit length %u at rip 0x%llx\n", m->len,
				e->insn_len, (unsigned long long)e->rip);
		st.decode_len_mismatch++;
	}
	/* A misconfiguration exit reports no direction (docs/mmio.md). */
	if (!e->mmio_exit && m->dir != S2_DIR_RMW &&
	    (m->dir == S2_DIR_STORE) != !!(e->access & S2_ACC_WRITE))
		st.decode_dir_mismatch++;
	return 0;
}

/* ---- the emulated UART ---- */

static uint8_t uart_ier, uart_scr;

static uint64_t uart_read(unsigned off)
{
	switch (off) {
	case UART_IER: return uart_ier;
	case UART_LSR: return UART_LSR_THRE | UART_LSR_TEMT;
	case UART_SCR: return uart_scr;
	default: return 0;
	}
}

static void uart_write(unsigned off, uint64_t v)
{
	switch (off) {
	case UART_THR:
		klib_putc((char)v);
		st.uart_chars++;
		break;
	case UART_IER: uart_ier = (uint8_t)v; break;
	case UART_SCR: uart_scr = (uint8_t)v; break;
	default: break;
	}
}

static void emulate_mmio(const struct hv_exit *e)
{
	struct x86_gprs *g = hv_arch.gprs();
	struct s2_x86_regs r = { .rip = e->rip };
	struct s2_insn m;
	unsigned off = (unsigned)(e->gpa - GUEST_UART_GPA);
	uint64_t val = 0, store = 0;
	int w;

	if (e->gpa < GUEST_UART_GPA || e->gpa >= GUEST_UART_GPA + 4096) {
		kprintf("hv: guest access to 0x%llx: no memslot and no device\n",
			(unsigned long long)e->gpa);
		fail("unhandled MMIO", 0);
	}
	if (decode_at(e, &m))
		fail("MMIO decode", 0);
	/* ALU and string forms need rflags, which this example does not pass. */
	if (m.op != S2_OP_MOV && m.op != S2_OP_XCHG)
		fail("MMIO form this example does not emulate", m.op);
	for (unsigned i = 0; i < 16; i++)
		r.gpr[i] = g->r[i];
	if (m.dir & S2_DIR_LOAD)
		val = uart_read(off);
	w = s2_x86_complete(&m, &r, val, &store);
	if (w < 0)
		fail("s2_x86_complete", w);
	if (w)
		uart_write(off, store);
	for (unsigned i = 0; i < 16; i++)
		g->r[i] = r.gpr[i];
	hv_arch.set_rip(r.rip);
	st.mmio++;
}

/* A write to the read-only memslot: ROM semantics, the write is dropped. */
static void skip_rom_write(const struct hv_exit *e)
{
	struct s2_insn m;

	if (decode_at(e, &m))
		fail("ROM write decode", 0);
	kprintf("hv: write to read-only memslot at gpa 0x%llx (RET_PF_RO_WRITE): dropped\n",
		(unsigned long long)e->gpa);
	hv_arch.set_rip(m.next_pc);
	st.ro_write++;
}

static void count_slot_fault(gpa_t gpa)
{
	for (unsigned i = 0; i < 4; i++)
		if ((gpa >> 12) - slots[i].base_gfn < slots[i].npages)
			st.slot_faults[i]++;
}

static void handle_s2_fault(const struct hv_exit *e)
{
	/* A cached MMIO entry's exit (docs/mmio.md): EPT's misconfiguration,
	 * NPT's reserved-bit NPF (what kvm_handle_npf routes the same way). */
	int r = e->mmio_exit ? kvm_mmu_page_fault_mmio(vcpu, e->gpa, e->access) :
			       kvm_tdp_page_fault(vcpu, e->gpa, e->access);

	st.mmio_exits += e->mmio_exit;

	switch (r) {
	case RET_PF_FIXED:
		st.fixed++;
		count_slot_fault(e->gpa);
		if (st.zap_armed && e->gpa >= st.zap_start && e->gpa < st.zap_end)
			st.zap_refaults++;
		break;
	case RET_PF_SPURIOUS: st.spurious++; break;
	case RET_PF_RETRY: st.retry++; break;
	case RET_PF_EMULATE_MMIO: emulate_mmio(e); break;
	case RET_PF_RO_WRITE: skip_rom_write(e); break;
	default:
		kprintf("hv: kvm_tdp_page_fault(gpa 0x%llx, access 0x%x) = %d\n",
			(unsigned long long)e->gpa, e->access, r);
		fail("fault path", r);
	}
}

/* ---- the zap, on the boot CPU ---- */

static void copy64(uint64_t dst, uint64_t src, uint64_t bytes)
{
	for (uint64_t i = 0; i < bytes; i += 8)
		*(volatile uint64_t *)(uintptr_t)(dst + i) =
			*(volatile uint64_t *)(uintptr_t)(src + i);
}

static void fill32(uint64_t dst, uint32_t v, uint64_t bytes)
{
	for (uint64_t i = 0; i < bytes; i += 4)
		*(volatile uint32_t *)(uintptr_t)(dst + i) = v;
}

/*
 * A memslot appears and goes again while the guest runs on the other CPU
 * (a device's memory plugged and unplugged; the guest never touches it).
 * Each change publishes a new memslot array and frees the old one only
 * after synchronize_rcu, which here must see the vcpu's CPU offline (in
 * guest mode) or past a quiescent state: a CPU that never reported one
 * would hang this, and a no-op grace period would not be counted.
 */
static void scratch_slot(void)
{
	struct kvm_memory_slot s = { .id = 4,
				     .base_gfn = SCRATCH_GPA >> 12,
				     .npages = SCRATCH_SIZE >> 12,
				     .userspace_addr = SCRATCH_HPA };
	uint64_t gp = __atomic_load_n(&fs.gp_seq, __ATOMIC_RELAXED);
	int r;

	st.scratch_vcpu_online = __atomic_load_n(&rcu_cpus[1].online, __ATOMIC_RELAXED);
	r = kvm_set_memslot(kvm, &s);
	if (r)
		fail("kvm_set_memslot (scratch)", r);
	r = kvm_delete_memslot(kvm, s.id);
	if (r)
		fail("kvm_set_memslot (scratch delete)", r);
	st.gp_scratch = __atomic_load_n(&fs.gp_seq, __ATOMIC_RELAXED) - gp;
}

/*
 * What a host memory manager does when it moves a page a VM uses: it
 * invalidates the host-virtual range first (the library zaps every gfn it
 * backs and flushes, kicking the vcpu that runs on the other CPU), moves the
 * data and repoints its own page table, then ends the invalidation. The
 * guest keeps running throughout; its faults on the range retry until the
 * end, then map the new page.
 */
static void zap_and_migrate(void)
{
	struct kvm_mmu_stats before, after;
	struct kvm_memory_slot s;
	uint64_t hva;
	int r;

	if (kvm_gfn_to_memslot(kvm, ZAP_GPA >> 12, &s))
		fail("zap outside a memslot", ZAP_GPA);
	hva = s.userspace_addr + (ZAP_GPA - (s.base_gfn << 12));
	migrate_hva = hva & ~(uint64_t)(MIGRATE_BYTES - 1);
	/* Let the guest get into its loop, so the zap lands in guest mode. */
	for (unsigned i = 0; i < 100000000 &&
			     (kvm_vcpu_mode(vcpu) != IN_GUEST_MODE ||
			      *(volatile uint32_t *)gpa_to_host(ZAP_ROUNDS_GPA) < ZAP_AFTER_ROUNDS);
	     i++) {
		/* No library call in progress here: let grace periods pass. */
		s2_fs_rcu_quiescent(&fs, 0);
		__asm__ volatile("pause");
	}
	kvm_get_stats(kvm, &before);
	st.zap_start = ZAP_GPA;
	st.zap_end = ZAP_GPA + ZAP_BYTES;
	st.zap_refaults = 0;
	__atomic_store_n(&st.zap_armed, true, __ATOMIC_RELEASE);
	st.zap_while_in_guest = kvm_vcpu_mode(vcpu) == IN_GUEST_MODE;

	zap_in_flush = 1;
	r = kvm_mmu_notifier_invalidate_range_start(kvm, migrate_hva, migrate_hva + MIGRATE_BYTES,
						    false);
	zap_in_flush = 0;
	if (r < 0)
		fail("invalidate_range_start", r);
	/*
	 * Its flush kicked the vcpu and returned only once the vcpu had left
	 * guest mode: the vcpu is outside it now, or already back in after
	 * handling the request, never still EXITING (on its way out, maybe
	 * still using the old translation).
	 */
	st.mode_after_zap = kvm_vcpu_mode(vcpu);
	/* Inside the invalidation a fault on the range must back off. */
	st.zap_retry_inside = kvm_tdp_page_fault(probe_vcpu, ZAP_GPA, S2_ACC_READ) == RET_PF_RETRY;
	copy64(MIGRATE_HPA, migrate_hva, MIGRATE_BYTES);
	fill32(migrate_hva, MIGRATE_POISON, MIGRATE_BYTES);
	__atomic_store_n(&migrated, 1, __ATOMIC_RELEASE);
	r = kvm_mmu_notifier_invalidate_range_end(kvm, migrate_hva, migrate_hva + MIGRATE_BYTES,
						  false);
	if (r < 0)
		fail("invalidate_range_end", r);
	/*
	 * invalidate_range_start already flushed what it zapped; the explicit
	 * flush stands for the host's own (after it changed its page tables)
	 * and is what the issue names. It only raises the same request again.
	 */
	kvm_flush_remote_tlbs(kvm);
	st.mode_after_flush = kvm_vcpu_mode(vcpu);
	kvm_get_stats(kvm, &after);
	st.zap_leaves = after.zapped_leaves - before.zapped_leaves;
	kprintf("hv[cpu %u]: zapped hva [0x%llx, 0x%llx) (gpa [0x%llx, 0x%llx)) through the "
		"notifier while the vcpu %s, moved it to hpa 0x%x: %llu leaves, flushed\n",
		bsp_apic_id, (unsigned long long)migrate_hva,
		(unsigned long long)(migrate_hva + MIGRATE_BYTES),
		(unsigned long long)(ZAP_GPA & ~(uint64_t)(MIGRATE_BYTES - 1)),
		(unsigned long long)((ZAP_GPA & ~(uint64_t)(MIGRATE_BYTES - 1)) + MIGRATE_BYTES),
		st.zap_while_in_guest ? "was in guest mode" : "was not in guest mode", MIGRATE_HPA,
		(unsigned long long)st.zap_leaves);
	scratch_slot();
	/* Now tell the guest: it must see the range fault again from here. */
	*(volatile uint32_t *)gpa_to_host(ZAP_FLAG_GPA) = 1;
	__atomic_store_n(&zap_done, 1, __ATOMIC_RELEASE);
}

/*
 * Before the report, on the vcpu's CPU: the boot CPU's zap is over (with
 * BREAK_FLUSH its flush only returns once the guest, never kicked, gives up
 * and exits by itself). This CPU waits offline: the boot CPU's memslot
 * changes wait for a grace period, which a CPU spinning online without
 * quiescent states would hold up for ever.
 */
static void wait_for_zap(void)
{
	if (!__atomic_load_n(&zap_asked, __ATOMIC_ACQUIRE))
		return;
	s2_fs_rcu_offline(&fs, 1);
	for (unsigned i = 0; i < 100000000 && !__atomic_load_n(&zap_done, __ATOMIC_ACQUIRE); i++)
		__asm__ volatile("pause");
	s2_fs_rcu_online(&fs, 1);
}

/* ---- checks and report ---- */

static bool check(bool ok, const char *what)
{
	kprintf("  [%s] %s\n", ok ? " ok " : "FAIL", what);
	return ok;
}

/* The guest's pattern, read back through the host's own view of the backing. */
static bool host_sees_pattern(gpa_t gpa, uint64_t bytes)
{
	for (uint64_t off = 0; off < bytes; off += 0x10000) {
		struct s2_mapping m;
		uint32_t want = pattern_word((unsigned)(gpa + off));

		if (kvm_mmu_lookup(kvm, gpa + off, &m) || !m.present)
			return false;
		if (*(volatile uint32_t *)(uintptr_t)m.hpa != want)
			return false;
		if (*(volatile uint32_t *)gpa_to_host(gpa + off) != want)
			return false;
	}
	return true;
}

static int leaf_level(gpa_t gpa, hpa_t want_hpa)
{
	struct s2_mapping m;

	if (kvm_mmu_lookup(kvm, gpa, &m) || !m.present || m.hpa != want_hpa)
		return -1;
	return m.level;
}

static void report_and_finish(void)
{
	static const char *const tests[T_NR] = { "",	       "uart",	     "rom",
						 "pattern-2M", "pattern-1G", "zap" };
	struct kvm_mmu_stats s;
	char buf[512];
	bool pass = true;

	wait_for_zap();
	kvm_get_stats(kvm, &s);
	kvm_format_stats(kvm, buf, sizeof(buf));
	kprintf("\n==== %s: summary ====\n", hv_arch.name);
	kprintf("exits by kind:");
	for (unsigned k = 0; k < HV_EXIT_NR; k++)
		kprintf(" %s=%llu", exit_names[k], (unsigned long long)st.exits[k]);
	kprintf("\ns2 faults: fixed=%llu spurious=%llu retry=%llu mmio=%llu ro-write=%llu\n",
		(unsigned long long)st.fixed, (unsigned long long)st.spurious,
		(unsigned long long)st.retry, (unsigned long long)st.mmio,
		(unsigned long long)st.ro_write);
	kprintf("faults fixed per memslot:");
	for (unsigned i = 0; i < 4; i++)
		kprintf(" %s=%llu", slot_names[i], (unsigned long long)st.slot_faults[i]);
	kprintf("\nlibrary: %s\n", buf);
	hv_arch.print_flushes();
	kprintf("kicks: %llu sent by the library's kick hook, %llu guest exits on them; %llu "
		"interrupts taken by the hosts\n",
		(unsigned long long)kicks_sent, (unsigned long long)st.kicks,
		(unsigned long long)ipi_isr_count);
	kprintf("page pool: %zu KiB in use, high water %zu KiB\n", pool.in_use >> 10,
		pool.high_water >> 10);
#if HV_PREPARED
	kprintf("sizing: calculator figure %llu bytes (root, tables, vcpu caches), table pool "
		"high water %zu bytes, %llu table pages asked after prepare, %llu reserve pages "
		"left\n",
		(unsigned long long)table_figure, table_pool.high_water,
		(unsigned long long)allocs_after_prepare,
		(unsigned long long)kvm_mmu_reserve_pages(kvm));
#else
	kprintf("sizing: calculator figure %llu bytes (root, tables, vcpu caches), table pool "
		"high water %zu bytes (demand faults)\n",
		(unsigned long long)table_figure, table_pool.high_water);
#endif
	kprintf("RCU (quiescent-state, %u CPUs): %llu grace periods (synchronize_rcu), %llu of "
		"them for the scratch memslot's add and delete (vcpu CPU %s then)\n",
		HV_NCPUS, (unsigned long long)__atomic_load_n(&fs.gp_seq, __ATOMIC_RELAXED),
		(unsigned long long)st.gp_scratch,
		st.scratch_vcpu_online ? "online" : "offline: in guest mode");

	kprintf("checks:\n");
	for (unsigned t = 1; t < T_NR; t++) {
		char what[64];

		ksnprintf(what, sizeof(what), "guest test %s reported pass (detail 0x%x)", tests[t],
			  st.detail[t]);
		pass &= check(st.reported[t] && !st.detail[t], what);
	}
	pass &= check(table_pool.high_water <= table_figure,
		      "table pool's high water within the sizing calculator's figure");
#if HV_PREPARED
	pass &= check(allocs_after_prepare == 0 && table_pool.high_water <= table_figure,
		      "prepared: no table page asked of the env after kvm_mmu_prepare(), pool "
		      "within the calculator's figure");
	pass &= check(!st.slot_faults[0] && !st.slot_faults[2] && !st.slot_faults[3] &&
			      st.slot_faults[1] == st.zap_refaults,
		      "prepared: no memory fault but the zap test's refaults (mapped at creation)");
#endif
	pass &= check(leaf_level(GUEST_BOOT_GPA, GUEST_BOOT_HPA) == 1,
		      "boot slot mapped with 4 KiB leaves");
	pass &= check(
		leaf_level(PATTERN_RAM_GPA, GUEST_RAM_HPA + (PATTERN_RAM_GPA - GUEST_RAM_GPA)) == 2,
		"ram slot mapped with 2 MiB leaves");
	{
		char what[64];

		ksnprintf(what, sizeof(what), "huge slot mapped with %s leaves",
			  huge_leaf_level == 3 ? "1 GiB" : "2 MiB (the CPU has no 1 GiB ones)");
		pass &= check(leaf_level(PATTERN_HUGE_GPA,
					 GUEST_HUGE_HPA + (PATTERN_HUGE_GPA - GUEST_HUGE_GPA)) ==
				      (int)huge_leaf_level,
			      what);
	}
	pass &= check(host_sees_pattern(PATTERN_RAM_GPA, PATTERN_BYTES) &&
			      host_sees_pattern(PATTERN_HUGE_GPA, PATTERN_BYTES),
		      "guest's pattern found at the hpa the tables give (host view)");
	pass &= check(st.ro_write == 1 && s.exits_ro_write == 1,
		      "one write to the read-only memslot, seen as RET_PF_RO_WRITE");
	pass &= check(st.mmio > 0 && st.uart_chars > 0, "UART output through decoded MMIO");
	if (mmio_cache_on) {
		char what[112];

		ksnprintf(what, sizeof(what),
			  "repeated MMIO accesses exit on cached entries (%llu of %llu MMIO exits, "
			  "%llu answered from them)",
			  (unsigned long long)st.mmio_exits, (unsigned long long)st.mmio,
			  (unsigned long long)s.exits_mmio_cached);
		pass &= check(st.mmio_exits > 0 && s.exits_mmio_cached > 0, what);
	}
	pass &= check(!st.decode_len_mismatch && !st.decode_dir_mismatch,
		      "decoder agrees with the exit's length and direction");
	{
		char what[128];

		ksnprintf(what, sizeof(what),
			  "zapped range faulted again after the flush (%llu leaves zapped, %llu "
			  "refaults)",
			  (unsigned long long)st.zap_leaves, (unsigned long long)st.zap_refaults);
		pass &= check(st.zap_leaves > 0 && st.zap_refaults > 0, what);
	}
	pass &= check(st.zap_while_in_guest && st.kicks > 0,
		      "the zap came from the other CPU while the vcpu was in guest mode, which the "
		      "library's flush kicked out");
	pass &= check(st.mode_after_zap != EXITING_GUEST_MODE &&
			      st.mode_after_flush != EXITING_GUEST_MODE,
		      "each flush returned only after the kicked vcpu had left guest mode");
	pass &= check(
		st.gp_scratch >= 2,
		"a grace period per memslot change on two CPUs (scratch slot added, deleted)");
	pass &= check(st.zap_retry_inside,
		      "a fault between invalidate_range_start and _end returned RET_PF_RETRY");
	pass &= check(st.host_irqs_after_exit >= 1,
		      "an interrupt the vcpu's CPU took after a VM exit went through its own IDT");
	pass &= check(!kvm_is_bugged(kvm) && !s.refused_changes, "library not bugged");
	hv_finish(pass);
}

static void handle_hypercall(const struct hv_exit *e)
{
	struct x86_gprs *g = hv_arch.gprs();
	uint64_t nr = g->r[0] & 0xffffffff, a0 = g->r[3] & 0xffffffff, a1 = g->r[1] & 0xffffffff;
	uint64_t ret = 0;

	switch (nr) {
	case HC_REPORT:
		if (a0 < T_NR) {
			st.reported[a0] = true;
			st.detail[a0] = (uint32_t)a1;
		}
		break;
	case HC_ZAP_ARM:
		if (a0 != ZAP_GPA || a1 != ZAP_BYTES)
			fail("HC_ZAP_ARM: unexpected range", (long)a0);
		__atomic_store_n(&zap_asked, 1, __ATOMIC_RELEASE);
		__atomic_store_n(&zap_requested, 1, __ATOMIC_RELEASE);
		lapic_send_ipi(bsp_apic_id, WAKE_VECTOR);
		break;
	case HC_ZAP_EXITS: ret = st.zap_refaults; break;
	case HC_DONE: report_and_finish(); break;
	default: fail("unknown hypercall", (long)nr);
	}
	g->r[0] = ret;
	hv_arch.set_rip(e->rip + (e->insn_len ? e->insn_len : 3));
}

/* ---- set-up ---- */

/* A 64-bit TSS for the CPU's TR (VM exits on VMX need a usable one). */
static void load_host_tss(unsigned cpu)
{
	uint64_t t = (uint64_t)(uintptr_t)host_tss[cpu];
	unsigned slot = 3 + 2 * cpu;

	host_tss[cpu][102] = sizeof(host_tss[cpu]); /* I/O map base past the limit */
	host_gdt[slot] = (sizeof(host_tss[cpu]) - 1) | ((t & 0xffffff) << 16) | (0x89ull << 40) |
			 (((t >> 24) & 0xff) << 56);
	host_gdt[slot + 1] = t >> 32;
	__asm__ volatile("ltr %w0" : : "r"((uint16_t)(slot * 8)) : "memory");
}

static const struct s2_sizing_region hv_regions[] = {
	{ GUEST_BOOT_GPA, GUEST_BOOT_SIZE, S2_SIZING_LEAF(1) },
	{ GUEST_RAM_GPA, GUEST_RAM_SIZE, S2_SIZING_LEAF(2) | S2_SIZING_LEAF(3) },
	{ GUEST_ROM_GPA, GUEST_ROM_SIZE, S2_SIZING_LEAF(1) },
	{ GUEST_UART_GPA, 4096, S2_SIZING_LEAF(1) },
	{ GUEST_HUGE_GPA, GUEST_HUGE_SIZE, S2_SIZING_LEAF(2) | S2_SIZING_LEAF(3) },
};
static uint64_t hv_tables; /* s2_sizing_table_pages() */

/* The run-time calculator must give the constant the pool was sized with. */
static void hv_sizing(void)
{
	struct s2_sizing_cfg cfg;
	int r;

	r = kvm_sizing_cfg(kvm, &cfg);
	if (!r)
		r = s2_sizing_table_pages(&cfg, hv_regions, 5, &hv_tables);
	if (!r)
		r = s2_sizing_pool_bytes(&cfg, hv_regions, 5, HV_NCPUS_VCPUS, &table_figure);
	if (r)
		fail("sizing calculator", r);
	if (hv_tables != HV_TABLES || table_figure != HV_TABLE_PAGES * 4096ull)
		fail("build-time and run-time sizing differ", (long)hv_tables);
}

#if HV_PREPARED
/* Reserve what the regions can need, then map every one of them. */
static void hv_prepare_and_map(void)
{
	const unsigned rwx = S2_PROT_R | S2_PROT_W | S2_PROT_X;
	int r;

	r = kvm_mmu_prepare(kvm, hv_regions, 5, HV_NCPUS_VCPUS);
	if (r)
		fail("kvm_mmu_prepare", r);
	prepared = true;
	r = kvm_mmu_map_range(vcpu, GUEST_BOOT_GPA, GUEST_BOOT_HPA, GUEST_BOOT_SIZE, rwx, S2_MT_WB);
	if (!r)
		r = kvm_mmu_map_range(vcpu, GUEST_RAM_GPA, GUEST_RAM_HPA, GUEST_RAM_SIZE, rwx,
				      S2_MT_WB);
	if (!r)
		r = kvm_mmu_map_range(vcpu, GUEST_ROM_GPA, GUEST_ROM_HPA, GUEST_ROM_SIZE,
				      S2_PROT_R | S2_PROT_X, S2_MT_WB);
	if (!r)
		r = kvm_mmu_map_range(vcpu, GUEST_HUGE_GPA, GUEST_HUGE_HPA, GUEST_HUGE_SIZE, rwx,
				      S2_MT_WB);
	if (r)
		fail("kvm_mmu_map_range", r);
	kprintf("hv: prepared: %llu table pages below the root reserved (calculator), every "
		"memslot mapped at creation; %llu reserve pages left\n",
		(unsigned long long)hv_tables, (unsigned long long)kvm_mmu_reserve_pages(kvm));
}
#endif

static void setup_vm(void)
{
	struct kvm_vm_params p = { 0 };
	uint64_t blob = (uint64_t)(guest_blob_end - guest_blob);
	int r;

	s2_pool_init(&pool, (void *)(uintptr_t)HOST_POOL_HPA, HOST_POOL_HPA, HOST_POOL_SIZE);
	s2_freestanding_init(&fs, &pool);
	s2_pool_init(&table_pool, table_mem, (hpa_t)(uintptr_t)table_mem, sizeof(table_mem));
	fs.ops.alloc_table = hv_alloc_table;
	fs.ops.free_table = hv_free_table;
	/* Two CPUs call into the library: quiescent-state RCU on both. */
	r = s2_freestanding_smp(&fs, rcu_cpus, HV_NCPUS, hv_this_cpu);
	if (r)
		fail("s2_freestanding_smp", r);
	s2_fs_rcu_online(&fs, 0);
	fs.ops.gfn_to_pfn = hv_gfn_to_pfn;
	fs.ops.log = hv_log;
	fs.ops.relax = hv_relax;
	fs.ops.kick = BREAK_FLUSH ? NULL : hv_kick;

	p.fmt = hv_arch.fmt;
	p.gpa_bits = 48;
	p.env = &fs.env;
	if (hv_arch.caps(&p))
		fail("CPU lacks what the example needs", 0);
	huge_leaf_level = p.max_leaf_level ? p.max_leaf_level : 3;
	vm_fmt_flags = p.fmt_flags;
	mmio_cache_on = p.mmio_cache == S2_MMIO_CACHE_ON;
	r = kvm_create_vm(&p, &kvm);
	if (r)
		fail("kvm_create_vm", r);
	r = kvm_vcpu_create(kvm, 0, &vcpu);
	if (!r)
		r = kvm_vcpu_create(kvm, 1, &probe_vcpu);
	if (r)
		fail("kvm_vcpu_create", r);
	for (unsigned i = 0; i < 4; i++) {
		r = kvm_set_memslot(kvm, &slots[i]);
		if (r)
			fail("kvm_set_memslot", r);
		kprintf("hv: memslot %u %-4s gpa [0x%08llx, 0x%08llx) -> hpa 0x%08llx%s\n", i,
			slot_names[i], (unsigned long long)(slots[i].base_gfn << 12),
			(unsigned long long)((slots[i].base_gfn + slots[i].npages) << 12),
			(unsigned long long)slots[i].userspace_addr,
			(slots[i].flags & KVM_MEM_READONLY) ? " read-only" : "");
	}
	hv_sizing();
#if HV_PREPARED
	hv_prepare_and_map();
#endif

	/* Guest image into its boot slot, the ROM's contents, nothing mapped. */
	if (blob > GUEST_BOOT_SIZE - 0x10000)
		fail("guest image too large", (long)blob);
	memset((void *)(uintptr_t)GUEST_BOOT_HPA, 0, GUEST_BOOT_SIZE);
	memcpy((void *)(uintptr_t)GUEST_BOOT_HPA, guest_blob, blob);
	memset((void *)(uintptr_t)GUEST_ROM_HPA, 0, GUEST_ROM_SIZE);
	*(volatile uint32_t *)(uintptr_t)GUEST_ROM_HPA = GUEST_ROM_MAGIC;
	kprintf("hv: guest image %llu bytes at gpa 0x%x, %u-level %s root at hpa 0x%llx\n",
		(unsigned long long)blob, GUEST_BOOT_GPA, kvm_mmu_levels(kvm),
		s2_fmt_name(kvm_fmt(kvm)), (unsigned long long)kvm_mmu_root_hpa(kvm));
}

/*
 * Right after the first exit, the vcpu's CPU sends itself an IPI and takes
 * it: the exit must have left it on its own IDT and TSS (VMX loads them from
 * the VMCS's host state, where a stale IDTR base sends the interrupt into
 * whatever lies there).
 */
#define SELF_IPI_VECTOR 0x43
static void host_irq_after_exit(void)
{
	uint64_t before = __atomic_load_n(&ipi_isr_count, __ATOMIC_RELAXED);

	lapic_send_ipi(ap_apic_id, SELF_IPI_VECTOR);
	for (unsigned i = 0;
	     i < 1000 && __atomic_load_n(&ipi_isr_count, __ATOMIC_RELAXED) == before; i++)
		__asm__ volatile("sti; nop; cli" : : : "memory");
	st.host_irqs_after_exit = __atomic_load_n(&ipi_isr_count, __ATOMIC_RELAXED) - before;
}

/* The vcpu's CPU: enter the guest and handle its exits until it is done. */
void ap_main(void);
void ap_main(void)
{
	struct hv_exit e;
	bool first_exit = true;

	load_host_tss(1);
	smp_init_ap();
	ap_apic_id = lapic_id();
	cpu_register(ap_apic_id, 1);
	/* Before its first library call (the set-up reads the root). */
	s2_fs_rcu_online(&fs, 1);
	__atomic_store_n(&smp_ap_running, 1, __ATOMIC_RELEASE);
	if (hv_arch.cpu_init() || hv_arch.setup(kvm, GUEST_BOOT_GPA, GUEST_STACK_TOP))
		fail("VMX/SVM set-up on the vcpu's CPU", 0);
	kprintf("hv[cpu %u]: entering the guest\n", ap_apic_id);
	for (;;) {
		/*
		 * No library call in progress: a quiescent state. hv_arch.run
		 * goes offline right before the VM entry and back online
		 * right after kvm_vcpu_exit_guest().
		 */
		s2_fs_rcu_quiescent(&fs, 1);
		if (hv_arch.run(vcpu, &e))
			fail("VM entry", 0);
		if (first_exit) {
			first_exit = false;
			host_irq_after_exit();
		}
		st.exits[e.kind]++;
		switch (e.kind) {
		case HV_EXIT_S2_FAULT: handle_s2_fault(&e); break;
		case HV_EXIT_HYPERCALL: handle_hypercall(&e); break;
		case HV_EXIT_KICK: st.kicks++; break;
		default:
			kprintf("hv: unexpected exit %s: 0x%llx 0x%llx 0x%llx at rip 0x%llx\n",
				exit_names[e.kind], (unsigned long long)e.raw[0],
				(unsigned long long)e.raw[1], (unsigned long long)e.raw[2],
				(unsigned long long)e.rip);
			fail("unexpected exit", (long)e.kind);
		}
	}
}

/*
 * The boot CPU: set the VM up, start the vcpu's CPU, then sleep until the
 * vcpu asks for the zap (an IPI wakes the HLT). `sti; hlt` takes an interrupt
 * that arrived before it, so the request cannot be missed.
 */
void hv_main(void);
void hv_main(void)
{
	hv_console_init();
	kprintf("\nhv: s2mmu example hypervisor, %s%s\n", hv_arch.name,
		BREAK_FLUSH ? " [BREAK_FLUSH: no kick, no TLB flush on KVM_REQ_TLB_FLUSH]" : "");
	load_host_tss(0);
	smp_init_bsp();
	bsp_apic_id = lapic_id();
	cpu_register(bsp_apic_id, 0);
	setup_vm();
	if (smp_start_ap())
		fail("the second CPU did not start", 0);
	for (;;) {
		s2_fs_rcu_quiescent(&fs, 0);
		/* Asleep, it makes no library call: grace periods go on. */
		s2_fs_rcu_offline(&fs, 0);
		while (!__atomic_load_n(&zap_requested, __ATOMIC_ACQUIRE))
			__asm__ volatile("sti; hlt; cli" : : : "memory");
		s2_fs_rcu_online(&fs, 0);
		zap_requested = 0;
		zap_and_migrate();
	}
}
