/* Scalar reference kernels of the additive quantizer and their dispatch. */
#include "mcq/aq_internal.h"

static void gemm_acc_scalar(size_t m, size_t n, size_t k, const float *A, size_t lda,
                            const float *B, size_t ldb, float *C, size_t ldc)
{
    /* p outer per row: each C element accumulates its products in order
     * p = 0..k-1 (the contract shared with the SIMD twins). */
    for (size_t i = 0; i < m; i++) {
        float *c = C + i * ldc;
        for (size_t p = 0; p < k; p++) {
            float a = A[i * lda + p];
            const float *b = B + p * ldb;
            for (size_t j = 0; j < n; j++) c[j] += a * b[j];
        }
    }
}

static void scores_scalar(const float *Ct, size_t K, size_t g, const float *u, const float *nrm,
                          float s, float *out)
{
    for (size_t k = 0; k < K; k++) out[k] = 0.0f;
    for (size_t a = 0; a < g; a++) {
        const float *c = Ct + a * K;
        float ua = u[a];
        for (size_t k = 0; k < K; k++) out[k] += c[k] * ua;
    }
    for (size_t k = 0; k < K; k++) out[k] = s * (s * nrm[k] + 2.0f * out[k]);
}

static size_t below_scalar(const float *sc, size_t K, float lim, uint32_t *idx)
{
    size_t n = 0;
    for (size_t k = 0; k < K; k++) {
        idx[n] = (uint32_t)k;
        n += sc[k] < lim;
    }
    return n;
}

const aq_kernels aq_kernels_scalar = {gemm_acc_scalar, scores_scalar, below_scalar};

const aq_kernels *aq_kernels_for(lq_simd_level level)
{
#if LQ_ARCH_X86
    if (level == LQ_SIMD_AVX512) return &aq_kernels_avx512;
    if (level == LQ_SIMD_AVX2) return &aq_kernels_avx2;
#endif
    (void)level;
    return &aq_kernels_scalar;
}
