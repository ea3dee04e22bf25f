/*
 * GGUF version 3 writer (gguf.h; the layout is the published specification,
 * ggml's docs/gguf.md, restated in docs/formats.md section 4):
 *
 *   u32 magic "GGUF" (bytes 47 47 55 46), u32 version 3,
 *   u64 tensor_count, u64 metadata_kv_count,
 *   kv pairs: string key, u32 value type, value,
 *   tensor infos: string name, u32 n_dims, u64 ne[n_dims], u32 ggml type,
 *                 u64 offset (relative to the data section, aligned),
 *   zero padding to general.alignment, the tensor data (each tensor
 *   aligned, zero padding between).
 * Strings are u64 length + bytes (no NUL); everything little-endian.
 *
 * The metadata and the tensor infos are kept in memory (they are small next
 * to the data) and written by the first lq_gguf_write_data, once every
 * tensor's size and offset is known.
 */
#include <stdio.h>
#include <stdlib.h>

#include "io/gguf.h"
#include "io/io_internal.h"

enum { /* gguf_metadata_value_type */
       GT_UINT32 = 4,
       GT_INT32 = 5,
       GT_FLOAT32 = 6,
       GT_BOOL = 7,
       GT_STRING = 8,
       GT_ARRAY = 9
};

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

typedef struct tinfo {
    char *name;
    size_t ndim;
    uint64_t ne[LQ_GGUF_MAX_DIMS];
    lq_ggml_type type;
    uint64_t offset, nbytes;
} tinfo;

struct lq_gguf_writer {
    lq_allocator alloc;
    FILE *f;
    char *path, *tmp;
    size_t alignment;
    buf kv; /* the metadata pairs, serialised */
    uint64_t nkv;
    char **keys; /* for the uniqueness check */
    size_t nkeys, keys_cap;
    tinfo *t;
    size_t nt, t_cap;
    size_t next;       /* next tensor whose data is written */
    uint64_t data_end; /* bytes of the data section declared so far */
    uint64_t pos;      /* file position */
    int started;       /* header written */
};

/* ---- memory --------------------------------------------------------------------- */

static int grow_bytes(lq_gguf_writer *w, buf *b, size_t extra)
{
    if (extra <= b->cap - b->n) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->n < extra) {
        if (cap > SIZE_MAX / 2) return -1;
        cap *= 2;
    }
    uint8_t *p = lq_alloc_with(&w->alloc, cap);
    if (!p) return -1;
    if (b->n) memcpy(p, b->p, b->n);
    lq_free_with(&w->alloc, b->p);
    b->p = p;
    b->cap = cap;
    return 0;
}

static void *grow_array(lq_gguf_writer *w, void *arr, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap) return arr;
    size_t c = *cap ? 2 * *cap : 16;
    void *p = lq_alloc_with(&w->alloc, c * elem);
    if (!p) return NULL;
    if (n) memcpy(p, arr, n * elem);
    lq_free_with(&w->alloc, arr);
    *cap = c;
    return p;
}

