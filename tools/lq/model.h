/* A Llama model for the lq program: loading (llama2.c checkpoints, Hugging
 * Face safetensors, complete-model .lqt files), a reference forward pass
 * whose linear layers run either in fp32 or on the codes through
 * lq_matmul_ex, and the model writer. Nothing here is part of the library's
 * API: the library provides the products, this is one engine built on them.
 *
 * Conventions: tensor names and q/k row order are Hugging Face's
 * (model.layers.N.self_attn.q_proj.weight, ...; rotate-half RoPE). A
 * llama2.c checkpoint's q/k rows (interleaved RoPE pairs) are permuted on
 * load, within each head, the even rows first then the odd ones, which is
 * the same model with rotate-half RoPE. */
#ifndef LQ_MODEL_H
#define LQ_MODEL_H

#include <stddef.h>

#include "quant.h"

/* The seven linear layers of a block, in the order the forward pass uses them. */
typedef enum lq_lin {
    LQ_LIN_Q = 0,
    LQ_LIN_K,
    LQ_LIN_V,
    LQ_LIN_O,
    LQ_LIN_GATE, /* llama2.c w1 */
    LQ_LIN_UP,   /* llama2.c w3 */
    LQ_LIN_DOWN, /* llama2.c w2 */
    LQ_LIN_COUNT
} lq_lin;

/* Layers sharing one input (and so one Hessian): q/k/v, o, gate/up, down. */
typedef enum lq_lin_group {
    LQ_GROUP_ATTN_IN = 0,
    LQ_GROUP_ATTN_OUT,
    LQ_GROUP_FFN_IN,
    LQ_GROUP_FFN_MID,
    LQ_GROUP_COUNT
} lq_lin_group;

lq_lin_group lq_lin_group_of(lq_lin k);
/* Short name ("q_proj", "gate_proj"...) and the Hugging Face tensor name of
 * layer k of block l into buf. */
const char *lq_lin_short(lq_lin k);
void lq_lin_name(char *buf, size_t cap, size_t layer, lq_lin k);

typedef struct lq_llama_config {
    size_t dim, hidden, n_layers, n_heads, n_kv_heads, head_dim, vocab, seq_len;
    float norm_eps, rope_theta;
    int tied; /* classifier = token embedding */
} lq_llama_config;

/* One linear layer: fp32 weight w (rows x cols) and/or packed q. When both
 * are set (during calibration) the forward pass uses q unless told to use
 * the float weights. */
typedef struct lq_linear {
    size_t rows, cols;
    float *w;
    lq_qtensor *q;
} lq_linear;

typedef struct lq_llama {
    lq_llama_config cfg;
    float *embed;      /* vocab x dim */
    float *norm_att;   /* n_layers x dim */
    float *norm_ffn;   /* n_layers x dim */
    float *norm_final; /* dim */
    float *cls;        /* vocab x dim, == embed when tied */
    lq_linear *lin;    /* n_layers x LQ_LIN_COUNT */
    char source[32];   /* "llama2.c", "safetensors", "lqt" */
    /* Run-time activation / KV-cache quantization (actq.h), owned by the
     * caller; NULL (the loaders' default): activations and KV stay float. */
    struct lq_actq *actq;
} lq_llama;

/* Load a model: a llama2.c .bin checkpoint, a Hugging Face folder (config.json
 * plus model.safetensors or model.safetensors.index.json and its shards), a
 * .safetensors file with config.json beside it, or a complete-model .lqt
 * written by lq_llama_save. On error prints a message (prefixed by the
 * path) to stderr and returns the status; *out untouched. */
lq_status lq_llama_load(lq_ctx *ctx, const char *path, lq_llama **out);
void lq_llama_free(lq_llama *m);

static inline lq_linear *lq_llama_lin(const lq_llama *m, size_t layer, lq_lin k)
{
    return &m->lin[layer * LQ_LIN_COUNT + (size_t)k];
}

/* Weights of the quantized layers and their bits (side information
 * counted) over every linear layer of the blocks (the classifier and the
 * embedding stay float and are not counted); fp32 layers count 32. */
void lq_llama_bits(const lq_llama *m, double *bits_per_weight, size_t *n_quantized);

/* Save as a complete-model .lqt: quantized layers as qtensors, everything
 * else as float32 entries, the configuration as metadata (key
 * "llama.config", a JSON object), plus nmeta extra key/value pairs
 * (meta[2i], meta[2i+1]). Prints an error on failure. */
lq_status lq_llama_save(lq_ctx *ctx, const lq_llama *m, const char *path, const char *const *meta,
                        size_t nmeta);

/* ---- forward pass ------------------------------------------------------------ */

/* Called with the input of each layer group (n rows of cols floats). */
typedef void (*lq_llama_hook)(void *user, size_t layer, lq_lin_group g, const float *X, size_t n,
                              size_t cols);

typedef struct lq_run_opts {
    lq_kernel_mode mode; /* products on the codes: EXACT or FAST */
    int use_float;       /* 1: a layer holding both uses its float weights */
} lq_run_opts;

typedef struct lq_llama_state lq_llama_state;

/* Scratch and KV cache for sequences of up to cfg.seq_len tokens, processed
 * max_batch tokens at a time. */
lq_status lq_llama_state_create(const lq_llama *m, size_t max_batch, lq_llama_state **out);
void lq_llama_state_free(lq_llama_state *s);

/* Run n tokens at positions pos0.. (n <= max_batch, pos0 + n <= seq_len)
 * through the model, appending to the KV cache; logits (n x vocab) when
 * not NULL. Tokens must be < vocab. */
lq_status lq_llama_forward(lq_ctx *ctx, const lq_llama *m, lq_llama_state *s, const lq_run_opts *o,
                           const int *tokens, size_t n, size_t pos0, float *logits);

/* Token embedding of n tokens into X (n x dim). */
void lq_llama_embed(const lq_llama *m, const int *tokens, size_t n, float *X);

/* Block `layer` on X (n x dim, in place) for a sequence at positions
 * pos0..pos0+n-1 (its KV cache entries are written); hook (may be NULL) sees
 * each group's input. With stop_after set, returns right after the hook of
 * that group (X is then not updated). */
lq_status lq_llama_block(lq_ctx *ctx, const lq_llama *m, lq_llama_state *s, const lq_run_opts *o,
                         size_t layer, float *X, size_t n, size_t pos0, lq_llama_hook hook,
                         void *user, int stop_after);

/* y = x W^T for a linear layer (X: n x cols, Y: n x rows). */
lq_status lq_linear_apply(lq_ctx *ctx, const lq_linear *l, const lq_run_opts *o, const float *X,
                          size_t n, float *Y);

/* Final norm and classifier of n rows of X into logits (n x vocab). */
void lq_llama_head(lq_ctx *ctx, const lq_llama *m, const float *X, size_t n, float *logits);

/* The fp32 product Y = X W^T (W: rows x cols): batches of 4 or more rows
 * through the library's SGEMM, else rows split across the context's
 * threads (each output one thread's dot product). Neither depends on the
 * thread count. */
void lq_f32_matmul(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *X, size_t n,
                   float *Y);

#endif
