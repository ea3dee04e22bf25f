/*
 * lq bench matvec: products on the codes of every format (exact and fast
 * kernels) beside, in the same run, the machine's streaming read bandwidth
 * and dequantize-then-GEMV. lq bench stream: the read bandwidth alone.
 *
 * Memory-bound figures need weights larger than the last-level cache: by
 * default the benchmark rotates through enough copies of the tensor to
 * exceed 2x the LLC (--hot uses one copy: cache-resident figures).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "core/linalg.h"
#include "methodopt.h"
#include "core/internal.h"
#include "qtensor/qtensor_internal.h"
#include "products/products.h"

/* Wall clock, or with --cpu-time the process CPU time (lq bench stream). */
static int g_cpu_time;

/* Process CPU time (every thread of the process). */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now(void) { return g_cpu_time ? cpu_now() : lq_cli_now(); }

/* ---- streaming read bandwidth --------------------------------------------- */
typedef struct stream_job {
    const uint64_t *buf;
    size_t n, chunk;
    uint64_t *sink;
} stream_job;

static void stream_task(void *arg, size_t i)
{
    stream_job *j = arg;
    size_t a = i * j->chunk, b = a + j->chunk > j->n ? j->n : a + j->chunk;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    for (size_t k = a; k + 8 <= b; k += 8) {
        s0 ^= j->buf[k];
        s1 ^= j->buf[k + 1];
        s2 ^= j->buf[k + 2];
        s3 ^= j->buf[k + 3];
        s4 ^= j->buf[k + 4];
        s5 ^= j->buf[k + 5];
        s6 ^= j->buf[k + 6];
        s7 ^= j->buf[k + 7];
    }
    j->sink[i * 8] = s0 ^ s1 ^ s2 ^ s3 ^ s4 ^ s5 ^ s6 ^ s7;
}

/* Median GB/s of reading `mib` MiB with the context's threads. */
static double stream_gbs(lq_ctx *ctx, size_t mib, size_t reps)
{
    size_t n = mib * (1u << 20) / 8;
    uint64_t *buf = lq_alloc_array(ctx, n, 8);
    size_t nt = lq_ctx_threads(ctx);
    uint64_t *sink = lq_calloc_array(ctx, 8 * nt, 8);
    if (!buf || !sink) {
        lq_free(ctx, buf);
        lq_free(ctx, sink);
        return 0.0;
    }
    for (size_t i = 0; i < n; i++) buf[i] = i * 0x9E3779B97F4A7C15ull;
    stream_job j = {buf, n, (n + nt - 1) / nt, sink};
    double t[64];
    if (reps > 64) reps = 64;
    for (size_t r = 0; r < reps; r++) {
        double t0 = now();
        lq_parallel_for(ctx, nt, stream_task, &j);
        t[r] = now() - t0;
    }
    double med = lq_cli_median(t, reps);
    lq_free(ctx, buf);
    lq_free(ctx, sink);
    return (double)n * 8 / med / 1e9;
}

int lq_bench_stream(int argc, char **argv)
{
    size_t threads = 1, mib = 512, reps = 9;
    const lq_opt opts[] = {
        {"threads", LQ_OPT_SIZE, "threads (default 1)", &threads},
        {"mib", LQ_OPT_SIZE, "buffer size in MiB (default 512)", &mib},
        {"reps", LQ_OPT_SIZE, "repetitions, median reported (default 9)", &reps},
        {"cpu-time", LQ_OPT_FLAG, "time with process CPU time (1 thread, shared machine)",
         &g_cpu_time},
    };
    int r =
        lq_cli_parse(argc, argv, "lq bench stream [--threads T] [--mib M]", opts, 4, NULL, 0, NULL);
    if (r <= 0) return r < 0 ? 2 : 0;
    if (mib == 0 || reps == 0) return lq_cli_fail("options", LQ_ERR_INVALID_ARG);
    lq_ctx *ctx;
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.n_threads = threads;
    lq_status st = lq_ctx_create(&cfg, &ctx);
    if (st != LQ_OK) return lq_cli_fail("context", st);
    double gbs = stream_gbs(ctx, mib, reps);
    printf("stream read  threads %zu  %zu MiB  %.1f GB/s\n", threads, mib, gbs);
    printf("{\"bench\":\"stream\",\"threads\":%zu,\"mib\":%zu,\"gbs\":%.2f}\n", threads, mib, gbs);
    lq_ctx_destroy(ctx);
    return gbs > 0 ? 0 : 1;
}

