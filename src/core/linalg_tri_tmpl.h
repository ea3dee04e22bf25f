/*
 * Triangular kernels and the blocked Cholesky, instantiated for float and
 * double by linalg_chol.c (GT = element type, GP(x) = prefixed name,
 * GGEMM = the lq_[sd]gemm_ex of that type). L is lower triangular, row-major;
 * the strict upper triangle of L is never read.
 *
 * Solves, products with a triangle and the inverse are recursive: split the
 * triangle in two, recurse on the halves and apply the off-diagonal block
 * with one GEMM, down to TRI_BASE columns where plain substitution loops run
 * (parallel over independent rows or columns, sums in double). Almost all
 * flops go through the packed GEMM, and the split points and the order of
 * operations are fixed, so results do not depend on the thread count. Every
 * GEMM uses the caller's workspace `w` (sized once at the top), so nothing
 * can fail half-way.
 */

typedef struct GP(tri_ctx) {
    lq_ctx *ctx;
    GT *work;
} GP(tri_ctx);

/* sum_p x[p] y[p] in double with four partial sums: the substitution loops
 * are latency-bound on one accumulator (a fixed order, so still
 * deterministic). */
static inline double GP(dot)(const GT *x, const GT *y, size_t n)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t p = 0;
    for (; p + 4 <= n; p += 4) {
        s0 += (double)x[p] * y[p];
        s1 += (double)x[p + 1] * y[p + 1];
        s2 += (double)x[p + 2] * y[p + 2];
        s3 += (double)x[p + 3] * y[p + 3];
    }
    for (; p < n; p++) s0 += (double)x[p] * y[p];
    return (s0 + s1) + (s2 + s3);
}

/* ---- base cases (n <= TRI_BASE), parallel over independent vectors ----- */
typedef struct GP(tri_base_job) {
    int kind; /* 0: L X = B, 1: L^T X = B, 2: X L = B, 3: X L^T = B,
                 4: B := B L (trmm right), 5: B := L B (trmm left) */
    size_t n, count, ldl, ldb;
    const GT *L;
    GT *B;
} GP(tri_base_job);

static void GP(tri_base_task)(void *arg, size_t t)
{
    const GP(tri_base_job) *j = arg;
    const size_t n = j->n, ldl = j->ldl, ldb = j->ldb;
    const GT *L = j->L;
    GT *B = j->B;
    size_t v0 = t * TRI_GRAIN, v1 = v0 + TRI_GRAIN < j->count ? v0 + TRI_GRAIN : j->count;
    switch (j->kind) {
    case 0: /* columns [v0, v1) of B: forward substitution, row axpys */
        for (size_t i = 0; i < n; i++) {
            GT *bi = B + i * ldb;
            for (size_t p = 0; p < i; p++) {
                GT l = L[i * ldl + p];
                const GT *bp = B + p * ldb;
                for (size_t v = v0; v < v1; v++) bi[v] -= l * bp[v];
            }
            for (size_t v = v0; v < v1; v++) bi[v] /= L[i * ldl + i];
        }
        return;
    case 1: /* backward substitution with L^T */
        for (size_t i = n; i-- > 0;) {
            GT *bi = B + i * ldb;
            for (size_t p = i + 1; p < n; p++) {
                GT l = L[p * ldl + i];
                const GT *bp = B + p * ldb;
                for (size_t v = v0; v < v1; v++) bi[v] -= l * bp[v];
            }
            for (size_t v = v0; v < v1; v++) bi[v] /= L[i * ldl + i];
        }
        return;
    case 5: /* B := L B; row i uses rows p <= i, so descending i */
        for (size_t i = n; i-- > 0;) {
            GT *bi = B + i * ldb;
            for (size_t v = v0; v < v1; v++) bi[v] *= L[i * ldl + i];
            for (size_t p = 0; p < i; p++) {
                GT l = L[i * ldl + p];
                const GT *bp = B + p * ldb;
                for (size_t v = v0; v < v1; v++) bi[v] += l * bp[v];
            }
        }
        return;
    default: break;
    }
    for (size_t v = v0; v < v1; v++) {
        GT *b = B + v * ldb;
        if (j->kind == 2) { /* row v: x L = b, from the last column */
            for (size_t c = n; c-- > 0;) {
                double s = b[c];
                for (size_t p = c + 1; p < n; p++) s -= (double)b[p] * L[p * ldl + c];
                b[c] = (GT)(s / L[c * ldl + c]);
            }
        } else if (j->kind == 3) { /* row v: x L^T = b, from the first column */
            for (size_t c = 0; c < n; c++) {
                const GT *lc = L + c * ldl;
                b[c] = (GT)(((double)b[c] - GP(dot)(b, lc, c)) / lc[c]);
            }
        } else { /* row v: b := b L; b_c uses b_p for p >= c, so ascending c */
            for (size_t c = 0; c < n; c++) {
                double s = 0;
                for (size_t p = c; p < n; p++) s += (double)b[p] * L[p * ldl + c];
                b[c] = (GT)s;
            }
        }
    }
}

