/* Calibration Hessian accumulation: H = (2/N) sum_n x_n x_n^T as a running
 * mean over batches (GPTQ's update H <- H n/(n+b) + 2/(n+b) X_b^T X_b), kept
 * in double so that many small batches do not lose the early ones. */
#include <string.h>

#include "core/linalg.h"
#include "quant/hessian.h"

struct lq_hessian {
    lq_allocator alloc;
    size_t cols;
    size_t count;
    double *H; /* cols x cols, full symmetric */
};

lq_status lq_hessian_create(lq_ctx *ctx, size_t cols, lq_hessian **out)
{
    if (!out || cols == 0) return LQ_ERR_INVALID_ARG;
    size_t n;
    if (!lq_mul_ok(cols, cols, &n) || !lq_mul_ok(n, sizeof(double), &n)) return LQ_ERR_INVALID_ARG;
    if (!lq_ctx_resolve(ctx)) return LQ_ERR_NO_MEMORY;
    lq_allocator a = lq_ctx_allocator(ctx);
    lq_hessian *h = lq_alloc_with(&a, sizeof *h);
    if (!h) return LQ_ERR_NO_MEMORY;
    h->H = lq_alloc_with(&a, n);
    if (!h->H) {
        lq_free_with(&a, h);
        return LQ_ERR_NO_MEMORY;
    }
    memset(h->H, 0, n);
    h->alloc = a;
    h->cols = cols;
    h->count = 0;
    *out = h;
    return LQ_OK;
}

lq_status lq_hessian_add(lq_ctx *ctx, lq_hessian *h, const float *X, size_t nsamples, size_t ldx)
{
    if (!h || !X || nsamples == 0 || ldx < h->cols) return LQ_ERR_INVALID_ARG;
    size_t tot, cc = h->cols * h->cols;
    if (!lq_add_ok(h->count, nsamples, &tot)) return LQ_ERR_INVALID_ARG;
    if (!lq_mul_ok(nsamples - 1, ldx, &tot) || !lq_add_ok(tot, h->cols, &tot))
        return LQ_ERR_INVALID_ARG;
    if (!lq_all_finite_2d(X, nsamples, h->cols, ldx)) return LQ_ERR_NOT_FINITE;
    if (!lq_ctx_resolve(ctx)) return LQ_ERR_NO_MEMORY;
    /* The batch product goes to a scratch first so that a failure inside
     * the syrk (packing buffers) leaves the accumulator unchanged. */
    double *T = lq_alloc_array(ctx, cc, sizeof *T);
    if (!T) return LQ_ERR_NO_MEMORY;
    double nn = (double)(h->count + nsamples);
    lq_status st = lq_dsyrk_tn_f32(ctx, h->cols, nsamples, 2.0 / nn, X, ldx, 0.0, T, h->cols);
    if (st == LQ_OK) {
        double keep = (double)h->count / nn;
        /* squares of finite floats cannot overflow double */
        for (size_t i = 0; i < cc; i++) h->H[i] = h->H[i] * keep + T[i];
        h->count += nsamples;
    }
    lq_free(ctx, T);
    return st;
}

lq_status lq_hessian_get(const lq_hessian *h, float *H)
{
    if (!h || !H || h->count == 0) return LQ_ERR_INVALID_ARG;
    size_t cc = h->cols * h->cols;
    for (size_t i = 0; i < cc; i++)
        if (!(h->H[i] <= 3.4028234663852886e38 && h->H[i] >= -3.4028234663852886e38))
            return LQ_ERR_NOT_FINITE; /* beyond float range */
    for (size_t i = 0; i < cc; i++) H[i] = (float)h->H[i];
    return LQ_OK;
}

size_t lq_hessian_count(const lq_hessian *h) { return h ? h->count : 0; }

void lq_hessian_free(lq_hessian *h)
{
    if (!h) return;
    lq_allocator a = h->alloc;
    lq_free_with(&a, h->H);
    lq_free_with(&a, h);
}
