/* quant/finetune.h: gradients of every format's continuous parameters
 * against finite differences of L(W_hat(p)), Adam steps on a quadratic
 * loss, codes untouched, argument validation, determinism, allocation
 * failures. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtensor/format_int.h"
#include "qtensor/format_vq.h"
#include "qtensor/qtensor_internal.h"
#include "vq/vq_internal.h"
#include "test_common.h"

#define ROWS 24
#define COLS 64

typedef struct cfg {
    const char *name;
    lq_format format;
    size_t rows, cols;
    lq_method m;
} cfg;

static size_t make_cfgs(cfg *c)
{
    size_t n = 0;
    lq_method m;
    lq_method_init(&m, LQ_METHOD_INT);
    m.u.int_.bits = 3;
    m.u.int_.group = 16;
    c[n++] = (cfg){"int3 g16 asym", LQ_FORMAT_INT, ROWS, COLS, m};
    m.u.int_.bits = 2;
    m.u.int_.symmetric = 1;
    m.u.int_.group = 0;
    m.engine.act_order = 1;
    c[n++] = (cfg){"int2 sym row act-order", LQ_FORMAT_INT, ROWS, COLS, m};
    lq_method_init(&m, LQ_METHOD_NESTQUANT);
    m.u.nestquant.q = 6;
    m.u.nestquant.group = 16;
    c[n++] = (cfg){"nestquant q6 hadamard cols 60", LQ_FORMAT_E8, ROWS, 60, m};
    m.u.nestquant.hadamard = 0;
    c[n++] = (cfg){"nestquant q6 no hadamard", LQ_FORMAT_E8, ROWS, COLS, m};
    lq_method_init(&m, LQ_METHOD_NESTQUANT);
    m.u.nestquant.codebook = LQ_NQ_CODEBOOK_E8P;
    m.u.nestquant.group = 32;
    c[n++] = (cfg){"nestquant e8p", LQ_FORMAT_E8P, ROWS, COLS, m};
    lq_method_init(&m, LQ_METHOD_GPTVQ);
    m.u.gptvq.dim = 2;
    m.u.gptvq.index_bits = 4;
    m.u.gptvq.group_cols = 32;
    m.u.gptvq.group_rows = 12;
    c[n++] = (cfg){"gptvq d2 fp16", LQ_FORMAT_VQ, ROWS, COLS, m};
    m.u.gptvq.codebook_bits = 8;
    c[n++] = (cfg){"gptvq d2 int8", LQ_FORMAT_VQ, ROWS, COLS, m};
    lq_method_init(&m, LQ_METHOD_BCQ);
    m.u.bcq.k = 2;
    m.u.bcq.group = 32;
    m.u.bcq.offset = 1;
    c[n++] = (cfg){"bcq k2 offset", LQ_FORMAT_BCQ, ROWS, COLS, m};
    lq_method_init(&m, LQ_METHOD_GPTQT);
    m.u.bcq.k = 3;
    c[n++] = (cfg){"gptqt k3", LQ_FORMAT_BCQ, ROWS, COLS, m};
    lq_method_init(&m, LQ_METHOD_AQLM);
    m.u.aqlm.n_codebooks = 2;
    m.u.aqlm.code_bits = 4;
    m.u.aqlm.group = 4;
    m.u.aqlm.beam = 2;
    m.u.aqlm.rounds = 1;
    m.u.aqlm.kmeans_iters = 4;
    c[n++] = (cfg){"aqlm 2x4 g4", LQ_FORMAT_AQ, ROWS, COLS, m};
    return n;
}

static lq_qtensor *quantize(lq_ctx *ctx, const cfg *c, float *W, float *H)
{
    lq_test_correlated_layer(c->rows, c->cols, 4 * c->cols, 7, W, H);
    lq_qtensor *t = NULL;
    ck_assert_int_eq(lq_quantize(ctx, W, c->rows, c->cols, H, &c->m, &t, NULL), LQ_OK);
    lq_format f;
    lq_qtensor_format(t, &f);
    ck_assert_msg(f == c->format, "%s: format %d", c->name, (int)f);
    return t;
}

/* L = sum_i a_i (W_hat_i - T_i)^2 in double; G = dL/dW_hat when G != NULL. */
static double qloss(const float *Wh, const float *T, const float *a, size_t n, float *G)
{
    double L = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)Wh[i] - T[i];
        L += a[i] * e * e;
        if (G) G[i] = (float)(2.0 * a[i] * e);
    }
    return L;
}

static double loss_of(lq_ctx *ctx, const lq_qtensor *t, const float *T, const float *a, size_t n,
                      float *scratch)
{
    ck_assert_int_eq(lq_dequantize(ctx, t, scratch), LQ_OK);
    return qloss(scratch, T, a, n, NULL);
}

/* W_hat is linear in each single parameter (codes fixed), so L(p_i) is a
 * quadratic in p_i and the central difference between the two stored values
 * p+ and p- is its exact derivative at their midpoint; the analytic
 * gradient is taken at p, and the difference p - mid is second order. The
 * check: |fd - g| <= 1e-3 (|g| + scale), scale = the largest |g| sampled. */
