#include <math.h>

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
    case LQ_ERR_OUT_OF_RANGE: return "finite input beyond the supported range";
    }
    return "unknown status";
}

const char *lq_version(void) { return LQ_VERSION_STRING; }

bool lq_all_finite(const float *x, size_t n)
{
    /* Branch-free accumulation lets the compiler vectorize: x*0 is NaN
     * exactly when x is NaN or Inf. */
    float acc = 0.0f;
    for (size_t i = 0; i < n; i++) acc += x[i] * 0.0f;
    return acc == 0.0f;
}

lq_status lq_check_range(const float *x, size_t n, float bound)
{
    /* Two branch-free passes: NaN/Inf first (its own status), then the
     * magnitude (the compiler vectorizes both). */
    if (!lq_all_finite(x, n)) return LQ_ERR_NOT_FINITE;
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m <= bound ? LQ_OK : LQ_ERR_OUT_OF_RANGE;
}

bool lq_all_finite_2d(const float *x, size_t rows, size_t cols, size_t ld)
{
    for (size_t r = 0; r < rows; r++)
        if (!lq_all_finite(x + r * ld, cols)) return false;
    return true;
}
