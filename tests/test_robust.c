/*
 * Robustness promises across every method and product path (issue 14):
 * the supported input range (LQ_MAX_ABS_WEIGHT / _HESSIAN / _ACTIVATION),
 * one treatment of indefinite Hessians, outputs untouched on every error,
 * and the overflow-safe argument checks.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_common.h"

#define ROWS 32
#define COLS 64
#define SENTINEL 7.25f

static const lq_method_kind kinds[] = {LQ_METHOD_INT,   LQ_METHOD_NESTQUANT, LQ_METHOD_GPTVQ,
                                       LQ_METHOD_GPTQT, LQ_METHOD_BCQ,       LQ_METHOD_AQLM};
#define NKINDS (sizeof kinds / sizeof kinds[0])

/* Every method at its defaults, made cheap enough for a 32 x 64 layer. */
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

static void fill(float *x, size_t n, float v)
{
    for (size_t i = 0; i < n; i++) x[i] = v;
}

static int all_equal(const float *x, size_t n, float v)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&x[i], &v, sizeof v) != 0) return 0;
    return 1;
}

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

/* lq_quantize must return `want` and leave *out and W_hat untouched. */
static void expect_refused(const float *W, const float *H, const lq_method *m, lq_status want,
                           const char *what)
{
    static float Wh[ROWS * COLS];
    fill(Wh, ROWS * COLS, SENTINEL);
    lq_qtensor *t = (lq_qtensor *)(uintptr_t)0x1234;
    lq_status st = lq_quantize(NULL, W, ROWS, COLS, H, m, &t, Wh);
    ck_assert_msg(st == want, "%s, method %d, H %s: status %s, want %s", what, (int)m->kind,
                  H ? "yes" : "no", lq_status_str(st), lq_status_str(want));
    ck_assert_msg(t == (lq_qtensor *)(uintptr_t)0x1234, "%s: *out written", what);
    ck_assert_msg(all_equal(Wh, ROWS * COLS, SENTINEL), "%s: W_hat written", what);
}

/* Finite weights beyond the range: one status for every method, with and
 * without H (before: INT/GPTQT/NestQuant turned +-3e38 into NaN inside the
 * engine, GPTVQ returned OK with a non-finite W_hat). */
START_TEST(t_weights_out_of_range)
{
    static float W[ROWS * COLS], H[COLS * COLS], Wbad[ROWS * COLS];
    lq_test_correlated_layer(ROWS, COLS, 4 * COLS, 11, W, H);
    const float bad[] = {3e38f, -3e38f, FLT_MAX, -FLT_MAX, 1e37f, 0x1p40f * 1.0001f};
    for (size_t k = 0; k < NKINDS; k++) {
        lq_method m = method_for(kinds[k]);
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            memcpy(Wbad, W, sizeof W);
            Wbad[(b * 97) % (ROWS * COLS)] = bad[b];
            expect_refused(Wbad, H, &m, LQ_ERR_OUT_OF_RANGE, "outlier weight");
            expect_refused(Wbad, NULL, &m, LQ_ERR_OUT_OF_RANGE, "outlier weight");
        }
        fill(Wbad, ROWS * COLS, 3e38f);
        expect_refused(Wbad, H, &m, LQ_ERR_OUT_OF_RANGE, "all weights 3e38");
        memcpy(Wbad, W, sizeof W);
        Wbad[5] = NAN;
        expect_refused(Wbad, H, &m, LQ_ERR_NOT_FINITE, "NaN weight");
    }
}
END_TEST

START_TEST(t_hessian_out_of_range)
{
    static float W[ROWS * COLS], H[COLS * COLS];
    lq_test_correlated_layer(ROWS, COLS, 4 * COLS, 12, W, H);
    for (size_t k = 0; k < NKINDS; k++) {
        lq_method m = method_for(kinds[k]);
        float keep = H[3];
        H[3] = H[3 * COLS] = 1e30f;
        expect_refused(W, H, &m, LQ_ERR_OUT_OF_RANGE, "huge Hessian entry");
        H[3] = H[3 * COLS] = INFINITY;
        expect_refused(W, H, &m, LQ_ERR_NOT_FINITE, "Inf Hessian entry");
        H[3] = H[3 * COLS] = keep;
    }
}
END_TEST

