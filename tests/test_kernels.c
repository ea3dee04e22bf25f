/* Kernels: products on the codes of every format (src/products/, src/simd/kern_*).
 *
 * Properties checked, for every format that exists, on odd shapes, batch 1
 * to 64, 1 and 2 threads and every SIMD level of this machine:
 *  - EXACT equals dequantize-then-GEMV (double reference) within
 *    eps_exact * sum_c |w_c x_c| per output;
 *  - FAST is within the bound implied by its int8 rounding (activation
 *    blocks: |x - x^| <= d/2 elementwise, so |y - y^| <= sum_c |w_c| d/2
 *    plus float slack) or, for table formats, their documented bound;
 *  - every SIMD kernel of the FAST path equals the scalar kernel bit for
 *    bit, and every SIMD EXACT kernel matches the reference within the
 *    EXACT bound;
 *  - results do not depend on the thread count (bitwise);
 *  - bad arguments, NaN inputs and allocation failures are handled. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qtensor/qtensor_internal.h"
#include "products/lut.h"
#include "products/products.h"
#include "qtensor/format_aq.h"
#include "simd/kern_bcq.h"
#include "simd/kern_dec.h"
#include "test_common.h"

#define EPS_EXACT 2e-6

/* ---- tensors of every format ------------------------------------------- */
typedef struct maker {
    const char *name;
    lq_format format;
    unsigned variant; /* meaning per format */
} maker;

/* Quantize W (rows x cols) into format f (variant picks bits/options);
 * LQ_ERR_UNSUPPORTED when the format is not in this build. */
static lq_status make(lq_ctx *ctx, const maker *mk, const float *W, const float *H, size_t rows,
                      size_t cols, lq_qtensor **out)
{
    if (!lq_format_lookup(mk->format)) return LQ_ERR_UNSUPPORTED;
    lq_method m;
    switch (mk->format) {
    case LQ_FORMAT_INT: {
        static const struct {
            unsigned bits, sym;
            size_t group;
            int act_order;
        } v[] = {{4, 0, 32, 0}, {2, 0, 64, 0}, {3, 1, 100, 0}, {8, 0, 0, 0},
                 {5, 0, 48, 0}, {4, 0, 0, 1},  {3, 0, 32, 1},  {6, 1, 20, 0}};
        const size_t nv = sizeof v / sizeof v[0];
        lq_method_init(&m, LQ_METHOD_INT);
        unsigned i = mk->variant % nv;
        m.u.int_.bits = v[i].bits;
        m.u.int_.symmetric = (int)v[i].sym;
        m.u.int_.group = v[i].group;
        m.engine.rtn = !v[i].act_order;
        m.engine.act_order = v[i].act_order;
        return lq_quantize(ctx, W, rows, cols, v[i].act_order ? H : NULL, &m, out, NULL);
    }
    case LQ_FORMAT_BCQ: {
        static const struct {
            unsigned k;
            size_t group;
            int offset;
        } v[] = {{3, 32, 1}, {2, 0, 0}, {4, 50, 1}, {1, 12, 0}};
        unsigned i = mk->variant % (sizeof v / sizeof v[0]);
        lq_method_init(&m, LQ_METHOD_BCQ);
        m.engine.rtn = 1;
        m.u.bcq.k = v[i].k;
        m.u.bcq.group = v[i].group;
        m.u.bcq.offset = v[i].offset;
        m.u.bcq.iters = 3;
        return lq_quantize(ctx, W, rows, cols, NULL, &m, out, NULL);
    }
    case LQ_FORMAT_VQ: {
        static const struct {
            unsigned dim, bits;
            size_t gcols, grows;
            unsigned cbits;
        } v[] = {{2, 4, 64, 0, 0},
                 {4, 8, 32, 0, 0},
                 {1, 3, 50, 24, 8},
                 {2, 5, 100, 8, 0},
                 {8, 9, 64, 0, 0},
                 /* GPTVQ's default layout (a codebook per 16 rows x 256 columns),
                  * its 1D form, and K = 64 (gathers on uniform tiles) */
                 {2, 4, 256, 16, 0},
                 {1, 3, 256, 16, 0},
                 {2, 6, 64, 16, 0},
                 /* the paper's 2-D default (8 rows x 256 columns, int8) and
                  * 12-row blocks: tiles of 16 rows over two codebooks */
                 {2, 4, 256, 8, 8},
                 {2, 4, 64, 12, 0}};
        unsigned i = mk->variant % (sizeof v / sizeof v[0]);
        lq_method_init(&m, LQ_METHOD_GPTVQ);
        m.engine.rtn = 1;
        m.u.gptvq.dim = v[i].dim;
        m.u.gptvq.index_bits = v[i].bits;
        if (cols % v[i].dim) return LQ_ERR_UNSUPPORTED; /* the format needs d | cols */
        size_t gc = v[i].gcols < cols ? v[i].gcols : cols;
        m.u.gptvq.group_cols = gc / v[i].dim * v[i].dim;
        m.u.gptvq.group_rows = v[i].grows;
        m.u.gptvq.codebook_bits = v[i].cbits;
        m.u.gptvq.em_iters = 2;
        return lq_quantize(ctx, W, rows, cols, NULL, &m, out, NULL);
    }
    case LQ_FORMAT_AQ: {
        static const struct {
            unsigned M, B, g;
        } v[] = {{2, 8, 8},
                 {1, 4, 4},
                 {3, 6, 2},
                 {2, 9, 4},
                 /* decode kernels: AQLM 1x16 and 16-column vectors */
                 {1, 16, 8},
                 {2, 10, 16}};
        unsigned i = mk->variant % (sizeof v / sizeof v[0]);
        if (cols % v[i].g) return LQ_ERR_UNSUPPORTED; /* the format needs g | cols */
        lq_method_init(&m, LQ_METHOD_AQLM);
        m.u.aqlm.n_codebooks = v[i].M;
        m.u.aqlm.code_bits = v[i].B;
        m.u.aqlm.group = v[i].g;
        m.u.aqlm.beam = 2;
        m.u.aqlm.rounds = 1;
        m.u.aqlm.kmeans_iters = 2;
        return lq_quantize(ctx, W, rows, cols, NULL, &m, out, NULL);
    }
    case LQ_FORMAT_E8: {
        static const struct {
            unsigned q, K;
            size_t group;
            int hadamard;
        } v[] = {{16, 4, 0, 1}, {8, 1, 16, 0}, {4, 2, 40, 1}, {32, 16, 24, 0}, {64, 2, 0, 0}};
        unsigned i = mk->variant % (sizeof v / sizeof v[0]);
        lq_method_init(&m, LQ_METHOD_NESTQUANT);
        m.engine.rtn = 1;
        m.u.nestquant.q = v[i].q;
        m.u.nestquant.n_betas = v[i].K;
        m.u.nestquant.group = v[i].group;
        m.u.nestquant.hadamard = v[i].hadamard;
        return lq_quantize(ctx, W, rows, cols, NULL, &m, out, NULL);
    }
    default: return LQ_ERR_UNSUPPORTED;
    }
}

