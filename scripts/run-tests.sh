#!/usr/bin/env bash
# run-tests.sh PROGRAM...
#
# Runs each test program (a *.sh one through bash), one line PASS/FAIL each,
# then "N passed, N failed". Exits 1 if any failed.
#   S2_TEST_LOGDIR   where each program's output is kept (default: a temp dir)
#   S2_TEST_TIMEOUT  seconds before a program counts as failed (default 600)
#   S2_TEST_JOBS     how many single-threaded programs run at once (default
#                    1). Multithreaded ones (a name with _mt) and scripts
#                    (*.sh: they build or boot things themselves) always run
#                    alone, after the others: their interleavings and their
#                    time are their own.
#   S2_PHASE         prefix for the summary line (used by scripts/check.sh)
#   S2_TALLY         file that gets "passed failed" appended (check.sh sums it)
#   V=1              print every program's output, not only a failure's
set -u
logdir=${S2_TEST_LOGDIR:-$(mktemp -d)}
timeout_s=${S2_TEST_TIMEOUT:-600}
jobs=${S2_TEST_JOBS:-1}
mkdir -p "$logdir"
results=$(mktemp)
printlock=$(mktemp)
trap 'rm -f "$results" "$printlock"' EXIT

# run_one PROGRAM: runs it, prints its report in one piece, appends
# "1 0" (passed) or "0 1" (failed) to $results.
run_one() {
	local prog=$1 name=${1#./} log start cmd rc ms why lines report
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
	report=$(mktemp)
	if [ "$rc" -eq 0 ]; then
		printf '  PASS    %s (%d ms)\n' "$name" "$ms" >"$report"
		[ "${V:-0}" = 1 ] && cat "$log" >>"$report"
		echo "1 0" >>"$results"
	else
		why="exit $rc"
		[ "$rc" -eq 124 ] && why="timed out after ${timeout_s}s"
		{
			printf '  FAIL    %s (%s, %d ms); output (%s):\n' "$name" "$why" "$ms" "$log"
			# The first report (sanitizers) and the last lines
			# (cmocka's list of failed tests) matter most.
			lines=$(wc -l <"$log")
			if [ "$lines" -le 200 ]; then
				sed 's/^/    | /' "$log"
			else
				head -n 120 "$log" | sed 's/^/    | /'
				echo "    | ... ($((lines - 180)) lines left out)"
				tail -n 60 "$log" | sed 's/^/    | /'
			fi
		} >"$report"
		echo "0 1" >>"$results"
	fi
	# One report at a time on the terminal, whole.
	flock "$printlock" cat "$report"
	rm -f "$report"
}

alone=()
if [ "$jobs" -le 1 ]; then
	for prog in "$@"; do
		run_one "$prog"
	done
else
	running=0
	for prog in "$@"; do
		case "$prog" in
		*_mt | *_mt_* | *.sh)
			alone+=("$prog")
			continue
			;;
		esac
		if [ "$running" -ge "$jobs" ]; then
			wait -n
			running=$((running - 1))
		fi
		run_one "$prog" &
		running=$((running + 1))
	done
	wait
	for prog in "${alone[@]}"; do
		run_one "$prog"
	done
fi
read -r pass fail < <(awk '{ p += $1; f += $2 } END { print p + 0, f + 0 }' "$results")
if [ -n "${S2_PHASE:-}" ]; then
	echo "$S2_PHASE: $pass passed, $fail failed"
else
	echo "$pass passed, $fail failed"
fi
[ -n "${S2_TALLY:-}" ] && echo "$pass $fail" >>"$S2_TALLY"
[ "$fail" -eq 0 ]
