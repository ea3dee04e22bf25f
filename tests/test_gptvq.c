/* GPTVQ (LQ_METHOD_GPTVQ) and the VQ packed format (LQ_FORMAT_VQ). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtensor/qtensor_internal.h"
#include "test_common.h"
#include "vq/vq_internal.h"

#define ROWS 128
#define COLS 256

static float *g_W, *g_H;

static void layer_setup(void)
{
    g_W = malloc(ROWS * COLS * sizeof *g_W);
    g_H = malloc(COLS * COLS * sizeof *g_H);
}

static void layer_teardown(void)
{
    free(g_W);
    free(g_H);
}

static void make_layer(void) { lq_test_correlated_layer(ROWS, COLS, 512, 1, g_W, g_H); }

static void vq_method(lq_method *m, unsigned index_bits, size_t group_rows)
{
    ck_assert_int_eq(lq_method_init(m, LQ_METHOD_GPTVQ), LQ_OK);
    m->u.gptvq.index_bits = index_bits;
    m->u.gptvq.group_rows = group_rows;
    m->u.gptvq.codebook_bits = 0; /* fp16 codebooks unless a test says otherwise */
}

static double run(lq_ctx *ctx, const lq_method *m, float *Wh, double *bpw)
{
    lq_qtensor *t = NULL;
    lq_quant_report rep;
    ck_assert_int_eq(lq_quantize_ex(ctx, g_W, ROWS, COLS, g_H, m, &t, Wh, &rep), LQ_OK);
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_OK);
    if (bpw) ck_assert_int_eq(lq_qtensor_bits_per_weight(t, bpw), LQ_OK);
    /* the packed tensor decodes to exactly the returned W_hat */
    if (Wh) {
        float *D = malloc(ROWS * COLS * sizeof *D);
        ck_assert_int_eq(lq_dequantize(ctx, t, D), LQ_OK);
        ck_assert(!memcmp(D, Wh, ROWS * COLS * sizeof *D));
        free(D);
    }
    lq_qtensor_free(t);
    return rep.proxy_loss;
}

/* GPTVQ at the paper's 2.125 and 3.125 bpw against INT-GPTQ at the same or
 * more bits (2-/3-bit, groups of 128: 2.156 / 3.156 bpw). Measured on this
 * layer (seed 1): 2.125: 8.36 vs 26.4 (ratio 0.32); 3.125: 1.86 vs 4.91
 * (0.38). Asserted with margin: ratio < 0.6. */
START_TEST(gptvq_beats_int_gptq)
{
    make_layer();
    static const unsigned ib[2] = {4, 6}, ibits[2] = {2, 3};
    static const size_t gr[2] = {16, 64};
    static const double bpw_want[2] = {2.125, 3.125};
    float *Wh = malloc(ROWS * COLS * sizeof *Wh);
    for (int s = 0; s < 2; s++) {
        lq_method m;
        vq_method(&m, ib[s], gr[s]);
        double bv, bi;
        double lv = run(NULL, &m, Wh, &bv);
        ck_assert_msg(fabs(bv - bpw_want[s]) < 1e-12, "bpw %.6f", bv);
        lq_method mi;
        ck_assert_int_eq(lq_method_init(&mi, LQ_METHOD_INT), LQ_OK);
        mi.u.int_.bits = ibits[s];
        mi.u.int_.group = 128;
        lq_qtensor *t;
        lq_quant_report rep;
        ck_assert_int_eq(lq_quantize_ex(NULL, g_W, ROWS, COLS, g_H, &mi, &t, NULL, &rep), LQ_OK);
        ck_assert_int_eq(lq_qtensor_bits_per_weight(t, &bi), LQ_OK);
        lq_qtensor_free(t);
        ck_assert(bi >= bv);
        ck_assert_msg(lv < 0.6 * rep.proxy_loss, "bpw %.3f: gptvq %.4g vs int %.4g", bv, lv,
                      rep.proxy_loss);
    }
    free(Wh);
}
END_TEST