/* Just inside the range: every method succeeds with a finite W_hat whose
 * relative error matches the unscaled run (the methods are equivariant
 * under a power-of-two scaling of W up to the rounding of stored side
 * information), and the products on its codes are finite. */
START_TEST(t_weights_near_bound)
{
    static float W[ROWS * COLS], Ws[ROWS * COLS], H[COLS * COLS], Wh[ROWS * COLS], Whs[ROWS * COLS],
        x[COLS], y[ROWS];
    lq_test_correlated_layer(ROWS, COLS, 4 * COLS, 13, W, H);
    float amax = 0;
    for (size_t i = 0; i < ROWS * COLS; i++) amax = fmaxf(amax, fabsf(W[i]));
    float s = 0x1p39f / amax; /* max |w| = 2^39 */
    s = exp2f(floorf(log2f(s)));
    for (size_t i = 0; i < ROWS * COLS; i++) Ws[i] = W[i] * s;
    lq_test_fill_gaussian(x, COLS, 1.0f, 14);
    for (size_t k = 0; k < NKINDS; k++) {
        lq_method m = method_for(kinds[k]);
        lq_qtensor *t = NULL, *ts = NULL;
        if (kinds[k] == LQ_METHOD_GPTVQ) {
            /* fp16 codebooks cannot hold 2^39: refused, not clamped (int8,
             * the default, below) */
            m.u.gptvq.codebook_bits = 0;
            expect_refused(Ws, H, &m, LQ_ERR_OUT_OF_RANGE, "GPTVQ fp16 codebooks at 2^39");
            m.u.gptvq.codebook_bits = 8;
        }
        ck_assert_int_eq(lq_quantize(NULL, W, ROWS, COLS, H, &m, &t, Wh), LQ_OK);
        lq_status st = lq_quantize(NULL, Ws, ROWS, COLS, H, &m, &ts, Whs);
        ck_assert_msg(st == LQ_OK, "method %d at 2^39: %s", (int)kinds[k], lq_status_str(st));
        ck_assert_msg(all_finite(Whs, ROWS * COLS), "method %d: W_hat not finite", (int)kinds[k]);
        double e = lq_test_rel_err(Wh, W, ROWS * COLS), es = lq_test_rel_err(Whs, Ws, ROWS * COLS);
        ck_assert_msg(es <= 1.5 * e + 1e-6, "method %d: rel err %g scaled vs %g", (int)kinds[k], es,
                      e);
        ck_assert_int_eq(lq_matvec(NULL, ts, x, y), LQ_OK);
        ck_assert_msg(all_finite(y, ROWS), "method %d: product not finite", (int)kinds[k]);
        ck_assert_int_eq(lq_matmul_ex(NULL, ts, x, 1, y, LQ_KERNEL_FAST), LQ_OK);
        ck_assert_msg(all_finite(y, ROWS), "method %d: FAST product not finite", (int)kinds[k]);
        lq_qtensor_free(t);
        lq_qtensor_free(ts);
    }
}
END_TEST

/* One treatment of indefinite Hessians: a method that uses H refuses what
 * the engine's damping schedule cannot repair with NOT_POSITIVE_DEFINITE,
 * and accepts what it repairs (before: AQLM returned OK for H = -I). */
START_TEST(t_indefinite_hessian_alike)
{
    static float W[ROWS * COLS], H[COLS * COLS], Hc[COLS * COLS];
    lq_test_correlated_layer(ROWS, COLS, 4 * COLS, 15, W, Hc);
    for (int c = 0; c < 3; c++) {
        memset(H, 0, sizeof H);
        for (size_t i = 0; i < COLS; i++) H[i * COLS + i] = c == 0 ? -1.0f : 1.0f;
        if (c == 1) H[1] = H[COLS] = 1e7f;                      /* eigenvalue about -1e7 */
        if (c == 2) memcpy(H, Hc, sizeof H);                    /* a Gram matrix ... */
        if (c == 2) H[2 * COLS + 2] = -H[2 * COLS + 2] * 1e-3f; /* ... one tiny negative diag */
        for (size_t k = 0; k < NKINDS; k++) {
            lq_method m = method_for(kinds[k]);
            if (c < 2) {
                expect_refused(W, H, &m, LQ_ERR_NOT_POSITIVE_DEFINITE, "indefinite H");
            } else {
                lq_qtensor *t = NULL;
                lq_quant_report rep;
                lq_status st = lq_quantize_ex(NULL, W, ROWS, COLS, H, &m, &t, NULL, &rep);
                ck_assert_msg(st == LQ_OK, "method %d, repairable H: %s", (int)kinds[k],
                              lq_status_str(st));
                ck_assert_msg(rep.damping > 0, "method %d: no damping reported", (int)kinds[k]);
                lq_qtensor_free(t);
            }
        }
    }
}
END_TEST

