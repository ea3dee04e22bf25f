/* Lattice module: nearest point (Z^n, D_n, E8), Voronoi codes, NestQuant,
 * randomized Hadamard transform, coded activations. Properties, not
 * examples. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lattice/lattice_internal.h"
#include "test_common.h"

static const lq_simd_level g_levels[] = {LQ_SIMD_SCALAR, LQ_SIMD_AVX2, LQ_SIMD_AVX512};
#define NLEVELS 3

static float *fa(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    ck_assert_ptr_nonnull(p);
    return p;
}

/* 240 minimal vectors of E8 (rows of 8). */
static size_t e8_roots(float *v)
{
    size_t n = 0;
    for (int i = 0; i < 8; i++)
        for (int j = i + 1; j < 8; j++)
            for (int si = -1; si <= 1; si += 2)
                for (int sj = -1; sj <= 1; sj += 2) {
                    memset(v + 8 * n, 0, 8 * sizeof(float));
                    v[8 * n + i] = (float)si;
                    v[8 * n + j] = (float)sj;
                    n++;
                }
    for (int m = 0; m < 256; m++) {
        if (__builtin_popcount((unsigned)m) % 2) continue;
        for (int k = 0; k < 8; k++) v[8 * n + k] = (m >> k) & 1 ? -0.5f : 0.5f;
        n++;
    }
    return n;
}

static int in_e8(const float *y)
{
    double s = 0;
    int integer = y[0] == rintf(y[0]);
    for (int k = 0; k < 8; k++) {
        int isint = y[k] == rintf(y[k]);
        int ishalf = y[k] - 0.5f == rintf(y[k] - 0.5f);
        if (integer ? !isint : !ishalf) return 0;
        s += y[k];
    }
    return fmod(fabs(s), 2.0) == 0.0;
}

static int in_d8(const float *y)
{
    double s = 0;
    for (int k = 0; k < 8; k++) {
        if (y[k] != rintf(y[k])) return 0;
        s += y[k];
    }
    return fmod(fabs(s), 2.0) == 0.0;
}

static double dist2(const float *x, const float *y)
{
    double s = 0;
    for (int k = 0; k < 8; k++) s += ((double)x[k] - y[k]) * ((double)x[k] - y[k]);
    return s;
}

/* ---- nearest point -------------------------------------------------------- */
START_TEST(e8_nearest_properties)
{
    const size_t n = 20000;
    float *x = fa(8 * n), *y = fa(8 * n), *yy = fa(8 * n), roots[240 * 8];
    ck_assert_uint_eq(e8_roots(roots), 240);
    lq_test_fill_uniform(x, 8 * n, -6.0f, 6.0f, 11);
    lq_test_fill_gaussian(x, 4 * n, 0.7f, 12); /* first half: small Gaussian points */
    ck_assert_int_eq(lq_e8_nearest(x, n, y), LQ_OK);
    for (size_t i = 0; i < n; i++) {
        const float *yi = y + 8 * i;
        ck_assert_msg(in_e8(yi), "point %zu not in E8", i);
        double d = dist2(x + 8 * i, yi);
        for (int r = 0; r < 240; r++) {
            float nb[8];
            for (int k = 0; k < 8; k++) nb[k] = yi[k] + roots[8 * r + k];
            ck_assert_msg(d <= dist2(x + 8 * i, nb) + 1e-9, "neighbour %d closer at %zu", r, i);
        }
    }
    /* idempotent */
    ck_assert_int_eq(lq_e8_nearest(y, n, yy), LQ_OK);
    ck_assert_int_eq(
        memcmp(y, yy, 8 * n * sizeof(float)) == 0 || lq_test_max_abs_diff(y, yy, 8 * n) == 0.0, 1);
    /* in place equals out of place */
    memcpy(yy, x, 8 * n * sizeof(float));
    ck_assert_int_eq(lq_e8_nearest(yy, n, yy), LQ_OK);
    ck_assert_int_eq(memcmp(y, yy, 8 * n * sizeof(float)), 0);
    free(x);
    free(y);
    free(yy);
}
END_TEST

START_TEST(e8_translation_equivariant)
{
    /* x on a dyadic grid with odd numerators (no rounding ties, x + v exact);
     * v random lattice vectors sum c_i g_i. The property holds except where
     * x is exactly equidistant from its D8 and D8 + 1/2 candidates (a tie
     * the rule breaks towards D8, which a half-integer v swaps): such points
     * are detected in double and skipped (they must be rare). */
    const size_t n = 20000;
    float *x = fa(8 * n), *xv = fa(8 * n), *y = fa(8 * n), *yv = fa(8 * n), *v = fa(8 * n);
    float G[64];
    lq_e8_generator(G);
    lq_rng r;
    lq_rng_init(&r, 5, 0);
    for (size_t i = 0; i < n; i++) {
        float vv[8] = {0};
        for (int b = 0; b < 8; b++) {
            int c = (int)lq_rng_below(&r, 21) - 10;
            for (int k = 0; k < 8; k++) vv[k] += (float)c * G[8 * b + k];
        }
        for (int k = 0; k < 8; k++) {
            float f = (float)(2 * (int)lq_rng_below(&r, 4096) + 1) / 2048.0f - 2.0f;
            x[8 * i + k] = f;
            xv[8 * i + k] = f + vv[k];
            v[8 * i + k] = vv[k];
        }
    }
    ck_assert_int_eq(lq_e8_nearest(x, n, y), LQ_OK);
    ck_assert_int_eq(lq_e8_nearest(xv, n, yv), LQ_OK);
    size_t bad = 0, skipped = 0;
    for (size_t i = 0; i < n; i++) {
        float y0[8], y1[8], xs[8];
        lq_d8_point_ref(x + 8 * i, y0);
        for (int k = 0; k < 8; k++) xs[k] = x[8 * i + k] - 0.5f;
        lq_d8_point_ref(xs, y1);
        for (int k = 0; k < 8; k++) y1[k] += 0.5f;
        if (dist2(x + 8 * i, y0) == dist2(x + 8 * i, y1)) {
            skipped++;
            continue;
        }
        for (int k = 0; k < 8; k++) bad += yv[8 * i + k] != y[8 * i + k] + v[8 * i + k];
    }
    ck_assert_uint_eq(bad, 0);
    ck_assert_uint_lt(skipped, n / 50);
    free(x);
    free(xv);
    free(y);
    free(yv);
    free(v);
}
END_TEST

