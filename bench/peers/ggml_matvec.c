/* Peer baseline: ggml_mul_mat (llama.cpp's tensor library, CPU backend) on
 * one quantized weight times f32 activations, the shapes of `lq bench
 * matvec`. Written against ggml's public headers (ggml.h, ggml-backend.h,
 * ggml-cpu.h); no ggml code is in this repository. Built and run by
 * bench/peers/ggml_matvec.sh against a ggml source tree the user supplies.
 *
 * What it does: a Gaussian fp32 weight (rows outputs x cols inputs) is
 * quantized with ggml_quantize_chunk to the ggml type asked for (types
 * that require an importance matrix get a uniform one: all ones, i.e. plain
 * MSE, as libquant's methods run without a Hessian in `lq bench matvec`).
 * The weight is placed in the buffer type llama.cpp would pick for it
 * (--buft auto: the first of the CPU device's extra buffer types, repack or
 * AMX, that supports the product, else the plain CPU buffer; --buft cpu:
 * always the plain one; --buft noamx: auto without the AMX type, whose
 * tile path for batch > 1 faults with SIGILL at `tilezero` on some VMs),
 * in enough copies to exceed 2x the last-level cache
 * (sysconf) so that the weights stream from DRAM, and one graph per copy
 * holds ggml_mul_mat(W_copy, X). The graphs are computed in rotation with
 * ggml_backend_graph_compute on the CPU backend with --threads threads
 * (the path llama.cpp's scheduler takes for a CPU-only model). Each call is
 * timed with the wall clock and with process CPU time; medians are
 * printed, with bits/weight (stored: ggml_row_size * 8 / cols; read: the
 * bytes of the buffer the kernels stream), GB/s of the bytes read, and the
 * relative L2 error of the result against the f32 product of the
 * dequantized weight (a check that the product ran on the data; ggml
 * quantizes the activations to 8 bits, so the error is about 1e-2 at
 * most).
 *
 * Usage: ggml_matvec --type q4_0|q4_k|q3_k|q2_k|iq2_xxs|iq2_xs|iq3_xxs|iq4_nl
 *   [--rows R (outputs, 14336)] [--cols C (inputs, 4096)] [--batch N (1)]
 *   [--threads T (1)] [--copies K] [--hot] [--min-time S (0.5)]
 *   [--reps N (5)] [--fit-rows F (0: all)] [--buft auto|noamx|cpu]
 * --fit-rows F quantizes the first F rows and repeats them (the IQ
 * quantizers are slow on 58M weights; the kernels' speed does not depend on
 * the values). Prints a human line and one JSON line. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ggml.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"

#define MAX_SAMPLES 4096
#define MAX_COPIES 256

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *t, size_t n)
{
    qsort(t, n, sizeof t[0], cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* splitmix64 and Box-Muller: deterministic Gaussian data for a seed. */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fill_gauss(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i += 2) {
        double u1 = ((double)(next_u64(&s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
        double u2 = (double)(next_u64(&s) >> 11) * (1.0 / 9007199254740992.0);
        double r = sqrt(-2.0 * log(u1));
        x[i] = (float)(r * cos(6.283185307179586 * u2));
        if (i + 1 < n) x[i + 1] = (float)(r * sin(6.283185307179586 * u2));
    }
}

static const struct {
    const char *name;
    enum ggml_type type;
} g_types[] = {{"q4_0", GGML_TYPE_Q4_0},       {"q4_k", GGML_TYPE_Q4_K},
               {"q3_k", GGML_TYPE_Q3_K},       {"q2_k", GGML_TYPE_Q2_K},
               {"iq2_xxs", GGML_TYPE_IQ2_XXS}, {"iq2_xs", GGML_TYPE_IQ2_XS},
               {"iq3_xxs", GGML_TYPE_IQ3_XXS}, {"iq4_nl", GGML_TYPE_IQ4_NL}};

static int parse_type(const char *s, enum ggml_type *t)
{
    for (size_t i = 0; i < sizeof g_types / sizeof g_types[0]; i++)
        if (!strcmp(s, g_types[i].name)) {
            *t = g_types[i].type;
            return 1;
        }
    return 0;
}

static int parse_size(const char *s, size_t *v)
{
    char *end;
    unsigned long long x = strtoull(s, &end, 10);
    if (*s == '\0' || *end != '\0' || *s == '-') return 0;
    *v = (size_t)x;
    return 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: ggml_matvec --type q4_0|q4_k|q3_k|q2_k|iq2_xxs|iq2_xs|iq3_xxs|iq4_nl "
                    "[--rows R] [--cols C] [--batch N] [--threads T] [--copies K] [--hot] "
                    "[--min-time S] [--reps N] [--fit-rows F] [--buft auto|noamx|cpu]\n");
    return 2;
}

/* Does the CPU device run W x X with W in buffer type buft? (The test
 * llama.cpp's loader makes: a zero-size buffer of that type on the weight,
 * then the device's supports_op.) */
static int buft_runs(ggml_backend_dev_t dev, ggml_backend_buffer_type_t buft, enum ggml_type type,
                     size_t rows, size_t cols, size_t batch)
{
    struct ggml_init_params ip = {4 * ggml_tensor_overhead(), NULL, true};
    struct ggml_context *ctx = ggml_init(ip);
    if (!ctx) return 0;
    struct ggml_tensor *w = ggml_new_tensor_2d(ctx, type, (int64_t)cols, (int64_t)rows);
    struct ggml_tensor *x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, (int64_t)cols, (int64_t)batch);
    struct ggml_tensor *y = ggml_mul_mat(ctx, w, x);
    ggml_backend_buffer_t buf = ggml_backend_buft_alloc_buffer(buft, 0);
    int ok = 0;
    if (buf) {
        w->buffer = buf;
        ok = ggml_backend_dev_supports_op(dev, y);
        w->buffer = NULL;
        ggml_backend_buffer_free(buf);
    }
    ggml_free(ctx);
    return ok;
}