/* Bits accounting: indices, codebooks and scales, exactly. */
START_TEST(gptvq_bits_accounting)
{
    make_layer();
    lq_method m;
    vq_method(&m, 4, 16);
    m.u.gptvq.codebook_bits = 8; /* int8 entries + one float scale per codebook */
    double bpw;
    run(NULL, &m, NULL, &bpw);
    double ncb = (double)(ROWS / 16) * (COLS / 256);
    double want = (ROWS * (COLS / 2) * 4.0 + ncb * (16 * 2 * 8 + 32)) / (ROWS * COLS);
    ck_assert_msg(fabs(bpw - want) < 1e-12, "%.6f vs %.6f", bpw, want);
    vq_method(&m, 4, 16);
    m.u.gptvq.svd_rank = 3; /* half factors: ncb x 3 and 3 x (16 * 2) */
    run(NULL, &m, NULL, &bpw);
    want = (ROWS * (COLS / 2) * 4.0 + 16.0 * (ncb * 3 + 3 * 32)) / (ROWS * COLS);
    ck_assert_msg(fabs(bpw - want) < 1e-12, "%.6f vs %.6f", bpw, want);
    /* d = 4, 8-bit indices (2 bits per weight), groups that do not divide */
    ck_assert_int_eq(lq_method_init(&m, LQ_METHOD_GPTVQ), LQ_OK);
    m.u.gptvq.dim = 4;
    m.u.gptvq.index_bits = 8;
    m.u.gptvq.group_cols = 96;
    m.u.gptvq.group_rows = 48;
    m.u.gptvq.codebook_bits = 0;
    run(NULL, &m, NULL, &bpw);
    ncb = 3.0 * 3.0;
    want = (ROWS * (COLS / 4) * 8.0 + ncb * 256 * 4 * 16) / (ROWS * COLS);
    ck_assert_msg(fabs(bpw - want) < 1e-12, "%.6f vs %.6f", bpw, want);
}
END_TEST

/* lq_gptvq_preset: the reference scripts' codebook blocks (256 columns x
 * 2^(d b) d / 4 rows, int8), the default is the 2-D 2-bit one, its stored
 * size is 2 + (16 x 2 x 8 + 32) / (256 x 8) bits per weight, and on this
 * layer it beats the former default (fp16 codebooks per 256 x 16 rows, the
 * same 0.125 bpw of entries) on the proxy loss (measured 0.943x). */