START_TEST(d8_and_dn_properties)
{
    const size_t n = 20000;
    float *x = fa(8 * n), *y = fa(8 * n), *y2 = fa(8 * n);
    lq_test_fill_uniform(x, 8 * n, -5.0f, 5.0f, 21);
    ck_assert_int_eq(lq_d8_nearest(x, n, y), LQ_OK);
    ck_assert_int_eq(lq_dn_nearest(x, n, 8, y2), LQ_OK);
    ck_assert_int_eq(memcmp(y, y2, 8 * n * sizeof(float)), 0); /* same rule */
    for (size_t i = 0; i < n; i++) {
        ck_assert(in_d8(y + 8 * i));
        double d = dist2(x + 8 * i, y + 8 * i);
        for (int a = 0; a < 8; a++)
            for (int b = a + 1; b < 8; b++)
                for (int sa = -1; sa <= 1; sa += 2)
                    for (int sb = -1; sb <= 1; sb += 2) {
                        float nb[8];
                        memcpy(nb, y + 8 * i, sizeof nb);
                        nb[a] += (float)sa;
                        nb[b] += (float)sb;
                        ck_assert(d <= dist2(x + 8 * i, nb) + 1e-9);
                    }
    }
    /* D_5: even sum, no closer point among +-e_a +-e_b */
    const size_t m = 5000;
    ck_assert_int_eq(lq_dn_nearest(x, m, 5, y), LQ_OK);
    for (size_t i = 0; i < m; i++) {
        double s = 0, d = 0;
        for (int k = 0; k < 5; k++) {
            ck_assert(y[5 * i + k] == rintf(y[5 * i + k]));
            s += y[5 * i + k];
            d += pow(x[5 * i + k] - y[5 * i + k], 2);
        }
        ck_assert(fmod(fabs(s), 2.0) == 0.0);
        for (int a = 0; a < 5; a++)
            for (int b = a + 1; b < 5; b++)
                for (int sa = -1; sa <= 1; sa += 2)
                    for (int sb = -1; sb <= 1; sb += 2) {
                        double e = 0;
                        for (int k = 0; k < 5; k++) {
                            double yk = y[5 * i + k] + (k == a ? sa : 0) + (k == b ? sb : 0);
                            e += pow(x[5 * i + k] - yk, 2);
                        }
                        ck_assert(d <= e + 1e-9);
                    }
    }
    /* Z^n: rounding */
    ck_assert_int_eq(lq_zn_nearest(x, 100, y), LQ_OK);
    for (int i = 0; i < 100; i++) ck_assert(fabsf(x[i] - y[i]) <= 0.5f && y[i] == rintf(y[i]));
    free(x);
    free(y);
    free(y2);
}
END_TEST

START_TEST(normalized_second_moment)
{
    /* Uniform x on [0,2)^8, a union of fundamental regions of 2Z^8 (a
     * sublattice of E8), so x - Q(x) is uniform on the Voronoi cell; E8 has
     * volume 1, so G = E|x - Q(x)|^2 / 8. Z^8 likewise on [0,1)^8. */
    const size_t n = 100000;
    float *x = fa(8 * n), *y = fa(8 * n);
    lq_test_fill_uniform(x, 8 * n, 0.0f, 2.0f, 31);
    ck_assert_int_eq(lq_e8_nearest(x, n, y), LQ_OK);
    double s = 0;
    for (size_t i = 0; i < 8 * n; i++) s += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
    double g = s / (8.0 * n);
    ck_assert_msg(fabs(g / (929.0 / 12960.0) - 1.0) < 0.01, "G(E8) = %g", g);
    lq_test_fill_uniform(x, 8 * n, 0.0f, 1.0f, 32);
    ck_assert_int_eq(lq_zn_nearest(x, 8 * n, y), LQ_OK);
    s = 0;
    for (size_t i = 0; i < 8 * n; i++) s += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
    g = s / (8.0 * n);
    ck_assert_msg(fabs(g * 12.0 - 1.0) < 0.01, "G(Z8) = %g", g);
    free(x);
    free(y);
}
END_TEST

/* 10^6 points: uniform, ties (half-integers, equal errors), huge magnitudes,
 * denormals, signed zeros, mixtures. */
static void hard_points(float *x, size_t n, uint64_t seed)
{
    lq_rng r;
    lq_rng_init(&r, seed, 0);
    for (size_t i = 0; i < n; i++) {
        unsigned kind = (unsigned)lq_rng_below(&r, 8);
        for (int k = 0; k < 8; k++) {
            float v;
            switch (kind) {
            case 0: v = (float)(lq_rng_uniform(&r) * 20.0 - 10.0); break;
            case 1: v = (float)((int)lq_rng_below(&r, 17) - 8) * 0.5f; break;   /* ties */
            case 2: v = (float)((int)lq_rng_below(&r, 33) - 16) * 0.25f; break; /* ties */
            case 3:
                v = (float)((lq_rng_uniform(&r) - 0.5) * ldexp(1.0, (int)lq_rng_below(&r, 120)));
                break;
            case 4: v = (float)((lq_rng_uniform(&r) - 0.5) * 1e-39); break; /* denormal */
            case 5: v = lq_rng_below(&r, 2) ? 0.0f : -0.0f; break;
            case 6:
                v = (float)((int)lq_rng_below(&r, 5) - 2) + (lq_rng_below(&r, 2) ? 0.25f : -0.25f);
                break;
            default: v = (float)(lq_rng_gaussian(&r) * 3.0); break;
            }
            x[8 * i + k] = v;
        }
    }
}

