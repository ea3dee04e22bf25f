/*
 * The .lqt container: writer and validating reader (docs/formats.md).
 *
 * Serialisation is generic over the packed tensor model (header params +
 * byte sections); no format-specific code lives here. After reading, the
 * format's traits validate the tensor, so the codes are never trusted.
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
#define REC_MAGIC 0x5254514Cu /* "LQTR" little-endian */
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

static bool valid_elem(uint32_t e)
{
    return e == 1 || e == 2 || e == 4 || e == 8;
}

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
    lq_status err;     /* sticky I/O error */
    size_t n, cap;
    uint64_t *dir;     /* 2 per tensor: offset, size */
    char **names;
};

static char *str_dup(const lq_allocator *a, const char *s, size_t extra)
{
    size_t n = strlen(s);
    char *d = lq_alloc_with(a, n + extra + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

/* The final rename may only replace nothing or a regular file: a symlink,
 * FIFO, device or directory at `path` is refused (it would be replaced by a
 * regular file, or the rename would fail after all the work). */
static int path_replaceable(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) return errno == ENOENT;
    return S_ISREG(sb.st_mode);
}

/* Create or truncate the regular file `tmp` without following a symlink and
 * without blocking on a FIFO; anything but a regular file is refused. */
static FILE *open_part(const char *tmp)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd < 0) return NULL;
    struct stat sb;
    FILE *f = NULL;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)) f = fdopen(fd, "wb");
    if (!f) close(fd);
    return f;
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
    w->f = path_replaceable(path) ? open_part(w->tmp) : NULL;
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
    for (size_t i = 0; i < w->n; i++) lq_free_with(&a, w->names[i]);
    lq_free_with(&a, w->names);
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

static lq_status writer_grow(lq_lqt_writer *w)
{
    if (w->n < w->cap) return LQ_OK;
    size_t cap = w->cap ? 2 * w->cap : 16, nb;
    if (!lq_mul_ok(cap, 2 * sizeof(uint64_t), &nb)) return LQ_ERR_NO_MEMORY;
    uint64_t *dir = lq_alloc_with(&w->alloc, nb);
    char **names = lq_alloc_with(&w->alloc, cap * sizeof *names);
    if (!dir || !names) {
        lq_free_with(&w->alloc, dir);
        lq_free_with(&w->alloc, names);
        return LQ_ERR_NO_MEMORY;
    }
    if (w->n) {
        memcpy(dir, w->dir, w->n * 2 * sizeof *dir);
        memcpy(names, w->names, w->n * sizeof *names);
    }
    lq_free_with(&w->alloc, w->dir);
    lq_free_with(&w->alloc, w->names);
    w->dir = dir;
    w->names = names;
    w->cap = cap;
    return LQ_OK;
}

