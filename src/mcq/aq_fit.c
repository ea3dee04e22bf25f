/*
 * Additive quantizer: residual k-means initialisation, codebook update by
 * preconditioned conjugate gradients on the normal equations under H, the
 * closed-form per-row scale update, and the alternating fit.
 */
#include <math.h>
#include <string.h>

#include "quant/vq.h"

#include "mcq/aq_internal.h"

#define AQ_MAX_TASKS 16

static size_t task_grain(size_t rows)
{
    size_t g = lq_chunks(rows, AQ_MAX_TASKS);
    g = lq_chunks(g, AQ_TILE) * AQ_TILE;
    return g < AQ_TILE ? AQ_TILE : g;
}

static lq_status check_common(const float *W, size_t rows, size_t cols, const float *H,
                              const lq_aq_params *p, size_t *K, size_t *ng)
{
    if (!W) return LQ_ERR_INVALID_ARG;
    lq_status st = aq_check_params(p, rows, cols, K, ng);
    if (st != LQ_OK) return st;
    return aq_check_inputs(W, rows, cols, H);
}

/* ---- the normal-equation pass -------------------------------------------
 * G = sum_i s_i B_i^T (V_i H), V_i = s_i B_i v - sub * w_i; with sub, also the
 * per-row objective f (computed by aq_tile_objective, like every objective). */
typedef struct pass_job {
    lq_ctx *ctx;
    const aq_kernels *kr;
    const float *W, *H, *v, *scales;
    const uint16_t *codes;
    const lq_aq_params *p;
    size_t rows, cols, K, ng, grain, npar;
    int sub;
    double *acc; /* ntasks x npar */
    double *f;   /* rows (sub only) */
    volatile int failed;
} pass_job;

static void pass_task(void *arg, size_t t)
{
    pass_job *j = arg;
    size_t cols = j->cols, g = j->p->group, M = j->p->n_codebooks, K = j->K, ng = j->ng;
    float *E = lq_alloc_array(j->ctx, 2 * AQ_TILE, cols * sizeof(float));
    if (!E) {
        j->failed = 1;
        return;
    }
    float *Y = E + AQ_TILE * cols;
    double *acc = j->acc + t * j->npar;
    memset(acc, 0, j->npar * sizeof(double));
    size_t ra = t * j->grain, rb = ra + j->grain;
    if (rb > j->rows) rb = j->rows;
    for (size_t r0 = ra; r0 < rb; r0 += AQ_TILE) {
        size_t r1 = r0 + AQ_TILE < rb ? r0 + AQ_TILE : rb, T = r1 - r0;
        lq_status st = LQ_OK;
        if (j->sub) {
            st = aq_tile_objective(j->ctx, j->W, cols, j->H, j->p, j->v, j->codes, j->scales, r0,
                                   r1, E, Y, j->f);
        } else {
            aq_decode_rows(j->p, cols, j->v, j->codes, j->scales, NULL, 0, r0, r1, E);
            if (j->H) st = aq_times_h(j->ctx, T, cols, E, j->H, Y);
        }
        if (st != LQ_OK) {
            j->failed = 1;
            break;
        }
        const float *Yv = j->H ? Y : E;
        for (size_t i = r0; i < r1; i++) {
            double s = j->scales ? j->scales[i] : 1.0;
            const float *y = Yv + (i - r0) * cols;
            const uint16_t *ci = j->codes + i * ng * M;
            for (size_t jj = 0; jj < ng; jj++)
                for (size_t m = 0; m < M; m++) {
                    double *d = acc + (m * K + ci[jj * M + m]) * g;
                    for (size_t a = 0; a < g; a++) d[a] += s * y[jj * g + a];
                }
        }
    }
    lq_free(j->ctx, E);
}

static lq_status run_pass(pass_job *j, double *G)
{
    size_t nt = lq_chunks(j->rows, j->grain);
    j->failed = 0;
    lq_parallel_for(j->ctx, nt, pass_task, j);
    if (j->failed) return LQ_ERR_NO_MEMORY;
    memcpy(G, j->acc, j->npar * sizeof(double));
    for (size_t t = 1; t < nt; t++)
        for (size_t q = 0; q < j->npar; q++) G[q] += j->acc[t * j->npar + q];
    return LQ_OK;
}