START_TEST(simd_bit_identical)
{
    const size_t n = 1000000;
    float *x = fa(8 * n), *y0 = fa(8 * n), *y1 = fa(8 * n);
    hard_points(x, n, 41);
    for (int e8 = 0; e8 < 2; e8++) {
        lq_status (*fn)(lq_simd_level, const float *, size_t, float *) =
            e8 ? lq_e8_nearest_at : lq_d8_nearest_at;
        ck_assert_int_eq(fn(LQ_SIMD_SCALAR, x, n, y0), LQ_OK);
        for (int l = 1; l < NLEVELS; l++) {
            memset(y1, 0xff, 8 * n * sizeof(float));
            ck_assert_int_eq(fn(g_levels[l], x, n, y1), LQ_OK);
            ck_assert_msg(memcmp(y0, y1, 8 * n * sizeof(float)) == 0, "%s level %d differs",
                          e8 ? "E8" : "D8", l);
            /* tails: every n mod 16 */
            for (size_t m = 1; m < 40; m++) {
                ck_assert_int_eq(fn(g_levels[l], x + 8 * 7, m, y1), LQ_OK);
                ck_assert_int_eq(fn(LQ_SIMD_SCALAR, x + 8 * 7, m, y1 + 8 * 64), LQ_OK);
                ck_assert_int_eq(memcmp(y1, y1 + 8 * 64, 8 * m * sizeof(float)), 0);
            }
        }
    }
    free(x);
    free(y0);
    free(y1);
}
END_TEST

START_TEST(nearest_bad_input)
{
    float x[64], y[64], keep[64];
    lq_test_fill_uniform(x, 64, -3, 3, 1);
    for (int l = 0; l < NLEVELS; l++)
        for (int pos = 0; pos < 64; pos += 9) {
            for (int v = 0; v < 3; v++) {
                float bad = v == 0 ? NAN : v == 1 ? INFINITY : -INFINITY;
                float save = x[pos];
                x[pos] = bad;
                for (int i = 0; i < 64; i++) y[i] = keep[i] = (float)i;
                ck_assert_int_eq(lq_e8_nearest_at(g_levels[l], x, 8, y), LQ_ERR_NOT_FINITE);
                ck_assert_int_eq(lq_d8_nearest_at(g_levels[l], x, 8, y), LQ_ERR_NOT_FINITE);
                ck_assert_int_eq(memcmp(y, keep, sizeof y), 0);
                x[pos] = save;
            }
        }
    x[3] = NAN;
    ck_assert_int_eq(lq_zn_nearest(x, 64, y), LQ_ERR_NOT_FINITE);
    ck_assert_int_eq(lq_dn_nearest(x, 8, 8, y), LQ_ERR_NOT_FINITE);
    x[3] = 0;
    ck_assert_int_eq(lq_e8_nearest(NULL, 1, y), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_e8_nearest(x, 1, NULL), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_d8_nearest(NULL, 1, y), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_e8_nearest(x, SIZE_MAX / 4, y), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_e8_nearest(NULL, 0, NULL), LQ_OK);
    ck_assert_int_eq(lq_dn_nearest(x, 1, 0, y), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_zn_nearest(NULL, 3, y), LQ_ERR_INVALID_ARG);
}
END_TEST

/* ---- Voronoi codes ---------------------------------------------------------- */
START_TEST(voronoi_bits_and_generator)
{
    ck_assert_uint_eq(lq_voronoi_bits(2), 8);
    ck_assert_uint_eq(lq_voronoi_bits(3), 13);
    ck_assert_uint_eq(lq_voronoi_bits(14), 31);
    ck_assert_uint_eq(lq_voronoi_bits(16), 32);
    ck_assert_uint_eq(lq_voronoi_bits(255), 64);
    ck_assert_uint_eq(lq_voronoi_bits(256), 64);
    ck_assert_uint_eq(lq_voronoi_bits(1), 0);
    ck_assert_uint_eq(lq_voronoi_bits(257), 0);
    for (unsigned q = 2; q <= 256; q++) { /* 2^(b-1) < q^8 <= 2^b */
        double l = 8.0 * log2((double)q);
        ck_assert_uint_eq(lq_voronoi_bits(q), (unsigned)ceil(l - 1e-9));
    }
    /* generator rows are E8 points and det G = 1 (triangular-ish: check by
     * lattice coordinates of unit-determinant basis via the coords map) */
    float G[64];
    lq_e8_generator(G);
    for (int i = 0; i < 8; i++) ck_assert(in_e8(G + 8 * i));
    double det = 1; /* G = [lower bidiagonal 7x7 block | g7]: det = 2 * 1^6 * 1/2 */
    for (int i = 0; i < 7; i++) det *= G[9 * i];
    det *= G[63];
    ck_assert(det == 1.0);
}
END_TEST

START_TEST(voronoi_codebook_exact)
{
    /* q = 2 and 3: every code decodes to a distinct E8 point, which encodes
     * back to itself without overload (the codebook has exactly q^8 points). */
    for (unsigned q = 2; q <= 3; q++) {
        size_t N = q == 2 ? 256 : 6561;
        uint8_t *c = malloc(8 * N), *c2 = malloc(8 * N), *ov = malloc(N);
        float *y = fa(8 * N);
        for (size_t v = 0; v < N; v++) ck_assert(lq_voronoi_from_index(q, v, c + 8 * v));
        ck_assert_int_eq(lq_voronoi_decode(q, 1.0f, c, N, y), LQ_OK);
        size_t nov = 99;
        ck_assert_int_eq(lq_voronoi_encode(q, 1.0f, y, N, c2, ov, &nov), LQ_OK);
        ck_assert_uint_eq(nov, 0);
        ck_assert_int_eq(memcmp(c, c2, 8 * N), 0);
        for (size_t v = 0; v < N; v++) ck_assert(in_e8(y + 8 * v));
        free(c);
        free(c2);
        free(ov);
        free(y);
    }
}
END_TEST

