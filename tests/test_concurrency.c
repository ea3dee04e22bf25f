/*
 * Concurrency promises (run under ThreadSanitizer by scripts/test.sh):
 * one context and one tensor shared by several caller threads; the lazy
 * kernel-layout cache built by whichever product comes first;
 * lq_qtensor_prepare racing products; quantization from several threads on
 * one context. Every result must equal the single-threaded one bit for bit.
 */
#include <pthread.h>
#include <string.h>

#include "test_common.h"

#define ROWS 48
#define COLS 64
#define BATCH 3
#define CALLERS 4
#define REPS 6

static const lq_method_kind kinds[] = {LQ_METHOD_INT,   LQ_METHOD_NESTQUANT, LQ_METHOD_GPTVQ,
                                       LQ_METHOD_GPTQT, LQ_METHOD_BCQ,       LQ_METHOD_AQLM};
#define NKINDS (sizeof kinds / sizeof kinds[0])

static lq_method method_for(lq_method_kind k)
{
    lq_method m;
    ck_assert_int_eq(lq_method_init(&m, k), LQ_OK);
    if (k == LQ_METHOD_AQLM) {
        m.u.aqlm.code_bits = 6;
        m.u.aqlm.rounds = 1;
        m.u.aqlm.beam = 2;
        m.u.aqlm.kmeans_iters = 4;
    }
    return m;
}

typedef struct caller {
    lq_ctx *ctx;
    const lq_qtensor *t;
    const float *X;
    int prepare; /* this caller also calls lq_qtensor_prepare */
    float Y[2][BATCH * ROWS];
    lq_status st;
} caller;

static void *caller_body(void *arg)
{
    caller *c = arg;
    c->st = LQ_OK;
    for (int r = 0; r < REPS && c->st == LQ_OK; r++) {
        if (c->prepare) c->st = lq_qtensor_prepare(c->ctx, c->t);
        for (int mode = 0; mode < 2 && c->st == LQ_OK; mode++)
            c->st = lq_matmul_ex(c->ctx, c->t, c->X, BATCH, c->Y[mode], (lq_kernel_mode)mode);
    }
    return NULL;
}

/* Each format: a fresh tensor (cold kernel cache) hit by CALLERS threads at
 * once through one shared 2-thread context, half of them also preparing. */
START_TEST(t_shared_tensor_shared_ctx)
{
    static float W[ROWS * COLS], H[COLS * COLS], X[BATCH * COLS], ref[2][BATCH * ROWS];
    lq_test_correlated_layer(ROWS, COLS, 4 * COLS, 31, W, H);
    lq_test_fill_gaussian(X, BATCH * COLS, 1.0f, 32);
    lq_ctx *ctx = lq_test_ctx(2, LQ_SIMD_AUTO);
    for (size_t k = 0; k < NKINDS; k++) {
        lq_method m = method_for(kinds[k]);
        lq_qtensor *t0, *t;
        ck_assert_int_eq(lq_quantize(ctx, W, ROWS, COLS, H, &m, &t0, NULL), LQ_OK);
        for (int mode = 0; mode < 2; mode++)
            ck_assert_int_eq(lq_matmul_ex(NULL, t0, X, BATCH, ref[mode], (lq_kernel_mode)mode),
                             LQ_OK);
        lq_qtensor_free(t0);
        ck_assert_int_eq(lq_quantize(ctx, W, ROWS, COLS, H, &m, &t, NULL), LQ_OK);
        static caller c[CALLERS];
        pthread_t th[CALLERS];
        for (int i = 0; i < CALLERS; i++) {
            c[i] = (caller){ctx, t, X, i % 2, {{0}}, LQ_OK};
            ck_assert_int_eq(pthread_create(&th[i], NULL, caller_body, &c[i]), 0);
        }
        for (int i = 0; i < CALLERS; i++) pthread_join(th[i], NULL);
        for (int i = 0; i < CALLERS; i++) {
            ck_assert_msg(c[i].st == LQ_OK, "method %d caller %d: %s", (int)kinds[k], i,
                          lq_status_str(c[i].st));
            for (int mode = 0; mode < 2; mode++)
                ck_assert_msg(memcmp(c[i].Y[mode], ref[mode], sizeof ref[mode]) == 0,
                              "method %d caller %d mode %d differs from the serial result",
                              (int)kinds[k], i, mode);
        }
        lq_qtensor_free(t);
    }
    lq_ctx_destroy(ctx);
}
END_TEST

typedef struct qcaller {
    lq_ctx *ctx;
    const float *W, *H;
    lq_method m;
    float Wh[ROWS * COLS];
    lq_status st;
} qcaller;

static void *quant_body(void *arg)
{
    qcaller *q = arg;
    lq_qtensor *t = NULL;
    q->st = lq_quantize(q->ctx, q->W, ROWS, COLS, q->H, &q->m, &t, q->Wh);
    lq_qtensor_free(t);
    return NULL;
}

/* Every method from its own caller thread, all at once, on one context:
 * the same W_hat as a serial run. */
START_TEST(t_concurrent_quantize)
{
    static float W[ROWS * COLS], H[COLS * COLS], ref[NKINDS][ROWS * COLS];
    lq_test_correlated_layer(ROWS, COLS, 4 * COLS, 33, W, H);
    lq_ctx *ctx = lq_test_ctx(2, LQ_SIMD_AUTO);
    static qcaller q[NKINDS];
    pthread_t th[NKINDS];
    for (size_t k = 0; k < NKINDS; k++) {
        lq_method m = method_for(kinds[k]);
        lq_qtensor *t;
        ck_assert_int_eq(lq_quantize(ctx, W, ROWS, COLS, H, &m, &t, ref[k]), LQ_OK);
        lq_qtensor_free(t);
        q[k] = (qcaller){ctx, W, H, m, {0}, LQ_OK};
    }
    for (size_t k = 0; k < NKINDS; k++)
        ck_assert_int_eq(pthread_create(&th[k], NULL, quant_body, &q[k]), 0);
    for (size_t k = 0; k < NKINDS; k++) pthread_join(th[k], NULL);
    for (size_t k = 0; k < NKINDS; k++) {
        ck_assert_msg(q[k].st == LQ_OK, "method %d: %s", (int)kinds[k], lq_status_str(q[k].st));
        ck_assert_msg(memcmp(q[k].Wh, ref[k], sizeof ref[k]) == 0, "method %d differs",
                      (int)kinds[k]);
    }
    lq_ctx_destroy(ctx);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("concurrency");
    TCase *tc = tcase_create("shared");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, t_shared_tensor_shared_ctx);
    tcase_add_test(tc, t_concurrent_quantize);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return lq_test_run(suite()); }
