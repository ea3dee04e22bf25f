/*
 * lq bench gptq: seconds of INT GPTQ (lq_quantize, LQ_METHOD_INT) on a
 * synthetic layer with correlated inputs, beside round to nearest on the
 * same layer. Prints a table and one JSON line.
 *
 * Layer: W rows x cols heavy-tailed (Student-t, 4 degrees of freedom, scale
 * 0.02), X = Z A (nsamples x cols) with Z Gaussian (every 7th feature 4x
 * larger) and A = 0.3 I + G / sqrt(cols), H = 2/N X^T X. With --export DIR
 * the bench also writes W.npy, H.npy and What.npy (float32) so that the
 * PyTorch peer (bench/peers/gptq_torch.py) runs on the very same W and H
 * and compares losses with one formula.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "core/linalg.h"

/* CPU seconds of the process (all threads): on a shared machine wall time
 * depends on the load, CPU time much less. */
/* float32 C-order .npy (format 1.0) */
static int write_npy(const char *dir, const char *name, const float *a, size_t rows, size_t cols)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    char hdr[128];
    int n = snprintf(hdr, sizeof hdr,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }", rows, cols);
    size_t tot = 10 + (size_t)n + 1;
    size_t pad = (64 - tot % 64) % 64;
    unsigned short hl = (unsigned short)((size_t)n + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(hl & 0xff, f);
    fputc(hl >> 8, f);
    fwrite(hdr, 1, (size_t)n, f);
    for (size_t i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    size_t w = fwrite(a, sizeof *a, rows * cols, f);
    return fclose(f) == 0 && w == rows * cols ? 0 : -1;
}

int lq_bench_gptq(int argc, char **argv)
{
    size_t rows = 4096, cols = 4096, bits = 4, group = 128, threads = 0, reps = 3, nsamples = 0;
    size_t block = 128;
    int act = 0, sym = 0, clip = 0;
    double percdamp = 0.01;
    const char *exp = NULL;
    const lq_opt opts[] = {
        {"rows", LQ_OPT_SIZE, "output features (default 4096)", &rows},
        {"cols", LQ_OPT_SIZE, "input features (default 4096)", &cols},
        {"bits", LQ_OPT_SIZE, "bits 2..8 (default 4)", &bits},
        {"group", LQ_OPT_SIZE, "columns per scale, 0 = row (default 128)", &group},
        {"threads", LQ_OPT_SIZE, "threads (default: all cores)", &threads},
        {"reps", LQ_OPT_SIZE, "timed repetitions, median reported (default 3)", &reps},
        {"nsamples", LQ_OPT_SIZE, "calibration samples (default cols)", &nsamples},
        {"block", LQ_OPT_SIZE, "lazy-update block size (default 128)", &block},
        {"percdamp", LQ_OPT_DOUBLE, "damping fraction (default 0.01)", &percdamp},
        {"act-order", LQ_OPT_FLAG, "process columns by descending diag(H)", &act},
        {"symmetric", LQ_OPT_FLAG, "symmetric grid", &sym},
        {"mse-clip", LQ_OPT_FLAG, "MSE clipping search", &clip},
        {"export", LQ_OPT_STR, "directory for W.npy, H.npy, What.npy (PyTorch peer)", &exp},
    };
    int pr = lq_cli_parse(argc, argv, "lq bench gptq [options]", opts, sizeof opts / sizeof opts[0],
                          NULL, 0, NULL);
    if (pr <= 0) return pr == 0 ? 0 : 2;
    if (rows == 0 || cols == 0 || bits < 2 || bits > 8 || reps == 0) {
        fprintf(stderr, "error: bad sizes or bits\n");
        return 2;
    }
    if (nsamples == 0) nsamples = cols;
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.n_threads = threads;
    lq_ctx *ctx = NULL;
    lq_status st = lq_ctx_create(&cfg, &ctx);
    if (st != LQ_OK) return lq_cli_fail("context", st);
    float *W = malloc(rows * cols * sizeof *W), *H = malloc(cols * cols * sizeof *H);
    float *Q = malloc(rows * cols * sizeof *Q);
    double *times = malloc(reps * sizeof *times), *rt = malloc(reps * sizeof *rt);
    double *cpu = malloc(reps * sizeof *cpu);
    int rc = 1;
    if (!W || !H || !Q || !times || !rt || !cpu) {
        st = LQ_ERR_NO_MEMORY;
        goto fail;
    }
    double t0 = lq_cli_now();
    st = lq_cli_bench_layer(ctx, rows, cols, nsamples, W, H);
    if (st != LQ_OK) goto fail;
    fprintf(stderr, "layer %zu x %zu, %zu samples: %.1f s\n", rows, cols, nsamples,
            lq_cli_now() - t0);
    lq_method m;
    lq_method_init(&m, LQ_METHOD_INT);
    m.u.int_.bits = (unsigned)bits;
    m.u.int_.group = group;
    m.u.int_.symmetric = sym;
    m.u.int_.mse_clip = clip;
    m.engine.act_order = act;
    m.engine.block_size = block;
    m.engine.percdamp = percdamp;
    lq_quant_report rep;
    for (size_t i = 0; i < reps; i++) {
        lq_qtensor *t = NULL;
        double c0 = lq_cli_cpu_now();
        t0 = lq_cli_now();
        st = lq_quantize(ctx, W, rows, cols, H, &m, &t, Q);
        times[i] = lq_cli_now() - t0;
        cpu[i] = lq_cli_cpu_now() - c0;
        lq_qtensor_free(t);
        if (st != LQ_OK) goto fail;
    }
    /* report (damping, loss) from one more untimed run */
    lq_qtensor *t = NULL;
    if ((st = lq_quantize_ex(ctx, W, rows, cols, H, &m, &t, Q, &rep)) != LQ_OK) goto fail;
    double bpw = 0;
    lq_qtensor_bits_per_weight(t, &bpw);
    lq_qtensor_free(t);
    if (exp && (write_npy(exp, "W.npy", W, rows, cols) || write_npy(exp, "H.npy", H, cols, cols) ||
                write_npy(exp, "What.npy", Q, rows, cols))) {
        fprintf(stderr, "error: cannot write to %s\n", exp);
        goto fail;
    }
    m.engine.rtn = 1;
    lq_quant_report rrep;
    for (size_t i = 0; i < reps; i++) {
        t0 = lq_cli_now();
        st = lq_quantize_ex(ctx, W, rows, cols, H, &m, &t, NULL, NULL);
        rt[i] = lq_cli_now() - t0;
        lq_qtensor_free(t);
        if (st != LQ_OK) goto fail;
    }
    if ((st = lq_quantize_ex(ctx, W, rows, cols, H, &m, &t, NULL, &rrep)) != LQ_OK) goto fail;
    lq_qtensor_free(t);
    double sec = lq_cli_median(times, reps), rsec = lq_cli_median(rt, reps);
    double csec = lq_cli_median(cpu, reps);
    size_t nth = lq_ctx_threads(ctx);
    printf("%-12s %6s %6s %4s %5s %7s %10s %14s %8s\n", "method", "rows", "cols", "bits", "group",
           "threads", "seconds", "proxy_loss", "bpw");
    printf("%-12s %6zu %6zu %4zu %5zu %7zu %10.3f %14.6g %8.4f\n", act ? "gptq-act" : "gptq", rows,
           cols, bits, group, nth, sec, rep.proxy_loss, bpw);
    printf("%-12s %6zu %6zu %4zu %5zu %7zu %10.3f %14.6g %8.4f\n", "rtn", rows, cols, bits, group,
           nth, rsec, rrep.proxy_loss, bpw);
    printf("gptq/rtn proxy-loss ratio %.4f, damping %.4g, gptq cpu seconds %.3f\n",
           rep.proxy_loss / rrep.proxy_loss, rep.damping, csec);
    printf(
        "{\"bench\":\"gptq\",\"rows\":%zu,\"cols\":%zu,\"bits\":%zu,\"group\":%zu,\"threads\":%zu,"
        "\"act_order\":%d,\"block\":%zu,\"reps\":%zu,\"seconds\":%.4f,\"cpu_seconds\":%.4f,"
        "\"proxy_loss\":%.9g,"
        "\"rtn_seconds\":%.4f,\"rtn_proxy_loss\":%.9g,\"loss_ratio_vs_rtn\":%.6f,"
        "\"damping\":%.6g,\"bits_per_weight\":%.5f}\n",
        rows, cols, bits, group, nth, act, block, reps, sec, csec, rep.proxy_loss, rsec,
        rrep.proxy_loss, rep.proxy_loss / rrep.proxy_loss, rep.damping, bpw);
    rc = 0;
fail:
    if (rc) {
        if (st != LQ_OK) lq_cli_fail("gptq", st);
    }
    free(W);
    free(H);
    free(Q);
    free(times);
    free(rt);
    free(cpu);
    lq_ctx_destroy(ctx);
    return rc;
}
