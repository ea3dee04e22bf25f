/*
 * Quantizing a layer and the packed result.
 *
 * lq_quantize is the one entry point for every method: it takes W (rows x
 * cols, row-major, out_features x in_features as nn.Linear.weight), its
 * Hessian H (cols x cols, or NULL for plain MSE) and an lq_method, and
 * returns a packed lq_qtensor (and, on request, the dequantized weight).
 */
#ifndef QUANT_QTENSOR_H
#define QUANT_QTENSOR_H

#include "quant/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Packed formats. Stable values (stored in .lqt files). */
typedef enum lq_format {
    LQ_FORMAT_INT = 1, /* k-bit uniform grid, group scales and zeros */
    LQ_FORMAT_E8 = 2,  /* E8 Voronoi codes, beta index per 8-vector, scales */
    LQ_FORMAT_VQ = 3,  /* d-dim vector codes, codebook per group */
    LQ_FORMAT_BCQ = 4, /* k bit planes, alphas (and offset) per group */
    LQ_FORMAT_AQ = 5,  /* M additive codebooks of 2^B g-vectors, row scales */
    LQ_FORMAT_E8P = 6  /* 2-bit E8P codes (16 bits per 8-vector), group scales */
} lq_format;

typedef enum lq_method_kind {
    LQ_METHOD_INT = 1,       /* uniform grid; GPTQ or round-to-nearest */
    LQ_METHOD_NESTQUANT = 2, /* E8 nested-lattice codes with several betas */
    LQ_METHOD_GPTVQ = 3,     /* vector quantization with the GPTQ engine */
    LQ_METHOD_GPTQT = 4,     /* linear then binary coding (GPTQT) */
    LQ_METHOD_BCQ = 5,       /* binary coding: RTN or through the engine */
    LQ_METHOD_AQLM = 6       /* additive multi-codebook, beam search */
} lq_method_kind;

/* Options shared by every method that runs through the Hessian engine. */
typedef struct lq_engine_opts {
    int rtn;           /* 1: round to nearest, no Hessian updates */
    double percdamp;   /* damping as a fraction of mean diag(H); default 0.01 */
    int act_order;     /* 1: process columns by descending diag(H) */
    int static_groups; /* with act_order: group params from original order */
    size_t block_size; /* lazy-update block, default 128 */
} lq_engine_opts;

typedef struct lq_int_opts {
    unsigned bits;  /* 2..8, default 4 */
    int symmetric;  /* 1: zero fixed at the grid middle */
    size_t group;   /* columns per scale; 0 = whole row */
    int mse_clip;   /* 1: MSE-optimal shrink search of the range */
    int gguf_exact; /* 1: every scale is an IEEE half (subnormals allowed)
                     * and, asymmetric, every zero * scale is one too (the
                     * scale loses mantissa bits where needed), so that
                     * with group 32 and 4, 5 or 8 bits the tensor converts
                     * bit-exactly to GGUF Q4_0/Q4_1/Q5_0/Q5_1/Q8_0
                     * (docs/formats.md section 4). A scale or offset
                     * above 65504 then gives OUT_OF_RANGE. Default 0. */
} lq_int_opts;

typedef struct lq_nestquant_opts {
    unsigned q;         /* Voronoi code modulus, >= 2 (default 16) */
    unsigned n_betas;   /* K scales, 1..16 (default 4) */
    size_t group;       /* columns per normalisation group; 0 = whole row */
    int hadamard;       /* 1: rotate columns by a randomized Hadamard first */
    unsigned select;    /* beta selection rule per 8-vector, lq_nq_select in
                         * quant/lattice.h: 0 FIRST (default, the paper), 1 BEST
                         * (smallest error of the K codes), 2 EXHAUSTIVE (exact
                         * nearest codeword). Same format; the encoder differs. */
    const float *betas; /* Voronoi codebook: NULL (default): betas fitted per layer on the
                         * normalised, rotated weights under `select`. Else
                         * n_betas caller-owned values, strictly increasing, > 0,
                         * in units of the per-group RMS, used as given (coded
                         * activation products are exact when they carry 8
                         * significant bits: lq_nq_round_beta). Read during
                         * lq_quantize only. */
    unsigned codebook;  /* lq_nq_codebook: LQ_NQ_CODEBOOK_VORONOI (default; q, K, select,
                         * betas apply; LQ_FORMAT_E8) or LQ_NQ_CODEBOOK_E8P (2 bits per
                         * weight plus group scales, q / n_betas / select / betas
                         * ignored; exact nearest codeword; LQ_FORMAT_E8P). The
                         * Hadamard rotation, groups and the engine apply to both. */
} lq_nestquant_opts;

/* Codebooks of LQ_METHOD_NESTQUANT. */
typedef enum lq_nq_codebook {
    LQ_NQ_CODEBOOK_VORONOI = 0, /* E8 Voronoi codes with K betas (the paper) */
    LQ_NQ_CODEBOOK_E8P = 1      /* QuIP#-style 2-bit E8 + 1/4 shell codebook; each (row,
                                 * group) scale = RMS x a factor fitted per layer */
} lq_nq_codebook;