static char *dup_n(lq_gguf_writer *w, const char *s, size_t n, size_t extra)
{
    char *d = lq_alloc_with(&w->alloc, n + extra + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* ---- serialisation into a buffer ------------------------------------------------- */

static void put_u32(buf *b, uint32_t v)
{
    lq_wr32(b->p + b->n, v);
    b->n += 4;
}
static void put_u64(buf *b, uint64_t v)
{
    lq_wr64(b->p + b->n, v);
    b->n += 8;
}
static void put_str(buf *b, const char *s, size_t n)
{
    put_u64(b, n);
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
}

/* ---- open / free ------------------------------------------------------------------ */

static void writer_free(lq_gguf_writer *w)
{
    lq_allocator a = w->alloc;
    for (size_t i = 0; i < w->nkeys; i++) lq_free_with(&a, w->keys[i]);
    for (size_t i = 0; i < w->nt; i++) lq_free_with(&a, w->t[i].name);
    lq_free_with(&a, w->keys);
    lq_free_with(&a, w->t);
    lq_free_with(&a, w->kv.p);
    lq_free_with(&a, w->path);
    lq_free_with(&a, w->tmp);
    lq_free_with(&a, w);
}

lq_status lq_gguf_writer_open(lq_ctx *ctx, const char *path, size_t alignment, lq_gguf_writer **out)
{
    if (!path || !*path || !out || alignment < 8 || alignment > (1u << 20) ||
        (alignment & (alignment - 1)))
        return LQ_ERR_INVALID_ARG;
    if (!lq_ctx_resolve(ctx)) return LQ_ERR_NO_MEMORY;
    lq_allocator a = lq_ctx_allocator(ctx);
    lq_gguf_writer *w = lq_alloc_with(&a, sizeof *w);
    if (!w) return LQ_ERR_NO_MEMORY;
    memset(w, 0, sizeof *w);
    w->alloc = a;
    w->alignment = alignment;
    size_t n = strlen(path);
    w->path = dup_n(w, path, n, 0);
    w->tmp = dup_n(w, path, n, 5);
    if (!w->path || !w->tmp) {
        writer_free(w);
        return LQ_ERR_NO_MEMORY;
    }
    strcat(w->tmp, ".part");
    w->f = lq_path_replaceable(path) ? lq_open_part(w->tmp) : NULL;
    if (!w->f) {
        writer_free(w);
        return LQ_ERR_IO;
    }
    lq_status st = lq_gguf_kv_u32(w, "general.alignment", (uint32_t)alignment);
    if (st != LQ_OK) {
        lq_gguf_writer_abort(w);
        return st;
    }
    *out = w;
    return LQ_OK;
}

void lq_gguf_writer_abort(lq_gguf_writer *w)
{
    if (!w) return;
    if (w->f) fclose(w->f);
    remove(w->tmp);
    writer_free(w);
}

/* ---- metadata ---------------------------------------------------------------------- */

/* "lower_snake_case" segments separated by dots: [a-z0-9_]+(\.[a-z0-9_]+)* */
static int key_ok(const char *k, size_t n)
{
    if (n == 0 || n > 65535 || k[0] == '.' || k[n - 1] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (c == '.' ? k[i + 1] == '.'
                     : !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

/* Check and record the key, then reserve room for it plus `value` bytes
 * (the key, the value type and the value are then appended by the caller). */
static lq_status kv_begin(lq_gguf_writer *w, const char *key, uint32_t vtype, size_t value)
{
    if (!w || !key || w->started) return LQ_ERR_INVALID_ARG;
    size_t n = strlen(key), need;
    if (!key_ok(key, n)) return LQ_ERR_INVALID_ARG;
    for (size_t i = 0; i < w->nkeys; i++)
        if (!strcmp(w->keys[i], key)) return LQ_ERR_INVALID_ARG;
    if (value > SIZE_MAX - 12 - n) return LQ_ERR_INVALID_ARG;
    need = 12 + n + value;
    char **k = grow_array(w, w->keys, w->nkeys, &w->keys_cap, sizeof *w->keys);
    if (!k) return LQ_ERR_NO_MEMORY;
    w->keys = k;
    char *copy = dup_n(w, key, n, 0);
    if (!copy || grow_bytes(w, &w->kv, need) != 0) {
        lq_free_with(&w->alloc, copy);
        return LQ_ERR_NO_MEMORY;
    }
    w->keys[w->nkeys++] = copy;
    w->nkv++;
    put_str(&w->kv, key, n);
    put_u32(&w->kv, vtype);
    return LQ_OK;
}

lq_status lq_gguf_kv_u32(lq_gguf_writer *w, const char *key, uint32_t v)
{
    lq_status st = kv_begin(w, key, GT_UINT32, 4);
    if (st == LQ_OK) put_u32(&w->kv, v);
    return st;
}

lq_status lq_gguf_kv_f32(lq_gguf_writer *w, const char *key, float v)
{
    lq_status st = kv_begin(w, key, GT_FLOAT32, 4);
    if (st == LQ_OK) put_u32(&w->kv, lq_f32_bits(v));
    return st;
}

lq_status lq_gguf_kv_bool(lq_gguf_writer *w, const char *key, int v)
{
    lq_status st = kv_begin(w, key, GT_BOOL, 1);
    if (st == LQ_OK) w->kv.p[w->kv.n++] = v ? 1 : 0;
    return st;
}

lq_status lq_gguf_kv_str(lq_gguf_writer *w, const char *key, const char *s)
{
    if (!s) return LQ_ERR_INVALID_ARG;
    size_t n = strlen(s);
    lq_status st = kv_begin(w, key, GT_STRING, 8 + n);
    if (st == LQ_OK) put_str(&w->kv, s, n);
    return st;
}

lq_status lq_gguf_kv_arr_str(lq_gguf_writer *w, const char *key, const char *const *s,
                             const size_t *len, size_t n)
{
    if (!s || !len) return LQ_ERR_INVALID_ARG;
    size_t bytes = 12;
    for (size_t i = 0; i < n; i++) {
        if (!s[i] || len[i] > SIZE_MAX / 2 || bytes > SIZE_MAX / 2) return LQ_ERR_INVALID_ARG;
        bytes += 8 + len[i];
    }
    lq_status st = kv_begin(w, key, GT_ARRAY, bytes);
    if (st != LQ_OK) return st;
    put_u32(&w->kv, GT_STRING);
    put_u64(&w->kv, n);
    for (size_t i = 0; i < n; i++) put_str(&w->kv, s[i], len[i]);
    return LQ_OK;
}

static lq_status kv_arr32(lq_gguf_writer *w, const char *key, uint32_t type, const void *v,
                          size_t n)
{
    if (!v && n) return LQ_ERR_INVALID_ARG;
    if (n > (SIZE_MAX - 12) / 4) return LQ_ERR_INVALID_ARG;
    lq_status st = kv_begin(w, key, GT_ARRAY, 12 + 4 * n);
    if (st != LQ_OK) return st;
    put_u32(&w->kv, type);
    put_u64(&w->kv, n);
    const uint8_t *p = v;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, p + 4 * i, 4);
        put_u32(&w->kv, u);
    }
    return LQ_OK;
}

lq_status lq_gguf_kv_arr_f32(lq_gguf_writer *w, const char *key, const float *v, size_t n)
{
    return kv_arr32(w, key, GT_FLOAT32, v, n);
}

lq_status lq_gguf_kv_arr_i32(lq_gguf_writer *w, const char *key, const int32_t *v, size_t n)
{
    return kv_arr32(w, key, GT_INT32, v, n);
}

/* ---- tensors ------------------------------------------------------------------------ */

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) & ~(a - 1); }

lq_status lq_gguf_add_tensor(lq_gguf_writer *w, const char *name, size_t ndim, const uint64_t *ne,
                             lq_ggml_type type, size_t *nbytes)
{
    if (!w || !name || !ne || w->started || ndim < 1 || ndim > LQ_GGUF_MAX_DIMS)
        return LQ_ERR_INVALID_ARG;
    size_t n = strlen(name);
    if (n == 0 || n > LQ_GGUF_MAX_NAME) return LQ_ERR_INVALID_ARG;
    for (size_t i = 0; i < w->nt; i++)
        if (!strcmp(w->t[i].name, name)) return LQ_ERR_INVALID_ARG;
    for (size_t d = 0; d < ndim; d++)
        if (ne[d] == 0 || ne[d] > SIZE_MAX) return LQ_ERR_INVALID_ARG;
    size_t bytes = lq_ggml_row_bytes(type, (size_t)ne[0]);
    if (bytes == 0) return LQ_ERR_INVALID_ARG;
    for (size_t d = 1; d < ndim; d++)
        if (!lq_mul_ok(bytes, (size_t)ne[d], &bytes)) return LQ_ERR_INVALID_ARG;
    uint64_t off = align_up(w->data_end, w->alignment);
    if (off < w->data_end || bytes > UINT64_MAX - off - w->alignment) return LQ_ERR_INVALID_ARG;
    tinfo *t = grow_array(w, w->t, w->nt, &w->t_cap, sizeof *w->t);
    if (!t) return LQ_ERR_NO_MEMORY;
    w->t = t;
    char *copy = dup_n(w, name, n, 0);
    if (!copy) return LQ_ERR_NO_MEMORY;
    tinfo *ti = &w->t[w->nt++];
    memset(ti, 0, sizeof *ti);
    ti->name = copy;
    ti->ndim = ndim;
    memcpy(ti->ne, ne, ndim * sizeof *ne);
    ti->type = type;
    ti->offset = off;
    ti->nbytes = bytes;
    w->data_end = off + bytes;
    if (nbytes) *nbytes = bytes;
    return LQ_OK;
}

/* ---- writing ------------------------------------------------------------------------- */

static int put_file(lq_gguf_writer *w, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, w->f) != n) return -1;
    w->pos += n;
    return 0;
}

