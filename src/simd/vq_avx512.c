/* AVX-512 nearest-centroid kernel (d in {1, 2, 4, 8}). 16 centroids per
 * vector, 4 points per pass over the centroids so each centroid load serves
 * four points. Arithmetic mirrors lq_vq_nearest_scalar operation for
 * operation (sub, mul, fma), so the results are bit-identical. */
#include <immintrin.h>
#include <math.h>

#include "simd/vq_simd.h"

#define AI static inline __attribute__((always_inline))

AI void finish(__m512 best, __m512i bidx, uint32_t *idx, float *dist)
{
    float m = _mm512_reduce_min_ps(best);
    __mmask16 eq = _mm512_cmp_ps_mask(best, _mm512_set1_ps(m), _CMP_EQ_OQ);
    if (eq == 0) { /* every distance NaN: scalar keeps index 0 */
        *idx = 0;
        *dist = INFINITY;
        return;
    }
    *idx = (uint32_t)_mm512_mask_reduce_min_epu32(eq, bidx);
    *dist = m;
}

/* P points (1 or 4) of dimension D against all k centroids. */
AI void block(const float *x, const float *w, const int W, const int P, const int D,
              const float *ct, size_t k, size_t kpad, uint32_t *idx, float *dist)
{
    __m512 best[4], acc[4];
    __m512i bidx[4];
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int p = 0; p < P; p++) {
        best[p] = _mm512_set1_ps(INFINITY);
        bidx[p] = lane;
    }
    __m512i cur = lane;
    const __m512i step = _mm512_set1_epi32(16);
    for (size_t c0 = 0; c0 < kpad; c0 += 16) {
        __mmask16 valid = 0xffff;
        if (c0 + 16 > k) valid = (__mmask16)((1u << (k - c0)) - 1u);
        for (int p = 0; p < P; p++) acc[p] = _mm512_setzero_ps();
        for (int j = 0; j < D; j++) {
            __m512 c = _mm512_loadu_ps(ct + (size_t)j * kpad + c0);
            for (int p = 0; p < P; p++) {
                __m512 t = _mm512_sub_ps(c, _mm512_set1_ps(x[p * D + j]));
                if (W)
                    acc[p] =
                        _mm512_fmadd_ps(_mm512_mul_ps(t, _mm512_set1_ps(w[p * D + j])), t, acc[p]);
                else
                    acc[p] = _mm512_fmadd_ps(t, t, acc[p]);
            }
        }
        for (int p = 0; p < P; p++) {
            __mmask16 lt = _mm512_mask_cmp_ps_mask(valid, acc[p], best[p], _CMP_LT_OQ);
            best[p] = _mm512_mask_mov_ps(best[p], lt, acc[p]);
            bidx[p] = _mm512_mask_mov_epi32(bidx[p], lt, cur);
        }
        cur = _mm512_add_epi32(cur, step);
    }
    for (int p = 0; p < P; p++) finish(best[p], bidx[p], idx + p, dist + p);
}

AI void run(const float *x, const float *w, const int W, const int D, size_t n, const float *ct,
            size_t k, size_t kpad, uint32_t *idx, float *dist)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        block(x + i * D, W ? w + i * D : NULL, W, 4, D, ct, k, kpad, idx + i, dist + i);
    for (; i < n; i++)
        block(x + i * D, W ? w + i * D : NULL, W, 1, D, ct, k, kpad, idx + i, dist + i);
}

void lq_vq_nearest_avx512(const float *x, const float *w, size_t n, size_t d, const float *ct,
                          size_t k, size_t kpad, uint32_t *idx, float *dist)
{
    if (w) {
        switch (d) {
        case 1: run(x, w, 1, 1, n, ct, k, kpad, idx, dist); return;
        case 2: run(x, w, 1, 2, n, ct, k, kpad, idx, dist); return;
        case 4: run(x, w, 1, 4, n, ct, k, kpad, idx, dist); return;
        default: run(x, w, 1, 8, n, ct, k, kpad, idx, dist); return;
        }
    }
    switch (d) {
    case 1: run(x, NULL, 0, 1, n, ct, k, kpad, idx, dist); return;
    case 2: run(x, NULL, 0, 2, n, ct, k, kpad, idx, dist); return;
    case 4: run(x, NULL, 0, 4, n, ct, k, kpad, idx, dist); return;
    default: run(x, NULL, 0, 8, n, ct, k, kpad, idx, dist); return;
    }
}