START_TEST(gradient_matches_finite_differences)
{
    lq_ctx *ctx = lq_test_ctx(1, LQ_SIMD_AUTO);
    cfg cs[16];
    size_t nc = make_cfgs(cs);
    for (size_t ci = 0; ci < nc; ci++) {
        const cfg *c = &cs[ci];
        size_t rc = c->rows * c->cols;
        float *W = malloc(rc * sizeof *W), *H = malloc(c->cols * c->cols * sizeof *H);
        float *T = malloc(rc * sizeof *T), *a = malloc(rc * sizeof *a), *G = malloc(rc * sizeof *G);
        float *S = malloc(rc * sizeof *S);
        lq_qtensor *t = quantize(ctx, c, W, H);
        size_t n = 0;
        ck_assert_int_eq(lq_finetune_param_count(t, &n), LQ_OK);
        ck_assert_uint_gt(n, 0);
        float *p = malloc(n * sizeof *p), *g = malloc(n * sizeof *g), *q = malloc(n * sizeof *q);
        ck_assert_int_eq(lq_finetune_get_params(t, p, n), LQ_OK);
        lq_test_fill_gaussian(T, rc, 1.0f, 11 + ci);
        lq_test_fill_uniform(a, rc, 0.5f, 2.0f, 13 + ci);
        ck_assert_int_eq(lq_dequantize(ctx, t, S), LQ_OK);
        qloss(S, T, a, rc, G);
        ck_assert_int_eq(lq_finetune_grad(ctx, t, G, c->rows, c->cols, g, n), LQ_OK);
        double gmax = 0;
        for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(g[i]));
        ck_assert_msg(gmax > 0, "%s: zero gradient", c->name);
        size_t nprobe = n < 48 ? n : 48;
        for (size_t k = 0; k < nprobe; k++) {
            size_t i = (k * 7919u + 3) % n;
            double h = fmax(fabs(p[i]) * 0.05, 1e-3);
            memcpy(q, p, n * sizeof *q);
            q[i] = (float)(p[i] + h);
            ck_assert_int_eq(lq_finetune_set_params(t, q, n), LQ_OK);
            ck_assert_int_eq(lq_finetune_get_params(t, q, n), LQ_OK);
            double pp = q[i], Lp = loss_of(ctx, t, T, a, rc, S);
            q[i] = (float)(p[i] - h);
            ck_assert_int_eq(lq_finetune_set_params(t, q, n), LQ_OK);
            ck_assert_int_eq(lq_finetune_get_params(t, q, n), LQ_OK);
            double pm = q[i], Lm = loss_of(ctx, t, T, a, rc, S);
            ck_assert_int_eq(lq_finetune_set_params(t, p, n), LQ_OK);
            double fd = (Lp - Lm) / (pp - pm);
            ck_assert_msg(fabs(fd - g[i]) <= 1e-3 * (fabs(g[i]) + gmax),
                          "%s: param %zu: grad %g, finite difference %g", c->name, i, g[i], fd);
        }
        /* restored exactly: same W_hat as at the start */
        float *S2 = malloc(rc * sizeof *S2);
        ck_assert_int_eq(lq_dequantize(ctx, t, S2), LQ_OK);
        qloss(S2, T, a, rc, NULL);
        ck_assert_int_eq(lq_finetune_get_params(t, q, n), LQ_OK);
        ck_assert_int_eq(memcmp(q, p, n * sizeof *p), 0);
        free(S2);
        lq_qtensor_free(t);
        free(W), free(H), free(T), free(a), free(G), free(S), free(p), free(g), free(q);
    }
    lq_ctx_destroy(ctx);
}
END_TEST

/* Sections that must never change: everything but the tuned families. */
static int is_param_section(const lq_qtensor *t, uint32_t tag)
{
    switch (t->format) {
    case LQ_FORMAT_VQ:
        return t->ip[LQ_VQ_IP_CB] == 8 ? tag == LQ_SEC_SCALES : tag == LQ_SEC_CODEBOOKS;
    case LQ_FORMAT_BCQ: return tag == LQ_SEC_ALPHAS || tag == LQ_SEC_OFFSETS;
    case LQ_FORMAT_AQ: return tag == LQ_SEC_CODEBOOKS || tag == LQ_SEC_SCALES;
    default: return tag == LQ_SEC_SCALES;
    }
}

static uint8_t *snapshot_codes(const lq_qtensor *t, size_t *len)
{
    size_t n = 0;
    for (size_t i = 0; i < t->nsec; i++)
        if (!is_param_section(t, t->sec[i].tag)) n += t->sec[i].nbytes;
    uint8_t *b = malloc(n ? n : 1), *o = b;
    for (size_t i = 0; i < t->nsec; i++)
        if (!is_param_section(t, t->sec[i].tag)) {
            memcpy(o, t->sec[i].data, t->sec[i].nbytes);
            o += t->sec[i].nbytes;
        }
    *len = n;
    return b;
}

/* Adam on L = ||W_hat - 1.1 W_hat0||^2: the optimum is reachable for every
 * format (scale every parameter of a linear family by 1.1; AQ: the row
 * scales), so 150 steps at lr = 1% of the mean |p| must take L below half
 * its start, the first step must lower it, and every code stays
 * bit-identical; the products on the codes then see the new parameters. */