START_TEST(voronoi_roundtrip_and_overload)
{
    static const unsigned qs[] = {2, 3, 4, 7, 14, 16, 255, 256};
    const size_t n = 20000;
    float *x = fa(8 * n), *t = fa(8 * n), *y = fa(8 * n), *xs = fa(8 * n);
    uint8_t *c = malloc(8 * n), *ov = malloc(n), *c2 = malloc(8 * n);
    lq_test_fill_gaussian(x, 8 * n, 1.0f, 51);
    for (size_t qi = 0; qi < sizeof qs / sizeof *qs; qi++) {
        unsigned q = qs[qi];
        double prev = 2.0;
        for (int bi = 0; bi < 10; bi++) {
            float beta = (float)(1.5 * pow(1.3, bi) / q);
            size_t nov;
            ck_assert_int_eq(lq_voronoi_encode(q, beta, x, n, c, ov, &nov), LQ_OK);
            ck_assert_int_eq(lq_voronoi_decode(q, beta, c, n, y), LQ_OK);
            const float ib = 1.0f / beta;
            for (size_t i = 0; i < 8 * n; i++) xs[i] = x[i] * ib;
            ck_assert_int_eq(lq_e8_nearest(xs, n, t), LQ_OK);
            size_t cnt = 0;
            for (size_t i = 0; i < n; i++) {
                int same = 1;
                for (int k = 0; k < 8; k++) {
                    ck_assert_uint_lt(c[8 * i + k], q);
                    same &= y[8 * i + k] == beta * t[8 * i + k];
                }
                ck_assert_int_eq(same, !ov[i]); /* no overload <=> decode = Q(x) */
                cnt += ov[i];
            }
            ck_assert_uint_eq(cnt, nov);
            double rate = (double)nov / n;
            ck_assert_msg(rate <= prev, "q=%u: overload rate rose with beta", q);
            prev = rate;
        }
        ck_assert(prev < 0.01); /* large beta: almost no overload */
        /* pack / unpack */
        size_t bytes;
        ck_assert_int_eq(lq_voronoi_packed_size(q, n, &bytes), LQ_OK);
        ck_assert_uint_eq(bytes, (n * lq_voronoi_bits(q) + 7) / 8);
        uint8_t *p = malloc(bytes);
        ck_assert_int_eq(lq_voronoi_pack(q, c, n, p, bytes), LQ_OK);
        ck_assert_int_eq(lq_voronoi_unpack(q, p, bytes, n, c2), LQ_OK);
        ck_assert_int_eq(memcmp(c, c2, 8 * n), 0);
        ck_assert_int_eq(lq_voronoi_pack(q, c, n, p, bytes - 1), LQ_ERR_INVALID_ARG);
        ck_assert_int_eq(lq_voronoi_unpack(q, p, bytes - 1, n, c2), LQ_ERR_INVALID_ARG);
        free(p);
    }
    /* corrupt: code >= q, packed value >= q^8 */
    memset(c, 0, 8);
    c[3] = 3;
    ck_assert_int_eq(lq_voronoi_decode(3, 1.0f, c, 1, y), LQ_ERR_CORRUPT);
    uint8_t p[2] = {0xff, 0x1f}; /* 8191 >= 3^8 */
    memset(c2, 7, 8);
    ck_assert_int_eq(lq_voronoi_unpack(3, p, 2, 1, c2), LQ_ERR_CORRUPT);
    for (int k = 0; k < 8; k++) ck_assert_uint_eq(c2[k], 7); /* untouched */
    ck_assert_int_eq(lq_voronoi_pack(3, c, 1, p, 2), LQ_ERR_CORRUPT);
    /* bad args */
    ck_assert_int_eq(lq_voronoi_encode(1, 1.0f, x, 1, c, NULL, NULL), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_voronoi_encode(16, 0.0f, x, 1, c, NULL, NULL), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_voronoi_encode(16, NAN, x, 1, c, NULL, NULL), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_voronoi_encode(16, 1.0f, NULL, 1, c, NULL, NULL), LQ_ERR_INVALID_ARG);
    x[5] = INFINITY;
    ck_assert_int_eq(lq_voronoi_encode(16, 1.0f, x, 1, c, NULL, NULL), LQ_ERR_NOT_FINITE);
    ck_assert_int_eq(lq_voronoi_decode(16, -1.0f, c, 1, y), LQ_ERR_INVALID_ARG);
    size_t psz;
    ck_assert_int_eq(lq_voronoi_packed_size(300, 1, &psz), LQ_ERR_INVALID_ARG);
    free(x);
    free(t);
    free(y);
    free(xs);
    free(c);
    free(ov);
    free(c2);
}
END_TEST

