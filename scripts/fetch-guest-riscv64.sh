#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The riscv64 Linux guest's pieces for examples/riscv64-linux: Debian 13
# (trixie) has a riscv64 kernel, Debian 12 has none. Downloads (never
# installs) the kernel package the metapackage linux-image-riscv64 names and
# busybox-static, with apt's state kept under $LX_RV_CACHE (a private package
# source, lists and dpkg status: scripts/lib/private-apt.sh; the host's apt
# configuration and package set are not touched), and leaves there:
#   Image     the raw RISC-V kernel Image ("RSC\x05" at 0x38)
#   busybox   the static riscv64 busybox
#   VERSION   the two package versions
# A second run with both files present does nothing and needs no network.
# The mirror is $MIRROR, else the first Debian URI of the host's own sources.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
C=${LX_RV_CACHE:-$here/build/lx-rv-guest}
if [ -s "$C/Image" ] && [ -s "$C/busybox" ] && [ -s "$C/VERSION" ]; then
	exit 0
fi
for t in apt-get apt-cache dpkg-deb; do
	command -v "$t" >/dev/null || {
		echo "fetch-guest-riscv64: $t missing (Debian's apt and dpkg are needed)" >&2
		exit 1
	}
done
# shellcheck source=scripts/lib/private-apt.sh
. "$here/scripts/lib/private-apt.sh"
papt_host_mirrors
[ -n "$MIRROR" ] || {
	echo "fetch-guest-riscv64: no Debian mirror in the host's apt sources: set MIRROR=<url>" >&2
	exit 1
}
papt_init "$C/apt" riscv64 "deb $MIRROR trixie main"
papt_update fetch-guest-riscv64 "$C/apt-update.log"
# The metapackage names the current kernel package.
kpkg=$(papt_depends_kernel linux-image-riscv64)
[ -n "$kpkg" ] || {
	echo "fetch-guest-riscv64: linux-image-riscv64 names no kernel package" >&2
	exit 1
}
echo "fetch-guest-riscv64: $kpkg and busybox-static (riscv64) from trixie"
papt_download fetch-guest-riscv64 "$C/debs" "$C/download.log" "$kpkg" busybox-static
kdeb=$(ls -1 "$C"/debs/"$kpkg"_*_riscv64.deb | tail -1)
bdeb=$(ls -1 "$C"/debs/busybox-static_*_riscv64.deb | tail -1)
x=$C/x
rm -rf "$x" && mkdir -p "$x/k" "$x/b"
dpkg-deb -x "$kdeb" "$x/k"
dpkg-deb -x "$bdeb" "$x/b"
# trixie ships boot/vmlinux-<version>: already the raw Image (PE/EFI-stub
# header, uncompressed); gunzip in case a later one is gzip.
img=$(ls -1 "$x"/k/boot/vmlinu* | head -1)
if gzip -t "$img" 2>/dev/null; then
	gunzip -c "$img" >"$C/Image.tmp"
else
	cp "$img" "$C/Image.tmp"
fi
magic=$(dd if="$C/Image.tmp" bs=1 skip=56 count=4 2>/dev/null | od -An -tx1 | tr -d ' \n')
[ "$magic" = 52534305 ] || {
	echo "fetch-guest-riscv64: $img is not a raw RISC-V Image (magic $magic at 0x38)" >&2
	exit 1
}
cp "$(ls -1 "$x"/b/usr/bin/busybox "$x"/b/bin/busybox 2>/dev/null | head -1)" "$C/busybox.tmp"
cp "$(ls -1 "$x"/k/boot/config-* | head -1)" "$C/kernel.config"
mv "$C/Image.tmp" "$C/Image"
mv "$C/busybox.tmp" "$C/busybox"
{
	dpkg-deb -f "$kdeb" Package Version
	dpkg-deb -f "$bdeb" Package Version
} >"$C/VERSION"
rm -rf "$x"
echo "fetch-guest-riscv64: $(tr '\n' ' ' <"$C/VERSION")-> $C/Image ($(stat -c %s "$C/Image") bytes), $C/busybox"
