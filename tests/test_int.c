/* LQ_METHOD_INT / LQ_FORMAT_INT: the integer grid, round to nearest and
 * GPTQ through lq_quantize, packing, bits per weight, dequantization and
 * the reference products on the codes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hessian/int_quant.h"
#include "qtensor/format_int.h"
#include "qtensor/qtensor_internal.h"
#include "test_common.h"

static lq_method int_method(unsigned bits, size_t group, int sym, int rtn)
{
    lq_method m;
    ck_assert_int_eq(lq_method_init(&m, LQ_METHOD_INT), LQ_OK);
    m.u.int_.bits = bits;
    m.u.int_.group = group;
    m.u.int_.symmetric = sym;
    m.engine.rtn = rtn;
    return m;
}

static float *fmalloc(size_t n)
{
    float *p = malloc(n * sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* scale and zero of (row, group) read back from the packed tensor */
static void group_params(const lq_qtensor *t, size_t r, size_t gi, float *s, int *z)
{
    size_t ng = (t->cols + t->ip[LQ_INT_IP_GROUP] - 1) / t->ip[LQ_INT_IP_GROUP];
    const lq_qsection *sc = lq_qtensor_section(t, LQ_SEC_SCALES);
    if (t->ip[LQ_INT_IP_SCALE_BYTES] == 4) {
        memcpy(s, (const char *)sc->data + 4 * (r * ng + gi), 4);
    } else {
        const uint8_t *p = (const uint8_t *)sc->data + 2 * (r * ng + gi);
        *s = lq_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
    }
    if (t->ip[LQ_INT_IP_SYMMETRIC]) {
        *z = 1 << (t->ip[LQ_INT_IP_BITS] - 1);
    } else {
        size_t zb = lq_int_stream_bytes(ng, t->ip[LQ_INT_IP_BITS]);
        const uint8_t *zp = (const uint8_t *)lq_qtensor_section(t, LQ_SEC_ZEROS)->data + r * zb;
        *z = (int)lq_int_get_bits(zp, zb, gi, t->ip[LQ_INT_IP_BITS]);
    }
}

/* RTN: every weight lands on its (row, group) grid within half a step
 * (the min-max range holds every weight; the half rounding of the scale
 * may clip the extreme one by a hair), values are exactly (c - z) s. */
START_TEST(rtn_grid_property)
{
    static const size_t shapes[][3] = {{7, 200, 64}, {5, 64, 0}, {3, 33, 32}, {4, 1, 0}};
    for (unsigned bits = 2; bits <= 8; bits++)
        for (int sym = 0; sym < 2; sym++)
            for (size_t si = 0; si < 4; si++) {
                size_t rows = shapes[si][0], cols = shapes[si][1], g = shapes[si][2];
                float *W = fmalloc(rows * cols), *Q = fmalloc(rows * cols);
                lq_test_fill_gaussian(W, rows * cols, 0.05f, bits * 10 + si);
                lq_method m = int_method(bits, g, sym, 1);
                lq_qtensor *t = NULL;
                ck_assert_int_eq(lq_quantize(NULL, W, rows, cols, NULL, &m, &t, Q), LQ_OK);
                ck_assert_int_eq(lq_qtensor_validate(t), LQ_OK);
                size_t gg = g ? g : cols;
                for (size_t r = 0; r < rows; r++)
                    for (size_t j = 0; j < cols; j++) {
                        float s;
                        int z;
                        group_params(t, r, j / gg, &s, &z);
                        double k = Q[r * cols + j] / s + z;
                        ck_assert(fabs(k - nearbyint(k)) < 1e-3);
                        ck_assert(k > -0.5 && k < (1 << bits) - 0.5);
                        double err = fabs((double)W[r * cols + j] - Q[r * cols + j]);
                        /* half a step, plus what the half rounding of the
                         * scale moves the far end of the grid: maxq s 2^-11 */
                        double tol = s * (0.5 + ((1 << bits) - 1) / 2048.0) * 1.001 + 1e-7;
                        ck_assert_msg(err <= tol, "bits %u sym %d err %g s %g", bits, sym, err, s);
                    }
                lq_qtensor_free(t);
                free(W);
                free(Q);
            }
}
END_TEST

