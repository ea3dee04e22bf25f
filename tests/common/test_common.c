#include "test_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *fail_alloc(void *user, size_t size, size_t align)
{
    lq_test_alloc *ta = user;
    ta->count++;
    if (ta->fail_at && (ta->count == ta->fail_at || (ta->sticky && ta->count > ta->fail_at))) {
        ta->failed = 1;
        return NULL;
    }
    if (align < sizeof(void *)) align = sizeof(void *);
    size_t rounded = (size + align - 1) / align * align;
    if (rounded == 0) rounded = align;
    void *p = aligned_alloc(align, rounded);
    if (p) ta->live++;
    return p;
}

static void fail_free(void *user, void *p)
{
    lq_test_alloc *ta = user;
    if (p) {
        ta->live--;
        free(p);
    }
}

void lq_test_alloc_config(lq_test_alloc *ta, lq_ctx_config *cfg)
{
    lq_ctx_config_init(cfg);
    cfg->allocator.alloc = fail_alloc;
    cfg->allocator.free = fail_free;
    cfg->allocator.user = ta;
}

static size_t sweep(lq_test_body body, void *arg, size_t n_threads, int sticky)
{
    for (size_t k = 1;; k++) {
        lq_test_alloc ta = {0};
        ta.sticky = sticky;
        lq_ctx_config cfg;
        lq_test_alloc_config(&ta, &cfg);
        cfg.n_threads = n_threads;
        lq_ctx *ctx = NULL;
        lq_status st = lq_ctx_create(&cfg, &ctx);
        ck_assert_int_eq(st, LQ_OK);
        size_t base = ta.count;
        ta.fail_at = base + k; /* fail the k-th allocation made by body */
        st = body(ctx, arg);
        int failed = (int)ta.failed;
        lq_ctx_destroy(ctx);
        ck_assert_msg(ta.live == 0, "leak: %zu live allocations after failing allocation %zu",
                      ta.live, k);
        if (!failed) {
            ck_assert_msg(st == LQ_OK, "body failed without allocation failure: %s",
                          lq_status_str(st));
            return k - 1;
        }
        ck_assert_msg(st == LQ_ERR_NO_MEMORY, "allocation %zu failed but status was %s", k,
                      lq_status_str(st));
        ck_assert_msg(k < 100000, "too many allocation points");
    }
}

size_t lq_test_alloc_sweep(lq_test_body body, void *arg, size_t n_threads)
{
    return sweep(body, arg, n_threads, 0);
}

size_t lq_test_alloc_sweep_from(lq_test_body body, void *arg, size_t n_threads)
{
    return sweep(body, arg, n_threads, 1);
}

lq_ctx *lq_test_ctx(size_t n_threads, lq_simd_level cap)
{
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.n_threads = n_threads;
    cfg.simd_cap = cap;
    lq_ctx *ctx = NULL;
    ck_assert_int_eq(lq_ctx_create(&cfg, &ctx), LQ_OK);
    return ctx;
}

/* splitmix64 stream: independent of the library's RNG on purpose. */
static uint64_t sm(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double unif(uint64_t *s) { return (double)(sm(s) >> 11) * 0x1.0p-53; }

static double gauss(uint64_t *s)
{
    double u1 = 1.0 - unif(s), u2 = unif(s);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void lq_test_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)unif(&s);
}

void lq_test_fill_gaussian(float *x, size_t n, float sigma, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) x[i] = sigma * (float)gauss(&s);
}

void lq_test_fill_student(float *x, size_t n, unsigned nu, float scale, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        double g = gauss(&s), chi = 0;
        for (unsigned k = 0; k < nu; k++) {
            double z = gauss(&s);
            chi += z * z;
        }
        x[i] = (float)(scale * g / sqrt(chi / nu));
    }
}

void lq_test_correlated_layer(size_t rows, size_t cols, size_t nsamples, uint64_t seed, float *W,
                              float *H)
{
    uint64_t s = seed;
    /* Student-t with 4 degrees of freedom: heavy tails like LLM weights. */
    for (size_t i = 0; i < rows * cols; i++) {
        double g = gauss(&s), chi = 0;
        for (int k = 0; k < 4; k++) {
            double z = gauss(&s);
            chi += z * z;
        }
        W[i] = (float)(0.02 * g / sqrt(chi / 4.0));
    }
    double *A = calloc(cols * cols, sizeof *A);
    double *x = calloc(cols, sizeof *x), *z = calloc(cols, sizeof *z);
    double *Hd = calloc(cols * cols, sizeof *Hd);
    ck_assert(A && x && z && Hd);
    for (size_t i = 0; i < cols * cols; i++) A[i] = gauss(&s) / sqrt((double)cols);
    for (size_t i = 0; i < cols; i++) A[i * cols + i] += 0.3; /* keep it well-posed */
    for (size_t n = 0; n < nsamples; n++) {
        for (size_t i = 0; i < cols; i++) z[i] = gauss(&s) * (1.0 + 3.0 * (i % 7 == 0));
        for (size_t j = 0; j < cols; j++) x[j] = 0;
        for (size_t i = 0; i < cols; i++)
            for (size_t j = 0; j < cols; j++) x[j] += z[i] * A[i * cols + j];
        for (size_t i = 0; i < cols; i++)
            for (size_t j = 0; j <= i; j++) Hd[i * cols + j] += x[i] * x[j];
    }
    for (size_t i = 0; i < cols; i++)
        for (size_t j = 0; j <= i; j++) {
            float v = (float)(2.0 * Hd[i * cols + j] / (double)nsamples);
            H[i * cols + j] = v;
            H[j * cols + i] = v;
        }
    free(A);
    free(x);
    free(z);
    free(Hd);
}

double lq_test_max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) m = d;
    }
    return m;
}

double lq_test_rel_err(const float *a, const float *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

int lq_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
