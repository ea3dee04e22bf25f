/* Dense linear algebra (src/core/linalg*.c): every routine against plain
 * triple-loop references on odd sizes, every SIMD level, 1 vs 2 threads. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/linalg.h"
#include "test_common.h"

/* Element-wise checks: Check records every passing ck_assert (a pipe write
 * each), which dominates loops over matrices; these call it only on failure. */
#define EXPECT(c)                                                                                  \
    do {                                                                                           \
        if (!(c)) ck_assert_msg(0, "line %d: %s", __LINE__, #c);                                   \
    } while (0)
#define EXPECT_LE(a, b)                                                                            \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(a_ <= b_)) ck_assert_msg(0, "line %d: %s <= %s: %g > %g", __LINE__, #a, #b, a_, b_); \
    } while (0)

static const size_t g_sizes[] = {1, 3, 17, 65, 130};
#define NSIZES (sizeof g_sizes / sizeof g_sizes[0])

static const lq_simd_level g_levels[] = {LQ_SIMD_SCALAR, LQ_SIMD_AVX2, LQ_SIMD_AVX512};
#define NLEVELS (sizeof g_levels / sizeof g_levels[0])

static float *falloc(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

static double *dalloc(size_t n)
{
    double *p = malloc((n ? n : 1) * sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

static void dfill(double *x, size_t n, uint64_t seed)
{
    float *t = falloc(n);
    lq_test_fill_uniform(t, n, -1.0f, 1.0f, seed);
    for (size_t i = 0; i < n; i++) x[i] = t[i];
    free(t);
}

/* op(X)(r, c) of a row-major matrix stored with leading dimension ld */
#define OPEL(X, tr, r, c, ld) ((tr) ? (X)[(size_t)(c) * (ld) + (r)] : (X)[(size_t)(r) * (ld) + (c)])

/* Reference: C = alpha op(A) op(B) + beta C in double, plus the bound
 * |alpha| sum |a||b| + |beta c| for an error tolerance. */
static void ref_gemm(lq_trans ta, lq_trans tb, size_t m, size_t n, size_t k, double alpha,
                     const double *A, size_t lda, const double *B, size_t ldb, double beta,
                     const double *C0, size_t ldc, double *R, double *bound)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = 0, a = 0;
            for (size_t p = 0; p < k; p++) {
                double x = OPEL(A, ta, i, p, lda) * OPEL(B, tb, p, j, ldb);
                s += x;
                a += fabs(x);
            }
            double c = beta == 0 ? 0 : beta * C0[i * ldc + j];
            R[i * n + j] = alpha * s + c;
            bound[i * n + j] = fabs(alpha) * a + fabs(c);
        }
}

typedef struct gemm_case {
    lq_trans ta, tb;
    size_t m, n, k;
    double alpha, beta;
} gemm_case;

/* Runs sgemm and dgemm on one case with ctx, checks both against the
 * reference; returns nothing, asserts. nan_c: fill C with NaN (beta 0). */
static void check_gemm_case(lq_ctx *ctx, const gemm_case *g, uint64_t seed)
{
    size_t ar = g->ta ? g->k : g->m, ac = g->ta ? g->m : g->k;
    size_t br = g->tb ? g->n : g->k, bc = g->tb ? g->k : g->n;
    size_t lda = ac + 3, ldb = bc + 1, ldc = g->n + 2;
    double *Ad = dalloc(ar * lda), *Bd = dalloc(br * ldb), *Cd = dalloc(g->m * ldc);
    double *R = dalloc(g->m * g->n), *bound = dalloc(g->m * g->n);
    float *A = falloc(ar * lda), *B = falloc(br * ldb), *C = falloc(g->m * ldc);
    dfill(Ad, ar * lda, seed);
    dfill(Bd, br * ldb, seed + 1);
    dfill(Cd, g->m * ldc, seed + 2);
    if (g->beta == 0)
        for (size_t i = 0; i < g->m * ldc; i++) Cd[i] = NAN;
    for (size_t i = 0; i < ar * lda; i++) A[i] = (float)Ad[i];
    for (size_t i = 0; i < br * ldb; i++) B[i] = (float)Bd[i];
    for (size_t i = 0; i < g->m * ldc; i++) C[i] = (float)Cd[i];
    ref_gemm(g->ta, g->tb, g->m, g->n, g->k, g->alpha, Ad, lda, Bd, ldb, g->beta, Cd, ldc, R,
             bound);
    ck_assert_int_eq(lq_sgemm(ctx, g->ta, g->tb, g->m, g->n, g->k, (float)g->alpha, A, lda, B, ldb,
                              (float)g->beta, C, ldc),
                     LQ_OK);
    ck_assert_int_eq(
        lq_dgemm(ctx, g->ta, g->tb, g->m, g->n, g->k, g->alpha, Ad, lda, Bd, ldb, g->beta, Cd, ldc),
        LQ_OK);
    double ftol = 2.0 * ((double)g->k + 2.0) * FLT_EPSILON;
    double dtol = 2.0 * ((double)g->k + 2.0) * DBL_EPSILON;
    for (size_t i = 0; i < g->m; i++) {
        for (size_t j = 0; j < g->n; j++) {
            double r = R[i * g->n + j], b = bound[i * g->n + j] + DBL_MIN;
            double ef = fabs((double)C[i * ldc + j] - r), ed = fabs(Cd[i * ldc + j] - r);
            if (!(ef <= ftol * b))
                ck_assert_msg(0, "sgemm %c%c m%zu n%zu k%zu (%zu,%zu): %g vs %g", g->ta ? 'T' : 'N',
                              g->tb ? 'T' : 'N', g->m, g->n, g->k, i, j, (double)C[i * ldc + j], r);
            if (!(ed <= dtol * b))
                ck_assert_msg(0, "dgemm %c%c m%zu n%zu k%zu (%zu,%zu): %g vs %g", g->ta ? 'T' : 'N',
                              g->tb ? 'T' : 'N', g->m, g->n, g->k, i, j, Cd[i * ldc + j], r);
        }
        /* padding between rows is never written */
        for (size_t j = g->n; j < ldc; j++) {
            EXPECT(C[i * ldc + j] == (float)Cd[i * ldc + j] ||
                   (isnan(C[i * ldc + j]) && isnan(Cd[i * ldc + j])));
        }
    }
    free(Ad);
    free(Bd);
    free(Cd);
    free(R);
    free(bound);
    free(A);
    free(B);
    free(C);
}

START_TEST(gemm_odd_sizes_all_transposes)
{
    /* _i is the SIMD level index */
    lq_ctx *ctx = lq_test_ctx(2, g_levels[_i]);
    uint64_t seed = 100;
    for (int t = 0; t < 4; t++)
        for (size_t a = 0; a < NSIZES; a++)
            for (size_t b = 0; b < NSIZES; b++)
                for (size_t c = 0; c < NSIZES; c += (a + b) % 2 + 1) {
                    gemm_case g = {(lq_trans)(t & 1),
                                   (lq_trans)(t >> 1),
                                   g_sizes[a],
                                   g_sizes[b],
                                   g_sizes[c],
                                   1.0,
                                   0.0};
                    check_gemm_case(ctx, &g, seed++);
                }
    lq_ctx_destroy(ctx);
}
END_TEST

START_TEST(gemm_alpha_beta)
{
    lq_ctx *ctx = lq_test_ctx(2, g_levels[_i]);
    static const double ab[][2] = {{1, 0}, {0.5, 0}, {-1.5, 1}, {2, -0.5}, {0, 2}, {0, 0}, {1, 1}};
    uint64_t seed = 7;
    for (size_t q = 0; q < sizeof ab / sizeof ab[0]; q++)
        for (int t = 0; t < 4; t++) {
            gemm_case g = {(lq_trans)(t & 1), (lq_trans)(t >> 1), 67, 45, 29, ab[q][0], ab[q][1]};
            check_gemm_case(ctx, &g, seed++);
            gemm_case s = {(lq_trans)(t & 1), (lq_trans)(t >> 1), 5, 4, 3, ab[q][0], ab[q][1]};
            check_gemm_case(ctx, &s, seed++);
        }
    /* k = 0: C = beta C */
    gemm_case z = {LQ_NO_TRANS, LQ_NO_TRANS, 9, 11, 0, 1.0, 0.5};
    check_gemm_case(ctx, &z, seed++);
    lq_ctx_destroy(ctx);
}
END_TEST

START_TEST(gemm_crosses_block_sizes)
{
    /* sizes past every MC, KC and NC of every kernel */
    lq_ctx *ctx = lq_test_ctx(2, g_levels[_i]);
    gemm_case g1 = {LQ_NO_TRANS, LQ_NO_TRANS, 397, 131, 523, 1.0, 0.5};
    gemm_case g2 = {LQ_TRANS, LQ_TRANS, 397, 131, 523, -1.0, 0.0};
    gemm_case g3 = {LQ_NO_TRANS, LQ_TRANS, 7, 4133, 261, 0.75, 1.0};
    gemm_case g4 = {LQ_TRANS, LQ_NO_TRANS, 13, 4101, 37, 1.0, 0.0};
    check_gemm_case(ctx, &g1, 1);
    check_gemm_case(ctx, &g2, 2);
    check_gemm_case(ctx, &g3, 3);
    check_gemm_case(ctx, &g4, 4);
    lq_ctx_destroy(ctx);
}
END_TEST

/* sgemm on ctx; returns a malloc'd C */
static float *run_sgemm(lq_ctx *ctx, lq_trans ta, lq_trans tb, size_t m, size_t n, size_t k,
                        uint64_t seed)
{
    float *A = falloc(m * k), *B = falloc(k * n), *C = falloc(m * n);
    lq_test_fill_uniform(A, m * k, -1, 1, seed);
    lq_test_fill_uniform(B, k * n, -1, 1, seed + 1);
    lq_test_fill_uniform(C, m * n, -1, 1, seed + 2);
    ck_assert_int_eq(
        lq_sgemm(ctx, ta, tb, m, n, k, 1.25f, A, ta ? m : k, B, tb ? k : n, -0.5f, C, n), LQ_OK);
    free(A);
    free(B);
    return C;
}

static double *run_dgemm(lq_ctx *ctx, lq_trans ta, lq_trans tb, size_t m, size_t n, size_t k,
                         uint64_t seed)
{
    double *A = dalloc(m * k), *B = dalloc(k * n), *C = dalloc(m * n);
    dfill(A, m * k, seed);
    dfill(B, k * n, seed + 1);
    dfill(C, m * n, seed + 2);
    ck_assert_int_eq(lq_dgemm(ctx, ta, tb, m, n, k, 1.25, A, ta ? m : k, B, tb ? k : n, -0.5, C, n),
                     LQ_OK);
    free(A);
    free(B);
    return C;
}

START_TEST(gemm_threads_identical)
{
    lq_ctx *c1 = lq_test_ctx(1, g_levels[_i]);
    lq_ctx *c2 = lq_test_ctx(2, g_levels[_i]);
    lq_ctx *c3 = lq_test_ctx(3, g_levels[_i]);
    static const size_t dims[][3] = {{301, 77, 600}, {24, 1000, 70}, {1000, 19, 33}};
    for (size_t d = 0; d < 3; d++)
        for (int t = 0; t < 4; t++) {
            size_t m = dims[d][0], n = dims[d][1], k = dims[d][2];
            float *s1 = run_sgemm(c1, t & 1, t >> 1, m, n, k, 5);
            float *s2 = run_sgemm(c2, t & 1, t >> 1, m, n, k, 5);
            float *s3 = run_sgemm(c3, t & 1, t >> 1, m, n, k, 5);
            EXPECT(memcmp(s1, s2, m * n * sizeof *s1) == 0);
            EXPECT(memcmp(s1, s3, m * n * sizeof *s1) == 0);
            double *d1 = run_dgemm(c1, t & 1, t >> 1, m, n, k, 9);
            double *d2 = run_dgemm(c2, t & 1, t >> 1, m, n, k, 9);
            EXPECT(memcmp(d1, d2, m * n * sizeof *d1) == 0);
            free(s1);
            free(s2);
            free(s3);
            free(d1);
            free(d2);
        }
    lq_ctx_destroy(c1);
    lq_ctx_destroy(c2);
    lq_ctx_destroy(c3);
}
END_TEST

START_TEST(gemm_simd_matches_scalar)
{
    lq_ctx *cs = lq_test_ctx(1, LQ_SIMD_SCALAR);
    lq_ctx *cv = lq_test_ctx(2, g_levels[_i]);
    size_t m = 150, n = 290, k = 333;
    for (int t = 0; t < 4; t++) {
        float *a = run_sgemm(cs, t & 1, t >> 1, m, n, k, 11);
        float *b = run_sgemm(cv, t & 1, t >> 1, m, n, k, 11);
        /* entries are O(sqrt(k)); both are k-term float sums */
        EXPECT_LE(lq_test_max_abs_diff(a, b, m * n), 4e-5 * (double)k / 10);
        free(a);
        free(b);
    }
    lq_ctx_destroy(cs);
    lq_ctx_destroy(cv);
}
END_TEST

/* ---- allocation failure ---------------------------------------------- */
typedef struct gemm_alloc_arg {
    float *A, *B, *C, *C0;
    double *Ad, *Bd, *Cd, *Cd0;
    size_t m, n, k;
} gemm_alloc_arg;

static lq_status gemm_alloc_body(lq_ctx *ctx, void *arg)
{
    gemm_alloc_arg *g = arg;
    memcpy(g->C, g->C0, g->m * g->n * sizeof *g->C);
    memcpy(g->Cd, g->Cd0, g->m * g->n * sizeof *g->Cd);
    lq_status st = lq_sgemm(ctx, LQ_NO_TRANS, LQ_TRANS, g->m, g->n, g->k, 1.0f, g->A, g->k, g->B,
                            g->k, 1.0f, g->C, g->n);
    if (st != LQ_OK) {
        /* outputs untouched on failure */
        EXPECT(memcmp(g->C, g->C0, g->m * g->n * sizeof *g->C) == 0);
        return st;
    }
    st = lq_dgemm(ctx, LQ_TRANS, LQ_NO_TRANS, g->m, g->n, g->k, 1.0, g->Ad, g->m, g->Bd, g->n, 1.0,
                  g->Cd, g->n);
    if (st != LQ_OK) EXPECT(memcmp(g->Cd, g->Cd0, g->m * g->n * sizeof *g->Cd) == 0);
    return st;
}

START_TEST(gemm_alloc_failure)
{
    gemm_alloc_arg g = {0};
    g.m = 70;
    g.n = 90;
    g.k = 300;
    g.A = falloc(g.m * g.k);
    g.B = falloc(g.n * g.k);
    g.C = falloc(g.m * g.n);
    g.C0 = falloc(g.m * g.n);
    g.Ad = dalloc(g.m * g.k);
    g.Bd = dalloc(g.n * g.k);
    g.Cd = dalloc(g.m * g.n);
    g.Cd0 = dalloc(g.m * g.n);
    lq_test_fill_uniform(g.A, g.m * g.k, -1, 1, 1);
    lq_test_fill_uniform(g.B, g.n * g.k, -1, 1, 2);
    lq_test_fill_uniform(g.C0, g.m * g.n, -1, 1, 3);
    dfill(g.Ad, g.m * g.k, 4);
    dfill(g.Bd, g.n * g.k, 5);
    dfill(g.Cd0, g.m * g.n, 6);
    ck_assert_uint_ge(lq_test_alloc_sweep(gemm_alloc_body, &g, 1), 2);
    ck_assert_uint_ge(lq_test_alloc_sweep(gemm_alloc_body, &g, 2), 2);
    free(g.A);
    free(g.B);
    free(g.C);
    free(g.C0);
    free(g.Ad);
    free(g.Bd);
    free(g.Cd);
    free(g.Cd0);
}
END_TEST

/* ---- syrk --------------------------------------------------------------- */
START_TEST(syrk_reference)
{
    lq_ctx *ctx = lq_test_ctx(2, g_levels[_i]);
    static const double ab[][2] = {{1, 0}, {0.25, 1}, {-2, 0.5}};
    for (size_t a = 0; a < NSIZES; a++)
        for (size_t b = 0; b < NSIZES; b++)
            for (size_t q = 0; q < 3; q++) {
                size_t n = g_sizes[a], k = g_sizes[b], lda = n + 3, ldc = n + 1;
                float *A = falloc(k * lda), *C = falloc(n * ldc);
                double *Cd = dalloc(n * ldc);
                lq_test_fill_uniform(A, k * lda, -1, 1, 50 + a * 7 + b);
                lq_test_fill_uniform(C, n * ldc, -1, 1, 60 + a);
                for (size_t i = 0; i < n; i++)
                    for (size_t j = 0; j <= i; j++) C[i * ldc + j] = C[j * ldc + i];
                if (ab[q][1] == 0)
                    for (size_t i = 0; i < n * ldc; i++) C[i] = NAN;
                for (size_t i = 0; i < n * ldc; i++) Cd[i] = C[i];
                float *C0 = falloc(n * ldc);
                memcpy(C0, C, n * ldc * sizeof *C);
                ck_assert_int_eq(
                    lq_ssyrk_tn(ctx, n, k, (float)ab[q][0], A, lda, (float)ab[q][1], C, ldc),
                    LQ_OK);
                ck_assert_int_eq(lq_dsyrk_tn_f32(ctx, n, k, ab[q][0], A, lda, ab[q][1], Cd, ldc),
                                 LQ_OK);
                for (size_t i = 0; i < n; i++)
                    for (size_t j = 0; j < n; j++) {
                        double s = 0, bnd = 0;
                        for (size_t p = 0; p < k; p++) {
                            double x = (double)A[p * lda + i] * A[p * lda + j];
                            s += x;
                            bnd += fabs(x);
                        }
                        double c0 = ab[q][1] == 0 ? 0 : ab[q][1] * C0[i * ldc + j];
                        double r = ab[q][0] * s + c0;
                        bnd = fabs(ab[q][0]) * bnd + fabs(c0) + DBL_MIN;
                        EXPECT_LE(fabs(C[i * ldc + j] - r), 2.0 * (k + 2.0) * FLT_EPSILON * bnd);
                        EXPECT_LE(fabs(Cd[i * ldc + j] - r), 2.0 * (k + 2.0) * DBL_EPSILON * bnd);
                        /* exactly symmetric */
                        EXPECT(C[i * ldc + j] == C[j * ldc + i]);
                        EXPECT(Cd[i * ldc + j] == Cd[j * ldc + i]);
                    }
                free(A);
                free(C);
                free(C0);
                free(Cd);
            }
    lq_ctx_destroy(ctx);
}
END_TEST

START_TEST(syrk_threads_identical)
{
    lq_ctx *c1 = lq_test_ctx(1, g_levels[_i]);
    lq_ctx *c2 = lq_test_ctx(2, g_levels[_i]);
    size_t n = 203, k = 517;
    float *A = falloc(k * n), *C1 = falloc(n * n), *C2 = falloc(n * n);
    double *D1 = dalloc(n * n), *D2 = dalloc(n * n);
    lq_test_fill_uniform(A, k * n, -1, 1, 77);
    ck_assert_int_eq(lq_ssyrk_tn(c1, n, k, 0.5f, A, n, 0.0f, C1, n), LQ_OK);
    ck_assert_int_eq(lq_ssyrk_tn(c2, n, k, 0.5f, A, n, 0.0f, C2, n), LQ_OK);
    EXPECT(memcmp(C1, C2, n * n * sizeof *C1) == 0);
    ck_assert_int_eq(lq_dsyrk_tn_f32(c1, n, k, 0.5, A, n, 0.0, D1, n), LQ_OK);
    ck_assert_int_eq(lq_dsyrk_tn_f32(c2, n, k, 0.5, A, n, 0.0, D2, n), LQ_OK);
    EXPECT(memcmp(D1, D2, n * n * sizeof *D1) == 0);
    free(A);
    free(C1);
    free(C2);
    free(D1);
    free(D2);
    lq_ctx_destroy(c1);
    lq_ctx_destroy(c2);
}
END_TEST

/* ---- Cholesky, trtri, trsm ---------------------------------------------- */
/* SPD matrix H = M^T M / n + shift I (n x n, ld n) */
static void make_spd(double *H, size_t n, double shift, uint64_t seed)
{
    double *M = dalloc(n * n);
    dfill(M, n * n, seed);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j <= i; j++) {
            double s = 0;
            for (size_t p = 0; p < n; p++) s += M[p * n + i] * M[p * n + j];
            H[i * n + j] = H[j * n + i] = s / (double)n + (i == j ? shift : 0.0);
        }
    free(M);
}