/* Dequantization reproduces the W_hat the quantizer returned, bit for bit
 * (RTN and GPTQ, with and without act-order / static groups). */
START_TEST(dequant_equals_what)
{
    size_t rows = 40, cols = 150;
    float *W = fmalloc(rows * cols), *H = fmalloc(cols * cols);
    float *Q = fmalloc(rows * cols), *D = fmalloc(rows * cols);
    lq_test_correlated_layer(rows, cols, 2 * cols, 3, W, H);
    for (int v = 0; v < 6; v++) {
        lq_method m = int_method(3 + (unsigned)v % 3, v == 5 ? 0 : 32, v == 2, v == 0);
        m.engine.act_order = v >= 3;
        m.engine.static_groups = v == 4;
        m.u.int_.mse_clip = v == 1;
        lq_qtensor *t = NULL;
        ck_assert_int_eq(lq_quantize(NULL, W, rows, cols, H, &m, &t, Q), LQ_OK);
        ck_assert_int_eq(lq_qtensor_validate(t), LQ_OK);
        ck_assert_int_eq(lq_qtensor_section(t, LQ_SEC_PERM) != NULL, v == 3);
        ck_assert_int_eq(lq_dequantize(NULL, t, D), LQ_OK);
        ck_assert_msg(memcmp(Q, D, rows * cols * sizeof *Q) == 0, "variant %d", v);
        lq_qtensor_free(t);
    }
    free(W);
    free(H);
    free(Q);
    free(D);
}
END_TEST

/* lq_matvec / lq_matmul on the codes agree with the dequantized weight. */
START_TEST(matvec_matches_dequant)
{
    size_t rows = 70, cols = 300, batch = 3;
    float *W = fmalloc(rows * cols), *H = fmalloc(cols * cols), *D = fmalloc(rows * cols);
    float *X = fmalloc(batch * cols), *Y = fmalloc(batch * rows), *y = fmalloc(rows);
    lq_test_correlated_layer(rows, cols, cols, 8, W, H);
    lq_test_fill_gaussian(X, batch * cols, 1.0f, 9);
    for (int act = 0; act < 2; act++) {
        lq_method m = int_method(4, 64, 0, 0);
        m.engine.act_order = act;
        lq_qtensor *t = NULL;
        ck_assert_int_eq(lq_quantize(NULL, W, rows, cols, H, &m, &t, D), LQ_OK);
        ck_assert_int_eq(lq_matmul(NULL, t, X, batch, Y), LQ_OK);
        for (size_t b = 0; b < batch; b++) {
            ck_assert_int_eq(lq_matvec(NULL, t, X + b * cols, y), LQ_OK);
            for (size_t r = 0; r < rows; r++) {
                double ref = 0, mag = 0;
                for (size_t j = 0; j < cols; j++) {
                    ref += (double)D[r * cols + j] * X[b * cols + j];
                    mag += fabs((double)D[r * cols + j] * X[b * cols + j]);
                }
                ck_assert_msg(fabs(Y[b * rows + r] - ref) <= 1e-5 * mag + 1e-6, "matmul");
                ck_assert_msg(fabs(y[r] - ref) <= 1e-5 * mag + 1e-6, "matvec");
            }
        }
        lq_qtensor_free(t);
    }
    free(W);
    free(H);
    free(D);
    free(X);
    free(Y);
    free(y);
}
END_TEST

