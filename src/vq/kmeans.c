/*
 * k-means / EM (Lloyd) with weights, per-coordinate importance, k-means++
 * or random initialisation, restarts, empty-cluster re-seeding.
 *
 * Determinism: points are split into a fixed number of chunks that depends
 * on n only (never on the thread count); each chunk's task assigns its points
 * and accumulates its own partial sums in double; partials are reduced in
 * chunk order on the calling thread. The nearest-centroid kernels of every
 * SIMD level are bit-identical (vq_internal.h), so results depend on the
 * seed alone.
 *
 * Assignment: direct kernels for d in {1, 2, 4, 8} (and any d with
 * coordinate weights or few centroids); for other d with k*d >= 256, one
 * GEMM per block of points: ||x||^2 - 2 x.c + ||c||^2 (lq_sgemm).
 */
#include <math.h>
#include <string.h>

#include "core/linalg.h"
#include "vq/vq_internal.h"

#define KM_MIN_CHUNK 1024
#define KM_MAX_CHUNKS 32
#define KM_GEMM_ROWS 512 /* points per GEMM block */

static void km_chunking(size_t n, size_t *nchunks, size_t *chunk)
{
    size_t nc = lq_chunks(n, KM_MIN_CHUNK);
    if (nc > KM_MAX_CHUNKS) nc = KM_MAX_CHUNKS;
    size_t ch = (n + nc - 1) / nc;
    *chunk = ch;
    *nchunks = lq_chunks(n, ch);
}

static int km_use_gemm(size_t d, size_t k, const float *cw)
{
    if (cw || d == 1 || d == 2 || d == 4 || d == 8) return 0;
    return k * d >= 256;
}

/* ---- workspace ------------------------------------------------------------ */

static size_t al64(size_t b) { return (b + 63) / 64 * 64; }

/* Sizes of every array (0-sized when not needed); false on overflow. */
typedef struct km_sizes {
    size_t b[12];
} km_sizes;

static int km_sizes_of(size_t n, size_t d, size_t k, unsigned restarts, km_sizes *s)
{
    size_t nchunks, chunk, kpad = lq_vq_kpad(k), stride, t;
    km_chunking(n, &nchunks, &chunk);
    memset(s, 0, sizeof *s);
    if (!lq_mul_ok(d, 2, &t) || !lq_add_ok(t, 1, &t) || !lq_mul_ok(k, t, &stride) ||
        !lq_add_ok(stride, 1, &stride))
        return 0;
    size_t kd, n4, n8, part, gb;
    if (!lq_mul_ok(k, d, &kd) || !lq_mul_ok(kd, 4, &kd) || !lq_mul_ok(n, 4, &n4) ||
        !lq_mul_ok(n, 8, &n8) || !lq_mul_ok(nchunks, stride, &part) || !lq_mul_ok(part, 8, &part) ||
        !lq_mul_ok(d, kpad, &t) || !lq_mul_ok(t, 4, &t))
        return 0;
    s->b[0] = n4;                                                    /* cur_assign */
    s->b[1] = n4;                                                    /* dist */
    s->b[2] = restarts > 1 ? n4 : 0;                                 /* best_assign */
    s->b[3] = kd;                                                    /* cent */
    s->b[4] = kd;                                                    /* best_cent */
    s->b[5] = t;                                                     /* ct */
    s->b[6] = part;                                                  /* part */
    s->b[7] = (stride > KM_MAX_CHUNKS ? stride : KM_MAX_CHUNKS) * 8; /* sums */
    s->b[8] = n / 8 + 1;                                             /* taken */
    s->b[9] = n8;                                                    /* pp */
    if (km_use_gemm(d, k, NULL)) {
        if (!lq_mul_ok(KM_GEMM_ROWS, k, &gb) || !lq_mul_ok(gb, 4, &gb)) return 0;
        s->b[10] = gb;                     /* GEMM distance block */
        s->b[11] = (k + KM_GEMM_ROWS) * 4; /* centroid and point norms */
    }
    return 1;
}

