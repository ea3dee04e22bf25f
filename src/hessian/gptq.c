/*
 * The GPTQ column-update engine (Frantar et al. 2022, arXiv 2210.17323),
 * written once for every column-wise quantizer (DESIGN.md section 4).
 *
 * Steps: dead columns (H_jj == 0: H_jj = 1, W[:, j] = 0), optional act-order
 * permutation (descending diag H, stable), damping lambda = percdamp *
 * mean(diag H) with x10 escalation on Cholesky failure, U = chol(H^-1)
 * upper, then blocks of B columns processed step by step (width columns per
 * step) with in-block error propagation through U and one GEMM per block for
 * the columns after it (the lazy batch update).
 *
 * U without forming H^-1: with J the reversal permutation, let J H J =
 * L' L'^T (lower Cholesky). Then H = (J L' J)(J L' J)^T where J L' J is
 * upper triangular, so H^-1 = U^T U with U = (J L' J)^-1 = J L'^-1 J, upper
 * with a positive diagonal: by uniqueness, the upper Cholesky factor of
 * H^-1. One Cholesky and one triangular inverse (2/3 n^3) instead of
 * GPTQ's Cholesky, cholesky_inverse and second Cholesky (4/3 n^3). Both run
 * in double (see docs/algorithms.md for the measurement); U is then rounded
 * to float for the updates, as GPTQ itself works in float.
 *
 * Two-level lazy updates: inside a block, steps update only the rest of
 * their 16-column sub-block; each finished sub-block's errors reach the rest
 * of the block through one small GEMM, each finished block's the columns
 * after it through one large GEMM. The block lives in a contiguous panel.
 *
 * Width-d steps: with S the d columns of the step and R the rest of the
 * block, the optimal update is W_R -= (W_S - Q_S) (H^-1_SS)^-1 H^-1_SR over
 * the inverse Hessian of the not yet quantized columns, whose upper
 * Cholesky factor is the trailing part of U; that reduces to
 * E = (W_S - Q_S) U_SS^-1 (a triangular solve per row) and W_R -= E U_SR,
 * which is GPTQ's rule e = (w - q) / U_ii for d = 1. The loss is 1/2 ||E||^2.
 *
 * Group fits see fully updated weights: a block is ended early at a group
 * start whose group would reach past the block (and sub-blocks end at group
 * starts), so that no lazy update is pending on the columns a quantizer fits (the result then
 * equals the unblocked per-column algorithm exactly, up to float rounding).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/linalg.h"
#include "hessian/damping.h"
#include "quant/hessian.h"

#define ROW_GRAIN 64   /* rows per task of a step's in-block update */
#define DAMP_RETRIES 6 /* x10 escalations after the first attempt */
#define DEFAULT_BLOCK 128
#define STEP_PARALLEL (1u << 17) /* rows x columns below which a step runs inline */
#define SUB 16                   /* columns per sub-block of the in-block updates */
#define SUB_PARALLEL (1u << 14)  /* rows x columns below which a fused sub-block runs inline */

typedef struct engine {
    lq_ctx *ctx;
    size_t rows, cols, w, group, B;
    const float *W; /* input, original order */
    const float *H; /* input, may be NULL (RTN) */
    lq_colquant *q;
    size_t *perm;     /* processing position -> original column, or NULL */
    float *Wf;        /* rows x cols working weight, processing order */
    float *Uf;        /* cols x cols upper factor, float */
    float *hinv;      /* U_kk^2, processing order */
    float *hinv_orig; /* U_kk^2, original order (static groups with act-order) */
    float *Err;       /* rows x B scaled errors of the block */
    float *Qf;        /* rows x cols dequantized values, processing order */
    float *Wp, *Qp;   /* rows x B panels of the current block (weights, values) */
    float *ub;        /* width x width diagonal block of U */
    double *lossp;    /* per row chunk */
    lq_status *stp;   /* per row chunk: status of a fused sub-block */
    size_t nchunks;
    double damping;
    size_t dead;
} engine;

static size_t perm_at(const engine *e, size_t k) { return e->perm ? e->perm[k] : k; }

/* ---- act-order ----------------------------------------------------------- */
typedef struct diag_key {
    double d;
    size_t idx;
} diag_key;