static const size_t g_chol_sizes[] = {1, 3, 17, 65, 130, 301};

START_TEST(potrf_reference)
{
    lq_ctx *ctx = lq_test_ctx(2, g_levels[_i]);
    for (size_t q = 0; q < sizeof g_chol_sizes / sizeof g_chol_sizes[0]; q++) {
        size_t n = g_chol_sizes[q], lda = n + 2;
        double *H = dalloc(n * n), *L = dalloc(n * lda);
        float *Lf = falloc(n * lda);
        make_spd(H, n, 0.1, 900 + q);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < lda; j++) {
                L[i * lda + j] = j < n ? H[i * n + j] : -7.0;
                Lf[i * lda + j] = (float)L[i * lda + j];
            }
        ck_assert_int_eq(lq_dpotrf_lower(ctx, L, n, lda), LQ_OK);
        ck_assert_int_eq(lq_spotrf_lower(ctx, Lf, n, lda), LQ_OK);
        double hmax = 0;
        for (size_t i = 0; i < n * n; i++) hmax = fmax(hmax, fabs(H[i]));
        for (size_t i = 0; i < n; i++) {
            EXPECT(L[i * lda + i] > 0);
            for (size_t j = 0; j <= i; j++) {
                double s = 0, sf = 0;
                for (size_t p = 0; p <= j; p++) {
                    s += L[i * lda + p] * L[j * lda + p];
                    sf += (double)Lf[i * lda + p] * Lf[j * lda + p];
                }
                EXPECT_LE(fabs(s - H[i * n + j]), 50 * n * DBL_EPSILON * hmax);
                EXPECT_LE(fabs(sf - H[i * n + j]), 50 * n * FLT_EPSILON * hmax);
            }
            /* strict upper triangle and padding untouched */
            for (size_t j = i + 1; j < lda; j++) {
                double orig = j < n ? H[i * n + j] : -7.0;
                EXPECT(L[i * lda + j] == orig);
                EXPECT(Lf[i * lda + j] == (float)orig);
            }
        }
        free(H);
        free(L);
        free(Lf);
    }
    lq_ctx_destroy(ctx);
}
END_TEST

