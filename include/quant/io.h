/*
 * Files: the .lqt container of quantized tensors, and readers of float
 * weights (safetensors, .npy).
 *
 * .lqt (docs/formats.md has the byte-level specification): a versioned,
 * little-endian file holding any number of named qtensors, and (version 2)
 * named float32 tensors and string key/value metadata, so that one file can
 * be a complete model. Each tensor is a record (format, shape, integer and
 * float parameters, a section table, the name) followed by its sections
 * (codes, scales, codebooks...; a float tensor has one section of values)
 * aligned to 64 bytes, so a mapped file gives aligned data. Header,
 * directory, records and sections carry CRC-32C checksums. Nothing read
 * from a file is trusted: every size, offset and count is checked with
 * overflow-safe arithmetic before use, each tensor is validated by its
 * format before it is returned, float values are checked finite. Any
 * inconsistency gives LQ_ERR_CORRUPT.
 *
 * Tensor files (safetensors, .npy) are opened through one type, lq_tfile,
 * which lists the tensors (name, dtype, shape) and converts one to float on
 * request. Safetensors headers are parsed as strict JSON with size limits;
 * .npy headers as the strict Python-literal dict NumPy writes.
 *
 * Threading: an opened lq_lqt or lq_tfile is read-only after open; every
 * query and load on it may run from several threads at once. A writer is
 * used from one thread at a time. Closing while another thread uses the
 * object is not allowed. Tensors loaded from a file stay valid after the
 * file is closed (they hold a reference to the mapping).
 *
 * Endianness: the files are little-endian. On a big-endian host, .lqt
 * sections are byte-swapped by element size when copied (LQ_LQT_COPY,
 * lq_lqt_read_f32) or written; zero-copy loads there return
 * LQ_ERR_UNSUPPORTED.
 */
#ifndef QUANT_IO_H
#define QUANT_IO_H

#include "quant/core.h"
#include "quant/qtensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- .lqt: writing ---------------------------------------------------------- */

/* Newest container version this library reads and writes (it reads 1 and
 * 2). The writer stamps the lowest version that holds the content: 1 when
 * the file has only quantized tensors (byte-identical to what version-1
 * writers produce, so older readers open it), 2 as soon as it has a float
 * tensor or a metadata entry. */
#define LQ_LQT_VERSION 2
/* Longest tensor name in bytes (names are byte strings without NUL). */
#define LQ_LQT_MAX_NAME 4096
/* Metadata limits in bytes: keys 1..LQ_LQT_MAX_META_KEY, values
 * 0..LQ_LQT_MAX_META_VALUE (byte strings without NUL; UTF-8 by convention,
 * not checked). */
#define LQ_LQT_MAX_META_KEY 256
#define LQ_LQT_MAX_META_VALUE 1048576
/* Marker in lq_lqt_info.format for float entries (no lq_format has it). */
#define LQ_LQT_FORMAT_F32 0x100u
/* Limits mirrored from the packed tensor model. */
#define LQ_LQT_MAX_SECTIONS 8
#define LQ_LQT_NPARAMS 16

typedef struct lq_lqt_writer lq_lqt_writer;

/* Start writing `path`. The data goes to "<path>.part", renamed to `path`
 * by lq_lqt_writer_finish (so a reader never sees a half-written file).
 * Only nothing or a regular file at `path` is ever replaced: a symlink,
 * FIFO, device node or directory there gives IO (checked at open and again
 * before the rename); "<path>.part" is created without following symlinks
 * and must be a regular file. Refusing to overwrite an input is the
 * caller's business (lq quantize compares inodes).
 * Errors: INVALID_ARG (NULL), IO (cannot create the file), NO_MEMORY. */
LQ_API lq_status lq_lqt_writer_open(lq_ctx *ctx, const char *path, lq_lqt_writer **out);

/* Append tensor t under `name` (NUL-terminated, at most LQ_LQT_MAX_NAME
 * bytes, unique in the file). t is validated first and not modified.
 * Errors: INVALID_ARG (NULL, name too long or duplicate, t fails
 * validation), IO, NO_MEMORY. After INVALID_ARG or NO_MEMORY nothing was
 * written and the writer goes on; after IO every later add and the finish
 * fail with IO (abort or finish it: the partial file is removed). */
LQ_API lq_status lq_lqt_writer_add(lq_lqt_writer *w, const char *name, const lq_qtensor *t);

/* Append a float32 tensor of rows x cols values (row-major; a 1-D tensor of
 * n values is rows = 1, cols = n; rows and cols >= 1) under `name`: the
 * same name rules as lq_lqt_writer_add and the same namespace (a float
 * tensor and a quantized tensor cannot share a name). data is not modified.
 * The file becomes version 2.
 * Errors: INVALID_ARG (NULL, name too long or duplicate, rows or cols 0,
 * rows * cols * 4 bytes overflow), NOT_FINITE (a NaN or infinite value),
 * IO, NO_MEMORY; after INVALID_ARG, NOT_FINITE or NO_MEMORY nothing was
 * written and the writer goes on; IO is sticky as for lq_lqt_writer_add. */
