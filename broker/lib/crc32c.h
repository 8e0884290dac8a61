/*
 * crc32c: CRC32C (Castagnoli, polynomial 0x1EDC6F41 reflected), shared by
 * the store's records and the journal's. Thread-safe.
 */
#ifndef RINGMQ_LIB_CRC32C_H
#define RINGMQ_LIB_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC32C of buf, continuing from crc (start with 0): with the CPU's
 * crc32 instruction where it has one, else portable code. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* The same from tables only, on any CPU (tests compare the two). */
uint32_t crc32c_portable(uint32_t crc, const void *buf, size_t len);

/* 1 when crc32c uses the CPU's instruction, else 0. */
int crc32c_is_hw(void);

#endif