static void GP(tri_base)(const GP(tri_ctx) * tc, int kind, size_t n, size_t count, const GT *L,
                         size_t ldl, GT *B, size_t ldb)
{
    if (n == 0 || count == 0) return;
    GP(tri_base_job) j = {kind, n, count, ldl, ldb, L, B};
    lq_parallel_for(tc->ctx, lq_chunks(count, TRI_GRAIN), GP(tri_base_task), &j);
}

/* first-half size of a recursive split: a multiple of TRI_BASE */
static size_t GP(tri_split)(size_t n)
{
    size_t h = n / 2;
    h = (h + TRI_BASE - 1) / TRI_BASE * TRI_BASE;
    return h < n ? h : n / 2;
}

/* The GEMMs below cannot fail: the workspace covers every call. */
#define TRI_GEMM(tc, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)                         \
    (void)GGEMM((tc)->ctx, LQ_FULL, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc,          \
                (tc)->work)

/* L X = B (trans 0) or L^T X = B (trans 1); L n x n, B n x m. */
TRI_UNUSED static void GP(trsm_left)(const GP(tri_ctx) * tc, int trans, size_t n, size_t m,
                                     const GT *L, size_t ldl, GT *B, size_t ldb)
{
    if (n <= TRI_BASE) {
        GP(tri_base)(tc, trans ? 1 : 0, n, m, L, ldl, B, ldb);
        return;
    }
    size_t n1 = GP(tri_split)(n), n2 = n - n1;
    const GT *Lb = L + n1 * ldl, *Lc = Lb + n1;
    GT *B2 = B + n1 * ldb;
    if (!trans) {
        GP(trsm_left)(tc, 0, n1, m, L, ldl, B, ldb);
        TRI_GEMM(tc, LQ_NO_TRANS, LQ_NO_TRANS, n2, m, n1, (GT)-1, Lb, ldl, B, ldb, (GT)1, B2, ldb);
        GP(trsm_left)(tc, 0, n2, m, Lc, ldl, B2, ldb);
    } else {
        GP(trsm_left)(tc, 1, n2, m, Lc, ldl, B2, ldb);
        TRI_GEMM(tc, LQ_TRANS, LQ_NO_TRANS, n1, m, n2, (GT)-1, Lb, ldl, B2, ldb, (GT)1, B, ldb);
        GP(trsm_left)(tc, 1, n1, m, L, ldl, B, ldb);
    }
}

/* X L = B (trans 0) or X L^T = B (trans 1); L n x n, B m x n. */
TRI_UNUSED static void GP(trsm_right)(const GP(tri_ctx) * tc, int trans, size_t m, size_t n,
                                      const GT *L, size_t ldl, GT *B, size_t ldb)
{
    if (n <= TRI_BASE) {
        GP(tri_base)(tc, trans ? 3 : 2, n, m, L, ldl, B, ldb);
        return;
    }
    size_t n1 = GP(tri_split)(n), n2 = n - n1;
    const GT *Lb = L + n1 * ldl, *Lc = Lb + n1;
    GT *B2 = B + n1;
    if (!trans) {
        GP(trsm_right)(tc, 0, m, n2, Lc, ldl, B2, ldb);
        TRI_GEMM(tc, LQ_NO_TRANS, LQ_NO_TRANS, m, n1, n2, (GT)-1, B2, ldb, Lb, ldl, (GT)1, B, ldb);
        GP(trsm_right)(tc, 0, m, n1, L, ldl, B, ldb);
    } else {
        GP(trsm_right)(tc, 1, m, n1, L, ldl, B, ldb);
        TRI_GEMM(tc, LQ_NO_TRANS, LQ_TRANS, m, n2, n1, (GT)-1, B, ldb, Lb, ldl, (GT)1, B2, ldb);
        GP(trsm_right)(tc, 1, m, n2, Lc, ldl, B2, ldb);
    }
}

/* B := B L (B m x n) */
TRI_UNUSED static void GP(trmm_right)(const GP(tri_ctx) * tc, size_t m, size_t n, const GT *L,
                                      size_t ldl, GT *B, size_t ldb)
{
    if (n <= TRI_BASE) {
        GP(tri_base)(tc, 4, n, m, L, ldl, B, ldb);
        return;
    }
    size_t n1 = GP(tri_split)(n), n2 = n - n1;
    const GT *Lb = L + n1 * ldl, *Lc = Lb + n1;
    GT *B2 = B + n1;
    GP(trmm_right)(tc, m, n1, L, ldl, B, ldb);
    TRI_GEMM(tc, LQ_NO_TRANS, LQ_NO_TRANS, m, n1, n2, (GT)1, B2, ldb, Lb, ldl, (GT)1, B, ldb);
    GP(trmm_right)(tc, m, n2, Lc, ldl, B2, ldb);
}