/* Activations: beyond the range refused by every product entry with Y
 * untouched; just inside, and tiny (subnormal block maxima), defined and
 * finite results (before: BCQ FAST cast NaN to int for 3e38, and the int8
 * block scale overflowed for maxima below ~2^-120). */
START_TEST(t_activation_range)
{
    static float W[ROWS * COLS], H[COLS * COLS], X[2 * COLS], Y[2 * ROWS];
    lq_test_correlated_layer(ROWS, COLS, 4 * COLS, 16, W, H);
    for (size_t k = 0; k < NKINDS; k++) {
        lq_method m = method_for(kinds[k]);
        lq_qtensor *t = NULL;
        ck_assert_int_eq(lq_quantize(NULL, W, ROWS, COLS, H, &m, &t, NULL), LQ_OK);
        const float bad[] = {3e38f, -FLT_MAX, 0x1p64f * 1.0001f};
        for (size_t b = 0; b < 3; b++) {
            lq_test_fill_gaussian(X, 2 * COLS, 1.0f, 17);
            X[COLS + 3] = bad[b];
            for (int mode = 0; mode < 2; mode++) {
                fill(Y, 2 * ROWS, SENTINEL);
                ck_assert_int_eq(lq_matmul_ex(NULL, t, X, 2, Y, (lq_kernel_mode)mode),
                                 LQ_ERR_OUT_OF_RANGE);
                ck_assert(all_equal(Y, 2 * ROWS, SENTINEL));
            }
            ck_assert_int_eq(lq_matmul(NULL, t, X, 2, Y), LQ_ERR_OUT_OF_RANGE);
            ck_assert_int_eq(lq_matvec(NULL, t, X + COLS, Y), LQ_ERR_OUT_OF_RANGE);
            ck_assert(all_equal(Y, 2 * ROWS, SENTINEL));
        }
        const float scale[] = {0x1p62f, 1e-40f, 1e-45f};
        for (size_t b = 0; b < 3; b++) {
            lq_test_fill_gaussian(X, 2 * COLS, 1.0f, 18);
            for (size_t i = 0; i < 2 * COLS; i++) X[i] *= scale[b];
            for (int mode = 0; mode < 2; mode++) {
                ck_assert_int_eq(lq_matmul_ex(NULL, t, X, 2, Y, (lq_kernel_mode)mode), LQ_OK);
                ck_assert_msg(all_finite(Y, 2 * ROWS), "method %d mode %d scale %g", (int)kinds[k],
                              mode, (double)scale[b]);
            }
        }
        lq_qtensor_free(t);
    }
}
END_TEST

START_TEST(t_method_init_untouched)
{
    lq_method m, ref;
    memset(&m, 0xAB, sizeof m);
    memcpy(&ref, &m, sizeof m);
    ck_assert_int_eq(lq_method_init(&m, (lq_method_kind)99), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_method_init(&m, (lq_method_kind)0), LQ_ERR_INVALID_ARG);
    ck_assert(memcmp(&m, &ref, sizeof m) == 0);
}
END_TEST

/* A block larger than the matrix is the whole matrix, whatever its size:
 * no size check may wrap (before: SIZE_MAX - w + 1 .. SIZE_MAX passed or
 * failed depending on the wrap). */
START_TEST(t_block_size_huge)
{
    static float W[ROWS * COLS], H[COLS * COLS], Wa[ROWS * COLS], Wb[ROWS * COLS];
    lq_test_correlated_layer(ROWS, COLS, 4 * COLS, 19, W, H);
    const lq_method_kind ks[] = {LQ_METHOD_INT, LQ_METHOD_GPTVQ, LQ_METHOD_NESTQUANT};
    for (size_t k = 0; k < 3; k++) {
        lq_method m = method_for(ks[k]);
        lq_qtensor *t;
        m.engine.block_size = COLS;
        ck_assert_int_eq(lq_quantize(NULL, W, ROWS, COLS, H, &m, &t, Wa), LQ_OK);
        lq_qtensor_free(t);
        const size_t huge[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX / 2 + 1, (size_t)1 << 40};
        for (size_t h = 0; h < 4; h++) {
            m.engine.block_size = huge[h];
            ck_assert_int_eq(lq_quantize(NULL, W, ROWS, COLS, H, &m, &t, Wb), LQ_OK);
            ck_assert(memcmp(Wa, Wb, sizeof Wa) == 0);
            lq_qtensor_free(t);
        }
    }
}
END_TEST

