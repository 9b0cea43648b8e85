#!/usr/bin/env bash
# check-freestanding.sh O
#
# The freestanding library in O (built with `make O=... lib`) must reach the
# host only through the env ops struct: after linking all its objects
# together, the only symbols left undefined may be the four functions GCC
# needs from any freestanding environment (memcpy, memmove, memset, memcmp),
# not even libgcc's helpers, and an aarch64 build has no FP/SIMD
# instruction (docs/embedding.md: the library never touches those
# registers).
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
# No libgcc helper either: on aarch64 some use FP/SIMD registers
# (__popcountdi2: fmov d0 / cnt / addv), which a hypervisor's world switch
# need not save, so a call from the library would change the guest's
# registers under it (examples/arm64-linux found one such call in its own
# code). The library is built -mgeneral-regs-only; the helpers are not.
libdefined=$("$nm" --defined-only -g "$lib" 2>/dev/null | awk 'NF == 3 { print $3 }' | sort -u)
helpers=$(comm -23 <(echo "$undefined") <(printf '%s\n%s\n' "$libdefined" "$allowed" | sort -u) |
	sed '/^$/d' | tr '\n' ' ')
if [ -n "$helpers" ]; then
	echo "$lib: calls libgcc helpers, which may use FP/SIMD registers: $helpers" >&2
	exit 1
fi
# And no FP/SIMD instruction of its own on aarch64 (v/q/d/s/h/b registers,
# FPSR, FPCR), whatever the flags say.
case "$cc" in
*aarch64*)
	objdump=${cc%gcc}objdump
	fp=$("$objdump" -d --no-show-raw-insn "$lib" | awk '
		/^[0-9a-f]+ <.*>:$/ { fn = $2; next }
		/^ *[0-9a-f]+:\t/ {
			n = split($0, f, "\t")
			ins = f[2] " " (n > 2 ? f[3] : "")
			gsub(/<[^>]*>/, "", ins)
			sub(/\/\/.*/, "", ins)
			# A branch or address target is a hex number, not a register.
			if (ins ~ /^(b|bl|b\.[a-z]+|cbn?z|tbn?z|adrp?)[ \t]/)
				sub(/[0-9a-f]+[ \t]*$/, "", ins)
			if ((ins ~ /(^|[^a-z0-9_.])[qvdshb][0-9][0-9]?([^a-z0-9_]|$)/ ||
			     ins ~ /fpsr|fpcr/) && shown++ < 5)
				print fn " " $0
		}')
	if [ -n "$fp" ]; then
		echo "$lib: FP/SIMD instructions (the embedder's world switch need not save those registers):" >&2
		echo "$fp" >&2
		exit 1
	fi
	;;
esac
echo "$lib: $members objects, no undefined symbols beyond mem*, no FP/SIMD instruction"
