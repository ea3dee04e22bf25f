/* GPTQT's conversion of one group: linear n-bit grid, binary coding fitted
 * to the grid levels in use (weighted by count x importance), merged into
 * pure BCQ; the grid scale is re-explored over candidate factors and the
 * candidate with the lowest weighted error on the weights wins.
 * See docs/algorithms.md "BCQ and GPTQT". Pure math: stack scratch only. */
#include <math.h>
#include <string.h>

#include "bcq/bcq_internal.h"

void lq_gptqt_opts_init(lq_gptqt_opts *o)
{
    if (!o) return;
    o->k = 3;
    o->linear_bits = 6;
    o->rescale_steps = 16;
    o->iters = 15;
    o->grid_codes = 0;
}

/* Candidate factor t of T: 1 at t0 = T / 3, steps of 0.6 / (T - 1), so T =
 * 16 spans 1.20 down to 0.60 (a range can shrink, clipping the tails, or
 * widen, spreading the binary levels). */
static double factor(unsigned t, unsigned T)
{
    if (T <= 1) return 1.0;
    double step = 0.6 / (double)(T - 1);
    return 1.0 + ((double)(T / 3) - (double)t) * step;
}

static inline unsigned grid_code(float x, double origin, double s, unsigned Lmax)
{
    double q = nearbyint(((double)x - origin) / s);
    if (!(q > 0)) return 0;
    if (q > (double)Lmax) return Lmax;
    return (unsigned)q;
}