static int diag_cmp(const void *a, const void *b)
{
    const diag_key *x = a, *y = b;
    if (x->d > y->d) return -1;
    if (x->d < y->d) return 1;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

static lq_status make_perm(engine *e)
{
    size_t n = e->cols;
    diag_key *k = lq_alloc_array(e->ctx, n, sizeof *k);
    if (!k) return LQ_ERR_NO_MEMORY;
    for (size_t j = 0; j < n; j++) {
        double d = e->H[j * n + j];
        k[j] = (diag_key){d == 0.0 ? 1.0 : d, j}; /* dead columns count as 1 */
    }
    qsort(k, n, sizeof *k, diag_cmp);
    for (size_t j = 0; j < n; j++) e->perm[j] = k[j].idx;
    lq_free(e->ctx, k);
    return LQ_OK;
}

/* ---- U = chol(H^-1) upper ------------------------------------------------ */
static void fill_reversed(const engine *e, double *A, double lambda)
{
    size_t n = e->cols;
    for (size_t i = 0; i < n; i++) {
        size_t pi = perm_at(e, n - 1 - i);
        double *a = A + i * n;
        for (size_t j = 0; j < i; j++) a[j] = e->H[pi * n + perm_at(e, n - 1 - j)];
        double d = e->H[pi * n + pi];
        a[i] = (d == 0.0 ? 1.0 : d) + lambda;
        for (size_t j = i + 1; j < n; j++) a[j] = 0.0;
    }
}

/* The damping base, mean(diag H) = tr(H) / n, dead columns (H_jj == 0)
 * counting as 1 (they are replaced by 1). The trace is invariant under the
 * rotations methods apply to H (NestQuant's Hadamard), so a Hessian is
 * accepted or refused alike in every basis. A negative diagonal entry is
 * not refused outright: rounding in an accumulated Gram matrix can produce a
 * tiny one, and the documented escalation repairs it. A mean <= 0 gives no
 * positive damping at all: NOT_POSITIVE_DEFINITE. */
static double damp_mean(const float *H, size_t n)
{
    double mean = 0;
    for (size_t j = 0; j < n; j++) {
        double d = H[j * n + j];
        mean += d == 0.0 ? 1.0 : d;
    }
    mean /= (double)n;
    return mean > 0.0 ? mean : 0.0;
}

/* Cholesky (lower, in place) of the matrix `fill` writes for a damping
 * lambda, with the documented schedule: lambda = percdamp * mean, then x10
 * (from 0: 1e-3 * mean) up to DAMP_RETRIES times. *lambda: the final value. */
static lq_status damped_potrf(lq_ctx *ctx, double *A, size_t n, double mean, double percdamp,
                              void (*fill)(const void *arg, double *A, double lambda),
                              const void *arg, double *lambda)
{
    double l = percdamp * mean;
    lq_status st = LQ_ERR_NOT_POSITIVE_DEFINITE;
    for (int attempt = 0; attempt <= DAMP_RETRIES; attempt++) {
        if (attempt > 0) l = l > 0 ? l * 10.0 : 1e-3 * mean;
        if (!(l > 0) && attempt > 0) break; /* nothing left to add */
        fill(arg, A, l);
        st = lq_dpotrf_lower(ctx, A, n, n);
        if (st != LQ_ERR_NOT_POSITIVE_DEFINITE) break;
    }
    *lambda = l;
    return st;
}

static void fill_engine(const void *arg, double *A, double lambda)
{
    fill_reversed(arg, A, lambda);
}

typedef struct plain_h {
    const float *H;
    size_t n;
} plain_h;

static void fill_plain(const void *arg, double *A, double lambda)
{
    const plain_h *p = arg;
    size_t n = p->n;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < i; j++) A[i * n + j] = p->H[i * n + j];
        double d = p->H[i * n + i];
        A[i * n + i] = (d == 0.0 ? 1.0 : d) + lambda;
        for (size_t j = i + 1; j < n; j++) A[i * n + j] = 0.0;
    }
}

