/* Lattice codes beyond the nearest point: the exact (optimal) Voronoi
 * encoder against brute force over the whole codebook, the NestQuant beta
 * selection rules (FIRST, BEST, EXHAUSTIVE) as properties on every vector,
 * and the E8P codebook. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lattice/lattice_internal.h"
#include "test_common.h"

static const lq_simd_level g_levels[] = {LQ_SIMD_SCALAR, LQ_SIMD_AVX2, LQ_SIMD_AVX512};
#define NLEVELS 3

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    return p;
}

static double err8(const float *x, const float *y)
{
    double s = 0;
    for (int k = 0; k < 8; k++) {
        double r = (double)y[k] - (double)x[k];
        s += r * r;
    }
    return s;
}

/* Test vectors of every kind the encoders meet: Gaussian, Student-t (nu =
 * 3), a few huge outliers, exact lattice points and boundary ties (scaled
 * half-integers), and zeros. */
static void fill_mixed(float *x, size_t n, uint64_t seed)
{
    size_t a = n / 2, b = n / 4;
    lq_test_fill_gaussian(x, 8 * a, 1.0f, seed);
    lq_test_fill_student(x + 8 * a, 8 * b, 3, 1.0f, seed + 1);
    float *r = x + 8 * (a + b);
    size_t rest = n - a - b;
    lq_test_fill_uniform(r, 8 * rest, -4.0f, 4.0f, seed + 2);
    for (size_t i = 0; i < rest; i++) {
        float *v = r + 8 * i;
        switch (i % 5) {
        case 0: /* half-integer grid: exact ties of the nearest point */
            for (int k = 0; k < 8; k++) v[k] = 0.5f * rintf(2.0f * v[k]);
            break;
        case 1: /* huge */
            for (int k = 0; k < 8; k++) v[k] *= 30.0f;
            break;
        case 2: memset(v, 0, 8 * sizeof(float)); break;
        default: break;
        }
    }
}

/* ---- exact Voronoi encoder ------------------------------------------------ */
static void check_nearest_brute(unsigned q, const float *betas, int nb, size_t n, uint64_t seed)
{
    size_t N = 1;
    for (int i = 0; i < 8; i++) N *= q;
    float *cb = xmalloc(N * 8 * sizeof(float));
    uint8_t c[8];
    const lq_lattice_kernels *k = lq_lattice_kernels_at(LQ_SIMD_SCALAR);
    for (size_t v = 0; v < N; v++) {
        ck_assert(lq_voronoi_from_index(q, v, c));
        lq_voronoi_decode_batch(k, q, c, 1, cb + 8 * v);
    }
    float *x = xmalloc(n * 8 * sizeof(float)), *y = xmalloc(n * 8 * sizeof(float));
    float *y2 = xmalloc(n * 8 * sizeof(float));
    uint8_t *codes = xmalloc(n * 8), *ce = xmalloc(n * 8), *ov = xmalloc(n);
    fill_mixed(x, n, seed);
    for (int ib = 0; ib < nb; ib++) {
        float beta = betas[ib];
        size_t ninex;
        ck_assert_int_eq(lq_voronoi_nearest(q, beta, x, n, codes, y, &ninex), LQ_OK);
        ck_assert_uint_eq(ninex, 0);
        ck_assert_int_eq(lq_voronoi_decode(q, beta, codes, n, y2), LQ_OK);
        ck_assert_int_eq(memcmp(y, y2, n * 8 * sizeof(float)), 0);
        ck_assert_int_eq(lq_voronoi_encode(q, beta, x, n, ce, ov, NULL), LQ_OK);
        size_t nov = 0;
        for (size_t i = 0; i < n; i++) {
            const float *xi = x + 8 * i;
            double best = INFINITY;
            for (size_t v = 0; v < N; v++) {
                float r[8];
                for (int d = 0; d < 8; d++) r[d] = beta * cb[8 * v + d];
                double e = err8(xi, r);
                if (e < best) best = e;
            }
            double ours = err8(xi, y + 8 * i);
            ck_assert_msg(ours <= best * (1.0 + 1e-6) + 1e-9,
                          "q=%u beta=%g vec %zu: %.9g > brute %.9g", q, beta, i, ours, best);
            if (!ov[i]) /* no overload: the usual code is the nearest codeword */
                ck_assert_int_eq(memcmp(codes + 8 * i, ce + 8 * i, 8), 0);
            nov += ov[i];
        }
        ck_assert_uint_gt(nov, 0); /* the search was exercised */
    }
    free(cb);
    free(x);
    free(y);
    free(y2);
    free(codes);
    free(ce);
    free(ov);
}

