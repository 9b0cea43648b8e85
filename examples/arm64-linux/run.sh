#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Boot Debian's arm64 kernel under the arm64-linux example hypervisor in
# qemu-system-aarch64 (virt, virtualization=on, gic-version=3, 2 CPUs) and
# check what it reports. Exit 0 only if every boot did what it must.
#
#   run.sh                 make conformance's short form: one boot of the
#                          matrix (max 4K/48, rings, DBM), then the two
#                          sabotaged images, which must fail (they boot
#                          cortex-a57 4K/40 and write protection)
#   run.sh --long          the whole matrix below (make conformance-long):
#                          every boot moves guest RAM through the notifier
#                          and live-migrates it through the dirty log while
#                          the guest checksums its memory; then the two
#                          sabotaged images and --diag-test
#   run.sh --break-flush   only the image without the format's TLBI: must FAIL
#                          (checksums, panic or the watchdog; not a timeout)
#   run.sh --drop-dirty    only the image that skips one dirty page: the
#                          migration's comparison must FAIL (exit code 6)
#   run.sh --one NAME      one boot of the matrix (names below)
#   run.sh --interactive   boot to a shell on the console (no checks)
#   run.sh --diag-test     max-4k-48 with a guest that poisons a word of its
#                          own file: the checksum failure's report (init.sh
#                          diag, hyp.c memcheck_diag) must name the page,
#                          the poison and where the good word is
# LX_ARM64_MOVES (default 24) and LX_ARM64_MOVE_MS (ms between two moves,
# default hyp.c's MOVE_EVERY_MS, 20) change every boot's moves (flake-loop.sh
# uses them to make a rare failure likely).
# The kernel and busybox are fetched on first use (scripts/fetch-guest-arm64.sh,
# cached in build/lx-arm64-guest); builds go to $EXAMPLE_O (default
# build/lx-arm64). QEMU exit status = the hypervisor's verdict (hyp.c).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${EXAMPLE_O:-$top/build/lx-arm64}
cache=${LX_ARM64_CACHE:-$top/build/lx-arm64-guest}
# A boot that cannot report is ended after this much of QEMU's CPU time
# (a boot uses 10-30 s) or wall time (../common/cpu-limit.sh).
cpu_s=${LX_ARM64_CPU_LIMIT:-200} wall_s=${LX_ARM64_WALL_LIMIT:-1200}
# shellcheck source=examples/common/cpu-limit.sh
. "$here/../common/cpu-limit.sh"
# A failed boot keeps its tables: $out/NAME/tables.img, the hypervisor's
# table pool saved with pmemsave, and NAME/tables.txt, the s2mmu dump
# command for it (../common/keep-tables.sh, docs/examples.md).
# shellcheck source=examples/common/keep-tables.sh
. "$here/../common/keep-tables.sh"
cpu_limit_each=kt_poll

for t in qemu-system-aarch64 aarch64-linux-gnu-gcc make apt-get dpkg-deb; do
	command -v "$t" >/dev/null || {
		echo "arm64-linux: $t is missing: run scripts/install-deps.sh" >&2
		exit 1
	}
done
LX_ARM64_CACHE=$cache "$top/scripts/fetch-guest-arm64.sh" || exit 1
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$here" O="$out" GUEST_CACHE="$cache" \
	all sabotaged || exit 1

# Run flags (layout.h RUNF_*).
MIGRATE=1 RING=2 MANUAL=4 WRPROTECT=8 INTERACTIVE=16 NO_S2_HAFDBS=32 DIAG_TEST=64
MOVES=${LX_ARM64_MOVES:-24}
MOVE_MS=${LX_ARM64_MOVE_MS:-0}