/* Options for NestQuant at `bits` per weight (2..8), following the paper's
 * rule: K = 4 betas and the smallest q with log2(q) + log2(K)/8 >= bits,
 * which gives the paper's q = 14 at 4 bits (4.06), and q = 4, 7, 27, 54, 108,
 * 216 at 2, 3, 5, 6, 7, 8 bits (our extension of that rule; the reference
 * code's default is q = 14 with 4 betas). Every other field as
 * lq_method_init (group 0, hadamard 1, select FIRST, betas NULL, codebook
 * Voronoi; for 2 bits the E8P codebook is better, see docs/benchmarks.md). Stored size
 * is ceil(8 log2 q) + 2 bits per 8 weights plus the scales (q = 14: 4.125
 * bits/weight before scales). Errors: INVALID_ARG (NULL, bits out of range;
 * *o untouched). */
LQ_API lq_status lq_nestquant_preset(unsigned bits, lq_nestquant_opts *o);

/* GPTVQ options. Defaults (lq_method_init, = lq_gptvq_preset(2, 2)): the
 * paper's 2-D format, d = 2, 4-bit indices, int8 codebooks per 256 columns x
 * 8 rows, 10 EM iterations, codebook update on: 2.141 bits/weight. */
typedef struct lq_gptvq_opts {
    unsigned dim;           /* vector dimension d in {1, 2, 4, 8} (default 2) */
    unsigned index_bits;    /* bits per index (codebook of 2^index_bits); default 2*dim */
    size_t group_cols;      /* columns sharing a codebook (default 256) */
    size_t group_rows;      /* rows sharing a codebook, 0 = all rows (default 8) */
    unsigned em_iters;      /* EM iterations for codebook init (default 10; the
                             * reference scripts use 100) */
    int codebook_update;    /* 1 (default): least-squares update of each codebook after the
                             * engine, with H and without rtn: a dense solve up to
                             * 2^index_bits * dim = 512 values per codebook, matrix-free
                             * conjugate gradients beyond (docs/algorithms.md, GPTVQ) */
    unsigned codebook_bits; /* 0 = fp16 codebooks (then every |w| must be <= 65504,
                             * the half range, else OUT_OF_RANGE), 8 (default) =
                             * int8 codebooks with an fp32 scale each */
    size_t svd_rank;        /* 0 = off; else rank of the SVD compression */
} lq_gptvq_opts;

/* GPTVQ's paper configuration for d-dimensional vectors at `bits` index
 * bits per weight (van Baalen et al. 2024: int8 codebooks, one per 256
 * columns, its rows chosen so that the codebook entries cost 0.125 bits per
 * weight): dim in {1, 2, 4}, bits 2..4 with dim * bits <= 16; index_bits =
 * dim * bits, group_cols 256, group_rows = 2^(dim bits) dim / 4 (d = 2: 8
 * rows at 2 bits (the paper's 2.125 bpw 2-D format: 16 entries), 32 at 3,
 * 128 at 4; d = 4, 2 bits: 256 rows), codebook_bits 8, em_iters 10,
 * codebook_update 1, svd_rank 0. Stored size: bits + 0.125 + 32 / (256
 * group_rows) bits per weight (the int8 scale) on layers of at least 256
 * columns and group_rows rows. lq_method_init's GPTVQ defaults are
 * lq_gptvq_preset(2, 2). Errors: INVALID_ARG (NULL, values out of range; *o
 * untouched). */
LQ_API lq_status lq_gptvq_preset(unsigned dim, unsigned bits, lq_gptvq_opts *o);

typedef struct lq_bcq_opts {
    unsigned k;             /* binary planes, 1..8 (default 3) */
    size_t group;           /* columns per alpha set; 0 = whole row (default 128) */
    int offset;             /* 1: fit an offset per group */
    unsigned iters;         /* alternating refinement iterations (default 15) */
    unsigned linear_bits;   /* GPTQT only: bits of the linear step, k..8; 0 (default) =
                               auto: max(6, k + 1) capped at 8 */
    unsigned rescale_steps; /* GPTQT only: candidate scales searched (default 16) */
    int grid_codes;         /* GPTQT only: 1 = code a weight through its linear grid point
                               (the paper's two roundings); 0 = nearest binary level
                               directly (default 0; see docs/algorithms.md) */
} lq_bcq_opts;

typedef struct lq_aqlm_opts {
    unsigned n_codebooks;  /* M (default 2) */
    unsigned code_bits;    /* B, codebooks of 2^B vectors (default 8) */
    unsigned group;        /* g, vector dimension (default 8) */
    unsigned beam;         /* beam size (default 8) */
    unsigned rounds;       /* beam search / codebook update rounds (default 4) */
    unsigned kmeans_iters; /* residual k-means init iterations (default 20) */
    unsigned cg_iters;     /* conjugate-gradient iterations per codebook update (0 = 16) */
} lq_aqlm_opts;

typedef struct lq_method {
    lq_method_kind kind;
    lq_engine_opts engine;
    union {
        lq_int_opts int_;
        lq_nestquant_opts nestquant;
        lq_gptvq_opts gptvq;
        lq_bcq_opts bcq; /* LQ_METHOD_BCQ and LQ_METHOD_GPTQT */
        lq_aqlm_opts aqlm;
    } u;
} lq_method;