START_TEST(voronoi_nearest_vs_brute_force)
{
    const float b2[] = {0.35f, 0.6f, 1.0f, 1.6f};
    check_nearest_brute(2, b2, 4, 1500, 11);
    const float b3[] = {0.5f, 0.8f, 1.3f};
    check_nearest_brute(3, b3, 3, 600, 12);
    const float b4[] = {0.55f, 0.9f};
    check_nearest_brute(4, b4, 2, 60, 13);
}
END_TEST

START_TEST(voronoi_nearest_bad_input)
{
    float x[16] = {0}, y[16];
    uint8_t c[16];
    ck_assert_int_eq(lq_voronoi_nearest(1, 1.0f, x, 2, c, y, NULL), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_voronoi_nearest(3, 0.0f, x, 2, c, y, NULL), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_voronoi_nearest(3, 1.0f, NULL, 2, c, y, NULL), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_voronoi_nearest(3, 1.0f, x, 0, NULL, NULL, NULL), LQ_OK);
    x[3] = INFINITY;
    memset(c, 0xee, sizeof c);
    ck_assert_int_eq(lq_voronoi_nearest(3, 1.0f, x, 2, c, y, NULL), LQ_ERR_NOT_FINITE);
    ck_assert_uint_eq(c[0], 0xee);
}
END_TEST

/* ---- selection rules ------------------------------------------------------- */
/* On every vector: err(EXHAUSTIVE) <= err(BEST) <= err(FIRST) for the same
 * betas; every rule decodes to its own reconstruction bit for bit and is
 * identical on every SIMD level. */
static void check_rules(unsigned q, unsigned K, const float *x, size_t n, int fitted, lq_ctx *ctx)
{
    lq_nq_coder c;
    ck_assert_int_eq(lq_nq_coder_init(&c, q, K), LQ_OK);
    if (fitted) ck_assert_int_eq(lq_nq_coder_fit(ctx, &c, x, n), LQ_OK);
    float *y[3], *y2 = xmalloc(n * 8 * sizeof(float));
    uint8_t *cd[3], *bi[3], *c2 = xmalloc(n * 8), *b2 = xmalloc(n);
    size_t nov[3];
    for (int s = 0; s < 3; s++) {
        y[s] = xmalloc(n * 8 * sizeof(float));
        cd[s] = xmalloc(n * 8);
        bi[s] = xmalloc(n);
        c.select = (unsigned)s;
        ck_assert_int_eq(lq_nq_encode_at(LQ_SIMD_SCALAR, &c, x, n, cd[s], bi[s], y[s], &nov[s]),
                         LQ_OK);
        ck_assert_int_eq(lq_nq_decode(&c, cd[s], bi[s], n, y2), LQ_OK);
        ck_assert_int_eq(memcmp(y[s], y2, n * 8 * sizeof(float)), 0);
        for (int l = 1; l < NLEVELS; l++) {
            size_t nv;
            ck_assert_int_eq(lq_nq_encode_at(g_levels[l], &c, x, n, c2, b2, y2, &nv), LQ_OK);
            ck_assert_uint_eq(nv, nov[s]);
            ck_assert_int_eq(memcmp(c2, cd[s], n * 8), 0);
            ck_assert_int_eq(memcmp(b2, bi[s], n), 0);
            ck_assert_int_eq(memcmp(y2, y[s], n * 8 * sizeof(float)), 0);
        }
    }
    /* the overload count means "every beta overloads": the same for all */
    ck_assert_uint_eq(nov[0], nov[1]);
    ck_assert_uint_eq(nov[0], nov[2]);
    double tot[3] = {0, 0, 0};
    size_t better[2] = {0, 0};
    for (size_t i = 0; i < n; i++) {
        double e[3];
        for (int s = 0; s < 3; s++) {
            e[s] = err8(x + 8 * i, y[s] + 8 * i);
            tot[s] += e[s];
        }
        ck_assert_msg(e[1] <= e[0], "q=%u K=%u vec %zu: BEST %.9g > FIRST %.9g", q, K, i, e[1],
                      e[0]);
        ck_assert_msg(e[2] <= e[1], "q=%u K=%u vec %zu: EXHAUSTIVE %.9g > BEST %.9g", q, K, i, e[2],
                      e[1]);
        better[0] += e[1] < e[0];
        better[1] += e[2] < e[1];
    }
    /* with the default (unfitted) betas both rules gain somewhere */
    if (K > 1 && q <= 7 && !fitted)
        ck_assert_msg(better[0] > 0, "q=%u K=%u: BEST never better", q, K);
    if (q <= 4 && !fitted) ck_assert_msg(better[1] > 0, "q=%u K=%u: EXHAUSTIVE never better", q, K);
    for (int s = 0; s < 3; s++) {
        free(y[s]);
        free(cd[s]);
        free(bi[s]);
    }
    free(y2);
    free(c2);
    free(b2);
}

