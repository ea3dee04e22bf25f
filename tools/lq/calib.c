/* Sequential calibration of a Llama model (calib.h). */
#include "calib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block_grad.h"
#include "cli.h"

int lq_calib_excluded(const char *list, const char *name)
{
    if (!list || !*list) return 0;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n > 0) {
            for (const char *s = name; *s; s++)
                if (!strncmp(s, p, n)) return 1;
        }
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

typedef struct hctx {
    lq_ctx *ctx;
    lq_hessian *h;
    lq_status st;
    lq_lin_group g; /* the group whose input is accumulated */
} hctx;

static void add_hook(void *user, size_t layer, lq_lin_group g, const float *X, size_t n,
                     size_t cols)
{
    (void)layer;
    hctx *hc = user;
    if (g == hc->g && hc->st == LQ_OK) hc->st = lq_hessian_add(hc->ctx, hc->h, X, n, cols);
}

typedef struct bar {
    int on, tty;
    double t0, total, done;
} bar;

static void bar_draw(bar *b, const char *what)
{
    if (!b->on) return;
    double f = b->total > 0 ? b->done / b->total : 1, el = lq_cli_now() - b->t0;
    double eta = f > 0.001 ? el * (1 - f) / f : 0;
    if (b->tty) {
        char s[31];
        for (int i = 0; i < 30; i++) s[i] = i < (int)(f * 30) ? '#' : '.';
        s[30] = 0;
        fprintf(stderr, "\r[%s] %3d%%  %-40.40s ETA %4.0fs ", s, (int)(f * 100), what, eta);
    } else {
        fprintf(stderr, "calibrate: %3d%% %s (%.1f s)\n", (int)(f * 100), what, el);
    }
    fflush(stderr);
}

/* Run block `layer` over every chunk of stream X (rows of dim, chunk by
 * chunk), with a hook and stop point, or in place (stop_after -1). */
static lq_status run_block(lq_ctx *ctx, const lq_llama *m, lq_llama_state *s, const lq_run_opts *o,
                           size_t layer, float *X, const lq_chunks *c, float *scratch,
                           lq_llama_hook hook, void *user, int stop_after)
{
    size_t d = m->cfg.dim;
    for (size_t i = 0; i < c->n; i++) {
        float *x = X + c->off[i] * d;
        float *buf = stop_after >= 0 ? scratch : x;
        if (stop_after >= 0) memcpy(buf, x, c->len[i] * d * sizeof *buf);
        lq_status st =
            lq_llama_block(ctx, m, s, o, layer, buf, c->len[i], 0, hook, user, stop_after);
        if (st != LQ_OK) return st;
    }
    return LQ_OK;
}

/* Relative block error over every chunk of X with weights w; with dW set
 * (and targets T), also accumulates its gradient. den = sum T^2. */
static lq_status block_loss(lq_ctx *ctx, const lq_block_weights *w, lq_block_tape *tp,
                            const float *X, const float *T, const lq_chunks *c, size_t d,
                            double den, float *Y, float *dY, float *const dW[LQ_LIN_COUNT],
                            double *loss)
{
    double L = 0;
    for (size_t i = 0; i < c->n; i++) {
        size_t o = c->off[i] * d, n = c->len[i] * d;
        lq_status st = lq_block_forward(ctx, w, tp, X + o, c->len[i], Y);
        if (st != LQ_OK) return st;
        for (size_t j = 0; j < n; j++) {
            double e = (double)Y[j] - T[o + j];
            L += e * e;
            dY[j] = (float)(2.0 * e / den);
        }
        if (dW && (st = lq_block_backward(ctx, w, tp, dY, dW, NULL)) != LQ_OK) return st;
    }
    *loss = L / den;
    return isfinite(*loss) ? LQ_OK : LQ_ERR_NOT_FINITE;
}

