# The hosted env's synchronize_rcu returns at once (liburcu's grace period
# skipped): the same use after free, in the configurations on liburcu.
describe="a no-op synchronize_rcu (env/hosted, liburcu)"
formats="x86_ept"
configs="ad-hw-get ad-pml-clear"
apply() {
	mutate env/hosted/hosted.c 's/(static void h_synchronize_rcu\(void \*ctx\)\n\{\n\t\(void\)ctx;\n)\turcu_bp_synchronize_rcu\(\);\n/$1/'
}