size_t lq_kmeans_ws_bytes(size_t n, size_t d, size_t k, unsigned restarts)
{
    km_sizes s;
    if (!km_sizes_of(n, d, k, restarts, &s)) return 0;
    size_t tot = 0;
    for (int i = 0; i < 12; i++) {
        if (s.b[i] > SIZE_MAX - 128 || !lq_add_ok(tot, al64(s.b[i]), &tot)) return 0;
    }
    return tot ? tot : 64;
}

/* GEMM scratch lives after the ten fixed arrays. */
typedef struct km_gemm_ws {
    float *dots;  /* KM_GEMM_ROWS x k */
    float *cnorm; /* k */
    float *xnorm; /* KM_GEMM_ROWS */
} km_gemm_ws;

static km_gemm_ws km_gemm_of(const lq_kmeans_ws *ws)
{
    km_gemm_ws g = {0};
    km_sizes s;
    km_sizes_of(ws->n, ws->d, ws->k, ws->best_assign ? 2u : 1u, &s);
    if (!s.b[10]) return g;
    unsigned char *p = (unsigned char *)ws->cur_assign;
    for (int i = 0; i < 10; i++) p += al64(s.b[i]);
    g.dots = (float *)(void *)p;
    p += al64(s.b[10]);
    g.cnorm = (float *)(void *)p;
    g.xnorm = g.cnorm + ws->k;
    return g;
}

void lq_kmeans_ws_init(lq_kmeans_ws *ws, void *mem, size_t n, size_t d, size_t k, unsigned restarts)
{
    km_sizes s;
    km_sizes_of(n, d, k, restarts, &s);
    unsigned char *p = mem;
    void *arr[10];
    for (int i = 0; i < 10; i++) {
        arr[i] = s.b[i] ? p : NULL;
        p += al64(s.b[i]);
    }
    ws->n = n;
    ws->d = d;
    ws->k = k;
    ws->kpad = lq_vq_kpad(k);
    km_chunking(n, &ws->nchunks, &ws->chunk);
    ws->cur_assign = arr[0];
    ws->dist = arr[1];
    ws->best_assign = arr[2];
    ws->cent = arr[3];
    ws->best_cent = arr[4];
    ws->ct = arr[5];
    ws->part = arr[6];
    ws->sums = arr[7];
    ws->taken = arr[8];
    ws->pp = arr[9];
}

/* ---- assignment + accumulation ------------------------------------------- */

typedef struct km_job {
    const float *x, *w, *cw;
    size_t n, d, k, kpad, chunk, stride;
    const float *ct;
    lq_vq_nearest_fn fn;
    int search;     /* run the nearest kernel (else assign/dist are given) */
    int accumulate; /* accumulate centroid sums */
    uint32_t *assign;
    float *dist;
    double *part; /* chunk t: part + t*stride; last entry = chunk inertia */
} km_job;

static void km_task(void *arg, size_t t)
{
    km_job *j = arg;
    size_t i0 = t * j->chunk, i1 = i0 + j->chunk, d = j->d;
    if (i1 > j->n) i1 = j->n;
    if (j->search)
        j->fn(j->x + i0 * d, j->cw ? j->cw + i0 * d : NULL, i1 - i0, d, j->ct, j->k, j->kpad,
              j->assign + i0, j->dist + i0);
    double *P = j->part + t * j->stride;
    double inertia = 0;
    if (j->accumulate) memset(P, 0, (j->stride - 1) * sizeof *P);
    for (size_t i = i0; i < i1; i++) {
        double wi = j->w ? (double)j->w[i] : 1.0;
        inertia += wi * (double)j->dist[i];
        if (!j->accumulate) continue;
        double *S = P + (size_t)j->assign[i] * (2 * d + 1);
        const float *xi = j->x + i * d;
        S[0] += wi;
        if (j->cw) {
            const float *ci = j->cw + i * d;
            for (size_t q = 0; q < d; q++) {
                double wq = wi * (double)ci[q];
                S[1 + q] += wq;
                S[1 + d + q] += wq * (double)xi[q];
            }
        } else {
            for (size_t q = 0; q < d; q++) {
                S[1 + q] += wi;
                S[1 + d + q] += wi * (double)xi[q];
            }
        }
    }
    P[j->stride - 1] = inertia;
}

