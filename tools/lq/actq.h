/* Activation and KV-cache quantization for the lq runner (W4A4KV4 as in
 * NestQuant, and an INT per-group baseline). Not library API: one engine
 * built on lq_nq_act_encode, lq_nq_dot and the Hadamard transform.
 *
 * Activations: the input of every linear layer (the four layer groups of a
 * block) is encoded to codes and the product consumes the value those codes
 * stand for. NestQuant: per token, the vector (zero-padded to a multiple of
 * 8) is rotated by a randomized Hadamard transform, divided by its RMS
 * (stored as fp16) and NestQuant-encoded; the decoded vector is rotated
 * back. INT: per token, optional rotation, symmetric absmax per group of
 * `group` entries (fp16 scale), codes in [-(2^(b-1)-1), 2^(b-1)-1].
 *
 * KV cache (kvcache.c): keys (after RoPE) and values are stored as codes
 * only (bytes per entry, beta indices, fp16 scales); the float cache of the
 * state is not allocated in that mode. NestQuant with coded activations: the
 * query is encoded too (same rotation of the head dimension) and each score
 * is the exact product of the two codes (lq_nq_dot's value: the attention
 * loop decodes each code once and sums in double, bit for bit the same, as
 * lq_nq_dot re-deriving the integers for every pair is ~8x slower). Otherwise keys are decoded and
 * dotted with the float query. Values are decoded and summed with the softmax weights in the
 * rotated basis, then rotated back once per head.
 *
 * Bits per element count the codes at their packed size (ceil(8 log2 q) bits
 * plus the beta index per 8-vector, b bits per INT entry) plus the fp16
 * scales; the runner keeps one byte per entry in memory (see docs/design.md). */
#ifndef LQ_ACTQ_H
#define LQ_ACTQ_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "tokenizer.h"
#include "quant/lattice.h"

typedef enum lq_aq_kind { LQ_AQ_NESTQUANT = 0, LQ_AQ_INT = 1 } lq_aq_kind;

/* Quantization sites of a block: the four linear-layer inputs (lq_lin_group),
 * then the attention query, keys and values. */
enum { LQ_AQ_QUERY = LQ_GROUP_COUNT, LQ_AQ_KEY, LQ_AQ_VALUE, LQ_AQ_SITES };

typedef struct lq_actq_settings {
    unsigned act_bits; /* 2..8, or 16: activations stay float */
    unsigned kv_bits;  /* 2..8, or 16: float KV cache */
    unsigned key_bits; /* keys only (default: kv_bits) */
    lq_aq_kind kind;
    size_t group;       /* INT: entries per scale (1..4096) */
    int rotate;         /* randomized Hadamard before quantizing */
    int kv_token_scale; /* 1: one scale per token over all KV heads; 0: per head */
    int query_coded;    /* NestQuant: code the query, scores by lq_nq_dot */
    unsigned select;    /* lq_nq_select for the NestQuant encoder */
    int key_smooth;     /* per-channel key/query balancing fitted by lq_actq_calibrate */
    int key_center;     /* subtract the calibration mean of the keys (softmax-invariant) */
    int paper_betas;    /* NestQuant at 4 bits: the reference code's fixed beta sets */
    unsigned sites;     /* bit g set: the inputs of layer group g are quantized (default all) */
    uint64_t seed;      /* rotation seed */
} lq_actq_settings;

typedef struct lq_actq {
    lq_actq_settings set;
    lq_llama_config cfg;
    lq_nq_coder *coder; /* n_layers x LQ_AQ_SITES (NestQuant) */
    /* fitting: normalised 8-vectors collected per (layer, site) */
    int collecting;
    float **col;
    size_t *ncol, col_cap; /* col_cap: 8-vectors per slot */
    /* key smoothing: k_i / s_i and q_i * s_i per KV channel after RoPE
     * (q . k unchanged), s_i = sqrt(rms(k_i) / rms(q_i)) over the calibration
     * text; n_layers x kv_dim, NULL: none. kss/qss: sums of squares while
     * collecting. */
    float *ksmooth;
    double *kss, *qss;
    /* key centering: every key (after RoPE) minus a fixed vector mu, the
     * calibration mean; q . (k_j - mu) differs from q . k_j by q . mu, the
     * same for every position j, so the softmax is unchanged while the
     * quantized vectors are smaller. n_layers x kv_dim, NULL: none. ksum:
     * sums while collecting (count in kcount). */
    float *kmean;
    double *ksum;
    size_t *kcount;
    /* the same for values: v_j - nu stored, nu added back to the output
     * (the softmax weights sum to 1, so sum_j a_j v_j is unchanged) */
    float *vmean;
    double *vsum;
    /* scratch of lq_actq_input */
    float *buf;
    uint8_t *codes, *bidx;
    float *scales;
    size_t buf_rows, buf_cols;
    size_t n_overload, n_vectors; /* NestQuant fallbacks / vectors encoded */
} lq_actq;

