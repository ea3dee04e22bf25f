/* The packed tensor: life cycle, validation, and the generic entry points
 * that route to a format's traits (the products on codes are one layer up,
 * src/products/kern.c). */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "qtensor/qtensor_internal.h"

extern const lq_format_traits lq_format_int_traits;
extern const lq_format_traits lq_format_bcq_traits;
extern const lq_format_traits lq_format_vq_traits;
extern const lq_format_traits lq_format_e8_traits;
extern const lq_format_traits lq_format_aq_traits;
extern const lq_format_traits lq_format_e8p_traits;
/* One row per format (declare the traits above, add a row before NULL). */
static const lq_format_traits *const g_formats[] = {
    &lq_format_int_traits,
    &lq_format_bcq_traits,
    &lq_format_vq_traits,
    &lq_format_e8_traits,
    &lq_format_aq_traits,
    &lq_format_e8p_traits,
    NULL,
};

const lq_format_traits *lq_format_lookup(lq_format f)
{
    for (size_t i = 0; g_formats[i]; i++)
        if (g_formats[i]->format == f) return g_formats[i];
    return NULL;
}

const char *lq_format_name(lq_format f)
{
    const lq_format_traits *tr = lq_format_lookup(f);
    return tr ? tr->name : "unknown";
}

lq_status lq_qtensor_new(lq_ctx *ctx, lq_format f, size_t rows, size_t cols, lq_qtensor **out)
{
    lq_allocator a = lq_ctx_allocator(ctx);
    lq_qtensor *t = lq_alloc_with(&a, sizeof *t);
    if (!t) return LQ_ERR_NO_MEMORY;
    memset(t, 0, sizeof *t);
    t->alloc = a;
    t->format = f;
    t->rows = rows;
    t->cols = cols;
    *out = t;
    return LQ_OK;
}

void *lq_qtensor_add_section(lq_qtensor *t, uint32_t tag, uint32_t elem_size, size_t nbytes)
{
    if (t->nsec >= LQ_QT_MAX_SECTIONS || t->borrowed) return NULL;
    void *p = lq_alloc_with(&t->alloc, nbytes ? nbytes : 1);
    if (!p) return NULL;
    memset(p, 0, nbytes ? nbytes : 1);
    t->sec[t->nsec++] = (lq_qsection){tag, elem_size, nbytes, p};
    return p;
}

const lq_qsection *lq_qtensor_section(const lq_qtensor *t, uint32_t tag)
{
    for (size_t i = 0; i < t->nsec; i++)
        if (t->sec[i].tag == tag) return &t->sec[i];
    return NULL;
}

lq_qsection *lq_qtensor_section_mut(lq_qtensor *t, uint32_t tag)
{
    for (size_t i = 0; i < t->nsec; i++)
        if (t->sec[i].tag == tag) return &t->sec[i];
    return NULL;
}

void lq_qtensor_drop_kernel_layout(lq_qtensor *t)
{
    lq_qt_memo *m = __atomic_exchange_n(&t->kpack, NULL, __ATOMIC_ACQ_REL);
    if (m) m->release(m, &t->alloc);
}

void lq_qtensor_free(lq_qtensor *t)
{
    if (!t) return;
    lq_allocator a = t->alloc;
    if (t->kpack) t->kpack->release(t->kpack, &a);
    if (!t->borrowed)
        for (size_t i = 0; i < t->nsec; i++) lq_free_with(&a, t->sec[i].data);
    if (t->owner_release) t->owner_release(t->owner);
    lq_free_with(&a, t);
}

lq_status lq_qtensor_validate(const lq_qtensor *t)
{
    if (!t) return LQ_ERR_INVALID_ARG;
    const lq_format_traits *tr = lq_format_lookup(t->format);
    if (!tr) return LQ_ERR_CORRUPT;
    if (t->rows == 0 || t->cols == 0 || t->nsec > LQ_QT_MAX_SECTIONS) return LQ_ERR_CORRUPT;
    size_t n;
    if (!lq_mul_ok(t->rows, t->cols, &n)) return LQ_ERR_CORRUPT;
    for (size_t i = 0; i < t->nsec; i++) {
        for (size_t j = 0; j < i; j++)
            if (t->sec[j].tag == t->sec[i].tag) return LQ_ERR_CORRUPT;
        if (t->sec[i].nbytes && !t->sec[i].data) return LQ_ERR_CORRUPT;
    }
    return tr->validate(t);
}

lq_status lq_qtensor_bits_per_weight(const lq_qtensor *t, double *bpw)
{
    if (!t || !bpw) return LQ_ERR_INVALID_ARG;
    const lq_format_traits *tr = lq_format_lookup(t->format);
    if (!tr) return LQ_ERR_CORRUPT;
    *bpw = tr->bits(t) / ((double)t->rows * (double)t->cols);
    return LQ_OK;
}