START_TEST(voronoi_glue_levels)
{
    /* coordinates mod q and the lift: every level equals the scalar twin,
     * including points far outside the code (far flag) */
    static const unsigned qs[] = {2, 3, 7, 14, 16, 255, 256};
    const size_t n = 3000;
    float *x = fa(8 * n), *t = fa(8 * n), *z0 = fa(8 * n), *w0 = fa(8 * n), *z1 = fa(8 * n),
          *w1 = fa(8 * n);
    uint8_t *c0 = malloc(8 * n), *c1 = malloc(8 * n), f0[3000], f1[3000];
    const lq_lattice_kernels *ks = lq_lattice_kernels_at(LQ_SIMD_SCALAR);
    for (size_t qi = 0; qi < sizeof qs / sizeof *qs; qi++) {
        unsigned q = qs[qi];
        lq_test_fill_uniform(x, 8 * n, -6.0f * q - 12.0f, 6.0f * q + 12.0f, 600 + q);
        ck_assert_int_eq(lq_e8_nearest(x, n, t), LQ_OK);
        ks->coords(q, t, n, c0, f0);
        ks->lift(c0, n, 1.0f / (float)q, z0, w0);
        size_t nfar = 0;
        for (size_t i = 0; i < n; i++) nfar += f0[i];
        ck_assert(nfar > 0 && nfar < n);
        for (int l = 1; l < NLEVELS; l++) {
            const lq_lattice_kernels *k = lq_lattice_kernels_at(g_levels[l]);
            memset(c1, 0xee, 8 * n);
            k->coords(q, t, n, c1, f1);
            ck_assert_int_eq(memcmp(c0, c1, 8 * n), 0);
            ck_assert_int_eq(memcmp(f0, f1, n), 0);
            k->lift(c0, n, 1.0f / (float)q, z1, w1);
            ck_assert_int_eq(memcmp(z0, z1, 8 * n * sizeof(float)), 0);
            ck_assert_int_eq(memcmp(w0, w1, 8 * n * sizeof(float)), 0);
        }
        /* coords really are the coordinates: lift(c) == t mod qE8 */
        for (size_t i = 0; i < n; i++) {
            if (f0[i]) continue;
            float d[8], dq[8];
            for (int k = 0; k < 8; k++) d[k] = (t[8 * i + k] - z0[8 * i + k]) / (float)q;
            lq_e8_point_ref(d, dq);
            for (int k = 0; k < 8; k++) ck_assert(d[k] == dq[k]); /* (t - z) / q in E8 */
        }
    }
    free(x);
    free(t);
    free(z0);
    free(w0);
    free(z1);
    free(w1);
    free(c0);
    free(c1);
}
END_TEST

/* ---- NestQuant ------------------------------------------------------------- */
static double mse(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return s / (double)n;
}

START_TEST(nestquant_rule_and_levels)
{
    const size_t n = 6000;
    float *x = fa(8 * n), *y = fa(8 * n), *y2 = fa(8 * n);
    uint8_t *c = malloc(8 * n), *b = malloc(n), *c2 = malloc(8 * n), *b2 = malloc(n);
    uint8_t *cv = malloc(8 * n), *ov = malloc(n * LQ_NQ_MAX_BETAS);
    lq_test_fill_gaussian(x, 8 * n, 1.0f, 61);
    for (size_t i = 0; i < 50; i++) /* some vectors every beta overloads */
        for (int k = 0; k < 8; k++) x[8 * (i * 97) + k] *= 40.0f;
    lq_nq_coder cd;
    ck_assert_int_eq(lq_nq_coder_init(&cd, 7, 4), LQ_OK);
    size_t nov;
    ck_assert_int_eq(lq_nq_encode_at(LQ_SIMD_SCALAR, &cd, x, n, c, b, y, &nov), LQ_OK);
    ck_assert_uint_ge(nov, 50);
    /* decode reproduces the encoder's reconstruction bit for bit */
    ck_assert_int_eq(lq_nq_decode(&cd, c, b, n, y2), LQ_OK);
    ck_assert_int_eq(memcmp(y, y2, 8 * n * sizeof(float)), 0);
    /* the rule: index = smallest beta without overload; else fallback at K-1 */
    for (unsigned k = 0; k < cd.n_betas; k++)
        ck_assert_int_eq(lq_voronoi_encode(cd.q, cd.betas[k], x, n, cv, ov + k * n, NULL), LQ_OK);
    size_t fb = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned first = cd.n_betas;
        for (unsigned k = 0; k < cd.n_betas && first == cd.n_betas; k++)
            if (!ov[k * n + i]) first = k;
        if (first == cd.n_betas) {
            fb++;
            ck_assert_uint_eq(b[i], cd.n_betas - 1);
            /* shrink fallback: never a wrapped point far from x */
            double nx = 0, ny = 0;
            for (int k = 0; k < 8; k++) {
                nx += (double)x[8 * i + k] * x[8 * i + k];
                ny += (double)y[8 * i + k] * y[8 * i + k];
            }
            ck_assert(sqrt(ny) <= sqrt(nx) + 2.0 * cd.betas[cd.n_betas - 1]);
        } else {
            ck_assert_uint_eq(b[i], first);
        }
    }
    ck_assert_uint_eq(fb, nov);
    /* every SIMD level gives identical codes */
    for (int l = 1; l < NLEVELS; l++) {
        size_t nov2;
        ck_assert_int_eq(lq_nq_encode_at(g_levels[l], &cd, x, n, c2, b2, y2, &nov2), LQ_OK);
        ck_assert_uint_eq(nov, nov2);
        ck_assert_int_eq(memcmp(c, c2, 8 * n), 0);
        ck_assert_int_eq(memcmp(b, b2, n), 0);
        ck_assert_int_eq(memcmp(y, y2, 8 * n * sizeof(float)), 0);
    }
    /* BEST never worse than FIRST, per vector */
    lq_nq_coder cb = cd;
    cb.select = LQ_NQ_SELECT_BEST;
    ck_assert_int_eq(lq_nq_encode(&cb, x, n, c2, b2, y2, NULL), LQ_OK);
    for (size_t i = 0; i < n; i++)
        ck_assert(mse(x + 8 * i, y2 + 8 * i, 8) <= mse(x + 8 * i, y + 8 * i, 8));
    /* bad input */
    ck_assert_int_eq(lq_nq_decode(&cd, c, (const uint8_t *)"\x09", 1, y2), LQ_ERR_CORRUPT);
    c2[0] = 7;
    ck_assert_int_eq(lq_nq_decode(&cd, c2, b, 1, y2), LQ_ERR_CORRUPT);
    lq_nq_coder bad = cd;
    bad.betas[1] = bad.betas[0];
    ck_assert_int_eq(lq_nq_encode(&bad, x, 1, c, b, y, NULL), LQ_ERR_INVALID_ARG);
    bad = cd;
    bad.q = 1;
    ck_assert_int_eq(lq_nq_encode(&bad, x, 1, c, b, y, NULL), LQ_ERR_INVALID_ARG);
    bad = cd;
    bad.select = 9;
    ck_assert_int_eq(lq_nq_coder_check(&bad), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_nq_coder_init(&bad, 16, 17), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_nq_coder_init(&bad, 16, 0), LQ_ERR_INVALID_ARG);
    x[9] = NAN;
    memset(y2, 0, 64);
    ck_assert_int_eq(lq_nq_encode(&cd, x, 2, c, b, y2, NULL), LQ_ERR_NOT_FINITE);
    free(x);
    free(y);
    free(y2);
    free(c);
    free(b);
    free(c2);
    free(b2);
    free(cv);
    free(ov);
}
END_TEST

