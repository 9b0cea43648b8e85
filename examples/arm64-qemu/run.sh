#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Build (when needed) and boot the arm64 example hypervisor under
# qemu-system-aarch64 (virt, virtualization=on), once with -cpu cortex-a57
# (no hardware Access flag) and once with -cpu max (HA and HD), print what
# the hypervisor and the guest printed, and exit 0 only if both PASS.
#
#   run.sh                 the example; every check must pass on both CPUs
#   run.sh --break-flush   the image whose format skips TLBI: exits 0 only if
#                          the zap check FAILS (exit code 2) on both CPUs,
#                          i.e. the check can see a missing flush
# Before booting it checks that the library's flush hooks in the linked image
# are real TLBI instructions (and, for --break-flush, that they are gone).
# cortex-a57 has neither hardware AF nor S2FWB; max has HA, HD and S2FWB, and
# the hypervisor uses them, so both ways through the format meet real walks.
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

for t in qemu-system-aarch64 aarch64-linux-gnu-gcc aarch64-linux-gnu-objdump make; do
	command -v "$t" >/dev/null || {
		echo "$t is missing: run scripts/install-deps.sh emu" >&2
		exit 1
	}
done

if [ "$mode" = break ]; then
	goal=break img=$out/hyp-breakflush.elf want=2
else
	goal=all img=$out/hyp.elf want=0
fi
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$here" O="$out" "$goal" || exit 1

# TLBI (and DC CIVAC) instructions per function of the format instance
# (*_arm64_s2): the flush must be TLBI in the library itself.
insns=$(aarch64-linux-gnu-objdump -d "$img" |
	awk '/^[0-9a-f]+ <.*>:$/ { fn = $2 }
	     /\t(tlbi|dc)\t/ && fn ~ /_arm64_s2>:$/ { i = $0; sub(/.*\t(tlbi|dc)\t/, "", i);
		op = $0; sub(/\t[^\t]*$/, "", op); sub(/.*\t/, "", op); print fn, op, i }' |
	sort | uniq -c)
if [ "$mode" = normal ]; then
	if ! echo "$insns" | grep -q ' tlbi '; then
		echo "arm64-qemu: no TLBI in the format's flush hooks of $img" >&2
		exit 1
	fi
	echo "arm64-qemu: TLBI and cache maintenance in the library's format instance:"
	echo "$insns" | sed 's/^/    /'
elif echo "$insns" | grep -q ' tlbi '; then
	echo "arm64-qemu: the break-flush image still has TLBI in the format:" >&2
	echo "$insns" >&2
	exit 1
fi

# A failed run keeps its tables: $out/MODE-CPU/tables.img, the table pool
# saved with pmemsave, and tables.txt, the s2mmu dump command for it
# (../common/keep-tables.sh, docs/examples.md).
# shellcheck source=examples/common/keep-tables.sh
. "$here/../common/keep-tables.sh"
fail=0
for cpu in cortex-a57 max; do
	log=$out/run-$mode-$cpu.log
	mkdir -p "$out/$mode-$cpu" && kt_open "$out/$mode-$cpu" "$log" || exit 1
	start=$(date +%s%N)
	timeout 30 qemu-system-aarch64 -M virt,virtualization=on -cpu "$cpu" -smp 1 -m 2G \
		-nographic -monitor pipe:"$out/$mode-$cpu/mon" -semihosting -kernel "$img" \
		</dev/null >"$log" 2>&1 &
	qemu=$!
	kt_watch $qemu >/dev/null 2>&1 &
	kt_watcher=$!
	wait $qemu
	rc=$?
	kt_close
	ms=$((($(date +%s%N) - start) / 1000000))
	echo "==== -cpu $cpu"
	cat "$log"
	kt_report "arm64-qemu ($mode, -cpu $cpu):"
	kt_status "$log"
	echo "arm64-qemu ($mode, -cpu $cpu): qemu exit status $rc after $ms ms$quit"
	if [ "$rc" -ne "$want" ]; then
		fail=1
	elif [ "$mode" = normal ] && ! grep -q '^hyp: PASS' "$log"; then
		fail=1
	fi
	# The table pool sized with the calculator (docs/static.md): its high
	# water within the calculator's figure.
	if [ "$mode" = normal ]; then
		sizing=$(sed -n 's/^sizing: calculator figure \([0-9]*\) bytes.* high water \([0-9]*\) bytes.*/\1 \2/p' "$log")
		# shellcheck disable=SC2086
		set -- $sizing
		if [ $# -ne 2 ] || [ "$2" -gt "$1" ]; then
			echo "arm64-qemu: sizing line missing or table pool high water above the calculator's figure: '$sizing'"
			fail=1
		else
			echo "arm64-qemu: table pool high water $2 <= calculator's figure $1 bytes"
		fi
	fi
done

if [ "$mode" = break ]; then
	if [ "$fail" -eq 0 ]; then
		echo "arm64-qemu: zap check failed without TLBI on both CPUs, as expected"
		exit 0
	fi
	echo "arm64-qemu: the zap check did not fail (exit code 2) without TLBI on every CPU"
	exit 1
fi
[ "$fail" -eq 0 ] && exit 0
# A failed run: boot it again with the call trace on and the tables kept
# (trace.sh, -cpu cortex-a57), so that the calls that led there can be
# replayed and their tables compared (docs/examples.md).
echo "arm64-qemu: FAILED; booting the trace build for its call trace (trace.sh)"
EXAMPLE_O=$out bash "$here/trace.sh" || true
exit 1
