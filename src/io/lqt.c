/*
 * The .lqt container: writer and validating reader (docs/formats.md).
 *
 * Serialisation is generic over the packed tensor model (header params +
 * byte sections); no format-specific code lives here. After reading, the
 * format's traits validate the tensor, so the codes are never trusted.
 *
 * Version 2 adds two record kinds next to the quantized tensor records:
 * float32 tensors (the tensor record layout with one "values" section) and
 * metadata (one key/value pair per record). The writer stamps version 1 on
 * a file without them, so such files stay readable by version-1 readers.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "io/io_internal.h"
#include "qtensor/qtensor_internal.h"

_Static_assert(LQ_LQT_MAX_SECTIONS == LQ_QT_MAX_SECTIONS, "section limit mismatch");
_Static_assert(LQ_LQT_NPARAMS == LQ_QT_NPARAMS, "parameter count mismatch");

static const uint8_t LQT_MAGIC[8] = {0x89, 'L', 'Q', 'T', '\r', '\n', 0x1A, '\n'};
#define REC_MAGIC 0x5254514Cu  /* "LQTR": quantized tensor */
#define F32_MAGIC 0x4654514Cu  /* "LQTF": float32 tensor (version 2) */
#define META_MAGIC 0x4D54514Cu /* "LQTM": metadata key/value (version 2) */
#define F32_TAG 10u            /* the single section of a float record */
#define META_FIXED 16u
#define HDR_SIZE 64u
#define REC_FIXED 160u
#define SEC_ENTRY 32u
#define DIR_ENTRY 16u
#define WRITE_ALIGN 64u
#define MIN_ALIGN 8u
#define MAX_ALIGN 4096u

/* ---- shared helpers ---------------------------------------------------------- */

static bool align_up(uint64_t x, uint64_t a, uint64_t *out)
{
    if (x > UINT64_MAX - (a - 1)) return false;
    *out = (x + a - 1) & ~(a - 1);
    return true;
}

static bool add64(uint64_t a, uint64_t b, uint64_t *out)
{
    if (b > UINT64_MAX - a) return false;
    *out = a + b;
    return true;
}

static bool valid_elem(uint32_t e) { return e == 1 || e == 2 || e == 4 || e == 8; }

#if LQ_BIG_ENDIAN
static void swap_elems(uint8_t *p, size_t n, uint32_t elem)
{
    for (size_t i = 0; i + elem <= n; i += elem)
        for (uint32_t a = 0, b = elem - 1; a < b; a++, b--) {
            uint8_t t = p[i + a];
            p[i + a] = p[i + b];
            p[i + b] = t;
        }
}
#endif

/* CRC of a host-order section as it is stored (little-endian). */
static uint32_t section_crc(lq_simd_level level, const void *data, size_t n, uint32_t elem)
{
#if LQ_BIG_ENDIAN
    uint8_t buf[4096];
    uint32_t c = 0;
    const uint8_t *p = data;
    while (n) {
        size_t k = n < sizeof buf ? n : sizeof buf;
        memcpy(buf, p, k);
        swap_elems(buf, k, elem);
        c = lq_crc32c_at(level, c, buf, k);
        p += k;
        n -= k;
    }
    return c;
#else
    (void)elem;
    return lq_crc32c_at(level, 0, data, n);
#endif
}

/* ---- writer --------------------------------------------------------------------- */

struct lq_lqt_writer {
    lq_allocator alloc;
    lq_simd_level level; /* of the opening context (its simd_cap holds) */
    FILE *f;
    char *path, *tmp;
    uint64_t pos;
    lq_status err; /* sticky I/O error */
    size_t n, cap; /* records written (every kind) */
    uint64_t *dir; /* 2 per record: offset, size */
    size_t nnames, names_cap;
    char **names; /* tensor and float names (one namespace) */
    size_t nkeys, keys_cap;
    char **keys; /* metadata keys */
    int v2;      /* a float or metadata record was written */
};

static char *str_dup(const lq_allocator *a, const char *s, size_t extra)
{
    size_t n = strlen(s);
    char *d = lq_alloc_with(a, n + extra + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

lq_status lq_lqt_writer_open(lq_ctx *ctx, const char *path, lq_lqt_writer **out)
{
    if (!path || !out || !*path) return LQ_ERR_INVALID_ARG;
    if (!lq_ctx_resolve(ctx)) return LQ_ERR_NO_MEMORY;
    lq_allocator a = lq_ctx_allocator(ctx);
    lq_lqt_writer *w = lq_alloc_with(&a, sizeof *w);
    if (!w) return LQ_ERR_NO_MEMORY;
    memset(w, 0, sizeof *w);
    w->alloc = a;
    w->level = lq_simd_for(ctx);
    w->path = str_dup(&a, path, 0);
    w->tmp = str_dup(&a, path, 5);
    if (!w->path || !w->tmp) {
        lq_free_with(&a, w->path);
        lq_free_with(&a, w->tmp);
        lq_free_with(&a, w);
        return LQ_ERR_NO_MEMORY;
    }
    strcat(w->tmp, ".part");
    w->f = lq_path_replaceable(path) ? lq_open_part(w->tmp) : NULL;
    uint8_t zero[HDR_SIZE] = {0};
    if (!w->f || fwrite(zero, 1, HDR_SIZE, w->f) != HDR_SIZE) {
        if (w->f) {
            fclose(w->f);
            remove(w->tmp);
        }
        lq_free_with(&a, w->path);
        lq_free_with(&a, w->tmp);
        lq_free_with(&a, w);
        return LQ_ERR_IO;
    }
    w->pos = HDR_SIZE;
    *out = w;
    return LQ_OK;
}

static void writer_free(lq_lqt_writer *w)
{
    lq_allocator a = w->alloc;
    for (size_t i = 0; i < w->nnames; i++) lq_free_with(&a, w->names[i]);
    for (size_t i = 0; i < w->nkeys; i++) lq_free_with(&a, w->keys[i]);
    lq_free_with(&a, w->names);
    lq_free_with(&a, w->keys);
    lq_free_with(&a, w->dir);
    lq_free_with(&a, w->path);
    lq_free_with(&a, w->tmp);
    lq_free_with(&a, w);
}

void lq_lqt_writer_abort(lq_lqt_writer *w)
{
    if (!w) return;
    if (w->f) fclose(w->f);
    remove(w->tmp);
    writer_free(w);
}

static int put(lq_lqt_writer *w, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, w->f) != n) return -1;
    w->pos += n;
    return 0;
}

