/* SPDX-License-Identifier: MIT */
/*
 * The environment: everything s2mmu needs from the host, as one ops struct.
 *
 * core/, flush/, notifier/ and fmt/ reach the host only through these hooks,
 * which is why the same objects link into a POSIX test program (env/hosted)
 * and into a bare-metal hypervisor (env/freestanding, the embedder fills the
 * struct). Hooks marked optional may be NULL.
 */
#ifndef S2MMU_ENV_H
#define S2MMU_ENV_H

#include "s2mmu/types.h"

struct kvm;
struct kvm_vcpu;
struct kvm_memory_slot;

/* What the host says about the page backing a gfn (KVM's kvm_follow_pfn). */
struct s2_pfn_info {
	kvm_pfn_t pfn;	  /* 4 KiB host frame backing the gfn */
	bool writable;	  /* the host mapping allows guest writes */
	int host_level;	  /* largest leaf level the host mapping allows
			      (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB on 4K granule) */
	unsigned memtype; /* S2_MT_* (with S2_MT_IGNORE_PAT), usually S2_MT_WB */
	/*
	 * Optional promise (default false): the whole aligned block of
	 * host_level's size around the hva is one host mapping, with pfns
	 * contiguous from the one above, this writability and this memtype,
	 * and it stays so until an MMU-notifier invalidation covering it
	 * begins. The core may then answer later faults on other gfns of the
	 * block from this answer, without calling gfn_to_pfn or release_pfn
	 * for them, as long as mmu_invalidate_seq has not moved (the fault
	 * fast path, docs/embedding.md). Leave it false when every fault must
	 * take and drop its own page reference or mark its page dirty.
	 */
	bool block_stable;
};

/*
 * S2_LOG_TRACE: one line of the call trace (CONFIG_S2_TRACE builds whose env
 * sets `trace`): the trace format of `s2mmu replay` (docs/tools.md).
 */
enum s2_log_level { S2_LOG_ERR = 0, S2_LOG_WARN, S2_LOG_INFO, S2_LOG_DEBUG, S2_LOG_TRACE };

struct s2_env_ops {
	/*
	 * Table pages. alloc_table returns a zeroed block of @bytes (a power of
	 * two, at least 4096) aligned to @bytes, and its physical address in
	 * *@pa; NULL when out of memory. Called only with mmu_lock not held.
	 */
	void *(*alloc_table)(void *ctx, size_t bytes, hpa_t *pa);
	void (*free_table)(void *ctx, void *va, hpa_t pa, size_t bytes);
	/* pa -> va of a table page. Optional: NULL means va = pa + virt_offset. */
	void *(*phys_to_virt)(void *ctx, hpa_t pa);

	/* Small zeroed metadata (struct kvm, vcpus, memslot arrays). */
	void *(*zalloc)(void *ctx, size_t bytes);
	void (*free)(void *ctx, void *p);

	/*
	 * RCU. synchronize_rcu waits until every reader that might hold a
	 * pointer into unlinked tables is done. call_rcu (optional) runs
	 * @fn(@arg) after a grace period without blocking; without it the core
	 * calls synchronize_rcu and frees inline. rcu_barrier (needed with
	 * call_rcu) waits for every callback queued so far; kvm_destroy_vm uses
	 * it so that all pages are back when it returns. All are called with no
	 * lock held. read_lock/read_unlock (optional) bracket lockless walks.
	 */
	void (*synchronize_rcu)(void *ctx);
	/*
	 * synchronize_rcu only works when one CPU runs all of the VM's vcpus
	 * and library calls (env/freestanding's default no-op): the library
	 * then refuses a second vcpu (-ENOTSUP) rather than let another
	 * CPU read a memslot array or bitmap freed under it.
	 */
	bool rcu_single_cpu;
	int (*call_rcu)(void *ctx, void (*fn)(void *arg), void *arg);
	void (*rcu_barrier)(void *ctx); /* wait for queued call_rcu callbacks */
	void (*rcu_read_lock)(void *ctx);
	void (*rcu_read_unlock)(void *ctx);