START_TEST(nestquant_rate_distortion)
{
    /* iid N(0,1), all side information counted (index bits): below
     * Lloyd-Max at ~3 bits (0.03454) and >= 20% below it at ~4 bits. */
    const size_t n = 8192;
    float *x = fa(8 * n), *y = fa(8 * n);
    uint8_t *c = malloc(8 * n), *b = malloc(n);
    lq_test_fill_gaussian(x, 8 * n, 1.0f, 71);
    lq_ctx *ctx = lq_test_ctx(1, LQ_SIMD_AUTO);
    struct {
        unsigned q, K;
        double bound;
    } cases[] = {{6, 8, 0.03454}, {12, 8, 0.8 * 0.009497}, {14, 4, 0.8 * 0.009497}};
    for (int i = 0; i < 3; i++) {
        lq_nq_coder cd;
        ck_assert_int_eq(lq_nq_coder_init(&cd, cases[i].q, cases[i].K), LQ_OK);
        ck_assert_int_eq(lq_nq_coder_fit(ctx, &cd, x, n), LQ_OK);
        ck_assert_int_eq(lq_nq_coder_check(&cd), LQ_OK);
        ck_assert_int_eq(lq_nq_encode(&cd, x, n, c, b, y, NULL), LQ_OK);
        double m = mse(x, y, 8 * n);
        double rate = log2(cases[i].q) + lq_nq_index_bits(cases[i].K) / 8.0;
        ck_assert_msg(m < cases[i].bound, "q=%u K=%u R=%.2f mse %g", cases[i].q, cases[i].K, rate,
                      m);
        ck_assert(m > pow(2.0, -2.0 * rate)); /* never below Shannon: sanity of the count */
        /* betas carry at most 8 significant bits */
        for (unsigned k = 0; k < cd.n_betas; k++) {
            int e;
            double f = frexp(cd.betas[k], &e) * 256.0;
            ck_assert(f == floor(f));
        }
    }
    lq_ctx_destroy(ctx);
    free(x);
    free(y);
    free(c);
    free(b);
}
END_TEST

typedef struct fit_arg {
    const float *x;
    size_t n;
} fit_arg;

static lq_status fit_body(lq_ctx *ctx, void *arg)
{
    fit_arg *a = arg;
    lq_nq_coder cd;
    lq_nq_coder_init(&cd, 14, 4);
    return lq_nq_coder_fit(ctx, &cd, a->x, a->n);
}

START_TEST(nestquant_fit_threads_and_alloc)
{
    const size_t n = 3000;
    float *x = fa(8 * n);
    lq_test_fill_gaussian(x, 8 * n, 2.0f, 81);
    lq_nq_coder c1, c2;
    lq_nq_coder_init(&c1, 14, 4);
    c2 = c1;
    lq_ctx *a = lq_test_ctx(1, LQ_SIMD_AUTO), *b = lq_test_ctx(2, LQ_SIMD_SCALAR);
    ck_assert_int_eq(lq_nq_coder_fit(a, &c1, x, n), LQ_OK);
    ck_assert_int_eq(lq_nq_coder_fit(b, &c2, x, n), LQ_OK);
    ck_assert_int_eq(memcmp(&c1, &c2, sizeof c1), 0);
    /* scale-equivariant data: betas scale with sigma (fit on 2x data) */
    ck_assert(c1.betas[0] > 1.5f * 3.0f / 14.0f);
    x[3] = NAN;
    lq_nq_coder c3 = c1;
    ck_assert_int_eq(lq_nq_coder_fit(a, &c3, x, n), LQ_ERR_NOT_FINITE);
    ck_assert_int_eq(memcmp(&c1, &c3, sizeof c1), 0);
    ck_assert_int_eq(lq_nq_coder_fit(a, &c3, NULL, n), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_nq_coder_fit(a, &c3, x, 0), LQ_ERR_INVALID_ARG);
    x[3] = 0.0f;
    fit_arg fa_ = {x, 500};
    lq_test_alloc_sweep(fit_body, &fa_, 1);
    lq_test_alloc_sweep(fit_body, &fa_, 2);
    lq_ctx_destroy(a);
    lq_ctx_destroy(b);
    free(x);
}
END_TEST

