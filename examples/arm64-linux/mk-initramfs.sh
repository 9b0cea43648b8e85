#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# mk-initramfs.sh BUSYBOX INIT OUT: an uncompressed initramfs (cpio "newc",
# the format the kernel unpacks, written here without cpio(1)) holding
# /bin/busybox, /bin/sh -> busybox, /init (INIT), /dev/console and empty
# /proc /sys /dev /tmp. Uncompressed: the kernel unpacks it with no
# decompressor, and it is deterministic (mtime 0, owner root).
set -euo pipefail
bb=$1 init=$2 out=$3
ino=1
tmp=$out.tmp
: >"$tmp"
pad4() { # zero bytes to the next multiple of 4 of the archive's length
	local n=$(($(stat -c %s "$tmp") % 4))
	[ "$n" -eq 0 ] || head -c $((4 - n)) /dev/zero >>"$tmp"
}
# entry NAME MODE SIZE RDEVMAJ RDEVMIN [FILE|-TARGET]
entry() {
	local name=$1 mode=$2 size=$3 rmaj=$4 rmin=$5 src=${6:-}
	printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
		"$ino" "$mode" 0 0 1 0 "$size" 0 0 "$rmaj" "$rmin" $((${#name} + 1)) 0 >>"$tmp"
	printf '%s\0' "$name" >>"$tmp"
	pad4
	case $src in
	"") ;;
	-*) printf '%s' "${src#-}" >>"$tmp" ;;
	*) cat "$src" >>"$tmp" ;;
	esac
	pad4
	ino=$((ino + 1))
}
for d in bin dev proc sys tmp; do entry "$d" $((0040755)) 0 0 0; done
entry bin/busybox $((0100755)) "$(stat -c %s "$bb")" 0 0 "$bb"
entry bin/sh $((0120777)) 7 0 0 -busybox
entry init $((0100755)) "$(stat -c %s "$init")" 0 0 "$init"
entry dev/console $((0020600)) 0 5 1
entry 'TRAILER!!!' 0 0 0 0
mv "$tmp" "$out"