/* Bits per weight: codes + scales + zeros (+ permutation), as stored. */
START_TEST(bits_per_weight_counts)
{
    struct {
        unsigned bits;
        size_t cols, group;
        int sym, act;
        double want;
    } c[] = {
        {4, 256, 128, 0, 0, (128 + 2 * 2 + 1) * 8.0 / 256}, /* 4.15625 */
        {4, 256, 128, 1, 0, (128 + 2 * 2) * 8.0 / 256},     /* 4.125 */
        {3, 200, 64, 0, 0, (75 + 4 * 2 + 2) * 8.0 / 200},   /* tail group */
        {2, 64, 0, 0, 0, (16 + 2 + 1) * 8.0 / 64},          /* per row */
        {8, 100, 100, 1, 0, (100 + 2) * 8.0 / 100},
        {4, 256, 128, 0, 1, (128 + 2 * 2 + 1) * 8.0 / 256 + 32.0 / 8}, /* + perm, 8 rows */
    };
    size_t rows = 8;
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        float *W = fmalloc(rows * c[i].cols), *H = fmalloc(c[i].cols * c[i].cols);
        lq_test_correlated_layer(rows, c[i].cols, c[i].cols, i, W, H);
        lq_method m = int_method(c[i].bits, c[i].group, c[i].sym, 0);
        m.engine.act_order = c[i].act;
        lq_qtensor *t = NULL;
        ck_assert_int_eq(lq_quantize(NULL, W, rows, c[i].cols, H, &m, &t, NULL), LQ_OK);
        double bpw;
        ck_assert_int_eq(lq_qtensor_bits_per_weight(t, &bpw), LQ_OK);
        ck_assert_msg(fabs(bpw - c[i].want) < 1e-12, "case %zu: %g vs %g", i, bpw, c[i].want);
        lq_format f;
        ck_assert_int_eq(lq_qtensor_format(t, &f), LQ_OK);
        ck_assert_int_eq(f, LQ_FORMAT_INT);
        ck_assert_str_eq(lq_format_name(f), "int");
        lq_qtensor_free(t);
        free(W);
        free(H);
    }
}
END_TEST

/* The tail group has its own scale: tiny last columns keep their precision. */
START_TEST(tail_group)
{
    size_t rows = 4, cols = 70, g = 32; /* groups 32, 32, 6 */
    float *W = fmalloc(rows * cols), *Q = fmalloc(rows * cols);
    lq_test_fill_uniform(W, rows * cols, -1.0f, 1.0f, 5);
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 64; j < cols; j++) W[r * cols + j] *= 1e-3f;
    lq_method m = int_method(4, g, 0, 1);
    lq_qtensor *t = NULL;
    ck_assert_int_eq(lq_quantize(NULL, W, rows, cols, NULL, &m, &t, Q), LQ_OK);
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 64; j < cols; j++)
            ck_assert(fabs(W[r * cols + j] - Q[r * cols + j]) < 1e-4);
    lq_qtensor_free(t);
    free(W);
    free(Q);
}
END_TEST

/* MSE clipping never does worse than min-max per (row, group) (p = 1 is in
 * the grid) and does better on heavy tails. */
START_TEST(mse_clip_helps)
{
    size_t rows = 32, cols = 256;
    float *W = fmalloc(rows * cols), *H = fmalloc(cols * cols), *Q = fmalloc(rows * cols);
    lq_test_correlated_layer(rows, cols, 16, 4, W, H);
    double e[2];
    for (int clip = 0; clip < 2; clip++) {
        lq_method m = int_method(3, 128, 0, 1);
        m.u.int_.mse_clip = clip;
        lq_qtensor *t = NULL;
        lq_quant_report rep;
        ck_assert_int_eq(lq_quantize_ex(NULL, W, rows, cols, NULL, &m, &t, Q, &rep), LQ_OK);
        e[clip] = rep.proxy_loss;
        double fro = 0;
        for (size_t i = 0; i < rows * cols; i++)
            fro += ((double)W[i] - Q[i]) * ((double)W[i] - Q[i]);
        ck_assert(fabs(fro - rep.proxy_loss) <= 1e-9 * fro); /* no H: Frobenius */
        lq_qtensor_free(t);
    }
    /* measured: clip / min-max about 0.7 on this Student-t layer at 3 bits */
    ck_assert_msg(e[1] < 0.9 * e[0], "clip %g minmax %g", e[1], e[0]);
    free(W);
    free(H);
    free(Q);
}
END_TEST

