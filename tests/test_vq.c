/* VQ: k-means / EM, nearest-codeword kernels, VQ codes, codebook compression. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "simd/vq_simd.h"
#include "test_common.h"
#include "vq/vq_internal.h"

/* Gaussian blobs: `ncl` centres, n points of dimension d. */
static float *blobs(size_t n, size_t d, size_t ncl, uint64_t seed)
{
    float *x = malloc(n * d * sizeof *x), *cen = malloc(ncl * d * sizeof *cen);
    ck_assert(x && cen);
    lq_test_fill_uniform(cen, ncl * d, -4.0f, 4.0f, seed);
    lq_test_fill_gaussian(x, n * d, 0.5f, seed + 1);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) x[i * d + j] += cen[(i * 7919 % ncl) * d + j];
    free(cen);
    return x;
}

/* ---- bad input -------------------------------------------------------------- */

START_TEST(kmeans_bad_args)
{
    float x[40], c[20] = {0}, w[20];
    uint32_t a[20];
    double in = 123;
    for (int i = 0; i < 40; i++) x[i] = (float)i;
    for (int i = 0; i < 20; i++) w[i] = 1;
    ck_assert_int_eq(lq_kmeans(NULL, NULL, NULL, 20, 2, 3, NULL, c, a, &in), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_kmeans(NULL, x, NULL, 20, 2, 3, NULL, NULL, a, &in), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_kmeans(NULL, x, NULL, 20, 0, 3, NULL, c, a, &in), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_kmeans(NULL, x, NULL, 0, 2, 3, NULL, c, a, &in), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_kmeans(NULL, x, NULL, 20, 2, 0, NULL, c, a, &in), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_kmeans(NULL, x, NULL, 20, 2, 21, NULL, c, a, &in), LQ_ERR_INVALID_ARG);
    lq_kmeans_opts o;
    lq_kmeans_opts_init(&o);
    o.max_iter = 0;
    ck_assert_int_eq(lq_kmeans(NULL, x, NULL, 20, 2, 3, &o, c, a, &in), LQ_ERR_INVALID_ARG);
    lq_kmeans_opts_init(&o);
    o.restarts = 0;
    ck_assert_int_eq(lq_kmeans(NULL, x, NULL, 20, 2, 3, &o, c, a, &in), LQ_ERR_INVALID_ARG);
    lq_kmeans_opts_init(&o);
    o.init = LQ_KMEANS_GIVEN;
    o.restarts = 2;
    ck_assert_int_eq(lq_kmeans(NULL, x, NULL, 20, 2, 3, &o, c, a, &in), LQ_ERR_INVALID_ARG);
    lq_kmeans_opts_init(&o);
    o.tol = -1;
    ck_assert_int_eq(lq_kmeans(NULL, x, NULL, 20, 2, 3, &o, c, a, &in), LQ_ERR_INVALID_ARG);
    lq_kmeans_opts_init(&o);
    o.init = (lq_kmeans_init)9;
    ck_assert_int_eq(lq_kmeans(NULL, x, NULL, 20, 2, 3, &o, c, a, &in), LQ_ERR_INVALID_ARG);
    w[3] = -1;
    ck_assert_int_eq(lq_kmeans(NULL, x, w, 20, 2, 3, NULL, c, a, &in), LQ_ERR_INVALID_ARG);
    for (int i = 0; i < 20; i++) w[i] = 0;
    ck_assert_int_eq(lq_kmeans(NULL, x, w, 20, 2, 3, NULL, c, a, &in), LQ_ERR_INVALID_ARG);
    w[5] = NAN;
    ck_assert_int_eq(lq_kmeans(NULL, x, w, 20, 2, 3, NULL, c, a, &in), LQ_ERR_NOT_FINITE);
    x[7] = NAN;
    ck_assert_int_eq(lq_kmeans(NULL, x, NULL, 20, 2, 3, NULL, c, a, &in), LQ_ERR_NOT_FINITE);
    x[7] = INFINITY;
    ck_assert_int_eq(lq_kmeans(NULL, x, NULL, 20, 2, 3, NULL, c, a, &in), LQ_ERR_NOT_FINITE);
    x[7] = 7;
    float cw[40];
    for (int i = 0; i < 40; i++) cw[i] = 1;
    cw[11] = NAN;
    lq_kmeans_opts_init(&o);
    o.coord_weights = cw;
    ck_assert_int_eq(lq_kmeans(NULL, x, NULL, 20, 2, 3, &o, c, a, &in), LQ_ERR_NOT_FINITE);
    cw[11] = -2;
    ck_assert_int_eq(lq_kmeans(NULL, x, NULL, 20, 2, 3, &o, c, a, &in), LQ_ERR_INVALID_ARG);
    lq_kmeans_opts_init(&o);
    o.init = LQ_KMEANS_GIVEN;
    c[4] = NAN;
    ck_assert_int_eq(lq_kmeans(NULL, x, NULL, 20, 2, 3, &o, c, a, &in), LQ_ERR_NOT_FINITE);
    /* outputs untouched on every error */
    ck_assert(in == 123);
    ck_assert(isnan(c[4]) && c[0] == 0 && c[5] == 0);
}
END_TEST

