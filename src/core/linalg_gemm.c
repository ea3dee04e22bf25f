/*
 * sgemm / dgemm drivers: packing, cache blocking and threading around the
 * per-ISA micro-kernels of src/simd/gemm_*.c (chosen by lq_simd_for(ctx)).
 * The driver body is in linalg_gemm_tmpl.h, instantiated once per type.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "core/linalg.h"
#include "core/gemm_kernels.h"

/* Below this many multiply-adds the packing set-up costs more than it saves. */
#define GEMM_SMALL_FMAS 32768u
/* Below this many multiply-adds one worker does the whole product. */
#define GEMM_PARALLEL_FMAS (128.0 * 128.0 * 128.0)

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
    return lq_mul_ok(m, n, &mn) && mn <= GEMM_SMALL_FMAS && k <= GEMM_SMALL_FMAS / mn;
}

#define DEFINE_GEMM_ENTRY(P, T, ONE_ZERO)                                                          \
    size_t lq_##P##gemm_work_size(lq_ctx *ctx, size_t m, size_t n, size_t k)                       \
    {                                                                                              \
        P##gemm_plan pl;                                                                           \
        if (m == 0 || n == 0 || k == 0 || P##gemm_is_small_dims(m, n, k)) return 0;                \
        if (!P##gemm_plan_make(ctx, P##gemm_kernel_for(ctx), m, n, k, &pl)) return SIZE_MAX;       \
        return pl.total;                                                                           \
    }                                                                                              \
    lq_status lq_##P##gemm_ex(lq_ctx *ctx, lq_uplo uplo, lq_trans ta, lq_trans tb, size_t m,       \
                              size_t n, size_t k, T alpha, const T *A, size_t lda, const T *B,     \
                              size_t ldb, T beta, T *C, size_t ldc, T *work)                       \
    {                                                                                              \
        if (m == 0 || n == 0) return LQ_OK;                                                        \
        if (k == 0 || alpha == ONE_ZERO) {                                                         \
            P##gemm_scale(uplo, m, n, beta, C, ldc);                                               \
            return LQ_OK;                                                                          \
        }                                                                                          \
        if (P##gemm_is_small_dims(m, n, k)) {                                                      \
            P##gemm_small(uplo, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);             \
            return LQ_OK;                                                                          \
        }                                                                                          \
        return P##gemm_packed(ctx, P##gemm_kernel_for(ctx), uplo, ta, tb, m, n, k, alpha, A, lda,  \
                              B, ldb, beta, C, ldc, work);                                         \
    }                                                                                              \
    lq_status lq_##P##gemm(lq_ctx *ctx, lq_trans ta, lq_trans tb, size_t m, size_t n, size_t k,    \
                           T alpha, const T *A, size_t lda, const T *B, size_t ldb, T beta, T *C,  \
                           size_t ldc)                                                             \
    {                                                                                              \
        return lq_##P##gemm_ex(ctx, LQ_FULL, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, \
                               NULL);                                                              \
    }

#define sgemm_is_small_dims gemm_is_small
#define dgemm_is_small_dims gemm_is_small
DEFINE_GEMM_ENTRY(s, float, 0.0f)
DEFINE_GEMM_ENTRY(d, double, 0.0)
