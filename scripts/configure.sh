#!/usr/bin/env bash
# configure.sh O NAME_defconfig [kconfig-tweak args...]
#
# Writes O/.config from configs/NAME_defconfig, applies kconfig-tweak options
# (e.g. --disable S2_DEBUG) and settles it with olddefconfig. When the result
# equals the .config already there, the old file (and its time stamp) is kept,
# so a repeated `make check` or `make bench` rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
o=$1 defconfig=$2
shift 2
make=${MAKE:-make}

prev=""
if [ -f "$o/.config" ]; then
	prev=$(mktemp)
	cp -p "$o/.config" "$prev"
fi
$make --no-print-directory -s O="$o" "$defconfig"
if [ $# -gt 0 ]; then
	kconfig-tweak --file "$o/.config" "$@"
	$make --no-print-directory -s O="$o" olddefconfig
fi
if [ -n "$prev" ]; then
	if cmp -s "$prev" "$o/.config"; then
		cp -p "$prev" "$o/.config"
	fi
	rm -f "$prev"
fi
