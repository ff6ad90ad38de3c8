/* UTF-8 validation and encoding shared by the JSON parser and writer
 * (internal to common). Validation follows RFC 3629's table: no overlong
 * forms, no UTF-16 surrogates, nothing above U+10FFFF. */
#ifndef FLEXO_JSON_UTF8_H
#define FLEXO_JSON_UTF8_H

#include <stddef.h>

/* Length (1-4) of the valid UTF-8 sequence at p (avail bytes readable), or 0
 * if the bytes there are not valid UTF-8. */
static inline size_t fx_utf8_valid_seq(const unsigned char *p, size_t avail)
{
	unsigned c = p[0];
	unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4;
	else
		return 0; /* continuation byte, C0/C1 overlong lead, F5..FF */
	if (c == 0xE0)
		lo = 0xA0; /* overlong 3-byte */
	else if (c == 0xED)
		hi = 0x9F; /* surrogates D800..DFFF */
	else if (c == 0xF0)
		lo = 0x90; /* overlong 4-byte */
	else if (c == 0xF4)
		hi = 0x8F; /* above U+10FFFF */
	if (avail < n)
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return n;
}

/* Encodes code point cp (<= 0x10FFFF, not a surrogate) into out; returns
 * the number of bytes (1-4). */
static inline size_t fx_utf8_encode(unsigned cp, unsigned char out[4])
{
	if (cp < 0x80) {
		out[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (unsigned char)(0xC0 | (cp >> 6));
		out[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (unsigned char)(0xE0 | (cp >> 12));
		out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (unsigned char)(0xF0 | (cp >> 18));
	out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}

#endif
