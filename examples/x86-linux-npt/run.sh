#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Boot Debian's unmodified amd64 kernel as a partition under the x86 Linux
# NPT example (AMD SVM + nested paging on s2mmu) in qemu-system-x86_64 TCG,
# two CPUs: the guest's /init probes the partition (SVM MSRs, APIC_BASE,
# resets), checksums its memory while the host moves its RAM through the MMU
# notifier, then while the host live-migrates its RAM (write-protection dirty
# log). Exits 0 only on "RESULT: PASS" and QEMU status 33.
#
#   run.sh                 the normal run
#   run.sh --break-flush   BREAK_FLUSH=1 build (no kick, flush requests
#                          ignored): a move's flush waits for a vcpu nothing
#                          makes exit, and the run must end on that check
#   run.sh --interactive   the normal run, then a shell on the guest's
#                          console (make run GUEST=linux); no timeout
#   run.sh --drop-dirty    DROP_DIRTY=1 build (the migration does not copy one
#                          page dirtied before the stop): the run must end on
#                          the byte comparison
# Both sabotaged modes exit 0 when the run failed on exactly that check.
#
# The kernel and busybox come from Debian's archive on first use
# (scripts/fetch-guest-amd64.sh, into $LX_GUEST, default build/lx-x86-guest
# of the tree), offline afterwards. EXAMPLE_O=dir: build directory (default
# build/ here). TIMEOUT: seconds (default 600: a run took 245 s under load).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
mode=normal
case "${1:-}" in
--break-flush) mode=break ;;
--drop-dirty) mode=drop ;;
--interactive) mode=interactive ;;
"") ;;
*) echo "usage: $0 [--break-flush|--drop-dirty|--interactive]" >&2; exit 2 ;;
esac
command -v qemu-system-x86_64 >/dev/null 2>&1 || {
	echo "run.sh: qemu-system-x86_64 not installed (scripts/install-deps.sh emu)" >&2; exit 1; }

G=${LX_GUEST:-$top/build/lx-x86-guest}
"$top/scripts/fetch-guest-amd64.sh" "$G" || { echo "x86-linux-npt: no guest kernel" >&2; exit 1; }
O=${EXAMPLE_O:-$here/build}
case $mode in
normal | interactive) flags= B=$O ;;
break) flags=BREAK_FLUSH=1 B=$O/break-flush ;;
drop) flags=DROP_DIRTY=1 B=$O/drop-dirty ;;
esac
# shellcheck disable=SC2086
make -s -C "$here" O="$O" ${LIBSRC:+LIBSRC="$LIBSRC"} $flags || exit 1

cmdline="hv console=ttyS0 rdinit=/init acpi=off nokaslr nmi_watchdog=0 quiet"
if [ $mode = interactive ]; then
	exec qemu-system-x86_64 -accel tcg -M pc -cpu qemu64,+svm,+npt -smp 2 -m 1G \
		-display none -serial mon:stdio -no-reboot -nodefaults \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$B/hv.bin" \
		-initrd "$G/vmlinuz,$G/initramfs.cpio.gz" -append "$cmdline lx.shell"
fi
# The first word of the multiboot command line is the image's name (QEMU
# passes it on); the rest is Linux's. The monitor on FIFOs: a failed run
# prints "lx: tables: ..." and waits; the page pool (16 MiB, where every
# table page is) is then saved with pmemsave into $B/tables.img and QEMU is
# told to quit (../common/keep-tables.sh, docs/examples.md).
. "$here/../common/keep-tables.sh"
kt_open "$B" "$B/out.txt" || exit 1
start=$(date +%s.%N)
timeout "${TIMEOUT:-600}" qemu-system-x86_64 -accel tcg -M pc -cpu qemu64,+svm,+npt -smp 2 -m 1G \
	-display none -serial stdio -monitor pipe:"$B/mon" -no-reboot -nodefaults \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$B/hv.bin" \
	-initrd "$G/vmlinuz,$G/initramfs.cpio.gz" \
	-append "$cmdline" \
	</dev/null >"$B/out.txt" 2>"$B/err.txt" &
qemu=$!
kt_watch $qemu 0.5 >/dev/null 2>&1 &
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
# QEMU quit on the script's command after the hypervisor's FAIL verdict and
# its tables line: its status is then 0, and the verdict's status (35) is
# taken from the hypervisor's RESULT line.
if [ "$kt_quit" = 1 ] && [ $rc -eq 0 ] && grep -q '^RESULT: FAIL' "$B/out.txt"; then
	echo "run.sh: QEMU quit after the save: status 35 from the hypervisor's RESULT: FAIL"
	rc=35
fi

pass=0
[ $rc -eq 33 ] && grep -q '^RESULT: PASS' "$B/out.txt" && pass=1
# The report up to its verdict (QEMU may repeat the UART's last bytes at exit).
tr -d '\r' <"$B/out.txt" | awk '{ print } /^RESULT:/ { exit }' >"$B/report.txt"
fails=$(grep -c '^  \[FAIL\]' "$B/report.txt")
case $mode in
normal)
	[ $pass = 1 ] && { echo "x86-linux-npt: PASS"; exit 0; }
	echo "x86-linux-npt: FAIL"; exit 1 ;;
# Without the kick a flush waits until relax() gives up, or until the guest
# exits on its own (then no kick exit is seen during the moves, and each move
# waits for such an exit, so the moves can also fall short of their count:
# that check may fail beside it, no other).
break)
	want='(a move.s flush still waits for the vcpu|the moves. flushes kicked the running vcpu out)'
	also='[0-9]+ moves through the notifier while the guest checksummed' ;;
drop) want='destination differs from the stopped guest.s RAM' also='$^' ;;
esac
other=$(grep '^  \[FAIL\] ' "$B/report.txt" | grep -Ev "^  \[FAIL\] ($want|$also)" | wc -l)
# A sabotaged build must fail (QEMU status 35, not a timeout) on its one check.
if [ $rc -eq 35 ] && [ "$fails" -ge 1 ] && [ "$other" = 0 ] &&
	grep -Eq "^  \[FAIL\] $want" "$B/report.txt"; then
	echo "x86-linux-npt $1: the sabotaged build failed on its check, as it must: PASS"
	exit 0
fi
echo "x86-linux-npt $1: expected a failure of that check only: FAIL"
exit 1