START_TEST(gptvq_preset_and_default)
{
    lq_gptvq_opts o, keep;
    memset(&keep, 0x5a, sizeof keep);
    o = keep;
    ck_assert_int_eq(lq_gptvq_preset(3, 2, &o), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_gptvq_preset(2, 1, &o), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_gptvq_preset(2, 5, &o), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_gptvq_preset(4, 5, &o), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_gptvq_preset(2, 2, NULL), LQ_ERR_INVALID_ARG);
    ck_assert(!memcmp(&o, &keep, sizeof o));
    static const struct {
        unsigned d, b;
        size_t rows;
    } want[] = {{1, 2, 1},   {1, 3, 2},   {1, 4, 4},    {2, 2, 8},    {2, 3, 32},
                {2, 4, 128}, {4, 2, 256}, {4, 3, 4096}, {4, 4, 65536}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ck_assert_int_eq(lq_gptvq_preset(want[i].d, want[i].b, &o), LQ_OK);
        ck_assert_uint_eq(o.dim, want[i].d);
        ck_assert_uint_eq(o.index_bits, want[i].d * want[i].b);
        ck_assert_uint_eq(o.group_cols, 256);
        ck_assert_uint_eq(o.group_rows, want[i].rows);
        ck_assert_uint_eq(o.codebook_bits, 8);
        ck_assert_int_eq(o.codebook_update, 1);
        ck_assert_uint_eq(o.svd_rank, 0);
        /* entries cost 0.125 bits per weight when d >= 2 */
        if (want[i].d >= 2)
            ck_assert_double_eq_tol((double)((size_t)1 << (want[i].d * want[i].b)) * want[i].d * 8 /
                                        (256.0 * o.group_rows),
                                    0.125, 1e-12);
    }
    lq_method m;
    ck_assert_int_eq(lq_method_init(&m, LQ_METHOD_GPTVQ), LQ_OK);
    ck_assert_int_eq(lq_gptvq_preset(2, 2, &o), LQ_OK);
    ck_assert(m.u.gptvq.dim == o.dim && m.u.gptvq.index_bits == o.index_bits &&
              m.u.gptvq.group_cols == o.group_cols && m.u.gptvq.group_rows == o.group_rows &&
              m.u.gptvq.em_iters == o.em_iters && m.u.gptvq.codebook_update == o.codebook_update &&
              m.u.gptvq.codebook_bits == o.codebook_bits && m.u.gptvq.svd_rank == o.svd_rank);
    make_layer();
    double bpw;
    double lnew = run(NULL, &m, NULL, &bpw);
    double ncb = (double)(ROWS / 8) * (COLS / 256);
    ck_assert_double_eq_tol(
        bpw, (ROWS * (COLS / 2) * 4.0 + ncb * (16 * 2 * 8 + 32)) / (ROWS * COLS), 1e-12);
    m.u.gptvq.group_rows = 16;
    m.u.gptvq.codebook_bits = 0;
    double lold = run(NULL, &m, NULL, NULL);
    fprintf(stderr, "gptvq default %.5g vs former default %.5g (%.3f)\n", lnew, lold, lnew / lold);
    ck_assert_double_lt(lnew, lold);
}
END_TEST

/* The codebook update is block-coordinate descent on the exact proxy loss:
 * it never increases it. Compression (int8, SVD) costs accuracy but stays
 * bounded. */
START_TEST(gptvq_update_and_compression)
{
    make_layer();
    lq_method m;
    vq_method(&m, 4, 16);
    m.u.gptvq.codebook_update = 0;
    double l0 = run(NULL, &m, NULL, NULL);
    m.u.gptvq.codebook_update = 1;
    double l1 = run(NULL, &m, NULL, NULL);
    ck_assert_msg(l1 <= l0, "update %.6g > %.6g", l1, l0);
    m.u.gptvq.codebook_bits = 8;
    double l8 = run(NULL, &m, NULL, NULL);
    ck_assert(l8 < 1.5 * l1);
    m.u.gptvq.codebook_bits = 0;
    m.u.gptvq.svd_rank = 8;
    double ls = run(NULL, &m, NULL, NULL);
    ck_assert(isfinite(ls) && ls < 10 * l1);
}
END_TEST

/* Codebooks larger than the dense solve (k d > 512: the paper's 4-D 2.125
 * bits/weight setting, d = 4 with 256 entries, and d = 8 with 128) go
 * through the matrix-free conjugate-gradient update: with the codes fixed
 * the proxy loss is a convex quadratic in the codebook, the update starts
 * at the EM codebook and is kept only when the exact loss decreases, so the
 * loss is never higher; on this layer it is strictly lower (measured: 4-D,
 * one codebook for all rows, 0.93x; 8-D 0.95x). */
START_TEST(gptvq_update_large_codebooks)
{
    make_layer();
    static const unsigned dims[2] = {4, 8}, bits[2] = {8, 7};
    for (int c = 0; c < 2; c++) {
        lq_method m;
        vq_method(&m, bits[c], _i == 0 ? 0 : 64);
        m.u.gptvq.dim = dims[c];
        m.u.gptvq.codebook_update = 0;
        double l0 = run(NULL, &m, NULL, NULL);
        m.u.gptvq.codebook_update = 1;
        float *Wh = malloc(ROWS * COLS * sizeof *Wh);
        double l1 = run(NULL, &m, Wh, NULL);
        free(Wh);
        ck_assert_msg(l1 < 0.995 * l0, "d=%u: update %.6g vs %.6g", dims[c], l1, l0);
    }
}
END_TEST