START_TEST(potrf_not_positive_definite)
{
    lq_ctx *ctx = lq_test_ctx(2, g_levels[_i]);
    static const size_t ns[] = {1, 2, 17, 200};
    for (size_t q = 0; q < 4; q++) {
        size_t n = ns[q];
        double *H = dalloc(n * n);
        float *Hf = falloc(n * n);
        /* indefinite: the last pivot goes negative */
        make_spd(H, n, 0.1, 40 + q);
        H[(n - 1) * n + (n - 1)] -= 1e3;
        for (size_t i = 0; i < n * n; i++) Hf[i] = (float)H[i];
        ck_assert_int_eq(lq_dpotrf_lower(ctx, H, n, n), LQ_ERR_NOT_POSITIVE_DEFINITE);
        ck_assert_int_eq(lq_spotrf_lower(ctx, Hf, n, n), LQ_ERR_NOT_POSITIVE_DEFINITE);
        /* zero matrix (singular), and a NaN on the diagonal */
        memset(H, 0, n * n * sizeof *H);
        ck_assert_int_eq(lq_dpotrf_lower(ctx, H, n, n), LQ_ERR_NOT_POSITIVE_DEFINITE);
        make_spd(H, n, 0.1, 40 + q);
        H[(n / 2) * n + n / 2] = NAN;
        for (size_t i = 0; i < n * n; i++) Hf[i] = (float)H[i];
        ck_assert_int_eq(lq_dpotrf_lower(ctx, H, n, n), LQ_ERR_NOT_POSITIVE_DEFINITE);
        ck_assert_int_eq(lq_spotrf_lower(ctx, Hf, n, n), LQ_ERR_NOT_POSITIVE_DEFINITE);
        free(H);
        free(Hf);
    }
    lq_ctx_destroy(ctx);
}
END_TEST

