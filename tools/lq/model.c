/* Llama model: loaders (llama2.c, Hugging Face safetensors) and the
 * reference forward pass. The .lqt reader and writer are in model_lqt.c. */
#include "model.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "actq.h"
#include "cli.h"
#include "core/linalg.h"
#include "json.h"
#include "model_internal.h"

int lq_model_silent;

void lq_model_err(const char *fmt, ...)
{
    if (lq_model_silent) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static const char *const g_short[LQ_LIN_COUNT] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                  "gate_proj", "up_proj", "down_proj"};

lq_lin_group lq_lin_group_of(lq_lin k)
{
    switch (k) {
    case LQ_LIN_Q:
    case LQ_LIN_K:
    case LQ_LIN_V: return LQ_GROUP_ATTN_IN;
    case LQ_LIN_O: return LQ_GROUP_ATTN_OUT;
    case LQ_LIN_GATE:
    case LQ_LIN_UP: return LQ_GROUP_FFN_IN;
    default: return LQ_GROUP_FFN_MID;
    }
}

const char *lq_lin_short(lq_lin k) { return (unsigned)k < LQ_LIN_COUNT ? g_short[k] : "?"; }

void lq_lin_name(char *buf, size_t cap, size_t layer, lq_lin k)
{
    snprintf(buf, cap, "model.layers.%zu.%s.%s.weight", layer, k <= LQ_LIN_O ? "self_attn" : "mlp",
             lq_lin_short(k));
}

void lq_llama_free(lq_llama *m)
{
    if (!m) return;
    if (m->lin) {
        for (size_t i = 0; i < m->cfg.n_layers * LQ_LIN_COUNT; i++) {
            free(m->lin[i].w);
            lq_qtensor_free(m->lin[i].q);
        }
    }
    if (m->cls != m->embed) free(m->cls);
    free(m->embed);
    free(m->norm_att);
    free(m->norm_ffn);
    free(m->norm_final);
    free(m->lin);
    free(m);
}

void lq_llama_bits(const lq_llama *m, double *bpw, size_t *nq)
{
    double bits = 0, w = 0;
    size_t q = 0;
    for (size_t i = 0; i < m->cfg.n_layers * LQ_LIN_COUNT; i++) {
        const lq_linear *l = &m->lin[i];
        double n = (double)l->rows * (double)l->cols, b = 32;
        if (l->q && lq_qtensor_bits_per_weight(l->q, &b) == LQ_OK) q++;
        bits += b * n;
        w += n;
    }
    if (bpw) *bpw = w > 0 ? bits / w : 0;
    if (nq) *nq = q;
}

int lq_llama_config_check(const lq_llama_config *c, char *why, size_t cap)
{
    const size_t lim = (size_t)1 << 20;
    if (!c->dim || !c->hidden || !c->n_layers || !c->n_heads || !c->n_kv_heads || !c->vocab ||
        !c->seq_len || !c->head_dim) {
        snprintf(why, cap, "a dimension is zero");
        return -1;
    }
    if (c->dim > lim || c->hidden > lim || c->n_layers > 4096 || c->vocab > lim ||
        c->seq_len > lim || c->n_heads > 4096) {
        snprintf(why, cap, "a dimension is implausibly large");
        return -1;
    }
    if (c->n_heads % c->n_kv_heads) {
        snprintf(why, cap, "n_heads %zu is not a multiple of n_kv_heads %zu", c->n_heads,
                 c->n_kv_heads);
        return -1;
    }
    if (c->head_dim % 2 || c->head_dim * c->n_heads > 4 * lim) {
        snprintf(why, cap, "head_dim %zu must be even", c->head_dim);
        return -1;
    }
    if (!(c->norm_eps > 0) || !(c->norm_eps < 1) || !(c->rope_theta > 1) ||
        !isfinite(c->rope_theta)) {
        snprintf(why, cap, "norm_eps or rope_theta out of range");
        return -1;
    }
    return 0;
}

/* Allocate the model arrays for c (weights zeroed). */
lq_status lq_llama_alloc(const lq_llama_config *c, int float_linears, lq_llama **out)
{
    lq_llama *m = calloc(1, sizeof *m);
    if (!m) return LQ_ERR_NO_MEMORY;
    m->cfg = *c;
    size_t L = c->n_layers, d = c->dim;
    m->embed = calloc(c->vocab * d, sizeof(float));
    m->norm_att = calloc(L * d, sizeof(float));
    m->norm_ffn = calloc(L * d, sizeof(float));
    m->norm_final = calloc(d, sizeof(float));
    m->lin = calloc(L * LQ_LIN_COUNT, sizeof *m->lin);
    m->cls = c->tied ? m->embed : calloc(c->vocab * d, sizeof(float));
    if (!m->embed || !m->norm_att || !m->norm_ffn || !m->norm_final || !m->lin || !m->cls) {
        lq_llama_free(m);
        return LQ_ERR_NO_MEMORY;
    }
    size_t q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    for (size_t l = 0; l < L; l++) {
        const size_t shape[LQ_LIN_COUNT][2] = {
            {q, d}, {kv, d}, {kv, d}, {d, q}, {c->hidden, d}, {c->hidden, d}, {d, c->hidden}};
        for (int k = 0; k < LQ_LIN_COUNT; k++) {
            lq_linear *li = lq_llama_lin(m, l, (lq_lin)k);
            li->rows = shape[k][0];
            li->cols = shape[k][1];
            if (float_linears && !(li->w = calloc(li->rows * li->cols, sizeof(float)))) {
                lq_llama_free(m);
                return LQ_ERR_NO_MEMORY;
            }
        }
    }
    *out = m;
    return LQ_OK;
}

