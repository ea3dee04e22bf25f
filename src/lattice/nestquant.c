/*
 * NestQuant multi-beta coder (Savkin, Porat, Ordentlich, Polyanskiy 2025,
 * arXiv 2502.09720): E8 Voronoi codes at K scales, the smallest scale that
 * does not overload per 8-vector, a radial-shrink fallback, beta
 * optimisation on the data, coded activations and their inner product.
 * Math and choices: docs/algorithms.md, "NestQuant".
 */
#include <math.h>
#include <string.h>

#include "lattice/lattice_internal.h"

float lq_nq_round_beta(double b)
{
    int e;
    double m = frexp(b, &e); /* b = m 2^e, m in [0.5, 1) */
    return (float)ldexp(nearbyint(m * 256.0), e - 8);
}

unsigned lq_nq_index_bits(unsigned n_betas)
{
    unsigned b = 0;
    while (b < 8 && (1u << b) < n_betas) b++;
    return b;
}

lq_status lq_nq_coder_check(const lq_nq_coder *c)
{
    if (!c || c->q < 2 || c->q > LQ_VORONOI_Q_MAX || c->n_betas < 1 ||
        c->n_betas > LQ_NQ_MAX_BETAS || c->select > LQ_NQ_SELECT_EXHAUSTIVE)
        return LQ_ERR_INVALID_ARG;
    for (unsigned k = 0; k < c->n_betas; k++) {
        if (!isfinite(c->betas[k]) || !(c->betas[k] > 0.0f)) return LQ_ERR_INVALID_ARG;
        if (k && !(c->betas[k] > c->betas[k - 1])) return LQ_ERR_INVALID_ARG;
    }
    return LQ_OK;
}

lq_status lq_nq_coder_init(lq_nq_coder *c, unsigned q, unsigned n_betas)
{
    if (!c || q < 2 || q > LQ_VORONOI_Q_MAX || n_betas < 1 || n_betas > LQ_NQ_MAX_BETAS)
        return LQ_ERR_INVALID_ARG;
    lq_nq_coder t;
    memset(&t, 0, sizeof t);
    t.q = q;
    t.n_betas = n_betas;
    /* Unit-variance entries: |x| ~ 2.8; x / beta must fall inside qV
     * (inradius q / sqrt 2, circumradius q). */
    const double lo = 3.0 / q, hi = 7.0 / q;
    float prev = 0.0f;
    for (unsigned k = 0; k < n_betas; k++) {
        double b = n_betas == 1 ? 4.5 / q : lo * pow(hi / lo, (double)k / (n_betas - 1));
        float r = lq_nq_round_beta(b);
        if (!(r > prev)) r = nextafterf(prev, INFINITY); /* keep increasing */
        t.betas[k] = prev = r;
    }
    *c = t;
    return LQ_OK;
}

/* ---- encode -------------------------------------------------------------- */
#define CH LQ_VORONOI_CHUNK

/* Scalar twins of the NestQuant glue (lattice_internal.h). */
void lq_nq_gather_scale_scalar(const float *x, const size_t *idx, size_t m, float ib, float gamma,
                               float *t)
{
    for (size_t i = 0; i < m; i++)
        for (int j = 0; j < 8; j++) {
            float v = x[8 * idx[i] + j] * ib;
            t[8 * i + j] = gamma == 1.0f ? v : v * gamma;
        }
}

void lq_nq_accept_scalar(const float *y, float *t, const uint8_t *far, size_t m, uint8_t *ok)
{
    for (size_t i = 0; i < m; i++) {
        int good = !far[i];
        for (int j = 0; j < 8; j++) good &= y[8 * i + j] == t[8 * i + j];
        ok[i] = (uint8_t)good;
        if (good) memcpy(t + 8 * i, y + 8 * i, 8 * sizeof(float));
    }
}

/* Try scale beta on the m vectors listed in idx (indices into x): t = Q(x /
 * beta * gamma); ok[i] = no overload. Writes t and codes for every listed
 * vector; where ok, t is the decoded point (same value; +0.0 where rint gave
 * -0.0) so that the encoder's reconstruction equals lq_nq_decode bit for
 * bit. yd (optional): decode(codes) for every vector, overloaded or not. */
