# kvm_mmu_map_range()'s read-side try (s2_map_empty()) installs over present
# leaves too (map() without only_empty): a leaf is given another frame under
# the read side, with no zap and no flush (or map() keeps the old leaf).
describe="map_range's read-side try not limited to empty entries (s2_map_empty passes only_empty false)"
formats="x86_ept x86_npt arm64_s2 riscv_g"
configs=""
only="map_range"
apply() {
	mutate core/map.c 's/(kvm->yield_batch \? kvm->yield_batch : 1, )true\);/${1}false);/'
}
