/* The KV cache of codes and attention on it (actq.h). Memory per layer and
 * position: NestQuant: one byte per entry of every head padded to a
 * multiple of 8 (each < q), one beta index per 8-vector, one fp16 scale per
 * head (or per token); INT: one int8 per entry, one fp16 scale per group of
 * the token's row. No float copy of K or V is kept between calls. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "actq.h"
#include "core/half.h"

float lq_actq_half_scale(float s)
{
    if (!(s > 0.0f) || !isfinite(s)) return 0.0f;
    float h = lq_f16_to_f32(lq_f32_to_f16(s));
    if (!isfinite(h)) h = 65504.0f;
    return h;
}

void lq_actq_int_row(float *x, size_t len, size_t g, unsigned bits, int8_t *c, uint16_t *sc)
{
    const float qmax = (float)((1u << (bits - 1)) - 1u);
    for (size_t a = 0, gi = 0; a < len; a += g, gi++) {
        size_t e = a + g < len ? a + g : len;
        float mx = 0;
        for (size_t i = a; i < e; i++) mx = fabsf(x[i]) > mx ? fabsf(x[i]) : mx;
        float s = lq_actq_half_scale(mx / qmax);
        if (sc) sc[gi] = lq_f32_to_f16(s);
        for (size_t i = a; i < e; i++) {
            float v = s > 0 ? rintf(x[i] / s) : 0.0f;
            v = v > qmax ? qmax : v < -qmax ? -qmax : v;
            if (c) c[i] = (int8_t)v;
            x[i] = v * s;
        }
    }
}

#define LQ_KVC_MAX_HD 1024 /* lq_kvc_score's query copy */

typedef struct kv_side {
    uint8_t *codes;   /* NQ: seq_len x KV x hd8; INT: seq_len x kvd (int8) */
    uint8_t *bidx;    /* NQ: seq_len x KV x hd8/8 */
    uint16_t *scales; /* seq_len x nsc */
} kv_side;

struct lq_kvc {
    const lq_actq *owner;
    lq_actq_settings set;
    size_t L, T, KV, hd, hd8, kvd, nsc; /* nsc: scales per position */
    kv_side *k, *v;                     /* per layer */
};

const lq_actq *lq_kvc_owner(const lq_kvc *k) { return k ? k->owner : NULL; }

void lq_kvc_free(lq_kvc *k)
{
    if (!k) return;
    for (size_t l = 0; l < k->L; l++) {
        if (k->k) {
            free(k->k[l].codes);
            free(k->k[l].bidx);
            free(k->k[l].scales);
        }
        if (k->v) {
            free(k->v[l].codes);
            free(k->v[l].bidx);
            free(k->v[l].scales);
        }
    }
    free(k->k);
    free(k->v);
    free(k);
}

static int side_alloc(kv_side *s, const lq_kvc *k, int nq)
{
    size_t per = nq ? k->KV * k->hd8 : k->kvd;
    s->codes = malloc(k->T * per);
    s->bidx = nq ? malloc(k->T * k->KV * k->hd8 / 8) : NULL;
    s->scales = malloc(k->T * k->nsc * sizeof *s->scales);
    return s->codes && s->scales && (!nq || s->bidx);
}

lq_status lq_kvc_create(const lq_actq *aq, lq_kvc **out)
{
    if (!aq || !out || !lq_actq_kv_on(aq)) return LQ_ERR_INVALID_ARG;
    const lq_llama_config *c = &aq->cfg;
    lq_kvc *k = calloc(1, sizeof *k);
    if (!k) return LQ_ERR_NO_MEMORY;
    k->owner = aq;
    k->set = aq->set;
    k->L = c->n_layers;
    k->T = c->seq_len;
    k->KV = c->n_kv_heads;
    k->hd = c->head_dim;
    k->hd8 = (k->hd + 7) / 8 * 8;
    k->kvd = k->KV * k->hd;
    int nq = aq->set.kind == LQ_AQ_NESTQUANT;
    k->nsc =
        nq ? (aq->set.kv_token_scale ? 1 : k->KV) : (k->kvd + aq->set.group - 1) / aq->set.group;
    k->k = calloc(k->L, sizeof *k->k);
    k->v = calloc(k->L, sizeof *k->v);
    if (!k->k || !k->v) {
        lq_kvc_free(k);
        return LQ_ERR_NO_MEMORY;
    }
    for (size_t l = 0; l < k->L; l++)
        if (!side_alloc(&k->k[l], k, nq) || !side_alloc(&k->v[l], k, nq)) {
            lq_kvc_free(k);
            return LQ_ERR_NO_MEMORY;
        }
    *out = k;
    return LQ_OK;
}

