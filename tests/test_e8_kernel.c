/* The E8 kernel layout (simd/kern_e8.h) on the codes the method emits.
 *
 * Properties:
 *  - for q <= 32 and K <= 8 the layout is built (no fallback) and takes
 *    exactly (64 + 16 [q > 8] + 16 [q > 16] + 8) bytes per 16 rows x 8
 *    columns plus the scales: 4.5, 5.5 or 6.5 bits/weight + 32/group;
 *  - every field decodes to the stored codeword: for every (row, vector),
 *    u_i = 2q - s - 2 f_i equals sigma * 2 decode(code)_i (sigma = +-1 per
 *    tensor, the sign of the kernel's beta / 2 = sigma * beta / 2) and the
 *    beta index is the stored one;
 *  - the codeword of the class of q e_0 (the one codeword with a
 *    coordinate +-q in the tie-broken code, even q) is representable: a tensor
 *    made of it through the format's writer is packed and its products at
 *    every level equal the scalar kernel bit for bit (FAST and EXACT) and
 *    the format's reference within float rounding (EXACT);
 *  - on odd shapes (rows not a multiple of 16, partial groups) and every
 *    batch size 1..64, both modes at every level and thread count give the
 *    scalar kernel's bits, and vector b of a batch gives the bits of the
 *    same vector alone (the batch kernels reuse decoded blocks);
 *  - q > 32 and K > 8 have no layout (LQ_ERR_UNSUPPORTED: the reference
 *    product serves them). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lattice/lattice_internal.h"
#include "products/products.h"
#include "qtensor/format_e8.h"
#include "qtensor/qtensor_internal.h"
#include "simd/kern_e8.h"
#include "test_common.h"

static lq_qtensor *make_nq(unsigned q, unsigned K, size_t group, int had, size_t rows, size_t cols,
                           uint64_t seed)
{
    float *W = malloc(rows * cols * sizeof(float));
    ck_assert(W);
    lq_test_fill_gaussian(W, rows * cols, 1.0f, seed);
    lq_method m;
    ck_assert_int_eq(lq_method_init(&m, LQ_METHOD_NESTQUANT), LQ_OK);
    m.engine.rtn = 1;
    m.u.nestquant.q = q;
    m.u.nestquant.n_betas = K;
    m.u.nestquant.group = group;
    m.u.nestquant.hadamard = had;
    lq_ctx *ctx = lq_test_ctx(1, LQ_SIMD_AUTO);
    lq_qtensor *t = NULL;
    ck_assert_int_eq(lq_quantize(ctx, W, rows, cols, NULL, &m, &t, NULL), LQ_OK);
    lq_ctx_destroy(ctx);
    free(W);
    return t;
}

/* Every field of the pack against the stored codes. */
static void check_fields(const lq_qtensor *t)
{
    lq_e8_layout L;
    ck_assert_int_eq(lq_e8_layout_of(t, &L), LQ_OK);
    const lq_kern_format *kf = lq_kern_lookup(LQ_FORMAT_E8);
    const void *pk;
    ck_assert_int_eq(lq_qtensor_prepare(NULL, (lq_qtensor *)(uintptr_t)t), LQ_OK);
    ck_assert_int_eq(lq_kern_pack(t, kf, &pk), LQ_OK);
    const lq_e8_pack *p = pk;
    size_t ntiles = (L.rows + 15) / 16;
    size_t expect =
        ntiles * (L.nblk * (64 + (L.q > 8 ? 16 : 0) + (L.q > 16 ? 16 : 0) + 8) + L.ngroups * 64);
    ck_assert_uint_eq(lq_e8_pack_bytes(p), expect);
    const lq_lattice_kernels *k = lq_lattice_kernels_at(LQ_SIMD_SCALAR);
    /* the layout stores the fields of sigma * y, sigma = sign of beta / 2 */
    float sigma = p->hb[0] < 0 ? -1.0f : 1.0f;
    for (unsigned i = 0; i < L.K; i++) ck_assert(p->hb[i] == sigma * 0.5f * L.betas[i]);
    for (size_t r = 0; r < L.rows; r++)
        for (size_t j = 0; j < L.nblk; j++) {
            uint8_t c[8];
            float y[8];
            ck_assert(lq_voronoi_from_index(L.q, lq_e8_layout_code(&L, r, j), c));
            lq_voronoi_decode_batch(k, L.q, c, 1, y);
            const uint8_t *blk = p->blocks + ((r / 16) * p->nvec + j) * p->block;
            unsigned meta = lq_e8_meta(blk + p->block - 8, (unsigned)(r % 16));
            ck_assert_uint_eq(meta >> 1, lq_e8_layout_beta(&L, r, j));
            for (unsigned i = 0; i < 8; i++) {
                int u = 2 * (int)L.q - (int)(meta & 1u) -
                        2 * (int)lq_e8_field(p, blk, (unsigned)(r % 16), i);
                ck_assert_msg((float)u == sigma * 2.0f * y[i], "q%u r%zu j%zu i%u: %d vs %g", L.q,
                              r, j, i, u, 2.0 * y[i]);
            }
        }
}

