/* The E8P kernels (simd/kern_e8p.h) on tensors the method emits
 * (LQ_METHOD_NESTQUANT with the E8P codebook).
 *
 * Properties:
 *  - the layout takes exactly 34 bytes per 16 rows x 8 columns plus 64
 *    bytes of scales per 16 rows and group, and every lane decodes to the
 *    stored codeword: k_i = 4 y_i for every (row, vector), scales as stored;
 *  - EXACT at every level the machine has equals the format's reference
 *    product bit for bit, for odd shapes, groups, with and without the
 *    rotation, batch 1..64, 1 and 2 threads, and for activations spanning
 *    a wide exponent range (where a different summation order would show);
 *  - FAST at every level equals the scalar FAST kernel bit for bit and is
 *    within the documented bound of the reference:
 *    sum_j |s| sum_i |y_i| dx_j / 2 plus float rounding;
 *  - lq_qtensor_prepare builds the layout and the products take the kernel
 *    (not the reference) at every level. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lattice/lattice_internal.h"
#include "products/products.h"
#include "qtensor/format_e8p.h"
#include "simd/kern_e8p.h"
#include "test_common.h"

static lq_qtensor *make_e8p(size_t group, int had, size_t rows, size_t cols, uint64_t seed)
{
    float *W = malloc(rows * cols * sizeof(float));
    ck_assert(W);
    lq_test_fill_gaussian(W, rows * cols, 1.0f, seed);
    lq_method m;
    ck_assert_int_eq(lq_method_init(&m, LQ_METHOD_NESTQUANT), LQ_OK);
    m.engine.rtn = 1;
    m.u.nestquant.codebook = LQ_NQ_CODEBOOK_E8P;
    m.u.nestquant.group = group;
    m.u.nestquant.hadamard = had;
    lq_ctx *ctx = lq_test_ctx(1, LQ_SIMD_AUTO);
    lq_qtensor *t = NULL;
    ck_assert_int_eq(lq_quantize(ctx, W, rows, cols, NULL, &m, &t, NULL), LQ_OK);
    lq_ctx_destroy(ctx);
    free(W);
    ck_assert_int_eq(t->format, LQ_FORMAT_E8P);
    return t;
}

static const lq_e8p_pack *get_pack(const lq_qtensor *t)
{
    ck_assert_int_eq(lq_qtensor_prepare(NULL, t), LQ_OK);
    const void *pk = NULL;
    ck_assert_int_eq(lq_kern_pack(t, lq_kern_lookup(LQ_FORMAT_E8P), &pk), LQ_OK);
    ck_assert_ptr_nonnull(pk);
    return pk;
}

static void check_fields(const lq_qtensor *t)
{
    lq_e8p_layout L;
    ck_assert_int_eq(lq_e8p_layout_of(t, &L), LQ_OK);
    const lq_e8p_pack *p = get_pack(t);
    size_t ntiles = (L.rows + 15) / 16;
    ck_assert_uint_eq(lq_e8p_pack_bytes(p), ntiles * (L.nblk * 34 + L.ngroups * 64));
    for (size_t r = 0; r < L.rows; r++) {
        const uint8_t *tb = p->blocks + (r / 16) * p->nvec * LQ_E8P_BLOCK;
        for (size_t j = 0; j < L.nblk; j++) {
            float y[8];
            lq_e8p_point(L.codes[r * L.nblk + j], y);
            uint64_t v = lq_e8p_lane(p, tb + j * LQ_E8P_BLOCK, (unsigned)(r % 16));
            for (unsigned i = 0; i < 8; i++)
                ck_assert_msg((float)lq_e8p_k((unsigned)(v >> (8 * i)) & 15u) == 4.0f * y[i],
                              "r%zu j%zu i%u", r, j, i);
        }
        for (size_t g = 0; g < L.ngroups; g++)
            ck_assert(p->scale[((r / 16) * p->ngroups + g) * 16 + r % 16] ==
                      L.scales[r * L.ngroups + g]);
    }
}

START_TEST(layout_matches_codes)
{
    static const size_t shapes[][2] = {{37, 100}, {16, 64}, {1, 8}, {50, 13}};
    static const size_t groups[] = {0, 8, 24};
    for (size_t s = 0; s < 4; s++)
        for (size_t g = 0; g < 3; g++) {
            if (groups[g] > (shapes[s][1] + 7) / 8 * 8) continue;
            lq_qtensor *t =
                make_e8p(groups[g], (int)(g % 2), shapes[s][0], shapes[s][1], 7 * s + g);
            check_fields(t);
            lq_qtensor_free(t);
        }
}
END_TEST

/* The machine's levels in increasing order (NEON is tested by scripts/neon.sh). */
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