START_TEST(adam_decreases_quadratic_codes_fixed)
{
    lq_ctx *ctx = lq_test_ctx(2, LQ_SIMD_AUTO);
    cfg cs[16];
    size_t nc = make_cfgs(cs);
    for (size_t ci = 0; ci < nc; ci++) {
        const cfg *c = &cs[ci];
        size_t rc = c->rows * c->cols;
        float *W = malloc(rc * sizeof *W), *H = malloc(c->cols * c->cols * sizeof *H);
        float *T = malloc(rc * sizeof *T), *a = malloc(rc * sizeof *a), *G = malloc(rc * sizeof *G);
        float *S = malloc(rc * sizeof *S);
        lq_qtensor *t = quantize(ctx, c, W, H);
        size_t n, clen0, clen1;
        lq_finetune_param_count(t, &n);
        float *p = malloc(n * sizeof *p);
        lq_finetune_get_params(t, p, n);
        double mean = 0;
        for (size_t i = 0; i < n; i++) mean += fabs(p[i]) / (double)n;
        uint8_t *c0 = snapshot_codes(t, &clen0);
        ck_assert_int_eq(lq_dequantize(ctx, t, S), LQ_OK);
        for (size_t i = 0; i < rc; i++) {
            T[i] = 1.1f * S[i];
            a[i] = 1.0f;
        }
        lq_adam_opts o;
        lq_adam_opts_init(&o);
        o.lr = 0.01 * mean;
        lq_finetune *f = NULL;
        ck_assert_int_eq(lq_finetune_create(ctx, t, &o, &f), LQ_OK);
        double L0 = qloss(S, T, a, rc, G), L = L0;
        /* a product on the codes builds the kernel layout: the step must drop it */
        float x[COLS], y0[ROWS], y1[ROWS];
        for (size_t i = 0; i < c->cols; i++) x[i] = (float)(i % 5) - 2.0f;
        ck_assert_int_eq(lq_matvec(ctx, t, x, y0), LQ_OK);
        for (int s = 0; s < 150; s++) {
            ck_assert_int_eq(lq_finetune_step(ctx, f, t, G, c->rows, c->cols), LQ_OK);
            ck_assert_int_eq(lq_dequantize(ctx, t, S), LQ_OK);
            double Ln = qloss(S, T, a, rc, G);
            if (s == 0) ck_assert_msg(Ln < L0, "%s: first step %g -> %g", c->name, L0, Ln);
            L = Ln;
        }
        ck_assert_uint_eq(lq_finetune_steps(f), 150);
        ck_assert_msg(L < 0.5 * L0, "%s: loss %g -> %g", c->name, L0, L);
        uint8_t *c1 = snapshot_codes(t, &clen1);
        ck_assert_uint_eq(clen0, clen1);
        ck_assert_int_eq(memcmp(c0, c1, clen0), 0);
        ck_assert_int_eq(lq_qtensor_validate(t), LQ_OK);
        /* products follow the tuned parameters: y = W_hat x */
        ck_assert_int_eq(lq_matvec(ctx, t, x, y1), LQ_OK);
        for (size_t r = 0; r < c->rows; r++) {
            double ref = 0, mag = 0;
            for (size_t k = 0; k < c->cols; k++) {
                ref += (double)S[r * c->cols + k] * x[k];
                mag += fabs((double)S[r * c->cols + k] * x[k]);
            }
            ck_assert_msg(fabs(y1[r] - ref) <= 1e-4 * mag + 1e-6, "%s: row %zu %g vs %g", c->name,
                          r, y1[r], ref);
        }
        lq_finetune_destroy(f);
        lq_qtensor_free(t);
        free(c0), free(c1), free(W), free(H), free(T), free(a), free(G), free(S), free(p);
    }
    lq_ctx_destroy(ctx);
}
END_TEST

