#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The long run of the x86 Linux EPT example (make conformance-long, not part
# of make check): Debian's unmodified amd64 kernel as a partition under the
# VMX + EPT twin of examples/x86-linux-npt, in bochs (corei7_skylake_x, two
# CPUs), with the same /init: partition probes, moves, migration. Three
# boots with the migration's dirty log from write protection, from EPT A/D
# bits, from the PML buffer; each must print "RESULT: PASS". Then the three
# sabotaged builds, each of which must end on its one check: the
# hypervisor's report must hold "RESULT: FAIL" with exactly one "[FAIL]"
# line, that one (a boot that did not start or timed out does not count).
#
#   long.sh                          all six boots
#   long.sh wp | ad | pml            one good boot
#   long.sh break-flush | drop-dirty | drop-pml
#                                    one sabotaged boot
#
# Environment: EXAMPLE_O=dir (default build/ here), LX_GUEST (default
# build/lx-x86-guest of the tree), TIMEOUT (seconds per boot, default 3600:
# a boot takes minutes of one CPU, and much longer on a loaded machine).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
bochs=$(command -v bochs-bin || command -v bochs) || {
	echo "long.sh: bochs not installed (scripts/install-deps.sh emu)" >&2; exit 1; }
G=${LX_GUEST:-$top/build/lx-x86-guest}
"$top/scripts/fetch-guest-amd64.sh" "$G" || exit 1
O=${EXAMPLE_O:-$here/build}

boot() {
	want=
	case $1 in
	wp) flags= B=$O ;;
	ad) flags=DIRTY_HW=1 B=$O/dirty-hw ;;
	pml) flags=DIRTY_PML=1 B=$O/pml ;;
	# No kick and no preemption timer: a move's flush waits until relax()
	# gives up or the guest exits on its own (no kick exit then).
	break-flush) flags=BREAK_FLUSH=1 B=$O/break-flush
		want='(a move.s flush still waits for the vcpu|the moves. flushes kicked the running vcpu out)' ;;
	# One dirty page never copied: the byte comparison at the stop.
	drop-dirty) flags=DROP_DIRTY=1 B=$O/drop-dirty want='destination differs from the stopped guest.s RAM' ;;
	# PML on, but the buffer never handed to kvm_flush_pml_buffer(): the
	# pages only the PML logs named are never copied.
	drop-pml) flags=DROP_PML=1 B=$O/drop-pml want='destination differs from the stopped guest.s RAM' ;;
	esac
	echo "== x86-linux-ept: $1${want:+ (sabotaged: must fail its check)}"
	# shellcheck disable=SC2086
	make -s -C "$here" O="$O" GUEST="$G" ${LIBSRC:+LIBSRC="$LIBSRC"} $flags || return 1
	sed -e "s|@IMG@|$B/lx.img|" -e "s|@CYL@|$(cat "$B/geometry")|" \
		-e "s|@SERIAL@|$B/serial.txt|" -e "s|@LOG@|$B/bochs.log|" "$here/bochsrc.in" >"$B/bochsrc"
	# A killed bochs leaves its lock on the image behind.
	rm -f "$B/serial.txt" "$B/lx.img.lock"
	start=$(date +%s)
	timeout "${TIMEOUT:-3600}" "$bochs" -q -f "$B/bochsrc" -rc "$here/cmds" </dev/null \
		>"$B/out.txt" 2>"$B/err.txt" &
	pid=$!
	# A guest that panics halts and never reaches the verdict: stop bochs then.
	while kill -0 $pid 2>/dev/null; do
		if grep -q -e 'end Kernel panic' -e '^RESULT:' "$B/serial.txt" 2>/dev/null; then
			sleep 2
			kill $pid 2>/dev/null # timeout passes it on to bochs
			break
		fi
		sleep 5
	done
	wait $pid
	rc=$?
	end=$(date +%s)
	tr -d '\r' <"$B/serial.txt" 2>/dev/null
	echo
	echo "bochs: exit $rc after $((end - start)) s"
	[ $rc -eq 124 ] && { echo "long.sh: bochs timed out; last log lines:"; tail -n 5 "$B/bochs.log"; }
	# The report up to its verdict.
	tr -d '\r' <"$B/serial.txt" 2>/dev/null | awk '{ print } /^RESULT:/ { exit }' >"$B/report.txt"
	if [ -z "$want" ]; then
		if grep -q '^RESULT: PASS' "$B/report.txt"; then
			echo "x86-linux-ept ($1): PASS"
			return 0
		fi
		echo "x86-linux-ept ($1): FAIL"
		return 1
	fi
	fails=$(grep -c '^  \[FAIL\]' "$B/report.txt")
	if [ $rc -ne 124 ] && grep -q '^RESULT: FAIL' "$B/report.txt" && [ "$fails" = 1 ] &&
		grep -Eq "^  \[FAIL\] $want" "$B/report.txt"; then
		echo "x86-linux-ept ($1): the sabotaged build failed on its check, as it must: PASS"
		return 0
	fi
	echo "x86-linux-ept ($1): expected a failure of that check only: FAIL"
	return 1
}

case "${1:-all}" in
wp | ad | pml | break-flush | drop-dirty | drop-pml) boot "$1" ;;
all)
	rc=0
	for m in wp ad pml break-flush drop-dirty drop-pml; do
		boot $m || rc=1
	done
	exit $rc
	;;
*) echo "usage: $0 [wp|ad|pml|break-flush|drop-dirty]" >&2; exit 2 ;;
esac
