// SPDX-License-Identifier: MIT
#include "klib.h"

void *memset(void *s, int c, size_t n)
{
	unsigned char *p = s;

	while (n--)
		*p++ = (unsigned char)c;
	return s;
}

void *memcpy(void *d, const void *s, size_t n)
{
	unsigned char *dp = d;
	const unsigned char *sp = s;

	while (n--)
		*dp++ = *sp++;
	return d;
}

void *memmove(void *d, const void *s, size_t n)
{
	unsigned char *dp = d;
	const unsigned char *sp = s;

	if (dp < sp || dp >= sp + n)
		return memcpy(d, s, n);
	while (n--)
		dp[n] = sp[n];
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;

	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x - *y;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

struct kout {
	char *buf;
	size_t len, pos;
};

static void kout_c(struct kout *o, char c)
{
	if (o->buf) {
		if (o->pos + 1 < o->len)
			o->buf[o->pos] = c;
	} else {
		klib_putc(c);
	}
	o->pos++;
}

static void kout_num(struct kout *o, unsigned long long v, unsigned base, int upper, int width,
		     char pad, int left, int neg)
{
	char tmp[24];
	int n = 0;
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";

	do {
		tmp[n++] = digits[v % base];
		v /= base;
	} while (v);
	if (neg)
		tmp[n++] = '-';
	int len = n;

	if (!left)
		for (int i = len; i < width; i++)
			kout_c(o, pad);
	while (n)
		kout_c(o, tmp[--n]);
	if (left)
		for (int i = len; i < width; i++)
			kout_c(o, ' ');
}

static int kformat(struct kout *o, const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		int longs = 0, width = 0, left = 0;
		char pad = ' ';
		unsigned long long u;
		long long d;

		if (*fmt != '%') {
			kout_c(o, *fmt);
			continue;
		}
		fmt++;
		if (*fmt == '-') {
			left = 1;
			fmt++;
		}
		if (*fmt == '0') {
			pad = '0';
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z') {
			longs += *fmt == 'z' ? 2 : 1;
			fmt++;
		}
		switch (*fmt) {
		case 'c': kout_c(o, (char)va_arg(ap, int)); break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			int n = 0;

			if (!s)
				s = "(null)";
			for (; s[n]; n++)
				kout_c(o, s[n]);
			for (; left && n < width; n++)
				kout_c(o, ' ');
			break;
		}
		case 'd':
		case 'i':
			d = longs >= 2 ? va_arg(ap, long long) :
			    longs      ? va_arg(ap, long) :
					 va_arg(ap, int);
			kout_num(o, d < 0 ? 0ull - (unsigned long long)d : (unsigned long long)d,
				 10, 0, width, pad, left, d < 0);
			break;
		case 'u':
		case 'x':
		case 'X':
			u = longs >= 2 ? va_arg(ap, unsigned long long) :
			    longs      ? va_arg(ap, unsigned long) :
					 va_arg(ap, unsigned int);
			kout_num(o, u, *fmt == 'u' ? 10 : 16, *fmt == 'X', width, pad, left, 0);
			break;
		case 'p':
			kout_c(o, '0');
			kout_c(o, 'x');
			kout_num(o, (uintptr_t)va_arg(ap, void *), 16, 0, 0, ' ', 0, 0);
			break;
		case '%': kout_c(o, '%'); break;
		default:
			kout_c(o, '%');
			if (*fmt)
				kout_c(o, *fmt);
			else
				fmt--;
			break;
		}
	}
	return (int)o->pos;
}

int kvsnprintf(char *buf, size_t len, const char *fmt, va_list ap)
{
	struct kout o = { buf, len, 0 };
	int n = kformat(&o, fmt, ap);

	if (buf && len)
		buf[o.pos < len ? o.pos : len - 1] = 0;
	return n;
}

int ksnprintf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = kvsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n;
}

int kvprintf(const char *fmt, va_list ap)
{
	struct kout o = { NULL, 0, 0 };

	return kformat(&o, fmt, ap);
}

int kprintf(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = kvprintf(fmt, ap);
	va_end(ap);
	return n;
}