/* Argmin over a block of GEMM distances, rows split in fixed sub-chunks. */
typedef struct km_gemm_job {
    const float *dots, *cnorm, *xnorm, *x, *cent;
    size_t rows, k, d, i0;
    uint32_t *assign;
    float *dist;
} km_gemm_job;

#define KM_GEMM_SUB 64
static void km_gemm_argmin_task(void *arg, size_t t)
{
    km_gemm_job *g = arg;
    size_t r0 = t * KM_GEMM_SUB, r1 = r0 + KM_GEMM_SUB;
    if (r1 > g->rows) r1 = g->rows;
    for (size_t r = r0; r < r1; r++) {
        const float *row = g->dots + r * g->k;
        float best = INFINITY;
        uint32_t bi = 0;
        for (size_t c = 0; c < g->k; c++) {
            float v = row[c] + g->cnorm[c];
            if (v < best) {
                best = v;
                bi = (uint32_t)c;
            }
        }
        /* The distance itself is recomputed directly (same formula as the
         * kernels): the inertia then does not depend on GEMM rounding. */
        const float *xr = g->x + (g->i0 + r) * g->d, *cr = g->cent + (size_t)bi * g->d;
        float acc = 0.0f;
        for (size_t q = 0; q < g->d; q++) {
            float e = cr[q] - xr[q];
            acc = fmaf(e, e, acc);
        }
        g->assign[g->i0 + r] = bi;
        g->dist[g->i0 + r] = acc;
    }
}

/* Assign every point of x (GEMM path): dots = -2 X C^T per block. */
static lq_status km_assign_gemm(lq_ctx *ctx, const float *x, size_t n, size_t d, size_t k,
                                const float *cent, lq_kmeans_ws *ws)
{
    km_gemm_ws g = km_gemm_of(ws);
    for (size_t c = 0; c < k; c++) {
        float s = 0;
        for (size_t q = 0; q < d; q++) s += cent[c * d + q] * cent[c * d + q];
        g.cnorm[c] = s;
    }
    for (size_t i0 = 0; i0 < n; i0 += KM_GEMM_ROWS) {
        size_t rows = n - i0 < KM_GEMM_ROWS ? n - i0 : KM_GEMM_ROWS;
        for (size_t r = 0; r < rows; r++) {
            float s = 0;
            for (size_t q = 0; q < d; q++) s += x[(i0 + r) * d + q] * x[(i0 + r) * d + q];
            g.xnorm[r] = s;
        }
        lq_status st = lq_sgemm(ctx, LQ_NO_TRANS, LQ_TRANS, rows, k, d, -2.0f, x + i0 * d, d, cent,
                                d, 0.0f, g.dots, k);
        if (st != LQ_OK) return st;
        km_gemm_job job = {g.dots, g.cnorm, g.xnorm,        x,       cent, rows, k,
                           d,      i0,      ws->cur_assign, ws->dist};
        lq_parallel_for(ctx, lq_chunks(rows, KM_GEMM_SUB), km_gemm_argmin_task, &job);
    }
    return LQ_OK;
}

/* One pass: assign (kernel or GEMM), accumulate when asked; returns the
 * inertia of the assignment. */
