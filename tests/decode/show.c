// SPDX-License-Identifier: MIT
/* The decoder's hosted helpers: see show.h. */
#include "show.h"

#include <capstone/capstone.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const dir_name[] = { "?", "load", "store", "rmw" };
static const char *const op_name[] = { "mov", "xchg", "add",  "or",   "and", "sub",
				       "xor", "cmp",  "test", "stos", "movs" };

char *s2_insn_describe(const struct s2_insn *d, char *buf, size_t n)
{
	int k;

	k = snprintf(buf, n, "%s %s %uB", d->op <= S2_OP_MOVS ? op_name[d->op] : "?",
		     d->dir <= 3 ? dir_name[d->dir] : "?", d->size);
	if (d->count > 1)
		k += snprintf(buf + k, n - k, "x%u", d->count);
	if (d->dir != S2_DIR_STORE && d->reg_size != d->size)
		k += snprintf(buf + k, n - k, "->%uB%s", d->reg_size,
			      (d->flags & S2_INSN_SIGNED) ? " signed" : "");
	else if (d->flags & S2_INSN_SIGNED)
		k += snprintf(buf + k, n - k, " signed");
	if (d->flags & S2_INSN_IMM)
		k += snprintf(buf + k, n - k, " imm 0x%" PRIx64, d->imm);
	if (d->reg != S2_REG_NONE)
		k += snprintf(buf + k, n - k, " %s%u%s", (d->flags & S2_INSN_FP) ? "f" : "r",
			      d->reg, (d->flags & S2_INSN_HIGH8) ? "h" : "");
	if (d->count > 1)
		k += snprintf(buf + k, n - k, ",%s%u", (d->flags & S2_INSN_FP) ? "f" : "r",
			      d->reg2);
	k += snprintf(buf + k, n - k, " [");
	if (d->base == S2_X86_RIP && d->len != 4)
		k += snprintf(buf + k, n - k, "rip");
	else if (d->base != S2_REG_NONE)
		k += snprintf(buf + k, n - k, "r%u", d->base);
	if (d->index != S2_REG_NONE)
		k += snprintf(buf + k, n - k, " + r%u<<%u%s", d->index, d->scale,
			      d->extend == S2_EXT_UXTW ? " uxtw" :
			      d->extend == S2_EXT_SXTW ? " sxtw" :
			      d->extend == S2_EXT_SXTX ? " sxtx" :
							 "");
	k += snprintf(buf + k, n - k, " %+" PRId64 "]", d->disp);
	if (d->flags & S2_INSN_WRITEBACK)
		k += snprintf(buf + k, n - k, " wb%s %+" PRId64,
			      (d->flags & S2_INSN_POST) ? " post" : "", d->wb_offset);
	if (d->status != S2_REG_NONE)
		k += snprintf(buf + k, n - k, " status r%u", d->status);
	snprintf(buf + k, n - k, "%s%s%s%s%s len %u next 0x%" PRIx64,
		 (d->flags & S2_INSN_REP) ? " rep" : "", (d->flags & S2_INSN_LOCK) ? " lock" : "",
		 (d->flags & S2_INSN_ACQUIRE) ? " acquire" : "",
		 (d->flags & S2_INSN_RELEASE) ? " release" : "",
		 (d->flags & S2_INSN_EXCL) ? " exclusive" : "", d->len, d->next_pc);
	return buf;
}

int s2_riscv_objdump(const uint32_t *insn, size_t n, char (*text)[96])
{
	char src[] = "/tmp/s2dec-XXXXXX";
	char cmd[256], line[256];
	size_t i = 0;
	FILE *f, *p;
	int fd, rc;

	fd = mkstemp(src);
	if (fd < 0)
		return -1;
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(src);
		return -1;
	}
	fprintf(f, ".text\n");
	for (size_t k = 0; k < n; k++)
		fprintf(f, ".insn 0x%" PRIx32 "\n",
			(insn[k] & 3) == 3 ? insn[k] : insn[k] & 0xffff);
	fclose(f);
	/* Zfh on, so FLH/FSH are known; Q off: FLQ/FSQ are not supported forms;
	 * -z: a zero halfword (c.unimp) is printed, not skipped as "...". */
	snprintf(cmd, sizeof(cmd),
		 "riscv64-linux-gnu-as -march=rv64gc_zfh -o %s.o %s && "
		 "riscv64-linux-gnu-objdump -d -z -M numeric,no-aliases %s.o",
		 src, src, src);
	p = popen(cmd, "r");
	if (!p) {
		unlink(src);
		return -1;
	}
	while (fgets(line, sizeof(line), p)) {
		char *t = strchr(line, ':');
		char *a, *b;

		/* "   4:\t00051007          \tflh\tf0,0(x10)" */
		if (!t || t[1] != '\t' || line[0] != ' ')
			continue;
		a = strchr(t + 2, '\t');
		if (!a || i >= n)
			continue;
		a++;
		a[strcspn(a, "\n")] = 0;
		b = strchr(a, '\t');
		if (b)
			*b = ' ';
		snprintf(text[i++], 96, "%s", a);
	}
	rc = pclose(p);
	unlink(src);
	snprintf(line, sizeof(line), "%s.o", src);
	unlink(line);
	return rc == 0 && i == n ? 0 : -1;
}

