// SPDX-License-Identifier: MIT
/*
 * s2mmu: look at second-stage page tables from the command line.
 *
 *   s2mmu decode   name every field of an entry or register value
 *   s2mmu dump     walk the tables inside a physical-memory image
 *   s2mmu replay   replay a trace of library calls on the hosted library
 *   s2mmu insn     the MMIO instruction decoder next to capstone/objdump
 *
 * docs/tools.md is the manual; `s2mmu help` and `s2mmu CMD --help` say the
 * same in short.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "s2mmu-tool.h"

const char *tool_argv0 = "s2mmu";

static const char main_help[] =
	"usage: s2mmu <command> [options] [args]\n"
	"\n"
	"Look at stage-2 (EPT, NPT, arm64 stage-2, RISC-V G-stage) page tables.\n"
	"\n"
	"commands:\n"
	"  decode   name every field of an entry (--fmt F) or register (--reg R) value\n"
	"  dump     walk the tables in a raw physical-memory image, print the mappings\n"
	"  replay   replay a trace of library calls on the hosted library and check it\n"
	"  insn     decode an instruction for MMIO emulation, next to capstone/objdump\n"
	"  help     this text; `s2mmu CMD --help` describes CMD\n"
	"\n"
	"Every command takes --json (one JSON document on stdout) and --help.\n"
	"exit status: 0 ok, 1 something wrong was found (reserved bits, malformed\n"
	"tables, a failed check, an instruction refused), 2 usage or syntax error, 3 I/O error,\n"
	"4 the library refused a call (replay).\n";

void usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "s2mmu %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(s2mmu %s --help for usage)\n", cmd);
}

static int dispatch(int argc, char **argv)
{
	const char *cmd = argv[0];

	if (!strcmp(cmd, "decode"))
		return cmd_decode(argc, argv);
	if (!strcmp(cmd, "dump"))
		return cmd_dump(argc, argv);
	if (!strcmp(cmd, "replay"))
		return cmd_replay(argc, argv);
	if (!strcmp(cmd, "insn"))
		return cmd_insn(argc, argv);
	fprintf(stderr, "s2mmu: unknown command '%s'\n\n%s", cmd, main_help);
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	if (!cmd) {
		fputs(main_help, stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		if (argc > 2) {
			char help[] = "--help";
			char *sub[] = { argv[2], help, NULL };

			return dispatch(2, sub);
		}
		fputs(main_help, stdout);
		return EXIT_OK;
	}
	if (!strcmp(cmd, "--version")) {
		puts("s2mmu " S2MMU_VERSION);
		return EXIT_OK;
	}
	return dispatch(argc - 1, argv + 1);
}
