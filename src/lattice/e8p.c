/*
 * E8P: a 2-bit codebook of 2^16 points of E8 + 1/4 (the idea of QuIP#'s
 * E8P, Tseng et al. 2024, written here from the math; layout and pattern
 * choice are ours). docs/algorithms.md, "E8P".
 *
 * D8hat = D8 + 1/2 (half-integer vectors with even sum) and E8 = D8 u
 * D8hat, so E8 + 1/4 = (D8hat + 1/4) u (D8hat - 1/4). A point of D8hat is
 * s * a: an absolute-value pattern a in (Z>=0 + 1/2)^8 and signs s; since
 * every 2 a_k is odd, the sum of s * a is even exactly when the number of
 * minus signs has the parity of sum(a). So 256 patterns (lq_e8p_abs2: the
 * 227 with |a|^2 <= 10 and 29 with |a|^2 = 12) x 128 sign patterns (7 free
 * signs, the 8th implied) x 2 shifts = 2^16 codewords, a ball-like set of
 * E8 + 1/4 points.
 *
 * Code (16 bits): bits 0-7 pattern index, bits 8-14 the signs of
 * coordinates 0-6 (1 = minus), bit 15 the shift (0: +1/4, 1: -1/4).
 * Coordinate 7 is minus iff popcount(bits 8-14) + sum(a) is odd.
 *
 * Nearest codeword of u, exactly, with the structure: for each shift c and
 * pattern a, the best signs are those of v = u - c (the rearrangement is
 * fixed, only signs are free), giving |v|^2 - 2 sum a_k |v_k| + |a|^2; when
 * their parity is wrong the cheapest fix flips the coordinate with the
 * smallest a_k |v_k|, adding 4 a_k |v_k|. 512 candidates of 8 terms
 * instead of 2^16 distances, in double. Ties: the first candidate (shift
 * +1/4 first, lower pattern index, signs as v with v_k = 0 counted as +,
 * the lowest coordinate among equal flip costs).
 */
#include <math.h>
#include <string.h>

#include "lattice/lattice_internal.h"

static unsigned pattern_parity(const uint8_t a2[8])
{
    unsigned s = 0;
    for (int k = 0; k < 8; k++) s += a2[k];
    return (s / 2) & 1u; /* sum(a) = s / 2, an integer (eight odd halves) */
}

void lq_e8p_point(uint16_t code, float y[8])
{
    const uint8_t *a2 = lq_e8p_abs2[code & 255u];
    unsigned sg = (code >> 8) & 127u;
    unsigned s7 = ((unsigned)__builtin_popcount(sg) + pattern_parity(a2)) & 1u;
    sg |= s7 << 7;
    const float sh = (code >> 15) ? -0.25f : 0.25f;
    for (int k = 0; k < 8; k++) {
        float a = 0.5f * (float)a2[k];
        y[k] = ((sg >> k) & 1u ? -a : a) + sh;
    }
}

uint16_t lq_e8p_nearest_code(const double u[8], unsigned npat)
{
    double best = INFINITY;
    unsigned bcode = 0;
    for (unsigned sh = 0; sh < 2; sh++) {
        const double c = sh ? -0.25 : 0.25;
        double v[8], av[8], vv = 0;
        unsigned neg = 0, sgn = 0;
        for (int k = 0; k < 8; k++) {
            v[k] = u[k] - c;
            av[k] = fabs(v[k]);
            vv += v[k] * v[k];
            if (v[k] < 0) {
                neg++;
                sgn |= 1u << k;
            }
        }
        for (unsigned p = 0; p < npat; p++) {
            const uint8_t *a2 = lq_e8p_abs2[p];
            double dot = 0, nn = 0, mn = INFINITY;
            int mi = 0;
            for (int k = 0; k < 8; k++) {
                double a = 0.5 * a2[k], t = a * av[k];
                dot += t;
                nn += a * a;
                if (t < mn) {
                    mn = t;
                    mi = k;
                }
            }
            double d = vv + nn - 2.0 * dot;
            unsigned s = sgn;
            if ((neg & 1u) != pattern_parity(a2)) {
                d += 4.0 * mn;
                s ^= 1u << mi;
            }
            if (d < best) {
                best = d;
                bcode = p | ((s & 127u) << 8) | (sh << 15);
            }
        }
    }
    return (uint16_t)bcode;
}

lq_status lq_e8p_decode(float scale, const uint16_t *codes, size_t n, float *y)
{
    size_t tot;
    if (!isfinite(scale) || !lq_mul_ok(n, 8, &tot)) return LQ_ERR_INVALID_ARG;
    if (n == 0) return LQ_OK;
    if (!codes || !y) return LQ_ERR_INVALID_ARG;
    for (size_t i = 0; i < n; i++) {
        lq_e8p_point(codes[i], y + 8 * i);
        for (int k = 0; k < 8; k++) y[8 * i + k] *= scale;
    }
    return LQ_OK;
}

lq_status lq_e8p_encode(float scale, const float *x, size_t n, uint16_t *codes, float *y)
{
    size_t tot;
    if (!(scale > 0.0f) || !isfinite(scale) || !lq_mul_ok(n, 8, &tot)) return LQ_ERR_INVALID_ARG;
    if (n == 0) return LQ_OK;
    if (!x || !codes) return LQ_ERR_INVALID_ARG;
    if (!lq_all_finite(x, tot)) return LQ_ERR_NOT_FINITE;
    for (size_t i = 0; i < n; i++) {
        double u[8];
        for (int k = 0; k < 8; k++) u[k] = (double)x[8 * i + k] / (double)scale;
        codes[i] = lq_e8p_nearest_code(u, 256);
        if (y) {
            lq_e8p_point(codes[i], y + 8 * i);
            for (int k = 0; k < 8; k++) y[8 * i + k] *= scale;
        }
    }
    return LQ_OK;
}

lq_status lq_e8p_nearest(const float *x, size_t n, float *y)
{
    size_t tot;
    if (!lq_mul_ok(n, 8, &tot)) return LQ_ERR_INVALID_ARG;
    if (n == 0) return LQ_OK;
    if (!x || !y) return LQ_ERR_INVALID_ARG;
    if (!lq_all_finite(x, tot)) return LQ_ERR_NOT_FINITE;
    for (size_t i = 0; i < n; i++) {
        double u[8];
        for (int k = 0; k < 8; k++) u[k] = x[8 * i + k];
        lq_e8p_point(lq_e8p_nearest_code(u, 256), y + 8 * i);
    }
    return LQ_OK;
}