lq_status lq_lqt_writer_add(lq_lqt_writer *w, const char *name, const lq_qtensor *t)
{
    if (!w || !name || !t) return LQ_ERR_INVALID_ARG;
    if (w->err != LQ_OK) return w->err;
    size_t name_len = strlen(name);
    if (name_len > LQ_LQT_MAX_NAME) return LQ_ERR_INVALID_ARG;
    lq_status st = lq_qtensor_validate(t);
    if (st == LQ_ERR_NO_MEMORY) return st;
    if (st != LQ_OK) return LQ_ERR_INVALID_ARG;
    for (size_t i = 0; i < t->nsec; i++)
        if (!valid_elem(t->sec[i].elem_size) || t->sec[i].nbytes % t->sec[i].elem_size ||
            t->sec[i].tag == 0)
            return LQ_ERR_INVALID_ARG;
    for (size_t i = 0; i < LQ_QT_NPARAMS; i++)
        if (!isfinite(t->fp[i])) return LQ_ERR_INVALID_ARG;
    for (size_t i = 0; i < w->n; i++)
        if (!strcmp(w->names[i], name)) return LQ_ERR_INVALID_ARG;
    st = writer_grow(w);
    if (st != LQ_OK) return st;
    char *copy = str_dup(&w->alloc, name, 0);
    if (!copy) return LQ_ERR_NO_MEMORY;

    /* Lay the record out. */
    uint64_t R, hdr = REC_FIXED + SEC_ENTRY * (uint64_t)t->nsec + name_len + 4, off = 0, end = 0;
    uint64_t sec_off[LQ_QT_MAX_SECTIONS];
    bool ok = align_up(w->pos, WRITE_ALIGN, &R) && add64(R, hdr, &end);
    for (size_t i = 0; ok && i < t->nsec; i++) {
        ok = align_up(end, WRITE_ALIGN, &off) && add64(off, t->sec[i].nbytes, &end);
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
    lq_wr32(rec + 0, REC_MAGIC);
    lq_wr32(rec + 4, (uint32_t)t->format);
    lq_wr64(rec + 8, t->rows);
    lq_wr64(rec + 16, t->cols);
    lq_wr32(rec + 24, (uint32_t)t->nsec);
    lq_wr32(rec + 28, (uint32_t)name_len);
    for (size_t i = 0; i < LQ_QT_NPARAMS; i++) {
        lq_wr32(rec + 32 + 4 * i, t->ip[i]);
        lq_wr32(rec + 96 + 4 * i, lq_f32_bits(t->fp[i]));
    }
    for (size_t i = 0; i < t->nsec; i++) {
        uint8_t *s = rec + REC_FIXED + SEC_ENTRY * i;
        const lq_qsection *q = &t->sec[i];
        lq_wr32(s + 0, q->tag);
        lq_wr32(s + 4, q->elem_size);
        lq_wr64(s + 8, sec_off[i]);
        lq_wr64(s + 16, q->nbytes);
        lq_wr32(s + 24, section_crc(w->level, q->data, q->nbytes, q->elem_size));
    }
    memcpy(rec + REC_FIXED + SEC_ENTRY * t->nsec, name, name_len);
    lq_wr32(rec + rec_bytes - 4, lq_crc32c_at(w->level, 0, rec, rec_bytes - 4));

    int io = pad_to(w, R) || put(w, rec, rec_bytes);
    for (size_t i = 0; !io && i < t->nsec; i++)
        io = pad_to(w, sec_off[i]) || put_section(w, t->sec[i].data, t->sec[i].nbytes,
                                                  t->sec[i].elem_size);
    lq_free_with(&w->alloc, rec);
    if (io) {
        lq_free_with(&w->alloc, copy);
        w->err = LQ_ERR_IO;
        return LQ_ERR_IO;
    }
    w->dir[2 * w->n] = R;
    w->dir[2 * w->n + 1] = end - R;
    w->names[w->n++] = copy;
    return LQ_OK;
}

lq_status lq_lqt_writer_finish(lq_lqt_writer *w)
{
    if (!w) return LQ_ERR_INVALID_ARG;
    lq_status st = w->err;
    uint8_t hdr[HDR_SIZE];
    uint32_t dcrc = 0;
    uint64_t dir_off = 0;
    if (st == LQ_OK && (w->n > UINT32_MAX || pad_to(w, (w->pos + WRITE_ALIGN - 1) &
                                                          ~(uint64_t)(WRITE_ALIGN - 1))))
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
        lq_wr32(hdr + 8, LQ_LQT_VERSION);
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
    if (st == LQ_OK && (!path_replaceable(w->path) || rename(w->tmp, w->path) != 0))
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
} lqt_entry;

typedef struct lqt_sorted {
    const char *name;
    size_t index;
} lqt_sorted;

struct lq_lqt {
    lq_allocator alloc;
    lq_simd_level level; /* of the opening context (its simd_cap holds) */
    lq_blob *blob;
    uint32_t version, alignment;
    size_t n;
    lqt_entry *e;
    char *names;
    lqt_sorted *sorted;
};

/* Parse and check the record at [R, R + size) (already known to lie inside
 * the file). Fills info (name left NULL) and the raw name. */
static lq_status parse_record(const lq_lqt *f, uint64_t R, uint64_t size, lq_lqt_info *info,
                              const uint8_t **name, size_t *name_len)
{
    const uint8_t *p = f->blob->data + R;
    if (size < REC_FIXED + 4) return LQ_ERR_CORRUPT;
    if (lq_rd32(p) != REC_MAGIC) return LQ_ERR_CORRUPT;
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
            si->nbytes % si->elem_size != 0 || si->offset % f->alignment != 0 ||
            si->offset < end || !add64(si->offset, si->nbytes, &send) || send > R + size ||
            si->nbytes > SIZE_MAX)
            return LQ_ERR_CORRUPT;
        end = send;
    }
    if (end != R + size) return LQ_ERR_CORRUPT; /* no trailing bytes in a record */
    info->nsec = nsec;
    info->offset = R;
    info->size = size;
    *name = nm;
    *name_len = nlen;
    return LQ_OK;
}

static int cmp_sorted(const void *a, const void *b)
{
    return strcmp(((const lqt_sorted *)a)->name, ((const lqt_sorted *)b)->name);
}

