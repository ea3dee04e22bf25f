/* Calibration statistics for quantized activations and the weight
 * correction for their noise (calib_act.h, docs/design.md "Weight correction
 * for activation noise"). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "calib_act.h"
#include "core/internal.h"
#include "core/linalg.h"
#include "hessian/damping.h"

struct lq_act_stats {
    lq_ctx *ctx;
    lq_actq *aq;    /* NULL: pairs come from lq_act_stats_add */
    lq_lin_group g; /* the group whose inputs the hook takes */
    size_t cols, count;
    int coded;               /* -1: no batch yet; 0: x~ == x; 1: x~ quantized */
    double *Hx, *Ht, *C;     /* (2/N) sum x x^T, x~ x~^T, x x~^T (running means) */
    double *T, *xd, *td;     /* scratch: cols x cols, cap x cols twice */
    size_t cap;              /* rows of xd / td */
    double *M;               /* (C - Ht)(Ht + lambda I)^-1, computed once */
    double lambda, percdamp; /* the damping M was made with */
    lq_status st;            /* first error of the hook */
};

lq_status lq_act_stats_create(lq_ctx *ctx, lq_actq *aq, lq_lin_group g, size_t cols,
                              lq_act_stats **out)
{
    if (!out || cols == 0 || (unsigned)g >= LQ_GROUP_COUNT) return LQ_ERR_INVALID_ARG;
    size_t cc;
    if (!lq_mul_ok(cols, cols, &cc) || cc > SIZE_MAX / sizeof(double)) return LQ_ERR_INVALID_ARG;
    ctx = lq_ctx_resolve(ctx);
    if (!ctx) return LQ_ERR_NO_MEMORY;
    lq_act_stats *a = calloc(1, sizeof *a);
    if (!a) return LQ_ERR_NO_MEMORY;
    a->ctx = ctx;
    a->aq = aq;
    a->g = g;
    a->cols = cols;
    a->coded = -1;
    a->Hx = calloc(cc, sizeof *a->Hx);
    a->T = malloc(cc * sizeof *a->T);
    if (!a->Hx || !a->T) {
        lq_act_stats_free(a);
        return LQ_ERR_NO_MEMORY;
    }
    *out = a;
    return LQ_OK;
}

void lq_act_stats_free(lq_act_stats *a)
{
    if (!a) return;
    free(a->Hx);
    free(a->Ht);
    free(a->C);
    free(a->T);
    free(a->xd);
    free(a->td);
    free(a->M);
    free(a);
}

static int finite_rows(const float *X, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(X[i])) return 0;
    return 1;
}

/* S <- S * keep + T */
static void blend(double *S, const double *T, size_t cc, double keep)
{
    for (size_t i = 0; i < cc; i++) S[i] = S[i] * keep + T[i];
}

lq_status lq_act_stats_add(lq_act_stats *a, const float *X, const float *Xt, size_t n)
{
    if (!a || !X || n == 0) return LQ_ERR_INVALID_ARG;
    if (a->M) return LQ_ERR_INVALID_ARG; /* the correction was taken: frozen */
    size_t cols = a->cols, cc = cols * cols, nc;
    int coded = Xt && Xt != X;
    if (a->coded >= 0 && a->coded != coded) return LQ_ERR_INVALID_ARG;
    if (!lq_mul_ok(n, cols, &nc)) return LQ_ERR_INVALID_ARG;
    if (!finite_rows(X, nc) || (coded && !finite_rows(Xt, nc))) return LQ_ERR_NOT_FINITE;
    if (coded) {
        if (!a->Ht && (!(a->Ht = calloc(cc, sizeof *a->Ht)) || !(a->C = calloc(cc, sizeof *a->C))))
            return LQ_ERR_NO_MEMORY;
        if (n > a->cap) {
            double *xd = malloc(nc * sizeof *xd), *td = malloc(nc * sizeof *td);
            if (!xd || !td) {
                free(xd);
                free(td);
                return LQ_ERR_NO_MEMORY;
            }
            free(a->xd);
            free(a->td);
            a->xd = xd;
            a->td = td;
            a->cap = n;
        }
    }
    /* the running mean of lq_hessian_add: S = S * count / N' + (2 / N') batch */
    double nn = (double)(a->count + n), keep = (double)a->count / nn, alpha = 2.0 / nn;
    lq_status st = lq_dsyrk_tn_f32(a->ctx, cols, n, alpha, X, cols, 0.0, a->T, cols);
    if (st != LQ_OK) return st;
    blend(a->Hx, a->T, cc, keep);
    if (coded) {
        if ((st = lq_dsyrk_tn_f32(a->ctx, cols, n, alpha, Xt, cols, 0.0, a->T, cols)) != LQ_OK)
            return st;
        blend(a->Ht, a->T, cc, keep);
        for (size_t i = 0; i < nc; i++) {
            a->xd[i] = X[i];
            a->td[i] = Xt[i];
        }
        /* C = sum x x~^T: (X^T)(X~), X and X~ n x cols */
        if ((st = lq_dgemm(a->ctx, LQ_TRANS, LQ_NO_TRANS, cols, cols, n, alpha, a->xd, cols, a->td,
                           cols, 0.0, a->T, cols)) != LQ_OK)
            return st;
        blend(a->C, a->T, cc, keep);
    }
    a->coded = coded;
    a->count += n;
    return LQ_OK;
}

