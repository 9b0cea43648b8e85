#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The Linux guest of the x86 Linux examples (examples/x86-linux-npt,
# examples/x86-linux-ept): Debian bookworm's unmodified amd64 kernel (the
# bzImage of linux-image-6.1.0-N-amd64, as shipped) and busybox-static, fetched
# with a private apt state (scripts/lib/private-apt.sh: the host's package
# configuration is neither read for packages nor changed, nothing is
# installed), then a small initramfs.
#
#   scripts/fetch-guest-amd64.sh DIR
#
# leaves DIR/vmlinuz, DIR/busybox, DIR/msr.ko (the kernel's own MSR driver) and
# DIR/initramfs.cpio.gz (needs cpio: scripts/install-deps.sh emu). A second run with
# the files present does nothing (offline). The mirror is $MIRROR, or else the
# first ".../debian" URI of the host's apt sources; KPKG= picks a kernel
# package. The initramfs's /init comes from examples/x86-linux-npt/init.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
W=${1:?usage: $0 DIR}
mkdir -p "$W"
W=$(cd "$W" && pwd)
INIT=${INIT:-$here/../examples/x86-linux-npt/init.sh}

if [ ! -s "$W/vmlinuz" ] || [ ! -s "$W/busybox" ] || [ ! -s "$W/msr.ko" ]; then
	# shellcheck source=scripts/lib/private-apt.sh
	. "$here/lib/private-apt.sh"
	papt_host_mirrors
	MIRROR=${MIRROR:-http://deb.debian.org/debian}
	SECURITY=${SECURITY:-${SECURITY_MIRROR:-${MIRROR%/debian*}/debian-security}}
	papt_init "$W/apt" amd64 "deb $MIRROR bookworm main" "deb $SECURITY bookworm-security main"
	papt_update fetch-guest-amd64 "$W/apt-update.log"
	PKG=${KPKG:-$(papt_depends_kernel linux-image-amd64)}
	echo "fetch-guest-amd64: kernel package $PKG, busybox-static"
	papt_download fetch-guest-amd64 "$W/debs" "$W/download.log" "$PKG" busybox-static
	rm -rf "$W/kpkg" "$W/bbpkg"
	dpkg-deb -x "$(ls -1 "$W"/debs/"${PKG}"_*_amd64.deb | tail -1)" "$W/kpkg"
	dpkg-deb -x "$(ls -1 "$W"/debs/busybox-static_*_amd64.deb | tail -1)" "$W/bbpkg"
	cp "$(ls -1 "$W"/kpkg/boot/vmlinuz-* | head -1)" "$W/vmlinuz.tmp"
	cp "$(ls -1 "$W"/bbpkg/usr/bin/busybox "$W"/bbpkg/bin/busybox 2>/dev/null | head -1)" \
		"$W/busybox.tmp"
	# The msr driver: the guest's /init tries to take the host through MSRs.
	cp "$(ls -1 "$W"/kpkg/lib/modules/*/kernel/arch/x86/kernel/msr.ko | head -1)" "$W/msr.ko"
	mv "$W/busybox.tmp" "$W/busybox"
	mv "$W/vmlinuz.tmp" "$W/vmlinuz"
	rm -rf "$W/kpkg" "$W/bbpkg"
fi

# The bzImage's magic "HdrS" at 0x202 (boot protocol setup header).
[ "$(dd if="$W/vmlinuz" bs=1 skip=514 count=4 2>/dev/null)" = HdrS ] ||
	{ echo "fetch-guest-amd64: $W/vmlinuz is no bzImage" >&2; exit 1; }

# The initramfs, rebuilt when init.sh or busybox is newer.
if [ ! -s "$W/initramfs.cpio.gz" ] || [ "$INIT" -nt "$W/initramfs.cpio.gz" ] ||
	[ "$W/busybox" -nt "$W/initramfs.cpio.gz" ] || [ "$W/msr.ko" -nt "$W/initramfs.cpio.gz" ]; then
	R=$W/initramfs-root
	rm -rf "$R"
	mkdir -p "$R"/bin "$R"/proc "$R"/sys "$R"/dev "$R"/tmp
	cp "$W/busybox" "$R/bin/busybox"
	cp "$W/msr.ko" "$R/msr.ko"
	ln -s busybox "$R/bin/sh"
	cp "$INIT" "$R/init"
	chmod 755 "$R/init"
	# No /dev/console here: the kernel's built-in initramfs has it.
	(cd "$R" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$W/initramfs.cpio.tmp"
	gzip -9n <"$W/initramfs.cpio.tmp" >"$W/initramfs.cpio.gz"
	rm -f "$W/initramfs.cpio.tmp"
fi
ls -l "$W/vmlinuz" "$W/initramfs.cpio.gz" | awk '{print "fetch-guest-amd64: " $5 " " $NF}'
