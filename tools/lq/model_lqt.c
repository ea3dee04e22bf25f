/* Complete-model .lqt files: every linear layer as a qtensor (or float32
 * when left unquantized), embeddings and norms as float32 entries, the
 * configuration as metadata. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "json.h"
#include "model_internal.h"

#define CONFIG_KEY "llama.config"

static lq_status add_f32(lq_lqt_writer *w, const char *name, size_t rows, size_t cols,
                         const float *data, const char *path)
{
    lq_status st = lq_lqt_writer_add_f32(w, name, rows, cols, data);
    if (st != LQ_OK) lq_model_err("error: %s: writing %s: %s\n", path, name, lq_status_str(st));
    return st;
}

lq_status lq_llama_save(lq_ctx *ctx, const lq_llama *m, const char *path, const char *const *meta,
                        size_t nmeta)
{
    const lq_llama_config *c = &m->cfg;
    lq_lqt_writer *w;
    lq_status st = lq_lqt_writer_open(ctx, path, &w);
    if (st != LQ_OK) {
        lq_model_err("error: %s: %s\n", path, lq_status_str(st));
        return st;
    }
    char cfg[1024], name[160];
    snprintf(cfg, sizeof cfg,
             "{\"dim\":%zu,\"hidden_dim\":%zu,\"n_layers\":%zu,\"n_heads\":%zu,"
             "\"n_kv_heads\":%zu,\"head_dim\":%zu,\"vocab_size\":%zu,\"seq_len\":%zu,"
             "\"norm_eps\":%.9g,\"rope_theta\":%.9g,\"tied_embeddings\":%s,"
             "\"qk_layout\":\"rotate-half\"}",
             c->dim, c->hidden, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->vocab,
             c->seq_len, (double)c->norm_eps, (double)c->rope_theta, c->tied ? "true" : "false");
    if ((st = lq_lqt_writer_add_meta(w, "libquant.model", "llama")) != LQ_OK ||
        (st = lq_lqt_writer_add_meta(w, CONFIG_KEY, cfg)) != LQ_OK)
        goto fail;
    for (size_t i = 0; i < nmeta; i++)
        if ((st = lq_lqt_writer_add_meta(w, meta[2 * i], meta[2 * i + 1])) != LQ_OK) goto fail;
    size_t d = c->dim;
    if ((st = add_f32(w, "model.embed_tokens.weight", c->vocab, d, m->embed, path))) goto fail;
    for (size_t l = 0; l < c->n_layers; l++) {
        snprintf(name, sizeof name, "model.layers.%zu.input_layernorm.weight", l);
        if ((st = add_f32(w, name, 1, d, m->norm_att + l * d, path))) goto fail;
        snprintf(name, sizeof name, "model.layers.%zu.post_attention_layernorm.weight", l);
        if ((st = add_f32(w, name, 1, d, m->norm_ffn + l * d, path))) goto fail;
        for (int k = 0; k < LQ_LIN_COUNT; k++) {
            const lq_linear *li = lq_llama_lin(m, l, (lq_lin)k);
            lq_lin_name(name, sizeof name, l, (lq_lin)k);
            if (li->q)
                st = lq_lqt_writer_add(w, name, li->q);
            else
                st = lq_lqt_writer_add_f32(w, name, li->rows, li->cols, li->w);
            if (st != LQ_OK) {
                lq_model_err("error: %s: writing %s: %s\n", path, name, lq_status_str(st));
                goto fail;
            }
        }
    }
    if ((st = add_f32(w, "model.norm.weight", 1, d, m->norm_final, path))) goto fail;
    if (!c->tied && (st = add_f32(w, "lm_head.weight", c->vocab, d, m->cls, path))) goto fail;
    st = lq_lqt_writer_finish(w);
    if (st != LQ_OK) lq_model_err("error: %s: %s\n", path, lq_status_str(st));
    return st;
fail:
    lq_lqt_writer_abort(w);
    return st;
}

static int cfg_size(const lq_json *root, const char *key, size_t *v)
{
    const lq_json *j = lq_json_get(root, key);
    if (!j || j->type != LQ_JSON_NUM || j->num < 0 || j->num > 1e9 || j->num != floor(j->num))
        return -1;
    *v = (size_t)j->num;
    return 0;
}

/* Float entry `name` of exactly rows x cols into dst. */
static lq_status read_f32(const lq_lqt *f, const char *path, const char *name, size_t rows,
                          size_t cols, float *dst)
{
    size_t idx;
    lq_lqt_info in;
    if (lq_lqt_find(f, name, &idx) != LQ_OK) {
        lq_model_err("error: %s: no tensor %s (not a complete model)\n", path, name);
        return LQ_ERR_CORRUPT;
    }
    lq_lqt_info_get(f, idx, &in);
    if (in.format != LQ_LQT_FORMAT_F32 || in.rows != rows || in.cols != cols) {
        lq_model_err("error: %s: %s is not a %zu x %zu float tensor\n", path, name, rows, cols);
        return LQ_ERR_CORRUPT;
    }
    lq_status st = lq_lqt_read_f32(f, idx, dst, rows * cols);
    if (st != LQ_OK) lq_model_err("error: %s: %s: %s\n", path, name, lq_status_str(st));
    return st;
}

