#!/usr/bin/env bash
# s2mmu dump: images the hosted library made (replay --image-out) give the
# same runs as replay's own dump and the same leaf count as the library's
# stats; hand-made images with known contents; hand-broken images (a loop, a
# table outside the image, reserved bits, truncated and empty images, random
# bytes for every format) are reported with exit 1 and never crash (this
# runs under ASan in make check's asan step). Mutations seen failing: the
# visited-table set disabled (the loop images are then walked through
# without a report), the EPT memory type read from the wrong bits.
. "$(dirname "$0")/lib/common.sh"

EPT_TABLE=0x7		# RWX table entry
EPT_LEAF=0x4800000000000037 # RWX WB leaf, host- and MMU-writable

## A hand-made EPT image at 0x100000: root, PDPT, PD, PT (4 pages) and
## 3 leaves: gpa 0 and 0x1000 -> 0x5000000, 0x5001000 (one run), gpa 0x2000
## -> 0x7000000 (a new run: hpa not contiguous); a 2 MiB leaf at 0x200000.
base=0x100000
{
	le64 $((0x101000 | EPT_TABLE)); zeros $((4096 - 8))	# PML4 -> PDPT
	le64 $((0x102000 | EPT_TABLE)); zeros $((4096 - 8))	# PDPT -> PD
	le64 $((0x103000 | EPT_TABLE)) $((0x40000000 | 0xb7 | (1 << 59) | (1 << 62)))
	zeros $((4096 - 16))					# PD: PT, 2 MiB leaf
	le64 $((0x5000000 | EPT_LEAF)) $((0x5001000 | EPT_LEAF)) $((0x7000000 | EPT_LEAF))
	zeros $((4096 - 24))
} >"$TMP/ept.img"
run 0 "$S2MMU" dump --fmt x86-ept --root 0x100000 --image-base $base --image "$TMP/ept.img"
has 'gpa 0x000000000000-0x000000002000 -> hpa 0x000005000000-0x000005002000    4K x2'
has 'gpa 0x000000002000-0x000000003000 -> hpa 0x000007000000-0x000007001000    4K x1'
has 'gpa 0x000000200000-0x000000400000 -> hpa 0x000040000000-0x000040200000    2M x1'
has '3 runs, 0x203000 bytes mapped, 0 problems'
run 0 "$S2MMU" dump --json --eptp 0x10001e --image-base $base --image "$TMP/ept.img"
has '"runs_total":3'; has '"1":{"tables":1,"leaves":3,"special":0}'
# --range keeps only the runs that start inside [start, end).
run 0 "$S2MMU" dump --fmt ept --root 0x100000 --image-base $base --image "$TMP/ept.img" \
	--range 0x1000-0x3000
has '4K x1'; hasnt '2M x1'; has '2 runs'

