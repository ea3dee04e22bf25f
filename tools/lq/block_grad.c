/* Forward with saved intermediates and backward of one Llama block
 * (block_grad.h). Notation per token t: x0 input, xn1 = RMSNorm(x0) (gain
 * a), q k v = xn1 Wq^T, Wk^T, Wv^T, RoPE on q and k, causal softmax
 * attention per head (kv head h / (H / KV)), x1 = x0 + att Wo^T, xn2 =
 * RMSNorm(x1) (gain f), h1 = xn2 Wg^T, h3 = xn2 Wu^T, m = silu(h1) h3,
 * y = x1 + m Wd^T. The backward applies the chain rule through each step
 * in reverse; RMSNorm y_i = a_i r x_i with r = (sum x^2 / d + eps)^-1/2
 * gives dx_i = r a_i dy_i - r^3 / d x_i sum_j a_j dy_j x_j; softmax rows
 * give ds_j = P_j (dP_j - sum_k P_k dP_k); RoPE is a rotation per pair, its
 * backward the transposed rotation. */
#include "block_grad.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/linalg.h"

struct lq_block_tape {
    lq_llama_config c;
    size_t max_n, n;
    float *cosv, *sinv; /* max_n x hd/2 */
    float *x0, *r1, *xn1, *q, *k, *v, *P, *att, *x1, *r2, *xn2, *h1, *h3, *sg, *m;
    /* backward scratch */
    float *dx1, *dxn, *dm, *dh1, *dh3, *datt, *dq, *dk, *dv;
    float *mem;
};

void lq_block_tape_free(lq_block_tape *t)
{
    if (!t) return;
    free(t->mem);
    free(t);
}

lq_status lq_block_tape_create(const lq_llama_config *c, size_t max_n, lq_block_tape **out)
{
    if (!c || !out || max_n == 0 || max_n > c->seq_len) return LQ_ERR_INVALID_ARG;
    size_t n = max_n, d = c->dim, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim,
           hid = c->hidden, h2 = c->head_dim / 2;
    size_t sizes[] = {n * h2,
                      n * h2, /* cos, sin */
                      n * d,
                      n,
                      n * d,
                      n * qd,
                      n * kvd,
                      n * kvd, /* x0 r1 xn1 q k v */
                      c->n_heads * n * n,
                      n * qd,
                      n * d,
                      n,
                      n * d, /* P att x1 r2 xn2 */
                      n * hid,
                      n * hid,
                      n * hid,
                      n * hid, /* h1 h3 sg m */
                      n * d,
                      n * d,
                      n * hid,
                      n * hid,
                      n * hid,
                      n * qd,
                      n * qd,
                      n * kvd,
                      n * kvd};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += sizes[i];
    lq_block_tape *t = calloc(1, sizeof *t);
    float *mem = t ? malloc(total * sizeof *mem) : NULL;
    if (!mem) {
        free(t);
        return LQ_ERR_NO_MEMORY;
    }
    float **ptr[] = {&t->cosv, &t->sinv, &t->x0,  &t->r1,  &t->xn1,  &t->q,  &t->k,  &t->v, &t->P,
                     &t->att,  &t->x1,   &t->r2,  &t->xn2, &t->h1,   &t->h3, &t->sg, &t->m, &t->dx1,
                     &t->dxn,  &t->dm,   &t->dh1, &t->dh3, &t->datt, &t->dq, &t->dk, &t->dv};
    float *p = mem;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *ptr[i] = p;
        p += sizes[i];
    }
    t->mem = mem;
    t->c = *c;
    t->max_n = max_n;
    /* the angles as model.c's rope() computes them */
    for (size_t pos = 0; pos < n; pos++)
        for (size_t i = 0; i < h2; i++) {
            float freq = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)c->head_dim);
            float a = (float)pos * freq;
            t->cosv[pos * h2 + i] = cosf(a);
            t->sinv[pos * h2 + i] = sinf(a);
        }
    *out = t;
    return LQ_OK;
}

