#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# nm-one-format.sh O...: a library built without a format holds none of its
# code or API (issue 17). For each build directory O, every format its
# .config leaves out must leave no trace in O/libs2mmu.a: no symbol of the
# format's instance (*_x86_ept, *_arm64_s2, ...), of its register API
# (kvm_x86_ept_*, kvm_arm64_*, kvm_riscv_*, kvm_x86_npt_*), of its own entry
# points (EPT: PML, the misconfiguration exit, TDX; NPT: the NPF exit; x86:
# the CR-write flushes), and not its name string ("x86-ept" ...). The
# instruction decoders (decode/) are per architecture, not per format, and
# kept in every build. Exit 0 when clean, 1 with what was found, 2 on usage.
set -u
[ $# -gt 0 ] || { echo "usage: $0 O..." >&2; exit 2; }
fail=0
for o in "$@"; do
	lib=$o/libs2mmu.a cfg=$o/.config
	[ -f "$lib" ] && [ -f "$cfg" ] || { echo "nm-one-format: $lib or $cfg missing" >&2; exit 2; }
	syms=$(nm -g --defined-only "$lib" 2>/dev/null | awk 'NF == 3 { print $3 }'
		nm --defined-only "$lib" 2>/dev/null | awk 'NF == 3 { print $3 }')
	strs=$(strings -a "$lib")
	on() { grep -q "^CONFIG_S2_FMT_$1=y" "$cfg"; }
	check() { # FORMAT-NAME SYMBOL-ERE
		local found
		found=$(printf '%s\n' "$syms" | grep -E "$2" | sort -u | head -n 8)
		if [ -n "$found" ]; then
			echo "FAIL: $lib (without $1) defines: $(echo $found)"
			fail=1
		fi
		if printf '%s\n' "$strs" | grep -qx -- "$1"; then
			echo "FAIL: $lib (without $1) holds the string \"$1\""
			fail=1
		fi
	}
	on X86_EPT || check x86-ept '(_x86_ept$|^kvm_x86_ept_|^kvm_flush_pml_buffer$|^kvm_handle_ept_misconfig$|^(s2|kvm)_tdx_)'
	on X86_NPT || check x86-npt '(_x86_npt$|^kvm_x86_npt_|^kvm_handle_npf$)'
	on ARM64_S2 || check arm64-s2 '(_arm64_s2$|^kvm_arm64_)'
	on RISCV_G || check riscv-g '(_riscv_g$|^kvm_riscv_)'
	on FAKE || check fake '_fake$'
	if ! on X86_EPT && ! on X86_NPT; then
		found=$(printf '%s\n' "$syms" | grep -E '^(s2_x86_cr_|kvm_x86_)' | sort -u | head -n 8)
		[ -z "$found" ] || { echo "FAIL: $lib (no x86 format) defines: $(echo $found)"; fail=1; }
	fi
	[ $fail -ne 0 ] || echo "ok: $lib holds only its formats ($(grep -o '^CONFIG_S2_FMT_[A-Z0-9_]*=y' "$cfg" | sed 's/CONFIG_S2_FMT_//; s/=y//' | tr '\n' ' '))"
done
exit $fail