/* Block-Jacobi preconditioner: per codebook entry (m, k) the g x g block
 * sum_i s_i^2 sum_{j: code(i,j,m) = k} H_jj (the cross-group terms of the
 * diagonal block are left out), Cholesky-factored; unused entries keep the
 * identity. */
static void build_precond(const float *H, size_t rows, size_t cols, const lq_aq_params *p,
                          const uint16_t *codes, const float *scales, double *P, uint8_t *used)
{
    size_t g = p->group, M = p->n_codebooks, K = (size_t)1 << p->code_bits, ng = cols / g;
    size_t gg = g * g;
    memset(P, 0, M * K * gg * sizeof(double));
    memset(used, 0, M * K);
    for (size_t i = 0; i < rows; i++) {
        double s2 = scales ? (double)scales[i] * scales[i] : 1.0;
        if (s2 == 0.0) continue;
        for (size_t jj = 0; jj < ng; jj++)
            for (size_t m = 0; m < M; m++) {
                size_t e = m * K + codes[(i * ng + jj) * M + m];
                double *b = P + e * gg;
                used[e] = 1;
                if (H) {
                    for (size_t a = 0; a < g; a++)
                        for (size_t c = 0; c <= a; c++)
                            b[a * g + c] += s2 * H[(jj * g + a) * cols + jj * g + c];
                } else {
                    for (size_t a = 0; a < g; a++) b[a * g + a] += s2;
                }
            }
    }
    for (size_t e = 0; e < M * K; e++) {
        double *b = P + e * gg;
        double tr = 0.0;
        for (size_t a = 0; a < g; a++) tr += b[a * g + a];
        if (!used[e] || !(tr > 0.0)) {
            used[e] = 0;
            continue;
        }
        double ridge = 1e-6 * tr / (double)g;
        for (size_t a = 0; a < g; a++) b[a * g + a] += ridge;
        /* in-place Cholesky of the lower triangle; failure -> diagonal */
        int ok = 1;
        for (size_t c = 0; c < g && ok; c++) {
            double d = b[c * g + c];
            for (size_t q = 0; q < c; q++) d -= b[c * g + q] * b[c * g + q];
            if (!(d > 0.0)) {
                ok = 0;
                break;
            }
            d = sqrt(d);
            b[c * g + c] = d;
            for (size_t a = c + 1; a < g; a++) {
                double v = b[a * g + c];
                for (size_t q = 0; q < c; q++) v -= b[a * g + q] * b[c * g + q];
                b[a * g + c] = v / d;
            }
        }
        if (!ok) {
            for (size_t a = 0; a < g; a++)
                for (size_t c = 0; c < g; c++) b[a * g + c] = a == c ? sqrt(tr / (double)g) : 0.0;
        }
    }
}

static void apply_precond(const double *P, const uint8_t *used, size_t nent, size_t g,
                          const double *r, double *z)
{
    size_t gg = g * g;
    for (size_t e = 0; e < nent; e++) {
        const double *L = P + e * gg;
        const double *re = r + e * g;
        double *ze = z + e * g;
        if (!used[e]) {
            for (size_t a = 0; a < g; a++) ze[a] = re[a];
            continue;
        }
        for (size_t a = 0; a < g; a++) { /* L y = r */
            double v = re[a];
            for (size_t c = 0; c < a; c++) v -= L[a * g + c] * ze[c];
            ze[a] = v / L[a * g + a];
        }
        for (size_t a = g; a-- > 0;) { /* L^T z = y */
            double v = ze[a];
            for (size_t c = a + 1; c < g; c++) v -= L[c * g + a] * ze[c];
            ze[a] = v / L[a * g + a];
        }
    }
}

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