/* lower-triangular L (n x n, ld n), well conditioned, zero strict upper */
static void make_lower(double *L, size_t n, uint64_t seed)
{
    dfill(L, n * n, seed);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            if (j > i)
                L[i * n + j] = 0;
            else if (j == i)
                L[i * n + j] = 1.5 + fabs(L[i * n + j]);
            else
                L[i * n + j] *= 0.5 / sqrt((double)n);
        }
}

START_TEST(trtri_reference)
{
    lq_ctx *ctx = lq_test_ctx(2, g_levels[_i]);
    for (size_t q = 0; q < sizeof g_chol_sizes / sizeof g_chol_sizes[0]; q++) {
        size_t n = g_chol_sizes[q], ld = n + 1;
        double *L = dalloc(n * n), *X = dalloc(n * ld);
        make_lower(L, n, 300 + q);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < ld; j++) X[i * ld + j] = j < n ? L[i * n + j] : 3.0;
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++) X[i * ld + j] = 5.0; /* must stay */
        ck_assert_int_eq(lq_dtrtri_lower(ctx, X, n, ld), LQ_OK);
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j <= i; j++) {
                double s = 0;
                for (size_t p = j; p <= i; p++) s += L[i * n + p] * X[p * ld + j];
                EXPECT_LE(fabs(s - (i == j)), 100 * n * DBL_EPSILON);
            }
            for (size_t j = i + 1; j < ld; j++) EXPECT(X[i * ld + j] == (j < n ? 5.0 : 3.0));
        }
        free(L);
        free(X);
    }
    lq_ctx_destroy(ctx);
}
END_TEST

