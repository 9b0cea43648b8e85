#!/usr/bin/env bash
# mutations.sh [NAME...]: `make mutations`. Shows that the TLB model checker
# (tests/generic/tlb_model_mt.c) fails on each change issue 10 lists.
#
# Each scripts/mutations/NAME.sh defines `describe`, the test `formats` (and
# optionally `configs`, TLB_CFG names, `only`, a TLB_ONLY operation, and
# `sanitize`, a SANITIZE= value to build the checkers with, in a build
# directory of their own) to run, and apply(), which changes the
# tree with `mutate FILE PERL-SUBSTITUTION` (a substitution that matches
# nothing is an error: the mutation no longer applies to this code). The
# working tree (tracked and untracked files, not build/) is copied to
# $MUT_DIR/src and built there once (allformats_defconfig); each mutation is
# applied to that copy, the binaries it needs are rebuilt and run for up to
# MUT_SEEDS seeds (TLB_SEED=1, 2, ...; first failure stops), and the copy is
# restored. The unchanged tree runs first (one seed) and must pass.
#
# Prints one line per mutation: caught (with the checker's first message)
# or NOT caught. Exit status 1 if the unchanged tree fails or a mutation is
# not caught or no longer applies.
#   MUT_BASE     copy this git revision instead of the working tree (the
#                checker's files still come from the working tree)
#   MUT_DIR      build directory (default build/mutations)
#   MUT_SEEDS    seeds per mutation (default 4)
#   MUT_SECONDS  TLB_SECONDS per configuration (default 4)
#   MUT_OPS      TLB_OPS per configuration (default 3000)
#   JOBS         parallel build jobs
set -u
cd "$(dirname "$0")/.."
top=$PWD
make=${MAKE:-make}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
dir=${MUT_DIR:-build/mutations}
seeds=${MUT_SEEDS:-4}
secs=${MUT_SECONDS:-4}
ops=${MUT_OPS:-3000}
src=$dir/src
pristine=$dir/pristine
o=$top/$dir/o

