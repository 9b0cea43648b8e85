// SPDX-License-Identifier: MIT
/*
 * The freestanding environment helpers, run on the host: the page pool's
 * alignment, recycling and exhaustion, and a whole VM living on the pool with
 * a physical address space that is not the host's (pa = va + offset), as in a
 * hypervisor whose tables are not identity mapped.
 */
#include <stdlib.h>
#include <string.h>

#include "tests/lib/testlib.h"
/* The pool is part of the freestanding build only; compile it in here. */
#include "env/freestanding/pool.c"

#define POOL_BYTES (8u << 20)
#define FAKE_PA 0x40000000ull

static void *region;
static struct s2_page_pool pool;

static int setup(void **state)
{
	(void)state;
	region = aligned_alloc(1 << 16, POOL_BYTES);
	assert_non_null(region);
	memset(region, 0xa5, POOL_BYTES); /* the pool must zero what it hands out */
	s2_pool_init(&pool, region, FAKE_PA, POOL_BYTES);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(region);
	return 0;
}

/* Blocks are zeroed, aligned to their size in physical terms, and their pa
 * is the region's pa plus their offset. */
static void test_pool_alignment_and_zeroing(void **state)
{
	static const size_t sizes[] = { 1, 64, 100, 4096, 16384, 65536, 8, 4096 };
	hpa_t pa;

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t want = 64;

		while (want < sizes[i])
			want <<= 1;
		uint8_t *va = s2_pool_alloc(&pool, sizes[i], &pa);
		assert_non_null(va);
		assert_int_equal(pa & (want - 1), 0);
		assert_int_equal(pa - FAKE_PA, (hpa_t)(va - (uint8_t *)region));
		assert_true(t_all_zero(va, want));
		memset(va, 0xff, want);
	}
	assert_null(s2_pool_alloc(&pool, 128 * 1024, &pa)); /* beyond the largest class */
	assert_null(s2_pool_alloc(NULL, 64, &pa));
}

/* Freed blocks are reused (zeroed again) before the bump pointer moves, and
 * an exhausted pool says NULL. */
static void test_pool_recycles_and_exhausts(void **state)
{
	hpa_t pa1, pa2;

	(void)state;
	uint8_t *a = s2_pool_alloc(&pool, 4096, &pa1);
	memset(a, 0x77, 4096);
	size_t used = pool.used;
	s2_pool_free(&pool, a, 4096);
	assert_int_equal(pool.in_use, 0);
	uint8_t *b = s2_pool_alloc(&pool, 4096, &pa2);
	assert_ptr_equal(a, b);
	assert_int_equal(pa1, pa2);
	assert_true(t_all_zero(b, 4096));
	assert_int_equal(pool.used, used);
	unsigned n = 1;
	while (s2_pool_alloc(&pool, 65536, NULL))
		n++;
	assert_true(n >= POOL_BYTES / 65536 - 2);
	assert_true(pool.used <= POOL_BYTES);
}

/* A VM on the freestanding env: tables reached through virt_offset, faults,
 * a zap and destruction return every byte to the pool. */
static int fs_gfn_to_pfn(void *ctx, const struct kvm_memory_slot *slot, gfn_t gfn, bool write,
			 struct s2_pfn_info *out)
{
	(void)ctx;
	(void)write;
	out->pfn = (slot->userspace_addr >> 12) + (gfn - slot->base_gfn);
	out->writable = true;
	out->host_level = 2;
	out->memtype = S2_MT_WB;
	return 0;
}

static void test_vm_on_pool(void **state)
{
	struct s2_freestanding fs;
	struct kvm *kvm;
	struct kvm_vcpu *vcpu;
	struct s2_mapping m;

	(void)state;
	s2_freestanding_init(&fs, &pool);
	fs.ops.gfn_to_pfn = fs_gfn_to_pfn;
	assert_int_equal(s2_env_validate(&fs.env), 0);
	struct kvm_vm_params p = t_default_params(S2_FMT_X86_EPT);
	if (!s2_fmt_supported(S2_FMT_X86_EPT))
		p = t_default_params(S2_FMT_ARM64_S2);
	if (!s2_fmt_supported(p.fmt))
		p = t_default_params(S2_FMT_RISCV_G);
	if (!s2_fmt_supported(p.fmt))
		skip();
	p.env = &fs.env;
	assert_int_equal(kvm_create_vm(&p, &kvm), 0);
	assert_true(kvm_mmu_root_hpa(kvm) >= FAKE_PA &&
		    kvm_mmu_root_hpa(kvm) < FAKE_PA + POOL_BYTES);
	assert_int_equal(kvm_vcpu_create(kvm, 0, &vcpu), 0);
	struct kvm_memory_slot s = {
		.id = 0, .base_gfn = 0x1000, .npages = 0x1000, .userspace_addr = 0x200000000ull
	};
	assert_int_equal(kvm_set_memslot(kvm, &s), 0);
	for (gfn_t g = 0x1000; g < 0x2000; g += 0x11)
		assert_int_equal(kvm_tdp_page_fault(vcpu, g << 12, S2_ACC_READ) >= 0, 1);
	assert_int_equal(kvm_mmu_lookup(kvm, 0x1234567, &m), 0);
	assert_true(m.present);
	assert_int_equal(m.hpa, 0x200000000ull + 0x1234567 - 0x1000000);
	assert_int_equal(m.level, 2);
	assert_true(kvm_zap_gfn_range(kvm, 0x1000, 0x1800) > 0);
	assert_int_equal(kvm_mmu_lookup(kvm, 0x1234567, &m), 0);
	assert_false(m.present);
	assert_true(pool.in_use > 0);
	kvm_destroy_vm(kvm);
	assert_int_equal(pool.in_use, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pool_alignment_and_zeroing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_recycles_and_exhausts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vm_on_pool, setup, teardown),
	};

	return cmocka_run_group_tests_name("freestanding env", tests, NULL, NULL);
}
