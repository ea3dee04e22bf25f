/*
 * GGUF export: a GGUF version 3 writer and the repack of libquant tensors
 * into ggml tensor types (docs/formats.md section 4). Internal to the
 * library; `lq export --gguf` (tools/lq/cmd_export.c) is the user.
 *
 * Exactness. An INT tensor with group 32, cols a multiple of 32, no column
 * permutation, 4, 5 or 8 bits and half-precision scales maps onto ggml's
 * legacy blocks of 32 weights so that ggml's reference dequantization
 * (float arithmetic: (q - 8) d, q d + m, ...) gives exactly libquant's
 * W_hat = (code - zero) * scale:
 *   every zero 2^(bits-1)   -> Q4_0, Q5_0, Q8_0: d = scale, q = code
 *                              (Q8_0: qs = code - 128, signed);
 *   4 or 5 bits, any zeros  -> Q4_1, Q5_1: d = scale, m = -zero * scale,
 *                              q = code, when every such m is a half.
 * q d and (q - zero) d are exact in float (at most 5 + 11 significant
 * bits), so q d + m is exact whether or not it is fused. Anything else is
 * refused with the reason (lq_ggml_exact_type); lq_int_opts.gguf_exact
 * makes GPTQ produce representable tensors.
 */
#ifndef LQ_IO_GGUF_H
#define LQ_IO_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "quant/io.h"

/* ggml tensor types this writer produces (values are ggml's, stored in files). */
typedef enum lq_ggml_type {
    LQ_GGML_F32 = 0,
    LQ_GGML_F16 = 1,
    LQ_GGML_Q4_0 = 2,
    LQ_GGML_Q4_1 = 3,
    LQ_GGML_Q5_0 = 6,
    LQ_GGML_Q5_1 = 7,
    LQ_GGML_Q8_0 = 8
} lq_ggml_type;

#define LQ_GGUF_VERSION 3
#define LQ_GGUF_DEFAULT_ALIGNMENT 32
/* Longest tensor name in bytes (ggml keeps names in 64-byte arrays with the NUL). */
#define LQ_GGUF_MAX_NAME 63
#define LQ_GGUF_MAX_DIMS 4

/* "f32", "f16", "q4_0", ... or NULL for a type not listed above. */
const char *lq_ggml_type_name(lq_ggml_type t);
/* Parse a name (case-insensitive: "q4_0", "Q4_0"...): 0, or -1 when unknown. */
int lq_ggml_type_parse(const char *name, lq_ggml_type *t);
/* Elements per block (1 for F32/F16, 32 for the Q types) and bytes per
 * block; 0 for an unknown type. */
size_t lq_ggml_block_elems(lq_ggml_type t);
size_t lq_ggml_block_bytes(lq_ggml_type t);
/* Bytes of one row of n elements, 0 when n is not a multiple of the block. */
size_t lq_ggml_row_bytes(lq_ggml_type t, size_t n);

/* The ggml type the INT tensor t converts to bit-exactly (see above):
 * Q4_0 / Q5_0 / Q8_0 when every zero is 2^(bits-1), else Q4_1 / Q5_1.
 * Errors: INVALID_ARG (NULL), UNSUPPORTED with the reason in why (cap
 * bytes, may be NULL): not INT, bits other than 4, 5, 8, group not 32,
 * cols not a multiple of 32, a column permutation (act-order without
 * static groups), a scale that is not a half, 8 bits with other zeros, an
 * offset -zero * scale that is not a half. */
lq_status lq_ggml_exact_type(const lq_qtensor *t, lq_ggml_type *type, char *why, size_t cap);

/* The rows of INT tensor t as ggml blocks of `type` (as returned by
 * lq_ggml_exact_type for t) into out: output row i is t's row
 * row_order[i] (row_order NULL: identity; else a permutation of 0..rows-1,
 * not checked beyond the range), at out + i * lq_ggml_row_bytes(type, cols).
 * size must be rows * that. Errors: INVALID_ARG, UNSUPPORTED (t does not
 * convert exactly to type). */