/* llama2.c interleaved RoPE rows -> rotate-half rows, within each head. */
int lq_llama_permute_qk(float *W, size_t heads, size_t hd, size_t cols, int inverse)
{
    float *tmp = malloc(hd * cols * sizeof *tmp);
    if (!tmp) return -1;
    for (size_t h = 0; h < heads; h++) {
        float *w = W + h * hd * cols;
        memcpy(tmp, w, hd * cols * sizeof *tmp);
        for (size_t i = 0; i < hd / 2; i++) {
            if (!inverse) {
                memcpy(w + i * cols, tmp + (2 * i) * cols, cols * sizeof *w);
                memcpy(w + (i + hd / 2) * cols, tmp + (2 * i + 1) * cols, cols * sizeof *w);
            } else {
                memcpy(w + (2 * i) * cols, tmp + i * cols, cols * sizeof *w);
                memcpy(w + (2 * i + 1) * cols, tmp + (i + hd / 2) * cols, cols * sizeof *w);
            }
        }
    }
    free(tmp);
    return 0;
}

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

int lq_llama_finite(const lq_llama *m)
{
    const lq_llama_config *c = &m->cfg;
    if (!all_finite(m->embed, c->vocab * c->dim) ||
        !all_finite(m->norm_att, c->n_layers * c->dim) ||
        !all_finite(m->norm_ffn, c->n_layers * c->dim) || !all_finite(m->norm_final, c->dim) ||
        (m->cls != m->embed && !all_finite(m->cls, c->vocab * c->dim)))
        return 0;
    for (size_t i = 0; i < c->n_layers * LQ_LIN_COUNT; i++)
        if (m->lin[i].w && !all_finite(m->lin[i].w, m->lin[i].rows * m->lin[i].cols)) return 0;
    return 1;
}

/* ---- llama2.c legacy checkpoint ---------------------------------------------------- */

static lq_status load_llama2c(const char *path, lq_llama **out)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        lq_model_err("error: %s: cannot open\n", path);
        return LQ_ERR_IO;
    }
    int32_t h[7];
    lq_llama *m = NULL;
    lq_status st = LQ_ERR_CORRUPT;
    char why[160];
    if (fread(h, 4, 7, f) != 7) {
        lq_model_err("error: %s: truncated llama2.c header\n", path);
        goto fail;
    }
    for (int i = 0; i < 7; i++)
        if ((i != 5 && h[i] <= 0) || h[5] == 0 || h[5] == INT32_MIN) {
            lq_model_err("error: %s: not a llama2.c checkpoint (header field %d is %d)\n", path, i,
                         (int)h[i]);
            goto fail;
        }
    lq_llama_config c = {0};
    c.dim = (size_t)h[0];
    c.hidden = (size_t)h[1];
    c.n_layers = (size_t)h[2];
    c.n_heads = (size_t)h[3];
    c.n_kv_heads = (size_t)h[4];
    c.tied = h[5] > 0;
    c.vocab = (size_t)(h[5] > 0 ? h[5] : -(int64_t)h[5]);
    c.seq_len = (size_t)h[6];
    c.head_dim = c.n_heads ? c.dim / c.n_heads : 0;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    if (c.dim % c.n_heads) {
        lq_model_err("error: %s: dim %zu is not a multiple of n_heads %zu\n", path, c.dim,
                     c.n_heads);
        goto fail;
    }
    if (lq_llama_config_check(&c, why, sizeof why)) {
        lq_model_err("error: %s: bad llama2.c header: %s\n", path, why);
        goto fail;
    }
    size_t d = c.dim, L = c.n_layers, kv = c.n_kv_heads * c.head_dim, hs = c.head_dim;
    /* expected size, in floats, of everything after the header */
    double expect = (double)c.vocab * d + 2.0 * L * d + (double)L * d * d * 2 + 2.0 * L * kv * d +
                    3.0 * L * c.hidden * d + d + (double)c.seq_len * hs +
                    (c.tied ? 0 : (double)c.vocab * d);
    struct stat sb;
    if (fstat(fileno(f), &sb) || (double)sb.st_size != 28.0 + 4.0 * expect) {
        fprintf(stderr,
                "error: %s: %lld bytes, but its header (dim %zu, hidden %zu, %zu layers, %zu/%zu "
                "heads, vocab %zu, seq_len %zu) needs %.0f: truncated, or the config does not "
                "match the tensors\n",
                path, (long long)sb.st_size, d, c.hidden, L, c.n_heads, c.n_kv_heads, c.vocab,
                c.seq_len, 28.0 + 4.0 * expect);
        goto fail;
    }
    if ((st = lq_llama_alloc(&c, 1, &m)) != LQ_OK) goto fail;
    st = LQ_ERR_CORRUPT;
