#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Build the x86 NPT example (AMD SVM + nested paging on s2mmu) and boot it
# under qemu-system-x86_64 -accel tcg -cpu qemu64,+svm,+npt,+pdpe1gb -smp 2. Prints
# guest's and the hypervisor's output; exits 0 only when the hypervisor
# printed "RESULT: PASS" and left through isa-debug-exit with the pass code
# (QEMU exit status 33 = 2 * 0x10 + 1).
#
#   run.sh                 the normal run
#   run.sh --break-flush   build with BREAK_FLUSH=1: the library's flush no
#                          longer reaches the running vcpu (no kick IPI, no
#                          TLB_CONTROL on KVM_REQ_TLB_FLUSH). The zap's flush then
#                          waits for a vcpu that nothing makes exit; the run
#                          ends when the guest gives up its loop or the boot
#                          CPU has spun 1M times in that flush, and must fail
#                          on the zap checks and on nothing else (exit 0 then).
#
# A failed run keeps its tables: the hypervisor prints "hv: tables: ..." and
# waits, run.sh saves the table pool with QEMU's pmemsave into
# $EXAMPLE_O/tables.img (break-flush/tables.img) and prints the s2mmu dump
# command for it (also in tables.txt; docs/examples.md).
#
# Environment: EXAMPLE_O=dir (build directory, default build/ here; not O,
# which a calling top-level make may export for its own tree), TIMEOUT
# (seconds, default 30; 60 with --break-flush).
set -u
here=$(cd "$(dirname "$0")" && pwd)
mode=normal
case "${1:-}" in
--break-flush) mode=break ;;
"") ;;
*) echo "usage: $0 [--break-flush]" >&2; exit 2 ;;
esac

command -v qemu-system-x86_64 >/dev/null 2>&1 || {
	echo "run.sh: qemu-system-x86_64 not installed (scripts/install-deps.sh emu)" >&2; exit 1; }

O=${EXAMPLE_O:-$here/build}
if [ $mode = break ]; then
	make -s -C "$here" O="$O" ${LIBSRC:+LIBSRC="$LIBSRC"} BREAK_FLUSH=1 || exit 1
	B=$O/break-flush
else
	make -s -C "$here" O="$O" ${LIBSRC:+LIBSRC="$LIBSRC"} || exit 1
	B=$O
fi

# --break-flush runs until the boot CPU gives up on the zap's flush: longer.
deftimeout=30; [ $mode = break ] && deftimeout=60
# The monitor on FIFOs: a failed run prints "hv: tables: ..." and waits;
# the table pool is then saved with pmemsave into $B/tables.img (for s2mmu
# dump, docs/examples.md) and QEMU is told to quit (../common/keep-tables.sh).
. "$here/../common/keep-tables.sh"
kt_open "$B" "$B/out.txt" || exit 1
start=$(date +%s.%N)
timeout "${TIMEOUT:-$deftimeout}" qemu-system-x86_64 -accel tcg -cpu qemu64,+svm,+npt,+pdpe1gb -smp 2 -m 2G \
	-display none -serial stdio -monitor pipe:"$B/mon" -no-reboot -nodefaults \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$B/hv.bin" \
	</dev/null >"$B/out.txt" 2>"$B/err.txt" &
qemu=$!
kt_watch $qemu 0.1 >/dev/null 2>&1 &
kt_watcher=$!
wait $qemu
rc=$?
kt_close
end=$(date +%s.%N)
tr -d '\r' <"$B/out.txt"
awk -v rc="$rc" -v s="$start" -v e="$end" 'BEGIN { printf "qemu: exit %s after %.1f s\n", rc, e - s }'
[ -s "$B/err.txt" ] && sed 's/^/qemu: /' "$B/err.txt"
[ $rc -eq 124 ] && echo "run.sh: qemu timed out"
kt_report "run.sh:"

pass=0; [ $rc -eq 33 ] && grep -q '^RESULT: PASS' "$B/out.txt" && pass=1
# Fully prepared (HV_PREPARED, docs/static.md): the table pool's high-water
# mark within the sizing calculator's figure, nothing asked after prepare.
sizing=$(sed -n 's/^sizing: calculator figure \([0-9]*\) bytes.* high water \([0-9]*\) bytes, \([0-9]*\) table pages asked after prepare.*/\1 \2 \3/p' "$B/out.txt")
set -- $sizing
if [ $# -ne 3 ] || [ "$2" -gt "$1" ] || [ "$3" -ne 0 ]; then
	echo "run.sh: sizing line missing, or table pool high water above the calculator's figure, or tables asked after prepare: '${sizing}'"
	pass=0
else
	echo "run.sh: table pool high water $2 <= calculator's figure $1 bytes, nothing asked after prepare"
fi
if [ $mode = normal ]; then
	[ $pass = 1 ] && { echo "x86-npt-qemu: PASS"; exit 0; }
	echo "x86-npt-qemu: FAIL"; exit 1
fi
# --break-flush: the run must fail on the zap checks (and what follows from
# the range staying unmapped), on nothing else.
zap_fails='guest test zap |zapped range faulted again|kicked out|hpa the tables give'
if [ $pass = 0 ] && grep -q '^  \[FAIL\] zapped range faulted again' "$B/out.txt" &&
	! grep '^  \[FAIL\]' "$B/out.txt" | grep -qvE "$zap_fails"; then
	echo "x86-npt-qemu --break-flush: without the flush the zap check fails, as it must: PASS"
	exit 0
fi
echo "x86-npt-qemu --break-flush: expected a failure of the zap checks only: FAIL"
exit 1
