/* The lq_colquant behind LQ_METHOD_BCQ and LQ_METHOD_GPTQT: group fits on
 * the current weights (parallel over rows), nearest-level coding of each
 * column straight into the bit planes. Driven by the Hessian engine
 * (width 1) or, for round-to-nearest, by lq_bcq_cq_run_rtn. */
#include <math.h>
#include <string.h>

#include "core/half.h"
#include "bcq/bcq_internal.h"

float lq_bcq_round_side(float x, int side16)
{
    if (!side16) return x;
    if (x > 65504.0f) x = 65504.0f;
    if (x < -65504.0f) x = -65504.0f;
    return lq_f16_to_f32(lq_f32_to_f16(x));
}

static lq_status cq_fit_group(void *self, const float *W, size_t ldw, size_t rows, size_t col0,
                              size_t ncols, const float *hinv_diag);
static lq_status cq_quantize(void *self, const float *w, size_t ldw, size_t rows, size_t col,
                             const float *u_block, float *q, size_t ldq);

void lq_bcq_cq_free(lq_bcq_cq *cq)
{
    if (!cq) return;
    lq_ctx *ctx = cq->ctx;
    lq_free(ctx, cq->alpha);
    lq_free(ctx, cq->off);
    lq_free(ctx, cq->gscale);
    lq_free(ctx, cq->gorigin);
    lq_free(ctx, cq->lev);
    lq_free(ctx, cq->lcode);
    lq_free(ctx, cq->gmap);
    lq_free(ctx, cq->imp);
    lq_free(ctx, cq->scr_w);
    lq_free(ctx, cq->scr_c);
    lq_free(ctx, cq->st);
    memset(cq, 0, sizeof *cq);
}

lq_status lq_bcq_cq_init(lq_ctx *ctx, const lq_bcq_cq_cfg *c, lq_bcq_cq *cq)
{
    memset(cq, 0, sizeof *cq);
    cq->ctx = ctx;
    cq->rows = c->rows;
    cq->cols = c->cols;
    cq->group = (c->group == 0 || c->group >= c->cols) ? c->cols : c->group;
    cq->ngroups = lq_chunks(c->cols, cq->group);
    cq->bpr = lq_bcq_plane_bytes(c->cols);
    cq->k = c->k;
    cq->iters = c->iters;
    cq->offset = c->gptqt ? 1 : c->offset;
    cq->weighted = c->weighted;
    cq->side16 = c->side16;
    cq->gptqt = c->gptqt;
    cq->grid_codes = c->gptqt && c->grid_codes;
    cq->lbits = c->lbits;
    cq->steps = c->steps;
    cq->planes = c->planes;
    cq->cur_g = SIZE_MAX;
    cq->nchunks = lq_chunks(c->rows, LQ_BCQ_ROW_GRAIN);
    size_t K = (size_t)1 << c->k, rg = c->rows * cq->ngroups;
    cq->alpha = lq_calloc_array(ctx, rg, c->k * sizeof(float));
    cq->off = lq_calloc_array(ctx, rg, sizeof(float));
    cq->lev = lq_alloc_array(ctx, c->rows, K * sizeof(float));
    cq->lcode = lq_alloc_array(ctx, c->rows, K);
    cq->imp = lq_alloc_array(ctx, cq->group, sizeof(float));
    cq->scr_w = lq_alloc_array(ctx, cq->nchunks, cq->group * sizeof(float));
    cq->scr_c = lq_alloc_array(ctx, cq->nchunks, cq->group);
    cq->st = lq_alloc_array(ctx, cq->nchunks, sizeof(lq_status));
    int ok =
        cq->alpha && cq->off && cq->lev && cq->lcode && cq->imp && cq->scr_w && cq->scr_c && cq->st;
    if (ok && cq->gptqt) {
        cq->gscale = lq_calloc_array(ctx, rg, sizeof(double));
        cq->gorigin = lq_calloc_array(ctx, rg, sizeof(double));
        ok = cq->gscale && cq->gorigin;
        if (ok && cq->grid_codes) {
            cq->gmap = lq_alloc_array(ctx, c->rows, (size_t)1 << c->lbits);
            ok = cq->gmap != NULL;
        }
    }
    if (!ok) {
        lq_bcq_cq_free(cq);
        return LQ_ERR_NO_MEMORY;
    }
    cq->vt.width = 1;
    cq->vt.group = cq->group == c->cols ? 0 : cq->group;
    cq->vt.fit_group = cq_fit_group;
    cq->vt.quantize = cq_quantize;
    cq->vt.self = cq;
    return LQ_OK;
}

