/* LQ_METHOD_NESTQUANT and LQ_FORMAT_E8: quantize through the engine (GPTQ
 * and round to nearest), padding of cols to a multiple of 8, the Hadamard
 * rotation, bits accounting, products on the codes, validation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lattice/lattice_internal.h"
#include "qtensor/format_e8.h"
#include "qtensor/qtensor_internal.h"
#include "test_common.h"

static float *fa(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    ck_assert_ptr_nonnull(p);
    return p;
}

static lq_method nq_method(unsigned q, unsigned K, size_t group, int had, int rtn)
{
    lq_method m;
    ck_assert_int_eq(lq_method_init(&m, LQ_METHOD_NESTQUANT), LQ_OK);
    m.u.nestquant.q = q;
    m.u.nestquant.n_betas = K;
    m.u.nestquant.group = group;
    m.u.nestquant.hadamard = had;
    m.engine.rtn = rtn;
    return m;
}

static double frob(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += ((double)a[i] - (b ? b[i] : 0)) * ((double)a[i] - (b ? b[i] : 0));
    return s;
}

/* report->overloads counts the 8-vectors that overload every beta: with a
 * beta set far larger than any normalised vector none does, with one far
 * smaller every vector with a nonzero coordinate does (round to nearest, so
 * the vectors do not depend on the betas). */
START_TEST(overload_count_extremes)
{
    const size_t rows = 8, cols = 64, nvec = rows * cols / 8;
    float *W = fa(rows * cols), *Wh = fa(rows * cols);
    lq_test_fill_gaussian(W, rows * cols, 1.0f, 41);
    static const float huge[4] = {100.0f, 200.0f, 400.0f, 800.0f};
    static const float tiny[4] = {1e-4f, 2e-4f, 3e-4f, 4e-4f};
    const float *sets[2] = {huge, tiny};
    const size_t want[2] = {0, nvec};
    for (int k = 0; k < 2; k++) {
        lq_method m = nq_method(16, 4, 0, 0, 1);
        m.u.nestquant.betas = sets[k];
        lq_qtensor *t = NULL;
        lq_quant_report rep;
        ck_assert_int_eq(lq_quantize_ex(NULL, W, rows, cols, NULL, &m, &t, Wh, &rep), LQ_OK);
        ck_assert_uint_eq(rep.overloads, want[k]);
        lq_qtensor_free(t);
    }
    free(W);
    free(Wh);
}
END_TEST