static int pad_to(lq_lqt_writer *w, uint64_t off)
{
    static const uint8_t zero[256] = {0};
    while (w->pos < off) {
        uint64_t k = off - w->pos;
        if (put(w, zero, k > sizeof zero ? sizeof zero : (size_t)k) != 0) return -1;
    }
    return 0;
}

static int put_section(lq_lqt_writer *w, const void *data, size_t n, uint32_t elem)
{
#if LQ_BIG_ENDIAN
    uint8_t buf[4096];
    const uint8_t *p = data;
    while (n) {
        size_t k = n < sizeof buf ? n : sizeof buf;
        memcpy(buf, p, k);
        swap_elems(buf, k, elem);
        if (put(w, buf, k) != 0) return -1;
        p += k;
        n -= k;
    }
    return 0;
#else
    (void)elem;
    return put(w, data, n);
#endif
}

/* Make room for one more element in an array of `elem`-byte entries
 * holding n of *cap; the array is replaced (copied) when it grows. */
static void *grow(lq_lqt_writer *w, void *arr, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap) return arr;
    size_t c = *cap ? 2 * *cap : 16, nb;
    if (c < *cap || !lq_mul_ok(c, elem, &nb)) return NULL;
    void *p = lq_alloc_with(&w->alloc, nb);
    if (!p) return NULL;
    if (n) memcpy(p, arr, n * elem);
    lq_free_with(&w->alloc, arr);
    *cap = c;
    return p;
}

/* Room for one more record and, through list/count/cap, one more name or
 * key. Either both fit afterwards or NO_MEMORY (capacity may have grown). */
static lq_status writer_reserve(lq_lqt_writer *w, char ***list, size_t count, size_t *cap)
{
    uint64_t *dir = grow(w, w->dir, w->n, &w->cap, 2 * sizeof *dir);
    if (!dir) return LQ_ERR_NO_MEMORY;
    w->dir = dir;
    char **l = grow(w, *list, count, cap, sizeof *l);
    if (!l) return LQ_ERR_NO_MEMORY;
    *list = l;
    return LQ_OK;
}

static bool listed(char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i], s)) return true;
    return false;
}

/* What a tensor record holds: a quantized tensor or a float tensor. */
typedef struct rec_desc {
    uint32_t magic, format;
    uint64_t rows, cols;
    const uint32_t *ip; /* LQ_QT_NPARAMS each, or NULL for zeros */
    const float *fp;
    size_t nsec;
    const lq_qsection *sec;
} rec_desc;

/* Append a tensor record (of either kind) under `name`, already checked
 * for length. Nothing is written on INVALID_ARG (duplicate name, layout
 * overflow) or NO_MEMORY; IO is sticky. */
