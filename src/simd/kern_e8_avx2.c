/* E8 row kernels for AVX2: a tile is two registers of 8 row lanes (bytes
 * 0..31 of a sub-unit are rows 0..7). Bytes u + 128 are split as
 * (c & 127) + 128 (c >> 7) so that vpmaddubsw cannot saturate; the beta of
 * each row comes from two vpermps and a blend. Same operations in the same
 * order as the scalar reference (kern_e8.h). */
#include <immintrin.h>
#include <string.h>

#include "simd/kern_e8.h"

#define NB_MAX 4

static inline __attribute__((always_inline)) __m256 beta_of(const uint8_t *ti, int h, __m256 lo,
                                                             __m256 hi)
{
    __m256i ix = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(ti + 8 * h)));
    __m256 a = _mm256_permutevar8x32_ps(lo, ix), b = _mm256_permutevar8x32_ps(hi, ix);
    return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(_mm256_slli_epi32(ix, 28)));
}

static inline __attribute__((always_inline)) void
fast_tile(const lq_e8_pack *p, const void *act, size_t b0, size_t nb, size_t tile, float *Y,
          size_t ldy, size_t nrows)
{
    lq_e8_act_view a[NB_MAX];
    for (size_t i = 0; i < nb; i++) a[i] = lq_e8_act_get(p, act, LQ_KERNEL_FAST, b0 + i);
    const uint8_t *tc = p->coords + tile * p->nvec * 128;
    const uint8_t *ti = p->idx + tile * p->nvec * 16;
    const float *sc = p->scale + tile * p->ngroups * 16;
    const __m256 hlo = _mm256_loadu_ps(p->hb), hhi = _mm256_loadu_ps(p->hb + 8);
    const __m256i ones = _mm256_set1_epi16(1), m7 = _mm256_set1_epi8(127), one8 = _mm256_set1_epi8(1);
    __m256 y[NB_MAX][2];
    for (size_t i = 0; i < nb; i++) y[i][0] = y[i][1] = _mm256_setzero_ps();
    size_t j = 0;
    for (size_t g = 0; g < p->ngroups; g++) {
        size_t j1 = (g + 1) * p->group / 8;
        if (j1 > p->nvec) j1 = p->nvec;
        __m256 acc[NB_MAX][2];
        for (size_t i = 0; i < nb; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
        for (; j < j1; j++) {
            for (int h = 0; h < 2; h++) {
                __m256i c0 = _mm256_loadu_si256((const __m256i *)(const void *)(tc + j * 128 + 32 * h));
                __m256i c1 = _mm256_loadu_si256((const __m256i *)(const void *)(tc + j * 128 + 64 + 32 * h));
                __m256i l0 = _mm256_and_si256(c0, m7), l1 = _mm256_and_si256(c1, m7);
                __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(c0, 7), one8);
                __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(c1, 7), one8);
                __m256 beta = beta_of(ti + j * 16, h, hlo, hhi);
                for (size_t i = 0; i < nb; i++) {
                    int32_t x0, x1;
                    memcpy(&x0, a[i].q + 8 * j, 4);
                    memcpy(&x1, a[i].q + 8 * j + 4, 4);
                    __m256i xb0 = _mm256_set1_epi32(x0), xb1 = _mm256_set1_epi32(x1);
                    /* low parts: each pair sum <= 2 * 127 * 127 fits int16, but
                     * two of them may not: widen before adding. High bits:
                     * |sum| <= 4 * 127. */
                    __m256i lo = _mm256_add_epi32(
                        _mm256_madd_epi16(_mm256_maddubs_epi16(l0, xb0), ones),
                        _mm256_madd_epi16(_mm256_maddubs_epi16(l1, xb1), ones));
                    __m256i hi = _mm256_add_epi16(_mm256_maddubs_epi16(h0, xb0),
                                                  _mm256_maddubs_epi16(h1, xb1));
                    __m256i s = _mm256_add_epi32(lo,
                                                 _mm256_slli_epi32(_mm256_madd_epi16(hi, ones), 7));
                    s = _mm256_sub_epi32(s, _mm256_set1_epi32(a[i].qs[j]));
                    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(a[i].d[j]));
                    acc[i][h] = _mm256_add_ps(acc[i][h], _mm256_mul_ps(v, beta));
                }
            }
        }
        for (int h = 0; h < 2; h++) {
            __m256 s = _mm256_loadu_ps(sc + g * 16 + 8 * h);
            for (size_t i = 0; i < nb; i++)
                y[i][h] = _mm256_add_ps(y[i][h], _mm256_mul_ps(s, acc[i][h]));
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

static inline __attribute__((always_inline)) void
exact_tile(const lq_e8_pack *p, const void *act, size_t b0, size_t nb, size_t tile, float *Y,
           size_t ldy, size_t nrows)
{
    lq_e8_act_view a[NB_MAX];
    for (size_t i = 0; i < nb; i++) a[i] = lq_e8_act_get(p, act, LQ_KERNEL_EXACT, b0 + i);
    const uint8_t *tc = p->coords + tile * p->nvec * 128;
    const uint8_t *ti = p->idx + tile * p->nvec * 16;
    const float *sc = p->scale + tile * p->ngroups * 16;
    const __m256 hlo = _mm256_loadu_ps(p->hb), hhi = _mm256_loadu_ps(p->hb + 8);
    const __m256i mff = _mm256_set1_epi32(255), o128 = _mm256_set1_epi32(128);
    for (int h = 0; h < 2; h++) {
        __m256 y[NB_MAX];
        for (size_t i = 0; i < nb; i++) y[i] = _mm256_setzero_ps();
        size_t j = 0;
        for (size_t g = 0; g < p->ngroups; g++) {
            size_t j1 = (g + 1) * p->group / 8;
            if (j1 > p->nvec) j1 = p->nvec;
            __m256 acc[NB_MAX];
            for (size_t i = 0; i < nb; i++) acc[i] = _mm256_setzero_ps();
            for (; j < j1; j++) {
                __m256 beta = beta_of(ti + j * 16, h, hlo, hhi);
                __m256 w[8];
                for (int s = 0; s < 2; s++) {
                    __m256i u = _mm256_loadu_si256((const __m256i *)(const void *)(tc + j * 128 + 64 * s + 32 * h));
                    for (int kk = 0; kk < 4; kk++)
                        w[4 * s + kk] = _mm256_cvtepi32_ps(_mm256_sub_epi32(
                            _mm256_and_si256(_mm256_srli_epi32(u, 8 * kk), mff), o128));
                }
                for (size_t i = 0; i < nb; i++) {
                    const float *x = a[i].x + 8 * j;
                    __m256 d0 = _mm256_mul_ps(w[0], _mm256_set1_ps(x[0]));
                    __m256 d1 = _mm256_mul_ps(w[1], _mm256_set1_ps(x[1]));
                    d0 = _mm256_fmadd_ps(w[2], _mm256_set1_ps(x[2]), d0);
                    d1 = _mm256_fmadd_ps(w[3], _mm256_set1_ps(x[3]), d1);
                    d0 = _mm256_fmadd_ps(w[4], _mm256_set1_ps(x[4]), d0);
                    d1 = _mm256_fmadd_ps(w[5], _mm256_set1_ps(x[5]), d1);
                    d0 = _mm256_fmadd_ps(w[6], _mm256_set1_ps(x[6]), d0);
                    d1 = _mm256_fmadd_ps(w[7], _mm256_set1_ps(x[7]), d1);
                    acc[i] = _mm256_fmadd_ps(beta, _mm256_add_ps(d0, d1), acc[i]);
                }
            }
            __m256 s = _mm256_loadu_ps(sc + g * 16 + 8 * h);
            for (size_t i = 0; i < nb; i++) y[i] = _mm256_fmadd_ps(s, acc[i], y[i]);
        }
        size_t n = nrows < 16 ? nrows : 16;
        for (size_t i = 0; i < nb; i++) {
            if (n <= 8 * (size_t)h) break;
            size_t m = n - 8 * (size_t)h > 8 ? 8 : n - 8 * (size_t)h;
            float tmp[8];
            _mm256_storeu_ps(tmp, y[i]);
            memcpy(Y + (b0 + i) * ldy + tile * LQ_KERN_TILE + 8 * h, tmp, m * sizeof(float));
        }
    }
}

#define ROWS_FN(name, KERN)                                                                   \
    void name(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,          \
              size_t r0, size_t r1)                                                           \
    {                                                                                         \
        const lq_e8_pack *p = pack;                                                           \
        for (size_t tile = r0 / LQ_KERN_TILE; tile * LQ_KERN_TILE < r1; tile++)                \
            for (size_t b0 = 0; b0 < batch; b0 += NB_MAX) {                                   \
                size_t nb = batch - b0 < NB_MAX ? batch - b0 : NB_MAX;                        \
                size_t nr = r1 - tile * LQ_KERN_TILE;                                         \
                switch (nb) {                                                                 \
                case 1: KERN(p, act, b0, 1, tile, Y, ldy, nr); break;                         \
                case 2: KERN(p, act, b0, 2, tile, Y, ldy, nr); break;                         \
                case 3: KERN(p, act, b0, 3, tile, Y, ldy, nr); break;                         \
                default: KERN(p, act, b0, 4, tile, Y, ldy, nr); break;                        \
                }                                                                             \
            }                                                                                 \
    }

ROWS_FN(lq_kern_e8_fast_avx2, fast_tile)
ROWS_FN(lq_kern_e8_exact_avx2, exact_tile)
