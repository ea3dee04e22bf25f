/*
 * sgemm / dgemm drivers: packing, cache blocking and threading around the
 * per-ISA micro-kernels of src/simd/gemm_*.c (chosen by lq_simd_for(ctx)).
 * The driver body is in linalg_gemm_tmpl.h, instantiated once per type.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "core/linalg.h"
#include "simd/gemm_kernels.h"

/* Below this many multiply-adds the packing set-up costs more than it saves. */
#define GEMM_SMALL_FMAS 32768u

#define GT float
#define GK lq_sgemm_kernel
#define GP(x) s##x
#include "core/linalg_gemm_tmpl.h"
#undef GT
#undef GK
#undef GP

#define GT double
#define GK lq_dgemm_kernel
#define GP(x) d##x
#include "core/linalg_gemm_tmpl.h"
#undef GT
#undef GK
#undef GP

static const lq_sgemm_kernel *sgemm_kernel_for(lq_ctx *ctx)
{
#if LQ_ARCH_X86
    switch (lq_simd_for(ctx)) {
    case LQ_SIMD_AVX512: return &lq_sgemm_kernel_avx512;
    case LQ_SIMD_AVX2: return &lq_sgemm_kernel_avx2;
    default: break;
    }
#else
    (void)ctx;
#endif
    return &lq_sgemm_kernel_scalar;
}

static const lq_dgemm_kernel *dgemm_kernel_for(lq_ctx *ctx)
{
#if LQ_ARCH_X86
    switch (lq_simd_for(ctx)) {
    case LQ_SIMD_AVX512: return &lq_dgemm_kernel_avx512;
    case LQ_SIMD_AVX2: return &lq_dgemm_kernel_avx2;
    default: break;
    }
#else
    (void)ctx;
#endif
    return &lq_dgemm_kernel_scalar;
}

static int gemm_is_small(size_t m, size_t n, size_t k)
{
    size_t mn;
    return lq_mul_ok(m, n, &mn) && mn <= GEMM_SMALL_FMAS && mn * k <= GEMM_SMALL_FMAS;
}

lq_status lq_sgemm(lq_ctx *ctx, lq_trans ta, lq_trans tb, size_t m, size_t n, size_t k,
                   float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                   float beta, float *C, size_t ldc)
{
    if (m == 0 || n == 0) return LQ_OK;
    if (k == 0 || alpha == 0.0f) {
        sgemm_scale(m, n, beta, C, ldc);
        return LQ_OK;
    }
    if (gemm_is_small(m, n, k)) {
        sgemm_small(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
        return LQ_OK;
    }
    return sgemm_packed(ctx, sgemm_kernel_for(ctx), ta, tb, m, n, k, alpha, A, lda, B, ldb,
                        beta, C, ldc);
}

lq_status lq_dgemm(lq_ctx *ctx, lq_trans ta, lq_trans tb, size_t m, size_t n, size_t k,
                   double alpha, const double *A, size_t lda, const double *B, size_t ldb,
                   double beta, double *C, size_t ldc)
{
    if (m == 0 || n == 0) return LQ_OK;
    if (k == 0 || alpha == 0.0) {
        dgemm_scale(m, n, beta, C, ldc);
        return LQ_OK;
    }
    if (gemm_is_small(m, n, k)) {
        dgemm_small(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
        return LQ_OK;
    }
    return dgemm_packed(ctx, dgemm_kernel_for(ctx), ta, tb, m, n, k, alpha, A, lda, B, ldb,
                        beta, C, ldc);
}