START_TEST(t_bcq_pack_overflow)
{
    uint8_t codes[8] = {1, 2, 3, 4, 5, 6, 7, 0}, planes[8];
    memset(planes, 0x5A, sizeof planes);
    /* k * ceil(n / 8) beyond SIZE_MAX: refused before any write */
    ck_assert_int_eq(lq_bcq_pack(codes, SIZE_MAX, 8, planes), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_bcq_unpack(planes, SIZE_MAX, 8, codes), LQ_ERR_INVALID_ARG);
    for (size_t i = 0; i < 8; i++) ck_assert_int_eq(planes[i], 0x5A);
    ck_assert_int_eq(codes[2], 3);
}
END_TEST

/* ---- outputs untouched after an allocation failure, at every point and at
 * every point from N on ---------------------------------------------------- */
typedef struct nomem_arg {
    const float *W, *H, *X;
    lq_method m;
    float Wh[ROWS * COLS], Y[2 * ROWS];
} nomem_arg;

static lq_status quantize_body(lq_ctx *ctx, void *p)
{
    nomem_arg *a = p;
    fill(a->Wh, ROWS * COLS, SENTINEL);
    lq_qtensor *t = (lq_qtensor *)(uintptr_t)0x1234;
    lq_status st = lq_quantize(ctx, a->W, ROWS, COLS, a->H, &a->m, &t, a->Wh);
    if (st != LQ_OK) {
        ck_assert_msg(t == (lq_qtensor *)(uintptr_t)0x1234, "*out written on %s",
                      lq_status_str(st));
        ck_assert_msg(all_equal(a->Wh, ROWS * COLS, SENTINEL), "W_hat written on %s",
                      lq_status_str(st));
        return st;
    }
    lq_qtensor_free(t);
    return st;
}

/* A fresh tensor each run (made without the failing allocator), so the
 * kernel layout is built, and can fail, inside the product. */
static lq_status product_body(lq_ctx *ctx, void *p)
{
    nomem_arg *a = p;
    lq_qtensor *t;
    ck_assert_int_eq(lq_quantize(NULL, a->W, ROWS, COLS, a->H, &a->m, &t, NULL), LQ_OK);
    lq_status st = LQ_OK;
    for (int mode = 0; mode < 2 && st == LQ_OK; mode++) {
        fill(a->Y, 2 * ROWS, SENTINEL);
        st = lq_matmul_ex(ctx, t, a->X, 2, a->Y, (lq_kernel_mode)mode);
        if (st != LQ_OK)
            ck_assert_msg(all_equal(a->Y, 2 * ROWS, SENTINEL), "Y written on %s",
                          lq_status_str(st));
    }
    lq_qtensor_free(t);
    return st;
}

/* The tensor is made with the failing allocator too, so the allocations the
 * formats make while decoding (the tensor keeps its context's allocator)
 * fail as well: lq_dequantize must say NO_MEMORY, never CORRUPT, and leave
 * W_hat as it was. */
static lq_status dequantize_body(lq_ctx *ctx, void *p)
{
    nomem_arg *a = p;
    lq_qtensor *t;
    lq_status st = lq_quantize(ctx, a->W, ROWS, COLS, a->H, &a->m, &t, NULL);
    if (st != LQ_OK) return st;
    fill(a->Wh, ROWS * COLS, SENTINEL);
    st = lq_dequantize(ctx, t, a->Wh);
    if (st != LQ_OK)
        ck_assert_msg(all_equal(a->Wh, ROWS * COLS, SENTINEL), "W_hat written on %s",
                      lq_status_str(st));
    lq_qtensor_free(t);
    return st;
}