static const maker g_makers[] = {
    {"int4g32", LQ_FORMAT_INT, 0},  {"int2g64", LQ_FORMAT_INT, 1},
    {"int3sym", LQ_FORMAT_INT, 2},  {"int8row", LQ_FORMAT_INT, 3},
    {"int5g48", LQ_FORMAT_INT, 4},  {"int4perm", LQ_FORMAT_INT, 5},
    {"int3perm", LQ_FORMAT_INT, 6}, {"int6sym", LQ_FORMAT_INT, 7},
    {"bcq3g32", LQ_FORMAT_BCQ, 0},  {"bcq2row", LQ_FORMAT_BCQ, 1},
    {"bcq4g50", LQ_FORMAT_BCQ, 2},  {"bcq1g12", LQ_FORMAT_BCQ, 3},
    {"vq2x4", LQ_FORMAT_VQ, 0},     {"vq4x8", LQ_FORMAT_VQ, 1},
    {"vq1x3rb", LQ_FORMAT_VQ, 2},   {"vq2x5rb", LQ_FORMAT_VQ, 3},
    {"vq8x9", LQ_FORMAT_VQ, 4},     {"vqgptvq", LQ_FORMAT_VQ, 5},
    {"vq1d3", LQ_FORMAT_VQ, 6},     {"vq2x6rb16", LQ_FORMAT_VQ, 7},
    {"vqpaper8", LQ_FORMAT_VQ, 8},  {"vq2x4rb12", LQ_FORMAT_VQ, 9},
    {"aq2x8g8", LQ_FORMAT_AQ, 0},   {"aq1x4g4", LQ_FORMAT_AQ, 1},
    {"aq3x6g2", LQ_FORMAT_AQ, 2},   {"aq2x9g4", LQ_FORMAT_AQ, 3},
    {"aq1x16g8", LQ_FORMAT_AQ, 4},  {"aq2x10g16", LQ_FORMAT_AQ, 5},
    {"e8q16had", LQ_FORMAT_E8, 0},  {"e8q8g16", LQ_FORMAT_E8, 1},
    {"e8q4g40", LQ_FORMAT_E8, 2},   {"e8q32k16", LQ_FORMAT_E8, 3},
    {"e8q64ref", LQ_FORMAT_E8, 4}, /* q > 60: reference path */
};
#define NMAKERS (sizeof g_makers / sizeof g_makers[0])

