/*
 * crc32c: CRC32C (Castagnoli), the checksum of every stored record and
 * journal record.
 */
#include "lib/crc32c.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static bool crc_is_hw; /* the CPU computes CRC32C itself */

static void
crc_init(void)
{
#if defined(__x86_64__)
	__builtin_cpu_init();
	crc_is_hw = __builtin_cpu_supports("sse4.2");
#endif
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] =
				(crc_table[t - 1][i] >> 8) ^
				crc_table[0][crc_table[t - 1][i] & 0xff];
}

#if defined(__x86_64__)
/* SSE4.2's crc32 instruction is CRC32C (Castagnoli), 8 bytes at a time:
 * several times the table's speed, and the CRC was the broker's costliest
 * function of its own (every stored and every delivered record). */
__attribute__((target("sse4.2"))) static uint32_t
crc32c_hw(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = ~crc;

	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
		p += 8;
		len -= 8;
	}
	while (len > 0) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
		len--;
	}
	return ~(uint32_t)c;
}
#endif

uint32_t
crc32c(uint32_t crc, const void *buf, size_t len)
{
	(void)pthread_once(&crc_once, crc_init); /* cannot fail once inited */
#if defined(__x86_64__)
	if (crc_is_hw)
		return crc32c_hw(crc, buf, len);
#endif
	return crc32c_portable(crc, buf, len);
}

int
crc32c_is_hw(void)
{
	(void)pthread_once(&crc_once, crc_init);
	return crc_is_hw;
}

/* Slicing-by-8 over aligned 8-byte words, byte at a time at both ends. */
uint32_t
crc32c_portable(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	(void)pthread_once(&crc_once, crc_init); /* cannot fail once inited */
	crc = ~crc;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	while (len > 0 && ((uintptr_t)p & 7) != 0) {
		crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
		len--;
	}
	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		w ^= crc;
		crc = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
		      crc_table[5][(w >> 16) & 0xff] ^
		      crc_table[4][(w >> 24) & 0xff] ^
		      crc_table[3][(w >> 32) & 0xff] ^
		      crc_table[2][(w >> 40) & 0xff] ^
		      crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
		p += 8;
		len -= 8;
	}
#endif
	while (len > 0) {
		crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
		len--;
	}
	return ~crc;
}
