/* Activation quantization at the linear inputs, beta fitting, bits and the
 * command-line options (actq.h). The KV cache of codes is in kvcache.c. */
#include "actq.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eval.h"

void lq_actq_settings_default(lq_actq_settings *s)
{
    memset(s, 0, sizeof *s);
    s->act_bits = 16;
    s->kv_bits = 16;
    s->key_bits = 16;
    s->kind = LQ_AQ_NESTQUANT;
    s->group = 32;
    s->rotate = 1;
    s->kv_token_scale = 0;
    s->query_coded = 1;
    s->select = LQ_NQ_SELECT_BEST;
    s->seed = 0x5eed;
    s->sites = (1u << LQ_GROUP_COUNT) - 1u;
}

int lq_actq_nq_preset(unsigned bits, unsigned *q, unsigned *k)
{
    if (bits < 2 || bits > 8) return -1;
    *q = bits == 2 ? 3u : (1u << bits) - 2u;
    *k = 4;
    return 0;
}

static int bits_ok(unsigned b) { return b == 16 || (b >= 2 && b <= 8); }

int lq_actq_act_on(const lq_actq *aq) { return aq && aq->set.act_bits < 16; }

int lq_actq_kv_on(const lq_actq *aq)
{
    return aq && (aq->set.kv_bits < 16 || aq->set.key_bits < 16);
}

const lq_nq_coder *lq_actq_coder(const lq_actq *aq, size_t layer, int site)
{
    return &aq->coder[layer * LQ_AQ_SITES + (size_t)site];
}

static unsigned site_bits(const lq_actq_settings *s, int site)
{
    if (site == LQ_AQ_KEY) return s->key_bits;
    if (site == LQ_AQ_VALUE) return s->kv_bits;
    return s->act_bits;
}

void lq_actq_free(lq_actq *aq)
{
    if (!aq) return;
    if (aq->col)
        for (size_t i = 0; i < aq->cfg.n_layers * LQ_AQ_SITES; i++) free(aq->col[i]);
    free(aq->col);
    free(aq->ncol);
    free(aq->coder);
    free(aq->ksmooth);
    free(aq->kmean);
    free(aq->vmean);
    free(aq->vsum);
    free(aq->ksum);
    free(aq->kcount);
    free(aq->kss);
    free(aq->qss);
    free(aq->buf);
    free(aq->codes);
    free(aq->bidx);
    free(aq->scales);
    memset(aq, 0, sizeof *aq);
}

/* The reference implementation's fixed beta sets at q = 14 (numbers in
 * units of 1/q; docs/algorithms.md), rounded to 8 significant bits as
 * lq_nq_dot needs. */
static void set_paper_betas(lq_nq_coder *c, int site)
{
    static const double act[4] = {3.47, 4.74, 6.90, 18.11}, key[4] = {3.50, 4.58, 6.47, 17.06},
                        val[4] = {3.53, 5.59, 9.62, 29.03};
    const double *b = site == LQ_AQ_KEY ? key : site == LQ_AQ_VALUE ? val : act;
    for (unsigned k = 0; k < 4; k++) {
        int e;
        double m = frexp(b[k] / 14.0, &e); /* m in [0.5, 1) */
        c->betas[k] = (float)ldexp(rint(m * 256.0), e - 8);
    }
}