static void try_beta(const lq_lattice_kernels *k, unsigned q, float beta, float gamma,
                     const float *x, const size_t *idx, size_t m, float *t, uint8_t *c, uint8_t *ok,
                     float *yd)
{
    float y[8 * CH];
    uint8_t far[CH];
    k->gather_scale(x, idx, m, 1.0f / beta, gamma, t);
    k->e8(t, m, t);
    k->coords(q, t, m, c, far);
    lq_voronoi_decode_batch(k, q, c, m, y);
    if (yd) memcpy(yd, y, 8 * m * sizeof(float));
    k->accept(y, t, far, m, ok);
}

/* Squared error of the reconstruction beta * t (float products, as
 * lq_nq_decode computes them) against x, in double. */
static double sqerr(float beta, const float *t, const float *x)
{
    double s = 0;
    for (int d = 0; d < 8; d++) {
        double r = (double)(beta * t[d]) - (double)x[d];
        s += r * r;
    }
    return s;
}

/* Fallback for one vector v that overloads every beta: radial shrink at the
 * largest beta until the code of gamma x does not overload. */
static void shrink_fallback(const lq_lattice_kernels *k, const lq_nq_coder *c, const float *x,
                            size_t v, uint8_t cc[8], float t[8])
{
    float beta = c->betas[c->n_betas - 1], gamma = 1.0f;
    uint8_t ok = 0;
    while (!ok) {
        gamma = gamma * 0.9f;
        if (gamma < 1e-30f) gamma = 0.0f;
        try_beta(k, c->q, beta, gamma, x, &v, 1, t, cc, &ok, NULL);
    }
}

/* FIRST: the smallest beta that does not overload (the paper's rule). */
static void encode_first(const lq_lattice_kernels *k, const lq_nq_coder *c, const float *x,
                         size_t n, uint8_t *codes, uint8_t *beta_idx, float *y, size_t *nov)
{
    float t[8 * CH];
    uint8_t cc[8 * CH], ok[CH];
    size_t pend[CH], next[CH];
    for (size_t i0 = 0; i0 < n; i0 += CH) {
        size_t m = n - i0 < CH ? n - i0 : CH;
        for (size_t i = 0; i < m; i++) pend[i] = i0 + i;
        for (unsigned b = 0; b < c->n_betas && m; b++) {
            float beta = c->betas[b];
            try_beta(k, c->q, beta, 1.0f, x, pend, m, t, cc, ok, NULL);
            size_t mn = 0;
            for (size_t i = 0; i < m; i++) {
                size_t v = pend[i];
                if (!ok[i]) {
                    next[mn++] = v;
                    continue;
                }
                memcpy(codes + 8 * v, cc + 8 * i, 8);
                beta_idx[v] = (uint8_t)b;
                if (y)
                    for (int j = 0; j < 8; j++) y[8 * v + j] = beta * t[8 * i + j];
            }
            memcpy(pend, next, mn * sizeof *pend);
            m = mn;
        }
        /* Fallback: radial shrink at the largest beta (rare; one at a time). */
        for (size_t i = 0; i < m; i++) {
            size_t v = pend[i];
            unsigned b = c->n_betas - 1;
            shrink_fallback(k, c, x, v, cc, t);
            memcpy(codes + 8 * v, cc, 8);
            beta_idx[v] = (uint8_t)b;
            if (y)
                for (int j = 0; j < 8; j++) y[8 * v + j] = c->betas[b] * t[j];
            (*nov)++;
        }
    }
}

/* BEST and EXHAUSTIVE. Candidates per vector: beta_b * decode(c_b) for
 * every b (c_b = the usual code at beta_b; an overloaded one decodes to its
 * wrapped codeword, still a codeword), the shrink fallback when every beta
 * overloads, and with EXHAUSTIVE the exact nearest codeword at each beta
 * where the usual code overloads. The smallest squared error (sqerr) wins;
 * ties keep the earlier candidate (smaller beta, and the usual code before
 * the searched one). The FIRST choice is always a candidate, so BEST never
 * has a larger error than FIRST, and EXHAUSTIVE never one larger than BEST. */
