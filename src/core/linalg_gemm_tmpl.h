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
    lq_uplo uplo;
    lq_trans ta, tb;
    size_t m, n, k, lda, ldb, ldc;
    GT alpha;
    const GT *A, *B;
    GT *C;
    GT *bpack; /* kc x (nc rounded up to nr) */
    GT *apack; /* nworkers blocks of astride elements */
    size_t astride;
    /* current (jc, pc) phase */
    size_t jc, nc, pc, kc, npanels;
    GT beta;                  /* user beta for pc == 0, then 1 */
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

static void GP(gemm_pack_a)(const GP(gemm_job) * j, GT *dst, size_t i0, size_t rows)
{
    const size_t mr = j->kr->mr, kc = j->kc;
    for (size_t r0 = 0; r0 < rows; r0 += mr) {
        size_t h = rows - r0 < mr ? rows - r0 : mr;
        GT *d = dst + r0 * kc;
        if (j->ta == LQ_NO_TRANS) {
            /* transpose in 8-column strips so the writes stay in a few lines */
            const GT *s = j->A + (i0 + r0) * j->lda + j->pc;
            size_t p0 = 0;
            for (; p0 + 8 <= kc; p0 += 8)
                for (size_t i = 0; i < h; i++)
                    for (size_t p = 0; p < 8; p++) d[(p0 + p) * mr + i] = s[i * j->lda + p0 + p];
            for (size_t i = 0; i < h; i++)
                for (size_t p = p0; p < kc; p++) d[p * mr + i] = s[i * j->lda + p];
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
                size_t ra = i0 + r0, rb = ra + h - 1; /* rows ra..rb, cols c0..c0+wc-1 */
                int partial = 0;
                if (j->uplo == LQ_LOWER) {
                    if (c0 > rb) continue; /* tile above the diagonal */
                    partial = c0 + wc - 1 > ra;
                } else if (j->uplo == LQ_UPPER) {
                    if (c0 + wc - 1 < ra) continue; /* tile below the diagonal */
                    partial = c0 < rb;
                }
                if (h == mr && wc == nr && !partial) {
                    kr->ukr(kc, ap + r0 * kc, bp, c, j->ldc, j->alpha, j->beta);
                    continue;
                }
                /* edge or diagonal tile: the same kernel on a copy, so every
                 * element sees the same arithmetic as in a full tile */
                if (j->beta != 0)
                    for (size_t i = 0; i < h; i++)
                        for (size_t x = 0; x < wc; x++) tmp[i * nr + x] = c[i * j->ldc + x];
                kr->ukr(kc, ap + r0 * kc, bp, tmp, nr, j->alpha, j->beta);
                for (size_t i = 0; i < h; i++) {
                    size_t x0 = 0, x1 = wc;
                    if (j->uplo == LQ_LOWER) x1 = ra + i + 1 <= c0 ? 0 : ra + i + 1 - c0;
                    if (x1 > wc) x1 = wc;
                    if (j->uplo == LQ_UPPER && ra + i > c0) x0 = ra + i - c0;
                    for (size_t x = x0; x < x1; x++) c[i * j->ldc + x] = tmp[i * nr + x];
                }
            }
        }
    }
}

static void GP(gemm_scale)(lq_uplo uplo, size_t m, size_t n, GT beta, GT *C, size_t ldc)
{
    for (size_t i = 0; i < m; i++) {
        GT *c = C + i * ldc;
        size_t x0 = uplo == LQ_UPPER ? (i < n ? i : n) : 0;
        size_t x1 = uplo == LQ_LOWER ? (i + 1 < n ? i + 1 : n) : n;
        if (beta == 0) {
            for (size_t x = x0; x < x1; x++) c[x] = 0;
        } else if (beta != 1) {
            for (size_t x = x0; x < x1; x++) c[x] *= beta;
        }
    }
}

/* Blocking of one call: row-block height and pack-buffer sizes. */
typedef struct GP(gemm_plan) {
    size_t nworkers, mc, bsize, astride, total;
} GP(gemm_plan);

