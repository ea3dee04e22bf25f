/* Context: allocator, threads, seed, progress, SIMD cap. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "core/pool.h"

struct lq_ctx {
    lq_ctx_config cfg;
    size_t n_threads;
    lq_pool *pool; /* NULL: single thread or host parallel_for */
};

size_t lq_physical_cores(void); /* cpu.c */

static void *default_alloc(void *user, size_t size, size_t align)
{
    (void)user;
    if (size == 0) size = 1;
    if (align < sizeof(void *)) align = sizeof(void *);
    size_t rounded = (size + align - 1) / align * align;
    if (rounded < size) return NULL;
    return aligned_alloc(align, rounded);
}

static void default_free(void *user, void *p)
{
    (void)user;
    free(p);
}

void *lq_alloc_with(const lq_allocator *a, size_t size)
{
    if (size > SIZE_MAX - LQ_ALIGN) return NULL;
    return a->alloc(a->user, size, LQ_ALIGN);
}

void lq_free_with(const lq_allocator *a, void *p)
{
    if (p) a->free(a->user, p);
}

void lq_ctx_config_init(lq_ctx_config *cfg)
{
    if (!cfg) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->simd_cap = LQ_SIMD_AUTO;
}

lq_status lq_ctx_create(const lq_ctx_config *cfg, lq_ctx **out)
{
    if (!out) return LQ_ERR_INVALID_ARG;
    lq_ctx_config c;
    if (cfg)
        c = *cfg;
    else
        lq_ctx_config_init(&c);
    if ((c.allocator.alloc == NULL) != (c.allocator.free == NULL)) return LQ_ERR_INVALID_ARG;
    if (c.simd_cap != LQ_SIMD_AUTO && (unsigned)c.simd_cap > (unsigned)LQ_SIMD_NEON)
        return LQ_ERR_INVALID_ARG;
    if (c.n_threads > 4096) return LQ_ERR_INVALID_ARG;
    if (!c.allocator.alloc) {
        c.allocator.alloc = default_alloc;
        c.allocator.free = default_free;
        c.allocator.user = NULL;
    }
    lq_ctx *ctx = lq_alloc_with(&c.allocator, sizeof *ctx);
    if (!ctx) return LQ_ERR_NO_MEMORY;
    ctx->cfg = c;
    ctx->pool = NULL;
    if (c.parallel_for) {
        ctx->n_threads = 1;
    } else {
        ctx->n_threads = c.n_threads ? c.n_threads : lq_physical_cores();
        if (ctx->n_threads == 0) ctx->n_threads = 1;
        if (ctx->n_threads > 1) {
            lq_status st = lq_pool_create(&c.allocator, ctx->n_threads - 1, &ctx->pool);
            if (st != LQ_OK) {
                lq_free_with(&c.allocator, ctx);
                return st;
            }
        }
    }
    *out = ctx;
    return LQ_OK;
}

void lq_ctx_destroy(lq_ctx *ctx)
{
    if (!ctx) return;
    lq_pool_destroy(ctx->pool);
    lq_allocator a = ctx->cfg.allocator;
    lq_free_with(&a, ctx);
}

/* The default context: created once, lives until exit (like the dispatch
 * level, it is the only process-wide state). */
static lq_ctx *g_default;
static pthread_once_t g_default_once = PTHREAD_ONCE_INIT;

static void make_default(void)
{
    if (lq_ctx_create(NULL, &g_default) != LQ_OK) g_default = NULL;
}

lq_ctx *lq_ctx_resolve(lq_ctx *ctx)
{
    if (ctx) return ctx;
    pthread_once(&g_default_once, make_default);
    return g_default;
}

size_t lq_ctx_threads(const lq_ctx *ctx)
{
    lq_ctx *c = lq_ctx_resolve((lq_ctx *)(uintptr_t)ctx);
    return c ? c->n_threads : 1;
}

size_t lq_ctx_nthreads(lq_ctx *ctx) { return lq_ctx_threads(ctx); }

lq_allocator lq_ctx_allocator(const lq_ctx *ctx)
{
    lq_ctx *c = lq_ctx_resolve((lq_ctx *)(uintptr_t)ctx);
    if (c) return c->cfg.allocator;
    return (lq_allocator){default_alloc, default_free, NULL};
}

void *lq_alloc(lq_ctx *ctx, size_t size)
{
    lq_ctx *c = lq_ctx_resolve(ctx);
    if (!c) return NULL;
    return lq_alloc_with(&c->cfg.allocator, size);
}

void *lq_alloc_array(lq_ctx *ctx, size_t n, size_t elem)
{
    size_t sz;
    if (!lq_mul_ok(n, elem, &sz)) return NULL;
    return lq_alloc(ctx, sz);
}

void *lq_calloc_array(lq_ctx *ctx, size_t n, size_t elem)
{
    size_t sz;
    if (!lq_mul_ok(n, elem, &sz)) return NULL;
    void *p = lq_alloc(ctx, sz);
    if (p) memset(p, 0, sz);
    return p;
}

void lq_free(lq_ctx *ctx, void *p)
{
    if (!p) return;
    lq_ctx *c = lq_ctx_resolve(ctx);
    if (c) lq_free_with(&c->cfg.allocator, p);
}

void lq_parallel_for(lq_ctx *ctx, size_t n, lq_task_fn fn, void *arg)
{
    if (n == 0) return;
    lq_ctx *c = lq_ctx_resolve(ctx);
    if (n > 1 && c) {
        if (c->cfg.parallel_for) {
            c->cfg.parallel_for(c->cfg.parallel_user, n, fn, arg);
            return;
        }
        if (c->pool && lq_pool_run(c->pool, n, fn, arg)) return;
    }
    for (size_t i = 0; i < n; i++) fn(arg, i);
}

void lq_progress(lq_ctx *ctx, double fraction, const char *stage)
{
    lq_ctx *c = lq_ctx_resolve(ctx);
    if (c && c->cfg.progress) c->cfg.progress(c->cfg.progress_user, fraction, stage);
}

uint64_t lq_ctx_seed(const lq_ctx *ctx)
{
    lq_ctx *c = lq_ctx_resolve((lq_ctx *)(uintptr_t)ctx);
    return c ? c->cfg.seed : 0;
}

lq_simd_level lq_simd_for(const lq_ctx *ctx)
{
    lq_simd_level det = lq_simd_detected();
    lq_ctx *c = lq_ctx_resolve((lq_ctx *)(uintptr_t)ctx);
    if (!c || c->cfg.simd_cap == LQ_SIMD_AUTO) return det;
    lq_simd_level cap = c->cfg.simd_cap;
    if (cap == LQ_SIMD_SCALAR) return LQ_SIMD_SCALAR;
    /* Caps of the other architecture do not raise or lower anything. */
    if (det == LQ_SIMD_NEON || cap == LQ_SIMD_NEON) return det;
    return cap < det ? cap : det;
}

lq_simd_level lq_ctx_simd(const lq_ctx *ctx) { return lq_simd_for(ctx); }