static void encode_best(const lq_lattice_kernels *k, const lq_nq_coder *c, const float *x, size_t n,
                        uint8_t *codes, uint8_t *beta_idx, float *y, size_t *nov)
{
    float t[8 * CH], yd[8 * CH], yb[8 * CH];
    uint8_t cc[8 * CH], ok[CH], anyok[CH];
    uint8_t okb[LQ_NQ_MAX_BETAS][CH];
    size_t idx[CH];
    double best[CH];
    const int exh = c->select == LQ_NQ_SELECT_EXHAUSTIVE;
    for (size_t i0 = 0; i0 < n; i0 += CH) {
        size_t m = n - i0 < CH ? n - i0 : CH;
        for (size_t i = 0; i < m; i++) {
            idx[i] = i0 + i;
            best[i] = INFINITY;
            anyok[i] = 0;
        }
        for (unsigned b = 0; b < c->n_betas; b++) {
            float beta = c->betas[b];
            try_beta(k, c->q, beta, 1.0f, x, idx, m, t, cc, ok, yd);
            for (size_t i = 0; i < m; i++) {
                size_t v = i0 + i;
                okb[b][i] = ok[i];
                anyok[i] |= ok[i];
                double e = sqerr(beta, yd + 8 * i, x + 8 * v);
                if (e < best[i]) {
                    best[i] = e;
                    memcpy(codes + 8 * v, cc + 8 * i, 8);
                    beta_idx[v] = (uint8_t)b;
                    memcpy(yb + 8 * i, yd + 8 * i, 8 * sizeof(float));
                }
            }
        }
        for (size_t i = 0; i < m; i++) {
            size_t v = i0 + i;
            if (!anyok[i]) {
                unsigned b = c->n_betas - 1;
                float tf[8];
                uint8_t cf[8];
                shrink_fallback(k, c, x, v, cf, tf);
                double e = sqerr(c->betas[b], tf, x + 8 * v);
                if (e < best[i]) {
                    best[i] = e;
                    memcpy(codes + 8 * v, cf, 8);
                    beta_idx[v] = (uint8_t)b;
                    memcpy(yb + 8 * i, tf, 8 * sizeof(float));
                }
                (*nov)++;
            }
            if (exh) {
                for (unsigned b = 0; b < c->n_betas; b++) {
                    if (okb[b][i]) continue; /* nearest lattice point = nearest codeword */
                    const double beta = c->betas[b];
                    double u[8], bound = best[i] / (beta * beta);
                    for (int j = 0; j < 8; j++) u[j] = (double)x[8 * v + j] / beta;
                    float ys[8];
                    if (!lq_voronoi_search(c->q, u, &bound, ys, NULL)) continue;
                    double e = sqerr(c->betas[b], ys, x + 8 * v);
                    if (e < best[i]) {
                        best[i] = e;
                        lq_voronoi_coords(c->q, ys, codes + 8 * v);
                        beta_idx[v] = (uint8_t)b;
                        memcpy(yb + 8 * i, ys, 8 * sizeof(float));
                    }
                }
            }
            if (y)
                for (int j = 0; j < 8; j++) y[8 * v + j] = c->betas[beta_idx[v]] * yb[8 * i + j];
        }
    }
}

void lq_nq_encode_k(const lq_lattice_kernels *k, const lq_nq_coder *c, const float *x, size_t n,
                    uint8_t *codes, uint8_t *beta_idx, float *y, size_t *n_overload)
{
    size_t nov = 0;
    if (c->select == LQ_NQ_SELECT_FIRST)
        encode_first(k, c, x, n, codes, beta_idx, y, &nov);
    else
        encode_best(k, c, x, n, codes, beta_idx, y, &nov);
    if (n_overload) *n_overload = nov;
}