START_TEST(nestquant_select_properties)
{
    const size_t n = 3000;
    float *x = xmalloc(n * 8 * sizeof(float));
    lq_ctx *ctx = lq_test_ctx(2, LQ_SIMD_AUTO);
    static const struct {
        unsigned q, K;
    } cfg[] = {{2, 4}, {3, 8}, {4, 1}, {4, 4}, {7, 4}, {14, 4}, {16, 2}};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        fill_mixed(x, n, 100 + i);
        check_rules(cfg[i].q, cfg[i].K, x, n, 0, ctx);
        check_rules(cfg[i].q, cfg[i].K, x, n, 1, ctx);
        /* heavy tails only */
        lq_test_fill_student(x, 8 * n, 2, 1.0f, 200 + i);
        check_rules(cfg[i].q, cfg[i].K, x, n, 1, ctx);
    }
    lq_ctx_destroy(ctx);
    free(x);
}
END_TEST

/* Fitted betas under each rule, iid N(0,1), all side bits counted: the
 * rules rank as their candidate sets do, and EXHAUSTIVE at q = 14, K = 4
 * (4.06 bits) meets the goal of 0.0058. */
START_TEST(nestquant_select_rate_distortion)
{
    const size_t n = 8192;
    float *x = xmalloc(n * 8 * sizeof(float)), *y = xmalloc(n * 8 * sizeof(float));
    uint8_t *c = xmalloc(n * 8), *b = xmalloc(n);
    lq_test_fill_gaussian(x, 8 * n, 1.0f, 77);
    lq_ctx *ctx = lq_test_ctx(2, LQ_SIMD_AUTO);
    static const struct {
        unsigned q, K;
        double exh_bound;
    } cfg[] = {{3, 8, 0.1275}, {4, 4, 0.074}, {14, 4, 0.0058}};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        double m[3];
        for (int s = 0; s < 3; s++) {
            lq_nq_coder cd;
            ck_assert_int_eq(lq_nq_coder_init(&cd, cfg[i].q, cfg[i].K), LQ_OK);
            cd.select = (unsigned)s;
            ck_assert_int_eq(lq_nq_coder_fit(ctx, &cd, x, n), LQ_OK);
            ck_assert_int_eq(lq_nq_encode(&cd, x, n, c, b, y, NULL), LQ_OK);
            double e = 0;
            for (size_t j = 0; j < n; j++) e += err8(x + 8 * j, y + 8 * j);
            m[s] = e / (8.0 * (double)n);
        }
        ck_assert_msg(m[1] <= m[0] * 1.002, "q=%u BEST %g FIRST %g", cfg[i].q, m[1], m[0]);
        ck_assert_msg(m[2] < m[1], "q=%u EXH %g BEST %g", cfg[i].q, m[2], m[1]);
        ck_assert_msg(m[2] < cfg[i].exh_bound, "q=%u K=%u EXH %g", cfg[i].q, cfg[i].K, m[2]);
    }
    lq_ctx_destroy(ctx);
    free(x);
    free(y);
    free(c);
    free(b);
}
END_TEST

/* ---- E8P ------------------------------------------------------------------- */
static int cmp8(const void *a, const void *b) { return memcmp(a, b, 8 * sizeof(float)); }