START_TEST(layout_matches_codes)
{
    static const unsigned qs[] = {2, 3, 4, 5, 6, 7, 8, 9, 14, 16, 17, 24, 31, 32};
    static const unsigned Ks[] = {1, 2, 4, 8};
    for (size_t a = 0; a < sizeof qs / sizeof qs[0]; a++)
        for (size_t b = 0; b < sizeof Ks / sizeof Ks[0]; b++) {
            lq_qtensor *t =
                make_nq(qs[a], Ks[b], b % 2 ? 16 : 0, (int)(a % 2), 37, 100, 10 * a + b);
            check_fields(t);
            lq_qtensor_free(t);
        }
}
END_TEST

START_TEST(no_layout_beyond_limits)
{
    const lq_kern_format *kf = lq_kern_lookup(LQ_FORMAT_E8);
    const void *pk;
    lq_qtensor *t = make_nq(33, 2, 0, 0, 20, 40, 3);
    ck_assert_int_eq(lq_kern_pack(t, kf, &pk), LQ_ERR_UNSUPPORTED);
    lq_qtensor_free(t);
    t = make_nq(8, 9, 0, 0, 20, 40, 4);
    ck_assert_int_eq(lq_kern_pack(t, kf, &pk), LQ_ERR_UNSUPPORTED);
    lq_qtensor_free(t);
}
END_TEST

/* A tensor whose every vector is the codeword q e_0 (or, alternately, a
 * random code), written through the format's writer. */
static lq_qtensor *make_edge(unsigned q, size_t rows, size_t cols)
{
    float betas[2] = {0.5f, 1.25f};
    lq_e8_params prm = {q, 2, 16, 0, 0, betas};
    lq_e8_layout L;
    lq_qtensor *t;
    lq_ctx *ctx = lq_test_ctx(1, LQ_SIMD_AUTO);
    ck_assert_int_eq(lq_e8_layout_write(ctx, rows, cols, &prm, &t, &L), LQ_OK);
    lq_ctx_destroy(ctx);
    float e0[8] = {(float)q, 0, 0, 0, 0, 0, 0, 0};
    uint8_t ce[8];
    ck_assert(lq_voronoi_coords(q, e0, ce));
    float y[8];
    lq_voronoi_decode_batch(lq_lattice_kernels_at(LQ_SIMD_SCALAR), q, ce, 1, y);
    float ym = 0; /* the class of q e_0: one codeword with a coordinate +-q */
    for (int i = 0; i < 8; i++) ym = fabsf(y[i]) > ym ? fabsf(y[i]) : ym;
    ck_assert_msg(ym == (float)q, "q%u: %g", q, (double)ym);
    uint64_t rng = 12345;
    uint8_t *codes = (uint8_t *)(uintptr_t)L.codes, *bid = (uint8_t *)(uintptr_t)L.bidx;
    for (size_t v = 0; v < rows * L.nblk; v++) {
        uint8_t c[8];
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        if (v % 2 == 0)
            memcpy(c, ce, 8);
        else
            for (int i = 0; i < 8; i++) c[i] = (uint8_t)((rng >> (8 * i)) % q);
        lq_bits_put(codes, v * L.cbits, L.cbits, lq_voronoi_index(q, c));
        lq_bits_put(bid, v * L.ibits, L.ibits, (rng >> 60) & 1u);
    }
    float *sc = (float *)(uintptr_t)L.scales;
    for (size_t i = 0; i < rows * L.ngroups; i++) sc[i] = 0.01f * (float)(1 + i % 7);
    return t;
}