int lq_actq_init(lq_actq *aq, const lq_llama_config *c, const lq_actq_settings *s, char *why,
                 size_t cap)
{
    if (!aq || !c || !s) {
        snprintf(why, cap, "missing argument");
        return -1;
    }
    if (!bits_ok(s->act_bits) || !bits_ok(s->kv_bits) || !bits_ok(s->key_bits)) {
        snprintf(why, cap, "bits must be 2..8, or 16 (not quantized)");
        return -1;
    }
    if ((s->kv_bits < 16) != (s->key_bits < 16)) {
        snprintf(why, cap, "keys and values are both quantized or both float");
        return -1;
    }
    if (s->kind != LQ_AQ_NESTQUANT && s->kind != LQ_AQ_INT) {
        snprintf(why, cap, "unknown quantizer");
        return -1;
    }
    if (s->group < 1 || s->group > 4096) {
        snprintf(why, cap, "the INT group must be 1..4096 entries");
        return -1;
    }
    if (s->select > LQ_NQ_SELECT_BEST) {
        snprintf(why, cap, "the beta rule must be first or best");
        return -1;
    }
    if (s->kind == LQ_AQ_NESTQUANT && s->kv_token_scale && c->head_dim % 8) {
        snprintf(why, cap, "one NestQuant scale per token needs head_dim %zu to be a multiple of 8",
                 c->head_dim);
        return -1;
    }
    if (s->paper_betas && s->kind == LQ_AQ_NESTQUANT &&
        ((s->act_bits < 16 && s->act_bits != 4) || (s->kv_bits < 16 && s->kv_bits != 4) ||
         (s->key_bits < 16 && s->key_bits != 4))) {
        snprintf(why, cap, "the paper's beta sets are for 4 bits (q = 14, K = 4) only");
        return -1;
    }
    size_t slots = c->n_layers * LQ_AQ_SITES;
    lq_nq_coder *cod = calloc(slots, sizeof *cod);
    if (!cod) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    for (size_t l = 0; l < c->n_layers; l++)
        for (int site = 0; site < LQ_AQ_SITES; site++) {
            unsigned b = site_bits(s, site), q, k;
            if (b >= 16) b = s->act_bits < 16 ? s->act_bits : 4; /* unused slot */
            if (lq_actq_nq_preset(b, &q, &k) ||
                lq_nq_coder_init(&cod[l * LQ_AQ_SITES + (size_t)site], q, k)) {
                free(cod);
                snprintf(why, cap, "bad NestQuant preset");
                return -1;
            }
            lq_nq_coder *cs = &cod[l * LQ_AQ_SITES + (size_t)site];
            cs->select = s->select;
            if (s->paper_betas && site_bits(s, site) == 4) set_paper_betas(cs, site);
        }
    memset(aq, 0, sizeof *aq);
    aq->set = *s;
    aq->cfg = *c;
    aq->coder = cod;
    return 0;
}

/* ---- fitting ---------------------------------------------------------------- */

void lq_actq_collect(lq_actq *aq, size_t layer, int site, const float *x, size_t rows, size_t len,
                     size_t ld, int rotate)
{
    if (!aq->collecting || !aq->col) return;
    size_t slot = layer * LQ_AQ_SITES + (size_t)site, n8 = (len + 7) / 8 * 8;
    float *b = malloc(n8 * sizeof *b);
    if (!b) return;
    for (size_t r = 0; r < rows && aq->ncol[slot] + n8 / 8 <= aq->col_cap; r++) {
        memcpy(b, x + r * ld, len * sizeof *b);
        memset(b + len, 0, (n8 - len) * sizeof *b);
        if (rotate && lq_rht_forward(b, n8, aq->set.seed) != LQ_OK) continue;
        double ss = 0;
        for (size_t i = 0; i < n8; i++) ss += (double)b[i] * b[i];
        float s = (float)sqrt(ss / (double)n8);
        if (!(s > 0.0f) || !isfinite(s)) continue;
        float *dst = aq->col[slot] + aq->ncol[slot] * 8;
        for (size_t i = 0; i < n8; i++) dst[i] = b[i] / s;
        aq->ncol[slot] += n8 / 8;
    }
    free(b);
}

static lq_status run_chunks(lq_ctx *ctx, const lq_llama *m, const lq_run_opts *o, lq_llama_state *s,
                            const lq_chunks *c)
{
    for (size_t i = 0; i < c->n; i++) {
        size_t len = c->len[i] < m->cfg.seq_len ? c->len[i] : m->cfg.seq_len;
        lq_status st = lq_llama_forward(ctx, m, s, o, c->tok + c->off[i], len, 0, NULL);
        if (st != LQ_OK) return st;
    }
    return LQ_OK;
}

