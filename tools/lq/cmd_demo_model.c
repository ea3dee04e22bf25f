/*
 * lq demo: the main job. The real llama2.c TinyStories model shipped in
 * tests/data/realmodel (dim 64, 5 layers, 35 linear layers of 64 or 192
 * input columns) is quantized by every method at about 2, 3 and 4 bits per
 * weight with sequential calibration on real text, then run on the codes:
 * one table with bits/weight (every side information counted, over the 35
 * linear layers; the embedding/classifier and norms stay float), perplexity
 * and its ratio to fp32, KL divergence to fp32, top-1 agreement, quantize
 * seconds and tokens/s through the kernels. `lq demo --synthetic` is the
 * older one-layer demo.
 *
 * The configurations (one table below; docs/benchmarks.md says why) depend
 * on the layer widths. Narrow models (dim < 256, as the shipped one: 64
 * columns) pay heavily for every per-group or per-codebook cost: INT groups
 * of 32, BCQ/GPTQT groups of 64, GPTVQ 2-D codes with int8 codebooks per 64
 * columns x 2^(2b) rows (the whole layer when it has fewer rows), AQLM with
 * 16-entry codebooks of 4-vectors (codes sit in byte containers, so M
 * codebooks cost 2M bits per weight; one 256-entry codebook of 8-vectors
 * alone would cost 8 bits per weight of a 64 x 64 layer).
 * Wide models (student-d512: 512 and 1536 columns) use the methods' usual
 * settings: INT/BCQ/GPTQT groups of 128, GPTVQ codebooks per 256 columns,
 * AQLM M codebooks of 256 8-dimensional vectors.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib.h"
#include "cli.h"
#include "eval.h"
#include "methodopt.h"

#ifndef LQ_SOURCE_DIR
#define LQ_SOURCE_DIR "."
#endif
#define DEMO_DATA LQ_SOURCE_DIR "/tests/data/realmodel/"

typedef struct demo_cfg {
    const char *method; /* lq_cli_method_kind name */
    const char *label;
    unsigned bits; /* nominal */
    void (*setup)(lq_method *m, unsigned bits, int narrow);
} demo_cfg;

static void s_int_rtn(lq_method *m, unsigned b, int narrow)
{
    m->u.int_.bits = b;
    m->u.int_.group = narrow ? 32 : 128;
    m->engine.rtn = 1;
}
static void s_int(lq_method *m, unsigned b, int narrow)
{
    m->u.int_.bits = b;
    m->u.int_.group = narrow ? 32 : 128;
    m->u.int_.mse_clip = 1;
}
static void s_nq(lq_method *m, unsigned b, int narrow)
{
    (void)narrow;
    /* (q, K): ceil(8 log2 q) + log2 K bits per 8 weights, plus scales */
    static const unsigned q[] = {4, 6, 12}, k[] = {2, 8, 8};
    unsigned i = b <= 2 ? 0 : b == 3 ? 1 : 2;
    m->u.nestquant.q = q[i];
    m->u.nestquant.n_betas = k[i];
}
static void s_vq(lq_method *m, unsigned b, int narrow)
{
    m->u.gptvq.dim = 2;
    m->u.gptvq.index_bits = 2 * b;
    m->u.gptvq.group_cols = narrow ? 64 : 256;
    m->u.gptvq.group_rows = (size_t)1 << (2 * b);
    m->u.gptvq.codebook_bits = 8;
    m->u.gptvq.em_iters = 25;
}
static void s_bcq(lq_method *m, unsigned b, int narrow)
{
    m->u.bcq.k = b;
    m->u.bcq.group = narrow ? 64 : 128;
}
static void s_aq(lq_method *m, unsigned b, int narrow)
{
    /* codes: one byte container per code (B <= 8), M bytes per g weights; a
     * codebook costs 2^B * g values per layer, which on 4096-weight layers
     * forbids B = 8: narrow layers use 16-entry codebooks of 4-vectors (8-vectors
     * measured worse per bit: 2.47x fp32 perplexity at 4.29 bits against 1.80x
     * at 4.71) */
    m->u.aqlm.n_codebooks = b;
    m->u.aqlm.code_bits = narrow ? 4 : 8;
    m->u.aqlm.group = narrow ? 4 : 8;
    m->u.aqlm.beam = 8;
    m->u.aqlm.rounds = 4;
}

static const demo_cfg g_cfgs[] = {
    {"int", "int-rtn", 2, s_int_rtn},
    {"int", "int-rtn", 3, s_int_rtn},
    {"int", "int-rtn", 4, s_int_rtn},
    {"int", "int-gptq", 2, s_int},
    {"int", "int-gptq", 3, s_int},
    {"int", "int-gptq", 4, s_int},
    {"nestquant", "nestquant", 2, s_nq},
    {"nestquant", "nestquant", 3, s_nq},
    {"nestquant", "nestquant", 4, s_nq},
    {"gptvq", "gptvq 2d", 2, s_vq},
    {"gptvq", "gptvq 2d", 3, s_vq},
    {"gptvq", "gptvq 2d", 4, s_vq},
    {"gptqt", "gptqt", 2, s_bcq},
    {"gptqt", "gptqt", 3, s_bcq},
    {"gptqt", "gptqt", 4, s_bcq},
    {"bcq", "bcq", 2, s_bcq},
    {"bcq", "bcq", 3, s_bcq},
    {"bcq", "bcq", 4, s_bcq},
    {"aqlm", "aqlm", 2, s_aq},
    {"aqlm", "aqlm", 3, s_aq},
    {"aqlm", "aqlm", 4, s_aq},
};
#define NCFG (sizeof g_cfgs / sizeof g_cfgs[0])