#define RD(p, n)                                                                                   \
    do {                                                                                           \
        if (fread((p), sizeof(float), (n), f) != (n)) goto io;                                     \
    } while (0)
    RD(m->embed, c.vocab * d);
    RD(m->norm_att, L * d);
    static const lq_lin order[] = {LQ_LIN_Q,    LQ_LIN_K,    LQ_LIN_V, LQ_LIN_O,
                                   LQ_LIN_GATE, LQ_LIN_DOWN, LQ_LIN_UP};
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
        if (order[k] == LQ_LIN_GATE) RD(m->norm_ffn, L * d); /* rms_ffn sits between wo and w1 */
        for (size_t l = 0; l < L; l++) {
            lq_linear *li = lq_llama_lin(m, l, order[k]);
            RD(li->w, li->rows * li->cols);
        }
    }
    RD(m->norm_final, d);
    if (fseek(f, (long)(c.seq_len * hs * sizeof(float)), SEEK_CUR)) goto io; /* freq_cis */
    if (!c.tied) RD(m->cls, c.vocab * d);
#undef RD
    if (!lq_llama_finite(m)) {
        lq_model_err("error: %s: the checkpoint holds NaN or Inf\n", path);
        st = LQ_ERR_NOT_FINITE;
        goto fail;
    }
    for (size_t l = 0; l < L; l++) {
        lq_linear *q = lq_llama_lin(m, l, LQ_LIN_Q), *k = lq_llama_lin(m, l, LQ_LIN_K);
        if (lq_llama_permute_qk(q->w, c.n_heads, hs, d, 0) ||
            lq_llama_permute_qk(k->w, c.n_kv_heads, hs, d, 0)) {
            st = LQ_ERR_NO_MEMORY;
            goto fail;
        }
    }
    snprintf(m->source, sizeof m->source, "llama2.c");
    fclose(f);
    *out = m;
    return LQ_OK;
io:
    lq_model_err("error: %s: read failed\n", path);
    st = LQ_ERR_IO;
fail:
    fclose(f);
    lq_llama_free(m);
    return st;
}

/* ---- Hugging Face safetensors ---------------------------------------------------- */

static int json_size(const lq_json *root, const char *key, size_t *v, int required)
{
    const lq_json *j = lq_json_get(root, key);
    if (!j) return required ? -1 : 1;
    if (j->type != LQ_JSON_NUM || j->num < 0 || j->num > 1e9 || j->num != floor(j->num)) return -1;
    *v = (size_t)j->num;
    return 0;
}

