/*
 * Beam-search encoding of additive codes (AQLM, Egiazarian et al. 2024,
 * section 3.2), exact and incremental.
 *
 * For one row with scale s, e = w_hat - w and rho = e H (a row vector). If
 * the code of codebook m in group j changes from c_old to c_k, w_hat changes
 * by delta = s (c_k - c_old) on the columns of group j and the objective
 * f = e H e^T becomes
 *   f + 2 delta . rho_j + delta^T H_jj delta
 *   = [f - s c_old . (2 rho_j - s H_jj c_old)] + s (s n_jk + 2 c_k . u),
 * u = rho_j - s H_jj c_old, n_jk = c_k^T H_jj c_k (precomputed for every
 * group and code vector). So one position costs one K x g product per beam
 * hypothesis plus table look-ups. rho changes by delta H[group j rows, :]
 * when a code changes; that update is applied lazily: hypotheses carry their
 * changes inside a block of columns (about 128) and rho of the block start;
 * rho_j inside the block is rebuilt from the block's diagonal H blocks, and
 * at the block end one small GEMM (beam x 128 times 128 x remaining columns)
 * brings every surviving hypothesis's rho up to date. Total cost per row and
 * sweep: about beam * cols^2 / 2 multiply-adds for the updates and
 * cols/g * M * beam * K * g for the scores.
 *
 * With H NULL the groups are independent: each group gets its own beam and
 * the best hypothesis is committed before the next group (FAISS's
 * ResidualQuantizer beam search when starting empty).
 */
#include <math.h>
#include <string.h>

#include "mcq/aq_internal.h"

#define AQ_MAX_BEAM 256
#define AQ_BLOCK_COLS 128

typedef struct cand {
    double score;
    uint64_t hash;
    uint32_t h, k;
} cand;

