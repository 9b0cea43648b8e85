#!/usr/bin/env bash
# s2mmu help: every command answers --help with exit 0, unknown commands
# and options exit 2, and docs/tools.md documents every option the --help
# texts name (so the installed --help and the manual say the same).
# Mutation seen failing: an option added to dump's --help but not to the doc.
. "$(dirname "$0")/lib/common.sh"

run 0 "$S2MMU" help
has 'decode'; has 'dump'; has 'replay'; has 'insn'
run 0 "$S2MMU" --version
has 's2mmu '
run 2 "$S2MMU"
run 2 "$S2MMU" nosuch
for c in decode dump replay insn; do
	run 0 "$S2MMU" "$c" --help
	has "usage: s2mmu $c"
	cp "$TMP/out" "$TMP/help-$c"
	run 0 "$S2MMU" help "$c"
	checks=$((checks + 1))
	cmp -s "$TMP/out" "$TMP/help-$c" || fail "s2mmu help $c differs from s2mmu $c --help"
	run 2 "$S2MMU" "$c" --no-such-option
	for opt in $(grep -o -- '--[a-z][a-z0-9-]*' "$TMP/help-$c" | sort -u); do
		checks=$((checks + 1))
		grep -qF -- "$opt" "$S2_SRCTREE/docs/tools.md" ||
			fail "docs/tools.md does not mention $c's $opt"
	done
done
finish