/* Y (n x rows) = X (n x cols) W^T */
static lq_status mm_nt(lq_ctx *ctx, const float *X, const float *W, size_t n, size_t rows,
                       size_t cols, float *Y)
{
    return lq_sgemm(ctx, LQ_NO_TRANS, LQ_TRANS, n, rows, cols, 1.0f, X, cols, W, cols, 0.0f, Y,
                    rows);
}

/* dX (n x cols) (+)= dY (n x rows) W (rows x cols) */
static lq_status mm_nn(lq_ctx *ctx, const float *dY, const float *W, size_t n, size_t rows,
                       size_t cols, float beta, float *dX)
{
    return lq_sgemm(ctx, LQ_NO_TRANS, LQ_NO_TRANS, n, cols, rows, 1.0f, dY, rows, W, cols, beta, dX,
                    cols);
}

/* dW (rows x cols) += dY^T (rows x n) X (n x cols) */
static lq_status mm_tn(lq_ctx *ctx, const float *dY, const float *X, size_t n, size_t rows,
                       size_t cols, float *dW)
{
    if (!dW) return LQ_OK;
    return lq_sgemm(ctx, LQ_TRANS, LQ_NO_TRANS, rows, cols, n, 1.0f, dY, rows, X, cols, 1.0f, dW,
                    cols);
}

static void rms_fwd(float *out, float *r, const float *x, const float *w, size_t d, float eps)
{
    double ss = 0;
    for (size_t i = 0; i < d; i++) ss += (double)x[i] * x[i];
    float rr = (float)(1.0 / sqrt(ss / (double)d + (double)eps));
    *r = rr;
    for (size_t i = 0; i < d; i++) out[i] = w[i] * (rr * x[i]);
}

/* dx (+)= d RMSNorm^T dy (accumulates into dx) */
static void rms_bwd(float *dx, const float *dy, const float *x, const float *w, float r, size_t d)
{
    double s = 0;
    for (size_t i = 0; i < d; i++) s += (double)w[i] * dy[i] * x[i];
    double rr = r, k = rr * rr * rr * s / (double)d;
    for (size_t i = 0; i < d; i++) dx[i] += (float)(rr * w[i] * dy[i] - k * x[i]);
}

static void rope_apply(const lq_block_tape *t, float *v, size_t heads, size_t pos, int backward)
{
    size_t hd = t->c.head_dim, h2 = hd / 2;
    const float *cs = t->cosv + pos * h2, *sn = t->sinv + pos * h2;
    for (size_t h = 0; h < heads; h++) {
        float *x = v + h * hd;
        for (size_t i = 0; i < h2; i++) {
            float x0 = x[i], x1 = x[i + h2], c = cs[i], s = backward ? -sn[i] : sn[i];
            x[i] = x0 * c - x1 * s;
            x[i + h2] = x0 * s + x1 * c;
        }
    }
}

/* 1 / (1 + e^-z), without libm's overflow path for z < -80 (the result is
 * then below 2e-35; 0 changes silu(z) = z sigmoid(z) by less than 1e-33) */
static float sigmoid(float z) { return z > -80.0f ? 1.0f / (1.0f + expf(-z)) : 0.0f; }

