/* lq eval: perplexity of a model (fp32 or quantized) on a text, with the KL
 * divergence and top-1 agreement to a reference model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actq.h"
#include "cli.h"
#include "eval.h"

static const char *g_usage =
    "lq eval MODEL_OR_LQT --tokenizer TOK --text FILE [--ref FP_MODEL] [--chunks N] [--json]\n"
    "  Perplexity on FILE: the text is encoded once and cut into consecutive chunks of\n"
    "  seq_len tokens, each starting with BOS; every position after the first is scored,\n"
    "  ppl = exp(mean NLL) (--protocol docs: one chunk per story, see docs/benchmarks.md).\n"
    "  With --ref: mean KL(ref || model) per token and top-1 agreement. MODEL is a\n"
    "  llama2.c .bin, a Hugging Face folder or .safetensors, or a .lqt from lq quantize.\n"
    "  --act-bits / --kv-bits quantize the inputs of every linear layer and the KV cache\n"
    "  (NestQuant lattice codes with Hadamard rotation, or --act-quant int: per-group absmax;\n"
    "  docs/design.md, \"Activation and KV-cache quantization\").";

int lq_cmd_eval(int argc, char **argv)
{
    const char *tok = NULL, *text = NULL, *refp = NULL, *proto = "stream";
    size_t chunks = 0, threads = 0;
    int json = 0, fast = 0, aq_on = 0;
    lq_actq_cli aqc;
    lq_actq_cli_init(&aqc);
    lq_actq aq;
    memset(&aq, 0, sizeof aq);
    const lq_opt opts[] = {
        LQ_ACTQ_OPTS(&aqc),
        {"tokenizer", LQ_OPT_STR, "llama2.c tokenizer.bin", &tok},
        {"text", LQ_OPT_STR, "evaluation text (UTF-8)", &text},
        {"ref", LQ_OPT_STR, "reference model for KL and top-1", &refp},
        {"chunks", LQ_OPT_SIZE, "score only the first N chunks (0: all)", &chunks},
        {"protocol", LQ_OPT_STR, "stream (default) or docs", &proto},
        {"fast", LQ_OPT_FLAG, "FAST products (int8 activations) instead of EXACT", &fast},
        {"threads", LQ_OPT_SIZE, "threads (0: all physical cores)", &threads},
        {"json", LQ_OPT_FLAG, "print the result as JSON", &json},
    };
    char *pos[1];
    size_t npos = 0;
    int r = lq_cli_parse(argc, argv, g_usage, opts, sizeof opts / sizeof opts[0], pos, 1, &npos);
    if (r <= 0) return r < 0 ? 2 : 0;
    if (npos != 1 || !tok || !text) {
        fprintf(stderr, "usage: %s\n", g_usage);
        return 2;
    }
    lq_protocol p;
    if (!strcmp(proto, "stream"))
        p = LQ_PROTO_STREAM;
    else if (!strcmp(proto, "docs"))
        p = LQ_PROTO_DOCS;
    else {
        fprintf(stderr, "error: --protocol is stream or docs\n");
        return 2;
    }
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.n_threads = threads;
    lq_ctx *ctx;
    lq_status st = lq_ctx_create(&cfg, &ctx);
    if (st != LQ_OK) return lq_cli_fail("context", st);
    int rc = 1;
    lq_llama *m = NULL, *ref = NULL;
    lq_tokenizer *t = NULL;
    lq_chunks ch = {0};
    char *txt = NULL;
    size_t n;
    if (lq_llama_load(ctx, pos[0], &m) != LQ_OK) goto out;
    if (refp && lq_llama_load(ctx, refp, &ref) != LQ_OK) goto out;
    if (ref && (ref->cfg.vocab != m->cfg.vocab)) {
        fprintf(stderr, "error: the reference has %zu tokens, the model %zu\n", ref->cfg.vocab,
                m->cfg.vocab);
        goto out;
    }
    if ((st = lq_tok_load(tok, m->cfg.vocab, &t)) != LQ_OK) {
        fprintf(stderr, "error: %s: %s%s\n", tok, lq_status_str(st),
                st == LQ_ERR_INVALID_ARG ? " (the tokenizer does not match the model's vocabulary)"
                                         : "");
        goto out;
    }
    if (!(txt = lq_text_load(text, &n))) goto out;
    if ((st = lq_chunks_make(t, txt, n, p, m->cfg.seq_len, chunks, &ch)) != LQ_OK) {
        fprintf(stderr, "error: %s: %s\n", text,
                st == LQ_ERR_INVALID_ARG ? "nothing to score" : lq_status_str(st));
        goto out;
    }
    lq_run_opts ro = {fast ? LQ_KERNEL_FAST : LQ_KERNEL_EXACT, 0};
    if (lq_actq_cli_setup(ctx, &aqc, m, t, &ro, &aq, &aq_on)) goto out;
    lq_eval_result res;
    if ((st = lq_eval_run(ctx, m, ref, &ro, &ch, &res)) != LQ_OK) {
        lq_cli_fail("evaluation", st);
        goto out;
    }
    double bpw, abits = 32, kvbits = 32;
    size_t nq;
    lq_llama_bits(m, &bpw, &nq);
    if (aq_on) lq_actq_bits(&aq, &abits, &kvbits);
    const char *aqk = !aq_on ? "none" : aq.set.kind == LQ_AQ_INT ? "int" : "nestquant";
    double tps = res.seconds > 0 ? (double)res.tokens / res.seconds : 0;
    if (json) {
        printf("{\"model\":\"%s\",\"quantized_layers\":%zu,\"bits_per_weight\":%.6f,"
               "\"protocol\":\"%s\",\"chunks\":%zu,\"tokens\":%zu,\"nll\":%.8f,\"ppl\":%.8f,",
               m->source, nq, bpw, proto, res.chunks, res.tokens, res.nll, res.ppl);
        if (ref) printf("\"kl\":%.8f,\"top1\":%.6f,", res.kl, res.top1);
        printf("\"act_quant\":\"%s\",\"act_bits\":%u,\"kv_bits\":%u,\"key_bits\":%u,"
               "\"act_bits_per_entry\":%.4f,\"kv_bits_per_entry\":%.4f,\"act_overload\":%zu,",
               aqk, aq_on ? aq.set.act_bits : 16, aq_on ? aq.set.kv_bits : 16,
               aq_on ? aq.set.key_bits : 16, abits, kvbits, aq.n_overload);
        printf(
            "\"seconds\":%.4f,\"cpu_seconds\":%.4f,\"tokens_per_second\":%.1f,\"mode\":\"%s\"}\n",
            res.seconds, res.cpu_seconds, tps, fast ? "fast" : "exact");
    } else {
        printf("model:       %s (%s), %zu of %zu linear layers quantized, %.3f bits/weight\n",
               pos[0], m->source, nq, m->cfg.n_layers * LQ_LIN_COUNT, bpw);
        printf("text:        %s, %s protocol, %zu chunks, %zu tokens scored\n", text, proto,
               res.chunks, res.tokens);
        printf("perplexity:  %.4f (mean NLL %.5f nats)\n", res.ppl, res.nll);
        if (ref)
            printf("vs ref:      KL %.6f nats/token, top-1 agreement %.4f\n", res.kl, res.top1);
        if (aq_on)
            printf(
                "act/KV:      %s, activations %u bits (%.3f stored bits/entry), KV %u bits "
                "(keys %u; %.3f stored bits/entry), %zu of %zu activation 8-vectors overloaded\n",
                aqk, aq.set.act_bits, abits, aq.set.kv_bits, aq.set.key_bits, kvbits, aq.n_overload,
                aq.n_vectors);
        printf("speed:       %.0f tokens/s (%.2f s wall, %.2f s CPU, %s products)\n", tps,
               res.seconds, res.cpu_seconds, fast ? "FAST" : "EXACT");
    }
    rc = 0;
out:
    lq_chunks_free(&ch);
    free(txt);
    lq_tok_free(t);
    lq_actq_free(&aq);
    lq_llama_free(m);
    lq_llama_free(ref);
    lq_ctx_destroy(ctx);
    return rc;
}
