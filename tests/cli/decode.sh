#!/usr/bin/env bash
# s2mmu decode: known values per format, each worked out by hand from the
# manuals' bit layouts (the comment beside each says how), and the library's
# frozen and MMIO values from docs/fmt-*.md. Mutations seen failing: EPT
# memory type read from bits 4:2 instead of 5:3 (the WB/UC checks), arm64
# blocks at hw level 1 on 64K without LPA2, RISC-V W-without-R
# not reported, VTCR SL0 mapping for 4K inverted, the exit status ignoring
# problems.
. "$(dirname "$0")/lib/common.sh"

# decode_json EXPECTED-RC ARGS...: JSON decode into $TMP/out.
dj() {
	local want=$1
	shift
	run "$want" "$S2MMU" decode --json "$@"
}

## x86 EPT (SDM vol. 3C, "EPT Translation Mechanism")
# 0x12345037: bits 2:0 = 111 RWX, bits 5:3 = 110 = 6 WB, address 0x12345000.
dj 0 --fmt x86-ept 0x4800000012345037
has '"kind":"leaf"'; has '"addr":"0x12345000"'; has '"size":"0x1000"'
has '"prot":"rwxu"'; has '"memtype":"WB"'; has '"host_writable":true'; has '"mmu_writable":true'
# Without A/D (no --flags ad) an EPT leaf reads as accessed, and dirty while writable.
has '"accessed":true'; has '"dirty":true'
# With A/D, bits 8 and 9 clear mean not accessed, not dirty.
dj 0 --fmt ept --flags ad 0x4800000012345037
has '"accessed":false'; has '"dirty":false'
# 0xb3 at level 2: RW, PS (bit 7), MT 6 -> 2 MiB read/write leaf, no execute.
dj 0 --fmt ept --level 2 0x48000000400000b3
has '"size":"0x200000"'; has '"prot":"rw--"'; has '"addr":"0x40000000"'
# Level 2 with a 2 MiB leaf whose address has bit 12 set: reserved.
dj 1 --fmt ept --level 2 0x48000000400010b3
has 'address bits below'
# Table at level 4: RWX and the next table's address.
dj 0 --fmt ept --level 4 0x1234007
has '"kind":"table"'; has '"addr":"0x1234000"'
# PS set at level 4: no leaf may be there.
dj 1 --fmt ept --level 4 0x1234087
has 'PS set at level 4'
# MT 2 (bits 5:3 = 010: 0x17 has bits 4 and 2:0) is reserved: a misconfiguration.
dj 1 --fmt ept 0x1017
has 'reserved memory type 2'
# MT 0 is UC: 0x007.
dj 0 --fmt ept 0x4800000000001007
has '"memtype":"UC"'
# The MMIO value (docs/fmt-x86-ept.md, docs/mmio.md): W only (0x002), the
# memslot generation from bit 12: 0x40000002 carries generation 0x40000.
dj 0 --fmt ept 0x40000002
has '"kind":"mmio"'; has '"mmio_gen":"0x40000"'; has 'memslot generation 0x40000'
# A generation wider than 40 bits (mmio_gen_bits is at most 40), or an MMIO
# value above level 1: the library writes neither.
dj 1 --fmt ept 0x10000000000002
has 'wider than 40 bits'
dj 1 --fmt ept --level 2 0x5002
has 'level 1 only'
# The frozen value 0x9a0, and chained to a table address.
dj 0 --fmt ept 0x9a0 0x55000009a0
has '"kind":"frozen"'; hasnt '"kind":"leaf"'
# A TD's non-present value: bit 63 only (suppress #VE), empty and no problem;
# bit 63 with a stray bit 40 is still reported (exit status 1).
dj 0 --fmt ept 0x8000000000000000
has '"kind":"empty"'; has 'suppress #VE'
dj 1 --fmt ept 0x8000010000000000
# The frozen value with bit 63 (a TD's unlinked table chain).
dj 0 --fmt ept 0x80000055000009a0
has '"kind":"frozen"'; has 'next unlinked table 0x5500000000'
# Access tracking: bits 2:0 clear, saved R and X in 52 and 53.
dj 0 --fmt ept 0x0030000012345030
has '"kind":"non-present leaf"'
# W without R (not the MMIO pattern): misconfiguration.
dj 1 --fmt ept 0x12345032
has 'W without R'
# MBEC: bit 10 is user-execute; X alone is supervisor-only.
dj 0 --fmt ept --flags mbec 0x4800000012345035
has '"prot":"r-x-"'
dj 0 --fmt ept 0x4800000012345035
has '"prot":"r-xu"'

