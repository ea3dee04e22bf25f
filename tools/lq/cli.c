#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "core/internal.h"
#include "core/linalg.h"

static void usage_print(FILE *f, const char *usage, const lq_opt *opts, size_t nopts)
{
    fprintf(f, "usage: %s\n", usage);
    if (nopts) fprintf(f, "options:\n");
    for (size_t i = 0; i < nopts; i++) {
        const char *arg = opts[i].kind == LQ_OPT_FLAG ? "" : " <value>";
        fprintf(f, "  --%s%-*s %s\n", opts[i].name, (int)(18 - strlen(opts[i].name)), arg,
                opts[i].help);
    }
    fprintf(f, "  --help              show this help\n");
}

static int set_opt(const lq_opt *o, const char *val)
{
    char *end = NULL;
    switch (o->kind) {
    case LQ_OPT_FLAG: *(int *)o->dst = 1; return 0;
    case LQ_OPT_STR: *(const char **)o->dst = val; return 0;
    case LQ_OPT_SIZE: {
        /* decimal digits only (strtoull would take spaces, '+' and '-'),
         * no overflow, and below SIZE_MAX, which marks "not given" */
        if (val[0] < '0' || val[0] > '9') return -1;
        errno = 0;
        unsigned long long v = strtoull(val, &end, 10);
        if (*end || errno == ERANGE || v >= (unsigned long long)SIZE_MAX) return -1;
        *(size_t *)o->dst = (size_t)v;
        return 0;
    }
    case LQ_OPT_DOUBLE: {
        errno = 0;
        double v = strtod(val, &end);
        if (!*val || *end || errno == ERANGE || !isfinite(v)) return -1; /* nan, inf, 1e999 */
        *(double *)o->dst = v;
        return 0;
    }
    }
    return -1;
}

int lq_cli_parse(int argc, char **argv, const char *usage, const lq_opt *opts, size_t nopts,
                 char **pos, size_t max_pos, size_t *npos)
{
    size_t np = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage_print(stdout, usage, opts, nopts);
            return 0;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
            if (np >= max_pos) {
                fprintf(stderr, "error: unexpected argument '" LQ_CLIP_FMT "'\n", LQ_CLIP(a));
                usage_print(stderr, usage, opts, nopts);
                return -1;
            }
            pos[np++] = argv[i];
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const lq_opt *o = NULL;
        for (size_t k = 0; k < nopts; k++)
            if (strlen(opts[k].name) == len && !strncmp(opts[k].name, name, len)) o = &opts[k];
        if (!o) {
            fprintf(stderr, "error: unknown option '" LQ_CLIP_FMT "'\n", LQ_CLIP(a));
            usage_print(stderr, usage, opts, nopts);
            return -1;
        }
        const char *val = NULL;
        if (o->kind != LQ_OPT_FLAG) {
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else {
                fprintf(stderr, "error: option '--%s' needs a value\n", o->name);
                return -1;
            }
        } else if (eq) {
            fprintf(stderr, "error: flag '--%s' takes no value\n", o->name);
            return -1;
        }
        if (set_opt(o, val) != 0) {
            fprintf(stderr, "error: bad value '" LQ_CLIP_FMT "' for '--%s'\n", LQ_CLIP(val),
                    o->name);
            return -1;
        }
    }
    if (npos) *npos = np;
    return 1;
}

int lq_cli_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (!a || !b || stat(a, &sa) != 0 || stat(b, &sb) != 0) return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int lq_cli_fail(const char *what, lq_status st)
{
    fprintf(stderr, "error: %s: %s\n", what, lq_status_str(st));
    return 1;
}

double lq_cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double lq_cli_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void lq_cli_student_t(lq_rng *r, float *x, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++) {
        double g = lq_rng_gaussian(r), chi = 0;
        for (int k = 0; k < 4; k++) {
            double z = lq_rng_gaussian(r);
            chi += z * z;
        }
        x[i] = (float)(scale * g / sqrt(chi / 4.0));
    }
}

lq_status lq_cli_correlated_hessian(lq_ctx *ctx, lq_rng *r, size_t cols, size_t nsamples, float *H)
{
    float *A = malloc(cols * cols * sizeof *A), *Z = malloc(nsamples * cols * sizeof *Z);
    float *X = malloc(nsamples * cols * sizeof *X);
    lq_status st = LQ_ERR_NO_MEMORY;
    if (A && Z && X) {
        for (size_t i = 0; i < cols * cols; i++)
            A[i] = (float)(lq_rng_gaussian(r) / sqrt((double)cols));
        for (size_t i = 0; i < cols; i++) A[i * cols + i] += 0.3f;
        for (size_t n = 0; n < nsamples; n++)
            for (size_t i = 0; i < cols; i++)
                Z[n * cols + i] = (float)(lq_rng_gaussian(r) * (1.0 + 3.0 * (i % 7 == 0)));
        st = lq_sgemm(ctx, LQ_NO_TRANS, LQ_NO_TRANS, nsamples, cols, cols, 1.0f, Z, cols, A, cols,
                      0.0f, X, cols);
        if (st == LQ_OK)
            st = lq_ssyrk_tn(ctx, cols, nsamples, 2.0f / (float)nsamples, X, cols, 0.0f, H, cols);
    }
    free(A);
    free(Z);
    free(X);
    return st;
}

lq_status lq_cli_bench_layer(lq_ctx *ctx, size_t rows, size_t cols, size_t nsamples, float *W,
                             float *H)
{
    lq_rng r;
    lq_rng_init(&r, 7, 0);
    lq_cli_student_t(&r, W, rows * cols, 0.02);
    return lq_cli_correlated_hessian(ctx, &r, cols, nsamples, H);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double lq_cli_median(double *v, size_t n)
{
    if (n == 0) return 0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int lq_cli_in_list(const char *list, const char *name)
{
    if (!list) return 1;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, name, n)) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

void lq_cli_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}