/* ---- tensors to multiply ----------------------------------------------------- */
static void fill_gauss(float *x, size_t n, uint64_t seed)
{
    lq_rng r;
    lq_rng_init(&r, seed, 7);
    for (size_t i = 0; i < n; i++) x[i] = (float)lq_rng_gaussian(&r);
}

/* The method each format is benchmarked with by default (--format F), and
 * the format a method writes. */
static const struct {
    const char *format;
    lq_method_kind method;
} g_format_methods[] = {{"int", LQ_METHOD_INT},
                        {"e8", LQ_METHOD_NESTQUANT},
                        {"vq", LQ_METHOD_GPTVQ},
                        {"bcq", LQ_METHOD_BCQ},
                        {"aq", LQ_METHOD_AQLM}};

static int method_of_format(const char *s, lq_method_kind *k)
{
    for (size_t i = 0; i < sizeof g_format_methods / sizeof g_format_methods[0]; i++)
        if (!strcmp(s, g_format_methods[i].format)) {
            *k = g_format_methods[i].method;
            return 1;
        }
    return 0;
}

/* Rows [0, rows) of a new AQ tensor whose row r is row r % fit of t (an AQ
 * tensor of fit rows): the codebooks are shared by all rows and the codes
 * and scales are row-major (src/mcq/aq_internal.h), so the result is the
 * layout the method emits for `rows` rows, with the codebooks it fitted on
 * the first `fit`. */
static lq_status stack_aq_rows(lq_ctx *ctx, const lq_qtensor *t, size_t rows, lq_qtensor **out)
{
    lq_qtensor *c;
    lq_status st = lq_qtensor_new(ctx, t->format, rows, t->cols, &c);
    if (st != LQ_OK) return st;
    memcpy(c->ip, t->ip, sizeof c->ip);
    memcpy(c->fp, t->fp, sizeof c->fp);
    for (size_t i = 0; i < t->nsec && st == LQ_OK; i++) {
        const lq_qsection *s = &t->sec[i];
        int per_row = s->tag == LQ_SEC_CODES || s->tag == LQ_SEC_SCALES;
        size_t rb = s->nbytes / t->rows, n = per_row ? rb * rows : s->nbytes;
        uint8_t *d = lq_qtensor_add_section(c, s->tag, s->elem_size, n);
        if (!d) {
            st = LQ_ERR_NO_MEMORY;
            break;
        }
        if (!per_row)
            memcpy(d, s->data, n);
        else
            for (size_t r = 0; r < rows; r++)
                memcpy(d + r * rb, (const uint8_t *)s->data + (r % t->rows) * rb, rb);
    }
    if (st == LQ_OK) st = lq_qtensor_validate(c);
    if (st != LQ_OK) {
        lq_qtensor_free(c);
        return st;
    }
    *out = c;
    return LQ_OK;
}

/* The tensor to multiply: a Gaussian weight quantized through lq_quantize
 * with method m (its defaults plus the command-line options), without a
 * Hessian (H = NULL: plain MSE; engine methods then round to nearest).
 * The layout is the one the method emits; only the values differ from a
 * calibrated run, and the kernels' speed does not depend on them. With
 * fit > 0 (AQLM only: its fit is slow on benchmark shapes) the method
 * quantizes the first `fit` rows and the other rows repeat their codes. */