lq_status lq_calib_finetune_block(lq_ctx *ctx, lq_llama *m, size_t layer, const float *X,
                                  const lq_chunks *c, unsigned steps, double lr,
                                  lq_calib_block *rep)
{
    const lq_llama_config *cfg = &m->cfg;
    if (!X || !c || !rep || c->n == 0 || layer >= cfg->n_layers) return LQ_ERR_INVALID_ARG;
    size_t d = cfg->dim, ntok = 0, maxlen = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (c->len[i] == 0 || c->len[i] > cfg->seq_len) return LQ_ERR_INVALID_ARG;
        ntok += c->len[i];
        if (c->len[i] > maxlen) maxlen = c->len[i];
    }
    lq_adam_opts ao;
    lq_adam_opts_init(&ao);
    ao.lr = lr;
    double t0 = lq_cli_now();
    lq_block_weights wf = {{0}, m->norm_att + layer * d, m->norm_ffn + layer * d}, wq = wf;
    float *Wh[LQ_LIN_COUNT] = {0}, *dW[LQ_LIN_COUNT] = {0}, *best[LQ_LIN_COUNT] = {0};
    lq_finetune *ft[LQ_LIN_COUNT] = {0};
    size_t np[LQ_LIN_COUNT] = {0};
    float *T = malloc(ntok * d * sizeof *T), *Y = malloc(maxlen * d * sizeof *Y);
    float *dY = malloc(maxlen * d * sizeof *dY);
    lq_block_tape *tp = NULL;
    lq_status st = LQ_ERR_NO_MEMORY;
    if (!T || !Y || !dY) goto out;
    if ((st = lq_block_tape_create(cfg, maxlen, &tp)) != LQ_OK) goto out;
    int any = 0;
    for (int k = 0; k < LQ_LIN_COUNT; k++) {
        lq_linear *li = lq_llama_lin(m, layer, (lq_lin)k);
        if (!li->w) {
            st = LQ_ERR_INVALID_ARG;
            goto out;
        }
        wf.w[k] = li->w;
        wq.w[k] = li->w;
        if (!li->q) continue;
        any = 1;
        size_t n = li->rows * li->cols;
        st = LQ_ERR_NO_MEMORY;
        if (!(Wh[k] = malloc(n * sizeof *Wh[k])) || !(dW[k] = malloc(n * sizeof *dW[k]))) goto out;
        if ((st = lq_dequantize(ctx, li->q, Wh[k])) != LQ_OK ||
            (st = lq_finetune_param_count(li->q, &np[k])) != LQ_OK ||
            (st = lq_finetune_create(ctx, li->q, &ao, &ft[k])) != LQ_OK)
            goto out;
        if (!(best[k] = malloc(np[k] * sizeof *best[k]))) {
            st = LQ_ERR_NO_MEMORY;
            goto out;
        }
        if ((st = lq_finetune_get_params(li->q, best[k], np[k])) != LQ_OK) goto out;
        wq.w[k] = Wh[k];
    }
    /* targets: the fp32 block on the same inputs */
    double den = 0;
    for (size_t i = 0; i < c->n; i++) {
        size_t o = c->off[i] * d;
        if ((st = lq_block_forward(ctx, &wf, tp, X + o, c->len[i], T + o)) != LQ_OK) goto out;
    }
    for (size_t i = 0; i < ntok * d; i++) den += (double)T[i] * T[i];
    if (!(den > 0)) den = 1;
    double L = 0, Lbest = 0;
    *rep = (lq_calib_block){0};
    for (unsigned s = 0;; s++) {
        int last = s == steps || !any;
        for (int k = 0; k < LQ_LIN_COUNT; k++)
            if (dW[k])
                memset(dW[k], 0,
                       lq_llama_lin(m, layer, (lq_lin)k)->rows *
                           lq_llama_lin(m, layer, (lq_lin)k)->cols * sizeof(float));
        if ((st = block_loss(ctx, &wq, tp, X, T, c, d, den, Y, dY, last ? NULL : dW, &L)) != LQ_OK)
            goto out;
        if (s == 0) {
            rep->loss_before = Lbest = L;
        } else if (L < Lbest) {
            Lbest = L;
            rep->best = s;
            for (int k = 0; k < LQ_LIN_COUNT; k++)
                if (ft[k] && (st = lq_finetune_get_params(lq_llama_lin(m, layer, (lq_lin)k)->q,
                                                          best[k], np[k])) != LQ_OK)
                    goto out;
        }
        if (last) break;
        for (int k = 0; k < LQ_LIN_COUNT; k++) {
            if (!ft[k]) continue;
            lq_linear *li = lq_llama_lin(m, layer, (lq_lin)k);
            if ((st = lq_finetune_step(ctx, ft[k], li->q, dW[k], li->rows, li->cols)) != LQ_OK ||
                (st = lq_dequantize(ctx, li->q, Wh[k])) != LQ_OK)
                goto out;
        }
        rep->steps = s + 1;
    }
    /* keep the best step's parameters */
    for (int k = 0; k < LQ_LIN_COUNT; k++)
        if (ft[k] && (st = lq_finetune_set_params(lq_llama_lin(m, layer, (lq_lin)k)->q, best[k],
                                                  np[k])) != LQ_OK)
            goto out;
    rep->loss_after = Lbest;
    rep->seconds = lq_cli_now() - t0;
    st = LQ_OK;
