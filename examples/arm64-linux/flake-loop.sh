#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Boot one configuration of run.sh's matrix N times (one QEMU at a time,
# nice -n 10) to catch a rare failure; keep every failed boot's output.
# Not part of make check or make conformance.
#
#   flake-loop.sh NAME N     e.g. flake-loop.sh max-4k-48 40
# LX_ARM64_MOVES / LX_ARM64_MOVE_MS (run.sh) raise the moves per boot.
# Logs of failed boots: $EXAMPLE_O/flake/NAME-I.log (EXAMPLE_O as run.sh:
# default build/lx-arm64); the summary line counts boots and failures;
# $EXAMPLE_O/flake/NAME.stats has a line of figures for every boot.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
name=${1:?usage: flake-loop.sh NAME N}
n=${2:?usage: flake-loop.sh NAME N}
out=${EXAMPLE_O:-$top/build/lx-arm64}
mkdir -p "$out/flake" || exit 1
fails=0
for i in $(seq 1 "$n"); do
	nice -n 10 "$here/run.sh" --one "$name" >"$out/flake/$name-cur.log" 2>&1
	rc=$?
	# Every boot's figures, passed or failed, to compare the two kinds.
	echo "boot $i rc $rc: $(grep -E '^hyp: (worker|migration: switched|CPU [01] exits)' "$out/flake/$name-cur.log" |
		sed -E 's/aborts data translation=([0-9]+).*fixed=([0-9]+) spurious=[0-9]+ retry=([0-9]+).*/dabt=\1 fixed=\2 retry=\3/; s/.*dirty stats: //' | tr '\n' ' ')" >>"$out/flake/$name.stats"
	if [ "$rc" -ne 0 ]; then
		fails=$((fails + 1))
		mv "$out/flake/$name-cur.log" "$out/flake/$name-$i.log"
		echo "flake-loop $name: boot $i FAILED: $out/flake/$name-$i.log"
		grep -E '^MEMCHECK-(FAIL|DIAG)|^hyp: FAIL' "$out/flake/$name-$i.log" | head -5
	fi
	echo "flake-loop $name: $i boots, $fails failed (moves ${LX_ARM64_MOVES:-24}, every ${LX_ARM64_MOVE_MS:-20} ms)"
done
rm -f "$out/flake/$name-cur.log"
[ "$fails" -eq 0 ]
