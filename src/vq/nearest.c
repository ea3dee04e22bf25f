/* Nearest-centroid search: the scalar reference kernel, the dispatch table
 * over SIMD levels, and small helpers (transpose, fp16). */
#include <math.h>
#include <string.h>

#include "simd/vq_simd.h"
#include "vq/vq_internal.h"

/* fmaf: one rounding, as the SIMD kernels' vfmadd (contract in
 * vq_internal.h). With -std=c11 the compiler does not contract a*b+c on its
 * own, so the other operations round exactly as the vector ones do. */
static inline float dist_plain(const float *x, const float *ct, size_t d, size_t kpad, size_t c)
{
    float acc = 0.0f;
    for (size_t j = 0; j < d; j++) {
        float t = ct[j * kpad + c] - x[j];
        acc = fmaf(t, t, acc);
    }
    return acc;
}

static inline float dist_weighted(const float *x, const float *w, const float *ct, size_t d,
                                  size_t kpad, size_t c)
{
    float acc = 0.0f;
    for (size_t j = 0; j < d; j++) {
        float t = ct[j * kpad + c] - x[j];
        acc = fmaf(t * w[j], t, acc);
    }
    return acc;
}

void lq_vq_nearest_scalar(const float *x, const float *w, size_t n, size_t d, const float *ct,
                          size_t k, size_t kpad, uint32_t *idx, float *dist)
{
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * d;
        float best = INFINITY;
        uint32_t bi = 0;
        if (w) {
            const float *wi = w + i * d;
            for (size_t c = 0; c < k; c++) {
                float v = dist_weighted(xi, wi, ct, d, kpad, c);
                if (v < best) {
                    best = v;
                    bi = (uint32_t)c;
                }
            }
        } else {
            for (size_t c = 0; c < k; c++) {
                float v = dist_plain(xi, ct, d, kpad, c);
                if (v < best) {
                    best = v;
                    bi = (uint32_t)c;
                }
            }
        }
        idx[i] = bi;
        dist[i] = best;
    }
}

lq_vq_nearest_fn lq_vq_nearest_for(lq_simd_level level, size_t d)
{
    if (d != 1 && d != 2 && d != 4 && d != 8) return lq_vq_nearest_scalar;
#if LQ_ARCH_X86
    static const lq_vq_nearest_fn table[] = {
        [LQ_SIMD_SCALAR] = lq_vq_nearest_scalar,
        [LQ_SIMD_AVX2] = lq_vq_nearest_avx2,
        [LQ_SIMD_AVX512] = lq_vq_nearest_avx512,
    };
    if ((size_t)level < sizeof table / sizeof table[0] && table[level]) return table[level];
#else
    (void)level;
#endif
    return lq_vq_nearest_scalar;
}

void lq_vq_transpose(const float *c, size_t k, size_t d, float *ct, size_t kpad)
{
    for (size_t j = 0; j < d; j++) {
        float *row = ct + j * kpad;
        for (size_t i = 0; i < k; i++) row[i] = c[i * d + j];
        for (size_t i = k; i < kpad; i++) row[i] = 0.0f;
    }
}