if [ $# -gt 0 ]; then
	names=("$@")
else
	names=()
	for f in scripts/mutations/*.sh; do
		names+=("$(basename "$f" .sh)")
	done
fi

# A fresh copy of the working tree (what `git status` would show, no build/),
# or of revision MUT_BASE with the checker's own files from the working tree
# (a stable base while others edit the tree).
rm -rf "$src" "$pristine"
mkdir -p "$src" "$pristine"
if [ -n "${MUT_BASE:-}" ]; then
	git archive "$MUT_BASE" | tar -xf - -C "$pristine" || exit 1
	for f in tests/generic/tlb_model_mt.c tests/generic/tlb_sim.h tests/generic/dirty_sim.h; do
		cp "$f" "$pristine/$f" || exit 1
	done
else
	{ git ls-files -z; git ls-files -z --others --exclude-standard; } |
		tar --null -T - -cf - 2>/dev/null | tar -xf - -C "$pristine" || exit 1
fi
cp -a "$pristine/." "$src/"
(cd "$src" && scripts/configure.sh "$o" allformats_defconfig >/dev/null) || exit 1

touched=()
# mutate FILE SUBSTITUTION: perl -0 substitution on FILE in the copy.
mutate() {
	local f=$1 expr=$2
	if ! perl -0 -e '
		my ($f, $e) = @ARGV; local $/;
		open(my $h, "<", $f) or die "$f: $!"; $_ = <$h>; close $h;
		my $n = eval "s$e" ; die $@ if $@;
		exit 3 unless $n;
		open($h, ">", $f) or die; print $h $_; close $h;' "$src/$f" "${expr#s}"; then
		echo "    mutation does not apply to $f: ${expr:0:70}..." >&2
		return 1
	fi
	touched+=("$f")
}

restore() {
	local f
	for f in "${touched[@]}"; do
		cp "$pristine/$f" "$src/$f" # a new mtime: make rebuilds it
	done
	touched=()
}

# The checker binaries of FORMATS, or BINS (paths under the build
# directory) where a mutation names its own checker (`bins`), under build
# directory OD.
bins_for() {
	local f od=${3:-$o}
	if [ -n "${2:-}" ]; then
		for f in $2; do
			printf '%s/%s ' "$od" "$f"
		done
		return
	fi
	for f in $1; do
		printf '%s/tests/test_generic_tlb_model_mt_%s ' "$od" "$f"
	done
}

# run FORMATS CONFIGS SEEDS: 0 when every seed passes; else the first
# failure's message is in $first.
first=""
run() {
	local formats=$1 cfgs=${2:-all} nseeds=$3 extra=${4:-} only=${5:-} san=${6:-} od=$o
	local s b c log=$dir/run.log
	if [ -n "$san" ]; then
		od=$o-san
		[ -f "$od/.config" ] ||
			(cd "$src" && scripts/configure.sh "$od" allformats_defconfig >/dev/null) ||
			return 2
	fi
	# shellcheck disable=SC2046
	(cd "$src" && $make --no-print-directory -s -j"$jobs" O="$od" ${san:+SANITIZE=$san} \
		$(bins_for "$formats" "$extra" "$od")) \
		>"$log" 2>&1 || { first="build failed: $(grep -m1 error "$log")"; return 2; }
	for s in $(seq 1 "$nseeds"); do
		for b in $(bins_for "$formats" "$extra" "$od"); do
			for c in $cfgs; do
				[ "$c" = all ] && c=""
				if ! TLB_SEED=$s TLB_CFG=$c TLB_SECONDS=$secs TLB_OPS=$ops TLB_ONLY=$only \
					timeout 600 "$b" >"$log" 2>&1; then
					first=$(grep -m1 -E '^(FAIL|ERROR)|Sanitizer|no progress' "$log" |
						cut -c1-300)
					[ -n "$first" ] || first="$(basename "$b") exited with failure"
					return 1
				fi
			done
		done
	done
	return 0
}

results=()
status=0
all_formats="x86_ept x86_npt arm64_s2 riscv_g"
echo "== unchanged tree ($src${MUT_BASE:+, $MUT_BASE})"
if ! run "$all_formats" "" 1; then
	echo "the unchanged tree fails: $first"
	exit 1
fi
results+=("$(printf '%-24s %-18s %s' "(none)" "all" "passes")")
# Checkers of their own that mutations name (`bins`): the TD's private TLB
# checker (tests/tdx/test_tlb_mt.c).
extra_bins="tests/tdx/test_tlb_mt"
if ! run "" "" 1 "$extra_bins"; then
	echo "the unchanged tree fails: $first"
	exit 1
fi
results+=("$(printf '%-24s %-18s %s' "(none)" "$extra_bins" "passes")")
for n in "${names[@]}"; do
	unset describe formats configs bins only sanitize
	apply() { return 1; }
	# shellcheck disable=SC1090
	. "scripts/mutations/$n.sh" || exit 1
	echo "== $n: $describe"
	if ! apply; then
		restore
		results+=("$(printf '%-24s %-18s %s' "$n" "$formats" "DOES NOT APPLY")")
		status=1
		continue
	fi
	run "$formats" "${configs:-}" "$seeds" "${bins:-}" "${only:-}" "${sanitize:-}"
	rc=$?
	restore
	case $rc in
	0) results+=("$(printf '%-24s %-18s %s' "$n" "$formats" "NOT caught ($seeds seeds)")")
	   status=1 ;;
	1) results+=("$(printf '%-24s %-18s %s\n%24s %s' "$n" "$formats" "caught" "" "$first")") ;;
	*) results+=("$(printf '%-24s %-18s %s' "$n" "$formats" "$first")")
	   status=1 ;;
	esac
done
echo
echo "mutation                 formats            result"
printf '%s\n' "${results[@]}"
exit $status