static lq_status make_tensor(lq_ctx *ctx, const lq_method *m, size_t rows, size_t cols, size_t fit,
                             lq_qtensor **out)
{
    size_t n;
    if (fit >= rows) fit = 0;
    if (fit && m->kind != LQ_METHOD_AQLM) return LQ_ERR_INVALID_ARG;
    size_t qrows = fit ? fit : rows;
    if (!lq_mul_ok(qrows, cols, &n)) return LQ_ERR_INVALID_ARG;
    float *W = lq_alloc_array(ctx, n, sizeof(float));
    if (!W) return LQ_ERR_NO_MEMORY;
    fill_gauss(W, n, 1);
    lq_qtensor *t = NULL;
    lq_status st = lq_quantize(ctx, W, qrows, cols, NULL, m, &t, NULL);
    lq_free(ctx, W);
    if (st != LQ_OK || !fit) {
        if (st == LQ_OK) *out = t;
        return st;
    }
    st = stack_aq_rows(ctx, t, rows, out);
    lq_qtensor_free(t);
    return st;
}

/* A copy of t with its own memory (rotating copies defeat the LLC). */
static lq_status clone_tensor(lq_ctx *ctx, const lq_qtensor *t, lq_qtensor **out)
{
    lq_qtensor *c;
    lq_status st = lq_qtensor_new(ctx, t->format, t->rows, t->cols, &c);
    if (st != LQ_OK) return st;
    memcpy(c->ip, t->ip, sizeof c->ip);
    memcpy(c->fp, t->fp, sizeof c->fp);
    for (size_t i = 0; i < t->nsec; i++) {
        void *d = lq_qtensor_add_section(c, t->sec[i].tag, t->sec[i].elem_size, t->sec[i].nbytes);
        if (!d) {
            lq_qtensor_free(c);
            return LQ_ERR_NO_MEMORY;
        }
        memcpy(d, t->sec[i].data, t->sec[i].nbytes);
    }
    *out = c;
    return LQ_OK;
}

/* ---- the format's reference product (the path without kernels) ------------- */
typedef struct ref_job {
    const lq_qtensor *t;
    const float *X;
    float *Y;
    size_t batch;
    lq_simd_level level;
    lq_status st;
} ref_job;

static void ref_task(void *arg, size_t i)
{
    ref_job *j = arg;
    size_t r0 = i * 64, r1 = r0 + 64 > j->t->rows ? j->t->rows : r0 + 64;
    lq_status st =
        lq_format_lookup(j->t->format)->matmul_rows(j->t, j->X, j->batch, j->Y, r0, r1, j->level);
    if (st != LQ_OK) __atomic_store_n(&j->st, st, __ATOMIC_RELAXED);
}

/* ---- dequantize-then-GEMV baseline ------------------------------------------ */
typedef struct gemv_job {
    const float *W, *X;
    float *Y;
    size_t rows, cols, batch;
} gemv_job;

static void gemv_task(void *arg, size_t i)
{
    gemv_job *j = arg;
    size_t r0 = i * 64, r1 = r0 + 64 > j->rows ? j->rows : r0 + 64;
    for (size_t r = r0; r < r1; r++) {
        const float *w = j->W + r * j->cols;
        for (size_t b = 0; b < j->batch; b++) {
            const float *x = j->X + b * j->cols;
            float s[8] = {0};
            size_t c = 0;
            for (; c + 8 <= j->cols; c += 8)
                for (int k = 0; k < 8; k++) s[k] += w[c + k] * x[c + k];
            float t = 0;
            for (; c < j->cols; c++) t += w[c] * x[c];
            for (int k = 0; k < 8; k++) t += s[k];
            j->Y[b * j->rows + r] = t;
        }
    }
}

/* ---- the benchmark ------------------------------------------------------------ */
typedef struct result {
    const char *name;
    double wbytes;    /* weight bytes read per call */
    double wall, cpu; /* median seconds per call: wall clock and process CPU time */
} result;

/* Bytes the row kernels read per call for the weights: the kernel layout
 * when the format has one for this tensor (its record's pack_bytes), else
 * the stored tensor (the reference path reads the sections). *what names
 * which. */
