/* One Llama block, forward with saved intermediates and backward, on float
 * weights, for block-wise fine-tuning (AQLM's procedure, calib.c). The
 * forward computes what lq_llama_block computes (RMSNorm, q/k/v, rotate-half
 * RoPE, causal grouped-query attention, o, RMSNorm, SwiGLU, residuals) for
 * one sequence at positions 0..n-1, on caller-given weight matrices (the
 * dequantized W_hat of each layer, or the fp32 weights), keeping what the
 * backward needs; the backward turns dL/dY into dL/dW for the seven
 * linear layers (accumulated) and, optionally, dL/dX. Everything runs in
 * fixed order (products through the library's SGEMM): the results do not
 * depend on the thread count. */
#ifndef LQ_BLOCK_GRAD_H
#define LQ_BLOCK_GRAD_H

#include "model.h"

/* The weights of one block: w[k] (rows x cols of layer k, lq_lin order)
 * and the two RMSNorm gains (dim each). */
typedef struct lq_block_weights {
    const float *w[LQ_LIN_COUNT];
    const float *norm_att, *norm_ffn;
} lq_block_weights;

typedef struct lq_block_tape lq_block_tape;

/* Scratch for sequences of up to max_n tokens of configuration c. */
lq_status lq_block_tape_create(const lq_llama_config *c, size_t max_n, lq_block_tape **out);
void lq_block_tape_free(lq_block_tape *t);

/* Y (n x dim) = block(X) (n x dim, positions 0..n-1); X and Y may not
 * overlap. The tape keeps the intermediates for lq_block_backward.
 * Errors: INVALID_ARG (n == 0 or above max_n), NO_MEMORY. */
lq_status lq_block_forward(lq_ctx *ctx, const lq_block_weights *w, lq_block_tape *t, const float *X,
                           size_t n, float *Y);

/* With the tape of the last forward and dY = dL/dY (n x dim): dW[k] +=
 * dL/dW_k for every k with dW[k] non-NULL (rows x cols of layer k), and dX
 * = dL/dX when dX is non-NULL. dY is not modified. */
lq_status lq_block_backward(lq_ctx *ctx, const lq_block_weights *w, lq_block_tape *t,
                            const float *dY, float *const dW[LQ_LIN_COUNT], float *dX);

#endif
