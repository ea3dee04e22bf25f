/* lq quantize on a model: load, sequential calibration, one complete-model
 * .lqt, a per-layer table or JSON summary. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "actq.h"
#include "calib.h"
#include "cli.h"
#include "methodopt.h"

int lq_cli_is_model(const char *path)
{
    struct stat sb;
    if (!path || stat(path, &sb)) return 0;
    if (S_ISDIR(sb.st_mode)) return 1;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char h[8] = {0};
    size_t n = fread(h, 1, 8, f);
    fclose(f);
    if (n < 8) return 0;
    if (!memcmp(h, "\x93NUMPY", 6) || !memcmp(h, "\x89LQT", 4)) return 0;
    size_t len = strlen(path);
    if (len > 12 && !strcmp(path + len - 12, ".safetensors")) return 0;
    /* safetensors: 8-byte little-endian header size, then '{' */
    return !(h[4] == 0 && h[5] == 0 && h[6] == 0 && h[7] == 0);
}

int lq_quantize_model(const lq_model_quant_args *a)
{
    lq_method_kind kind;
    if (lq_cli_method_kind(a->method, &kind)) {
        fprintf(stderr, "error: unknown method '" LQ_CLIP_FMT "' (%s)\n", LQ_CLIP(a->method),
                lq_cli_method_list());
        return 2;
    }
    if (!!a->calib_text != !!a->tokenizer) {
        fprintf(stderr, "error: --calib-text and --tokenizer go together\n");
        return 2;
    }
    if (a->calib_chunks == 0) {
        fprintf(stderr, "error: --calib-chunks must be at least 1\n");
        return 2;
    }
    if (lq_cli_same_file(a->in, a->out) || lq_cli_same_file(a->calib_text, a->out) ||
        lq_cli_same_file(a->tokenizer, a->out)) {
        fprintf(stderr, "error: %s is also an input: refusing to overwrite it\n", a->out);
        return 2;
    }
    if (a->finetune_steps && !a->calib_text) {
        fprintf(stderr, "error: --finetune-steps needs calibration text (--calib-text)\n");
        return 2;
    }
    if (!a->finetune_steps && a->finetune_lr != 1e-4) {
        fprintf(stderr,
                "error: --lr is the fine-tuning learning rate: give --finetune-steps too\n");
        return 2;
    }
    if (a->finetune_steps > 100000) {
        fprintf(stderr, "error: --finetune-steps must be at most 100000\n");
        return 2;
    }
    if (!(isfinite(a->finetune_lr) && a->finetune_lr > 0 && a->finetune_lr <= 1e6)) {
        fprintf(stderr, "error: --lr must be a finite number in (0, 1e6]\n");
        return 2;
    }
    int act_given = a->act && lq_actq_cli_given(a->act), act_correct = 1;
    if (a->act_correct) {
        if (!strcmp(a->act_correct, "no"))
            act_correct = 0;
        else if (strcmp(a->act_correct, "yes")) {
            fprintf(stderr, "error: --act-correct is yes or no, not '" LQ_CLIP_FMT "'\n",
                    LQ_CLIP(a->act_correct));
            return 2;
        }
    }
    if (!isnan(a->act_damp) && !(isfinite(a->act_damp) && a->act_damp > 0 && a->act_damp <= 1e6)) {
        fprintf(stderr, "error: --act-damp must be a finite number in (0, 1e6]\n");
        return 2;
    }
    if (!isnan(a->act_damp) && (!act_given || !act_correct)) {
        fprintf(stderr, "error: --act-damp is the correction's damping: give --act-bits (and not "
                        "--act-correct no)\n");
        return 2;
    }
    if (act_given && !a->calib_text) {
        fprintf(stderr, "error: the activation options (--act-bits, --kv-bits, ...) act on the "
                        "calibration: give --calib-text\n");
        return 2;
    }
    if (act_given && (a->fp_inputs || a->finetune_steps)) {
        fprintf(stderr, "error: --act-bits / --kv-bits calibrate on the quantized model's "
                        "activations: not with --fp-inputs or --finetune-steps\n");
        return 2;
    }
    lq_calib_opts co = {0};
    lq_method_init(&co.method, kind);
    if (lq_cli_qopts_apply(a->opts, &co.method)) return 2;
    co.fp_inputs = a->fp_inputs;
    co.exclude = a->exclude;
    co.progress = !a->quiet;
    co.finetune_steps = (unsigned)a->finetune_steps;
    co.finetune_lr = a->finetune_lr;
    co.act_correct = act_correct;
    co.act_damp = isnan(a->act_damp) ? 0 : a->act_damp;
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.n_threads = a->threads;
    cfg.seed = a->seed;
    lq_ctx *ctx;
    lq_status st = lq_ctx_create(&cfg, &ctx);
    if (st != LQ_OK) return lq_cli_fail("context", st);
    int rc = 1;
    lq_llama *m = NULL;
    lq_tokenizer *t = NULL;
    lq_chunks ch = {0};
    char *txt = NULL;
    lq_calib_layer *lay = NULL;
    lq_calib_block *blk = NULL;
    lq_actq aq;
    memset(&aq, 0, sizeof aq);
    int aq_on = 0;
    char adesc[512] = "";
    double t0 = lq_cli_now(), c0 = lq_cli_cpu_now();
    if (lq_llama_load(ctx, a->in, &m) != LQ_OK) goto out;
    if (!strcmp(m->source, "lqt")) {
        fprintf(stderr, "error: %s is already quantized\n", a->in);
        goto out;
    }
    if (a->calib_text) {
        size_t n;
        if ((st = lq_tok_load(a->tokenizer, m->cfg.vocab, &t)) != LQ_OK) {
            fprintf(stderr, "error: %s: %s%s\n", a->tokenizer, lq_status_str(st),
                    st == LQ_ERR_INVALID_ARG ? " (the tokenizer does not match the model's "
                                               "vocabulary)"
                                             : "");
            goto out;
        }
        if (!(txt = lq_text_load(a->calib_text, &n))) goto out;
        st = lq_chunks_make(t, txt, n, LQ_PROTO_STREAM, m->cfg.seq_len, a->calib_chunks, &ch);
        if (st != LQ_OK) {
            fprintf(stderr, "error: %s: %s\n", a->calib_text, lq_status_str(st));
            goto out;
        }
    }
    if (act_given) {
        /* the settings lq eval will get; with --act-calib the betas are
         * fitted here on the float model */
        const lq_run_opts ro = {LQ_KERNEL_EXACT, 0};
        if (lq_actq_cli_setup(ctx, a->act, m, t, &ro, &aq, &aq_on)) goto out;
        if (aq_on) {
            lq_actq_describe(&aq.set, adesc, sizeof adesc);
            size_t al = strlen(adesc);
            if (a->act->calib)
                snprintf(adesc + al, sizeof adesc - al, ", betas fitted on %s (%zu chunks)",
                         a->act->calib, a->act->calib_chunks);
            al = strlen(adesc);
            snprintf(adesc + al, sizeof adesc - al, "; weights %s",
                     act_correct ? "corrected for the activation noise (W C H~^-1 under H~)"
                                 : "not corrected");
            al = strlen(adesc);
            if (act_correct && co.act_damp > 0)
                snprintf(adesc + al, sizeof adesc - al, ", damping %g", co.act_damp);
        }
    }
    if (a->act_correct && !aq_on) {
        fprintf(stderr, "error: --act-correct needs --act-bits or --kv-bits below 16\n");
        goto out;
    }
    size_t nl = m->cfg.n_layers * LQ_LIN_COUNT;
    if (!(lay = calloc(nl, sizeof *lay)) || !(blk = calloc(m->cfg.n_layers, sizeof *blk))) {
        lq_cli_fail("memory", LQ_ERR_NO_MEMORY);
        goto out;
    }
    co.blocks = blk;
    if (lq_calibrate(ctx, m, a->calib_text ? &ch : NULL, &co, lay) != LQ_OK) goto out;
    char desc[256];
    size_t ntok = 0;
    for (size_t i = 0; i < ch.n; i++) ntok += ch.len[i];
    int dn = snprintf(desc, sizeof desc, "%s, %zu chunks, %zu tokens, %s",
                      a->calib_text ? "sequential" : "none", ch.n, ntok,
                      a->fp_inputs ? "fp inputs" : "quantized inputs");
    if (co.finetune_steps && dn > 0 && (size_t)dn < sizeof desc)
        snprintf(desc + dn, sizeof desc - (size_t)dn, ", block fine-tuning %u steps lr %g",
                 co.finetune_steps, co.finetune_lr);
    if (aq_on && dn > 0 && (size_t)dn < sizeof desc)
        snprintf(desc + dn, sizeof desc - (size_t)dn, ", activations A%u KV%u%s", aq.set.act_bits,
                 aq.set.kv_bits, act_correct ? " corrected" : "");
    const char *meta[] = {"libquant.method",      a->method, "libquant.calibration", desc,
                          "libquant.activations", adesc};
    if (lq_llama_save(ctx, m, a->out, meta, aq_on ? 3 : 2) != LQ_OK) goto out;
    double secs = lq_cli_now() - t0, cpu = lq_cli_cpu_now() - c0, bpw;
    size_t nq;
    lq_llama_bits(m, &bpw, &nq);
    if (a->json) {
        printf("{\"method\":");
        lq_cli_json_str(stdout, a->method);
        printf(",\"input\":");
        lq_cli_json_str(stdout, a->in);
        printf(",\"output\":");
        lq_cli_json_str(stdout, a->out);
        printf(",\"calibration\":");
        lq_cli_json_str(stdout, desc);
        printf(",\"layers\":[");
        for (size_t i = 0; i < nl; i++) {
            printf("%s{\"name\":", i ? "," : "");
            lq_cli_json_str(stdout, lay[i].name);
            printf(",\"rows\":%zu,\"cols\":%zu,\"quantized\":%s,\"bits_per_weight\":%.6f,"
                   "\"rel_error\":%.6g,\"proxy_loss\":",
                   lay[i].rows, lay[i].cols, lay[i].quantized ? "true" : "false", lay[i].bpw,
                   lay[i].rel_err);
            if (isfinite(lay[i].proxy))
                printf("%.6g", lay[i].proxy);
            else
                printf("null");
            if (aq_on) {
                printf(",\"act_objective\":");
                if (isfinite(lay[i].act_obj))
                    printf("%.6g", lay[i].act_obj);
                else
                    printf("null");
            }
            printf(",\"seconds\":%.4f}", lay[i].seconds);
        }
        printf("]");
        if (aq_on) {
            printf(",\"activations\":");
            lq_cli_json_str(stdout, adesc);
        }
        if (co.finetune_steps) {
            printf(",\"finetune\":{\"steps\":%u,\"lr\":%.6g,\"blocks\":[", co.finetune_steps,
                   co.finetune_lr);
            for (size_t l = 0; l < m->cfg.n_layers; l++)
                printf("%s{\"block\":%zu,\"loss_before\":%.6g,\"loss_after\":%.6g,"
                       "\"steps\":%u,\"best_step\":%u,\"seconds\":%.3f}",
                       l ? "," : "", l, blk[l].loss_before, blk[l].loss_after, blk[l].steps,
                       blk[l].best, blk[l].seconds);
            printf("]}");
        }
        printf(",\"quantized_layers\":%zu,\"bits_per_weight\":%.6f,\"seconds\":%.3f,"
               "\"cpu_seconds\":%.3f}\n",
               nq, bpw, secs, cpu);
    } else {
        printf("%-40s %11s %8s %10s %12s %8s%s\n", "layer", "shape", "bits/w", "rel.err",
               "proxy loss", "seconds", aq_on ? "    act obj" : "");
        for (size_t i = 0; i < nl; i++) {
            char shape[32], proxy[24];
            snprintf(shape, sizeof shape, "%zux%zu", lay[i].rows, lay[i].cols);
            if (isfinite(lay[i].proxy))
                snprintf(proxy, sizeof proxy, "%.4g", lay[i].proxy);
            else
                snprintf(proxy, sizeof proxy, "-");
            printf("%-40.40s %11s %8.3f %10.4g %12s %8.2f", lay[i].name, shape, lay[i].bpw,
                   lay[i].rel_err, proxy, lay[i].seconds);
            if (aq_on && isfinite(lay[i].act_obj))
                printf(" %11.4g", lay[i].act_obj);
            else if (aq_on)
                printf(" %11s", "-");
            printf("\n");
        }
        for (size_t l = 0; co.finetune_steps && l < m->cfg.n_layers; l++)
            printf("block %zu fine-tuning: relative output error %.4g -> %.4g (best step %u of "
                   "%u, %.2f s)\n",
                   l, blk[l].loss_before, blk[l].loss_after, blk[l].best, blk[l].steps,
                   blk[l].seconds);
        printf("%zu of %zu layers quantized (%s), %.3f bits/weight over the linear layers, "
               "%.2f s (%.2f s CPU) -> %s\n",
               nq, nl, desc, bpw, secs, cpu, a->out);
        if (aq_on) printf("activations: %s\n", adesc);
    }
    rc = 0;
out:
    if (m) m->actq = NULL;
    lq_actq_free(&aq);
    free(lay);
    free(blk);
    free(txt);
    lq_chunks_free(&ch);
    lq_tok_free(t);
    lq_llama_free(m);
    lq_ctx_destroy(ctx);
    return rc;
}