START_TEST(quantize_properties)
{
    const size_t rows = 24, cols = 60, n8 = 64;
    float *W = fa(rows * cols), *H = fa(cols * cols), *Wh = fa(rows * cols), *Wd = fa(rows * cols);
    lq_test_correlated_layer(rows, cols, 256, 3, W, H);
    lq_ctx *ctx = lq_test_ctx(1, LQ_SIMD_AUTO);
    static const size_t groups[] = {0, 16};
    for (int had = 0; had <= 1; had++)
        for (int gi = 0; gi < 2; gi++) {
            double loss[2];
            for (int rtn = 0; rtn <= 1; rtn++) {
                lq_method m = nq_method(16, 4, groups[gi], had, rtn);
                lq_qtensor *t = NULL;
                lq_quant_report rep;
                ck_assert_int_eq(lq_quantize_ex(ctx, W, rows, cols, H, &m, &t, Wh, &rep), LQ_OK);
                loss[rtn] = rep.proxy_loss;
                ck_assert_int_eq(lq_qtensor_validate(t), LQ_OK);
                lq_format f;
                ck_assert_int_eq(lq_qtensor_format(t, &f), LQ_OK);
                ck_assert_int_eq(f, LQ_FORMAT_E8);
                /* W_hat is exactly the stored tensor */
                ck_assert_int_eq(lq_dequantize(ctx, t, Wd), LQ_OK);
                ck_assert_int_eq(memcmp(Wh, Wd, rows * cols * sizeof(float)), 0);
                /* about 4.25 bits: relative error well below 10% */
                ck_assert(frob(W, Wh, rows * cols) < 0.01 * frob(W, NULL, rows * cols));
                /* betas fitted to the layer cover it: at most 1% of the
                 * 8-vectors overload every beta (measured: none) */
                ck_assert_uint_le(rep.overloads, rows * n8 / 8 / 100);
                /* bits: codes + indices + scales + beta table + seed */
                size_t nvec = rows * n8 / 8, g = groups[gi] ? groups[gi] : n8;
                double bits = 8.0 * ((nvec * 32 + 7) / 8) + 8.0 * ((nvec * 2 + 7) / 8) +
                              32.0 * rows * ((n8 + g - 1) / g) + 32.0 * 4 + (had ? 64.0 : 0.0);
                double bpw;
                ck_assert_int_eq(lq_qtensor_bits_per_weight(t, &bpw), LQ_OK);
                ck_assert(fabs(bpw - bits / (rows * cols)) < 1e-12);
                /* products on the codes give W_hat x for the caller's x */
                float x[3 * 60], y[3 * 24];
                lq_test_fill_gaussian(x, 3 * cols, 1.0f, 17);
                ck_assert_int_eq(lq_matmul(ctx, t, x, 3, y), LQ_OK);
                for (size_t b = 0; b < 3; b++)
                    for (size_t r = 0; r < rows; r++) {
                        double ref = 0, mag = 0;
                        for (size_t j = 0; j < cols; j++) {
                            ref += (double)Wh[r * cols + j] * x[b * cols + j];
                            mag += fabs((double)Wh[r * cols + j] * x[b * cols + j]);
                        }
                        ck_assert_msg(fabs(y[b * rows + r] - ref) <= 1e-5 * mag + 1e-9,
                                      "had %d: %g vs %g", had, y[b * rows + r], ref);
                    }
                float yv[24];
                ck_assert_int_eq(lq_matvec(ctx, t, x, yv), LQ_OK);
                ck_assert_int_eq(memcmp(yv, y, sizeof yv), 0);
                lq_qtensor_free(t);
            }
            ck_assert_msg(loss[0] < loss[1], "had %d group %zu: gptq %g >= rtn %g", had, groups[gi],
                          loss[0], loss[1]);
        }
    /* H = NULL: round to nearest, proxy = squared Frobenius error */
    lq_method m = nq_method(14, 2, 0, 1, 0);
    lq_qtensor *t = NULL;
    lq_quant_report rep;
    ck_assert_int_eq(lq_quantize_ex(ctx, W, rows, cols, NULL, &m, &t, Wh, &rep), LQ_OK);
    ck_assert(fabs(rep.proxy_loss - frob(W, Wh, rows * cols)) <= 1e-6 * rep.proxy_loss);
    lq_qtensor_free(t);
    lq_ctx_destroy(ctx);
    free(W);
    free(H);
    free(Wh);
    free(Wd);
}
END_TEST

