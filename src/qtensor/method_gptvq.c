/*
 * LQ_METHOD_GPTVQ (van Baalen et al. 2024, arXiv 2402.15319): vector
 * quantization of d consecutive input columns of a row, driven by the GPTQ
 * engine with width d, packed as LQ_FORMAT_VQ (src/vq/vq_internal.h).
 *
 *  - fit_group (a new block of group_cols columns starts): for each block of
 *    group_rows rows, a codebook of 2^b entries is learned by Hessian-aware
 *    EM (weighted k-means++ then Lloyd) on the current, already updated
 *    weights of the block; coordinate j of a vector has importance
 *    1 / [H^-1]_jj = 1 / U_jj^2 (hinv_diag). Entries are sorted
 *    lexicographically (so that stacked codebooks line up for the SVD) and
 *    rounded to their storage precision (half, or int8 with a scale).
 *  - quantize (a step of d columns): each row's d-vector x takes the entry c
 *    minimising the exact OBS error of the step, ||(x - c) U_SS^-1||^2 with
 *    U_SS the d x d diagonal block of U = chol(H^-1) (the same quantity the
 *    engine propagates). Computed as a plain nearest search after mapping x
 *    and every entry through y U_SS = v (forward substitution).
 *  - codebook update (after the engine, with the codes fixed): for each
 *    codebook in turn the exact proxy loss tr((W - W^) H (W - W^)^T) is a
 *    quadratic in its k*d entries; one Newton step solves it (ridge-damped
 *    normal equations in double) and is kept only if the loss, evaluated
 *    exactly after storage rounding, goes down. Block-coordinate descent:
 *    the proxy loss never increases.
 *  - codebook compression: int8 with a per-codebook scale (codebook_bits 8)
 *    and/or a rank-r SVD of the m x (k d) matrix of stacked codebooks
 *    (svd_rank), factors stored as halves.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "core/linalg.h"
#include "quant/hessian.h"
#include "qtensor/qtensor_internal.h"
#include "vq/vq_internal.h"

typedef struct gvq {
    lq_ctx *ctx;
    lq_simd_level level;
    size_t rows, cols, d, k, kpad, gc, gr, ncg, nrb, ncb, nvec; /* nvec = cols / d */
    unsigned bits, cb_bits, em_iters;
    uint64_t seed;
    float *cb;       /* ncb x k x d, the codebooks as stored (rounded) */
    float *cscale;   /* ncb int8 scales */
    uint16_t *codes; /* rows x nvec */
    /* fit scratch: one slot per row block */
    size_t ws_bytes, slot_pts;
    unsigned char *kmws;
    float *pts, *cwt, *cent;
    /* quantize scratch */
    float *tct; /* nrb x d x kpad transformed, transposed codebooks */
    float *y;   /* rows x d */
    uint32_t *idx;
    float *dist;
    /* per-step job parameters */
    const float *w, *ub;
    size_t ldw, col, ncols_fit, col0_fit;
    float *q;
    size_t ldq;
    const float *hinv;
    const float *Wfit;
} gvq;

static size_t rb_rows(const gvq *g, size_t rb)
{
    size_t r0 = rb * g->gr;
    return g->rows - r0 < g->gr ? g->rows - r0 : g->gr;
}

/* ---- storage rounding ----------------------------------------------------- */

static int entry_cmp(const float *a, const float *b, size_t d)
{
    for (size_t j = 0; j < d; j++) {
        if (a[j] < b[j]) return -1;
        if (a[j] > b[j]) return 1;
    }
    return 0;
}

/* Insertion sort of k entries (k <= 2^16, done once per codebook). */
static void sort_entries(float *c, size_t k, size_t d)
{
    float tmp[8];
    for (size_t i = 1; i < k; i++) {
        memcpy(tmp, c + i * d, d * sizeof(float));
        size_t j = i;
        while (j > 0 && entry_cmp(c + (j - 1) * d, tmp, d) > 0) {
            memcpy(c + j * d, c + (j - 1) * d, d * sizeof(float));
            j--;
        }
        memcpy(c + j * d, tmp, d * sizeof(float));
    }
}

/* Round codebook g to its storage precision, in place. */
static void round_codebook(gvq *g, size_t gi, float *c)
{
    size_t n = g->k * g->d;
    if (g->cb_bits == 8) {
        float m = 0;
        for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(c[i]));
        float s = m > 0 ? m / 127.0f : 1.0f;
        if (!(s > 0) || !isfinite(s)) s = 1.0f;
        for (size_t i = 0; i < n; i++) {
            float v = rintf(c[i] / s);
            v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
            c[i] = v * s;
        }
        g->cscale[gi] = s;
    } else {
        /* clamped to the half range: the stored codebook stays finite */
        for (size_t i = 0; i < n; i++) {
            float v = c[i] > 65504.0f ? 65504.0f : (c[i] < -65504.0f ? -65504.0f : c[i]);
            c[i] = lq_f16_to_f32(lq_f32_to_f16(v));
        }
    }
}

/* ---- fit_group: Hessian-aware EM per row block ----------------------------- */

