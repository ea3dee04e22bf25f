/*
 * Small k-means (Lloyd) for the residual initialisation of the additive
 * codebooks. Points of small dimension (g <= 64), distances to all centroids
 * at once through the scores kernel (||c||^2 - 2 x.c over a transposed
 * codebook). Init: k-means++ (D^2 sampling) for k <= 1024, k distinct random
 * points beyond (k-means++ is O(n k d) and would dominate for 2^16 entries).
 * Empty clusters take the point farthest from its centroid. Parallel over
 * fixed chunks of points, partial sums reduced in chunk order: results do
 * not depend on the thread count.
 */
#include <float.h>
#include <string.h>

#include "mcq/aq_internal.h"

#define PT_GRAIN 1024

typedef struct assign_job {
    const aq_kernels *kr;
    const float *x, *Ct, *nrm;
    size_t n, d, k;
    uint32_t *assign;
    float *dist;     /* may be NULL */
    float *scratch;  /* k floats per chunk */
} assign_job;

static void assign_task(void *arg, size_t t)
{
    assign_job *j = arg;
    size_t i0 = t * PT_GRAIN, i1 = i0 + PT_GRAIN;
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
    lq_parallel_for(ctx, lq_chunks(n, PT_GRAIN), assign_task, &j);
}

lq_status aq_assign(lq_ctx *ctx, const float *x, size_t n, size_t d, const float *c, size_t k,
                    uint32_t *assign)
{
    size_t nch = lq_chunks(n, PT_GRAIN);
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

lq_status aq_kmeans(lq_ctx *ctx, const float *x, size_t n, size_t d, size_t k, unsigned iters,
                    uint64_t stream, float *centroids)
{
    size_t nch = lq_chunks(n, PT_GRAIN);
    float *Ct = lq_alloc_array(ctx, d * k + k, sizeof(float));
    float *sc = lq_alloc_array(ctx, nch, k * sizeof(float));
    float *dist = lq_alloc_array(ctx, n, sizeof(float));
    uint32_t *asg = lq_alloc_array(ctx, n, sizeof(uint32_t));
    double *sum = lq_alloc_array(ctx, k * d + k, sizeof(double));
    if (!Ct || !sc || !dist || !asg || !sum) {
        lq_free(ctx, Ct);
        lq_free(ctx, sc);
        lq_free(ctx, dist);
        lq_free(ctx, asg);
        lq_free(ctx, sum);
        return LQ_ERR_NO_MEMORY;
    }
    float *nrm = Ct + d * k;
    double *cnt = sum + k * d;
    lq_rng rng;
    lq_rng_init(&rng, lq_ctx_seed(ctx), 0x4151000000ull + stream);

    /* ---- init ---- */
    if (n <= k) {
        /* fewer points than centroids: every point is a centroid, the rest
         * copies of the first points (they stay unused) */
        for (size_t c = 0; c < k; c++) memcpy(centroids + c * d, x + (c % n) * d, d * sizeof(float));
    } else if (k <= 1024) {
        size_t first = (size_t)lq_rng_below(&rng, n);
        memcpy(centroids, x + first * d, d * sizeof(float));
        for (size_t i = 0; i < n; i++) dist[i] = FLT_MAX;
        for (size_t c = 1; c < k; c++) {
            const float *prev = centroids + (c - 1) * d;
            double tot = 0.0;
            for (size_t i = 0; i < n; i++) {
                double s = 0.0;
                for (size_t a = 0; a < d; a++) {
                    double t = (double)x[i * d + a] - prev[a];
                    s += t * t;
                }
                if (s < dist[i]) dist[i] = (float)s;
                tot += dist[i];
            }
            size_t pick = (size_t)lq_rng_below(&rng, n);
            if (tot > 0.0) {
                double r = lq_rng_uniform(&rng) * tot, acc = 0.0;
                for (pick = 0; pick + 1 < n; pick++) {
                    acc += dist[pick];
                    if (acc > r) break;
                }
            }
            memcpy(centroids + c * d, x + pick * d, d * sizeof(float));
        }
    } else {
        /* partial Fisher-Yates over indices, held in asg */
        for (size_t i = 0; i < n; i++) asg[i] = (uint32_t)i;
        for (size_t c = 0; c < k; c++) {
            size_t r = c + (size_t)lq_rng_below(&rng, n - c);
            uint32_t t = asg[c];
            asg[c] = asg[r];
            asg[r] = t;
            memcpy(centroids + c * d, x + (size_t)asg[c] * d, d * sizeof(float));
        }
    }

    /* ---- Lloyd ---- */
    for (unsigned it = 0; it < iters && n > k; it++) {
        assign_with(ctx, x, n, d, centroids, k, asg, dist, Ct, nrm, sc);
        memset(sum, 0, (k * d + k) * sizeof(double));
        for (size_t i = 0; i < n; i++) {
            double *s = sum + (size_t)asg[i] * d;
            for (size_t a = 0; a < d; a++) s[a] += x[i * d + a];
            cnt[asg[i]] += 1.0;
        }
        for (size_t c = 0; c < k; c++) {
            if (cnt[c] > 0.0) {
                for (size_t a = 0; a < d; a++) centroids[c * d + a] = (float)(sum[c * d + a] / cnt[c]);
                continue;
            }
            /* empty: take the farthest point (ties: lowest index) */
            size_t far = 0;
            for (size_t i = 1; i < n; i++)
                if (dist[i] > dist[far]) far = i;
            memcpy(centroids + c * d, x + far * d, d * sizeof(float));
            dist[far] = 0.0f;
        }
    }
    lq_free(ctx, Ct);
    lq_free(ctx, sc);
    lq_free(ctx, dist);
    lq_free(ctx, asg);
    lq_free(ctx, sum);
    return LQ_OK;
}