/* FAST bound against the reference for row r, vector b (kern_e8p.h). */
static double fast_bound(const lq_qtensor *t, const float *X, size_t b, size_t r)
{
    lq_e8p_layout L;
    ck_assert_int_eq(lq_e8p_layout_of(t, &L), LQ_OK);
    float *x = calloc(L.n8, sizeof(float));
    ck_assert(x);
    memcpy(x, X + b * L.cols, L.cols * sizeof(float));
    if (L.hadamard) ck_assert_int_eq(lq_rht_forward(x, L.n8, L.seed), LQ_OK);
    double q = 0, mag = 0;
    for (size_t j = 0; j < L.nblk; j++) {
        float y[8];
        lq_e8p_point(L.codes[r * L.nblk + j], y);
        double s = fabs((double)L.scales[r * L.ngroups + 8 * j / L.group]), amax = 0, ay = 0;
        for (int i = 0; i < 8; i++) {
            amax = fmax(amax, fabs((double)x[8 * j + i]));
            ay += fabs((double)y[i]);
            mag += s * fabs((double)y[i] * x[8 * j + i]);
        }
        q += s * ay * amax / 254.0;
    }
    free(x);
    return q * (1.0 + 1e-5) + 1e-5 * (mag + q) + 1e-30;
}

static void check_products(const lq_qtensor *t, const float *X, size_t maxb)
{
    const size_t rows = t->rows;
    const lq_format_traits *tr = lq_format_lookup(LQ_FORMAT_E8P);
    float *Yr = malloc(maxb * rows * sizeof(float)), *Yf = malloc(maxb * rows * sizeof(float));
    float *Y = malloc(maxb * rows * sizeof(float));
    ck_assert(Yr && Yf && Y);
    ck_assert_int_eq(tr->matmul_rows(t, X, maxb, Yr, 0, rows, LQ_SIMD_SCALAR), LQ_OK);
    lq_simd_level lv[4];
    size_t nl = levels(lv);
    static const size_t batches[] = {1, 2, 3, 5, 8, 9, 16, 17, 33, 64};
    for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
        size_t batch = batches[bi];
        if (batch > maxb) break;
        lq_ctx *c0 = lq_test_ctx(1, LQ_SIMD_SCALAR);
        ck_assert_int_eq(lq_matmul_ex(c0, t, X, batch, Yf, LQ_KERNEL_FAST), LQ_OK);
        lq_ctx_destroy(c0);
        for (size_t b = 0; b < batch; b++)
            for (size_t r = 0; r < rows; r++) {
                double e = fabs((double)Yf[b * rows + r] - (double)Yr[r + b * rows]);
                ck_assert_msg(e <= fast_bound(t, X, b, r), "fast r%zu b%zu: %g vs %g (bound %g)", r,
                              b, (double)Yf[b * rows + r], (double)Yr[b * rows + r],
                              fast_bound(t, X, b, r));
            }
        for (size_t l = 0; l < nl; l++)
            for (size_t th = 1; th <= 2; th++) {
                lq_ctx *c = lq_test_ctx(th, lv[l]);
                lq_kern_plan plan;
                lq_kern_plan_for(c, t, LQ_KERNEL_EXACT, &plan);
                ck_assert_ptr_nonnull(plan.rows);
                ck_assert_int_eq(plan.rows_level, lv[l]);
                lq_kern_plan_for(c, t, LQ_KERNEL_FAST, &plan);
                ck_assert_int_eq(plan.mode, LQ_KERNEL_FAST);
                ck_assert_int_eq(plan.rows_level, lv[l]);
                memset(Y, 0xff, batch * rows * sizeof(float));
                ck_assert_int_eq(lq_matmul(c, t, X, batch, Y), LQ_OK);
                for (size_t i = 0; i < batch * rows; i++)
                    ck_assert_msg(!memcmp(&Y[i], &Yr[i], sizeof(float)),
                                  "exact %s th%zu b%zu at %zu: %.9g vs reference %.9g",
                                  lq_simd_name(lv[l]), th, batch, i, (double)Y[i], (double)Yr[i]);
                memset(Y, 0xff, batch * rows * sizeof(float));
                ck_assert_int_eq(lq_matmul_ex(c, t, X, batch, Y, LQ_KERNEL_FAST), LQ_OK);
                for (size_t i = 0; i < batch * rows; i++)
                    ck_assert_msg(!memcmp(&Y[i], &Yf[i], sizeof(float)),
                                  "fast %s th%zu b%zu at %zu: %.9g vs scalar %.9g",
                                  lq_simd_name(lv[l]), th, batch, i, (double)Y[i], (double)Yf[i]);
                lq_ctx_destroy(c);
            }
    }
    free(Yr);
    free(Yf);
    free(Y);
}

