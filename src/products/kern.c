/*
 * The products on codes (lq_matvec, lq_matmul, lq_matmul_ex,
 * lq_qtensor_prepare): routing to the per-format kernels (the kernel layout
 * cache, activation preparation and the row split across threads), and the
 * format's reference product when it has no kernel for the tensor.
 */
#include <math.h>
#include <string.h>

#include "products/products.h"

extern const lq_kern_format lq_kern_int;
extern const lq_kern_format lq_kern_bcq;
extern const lq_kern_format lq_kern_vq;
extern const lq_kern_format lq_kern_aq;
extern const lq_kern_format lq_kern_e8;
extern const lq_kern_format lq_kern_e8p;
/* One row per format that has kernels (declare it above, add a row). */
static const lq_kern_format *const g_kern[] = {
    &lq_kern_int, &lq_kern_bcq, &lq_kern_vq, &lq_kern_aq, &lq_kern_e8, &lq_kern_e8p, NULL,
};

const lq_kern_format *lq_kern_lookup(lq_format f)
{
    for (size_t i = 0; g_kern[i]; i++)
        if (g_kern[i]->format == f) return g_kern[i];
    return NULL;
}

/* The cache: a small header (release hook, format record) in front of the
 * pack, so that lq_qtensor_free can release it without knowing the format
 * or this layer. */
typedef struct kcache {
    lq_qt_memo memo; /* first: the tensor holds a pointer to it */
    const lq_kern_format *kf;
    void *pack;
    lq_status st; /* LQ_OK, or LQ_ERR_UNSUPPORTED remembered (no kernel layout) */
} kcache;

static void kcache_release(lq_qt_memo *m, const lq_allocator *a)
{
    kcache *c = (kcache *)(void *)m;
    if (c->pack && c->kf->pack_free) c->kf->pack_free(a, c->pack);
    lq_free_with(a, c);
}