lq_status lq_nq_encode_at(lq_simd_level level, const lq_nq_coder *c, const float *x, size_t n,
                          uint8_t *codes, uint8_t *beta_idx, float *y, size_t *n_overload)
{
    size_t tot;
    if (lq_nq_coder_check(c) != LQ_OK || !lq_mul_ok(n, 8, &tot)) return LQ_ERR_INVALID_ARG;
    if (n > 0 && (!x || !codes || !beta_idx)) return LQ_ERR_INVALID_ARG;
    const lq_lattice_kernels *k = lq_lattice_kernels_at(level);
    if (n > 0 && !k->finite(x, tot)) return LQ_ERR_NOT_FINITE;
    lq_nq_encode_k(k, c, x, n, codes, beta_idx, y, n_overload);
    if (n == 0 && n_overload) *n_overload = 0;
    return LQ_OK;
}

lq_status lq_nq_encode(const lq_nq_coder *c, const float *x, size_t n, uint8_t *codes,
                       uint8_t *beta_idx, float *y, size_t *n_overload)
{
    return lq_nq_encode_at(LQ_SIMD_AUTO, c, x, n, codes, beta_idx, y, n_overload);
}

lq_status lq_nq_decode(const lq_nq_coder *c, const uint8_t *codes, const uint8_t *beta_idx,
                       size_t n, float *y)
{
    size_t tot;
    if (lq_nq_coder_check(c) != LQ_OK || !lq_mul_ok(n, 8, &tot)) return LQ_ERR_INVALID_ARG;
    if (n == 0) return LQ_OK;
    if (!codes || !beta_idx || !y) return LQ_ERR_INVALID_ARG;
    for (size_t i = 0; i < n; i++)
        if (beta_idx[i] >= c->n_betas) return LQ_ERR_CORRUPT;
    for (size_t i = 0; i < tot; i++)
        if (codes[i] >= c->q) return LQ_ERR_CORRUPT;
    lq_voronoi_decode_batch(lq_lattice_kernels_at(LQ_SIMD_AUTO), c->q, codes, n, y);
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < 8; j++) y[8 * i + j] *= c->betas[beta_idx[i]];
    return LQ_OK;
}

/* ---- beta optimisation ----------------------------------------------------- */
#define FIT_MAX 8192
#define FIT_GRID 96
#define CAPX 2

typedef struct fit_job {
    const lq_lattice_kernels *k;
    unsigned q;
    int mode;        /* lq_nq_select */
    const float *xs; /* m sampled vectors */
    size_t m;
    const float *grid;
    float *err;       /* G x m: FIRST: INFINITY when overloaded; else the error
                       * of the decoded (possibly wrapped) codeword */
    uint8_t *ovf;     /* G x m: 1 = the usual code overloads */
    const float *cap; /* m, EXHAUSTIVE refinement: error to beat */
    size_t g0;        /* first grid column refined */
} fit_job;

static void fit_task(void *arg, size_t g)
{
    fit_job *j = arg;
    float t[8 * CH], yd[8 * CH];
    uint8_t cc[8 * CH], ok[CH];
    size_t idx[CH];
    float beta = j->grid[g];
    for (size_t i0 = 0; i0 < j->m; i0 += CH) {
        size_t mm = j->m - i0 < CH ? j->m - i0 : CH;
        for (size_t i = 0; i < mm; i++) idx[i] = i0 + i;
        try_beta(j->k, j->q, beta, 1.0f, j->xs, idx, mm, t, cc, ok, yd);
        for (size_t i = 0; i < mm; i++) {
            const float *p = j->mode == LQ_NQ_SELECT_FIRST ? t + 8 * i : yd + 8 * i;
            float e = INFINITY;
            if (ok[i] || j->mode != LQ_NQ_SELECT_FIRST) {
                double s = 0;
                for (int d = 0; d < 8; d++) {
                    double r = (double)beta * p[d] - j->xs[8 * (i0 + i) + d];
                    s += r * r;
                }
                e = (float)s;
            }
            j->err[g * j->m + i0 + i] = e;
            j->ovf[g * j->m + i0 + i] = (uint8_t)!ok[i];
        }
    }
}

