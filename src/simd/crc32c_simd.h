/* CRC-32C with the SSE4.2 instruction (src/simd/crc32c_avx2.c), the twin of
 * lq_crc32c_scalar in src/io/crc32c.c (internal; leaf). */
#ifndef LQ_SIMD_CRC32C_SIMD_H
#define LQ_SIMD_CRC32C_SIMD_H

#include <stddef.h>
#include <stdint.h>

#if LQ_ARCH_X86
uint32_t lq_crc32c_sse42(uint32_t crc, const void *data, size_t n);
#endif

#endif