START_TEST(trsm_reference)
{
    lq_ctx *ctx = lq_test_ctx(2, g_levels[_i]);
    for (size_t q = 0; q < sizeof g_chol_sizes / sizeof g_chol_sizes[0]; q++)
        for (size_t r = 0; r < NSIZES; r += 2) {
            size_t n = g_chol_sizes[q], nr = g_sizes[r], ldl = n + 2, ldb = (n > nr ? n : nr) + 1;
            double *L0 = dalloc(n * n), *L = dalloc(n * ldl), *B = dalloc(ldb * ldb),
                   *X = dalloc(ldb * ldb);
            make_lower(L0, n, 500 + q);
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < ldl; j++)
                    L[i * ldl + j] = j <= i ? L0[i * n + j] : NAN; /* upper never read */
            for (int t = 0; t < 2; t++)
                for (int side = 0; side < 2; side++) {
                    size_t rows = side ? nr : n, cols = side ? n : nr;
                    dfill(B, ldb * ldb, 600 + q * 10 + r);
                    memcpy(X, B, ldb * ldb * sizeof *B);
                    lq_status st = side ? lq_dtrsm_right_lower(ctx, t, rows, cols, L, ldl, X, ldb)
                                        : lq_dtrsm_left_lower(ctx, t, rows, cols, L, ldl, X, ldb);
                    ck_assert_int_eq(st, LQ_OK);
                    for (size_t i = 0; i < rows; i++) {
                        for (size_t j = 0; j < cols; j++) {
                            double s = 0;
                            for (size_t p = 0; p < n; p++) {
                                /* op(L) entries from L0 */
                                if (!side) {
                                    double l = t ? L0[p * n + i] : L0[i * n + p];
                                    s += l * X[p * ldb + j];
                                } else {
                                    double l = t ? L0[j * n + p] : L0[p * n + j];
                                    s += X[i * ldb + p] * l;
                                }
                            }
                            EXPECT_LE(fabs(s - B[i * ldb + j]), 100 * n * DBL_EPSILON);
                        }
                        for (size_t j = cols; j < ldb; j++)
                            EXPECT(X[i * ldb + j] == B[i * ldb + j]);
                    }
                }
            free(L0);
            free(L);
            free(B);
            free(X);
        }
    lq_ctx_destroy(ctx);
}
END_TEST

START_TEST(chol_threads_identical)
{
    lq_ctx *c1 = lq_test_ctx(1, g_levels[_i]);
    lq_ctx *c2 = lq_test_ctx(2, g_levels[_i]);
    size_t n = 333;
    double *H = dalloc(n * n), *A1 = dalloc(n * n), *A2 = dalloc(n * n);
    float *F1 = falloc(n * n), *F2 = falloc(n * n);
    make_spd(H, n, 0.05, 8);
    memcpy(A1, H, n * n * sizeof *H);
    memcpy(A2, H, n * n * sizeof *H);
    for (size_t i = 0; i < n * n; i++) F1[i] = F2[i] = (float)H[i];
    ck_assert_int_eq(lq_dpotrf_lower(c1, A1, n, n), LQ_OK);
    ck_assert_int_eq(lq_dpotrf_lower(c2, A2, n, n), LQ_OK);
    EXPECT(memcmp(A1, A2, n * n * sizeof *A1) == 0);
    ck_assert_int_eq(lq_spotrf_lower(c1, F1, n, n), LQ_OK);
    ck_assert_int_eq(lq_spotrf_lower(c2, F2, n, n), LQ_OK);
    EXPECT(memcmp(F1, F2, n * n * sizeof *F1) == 0);
    ck_assert_int_eq(lq_dtrtri_lower(c1, A1, n, n), LQ_OK);
    ck_assert_int_eq(lq_dtrtri_lower(c2, A2, n, n), LQ_OK);
    EXPECT(memcmp(A1, A2, n * n * sizeof *A1) == 0);
    memcpy(A1, H, n * n * sizeof *H);
    memcpy(A2, H, n * n * sizeof *H);
    ck_assert_int_eq(lq_dtrsm_left_lower(c1, LQ_TRANS, 200, 300, F1 ? H : H, n, A1, n), LQ_OK);
    ck_assert_int_eq(lq_dtrsm_left_lower(c2, LQ_TRANS, 200, 300, H, n, A2, n), LQ_OK);
    EXPECT(memcmp(A1, A2, n * n * sizeof *A1) == 0);
    ck_assert_int_eq(lq_dtrsm_right_lower(c1, LQ_NO_TRANS, 300, 200, H, n, A1, n), LQ_OK);
    ck_assert_int_eq(lq_dtrsm_right_lower(c2, LQ_NO_TRANS, 300, 200, H, n, A2, n), LQ_OK);
    EXPECT(memcmp(A1, A2, n * n * sizeof *A1) == 0);
    free(H);
    free(A1);
    free(A2);
    free(F1);
    free(F2);
    lq_ctx_destroy(c1);
    lq_ctx_destroy(c2);
}
END_TEST

