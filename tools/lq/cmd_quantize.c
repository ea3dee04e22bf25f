/* lq quantize: quantize the 2-D tensors of a safetensors or .npy file into
 * an .lqt container, with an optional Hessian (given, or accumulated from
 * calibration activations), a progress bar and a summary table or JSON. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actq.h"
#include "cli.h"
#include "methodopt.h"
#include "mpi_quantize.h"

/* ---- progress ------------------------------------------------------------------- */

typedef struct progress {
    int tty, quiet;
    double t0;          /* start of the whole run */
    double done_weight; /* work finished before the current tensor */
    double cur_weight;  /* work of the current tensor */
    double total_weight;
    size_t index, count;
    const char *name;
    double last_draw;
} progress;

static void draw(progress *p, double frac_tensor)
{
    if (p->quiet || !p->tty) return;
    double now = lq_cli_now();
    if (now - p->last_draw < 0.1 && frac_tensor < 1.0) return;
    p->last_draw = now;
    double f = (p->done_weight + frac_tensor * p->cur_weight) / p->total_weight;
    if (f > 1) f = 1;
    double el = now - p->t0, eta = f > 0.001 ? el * (1 - f) / f : 0;
    char bar[31];
    int fill = (int)(f * 30);
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    fprintf(stderr, "\r[%s] %3d%%  %zu/%zu %-24.24s  ETA %4.0fs ", bar, (int)(f * 100),
            p->index + 1, p->count, p->name, eta);
    fflush(stderr);
}

static void on_progress(void *user, double fraction, const char *stage)
{
    (void)stage;
    draw(user, fraction < 0 ? 0 : fraction > 1 ? 1 : fraction);
}

/* ---- output helpers -------------------------------------------------------------- */

typedef struct result {
    size_t rows, cols;
    double bpw, rel_err, proxy, seconds;
    int has_h;
    int rank;         /* the MPI rank that quantized it (0: one process) */
    const char *name; /* last: lq_mpi_collect sends the bytes before it */
} result;

/* ---- Hessians ---------------------------------------------------------------------- */

typedef struct hsource {
    lq_tfile *hfile; /* --hessian */
    float *calib;    /* --calib: N x ccols */
    size_t calib_n, calib_cols;
    float *H; /* H from calib (calib_cols^2), built once */
} hsource;

/* H for a weight `name` with `cols` columns into *H (malloc'ed, caller frees)
 * or NULL when there is none for it. Returns 0 or prints an error, 1. */
static int get_hessian(lq_ctx *ctx, hsource *hs, const char *name, size_t cols, float **H)
{
    *H = NULL;
    if (hs->hfile) {
        size_t idx;
        if (lq_tfile_find(hs->hfile, name, &idx) != LQ_OK) {
            if (lq_tfile_count(hs->hfile) != 1) {
                fprintf(stderr, "error: no Hessian named '" LQ_CLIP_FMT "' in the --hessian file\n",
                        LQ_CLIP(name));
                return 1;
            }
            idx = 0;
        }
        lq_tensor_info in;
        lq_tfile_info(hs->hfile, idx, &in);
        if (in.ndim != 2 || in.shape[0] != cols || in.shape[1] != cols) {
            fprintf(stderr, "error: Hessian for '" LQ_CLIP_FMT "' must be %zu x %zu\n",
                    LQ_CLIP(name), cols, cols);
            return 1;
        }
        float *h = malloc(in.numel * sizeof *h);
        if (!h) return lq_cli_fail("Hessian", LQ_ERR_NO_MEMORY);
        lq_status st = lq_tfile_read_f32(hs->hfile, idx, h, in.numel);
        if (st != LQ_OK) {
            free(h);
            return lq_cli_fail("reading the Hessian", st);
        }
        *H = h;
        return 0;
    }
    if (hs->calib) {
        if (hs->calib_cols != cols) {
            fprintf(stderr,
                    "note: '" LQ_CLIP_FMT
                    "' has %zu columns, the calibration data %zu: no Hessian\n",
                    LQ_CLIP(name), cols, hs->calib_cols);
            return 0;
        }
        if (!hs->H) {
            lq_hessian *acc;
            lq_status st = lq_hessian_create(ctx, cols, &acc);
            if (st != LQ_OK) return lq_cli_fail("Hessian", st);
            st = lq_hessian_add(ctx, acc, hs->calib, hs->calib_n, cols);
            hs->H = malloc(cols * cols * sizeof *hs->H);
            if (st == LQ_OK && !hs->H) st = LQ_ERR_NO_MEMORY;
            if (st == LQ_OK) st = lq_hessian_get(acc, hs->H);
            lq_hessian_free(acc);
            if (st != LQ_OK) return lq_cli_fail("accumulating the Hessian from --calib", st);
        }
        float *h = malloc(cols * cols * sizeof *h);
        if (!h) return lq_cli_fail("Hessian", LQ_ERR_NO_MEMORY);
        memcpy(h, hs->H, cols * cols * sizeof *h);
        *H = h;
    }
    return 0;
}