/* One instruction through capstone: 0, 1 (invalid to it) or -1 (not run). */
static int oracle_capstone(cs_arch a, cs_mode m, const uint8_t *bytes, size_t n, uint64_t pc,
			   char *text, size_t tlen, unsigned *len)
{
	csh h;
	cs_insn *ci;
	size_t cnt;

	if (cs_open(a, m, &h) != CS_ERR_OK)
		return -1;
	cnt = cs_disasm(h, bytes, n, pc, 1, &ci);
	if (cnt) {
		snprintf(text, tlen, "%s%s%s", ci->mnemonic, *ci->op_str ? " " : "", ci->op_str);
		*len = ci->size;
		cs_free(ci, cnt);
	}
	cs_close(&h);
	return cnt ? 0 : 1;
}

unsigned s2_riscv_insn_len(uint32_t insn)
{
	return (insn & 3) != 3 ? 2 : 4;
}

int s2_riscv_oracle_text(const char *objdump, char *text, size_t tlen, unsigned *len, uint32_t insn)
{
	snprintf(text, tlen, "%s", objdump);
	*len = s2_riscv_insn_len(insn);
	/* objdump names what it does not know by a data directive. */
	return objdump[0] == '.' ? 1 : 0;
}

int s2_insn_oracle(enum s2_show_arch arch, const uint8_t *bytes, size_t n, uint64_t pc, char *text,
		   size_t tlen, unsigned *len)
{
	uint32_t w = 0;
	char t[1][96];

	text[0] = 0;
	*len = 0;
	switch (arch) {
	case S2_SHOW_X86_64:
	case S2_SHOW_X86_32:
		return oracle_capstone(CS_ARCH_X86,
				       arch == S2_SHOW_X86_64 ? CS_MODE_64 : CS_MODE_32, bytes, n,
				       pc, text, tlen, len);
	case S2_SHOW_ARM64:
		return oracle_capstone(CS_ARCH_ARM64, CS_MODE_ARM, bytes, n, pc, text, tlen, len);
	default:
		for (size_t i = 0; i < 4 && i < n; i++)
			w |= (uint32_t)bytes[i] << (8 * i);
		if (s2_riscv_objdump(&w, 1, t))
			return -1;
		return s2_riscv_oracle_text(t[0], text, tlen, len, w);
	}
}

const char *s2_insn_oracle_name(enum s2_show_arch arch)
{
	return arch == S2_SHOW_RISCV64 ? "objdump" : "capstone";
}

int s2_insn_show(FILE *f, enum s2_show_arch arch, const uint8_t *bytes, size_t n, uint64_t pc)
{
	struct s2_insn d;
	uint32_t w = 0;
	char buf[256];
	unsigned len;
	int r;

	r = s2_insn_oracle(arch, bytes, n, pc, buf, sizeof(buf), &len);
	if (arch == S2_SHOW_RISCV64)
		fprintf(f, "objdump:  %s\n", r < 0 ? "(not run)" : buf);
	else if (r == 0)
		fprintf(f, "capstone: %s (%u bytes)\n", buf, len);
	else
		fprintf(f, "capstone: %s\n", r < 0 ? "(not run)" : "invalid");
	for (size_t i = 0; i < 4 && i < n; i++)
		w |= (uint32_t)bytes[i] << (8 * i);
	switch (arch) {
	case S2_SHOW_X86_64:
	case S2_SHOW_X86_32:
		r = s2_decode_x86(bytes, (unsigned)n,
				  arch == S2_SHOW_X86_64 ? S2_X86_MODE_64 : S2_X86_MODE_32, pc, &d);
		break;
	case S2_SHOW_ARM64: r = s2_decode_arm64(w, pc, &d); break;
	default: r = s2_decode_riscv(w, pc, &d); break;
	}
	if (r)
		fprintf(f, "s2mmu:    refused (%d)\n", r);
	else
		fprintf(f, "s2mmu:    %s\n", s2_insn_describe(&d, buf, sizeof(buf)));
	return r;
}
