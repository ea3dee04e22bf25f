/* Peer baseline: fp32 GEMV / GEMM with OpenBLAS (cblas_sgemv / sgemm) on
 * the shapes of `lq bench matvec`, weights rotated through copies larger
 * than 2x the LLC that sysconf reports (memory-bound) unless --hot. With
 * one thread the time is process CPU time (as `lq bench matvec --cpu-time`:
 * the machine is shared), with more threads wall time. Prints one JSON
 * line. Built and run by bench/peers/openblas_gemv.sh. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int g_cpu;

static double now(void)
{
    struct timespec ts;
    clock_gettime(g_cpu ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    size_t rows = 4096, cols = 4096, batch = 1, threads = 1;
    int hot = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rows") && i + 1 < argc)
            rows = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--cols") && i + 1 < argc)
            cols = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--hot"))
            hot = 1;
    }
    openblas_set_num_threads((int)threads);
    g_cpu = threads == 1;
    double bytes = 4.0 * (double)rows * (double)cols;
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    double llc = l3 > 0 ? (double)l3 : 32.0 * 1048576.0;
    size_t copies = hot ? 1 : (size_t)(2.0 * llc / bytes) + 2;
    float **W = malloc(copies * sizeof *W);
    for (size_t c = 0; c < copies; c++) {
        W[c] = malloc(rows * cols * sizeof(float));
        for (size_t i = 0; i < rows * cols; i++)
            W[c][i] = (float)((i * 2654435761u) % 1000) * 1e-3f;
    }
    float *X = malloc(batch * cols * sizeof(float)), *Y = malloc(batch * rows * sizeof(float));
    for (size_t i = 0; i < batch * cols; i++) X[i] = (float)(i % 17) * 0.1f;
    double t[200];
    size_t n = 0;
    double start = now();
    while (n < 200 && (n < 5 || now() - start < 0.5)) {
        const float *w = W[n % copies];
        double a = now();
        if (batch == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)rows, (int)cols, 1.0f, w, (int)cols, X, 1,
                        0.0f, Y, 1);
        else /* Y (batch x rows) = X (batch x cols) W^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)batch, (int)rows, (int)cols,
                        1.0f, X, (int)cols, w, (int)cols, 0.0f, Y, (int)rows);
        t[n++] = now() - a;
    }
    qsort(t, n, sizeof t[0], cmp);
    double med = t[n / 2];
    printf("{\"bench\":\"openblas\",\"cpu_time\":%d,\"rows\":%zu,\"cols\":%zu,\"batch\":%zu,"
           "\"threads\":%zu,"
           "\"copies\":%zu,\"us\":%.1f,\"us_per_token\":%.2f,\"gbs\":%.2f,\"gflops\":%.2f}\n",
           g_cpu, rows, cols, batch, threads, copies, med * 1e6, med * 1e6 / (double)batch,
           bytes / med / 1e9, 2.0 * (double)rows * (double)cols * (double)batch / med / 1e9);
    for (size_t c = 0; c < copies; c++) free(W[c]);
    free(W);
    free(X);
    free(Y);
    return 0;
}