static uint64_t zhash(size_t pos, size_t code)
{
    uint64_t z = ((uint64_t)pos << 17) ^ (uint64_t)code ^ 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Keep the `cap` best distinct candidates, sorted ascending; ties keep the
 * earlier one (scan order is fixed, so the result is deterministic). */
static void cand_insert(cand *cs, size_t *n, size_t cap, double score, uint64_t hash, uint32_t h,
                        uint32_t k)
{
    size_t cnt = *n;
    if (cnt == cap && !(score < cs[cnt - 1].score)) return;
    for (size_t q = 0; q < cnt; q++)
        if (cs[q].hash == hash) {
            if (cs[q].score <= score) return;
            memmove(cs + q, cs + q + 1, (cnt - q - 1) * sizeof *cs);
            cnt--;
            break;
        }
    size_t q = cnt < cap ? cnt : cap - 1;
    while (q > 0 && cs[q - 1].score > score) {
        cs[q] = cs[q - 1];
        q--;
    }
    cs[q] = (cand){score, hash, h, k};
    *n = cnt < cap ? cnt + 1 : cap;
}

/* Float threshold at or above x (a margin of 2^-20 relative): the prefilter
 * below may let a few extra candidates through, never drop one the exact
 * double comparison would keep. */
static float lim_above(double x)
{
    float f = (float)x;
    return f + fabsf(f) * 0x1p-20f + 0x1p-126f;
}

/* Offer the K candidates of one hypothesis (scores sc relative to base).
 * Until the beam is full every candidate goes in; then the kernel lists the
 * codes under the current threshold (a superset of those the exact double
 * comparison keeps, as the threshold only falls) and only those are looked at.
 * idx: K scratch. */
static void offer(const aq_kernels *kr, cand *cs, size_t *nc, size_t beam, const float *sc,
                  size_t K, double base, uint64_t hh, size_t pos, uint32_t h, uint32_t *idx)
{
    size_t n = *nc, k = 0;
    for (; k < K && n < beam; k++)
        cand_insert(cs, &n, beam, base + (double)sc[k], hh ^ zhash(pos, k), h, (uint32_t)k);
    if (k == K) {
        *nc = n;
        return;
    }
    size_t cnt = kr->below(sc + k, K - k, lim_above(cs[n - 1].score - base), idx);
    for (size_t q = 0; q < cnt; q++) {
        size_t kk = k + idx[q];
        double v = base + (double)sc[kk];
        if (v < cs[n - 1].score) cand_insert(cs, &n, beam, v, hh ^ zhash(pos, kk), h, (uint32_t)kk);
    }
    *nc = n;
}

typedef struct enc_job {
    lq_ctx *ctx;
    const aq_kernels *kr;
    const float *W, *H, *C, *Ct, *nrm, *scales;
    const lq_aq_params *p;
    size_t rows, cols, K, ng, M, g, beam, NB;
    const uint16_t *start; /* NULL: empty start */
    uint16_t *out;
    double *f;
    volatile int failed;
} enc_job;

/* Per-task workspace (one allocation). */
typedef struct enc_ws {
    float *E, *Y;           /* AQ_TILE x cols */
    float *R0, *R0n;        /* beam x cols: rho at block start */
    uint16_t *full, *fulln; /* beam x ng*M: codes at block start */
    double *f[2];
    uint64_t *hash[2];
    uint32_t *p0[2];
    float *delta[2]; /* beam x NB*g (general H) or beam x g (e, MSE) */
    uint16_t *bc[2]; /* beam x NB*M */
    cand *cs;
    float *sc;     /* K */
    uint32_t *idx; /* K */
    double *f0;    /* AQ_TILE */
} enc_ws;

/* Carve the next 64-byte aligned piece; with base == NULL only the size is
 * computed (no pointer arithmetic on NULL). */
static void *ws_take(char *base, size_t *off, size_t bytes)
{
    void *p = base ? base + *off : NULL;
    *off += (bytes + 63) & ~(size_t)63;
    return p;
}

static size_t ws_layout(const enc_job *j, char *base, enc_ws *w)
{
    size_t B = j->beam, cols = j->cols, nbg = j->NB * j->g;
    size_t off = 0;
    int h = j->H != NULL;
    w->E = ws_take(base, &off, AQ_TILE * cols * sizeof(float));
    w->Y = ws_take(base, &off, AQ_TILE * cols * sizeof(float));
    w->R0 = ws_take(base, &off, h ? B * cols * sizeof(float) : 0);
    w->R0n = ws_take(base, &off, h ? B * cols * sizeof(float) : 0);
    w->full = ws_take(base, &off, h ? B * j->ng * j->M * sizeof(uint16_t) : 0);
    w->fulln = ws_take(base, &off, h ? B * j->ng * j->M * sizeof(uint16_t) : 0);
    for (int s = 0; s < 2; s++) {
        w->f[s] = ws_take(base, &off, B * sizeof(double));
        w->hash[s] = ws_take(base, &off, B * sizeof(uint64_t));
        w->p0[s] = ws_take(base, &off, B * sizeof(uint32_t));
        w->delta[s] = ws_take(base, &off, B * (h ? nbg : j->g) * sizeof(float));
        w->bc[s] = ws_take(base, &off, B * j->NB * j->M * sizeof(uint16_t));
    }
    w->cs = ws_take(base, &off, B * sizeof(cand));
    w->sc = ws_take(base, &off, j->K * sizeof(float));
    w->idx = ws_take(base, &off, j->K * sizeof(uint32_t));
    w->f0 = ws_take(base, &off, AQ_TILE * sizeof(double));
    return off;
}

/* General H: beam over all positions of row i. rho0 = e H of the start,
 * f0 its objective. Writes the best codes to out. */
static void encode_row_h(const enc_job *j, enc_ws *w, size_t i, const float *rho0, double f0)
{
    const size_t cols = j->cols, g = j->g, M = j->M, K = j->K, ng = j->ng, NB = j->NB;
    const size_t nbg = NB * g, rowcodes = ng * M;
    const float *H = j->H, *C = j->C;
    const float s = j->scales ? j->scales[i] : 1.0f;
    const uint16_t *start = j->start ? j->start + i * rowcodes : NULL;
    size_t nh = 1;
    int cur = 0;
    memcpy(w->R0, rho0, cols * sizeof(float));
    if (start)
        memcpy(w->full, start, rowcodes * sizeof(uint16_t));
    else
        memset(w->full, 0, rowcodes * sizeof(uint16_t));
    w->f[0][0] = f0;
    w->hash[0][0] = 0;
    w->p0[0][0] = 0;
    for (size_t jb = 0; jb < ng; jb += NB) {
        size_t je = jb + NB < ng ? jb + NB : ng, nbj = je - jb;
        for (size_t h = 0; h < nh; h++) {
            memset(w->delta[cur] + h * nbg, 0, nbg * sizeof(float));
            memcpy(w->bc[cur] + h * NB * M, w->full + (size_t)w->p0[cur][h] * rowcodes + jb * M,
                   nbj * M * sizeof(uint16_t));
        }
        for (size_t jj = jb; jj < je; jj++) {
            size_t jl = jj - jb;
            for (size_t m = 0; m < M; m++) {
                size_t pos = jj * M + m, nc = 0;
                const float *Ctm = j->Ct + m * g * K, *nrm = j->nrm + (jj * M + m) * K;
                for (size_t h = 0; h < nh; h++) {
                    float rho[64], u[64], hc[64];
                    const float *r0 = w->R0 + (size_t)w->p0[cur][h] * cols + jj * g;
                    const float *dh = w->delta[cur] + h * nbg;
                    for (size_t a = 0; a < g; a++) rho[a] = r0[a];
                    for (size_t jp = jb; jp <= jj; jp++)
                        for (size_t b = 0; b < g; b++) {
                            float d = dh[(jp - jb) * g + b];
                            if (d == 0.0f) continue;
                            const float *hr = H + (jp * g + b) * cols + jj * g;
                            for (size_t a = 0; a < g; a++) rho[a] += d * hr[a];
                        }
                    double base = w->f[cur][h];
                    uint64_t hh = w->hash[cur][h];
                    if (start) {
                        size_t old = w->bc[cur][h * NB * M + jl * M + m];
                        const float *co = C + (m * K + old) * g;
                        double t = 0.0;
                        for (size_t a = 0; a < g; a++) {
                            float v = 0.0f;
                            for (size_t b = 0; b < g; b++)
                                v += co[b] * H[(jj * g + b) * cols + jj * g + a];
                            hc[a] = v;
                            u[a] = rho[a] - s * v;
                            t += (double)co[a] * (2.0 * rho[a] - (double)s * v);
                        }
                        base -= (double)s * t;
                        hh ^= zhash(pos, old);
                    } else {
                        for (size_t a = 0; a < g; a++) u[a] = rho[a];
                    }
                    (void)hc;
                    j->kr->scores(Ctm, K, g, u, nrm, s, w->sc);
                    offer(j->kr, w->cs, &nc, j->beam, w->sc, K, base, hh, pos, (uint32_t)h, w->idx);
                }
                int nx = cur ^ 1;
                for (size_t q = 0; q < nc; q++) {
                    size_t h = w->cs[q].h, k = w->cs[q].k;
                    w->f[nx][q] = w->cs[q].score;
                    w->hash[nx][q] = w->cs[q].hash;
                    w->p0[nx][q] = w->p0[cur][h];
                    float *dq = w->delta[nx] + q * nbg;
                    /* rows are zero past the current group: copy the whole block */
                    memcpy(dq, w->delta[cur] + h * nbg, nbj * g * sizeof(float));
                    uint16_t *bq = w->bc[nx] + q * NB * M;
                    memcpy(bq, w->bc[cur] + h * NB * M, nbj * M * sizeof(uint16_t));
                    const float *cn = C + (m * K + k) * g;
                    if (start) {
                        const float *co = C + (m * K + bq[jl * M + m]) * g;
                        for (size_t a = 0; a < g; a++) dq[jl * g + a] += s * (cn[a] - co[a]);
                    } else {
                        for (size_t a = 0; a < g; a++) dq[jl * g + a] += s * cn[a];
                    }
                    bq[jl * M + m] = (uint16_t)k;
                }
                cur = nx;
                nh = nc;
            }
        }
        /* block end: bring rho of every survivor past the block, fix codes */
        size_t c0 = je * g;
        for (size_t h = 0; h < nh; h++) {
            size_t par = w->p0[cur][h];
            if (c0 < cols)
                memcpy(w->R0n + h * cols + c0, w->R0 + par * cols + c0,
                       (cols - c0) * sizeof(float));
            uint16_t *fh = w->fulln + h * rowcodes;
            memcpy(fh, w->full + par * rowcodes, rowcodes * sizeof(uint16_t));
            memcpy(fh + jb * M, w->bc[cur] + h * NB * M, nbj * M * sizeof(uint16_t));
            w->p0[cur][h] = (uint32_t)h;
        }
        if (c0 < cols)
            j->kr->gemm_acc(nh, cols - c0, nbj * g, w->delta[cur], nbg, H + jb * g * cols + c0,
                            cols, w->R0n + c0, cols);
        float *tr = w->R0;
        w->R0 = w->R0n;
        w->R0n = tr;
        uint16_t *tc = w->full;
        w->full = w->fulln;
        w->fulln = tc;
    }
    size_t best = 0;
    for (size_t h = 1; h < nh; h++)
        if (w->f[cur][h] < w->f[cur][best]) best = h;
    memcpy(j->out + i * rowcodes, w->full + best * rowcodes, rowcodes * sizeof(uint16_t));
}

/* H NULL: one beam per group. e0: the row's start error (ld cols). */
static void encode_row_mse(const enc_job *j, enc_ws *w, size_t i, const float *e0)
{
    const size_t g = j->g, M = j->M, K = j->K, ng = j->ng, rowcodes = ng * M;
    const float *C = j->C;
    const float s = j->scales ? j->scales[i] : 1.0f;
    const uint16_t *start = j->start ? j->start + i * rowcodes : NULL;
    uint16_t *out = j->out + i * rowcodes;
    for (size_t jj = 0; jj < ng; jj++) {
        int cur = 0;
        size_t nh = 1;
        double f = 0.0;
        for (size_t a = 0; a < g; a++) {
            w->delta[0][a] = e0[jj * g + a];
            f += (double)e0[jj * g + a] * e0[jj * g + a];
        }
        w->f[0][0] = f;
        w->hash[0][0] = 0;
        if (start)
            memcpy(w->bc[0], start + jj * M, M * sizeof(uint16_t));
        else
            memset(w->bc[0], 0, M * sizeof(uint16_t));
        for (size_t m = 0; m < M; m++) {
            size_t nc = 0;
            const float *Ctm = j->Ct + m * g * K, *nrm = j->nrm + m * K;
            for (size_t h = 0; h < nh; h++) {
                const float *e = w->delta[cur] + h * g;
                float u[64];
                double base = w->f[cur][h];
                uint64_t hh = w->hash[cur][h];
                if (start) {
                    size_t old = w->bc[cur][h * M + m];
                    const float *co = C + (m * K + old) * g;
                    double t = 0.0;
                    for (size_t a = 0; a < g; a++) {
                        u[a] = e[a] - s * co[a];
                        t += (double)co[a] * (2.0 * e[a] - (double)s * co[a]);
                    }
                    base -= (double)s * t;
                    hh ^= zhash(m, old);
                } else {
                    for (size_t a = 0; a < g; a++) u[a] = e[a];
                }
                j->kr->scores(Ctm, K, g, u, nrm, s, w->sc);
                offer(j->kr, w->cs, &nc, j->beam, w->sc, K, base, hh, m, (uint32_t)h, w->idx);
            }
            int nx = cur ^ 1;
            for (size_t q = 0; q < nc; q++) {
                size_t h = w->cs[q].h, k = w->cs[q].k;
                w->f[nx][q] = w->cs[q].score;
                w->hash[nx][q] = w->cs[q].hash;
                float *eq = w->delta[nx] + q * g;
                const float *eh = w->delta[cur] + h * g;
                uint16_t *bq = w->bc[nx] + q * M;
                memcpy(bq, w->bc[cur] + h * M, M * sizeof(uint16_t));
                const float *cn = C + (m * K + k) * g;
                if (start) {
                    const float *co = C + (m * K + bq[m]) * g;
                    for (size_t a = 0; a < g; a++) eq[a] = eh[a] + s * (cn[a] - co[a]);
                } else {
                    for (size_t a = 0; a < g; a++) eq[a] = eh[a] + s * cn[a];
                }
                bq[m] = (uint16_t)k;
            }
            cur = nx;
            nh = nc;
        }
        size_t best = 0;
        for (size_t h = 1; h < nh; h++)
            if (w->f[cur][h] < w->f[cur][best]) best = h;
        memcpy(out + jj * M, w->bc[cur] + best * M, M * sizeof(uint16_t));
    }
}

static void enc_task(void *arg, size_t t)
{
    enc_job *j = arg;
    enc_ws w;
    size_t bytes = ws_layout(j, NULL, &w);
    char *mem = lq_alloc(j->ctx, bytes);
    if (!mem) {
        j->failed = 1;
        return;
    }
    ws_layout(j, mem, &w);
    size_t r0 = t * AQ_TILE, r1 = r0 + AQ_TILE, cols = j->cols;
    if (r1 > j->rows) r1 = j->rows;
    size_t T = r1 - r0;
    /* start: E = decode - W (or -W), Y = E H, f0 */
    lq_status st = LQ_OK;
    if (j->start) {
        st = aq_tile_objective(j->ctx, j->W, cols, j->H, j->p, j->C, j->start, j->scales, r0, r1,
                               w.E, w.Y, j->f);
    } else {
        for (size_t q = 0; q < T * cols; q++) w.E[q] = -j->W[r0 * cols + q];
        if (j->H) st = aq_times_h(j->ctx, T, cols, w.E, j->H, w.Y);
        for (size_t q = 0; q < T; q++) {
            const float *e = w.E + q * cols, *y = j->H ? w.Y + q * cols : e;
            double s = 0.0;
            for (size_t c = 0; c < cols; c++) s += (double)e[c] * y[c];
            j->f[r0 + q] = s;
        }
    }
    if (st != LQ_OK) {
        j->failed = 1;
        lq_free(j->ctx, mem);
        return;
    }
    for (size_t q = 0; q < T; q++) w.f0[q] = j->f[r0 + q];
    for (size_t q = 0; q < T; q++) {
        if (j->H)
            encode_row_h(j, &w, r0 + q, w.Y + q * cols, w.f0[q]);
        else
            encode_row_mse(j, &w, r0 + q, w.E + q * cols);
    }
    /* exact objective of the result; a warm row never gets worse */
    if (aq_tile_objective(j->ctx, j->W, cols, j->H, j->p, j->C, j->out, j->scales, r0, r1, w.E, w.Y,
                          j->f) != LQ_OK) {
        j->failed = 1;
        lq_free(j->ctx, mem);
        return;
    }
    if (j->start) {
        size_t rc = j->ng * j->M;
        for (size_t q = 0; q < T; q++)
            if (!(j->f[r0 + q] <= w.f0[q])) {
                memcpy(j->out + (r0 + q) * rc, j->start + (r0 + q) * rc, rc * sizeof(uint16_t));
                j->f[r0 + q] = w.f0[q];
            }
    }
    lq_free(j->ctx, mem);
}

typedef struct nrm_job {
    const float *H, *C;
    size_t cols, g, M, K, ng;
    float *nrm;
} nrm_job;

static void nrm_task(void *arg, size_t jj)
{
    nrm_job *j = arg;
    size_t g = j->g;
    float Hjj[64 * 64];
    for (size_t a = 0; a < g; a++)
        for (size_t b = 0; b < g; b++) Hjj[a * g + b] = j->H[(jj * g + a) * j->cols + jj * g + b];
    for (size_t mk = 0; mk < j->M * j->K; mk++) {
        const float *c = j->C + mk * g;
        double s = 0.0;
        for (size_t a = 0; a < g; a++) {
            double t = 0.0;
            for (size_t b = 0; b < g; b++) t += (double)Hjj[a * g + b] * c[b];
            s += t * c[a];
        }
        j->nrm[jj * j->M * j->K + mk] = (float)s;
    }
}

lq_status lq_aq_encode(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                       const lq_aq_params *p, const float *codebooks, const float *scales,
                       unsigned beam, int warm, uint16_t *codes, double *objective)
{
    size_t K, ng;
    if (!W || !codebooks || !codes) return LQ_ERR_INVALID_ARG;
    lq_status st = aq_check_params(p, rows, cols, &K, &ng);
    if (st != LQ_OK) return st;
    if (beam < 1 || beam > AQ_MAX_BEAM || (warm != 0 && warm != 1)) return LQ_ERR_INVALID_ARG;
    size_t M = p->n_codebooks, g = p->group, ncodes = rows * ng * M;
    if (warm && !aq_codes_in_range(codes, ncodes, K)) return LQ_ERR_INVALID_ARG;
    lq_status rst = aq_check_inputs(W, rows, cols, H);
    if (rst != LQ_OK) return rst;
    if (!lq_all_finite(codebooks, M * K * g) || (scales && !lq_all_finite(scales, rows)))
        return LQ_ERR_NOT_FINITE;
    if (!lq_ctx_resolve(ctx)) return LQ_ERR_NO_MEMORY;

    size_t nrm_len = H ? ng * M * K : M * K;
    float *Ct = lq_alloc_array(ctx, M * K * g, sizeof(float));
    float *nrm = lq_alloc_array(ctx, nrm_len, sizeof(float));
    uint16_t *out = lq_alloc_array(ctx, ncodes, sizeof(uint16_t));
    double *f = lq_alloc_array(ctx, rows, sizeof(double));
    if (!Ct || !nrm || !out || !f) {
        st = LQ_ERR_NO_MEMORY;
        goto done;
    }
    for (size_t m = 0; m < M; m++)
        for (size_t k = 0; k < K; k++)
            for (size_t a = 0; a < g; a++) Ct[(m * g + a) * K + k] = codebooks[(m * K + k) * g + a];
    if (H) {
        nrm_job nj = {H, codebooks, cols, g, M, K, ng, nrm};
        lq_parallel_for(ctx, ng, nrm_task, &nj);
    } else {
        for (size_t mk = 0; mk < M * K; mk++) {
            double s = 0.0;
            for (size_t a = 0; a < g; a++)
                s += (double)codebooks[mk * g + a] * codebooks[mk * g + a];
            nrm[mk] = (float)s;
        }
    }
    size_t NB = AQ_BLOCK_COLS / g;
    if (NB < 1) NB = 1;
    if (NB > ng) NB = ng;
    enc_job j = {ctx,       aq_kernels_for(lq_simd_for(ctx)),
                 W,         H,
                 codebooks, Ct,
                 nrm,       scales,
                 p,         rows,
                 cols,      K,
                 ng,        M,
                 g,         beam,
                 NB,        warm ? codes : NULL,
                 out,       f,
                 0};
    lq_parallel_for(ctx, lq_chunks(rows, AQ_TILE), enc_task, &j);
    if (j.failed) {
        st = LQ_ERR_NO_MEMORY;
        goto done;
    }
    memcpy(codes, out, ncodes * sizeof(uint16_t));
    if (objective) *objective = aq_sum(f, rows);
done:
    lq_free(ctx, Ct);
    lq_free(ctx, nrm);
    lq_free(ctx, out);
    lq_free(ctx, f);
    return st;
}
