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

exec bash "$srctree/examples/common/trace-roundtrip.sh" riscv64-qemu "$out/trace" \
	"$out/hyp-trace.elf" "$tool" qemu-system-riscv64 -M virt -cpu rv64,h=true -smp 2 -m 2G \
	-bios default
