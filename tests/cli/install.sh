#!/usr/bin/env bash
# make install into a temporary DESTDIR, then build a small consumer outside
# the tree with `pkg-config --cflags --libs s2mmu` and run it, and run the
# installed s2mmu. The consumer compares a result with -EINVAL through the
# umbrella header alone, and the installed headers hold only this build's
# formats and environment. In the plain (unsanitized) build it does the same
# for a one-format build (arm64_defconfig), whose install must lack the other
# formats' headers. Mutations seen failing: s2mmu.h without s2mmu/errno.h
# (the consumer does not compile), install copying every header (the
# one-format build installs x86-ept.h), the install-s2mmu rule dropped,
# kvm_flush_pml_buffer and every format's name string built into the
# arm64-only library (scripts/nm-one-format.sh names them).
. "$(dirname "$0")/lib/common.sh"
unset MAKEFLAGS MFLAGS MAKELEVEL

# Packaging, not memory safety: the plain build's run covers it, and under
# a sanitizer the install rebuilt the library (four minutes of make check).
if [ -n "${S2_SANITIZE:-}" ]; then
	echo "install: checked in the unsanitized build only"
	exit 0
fi

cat >"$TMP/consumer.c" <<'C'
#include <stdio.h>
#include <s2mmu/s2mmu.h>
#include <s2mmu/env-hosted.h>

int main(void)
{
	struct s2_hosted h;
	struct kvm_vm_params p = { .fmt = (enum s2_fmt_id)99, .gpa_bits = 48 };
	struct kvm *kvm;

	s2_hosted_init(&h);
	p.env = &h.env;
	/* An unknown format is refused with -EINVAL, from the umbrella header. */
	if (kvm_create_vm(&p, &kvm) != -EINVAL)
		return 1;
	for (int f = 1; f <= 5; f++) {
		p.fmt = (enum s2_fmt_id)f;
		p.gpa_bits = f == S2_FMT_RISCV_G ? 50 : 48;
		if (!s2_fmt_supported(p.fmt))
			continue;
		if (kvm_create_vm(&p, &kvm))
			return 2;
		printf("created a %s VM\n", s2_fmt_name(p.fmt));
		kvm_destroy_vm(kvm);
	}
	s2_hosted_quiesce(&h);
	return 0;
}
C

# install_and_consume O NAME: install build O, build and run the consumer.
# O as the build itself was given it (relative to the source tree when it
# is inside): the flags file records -I$(O)/include, and an absolute O
# would differ from the build's and recompile the whole library.
install_and_consume() {
	local o=$1 name=$2 root=$TMP/root-$2
	case "$o" in
	"$S2_SRCTREE"/*) o=${o#"$S2_SRCTREE"/} ;;
	esac
	run 0 $S2_MAKE -s -C "$S2_SRCTREE" O="$o" SANITIZE="${S2_SANITIZE:-}" \
		CFLAGS="${S2_CFLAGS:--O2 -g}" EXTRA_CFLAGS="${S2_EXTRA_CFLAGS:-}" \
		install DESTDIR="$root" PREFIX=/usr || return 1
	for f in usr/bin/s2mmu usr/lib/libs2mmu.a usr/lib/pkgconfig/s2mmu.pc \
		usr/include/s2mmu/s2mmu.h usr/include/s2mmu/generated/autoconf.h; do
		checks=$((checks + 1))
		[ -e "$root/$f" ] || fail "$name: $f not installed"
	done
	checks=$((checks + 1))
	[ -e "$root/usr/include/s2mmu/env-freestanding.h" ] &&
		fail "$name: a hosted build installs env-freestanding.h"
	local flags
	flags=$(PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_LIBDIR=$root/usr/lib/pkgconfig \
		pkg-config --cflags --libs s2mmu) || { fail "$name: pkg-config failed"; return 1; }
	# shellcheck disable=SC2086
	run 0 ${S2_CC:-cc} -std=c11 -Wall -Werror ${S2_SAN_CFLAGS:-} -o "$TMP/consumer-$name" \
		"$TMP/consumer.c" $flags || return 1
	run 0 "$TMP/consumer-$name"
	has "created a"
	run 0 "$root/usr/bin/s2mmu" decode --fmt arm64 0x01800000400007ff
	has 'leaf 4 KiB -> 0x40000000'
}

install_and_consume "$S2_O" hosted
# Every format header of this build is there.
for h in x86-ept x86-npt arm64-s2 riscv-g; do
	if grep -q "^CONFIG_S2_FMT_$(echo $h | tr 'a-z-' 'A-Z_')=y" "$S2_O/.config"; then
		checks=$((checks + 1))
		[ -e "$TMP/root-hosted/usr/include/s2mmu/$h.h" ] || fail "hosted: $h.h not installed"
	fi
done

# A one-format build (only in the unsanitized run: it compiles the library).
if [ -z "${S2_SANITIZE:-}" ]; then
	o1=$TMP/build-arm64
	run 0 $S2_MAKE -s -C "$S2_SRCTREE" O="$o1" arm64_defconfig &&
		run 0 $S2_MAKE -s -C "$S2_SRCTREE" O="$o1" -j2 lib tools &&
		install_and_consume "$o1" arm64
	for h in x86-ept x86-npt riscv-g; do
		checks=$((checks + 1))
		[ -e "$TMP/root-arm64/usr/include/s2mmu/$h.h" ] &&
			fail "arm64_defconfig installs $h.h, whose functions it lacks"
	done
	# No other format's code, API or name in the library (nm).
	run 0 bash "$S2_SRCTREE/scripts/nm-one-format.sh" "$o1"
	has 'holds only its formats (ARM64_S2 )'
fi
finish
