/* lq generate: text from a model (fp32 or quantized), greedy or sampled. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actq.h"
#include "cli.h"
#include "model.h"
#include "tokenizer.h"

static const char *g_usage =
    "lq generate MODEL_OR_LQT --tokenizer TOK [--prompt S] [-n N] [--temp T] [--seed S]\n"
    "  Greedy (--temp 0, the default) or sampled continuation of BOS + the prompt; the\n"
    "  prompt is processed as one batch (lq_matmul), then one token at a time (lq_matvec).\n"
    "  Stops after N tokens (default 64), at the end of the context, or at BOS/EOS.\n"
    "  --act-bits / --kv-bits: quantized activations and KV cache of codes (as lq eval).";

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int pick(const float *lg, size_t V, double temp, uint64_t *rng)
{
    size_t am = 0;
    for (size_t i = 1; i < V; i++)
        if (lg[i] > lg[am]) am = i;
    if (temp <= 0) return (int)am;
    double sum = 0, u = (double)(splitmix(rng) >> 11) * 0x1p-53;
    for (size_t i = 0; i < V; i++) sum += exp(((double)lg[i] - lg[am]) / temp);
    double acc = 0;
    for (size_t i = 0; i < V; i++) {
        acc += exp(((double)lg[i] - lg[am]) / temp) / sum;
        if (u < acc) return (int)i;
    }
    return (int)am;
}

int lq_cmd_generate(int argc, char **argv)
{
    const char *tok = NULL, *prompt = "";
    size_t ntok = 64, seed = 0, threads = 0;
    double temp = 0;
    int fast = 0, aq_on = 0;
    lq_actq_cli aqc;
    lq_actq_cli_init(&aqc);
    lq_actq aq;
    memset(&aq, 0, sizeof aq);
    /* -n N is accepted as --n N */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-n")) argv[i] = (char *)"--n";
    const lq_opt opts[] = {
        LQ_ACTQ_OPTS(&aqc),
        {"tokenizer", LQ_OPT_STR, "llama2.c tokenizer.bin", &tok},
        {"prompt", LQ_OPT_STR, "text to continue (default: none, from BOS)", &prompt},
        {"n", LQ_OPT_SIZE, "tokens to generate (default 64)", &ntok},
        {"temp", LQ_OPT_DOUBLE, "sampling temperature (0: greedy)", &temp},
        {"seed", LQ_OPT_SIZE, "sampling seed", &seed},
        {"fast", LQ_OPT_FLAG, "FAST products (int8 activations)", &fast},
        {"threads", LQ_OPT_SIZE, "threads (0: all physical cores)", &threads},
    };
    char *pos[1];
    size_t npos = 0;
    int r = lq_cli_parse(argc, argv, g_usage, opts, sizeof opts / sizeof opts[0], pos, 1, &npos);
    if (r <= 0) return r < 0 ? 2 : 0;
    if (npos != 1 || !tok) {
        fprintf(stderr, "usage: %s\n", g_usage);
        return 2;
    }
    if (temp < 0 || temp > 100) {
        fprintf(stderr, "error: --temp must be in [0, 100]\n");
        return 2;
    }
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.n_threads = threads;
    lq_ctx *ctx;
    lq_status st = lq_ctx_create(&cfg, &ctx);
    if (st != LQ_OK) return lq_cli_fail("context", st);
    int rc = 1, *ids = NULL;
    lq_llama *m = NULL;
    lq_tokenizer *t = NULL;
    lq_llama_state *s = NULL;
    float *lg = NULL;
    size_t nids = 0;
    if (lq_llama_load(ctx, pos[0], &m) != LQ_OK) goto out;
    if ((st = lq_tok_load(tok, m->cfg.vocab, &t)) != LQ_OK) {
        fprintf(stderr, "error: %s: %s%s\n", tok, lq_status_str(st),
                st == LQ_ERR_INVALID_ARG ? " (the tokenizer does not match the model's vocabulary)"
                                         : "");
        goto out;
    }
    if ((st = lq_tok_encode(t, prompt, strlen(prompt), 1, &ids, &nids)) != LQ_OK) {
        fprintf(stderr, "error: the prompt: %s\n",
                st == LQ_ERR_INVALID_ARG ? "not valid UTF-8" : lq_status_str(st));
        goto out;
    }
    if (nids >= m->cfg.seq_len) {
        fprintf(stderr, "error: the prompt is %zu tokens, the context %zu\n", nids, m->cfg.seq_len);
        goto out;
    }
    if ((st = lq_llama_state_create(m, nids, &s)) != LQ_OK ||
        !(lg = malloc(nids * m->cfg.vocab * sizeof *lg))) {
        lq_cli_fail("memory", st ? st : LQ_ERR_NO_MEMORY);
        goto out;
    }
    lq_run_opts ro = {fast ? LQ_KERNEL_FAST : LQ_KERNEL_EXACT, 0};
    if (lq_actq_cli_setup(ctx, &aqc, m, t, &ro, &aq, &aq_on)) goto out;
    uint64_t rng = seed;
    char piece[512];
    for (size_t i = 1; i < nids; i++) {
        lq_tok_piece(t, ids[i - 1], ids[i], piece, sizeof piece);
        fputs(piece, stdout);
    }
    double t0 = lq_cli_now();
    if ((st = lq_llama_forward(ctx, m, s, &ro, ids, nids, 0, lg)) != LQ_OK) {
        lq_cli_fail("forward pass", st);
        goto out;
    }
    double t1 = lq_cli_now();
    int prev = ids[nids - 1];
    size_t p = nids, made = 0;
    const float *last = lg + (nids - 1) * m->cfg.vocab;
    while (made < ntok) {
        int next = pick(last, m->cfg.vocab, temp, &rng);
        if (next == LQ_TOK_BOS || next == LQ_TOK_EOS) break;
        lq_tok_piece(t, prev, next, piece, sizeof piece);
        fputs(piece, stdout);
        fflush(stdout);
        made++;
        if (made == ntok || p >= m->cfg.seq_len) break;
        if ((st = lq_llama_forward(ctx, m, s, &ro, &next, 1, p, lg)) != LQ_OK) {
            lq_cli_fail("forward pass", st);
            goto out;
        }
        last = lg;
        prev = next;
        p++;
    }
    double t2 = lq_cli_now();
    putchar('\n');
    fprintf(stderr,
            "prompt %zu tokens in %.3f s (%.0f tokens/s); %zu tokens generated, %.0f tokens/s\n",
            nids, t1 - t0, (double)nids / (t1 - t0 > 0 ? t1 - t0 : 1e-9), made,
            made > 1 ? (double)(made - 1) / (t2 - t1 > 0 ? t2 - t1 : 1e-9) : 0.0);
    rc = 0;
out:
    free(ids);
    free(lg);
    lq_llama_state_free(s);
    lq_tok_free(t);
    lq_actq_free(&aq);
    lq_llama_free(m);
    lq_ctx_destroy(ctx);
    return rc;
}
