// SPDX-License-Identifier: MIT
/*
 * Random sequences of memslot updates, faults and zaps, checked against a
 * brute-force model with the format's reference walker. The model knows for
 * every gfn of a window which memslot (if any) holds it and whether a fault
 * since its last invalidation must have left it mapped. After each batch:
 *  - soundness: every translation the walker finds is the one the current
 *    memslot gives (never stale after a delete, move or zap), and never
 *    writable in a read-only memslot;
 *  - completeness: every gfn that must be mapped is;
 *  - the leaf counters agree with the leaves the tables hold.
 * Fixed seeds, so a failure names a reproducible sequence; in a build with
 * the call trace (CONFIG_S2_TRACE) a failure also leaves the case as a trace,
 * the library's calls and an expect_map line saying what the model wanted,
 * which `s2mmu replay` replays to the same failure (tests/lib t_trace_*).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s2mmu/errno.h"

#include "tests/lib/testlib.h"

#ifndef TEST_FMT
#error "build with -DTEST_FMT=S2_FMT_..."
#endif

#define WIN_GFNS (1u << 20) /* a 4 GiB window of gpa, at 1 GiB */
#define WIN_BASE 0x40000ull /* gfn of the window's start */
#define NSLOTS 6
#define OPS 3000
#define CHECK_EVERY 100

struct mslot {
	bool used;
	gfn_t base; /* window-relative gfn */
	uint64_t npages;
	hva_t hva;
	bool ro;
};

static struct tvm T;
static struct mslot slots[NSLOTS];
/* What the sequences exercised, so the test cannot pass by doing nothing. */
static struct {
	uint64_t fixed, mmio, ro_write, zapped, refused_slots, max_leaves[4];
} seen;
static uint8_t *must_map; /* per window gfn: a fault left it mapped */
static uint64_t rng, rng_seed;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static uint64_t rnd_below(uint64_t n)
{
	return rnd() % n;
}

static const struct mslot *slot_of(gfn_t w)
{
	for (int i = 0; i < NSLOTS; i++)
		if (slots[i].used && w >= slots[i].base && w - slots[i].base < slots[i].npages)
			return &slots[i];
	return NULL;
}

static bool overlaps_any(gfn_t base, uint64_t npages, int except)
{
	for (int i = 0; i < NSLOTS; i++)
		if (i != except && slots[i].used && base < slots[i].base + slots[i].npages &&
		    slots[i].base < base + npages)
			return true;
	return false;
}

static void forget(gfn_t start, gfn_t end)
{
	if (start < WIN_GFNS)
		memset(must_map + start, 0, (end > WIN_GFNS ? WIN_GFNS : end) - start);
}

/* A random slot shape: 2 MiB- or 1 GiB-friendly or not, in size and hva. */
static void random_shape(struct mslot *s)
{
	static const uint64_t sizes[] = { 1, 7, 300, 512, 1024, 4096, 0x40000 };
	uint64_t n = sizes[rnd_below(sizeof(sizes) / sizeof(sizes[0]))];

	s->npages = n == 1 ? 1 + rnd_below(64) : n;
	s->base = rnd_below(WIN_GFNS - s->npages);
	switch (rnd_below(3)) {
	case 0:
		s->base &= ~0x3ffffull; /* 1 GiB aligned */
		break;
	case 1:
		s->base &= ~0x1ffull; /* 2 MiB aligned */
		break;
	default: break;
	}
	s->hva = 0x7f0000000000ull + (rnd_below(64) << 30);
	switch (rnd_below(3)) {
	case 0: /* congruent with the gfn at every level */
		s->hva += (WIN_BASE + s->base) << 12 & ((1ull << 30) - 1);
		break;
	case 1: /* congruent at 2 MiB only */
		s->hva += ((WIN_BASE + s->base) << 12 & ((1ull << 21) - 1)) + (2ull << 20);
		break;
	default: /* 4 KiB only */ s->hva += rnd_below(512) << 12; break;
	}
	s->ro = rnd_below(5) == 0;
}

static void op_add(void)
{
	int id = (int)rnd_below(NSLOTS);
	struct mslot s;

	if (slots[id].used)
		return;
	random_shape(&s);
	struct kvm_memory_slot ks = { .id = (unsigned)id,
				      .base_gfn = WIN_BASE + s.base,
				      .npages = s.npages,
				      .userspace_addr = s.hva,
				      .flags = s.ro ? KVM_MEM_READONLY : 0 };
	int r = kvm_set_memslot(T.kvm, &ks);

	if (overlaps_any(s.base, s.npages, -1)) {
		assert_int_equal(r, -EINVAL);
		seen.refused_slots++;
		return;
	}
	assert_int_equal(r, 0);
	s.used = true;
	slots[id] = s;
}

