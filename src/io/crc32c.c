/* CRC-32C (Castagnoli): table-driven slicing-by-8 reference, and dispatch
 * to the SSE4.2 crc32 instruction (crc32c_avx2.c) when available. */
#include <pthread.h>

#include "io/io_internal.h"

#define CRC32C_POLY 0x82F63B78u /* reflected 0x1EDC6F41 */

static uint32_t g_tab[8][256];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1u)));
        g_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            g_tab[t][i] = (g_tab[t - 1][i] >> 8) ^ g_tab[0][g_tab[t - 1][i] & 0xFF];
}

uint32_t lq_crc32c_scalar(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&g_once, crc_init);
    const uint8_t *p = data;
    uint32_t c = ~crc;
    while (n >= 8) {
        uint32_t lo = c ^ lq_rd32(p), hi = lq_rd32(p + 4);
        c = g_tab[7][lo & 0xFF] ^ g_tab[6][(lo >> 8) & 0xFF] ^ g_tab[5][(lo >> 16) & 0xFF] ^
            g_tab[4][lo >> 24] ^ g_tab[3][hi & 0xFF] ^ g_tab[2][(hi >> 8) & 0xFF] ^
            g_tab[1][(hi >> 16) & 0xFF] ^ g_tab[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) c = (c >> 8) ^ g_tab[0][(c ^ *p++) & 0xFF];
    return ~c;
}

uint32_t lq_crc32c_at(lq_simd_level level, uint32_t crc, const void *data, size_t n)
{
#if LQ_ARCH_X86
    lq_simd_level det = lq_simd_detected();
    if (level == LQ_SIMD_AUTO || level > det) level = det;
    if (level >= LQ_SIMD_AVX2 && level != LQ_SIMD_NEON) return lq_crc32c_sse42(crc, data, n);
#endif
    (void)level;
    return lq_crc32c_scalar(crc, data, n);
}

uint32_t lq_crc32c(uint32_t crc, const void *data, size_t n)
{
    return lq_crc32c_at(lq_simd_detected(), crc, data, n);
}
