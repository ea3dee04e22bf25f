/*
 * Internal helpers of the io module: little-endian field access, CRC32C,
 * and the "blob" (a read-only byte range that is
 * mapped, read into memory, or borrowed from the caller, shared by
 * reference count between an opened file and the tensors that point into it).
 */
#ifndef LQ_IO_INTERNAL_H
#define LQ_IO_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/half.h"
#include "core/internal.h"
#include "quant/io.h"
#include "simd/crc32c_simd.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define LQ_BIG_ENDIAN 1
#else
#define LQ_BIG_ENDIAN 0
#endif

/* ---- little-endian fields (portable: byte by byte) ------------------------ */
static inline uint16_t lq_rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t lq_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t lq_rd64(const uint8_t *p)
{
    return (uint64_t)lq_rd32(p) | ((uint64_t)lq_rd32(p + 4) << 32);
}
static inline void lq_wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void lq_wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void lq_wr64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- CRC32C (Castagnoli, reflected polynomial 0x82F63B78) -----------------
 * lq_crc32c(0, data, n) is the standard CRC-32C of data (check value of
 * "123456789": 0xE3069283); pass the previous result to continue a stream.
 * Dispatches to the SSE4.2 instruction when the level (lq_crc32c_at: the
 * caller's, lq_simd_for(ctx); lq_crc32c: lq_simd_detected()) is AVX2 or
 * above (every AVX2 CPU has SSE4.2); both paths give identical results. */
uint32_t lq_crc32c(uint32_t crc, const void *data, size_t n);
uint32_t lq_crc32c_at(lq_simd_level level, uint32_t crc, const void *data, size_t n);
uint32_t lq_crc32c_scalar(uint32_t crc, const void *data, size_t n);
/* lq_crc32c_sse42 (x86-64): simd/crc32c_simd.h */

/* ---- output files (outfile.c) ----------------------------------------------
 * Writers put their bytes in "<path>.part" and rename it to path at the end,
 * so a reader never sees a half-written file. */
/* 1 when the final rename may replace what is at path: nothing or a regular
 * file (a symlink, FIFO, device or directory is refused: it would be
 * replaced by a regular file, or the rename would fail after all the work). */
int lq_path_replaceable(const char *path);
/* Create or truncate the regular file tmp for writing without following a
 * symlink and without blocking on a FIFO; NULL when that fails or tmp is
 * not a regular file. */
FILE *lq_open_part(const char *tmp);

/* ---- blob ------------------------------------------------------------------ */
typedef enum { LQ_BLOB_HEAP, LQ_BLOB_MAP, LQ_BLOB_BORROWED } lq_blob_kind;

typedef struct lq_blob {
    const uint8_t *data; /* never NULL (points to a static byte when size == 0) */
    size_t size;
    lq_blob_kind kind;
    atomic_size_t refs;
    lq_allocator alloc; /* frees the struct (and the heap copy) */
    void *heap;         /* LQ_BLOB_HEAP: the buffer */
    void *map;          /* LQ_BLOB_MAP: mapping start */
    size_t map_len;
} lq_blob;

/* Open a file: map it (map != 0; falls back to reading when the file cannot
 * be mapped) or read it whole into a 64-byte aligned buffer. Errors:
 * INVALID_ARG, IO (open, stat, read), NO_MEMORY. refs = 1. */
lq_status lq_blob_open(lq_ctx *ctx, const char *path, int map, lq_blob **out);
/* Wrap caller memory (not copied; must outlive the blob). refs = 1. */
lq_status lq_blob_wrap(lq_ctx *ctx, const void *data, size_t size, lq_blob **out);
void lq_blob_retain(lq_blob *b);
void lq_blob_release(lq_blob *b); /* frees on the last reference; NULL ok */

/* ---- .lqt float records ------------------------------------------------------ */
/* The check lq_lqt_read_f32 makes, without the copy (lq inspect validates
 * large float tensors this way): float entry `index` of f has the stored
 * CRC and only finite values. Errors: INVALID_ARG (NULL, index, not a float
 * entry), CORRUPT. */
lq_status lq_lqt_f32_check(const lq_lqt *f, size_t index);

/* Dtype size in bytes (0 for unknown). */
size_t lq_dtype_size(lq_dtype d);

/* ---- tensor files (safetensors, .npy) ------------------------------------------ */
typedef struct lq_tf_entry {
    const char *name;
    lq_dtype dtype;
    size_t ndim;
    size_t shape[LQ_TFILE_MAX_DIMS];
    size_t numel;
    const uint8_t *data; /* into the blob */
    size_t nbytes;
} lq_tf_entry;

typedef struct lq_tf_sorted {
    const char *name;
    size_t index;
} lq_tf_sorted;

struct lq_tfile {
    lq_allocator alloc;
    lq_blob *blob;
    lq_tfile_kind kind;
    size_t n;
    lq_tf_entry *e;       /* n entries */
    char *strings;        /* names */
    lq_tf_sorted *sorted; /* by name, for lq_tfile_find */
};

/* Parsers: fill f->n, f->e, f->strings (allocated with ctx) from f->blob.
 * On error they may leave partial allocations in f (freed by the caller). */
lq_status lq_safetensors_parse(lq_ctx *ctx, lq_tfile *f);
lq_status lq_npy_parse(lq_ctx *ctx, lq_tfile *f);
#endif