static void fit_one(gvq *g, size_t rb, size_t slot)
{
    size_t d = g->d, nv = g->ncols_fit / d, r0 = rb * g->gr, nr = rb_rows(g, rb);
    size_t n = nr * nv, cg = g->col0_fit / g->gc, gi = rb * g->ncg + cg;
    float *pts = g->pts + slot * g->slot_pts, *cw = g->cwt + slot * g->slot_pts;
    float *cent = g->cent + slot * g->k * d;
    for (size_t r = 0; r < nr; r++) {
        const float *wr = g->Wfit + (r0 + r) * g->ldw + g->col0_fit;
        memcpy(pts + r * nv * d, wr, nv * d * sizeof(float));
        for (size_t j = 0; j < nv * d; j++) cw[r * nv * d + j] = 1.0f / g->hinv[j];
    }
    /* Scale the importances to mean 1 (keeps float distances in range). */
    double mean = 0;
    for (size_t j = 0; j < nv * d; j++) mean += cw[j];
    mean /= (double)(nv * d);
    float inv = mean > 0 ? (float)(1.0 / mean) : 1.0f;
    for (size_t i = 0; i < n * d; i++) cw[i] *= inv;
    size_t ke = g->k < n ? g->k : n;
    lq_kmeans_opts o;
    lq_kmeans_opts_init(&o);
    o.max_iter = g->em_iters;
    o.tol = 1e-7;
    o.coord_weights = cw;
    lq_kmeans_ws ws;
    lq_kmeans_ws_init(&ws, g->kmws + slot * g->ws_bytes, n, d, ke, 1);
    /* direct kernels only (coordinate weights): cannot fail */
    (void)lq_kmeans_core(g->ctx, g->level, pts, NULL, n, d, ke, &o, g->seed, (uint64_t)gi * 4 + 1,
                         0, &ws, cent, NULL, NULL);
    for (size_t e = ke; e < g->k; e++) memcpy(cent + e * d, cent, d * sizeof(float));
    sort_entries(cent, g->k, d);
    round_codebook(g, gi, cent);
    memcpy(g->cb + gi * g->k * d, cent, g->k * d * sizeof(float));
}

static void fit_task(void *arg, size_t rb) { fit_one(arg, rb, rb); }

static lq_status gvq_fit(void *self, const float *W, size_t ldw, size_t rows, size_t col0,
                         size_t ncols, const float *hinv_diag)
{
    gvq *g = self;
    if (rows != g->rows || col0 % g->gc != 0 || ncols % g->d != 0) return LQ_ERR_INVALID_ARG;
    g->Wfit = W;
    g->ldw = ldw;
    g->col0_fit = col0;
    g->ncols_fit = ncols;
    g->hinv = hinv_diag;
    if (g->nrb == 1)
        fit_one(g, 0, 0); /* k-means parallel inside */
    else
        lq_parallel_for(g->ctx, g->nrb, fit_task, g);
    return LQ_OK;
}

/* ---- quantize: OBS-weighted nearest entry ---------------------------------- */

/* y U = v for upper-triangular U (d x d, ld d): forward substitution. */
static inline void solve_upper_row(const float *U, size_t d, const float *v, float *y)
{
    for (size_t a = 0; a < d; a++) {
        float s = v[a];
        for (size_t m = 0; m < a; m++) s -= y[m] * U[m * d + a];
        y[a] = s / U[a * d + a];
    }
}

static void quant_task(void *arg, size_t rb)
{
    gvq *g = arg;
    size_t d = g->d, k = g->k, kpad = g->kpad, r0 = rb * g->gr, nr = rb_rows(g, rb);
    size_t cg = g->col / g->gc, gi = rb * g->ncg + cg, v = g->col / d;
    const float *cb = g->cb + gi * k * d;
    float *tct = g->tct + rb * d * kpad;
    float t[8];
    for (size_t e = 0; e < k; e++) {
        solve_upper_row(g->ub, d, cb + e * d, t);
        for (size_t j = 0; j < d; j++) tct[j * kpad + e] = t[j];
    }
    float *y = g->y + r0 * d;
    for (size_t r = 0; r < nr; r++) solve_upper_row(g->ub, d, g->w + (r0 + r) * g->ldw, y + r * d);
    lq_vq_nearest_for(g->level, d)(y, NULL, nr, d, tct, k, kpad, g->idx + r0, g->dist + r0);
    for (size_t r = 0; r < nr; r++) {
        uint32_t c = g->idx[r0 + r];
        g->codes[(r0 + r) * g->nvec + v] = (uint16_t)c;
        memcpy(g->q + (r0 + r) * g->ldq, cb + (size_t)c * d, d * sizeof(float));
    }
}

static lq_status gvq_quantize(void *self, const float *w, size_t ldw, size_t rows, size_t col,
                              const float *u_block, float *q, size_t ldq)
{
    gvq *g = self;
    if (rows != g->rows || col % g->d != 0) return LQ_ERR_INVALID_ARG;
    g->w = w;
    g->ldw = ldw;
    g->col = col;
    g->ub = u_block;
    g->q = q;
    g->ldq = ldq;
    if (g->nrb == 1 || rows * g->k < 4096) {
        for (size_t rb = 0; rb < g->nrb; rb++) quant_task(g, rb);
    } else {
        lq_parallel_for(g->ctx, g->nrb, quant_task, g);
    }
    return LQ_OK;
}

/* ---- set-up ---------------------------------------------------------------- */

