#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# trace-roundtrip.sh NAME DIR ELF TOOL QEMU [QEMU-ARGS...]: the call trace's
# round trip from a run under QEMU, for an example hypervisor built with the
# library's call trace (CONFIG_S2_TRACE: every call printed on the console
# as an "s2mmu[4]: " line by the example's log hook) and with
# TRACE_ROUNDTRIP (after its checks it prints "hyp: trace end: verdict N"
# and the tables line of ../common/tables.h, and keeps its tables instead of
# destroying the VM). Boots ELF with QEMU QEMU-ARGS (console on stdio,
# monitor on FIFOs in DIR), saves the pool with pmemsave into DIR/tables.img
# (../common/keep-tables.sh), then with the host tool
# TOOL (s2mmu):
#   - replay --dump --ignore-ad of DIR/run.trace (the console's lines) must
#     meet every printed result but the aging calls' (hardware may set A in
#     the tables itself) and pass its reference-walker check;
#   - dump --ignore-ad of the saved pool (format, width and flags from the
#     trace's vm line) must show the same runs, special entries and
#     per-level counts as the replay's final tables.
# Exit 0 when both hold, 1 otherwise. DIR keeps the console, the trace and
# the image (docs/examples.md shows how to dump them).
set -u
[ $# -ge 5 ] || { echo "usage: $0 NAME DIR ELF TOOL QEMU [ARGS...]" >&2; exit 2; }
name=$1 d=$2 elf=$3 tool=$4
shift 4
# shellcheck source=examples/common/keep-tables.sh
. "$(dirname "${BASH_SOURCE[0]}")/keep-tables.sh"
rm -rf "$d"
mkdir -p "$d"
log=$d/console.log
kt_open "$d" "$log" || exit 1
start=$(date +%s%N)
timeout 60 "$@" -display none -serial stdio -monitor pipe:"$d/mon" -kernel "$elf" \
	</dev/null >"$log" 2>&1 &
qemu=$!
# The tables line follows "hyp: trace end": kt_poll saves the pool and
# quits QEMU; without it in 30 s (or once QEMU ended), QEMU is ended.
for _ in $(seq 300); do
	kt_poll && break
	kill -0 $qemu 2>/dev/null || break
	sleep 0.1
done
[ "$kt_quit" = 1 ] || kill $qemu 2>/dev/null
wait $qemu 2>/dev/null
kt_close
end=$(grep -a -m1 '^hyp: trace end' "$log" | tr -d '\r')
pool=$kt_pool root=$kt_root
ms=$((($(date +%s%N) - start) / 1000000))
if [ -z "$end" ] || [ "$kt_saved" -ne 1 ]; then
	grep -av '^s2mmu\[4\]' "$log" | tail -n 30
	echo "$name trace: no end marker or no pmemsave image after $ms ms" >&2
	exit 1
fi
echo "$name trace: $end; $kt_line"

# The trace: the library's lines; the examples' gfn_to_pfn answers as
# replay's simulated host does (pfn = hva >> 12, writable, 1 GiB).
{
	echo "# s2mmu trace 1: $name under QEMU (examples/common/trace-roundtrip.sh)"
	echo "host level=3"
	tr -d '\r' <"$log" | sed -n 's/^s2mmu\[4\]: //p' |
		sed -E 's/^((clear_flush_young|clear_young|test_young) .*) => [-0-9A-Z]+$/\1/'
} >"$d/run.trace"
lines=$(grep -vc '^#' "$d/run.trace")
vm=$(grep -m1 '^vm ' "$d/run.trace")
arg() { echo "$vm" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
fmt=$(arg fmt) bits=$(arg gpa_bits) flags=$(arg flags)
dargs=(--fmt "$fmt" --gpa-bits "$bits" --root "$root" --image-base "$pool")
[ "$flags" != 0 ] && [ -n "$flags" ] && dargs+=(--flags "$flags")
"$tool" replay --dump --ignore-ad "$d/run.trace" >"$d/replay.out" 2>"$d/replay.err"
rrc=$?
"$tool" dump "${dargs[@]}" --image "$d/tables.img" --ignore-ad >"$d/dump.out" 2>"$d/dump.err"
drc=$?
keep() { grep -E '^(gpa |\* |level |  *[0-9]+  |[0-9]+ runs)' "$1"; }
rc=0
if [ $rrc -ne 0 ]; then
	echo "$name trace: s2mmu replay of $lines lines exited $rrc" >&2
	head -n 20 "$d/replay.err" >&2
	rc=1
fi
if [ $drc -ne 0 ]; then
	echo "$name trace: s2mmu dump of the pmemsave image exited $drc" >&2
	head -n 20 "$d/dump.out" "$d/dump.err" >&2
	rc=1
fi
if ! diff <(keep "$d/dump.out") <(keep "$d/replay.out") >"$d/diff"; then
	echo "$name trace: the replay's tables differ from the run's (pmemsave):" >&2
	head -n 20 "$d/diff" >&2
	rc=1
fi
runs=$(keep "$d/dump.out" | grep -c '^gpa ')
if [ "$runs" -eq 0 ]; then
	echo "$name trace: nothing mapped" >&2
	rc=1
fi
grep -E '^(replayed|check:)' "$d/replay.out"
echo "$name trace: kept in $d: console.log, run.trace, tables.img (the pool at $pool);"
echo "    s2mmu dump ${dargs[*]} --image $d/tables.img"
echo "$name trace: $lines trace lines replayed, $runs mapping runs equal to the" \
	"pmemsave image's ($ms ms under QEMU): $([ $rc -eq 0 ] && echo PASS || echo FAIL)"
exit $rc