/* ---- Jacobi eigen / SVD ------------------------------------------------- */
START_TEST(syev_reconstructs)
{
    static const size_t ns[] = {1, 2, 3, 17, 65};
    for (size_t q = 0; q < 5; q++) {
        size_t n = ns[q], lda = n + 1, ldv = n + 2;
        double *H = dalloc(n * n), *A = dalloc(n * lda), *V = dalloc(n * ldv), *w = dalloc(n);
        make_spd(H, n, 0.0, 70 + q);
        /* make it indefinite too */
        for (size_t i = 0; i < n; i++) H[i * n + i] -= 0.3;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) A[i * lda + j] = H[i * n + j];
        ck_assert_int_eq(lq_dsyev_jacobi(NULL, A, n, lda, w, V, ldv), LQ_OK);
        for (size_t i = 0; i + 1 < n; i++) EXPECT_LE(w[i + 1], w[i]);
        double tr = 0, sw = 0;
        for (size_t i = 0; i < n; i++) {
            tr += H[i * n + i];
            sw += w[i];
        }
        EXPECT_LE(fabs(tr - sw), 1e-12 * n);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) {
                double r = 0, o = 0;
                for (size_t p = 0; p < n; p++) {
                    r += V[i * ldv + p] * w[p] * V[j * ldv + p];
                    o += V[p * ldv + i] * V[p * ldv + j];
                }
                EXPECT_LE(fabs(r - H[i * n + j]), 1e-12 * n);
                EXPECT_LE(fabs(o - (i == j)), 1e-12 * n);
            }
        free(H);
        free(A);
        free(V);
        free(w);
    }
    /* known spectrum: diag(3, -1, 2) rotated stays {3, 2, -1} */
    double A[9] = {3, 0, 0, 0, -1, 0, 0, 0, 2}, V[9], w[3];
    ck_assert_int_eq(lq_dsyev_jacobi(NULL, A, 3, 3, w, V, 3), LQ_OK);
    EXPECT(w[0] == 3 && w[1] == 2 && w[2] == -1);
    A[4] = NAN;
    ck_assert_int_eq(lq_dsyev_jacobi(NULL, A, 3, 3, w, V, 3), LQ_ERR_NOT_FINITE);
}
END_TEST

static void check_svd(size_t m, size_t n, const double *A, size_t lda)
{
    size_t r = m < n ? m : n, ldu = r + 1, ldvt = n + 2;
    double *U = dalloc(m * ldu), *s = dalloc(r), *Vt = dalloc(r * ldvt);
    double *A0 = dalloc(m * lda);
    memcpy(A0, A, m * lda * sizeof *A);
    ck_assert_int_eq(lq_dsvd_jacobi(NULL, A, m, n, lda, U, ldu, s, Vt, ldvt), LQ_OK);
    EXPECT(memcmp(A0, A, m * lda * sizeof *A) == 0);
    double amax = 1e-300;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) amax = fmax(amax, fabs(A[i * lda + j]));
    for (size_t i = 0; i < r; i++) {
        EXPECT_LE(0, s[i]);
        if (i + 1 < r) EXPECT_LE(s[i + 1], s[i]);
    }
    double tol = 1e-12 * (double)(m + n);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double x = 0;
            for (size_t p = 0; p < r; p++) x += U[i * ldu + p] * s[p] * Vt[p * ldvt + j];
            EXPECT_LE(fabs(x - A[i * lda + j]), tol * amax * (double)r);
        }
    for (size_t a = 0; a < r; a++)
        for (size_t b = 0; b < r; b++) {
            double u = 0, v = 0;
            for (size_t i = 0; i < m; i++) u += U[i * ldu + a] * U[i * ldu + b];
            for (size_t j = 0; j < n; j++) v += Vt[a * ldvt + j] * Vt[b * ldvt + j];
            EXPECT_LE(fabs(u - (a == b)), tol);
            EXPECT_LE(fabs(v - (a == b)), tol);
        }
    free(U);
    free(s);
    free(Vt);
    free(A0);
}

START_TEST(svd_reconstructs)
{
    static const size_t dims[][2] = {{1, 1},  {1, 5},   {5, 1},   {3, 17},
                                     {17, 3}, {65, 30}, {30, 65}, {40, 40}};
    for (size_t q = 0; q < sizeof dims / sizeof dims[0]; q++) {
        size_t m = dims[q][0], n = dims[q][1], lda = n + 1;
        double *A = dalloc(m * lda);
        dfill(A, m * lda, 800 + q);
        check_svd(m, n, A, lda);
        /* rank deficient: a zero column and a duplicated row */
        for (size_t i = 0; i < m; i++) A[i * lda + n / 2] = 0;
        if (m > 1)
            for (size_t j = 0; j < n; j++) A[(m - 1) * lda + j] = A[j];
        check_svd(m, n, A, lda);
        memset(A, 0, m * lda * sizeof *A);
        check_svd(m, n, A, lda);
        free(A);
    }
    double A[4] = {1, NAN, 0, 1}, U[4], s[2], Vt[4];
    ck_assert_int_eq(lq_dsvd_jacobi(NULL, A, 2, 2, 2, U, 2, s, Vt, 2), LQ_ERR_NOT_FINITE);
    /* known singular values: diag(2, -5) -> {5, 2} */
    double D[4] = {2, 0, 0, -5};
    ck_assert_int_eq(lq_dsvd_jacobi(NULL, D, 2, 2, 2, U, 2, s, Vt, 2), LQ_OK);
    EXPECT(s[0] == 5 && s[1] == 2);
}
END_TEST

