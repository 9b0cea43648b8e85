#!/usr/bin/env bash
# check-freestanding.sh O
#
# The freestanding library in O (built with `make O=... lib`) must reach the
# host only through the env ops struct: after linking all its objects
# together, the only symbols left undefined may be libgcc's helpers and the
# four functions GCC needs from any freestanding environment (memcpy,
# memmove, memset, memcmp).
set -euo pipefail
cd "$(dirname "$0")/.."
o=$1
make=${MAKE:-make}
lib="$o/libs2mmu.a"
cc=$($make -s O="$o" print-CC)
nm=$($make -s O="$o" print-NM)
arch_cflags=$($make -s O="$o" print-ARCH_CFLAGS)

# shellcheck disable=SC2086
libgcc=$($cc $arch_cflags -print-libgcc-file-name)
defined=$( { "$nm" --defined-only -g "$lib" 2>/dev/null; [ -f "$libgcc" ] && "$nm" --defined-only -g "$libgcc" 2>/dev/null; } |
	awk 'NF == 3 { print $3 }' | sort -u)
undefined=$("$nm" -u "$lib" | awk 'NF == 2 && $1 == "U" { print $2 }' | sort -u)
allowed=$(printf '%s\n' memcpy memmove memset memcmp)
extra=$(comm -23 <(echo "$undefined") <(printf '%s\n%s\n' "$defined" "$allowed" | sort -u) | sed '/^$/d')
members=$(ar t "$lib" | wc -l)
if [ -n "$extra" ]; then
	echo "$lib: symbols a freestanding build cannot have (a libc call, or an" >&2
	echo "__atomic_* libcall: gcc 12 does not inline atomics narrower than 32 bits on" >&2
	echo "riscv64, and bare metal has no libatomic; use 32/64-bit atomics):" >&2
	for s in $extra; do
		printf '  %s (used by %s)\n' "$s" "$("$nm" -A -u "$lib" | awk -v s="$s" '$NF == s { split($1, f, ":"); print f[2] }' | sort -u | tr '\n' ' ')" >&2
	done
	exit 1
fi
echo "$lib: $members objects, no undefined symbols beyond libgcc and mem*"
