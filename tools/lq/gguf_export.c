/* A Llama model as GGUF for llama.cpp (gguf_export.h). */
#include "gguf_export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "io/gguf.h"

/* ggml's llama_ftype values for general.file_type */
#define FTYPE_ALL_F32 0
#define FTYPE_MOSTLY_F16 1
/* tokenizer.ggml.token_type values */
#define TOK_NORMAL 1
#define TOK_UNKNOWN 2
#define TOK_CONTROL 3
#define TOK_BYTE 6
#define MAX_REPORTED 8 /* tensors named when several cannot be exported */

/* One tensor of the GGUF file. */
typedef struct entry {
    char name[LQ_GGUF_MAX_NAME + 1];
    char lq_name[160]; /* its name in libquant (messages) */
    size_t rows, cols;
    int one_d;           /* a 1-D tensor (norms) */
    const float *f;      /* float data, or */
    const lq_qtensor *q; /* a quantized layer */
    size_t heads;        /* q/k: heads whose rows are re-interleaved; 0 = none */
    lq_ggml_type type;
    int dequantize; /* q written as its W_hat in float (fallback) */
    size_t nbytes;
} entry;

static const char *const g_blk_names[LQ_LIN_COUNT] = {
    "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down",
};

static void add_float(entry *e, size_t *n, const char *name, const char *lq_name, const float *f,
                      size_t rows, size_t cols, int one_d)
{
    entry *x = &e[(*n)++];
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s", name);
    snprintf(x->lq_name, sizeof x->lq_name, "%s", lq_name);
    x->f = f;
    x->rows = rows;
    x->cols = cols;
    x->one_d = one_d;
}

/* Every tensor of m in llama.cpp's names; returns the count (e holds
 * 3 + n_layers * (2 + LQ_LIN_COUNT) entries). */
static size_t list_tensors(const lq_llama *m, entry *e)
{
    const lq_llama_config *c = &m->cfg;
    size_t n = 0, d = c->dim;
    char name[64], lq[160];
    add_float(e, &n, "token_embd.weight", "model.embed_tokens.weight", m->embed, c->vocab, d, 0);
    for (size_t l = 0; l < c->n_layers; l++) {
        snprintf(name, sizeof name, "blk.%zu.attn_norm.weight", l);
        snprintf(lq, sizeof lq, "model.layers.%zu.input_layernorm.weight", l);
        add_float(e, &n, name, lq, m->norm_att + l * d, 1, d, 1);
        snprintf(name, sizeof name, "blk.%zu.ffn_norm.weight", l);
        snprintf(lq, sizeof lq, "model.layers.%zu.post_attention_layernorm.weight", l);
        add_float(e, &n, name, lq, m->norm_ffn + l * d, 1, d, 1);
        for (int k = 0; k < LQ_LIN_COUNT; k++) {
            const lq_linear *li = lq_llama_lin(m, l, (lq_lin)k);
            snprintf(name, sizeof name, "blk.%zu.%s.weight", l, g_blk_names[k]);
            lq_lin_name(lq, sizeof lq, l, (lq_lin)k);
            add_float(e, &n, name, lq, li->q ? NULL : li->w, li->rows, li->cols, 0);
            e[n - 1].q = li->q;
            e[n - 1].heads = k == LQ_LIN_Q ? c->n_heads : k == LQ_LIN_K ? c->n_kv_heads : 0;
        }
    }
    add_float(e, &n, "output_norm.weight", "model.norm.weight", m->norm_final, 1, d, 1);
    /* tied: no output.weight, llama.cpp then uses token_embd */
    if (!c->tied) add_float(e, &n, "output.weight", "lm_head.weight", m->cls, c->vocab, d, 0);
    return n;
}

/* q/k rows: rotate-half (libquant) -> interleaved pairs (llama.cpp), per
 * head of hd rows: output row 2i is row i, output row 2i + 1 is row
 * hd / 2 + i. The inverse of the permutation the llama2.c loader applies. */
