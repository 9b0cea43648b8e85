#!/usr/bin/env bash
# Installs what s2mmu's build, tests and examples need on Debian 12, and nothing
# that is already there. Idempotent: a second run installs nothing.
#   scripts/install-deps.sh            everything (build, tests, cross, emulators)
#   scripts/install-deps.sh build      only what the host library, tests and the
#                                      freestanding cross-compile check need
#   scripts/install-deps.sh emu        only the emulators of `make conformance`
#   scripts/install-deps.sh plot       gnuplot for `make bench-plot` (not in "all")
set -eu

build_pkgs="make gcc pkg-config kconfig-frontends-nox libcmocka-dev liburcu-dev
            libcapstone-dev clang libclang-rt-14-dev clang-format
            gcc-aarch64-linux-gnu gcc-riscv64-linux-gnu binutils-aarch64-linux-gnu
            binutils-riscv64-linux-gnu"
emu_pkgs="qemu-system-arm qemu-system-misc qemu-system-x86 bochs bochsbios vgabios cpio"

plot_pkgs="gnuplot-nox"

case "${1:-all}" in
build) want="$build_pkgs" ;;
plot) want="$plot_pkgs" ;;
emu) want="$emu_pkgs" ;;
all) want="$build_pkgs $emu_pkgs" ;;
*) echo "usage: $0 [build|emu|plot|all]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