/* ggml's log without its per-tensor repack notes: warnings and errors only. */
static void log_quiet(enum ggml_log_level level, const char *text, void *user)
{
    (void)user;
    if (level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

int main(int argc, char **argv)
{
    const char *type_s = NULL, *buft_s = "auto";
    size_t rows = 14336, cols = 4096, batch = 1, threads = 1, copies = 0, reps = 5, fit = 0;
    double min_time = 0.5;
    int hot = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "--hot")) {
            hot = 1;
            continue;
        }
        if (!v) return usage();
        if (!strcmp(a, "--type"))
            type_s = v;
        else if (!strcmp(a, "--buft"))
            buft_s = v;
        else if (!strcmp(a, "--rows"))
            ok = parse_size(v, &rows);
        else if (!strcmp(a, "--cols"))
            ok = parse_size(v, &cols);
        else if (!strcmp(a, "--batch"))
            ok = parse_size(v, &batch);
        else if (!strcmp(a, "--threads"))
            ok = parse_size(v, &threads);
        else if (!strcmp(a, "--copies"))
            ok = parse_size(v, &copies);
        else if (!strcmp(a, "--reps"))
            ok = parse_size(v, &reps);
        else if (!strcmp(a, "--fit-rows"))
            ok = parse_size(v, &fit);
        else if (!strcmp(a, "--min-time")) {
            char *end;
            min_time = strtod(v, &end);
            ok = *end == '\0' && min_time >= 0;
        } else
            ok = 0;
        if (!ok) return usage();
        i++;
    }
    enum ggml_type type;
    if (!type_s || !parse_type(type_s, &type)) return usage();
    if (strcmp(buft_s, "auto") && strcmp(buft_s, "noamx") && strcmp(buft_s, "cpu")) return usage();
    if (rows == 0 || cols == 0 || batch == 0 || threads == 0 || threads > 64 || reps == 0 ||
        cols % (size_t)ggml_blck_size(type) || rows > ((size_t)1 << 30) ||
        cols > ((size_t)1 << 30) || batch > 4096) {
        fprintf(stderr, "ggml_matvec: invalid shape or options (cols must be a multiple of %lld)\n",
                (long long)ggml_blck_size(type));
        return 2;
    }
    if (fit == 0 || fit > rows) fit = rows;

    ggml_log_set(log_quiet, NULL);

    /* ---- quantize ---- */
    size_t row_bytes = ggml_row_size(type, (int64_t)cols);
    size_t wbytes = row_bytes * rows;
    float *W = malloc(fit * cols * sizeof *W);
    uint8_t *Q = malloc(wbytes);
    float *imat = NULL;
    if (!W || !Q) {
        fprintf(stderr, "ggml_matvec: out of memory\n");
        return 1;
    }
    fill_gauss(W, fit * cols, 1);
    if (ggml_quantize_requires_imatrix(type)) {
        imat = malloc(cols * sizeof *imat);
        if (!imat) return 1;
        for (size_t i = 0; i < cols; i++) imat[i] = 1.0f;
    }
    double tq0 = clock_s(CLOCK_MONOTONIC);
    ggml_quantize_init(type);
    size_t qbytes = ggml_quantize_chunk(type, W, Q, 0, (int64_t)fit, (int64_t)cols, imat);
    double tq = clock_s(CLOCK_MONOTONIC) - tq0;
    if (qbytes != fit * row_bytes) {
        fprintf(stderr, "ggml_matvec: ggml_quantize_chunk wrote %zu bytes, expected %zu\n", qbytes,
                fit * row_bytes);
        return 1;
    }
    for (size_t r = fit; r < rows; r++)
        memcpy(Q + r * row_bytes, Q + (r % fit) * row_bytes, row_bytes);
    double bpw = 8.0 * (double)row_bytes / (double)cols;

    /* ---- backend and buffer type ---- */
    ggml_backend_t be = ggml_backend_cpu_init();
    if (!be) {
        fprintf(stderr, "ggml_matvec: no CPU backend\n");
        return 1;
    }
    ggml_backend_cpu_set_n_threads(be, (int)threads);
    ggml_backend_dev_t dev = ggml_backend_get_device(be);
    ggml_backend_buffer_type_t buft = ggml_backend_cpu_buffer_type();
    if (strcmp(buft_s, "cpu")) {
        ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
        /* a function pointer returned as void * (POSIX dlsym style) */
        void *sym = ggml_backend_reg_get_proc_address(reg, "ggml_backend_dev_get_extra_bufts");
        ggml_backend_dev_get_extra_bufts_t get_extra = NULL;
        if (sym) memcpy(&get_extra, &sym, sizeof get_extra);
        ggml_backend_buffer_type_t *extra = get_extra ? get_extra(dev) : NULL;
        for (; extra && *extra; extra++)
            if ((strcmp(buft_s, "noamx") || strcmp(ggml_backend_buft_name(*extra), "AMX")) &&
                buft_runs(dev, *extra, type, rows, cols, batch)) {
                buft = *extra;
                break;
            }
    }

    /* ---- tensors and graphs ---- */
    size_t llc = 0;
    {
        long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
        llc = l3 > 0 ? (size_t)l3 : (size_t)32 << 20;
    }
    if (copies == 0) copies = hot ? 1 : (size_t)(2.0 * (double)llc / (double)wbytes) + 1;
    if (copies > MAX_COPIES) copies = MAX_COPIES;
    size_t mem = (3 * copies + 4) * ggml_tensor_overhead() + copies * ggml_graph_overhead();
    struct ggml_init_params ip = {mem, NULL, true};
    struct ggml_context *ctx = ggml_init(ip);
    struct ggml_tensor **Wt = calloc(copies, sizeof *Wt), **Yt = calloc(copies, sizeof *Yt);
    struct ggml_cgraph **G = calloc(copies, sizeof *G);
    ggml_backend_buffer_t *wbuf = calloc(copies, sizeof *wbuf);
    if (!ctx || !Wt || !Yt || !G || !wbuf) {
        fprintf(stderr, "ggml_matvec: out of memory\n");
        return 1;
    }
    struct ggml_tensor *X = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, (int64_t)cols, (int64_t)batch);
    for (size_t c = 0; c < copies; c++) {
        Wt[c] = ggml_new_tensor_2d(ctx, type, (int64_t)cols, (int64_t)rows);
        Yt[c] = ggml_mul_mat(ctx, Wt[c], X);
        G[c] = ggml_new_graph(ctx);
        ggml_build_forward_expand(G[c], Yt[c]);
    }
    size_t read_bytes = 0;
    for (size_t c = 0; c < copies; c++) {
        size_t sz = ggml_backend_buft_get_alloc_size(buft, Wt[c]);
        wbuf[c] = ggml_backend_buft_alloc_buffer(buft, sz);
        if (!wbuf[c] ||
            ggml_backend_tensor_alloc(wbuf[c], Wt[c], ggml_backend_buffer_get_base(wbuf[c])) !=
                GGML_STATUS_SUCCESS) {
            fprintf(stderr, "ggml_matvec: cannot allocate copy %zu (%zu bytes) in %s\n", c, sz,
                    ggml_backend_buft_name(buft));
            return 1;
        }
        ggml_backend_buffer_set_usage(wbuf[c], GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
        ggml_backend_tensor_set(Wt[c], Q, 0, wbytes); /* repacks for extra types */
        read_bytes = sz;
    }
    /* X and the outputs in one plain CPU buffer */
    ggml_backend_buffer_t abuf =
        ggml_backend_alloc_ctx_tensors_from_buft(ctx, ggml_backend_cpu_buffer_type());
    if (!abuf) {
        fprintf(stderr, "ggml_matvec: cannot allocate activations\n");
        return 1;
    }
    float *x = malloc(batch * cols * sizeof *x), *y = malloc(batch * rows * sizeof *y);
    if (!x || !y) return 1;
    fill_gauss(x, batch * cols, 2);
    ggml_backend_tensor_set(X, x, 0, batch * cols * sizeof *x);

    /* ---- check: ggml's product against f32 on the dequantized rows ---- */
    if (ggml_backend_graph_compute(be, G[0]) != GGML_STATUS_SUCCESS) {
        fprintf(stderr, "ggml_matvec: graph compute failed\n");
        return 1;
    }
    ggml_backend_tensor_get(Yt[0], y, 0, batch * rows * sizeof *y);
    double num = 0, den = 0;
    {
        const struct ggml_type_traits *tr = ggml_get_type_traits(type);
        float *wr = malloc(cols * sizeof *wr);
        if (!wr || !tr->to_float) return 1;
        size_t nchk = rows < 256 ? rows : 256;
        for (size_t k = 0; k < nchk; k++) {
            size_t r = k * (rows / nchk);
            tr->to_float(Q + r * row_bytes, wr, (int64_t)cols);
            for (size_t b = 0; b < batch; b++) {
                double s = 0;
                for (size_t i = 0; i < cols; i++) s += (double)wr[i] * x[b * cols + i];
                double d = (double)y[b * rows + r] - s;
                num += d * d;
                den += s * s;
            }
        }
        free(wr);
    }
    double rel_err = den > 0 ? sqrt(num / den) : 0.0;

    /* ---- timing: rotate through the copies ---- */
    static double tw[MAX_SAMPLES], tc[MAX_SAMPLES];
    size_t n = 0;
    double start = clock_s(CLOCK_MONOTONIC);
    while (n < MAX_SAMPLES && (n < reps || clock_s(CLOCK_MONOTONIC) - start < min_time)) {
        struct ggml_cgraph *g = G[(n + 1) % copies];
        double a = clock_s(CLOCK_MONOTONIC), ac = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        enum ggml_status st = ggml_backend_graph_compute(be, g);
        tc[n] = clock_s(CLOCK_PROCESS_CPUTIME_ID) - ac;
        tw[n++] = clock_s(CLOCK_MONOTONIC) - a;
        if (st != GGML_STATUS_SUCCESS) {
            fprintf(stderr, "ggml_matvec: graph compute failed\n");
            return 1;
        }
    }
    double wall = median(tw, n), cpu = median(tc, n);
    double read_bpw = 8.0 * (double)read_bytes / ((double)rows * (double)cols);
    int membound = (double)read_bytes * (double)copies > 2.0 * (double)llc;
    printf("ggml %s %zux%zu batch %zu threads %zu buft %s: %.1f us/call wall, %.1f us CPU "
           "(median of %zu), stored %.4f bpw, read %.4f bpw, %.2f GB/s, copies %zu (%s), "
           "rel err %.2e, quantized in %.1f s%s\n",
           ggml_type_name(type), rows, cols, batch, threads, ggml_backend_buft_name(buft),
           wall * 1e6, cpu * 1e6, n, bpw, read_bpw, (double)read_bytes / wall / 1e9, copies,
           membound ? "memory-bound" : "CACHE-RESIDENT", rel_err, tq,
           fit < rows ? " (first rows repeated)" : "");
    printf("{\"bench\":\"ggml_matvec\",\"type\":\"%s\",\"rows\":%zu,\"cols\":%zu,\"batch\":%zu,"
           "\"threads\":%zu,\"buft\":\"%s\",\"bpw\":%.4f,\"read_bpw\":%.4f,\"copies\":%zu,"
           "\"memory_bound\":%d,\"samples\":%zu,\"us\":%.2f,\"cpu_us\":%.2f,\"gbs\":%.3f,"
           "\"rel_err\":%.3e,\"fit_rows\":%zu,\"quant_s\":%.2f}\n",
           ggml_type_name(type), rows, cols, batch, threads, ggml_backend_buft_name(buft), bpw,
           read_bpw, copies, membound, n, wall * 1e6, cpu * 1e6, (double)read_bytes / wall / 1e9,
           rel_err, fit, tq);

    for (size_t c = 0; c < copies; c++) ggml_backend_buffer_free(wbuf[c]);
    ggml_backend_buffer_free(abuf);
    ggml_free(ctx);
    ggml_backend_free(be);
    ggml_quantize_free();
    free(Wt);
    free(Yt);
    free(G);
    free(wbuf);
    free(W);
    free(Q);
    free(imat);
    free(x);
    free(y);
    return rel_err < 0.1 ? 0 : 1;
}
