/* Seed corpora for the fuzzers, generated rather than committed:
 *   gen_corpus DIR   writes DIR/{lqt,qtensor,safetensors,npy}/gen-*
 * .lqt seeds: a small layer quantized by every available method (several
 * option variants, so every section kind appears), and version-2 files
 * (float tensors and metadata, alone and with quantized tensors); safetensors and .npy
 * seeds: the library's writers plus hand-written headers (metadata, escapes,
 * versions 2 and 3). Deterministic. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "quant.h"

#define R 16
#define C 64
#define N 128

static uint64_t g_state = 0x243F6A8885A308D3ull;

static float rnd(void) /* uniform in [-1, 1) */
{
    g_state = g_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(g_state >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

static void path(char *buf, size_t n, const char *dir, const char *sub, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, sub);
    mkdir(buf, 0755);
    snprintf(buf, n, "%s/%s/%s", dir, sub, name);
}

static void raw(const char *dir, const char *sub, const char *name, const void *a, size_t na,
                const void *b, size_t nb)
{
    char p[512];
    path(p, sizeof p, dir, sub, name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(a, 1, na, f) != na || (nb && fwrite(b, 1, nb, f) != nb)) {
        fprintf(stderr, "gen_corpus: cannot write %s\n", p);
        exit(1);
    }
    fclose(f);
}

typedef struct variant {
    const char *name;
    lq_method_kind kind;
    void (*tweak)(lq_method *m);
} variant;

static void t_int(lq_method *m)
{
    m->u.int_.bits = 3;
    m->u.int_.group = 32;
}
static void t_int_sym_perm(lq_method *m)
{
    m->u.int_.bits = 2;
    m->u.int_.group = 16;
    m->u.int_.symmetric = 1;
    m->engine.act_order = 1;
}
static void t_int8(lq_method *m)
{
    m->u.int_.bits = 8;
    m->u.int_.group = 0;
}
static void t_nest(lq_method *m)
{
    m->u.nestquant.q = 4;
    m->u.nestquant.n_betas = 2;
}
static void t_nest_nohad(lq_method *m)
{
    m->u.nestquant.hadamard = 0;
    m->u.nestquant.group = 32;
}
static void t_e8p(lq_method *m) { m->u.nestquant.codebook = LQ_NQ_CODEBOOK_E8P; }
static void t_e8p_g(lq_method *m)
{
    t_e8p(m);
    t_nest_nohad(m);
}
static void t_vq(lq_method *m)
{
    m->u.gptvq.dim = 2;
    m->u.gptvq.index_bits = 4;
    m->u.gptvq.group_cols = 32;
    m->u.gptvq.em_iters = 3;
}
static void t_vq8(lq_method *m)
{
    t_vq(m);
    m->u.gptvq.dim = 4;
    m->u.gptvq.index_bits = 6;
    m->u.gptvq.codebook_bits = 8;
}
static void t_bcq(lq_method *m)
{
    m->u.bcq.k = 2;
    m->u.bcq.group = 32;
    m->u.bcq.iters = 3;
}
static void t_bcq_nooff(lq_method *m)
{
    t_bcq(m);
    m->u.bcq.offset = 0;
    m->u.bcq.k = 3;
}
static void t_aq(lq_method *m)
{
    m->u.aqlm.code_bits = 4;
    m->u.aqlm.beam = 2;
    m->u.aqlm.rounds = 1;
    m->u.aqlm.kmeans_iters = 3;
}

static const variant g_variants[] = {
    {"int", LQ_METHOD_INT, t_int},
    {"int-sym-perm", LQ_METHOD_INT, t_int_sym_perm},
    {"int8", LQ_METHOD_INT, t_int8},
    {"nestquant", LQ_METHOD_NESTQUANT, t_nest},
    {"nestquant-g", LQ_METHOD_NESTQUANT, t_nest_nohad},
    {"gptvq", LQ_METHOD_GPTVQ, t_vq},
    {"gptvq-int8cb", LQ_METHOD_GPTVQ, t_vq8},
    {"gptqt", LQ_METHOD_GPTQT, t_bcq},
    {"bcq", LQ_METHOD_BCQ, t_bcq},
    {"bcq-nooff", LQ_METHOD_BCQ, t_bcq_nooff},
    {"aqlm", LQ_METHOD_AQLM, t_aq},
    {"nestquant-e8p", LQ_METHOD_NESTQUANT, t_e8p},
    {"nestquant-e8p-g", LQ_METHOD_NESTQUANT, t_e8p_g},
};

/* fuzz_products seed: the .lqt bytes of `src` plus its 4-byte control
 * trailer (fuzz_products.c); variants alternate the trailer's options. */
static lq_status products_seed(const char *dir, const char *name, const char *src, size_t v)
{
    FILE *f = fopen(src, "rb");
    if (!f) return LQ_ERR_IO;
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 4, f);
    fclose(f);
    const uint8_t ctl[4] = {(uint8_t)(v % 16), (uint8_t)(v % 3), 150, (uint8_t)v};
    memcpy(buf + n, ctl, 4);
    raw(dir, "products", name, buf, n + 4, NULL, 0);
    return LQ_OK;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    mkdir(dir, 0755);
    static float W[R * C], X[N * C], H[C * C];
    for (size_t i = 0; i < R * C; i++) W[i] = 0.05f * rnd() * (1 + 3 * (i % 13 == 0));
    for (size_t i = 0; i < N * C; i++) X[i] = rnd() + 0.5f * rnd() * (float)(i % C % 5);
    /* One thread and no pool: the children below are forked from this
     * process, and a fork keeps only the calling thread. */
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.n_threads = 1;
    lq_ctx *ctx;
    if (lq_ctx_create(&cfg, &ctx) != LQ_OK) return 1;
    lq_hessian *h;
    if (lq_hessian_create(ctx, C, &h) != LQ_OK || lq_hessian_add(ctx, h, X, N, C) != LQ_OK ||
        lq_hessian_get(h, H) != LQ_OK)
        return 1;
    lq_hessian_free(h);

    /* .lqt: one file per variant (both harnesses), and one with several
     * tensors. Each variant runs in a child process, so a method that
     * crashes (a sanitizer report, printed) costs only its own seeds. */
    char p[512], q[512];
    size_t made = 0;
    for (size_t v = 0; v < sizeof g_variants / sizeof g_variants[0]; v++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) return 1;
        if (pid == 0) {
            lq_method m;
            lq_method_init(&m, g_variants[v].kind);
            g_variants[v].tweak(&m);
            lq_qtensor *t = NULL;
            lq_status st = lq_quantize(ctx, W, R, C, H, &m, &t, NULL);
            if (st != LQ_OK) {
                fprintf(stderr, "gen_corpus: %s: %s (skipped)\n", g_variants[v].name,
                        lq_status_str(st));
                _exit(3);
            }
            char name[64];
            snprintf(name, sizeof name, "gen-%s.lqt", g_variants[v].name);
            path(p, sizeof p, dir, "lqt", name);
            path(q, sizeof q, dir, "qtensor", name);
            st = lq_qtensor_save(ctx, t, g_variants[v].name, p);
            if (st == LQ_OK) st = lq_qtensor_save(ctx, t, g_variants[v].name, q);
            if (st == LQ_OK) st = products_seed(dir, name, q, v);
            lq_qtensor_free(t);
            _exit(st == LQ_OK ? 0 : 4);
        }
        int ws = 0;
        if (waitpid(pid, &ws, 0) != pid) return 1;
        if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0)
            made++;
        else if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 3)
            fprintf(stderr,
                    "gen_corpus: WARNING: variant %s crashed or failed (status %d); "
                    "its seeds are missing\n",
                    g_variants[v].name, ws);
    }
    /* A file with several tensors, made by reading seeds back. */
    lq_lqt_writer *multi = NULL;
    path(p, sizeof p, dir, "lqt", "gen-multi.lqt");
    if (lq_lqt_writer_open(ctx, p, &multi) != LQ_OK) return 1;
    size_t in_multi = 0;
    for (size_t v = 0; v < sizeof g_variants / sizeof g_variants[0] && in_multi < 3; v++) {
        char name[64];
        snprintf(name, sizeof name, "gen-%s.lqt", g_variants[v].name);
        path(q, sizeof q, dir, "qtensor", name);
        lq_qtensor *t = NULL;
        if (lq_qtensor_load(ctx, q, NULL, 0, &t) != LQ_OK) continue;
        if (lq_lqt_writer_add(multi, g_variants[v].name, t) == LQ_OK) in_multi++;
        lq_qtensor_free(t);
    }
    if (lq_lqt_writer_finish(multi) != LQ_OK) return 1;

    /* Version 2: a whole model (metadata, float tensors 2-D and 1-D, one
     * quantized tensor read back from a seed), floats only, metadata only. */
    lq_lqt_writer *v2 = NULL;
    path(p, sizeof p, dir, "lqt", "gen-model.lqt");
    if (lq_lqt_writer_open(ctx, p, &v2) != LQ_OK) return 1;
    if (lq_lqt_writer_add_meta(v2, "general.architecture", "llama") != LQ_OK ||
        lq_lqt_writer_add_meta(v2, "general.name", "gen \xc3\xa9\n") != LQ_OK ||
        lq_lqt_writer_add_f32(v2, "tok_embeddings.weight", 8, 16, W) != LQ_OK ||
        lq_lqt_writer_add_f32(v2, "norm.weight", 1, 16, W + 128) != LQ_OK ||
        lq_lqt_writer_add_meta(v2, "empty", "") != LQ_OK)
        return 1;
    for (size_t v = 0; v < sizeof g_variants / sizeof g_variants[0]; v++) {
        char name[64];
        snprintf(name, sizeof name, "gen-%s.lqt", g_variants[v].name);
        path(q, sizeof q, dir, "qtensor", name);
        lq_qtensor *t = NULL;
        if (lq_qtensor_load(ctx, q, NULL, 0, &t) != LQ_OK) continue;
        lq_status st = lq_lqt_writer_add(v2, "layers.0.attention.wq.weight", t);
        lq_qtensor_free(t);
        if (st == LQ_OK) break;
    }
    if (lq_lqt_writer_add_f32(v2, "output.bias", 1, 3, W + 200) != LQ_OK ||
        lq_lqt_writer_finish(v2) != LQ_OK)
        return 1;
    path(p, sizeof p, dir, "lqt", "gen-f32.lqt");
    if (lq_lqt_writer_open(ctx, p, &v2) != LQ_OK ||
        lq_lqt_writer_add_f32(v2, "w", 3, 5, W) != LQ_OK || lq_lqt_writer_finish(v2) != LQ_OK)
        return 1;
    path(p, sizeof p, dir, "lqt", "gen-meta.lqt");
    if (lq_lqt_writer_open(ctx, p, &v2) != LQ_OK || lq_lqt_writer_add_meta(v2, "k", "v") != LQ_OK ||
        lq_lqt_writer_add_meta(v2, "tokenizer.model", "gpt2") != LQ_OK ||
        lq_lqt_writer_finish(v2) != LQ_OK)
        return 1;

    /* safetensors */
    lq_tensor_desc d[4] = {
        {"model.layers.0.mlp.weight", LQ_DTYPE_F32, 2, {4, 8}, W},
        {"h16", LQ_DTYPE_F16, 2, {3, 5}, W + 32},
        {"b16", LQ_DTYPE_BF16, 1, {7}, W + 64},
        {"s", LQ_DTYPE_F32, 0, {0}, W + 80},
    };
    path(p, sizeof p, dir, "safetensors", "gen-writer.safetensors");
    if (lq_safetensors_write(NULL, p, d, 4) != LQ_OK) return 1;
    path(p, sizeof p, dir, "safetensors", "gen-empty.safetensors");
    if (lq_safetensors_write(NULL, p, d, 0) != LQ_OK) return 1;
    const char *js = "{\"__metadata__\":{\"format\":\"pt\",\"k\\u00e9\":\"\\ud83d\\ude00\\n\"},"
                     "\"a\\\"b\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
                     "\"i\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[8,12]}}  ";
    uint8_t len8[8];
    size_t jl = strlen(js);
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)jl >> (8 * i));
    uint8_t buf[8 + 512];
    memcpy(buf, len8, 8);
    memcpy(buf + 8, js, jl);
    raw(dir, "safetensors", "gen-meta.safetensors", buf, 8 + jl, W, 12);

    /* npy */
    lq_tensor_desc n2 = {"x", LQ_DTYPE_F32, 2, {4, 6}, W};
    path(p, sizeof p, dir, "npy", "gen-f4.npy");
    if (lq_npy_write(NULL, p, &n2) != LQ_OK) return 1;
    n2.dtype = LQ_DTYPE_F16;
    n2.ndim = 1;
    path(p, sizeof p, dir, "npy", "gen-f2.npy");
    if (lq_npy_write(NULL, p, &n2) != LQ_OK) return 1;
    const char *h3 = "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2, 1), }    \n";
    size_t hl = strlen(h3);
    uint8_t pre[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', 3, 0, (uint8_t)hl, 0, 0, 0};
    memcpy(buf, pre, 12);
    memcpy(buf + 12, h3, hl);
    raw(dir, "npy", "gen-v3.npy", buf, 12 + hl, W, 8);
    const char *h2 = "{'descr': '<i4', 'fortran_order': True, 'shape': (3,), }\n";
    hl = strlen(h2);
    uint8_t pre2[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, (uint8_t)hl, 0, 0, 0};
    memcpy(buf, pre2, 12);
    memcpy(buf + 12, h2, hl);
    raw(dir, "npy", "gen-v2.npy", buf, 12 + hl, W, 12);
    /* model inputs of the lq program (fuzz_model: the first byte picks the parser) */
    {
        static const char cfg[] = "\0{\"model_type\": \"llama\", \"hidden_size\": 8, "
                                  "\"intermediate_size\": 16, \"num_hidden_layers\": 1, "
                                  "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, "
                                  "\"vocab_size\": 4, \"rope_theta\": 10000.0, "
                                  "\"rope_scaling\": null, \"weight_map\": {\"a\": \"b\\u00e9\"}}";
        raw(dir, "model", "gen-config.json", cfg, sizeof cfg - 1, NULL, 0);
        /* llama2.c: dim 8, hidden 16, 1 layer, 2 heads / 1 kv head, vocab 4, seq_len 4 */
        int32_t hdr[7] = {8, 16, 1, 2, 1, 4, 4};
        size_t nf = 4 * 8 + 8 + 8 * 8 + 2 * 4 * 8 + 8 * 8 + 8 + 3 * 16 * 8 + 8 + 4 * 2;
        float *w = calloc(nf, sizeof *w);
        unsigned char *mb = malloc(1 + 28 + nf * 4);
        if (!w || !mb) return 1;
        for (size_t i = 0; i < nf; i++) w[i] = 0.1f * rnd();
        mb[0] = 1;
        memcpy(mb + 1, hdr, 28);
        memcpy(mb + 29, w, nf * 4);
        raw(dir, "model", "gen-llama2c.bin", mb, 29 + nf * 4, NULL, 0);
        free(mb);
        free(w);
        /* tokenizer: 3 specials and the 256 byte tokens */
        static unsigned char tok[1 + 4 + 259 * 16];
        size_t tn = 0;
        tok[tn++] = 2;
        int32_t maxlen = 6;
        memcpy(tok + tn, &maxlen, 4);
        tn += 4;
        for (int i = 0; i < 259; i++) {
            char name[8];
            int32_t len = i < 3 ? (int32_t)snprintf(name, sizeof name, "%c", "ub "[i])
                                : (int32_t)snprintf(name, sizeof name, "<0x%02X>", i - 3);
            float sc = (float)-i;
            memcpy(tok + tn, &sc, 4);
            memcpy(tok + tn + 4, &len, 4);
            memcpy(tok + tn + 8, name, (size_t)len);
            tn += 8 + (size_t)len;
        }
        raw(dir, "model", "gen-tokenizer.bin", tok, tn, NULL, 0);
        static const char txt[] = "\3Once upon a time, there was a little girl named Lily.\n\n"
                                  "Once there was a caf\xc3\xa9 \xe2\x82\xac.\n";
        raw(dir, "model", "gen-text.txt", txt, sizeof txt - 1, NULL, 0);
    }
    lq_ctx_destroy(ctx);
    printf("gen_corpus: %zu quantized seeds in %s\n", made, dir);
    return made ? 0 : 1;
}
