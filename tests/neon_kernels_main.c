/* Kernel tests without Check, for cross builds (scripts/neon.sh runs it on
 * aarch64 under qemu): every format's kernels at the machine's best level
 * (NEON) against the scalar kernels (FAST: bitwise) and against
 * dequantize-then-GEMV in double (EXACT and FAST within their bounds), on
 * odd shapes, several batches, 1 and 2 threads. Exit status 0 on success. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

static int g_fail;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            g_fail++;                                                                              \
        }                                                                                          \
    } while (0)

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static double urand(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 9007199254740992.0;
}

static float grand(void)
{
    double u = urand() + 1e-12, v = urand();
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

static lq_ctx *mkctx(size_t threads, lq_simd_level cap)
{
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.n_threads = threads;
    cfg.simd_cap = cap;
    lq_ctx *c = NULL;
    if (lq_ctx_create(&cfg, &c) != LQ_OK) {
        fprintf(stderr, "context\n");
        exit(2);
    }
    return c;
}

typedef struct variant {
    const char *name;
    lq_method_kind kind;
    unsigned a, b, c;
} variant;

static const variant g_var[] = {
    {"int4", LQ_METHOD_INT, 4, 32, 0},          {"int3", LQ_METHOD_INT, 3, 48, 1},
    {"int2", LQ_METHOD_INT, 2, 0, 0},           {"int8", LQ_METHOD_INT, 8, 16, 0},
    {"bcq3", LQ_METHOD_BCQ, 3, 32, 1},          {"bcq2g50", LQ_METHOD_BCQ, 2, 50, 0},
    {"bcq4row", LQ_METHOD_BCQ, 4, 0, 1},        {"vq2x4", LQ_METHOD_GPTVQ, 2, 4, 32},
    {"aq2x6", LQ_METHOD_AQLM, 2, 6, 8},         {"e8q16", LQ_METHOD_NESTQUANT, 16, 4, 1},
    {"e8q8", LQ_METHOD_NESTQUANT, 8, 2, 0},     {"e8p", LQ_METHOD_NESTQUANT, 0, 0, 1},
    {"e8p_g16", LQ_METHOD_NESTQUANT, 0, 16, 0},
};

static lq_status quantize(const variant *v, const float *W, size_t rows, size_t cols,
                          lq_qtensor **out)
{
    lq_method m;
    lq_method_init(&m, v->kind);
    m.engine.rtn = 1;
    switch (v->kind) {
    case LQ_METHOD_INT:
        m.u.int_.bits = v->a;
        m.u.int_.group = v->b;
        m.u.int_.symmetric = (int)v->c;
        break;
    case LQ_METHOD_BCQ:
        m.u.bcq.k = v->a;
        m.u.bcq.group = v->b;
        m.u.bcq.offset = (int)v->c;
        m.u.bcq.iters = 2;
        break;
    case LQ_METHOD_GPTVQ:
        m.u.gptvq.dim = v->a;
        m.u.gptvq.index_bits = v->b;
        m.u.gptvq.group_cols = v->c;
        m.u.gptvq.em_iters = 2;
        break;
    case LQ_METHOD_AQLM:
        m.u.aqlm.n_codebooks = v->a;
        m.u.aqlm.code_bits = v->b;
        m.u.aqlm.group = v->c;
        m.u.aqlm.beam = 2;
        m.u.aqlm.rounds = 1;
        m.u.aqlm.kmeans_iters = 2;
        break;
    case LQ_METHOD_NESTQUANT:
        if (v->a == 0) { /* E8P codebook, group b */
            m.u.nestquant.codebook = LQ_NQ_CODEBOOK_E8P;
            m.u.nestquant.group = v->b;
        } else {
            m.u.nestquant.q = v->a;
            m.u.nestquant.n_betas = v->b;
        }
        m.u.nestquant.hadamard = (int)v->c;
        break;
    default: break;
    }
    lq_ctx *ctx = mkctx(1, LQ_SIMD_AUTO);
    lq_status st = lq_quantize(ctx, W, rows, cols, NULL, &m, out, NULL);
    lq_ctx_destroy(ctx);
    return st;
}

