#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Boot Debian's riscv64 Linux under the riscv64-linux example hypervisor
# (QEMU virt, H extension, OpenSBI, 2 harts), with memory moves and a live
# migration while the test init checksums what it writes.
#
#   run.sh              make conformance's short form: 1 boot that passes
#                       (Sv48x4, hardware dirty bits + manual protect) and
#                       2 sabotaged ones that must fail their check
#                       (break-flush, Sv39x4: the moves; drop-dirty,
#                       Sv57x4, write protection: the migration's
#                       comparison), so each G-stage mode boots once
#   run.sh --long       every G-stage mode with every dirty-logging mode
#                       (12 boots), the moves-only control, then the 2
#                       sabotaged ones (make conformance-long)
#   run.sh --one ARGS   one boot with hypervisor options ARGS (hyp.c's
#                       header: gpa_bits= mig= manual= moves= rounds= smp=)
#   run.sh --shell      an interactive busybox shell (also --interactive:
#                       make run GUEST=linux)
# The first run fetches the guest (scripts/fetch-guest-riscv64.sh, cached
# under build/lx-rv-guest; offline after that). Builds go to $EXAMPLE_O
# (default build/lx-rv).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${EXAMPLE_O:-$top/build/lx-rv}
guest=${LX_RV_CACHE:-$top/build/lx-rv-guest}
# A boot that cannot report is ended after this much of QEMU's CPU time
# (a boot uses 25-40 s) or wall time (../common/cpu-limit.sh).
cpu_s=${LX_RV_CPU_LIMIT:-300} wall_s=${LX_RV_WALL_LIMIT:-1800}
# shellcheck source=examples/common/cpu-limit.sh
. "$here/../common/cpu-limit.sh"
# A failed boot keeps its tables: $out/NAME/tables.img, the hypervisor's
# table pool saved with pmemsave, and NAME/tables.txt, the s2mmu dump
# command for it (../common/keep-tables.sh, docs/examples.md).
# shellcheck source=examples/common/keep-tables.sh
. "$here/../common/keep-tables.sh"
cpu_limit_each=kt_poll

for t in qemu-system-riscv64 riscv64-linux-gnu-gcc make gzip; do
	command -v "$t" >/dev/null || {
		echo "riscv64-linux: $t is missing: run scripts/install-deps.sh" >&2
		exit 1
	}
done
LX_RV_CACHE=$guest "$top/scripts/fetch-guest-riscv64.sh" || exit 1
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$here" O="$out" GUEST_CACHE="$guest" \
	all break drop initramfs || exit 1
initrd=$out/initramfs.cpio.gz
isz=$(stat -c %s "$initrd")

# boot NAME IMAGE OPTIONS...: one boot; prints the hypervisor's lines (and
# the guest's init lines), returns QEMU's exit status.
boot() {
	local name=$1 img=$2 rc start ms log quit
	shift 2
	log=$out/run-$name.log
	if ! mkdir -p "$out/$name" || ! kt_open "$out/$name" "$log"; then
		return 1
	fi
	start=$(date +%s%N)
	cpu_limit "$cpu_s" "$wall_s" qemu-system-riscv64 -M virt -cpu rv64,h=true -smp 2 -m 512M \
		-nographic -monitor pipe:"$out/$name/mon" -bios default -kernel "$img" \
		-append "initrd=$isz $*" \
		-device loader,file="$guest/Image",addr=0x84200000,force-raw=on \
		-device loader,file="$initrd",addr=0x88000000,force-raw=on \
		</dev/null >"$log" 2>&1
	rc=$?
	kt_close
	# QEMU quit on kt_poll's command, after the hypervisor's verdict and
	# tables lines: its status is then 0, the verdict the hypervisor's line.
	kt_status "$log"
	ms=$((($(date +%s%N) - start) / 1000000))
	if grep -q '^hyp:' "$log"; then
		sed -n '/^hyp:/,$p' "$log" | grep -v '^guest| \['
	else
		cat "$log"
	fi
	kt_report "riscv64-linux $name:"
	echo "riscv64-linux $name ($*): qemu exit status $rc after $ms ms$quit"
	return $rc
}