/* ---- Lloyd properties ------------------------------------------------------ */

typedef struct trace_rec {
    double v[64];
    unsigned n;
} trace_rec;

static void on_iter(void *user, unsigned restart, unsigned iter, double inertia)
{
    trace_rec *t = user;
    (void)restart;
    ck_assert_uint_eq(iter, t->n);
    if (t->n < 64) t->v[t->n++] = inertia;
}

START_TEST(kmeans_inertia_monotone)
{
    static const size_t dims[] = {1, 2, 3, 4, 8, 16};
    size_t d = dims[_i], n = 3000, k = 37;
    float *x = blobs(n, d, 50, 100 + d);
    float *c = malloc(k * d * sizeof *c);
    for (int init = 0; init < 2; init++) {
        lq_kmeans_opts o;
        lq_kmeans_opts_init(&o);
        o.init = (lq_kmeans_init)init;
        o.max_iter = 30;
        o.tol = 0;
        double tr[30];
        trace_rec rec = {{0}, 0};
        o.inertia_trace = tr;
        o.on_iter = on_iter;
        o.on_iter_user = &rec;
        double in;
        ck_assert_int_eq(lq_kmeans(NULL, x, NULL, n, d, k, &o, c, NULL, &in), LQ_OK);
        ck_assert_uint_eq(rec.n, 31); /* 30 iterations + the final assignment */
        for (unsigned t = 1; t < 30; t++)
            ck_assert_msg(tr[t] <= tr[t - 1], "d=%zu it %u: %.17g > %.17g", d, t, tr[t], tr[t - 1]);
        ck_assert(in <= tr[29]);
        ck_assert(rec.v[30] == in);
        ck_assert(tr[29] < tr[0]);
    }
    free(x);
    free(c);
}
END_TEST

START_TEST(kmeans_k_equals_n)
{
    size_t n = 60, d = 3;
    float x[180], c[180];
    uint32_t a[60];
    lq_test_fill_uniform(x, n * d, -1, 1, 7); /* distinct with probability 1 */
    for (int init = 0; init < 2; init++) {
        lq_kmeans_opts o;
        lq_kmeans_opts_init(&o);
        o.init = (lq_kmeans_init)init;
        double in = -1;
        ck_assert_int_eq(lq_kmeans(NULL, x, NULL, n, d, n, &o, c, a, &in), LQ_OK);
        ck_assert(in == 0.0);
        /* every point is its own centroid */
        int seen[60] = {0};
        for (size_t i = 0; i < n; i++) {
            ck_assert_uint_lt(a[i], n);
            ck_assert(!memcmp(c + a[i] * d, x + i * d, d * sizeof(float)));
            seen[a[i]]++;
        }
        for (size_t i = 0; i < n; i++) ck_assert_int_eq(seen[i], 1);
    }
}
END_TEST

/* Integer weights are the same as duplicated points. Data are multiples of
 * 1/8 in a small range so that every double sum is exact and the two runs
 * must agree bit for bit (same given initial centroids). */