static void op_delete(void)
{
	int id = (int)rnd_below(NSLOTS);

	if (!slots[id].used) {
		assert_int_equal(kvm_delete_memslot(T.kvm, (unsigned)id), -ENOENT);
		return;
	}
	assert_int_equal(kvm_delete_memslot(T.kvm, (unsigned)id), 0);
	forget(slots[id].base, slots[id].base + slots[id].npages);
	slots[id].used = false;
}

static void op_move(void)
{
	int id = (int)rnd_below(NSLOTS);
	struct mslot *s = &slots[id];
	gfn_t nb;

	if (!s->used)
		return;
	nb = rnd_below(WIN_GFNS - s->npages);
	int r = kvm_move_memslot(T.kvm, (unsigned)id, WIN_BASE + nb);

	if (overlaps_any(nb, s->npages, id)) {
		assert_int_equal(r, -EINVAL);
		return;
	}
	assert_int_equal(r, 0);
	forget(s->base, s->base + s->npages);
	s->base = nb;
}

static void op_flags(void)
{
	int id = (int)rnd_below(NSLOTS);
	struct mslot *s = &slots[id];

	if (!s->used)
		return;
	assert_int_equal(kvm_set_memslot_flags(T.kvm, (unsigned)id, s->ro ? 0 : KVM_MEM_READONLY),
			 0);
	if (!s->ro) /* becoming read-only unmaps the slot */
		forget(s->base, s->base + s->npages);
	s->ro = !s->ro;
}

static void op_fault(void)
{
	gfn_t w = rnd_below(WIN_GFNS);
	const struct mslot *s;
	bool write = rnd_below(2);
	int r;

	/* Mostly inside slots, where the interesting things happen. */
	for (int tries = 0; tries < 8 && !slot_of(w); tries++) {
		const struct mslot *c = &slots[rnd_below(NSLOTS)];

		if (c->used)
			w = c->base + rnd_below(c->npages);
	}
	s = slot_of(w);
	r = kvm_tdp_page_fault(T.vcpu, (WIN_BASE + w) << 12,
			       S2_ACC_READ | (write ? S2_ACC_WRITE : 0));
	if (!s) {
		assert_int_equal(r, RET_PF_EMULATE_MMIO);
	} else if (write && s->ro) {
		assert_int_equal(r, RET_PF_RO_WRITE);
	} else {
		if (r != RET_PF_FIXED && r != RET_PF_SPURIOUS)
			fail_msg("[%s] seed %llx: fault at gfn %#llx returned %d", TEST_FMT_NAME,
				 (unsigned long long)rng, (unsigned long long)(WIN_BASE + w), r);
		must_map[w] = 1;
	}
}

static void op_zap(void)
{
	gfn_t s = rnd_below(WIN_GFNS), n = 1 + rnd_below(rnd_below(2) ? 16 : 0x4000);
	gfn_t e = s + n > WIN_GFNS ? WIN_GFNS : s + n;

	assert_true(kvm_zap_gfn_range(T.kvm, WIN_BASE + s, WIN_BASE + e) >= 0);
	/* A huge leaf the range only touches goes whole: up to 1 GiB around. */
	forget(s & ~0x3ffffull, (e + 0x3ffff) & ~0x3ffffull);
}

static int count_leaf(void *arg, gfn_t gfn, const struct s2_mapping *m)
{
	(void)gfn;
	(void)m;
	(*(uint64_t *)arg)++;
	return 0;
}

static void check_gfn(gfn_t w)
{
	const struct mslot *s = slot_of(w);
	struct ref_xlate x;
	gpa_t gpa = (WIN_BASE + w) << 12;

	if (ref_walk_kvm(T.kvm, gpa, &x)) {
		if (must_map[w] && s)
			t_trace_line(&T, "expect_map gpa=%#llx hpa=%#llx # model: mapped",
				     (unsigned long long)gpa,
				     (unsigned long long)(s->hva + ((w - s->base) << 12)));
		if (must_map[w])
			fail_msg("[%s] gfn %#llx should be mapped (%s at level %d)", TEST_FMT_NAME,
				 (unsigned long long)(WIN_BASE + w), ref_fault_name(x.fault),
				 x.level);
		return;
	}
	if (!s)
		t_trace_line(&T, "expect_map gpa=%#llx hpa=none # model: in no memslot",
			     (unsigned long long)gpa);
	if (!s)
		fail_msg("[%s] gfn %#llx mapped to %#llx but in no memslot", TEST_FMT_NAME,
			 (unsigned long long)(WIN_BASE + w), (unsigned long long)x.hpa);
	if (x.hpa != s->hva + ((w - s->base) << 12))
		t_trace_line(&T, "expect_map gpa=%#llx hpa=%#llx # model: the memslot's page",
			     (unsigned long long)gpa,
			     (unsigned long long)(s->hva + ((w - s->base) << 12)));
	if (x.hpa != s->hva + ((w - s->base) << 12))
		fail_msg("[%s] gfn %#llx maps %#llx, its memslot says %#llx", TEST_FMT_NAME,
			 (unsigned long long)(WIN_BASE + w), (unsigned long long)x.hpa,
			 (unsigned long long)(s->hva + ((w - s->base) << 12)));
	if (s->ro && (x.perm & S2_PROT_W))
		t_trace_line(&T,
			     "expect_map gpa=%#llx hpa=%#llx write=0 # model: read-only memslot",
			     (unsigned long long)gpa, (unsigned long long)x.hpa);
	if (s->ro && (x.perm & S2_PROT_W))
		fail_msg("[%s] gfn %#llx writable in a read-only memslot", TEST_FMT_NAME,
			 (unsigned long long)(WIN_BASE + w));
}