/* Fill *m with the documented defaults of `kind`. Errors: INVALID_ARG
 * (NULL, unknown kind; *m untouched). */
LQ_API lq_status lq_method_init(lq_method *m, lq_method_kind kind);

/* The method registry: lq_method_count() methods, i = 0 .. count-1, in a
 * fixed order. name is the spelling the lq program and the Python package
 * use ("int", "nestquant", "gptvq", "gptqt", "bcq", "aqlm"); format the one
 * the default configuration emits; summary one line of text. The strings
 * are static. */
typedef struct lq_method_info {
    lq_method_kind kind;
    const char *name;
    lq_format format;
    const char *summary;
} lq_method_info;
LQ_API size_t lq_method_count(void);
/* Errors: INVALID_ARG (NULL, i out of range; *info untouched). */
LQ_API lq_status lq_method_get_info(size_t i, lq_method_info *info);
/* Kind of a method name. Errors: INVALID_ARG (NULL, unknown name; *kind
 * untouched). */
LQ_API lq_status lq_method_by_name(const char *name, lq_method_kind *kind);
/* Name of a kind, or NULL when unknown. */
LQ_API const char *lq_method_name(lq_method_kind kind);

/* Report of a quantization run (optional output of lq_quantize_ex). */
typedef struct lq_quant_report {
    double damping;      /* damping actually added to diag(H) after escalation */
    double proxy_loss;   /* tr((W - W_hat) H (W - W_hat)^T), or ||W - W_hat||^2 without H */
    size_t dead_columns; /* columns with H_jj == 0 */
    size_t overloads;    /* NestQuant: 8-vectors that overloaded every beta */
} lq_quant_report;

typedef struct lq_qtensor lq_qtensor;

/* Quantize W with `method`. H may be NULL (plain MSE; engine methods then
 * act as round-to-nearest). On success *out owns a new qtensor (free with
 * lq_qtensor_free) and W_hat, when non-NULL (rows x cols), receives the
 * dequantized weight. W and H are not modified.
 * Errors: INVALID_ARG (NULL, zero sizes, bad options), NOT_FINITE (NaN/Inf
 * in W or H), OUT_OF_RANGE (|w| > LQ_MAX_ABS_WEIGHT or |h| >
 * LQ_MAX_ABS_HESSIAN), NOT_POSITIVE_DEFINITE (H indefinite even after the
 * engine's damping escalation; every method that uses H, AQLM included,
 * applies the same schedule and refusal), NO_MEMORY. On any error *out and
 * W_hat are untouched. Multi-threaded through ctx; deterministic for a
 * given seed whatever the thread count. */
LQ_API lq_status lq_quantize(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                             const lq_method *method, lq_qtensor **out, float *W_hat);

/* As lq_quantize, also filling *report (may be NULL). */
LQ_API lq_status lq_quantize_ex(lq_ctx *ctx, const float *W, size_t rows, size_t cols,
                                const float *H, const lq_method *method, lq_qtensor **out,
                                float *W_hat, lq_quant_report *report);

/* Bits per weight with every piece of side information counted (scales,
 * zeros, codebooks, beta indices, alphas). */
LQ_API lq_status lq_qtensor_bits_per_weight(const lq_qtensor *t, double *bpw);

/* Shape and format. Errors: INVALID_ARG. */
LQ_API lq_status lq_qtensor_shape(const lq_qtensor *t, size_t *rows, size_t *cols);
LQ_API lq_status lq_qtensor_format(const lq_qtensor *t, lq_format *format);
LQ_API const char *lq_format_name(lq_format f);

/* Dequantize into W_hat (rows x cols, row-major). */
LQ_API lq_status lq_dequantize(lq_ctx *ctx, const lq_qtensor *t, float *W_hat);

/* y = W x (x: cols, y: rows) computed on the codes (EXACT kernels).
 * Errors as lq_matmul_ex: NOT_FINITE (NaN/Inf in x), OUT_OF_RANGE
 * (|x| > LQ_MAX_ABS_ACTIVATION); y untouched on any error. */
LQ_API lq_status lq_matvec(lq_ctx *ctx, const lq_qtensor *W, const float *x, float *y);

/* Y = X W^T (X: batch x cols, Y: batch x rows), batch >= 1. */
LQ_API lq_status lq_matmul(lq_ctx *ctx, const lq_qtensor *W, const float *X, size_t batch,
                           float *Y);

/* Free a qtensor (NULL is a no-op). */
LQ_API void lq_qtensor_free(lq_qtensor *t);

/* Proxy loss tr((W - W_hat) H (W - W_hat)^T) in double (H NULL: squared
 * Frobenius norm). Errors: INVALID_ARG, NOT_FINITE, NO_MEMORY. */
LQ_API lq_status lq_proxy_loss(lq_ctx *ctx, const float *W, const float *W_hat, size_t rows,
                               size_t cols, const float *H, double *loss);

#ifdef __cplusplus
}
#endif
#endif
