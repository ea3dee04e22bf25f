/*
 * Internal core services shared by every module: allocation through the
 * context, deterministic parallel loops, the RNG, argument checks, progress.
 * Not installed.
 */
#ifndef LQ_CORE_INTERNAL_H
#define LQ_CORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quant/core.h"

#define LQ_ALIGN 64

/* Resolve NULL to the default context (created once, thread-safely; lives
 * until exit). Never NULL unless creating the default failed, in which case
 * the NULL-context entry points return LQ_ERR_NO_MEMORY. */
lq_ctx *lq_ctx_resolve(lq_ctx *ctx);

/* 64-byte aligned allocation through the context's allocator. Sizes are
 * overflow-checked; NULL on failure (also for size 0 overflow). */
void *lq_alloc(lq_ctx *ctx, size_t size);
void *lq_alloc_array(lq_ctx *ctx, size_t n, size_t elem);
void *lq_calloc_array(lq_ctx *ctx, size_t n, size_t elem);
void lq_free(lq_ctx *ctx, void *p);

/* The context's allocator (copied into objects that outlive their context). */
lq_allocator lq_ctx_allocator(const lq_ctx *ctx);
void *lq_alloc_with(const lq_allocator *a, size_t size);
void lq_free_with(const lq_allocator *a, void *p);

/* Overflow-safe size arithmetic: false on overflow. */
static inline bool lq_mul_ok(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return false;
    *out = a * b;
    return true;
}
static inline bool lq_add_ok(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a) return false;
    *out = a + b;
    return true;
}

/* Run fn(arg, i) for i in [0, n) across the context's threads (or the host's
 * parallel_for). Determinism is the caller's part of the contract: each task
 * must compute the same thing whichever thread runs it, so split work into
 * tasks by a fixed rule (lq_chunks) that does not depend on the thread count,
 * and reduce per-task partial results in task order. Nested calls (from
 * inside a task) and concurrent calls on one context run inline. */
void lq_parallel_for(lq_ctx *ctx, size_t n, lq_task_fn fn, void *arg);

/* Number of chunks of at most `grain` items covering n items (>= 1 if n > 0). */
static inline size_t lq_chunks(size_t n, size_t grain)
{
    return grain == 0 ? n : (n + grain - 1) / grain;
}

size_t lq_ctx_nthreads(lq_ctx *ctx);

/* Progress report through the context (no-op without a callback). */
void lq_progress(lq_ctx *ctx, double fraction, const char *stage);

uint64_t lq_ctx_seed(const lq_ctx *ctx);

/* ---- RNG ---------------------------------------------------------------
 * Counter-free, splittable: a stream is identified by (seed, stream id), so
 * task i of a parallel loop draws from stream i and results do not depend on
 * which thread runs it. Generator: xoshiro256** seeded through splitmix64 of
 * seed ^ mix(stream). Gaussian: Box-Muller in double. Documented in
 * docs/design.md. */
typedef struct lq_rng {
    uint64_t s[4];
} lq_rng;

void lq_rng_init(lq_rng *r, uint64_t seed, uint64_t stream);
uint64_t lq_rng_next(lq_rng *r);
double lq_rng_uniform(lq_rng *r);             /* [0, 1), 53 bits */
double lq_rng_gaussian(lq_rng *r);            /* N(0, 1) */
uint64_t lq_rng_below(lq_rng *r, uint64_t n); /* uniform in [0, n), unbiased */
/* n samples of N(0, sigma^2), two Box-Muller pairs per four uniforms
 * (vectorised with SLEEF when built with it; src/core/vmath.c). */
void lq_gaussian_fill(lq_rng *r, float *x, size_t n, float sigma);

/* ---- checks ------------------------------------------------------------ */
/* True when every one of n floats is finite. */
bool lq_all_finite(const float *x, size_t n);
/* LQ_OK when every one of n floats is finite with |x| <= bound;
 * LQ_ERR_NOT_FINITE on NaN/Inf, else LQ_ERR_OUT_OF_RANGE. */
lq_status lq_check_range(const float *x, size_t n, float bound);
/* Same for a rows x cols matrix with leading dimension ld. */
bool lq_all_finite_2d(const float *x, size_t rows, size_t cols, size_t ld);

/* ---- CPU ----------------------------------------------------------------- */
/* Effective SIMD level for a context (detected level capped by ctx). Modules
 * keep per-level function tables and index them with this; see
 * docs/design.md "Dispatch". */
lq_simd_level lq_simd_for(const lq_ctx *ctx);

/* Cache sizes for blocking decisions (0 if unknown). */
size_t lq_cache_l2(void);
size_t lq_cache_l3(void);

#endif
