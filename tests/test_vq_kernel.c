/* The VQ FAST int8 path (simd/kern_vq8.h) on tensors GPTVQ emits.
 *
 * Properties:
 *  - the int8 layout is built exactly when the path's conditions hold
 *    (int8 codebooks, 2^b <= 16, d in {1, 2, 4}, 32-column blocks, the
 *    codebooks of a 16-row tile in 64 bytes), and FAST then runs it;
 *  - the scalar FAST kernel equals the documented formula evaluated here
 *    from the stored codes, int8 codebooks and scales and the int8
 *    activation blocks (lq_kern_q8_block), bit for bit;
 *  - FAST at every level the machine has, 1 and 2 threads, batch 1..64,
 *    equals the scalar FAST kernel bit for bit;
 *  - FAST is within sum_c |w_c| d_k(c) / 2 (plus float rounding) of EXACT. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "products/products.h"
#include "qtensor/format_vq.h"
#include "simd/kern_vq8.h"
#include "test_common.h"

static lq_qtensor *make_vq(unsigned dim, unsigned ibits, size_t gcols, size_t grows, unsigned cbits,
                           size_t rows, size_t cols, uint64_t seed)
{
    float *W = malloc(rows * cols * sizeof(float));
    ck_assert(W);
    lq_test_fill_gaussian(W, rows * cols, 1.0f, seed);
    lq_method m;
    ck_assert_int_eq(lq_method_init(&m, LQ_METHOD_GPTVQ), LQ_OK);
    m.engine.rtn = 1;
    m.u.gptvq.dim = dim;
    m.u.gptvq.index_bits = ibits;
    m.u.gptvq.group_cols = gcols;
    m.u.gptvq.group_rows = grows;
    m.u.gptvq.codebook_bits = cbits;
    m.u.gptvq.em_iters = 3;
    lq_ctx *ctx = lq_test_ctx(1, LQ_SIMD_AUTO);
    lq_qtensor *t = NULL;
    ck_assert_int_eq(lq_quantize(ctx, W, rows, cols, NULL, &m, &t, NULL), LQ_OK);
    lq_ctx_destroy(ctx);
    free(W);
    ck_assert_int_eq(t->format, LQ_FORMAT_VQ);
    return t;
}

static const lq_vq_kpack *get_pack(const lq_qtensor *t)
{
    ck_assert_int_eq(lq_qtensor_prepare(NULL, t), LQ_OK);
    const void *pk = NULL;
    ck_assert_int_eq(lq_kern_pack(t, lq_kern_lookup(LQ_FORMAT_VQ), &pk), LQ_OK);
    ck_assert_ptr_nonnull(pk);
    return pk;
}

static size_t levels(lq_simd_level *lv)
{
    size_t n = 0;
    lv[n++] = LQ_SIMD_SCALAR;
    lq_simd_level det = lq_simd_detected();
    if (det == LQ_SIMD_NEON) {
        lv[n++] = LQ_SIMD_NEON;
        return n;
    }
    for (int l = LQ_SIMD_AVX2; l <= LQ_SIMD_AVX512; l++)
        if ((lq_simd_level)l <= det) lv[n++] = (lq_simd_level)l;
    return n;
}

/* The formula of kern_vq8.h for row r of vector x, from the stored layout;
 * *bound = sum_c |w_c| d_k / 2. */
static float formula(const lq_qtensor *t, const float *x, size_t r, double *bound)
{
    lq_vq_layout v;
    ck_assert_int_eq(lq_vq_layout_read(t, &v), LQ_OK);
    float y = 0.0f;
    double bd = 0;
    for (size_t g = 0; g < v.ncg; g++) {
        size_t book = lq_vq_layout_book(&v, r / v.gr, g);
        float f = 0.0f;
        for (size_t k = g * v.gc / 32; k < (g + 1) * v.gc / 32 && k < v.cols / 32; k++) {
            int8_t q8[32];
            int32_t qs;
            float dk = lq_kern_q8_block(x + 32 * k, 32, q8, &qs);
            int32_t isum = 0;
            for (size_t c = 32 * k; c < 32 * k + 32; c++) {
                unsigned code = lq_vq_layout_code(&v, r, c / v.d);
                int w8 = (int8_t)v.cb[book * v.K * v.d + code * v.d + c % v.d];
                isum += w8 * q8[c - 32 * k];
                bd += fabs((double)lq_vq_layout_value(&v, book, code * v.d + c % v.d)) * dk / 2;
            }
            f = f + (float)isum * dk;
        }
        y = y + f * lq_vq_f32_at(v.scales, book);
    }
    *bound = bd;
    return y;
}

