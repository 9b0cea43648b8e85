/* SPDX-License-Identifier: MIT */
/*
 * Instruction decoder for MMIO emulation: what a guest's faulting load or
 * store does, for exits that come without a usable syndrome (x86 always;
 * arm64 with ESR_EL2.ISV = 0, i.e. writeback, pair, SIMD/FP and exclusive
 * forms; RISC-V with htinst = 0). Freestanding: no libc, no env hooks, no
 * allocation; every function only reads its arguments and writes its outputs.
 *
 * The embedder fetches the instruction bytes from guest memory, decodes them
 * into a struct s2_insn, performs the device access the description names
 * (dir, size, count) at the faulting gpa, and hands the result to the
 * architecture's complete helper, which updates its register file: the
 * loaded register(s) with their extension, the base register's writeback and
 * the pc. Anything outside the supported forms (docs/mmio.md lists them) is
 * refused with -ENOTSUP and nothing is guessed.
 *
 * Return values of every decode function: 0 and *out filled; -ENOTSUP: not a
 * supported load/store form (another instruction, a register-only form, a
 * reserved or CONSTRAINED UNPREDICTABLE encoding); -EAGAIN: x86 only, the
 * instruction runs past the @avail bytes given (fetch more and call again);
 * -EINVAL: bad arguments. On an error *out is left unchanged.
 */
#ifndef S2MMU_DECODE_H
#define S2MMU_DECODE_H

#include "s2mmu/errno.h"
#include "s2mmu/types.h"

/* struct s2_insn.dir: what the instruction does to memory. */
enum s2_insn_dir {
	S2_DIR_LOAD = 1,  /* reads memory (also CMP and TEST with a memory operand) */
	S2_DIR_STORE = 2, /* writes memory */
	S2_DIR_RMW = 3,	  /* reads, then writes back (x86 XCHG and ALU ops to memory) */
};

/* struct s2_insn.op: the operation, where more than a plain move. */
enum s2_insn_op {
	S2_OP_MOV = 0, /* load or store (x86 MOV, MOVZX, MOVSX, MOVSXD; every arm64/RISC-V form) */
	S2_OP_XCHG,    /* x86: memory <-> register */
	S2_OP_ADD,     /* x86 ALU forms: memory op= source, or register op= memory */
	S2_OP_OR,
	S2_OP_AND,
	S2_OP_SUB,
	S2_OP_XOR,
	S2_OP_CMP,  /* flags only */
	S2_OP_TEST, /* flags only */
	S2_OP_STOS, /* x86 string store: [rDI] = rAX */
	S2_OP_MOVS, /* x86 string move: [rDI] = [rSI] */
};

/* struct s2_insn.flags */
#define S2_INSN_SIGNED (1u << 0)    /* a load sign-extends (else zero-extends) to reg_size */
#define S2_INSN_FP (1u << 1)	    /* reg, reg2 are FP/SIMD registers */
#define S2_INSN_IMM (1u << 2)	    /* x86: the source is imm, not reg */
#define S2_INSN_HIGH8 (1u << 3)	    /* x86: reg 4..7 name AH, CH, DH, BH */
#define S2_INSN_REG_DST (1u << 4)   /* x86 ALU: the register is the destination */
#define S2_INSN_WRITEBACK (1u << 5) /* arm64: base += wb_offset after the access */
#define S2_INSN_POST (1u << 6)	    /* arm64: post-index (address is the old base) */
#define S2_INSN_REP (1u << 7)	    /* x86 string op with REP (F3) */
#define S2_INSN_LOCK (1u << 8)	    /* x86 LOCK prefix (or XCHG's implicit lock) */
#define S2_INSN_ACQUIRE (1u << 9)   /* arm64 load-acquire */
#define S2_INSN_RELEASE (1u << 10)  /* arm64 store-release */
#define S2_INSN_EXCL (1u << 11)	    /* arm64 exclusive; STXR's status register is status */
#define S2_INSN_UNPRIV (1u << 12)   /* arm64 LDTR/STTR: checked as EL0 */
#define S2_INSN_NT (1u << 13)	    /* arm64 LDNP/STNP: non-temporal hint */
#define S2_INSN_HTINST (1u << 14)   /* RISC-V from htinst: address fields unknown */

