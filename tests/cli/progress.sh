#!/usr/bin/env bash
# Long work shows a progress line on stderr only when stderr is a terminal:
# a replay of 131073 lines and a dump that walks 66048 entries print
# "replay: lines: 65536" / "dump: entries: 65536" under script(1)'s pseudo
# terminal, and nothing on a plain stderr. Mutation seen failing: progress()
# returning at once (the terminal runs lack the line).
. "$(dirname "$0")/lib/common.sh"
command -v script >/dev/null || { echo "progress: no script(1), skipped"; exit 0; }

# 131072 comment lines after a VM: two progress updates, no calls.
{
	echo 'vm fmt=x86-ept'
	yes '# a long trace' | head -n 131072
} >"$TMP/long.trace"
if built_trace "$TMP/long.trace"; then
	run 0 "$S2MMU" replay --no-check "$TMP/long.trace"
	[ -s "$TMP/err" ] && fail "replay: progress on a stderr that is not a terminal"
	checks=$((checks + 1))
	script -qec "$S2MMU replay --no-check $TMP/long.trace" /dev/null >"$TMP/tty" 2>&1
	has 'replay: lines: 65536' "$TMP/tty"
	has 'replay: lines: 131072' "$TMP/tty"
	has 'replayed 1 calls' "$TMP/tty"
fi

# An EPT root whose first 128 entries point to (empty) tables: 512 + 128 *
# 512 entries walked.
{
	for i in $(seq 1 128); do le64 $(((i << 12) | 7)); done
	zeros $(((512 - 128) * 8 + 128 * 4096))
} >"$TMP/wide.img"
run 0 "$S2MMU" dump --fmt ept --root 0 --image "$TMP/wide.img"
[ -s "$TMP/err" ] && fail "dump: progress on a stderr that is not a terminal"
checks=$((checks + 1))
script -qec "$S2MMU dump --fmt ept --root 0 --image $TMP/wide.img" /dev/null >"$TMP/tty" 2>&1
has 'dump: entries: 65536' "$TMP/tty"
has '0 runs' "$TMP/tty"
finish