START_TEST(threads_and_simd_identical)
{
    /* 1 vs 2 threads at one SIMD level: bit-identical tensors. Across SIMD
     * levels the lattice kernels are bit-identical, but the engine's lazy
     * updates go through lq_sgemm, whose per-ISA kernels round differently
     * (FMA), so only closeness is asserted there. */
    const size_t rows = 70, cols = 45;
    float *W = fa(rows * cols), *H = fa(cols * cols), *A = fa(rows * cols), *B = fa(rows * cols);
    lq_test_correlated_layer(rows, cols, 200, 4, W, H);
    lq_method m = nq_method(7, 4, 16, 1, 0);
    lq_ctx *c1 = lq_test_ctx(1, LQ_SIMD_AUTO), *c2 = lq_test_ctx(2, LQ_SIMD_AUTO);
    lq_ctx *c3 = lq_test_ctx(2, LQ_SIMD_SCALAR);
    lq_qtensor *t1 = NULL, *t2 = NULL;
    ck_assert_int_eq(lq_quantize(c1, W, rows, cols, H, &m, &t1, A), LQ_OK);
    ck_assert_int_eq(lq_quantize(c2, W, rows, cols, H, &m, &t2, B), LQ_OK);
    ck_assert_int_eq(memcmp(A, B, rows * cols * sizeof(float)), 0);
    ck_assert_uint_eq(t1->nsec, t2->nsec);
    for (size_t i = 0; i < t1->nsec; i++) {
        ck_assert_uint_eq(t1->sec[i].nbytes, t2->sec[i].nbytes);
        ck_assert_int_eq(memcmp(t1->sec[i].data, t2->sec[i].data, t1->sec[i].nbytes), 0);
    }
    ck_assert_int_eq(memcmp(t1->ip, t2->ip, sizeof t1->ip), 0);
    lq_qtensor_free(t2);
    t2 = NULL;
    lq_quant_report r1, r3;
    ck_assert_int_eq(lq_quantize_ex(c1, W, rows, cols, H, &m, &t2, A, &r1), LQ_OK);
    lq_qtensor_free(t2);
    t2 = NULL;
    ck_assert_int_eq(lq_quantize_ex(c3, W, rows, cols, H, &m, &t2, B, &r3), LQ_OK);
    ck_assert_msg(fabs(r1.proxy_loss - r3.proxy_loss) <= 0.05 * r1.proxy_loss, "%g vs %g",
                  r1.proxy_loss, r3.proxy_loss);
    ck_assert_int_eq(memcmp(t1->ip, t2->ip, sizeof t1->ip), 0); /* same betas, seed */
    ck_assert_int_eq(memcmp(t1->fp, t2->fp, sizeof t1->fp), 0);
    lq_qtensor_free(t1);
    lq_qtensor_free(t2);
    lq_ctx_destroy(c1);
    lq_ctx_destroy(c2);
    lq_ctx_destroy(c3);
    free(W);
    free(H);
    free(A);
    free(B);
}
END_TEST

