/*
 * Matrix products on the codes of a packed tensor, with a choice of
 * precision.
 *
 * lq_matvec / lq_matmul (quant/qtensor.h) use the exact path. lq_matmul_ex
 * also offers the fast path: activations quantized to int8 per block of 32
 * (with a float scale; per 8 for E8 and E8P) for integer formats (INT, E8,
 * E8P) and int8 look-up tables for table formats (VQ, BCQ, AQ), in the style
 * of ggml and T-MAC. Both paths compute on the codes (the float weight
 * matrix is never formed) with
 * the SIMD level of the context (lq_simd_for / simd_cap), split output rows
 * into fixed tiles across the context's threads and give results that do
 * not depend on the thread count. The accuracy of each path is documented
 * in docs/algorithms.md, section "Kernels".
 */
#ifndef QUANT_KERNELS_H
#define QUANT_KERNELS_H

#include "quant/core.h"
#include "quant/qtensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lq_kernel_mode {
    /* Float activations, float tables: equals dequantize-then-GEMV up to
     * float rounding (a different summation order). */
    LQ_KERNEL_EXACT = 0,
    /* Int8 activations (blocks of 32, absmax scale) or int8 tables, integer
     * dot products; relative error about 1e-2 of |W| |x| per output. */
    LQ_KERNEL_FAST = 1
} lq_kernel_mode;

/* Y = X W^T (X: batch x cols, Y: batch x rows) in the given mode.
 * Formats without a kernel for `mode` use the exact path.
 * Errors: INVALID_ARG (NULL, batch 0, bad mode), NOT_FINITE (NaN/Inf in X),
 * OUT_OF_RANGE (|x| > LQ_MAX_ABS_ACTIVATION),
 * CORRUPT (inconsistent tensor), NO_MEMORY (Y untouched).
 * Threading: through ctx; the tensor may be shared by concurrent calls. */
LQ_API lq_status lq_matmul_ex(lq_ctx *ctx, const lq_qtensor *W, const float *X, size_t batch,
                              float *Y, lq_kernel_mode mode);

/* Build the kernel layout of W now (it is otherwise built on the first
 * product and cached in W until lq_qtensor_free). Call after loading a
 * tensor to keep the one-off repack out of the first token's latency.
 * The stored format is unchanged. Errors: INVALID_ARG, CORRUPT, NO_MEMORY.
 * Safe to call concurrently with products on W. */
LQ_API lq_status lq_qtensor_prepare(lq_ctx *ctx, const lq_qtensor *W);

#ifdef __cplusplus
}
#endif
#endif