static int pad_file(lq_gguf_writer *w, uint64_t to)
{
    static const uint8_t zero[64] = {0};
    while (w->pos < to) {
        uint64_t k = to - w->pos;
        if (put_file(w, zero, k > sizeof zero ? sizeof zero : (size_t)k) != 0) return -1;
    }
    return 0;
}

/* Header, metadata, tensor infos and the padding before the data. */
static lq_status write_header(lq_gguf_writer *w)
{
    size_t need = 24;
    for (size_t i = 0; i < w->nt; i++) need += 8 + strlen(w->t[i].name) + 4 + 8 * w->t[i].ndim + 12;
    buf h = {0};
    if (grow_bytes(w, &h, need) != 0) return LQ_ERR_NO_MEMORY;
    memcpy(h.p, "GGUF", 4);
    h.n = 4;
    put_u32(&h, LQ_GGUF_VERSION);
    put_u64(&h, w->nt);
    put_u64(&h, w->nkv);
    lq_status st = LQ_OK;
    if (put_file(w, h.p, h.n) != 0 || put_file(w, w->kv.p, w->kv.n) != 0) st = LQ_ERR_IO;
    h.n = 0;
    for (size_t i = 0; i < w->nt; i++) {
        const tinfo *t = &w->t[i];
        put_str(&h, t->name, strlen(t->name));
        put_u32(&h, (uint32_t)t->ndim);
        for (size_t d = 0; d < t->ndim; d++) put_u64(&h, t->ne[d]);
        put_u32(&h, (uint32_t)t->type);
        put_u64(&h, t->offset);
    }
    if (st == LQ_OK && put_file(w, h.p, h.n) != 0) st = LQ_ERR_IO;
    lq_free_with(&w->alloc, h.p);
    if (st == LQ_OK && pad_file(w, align_up(w->pos, w->alignment)) != 0) st = LQ_ERR_IO;
    w->data_end = w->pos; /* from here: the file offset of the data section */
    w->started = 1;
    return st;
}

