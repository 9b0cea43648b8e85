#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The call trace's round trip from a real run (issue 17, part of make
# conformance): boot the riscv64 example built with the library's call trace
# (hyp-trace.elf: CONFIG_S2_TRACE, every call printed as an "s2mmu[4]: "
# console line; hyp.c with TRACE_ROUNDTRIP keeps the tables after the
# checks), save the table pool with QEMU's pmemsave, then on the host:
#   - s2mmu replay of the console's trace meets every result the library
#     printed (except the aging calls', which read A bits QEMU sets in the
#     G-stage itself) and its reference-walker check passes;
#   - s2mmu dump of the saved pool shows the same mappings, MMIO entries
#     and per-level counts as the replay's final tables (A/D left out:
#     QEMU sets them, the replay does not).
# Exit 0 only when both hold. The build goes to $EXAMPLE_O (default: build/
# beside this script); the host tool is $S2MMU when set, else built in
# $EXAMPLE_O/host (riscv64_defconfig).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
srctree=$(cd "$here/../.." && pwd)
out=${EXAMPLE_O:-$here/build}
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make "$@"; }

for t in qemu-system-riscv64 riscv64-linux-gnu-gcc make mkfifo; do
	command -v "$t" >/dev/null || {
		echo "$t is missing: run scripts/install-deps.sh emu" >&2
		exit 1
	}
done
mk -s -C "$here" O="$out" trace || exit 1
tool=${S2MMU:-}
if [ -z "$tool" ]; then
	[ -f "$out/host/.config" ] || mk -s -C "$srctree" O="$out/host" riscv64_defconfig >/dev/null
	mk -s -C "$srctree" O="$out/host" -j2 tools || exit 1
	tool=$out/host/tools/s2mmu/s2mmu
fi

d=$out/trace
rm -rf "$d"
mkdir -p "$d"
mkfifo "$d/mon.in" "$d/mon.out"
log=$d/console.log
start=$(date +%s%N)
timeout 60 qemu-system-riscv64 -M virt -cpu rv64,h=true -smp 2 -m 2G -display none \
	-serial stdio -monitor pipe:"$d/mon" -bios default -kernel "$out/hyp-trace.elf" \
	</dev/null >"$log" 2>&1 &
qemu=$!
cat "$d/mon.out" >"$d/monitor.log" &
reader=$!
# QEMU opens the pipes read-write: this open does not wait for it.
exec 3<>"$d/mon.in"
end=""
for _ in $(seq 300); do
	end=$(grep -a -m1 '^hyp: trace end' "$log" | tr -d '\r')
	[ -n "$end" ] && break
	kill -0 $qemu 2>/dev/null || break
	sleep 0.1
done
saved=0
if [ -n "$end" ]; then
	read -r pool size root < <(echo "$end" | sed 's/.*pool \(0x[0-9a-f]*\) size \(0x[0-9a-f]*\), root \(0x[0-9a-f]*\).*/\1 \2 \3/')
	# Quoted: HMP would read "SIZE /path" as a division.
	echo "pmemsave $pool $size \"$d/tables.img\"" >&3
	for _ in $(seq 100); do
		[ -f "$d/tables.img" ] && [ "$(stat -c %s "$d/tables.img")" -eq $((size)) ] && {
			saved=1
			break
		}
		sleep 0.1
	done
fi
echo quit >&3
exec 3>&-
wait $qemu 2>/dev/null
kill $reader 2>/dev/null
wait $reader 2>/dev/null
ms=$((($(date +%s%N) - start) / 1000000))
if [ -z "$end" ] || [ $saved -ne 1 ]; then
	sed -n '/^hyp:/,$p' "$log" | grep -av '^s2mmu\[4\]' | tail -n 30
	echo "riscv64-qemu trace: no end marker or no pmemsave image after $ms ms" >&2
	exit 1
fi
echo "riscv64-qemu trace: $end"

# The trace: the library's lines, as the simulated host of replay answers
# like env_gfn_to_pfn (pfn = hva >> 12, writable, 1 GiB). QEMU sets A/D in
# the G-stage itself, so what aging calls return is not replayed.
{
	echo "# s2mmu trace 1: examples/riscv64-qemu under QEMU (trace.sh)"
	echo "host level=3"
	tr -d '\r' <"$log" | sed -n 's/^s2mmu\[4\]: //p' |
		sed -E 's/^((clear_flush_young|clear_young|test_young) .*) => [-0-9A-Z]+$/\1/'
} >"$d/run.trace"
lines=$(grep -vc '^#' "$d/run.trace")
"$tool" replay --dump --ignore-ad "$d/run.trace" >"$d/replay.out" 2>"$d/replay.err"
rrc=$?
"$tool" dump --fmt riscv-g --gpa-bits 41 --flags ad --root "$root" --image "$d/tables.img" \
	--image-base "$pool" --ignore-ad >"$d/dump.out" 2>"$d/dump.err"
drc=$?
keep() { grep -E '^(gpa |\* |level |  *[0-9]+  |[0-9]+ runs)' "$1"; }
rc=0
if [ $rrc -ne 0 ]; then
	echo "riscv64-qemu trace: s2mmu replay of $lines lines exited $rrc" >&2
	head -n 20 "$d/replay.err" >&2
	rc=1
fi
if [ $drc -ne 0 ]; then
	echo "riscv64-qemu trace: s2mmu dump of the pmemsave image exited $drc" >&2
	head -n 20 "$d/dump.out" "$d/dump.err" >&2
	rc=1
fi
if ! diff <(keep "$d/dump.out") <(keep "$d/replay.out") >"$d/diff"; then
	echo "riscv64-qemu trace: the replay's tables differ from the run's (pmemsave):" >&2
	head -n 20 "$d/diff" >&2
	rc=1
fi
runs=$(keep "$d/dump.out" | grep -c '^gpa ')
[ "$runs" -gt 0 ] || {
	echo "riscv64-qemu trace: nothing mapped" >&2
	rc=1
}
grep -E '^(replayed|check:)' "$d/replay.out"
echo "riscv64-qemu trace: kept in $d: console.log, run.trace, tables.img (the pool at $pool);"
echo "    s2mmu dump --fmt riscv-g --gpa-bits 41 --flags ad --root $root --image-base $pool --image $d/tables.img"
echo "riscv64-qemu trace: $lines trace lines replayed, $runs mapping runs equal to the" \
	"pmemsave image's ($ms ms under QEMU): $([ $rc -eq 0 ] && echo PASS || echo FAIL)"
exit $rc
