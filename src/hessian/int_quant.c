/* The uniform integer grid quantizer as an lq_colquant (see int_quant.h). */
#include <math.h>

#include "hessian/int_quant.h"

#define FIT_GRAIN 32  /* rows per task of a group fit */
#define CLIP_GRID 100 /* shrink step 1/100 ... */
#define CLIP_STEPS 80 /* ... down to p = 0.21 (GPTQ's maxshrink 0.8) */

lq_status lq_intq_init(lq_ctx *ctx, lq_intq *q, size_t rows, size_t cols, const lq_int_opts *o)
{
    if (!q || !o || rows == 0 || cols == 0 || o->bits < 2 || o->bits > 8) return LQ_ERR_INVALID_ARG;
    size_t n;
    if (!lq_mul_ok(rows, cols, &n)) return LQ_ERR_INVALID_ARG;
    memset(q, 0, sizeof *q);
    q->ctx = ctx;
    q->bits = o->bits;
    q->maxq = (1u << o->bits) - 1u;
    q->symmetric = o->symmetric != 0;
    q->mse_clip = o->mse_clip != 0;
    q->gguf_exact = o->gguf_exact != 0;
    q->rows = rows;
    q->cols = cols;
    q->g = o->group == 0 || o->group > cols ? cols : o->group;
    q->ngroups = (cols + q->g - 1) / q->g;
    q->scale = lq_alloc_array(ctx, rows * q->ngroups, sizeof *q->scale);
    q->zero = lq_calloc_array(ctx, rows * q->ngroups, 1);
    q->codes = lq_alloc_array(ctx, n, 1);
    q->perm = lq_alloc_array(ctx, cols, sizeof *q->perm);
    if (!q->scale || !q->zero || !q->codes || !q->perm) {
        lq_intq_free(q);
        return LQ_ERR_NO_MEMORY;
    }
    for (size_t i = 0; i < rows * q->ngroups; i++) q->scale[i] = 1.0f;
    for (size_t j = 0; j < cols; j++) q->perm[j] = (uint32_t)j;
    return LQ_OK;
}

void lq_intq_free(lq_intq *q)
{
    if (!q) return;
    lq_free(q->ctx, q->scale);
    lq_free(q->ctx, q->zero);
    lq_free(q->ctx, q->codes);
    lq_free(q->ctx, q->perm);
    q->scale = NULL;
    q->zero = NULL;
    q->codes = NULL;
    q->perm = NULL;
}

static unsigned zero_of(const lq_intq *q, float xmin, float s)
{
    if (q->symmetric) return (q->maxq + 1u) / 2u;
    float z = nearbyintf(-xmin / s);
    return z <= 0.0f ? 0u : z >= (float)q->maxq ? q->maxq : (unsigned)z;
}

/* gguf_exact grid (int_quant.h): s a half, and zero * s a half when
 * asymmetric. s = +inf marks a grid no half can hold (out of range). */
static void grid_params_gguf(const lq_intq *q, float xmin, float s0, float *scale, unsigned *zero)
{
    unsigned p_min = 11u - q->bits; /* bits <= 8 */
    for (unsigned p = 11;; p--) {
        float s = lq_int_half_nearest(lq_int_round_sig(s0, p));
        if (s == 0.0f) s = 0x1p-24f; /* the smallest half: the range collapsed */
        unsigned z = zero_of(q, xmin, s);
        if (q->symmetric || lq_int_half_nearest((float)z * s) == (float)z * s || p <= p_min) {
            *scale = s;
            *zero = z;
            return;
        }
    }
}

/* Grid of [xmin, xmax] (xmin <= 0 <= xmax): scale (half-rounded when
 * possible) and zero. */
static void grid_params(const lq_intq *q, float xmin, float xmax, float *scale, unsigned *zero)
{
    float s = (xmax - xmin) / (float)q->maxq;
    if (q->gguf_exact && s > 0.0f) {
        grid_params_gguf(q, xmin, s, scale, zero);
        return;
    }
    lq_int_half_round(s, &s, NULL);
    if (!(s > 0.0f)) s = 1.0f; /* collapsed range (underflow): any grid holds the zeros */
    *scale = s;
    *zero = zero_of(q, xmin, s);
}

static inline float quant_one(float x, float s, unsigned z, unsigned maxq, unsigned *code)
{
    float v = nearbyintf(x / s) + (float)z;
    v = v < 0.0f ? 0.0f : v > (float)maxq ? (float)maxq : v;
    unsigned c = (unsigned)v;
    if (code) *code = c;
    return (float)((int)c - (int)z) * s;
}

typedef struct fit_job {
    lq_intq *q;
    const float *W;
    size_t ldw, col0, ncols, gi;
} fit_job;