START_TEST(kmeans_weights_equal_duplicates)
{
    size_t n = 400, d = 2, k = 9;
    float *x = malloc(n * d * sizeof *x), *w = malloc(n * sizeof *w);
    size_t ndup = 0;
    uint64_t s = 5;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            x[i * d + j] = (float)((int)(s >> 40) % 64) / 8.0f;
        }
        w[i] = (float)(1 + (i % 3));
        ndup += (size_t)w[i];
    }
    float *xd = malloc(ndup * d * sizeof *xd);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        for (int r = 0; r < (int)w[i]; r++, m++) memcpy(xd + m * d, x + i * d, d * sizeof(float));
    float c0[18], c1[18], c2[18];
    for (size_t q = 0; q < k; q++) memcpy(c0 + q * d, x + q * 37 * d, d * sizeof(float));
    memcpy(c1, c0, sizeof c0);
    memcpy(c2, c0, sizeof c0);
    lq_kmeans_opts o;
    lq_kmeans_opts_init(&o);
    o.init = LQ_KMEANS_GIVEN;
    o.max_iter = 20;
    o.tol = 0;
    uint32_t *a1 = malloc(n * sizeof *a1), *a2 = malloc(ndup * sizeof *a2);
    double i1, i2;
    ck_assert_int_eq(lq_kmeans(NULL, x, w, n, d, k, &o, c1, a1, &i1), LQ_OK);
    ck_assert_int_eq(lq_kmeans(NULL, xd, NULL, ndup, d, k, &o, c2, a2, &i2), LQ_OK);
    ck_assert(!memcmp(c1, c2, sizeof c1));
    ck_assert(i1 == i2);
    m = 0;
    for (size_t i = 0; i < n; i++)
        for (int r = 0; r < (int)w[i]; r++, m++) ck_assert_uint_eq(a1[i], a2[m]);
    free(x);
    free(w);
    free(xd);
    free(a1);
    free(a2);
}
END_TEST

/* Identical results for 1 and 2 threads and for every SIMD level. */
START_TEST(kmeans_threads_and_simd_identical)
{
    static const size_t dims[] = {1, 2, 4, 8, 5, 12};
    size_t d = dims[_i], n = 5000, k = 40;
    float *x = blobs(n, d, 60, 200 + d);
    float *w = malloc(n * sizeof *w), *cw = malloc(n * d * sizeof *cw);
    lq_test_fill_uniform(w, n, 0.5f, 2.0f, 3);
    lq_test_fill_uniform(cw, n * d, 0.1f, 3.0f, 4);
    lq_simd_level levels[] = {LQ_SIMD_SCALAR, LQ_SIMD_AVX2, LQ_SIMD_AVX512};
    float *cref = malloc(k * d * sizeof *cref), *c = malloc(k * d * sizeof *c);
    uint32_t *aref = malloc(n * sizeof *aref), *a = malloc(n * sizeof *a);
    for (int variant = 0; variant < 3; variant++) {
        lq_kmeans_opts o;
        lq_kmeans_opts_init(&o);
        o.max_iter = 8;
        o.restarts = 2;
        if (variant == 2) o.coord_weights = cw;
        const float *wv = variant >= 1 ? w : NULL;
        double iref = 0, in;
        for (int t = 0; t < 2; t++)
            for (int l = 0; l < 3; l++) {
                lq_ctx *ctx = lq_test_ctx((size_t)t + 1, levels[l]);
                ck_assert_int_eq(lq_kmeans(ctx, x, wv, n, d, k, &o, c, a, &in), LQ_OK);
                lq_ctx_destroy(ctx);
                if (t == 0 && l == 0) {
                    memcpy(cref, c, k * d * sizeof *c);
                    memcpy(aref, a, n * sizeof *a);
                    iref = in;
                    continue;
                }
                ck_assert_msg(!memcmp(cref, c, k * d * sizeof *c), "d=%zu v=%d t=%d l=%d", d,
                              variant, t, l);
                ck_assert(!memcmp(aref, a, n * sizeof *a));
                ck_assert(iref == in);
            }
    }
    free(x);
    free(w);
    free(cw);
    free(cref);
    free(c);
    free(aref);
    free(a);
}
END_TEST