static lq_status parse_config(const char *path, lq_llama_config *c)
{
    size_t n;
    char *txt = lq_read_file(path, &n);
    if (!txt) {
        lq_model_err("error: %s: cannot read\n", path);
        return LQ_ERR_IO;
    }
    lq_json *root = lq_json_parse(txt, n);
    free(txt);
    if (!root || root->type != LQ_JSON_OBJ) {
        lq_model_err("error: %s: not a JSON object\n", path);
        lq_json_free(root);
        return LQ_ERR_CORRUPT;
    }
    memset(c, 0, sizeof *c);
    lq_status st = LQ_ERR_CORRUPT;
    const lq_json *mt = lq_json_get(root, "model_type");
    if (mt && (mt->type != LQ_JSON_STR || strcmp(mt->str, "llama"))) {
        lq_model_err("error: %s: model_type is not \"llama\"\n", path);
        goto out;
    }
    if (json_size(root, "hidden_size", &c->dim, 1) ||
        json_size(root, "intermediate_size", &c->hidden, 1) ||
        json_size(root, "num_hidden_layers", &c->n_layers, 1) ||
        json_size(root, "num_attention_heads", &c->n_heads, 1) ||
        json_size(root, "vocab_size", &c->vocab, 1)) {
        lq_model_err("error: %s: hidden_size, intermediate_size, num_hidden_layers, "
                     "num_attention_heads and vocab_size must be non-negative integers\n",
                     path);
        goto out;
    }
    c->n_kv_heads = c->n_heads;
    c->seq_len = 2048;
    if (json_size(root, "num_key_value_heads", &c->n_kv_heads, 0) < 0 ||
        json_size(root, "max_position_embeddings", &c->seq_len, 0) < 0) {
        lq_model_err("error: %s: bad num_key_value_heads or max_position_embeddings\n", path);
        goto out;
    }
    c->head_dim = c->n_heads ? c->dim / c->n_heads : 0;
    if (json_size(root, "head_dim", &c->head_dim, 0) < 0) goto out;
    const lq_json *e = lq_json_get(root, "rms_norm_eps"), *t = lq_json_get(root, "rope_theta"),
                  *tie = lq_json_get(root, "tie_word_embeddings");
    c->norm_eps = e && e->type == LQ_JSON_NUM ? (float)e->num : 1e-6f;
    c->rope_theta = t && t->type == LQ_JSON_NUM ? (float)t->num : 10000.0f;
    c->tied = tie && tie->type == LQ_JSON_BOOL ? (int)tie->num : 0;
    const lq_json *rs = lq_json_get(root, "rope_scaling");
    if (rs && rs->type != LQ_JSON_NULL) {
        lq_model_err("error: %s: rope_scaling is not supported\n", path);
        st = LQ_ERR_UNSUPPORTED;
        goto out;
    }
    char why[160];
    if (lq_llama_config_check(c, why, sizeof why)) {
        lq_model_err("error: %s: %s\n", path, why);
        goto out;
    }
    st = LQ_OK;
out:
    lq_json_free(root);
    return st;
}

typedef struct shards {
    lq_tfile **f;
    size_t n;
} shards;

static void shards_close(shards *s)
{
    for (size_t i = 0; i < s->n; i++) lq_tfile_close(s->f[i]);
    free(s->f);
}

static lq_status shards_add(lq_ctx *ctx, shards *s, const char *path)
{
    lq_tfile **nf = realloc(s->f, (s->n + 1) * sizeof *nf);
    if (!nf) return LQ_ERR_NO_MEMORY;
    s->f = nf;
    lq_status st = lq_tfile_open(ctx, path, LQ_TFILE_SAFETENSORS, &s->f[s->n]);
    if (st != LQ_OK) {
        lq_model_err("error: %s: %s\n", path, lq_status_str(st));
        return st;
    }
    s->n++;
    return LQ_OK;
}

/* Read tensor `name` of exactly rows x cols (cols 0: 1-D of rows) into dst. */
static lq_status read_named(const shards *s, const char *dir, const char *name, size_t rows,
                            size_t cols, float *dst, int required)
{
    for (size_t i = 0; i < s->n; i++) {
        size_t idx;
        if (lq_tfile_find(s->f[i], name, &idx) != LQ_OK) continue;
        lq_tensor_info in;
        lq_tfile_info(s->f[i], idx, &in);
        int ok = cols ? (in.ndim == 2 && in.shape[0] == rows && in.shape[1] == cols)
                      : (in.ndim == 1 && in.shape[0] == rows);
        if (!ok) {
            fprintf(stderr,
                    "error: %s: tensor %s has the wrong shape for config.json (expected %zu x "
                    "%zu)\n",
                    dir, name, rows, cols ? cols : 1);
            return LQ_ERR_CORRUPT;
        }
        lq_status st = lq_tfile_read_f32(s->f[i], idx, dst, in.numel);
        if (st != LQ_OK) {
            lq_model_err("error: %s: reading %s: %s (F32, F16 and BF16 are read)\n", dir, name,
                         lq_status_str(st));
            return st;
        }
        return LQ_OK;
    }
    if (required) lq_model_err("error: %s: no tensor %s\n", dir, name);
    return required ? LQ_ERR_CORRUPT : LQ_ERR_INVALID_ARG;
}