/* B := L B (B n x m) */
TRI_UNUSED static void GP(trmm_left)(const GP(tri_ctx) * tc, size_t n, size_t m, const GT *L,
                                     size_t ldl, GT *B, size_t ldb)
{
    if (n <= TRI_BASE) {
        GP(tri_base)(tc, 5, n, m, L, ldl, B, ldb);
        return;
    }
    size_t n1 = GP(tri_split)(n), n2 = n - n1;
    const GT *Lb = L + n1 * ldl, *Lc = Lb + n1;
    GT *B2 = B + n1 * ldb;
    GP(trmm_left)(tc, n2, m, Lc, ldl, B2, ldb);
    TRI_GEMM(tc, LQ_NO_TRANS, LQ_NO_TRANS, n2, m, n1, (GT)1, Lb, ldl, B, ldb, (GT)1, B2, ldb);
    GP(trmm_left)(tc, n1, m, L, ldl, B, ldb);
}

/* In-place inverse: X11 = L11^-1, X22 = L22^-1, X21 = -X22 L21 X11. */
TRI_UNUSED static void GP(trtri)(const GP(tri_ctx) * tc, size_t n, GT *L, size_t ldl)
{
    if (n <= TRI_BASE) {
        for (size_t i = 0; i < n; i++) {
            GT *li = L + i * ldl;
            double dinv = 1.0 / li[i];
            for (size_t c = 0; c < i; c++) {
                double s = 0.0;
                for (size_t p = c; p < i; p++) s += (double)li[p] * L[p * ldl + c];
                li[c] = (GT)(-s * dinv);
            }
            li[i] = (GT)dinv;
        }
        return;
    }
    size_t n1 = GP(tri_split)(n), n2 = n - n1;
    GT *L21 = L + n1 * ldl, *L22 = L21 + n1;
    GP(trtri)(tc, n1, L, ldl);
    GP(trtri)(tc, n2, L22, ldl);
    GP(trmm_right)(tc, n2, n1, L, ldl, L21, ldl);
    GP(trmm_left)(tc, n2, n1, L22, ldl, L21, ldl);
    for (size_t i = 0; i < n2; i++)
        for (size_t c = 0; c < n1; c++) L21[i * ldl + c] = -L21[i * ldl + c];
}

/* Unblocked Cholesky of a diagonal block, sums in double. */
static lq_status GP(potrf_unblocked)(GT *A, size_t n, size_t lda)
{
    for (size_t c = 0; c < n; c++) {
        GT *ac = A + c * lda;
        double d = (double)ac[c] - GP(dot)(ac, ac, c);
        if (!(d > 0.0) || !isfinite(d)) return LQ_ERR_NOT_POSITIVE_DEFINITE;
        GT lcc = (GT)sqrt(d);
        if (!(lcc > 0)) return LQ_ERR_NOT_POSITIVE_DEFINITE; /* underflow in float */
        ac[c] = lcc;
        for (size_t i = c + 1; i < n; i++) {
            GT *ai = A + i * lda;
            ai[c] = (GT)(((double)ai[c] - GP(dot)(ai, ac, c)) / (double)lcc);
        }
    }
    return LQ_OK;
}

/* Right-looking blocked Cholesky: factor the diagonal block, solve the panel
 * below it (A21 := A21 L11^-T), update the trailing lower triangle
 * (A22 -= A21 A21^T) with one triangle-restricted GEMM. */
static lq_status GP(potrf_blocked)(const GP(tri_ctx) * tc, GT *A, size_t n, size_t lda)
{
    for (size_t j0 = 0; j0 < n; j0 += POTRF_NB) {
        size_t jb = n - j0 < POTRF_NB ? n - j0 : POTRF_NB, j1 = j0 + jb, nt = n - j1;
        GT *A11 = A + j0 * lda + j0;
        lq_status st = GP(potrf_unblocked)(A11, jb, lda);
        if (st != LQ_OK) return st;
        if (nt == 0) break;
        GT *A21 = A + j1 * lda + j0, *A22 = A + j1 * lda + j1;
        GP(trsm_right)(tc, 1, nt, jb, A11, lda, A21, lda);
        (void)GGEMM(tc->ctx, LQ_LOWER, LQ_NO_TRANS, LQ_TRANS, nt, nt, jb, (GT)-1, A21, lda, A21,
                    lda, (GT)1, A22, lda, tc->work);
    }
    return LQ_OK;
}
