#!/usr/bin/env bash
# check.sh: what `make check` runs (also usable directly). Steps, each in its
# own build directory under build/, each counted once, test programs counted
# one each:
#   1. scripts/install-deps.sh build  (quick when everything is there)
#   2. clang-format check, when clang-format is installed
#   3. build/check       allformats_defconfig: build lib, tools, tests; run
#                        every test program; build (not run) bench/*.c
#   3b. build/check-cfg-{defconfig,x86_64,arm64,riscv64}  the hosted one-format
#                        defconfigs: tests, tools, benches -fsyntax-only
#                        (make syntax-check)
#   4. build/check-asan  the same with -fsanitize=address,undefined
#   5. build/check-tsan  -fsanitize=thread, only the concurrency tests
#   6. build/check-fs-{x86_64,aarch64,riscv64}  <arch>_freestanding_defconfig
#                        (riscv64 with CONFIG_S2_TRACE)
#                        cross-compiled -ffreestanding, archived, and checked
#                        for undefined symbols (scripts/check-freestanding.sh)
#   7. make conformance  (examples/*/run.sh once they exist)
#   fuzz                 build/check-fuzz: tests/fuzz with clang's libFuzzer,
#                        ASan and UBSan, FUZZ_SECONDS (default 20) from the
#                        corpus in tests/fuzz/corpus (mk/fuzz.mk)
# The last line is "N passed, N failed"; the exit status is 1 if N failed > 0.
# Environment: MAKE, JOBS (parallel build jobs, default nproc), V=1,
# CHECK_SKIP="configs asan tsan fuzz freestanding conformance format" to leave steps out.
set -u
cd "$(dirname "$0")/.."
make=${MAKE:-make}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
export V=${V:-0} MAKE=$make
tally=$(mktemp)
trap 'rm -f "$tally"' EXIT
export S2_TALLY=$tally
started=$(date +%s)

skip() { case " ${CHECK_SKIP:-} " in *" $1 "*) return 0 ;; esac; return 1; }
phase() { printf '\n== %s\n' "$*"; }

# step NAME COMMAND...: one counted step.
step() {
	local name=$1
	shift
	if "$@"; then
		echo "$name: ok"
		echo "1 0" >>"$tally"
		return 0
	fi
	echo "$name: FAILED"
	echo "0 1" >>"$tally"
	return 1
}

m() { $make --no-print-directory -j"$jobs" "$@"; }

configure() { scripts/configure.sh "$@"; }

# build_and_test NAME O DEFCONFIG GOAL LIST-VAR [make vars...]
build_and_test() {
	local name=$1 o=$2 defconfig=$3 goal=$4 list=$5
	shift 5
	phase "$name ($o, $defconfig)"
	step "$name: configure and build" \
		bash -c 'scripts/configure.sh "$1" "$2" && shift 2 && '"$make"' --no-print-directory -j'"$jobs"' "$@"' \
		_ "$o" "$defconfig" O="$o" "$@" $goal || return
	local bins
	bins=$($make --no-print-directory -s O="$o" "$@" print-"$list")
	if [ -z "$bins" ]; then
		echo "$name: no test programs yet"
		return
	fi
	# Single-threaded programs two (JOBS) at a time; the multithreaded ones
	# alone (scripts/run-tests.sh).
	# shellcheck disable=SC2086
	S2_TEST_JOBS=$jobs S2_PHASE=$name S2_TEST_LOGDIR=$o/test-logs scripts/run-tests.sh $bins
}

phase "dependencies"
step "install-deps" scripts/install-deps.sh build

if ! skip format; then
	if command -v "${CLANG_FORMAT:-clang-format}" >/dev/null; then
		phase "format"
		step "format-check" m format-check
	else
		echo "format-check skipped: no clang-format"
	fi
fi

build_and_test tests build/check allformats_defconfig "all tests" test-bins

# The benchmarks are only built here (`make bench` runs them).
if compgen -G 'bench/*.c' >/dev/null; then
	step "benches: build" m O=build/check benches
fi

# The hosted one-format configurations: their tests, tools and benches
# compiled -fsyntax-only (make syntax-check, mk/configs.mk; a few seconds of
# CPU each), which catches what only shows without the other formats (a
# variable used only under #if CONFIG_S2_FMT_...). Their test programs run
# only by hand (docs/testing.md).
if ! skip configs; then
	for d in defconfig x86_64_defconfig arm64_defconfig riscv64_defconfig; do
		o=build/check-cfg-${d%_defconfig}
		phase "one-format syntax $d ($o)"
		step "syntax $d" bash -c 'scripts/configure.sh "$1" "$2" &&
			'"$make"' --no-print-directory -s -j'"$jobs"' O="$1" syntax-check' _ "$o" "$d"
	done
fi

if ! skip asan; then
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
	build_and_test asan build/check-asan allformats_defconfig "all tests" test-bins \
		SANITIZE=address,undefined
fi

if ! skip tsan; then
	tsan_opts="halt_on_error=1:second_deadlock_stack=1"
	[ -f tests/tsan.supp ] && tsan_opts="$tsan_opts:suppressions=$PWD/tests/tsan.supp"
	export TSAN_OPTIONS=${TSAN_OPTIONS:-$tsan_opts}
	build_and_test tsan build/check-tsan allformats_defconfig "lib tests-mt" test-mt-bins \
		SANITIZE=thread
fi

# A brief libFuzzer run over the corpus in the tree (mk/fuzz.mk; `make fuzz`
# runs longer). Built with clang in build/check-fuzz.
if ! skip fuzz; then
	phase "fuzz (build/check-fuzz, ${FUZZ_SECONDS:-20}s)"
	step "fuzz" m FUZZ_O=build/check-fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-20}" fuzz
fi

if ! skip freestanding; then
	for arch in x86_64 aarch64 riscv64; do
		o=build/check-fs-$arch
		# riscv64 with the call trace compiled in (CONFIG_S2_TRACE):
		# it must build freestanding too.
		tweak=()
		[ "$arch" = riscv64 ] && tweak=(--enable S2_TRACE)
		phase "freestanding $arch ($o, ${arch}_freestanding_defconfig ${tweak[*]})"
		step "freestanding $arch" bash -c '
			o=$1 d=$2; shift 2
			scripts/configure.sh "$o" "$d" "$@" &&
			'"$make"' --no-print-directory -j'"$jobs"' O="$o" lib &&
			scripts/check-freestanding.sh "$o"' _ "$o" "${arch}_freestanding_defconfig" "${tweak[@]}"
	done
fi

if ! skip conformance; then
	phase "conformance"
	# The runners count themselves (S2_TALLY); a failure before any runner
	# ran still counts as one failed step.
	before=$(wc -l <"$tally")
	# examples/riscv64-qemu/trace.sh replays with this s2mmu (else it builds one).
	[ -x build/check/tools/s2mmu/s2mmu ] && export S2MMU=$PWD/build/check/tools/s2mmu/s2mmu
	if ! S2_PHASE=conformance m conformance && [ "$(wc -l <"$tally")" -eq "$before" ]; then
		echo "0 1" >>"$tally"
	fi
fi

read -r passed failed < <(awk '{ p += $1; f += $2 } END { print p + 0, f + 0 }' "$tally")
printf '\n== make check took %ds\n' $(($(date +%s) - started))
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
