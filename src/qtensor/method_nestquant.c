/*
 * LQ_METHOD_NESTQUANT: E8 Voronoi codes with K betas (src/lattice/) driven
 * by the Hessian engine with width 8 (GPTQ-style updates), or round to
 * nearest (engine.rtn or H == NULL), packed as LQ_FORMAT_E8.
 *
 * Steps: pad W to n8 = roundup(cols, 8) columns with zeros; with hadamard,
 * rotate every row by R (W' = [W 0] R^T) and the Hessian to R H_pad R^T
 * (without it the padded columns have H_jj = 0: dead, zero); fit the betas on
 * the row/group-normalised W' (lq_nq_coder_fit); run the engine, whose
 * fit_group sets each (row, group) scale to the RMS of the current weights
 * and whose quantize step codes the 8 columns of every row at once with the
 * coder under the selection rule o->select (FIRST: smallest non-overloading
 * beta; BEST; EXHAUSTIVE; shrink fallback counted in report->overloads).
 * Betas: o->betas when given, else fitted under the same rule.
 * Codebook E8P (o->codebook): the same padding, rotation and engine; each
 * (row, group) scale is RMS * alpha with alpha fitted per layer on the
 * sample (golden section), the step codes every row's 8 columns with the
 * exact nearest E8P codeword, packed as LQ_FORMAT_E8P. W_hat is the dequantized stored tensor
 * (rotation undone, padding dropped), and the report's proxy loss is computed against the caller's
 * W and H in the original basis.
 */
#include <math.h>
#include <string.h>

#include "lattice/lattice_internal.h"
#include "qtensor/qtensor_internal.h"
#include "qtensor/format_e8.h"
#include "qtensor/format_e8p.h"
#include "quant/hessian.h"

extern const lq_format_traits lq_format_e8_traits;
extern const lq_format_traits lq_format_e8p_traits;

#define FIT_SAMPLES 8192
#define SEED_MIX 0x4E65737451756E74ull /* "NestQunt" */

typedef struct nq_cq {
    const lq_lattice_kernels *k;
    lq_nq_coder coder;
    size_t rows, n8, nblk, group, ngroups;
    float *scales;  /* rows x ngroups */
    uint8_t *codes; /* rows x n8, one code per entry */
    uint8_t *bidx;  /* rows x nblk */
    float *xb, *yb; /* rows x 8 */
    uint8_t *cb, *bb;
    size_t overloads;
    int e8p; /* codebook E8P: codes in ecodes, scales = RMS * alpha */
    float alpha;
    uint16_t *ecodes; /* rows x nblk */
} nq_cq;

static lq_status nq_fit_group(void *self, const float *W, size_t ldw, size_t rows, size_t col0,
                              size_t ncols, const float *hinv_diag)
{
    nq_cq *s = self;
    (void)hinv_diag;
    size_t g = col0 / s->group;
    for (size_t r = 0; r < rows; r++) {
        const float *w = W + r * ldw + col0;
        double ss = 0;
        for (size_t j = 0; j < ncols; j++) ss += (double)w[j] * w[j];
        float sc = (float)sqrt(ss / (double)ncols);
        if (!(sc > 0.0f) || !isfinite(sc)) sc = 1.0f;
        if (s->e8p) sc = sc * s->alpha;
        s->scales[r * s->ngroups + g] = sc;
    }
    return LQ_OK;
}

/* E8P step: the exact nearest codeword of w / scale per row. */
static void e8p_quantize(nq_cq *s, const float *w, size_t ldw, size_t rows, size_t col, float *q,
                         size_t ldq)
{
    size_t g = col / s->group;
    for (size_t r = 0; r < rows; r++) {
        float sc = s->scales[r * s->ngroups + g], y[8];
        double u[8];
        for (int i = 0; i < 8; i++) u[i] = (double)(w[r * ldw + i] / sc);
        uint16_t code = lq_e8p_nearest_code(u, 256);
        lq_e8p_point(code, y);
        for (int i = 0; i < 8; i++) q[r * ldq + i] = sc * y[i];
        s->ecodes[r * s->nblk + col / 8] = code;
    }
}