static void lqt_free(lq_lqt *f)
{
    lq_allocator a = f->alloc;
    lq_free_with(&a, f->e);
    lq_free_with(&a, f->names);
    lq_free_with(&a, f->sorted);
    lq_blob_release(f->blob);
    lq_free_with(&a, f);
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
    if (file_size != (uint64_t)fsize) goto fail;                   /* truncated or padded */
    if (f->alignment < MIN_ALIGN || f->alignment > MAX_ALIGN ||
        (f->alignment & (f->alignment - 1)))
        goto fail;
    if (dir_size != (uint64_t)n * DIR_ENTRY || dir_off < HDR_SIZE || dir_off > file_size ||
        dir_size != file_size - dir_off)
        goto fail;
    const uint8_t *dir = h + dir_off;
    if (lq_crc32c_at(f->level, 0, dir, (size_t)dir_size) != lq_rd32(h + 48)) goto fail;

    st = LQ_ERR_NO_MEMORY;
    f->n = n;
    f->e = lq_alloc_array(ctx, n ? n : 1, sizeof *f->e);
    if (!f->e) goto fail;
    /* First pass: directory and records; total name bytes. */
    uint64_t prev_end = HDR_SIZE, names_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t R = lq_rd64(dir + DIR_ENTRY * i), size = lq_rd64(dir + DIR_ENTRY * i + 8), end;
        st = LQ_ERR_CORRUPT;
        if (R % f->alignment || R < prev_end || !add64(R, size, &end) || end > dir_off) goto fail;
        lq_lqt_info info;
        const uint8_t *nm;
        size_t nlen;
        f->e[i].offset = R;
        f->e[i].size = size;
        st = parse_record(f, R, size, &info, &nm, &nlen);
        if (st != LQ_OK) goto fail;
        names_bytes += nlen + 1;
        prev_end = end;
    }
    st = LQ_ERR_NO_MEMORY;
    f->names = lq_alloc(ctx, names_bytes ? (size_t)names_bytes : 1);
    f->sorted = lq_alloc_array(ctx, n ? n : 1, sizeof *f->sorted);
    if (!f->names || !f->sorted) goto fail;
    char *np = f->names;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *nm = f->blob->data + f->e[i].offset + REC_FIXED +
                            (size_t)SEC_ENTRY * lq_rd32(f->blob->data + f->e[i].offset + 24);
        size_t nlen = lq_rd32(f->blob->data + f->e[i].offset + 28);
        memcpy(np, nm, nlen);
        np[nlen] = 0;
        f->e[i].name = np;
        f->sorted[i] = (lqt_sorted){np, i};
        np += nlen + 1;
    }
    if (n > 1) qsort(f->sorted, n, sizeof *f->sorted, cmp_sorted);
    st = LQ_ERR_CORRUPT;
    for (size_t i = 1; i < n; i++)
        if (!strcmp(f->sorted[i - 1].name, f->sorted[i].name)) goto fail; /* duplicate name */
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

size_t lq_lqt_count(const lq_lqt *f)
{
    return f ? f->n : 0;
}

lq_status lq_lqt_find(const lq_lqt *f, const char *name, size_t *index)
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
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return LQ_ERR_INVALID_ARG;
}

lq_status lq_lqt_info_get(const lq_lqt *f, size_t index, lq_lqt_info *info)
{
    if (!f || !info || index >= f->n) return LQ_ERR_INVALID_ARG;
    const uint8_t *nm;
    size_t nlen;
    lq_lqt_info tmp;
    lq_status st = parse_record(f, f->e[index].offset, f->e[index].size, &tmp, &nm, &nlen);
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

static void release_blob(void *owner)
{
    lq_blob_release(owner);
}

lq_status lq_lqt_load(lq_ctx *ctx, const lq_lqt *f, size_t index, unsigned flags,
                      lq_qtensor **out)
{
    if (!f || !out || index >= f->n || (flags & ~(LQ_LQT_COPY | LQ_LQT_SKIP_DATA_CRC)))
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
            t->sec[i] = (lq_qsection){si->tag, si->elem_size, (size_t)si->nbytes,
                                      (void *)(uintptr_t)src};
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

lq_status lq_qtensor_load(lq_ctx *ctx, const char *path, const char *name, unsigned flags,
                          lq_qtensor **out)
{
    if (!path || !out ||
        (flags & ~(LQ_LQT_MMAP | LQ_LQT_COPY | LQ_LQT_SKIP_DATA_CRC)))
        return LQ_ERR_INVALID_ARG;
    lq_lqt *f;
    lq_status st = lq_lqt_open(ctx, path, flags & LQ_LQT_MMAP, &f);
    if (st != LQ_OK) return st;
    size_t idx = 0;
    if (name) st = lq_lqt_find(f, name, &idx);
    else if (f->n != 1) st = LQ_ERR_INVALID_ARG;
    if (st == LQ_OK) st = lq_lqt_load(ctx, f, idx, flags & ~LQ_LQT_MMAP, out);
    lq_lqt_close(f);
    return st;
}