LQ_API lq_status lq_lqt_writer_add_f32(lq_lqt_writer *w, const char *name, size_t rows, size_t cols,
                                       const float *data);

/* Add metadata key -> value, both NUL-terminated byte strings (UTF-8 by
 * convention, not checked): the key 1..LQ_LQT_MAX_META_KEY bytes and unique
 * among the keys (tensor names are another namespace), the value at most
 * LQ_LQT_MAX_META_VALUE bytes (may be empty). The pair is written at once;
 * readers list pairs in the order they were added. The file becomes
 * version 2. Errors: INVALID_ARG (NULL, empty or too long key, duplicate
 * key, value too long), IO, NO_MEMORY, with the continuation rules of
 * lq_lqt_writer_add. */
LQ_API lq_status lq_lqt_writer_add_meta(lq_lqt_writer *w, const char *key, const char *value);

/* Write the directory and header, close and rename the file, free w
 * (always, also on error; on error the partial file is removed).
 * Errors: INVALID_ARG (w NULL), IO. */
LQ_API lq_status lq_lqt_writer_finish(lq_lqt_writer *w);

/* Discard: close and remove the partial file, free w. NULL is a no-op. */
LQ_API void lq_lqt_writer_abort(lq_lqt_writer *w);

/* Write a file holding the single tensor t under `name` (NULL: "tensor").
 * Errors: as lq_lqt_writer_open/add/finish. */
LQ_API lq_status lq_qtensor_save(lq_ctx *ctx, const lq_qtensor *t, const char *name,
                                 const char *path);

/* ---- .lqt: reading ----------------------------------------------------------- */

/* Open flags. */
#define LQ_LQT_MMAP 1u /* lq_lqt_open: map the file (no copy) instead of reading it */
/* Load flags. */
#define LQ_LQT_COPY 2u /* lq_lqt_load: the tensor owns copies of its sections */
#define LQ_LQT_SKIP_DATA_CRC                                                                       \
    4u /* lq_lqt_load: do not checksum the sections (the                                           \
          structure and the format are still validated) */

typedef struct lq_lqt lq_lqt;

/* Open a .lqt file (version 1 or 2): read it into memory (flags 0) or map
 * it (LQ_LQT_MMAP; falls back to reading if the file cannot be mapped).
 * Checks the header, the directory and every record (checksums, sizes,
 * offsets, alignment, unique tensor names, unique metadata keys, metadata
 * wholly: lengths, CRC, no NUL); section data (quantized and float) is
 * checked by lq_lqt_load and lq_lqt_read_f32.
 * Errors: INVALID_ARG (NULL, unknown flag), IO (open/read/map failed),
 * CORRUPT (any inconsistency, truncation, bad checksum), UNSUPPORTED (a
 * newer container version), NO_MEMORY. */
LQ_API lq_status lq_lqt_open(lq_ctx *ctx, const char *path, unsigned flags, lq_lqt **out);

/* As lq_lqt_open on a caller buffer, which is NOT copied: it must stay
 * valid and unchanged until the lq_lqt is closed and every tensor loaded
 * from it without LQ_LQT_COPY is freed. Errors: as lq_lqt_open (no IO). */
LQ_API lq_status lq_lqt_open_memory(lq_ctx *ctx, const void *data, size_t size, lq_lqt **out);

/* Close (NULL is a no-op). Tensors loaded from f stay valid. */
LQ_API void lq_lqt_close(lq_lqt *f);

/* Number of tensors, quantized and float, numbered in file order (0 for
 * NULL). Metadata entries are not counted (lq_lqt_meta_count). */
LQ_API size_t lq_lqt_count(const lq_lqt *f);

/* Index of the tensor (quantized or float) named `name`.
 * Errors: INVALID_ARG (NULL, not found). */
LQ_API lq_status lq_lqt_find(const lq_lqt *f, const char *name, size_t *index);

/* Description of one section as stored. */
typedef struct lq_lqt_section_info {
    uint32_t tag;       /* section kind (codes, scales...: see docs/formats.md) */
    uint32_t elem_size; /* bytes per element: 1, 2, 4 or 8 */
    uint64_t offset;    /* from the start of the file (a multiple of the alignment) */
    uint64_t nbytes;
    uint32_t crc; /* CRC-32C of the section's bytes */
} lq_lqt_section_info;

/* Description of one tensor record (from the record alone; the format's
 * own validation runs in lq_lqt_load). A float entry has format
 * LQ_LQT_FORMAT_F32, its shape, ip and fp zero, and one section (tag 10,
 * "values", elem_size 4, rows * cols * 4 bytes). */