lq_status lq_block_forward(lq_ctx *ctx, const lq_block_weights *w, lq_block_tape *t, const float *X,
                           size_t n, float *Y)
{
    if (!w || !t || !X || !Y || n == 0 || n > t->max_n) return LQ_ERR_INVALID_ARG;
    const lq_llama_config *c = &t->c;
    size_t d = c->dim, hd = c->head_dim, H = c->n_heads, KV = c->n_kv_heads, qd = H * hd,
           kvd = KV * hd, hid = c->hidden;
    lq_status st;
    t->n = n;
    memcpy(t->x0, X, n * d * sizeof *X);
    for (size_t i = 0; i < n; i++)
        rms_fwd(t->xn1 + i * d, t->r1 + i, X + i * d, w->norm_att, d, c->norm_eps);
    if ((st = mm_nt(ctx, t->xn1, w->w[LQ_LIN_Q], n, qd, d, t->q)) ||
        (st = mm_nt(ctx, t->xn1, w->w[LQ_LIN_K], n, kvd, d, t->k)) ||
        (st = mm_nt(ctx, t->xn1, w->w[LQ_LIN_V], n, kvd, d, t->v)))
        return st;
    for (size_t i = 0; i < n; i++) {
        rope_apply(t, t->q + i * qd, H, i, 0);
        rope_apply(t, t->k + i * kvd, KV, i, 0);
    }
    const float scale = 1.0f / sqrtf((float)hd);
    for (size_t i = 0; i < n; i++)
        for (size_t h = 0; h < H; h++) {
            const float *q = t->q + i * qd + h * hd;
            size_t g = h / (H / KV);
            float *P = t->P + (h * n + i) * n, mx = -INFINITY;
            for (size_t j = 0; j <= i; j++) {
                const float *k = t->k + j * kvd + g * hd;
                float dot = 0;
                for (size_t e = 0; e < hd; e++) dot += q[e] * k[e];
                P[j] = dot * scale;
                if (P[j] > mx) mx = P[j];
            }
            double sum = 0;
            for (size_t j = 0; j <= i; j++) {
                /* below -80 the float result is 0 or subnormal: skip libm's
                 * slow underflow path (the sum is >= 1 from the max) */
                float z = P[j] - mx;
                P[j] = z > -80.0f ? expf(z) : 0.0f;
                sum += P[j];
            }
            float inv = (float)(1.0 / sum), *o = t->att + i * qd + h * hd;
            for (size_t e = 0; e < hd; e++) o[e] = 0;
            for (size_t j = 0; j <= i; j++) {
                P[j] *= inv;
                const float *v = t->v + j * kvd + g * hd;
                for (size_t e = 0; e < hd; e++) o[e] += P[j] * v[e];
            }
        }
    if ((st = mm_nt(ctx, t->att, w->w[LQ_LIN_O], n, d, qd, t->x1))) return st;
    for (size_t i = 0; i < n * d; i++) t->x1[i] += X[i];
    for (size_t i = 0; i < n; i++)
        rms_fwd(t->xn2 + i * d, t->r2 + i, t->x1 + i * d, w->norm_ffn, d, c->norm_eps);
    if ((st = mm_nt(ctx, t->xn2, w->w[LQ_LIN_GATE], n, hid, d, t->h1)) ||
        (st = mm_nt(ctx, t->xn2, w->w[LQ_LIN_UP], n, hid, d, t->h3)))
        return st;
    for (size_t i = 0; i < n * hid; i++) {
        t->sg[i] = sigmoid(t->h1[i]);
        t->m[i] = t->h1[i] * t->sg[i] * t->h3[i];
    }
    if ((st = mm_nt(ctx, t->m, w->w[LQ_LIN_DOWN], n, d, hid, Y))) return st;
    for (size_t i = 0; i < n * d; i++) Y[i] += t->x1[i];
    return LQ_OK;
}

