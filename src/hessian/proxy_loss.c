/* The layer proxy loss tr((W - W_hat) H (W - W_hat)^T) = ||(W - W_hat) X||^2
 * (up to the 2/N of H), computed in double: E = W - W_hat by chunks of
 * rows, T = E H with a double GEMM, then sum_r <T_r, E_r>, chunk partials
 * added in chunk order (deterministic whatever the thread count). */
#include <string.h>

#include "core/linalg.h"
#include "quant/hessian.h"

#define LOSS_ROWS 1024

lq_status lq_proxy_loss(lq_ctx *ctx, const float *W, const float *W_hat, size_t rows, size_t cols,
                        const float *H, double *loss)
{
    if (!W || !W_hat || !loss || rows == 0 || cols == 0) return LQ_ERR_INVALID_ARG;
    size_t n;
    if (!lq_mul_ok(rows, cols, &n) || !lq_mul_ok(cols, cols, &n) ||
        !lq_mul_ok(n, sizeof(double), &n))
        return LQ_ERR_INVALID_ARG;
    if (!lq_all_finite(W, rows * cols) || !lq_all_finite(W_hat, rows * cols))
        return LQ_ERR_NOT_FINITE;
    if (H && !lq_all_finite(H, cols * cols)) return LQ_ERR_NOT_FINITE;
    if (!H) {
        double acc = 0;
        for (size_t i = 0; i < rows * cols; i++) {
            double d = (double)W[i] - (double)W_hat[i];
            acc += d * d;
        }
        *loss = acc;
        return LQ_OK;
    }
    if (!lq_ctx_resolve(ctx)) return LQ_ERR_NO_MEMORY;
    size_t rc = rows < LOSS_ROWS ? rows : LOSS_ROWS;
    double *Hd = lq_alloc_array(ctx, cols * cols, sizeof *Hd);
    double *E = lq_alloc_array(ctx, rc * cols, sizeof *E);
    double *T = lq_alloc_array(ctx, rc * cols, sizeof *T);
    lq_status st = LQ_OK;
    if (!Hd || !E || !T) {
        st = LQ_ERR_NO_MEMORY;
        goto done;
    }
    for (size_t i = 0; i < cols * cols; i++) Hd[i] = H[i];
    double acc = 0;
    for (size_t r0 = 0; r0 < rows && st == LQ_OK; r0 += rc) {
        size_t m = rows - r0 < rc ? rows - r0 : rc;
        for (size_t i = 0; i < m * cols; i++)
            E[i] = (double)W[r0 * cols + i] - (double)W_hat[r0 * cols + i];
        st = lq_dgemm(ctx, LQ_NO_TRANS, LQ_NO_TRANS, m, cols, cols, 1.0, E, cols, Hd, cols, 0.0, T,
                      cols);
        double part = 0;
        for (size_t i = 0; i < m * cols; i++) part += T[i] * E[i];
        acc += part;
    }
    if (st == LQ_OK) *loss = acc;
done:
    lq_free(ctx, Hd);
    lq_free(ctx, E);
    lq_free(ctx, T);
    return st;
}