START_TEST(bad_options_and_corrupt)
{
    const size_t rows = 8, cols = 20;
    float *W = fa(rows * cols), *H = fa(cols * cols), *Wh = fa(rows * cols);
    lq_test_correlated_layer(rows, cols, 64, 5, W, H);
    lq_ctx *ctx = lq_test_ctx(1, LQ_SIMD_AUTO);
    lq_qtensor *t = NULL;
    lq_method m = nq_method(1, 4, 0, 1, 0);
    ck_assert_int_eq(lq_quantize(ctx, W, rows, cols, H, &m, &t, NULL), LQ_ERR_INVALID_ARG);
    m = nq_method(257, 4, 0, 1, 0);
    ck_assert_int_eq(lq_quantize(ctx, W, rows, cols, H, &m, &t, NULL), LQ_ERR_INVALID_ARG);
    m = nq_method(16, 0, 0, 1, 0);
    ck_assert_int_eq(lq_quantize(ctx, W, rows, cols, H, &m, &t, NULL), LQ_ERR_INVALID_ARG);
    m = nq_method(16, 17, 0, 1, 0);
    ck_assert_int_eq(lq_quantize(ctx, W, rows, cols, H, &m, &t, NULL), LQ_ERR_INVALID_ARG);
    m = nq_method(16, 4, 12, 1, 0);
    ck_assert_int_eq(lq_quantize(ctx, W, rows, cols, H, &m, &t, NULL), LQ_ERR_INVALID_ARG);
    m = nq_method(16, 4, 0, 2, 0);
    ck_assert_int_eq(lq_quantize(ctx, W, rows, cols, H, &m, &t, NULL), LQ_ERR_INVALID_ARG);
    m = nq_method(16, 4, 0, 1, 0);
    m.engine.act_order = 1;
    ck_assert_int_eq(lq_quantize(ctx, W, rows, cols, H, &m, &t, NULL), LQ_ERR_INVALID_ARG);
    ck_assert_ptr_null(t);
    W[7] = NAN;
    m = nq_method(16, 4, 0, 1, 0);
    ck_assert_int_eq(lq_quantize(ctx, W, rows, cols, H, &m, &t, NULL), LQ_ERR_NOT_FINITE);
    W[7] = 0.0f;
    /* corrupt packed tensors (q = 14: 31-bit codes, 14^8 < 2^31) */
    m = nq_method(14, 4, 0, 1, 0);
    ck_assert_int_eq(lq_quantize(ctx, W, rows, cols, H, &m, &t, Wh), LQ_OK);
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_OK);
    lq_qtensor saved = *t;
    uint32_t *ips[] = {&t->ip[LQ_E8_IP_Q],        &t->ip[LQ_E8_IP_K],   &t->ip[LQ_E8_IP_GROUP],
                       &t->ip[LQ_E8_IP_HADAMARD], &t->ip[LQ_E8_IP_N8],  &t->ip[LQ_E8_IP_CBITS],
                       &t->ip[LQ_E8_IP_IBITS],    &t->ip[LQ_E8_NIP + 3]};
    for (size_t i = 0; i < sizeof ips / sizeof *ips; i++) {
        uint32_t v = *ips[i];
        *ips[i] = v + 1;
        ck_assert_msg(lq_qtensor_validate(t) == LQ_ERR_CORRUPT, "ip %zu", i);
        *ips[i] = 0x7fffffffu;
        ck_assert_int_eq(lq_qtensor_validate(t), LQ_ERR_CORRUPT);
        *ips[i] = v;
    }
    t->fp[1] = t->fp[0];
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_ERR_CORRUPT);
    t->fp[1] = NAN;
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_ERR_CORRUPT);
    t->fp[1] = saved.fp[1];
    for (size_t s = 0; s < t->nsec; s++) {
        t->sec[s].nbytes--;
        ck_assert_int_eq(lq_qtensor_validate(t), LQ_ERR_CORRUPT);
        t->sec[s].nbytes++;
    }
    float *sc = (float *)lq_qtensor_section(t, LQ_SEC_SCALES)->data;
    float s0 = sc[0];
    sc[0] = INFINITY;
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_ERR_CORRUPT);
    sc[0] = s0;
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_OK);
    /* a packed value >= q^8: the decoder refuses it */
    uint8_t *cd = lq_qtensor_section(t, LQ_SEC_CODES)->data;
    memset(cd, 0xff, 4);
    ck_assert_int_eq(lq_dequantize(ctx, t, Wh), LQ_ERR_CORRUPT);
    float x[20] = {0}, y[8];
    ck_assert_int_eq(lq_matvec(ctx, t, x, y), LQ_ERR_CORRUPT);
    lq_qtensor_free(t);
    lq_ctx_destroy(ctx);
    free(W);
    free(H);
    free(Wh);
}
END_TEST

typedef struct q_arg {
    const float *W, *H;
    size_t rows, cols;
    int rtn;
} q_arg;

static lq_status quant_body(lq_ctx *ctx, void *arg)
{
    q_arg *a = arg;
    lq_method m = nq_method(14, 4, 8, 1, a->rtn);
    lq_qtensor *t = NULL;
    float Wh[8 * 20];
    lq_quant_report rep;
    lq_status st = lq_quantize_ex(ctx, a->W, a->rows, a->cols, a->H, &m, &t, Wh, &rep);
    lq_qtensor_free(t);
    return st;
}