/* Scales outside the normal half range are stored as float. */
START_TEST(fp32_scale_fallback)
{
    size_t rows = 3, cols = 64;
    float *W = fmalloc(rows * cols), *Q = fmalloc(rows * cols);
    lq_test_fill_gaussian(W, rows * cols, 1e-7f, 6);
    lq_method m = int_method(4, 32, 0, 1);
    lq_qtensor *t = NULL;
    ck_assert_int_eq(lq_quantize(NULL, W, rows, cols, NULL, &m, &t, Q), LQ_OK);
    ck_assert_uint_eq(t->ip[LQ_INT_IP_SCALE_BYTES], 4);
    double bpw;
    ck_assert_int_eq(lq_qtensor_bits_per_weight(t, &bpw), LQ_OK);
    ck_assert(fabs(bpw - (32 + 2 * 4 + 1) * 8.0 / 64) < 1e-12);
    ck_assert(lq_test_rel_err(Q, W, rows * cols) < 0.2);
    lq_qtensor_free(t);
    /* and big ones too */
    lq_test_fill_gaussian(W, rows * cols, 1e6f, 6);
    ck_assert_int_eq(lq_quantize(NULL, W, rows, cols, NULL, &m, &t, Q), LQ_OK);
    ck_assert_uint_eq(t->ip[LQ_INT_IP_SCALE_BYTES], 4);
    ck_assert(lq_test_rel_err(Q, W, rows * cols) < 0.2);
    lq_qtensor_free(t);
    /* all-zero rows quantize to zeros */
    memset(W, 0, rows * cols * sizeof *W);
    ck_assert_int_eq(lq_quantize(NULL, W, rows, cols, NULL, &m, &t, Q), LQ_OK);
    for (size_t i = 0; i < rows * cols; i++) ck_assert(Q[i] == 0.0f);
    lq_qtensor_free(t);
    free(W);
    free(Q);
}
END_TEST

START_TEST(bad_args)
{
    float W[64], H[64];
    lq_test_fill_gaussian(W, 64, 1.0f, 1);
    for (int i = 0; i < 64; i++) H[i] = (i % 9 == 0);
    lq_qtensor *t = NULL;
    lq_method m = int_method(1, 0, 0, 0);
    ck_assert_int_eq(lq_quantize(NULL, W, 8, 8, H, &m, &t, NULL), LQ_ERR_INVALID_ARG);
    m.u.int_.bits = 9;
    ck_assert_int_eq(lq_quantize(NULL, W, 8, 8, H, &m, &t, NULL), LQ_ERR_INVALID_ARG);
    m.u.int_.bits = 4;
    m.engine.percdamp = -0.5;
    ck_assert_int_eq(lq_quantize(NULL, W, 8, 8, H, &m, &t, NULL), LQ_ERR_INVALID_ARG);
    m.engine.percdamp = 0.01;
    ck_assert_int_eq(lq_quantize(NULL, W, 0, 8, H, &m, &t, NULL), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_quantize(NULL, W, 8, 8, H, &m, NULL, NULL), LQ_ERR_INVALID_ARG);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(lq_method_init(NULL, LQ_METHOD_INT), LQ_ERR_INVALID_ARG);
}
END_TEST