## Broken images: every one exits 1 with the problem named, none crashes.
# A loop: the PD entry 0 points back at the root.
{
	le64 $((0x101000 | EPT_TABLE)); zeros $((4096 - 8))
	le64 $((0x102000 | EPT_TABLE)); zeros $((4096 - 8))
	le64 $((0x100000 | EPT_TABLE)) $((0x102000 | EPT_TABLE)); zeros $((4096 - 16))
} >"$TMP/loop.img"
run 1 timeout 20 "$S2MMU" dump --fmt ept --root 0x100000 --image-base $base --image "$TMP/loop.img"
has 'table reached twice'
# A table outside the image, one straddling its end, a root outside.
{ le64 $((0x900000 | EPT_TABLE)) $((0x100ff8 | EPT_TABLE)); zeros $((4096 - 16)); } >"$TMP/out.img"
run 1 "$S2MMU" dump --fmt ept --root 0x100000 --image-base $base --image "$TMP/out.img"
has 'table outside the image'
run 1 "$S2MMU" dump --fmt ept --root 0x0 --image-base $base --image "$TMP/out.img"
has 'table outside the image'
run 1 "$S2MMU" dump --fmt ept --root 0xfffffffffffff000 --image-base $base --image "$TMP/out.img"
# Reserved bits: memory type 2 in a leaf, PS at level 4.
{ le64 $((0x101000 | 0x87)); zeros $((4096 - 8)); } >"$TMP/rsvd.img"
run 1 "$S2MMU" dump --fmt ept --root 0x100000 --image-base $base --image "$TMP/rsvd.img"
has 'PS set at level 4'
# A truncated root (100 bytes) and an empty image.
head -c 100 "$TMP/ept.img" >"$TMP/short.img"
run 1 "$S2MMU" dump --fmt ept --root 0x100000 --image-base $base --image "$TMP/short.img"
has 'table outside the image'
: >"$TMP/empty.img"
run 1 "$S2MMU" dump --fmt ept --root 0 --image "$TMP/empty.img"
# Random bytes, read as every format: whatever they say, exit 0 or 1.
head -c 65536 /dev/urandom >"$TMP/rand.img"
for args in "--fmt ept" "--fmt npt" "--fmt arm64 --gpa-bits 40" "--fmt arm64 --granule 65536" \
	"--fmt riscv" "--fmt riscv --levels 5" "--fmt ept --levels 5"; do
	# shellcheck disable=SC2086
	run 1 "$S2MMU" dump $args --root 0x4000 --image "$TMP/rand.img"
done
# Every table entry pointing at the root (512-way loop at each level).
for i in $(seq 512); do le64 $((0x100000 | EPT_TABLE)); done >"$TMP/self.img"
run 1 timeout 20 "$S2MMU" dump --fmt ept --root 0x100000 --image-base $base --image "$TMP/self.img"
has 'table reached twice'

## Images the library made: replay saves its table arena; dump of it must
## print what replay --dump printed, and find no problem.
for t in "$TRACES"/*.trace; do
	name=$(basename "$t" .trace)
	built_trace "$t" || continue
	run 0 "$S2MMU" replay --dump --image-out "$TMP/$name.img" "$t" || continue
	root=$(sed -n 's/.*, root \(0x[0-9a-f]*\); image base \(0x[0-9a-f]*\).*/\1/p' "$TMP/out")
	ibase=$(sed -n 's/.*; image base \(0x[0-9a-f]*\).*/\1/p' "$TMP/out")
	fmt=$(sed -n 's/^\([a-z0-9-]*\), root 0x.*/\1/p' "$TMP/out")
	grep '^gpa ' "$TMP/out" >"$TMP/$name.want"
	# Geometry of each trace's VM (its vm line).
	geo=$(sed -n 's/^vm .*gpa_bits=\([0-9]*\).*/--gpa-bits \1/p' "$t")
	flags=$(sed -n 's/^vm .*flags=\([a-z0-9,]*\).*/--flags \1/p' "$t")
	# shellcheck disable=SC2086
	run 0 "$S2MMU" dump --fmt "$fmt" $geo $flags --root "$root" --image-base "$ibase" \
		--image "$TMP/$name.img" || continue
	grep '^gpa ' "$TMP/out" >"$TMP/$name.got"
	checks=$((checks + 1))
	[ -s "$TMP/$name.want" ] || fail "$name: replay --dump printed no runs"
	cmp -s "$TMP/$name.want" "$TMP/$name.got" || {
		fail "$name: dump of the saved image differs from replay --dump"
		diff "$TMP/$name.want" "$TMP/$name.got" | head
	}
done

## Bad command lines and files.
run 2 "$S2MMU" dump --fmt ept --image "$TMP/ept.img"
run 2 "$S2MMU" dump --root 0 --image "$TMP/ept.img"
run 2 "$S2MMU" dump --fmt ept --root 0 --image "$TMP/ept.img" --range 0x2000-0x1000
run 2 "$S2MMU" dump --vttbr 0x80000000 --image "$TMP/ept.img"
run 3 "$S2MMU" dump --fmt ept --root 0 --image "$TMP/nosuch.img"
run 3 "$S2MMU" dump --fmt ept --root 0 --image "$TMP"
finish