START_TEST(e8p_codebook_structure)
{
    /* the pattern table follows its documented rule: in base-4 order, the
     * patterns with |a|^2 <= 10, then the first 29 with |a|^2 = 12 and
     * max a = 3/2 (values doubled) */
    size_t np = 0;
    for (int pass = 0; pass < 2; pass++)
        for (unsigned m = 0, n12 = 0; m < 65536; m++) {
            uint8_t v[8];
            unsigned s = 0, mx = 0;
            for (int k = 0; k < 8; k++) {
                v[k] = (uint8_t)(2 * ((m >> (2 * k)) & 3) + 1);
                s += v[k] * v[k];
                mx = v[k] > mx ? v[k] : mx;
            }
            if (pass == 0 ? s > 40 : (s != 48 || mx != 3 || n12 == 29)) continue;
            n12 += pass;
            ck_assert_uint_lt(np, 256);
            ck_assert_int_eq(memcmp(v, lq_e8p_abs2[np], 8), 0);
            np++;
        }
    ck_assert_uint_eq(np, 256);
    /* 2^16 distinct points of E8 + 1/4, closed under negation, decode =
     * the internal point, ball-like: |y|^2 <= 12 + |sum|/2 + 1/2 */
    float *cb = xmalloc((size_t)LQ_E8P_CODES * 8 * sizeof(float));
    uint16_t *codes = xmalloc(LQ_E8P_CODES * sizeof(uint16_t));
    for (unsigned c = 0; c < LQ_E8P_CODES; c++) codes[c] = (uint16_t)c;
    ck_assert_int_eq(lq_e8p_decode(1.0f, codes, LQ_E8P_CODES, cb), LQ_OK);
    for (unsigned c = 0; c < LQ_E8P_CODES; c++) {
        float t[8], e[8];
        for (int k = 0; k < 8; k++) t[k] = cb[8 * c + k] - 0.25f;
        ck_assert_int_eq(lq_e8_nearest(t, 1, e), LQ_OK); /* t is an E8 point */
        ck_assert_int_eq(memcmp(t, e, sizeof t), 0);
        /* its own nearest codeword, with its own code */
        uint16_t back;
        ck_assert_int_eq(lq_e8p_encode(1.0f, cb + 8 * c, 1, &back, NULL), LQ_OK);
        ck_assert_uint_eq(back, c);
    }
    qsort(cb, LQ_E8P_CODES, 8 * sizeof(float), cmp8);
    for (unsigned c = 1; c < LQ_E8P_CODES; c++)
        ck_assert(memcmp(cb + 8 * (c - 1), cb + 8 * c, 8 * sizeof(float)) != 0);
    float neg[8];
    for (unsigned c = 0; c < LQ_E8P_CODES; c += 97) {
        for (int k = 0; k < 8; k++) neg[k] = -cb[8 * c + k];
        ck_assert_ptr_nonnull(bsearch(neg, cb, LQ_E8P_CODES, 8 * sizeof(float), cmp8));
    }
    free(cb);
    free(codes);
}
END_TEST

