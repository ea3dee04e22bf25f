/* BCQ FAST path for AVX-512 (BW): 64 table lookups per vpshufb pair; the
 * 7-bit lookups of a low and a high nibble add in int8, then widen to
 * int16 accumulators (flushed to int32 every 64 blocks). Same integer sums
 * and float operations per row as the scalar reference (kern_bcq.h). */
#include <immintrin.h>

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
    const __m512i m4 = _mm512_set1_epi8(15);
    const unsigned char *base[NB_MAX];
    for (size_t i = 0; i < nb; i++) base[i] = (const unsigned char *)act + (b0 + i) * stride;
    __m512 y[NB_MAX];
    for (size_t i = 0; i < nb; i++) y[i] = _mm512_setzero_ps();
    for (size_t g = 0; g < f->ngroups; g++) {
        for (unsigned pl = 0; pl < f->k; pl++) {
            const uint8_t *fc = f->fcodes + ((tile * f->k + pl) * f->nkb) * 64;
            __m512i a32[NB_MAX];
            for (size_t i = 0; i < nb; i++) a32[i] = _mm512_setzero_si512();
            for (size_t kb0 = f->kb0[g]; kb0 < f->kb0[g + 1]; kb0 += 64) {
                size_t kb1 = kb0 + 64 < f->kb0[g + 1] ? kb0 + 64 : f->kb0[g + 1];
                __m512i a16[NB_MAX];
                for (size_t i = 0; i < nb; i++) a16[i] = _mm512_setzero_si512();
                for (size_t kb = kb0; kb < kb1; kb++) {
                    __m512i v = _mm512_loadu_si512((const void *)(fc + kb * 64));
                    __m512i lo = _mm512_and_si512(v, m4);
                    __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
                    for (size_t i = 0; i < nb; i++) {
                        const int8_t *tab = (const int8_t *)(base[i] + 2 * og) + kb * 128;
                        __m512i s = _mm512_add_epi8(
                            _mm512_shuffle_epi8(_mm512_loadu_si512((const void *)tab), lo),
                            _mm512_shuffle_epi8(_mm512_loadu_si512((const void *)(tab + 64)), hi));
                        a16[i] = _mm512_add_epi16(
                            a16[i], _mm512_add_epi16(
                                        _mm512_cvtepi8_epi16(_mm512_castsi512_si256(s)),
                                        _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(s, 1))));
                    }
                }
                /* a16: [lanes 0,2 | lanes 1,3] x 16 rows: fold to rows */
                for (size_t i = 0; i < nb; i++) {
                    __m256i h = _mm256_add_epi16(_mm512_castsi512_si256(a16[i]),
                                                 _mm512_extracti64x4_epi64(a16[i], 1));
                    __m512i w = _mm512_cvtepi16_epi32(h);
                    a32[i] = _mm512_add_epi32(a32[i], w);
                }
            }
            __m512 m = _mm512_loadu_ps(mult + (g * nsg + pl) * LQ_KERN_TILE);
            for (size_t i = 0; i < nb; i++) {
                const float *d = (const float *)(const void *)base[i];
                __m512 v = _mm512_mul_ps(_mm512_set1_ps(d[g]), _mm512_cvtepi32_ps(a32[i]));
                y[i] = _mm512_add_ps(y[i], _mm512_mul_ps(m, v));
            }
        }
        if (f->has_off) {
            __m512 m = _mm512_loadu_ps(mult + (g * nsg + f->k) * LQ_KERN_TILE);
            for (size_t i = 0; i < nb; i++) {
                const float *xg = (const float *)(const void *)(base[i] + og);
                y[i] = _mm512_add_ps(y[i], _mm512_mul_ps(m, _mm512_set1_ps(xg[g])));
            }
        }
    }
    size_t n = nrows < 16 ? nrows : 16;
    for (size_t i = 0; i < nb; i++)
        _mm512_mask_storeu_ps(Y + (b0 + i) * ldy + tile * LQ_KERN_TILE, (__mmask16)((1u << n) - 1),
                              y[i]);
}

void lq_kern_bcq_fast_avx512(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
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