/* Register numbers: x86 0 = rAX .. 15 = r15; arm64 0..30, 31 = XZR as a
 * data register and SP as a base; RISC-V x0..x31 or f0..f31. */
#define S2_REG_NONE 0xff
#define S2_X86_RIP 16 /* base of a RIP-relative operand */

/* x86 segment of the access: the override, else DS, or SS with a rSP/rBP
 * base (string ops: the source's; the destination is always ES). */
enum s2_x86_seg { S2_SEG_ES, S2_SEG_CS, S2_SEG_SS, S2_SEG_DS, S2_SEG_FS, S2_SEG_GS };

/* arm64 register-offset extend (struct s2_insn.extend) */
enum s2_arm64_extend { S2_EXT_NONE, S2_EXT_UXTW, S2_EXT_LSL, S2_EXT_SXTW, S2_EXT_SXTX };

/* x86 code modes */
enum s2_x86_mode { S2_X86_MODE_32 = 32, S2_X86_MODE_64 = 64 };

/*
 * One decoded load/store. The memory access is @count elements of @size
 * bytes at consecutive addresses (x86 MOVS: one element read at [rSI] and
 * written at [rDI]). The address is
 *   base + (index extended by @extend) << scale + disp
 * (x86 also through segment @seg, with @addr_size-byte address arithmetic;
 * a RIP-relative disp is relative to next_pc; moffs: base and index NONE).
 */
struct s2_insn {
	uint64_t next_pc;  /* pc of the next instruction (pc + len) */
	int64_t disp;	   /* address displacement / immediate offset (pre-index: included) */
	int64_t wb_offset; /* S2_INSN_WRITEBACK: base += wb_offset */
	uint64_t imm;	   /* S2_INSN_IMM: the immediate, sign-extended to size bytes */
	uint16_t flags;	   /* S2_INSN_* */
	uint8_t len;	   /* instruction bytes: x86 1..15, arm64 4, RISC-V 2 or 4 */
	uint8_t dir;	   /* enum s2_insn_dir */
	uint8_t op;	   /* enum s2_insn_op */
	uint8_t size;	   /* bytes of one element: 1, 2, 4, 8 or 16 */
	uint8_t count;	   /* elements (registers) transferred: 1, or 2 for a pair */
	uint8_t reg_size;  /* bytes of the destination register (extension target) */
	uint8_t reg;	   /* first transfer register (S2_REG_NONE: x86 imm or string) */
	uint8_t reg2;	   /* second register of a pair */
	uint8_t status;	   /* arm64 store-exclusive: status register Ws */
	uint8_t base;	   /* base register, S2_X86_RIP or S2_REG_NONE */
	uint8_t index;	   /* index register or S2_REG_NONE */
	uint8_t scale;	   /* log2 of the index multiplier (arm64 shift) */
	uint8_t extend;	   /* enum s2_arm64_extend (arm64 register offset) */
	uint8_t seg;	   /* enum s2_x86_seg */
	uint8_t addr_size; /* bytes of address arithmetic: x86 2, 4, 8; else 8 */
};

/*
 * s2_decode_x86() - decode the x86 instruction at @bytes[0..@avail).
 * @mode: S2_X86_MODE_64 (long mode) or S2_X86_MODE_32 (CS.D = 1).
 * @rip: its address, for next_pc.
 * Supported: MOV 88 89 8A 8B C6/0 C7/0 A0-A3; MOVZX, MOVSX, MOVSXD (64-bit);
 * XCHG 86 87; ADD OR AND SUB XOR CMP with a memory operand (00-3B, 80-83),
 * TEST 84 85 F6/0 F7/0; STOS and MOVS with or without REP; prefixes 66, 67,
 * segment overrides, LOCK where the SDM allows it, REX.
 * Returns 0, -ENOTSUP, -EAGAIN or -EINVAL (see the top of this file).
 */
int s2_decode_x86(const uint8_t *bytes, unsigned avail, enum s2_x86_mode mode, uint64_t rip,
		  struct s2_insn *out);