static inline unsigned grid_code(float x, double origin, double s, unsigned Lmax)
{
    if (!(s > 0)) return 0;
    double q = nearbyint(((double)x - origin) / s);
    if (!(q > 0)) return 0;
    if (q > (double)Lmax) return Lmax;
    return (unsigned)q;
}

/* Level tables (and the GPTQT grid map) of row r for group g. */
static void build_tables(lq_bcq_cq *cq, size_t r, size_t g)
{
    size_t K = (size_t)1 << cq->k, rg = r * cq->ngroups + g;
    const float *a = cq->alpha + rg * cq->k;
    float *lev = cq->lev + r * K;
    uint8_t *code = cq->lcode + r * K;
    lq_bcq_table(a, cq->k, cq->off[rg], lev, code);
    if (cq->grid_codes) {
        size_t L = (size_t)1 << cq->lbits;
        double s = cq->gscale[rg], o = cq->gorigin[rg];
        for (size_t l = 0; l < L; l++)
            cq->gmap[r * L + l] = code[lq_bcq_nearest(lev, K, (float)(o + s * (double)l))];
    }
}

typedef struct fit_job {
    lq_bcq_cq *cq;
    const float *W;
    size_t ldw, col0, ncols, g;
} fit_job;

static void fit_task(void *arg, size_t t)
{
    fit_job *j = arg;
    lq_bcq_cq *cq = j->cq;
    size_t r0 = t * LQ_BCQ_ROW_GRAIN, r1 = r0 + LQ_BCQ_ROW_GRAIN;
    if (r1 > cq->rows) r1 = cq->rows;
    float *x = cq->scr_w + t * cq->group;
    uint8_t *c = cq->scr_c + t * cq->group;
    const float *v = cq->weighted ? cq->imp : NULL;
    lq_status st = LQ_OK;
    for (size_t r = r0; r < r1 && st == LQ_OK; r++) {
        memcpy(x, j->W + r * j->ldw + j->col0, j->ncols * sizeof *x);
        size_t rg = r * cq->ngroups + j->g;
        float *a = cq->alpha + rg * cq->k, off = 0;
        if (cq->gptqt) {
            lq_gptqt_opts o = {.k = cq->k,
                               .linear_bits = cq->lbits,
                               .rescale_steps = cq->steps,
                               .iters = cq->iters,
                               .grid_codes = cq->grid_codes};
            lq_gptqt_info info;
            st = lq_gptqt_convert(x, v, j->ncols, &o, a, &off, c, &info);
            if (st == LQ_OK) {
                cq->gscale[rg] = info.scale;
                cq->gorigin[rg] = info.origin;
            }
        } else {
            lq_bcq_fit_opts o = {.k = cq->k, .offset = cq->offset, .iters = cq->iters, .tol = 1e-7};
            st = lq_bcq_fit(x, v, j->ncols, &o, a, &off, c, NULL, NULL);
        }
        for (unsigned i = 0; i < cq->k; i++) a[i] = lq_bcq_round_side(a[i], cq->side16);
        cq->off[rg] = cq->offset ? lq_bcq_round_side(off, cq->side16) : 0.0f;
        if (st == LQ_OK) build_tables(cq, r, j->g);
    }
    cq->st[t] = st;
}