START_TEST(bad_arguments_leave_outputs_untouched)
{
    lq_ctx *ctx = lq_test_ctx(1, LQ_SIMD_AUTO);
    cfg cs[16];
    make_cfgs(cs);
    const cfg *c = &cs[0];
    size_t rc = c->rows * c->cols;
    float *W = malloc(rc * sizeof *W), *H = malloc(c->cols * c->cols * sizeof *H);
    float *G = malloc(rc * sizeof *G);
    lq_qtensor *t = quantize(ctx, c, W, H);
    size_t n = 12345;
    ck_assert_int_eq(lq_finetune_param_count(NULL, &n), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_finetune_param_count(t, NULL), LQ_ERR_INVALID_ARG);
    ck_assert_uint_eq(n, 12345);
    ck_assert_int_eq(lq_finetune_param_count(t, &n), LQ_OK);
    float *g = malloc((n + 1) * sizeof *g), *p = malloc((n + 1) * sizeof *p);
    float *p0 = malloc(n * sizeof *p0);
    lq_finetune_get_params(t, p0, n);
    lq_test_fill_gaussian(G, rc, 1.0f, 3);
    for (size_t i = 0; i <= n; i++) g[i] = -7.0f;
    ck_assert_int_eq(lq_finetune_grad(ctx, NULL, G, c->rows, c->cols, g, n), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_finetune_grad(ctx, t, NULL, c->rows, c->cols, g, n), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_finetune_grad(ctx, t, G, c->rows, c->cols, NULL, n), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_finetune_grad(ctx, t, G, c->rows + 1, c->cols, g, n), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_finetune_grad(ctx, t, G, c->rows, c->cols - 1, g, n), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_finetune_grad(ctx, t, G, c->rows, c->cols, g, n + 1), LQ_ERR_INVALID_ARG);
    G[5] = NAN;
    ck_assert_int_eq(lq_finetune_grad(ctx, t, G, c->rows, c->cols, g, n), LQ_ERR_NOT_FINITE);
    G[5] = INFINITY;
    ck_assert_int_eq(lq_finetune_grad(ctx, t, G, c->rows, c->cols, g, n), LQ_ERR_NOT_FINITE);
    /* finite but huge: the sums leave the float range */
    for (size_t i = 0; i < rc; i++) G[i] = FLT_MAX;
    ck_assert_int_eq(lq_finetune_grad(ctx, t, G, c->rows, c->cols, g, n), LQ_ERR_OUT_OF_RANGE);
    for (size_t i = 0; i <= n; i++) ck_assert(g[i] == -7.0f);
    /* set_params: NaN, beyond the half range (INT scales are halves), n wrong */
    memcpy(p, p0, n * sizeof *p);
    p[1] = NAN;
    ck_assert_int_eq(lq_finetune_set_params(t, p, n), LQ_ERR_NOT_FINITE);
    p[1] = 70000.0f;
    ck_assert_int_eq(lq_finetune_set_params(t, p, n), LQ_ERR_OUT_OF_RANGE);
    p[1] = 1e30f;
    ck_assert_int_eq(lq_finetune_set_params(t, p, n), LQ_ERR_OUT_OF_RANGE);
    p[1] = p0[1];
    ck_assert_int_eq(lq_finetune_set_params(t, p, n - 1), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_finetune_set_params(NULL, p, n), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_finetune_get_params(t, p, n + 1), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_finetune_get_params(t, p, n), LQ_OK);
    ck_assert_int_eq(memcmp(p, p0, n * sizeof *p), 0);
    /* Adam options */
    lq_adam_opts o;
    ck_assert_int_eq(lq_adam_opts_init(NULL), LQ_ERR_INVALID_ARG);
    lq_finetune *f = (lq_finetune *)(uintptr_t)0x1;
    const double badv[][4] = {
        {0, .9, .999, 1e-8},   {-1, .9, .999, 1e-8},  {NAN, .9, .999, 1e-8},
        {1e7, .9, .999, 1e-8}, {1e-3, 1, .999, 1e-8}, {1e-3, -.1, .999, 1e-8},
        {1e-3, .9, 1.0, 1e-8}, {1e-3, .9, .999, 0},   {1e-3, .9, .999, INFINITY}};
    for (size_t i = 0; i < sizeof badv / sizeof badv[0]; i++) {
        o = (lq_adam_opts){badv[i][0], badv[i][1], badv[i][2], badv[i][3]};
        ck_assert_int_eq(lq_finetune_create(ctx, t, &o, &f), LQ_ERR_INVALID_ARG);
    }
    ck_assert_int_eq(lq_finetune_create(ctx, NULL, NULL, &f), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_finetune_create(ctx, t, NULL, NULL), LQ_ERR_INVALID_ARG);
    ck_assert_ptr_eq(f, (lq_finetune *)(uintptr_t)0x1);
    ck_assert_int_eq(lq_finetune_create(ctx, t, NULL, &f), LQ_OK);
    /* step: a state on another shape, NaN gradients, and a step that
     * would push a half scale beyond 65504: t and f untouched */
    cfg c2 = *c;
    c2.rows = 8;
    float *W2 = malloc(8 * c->cols * sizeof *W2);
    lq_qtensor *t2 = quantize(ctx, &c2, W2, H);
    lq_test_fill_gaussian(G, rc, 1.0f, 3);
    ck_assert_int_eq(lq_finetune_step(ctx, f, t2, G, 8, c->cols), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_finetune_step(ctx, NULL, t, G, c->rows, c->cols), LQ_ERR_INVALID_ARG);
    G[0] = NAN;
    ck_assert_int_eq(lq_finetune_step(ctx, f, t, G, c->rows, c->cols), LQ_ERR_NOT_FINITE);
    G[0] = 1.0f;
    memcpy(p, p0, n * sizeof *p);
    p[2] = 65504.0f;
    ck_assert_int_eq(lq_finetune_set_params(t, p, n), LQ_OK);
    lq_finetune *fbig = NULL;
    o = (lq_adam_opts){100.0, 0.9, 0.999, 1e-8};
    ck_assert_int_eq(lq_finetune_create(ctx, t, &o, &fbig), LQ_OK);
    for (size_t i = 0; i < rc; i++) G[i] = 0;
    /* dL/ds of scale 2 (row 0, group 2) negative: the step raises it past the half range */
    for (size_t i = 32; i < 48; i++) G[i] = (float)((i % 3) + 1) * -1.0f;
    float *gchk = malloc(n * sizeof *gchk);
    ck_assert_int_eq(lq_finetune_grad(ctx, t, G, c->rows, c->cols, gchk, n), LQ_OK);
    if (gchk[2] > 0)
        for (size_t i = 32; i < 48; i++) G[i] = -G[i];
    ck_assert_int_eq(lq_finetune_step(ctx, fbig, t, G, c->rows, c->cols), LQ_ERR_OUT_OF_RANGE);
    ck_assert_uint_eq(lq_finetune_steps(fbig), 0);
    ck_assert_int_eq(lq_finetune_get_params(t, g, n), LQ_OK);
    ck_assert_int_eq(memcmp(g, p, n * sizeof *p), 0);
    lq_finetune_destroy(fbig);
    ck_assert_uint_eq(lq_finetune_steps(f), 0);
    ck_assert_uint_eq(lq_finetune_steps(NULL), 0);
    lq_finetune_destroy(f);
    lq_finetune_destroy(NULL);
    /* a corrupt tensor is refused */
    float *sc = (float *)lq_qtensor_section(t, LQ_SEC_SCALES)->data;
    (void)sc;
    uint32_t bits = t->ip[LQ_INT_IP_BITS];
    t->ip[LQ_INT_IP_BITS] = 9;
    ck_assert_int_eq(lq_finetune_param_count(t, &n), LQ_ERR_CORRUPT);
    t->ip[LQ_INT_IP_BITS] = bits;
    lq_qtensor_free(t);
    lq_qtensor_free(t2);
    free(W), free(W2), free(H), free(G), free(g), free(p), free(p0), free(gchk);
    lq_ctx_destroy(ctx);
}
END_TEST

/* VQ int8 codebooks: the tuned scales must stay positive (set_params
 * refuses <= 0; a step clamps at FLT_MIN). */