START_TEST(kmeans_restarts_keep_best)
{
    size_t n = 2000, d = 2, k = 25;
    float *x = blobs(n, d, 30, 9);
    float c[50];
    lq_kmeans_opts o;
    lq_kmeans_opts_init(&o);
    o.init = LQ_KMEANS_RANDOM;
    double i1, i4;
    ck_assert_int_eq(lq_kmeans(NULL, x, NULL, n, d, k, &o, c, NULL, &i1), LQ_OK);
    o.restarts = 4;
    ck_assert_int_eq(lq_kmeans(NULL, x, NULL, n, d, k, &o, c, NULL, &i4), LQ_OK);
    ck_assert(i4 <= i1); /* restart 0 of the second run is the first run */
    free(x);
}
END_TEST

/* A centroid far from every point gets no point: it must be re-seeded, so
 * that every cluster ends non-empty. */
START_TEST(kmeans_empty_cluster_reseeded)
{
    size_t n = 500, d = 2, k = 6;
    float *x = blobs(n, d, 6, 11);
    float c[12];
    for (size_t q = 0; q < k; q++) memcpy(c + q * d, x + q * d, d * sizeof(float));
    c[10] = 1e6f;
    c[11] = -1e6f;
    uint32_t a[500];
    lq_kmeans_opts o;
    lq_kmeans_opts_init(&o);
    o.init = LQ_KMEANS_GIVEN;
    o.max_iter = 10;
    double in;
    ck_assert_int_eq(lq_kmeans(NULL, x, NULL, n, d, k, &o, c, a, &in), LQ_OK);
    int cnt[6] = {0};
    for (size_t i = 0; i < n; i++) cnt[a[i]]++;
    for (size_t q = 0; q < k; q++) ck_assert_int_gt(cnt[q], 0);
    ck_assert(fabsf(c[10]) < 100.0f);
    free(x);
}
END_TEST

/* Hessian-aware EM: with a huge importance on coordinate 0, the centroids
 * must fit coordinate 0 better than plain k-means does. */
START_TEST(kmeans_coord_weights)
{
    size_t n = 3000, d = 2, k = 8;
    float *x = malloc(n * d * sizeof *x), *cw = malloc(n * d * sizeof *cw);
    lq_test_fill_gaussian(x, n * d, 1.0f, 21);
    for (size_t i = 0; i < n; i++) {
        cw[i * d] = 100.0f;
        cw[i * d + 1] = 0.01f;
    }
    float c0[16], c1[16];
    uint32_t a0[3000], a1[3000];
    lq_kmeans_opts o;
    lq_kmeans_opts_init(&o);
    ck_assert_int_eq(lq_kmeans(NULL, x, NULL, n, d, k, &o, c0, a0, NULL), LQ_OK);
    o.coord_weights = cw;
    double in;
    ck_assert_int_eq(lq_kmeans(NULL, x, NULL, n, d, k, &o, c1, a1, &in), LQ_OK);
    double e0 = 0, e1 = 0, chk = 0;
    for (size_t i = 0; i < n; i++) {
        double t0 = x[i * d] - c0[a0[i] * d], t1 = x[i * d] - c1[a1[i] * d];
        double u1 = x[i * d + 1] - c1[a1[i] * d + 1];
        e0 += t0 * t0;
        e1 += t1 * t1;
        chk += 100.0 * (double)(float)(t1 * t1) + 0.01 * u1 * u1;
    }
    ck_assert(e1 < 0.5 * e0);
    ck_assert(fabs(chk - in) <= 1e-3 * in);
    free(x);
    free(cw);
}
END_TEST

/* ---- kernels ----------------------------------------------------------------- */

