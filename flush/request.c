// SPDX-License-Identifier: MIT
/*
 * vcpu requests, the guest-mode handshake and kicks: the contract between a
 * change of the tables and the vcpus' TLBs.
 *
 * The handshake (as in KVM): the vcpu publishes IN_GUEST_MODE, then (full
 * barrier) re-checks its requests before entering; a requester sets the bit,
 * then (full barrier) moves IN_GUEST_MODE to EXITING_GUEST_MODE and kicks.
 * Either the vcpu sees the request before entry, or the requester sees the
 * vcpu in guest mode and kicks it: a request is never left unseen in guest.
 *
 * That alone says the vcpu *will* see the request; a flush must also know
 * that it *has* left guest mode, since until then it may still use what its
 * TLB holds. So the mode shares one word with a count of guest exits
 * (vcpu->guest_state: mode in bits 0-1, exits above), and a waiting request
 * notes, for each vcpu it found IN_GUEST or EXITING, the count it saw and
 * spins until the count moves. Reading mode and count in one load matters:
 * a vcpu that was kicked, exited and re-entered after handling the request
 * has a new count, so the waiter never waits on a guest session that began
 * after its request (which might not exit for a long time). A vcpu that is
 * outside guest mode costs one load, as before: the fast case stays fast.
 */
#include "core/kvm_internal.h"

#define S2_MODE_MASK 3ull
#define S2_EXIT_ONE 4ull

/* Requests after which the requester waits for guest mode to be left. */
#define S2_REQ_WAIT_MASK                                                     \
	((1ull << KVM_REQ_TLB_FLUSH) | (1ull << KVM_REQ_TLB_FLUSH_CURRENT) | \
	 (1ull << KVM_REQ_TLB_FLUSH_GUEST) | (1ull << KVM_REQ_MMU_RELOAD))

/* vcpus noted per batch before waiting for them (no allocation: requests
 * are raised with mmu_lock held). */
#define S2_WAIT_BATCH 16

struct s2_req_waiter {
	unsigned n;
	const struct kvm_vcpu *v[S2_WAIT_BATCH];
	uint64_t seen[S2_WAIT_BATCH];
};

static void s2_req_wait_all(const struct kvm *kvm, struct s2_req_waiter *w)
{
	for (unsigned i = 0; i < w->n; i++) {
		while ((__atomic_load_n(&w->v[i]->guest_state, __ATOMIC_ACQUIRE) & ~S2_MODE_MASK) ==
		       (w->seen[i] & ~S2_MODE_MASK))
			s2_relax(kvm->env);
	}
	w->n = 0;
}

/*
 * Set the bit; kick when the vcpu was in guest mode. With @w, note a vcpu
 * still in guest mode (IN_GUEST or EXITING: a kick, ours or an earlier one,
 * is on its way) so that the caller waits for its exit. Returns true if
 * kicked.
 */