START_TEST(vq_int8_scales_positive)
{
    lq_ctx *ctx = lq_test_ctx(1, LQ_SIMD_AUTO);
    cfg cs[16];
    make_cfgs(cs);
    const cfg *c = &cs[6];
    size_t rc = c->rows * c->cols;
    float *W = malloc(rc * sizeof *W), *H = malloc(c->cols * c->cols * sizeof *H);
    float *G = malloc(rc * sizeof *G);
    lq_qtensor *t = quantize(ctx, c, W, H);
    size_t n;
    lq_finetune_param_count(t, &n);
    float *p = malloc(n * sizeof *p);
    lq_finetune_get_params(t, p, n);
    float keep = p[0];
    p[0] = 0.0f;
    ck_assert_int_eq(lq_finetune_set_params(t, p, n), LQ_ERR_OUT_OF_RANGE);
    p[0] = -1.0f;
    ck_assert_int_eq(lq_finetune_set_params(t, p, n), LQ_ERR_OUT_OF_RANGE);
    p[0] = keep;
    lq_adam_opts o = {1e3, 0.9, 0.999, 1e-8};
    lq_finetune *f;
    ck_assert_int_eq(lq_finetune_create(ctx, t, &o, &f), LQ_OK);
    float *Wh = malloc(rc * sizeof *Wh);
    lq_dequantize(ctx, t, Wh);
    for (size_t i = 0; i < rc; i++) G[i] = Wh[i]; /* dL/dscale > 0 everywhere */
    ck_assert_int_eq(lq_finetune_step(ctx, f, t, G, c->rows, c->cols), LQ_OK);
    lq_finetune_get_params(t, p, n);
    for (size_t i = 0; i < n; i++) ck_assert(p[i] >= FLT_MIN);
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_OK);
    lq_finetune_destroy(f);
    lq_qtensor_free(t);
    free(W), free(H), free(G), free(p), free(Wh);
    lq_ctx_destroy(ctx);
}
END_TEST

/* The same steps on 1 thread and on 2 threads capped at scalar give
 * bit-identical parameters. */
static void run_steps(size_t threads, lq_simd_level cap, const cfg *c, float *out, size_t n)
{
    /* the same quantized tensor (one quantizing context), then the steps on
     * the context under test */
    lq_ctx *qctx = lq_test_ctx(1, LQ_SIMD_AUTO);
    lq_ctx *ctx = lq_test_ctx(threads, cap);
    size_t rc = c->rows * c->cols;
    float *W = malloc(rc * sizeof *W), *H = malloc(c->cols * c->cols * sizeof *H);
    float *G = malloc(rc * sizeof *G), *S = malloc(rc * sizeof *S);
    lq_qtensor *t = quantize(qctx, c, W, H);
    lq_ctx_destroy(qctx);
    lq_finetune *f;
    lq_adam_opts o = {1e-3, 0.9, 0.999, 1e-8};
    ck_assert_int_eq(lq_finetune_create(ctx, t, &o, &f), LQ_OK);
    for (int s = 0; s < 5; s++) {
        lq_dequantize(ctx, t, S);
        for (size_t i = 0; i < rc; i++) G[i] = 2.0f * (S[i] - W[i]);
        ck_assert_int_eq(lq_finetune_step(ctx, f, t, G, c->rows, c->cols), LQ_OK);
    }
    ck_assert_int_eq(lq_finetune_get_params(t, out, n), LQ_OK);
    lq_finetune_destroy(f);
    lq_qtensor_free(t);
    free(W), free(H), free(G), free(S);
    lq_ctx_destroy(ctx);
}

START_TEST(deterministic_threads_simd)
{
    cfg cs[16];
    size_t nc = make_cfgs(cs);
    for (size_t ci = 0; ci < nc; ci++) {
        lq_ctx *ctx = lq_test_ctx(1, LQ_SIMD_AUTO);
        float *W = malloc(cs[ci].rows * cs[ci].cols * sizeof *W);
        float *H = malloc(cs[ci].cols * cs[ci].cols * sizeof *H);
        lq_qtensor *t = quantize(ctx, &cs[ci], W, H);
        size_t n;
        lq_finetune_param_count(t, &n);
        lq_qtensor_free(t);
        lq_ctx_destroy(ctx);
        float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
        run_steps(1, LQ_SIMD_AUTO, &cs[ci], a, n);
        run_steps(2, LQ_SIMD_SCALAR, &cs[ci], b, n);
        ck_assert_msg(!memcmp(a, b, n * sizeof *a), "%s differs", cs[ci].name);
        free(a), free(b), free(W), free(H);
    }
}
END_TEST

typedef struct sweep_arg {
    const lq_qtensor *src;
    const float *G;
} sweep_arg;

static lq_status sweep_body(lq_ctx *ctx, void *arg)
{
    sweep_arg *s = arg;
    size_t n;
    lq_status st = lq_finetune_param_count(s->src, &n);
    if (st != LQ_OK) return st;
    float *g = malloc(n * sizeof *g);
    if ((st = lq_finetune_grad(ctx, s->src, s->G, s->src->rows, s->src->cols, g, n)) == LQ_OK) {
        lq_finetune *f = NULL;
        st = lq_finetune_create(ctx, s->src, NULL, &f);
        /* the step writes the tensor: run it on a copy of the parameters */
        if (st == LQ_OK) {
            float *p0 = malloc(n * sizeof *p0);
            lq_finetune_get_params(s->src, p0, n);
            lq_qtensor *t = (lq_qtensor *)(uintptr_t)s->src;
            st = lq_finetune_step(ctx, f, t, s->G, t->rows, t->cols);
            lq_finetune_set_params(t, p0, n);
            free(p0);
        }
        lq_finetune_destroy(f);
    }
    free(g);
    return st;
}