static const size_t g_shapes[][2] = {{37, 100}, {16, 64}, {70, 257}, {5, 33}, {21, 200}};
#define NSHAPES (sizeof g_shapes / sizeof g_shapes[0])

typedef struct fixture {
    size_t rows, cols;
    float *W, *H, *What;
    lq_qtensor *t;
} fixture;

static int fixture_make(const maker *mk, size_t rows, size_t cols, uint64_t seed, fixture *f)
{
    memset(f, 0, sizeof *f);
    f->rows = rows;
    f->cols = cols;
    f->W = malloc(rows * cols * sizeof(float));
    f->H = malloc(cols * cols * sizeof(float));
    f->What = malloc(rows * cols * sizeof(float));
    ck_assert(f->W && f->H && f->What);
    lq_test_correlated_layer(rows, cols, 2 * cols + 8, seed, f->W, f->H);
    lq_ctx *ctx = lq_test_ctx(2, LQ_SIMD_AUTO);
    lq_status st = make(ctx, mk, f->W, f->H, rows, cols, &f->t);
    if (st == LQ_OK) ck_assert_int_eq(lq_dequantize(ctx, f->t, f->What), LQ_OK);
    lq_ctx_destroy(ctx);
    if (st == LQ_ERR_UNSUPPORTED) {
        free(f->W);
        free(f->H);
        free(f->What);
        return 0;
    }
    ck_assert_msg(st == LQ_OK, "%s: quantize: %s", mk->name, lq_status_str(st));
    return 1;
}

static void fixture_free(fixture *f)
{
    lq_qtensor_free(f->t);
    free(f->W);
    free(f->H);
    free(f->What);
}

/* Reference Y = X What^T in double, and the scale sum_c |w_c x_c|. */
static void reference(const fixture *f, const float *X, size_t batch, double *Y, double *A)
{
    for (size_t b = 0; b < batch; b++)
        for (size_t r = 0; r < f->rows; r++) {
            double s = 0, a = 0;
            for (size_t c = 0; c < f->cols; c++) {
                double p = (double)f->What[r * f->cols + c] * X[b * f->cols + c];
                s += p;
                a += fabs(p);
            }
            double wmax = 0, xabs = 0;
            for (size_t c = 0; c < f->cols; c++) {
                double w = fabs(f->What[r * f->cols + c]);
                if (w > wmax) wmax = w;
                xabs += fabs(X[b * f->cols + c]);
            }
            Y[b * f->rows + r] = s;
            /* float rounding scale: products, and table/plane terms whose
             * magnitude is bounded by max|w| sum|x| */
            A[b * f->rows + r] = a + wmax * xabs;
        }
}

/* Rigorous bound of the int8 activation rounding: per block of 32 columns
 * of a group the error of x is at most d/2 = max|x|/254 (blocks follow the
 * stored column order; a coarser, layout-free bound is used: blocks of the
 * whole row with d = max|x| over the row). */
static double fast_bound(const fixture *f, const float *X, size_t b, size_t r)
{
    double amax = 0, wsum = 0;
    for (size_t c = 0; c < f->cols; c++) {
        double a = fabs(X[b * f->cols + c]);
        if (a > amax) amax = a;
        wsum += fabs(f->What[r * f->cols + c]);
    }
    return wsum * amax / 254.0 * 1.0001;
}

/* BCQ FAST (7-bit tables, one scale per group: |T| <= sum of 4 |x| <= 4
 * max_g|x|, rounding error <= d_g/2 per lookup): per plane and group
 * |alpha| * chunks * 4 max_g|x| / 126. */
static double fast_bound_bcq(const fixture *f, const float *X, size_t b, size_t r)
{
    const lq_kern_format *kf = lq_kern_lookup(LQ_FORMAT_BCQ);
    const void *pk;
    ck_assert_int_eq(lq_kern_pack(f->t, kf, &pk), LQ_OK);
    const lq_lut_pack *p = pk;
    const lq_bcq_fmt *bf = p->fmt;
    size_t nsg = bf->k + (bf->has_off ? 1 : 0), tile = r / 16, lane = r % 16;
    double bound = 0;
    for (size_t g = 0; g < bf->ngroups; g++) {
        size_t c0 = g * bf->group, c1 = c0 + bf->group < f->cols ? c0 + bf->group : f->cols;
        double xm = 0;
        for (size_t c = c0; c < c1; c++)
            if (fabs(X[b * f->cols + c]) > xm) xm = fabs(X[b * f->cols + c]);
        double asum = 0;
        for (size_t i = 0; i < bf->k; i++)
            asum += fabs(p->mult[(tile * p->nseg + g * nsg + i) * 16 + lane]);
        bound += asum * (double)((c1 - c0 + 3) / 4) * 4.0 * xm / 126.0;
    }
    return bound * 1.0001;
}