static lq_status km_pass(lq_ctx *ctx, lq_vq_nearest_fn fn, const float *x, const float *w,
                         const float *cw, lq_kmeans_ws *ws, int accumulate, double *inertia)
{
    size_t d = ws->d, k = ws->k;
    int gemm = km_use_gemm(d, k, cw);
    if (gemm) {
        lq_status st = km_assign_gemm(ctx, x, ws->n, d, k, ws->cent, ws);
        if (st != LQ_OK) return st;
    } else {
        lq_vq_transpose(ws->cent, k, d, ws->ct, ws->kpad);
    }
    km_job j = {x,
                w,
                cw,
                ws->n,
                d,
                k,
                ws->kpad,
                ws->chunk,
                k * (2 * d + 1) + 1,
                ws->ct,
                fn,
                !gemm,
                accumulate,
                ws->cur_assign,
                ws->dist,
                ws->part};
    lq_parallel_for(ctx, ws->nchunks, km_task, &j);
    double tot = 0;
    for (size_t t = 0; t < ws->nchunks; t++) tot += ws->part[t * j.stride + j.stride - 1];
    *inertia = tot;
    return LQ_OK;
}

/* ---- centroid update and empty clusters ----------------------------------- */

static double km_point_cost(const float *x, const float *cw, const float *c, size_t d)
{
    double s = 0;
    for (size_t q = 0; q < d; q++) {
        double t = (double)x[q] - (double)c[q];
        s += (cw ? (double)cw[q] : 1.0) * t * t;
    }
    return s;
}

static void km_centroid_from_sums(const double *S, size_t d, float *c)
{
    for (size_t q = 0; q < d; q++)
        if (S[1 + q] > 0) c[q] = (float)(S[1 + d + q] / S[1 + q]);
}

/* Reduce the partial sums in chunk order, move every centroid with weight
 * to its weighted mean, then re-seed empty clusters.
 *
 * Re-seeding rule: a cluster with zero total weight takes the point with
 * the largest weighted cost w_i * dist(x_i, c(i)) under the updated
 * centroids (ties: lowest index; points of zero cost are never taken). The
 * point leaves its cluster (whose centroid is recomputed from the reduced
 * sums; if that empties it, it is queued for re-seeding too) and becomes
 * the new centroid. The taken point's cost drops to 0 and its old cluster's
 * mean stays optimal for the points left, so the inertia of the (assignment,
 * centroids) pair does not increase: Lloyd's monotonicity is kept. */
static void km_update(const float *x, const float *w, const float *cw, lq_kmeans_ws *ws)
{
    size_t d = ws->d, k = ws->k, n = ws->n, stride = k * (2 * d + 1) + 1;
    size_t cs = 2 * d + 1;
    double *S = ws->sums;
    memcpy(S, ws->part, k * cs * sizeof *S);
    for (size_t t = 1; t < ws->nchunks; t++) {
        const double *P = ws->part + t * stride;
        for (size_t i = 0; i < k * cs; i++) S[i] += P[i];
    }
    size_t nempty = 0;
    for (size_t c = 0; c < k; c++) {
        if (S[c * cs] > 0)
            km_centroid_from_sums(S + c * cs, d, ws->cent + c * d);
        else
            nempty++;
    }
    if (!nempty) return;
    /* Costs under the updated centroids (pp reused as scratch). */
    double *cost = ws->pp;
    for (size_t i = 0; i < n; i++) {
        double wi = w ? (double)w[i] : 1.0;
        cost[i] = wi > 0 ? wi * km_point_cost(x + i * d, cw ? cw + i * d : NULL,
                                              ws->cent + (size_t)ws->cur_assign[i] * d, d)
                         : 0.0;
    }
    /* Queue: the empty clusters in index order, then clusters emptied here. */
    for (size_t c = 0, guard = 0; c < k && guard < n + k; c++, guard++) {
        if (!(S[c * cs] <= 0)) continue;
        size_t p = n;
        double bestc = 0;
        for (size_t i = 0; i < n; i++)
            if (cost[i] > bestc) {
                bestc = cost[i];
                p = i;
            }
        if (p == n) return; /* every point exactly represented */
        size_t a = ws->cur_assign[p];
        double wp = w ? (double)w[p] : 1.0;
        double *Sa = S + a * cs, *Sc = S + c * cs;
        const float *xp = x + p * d;
        Sa[0] -= wp;
        Sc[0] = wp;
        for (size_t q = 0; q < d; q++) {
            double wq = wp * (cw ? (double)cw[p * d + q] : 1.0);
            Sa[1 + q] -= wq;
            Sa[1 + d + q] -= wq * (double)xp[q];
            Sc[1 + q] = wq;
            Sc[1 + d + q] = wq * (double)xp[q];
            ws->cent[c * d + q] = xp[q];
        }
        ws->cur_assign[p] = (uint32_t)c;
        cost[p] = 0;
        if (Sa[0] > 0) {
            km_centroid_from_sums(Sa, d, ws->cent + a * d);
        } else if (a < c) {
            c = a - 1; /* a was emptied: revisit it (c++ brings the loop back to a) */
            if (a == 0) c = (size_t)-1;
        }
    }
}

