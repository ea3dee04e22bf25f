/* E8 row kernels for AVX-512 (VNNI): 16 rows in the lanes; per 8-vector two
 * vpdpbusd, the beta of each row by vpermps from the 16-entry table. Same
 * operations in the same order as the scalar reference (kern_e8.h). */
#include <immintrin.h>
#include <string.h>

#include "simd/kern_e8.h"

#define NB_MAX 4

static inline __attribute__((always_inline)) void
fast_tile(const lq_e8_pack *p, const void *act, size_t b0, size_t nb, size_t tile, float *Y,
          size_t ldy, size_t nrows)
{
    lq_e8_act_view a[NB_MAX];
    for (size_t i = 0; i < nb; i++) a[i] = lq_e8_act_get(p, act, LQ_KERNEL_FAST, b0 + i);
    const uint8_t *tc = p->coords + tile * p->nvec * 128;
    const uint8_t *ti = p->idx + tile * p->nvec * 16;
    const float *sc = p->scale + tile * p->ngroups * 16;
    const __m512 hb = _mm512_loadu_ps(p->hb);
    __m512 y[NB_MAX];
    for (size_t i = 0; i < nb; i++) y[i] = _mm512_setzero_ps();
    size_t j = 0;
    for (size_t g = 0; g < p->ngroups; g++) {
        size_t j1 = (g + 1) * p->group / 8;
        if (j1 > p->nvec) j1 = p->nvec;
        __m512 acc[NB_MAX];
        for (size_t i = 0; i < nb; i++) acc[i] = _mm512_setzero_ps();
        for (; j < j1; j++) {
            __m512i u0 = _mm512_loadu_si512((const void *)(tc + j * 128));
            __m512i u1 = _mm512_loadu_si512((const void *)(tc + j * 128 + 64));
            __m512 beta = _mm512_permutexvar_ps(
                _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(ti + j * 16))), hb);
            for (size_t i = 0; i < nb; i++) {
                int32_t x0, x1;
                memcpy(&x0, a[i].q + 8 * j, 4);
                memcpy(&x1, a[i].q + 8 * j + 4, 4);
                __m512i s0 = _mm512_dpbusd_epi32(_mm512_set1_epi32(-a[i].qs[j]), u0,
                                                 _mm512_set1_epi32(x0));
                __m512i s = _mm512_dpbusd_epi32(s0, u1, _mm512_set1_epi32(x1));
                __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(a[i].d[j]));
                acc[i] = _mm512_add_ps(acc[i], _mm512_mul_ps(v, beta));
            }
        }
        __m512 s = _mm512_loadu_ps(sc + g * 16);
        for (size_t i = 0; i < nb; i++) y[i] = _mm512_add_ps(y[i], _mm512_mul_ps(s, acc[i]));
    }
    size_t n = nrows < 16 ? nrows : 16;
    for (size_t i = 0; i < nb; i++)
        _mm512_mask_storeu_ps(Y + (b0 + i) * ldy + tile * LQ_KERN_TILE, (__mmask16)((1u << n) - 1),
                              y[i]);
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
    const __m512 hb = _mm512_loadu_ps(p->hb);
    const __m512i mff = _mm512_set1_epi32(255), o128 = _mm512_set1_epi32(128);
    __m512 y[NB_MAX];
    for (size_t i = 0; i < nb; i++) y[i] = _mm512_setzero_ps();
    size_t j = 0;
    for (size_t g = 0; g < p->ngroups; g++) {
        size_t j1 = (g + 1) * p->group / 8;
        if (j1 > p->nvec) j1 = p->nvec;
        __m512 acc[NB_MAX];
        for (size_t i = 0; i < nb; i++) acc[i] = _mm512_setzero_ps();
        for (; j < j1; j++) {
            __m512 beta = _mm512_permutexvar_ps(
                _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(ti + j * 16))), hb);
            __m512 w[8];
            for (int s = 0; s < 2; s++) {
                __m512i u = _mm512_loadu_si512((const void *)(tc + j * 128 + 64 * s));
                for (int kk = 0; kk < 4; kk++)
                    w[4 * s + kk] = _mm512_cvtepi32_ps(_mm512_sub_epi32(
                        _mm512_and_si512(_mm512_srli_epi32(u, 8 * kk), mff), o128));
            }
            for (size_t i = 0; i < nb; i++) {
                const float *x = a[i].x + 8 * j;
                __m512 d0 = _mm512_mul_ps(w[0], _mm512_set1_ps(x[0]));
                __m512 d1 = _mm512_mul_ps(w[1], _mm512_set1_ps(x[1]));
                d0 = _mm512_fmadd_ps(w[2], _mm512_set1_ps(x[2]), d0);
                d1 = _mm512_fmadd_ps(w[3], _mm512_set1_ps(x[3]), d1);
                d0 = _mm512_fmadd_ps(w[4], _mm512_set1_ps(x[4]), d0);
                d1 = _mm512_fmadd_ps(w[5], _mm512_set1_ps(x[5]), d1);
                d0 = _mm512_fmadd_ps(w[6], _mm512_set1_ps(x[6]), d0);
                d1 = _mm512_fmadd_ps(w[7], _mm512_set1_ps(x[7]), d1);
                acc[i] = _mm512_fmadd_ps(beta, _mm512_add_ps(d0, d1), acc[i]);
            }
        }
        __m512 s = _mm512_loadu_ps(sc + g * 16);
        for (size_t i = 0; i < nb; i++) y[i] = _mm512_fmadd_ps(s, acc[i], y[i]);
    }
    size_t n = nrows < 16 ? nrows : 16;
    for (size_t i = 0; i < nb; i++)
        _mm512_mask_storeu_ps(Y + (b0 + i) * ldy + tile * LQ_KERN_TILE, (__mmask16)((1u << n) - 1),
                              y[i]);
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

ROWS_FN(lq_kern_e8_fast_avx512, fast_tile)
ROWS_FN(lq_kern_e8_exact_avx512, exact_tile)