/* Damaged tensors are rejected by validation. */
START_TEST(validate_rejects_corrupt)
{
    size_t rows = 6, cols = 40;
    float *W = fmalloc(rows * cols), *H = fmalloc(cols * cols);
    lq_test_correlated_layer(rows, cols, cols, 2, W, H);
    lq_method m = int_method(3, 16, 0, 0);
    m.engine.act_order = 1;
    lq_qtensor *t = NULL;
    ck_assert_int_eq(lq_quantize(NULL, W, rows, cols, H, &m, &t, NULL), LQ_OK);
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_OK);
    uint32_t keep[LQ_INT_NIP];
    memcpy(keep, t->ip, sizeof keep);
    uint32_t bad[][2] = {
        {LQ_INT_IP_BITS, 1},     {LQ_INT_IP_BITS, 9},        {LQ_INT_IP_SYMMETRIC, 2},
        {LQ_INT_IP_GROUP, 0},    {LQ_INT_IP_GROUP, 41},      {LQ_INT_IP_GROUP, 8},
        {LQ_INT_IP_HAS_PERM, 0}, {LQ_INT_IP_SCALE_BYTES, 3}, {LQ_INT_IP_SCALE_BYTES, 4}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t->ip[bad[i][0]] = bad[i][1];
        ck_assert_msg(lq_qtensor_validate(t) == LQ_ERR_CORRUPT, "ip[%u] = %u", bad[i][0],
                      bad[i][1]);
        memcpy(t->ip, keep, sizeof keep);
    }
    uint32_t *perm = lq_qtensor_section(t, LQ_SEC_PERM)->data;
    uint32_t p0 = perm[0];
    perm[0] = perm[1]; /* repeated column */
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_ERR_CORRUPT);
    perm[0] = (uint32_t)cols; /* out of range */
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_ERR_CORRUPT);
    perm[0] = p0;
    uint8_t *sc = lq_qtensor_section(t, LQ_SEC_SCALES)->data;
    uint8_t s1 = sc[1];
    sc[1] = 0x7c; /* half infinity */
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_ERR_CORRUPT);
    sc[1] = s1;
    for (size_t k = 0; k < t->nsec; k++) { /* a section of the wrong size */
        t->sec[k].nbytes--;
        ck_assert_int_eq(lq_qtensor_validate(t), LQ_ERR_CORRUPT);
        t->sec[k].nbytes++;
    }
    t->nsec--; /* a missing section */
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_ERR_CORRUPT);
    t->nsec++;
    ck_assert_int_eq(lq_qtensor_validate(t), LQ_OK);
    lq_qtensor_free(t);
    free(W);
    free(H);
}
END_TEST

START_TEST(threads_and_simd_identical)
{
    size_t rows = 130, cols = 192;
    float *W = fmalloc(rows * cols), *H = fmalloc(cols * cols);
    float *Q1 = fmalloc(rows * cols), *Q2 = fmalloc(rows * cols);
    float *x = fmalloc(cols), *y1 = fmalloc(rows), *y2 = fmalloc(rows);
    lq_test_correlated_layer(rows, cols, cols, 12, W, H);
    lq_test_fill_gaussian(x, cols, 1.0f, 13);
    lq_ctx *c1 = lq_test_ctx(1, LQ_SIMD_SCALAR), *c2 = lq_test_ctx(2, LQ_SIMD_AUTO);
    lq_method m = int_method(4, 64, 0, 0);
    m.u.int_.mse_clip = 1;
    m.engine.act_order = 1;
    m.engine.static_groups = 1;
    lq_qtensor *t1, *t2;
    ck_assert_int_eq(lq_quantize(c1, W, rows, cols, H, &m, &t1, Q1), LQ_OK);
    ck_assert_int_eq(lq_quantize(c2, W, rows, cols, H, &m, &t2, Q2), LQ_OK);
    ck_assert_int_eq(memcmp(Q1, Q2, rows * cols * sizeof *Q1), 0);
    ck_assert_uint_eq(t1->nsec, t2->nsec);
    for (size_t k = 0; k < t1->nsec; k++)
        ck_assert_int_eq(memcmp(t1->sec[k].data, t2->sec[k].data, t1->sec[k].nbytes), 0);
    ck_assert_int_eq(lq_dequantize(c2, t1, Q2), LQ_OK);
    ck_assert_int_eq(memcmp(Q1, Q2, rows * cols * sizeof *Q1), 0);
    lq_qtensor_free(t1);
    lq_qtensor_free(t2);
    lq_ctx_destroy(c1);
    lq_ctx_destroy(c2);
    (void)y1;
    (void)y2;
    free(W);
    free(H);
    free(Q1);
    free(Q2);
    free(x);
    free(y1);
    free(y2);
}
END_TEST