lq_status lq_actq_calibrate(lq_ctx *ctx, const lq_llama *m, const lq_run_opts *o, lq_actq *aq,
                            const lq_chunks *c)
{
    if (!m || !o || !aq || !c || m->actq != aq) return LQ_ERR_INVALID_ARG;
    const int nq = aq->set.kind == LQ_AQ_NESTQUANT,
              smooth = aq->set.key_smooth && lq_actq_kv_on(aq),
              center = aq->set.key_center && lq_actq_kv_on(aq);
    if (!nq && !smooth && !center) return LQ_OK;
    size_t slots = aq->cfg.n_layers * LQ_AQ_SITES, kvd = aq->cfg.n_kv_heads * aq->cfg.head_dim,
           nk = aq->cfg.n_layers * kvd;
    lq_llama_state *s = NULL;
    lq_status st = LQ_ERR_NO_MEMORY;
    if ((st = lq_llama_state_create(m, m->cfg.seq_len, &s)) != LQ_OK) goto out;
    st = LQ_ERR_NO_MEMORY;
    if (center) {
        /* pass 1a: the mean of the keys (uncentered) */
        free(aq->kmean);
        free(aq->vmean);
        aq->kmean = aq->vmean = NULL;
        aq->ksum = calloc(nk, sizeof *aq->ksum);
        aq->vsum = calloc(nk, sizeof *aq->vsum);
        aq->kcount = calloc(aq->cfg.n_layers, sizeof *aq->kcount);
        float *mu = malloc(nk * sizeof *mu), *nu = malloc(nk * sizeof *nu);
        if (!aq->ksum || !aq->vsum || !aq->kcount || !mu || !nu) {
            free(mu);
            free(nu);
            goto out;
        }
        aq->collecting = 1;
        st = run_chunks(ctx, m, o, s, c);
        aq->collecting = 0;
        if (st != LQ_OK) {
            free(mu);
            free(nu);
            goto out;
        }
        for (size_t i = 0; i < nk; i++) {
            size_t cnt = aq->kcount[i / kvd];
            mu[i] = cnt ? (float)(aq->ksum[i] / (double)cnt) : 0.0f;
            nu[i] = cnt ? (float)(aq->vsum[i] / (double)cnt) : 0.0f;
        }
        aq->kmean = mu;
        aq->vmean = nu;
        free(aq->ksum);
        free(aq->vsum);
        free(aq->kcount);
        aq->ksum = aq->vsum = NULL;
        aq->kcount = NULL;
        st = LQ_ERR_NO_MEMORY;
    }
    if (smooth) {
        /* pass 1b: channel statistics of keys (centered when set) and queries */
        free(aq->ksmooth);
        aq->ksmooth = NULL;
        aq->kss = calloc(nk, sizeof *aq->kss);
        aq->qss = calloc(nk, sizeof *aq->qss);
        float *ks = malloc(nk * sizeof *ks);
        if (!aq->kss || !aq->qss || !ks) {
            free(ks);
            goto out;
        }
        aq->collecting = 1;
        st = run_chunks(ctx, m, o, s, c);
        aq->collecting = 0;
        if (st != LQ_OK) {
            free(ks);
            goto out;
        }
        for (size_t i = 0; i < nk; i++) {
            double g = (double)(aq->cfg.n_heads / aq->cfg.n_kv_heads); /* queries per key */
            double r =
                aq->qss[i] > 0 && aq->kss[i] > 0 ? sqrt(sqrt(g * aq->kss[i] / aq->qss[i])) : 1.0;
            ks[i] = (float)(r < 1e-3 ? 1e-3 : r > 1e3 ? 1e3 : r);
        }
        aq->ksmooth = ks;
        free(aq->kss);
        free(aq->qss);
        aq->kss = aq->qss = NULL;
    }
    if (!nq) {
        st = LQ_OK;
        goto out;
    }
    /* pass 2 (or the only one): the normalised vectors of every site */
    aq->col_cap = 32768;
    aq->col = calloc(slots, sizeof *aq->col);
    aq->ncol = calloc(slots, sizeof *aq->ncol);
    st = LQ_ERR_NO_MEMORY;
    if (!aq->col || !aq->ncol) goto out;
    for (size_t i = 0; i < slots; i++)
        if (!(aq->col[i] = malloc(aq->col_cap * 8 * sizeof(float)))) goto out;
    aq->collecting = 1;
    if ((st = run_chunks(ctx, m, o, s, c)) != LQ_OK) goto out;
    aq->collecting = 0;
    for (size_t l = 0; l < aq->cfg.n_layers; l++)
        for (int site = 0; site < LQ_AQ_SITES; site++) {
            size_t slot = l * LQ_AQ_SITES + (size_t)site;
            unsigned b = site_bits(&aq->set, site);
            if (b >= 16 || aq->ncol[slot] < 64) continue; /* unused or too few samples */
            lq_nq_coder fit = aq->coder[slot];
            if ((st = lq_nq_coder_fit(ctx, &fit, aq->col[slot], aq->ncol[slot])) != LQ_OK) goto out;
            aq->coder[slot] = fit;
        }
    st = LQ_OK;
out:
    aq->collecting = 0;
    lq_llama_state_free(s);
    if (aq->col)
        for (size_t i = 0; i < slots; i++) free(aq->col[i]);
    free(aq->col);
    free(aq->ncol);
    free(aq->kss);
    free(aq->qss);
    free(aq->ksum);
    free(aq->vsum);
    free(aq->kcount);
    aq->ksum = aq->vsum = NULL;
    aq->kcount = NULL;
    aq->kss = aq->qss = NULL;
    aq->col = NULL;
    aq->ncol = NULL;
    return st;
}