lq_status lq_gguf_write_data(lq_gguf_writer *w, const void *data, size_t nbytes)
{
    if (!w || !w->f || (!data && nbytes) || w->next >= w->nt) return LQ_ERR_INVALID_ARG;
    const tinfo *t = &w->t[w->next];
    if (nbytes != t->nbytes) return LQ_ERR_INVALID_ARG;
    if (!w->started) {
        lq_status st = write_header(w);
        if (st != LQ_OK) return st;
    }
    if (pad_file(w, w->data_end + t->offset) != 0 || put_file(w, data, nbytes) != 0)
        return LQ_ERR_IO;
    w->next++;
    return LQ_OK;
}

lq_status lq_gguf_writer_finish(lq_gguf_writer *w)
{
    if (!w) return LQ_ERR_INVALID_ARG;
    lq_status st = LQ_OK;
    if (w->next != w->nt) st = LQ_ERR_INVALID_ARG;
    if (st == LQ_OK && !w->started) st = write_header(w);
    /* the data section ends padded to the alignment too: ggml's reader
     * takes its size as the sum of the tensors' padded sizes */
    if (st == LQ_OK && w->nt && pad_file(w, align_up(w->pos, w->alignment)) != 0) st = LQ_ERR_IO;
    if (fclose(w->f) != 0 && st == LQ_OK) st = LQ_ERR_IO;
    w->f = NULL;
    if (st == LQ_OK && (!lq_path_replaceable(w->path) || rename(w->tmp, w->path) != 0))
        st = LQ_ERR_IO;
    if (st != LQ_OK) remove(w->tmp);
    writer_free(w);
    return st;
}
