/*
 * Re-encoding a packed tensor's codes for its current continuous parameters
 * (lq_finetune_reencode, quant/finetune.h): the discrete half of AQLM's
 * alternation, the other half being lq_finetune_step.
 *
 *   AQ  the format's codebooks (widened to float) and row scales go to the
 *       beam search lq_aq_encode, warm-started from the stored codes; it
 *       already keeps, row by row, the better of the old and new codes.
 *   VQ  one pass of exact coordinate descent per row: vector by vector in
 *       column order, the entry of its codebook that lowers the row's
 *       objective (w_hat - w) H (w_hat - w)^T most, given the other
 *       vectors' current entries (the change is computed from e H, kept up
 *       to date). Without H that is each vector's nearest entry, the exact
 *       minimiser of ||W_hat - W||^2 for fixed codebooks. A row whose float
 *       objective does not come out lower keeps its stored codes.
 *
 * Both run on scratch copies and write the tensor only on success.
 */
#include <math.h>
#include <string.h>

#include "quant/finetune.h"

#include "core/internal.h"
#include "core/linalg.h"
#include "mcq/aq_internal.h"
#include "qtensor/format_aq.h"
#include "qtensor/format_vq.h"
#include "qtensor/qtensor_internal.h"

#define RE_TILE 128

/* ---- AQ ------------------------------------------------------------------ */

static lq_status reencode_aq(lq_ctx *ctx, lq_qtensor *t, const float *W, const float *H,
                             unsigned beam, double *objective, size_t *changed)
{
    lq_aq_layout v;
    if (lq_aq_layout_read(t, &v) != LQ_OK) return LQ_ERR_CORRUPT;
    if (beam < 1 || beam > 256) return LQ_ERR_INVALID_ARG;
    lq_aq_params p = {(unsigned)v.M, v.B, (unsigned)v.g};
    size_t ncb = v.M * v.K * v.g, ncodes = t->rows * v.ng * v.M;
    float *cb = lq_alloc_array(ctx, ncb, sizeof(float));
    float *sc = lq_alloc_array(ctx, t->rows, sizeof(float));
    uint16_t *codes = lq_alloc_array(ctx, ncodes, sizeof(uint16_t));
    lq_status st = LQ_ERR_NO_MEMORY;
    if (cb && sc && codes) {
        for (size_t i = 0; i < ncb; i++) cb[i] = lq_aq_layout_value(&v, i);
        for (size_t r = 0; r < t->rows; r++) sc[r] = lq_aq_layout_scale(&v, r);
        for (size_t i = 0; i < ncodes; i++) codes[i] = (uint16_t)lq_aq_layout_code(&v, i);
        double obj = 0;
        st = lq_aq_encode(ctx, W, t->rows, t->cols, H, &p, cb, sc, beam, 1, codes, &obj);
        if (st == LQ_OK) {
            uint8_t *dst = lq_qtensor_section_mut(t, LQ_SEC_CODES)->data;
            size_t nchg = 0;
            for (size_t i = 0; i < ncodes; i++) {
                nchg += codes[i] != lq_aq_layout_code(&v, i);
                if (v.code_bytes == 1) {
                    dst[i] = (uint8_t)codes[i];
                } else {
                    dst[2 * i] = (uint8_t)codes[i];
                    dst[2 * i + 1] = (uint8_t)(codes[i] >> 8);
                }
            }
            lq_qtensor_drop_kernel_layout(t);
            if (objective) *objective = obj;
            if (changed) *changed = nchg;
        }
    }
    lq_free(ctx, cb);
    lq_free(ctx, sc);
    lq_free(ctx, codes);
    return st;
}

/* ---- VQ ------------------------------------------------------------------ */

/* Row r of W_hat from the code stream `codes` (v's row_bytes per row). */
static void vq_decode_row(const lq_vq_layout *v, const uint8_t *codes, size_t r, float *out)
{
    const uint8_t *cr = codes + r * v->row_bytes;
    for (size_t vi = 0; vi < v->nvec; vi++) {
        size_t g = lq_vq_layout_book(v, r / v->gr, (vi * v->d) / v->gc);
        size_t e = lq_vq_get_code(cr, vi, v->bits);
        for (size_t j = 0; j < v->d; j++)
            out[vi * v->d + j] = lq_vq_layout_value(v, g, e * v->d + j);
    }
}

