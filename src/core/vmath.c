/*
 * Vector math used in bulk: Gaussian sampling (Box-Muller). With SLEEF the
 * logarithm and sin/cos run two lanes at a time (SSE2 / AdvSIMD, baseline on
 * both architectures, so no dispatch is needed); without SLEEF libm does the
 * same arithmetic one value at a time. Both are deterministic for a seed;
 * the last bits of a sample may differ between a SLEEF and a libm build
 * (documented in docs/design.md).
 */
#include <math.h>

#include "core/internal.h"

#if LQ_HAVE_SLEEF
#if LQ_ARCH_X86
#include <emmintrin.h>
#elif LQ_ARCH_ARM
#include <arm_neon.h>
#endif
#include <sleef.h>
#endif

#define TWO_PI 6.283185307179586476925

#if !(LQ_HAVE_SLEEF && (LQ_ARCH_X86 || LQ_ARCH_ARM))
/* One Box-Muller pair from u1 in (0, 1], u2 in [0, 1). */
static void pair_libm(double u1, double u2, double *g0, double *g1)
{
    double r = sqrt(-2.0 * log(u1));
    *g0 = r * cos(TWO_PI * u2);
    *g1 = r * sin(TWO_PI * u2);
}
#endif

void lq_gaussian_fill(lq_rng *r, float *x, size_t n, float sigma)
{
    size_t i = 0;
    while (i < n) {
        double u1[2], u2[2], g[4];
        for (int k = 0; k < 2; k++) {
            u1[k] = 1.0 - lq_rng_uniform(r);
            u2[k] = lq_rng_uniform(r);
        }
#if LQ_HAVE_SLEEF && (LQ_ARCH_X86 || LQ_ARCH_ARM)
#if LQ_ARCH_X86
        __m128d vl = Sleef_logd2_u10(_mm_loadu_pd(u1));
        __m128d vr = _mm_sqrt_pd(_mm_mul_pd(_mm_set1_pd(-2.0), vl));
        /* sincospi(2 u2) = (sin, cos)(2 pi u2) */
        Sleef___m128d_2 sc = Sleef_sincospid2_u05(_mm_add_pd(_mm_loadu_pd(u2), _mm_loadu_pd(u2)));
        double rr[2], s[2], c[2];
        _mm_storeu_pd(rr, vr);
        _mm_storeu_pd(s, sc.x);
        _mm_storeu_pd(c, sc.y);
#else
        float64x2_t vl = Sleef_logd2_u10(vld1q_f64(u1));
        float64x2_t vr = vsqrtq_f64(vmulq_n_f64(vl, -2.0));
        float64x2_t t = vld1q_f64(u2);
        Sleef_float64x2_t_2 sc = Sleef_sincospid2_u05(vaddq_f64(t, t));
        double rr[2], s[2], c[2];
        vst1q_f64(rr, vr);
        vst1q_f64(s, sc.x);
        vst1q_f64(c, sc.y);
#endif
        for (int k = 0; k < 2; k++) {
            g[2 * k] = rr[k] * c[k];
            g[2 * k + 1] = rr[k] * s[k];
        }
#else
        pair_libm(u1[0], u2[0], &g[0], &g[1]);
        pair_libm(u1[1], u2[1], &g[2], &g[3]);
#endif
        for (int k = 0; k < 4 && i < n; k++) x[i++] = sigma * (float)g[k];
    }
}