static double kernel_bytes(const lq_qtensor *t, double stored, const char **what)
{
    const lq_kern_format *kf = lq_kern_lookup(t->format);
    const void *pk = NULL;
    *what = "stored sections (reference path)";
    if (!kf || lq_kern_pack(t, kf, &pk) != LQ_OK || !pk) return stored;
    if (!kf->pack_bytes) {
        *what = "stored sections (format record does not count its layout)";
        return stored;
    }
    *what = "kernel layout";
    return (double)kf->pack_bytes(pk);
}

int lq_bench_matvec(int argc, char **argv)
{
    const char *fmt = NULL, *method_s = NULL, *mode_s = "both";
    size_t rows = 4096, cols = 4096, batch = 1, threads = 1, reps = 0, copies = 0, fit = 0;
    int hot = 0, no_deq = 0, no_stream = 0, do_ref = 0;
    double min_time = 0.5;
    lq_cli_qopts qo;
    lq_cli_qopts_init(&qo);
    lq_opt opts[16 + LQ_CLI_NMETHOD_OPTS] = {
        {"format", LQ_OPT_STR, "int | e8 | vq | bcq | aq: its default method (default int)", &fmt},
        {"method", LQ_OPT_STR, "int | nestquant | gptvq | gptqt | bcq | aqlm (overrides --format)",
         &method_s},
        {"rows", LQ_OPT_SIZE, "output features (default 4096)", &rows},
        {"cols", LQ_OPT_SIZE, "input features (default 4096)", &cols},
        {"batch", LQ_OPT_SIZE, "activation vectors, 1..64 (default 1)", &batch},
        {"threads", LQ_OPT_SIZE, "threads (default 1)", &threads},
        {"mode", LQ_OPT_STR, "exact | fast | both (default both)", &mode_s},
        {"hot", LQ_OPT_FLAG, "one copy of the weights (cache-resident if it fits)", &hot},
        {"copies", LQ_OPT_SIZE, "copies rotated through (default: > 2x LLC)", &copies},
        {"reps", LQ_OPT_SIZE, "minimum repetitions (default: enough for --min-time)", &reps},
        {"min-time", LQ_OPT_DOUBLE, "seconds per measurement (default 0.5)", &min_time},
        {"no-deq", LQ_OPT_FLAG, "skip the dequantize-then-GEMV baseline", &no_deq},
        {"no-stream", LQ_OPT_FLAG, "skip the streaming bandwidth measurement", &no_stream},
        {"reference", LQ_OPT_FLAG, "also time the format's reference product (no kernels)",
         &do_ref},
        {"fit-rows", LQ_OPT_SIZE, "aqlm: fit the first N rows, repeat their codes (default 0: all)",
         &fit},
    };
    size_t nopts = 15;
    nopts += lq_cli_qopts_table(&qo, opts + nopts);
    int pr = lq_cli_parse(argc, argv,
                          "lq bench matvec [--format F | --method M [method options]] --rows R "
                          "--cols C --batch N [--threads T]",
                          opts, nopts, NULL, 0, NULL);
    if (pr <= 0) return pr < 0 ? 2 : 0;
    lq_method_kind kind = LQ_METHOD_INT;
    if (method_s) {
        if (lq_cli_method_kind(method_s, &kind)) {
            fprintf(stderr, "error: unknown method '" LQ_CLIP_FMT "' (%s)\n", LQ_CLIP(method_s),
                    lq_cli_method_list());
            return 2;
        }
    } else if (fmt && !method_of_format(fmt, &kind)) {
        fprintf(stderr, "error: unknown format '" LQ_CLIP_FMT "'\n", LQ_CLIP(fmt));
        return 2;
    }
    lq_method method;
    lq_method_init(&method, kind);
    if (lq_cli_qopts_apply(&qo, &method)) return 2;
    int do_exact = strcmp(mode_s, "fast") != 0, do_fast = strcmp(mode_s, "exact") != 0;
    if (rows == 0 || cols == 0 || batch == 0 || batch > 64 || threads == 0 ||
        (!do_exact && !do_fast))
        return lq_cli_fail("options", LQ_ERR_INVALID_ARG);

    lq_ctx *ctx;
    lq_ctx_config cfg;
    lq_ctx_config_init(&cfg);
    cfg.n_threads = threads;
    lq_status st = lq_ctx_create(&cfg, &ctx);
    if (st != LQ_OK) return lq_cli_fail("context", st);

    lq_qtensor *t0 = NULL;
    double tq0 = lq_cli_now();
    st = make_tensor(ctx, &method, rows, cols, fit, &t0);
    double tq = lq_cli_now() - tq0;
    if (st != LQ_OK) {
        lq_ctx_destroy(ctx);
        return lq_cli_fail("quantizing the tensor", st);
    }
    lq_format f = t0->format;
    double bpw;
    lq_qtensor_bits_per_weight(t0, &bpw);
    double stored = bpw * (double)rows * (double)cols / 8.0;
    const char *kwhat;
    double bytes = kernel_bytes(t0, stored, &kwhat);
    double kbpw = 8.0 * bytes / ((double)rows * (double)cols);
    size_t llc = lq_cache_l3() ? lq_cache_l3() : (32u << 20);
    if (copies == 0) copies = hot ? 1 : (size_t)(2.0 * (double)llc / bytes) + 1;
    if (copies > 256) copies = 256;
    lq_qtensor **T = lq_calloc_array(ctx, copies, sizeof *T);
    float *X = lq_alloc_array(ctx, batch * cols, sizeof(float));
    float *Y = lq_alloc_array(ctx, batch * rows, sizeof(float));
    if (!T || !X || !Y) {
        st = LQ_ERR_NO_MEMORY;
        goto done;
    }
    T[0] = t0;
    t0 = NULL;
    for (size_t i = 1; i < copies && st == LQ_OK; i++) st = clone_tensor(ctx, T[0], &T[i]);
    for (size_t i = 0; i < copies && st == LQ_OK; i++) st = lq_qtensor_prepare(ctx, T[i]);
    if (st != LQ_OK) goto done;
    fill_gauss(X, batch * cols, 2);

    double gbs_stream = no_stream ? 0.0 : stream_gbs(ctx, 512, 5);
    /* accuracy of the fast path against the exact one, same inputs */
    double fast_err = -1.0;
    if (do_exact && do_fast) {
        float *Ye = lq_alloc_array(ctx, batch * rows, sizeof(float));
        if (!Ye) {
            st = LQ_ERR_NO_MEMORY;
            goto done;
        }
        st = lq_matmul_ex(ctx, T[0], X, batch, Ye, LQ_KERNEL_EXACT);
        if (st == LQ_OK) st = lq_matmul_ex(ctx, T[0], X, batch, Y, LQ_KERNEL_FAST);
        double num = 0, den = 0;
        for (size_t i = 0; i < batch * rows; i++) {
            num += ((double)Y[i] - Ye[i]) * ((double)Y[i] - Ye[i]);
            den += (double)Ye[i] * Ye[i];
        }
        fast_err = den > 0 ? sqrt(num / den) : 0.0;
        lq_free(ctx, Ye);
        if (st != LQ_OK) goto done;
    }
    result res[7];
    size_t nres = 0;
    for (int pass = 0; pass < 2; pass++) {
        if ((pass == 0 && !do_exact) || (pass == 1 && !do_fast)) continue;
        lq_kernel_mode mode = pass ? LQ_KERNEL_FAST : LQ_KERNEL_EXACT;
        double tw[4096], tc[4096];
        size_t n = 0;
        double start = lq_cli_now();
        st = lq_matmul_ex(ctx, T[0], X, batch, Y, mode); /* warm up */
        while (st == LQ_OK && n < 4096 && (n < 5 || n < reps || lq_cli_now() - start < min_time)) {
            double a = lq_cli_now(), ac = cpu_now();
            st = lq_matmul_ex(ctx, T[(n + 1) % copies], X, batch, Y, mode);
            tc[n] = cpu_now() - ac;
            tw[n++] = lq_cli_now() - a;
        }
        if (st != LQ_OK) goto done;
        res[nres].name = pass ? "codes-fast" : "codes-exact";
        res[nres].wbytes = bytes;
        res[nres].wall = lq_cli_median(tw, n);
        res[nres++].cpu = lq_cli_median(tc, n);
    }
    if (do_ref) {
        /* the format's reference matmul_rows on the stored sections, split in
         * 64-row chunks like lq_matmul's fallback: what the products ran
         * before the format had kernels */
        double tw[64], tc[64];
        size_t n = 0;
        double start = lq_cli_now();
        while (n < 64 && (n < 3 || lq_cli_now() - start < min_time)) {
            ref_job rj = {T[n % copies], X, Y, batch, lq_simd_for(ctx), LQ_OK};
            double a = lq_cli_now(), ac = cpu_now();
            lq_parallel_for(ctx, lq_chunks(rows, 64), ref_task, &rj);
            tc[n] = cpu_now() - ac;
            tw[n++] = lq_cli_now() - a;
            st = rj.st;
            if (st != LQ_OK) goto done;
        }
        res[nres++] = (result){"reference", stored, lq_cli_median(tw, n), lq_cli_median(tc, n)};
    }
    if (!no_deq) {
        /* fp32 baselines on one copy's dequantized weights (rows x cols
         * floats; larger than the LLC for the default shapes): a plain
         * GEMV loop and the library's own threaded fp32 GEMM (lq_sgemm,
         * Y = X W^T), each timed alone; deq+gemv adds lq_dequantize. */
        float *Wf = lq_alloc_array(ctx, rows * cols, sizeof(float));
        if (!Wf) {
            st = LQ_ERR_NO_MEMORY;
            goto done;
        }
        double td[64], tg[64], tgc[64], ts[64], tsc[64];
        size_t n = 0;
        double start = lq_cli_now();
        while (n < 64 && (n < 5 || lq_cli_now() - start < 2 * min_time)) {
            double a = lq_cli_now();
            st = lq_dequantize(ctx, T[n % copies], Wf);
            double b = lq_cli_now(), bc = cpu_now();
            gemv_job gj = {Wf, X, Y, rows, cols, batch};
            lq_parallel_for(ctx, lq_chunks(rows, 64), gemv_task, &gj);
            double c = lq_cli_now(), cc = cpu_now();
            if (st == LQ_OK)
                st = lq_sgemm(ctx, LQ_NO_TRANS, LQ_TRANS, batch, rows, cols, 1.0f, X, cols, Wf,
                              cols, 0.0f, Y, rows);
            ts[n] = lq_cli_now() - c;
            tsc[n] = cpu_now() - cc;
            td[n] = c - a;
            tg[n] = c - b;
            tgc[n++] = cc - bc;
            if (st != LQ_OK) break;
        }
        lq_free(ctx, Wf);
        if (st != LQ_OK) goto done;
        double f32 = 4.0 * (double)rows * (double)cols;
        res[nres++] = (result){"deq+gemv", bytes, lq_cli_median(td, n), 0.0};
        res[nres++] = (result){"f32 gemv", f32, lq_cli_median(tg, n), lq_cli_median(tgc, n)};
        res[nres++] = (result){"f32 sgemm", f32, lq_cli_median(ts, n), lq_cli_median(tsc, n)};
    }
    /* the fp32 baseline: the faster of the two fp32 paths of this run */
    double base = 0;
    for (size_t i = 0; i < nres; i++)
        if (!strncmp(res[i].name, "f32", 3) && (base == 0 || res[i].wall < base))
            base = res[i].wall;

    double flops = 2.0 * (double)rows * (double)cols * (double)batch;
    printf("matvec %s (method %s) %zux%zu batch %zu  threads %zu  dispatch %s  quantized in %.1f s",
           lq_format_name(f), lq_cli_method_name(kind), rows, cols, batch, threads,
           lq_simd_name(lq_simd_for(ctx)), tq);
    if (fit && fit < rows) printf(" (first %zu rows fitted, codes repeated)", fit);
    printf("\n");
    printf("stored %.3f bits/weight (%.2f MiB); the kernels read %.3f bits/weight (%.2f MiB, %s)\n",
           bpw, stored / 1048576.0, kbpw, bytes / 1048576.0, kwhat);
    printf("copies %zu x %.1f MiB = %.0f MiB vs LLC %.0f MiB: %s\n", copies, bytes / 1048576.0,
           bytes * (double)copies / 1048576.0, (double)llc / 1048576.0,
           bytes * (double)copies > 2.0 * (double)llc ? "memory-bound (weights from DRAM)"
                                                      : "CACHE-RESIDENT figures");
    if (!no_stream) printf("streaming read bandwidth: %.1f GB/s\n", gbs_stream);
    {
        const lq_kern_format *kf = lq_kern_lookup(f);
        const void *pk = NULL;
        if (kf && lq_kern_pack(T[0], kf, &pk) == LQ_OK && pk)
            printf("per-call activation data (tables or int8 blocks, cache-resident, not in "
                   "GB/s): exact %.2f MiB, fast %.2f MiB\n",
                   (double)kf->act_bytes(pk, batch, LQ_KERNEL_EXACT) / 1048576.0,
                   (double)kf->act_bytes(pk, batch, LQ_KERNEL_FAST) / 1048576.0);
    }
    if (fast_err >= 0) printf("fast vs exact: relative L2 error %.2e\n", fast_err);
    printf("%-12s %10s %10s %10s %9s %9s %8s %8s\n", "path", "us/call", "cpu us", "us/token",
           "GB/s", "GFLOP/s", "%stream", "vs f32");
    for (size_t i = 0; i < nres; i++) {
        double gbs = res[i].wbytes / res[i].wall / 1e9;
        printf("%-12s %10.1f %10.1f %10.2f %9.1f %9.1f %7.0f%% %7.2fx\n", res[i].name,
               res[i].wall * 1e6, res[i].cpu * 1e6, res[i].wall * 1e6 / (double)batch, gbs,
               flops / res[i].wall / 1e9, gbs_stream > 0 ? 100.0 * gbs / gbs_stream : 0.0,
               base > 0 ? base / res[i].wall : 0.0);
    }
    printf("{\"bench\":\"matvec\",\"format\":\"%s\",\"method\":\"%s\",\"rows\":%zu,\"cols\":%zu,"
           "\"batch\":%zu,\"bpw\":%.4f,\"kernel_bpw\":%.4f,\"threads\":%zu,\"dispatch\":\"%s\","
           "\"copies\":%zu,\"memory_bound\":%d,\"stream_gbs\":%.2f",
           lq_format_name(f), lq_cli_method_name(kind), rows, cols, batch, bpw, kbpw, threads,
           lq_simd_name(lq_simd_for(ctx)), copies, bytes * (double)copies > 2.0 * (double)llc,
           gbs_stream);
    if (fast_err >= 0) printf(",\"fast_rel_err\":%.3e", fast_err);
    for (size_t i = 0; i < nres; i++)
        printf(",\"%s_us\":%.2f,\"%s_cpu_us\":%.2f", res[i].name, res[i].wall * 1e6, res[i].name,
               res[i].cpu * 1e6);
    printf("}\n");
done:
    if (T)
        for (size_t i = 0; i < copies; i++) lq_qtensor_free(T[i]);
    lq_qtensor_free(t0);
    lq_free(ctx, T);
    lq_free(ctx, X);
    lq_free(ctx, Y);
    lq_ctx_destroy(ctx);
    return st == LQ_OK ? 0 : lq_cli_fail("benchmark", st);
}
