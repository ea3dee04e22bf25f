/* VQ codes (encode / decode against a 2^b-entry codebook) and codebook
 * compression (int8 with a scale, low-rank SVD of stacked codebooks). */
#include <math.h>
#include <string.h>

#include "core/linalg.h"
#include "vq/vq_internal.h"

#define ENC_CHUNK 4096 /* points per task: fixed, so sums do not depend on threads */
#define ENC_SUB 256    /* points per kernel call (stack buffers) */

static int vq_dim_ok(size_t d) { return d == 1 || d == 2 || d == 4 || d == 8; }

typedef struct enc_job {
    const float *x, *w, *ct;
    size_t n, d, k, kpad;
    lq_vq_nearest_fn fn;
    uint16_t *codes;
    double *err; /* per chunk */
} enc_job;

static void enc_task(void *arg, size_t t)
{
    enc_job *j = arg;
    size_t i0 = t * ENC_CHUNK, i1 = i0 + ENC_CHUNK;
    if (i1 > j->n) i1 = j->n;
    uint32_t idx[ENC_SUB];
    float dist[ENC_SUB];
    double e = 0;
    for (size_t s = i0; s < i1; s += ENC_SUB) {
        size_t m = i1 - s < ENC_SUB ? i1 - s : ENC_SUB;
        j->fn(j->x + s * j->d, j->w ? j->w + s * j->d : NULL, m, j->d, j->ct, j->k, j->kpad, idx,
              dist);
        for (size_t i = 0; i < m; i++) {
            j->codes[s + i] = (uint16_t)idx[i];
            e += (double)dist[i];
        }
    }
    j->err[t] = e;
}

lq_status lq_vq_encode(lq_ctx *ctx, const float *x, const float *weights, size_t n, size_t d,
                       const float *codebook, unsigned bits, uint16_t *codes, double *err)
{
    if (!x || !codebook || !codes || n == 0 || !vq_dim_ok(d) || bits < 1 || bits > 16)
        return LQ_ERR_INVALID_ARG;
    size_t k = (size_t)1 << bits, nd;
    if (!lq_mul_ok(n, d, &nd)) return LQ_ERR_INVALID_ARG;
    if (!lq_all_finite(x, nd) || !lq_all_finite(codebook, k * d)) return LQ_ERR_NOT_FINITE;
    if (weights) {
        if (!lq_all_finite(weights, nd)) return LQ_ERR_NOT_FINITE;
        for (size_t i = 0; i < nd; i++)
            if (weights[i] < 0) return LQ_ERR_INVALID_ARG;
    }
    lq_ctx *c = lq_ctx_resolve(ctx);
    if (!c) return LQ_ERR_NO_MEMORY;
    size_t kpad = lq_vq_kpad(k), nchunks = lq_chunks(n, ENC_CHUNK);
    float *ct = lq_alloc_array(c, d * kpad, sizeof(float));
    double *e = lq_alloc_array(c, nchunks, sizeof(double));
    if (!ct || !e) {
        lq_free(c, ct);
        lq_free(c, e);
        return LQ_ERR_NO_MEMORY;
    }
    lq_vq_transpose(codebook, k, d, ct, kpad);
    enc_job j = {x, weights, ct, n, d, k, kpad, lq_vq_nearest_for(lq_simd_for(c), d), codes, e};
    lq_parallel_for(c, nchunks, enc_task, &j);
    double tot = 0;
    for (size_t t = 0; t < nchunks; t++) tot += e[t];
    if (err) *err = tot;
    lq_free(c, ct);
    lq_free(c, e);
    return LQ_OK;
}

lq_status lq_vq_decode(const uint16_t *codes, size_t n, size_t d, const float *codebook,
                       unsigned bits, float *y)
{
    if (!codes || !codebook || !y || n == 0 || !vq_dim_ok(d) || bits < 1 || bits > 16)
        return LQ_ERR_INVALID_ARG;
    size_t k = (size_t)1 << bits, nd;
    if (!lq_mul_ok(n, d, &nd)) return LQ_ERR_INVALID_ARG;
    for (size_t i = 0; i < n; i++) {
        if (codes[i] >= k) return LQ_ERR_CORRUPT;
        memcpy(y + i * d, codebook + (size_t)codes[i] * d, d * sizeof(float));
    }
    return LQ_OK;
}

lq_status lq_codebook_int8(const float *c, size_t n, int8_t *q, float *scale)
{
    if (!c || !q || !scale || n == 0) return LQ_ERR_INVALID_ARG;
    if (!lq_all_finite(c, n)) return LQ_ERR_NOT_FINITE;
    float m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabsf(c[i]) > m) m = fabsf(c[i]);
    float s = m > 0 ? m / 127.0f : 1.0f;
    if (!(s > 0) || !isfinite(s)) s = 1.0f; /* subnormal underflow */
    for (size_t i = 0; i < n; i++) {
        float v = rintf(c[i] / s);
        if (v > 127.0f) v = 127.0f;
        if (v < -127.0f) v = -127.0f;
        q[i] = (int8_t)v;
    }
    *scale = s;
    return LQ_OK;
}

lq_status lq_codebooks_svd(lq_ctx *ctx, float *codebooks, size_t m, size_t k, size_t d, size_t rank,
                           float *U, float *Vt)
{
    size_t nc, tot;
    if (!codebooks || m == 0 || k == 0 || d == 0 || rank == 0) return LQ_ERR_INVALID_ARG;
    if (!lq_mul_ok(k, d, &nc) || !lq_mul_ok(m, nc, &tot)) return LQ_ERR_INVALID_ARG;
    if (!lq_all_finite(codebooks, tot)) return LQ_ERR_NOT_FINITE;
    lq_ctx *c = lq_ctx_resolve(ctx);
    if (!c) return LQ_ERR_NO_MEMORY;
    size_t r = m < nc ? m : nc, rk = rank < r ? rank : r;
    double *A = lq_alloc_array(c, tot, sizeof(double));
    double *Ud = lq_alloc_array(c, m * r, sizeof(double));
    double *s = lq_alloc_array(c, r, sizeof(double));
    double *V = lq_alloc_array(c, r * nc, sizeof(double));
    lq_status st = LQ_ERR_NO_MEMORY;
    if (!A || !Ud || !s || !V) goto out;
    for (size_t i = 0; i < tot; i++) A[i] = codebooks[i];
    st = lq_dsvd_jacobi(c, A, m, nc, nc, Ud, r, s, V, nc);
    if (st != LQ_OK) goto out;
    for (size_t g = 0; g < m; g++)
        for (size_t q = 0; q < nc; q++) {
            double v = 0;
            for (size_t i = 0; i < rk; i++) v += Ud[g * r + i] * s[i] * V[i * nc + q];
            codebooks[g * nc + q] = (float)v;
        }
    if (U)
        for (size_t g = 0; g < m; g++)
            for (size_t i = 0; i < rank; i++)
                U[g * rank + i] = i < rk ? (float)(Ud[g * r + i] * s[i]) : 0.0f;
    if (Vt)
        for (size_t i = 0; i < rank; i++)
            for (size_t q = 0; q < nc; q++) Vt[i * nc + q] = i < rk ? (float)V[i * nc + q] : 0.0f;
out:
    lq_free(c, A);
    lq_free(c, Ud);
    lq_free(c, s);
    lq_free(c, V);
    return st;
}
