/* Tensor files (safetensors, .npy): open, list, find, convert to float. */
#include <stdlib.h>

#include "io/io_internal.h"

static void tfile_free(lq_tfile *f)
{
    lq_allocator a = f->alloc;
    lq_free_with(&a, f->e);
    lq_free_with(&a, f->strings);
    lq_free_with(&a, f->sorted);
    lq_blob_release(f->blob);
    lq_free_with(&a, f);
}

static int cmp_sorted(const void *a, const void *b)
{
    return strcmp(((const lq_tf_sorted *)a)->name, ((const lq_tf_sorted *)b)->name);
}

/* Takes ownership of blob. */
static lq_status tfile_parse(lq_ctx *ctx, lq_blob *blob, lq_tfile_kind kind, lq_tfile **out)
{
    lq_allocator a = lq_ctx_allocator(ctx);
    lq_tfile *f = lq_alloc_with(&a, sizeof *f);
    if (!f) {
        lq_blob_release(blob);
        return LQ_ERR_NO_MEMORY;
    }
    memset(f, 0, sizeof *f);
    f->alloc = a;
    f->blob = blob;
    const uint8_t *d = blob->data;
    if (kind == LQ_TFILE_AUTO) {
        if (blob->size >= 6 && !memcmp(d, "\x93NUMPY", 6))
            kind = LQ_TFILE_NPY;
        else if (blob->size >= 9 && d[8] == '{')
            kind = LQ_TFILE_SAFETENSORS;
        else {
            tfile_free(f);
            return LQ_ERR_CORRUPT;
        }
    }
    f->kind = kind;
    lq_status st = kind == LQ_TFILE_NPY ? lq_npy_parse(ctx, f) : lq_safetensors_parse(ctx, f);
    if (st == LQ_OK) {
        f->sorted = lq_alloc_array(ctx, f->n ? f->n : 1, sizeof *f->sorted);
        if (!f->sorted) st = LQ_ERR_NO_MEMORY;
    }
    if (st == LQ_OK) {
        for (size_t i = 0; i < f->n; i++) f->sorted[i] = (lq_tf_sorted){f->e[i].name, i};
        if (f->n > 1) qsort(f->sorted, f->n, sizeof *f->sorted, cmp_sorted);
        for (size_t i = 1; i < f->n; i++)
            if (!strcmp(f->sorted[i - 1].name, f->sorted[i].name)) st = LQ_ERR_CORRUPT;
    }
    if (st != LQ_OK) {
        tfile_free(f);
        return st;
    }
    *out = f;
    return LQ_OK;
}

static bool kind_ok(lq_tfile_kind k)
{
    return k == LQ_TFILE_AUTO || k == LQ_TFILE_SAFETENSORS || k == LQ_TFILE_NPY;
}

lq_status lq_tfile_open(lq_ctx *ctx, const char *path, lq_tfile_kind kind, lq_tfile **out)
{
    if (!path || !out || !kind_ok(kind)) return LQ_ERR_INVALID_ARG;
    lq_blob *b;
    lq_status st = lq_blob_open(ctx, path, 1, &b);
    if (st != LQ_OK) return st;
    return tfile_parse(ctx, b, kind, out);
}

lq_status lq_tfile_open_memory(lq_ctx *ctx, const void *data, size_t size, lq_tfile_kind kind,
                               lq_tfile **out)
{
    if ((!data && size) || !out || !kind_ok(kind)) return LQ_ERR_INVALID_ARG;
    lq_blob *b;
    lq_status st = lq_blob_wrap(ctx, data, size, &b);
    if (st != LQ_OK) return st;
    return tfile_parse(ctx, b, kind, out);
}

void lq_tfile_close(lq_tfile *f)
{
    if (f) tfile_free(f);
}

lq_tfile_kind lq_tfile_get_kind(const lq_tfile *f) { return f ? f->kind : LQ_TFILE_AUTO; }

size_t lq_tfile_count(const lq_tfile *f) { return f ? f->n : 0; }

lq_status lq_tfile_info(const lq_tfile *f, size_t index, lq_tensor_info *info)
{
    if (!f || !info || index >= f->n) return LQ_ERR_INVALID_ARG;
    const lq_tf_entry *e = &f->e[index];
    memset(info, 0, sizeof *info);
    info->name = e->name;
    info->dtype = e->dtype;
    info->ndim = e->ndim;
    memcpy(info->shape, e->shape, sizeof info->shape);
    info->numel = e->numel;
    return LQ_OK;
}

lq_status lq_tfile_find(const lq_tfile *f, const char *name, size_t *index)
{
    if (!f || !name || !index) return LQ_ERR_INVALID_ARG;
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->sorted[mid].name, name);
        if (c == 0) {
            *index = f->sorted[mid].index;
            return LQ_OK;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return LQ_ERR_INVALID_ARG;
}

lq_status lq_tfile_read_f32(const lq_tfile *f, size_t index, float *dst, size_t n)
{
    if (!f || index >= f->n || (!dst && n)) return LQ_ERR_INVALID_ARG;
    const lq_tf_entry *e = &f->e[index];
    if (n != e->numel) return LQ_ERR_INVALID_ARG;
    const uint8_t *p = e->data;
    switch (e->dtype) {
    case LQ_DTYPE_F32:
        for (size_t i = 0; i < n; i++) dst[i] = lq_bits_f32(lq_rd32(p + 4 * i));
        return LQ_OK;
    case LQ_DTYPE_F16:
        for (size_t i = 0; i < n; i++) dst[i] = lq_f16_to_f32(lq_rd16(p + 2 * i));
        return LQ_OK;
    case LQ_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = lq_bf16_to_f32(lq_rd16(p + 2 * i));
        return LQ_OK;
    default: return LQ_ERR_UNSUPPORTED;
    }
}