static size_t *qk_row_order(size_t rows, size_t heads)
{
    size_t *o = malloc(rows * sizeof *o), hd = rows / heads;
    if (!o) return NULL;
    for (size_t h = 0; h < heads; h++)
        for (size_t i = 0; i < hd / 2; i++) {
            o[h * hd + 2 * i] = h * hd + i;
            o[h * hd + 2 * i + 1] = h * hd + hd / 2 + i;
        }
    return o;
}

/* Decide each tensor's type. Prints every refusal (up to MAX_REPORTED). */
static lq_status plan_types(entry *e, size_t n, const lq_gguf_export_opts *o, const char *path)
{
    size_t refused = 0;
    lq_ggml_type ftype = o->float_f16 ? LQ_GGML_F16 : LQ_GGML_F32;
    for (size_t i = 0; i < n; i++) {
        e[i].type = e[i].one_d ? LQ_GGML_F32 : ftype;
        if (!e[i].q) continue;
        char why[256];
        if (lq_ggml_exact_type(e[i].q, &e[i].type, why, sizeof why) == LQ_OK) continue;
        if (o->float_fallback) {
            e[i].type = ftype;
            e[i].dequantize = 1;
            continue;
        }
        if (refused++ < MAX_REPORTED)
            fprintf(stderr, "error: %s: %s cannot be written exactly as GGUF: %s\n", path,
                    e[i].lq_name, why);
    }
    if (!refused) return LQ_OK;
    if (refused > MAX_REPORTED)
        fprintf(stderr, "error: %s: ... and %zu more such tensors\n", path, refused - MAX_REPORTED);
    fprintf(stderr,
            "hint: GGUF holds INT tensors of 4, 5 or 8 bits in groups of 32 with fp16 scales "
            "(lq quantize --method int --gguf-compatible q4_0|q4_1|q5_0|q5_1|q8_0 makes them); "
            "--float-fallback writes the others as their dequantized weights\n");
    return LQ_ERR_UNSUPPORTED;
}

static uint32_t file_type(const entry *e, size_t n, int float_f16)
{
    /* the type holding most weights among the quantized layers */
    static const struct {
        lq_ggml_type t;
        uint32_t ftype;
    } map[] = {{LQ_GGML_Q4_0, 2},
               {LQ_GGML_Q4_1, 3},
               {LQ_GGML_Q8_0, 7},
               {LQ_GGML_Q5_0, 8},
               {LQ_GGML_Q5_1, 9}};
    double count[sizeof map / sizeof map[0]] = {0}, best = 0;
    uint32_t ft = float_f16 ? FTYPE_MOSTLY_F16 : FTYPE_ALL_F32;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
            if (e[i].type == map[k].t) count[k] += (double)e[i].rows * (double)e[i].cols;
    for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
        if (count[k] > best) {
            best = count[k];
            ft = map[k].ftype;
        }
    return ft;
}

static int is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }

/* "<0xXX>": a byte-fallback token */
static int is_byte_token(const char *s, size_t l)
{
    return l == 6 && !memcmp(s, "<0x", 3) && is_hex(s[3]) && is_hex(s[4]) && s[5] == '>';
}

/* tokenizer.ggml.*: llama2.c's texts back to sentencepiece's (spaces as
 * U+2581, "<s>" and "</s>" without the newlines llama2.c adds). */