typedef struct lq_lqt_info {
    const char *name; /* NUL-terminated; owned by f, valid until close */
    uint32_t format;  /* lq_format value as stored (may be unknown to this build),
                         or LQ_LQT_FORMAT_F32 */
    size_t rows, cols;
    uint32_t ip[LQ_LQT_NPARAMS];
    float fp[LQ_LQT_NPARAMS];
    size_t nsec;
    lq_lqt_section_info sec[LQ_LQT_MAX_SECTIONS];
    uint64_t offset, size; /* the record's byte range in the file */
} lq_lqt_info;

/* Describe tensor `index` (quantized or float). In a version-2 file,
 * info.format == LQ_LQT_FORMAT_F32 exactly for float entries (a version-1
 * file has none: a record there stating that value is an unknown quantized
 * format, as version-1 readers see it).
 * Errors: INVALID_ARG (NULL, index out of range). */
LQ_API lq_status lq_lqt_info_get(const lq_lqt *f, size_t index, lq_lqt_info *info);

/* Container-level facts: version and alignment of the file. */
LQ_API lq_status lq_lqt_file_info(const lq_lqt *f, uint32_t *version, uint32_t *alignment,
                                  uint64_t *file_size);

/* Build tensor `index` as an lq_qtensor. Without LQ_LQT_COPY the sections
 * point into the file's memory (zero copy when mapped) and the tensor keeps
 * that memory alive until lq_qtensor_free; with LQ_LQT_COPY they are copied
 * through ctx's allocator. Section checksums are verified (unless
 * LQ_LQT_SKIP_DATA_CRC), then the format validates the tensor. flags may
 * hold LQ_LQT_COPY and LQ_LQT_SKIP_DATA_CRC.
 * Errors: INVALID_ARG (NULL, index out of range, unknown flag, a float
 * entry: use lq_lqt_read_f32), CORRUPT (checksum mismatch, unknown format,
 * the format rejects the tensor), UNSUPPORTED (zero copy on a big-endian
 * host), NO_MEMORY. *out untouched on error. */
LQ_API lq_status lq_lqt_load(lq_ctx *ctx, const lq_lqt *f, size_t index, unsigned flags,
                             lq_qtensor **out);

/* Copy float entry `index` (info.format == LQ_LQT_FORMAT_F32) into dst, n
 * values (n == rows * cols), after checking its CRC and that every value
 * is finite. Allocates nothing; thread-safe like every query on f.
 * Errors: INVALID_ARG (NULL, index out of range, n mismatch, not a float
 * entry), CORRUPT (checksum mismatch, a NaN or infinite value). dst is
 * untouched on error. */
LQ_API lq_status lq_lqt_read_f32(const lq_lqt *f, size_t index, float *dst, size_t n);

/* Metadata: the number of key/value pairs (0 for NULL), the i-th pair in
 * file order (key and value may each be NULL when not wanted), and the
 * value of `key`. The strings are NUL-terminated and owned by f, valid
 * until lq_lqt_close. Errors: INVALID_ARG (NULL f, key or value for find;
 * i out of range; key not found). Outputs untouched on error. */
LQ_API size_t lq_lqt_meta_count(const lq_lqt *f);
LQ_API lq_status lq_lqt_meta_get(const lq_lqt *f, size_t i, const char **key, const char **value);
LQ_API lq_status lq_lqt_meta_find(const lq_lqt *f, const char *key, const char **value);

/* Open `path`, load the tensor `name` (NULL: the file must hold exactly one
 * tensor), close. flags: LQ_LQT_MMAP, LQ_LQT_COPY, LQ_LQT_SKIP_DATA_CRC.
 * Errors: as lq_lqt_open and lq_lqt_load; INVALID_ARG when the name is not
 * found, names a float tensor, or name is NULL and the file holds several
 * tensors (quantized and float count alike). */
LQ_API lq_status lq_qtensor_load(lq_ctx *ctx, const char *path, const char *name, unsigned flags,
                                 lq_qtensor **out);

/* ---- float tensor files: safetensors and .npy -------------------------------- */

/* Element types of tensor files. Only F32, F16 and BF16 can be read as
 * float; the others are listed so that files holding them can be opened. */
typedef enum lq_dtype {
    LQ_DTYPE_UNKNOWN = 0,
    LQ_DTYPE_F32 = 1,
    LQ_DTYPE_F16 = 2,
    LQ_DTYPE_BF16 = 3,
    LQ_DTYPE_F64 = 4,
    LQ_DTYPE_I8 = 5,
    LQ_DTYPE_U8 = 6,
    LQ_DTYPE_I16 = 7,
    LQ_DTYPE_U16 = 8,
    LQ_DTYPE_I32 = 9,
    LQ_DTYPE_U32 = 10,
    LQ_DTYPE_I64 = 11,
    LQ_DTYPE_U64 = 12,
    LQ_DTYPE_BOOL = 13,
    LQ_DTYPE_F8_E4M3 = 14,
    LQ_DTYPE_F8_E5M2 = 15
} lq_dtype;

