# The zap drops the flush it owes: s2_zap_yielding() (kvm_zap_gfn_range,
# the in-place zap-all) settles without it, so the zapped leaves stay in the
# vcpus' TLBs when the call returns.
describe="the zap flush removed (s2_zap_yielding settles without its flush)"
formats="x86_ept arm64_s2"
configs=""
apply() {
	mutate core/mmu.c 's/(long s2_zap_yielding\(struct kvm \*kvm, gfn_t start, gfn_t end, bool may_block\)\n\{\n(?:.*\n)*?\tr = s2_range\(kvm, &op\);\n)/$1\tacc.flush = false;\n/'
}