static lq_status put_vocab(lq_gguf_writer *w, const lq_tokenizer *tok)
{
    size_t n = lq_tok_vocab(tok);
    char **txt = calloc(n, sizeof *txt);
    size_t *len = calloc(n, sizeof *len);
    float *score = calloc(n, sizeof *score);
    int32_t *type = calloc(n, sizeof *type);
    lq_status st = LQ_ERR_NO_MEMORY;
    if (!txt || !len || !score || !type) goto out;
    for (size_t i = 0; i < n; i++) {
        size_t l;
        const char *s = lq_tok_text(tok, i, &l);
        if ((i == LQ_TOK_BOS && !strcmp(s, "\n<s>\n")) ||
            (i == LQ_TOK_EOS && !strcmp(s, "\n</s>\n"))) {
            s++;
            l -= 2;
        }
        if (!(txt[i] = malloc(3 * l + 1))) goto out;
        size_t k = 0;
        for (size_t j = 0; j < l; j++) {
            if (s[j] == ' ') {
                memcpy(txt[i] + k, "\xe2\x96\x81", 3);
                k += 3;
            } else {
                txt[i][k++] = s[j];
            }
        }
        txt[i][k] = 0;
        len[i] = k;
        score[i] = lq_tok_score(tok, i);
        type[i] = i == 0 && !strcmp(s, "<unk>")        ? TOK_UNKNOWN
                  : i == LQ_TOK_BOS || i == LQ_TOK_EOS ? TOK_CONTROL
                  : is_byte_token(s, l)                ? TOK_BYTE
                                                       : TOK_NORMAL;
    }
    if ((st = lq_gguf_kv_str(w, "tokenizer.ggml.model", "llama")) != LQ_OK ||
        (st = lq_gguf_kv_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)txt, len, n)) !=
            LQ_OK ||
        (st = lq_gguf_kv_arr_f32(w, "tokenizer.ggml.scores", score, n)) != LQ_OK ||
        (st = lq_gguf_kv_arr_i32(w, "tokenizer.ggml.token_type", type, n)) != LQ_OK ||
        (st = lq_gguf_kv_u32(w, "tokenizer.ggml.bos_token_id", LQ_TOK_BOS)) != LQ_OK ||
        (st = lq_gguf_kv_u32(w, "tokenizer.ggml.eos_token_id", LQ_TOK_EOS)) != LQ_OK ||
        (st = lq_gguf_kv_bool(w, "tokenizer.ggml.add_bos_token", 1)) != LQ_OK ||
        (st = lq_gguf_kv_bool(w, "tokenizer.ggml.add_eos_token", 0)) != LQ_OK)
        goto out;
    if (type[0] == TOK_UNKNOWN) st = lq_gguf_kv_u32(w, "tokenizer.ggml.unknown_token_id", 0);
out:
    for (size_t i = 0; txt && i < n; i++) free(txt[i]);
    free(txt);
    free(len);
    free(score);
    free(type);
    return st;
}

static lq_status put_hparams(lq_gguf_writer *w, const lq_llama *m, const entry *e, size_t n,
                             const lq_gguf_export_opts *o)
{
    const lq_llama_config *c = &m->cfg;
    int quantized = 0;
    for (size_t i = 0; i < n; i++)
        quantized |= e[i].type != LQ_GGML_F32 && e[i].type != LQ_GGML_F16;
    lq_status st;
    if ((st = lq_gguf_kv_str(w, "general.architecture", "llama")) != LQ_OK ||
        (st = lq_gguf_kv_str(w, "general.name", o->name ? o->name : "libquant")) != LQ_OK ||
        (st = lq_gguf_kv_u32(w, "general.file_type", file_type(e, n, o->float_f16))) != LQ_OK ||
        (quantized && (st = lq_gguf_kv_u32(w, "general.quantization_version", 2)) != LQ_OK) ||
        (st = lq_gguf_kv_u32(w, "llama.vocab_size", (uint32_t)c->vocab)) != LQ_OK ||
        (st = lq_gguf_kv_u32(w, "llama.context_length", (uint32_t)c->seq_len)) != LQ_OK ||
        (st = lq_gguf_kv_u32(w, "llama.embedding_length", (uint32_t)c->dim)) != LQ_OK ||
        (st = lq_gguf_kv_u32(w, "llama.block_count", (uint32_t)c->n_layers)) != LQ_OK ||
        (st = lq_gguf_kv_u32(w, "llama.feed_forward_length", (uint32_t)c->hidden)) != LQ_OK ||
        (st = lq_gguf_kv_u32(w, "llama.rope.dimension_count", (uint32_t)c->head_dim)) != LQ_OK ||
        (st = lq_gguf_kv_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads)) != LQ_OK ||
        (st = lq_gguf_kv_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads)) !=
            LQ_OK ||
        (st = lq_gguf_kv_u32(w, "llama.attention.key_length", (uint32_t)c->head_dim)) != LQ_OK ||
        (st = lq_gguf_kv_u32(w, "llama.attention.value_length", (uint32_t)c->head_dim)) != LQ_OK ||
        (st = lq_gguf_kv_f32(w, "llama.attention.layer_norm_rms_epsilon", c->norm_eps)) != LQ_OK ||
        (st = lq_gguf_kv_f32(w, "llama.rope.freq_base", c->rope_theta)) != LQ_OK)
        return st;
    for (size_t i = 0; i < o->nmeta; i++)
        if ((st = lq_gguf_kv_str(w, o->meta[2 * i], o->meta[2 * i + 1])) != LQ_OK) return st;
    return LQ_OK;
}

