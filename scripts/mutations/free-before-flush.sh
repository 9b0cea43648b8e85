# The tables a write-side hold unlinked are freed before the flush that
# makes the vcpus' walk caches forget them: s2_mmu_write_unlock() drops the
# lock without the flush, frees (s2_acc_free_tables_write(): at once when
# at most 4 and no lockless walker runs), and flushes only then. A vcpu's
# cached walk through a freed table reads the poison the env filled it with.
describe="a write-side hold's unlinked tables freed before its flush (s2_mmu_write_unlock unlocks, frees, then flushes)"
formats="x86_ept x86_npt arm64_s2 riscv_g"
configs=""
only="map_range"
apply() {
	mutate core/kvm_internal.h 's/(static inline void s2_mmu_write_unlock\(struct kvm \*kvm, struct s2_change_acc \*acc\)\n\{\n)\ts2_mmu_write_unlock_keep_tables\(kvm, acc\);\n\ts2_acc_free_tables_write\(kvm, acc\);\n/$1\tbool fl = acc->flush;\n\n\tacc->flush = false;\n\ts2_mmu_write_unlock_keep_tables(kvm, acc);\n\ts2_acc_free_tables_write(kvm, acc);\n\tif (fl)\n\t\tkvm_flush_remote_tlbs_range(kvm, acc->flush_start, acc->flush_end - acc->flush_start);\n/'
}