out:
    for (int k = 0; k < LQ_LIN_COUNT; k++) {
        free(Wh[k]);
        free(dW[k]);
        free(best[k]);
        lq_finetune_destroy(ft[k]);
    }
    free(T);
    free(Y);
    free(dY);
    lq_block_tape_free(tp);
    return st;
}

lq_status lq_calibrate(lq_ctx *ctx, lq_llama *m, const lq_chunks *calib, const lq_calib_opts *o,
                       lq_calib_layer *layers)
{
    const lq_llama_config *cfg = &m->cfg;
    size_t L = cfg->n_layers, d = cfg->dim, ntok = 0;
    for (size_t i = 0; calib && i < calib->n; i++) {
        if (calib->len[i] > cfg->seq_len) return LQ_ERR_INVALID_ARG;
        ntok += calib->len[i];
    }
    for (size_t i = 0; calib && i < calib->n; i++)
        for (size_t j = 0; j < calib->len[i]; j++)
            if (calib->tok[calib->off[i] + j] < 0 ||
                (size_t)calib->tok[calib->off[i] + j] >= cfg->vocab)
                return LQ_ERR_INVALID_ARG;
    /* activations (or the KV cache) quantized during the calibration */
    const int act = calib && (lq_actq_act_on(m->actq) || lq_actq_kv_on(m->actq));
    if (act && (o->fp_inputs || o->finetune_steps)) {
        fprintf(stderr, "error: calibration with quantized activations takes its inputs from the "
                        "quantized model: not with fp inputs or block fine-tuning\n");
        return LQ_ERR_INVALID_ARG;
    }
    float *X = NULL, *Xf = NULL, *scratch = NULL, *H = NULL, *What = NULL, *Wt = NULL;
    lq_act_stats *as = NULL;
    lq_llama_state *s = NULL;
    lq_status st = LQ_ERR_NO_MEMORY;
    if (calib) {
        X = malloc(ntok * d * sizeof *X);
        scratch = malloc(cfg->seq_len * d * sizeof *scratch);
        if (!X || !scratch) goto out;
        if (o->fp_inputs && !(Xf = malloc(ntok * d * sizeof *Xf))) goto out;
        if ((st = lq_llama_state_create(m, cfg->seq_len, &s)) != LQ_OK) goto out;
        lq_llama_embed(m, calib->tok, ntok, X);
        if (Xf) memcpy(Xf, X, ntok * d * sizeof *Xf);
    }
    bar b = {o->progress, isatty(fileno(stderr)), lq_cli_now(), 0, 0};
    for (size_t l = 0; l < L; l++)
        for (int k = 0; k < LQ_LIN_COUNT; k++) {
            const lq_linear *li = lq_llama_lin(m, l, (lq_lin)k);
            b.total += (double)li->rows * (double)li->cols;
        }
    const lq_run_opts oq = {LQ_KERNEL_EXACT, 0}, of = {LQ_KERNEL_EXACT, 1};
    char what[160];
    for (size_t l = 0; l < L; l++) {
        for (int g = 0; g < LQ_GROUP_COUNT; g++) {
            int todo = 0;
            size_t cols = 0;
            for (int k = 0; k < LQ_LIN_COUNT; k++) {
                if (lq_lin_group_of((lq_lin)k) != (lq_lin_group)g) continue;
                char name[160];
                lq_lin_name(name, sizeof name, l, (lq_lin)k);
                todo |= !lq_calib_excluded(o->exclude, name);
                cols = lq_llama_lin(m, l, (lq_lin)k)->cols;
            }
            if (!todo) continue;
            free(H);
            H = NULL;
            /* round to nearest ignores H: no calibration pass for it */
            int rtn = o->method.engine.rtn && o->method.kind != LQ_METHOD_AQLM;
            lq_act_stats_free(as);
            as = NULL;
            if (act) {
                /* float and quantized inputs of the group (calib_act.c); the
                 * stats are taken for round to nearest too (its target and
                 * objective), which then gets no H */
                if ((st = lq_act_stats_create(ctx, m->actq, (lq_lin_group)g, cols, &as)) != LQ_OK)
                    goto out;
                st = run_block(ctx, m, s, &oq, l, X, calib, scratch, lq_act_stats_hook, as, g);
                if (st == LQ_OK) st = lq_act_stats_status(as);
                if (st == LQ_OK && !(H = malloc(cols * cols * sizeof *H))) st = LQ_ERR_NO_MEMORY;
                if (st == LQ_OK) st = lq_act_stats_hessian(as, o->act_correct, H);
                if (st != LQ_OK) {
                    fprintf(stderr, "\nerror: Hessian of block %zu: %s\n", l, lq_status_str(st));
                    goto out;
                }
                if (o->on_hessian) o->on_hessian(o->user, l, (lq_lin_group)g, H, cols);
                if (rtn) {
                    free(H);
                    H = NULL;
                }
            } else if (calib && !rtn) {
                hctx hc = {ctx, NULL, LQ_OK, (lq_lin_group)g};
                if ((st = lq_hessian_create(ctx, cols, &hc.h)) != LQ_OK) goto out;
                st = run_block(ctx, m, s, o->fp_inputs ? &of : &oq, l, o->fp_inputs ? Xf : X, calib,
                               scratch, add_hook, &hc, g);
                if (st == LQ_OK) st = hc.st;
                if (st == LQ_OK && !(H = malloc(cols * cols * sizeof *H))) st = LQ_ERR_NO_MEMORY;
                if (st == LQ_OK) st = lq_hessian_get(hc.h, H);
                lq_hessian_free(hc.h);
                if (st != LQ_OK) {
                    fprintf(stderr, "\nerror: Hessian of block %zu: %s\n", l, lq_status_str(st));
                    goto out;
                }
                if (o->on_hessian) o->on_hessian(o->user, l, (lq_lin_group)g, H, cols);
            }
            for (int k = 0; k < LQ_LIN_COUNT; k++) {
                if (lq_lin_group_of((lq_lin)k) != (lq_lin_group)g) continue;
                lq_linear *li = lq_llama_lin(m, l, (lq_lin)k);
                lq_calib_layer rec = {0};
                rec.act_obj = NAN;
                lq_lin_name(rec.name, sizeof rec.name, l, (lq_lin)k);
                rec.rows = li->rows;
                rec.cols = li->cols;
                rec.bpw = 32;
                if (lq_calib_excluded(o->exclude, rec.name)) {
                    if (layers) layers[l * LQ_LIN_COUNT + (size_t)k] = rec;
                    b.done += (double)li->rows * (double)li->cols;
                    continue;
                }
                snprintf(what, sizeof what, "block %zu/%zu %s", l + 1, L, lq_lin_short((lq_lin)k));
                bar_draw(&b, what);
                free(What);
                if (!(What = malloc(li->rows * li->cols * sizeof *What))) {
                    st = LQ_ERR_NO_MEMORY;
                    goto out;
                }
                lq_quant_report rep;
                lq_qtensor *q = NULL;
                double t0 = lq_cli_now();
                const float *target = li->w;
                st = LQ_OK;
                if (as && o->act_correct) {
                    /* quantize W' = W C H~^-1 (damped) under H~ */
                    free(Wt);
                    if (!(Wt = malloc(li->rows * li->cols * sizeof *Wt)))
                        st = LQ_ERR_NO_MEMORY;
                    else
                        st = lq_act_stats_target(
                            as, o->act_damp > 0 ? o->act_damp : o->method.engine.percdamp, li->w,
                            li->rows, Wt, NULL);
                    target = Wt;
                }
                if (st == LQ_OK)
                    st = lq_quantize_ex(ctx, target, li->rows, li->cols, H, &o->method, &q, What,
                                        &rep);
                if (st == LQ_OK && as)
                    st = lq_act_stats_objective(as, li->w, What, li->rows, &rec.act_obj);
                rec.seconds = lq_cli_now() - t0;
                if (st != LQ_OK) {
                    lq_qtensor_free(q);
                    fprintf(stderr, "\nerror: quantizing %s (%zu x %zu): %s\n", rec.name, li->rows,
                            li->cols, lq_status_str(st));
                    goto out;
                }
                double num = 0, den = 0;
                for (size_t i = 0; i < li->rows * li->cols; i++) {
                    double e = (double)li->w[i] - What[i];
                    num += e * e;
                    den += (double)li->w[i] * li->w[i];
                }
                rec.rel_err = den > 0 ? sqrt(num / den) : sqrt(num);
                rec.proxy = H ? rep.proxy_loss : NAN;
                lq_qtensor_bits_per_weight(q, &rec.bpw);
                rec.quantized = 1;
                li->q = q;
                if (layers) layers[l * LQ_LIN_COUNT + (size_t)k] = rec;
                b.done += (double)li->rows * (double)li->cols;
            }
        }
        /* block-wise fine-tuning on the block's inputs (the quantized stream) */
        if (calib && o->finetune_steps > 0) {
            lq_calib_block br;
            snprintf(what, sizeof what, "block %zu/%zu fine-tuning", l + 1, L);
            bar_draw(&b, what);
            st = lq_calib_finetune_block(ctx, m, l, X, calib, o->finetune_steps, o->finetune_lr,
                                         &br);
            if (st != LQ_OK) {
                fprintf(stderr, "\nerror: fine-tuning block %zu: %s\n", l, lq_status_str(st));
                goto out;
            }
            if (o->blocks) o->blocks[l] = br;
        }
        /* the next block's inputs: this block, quantized, on the quantized stream */
        if (calib) {
            if ((st = run_block(ctx, m, s, &oq, l, X, calib, scratch, NULL, NULL, -1)) != LQ_OK)
                goto out;
            if (Xf &&
                (st = run_block(ctx, m, s, &of, l, Xf, calib, scratch, NULL, NULL, -1)) != LQ_OK)
                goto out;
        }
    }
    b.done = b.total;
    bar_draw(&b, "done");
    if (b.on && b.tty) fputc('\n', stderr);
    /* the quantized layers drop their float weights: the model is what a
     * reader of the written file gets */
    for (size_t i = 0; i < L * LQ_LIN_COUNT; i++)
        if (m->lin[i].q) {
            free(m->lin[i].w);
            m->lin[i].w = NULL;
        }
    st = LQ_OK;
out:
    free(X);
    free(Xf);
    free(scratch);
    free(H);
    free(What);
    free(Wt);
    lq_act_stats_free(as);
    lq_llama_state_free(s);
    return st;
}
