/* lq dequantize: every tensor of an .lqt file back to float, as one
 * safetensors file with the names kept; with --config, a Hugging Face
 * config.json for a complete model beside it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "json.h"

static const char *g_usage =
    "lq dequantize IN.lqt OUT.safetensors [--dtype f32|f16|bf16] [--config]\n"
    "  Quantized tensors become their W_hat (lq_dequantize), float entries are copied;\n"
    "  entries of one row (norms) are written 1-D. --config also writes a Hugging Face\n"
    "  config.json next to OUT when IN is a complete model (lq quantize on a model).";

static int write_config(const char *out, const char *cj)
{
    lq_json *root = lq_json_parse(cj, strlen(cj));
    if (!root) {
        fprintf(stderr, "error: malformed llama.config metadata\n");
        return 1;
    }
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s", out);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "error: cannot write %s\n", path);
        lq_json_free(root);
        return 1;
    }
#define N(k) (lq_json_get(root, k) ? lq_json_get(root, k)->num : 0)
    const lq_json *tie = lq_json_get(root, "tied_embeddings");
    fprintf(
        f,
        "{\n \"architectures\": [\"LlamaForCausalLM\"],\n \"model_type\": \"llama\",\n"
        " \"hidden_size\": %.0f,\n \"intermediate_size\": %.0f,\n \"num_hidden_layers\": %.0f,\n"
        " \"num_attention_heads\": %.0f,\n \"num_key_value_heads\": %.0f,\n \"head_dim\": %.0f,\n"
        " \"vocab_size\": %.0f,\n \"max_position_embeddings\": %.0f,\n \"rms_norm_eps\": %.9g,\n"
        " \"rope_theta\": %.9g,\n \"hidden_act\": \"silu\",\n \"tie_word_embeddings\": %s,\n"
        " \"bos_token_id\": 1,\n \"eos_token_id\": 2\n}\n",
        N("dim"), N("hidden_dim"), N("n_layers"), N("n_heads"), N("n_kv_heads"), N("head_dim"),
        N("vocab_size"), N("seq_len"), N("norm_eps"), N("rope_theta"),
        tie && tie->type == LQ_JSON_BOOL && tie->num ? "true" : "false");
#undef N
    lq_json_free(root);
    if (fclose(f)) {
        fprintf(stderr, "error: writing %s failed\n", path);
        return 1;
    }
    return 0;
}

int lq_cmd_dequantize(int argc, char **argv)
{
    const char *dt = "f32";
    int config = 0;
    const lq_opt opts[] = {
        {"dtype", LQ_OPT_STR, "f32 (default), f16 or bf16", &dt},
        {"config", LQ_OPT_FLAG, "write a Hugging Face config.json beside OUT", &config},
    };
    char *pos[2];
    size_t npos = 0;
    int r = lq_cli_parse(argc, argv, g_usage, opts, sizeof opts / sizeof opts[0], pos, 2, &npos);
    if (r <= 0) return r < 0 ? 2 : 0;
    if (npos != 2) {
        fprintf(stderr, "usage: %s\n", g_usage);
        return 2;
    }
    lq_dtype dtype = !strcmp(dt, "f32")    ? LQ_DTYPE_F32
                     : !strcmp(dt, "f16")  ? LQ_DTYPE_F16
                     : !strcmp(dt, "bf16") ? LQ_DTYPE_BF16
                                           : LQ_DTYPE_UNKNOWN;
    if (dtype == LQ_DTYPE_UNKNOWN) {
        fprintf(stderr, "error: --dtype is f32, f16 or bf16\n");
        return 2;
    }
    if (lq_cli_same_file(pos[0], pos[1])) {
        fprintf(stderr, "error: %s is also the input: refusing to overwrite it\n", pos[1]);
        return 2;
    }
    lq_ctx *ctx;
    lq_status st = lq_ctx_create(NULL, &ctx);
    if (st != LQ_OK) return lq_cli_fail("context", st);
    int rc = 1;
    lq_lqt *f = NULL;
    lq_tensor_desc *td = NULL;
    float **bufs = NULL;
    size_t n = 0;
    if ((st = lq_lqt_open(ctx, pos[0], LQ_LQT_MMAP, &f)) != LQ_OK) {
        fprintf(stderr, "error: %s: %s\n", pos[0], lq_status_str(st));
        goto out;
    }
    n = lq_lqt_count(f);
    if (n == 0) {
        fprintf(stderr, "error: %s holds no tensor\n", pos[0]);
        goto out;
    }
    td = calloc(n, sizeof *td);
    bufs = calloc(n, sizeof *bufs);
    if (!td || !bufs) {
        lq_cli_fail("memory", LQ_ERR_NO_MEMORY);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        lq_lqt_info in;
        if ((st = lq_lqt_info_get(f, i, &in)) != LQ_OK) goto fail;
        float *buf = malloc(in.rows * in.cols * sizeof *buf);
        if (!buf) {
            st = LQ_ERR_NO_MEMORY;
            goto fail;
        }
        bufs[i] = buf;
        td[i].data = buf;
        td[i].name = in.name;
        td[i].dtype = dtype;
        if (in.format == LQ_LQT_FORMAT_F32) {
            if ((st = lq_lqt_read_f32(f, i, buf, in.rows * in.cols)) != LQ_OK) goto fail;
        } else {
            lq_qtensor *q;
            if ((st = lq_lqt_load(ctx, f, i, 0, &q)) != LQ_OK) goto fail;
            st = lq_dequantize(ctx, q, buf);
            lq_qtensor_free(q);
            if (st != LQ_OK) goto fail;
        }
        if (in.rows == 1 && in.format == LQ_LQT_FORMAT_F32) {
            td[i].ndim = 1;
            td[i].shape[0] = in.cols;
        } else {
            td[i].ndim = 2;
            td[i].shape[0] = in.rows;
            td[i].shape[1] = in.cols;
        }
        continue;
    fail:
        fprintf(stderr, "error: %s: tensor '" LQ_CLIP_FMT "': %s\n", pos[0], LQ_CLIP(in.name),
                lq_status_str(st));
        goto out;
    }
    if ((st = lq_safetensors_write(ctx, pos[1], td, n)) != LQ_OK) {
        fprintf(stderr, "error: %s: %s\n", pos[1], lq_status_str(st));
        goto out;
    }
    const char *cj;
    if (config) {
        if (lq_lqt_meta_find(f, "llama.config", &cj) != LQ_OK) {
            fprintf(stderr, "error: %s is not a complete model: no configuration to write\n",
                    pos[0]);
            goto out;
        }
        if (write_config(pos[1], cj)) goto out;
    }
    printf("%zu tensors -> %s (%s)\n", n, pos[1], dt);
    rc = 0;
out:
    for (size_t i = 0; bufs && i < n; i++) free(bufs[i]);
    free(bufs);
    free(td);
    lq_lqt_close(f);
    lq_ctx_destroy(ctx);
    return rc;
}
