/* Shared helpers for the Check suites: failing allocator, generators. */
#ifndef LQ_TEST_COMMON_H
#define LQ_TEST_COMMON_H

#include <check.h>
#include <stddef.h>

/* Check records every *passing* assertion through its IPC channel
 * (_mark_point), so an assertion inside a loop over a million elements costs
 * minutes (quadratic unpacking in the parent). Here a passing assertion
 * records nothing; a failing one reports file, line and message as before.
 * Every ck_assert_* macro funnels into ck_assert_msg. */
#undef ck_assert_msg
#define ck_assert_msg(expr, ...)                                                                   \
    ((expr)                                                                                        \
         ? (void)0                                                                                 \
         : _ck_assert_failed(__FILE__, __LINE__, "Assertion '" #expr "' failed", ##__VA_ARGS__))
#include <stdint.h>

#include "quant.h"

/* ---- allocation-failure harness --------------------------------------
 * A counting allocator that fails the k-th allocation (1-based; 0 = never).
 * lq_test_alloc_sweep runs `body` with fail_at = 1, 2, ... until a run makes
 * no failing allocation; it asserts that each failed run returned
 * LQ_ERR_NO_MEMORY (or the status `body` maps it to), that every run freed
 * all it allocated, and that the final run returned LQ_OK. `body` gets a
 * context whose allocator is the failing one. */
typedef struct lq_test_alloc {
    size_t fail_at; /* 0: never fail */
    size_t count;   /* allocations attempted */
    size_t live;    /* allocations not yet freed */
    size_t failed;  /* 1 once the failing allocation happened */
    int sticky;     /* 1: every allocation from fail_at on fails */
} lq_test_alloc;

void lq_test_alloc_config(lq_test_alloc *ta, lq_ctx_config *cfg);
typedef lq_status (*lq_test_body)(lq_ctx *ctx, void *arg);
/* Returns the number of allocation points exercised. n_threads: 1 or 2. */
size_t lq_test_alloc_sweep(lq_test_body body, void *arg, size_t n_threads);
/* The same with every allocation from the k-th on failing (k = 1, 2, ...):
 * the error paths taken when memory stays exhausted. */
size_t lq_test_alloc_sweep_from(lq_test_body body, void *arg, size_t n_threads);

/* Context with n threads (and optional SIMD cap); aborts the test on error. */
lq_ctx *lq_test_ctx(size_t n_threads, lq_simd_level cap);

/* ---- generators (deterministic, seeded) -------------------------------- */
void lq_test_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed);
void lq_test_fill_gaussian(float *x, size_t n, float sigma, uint64_t seed);
/* Student-t with nu degrees of freedom (heavy tails), times scale. */
void lq_test_fill_student(float *x, size_t n, unsigned nu, float scale, uint64_t seed);
/* Correlated layer: W rows x cols heavy-tailed (Student-t like), X = Z A with
 * a random mixing A (cols x cols), N samples; H = 2/N X^T X (cols x cols). */
void lq_test_correlated_layer(size_t rows, size_t cols, size_t nsamples, uint64_t seed, float *W,
                              float *H);

double lq_test_max_abs_diff(const float *a, const float *b, size_t n);
double lq_test_rel_err(const float *a, const float *ref, size_t n);

/* Suite runner: runs a suite, returns exit status. */
int lq_test_run(Suite *s);

#endif
