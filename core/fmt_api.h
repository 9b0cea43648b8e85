/* SPDX-License-Identifier: MIT */
/*
 * The format contract (docs/format-contract.md is the long form).
 *
 * A format is fmt/<name>/fmt.h: static inline functions with the fixed names
 * below, plus fmt_init_cfg() that fills the runtime descriptor. fmt/<name>/
 * instance.c includes its fmt.h and then core/mmu_tmpl.h, which compiles the
 * hot algorithms (fault, walk, zap, ...) against those inlines and exports one
 * `const struct s2_fmt_ops s2_fmt_ops_<name>`. The public API dispatches once
 * per call through that table; no indirect call is made per entry.
 *
 * Levels are numbered from the leaf up: level 1 maps one granule (4 KiB on a
 * 4K granule), level 2 the next (2 MiB), ... up to cfg->levels, the root.
 * Every per-entry function takes the level of the entry it looks at, so a
 * format may encode levels differently (arm64 page vs block, the fake format).
 *
 * What a fmt.h must define (c is `const struct s2_fmt_cfg *`, l a level):
 *
 *   FMT_ID                         enum s2_fmt_id of the format
 *   FMT_NAME                       "x86-ept"
 *   int fmt_init_cfg(struct s2_fmt_cfg *c, const struct kvm_vm_params *p)
 *       validate p (gpa_bits, granule, fmt_flags) and fill *c; -EINVAL if
 *       the format cannot do it. Leaves c->max_leaf_level at the largest
 *       level the architecture allows for leaves; the core clamps it further.
 *   s2_pte_t fmt_make_leaf(c, l, hpa_t hpa, unsigned prot, unsigned memtype)
 *       a present leaf at level l mapping hpa (aligned to the level's size)
 *       with S2_PROT_* prot (hardware RWX/XU, software HOST/MMU_WRITABLE, and
 *       ACCESSED/DIRTY where the format keeps them) and S2_MT_* memtype.
 *   s2_pte_t fmt_make_table(c, l, hpa_t table)   a level-l entry pointing at
 *       a table of level l-1 (l >= 2).
 *   bool fmt_is_present(c, s2_pte_t pte, l)      hardware would use it
 *       (leaf or table). Never true for FMT_FROZEN or an MMIO value.
 *   bool fmt_is_leaf(c, pte, l)                  present and maps memory
 *       (every present level-1 entry is a leaf).
 *   hpa_t fmt_leaf_hpa(c, pte, l)                output address of a leaf
 *   hpa_t fmt_table_hpa(c, pte, l)               address of the next table
 *   unsigned fmt_leaf_prot(c, pte, l)            S2_PROT_* of a leaf
 *   unsigned fmt_leaf_memtype(c, pte, l)         S2_MT_* of a leaf
 *   s2_pte_t fmt_leaf_set_prot(c, pte, l, prot)  same leaf, new S2_PROT_*
 *   FMT_FROZEN                                   the frozen value. Its bits
 *       12 and up are zero, and fmt_is_frozen() looks only at bits 0..11, so
 *       FMT_FROZEN | table_hpa is frozen too: the core links unlinked tables
 *       through their first entry that way while they wait for RCU.
 *   (fmt_is_frozen(pte) is derived by fmt/defaults.h)
 *   s2_pte_t fmt_make_mmio(c, gfn_t gfn)         the MMIO special value
 *   FMT_MMIO_LOW                                 its low 12 bits (fmt_is_mmio()
 *       is derived from it)
 *   void fmt_tlb_flush_vm(c, const struct s2_env *env, struct kvm *kvm)
 *       hardware invalidation of the whole VM where the architecture
 *       broadcasts it (arm64 TLBI VMALLS12E1IS, RISC-V HFENCE.GVMA vmid);
 *       a no-op where vcpus flush on KVM_REQ_TLB_FLUSH (EPT INVEPT, NPT).
 *   FMT_HAS_TLB_FLUSH_RANGE (0/1) and, if 1,
 *   void fmt_tlb_flush_range(c, env, kvm, gpa_t gpa, uint64_t size)
 *
 * fmt/defaults.h then derives, unless the format defined a faster one
 * (define FMT_HAS_<NAME> before including it): fmt_is_young, fmt_mkold,
 * fmt_is_dirty, fmt_mkclean, fmt_is_writable, fmt_wrprotect, fmt_mkwritable,
 * fmt_is_mmu_writable, fmt_is_host_writable.
 *
 * Bit rules every format asserts with _Static_assert: software bits do not
 * overlap hardware bits; FMT_FROZEN and MMIO values are never present at any
 * level; the present test of every level looks only at bits 0..11 (so a page
 * address alone is never present).
 */
#ifndef S2MMU_CORE_FMT_API_H
#define S2MMU_CORE_FMT_API_H