START_TEST(nearest_kernels_match_scalar)
{
#if LQ_ARCH_X86
    static const size_t ks[] = {1, 3, 16, 17, 40, 256};
    static const size_t dims[] = {1, 2, 4, 8};
    lq_simd_level det = lq_simd_detected();
    for (size_t di = 0; di < 4; di++)
        for (size_t ki = 0; ki < 6; ki++) {
            size_t d = dims[di], k = ks[ki], n = 203, kpad = lq_vq_kpad(k);
            float *x = malloc(n * d * 4), *w = malloc(n * d * 4), *c = malloc(k * d * 4);
            float *ct = malloc(d * kpad * 4), *d0 = malloc(n * 4), *d1 = malloc(n * 4);
            uint32_t *i0 = malloc(n * 4), *i1 = malloc(n * 4);
            lq_test_fill_gaussian(x, n * d, 1, 31 + k);
            lq_test_fill_uniform(w, n * d, 0, 2, 32);
            lq_test_fill_gaussian(c, k * d, 1, 33 + d);
            /* exact ties: duplicated entries and points on entries */
            if (k > 2) memcpy(c + (k - 1) * d, c + d, d * 4);
            for (size_t i = 0; i < 20; i++) memcpy(x + i * d, c + (i % k) * d, d * 4);
            lq_vq_transpose(c, k, d, ct, kpad);
            for (int wv = 0; wv < 2; wv++) {
                const float *ww = wv ? w : NULL;
                lq_vq_nearest_scalar(x, ww, n, d, ct, k, kpad, i0, d0);
                if (det >= LQ_SIMD_AVX2) {
                    lq_vq_nearest_avx2(x, ww, n, d, ct, k, kpad, i1, d1);
                    ck_assert(!memcmp(i0, i1, n * 4) && !memcmp(d0, d1, n * 4));
                }
                if (det >= LQ_SIMD_AVX512) {
                    lq_vq_nearest_avx512(x, ww, n, d, ct, k, kpad, i1, d1);
                    ck_assert(!memcmp(i0, i1, n * 4) && !memcmp(d0, d1, n * 4));
                }
                /* scalar is the true argmin with ties to the lowest index */
                for (size_t i = 0; i < n; i++)
                    for (size_t q = 0; q < k; q++) {
                        float acc = 0;
                        for (size_t j = 0; j < d; j++) {
                            float t = c[q * d + j] - x[i * d + j];
                            acc = fmaf(ww ? t * ww[i * d + j] : t, t, acc);
                        }
                        ck_assert(acc > d0[i] || (acc == d0[i] && q >= i0[i]));
                    }
            }
            free(x);
            free(w);
            free(c);
            free(ct);
            free(d0);
            free(d1);
            free(i0);
            free(i1);
        }
#endif
}
END_TEST

/* ---- codes ------------------------------------------------------------------- */

START_TEST(vq_encode_decode)
{
    static const size_t dims[] = {1, 2, 4, 8};
    static const unsigned bitss[] = {1, 4, 8, 12};
    for (size_t di = 0; di < 4; di++)
        for (size_t bi = 0; bi < 4; bi++) {
            size_t d = dims[di], n = 300, k = (size_t)1 << bitss[bi];
            float *x = malloc(n * d * 4), *cb = malloc(k * d * 4), *y = malloc(n * d * 4);
            uint16_t *codes = malloc(n * 2), *c2 = malloc(n * 2);
            lq_test_fill_gaussian(x, n * d, 1, 41);
            lq_test_fill_gaussian(cb, k * d, 1, 42);
            double err;
            lq_ctx *c1 = lq_test_ctx(1, LQ_SIMD_SCALAR), *cc2 = lq_test_ctx(2, LQ_SIMD_AUTO);
            ck_assert_int_eq(lq_vq_encode(c1, x, NULL, n, d, cb, bitss[bi], codes, &err), LQ_OK);
            double err2;
            ck_assert_int_eq(lq_vq_encode(cc2, x, NULL, n, d, cb, bitss[bi], c2, &err2), LQ_OK);
            ck_assert(!memcmp(codes, c2, n * 2) && err == err2);
            lq_ctx_destroy(c1);
            lq_ctx_destroy(cc2);
            ck_assert_int_eq(lq_vq_decode(codes, n, d, cb, bitss[bi], y), LQ_OK);
            double e = 0;
            for (size_t i = 0; i < n; i++) {
                ck_assert_uint_lt(codes[i], k);
                double ei = 0;
                for (size_t j = 0; j < d; j++) ei += pow((double)x[i * d + j] - y[i * d + j], 2);
                e += ei;
                /* no codeword is closer (up to float rounding of the distances) */
                for (size_t q = 0; q < k; q += 7) {
                    double eq = 0;
                    for (size_t j = 0; j < d; j++)
                        eq += pow((double)x[i * d + j] - cb[q * d + j], 2);
                    ck_assert(eq >= ei * (1 - 1e-5) - 1e-9);
                }
            }
            ck_assert(fabs(e - err) <= 1e-4 * (e + 1e-9));
            free(x);
            free(cb);
            free(y);
            free(codes);
            free(c2);
        }
}
END_TEST