/* AQ FAST with int8 tables (simd/kern_dec.h): per lookup at most s_blk / 2
 * with s_blk = max |T| / 127 <= cmax * max_j ||x_j||_1 / 127 (cmax the
 * largest |codebook value|, x_j the activation's g-vectors), so
 * |y - y^| <= |scale_r| * (ng * M) * cmax * max_j ||x_j||_1 / 254. Without
 * int8 tables (decode path) FAST is EXACT. */
static double fast_bound_aq(const fixture *f, const float *X, size_t b, size_t r)
{
    const lq_kern_format *kf = lq_kern_lookup(LQ_FORMAT_AQ);
    const void *pk;
    ck_assert_int_eq(lq_kern_pack(f->t, kf, &pk), LQ_OK);
    if (!((const lq_aq_kpack *)pk)->q8) return 0.0;
    lq_aq_layout v;
    ck_assert_int_eq(lq_aq_layout_read(f->t, &v), LQ_OK);
    double cmax = 0, xg = 0;
    for (size_t i = 0; i < v.M * v.K * v.g; i++)
        if (fabs(lq_aq_layout_value(&v, i)) > cmax) cmax = fabs(lq_aq_layout_value(&v, i));
    for (size_t j = 0; j < v.ng; j++) {
        double s = 0;
        for (size_t q = 0; q < v.g; q++) s += fabs(X[b * f->cols + j * v.g + q]);
        if (s > xg) xg = s;
    }
    return fabs(lq_aq_layout_scale(&v, r)) * (double)(v.ng * v.M) * cmax * xg / 254.0 * 1.0001;
}

static const size_t g_batches[] = {1, 3, 17, 64};
#define NBATCH (sizeof g_batches / sizeof g_batches[0])

static lq_simd_level g_levels[4];
static size_t g_nlevels;

static void levels_init(void)
{
    lq_simd_level d = lq_simd_detected();
    g_nlevels = 0;
    g_levels[g_nlevels++] = LQ_SIMD_SCALAR;
#if LQ_ARCH_X86
    if (d >= LQ_SIMD_AVX2 && d != LQ_SIMD_NEON) g_levels[g_nlevels++] = LQ_SIMD_AVX2;
    if (d == LQ_SIMD_AVX512) g_levels[g_nlevels++] = LQ_SIMD_AVX512;
#endif
#if LQ_ARCH_ARM
    if (d == LQ_SIMD_NEON) g_levels[g_nlevels++] = LQ_SIMD_NEON;
#endif
}

/* The main property test: one maker (the loop index), all shapes, batches,
 * levels, threads and both modes. */