lq_status lq_llama_load_lqt(lq_ctx *ctx, const char *path, lq_llama **out)
{
    lq_lqt *f;
    lq_status st = lq_lqt_open(ctx, path, LQ_LQT_MMAP, &f);
    if (st != LQ_OK) {
        lq_model_err("error: %s: %s\n", path, lq_status_str(st));
        return st;
    }
    lq_llama *m = NULL;
    const char *cj;
    lq_json *root = NULL;
    if (lq_lqt_meta_find(f, CONFIG_KEY, &cj) != LQ_OK) {
        lq_model_err("error: %s: no model configuration: an .lqt of tensors, not a complete "
                     "model (write one with lq quantize --calib-text ... MODEL OUT.lqt)\n",
                     path);
        st = LQ_ERR_INVALID_ARG;
        goto fail;
    }
    root = lq_json_parse(cj, strlen(cj));
    lq_llama_config c = {0};
    const lq_json *eps = lq_json_get(root, "norm_eps"), *th = lq_json_get(root, "rope_theta"),
                  *tie = lq_json_get(root, "tied_embeddings");
    st = LQ_ERR_CORRUPT;
    if (!root || cfg_size(root, "dim", &c.dim) || cfg_size(root, "hidden_dim", &c.hidden) ||
        cfg_size(root, "n_layers", &c.n_layers) || cfg_size(root, "n_heads", &c.n_heads) ||
        cfg_size(root, "n_kv_heads", &c.n_kv_heads) || cfg_size(root, "head_dim", &c.head_dim) ||
        cfg_size(root, "vocab_size", &c.vocab) || cfg_size(root, "seq_len", &c.seq_len) || !eps ||
        eps->type != LQ_JSON_NUM || !th || th->type != LQ_JSON_NUM || !tie ||
        tie->type != LQ_JSON_BOOL) {
        lq_model_err("error: %s: malformed %s metadata\n", path, CONFIG_KEY);
        goto fail;
    }
    c.norm_eps = (float)eps->num;
    c.rope_theta = (float)th->num;
    c.tied = (int)tie->num;
    char why[160], name[160];
    if (lq_llama_config_check(&c, why, sizeof why)) {
        lq_model_err("error: %s: %s\n", path, why);
        goto fail;
    }
    if ((st = lq_llama_alloc(&c, 0, &m)) != LQ_OK) goto fail;
    size_t d = c.dim;
    if ((st = read_f32(f, path, "model.embed_tokens.weight", c.vocab, d, m->embed))) goto fail;
    if ((st = read_f32(f, path, "model.norm.weight", 1, d, m->norm_final))) goto fail;
    if (!c.tied && (st = read_f32(f, path, "lm_head.weight", c.vocab, d, m->cls))) goto fail;
    for (size_t l = 0; l < c.n_layers; l++) {
        snprintf(name, sizeof name, "model.layers.%zu.input_layernorm.weight", l);
        if ((st = read_f32(f, path, name, 1, d, m->norm_att + l * d))) goto fail;
        snprintf(name, sizeof name, "model.layers.%zu.post_attention_layernorm.weight", l);
        if ((st = read_f32(f, path, name, 1, d, m->norm_ffn + l * d))) goto fail;
        for (int k = 0; k < LQ_LIN_COUNT; k++) {
            lq_linear *li = lq_llama_lin(m, l, (lq_lin)k);
            lq_lin_name(name, sizeof name, l, (lq_lin)k);
            size_t idx;
            lq_lqt_info in;
            if (lq_lqt_find(f, name, &idx) != LQ_OK) {
                lq_model_err("error: %s: no tensor %s (not a complete model)\n", path, name);
                st = LQ_ERR_CORRUPT;
                goto fail;
            }
            lq_lqt_info_get(f, idx, &in);
            if (in.rows != li->rows || in.cols != li->cols) {
                lq_model_err("error: %s: %s is %zu x %zu, the configuration needs %zu x %zu\n",
                             path, name, in.rows, in.cols, li->rows, li->cols);
                st = LQ_ERR_CORRUPT;
                goto fail;
            }
            if (in.format == LQ_LQT_FORMAT_F32) {
                if (!(li->w = malloc(li->rows * li->cols * sizeof *li->w))) {
                    st = LQ_ERR_NO_MEMORY;
                    goto fail;
                }
                if ((st = read_f32(f, path, name, li->rows, li->cols, li->w))) goto fail;
            } else if ((st = lq_lqt_load(ctx, f, idx, 0, &li->q)) != LQ_OK) {
                lq_model_err("error: %s: %s: %s\n", path, name, lq_status_str(st));
                goto fail;
            }
        }
    }
    snprintf(m->source, sizeof m->source, "lqt");
    lq_json_free(root);
    lq_lqt_close(f);
    *out = m;
    return LQ_OK;
fail:
    lq_json_free(root);
    lq_llama_free(m);
    lq_lqt_close(f);
    return st;
}
