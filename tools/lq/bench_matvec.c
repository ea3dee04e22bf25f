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
#include "core/internal.h"
#include "qtensor/qtensor_internal.h"
#include "products/products.h"

/* Wall clock, or with --cpu-time the process CPU time (for a 1-thread run
 * on a shared machine: time actually spent running, not waiting). */
static int g_cpu_time;

static double now(void)
{
    if (!g_cpu_time) return lq_cli_now();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

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
    int r = lq_cli_parse(argc, argv, "lq bench stream [--threads T] [--mib M]", opts, 4, NULL, 0,
                         NULL);
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

static int parse_format(const char *s, lq_format *f)
{
    static const struct {
        const char *name;
        lq_format f;
    } names[] = {{"int", LQ_FORMAT_INT}, {"e8", LQ_FORMAT_E8}, {"vq", LQ_FORMAT_VQ},
                 {"bcq", LQ_FORMAT_BCQ}, {"aq", LQ_FORMAT_AQ}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i].name)) {
            *f = names[i].f;
            return 1;
        }
    return 0;
}

static uint16_t half_of(float f)
{
    /* positive normal floats only (bench values): truncating conversion */
    uint32_t u;
    memcpy(&u, &f, 4);
    int e = (int)((u >> 23) & 0xff) - 127 + 15;
    if (e <= 0) return 0;
    return (uint16_t)(((u >> 16) & 0x8000u) | ((uint32_t)e << 10) | ((u >> 13) & 0x3ffu));
}

static void fill_bytes(uint8_t *p, size_t n, uint64_t seed)
{
    lq_rng r;
    lq_rng_init(&r, seed, 3);
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = lq_rng_next(&r);
        for (size_t k = 0; k < 8 && i + k < n; k++) p[i + k] = (uint8_t)(v >> (8 * k));
    }
}

static void fill_halves(uint8_t *p, size_t n, float lo, float hi, uint64_t seed)
{
    lq_rng r;
    lq_rng_init(&r, seed, 4);
    for (size_t i = 0; i < n; i++) {
        float v = lo + (hi - lo) * (float)lq_rng_uniform(&r);
        uint16_t h = half_of(v < 0 ? -v : v);
        if (v < 0) h |= 0x8000u;
        p[2 * i] = (uint8_t)(h & 0xff);
        p[2 * i + 1] = (uint8_t)(h >> 8);
    }
}

/* A tensor of the format at about `bits` bits per weight. INT and E8 are
 * quantized (round to nearest) from a Gaussian weight; BCQ, VQ and AQ get
 * random codes and side data in their documented layouts (their fits are
 * too slow for benchmark shapes, and the kernels' speed does not depend on
 * the values). */
