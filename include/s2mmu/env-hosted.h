/* SPDX-License-Identifier: MIT */
/*
 * The hosted environment: s2mmu on a POSIX host with liburcu (bulletproof
 * flavour, so threads need no registration). Tools, tests and benchmarks use
 * it. It simulates the host side: table pages from aligned_alloc with
 * pa == va, a "host memory" whose pfn for an hva is hva >> 12, and counters
 * for every page, kick and hardware flush, so tests can prove that nothing
 * leaks and that flushes happen when they must.
 *
 * Every hook can be replaced: s2_hosted_init() fills h->ops with the
 * defaults and points h->env at them; change a field of h->ops afterwards.
 */
#ifndef S2MMU_ENV_HOSTED_H
#define S2MMU_ENV_HOSTED_H

#include "s2mmu/env.h"

struct s2_hosted {
	struct s2_env env;     /* hand &h->env to kvm_vm_params.env */
	struct s2_env_ops ops; /* the hooks env points at */

	/* Simulated host memory (default gfn_to_pfn). */
	int host_level;	    /* largest level the host maps (default 3) */
	bool host_readonly; /* host mappings are read-only */
	/* Answer gfn_to_pfn without block_stable, so that every fault asks
	 * (also the case while pfn_hook is set). */
	bool no_block_reuse;

	/* Fault injection: alloc_table/zalloc/call_rcu fail after this many
	 * more successful calls (< 0: never). */
	long fail_alloc_after;
	/*
	 * Fault injection by count (s2_hosted_fail_nth()): every allocation
	 * the library asks for (alloc_table, zalloc, and call_rcu, whose
	 * callback record the env allocates) counts in alloc_calls; when
	 * fail_alloc_nth is N > 0 the Nth counted call fails, and with
	 * fail_alloc_persist every one after it too. alloc_failed counts the
	 * failures injected.
	 */
	long fail_alloc_nth;
	bool fail_alloc_persist;
	uint64_t alloc_calls, alloc_failed;

	/* Counters (atomics; read any time; pfn_lookups may undercount when
	 * several threads fault at once). */
	uint64_t table_allocs, table_frees; /* table pages, 4 KiB units */
	uint64_t meta_allocs, meta_frees;
	uint64_t rcu_queued, rcu_done; /* call_rcu callbacks queued and run */
	uint64_t kicks, hw_flush_vm, hw_flush_range, pfn_lookups, logs;
	uint64_t dcache_cleans; /* dcache_clean_inval calls */
	hpa_t last_clean_pa;	/* and the last one's range */
	uint64_t last_clean_size;
	char last_log[256];
	/* Optional callback run inside gfn_to_pfn after the lookup (tests use
	 * it to race an invalidation with a fault). */
	void (*pfn_hook)(struct s2_hosted *h, const struct kvm_memory_slot *slot, gfn_t gfn);
	void *priv;
	bool quiet; /* do not print log lines to stderr */
	/*
	 * The call trace (CONFIG_S2_TRACE builds, with env.trace set): each
	 * S2_LOG_TRACE line is written to this file descriptor with a
	 * newline (default -1: dropped); never counted in logs or printed.
	 */
	int trace_fd;
};

/* Fill @h with the default hosted environment. */
void s2_hosted_init(struct s2_hosted *h);
/* Table pages currently allocated (allocs - frees, 4 KiB units). */
uint64_t s2_hosted_pages_in_use(const struct s2_hosted *h);
/* Metadata blocks currently allocated. */
uint64_t s2_hosted_meta_in_use(const struct s2_hosted *h);
/* call_rcu callbacks queued and not yet run. */
uint64_t s2_hosted_rcu_pending(const struct s2_hosted *h);
/* Everything the library holds from the env: table pages (4 KiB units),
 * metadata blocks and queued callbacks; 0 once a VM is destroyed and the
 * env quiesced. */
uint64_t s2_hosted_allocs_in_use(const struct s2_hosted *h);
/*
 * Arm (@nth > 0) or disarm (@nth == 0) count-based fault injection: the
 * @nth allocation from now fails (with @persist, every one from the @nth
 * on). Resets alloc_calls and alloc_failed. Not for use while other threads
 * allocate.
 */
void s2_hosted_fail_nth(struct s2_hosted *h, long nth, bool persist);
/* Wait for every queued RCU callback (frees). */
void s2_hosted_quiesce(struct s2_hosted *h);

#endif
