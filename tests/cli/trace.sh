#!/usr/bin/env bash
# The library's call trace (CONFIG_S2_TRACE) round trip: tests/cli/trace_gen
# makes random calls on a hosted VM of each format with env.trace on and
# saves the library's own trace lines and the table pages; `s2mmu replay`
# must replay that trace with every recorded result met, end with the same
# statistics, and `replay --dump` must print the same mappings as `s2mmu
# dump` of the saved tables. Mutations seen failing: the memslot_move line
# not emitted (results and mappings differ), the clear_dirty_log mask words
# dropped (expectations fail).
. "$(dirname "$0")/lib/common.sh"
GEN=$S2_O/tests/cli/trace_gen
if ! grep -qx 'CONFIG_S2_TRACE=y' "$S2_O/.config"; then
	echo "skipped: this build has no call trace (CONFIG_S2_TRACE)"
	exit 0
fi

# dump-lines FILE: the mapping runs, special entries and counts of a dump.
dump_lines() {
	grep -E '^(gpa |\* |level |  *[0-9]+  |[0-9]+ runs)' "$1"
}

for spec in "x86-ept ad" "x86-npt -" "arm64-s2 fwb" "riscv-g -"; do
	set -- $spec
	fmt=$1 flags=$2
	built "$fmt" || { echo "skipped: $fmt (not in this build)"; continue; }
	for seed in 1 2; do
		p=$TMP/$fmt-$seed
		run 0 "$GEN" "$fmt" "$seed" 1500 "$p" || continue
		cp "$TMP/out" "$p.out"
		read -r _ root base bits _ < <(head -n 1 "$p.out" | sed 's/[a-z_]*=//g')
		[ "$(grep -c '' "$p.trace")" -gt 1500 ] || fail "$fmt: the trace has too few lines"
		run 0 "$S2MMU" replay --dump "$p.trace" || continue
		cp "$TMP/out" "$p.rep"
		has '0 failed expectations, 0 failed calls'
		has ' 0 mismatches'
		has "$(grep '^stats:' "$p.out")"
		fl=()
		[ "$flags" != - ] && fl=(--flags "$flags")
		run 0 "$S2MMU" dump --fmt "$fmt" --root "$root" --image "$p.img" --image-base "$base" \
			--gpa-bits "$bits" "${fl[@]}" || continue
		checks=$((checks + 1))
		if ! diff <(dump_lines "$TMP/out") <(dump_lines "$p.rep") >"$TMP/diff"; then
			fail "$fmt seed $seed: replay --dump differs from the dump of the traced run's tables"
			head -n 20 "$TMP/diff"
		fi
		[ "$(dump_lines "$p.rep" | grep -c '^gpa ')" -gt 0 ] || fail "$fmt: nothing mapped"
	done
done
finish
