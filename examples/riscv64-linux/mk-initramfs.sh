#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# mk-initramfs.sh BUSYBOX OUT: the riscv64 Linux guest's initramfs (cpio
# newc, gzip), written here without cpio(1): /bin/busybox, /dev/console and
# our test init (init.sh beside this script).
#
# The init prints LX-BOOTED, then runs the checksumming memory workload:
# lxrounds=N rounds (kernel command line) of writing a 2 MiB file of random
# bytes to the RAM-backed root, recording its md5 and checking every file
# written so far; then MEMCHECK-OK or MEMCHECK-FAIL, and poweroff (SBI SRST).
# lxshell on the command line gives an interactive shell instead of the
# poweroff (make run GUEST=linux on a terminal).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bb=$1
out=$2
tmp=$out.tmp
: >"$tmp"
ino=1

# One newc entry: name, mode (octal), file with the data (or empty), rdev major:minor.
entry() {
	local name=$1 mode=$2 data=${3:-} rmaj=${4:-0} rmin=${5:-0} size=0 nlen pad
	[ -n "$data" ] && size=$(stat -c %s "$data")
	nlen=$((${#name} + 1))
	printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
		$ino $((8#$mode)) 0 0 1 0 "$size" 0 0 "$rmaj" "$rmin" "$nlen" 0 >>"$tmp"
	printf '%s\0' "$name" >>"$tmp"
	pad=$(((4 - (110 + nlen) % 4) % 4))
	head -c "$pad" /dev/zero >>"$tmp"
	if [ -n "$data" ]; then
		cat "$data" >>"$tmp"
		head -c $(((4 - size % 4) % 4)) /dev/zero >>"$tmp"
	fi
	ino=$((ino + 1))
}

entry . 040755
entry bin 040755
entry dev 040755
entry proc 040755
entry sys 040755
entry tmp 041777
entry dev/console 020600 "" 5 1
entry bin/busybox 0100755 "$bb"
entry init 0100755 "$here/init.sh"
entry TRAILER!!! 0
# The archive is padded to a multiple of 512 bytes, as cpio does.
head -c $(((512 - $(stat -c %s "$tmp") % 512) % 512)) /dev/zero >>"$tmp"
gzip -9 -n <"$tmp" >"$out"
rm -f "$tmp"
