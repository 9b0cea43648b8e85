# A write-side hold frees the tables it unlinked at once even while a
# lockless walker (the device thread's test_young) may still be inside them:
# s2_acc_free_tables_write() ignores kvm->lockless_walkers. The walker reads
# a freed table; only ASan sees that (the checker's env poisons freed tables
# for ASan too), so the checkers are built with it.
describe="a write-side hold's unlinked tables freed at once during a lockless walk (lockless_walkers ignored)"
formats="x86_ept"
configs=""
only="zap"
sanitize="address,undefined"
apply() {
	mutate core/mmu.c 's/now = !__atomic_fetch_add\(&kvm->lockless_walkers, 0, __ATOMIC_ACQ_REL\);/now = true;/'
}
