/* SPDX-License-Identifier: MIT */
/*
 * The little libc the bare-metal example hypervisors need: memory functions
 * (the compiler may emit calls to them even with -ffreestanding), a printf
 * over a per-target putc, and the s2mmu glue shared by every example.
 */
#ifndef S2_EXAMPLES_KLIB_H
#define S2_EXAMPLES_KLIB_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

void *memset(void *s, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

/* Provided by each target: write one character to its console. */
void klib_putc(char c);

/* printf subset: %c %s %d %i %u %x %X %p, with l/ll/z, width, '0' and '-'. */
int kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int kvprintf(const char *fmt, va_list ap);
int kvsnprintf(char *buf, size_t len, const char *fmt, va_list ap);
int ksnprintf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
