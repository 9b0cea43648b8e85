#!/usr/bin/env bash
# A TD's trace replays against the TDX module model (builds with
# CONFIG_S2_TDX and CONFIG_S2_TRACE; skipped otherwise). tests/cli/td_trace_gen
# drives a hosted TD (PAGE.ADD build phase, finalize, private and shared
# faults, conversions that demote, guest accepts, collapses, zaps) with the
# library's call trace on; `s2mmu replay` must meet every result (the
# tdx_* lines' among them), end with the model holding the same leaves and
# S-EPT pages and no illegal call, and fail (exit 1) when one tdx line's
# result is altered: a tdx_page_add, a tdx_collapse and a tdx_finalized.
# Without its tdx_accept lines (as a real TD's trace) it replays through the
# library's tdx_promote_answer lines, and fails without those too.
#
# tests/tdx/test_random's traces (its failing cases' form): with
# S2_TRACE_ALL it keeps the first seed of each width though it passed, its
# final state as expectations; the replay meets them all with the test's
# OPERAND_BUSY count (the `tdx_model` line), and fails without that line,
# with another seed or private backing, and with an expectation altered.
. "$(dirname "$0")/lib/common.sh"
GEN=$S2_O/tests/cli/td_trace_gen
RANDOM_TD=$S2_O/tests/tdx/test_random

if ! grep -q '^CONFIG_S2_TDX=y' "$S2_O/.config" || ! grep -q '^CONFIG_S2_TRACE=y' "$S2_O/.config"; then
	echo "tdx: this build has no TDX or no call trace, skipped"
	exit 0
fi

for seed in 1 2; do
	t=$TMP/td-$seed.trace
	run 0 "$GEN" "$seed" 400 "$t" || continue
	read -r _ leaves _ sept _ _ < <(sed 's/,//g' "$TMP/out")
	grep -q '^tdx_collapse .*=> [1-9]' "$t" || fail "seed $seed: no collapse made a leaf"
	grep -q '^tdx_page_add .*=> 0' "$t" || fail "seed $seed: no PAGE.ADD succeeded"
	run 0 "$S2MMU" replay "$t" || continue
	has '0 failed expectations, 0 failed calls'
	has ' 0 mismatches'
	has "tdx module model: $leaves leaves, $sept S-EPT pages, 0 illegal calls"

	# A real TD's trace has no tdx_accept lines (the guest's accepts are
	# not the host's calls): the library's tdx_promote_answer lines stand
	# in for them; without either, the half-accepted block's collapses differ.
	grep -q '^tdx_promote_answer .* promoted=0' "$t" || fail "seed $seed: no refused promotion"
	grep -v '^tdx_accept ' "$t" >"$TMP/real.trace"
	run 0 "$S2MMU" replay "$TMP/real.trace" && has '0 failed expectations, 0 failed calls' &&
		has "tdx module model: $leaves leaves, $sept S-EPT pages, 0 illegal calls"
	grep -v '^tdx_promote_answer ' "$TMP/real.trace" >"$TMP/bad.trace"
	run 1 "$S2MMU" replay "$TMP/bad.trace" && has 'tdx_collapse returned 1, the trace expects 0' "$TMP/err"

	# One tdx line's result altered at a time: the replay must notice.
	for pat in '^tdx_page_add gfn=0x3 ' '^tdx_collapse .*=> 1$' '^tdx_finalized '; do
		n=$(grep -n -m1 -E "$pat" "$t" | cut -d: -f1)
		[ -n "$n" ] || { fail "seed $seed: no line matches $pat"; continue; }
		sed "${n}s/=> .*/=> -EBUSY/" "$t" >"$TMP/bad.trace"
		run 1 "$S2MMU" replay "$TMP/bad.trace" && has '1 failed expectations'
	done
done
mkdir -p "$TMP/random"
with_private=0
if run 0 env S2_TRACE_ALL=1 S2_TRACE_DIR="$TMP/random" "$RANDOM_TD"; then
	cp "$TMP/out" "$TMP/random.out"
	for bits in 48 52; do
		t=$(ls "$TMP"/random/tdx_random-$bits-*.trace 2>/dev/null | head -n 1)
		[ -n "$t" ] || { fail "test_random kept no trace of width $bits"; continue; }
		seed=${t##*-}
		seed=${seed%.trace}
		busy=$(grep "^bits $bits seed 0x$seed:" "$TMP/random.out" | sed 's/.* \([0-9]*\) busy$/\1/')
		grep -q '^tdx_accept ' "$t" || fail "$t: no tdx_accept line"
		grep -q '^tdx_model busy_one_in=7 ' "$t" || fail "$t: no tdx_model line"
		run 0 "$S2MMU" replay "$t" || continue
		has '0 failed expectations, 0 failed calls'
		has "0 illegal calls, $busy busy answers"

		grep -v '^tdx_model ' "$t" >"$TMP/bad.trace"
		run 1 "$S2MMU" replay "$TMP/bad.trace"
		sed "s/^tdx_model \(.*\) seed=0x$seed /tdx_model \1 seed=0x1$seed /" "$t" >"$TMP/bad.trace"
		run 1 "$S2MMU" replay "$TMP/bad.trace"
		# Private pages left at the end (not every seed): another
		# backing and an altered expectation fail.
		n=$(grep -n -m1 '^expect_private .* hpa=0x' "$t" | cut -d: -f1)
		[ -n "$n" ] || continue
		with_private=$((with_private + 1))
		sed 's/^\(tdx_model .*private_pfn=0x\)9/\18/' "$t" >"$TMP/bad.trace"
		run 1 "$S2MMU" replay "$TMP/bad.trace"
		sed "${n}s/hpa=0x[0-9a-f]*/hpa=none/" "$t" >"$TMP/bad.trace"
		run 1 "$S2MMU" replay "$TMP/bad.trace" && has "expect_private gfn" "$TMP/err"
	done
	[ "$with_private" -gt 0 ] || fail "no test_random trace ends with a private page"
fi
finish