/* ---- Hadamard ---------------------------------------------------------------- */
START_TEST(fwht_and_rht)
{
    float *x = fa(4096), *y = fa(4096), *z = fa(4096);
    for (size_t n = 1; n <= 4096; n *= 2) {
        lq_test_fill_gaussian(x, n, 1.0f, 90 + n);
        memcpy(y, x, n * sizeof(float));
        lq_lattice_kernels_at(LQ_SIMD_SCALAR)->fwht(y, n);
        for (int l = 1; l < NLEVELS; l++) { /* SIMD == scalar */
            memcpy(z, x, n * sizeof(float));
            lq_lattice_kernels_at(g_levels[l])->fwht(z, n);
            ck_assert_int_eq(memcmp(y, z, n * sizeof(float)), 0);
        }
        ck_assert_int_eq(lq_fwht(y, n), LQ_OK); /* H H = n I */
        for (size_t i = 0; i < n; i++) ck_assert(fabs(y[i] / n - x[i]) < 1e-4);
    }
    static const size_t sizes[] = {1, 2, 3, 7, 8, 11, 24, 100, 128, 1000, 4096};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        size_t n = sizes[si];
        lq_test_fill_gaussian(x, n, 1.0f, 200 + n);
        lq_test_fill_gaussian(z, n, 1.0f, 300 + n);
        memcpy(y, x, n * sizeof(float));
        double nx = 0, dxz = 0;
        for (size_t i = 0; i < n; i++) {
            nx += (double)x[i] * x[i];
            dxz += (double)x[i] * z[i];
        }
        ck_assert_int_eq(lq_rht_forward(y, n, 77), LQ_OK);
        ck_assert_int_eq(lq_rht_forward(z, n, 77), LQ_OK);
        double ny = 0, dyz = 0;
        for (size_t i = 0; i < n; i++) {
            ny += (double)y[i] * y[i];
            dyz += (double)y[i] * z[i];
        }
        ck_assert(fabs(ny - nx) <= 1e-5 * nx);               /* orthogonal */
        ck_assert(fabs(dyz - dxz) <= 1e-5 * (nx + 1.0) * 4); /* dot products kept */
        ck_assert_int_eq(lq_rht_inverse(y, n, 77), LQ_OK);
        for (size_t i = 0; i < n; i++) ck_assert(fabs(y[i] - x[i]) < 1e-5);
    }
    /* signs depend on the seed */
    lq_test_fill_gaussian(x, 64, 1.0f, 5);
    memcpy(y, x, 64 * sizeof(float));
    memcpy(z, x, 64 * sizeof(float));
    lq_rht_forward(y, 64, 1);
    lq_rht_forward(z, 64, 2);
    ck_assert_int_ne(memcmp(y, z, 64 * sizeof(float)), 0);
    /* rows in parallel == one by one, 1 and 2 threads */
    const size_t rows = 37, n = 100, ld = 104;
    float *A = fa(rows * ld), *B = fa(rows * ld), *C = fa(rows * ld);
    lq_test_fill_gaussian(A, rows * ld, 1.0f, 9);
    memcpy(B, A, rows * ld * sizeof(float));
    memcpy(C, A, rows * ld * sizeof(float));
    lq_ctx *c1 = lq_test_ctx(1, LQ_SIMD_AUTO), *c2 = lq_test_ctx(2, LQ_SIMD_SCALAR);
    ck_assert_int_eq(lq_rht_rows(c1, B, rows, n, ld, 3, 0), LQ_OK);
    ck_assert_int_eq(lq_rht_rows(c2, C, rows, n, ld, 3, 0), LQ_OK);
    ck_assert_int_eq(memcmp(B, C, rows * ld * sizeof(float)), 0);
    for (size_t r = 0; r < rows; r++) {
        ck_assert_int_eq(lq_rht_forward(A + r * ld, n, 3), LQ_OK);
        ck_assert_int_eq(memcmp(A + r * ld, B + r * ld, ld * sizeof(float)), 0);
    }
    /* bad input */
    ck_assert_int_eq(lq_fwht(x, 12), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_fwht(NULL, 8), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_rht_forward(x, 0, 1), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_rht_rows(c1, A, rows, n, n - 1, 3, 0), LQ_ERR_INVALID_ARG);
    x[4] = NAN;
    memcpy(y, x, 16 * sizeof(float));
    ck_assert_int_eq(lq_rht_forward(y, 16, 1), LQ_ERR_NOT_FINITE);
    ck_assert_int_eq(memcmp(x, y, 16 * sizeof(float)), 0);
    A[5] = INFINITY;
    ck_assert_int_eq(lq_rht_rows(c1, A, rows, n, ld, 3, 0), LQ_ERR_NOT_FINITE);
    lq_ctx_destroy(c1);
    lq_ctx_destroy(c2);
    free(A);
    free(B);
    free(C);
    free(x);
    free(y);
    free(z);
}
END_TEST

/* ---- coded activations ------------------------------------------------------- */
typedef struct act_arg {
    const lq_nq_coder *c;
    const float *X;
    size_t batch, len;
    uint8_t *codes, *bidx;
    float *scales;
} act_arg;

static lq_status act_body(lq_ctx *ctx, void *arg)
{
    act_arg *a = arg;
    return lq_nq_act_encode(ctx, a->c, a->X, a->batch, a->len, a->len, 1, 5, a->codes, a->bidx,
                            a->scales, NULL);
}