#include "s2mmu/kvm.h"
#include "s2mmu/mmu.h"
#include "s2mmu/types.h"

/* Runtime descriptor of one VM's tables, filled by fmt_init_cfg(). */
struct s2_fmt_cfg {
	uint8_t levels;		/* levels walked; the root is level `levels` */
	uint8_t page_shift;	/* log2 of the granule: 12, 14 or 16 */
	uint8_t bits_per_level; /* log2 entries per non-root table */
	uint8_t root_bits;	/* log2 entries in the root (concatenation) */
	uint8_t gpa_bits;	/* guest-physical width */
	uint8_t pa_bits;	/* widest output address the format encodes */
	uint8_t max_leaf_level; /* largest level that may hold a leaf */
	uint8_t min_leaf_level; /* smallest (1) */
	uint32_t flags;		/* S2_FMTF_* accepted for this VM */
	uint32_t vmid;
	uint32_t fmt_private; /* format's own (e.g. EPTP memory type) */
};

static inline unsigned s2_level_shift(const struct s2_fmt_cfg *c, int level)
{
	return c->page_shift + (unsigned)(level - 1) * c->bits_per_level;
}

static inline unsigned s2_level_bits(const struct s2_fmt_cfg *c, int level)
{
	return level == c->levels ? c->root_bits : c->bits_per_level;
}

static inline uint64_t s2_root_bytes(const struct s2_fmt_cfg *c)
{
	return 8ull << c->root_bits;
}

/* The root's allocation: at least a page, since a concatenated root can be
 * smaller (arm64 64K granule at 48 bits: 512 bytes) and the environment
 * hands out whole pages. Hardware only needs alignment to the root size. */
static inline uint64_t s2_root_alloc_bytes(const struct s2_fmt_cfg *c)
{
	return s2_root_bytes(c) < 4096 ? 4096 : s2_root_bytes(c);
}

static inline uint64_t s2_table_bytes(const struct s2_fmt_cfg *c)
{
	return 1ull << c->page_shift;
}

struct kvm_vcpu;
struct s2_fault;
struct s2_range_op;
struct s2_root;

/*
 * What each format instance exports: the hot algorithms compiled against its
 * inlines. Called once per API call, never per entry.
 */
struct s2_fmt_ops {
	enum s2_fmt_id id;
	const char *name;
	int (*init_cfg)(struct s2_fmt_cfg *c, const struct kvm_vm_params *p);
	int (*map)(struct kvm *kvm, struct kvm_vcpu *vcpu, struct s2_fault *f);
	long (*range)(struct kvm *kvm, struct s2_range_op *op);
	int (*lookup)(struct kvm *kvm, gpa_t gpa, struct s2_mapping *out);
	int (*for_each_leaf)(struct kvm *kvm, gfn_t start, gfn_t end, s2_leaf_fn fn, void *arg);
	void (*tlb_flush_vm)(struct kvm *kvm);
	void (*tlb_flush_range)(struct kvm *kvm, gpa_t gpa, uint64_t size);
	/*
	 * The format's own TLB instructions reach every CPU by architecture
	 * (arm64 TLBI ...IS with DSB ISH), so a flush through tlb_flush_vm or
	 * tlb_flush_range is complete when it returns, whatever the env
	 * provides. RISC-V HFENCE.GVMA and x86 INVEPT / the VMCB TLB control
	 * act on one CPU only (FMT_TLB_BROADCAST, default 0).
	 */
	bool tlb_broadcast;
	/* Raw-entry helpers for tests and tools (not on hot paths). */
	s2_pte_t (*make_leaf)(const struct s2_fmt_cfg *c, int level, hpa_t hpa, unsigned prot,
			      unsigned memtype);
	unsigned (*leaf_prot)(const struct s2_fmt_cfg *c, s2_pte_t pte, int level);
	/* A run of leaves as first + i * step (core/mmu_tmpl.h S2_FN(leaf_run)). */
	bool (*leaf_run)(const struct s2_fmt_cfg *c, int level, hpa_t hpa, uint64_t size,
			 unsigned n, unsigned prot, unsigned mt, s2_pte_t *first, s2_pte_t *step);
	/* Cached MMIO entries (core/mmio_tmpl.h, docs/mmio.md). */
	s2_pte_t (*make_mmio)(const struct s2_fmt_cfg *c, gfn_t gfn);
	uint64_t (*mmio_gen)(struct kvm *kvm, const struct s2_root *root, gpa_t gpa);
	uint64_t (*mmio_zap)(struct kvm *kvm, struct s2_root *root);
};
/* mmio_gen(): the entry is not an MMIO entry. */
#define S2_MMIO_NONE (~0ull)

/* The runtime descriptor of @kvm's tables (for register builders). */
const struct s2_fmt_cfg *kvm_fmt_cfg(const struct kvm *kvm);

#endif