static void check(const lq_qtensor *t, int expect_q8)
{
    const size_t rows = t->rows, cols = t->cols, maxb = 64;
    const lq_vq_kpack *k = get_pack(t);
    ck_assert_msg((k->q8 != NULL) == expect_q8, "q8 %d expected %d (%zu x %zu, lut %d)",
                  k->q8 != NULL, expect_q8, rows, cols, k->lut != NULL);
    float *X = malloc(maxb * cols * sizeof(float));
    float *Yf = malloc(maxb * rows * sizeof(float)), *Ye = malloc(maxb * rows * sizeof(float));
    float *Y = malloc(maxb * rows * sizeof(float));
    ck_assert(X && Yf && Ye && Y);
    lq_test_fill_gaussian(X, maxb * cols, 1.0f, 77);
    for (size_t i = 0; i < cols; i += 7) X[i] *= 30.0f; /* outliers: blocks of unequal scales */
    lq_ctx *c0 = lq_test_ctx(1, LQ_SIMD_SCALAR);
    ck_assert_int_eq(lq_matmul_ex(c0, t, X, maxb, Yf, LQ_KERNEL_FAST), LQ_OK);
    ck_assert_int_eq(lq_matmul_ex(c0, t, X, maxb, Ye, LQ_KERNEL_EXACT), LQ_OK);
    lq_ctx_destroy(c0);
    if (expect_q8)
        for (size_t b = 0; b < maxb; b += 13)
            for (size_t r = 0; r < rows; r++) {
                double bd;
                float y = formula(t, X + b * cols, r, &bd);
                ck_assert_msg(!memcmp(&y, &Yf[b * rows + r], sizeof y), "formula r%zu b%zu", r, b);
                double e = fabs((double)Yf[b * rows + r] - (double)Ye[b * rows + r]);
                ck_assert_msg(e <= bd * (1 + 1e-5) + 1e-4 * (fabs((double)Ye[b * rows + r]) + bd),
                              "bound r%zu b%zu: %g > %g", r, b, e, bd);
            }
    else
        ck_assert(!memcmp(Yf, Ye, maxb * rows * sizeof(float)));
    lq_simd_level lv[4];
    size_t nl = levels(lv);
    static const size_t batches[] = {1, 2, 3, 5, 8, 9, 16, 17, 64};
    for (size_t l = 0; l < nl; l++)
        for (size_t th = 1; th <= 2; th++) {
            lq_ctx *c = lq_test_ctx(th, lv[l]);
            lq_kern_plan plan;
            lq_kern_plan_for(c, t, LQ_KERNEL_FAST, &plan);
            ck_assert_ptr_nonnull(plan.rows);
            ck_assert_int_eq(plan.rows_level, lv[l]);
            for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
                size_t batch = batches[bi];
                memset(Y, 0xff, batch * rows * sizeof(float));
                ck_assert_int_eq(lq_matmul_ex(c, t, X, batch, Y, LQ_KERNEL_FAST), LQ_OK);
                for (size_t i = 0; i < batch * rows; i++)
                    ck_assert_msg(!memcmp(&Y[i], &Yf[i], sizeof(float)),
                                  "%s th%zu b%zu at %zu: %.9g vs scalar %.9g", lq_simd_name(lv[l]),
                                  th, batch, i, (double)Y[i], (double)Yf[i]);
            }
            lq_ctx_destroy(c);
        }
    free(X);
    free(Yf);
    free(Ye);
    free(Y);
}

START_TEST(int8_path_on_method_layouts)
{
    static const struct {
        unsigned dim, ibits;
        size_t gc, gr;
        unsigned cbits;
        size_t rows, cols;
        int q8;
    } cs[] = {
        {2, 4, 256, 8, 8, 37, 512, 1},  /* GPTVQ default (preset 2 x 2 bits) */
        {2, 4, 64, 8, 8, 50, 192, 1},   /* narrower groups */
        {1, 3, 256, 2, 8, 37, 288, 1},  /* preset 1 x 3 bits: 8 row blocks per tile */
        {1, 2, 32, 1, 8, 17, 96, 1},    /* preset 1 x 2 bits: a block per row */
        {1, 4, 128, 4, 8, 33, 256, 1},  /* preset 1 x 4 bits */
        {4, 4, 64, 16, 8, 40, 128, 1},  /* d 4: one 64-byte codebook per tile */
        {1, 2, 64, 3, 8, 29, 256, 1},   /* row blocks not aligned to tiles */
        {2, 4, 256, 4, 8, 20, 256, 0},  /* 4 blocks x 32 bytes per tile: too big */
        {2, 4, 256, 8, 16, 37, 256, 0}, /* half codebooks */
        {2, 4, 48, 8, 8, 21, 96, 0},    /* groups not multiples of 32 */
        {2, 6, 256, 32, 8, 40, 256, 0}, /* 64 entries */
    };
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        lq_qtensor *t = make_vq(cs[c].dim, cs[c].ibits, cs[c].gc, cs[c].gr, cs[c].cbits, cs[c].rows,
                                cs[c].cols, 300 + c);
        check(t, cs[c].q8);
        lq_qtensor_free(t);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vq_kernel");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, int8_path_on_method_layouts);
    suite_add_tcase(s, tc);
    return lq_test_run(s);
}