	/*
	 * Spin-wait body of the core's locks (pause, sched_yield, wfe), and of
	 * a flush waiting for kicked vcpus to leave guest mode: an embedder
	 * whose CPUs must answer IPIs while they spin (so that a CPU waiting
	 * here cannot block another's exit) services them in this hook.
	 */
	void (*relax)(void *ctx);
	/*
	 * Optional: return only after every thread that may run a vcpu's
	 * faults has executed a full memory barrier (Linux's
	 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), or an IPI to each CPU
	 * that runs them). With it a vcpu takes the read side of mmu_lock with
	 * a plain store and load, and writers of mmu_lock (zaps, memslot
	 * updates, invalidations: the rare side) call this once each; without
	 * it the vcpu's store is a full barrier. Called with mmu_lock held
	 * for write; must not sleep for long.
	 */
	void (*membarrier)(void *ctx);

	/* Make @vcpu, which is in guest mode, exit (an IPI). Optional. */
	void (*kick)(void *ctx, struct kvm_vcpu *vcpu);

	/*
	 * Resolve @gfn of @slot to a host pfn (KVM's __kvm_faultin_pfn). The
	 * hva is slot->userspace_addr + (gfn - slot->base_gfn) * 4096. @write
	 * says the fault wants write access. Returns 0 and fills *@out, or a
	 * negative errno (-EFAULT: no backing) which the fault returns as is.
	 * Called without mmu_lock; may sleep.
	 */
	int (*gfn_to_pfn)(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, bool write,
			  struct s2_pfn_info *out);
	/* Drop the reference gfn_to_pfn took. Optional. */
	void (*release_pfn)(void *ctx, kvm_pfn_t pfn, bool dirty);

	/*
	 * Hardware TLB and cache hooks a format may call (optional). The
	 * TLB hooks are taken to act on the calling CPU only (x86 INVEPT,
	 * RISC-V HFENCE.GVMA), so every flush also raises KVM_REQ_TLB_FLUSH
	 * on each vcpu, kicks those in guest mode and waits for them to exit
	 * (docs/embedding.md). Set tlb_hooks_broadcast when they reach every
	 * CPU that runs this VM's vcpus and return only once each has dropped
	 * the translations (an SBI remote HFENCE.GVMA that waits, IPIs that
	 * are acknowledged): ranged flushes then skip the requests and kicks.
	 * arm64's own TLBI ...IS is broadcast without it.
	 */
	void (*tlb_flush_vm)(void *ctx, struct kvm *kvm);
	void (*tlb_flush_range)(void *ctx, struct kvm *kvm, gpa_t gpa, uint64_t size);
	bool tlb_hooks_broadcast;
	void (*dcache_clean_inval)(void *ctx, hpa_t pa, uint64_t size);
	void (*icache_inval)(void *ctx, hpa_t pa, uint64_t size);

	/* One line of diagnostics, without a trailing newline. Optional. */
	void (*log)(void *ctx, enum s2_log_level level, const char *msg);

	/*
	 * The id allocator's flushes (include/s2mmu/vmid.h; only an embedder
	 * that uses it needs one of them). vmid_flush_local drops the guest
	 * translations of every id from the TLB of the calling CPU, numbered
	 * @cpu in the allocator (INVEPT and INVVPID all-context, HFENCE.GVMA
	 * x0 x0, TLBI ALLE1). vmid_flush_all, when given, does that on every
	 * CPU and returns when each has (TLBI ALLE1IS; DSB ISH); a rollover
	 * then calls it once instead of leaving a local flush to each CPU.
	 * Both are called with the allocator's lock held.
	 */
	void (*vmid_flush_local)(void *ctx, unsigned cpu);
	void (*vmid_flush_all)(void *ctx);
};

struct s2_env {
	const struct s2_env_ops *ops;
	void *ctx;	     /* handed back to every hook */
	int64_t virt_offset; /* va = pa + virt_offset when phys_to_virt is NULL */
	/*
	 * A library built with CONFIG_S2_TRACE sends every public call that
	 * changes a VM of this env to ops->log as one S2_LOG_TRACE line
	 * (docs/tools.md, "Trace output"). Ignored without the option.
	 */
	bool trace;
};

/*
 * Check that every mandatory hook is present. Returns 0 or -EINVAL. Called by
 * kvm_create_vm(); exposed so an embedder can check its struct early.
 */
int s2_env_validate(const struct s2_env *env);

#endif