static bool s2_request_and_kick(struct kvm_vcpu *vcpu, unsigned req, struct s2_req_waiter *w)
{
	const struct s2_env *env = vcpu->kvm->env;
	bool kicked = false;
	uint64_t st;

	__atomic_fetch_or(&vcpu->requests, 1ull << req, __ATOMIC_SEQ_CST);
	st = __atomic_load_n(&vcpu->guest_state, __ATOMIC_SEQ_CST);
	while ((st & S2_MODE_MASK) == IN_GUEST_MODE) {
		uint64_t exiting = (st & ~S2_MODE_MASK) | EXITING_GUEST_MODE;

		if (__atomic_compare_exchange_n(&vcpu->guest_state, &st, exiting, false,
						__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
			if (env->ops->kick)
				env->ops->kick(env->ctx, vcpu);
			kicked = true;
			break;
		}
	}
	if (w && (st & S2_MODE_MASK) != OUTSIDE_GUEST_MODE) {
		if (w->n == S2_WAIT_BATCH)
			s2_req_wait_all(vcpu->kvm, w);
		w->v[w->n] = vcpu;
		w->seen[w->n++] = st;
	}
	return kicked;
}

void kvm_make_request(struct kvm_vcpu *vcpu, unsigned req)
{
	struct s2_req_waiter w = { 0 };
	bool wait;

	if (!vcpu || req >= KVM_REQ_NR)
		return;
	wait = (S2_REQ_WAIT_MASK >> req) & 1;
	s2_request_and_kick(vcpu, req, wait ? &w : NULL);
	s2_req_wait_all(vcpu->kvm, &w);
}

unsigned kvm_make_all_cpus_request(struct kvm *kvm, unsigned req)
{
	struct s2_req_waiter w = { 0 };
	unsigned kicked = 0;
	bool wait;

	if (!kvm || req >= KVM_REQ_NR)
		return 0;
	wait = (S2_REQ_WAIT_MASK >> req) & 1;
	for (unsigned i = 0, n = s2_vcpus_hi(kvm); i < n; i++) {
		struct kvm_vcpu *v = __atomic_load_n(&kvm->vcpus[i], __ATOMIC_ACQUIRE);

		if (v && s2_request_and_kick(v, req, wait ? &w : NULL))
			kicked++;
	}
	s2_req_wait_all(kvm, &w);
	return kicked;
}

void s2_request_vcpus(struct kvm *kvm, unsigned req, bool (*pick)(const struct kvm_vcpu *v))
{
	struct s2_req_waiter w = { 0 };
	bool wait = (S2_REQ_WAIT_MASK >> req) & 1;

	for (unsigned i = 0, n = s2_vcpus_hi(kvm); i < n; i++) {
		struct kvm_vcpu *v = __atomic_load_n(&kvm->vcpus[i], __ATOMIC_ACQUIRE);

		if (v && pick(v))
			s2_request_and_kick(v, req, wait ? &w : NULL);
	}
	s2_req_wait_all(kvm, &w);
}

/*
 * After a change of the tables (docs/rules.md, "Requests"): each vcpu gets
 * the narrowest flush request that is exact. TLB_FLUSH_CURRENT when the VM
 * has exactly one valid root and the vcpu loads its root through the
 * library: every other root is invalid, never run again (MMU_RELOAD) and
 * every load flushes the root it loads, so the translations a vcpu may
 * still use are those of the root it runs on. With several valid roots a
 * vcpu may hold translations of a root it will switch back to, so
 * TLB_FLUSH; and a vcpu whose embedder handles requests by hand gets
 * TLB_FLUSH too. A root made after the count only ever runs after a load,
 * which flushes it. Waits like any flush request.
 */
void s2_request_tlb_flush(struct kvm *kvm)
{
	struct s2_req_waiter w = { 0 };
	bool one_root = s2_roots_valid(kvm) == 1;

	for (unsigned i = 0, n = s2_vcpus_hi(kvm); i < n; i++) {
		struct kvm_vcpu *v = __atomic_load_n(&kvm->vcpus[i], __ATOMIC_ACQUIRE);
		bool current;

		if (!v)
			continue;
		current = one_root && __atomic_load_n(&v->loads_root, __ATOMIC_RELAXED);
		s2_request_and_kick(v, current ? KVM_REQ_TLB_FLUSH_CURRENT : KVM_REQ_TLB_FLUSH, &w);
	}
	s2_req_wait_all(kvm, &w);
}

/* Requests the entry call consumes; the others stay for the embedder. */
#define S2_REQ_ENTRY_MASK                                                    \
	((1ull << KVM_REQ_TLB_FLUSH) | (1ull << KVM_REQ_TLB_FLUSH_CURRENT) | \
	 (1ull << KVM_REQ_TLB_FLUSH_GUEST) | (1ull << KVM_REQ_MMU_RELOAD) |  \
	 (1ull << KVM_REQ_FREE_OBSOLETE_ROOTS))

static void s2_entry_push(struct kvm_entry_actions *out, enum kvm_entry_action_kind kind)
{
	out->a[out->nr++] = (struct kvm_entry_action){ .kind = kind };
}

/*
 * The order: the root first (a flush of "the current root" means the one
 * about to run, and INVEPT single-context names it by its EPTP); then one
 * stage-2 flush, ALL when any root must be flushed (it covers CURRENT, and
 * the flush every load owes); the guest's stage-1 flush last, so nothing
 * refills it from stale stage-2 translations after it.
 */
int kvm_vcpu_entry_actions(struct kvm_vcpu *vcpu, struct kvm_entry_actions *out)
{
	struct kvm_entry_action load = { 0 };
	uint64_t req;
	bool flush_all, flush_cur;
	int r;

	if (!vcpu || !out)
		return -EINVAL;
	out->nr = 0;
	if (s2_kvm_dead(vcpu->kvm))
		return -EIO;
	/* Take the bits first: a request raised after this is seen by the
	 * entry handshake (kvm_vcpu_enter_guest) and gets its own round. */
	req = __atomic_fetch_and(&vcpu->requests, ~S2_REQ_ENTRY_MASK, __ATOMIC_ACQ_REL) &
	      S2_REQ_ENTRY_MASK;
	r = s2_vcpu_reload(vcpu, (req >> KVM_REQ_MMU_RELOAD) & 1, &load);
	if (r < 0) {
		/* Nothing done: the requests stay pending for a retry. */
		__atomic_fetch_or(&vcpu->requests, req, __ATOMIC_ACQ_REL);
		return r;
	}
	flush_all = (req >> KVM_REQ_TLB_FLUSH) & 1;
	flush_cur = r == 1 || ((req >> KVM_REQ_TLB_FLUSH_CURRENT) & 1);
	if (r == 1)
		out->a[out->nr++] = load;
	if (flush_all)
		s2_entry_push(out, KVM_ENTRY_FLUSH_ALL);
	else if (flush_cur)
		s2_entry_push(out, KVM_ENTRY_FLUSH_CURRENT);
	if ((req >> KVM_REQ_TLB_FLUSH_GUEST) & 1)
		s2_entry_push(out, KVM_ENTRY_FLUSH_GUEST);
	out->nr_roots = s2_roots_valid(vcpu->kvm);
	return 0;
}

bool kvm_check_request(struct kvm_vcpu *vcpu, unsigned req)
{
	uint64_t bit;

	if (!vcpu || req >= KVM_REQ_NR)
		return false;
	bit = 1ull << req;
	if (!(__atomic_load_n(&vcpu->requests, __ATOMIC_ACQUIRE) & bit))
		return false;
	return __atomic_fetch_and(&vcpu->requests, ~bit, __ATOMIC_ACQ_REL) & bit;
}

bool kvm_request_pending(const struct kvm_vcpu *vcpu)
{
	return vcpu && __atomic_load_n(&vcpu->requests, __ATOMIC_ACQUIRE);
}

/*
 * Only the vcpu's own thread moves it out of OUTSIDE_GUEST_MODE and bumps
 * the exit count; requesters only move IN_GUEST to EXITING. So the vcpu's
 * stores below need no compare-and-exchange: a requester's exchange that
 * races one of them fails and re-reads.
 */
bool kvm_vcpu_enter_guest(struct kvm_vcpu *vcpu)
{
	uint64_t exits;

	if (!vcpu)
		return false;
	exits = __atomic_load_n(&vcpu->guest_state, __ATOMIC_RELAXED) & ~S2_MODE_MASK;
	__atomic_store_n(&vcpu->guest_state, exits | IN_GUEST_MODE, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&vcpu->requests, __ATOMIC_SEQ_CST)) {
		/* Counted as an exit: a requester may already wait on it. */
		__atomic_store_n(&vcpu->guest_state, (exits + S2_EXIT_ONE) | OUTSIDE_GUEST_MODE,
				 __ATOMIC_SEQ_CST);
		return false;
	}
	return true;
}

void kvm_vcpu_exit_guest(struct kvm_vcpu *vcpu)
{
	uint64_t st;

	if (!vcpu)
		return;
	st = __atomic_load_n(&vcpu->guest_state, __ATOMIC_RELAXED);
	if ((st & S2_MODE_MASK) == OUTSIDE_GUEST_MODE)
		return;
	__atomic_store_n(&vcpu->guest_state,
			 ((st & ~S2_MODE_MASK) + S2_EXIT_ONE) | OUTSIDE_GUEST_MODE,
			 __ATOMIC_RELEASE);
}

enum kvm_vcpu_mode kvm_vcpu_mode(const struct kvm_vcpu *vcpu)
{
	return vcpu ? (enum kvm_vcpu_mode)(__atomic_load_n(&vcpu->guest_state, __ATOMIC_ACQUIRE) &
					   S2_MODE_MASK) :
		      OUTSIDE_GUEST_MODE;
}
