/*
 * Per-ISA kernels of the additive quantizer (src/simd/aq_<isa>.c) and their
 * interface, shared with src/mcq/ (internal; leaf: includes nothing above
 * src/core).
 */
#ifndef LQ_SIMD_AQ_SIMD_H
#define LQ_SIMD_AQ_SIMD_H

#include <stddef.h>
#include <stdint.h>

/* Kernels. Each has a scalar twin (aq_kernels_scalar, src/mcq/aq_kernels.c)
 * it is tested against.
 * gemm_acc: C (m x n) += A (m x k) B (k x n); every C element sums its k
 *   products in order p = 0..k-1 with one accumulator, so a row's result does
 *   not depend on which other rows share the call (FMA contraction may differ
 *   between ISA levels: results agree within rounding across levels, and are
 *   bit-identical for one level).
 * scores: out[k] = s * (s * nrm[k] + 2 * sum_a Ct[a*K + k] * u[a]), k < K
 *   (Ct is a codebook transposed to g x K).
 * below: the indices k < K with sc[k] < lim, ascending, into idx; returns
 *   their number (bit-identical at every level). */
typedef struct aq_kernels {
    void (*gemm_acc)(size_t m, size_t n, size_t k, const float *A, size_t lda, const float *B,
                     size_t ldb, float *C, size_t ldc);
    void (*scores)(const float *Ct, size_t K, size_t g, const float *u, const float *nrm, float s,
                   float *out);
    size_t (*below)(const float *sc, size_t K, float lim, uint32_t *idx);
} aq_kernels;

extern const aq_kernels aq_kernels_scalar;
#if LQ_ARCH_X86
extern const aq_kernels aq_kernels_avx2;
extern const aq_kernels aq_kernels_avx512;
#endif

#endif
