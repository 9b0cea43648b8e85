// SPDX-License-Identifier: MIT
/* VM lifecycle, accessors, statistics and the bugged-VM report. */
#include "core/kvm_internal.h"
#include "s2mmu/vmid.h"

int s2_env_validate(const struct s2_env *env)
{
	const struct s2_env_ops *o;

	if (!env || !(o = env->ops))
		return -EINVAL;
	if (!o->alloc_table || !o->free_table || !o->zalloc || !o->free || !o->gfn_to_pfn ||
	    !o->synchronize_rcu)
		return -EINVAL;
	if (o->call_rcu && !o->rcu_barrier)
		return -EINVAL;
	if (!o->rcu_read_lock != !o->rcu_read_unlock)
		return -EINVAL;
	return 0;
}

static char *s2_put_hex(char *p, char *end, uint64_t v)
{
	char tmp[16];
	int n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	if (p < end)
		*p++ = '0';
	if (p < end)
		*p++ = 'x';
	while (n && p < end)
		*p++ = tmp[--n];
	return p;
}

static char *s2_put_str(char *p, char *end, const char *s)
{
	while (*s && p < end)
		*p++ = *s++;
	return p;
}

void s2_log(const struct kvm *kvm, enum s2_log_level lvl, const char *msg, uint64_t val)
{
	char buf[160];
	char *p = buf, *end = buf + sizeof(buf) - 1;

	if (!kvm->env->ops->log)
		return;
	p = s2_put_str(p, end, "s2mmu: ");
	p = s2_put_str(p, end, msg);
	p = s2_put_str(p, end, " ");
	p = s2_put_hex(p, end, val);
	*p = 0;
	kvm->env->ops->log(kvm->env->ctx, lvl, buf);
}

void kvm_bug(struct kvm *kvm, const char *msg, uint64_t val)
{
	if (__atomic_exchange_n(&kvm->bugged, 1, __ATOMIC_RELAXED))
		return;
	s2_log(kvm, S2_LOG_ERR, msg, val);
	s2_log(kvm, S2_LOG_ERR, "VM marked bugged; every later call returns -EIO; vmid",
	       kvm->cfg.vmid);
}

uint32_t kvm_vmid(const struct kvm *kvm)
{
	if (!kvm)
		return 0;
	if (!kvm->vmid_alloc)
		return kvm->cfg.vmid;
	/* A full barrier after the caller's table stores (docs/static.md,
	 * section 3): a sequentially consistent read-modify-write of the id,
	 * which ThreadSanitizer understands (a fence it does not). */
	return (uint32_t)(__atomic_fetch_add(&kvm->vmid_alloc->id, 0, __ATOMIC_SEQ_CST) &
			  ((1ull << kvm->vmid_alloc->alloc->bits) - 1));
}

bool kvm_is_bugged(const struct kvm *kvm)
{
	return kvm && s2_kvm_dead(kvm);
}

static int s2_check_params(const struct kvm_vm_params *p, const struct s2_fmt_ops **ops,
			   struct s2_fmt_cfg *cfg, unsigned *max_leaf)
{
	int r;