lq_status lq_aq_update_codebooks(lq_ctx *ctx, const float *W, size_t rows, size_t cols,
                                 const float *H, const lq_aq_params *p, const uint16_t *codes,
                                 const float *scales, unsigned iters, float *codebooks,
                                 double *objective)
{
    size_t K, ng;
    if (!codes || !codebooks) return LQ_ERR_INVALID_ARG;
    lq_status st = check_common(W, rows, cols, H, p, &K, &ng);
    if (st != LQ_OK) return st;
    size_t M = p->n_codebooks, g = p->group, npar = M * K * g;
    if (!aq_codes_in_range(codes, rows * ng * M, K)) return LQ_ERR_INVALID_ARG;
    if (!lq_all_finite(codebooks, npar) || (scales && !lq_all_finite(scales, rows)))
        return LQ_ERR_NOT_FINITE;
    if (!lq_ctx_resolve(ctx)) return LQ_ERR_NO_MEMORY;
    if (iters == 0) iters = 16;

    size_t grain = task_grain(rows), nt = lq_chunks(rows, grain);
    double *acc = lq_alloc_array(ctx, nt, npar * sizeof(double));
    double *vec = lq_alloc_array(ctx, 5 * npar, sizeof(double));
    double *P = lq_alloc_array(ctx, M * K, g * g * sizeof(double));
    uint8_t *used = lq_alloc_array(ctx, M * K, 1);
    float *cf = lq_alloc_array(ctx, npar, sizeof(float));
    double *f0 = lq_alloc_array(ctx, 2 * rows, sizeof(double));
    if (!acc || !vec || !P || !used || !cf || !f0) {
        st = LQ_ERR_NO_MEMORY;
        goto done;
    }
    double *x = vec, *r = vec + npar, *z = vec + 2 * npar, *pv = vec + 3 * npar,
           *Ap = vec + 4 * npar, *f1 = f0 + rows;
    pass_job j = {ctx,       aq_kernels_for(lq_simd_for(ctx)),
                  W,         H,
                  codebooks, scales,
                  codes,     p,
                  rows,      cols,
                  K,         ng,
                  grain,     npar,
                  1,         acc,
                  f0,        0};
    st = run_pass(&j, r); /* r = A c - b (the half-gradient) */
    if (st != LQ_OK) goto done;
    double obj0 = aq_sum(f0, rows);
    for (size_t q = 0; q < npar; q++) {
        x[q] = codebooks[q];
        r[q] = -r[q];
    }
    build_precond(H, rows, cols, p, codes, scales, P, used);
    apply_precond(P, used, M * K, g, r, z);
    memcpy(pv, z, npar * sizeof(double));
    double rz = dot(r, z, npar);
    j.sub = 0;
    j.v = cf;
    for (unsigned it = 0; it < iters && rz > 0.0; it++) {
        for (size_t q = 0; q < npar; q++) cf[q] = (float)pv[q];
        st = run_pass(&j, Ap);
        if (st != LQ_OK) goto done;
        /* the product used the float copy of p: take that copy as p */
        for (size_t q = 0; q < npar; q++) pv[q] = cf[q];
        double pAp = dot(pv, Ap, npar);
        if (!(pAp > 0.0)) break;
        double alpha = rz / pAp;
        for (size_t q = 0; q < npar; q++) {
            x[q] += alpha * pv[q];
            r[q] -= alpha * Ap[q];
        }
        apply_precond(P, used, M * K, g, r, z);
        double rz1 = dot(r, z, npar);
        double beta = rz1 / rz;
        rz = rz1;
        for (size_t q = 0; q < npar; q++) pv[q] = z[q] + beta * pv[q];
    }
    for (size_t q = 0; q < npar; q++) cf[q] = (float)x[q];
    if (!lq_all_finite(cf, npar)) {
        if (objective) *objective = obj0;
        goto done;
    }
    st = aq_row_objectives(ctx, W, rows, cols, H, p, cf, codes, scales, f1);
    if (st != LQ_OK) goto done;
    double obj1 = aq_sum(f1, rows);
    if (obj1 <= obj0) {
        memcpy(codebooks, cf, npar * sizeof(float));
        if (objective) *objective = obj1;
    } else if (objective) {
        *objective = obj0;
    }
done:
    lq_free(ctx, acc);
    lq_free(ctx, vec);
    lq_free(ctx, P);
    lq_free(ctx, used);
    lq_free(ctx, cf);
    lq_free(ctx, f0);
    return st;
}