lq_status lq_qtensor_shape(const lq_qtensor *t, size_t *rows, size_t *cols)
{
    if (!t || !rows || !cols) return LQ_ERR_INVALID_ARG;
    *rows = t->rows;
    *cols = t->cols;
    return LQ_OK;
}

lq_status lq_qtensor_format(const lq_qtensor *t, lq_format *format)
{
    if (!t || !format) return LQ_ERR_INVALID_ARG;
    *format = t->format;
    return LQ_OK;
}

/* Rows are split in fixed chunks; each output element is computed by one
 * task from the codes alone, so results do not depend on threads. */
#define ROW_GRAIN 64

typedef struct rows_job {
    const lq_qtensor *t;
    const lq_format_traits *tr;
    float *Y;
    lq_simd_level level; /* lq_simd_for(ctx): the cap holds on the reference paths too */
    atomic_int failed;   /* FAIL_* bits: which kinds of failure any chunk saw */
} rows_job;

#define FAIL_CORRUPT 1
#define FAIL_NO_MEMORY 2

static void dequant_task(void *arg, size_t i)
{
    rows_job *j = arg;
    size_t r0 = i * ROW_GRAIN, r1 = r0 + ROW_GRAIN;
    if (r1 > j->t->rows) r1 = j->t->rows;
    lq_status st = j->tr->dequant_rows(j->t, r0, r1, j->Y + r0 * j->t->cols, j->level);
    if (st != LQ_OK)
        atomic_fetch_or(&j->failed, st == LQ_ERR_NO_MEMORY ? FAIL_NO_MEMORY : FAIL_CORRUPT);
}

/* The tensor is validated first; the rows are then decoded into a scratch
 * copy, so W_hat is written only once every row has decoded: on any error
 * (corrupt codes a format finds while decoding, or a format's scratch
 * allocation failing in some task) W_hat is untouched and the status says
 * which. CORRUPT outranks NO_MEMORY so the status does not depend on the
 * order the tasks ran in. */
lq_status lq_dequantize(lq_ctx *ctx, const lq_qtensor *t, float *W_hat)
{
    if (!t || !W_hat) return LQ_ERR_INVALID_ARG;
    lq_status st = lq_qtensor_validate(t);
    if (st != LQ_OK) return st;
    const lq_format_traits *tr = lq_format_lookup(t->format);
    size_t n = t->rows * t->cols; /* validate checked the product */
    ctx = lq_ctx_resolve(ctx);
    if (!ctx) return LQ_ERR_NO_MEMORY;
    float *tmp = lq_alloc_array(ctx, n, sizeof(float));
    if (!tmp) return LQ_ERR_NO_MEMORY;
    rows_job j = {.t = t, .tr = tr, .Y = tmp, .level = lq_simd_for(ctx)};
    atomic_init(&j.failed, 0);
    lq_parallel_for(ctx, lq_chunks(t->rows, ROW_GRAIN), dequant_task, &j);
    int failed = atomic_load(&j.failed);
    if (failed == 0) memcpy(W_hat, tmp, n * sizeof(float));
    lq_free(ctx, tmp);
    if (failed & FAIL_CORRUPT) return LQ_ERR_CORRUPT;
    return failed ? LQ_ERR_NO_MEMORY : LQ_OK;
}

lq_status lq_quantize(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                      const lq_method *method, lq_qtensor **out, float *W_hat)
{
    return lq_quantize_ex(ctx, W, rows, cols, H, method, out, W_hat, NULL);
}

lq_status lq_quantize_ex(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                         const lq_method *method, lq_qtensor **out, float *W_hat,
                         lq_quant_report *report)
{
    if (!W || !method || !out || rows == 0 || cols == 0) return LQ_ERR_INVALID_ARG;
    size_t n;
    if (!lq_mul_ok(rows, cols, &n) || !lq_mul_ok(cols, cols, &n)) return LQ_ERR_INVALID_ARG;
    lq_status st = lq_check_range(W, rows * cols, LQ_MAX_ABS_WEIGHT);
    if (st == LQ_OK && H) st = lq_check_range(H, cols * cols, LQ_MAX_ABS_HESSIAN);
    if (st != LQ_OK) return st;
    if (!lq_ctx_resolve(ctx)) return LQ_ERR_NO_MEMORY;
    lq_quant_report rep;
    memset(&rep, 0, sizeof rep);
    const lq_method_row *row = lq_method_row_of(method->kind);
    st = row ? row->quantize(ctx, W, rows, cols, H, method, out, W_hat, report ? &rep : NULL)
             : LQ_ERR_INVALID_ARG;
    if (st == LQ_OK && report) *report = rep;
    return st;
}
