#!/usr/bin/env bash
# bench-plot.sh LOG PNG: the BENCH lines of a `make bench` run (LOG) as a bar
# chart (PNG): one group of bars per row (op), one bar per format, the
# height the row's ratio to its limit on a log scale, with the common 1.3x
# target drawn across. A line "# <title>" in LOG becomes the title.
# Needs gnuplot (scripts/install-deps.sh plot).
set -eu
log=$1
png=$2
[ -s "$log" ] || { echo "bench-plot: $log is empty or missing" >&2; exit 2; }
grep -q '^BENCH ' "$log" || { echo "bench-plot: no BENCH lines in $log" >&2; exit 2; }
command -v gnuplot >/dev/null || { echo "bench-plot: gnuplot not found" >&2; exit 2; }
dat=$(mktemp)
trap 'rm -f "$dat"' EXIT

# op x fmt table of ratios, ops and formats in the order they first appear.
awk '
/^BENCH / {
	op = ""; fmt = ""; ratio = "";
	for (i = 2; i <= NF; i++) {
		split($i, kv, "=");
		if (kv[1] == "op") op = kv[2];
		else if (kv[1] == "fmt") fmt = kv[2];
		else if (kv[1] == "ratio") ratio = kv[2];
	}
	if (op == "" || fmt == "" || ratio == "" || ratio + 0 <= 0) next;
	if (!(op in seen_op)) { seen_op[op] = 1; ops[++nops] = op; }
	if (!(fmt in seen_fmt)) { seen_fmt[fmt] = 1; fmts[++nfmts] = fmt; }
	r[op, fmt] = ratio;
}
END {
	printf "op";
	for (f = 1; f <= nfmts; f++) printf " %s", fmts[f];
	printf "\n";
	for (o = 1; o <= nops; o++) {
		printf "%s", ops[o];
		for (f = 1; f <= nfmts; f++) {
			k = ops[o] SUBSEP fmts[f];
			printf " %s", (k in r) ? r[k] : "-";
		}
		printf "\n";
	}
}' "$log" > "$dat"

ncols=$(head -1 "$dat" | wc -w)
nrows=$(($(wc -l < "$dat") - 1))
title=$(sed -n 's/^# //p' "$log" | head -1)
width=$((400 + nrows * 28))
[ "$width" -gt 3000 ] && width=3000
term="pngcairo size $width,560 font ',9'"
gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1 || term="png size $width,560"

gnuplot <<GP
set terminal $term
set output "$png"
set termoption noenhanced
set title "${title:-make bench}: ratio of each row to its limit (lower is better)"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set datafile missing "-"
set xtics rotate by -50 scale 0 nomirror
set ylabel "ns per page / limit ns per page"
set logscale y
set yrange [0.1:*]
set grid ytics
set key top left horizontal
set arrow from graph 0, first 1.3 to graph 1, first 1.3 nohead dt 2 lw 2 lc rgb "red"
set label "1.3x" at graph 0.97, first 1.3 right offset 0,0.8 tc rgb "red"
plot for [i=2:$ncols] "$dat" using i:xtic(1) title columnheader(i)
GP
echo "bench-plot: $png ($nrows rows, $((ncols - 1)) formats)"