static lq_status load_hf(lq_ctx *ctx, const char *dir, const char *single, lq_llama **out)
{
    char path[4096];
    lq_llama_config c;
    snprintf(path, sizeof path, "%s/config.json", dir);
    lq_status st = parse_config(path, &c);
    if (st != LQ_OK) return st;
    shards s = {0};
    lq_llama *m = NULL;
    if (single) {
        if ((st = shards_add(ctx, &s, single)) != LQ_OK) goto fail;
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        size_t n;
        char *txt = lq_read_file(path, &n);
        if (!txt) {
            snprintf(path, sizeof path, "%s/model.safetensors", dir);
            if ((st = shards_add(ctx, &s, path)) != LQ_OK) goto fail;
        } else {
            lq_json *root = lq_json_parse(txt, n);
            free(txt);
            const lq_json *wm = lq_json_get(root, "weight_map");
            if (!wm || wm->type != LQ_JSON_OBJ) {
                lq_model_err("error: %s: no weight_map object\n", path);
                lq_json_free(root);
                st = LQ_ERR_CORRUPT;
                goto fail;
            }
            /* open each distinct shard once, in order of first mention */
            for (const lq_json *e = wm->child; e; e = e->next) {
                if (e->type != LQ_JSON_STR || strchr(e->str, '/') || !strcmp(e->str, "..")) {
                    lq_model_err("error: %s: bad shard name in weight_map\n", path);
                    lq_json_free(root);
                    st = LQ_ERR_CORRUPT;
                    goto fail;
                }
                int seen = 0;
                for (const lq_json *p = wm->child; p != e; p = p->next)
                    if (!strcmp(p->str, e->str)) seen = 1;
                if (seen) continue;
                char sp[4096];
                snprintf(sp, sizeof sp, "%s/%s", dir, e->str);
                if ((st = shards_add(ctx, &s, sp)) != LQ_OK) {
                    lq_json_free(root);
                    goto fail;
                }
            }
            lq_json_free(root);
        }
    }
    if ((st = lq_llama_alloc(&c, 1, &m)) != LQ_OK) goto fail;
    size_t d = c.dim, L = c.n_layers;
    if ((st = read_named(&s, dir, "model.embed_tokens.weight", c.vocab, d, m->embed, 1))) goto fail;
    if ((st = read_named(&s, dir, "model.norm.weight", d, 0, m->norm_final, 1))) goto fail;
    if (!c.tied) {
        st = read_named(&s, dir, "lm_head.weight", c.vocab, d, m->cls, 0);
        if (st == LQ_ERR_INVALID_ARG) { /* no lm_head: tied after all */
            free(m->cls);
            m->cls = m->embed;
            m->cfg.tied = 1;
            st = LQ_OK;
        }
        if (st != LQ_OK) goto fail;
    }
    for (size_t l = 0; l < L; l++) {
        char name[160];
        snprintf(name, sizeof name, "model.layers.%zu.input_layernorm.weight", l);
        if ((st = read_named(&s, dir, name, d, 0, m->norm_att + l * d, 1))) goto fail;
        snprintf(name, sizeof name, "model.layers.%zu.post_attention_layernorm.weight", l);
        if ((st = read_named(&s, dir, name, d, 0, m->norm_ffn + l * d, 1))) goto fail;
        for (int k = 0; k < LQ_LIN_COUNT; k++) {
            lq_linear *li = lq_llama_lin(m, l, (lq_lin)k);
            lq_lin_name(name, sizeof name, l, (lq_lin)k);
            if ((st = read_named(&s, dir, name, li->rows, li->cols, li->w, 1))) goto fail;
        }
    }
    if (!lq_llama_finite(m)) {
        lq_model_err("error: %s: the weights hold NaN or Inf\n", dir);
        st = LQ_ERR_NOT_FINITE;
        goto fail;
    }
    snprintf(m->source, sizeof m->source, "safetensors");
    shards_close(&s);
    *out = m;
    return LQ_OK;
fail:
    shards_close(&s);
    lq_llama_free(m);
    return st;
}

lq_status lq_llama_load(lq_ctx *ctx, const char *path, lq_llama **out)
{
    if (!path || !out) return LQ_ERR_INVALID_ARG;
    struct stat sb;
    if (stat(path, &sb)) {
        lq_model_err("error: %s: no such file or directory\n", path);
        return LQ_ERR_IO;
    }
    if (S_ISDIR(sb.st_mode)) return load_hf(ctx, path, NULL, out);
    size_t n = strlen(path);
    if (n > 12 && !strcmp(path + n - 12, ".safetensors")) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = 0;
        else
            snprintf(dir, sizeof dir, ".");
        return load_hf(ctx, dir, path, out);
    }
    FILE *f = fopen(path, "rb");
    unsigned char magic[4] = {0};
    if (f) {
        size_t got = fread(magic, 1, 4, f);
        (void)got;
        fclose(f);
    }
    if (!memcmp(magic, "\x89LQT", 4)) return lq_llama_load_lqt(ctx, path, out);
    return load_llama2c(path, out);
}

/* ---- forward pass ------------------------------------------------------------------ */

struct lq_llama_state {
    size_t max_batch, n_layers;
    float **kcache, **vcache; /* per layer: seq_len x kv_dim, allocated on first float use */
    lq_kvc *kvc;              /* KV cache of codes (actq.h), when quantized */
    float *x, *xb, *q, *k, *v, *att_out, *h1, *h3, *scores;
};

void lq_llama_state_free(lq_llama_state *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n_layers; i++) {
        if (s->kcache) free(s->kcache[i]);
        if (s->vcache) free(s->vcache[i]);
    }
    lq_kvc_free(s->kvc);
    free(s->kcache);
    free(s->vcache);
    free(s->x);
    free(s->xb);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->att_out);
    free(s->h1);
    free(s->h3);
    free(s->scores);
    free(s);
}