/* Same packed result and W_hat for 1 and 2 threads and every SIMD level
 * (_i = 0, 1: small codebooks; the 4-D 256-entry codebooks of _i = 2 and 3
 * go through the conjugate-gradient update, whose gradient (W - W^) H comes
 * from lq_sgemm: bit-identical for 1 and 2 threads at each SIMD level, and
 * across levels the same loss to 1e-4, as the sgemm rounding differs). */
START_TEST(gptvq_threads_and_simd_identical)
{
    make_layer();
    lq_method m;
    vq_method(&m, 4, _i == 3 ? 0 : 16);
    m.u.gptvq.dim = (unsigned)(_i == 0 ? 2 : (_i == 1 ? 1 : 4));
    m.u.gptvq.index_bits = (unsigned)(_i >= 2 ? 8 : 4);
    float *ref = malloc(ROWS * COLS * 4), *Wh = malloc(ROWS * COLS * 4);
    float *lref_w = malloc(ROWS * COLS * 4);
    lq_simd_level lv[3] = {LQ_SIMD_SCALAR, LQ_SIMD_AVX2, LQ_SIMD_AVX512};
    double lref = 0, llev = 0;
    for (int l = 0; l < 3; l++)
        for (int t = 0; t < 2; t++) {
            lq_ctx *ctx = lq_test_ctx((size_t)t + 1, lv[l]);
            double loss = run(ctx, &m, Wh, NULL);
            lq_ctx_destroy(ctx);
            if (t == 0 && l == 0) {
                memcpy(ref, Wh, ROWS * COLS * 4);
                lref = loss;
            }
            if (t == 0) {
                memcpy(lref_w, Wh, ROWS * COLS * 4);
                llev = loss;
                if (l == 0) continue;
            } else {
                ck_assert_msg(!memcmp(lref_w, Wh, ROWS * COLS * 4), "threads: t=%d l=%d", t, l);
                ck_assert(loss == llev);
            }
            if (_i < 2) {
                ck_assert_msg(!memcmp(ref, Wh, ROWS * COLS * 4), "t=%d l=%d", t, l);
                /* W_hat is bit-identical; the loss goes through the linalg
                 * dgemm, whose rounding may differ between SIMD levels */
                ck_assert(fabs(loss - lref) <= 1e-9 * lref);
            } else {
                ck_assert_msg(fabs(loss - lref) <= 1e-4 * lref, "l=%d %.9g vs %.9g", l, loss, lref);
            }
        }
    free(ref);
    free(Wh);
    free(lref_w);
}
END_TEST

/* Products on the codes agree with the dequantized weight. */
START_TEST(vq_format_matmul)
{
    make_layer();
    lq_method m;
    vq_method(&m, 4, 16);
    m.u.gptvq.codebook_bits = (unsigned)(_i == 1 ? 8 : 0);
    m.u.gptvq.svd_rank = _i == 2 ? 4 : 0;
    lq_qtensor *t;
    float *Wh = malloc(ROWS * COLS * 4), *X = malloc(3 * COLS * 4), *Y = malloc(3 * ROWS * 4);
    ck_assert_int_eq(lq_quantize(NULL, g_W, ROWS, COLS, g_H, &m, &t, Wh), LQ_OK);
    lq_test_fill_gaussian(X, 3 * COLS, 1, 5);
    ck_assert_int_eq(lq_matmul(NULL, t, X, 3, Y), LQ_OK);
    for (size_t b = 0; b < 3; b++)
        for (size_t r = 0; r < ROWS; r++) {
            double s = 0, a = 0;
            for (size_t c = 0; c < COLS; c++) {
                s += (double)Wh[r * COLS + c] * X[b * COLS + c];
                a += fabs((double)Wh[r * COLS + c] * X[b * COLS + c]);
            }
            ck_assert(fabs(s - Y[b * ROWS + r]) <= 1e-5 * a + 1e-7);
        }
    lq_format f;
    ck_assert_int_eq(lq_qtensor_format(t, &f), LQ_OK);
    ck_assert_int_eq(f, LQ_FORMAT_VQ);
    ck_assert_str_eq(lq_format_name(LQ_FORMAT_VQ), "vq");
    lq_qtensor_free(t);
    free(Wh);
    free(X);
    free(Y);
}
END_TEST