static lq_status write_tensor_record(lq_lqt_writer *w, const char *name, const rec_desc *d)
{
    if (listed(w->names, w->nnames, name)) return LQ_ERR_INVALID_ARG;
    lq_status st = writer_reserve(w, &w->names, w->nnames, &w->names_cap);
    if (st != LQ_OK) return st;
    size_t name_len = strlen(name);
    char *copy = str_dup(&w->alloc, name, 0);
    if (!copy) return LQ_ERR_NO_MEMORY;

    /* Lay the record out. */
    uint64_t R, hdr = REC_FIXED + SEC_ENTRY * (uint64_t)d->nsec + name_len + 4, off = 0, end = 0;
    uint64_t sec_off[LQ_QT_MAX_SECTIONS];
    bool ok = align_up(w->pos, WRITE_ALIGN, &R) && add64(R, hdr, &end);
    for (size_t i = 0; ok && i < d->nsec; i++) {
        ok = align_up(end, WRITE_ALIGN, &off) && add64(off, d->sec[i].nbytes, &end);
        sec_off[i] = off;
    }
    if (!ok) {
        lq_free_with(&w->alloc, copy);
        return LQ_ERR_INVALID_ARG;
    }
    size_t rec_bytes = (size_t)hdr;
    uint8_t *rec = lq_alloc_with(&w->alloc, rec_bytes);
    if (!rec) {
        lq_free_with(&w->alloc, copy);
        return LQ_ERR_NO_MEMORY;
    }
    memset(rec, 0, rec_bytes);
    lq_wr32(rec + 0, d->magic);
    lq_wr32(rec + 4, d->format);
    lq_wr64(rec + 8, d->rows);
    lq_wr64(rec + 16, d->cols);
    lq_wr32(rec + 24, (uint32_t)d->nsec);
    lq_wr32(rec + 28, (uint32_t)name_len);
    for (size_t i = 0; i < LQ_QT_NPARAMS; i++) {
        lq_wr32(rec + 32 + 4 * i, d->ip ? d->ip[i] : 0);
        lq_wr32(rec + 96 + 4 * i, d->fp ? lq_f32_bits(d->fp[i]) : 0);
    }
    for (size_t i = 0; i < d->nsec; i++) {
        uint8_t *s = rec + REC_FIXED + SEC_ENTRY * i;
        const lq_qsection *q = &d->sec[i];
        lq_wr32(s + 0, q->tag);
        lq_wr32(s + 4, q->elem_size);
        lq_wr64(s + 8, sec_off[i]);
        lq_wr64(s + 16, q->nbytes);
        lq_wr32(s + 24, section_crc(w->level, q->data, q->nbytes, q->elem_size));
    }
    memcpy(rec + REC_FIXED + SEC_ENTRY * d->nsec, name, name_len);
    lq_wr32(rec + rec_bytes - 4, lq_crc32c_at(w->level, 0, rec, rec_bytes - 4));

    int io = pad_to(w, R) || put(w, rec, rec_bytes);
    for (size_t i = 0; !io && i < d->nsec; i++)
        io = pad_to(w, sec_off[i]) ||
             put_section(w, d->sec[i].data, d->sec[i].nbytes, d->sec[i].elem_size);
    lq_free_with(&w->alloc, rec);
    if (io) {
        lq_free_with(&w->alloc, copy);
        w->err = LQ_ERR_IO;
        return LQ_ERR_IO;
    }
    w->dir[2 * w->n] = R;
    w->dir[2 * w->n + 1] = end - R;
    w->n++;
    w->names[w->nnames++] = copy;
    return LQ_OK;
}

lq_status lq_lqt_writer_add(lq_lqt_writer *w, const char *name, const lq_qtensor *t)
{
    if (!w || !name || !t) return LQ_ERR_INVALID_ARG;
    if (w->err != LQ_OK) return w->err;
    if (strlen(name) > LQ_LQT_MAX_NAME) return LQ_ERR_INVALID_ARG;
    lq_status st = lq_qtensor_validate(t);
    if (st == LQ_ERR_NO_MEMORY) return st;
    if (st != LQ_OK) return LQ_ERR_INVALID_ARG;
    for (size_t i = 0; i < t->nsec; i++)
        if (!valid_elem(t->sec[i].elem_size) || t->sec[i].nbytes % t->sec[i].elem_size ||
            t->sec[i].tag == 0)
            return LQ_ERR_INVALID_ARG;
    for (size_t i = 0; i < LQ_QT_NPARAMS; i++)
        if (!isfinite(t->fp[i])) return LQ_ERR_INVALID_ARG;
    rec_desc d = {REC_MAGIC, (uint32_t)t->format, t->rows, t->cols, t->ip, t->fp, t->nsec, t->sec};
    return write_tensor_record(w, name, &d);
}

lq_status lq_lqt_writer_add_f32(lq_lqt_writer *w, const char *name, size_t rows, size_t cols,
                                const float *data)
{
    if (!w || !name || !data) return LQ_ERR_INVALID_ARG;
    if (w->err != LQ_OK) return w->err;
    size_t numel, nbytes;
    if (strlen(name) > LQ_LQT_MAX_NAME || rows == 0 || cols == 0 ||
        !lq_mul_ok(rows, cols, &numel) || !lq_mul_ok(numel, sizeof(float), &nbytes))
        return LQ_ERR_INVALID_ARG;
    for (size_t i = 0; i < numel; i++)
        if (!isfinite(data[i])) return LQ_ERR_NOT_FINITE;
    lq_qsection sec = {F32_TAG, sizeof(float), nbytes, (void *)(uintptr_t)data};
    rec_desc d = {F32_MAGIC, LQ_LQT_FORMAT_F32, rows, cols, NULL, NULL, 1, &sec};
    lq_status st = write_tensor_record(w, name, &d);
    if (st == LQ_OK) w->v2 = 1;
    return st;
}

