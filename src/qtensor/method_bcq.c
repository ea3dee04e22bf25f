/* LQ_METHOD_BCQ: binary coding per (row, group), by round-to-nearest
 * (greedy + alternating fit on W, plain MSE) or through the Hessian engine
 * (width 1: each group is fitted on the current, GPTQ-updated weights,
 * weighted by 1 / [H^-1]_jj, and every column is coded to its row's nearest
 * level with the error pushed into the remaining columns). The shared
 * driver below also serves LQ_METHOD_GPTQT (method_gptqt.c). */
#include <math.h>
#include <string.h>

#include "bcq/bcq_internal.h"
#include "qtensor/format_bcq.h"
#include "qtensor/qtensor_internal.h"

/* fp16 side values unless the weights' scale would lose them: alphas and
 * offsets are at most about max|W|; fp16 keeps 11 significant bits over
 * [2^-14, 65504], so max|W| in [2^-8, 2^12] keeps every alpha of up to 8
 * planes a normal or near-normal half. Otherwise fp32 (side bytes 4). */
static int side16_ok(const float *W, size_t n)
{
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(W[i]);
        if (a > m) m = a;
    }
    return m == 0.0f || (m >= 0x1p-8f && m <= 0x1p12f);
}

lq_status lq_bcq_quantize_common(lq_ctx *ctx, const float *W, size_t rows, size_t cols,
                                 const float *H, const lq_method *m, int gptqt, lq_qtensor **out,
                                 float *W_hat, lq_quant_report *rep)
{
    const lq_bcq_opts *o = &m->u.bcq;
    if (o->k < 1 || o->k > LQ_BCQ_MAX_K || (o->offset != 0 && o->offset != 1) || o->iters > 1000 ||
        (o->grid_codes != 0 && o->grid_codes != 1))
        return LQ_ERR_INVALID_ARG;
    unsigned lbits = o->linear_bits;
    if (lbits == 0) lbits = o->k + 1 > 6 ? (o->k + 1 > 8 ? 8 : o->k + 1) : 6; /* auto */
    if (gptqt && (lbits < o->k || lbits > LQ_BCQ_MAX_LINEAR_BITS || o->rescale_steps < 1 ||
                  o->rescale_steps > 256))
        return LQ_ERR_INVALID_ARG;
    size_t group = (o->group == 0 || o->group >= cols) ? cols : o->group;
    if (group > UINT32_MAX) group = cols; /* stored as 0 = whole row below */
    int rtn = m->engine.rtn || !H;
    if (!rtn && m->engine.act_order && !m->engine.static_groups && group < cols)
        return LQ_ERR_UNSUPPORTED; /* groups would follow the processing order */
    const size_t bpr = lq_bcq_plane_bytes(cols), ngroups = lq_chunks(cols, group);
    size_t n_codes, n_rg, tmp;
    if (!lq_mul_ok(rows, bpr, &n_codes) || !lq_mul_ok(n_codes, o->k, &n_codes) ||
        !lq_mul_ok(rows, ngroups, &n_rg) || !lq_mul_ok(n_rg, (size_t)o->k * 4, &tmp))
        return LQ_ERR_INVALID_ARG;
    const int side16 = side16_ok(W, rows * cols);
    const unsigned side = side16 ? 2u : 4u;
    const int has_off = gptqt ? 1 : o->offset;

    lq_qtensor *t = NULL;
    float *wh = NULL;
    lq_bcq_cq cq;
    int cq_live = 0;
    lq_status st = lq_qtensor_new(ctx, LQ_FORMAT_BCQ, rows, cols, &t);
    if (st != LQ_OK) return st;
    uint8_t *planes = lq_qtensor_add_section(t, LQ_SEC_CODES, 1, n_codes);
    void *asec = planes ? lq_qtensor_add_section(t, LQ_SEC_ALPHAS, side, n_rg * o->k * side) : NULL;
    void *osec = NULL;
    if (asec && has_off) osec = lq_qtensor_add_section(t, LQ_SEC_OFFSETS, side, n_rg * side);
    if (!planes || !asec || (has_off && !osec)) {
        st = LQ_ERR_NO_MEMORY;
        goto fail;
    }
    /* own buffer: W_hat is written only once everything succeeded */
    wh = lq_alloc_array(ctx, rows * cols, sizeof *wh);
    if (!wh) {
        st = LQ_ERR_NO_MEMORY;
        goto fail;
    }
    lq_bcq_cq_cfg cfg = {.rows = rows,
                         .cols = cols,
                         .group = group,
                         .k = o->k,
                         .iters = o->iters,
                         .offset = has_off,
                         .weighted = !rtn,
                         .side16 = side16,
                         .gptqt = gptqt,
                         .grid_codes = o->grid_codes,
                         .lbits = gptqt ? lbits : 0,
                         .steps = o->rescale_steps,
                         .planes = planes};
    st = lq_bcq_cq_init(ctx, &cfg, &cq);
    if (st != LQ_OK) goto fail;
    cq_live = 1;
    lq_gptq_result res = {0};
    if (rtn)
        st = lq_bcq_cq_run_rtn(&cq, W, wh);
    else
        st = lq_gptq_run(ctx, W, rows, cols, H, &m->engine, &cq.vt, wh, &res);
    if (st != LQ_OK) goto fail;
    lq_bcq_cq_store(&cq, asec, osec);
    lq_bcq_cq_free(&cq);
    cq_live = 0;
    lq_bcq_set_params(t, o->k, group, has_off, side);
    if (rep) {
        double loss = 0;
        st = lq_proxy_loss(ctx, W, wh, rows, cols, H, &loss);
        if (st != LQ_OK) goto fail;
        rep->damping = res.damping;
        rep->dead_columns = res.dead_columns;
        rep->proxy_loss = loss;
    }
    if (W_hat) memcpy(W_hat, wh, rows * cols * sizeof *wh);
    lq_free(ctx, wh);
    *out = t;
    return LQ_OK;
fail:
    if (cq_live) lq_bcq_cq_free(&cq);
    lq_free(ctx, wh);
    lq_qtensor_free(t);
    return st;
}

lq_status lq_quantize_bcq(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                          const lq_method *m, lq_qtensor **out, float *W_hat, lq_quant_report *rep)
{
    return lq_bcq_quantize_common(ctx, W, rows, cols, H, m, 0, out, W_hat, rep);
}
