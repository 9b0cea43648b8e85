// SPDX-License-Identifier: MIT
/*
 * The register builders that take the VMID / VPID from the allocator
 * (include/s2mmu/vmid.h), on VMs of the hosted env. Single-threaded (the
 * allocator's concurrency is tests/test_vmid_mt.c's).
 *
 * Mutations run (each made test_builders fail, then was reverted):
 * kvm_arm64_vttbr_vmid() without its width check, kvm_riscv_hgatp_vmid()
 * with the id shifted, kvm_x86_ept_eptp_vpid() accepting an allocator that
 * hands out VPID 0.
 */
#include <string.h>

#include "s2mmu/arm64-s2.h"
#include "s2mmu/config.h"
#include "s2mmu/riscv-g.h"
#include "s2mmu/vmid.h"
#include "s2mmu/x86-ept.h"
#include "tests/lib/testlib.h"

static struct {
	struct s2_env env;
	struct s2_env_ops ops;
	struct s2_vmid_alloc alloc;
	struct s2_vmid_cpu cpus[2];
	uint64_t map[S2_VMID_MAP_WORDS(16)];
} S;

static void flush_local(void *ctx, unsigned cpu)
{
	(void)ctx;
	(void)cpu;
}

static void setup_alloc(unsigned bits, unsigned first, bool broadcast)
{
	(void)broadcast;
	memset(&S.ops, 0, sizeof(S.ops));
	S.ops.vmid_flush_local = flush_local;
	S.env = (struct s2_env){ .ops = &S.ops };
	assert_int_equal(s2_vmid_alloc_init(&S.alloc, &S.env, bits, first, 2, S.cpus, S.map), 0);
}

static void teardown_alloc(void)
{
}

/*
 * The register builders put the allocator's id where the architecture reads
 * it: VTTBR_EL2[55:48] (or [63:48] with VMID16), hgatp[57:44], the VPID
 * beside the EPTP; widths the VM cannot hold and ids never assigned are
 * refused.
 */
static void test_builders(void **state)
{
	struct s2_vmid v;
	uint64_t val, plain;

	(void)state;
#if S2_ENABLED(CONFIG_S2_FMT_ARM64_S2)
	{
		struct tvm t;
		int id;
		struct kvm_vm_params p = t_default_params(S2_FMT_ARM64_S2);

		p.fmt_flags |= S2_FMTF_VMID16;
		t_vm_init(&t, S2_FMT_ARM64_S2, &p);
		setup_alloc(16, 1, false);
		s2_vmid_init(&v, &S.alloc);
		assert_int_equal(kvm_arm64_vttbr_vmid(t.kvm, &v, &val), -EINVAL);
		/* Ids above 8 bits, to see all 16 land. */
		S.alloc.next = 0x1234;
		id = s2_vmid_update(&v, 0);
		assert_int_equal(id, 0x1234);
		assert_int_equal(kvm_arm64_vttbr_vmid(t.kvm, &v, &val), 0);
		assert_int_equal(kvm_arm64_vttbr(t.kvm, &plain), 0);
		assert_true(val >> 48 == 0x1234);
		assert_true((val & ((1ull << 48) - 1)) == (plain & ((1ull << 48) - 1)));
		teardown_alloc();
		t_vm_fini(&t);

		t_vm_init(&t, S2_FMT_ARM64_S2, NULL); /* 8-bit VMIDs */
		setup_alloc(16, 1, false);
		s2_vmid_init(&v, &S.alloc);
		assert_true(s2_vmid_update(&v, 0) > 0);
		assert_int_equal(kvm_arm64_vttbr_vmid(t.kvm, &v, &val), -EINVAL);
		teardown_alloc();
		setup_alloc(8, 1, false);
		s2_vmid_init(&v, &S.alloc);
		S.alloc.next = 0xab;
		assert_int_equal(s2_vmid_update(&v, 0), 0xab);
		assert_int_equal(kvm_arm64_vttbr_vmid(t.kvm, &v, &val), 0);
		assert_true(val >> 48 == 0xab);
		teardown_alloc();
		t_vm_fini(&t);
	}
#endif
#if S2_ENABLED(CONFIG_S2_FMT_RISCV_G)
	{
		struct tvm t;

		t_vm_init(&t, S2_FMT_RISCV_G, NULL);
		setup_alloc(14, 1, false);
		s2_vmid_init(&v, &S.alloc);
		S.alloc.next = 0x2abc;
		assert_int_equal(s2_vmid_update(&v, 0), 0x2abc);
		assert_int_equal(kvm_riscv_hgatp_vmid(t.kvm, &v, &val), 0);
		assert_int_equal(kvm_riscv_hgatp(t.kvm, &plain), 0);
		assert_true(((val >> 44) & 0x3fff) == 0x2abc);
		assert_true((val & ~(0x3fffull << 44)) == (plain & ~(0x3fffull << 44)));
		teardown_alloc();
		setup_alloc(15, 1, false);
		s2_vmid_init(&v, &S.alloc);
		assert_true(s2_vmid_update(&v, 0) > 0);
		assert_int_equal(kvm_riscv_hgatp_vmid(t.kvm, &v, &val), -EINVAL);
		teardown_alloc();
		t_vm_fini(&t);
	}
#endif
#if S2_ENABLED(CONFIG_S2_FMT_X86_EPT)
	{
		struct tvm t;
		uint16_t vpid = 0;

		t_vm_init(&t, S2_FMT_X86_EPT, NULL);
		setup_alloc(16, 1, false);
		s2_vmid_init(&v, &S.alloc);
		assert_int_equal(kvm_x86_ept_eptp_vpid(t.kvm, &v, &val, &vpid), -EINVAL);
		S.alloc.next = 0xfffe;
		assert_int_equal(s2_vmid_update(&v, 0), 0xfffe);
		assert_int_equal(kvm_x86_ept_eptp_vpid(t.kvm, &v, &val, &vpid), 0);
		assert_int_equal(kvm_x86_ept_eptp(t.kvm, &plain), 0);
		assert_true(val == plain);
		assert_int_equal(vpid, 0xfffe);
		teardown_alloc();
		setup_alloc(16, 0, false); /* would hand out VPID 0 */
		s2_vmid_init(&v, &S.alloc);
		assert_true(s2_vmid_update(&v, 0) >= 0);
		assert_int_equal(kvm_x86_ept_eptp_vpid(t.kvm, &v, &val, &vpid), -EINVAL);
		teardown_alloc();
		t_vm_fini(&t);
	}
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builders),
	};

	return cmocka_run_group_tests_name("vmid register builders", tests, NULL, NULL);
}