/* Validation rejects every inconsistent parameter or section. */
START_TEST(vq_format_validate)
{
    make_layer();
    lq_method m;
    vq_method(&m, 4, 16);
    m.u.gptvq.codebook_bits = 8;
    lq_qtensor *t;
    ck_assert_int_eq(lq_quantize(NULL, g_W, 32, COLS, NULL, &m, &t, NULL), LQ_OK);
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_OK);
    static const uint32_t bad[][2] = {{LQ_VQ_IP_D, 3},     {LQ_VQ_IP_D, 0},    {LQ_VQ_IP_BITS, 0},
                                      {LQ_VQ_IP_BITS, 17}, {LQ_VQ_IP_GC, 0},   {LQ_VQ_IP_GC, 3},
                                      {LQ_VQ_IP_GC, 512},  {LQ_VQ_IP_GR, 0},   {LQ_VQ_IP_GR, 33},
                                      {LQ_VQ_IP_CB, 4},    {LQ_VQ_IP_RANK, 2}, {LQ_VQ_IP_GR, 8},
                                      {LQ_VQ_IP_BITS, 5},  {LQ_VQ_IP_CB, 16}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint32_t keep = t->ip[bad[i][0]];
        t->ip[bad[i][0]] = bad[i][1];
        ck_assert_msg(lq_qtensor_validate(t) == LQ_ERR_CORRUPT, "case %zu", i);
        t->ip[bad[i][0]] = keep;
    }
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_OK);
    /* a bad scale, then a truncated section, then a missing one */
    lq_qsection *sc = NULL, *cbs = NULL;
    for (size_t i = 0; i < t->nsec; i++) {
        if (t->sec[i].tag == LQ_SEC_SCALES) sc = &t->sec[i];
        if (t->sec[i].tag == LQ_SEC_CODEBOOKS) cbs = &t->sec[i];
    }
    ck_assert(sc && cbs);
    float keep, nanv = NAN, neg = -1;
    memcpy(&keep, sc->data, 4);
    memcpy(sc->data, &nanv, 4);
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_ERR_CORRUPT);
    memcpy(sc->data, &neg, 4);
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_ERR_CORRUPT);
    memcpy(sc->data, &keep, 4);
    cbs->nbytes--;
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_ERR_CORRUPT);
    cbs->nbytes++;
    cbs->tag = LQ_SEC_AUX;
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_ERR_CORRUPT);
    cbs->tag = LQ_SEC_CODEBOOKS;
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_OK);
    lq_qtensor_free(t);
    /* half codebooks: an Inf entry is corrupt */
    vq_method(&m, 4, 16);
    ck_assert_int_eq(lq_quantize(NULL, g_W, 32, COLS, NULL, &m, &t, NULL), LQ_OK);
    for (size_t i = 0; i < t->nsec; i++)
        if (t->sec[i].tag == LQ_SEC_CODEBOOKS) ((uint16_t *)t->sec[i].data)[5] = 0x7c00;
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_ERR_CORRUPT);
    lq_qtensor_free(t);
}
END_TEST

/* d = 1 with a uniform codebook reproduces the INT quantizer: encode each
 * row against the row's INT grid (round to nearest, whole-row group) and
 * decode: the values equal INT's, except at exact midpoints (none here). */