START_TEST(zero_sizes_are_noops)
{
    float c = 3;
    double d = 4;
    ck_assert_int_eq(lq_sgemm(NULL, 0, 0, 0, 5, 5, 1, NULL, 5, NULL, 5, 0, NULL, 5), LQ_OK);
    ck_assert_int_eq(lq_dgemm(NULL, 0, 0, 5, 0, 5, 1, NULL, 5, NULL, 5, 0, NULL, 5), LQ_OK);
    ck_assert_int_eq(lq_ssyrk_tn(NULL, 0, 5, 1, NULL, 1, 0, NULL, 1), LQ_OK);
    ck_assert_int_eq(lq_ssyrk_tn(NULL, 1, 0, 1, NULL, 1, 0.5f, &c, 1), LQ_OK);
    EXPECT(c == 1.5f);
    ck_assert_int_eq(lq_dsyrk_tn_f32(NULL, 1, 0, 1, NULL, 1, 0.0, &d, 1), LQ_OK);
    EXPECT(d == 0);
    ck_assert_int_eq(lq_dpotrf_lower(NULL, NULL, 0, 1), LQ_OK);
    ck_assert_int_eq(lq_spotrf_lower(NULL, NULL, 0, 1), LQ_OK);
    ck_assert_int_eq(lq_dtrtri_lower(NULL, NULL, 0, 1), LQ_OK);
    ck_assert_int_eq(lq_dtrsm_left_lower(NULL, 0, 0, 3, NULL, 1, NULL, 3), LQ_OK);
    ck_assert_int_eq(lq_dtrsm_right_lower(NULL, 0, 3, 0, NULL, 1, NULL, 1), LQ_OK);
    ck_assert_int_eq(lq_dsyev_jacobi(NULL, NULL, 0, 1, NULL, NULL, 1), LQ_OK);
    ck_assert_int_eq(lq_dsvd_jacobi(NULL, NULL, 0, 3, 3, NULL, 1, NULL, NULL, 3), LQ_OK);
}
END_TEST

START_TEST(gemm_ex_triangles_and_workspace)
{
    /* lower/upper restricted products equal the full product on their
     * triangle, leave the other one untouched, and a caller workspace gives
     * the same bits as an allocated one */
    lq_ctx *ctx = lq_test_ctx(2, g_levels[_i]);
    static const size_t dims[][3] = {{5, 5, 3}, {97, 97, 40}, {130, 70, 300}, {61, 203, 129}};
    for (size_t d = 0; d < 4; d++)
        for (int t = 0; t < 4; t++) {
            size_t m = dims[d][0], n = dims[d][1], k = dims[d][2];
            lq_trans ta = t & 1, tb = t >> 1;
            float *A = falloc(m * k), *B = falloc(k * n), *F = falloc(m * n), *C = falloc(m * n);
            double *Ad = dalloc(m * k), *Bd = dalloc(k * n), *Fd = dalloc(m * n),
                   *Cd = dalloc(m * n);
            lq_test_fill_uniform(A, m * k, -1, 1, 31 + d);
            lq_test_fill_uniform(B, k * n, -1, 1, 41 + d);
            lq_test_fill_uniform(F, m * n, -1, 1, 51 + d);
            for (size_t i = 0; i < m * k; i++) Ad[i] = A[i];
            for (size_t i = 0; i < k * n; i++) Bd[i] = B[i];
            for (size_t i = 0; i < m * n; i++) Fd[i] = F[i];
            float *C0 = falloc(m * n);
            memcpy(C0, F, m * n * sizeof *F);
            ck_assert_int_eq(
                lq_sgemm(ctx, ta, tb, m, n, k, 0.5f, A, ta ? m : k, B, tb ? k : n, 2.0f, F, n),
                LQ_OK);
            ck_assert_int_eq(
                lq_dgemm(ctx, ta, tb, m, n, k, 0.5, Ad, ta ? m : k, Bd, tb ? k : n, 2.0, Fd, n),
                LQ_OK);
            for (int u = 1; u <= 2; u++) {
                size_t ws = lq_sgemm_work_size(ctx, m, n, k), wd = lq_dgemm_work_size(ctx, m, n, k);
                ck_assert_uint_ne(ws, SIZE_MAX);
                float *w = ws ? falloc(ws) : NULL;
                double *wdp = wd ? dalloc(wd) : NULL;
                for (int use_w = 0; use_w < 2; use_w++) {
                    memcpy(C, C0, m * n * sizeof *C);
                    for (size_t i = 0; i < m * n; i++) Cd[i] = C0[i];
                    ck_assert_int_eq(lq_sgemm_ex(ctx, (lq_uplo)u, ta, tb, m, n, k, 0.5f, A,
                                                 ta ? m : k, B, tb ? k : n, 2.0f, C, n,
                                                 use_w ? w : NULL),
                                     LQ_OK);
                    ck_assert_int_eq(lq_dgemm_ex(ctx, (lq_uplo)u, ta, tb, m, n, k, 0.5, Ad,
                                                 ta ? m : k, Bd, tb ? k : n, 2.0, Cd, n,
                                                 use_w ? wdp : NULL),
                                     LQ_OK);
                    for (size_t i = 0; i < m; i++)
                        for (size_t j = 0; j < n; j++) {
                            int in = u == LQ_LOWER ? i >= j : i <= j;
                            EXPECT(C[i * n + j] == (in ? F[i * n + j] : C0[i * n + j]));
                            EXPECT(Cd[i * n + j] == (in ? Fd[i * n + j] : (double)C0[i * n + j]));
                        }
                }
                free(w);
                free(wdp);
            }
            free(A);
            free(B);
            free(F);
            free(C);
            free(C0);
            free(Ad);
            free(Bd);
            free(Fd);
            free(Cd);
        }
    lq_ctx_destroy(ctx);
}
END_TEST

