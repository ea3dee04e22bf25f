/* BCQ FAST path for AVX2: the 64-byte blocks of kern_bcq.h as two 32-byte
 * halves (128-bit lanes 0-1 and 2-3), 32 lookups per vpshufb pair. Same
 * integer sums and float operations per row as the scalar reference. */
#include <immintrin.h>
#include <string.h>

#include "simd/kern_bcq.h"

#define NB_MAX 4

static inline __attribute__((always_inline)) void fast_tile(const lq_lut_pack *p, const void *act,
                                                            size_t b0, size_t nb, size_t tile,
                                                            float *Y, size_t ldy, size_t nrows)
{
    const lq_bcq_fmt *f = p->fmt;
    size_t stride = lq_bcq_fast_stride(f), og = lq_kern_roundup(f->ngroups * sizeof(float), 64);
    size_t nsg = f->k + (f->has_off ? 1 : 0);
    const float *mult = p->mult + tile * p->nseg * LQ_KERN_TILE;
    const __m256i m4 = _mm256_set1_epi8(15);
    const unsigned char *base[NB_MAX];
    for (size_t i = 0; i < nb; i++) base[i] = (const unsigned char *)act + (b0 + i) * stride;
    __m256 y[NB_MAX][2];
    for (size_t i = 0; i < nb; i++) y[i][0] = y[i][1] = _mm256_setzero_ps();
    for (size_t g = 0; g < f->ngroups; g++) {
        for (unsigned pl = 0; pl < f->k; pl++) {
            const uint8_t *fc = f->fcodes + ((tile * f->k + pl) * f->nkb) * 64;
            __m256i a32[NB_MAX][2];
            for (size_t i = 0; i < nb; i++) a32[i][0] = a32[i][1] = _mm256_setzero_si256();
            for (size_t kb0 = f->kb0[g]; kb0 < f->kb0[g + 1]; kb0 += 64) {
                size_t kb1 = kb0 + 64 < f->kb0[g + 1] ? kb0 + 64 : f->kb0[g + 1];
                __m256i a16[NB_MAX]; /* per row, int16 */
                for (size_t i = 0; i < nb; i++) a16[i] = _mm256_setzero_si256();
                for (size_t kb = kb0; kb < kb1; kb++) {
                    for (int h = 0; h < 2; h++) {
                        __m256i v = _mm256_loadu_si256(
                            (const __m256i *)(const void *)(fc + kb * 64 + 32 * h));
                        __m256i lo = _mm256_and_si256(v, m4);
                        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                        for (size_t i = 0; i < nb; i++) {
                            const int8_t *tab =
                                (const int8_t *)(base[i] + 2 * og) + kb * 128 + 32 * h;
                            __m256i s = _mm256_add_epi8(
                                _mm256_shuffle_epi8(
                                    _mm256_loadu_si256((const __m256i *)(const void *)tab), lo),
                                _mm256_shuffle_epi8(
                                    _mm256_loadu_si256((const __m256i *)(const void *)(tab + 64)),
                                    hi));
                            /* s: 16 rows of lane 2h, 16 rows of lane 2h+1 */
                            __m256i w = _mm256_add_epi16(
                                _mm256_cvtepi8_epi16(_mm256_castsi256_si128(s)),
                                _mm256_cvtepi8_epi16(_mm256_extracti128_si256(s, 1)));
                            a16[i] = _mm256_add_epi16(a16[i], w);
                        }
                    }
                }
                for (size_t i = 0; i < nb; i++) {
                    /* a16 holds 16 int16 = rows 0..15 */
                    a32[i][0] = _mm256_add_epi32(
                        a32[i][0], _mm256_cvtepi16_epi32(_mm256_castsi256_si128(a16[i])));
                    a32[i][1] = _mm256_add_epi32(
                        a32[i][1], _mm256_cvtepi16_epi32(_mm256_extracti128_si256(a16[i], 1)));
                }
            }
            for (int h = 0; h < 2; h++) {
                __m256 m = _mm256_loadu_ps(mult + (g * nsg + pl) * LQ_KERN_TILE + 8 * h);
                for (size_t i = 0; i < nb; i++) {
                    const float *d = (const float *)(const void *)base[i];
                    __m256 v = _mm256_mul_ps(_mm256_set1_ps(d[g]), _mm256_cvtepi32_ps(a32[i][h]));
                    y[i][h] = _mm256_add_ps(y[i][h], _mm256_mul_ps(m, v));
                }
            }
        }
        if (f->has_off)
            for (int h = 0; h < 2; h++) {
                __m256 m = _mm256_loadu_ps(mult + (g * nsg + f->k) * LQ_KERN_TILE + 8 * h);
                for (size_t i = 0; i < nb; i++) {
                    const float *xg = (const float *)(const void *)(base[i] + og);
                    y[i][h] = _mm256_add_ps(y[i][h], _mm256_mul_ps(m, _mm256_set1_ps(xg[g])));
                }
            }
    }
    size_t n = nrows < 16 ? nrows : 16;
    for (size_t i = 0; i < nb; i++) {
        float tmp[16];
        _mm256_storeu_ps(tmp, y[i][0]);
        _mm256_storeu_ps(tmp + 8, y[i][1]);
        memcpy(Y + (b0 + i) * ldy + tile * LQ_KERN_TILE, tmp, n * sizeof(float));
    }
}

void lq_kern_bcq_fast_avx2(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                           size_t r0, size_t r1)
{
    const lq_lut_pack *p = pack;
    for (size_t tile = r0 / LQ_KERN_TILE; tile * LQ_KERN_TILE < r1; tile++)
        for (size_t b0 = 0; b0 < batch; b0 += NB_MAX) {
            size_t nb = batch - b0 < NB_MAX ? batch - b0 : NB_MAX, nr = r1 - tile * LQ_KERN_TILE;
            switch (nb) {
            case 1: fast_tile(p, act, b0, 1, tile, Y, ldy, nr); break;
            case 2: fast_tile(p, act, b0, 2, tile, Y, ldy, nr); break;
            case 3: fast_tile(p, act, b0, 3, tile, Y, ldy, nr); break;
            default: fast_tile(p, act, b0, 4, tile, Y, ldy, nr); break;
            }
        }
}