static void gvq_free(gvq *g)
{
    lq_ctx *c = g->ctx;
    lq_free(c, g->cb);
    lq_free(c, g->cscale);
    lq_free(c, g->codes);
    lq_free(c, g->kmws);
    lq_free(c, g->pts);
    lq_free(c, g->cwt);
    lq_free(c, g->cent);
    lq_free(c, g->tct);
    lq_free(c, g->y);
    lq_free(c, g->idx);
    lq_free(c, g->dist);
}

static lq_status gvq_init(lq_ctx *ctx, gvq *g, size_t rows, size_t cols, const lq_gptvq_opts *o)
{
    memset(g, 0, sizeof *g);
    g->ctx = ctx;
    g->level = lq_simd_for(ctx);
    g->seed = lq_ctx_seed(ctx);
    g->rows = rows;
    g->cols = cols;
    g->d = o->dim;
    g->bits = o->index_bits;
    g->k = (size_t)1 << o->index_bits;
    g->kpad = lq_vq_kpad(g->k);
    g->gc = o->group_cols == 0 || o->group_cols > cols ? cols : o->group_cols;
    g->gr = o->group_rows == 0 || o->group_rows > rows ? rows : o->group_rows;
    g->ncg = lq_chunks(cols, g->gc);
    g->nrb = lq_chunks(rows, g->gr);
    g->ncb = g->ncg * g->nrb;
    g->nvec = cols / g->d;
    g->cb_bits = o->codebook_bits == 8 ? 8 : 16;
    g->em_iters = o->em_iters;
    size_t d = g->d, k = g->k, n, slot;
    if (!lq_mul_ok(g->gr, g->gc, &slot) || !lq_mul_ok(g->ncb, k * d, &n) ||
        !lq_mul_ok(g->nrb, slot, &n) || !lq_mul_ok(rows, g->nvec, &n))
        return LQ_ERR_INVALID_ARG;
    g->slot_pts = slot;
    g->ws_bytes = lq_kmeans_ws_bytes(slot / d, d, k < slot / d ? k : slot / d, 1);
    if (!g->ws_bytes || !lq_mul_ok(g->nrb, g->ws_bytes, &n)) return LQ_ERR_INVALID_ARG;
    g->cb = lq_alloc_array(ctx, g->ncb * k * d, sizeof(float));
    g->cscale = lq_calloc_array(ctx, g->ncb, sizeof(float));
    g->codes = lq_calloc_array(ctx, rows * g->nvec, sizeof(uint16_t));
    g->kmws = lq_alloc(ctx, g->nrb * g->ws_bytes);
    g->pts = lq_alloc_array(ctx, g->nrb * slot, sizeof(float));
    g->cwt = lq_alloc_array(ctx, g->nrb * slot, sizeof(float));
    g->cent = lq_alloc_array(ctx, g->nrb * k * d, sizeof(float));
    g->tct = lq_calloc_array(ctx, g->nrb * d * g->kpad, sizeof(float));
    g->y = lq_alloc_array(ctx, rows * d, sizeof(float));
    g->idx = lq_alloc_array(ctx, rows, sizeof(uint32_t));
    g->dist = lq_alloc_array(ctx, rows, sizeof(float));
    if (!g->cb || !g->cscale || !g->codes || !g->kmws || !g->pts || !g->cwt || !g->cent ||
        !g->tct || !g->y || !g->idx || !g->dist) {
        gvq_free(g);
        return LQ_ERR_NO_MEMORY;
    }
    return LQ_OK;
}

/* Dequantize the codes with the current codebooks (rows x cols). */
static void gvq_dequant(const gvq *g, float *W_hat)
{
    size_t d = g->d, k = g->k;
    for (size_t r = 0; r < g->rows; r++) {
        size_t rb = r / g->gr;
        for (size_t v = 0; v < g->nvec; v++) {
            size_t gi = rb * g->ncg + (v * d) / g->gc;
            memcpy(W_hat + r * g->cols + v * d, g->cb + (gi * k + g->codes[r * g->nvec + v]) * d,
                   d * sizeof(float));
        }
    }
}

/* ---- codebook update: exact least squares under H --------------------------- */

typedef struct upd {
    gvq *g;
    const float *H;
    const float *G; /* rows x cols: (W - W^) H */
    float *Wh;      /* rows x cols current W^ */
    float *dW;      /* rows x gc: change of W^ on the group's columns */
    double *A;      /* nrb x (kd)^2 */
    double *b;      /* nrb x kd */
    float *cnew;    /* nrb x kd */
    size_t cg, c0, nc;
    double ridge;
} upd;

/* Cholesky solve of the kd x kd system (in place; A is destroyed). Returns
 * 0 when a pivot is not positive. */
static int chol_solve(double *A, size_t n, double *b)
{
    for (size_t j = 0; j < n; j++) {
        double s = A[j * n + j];
        for (size_t m = 0; m < j; m++) s -= A[j * n + m] * A[j * n + m];
        if (!(s > 0)) return 0;
        double l = sqrt(s);
        A[j * n + j] = l;
        for (size_t i = j + 1; i < n; i++) {
            double t = A[i * n + j];
            for (size_t m = 0; m < j; m++) t -= A[i * n + m] * A[j * n + m];
            A[i * n + j] = t / l;
        }
    }
    for (size_t i = 0; i < n; i++) {
        double t = b[i];
        for (size_t m = 0; m < i; m++) t -= A[i * n + m] * b[m];
        b[i] = t / A[i * n + i];
    }
    for (size_t i = n; i-- > 0;) {
        double t = b[i];
        for (size_t m = i + 1; m < n; m++) t -= A[m * n + i] * b[m];
        b[i] = t / A[i * n + i];
    }
    return 1;
}