/* The largest codebooks (b = 16: 65536 entries): codes are exact argmins
 * and decode back to their entries; identical for every SIMD level. */
START_TEST(vq_encode_16bit_codebook)
{
    static const size_t dims[] = {1, 8};
    for (size_t di = 0; di < 2; di++) {
        size_t d = dims[di], n = 40, k = 65536;
        float *x = malloc(n * d * 4), *cb = malloc(k * d * 4), *y = malloc(n * d * 4);
        uint16_t c0[40], c1[40];
        lq_test_fill_gaussian(x, n * d, 1, 81);
        lq_test_fill_gaussian(cb, k * d, 1, 82);
        memcpy(cb + 65535 * d, x + 3 * d, d * 4); /* point 3 sits on the last entry */
        lq_ctx *cs = lq_test_ctx(1, LQ_SIMD_SCALAR), *ca = lq_test_ctx(2, LQ_SIMD_AUTO);
        ck_assert_int_eq(lq_vq_encode(cs, x, NULL, n, d, cb, 16, c0, NULL), LQ_OK);
        ck_assert_int_eq(lq_vq_encode(ca, x, NULL, n, d, cb, 16, c1, NULL), LQ_OK);
        lq_ctx_destroy(cs);
        lq_ctx_destroy(ca);
        ck_assert(!memcmp(c0, c1, sizeof c0));
        ck_assert_uint_eq(c0[3], 65535);
        ck_assert_int_eq(lq_vq_decode(c0, n, d, cb, 16, y), LQ_OK);
        for (size_t i = 0; i < n; i++) {
            double best = INFINITY;
            for (size_t q = 0; q < k; q++) {
                double e = 0;
                for (size_t j = 0; j < d; j++) e += pow((double)x[i * d + j] - cb[q * d + j], 2);
                if (e < best) best = e;
            }
            double ei = 0;
            for (size_t j = 0; j < d; j++) ei += pow((double)x[i * d + j] - y[i * d + j], 2);
            ck_assert(ei <= best * (1 + 1e-5) + 1e-12);
        }
        free(x);
        free(cb);
        free(y);
    }
}
END_TEST

/* d = 1 with a uniform codebook is the uniform (INT) quantizer: the code of
 * x is clamp(round((x - lo) / s), 0, 2^b - 1). */
START_TEST(vq_d1_uniform_is_int_quantizer)
{
    for (unsigned bits = 2; bits <= 8; bits += 2) {
        size_t n = 5000, k = (size_t)1 << bits;
        float lo = -1.25f, s = 2.5f / (float)(k - 1);
        float *cb = malloc(k * 4), *x = malloc(n * 4);
        uint16_t *codes = malloc(n * 2);
        for (size_t q = 0; q < k; q++) cb[q] = lo + s * (float)q;
        lq_test_fill_uniform(x, n, -1.6f, 1.6f, 50 + bits);
        ck_assert_int_eq(lq_vq_encode(NULL, x, NULL, n, 1, cb, bits, codes, NULL), LQ_OK);
        for (size_t i = 0; i < n; i++) {
            float r = rintf((x[i] - lo) / s);
            if (r < 0) r = 0;
            if (r > (float)(k - 1)) r = (float)(k - 1);
            ck_assert_uint_eq(codes[i], (unsigned)r);
        }
        free(cb);
        free(x);
        free(codes);
    }
}
END_TEST