lq_status lq_llama_state_create(const lq_llama *m, size_t max_batch, lq_llama_state **out)
{
    if (!m || !out || max_batch == 0) return LQ_ERR_INVALID_ARG;
    const lq_llama_config *c = &m->cfg;
    if (max_batch > c->seq_len) max_batch = c->seq_len;
    lq_llama_state *s = calloc(1, sizeof *s);
    if (!s) return LQ_ERR_NO_MEMORY;
    s->max_batch = max_batch;
    size_t B = max_batch, qd = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    s->n_layers = c->n_layers;
    s->kcache = calloc(c->n_layers, sizeof *s->kcache);
    s->vcache = calloc(c->n_layers, sizeof *s->vcache);
    int ok = s->kcache && s->vcache;
    size_t wide = qd > c->dim ? qd : c->dim;
    s->x = malloc(B * c->dim * sizeof(float));
    s->xb = malloc(B * wide * sizeof(float));
    s->q = malloc(B * qd * sizeof(float));
    s->k = malloc(B * kv * sizeof(float));
    s->v = malloc(B * kv * sizeof(float));
    s->att_out = malloc(B * wide * sizeof(float));
    s->h1 = malloc(B * c->hidden * sizeof(float));
    s->h3 = malloc(B * c->hidden * sizeof(float));
    s->scores = malloc(c->seq_len * sizeof(float));
    if (!ok || !s->x || !s->xb || !s->q || !s->k || !s->v || !s->att_out || !s->h1 || !s->h3 ||
        !s->scores) {
        lq_llama_state_free(s);
        return LQ_ERR_NO_MEMORY;
    }
    *out = s;
    return LQ_OK;
}

/* ---- fp32 products, threaded by rows ------------------------------------------------ */

typedef struct mm_job {
    const float *W, *X;
    float *Y;
    size_t rows, cols, n, r0, r1;
} mm_job;

static void mm_rows(const mm_job *j)
{
    const size_t cols = j->cols;
    for (size_t r = j->r0; r < j->r1; r++) {
        const float *w = j->W + r * cols;
        for (size_t t = 0; t < j->n; t++) {
            const float *x = j->X + t * cols;
            float acc[8] = {0};
            size_t c = 0;
            for (; c + 8 <= cols; c += 8)
                for (int u = 0; u < 8; u++) acc[u] += w[c + u] * x[c + u];
            float s =
                ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
            for (; c < cols; c++) s += w[c] * x[c];
            j->Y[t * j->rows + r] = s;
        }
    }
}

static void *mm_thread(void *p)
{
    mm_rows(p);
    return NULL;
}

void lq_f32_matmul(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *X, size_t n,
                   float *Y)
{
    /* a batch goes through the library's blocked, threaded SGEMM (the
     * fastest fp32 path here, so fp32 figures are not handicapped); one
     * token through the row loop below */
    if (n >= 4 && lq_sgemm(ctx, LQ_NO_TRANS, LQ_TRANS, n, rows, cols, 1.0f, X, cols, W, cols, 0.0f,
                           Y, rows) == LQ_OK)
        return;
    size_t nt = ctx ? lq_ctx_threads(ctx) : 1;
    if (nt > 16) nt = 16;
    if (nt < 1 || (double)rows * cols * n < 262144.0) nt = 1;
    mm_job jobs[16];
    pthread_t th[16];
    size_t started = 0;
    for (size_t i = 0; i < nt; i++) {
        jobs[i] = (mm_job){W, X, Y, rows, cols, n, rows * i / nt, rows * (i + 1) / nt};
        if (i > 0 && pthread_create(&th[i], NULL, mm_thread, &jobs[i]) == 0)
            started |= (size_t)1 << i;
    }
    mm_rows(&jobs[0]);
    for (size_t i = 1; i < nt; i++) {
        if (started & ((size_t)1 << i))
            pthread_join(th[i], NULL);
        else
            mm_rows(&jobs[i]); /* thread creation failed: do it here */
    }
}

lq_status lq_linear_apply(lq_ctx *ctx, const lq_linear *l, const lq_run_opts *o, const float *X,
                          size_t n, float *Y)
{
    if (l->q && !(o->use_float && l->w)) {
        if (n == 1 && o->mode == LQ_KERNEL_EXACT) return lq_matvec(ctx, l->q, X, Y);
        return lq_matmul_ex(ctx, l->q, X, n, Y, o->mode);
    }
    if (!l->w) return LQ_ERR_INVALID_ARG;
    lq_f32_matmul(ctx, l->w, l->rows, l->cols, X, n, Y);
    return LQ_OK;
}

static void rmsnorm(float *out, const float *x, const float *w, size_t d, float eps)
{
    double ss = 0;
    for (size_t i = 0; i < d; i++) ss += (double)x[i] * x[i];
    float r = (float)(1.0 / sqrt(ss / (double)d + (double)eps));
    for (size_t i = 0; i < d; i++) out[i] = w[i] * (r * x[i]);
}