START_TEST(products_match_dequant)
{
    levels_init();
    const maker *mk = &g_makers[_i];
    for (size_t si = 0; si < NSHAPES; si++) {
        fixture f;
        if (!fixture_make(mk, g_shapes[si][0], g_shapes[si][1], 100 + si, &f)) continue;
        size_t maxb = 64, rows = f.rows, cols = f.cols;
        float *X = malloc(maxb * cols * sizeof(float));
        float *Y = malloc(maxb * rows * sizeof(float));
        float *Yf0 = malloc(maxb * rows * sizeof(float));
        float *Ye0 = malloc(maxb * rows * sizeof(float));
        double *R = malloc(maxb * rows * sizeof(double));
        double *A = malloc(maxb * rows * sizeof(double));
        lq_test_fill_gaussian(X, maxb * cols, 1.0f, 7 + si);
        for (size_t bi = 0; bi < NBATCH; bi++) {
            size_t batch = g_batches[bi];
            /* keep the suite lean: large batches on shapes 0 and 4 (cols 200:
             * the AQ decode kernels' g = 8, 16) */
            if (batch > 3 && si != 0 && si != 4) continue;
            reference(&f, X, batch, R, A);
            for (size_t li = 0; li < g_nlevels; li++) {
                for (size_t th = 1; th <= 2; th++) {
                    lq_ctx *ctx = lq_test_ctx(th, g_levels[li]);
                    /* EXACT */
                    ck_assert_int_eq(lq_matmul_ex(ctx, f.t, X, batch, Y, LQ_KERNEL_EXACT), LQ_OK);
                    for (size_t i = 0; i < batch * rows; i++)
                        ck_assert_msg(fabs(Y[i] - R[i]) <= EPS_EXACT * (A[i] + 1e-3) * cols,
                                      "%s %zux%zu b%zu %s t%zu exact: %g vs %g", mk->name, rows,
                                      cols, batch, lq_simd_name(g_levels[li]), th, Y[i], R[i]);
                    if (li == 0 && th == 1)
                        memcpy(Ye0, Y, batch * rows * sizeof(float));
                    else if (g_levels[li] == LQ_SIMD_SCALAR)
                        ck_assert(!memcmp(Y, Ye0, batch * rows * sizeof(float)));
                    if (th == 2) {
                        /* thread-count independence, same level */
                        lq_ctx *c1 = lq_test_ctx(1, g_levels[li]);
                        float *Y1 = malloc(batch * rows * sizeof(float));
                        ck_assert_int_eq(lq_matmul_ex(c1, f.t, X, batch, Y1, LQ_KERNEL_EXACT),
                                         LQ_OK);
                        ck_assert(!memcmp(Y, Y1, batch * rows * sizeof(float)));
                        ck_assert_int_eq(lq_matmul_ex(c1, f.t, X, batch, Y1, LQ_KERNEL_FAST),
                                         LQ_OK);
                        ck_assert_int_eq(lq_matmul_ex(ctx, f.t, X, batch, Y, LQ_KERNEL_FAST),
                                         LQ_OK);
                        ck_assert(!memcmp(Y, Y1, batch * rows * sizeof(float)));
                        free(Y1);
                        lq_ctx_destroy(c1);
                    }
                    /* FAST */
                    ck_assert_int_eq(lq_matmul_ex(ctx, f.t, X, batch, Y, LQ_KERNEL_FAST), LQ_OK);
                    for (size_t b = 0; b < batch; b++)
                        for (size_t r = 0; r < rows; r++) {
                            size_t i = b * rows + r;
                            double bound =
                                (mk->format == LQ_FORMAT_BCQ  ? fast_bound_bcq(&f, X, b, r)
                                 : mk->format == LQ_FORMAT_AQ ? fast_bound_aq(&f, X, b, r)
                                                              : fast_bound(&f, X, b, r)) +
                                EPS_EXACT * (A[i] + 1e-3) * cols;
                            ck_assert_msg(fabs(Y[i] - R[i]) <= bound,
                                          "%s %zux%zu b%zu %s fast: %g vs %g (bound %g)", mk->name,
                                          rows, cols, batch, lq_simd_name(g_levels[li]), Y[i], R[i],
                                          bound);
                        }
                    /* integer paths: every level bit-exact with scalar */
                    if (li == 0 && th == 1)
                        memcpy(Yf0, Y, batch * rows * sizeof(float));
                    else
                        ck_assert_msg(!memcmp(Y, Yf0, batch * rows * sizeof(float)),
                                      "%s %zux%zu b%zu %s fast differs from scalar", mk->name, rows,
                                      cols, batch, lq_simd_name(g_levels[li]));
                    lq_ctx_destroy(ctx);
                }
            }
        }
        /* lq_matvec and lq_matmul are the EXACT path */
        lq_ctx *ctx = lq_test_ctx(1, LQ_SIMD_AUTO);
        ck_assert_int_eq(lq_matmul_ex(ctx, f.t, X, 3, Ye0, LQ_KERNEL_EXACT), LQ_OK);
        ck_assert_int_eq(lq_matmul(ctx, f.t, X, 3, Y), LQ_OK);
        ck_assert(!memcmp(Y, Ye0, 3 * rows * sizeof(float)));
        ck_assert_int_eq(lq_matvec(ctx, f.t, X, Y), LQ_OK);
        ck_assert(!memcmp(Y, Ye0, rows * sizeof(float)));
        lq_ctx_destroy(ctx);
        free(X);
        free(Y);
        free(Yf0);
        free(Ye0);
        free(R);
        free(A);
        fixture_free(&f);
    }
}
END_TEST

/* Every registered kernel, called directly, against the scalar kernel of its
 * mode (FAST: bitwise) on a tensor whose rows are not a tile multiple. */