## AMD NPT (APM vol. 2: long-mode PTE, nested paging)
# 0x8000000000005067: P RW US A D, NX, address 0x5000 -> rw, WB (PAT index 0).
dj 0 --fmt npt 0x8000000000005667
has '"prot":"rw--"'; has '"memtype":"WB"'; has '"addr":"0x5000"'; has '"dirty":true'
# PCD|PWT (bits 4:3 = 11) is PAT entry 3: UC with the power-on PAT.
dj 0 --fmt npt 0x000000000000561f
has '"memtype":"UC"'; has '"prot":"rwxu"'
# 2 MiB leaf at level 2: PS, address bit 12 is the PAT bit, bits 20:13 reserved.
dj 0 --fmt npt --level 2 0x0000000040000687
has '"size":"0x200000"'; has '"addr":"0x40000000"'
dj 1 --fmt npt --level 2 0x0000000040002687
has 'address bits below'
# G at level 4 is reserved on AMD.
dj 1 --fmt npt --level 4 0x1234107
has 'G set at level 4'
# A table entry with A set (the CPU sets it at every level of a nested walk:
# QEMU's pmemsave image of x86-npt-qemu has 0x...027 entries) is the library's
# 0x7 | address; PWT set in one is not.
dj 0 --fmt npt --level 4 0x135027
has '"problems":[]'; has '"meaning":"accessed: set"'
dj 1 --fmt npt --level 4 0x13502f
has 'table entries are 0x7 | address'
# U/S clear: every nested access faults.
dj 1 --fmt npt 0x5603
has 'U/S clear'
dj 0 --fmt npt 0x7e0 0x4000000a
has '"kind":"frozen"'; has '"mmio_gen":"0x40000"'
# The reserved-bit MMIO form (docs/fmt-x86-npt.md): 0x00b (P, R/W, PWT; U/S
# clear), bits 51:40 set (reserved where MAXPHYADDR is 40), generation 5 from
# bit 12. Without bit 51 the CPU sees a present entry: reported.
dj 0 --fmt npt 0x000fff000000500b
has '"kind":"mmio"'; has '"mmio_gen":"0x5"'; has 'MAXPHYADDR <= 40'; has '"present":false'
dj 1 --fmt npt 0x500b
has 'without bit 51 set'

## arm64 stage 2 (Arm ARM, VMSAv8-64 stage-2 descriptors)
# 0x7ff at level 1: page (0b11), MemAttr 0b1111 WB, S2AP 11, SH 11, AF.
dj 0 --fmt arm64-s2 0x01800000400007ff
has '"prot":"rwxu"'; has '"memtype":"WB"'; has '"accessed":true'; has '"addr":"0x40000000"'
# XN = 0b10 (bit 54): no execute; S2AP 01 read-only.
dj 0 --fmt arm64 0x004000004000077f
has '"prot":"r---"'
# MemAttr 0b0001 Device-nGnRE; 0b0000 Device-nGnRnE.
dj 0 --fmt arm64 0x0040000040000747 0x0040000040000743
has '"memtype":"DEVICE"'; has '"memtype":"UC"'
# With FWB, 0b0110 is forced write-back.
dj 0 --fmt arm64 --flags fwb 0x01800000400007db
has '"memtype":"WB"'
# 0b01 (block) at level 1 is reserved; at level 2 it is a 2 MiB block.
dj 1 --fmt arm64 0x01800000400007fd
has 'block descriptor at hw level 3'
dj 1 --fmt arm64 --level 2 0x01800000402017fd
has '"size":"0x200000"'; has 'address bits below'
dj 0 --fmt arm64 --level 2 0x01800000400007fd
has '"size":"0x200000"'
# A block at hw level 1 (our 3) on 4K; not on 64K without LPA2.
dj 0 --fmt arm64 --level 3 0x01800000400007fd
has '"size":"0x40000000"'
dj 1 --fmt arm64 --granule 65536 --level 3 0x01800000400007fd
has 'block descriptor'
# Table at level 2.
dj 0 --fmt arm64 --level 2 0x12345003
has '"kind":"table"'; has '"addr":"0x12345000"'
dj 0 --fmt arm64 0x5a0 0x400000c2
has '"kind":"frozen"'; has '"mmio_gen":"0x40000"'

