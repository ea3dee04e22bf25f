/*
 * Nearest point in Z^n, D_n and E8 (Conway and Sloane, "Fast quantizing and
 * decoding algorithms for lattice quantizers and codes", IEEE Trans. IT
 * 1982): the scalar reference, the kernel table and the public entry points.
 * The exact operation sequence here is the contract the SIMD kernels in
 * src/simd/e8_*.c reproduce bit for bit (see quant/lattice.h for the rule).
 */
#include <math.h>
#include <string.h>

#include "lattice/lattice_internal.h"
#include "simd/e8_simd.h"

/* D8 core: f = round(x) with the parity fix; returns the squared distance
 * |x - f|^2 evaluated as sum_k e_k * e_k (k = 0..7, e = x - round(x), mul
 * then add) plus (1 - (best + best)) when the parity fix moved the
 * coordinate of largest |e| (best) one step: the exact change of that
 * coordinate's square. The SIMD kernels compute exactly these operations. */
static inline float d8_core(const float x[8], float f[8])
{
    float e[8];
    float best = 0.0f;
    int idx = 0;
    for (int k = 0; k < 8; k++) {
        f[k] = rintf(x[k]);
        e[k] = x[k] - f[k];
        float a = fabsf(e[k]);
        if (k == 0 || a > best) {
            best = a;
            idx = k;
        }
    }
    float s = f[0];
    for (int k = 1; k < 8; k++) s = s + f[k];
    float d = e[0] * e[0];
    for (int k = 1; k < 8; k++) d = d + e[k] * e[k];
    float h = rintf(s * 0.5f);
    float r = s - (h + h);
    if (r != 0.0f) {
        f[idx] = f[idx] + (signbit(e[idx]) ? -1.0f : 1.0f);
        d = d + (1.0f - (best + best));
    }
    return d;
}

void lq_d8_point_ref(const float x[8], float y[8])
{
    float f[8];
    (void)d8_core(x, f);
    memcpy(y, f, sizeof f);
}

void lq_e8_point_ref(const float x[8], float y[8])
{
    float y0[8], y1[8], xs[8];
    float d0 = d8_core(x, y0);
    for (int k = 0; k < 8; k++) xs[k] = x[k] - 0.5f;
    float d1 = d8_core(xs, y1);
    for (int k = 0; k < 8; k++) y1[k] = y1[k] + 0.5f;
    memcpy(y, d1 < d0 ? y1 : y0, sizeof y0);
}

void lq_e8_batch_scalar(const float *x, size_t n, float *y)
{
    for (size_t i = 0; i < n; i++) lq_e8_point_ref(x + 8 * i, y + 8 * i);
}

void lq_d8_batch_scalar(const float *x, size_t n, float *y)
{
    for (size_t i = 0; i < n; i++) lq_d8_point_ref(x + 8 * i, y + 8 * i);
}

static const lq_lattice_kernels g_scalar = {
    LQ_SIMD_SCALAR,         lq_e8_batch_scalar,        lq_d8_batch_scalar,
    lq_fwht_scalar,         lq_finite_scalar,          lq_voronoi_coords_scalar,
    lq_voronoi_lift_scalar, lq_nq_gather_scale_scalar, lq_nq_accept_scalar};
#if LQ_ARCH_X86
static const lq_lattice_kernels g_avx2 = {
    LQ_SIMD_AVX2,         lq_e8_batch_avx2,        lq_d8_batch_avx2,
    lq_fwht_avx2,         lq_finite_avx2,          lq_voronoi_coords_avx2,
    lq_voronoi_lift_avx2, lq_nq_gather_scale_avx2, lq_nq_accept_avx2};
static const lq_lattice_kernels g_avx512 = {
    LQ_SIMD_AVX512,       lq_e8_batch_avx512,      lq_d8_batch_avx512,
    lq_fwht_avx512,       lq_finite_avx512,        lq_voronoi_coords_avx2,
    lq_voronoi_lift_avx2, lq_nq_gather_scale_avx2, lq_nq_accept_avx2};