# boot NAME IMAGE CPU GRANULE IPA FLAGS MOVES: sets rc, log
boot() {
	local name=$1 img=$2 cpu=$3 gran=$4 ipa=$5 flags=$6 moves=$7 start ms quit
	local sz
	sz=$(stat -c %s "$out/initramfs.cpio")
	log=$out/run-$name.log
	start=$(date +%s%N)
	local q=(qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -cpu "$cpu" -smp 2 -m 1G
		-nographic -semihosting -kernel "$img"
		-device loader,file="$cache/Image",addr=0x44200000,force-raw=on
		-device loader,file="$out/initramfs.cpio",addr=0x4a000000,force-raw=on
		-device loader,addr=0x43000000,data="$sz",data-len=8
		-device loader,addr=0x43000008,data="$flags",data-len=8
		-device loader,addr=0x43000010,data="$gran",data-len=8
		-device loader,addr=0x43000018,data="$ipa",data-len=8
		-device loader,addr=0x43000020,data="$moves",data-len=8
		-device loader,addr=0x43000028,data="$MOVE_MS",data-len=8)
	if [ $((flags & INTERACTIVE)) -ne 0 ]; then
		"${q[@]}"
		rc=$?
		return
	fi
	if ! mkdir -p "$out/$name" || ! kt_open "$out/$name" "$log"; then
		rc=1
		return
	fi
	cpu_limit "$cpu_s" "$wall_s" "${q[@]}" -monitor pipe:"$out/$name/mon" </dev/null >"$log" 2>&1
	rc=$?
	kt_close
	# QEMU quit on kt_poll's command, after the hypervisor's verdict and
	# tables lines: its status is then 0, the verdict the hypervisor's line.
	kt_status "$log"
	ms=$((($(date +%s%N) - start) / 1000000))
	echo "==== $name: -cpu $cpu, granule $gran, IPA $ipa bits, flags $flags, $moves moves"
	grep -v '^\[' "$log" | grep -v '^hyp: check .* ok$'
	kt_report "arm64-linux $name:"
	echo "arm64-linux $name: qemu exit status $rc after $ms ms$quit"
}

# name cpu granule ipa flags: every granule and IPA width QEMU 7.2 walks,
# bitmap / ring / manual-protect rounds and write protection / DBM in turn
# (cortex-a57 has no DBM and a 44-bit PARange; max has DBM and 52 bits).
matrix="
a57-4k-40 cortex-a57 4096 40 $((MIGRATE))
a57-64k-40 cortex-a57 65536 40 $((MIGRATE | MANUAL))
max-4k-48 max,pauth-impdef=on 4096 48 $((MIGRATE | RING))
max-16k-40 max,pauth-impdef=on 16384 40 $((MIGRATE | RING))
max-16k-48 max,pauth-impdef=on 16384 48 $((MIGRATE | MANUAL))
max-64k-48 max,pauth-impdef=on 65536 48 $((MIGRATE | WRPROTECT))
max-4k-52 max,pauth-impdef=on 4096 52 $((MIGRATE | MANUAL))
max-64k-52 max,pauth-impdef=on 65536 52 $((MIGRATE))
max-64k-48-ring max,pauth-impdef=on 65536 48 $((MIGRATE | RING | WRPROTECT))
"
# Not in the matrix: 16K with a 52-bit IPA (4 levels from level 0, LPA2).
# QEMU 7.2 refuses a stage-2 walk that starts at level 0 with the 16K
# granule even with VTCR_EL2.DS = 1 (the architecture allows it; later QEMU
# fixed its start-level check), so every access is a level-0 translation
# fault and the kernel never runs its first instruction. With 48 bits (2
# concatenated level-1 tables) and 40 bits (16 concatenated level-2 tables)
# 16K works; cortex-a57 has no 16K granule at all (exit 8).
matrix_todo="
max-16k-52 max,pauth-impdef=on 16384 52 $((MIGRATE))
"
# Only by name (--one, flake-loop.sh): max-4k-48 with stage 2's hardware AF
# and dirty state off (VTCR_EL2.HA = HD = 0; the guest's stage 1 keeps
# them), so its dirty log is write protection.
matrix_extra="
max-4k-48-nohw max,pauth-impdef=on 4096 48 $((MIGRATE | RING | NO_S2_HAFDBS))
"

# make conformance's boot (the sabotaged ones add a57, 4K/40, bitmap, WP).
short=max-4k-48

