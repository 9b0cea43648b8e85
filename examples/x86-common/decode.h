/* SPDX-License-Identifier: MIT */
/*
 * A small decoder for the MOV forms an MMIO access takes, for exits that
 * give no syndrome (SVM without decode assists) and to find the register
 * and size behind an EPT violation, whose qualification says only read or
 * write. Handles 32-bit and 64-bit code: prefixes 66, segment overrides and
 * REX; opcodes 88 89 8a 8b (mov r/m), a0-a3 (mov moffs), c6 c7 (mov imm),
 * 0f b6 0f b7 (movzx). Anything else is refused.
 */
#ifndef S2_EXAMPLES_X86_DECODE_H
#define S2_EXAMPLES_X86_DECODE_H

#include <stdbool.h>
#include <stdint.h>

struct x86_mov {
	unsigned len;	   /* instruction length in bytes */
	unsigned size;	   /* bytes accessed in memory: 1, 2, 4 or 8 */
	bool write;	   /* a store to memory */
	bool has_imm;	   /* a store of imm (else of register reg) */
	uint64_t imm;	   /* the immediate, sign-extended to size */
	int reg;	   /* register number (0 = rax .. 15 = r15) */
	bool high8;	   /* reg names ah/ch/dh/bh (byte access, no REX) */
	unsigned reg_size; /* bytes written to reg by a load (movzx: wider) */
};

/*
 * Decode the instruction in @insn[0..@avail). @long_mode selects 64-bit code
 * (otherwise 32-bit: CS.D = 1). Returns 0 and fills *@out, or -1 for an
 * instruction outside the supported set, a register operand, 16-bit
 * addressing, or fewer than the needed bytes.
 */
int x86_decode_mov(const uint8_t *insn, unsigned avail, bool long_mode, struct x86_mov *out);

/* The value a decoded store writes, from the guest's registers. */
uint64_t x86_mov_store_value(const struct x86_mov *m, const uint64_t gprs[16]);

/* Complete a decoded load of @value into the guest's registers. */
void x86_mov_load(const struct x86_mov *m, uint64_t gprs[16], uint64_t value);

#endif
