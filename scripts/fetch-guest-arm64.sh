#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The arm64 Linux guest's pieces for examples/arm64-linux: Debian 12
# (bookworm) kernel and busybox-static. Downloads (never installs) the
# -unsigned image package of the kernel the metapackage linux-image-arm64
# currently names, and busybox-static, with apt's state kept under
# $LX_ARM64_CACHE (default build/lx-arm64-guest): a private package source
# list, lists, cache and an empty dpkg status (scripts/lib/private-apt.sh),
# so the host's apt configuration, architectures and package set are not
# touched. Leaves:
#   Image          the raw arm64 kernel Image ("ARMd" at 0x38)
#   busybox        the static aarch64 busybox
#   kernel.config  the kernel's configuration
#   VERSION        the two package names and versions
# A second run with those present does nothing and needs no network.
# Mirrors: $MIRROR and $SECURITY_MIRROR, else the host's own Debian URIs.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
C=${LX_ARM64_CACHE:-$here/build/lx-arm64-guest}
if [ -s "$C/Image" ] && [ -s "$C/busybox" ] && [ -s "$C/VERSION" ]; then
	exit 0
fi
for t in apt-get apt-cache dpkg-deb gzip; do
	command -v "$t" >/dev/null || {
		echo "fetch-guest-arm64: $t missing (Debian's apt and dpkg are needed)" >&2
		exit 1
	}
done
# shellcheck source=scripts/lib/private-apt.sh
. "$here/scripts/lib/private-apt.sh"
papt_host_mirrors
[ -n "$MIRROR" ] || {
	echo "fetch-guest-arm64: no Debian mirror in the host's apt sources: set MIRROR=<url>" >&2
	exit 1
}
suites=("deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main")
[ -z "$SECURITY_MIRROR" ] || suites+=("deb $SECURITY_MIRROR bookworm-security main")
papt_init "$C/apt" arm64 "${suites[@]}"
papt_update fetch-guest-arm64 "$C/apt-update.log"
# linux-image-arm64 depends on linux-image-6.1.0-N-arm64 (the signed build);
# the same kernel unsigned is that name with -unsigned.
signed_pkg=$(papt_depends_kernel linux-image-arm64)
[ -n "$signed_pkg" ] || {
	echo "fetch-guest-arm64: linux-image-arm64 names no kernel package" >&2
	exit 1
}
kpkg=${signed_pkg%-unsigned}-unsigned
echo "fetch-guest-arm64: $kpkg and busybox-static (arm64) from bookworm"
papt_download fetch-guest-arm64 "$C/debs" "$C/download.log" "$kpkg" busybox-static
kdeb=$(ls -1 "$C"/debs/"$kpkg"_*_arm64.deb | tail -1)
bdeb=$(ls -1 "$C"/debs/busybox-static_*_arm64.deb | tail -1)
x=$C/x
rm -rf "$x" && mkdir -p "$x/k" "$x/b"
dpkg-deb -x "$kdeb" "$x/k"
dpkg-deb -x "$bdeb" "$x/b"
# bookworm's arm64 vmlinuz is the raw Image (EFI stub header); gunzip in
# case a build ships it compressed.
img=$(ls -1 "$x"/k/boot/vmlinuz-* | head -1)
if gzip -t "$img" 2>/dev/null; then
	gunzip -c "$img" >"$C/Image.tmp"
else
	cp "$img" "$C/Image.tmp"
fi
magic=$(dd if="$C/Image.tmp" bs=1 skip=56 count=4 2>/dev/null | od -An -tx1 | tr -d ' \n')
[ "$magic" = 41524d64 ] || {
	echo "fetch-guest-arm64: $img is not a raw arm64 Image (magic $magic at 0x38)" >&2
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
echo "fetch-guest-arm64: $(tr '\n' ' ' <"$C/VERSION")-> $C/Image ($(stat -c %s "$C/Image") bytes), $C/busybox"