START_TEST(products_match_reference)
{
    static const struct {
        size_t rows, cols, group;
        int had;
    } cs[] = {
        {37, 100, 0, 1},  {37, 100, 16, 0}, {17, 64, 24, 1}, {1, 13, 0, 0},
        {50, 200, 40, 1}, {16, 8, 8, 0},    {33, 72, 72, 1},
    };
    const size_t maxb = 64;
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        lq_qtensor *t = make_e8p(cs[c].group, cs[c].had, cs[c].rows, cs[c].cols, 100 + c);
        float *X = malloc(maxb * cs[c].cols * sizeof(float));
        ck_assert(X);
        lq_test_fill_gaussian(X, maxb * cs[c].cols, 1.0f, 200 + c);
        check_products(t, X, maxb);
        free(X);
        lq_qtensor_free(t);
    }
}
END_TEST

/* Activations over a wide exponent range (and zeros, negative zeros): the
 * double sums round at every step, so only the reference's operations in
 * the reference's order reproduce it. */
START_TEST(wide_range_activations)
{
    const size_t rows = 35, cols = 96, maxb = 9;
    for (int had = 0; had < 2; had++) {
        lq_qtensor *t = make_e8p(32, had, rows, cols, 31 + (uint64_t)had);
        float *X = malloc(maxb * cols * sizeof(float));
        ck_assert(X);
        lq_test_fill_gaussian(X, maxb * cols, 1.0f, 41);
        uint64_t s = 99;
        for (size_t i = 0; i < maxb * cols; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            int e = (int)((s >> 33) % 60) - 30;
            X[i] = ldexpf(X[i], e);
            if ((s >> 20) % 13 == 0) X[i] = (s >> 25) % 2 ? 0.0f : -0.0f;
        }
        check_products(t, X, maxb);
        free(X);
        lq_qtensor_free(t);
    }
}
END_TEST

/* Products that cancel to ~1e-12 of their terms: rows whose 8-vectors come
 * in equal pairs (equal codes, one scale) against activation pairs x and
 * -x + tiny, so that the double rounding residues of the terms show in the
 * float result, and any other rounding (a fused s d + acc, another
 * summation order) changes it. */
START_TEST(cancelling_products)
{
    const size_t rows = 37, cols = 128, maxb = 17;
    for (size_t gi = 0; gi < 2; gi++) {
        float *W = malloc(rows * cols * sizeof(float)), *X = malloc(maxb * cols * sizeof(float));
        float *N = malloc(maxb * cols * sizeof(float));
        ck_assert(W && X && N);
        lq_test_fill_gaussian(W, rows * cols, 1.0f, 5 + gi);
        lq_test_fill_gaussian(X, maxb * cols, 1.0f, 6 + gi);
        lq_test_fill_gaussian(N, maxb * cols, 1.0f, 7 + gi);
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 8; c < cols; c += 16)
                memcpy(W + r * cols + c, W + r * cols + c - 8, 32);
        for (size_t b = 0; b < maxb; b++)
            for (size_t c = 8; c < cols; c += 16) {
                /* the pair's sums: d and -d + k_7 n 2^-40 (coordinate 7 of the first is 0) */
                for (size_t i = 0; i < 7; i++) X[b * cols + c + i] = -X[b * cols + c - 8 + i];
                X[b * cols + c - 1] = 0.0f;
                X[b * cols + c + 7] = ldexpf(N[b * cols + c + 7], -40);
            }
        lq_method m;
        ck_assert_int_eq(lq_method_init(&m, LQ_METHOD_NESTQUANT), LQ_OK);
        m.engine.rtn = 1;
        m.u.nestquant.codebook = LQ_NQ_CODEBOOK_E8P;
        m.u.nestquant.group = gi ? 16 : 0;
        m.u.nestquant.hadamard = 0;
        lq_ctx *ctx = lq_test_ctx(1, LQ_SIMD_AUTO);
        lq_qtensor *t = NULL;
        ck_assert_int_eq(lq_quantize(ctx, W, rows, cols, NULL, &m, &t, NULL), LQ_OK);
        lq_ctx_destroy(ctx);
        lq_e8p_layout L;
        ck_assert_int_eq(lq_e8p_layout_of(t, &L), LQ_OK);
        for (size_t r = 0; r < rows; r++)
            for (size_t j = 1; j < L.nblk; j += 2)
                ck_assert_uint_eq(L.codes[r * L.nblk + j], L.codes[r * L.nblk + j - 1]);
        check_products(t, X, maxb);
        lq_qtensor_free(t);
        free(W);
        free(X);
        free(N);
    }
}
END_TEST

static Suite *e8pk_suite(void)
{
    Suite *s = suite_create("e8p_kernel");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, layout_matches_codes);
    tcase_add_test(tc, products_match_reference);
    tcase_add_test(tc, wide_range_activations);
    tcase_add_test(tc, cancelling_products);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return lq_test_run(e8pk_suite()); }