#endif

const lq_lattice_kernels *lq_lattice_kernels_at(lq_simd_level level)
{
    lq_simd_level det = lq_simd_detected();
    if (level == LQ_SIMD_AUTO || level > det) level = det;
#if LQ_ARCH_X86
    if (level == LQ_SIMD_AVX512 && det == LQ_SIMD_AVX512) return &g_avx512;
    if (level == LQ_SIMD_AVX2 && (det == LQ_SIMD_AVX2 || det == LQ_SIMD_AVX512)) return &g_avx2;
#endif
    return &g_scalar;
}

lq_status lq_zn_nearest(const float *x, size_t n, float *y)
{
    if (n == 0) return LQ_OK;
    if (!x || !y) return LQ_ERR_INVALID_ARG;
    if (!lq_all_finite(x, n)) return LQ_ERR_NOT_FINITE;
    for (size_t i = 0; i < n; i++) y[i] = rintf(x[i]);
    return LQ_OK;
}

lq_status lq_dn_nearest(const float *x, size_t n, size_t dim, float *y)
{
    size_t total;
    if (dim == 0 || !lq_mul_ok(n, dim, &total)) return LQ_ERR_INVALID_ARG;
    if (n == 0) return LQ_OK;
    if (!x || !y) return LQ_ERR_INVALID_ARG;
    if (!lq_all_finite(x, total)) return LQ_ERR_NOT_FINITE;
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * dim;
        float *yi = y + i * dim;
        /* Same rule as D8: the sum of the rounded coordinates in order,
         * argmax of |error| with the lowest index on ties. */
        float best = 0.0f, ebest = 0.0f, s = 0.0f;
        size_t idx = 0;
        for (size_t k = 0; k < dim; k++) {
            float xk = xi[k];
            float f = rintf(xk);
            float e = xk - f;
            float a = fabsf(e);
            if (k == 0 || a > best) {
                best = a;
                idx = k;
                ebest = e;
            }
            s = k == 0 ? f : s + f;
            yi[k] = f;
        }
        float h = rintf(s * 0.5f);
        if (s - (h + h) != 0.0f) yi[idx] = yi[idx] + (ebest < 0.0f ? -1.0f : 1.0f);
    }
    return LQ_OK;
}

bool lq_finite_scalar(const float *x, size_t n)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, x + i, sizeof b);
        bad |= (uint32_t)((b & 0x7f800000u) == 0x7f800000u);
    }
    return bad == 0;
}

static lq_status batch_checked(const lq_lattice_kernels *k, int e8, const float *x, size_t n,
                               float *y)
{
    size_t total;
    if (!lq_mul_ok(n, 8, &total)) return LQ_ERR_INVALID_ARG;
    if (n == 0) return LQ_OK;
    if (!x || !y) return LQ_ERR_INVALID_ARG;
    if (!k->finite(x, total)) return LQ_ERR_NOT_FINITE;
    (e8 ? k->e8 : k->d8)(x, n, y);
    return LQ_OK;
}

lq_status lq_e8_nearest_at(lq_simd_level level, const float *x, size_t n, float *y)
{
    return batch_checked(lq_lattice_kernels_at(level), 1, x, n, y);
}

lq_status lq_d8_nearest_at(lq_simd_level level, const float *x, size_t n, float *y)
{
    return batch_checked(lq_lattice_kernels_at(level), 0, x, n, y);
}

lq_status lq_e8_nearest(const float *x, size_t n, float *y)
{
    return lq_e8_nearest_at(LQ_SIMD_AUTO, x, n, y);
}

lq_status lq_d8_nearest(const float *x, size_t n, float *y)
{
    return lq_d8_nearest_at(LQ_SIMD_AUTO, x, n, y);
}