## RISC-V G-stage (privileged spec, Sv48x4)
# 0x200000df: V R W X U A D, PPN 0x80000 -> 0x80000000.
dj 0 --fmt riscv-g 0x00000000200003df
has '"prot":"rwxu"'; has '"addr":"0x80000000"'; has '"dirty":true'
# W without R is reserved.
dj 1 --fmt riscv 0x00000000200003d5
has 'W without R'
# A pointer: V only.
dj 0 --fmt riscv --level 2 0x20000001
has '"kind":"table"'; has '"addr":"0x80000000"'
# A pointer at level 1 is a page fault; U in a pointer is reserved.
dj 1 --fmt riscv 0x20000001
has 'pointer at the last level'
dj 1 --fmt riscv --level 2 0x20000011
has 'U, G, A or D set'
# A 2 MiB superpage with PPN[0] bits set is misaligned.
dj 1 --fmt riscv --level 2 0x00000000200007df
has 'misaligned superpage'
# PBMT IO (bits 62:61 = 10) with Svpbmt: UC; without it: reserved.
dj 0 --fmt riscv --flags pbmt 0x40000000200003df
has '"memtype":"UC"'
dj 1 --fmt riscv 0x40000000200003df
has 'PBMT'
dj 0 --fmt riscv 0x7e0 0x4000000a
has '"kind":"frozen"'; has '"mmio_gen":"0x40000"'

## Registers
# EPTP 0x1234505e: MT 6 WB, walk length 3 (4 levels), A/D (bit 6).
dj 0 --reg eptp 0x1234505e
has '"root":"0x12345000"'; has '"levels":4'; has 'accessed/dirty flags enabled'
# walk length 4 = 5 levels: 0x26; 0x2e is walk 5: reserved.
dj 0 --reg eptp 0x12345026
has '"levels":5'
dj 1 --reg eptp 0x1234502e
has 'walk length'
# MT 1 is reserved in the EPTP.
dj 1 --reg eptp 0x12345019
has 'memory type'
# VTCR_EL2 0x80023558 (docs/fmt-arm64-s2.md): T0SZ 24 = 40 bits, SL0 1 =
# start at hw level 1 on 4K, PS 2 = 40 bits: 3 levels, 1024 root entries
# (two concatenated tables).
dj 0 --reg vtcr 0x80023558
has '"gpa_bits":40'; has '"levels":3'; has '"root_entries":1024'; has 'output size 40 bits'
# Without RES1 bit 31: reserved.
dj 1 --reg vtcr 0x00023558
has 'RES1'
# VTTBR: VMID 5 in 63:48, BADDR 0x80000000.
dj 0 --reg vttbr 0x0005000080000000
has '"root":"0x80000000"'; has 'VMID 0x5'
# hgatp: MODE 9 Sv48x4, VMID 1, PPN 0x80004 -> root 0x80004000.
dj 0 --reg hgatp 0x9000100000080004
has '"root":"0x80004000"'; has '"levels":4'; has '"gpa_bits":50'
dj 1 --reg hgatp 0x9000100000080005
has '16 KiB aligned'
dj 1 --reg hgatp 0x3000000000080004
has 'MODE 3'
# nCR3 with PCD set: the library never builds it.
dj 0 --reg ncr3 0x12345000
has '"root":"0x12345000"'
dj 1 --reg ncr3 0x12345010
has 'PWT = PCD = 0'

## Text output names every field.
run 0 "$S2MMU" decode --fmt ept 0x4800000012345037
has 'x86-ept entry 0x4800000012345037 at level 1: leaf 4 KiB -> 0x12345000 rwxu WB'
for f in R W X MT IPAT PS A D XU addr host-writable MMU-writable SVE; do
	checks=$((checks + 1))
	grep -qE "^  [0-9:]+ +$f " "$TMP/out" || fail "field $f not named"
done

## Bad command lines: exit 2.
run 2 "$S2MMU" decode 0x1
run 2 "$S2MMU" decode --fmt nosuch 0x1
run 2 "$S2MMU" decode --fmt ept notanumber
run 2 "$S2MMU" decode --fmt ept --level 9 0x1
run 2 "$S2MMU" decode --fmt ept --flags ad,bogus 0x1
run 2 "$S2MMU" decode --reg nosuch 0x1
run 2 "$S2MMU" decode --fmt ept --bogus 0x1
finish