/* ---- initialisation ------------------------------------------------------- */

typedef struct km_pp_job {
    const float *x, *w, *cw, *c; /* c: the new centroid */
    size_t n, d, chunk;
    double *pp, *csum;
    int first;
} km_pp_job;

static void km_pp_task(void *arg, size_t t)
{
    km_pp_job *j = arg;
    size_t i0 = t * j->chunk, i1 = i0 + j->chunk;
    if (i1 > j->n) i1 = j->n;
    double s = 0;
    for (size_t i = i0; i < i1; i++) {
        double wi = j->w ? (double)j->w[i] : 1.0;
        double v = wi * km_point_cost(j->x + i * j->d, j->cw ? j->cw + i * j->d : NULL, j->c, j->d);
        if (j->first || v < j->pp[i]) j->pp[i] = v;
        s += j->pp[i];
    }
    j->csum[t] = s;
}

/* Sample i with probability pp[i] / total using chunk sums (in order). */
static size_t km_sample(const double *pp, const double *csum, size_t nchunks, size_t chunk,
                        size_t n, lq_rng *r)
{
    double total = 0;
    for (size_t t = 0; t < nchunks; t++) total += csum[t];
    if (!(total > 0)) return (size_t)lq_rng_below(r, n);
    double u = lq_rng_uniform(r) * total;
    size_t last = n;
    for (size_t t = 0; t < nchunks; t++) {
        if (u >= csum[t] && t + 1 < nchunks) {
            u -= csum[t];
            continue;
        }
        size_t i0 = t * chunk, i1 = i0 + chunk;
        if (i1 > n) i1 = n;
        for (size_t i = i0; i < i1; i++) {
            if (pp[i] > 0) last = i;
            if (u < pp[i]) return i;
            u -= pp[i];
        }
        if (last != n) return last;
    }
    if (last != n) return last;
    for (size_t i = n; i-- > 0;)
        if (pp[i] > 0) return i;
    return 0;
}

static void km_init_pp(lq_ctx *ctx, const float *x, const float *w, const float *cw,
                       lq_kmeans_ws *ws, lq_rng *r)
{
    size_t n = ws->n, d = ws->d, k = ws->k;
    double *csum = ws->sums; /* nchunks <= KM_MAX_CHUNKS doubles of scratch */
    /* First centroid: point drawn with probability proportional to w. */
    size_t i0;
    if (w) {
        for (size_t t = 0; t < ws->nchunks; t++) {
            size_t a = t * ws->chunk, b = a + ws->chunk;
            if (b > n) b = n;
            double s = 0;
            for (size_t i = a; i < b; i++) {
                ws->pp[i] = w[i];
                s += w[i];
            }
            csum[t] = s;
        }
        i0 = km_sample(ws->pp, csum, ws->nchunks, ws->chunk, n, r);
    } else {
        i0 = (size_t)lq_rng_below(r, n);
    }
    memcpy(ws->cent, x + i0 * d, d * sizeof(float));
    for (size_t c = 1; c <= k; c++) {
        km_pp_job j = {x, w, cw, ws->cent + (c - 1) * d, n, d, ws->chunk, ws->pp, csum, c == 1};
        lq_parallel_for(ctx, ws->nchunks, km_pp_task, &j);
        if (c == k) break;
        size_t p = km_sample(ws->pp, csum, ws->nchunks, ws->chunk, n, r);
        memcpy(ws->cent + c * d, x + p * d, d * sizeof(float));
    }
}