START_TEST(kernels_vs_scalar_direct)
{
    levels_init();
    for (size_t mi = 0; mi < NMAKERS; mi++) {
        fixture f;
        if (!fixture_make(&g_makers[mi], 45, 128, 9, &f)) continue;
        const lq_kern_format *kf = lq_kern_lookup(f.t->format);
        if (!kf) {
            fixture_free(&f);
            continue;
        }
        ck_assert_int_eq(lq_qtensor_prepare(NULL, f.t), LQ_OK);
        const void *pack;
        lq_status pst = lq_kern_pack(f.t, kf, &pack);
        if (pst == LQ_ERR_UNSUPPORTED) { /* served by the format's reference */
            fixture_free(&f);
            continue;
        }
        ck_assert_int_eq(pst, LQ_OK);
        size_t batch = 6;
        float *X = malloc(batch * f.cols * sizeof(float));
        lq_test_fill_uniform(X, batch * f.cols, -2.0f, 3.0f, 5);
        float *Y0 = malloc(batch * f.rows * sizeof(float));
        float *Y1 = malloc(batch * f.rows * sizeof(float));
        void *act = malloc(kf->act_bytes(pack, batch, LQ_KERNEL_FAST) + 64);
        kf->act_build(pack, X, batch, LQ_KERNEL_FAST, LQ_SIMD_SCALAR, act);
        lq_kern_rows_fn ref = kf->rows[1][LQ_SIMD_SCALAR];
        ck_assert_ptr_nonnull(ref);
        /* split rows at a tile boundary, as the threads do */
        ref(pack, act, batch, Y0, f.rows, 0, 16);
        ref(pack, act, batch, Y0, f.rows, 16, f.rows);
        for (size_t li = 1; li < g_nlevels; li++) {
            lq_kern_rows_fn fn = kf->rows[1][g_levels[li]];
            if (!fn) continue;
            memset(Y1, 0xff, batch * f.rows * sizeof(float));
            fn(pack, act, batch, Y1, f.rows, 0, 32);
            fn(pack, act, batch, Y1, f.rows, 32, f.rows);
            ck_assert_msg(!memcmp(Y0, Y1, batch * f.rows * sizeof(float)), "%s %s",
                          g_makers[mi].name, lq_simd_name(g_levels[li]));
        }
        /* VQ and AQ: a vector's result does not depend on the batch it is
         * in (the decode kernels reuse each decoded tile across the batch
         * with the same operations per vector) */
        if (f.t->format == LQ_FORMAT_VQ || f.t->format == LQ_FORMAT_AQ) {
            /* GPTVQ's default layout and AQLM 1x16 take the decode kernels */
            if (!strcmp(g_makers[mi].name, "vqgptvq"))
                ck_assert_ptr_nonnull(((const lq_vq_kpack *)pack)->dec);
            if (!strcmp(g_makers[mi].name, "aq1x16g8"))
                ck_assert_ptr_nonnull(((const lq_aq_kpack *)pack)->dec);
            size_t one = kf->act_bytes(pack, 1, LQ_KERNEL_FAST);
            void *act1 = malloc(one + 64);
            float *y1 = malloc(f.rows * sizeof(float));
            for (size_t li = 0; li < g_nlevels; li++) {
                lq_kern_rows_fn fn = kf->rows[1][g_levels[li]];
                if (!fn) continue;
                for (size_t b = 0; b < batch; b++) {
                    kf->act_build(pack, X + b * f.cols, 1, LQ_KERNEL_FAST, LQ_SIMD_SCALAR, act1);
                    fn(pack, act1, 1, y1, f.rows, 0, f.rows);
                    ck_assert_msg(!memcmp(y1, Y0 + b * f.rows, f.rows * sizeof(float)),
                                  "%s %s: batch of 1 differs from batch %zu", g_makers[mi].name,
                                  lq_simd_name(g_levels[li]), batch);
                }
            }
            free(act1);
            free(y1);
        }
        free(act);
        free(X);
        free(Y0);
        free(Y1);
        fixture_free(&f);
    }
}
END_TEST

START_TEST(bad_args)
{
    fixture f;
    if (!fixture_make(&g_makers[0], 20, 40, 3, &f)) return;
    float X[80], Y[40];
    lq_test_fill_gaussian(X, 80, 1.0f, 1);
    ck_assert_int_eq(lq_matmul_ex(NULL, NULL, X, 1, Y, LQ_KERNEL_FAST), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_matmul_ex(NULL, f.t, NULL, 1, Y, LQ_KERNEL_FAST), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_matmul_ex(NULL, f.t, X, 1, NULL, LQ_KERNEL_FAST), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_matmul_ex(NULL, f.t, X, 0, Y, LQ_KERNEL_FAST), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_matmul_ex(NULL, f.t, X, 1, Y, (lq_kernel_mode)7), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_qtensor_prepare(NULL, NULL), LQ_ERR_INVALID_ARG);
    for (int mode = 0; mode < 2; mode++) {
        float Xn[80];
        memcpy(Xn, X, sizeof Xn);
        Xn[57] = NAN;
        for (size_t i = 0; i < 40; i++) Y[i] = 42.0f;
        ck_assert_int_eq(lq_matmul_ex(NULL, f.t, Xn, 2, Y, (lq_kernel_mode)mode),
                         LQ_ERR_NOT_FINITE);
        Xn[57] = INFINITY;
        ck_assert_int_eq(lq_matmul_ex(NULL, f.t, Xn, 2, Y, (lq_kernel_mode)mode),
                         LQ_ERR_NOT_FINITE);
        for (size_t i = 0; i < 40; i++) ck_assert(Y[i] == 42.0f); /* untouched */
    }
    /* a corrupt tensor (codes section cut short) is refused, not read */
    size_t saved = f.t->sec[0].nbytes;
    f.t->sec[0].nbytes = saved / 2;
    ck_assert_int_eq(lq_matmul_ex(NULL, f.t, X, 1, Y, LQ_KERNEL_FAST), LQ_ERR_CORRUPT);
    ck_assert_int_eq(lq_qtensor_prepare(NULL, f.t), LQ_ERR_CORRUPT);
    f.t->sec[0].nbytes = saved;
    ck_assert_int_eq(lq_qtensor_prepare(NULL, f.t), LQ_OK);
    ck_assert_int_eq(lq_qtensor_prepare(NULL, f.t), LQ_OK); /* idempotent */
    fixture_free(&f);
}
END_TEST

