/*
 * Dense linear algebra used inside libquant (internal). Row-major, explicit
 * leading dimensions. Multi-threaded through the context; results do not
 * depend on the thread count (fixed tiling, no split-k reductions across
 * threads). All functions validate nothing beyond what a caller inside the
 * library can get wrong cheaply; sizes of 0 are no-ops.
 */
#ifndef LQ_CORE_LINALG_H
#define LQ_CORE_LINALG_H

#include "core/internal.h"

typedef enum lq_trans { LQ_NO_TRANS = 0, LQ_TRANS = 1 } lq_trans;

/* C (m x n) = alpha * op(A) * op(B) + beta * C, op(A) m x k, op(B) k x n.
 * Supports NN, NT and TN (and TT). beta == 0 ignores C's old contents
 * (NaN included). Returns LQ_ERR_NO_MEMORY if packing buffers fail. */
lq_status lq_sgemm(lq_ctx *ctx, lq_trans ta, lq_trans tb, size_t m, size_t n, size_t k, float alpha,
                   const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
                   size_t ldc);
lq_status lq_dgemm(lq_ctx *ctx, lq_trans ta, lq_trans tb, size_t m, size_t n, size_t k,
                   double alpha, const double *A, size_t lda, const double *B, size_t ldb,
                   double beta, double *C, size_t ldc);

/* Which part of C a product writes: all of it, or only the lower (i >= j)
 * or upper (i <= j) triangle in C's own indices (syrk-like updates; the
 * other part is neither read nor written). */
typedef enum lq_uplo { LQ_FULL = 0, LQ_LOWER = 1, LQ_UPPER = 2 } lq_uplo;

/* lq_[sd]gemm with a triangle selector and an optional caller workspace of
 * lq_[sd]gemm_work_size(ctx, m, n, k) elements (NULL: allocate; with a
 * workspace big enough for the largest (m, n, k) of a sequence of calls
 * the calls never fail). The size depends on the context's thread count
 * and SIMD level, is non-decreasing in m, n and k, and is 0 when no packing
 * is needed; SIZE_MAX on overflow. */
size_t lq_sgemm_work_size(lq_ctx *ctx, size_t m, size_t n, size_t k);
size_t lq_dgemm_work_size(lq_ctx *ctx, size_t m, size_t n, size_t k);
lq_status lq_sgemm_ex(lq_ctx *ctx, lq_uplo uplo, lq_trans ta, lq_trans tb, size_t m, size_t n,
                      size_t k, float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                      float beta, float *C, size_t ldc, float *work);
lq_status lq_dgemm_ex(lq_ctx *ctx, lq_uplo uplo, lq_trans ta, lq_trans tb, size_t m, size_t n,
                      size_t k, double alpha, const double *A, size_t lda, const double *B,
                      size_t ldb, double beta, double *C, size_t ldc, double *work);

/* C (n x n, full symmetric) = alpha * A^T A + beta * C, A is k x n
 * (k samples of n features: the Hessian's X^T X). Accumulates in double
 * when C is double. */
lq_status lq_ssyrk_tn(lq_ctx *ctx, size_t n, size_t k, float alpha, const float *A, size_t lda,
                      float beta, float *C, size_t ldc);
lq_status lq_dsyrk_tn_f32(lq_ctx *ctx, size_t n, size_t k, double alpha, const float *A, size_t lda,
                          double beta, double *C, size_t ldc);

/* In-place Cholesky A = L L^T (lower triangle of A overwritten by L; the
 * strict upper triangle is neither read nor written). Blocked, right-looking;
 * the float version sums diagonal blocks in double and updates in float.
 * LQ_ERR_NOT_POSITIVE_DEFINITE when a pivot is <= 0 or not finite (A then
 * holds garbage: callers work on a copy); LQ_ERR_NO_MEMORY (A untouched) if
 * the GEMM workspace cannot be allocated. */
lq_status lq_dpotrf_lower(lq_ctx *ctx, double *A, size_t n, size_t lda);
lq_status lq_spotrf_lower(lq_ctx *ctx, float *A, size_t n, size_t lda);

/* In-place inverse of a lower-triangular L (strict upper triangle neither
 * read nor written). LQ_ERR_INVALID_ARG (L untouched) when a diagonal entry
 * is zero or not finite; LQ_ERR_NO_MEMORY (L untouched). */
lq_status lq_dtrtri_lower(lq_ctx *ctx, double *L, size_t n, size_t lda);

/* Triangular solves with L lower (n x n, strict upper triangle not read),
 * B n x nrhs (left) or m x n (right), overwritten by the solution:
 *   left:  L X = B  (trans=0)   or  L^T X = B (trans=1)
 *   right: X L = B  (trans=0)   or  X L^T = B (trans=1)
 * The diagonal is not checked (a zero gives Inf/NaN). LQ_ERR_NO_MEMORY
 * leaves B untouched. */
lq_status lq_dtrsm_left_lower(lq_ctx *ctx, lq_trans trans, size_t n, size_t nrhs, const double *L,
                              size_t ldl, double *B, size_t ldb);
lq_status lq_dtrsm_right_lower(lq_ctx *ctx, lq_trans trans, size_t m, size_t n, const double *L,
                               size_t ldl, double *B, size_t ldb);

/* Symmetric eigen-decomposition by cyclic Jacobi: A (n x n) symmetric is
 * destroyed; w gets the eigenvalues in descending order, V (n x n, row-major)
 * the eigenvectors as columns. For small n (codebooks, n <= a few hundred):
 * one thread, no allocation. LQ_ERR_NOT_FINITE (nothing written) when A has
 * NaN or Inf. */
lq_status lq_dsyev_jacobi(lq_ctx *ctx, double *A, size_t n, size_t lda, double *w, double *V,
                          size_t ldv);

/* Thin SVD A = U diag(s) V^T of A (m x n) by one-sided Jacobi: U m x r,
 * s r, Vt r x n with r = min(m, n), singular values descending; U and V
 * orthonormal also for rank-deficient A. A is not modified. One thread, no
 * allocation. LQ_ERR_NOT_FINITE (nothing written) when A has NaN or Inf. */
lq_status lq_dsvd_jacobi(lq_ctx *ctx, const double *A, size_t m, size_t n, size_t lda, double *U,
                         size_t ldu, double *s, double *Vt, size_t ldvt);

#endif