lq_status lq_ggml_from_int(const lq_qtensor *t, lq_ggml_type type, const size_t *row_order,
                           void *out, size_t size);

/* rows x cols floats (row-major) as F32 (exact) or F16 (round to nearest
 * even) rows into out, output row i being input row row_order[i] (NULL:
 * identity). Errors: INVALID_ARG (type, size), OUT_OF_RANGE (F16: a value
 * beyond the half range). */
lq_status lq_ggml_from_f32(const float *x, size_t rows, size_t cols, lq_ggml_type type,
                           const size_t *row_order, void *out, size_t size);

/* ---- writer ----------------------------------------------------------------------
 * Use: open; add metadata (lq_gguf_kv_*) and declare every tensor
 * (lq_gguf_add_tensor) in any order; then lq_gguf_write_data once per
 * tensor in declaration order (the first call writes the header, the
 * metadata and the tensor infos); then finish. The file is written to
 * "<path>.part" and renamed by finish; abort (or any failed finish) removes
 * it, so a failed export leaves no output file. A writer is used from one
 * thread. After an error the writer should be aborted. */
typedef struct lq_gguf_writer lq_gguf_writer;

/* alignment: a power of two >= 8, written as general.alignment (the first
 * metadata pair). Errors: INVALID_ARG, IO (cannot create the file),
 * NO_MEMORY. */
lq_status lq_gguf_writer_open(lq_ctx *ctx, const char *path, size_t alignment,
                              lq_gguf_writer **out);

/* Metadata. Keys are ASCII "lower_snake_case" segments separated by dots
 * (checked: [a-z0-9_] segments, 1..65535 bytes), unique. Strings are byte
 * strings of the given length (UTF-8 by convention). Errors: INVALID_ARG
 * (NULL, bad or duplicate key, after the first write_data), NO_MEMORY. */
lq_status lq_gguf_kv_u32(lq_gguf_writer *w, const char *key, uint32_t v);
lq_status lq_gguf_kv_f32(lq_gguf_writer *w, const char *key, float v);
lq_status lq_gguf_kv_bool(lq_gguf_writer *w, const char *key, int v);
lq_status lq_gguf_kv_str(lq_gguf_writer *w, const char *key, const char *s);
/* Arrays of n strings (s[i] of len[i] bytes), floats, int32s. */
lq_status lq_gguf_kv_arr_str(lq_gguf_writer *w, const char *key, const char *const *s,
                             const size_t *len, size_t n);
lq_status lq_gguf_kv_arr_f32(lq_gguf_writer *w, const char *key, const float *v, size_t n);
lq_status lq_gguf_kv_arr_i32(lq_gguf_writer *w, const char *key, const int32_t *v, size_t n);

/* Declare a tensor: name (1..LQ_GGUF_MAX_NAME bytes, unique), ndim
 * (1..LQ_GGUF_MAX_DIMS) dimensions in ggml order (ne[0] is the contiguous
 * one: a rows x cols matrix is ne = {cols, rows}), type. Its data is
 * lq_ggml_row_bytes(type, ne[0]) * ne[1] * ... bytes, returned in *nbytes
 * (may be NULL). Errors: INVALID_ARG (NULL, name, dims zero or not a
 * multiple of the block, duplicate, overflow, after the first write_data),
 * NO_MEMORY. */
lq_status lq_gguf_add_tensor(lq_gguf_writer *w, const char *name, size_t ndim, const uint64_t *ne,
                             lq_ggml_type type, size_t *nbytes);

/* The data of the next declared tensor (exactly its nbytes). Errors:
 * INVALID_ARG (NULL, size mismatch, every tensor already written), IO. */
lq_status lq_gguf_write_data(lq_gguf_writer *w, const void *data, size_t nbytes);

/* Check that every tensor was written (a file without tensors writes its
 * header here), close, rename to path, free w (always). Errors:
 * INVALID_ARG (w NULL, tensors missing), IO. */
lq_status lq_gguf_writer_finish(lq_gguf_writer *w);

/* Close and remove the partial file, free w. NULL is a no-op. */
void lq_gguf_writer_abort(lq_gguf_writer *w);

#endif