/* half conversion helpers against exhaustive decode / re-encode */
START_TEST(half_roundtrip)
{
    for (uint32_t h = 0x0400; h < 0x7c00; h++) { /* every positive normal half */
        float f = lq_f16_to_f32((uint16_t)h), r;
        uint16_t h2;
        ck_assert(lq_int_half_round(f, &r, &h2));
        ck_assert_uint_eq(h2, h);
        ck_assert(r == f);
        /* a value just above rounds back to it unless past the midpoint */
        float up = nextafterf(f, INFINITY);
        if (h < 0x7bff) ck_assert(lq_int_half_round(up, &r, NULL) && r == f);
    }
    float r;
    ck_assert(!lq_int_half_round(1e-6f, &r, NULL));
    ck_assert(!lq_int_half_round(70000.0f, &r, NULL));
    ck_assert(lq_int_half_round(1.00048828125f, &r, NULL) && r == 1.0f); /* tie to even */
    ck_assert(lq_int_half_round(1.00146484375f, &r, NULL) && r == 1.001953125f);
}
END_TEST

typedef struct sweep_arg {
    const float *W, *H;
    size_t rows, cols;
} sweep_arg;

static lq_status sweep_body(lq_ctx *ctx, void *p)
{
    sweep_arg *a = p;
    lq_method m = int_method(4, 16, 0, 0);
    m.engine.act_order = 1;
    lq_qtensor *t = NULL;
    float Q[16 * 40], y[16], x[40];
    for (int i = 0; i < 40; i++) x[i] = (float)i;
    lq_status st = lq_quantize(ctx, a->W, a->rows, a->cols, a->H, &m, &t, Q);
    if (st != LQ_OK) return st;
    st = lq_dequantize(ctx, t, Q);
    if (st == LQ_OK) st = lq_matvec(ctx, t, x, y);
    if (st == LQ_OK) st = lq_qtensor_validate(t);
    lq_qtensor_free(t);
    return st;
}

START_TEST(alloc_failures)
{
    size_t rows = 16, cols = 40;
    float *W = fmalloc(rows * cols), *H = fmalloc(cols * cols);
    lq_test_correlated_layer(rows, cols, cols, 14, W, H);
    sweep_arg a = {W, H, rows, cols};
    ck_assert_uint_gt(lq_test_alloc_sweep(sweep_body, &a, 1), 4);
    ck_assert_uint_gt(lq_test_alloc_sweep(sweep_body, &a, 2), 4);
    free(W);
    free(H);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("int");
    TCase *tc = tcase_create("int");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, rtn_grid_property);
    tcase_add_test(tc, dequant_equals_what);
    tcase_add_test(tc, matvec_matches_dequant);
    tcase_add_test(tc, bits_per_weight_counts);
    tcase_add_test(tc, tail_group);
    tcase_add_test(tc, mse_clip_helps);
    tcase_add_test(tc, fp32_scale_fallback);
    tcase_add_test(tc, bad_args);
    tcase_add_test(tc, validate_rejects_corrupt);
    tcase_add_test(tc, threads_and_simd_identical);
    tcase_add_test(tc, half_roundtrip);
    tcase_add_test(tc, alloc_failures);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return lq_test_run(suite()); }