lq_status lq_lqt_writer_add_meta(lq_lqt_writer *w, const char *key, const char *value)
{
    if (!w || !key || !value) return LQ_ERR_INVALID_ARG;
    if (w->err != LQ_OK) return w->err;
    size_t klen = strlen(key), vlen = strlen(value);
    if (klen == 0 || klen > LQ_LQT_MAX_META_KEY || vlen > LQ_LQT_MAX_META_VALUE ||
        listed(w->keys, w->nkeys, key))
        return LQ_ERR_INVALID_ARG;
    lq_status st = writer_reserve(w, &w->keys, w->nkeys, &w->keys_cap);
    if (st != LQ_OK) return st;
    char *copy = str_dup(&w->alloc, key, 0);
    if (!copy) return LQ_ERR_NO_MEMORY;
    uint64_t R;
    if (!align_up(w->pos, WRITE_ALIGN, &R)) { /* cannot happen: pos is a file offset */
        lq_free_with(&w->alloc, copy);
        return LQ_ERR_IO;
    }
    /* Streamed: the value is never copied, the CRC runs over the pieces. */
    uint8_t hdr[META_FIXED], crc[4];
    lq_wr32(hdr + 0, META_MAGIC);
    lq_wr32(hdr + 4, (uint32_t)klen);
    lq_wr32(hdr + 8, (uint32_t)vlen);
    lq_wr32(hdr + 12, 0);
    uint32_t c = lq_crc32c(0, hdr, sizeof hdr);
    c = lq_crc32c(c, key, klen);
    lq_wr32(crc, lq_crc32c(c, value, vlen));
    if (pad_to(w, R) || put(w, hdr, sizeof hdr) || put(w, key, klen) || put(w, value, vlen) ||
        put(w, crc, sizeof crc)) {
        lq_free_with(&w->alloc, copy);
        w->err = LQ_ERR_IO;
        return LQ_ERR_IO;
    }
    w->dir[2 * w->n] = R;
    w->dir[2 * w->n + 1] = w->pos - R;
    w->n++;
    w->keys[w->nkeys++] = copy;
    w->v2 = 1;
    return LQ_OK;
}

lq_status lq_lqt_writer_finish(lq_lqt_writer *w)
{
    if (!w) return LQ_ERR_INVALID_ARG;
    lq_status st = w->err;
    uint8_t hdr[HDR_SIZE];
    uint32_t dcrc = 0;
    uint64_t dir_off = 0;
    if (st == LQ_OK &&
        (w->n > UINT32_MAX || pad_to(w, (w->pos + WRITE_ALIGN - 1) & ~(uint64_t)(WRITE_ALIGN - 1))))
        st = LQ_ERR_IO;
    dir_off = w->pos;
    for (size_t i = 0; st == LQ_OK && i < w->n; i++) {
        uint8_t e[DIR_ENTRY];
        lq_wr64(e, w->dir[2 * i]);
        lq_wr64(e + 8, w->dir[2 * i + 1]);
        dcrc = lq_crc32c_at(w->level, dcrc, e, DIR_ENTRY);
        if (put(w, e, DIR_ENTRY) != 0) st = LQ_ERR_IO;
    }
    if (st == LQ_OK) {
        memset(hdr, 0, sizeof hdr);
        memcpy(hdr, LQT_MAGIC, 8);
        lq_wr32(hdr + 8, w->v2 ? 2 : 1); /* the lowest version that holds the content */
        lq_wr32(hdr + 12, 0);
        lq_wr64(hdr + 16, w->pos);
        lq_wr64(hdr + 24, dir_off);
        lq_wr64(hdr + 32, (uint64_t)w->n * DIR_ENTRY);
        lq_wr32(hdr + 40, (uint32_t)w->n);
        lq_wr32(hdr + 44, WRITE_ALIGN);
        lq_wr32(hdr + 48, dcrc);
        lq_wr32(hdr + 60, lq_crc32c_at(w->level, 0, hdr, 60));
        if (fseek(w->f, 0, SEEK_SET) != 0 || fwrite(hdr, 1, HDR_SIZE, w->f) != HDR_SIZE)
            st = LQ_ERR_IO;
    }
    if (fclose(w->f) != 0 && st == LQ_OK) st = LQ_ERR_IO;
    w->f = NULL;
    if (st == LQ_OK && (!lq_path_replaceable(w->path) || rename(w->tmp, w->path) != 0))
        st = LQ_ERR_IO;
    if (st != LQ_OK) remove(w->tmp);
    writer_free(w);
    return st;
}

lq_status lq_qtensor_save(lq_ctx *ctx, const lq_qtensor *t, const char *name, const char *path)
{
    if (!t || !path) return LQ_ERR_INVALID_ARG;
    lq_lqt_writer *w;
    lq_status st = lq_lqt_writer_open(ctx, path, &w);
    if (st != LQ_OK) return st;
    st = lq_lqt_writer_add(w, name ? name : "tensor", t);
    if (st != LQ_OK) {
        lq_lqt_writer_abort(w);
        return st;
    }
    return lq_lqt_writer_finish(w);
}

/* ---- reader ---------------------------------------------------------------------- */

typedef struct lqt_entry {
    uint64_t offset, size;
    const char *name; /* into f->names */
    int f32;          /* a float record (version 2) */
    size_t numel;     /* float record: rows * cols */
    uint64_t data;    /* float record: offset of the values */
    uint32_t crc;     /* float record: CRC of the values */
} lqt_entry;

typedef struct lqt_sorted {
    const char *name;
    size_t index;
} lqt_sorted;

typedef struct lqt_meta {
    const char *key, *value; /* into f->meta_str */
} lqt_meta;

struct lq_lqt {
    lq_allocator alloc;
    lq_simd_level level; /* of the opening context (its simd_cap holds) */
    lq_blob *blob;
    uint32_t version, alignment;
    size_t n; /* tensor and float records, in directory order */
    lqt_entry *e;
    char *names;
    lqt_sorted *sorted;
    size_t nmeta; /* metadata records, in directory order */
    lqt_meta *meta;
    char *meta_str;
    lqt_sorted *meta_sorted;
};

/* Parse and check the tensor or float record (kind given by `magic`, already
 * read) at [R, R + size), already known to lie inside the file. Fills info
 * (name left NULL) and the raw name. */
