/* SPDX-License-Identifier: MIT */
/*
 * VMID / VPID / ASID allocation: the tag a CPU's TLB keeps beside each guest
 * translation, handed out by generation as arm64 KVM does for VMIDs.
 *
 * An id is @bits wide (arm64 VMIDs: 8, or 16 with S2_FMTF_VMID16; RISC-V:
 * the VMIDLEN the embedder probed, up to 14; x86 VPIDs and AMD ASIDs: up to
 * 16). Ids below @first are never handed out (VPID 0 is the host's; arm64
 * and RISC-V hosts usually keep 0 too). The allocator pairs each id with a
 * generation: a VM keeps its id for as long as the generation is the
 * current one, so entering the guest is one load and one compare-and-
 * exchange. When every id of the generation is taken, the next allocation
 * rolls over: the generation moves on, the ids in use on some CPU at that
 * moment stay with their VMs (they are reserved into the new generation),
 * every other id is free again, and every CPU's TLB is flushed of all ids
 * once before it next enters a guest:
 *  - with env->ops->vmid_flush_all (a broadcast that returns when every CPU
 *    has dropped its translations: arm64 TLBI ALLE1IS) the CPU that rolls
 *    over calls it once;
 *  - otherwise each CPU calls env->ops->vmid_flush_local itself (INVVPID and
 *    INVEPT all-context, HFENCE.GVMA x0 x0, TLBI ALLE1 without IS) in its
 *    next s2_vmid_update(), whatever number of rollovers happened meanwhile.
 * So two VMs never use one id on one CPU without a flush of that CPU in
 * between, and a VM that is destroyed leaves its id unused until a rollover
 * has flushed what the TLBs kept of it.
 *
 * Everything is the embedder's memory (no allocation): one struct
 * s2_vmid_alloc per host, an array of nr_cpus struct s2_vmid_cpu, a bitmap
 * of S2_VMID_MAP_WORDS(bits) words, and one struct s2_vmid per VM.
 *
 * A VM created with kvm_vm_params.vmid_alloc = &vm->vmid uses it for
 * everything: its register values and the library's own by-id flushes
 * (arm64 TLBI, RISC-V HFENCE.GVMA, the embedder's hooks through kvm_vmid())
 * take the VM's current id. The entry sequence of a vcpu, with interrupts
 * (or preemption) off, on the CPU numbered @cpu (0 .. nr_cpus - 1; the
 * embedder's own numbering):
 *
 *	kvm_vcpu_entry_actions(vcpu, &acts);            // interrupts still on
 *	id = kvm_vcpu_vmid_update(vcpu, cpu, &reg);     // s2_vmid_update() and
 *	                                                // VTTBR / hgatp with it
 *	... load reg (VPID / ASID = id), do acts' flushes, enter the guest ...
 *
 * Without vmid_alloc the VM keeps kvm_vm_params.vmid, and an embedder that
 * calls s2_vmid_update() itself builds the register with
 * kvm_arm64_vttbr_vmid() and the like, but the library's by-id flushes
 * then use the creation-time id (docs/static.md, section 3).
 *
 * Optionally, s2_vmid_clear_active(alloc, cpu) after the vcpu is put lets a
 * rollover free that id.
 */
#ifndef S2MMU_VMID_H
#define S2MMU_VMID_H

#include "s2mmu/types.h"

struct s2_env;

/* Widest id the allocator hands out. */
#define S2_VMID_BITS_MAX 16
/* Words of the bitmap an allocator of @bits needs (a constant expression). */
#define S2_VMID_MAP_WORDS(bits) ((((uint64_t)1 << (bits)) + 63) / 64)

/* Per-CPU state. Only the allocator touches it. */
struct s2_vmid_cpu {
	uint64_t active;   /* id (with generation) this CPU runs, 0 after a
			      rollover, S2_VMID_INACTIVE after clear_active */
	uint64_t reserved; /* what it ran at the last rollover */
	bool flush_pending;
};

/* One allocator per host. Fill with s2_vmid_alloc_init(). */
struct s2_vmid_alloc {
	const struct s2_env *env;
	struct s2_vmid_cpu *cpus;
	uint64_t *map;		/* ids taken in this generation */
	uint64_t gen;		/* current generation, in units of 1 << bits */
	uint64_t rollovers;	/* relaxed atomic: readable while CPUs run */
	uint64_t local_flushes; /* vmid_flush_local calls */
	unsigned nr_cpus;
	unsigned bits;
	unsigned first;
	unsigned next; /* where the next search starts */
	uint32_t lock;
};

/* One VM's id. Zero-initialise or call s2_vmid_init(). */
struct s2_vmid {
	uint64_t id; /* generation | id; 0 before the first update */
	struct s2_vmid_alloc *alloc;
};

/*
 * Set up @a for ids of @bits (1 .. S2_VMID_BITS_MAX) from @first up, shared
 * by @nr_cpus CPUs whose state lives in @cpus[nr_cpus], with @map of
 * S2_VMID_MAP_WORDS(@bits) words. There must be more usable ids than CPUs
 * ((1 << @bits) - @first > @nr_cpus): after a rollover each CPU may keep one
 * and a new VM still needs one. @env must provide vmid_flush_local or
 * vmid_flush_all (and may provide relax, used while the lock is contended).
 * Returns 0, or -EINVAL with @a untouched.
 */
int s2_vmid_alloc_init(struct s2_vmid_alloc *a, const struct s2_env *env, unsigned bits,
		       unsigned first, unsigned nr_cpus, struct s2_vmid_cpu *cpus,
		       uint64_t *map) S2_MUST_CHECK;

/* Give @v no id yet, from allocator @a. */
void s2_vmid_init(struct s2_vmid *v, struct s2_vmid_alloc *a);

/*
 * Before entering a guest of @v's VM on CPU @cpu (not preemptible, not
 * concurrently with another update for the same @cpu): make sure @v holds an
 * id of the current generation, mark it active on @cpu, and flush @cpu's TLB
 * first if a rollover asked for it. Returns the id (>= first), or -EINVAL
 * (NULL @v, @v not initialised, @cpu out of range) with nothing changed.
 */
int s2_vmid_update(struct s2_vmid *v, unsigned cpu);

/*
 * @cpu runs no guest now: a rollover need not keep the id it ran last.
 * Optional (without it the id stays reserved until @cpu's next update).
 * Returns 0 or -EINVAL.
 */
int s2_vmid_clear_active(struct s2_vmid_alloc *a, unsigned cpu);

/*
 * The id @v was last given (0 before its first update). Stale after a
 * rollover until the next s2_vmid_update() of the VM, which is harmless: a
 * stale id's translations were flushed by the rollover.
 */
static inline uint32_t s2_vmid_id(const struct s2_vmid *v)
{
	uint64_t id;

	if (!v || !v->alloc)
		return 0;
	id = __atomic_load_n(&v->id, __ATOMIC_RELAXED);
	return (uint32_t)(id & ((1ull << v->alloc->bits) - 1));
}

/* Marker of a CPU that runs no guest (never an id: generations stay far
 * below 2^64). */
#define S2_VMID_INACTIVE (~0ull)

#endif