/* f[i] = e_i H e_i^T (H NULL: ||e_i||^2), e_i = W_hat row (r0 + i) - W row, in double. */
static lq_status vq_row_objectives(lq_ctx *ctx, const lq_vq_layout *v, const uint8_t *codes,
                                   const float *W, const float *H, size_t r0, size_t r1, float *E,
                                   float *Y, double *f)
{
    size_t cols = v->cols, T = r1 - r0;
    for (size_t i = 0; i < T; i++) {
        float *e = E + i * cols;
        vq_decode_row(v, codes, r0 + i, e);
        for (size_t c = 0; c < cols; c++) e[c] -= W[(r0 + i) * cols + c];
    }
    if (H) {
        lq_status st = lq_sgemm(ctx, LQ_NO_TRANS, LQ_NO_TRANS, T, cols, cols, 1.0f, E, cols, H,
                                cols, 0.0f, Y, cols);
        if (st != LQ_OK) return st;
    }
    for (size_t i = 0; i < T; i++) {
        const float *e = E + i * cols, *y = H ? Y + i * cols : e;
        double s = 0;
        for (size_t c = 0; c < cols; c++) s += (double)e[c] * (double)y[c];
        f[i] = s;
    }
    return LQ_OK;
}

/* One pass of exact coordinate descent over the vectors of row r, in column
 * order: with e = w_hat - w and g = e H (both cols doubles, updated as
 * codes change), replacing a vector's value a by b = a + delta changes the
 * objective by 2 delta . g_blk + delta^T H_blk delta; each vector takes the
 * entry with the lowest change (the stored one unless another is strictly
 * lower, ties to the lowest index). H NULL is the identity: the change is
 * |e_blk + delta|^2 - |e_blk|^2, so the entry is the nearest one. The new
 * codes go to ncr (zeroed). book: K*d scratch floats. */
static void vq_descend_row(const lq_vq_layout *v, size_t r, const float *H, double *e, double *g,
                           float *book, uint8_t *ncr)
{
    size_t d = v->d, cols = v->cols, kd = v->K * d, cur_book = SIZE_MAX;
    double delta[8], best_delta[8];
    for (size_t vi = 0; vi < v->nvec; vi++) {
        size_t gi = lq_vq_layout_book(v, r / v->gr, (vi * d) / v->gc), c0 = vi * d;
        if (gi != cur_book) {
            for (size_t q = 0; q < kd; q++) book[q] = lq_vq_layout_value(v, gi, q);
            cur_book = gi;
        }
        size_t a = lq_vq_layout_code(v, r, vi), best = a;
        double best_change = 0;
        for (size_t b = 0; b < v->K; b++) {
            if (b == a) continue;
            double ch = 0;
            for (size_t j = 0; j < d; j++) {
                delta[j] = (double)book[b * d + j] - (double)book[a * d + j];
                ch += 2.0 * delta[j] * g[c0 + j];
            }
            for (size_t j = 0; j < d; j++) {
                double hd = 0;
                for (size_t k = 0; k < d; k++)
                    hd += (H ? (double)H[(c0 + j) * cols + c0 + k] : (j == k)) * delta[k];
                ch += delta[j] * hd;
            }
            if (ch < best_change) { /* strict: ties keep the earlier entry */
                best_change = ch;
                best = b;
                memcpy(best_delta, delta, d * sizeof *delta);
            }
        }
        lq_vq_put_code(ncr, vi, v->bits, (unsigned)best);
        if (best == a) continue;
        for (size_t j = 0; j < d; j++) {
            e[c0 + j] += best_delta[j];
            if (!H) {
                g[c0 + j] += best_delta[j];
                continue;
            }
            const float *hrow = H + (c0 + j) * cols; /* H symmetric: column c0 + j */
            for (size_t c = 0; c < cols; c++) g[c] += best_delta[j] * (double)hrow[c];
        }
    }
}

