#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The arm64 Linux guest's pieces for examples/arm64-linux: Debian 12
# (bookworm) kernel and busybox-static. Downloads (never installs) the
# -unsigned image package of the kernel the metapackage linux-image-arm64
# currently names, and busybox-static, with apt's state kept under
# $LX_ARM64_CACHE (default build/lx-arm64-guest): a private package source
# list, lists, cache and an empty dpkg status, so the host's apt
# configuration, architectures and package set are not touched. Leaves:
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
# The host's Debian URIs (deb822 or one-line form), the archive and security.
host_uris() {
	{ grep -rhoE '(URIs:[[:space:]]*|^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)https?://[^[:space:]]+' \
		/etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null || true; } |
		sed -E 's/^(URIs:[[:space:]]*|deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)//'
}
MIRROR=${MIRROR:-$(host_uris | grep -E '/debian/?$' | head -1)}
SECURITY_MIRROR=${SECURITY_MIRROR:-$(host_uris | grep -E '/debian-security/?$' | head -1)}
[ -n "$MIRROR" ] || {
	echo "fetch-guest-arm64: no Debian mirror in the host's apt sources: set MIRROR=<url>" >&2
	exit 1
}
A=$C/apt
mkdir -p "$A"/lists/partial "$A"/cache/archives/partial "$A"/etc "$A"/state "$C"/debs
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
signed=""
[ -r "$keyring" ] && signed="[signed-by=$keyring] "
{
	echo "deb ${signed}$MIRROR bookworm main"
	echo "deb ${signed}$MIRROR bookworm-updates main"
	[ -z "$SECURITY_MIRROR" ] || echo "deb ${signed}$SECURITY_MIRROR bookworm-security main"
} >"$A/etc/sources.list"
: >"$A/state/status"
apt=(-o "Dir::Etc::SourceList=$A/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null
	-o "Dir::State=$A/state" -o "Dir::State::Lists=$A/lists" -o "Dir::State::status=$A/state/status"
	-o "Dir::Cache=$A/cache" -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
	-o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o Debug::NoLocking=1
	-o APT::Sandbox::User=root)
if ! ls "$A"/lists/*Packages* >/dev/null 2>&1; then
	echo "fetch-guest-arm64: apt-get update (private state in $A)"
	apt-get -q "${apt[@]}" update >"$C/apt-update.log" 2>&1 || {
		cat "$C/apt-update.log" >&2
		exit 1
	}
fi
# linux-image-arm64 depends on linux-image-6.1.0-N-arm64 (the signed build);
# the same kernel unsigned is that name with -unsigned.
signed_pkg=$(apt-cache "${apt[@]}" depends linux-image-arm64 |
	awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[ -n "$signed_pkg" ] || {
	echo "fetch-guest-arm64: linux-image-arm64 names no kernel package" >&2
	exit 1
}
kpkg=${signed_pkg%-unsigned}-unsigned
echo "fetch-guest-arm64: $kpkg and busybox-static (arm64) from bookworm"
(cd "$C/debs" && apt-get -q "${apt[@]}" download "$kpkg" busybox-static) >"$C/download.log" 2>&1 || {
	cat "$C/download.log" >&2
	exit 1
}
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
