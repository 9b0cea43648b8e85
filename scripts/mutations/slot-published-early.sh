# A memslot is published before its gfns join an invalidation in progress:
# the widening moves out of the write-side section that publishes the slot
# into one of its own after it, as before the fix. A fault in between maps a
# page the host is changing (issue 10 hole 3).
describe="the slot published before the in-progress range widens"
formats="x86_ept"
configs=""
apply() {
	mutate core/memslot.c 's/\tif \(adds\)\n\t\ts2_notifier_slot_adding\(kvm, &u->upd, &u->acc\);\n//'
	mutate core/memslot.c 's/(\tu->gen = __atomic_add_fetch\(&kvm->memslots_gen, 1, __ATOMIC_SEQ_CST\);\n\tif \([^\n]*\)\n\t\ts2_mmu_write_unlock_keep_tables\(kvm, &u->acc\);\n)/$1\tif (adds) {\n\t\tstruct s2_change_acc late;\n\n\t\ts2_acc_init(&late);\n\t\ts2_mmu_write_lock(kvm);\n\t\ts2_notifier_slot_adding(kvm, &u->upd, &late);\n\t\ts2_mmu_write_unlock(kvm, &late);\n\t}\n/'
}