lq_status lq_hessian_damping(lq_ctx *ctx, const float *H, size_t n, double percdamp, double *lambda)
{
    double *A = lq_alloc_array(ctx, n * n, sizeof *A);
    if (!A) return LQ_ERR_NO_MEMORY;
    plain_h p = {H, n};
    double l;
    lq_status st = damped_potrf(ctx, A, n, damp_mean(H, n), percdamp, fill_plain, &p, &l);
    lq_free(ctx, A);
    if (st == LQ_OK) *lambda = l;
    return st;
}

static lq_status compute_u(engine *e, double percdamp)
{
    size_t n = e->cols;
    double *A = lq_alloc_array(e->ctx, n * n, sizeof *A);
    if (!A) return LQ_ERR_NO_MEMORY;
    double lambda;
    lq_status st =
        damped_potrf(e->ctx, A, n, damp_mean(e->H, n), percdamp, fill_engine, e, &lambda);
    if (st == LQ_OK) st = lq_dtrtri_lower(e->ctx, A, n, n);
    if (st == LQ_OK) {
        for (size_t i = 0; i < n; i++) {
            float *u = e->Uf + i * n;
            const double *a = A + (n - 1 - i) * n;
            for (size_t j = 0; j < i; j++) u[j] = 0.0f;
            for (size_t j = i; j < n; j++) u[j] = (float)a[n - 1 - j];
            e->hinv[i] = u[i] * u[i];
            if (!(u[i] > 0.0f) || !isfinite(u[i]) || !(e->hinv[i] > 0.0f))
                st = LQ_ERR_NOT_POSITIVE_DEFINITE; /* beyond float range */
        }
        e->damping = lambda;
    }
    lq_free(e->ctx, A);
    return st;
}

/* ---- one step: errors of `w` columns and their in-block propagation ------ */
typedef struct step_job {
    engine *e;
    size_t i, c, s1; /* processing position, position in block, sub-block end */
} step_job;

/* Rows [r0, r1) of one step: E_S = (W_S - Q_S) U_SS^-1 and W_R -= E_S U_SR
 * over the rest of the sub-block; returns the rows' sum of E^2 (in order). */
static double step_rows(const engine *e, size_t i, size_t c, size_t s1, const float *ub, size_t r0,
                        size_t r1)
{
    size_t w = e->w, n = e->cols, rest0 = i + w, nrest = s1 - rest0;
    double acc = 0;
    for (size_t r = r0; r < r1; r++) {
        const float *wr = e->Wp + r * e->B + c;
        const float *qr = e->Qp + r * e->B + c;
        float *er = e->Err + r * e->B + c;
        for (size_t k = 0; k < w; k++) { /* solve er * U_SS = wr - qr */
            float d = wr[k] - qr[k];
            for (size_t m = 0; m < k; m++) d -= er[m] * ub[m * w + k];
            er[k] = d / ub[k * w + k];
            acc += (double)er[k] * (double)er[k];
        }
        float *dst = e->Wp + r * e->B + c + w;
        for (size_t k = 0; k < w; k++) {
            float ek = er[k];
            const float *urow = e->Uf + (i + k) * n + rest0;
            for (size_t m = 0; m < nrest; m++) dst[m] -= ek * urow[m];
        }
    }
    return acc;
}

static void step_task(void *arg, size_t t)
{
    const step_job *j = arg;
    const engine *e = j->e;
    size_t r0 = t * ROW_GRAIN, r1 = r0 + ROW_GRAIN;
    if (r1 > e->rows) r1 = e->rows;
    e->lossp[t] += step_rows(e, j->i, j->c, j->s1, e->ub, r0, r1);
}

/* ---- a whole sub-block per row chunk (quantizers with quantize_rows) ----
 * Inside a sub-block a row's steps read only that row and U, and no group
 * fit happens after its first column (sub-blocks end at group starts), so
 * each chunk of ROW_GRAIN rows runs every step of the sub-block on its own:
 * one parallel section per sub-block instead of one per column, with the
 * same operations per row as the column-by-column loop (and the same
 * per-chunk loss order), hence the same result for any thread count. */
#define FUSED_MAX_W 8
typedef struct sub_job {
    engine *e;
    size_t b0, s0, s1;
    lq_status *st; /* per chunk */
} sub_job;