int main(void)
{
    static const size_t shapes[][2] = {{37, 64}, {20, 96}, {5, 32}};
    static const size_t batches[] = {1, 3, 16};
    size_t ran = 0;
    printf("dispatch: %s\n", lq_simd_name(lq_simd_detected()));
    for (size_t vi = 0; vi < sizeof g_var / sizeof g_var[0]; vi++) {
        for (size_t si = 0; si < 3; si++) {
            size_t rows = shapes[si][0], cols = shapes[si][1];
            float *W = malloc(rows * cols * sizeof(float));
            float *Wh = malloc(rows * cols * sizeof(float));
            float *X = malloc(16 * cols * sizeof(float));
            float *Y0 = malloc(16 * rows * sizeof(float)), *Y1 = malloc(16 * rows * sizeof(float));
            for (size_t i = 0; i < rows * cols; i++) W[i] = grand();
            for (size_t i = 0; i < 16 * cols; i++) X[i] = grand();
            lq_qtensor *t = NULL;
            lq_status st = quantize(&g_var[vi], W, rows, cols, &t);
            if (st != LQ_OK) {
                CHECK(0, "%s %zux%zu quantize: %s", g_var[vi].name, rows, cols, lq_status_str(st));
                goto next;
            }
            CHECK(lq_dequantize(NULL, t, Wh) == LQ_OK, "dequantize");
            for (size_t bi = 0; bi < 3; bi++) {
                size_t batch = batches[bi];
                lq_ctx *cs = mkctx(1, LQ_SIMD_SCALAR), *cb = mkctx(1, LQ_SIMD_AUTO),
                       *c2 = mkctx(2, LQ_SIMD_AUTO);
                for (int mode = 0; mode < 2; mode++) {
                    CHECK(lq_matmul_ex(cs, t, X, batch, Y0, (lq_kernel_mode)mode) == LQ_OK, "s");
                    CHECK(lq_matmul_ex(cb, t, X, batch, Y1, (lq_kernel_mode)mode) == LQ_OK, "b");
                    /* E8P: EXACT is the reference's double arithmetic at every level */
                    if (mode == LQ_KERNEL_FAST ||
                        (g_var[vi].kind == LQ_METHOD_NESTQUANT && g_var[vi].a == 0))
                        CHECK(!memcmp(Y0, Y1, batch * rows * sizeof(float)),
                              "%s %zux%zu b%zu: mode %d %s differs from scalar", g_var[vi].name,
                              rows, cols, batch, mode, lq_simd_name(lq_simd_detected()));
                    for (size_t b = 0; b < batch; b++)
                        for (size_t r = 0; r < rows; r++) {
                            double ref = 0, a = 0, xmax = 0, wsum = 0;
                            for (size_t c = 0; c < cols; c++) {
                                double p = (double)Wh[r * cols + c] * X[b * cols + c];
                                ref += p;
                                a += fabs(p);
                                wsum += fabs(Wh[r * cols + c]);
                                if (fabs(X[b * cols + c]) > xmax) xmax = fabs(X[b * cols + c]);
                            }
                            /* EXACT: float rounding; FAST: + int8 rounding of x
                             * (rotated x for E8: bound by the norm instead) */
                            double bound = 1e-5 * (a + wsum * xmax) * cols + 1e-6;
                            if (mode == LQ_KERNEL_FAST)
                                bound += wsum * xmax / 254.0 *
                                         (g_var[vi].kind == LQ_METHOD_BCQ ? 24.0 : 3.0);
                            double y = Y1[b * rows + r];
                            CHECK(fabs(y - ref) <= bound, "%s %zux%zu b%zu mode %d: %g vs %g",
                                  g_var[vi].name, rows, cols, batch, mode, y, ref);
                        }
                    CHECK(lq_matmul_ex(c2, t, X, batch, Y0, (lq_kernel_mode)mode) == LQ_OK, "2");
                    CHECK(!memcmp(Y0, Y1, batch * rows * sizeof(float)),
                          "%s: 2 threads differ from 1", g_var[vi].name);
                }
                lq_ctx_destroy(cs);
                lq_ctx_destroy(cb);
                lq_ctx_destroy(c2);
            }
            ran++;
            lq_qtensor_free(t);
        next:
            free(W);
            free(Wh);
            free(X);
            free(Y0);
            free(Y1);
        }
    }
    printf("%zu tensors checked, %d failures\n", ran, g_fail);
    return g_fail ? 1 : 0;
}