START_TEST(allocation_failures)
{
    lq_ctx *ctx = lq_test_ctx(1, LQ_SIMD_AUTO);
    cfg cs[16];
    size_t nc = make_cfgs(cs);
    for (size_t ci = 0; ci < nc; ci += 2) {
        const cfg *c = &cs[ci];
        size_t rc = c->rows * c->cols;
        float *W = malloc(rc * sizeof *W), *H = malloc(c->cols * c->cols * sizeof *H);
        float *G = malloc(rc * sizeof *G);
        lq_qtensor *t = quantize(ctx, c, W, H);
        lq_test_fill_gaussian(G, rc, 1.0f, 5);
        sweep_arg a = {t, G};
        ck_assert_uint_ge(lq_test_alloc_sweep(sweep_body, &a, 1), 3);
        lq_qtensor_free(t);
        free(W), free(H), free(G);
    }
    lq_ctx_destroy(ctx);
}
END_TEST

/* ---- re-encoding (lq_finetune_reencode) ---------------------------------- */

/* All section bytes of t, concatenated (to compare before and after). */
static uint8_t *snapshot_all(const lq_qtensor *t, size_t *len)
{
    size_t n = 0;
    for (size_t i = 0; i < t->nsec; i++) n += t->sec[i].nbytes;
    uint8_t *b = malloc(n ? n : 1), *o = b;
    for (size_t i = 0; i < t->nsec; i++) {
        memcpy(o, t->sec[i].data, t->sec[i].nbytes);
        o += t->sec[i].nbytes;
    }
    *len = n;
    return b;
}

static int same_bytes(const lq_qtensor *t, const uint8_t *snap, size_t len)
{
    size_t n;
    uint8_t *now = snapshot_all(t, &n);
    int same = n == len && !memcmp(now, snap, n);
    free(now);
    return same;
}

/* f_r = e_r H e_r^T (H NULL: ||e_r||^2), e = W_hat - W, in double. */
static void row_objectives(lq_ctx *ctx, const lq_qtensor *t, const float *W, const float *H,
                           double *f)
{
    size_t rows = t->rows, cols = t->cols;
    float *Wh = malloc(rows * cols * sizeof *Wh);
    double *e = malloc(cols * sizeof *e);
    ck_assert_int_eq(lq_dequantize(ctx, t, Wh), LQ_OK);
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++) e[c] = (double)Wh[r * cols + c] - W[r * cols + c];
        double s = 0;
        for (size_t i = 0; i < cols; i++) {
            if (!H) {
                s += e[i] * e[i];
                continue;
            }
            double hi = 0;
            for (size_t j = 0; j < cols; j++) hi += (double)H[i * cols + j] * e[j];
            s += e[i] * hi;
        }
        f[r] = s;
    }
    free(Wh);
    free(e);
}

/* Move every continuous parameter by a seeded 25% (as a tuning round
 * would), so that other codes become better. */
static void perturb_params(lq_qtensor *t, uint64_t seed)
{
    size_t n;
    ck_assert_int_eq(lq_finetune_param_count(t, &n), LQ_OK);
    float *p = malloc(n * sizeof *p), *z = malloc(n * sizeof *z);
    ck_assert_int_eq(lq_finetune_get_params(t, p, n), LQ_OK);
    lq_test_fill_gaussian(z, n, 0.25f, seed);
    for (size_t i = 0; i < n; i++)
        p[i] *= t->format == LQ_FORMAT_VQ && t->ip[LQ_VQ_IP_CB] == 8 ? fabsf(1.0f + z[i]) + 0.05f
                                                                     : 1.0f + z[i];
    ck_assert_int_eq(lq_finetune_set_params(t, p, n), LQ_OK);
    free(p);
    free(z);
}

/* For fixed codebooks and scales the re-encoded codes never raise any row's
 * objective f_r (with and without H), they lower the total after the
 * parameters moved, the returned objective is that total, the parameters
 * are untouched, and the products see the new codes. */
START_TEST(reencode_never_raises_a_row)
{
    lq_ctx *ctx = lq_test_ctx(2, LQ_SIMD_AUTO);
    cfg cs[16];
    size_t nc = make_cfgs(cs);
    for (size_t ci = 0; ci < nc; ci++) {
        const cfg *c = &cs[ci];
        if (c->format != LQ_FORMAT_VQ && c->format != LQ_FORMAT_AQ) continue;
        for (int useh = 0; useh < 2; useh++) {
            size_t rc = c->rows * c->cols;
            float *W = malloc(rc * sizeof *W), *H = malloc(c->cols * c->cols * sizeof *H);
            lq_qtensor *t = quantize(ctx, c, W, H);
            const float *Hu = useh ? H : NULL;
            perturb_params(t, 11 + ci);
            size_t np;
            lq_finetune_param_count(t, &np);
            float *p0 = malloc(np * sizeof *p0), *p1 = malloc(np * sizeof *p1);
            lq_finetune_get_params(t, p0, np);
            double *f0 = malloc(c->rows * sizeof *f0), *f1 = malloc(c->rows * sizeof *f1);
            row_objectives(ctx, t, W, Hu, f0);
            float *x = malloc(c->cols * sizeof *x), *y = malloc(c->rows * sizeof *y);
            lq_test_fill_gaussian(x, c->cols, 1.0f, 3);
            ck_assert_int_eq(lq_matvec(ctx, t, x, y), LQ_OK); /* builds a kernel layout */
            double obj = -1;
            size_t chg = 0;
            ck_assert_int_eq(lq_finetune_reencode(ctx, t, W, c->rows, c->cols, Hu, 4, &obj, &chg),
                             LQ_OK);
            row_objectives(ctx, t, W, Hu, f1);
            double s0 = 0, s1 = 0;
            for (size_t r = 0; r < c->rows; r++) {
                ck_assert_msg(f1[r] <= f0[r] * (1 + 1e-5) + 1e-9, "%s H=%d row %zu: %g > %g",
                              c->name, useh, r, f1[r], f0[r]);
                s0 += f0[r];
                s1 += f1[r];
            }
            ck_assert_msg(chg > 0 && s1 < s0, "%s H=%d: %zu codes changed, %g -> %g", c->name, useh,
                          chg, s0, s1);
            ck_assert_msg(fabs(obj - s1) <= 1e-3 * s1 + 1e-9, "%s: objective %g, recomputed %g",
                          c->name, obj, s1);
            lq_finetune_get_params(t, p1, np);
            ck_assert(!memcmp(p0, p1, np * sizeof *p0));
            /* the product follows the new codes (the old layout was dropped) */
            float *Wh = malloc(rc * sizeof *Wh), *y1 = malloc(c->rows * sizeof *y1);
            ck_assert_int_eq(lq_dequantize(ctx, t, Wh), LQ_OK);
            ck_assert_int_eq(lq_matvec(ctx, t, x, y1), LQ_OK);
            for (size_t r = 0; r < c->rows; r++) {
                double ref = 0, mag = 0;
                for (size_t k = 0; k < c->cols; k++) {
                    ref += (double)Wh[r * c->cols + k] * x[k];
                    mag += fabs((double)Wh[r * c->cols + k] * x[k]);
                }
                ck_assert_msg(fabs(y1[r] - ref) <= 1e-4 * mag + 1e-6, "%s row %zu: %g vs %g",
                              c->name, r, y1[r], ref);
            }
            free(Wh), free(y1), free(x), free(y);
            free(p0), free(p1), free(f0), free(f1);
            lq_qtensor_free(t);
            free(W), free(H);
        }
    }
    lq_ctx_destroy(ctx);
}
END_TEST