static lq_status make_tensor(lq_ctx *ctx, lq_format f, size_t rows, size_t cols, unsigned bits,
                             lq_qtensor **out)
{
    size_t n;
    if (!lq_mul_ok(rows, cols, &n)) return LQ_ERR_INVALID_ARG;
    lq_method m;
    lq_status st = LQ_ERR_UNSUPPORTED;
    lq_qtensor *t = NULL;
    if (f == LQ_FORMAT_INT || f == LQ_FORMAT_E8) {
        float *W = lq_alloc_array(ctx, n, sizeof(float));
        if (!W) return LQ_ERR_NO_MEMORY;
        fill_gauss(W, n, 1);
        if (f == LQ_FORMAT_INT) {
            lq_method_init(&m, LQ_METHOD_INT);
            m.u.int_.bits = bits;
        } else {
            lq_method_init(&m, LQ_METHOD_NESTQUANT);
            m.u.nestquant.q = 1u << bits; /* 8 log2 q bits per 8 weights */
        }
        m.engine.rtn = 1;
        st = lq_quantize(ctx, W, rows, cols, NULL, &m, out, NULL);
        lq_free(ctx, W);
        return st;
    }
    st = lq_qtensor_new(ctx, f, rows, cols, &t);
    if (st != LQ_OK) return st;
    st = LQ_ERR_NO_MEMORY;
    if (f == LQ_FORMAT_BCQ) {
        /* k = bits planes, group 128, offsets, half side values */
        size_t k = bits, group = 128 < cols ? 128 : cols, ng = (cols + group - 1) / group;
        size_t bpr = (cols + 7) / 8;
        t->ip[0] = (uint32_t)k;
        t->ip[1] = (uint32_t)group;
        t->ip[2] = 1;
        t->ip[3] = 2;
        uint8_t *c = lq_qtensor_add_section(t, LQ_SEC_CODES, 1, k * rows * bpr);
        uint8_t *a = lq_qtensor_add_section(t, LQ_SEC_ALPHAS, 2, 2 * rows * ng * k);
        uint8_t *o = lq_qtensor_add_section(t, LQ_SEC_OFFSETS, 2, 2 * rows * ng);
        if (c && a && o) {
            fill_bytes(c, k * rows * bpr, 1);
            fill_halves(a, rows * ng * k, 0.01f, 0.1f, 2);
            fill_halves(o, rows * ng, -0.01f, 0.01f, 3);
            st = LQ_OK;
        }
    } else if (f == LQ_FORMAT_VQ) {
        /* d = 2, 2 * bits index bits, one codebook per 256 columns (all rows) */
        size_t d = 2, b = 2 * bits, K = (size_t)1 << b, gc = 256 < cols ? 256 : cols;
        size_t ncg = (cols + gc - 1) / gc, rowb = (cols / d * b + 7) / 8;
        t->ip[0] = (uint32_t)d;
        t->ip[1] = (uint32_t)b;
        t->ip[2] = (uint32_t)gc;
        t->ip[3] = (uint32_t)rows;
        t->ip[4] = 16;
        uint8_t *c = lq_qtensor_add_section(t, LQ_SEC_CODES, 1, rows * rowb);
        uint8_t *cb = lq_qtensor_add_section(t, LQ_SEC_CODEBOOKS, 2, 2 * ncg * K * d);
        if (c && cb) {
            fill_bytes(c, rows * rowb, 1);
            fill_halves(cb, ncg * K * d, -1.0f, 1.0f, 2);
            st = cols % d ? LQ_ERR_INVALID_ARG : LQ_OK;
        }
    } else if (f == LQ_FORMAT_AQ) {
        /* AQLM-style M x 8-bit codebooks of 8-vectors: M = bits */
        size_t M = bits, B = 8, g = 8, K = 256, ng = cols / g;
        t->ip[0] = (uint32_t)M;
        t->ip[1] = (uint32_t)B;
        t->ip[2] = (uint32_t)g;
        t->ip[3] = 2;
        uint8_t *c = lq_qtensor_add_section(t, LQ_SEC_CODES, 1, rows * ng * M);
        uint8_t *cb = lq_qtensor_add_section(t, LQ_SEC_CODEBOOKS, 2, 2 * M * K * g);
        float *sc = lq_qtensor_add_section(t, LQ_SEC_SCALES, 4, 4 * rows);
        if (c && cb && sc) {
            fill_bytes(c, rows * ng * M, 1);
            fill_halves(cb, M * K * g, -1.0f, 1.0f, 2);
            for (size_t r = 0; r < rows; r++) sc[r] = 0.05f;
            st = cols % g ? LQ_ERR_INVALID_ARG : LQ_OK;
        }
    }
    if (st == LQ_OK) st = lq_qtensor_validate(t);
    if (st != LQ_OK) {
        lq_qtensor_free(t);
        return st;
    }
    *out = t;
    return LQ_OK;
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
typedef struct timing {
    double sec; /* median seconds per call */
} timing;

int lq_bench_matvec(int argc, char **argv)
{
    const char *fmt = "int", *mode_s = "both";
    size_t rows = 4096, cols = 4096, batch = 1, bits = 4, threads = 1, reps = 0, copies = 0;
    int hot = 0, no_deq = 0, no_stream = 0;
    double min_time = 0.5;
    const lq_opt opts[] = {
        {"format", LQ_OPT_STR, "int | e8 | vq | bcq | aq (default int)", &fmt},
        {"rows", LQ_OPT_SIZE, "output features (default 4096)", &rows},
        {"cols", LQ_OPT_SIZE, "input features (default 4096)", &cols},
        {"batch", LQ_OPT_SIZE, "activation vectors, 1..64 (default 1)", &batch},
        {"bits", LQ_OPT_SIZE, "bits per weight where the format has a choice (default 4)", &bits},
        {"threads", LQ_OPT_SIZE, "threads (default 1)", &threads},
        {"mode", LQ_OPT_STR, "exact | fast | both (default both)", &mode_s},
        {"hot", LQ_OPT_FLAG, "one copy of the weights (cache-resident if it fits)", &hot},
        {"copies", LQ_OPT_SIZE, "copies rotated through (default: > 2x LLC)", &copies},
        {"reps", LQ_OPT_SIZE, "minimum repetitions (default: enough for --min-time)", &reps},
        {"min-time", LQ_OPT_DOUBLE, "seconds per measurement (default 0.5)", &min_time},
        {"no-deq", LQ_OPT_FLAG, "skip the dequantize-then-GEMV baseline", &no_deq},
        {"no-stream", LQ_OPT_FLAG, "skip the streaming bandwidth measurement", &no_stream},
        {"cpu-time", LQ_OPT_FLAG, "time with process CPU time (1 thread, shared machine)",
         &g_cpu_time},
    };
    int pr = lq_cli_parse(argc, argv,
                          "lq bench matvec --format F --rows R --cols C --batch N [--bits B] "
                          "[--threads T]",
                          opts, sizeof opts / sizeof opts[0], NULL, 0, NULL);
    if (pr <= 0) return pr < 0 ? 2 : 0;
    lq_format f;
    if (!parse_format(fmt, &f)) {
        fprintf(stderr, "error: unknown format '%s'\n", fmt);
        return 2;
    }
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
    st = make_tensor(ctx, f, rows, cols, (unsigned)bits, &t0);
    if (st != LQ_OK) {
        lq_ctx_destroy(ctx);
        return lq_cli_fail("making the tensor", st);
    }
    double bpw;
    lq_qtensor_bits_per_weight(t0, &bpw);
    double bytes = bpw * (double)rows * (double)cols / 8.0;
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
    struct {
        const char *name;
        double sec;
    } res[4];
    size_t nres = 0;
    for (int pass = 0; pass < 2; pass++) {
        if ((pass == 0 && !do_exact) || (pass == 1 && !do_fast)) continue;
        lq_kernel_mode mode = pass ? LQ_KERNEL_FAST : LQ_KERNEL_EXACT;
        double tv[4096];
        size_t n = 0;
        double start = now();
        st = lq_matmul_ex(ctx, T[0], X, batch, Y, mode); /* warm up */
        while (st == LQ_OK && n < 4096 && (n < 5 || n < reps || now() - start < min_time)) {
            double a = now();
            st = lq_matmul_ex(ctx, T[(n + 1) % copies], X, batch, Y, mode);
            tv[n++] = now() - a;
        }
        if (st != LQ_OK) goto done;
        res[nres].name = pass ? "codes-fast" : "codes-exact";
        res[nres++].sec = lq_cli_median(tv, n);
    }
    if (!no_deq) {
        /* dequantize (one copy's float weights, rows x cols) then GEMV */
        float *Wf = lq_alloc_array(ctx, rows * cols, sizeof(float));
        if (!Wf) {
            st = LQ_ERR_NO_MEMORY;
            goto done;
        }
        double td[64], tg[64];
        size_t n = 0;
        double start = now();
        while (n < 64 && (n < 3 || now() - start < min_time)) {
            double a = now();
            st = lq_dequantize(ctx, T[n % copies], Wf);
            double b = now();
            gemv_job gj = {Wf, X, Y, rows, cols, batch};
            lq_parallel_for(ctx, lq_chunks(rows, 64), gemv_task, &gj);
            double c = now();
            td[n] = c - a;
            tg[n++] = c - b;
            if (st != LQ_OK) break;
        }
        lq_free(ctx, Wf);
        if (st != LQ_OK) goto done;
        res[nres].name = "deq+gemv";
        res[nres++].sec = lq_cli_median(td, n);
        res[nres].name = "f32 gemv";
        res[nres++].sec = lq_cli_median(tg, n);
    }

    double flops = 2.0 * (double)rows * (double)cols * (double)batch;
    printf("matvec %s %zux%zu batch %zu  %.3f bits/weight  %.1f MiB packed  threads %zu  "
           "dispatch %s  copies %zu (%s)\n",
           lq_format_name(f), rows, cols, batch, bpw, bytes / 1048576.0, threads,
           lq_simd_name(lq_simd_for(ctx)), copies,
           bytes * (double)copies > (double)llc ? "exceeds LLC: memory-bound" : "cache-resident");
    if (!no_stream) printf("streaming read bandwidth: %.1f GB/s\n", gbs_stream);
    if (fast_err >= 0) printf("fast vs exact: relative L2 error %.2e\n", fast_err);
    printf("%-12s %10s %10s %9s %9s %8s\n", "path", "us/call", "us/token", "GB/s", "GFLOP/s",
           "%stream");
    for (size_t i = 0; i < nres; i++) {
        double wbytes = strcmp(res[i].name, "f32 gemv") == 0 ? 4.0 * (double)rows * (double)cols
                        : bytes;
        double gbs = wbytes / res[i].sec / 1e9;
        printf("%-12s %10.1f %10.2f %9.1f %9.1f %7.0f%%\n", res[i].name, res[i].sec * 1e6,
               res[i].sec * 1e6 / (double)batch, gbs, flops / res[i].sec / 1e9,
               gbs_stream > 0 ? 100.0 * gbs / gbs_stream : 0.0);
    }
    printf("{\"bench\":\"matvec\",\"format\":\"%s\",\"rows\":%zu,\"cols\":%zu,\"batch\":%zu,"
           "\"bits\":%zu,\"bpw\":%.4f,\"threads\":%zu,\"dispatch\":\"%s\",\"copies\":%zu,"
           "\"stream_gbs\":%.2f",
           lq_format_name(f), rows, cols, batch, bits, bpw, threads,
           lq_simd_name(lq_simd_for(ctx)), copies, gbs_stream);
    if (fast_err >= 0) printf(",\"fast_rel_err\":%.3e", fast_err);
    for (size_t i = 0; i < nres; i++) printf(",\"%s_us\":%.2f", res[i].name, res[i].sec * 1e6);
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