static int load_calib(const char *path, hsource *hs)
{
    lq_tfile *f;
    lq_status st = lq_tfile_open(NULL, path, LQ_TFILE_AUTO, &f);
    if (st != LQ_OK) {
        fprintf(stderr, "error: %s: %s\n", path, lq_status_str(st));
        return 1;
    }
    lq_tensor_info in;
    if (lq_tfile_count(f) != 1 || lq_tfile_info(f, 0, &in) != LQ_OK || in.ndim != 2 ||
        in.numel == 0) {
        fprintf(stderr, "error: %s: --calib needs one 2-D tensor (samples x columns)\n", path);
        lq_tfile_close(f);
        return 1;
    }
    hs->calib = malloc(in.numel * sizeof *hs->calib);
    st = hs->calib ? lq_tfile_read_f32(f, 0, hs->calib, in.numel) : LQ_ERR_NO_MEMORY;
    lq_tfile_close(f);
    if (st != LQ_OK) {
        fprintf(stderr, "error: %s: %s\n", path, lq_status_str(st));
        return 1;
    }
    hs->calib_n = in.shape[0];
    hs->calib_cols = in.shape[1];
    return 0;
}

static int readable_2d(const lq_tensor_info *in)
{
    return in->ndim == 2 && in->numel > 0 &&
           (in->dtype == LQ_DTYPE_F32 || in->dtype == LQ_DTYPE_F16 || in->dtype == LQ_DTYPE_BF16);
}

#define USAGE_HEAD                                                                                 \
    "lq quantize --method M [options] IN.{safetensors,npy} OUT.lqt\n"                              \
    "  Quantizes every 2-D F32/F16/BF16 tensor of IN (or --tensor NAME) into OUT.lqt.\n"           \
    "  Methods: %s (defaults: lq_method_init).\n"                                                  \
    "  Options apply to the methods that have them:\n"                                             \
    "    engine (int, nestquant, gptvq, gptqt, bcq): --rtn --percdamp --act-order\n"               \
    "      --static-groups --block-size\n"
static const char *g_usage_tail =
    "  Hessian: --hessian H.safetensors (a cols x cols tensor named like each weight,\n"
    "    or a single one) or --calib X.npy (samples x cols; H = 2/N X^T X).\n"
    "\n"
    "lq quantize --method M [options] --calib-text FILE --tokenizer TOK MODEL OUT.lqt\n"
    "  MODEL (llama2.c .bin, Hugging Face folder or .safetensors): sequential\n"
    "  calibration, block by block, each layer's Hessian from the inputs it sees with\n"
    "  the earlier layers quantized (--fp-inputs: from the float model); OUT.lqt is a\n"
    "  complete model (lq eval / lq generate load it). --calib-chunks N chunks of\n"
    "  seq_len tokens (default 64); --exclude a,b: layers whose name contains a or b\n"
    "  stay float. Without --calib-text the layers are quantized without a Hessian.\n"
    "  --finetune-steps N (needs --calib-text): after each block's layers are quantized,\n"
    "  N Adam steps (--lr X, default 1e-4) on the continuous parameters (scales,\n"
    "  codebooks; codes fixed) of every quantized layer of the block jointly, so the\n"
    "  block's output matches the fp32 block's on the calibration inputs (MSE).\n"
    "  --act-bits B (and lq eval's other activation / KV options, same meaning and\n"
    "  defaults; needs --calib-text): the calibration runs the model with its\n"
    "  activations (and KV cache) quantized as lq eval will, and each layer is fitted\n"
    "  to its quantized inputs x~: W_hat minimises sum ||W x - W_hat x~||^2 (the\n"
    "  target W C H~^-1 under H~; --act-correct no: W under the float inputs'\n"
    "  Hessian; --act-damp F: ridge damping of the correction as a fraction of\n"
    "  mean diag(H~), default --percdamp; larger shrinks it towards W). Give lq eval\n"
    "  the same activation options (recorded in the .lqt as libquant.activations).";