static lq_status nq_quantize(void *self, const float *w, size_t ldw, size_t rows, size_t col,
                             const float *u_block, float *q, size_t ldq)
{
    nq_cq *s = self;
    (void)u_block;
    if (s->e8p) {
        e8p_quantize(s, w, ldw, rows, col, q, ldq);
        return LQ_OK;
    }
    size_t g = col / s->group;
    for (size_t r = 0; r < rows; r++) {
        float sc = s->scales[r * s->ngroups + g];
        for (int i = 0; i < 8; i++) s->xb[8 * r + i] = w[r * ldw + i] / sc;
    }
    size_t nov = 0;
    lq_nq_encode_k(s->k, &s->coder, s->xb, rows, s->cb, s->bb, s->yb, &nov);
    s->overloads += nov;
    for (size_t r = 0; r < rows; r++) {
        float sc = s->scales[r * s->ngroups + g];
        for (int i = 0; i < 8; i++) q[r * ldq + i] = sc * s->yb[8 * r + i];
        memcpy(s->codes + r * s->n8 + col, s->cb + 8 * r, 8);
        s->bidx[r * s->nblk + col / 8] = s->bb[r];
    }
    return LQ_OK;
}

/* Rotate the Hessian: H' = R H R^T (n x n, symmetric). */
static lq_status rotate_hessian(lq_ctx *ctx, float *H, size_t n, uint64_t seed)
{
    lq_status st = lq_rht_rows(ctx, H, n, n, n, seed, 0); /* H R^T */
    if (st != LQ_OK) return st;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            float a = H[i * n + j];
            H[i * n + j] = H[j * n + i];
            H[j * n + i] = a;
        }
    st = lq_rht_rows(ctx, H, n, n, n, seed, 0); /* R H R^T */
    if (st != LQ_OK) return st;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            float a = 0.5f * (H[i * n + j] + H[j * n + i]);
            H[i * n + j] = a;
            H[j * n + i] = a;
        }
    return LQ_OK;
}

/* An evenly strided sample of m normalised 8-vectors of Wp (group RMS). */
static float *sample_vectors(lq_ctx *ctx, const float *Wp, size_t rows, size_t n8, size_t group,
                             size_t *m_out)
{
    size_t nblk = n8 / 8, nvec = rows * nblk;
    size_t m = nvec < FIT_SAMPLES ? nvec : FIT_SAMPLES;
    float *xs = lq_alloc_array(ctx, m * 8, sizeof(float));
    if (!xs) return NULL;
    for (size_t i = 0; i < m; i++) {
        size_t v = (size_t)((double)i * (double)nvec / (double)m);
        size_t r = v / nblk, col = 8 * (v % nblk);
        size_t g0 = col / group * group, g1 = g0 + group < n8 ? g0 + group : n8;
        const float *w = Wp + r * n8;
        double ss = 0;
        for (size_t j = g0; j < g1; j++) ss += (double)w[j] * w[j];
        float sc = (float)sqrt(ss / (double)(g1 - g0));
        if (!(sc > 0.0f) || !isfinite(sc)) sc = 1.0f;
        for (int d = 0; d < 8; d++) xs[8 * i + d] = w[col + d] / sc;
    }
    *m_out = m;
    return xs;
}

/* Fit the betas on the sample. */
static lq_status fit_betas(lq_ctx *ctx, const float *Wp, size_t rows, size_t n8, size_t group,
                           lq_nq_coder *c)
{
    size_t m;
    float *xs = sample_vectors(ctx, Wp, rows, n8, group, &m);
    if (!xs) return LQ_ERR_NO_MEMORY;
    lq_status st = lq_nq_coder_fit(ctx, c, xs, m);
    lq_free(ctx, xs);
    return st;
}