/* EXHAUSTIVE refinement of column g: where the usual code overloads, the
 * exact nearest codeword when it beats min(err, cap) (else err stays, an
 * upper bound that is then >= cap). */
static void fit_exh_task(void *arg, size_t gi)
{
    fit_job *j = arg;
    const size_t g = j->g0 + gi;
    const double beta = j->grid[g];
    for (size_t v = 0; v < j->m; v++) {
        float *e = &j->err[g * j->m + v];
        if (!j->ovf[g * j->m + v]) continue;
        double lim = *e < j->cap[v] ? *e : j->cap[v];
        double u[8], bound = lim / (beta * beta);
        for (int d = 0; d < 8; d++) u[d] = (double)j->xs[8 * v + d] / beta;
        float ys[8];
        if (!lq_voronoi_search(j->q, u, &bound, ys, NULL)) continue;
        double s = 0;
        for (int d = 0; d < 8; d++) {
            double r = beta * ys[d] - j->xs[8 * v + d];
            s += r * r;
        }
        if ((float)s < *e) *e = (float)s;
    }
}

/* Total error of the chosen grid indices sel[0..K-1] (ascending). FIRST:
 * the first non-overloading one, else the fallback bound |x|^2 (shrinking
 * to 0). BEST / EXHAUSTIVE: the smallest error, and when every chosen beta
 * overloads, at most the fallback bound (the fallback is a candidate). */
static double fit_cost(const float *err, const uint8_t *ovf, const float *fallback, size_t m,
                       const unsigned *sel, unsigned K, int sel_best)
{
    double tot = 0;
    for (size_t v = 0; v < m; v++) {
        float e = INFINITY;
        int allov = 1;
        for (unsigned k = 0; k < K; k++) {
            float ek = err[(size_t)sel[k] * m + v];
            allov &= ovf[(size_t)sel[k] * m + v];
            if (ek < e) {
                e = ek;
                if (!sel_best) break;
            }
        }
        if (sel_best && allov && fallback[v] < e) e = fallback[v];
        tot += e < INFINITY ? e : fallback[v];
    }
    return tot;
}

/* Coordinate descent on the total error from sel (each beta moved over +-16
 * grid points between its neighbours, at most 12 sweeps). */
static void fit_descent(const float *err, const uint8_t *ovf, const float *fb, size_t m, unsigned G,
                        unsigned K, int sel_best, unsigned *sel)
{
    double best = fit_cost(err, ovf, fb, m, sel, K, sel_best);
    for (int sweep = 0; sweep < 12; sweep++) {
        int changed = 0;
        for (unsigned i = 0; i < K; i++) {
            unsigned lo_i = i == 0 ? 0 : sel[i - 1] + 1;
            unsigned hi_i = i == K - 1 ? G - 1 : sel[i + 1] - 1;
            unsigned cur = sel[i], arg = cur;
            unsigned a = cur > lo_i + 16 ? cur - 16 : lo_i;
            unsigned b = cur + 16 < hi_i ? cur + 16 : hi_i;
            for (unsigned g = a; g <= b; g++) {
                if (g == cur) continue;
                sel[i] = g;
                double cst = fit_cost(err, ovf, fb, m, sel, K, sel_best);
                if (cst < best) {
                    best = cst;
                    arg = g;
                }
            }
            sel[i] = arg;
            changed |= arg != cur;
        }
        if (!changed) break;
    }
}

