# A flush waits only for the vcpus it kicked itself: one it finds already
# EXITING (kicked by an earlier request that has not landed yet) may still
# run the guest on its old TLB when the flush returns (issue 10 hole 2).
describe="no wait for vcpus found EXITING (only the ones this flush kicked)"
formats="x86_ept"
configs=""
apply() {
	mutate flush/request.c 's/if \(w && \(st & S2_MODE_MASK\) != OUTSIDE_GUEST_MODE\)/if (w \&\& kicked)/'
}