static void fit_task(void *arg, size_t t)
{
    fit_job *j = arg;
    lq_intq *q = j->q;
    size_t r0 = t * FIT_GRAIN, r1 = r0 + FIT_GRAIN;
    if (r1 > q->rows) r1 = q->rows;
    for (size_t r = r0; r < r1; r++) {
        const float *x = j->W + r * j->ldw + j->col0;
        float xmin = 0.0f, xmax = 0.0f;
        for (size_t k = 0; k < j->ncols; k++) {
            xmin = x[k] < xmin ? x[k] : xmin;
            xmax = x[k] > xmax ? x[k] : xmax;
        }
        if (q->symmetric) {
            xmax = -xmin > xmax ? -xmin : xmax;
            xmin = -xmax;
        }
        if (xmin == 0.0f && xmax == 0.0f) {
            xmin = -1.0f;
            xmax = 1.0f;
        }
        float s;
        unsigned z;
        grid_params(q, xmin, xmax, &s, &z);
        if (q->mse_clip) {
            double best = INFINITY;
            for (int i = 0; i < CLIP_STEPS; i++) {
                float p = 1.0f - (float)i / (float)CLIP_GRID, s1;
                unsigned z1;
                grid_params(q, p * xmin, p * xmax, &s1, &z1);
                double err = 0;
                for (size_t k = 0; k < j->ncols; k++) {
                    double d = (double)quant_one(x[k], s1, z1, q->maxq, NULL) - (double)x[k];
                    err += d * d;
                }
                if (err < best) {
                    best = err;
                    s = s1;
                    z = z1;
                }
            }
        }
        q->scale[r * q->ngroups + j->gi] = s;
        q->zero[r * q->ngroups + j->gi] = (uint8_t)z;
    }
}

static lq_status intq_fit(void *self, const float *W, size_t ldw, size_t rows, size_t col0,
                          size_t ncols, const float *hinv_diag)
{
    (void)hinv_diag;
    lq_intq *q = self;
    if (rows != q->rows || col0 % q->g != 0 || col0 >= q->cols) return LQ_ERR_INVALID_ARG;
    fit_job j = {q, W, ldw, col0, ncols, col0 / q->g};
    size_t nt = lq_chunks(rows, FIT_GRAIN);
    size_t work = rows * ncols * (q->mse_clip ? CLIP_STEPS : 1);
    if (work < 65536) {
        for (size_t t = 0; t < nt; t++) fit_task(&j, t);
    } else {
        lq_parallel_for(q->ctx, nt, fit_task, &j);
    }
    for (size_t r = 0; r < rows; r++) { /* fp32 storage unless every scale is a half */
        float s = q->scale[r * q->ngroups + j.gi], h;
        if (q->gguf_exact) {
            float m = (float)q->zero[r * q->ngroups + j.gi] * s;
            if (!lq_int_half_bits(s, NULL) || (!q->symmetric && !lq_int_half_bits(m, NULL)))
                q->out_of_range = 1;
        } else if (!lq_int_half_round(s, &h, NULL) || h != s) {
            q->need_fp32 = 1;
        }
    }
    return q->out_of_range ? LQ_ERR_OUT_OF_RANGE : LQ_OK;
}

/* Rows [r0, r1) of processing column col (w and out at row 0). Writes only
 * those rows' values and codes, plus (from the range holding row 0 alone)
 * the column's stored-order permutation entry: ranges may run at once. */
static lq_status intq_quantize_rows(void *self, const float *w, size_t ldw, size_t r0, size_t r1,
                                    size_t col, const float *u_block, float *out, size_t ldq)
{
    (void)u_block;
    lq_intq *q = self;
    if (r0 > r1 || r1 > q->rows || col >= q->cols || !q->cq) return LQ_ERR_INVALID_ARG;
    const size_t *perm = q->cq->perm;
    size_t orig = perm ? perm[col] : col;
    /* stored order: processing order when groups follow it (act-order
     * without static groups, several groups), else the original order */
    int by_pos = perm && !q->cq->static_groups && q->ngroups > 1;
    size_t stored = by_pos ? col : orig;
    if (orig >= q->cols) return LQ_ERR_INVALID_ARG;
    if (by_pos && r0 == 0) {
        q->perm[col] = (uint32_t)orig;
        q->has_perm = 1;
    }
    size_t gi = stored / q->g, ng = q->ngroups;
    for (size_t r = r0; r < r1; r++) {
        unsigned c;
        out[r * ldq] =
            quant_one(w[r * ldw], q->scale[r * ng + gi], q->zero[r * ng + gi], q->maxq, &c);
        q->codes[stored * q->rows + r] = (uint8_t)c;
    }
    return LQ_OK;
}

static lq_status intq_quantize(void *self, const float *w, size_t ldw, size_t rows, size_t col,
                               const float *u_block, float *out, size_t ldq)
{
    lq_intq *q = self;
    if (rows != q->rows) return LQ_ERR_INVALID_ARG;
    return intq_quantize_rows(self, w, ldw, 0, rows, col, u_block, out, ldq);
}

void lq_intq_colquant(lq_intq *q, lq_colquant *cq)
{
    memset(cq, 0, sizeof *cq);
    cq->width = 1;
    cq->group = q->g;
    cq->fit_group = intq_fit;
    cq->quantize = intq_quantize;
    cq->quantize_rows = intq_quantize_rows;
    cq->self = q;
    q->cq = cq;
}