typedef struct row {
    double bpw, ppl, kl, top1, qsec, tps;
    int ok;
} row;

int lq_cmd_demo(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--synthetic") || !strcmp(argv[i], "--save"))
            return lq_demo_synthetic(argc, argv);
    const char *model = DEMO_DATA "tinystories_d64_l5.bin", *tok = DEMO_DATA "tok512.bin",
               *text = DEMO_DATA "tinystories_val.txt",
               *calib = DEMO_DATA "tinystories_train_head.txt", *methods = NULL, *bits = NULL;
    size_t threads = 0, calib_chunks = 32, eval_chunks = 100, seed = 0;
    int json = 0;
    const lq_opt opts[] = {
        {"model", LQ_OPT_STR, "model (default: the shipped llama2.c model)", &model},
        {"tokenizer", LQ_OPT_STR, "its tokenizer", &tok},
        {"text", LQ_OPT_STR, "evaluation text", &text},
        {"calib-text", LQ_OPT_STR, "calibration text", &calib},
        {"calib-chunks", LQ_OPT_SIZE, "calibration chunks of seq_len tokens (default 32)",
         &calib_chunks},
        {"eval-chunks", LQ_OPT_SIZE, "evaluation chunks (default 100; 0: all)", &eval_chunks},
        {"methods", LQ_OPT_STR, "comma list: int,nestquant,gptvq,gptqt,bcq,aqlm (default all)",
         &methods},
        {"bits", LQ_OPT_STR, "comma list of nominal bits: 2,3,4 (default all)", &bits},
        {"threads", LQ_OPT_SIZE, "threads (0: all physical cores)", &threads},
        {"seed", LQ_OPT_SIZE, "method seed", &seed},
        {"json", LQ_OPT_FLAG, "one JSON line per row", &json},
    };
    int r = lq_cli_parse(argc, argv,
                         "lq demo [options]\n  Every method on the real model at about 2, 3 and 4 "
                         "bits/weight, one table (lq demo --synthetic: the one-layer demo).",
                         opts, sizeof opts / sizeof opts[0], NULL, 0, NULL);
    if (r <= 0) return r < 0 ? 2 : 0;
    if (calib_chunks == 0) {
        fprintf(stderr, "error: --calib-chunks must be at least 1\n");
        return 2;
    }
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.n_threads = threads;
    cfg.seed = seed;
    lq_ctx *ctx;
    lq_status st = lq_ctx_create(&cfg, &ctx);
    if (st != LQ_OK) return lq_cli_fail("context", st);
    int rc = 1;
    lq_llama *fp = NULL;
    lq_tokenizer *t = NULL;
    char *et = NULL, *ct = NULL;
    lq_chunks ev = {0}, ca = {0};
    size_t n;
    double t00 = lq_cli_now();
    if (lq_llama_load(ctx, model, &fp) != LQ_OK) {
        fprintf(stderr, "(lq demo reads the model shipped in the source tree; give --model, "
                        "--tokenizer, --text and --calib-text elsewhere)\n");
        goto out;
    }
    if ((st = lq_tok_load(tok, fp->cfg.vocab, &t)) != LQ_OK) {
        fprintf(stderr, "error: %s: %s\n", tok, lq_status_str(st));
        goto out;
    }
    if (!(et = lq_text_load(text, &n))) goto out;
    if ((st = lq_chunks_make(t, et, n, LQ_PROTO_STREAM, fp->cfg.seq_len, eval_chunks, &ev))) {
        fprintf(stderr, "error: %s: %s\n", text, lq_status_str(st));
        goto out;
    }
    if (!(ct = lq_text_load(calib, &n))) goto out;
    if ((st = lq_chunks_make(t, ct, n, LQ_PROTO_STREAM, fp->cfg.seq_len, calib_chunks, &ca))) {
        fprintf(stderr, "error: %s: %s\n", calib, lq_status_str(st));
        goto out;
    }
    size_t etok = 0, ctok = 0;
    for (size_t i = 0; i < ev.n; i++) etok += ev.len[i] - 1;
    for (size_t i = 0; i < ca.n; i++) ctok += ca.len[i];
    printf("lq demo: %s (%s; dim %zu, %zu layers, %zu linear layers), %zu thread(s), %s kernels\n"
           "  calibration: %zu chunks (%zu tokens) of %s, sequential (GPTQ order)\n"
           "  evaluation:  %zu chunks (%zu tokens scored) of %s, products on the codes (EXACT)\n\n",
           model, fp->source, fp->cfg.dim, fp->cfg.n_layers, fp->cfg.n_layers * LQ_LIN_COUNT,
           lq_ctx_threads(ctx), lq_simd_name(lq_ctx_simd(ctx)), ca.n, ctok, calib, ev.n, etok,
           text);
    /* layer widths decide the groups and codebooks (see the table above) */
    int narrow = fp->cfg.dim < 256;
    lq_run_opts ro = {LQ_KERNEL_EXACT, 0};
    lq_eval_result base;
    if ((st = lq_eval_run(ctx, fp, NULL, &ro, &ev, &base)) != LQ_OK) {
        lq_cli_fail("evaluating the float model", st);
        goto out;
    }
    printf("%-14s %4s %7s %9s %8s %9s %6s %9s %8s %9s\n", "method", "bits", "bits/w", "ppl",
           "ppl/fp32", "KL", "top-1", "quant s", "tok/s", "tok/cpu-s");
    printf("%-14s %4s %7.3f %9.4f %8.4f %9s %6s %9s %8.0f %9.0f\n", "fp32", "-", 32.0, base.ppl,
           1.0, "-", "-", "-", base.seconds > 0 ? (double)base.tokens / base.seconds : 0,
           base.cpu_seconds > 0 ? (double)base.tokens / base.cpu_seconds : 0);
    if (json)
        printf("{\"method\":\"fp32\",\"bits_per_weight\":32,\"ppl\":%.6f,\"tokens\":%zu}\n",
               base.ppl, base.tokens);
    fflush(stdout);
    /* every registered method has demo rows (the registry is the list) */
    for (size_t ri = 0; ri < lq_method_count(); ri++) {
        lq_method_info info;
        size_t k = 0;
        if (lq_method_get_info(ri, &info) != LQ_OK) goto out;
        while (k < NCFG && strcmp(g_cfgs[k].method, info.name)) k++;
        if (k == NCFG) {
            fprintf(stderr, "lq demo: method %s has no demo configuration\n", info.name);
            goto out;
        }
    }
    int failures = 0;
    for (size_t i = 0; i < NCFG; i++) {
        const demo_cfg *c = &g_cfgs[i];
        char bs[4];
        snprintf(bs, sizeof bs, "%u", c->bits);
        if (!lq_cli_in_list(methods, c->method) || !lq_cli_in_list(bits, bs)) continue;
        lq_llama *m = NULL;
        if (lq_llama_load(ctx, model, &m) != LQ_OK) goto out;
        lq_calib_opts co = {0};
        lq_method_kind kind;
        if (lq_cli_method_kind(c->method, &kind)) {
            lq_llama_free(m);
            goto out;
        }
        lq_method_init(&co.method, kind);
        c->setup(&co.method, c->bits, narrow);
        double t0 = lq_cli_now();
        st = lq_calibrate(ctx, m, &ca, &co, NULL);
        double qs = lq_cli_now() - t0;
        lq_eval_result er;
        if (st == LQ_OK) st = lq_eval_run(ctx, m, fp, &ro, &ev, &er);
        if (st != LQ_OK) {
            printf("%-14s %4u   failed: %s\n", c->label, c->bits, lq_status_str(st));
            lq_llama_free(m);
            failures++;
            continue;
        }
        double bpw;
        lq_llama_bits(m, &bpw, NULL);
        double tps = er.seconds > 0 ? (double)er.tokens / er.seconds : 0,
               tpc = er.cpu_seconds > 0 ? (double)er.tokens / er.cpu_seconds : 0;
        printf("%-14s %4u %7.3f %9.4f %8.4f %9.5f %6.3f %9.2f %8.0f %9.0f\n", c->label, c->bits,
               bpw, er.ppl, er.ppl / base.ppl, er.kl, er.top1, qs, tps, tpc);
        if (json)
            printf("{\"method\":\"%s\",\"label\":\"%s\",\"bits\":%u,\"bits_per_weight\":%.6f,"
                   "\"ppl\":%.6f,\"ppl_ratio\":%.6f,\"kl\":%.6f,\"top1\":%.6f,"
                   "\"quantize_seconds\":%.3f,\"tokens_per_second\":%.1f,"
                   "\"tokens_per_cpu_second\":%.1f}\n",
                   c->method, c->label, c->bits, bpw, er.ppl, er.ppl / base.ppl, er.kl, er.top1, qs,
                   tps, tpc);
        fflush(stdout);
        lq_llama_free(m);
    }
    printf("\nbits/w: every scale, zero, codebook and index counted, over the linear layers "
           "(embedding and norms stay fp32).\nppl: exp(mean NLL) over consecutive %zu-token chunks "
           "each starting with BOS; KL(fp32 || quantized) per token.\ntok/s: scored tokens per "
           "second of the forward passes (batches of %zu tokens through lq_matmul), wall and CPU "
           "time. %.1f s in all.\n",
           fp->cfg.seq_len, fp->cfg.seq_len, lq_cli_now() - t00);
    rc = failures ? 1 : 0;
out:
    lq_chunks_free(&ev);
    lq_chunks_free(&ca);
    free(et);
    free(ct);
    lq_tok_free(t);
    lq_llama_free(fp);
    lq_ctx_destroy(ctx);
    return rc;
}