START_TEST(alloc_failures)
{
    const size_t rows = 8, cols = 20;
    float *W = fa(rows * cols), *H = fa(cols * cols);
    lq_test_correlated_layer(rows, cols, 64, 6, W, H);
    q_arg a = {W, H, rows, cols, 0};
    lq_test_alloc_sweep(quant_body, &a, 1);
    lq_test_alloc_sweep(quant_body, &a, 2);
    a.rtn = 1;
    lq_test_alloc_sweep(quant_body, &a, 1);
    free(W);
    free(H);
}
END_TEST

START_TEST(select_rules_given_betas_preset)
{
    /* RTN (no H) with the same given betas: per 8-vector EXHAUSTIVE <= BEST
     * <= FIRST in the normalised rotated domain, so the same order for
     * ||W - W_hat|| up to the rotation's float rounding; bit-identical
     * across SIMD levels (no GEMM on the RTN path); the given betas are the
     * stored ones. Fitted betas under each rule run too. */
    const size_t rows = 64, cols = 96;
    float *W = fa(rows * cols), *H = fa(cols * cols), *A = fa(rows * cols), *B = fa(rows * cols);
    lq_test_correlated_layer(rows, cols, 128, 8, W, H);
    lq_ctx *c1 = lq_test_ctx(2, LQ_SIMD_AUTO), *cs = lq_test_ctx(1, LQ_SIMD_SCALAR);
    static const float betas[4] = {0.3125f, 0.4375f, 0.5625f, 0.875f}; /* 8-bit mantissas */
    double err[3];
    for (unsigned sel = 0; sel < 3; sel++) {
        lq_method m = nq_method(4, 4, 32, 1, 1);
        m.u.nestquant.select = sel;
        m.u.nestquant.betas = betas;
        lq_qtensor *t = NULL, *t2 = NULL;
        ck_assert_int_eq(lq_quantize(c1, W, rows, cols, NULL, &m, &t, A), LQ_OK);
        ck_assert_int_eq(lq_quantize(cs, W, rows, cols, NULL, &m, &t2, B), LQ_OK);
        ck_assert_int_eq(memcmp(A, B, rows * cols * sizeof(float)), 0);
        for (unsigned k = 0; k < 4; k++) ck_assert(t->fp[k] == betas[k]);
        err[sel] = frob(W, A, rows * cols);
        lq_qtensor_free(t);
        lq_qtensor_free(t2);
        /* fitted under the rule, with H through the engine */
        m.u.nestquant.betas = NULL;
        lq_quant_report rep;
        ck_assert_int_eq(lq_quantize_ex(c1, W, rows, cols, H, &m, &t, NULL, &rep), LQ_OK);
        ck_assert(rep.proxy_loss > 0 && isfinite(rep.proxy_loss));
        lq_qtensor_free(t);
    }
    ck_assert_msg(err[1] <= err[0] * (1 + 1e-5), "BEST %g FIRST %g", err[1], err[0]);
    ck_assert_msg(err[2] <= err[1] * (1 + 1e-5), "EXH %g BEST %g", err[2], err[1]);
    ck_assert_msg(err[2] < err[0], "EXH %g FIRST %g", err[2], err[0]);
    /* bad options */
    lq_method m = nq_method(4, 4, 32, 1, 1);
    lq_qtensor *t = NULL;
    m.u.nestquant.select = 3;
    ck_assert_int_eq(lq_quantize(c1, W, rows, cols, NULL, &m, &t, NULL), LQ_ERR_INVALID_ARG);
    m.u.nestquant.select = 1;
    static const float bad[4] = {0.3f, 0.3f, 0.5f, 0.9f};
    m.u.nestquant.betas = bad;
    ck_assert_int_eq(lq_quantize(c1, W, rows, cols, NULL, &m, &t, NULL), LQ_ERR_INVALID_ARG);
    ck_assert_ptr_null(t);
    /* defaults keep the paper's rule and fitted betas */
    ck_assert_int_eq(lq_method_init(&m, LQ_METHOD_NESTQUANT), LQ_OK);
    ck_assert_uint_eq(m.u.nestquant.select, LQ_NQ_SELECT_FIRST);
    ck_assert_ptr_null(m.u.nestquant.betas);
    /* presets: K = 4 and the smallest q with log2 q + 1/4 >= bits */
    static const unsigned qs[] = {0, 0, 4, 7, 14, 27, 54, 108, 216};
    for (unsigned b = 2; b <= 8; b++) {
        lq_nestquant_opts o;
        ck_assert_int_eq(lq_nestquant_preset(b, &o), LQ_OK);
        ck_assert_uint_eq(o.q, qs[b]);
        ck_assert_uint_eq(o.n_betas, 4);
        ck_assert_int_eq(o.hadamard, 1);
        ck_assert(log2((double)o.q) + 0.25 >= b && log2((double)o.q - 1) + 0.25 < b);
    }
    lq_nestquant_opts o = {.q = 99};
    ck_assert_int_eq(lq_nestquant_preset(1, &o), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_nestquant_preset(9, &o), LQ_ERR_INVALID_ARG);
    ck_assert_uint_eq(o.q, 99);
    ck_assert_int_eq(lq_nestquant_preset(4, NULL), LQ_ERR_INVALID_ARG);
    lq_ctx_destroy(c1);
    lq_ctx_destroy(cs);
    free(W);
    free(H);
    free(A);
    free(B);
}
END_TEST