START_TEST(edge_codeword_products)
{
    static const unsigned qs[] = {4, 6, 8, 14, 16, 18, 32};
    const size_t rows = 35, cols = 72, maxb = 9;
    float *X = malloc(maxb * cols * sizeof(float));
    float *Y0 = malloc(maxb * rows * sizeof(float)), *Y = malloc(maxb * rows * sizeof(float));
    float *Yr = malloc(maxb * rows * sizeof(float)), *Ye = malloc(maxb * rows * sizeof(float));
    lq_test_fill_gaussian(X, maxb * cols, 1.0f, 77);
    for (size_t a = 0; a < sizeof qs / sizeof qs[0]; a++) {
        lq_qtensor *t = make_edge(qs[a], rows, cols);
        ck_assert_int_eq(lq_qtensor_validate(t), LQ_OK);
        check_fields(t);
        for (size_t batch = 1; batch <= maxb; batch += 4) {
            lq_ctx *c0 = lq_test_ctx(1, LQ_SIMD_SCALAR);
            ck_assert_int_eq(lq_matmul_ex(c0, t, X, batch, Y0, LQ_KERNEL_FAST), LQ_OK);
            ck_assert_int_eq(lq_matmul_ex(c0, t, X, batch, Ye, LQ_KERNEL_EXACT), LQ_OK);
            lq_ctx_destroy(c0);
            /* the format's reference product (no kernel layout) */
            ck_assert_int_eq(lq_format_lookup(LQ_FORMAT_E8)
                                 ->matmul_rows(t, X, batch, Yr, 0, rows, LQ_SIMD_SCALAR),
                             LQ_OK);
            for (size_t i = 0; i < batch * rows; i++)
                ck_assert_msg(fabsf(Ye[i] - Yr[i]) <= 1e-4f * (1.0f + fabsf(Yr[i])),
                              "q%u exact %g vs %g", qs[a], Ye[i], Yr[i]);
            for (int lv = LQ_SIMD_SCALAR; lv <= LQ_SIMD_AVX512; lv++) {
                if ((lq_simd_level)lv > lq_simd_detected()) break;
                for (size_t th = 1; th <= 2; th++) {
                    lq_ctx *c = lq_test_ctx(th, (lq_simd_level)lv);
                    ck_assert_int_eq(lq_matmul_ex(c, t, X, batch, Y, LQ_KERNEL_FAST), LQ_OK);
                    ck_assert(!memcmp(Y, Y0, batch * rows * sizeof(float)));
                    ck_assert_int_eq(lq_matmul_ex(c, t, X, batch, Y, LQ_KERNEL_EXACT), LQ_OK);
                    ck_assert_msg(!memcmp(Y, Ye, batch * rows * sizeof(float)),
                                  "q%u b%zu level %d: exact differs from scalar", qs[a], batch, lv);
                    lq_ctx_destroy(c);
                }
            }
        }
        lq_qtensor_free(t);
    }
    free(X);
    free(Y0);
    free(Y);
    free(Yr);
    free(Ye);
}
END_TEST

/* Odd shapes and every batch 1..64: every level and thread count gives the
 * scalar kernel's bits in both modes, and each vector of a batch the bits of
 * that vector alone. */
