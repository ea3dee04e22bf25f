/*
 * The packed tensor model shared by every format.
 *
 * A qtensor is a small header (format, shape, integer and float parameters)
 * plus up to LQ_QT_MAX_SECTIONS byte sections (codes, scales, codebooks...).
 * Every format is described by one traits record (lq_format_traits): how to
 * validate its sections, count its bits, dequantize, and multiply on its
 * codes (the reference product; the fast kernels and the public products
 * live one layer up, in src/products/). The io module serialises any
 * qtensor generically from this model, so a new format needs a traits row
 * and nothing in io.
 */
#ifndef LQ_QTENSOR_INTERNAL_H
#define LQ_QTENSOR_INTERNAL_H

#include "core/internal.h"
#include "quant/qtensor.h"

#define LQ_QT_MAX_SECTIONS 8
#define LQ_QT_NPARAMS 16

/* Section tags (stored in files). */
enum {
    LQ_SEC_CODES = 1,
    LQ_SEC_SCALES = 2,
    LQ_SEC_ZEROS = 3,
    LQ_SEC_CODEBOOKS = 4,
    LQ_SEC_BETAS = 5,   /* E8: beta index per 8-vector */
    LQ_SEC_ALPHAS = 6,  /* BCQ */
    LQ_SEC_OFFSETS = 7, /* BCQ */
    LQ_SEC_AUX = 8,     /* format-specific extra table (beta values, perm...) */
    LQ_SEC_PERM = 9     /* column permutation (act-order without static groups) */
};

typedef struct lq_qsection {
    uint32_t tag;
    uint32_t elem_size; /* bytes per element (1, 2, 4): for endianness */
    size_t nbytes;
    void *data;
} lq_qsection;

/* A derived layout that a layer above the tensor model caches in a tensor
 * (the products framework's kernel layout, src/products/kern.c): it carries
 * its own release function, so the tensor model frees it without knowing
 * what it is (and without including that layer). */
typedef struct lq_qt_memo lq_qt_memo;
struct lq_qt_memo {
    void (*release)(lq_qt_memo *m, const lq_allocator *a);
};

struct lq_qtensor {
    lq_allocator alloc; /* frees the sections (copied: may outlive ctx) */
    lq_format format;
    size_t rows, cols;
    uint32_t ip[LQ_QT_NPARAMS]; /* integer parameters; meaning per format */
    float fp[LQ_QT_NPARAMS];    /* float parameters; meaning per format */
    size_t nsec;
    lq_qsection sec[LQ_QT_MAX_SECTIONS];
    int borrowed; /* sections point into a mapping owned elsewhere */
    void *owner;  /* mapping owner released with the tensor (io) */
    void (*owner_release)(void *owner);
    lq_qt_memo *kpack; /* kernel layout (src/products/kern.c), built on first product,
                        * installed with a compare-and-swap */
};

/* Format traits: one row per format. */
typedef struct lq_format_traits {
    lq_format format;
    const char *name;
    /* Check params and section sizes against rows/cols: LQ_ERR_CORRUPT on
     * any inconsistency. Never trusts the data (called on file input). */
    lq_status (*validate)(const lq_qtensor *t);
    double (*bits)(const lq_qtensor *t); /* total bits incl. side info */
    /* Dequantize rows [r0, r1) into W (ld = cols). `level` bounds the SIMD
     * level of any helper used (lq_simd_for(ctx) of the caller: the
     * context's cap holds on every path); the result does not depend on it. */
    lq_status (*dequant_rows)(const lq_qtensor *t, size_t r0, size_t r1, float *W,
                              lq_simd_level level);
    /* Y[b, r] for r in [r0, r1): reference product on the codes (level as
     * for dequant_rows). */
    lq_status (*matmul_rows)(const lq_qtensor *t, const float *X, size_t batch, float *Y, size_t r0,
                             size_t r1, lq_simd_level level);
} lq_format_traits;

/* Traits of a format, or NULL if unknown. */
const lq_format_traits *lq_format_lookup(lq_format f);

/* Allocate an empty qtensor (no sections) with the context's allocator. */
lq_status lq_qtensor_new(lq_ctx *ctx, lq_format f, size_t rows, size_t cols, lq_qtensor **out);
/* Add a zeroed section of nbytes; returns its data or NULL (NO_MEMORY or full). */
void *lq_qtensor_add_section(lq_qtensor *t, uint32_t tag, uint32_t elem_size, size_t nbytes);
/* Section by tag, or NULL. */
const lq_qsection *lq_qtensor_section(const lq_qtensor *t, uint32_t tag);
/* The same, writable (for code that rewrites a tensor's values in place). */
lq_qsection *lq_qtensor_section_mut(lq_qtensor *t, uint32_t tag);
/* Drop the cached kernel layout after t's values were rewritten in place;
 * the next product rebuilds it. Needs exclusive use of t. */
void lq_qtensor_drop_kernel_layout(lq_qtensor *t);
/* Validate with the format's traits (also checks the shape and sections). */
lq_status lq_qtensor_validate(const lq_qtensor *t);

/* The method registry (src/qtensor/methods.c): one row per method, the only
 * place that lists them. lq_method_init, lq_quantize_ex and the name lookups
 * iterate it. */
typedef lq_status (*lq_quantize_fn)(lq_ctx *ctx, const float *W, size_t rows, size_t cols,
                                    const float *H, const lq_method *m, lq_qtensor **out,
                                    float *W_hat, lq_quant_report *rep);
typedef struct lq_method_row {
    lq_method_kind kind;
    const char *name;               /* as the CLI and the Python package spell it */
    lq_format format;               /* the format its default configuration emits */
    const char *summary;            /* one line for help texts */
    void (*defaults)(lq_method *m); /* the method's fields of m->u (m zeroed, engine set) */
    lq_quantize_fn quantize;
} lq_method_row;
/* Row of a kind, or NULL. */
const lq_method_row *lq_method_row_of(lq_method_kind kind);

/* Method drivers (one per method, in src/qtensor/method_*.c). */
lq_status lq_quantize_int(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                          const lq_method *m, lq_qtensor **out, float *W_hat, lq_quant_report *rep);
lq_status lq_quantize_bcq(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                          const lq_method *m, lq_qtensor **out, float *W_hat, lq_quant_report *rep);
lq_status lq_quantize_gptvq(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                            const lq_method *m, lq_qtensor **out, float *W_hat,
                            lq_quant_report *rep);
lq_status lq_quantize_gptqt(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                            const lq_method *m, lq_qtensor **out, float *W_hat,
                            lq_quant_report *rep);
lq_status lq_quantize_nestquant(lq_ctx *ctx, const float *W, size_t rows, size_t cols,
                                const float *H, const lq_method *m, lq_qtensor **out, float *W_hat,
                                lq_quant_report *rep);
lq_status lq_quantize_aqlm(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                           const lq_method *m, lq_qtensor **out, float *W_hat,
                           lq_quant_report *rep);

#endif
