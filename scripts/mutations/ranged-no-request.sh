# A ranged flush whose hardware part reaches only the calling CPU (RISC-V
# HFENCE.GVMA with no broadcast env hook) raises no KVM_REQ_TLB_FLUSH and
# kicks nobody: other harts keep their translations (issue 10 hole 1).
describe="the ranged flush path raising no request (RISC-V, local HFENCE only)"
formats="riscv_g"
configs="svadu-hw-get-local nosvadu-wp-ring-local"
apply() {
	mutate flush/flush.c 's/\tif \(!kvm->tlb_complete\)\n\t\tkvm_make_all_cpus_request\(kvm, KVM_REQ_TLB_FLUSH\);\n//'
}