fail=0 passed=0 skipped=""
run_matrix() {
	local want=${1:-}
	while read -r name cpu gran ipa flags; do
		[ -n "$name" ] || continue
		[ -z "$want" ] || [ "$want" = "$name" ] || continue
		boot "$name" "$out/hyp.elf" "$cpu" "$gran" "$ipa" "$flags" "$MOVES"
		if [ "$rc" -eq 8 ]; then
			skipped="$skipped $name"
		elif [ "$rc" -eq 0 ] && grep -q '^MEMCHECK-OK' "$log" && grep -q '^hyp: PASS' "$log"; then
			passed=$((passed + 1))
		else
			echo "arm64-linux $name: FAILED" >&2
			fail=1
		fi
	done <<<"$matrix${want:+$matrix_todo$matrix_extra}"
}

# verdict: the exit code of the hypervisor's own "hyp: FAIL (exit code N)"
# line in $log, if QEMU's status is that N (QEMU that cannot start, or a
# timeout, exits 1 or 124 with no such line).
verdict() {
	local code
	code=$(sed -n 's/^hyp: FAIL (exit code \([0-9]*\))$/\1/p' "$log" | tail -1)
	[ -n "$code" ] && [ "$code" = "$rc" ] && echo "$code"
}

# The moves must fail without the format's TLBI: the guest keeps using the
# old blocks through stale translations. The hypervisor must say so itself:
# checksums (1), the watchdog (2), a check (3), an exit it cannot handle (4)
# or a guest panic (7); a timeout, or QEMU failing to start, does not count.
break_flush() {
	boot break-flush "$out/hyp-breakflush.elf" cortex-a57 4096 40 0 64
	case "$(verdict)" in
	1 | 2 | 3 | 4 | 7) echo "arm64-linux: without TLBI the moves failed (exit code $rc), as they must" ;;
	*)
		echo "arm64-linux: the break-flush image did not fail its moves (exit $rc)" >&2
		fail=1
		;;
	esac
}

# One dirty page not copied: the comparison at the switch must see it.
drop_dirty() {
	boot drop-dirty "$out/hyp-dropdirty.elf" cortex-a57 4096 40 $((MIGRATE)) 0
	if [ "$(verdict)" = 6 ] && grep -q '^hyp: DROP_DIRTY build' "$log" &&
		grep -q '^hyp: FAIL: migration: the copy differs' "$log"; then
		echo "arm64-linux: the dropped dirty page failed the migration check, as it must"
	else
		echo "arm64-linux: the drop-dirty image did not fail the migration check (exit $rc)" >&2
		fail=1
	fi
}

# The failure report itself: the guest poisons word 5 of page 3 of one
# file (file offset 0x3028) after its md5; the report must say so and the
# hypervisor must find the good word in host RAM (the copy's page).
diag_test() {
	boot diag-test "$out/hyp.elf" max,pauth-impdef=on 4096 48 $((MIGRATE | RING | DIAG_TEST)) "$MOVES"
	if [ "$(verdict)" = 1 ] && grep -q '^MEMCHECK-DIAG: first differing word at file offset 12328 ' "$log" &&
		grep -q '^hyp: MEMCHECK-DIAG .*(POISON)' "$log" && grep -q '^hyp:   good word at hpa' "$log"; then
		echo "arm64-linux: the poisoned word was reported, as it must"
	else
		echo "arm64-linux: the diag-test boot did not report its poisoned word (exit $rc)" >&2
		fail=1
	fi
}

case "${1:-}" in
"")
	run_matrix "$short"
	break_flush
	drop_dirty
	;;
--long)
	run_matrix
	break_flush
	drop_dirty
	diag_test
	;;
--one) run_matrix "${2:?--one NAME}" ;;
--break-flush) break_flush ;;
--diag-test) diag_test ;;
--drop-dirty) drop_dirty ;;
--interactive)
	boot interactive "$out/hyp.elf" cortex-a57 4096 40 $((INTERACTIVE)) 0
	exit "$rc"
	;;
*)
	echo "usage: $0 [--long | --break-flush | --drop-dirty | --diag-test | --one NAME | --interactive]" >&2
	exit 2
	;;
esac
[ -z "$skipped" ] || echo "arm64-linux: not offered by this QEMU's CPU models (skipped):$skipped"
[ "$fail" -ne 0 ] || [ "$passed" -eq 0 ] || echo "arm64-linux: all $passed boots of the matrix passed"
exit "$fail"