static lq_status parse_record(const lq_lqt *f, uint64_t R, uint64_t size, uint32_t magic,
                              lq_lqt_info *info, const uint8_t **name, size_t *name_len)
{
    const uint8_t *p = f->blob->data + R;
    if (size < REC_FIXED + 4) return LQ_ERR_CORRUPT;
    if (lq_rd32(p) != magic) return LQ_ERR_CORRUPT;
    uint32_t nsec = lq_rd32(p + 24), nlen = lq_rd32(p + 28);
    if (nsec > LQ_QT_MAX_SECTIONS || nlen > LQ_LQT_MAX_NAME) return LQ_ERR_CORRUPT;
    uint64_t hdr = REC_FIXED + (uint64_t)SEC_ENTRY * nsec + nlen + 4; /* small: no overflow */
    if (hdr > size) return LQ_ERR_CORRUPT;
    if (lq_crc32c_at(f->level, 0, p, (size_t)hdr - 4) != lq_rd32(p + hdr - 4))
        return LQ_ERR_CORRUPT;
    uint64_t rows = lq_rd64(p + 8), cols = lq_rd64(p + 16);
    if (rows == 0 || cols == 0 || rows > SIZE_MAX || cols > SIZE_MAX) return LQ_ERR_CORRUPT;
    size_t numel;
    if (!lq_mul_ok((size_t)rows, (size_t)cols, &numel)) return LQ_ERR_CORRUPT;
    memset(info, 0, sizeof *info);
    info->format = lq_rd32(p + 4);
    info->rows = (size_t)rows;
    info->cols = (size_t)cols;
    for (size_t i = 0; i < LQ_QT_NPARAMS; i++) {
        info->ip[i] = lq_rd32(p + 32 + 4 * i);
        info->fp[i] = lq_bits_f32(lq_rd32(p + 96 + 4 * i));
        if (!isfinite(info->fp[i])) return LQ_ERR_CORRUPT;
    }
    const uint8_t *nm = p + REC_FIXED + (size_t)SEC_ENTRY * nsec;
    if (memchr(nm, 0, nlen)) return LQ_ERR_CORRUPT;
    uint64_t end = R + hdr; /* R + size does not overflow (checked by caller) */
    for (uint32_t i = 0; i < nsec; i++) {
        const uint8_t *s = p + REC_FIXED + (size_t)SEC_ENTRY * i;
        lq_lqt_section_info *si = &info->sec[i];
        si->tag = lq_rd32(s);
        si->elem_size = lq_rd32(s + 4);
        si->offset = lq_rd64(s + 8);
        si->nbytes = lq_rd64(s + 16);
        si->crc = lq_rd32(s + 24);
        uint64_t send;
        if (si->tag == 0 || !valid_elem(si->elem_size) || lq_rd32(s + 28) != 0 ||
            si->nbytes % si->elem_size != 0 || si->offset % f->alignment != 0 || si->offset < end ||
            !add64(si->offset, si->nbytes, &send) || send > R + size || si->nbytes > SIZE_MAX)
            return LQ_ERR_CORRUPT;
        end = send;
    }
    if (end != R + size) return LQ_ERR_CORRUPT; /* no trailing bytes in a record */
    if (magic == F32_MAGIC) {
        /* Exactly one section of rows * cols float32 values; parameters zero
         * (as bit patterns: -0.0 is not zero here). */
        size_t nbytes;
        if (info->format != LQ_LQT_FORMAT_F32 || nsec != 1 || info->sec[0].tag != F32_TAG ||
            info->sec[0].elem_size != sizeof(float) || !lq_mul_ok(numel, sizeof(float), &nbytes) ||
            info->sec[0].nbytes != nbytes)
            return LQ_ERR_CORRUPT;
        for (size_t i = 0; i < 2 * LQ_QT_NPARAMS; i++)
            if (lq_rd32(p + 32 + 4 * i) != 0) return LQ_ERR_CORRUPT;
    } else if (f->version >= 2 && info->format == LQ_LQT_FORMAT_F32) {
        return LQ_ERR_CORRUPT; /* the float marker in a quantized tensor record */
    }
    info->nsec = nsec;
    info->offset = R;
    info->size = size;
    *name = nm;
    *name_len = nlen;
    return LQ_OK;
}

/* Check the metadata record at [R, R + size) (inside the file): lengths
 * within limits and matching the record size, reserved zero, CRC, no NUL in
 * the key or the value. */
static lq_status parse_meta(const lq_lqt *f, uint64_t R, uint64_t size, size_t *key_len,
                            size_t *value_len)
{
    const uint8_t *p = f->blob->data + R;
    if (size < META_FIXED + 4 || lq_rd32(p) != META_MAGIC) return LQ_ERR_CORRUPT;
    uint32_t klen = lq_rd32(p + 4), vlen = lq_rd32(p + 8);
    if (klen == 0 || klen > LQ_LQT_MAX_META_KEY || vlen > LQ_LQT_MAX_META_VALUE ||
        lq_rd32(p + 12) != 0)
        return LQ_ERR_CORRUPT;
    uint64_t body = META_FIXED + (uint64_t)klen + vlen; /* small: no overflow */
    if (size != body + 4) return LQ_ERR_CORRUPT;
    if (lq_crc32c(0, p, (size_t)body) != lq_rd32(p + body)) return LQ_ERR_CORRUPT;
    if (memchr(p + META_FIXED, 0, (size_t)klen + vlen)) return LQ_ERR_CORRUPT;
    *key_len = klen;
    *value_len = vlen;
    return LQ_OK;
}

