#include "core/internal.h"

const char *lq_status_str(lq_status s)
{
    switch (s) {
    case LQ_OK: return "ok";
    case LQ_ERR_INVALID_ARG: return "invalid argument";
    case LQ_ERR_NO_MEMORY: return "out of memory";
    case LQ_ERR_NOT_FINITE: return "input contains NaN or Inf";
    case LQ_ERR_NOT_POSITIVE_DEFINITE: return "matrix is not positive definite";
    case LQ_ERR_CORRUPT: return "corrupt data";
    case LQ_ERR_UNSUPPORTED: return "unsupported";
    case LQ_ERR_IO: return "I/O error";
    }
    return "unknown status";
}

const char *lq_version(void)
{
    return LQ_VERSION_STRING;
}

bool lq_all_finite(const float *x, size_t n)
{
    /* Branch-free accumulation lets the compiler vectorize: x*0 is NaN
     * exactly when x is NaN or Inf. */
    float acc = 0.0f;
    for (size_t i = 0; i < n; i++) acc += x[i] * 0.0f;
    return acc == 0.0f;
}

bool lq_all_finite_2d(const float *x, size_t rows, size_t cols, size_t ld)
{
    for (size_t r = 0; r < rows; r++)
        if (!lq_all_finite(x + r * ld, cols)) return false;
    return true;
}