typedef struct tri_alloc_arg {
    size_t n;
    const double *H;
    double *A;
    float *Af;
    double *B;
} tri_alloc_arg;

static lq_status tri_alloc_body(lq_ctx *ctx, void *arg)
{
    tri_alloc_arg *g = arg;
    size_t n = g->n;
    memcpy(g->A, g->H, n * n * sizeof *g->A);
    for (size_t i = 0; i < n * n; i++) g->Af[i] = (float)g->H[i];
    lq_status st = lq_spotrf_lower(ctx, g->Af, n, n);
    if (st != LQ_OK) return st;
    st = lq_dpotrf_lower(ctx, g->A, n, n);
    if (st != LQ_OK) return st;
    for (size_t i = 0; i < n * n; i++) g->B[i] = g->H[i];
    for (int t = 0; t < 2; t++) {
        /* on failure the right-hand side is untouched */
        st = lq_dtrsm_left_lower(ctx, t, n, n, g->A, n, g->B, n);
        if (st != LQ_OK) {
            EXPECT(memcmp(g->B, g->H, n * n * sizeof *g->B) == 0);
            return st;
        }
        memcpy(g->B, g->H, n * n * sizeof *g->B);
        st = lq_dtrsm_right_lower(ctx, t, n, n, g->A, n, g->B, n);
        if (st != LQ_OK) {
            EXPECT(memcmp(g->B, g->H, n * n * sizeof *g->B) == 0);
            return st;
        }
        memcpy(g->B, g->H, n * n * sizeof *g->B);
    }
    memcpy(g->B, g->A, n * n * sizeof *g->B);
    st = lq_dtrtri_lower(ctx, g->A, n, n);
    if (st != LQ_OK) EXPECT(memcmp(g->B, g->A, n * n * sizeof *g->B) == 0);
    return st;
}

typedef struct syrk_alloc_arg {
    size_t n, k;
    const float *A;
    float *C;
    double *Cd;
} syrk_alloc_arg;

static lq_status syrk_alloc_body(lq_ctx *ctx, void *arg)
{
    syrk_alloc_arg *g = arg;
    for (size_t i = 0; i < g->n * g->n; i++) {
        g->C[i] = 1.0f;
        g->Cd[i] = 1.0;
    }
    lq_status st = lq_ssyrk_tn(ctx, g->n, g->k, 1.0f, g->A, g->n, 1.0f, g->C, g->n);
    if (st != LQ_OK) {
        for (size_t i = 0; i < g->n * g->n; i++) EXPECT(g->C[i] == 1.0f);
        return st;
    }
    st = lq_dsyrk_tn_f32(ctx, g->n, g->k, 1.0, g->A, g->n, 1.0, g->Cd, g->n);
    if (st != LQ_OK)
        for (size_t i = 0; i < g->n * g->n; i++) EXPECT(g->Cd[i] == 1.0);
    return st;
}

START_TEST(tri_and_syrk_alloc_failure)
{
    tri_alloc_arg g;
    g.n = 150;
    double *H = dalloc(g.n * g.n);
    make_spd(H, g.n, 0.1, 3);
    g.H = H;
    g.A = dalloc(g.n * g.n);
    g.Af = falloc(g.n * g.n);
    g.B = dalloc(g.n * g.n);
    ck_assert_uint_ge(lq_test_alloc_sweep(tri_alloc_body, &g, 1), 5);
    ck_assert_uint_ge(lq_test_alloc_sweep(tri_alloc_body, &g, 2), 5);
    free(H);
    free(g.A);
    free(g.Af);
    free(g.B);

    syrk_alloc_arg s;
    s.n = 70;
    s.k = 600;
    float *A = falloc(s.k * s.n);
    lq_test_fill_uniform(A, s.k * s.n, -1, 1, 4);
    s.A = A;
    s.C = falloc(s.n * s.n);
    s.Cd = dalloc(s.n * s.n);
    ck_assert_uint_ge(lq_test_alloc_sweep(syrk_alloc_body, &s, 2), 2);
    free(A);
    free(s.C);
    free(s.Cd);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("linalg");
    TCase *tc = tcase_create("linalg");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, gemm_odd_sizes_all_transposes, 0, NLEVELS);
    tcase_add_loop_test(tc, gemm_alpha_beta, 0, NLEVELS);
    tcase_add_loop_test(tc, gemm_crosses_block_sizes, 0, NLEVELS);
    tcase_add_loop_test(tc, gemm_threads_identical, 0, NLEVELS);
    tcase_add_loop_test(tc, gemm_simd_matches_scalar, 1, NLEVELS);
    tcase_add_test(tc, gemm_alloc_failure);
    tcase_add_loop_test(tc, gemm_ex_triangles_and_workspace, 0, NLEVELS);
    tcase_add_test(tc, tri_and_syrk_alloc_failure);
    tcase_add_loop_test(tc, syrk_reference, 0, NLEVELS);
    tcase_add_loop_test(tc, syrk_threads_identical, 0, NLEVELS);
    tcase_add_loop_test(tc, potrf_reference, 0, NLEVELS);
    tcase_add_loop_test(tc, potrf_not_positive_definite, 0, NLEVELS);
    tcase_add_loop_test(tc, trtri_reference, 0, NLEVELS);
    tcase_add_loop_test(tc, trsm_reference, 0, NLEVELS);
    tcase_add_loop_test(tc, chol_threads_identical, 0, NLEVELS);
    tcase_add_test(tc, syev_reconstructs);
    tcase_add_test(tc, svd_reconstructs);
    tcase_add_test(tc, zero_sizes_are_noops);
    suite_add_tcase(s, tc);
    return lq_test_run(s);
}