/* k distinct points uniformly (Floyd's algorithm). */
static void km_init_random(const float *x, lq_kmeans_ws *ws, lq_rng *r)
{
    size_t n = ws->n, d = ws->d, k = ws->k;
    memset(ws->taken, 0, n / 8 + 1);
    size_t c = 0;
    for (size_t j = n - k; j < n; j++) {
        size_t t = (size_t)lq_rng_below(r, (uint64_t)j + 1);
        if (ws->taken[t >> 3] & (1u << (t & 7))) t = j;
        ws->taken[t >> 3] |= (uint8_t)(1u << (t & 7));
        memcpy(ws->cent + c * d, x + t * d, d * sizeof(float));
        c++;
    }
}

/* ---- driver --------------------------------------------------------------- */

void lq_kmeans_opts_init(lq_kmeans_opts *opts)
{
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->init = LQ_KMEANS_PLUSPLUS;
    opts->max_iter = 25;
    opts->restarts = 1;
    opts->tol = 1e-6;
}

lq_status lq_kmeans_core(lq_ctx *ctx, lq_simd_level level, const float *x, const float *weights,
                         size_t n, size_t d, size_t k, const lq_kmeans_opts *o, uint64_t seed,
                         uint64_t stream0, int report, lq_kmeans_ws *ws, float *centroids,
                         uint32_t *assign, double *inertia)
{
    lq_vq_nearest_fn fn = lq_vq_nearest_for(level, d);
    const float *cw = o->coord_weights;
    double best = INFINITY;
    unsigned restarts = o->restarts ? o->restarts : 1;
    for (unsigned rs = 0; rs < restarts; rs++) {
        lq_rng r;
        lq_rng_init(&r, seed, stream0 + rs);
        if (o->init == LQ_KMEANS_GIVEN)
            memcpy(ws->cent, centroids, k * d * sizeof(float));
        else if (o->init == LQ_KMEANS_RANDOM)
            km_init_random(x, ws, &r);
        else
            km_init_pp(ctx, x, weights, cw, ws, &r);
        if (o->inertia_trace)
            for (unsigned t = 0; t < o->max_iter; t++) o->inertia_trace[t] = -1.0;
        double prev = INFINITY, cur = 0;
        unsigned it = 0;
        lq_status st;
        while (it < o->max_iter) {
            st = km_pass(ctx, fn, x, weights, cw, ws, 1, &cur);
            if (st != LQ_OK) return st;
            if (o->inertia_trace && rs + 1 == restarts) o->inertia_trace[it] = cur;
            if (o->on_iter) o->on_iter(o->on_iter_user, rs, it, cur);
            km_update(x, weights, cw, ws);
            it++;
            if (report)
                lq_progress(ctx, ((double)rs + (double)it / o->max_iter) / restarts, "kmeans");
            if (o->tol > 0 && prev - cur <= o->tol * cur) break;
            prev = cur;
        }
        st = km_pass(ctx, fn, x, weights, cw, ws, 0, &cur);
        if (st != LQ_OK) return st;
        if (o->on_iter) o->on_iter(o->on_iter_user, rs, it, cur);
        if (cur < best || rs == 0) {
            best = cur;
            if (o->iters_run) *o->iters_run = it;
            if (restarts > 1) {
                memcpy(ws->best_cent, ws->cent, k * d * sizeof(float));
                memcpy(ws->best_assign, ws->cur_assign, n * sizeof(uint32_t));
            }
        }
    }
    const float *bc = restarts > 1 ? ws->best_cent : ws->cent;
    const uint32_t *ba = restarts > 1 ? ws->best_assign : ws->cur_assign;
    memcpy(centroids, bc, k * d * sizeof(float));
    if (assign) memcpy(assign, ba, n * sizeof(uint32_t));
    if (inertia) *inertia = best;
    return LQ_OK;
}

