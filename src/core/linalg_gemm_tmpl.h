/*
 * GEMM driver body, instantiated for float and double by linalg_gemm.c
 * (GT = element type, GP(x) = prefixed name, GK = kernel record type).
 *
 * BLIS loop structure: for each NC-wide panel of C's columns (jc) and each
 * KC-deep slice of k (pc): pack op(B)[pc:pc+kc, jc:jc+nc] once into NR-wide
 * micro-panels (in parallel, fixed chunks), then the C panel is cut into a
 * fixed grid of tiles (MC rows x a range of micro-panels); workers claim
 * tiles from an atomic counter, pack their MC x KC block of op(A) into MR-row
 * micro-panels and run the micro-kernel on every MR x NR tile. k is never
 * split across threads and each element's sum runs p = 0..k-1 in KC slices
 * in the same order whatever the tiling, so results do not depend on the
 * number of threads (nor on which worker computes a tile).
 */

typedef struct GP(gemm_job) {
    const GK *kr;
    lq_trans ta, tb;
    size_t m, n, k, lda, ldb, ldc;
    GT alpha;
    const GT *A, *B;
    GT *C;
    GT *bpack;   /* kc x (nc rounded up to nr) */
    GT *apack;   /* nworkers blocks of astride elements */
    size_t astride;
    /* current (jc, pc) phase */
    size_t jc, nc, pc, kc, npanels;
    GT beta;     /* user beta for pc == 0, then 1 */
    size_t mc, mb, nb, chunk; /* tile grid: mb row blocks x nb micro-panel chunks */
    atomic_size_t next;
} GP(gemm_job);

#define GEMM_BPACK_PANELS_PER_TASK 8

static void GP(gemm_pack_b_task)(void *arg, size_t t)
{
    GP(gemm_job) *j = arg;
    const size_t nr = j->kr->nr, kc = j->kc;
    size_t q0 = t * GEMM_BPACK_PANELS_PER_TASK;
    size_t q1 = q0 + GEMM_BPACK_PANELS_PER_TASK;
    if (q1 > j->npanels) q1 = j->npanels;
    for (size_t q = q0; q < q1; q++) {
        GT *dst = j->bpack + q * kc * nr;
        size_t c0 = j->jc + q * nr;
        size_t w = j->jc + j->nc - c0;
        if (w > nr) w = nr;
        if (j->tb == LQ_NO_TRANS) {
            const GT *src = j->B + j->pc * j->ldb + c0;
            for (size_t p = 0; p < kc; p++) {
                const GT *s = src + p * j->ldb;
                GT *d = dst + p * nr;
                size_t x = 0;
                for (; x < w; x++) d[x] = s[x];
                for (; x < nr; x++) d[x] = 0;
            }
        } else {
            /* op(B)(p, c) = B[c][p]: read rows of B, scatter by nr */
            for (size_t x = 0; x < w; x++) {
                const GT *s = j->B + (c0 + x) * j->ldb + j->pc;
                for (size_t p = 0; p < kc; p++) dst[p * nr + x] = s[p];
            }
            for (size_t x = w; x < nr; x++)
                for (size_t p = 0; p < kc; p++) dst[p * nr + x] = 0;
        }
    }
}

static void GP(gemm_pack_a)(const GP(gemm_job) *j, GT *dst, size_t i0, size_t rows)
{
    const size_t mr = j->kr->mr, kc = j->kc;
    for (size_t r0 = 0; r0 < rows; r0 += mr) {
        size_t h = rows - r0 < mr ? rows - r0 : mr;
        GT *d = dst + r0 * kc;
        if (j->ta == LQ_NO_TRANS) {
            for (size_t i = 0; i < h; i++) {
                const GT *s = j->A + (i0 + r0 + i) * j->lda + j->pc;
                for (size_t p = 0; p < kc; p++) d[p * mr + i] = s[p];
            }
        } else {
            for (size_t p = 0; p < kc; p++) {
                const GT *s = j->A + (j->pc + p) * j->lda + i0 + r0;
                for (size_t i = 0; i < h; i++) d[p * mr + i] = s[i];
            }
        }
        for (size_t i = h; i < mr; i++)
            for (size_t p = 0; p < kc; p++) d[p * mr + i] = 0;
    }
}

static void GP(gemm_worker)(void *arg, size_t w)
{
    GP(gemm_job) *j = arg;
    const GK *kr = j->kr;
    const size_t mr = kr->mr, nr = kr->nr, kc = j->kc;
    GT *ap = j->apack + w * j->astride;
    size_t packed_ib = SIZE_MAX;
    _Alignas(64) GT tmp[LQ_GEMM_MAX_TILE];
    for (;;) {
        size_t t = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (t >= j->mb * j->nb) break;
        size_t ib = t / j->nb, cb = t % j->nb;
        size_t i0 = ib * j->mc;
        size_t rows = j->m - i0 < j->mc ? j->m - i0 : j->mc;
        if (ib != packed_ib) {
            GP(gemm_pack_a)(j, ap, i0, rows);
            packed_ib = ib;
        }
        size_t q0 = cb * j->chunk, q1 = q0 + j->chunk;
        if (q1 > j->npanels) q1 = j->npanels;
        for (size_t q = q0; q < q1; q++) {
            const GT *bp = j->bpack + q * kc * nr;
            size_t c0 = j->jc + q * nr;
            size_t wc = j->jc + j->nc - c0 < nr ? j->jc + j->nc - c0 : nr;
            for (size_t r0 = 0; r0 < rows; r0 += mr) {
                size_t h = rows - r0 < mr ? rows - r0 : mr;
                GT *c = j->C + (i0 + r0) * j->ldc + c0;
                if (h == mr && wc == nr) {
                    kr->ukr(kc, ap + r0 * kc, bp, c, j->ldc, j->alpha, j->beta);
                    continue;
                }
                /* edge tile: the same kernel on a copy, so every element
                 * sees the same arithmetic as in a full tile */
                if (j->beta != 0)
                    for (size_t i = 0; i < h; i++)
                        for (size_t x = 0; x < wc; x++) tmp[i * nr + x] = c[i * j->ldc + x];
                kr->ukr(kc, ap + r0 * kc, bp, tmp, nr, j->alpha, j->beta);
                for (size_t i = 0; i < h; i++)
                    for (size_t x = 0; x < wc; x++) c[i * j->ldc + x] = tmp[i * nr + x];
            }
        }
    }
}

