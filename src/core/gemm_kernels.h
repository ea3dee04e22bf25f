/*
 * GEMM micro-kernel records (internal): the interface between the driver in
 * src/core/linalg_gemm.c and the per-ISA micro-kernels of
 * src/simd/gemm_*.c, declared here in core because the driver is in core
 * (the kernels include this header; core includes nothing from simd).
 * The driver packs
 * A into micro-panels of MR rows and B into micro-panels of NR columns and
 * calls one of these per MR x NR tile of C (BLIS-style; see
 * docs/algorithms.md "Dense linear algebra").
 *
 * Packed layouts (kc steps):
 *   a: for p in [0, kc): MR values A(i0 + 0 .. i0 + MR - 1, p)
 *   b: for p in [0, kc): NR values B(p, j0 + 0 .. j0 + NR - 1)
 * Each kernel computes acc = sum_p a_p b_p^T in the order p = 0, 1, ...
 * then stores C = alpha * acc + beta * C over the full MR x NR tile
 * (row-major, leading dimension ldc). beta == 0 never reads C.
 * The block sizes are part of the kernel record: KC fixes the summation
 * order of every element (and so the results), MC/NC only the cache tiling.
 */
#ifndef LQ_CORE_GEMM_KERNELS_H
#define LQ_CORE_GEMM_KERNELS_H

#include <stddef.h>

typedef void (*lq_sgemm_ukr)(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                             float alpha, float beta);
typedef void (*lq_dgemm_ukr)(size_t kc, const double *a, const double *b, double *c, size_t ldc,
                             double alpha, double beta);

typedef struct lq_sgemm_kernel {
    lq_sgemm_ukr ukr;
    size_t mr, nr; /* register tile */
    size_t kc;     /* depth of a packed panel (fixes the summation order) */
    size_t mc;     /* rows of a packed A block (L2), multiple of mr */
    size_t nc;     /* columns of a packed B panel (L3), multiple of nr */
} lq_sgemm_kernel;

typedef struct lq_dgemm_kernel {
    lq_dgemm_ukr ukr;
    size_t mr, nr, kc, mc, nc;
} lq_dgemm_kernel;

/* Largest mr * nr over all kernels (edge tiles go through a stack buffer). */
#define LQ_GEMM_MAX_TILE (16 * 32)

extern const lq_sgemm_kernel lq_sgemm_kernel_scalar;
extern const lq_dgemm_kernel lq_dgemm_kernel_scalar;
#if LQ_ARCH_X86
extern const lq_sgemm_kernel lq_sgemm_kernel_avx2;
extern const lq_dgemm_kernel lq_dgemm_kernel_avx2;
extern const lq_sgemm_kernel lq_sgemm_kernel_avx512;
extern const lq_dgemm_kernel lq_dgemm_kernel_avx512;
#endif

#endif