static void check_all(void)
{
	uint64_t leaves = 0, counted = 0;
	struct kvm_mmu_stats st = t_stats(T.kvm);

	/* Everything that must be mapped, and a sample of everything else. */
	for (gfn_t w = 0; w < WIN_GFNS; w++)
		if (must_map[w])
			check_gfn(w);
	for (int i = 0; i < 4000; i++)
		check_gfn(rnd_below(WIN_GFNS));
	for (int l = 1; l <= S2_MAX_LEVELS; l++)
		counted += st.cur_leaves[l];
	for (int l = 1; l <= 3; l++)
		if (st.cur_leaves[l] > seen.max_leaves[l])
			seen.max_leaves[l] = st.cur_leaves[l];
	assert_int_equal(kvm_mmu_for_each_leaf(T.kvm, 0, 1ull << (kvm_gpa_bits(T.kvm) - 12),
					       count_leaf, &leaves),
			 0);
	assert_int_equal(leaves, counted);
}

/* After a failure (cmocka runs it then too): keep the case as a trace. */
static int keep_trace(void **state)
{
	char name[96];

	(void)state;
	if (T.trace_fd > 0) {
		snprintf(name, sizeof(name), "mmu_model-%s-%llx", TEST_FMT_NAME,
			 (unsigned long long)rng_seed);
		t_trace_save(&T, name);
	}
	return 0;
}

static void run_seed(uint64_t seed)
{
	memset(slots, 0, sizeof(slots));
	memset(must_map, 0, WIN_GFNS);
	rng = rng_seed = seed;
	t_trace_record(true);
	t_vm_init(&T, TEST_FMT, NULL);
	for (int op = 0; op < OPS; op++) {
		switch (rnd_below(20)) {
		case 0:
		case 1: op_add(); break;
		case 2: op_delete(); break;
		case 3: op_move(); break;
		case 4: op_flags(); break;
		case 5:
		case 6: op_zap(); break;
		default: op_fault(); break;
		}
		if (op % CHECK_EVERY == CHECK_EVERY - 1)
			check_all();
	}
	check_all();
	assert_false(kvm_is_bugged(T.kvm));
	struct kvm_mmu_stats st = t_stats(T.kvm);
	seen.fixed += st.faults_fixed;
	seen.mmio += st.exits_mmio;
	seen.ro_write += st.exits_ro_write;
	seen.zapped += st.zapped_leaves;
	t_vm_fini(&T);
}

/* Eight fixed seeds, each 3000 random operations over six memslots. */
static void test_random_sequences_match_model(void **state)
{
	(void)state;
	must_map = calloc(1, WIN_GFNS);
	assert_non_null(must_map);
	for (uint64_t s = 1; s <= 8; s++)
		run_seed(0x9e3779b97f4a7c15ull * s);
	free(must_map);
	print_message(
		"[%s] %llu faults fixed, %llu MMIO, %llu read-only writes, %llu leaves "
		"zapped, %llu overlapping slots refused; most leaves at once: 4K %llu, "
		"2M %llu, 1G %llu\n",
		TEST_FMT_NAME, (unsigned long long)seen.fixed, (unsigned long long)seen.mmio,
		(unsigned long long)seen.ro_write, (unsigned long long)seen.zapped,
		(unsigned long long)seen.refused_slots, (unsigned long long)seen.max_leaves[1],
		(unsigned long long)seen.max_leaves[2], (unsigned long long)seen.max_leaves[3]);
	assert_true(seen.fixed > 1000 && seen.mmio > 0 && seen.ro_write > 0 && seen.zapped > 0);
	assert_true(seen.refused_slots > 0);
	assert_true(seen.max_leaves[1] > 0 && seen.max_leaves[2] > 0 && seen.max_leaves[3] > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_random_sequences_match_model, keep_trace),
	};

	if (!s2_fmt_supported(TEST_FMT)) {
		print_message("format " TEST_FMT_NAME " not built: skipped\n");
		return 0;
	}
	return cmocka_run_group_tests_name("generic mmu model [" TEST_FMT_NAME "]", tests, NULL,
					   NULL);
}
