/*
 * Fast Walsh-Hadamard transform and the randomized Hadamard rotation R
 * (scheme in quant/lattice.h and docs/algorithms.md). The butterflies run
 * stage by stage (span 1, 2, 4, ...); every ISA computes the same a + b and
 * a - b values, so the transform is bit-identical across ISAs.
 */
#include <math.h>
#include <string.h>

#include "lattice/lattice_internal.h"

void lq_fwht_scalar(float *x, size_t n)
{
    for (size_t h = 1; h < n; h <<= 1)
        for (size_t i = 0; i < n; i += 2 * h)
            for (size_t j = i; j < i + h; j++) {
                float a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
}

static bool is_pow2(size_t n) { return n && !(n & (n - 1)); }

static size_t pow2_floor(size_t n)
{
    size_t p = 1;
    while (p <= n / 2) p <<= 1;
    return p;
}

/* x[i] *= +-1 from the sign stream (seed, stream): bit i of the stream. */
static void apply_signs(float *x, size_t n, uint64_t seed, uint64_t stream)
{
    lq_rng r;
    lq_rng_init(&r, seed, stream);
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if ((i & 63) == 0) w = lq_rng_next(&r);
        if ((w >> (i & 63)) & 1) x[i] = -x[i];
    }
}

static void hadamard_scaled(const lq_lattice_kernels *k, float *x, size_t p)
{
    k->fwht(x, p);
    const float inv = (float)(1.0 / sqrt((double)p));
    for (size_t i = 0; i < p; i++) x[i] *= inv;
}

void lq_rht_apply(const lq_lattice_kernels *k, float *x, size_t n, uint64_t seed, int inverse)
{
    size_t p = pow2_floor(n);
    if (is_pow2(n)) {
        if (!inverse) {
            apply_signs(x, n, seed, 0);
            hadamard_scaled(k, x, n);
        } else {
            hadamard_scaled(k, x, n);
            apply_signs(x, n, seed, 0);
        }
        return;
    }
    if (!inverse) {
        apply_signs(x, n, seed, 0);
        hadamard_scaled(k, x, p);
        apply_signs(x, n, seed, 1);
        hadamard_scaled(k, x + (n - p), p);
    } else {
        hadamard_scaled(k, x + (n - p), p);
        apply_signs(x, n, seed, 1);
        hadamard_scaled(k, x, p);
        apply_signs(x, n, seed, 0);
    }
}

lq_status lq_fwht(float *x, size_t n)
{
    if (!x || !is_pow2(n)) return LQ_ERR_INVALID_ARG;
    lq_lattice_kernels_at(LQ_SIMD_AUTO)->fwht(x, n);
    return LQ_OK;
}

static lq_status rht_one(float *x, size_t n, uint64_t seed, int inverse)
{
    if (!x || n == 0) return LQ_ERR_INVALID_ARG;
    const lq_lattice_kernels *k = lq_lattice_kernels_at(LQ_SIMD_AUTO);
    if (!k->finite(x, n)) return LQ_ERR_NOT_FINITE;
    lq_rht_apply(k, x, n, seed, inverse);
    return LQ_OK;
}

lq_status lq_rht_forward(float *x, size_t n, uint64_t seed) { return rht_one(x, n, seed, 0); }

lq_status lq_rht_inverse(float *x, size_t n, uint64_t seed) { return rht_one(x, n, seed, 1); }

typedef struct rht_job {
    const lq_lattice_kernels *k;
    float *X;
    size_t count, n, ld;
    uint64_t seed;
    int inverse;
} rht_job;

#define RHT_GRAIN 16

static void rht_task(void *arg, size_t t)
{
    rht_job *j = arg;
    size_t r0 = t * RHT_GRAIN, r1 = r0 + RHT_GRAIN;
    if (r1 > j->count) r1 = j->count;
    for (size_t r = r0; r < r1; r++)
        lq_rht_apply(j->k, j->X + r * j->ld, j->n, j->seed, j->inverse);
}

lq_status lq_rht_rows(lq_ctx *ctx, float *X, size_t count, size_t n, size_t ld, uint64_t seed,
                      int inverse)
{
    size_t tot;
    if (!X || n == 0 || count == 0 || ld < n) return LQ_ERR_INVALID_ARG;
    if (!lq_mul_ok(count - 1, ld, &tot) || !lq_add_ok(tot, n, &tot)) return LQ_ERR_INVALID_ARG;
    if (!lq_ctx_resolve(ctx)) return LQ_ERR_NO_MEMORY;
    const lq_lattice_kernels *k = lq_lattice_kernels_at(lq_simd_for(ctx));
    for (size_t r = 0; r < count; r++)
        if (!k->finite(X + r * ld, n)) return LQ_ERR_NOT_FINITE;
    rht_job j = {k, X, count, n, ld, seed, inverse};
    lq_parallel_for(ctx, lq_chunks(count, RHT_GRAIN), rht_task, &j);
    return LQ_OK;
}

void lq_rht_pad_forward(const lq_lattice_kernels *k, const float *x, size_t len, size_t n8,
                        int rotate, uint64_t seed, float *out)
{
    memcpy(out, x, len * sizeof(float));
    memset(out + len, 0, (n8 - len) * sizeof(float));
    if (rotate) lq_rht_apply(k, out, n8, seed, 0);
}
