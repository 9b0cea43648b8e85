# The hosted env's call_rcu thread runs a batch without waiting for the
# grace period: tables and memslot arrays freed while readers that began
# before the call_rcu may still use them.
describe="call_rcu callbacks run before the grace period (env/hosted's callback thread)"
formats="x86_ept"
configs="ad-hw-get ad-pml-clear"
apply() {
	mutate env/hosted/hosted.c 's/\t\turcu_bp_synchronize_rcu\(\);\n\t\th_tsan_acquire\(&h_reader_token\);\n\t\twhile \(cb\) \{/\t\twhile (cb) {/'
}
