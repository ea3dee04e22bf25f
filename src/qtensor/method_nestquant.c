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
 * coder (smallest non-overloading beta, shrink fallback counted in
 * report->overloads). W_hat is the dequantized stored tensor (rotation
 * undone, padding dropped), and the report's proxy loss is computed against
 * the caller's W and H in the original basis.
 */
#include <math.h>
#include <string.h>

#include "lattice/lattice_internal.h"
#include "qtensor/qtensor_internal.h"
#include "quant/hessian.h"

extern const lq_format_traits lq_format_e8_traits;

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
        s->scales[r * s->ngroups + g] = sc;
    }
    return LQ_OK;
}

static lq_status nq_quantize(void *self, const float *w, size_t ldw, size_t rows, size_t col,
                             const float *u_block, float *q, size_t ldq)
{
    nq_cq *s = self;
    (void)u_block;
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

/* Fit the betas on an evenly strided sample of normalised 8-vectors of Wp. */
static lq_status fit_betas(lq_ctx *ctx, const float *Wp, size_t rows, size_t n8, size_t group,
                           lq_nq_coder *c)
{
    size_t nblk = n8 / 8, nvec = rows * nblk;
    size_t m = nvec < FIT_SAMPLES ? nvec : FIT_SAMPLES;
    float *xs = lq_alloc_array(ctx, m * 8, sizeof(float));
    if (!xs) return LQ_ERR_NO_MEMORY;
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
    lq_status st = lq_nq_coder_fit(ctx, c, xs, m);
    lq_free(ctx, xs);
    return st;
}

static lq_status pack_e8(lq_ctx *ctx, const nq_cq *s, size_t cols, int hadamard, uint64_t seed,
                         lq_qtensor **out)
{
    size_t rows = s->rows, nvec = rows * s->nblk;
    unsigned cbits = lq_voronoi_bits(s->coder.q), ibits = lq_nq_index_bits(s->coder.n_betas);
    size_t cbytes = (nvec * cbits + 7) / 8, ibytes = (nvec * ibits + 7) / 8;
    lq_qtensor *t;
    lq_status st = lq_qtensor_new(ctx, LQ_FORMAT_E8, rows, cols, &t);
    if (st != LQ_OK) return st;
    t->ip[0] = s->coder.q;
    t->ip[1] = s->coder.n_betas;
    t->ip[2] = (uint32_t)s->group;
    t->ip[3] = (uint32_t)hadamard;
    t->ip[4] = (uint32_t)s->n8;
    t->ip[5] = (uint32_t)(seed & 0xffffffffu);
    t->ip[6] = (uint32_t)(seed >> 32);
    t->ip[7] = cbits;
    t->ip[8] = ibits;
    for (unsigned k = 0; k < s->coder.n_betas; k++) t->fp[k] = s->coder.betas[k];
    uint8_t *codes = lq_qtensor_add_section(t, LQ_SEC_CODES, 1, cbytes);
    uint8_t *bid = ibytes ? lq_qtensor_add_section(t, LQ_SEC_BETAS, 1, ibytes) : NULL;
    float *sc = lq_qtensor_add_section(t, LQ_SEC_SCALES, 4, rows * s->ngroups * sizeof(float));
    if (!codes || (ibytes && !bid) || !sc) {
        lq_qtensor_free(t);
        return LQ_ERR_NO_MEMORY;
    }
    for (size_t v = 0; v < nvec; v++) {
        size_t r = v / s->nblk, j = v % s->nblk;
        lq_bits_put(codes, v * cbits, cbits, lq_voronoi_index(s->coder.q, s->codes + r * s->n8 + 8 * j));
        if (bid) lq_bits_put(bid, v * ibits, ibits, s->bidx[v]);
    }
    memcpy(sc, s->scales, rows * s->ngroups * sizeof(float));
    *out = t;
    return LQ_OK;
}

lq_status lq_quantize_nestquant(lq_ctx *ctx, const float *W, size_t rows, size_t cols,
                                const float *H, const lq_method *m, lq_qtensor **out,
                                float *W_hat, lq_quant_report *rep)
{
    const lq_nestquant_opts *o = &m->u.nestquant;
    if (o->q < 2 || o->q > LQ_VORONOI_Q_MAX || o->n_betas < 1 || o->n_betas > LQ_NQ_MAX_BETAS ||
        o->group % 8 != 0 || (o->hadamard != 0 && o->hadamard != 1))
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
    lq_qtensor *t = NULL;
    if (!Wp || (!rtn && !Hp) || ((W_hat || rep) && !Wt) || !s.scales || !s.codes || !s.bidx ||
        !s.xb || !s.yb || !s.cb || !s.bb) {
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
    st = pack_e8(ctx, &s, cols, o->hadamard, seed, &t);
    if (st != LQ_OK) goto done;
    if (Wt) {
        /* direct call: lq_dequantize would map NO_MEMORY to CORRUPT */
        st = lq_format_e8_traits.dequant_rows(t, 0, rows, Wt, lq_simd_for(ctx));
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
    return st;
}