static void upd_task(void *arg, size_t rb)
{
    upd *u = arg;
    gvq *g = u->g;
    size_t d = g->d, k = g->k, kd = k * d, cols = g->cols, nv = u->nc / d;
    size_t r0 = rb * g->gr, nr = rb_rows(g, rb), gi = rb * g->ncg + u->cg;
    double *A = u->A + rb * kd * kd, *b = u->b + rb * kd;
    memset(A, 0, kd * kd * sizeof *A);
    memset(b, 0, kd * sizeof *b);
    for (size_t r = r0; r < r0 + nr; r++) {
        const uint16_t *cr = g->codes + r * g->nvec + u->c0 / d;
        const float *Gr = u->G + r * cols + u->c0;
        for (size_t v = 0; v < nv; v++) {
            size_t c = cr[v];
            for (size_t a = 0; a < d; a++) b[c * d + a] += Gr[v * d + a];
            for (size_t v2 = 0; v2 < nv; v2++) {
                size_t c2 = cr[v2];
                for (size_t a = 0; a < d; a++) {
                    const float *Hrow = u->H + (u->c0 + v * d + a) * cols + u->c0 + v2 * d;
                    double *Arow = A + (c * d + a) * kd + c2 * d;
                    for (size_t bb = 0; bb < d; bb++) Arow[bb] += Hrow[bb];
                }
            }
        }
    }
    /* A and b define the loss change q(delta) = delta^T A delta - 2 delta.b
     * exactly; keep a copy of A for the check after rounding, factorise the
     * ridge-damped A in place (unused entries get a unit pivot: delta 0). */
    double *Acopy = u->A + (g->nrb + rb) * kd * kd;
    memcpy(Acopy, A, kd * kd * sizeof *A);
    double *delta = u->b + (g->nrb + rb) * kd;
    memcpy(delta, b, kd * sizeof *b);
    for (size_t i = 0; i < kd; i++)
        A[i * kd + i] += u->ridge + (Acopy[i * kd + i] == 0 ? 1.0 : 0.0);
    float *cn = u->cnew + rb * kd;
    const float *cold = g->cb + gi * kd;
    if (!chol_solve(A, kd, delta)) {
        memcpy(cn, cold, kd * sizeof(float));
        return;
    }
    for (size_t i = 0; i < kd; i++) cn[i] = cold[i] + (float)delta[i];
    float sc = g->cscale[gi];
    round_codebook(g, gi, cn);
    /* exact change of the loss for the rounded step */
    double lin = 0, quad = 0;
    for (size_t i = 0; i < kd; i++) {
        double di = (double)cn[i] - (double)cold[i];
        if (di == 0) continue;
        lin += di * b[i];
        double s = 0;
        for (size_t j = 0; j < kd; j++) s += Acopy[i * kd + j] * ((double)cn[j] - (double)cold[j]);
        quad += di * s;
    }
    if (!(quad - 2 * lin < 0) || !lq_all_finite(cn, kd)) {
        memcpy(cn, cold, kd * sizeof(float));
        g->cscale[gi] = sc;
    }
}

static void upd_apply_task(void *arg, size_t rb)
{
    upd *u = arg;
    gvq *g = u->g;
    size_t d = g->d, k = g->k, kd = k * d, nv = u->nc / d;
    size_t r0 = rb * g->gr, nr = rb_rows(g, rb), gi = rb * g->ncg + u->cg;
    const float *cn = u->cnew + rb * kd;
    for (size_t r = r0; r < r0 + nr; r++) {
        const uint16_t *cr = g->codes + r * g->nvec + u->c0 / d;
        float *wr = u->Wh + r * g->cols + u->c0, *dr = u->dW + r * g->gc;
        for (size_t v = 0; v < nv; v++)
            for (size_t a = 0; a < d; a++) {
                float nv_ = cn[(size_t)cr[v] * d + a];
                dr[v * d + a] = nv_ - wr[v * d + a];
                wr[v * d + a] = nv_;
            }
    }
    memcpy(g->cb + gi * kd, cn, kd * sizeof(float));
}

/* Largest codebook (entries x dim) solved by the dense Cholesky path; larger
 * ones use the matrix-free conjugate gradients below. */
#define UPD_MAX_KD 512
/* CG iterations of the matrix-free path. */
#define UPD_CG_ITERS 40

/* ---- matrix-free path (k d > UPD_MAX_KD) -------------------------------------
 * The same quadratic q(delta) = delta^T A delta - 2 delta.b, with A x
 * computed as: D = the row block's decode of x through the codes (nr x nc),
 * Y = D H_SS, (A x)[c, a] = sum over the vectors coded c of Y. Memory: two
 * nr x nc float matrices and 5 k d doubles per row block, instead of the
 * dense (k d)^2. Block-Jacobi preconditioner: per entry, the d x d sum of the
 * diagonal blocks of H_SS over the vectors coded with it (Cholesky, ridge). */