lq_status lq_kern_pack(const lq_qtensor *t, const lq_kern_format *kf, const void **pack)
{
    /* The tensor is logically const: the cache is an invisible memo, set
     * once with a compare-and-swap so concurrent first calls are safe. */
    lq_qtensor *mt = (lq_qtensor *)(uintptr_t)t;
    kcache *c = (kcache *)(void *)__atomic_load_n(&mt->kpack, __ATOMIC_ACQUIRE);
    if (c) {
        *pack = c->pack;
        return c->st;
    }
    lq_status st = lq_qtensor_validate(t);
    if (st != LQ_OK) return st;
    c = lq_alloc_with(&mt->alloc, sizeof *c);
    if (!c) return LQ_ERR_NO_MEMORY;
    c->memo.release = kcache_release;
    c->kf = kf;
    c->pack = NULL;
    c->st = LQ_OK;
    if (kf->prepare) {
        st = kf->prepare(t, &mt->alloc, &c->pack);
        if (st == LQ_ERR_UNSUPPORTED) {
            c->pack = NULL;
            c->st = st; /* remembered: the reference path serves this tensor */
        } else if (st != LQ_OK) {
            lq_free_with(&mt->alloc, c);
            return st;
        }
    }
    lq_qt_memo *expected = NULL;
    if (!__atomic_compare_exchange_n(&mt->kpack, &expected, &c->memo, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        /* another thread won: use its pack */
        kcache_release(&c->memo, &mt->alloc);
        c = (kcache *)(void *)expected;
    }
    *pack = c->pack;
    return c->st;
}

static lq_kern_rows_fn select_slot(const lq_kern_rows_fn *row, lq_simd_level level,
                                   lq_simd_level *slot)
{
    switch (level) {
    case LQ_SIMD_AVX512:
        if (row[LQ_SIMD_AVX512]) return *slot = LQ_SIMD_AVX512, row[LQ_SIMD_AVX512];
        /* fall through */
    case LQ_SIMD_AVX2:
        if (row[LQ_SIMD_AVX2]) return *slot = LQ_SIMD_AVX2, row[LQ_SIMD_AVX2];
        break;
    case LQ_SIMD_NEON:
        if (row[LQ_SIMD_NEON]) return *slot = LQ_SIMD_NEON, row[LQ_SIMD_NEON];
        break;
    default: break;
    }
    *slot = LQ_SIMD_SCALAR;
    return row[LQ_SIMD_SCALAR];
}

lq_kern_rows_fn lq_kern_select(const lq_kern_format *kf, lq_kernel_mode mode, lq_simd_level level,
                               lq_simd_level *slot)
{
    lq_simd_level s;
    lq_kern_rows_fn fn = select_slot(kf->rows[mode == LQ_KERNEL_FAST ? 1 : 0], level, &s);
    if (slot) *slot = fn ? s : level;
    return fn;
}

void lq_kern_plan_for(lq_ctx *ctx, const lq_qtensor *t, lq_kernel_mode mode, lq_kern_plan *plan)
{
    lq_simd_level level = lq_simd_for(ctx);
    lq_kern_plan p = {lq_kern_lookup(t->format), mode, NULL, level, level};
    if (p.kf) {
        p.rows = lq_kern_select(p.kf, mode, level, &p.rows_level);
        if (!p.rows && mode == LQ_KERNEL_FAST) {
            p.mode = LQ_KERNEL_EXACT;
            p.rows = lq_kern_select(p.kf, p.mode, level, &p.rows_level);
        }
    }
    *plan = p;
}

/* Rows per task: a fixed multiple of the tile, independent of threads. */
#define KERN_GRAIN (4 * LQ_KERN_TILE)

typedef struct kjob {
    lq_kern_rows_fn fn;
    const void *pack, *act;
    size_t batch, rows, grain;
    float *Y;
} kjob;

static void kern_task(void *arg, size_t i)
{
    kjob *j = arg;
    size_t r0 = i * j->grain, r1 = r0 + j->grain;
    if (r1 > j->rows) r1 = j->rows;
    j->fn(j->pack, j->act, j->batch, j->Y, j->rows, r0, r1);
}

lq_status lq_kern_matmul(lq_ctx *ctx, const lq_qtensor *t, const float *X, size_t batch, float *Y,
                         lq_kernel_mode mode)
{
    lq_kern_plan plan;
    lq_kern_plan_for(ctx, t, mode, &plan);
    const lq_kern_format *kf = plan.kf;
    lq_kern_rows_fn fn = plan.rows;
    mode = plan.mode;
    if (!kf || !fn) return LQ_ERR_UNSUPPORTED;
    const void *pack;
    lq_status st = lq_kern_pack(t, kf, &pack);
    if (st != LQ_OK) return st; /* UNSUPPORTED: the caller uses the reference */
    size_t chunk = kf->max_batch ? kf->max_batch(pack, mode) : 0;
    if (chunk == 0 || chunk > batch) chunk = batch;
    size_t bytes = kf->act_bytes(pack, chunk, mode);
    void *act = lq_alloc(ctx, bytes ? bytes : 1);
    if (!act) return LQ_ERR_NO_MEMORY;
    for (size_t b0 = 0; b0 < batch; b0 += chunk) {
        size_t nb = batch - b0 < chunk ? batch - b0 : chunk;
        kf->act_build(pack, X + b0 * t->cols, nb, mode, plan.level, act);
        size_t grain = kf->grain ? kf->grain : KERN_GRAIN;
        kjob j = {fn, pack, act, nb, t->rows, grain, Y + b0 * t->rows};
        lq_parallel_for(ctx, lq_chunks(t->rows, grain), kern_task, &j);
    }
    lq_free(ctx, act);
    return LQ_OK;
}

/* ---- reference product (the format's traits) ------------------------------
 * Rows are split in fixed chunks; each output element is computed by one
 * task from the codes alone, so results do not depend on threads. */
#define ROW_GRAIN 64

typedef struct rows_job {
    const lq_qtensor *t;
    const lq_format_traits *tr;
    const float *X;
    size_t batch;
    float *Y;
    lq_simd_level level; /* lq_simd_for(ctx): the cap holds on the reference path too */
    lq_status st[1];     /* first error wins: written by tasks, read after */
    volatile int failed;
} rows_job;

static void matmul_task(void *arg, size_t i)
{
    rows_job *j = arg;
    size_t r0 = i * ROW_GRAIN, r1 = r0 + ROW_GRAIN;
    if (r1 > j->t->rows) r1 = j->t->rows;
    lq_status st = j->tr->matmul_rows(j->t, j->X, j->batch, j->Y, r0, r1, j->level);
    if (st != LQ_OK) {
        __atomic_store_n(&j->st[0], st, __ATOMIC_RELAXED);
        j->failed = 1;
    }
}

lq_status lq_matmul(lq_ctx *ctx, const lq_qtensor *W, const float *X, size_t batch, float *Y)
{
    if (!W || !X || !Y || batch == 0) return LQ_ERR_INVALID_ARG;
    const lq_format_traits *tr = lq_format_lookup(W->format);
    if (!tr) return LQ_ERR_CORRUPT;
    size_t n;
    if (!lq_mul_ok(batch, W->cols, &n)) return LQ_ERR_INVALID_ARG;
    lq_status xst = lq_check_range(X, n, LQ_MAX_ABS_ACTIVATION);
    if (xst != LQ_OK) return xst;
    lq_status kst = lq_kern_matmul(ctx, W, X, batch, Y, LQ_KERNEL_EXACT);
    if (kst != LQ_ERR_UNSUPPORTED) return kst;
    /* the reference path validates too (the kernel path did when it built
     * its layout): one linear pass, small next to the reference product */
    kst = lq_qtensor_validate(W);
    if (kst != LQ_OK) return kst;
    rows_job j = {.t = W, .tr = tr, .X = X, .batch = batch, .Y = Y, .level = lq_simd_for(ctx)};
    lq_parallel_for(ctx, lq_chunks(W->rows, ROW_GRAIN), matmul_task, &j);
    return j.failed ? __atomic_load_n(&j.st[0], __ATOMIC_RELAXED) : LQ_OK;
}

lq_status lq_matvec(lq_ctx *ctx, const lq_qtensor *W, const float *x, float *y)
{
    return lq_matmul(ctx, W, x, 1, y);
}

static lq_status check_args(const lq_qtensor *W, const float *X, size_t batch, float *Y)
{
    if (!W || !X || !Y || batch == 0) return LQ_ERR_INVALID_ARG;
    if (!lq_format_lookup(W->format)) return LQ_ERR_CORRUPT;
    size_t n;
    if (!lq_mul_ok(batch, W->cols, &n) || !lq_mul_ok(batch, W->rows, &n)) return LQ_ERR_INVALID_ARG;
    return LQ_OK;
}

lq_status lq_matmul_ex(lq_ctx *ctx, const lq_qtensor *W, const float *X, size_t batch, float *Y,
                       lq_kernel_mode mode)
{
    if (mode != LQ_KERNEL_EXACT && mode != LQ_KERNEL_FAST) return LQ_ERR_INVALID_ARG;
    lq_status st = check_args(W, X, batch, Y);
    if (st != LQ_OK) return st;
    if (mode == LQ_KERNEL_EXACT) return lq_matmul(ctx, W, X, batch, Y);
    st = lq_check_range(X, batch * W->cols, LQ_MAX_ABS_ACTIVATION);
    if (st != LQ_OK) return st;
    if (!lq_ctx_resolve(ctx)) return LQ_ERR_NO_MEMORY;
    st = lq_kern_matmul(ctx, W, X, batch, Y, mode);
    if (st != LQ_ERR_UNSUPPORTED) return st;
    return lq_matmul(ctx, W, X, batch, Y);
}

lq_status lq_qtensor_prepare(lq_ctx *ctx, const lq_qtensor *W)
{
    (void)ctx;
    if (!W) return LQ_ERR_INVALID_ARG;
    const lq_kern_format *kf = lq_kern_lookup(W->format);
    if (!lq_format_lookup(W->format)) return LQ_ERR_CORRUPT;
    if (!kf) return LQ_OK; /* nothing to repack */
    const void *pack;
    lq_status st = lq_kern_pack(W, kf, &pack);
    return st == LQ_ERR_UNSUPPORTED ? LQ_OK : st; /* the reference needs no layout */
}

float lq_kern_q8_block(const float *x, size_t n, int8_t *q, int32_t *qsum)
{
    float amax = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > amax) amax = a;
    }
    int32_t s = 0;
    if (amax > 0.0f) {
        /* 127 / amax overflows for amax below ~2^-120 (then 0 * Inf = NaN):
         * scale such a block up by 2^64 first, exactly (a power of two).
         * Normal blocks take the unscaled path, bit for bit as before. */
        float up = amax < 0x1p-100f ? 0x1p64f : 1.0f;
        float id = 127.0f / (amax * up);
        for (size_t i = 0; i < n; i++) {
            float f = x[i] * up * id; /* |f| <= 127 */
            int v = (int)(f >= 0.0f ? f + 0.5f : f - 0.5f);
            if (v > 127) v = 127;
            if (v < -127) v = -127;
            q[i] = (int8_t)v;
            s += v;
        }
    } else {
        memset(q, 0, n);
    }
    if (n < LQ_KERN_QBLK) memset(q + n, 0, LQ_KERN_QBLK - n);
    *qsum = s;
    return amax / 127.0f;
}
