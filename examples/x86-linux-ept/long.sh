#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The long run of the x86 Linux EPT example (make conformance-long, not part
# of make check): Debian's unmodified amd64 kernel as a partition under the
# VMX + EPT twin of examples/x86-linux-npt, in bochs (corei7_skylake_x, two
# CPUs), with the same /init: partition probes, moves, migration. Two boots,
# the migration's dirty log from write protection, then from EPT A/D bits.
# Exits 0 only when each printed "RESULT: PASS".
#
#   long.sh            both boots
#   long.sh wp | ad    one of them
#
# Environment: EXAMPLE_O=dir (default build/ here), LX_GUEST (default
# build/lx-x86-guest of the tree), TIMEOUT (seconds per boot, default 1200).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
bochs=$(command -v bochs-bin || command -v bochs) || {
	echo "long.sh: bochs not installed (scripts/install-deps.sh emu)" >&2; exit 1; }
G=${LX_GUEST:-$top/build/lx-x86-guest}
"$top/scripts/fetch-guest-amd64.sh" "$G" || exit 1
O=${EXAMPLE_O:-$here/build}

boot() {
	case $1 in
	wp) flags= B=$O ;;
	ad) flags=DIRTY_HW=1 B=$O/dirty-hw ;;
	esac
	echo "== x86-linux-ept, dirty log: $1"
	# shellcheck disable=SC2086
	make -s -C "$here" O="$O" GUEST="$G" ${LIBSRC:+LIBSRC="$LIBSRC"} $flags || return 1
	sed -e "s|@IMG@|$B/lx.img|" -e "s|@CYL@|$(cat "$B/geometry")|" \
		-e "s|@SERIAL@|$B/serial.txt|" -e "s|@LOG@|$B/bochs.log|" "$here/bochsrc.in" >"$B/bochsrc"
	# A killed bochs leaves its lock on the image behind.
	rm -f "$B/serial.txt" "$B/lx.img.lock"
	start=$(date +%s)
	timeout "${TIMEOUT:-1200}" "$bochs" -q -f "$B/bochsrc" -rc "$here/cmds" </dev/null \
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
	if tr -d '\r' <"$B/serial.txt" 2>/dev/null | grep -q '^RESULT: PASS'; then
		echo "x86-linux-ept ($1): PASS"
		return 0
	fi
	echo "x86-linux-ept ($1): FAIL"
	return 1
}

case "${1:-both}" in
wp | ad) boot "$1" ;;
both)
	rc=0
	boot wp || rc=1
	boot ad || rc=1
	exit $rc
	;;
*) echo "usage: $0 [wp|ad]" >&2; exit 2 ;;
esac
