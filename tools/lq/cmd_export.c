/* lq export --gguf: a model (a complete-model .lqt, or a float llama2.c /
 * Hugging Face model) as a GGUF file for llama.cpp (gguf_export.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gguf_export.h"

static const char *g_usage =
    "lq export --gguf --tokenizer TOK.bin [options] IN.lqt OUT.gguf\n"
    "  IN: a complete model written by lq quantize on a model (or a float llama2.c\n"
    "  checkpoint / Hugging Face model); TOK: its llama2.c tokenizer.bin. OUT loads in\n"
    "  llama.cpp (architecture llama). INT layers of 4, 5 or 8 bits in groups of 32 with\n"
    "  fp16 scales become Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 blocks that dequantize to exactly\n"
    "  libquant's W_hat (lq quantize --method int --gguf-compatible TYPE makes such\n"
    "  layers); any other quantized layer is an error unless --float-fallback. Float\n"
    "  tensors are F32 (exact); --f16 writes the 2-D ones as F16. q/k rows are put\n"
    "  back in the interleaved order llama.cpp expects (docs/formats.md section 4).";

int lq_cmd_export(int argc, char **argv)
{
    int gguf = 0, f16 = 0, fallback = 0;
    const char *tokp = NULL, *name = NULL;
    const lq_opt opts[] = {
        {"gguf", LQ_OPT_FLAG, "write GGUF (the one export format)", &gguf},
        {"tokenizer", LQ_OPT_STR, "the model's llama2.c tokenizer.bin (required)", &tokp},
        {"f16", LQ_OPT_FLAG, "2-D float tensors as F16 (rounded) instead of F32", &f16},
        {"float-fallback", LQ_OPT_FLAG,
         "write layers with no exact GGUF type as their W_hat in float", &fallback},
        {"name", LQ_OPT_STR, "general.name (default: libquant)", &name},
    };
    char *pos[2];
    size_t npos = 0;
    int r = lq_cli_parse(argc, argv, g_usage, opts, sizeof opts / sizeof opts[0], pos, 2, &npos);
    if (r <= 0) return r < 0 ? 2 : 0;
    if (npos != 2 || !gguf) {
        fprintf(stderr, "usage: %s\n", g_usage);
        return 2;
    }
    if (!tokp) {
        fprintf(stderr, "error: --tokenizer TOK.bin is required: llama.cpp needs the vocabulary "
                        "in the file\n");
        return 2;
    }
    if (lq_cli_same_file(pos[0], pos[1]) || lq_cli_same_file(tokp, pos[1])) {
        fprintf(stderr, "error: %s is also an input: refusing to overwrite it\n", pos[1]);
        return 2;
    }
    lq_ctx *ctx;
    lq_status st = lq_ctx_create(NULL, &ctx);
    if (st != LQ_OK) return lq_cli_fail("context", st);
    int rc = 1;
    lq_llama *m = NULL;
    lq_tokenizer *tok = NULL;
    lq_lqt *f = NULL;
    if (lq_llama_load(ctx, pos[0], &m) != LQ_OK) goto out;
    if ((st = lq_tok_load(tokp, m->cfg.vocab, &tok)) != LQ_OK) {
        fprintf(stderr, "error: %s: %s%s\n", tokp, lq_status_str(st),
                st == LQ_ERR_INVALID_ARG ? " (not a tokenizer of this model's vocabulary)" : "");
        goto out;
    }
    /* provenance from a .lqt's metadata, under libquant.* */
    const char *meta[8];
    size_t nmeta = 0;
    meta[nmeta * 2] = "libquant.version";
    meta[nmeta++ * 2 + 1] = lq_version();
    if (lq_lqt_open(ctx, pos[0], LQ_LQT_MMAP, &f) == LQ_OK) {
        static const char *const keys[] = {"libquant.method", "libquant.calibration"};
        for (size_t i = 0; i < 2; i++) {
            const char *v;
            if (lq_lqt_meta_find(f, keys[i], &v) == LQ_OK) {
                meta[nmeta * 2] = keys[i];
                meta[nmeta++ * 2 + 1] = v;
            }
        }
    }
    lq_gguf_export_opts eo = {f16, fallback, name, meta, nmeta};
    double t0 = lq_cli_now();
    if (lq_llama_save_gguf(ctx, m, tok, pos[1], &eo) != LQ_OK) goto out;
    printf("%s -> %s (GGUF v3, llama, %zu layers) in %.2f s\n", pos[0], pos[1], m->cfg.n_layers,
           lq_cli_now() - t0);
    rc = 0;
out:
    lq_lqt_close(f);
    lq_tok_free(tok);
    lq_llama_free(m);
    lq_ctx_destroy(ctx);
    return rc;
}