lq_status lq_kmeans(lq_ctx *ctx, const float *x, const float *weights, size_t n, size_t d, size_t k,
                    const lq_kmeans_opts *opts, float *centroids, uint32_t *assign, double *inertia)
{
    lq_kmeans_opts o;
    if (opts)
        o = *opts;
    else
        lq_kmeans_opts_init(&o);
    if (!x || !centroids || n == 0 || d == 0 || k == 0 || k > n) return LQ_ERR_INVALID_ARG;
    if (n > UINT32_MAX || k > UINT32_MAX) return LQ_ERR_INVALID_ARG;
    if (o.max_iter == 0 || o.restarts == 0 || !(o.tol >= 0) || o.tol > 1e300 ||
        (unsigned)o.init > LQ_KMEANS_GIVEN || (o.init == LQ_KMEANS_GIVEN && o.restarts != 1))
        return LQ_ERR_INVALID_ARG;
    size_t nd, kd;
    if (!lq_mul_ok(n, d, &nd) || !lq_mul_ok(k, d, &kd)) return LQ_ERR_INVALID_ARG;
    lq_status rst = lq_check_range(x, nd, LQ_MAX_ABS_WEIGHT);
    if (rst != LQ_OK) return rst;
    if (o.init == LQ_KMEANS_GIVEN && !lq_all_finite(centroids, kd)) return LQ_ERR_NOT_FINITE;
    if (weights) {
        if (!lq_all_finite(weights, n)) return LQ_ERR_NOT_FINITE;
        double tot = 0;
        for (size_t i = 0; i < n; i++) {
            if (weights[i] < 0) return LQ_ERR_INVALID_ARG;
            tot += weights[i];
        }
        if (!(tot > 0)) return LQ_ERR_INVALID_ARG;
    }
    if (o.coord_weights) {
        if (!lq_all_finite(o.coord_weights, nd)) return LQ_ERR_NOT_FINITE;
        for (size_t i = 0; i < nd; i++)
            if (o.coord_weights[i] < 0) return LQ_ERR_INVALID_ARG;
    }
    lq_ctx *c = lq_ctx_resolve(ctx);
    if (!c) return LQ_ERR_NO_MEMORY;
    size_t bytes = lq_kmeans_ws_bytes(n, d, k, o.restarts);
    if (!bytes) return LQ_ERR_INVALID_ARG;
    void *mem = lq_alloc(c, bytes);
    if (!mem) return LQ_ERR_NO_MEMORY;
    lq_kmeans_ws ws;
    lq_kmeans_ws_init(&ws, mem, n, d, k, o.restarts);
    /* Work on a private copy of the result until success. */
    float *cent_out = ws.best_cent; /* free when restarts == 1 */
    float *tmp_cent = NULL;
    if (o.restarts > 1) {
        tmp_cent = lq_alloc_array(c, kd, sizeof(float));
        if (!tmp_cent) {
            lq_free(c, mem);
            return LQ_ERR_NO_MEMORY;
        }
        cent_out = tmp_cent;
    }
    if (o.init == LQ_KMEANS_GIVEN) memcpy(cent_out, centroids, kd * sizeof(float));
    double in = 0;
    lq_status st = lq_kmeans_core(c, lq_simd_for(c), x, weights, n, d, k, &o, lq_ctx_seed(c), 0, 1,
                                  &ws, cent_out, NULL, &in);
    if (st == LQ_OK) {
        memcpy(centroids, cent_out, kd * sizeof(float));
        if (assign)
            memcpy(assign, o.restarts > 1 ? ws.best_assign : ws.cur_assign, n * sizeof(uint32_t));
        if (inertia) *inertia = in;
    }
    lq_free(c, tmp_cent);
    lq_free(c, mem);
    return st;
}