START_TEST(batches_match_scalar)
{
    static const struct {
        unsigned q, K;
        size_t group, rows, cols;
        int had;
    } cs[] = {
        {16, 4, 0, 37, 200, 1},   /* default, rows % 16 = 5, cols padded */
        {14, 4, 16, 50, 72, 0},   /* 4-bit preset, 5 groups */
        {8, 8, 64, 19, 130, 1},   /* q <= 8 (no hi plane), partial last group */
        {3, 2, 24, 16, 48, 0},    /* odd q, group of 3 vectors */
        {9, 1, 0, 7, 8, 0},       /* one 8-vector, one partial tile */
        {16, 8, 0, 33, 520, 1},   /* 65 vectors in one group: EXACT chunks 32 + 32 + 1 */
        {16, 2, 136, 21, 408, 0}, /* groups of 17 vectors: AVX2 chunks 16 + 1 */
        {32, 4, 0, 37, 136, 1},   /* q = 32: the hi2 plane */
        {21, 8, 16, 18, 64, 0}    /* odd q > 16, groups */
    };
    const size_t maxb = 64;
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        lq_qtensor *t =
            make_nq(cs[c].q, cs[c].K, cs[c].group, cs[c].had, cs[c].rows, cs[c].cols, 900 + c);
        size_t rows = cs[c].rows, cols = cs[c].cols;
        const void *pk; /* the kernels run on the layout, not the reference */
        ck_assert_int_eq(lq_kern_pack(t, lq_kern_lookup(LQ_FORMAT_E8), &pk), LQ_OK);
        float *X = malloc(maxb * cols * sizeof(float));
        float *Y = malloc(maxb * rows * sizeof(float)), *Y1 = malloc(rows * sizeof(float));
        float *R[2] = {malloc(maxb * rows * sizeof(float)), malloc(maxb * rows * sizeof(float))};
        lq_test_fill_gaussian(X, maxb * cols, 1.0f, 31 + c);
        lq_ctx *c0 = lq_test_ctx(1, LQ_SIMD_SCALAR);
        for (int md = 0; md < 2; md++) {
            lq_kernel_mode mode = md ? LQ_KERNEL_FAST : LQ_KERNEL_EXACT;
            ck_assert_int_eq(lq_matmul_ex(c0, t, X, maxb, R[md], mode), LQ_OK);
            /* vector b alone = vector b of the batch (scalar) */
            for (size_t b = 0; b < maxb; b += 9) {
                ck_assert_int_eq(lq_matmul_ex(c0, t, X + b * cols, 1, Y1, mode), LQ_OK);
                ck_assert(!memcmp(Y1, R[md] + b * rows, rows * sizeof(float)));
            }
        }
        lq_ctx_destroy(c0);
        for (int lv = LQ_SIMD_AVX2; lv <= LQ_SIMD_AVX512; lv++) {
            if ((lq_simd_level)lv > lq_simd_detected() || lq_simd_detected() == LQ_SIMD_NEON) break;
            for (size_t th = 1; th <= 2; th++) {
                lq_ctx *ctx = lq_test_ctx(th, (lq_simd_level)lv);
                for (size_t batch = 1; batch <= maxb; batch += (batch < 20 ? 1 : 7))
                    for (int md = 0; md < 2; md++) {
                        lq_kernel_mode mode = md ? LQ_KERNEL_FAST : LQ_KERNEL_EXACT;
                        ck_assert_int_eq(lq_matmul_ex(ctx, t, X, batch, Y, mode), LQ_OK);
                        ck_assert_msg(!memcmp(Y, R[md], batch * rows * sizeof(float)),
                                      "case %zu level %d t%zu b%zu %s differs from scalar", c, lv,
                                      th, batch, md ? "fast" : "exact");
                    }
                lq_ctx_destroy(ctx);
            }
        }
        lq_qtensor_free(t);
        free(X);
        free(Y);
        free(Y1);
        free(R[0]);
        free(R[1]);
    }
}
END_TEST

static Suite *e8k_suite(void)
{
    Suite *s = suite_create("e8_kernel");
    TCase *tc = tcase_create("layout");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, layout_matches_codes);
    tcase_add_test(tc, no_layout_beyond_limits);
    tcase_add_test(tc, edge_codeword_products);
    tcase_add_test(tc, batches_match_scalar);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return lq_test_run(e8k_suite()); }
