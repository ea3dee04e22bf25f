/* LQ_METHOD_INT: the integer grid quantizer driven by the Hessian engine
 * (GPTQ) or round to nearest, packed as LQ_FORMAT_INT (see format_int.c). */
#include <string.h>

#include "hessian/int_quant.h"
#include "qtensor/format_int.h"
#include "qtensor/qtensor_internal.h"

static lq_status pack_int(lq_ctx *ctx, const lq_intq *q, lq_qtensor **out)
{
    size_t rows = q->rows, cols = q->cols, ng = q->ngroups;
    size_t cb = lq_int_stream_bytes(cols, q->bits), zb = lq_int_stream_bytes(ng, q->bits);
    size_t sb = q->need_fp32 ? 4 : 2, n;
    if (!lq_mul_ok(rows, cb, &n) || !lq_mul_ok(rows * ng, sb, &n)) return LQ_ERR_INVALID_ARG;
    lq_qtensor *t;
    lq_status st = lq_qtensor_new(ctx, LQ_FORMAT_INT, rows, cols, &t);
    if (st != LQ_OK) return st;
    lq_int_set_params(t, q->bits, q->symmetric, q->g, q->has_perm, sb);
    uint8_t *codes = lq_qtensor_add_section(t, LQ_SEC_CODES, 1, rows * cb);
    uint8_t *scales = lq_qtensor_add_section(t, LQ_SEC_SCALES, (uint32_t)sb, rows * ng * sb);
    uint8_t *zeros = q->symmetric ? NULL : lq_qtensor_add_section(t, LQ_SEC_ZEROS, 1, rows * zb);
    uint32_t *perm = q->has_perm ? lq_qtensor_add_section(t, LQ_SEC_PERM, 4, cols * 4) : NULL;
    if (!codes || !scales || (!q->symmetric && !zeros) || (q->has_perm && !perm)) {
        lq_qtensor_free(t);
        return LQ_ERR_NO_MEMORY;
    }
    /* codes are column-major in q: transpose by tiles of rows so that both
     * the reads and the rows being written stay in cache */
    for (size_t r0 = 0; r0 < rows; r0 += 64) {
        size_t r1 = r0 + 64 < rows ? r0 + 64 : rows;
        for (size_t k = 0; k < cols; k++)
            for (size_t r = r0; r < r1; r++)
                lq_int_put_bits(codes + r * cb, k, q->bits, q->codes[k * rows + r]);
    }
    for (size_t r = 0; r < rows; r++) {
        if (zeros)
            for (size_t gi = 0; gi < ng; gi++)
                lq_int_put_bits(zeros + r * zb, gi, q->bits, q->zero[r * ng + gi]);
    }
    for (size_t i = 0; i < rows * ng; i++) {
        if (sb == 4) {
            memcpy(scales + 4 * i, &q->scale[i], 4); /* little-endian hosts only (io checks) */
        } else {
            uint16_t h = 0;
            lq_int_half_bits(q->scale[i], &h); /* a half: checked by the fit */
            scales[2 * i] = (uint8_t)(h & 0xff);
            scales[2 * i + 1] = (uint8_t)(h >> 8);
        }
    }
    if (perm) memcpy(perm, q->perm, cols * sizeof *perm);
    *out = t;
    return LQ_OK;
}

lq_status lq_quantize_int(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                          const lq_method *m, lq_qtensor **out, float *W_hat, lq_quant_report *rep)
{
    const lq_int_opts *o = &m->u.int_;
    if (o->bits < 2 || o->bits > 8) return LQ_ERR_INVALID_ARG;
    lq_intq q;
    lq_status st = lq_intq_init(ctx, &q, rows, cols, o);
    if (st != LQ_OK) return st;
    lq_colquant cq;
    lq_intq_colquant(&q, &cq);
    float *Wt = NULL;
    lq_qtensor *t = NULL;
    if (W_hat || rep) {
        Wt = lq_alloc_array(ctx, rows * cols, sizeof *Wt);
        if (!Wt) {
            st = LQ_ERR_NO_MEMORY;
            goto done;
        }
    }
    lq_gptq_result res;
    st = lq_gptq_run(ctx, W, rows, cols, H, &m->engine, &cq, Wt, &res);
    if (st != LQ_OK) goto done;
    st = pack_int(ctx, &q, &t);
    if (st != LQ_OK) goto done;
    if (rep) {
        memset(rep, 0, sizeof *rep);
        rep->damping = res.damping;
        rep->dead_columns = res.dead_columns;
        st = lq_proxy_loss(ctx, W, Wt, rows, cols, H, &rep->proxy_loss);
        if (st != LQ_OK) goto done;
    }
    if (W_hat) memcpy(W_hat, Wt, rows * cols * sizeof *Wt);
    *out = t;
    t = NULL;
done:
    lq_qtensor_free(t);
    lq_free(ctx, Wt);
    lq_intq_free(&q);
    return st;
}
