#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Build (when needed) and boot the riscv64 example hypervisor under
# qemu-system-riscv64 (virt, H extension, OpenSBI), print what the
# hypervisor and the guest printed, and exit 0 only on PASS.
#
#   run.sh                 the example; every check must pass
#   run.sh --break-flush   the image whose format skips HFENCE.GVMA: exits 0
#                          only if the zap check FAILS (exit code 2), i.e.
#                          the check can see a missing flush
# The build goes to $EXAMPLE_O (default: build/ beside this script).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${EXAMPLE_O:-$here/build}

mode=normal
case "${1:-}" in
"") ;;
--break-flush) mode=break ;;
*)
	echo "usage: $0 [--break-flush]" >&2
	exit 2
	;;
esac

for t in qemu-system-riscv64 riscv64-linux-gnu-gcc make; do
	command -v "$t" >/dev/null || {
		echo "$t is missing: run scripts/install-deps.sh emu" >&2
		exit 1
	}
done

if [ "$mode" = break ]; then
	goal=break img=$out/hyp-breakflush.elf
else
	goal=all img=$out/hyp.elf
fi
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$here" O="$out" "$goal" || exit 1

log=$out/run-$mode.log
start=$(date +%s%N)
timeout 30 qemu-system-riscv64 -M virt -cpu rv64,h=true -smp 1 -m 2G -nographic \
	-bios default -kernel "$img" </dev/null >"$log" 2>&1
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
# OpenSBI's banner first; show it only when the hypervisor printed nothing.
if grep -q '^hyp:' "$log"; then
	sed -n '/^hyp:/,$p' "$log"
else
	cat "$log"
fi
echo "riscv64-qemu ($mode): qemu exit status $rc after $ms ms"

if [ "$mode" = break ]; then
	if [ "$rc" -eq 2 ]; then
		echo "riscv64-qemu: zap check failed without HFENCE.GVMA, as expected"
		exit 0
	fi
	echo "riscv64-qemu: the zap check did not fail without HFENCE.GVMA (status $rc)"
	exit 1
fi
[ "$rc" -eq 0 ] && grep -q '^hyp: PASS' "$log"