START_TEST(vq_d1_uniform_matches_int_method)
{
    make_layer();
    lq_method mi;
    ck_assert_int_eq(lq_method_init(&mi, LQ_METHOD_INT), LQ_OK);
    mi.u.int_.bits = 3;
    mi.u.int_.group = 0;
    mi.engine.rtn = 1;
    float *Wi = malloc(ROWS * COLS * 4), *y = malloc(COLS * 4);
    lq_qtensor *t;
    ck_assert_int_eq(lq_quantize(NULL, g_W, ROWS, COLS, NULL, &mi, &t, Wi), LQ_OK);
    lq_qtensor_free(t);
    uint16_t codes[COLS];
    size_t mism = 0;
    for (size_t r = 0; r < ROWS; r++) {
        /* the row's grid: the distinct INT values plus the empty levels
         * between them, from the smallest level and the step */
        float lo = INFINITY, hi = -INFINITY;
        for (size_t c = 0; c < COLS; c++) {
            lo = fminf(lo, Wi[r * COLS + c]);
            hi = fmaxf(hi, Wi[r * COLS + c]);
        }
        float step = INFINITY; /* the smallest gap between used levels */
        for (size_t c = 0; c < COLS; c++)
            for (size_t c2 = 0; c2 < COLS; c2++) {
                float dlt = Wi[r * COLS + c2] - Wi[r * COLS + c];
                if (dlt > 0 && dlt < step) step = dlt;
            }
        ck_assert(isfinite(step));
        /* levels are (code - zero) * scale: rebuild all 8 around lo */
        float cb[8];
        int j0 = (int)lrintf(lo / step);
        for (int q = 0; q < 8; q++) cb[q] = (float)(j0 + q) * step;
        (void)hi;
        ck_assert_int_eq(lq_vq_encode(NULL, g_W + r * COLS, NULL, COLS, 1, cb, 3, codes, NULL),
                         LQ_OK);
        ck_assert_int_eq(lq_vq_decode(codes, COLS, 1, cb, 3, y), LQ_OK);
        for (size_t c = 0; c < COLS; c++)
            if (fabsf(y[c] - Wi[r * COLS + c]) > 1e-6f * step) mism++;
    }
    ck_assert_uint_eq(mism, 0);
    free(Wi);
    free(y);
}
END_TEST

START_TEST(gptvq_bad_args)
{
    make_layer();
    lq_method m;
    lq_qtensor *t = (lq_qtensor *)0x1;
    vq_method(&m, 4, 16);
    m.u.gptvq.dim = 3;
    ck_assert_int_eq(lq_quantize(NULL, g_W, ROWS, COLS, g_H, &m, &t, NULL), LQ_ERR_INVALID_ARG);
    vq_method(&m, 0, 16);
    ck_assert_int_eq(lq_quantize(NULL, g_W, ROWS, COLS, g_H, &m, &t, NULL), LQ_ERR_INVALID_ARG);
    vq_method(&m, 17, 16);
    ck_assert_int_eq(lq_quantize(NULL, g_W, ROWS, COLS, g_H, &m, &t, NULL), LQ_ERR_INVALID_ARG);
    vq_method(&m, 4, 16);
    ck_assert_int_eq(lq_quantize(NULL, g_W, ROWS, 255, NULL, &m, &t, NULL), LQ_ERR_INVALID_ARG);
    m.u.gptvq.group_cols = 33;
    ck_assert_int_eq(lq_quantize(NULL, g_W, ROWS, COLS, g_H, &m, &t, NULL), LQ_ERR_INVALID_ARG);
    vq_method(&m, 4, 16);
    m.u.gptvq.codebook_bits = 7;
    ck_assert_int_eq(lq_quantize(NULL, g_W, ROWS, COLS, g_H, &m, &t, NULL), LQ_ERR_INVALID_ARG);
    vq_method(&m, 4, 16);
    m.u.gptvq.em_iters = 0;
    ck_assert_int_eq(lq_quantize(NULL, g_W, ROWS, COLS, g_H, &m, &t, NULL), LQ_ERR_INVALID_ARG);
    vq_method(&m, 4, 16);
    m.engine.act_order = 1;
    ck_assert_int_eq(lq_quantize(NULL, g_W, ROWS, COLS, g_H, &m, &t, NULL), LQ_ERR_UNSUPPORTED);
    vq_method(&m, 4, 16);
    float keep = g_W[77];
    g_W[77] = NAN;
    ck_assert_int_eq(lq_quantize(NULL, g_W, ROWS, COLS, g_H, &m, &t, NULL), LQ_ERR_NOT_FINITE);
    g_W[77] = keep;
    ck_assert_ptr_eq(t, (lq_qtensor *)0x1);
    /* fewer points than codebook entries (16 rows x 4 vectors < 256): works */
    m.u.gptvq.index_bits = 8;
    m.u.gptvq.group_cols = 8;
    ck_assert_int_eq(lq_quantize(NULL, g_W, 16, COLS, NULL, &m, &t, NULL), LQ_OK);
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_OK);
    lq_qtensor_free(t);
}
END_TEST

