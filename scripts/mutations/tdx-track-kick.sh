# A TD's private removal drops the kick round after TDH.MEM.TRACK
# (tdx_track() in core/tdx.c): a vcpu that entered the TD before the
# blocking epoch keeps running, and REMOVE takes pages it still translates.
# The TD private-TLB checker (tests/tdx/test_tlb_mt.c, with the module
# model's own tracking check off) sees the stale translation.
describe="the kick round after TDH.MEM.TRACK removed (tdx_track)"
formats="x86_ept"
bins="tests/tdx/test_tlb_mt"
configs=""
apply() {
	mutate core/tdx.c 's/(\ttdx_add\(&t->tracks, 1\);\n)\ttdx_kick\(kvm, t\);\n/$1/'
}
