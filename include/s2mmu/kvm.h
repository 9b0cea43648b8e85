/* SPDX-License-Identifier: MIT */
/*
 * VM lifecycle: struct kvm owns one second-stage root, its memslots, vcpus,
 * mmu_lock and statistics. struct kvm is opaque; use the accessors.
 */
#ifndef S2MMU_KVM_H
#define S2MMU_KVM_H

#include "s2mmu/env.h"
#include "s2mmu/prot.h"
#include "s2mmu/types.h"

struct kvm;

/* Format options, S2_FMTF_*: each format accepts the ones it implements. */
enum {
	S2_FMTF_AD = 1u << 0,	       /* hardware accessed/dirty (EPTP[6], VTCR.HA,
				       Svadu, NPT always) */
	S2_FMTF_MBEC = 1u << 1,	       /* EPT: mode-based execute control */
	S2_FMTF_SUPPRESS_VE = 1u << 2, /* EPT: set suppress-#VE in every entry */
	S2_FMTF_FWB = 1u << 3,	       /* arm64: FEAT_S2FWB */
	S2_FMTF_HD = 1u << 4,	       /* arm64: hardware dirty state (DBM) */
	S2_FMTF_XNX = 1u << 5,	       /* arm64: FEAT_XNX (PX/UX split) */
	S2_FMTF_LPA2 = 1u << 6,	       /* arm64: 52-bit with FEAT_LPA2 */
	S2_FMTF_PBMT = 1u << 7,	       /* RISC-V: Svpbmt memory types */
	S2_FMTF_VMID16 = 1u << 8,      /* arm64: 16-bit VMID */
};

/* Parameters of kvm_create_vm(). Zero-initialise, then fill. */
struct kvm_vm_params {
	enum s2_fmt_id fmt;	 /* which format (must be built in) */
	unsigned gpa_bits;	 /* guest-physical width; selects the walk length
				(EPT: 48 -> 4 levels, 57 -> 5 levels) */
	unsigned granule;	 /* arm64 only: 4096, 16384 or 65536 (0 = 4096) */
	unsigned fmt_flags;	 /* S2_FMTF_* */
	unsigned max_leaf_level; /* 0 = the build's largest leaf (Kconfig) */
	unsigned max_vcpus;	 /* 0 = 64 */
	uint32_t vmid;		 /* VMID/ASID recorded in the register values */
	/* Or the VM's id from the id allocator (include/s2mmu/vmid.h): a
	   struct s2_vmid set up with s2_vmid_init(), kept by pointer (it must
	   outlive kvm). vmid must then be 0. Register values and the library's
	   by-id flushes use its current id (kvm_vmid()); vcpus enter through
	   kvm_vcpu_vmid_update(). */
	struct s2_vmid *vmid_alloc;
	const struct s2_env *env; /* the host; kept by pointer, must outlive kvm */
	/* Cached MMIO entries (docs/mmio.md): S2_MMIO_CACHE_*; 0 = off. With
	   them on, an EPT VM's access to one exits as an EPT misconfiguration:
	   the embedder hands it to kvm_handle_ept_misconfig(). */
	unsigned mmio_cache;
	/* Generation bits an MMIO entry keeps (1..40; 0 = 20). The entries
	   are all zapped each time the memslot generation wraps in them. */
	unsigned mmio_gen_bits;
	/* x86 NPT: the host's physical-address width (MAXPHYADDR, CPUID
	   0x80000008 EAX[7:0], less SME/SEV's reduction), 32..52; 0 = not
	   given. Below 52 with mmio_cache on, MMIO entries are present with
	   the address bits above it set (reserved): an access to one exits as
	   a reserved-bit NPF, for kvm_handle_npf(). mmio_gen_bits must then fit
	   below it (12 + bits <= host_pa_bits). Other formats ignore it. */
	unsigned host_pa_bits;
};

enum {
	S2_MMIO_CACHE_DEFAULT = 0, /* off (may change per format later) */
	S2_MMIO_CACHE_ON = 1,	   /* a fault with no memslot installs one */
	S2_MMIO_CACHE_OFF = 2,	   /* never install them */
};

/*
 * Create a VM with an empty root. Returns 0 and *@out, or -EINVAL (unknown
 * format, format not built in, unsupported gpa width/granule/flag, bad env),
 * -ENOMEM. Nothing is allocated on failure.
 */
int kvm_create_vm(const struct kvm_vm_params *p, struct kvm **out) S2_MUST_CHECK;