/* E8P: squared error of the sample at scale factor a (first E8P_FIT of it). */
#define E8P_FIT 4096
static double e8p_sample_err(const float *xs, size_t m, double a)
{
    double e = 0;
    for (size_t i = 0; i < m; i++) {
        double u[8];
        float y[8];
        for (int d = 0; d < 8; d++) u[d] = xs[8 * i + d] / a;
        lq_e8p_point(lq_e8p_nearest_code(u, 256), y);
        for (int d = 0; d < 8; d++) {
            double r = a * y[d] - xs[8 * i + d];
            e += r * r;
        }
    }
    return e;
}

/* E8P scale factor: golden-section search of a in [0.5, 1.6] (unit-RMS
 * Gaussian data: 0.96) on up to E8P_FIT sampled vectors, rounded to float. */
static lq_status fit_alpha(lq_ctx *ctx, const float *Wp, size_t rows, size_t n8, size_t group,
                           float *alpha)
{
    size_t m;
    float *xs = sample_vectors(ctx, Wp, rows, n8, group, &m);
    if (!xs) return LQ_ERR_NO_MEMORY;
    if (m > E8P_FIT) { /* evenly strided again */
        for (size_t i = 0; i < E8P_FIT; i++)
            memmove(xs + 8 * i, xs + 8 * (size_t)((double)i * (double)m / E8P_FIT),
                    8 * sizeof(float));
        m = E8P_FIT;
    }
    const double gr = 0.6180339887498949;
    double lo = 0.5, hi = 1.6;
    double a = hi - gr * (hi - lo), b = lo + gr * (hi - lo);
    double ea = e8p_sample_err(xs, m, a), eb = e8p_sample_err(xs, m, b);
    for (int it = 0; it < 22; it++) {
        if (ea < eb) {
            hi = b;
            b = a;
            eb = ea;
            a = hi - gr * (hi - lo);
            ea = e8p_sample_err(xs, m, a);
        } else {
            lo = a;
            a = b;
            ea = eb;
            b = lo + gr * (hi - lo);
            eb = e8p_sample_err(xs, m, b);
        }
    }
    *alpha = (float)(0.5 * (lo + hi));
    lq_free(ctx, xs);
    return LQ_OK;
}

static lq_status pack_e8p(lq_ctx *ctx, const nq_cq *s, size_t cols, int hadamard, uint64_t seed,
                          lq_qtensor **out)
{
    size_t rows = s->rows, nvec = rows * s->nblk;
    lq_qtensor *t;
    lq_e8p_layout L;
    lq_status st = lq_e8p_layout_write(ctx, rows, cols, s->group, (unsigned)hadamard, seed, &t, &L);
    if (st != LQ_OK) return st;
    memcpy((uint16_t *)(uintptr_t)L.codes, s->ecodes, nvec * sizeof(uint16_t));
    memcpy((float *)(uintptr_t)L.scales, s->scales, rows * L.ngroups * sizeof(float));
    *out = t;
    return LQ_OK;
}

static lq_status pack_e8(lq_ctx *ctx, const nq_cq *s, size_t cols, int hadamard, uint64_t seed,
                         lq_qtensor **out)
{
    lq_e8_params prm = {s->coder.q, s->coder.n_betas, s->group, (unsigned)hadamard,
                        seed,       s->coder.betas};
    lq_e8_layout L;
    lq_qtensor *t;
    lq_status st = lq_e8_layout_write(ctx, s->rows, cols, &prm, &t, &L);
    if (st != LQ_OK) return st;
    uint8_t *codes = (uint8_t *)(uintptr_t)L.codes, *bid = (uint8_t *)(uintptr_t)L.bidx;
    size_t nvec = L.rows * L.nblk;
    for (size_t v = 0; v < nvec; v++) {
        size_t r = v / L.nblk, j = v % L.nblk;
        lq_bits_put(codes, v * L.cbits, L.cbits,
                    lq_voronoi_index(L.q, s->codes + r * s->n8 + 8 * j));
        if (bid) lq_bits_put(bid, v * L.ibits, L.ibits, s->bidx[v]);
    }
    memcpy((float *)(uintptr_t)L.scales, s->scales, L.rows * L.ngroups * sizeof(float));
    *out = t;
    return LQ_OK;
}