typedef struct cgws {
    float *D, *Y;  /* nr x nc each */
    double *v;     /* 5 kd: x, r, z, p, Ap */
    double *P;     /* k x d x d preconditioner factors */
    uint8_t *used; /* k */
} cgws;

/* Y = D H_SS row by row, each element summed in column order (the same
 * rounding for every thread count and SIMD level; inline when nested). */
#define HPROD_ROWS 16
typedef struct hprod_job {
    const float *D;
    float *Y;
    const float *Hs; /* H_SS, leading dimension ldh */
    size_t nr, nc, ldh;
} hprod_job;

static void hprod_task(void *arg, size_t t)
{
    const hprod_job *j = arg;
    size_t r0 = t * HPROD_ROWS, r1 = r0 + HPROD_ROWS < j->nr ? r0 + HPROD_ROWS : j->nr;
    for (size_t r = r0; r < r1; r++) {
        const float *Dr = j->D + r * j->nc;
        float *Yr = j->Y + r * j->nc;
        memset(Yr, 0, j->nc * sizeof *Yr);
        for (size_t i = 0; i < j->nc; i++) {
            float di = Dr[i];
            if (di == 0.0f) continue;
            const float *Hi = j->Hs + i * j->ldh;
            for (size_t c = 0; c < j->nc; c++) Yr[c] += di * Hi[c];
        }
    }
}

static void cg_apply(const upd *u, size_t rb, cgws *w, const double *x, double *Ax)
{
    gvq *g = u->g;
    size_t d = g->d, kd = g->k * d, cols = g->cols, nc = u->nc, nv = nc / d;
    size_t r0 = rb * g->gr, nr = rb_rows(g, rb);
    for (size_t r = 0; r < nr; r++) {
        const uint16_t *cr = g->codes + (r0 + r) * g->nvec + u->c0 / d;
        float *Dr = w->D + r * nc;
        for (size_t v = 0; v < nv; v++)
            for (size_t a = 0; a < d; a++) Dr[v * d + a] = (float)x[(size_t)cr[v] * d + a];
    }
    hprod_job hj = {w->D, w->Y, u->H + u->c0 * cols + u->c0, nr, nc, cols};
    lq_parallel_for(g->ctx, lq_chunks(nr, HPROD_ROWS), hprod_task, &hj);
    memset(Ax, 0, kd * sizeof *Ax);
    for (size_t r = 0; r < nr; r++) {
        const uint16_t *cr = g->codes + (r0 + r) * g->nvec + u->c0 / d;
        const float *Yr = w->Y + r * nc;
        for (size_t v = 0; v < nv; v++)
            for (size_t a = 0; a < d; a++) Ax[(size_t)cr[v] * d + a] += Yr[v * d + a];
    }
    for (size_t i = 0; i < kd; i++) Ax[i] += u->ridge * x[i];
}

static void cg_precond_build(const upd *u, size_t rb, cgws *w)
{
    gvq *g = u->g;
    size_t d = g->d, k = g->k, dd = d * d, cols = g->cols, nv = u->nc / d;
    size_t r0 = rb * g->gr, nr = rb_rows(g, rb);
    memset(w->P, 0, k * dd * sizeof(double));
    memset(w->used, 0, k);
    for (size_t r = r0; r < r0 + nr; r++) {
        const uint16_t *cr = g->codes + r * g->nvec + u->c0 / d;
        for (size_t v = 0; v < nv; v++) {
            double *B = w->P + (size_t)cr[v] * dd;
            w->used[cr[v]] = 1;
            for (size_t a = 0; a < d; a++)
                for (size_t c = 0; c <= a; c++)
                    B[a * d + c] += u->H[(u->c0 + v * d + a) * cols + u->c0 + v * d + c];
        }
    }
    for (size_t e = 0; e < k; e++) {
        double *B = w->P + e * dd;
        int ok = w->used[e];
        for (size_t a = 0; a < d; a++) B[a * d + a] += u->ridge;
        for (size_t c = 0; c < d && ok; c++) { /* in-place Cholesky, lower */
            double s = B[c * d + c];
            for (size_t q = 0; q < c; q++) s -= B[c * d + q] * B[c * d + q];
            if (!(s > 0)) {
                ok = 0;
                break;
            }
            s = sqrt(s);
            B[c * d + c] = s;
            for (size_t a = c + 1; a < d; a++) {
                double t = B[a * d + c];
                for (size_t q = 0; q < c; q++) t -= B[a * d + q] * B[c * d + q];
                B[a * d + c] = t / s;
            }
        }
        w->used[e] = (uint8_t)ok;
    }
}

static void cg_precond_apply(const cgws *w, size_t k, size_t d, const double *r, double *z)
{
    size_t dd = d * d;
    for (size_t e = 0; e < k; e++) {
        const double *L = w->P + e * dd, *re = r + e * d;
        double *ze = z + e * d;
        if (!w->used[e]) {
            for (size_t a = 0; a < d; a++) ze[a] = re[a];
            continue;
        }
        for (size_t a = 0; a < d; a++) {
            double t = re[a];
            for (size_t c = 0; c < a; c++) t -= L[a * d + c] * ze[c];
            ze[a] = t / L[a * d + a];
        }
        for (size_t a = d; a-- > 0;) {
            double t = ze[a];
            for (size_t c = a + 1; c < d; c++) t -= L[c * d + a] * ze[c];
            ze[a] = t / L[a * d + a];
        }
    }
}