/* Defaults: everything off (16 bits), NestQuant, group 32, rotation on,
 * per-head KV scales, coded queries, best-error beta selection, no key
 * smoothing. */
void lq_actq_settings_default(lq_actq_settings *s);

/* NestQuant (q, K) for b bits: q = 2^b - 2 (q = 3 at 2 bits), K = 4 betas
 * (the paper's q = 14, K = 4 at 4 bits). 0 on success, -1 if b is not 2..8. */
int lq_actq_nq_preset(unsigned bits, unsigned *q, unsigned *k);

/* Check s against the model configuration c and build aq (coders at the
 * default betas of lq_nq_coder_init, or with paper_betas the reference
 * implementation's sets for activations (queries too), keys and values, in
 * units of 1/q at q = 14, rounded to 8-bit mantissas). On error: -1, the reason in why, aq
 * untouched. */
int lq_actq_init(lq_actq *aq, const lq_llama_config *c, const lq_actq_settings *s, char *why,
                 size_t cap);
void lq_actq_free(lq_actq *aq);

/* 1 when activations / the KV cache are quantized. */
int lq_actq_act_on(const lq_actq *aq);
int lq_actq_kv_on(const lq_actq *aq);

/* The coder of (layer, site). */
const lq_nq_coder *lq_actq_coder(const lq_actq *aq, size_t layer, int site);

/* Quantize the input X (n x cols) of the layers of group g of block layer:
 * *out = X when activations are off, else a scratch buffer of aq holding
 * the decoded codes (valid until the next call). */
lq_status lq_actq_input(lq_ctx *ctx, lq_actq *aq, size_t layer, lq_lin_group g, const float *X,
                        size_t n, size_t cols, const float **out);

/* While collecting: record the normalised 8-vectors of `rows` vectors x
 * (stride ld, length len, zero-padded to a multiple of 8, rotated first when
 * rotate is set) as the coder of (layer, site) sees them. */
void lq_actq_collect(lq_actq *aq, size_t layer, int site, const float *x, size_t rows, size_t len,
                     size_t ld, int rotate);

/* Shared with kvcache.c: the fp16-representable scale stored for s (0 for a
 * non-positive or non-finite s, 65504 above the fp16 range), and the INT
 * quantizer: symmetric absmax per group of g entries of x (len), in place,
 * x <- s * clamp(rint(x / s), -qmax, qmax) with qmax = 2^(bits-1) - 1 and s
 * the fp16 absmax / qmax; codes into c and fp16 scales (ceil(len / g)) into
 * sc when not NULL. */
float lq_actq_half_scale(float s);
void lq_actq_int_row(float *x, size_t len, size_t g, unsigned bits, int8_t *c, uint16_t *sc);

/* Fit the NestQuant betas of every (layer, site) (lq_nq_coder_fit) on the
 * vectors seen while running model m (m->actq == aq, run options o) over
 * the chunks of c, quantizing with the current betas (NestQuant only), and
 * with set.key_smooth first the key smoothing scales (one pass before). */
struct lq_chunks;
lq_status lq_actq_calibrate(lq_ctx *ctx, const lq_llama *m, const lq_run_opts *o, lq_actq *aq,
                            const struct lq_chunks *c);

/* Stored bits per activation entry (mean over the inputs of a block's
 * linear layers, weighted by their widths) and per KV-cache entry (keys
 * and values averaged). 32 when off. */
void lq_actq_bits(const lq_actq *aq, double *act_bits, double *kv_bits);

/* ---- KV cache of codes (kvcache.c) ---------------------------------------- */
typedef struct lq_kvc lq_kvc;

/* A code cache for configuration aq->cfg (seq_len positions per layer). */
lq_status lq_kvc_create(const lq_actq *aq, lq_kvc **out);
void lq_kvc_free(lq_kvc *k);
/* The settings the cache was made for (to detect a change). */
const lq_actq *lq_kvc_owner(const lq_kvc *k);

/* Attention of block layer for n tokens at positions pos0..: encodes K and
 * V (n x kv_dim, after RoPE) into the cache, then writes the attention
 * output (n x n_heads*head_dim) to out from the queries Q (n x
 * n_heads*head_dim, after RoPE). scores: seq_len floats of scratch. */
lq_status lq_kvc_attend(lq_ctx *ctx, lq_kvc *k, lq_actq *aq, size_t layer, const float *Q,
                        const float *K, const float *V, size_t n, size_t pos0, float *out);