START_TEST(t_nomem_outputs_untouched)
{
    static float W[ROWS * COLS], H[COLS * COLS], X[2 * COLS];
    static nomem_arg a;
    lq_test_correlated_layer(ROWS, COLS, 4 * COLS, 21, W, H);
    lq_test_fill_gaussian(X, 2 * COLS, 1.0f, 22);
    for (size_t k = 0; k < NKINDS; k++) {
        a.W = W;
        a.H = H;
        a.X = X;
        a.m = method_for(kinds[k]);
        size_t n1 = lq_test_alloc_sweep(quantize_body, &a, 1);
        size_t n2 = lq_test_alloc_sweep_from(quantize_body, &a, 2);
        ck_assert_msg(n1 > 0 && n2 > 0, "method %d: no allocation to fail", (int)kinds[k]);
        lq_test_alloc_sweep(product_body, &a, 1);
        lq_test_alloc_sweep_from(product_body, &a, 2);
        lq_test_alloc_sweep(dequantize_body, &a, 2);
    }
}
END_TEST

/* CORRUPT: a tensor loaded from a file whose codes section was altered (data
 * CRC skipped, so only the format's validation stands between the bytes and
 * the kernels) leaves every output untouched. */
START_TEST(t_corrupt_outputs_untouched)
{
    static float W[ROWS * COLS], H[COLS * COLS], X[COLS], Y[ROWS], Wh[ROWS * COLS];
    lq_test_correlated_layer(ROWS, COLS, 4 * COLS, 23, W, H);
    lq_test_fill_gaussian(X, COLS, 1.0f, 24);
    char path[] = "/tmp/lq_robust_XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    for (size_t k = 0; k < NKINDS; k++) {
        lq_method m = method_for(kinds[k]);
        lq_qtensor *t;
        ck_assert_int_eq(lq_quantize(NULL, W, ROWS, COLS, H, &m, &t, NULL), LQ_OK);
        ck_assert_int_eq(lq_qtensor_save(NULL, t, "w", path), LQ_OK);
        lq_qtensor_free(t);
        FILE *f = fopen(path, "r+b");
        ck_assert(f != NULL);
        ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
        long size = ftell(f);
        /* flip bytes across the file: every load either fails cleanly or
         * yields a tensor whose products and dequantization succeed or fail
         * with outputs untouched */
        for (long off = 64; off < size; off += size / 23 + 1) {
            ck_assert_int_eq(fseek(f, off, SEEK_SET), 0);
            int c = fgetc(f);
            ck_assert_int_eq(fseek(f, off, SEEK_SET), 0);
            fputc(c ^ 0xA5, f);
            fflush(f);
            lq_lqt *l = NULL;
            lq_status st = lq_lqt_open(NULL, path, 0, &l);
            if (st == LQ_OK) {
                lq_qtensor *u = (lq_qtensor *)(uintptr_t)0x1234;
                st = lq_lqt_load(NULL, l, 0, LQ_LQT_COPY | LQ_LQT_SKIP_DATA_CRC, &u);
                if (st != LQ_OK) ck_assert(u == (lq_qtensor *)(uintptr_t)0x1234);
                if (st == LQ_OK) {
                    fill(Y, ROWS, SENTINEL);
                    st = lq_matvec(NULL, u, X, Y);
                    if (st != LQ_OK) ck_assert(all_equal(Y, ROWS, SENTINEL));
                    fill(Wh, ROWS * COLS, SENTINEL);
                    st = lq_dequantize(NULL, u, Wh);
                    if (st != LQ_OK) ck_assert(all_equal(Wh, ROWS * COLS, SENTINEL));
                    lq_qtensor_free(u);
                }
                lq_lqt_close(l);
            }
            ck_assert_int_eq(fseek(f, off, SEEK_SET), 0);
            fputc(c, f); /* restore */
            fflush(f);
        }
        fclose(f);
    }
    remove(path);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("robust");
    TCase *tc = tcase_create("range");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, t_weights_out_of_range);
    tcase_add_test(tc, t_hessian_out_of_range);
    tcase_add_test(tc, t_weights_near_bound);
    tcase_add_test(tc, t_indefinite_hessian_alike);
    tcase_add_test(tc, t_activation_range);
    tcase_add_test(tc, t_method_init_untouched);
    tcase_add_test(tc, t_block_size_huge);
    tcase_add_test(tc, t_bcq_pack_overflow);
    tcase_add_test(tc, t_nomem_outputs_untouched);
    tcase_add_test(tc, t_corrupt_outputs_untouched);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return lq_test_run(suite()); }