lq_status lq_quantize_nestquant(lq_ctx *ctx, const float *W, size_t rows, size_t cols,
                                const float *H, const lq_method *m, lq_qtensor **out, float *W_hat,
                                lq_quant_report *rep)
{
    const lq_nestquant_opts *o = &m->u.nestquant;
    if (o->q < 2 || o->q > LQ_VORONOI_Q_MAX || o->n_betas < 1 || o->n_betas > LQ_NQ_MAX_BETAS ||
        o->group % 8 != 0 || (o->hadamard != 0 && o->hadamard != 1) ||
        o->select > LQ_NQ_SELECT_EXHAUSTIVE || o->codebook > LQ_NQ_CODEBOOK_E8P)
        return LQ_ERR_INVALID_ARG;
    if (m->engine.act_order) return LQ_ERR_INVALID_ARG; /* width 8: the engine refuses it */
    if (cols > SIZE_MAX - 7) return LQ_ERR_INVALID_ARG;
    size_t n8 = (cols + 7) / 8 * 8, nblk = n8 / 8, tmp;
    if (n8 > UINT32_MAX || !lq_mul_ok(rows, n8, &tmp) || !lq_mul_ok(n8, n8, &tmp) ||
        !lq_mul_ok(tmp, sizeof(float), &tmp))
        return LQ_ERR_INVALID_ARG;
    size_t group = o->group == 0 || o->group > n8 ? n8 : o->group;
    size_t ngroups = (n8 + group - 1) / group;
    int rtn = m->engine.rtn || !H;
    uint64_t seed = lq_ctx_seed(ctx) ^ SEED_MIX;

    nq_cq s;
    memset(&s, 0, sizeof s);
    s.k = lq_lattice_kernels_at(lq_simd_for(ctx));
    s.rows = rows;
    s.n8 = n8;
    s.nblk = nblk;
    s.group = group;
    s.ngroups = ngroups;
    lq_status st = lq_nq_coder_init(&s.coder, o->q, o->n_betas);
    if (st != LQ_OK) return st;
    s.coder.select = o->select;
    s.e8p = o->codebook == LQ_NQ_CODEBOOK_E8P;
    if (o->betas && !s.e8p) { /* given: used as is */
        for (unsigned k = 0; k < o->n_betas; k++) s.coder.betas[k] = o->betas[k];
        if (lq_nq_coder_check(&s.coder) != LQ_OK) return LQ_ERR_INVALID_ARG;
    }

    float *Wp = lq_calloc_array(ctx, rows * n8, sizeof(float));
    float *Hp = rtn ? NULL : lq_calloc_array(ctx, n8 * n8, sizeof(float));
    float *Wt = (W_hat || rep) ? lq_alloc_array(ctx, rows * cols, sizeof(float)) : NULL;
    s.scales = lq_alloc_array(ctx, rows * ngroups, sizeof(float));
    s.codes = lq_calloc_array(ctx, rows * n8, 1);
    s.bidx = lq_calloc_array(ctx, rows * nblk, 1);
    s.xb = lq_alloc_array(ctx, rows * 8, sizeof(float));
    s.yb = lq_alloc_array(ctx, rows * 8, sizeof(float));
    s.cb = lq_alloc_array(ctx, rows * 8, 1);
    s.bb = lq_alloc_array(ctx, rows, 1);
    s.ecodes = s.e8p ? lq_calloc_array(ctx, rows * nblk, sizeof(uint16_t)) : NULL;
    lq_qtensor *t = NULL;
    if (!Wp || (!rtn && !Hp) || ((W_hat || rep) && !Wt) || !s.scales || !s.codes || !s.bidx ||
        !s.xb || !s.yb || !s.cb || !s.bb || (s.e8p && !s.ecodes)) {
        st = LQ_ERR_NO_MEMORY;
        goto done;
    }
    for (size_t r = 0; r < rows; r++) memcpy(Wp + r * n8, W + r * cols, cols * sizeof(float));
    if (o->hadamard) {
        st = lq_rht_rows(ctx, Wp, rows, n8, n8, seed, 0);
        if (st != LQ_OK) goto done;
    }
    if (!rtn) {
        for (size_t i = 0; i < cols; i++) memcpy(Hp + i * n8, H + i * cols, cols * sizeof(float));
        if (o->hadamard) {
            st = rotate_hessian(ctx, Hp, n8, seed);
            if (st != LQ_OK) goto done;
        }
    }
    if (s.e8p)
        st = fit_alpha(ctx, Wp, rows, n8, group, &s.alpha);
    else if (!o->betas)
        st = fit_betas(ctx, Wp, rows, n8, group, &s.coder);
    if (st != LQ_OK) goto done;

    lq_colquant cq;
    memset(&cq, 0, sizeof cq);
    cq.width = 8;
    cq.group = group == n8 ? 0 : group;
    cq.fit_group = nq_fit_group;
    cq.quantize = nq_quantize;
    cq.self = &s;
    lq_engine_opts eo = m->engine;
    eo.rtn = rtn;
    lq_gptq_result res;
    memset(&res, 0, sizeof res);
    st = lq_gptq_run(ctx, Wp, rows, n8, Hp, &eo, &cq, NULL, &res);
    if (st != LQ_OK) goto done;
    st = s.e8p ? pack_e8p(ctx, &s, cols, o->hadamard, seed, &t)
               : pack_e8(ctx, &s, cols, o->hadamard, seed, &t);
    if (st != LQ_OK) goto done;
    if (Wt) {
        /* direct call: lq_dequantize would map NO_MEMORY to CORRUPT */
        st = (s.e8p ? lq_format_e8p_traits : lq_format_e8_traits)
                 .dequant_rows(t, 0, rows, Wt, lq_simd_for(ctx));
        if (st != LQ_OK) goto done;
    }
    if (rep) {
        memset(rep, 0, sizeof *rep);
        rep->damping = res.damping;
        /* without rotation the padded columns are dead by construction */
        rep->dead_columns = res.dead_columns - (o->hadamard ? 0 : n8 - cols);
        rep->overloads = s.overloads;
        st = lq_proxy_loss(ctx, W, Wt, rows, cols, H, &rep->proxy_loss);
        if (st != LQ_OK) goto done;
    }
    if (W_hat) memcpy(W_hat, Wt, rows * cols * sizeof(float));
    *out = t;
    t = NULL;
done:
    lq_qtensor_free(t);
    lq_free(ctx, Wp);
    lq_free(ctx, Hp);
    lq_free(ctx, Wt);
    lq_free(ctx, s.scales);
    lq_free(ctx, s.codes);
    lq_free(ctx, s.bidx);
    lq_free(ctx, s.xb);
    lq_free(ctx, s.yb);
    lq_free(ctx, s.cb);
    lq_free(ctx, s.bb);
    lq_free(ctx, s.ecodes);
    return st;
}

lq_status lq_nestquant_preset(unsigned bits, lq_nestquant_opts *o)
{
    if (!o || bits < 2 || bits > 8) return LQ_ERR_INVALID_ARG;
    const unsigned K = 4;
    unsigned q = 2;
    /* smallest q with log2(q) + log2(K)/8 >= bits */
    while (q < LQ_VORONOI_Q_MAX && log2((double)q) + 0.25 < (double)bits - 1e-12) q++;
    *o = (lq_nestquant_opts){
        .q = q, .n_betas = K, .group = 0, .hadamard = 1, .select = 0, .betas = NULL};
    return LQ_OK;
}
