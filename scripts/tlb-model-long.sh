#!/usr/bin/env bash
# tlb-model-long.sh: `make tlb-model-long`. The TLB model checker
# (tests/generic/tlb_model_mt.c) on every format and configuration with many
# random seeds and longer runs than make check gives it.
#   TLB_LONG_O         build directory (default build/tlb-long)
#   TLB_LONG_SEEDS     seeds per format (default 50)
#   TLB_LONG_OPS       mutator operations per configuration (default 20000)
#   TLB_LONG_SECONDS   at most so long per configuration (default 20)
#   TLB_LONG_SANITIZE  build with SANITIZE= (thread, or address,undefined)
#   JOBS               parallel build jobs
# Each failure prints the seed and configuration that reproduce it; the exit
# status is 1 if any run failed.
set -u
cd "$(dirname "$0")/.."
make=${MAKE:-make}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
o=${TLB_LONG_O:-build/tlb-long}
seeds=${TLB_LONG_SEEDS:-50}
ops=${TLB_LONG_OPS:-20000}
secs=${TLB_LONG_SECONDS:-20}
san=${TLB_LONG_SANITIZE:-}

scripts/configure.sh "$o" allformats_defconfig || exit 1
bins=()
for f in x86_ept x86_npt arm64_s2 riscv_g; do
	bins+=("$o/tests/test_generic_tlb_model_mt_$f")
done
$make --no-print-directory -j"$jobs" O="$o" ${san:+SANITIZE=$san} "${bins[@]}" || exit 1

fail=0
runs=0
log=$o/tlb-model-long.log
: >"$log"
start=$(date +%s)
for i in $(seq 1 "$seeds"); do
	for b in "${bins[@]}"; do
		seed=$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
		runs=$((runs + 1))
		if ! TLB_SEED=0x$seed TLB_OPS=$ops TLB_SECONDS=$secs TLB_VERBOSE=1 \
			timeout 1200 "$b" >"$o/run.log" 2>&1; then
			fail=$((fail + 1))
			echo "FAILED: TLB_SEED=0x$seed TLB_OPS=$ops $b"
			grep -m3 -E '^(FAIL|ERROR)|Sanitizer|no progress' "$o/run.log" | cut -c1-600
			cat "$o/run.log" >>"$log"
		else
			grep -h 'seed=' "$o/run.log" >>"$log"
		fi
	done
	echo "seed round $i/$seeds: $runs runs, $fail failed ($(($(date +%s) - start)) s)"
done
echo "tlb-model-long: $runs runs ($seeds seeds x ${#bins[@]} formats, every configuration), $fail failed; statistics in $log"
[ "$fail" -eq 0 ]