void lq_act_stats_hook(void *user, size_t layer, lq_lin_group g, const float *X, size_t n,
                       size_t cols)
{
    lq_act_stats *a = user;
    if (g != a->g || a->st != LQ_OK) return;
    if (cols != a->cols) {
        a->st = LQ_ERR_INVALID_ARG;
        return;
    }
    const float *Xt = X;
    /* what the layers of group g will be given at inference */
    if (a->aq) a->st = lq_actq_input(a->ctx, a->aq, layer, g, X, n, cols, &Xt);
    if (a->st == LQ_OK) a->st = lq_act_stats_add(a, X, Xt, n);
}

lq_status lq_act_stats_status(const lq_act_stats *a)
{
    if (!a) return LQ_ERR_INVALID_ARG;
    if (a->st != LQ_OK) return a->st;
    return a->count ? LQ_OK : LQ_ERR_INVALID_ARG;
}

int lq_act_stats_coded(const lq_act_stats *a) { return a && a->coded == 1; }

lq_status lq_act_stats_hessian(const lq_act_stats *a, int of_coded, float *H)
{
    lq_status st = lq_act_stats_status(a);
    if (st != LQ_OK) return st;
    if (!H) return LQ_ERR_INVALID_ARG;
    const double *S = of_coded && a->coded == 1 ? a->Ht : a->Hx;
    size_t cc = a->cols * a->cols;
    for (size_t i = 0; i < cc; i++)
        if (!(S[i] <= 3.4028234663852886e38 && S[i] >= -3.4028234663852886e38))
            return LQ_ERR_NOT_FINITE;
    for (size_t i = 0; i < cc; i++) H[i] = (float)S[i];
    return LQ_OK;
}

/* M = (C - Ht)(Ht + lambda I)^-1 with Ht's zero diagonals taken as 1 and
 * lambda the engine's damping of the float Ht (lq_hessian_damping): the
 * Cholesky below is the one that schedule accepted. */
static lq_status make_m(lq_act_stats *a, double percdamp)
{
    size_t n = a->cols, cc = n * n;
    float *Hf = malloc(cc * sizeof *Hf);
    double *A = malloc(cc * sizeof *A), *M = malloc(cc * sizeof *M);
    lq_status st = LQ_ERR_NO_MEMORY;
    double lambda = 0;
    if (!Hf || !A || !M) goto out;
    if ((st = lq_act_stats_hessian(a, 1, Hf)) != LQ_OK) goto out;
    if ((st = lq_hessian_damping(a->ctx, Hf, n, percdamp, &lambda)) != LQ_OK) goto out;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) A[i * n + j] = j < i ? Hf[i * n + j] : 0.0;
        double d = Hf[i * n + i];
        A[i * n + i] = (d == 0.0 ? 1.0 : d) + lambda;
    }
    if ((st = lq_dpotrf_lower(a->ctx, A, n, n)) != LQ_OK) goto out;
    for (size_t i = 0; i < cc; i++) M[i] = a->C[i] - a->Ht[i];
    /* X L L^T = D: first Y L^T = D, then X L = Y */
    if ((st = lq_dtrsm_right_lower(a->ctx, LQ_TRANS, n, n, A, n, M, n)) != LQ_OK ||
        (st = lq_dtrsm_right_lower(a->ctx, LQ_NO_TRANS, n, n, A, n, M, n)) != LQ_OK)
        goto out;
    for (size_t i = 0; i < cc; i++)
        if (!isfinite(M[i])) {
            st = LQ_ERR_NOT_FINITE;
            goto out;
        }
    a->M = M;
    M = NULL;
    a->lambda = lambda;
    a->percdamp = percdamp;
out:
    free(Hf);
    free(A);
    free(M);
    return st;
}