START_TEST(e8p_codebook_method)
{
    /* NestQuant with the E8P codebook: LQ_FORMAT_E8P, about 2 bits per
     * weight, W_hat = the stored tensor, products on the codes, GPTQ below
     * RTN, Gaussian weights at the codebook's rate-distortion, file round
     * trip, validation of corrupted tensors. */
    const size_t rows = 48, cols = 250, n8 = 256;
    float *W = fa(rows * cols), *H = fa(cols * cols), *Wh = fa(rows * cols), *Wd = fa(rows * cols);
    lq_test_correlated_layer(rows, cols, 512, 21, W, H);
    lq_ctx *ctx = lq_test_ctx(2, LQ_SIMD_AUTO);
    double loss[2];
    lq_qtensor *t = NULL;
    for (int rtn = 0; rtn <= 1; rtn++) {
        lq_method m = nq_method(16, 4, 64, 1, rtn);
        m.u.nestquant.codebook = LQ_NQ_CODEBOOK_E8P;
        lq_quant_report rep;
        lq_qtensor_free(t);
        t = NULL;
        ck_assert_int_eq(lq_quantize_ex(ctx, W, rows, cols, H, &m, &t, Wh, &rep), LQ_OK);
        loss[rtn] = rep.proxy_loss;
        ck_assert_uint_eq(rep.overloads, 0);
        ck_assert_int_eq(lq_qtensor_validate(t), LQ_OK);
        lq_format f;
        ck_assert_int_eq(lq_qtensor_format(t, &f), LQ_OK);
        ck_assert_int_eq(f, LQ_FORMAT_E8P);
        ck_assert_str_eq(lq_format_name(f), "e8p");
        ck_assert_int_eq(lq_dequantize(ctx, t, Wd), LQ_OK);
        ck_assert_int_eq(memcmp(Wh, Wd, rows * cols * sizeof(float)), 0);
        /* bits: 16 per 8-vector + fp32 scale per (row, group) + seed */
        double bits = 16.0 * rows * (n8 / 8) + 32.0 * rows * (n8 / 64) + 64.0, bpw;
        ck_assert_int_eq(lq_qtensor_bits_per_weight(t, &bpw), LQ_OK);
        ck_assert(fabs(bpw - bits / (rows * cols)) < 1e-12);
        float x[2 * 250], y[2 * 48];
        lq_test_fill_gaussian(x, 2 * cols, 1.0f, 5);
        ck_assert_int_eq(lq_matmul(ctx, t, x, 2, y), LQ_OK);
        for (size_t b = 0; b < 2; b++)
            for (size_t r = 0; r < rows; r++) {
                double ref = 0, mag = 0;
                for (size_t j = 0; j < cols; j++) {
                    ref += (double)Wh[r * cols + j] * x[b * cols + j];
                    mag += fabs((double)Wh[r * cols + j] * x[b * cols + j]);
                }
                ck_assert_msg(fabs(y[b * rows + r] - ref) <= 1e-5 * mag + 1e-30, "%g vs %g",
                              y[b * rows + r], ref);
            }
    }
    ck_assert_msg(loss[0] < loss[1], "GPTQ %g RTN %g", loss[0], loss[1]);
    /* file round trip */
    char path[64];
    snprintf(path, sizeof path, "/tmp/lq_e8p_%d.lqt", (int)getpid());
    ck_assert_int_eq(lq_qtensor_save(ctx, t, "w", path), LQ_OK);
    lq_qtensor *t2 = NULL;
    ck_assert_int_eq(lq_qtensor_load(ctx, path, "w", 0, &t2), LQ_OK);
    unlink(path);
    ck_assert_int_eq(t2->format, LQ_FORMAT_E8P);
    ck_assert_int_eq(memcmp(t->ip, t2->ip, sizeof t->ip), 0);
    for (size_t i = 0; i < t->nsec; i++)
        ck_assert_int_eq(memcmp(t->sec[i].data, t2->sec[i].data, t->sec[i].nbytes), 0);
    lq_qtensor_free(t2);
    /* corrupted parameters are refused */
    uint32_t save = t->ip[LQ_E8_IP_Q];
    t->ip[LQ_E8_IP_Q] = 12;
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_ERR_CORRUPT);
    t->ip[LQ_E8_IP_Q] = save;
    t->ip[LQ_E8_NIP] = 1;
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_ERR_CORRUPT);
    t->ip[LQ_E8_NIP] = 0;
    t->fp[0] = 1.0f;
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_ERR_CORRUPT);
    t->fp[0] = 0.0f;
    ((float *)lq_qtensor_section(t, LQ_SEC_SCALES)->data)[3] = NAN;
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_ERR_CORRUPT);
    lq_qtensor_free(t);
    /* iid Gaussian weights, RTN, no rotation: the codebook's 0.091 */
    const size_t gr = 64, gc = 512;
    float *G = fa(gr * gc), *Gh = fa(gr * gc);
    lq_test_fill_gaussian(G, gr * gc, 0.02f, 6);
    lq_method m = nq_method(16, 4, 0, 0, 1);
    m.u.nestquant.codebook = LQ_NQ_CODEBOOK_E8P;
    t = NULL;
    ck_assert_int_eq(lq_quantize(ctx, G, gr, gc, NULL, &m, &t, Gh), LQ_OK);
    double rel = frob(G, Gh, gr * gc) / frob(G, NULL, gr * gc);
    ck_assert_msg(rel < 0.094 && rel > 0.085, "E8P relative MSE %g", rel);
    lq_qtensor_free(t);
    m.u.nestquant.codebook = 2;
    ck_assert_int_eq(lq_quantize(ctx, G, gr, gc, NULL, &m, &t, NULL), LQ_ERR_INVALID_ARG);
    lq_ctx_destroy(ctx);
    free(W);
    free(H);
    free(Wh);
    free(Wd);
    free(G);
    free(Gh);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nestquant");
    TCase *tc = tcase_create("method");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, quantize_properties);
    tcase_add_test(tc, overload_count_extremes);
    tcase_add_test(tc, threads_and_simd_identical);
    tcase_add_test(tc, bad_options_and_corrupt);
    tcase_add_test(tc, alloc_failures);
    tcase_add_test(tc, select_rules_given_betas_preset);
    tcase_add_test(tc, e8p_codebook_method);
    suite_add_tcase(s, tc);
    return lq_test_run(s);
}