/*
 * s2_decode_arm64() - decode the A64 instruction @insn at @pc: LDR/STR and
 * their B, H, SB, SH, SW variants in unsigned-offset, pre-index, post-index,
 * unscaled (LDUR, LDTR) and register-offset forms, LDP/STP/LDPSW/LDNP/STNP,
 * LDAR/STLR, LDXR/STXR/LDAXR/STLXR and their pair forms, and the SIMD/FP
 * B/H/S/D/Q registers in all of those that exist for them.
 * Returns 0, -ENOTSUP or -EINVAL.
 */
int s2_decode_arm64(uint32_t insn, uint64_t pc, struct s2_insn *out);

/*
 * s2_decode_riscv() - decode the RV64 instruction @insn at @pc (a compressed
 * one in the low 16 bits; the high ones are then ignored): LB LH LW LD LBU
 * LHU LWU SB SH SW SD, FLH FLW FLD FLQ FSH FSW FSD FSQ, C.LW C.LD C.SW C.SD
 * C.FLD C.FSD and their SP-relative forms.
 * Returns 0, -ENOTSUP or -EINVAL.
 */
int s2_decode_riscv(uint32_t insn, uint64_t pc, struct s2_insn *out);

/*
 * s2_decode_riscv_htinst() - decode a nonzero htinst (a transformed load or
 * store: bit 0 set, bit 1 clear when the original was compressed). The
 * address fields are unknown (S2_INSN_HTINST; base NONE).
 * Returns 0, -ENOTSUP (htinst 0, a pseudoinstruction, anything else) or -EINVAL.
 */
int s2_decode_riscv_htinst(uint64_t htinst, uint64_t pc, struct s2_insn *out);

/* Register files the complete helpers update. */
struct s2_x86_regs {
	uint64_t gpr[16]; /* rAX, rCX, rDX, rBX, rSP, rBP, rSI, rDI, r8..r15 */
	uint64_t rip;
	uint64_t rflags;
};

struct s2_arm64_regs {
	uint64_t x[31];
	uint64_t sp; /* SP of the guest's current EL */
	uint64_t pc;
	uint64_t v[32][2]; /* V0..V31, low half first */
};

struct s2_riscv_regs {
	uint64_t x[32]; /* x[0] is never written */
	uint64_t f[32];
	uint64_t pc;
};

/*
 * s2_x86_complete() - finish a decoded x86 access in @r.
 * @loaded: the value read from memory (dir LOAD or RMW; MOVS: the source).
 * @store: set to the value to write to memory when 1 is returned.
 * Writes the destination register (8/16-bit ones merge, 32-bit ones
 * zero-extend), XCHG's register, the arithmetic flags of an ALU op, rSI,
 * rDI and rCX of a string op (one element per call; rip stays on a REP
 * instruction until rCX reaches 0), and rip.
 * Returns 1 (write *@store to memory), 0 (no write) or -EINVAL (@d not from
 * s2_decode_x86, or a REP op with rCX = 0, which accesses nothing).
 */
int s2_x86_complete(const struct s2_insn *d, struct s2_x86_regs *r, uint64_t loaded,
		    uint64_t *store);

/*
 * s2_arm64_complete() - finish a decoded arm64 access in @r.
 * @val: element k's value in val[k] (a 16-byte element: val[2k], val[2k+1],
 * low half first). A load reads it, a store fills it. Loads extend into the
 * register (FP/SIMD: the rest of the V register is zeroed; writes to XZR are
 * dropped); the base register is written back, STXR's status register gets 0
 * (success), and pc moves to next_pc.
 * Returns 0 or -EINVAL.
 */
int s2_arm64_complete(const struct s2_insn *d, struct s2_arm64_regs *r, uint64_t val[4]);

/*
 * s2_riscv_complete() - finish a decoded RISC-V access in @r: a load writes
 * *@val, extended, to rd (never x0; an FP load NaN-boxes values narrower
 * than 64 bits), a store sets *@val from rs2 (masked to size bytes); pc moves
 * to next_pc. Returns 0 or -EINVAL.
 */
int s2_riscv_complete(const struct s2_insn *d, struct s2_riscv_regs *r, uint64_t *val);

#endif