/* The usage text: the methods and their options from the registry. */
static const char *usage(void)
{
    static char buf[8192];
    int w = snprintf(buf, sizeof buf, USAGE_HEAD, lq_cli_method_list());
    size_t len = w > 0 ? (size_t)w : 0;
    for (size_t i = 0; i < lq_method_count() && len < sizeof buf; i++) {
        lq_method_info mi;
        if (lq_method_get_info(i, &mi) != LQ_OK) break;
        const char *op = lq_cli_method_options(mi.kind);
        w = snprintf(buf + len, sizeof buf - len, "    %s: %s\n", mi.name, op ? op : "(none)");
        if (w > 0) len += (size_t)w;
    }
    if (len < sizeof buf) snprintf(buf + len, sizeof buf - len, "%s", g_usage_tail);
    return buf;
}

int lq_cmd_quantize(int argc, char **argv)
{
    const char *method = NULL, *tensor = NULL, *hpath = NULL, *cpath = NULL;
    size_t threads = 0, seed = 0;
    int json = 0, quiet = 0, fp_inputs = 0;
    const char *calib_text = NULL, *tokp = NULL, *exclude = NULL;
    size_t calib_chunks = 64, ft_steps = 0;
    double ft_lr = 1e-4;
    lq_cli_qopts o;
    lq_cli_qopts_init(&o);
    lq_actq_cli aqc;
    lq_actq_cli_init(&aqc);
    const char *act_correct = NULL;
    double act_damp = NAN;
    lq_opt opts[34 + LQ_CLI_NMETHOD_OPTS] = {
        {"method", LQ_OPT_STR, "a registered method (see Methods above)", &method},
        {"tensor", LQ_OPT_STR, "quantize only this tensor", &tensor},
        {"hessian", LQ_OPT_STR, "safetensors file of Hessians (cols x cols)", &hpath},
        {"calib", LQ_OPT_STR, "calibration activations (samples x cols, .npy)", &cpath},
        {"json", LQ_OPT_FLAG, "print the summary as JSON", &json},
        {"quiet", LQ_OPT_FLAG, "no progress output", &quiet},
        {"threads", LQ_OPT_SIZE, "threads (0: all physical cores)", &threads},
        {"seed", LQ_OPT_SIZE, "RNG seed", &seed},
        {"calib-text", LQ_OPT_STR, "model: calibration text (UTF-8)", &calib_text},
        {"tokenizer", LQ_OPT_STR, "model: llama2.c tokenizer.bin", &tokp},
        {"calib-chunks", LQ_OPT_SIZE, "model: calibration chunks (default 64)", &calib_chunks},
        {"fp-inputs", LQ_OPT_FLAG, "model: Hessians from the float model", &fp_inputs},
        {"exclude", LQ_OPT_STR, "model: comma-separated name parts left float", &exclude},
        {"finetune-steps", LQ_OPT_SIZE, "model: block-wise fine-tuning steps (default 0: off)",
         &ft_steps},
        {"lr", LQ_OPT_DOUBLE, "model: fine-tuning Adam learning rate (default 1e-4)", &ft_lr},
        {"act-correct", LQ_OPT_STR,
         "model: yes (default with --act-bits) or no: fit the weights to quantized inputs",
         &act_correct},
        {"act-damp", LQ_OPT_DOUBLE,
         "model: damping of the correction, fraction of mean diag (default --percdamp)", &act_damp},
        LQ_ACTQ_OPTS(&aqc),
    };
    size_t nopts = 32;
    nopts += lq_cli_qopts_table(&o, opts + nopts);
    char *pos[2];
    size_t npos = 0;
    int r = lq_cli_parse(argc, argv, usage(), opts, nopts, pos, 2, &npos);
    if (r <= 0) return r < 0 ? 2 : 0;
    if (npos != 2 || !method) {
        fprintf(stderr, "usage: %s\n", usage());
        return 2;
    }
    if (calib_text || tokp || lq_cli_is_model(pos[0])) {
        if (lq_mpi_launcher()) {
            fprintf(stderr, "error: a model is calibrated block by block in one process; "
                            "MPI splits tensor files (--hessian) across ranks\n");
            return 2;
        }
        if (hpath || cpath || tensor) {
            fprintf(stderr, "error: --hessian, --calib and --tensor are for tensor files; a model "
                            "is calibrated with --calib-text and --tokenizer\n");
            return 2;
        }
        lq_model_quant_args a = {method,       pos[0],   pos[1], calib_text, tokp,        exclude,
                                 calib_chunks, threads,  seed,   fp_inputs,  json,        quiet,
                                 &o,           ft_steps, ft_lr,  &aqc,       act_correct, act_damp};
        return lq_quantize_model(&a);
    }
    if (lq_actq_cli_given(&aqc) || act_correct || !isnan(act_damp)) {
        fprintf(stderr, "error: the activation options (--act-bits, --kv-bits, --act-correct, "
                        "...) are for models (with --calib-text)\n");
        return 2;
    }
    if (ft_steps || ft_lr != 1e-4) {
        fprintf(stderr, "error: --finetune-steps and --lr are for models (with --calib-text)\n");
        return 2;
    }
    if (hpath && cpath) {
        fprintf(stderr, "error: give --hessian or --calib, not both\n");
        return 2;
    }
    lq_method m;
    lq_method_kind kind;
    if (lq_cli_method_kind(method, &kind)) {
        fprintf(stderr, "error: unknown method '" LQ_CLIP_FMT "' (%s)\n", LQ_CLIP(method),
                lq_cli_method_list());
        return 2;
    }
    lq_method_init(&m, kind);
    if (lq_cli_qopts_apply(&o, &m)) return 2;

    lq_mpi *mj; /* NULL: not started by an MPI launcher */
    if (lq_mpi_begin(&threads, &mj)) return 1;
    progress pr = {.tty = isatty(fileno(stderr)), .quiet = quiet};
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.n_threads = threads;
    cfg.seed = seed;
    cfg.progress = on_progress;
    cfg.progress_user = &pr;
    lq_ctx *ctx;
    lq_status st = lq_ctx_create(&cfg, &ctx);
    if (st != LQ_OK) return lq_mpi_end(mj, lq_cli_fail("context", st));

    int rc = 1;
    lq_tfile *in = NULL;
    lq_lqt_writer *w = NULL;
    hsource hs = {0};
    result *res = NULL;
    size_t *sel = NULL, nsel = 0;
    st = lq_tfile_open(ctx, pos[0], LQ_TFILE_AUTO, &in);
    if (st != LQ_OK) {
        fprintf(stderr, "error: %s: %s\n", pos[0], lq_status_str(st));
        goto out;
    }
    if (hpath && (st = lq_tfile_open(ctx, hpath, LQ_TFILE_AUTO, &hs.hfile)) != LQ_OK) {
        fprintf(stderr, "error: %s: %s\n", hpath, lq_status_str(st));
        goto out;
    }
    if (cpath && load_calib(cpath, &hs)) goto out;
    size_t nt = lq_tfile_count(in);
    sel = malloc((nt ? nt : 1) * sizeof *sel);
    res = calloc(nt ? nt : 1, sizeof *res);
    if (!sel || !res) {
        lq_cli_fail("memory", LQ_ERR_NO_MEMORY);
        goto out;
    }
    if (tensor) {
        size_t idx;
        lq_tensor_info ti;
        if (lq_tfile_find(in, tensor, &idx) != LQ_OK && !(lq_tfile_get_kind(in) == LQ_TFILE_NPY)) {
            fprintf(stderr, "error: no tensor '" LQ_CLIP_FMT "' in %s\n", LQ_CLIP(tensor), pos[0]);
            goto out;
        }
        if (lq_tfile_get_kind(in) == LQ_TFILE_NPY) idx = 0;
        lq_tfile_info(in, idx, &ti);
        if (!readable_2d(&ti)) {
            fprintf(stderr, "error: '" LQ_CLIP_FMT "' is not a 2-D F32/F16/BF16 tensor\n",
                    LQ_CLIP(tensor));
            goto out;
        }
        sel[nsel++] = idx;
    } else {
        for (size_t i = 0; i < nt; i++) {
            lq_tensor_info ti;
            lq_tfile_info(in, i, &ti);
            if (readable_2d(&ti)) sel[nsel++] = i;
        }
    }
    if (nsel == 0) {
        fprintf(stderr, "error: no 2-D F32/F16/BF16 tensor in %s\n", pos[0]);
        goto out;
    }
    if (lq_cli_same_file(pos[0], pos[1]) || lq_cli_same_file(hpath, pos[1]) ||
        lq_cli_same_file(cpath, pos[1])) {
        fprintf(stderr, "error: %s is also an input: refusing to overwrite it\n", pos[1]);
        goto out;
    }
    if (lq_mpi_assign(mj, in, sel, nsel)) goto out;
    st = lq_lqt_writer_open(ctx, lq_mpi_out_path(mj, pos[1]), &w);
    if (st != LQ_OK) {
        if (st == LQ_ERR_IO)
            fprintf(stderr,
                    "error: %s: cannot write there (only a new or regular file is "
                    "replaced; symlinks, FIFOs, devices and directories are refused)\n",
                    pos[1]);
        else
            fprintf(stderr, "error: %s: %s\n", pos[1], lq_status_str(st));
        goto out;
    }
    pr.t0 = lq_cli_now();
    pr.count = nsel;
    for (size_t i = 0; i < nsel; i++) {
        lq_tensor_info ti;
        lq_tfile_info(in, sel[i], &ti);
        pr.total_weight += (double)ti.numel;
    }
    for (size_t i = 0; i < nsel; i++) {
        lq_tensor_info ti;
        lq_tfile_info(in, sel[i], &ti);
        const char *name =
            lq_tfile_get_kind(in) == LQ_TFILE_NPY ? (tensor ? tensor : "weight") : ti.name;
        size_t rows = ti.shape[0], cols = ti.shape[1];
        pr.index = i;
        pr.name = name;
        pr.cur_weight = (double)ti.numel;
        res[i].name = name;
        if (!lq_mpi_mine(mj, i)) continue; /* another rank's */
        if (!quiet && !pr.tty)
            fprintf(stderr, "quantize: [%zu/%zu] " LQ_CLIP_FMT " (%zu x %zu) ...\n", i + 1, nsel,
                    LQ_CLIP(name), rows, cols);
        draw(&pr, 0);
        float *W = malloc(ti.numel * sizeof *W), *What = malloc(ti.numel * sizeof *What), *H;
        if (!W || !What) {
            free(W);
            free(What);
            lq_cli_fail("memory", LQ_ERR_NO_MEMORY);
            goto out;
        }
        st = lq_tfile_read_f32(in, sel[i], W, ti.numel);
        if (st != LQ_OK || get_hessian(ctx, &hs, name, cols, &H)) {
            if (st != LQ_OK)
                fprintf(stderr, "error: reading '" LQ_CLIP_FMT "': %s\n", LQ_CLIP(name),
                        lq_status_str(st));
            free(W);
            free(What);
            goto out;
        }
        double t0 = lq_cli_now();
        lq_qtensor *q = NULL;
        lq_quant_report rep;
        st = lq_quantize_ex(ctx, W, rows, cols, H, &m, &q, What, &rep);
        double secs = lq_cli_now() - t0;
        if (st != LQ_OK && pr.tty && !quiet) fputc('\n', stderr); /* end the bar */
        if (st != LQ_OK) {
            if (st == LQ_ERR_INVALID_ARG || st == LQ_ERR_UNSUPPORTED)
                fprintf(stderr,
                        "error: method '%s' failed on '" LQ_CLIP_FMT "' (%zu x %zu): %s\n"
                        "       (the options do not fit this shape, or the method is not "
                        "available in this build)\n",
                        method, LQ_CLIP(name), rows, cols, lq_status_str(st));
            else
                fprintf(stderr, "error: method '%s' failed on '" LQ_CLIP_FMT "': %s\n", method,
                        LQ_CLIP(name), lq_status_str(st));
            free(W);
            free(What);
            free(H);
            goto out;
        }
        double num = 0, den = 0;
        for (size_t k = 0; k < ti.numel; k++) {
            double d = (double)W[k] - What[k];
            num += d * d;
            den += (double)W[k] * W[k];
        }
        result *rr = &res[i];
        rr->rows = rows;
        rr->cols = cols;
        rr->rel_err = den > 0 ? sqrt(num / den) : sqrt(num);
        rr->proxy = rep.proxy_loss;
        rr->has_h = H != NULL;
        rr->rank = lq_mpi_rank(mj);
        rr->seconds = secs;
        lq_qtensor_bits_per_weight(q, &rr->bpw);
        st = lq_lqt_writer_add(w, name, q);
        lq_qtensor_free(q);
        free(W);
        free(What);
        free(H);
        if (st != LQ_OK) {
            fprintf(stderr, "error: writing '" LQ_CLIP_FMT "' to %s: %s\n", LQ_CLIP(name), pos[1],
                    lq_status_str(st));
            goto out;
        }
        pr.done_weight += pr.cur_weight;
        if (!quiet && !pr.tty)
            fprintf(stderr, "quantize: [%zu/%zu] " LQ_CLIP_FMT " done in %.2f s\n", i + 1, nsel,
                    LQ_CLIP(name), secs);
    }
    if (pr.tty && !quiet) { /* the bar at 100%, then leave it on its own line */
        pr.index = nsel - 1;
        pr.cur_weight = 0;
        pr.last_draw = 0;
        draw(&pr, 1.0);
        fputc('\n', stderr);
    }
    st = lq_lqt_writer_finish(w);
    w = NULL;
    if (st != LQ_OK) {
        fprintf(stderr, "error: finishing %s: %s\n", pos[1], lq_status_str(st));
        goto out;
    }
    if (lq_mpi_collect(mj, ctx, res, sizeof *res, offsetof(result, name), pos[1])) goto out;
    if (lq_mpi_rank(mj) != 0) { /* rank 0 reports for the job */
        rc = 0;
        goto out;
    }
    double total = lq_cli_now() - pr.t0, wsum = 0, bsum = 0;
    for (size_t i = 0; i < nsel; i++) {
        wsum += (double)res[i].rows * (double)res[i].cols;
        bsum += res[i].bpw * (double)res[i].rows * (double)res[i].cols;
    }
    if (json) {
        printf("{\"method\":");
        lq_cli_json_str(stdout, method);
        printf(",\"input\":");
        lq_cli_json_str(stdout, pos[0]);
        printf(",\"output\":");
        lq_cli_json_str(stdout, pos[1]);
        printf(",\"hessian\":%s,\"tensors\":[", hpath ? "\"file\"" : cpath ? "\"calib\"" : "null");
        for (size_t i = 0; i < nsel; i++) {
            const result *rr = &res[i];
            printf("%s{\"name\":", i ? "," : "");
            lq_cli_json_str(stdout, rr->name);
            printf(",\"rows\":%zu,\"cols\":%zu,\"bits_per_weight\":%.6f,\"rel_error\":%.6g,"
                   "\"proxy_loss\":",
                   rr->rows, rr->cols, rr->bpw, rr->rel_err);
            if (rr->has_h)
                printf("%.6g", rr->proxy);
            else
                printf("null");
            printf(",\"seconds\":%.4f", rr->seconds);
            if (mj) printf(",\"rank\":%d", rr->rank);
            putchar('}');
        }
        printf("],\"bits_per_weight\":%.6f,\"seconds\":%.4f}\n", wsum > 0 ? bsum / wsum : 0, total);
    } else {
        printf("%-32s %13s %8s %10s %12s %8s\n", "tensor", "shape", "bits/w", "rel.err",
               "proxy loss", "seconds");
        for (size_t i = 0; i < nsel; i++) {
            const result *rr = &res[i];
            char shape[32], proxy[24];
            snprintf(shape, sizeof shape, "%zux%zu", rr->rows, rr->cols);
            if (rr->has_h)
                snprintf(proxy, sizeof proxy, "%.4g", rr->proxy);
            else
                snprintf(proxy, sizeof proxy, "-");
            printf("%-32.32s %13s %8.3f %10.4g %12s %8.2f\n", rr->name, shape, rr->bpw, rr->rel_err,
                   proxy, rr->seconds);
        }
        printf("%zu tensor(s), %.3f bits per weight, %.2f s -> %s\n", nsel,
               wsum > 0 ? bsum / wsum : 0, total, pos[1]);
    }
    rc = 0;
out:
    lq_lqt_writer_abort(w);
    lq_tfile_close(in);
    lq_tfile_close(hs.hfile);
    free(hs.calib);
    free(hs.H);
    free(sel);
    free(res);
    lq_ctx_destroy(ctx);
    return lq_mpi_end(mj, rc);
}