static int cmp_sorted(const void *a, const void *b)
{
    return strcmp(((const lqt_sorted *)a)->name, ((const lqt_sorted *)b)->name);
}

/* Sort (name, index) pairs by name; false when two names are equal. */
static bool sort_unique(lqt_sorted *s, size_t n)
{
    if (n > 1) qsort(s, n, sizeof *s, cmp_sorted);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(s[i - 1].name, s[i].name)) return false;
    return true;
}

static lq_status find_sorted(const lqt_sorted *s, size_t n, const char *name, size_t *index)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s[mid].name, name);
        if (c == 0) {
            *index = s[mid].index;
            return LQ_OK;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return LQ_ERR_INVALID_ARG;
}

static void lqt_free(lq_lqt *f)
{
    lq_allocator a = f->alloc;
    lq_free_with(&a, f->e);
    lq_free_with(&a, f->names);
    lq_free_with(&a, f->sorted);
    lq_free_with(&a, f->meta);
    lq_free_with(&a, f->meta_str);
    lq_free_with(&a, f->meta_sorted);
    lq_blob_release(f->blob);
    lq_free_with(&a, f);
}

/* Copy n bytes and a NUL to *dst, advance it, return the copy. */
static const char *put_str(char **dst, const uint8_t *src, size_t n)
{
    char *s = *dst;
    memcpy(s, src, n);
    s[n] = 0;
    *dst = s + n + 1;
    return s;
}

/* Takes ownership of blob (released on error). */
static lq_status lqt_parse(lq_ctx *ctx, lq_blob *blob, lq_lqt **out)
{
    lq_allocator a = lq_ctx_allocator(ctx);
    lq_lqt *f = lq_alloc_with(&a, sizeof *f);
    if (!f) {
        lq_blob_release(blob);
        return LQ_ERR_NO_MEMORY;
    }
    memset(f, 0, sizeof *f);
    f->alloc = a;
    f->level = lq_simd_for(ctx);
    f->blob = blob;
    const uint8_t *h = blob->data;
    size_t fsize = blob->size;
    lq_status st = LQ_ERR_CORRUPT;
    if (fsize < HDR_SIZE || memcmp(h, LQT_MAGIC, 8) != 0) goto fail;
    if (lq_crc32c_at(f->level, 0, h, 60) != lq_rd32(h + 60)) goto fail;
    f->version = lq_rd32(h + 8);
    if (f->version == 0) goto fail;
    if (f->version > LQ_LQT_VERSION) {
        st = LQ_ERR_UNSUPPORTED;
        goto fail;
    }
    f->alignment = lq_rd32(h + 44);
    uint64_t file_size = lq_rd64(h + 16), dir_off = lq_rd64(h + 24), dir_size = lq_rd64(h + 32);
    uint32_t n = lq_rd32(h + 40);
    if (lq_rd32(h + 12) != 0 || lq_rd64(h + 52) != 0) goto fail; /* flags, reserved */
    if (file_size != (uint64_t)fsize) goto fail;                 /* truncated or padded */
    if (f->alignment < MIN_ALIGN || f->alignment > MAX_ALIGN || (f->alignment & (f->alignment - 1)))
        goto fail;
    if (dir_size != (uint64_t)n * DIR_ENTRY || dir_off < HDR_SIZE || dir_off > file_size ||
        dir_size != file_size - dir_off)
        goto fail;
    const uint8_t *dir = h + dir_off;
    if (lq_crc32c_at(f->level, 0, dir, (size_t)dir_size) != lq_rd32(h + 48)) goto fail;

    st = LQ_ERR_NO_MEMORY;
    f->e = lq_alloc_array(ctx, n ? n : 1, sizeof *f->e);
    if (!f->e) goto fail;
    /* First pass: directory and records (every kind); string bytes. The
     * string totals are bounded by the file size plus one NUL per record. */
    uint64_t prev_end = HDR_SIZE, names_bytes = 0, meta_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t R = lq_rd64(dir + DIR_ENTRY * i), size = lq_rd64(dir + DIR_ENTRY * i + 8), end;
        st = LQ_ERR_CORRUPT;
        if (R % f->alignment || R < prev_end || !add64(R, size, &end) || end > dir_off || size < 4)
            goto fail;
        uint32_t magic = lq_rd32(h + R);
        if (magic == META_MAGIC && f->version >= 2) {
            size_t klen, vlen;
            st = parse_meta(f, R, size, &klen, &vlen);
            if (st != LQ_OK) goto fail;
            meta_bytes += klen + vlen + 2;
            f->nmeta++;
        } else if (magic == REC_MAGIC || (magic == F32_MAGIC && f->version >= 2)) {
            lq_lqt_info info;
            const uint8_t *nm;
            size_t nlen;
            st = parse_record(f, R, size, magic, &info, &nm, &nlen);
            if (st != LQ_OK) goto fail;
            lqt_entry *e = &f->e[f->n++];
            *e = (lqt_entry){.offset = R, .size = size};
            if (magic == F32_MAGIC) {
                e->f32 = 1;
                e->numel = info.rows * info.cols;
                e->data = info.sec[0].offset;
                e->crc = info.sec[0].crc;
            }
            names_bytes += nlen + 1;
        } else {
            goto fail; /* unknown record kind (or a version-2 kind in a version-1 file) */
        }
        prev_end = end;
    }
    st = LQ_ERR_NO_MEMORY;
    f->names = lq_alloc(ctx, names_bytes ? (size_t)names_bytes : 1);
    f->sorted = lq_alloc_array(ctx, f->n ? f->n : 1, sizeof *f->sorted);
    if (!f->names || !f->sorted) goto fail;
    if (f->nmeta) {
        f->meta = lq_alloc_array(ctx, f->nmeta, sizeof *f->meta);
        f->meta_str = lq_alloc(ctx, (size_t)meta_bytes);
        f->meta_sorted = lq_alloc_array(ctx, f->nmeta, sizeof *f->meta_sorted);
        if (!f->meta || !f->meta_str || !f->meta_sorted) goto fail;
    }
    /* Second pass: copy the (validated) names, keys and values as C strings. */
    char *np = f->names, *mp = f->meta_str;
    for (size_t i = 0; i < f->n; i++) {
        const uint8_t *r = h + f->e[i].offset;
        const uint8_t *nm = r + REC_FIXED + (size_t)SEC_ENTRY * lq_rd32(r + 24);
        f->e[i].name = put_str(&np, nm, lq_rd32(r + 28));
        f->sorted[i] = (lqt_sorted){f->e[i].name, i};
    }
    for (size_t i = 0, m = 0; i < n; i++) {
        const uint8_t *r = h + lq_rd64(dir + DIR_ENTRY * i);
        if (lq_rd32(r) != META_MAGIC) continue;
        uint32_t klen = lq_rd32(r + 4), vlen = lq_rd32(r + 8);
        f->meta[m].key = put_str(&mp, r + META_FIXED, klen);
        f->meta[m].value = put_str(&mp, r + META_FIXED + klen, vlen);
        f->meta_sorted[m] = (lqt_sorted){f->meta[m].key, m};
        m++;
    }
    st = LQ_ERR_CORRUPT;
    if (!sort_unique(f->sorted, f->n)) goto fail;          /* duplicate tensor name */
    if (!sort_unique(f->meta_sorted, f->nmeta)) goto fail; /* duplicate metadata key */
    *out = f;
    return LQ_OK;
