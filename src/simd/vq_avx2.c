/* AVX2 nearest-centroid kernel (d in {1, 2, 4, 8}). 8 centroids per
 * vector, 4 points per pass. Arithmetic mirrors lq_vq_nearest_scalar
 * operation for operation (sub, mul, fma): bit-identical results. */
#include <immintrin.h>
#include <math.h>

#include "simd/vq_simd.h"

#define AI static inline __attribute__((always_inline))

AI void finish(__m256 best, __m256i bidx, uint32_t *idx, float *dist)
{
    float b[8];
    uint32_t bi[8];
    _mm256_storeu_ps(b, best);
    _mm256_storeu_si256((__m256i *)(void *)bi, bidx);
    float m = INFINITY;
    uint32_t mi = UINT32_MAX;
    /* best[] never holds NaN (it only takes values that compared less). */
    for (int l = 0; l < 8; l++)
        if (b[l] < m || (b[l] == m && bi[l] < mi)) {
            m = b[l];
            mi = bi[l];
        }
    *idx = mi == UINT32_MAX ? 0 : mi;
    *dist = m;
}

AI void block(const float *x, const float *w, const int W, const int P, const int D,
              const float *ct, size_t k, size_t kpad, uint32_t *idx, float *dist)
{
    __m256 best[4], acc[4];
    __m256i bidx[4];
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int p = 0; p < P; p++) {
        best[p] = _mm256_set1_ps(INFINITY);
        bidx[p] = lane;
    }
    __m256i cur = lane;
    const __m256i step = _mm256_set1_epi32(8);
    const __m256i kv = _mm256_set1_epi32((int)k);
    for (size_t c0 = 0; c0 < kpad; c0 += 8) {
        for (int p = 0; p < P; p++) acc[p] = _mm256_setzero_ps();
        for (int j = 0; j < D; j++) {
            __m256 c = _mm256_loadu_ps(ct + (size_t)j * kpad + c0);
            for (int p = 0; p < P; p++) {
                __m256 t = _mm256_sub_ps(c, _mm256_set1_ps(x[p * D + j]));
                if (W)
                    acc[p] =
                        _mm256_fmadd_ps(_mm256_mul_ps(t, _mm256_set1_ps(w[p * D + j])), t, acc[p]);
                else
                    acc[p] = _mm256_fmadd_ps(t, t, acc[p]);
            }
        }
        __m256 valid = _mm256_castsi256_ps(_mm256_cmpgt_epi32(kv, cur));
        for (int p = 0; p < P; p++) {
            __m256 lt = _mm256_and_ps(_mm256_cmp_ps(acc[p], best[p], _CMP_LT_OQ), valid);
            best[p] = _mm256_blendv_ps(best[p], acc[p], lt);
            bidx[p] = _mm256_castps_si256(
                _mm256_blendv_ps(_mm256_castsi256_ps(bidx[p]), _mm256_castsi256_ps(cur), lt));
        }
        cur = _mm256_add_epi32(cur, step);
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

void lq_vq_nearest_avx2(const float *x, const float *w, size_t n, size_t d, const float *ct,
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
