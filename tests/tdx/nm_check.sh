#!/bin/sh
# SPDX-License-Identifier: MIT
# An arm64-only and a RISC-V-only library contain no TDX code: no symbol of
# core/tdx.c (s2_tdx_*, kvm_tdx_*) in libs2mmu.a. Usage: nm_check.sh <O>...
# with each O a build dir configured for a non-EPT defconfig.
set -e
fail=0
for o in "$@"; do
	lib="$o/libs2mmu.a"
	[ -f "$lib" ] || { echo "nm_check: $lib missing" >&2; exit 2; }
	if nm "$lib" | grep -E ' [TtDdBbRr] (s2_tdx_|kvm_tdx_|tdx_)' ; then
		echo "FAIL: TDX code in $lib" >&2
		fail=1
	else
		echo "ok: no TDX code in $lib"
	fi
done
exit $fail
