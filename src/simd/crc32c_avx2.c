/* CRC-32C with the SSE4.2 crc32 instruction (every AVX2 CPU has it; this
 * file is compiled with -mavx2, which enables SSE4.2). Twin of
 * lq_crc32c_scalar, tested against it. */
#include <nmmintrin.h>
#include <string.h>

#include "simd/crc32c_simd.h"

uint32_t lq_crc32c_sse42(uint32_t crc, const void *data, size_t n)
{
    const uint8_t *p = data;
    uint64_t c = ~crc;
    while (n && ((uintptr_t)p & 7)) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        n--;
    }
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
        p += 8;
        n -= 8;
    }
    while (n--) c = _mm_crc32_u8((uint32_t)c, *p++);
    return ~(uint32_t)c;
}