static int GP(gemm_plan_make)(lq_ctx *ctx, const GK *kr, size_t m, size_t n, size_t k,
                              GP(gemm_plan) * pl)
{
    size_t nworkers = lq_ctx_nthreads(ctx);
    if (nworkers < 1) nworkers = 1;
    /* waking the pool costs more than a small product: run those on one
     * worker (the tiling never changes the results) */
    if ((double)m * (double)n * (double)k < GEMM_PARALLEL_FMAS) nworkers = 1;
    const size_t mr = kr->mr, nr = kr->nr;
    size_t kcmax = k < kr->kc ? k : kr->kc;
    size_t ncmax = n < kr->nc ? n : kr->nc;
    pl->nworkers = nworkers;
    pl->bsize = kcmax * ((ncmax + nr - 1) / nr * nr);
    /* row-block height: full MC on one worker; with more, a whole number of
     * row blocks per worker (at least 4, for the dynamic claiming to even
     * out a worker that the OS descheduled), never below MR */
    size_t mc = kr->mc;
    if (nworkers > 1) {
        size_t per = (m + nworkers * kr->mc - 1) / (nworkers * kr->mc);
        if (per < 4) per = 4;
        size_t want = (m + per * nworkers - 1) / (per * nworkers);
        want = (want + mr - 1) / mr * mr;
        if (want < mc) mc = want;
    }
    pl->mc = mc;
    /* A blocks sized for the full MC whatever the split, so that the size is
     * non-decreasing in m, n and k (workspaces sized for the largest call) */
    size_t mrows = m < kr->mc ? (m + mr - 1) / mr * mr : kr->mc;
    pl->astride = (mrows * kcmax + 15) / 16 * 16;
    size_t threads = lq_ctx_nthreads(ctx) < 1 ? 1 : lq_ctx_nthreads(ctx);
    return lq_mul_ok(pl->astride, threads, &pl->total) &&
           lq_add_ok(pl->total, pl->bsize, &pl->total);
}

static lq_status GP(gemm_packed)(lq_ctx *ctx, const GK *kr, lq_uplo uplo, lq_trans ta, lq_trans tb,
                                 size_t m, size_t n, size_t k, GT alpha, const GT *A, size_t lda,
                                 const GT *B, size_t ldb, GT beta, GT *C, size_t ldc, GT *work)
{
    GP(gemm_plan) pl;
    if (!GP(gemm_plan_make)(ctx, kr, m, n, k, &pl)) return LQ_ERR_NO_MEMORY;
    const size_t nr = kr->nr, nworkers = pl.nworkers, mc = pl.mc;
    GT *buf = work ? work : lq_alloc_array(ctx, pl.total, sizeof(GT));
    if (!buf) return LQ_ERR_NO_MEMORY;
    size_t bsize = pl.bsize, astride = pl.astride;

    GP(gemm_job) j;
    memset(&j, 0, sizeof j);
    j.kr = kr;
    j.uplo = uplo;
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
        if (nb == 0) nb = 1; /* npanels >= 1 since nc >= 1 */
        j.chunk = (j.npanels + nb - 1) / nb;
        if (j.chunk == 0) j.chunk = 1;
        j.nb = (j.npanels + j.chunk - 1) / j.chunk;
        for (size_t pc = 0; pc < k; pc += kr->kc) {
            j.pc = pc;
            j.kc = k - pc < kr->kc ? k - pc : kr->kc;
            j.beta = pc == 0 ? beta : (GT)1;
            if (nworkers > 1) {
                lq_parallel_for(ctx, lq_chunks(j.npanels, GEMM_BPACK_PANELS_PER_TASK),
                                GP(gemm_pack_b_task), &j);
            } else {
                for (size_t t = 0; t < lq_chunks(j.npanels, GEMM_BPACK_PANELS_PER_TASK); t++)
                    GP(gemm_pack_b_task)(&j, t);
            }
            atomic_store(&j.next, 0);
            size_t ntiles = j.mb * j.nb;
            lq_parallel_for(ctx, ntiles < nworkers ? ntiles : nworkers, GP(gemm_worker), &j);
        }
    }
    if (!work) lq_free(ctx, buf);
    return LQ_OK;
}

/* Small products: plain loops, no packing, one thread (fixed order). */
static void GP(gemm_small)(lq_uplo uplo, lq_trans ta, lq_trans tb, size_t m, size_t n, size_t k,
                           GT alpha, const GT *A, size_t lda, const GT *B, size_t ldb, GT beta,
                           GT *C, size_t ldc)
{
    for (size_t i = 0; i < m; i++) {
        GT *c = C + i * ldc;
        size_t x0 = uplo == LQ_UPPER ? (i < n ? i : n) : 0;
        size_t x1 = uplo == LQ_LOWER ? (i + 1 < n ? i + 1 : n) : n;
        for (size_t x = x0; x < x1; x++) {
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