/* Low-level pieces, exposed for the tests: the score (before 1/sqrt(hd)) of
 * query row qrow (one head's head_dim floats, after RoPE) for head h against
 * cached position j: coded = 1: lq_nq_dot on the codes; coded = 2: the code
 * values decoded once and summed in double, as lq_kvc_attend does (equal to
 * coded = 1 bit for bit); coded = 0: decoded floats (the fp16 scales
 * applied first) dotted in double. Valid after lq_kvc_attend has filled
 * positions <= j. */
lq_status lq_kvc_score(lq_ctx *ctx, lq_kvc *k, lq_actq *aq, size_t layer, const float *qrow,
                       size_t h, size_t j, int coded, double *out);

/* The decoded value of cached position j, KV head g (head_dim floats, in
 * the model's basis). */
lq_status lq_kvc_value(lq_ctx *ctx, lq_kvc *k, lq_actq *aq, size_t layer, size_t j, size_t g,
                       float *out);

/* ---- the command-line options shared by lq eval and lq generate ----------- */
typedef struct lq_actq_cli {
    size_t act_bits, kv_bits, key_bits, group, calib_chunks;
    int smooth, center;
    const char *quant, *rotate, *kv_scale, *kv_query, *select, *calib, *betas, *sites;
} lq_actq_cli;

void lq_actq_cli_init(lq_actq_cli *a);
#define LQ_ACTQ_OPTS(a)                                                                            \
    {"act-bits", LQ_OPT_SIZE, "activation bits at every linear input: 2..8, 16 = off (default)",   \
     &(a)->act_bits},                                                                              \
        {"kv-bits", LQ_OPT_SIZE, "KV-cache bits: 2..8, 16 = off (default)", &(a)->kv_bits},        \
        {"key-bits", LQ_OPT_SIZE, "keys only (default: --kv-bits)", &(a)->key_bits},               \
        {"act-quant", LQ_OPT_STR, "nestquant (default) or int (per-group absmax)", &(a)->quant},   \
        {"act-group", LQ_OPT_SIZE, "int: entries per scale (default 32)", &(a)->group},            \
        {"act-rotate", LQ_OPT_STR, "yes (default) or no: Hadamard rotation", &(a)->rotate},        \
        {"kv-scale", LQ_OPT_STR, "head (default) or token: one KV scale per head or token",        \
         &(a)->kv_scale},                                                                          \
        {"kv-query", LQ_OPT_STR, "coded (default: scores by lq_nq_dot) or float", &(a)->kv_query}, \
        {"act-select", LQ_OPT_STR, "best (default) or first: NestQuant beta rule", &(a)->select},  \
        {"act-calib", LQ_OPT_STR, "text to fit the NestQuant betas per layer and site on",         \
         &(a)->calib},                                                                             \
        {"kv-smooth", LQ_OPT_FLAG, "balance key/query channels (fitted on --act-calib)",           \
         &(a)->smooth},                                                                            \
        {"act-sites", LQ_OPT_STR, "comma list of attn_in,attn_out,ffn_in,ffn_mid (default all)",   \
         &(a)->sites},                                                                             \
        {"act-betas", LQ_OPT_STR, "default or paper (the reference's fixed sets, 4 bits)",         \
         &(a)->betas},                                                                             \
        {"kv-center", LQ_OPT_FLAG, "subtract the keys'/values' mean (fitted on --act-calib)",      \
         &(a)->center},                                                                            \
    {                                                                                              \
        "act-calib-chunks", LQ_OPT_SIZE, "chunks of --act-calib (default 8)", &(a)->calib_chunks   \
    }

/* 1 when any option differs from lq_actq_cli_init's defaults. */
int lq_actq_cli_given(const lq_actq_cli *a);

/* One line naming settings s (bits, quantizer, rotation, sites, betas, KV
 * scales), for metadata and reports. */
void lq_actq_describe(const lq_actq_settings *s, char *buf, size_t cap);

/* Validate the options into settings for model configuration c; prints a
 * clear error and returns -1 on a bad value. */
int lq_actq_cli_settings(const lq_actq_cli *a, const lq_llama_config *c, lq_actq_settings *s);

/* The whole set-up for a command: settings, init of aq (zeroed by the
 * caller, freed by it with lq_actq_free), m->actq = aq, and (with
 * --act-calib) the fit on that text with tokenizer t. Prints errors; -1 on
 * failure. *on = 0 when nothing is quantized (m->actq stays NULL). */
int lq_actq_cli_setup(lq_ctx *ctx, const lq_actq_cli *a, lq_llama *m, const lq_tokenizer *t,
                      const lq_run_opts *ro, lq_actq *aq, int *on);

#endif
