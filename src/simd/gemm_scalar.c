/* Portable reference GEMM micro-kernels (4 x 8), the twins of the SIMD ones. */
#include "core/gemm_kernels.h"

#define S_MR 4
#define S_NR 8

static void sgemm_ukr_scalar(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                             float alpha, float beta)
{
    float acc[S_MR][S_NR] = {{0}};
    for (size_t p = 0; p < kc; p++) {
        for (size_t i = 0; i < S_MR; i++) {
            float ai = a[p * S_MR + i];
            for (size_t j = 0; j < S_NR; j++) acc[i][j] += ai * b[p * S_NR + j];
        }
    }
    for (size_t i = 0; i < S_MR; i++) {
        float *ci = c + i * ldc;
        if (beta == 0.0f) {
            for (size_t j = 0; j < S_NR; j++) ci[j] = alpha * acc[i][j];
        } else {
            for (size_t j = 0; j < S_NR; j++) ci[j] = alpha * acc[i][j] + beta * ci[j];
        }
    }
}

static void dgemm_ukr_scalar(size_t kc, const double *a, const double *b, double *c, size_t ldc,
                             double alpha, double beta)
{
    double acc[S_MR][S_NR] = {{0}};
    for (size_t p = 0; p < kc; p++) {
        for (size_t i = 0; i < S_MR; i++) {
            double ai = a[p * S_MR + i];
            for (size_t j = 0; j < S_NR; j++) acc[i][j] += ai * b[p * S_NR + j];
        }
    }
    for (size_t i = 0; i < S_MR; i++) {
        double *ci = c + i * ldc;
        if (beta == 0.0) {
            for (size_t j = 0; j < S_NR; j++) ci[j] = alpha * acc[i][j];
        } else {
            for (size_t j = 0; j < S_NR; j++) ci[j] = alpha * acc[i][j] + beta * ci[j];
        }
    }
}

const lq_sgemm_kernel lq_sgemm_kernel_scalar = {sgemm_ukr_scalar, S_MR, S_NR, 256, 128, 2048};
const lq_dgemm_kernel lq_dgemm_kernel_scalar = {dgemm_ukr_scalar, S_MR, S_NR, 128, 128, 2048};
