#!/usr/bin/env bash
# A TD's trace replays against the TDX module model (builds with
# CONFIG_S2_TDX and CONFIG_S2_TRACE; skipped otherwise). tests/cli/td_trace_gen
# drives a hosted TD (PAGE.ADD build phase, finalize, private and shared
# faults, conversions that demote, guest accepts, collapses, zaps) with the
# library's call trace on; `s2mmu replay` must meet every result (the
# tdx_* lines' among them), end with the model holding the same leaves and
# S-EPT pages and no illegal call, and fail (exit 1) when one tdx line's
# result is altered: a tdx_page_add, a tdx_collapse and a tdx_finalized.
. "$(dirname "$0")/lib/common.sh"
GEN=$S2_O/tests/cli/td_trace_gen

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

	# One tdx line's result altered at a time: the replay must notice.
	for pat in '^tdx_page_add gfn=0x3 ' '^tdx_collapse .*=> 1$' '^tdx_finalized '; do
		n=$(grep -n -m1 -E "$pat" "$t" | cut -d: -f1)
		[ -n "$n" ] || { fail "seed $seed: no line matches $pat"; continue; }
		sed "${n}s/=> .*/=> -EBUSY/" "$t" >"$TMP/bad.trace"
		run 1 "$S2MMU" replay "$TMP/bad.trace" && has '1 failed expectations'
	done
done
finish