static lq_status reencode_vq(lq_ctx *ctx, lq_qtensor *t, const float *W, const float *H,
                             double *objective, size_t *changed)
{
    lq_vq_layout v;
    if (lq_vq_layout_read(t, &v) != LQ_OK) return LQ_ERR_CORRUPT;
    if (v.rank) return LQ_ERR_UNSUPPORTED;
    if (H)
        for (size_t c = 0; c < t->cols; c++)
            if (H[c * t->cols + c] < 0.0f) return LQ_ERR_NOT_POSITIVE_DEFINITE;
    size_t cols = t->cols, nbytes = t->rows * v.row_bytes, tile = RE_TILE * cols;
    uint8_t *nc = lq_alloc_array(ctx, nbytes ? nbytes : 1, 1);
    float *book = lq_alloc_array(ctx, v.K * v.d, sizeof(float));
    float *E = lq_alloc_array(ctx, tile, sizeof(float));
    float *Y = H ? lq_alloc_array(ctx, tile, sizeof(float)) : NULL;
    double *eg = lq_alloc_array(ctx, 2 * cols, sizeof(double));
    double *f = lq_alloc_array(ctx, 2 * RE_TILE, sizeof(double));
    lq_status st = LQ_ERR_NO_MEMORY;
    if (!nc || !book || !E || (H && !Y) || !eg || !f) goto out;
    memset(nc, 0, nbytes); /* lq_vq_put_code only sets bits; every code is written */
    double total = 0;
    st = LQ_OK;
    for (size_t r0 = 0; r0 < t->rows && st == LQ_OK; r0 += RE_TILE) {
        size_t r1 = r0 + RE_TILE < t->rows ? r0 + RE_TILE : t->rows;
        st = vq_row_objectives(ctx, &v, v.codes, W, H, r0, r1, E, Y, f);
        for (size_t i = 0; st == LQ_OK && i < r1 - r0; i++) {
            for (size_t c = 0; c < cols; c++) {
                eg[c] = E[i * cols + c];
                eg[cols + c] = H ? Y[i * cols + c] : E[i * cols + c];
            }
            vq_descend_row(&v, r0 + i, H, eg, eg + cols, book, nc + (r0 + i) * v.row_bytes);
        }
        if (st == LQ_OK) st = vq_row_objectives(ctx, &v, nc, W, H, r0, r1, E, Y, f + RE_TILE);
        /* keep the stored codes of a row the float objective does not see
         * improved (rounding), so that no row gets worse */
        for (size_t i = 0; st == LQ_OK && i < r1 - r0; i++) {
            if (f[RE_TILE + i] < f[i]) {
                total += f[RE_TILE + i];
            } else {
                memcpy(nc + (r0 + i) * v.row_bytes, v.codes + (r0 + i) * v.row_bytes, v.row_bytes);
                total += f[i];
            }
        }
    }
    if (st != LQ_OK) goto out;
    size_t nchg = 0;
    for (size_t r = 0; r < t->rows; r++)
        for (size_t vi = 0; vi < v.nvec; vi++)
            nchg +=
                lq_vq_get_code(nc + r * v.row_bytes, vi, v.bits) != lq_vq_layout_code(&v, r, vi);
    memcpy(lq_qtensor_section_mut(t, LQ_SEC_CODES)->data, nc, nbytes);
    lq_qtensor_drop_kernel_layout(t);
    if (objective) *objective = total;
    if (changed) *changed = nchg;
out:
    lq_free(ctx, nc);
    lq_free(ctx, book);
    lq_free(ctx, E);
    lq_free(ctx, Y);
    lq_free(ctx, eg);
    lq_free(ctx, f);
    return st;
}

lq_status lq_finetune_reencode(lq_ctx *ctx, lq_qtensor *t, const float *W, size_t rows, size_t cols,
                               const float *H, unsigned beam, double *objective, size_t *changed)
{
    if (!ctx || !t || !W) return LQ_ERR_INVALID_ARG;
    lq_status st = lq_qtensor_validate(t);
    if (st != LQ_OK) return st;
    if (rows != t->rows || cols != t->cols) return LQ_ERR_INVALID_ARG;
    if (t->format != LQ_FORMAT_AQ && t->format != LQ_FORMAT_VQ) return LQ_ERR_UNSUPPORTED;
    if (t->borrowed) return LQ_ERR_UNSUPPORTED;
    if ((st = aq_check_inputs(W, rows, cols, H)) != LQ_OK) return st;
    if (t->format == LQ_FORMAT_AQ) return reencode_aq(ctx, t, W, H, beam, objective, changed);
    return reencode_vq(ctx, t, W, H, objective, changed);
}