lq_status lq_act_stats_target(lq_act_stats *a, double percdamp, const float *W, size_t rows,
                              float *Wt, double *lambda)
{
    lq_status st = lq_act_stats_status(a);
    if (st != LQ_OK) return st;
    if (!W || !Wt || rows == 0 || !(percdamp >= 0.0) || !isfinite(percdamp))
        return LQ_ERR_INVALID_ARG;
    size_t n = a->cols, rc;
    if (!lq_mul_ok(rows, n, &rc)) return LQ_ERR_INVALID_ARG;
    if (a->coded != 1) {
        memcpy(Wt, W, rc * sizeof *Wt); /* x~ == x: the target is W itself */
        if (lambda) *lambda = 0;
        return LQ_OK;
    }
    if (a->M && a->percdamp != percdamp) return LQ_ERR_INVALID_ARG;
    if (!a->M && (st = make_m(a, percdamp)) != LQ_OK) return st;
    double *Wd = malloc(rc * sizeof *Wd), *P = malloc(rc * sizeof *P);
    st = LQ_ERR_NO_MEMORY;
    if (Wd && P) {
        for (size_t i = 0; i < rc; i++) Wd[i] = W[i];
        /* W' = W + W M = W C (Ht + lambda I)^-1 + lambda W (Ht + lambda I)^-1 */
        st = lq_dgemm(a->ctx, LQ_NO_TRANS, LQ_NO_TRANS, rows, n, n, 1.0, Wd, n, a->M, n, 0.0, P, n);
        for (size_t i = 0; i < rc && st == LQ_OK; i++) {
            P[i] += Wd[i];
            if (!(fabs(P[i]) <= 3.4028234663852886e38)) st = LQ_ERR_NOT_FINITE;
        }
        if (st == LQ_OK) {
            for (size_t i = 0; i < rc; i++) Wt[i] = (float)P[i];
            if (lambda) *lambda = a->lambda;
        }
    }
    free(Wd);
    free(P);
    return st;
}

/* sum_ij A_ij (B S)_ij for A, B rows x n and S n x n; P: rows x n scratch */
static lq_status trace_form(lq_ctx *ctx, const double *Ad, const double *Bd, const double *S,
                            size_t rows, size_t n, double *P, double *out)
{
    lq_status st = lq_dgemm(ctx, LQ_NO_TRANS, LQ_NO_TRANS, rows, n, n, 1.0, Bd, n, S, n, 0.0, P, n);
    if (st != LQ_OK) return st;
    double s = 0;
    for (size_t i = 0, rc = rows * n; i < rc; i++) s += Ad[i] * P[i];
    *out = s;
    return LQ_OK;
}

lq_status lq_act_stats_objective(const lq_act_stats *a, const float *W, const float *What,
                                 size_t rows, double *rel)
{
    lq_status st = lq_act_stats_status(a);
    if (st != LQ_OK) return st;
    if (!W || !What || !rel || rows == 0) return LQ_ERR_INVALID_ARG;
    size_t n = a->cols, rc;
    if (!lq_mul_ok(rows, n, &rc)) return LQ_ERR_INVALID_ARG;
    const double *Ht = a->coded == 1 ? a->Ht : a->Hx, *C = a->coded == 1 ? a->C : a->Hx;
    /* calloc: gcc cannot see that the copy below fills them */
    double *Wd = calloc(rc, sizeof *Wd), *Qd = calloc(rc, sizeof *Qd), *P = malloc(rc * sizeof *P);
    double ww = 0, wq = 0, qq = 0;
    st = LQ_ERR_NO_MEMORY;
    if (Wd && Qd && P) {
        for (size_t i = 0; i < rc; i++) {
            Wd[i] = W[i];
            Qd[i] = What[i];
        }
        /* sum ||W x - W^ x~||^2 = tr(W Hx W^T) - 2 tr(W C W^^T) + tr(W^ Ht W^^T) */
        st = trace_form(a->ctx, Wd, Wd, a->Hx, rows, n, P, &ww);
        if (st == LQ_OK) st = trace_form(a->ctx, Qd, Wd, C, rows, n, P, &wq);
        if (st == LQ_OK) st = trace_form(a->ctx, Qd, Qd, Ht, rows, n, P, &qq);
    }
    free(Wd);
    free(Qd);
    free(P);
    if (st != LQ_OK) return st;
    double num = ww - 2.0 * wq + qq;
    if (num < 0) num = 0; /* rounding of an exact zero */
    *rel = ww > 0 ? num / ww : num;
    return isfinite(*rel) ? LQ_OK : LQ_ERR_NOT_FINITE;
}
