/* SPDX-License-Identifier: MIT */
/*
 * A flattened device tree writer (devicetree specification v0.4, chapter 5):
 * a structure block of FDT_BEGIN_NODE / FDT_PROP / FDT_END_NODE tokens and a
 * strings block of property names, behind a 40-byte header, all big-endian.
 * The hypervisor builds the guest's tree at boot: the CPU count, the RAM,
 * the initrd and the command line are its own facts.
 */
#ifndef A64_LINUX_FDT_H
#define A64_LINUX_FDT_H

#include <stddef.h>
#include <stdint.h>

struct fdt {
	uint8_t *buf;
	size_t cap;
	uint32_t *st; /* structure block, built in place after the header */
	size_t st_len;
	char strs[512]; /* strings block, copied behind the structure at the end */
	size_t strs_len;
	int err;
};

void fdt_begin(struct fdt *f, void *buf, size_t cap);
void fdt_node(struct fdt *f, const char *name);
void fdt_end_node(struct fdt *f);
void fdt_prop(struct fdt *f, const char *name, const void *val, size_t len);
void fdt_prop_str(struct fdt *f, const char *name, const char *s);
/* @n big-endian cells. */
void fdt_prop_cells(struct fdt *f, const char *name, const uint32_t *cells, unsigned n);
void fdt_prop_u32(struct fdt *f, const char *name, uint32_t v);
void fdt_prop_u64(struct fdt *f, const char *name, uint64_t v);
/* Returns the blob's size, or 0 when it did not fit. */
size_t fdt_finish(struct fdt *f);

#endif