/* ---- activations -------------------------------------------------------------- */

static lq_status grow(lq_actq *aq, size_t n, size_t n8)
{
    if (n <= aq->buf_rows && n8 <= aq->buf_cols) return LQ_OK;
    size_t r = n > aq->buf_rows ? n : aq->buf_rows, c = n8 > aq->buf_cols ? n8 : aq->buf_cols;
    float *b = malloc(r * c * sizeof *b), *s = malloc(r * sizeof *s);
    uint8_t *cd = malloc(r * c), *bi = malloc(r * (c / 8 + 1));
    if (!b || !s || !cd || !bi) {
        free(b);
        free(s);
        free(cd);
        free(bi);
        return LQ_ERR_NO_MEMORY;
    }
    free(aq->buf);
    free(aq->scales);
    free(aq->codes);
    free(aq->bidx);
    aq->buf = b;
    aq->scales = s;
    aq->codes = cd;
    aq->bidx = bi;
    aq->buf_rows = r;
    aq->buf_cols = c;
    return LQ_OK;
}

lq_status lq_actq_input(lq_ctx *ctx, lq_actq *aq, size_t layer, lq_lin_group g, const float *X,
                        size_t n, size_t cols, const float **out)
{
    if (!aq || !X || !out || n == 0 || cols == 0 || layer >= aq->cfg.n_layers ||
        (unsigned)g >= LQ_GROUP_COUNT)
        return LQ_ERR_INVALID_ARG;
    if (!lq_actq_act_on(aq) || !(aq->set.sites & (1u << g))) {
        *out = X;
        return LQ_OK;
    }
    size_t n8 = (cols + 7) / 8 * 8, nb = n8 / 8;
    lq_status st = grow(aq, n, n8);
    if (st != LQ_OK) return st;
    lq_actq_collect(aq, layer, (int)g, X, n, cols, cols,
                    aq->set.kind == LQ_AQ_NESTQUANT && aq->set.rotate);
    float *Y = aq->buf; /* n rows of stride n8 */
    if (aq->set.kind == LQ_AQ_INT) {
        for (size_t t = 0; t < n; t++) memcpy(Y + t * n8, X + t * cols, cols * sizeof *Y);
        if (aq->set.rotate && (st = lq_rht_rows(ctx, Y, n, cols, n8, aq->set.seed, 0)) != LQ_OK)
            return st;
        for (size_t t = 0; t < n; t++)
            lq_actq_int_row(Y + t * n8, cols, aq->set.group, aq->set.act_bits, NULL, NULL);
        if (aq->set.rotate && (st = lq_rht_rows(ctx, Y, n, cols, n8, aq->set.seed, 1)) != LQ_OK)
            return st;
    } else {
        const lq_nq_coder *c = lq_actq_coder(aq, layer, (int)g);
        size_t nov = 0;
        if ((st = lq_nq_act_encode(ctx, c, X, n, cols, cols, aq->set.rotate, aq->set.seed,
                                   aq->codes, aq->bidx, aq->scales, &nov)) != LQ_OK)
            return st;
        if ((st = lq_nq_decode(c, aq->codes, aq->bidx, n * nb, Y)) != LQ_OK) return st;
        for (size_t t = 0; t < n; t++) {
            float s = lq_actq_half_scale(aq->scales[t]);
            for (size_t i = 0; i < n8; i++) Y[t * n8 + i] *= s;
        }
        if (aq->set.rotate && (st = lq_rht_rows(ctx, Y, n, n8, n8, aq->set.seed, 1)) != LQ_OK)
            return st;
        aq->n_overload += nov;
        aq->n_vectors += n * nb;
    }
    /* compact to stride cols for the product */
    for (size_t t = 1; t < n; t++) memmove(Y + t * cols, Y + t * n8, cols * sizeof *Y);
    *out = Y;
    return LQ_OK;
}