static double ddot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* One row block's update by preconditioned CG from delta = 0; the rounded
 * step is kept only if the exact quadratic says the loss goes down. */
static void cg_update_block(upd *u, size_t rb, cgws *w)
{
    gvq *g = u->g;
    size_t d = g->d, k = g->k, kd = k * d, nv = u->nc / d;
    size_t r0 = rb * g->gr, nr = rb_rows(g, rb), gi = rb * g->ncg + u->cg;
    double *x = w->v, *r = x + kd, *z = r + kd, *p = z + kd, *Ap = p + kd;
    memset(r, 0, kd * sizeof *r);
    for (size_t i = r0; i < r0 + nr; i++) {
        const uint16_t *cr = g->codes + i * g->nvec + u->c0 / d;
        const float *Gr = u->G + i * g->cols + u->c0;
        for (size_t v = 0; v < nv; v++)
            for (size_t a = 0; a < d; a++) r[(size_t)cr[v] * d + a] += Gr[v * d + a];
    }
    double *b = u->b + rb * kd; /* keep b for the acceptance check */
    memcpy(b, r, kd * sizeof *b);
    memset(x, 0, kd * sizeof *x);
    cg_precond_build(u, rb, w);
    cg_precond_apply(w, k, d, r, z);
    memcpy(p, z, kd * sizeof *p);
    double rz = ddot(r, z, kd);
    for (unsigned it = 0; it < UPD_CG_ITERS && rz > 0; it++) {
        cg_apply(u, rb, w, p, Ap);
        double pAp = ddot(p, Ap, kd);
        if (!(pAp > 0)) break;
        double al = rz / pAp;
        for (size_t i = 0; i < kd; i++) {
            x[i] += al * p[i];
            r[i] -= al * Ap[i];
        }
        cg_precond_apply(w, k, d, r, z);
        double rz1 = ddot(r, z, kd);
        double be = rz1 / rz;
        rz = rz1;
        for (size_t i = 0; i < kd; i++) p[i] = z[i] + be * p[i];
    }
    float *cn = u->cnew + rb * kd;
    const float *cold = g->cb + gi * kd;
    for (size_t i = 0; i < kd; i++) cn[i] = cold[i] + (float)x[i];
    float sc = g->cscale[gi];
    round_codebook(g, gi, cn);
    /* exact change of the loss for the rounded step (A without the ridge) */
    for (size_t i = 0; i < kd; i++) x[i] = (double)cn[i] - (double)cold[i];
    cg_apply(u, rb, w, x, Ap);
    double quad = 0, lin = 0;
    for (size_t i = 0; i < kd; i++) {
        quad += x[i] * (Ap[i] - u->ridge * x[i]);
        lin += x[i] * b[i];
    }
    if (!(quad - 2 * lin < 0) || !lq_all_finite(cn, kd)) {
        memcpy(cn, cold, kd * sizeof(float));
        g->cscale[gi] = sc;
    }
}

typedef struct cgjob {
    upd *u;
    unsigned char *ws;
    size_t ws_bytes;
} cgjob;

static cgws cg_ws_at(const upd *u, unsigned char *base)
{
    gvq *g = u->g;
    size_t kd = g->k * g->d, fl = g->gr * g->gc;
    cgws w;
    w.v = (double *)base;
    w.P = w.v + 5 * kd;
    w.D = (float *)(w.P + g->k * g->d * g->d);
    w.Y = w.D + fl;
    w.used = (uint8_t *)(w.Y + fl);
    return w;
}

static void cg_task(void *arg, size_t rb)
{
    cgjob *j = arg;
    cgws w = cg_ws_at(j->u, j->ws + rb * j->ws_bytes);
    cg_update_block(j->u, rb, &w);
}