/* Name as safetensors spells it ("F32", "BF16"...; "unknown"). */
LQ_API const char *lq_dtype_name(lq_dtype d);

typedef enum lq_tfile_kind {
    LQ_TFILE_AUTO = 0, /* detect from the first bytes */
    LQ_TFILE_SAFETENSORS = 1,
    LQ_TFILE_NPY = 2
} lq_tfile_kind;

/* Most dimensions a tensor may have (more: LQ_ERR_UNSUPPORTED). */
#define LQ_TFILE_MAX_DIMS 8
/* Largest safetensors JSON header accepted (bytes). */
#define LQ_SAFETENSORS_MAX_HEADER 100000000u
/* Largest .npy header accepted (bytes). */
#define LQ_NPY_MAX_HEADER 1048576u

typedef struct lq_tfile lq_tfile;

typedef struct lq_tensor_info {
    const char *name; /* NUL-terminated, owned by the file; .npy: "" */
    lq_dtype dtype;
    size_t ndim; /* 0 for a scalar */
    size_t shape[LQ_TFILE_MAX_DIMS];
    size_t numel; /* product of shape (1 for a scalar) */
} lq_tensor_info;

/* Open a safetensors or .npy file (kind LQ_TFILE_AUTO detects it). The file
 * is mapped (or read when it cannot be mapped). The whole header is parsed
 * and checked: tensor sizes against their byte ranges, ranges inside the
 * file and not overlapping, names unique, JSON well formed.
 * Errors: INVALID_ARG (NULL, bad kind), IO, CORRUPT (malformed or
 * truncated), UNSUPPORTED (big-endian or Fortran-order .npy, more than
 * LQ_TFILE_MAX_DIMS dimensions), NO_MEMORY. */
LQ_API lq_status lq_tfile_open(lq_ctx *ctx, const char *path, lq_tfile_kind kind, lq_tfile **out);

/* As lq_tfile_open on a caller buffer (not copied; it must outlive f). */
LQ_API lq_status lq_tfile_open_memory(lq_ctx *ctx, const void *data, size_t size,
                                      lq_tfile_kind kind, lq_tfile **out);

/* Close (NULL is a no-op). */
LQ_API void lq_tfile_close(lq_tfile *f);

/* The detected kind, and the number of tensors (1 for .npy; 0 for NULL). */
LQ_API lq_tfile_kind lq_tfile_get_kind(const lq_tfile *f);
LQ_API size_t lq_tfile_count(const lq_tfile *f);

/* Describe tensor `index` (in the file's order). Errors: INVALID_ARG. */
LQ_API lq_status lq_tfile_info(const lq_tfile *f, size_t index, lq_tensor_info *info);

/* Index of the tensor named `name`. Errors: INVALID_ARG (NULL, not found). */
LQ_API lq_status lq_tfile_find(const lq_tfile *f, const char *name, size_t *index);

/* Convert tensor `index` to float into dst (n must equal its numel).
 * Values are converted exactly (F16/BF16 widen exactly); NaN and Inf pass
 * through (lq_quantize rejects them). Errors: INVALID_ARG (NULL, n
 * mismatch, index out of range), UNSUPPORTED (dtype not F32/F16/BF16). */
LQ_API lq_status lq_tfile_read_f32(const lq_tfile *f, size_t index, float *dst, size_t n);

/* A tensor to write: name, dtype on disk (F32, F16 or BF16; values are
 * rounded to nearest even), shape, and the float data (numel values). */
typedef struct lq_tensor_desc {
    const char *name;
    lq_dtype dtype;
    size_t ndim;
    size_t shape[LQ_TFILE_MAX_DIMS];
    const float *data;
} lq_tensor_desc;

/* Write a safetensors file of n tensors (in that order; names unique and
 * JSON-escaped). Errors: INVALID_ARG (NULL, bad dtype or ndim, duplicate
 * name, size overflow), IO, NO_MEMORY. */
LQ_API lq_status lq_safetensors_write(lq_ctx *ctx, const char *path, const lq_tensor_desc *t,
                                      size_t n);

/* Write one tensor as .npy (version 1.0, '<f4' or '<f2', C order; the
 * name is ignored). Errors: INVALID_ARG (dtype not F32/F16, ndim), IO. */
LQ_API lq_status lq_npy_write(lq_ctx *ctx, const char *path, const lq_tensor_desc *t);

#ifdef __cplusplus
}
#endif
#endif /* QUANT_IO_H */