/* The bytes of tensor x into a new buffer *out. */
static lq_status tensor_bytes(lq_ctx *ctx, const entry *x, uint8_t **out)
{
    uint8_t *b = malloc(x->nbytes ? x->nbytes : 1);
    size_t *order = NULL;
    float *wh = NULL;
    lq_status st = LQ_ERR_NO_MEMORY;
    if (!b || (x->heads && !(order = qk_row_order(x->rows, x->heads)))) goto out;
    if (x->q && !x->dequantize) {
        st = lq_ggml_from_int(x->q, x->type, order, b, x->nbytes);
    } else {
        const float *f = x->f;
        if (x->q) {
            if (!(wh = malloc(x->rows * x->cols * sizeof *wh))) goto out;
            if ((st = lq_dequantize(ctx, x->q, wh)) != LQ_OK) goto out;
            f = wh;
        }
        st = lq_ggml_from_f32(f, x->rows, x->cols, x->type, order, b, x->nbytes);
    }
out:
    free(order);
    free(wh);
    if (st == LQ_OK)
        *out = b;
    else
        free(b);
    return st;
}

lq_status lq_llama_save_gguf(lq_ctx *ctx, const lq_llama *m, const lq_tokenizer *tok,
                             const char *path, const lq_gguf_export_opts *o)
{
    static const lq_gguf_export_opts defaults = {0};
    if (!o) o = &defaults;
    const lq_llama_config *c = &m->cfg;
    if (!tok || lq_tok_vocab(tok) != c->vocab) {
        fprintf(stderr, "error: %s: the tokenizer's vocabulary (%zu) is not the model's (%zu)\n",
                path, lq_tok_vocab(tok), c->vocab);
        return LQ_ERR_INVALID_ARG;
    }
    if (c->vocab > UINT32_MAX || c->seq_len > UINT32_MAX) return LQ_ERR_INVALID_ARG;
    entry *e = calloc(3 + c->n_layers * (2 + LQ_LIN_COUNT), sizeof *e);
    if (!e) {
        fprintf(stderr, "error: %s: out of memory\n", path);
        return LQ_ERR_NO_MEMORY;
    }
    size_t n = list_tensors(m, e);
    lq_gguf_writer *w = NULL;
    const char *what = "metadata";
    lq_status st = plan_types(e, n, o, path);
    if (st != LQ_OK) goto out;
    if ((st = lq_gguf_writer_open(ctx, path, LQ_GGUF_DEFAULT_ALIGNMENT, &w)) != LQ_OK) {
        what = "cannot create the file";
        goto fail;
    }
    if ((st = put_hparams(w, m, e, n, o)) != LQ_OK || (st = put_vocab(w, tok)) != LQ_OK) goto fail;
    for (size_t i = 0; i < n; i++) {
        uint64_t ne[2] = {e[i].cols, e[i].rows};
        what = e[i].name;
        if ((st = lq_gguf_add_tensor(w, e[i].name, e[i].one_d ? 1 : 2, ne, e[i].type,
                                     &e[i].nbytes)) != LQ_OK)
            goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t *b;
        what = e[i].lq_name;
        if ((st = tensor_bytes(ctx, &e[i], &b)) != LQ_OK) goto fail;
        st = lq_gguf_write_data(w, b, e[i].nbytes);
        free(b);
        if (st != LQ_OK) goto fail;
    }
    lq_gguf_writer *fw = w;
    w = NULL; /* finish frees it, also on error */
    what = "finishing the file";
    if ((st = lq_gguf_writer_finish(fw)) != LQ_OK) goto fail;
    goto out;
fail:
    fprintf(stderr, "error: %s: %s: %s\n", path, what, lq_status_str(st));
    lq_gguf_writer_abort(w);
out:
    free(e);
    return st;
}