fail:
    lqt_free(f);
    return st;
}

lq_status lq_lqt_open(lq_ctx *ctx, const char *path, unsigned flags, lq_lqt **out)
{
    if (!path || !out || (flags & ~LQ_LQT_MMAP)) return LQ_ERR_INVALID_ARG;
    lq_blob *b;
    lq_status st = lq_blob_open(ctx, path, (flags & LQ_LQT_MMAP) != 0, &b);
    if (st != LQ_OK) return st;
    return lqt_parse(ctx, b, out);
}

lq_status lq_lqt_open_memory(lq_ctx *ctx, const void *data, size_t size, lq_lqt **out)
{
    if ((!data && size) || !out) return LQ_ERR_INVALID_ARG;
    lq_blob *b;
    lq_status st = lq_blob_wrap(ctx, data, size, &b);
    if (st != LQ_OK) return st;
    return lqt_parse(ctx, b, out);
}

void lq_lqt_close(lq_lqt *f)
{
    if (f) lqt_free(f);
}

size_t lq_lqt_count(const lq_lqt *f) { return f ? f->n : 0; }

lq_status lq_lqt_find(const lq_lqt *f, const char *name, size_t *index)
{
    if (!f || !name || !index) return LQ_ERR_INVALID_ARG;
    return find_sorted(f->sorted, f->n, name, index);
}

lq_status lq_lqt_info_get(const lq_lqt *f, size_t index, lq_lqt_info *info)
{
    if (!f || !info || index >= f->n) return LQ_ERR_INVALID_ARG;
    const uint8_t *nm;
    size_t nlen;
    lq_lqt_info tmp;
    const lqt_entry *e = &f->e[index];
    lq_status st =
        parse_record(f, e->offset, e->size, e->f32 ? F32_MAGIC : REC_MAGIC, &tmp, &nm, &nlen);
    if (st != LQ_OK) return st; /* cannot happen: checked at open */
    tmp.name = f->e[index].name;
    *info = tmp;
    return LQ_OK;
}

lq_status lq_lqt_file_info(const lq_lqt *f, uint32_t *version, uint32_t *alignment,
                           uint64_t *file_size)
{
    if (!f) return LQ_ERR_INVALID_ARG;
    if (version) *version = f->version;
    if (alignment) *alignment = f->alignment;
    if (file_size) *file_size = f->blob->size;
    return LQ_OK;
}

static void release_blob(void *owner) { lq_blob_release(owner); }