/* ---- bits ---------------------------------------------------------------------- */

/* stored bits per entry of a vector of len entries quantized at b bits */
static double entry_bits(const lq_actq *aq, const lq_nq_coder *c, unsigned b, size_t len)
{
    if (b >= 16) return 32;
    if (aq->set.kind == LQ_AQ_INT) {
        size_t groups = (len + aq->set.group - 1) / aq->set.group;
        return (double)b + 16.0 * (double)groups / (double)len;
    }
    size_t nb = (len + 7) / 8;
    double per = (double)lq_voronoi_bits(c->q) + (double)lq_nq_index_bits(c->n_betas);
    return (per * (double)nb + 16.0) / (double)len;
}

void lq_actq_bits(const lq_actq *aq, double *act_bits, double *kv_bits)
{
    const lq_llama_config *c = &aq->cfg;
    size_t qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    const size_t w[LQ_GROUP_COUNT] = {c->dim, qd, c->dim, c->hidden};
    double num = 0, den = 0;
    for (int g = 0; g < LQ_GROUP_COUNT; g++) {
        unsigned b = (aq->set.sites >> g) & 1u ? aq->set.act_bits : 16;
        num += entry_bits(aq, lq_actq_coder(aq, 0, g), b, w[g]) * (double)w[g];
        den += (double)w[g];
    }
    if (act_bits) *act_bits = num / den;
    size_t len = aq->set.kv_token_scale ? kvd : c->head_dim;
    if (aq->set.kind == LQ_AQ_INT) len = kvd; /* INT groups run along the token's row */
    double kb = entry_bits(aq, lq_actq_coder(aq, 0, LQ_AQ_KEY), aq->set.key_bits, len),
           vb = entry_bits(aq, lq_actq_coder(aq, 0, LQ_AQ_VALUE), aq->set.kv_bits, len);
    if (kv_bits) *kv_bits = (kb + vb) / 2;
}

/* ---- command-line options ------------------------------------------------------- */

void lq_actq_cli_init(lq_actq_cli *a)
{
    memset(a, 0, sizeof *a);
    a->act_bits = 16;
    a->kv_bits = 16;
    a->key_bits = 0; /* 0: as kv_bits */
    a->group = 32;
    a->calib_chunks = 8;
}

int lq_actq_cli_given(const lq_actq_cli *a)
{
    lq_actq_cli d;
    lq_actq_cli_init(&d);
    return a->act_bits != d.act_bits || a->kv_bits != d.kv_bits || a->key_bits != d.key_bits ||
           a->group != d.group || a->calib_chunks != d.calib_chunks || a->smooth || a->center ||
           a->quant || a->rotate || a->kv_scale || a->kv_query || a->select || a->calib ||
           a->betas || a->sites;
}

