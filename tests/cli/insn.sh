#!/usr/bin/env bash
# s2mmu insn: the library's decoder next to capstone (x86, arm64) and
# riscv64 objdump. Each expectation is worked out from the manuals' encodings
# (the comment says how), not from the decoder's output. Mutations seen
# failing: the RISC-V word taken big-endian from its bytes, the exit status
# ignoring a refusal, --pc not passed to the decoder, the oracle's "invalid"
# not reported.
. "$(dirname "$0")/lib/common.sh"

ij() {
	local want=$1
	shift
	run "$want" "$S2MMU" insn --json "$@"
}

## x86-64 (SDM vol. 2)
# 89 /r MOV r/m32, r32; ModRM 0x08 = mod 00, reg 001 (ecx), rm 000 ([rax]).
ij 0 --arch x86_64 "89 08"
has '"result":"ok"'; has '"dir":"store"'; has '"size":4'; has '"reg":1'; has '"base":0'
has '"text":"mov dword ptr [rax], ecx"'; has '"len":2'; has '"next_pc":"0x2"'
# REX.W 8B /r MOV r64, r/m64, ModRM 0x05 = RIP-relative disp32 0x10 at rip 0x1000:
# a load of 8 bytes into rax, next pc 0x1007 (the operand is at 0x1017).
ij 0 --arch x86_64 --pc 0x1000 488b0510000000
has '"dir":"load"'; has '"size":8'; has '"base":"rip"'; has '"disp":16'
has '"next_pc":"0x1007"'; has '"text":"mov rax, qword ptr [rip + 0x10]"'
# 0F B6 /r MOVZX r32, r/m8 with ModRM 0x03 ([rbx] into eax): 1 byte, zero-extended to 4.
ij 0 --arch x86_64 0fb603
has '"size":1'; has '"reg_size":4'; hasnt '"signed"'; has '"base":3'
# F3 REX.W AB: REP STOSQ, stores rax at [rdi].
ij 0 --arch x86_64 "f3 48 ab"
has '"op":"stos"'; has '"rep"'; has '"size":8'
# 80 /1 ib OR r/m8, imm8 with LOCK: F0 80 08 01 ([rax] |= 1).
ij 0 --arch x86_64 f0800801
has '"op":"or"'; has '"dir":"rmw"'; has '"lock"'; has '"imm":"0x1"'
# 32-bit code: 8B 03 is mov eax, [ebx] with 4-byte addresses.
ij 0 --arch x86_32 8b03
has '"addr_size":4'; has '"text":"mov eax, dword ptr [ebx]"'
# ENDBR64 (F3 0F 1E FA) is no memory access: refused, exit 1.
ij 1 --arch x86_64 f30f1efa
has '"result":"ENOTSUP"'; has '"text":"endbr64"'
# 8B alone: the ModRM byte is missing.
ij 1 --arch x86_64 8b
has '"result":"EAGAIN"'
# Trailing bytes are left (a 15-byte fetch window): a note, exit 0.
run 0 "$S2MMU" insn --arch x86_64 "89 08 90 90"
has 'capstone: mov dword ptr [rax], ecx (2 bytes)'; has '! note: 2 byte(s) after the instruction'
# Text and several instructions: one fails, the status is 1.
run 1 "$S2MMU" insn --arch x86_64 8908 f30f1efa
has 's2mmu:    mov store 4B r1 [r0 +0] len 2'; has 'refused: not a supported load/store form'

## arm64 (Arm ARM C6: LDR/STR and LDP/STP encodings)
# STR (immediate) post-index, 64-bit: 0xf8000400 | imm9 << 12 | Rn << 5 | Rt;
# imm9 8, Rn x1, Rt x0 = 0xf8008420: str x0, [x1], #8. Also given as bytes.
for a in 0xf8008420 "20 84 00 f8"; do
	ij 0 --arch arm64 "$a"
	has '"text":"str x0, [x1], #8"'; has '"dir":"store"'; has '"size":8'
	has '"wb_offset":8'; has '"post"'; has '"base":1'; has '"reg":0'