static lq_status gvq_update(lq_ctx *ctx, gvq *g, const float *W, const float *H, float *Wh)
{
    size_t rows = g->rows, cols = g->cols, kd = g->k * g->d, n = rows * cols;
    int dense = kd <= UPD_MAX_KD;
    size_t cg_bytes = 0;
    unsigned char *cgmem = NULL;
    if (!dense) {
        /* per row block: 5 kd + k d^2 doubles, 2 gr x gc floats, k bytes */
        size_t a, b2, c;
        if (!lq_mul_ok(g->gr, g->gc, &a) || !lq_mul_ok(a, 2 * sizeof(float), &a) ||
            !lq_mul_ok(kd, (5 + g->d) * sizeof(double), &b2))
            return LQ_ERR_NO_MEMORY;
        c = a + b2 + g->k;
        cg_bytes = (c + 63) / 64 * 64;
        if (!lq_mul_ok(cg_bytes, g->nrb, &a)) return LQ_ERR_NO_MEMORY;
        cgmem = lq_alloc(ctx, a);
        if (!cgmem) return LQ_ERR_NO_MEMORY;
    }
    upd u;
    memset(&u, 0, sizeof u);
    u.g = g;
    u.H = H;
    u.Wh = Wh;
    float *R = lq_alloc_array(ctx, n, sizeof(float));
    float *G = lq_alloc_array(ctx, n, sizeof(float));
    u.dW = lq_alloc_array(ctx, rows * g->gc, sizeof(float));
    u.A = dense ? lq_alloc_array(ctx, 2 * g->nrb * kd * kd, sizeof(double)) : NULL;
    u.b = lq_alloc_array(ctx, 2 * g->nrb * kd, sizeof(double));
    u.cnew = lq_alloc_array(ctx, g->nrb * kd, sizeof(float));
    lq_status st = LQ_ERR_NO_MEMORY;
    if (!R || !G || !u.dW || (dense && !u.A) || !u.b || !u.cnew) goto out;
    double tr = 0;
    for (size_t j = 0; j < cols; j++) tr += H[j * cols + j];
    u.ridge = 1e-6 * (tr / (double)cols) + 1e-30;
    for (size_t i = 0; i < n; i++) R[i] = W[i] - Wh[i];
    st = lq_sgemm(ctx, LQ_NO_TRANS, LQ_NO_TRANS, rows, cols, cols, 1.0f, R, cols, H, cols, 0.0f, G,
                  cols);
    if (st != LQ_OK) goto out;
    u.G = G;
    for (size_t cg = 0; cg < g->ncg; cg++) {
        u.cg = cg;
        u.c0 = cg * g->gc;
        u.nc = cols - u.c0 < g->gc ? cols - u.c0 : g->gc;
        if (dense) {
            lq_parallel_for(ctx, g->nrb, upd_task, &u);
        } else if (g->nrb == 1) { /* the products parallelise inside */
            cgws w = cg_ws_at(&u, cgmem);
            cg_update_block(&u, 0, &w);
        } else {
            cgjob j = {&u, cgmem, cg_bytes};
            lq_parallel_for(ctx, g->nrb, cg_task, &j);
        }
        lq_parallel_for(ctx, g->nrb, upd_apply_task, &u);
        /* G = (W - W^) H changes by -dW H[S, :] */
        st = lq_sgemm(ctx, LQ_NO_TRANS, LQ_NO_TRANS, rows, cols, u.nc, -1.0f, u.dW, g->gc,
                      H + u.c0 * cols, cols, 1.0f, G, cols);
        if (st != LQ_OK) goto out;
        lq_progress(ctx, (double)(cg + 1) / (double)g->ncg, "gptvq-update");
    }
    st = LQ_OK;
out:
    lq_free(ctx, R);
    lq_free(ctx, G);
    lq_free(ctx, u.dW);
    lq_free(ctx, u.A);
    lq_free(ctx, u.b);
    lq_free(ctx, u.cnew);
    lq_free(ctx, cgmem);
    return st;
}

/* ---- SVD compression and packing -------------------------------------------- */

static lq_status gvq_pack(lq_ctx *ctx, gvq *g, size_t rank, lq_qtensor **out, float *Wh)
{
    size_t d = g->d, k = g->k, kd = k * d, rb_bytes = lq_vq_row_bytes(g->nvec, g->bits);
    lq_qtensor *t;
    lq_status st = lq_qtensor_new(ctx, LQ_FORMAT_VQ, g->rows, g->cols, &t);
    if (st != LQ_OK) return st;
    t->ip[LQ_VQ_IP_D] = (uint32_t)d;
    t->ip[LQ_VQ_IP_BITS] = g->bits;
    t->ip[LQ_VQ_IP_GC] = (uint32_t)g->gc;
    t->ip[LQ_VQ_IP_GR] = (uint32_t)g->gr;
    t->ip[LQ_VQ_IP_CB] = rank ? 16 : g->cb_bits;
    t->ip[LQ_VQ_IP_RANK] = (uint32_t)rank;
    uint8_t *codes = lq_qtensor_add_section(t, LQ_SEC_CODES, 1, g->rows * rb_bytes);
    if (!codes) goto nomem;
    for (size_t r = 0; r < g->rows; r++)
        for (size_t v = 0; v < g->nvec; v++)
            lq_vq_put_code(codes + r * rb_bytes, v, g->bits, g->codes[r * g->nvec + v]);
    if (rank) {
        float *U = lq_alloc_array(ctx, g->ncb * rank, sizeof(float));
        float *V = lq_alloc_array(ctx, rank * kd, sizeof(float));
        uint16_t *sv = lq_qtensor_add_section(t, LQ_SEC_CODEBOOKS, 2, rank * kd * 2);
        uint16_t *su = lq_qtensor_add_section(t, LQ_SEC_AUX, 2, g->ncb * rank * 2);
        if (!U || !V || !sv || !su) {
            lq_free(ctx, U);
            lq_free(ctx, V);
            goto nomem;
        }
        st = lq_codebooks_svd(ctx, g->cb, g->ncb, k, d, rank, U, V);
        if (st == LQ_OK) {
            for (size_t i = 0; i < g->ncb * rank; i++) {
                su[i] = lq_f32_to_f16(U[i]);
                U[i] = lq_f16_to_f32(su[i]);
            }
            for (size_t i = 0; i < rank * kd; i++) {
                sv[i] = lq_f32_to_f16(V[i]);
                V[i] = lq_f16_to_f32(sv[i]);
            }
            /* the codebooks the decoder will see, summed as it sums them */
            for (size_t gi = 0; gi < g->ncb; gi++)
                for (size_t q = 0; q < kd; q++) {
                    float s = 0;
                    for (size_t i = 0; i < rank; i++) s += U[gi * rank + i] * V[i * kd + q];
                    g->cb[gi * kd + q] = s;
                }
            if (!lq_all_finite(g->cb, g->ncb * kd)) st = LQ_ERR_NOT_FINITE;
        }
        lq_free(ctx, U);
        lq_free(ctx, V);
        if (st != LQ_OK) {
            lq_qtensor_free(t);
            return st;
        }
    } else if (g->cb_bits == 8) {
        int8_t *c8 = lq_qtensor_add_section(t, LQ_SEC_CODEBOOKS, 1, g->ncb * kd);
        float *sc = lq_qtensor_add_section(t, LQ_SEC_SCALES, 4, g->ncb * 4);
        if (!c8 || !sc) goto nomem;
        for (size_t gi = 0; gi < g->ncb; gi++) {
            float s = g->cscale[gi];
            sc[gi] = s;
            for (size_t q = 0; q < kd; q++) {
                float v = rintf(g->cb[gi * kd + q] / s);
                c8[gi * kd + q] = (int8_t)(v > 127 ? 127 : (v < -127 ? -127 : v));
                g->cb[gi * kd + q] = (float)c8[gi * kd + q] * s;
            }
        }
    } else {
        uint16_t *c16 = lq_qtensor_add_section(t, LQ_SEC_CODEBOOKS, 2, g->ncb * kd * 2);
        if (!c16) goto nomem;
        for (size_t i = 0; i < g->ncb * kd; i++) c16[i] = lq_f32_to_f16(g->cb[i]);
    }
    gvq_dequant(g, Wh);
    *out = t;
    return LQ_OK;
nomem:
    lq_qtensor_free(t);
    return LQ_ERR_NO_MEMORY;
}