static void sub_task(void *arg, size_t t)
{
    const sub_job *j = arg;
    engine *e = j->e;
    lq_colquant *q = e->q;
    size_t w = e->w, n = e->cols, r0 = t * ROW_GRAIN, r1 = r0 + ROW_GRAIN;
    if (r1 > e->rows) r1 = e->rows;
    float ub[FUSED_MAX_W * FUSED_MAX_W];
    for (size_t i = j->s0; i < j->s1; i += w) {
        for (size_t a = 0; a < w; a++)
            for (size_t b = 0; b < w; b++) ub[a * w + b] = e->Uf[(i + a) * n + i + b];
        size_t c = i - j->b0;
        lq_status st = q->quantize_rows(q->self, e->Wp + c, e->B, r0, r1, i, ub, e->Qp + c, e->B);
        if (st != LQ_OK) {
            j->st[t] = st;
            return;
        }
        e->lossp[t] += step_rows(e, i, c, j->s1, ub, r0, r1);
    }
}

/* End of the sub-block starting at s0 inside a block ending at b1: SUB
 * columns (rounded to whole steps), or earlier at the next group start so
 * that group fits always happen with no update pending in the block. */
static size_t sub_end(const engine *e, size_t s0, size_t b1, int fits_in_loop)
{
    size_t sub = (SUB + e->w - 1) / e->w * e->w;
    size_t s1 = s0 + sub < b1 ? s0 + sub : b1;
    if (fits_in_loop && e->group) {
        size_t ns = (s0 / e->group + 1) * e->group;
        if (ns < s1) s1 = ns;
    }
    return s1;
}

/* End of the block starting at b0: B columns, or earlier at a group start
 * whose group reaches past it (so that the fit sees no pending update). */
static size_t block_end(const engine *e, size_t b0, int fits_in_loop)
{
    size_t b1 = b0 + e->B < e->cols ? b0 + e->B : e->cols;
    if (!fits_in_loop || e->group == 0) return b1;
    for (size_t s = (b0 / e->group + 1) * e->group; s < b1; s += e->group) {
        size_t ge = s + e->group < e->cols ? s + e->group : e->cols;
        if (ge > b1) return s;
    }
    return b1;
}

/* Copy columns [c0, c1) between the row-major matrix M (ld n) and the
 * panel P (ld B, panel column 0 = matrix column b0). */
static void panel_load(const engine *e, float *P, const float *M, size_t b0, size_t c0, size_t c1)
{
    for (size_t r = 0; r < e->rows; r++)
        memcpy(P + r * e->B + (c0 - b0), M + r * e->cols + c0, (c1 - c0) * sizeof *P);
}

static void panel_store(const engine *e, float *M, const float *P, size_t b0, size_t c0, size_t c1)
{
    for (size_t r = 0; r < e->rows; r++)
        memcpy(M + r * e->cols + c0, P + r * e->B + (c0 - b0), (c1 - c0) * sizeof *P);
}

/* The block's columns live in a contiguous panel while it is processed:
 * quantizers and the in-block updates walk columns over all rows, which on
 * the full matrix would touch one page per row and column. */