fails=0
pass() { # pass NAME OPTIONS...: must exit 0
	local name=$1
	shift
	echo "== riscv64-linux $name: must pass"
	if boot "$name" "$out/hyp.elf" "$@"; then
		echo "riscv64-linux $name: PASS"
	else
		echo "riscv64-linux $name: FAILED"
		fails=$((fails + 1))
	fi
}
# must_fail NAME IMAGE 'CODES' 'PATTERN' OPTIONS...: the hypervisor itself
# must have ended the run with one of CODES (its "hyp: FAIL (exit code N)"
# line, and QEMU's status N), and the log must match PATTERN (what failed).
# An exit status alone proves nothing: QEMU that cannot start exits 1 too.
must_fail() {
	local name=$1 img=$2 codes=$3 pat=$4 rc code
	shift 4
	echo "== riscv64-linux $name: must fail its check (exit $codes)"
	boot "$name" "$img" "$@"
	rc=$?
	code=$(sed -n 's/^hyp: FAIL (exit code \([0-9]*\))$/\1/p' "$out/run-$name.log" | tail -1)
	case " $codes " in
	*" $rc "*)
		if [ "$code" = "$rc" ] && grep -Eq "$pat" "$out/run-$name.log"; then
			echo "riscv64-linux $name: failed as it must (exit $rc)"
			return
		fi
		;;
	esac
	echo "riscv64-linux $name: FAILED: exit $rc, the hypervisor's verdict ${code:-missing}," \
		"want one of $codes and a line matching '$pat'"
	fails=$((fails + 1))
}

common="rounds=${LX_RV_ROUNDS:-3} moves=${LX_RV_MOVES:-16}"
breakopts="mig=none moves=64 rounds=4 wd=30"
# What the sabotaged images must be seen failing: a guest check (checksums,
# a panic) or the watchdog; the migration's comparison after a page dropped
# on purpose.
bf_why='^hyp: (watchdog: |check .* FAILED$)'
dd_why='^hyp: check migration: .*FAIL'

case "${1:-}" in
"")
	# Each G-stage mode once (Sv39x4 in the break-flush boot, Sv57x4 in the
	# drop-dirty boot, which boots, moves and migrates with write
	# protection up to the comparison that must fail).
	pass sv48-hw-manual "gpa_bits=50 mig=hw manual=1 $common"
	# The break-flush image, moving blocks all through the workload (the
	# same options pass with hyp.elf: --long runs that control): the other
	# hart keeps translations to moved, poisoned blocks; bad checksums, a
	# panic or a hang that the watchdog ends (1 or 6).
	must_fail break-flush "$out/hyp-breakflush.elf" "1 6" "$bf_why" "gpa_bits=41 $breakopts"
	must_fail drop-dirty "$out/hyp-dropdirty.elf" "3" "$dd_why" "gpa_bits=59 mig=wp manual=1 $common"
	;;
--long)
	for g in 41 50 59; do
		for m in "mig=wp" "mig=wp manual=1" "mig=hw" "mig=hw manual=1"; do
			pass "g$g-${m// /-}" "gpa_bits=$g $m $common"
		done
	done
	pass moves-control "gpa_bits=41 $breakopts"
	must_fail break-flush "$out/hyp-breakflush.elf" "1 6" "$bf_why" "gpa_bits=41 $breakopts"
	must_fail drop-dirty "$out/hyp-dropdirty.elf" "3" "$dd_why" "gpa_bits=59 mig=hw $common"
	;;
--one)
	shift
	pass one "$*"
	;;
--shell | --interactive)
	exec qemu-system-riscv64 -M virt -cpu rv64,h=true -smp 2 -m 512M -nographic -bios default \
		-kernel "$out/hyp.elf" -append "initrd=$isz shell=1 mig=none moves=0 rounds=1" \
		-device loader,file="$guest/Image",addr=0x84200000,force-raw=on \
		-device loader,file="$initrd",addr=0x88000000,force-raw=on
	;;
*)
	echo "usage: $0 [--long | --one OPTIONS | --shell | --interactive]" >&2
	exit 2
	;;
esac
echo "riscv64-linux: $fails failed"
[ "$fails" -eq 0 ]