lq_status lq_quantize_gptvq(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                            const lq_method *m, lq_qtensor **out, float *W_hat,
                            lq_quant_report *rep)
{
    const lq_gptvq_opts *o = &m->u.gptvq;
    unsigned d = o->dim;
    if (d != 1 && d != 2 && d != 4 && d != 8) return LQ_ERR_INVALID_ARG;
    if (o->index_bits < 1 || o->index_bits > 16 || o->em_iters == 0) return LQ_ERR_INVALID_ARG;
    if (o->codebook_bits != 0 && o->codebook_bits != 8 && o->codebook_bits != 16)
        return LQ_ERR_INVALID_ARG;
    if (cols % d != 0 || (o->group_cols % d) != 0) return LQ_ERR_INVALID_ARG;
    if (o->svd_rank > 4096) return LQ_ERR_INVALID_ARG;
    if (m->engine.act_order) return LQ_ERR_UNSUPPORTED;
    if (rows > UINT32_MAX || cols > UINT32_MAX) return LQ_ERR_INVALID_ARG;
    /* fp16 codebooks (and SVD factors) hold values of the weights' magnitude:
     * refuse what a half cannot represent instead of storing a clamped,
     * wrong codebook */
    if ((o->codebook_bits != 8 || o->svd_rank) && lq_check_range(W, rows * cols, 65504.0f) != LQ_OK)
        return LQ_ERR_OUT_OF_RANGE;
    gvq g;
    lq_status st = gvq_init(ctx, &g, rows, cols, o);
    if (st != LQ_OK) return st;
    lq_colquant cq = {d, g.gc, gvq_fit, gvq_quantize, &g, NULL, 0, NULL};
    lq_qtensor *t = NULL;
    float *Wt = lq_alloc_array(ctx, rows * cols, sizeof *Wt);
    if (!Wt) {
        st = LQ_ERR_NO_MEMORY;
        goto done;
    }
    lq_gptq_result res;
    memset(&res, 0, sizeof res);
    st = lq_gptq_run(ctx, W, rows, cols, H, &m->engine, &cq, NULL, &res);
    if (st != LQ_OK) goto done;
    gvq_dequant(&g, Wt);
    if (o->codebook_update && H && !m->engine.rtn) {
        st = gvq_update(ctx, &g, W, H, Wt);
        if (st != LQ_OK) goto done;
    }
    /* a rank beyond min(ncb, k d) is full rank: store no more factors */
    size_t rank = o->svd_rank, rmax = g.ncb < g.k * g.d ? g.ncb : g.k * g.d;
    if (rank > rmax) rank = rmax;
    st = gvq_pack(ctx, &g, rank, &t, Wt);
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
    gvq_free(&g);
    return st;
}

lq_status lq_gptvq_preset(unsigned dim, unsigned bits, lq_gptvq_opts *o)
{
    if (!o || (dim != 1 && dim != 2 && dim != 4) || bits < 2 || bits > 4 || dim * bits > 16)
        return LQ_ERR_INVALID_ARG;
    size_t rows = ((size_t)1 << (dim * bits)) * dim / 4;
    *o = (lq_gptvq_opts){.dim = dim,
                         .index_bits = dim * bits,
                         .group_cols = 256,
                         .group_rows = rows ? rows : 1,
                         .em_iters = 10,
                         .codebook_update = 1,
                         .codebook_bits = 8,
                         .svd_rank = 0};
    return LQ_OK;
}