static lq_status run_blocks(engine *e)
{
    size_t n = e->cols, rows = e->rows, w = e->w, g = e->group;
    lq_colquant *q = e->q;
    int fits_in_loop = !q->static_groups;
    int fused = q->quantize_rows && w <= FUSED_MAX_W;
    lq_progress(e->ctx, 0.0, "gptq");
    for (size_t b0 = 0, b1; b0 < n; b0 = b1) {
        b1 = block_end(e, b0, fits_in_loop);
        panel_load(e, e->Wp, e->Wf, b0, b0, b1);
        for (size_t s0 = b0, s1; s0 < b1; s0 = s1) {
            s1 = sub_end(e, s0, b1, fits_in_loop);
            if (fused) { /* group fits happen only at a sub-block's start */
                if (fits_in_loop && (g ? s0 % g == 0 : s0 == 0)) {
                    size_t nc = g ? (n - s0 < g ? n - s0 : g) : n;
                    if (s0 > b0) panel_store(e, e->Wf, e->Wp, b0, s0, s0 + nc);
                    lq_status st = q->fit_group(q->self, e->Wf, n, rows, s0, nc, e->hinv + s0);
                    if (st != LQ_OK) return st;
                }
                sub_job j = {e, b0, s0, s1, e->stp};
                if (rows * (s1 - s0) < SUB_PARALLEL) {
                    for (size_t t = 0; t < e->nchunks; t++) sub_task(&j, t);
                } else {
                    lq_parallel_for(e->ctx, e->nchunks, sub_task, &j);
                }
                for (size_t t = 0; t < e->nchunks; t++)
                    if (e->stp[t] != LQ_OK) return e->stp[t];
            } else {
                for (size_t i = s0; i < s1; i += w) {
                    lq_status st;
                    if (fits_in_loop && (g ? i % g == 0 : i == 0)) {
                        size_t nc = g ? (n - i < g ? n - i : g) : n;
                        /* the fit reads the matrix: bring it up to date (i is a
                         * sub-block start, and a group starting inside the block
                         * ends inside it, see block_end) */
                        if (i > b0) panel_store(e, e->Wf, e->Wp, b0, i, i + nc);
                        st = q->fit_group(q->self, e->Wf, n, rows, i, nc, e->hinv + i);
                        if (st != LQ_OK) return st;
                    }
                    for (size_t a = 0; a < w; a++)
                        for (size_t b = 0; b < w; b++)
                            e->ub[a * w + b] = e->Uf[(i + a) * n + i + b];
                    st = q->quantize(q->self, e->Wp + (i - b0), e->B, rows, i, e->ub,
                                     e->Qp + (i - b0), e->B);
                    if (st != LQ_OK) return st;
                    step_job j = {e, i, i - b0, s1};
                    if (rows * (s1 - i) < STEP_PARALLEL) {
                        for (size_t t = 0; t < e->nchunks; t++) step_task(&j, t);
                    } else {
                        lq_parallel_for(e->ctx, e->nchunks, step_task, &j);
                    }
                }
            }
            if (s1 < b1) { /* the sub-block's errors onto the rest of the block */
                lq_status st = lq_sgemm(e->ctx, LQ_NO_TRANS, LQ_NO_TRANS, rows, b1 - s1, s1 - s0,
                                        -1.0f, e->Err + (s0 - b0), e->B, e->Uf + s0 * n + s1, n,
                                        1.0f, e->Wp + (s1 - b0), e->B);
                if (st != LQ_OK) return st;
            }
        }
        panel_store(e, e->Qf, e->Qp, b0, b0, b1);
        if (b1 < n) {
            lq_status st = lq_sgemm(e->ctx, LQ_NO_TRANS, LQ_NO_TRANS, rows, n - b1, b1 - b0, -1.0f,
                                    e->Err, e->B, e->Uf + b0 * n + b1, n, 1.0f, e->Wf + b1, n);
            if (st != LQ_OK) return st;
        }
        lq_progress(e->ctx, (double)b1 / (double)n, "gptq");
    }
    return LQ_OK;
}

/* ---- round to nearest: fits on the original W, no updates ---------------- */
static lq_status run_rtn(engine *e, float *W_hat, double *loss)
{
    size_t n = e->cols, rows = e->rows, w = e->w, g = e->group ? e->group : n;
    lq_colquant *q = e->q;
    lq_status st = LQ_OK;
    float *ones = lq_alloc_array(e->ctx, n, sizeof *ones);
    float *qt = lq_alloc_array(e->ctx, rows * n, sizeof *qt);
    if (!ones || !qt) {
        st = LQ_ERR_NO_MEMORY;
        goto done;
    }
    for (size_t j = 0; j < n; j++) ones[j] = 1.0f;
    for (size_t a = 0; a < w; a++)
        for (size_t b = 0; b < w; b++) e->ub[a * w + b] = a == b ? 1.0f : 0.0f;
    lq_progress(e->ctx, 0.0, "gptq");
    for (size_t b0 = 0; b0 < n && st == LQ_OK; b0 += e->B) {
        size_t b1 = b0 + e->B < n ? b0 + e->B : n;
        panel_load(e, e->Wp, e->W, b0, b0, b1);
        for (size_t i = b0; i < b1; i += w) {
            if (i % g == 0) {
                size_t nc = n - i < g ? n - i : g;
                st = q->fit_group(q->self, e->W, n, rows, i, nc, ones + i);
                if (st != LQ_OK) break;
            }
            st = q->quantize(q->self, e->Wp + (i - b0), e->B, rows, i, e->ub, e->Qp + (i - b0),
                             e->B);
            if (st != LQ_OK) break;
        }
        if (st == LQ_OK) panel_store(e, qt, e->Qp, b0, b0, b1);
    }
    if (st == LQ_OK) {
        double acc = 0;
        for (size_t k = 0; k < rows * n; k++) {
            double d = (double)e->W[k] - (double)qt[k];
            acc += d * d;
        }
        *loss = 0.5 * acc;
        if (W_hat) memcpy(W_hat, qt, rows * n * sizeof *qt);
        lq_progress(e->ctx, 1.0, "gptq");
    }
done:
    lq_free(e->ctx, ones);
    lq_free(e->ctx, qt);
    return st;
}

