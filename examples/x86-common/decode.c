// SPDX-License-Identifier: MIT
/*
 * MOV decoder for MMIO emulation (see decode.h). Written from the Intel SDM
 * vol. 2 opcode map and ModR/M tables; only the memory forms matter, so a
 * register operand (mod = 3) is refused.
 */
#include "decode.h"

static uint64_t mask_of(unsigned size)
{
	return size >= 8 ? ~0ull : (1ull << (size * 8)) - 1;
}

/* Bytes of ModR/M + SIB + displacement with 32/64-bit addressing, or 0. */
static unsigned modrm_len(const uint8_t *p, unsigned avail)
{
	unsigned mod, rm, n = 1;

	if (avail < 1)
		return 0;
	mod = p[0] >> 6;
	rm = p[0] & 7;
	if (mod == 3)
		return 0;
	if (rm == 4) {
		if (avail < 2)
			return 0;
		n++;
		if (mod == 0 && (p[1] & 7) == 5)
			n += 4;
	} else if (mod == 0 && rm == 5) {
		n += 4;
	}
	if (mod == 1)
		n += 1;
	else if (mod == 2)
		n += 4;
	return n <= avail ? n : 0;
}

static uint64_t read_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint64_t sign_extend(uint64_t v, unsigned from, unsigned to)
{
	uint64_t sign = 1ull << (from * 8 - 1);

	if (from < 8 && (v & sign))
		v |= ~mask_of(from);
	return v & mask_of(to);
}

int x86_decode_mov(const uint8_t *insn, unsigned avail, bool long_mode, struct x86_mov *out)
{
	unsigned i = 0, opsize = 4, rex = 0, mlen, imm_len = 0;
	uint8_t op;

	*out = (struct x86_mov){ 0 };
	for (;; i++) {
		if (i >= avail || i >= 15)
			return -1;
		op = insn[i];
		if (op == 0x66)
			opsize = 2;
		else if (op == 0x2e || op == 0x36 || op == 0x3e || op == 0x26 || op == 0x64 ||
			 op == 0x65)
			continue;
		else if (op == 0x67)
			return -1; /* 16-bit (or 32-bit in long mode) addressing: unused here */
		else
			break;
	}
	if (long_mode && (op & 0xf0) == 0x40) {
		rex = op;
		if (++i >= avail)
			return -1;
		op = insn[i];
		if (rex & 8)
			opsize = 8;
	}
	i++;

	switch (op) {
	case 0x88: /* mov r/m8, r8 */
	case 0x8a: /* mov r8, r/m8 */
	case 0x89: /* mov r/m, r */
	case 0x8b: /* mov r, r/m */
	case 0xc6: /* mov r/m8, imm8 */
	case 0xc7: /* mov r/m, imm16/32 */
		if (i >= avail)
			return -1;
		out->size = (op & 1) ? opsize : 1;
		out->write = op != 0x8a && op != 0x8b;
		out->reg = ((insn[i] >> 3) & 7) | ((rex & 4) ? 8 : 0);
		if (op >= 0xc6) {
			if ((insn[i] >> 3) & 7)
				return -1; /* only /0 is MOV */
			out->has_imm = true;
			out->reg = -1;
			imm_len = out->size == 8 ? 4 : out->size;
		}
		mlen = modrm_len(insn + i, avail - i);
		if (!mlen)
			return -1;
		i += mlen;
		break;
	case 0xa0: /* mov al, moffs */
	case 0xa1: /* mov eax, moffs */
	case 0xa2: /* mov moffs, al */
	case 0xa3: /* mov moffs, eax */
		out->size = (op & 1) ? opsize : 1;
		out->write = op >= 0xa2;
		out->reg = 0;
		i += long_mode ? 8 : 4;
		break;
	case 0x0f: /* movzx r, r/m8 | r/m16 */
		if (i >= avail || (insn[i] != 0xb6 && insn[i] != 0xb7))
			return -1;
		out->size = insn[i] == 0xb6 ? 1 : 2;
		i++;
		if (i >= avail)
			return -1;
		out->reg = ((insn[i] >> 3) & 7) | ((rex & 4) ? 8 : 0);
		out->reg_size = opsize;
		mlen = modrm_len(insn + i, avail - i);
		if (!mlen)
			return -1;
		i += mlen;
		break;
	default: return -1;
	}
	if (out->has_imm) {
		if (i + imm_len > avail)
			return -1;
		out->imm = sign_extend(read_le(insn + i, imm_len), imm_len, out->size);
		i += imm_len;
	}
	if (i > avail || i > 15)
		return -1;
	if (!out->reg_size)
		out->reg_size = out->size;
	/* Without REX, byte registers 4..7 are ah, ch, dh, bh. */
	out->high8 = out->size == 1 && out->reg_size == 1 && !rex && out->reg >= 4;
	out->len = i;
	return 0;
}

uint64_t x86_mov_store_value(const struct x86_mov *m, const uint64_t gprs[16])
{
	if (m->has_imm)
		return m->imm;
	if (m->high8)
		return (gprs[m->reg - 4] >> 8) & 0xff;
	return gprs[m->reg] & mask_of(m->size);
}

void x86_mov_load(const struct x86_mov *m, uint64_t gprs[16], uint64_t value)
{
	value &= mask_of(m->size);
	if (m->high8) {
		gprs[m->reg - 4] = (gprs[m->reg - 4] & ~0xff00ull) | (value << 8);
		return;
	}
	/* 32-bit destinations zero-extend; 8- and 16-bit ones merge. */
	if (m->reg_size >= 4)
		gprs[m->reg] = value;
	else
		gprs[m->reg] = (gprs[m->reg] & ~mask_of(m->reg_size)) | value;
}
