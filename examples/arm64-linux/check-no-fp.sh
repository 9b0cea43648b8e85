#!/bin/sh
# SPDX-License-Identifier: MIT
#
# check-no-fp.sh OBJDUMP ELF: fail if the hypervisor image has an FP/SIMD
# instruction outside fpsimd_save (hyp.c, which only reads the registers to
# check them). The world switch saves no FP/SIMD register, so EL2 code that
# writes one changes the guest's under it: -mgeneral-regs-only keeps the
# compiler off them, but not the helpers linked from libgcc (__popcountdi2
# uses d0/v0; docs/examples.md).
"$1" -d --no-show-raw-insn "$2" | awk '
/^[0-9a-f]+ <.*>:$/ { fn = $2; next }
fn == "<fpsimd_save>:" { next }
/^ *[0-9a-f]+:\t/ {
	n = split($0, f, "\t")
	ins = f[2] " " (n > 2 ? f[3] : "")
	gsub(/<[^>]*>/, "", ins)
	if (ins ~ /(^|[^a-z0-9_.])[qvdshb][0-9][0-9]?([^a-z0-9_]|$)/ || ins ~ /fpsr|fpcr/) {
		print "check-no-fp: FP/SIMD instruction in " fn " " $0
		bad = 1
	}
}
END { exit bad }'