/* ---- scales ------------------------------------------------------------- */
typedef struct scale_job {
    lq_ctx *ctx;
    const aq_kernels *kr;
    const float *W, *H, *C;
    const uint16_t *codes;
    const lq_aq_params *p;
    size_t rows, cols;
    double *num, *den;
    volatile int failed;
} scale_job;

static void scale_task(void *arg, size_t t)
{
    scale_job *j = arg;
    size_t cols = j->cols, r0 = t * AQ_TILE, r1 = r0 + AQ_TILE;
    if (r1 > j->rows) r1 = j->rows;
    float *U = lq_alloc_array(j->ctx, 2 * AQ_TILE, cols * sizeof(float));
    if (!U) {
        j->failed = 1;
        return;
    }
    float *Y = U + AQ_TILE * cols;
    size_t T = r1 - r0;
    aq_decode_rows(j->p, cols, j->C, j->codes, NULL, NULL, 0, r0, r1, U);
    if (j->H && aq_times_h(j->ctx, T, cols, U, j->H, Y) != LQ_OK) {
        j->failed = 1;
        lq_free(j->ctx, U);
        return;
    }
    for (size_t q = 0; q < T; q++) {
        const float *u = U + q * cols, *y = j->H ? Y + q * cols : u, *w = j->W + (r0 + q) * cols;
        double n = 0.0, d = 0.0;
        for (size_t c = 0; c < cols; c++) {
            n += (double)w[c] * y[c];
            d += (double)u[c] * y[c];
        }
        j->num[r0 + q] = n;
        j->den[r0 + q] = d;
    }
    lq_free(j->ctx, U);
}

lq_status lq_aq_update_scales(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                              const lq_aq_params *p, const float *codebooks, const uint16_t *codes,
                              float *scales, double *objective)
{
    size_t K, ng;
    if (!codes || !codebooks || !scales) return LQ_ERR_INVALID_ARG;
    lq_status st = check_common(W, rows, cols, H, p, &K, &ng);
    if (st != LQ_OK) return st;
    if (!aq_codes_in_range(codes, rows * ng * p->n_codebooks, K)) return LQ_ERR_INVALID_ARG;
    if (!lq_all_finite(codebooks, lq_aq_codebooks_len(p)) || !lq_all_finite(scales, rows))
        return LQ_ERR_NOT_FINITE;
    if (!lq_ctx_resolve(ctx)) return LQ_ERR_NO_MEMORY;
    double *buf = lq_alloc_array(ctx, 4 * rows, sizeof(double));
    float *sn = lq_alloc_array(ctx, rows, sizeof(float));
    if (!buf || !sn) {
        st = LQ_ERR_NO_MEMORY;
        goto done;
    }
    double *num = buf, *den = buf + rows, *fo = buf + 2 * rows, *fn = buf + 3 * rows;
    scale_job j = {
        ctx, aq_kernels_for(lq_simd_for(ctx)), W, H, codebooks, codes, p, rows, cols, num, den, 0};
    lq_parallel_for(ctx, lq_chunks(rows, AQ_TILE), scale_task, &j);
    if (j.failed) {
        st = LQ_ERR_NO_MEMORY;
        goto done;
    }
    for (size_t i = 0; i < rows; i++) {
        double s = den[i] > 0.0 ? num[i] / den[i] : (double)scales[i];
        sn[i] = isfinite(s) && fabs(s) < 3e38 ? (float)s : scales[i];
    }
    st = aq_row_objectives(ctx, W, rows, cols, H, p, codebooks, codes, scales, fo);
    if (st == LQ_OK) st = aq_row_objectives(ctx, W, rows, cols, H, p, codebooks, codes, sn, fn);
    if (st != LQ_OK) goto done;
    for (size_t i = 0; i < rows; i++)
        if (fn[i] < fo[i]) {
            scales[i] = sn[i];
            fo[i] = fn[i];
        }
    if (objective) *objective = aq_sum(fo, rows);
done:
    lq_free(ctx, buf);
    lq_free(ctx, sn);
    return st;
}

