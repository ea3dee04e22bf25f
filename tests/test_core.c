/* Core runtime: status, version, context, pool, RNG, dispatch, allocation. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "test_common.h"

START_TEST(status_strings)
{
    for (int s = LQ_OK; s <= LQ_ERR_IO; s++) {
        const char *str = lq_status_str((lq_status)s);
        ck_assert_ptr_nonnull(str);
        ck_assert_str_ne(str, "unknown status");
    }
    ck_assert_str_eq(lq_status_str((lq_status)999), "unknown status");
    ck_assert_str_eq(lq_version(), LQ_VERSION_STRING);
}
END_TEST

START_TEST(ctx_bad_args)
{
    ck_assert_int_eq(lq_ctx_create(NULL, NULL), LQ_ERR_INVALID_ARG);
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.simd_cap = (lq_simd_level)77;
    lq_ctx *ctx = (lq_ctx *)0x1;
    ck_assert_int_eq(lq_ctx_create(&cfg, &ctx), LQ_ERR_INVALID_ARG);
    ck_assert_ptr_eq(ctx, (lq_ctx *)0x1); /* untouched */
    lq_ctx_config_init(&cfg);
    cfg.allocator.free = (void (*)(void *, void *))free; /* free without alloc */
    ck_assert_int_eq(lq_ctx_create(&cfg, &ctx), LQ_ERR_INVALID_ARG);
    lq_ctx_destroy(NULL);
}
END_TEST

START_TEST(ctx_threads_and_cap)
{
    lq_ctx *c1 = lq_test_ctx(1, LQ_SIMD_AUTO);
    lq_ctx *c3 = lq_test_ctx(3, LQ_SIMD_SCALAR);
    ck_assert_uint_eq(lq_ctx_threads(c1), 1);
    ck_assert_uint_eq(lq_ctx_threads(c3), 3);
    ck_assert_int_eq(lq_ctx_simd(c3), LQ_SIMD_SCALAR);
    ck_assert_int_eq(lq_ctx_simd(c1), lq_simd_detected());
    ck_assert_uint_ge(lq_ctx_threads(NULL), 1);
    lq_ctx_destroy(c1);
    lq_ctx_destroy(c3);
}
END_TEST

typedef struct sum_job {
    uint64_t *part;
    lq_ctx *ctx;
    int nested;
} sum_job;

static void inner_task(void *arg, size_t i)
{
    uint64_t *acc = arg;
    acc[i] = i * i;
}

static void sum_task(void *arg, size_t i)
{
    sum_job *j = arg;
    uint64_t v = 0;
    lq_rng r;
    lq_rng_init(&r, 42, i);
    for (int k = 0; k < 100; k++) v += lq_rng_next(&r) >> 40;
    if (j->nested) {
        /* a nested parallel call must not deadlock: it runs inline */
        uint64_t acc[8];
        lq_parallel_for(j->ctx, 8, inner_task, acc);
        for (int k = 0; k < 8; k++) v += acc[k];
    }
    j->part[i] = v;
}

static uint64_t run_sum(lq_ctx *ctx, int nested)
{
    enum { N = 257 };
    uint64_t part[N];
    sum_job j = {part, ctx, nested};
    lq_parallel_for(ctx, N, sum_task, &j);
    uint64_t tot = 0;
    for (int i = 0; i < N; i++) tot = tot * 31 + part[i]; /* order-sensitive */
    return tot;
}

static uint64_t g_host_calls;
static void host_pf(void *user, size_t n, lq_task_fn task, void *arg)
{
    (void)user;
    g_host_calls++;
    for (size_t i = n; i-- > 0;) task(arg, i); /* reverse order on purpose */
}

START_TEST(parallel_deterministic)
{
    lq_ctx *c1 = lq_test_ctx(1, LQ_SIMD_AUTO);
    lq_ctx *c2 = lq_test_ctx(2, LQ_SIMD_AUTO);
    lq_ctx *c4 = lq_test_ctx(4, LQ_SIMD_AUTO);
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.parallel_for = host_pf;
    lq_ctx *ch = NULL;
    ck_assert_int_eq(lq_ctx_create(&cfg, &ch), LQ_OK);
    for (int nested = 0; nested < 2; nested++) {
        uint64_t a = run_sum(c1, nested);
        ck_assert_uint_eq(run_sum(c2, nested), a);
        ck_assert_uint_eq(run_sum(c4, nested), a);
        ck_assert_uint_eq(run_sum(NULL, nested), a);
        ck_assert_uint_eq(run_sum(ch, nested), a);
    }
    ck_assert_uint_gt(g_host_calls, 0);
    lq_ctx_destroy(c1);
    lq_ctx_destroy(c2);
    lq_ctx_destroy(c4);
    lq_ctx_destroy(ch);
}
END_TEST

typedef struct conc_arg {
    lq_ctx *ctx;
    uint64_t result;
} conc_arg;

