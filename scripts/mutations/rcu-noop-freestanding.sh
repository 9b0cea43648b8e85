# The freestanding env's SMP RCU returns from synchronize_rcu at once: a
# memslot array or dirty bitmap is freed while another CPU may still use it
# (issue 10 hole 4). Checked in the configurations that run on that RCU.
describe="a no-op synchronize_rcu (env/freestanding quiescent-state RCU)"
formats="x86_ept riscv_g"
configs="ad-hw-get-fsrcu svadu-hw-get-local-fsrcu"
apply() {
	mutate env/freestanding/rcu.c 's/(static void f_synchronize_rcu_smp\(void \*ctx\)\n\{\n)/$1\tif (ctx)\n\t\treturn;\n/'
}