lq_status lq_block_backward(lq_ctx *ctx, const lq_block_weights *w, lq_block_tape *t,
                            const float *dY, float *const dW[LQ_LIN_COUNT], float *dX)
{
    if (!w || !t || !dY || !dW || t->n == 0) return LQ_ERR_INVALID_ARG;
    const lq_llama_config *c = &t->c;
    size_t n = t->n, d = c->dim, hd = c->head_dim, H = c->n_heads, KV = c->n_kv_heads, qd = H * hd,
           kvd = KV * hd, hid = c->hidden;
    lq_status st;
    /* y = x1 + m Wd^T */
    memcpy(t->dx1, dY, n * d * sizeof *dY);
    if ((st = mm_tn(ctx, dY, t->m, n, d, hid, dW[LQ_LIN_DOWN])) ||
        (st = mm_nn(ctx, dY, w->w[LQ_LIN_DOWN], n, d, hid, 0.0f, t->dm)))
        return st;
    for (size_t i = 0; i < n * hid; i++) {
        float z = t->h1[i], sg = t->sg[i];
        t->dh3[i] = t->dm[i] * z * sg;
        t->dh1[i] = t->dm[i] * t->h3[i] * (sg * (1.0f + z * (1.0f - sg)));
    }
    if ((st = mm_tn(ctx, t->dh1, t->xn2, n, hid, d, dW[LQ_LIN_GATE])) ||
        (st = mm_tn(ctx, t->dh3, t->xn2, n, hid, d, dW[LQ_LIN_UP])) ||
        (st = mm_nn(ctx, t->dh1, w->w[LQ_LIN_GATE], n, hid, d, 0.0f, t->dxn)) ||
        (st = mm_nn(ctx, t->dh3, w->w[LQ_LIN_UP], n, hid, d, 1.0f, t->dxn)))
        return st;
    for (size_t i = 0; i < n; i++)
        rms_bwd(t->dx1 + i * d, t->dxn + i * d, t->x1 + i * d, w->norm_ffn, t->r2[i], d);
    /* x1 = x0 + att Wo^T */
    if ((st = mm_tn(ctx, t->dx1, t->att, n, d, qd, dW[LQ_LIN_O])) ||
        (st = mm_nn(ctx, t->dx1, w->w[LQ_LIN_O], n, d, qd, 0.0f, t->datt)))
        return st;
    memset(t->dq, 0, n * qd * sizeof *t->dq);
    memset(t->dk, 0, n * kvd * sizeof *t->dk);
    memset(t->dv, 0, n * kvd * sizeof *t->dv);
    const float scale = 1.0f / sqrtf((float)hd);
    float *dP = t->dm; /* n floats of scratch (dm is no longer needed) */
    for (size_t i = 0; i < n; i++)
        for (size_t h = 0; h < H; h++) {
            size_t g = h / (H / KV);
            const float *P = t->P + (h * n + i) * n, *q = t->q + i * qd + h * hd;
            const float *dO = t->datt + i * qd + h * hd;
            float *dq = t->dq + i * qd + h * hd;
            double sp = 0;
            for (size_t j = 0; j <= i; j++) {
                const float *v = t->v + j * kvd + g * hd;
                float s = 0;
                for (size_t e = 0; e < hd; e++) s += dO[e] * v[e];
                dP[j] = s;
                sp += (double)P[j] * s;
                float *dv = t->dv + j * kvd + g * hd;
                for (size_t e = 0; e < hd; e++) dv[e] += P[j] * dO[e];
            }
            for (size_t j = 0; j <= i; j++) {
                float ds = P[j] * (dP[j] - (float)sp) * scale;
                const float *k = t->k + j * kvd + g * hd;
                float *dk = t->dk + j * kvd + g * hd;
                for (size_t e = 0; e < hd; e++) {
                    dq[e] += ds * k[e];
                    dk[e] += ds * q[e];
                }
            }
        }
    for (size_t i = 0; i < n; i++) {
        rope_apply(t, t->dq + i * qd, H, i, 1);
        rope_apply(t, t->dk + i * kvd, KV, i, 1);
    }
    if ((st = mm_tn(ctx, t->dq, t->xn1, n, qd, d, dW[LQ_LIN_Q])) ||
        (st = mm_tn(ctx, t->dk, t->xn1, n, kvd, d, dW[LQ_LIN_K])) ||
        (st = mm_tn(ctx, t->dv, t->xn1, n, kvd, d, dW[LQ_LIN_V])))
        return st;
    if (!dX) return LQ_OK;
    if ((st = mm_nn(ctx, t->dq, w->w[LQ_LIN_Q], n, qd, d, 0.0f, t->dxn)) ||
        (st = mm_nn(ctx, t->dk, w->w[LQ_LIN_K], n, kvd, d, 1.0f, t->dxn)) ||
        (st = mm_nn(ctx, t->dv, w->w[LQ_LIN_V], n, kvd, d, 1.0f, t->dxn)))
        return st;
    memcpy(dX, t->dx1, n * d * sizeof *dX);
    for (size_t i = 0; i < n; i++)
        rms_bwd(dX + i * d, t->dxn + i * d, t->x0 + i * d, w->norm_att, t->r1[i], d);
    return LQ_OK;
}