done
# STP pre-index 64-bit: 0xa9800000 | imm7 << 15 | Rt2 << 10 | Rn << 5 | Rt;
# imm7 -4 (x8 = -32), Rt2 x30, Rn sp, Rt x29 = 0xa9be7bfd: stp x29, x30, [sp, #-0x20]!
ij 0 --arch arm64 --pc 0x4000 0xa9be7bfd
has '"count":2'; has '"reg":29'; has '"reg2":30'; has '"base":31'; has '"disp":-32'
has '"wb_offset":-32'; has '"next_pc":"0x4004"'
# LDRSW (unsigned offset): 0xb9800000 | imm12 << 10 | Rn << 5 | Rt; x2 = [x3 + 4]:
# 0xb9800462, a sign-extending 4-byte load into an 8-byte register.
ij 0 --arch arm64 0xb9800462
has '"signed"'; has '"size":4'; has '"reg_size":8'; has '"disp":4'
# ADD x0, x1, x2 (0x8b020020): no memory access.
ij 1 --arch arm64 0x8b020020
has '"result":"ENOTSUP"'
# LDTR x1, [x1] (0xf8400800 | Rn << 5 | Rt = 0xf8400821): valid (LDTR does not
# write back), but capstone 4.0.2 rejects Rt == Rn (docs/mmio.md): the tool says so.
run 1 "$S2MMU" insn --arch arm64 0xf8400821
has 'capstone: invalid'; has '! capstone calls it no instruction'
ij 1 --arch arm64 0xf8400821
has '"result":"ok"'; has '"unpriv"'; has '"status":"invalid"'
# Wrong sizes are usage errors.
run 2 "$S2MMU" insn --arch arm64 "20 84 00"
run 2 "$S2MMU" insn --arch arm64 0x1f8008420

## RISC-V (unprivileged spec: RV64I loads/stores, the C extension)
# SW rs2, imm(rs1): imm[11:5] rs2 rs1 010 imm[4:0] 0100011; sw x10, 0(x10) = 0x00a52023.
ij 0 --arch riscv64 0x00a52023
has '"text":"sw x10,0(x10)"'; has '"dir":"store"'; has '"size":4'; has '"reg":10'
# C.LW: 010 uimm[5:3] rs1' uimm[2|6] rd' 00; rs1' = rd' = x10 (2), offset 0 = 0x4108.
# As bytes in memory order: 08 41.
for a in 0x4108 "08 41"; do
	ij 0 --arch riscv64 "$a"
	has '"text":"c.lw x10,0(x10)"'; has '"len":2'; has '"signed"'; has '"reg_size":8'
done
# LBU x10, 0(x11) from bytes 03 c5 05 00 (0x0005c503): zero-extending.
ij 0 --arch riscv64 --pc 0x80000000 "03 c5 05 00"
has '"text":"lbu x10,0(x11)"'; hasnt '"signed"'; has '"next_pc":"0x80000004"'
# addi x0, x0, 0 (0x13) and c.unimp (0x0000): refused; objdump names both.
ij 1 --arch riscv64 0x00000013 0x0000
has '"text":"addi x0,x0,0"'; has '"text":"c.unimp"'
# A compressed encoding with 4 bytes, or 3 bytes: usage errors.
run 2 "$S2MMU" insn --arch riscv64 "08 41 00 00"
run 2 "$S2MMU" insn --arch riscv64 0x14108

## The command line
run 2 "$S2MMU" insn 8908
run 2 "$S2MMU" insn --arch mips 8908
run 2 "$S2MMU" insn --arch x86_64
run 2 "$S2MMU" insn --arch x86_64 0x8908
run 2 "$S2MMU" insn --arch x86_64 "8 9"
run 2 "$S2MMU" insn --arch x86_64 zz
run 2 "$S2MMU" insn --arch x86_64 000102030405060708090a0b0c0d0e0f
run 2 "$S2MMU" insn --arch x86_64 --pc x 8908
finish
