// SPDX-License-Identifier: MIT
/*
 * The libgcc routines the library needs on riscv64 without Zbb: gcc turns
 * __builtin_clzll/ctzll/popcountll (core/dirty.c) into calls to these, and
 * the toolchain's libgcc is built for the lp64d ABI, which does not link
 * with this soft-float (lp64) image. Straight-line code, so the compiler
 * cannot recognise an idiom here and call them back.
 */
#include <stdint.h>

int __clzdi2(uint64_t x);
int __ctzdi2(uint64_t x);
int __popcountdi2(uint64_t x);

/* Leading zeros of a nonzero @x (libgcc leaves 0 undefined too). */
int __clzdi2(uint64_t x)
{
	int n = 0;

	if (!(x >> 32)) {
		n += 32;
		x <<= 32;
	}
	if (!(x >> 48)) {
		n += 16;
		x <<= 16;
	}
	if (!(x >> 56)) {
		n += 8;
		x <<= 8;
	}
	if (!(x >> 60)) {
		n += 4;
		x <<= 4;
	}
	if (!(x >> 62)) {
		n += 2;
		x <<= 2;
	}
	if (!(x >> 63))
		n += 1;
	return n;
}

/* Trailing zeros of a nonzero @x. */
int __ctzdi2(uint64_t x)
{
	int n = 0;

	if (!(x & 0xffffffffull)) {
		n += 32;
		x >>= 32;
	}
	if (!(x & 0xffffull)) {
		n += 16;
		x >>= 16;
	}
	if (!(x & 0xffull)) {
		n += 8;
		x >>= 8;
	}
	if (!(x & 0xfull)) {
		n += 4;
		x >>= 4;
	}
	if (!(x & 0x3ull)) {
		n += 2;
		x >>= 2;
	}
	if (!(x & 0x1ull))
		n += 1;
	return n;
}

int __popcountdi2(uint64_t x)
{
	x = x - ((x >> 1) & 0x5555555555555555ull);
	x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (int)((x * 0x0101010101010101ull) >> 56);
}