/* Encode n rows of X (n x kvd) at positions pos0.. into side s. */
static lq_status encode_side(lq_ctx *ctx, const lq_kvc *k, lq_actq *aq, size_t layer, int site,
                             const float *X, size_t n, size_t pos0, kv_side *s)
{
    const size_t KV = k->KV, hd = k->hd, hd8 = k->hd8, kvd = k->kvd;
    unsigned bits = site == LQ_AQ_KEY ? k->set.key_bits : k->set.kv_bits;
    lq_status st = LQ_OK;
    if (k->set.kind == LQ_AQ_INT) {
        float *b = malloc(n * kvd * sizeof *b);
        if (!b) return LQ_ERR_NO_MEMORY;
        memcpy(b, X, n * kvd * sizeof *b);
        if (k->set.rotate && (st = lq_rht_rows(ctx, b, n * KV, hd, hd, k->set.seed, 0)) != LQ_OK) {
            free(b);
            return st;
        }
        for (size_t t = 0; t < n; t++)
            lq_actq_int_row(b + t * kvd, kvd, k->set.group, bits,
                            (int8_t *)(s->codes + (pos0 + t) * kvd),
                            s->scales + (pos0 + t) * k->nsc);
        free(b);
        return LQ_OK;
    }
    const lq_nq_coder *c = lq_actq_coder(aq, layer, site);
    size_t rows = k->set.kv_token_scale ? n : n * KV, len = k->set.kv_token_scale ? kvd : hd;
    float *sc = malloc(rows * sizeof *sc), *rot = NULL;
    if (!sc) return LQ_ERR_NO_MEMORY;
    const float *src = X;
    int rot_in_encoder = k->set.rotate && !k->set.kv_token_scale;
    if (k->set.rotate && k->set.kv_token_scale) {
        /* rotate each head (hd % 8 == 0 here), then one scale per token */
        if (!(rot = malloc(n * kvd * sizeof *rot))) {
            free(sc);
            return LQ_ERR_NO_MEMORY;
        }
        memcpy(rot, X, n * kvd * sizeof *rot);
        if ((st = lq_rht_rows(ctx, rot, n * KV, hd, hd, k->set.seed, 0)) != LQ_OK) goto out;
        src = rot;
    }
    if (k->set.kv_token_scale)
        lq_actq_collect(aq, layer, site, src, n, kvd, kvd, 0);
    else
        lq_actq_collect(aq, layer, site, src, n * KV, hd, hd, k->set.rotate);
    st = lq_nq_act_encode(ctx, c, src, rows, len, len, rot_in_encoder, k->set.seed,
                          s->codes + pos0 * KV * hd8, s->bidx + pos0 * KV * hd8 / 8, sc, NULL);
    if (st == LQ_OK)
        for (size_t r = 0; r < rows; r++)
            s->scales[pos0 * k->nsc + r] = lq_f32_to_f16(lq_actq_half_scale(sc[r]));
out:
    free(rot);
    free(sc);
    return st;
}

/* Decode positions 0..P-1 of side s into D (P x KV x hd8 floats, rotated
 * basis; INT: hd entries per head, the rest zero). */
