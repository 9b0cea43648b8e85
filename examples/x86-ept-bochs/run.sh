#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Build the x86 EPT example (Intel VMX + EPT on s2mmu) and boot it under
# bochs. Prints the guest's and the hypervisor's output; exits 0 only when
# the hypervisor printed "RESULT: PASS" (bochs has no exit-code channel).
#
#   run.sh                 the normal run
#   run.sh --break-flush   build with BREAK_FLUSH=1: the library's flush no
#                          longer reaches the running vcpu (no kick IPI, no
#                          INVEPT on KVM_REQ_TLB_FLUSH). The zap's flush then
#                          waits for a vcpu that nothing makes exit; the run
#                          ends when the guest gives up its loop or the boot
#                          CPU has spun 1M times in that flush, and must fail
#                          on the zap checks and on nothing else (exit 0 then).
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

command -v bochs-bin >/dev/null 2>&1 || command -v bochs >/dev/null 2>&1 || {
	echo "run.sh: bochs not installed (scripts/install-deps.sh emu)" >&2; exit 1; }
bochs=$(command -v bochs-bin || command -v bochs)

O=${EXAMPLE_O:-$here/build}
if [ $mode = break ]; then
	make -s -C "$here" O="$O" ${LIBSRC:+LIBSRC="$LIBSRC"} BREAK_FLUSH=1 || exit 1
	B=$O/break-flush
else
	make -s -C "$here" O="$O" ${LIBSRC:+LIBSRC="$LIBSRC"} || exit 1
	B=$O
fi

sed -e "s|@IMG@|$B/ept.img|" -e "s|@LOG@|$B/bochs.log|" "$here/bochsrc.in" > "$B/bochsrc"
# --break-flush runs until the boot CPU gives up on the zap's flush: longer.
deftimeout=30; [ $mode = break ] && deftimeout=60
# bochs reads debugger commands from $B/cmds: "c", then at the magic
# breakpoint writemem of a failed run's table pool (its place and size are
# the words hv_tables_range[] of vmx.c, read with the debugger's @addr; a
# pass leaves the size 0, which writes nothing) and "quit". Its own chatter
# goes to the log, the guest's port 0xe9 to stdout. The hypervisor
# identity-maps the pool: its linear addresses (what writemem reads) are the
# physical ones.
range=$(nm "$B/hv.elf" | awk '$3 == "hv_tables_range" { print "0x" $1 }')
[ -n "$range" ] || { echo "run.sh: no hv_tables_range in $B/hv.elf" >&2; exit 1; }
rm -f "$B/tables.img" "$B/tables.txt"
printf 'c\nwritemem "%s" @0x%x @0x%x\nquit\n' "$B/tables.img" $((range)) $((range + 4)) >"$B/cmds"
start=$(date +%s.%N)
timeout "${TIMEOUT:-$deftimeout}" "$bochs" -q -f "$B/bochsrc" -rc "$B/cmds" </dev/null >"$B/out.txt" 2>"$B/err.txt"
rc=$?
end=$(date +%s.%N)
# port 0xe9 output is everything that is not bochs's own "(0) ..." / "Next at"
# debugger lines or log lines.
grep -v -e '^[0-9]\{11\}[a-z]\[' -e '^([0-9])' -e '^Next at' -e '^<bochs' -e '^\s*$' \
	-e '^=*$' -e '^ *Bochs x86 Emulator' -e '^ *Built from' -e '^ *Timestamp:' "$B/out.txt"
awk -v rc="$rc" -v s="$start" -v e="$end" 'BEGIN { printf "bochs: exit %s after %.1f s\n", rc, e - s }'
if [ $rc -eq 124 ]; then
	echo "run.sh: bochs timed out; last log lines:"; tail -n 5 "$B/bochs.log"
fi
# A failed run's tables: the "hv: tables:" line and the writemem image
# (../common/keep-tables.sh's kt_parse, kt_check, kt_report).
. "$here/../common/keep-tables.sh"
kt_dir=$B kt_log=$B/out.txt kt_line="" kt_saved=0
kt_parse && kt_check
kt_report "run.sh:"

pass=0; grep -q '^RESULT: PASS' "$B/out.txt" && pass=1
# The table pool sized with the calculator (docs/static.md): its high water
# within the calculator's figure (demand faults).
sizing=$(sed -n 's/^sizing: calculator figure \([0-9]*\) bytes.* high water \([0-9]*\) bytes.*/\1 \2/p' "$B/out.txt")
# shellcheck disable=SC2086
set -- $sizing
if [ $# -ne 2 ] || [ "$2" -gt "$1" ]; then
	echo "run.sh: sizing line missing or table pool high water above the calculator's figure: '${sizing}'"
	pass=0
else
	echo "run.sh: table pool high water $2 <= calculator's figure $1 bytes"
fi
if [ $mode = normal ]; then
	[ $pass = 1 ] && { echo "x86-ept-bochs: PASS"; exit 0; }
	echo "x86-ept-bochs: FAIL"; exit 1
fi
# --break-flush: the run must fail on the zap checks (and what follows from
# the range staying unmapped), on nothing else.
zap_fails='guest test zap |zapped range faulted again|kicked out|hpa the tables give'
if [ $pass = 0 ] && grep -q '^  \[FAIL\] zapped range faulted again' "$B/out.txt" &&
	! grep '^  \[FAIL\]' "$B/out.txt" | grep -qvE "$zap_fails"; then
	echo "x86-ept-bochs --break-flush: without the flush the zap check fails, as it must: PASS"
	exit 0
fi
echo "x86-ept-bochs --break-flush: expected a failure of the zap checks only: FAIL"
exit 1