lq_status lq_gptqt_convert(const float *w, const float *weight, size_t n, const lq_gptqt_opts *opts,
                           float *alpha, float *offset, uint8_t *codes, lq_gptqt_info *info)
{
    lq_gptqt_opts d;
    lq_gptqt_opts_init(&d);
    const lq_gptqt_opts *o = opts ? opts : &d;
    if (!w || !alpha || !offset || !codes || n == 0) return LQ_ERR_INVALID_ARG;
    if (o->k < 1 || o->k > LQ_BCQ_MAX_K || o->linear_bits < o->k ||
        o->linear_bits > LQ_BCQ_MAX_LINEAR_BITS || o->rescale_steps < 1 || o->rescale_steps > 256 ||
        (o->grid_codes != 0 && o->grid_codes != 1))
        return LQ_ERR_INVALID_ARG;
    if (!lq_all_finite(w, n)) return LQ_ERR_NOT_FINITE;
    for (size_t j = 0; j < n; j++) /* levels near FLT_MAX would overflow */
        if (fabsf(w[j]) > 0x1p100f) return LQ_ERR_NOT_FINITE;
    const float *v = NULL;
    if (weight) {
        double s = 0;
        for (size_t j = 0; j < n; j++) {
            if (!isfinite(weight[j])) return LQ_ERR_NOT_FINITE;
            if (weight[j] < 0) return LQ_ERR_INVALID_ARG;
            s += weight[j];
        }
        if (s > 0) v = weight;
    }
    const unsigned k = o->k, L = 1u << o->linear_bits, K = 1u << k;
    double wmin = w[0], wmax = w[0];
    for (size_t j = 1; j < n; j++) {
        if (w[j] < wmin) wmin = w[j];
        if (w[j] > wmax) wmax = w[j];
    }
    double s0 = (wmax - wmin) / (double)(L - 1);
    lq_gptqt_info cst = {0};
    if (!(s0 > 0) || !isfinite(s0)) { /* constant group (or a range beyond double) */
        if (!(s0 > 0)) {
            memset(alpha, 0, k * sizeof *alpha);
            *offset = w[0];
            memset(codes, 0, n);
            cst.scale = 0;
            cst.origin = w[0];
            cst.factor = 1;
            cst.levels_used = 1;
            if (info) *info = cst;
            return LQ_OK;
        }
        return LQ_ERR_NOT_FINITE;
    }
    const double mid = 0.5 * (wmin + wmax);
    float pts[256], cw[256];
    lq_bcq_fit_opts fo = {.k = k, .offset = 1, .iters = o->iters, .tol = 1e-5};
    float ca[256][LQ_BCQ_MAX_K], coff[256];
    double cerr[256];
    lq_gptqt_info cinfo[256];
    unsigned nc = 0;
    /* candidates are refined briefly, the winner fully (below) */
    const unsigned cand_iters = o->iters < 4 ? o->iters : 4;
    /* candidates nearest the initial scale first: ties keep the earlier */
    const unsigned T = o->rescale_steps, t0 = T / 3;
    for (unsigned u = 0; u < 2 * T; u++) {
        unsigned t = (u & 1) ? t0 + (u + 1) / 2 : t0 - u / 2; /* t0, t0+1, t0-1, ... */
        if ((u & 1) == 0 && u / 2 > t0) continue;
        if (t >= T) continue;
        double f = factor(t, T);
        double s = s0 * f, origin = mid - 0.5 * s * (double)(L - 1);
        /* importance of each grid level: sum of the weights' v that use it */
        double hist[256] = {0};
        unsigned used = 0;
        for (size_t j = 0; j < n; j++) {
            unsigned q = grid_code(w[j], origin, s, L - 1);
            hist[q] += v ? (double)v[j] : 1.0;
        }
        /* the levels in use, as weighted points (levels nobody uses carry
         * no weight, so leaving them out changes nothing but the cost) */
        for (unsigned l = 0; l < L; l++)
            if (hist[l] > 0) {
                pts[used] = (float)l;
                cw[used++] = (float)hist[l];
            }
        /* two starts on the integer levels, the better refined one kept:
         * the greedy fit, and the k-bit uniform grid spanning the used
         * levels (a uniform grid is exactly a binary coding, so a group
         * whose levels form one is converted exactly) */
        float a[LQ_BCQ_MAX_K], off_q, a2[LQ_BCQ_MAX_K], off2;
        uint8_t lc[256];
        if (used == 0 || lq_bcq_fit(pts, cw, used, &fo, a, &off_q, lc, NULL, NULL) != LQ_OK)
            continue;
        double e_fit = lq_bcq_refine(pts, cw, used, k, 1, 0, 0.0, a, &off_q, lc);
        unsigned qlo = (unsigned)pts[0], qhi = (unsigned)pts[used - 1];
        double ustep = (double)(qhi - qlo) / (double)(K - 1);
        for (unsigned i = 0; i < k; i++) a2[i] = (float)(0.5 * ustep * (double)(1u << (k - 1 - i)));
        off2 = (float)(0.5 * (double)(qlo + qhi));
        double e_uni = lq_bcq_refine(pts, cw, used, k, 1, o->iters, 1e-5, a2, &off2, lc);
        if (e_uni < e_fit) {
            memcpy(a, a2, sizeof a2);
            off_q = off2;
        }
        /* merge scale and origin: pure binary coding */
        float *ma = ca[nc], moff = (float)(origin + s * (double)off_q);
        for (unsigned i = 0; i < k; i++) ma[i] = (float)(s * (double)a[i]);
        float lev[256];
        uint8_t code[256], gmap[256];
        lq_bcq_table(ma, k, moff, lev, code);
        if (o->grid_codes)
            for (unsigned l = 0; l < L; l++)
                gmap[l] = code[lq_bcq_nearest(lev, K, (float)(origin + s * (double)l))];
        double err = 0;
        for (size_t j = 0; j < n; j++) {
            unsigned c = o->grid_codes ? gmap[grid_code(w[j], origin, s, L - 1)]
                                       : code[lq_bcq_nearest(lev, K, w[j])];
            double e = (double)w[j] - (double)lq_bcq_value(ma, k, moff, c);
            err += (v ? (double)v[j] : 1.0) * e * e;
        }
        if (!(err < INFINITY)) continue;
        coff[nc] = moff;
        cerr[nc] = err;
        cinfo[nc] = (lq_gptqt_info){.scale = s,
                                    .origin = origin,
                                    .factor = f,
                                    .candidate = t,
                                    .levels_used = used,
                                    .err = err};
        nc++;
    }
    if (nc == 0) return LQ_ERR_NOT_FINITE;
    /* direct coding: every converted coding is refined briefly on the
     * weights (taking only the few best by their unrefined error measured
     * 0.5% worse at 2 bits for 15% less time), best first so that ties keep
     * the earlier; the winner is then refined fully */
    unsigned order[256], R = o->grid_codes ? 1 : nc;
    for (unsigned c = 0; c < nc; c++) {
        unsigned p = c;
        while (p > 0 && cerr[order[p - 1]] > cerr[c]) {
            order[p] = order[p - 1];
            p--;
        }
        order[p] = c;
    }
    unsigned bi = order[0];
    double best_err = INFINITY;
    for (unsigned r = 0; r < R; r++) {
        unsigned c = order[r];
        if (!o->grid_codes)
            cerr[c] = lq_bcq_refine(w, v, n, k, 1, cand_iters, 1e-4, ca[c], &coff[c], codes);
        if (cerr[c] < best_err) {
            best_err = cerr[c];
            bi = c;
        }
    }
    lq_gptqt_info best = cinfo[bi];
    float best_a[LQ_BCQ_MAX_K], best_off = coff[bi];
    memcpy(best_a, ca[bi], sizeof best_a);
    best.err = cerr[bi];
    if (!o->grid_codes)
        best.err = lq_bcq_refine(w, v, n, k, 1, o->iters, 1e-7, best_a, &best_off, codes);
    /* final codes of the chosen candidate */
    float lev[256];
    uint8_t code[256];
    lq_bcq_table(best_a, k, best_off, lev, code);
    for (size_t j = 0; j < n; j++) {
        float x = w[j];
        if (o->grid_codes)
            x = (float)(best.origin +
                        best.scale * (double)grid_code(w[j], best.origin, best.scale, L - 1));
        codes[j] = code[lq_bcq_nearest(lev, K, x)];
    }
    memcpy(alpha, best_a, k * sizeof *alpha);
    *offset = best_off;
    if (info) *info = best;
    return LQ_OK;
}