typedef struct q_arg {
    const float *W, *H;
    size_t rows, cols;
    const lq_method *m;
} q_arg;

static lq_status q_body(lq_ctx *ctx, void *p)
{
    q_arg *a = p;
    lq_qtensor *t = NULL;
    float Wh[16 * 64];
    lq_quant_report rep;
    lq_status st = lq_quantize_ex(ctx, a->W, a->rows, a->cols, a->H, a->m, &t, Wh, &rep);
    if (st == LQ_OK)
        lq_qtensor_free(t);
    else
        ck_assert_ptr_null(t);
    return st;
}

START_TEST(gptvq_alloc_failures)
{
    float *W = malloc(16 * 64 * 4), *H = malloc(64 * 64 * 4);
    lq_test_correlated_layer(16, 64, 200, 3, W, H);
    lq_method m;
    vq_method(&m, 4, 8);
    m.u.gptvq.group_cols = 32;
    q_arg a = {W, H, 16, 64, &m};
    for (size_t t = 1; t <= 2; t++) {
        ck_assert_uint_ge(lq_test_alloc_sweep(q_body, &a, t), 10);
        m.u.gptvq.codebook_bits = 8;
        ck_assert_uint_ge(lq_test_alloc_sweep(q_body, &a, t), 10);
        m.u.gptvq.codebook_bits = 0;
        m.u.gptvq.svd_rank = 2;
        ck_assert_uint_ge(lq_test_alloc_sweep(q_body, &a, t), 10);
        m.u.gptvq.svd_rank = 0;
    }
    free(W);
    free(H);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gptvq");
    TCase *tc = tcase_create("gptvq");
    tcase_set_timeout(tc, 900);
    tcase_add_unchecked_fixture(tc, layer_setup, layer_teardown);
    tcase_add_test(tc, gptvq_beats_int_gptq);
    tcase_add_test(tc, gptvq_bits_accounting);
    tcase_add_test(tc, gptvq_update_and_compression);
    tcase_add_test(tc, gptvq_preset_and_default);
    tcase_add_loop_test(tc, gptvq_update_large_codebooks, 0, 2);
    tcase_add_loop_test(tc, gptvq_threads_and_simd_identical, 0, 4);
    tcase_add_loop_test(tc, vq_format_matmul, 0, 3);
    tcase_add_test(tc, vq_format_validate);
    tcase_add_test(tc, vq_d1_uniform_matches_int_method);
    tcase_add_test(tc, gptvq_bad_args);
    tcase_add_test(tc, gptvq_alloc_failures);
    suite_add_tcase(s, tc);
    return lq_test_run(s);
}