void lq_actq_describe(const lq_actq_settings *s, char *buf, size_t cap)
{
    static const char *const names[LQ_GROUP_COUNT] = {"attn_in", "attn_out", "ffn_in", "ffn_mid"};
    char sites[64] = "", grp[32] = "";
    size_t len = 0;
    for (unsigned g = 0; g < LQ_GROUP_COUNT; g++)
        if ((s->sites >> g) & 1u) {
            int w = snprintf(sites + len, sizeof sites - len, "%s%s", len ? "," : "", names[g]);
            if (w > 0 && (size_t)w < sizeof sites - len) len += (size_t)w;
        }
    const int nq = s->kind == LQ_AQ_NESTQUANT;
    if (!nq) snprintf(grp, sizeof grp, " group %zu", s->group);
    snprintf(buf, cap,
             "act %u bits, kv %u bits (keys %u), %s%s, rotate %s, sites %s, betas %s, select %s, "
             "kv scale %s, query %s%s%s",
             s->act_bits, s->kv_bits, s->key_bits, nq ? "nestquant" : "int", grp,
             s->rotate ? "yes" : "no", sites, s->paper_betas ? "paper" : "default",
             s->select == LQ_NQ_SELECT_FIRST ? "first" : "best",
             s->kv_token_scale ? "token" : "head", s->query_coded ? "coded" : "float",
             s->key_smooth ? ", kv-smooth" : "", s->key_center ? ", kv-center" : "");
}

static int pick2(const char *v, const char *opt, const char *a, const char *b, int *out)
{
    if (!v) return 0;
    if (!strcmp(v, a))
        *out = 0;
    else if (!strcmp(v, b))
        *out = 1;
    else {
        fprintf(stderr, "error: --%s is %s or %s, not '" LQ_CLIP_FMT "'\n", opt, a, b, LQ_CLIP(v));
        return -1;
    }
    return 0;
}

