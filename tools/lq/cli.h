/* The lq program: sub-commands and a small option parser shared by them. */
#ifndef LQ_CLI_H
#define LQ_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "quant.h"

/* A sub-command: argv[0] is the command name. Returns a process exit code. */
typedef struct lq_cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} lq_cli_command;

/* ---- options ------------------------------------------------------------
 * Options are "--name value" or "--name=value"; flags are "--name". Every
 * command declares its options in a table so that --help and the check for
 * unknown options come for free. */
typedef enum { LQ_OPT_FLAG, LQ_OPT_STR, LQ_OPT_SIZE, LQ_OPT_DOUBLE } lq_opt_kind;
typedef struct lq_opt {
    const char *name; /* without "--" */
    lq_opt_kind kind;
    const char *help;
    void *dst; /* int*, const char**, size_t*, double* */
} lq_opt;

/* Parse argv[1..] against opts; positional arguments are collected into
 * pos (at most max_pos, count in *npos). Prints usage and returns 0 when
 * --help was given (*help_shown = 1); returns -1 on error (message printed),
 * 1 on success. */
int lq_cli_parse(int argc, char **argv, const char *usage, const lq_opt *opts, size_t nopts,
                 char **pos, size_t max_pos, size_t *npos);

/* Echo an untrusted string (a tensor name, an argument) in a message: at
 * most 64 bytes, "..." marking a cut. Use as
 * fprintf(f, "'" LQ_CLIP_FMT "'", LQ_CLIP(s)). */
#define LQ_CLIP_MAX 64
#define LQ_CLIP_FMT "%.64s%s"
#define LQ_CLIP(s) (s), (strlen(s) > LQ_CLIP_MAX ? "..." : "")

/* 1 when paths a and b name the same existing file (same device and
 * inode, through symlinks and hard links), else 0. */
int lq_cli_same_file(const char *a, const char *b);

/* 1 when list is NULL (everything selected) or one of its comma-separated
 * items equals name exactly. */
int lq_cli_in_list(const char *list, const char *name);

/* Write s to f as a JSON string (quotes, escapes, control bytes as \uXXXX). */
void lq_cli_json_str(FILE *f, const char *s);

/* Print "error: <what>: <status>" to stderr and return 1. */
int lq_cli_fail(const char *what, lq_status st);

/* Monotonic seconds. */
double lq_cli_now(void);

/* CPU seconds used by the process (all threads): robust figures on a
 * shared machine, quoted beside wall-clock time. */
double lq_cli_cpu_now(void);

/* The benchmarks' synthetic data, from the RNG stream r:
 * lq_cli_student_t: n Student-t (4 dof) samples times scale (LLM-like tails);
 * lq_cli_correlated_hessian: X = Z A with A a random cols x cols mixing plus
 * 0.3 I and every 7th input channel of Z 4x larger, H = 2/N X^T X over
 * N = nsamples. Errors: NO_MEMORY and lq_sgemm's. */
typedef struct lq_rng lq_rng;
void lq_cli_student_t(lq_rng *r, float *x, size_t n, double scale);
lq_status lq_cli_correlated_hessian(lq_ctx *ctx, lq_rng *r, size_t cols, size_t nsamples, float *H);
/* The correlated layer of bench gptq/bcq/e8: one stream (seed 7) draws W
 * (Student-t, scale 0.02) and then H. */
lq_status lq_cli_bench_layer(lq_ctx *ctx, size_t rows, size_t cols, size_t nsamples, float *W,
                             float *H);

/* Median of n doubles (sorts in place). */
double lq_cli_median(double *v, size_t n);

/* Commands (one file each). */
int lq_cmd_info(int argc, char **argv);
int lq_cmd_bench(int argc, char **argv);
int lq_cmd_quantize(int argc, char **argv);
int lq_cmd_inspect(int argc, char **argv);
int lq_cmd_demo(int argc, char **argv);
int lq_demo_synthetic(int argc, char **argv);
int lq_cmd_eval(int argc, char **argv);
int lq_cmd_generate(int argc, char **argv);
int lq_cmd_dequantize(int argc, char **argv);
int lq_cmd_export(int argc, char **argv);
int lq_bench_io(int argc, char **argv);

/* Benchmarks behind `lq bench <name>` (one file each, bench_*.c). */
typedef struct lq_bench_entry {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} lq_bench_entry;
int lq_bench_matvec(int argc, char **argv);
int lq_bench_gemm(int argc, char **argv);
int lq_bench_stream(int argc, char **argv);
int lq_bench_gptq(int argc, char **argv);
int lq_bench_kmeans(int argc, char **argv);
int lq_bench_gptvq(int argc, char **argv);
int lq_bench_bcq(int argc, char **argv);
int lq_bench_e8(int argc, char **argv);
int lq_bench_aqlm(int argc, char **argv);

#endif