static lq_status cq_fit_group(void *self, const float *W, size_t ldw, size_t rows, size_t col0,
                              size_t ncols, const float *hinv_diag)
{
    lq_bcq_cq *cq = self;
    if (rows != cq->rows || ncols == 0 || ncols > cq->group || col0 % cq->group != 0 ||
        col0 / cq->group >= cq->ngroups)
        return LQ_ERR_INVALID_ARG;
    size_t g = col0 / cq->group;
    if (cq->weighted) {
        for (size_t j = 0; j < ncols; j++) {
            float h = hinv_diag ? hinv_diag[j] : 1.0f;
            cq->imp[j] = (h > 0 && isfinite(1.0f / h)) ? 1.0f / h : 0.0f;
        }
    }
    fit_job job = {cq, W, ldw, col0, ncols, g};
    cq->cur_g = SIZE_MAX;
    lq_parallel_for(cq->ctx, cq->nchunks, fit_task, &job);
    for (size_t t = 0; t < cq->nchunks; t++)
        if (cq->st[t] != LQ_OK) return cq->st[t];
    cq->cur_g = g;
    return LQ_OK;
}

static lq_status cq_quantize(void *self, const float *w, size_t ldw, size_t rows, size_t col,
                             const float *u_block, float *q, size_t ldq)
{
    (void)u_block;
    lq_bcq_cq *cq = self;
    if (rows != cq->rows || col >= cq->cols) return LQ_ERR_INVALID_ARG;
    size_t c = cq->vt.perm ? cq->vt.perm[col] : col;
    if (c >= cq->cols) return LQ_ERR_INVALID_ARG;
    size_t g = c / cq->group;
    if (g != cq->cur_g) {
        for (size_t r = 0; r < rows; r++) build_tables(cq, r, g);
        cq->cur_g = g;
    }
    const size_t K = (size_t)1 << cq->k, L = (size_t)1 << cq->lbits;
    const size_t byte = c / 8, plane_stride = rows * cq->bpr;
    const uint8_t bit = (uint8_t)(1u << (c % 8));
    for (size_t r = 0; r < rows; r++) {
        float x = w[r * ldw];
        if (!isfinite(x)) return LQ_ERR_NOT_FINITE;
        size_t rg = r * cq->ngroups + g;
        unsigned code;
        if (cq->grid_codes)
            code =
                cq->gmap[r * L + grid_code(x, cq->gorigin[rg], cq->gscale[rg], (unsigned)(L - 1))];
        else
            code = cq->lcode[r * K + lq_bcq_nearest(cq->lev + r * K, K, x)];
        q[r * ldq] = lq_bcq_value(cq->alpha + rg * cq->k, cq->k, cq->off[rg], code);
        uint8_t *p = cq->planes + r * cq->bpr + byte;
        for (unsigned i = 0; i < cq->k; i++, p += plane_stride) {
            if ((code >> i) & 1u)
                *p |= bit;
            else
                *p &= (uint8_t)~bit;
        }
    }
    return LQ_OK;
}

lq_status lq_bcq_cq_run_rtn(lq_bcq_cq *cq, const float *W, float *W_hat)
{
    for (size_t g = 0; g < cq->ngroups; g++) {
        size_t col0 = g * cq->group, nc = cq->cols - col0;
        if (nc > cq->group) nc = cq->group;
        lq_status st = cq_fit_group(cq, W, cq->cols, cq->rows, col0, nc, NULL);
        if (st != LQ_OK) return st;
        for (size_t c = col0; c < col0 + nc; c++) {
            st = cq_quantize(cq, W + c, cq->cols, cq->rows, c, NULL, W_hat + c, cq->cols);
            if (st != LQ_OK) return st;
        }
    }
    return LQ_OK;
}

void lq_bcq_cq_store(const lq_bcq_cq *cq, void *alpha_sec, void *off_sec)
{
    size_t na = cq->rows * cq->ngroups * cq->k, no = cq->rows * cq->ngroups;
    if (cq->side16) {
        uint16_t *a = alpha_sec, *o = off_sec;
        for (size_t i = 0; i < na; i++) a[i] = lq_f32_to_f16(cq->alpha[i]);
        if (o)
            for (size_t i = 0; i < no; i++) o[i] = lq_f32_to_f16(cq->off[i]);
    } else {
        memcpy(alpha_sec, cq->alpha, na * sizeof(float));
        if (off_sec) memcpy(off_sec, cq->off, no * sizeof(float));
    }
}
