# kvm_mmu_map_range()'s write-side path (s2_map_one_hold(): invalidation,
# zap of what the range holds, install) drops the flush its zap owes: the
# leaves it replaced stay in the vcpus' TLBs with their old frames.
describe="map_range's one-hold replace without its flush (s2_map_one_hold's zap owes none)"
formats="x86_ept x86_npt arm64_s2 riscv_g"
configs=""
only="map_range"
apply() {
	mutate core/map.c 's/(\tn = s2_range\(kvm, &op\);\n)(\tif \(n >= 0 && __atomic_load_n\(&kvm->memslots_gen)/$1\tacc.flush = false;\n$2/'
}