	if (!p || s2_env_validate(p->env))
		return -EINVAL;
	*ops = s2_fmt_lookup(p->fmt);
	if (!*ops)
		return -EINVAL;
	*cfg = (struct s2_fmt_cfg){ 0 };
	r = (*ops)->init_cfg(cfg, p);
	if (r)
		return r;
	if (cfg->levels < 2 || cfg->levels > S2_MAX_LEVELS || cfg->page_shift < 12 ||
	    cfg->max_leaf_level < 1 || cfg->max_leaf_level > cfg->levels)
		return -EINVAL;
	*max_leaf = cfg->max_leaf_level;
	if (*max_leaf > CONFIG_S2_MAX_LEAF_LEVEL)
		*max_leaf = CONFIG_S2_MAX_LEAF_LEVEL;
	if (p->max_leaf_level) {
		if (p->max_leaf_level > cfg->max_leaf_level)
			return -EINVAL;
		if (p->max_leaf_level < *max_leaf)
			*max_leaf = p->max_leaf_level;
	}
	if (p->max_vcpus > 4096)
		return -EINVAL;
	if (p->vmid_alloc) {
		const struct s2_vmid_alloc *a = p->vmid_alloc->alloc;
		unsigned w = 16;

		if (!a || p->vmid)
			return -EINVAL;
		if (p->fmt == S2_FMT_ARM64_S2)
			w = (cfg->flags & S2_FMTF_VMID16) ? 16 : 8;
		else if (p->fmt == S2_FMT_RISCV_G)
			w = 14;
		/* VPID 0 and ASID 0 are the host's. */
		if (a->bits > w ||
		    ((p->fmt == S2_FMT_X86_EPT || p->fmt == S2_FMT_X86_NPT) && a->first < 1))
			return -EINVAL;
	}
	/* 40: the narrowest MMIO value field of the formats (arm64, fake). */
	if (p->mmio_cache > S2_MMIO_CACHE_OFF || p->mmio_gen_bits > 40)
		return -EINVAL;
	return 0;
}

static S2_ALWAYS_INLINE int kvm_create_vm_untraced(const struct kvm_vm_params *p, struct kvm **out)
{
	const struct s2_fmt_ops *ops;
	struct s2_fmt_cfg cfg;
	unsigned max_leaf;
	const struct s2_env *env;
	struct kvm *kvm;
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;
	r = s2_check_params(p, &ops, &cfg, &max_leaf);
	if (r)
		return r;
	env = p->env;
	kvm = env->ops->zalloc(env->ctx, sizeof(*kvm));
	if (!kvm)
		return -ENOMEM;
	kvm->ops = ops;
	kvm->cfg = cfg;
	kvm->cfg.vmid = p->vmid;
	kvm->vmid_alloc = p->vmid_alloc;
	kvm->env = env;
	kvm->max_leaf_level = (uint8_t)max_leaf;
	kvm->p2v_linear = !env->ops->phys_to_virt;
	kvm->light_read = env->ops->membarrier != NULL;
	kvm->tlb_complete =
		ops->tlb_broadcast || (env->ops->tlb_hooks_broadcast &&
				       (env->ops->tlb_flush_range || env->ops->tlb_flush_vm));
	kvm->p2v_offset = (uint64_t)env->virt_offset;
	kvm->max_vcpus = p->max_vcpus ? p->max_vcpus : 64;
	/* docs/mmio.md: off unless asked for (on EPT an MMIO entry makes the
	 * guest's access exit as an EPT misconfiguration, which an embedder
	 * must route to kvm_handle_ept_misconfig). */
	kvm->mmio_cache = p->mmio_cache == S2_MMIO_CACHE_ON;
	kvm->mmio_gen_mask = (1ull << (p->mmio_gen_bits ? p->mmio_gen_bits : 20)) - 1;
	kvm->vcpus = env->ops->zalloc(env->ctx, sizeof(*kvm->vcpus) * kvm->max_vcpus);
	kvm->memslots = env->ops->zalloc(env->ctx, sizeof(*kvm->memslots));
	if (!kvm->vcpus || !kvm->memslots || s2_roots_init(kvm)) {
		if (kvm->memslots)
			env->ops->free(env->ctx, kvm->memslots);
		if (kvm->vcpus)
			env->ops->free(env->ctx, kvm->vcpus);
		env->ops->free(env->ctx, kvm);
		return -ENOMEM;
	}
	*out = kvm;
	return 0;
}