/* VQ without H: every vector's code is a nearest entry of its codebook
 * (brute force over the K entries, distances in double). */
START_TEST(reencode_vq_is_nearest)
{
    lq_ctx *ctx = lq_test_ctx(1, LQ_SIMD_AUTO);
    cfg cs[16];
    size_t nc = make_cfgs(cs);
    for (size_t ci = 0; ci < nc; ci++) {
        const cfg *c = &cs[ci];
        if (c->format != LQ_FORMAT_VQ) continue;
        size_t rc = c->rows * c->cols;
        float *W = malloc(rc * sizeof *W), *H = malloc(c->cols * c->cols * sizeof *H);
        lq_qtensor *t = quantize(ctx, c, W, H);
        perturb_params(t, 5);
        ck_assert_int_eq(lq_finetune_reencode(ctx, t, W, c->rows, c->cols, NULL, 1, NULL, NULL),
                         LQ_OK);
        lq_vq_layout v;
        ck_assert_int_eq(lq_vq_layout_read(t, &v), LQ_OK);
        for (size_t r = 0; r < c->rows; r++)
            for (size_t vi = 0; vi < v.nvec; vi++) {
                size_t g = lq_vq_layout_book(&v, r / v.gr, vi * v.d / v.gc);
                double best = INFINITY, got = 0;
                for (size_t e = 0; e < v.K; e++) {
                    double dd = 0;
                    for (size_t j = 0; j < v.d; j++) {
                        double df = (double)lq_vq_layout_value(&v, g, e * v.d + j) -
                                    W[r * c->cols + vi * v.d + j];
                        dd += df * df;
                    }
                    if (dd < best) best = dd;
                    if (e == lq_vq_layout_code(&v, r, vi)) got = dd;
                }
                ck_assert_msg(got <= best, "%s row %zu vec %zu: %g > %g", c->name, r, vi, got,
                              best);
            }
        lq_qtensor_free(t);
        free(W), free(H);
    }
    lq_ctx_destroy(ctx);
}
END_TEST

/* Same codes for 1 and 2 threads. */
START_TEST(reencode_deterministic_threads)
{
    cfg cs[16];
    size_t nc = make_cfgs(cs);
    for (size_t ci = 0; ci < nc; ci++) {
        const cfg *c = &cs[ci];
        if (c->format != LQ_FORMAT_VQ && c->format != LQ_FORMAT_AQ) continue;
        uint8_t *snap[2];
        size_t len[2];
        for (size_t th = 1; th <= 2; th++) {
            lq_ctx *ctx = lq_test_ctx(th, LQ_SIMD_AUTO);
            size_t rc = c->rows * c->cols;
            float *W = malloc(rc * sizeof *W), *H = malloc(c->cols * c->cols * sizeof *H);
            lq_qtensor *t = quantize(ctx, c, W, H);
            perturb_params(t, 9);
            ck_assert_int_eq(lq_finetune_reencode(ctx, t, W, c->rows, c->cols, H, 3, NULL, NULL),
                             LQ_OK);
            snap[th - 1] = snapshot_all(t, &len[th - 1]);
            lq_qtensor_free(t);
            free(W), free(H);
            lq_ctx_destroy(ctx);
        }
        ck_assert_msg(len[0] == len[1] && !memcmp(snap[0], snap[1], len[0]), "%s", c->name);
        free(snap[0]), free(snap[1]);
    }
}
END_TEST