/* ---- allocation failures ----------------------------------------------- */
typedef struct sweep_arg {
    const lq_qtensor *src;
    const float *X;
    size_t batch;
    lq_kernel_mode mode;
} sweep_arg;

/* Copy the tensor with the failing context (so the kernel layout is also
 * allocated through it), then multiply. */
static lq_status sweep_body(lq_ctx *ctx, void *arg)
{
    sweep_arg *a = arg;
    const lq_qtensor *s = a->src;
    lq_qtensor *t;
    lq_status st = lq_qtensor_new(ctx, s->format, s->rows, s->cols, &t);
    if (st != LQ_OK) return st;
    memcpy(t->ip, s->ip, sizeof t->ip);
    memcpy(t->fp, s->fp, sizeof t->fp);
    for (size_t i = 0; i < s->nsec; i++) {
        void *d = lq_qtensor_add_section(t, s->sec[i].tag, s->sec[i].elem_size, s->sec[i].nbytes);
        if (!d) {
            lq_qtensor_free(t);
            return LQ_ERR_NO_MEMORY;
        }
        memcpy(d, s->sec[i].data, s->sec[i].nbytes);
    }
    float *Y = malloc(a->batch * s->rows * sizeof(float));
    for (size_t i = 0; i < a->batch * s->rows; i++) Y[i] = 7.0f;
    st = lq_matmul_ex(ctx, t, a->X, a->batch, Y, a->mode);
    if (st == LQ_ERR_NO_MEMORY)
        for (size_t i = 0; i < a->batch * s->rows; i++) ck_assert(Y[i] == 7.0f);
    if (st == LQ_OK) st = lq_qtensor_prepare(ctx, t);
    free(Y);
    lq_qtensor_free(t);
    return st;
}

START_TEST(alloc_failures)
{
    for (size_t mi = 0; mi < NMAKERS; mi += 3) {
        fixture f;
        if (!fixture_make(&g_makers[mi], 19, 70, 4, &f)) continue;
        float X[3 * 70];
        lq_test_fill_gaussian(X, 3 * 70, 1.0f, 2);
        for (int mode = 0; mode < 2; mode++) {
            sweep_arg a = {f.t, X, 3, (lq_kernel_mode)mode};
            ck_assert_uint_gt(lq_test_alloc_sweep(sweep_body, &a, 1 + (size_t)mode), 0);
        }
        fixture_free(&f);
    }
}
END_TEST

/* The tensor can be shared by concurrent first products (the layout cache
 * is built once, by compare-and-swap). */
typedef struct conc_arg {
    const lq_qtensor *t;
    const float *X;
    float *Y;
} conc_arg;

static void conc_task(void *arg, size_t i)
{
    conc_arg *a = arg;
    lq_ctx *ctx = NULL;
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.n_threads = 1;
    if (lq_ctx_create(&cfg, &ctx) != LQ_OK) return;
    lq_matmul_ex(ctx, a->t, a->X, 1, a->Y + i * a->t->rows, (lq_kernel_mode)(i & 1));
    lq_ctx_destroy(ctx);
}

START_TEST(concurrent_first_use)
{
    fixture f;
    if (!fixture_make(&g_makers[0], 50, 96, 8, &f)) return;
    float X[96], Y[8 * 50], Z[50];
    lq_test_fill_gaussian(X, 96, 1.0f, 3);
    conc_arg a = {f.t, X, Y};
    lq_ctx *ctx = lq_test_ctx(2, LQ_SIMD_AUTO);
    lq_parallel_for(ctx, 8, conc_task, &a);
    lq_ctx_destroy(ctx);
    for (int mode = 0; mode < 2; mode++) {
        ck_assert_int_eq(lq_matmul_ex(NULL, f.t, X, 1, Z, (lq_kernel_mode)mode), LQ_OK);
        for (size_t i = (size_t)mode; i < 8; i += 2) ck_assert(!memcmp(Z, Y + i * 50, sizeof Z));
    }
    fixture_free(&f);
}
END_TEST

