#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The call trace's round trip from the arm64 example under QEMU (make
# conformance): hyp-trace.elf (make trace: the library with CONFIG_S2_TRACE,
# hyp.c with TRACE_ROUNDTRIP) boots on -cpu cortex-a57 (no hardware Access
# flag: every table bit is the library's), and examples/common/
# trace-roundtrip.sh saves its table pool with pmemsave, replays the
# console's trace with s2mmu and compares the replay's tables with the
# saved ones. The build goes to $EXAMPLE_O (default: build/ beside this
# script); the host tool is $S2MMU when set, else built in $EXAMPLE_O/host
# (arm64_defconfig).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
srctree=$(cd "$here/../.." && pwd)
out=${EXAMPLE_O:-$here/build}
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make "$@"; }

for t in qemu-system-aarch64 aarch64-linux-gnu-gcc make mkfifo; do
	command -v "$t" >/dev/null || {
		echo "$t is missing: run scripts/install-deps.sh emu" >&2
		exit 1
	}
done
mk -s -C "$here" O="$out" trace || exit 1
tool=${S2MMU:-}
if [ -z "$tool" ]; then
	[ -f "$out/host/.config" ] || mk -s -C "$srctree" O="$out/host" arm64_defconfig >/dev/null
	mk -s -C "$srctree" O="$out/host" -j2 tools || exit 1
	tool=$out/host/tools/s2mmu/s2mmu
fi
exec bash "$srctree/examples/common/trace-roundtrip.sh" arm64-qemu "$out/trace" \
	"$out/hyp-trace.elf" "$tool" qemu-system-aarch64 -M virt,virtualization=on \
	-cpu cortex-a57 -smp 1 -m 2G -semihosting