lq_status lq_nq_coder_fit(lq_ctx *ctx, lq_nq_coder *c, const float *x, size_t n)
{
    size_t tot;
    if (lq_nq_coder_check(c) != LQ_OK || !x || n == 0 || !lq_mul_ok(n, 8, &tot))
        return LQ_ERR_INVALID_ARG;
    if (!lq_ctx_resolve(ctx)) return LQ_ERR_NO_MEMORY;
    const lq_lattice_kernels *k = lq_lattice_kernels_at(lq_simd_for(ctx));
    if (!k->finite(x, tot)) return LQ_ERR_NOT_FINITE;
    const unsigned K = c->n_betas, q = c->q;
    const int mode = (int)c->select, sel_best = mode != LQ_NQ_SELECT_FIRST;
    size_t m = n < FIT_MAX ? n : FIT_MAX;
    float *xs = lq_alloc_array(ctx, m * 8, sizeof(float));
    float *err = lq_alloc_array(ctx, (size_t)FIT_GRID * m, sizeof(float));
    uint8_t *ovf = lq_alloc_array(ctx, (size_t)FIT_GRID * m, 1);
    float *fb = lq_alloc_array(ctx, m, sizeof(float));
    float *cap = NULL;
    lq_status st = LQ_OK;
    if (!xs || !err || !ovf || !fb) {
        st = LQ_ERR_NO_MEMORY;
        goto done;
    }
    double ss = 0, maxn = 0;
    for (size_t i = 0; i < m; i++) {
        size_t v = (size_t)((double)i * (double)n / (double)m);
        memcpy(xs + 8 * i, x + 8 * v, 8 * sizeof(float));
        double nn = 0;
        for (int d = 0; d < 8; d++) nn += (double)xs[8 * i + d] * xs[8 * i + d];
        fb[i] = (float)nn; /* fallback cost bound: shrinking to 0 */
        ss += nn;
        if (nn > maxn) maxn = nn;
    }
    double sigma = sqrt(ss / (8.0 * (double)m));
    if (sigma == 0.0) goto done; /* all zero: any beta is exact */
    /* Grid: geometric from sigma / q to the beta at which the largest
     * vector surely fits (|x| / beta <= 0.7 q), 8-bit mantissas. */
    double lo = sigma / q, hi = sqrt(maxn) / (0.7 * q);
    if (hi < 12.0 * lo) hi = 12.0 * lo;
    float grid[FIT_GRID];
    unsigned G = 0;
    for (unsigned g = 0; g < FIT_GRID; g++) {
        float b = lq_nq_round_beta(lo * pow(hi / lo, (double)g / (FIT_GRID - 1)));
        if (G == 0 || b > grid[G - 1]) grid[G++] = b;
    }
    if (G < K) { /* cannot happen: the grid has ~FIT_GRID distinct points */
        st = LQ_ERR_INVALID_ARG;
        goto done;
    }
    fit_job job = {k,   q,   mode == LQ_NQ_SELECT_FIRST ? LQ_NQ_SELECT_FIRST : LQ_NQ_SELECT_BEST,
                   xs,  m,   grid,
                   err, ovf, NULL,
                   0};
    lq_parallel_for(ctx, G, fit_task, &job);
    /* Init: the k-th beta is the smallest grid point at which a fraction
     * (k+1)/K of the vectors first fits (quantiles of the first feasible
     * grid index), then coordinate descent on the total error. */
    unsigned hist[FIT_GRID + 1];
    memset(hist, 0, sizeof hist);
    for (size_t v = 0; v < m; v++) {
        unsigned g = 0;
        while (g < G && ovf[(size_t)g * m + v]) g++;
        hist[g]++;
    }
    unsigned sel[LQ_NQ_MAX_BETAS];
    {
        size_t cum = 0;
        unsigned g = 0, kk = 0;
        for (; g <= G && kk < K; g++) {
            cum += hist[g];
            while (kk < K && (double)cum >= (double)(kk + 1) / K * (double)m - 1e-9) {
                sel[kk++] = g < G ? g : G - 1;
            }
        }
        while (kk < K) sel[kk++] = G - 1;
        /* make strictly increasing inside [0, G) */
        for (unsigned i = 0; i < K; i++) {
            unsigned minv = i == 0 ? 0 : sel[i - 1] + 1;
            if (sel[i] < minv) sel[i] = minv;
        }
        for (unsigned i = K; i-- > 0;) {
            unsigned maxv = i == K - 1 ? G - 1 : sel[i + 1] - 1;
            if (sel[i] > maxv) sel[i] = maxv;
        }
    }
    fit_descent(err, ovf, fb, m, G, K, sel_best, sel);
    if (mode == LQ_NQ_SELECT_EXHAUSTIVE) {
        /* Second pass: exact nearest codewords where they beat what each
         * vector gets with the BEST betas (cap), then descend again from
         * there. Entries it leaves are upper bounds >= cap, so the cost of
         * any beta set is exact for the vectors it codes at least as well
         * as the first pass did, and over-estimated for the others. */
        cap = lq_alloc_array(ctx, m, sizeof(float));
        if (!cap) {
            st = LQ_ERR_NO_MEMORY;
            goto done;
        }
        for (size_t v = 0; v < m; v++) {
            float e = fb[v];
            for (unsigned i = 0; i < K; i++) {
                float ei = err[(size_t)sel[i] * m + v];
                if (ei < e) e = ei;
            }
            cap[v] = CAPX * e;
        }
        /* columns from 24 grid steps (about a factor 1.5) below the smallest
         * beta to 8 above the largest: exact encoding favours smaller betas */
        unsigned g0 = sel[0] > 24 ? sel[0] - 24 : 0;
        unsigned g1 = sel[K - 1] + 8 < G - 1 ? sel[K - 1] + 8 : G - 1;
        job.cap = cap;
        job.g0 = g0;
        lq_parallel_for(ctx, g1 - g0 + 1, fit_exh_task, &job);
        fit_descent(err, ovf, fb, m, G, K, 1, sel);
    }
    for (unsigned i = 0; i < K; i++) c->betas[i] = grid[sel[i]];
done:
    lq_free(ctx, xs);
    lq_free(ctx, err);
    lq_free(ctx, ovf);
    lq_free(ctx, fb);
    lq_free(ctx, cap);
    return st;
}