int kvm_create_vm(const struct kvm_vm_params *p, struct kvm **out)
{
	int r = kvm_create_vm_untraced(p, out);

	if (p)
		S2_TRACE_ENV(p->env, "vm", r, S2_TA_STR("fmt", s2_fmt_name(p->fmt)),
			     S2_TA_DEC("gpa_bits", p->gpa_bits), S2_TA_FMTF("flags", p->fmt_flags),
			     S2_TA_DEC("granule", p->granule),
			     S2_TA_DEC("max_leaf", p->max_leaf_level),
			     S2_TA_DEC("max_vcpus", p->max_vcpus), S2_TA_DEC("vmid", p->vmid),
			     /* replay: 1 on, 0 off (the default is off today) */
			     S2_TA_DEC("mmio_cache", p->mmio_cache == S2_MMIO_CACHE_ON),
			     S2_TA_DEC("mmio_gen_bits", p->mmio_gen_bits),
			     S2_TA_DEC("host_pa_bits", p->host_pa_bits),
			     /* the env's single-CPU RCU refuses a second vcpu */
			     S2_TA_DEC("single_cpu",
				       p->env && p->env->ops && p->env->ops->rcu_single_cpu),
			     S2_TA_DEC("vcpus", 0));
	return r;
}

void s2_vcpu_free(struct kvm_vcpu *vcpu);

void kvm_destroy_vm(struct kvm *kvm)
{
	const struct s2_env *env;

	if (!kvm)
		return;
	env = kvm->env;
	__atomic_store_n(&kvm->destroying, true, __ATOMIC_RELEASE);
	/* Every root invalidated and torn down (vcpus are out of guest mode),
	 * the vcpus' references dropped: the root pages go after RCU. */
	s2_tdx_destroy(kvm); /* private memory first: the key goes before the S-EPT pages */
	s2_roots_destroy(kvm);
	if (env->ops->rcu_barrier)
		env->ops->rcu_barrier(env->ctx);
	for (unsigned i = 0; i < kvm->max_vcpus; i++)
		if (kvm->vcpus[i])
			s2_vcpu_free(kvm->vcpus[i]);
	s2_notifier_destroy(kvm);
	s2_dirty_destroy(kvm);
	s2_reserve_destroy(kvm);
	env->ops->free(env->ctx, kvm->roots);
	env->ops->free(env->ctx, kvm->memslots);
	if (kvm->memslots_spare)
		env->ops->free(env->ctx, kvm->memslots_spare);
	env->ops->free(env->ctx, kvm->vcpus);
	env->ops->free(env->ctx, kvm);
}

const struct s2_fmt_cfg *kvm_fmt_cfg(const struct kvm *kvm)
{
	return kvm ? &kvm->cfg : NULL;
}

enum s2_fmt_id kvm_fmt(const struct kvm *kvm)
{
	return kvm ? kvm->ops->id : 0;
}

unsigned kvm_gpa_bits(const struct kvm *kvm)
{
	return kvm ? kvm->cfg.gpa_bits : 0;
}

unsigned kvm_mmu_levels(const struct kvm *kvm)
{
	return kvm ? kvm->cfg.levels : 0;
}