static void free_engine(engine *e)
{
    lq_free(e->ctx, e->perm);
    lq_free(e->ctx, e->Wf);
    lq_free(e->ctx, e->Uf);
    lq_free(e->ctx, e->hinv);
    lq_free(e->ctx, e->hinv_orig);
    lq_free(e->ctx, e->Err);
    lq_free(e->ctx, e->Qf);
    lq_free(e->ctx, e->ub);
    lq_free(e->ctx, e->Wp);
    lq_free(e->ctx, e->Qp);
    lq_free(e->ctx, e->lossp);
    lq_free(e->ctx, e->stp);
}

static lq_status run_gptq(engine *e, const lq_engine_opts *o, float *W_hat, double *loss)
{
    size_t n = e->cols, rows = e->rows;
    lq_colquant *q = e->q;
    int act = o->act_order != 0;
    int stat = o->static_groups != 0;
    if (act) {
        e->perm = lq_alloc_array(e->ctx, n, sizeof *e->perm);
        if (!e->perm) return LQ_ERR_NO_MEMORY;
    }
    e->Wf = lq_alloc_array(e->ctx, rows * n, sizeof *e->Wf);
    e->Uf = lq_alloc_array(e->ctx, n * n, sizeof *e->Uf);
    e->hinv = lq_alloc_array(e->ctx, n, sizeof *e->hinv);
    e->Err = lq_alloc_array(e->ctx, rows * e->B, sizeof *e->Err);
    e->Qf = lq_alloc_array(e->ctx, rows * n, sizeof *e->Qf);
    e->lossp = lq_calloc_array(e->ctx, e->nchunks, sizeof *e->lossp);
    e->stp = lq_alloc_array(e->ctx, e->nchunks, sizeof *e->stp);
    if (!e->Wf || !e->Uf || !e->hinv || !e->Err || !e->Qf || !e->lossp || !e->stp)
        return LQ_ERR_NO_MEMORY;
    for (size_t t = 0; t < e->nchunks; t++) e->stp[t] = LQ_OK;
    if (stat && act) {
        e->hinv_orig = lq_alloc_array(e->ctx, n, sizeof *e->hinv_orig);
        if (!e->hinv_orig) return LQ_ERR_NO_MEMORY;
    }
    lq_status st;
    if (act && (st = make_perm(e)) != LQ_OK) return st;
    if ((st = compute_u(e, o->percdamp)) != LQ_OK) return st;

    /* Working weight with dead columns zeroed; static fits see it in the
     * original order, the loop in processing order. */
    e->dead = 0;
    for (size_t j = 0; j < n; j++) e->dead += e->H[j * n + j] == 0.0f;
    q->perm = e->perm;
    q->static_groups = stat;
    if (stat) {
        float *hv = e->hinv;
        if (act) {
            for (size_t k = 0; k < n; k++) e->hinv_orig[e->perm[k]] = e->hinv[k];
            hv = e->hinv_orig;
        }
        for (size_t r = 0; r < rows; r++)
            for (size_t j = 0; j < n; j++)
                e->Wf[r * n + j] = e->H[j * n + j] == 0.0f ? 0.0f : e->W[r * n + j];
        size_t g = e->group ? e->group : n;
        for (size_t c0 = 0; c0 < n; c0 += g) {
            st = q->fit_group(q->self, e->Wf, n, rows, c0, n - c0 < g ? n - c0 : g, hv + c0);
            if (st != LQ_OK) return st;
        }
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t k = 0; k < n; k++) {
            size_t j = perm_at(e, k);
            e->Wf[r * n + k] = e->H[j * n + j] == 0.0f ? 0.0f : e->W[r * n + j];
        }
    if ((st = run_blocks(e)) != LQ_OK) return st;
    /* outputs only once everything succeeded */
    if (W_hat)
        for (size_t r = 0; r < rows; r++)
            for (size_t k = 0; k < n; k++) W_hat[r * n + perm_at(e, k)] = e->Qf[r * n + k];
    double acc = 0;
    for (size_t t = 0; t < e->nchunks; t++) acc += e->lossp[t];
    *loss = 0.5 * acc;
    return LQ_OK;
}