/* ---- initialisation ----------------------------------------------------- */
lq_status lq_aq_init(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const lq_aq_params *p,
                     unsigned kmeans_iters, float *codebooks, uint16_t *codes, float *scales)
{
    size_t K, ng;
    if (!codebooks || !codes) return LQ_ERR_INVALID_ARG;
    lq_status st = check_common(W, rows, cols, NULL, p, &K, &ng);
    if (st != LQ_OK) return st;
    if (!lq_ctx_resolve(ctx)) return LQ_ERR_NO_MEMORY;
    if (kmeans_iters == 0) kmeans_iters = 20;
    size_t M = p->n_codebooks, g = p->group, n = rows * ng, npar = M * K * g;
    size_t ns = n, cap;
    if (lq_mul_ok(K, 256, &cap) && ns > cap) ns = cap;
    float *R = lq_alloc_array(ctx, n, g * sizeof(float));
    float *xs = ns < n ? lq_alloc_array(ctx, ns, g * sizeof(float)) : NULL;
    uint32_t *idx = ns < n ? lq_alloc_array(ctx, n, sizeof(uint32_t)) : NULL;
    uint32_t *asg = lq_alloc_array(ctx, n, sizeof(uint32_t));
    float *C = lq_alloc_array(ctx, npar, sizeof(float));
    uint16_t *cd = lq_alloc_array(ctx, n * M, sizeof(uint16_t));
    float *sc = lq_alloc_array(ctx, rows, sizeof(float));
    if (!R || (ns < n && (!xs || !idx)) || !asg || !C || !cd || !sc) {
        st = LQ_ERR_NO_MEMORY;
        goto done;
    }
    for (size_t i = 0; i < rows; i++) {
        double s = 0.0;
        for (size_t c = 0; c < cols; c++) s += (double)W[i * cols + c] * W[i * cols + c];
        s = sqrt(s / (double)cols);
        sc[i] = scales && s > 0.0 && (float)s > 0.0 ? (float)s : 1.0f;
        for (size_t c = 0; c < cols; c++) R[i * cols + c] = W[i * cols + c] / sc[i];
    }
    if (ns < n) {
        /* one fixed subsample for every stage (partial Fisher-Yates) */
        lq_rng rng;
        lq_rng_init(&rng, lq_ctx_seed(ctx), 0x41514900ull);
        for (size_t i = 0; i < n; i++) idx[i] = (uint32_t)i;
        for (size_t i = 0; i < ns; i++) {
            size_t r = i + (size_t)lq_rng_below(&rng, n - i);
            uint32_t t = idx[i];
            idx[i] = idx[r];
            idx[r] = t;
        }
    }
    for (size_t m = 0; m < M; m++) {
        float *Cm = C + m * K * g;
        const float *train = R;
        if (ns < n) {
            for (size_t i = 0; i < ns; i++)
                memcpy(xs + i * g, R + (size_t)idx[i] * g, g * sizeof(float));
            train = xs;
        }
        if (ns <= K) {
            /* no more points than entries: each point is an entry (exact) */
            for (size_t c = 0; c < K; c++)
                memcpy(Cm + c * g, train + (c % ns) * g, g * sizeof(float));
            st = LQ_OK;
        } else {
            lq_kmeans_opts ko;
            lq_kmeans_opts_init(&ko);
            ko.max_iter = kmeans_iters;
            ko.tol = 0;
            ko.init = K <= 1024 ? LQ_KMEANS_PLUSPLUS : LQ_KMEANS_RANDOM;
            st = lq_kmeans(ctx, train, NULL, ns, g, K, &ko, Cm, NULL, NULL);
            if (st != LQ_OK && st != LQ_ERR_NO_MEMORY) st = LQ_ERR_INVALID_ARG;
        }
        if (st == LQ_OK) st = aq_assign(ctx, R, n, g, Cm, K, asg);
        if (st != LQ_OK) goto done;
        for (size_t i = 0; i < n; i++) {
            cd[i * M + m] = (uint16_t)asg[i];
            const float *c = Cm + (size_t)asg[i] * g;
            for (size_t a = 0; a < g; a++) R[i * g + a] -= c[a];
        }
    }
    memcpy(codebooks, C, npar * sizeof(float));
    memcpy(codes, cd, n * M * sizeof(uint16_t));
    if (scales) memcpy(scales, sc, rows * sizeof(float));
done:
    lq_free(ctx, R);
    lq_free(ctx, xs);
    lq_free(ctx, idx);
    lq_free(ctx, asg);
    lq_free(ctx, C);
    lq_free(ctx, cd);
    lq_free(ctx, sc);
    return st;
}