static void *conc_thread(void *p)
{
    conc_arg *a = p;
    for (int i = 0; i < 20; i++) a->result = run_sum(a->ctx, i & 1);
    return NULL;
}

START_TEST(parallel_concurrent_callers)
{
    /* Two caller threads share one context: one gets the pool, the other
     * runs inline; both must finish with the right answer. */
    lq_ctx *c2 = lq_test_ctx(2, LQ_SIMD_AUTO);
    conc_arg a = {c2, 0}, b = {c2, 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, conc_thread, &a);
    pthread_create(&tb, NULL, conc_thread, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    lq_ctx *c1 = lq_test_ctx(1, LQ_SIMD_AUTO);
    uint64_t ref = run_sum(c1, 1);
    ck_assert_uint_eq(a.result, ref);
    ck_assert_uint_eq(b.result, ref);
    lq_ctx_destroy(c1);
    lq_ctx_destroy(c2);
}
END_TEST

START_TEST(rng_properties)
{
    lq_rng a, b, c;
    lq_rng_init(&a, 7, 3);
    lq_rng_init(&b, 7, 3);
    lq_rng_init(&c, 7, 4);
    int same = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = lq_rng_next(&a);
        ck_assert_uint_eq(x, lq_rng_next(&b));
        same += x == lq_rng_next(&c);
    }
    ck_assert_int_lt(same, 2);
    /* moments of the uniform and Gaussian samplers */
    enum { N = 200000 };
    double su = 0, sg = 0, sg2 = 0, sg4 = 0;
    lq_rng_init(&a, 1, 0);
    for (int i = 0; i < N; i++) {
        double u = lq_rng_uniform(&a);
        ck_assert(u >= 0 && u < 1);
        su += u;
        double g = lq_rng_gaussian(&a);
        sg += g;
        sg2 += g * g;
        sg4 += g * g * g * g;
    }
    ck_assert_double_lt(fabs(su / N - 0.5), 0.005);
    ck_assert_double_lt(fabs(sg / N), 0.01);
    ck_assert_double_lt(fabs(sg2 / N - 1), 0.02);
    ck_assert_double_lt(fabs(sg4 / N - 3), 0.1);
    uint64_t hist[7] = {0};
    for (int i = 0; i < 70000; i++) hist[lq_rng_below(&a, 7)]++;
    for (int i = 0; i < 7; i++) ck_assert_uint_gt(hist[i], 9500);
    ck_assert_uint_eq(lq_rng_below(&a, 1), 0);
}
END_TEST

START_TEST(gaussian_fill_moments)
{
    enum { N = 100001 };
    float *x = malloc(N * sizeof *x);
    ck_assert_ptr_nonnull(x);
    lq_rng r;
    lq_rng_init(&r, 5, 1);
    lq_gaussian_fill(&r, x, N, 2.0f);
    double s1 = 0, s2 = 0, s4 = 0;
    for (int i = 0; i < N; i++) {
        ck_assert(isfinite(x[i]));
        double v = x[i] / 2.0;
        s1 += v;
        s2 += v * v;
        s4 += v * v * v * v;
    }
    ck_assert_double_lt(fabs(s1 / N), 0.01);
    ck_assert_double_lt(fabs(s2 / N - 1), 0.02);
    ck_assert_double_lt(fabs(s4 / N - 3), 0.1);
    /* same seed, same samples */
    float y[7];
    lq_rng_init(&r, 5, 1);
    lq_gaussian_fill(&r, y, 7, 2.0f);
    for (int i = 0; i < 7; i++) ck_assert_float_eq(y[i], x[i]);
    free(x);
}
END_TEST

START_TEST(finite_checks)
{
    float v[37];
    for (int i = 0; i < 37; i++) v[i] = (float)i - 10.0f;
    ck_assert(lq_all_finite(v, 37));
    v[36] = NAN;
    ck_assert(!lq_all_finite(v, 37));
    v[36] = -INFINITY;
    ck_assert(!lq_all_finite(v, 37));
    v[36] = 3.4e38f;
    ck_assert(lq_all_finite(v, 37));
    ck_assert(lq_all_finite_2d(v, 3, 10, 12));
    v[25] = INFINITY;
    ck_assert(!lq_all_finite_2d(v, 3, 10, 12));
    ck_assert(lq_all_finite_2d(v, 2, 10, 12));
}
END_TEST

