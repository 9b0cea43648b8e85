/* SPDX-License-Identifier: MIT */
/*
 * Hosted helpers around the decoder (include/s2mmu/decode.h) for its tests
 * and for the s2mmu CLI: a description of a struct s2_insn in one line, the
 * oracles' disassembly (capstone for x86 and arm64, riscv64-linux-gnu-objdump
 * for RISC-V, in batches) and both side by side. Link with -lcapstone.
 */
#ifndef S2_TESTS_DECODE_SHOW_H
#define S2_TESTS_DECODE_SHOW_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "s2mmu/decode.h"

enum s2_show_arch { S2_SHOW_X86_64, S2_SHOW_X86_32, S2_SHOW_ARM64, S2_SHOW_RISCV64 };

/* xorshift64: the tests' reproducible random numbers. */
static inline uint64_t s2_rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* @d in one line ("load 4B->8B signed reg 3 [base 5 + 0x10] wb ..."); returns @buf. */
char *s2_insn_describe(const struct s2_insn *d, char *buf, size_t n);

/*
 * The RISC-V oracle: disassembles @n encodings (@insn[i], compressed when
 * its low two bits are not 11) with one run of riscv64-linux-gnu-objdump
 * (-M numeric,no-aliases) and stores "mnemonic operands" per encoding in
 * @text[i] (size 96). Returns 0, or -1 when objdump could not be run.
 */
int s2_riscv_objdump(const uint32_t *insn, size_t n, char (*text)[96]);

/*
 * The oracle's view of the instruction at @bytes (@n bytes, at @pc):
 * capstone for x86 and arm64, riscv64 objdump for RISC-V (one run; for many,
 * s2_riscv_objdump and s2_riscv_oracle_text). Writes "mnemonic operands" to
 * @text (@tlen bytes) and the instruction's length to *@len. Returns 0, 1
 * when the oracle calls it no instruction, -1 when the oracle could not run.
 */
int s2_insn_oracle(enum s2_show_arch arch, const uint8_t *bytes, size_t n, uint64_t pc, char *text,
		   size_t tlen, unsigned *len);
/* "capstone" or "objdump". */
const char *s2_insn_oracle_name(enum s2_show_arch arch);
/* RISC-V: the length of @insn (2 when compressed, else 4: longer encodings
 * are not ones the decoder takes). */
unsigned s2_riscv_insn_len(uint32_t insn);
/* RISC-V: one line of s2_riscv_objdump's @objdump as s2_insn_oracle gives it. */
int s2_riscv_oracle_text(const char *objdump, char *text, size_t tlen, unsigned *len,
			 uint32_t insn);

/*
 * Prints the instruction at @bytes (@n bytes, at @pc) as the oracle sees it
 * and as s2_decode_* does, one line each, to @f. Returns the decoder's result.
 */
int s2_insn_show(FILE *f, enum s2_show_arch arch, const uint8_t *bytes, size_t n, uint64_t pc);

#endif
