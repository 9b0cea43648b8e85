#!/usr/bin/env bash
# run-tests.sh PROGRAM...
#
# Runs each test program (a *.sh one through bash), one line PASS/FAIL each,
# then "N passed, N failed". Exits 1 if any failed.
#   S2_TEST_LOGDIR   where each program's output is kept (default: a temp dir)
#   S2_TEST_TIMEOUT  seconds before a program counts as failed (default 600)
#   S2_PHASE         prefix for the summary line (used by scripts/check.sh)
#   S2_TALLY         file that gets "passed failed" appended (check.sh sums it)
#   V=1              print every program's output, not only a failure's
set -u
logdir=${S2_TEST_LOGDIR:-$(mktemp -d)}
timeout_s=${S2_TEST_TIMEOUT:-600}
mkdir -p "$logdir"
pass=0
fail=0
for prog in "$@"; do
	name=${prog#./}
	# Named after the whole path: every examples/*/run.sh has the same basename.
	log="$logdir/$(printf '%s' "${prog#./}" | tr '/' '_').log"
	start=$(date +%s%N)
	case "$prog" in
	*.sh) cmd=(bash "$prog") ;;
	*) cmd=("$prog") ;;
	esac
	timeout --kill-after=10 "$timeout_s" "${cmd[@]}" >"$log" 2>&1 </dev/null
	rc=$?
	ms=$((($(date +%s%N) - start) / 1000000))
	if [ "$rc" -eq 0 ]; then
		pass=$((pass + 1))
		printf '  PASS    %s (%d ms)\n' "$name" "$ms"
		[ "${V:-0}" = 1 ] && cat "$log"
	else
		fail=$((fail + 1))
		why="exit $rc"
		[ "$rc" -eq 124 ] && why="timed out after ${timeout_s}s"
		printf '  FAIL    %s (%s, %d ms); output (%s):\n' "$name" "$why" "$ms" "$log"
		# The first report (sanitizers) and the last lines (cmocka's
		# list of failed tests) matter most.
		lines=$(wc -l <"$log")
		if [ "$lines" -le 200 ]; then
			sed 's/^/    | /' "$log"
		else
			head -n 120 "$log" | sed 's/^/    | /'
			echo "    | ... ($((lines - 180)) lines left out)"
			tail -n 60 "$log" | sed 's/^/    | /'
		fi
	fi
done
if [ -n "${S2_PHASE:-}" ]; then
	echo "$S2_PHASE: $pass passed, $fail failed"
else
	echo "$pass passed, $fail failed"
fi
[ -n "${S2_TALLY:-}" ] && echo "$pass $fail" >>"$S2_TALLY"
[ "$fail" -eq 0 ]