static uint64_t s2_ld(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

int kvm_get_stats(const struct kvm *kvm, struct kvm_mmu_stats *out)
{
	int64_t leaves[S2_MAX_LEVELS + 1] = { 0 };

	if (!kvm || !out)
		return -EINVAL;
	*out = (struct kvm_mmu_stats){ 0 };
	for (unsigned i = 0, hi = s2_vcpus_hi(kvm); i < hi; i++) {
		const struct kvm_vcpu *v = __atomic_load_n(&kvm->vcpus[i], __ATOMIC_ACQUIRE);

		if (!v)
			continue;
		uint64_t fast = 0;

		for (int l = 1; l <= S2_MAX_LEVELS; l++) {
			uint64_t n = s2_ld(&v->stat.fast[l]);

			leaves[l] += (int64_t)n;
			fast += n;
		}
		out->faults += s2_ld(&v->stat.faults) + fast;
		out->faults_fixed += s2_ld(&v->stat.fixed) + fast;
		out->faults_fast += fast;
		out->faults_spurious += s2_ld(&v->stat.spurious);
		out->faults_retry += s2_ld(&v->stat.retry);
		out->exits_mmio += s2_ld(&v->stat.mmio);
		out->exits_ro_write += s2_ld(&v->stat.ro_write);
		out->exits_mmio_cached += s2_ld(&v->stat.mmio_cached);
		out->mmio_entries += s2_ld(&v->stat.mmio_installed);
		for (int l = 1; l <= S2_MAX_LEVELS; l++)
			leaves[l] += (int64_t)s2_ld((const uint64_t *)&v->stat.leaves[l]);
	}
	for (int l = 1; l <= S2_MAX_LEVELS; l++) {
		leaves[l] += (int64_t)s2_ld((const uint64_t *)&kvm->stat_leaves_removed[l]);
		out->cur_leaves[l] = leaves[l] > 0 ? (uint64_t)leaves[l] : 0;
	}
	out->flushes = s2_ld(&kvm->stat_flushes);
	out->flushes_range = s2_ld(&kvm->stat_flushes_range);
	out->zapped_leaves = s2_ld(&kvm->stat_zapped);
	out->mmio_wraps = s2_ld(&kvm->mmio_wraps);
	out->refused_changes = s2_ld(&kvm->stat_refused);
	for (unsigned i = 0; i < __atomic_load_n(&kvm->roots_hi, __ATOMIC_ACQUIRE); i++) {
		uint32_t st = __atomic_load_n(&kvm->roots[i].state, __ATOMIC_ACQUIRE);

		out->cur_roots += st == S2_ROOT_VALID || st == S2_ROOT_INVALID;
		out->cur_roots_valid += st == S2_ROOT_VALID;
	}
	out->roots_freed = s2_ld(&kvm->stat_roots_freed);
	out->fast_zaps = s2_ld(&kvm->stat_fast_zaps);
	out->yields = s2_ld(&kvm->stat_yields);
	out->max_hold_leaves = s2_ld(&kvm->stat_max_hold);
	out->tables_freed_now = s2_ld(&kvm->stat_freed_now);
	out->tables_freed_later = s2_ld(&kvm->stat_freed_later);
	int64_t tp = (int64_t)s2_ld((const uint64_t *)&kvm->stat_table_pages);
	out->cur_table_pages = tp > 0 ? (uint64_t)tp : 0;
	return 0;
}

static char *s2_put_dec(char *p, char *end, uint64_t v)
{
	char tmp[20];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n && p < end)
		*p++ = tmp[--n];
	return p;
}

int kvm_format_stats(const struct kvm *kvm, char *buf, size_t len)
{
	struct kvm_mmu_stats s;
	char *p = buf, *end;
	static const char *const lvl[] = { "", "L1", "L2", "L3", "L4", "L5" };

	if (!buf || !len || kvm_get_stats(kvm, &s))
		return -EINVAL;
	end = buf + len - 1;
	p = s2_put_str(p, end, "faults=");
	p = s2_put_dec(p, end, s.faults);
	p = s2_put_str(p, end, " fixed=");
	p = s2_put_dec(p, end, s.faults_fixed);
	p = s2_put_str(p, end, " fast=");
	p = s2_put_dec(p, end, s.faults_fast);
	p = s2_put_str(p, end, " spurious=");
	p = s2_put_dec(p, end, s.faults_spurious);
	p = s2_put_str(p, end, " mmio=");
	p = s2_put_dec(p, end, s.exits_mmio);
	p = s2_put_str(p, end, " ro_write=");
	p = s2_put_dec(p, end, s.exits_ro_write);
	p = s2_put_str(p, end, " leaves:");
	for (unsigned l = 1; l <= kvm->cfg.max_leaf_level; l++) {
		p = s2_put_str(p, end, " ");
		p = s2_put_str(p, end, lvl[l]);
		p = s2_put_str(p, end, "=");
		p = s2_put_dec(p, end, s.cur_leaves[l]);
	}
	p = s2_put_str(p, end, " flushes=");
	p = s2_put_dec(p, end, s.flushes);
	p = s2_put_str(p, end, " ranged_flushes=");
	p = s2_put_dec(p, end, s.flushes_range);
	p = s2_put_str(p, end, " zapped=");
	p = s2_put_dec(p, end, s.zapped_leaves);
	p = s2_put_str(p, end, " table_pages=");
	p = s2_put_dec(p, end, s.cur_table_pages);
	*p = 0;
	return (int)(p - buf);
}