START_TEST(e8p_encode_vs_brute_force)
{
    const size_t n = 3000;
    float *cb = xmalloc((size_t)LQ_E8P_CODES * 8 * sizeof(float));
    uint16_t *all = xmalloc(LQ_E8P_CODES * sizeof(uint16_t));
    for (unsigned c = 0; c < LQ_E8P_CODES; c++) all[c] = (uint16_t)c;
    ck_assert_int_eq(lq_e8p_decode(1.0f, all, LQ_E8P_CODES, cb), LQ_OK);
    float *x = xmalloc(n * 8 * sizeof(float)), *y = xmalloc(n * 8 * sizeof(float));
    float *y2 = xmalloc(n * 8 * sizeof(float));
    uint16_t *codes = xmalloc(n * sizeof(uint16_t));
    fill_mixed(x, n, 31);
    /* plus points between codewords: midpoints of random pairs (ties) */
    for (size_t i = 0; i < n / 10; i++)
        for (int k = 0; k < 8; k++)
            x[8 * i + k] = 0.5f * (cb[8 * ((i * 7919) % LQ_E8P_CODES) + k] +
                                   cb[8 * ((i * 104729 + 1) % LQ_E8P_CODES) + k]);
    static const float scales[] = {1.0f, 0.96f, 0.3f};
    for (int si = 0; si < 3; si++) {
        float sc = scales[si];
        ck_assert_int_eq(lq_e8p_encode(sc, x, n, codes, y), LQ_OK);
        ck_assert_int_eq(lq_e8p_decode(sc, codes, n, y2), LQ_OK);
        ck_assert_int_eq(memcmp(y, y2, n * 8 * sizeof(float)), 0);
        for (size_t i = 0; i < n; i++) {
            double u[8], best = INFINITY, ours = 0;
            for (int k = 0; k < 8; k++) u[k] = (double)x[8 * i + k] / sc;
            for (unsigned c = 0; c < LQ_E8P_CODES; c++) {
                double d = 0;
                for (int k = 0; k < 8; k++) {
                    double r = cb[8 * c + k] - u[k];
                    d += r * r;
                }
                if (d < best) best = d;
            }
            float p[8];
            lq_e8p_point(codes[i], p);
            for (int k = 0; k < 8; k++) ours += (p[k] - u[k]) * (p[k] - u[k]);
            ck_assert_msg(ours <= best * (1 + 1e-12) + 1e-12, "scale %g vec %zu: %.12g > %.12g", sc,
                          i, ours, best);
        }
    }
    /* nearest = decode(encode) at scale 1, in place */
    memcpy(y2, x, n * 8 * sizeof(float));
    ck_assert_int_eq(lq_e8p_nearest(y2, n, y2), LQ_OK);
    ck_assert_int_eq(lq_e8p_encode(1.0f, x, n, codes, y), LQ_OK);
    ck_assert_int_eq(memcmp(y, y2, n * 8 * sizeof(float)), 0);
    /* bad input */
    ck_assert_int_eq(lq_e8p_encode(0.0f, x, 1, codes, y), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_e8p_encode(1.0f, NULL, 1, codes, y), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_e8p_decode(NAN, codes, 1, y), LQ_ERR_INVALID_ARG);
    x[5] = NAN;
    codes[0] = 0x1234;
    ck_assert_int_eq(lq_e8p_encode(1.0f, x, 1, codes, y), LQ_ERR_NOT_FINITE);
    ck_assert_uint_eq(codes[0], 0x1234);
    ck_assert_int_eq(lq_e8p_nearest(x, 1, y), LQ_ERR_NOT_FINITE);
    free(cb);
    free(all);
    free(x);
    free(y);
    free(y2);
    free(codes);
}
END_TEST

/* The goal of issue 16: <= 0.092 per entry at 2.0 bits on iid N(0,1). */
START_TEST(e8p_rate_distortion)
{
    const size_t n = 20000;
    float *x = xmalloc(n * 8 * sizeof(float)), *y = xmalloc(n * 8 * sizeof(float));
    uint16_t *codes = xmalloc(n * sizeof(uint16_t));
    lq_test_fill_gaussian(x, 8 * n, 1.0f, 91);
    ck_assert_int_eq(lq_e8p_encode(0.96f, x, n, codes, y), LQ_OK);
    double e = 0;
    for (size_t i = 0; i < n; i++) e += err8(x + 8 * i, y + 8 * i);
    e /= 8.0 * (double)n;
    ck_assert_msg(e <= 0.092, "E8P mse %g", e);
    ck_assert(e > 0.0625); /* Shannon at 2 bits */
    free(x);
    free(y);
    free(codes);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("lattice_codes");
    TCase *tv = tcase_create("voronoi_exact");
    tcase_set_timeout(tv, 900);
    tcase_add_test(tv, voronoi_nearest_vs_brute_force);
    tcase_add_test(tv, voronoi_nearest_bad_input);
    suite_add_tcase(s, tv);
    TCase *tq = tcase_create("select");
    tcase_set_timeout(tq, 900);
    tcase_add_test(tq, nestquant_select_properties);
    tcase_add_test(tq, nestquant_select_rate_distortion);
    suite_add_tcase(s, tq);
    TCase *te = tcase_create("e8p");
    tcase_set_timeout(te, 900);
    tcase_add_test(te, e8p_codebook_structure);
    tcase_add_test(te, e8p_encode_vs_brute_force);
    tcase_add_test(te, e8p_rate_distortion);
    suite_add_tcase(s, te);
    return lq_test_run(s);
}