static lq_status decode_side(const lq_kvc *k, const lq_actq *aq, size_t layer, int site,
                             const kv_side *s, size_t P, float *D)
{
    const size_t KV = k->KV, hd = k->hd, hd8 = k->hd8, kvd = k->kvd;
    if (k->set.kind == LQ_AQ_INT) {
        const int8_t *c = (const int8_t *)s->codes;
        for (size_t j = 0; j < P; j++)
            for (size_t g = 0; g < KV; g++)
                for (size_t i = 0; i < hd8; i++) {
                    size_t e = g * hd + i;
                    D[(j * KV + g) * hd8 + i] =
                        i < hd ? (float)c[j * kvd + e] *
                                     lq_f16_to_f32(s->scales[j * k->nsc + e / k->set.group])
                               : 0.0f;
                }
        return LQ_OK;
    }
    const lq_nq_coder *c = lq_actq_coder(aq, layer, site);
    lq_status st = lq_nq_decode(c, s->codes, s->bidx, P * KV * hd8 / 8, D);
    if (st != LQ_OK) return st;
    for (size_t j = 0; j < P; j++)
        for (size_t g = 0; g < KV; g++) {
            float sc = lq_f16_to_f32(s->scales[j * k->nsc + (k->nsc == 1 ? 0 : g)]);
            for (size_t i = 0; i < hd8; i++) D[(j * KV + g) * hd8 + i] *= sc;
        }
    return LQ_OK;
}

/* rotation length of a head in the cache's basis */
static size_t rot_len(const lq_kvc *k) { return k->set.kind == LQ_AQ_INT ? k->hd : k->hd8; }

static int query_coded(const lq_kvc *k, const lq_actq *aq)
{
    return k->set.kind == LQ_AQ_NESTQUANT && k->set.query_coded && lq_actq_act_on(aq);
}

/* Queries of n tokens (n x H x hd) into the cache's basis: rotated float
 * copies Qr (n x H x hd8), and with coded queries their codes. */
typedef struct qbuf {
    float *Qr;
    uint8_t *codes, *bidx;
    float *scales;
} qbuf;

static void qbuf_free(qbuf *b)
{
    free(b->Qr);
    free(b->codes);
    free(b->bidx);
    free(b->scales);
}

static lq_status prep_queries(lq_ctx *ctx, const lq_kvc *k, lq_actq *aq, size_t layer,
                              const float *Q, size_t rows, qbuf *b)
{
    const size_t hd = k->hd, hd8 = k->hd8;
    memset(b, 0, sizeof *b);
    b->Qr = calloc(rows * hd8, sizeof *b->Qr);
    if (!b->Qr) return LQ_ERR_NO_MEMORY;
    for (size_t r = 0; r < rows; r++) memcpy(b->Qr + r * hd8, Q + r * hd, hd * sizeof(float));
    lq_status st = LQ_OK;
    if (k->set.rotate && (st = lq_rht_rows(ctx, b->Qr, rows, rot_len(k), hd8, k->set.seed, 0)))
        return st;
    if (!query_coded(k, aq)) return LQ_OK;
    b->codes = malloc(rows * hd8);
    b->bidx = malloc(rows * hd8 / 8);
    b->scales = malloc(rows * sizeof *b->scales);
    if (!b->codes || !b->bidx || !b->scales) return LQ_ERR_NO_MEMORY;
    lq_actq_collect(aq, layer, LQ_AQ_QUERY, b->Qr, rows, hd8, hd8, 0);
    /* already rotated: encode without a second rotation */
    return lq_nq_act_encode(ctx, lq_actq_coder(aq, layer, LQ_AQ_QUERY), b->Qr, rows, hd8, hd8, 0,
                            k->set.seed, b->codes, b->bidx, b->scales, NULL);
}

/* The coded score from code values decoded once: qd, kd are beta * y of the
 * query and key codes (lq_nq_decode, exact: few significant bits), summed
 * in double (every partial sum exact), then times (double)sq and the key's
 * fp16 scale: bit for bit lq_nq_dot(..., sq, ..., 1.0f) * sk, which
 * recomputes the same integers per call (tested with ==). */
static double exact_dot(const float *qd, const float *kd, size_t len, float sq, double sk)
{
    double d = 0;
    for (size_t i = 0; i < len; i++) d += (double)qd[i] * (double)kd[i];
    return d * ((double)sq * (double)1.0f) * sk;
}

static double key_scale(const lq_kvc *k, const kv_side *s, size_t j, size_t g)
{
    return (double)lq_f16_to_f32(s->scales[j * k->nsc + (k->nsc == 1 ? 0 : g)]);
}