/* Rotate-half RoPE on `heads` heads of size hd at position pos. */
static void rope(float *v, size_t heads, size_t hd, size_t pos, float theta)
{
    for (size_t i = 0; i < hd / 2; i++) {
        float freq = 1.0f / powf(theta, (float)(2 * i) / (float)hd);
        float a = (float)pos * freq, cr = cosf(a), ci = sinf(a);
        for (size_t h = 0; h < heads; h++) {
            float *x = v + h * hd;
            float x0 = x[i], x1 = x[i + hd / 2];
            x[i] = x0 * cr - x1 * ci;
            x[i + hd / 2] = x0 * ci + x1 * cr;
        }
    }
}

void lq_llama_embed(const lq_llama *m, const int *tokens, size_t n, float *X)
{
    size_t d = m->cfg.dim;
    for (size_t t = 0; t < n; t++)
        memcpy(X + t * d, m->embed + (size_t)tokens[t] * d, d * sizeof *X);
}

lq_status lq_llama_block(lq_ctx *ctx, const lq_llama *m, lq_llama_state *s, const lq_run_opts *o,
                         size_t layer, float *X, size_t n, size_t pos0, lq_llama_hook hook,
                         void *user, int stop_after)
{
    const lq_llama_config *c = &m->cfg;
    if (n == 0 || n > s->max_batch || pos0 + n > c->seq_len || layer >= c->n_layers)
        return LQ_ERR_INVALID_ARG;
    size_t d = c->dim, hd = c->head_dim, H = c->n_heads, KV = c->n_kv_heads, qd = H * hd,
           kvd = KV * hd, hid = c->hidden;
    lq_status st;
    for (size_t t = 0; t < n; t++)
        rmsnorm(s->xb + t * d, X + t * d, m->norm_att + layer * d, d, c->norm_eps);
    if (hook) hook(user, layer, LQ_GROUP_ATTN_IN, s->xb, n, d);
    if (stop_after == (int)LQ_GROUP_ATTN_IN) return LQ_OK;
    const float *xin = s->xb; /* a linear layer's input: quantized when m->actq says so */
    if (m->actq && (st = lq_actq_input(ctx, m->actq, layer, LQ_GROUP_ATTN_IN, s->xb, n, d, &xin)))
        return st;
    if ((st = lq_linear_apply(ctx, lq_llama_lin(m, layer, LQ_LIN_Q), o, xin, n, s->q)) ||
        (st = lq_linear_apply(ctx, lq_llama_lin(m, layer, LQ_LIN_K), o, xin, n, s->k)) ||
        (st = lq_linear_apply(ctx, lq_llama_lin(m, layer, LQ_LIN_V), o, xin, n, s->v)))
        return st;
    for (size_t t = 0; t < n; t++) {
        rope(s->q + t * qd, H, hd, pos0 + t, c->rope_theta);
        rope(s->k + t * kvd, KV, hd, pos0 + t, c->rope_theta);
    }
    if (lq_actq_kv_on(m->actq)) {
        /* keys and values go into the cache of codes; attention reads them there */
        if (s->kvc && lq_kvc_owner(s->kvc) != m->actq) {
            lq_kvc_free(s->kvc);
            s->kvc = NULL;
        }
        if (!s->kvc && (st = lq_kvc_create(m->actq, &s->kvc)) != LQ_OK) return st;
        if ((st = lq_kvc_attend(ctx, s->kvc, m->actq, layer, s->q, s->k, s->v, n, pos0,
                                s->att_out)) != LQ_OK)
            return st;
        goto attn_done;
    }
    if (!s->kcache[layer]) s->kcache[layer] = malloc(c->seq_len * kvd * sizeof(float));
    if (!s->vcache[layer]) s->vcache[layer] = malloc(c->seq_len * kvd * sizeof(float));
    if (!s->kcache[layer] || !s->vcache[layer]) return LQ_ERR_NO_MEMORY;
    float *kc = s->kcache[layer], *vc = s->vcache[layer];
    for (size_t t = 0; t < n; t++) {
        memcpy(kc + (pos0 + t) * kvd, s->k + t * kvd, kvd * sizeof(float));
        memcpy(vc + (pos0 + t) * kvd, s->v + t * kvd, kvd * sizeof(float));
    }
    const float scale = 1.0f / sqrtf((float)hd);
    for (size_t t = 0; t < n; t++) {
        size_t p = pos0 + t;
        for (size_t h = 0; h < H; h++) {
            const float *q = s->q + t * qd + h * hd;
            size_t g = h / (H / KV);
            float mx = -INFINITY;
            for (size_t j = 0; j <= p; j++) {
                const float *k = kc + j * kvd + g * hd;
                float dot = 0;
                for (size_t i = 0; i < hd; i++) dot += q[i] * k[i];
                s->scores[j] = dot * scale;
                if (s->scores[j] > mx) mx = s->scores[j];
            }
            double sum = 0;
            for (size_t j = 0; j <= p; j++) {
                s->scores[j] = expf(s->scores[j] - mx);
                sum += s->scores[j];
            }
            float inv = (float)(1.0 / sum), *out = s->att_out + t * qd + h * hd;
            for (size_t i = 0; i < hd; i++) out[i] = 0;
            for (size_t j = 0; j <= p; j++) {
                const float *v = vc + j * kvd + g * hd;
                float a = s->scores[j] * inv;
                for (size_t i = 0; i < hd; i++) out[i] += a * v[i];
            }
        }
    }
attn_done:
    if (hook) hook(user, layer, LQ_GROUP_ATTN_OUT, s->att_out, n, qd);
    if (stop_after == (int)LQ_GROUP_ATTN_OUT) return LQ_OK;
    xin = s->att_out;
    if (m->actq &&
        (st = lq_actq_input(ctx, m->actq, layer, LQ_GROUP_ATTN_OUT, s->att_out, n, qd, &xin)))
        return st;
    if ((st = lq_linear_apply(ctx, lq_llama_lin(m, layer, LQ_LIN_O), o, xin, n, s->xb))) return st;
    for (size_t i = 0; i < n * d; i++) X[i] += s->xb[i];
    for (size_t t = 0; t < n; t++)
        rmsnorm(s->xb + t * d, X + t * d, m->norm_ffn + layer * d, d, c->norm_eps);
    if (hook) hook(user, layer, LQ_GROUP_FFN_IN, s->xb, n, d);
    if (stop_after == (int)LQ_GROUP_FFN_IN) return LQ_OK;
    xin = s->xb;
    if (m->actq && (st = lq_actq_input(ctx, m->actq, layer, LQ_GROUP_FFN_IN, s->xb, n, d, &xin)))
        return st;
    if ((st = lq_linear_apply(ctx, lq_llama_lin(m, layer, LQ_LIN_GATE), o, xin, n, s->h1)) ||
        (st = lq_linear_apply(ctx, lq_llama_lin(m, layer, LQ_LIN_UP), o, xin, n, s->h3)))
        return st;
    for (size_t i = 0; i < n * hid; i++) {
        float g = s->h1[i];
        s->h1[i] = g / (1.0f + expf(-g)) * s->h3[i];
    }
    if (hook) hook(user, layer, LQ_GROUP_FFN_MID, s->h1, n, hid);
    if (stop_after == (int)LQ_GROUP_FFN_MID) return LQ_OK;
    xin = s->h1;
    if (m->actq && (st = lq_actq_input(ctx, m->actq, layer, LQ_GROUP_FFN_MID, s->h1, n, hid, &xin)))
        return st;
    if ((st = lq_linear_apply(ctx, lq_llama_lin(m, layer, LQ_LIN_DOWN), o, xin, n, s->xb)))
        return st;
    for (size_t i = 0; i < n * d; i++) X[i] += s->xb[i];
    return LQ_OK;
}