lq_status lq_lqt_load(lq_ctx *ctx, const lq_lqt *f, size_t index, unsigned flags, lq_qtensor **out)
{
    if (!f || !out || index >= f->n || (flags & ~(LQ_LQT_COPY | LQ_LQT_SKIP_DATA_CRC)) ||
        f->e[index].f32)
        return LQ_ERR_INVALID_ARG;
    if (!lq_ctx_resolve(ctx)) return LQ_ERR_NO_MEMORY;
    lq_lqt_info info;
    lq_status st = lq_lqt_info_get(f, index, &info);
    if (st != LQ_OK) return st;
    if (!lq_format_lookup((lq_format)info.format)) return LQ_ERR_CORRUPT;
    const uint8_t *base = f->blob->data;
    if (!(flags & LQ_LQT_SKIP_DATA_CRC))
        for (size_t i = 0; i < info.nsec; i++)
            if (lq_crc32c_at(lq_simd_for(ctx), 0, base + info.sec[i].offset,
                             (size_t)info.sec[i].nbytes) != info.sec[i].crc)
                return LQ_ERR_CORRUPT;
    int copy = (flags & LQ_LQT_COPY) != 0;
    if (!copy && ((uintptr_t)base % f->alignment) != 0) copy = 1; /* misaligned buffer */
    if (!copy && LQ_BIG_ENDIAN) return LQ_ERR_UNSUPPORTED;
    lq_qtensor *t;
    st = lq_qtensor_new(ctx, (lq_format)info.format, info.rows, info.cols, &t);
    if (st != LQ_OK) return st;
    memcpy(t->ip, info.ip, sizeof t->ip);
    memcpy(t->fp, info.fp, sizeof t->fp);
    for (size_t i = 0; i < info.nsec; i++) {
        const lq_lqt_section_info *si = &info.sec[i];
        const uint8_t *src = base + si->offset;
        if (copy) {
            void *d = lq_qtensor_add_section(t, si->tag, si->elem_size, (size_t)si->nbytes);
            if (!d) {
                lq_qtensor_free(t);
                return LQ_ERR_NO_MEMORY;
            }
            memcpy(d, src, (size_t)si->nbytes);
#if LQ_BIG_ENDIAN
            swap_elems(d, (size_t)si->nbytes, si->elem_size);
#endif
        } else {
            t->sec[i] =
                (lq_qsection){si->tag, si->elem_size, (size_t)si->nbytes, (void *)(uintptr_t)src};
            t->nsec = i + 1;
        }
    }
    if (!copy) {
        t->borrowed = 1;
        lq_blob_retain(f->blob);
        t->owner = f->blob;
        t->owner_release = release_blob;
    }
    st = lq_qtensor_validate(t);
    if (st != LQ_OK) {
        lq_qtensor_free(t);
        return st == LQ_ERR_INVALID_ARG ? LQ_ERR_CORRUPT : st;
    }
    *out = t;
    return LQ_OK;
}

/* ---- float records and metadata ------------------------------------------------------ */

lq_status lq_lqt_f32_check(const lq_lqt *f, size_t index)
{
    if (!f || index >= f->n || !f->e[index].f32) return LQ_ERR_INVALID_ARG;
    const lqt_entry *e = &f->e[index];
    const uint8_t *p = f->blob->data + e->data;
    if (lq_crc32c(0, p, e->numel * sizeof(float)) != e->crc) return LQ_ERR_CORRUPT;
    for (size_t i = 0; i < e->numel; i++)
        if ((lq_rd32(p + 4 * i) & 0x7F800000u) == 0x7F800000u) return LQ_ERR_CORRUPT; /* Inf/NaN */
    return LQ_OK;
}

lq_status lq_lqt_read_f32(const lq_lqt *f, size_t index, float *dst, size_t n)
{
    if (!f || !dst || index >= f->n || !f->e[index].f32 || n != f->e[index].numel)
        return LQ_ERR_INVALID_ARG;
    lq_status st = lq_lqt_f32_check(f, index);
    if (st != LQ_OK) return st;
    const uint8_t *p = f->blob->data + f->e[index].data;
#if LQ_BIG_ENDIAN
    for (size_t i = 0; i < n; i++) dst[i] = lq_bits_f32(lq_rd32(p + 4 * i));
#else
    memcpy(dst, p, n * sizeof(float));
#endif
    return LQ_OK;
}

size_t lq_lqt_meta_count(const lq_lqt *f) { return f ? f->nmeta : 0; }

lq_status lq_lqt_meta_get(const lq_lqt *f, size_t i, const char **key, const char **value)
{
    if (!f || i >= f->nmeta) return LQ_ERR_INVALID_ARG;
    if (key) *key = f->meta[i].key;
    if (value) *value = f->meta[i].value;
    return LQ_OK;
}

lq_status lq_lqt_meta_find(const lq_lqt *f, const char *key, const char **value)
{
    if (!f || !key || !value) return LQ_ERR_INVALID_ARG;
    size_t i;
    lq_status st = find_sorted(f->meta_sorted, f->nmeta, key, &i);
    if (st == LQ_OK) *value = f->meta[i].value;
    return st;
}

lq_status lq_qtensor_load(lq_ctx *ctx, const char *path, const char *name, unsigned flags,
                          lq_qtensor **out)
{
    if (!path || !out || (flags & ~(LQ_LQT_MMAP | LQ_LQT_COPY | LQ_LQT_SKIP_DATA_CRC)))
        return LQ_ERR_INVALID_ARG;
    lq_lqt *f;
    lq_status st = lq_lqt_open(ctx, path, flags & LQ_LQT_MMAP, &f);
    if (st != LQ_OK) return st;
    size_t idx = 0;
    if (name)
        st = lq_lqt_find(f, name, &idx);
    else if (f->n != 1)
        st = LQ_ERR_INVALID_ARG;
    if (st == LQ_OK) st = lq_lqt_load(ctx, f, idx, flags & ~LQ_LQT_MMAP, out);
    lq_lqt_close(f);
    return st;
}
