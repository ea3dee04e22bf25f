/* Table kernels for AVX2: a tile is two registers of 8 row lanes; lookups
 * by vpermps (K <= 8), two vpermps and a blend on bit 3 (K = 16) when the
 * tile's rows share their tables, otherwise vgatherdps. Same additions in
 * the same order as the scalar reference (kern_lut.h). */
#include <immintrin.h>
#include <string.h>

#include "simd/kern_lut.h"

#define NB_MAX 4

static inline __attribute__((always_inline)) void
load_codes(const lq_lut_pack *p, const uint8_t *tc, size_t pos, __m256i c[2])
{
    switch (p->cw) {
    case 4: {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(tc + (pos >> 1) * 16));
        if (pos & 1) v = _mm_srli_epi16(v, 4);
        v = _mm_and_si128(v, _mm_set1_epi8(15));
        c[0] = _mm256_cvtepu8_epi32(v);
        c[1] = _mm256_cvtepu8_epi32(_mm_srli_si128(v, 8));
        break;
    }
    case 8: {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(tc + pos * 16));
        c[0] = _mm256_cvtepu8_epi32(v);
        c[1] = _mm256_cvtepu8_epi32(_mm_srli_si128(v, 8));
        break;
    }
    default: {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(tc + pos * 32));
        c[0] = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(v));
        c[1] = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(v, 1));
        break;
    }
    }
}

/* One lookup for 8 lanes. mode 1: K <= 8 permute; 2: K == 16 permutes;
 * 0: gather with per-lane base. */
static inline __attribute__((always_inline)) __m256 look(int mode, const float *T, __m256i c,
                                                         __m256i base)
{
    if (mode == 1) return _mm256_permutevar8x32_ps(_mm256_loadu_ps(T), c);
    if (mode == 2) {
        __m256 lo = _mm256_permutevar8x32_ps(_mm256_loadu_ps(T), c);
        __m256 hi = _mm256_permutevar8x32_ps(_mm256_loadu_ps(T + 8), c);
        return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(c, 28)));
    }
    return _mm256_i32gather_ps(T, _mm256_add_epi32(base, c), 4);
}

static inline __attribute__((always_inline)) void lut_tile(const lq_lut_pack *p, const float *act,
                                                           size_t stride, size_t b0, size_t nb,
                                                           int mode, size_t tile, float *Y,
                                                           size_t ldy, size_t nrows)
{
    const uint8_t *tc = p->codes + tile * p->tile_code_bytes;
    const float *mult = p->mult + tile * p->nseg * LQ_KERN_TILE;
    __m256i base[2];
    for (int h = 0; h < 2; h++)
        base[h] = _mm256_mullo_epi32(
            _mm256_loadu_si256(
                (const __m256i *)(const void *)(p->lane_set + tile * LQ_KERN_TILE + 8 * h)),
            _mm256_set1_epi32((int)p->tabset));
    size_t set0 = (size_t)p->lane_set[tile * LQ_KERN_TILE] * p->tabset;
    __m256 y[NB_MAX][2];
    for (size_t i = 0; i < nb; i++) y[i][0] = y[i][1] = _mm256_setzero_ps();
    for (size_t s = 0; s < p->nseg; s++) {
        __m256 a[NB_MAX][2][2];
        for (size_t i = 0; i < nb; i++)
            for (int h = 0; h < 2; h++) a[i][0][h] = a[i][1][h] = _mm256_setzero_ps();
        for (size_t q = p->seg[s]; q < p->seg[s + 1]; q++) {
            int par = (int)((q - p->seg[s]) & 1);
            __m256i c[2];
            load_codes(p, tc, q, c);
            for (size_t i = 0; i < nb; i++) {
                const float *T = act + (b0 + i) * stride;
                const float *Tq = mode ? T + set0 + p->tabofs[q] : T + p->tabofs[q];
                for (int h = 0; h < 2; h++)
                    a[i][par][h] = _mm256_add_ps(a[i][par][h], look(mode, Tq, c[h], base[h]));
            }
        }
        for (int h = 0; h < 2; h++) {
            __m256 m = _mm256_loadu_ps(mult + s * LQ_KERN_TILE + 8 * h);
            for (size_t i = 0; i < nb; i++)
                y[i][h] =
                    _mm256_add_ps(y[i][h], _mm256_mul_ps(m, _mm256_add_ps(a[i][0][h], a[i][1][h])));
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

void lq_kern_lut_avx2(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                      size_t r0, size_t r1)
{
    const lq_lut_pack *p = pack;
    size_t stride = lq_lut_act_stride(p) / sizeof(float);
    const float *A = act;
    for (size_t tile = r0 / LQ_KERN_TILE; tile * LQ_KERN_TILE < r1; tile++) {
        int mode = !p->uniform[tile] ? 0 : p->K <= 8 ? 1 : p->K == 16 ? 2 : 0;
        size_t nrows = r1 - tile * LQ_KERN_TILE;
        for (size_t b0 = 0; b0 < batch; b0 += NB_MAX) {
            size_t nb = batch - b0 < NB_MAX ? batch - b0 : NB_MAX;
#define LUT_CASE(NB)                                                                               \
    if (mode == 1)                                                                                 \
        lut_tile(p, A, stride, b0, NB, 1, tile, Y, ldy, nrows);                                    \
    else if (mode == 2)                                                                            \
        lut_tile(p, A, stride, b0, NB, 2, tile, Y, ldy, nrows);                                    \
    else                                                                                           \
        lut_tile(p, A, stride, b0, NB, 0, tile, Y, ldy, nrows);
            switch (nb) {
            case 1: LUT_CASE(1) break;
            case 2: LUT_CASE(2) break;
            case 3: LUT_CASE(3) break;
            default: LUT_CASE(4) break;
            }
#undef LUT_CASE
        }
    }
}

void lq_lut_dot_avx2(const float *cbT, size_t K, size_t d, const float *x, float *t)
{
    for (size_t e = 0; e < K; e += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (size_t i = 0; i < d; i++)
            acc = _mm256_add_ps(
                acc, _mm256_mul_ps(_mm256_loadu_ps(cbT + i * K + e), _mm256_set1_ps(x[i])));
        _mm256_storeu_ps(t + e, acc);
    }
}