static void GP(gemm_scale)(size_t m, size_t n, GT beta, GT *C, size_t ldc)
{
    for (size_t i = 0; i < m; i++) {
        GT *c = C + i * ldc;
        if (beta == 0) {
            for (size_t x = 0; x < n; x++) c[x] = 0;
        } else if (beta != 1) {
            for (size_t x = 0; x < n; x++) c[x] *= beta;
        }
    }
}

static lq_status GP(gemm_packed)(lq_ctx *ctx, const GK *kr, lq_trans ta, lq_trans tb, size_t m,
                                 size_t n, size_t k, GT alpha, const GT *A, size_t lda,
                                 const GT *B, size_t ldb, GT beta, GT *C, size_t ldc)
{
    size_t nworkers = lq_ctx_nthreads(ctx);
    if (nworkers < 1) nworkers = 1;
    const size_t mr = kr->mr, nr = kr->nr;
    size_t kcmax = k < kr->kc ? k : kr->kc;
    size_t ncmax = n < kr->nc ? n : kr->nc;
    size_t bsize = kcmax * ((ncmax + nr - 1) / nr * nr);
    /* row-block height: full MC on one thread; with more threads shrink it
     * (never below MR) so there are about 4 tiles per worker */
    size_t mc = kr->mc;
    if (nworkers > 1) {
        size_t want = (m + 4 * nworkers - 1) / (4 * nworkers);
        want = (want + mr - 1) / mr * mr;
        if (want < mc) mc = want;
    }
    size_t mrows = m < mc ? (m + mr - 1) / mr * mr : mc;
    size_t astride = (mrows * kcmax + 15) / 16 * 16;
    size_t total;
    if (!lq_mul_ok(astride, nworkers, &total) || !lq_add_ok(total, bsize, &total))
        return LQ_ERR_NO_MEMORY;
    GT *buf = lq_alloc_array(ctx, total, sizeof(GT));
    if (!buf) return LQ_ERR_NO_MEMORY;

    GP(gemm_job) j;
    memset(&j, 0, sizeof j);
    j.kr = kr;
    j.ta = ta;
    j.tb = tb;
    j.m = m;
    j.n = n;
    j.k = k;
    j.lda = lda;
    j.ldb = ldb;
    j.ldc = ldc;
    j.alpha = alpha;
    j.A = A;
    j.B = B;
    j.C = C;
    j.bpack = buf;
    j.apack = buf + bsize;
    j.astride = astride;
    j.mc = mc;
    j.mb = (m + mc - 1) / mc;
    for (size_t jc = 0; jc < n; jc += kr->nc) {
        j.jc = jc;
        j.nc = n - jc < kr->nc ? n - jc : kr->nc;
        j.npanels = (j.nc + nr - 1) / nr;
        size_t nb = 1;
        if (nworkers > 1 && j.mb < 4 * nworkers) nb = (4 * nworkers + j.mb - 1) / j.mb;
        if (nb > j.npanels) nb = j.npanels;
        j.chunk = (j.npanels + nb - 1) / nb;
        j.nb = (j.npanels + j.chunk - 1) / j.chunk;
        for (size_t pc = 0; pc < k; pc += kr->kc) {
            j.pc = pc;
            j.kc = k - pc < kr->kc ? k - pc : kr->kc;
            j.beta = pc == 0 ? beta : (GT)1;
            lq_parallel_for(ctx, lq_chunks(j.npanels, GEMM_BPACK_PANELS_PER_TASK),
                            GP(gemm_pack_b_task), &j);
            atomic_store(&j.next, 0);
            size_t ntiles = j.mb * j.nb;
            lq_parallel_for(ctx, ntiles < nworkers ? ntiles : nworkers, GP(gemm_worker), &j);
        }
    }
    lq_free(ctx, buf);
    return LQ_OK;
}

/* Small products: plain loops, no packing, one thread (fixed order). */
static void GP(gemm_small)(lq_trans ta, lq_trans tb, size_t m, size_t n, size_t k, GT alpha,
                           const GT *A, size_t lda, const GT *B, size_t ldb, GT beta, GT *C,
                           size_t ldc)
{
    for (size_t i = 0; i < m; i++) {
        GT *c = C + i * ldc;
        for (size_t x = 0; x < n; x++) {
            GT s = 0;
            for (size_t p = 0; p < k; p++) {
                GT a = ta ? A[p * lda + i] : A[i * lda + p];
                GT b = tb ? B[x * ldb + p] : B[p * ldb + x];
                s += a * b;
            }
            c[x] = beta == 0 ? alpha * s : alpha * s + beta * c[x];
        }
    }
}