lq_status lq_kvc_attend(lq_ctx *ctx, lq_kvc *k, lq_actq *aq, size_t layer, const float *Q,
                        const float *K, const float *V, size_t n, size_t pos0, float *out)
{
    if (!k || !aq || k->owner != aq || !Q || !K || !V || !out || layer >= k->L || n == 0 ||
        pos0 + n > k->T)
        return LQ_ERR_INVALID_ARG;
    const lq_llama_config *c = &aq->cfg;
    const size_t H = c->n_heads, KV = k->KV, hd = k->hd, hd8 = k->hd8, P = pos0 + n, kvd = k->kvd;
    lq_status st;
    float *Ks = NULL, *Qs = NULL, *Kc = NULL;
    if (aq->collecting && aq->ksum && aq->vsum && aq->kcount) { /* key and value means */
        for (size_t t = 0; t < n; t++)
            for (size_t i = 0; i < kvd; i++) {
                aq->ksum[layer * kvd + i] += K[t * kvd + i];
                aq->vsum[layer * kvd + i] += V[t * kvd + i];
            }
        aq->kcount[layer] += n;
    }
    if (aq->kmean && aq->vmean) { /* k_j - mu, v_j - nu: see actq.h */
        const float *mu = aq->kmean + layer * kvd, *nu = aq->vmean + layer * kvd;
        if (!(Kc = malloc(2 * n * kvd * sizeof *Kc))) return LQ_ERR_NO_MEMORY;
        for (size_t t = 0; t < n; t++)
            for (size_t i = 0; i < kvd; i++) {
                Kc[t * kvd + i] = K[t * kvd + i] - mu[i];
                Kc[(n + t) * kvd + i] = V[t * kvd + i] - nu[i];
            }
        K = Kc;
        V = Kc + n * kvd;
    }
    if (aq->collecting && aq->kss && aq->qss) { /* key smoothing statistics */
        double *kss = aq->kss + layer * kvd, *qss = aq->qss + layer * kvd;
        for (size_t t = 0; t < n; t++) {
            for (size_t i = 0; i < kvd; i++) kss[i] += (double)K[t * kvd + i] * K[t * kvd + i];
            for (size_t h = 0; h < H; h++)
                for (size_t i = 0; i < hd; i++) {
                    double q = Q[(t * H + h) * hd + i];
                    qss[(h / (H / KV)) * hd + i] += q * q;
                }
        }
    }
    if (aq->ksmooth) { /* k_i / s_i, q_i * s_i: q . k unchanged */
        const float *sm = aq->ksmooth + layer * kvd;
        Ks = malloc(n * kvd * sizeof *Ks);
        Qs = malloc(n * H * hd * sizeof *Qs);
        if (!Ks || !Qs) {
            free(Ks);
            free(Qs);
            free(Kc);
            return LQ_ERR_NO_MEMORY;
        }
        for (size_t t = 0; t < n; t++) {
            for (size_t i = 0; i < kvd; i++) Ks[t * kvd + i] = K[t * kvd + i] / sm[i];
            for (size_t h = 0; h < H; h++)
                for (size_t i = 0; i < hd; i++)
                    Qs[(t * H + h) * hd + i] =
                        Q[(t * H + h) * hd + i] * sm[(h / (H / KV)) * hd + i];
        }
        K = Ks;
        Q = Qs;
    }
    if ((st = encode_side(ctx, k, aq, layer, LQ_AQ_KEY, K, n, pos0, &k->k[layer])) != LQ_OK ||
        (st = encode_side(ctx, k, aq, layer, LQ_AQ_VALUE, V, n, pos0, &k->v[layer])) != LQ_OK) {
        free(Ks);
        free(Qs);
        free(Kc);
        return st;
    }
    const int coded = query_coded(k, aq);
    const lq_nq_coder *cq = lq_actq_coder(aq, layer, LQ_AQ_QUERY),
                      *ck = lq_actq_coder(aq, layer, LQ_AQ_KEY);
    const kv_side *ks = &k->k[layer];
    float *Kd = malloc(P * KV * hd8 * sizeof *Kd),
          *Qd = coded ? malloc(n * H * hd8 * sizeof *Qd) : NULL;
    float *Vd = malloc(P * KV * hd8 * sizeof *Vd), *sc = malloc(P * sizeof *sc);
    float *acc = malloc(n * H * hd8 * sizeof *acc);
    qbuf qb = {0};
    st = LQ_ERR_NO_MEMORY;
    if (!Kd || (coded && !Qd) || !Vd || !sc || !acc) goto out;
    if ((st = prep_queries(ctx, k, aq, layer, Q, n * H, &qb)) != LQ_OK) goto out;
    if (coded) { /* the code values, unscaled, once per call (see exact_dot) */
        if ((st = lq_nq_decode(ck, ks->codes, ks->bidx, P * KV * hd8 / 8, Kd)) != LQ_OK ||
            (st = lq_nq_decode(cq, qb.codes, qb.bidx, n * H * hd8 / 8, Qd)) != LQ_OK)
            goto out;
    } else if ((st = decode_side(k, aq, layer, LQ_AQ_KEY, ks, P, Kd)) != LQ_OK)
        goto out;
    if ((st = decode_side(k, aq, layer, LQ_AQ_VALUE, &k->v[layer], P, Vd)) != LQ_OK) goto out;
    const float scale = 1.0f / sqrtf((float)hd);
    for (size_t t = 0; t < n; t++) {
        size_t p = pos0 + t;
        for (size_t h = 0; h < H; h++) {
            size_t g = h / (H / KV), r = t * H + h;
            float mx = -INFINITY;
            for (size_t j = 0; j <= p; j++) {
                float dot;
                if (coded) {
                    dot = (float)exact_dot(Qd + r * hd8, Kd + (j * KV + g) * hd8, hd8, qb.scales[r],
                                           key_scale(k, ks, j, g));
                } else {
                    const float *q = qb.Qr + r * hd8, *kk = Kd + (j * KV + g) * hd8;
                    dot = 0;
                    for (size_t i = 0; i < hd8; i++) dot += q[i] * kk[i];
                }
                sc[j] = dot * scale;
                if (sc[j] > mx) mx = sc[j];
            }
            double sum = 0;
            for (size_t j = 0; j <= p; j++) {
                sc[j] = expf(sc[j] - mx);
                sum += sc[j];
            }
            float inv = (float)(1.0 / sum), *o = acc + r * hd8;
            for (size_t i = 0; i < hd8; i++) o[i] = 0;
            for (size_t j = 0; j <= p; j++) {
                const float *vv = Vd + (j * KV + g) * hd8;
                float a = sc[j] * inv;
                for (size_t i = 0; i < hd8; i++) o[i] += a * vv[i];
            }
        }
    }
    if (k->set.rotate && (st = lq_rht_rows(ctx, acc, n * H, rot_len(k), hd8, k->set.seed, 1)))
        goto out;
    for (size_t r = 0; r < n * H; r++) memcpy(out + r * hd, acc + r * hd8, hd * sizeof *out);
    if (aq->vmean)
        for (size_t r = 0; r < n * H; r++)
            for (size_t i = 0; i < hd; i++)
                out[r * hd + i] += aq->vmean[layer * kvd + (r % H / (H / KV)) * hd + i];
    st = LQ_OK;
out:
    qbuf_free(&qb);
    free(Ks);
    free(Qs);
    free(Kc);
    free(Kd);
    free(Qd);
    free(Vd);
    free(sc);
    free(acc);
    return st;
}