START_TEST(coded_inner_product)
{
    const size_t batch = 6, len = 300, n8 = 304, nblk = 38;
    float *X = fa(batch * len), *ya = fa(n8), *yb = fa(n8), *xr = fa(n8), *wr = fa(n8);
    lq_test_fill_gaussian(X, batch * len, 1.5f, 101);
    uint8_t *codes = malloc(batch * n8), *bidx = malloc(batch * nblk);
    uint8_t *codes2 = malloc(batch * n8), *bidx2 = malloc(batch * nblk);
    float sc[6], sc2[6];
    lq_nq_coder ca, cb;
    lq_nq_coder_init(&ca, 16, 4);
    lq_nq_coder_init(&cb, 14, 2);
    lq_ctx *c1 = lq_test_ctx(1, LQ_SIMD_AUTO), *c2 = lq_test_ctx(2, LQ_SIMD_SCALAR);
    size_t nov;
    ck_assert_int_eq(lq_nq_act_encode(c1, &ca, X, batch, len, len, 1, 5, codes, bidx, sc, &nov),
                     LQ_OK);
    ck_assert_int_eq(lq_nq_act_encode(c2, &ca, X, batch, len, len, 1, 5, codes2, bidx2, sc2, NULL),
                     LQ_OK);
    ck_assert_int_eq(memcmp(codes, codes2, batch * n8), 0);
    ck_assert_int_eq(memcmp(bidx, bidx2, batch * nblk), 0);
    ck_assert_int_eq(memcmp(sc, sc2, sizeof sc), 0);
    /* the other side with another coder */
    ck_assert_int_eq(lq_nq_act_encode(c1, &cb, X, batch, len, len, 1, 5, codes2, bidx2, sc2, NULL),
                     LQ_OK);
    for (size_t a = 0; a < batch; a++)
        for (size_t b = 0; b < batch; b++) {
            double dot;
            ck_assert_int_eq(lq_nq_dot(&ca, codes + a * n8, bidx + a * nblk, sc[a], &cb,
                                       codes2 + b * n8, bidx2 + b * nblk, sc2[b], nblk, &dot),
                             LQ_OK);
            /* decode then dot: exact products and sums in double */
            ck_assert_int_eq(lq_nq_decode(&ca, codes + a * n8, bidx + a * nblk, nblk, ya), LQ_OK);
            ck_assert_int_eq(lq_nq_decode(&cb, codes2 + b * n8, bidx2 + b * nblk, nblk, yb), LQ_OK);
            double ref = 0;
            for (size_t i = 0; i < n8; i++) ref += (double)ya[i] * (double)yb[i];
            ref = ref * ((double)sc[a] * (double)sc2[b]);
            ck_assert_msg(dot == ref, "coded %.17g vs decoded %.17g", dot, ref);
            /* and it approximates the true product (rotation keeps dots) */
            double tru = 0, nn = 0, mm = 0;
            for (size_t i = 0; i < len; i++) {
                tru += (double)X[a * len + i] * X[b * len + i];
                nn += (double)X[a * len + i] * X[a * len + i];
                mm += (double)X[b * len + i] * X[b * len + i];
            }
            ck_assert(fabs(dot - tru) < 0.15 * sqrt(nn * mm) + 1e-9);
        }
    (void)xr;
    (void)wr;
    /* zero vector: scale 1, codes of 0 */
    float zero[16] = {0};
    ck_assert_int_eq(lq_nq_act_encode(c1, &ca, zero, 1, 16, 16, 0, 0, codes, bidx, sc, NULL),
                     LQ_OK);
    ck_assert(sc[0] == 1.0f);
    /* bad input */
    ck_assert_int_eq(lq_nq_act_encode(c1, &ca, X, batch, len, len - 1, 1, 5, codes, bidx, sc, NULL),
                     LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_nq_act_encode(c1, NULL, X, 1, len, len, 1, 5, codes, bidx, sc, NULL),
                     LQ_ERR_INVALID_ARG);
    memcpy(sc2, sc, sizeof sc);
    X[17] = NAN;
    ck_assert_int_eq(lq_nq_act_encode(c1, &ca, X, batch, len, len, 1, 5, codes, bidx, sc, NULL),
                     LQ_ERR_NOT_FINITE);
    ck_assert_int_eq(memcmp(sc, sc2, sizeof sc), 0);
    X[17] = 0.0f;
    double dot;
    bidx[0] = 4;
    ck_assert_int_eq(lq_nq_dot(&ca, codes, bidx, 1.0f, &ca, codes, bidx, 1.0f, nblk, &dot),
                     LQ_ERR_CORRUPT);
    ck_assert_int_eq(lq_nq_dot(&ca, codes, bidx, NAN, &ca, codes, bidx, 1.0f, nblk, &dot),
                     LQ_ERR_INVALID_ARG);
    act_arg aa = {&ca, X, 3, len, codes, bidx, sc};
    lq_test_alloc_sweep(act_body, &aa, 1);
    lq_test_alloc_sweep(act_body, &aa, 2);
    lq_ctx_destroy(c1);
    lq_ctx_destroy(c2);
    free(X);
    free(ya);
    free(yb);
    free(xr);
    free(wr);
    free(codes);
    free(bidx);
    free(codes2);
    free(bidx2);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("lattice");
    TCase *tn = tcase_create("nearest");
    tcase_set_timeout(tn, 600);
    tcase_add_test(tn, e8_nearest_properties);
    tcase_add_test(tn, e8_translation_equivariant);
    tcase_add_test(tn, d8_and_dn_properties);
    tcase_add_test(tn, normalized_second_moment);
    tcase_add_test(tn, simd_bit_identical);
    tcase_add_test(tn, nearest_bad_input);
    suite_add_tcase(s, tn);
    TCase *tv = tcase_create("voronoi");
    tcase_set_timeout(tv, 600);
    tcase_add_test(tv, voronoi_bits_and_generator);
    tcase_add_test(tv, voronoi_codebook_exact);
    tcase_add_test(tv, voronoi_roundtrip_and_overload);
    tcase_add_test(tv, voronoi_glue_levels);
    suite_add_tcase(s, tv);
    TCase *tq = tcase_create("nestquant");
    tcase_set_timeout(tq, 600);
    tcase_add_test(tq, nestquant_rule_and_levels);
    tcase_add_test(tq, nestquant_rate_distortion);
    tcase_add_test(tq, nestquant_fit_threads_and_alloc);
    tcase_add_test(tq, fwht_and_rht);
    tcase_add_test(tq, coded_inner_product);
    suite_add_tcase(s, tq);
    return lq_test_run(s);
}