void lq_llama_head(lq_ctx *ctx, const lq_llama *m, const float *X, size_t n, float *logits)
{
    size_t d = m->cfg.dim;
    float *xn = malloc(n * d * sizeof *xn);
    if (!xn) {
        for (size_t i = 0; i < n * m->cfg.vocab; i++) logits[i] = NAN;
        return;
    }
    for (size_t t = 0; t < n; t++)
        rmsnorm(xn + t * d, X + t * d, m->norm_final, d, m->cfg.norm_eps);
    lq_f32_matmul(ctx, m->cls, m->cfg.vocab, d, xn, n, logits);
    free(xn);
}

lq_status lq_llama_forward(lq_ctx *ctx, const lq_llama *m, lq_llama_state *s, const lq_run_opts *o,
                           const int *tokens, size_t n, size_t pos0, float *logits)
{
    if (!m || !s || !o || !tokens || n == 0 || n > s->max_batch || pos0 + n > m->cfg.seq_len)
        return LQ_ERR_INVALID_ARG;
    for (size_t t = 0; t < n; t++)
        if (tokens[t] < 0 || (size_t)tokens[t] >= m->cfg.vocab) return LQ_ERR_INVALID_ARG;
    lq_llama_embed(m, tokens, n, s->x);
    for (size_t l = 0; l < m->cfg.n_layers; l++) {
        lq_status st = lq_llama_block(ctx, m, s, o, l, s->x, n, pos0, NULL, NULL, -1);
        if (st != LQ_OK) return st;
    }
    if (logits) lq_llama_head(ctx, m, s->x, n, logits);
    return LQ_OK;
}