lq_status lq_kvc_score(lq_ctx *ctx, lq_kvc *k, lq_actq *aq, size_t layer, const float *qrow,
                       size_t h, size_t j, int coded, double *out)
{
    if (!k || !aq || k->owner != aq || !qrow || !out || layer >= k->L || j >= k->T ||
        h >= aq->cfg.n_heads)
        return LQ_ERR_INVALID_ARG;
    if (coded < 0 || coded > 2 || (coded && !query_coded(k, aq))) return LQ_ERR_INVALID_ARG;
    const size_t KV = k->KV, hd8 = k->hd8, g = h / (aq->cfg.n_heads / KV);
    float qs[LQ_KVC_MAX_HD];
    if (k->hd > LQ_KVC_MAX_HD) return LQ_ERR_INVALID_ARG;
    memcpy(qs, qrow, k->hd * sizeof *qs);
    if (aq->ksmooth)
        for (size_t i = 0; i < k->hd; i++) qs[i] *= aq->ksmooth[layer * k->kvd + g * k->hd + i];
    qrow = qs;
    qbuf qb;
    float *Kd = malloc((j + 1) * KV * hd8 * sizeof *Kd);
    lq_status st = LQ_ERR_NO_MEMORY;
    if (!Kd) return st;
    if ((st = prep_queries(ctx, k, aq, layer, qrow, 1, &qb)) != LQ_OK) goto out;
    const kv_side *ks = &k->k[layer];
    if (coded == 2) {
        float *qd = malloc(hd8 * sizeof *qd);
        const lq_nq_coder *ck = lq_actq_coder(aq, layer, LQ_AQ_KEY);
        st = qd ? LQ_OK : LQ_ERR_NO_MEMORY;
        if (st == LQ_OK) st = lq_nq_decode(ck, ks->codes, ks->bidx, (j + 1) * KV * hd8 / 8, Kd);
        if (st == LQ_OK)
            st =
                lq_nq_decode(lq_actq_coder(aq, layer, LQ_AQ_QUERY), qb.codes, qb.bidx, hd8 / 8, qd);
        if (st == LQ_OK)
            *out =
                exact_dot(qd, Kd + (j * KV + g) * hd8, hd8, qb.scales[0], key_scale(k, ks, j, g));
        free(qd);
        goto out;
    }
    if (coded) {
        double d;
        size_t kb = (j * KV + g) * hd8;
        st = lq_nq_dot(lq_actq_coder(aq, layer, LQ_AQ_QUERY), qb.codes, qb.bidx, qb.scales[0],
                       lq_actq_coder(aq, layer, LQ_AQ_KEY), ks->codes + kb, ks->bidx + kb / 8, 1.0f,
                       hd8 / 8, &d);
        if (st == LQ_OK) *out = d * key_scale(k, ks, j, g);
        goto out;
    }
    if ((st = decode_side(k, aq, layer, LQ_AQ_KEY, ks, j + 1, Kd)) != LQ_OK) goto out;
    /* decode-then-dot: with a coded query, against the decoded query codes */
    float *q = qb.Qr;
    if (query_coded(k, aq)) {
        if ((st = lq_nq_decode(lq_actq_coder(aq, layer, LQ_AQ_QUERY), qb.codes, qb.bidx, hd8 / 8,
                               q)) != LQ_OK)
            goto out;
        for (size_t i = 0; i < hd8; i++) q[i] *= qb.scales[0];
    }
    double d = 0;
    const float *kk = Kd + (j * KV + g) * hd8;
    for (size_t i = 0; i < hd8; i++) d += (double)q[i] * kk[i];
    *out = d;
    st = LQ_OK;
out:
    qbuf_free(&qb);
    free(Kd);
    return st;
}

lq_status lq_kvc_value(lq_ctx *ctx, lq_kvc *k, lq_actq *aq, size_t layer, size_t j, size_t g,
                       float *out)
{
    if (!k || !aq || k->owner != aq || !out || layer >= k->L || j >= k->T || g >= k->KV)
        return LQ_ERR_INVALID_ARG;
    const size_t KV = k->KV, hd8 = k->hd8;
    float *D = malloc((j + 1) * KV * hd8 * sizeof *D);
    if (!D) return LQ_ERR_NO_MEMORY;
    lq_status st = decode_side(k, aq, layer, LQ_AQ_VALUE, &k->v[layer], j + 1, D);
    float *v = D + (j * KV + g) * hd8;
    if (st == LQ_OK && k->set.rotate) st = lq_rht_rows(ctx, v, 1, rot_len(k), hd8, k->set.seed, 1);
    if (st == LQ_OK) memcpy(out, v, k->hd * sizeof *out);
    if (st == LQ_OK && aq->vmean)
        for (size_t i = 0; i < k->hd; i++) out[i] += aq->vmean[layer * k->kvd + g * k->hd + i];
    free(D);
    return st;
}