/* ---- coded activations ------------------------------------------------------ */
typedef struct act_job {
    const lq_lattice_kernels *k;
    const lq_nq_coder *c;
    const float *X;
    size_t len, ldx, n8;
    int rotate;
    uint64_t seed;
    float *buf; /* batch x n8 */
    uint8_t *codes, *beta_idx;
    float *scales;
    size_t *nov; /* per row */
} act_job;

static void act_task(void *arg, size_t r)
{
    act_job *j = arg;
    float *b = j->buf + r * j->n8;
    lq_rht_pad_forward(j->k, j->X + r * j->ldx, j->len, j->n8, j->rotate, j->seed, b);
    double ss = 0;
    for (size_t i = 0; i < j->n8; i++) ss += (double)b[i] * b[i];
    float s = (float)sqrt(ss / (double)j->n8);
    if (!(s > 0.0f) || !isfinite(s)) s = 1.0f;
    for (size_t i = 0; i < j->n8; i++) b[i] = b[i] / s;
    j->scales[r] = s;
    lq_nq_encode_k(j->k, j->c, b, j->n8 / 8, j->codes + r * j->n8, j->beta_idx + r * (j->n8 / 8),
                   NULL, &j->nov[r]);
}

lq_status lq_nq_act_encode(lq_ctx *ctx, const lq_nq_coder *c, const float *X, size_t batch,
                           size_t len, size_t ldx, int rotate, uint64_t seed, uint8_t *codes,
                           uint8_t *beta_idx, float *scales, size_t *n_overload)
{
    if (lq_nq_coder_check(c) != LQ_OK || !X || !codes || !beta_idx || !scales || batch == 0 ||
        len == 0 || ldx < len)
        return LQ_ERR_INVALID_ARG;
    size_t n8 = (len + 7) / 8 * 8, tot;
    if (n8 < len || !lq_mul_ok(batch, n8, &tot) || !lq_mul_ok(batch - 1, ldx, &tot))
        return LQ_ERR_INVALID_ARG;
    if (!lq_ctx_resolve(ctx)) return LQ_ERR_NO_MEMORY;
    const lq_lattice_kernels *k = lq_lattice_kernels_at(lq_simd_for(ctx));
    for (size_t r = 0; r < batch; r++)
        if (!k->finite(X + r * ldx, len)) return LQ_ERR_NOT_FINITE;
    float *buf = lq_alloc_array(ctx, batch * n8, sizeof(float));
    size_t *nov = lq_calloc_array(ctx, batch, sizeof(size_t));
    uint8_t *cod = lq_alloc_array(ctx, batch * n8, 1);
    uint8_t *bid = lq_alloc_array(ctx, batch * (n8 / 8), 1);
    float *sc = lq_alloc_array(ctx, batch, sizeof(float));
    lq_status st = LQ_ERR_NO_MEMORY;
    if (buf && nov && cod && bid && sc) {
        act_job j = {k, c, X, len, ldx, n8, rotate, seed, buf, cod, bid, sc, nov};
        lq_parallel_for(ctx, batch, act_task, &j);
        size_t total = 0;
        for (size_t r = 0; r < batch; r++) total += nov[r];
        memcpy(codes, cod, batch * n8);
        memcpy(beta_idx, bid, batch * (n8 / 8));
        memcpy(scales, sc, batch * sizeof(float));
        if (n_overload) *n_overload = total;
        st = LQ_OK;
    }
    lq_free(ctx, buf);
    lq_free(ctx, nov);
    lq_free(ctx, cod);
    lq_free(ctx, bid);
    lq_free(ctx, sc);
    return st;
}