/* Tables larger than L2 take the AVX-512 blocked walk (positions in
 * blocks, partial sums carried across blocks): same bits as scalar. */
START_TEST(large_tables_blocked)
{
    levels_init();
    size_t rows = 40, cols = 2048;
    float *W = malloc(rows * cols * sizeof(float)), *X = malloc(3 * cols * sizeof(float));
    float *Y0 = malloc(3 * rows * sizeof(float)), *Y1 = malloc(3 * rows * sizeof(float));
    lq_test_fill_gaussian(W, rows * cols, 1.0f, 21);
    lq_test_fill_gaussian(X, 3 * cols, 1.0f, 22);
    lq_method m;
    lq_method_init(&m, LQ_METHOD_GPTVQ);
    m.engine.rtn = 1;
    m.u.gptvq.dim = 1;
    m.u.gptvq.index_bits = 8;
    m.u.gptvq.group_cols = cols;
    m.u.gptvq.em_iters = 1;
    lq_qtensor *t = NULL;
    lq_ctx *c0 = lq_test_ctx(1, LQ_SIMD_SCALAR);
    ck_assert(lq_format_lookup(LQ_FORMAT_VQ) != NULL);
    ck_assert_int_eq(lq_quantize(c0, W, rows, cols, NULL, &m, &t, NULL), LQ_OK);
    ck_assert_int_eq(lq_matmul_ex(c0, t, X, 3, Y0, LQ_KERNEL_FAST), LQ_OK);
    for (size_t li = 1; li < g_nlevels; li++)
        for (size_t th = 1; th <= 2; th++) {
            lq_ctx *c = lq_test_ctx(th, g_levels[li]);
            ck_assert_int_eq(lq_matmul_ex(c, t, X, 3, Y1, LQ_KERNEL_FAST), LQ_OK);
            ck_assert(!memcmp(Y0, Y1, 3 * rows * sizeof(float)));
            lq_ctx_destroy(c);
        }
    float *Wh = malloc(rows * cols * sizeof(float));
    ck_assert_int_eq(lq_dequantize(c0, t, Wh), LQ_OK);
    for (size_t b = 0; b < 3; b++)
        for (size_t r = 0; r < rows; r++) {
            double ref = 0, a = 0;
            for (size_t c = 0; c < cols; c++) {
                ref += (double)Wh[r * cols + c] * X[b * cols + c];
                a += fabs((double)Wh[r * cols + c] * X[b * cols + c]);
            }
            ck_assert(fabs(Y0[b * rows + r] - ref) <= EPS_EXACT * cols * (a + 1e-3));
        }
    free(Wh);
    lq_qtensor_free(t);
    lq_ctx_destroy(c0);
    free(W), free(X), free(Y0), free(Y1);
}
END_TEST

/* The table builders of every level give the same bits as the scalar one. */
START_TEST(dot_tables_bitwise)
{
    levels_init();
    size_t K = 272, d = 7;
    float *cbT = malloc(K * d * sizeof(float)), x[7], t0[272], t1[272];
    lq_test_fill_gaussian(cbT, K * d, 1.0f, 11);
    lq_test_fill_gaussian(x, d, 1.0f, 12);
    x[3] = -0.0f;
    lq_lut_dot_scalar(cbT, K, d, x, t0);
    for (size_t e = 0; e < K; e++) {
        double ref = 0;
        for (size_t i = 0; i < d; i++) ref += (double)cbT[i * K + e] * x[i];
        ck_assert(fabs(t0[e] - ref) <= 1e-5 * (fabs(ref) + 1));
    }
    for (size_t li = 0; li < g_nlevels; li++) {
        lq_lut_dot_for(g_levels[li])(cbT, K, d, x, t1);
        ck_assert(!memcmp(t0, t1, sizeof t0));
    }
    free(cbT);
}
END_TEST

static Suite *kernels_suite(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, products_match_dequant, 0, (int)NMAKERS);
    tcase_add_test(tc, kernels_vs_scalar_direct);
    tcase_add_test(tc, dot_tables_bitwise);
    tcase_add_test(tc, large_tables_blocked);
    tcase_add_test(tc, bad_args);
    tcase_add_test(tc, alloc_failures);
    tcase_add_test(tc, concurrent_first_use);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return lq_test_run(kernels_suite()); }