/*
 * Destroy @kvm: zap everything, wait for a grace period and return every
 * table page and all metadata to the environment. vcpus must be out of guest
 * mode. NULL is ignored.
 */
void kvm_destroy_vm(struct kvm *kvm);

/* Physical address of the VM's current direct root of space 0 (what
 * EPTP/VTTBR/hgatp/nCR3 point at for a vcpu that never called kvm_mmu_load).
 * It changes with a fast zap. */
hpa_t kvm_mmu_root_hpa(const struct kvm *kvm);
/*
 * The id the VM's translations are tagged with now: the allocator's current
 * id (kvm_vm_params.vmid_alloc) or kvm_vm_params.vmid; 0 for NULL. The
 * library's own by-id invalidations use it (arm64 TLBI with VTTBR.VMID,
 * RISC-V HFENCE.GVMA): an embedder's tlb_flush_vm / tlb_flush_range hook
 * that reaches other CPUs by id (SBI remote HFENCE.GVMA) flushes this id,
 * read inside the hook. It is read after a full barrier, so a flush that
 * follows a change of the tables sees the id of any vcpu that entered after
 * the change could be missed by its walks.
 */
uint32_t kvm_vmid(const struct kvm *kvm);
/* Format, gpa width and walk length of @kvm. */
enum s2_fmt_id kvm_fmt(const struct kvm *kvm);
unsigned kvm_gpa_bits(const struct kvm *kvm);
unsigned kvm_mmu_levels(const struct kvm *kvm);
/* Name of a format ("x86-ept"), or NULL when unknown. */
const char *s2_fmt_name(enum s2_fmt_id fmt);
/* True when @fmt is compiled into this build. */
bool s2_fmt_supported(enum s2_fmt_id fmt);

/*
 * A VM whose internal invariant failed is "bugged": the failure is logged
 * once through env->log and every later call returns -EIO. Never a crash.
 */
bool kvm_is_bugged(const struct kvm *kvm);

/* Counters. Snapshot with kvm_get_stats(); all are monotonic except those
 * named "cur_". */
struct kvm_mmu_stats {
	uint64_t faults;			/* kvm_tdp_page_fault calls that reached the MMU */
	uint64_t faults_fixed;			/* faults that installed or upgraded a leaf */
	uint64_t faults_spurious;		/* faults that found the mapping present */
	uint64_t faults_retry;			/* faults that lost a race and must re-enter */
	uint64_t faults_fast;			/* of faults_fixed, those the fast path installed
				   (docs/embedding.md) */
	uint64_t exits_mmio;			/* faults on a gpa with no memslot */
	uint64_t exits_mmio_cached;		/* of kvm_mmu_page_fault_mmio calls, those
				   answered from a cached MMIO entry */
	uint64_t mmio_entries;			/* MMIO entries installed */
	uint64_t mmio_wraps;			/* generation wraps that zapped them all */
	uint64_t exits_ro_write;		/* writes to a read-only memslot */
	uint64_t flushes;			/* kvm_flush_remote_tlbs (full) */
	uint64_t flushes_range;			/* precise ranged flushes by the format */
	uint64_t zapped_leaves;			/* leaves made non-present */
	uint64_t cur_leaves[S2_MAX_LEVELS + 1]; /* present leaves per level */
	uint64_t cur_table_pages;		/* table pages linked or awaiting free
				     (root excluded); 4 KiB units */
	uint64_t refused_changes;		/* rule violations refused (bugs) */
	uint64_t cur_roots;			/* roots allocated (valid or not yet freed) */
	uint64_t cur_roots_valid;		/* of those, valid */
	uint64_t roots_freed;			/* roots whose pages went back */
	uint64_t fast_zaps;			/* fast zaps that ran (kvm_mmu_zap_all_fast,
				   kvm_mmu_zap_all, memslot removals) */
	uint64_t yields;			/* mmu_lock dropped inside a long walk */
	uint64_t max_hold_leaves;		/* most leaves one hold of mmu_lock visited
				   in a walk that may yield (<= the batch) */
	uint64_t tables_freed_now;		/* unlinked tables a write side freed at
				   once (docs/rules.md, "Unlinked tables") */
	uint64_t tables_freed_later;		/* those it left to a grace period (a batch
				   of more than 4, or a lockless walk in flight) */
};
int kvm_get_stats(const struct kvm *kvm, struct kvm_mmu_stats *out);

/* Shared statistic helpers for printing: "leaves per level" line etc. */
int kvm_format_stats(const struct kvm *kvm, char *buf, size_t len);

#endif