/* ---- coded inner product -------------------------------------------------- */
static bool block_ints(const lq_lattice_kernels *k, const lq_nq_coder *c, const uint8_t *codes,
                       const uint8_t *bidx, size_t m, int32_t *u)
{
    float y[8 * CH];
    for (size_t i = 0; i < 8 * m; i++)
        if (codes[i] >= c->q) return false;
    for (size_t i = 0; i < m; i++)
        if (bidx[i] >= c->n_betas) return false;
    lq_voronoi_decode_batch(k, c->q, codes, m, y);
    for (size_t i = 0; i < 8 * m; i++) u[i] = (int32_t)(2.0f * y[i]);
    return true;
}

lq_status lq_nq_dot(const lq_nq_coder *ca, const uint8_t *codes_a, const uint8_t *beta_a, float sa,
                    const lq_nq_coder *cb, const uint8_t *codes_b, const uint8_t *beta_b, float sb,
                    size_t nblk, double *out)
{
    if (lq_nq_coder_check(ca) != LQ_OK || lq_nq_coder_check(cb) != LQ_OK || !out || !isfinite(sa) ||
        !isfinite(sb))
        return LQ_ERR_INVALID_ARG;
    if (nblk > 0 && (!codes_a || !beta_a || !codes_b || !beta_b)) return LQ_ERR_INVALID_ARG;
    const lq_lattice_kernels *k = lq_lattice_kernels_at(LQ_SIMD_AUTO);
    int64_t acc[LQ_NQ_MAX_BETAS][LQ_NQ_MAX_BETAS];
    memset(acc, 0, sizeof acc);
    int32_t ua[8 * CH], ub[8 * CH];
    for (size_t i0 = 0; i0 < nblk; i0 += CH) {
        size_t m = nblk - i0 < CH ? nblk - i0 : CH;
        if (!block_ints(k, ca, codes_a + 8 * i0, beta_a + i0, m, ua) ||
            !block_ints(k, cb, codes_b + 8 * i0, beta_b + i0, m, ub))
            return LQ_ERR_CORRUPT;
        for (size_t i = 0; i < m; i++) {
            int64_t d = 0;
            for (int j = 0; j < 8; j++) d += (int64_t)ua[8 * i + j] * ub[8 * i + j];
            acc[beta_a[i0 + i]][beta_b[i0 + i]] += d;
        }
    }
    double D = 0;
    for (unsigned a = 0; a < ca->n_betas; a++)
        for (unsigned b = 0; b < cb->n_betas; b++)
            if (acc[a][b])
                D += (double)ca->betas[a] * (double)cb->betas[b] * (double)acc[a][b] * 0.25;
    *out = D * ((double)sa * (double)sb);
    return LQ_OK;
}