int lq_actq_cli_settings(const lq_actq_cli *a, const lq_llama_config *c, lq_actq_settings *s)
{
    lq_actq_settings t;
    lq_actq_settings_default(&t);
    const struct {
        const char *name;
        size_t v;
    } bits[] = {{"act-bits", a->act_bits}, {"kv-bits", a->kv_bits}, {"key-bits", a->key_bits}};
    for (size_t i = 0; i < 3; i++) {
        if (i == 2 && a->key_bits == 0) continue;
        if (!(bits[i].v == 16 || (bits[i].v >= 2 && bits[i].v <= 8))) {
            fprintf(stderr, "error: --%s must be 2..8, or 16 (not quantized); got %zu\n",
                    bits[i].name, bits[i].v);
            return -1;
        }
    }
    t.act_bits = (unsigned)a->act_bits;
    t.kv_bits = (unsigned)a->kv_bits;
    t.key_bits = a->key_bits ? (unsigned)a->key_bits : t.kv_bits;
    if ((t.key_bits < 16) != (t.kv_bits < 16)) {
        fprintf(stderr,
                "error: --key-bits %u with --kv-bits %u: keys and values are both "
                "quantized (2..8) or both float (16)\n",
                t.key_bits, t.kv_bits);
        return -1;
    }
    int v = 0;
    if (pick2(a->quant, "act-quant", "nestquant", "int", &v)) return -1;
    t.kind = v ? LQ_AQ_INT : LQ_AQ_NESTQUANT;
    if (a->group < 1 || a->group > 4096) {
        fprintf(stderr, "error: --act-group must be 1..4096; got %zu\n", a->group);
        return -1;
    }
    t.group = a->group;
    v = 0;
    if (pick2(a->rotate, "act-rotate", "yes", "no", &v)) return -1;
    t.rotate = !v;
    v = 0;
    if (pick2(a->kv_scale, "kv-scale", "head", "token", &v)) return -1;
    t.kv_token_scale = v;
    v = 0;
    if (pick2(a->kv_query, "kv-query", "coded", "float", &v)) return -1;
    t.query_coded = !v;
    v = 0;
    if (pick2(a->select, "act-select", "best", "first", &v)) return -1;
    t.select = v ? LQ_NQ_SELECT_FIRST : LQ_NQ_SELECT_BEST;
    if (a->sites) {
        static const char *const names[LQ_GROUP_COUNT] = {"attn_in", "attn_out", "ffn_in",
                                                          "ffn_mid"};
        unsigned m = 0;
        for (unsigned g = 0; g < LQ_GROUP_COUNT; g++)
            if (lq_cli_in_list(a->sites, names[g])) m |= 1u << g;
        /* every item must be a known name */
        size_t items = 1, known = 0;
        for (const char *p = a->sites; *p; p++) items += *p == ',';
        for (unsigned g = 0; g < LQ_GROUP_COUNT; g++) known += (m >> g) & 1u;
        if (!m || known != items) {
            fprintf(stderr,
                    "error: --act-sites is a comma list of attn_in, attn_out, ffn_in, "
                    "ffn_mid (each once), not '" LQ_CLIP_FMT "'\n",
                    LQ_CLIP(a->sites));
            return -1;
        }
        t.sites = m;
    }
    v = 0;
    if (pick2(a->betas, "act-betas", "default", "paper", &v)) return -1;
    t.paper_betas = v;
    t.key_smooth = a->smooth;
    t.key_center = a->center;
    if (a->center && (!a->calib || t.kv_bits >= 16)) {
        fprintf(stderr, "error: --kv-center needs --act-calib and --kv-bits below 16\n");
        return -1;
    }
    if (a->calib && t.kind != LQ_AQ_NESTQUANT && !a->smooth && !a->center) {
        fprintf(stderr,
                "error: --act-calib fits NestQuant betas (or, with --kv-smooth or "
                "--kv-center, key statistics): with --act-quant int it needs one of those\n");
        return -1;
    }
    if (a->smooth && (!a->calib || t.kv_bits >= 16)) {
        fprintf(stderr, "error: --kv-smooth needs --act-calib and --kv-bits below 16\n");
        return -1;
    }
    if (a->calib && a->calib_chunks == 0) {
        fprintf(stderr, "error: --act-calib-chunks must be at least 1\n");
        return -1;
    }
    char why[160];
    lq_actq tmp;
    if (lq_actq_init(&tmp, c, &t, why, sizeof why)) {
        fprintf(stderr, "error: activation/KV quantization: %s\n", why);
        return -1;
    }
    lq_actq_free(&tmp);
    *s = t;
    return 0;
}

int lq_actq_cli_setup(lq_ctx *ctx, const lq_actq_cli *a, lq_llama *m, const lq_tokenizer *t,
                      const lq_run_opts *ro, lq_actq *aq, int *on)
{
    lq_actq_settings s;
    *on = 0;
    if (lq_actq_cli_settings(a, &m->cfg, &s)) return -1;
    if (s.act_bits >= 16 && s.kv_bits >= 16 && s.key_bits >= 16) {
        if (a->calib) {
            fprintf(stderr, "error: --act-calib without --act-bits or --kv-bits below 16\n");
            return -1;
        }
        return 0;
    }
    char why[160];
    if (lq_actq_init(aq, &m->cfg, &s, why, sizeof why)) {
        fprintf(stderr, "error: activation/KV quantization: %s\n", why);
        return -1;
    }
    m->actq = aq;
    *on = 1;
    if (!a->calib) return 0;
    size_t n;
    char *txt = lq_text_load(a->calib, &n);
    if (!txt) return -1;
    lq_chunks ch = {0};
    lq_status st = lq_chunks_make(t, txt, n, LQ_PROTO_STREAM, m->cfg.seq_len, a->calib_chunks, &ch);
    free(txt);
    if (st == LQ_OK) st = lq_actq_calibrate(ctx, m, ro, aq, &ch);
    lq_chunks_free(&ch);
    if (st != LQ_OK) {
        fprintf(stderr, "error: %s: fitting the activation betas: %s\n", a->calib,
                lq_status_str(st));
        return -1;
    }
    return 0;
}