START_TEST(vq_codes_bad_args)
{
    float x[16] = {0}, cb[8] = {0}, y[16];
    uint16_t codes[8] = {0};
    ck_assert_int_eq(lq_vq_encode(NULL, x, NULL, 4, 3, cb, 1, codes, NULL), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_vq_encode(NULL, x, NULL, 4, 2, cb, 0, codes, NULL), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_vq_encode(NULL, x, NULL, 4, 2, cb, 17, codes, NULL), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_vq_encode(NULL, x, NULL, 0, 2, cb, 1, codes, NULL), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_vq_encode(NULL, NULL, NULL, 4, 2, cb, 1, codes, NULL), LQ_ERR_INVALID_ARG);
    x[3] = NAN;
    ck_assert_int_eq(lq_vq_encode(NULL, x, NULL, 4, 2, cb, 1, codes, NULL), LQ_ERR_NOT_FINITE);
    x[3] = 0;
    cb[1] = INFINITY;
    ck_assert_int_eq(lq_vq_encode(NULL, x, NULL, 4, 2, cb, 1, codes, NULL), LQ_ERR_NOT_FINITE);
    cb[1] = 0;
    ck_assert_int_eq(lq_vq_decode(codes, 4, 0, cb, 1, y), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_vq_decode(codes, 4, 2, cb, 17, y), LQ_ERR_INVALID_ARG);
    codes[2] = 2;
    ck_assert_int_eq(lq_vq_decode(codes, 4, 2, cb, 1, y), LQ_ERR_CORRUPT);
    int8_t q[4];
    float sc;
    ck_assert_int_eq(lq_codebook_int8(NULL, 4, q, &sc), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_codebook_int8(x, 4, q, &sc), LQ_OK);
    ck_assert(sc == 1.0f);
    x[0] = NAN;
    ck_assert_int_eq(lq_codebook_int8(x, 4, q, &sc), LQ_ERR_NOT_FINITE);
    ck_assert_int_eq(lq_codebooks_svd(NULL, cb, 0, 2, 2, 1, NULL, NULL), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_codebooks_svd(NULL, cb, 2, 2, 2, 0, NULL, NULL), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_codebooks_svd(NULL, x, 2, 2, 2, 1, NULL, NULL), LQ_ERR_NOT_FINITE);
}
END_TEST

START_TEST(codebook_compression)
{
    float c[64], cq[64];
    int8_t q[64];
    float s;
    lq_test_fill_gaussian(c, 64, 0.3f, 61);
    ck_assert_int_eq(lq_codebook_int8(c, 64, q, &s), LQ_OK);
    float m = 0;
    for (int i = 0; i < 64; i++) m = fmaxf(m, fabsf(c[i]));
    ck_assert(s == m / 127.0f);
    for (int i = 0; i < 64; i++) ck_assert(fabsf(c[i] - s * q[i]) <= 0.5f * s * 1.0001f);
    /* SVD: 6 codebooks of 4 x 2 built with rank 2 are kept exactly at rank 2;
     * the error falls with the rank. */
    size_t m6 = 6, k = 4, d = 2, nc = k * d;
    float a[2][8], u[6][2], A[48], B[48], U[12], V[16];
    lq_test_fill_gaussian(&a[0][0], 16, 1, 62);
    lq_test_fill_gaussian(&u[0][0], 12, 1, 63);
    for (size_t g = 0; g < m6; g++)
        for (size_t j = 0; j < nc; j++) A[g * nc + j] = u[g][0] * a[0][j] + u[g][1] * a[1][j];
    memcpy(B, A, sizeof A);
    ck_assert_int_eq(lq_codebooks_svd(NULL, B, m6, k, d, 2, U, V), LQ_OK);
    ck_assert(lq_test_max_abs_diff(A, B, 48) < 1e-4);
    for (size_t g = 0; g < m6; g++)
        for (size_t j = 0; j < nc; j++)
            ck_assert(fabsf(U[g * 2] * V[j] + U[g * 2 + 1] * V[nc + j] - B[g * nc + j]) < 1e-4f);
    lq_test_fill_gaussian(A, 48, 1, 64);
    double prev = INFINITY;
    for (size_t r = 1; r <= 6; r++) {
        memcpy(B, A, sizeof A);
        ck_assert_int_eq(lq_codebooks_svd(NULL, B, m6, k, d, r, NULL, NULL), LQ_OK);
        double e = lq_test_rel_err(B, A, 48);
        ck_assert(e < prev || e < 1e-6);
        prev = e;
    }
    ck_assert(prev < 1e-5);
}
END_TEST

