/*
 * Nearest-entry assignment for the residual initialisation of the additive
 * codebooks (the k-means itself is lq_kmeans of the VQ module). Points of
 * small dimension (g <= 64), distances to all entries at once through the
 * scores kernel (||c||^2 - 2 x.c over a transposed codebook). Parallel over
 * fixed chunks of points: results do not depend on the thread count.
 */
#include <string.h>

#include "mcq/aq_internal.h"

/* Points per task: at least 1024, at most 64 tasks (their k-float scratch
 * stays small even for 2^16 entries). Depends on n only. */
static size_t pt_grain(size_t n)
{
    size_t g = lq_chunks(n, 64);
    return g < 1024 ? 1024 : g;
}

typedef struct assign_job {
    const aq_kernels *kr;
    const float *x, *Ct, *nrm;
    size_t n, d, k;
    uint32_t *assign;
    float *dist;    /* may be NULL */
    float *scratch; /* k floats per chunk */
} assign_job;

static void assign_task(void *arg, size_t t)
{
    assign_job *j = arg;
    size_t gr = pt_grain(j->n), i0 = t * gr, i1 = i0 + gr;
    if (i1 > j->n) i1 = j->n;
    float *sc = j->scratch + t * j->k;
    float u[64];
    for (size_t i = i0; i < i1; i++) {
        const float *xi = j->x + i * j->d;
        double xx = 0.0;
        for (size_t a = 0; a < j->d; a++) {
            u[a] = -xi[a];
            xx += (double)xi[a] * xi[a];
        }
        j->kr->scores(j->Ct, j->k, j->d, u, j->nrm, 1.0f, sc);
        size_t best = 0;
        float bv = sc[0];
        for (size_t c = 1; c < j->k; c++)
            if (sc[c] < bv) {
                bv = sc[c];
                best = c;
            }
        j->assign[i] = (uint32_t)best;
        if (j->dist) {
            double dd = xx + (double)bv;
            j->dist[i] = dd > 0.0 ? (float)dd : 0.0f;
        }
    }
}

static void transpose_norms(const float *c, size_t k, size_t d, float *Ct, float *nrm)
{
    for (size_t i = 0; i < k; i++) {
        double s = 0.0;
        for (size_t a = 0; a < d; a++) {
            Ct[a * k + i] = c[i * d + a];
            s += (double)c[i * d + a] * c[i * d + a];
        }
        nrm[i] = (float)s;
    }
}

/* assign with caller-provided scratch (Ct d*k, nrm k, sc chunks*k). */
static void assign_with(lq_ctx *ctx, const float *x, size_t n, size_t d, const float *c, size_t k,
                        uint32_t *assign, float *dist, float *Ct, float *nrm, float *sc)
{
    transpose_norms(c, k, d, Ct, nrm);
    assign_job j = {aq_kernels_for(lq_simd_for(ctx)), x, Ct, nrm, n, d, k, assign, dist, sc};
    lq_parallel_for(ctx, lq_chunks(n, pt_grain(n)), assign_task, &j);
}

lq_status aq_assign(lq_ctx *ctx, const float *x, size_t n, size_t d, const float *c, size_t k,
                    uint32_t *assign)
{
    size_t nch = lq_chunks(n, pt_grain(n));
    float *Ct = lq_alloc_array(ctx, d * k + k, sizeof(float));
    float *sc = lq_alloc_array(ctx, nch, k * sizeof(float));
    lq_status st = LQ_ERR_NO_MEMORY;
    if (Ct && sc) {
        assign_with(ctx, x, n, d, c, k, assign, NULL, Ct, Ct + d * k, sc);
        st = LQ_OK;
    }
    lq_free(ctx, Ct);
    lq_free(ctx, sc);
    return st;
}