START_TEST(simd_names_and_machine)
{
    ck_assert_str_eq(lq_simd_name(LQ_SIMD_AVX512), "avx512");
    ck_assert_str_eq(lq_simd_name(LQ_SIMD_SCALAR), "scalar");
    lq_machine_info m;
    ck_assert_int_eq(lq_machine_query(NULL), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_machine_query(&m), LQ_OK);
    ck_assert_uint_ge(m.physical_cores, 1);
    ck_assert_uint_ge(m.logical_cpus, m.physical_cores);
    const char *env = getenv("LQ_SIMD");
    if (env && !strcmp(env, "scalar")) ck_assert_int_eq(lq_simd_detected(), LQ_SIMD_SCALAR);
#if LQ_ARCH_X86
    else if (env && !strcmp(env, "avx2") && m.has_avx2 && m.has_fma && m.has_f16c && m.os_avx)
        ck_assert_int_eq(lq_simd_detected(), LQ_SIMD_AVX2);
    else if ((!env || !strcmp(env, "avx512")) && m.has_avx512vnni && m.has_avx512vbmi &&
             m.os_avx512)
        ck_assert_int_eq(lq_simd_detected(), LQ_SIMD_AVX512);
#endif
}
END_TEST

/* The allocation harness itself: a body with three allocations must see
 * three failure points, and a leaking body must be caught (checked by
 * counting, not by running the leak). */
static lq_status three_allocs(lq_ctx *ctx, void *arg)
{
    (void)arg;
    void *a = lq_alloc(ctx, 10), *b = NULL, *c = NULL;
    if (!a) return LQ_ERR_NO_MEMORY;
    b = lq_alloc_array(ctx, 100, 4);
    if (!b) goto fail;
    c = lq_calloc_array(ctx, 3, 3);
    if (!c) goto fail;
    lq_free(ctx, a);
    lq_free(ctx, b);
    lq_free(ctx, c);
    return LQ_OK;
fail:
    lq_free(ctx, a);
    lq_free(ctx, b);
    return LQ_ERR_NO_MEMORY;
}

static lq_status no_allocs(lq_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    return LQ_OK;
}

START_TEST(alloc_harness)
{
    ck_assert_uint_eq(lq_test_alloc_sweep(three_allocs, NULL, 1), 3);
    ck_assert_uint_eq(lq_test_alloc_sweep(three_allocs, NULL, 2), 3);
    ck_assert_uint_eq(lq_test_alloc_sweep(no_allocs, NULL, 2), 0);
    /* overflow is refused, not wrapped */
    ck_assert_ptr_null(lq_alloc_array(NULL, SIZE_MAX / 2, 4));
    ck_assert_ptr_null(lq_alloc(NULL, SIZE_MAX - 8));
}
END_TEST

START_TEST(ctx_create_alloc_failure)
{
    for (size_t threads = 1; threads <= 3; threads++) {
        for (size_t k = 1;; k++) {
            lq_test_alloc ta = {0};
            lq_ctx_config cfg;
            lq_test_alloc_config(&ta, &cfg);
            cfg.n_threads = threads;
            ta.fail_at = k;
            lq_ctx *ctx = (lq_ctx *)0x1;
            lq_status st = lq_ctx_create(&cfg, &ctx);
            if (!ta.failed) {
                ck_assert_int_eq(st, LQ_OK);
                lq_ctx_destroy(ctx);
                ck_assert_uint_eq(ta.live, 0);
                break;
            }
            ck_assert_int_eq(st, LQ_ERR_NO_MEMORY);
            ck_assert_ptr_eq(ctx, (lq_ctx *)0x1);
            ck_assert_uint_eq(ta.live, 0);
        }
    }
}
END_TEST

static int g_progress_calls;
static double g_last_fraction;
static void on_progress(void *user, double f, const char *stage)
{
    (void)stage;
    ck_assert_ptr_eq(user, &g_progress_calls);
    g_progress_calls++;
    g_last_fraction = f;
}

START_TEST(progress_callback)
{
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.progress = on_progress;
    cfg.progress_user = &g_progress_calls;
    cfg.seed = 99;
    lq_ctx *ctx = NULL;
    ck_assert_int_eq(lq_ctx_create(&cfg, &ctx), LQ_OK);
    lq_progress(ctx, 0.5, "test");
    ck_assert_int_eq(g_progress_calls, 1);
    ck_assert_double_eq(g_last_fraction, 0.5);
    ck_assert_uint_eq(lq_ctx_seed(ctx), 99);
    lq_progress(NULL, 0.7, "none"); /* default context: no callback */
    ck_assert_int_eq(g_progress_calls, 1);
    lq_ctx_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, status_strings);
    tcase_add_test(tc, ctx_bad_args);
    tcase_add_test(tc, ctx_threads_and_cap);
    tcase_add_test(tc, parallel_deterministic);
    tcase_add_test(tc, parallel_concurrent_callers);
    tcase_add_test(tc, rng_properties);
    tcase_add_test(tc, finite_checks);
    tcase_add_test(tc, gaussian_fill_moments);
    tcase_add_test(tc, simd_names_and_machine);
    tcase_add_test(tc, alloc_harness);
    tcase_add_test(tc, ctx_create_alloc_failure);
    tcase_add_test(tc, progress_callback);
    suite_add_tcase(s, tc);
    return lq_test_run(s);
}