/* ---- allocation failures ----------------------------------------------------- */

typedef struct km_arg {
    const float *x;
    size_t n, d, k;
    unsigned restarts;
} km_arg;

static lq_status km_body(lq_ctx *ctx, void *p)
{
    km_arg *a = p;
    lq_kmeans_opts o;
    lq_kmeans_opts_init(&o);
    o.restarts = a->restarts;
    o.max_iter = 3;
    float c[64 * 16];
    uint32_t as[4000];
    double in = -7;
    float keep = c[0] = 12345.0f;
    lq_status st = lq_kmeans(ctx, a->x, NULL, a->n, a->d, a->k, &o, c, as, &in);
    if (st != LQ_OK) ck_assert(in == -7 && c[0] == keep);
    return st;
}

static lq_status enc_body(lq_ctx *ctx, void *p)
{
    const float *x = p;
    float cb[64];
    uint16_t codes[1000];
    for (int i = 0; i < 64; i++) cb[i] = (float)i / 10;
    return lq_vq_encode(ctx, x, NULL, 500, 2, cb, 5, codes, NULL);
}

static lq_status svd_body(lq_ctx *ctx, void *p)
{
    float B[48];
    memcpy(B, p, sizeof B);
    return lq_codebooks_svd(ctx, B, 6, 4, 2, 2, NULL, NULL);
}

START_TEST(alloc_failures)
{
    float *x = blobs(3000, 16, 20, 71);
    km_arg a1 = {x, 3000, 2, 17, 1}, a2 = {x, 3000, 2, 17, 3}, a3 = {x, 3000, 16, 40, 1};
    for (size_t t = 1; t <= 2; t++) {
        ck_assert_uint_ge(lq_test_alloc_sweep(km_body, &a1, t), 1);
        ck_assert_uint_ge(lq_test_alloc_sweep(km_body, &a2, t), 2);
        ck_assert_uint_ge(lq_test_alloc_sweep(km_body, &a3, t), 1); /* GEMM path */
        ck_assert_uint_ge(lq_test_alloc_sweep(enc_body, x, t), 2);
        ck_assert_uint_ge(lq_test_alloc_sweep(svd_body, x, t), 4);
    }
    free(x);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vq");
    TCase *tc = tcase_create("kmeans");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, kmeans_bad_args);
    tcase_add_loop_test(tc, kmeans_inertia_monotone, 0, 6);
    tcase_add_test(tc, kmeans_k_equals_n);
    tcase_add_test(tc, kmeans_weights_equal_duplicates);
    tcase_add_loop_test(tc, kmeans_threads_and_simd_identical, 0, 6);
    tcase_add_test(tc, kmeans_restarts_keep_best);
    tcase_add_test(tc, kmeans_empty_cluster_reseeded);
    tcase_add_test(tc, kmeans_coord_weights);
    suite_add_tcase(s, tc);
    TCase *tk = tcase_create("codes");
    tcase_set_timeout(tk, 600);
    tcase_add_test(tk, nearest_kernels_match_scalar);
    tcase_add_test(tk, vq_encode_decode);
    tcase_add_test(tk, vq_encode_16bit_codebook);
    tcase_add_test(tk, vq_d1_uniform_is_int_quantizer);
    tcase_add_test(tk, vq_codes_bad_args);
    tcase_add_test(tk, codebook_compression);
    tcase_add_test(tk, alloc_failures);
    suite_add_tcase(s, tk);
    return lq_test_run(s);
}