/* ---- the alternating fit ------------------------------------------------ */
lq_status lq_aq_fit(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                    const lq_aq_params *p, const lq_aq_fit_opts *opts, float *codebooks,
                    uint16_t *codes, float *scales, double *history)
{
    size_t K, ng;
    if (!codebooks || !codes) return LQ_ERR_INVALID_ARG;
    lq_status st = check_common(W, rows, cols, H, p, &K, &ng);
    if (st != LQ_OK) return st;
    lq_aq_fit_opts o = {8, 4, 20, 16, 0};
    if (opts) {
        if (opts->beam) o.beam = opts->beam;
        o.rounds = opts->rounds; /* 0 rounds is allowed: init only */
        if (opts->kmeans_iters) o.kmeans_iters = opts->kmeans_iters;
        if (opts->cg_iters) o.cg_iters = opts->cg_iters;
        o.fixed_scales = opts->fixed_scales;
    }
    if (o.beam > 256 || o.rounds > 1000) return LQ_ERR_INVALID_ARG;
    if (!lq_ctx_resolve(ctx)) return LQ_ERR_NO_MEMORY;
    size_t npar = lq_aq_codebooks_len(p), nc = rows * ng * p->n_codebooks;
    float *C = lq_alloc_array(ctx, npar, sizeof(float));
    uint16_t *cd = lq_alloc_array(ctx, nc, sizeof(uint16_t));
    float *sc = scales ? lq_alloc_array(ctx, rows, sizeof(float)) : NULL;
    double *hist = lq_alloc_array(ctx, (size_t)o.rounds + 1, sizeof(double));
    if (!C || !cd || (scales && !sc) || !hist) {
        st = LQ_ERR_NO_MEMORY;
        goto done;
    }
    st = lq_aq_init(ctx, W, rows, cols, p, o.kmeans_iters, C, cd, sc);
    if (st == LQ_OK) st = lq_aq_objective(ctx, W, rows, cols, H, p, C, cd, sc, NULL, &hist[0]);
    if (st != LQ_OK) goto done;
    lq_progress(ctx, 0.0, "aqlm");
    for (unsigned r = 0; r < o.rounds; r++) {
        double obj = hist[r];
        st = lq_aq_encode(ctx, W, rows, cols, H, p, C, sc, o.beam, 1, cd, &obj);
        if (st == LQ_OK)
            st = lq_aq_update_codebooks(ctx, W, rows, cols, H, p, cd, sc, o.cg_iters, C, &obj);
        if (st == LQ_OK && sc && !o.fixed_scales)
            st = lq_aq_update_scales(ctx, W, rows, cols, H, p, C, cd, sc, &obj);
        if (st != LQ_OK) goto done;
        hist[r + 1] = obj;
        lq_progress(ctx, (double)(r + 1) / o.rounds, "aqlm");
    }
    memcpy(codebooks, C, npar * sizeof(float));
    memcpy(codes, cd, nc * sizeof(uint16_t));
    if (scales) memcpy(scales, sc, rows * sizeof(float));
    if (history) memcpy(history, hist, ((size_t)o.rounds + 1) * sizeof(double));
done:
    lq_free(ctx, C);
    lq_free(ctx, cd);
    lq_free(ctx, sc);
    lq_free(ctx, hist);
    return st;
}
