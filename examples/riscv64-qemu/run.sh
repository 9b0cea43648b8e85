#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Build (when needed) and boot the riscv64 example hypervisor under
# qemu-system-riscv64 (virt, H extension, OpenSBI, two harts), print what
# the hypervisor and the guest printed, and exit 0 only on PASS.
#
#   run.sh                 the example; every check must pass
#   run.sh --break-flush   the image whose flush skips HFENCE.GVMA (the
#                          format's and the remote one): exits 0 only if the
#                          zap check FAILS (exit code 2), i.e. the check can
#                          see a missing flush
# A failed normal run is booted again with trace.sh (the call trace on, the
# tables saved with pmemsave into $EXAMPLE_O/trace/tables.img).
# Before booting it checks that the library's flush hooks in the linked image
# are real HFENCE.GVMA instructions (and, for --break-flush, that they are
# gone).
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

for t in qemu-system-riscv64 riscv64-linux-gnu-gcc riscv64-linux-gnu-objdump make; do
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

# HFENCE.GVMA per function of the format instance (*_riscv_g). objdump
# without the H extension prints them as words: funct7 0x31, funct3 0,
# rd 0, opcode 0x73.
fences=$(riscv64-linux-gnu-objdump -d "$img" |
	awk '/^[0-9a-f]+ <.*>:$/ { fn = $2 }
	     $2 ~ /^6[23][0-9a-f][0-9a-f][08]073$/ && fn ~ /_riscv_g>:$/ { print fn, "hfence.gvma", $2 }' |
	sort | uniq -c)
if [ "$mode" = normal ]; then
	if [ -z "$fences" ]; then
		echo "riscv64-qemu: no HFENCE.GVMA in the format's flush hooks of $img" >&2
		exit 1
	fi
	echo "riscv64-qemu: HFENCE.GVMA in the library's flush hooks:"
	echo "$fences" | sed 's/^/    /'
elif [ -n "$fences" ]; then
	echo "riscv64-qemu: the break-flush image still has HFENCE.GVMA in the format:" >&2
	echo "$fences" >&2
	exit 1
fi

# A failed run keeps its tables: $out/MODE/tables.img, the table pool saved
# with pmemsave, and tables.txt, the s2mmu dump command for it
# (../common/keep-tables.sh, docs/examples.md).
# shellcheck source=examples/common/keep-tables.sh
. "$here/../common/keep-tables.sh"
log=$out/run-$mode.log
mkdir -p "$out/$mode" && kt_open "$out/$mode" "$log" || exit 1
start=$(date +%s%N)
timeout 30 qemu-system-riscv64 -M virt -cpu rv64,h=true -smp 2 -m 2G -nographic \
	-monitor pipe:"$out/$mode/mon" -bios default -kernel "$img" </dev/null >"$log" 2>&1 &
qemu=$!
kt_watch $qemu >/dev/null 2>&1 &
kt_watcher=$!
wait $qemu
rc=$?
kt_close
ms=$((($(date +%s%N) - start) / 1000000))
# OpenSBI's banner first; show it only when the hypervisor printed nothing.
if grep -q '^hyp:' "$log"; then
	sed -n '/^hyp:/,$p' "$log"
else
	cat "$log"
fi
kt_report "riscv64-qemu ($mode):"
kt_status "$log"
echo "riscv64-qemu ($mode): qemu exit status $rc after $ms ms$quit"

if [ "$mode" = break ]; then
	if [ "$rc" -eq 2 ]; then
		echo "riscv64-qemu: zap check failed without HFENCE.GVMA, as expected"
		exit 0
	fi
	echo "riscv64-qemu: the zap check did not fail without HFENCE.GVMA (status $rc)"
	exit 1
fi
# The table pool sized with the calculator (docs/static.md): its high water
# within the calculator's figure.
sizing=$(sed -n 's/^sizing: calculator figure \([0-9]*\) bytes.* high water \([0-9]*\) bytes.*/\1 \2/p' "$log")
sized=0
# shellcheck disable=SC2086
set -- $sizing
if [ $# -eq 2 ] && [ "$2" -le "$1" ]; then
	echo "riscv64-qemu: table pool high water $2 <= calculator's figure $1 bytes"
	sized=1
else
	echo "riscv64-qemu: sizing line missing or table pool high water above the calculator's figure: '$sizing'"
fi
if [ "$rc" -eq 0 ] && [ "$sized" -eq 1 ] && grep -q '^hyp: PASS' "$log"; then
	exit 0
fi
# A failed run: boot it again with the call trace on and the tables kept
# (trace.sh), so that the calls that led there can be replayed and their
# tables compared (docs/examples.md).
echo "riscv64-qemu: FAILED; booting the trace build for its call trace (trace.sh)"
EXAMPLE_O=$out bash "$here/trace.sh" || true
exit 1
