# A leaf with hardware dirty state that is zapped, unmapped, moved or
# zapped-all between two harvests takes its dirty state with it: the next
# harvest misses the write (issue 10 hole 5).
describe="the dirty state of a removed leaf dropped (s2_dirty_record_removed does nothing)"
formats="x86_npt arm64_s2"
configs="hw-get ha-hd-get"
apply() {
	mutate core/dirty.c 's/(void s2_dirty_record_removed\(struct kvm \*kvm, gfn_t gfn, uint64_t pages\)\n\{\n(?:\t.*\n)*?\n)/$1\tif (kvm)\n\t\treturn;\n/'
}