lq_status lq_gptq_run(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                      const lq_engine_opts *opts, lq_colquant *q, float *W_hat, lq_gptq_result *res)
{
    if (!W || !q || !q->fit_group || !q->quantize || rows == 0 || cols == 0)
        return LQ_ERR_INVALID_ARG;
    lq_engine_opts o = {0, 0.01, 0, 0, DEFAULT_BLOCK};
    if (opts) o = *opts;
    if (o.block_size == 0) o.block_size = DEFAULT_BLOCK;
    size_t w = q->width, n;
    if (w == 0 || cols % w != 0 || q->group % w != 0) return LQ_ERR_INVALID_ARG;
    /* a block never spans more than the matrix: clamp before any size
     * arithmetic so that a huge block_size cannot wrap a check */
    if (o.block_size > cols) o.block_size = cols;
    if (!(o.percdamp >= 0.0) || !isfinite(o.percdamp)) return LQ_ERR_INVALID_ARG;
    if (o.act_order && w > 1) return LQ_ERR_INVALID_ARG;
    if (!lq_mul_ok(rows, cols, &n) || !lq_mul_ok(cols, cols, &n) || !lq_mul_ok(n, 8, &n) ||
        !lq_mul_ok(w, w, &n) || !lq_mul_ok(rows, o.block_size + w, &n) ||
        !lq_mul_ok(n, sizeof(float), &n))
        return LQ_ERR_INVALID_ARG;
    int rtn = o.rtn || !H;
    lq_status rst = lq_check_range(W, rows * cols, LQ_MAX_ABS_WEIGHT);
    if (rst == LQ_OK && !rtn) rst = lq_check_range(H, cols * cols, LQ_MAX_ABS_HESSIAN);
    if (rst != LQ_OK) return rst;
    if (!lq_ctx_resolve(ctx)) return LQ_ERR_NO_MEMORY;

    engine e;
    memset(&e, 0, sizeof e);
    e.ctx = ctx;
    e.rows = rows;
    e.cols = cols;
    e.w = w;
    e.group = q->group;
    e.B = o.block_size < cols ? o.block_size : cols; /* cols is a multiple of w */
    e.B = (e.B + w - 1) / w * w;
    e.W = W;
    e.H = rtn ? NULL : H;
    e.q = q;
    e.nchunks = lq_chunks(rows, ROW_GRAIN);
    q->perm = NULL;
    q->static_groups = 0;
    double loss = 0;
    lq_status st;
    e.ub = lq_alloc_array(ctx, w * w, sizeof *e.ub);
    e.Wp = lq_alloc_array(ctx, rows * e.B, sizeof *e.Wp);
    e.Qp = lq_alloc_array(ctx, rows * e.B, sizeof *e.Qp);
    if (!e.ub || !e.Wp || !e.Qp) {
        st = LQ_ERR_NO_MEMORY;
    } else if (rtn) {
        st = run_rtn(&e, W_hat, &loss);
    } else {
        st = run_gptq(&e, &o, W_hat, &loss);
    }
    q->perm = NULL; /* the permutation dies with the run */
    if (st == LQ_OK && res) {
        res->damping = e.damping;
        res->loss = loss;
        res->dead_columns = e.dead;
    }
    free_engine(&e);
    return st;
}