/* Every refusal leaves the tensor and the outputs untouched. */
START_TEST(reencode_refusals_untouched)
{
    lq_ctx *ctx = lq_test_ctx(1, LQ_SIMD_AUTO);
    cfg cs[16];
    size_t nc = make_cfgs(cs);
    for (size_t ci = 0; ci < nc; ci++) {
        const cfg *c = &cs[ci];
        size_t rc = c->rows * c->cols, cc = c->cols * c->cols;
        float *W = malloc(rc * sizeof *W), *H = malloc(cc * sizeof *H);
        float *Wb = malloc(rc * sizeof *Wb), *Hb = malloc(cc * sizeof *Hb);
        lq_qtensor *t = quantize(ctx, c, W, H);
        perturb_params(t, 2);
        size_t len;
        uint8_t *snap = snapshot_all(t, &len);
        double obj = 42;
        size_t chg = 42;
        int coded = c->format == LQ_FORMAT_VQ || c->format == LQ_FORMAT_AQ;
        if (!coded) {
            ck_assert_int_eq(lq_finetune_reencode(ctx, t, W, c->rows, c->cols, H, 4, &obj, &chg),
                             LQ_ERR_UNSUPPORTED);
        } else {
            ck_assert_int_eq(lq_finetune_reencode(NULL, t, W, c->rows, c->cols, H, 4, &obj, &chg),
                             LQ_ERR_INVALID_ARG);
            ck_assert_int_eq(lq_finetune_reencode(ctx, NULL, W, c->rows, c->cols, H, 4, &obj, &chg),
                             LQ_ERR_INVALID_ARG);
            ck_assert_int_eq(lq_finetune_reencode(ctx, t, NULL, c->rows, c->cols, H, 4, &obj, &chg),
                             LQ_ERR_INVALID_ARG);
            ck_assert_int_eq(
                lq_finetune_reencode(ctx, t, W, c->rows + 1, c->cols, H, 4, &obj, &chg),
                LQ_ERR_INVALID_ARG);
            if (c->format == LQ_FORMAT_AQ) {
                ck_assert_int_eq(
                    lq_finetune_reencode(ctx, t, W, c->rows, c->cols, H, 0, &obj, &chg),
                    LQ_ERR_INVALID_ARG);
                ck_assert_int_eq(
                    lq_finetune_reencode(ctx, t, W, c->rows, c->cols, H, 257, &obj, &chg),
                    LQ_ERR_INVALID_ARG);
            }
            memcpy(Wb, W, rc * sizeof *W);
            Wb[rc / 2] = NAN;
            ck_assert_int_eq(lq_finetune_reencode(ctx, t, Wb, c->rows, c->cols, H, 4, &obj, &chg),
                             LQ_ERR_NOT_FINITE);
            Wb[rc / 2] = 3e38f;
            ck_assert_int_eq(lq_finetune_reencode(ctx, t, Wb, c->rows, c->cols, H, 4, &obj, &chg),
                             LQ_ERR_OUT_OF_RANGE);
            memcpy(Hb, H, cc * sizeof *H);
            Hb[1] = INFINITY;
            ck_assert_int_eq(lq_finetune_reencode(ctx, t, W, c->rows, c->cols, Hb, 4, &obj, &chg),
                             LQ_ERR_NOT_FINITE);
            if (c->format == LQ_FORMAT_VQ) {
                memcpy(Hb, H, cc * sizeof *H);
                Hb[3 * c->cols + 3] = -1.0f;
                ck_assert_int_eq(
                    lq_finetune_reencode(ctx, t, W, c->rows, c->cols, Hb, 4, &obj, &chg),
                    LQ_ERR_NOT_POSITIVE_DEFINITE);
            }
        }
        ck_assert_msg(same_bytes(t, snap, len), "%s: tensor written by a refused call", c->name);
        ck_assert(obj == 42 && chg == 42);
        free(snap);
        lq_qtensor_free(t);
        free(W), free(H), free(Wb), free(Hb);
    }
    lq_ctx_destroy(ctx);
}
END_TEST

typedef struct re_arg {
    lq_qtensor *t;
    const float *W, *H;
    const uint8_t *snap;
    size_t len;
} re_arg;

/* An allocation failure anywhere leaves the tensor as it was. */
static lq_status reencode_sweep_body(lq_ctx *ctx, void *arg)
{
    re_arg *a = arg;
    double obj = 7;
    lq_status st =
        lq_finetune_reencode(ctx, a->t, a->W, a->t->rows, a->t->cols, a->H, 2, &obj, NULL);
    if (st == LQ_ERR_NO_MEMORY) {
        ck_assert(same_bytes(a->t, a->snap, a->len));
        ck_assert(obj == 7);
    }
    return st;
}

START_TEST(reencode_allocation_failures)
{
    lq_ctx *ctx = lq_test_ctx(1, LQ_SIMD_AUTO);
    cfg cs[16];
    size_t nc = make_cfgs(cs);
    for (size_t ci = 0; ci < nc; ci++) {
        const cfg *c = &cs[ci];
        if (c->format != LQ_FORMAT_VQ && c->format != LQ_FORMAT_AQ) continue;
        size_t rc = c->rows * c->cols;
        float *W = malloc(rc * sizeof *W), *H = malloc(c->cols * c->cols * sizeof *H);
        lq_qtensor *t = quantize(ctx, c, W, H);
        perturb_params(t, 4);
        re_arg a = {t, W, H, NULL, 0};
        uint8_t *snap = snapshot_all(t, &a.len);
        a.snap = snap;
        ck_assert_uint_ge(lq_test_alloc_sweep(reencode_sweep_body, &a, 1), 2);
        free(snap);
        lq_qtensor_free(t);
        free(W), free(H);
    }
    lq_ctx_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("finetune");
    TCase *tc = tcase_create("finetune");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, gradient_matches_finite_differences);
    tcase_add_test(tc, adam_decreases_quadratic_codes_fixed);
    tcase_add_test(tc, bad_arguments_leave_outputs_untouched);
    tcase_add_test(tc, vq_int8_scales_positive);
    tcase_add_test(tc, deterministic_threads_simd);
    tcase_add_test(tc, allocation_failures);
    tcase_add_test(tc, reencode_never_raises_a_row);
    tcase_add_test(tc, reencode_vq_is_nearest);
    tcase_add_test(tc, reencode_deterministic_threads);
    tcase_add_test(tc, reencode_refusals_untouched);
    tcase_add_test(tc, reencode_allocation_failures);
    suite_add_tcase(s, tc);
    return lq_test_run(s);
}
