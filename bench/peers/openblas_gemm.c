/*
 * Peer benchmark: OpenBLAS cblas_sgemm (row-major NN) on the same sizes and
 * with the same timing rule as `lq bench gemm` (median of reps after one
 * warm-up; 3 reps at n >= 4096). Threads from the command line through
 * openblas_set_num_threads. Built only by run_gemm_peer.sh.
 * usage: openblas_gemm N THREADS REPS
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

void openblas_set_num_threads(int num_threads);

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s N THREADS REPS\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[1]), threads = atoi(argv[2]), reps = atoi(argv[3]);
    if (n <= 0 || threads <= 0 || reps <= 0) return 2;
    if (n >= 4096 && reps > 3) reps = 3;
    openblas_set_num_threads(threads);
    size_t nn = (size_t)n * (size_t)n;
    float *A = malloc(nn * sizeof *A), *B = malloc(nn * sizeof *B), *C = malloc(nn * sizeof *C);
    double *t = malloc((size_t)(reps + 1) * sizeof *t);
    double *cpu = malloc((size_t)(reps + 1) * sizeof *cpu);
    if (!A || !B || !C || !t || !cpu) return 1;
    srand(1);
    for (size_t i = 0; i < nn; i++) {
        A[i] = (float)rand() / (float)RAND_MAX - 0.5f;
        B[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    }
    for (int r = 0; r <= reps; r++) {
        double t0 = now(), c0 = cpu_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, B, n, 0.0f, C,
                    n);
        t[r] = now() - t0;
        cpu[r] = cpu_now() - c0;
    }
    qsort(t + 1, (size_t)reps, sizeof *t, cmp);
    qsort(cpu + 1, (size_t)reps, sizeof *cpu, cmp);
    double med = reps % 2 ? t[1 + reps / 2] : 0.5 * (t[reps / 2] + t[1 + reps / 2]);
    double cmed = reps % 2 ? cpu[1 + reps / 2] : 0.5 * (cpu[reps / 2] + cpu[1 + reps / 2]);
    double fl = 2.0 * n * (double)n * n;
    /* OpenBLAS threads may spin while waiting: cpu_gflops is meaningful
     * for one thread only */
    printf("{\"peer\":\"openblas\",\"n\":%d,\"threads\":%d,\"seconds\":%.6f,\"gflops\":%.2f,"
           "\"cpu_gflops\":%.2f}\n",
           n, threads, med, fl / med * 1e-9, fl / cmed * 1e-9);
    free(A);
    free(B);
    free(C);
    free(t);
    free(cpu);
    return 0;
}
