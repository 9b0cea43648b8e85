# Sourced by tests/cli/*.sh. The wrapper mk/tools.mk generates sets
# S2MMU (this build's tool), S2_SRCTREE, S2_O, S2_MAKE and S2_SAN_CFLAGS.
set -u
: "${S2MMU:?run through make test (the wrapper sets S2MMU)}"
S2_SRCTREE=${S2_SRCTREE:-$(cd "$(dirname "$0")/../.." && pwd)}
TRACES=$S2_SRCTREE/tests/cli/traces
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0
checks=0

fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

# run EXPECTED-RC CMD...: runs CMD with output in $TMP/out and $TMP/err.
run() {
	local want=$1 rc
	shift
	checks=$((checks + 1))
	"$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		fail "exit $rc, want $want: $*"
		sed 's/^/    out| /' "$TMP/out" | head -n 20
		sed 's/^/    err| /' "$TMP/err" | head -n 20
		return 1
	fi
	return 0
}

# has PATTERN [FILE]: the last output (or FILE) contains the fixed string.
has() {
	checks=$((checks + 1))
	grep -qF -- "$1" "${2:-$TMP/out}" || fail "output lacks '$1' (${2:-stdout} of the last run)"
}

hasnt() {
	checks=$((checks + 1))
	! grep -qF -- "$1" "${2:-$TMP/out}" || fail "output has '$1' (${2:-stdout} of the last run)"
}

# le64 VALUE...: the little-endian bytes of each 64-bit VALUE.
le64() {
	local v h i
	for v in "$@"; do
		h=$(printf '%016x' "$v")
		for i in 14 12 10 8 6 4 2 0; do
			printf "\\x${h:$i:2}"
		done
	done
}

# zeros N: N zero bytes.
zeros() {
	head -c "$1" /dev/zero
}

# built FMT: this build's library has format FMT (x86-ept, arm64-s2, ...),
# so replay can run its traces. A one-format build (configs/arm64_defconfig)
# replays only its own; the tool's decode and dump read every format.
built() {
	grep -qx "CONFIG_S2_FMT_$(printf '%s' "$1" | tr 'a-z-' 'A-Z_')=y" "$S2_O/.config"
}

# built_trace FILE: FILE's VM (its `vm fmt=` line) is of a built format;
# says it is skipped otherwise.
built_trace() {
	local f
	f=$(sed -n 's/^vm fmt=\([a-z0-9-]*\).*/\1/p' "$1" | head -n 1)
	built "$f" && return 0
	echo "skipped: $(basename "$1") (no $f in this build)"
	return 1
}

finish() {
	echo "$checks checks, $failures failed"
	[ "$failures" -eq 0 ]
}
