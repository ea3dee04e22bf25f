/* Binary coding of one group: greedy residual fit, alternating refinement
 * (least-squares alphas / nearest-level codes), levels, encode, decode and
 * the bit-plane packing. Pure per-vector math: no allocation. */
#include <math.h>
#include <string.h>

#include "bcq/bcq_internal.h"

void lq_bcq_fit_opts_init(lq_bcq_fit_opts *o)
{
    if (!o) return;
    o->k = 3;
    o->offset = 0;
    o->iters = 15;
    o->tol = 1e-7;
}

/* ---- level tables ------------------------------------------------------- */

void lq_bcq_table(const float *alpha, unsigned k, float offset, float *lev, uint8_t *code)
{
    /* Order by merging: the codes with bit i set are the codes without it
     * shifted by 2 alpha_i, so two sorted lists merge into the next one
     * (O(2^k), any sign of alpha). Keys in double, then the exact float
     * values are recomputed and an insertion pass (nearly sorted input, so
     * linear) makes the order exact on them. */
    double key[256], tmp_k[256];
    uint8_t tmp_c[256];
    size_t L = 1;
    double base = offset;
    for (unsigned i = 0; i < k; i++) base -= alpha[i];
    key[0] = base;
    code[0] = 0;
    for (unsigned i = 0; i < k; i++) {
        double sh = 2.0 * (double)alpha[i];
        size_t a = 0, b = 0, o = 0;
        while (a < L || b < L) {
            int take_a;
            if (a == L)
                take_a = 0;
            else if (b == L)
                take_a = 1;
            else
                take_a = key[a] <= key[b] + sh;
            if (take_a) {
                tmp_k[o] = key[a];
                tmp_c[o++] = code[a++];
            } else {
                tmp_k[o] = key[b] + sh;
                tmp_c[o++] = (uint8_t)(code[b++] | (1u << i));
            }
        }
        L *= 2;
        memcpy(key, tmp_k, L * sizeof *key);
        memcpy(code, tmp_c, L);
    }
    for (size_t j = 0; j < L; j++) lev[j] = lq_bcq_value(alpha, k, offset, code[j]);
    for (size_t j = 1; j < L; j++) {
        float v = lev[j];
        uint8_t c = code[j];
        size_t p = j;
        while (p > 0 && (lev[p - 1] > v || (lev[p - 1] == v && code[p - 1] > c))) {
            lev[p] = lev[p - 1];
            code[p] = code[p - 1];
            p--;
        }
        lev[p] = v;
        code[p] = c;
    }
}

/* ---- the fit ------------------------------------------------------------ */

static double weighted_err(const float *w, const float *v, size_t n, const float *alpha, unsigned k,
                           float off, const uint8_t *codes)
{
    float val[256];
    for (unsigned c = 0; c < (1u << k); c++) val[c] = lq_bcq_value(alpha, k, off, c);
    const uint8_t keep = (uint8_t)((1u << k) - 1u);
    double e = 0;
    if (v) {
        for (size_t j = 0; j < n; j++) {
            double d = (double)w[j] - (double)val[codes[j] & keep];
            e += (double)v[j] * d * d;
        }
    } else {
        for (size_t j = 0; j < n; j++) {
            double d = (double)w[j] - (double)val[codes[j] & keep];
            e += d * d;
        }
    }
    return e;
}

/* Solve the m x m SPD system M x = b (m <= 9) by Cholesky on the set of
 * variables that stay linearly independent: a pivot below 1e-10 of the
 * largest diagonal drops its variable (x = 0) and the solve restarts. */
static void solve_dropping(const double *M, const double *b, unsigned m, double *x)
{
    int active[9];
    double dmax = 0;
    for (unsigned i = 0; i < m; i++) {
        active[i] = M[i * m + i] > 0;
        if (M[i * m + i] > dmax) dmax = M[i * m + i];
    }
    for (;;) {
        unsigned idx[9], na = 0;
        for (unsigned i = 0; i < m; i++)
            if (active[i]) idx[na++] = i;
        double L[81], y[9];
        int dropped = -1;
        for (unsigned c = 0; c < na && dropped < 0; c++) {
            for (unsigned r = c; r < na; r++) {
                double s = M[idx[r] * m + idx[c]];
                for (unsigned p = 0; p < c; p++) s -= L[r * 9 + p] * L[c * 9 + p];
                if (r == c) {
                    if (!(s > 1e-10 * dmax)) {
                        dropped = (int)idx[c];
                        break;
                    }
                    L[c * 9 + c] = sqrt(s);
                } else {
                    L[r * 9 + c] = s / L[c * 9 + c];
                }
            }
        }
        if (dropped >= 0) {
            active[dropped] = 0;
            continue;
        }
        for (unsigned r = 0; r < na; r++) {
            double s = b[idx[r]];
            for (unsigned p = 0; p < r; p++) s -= L[r * 9 + p] * y[p];
            y[r] = s / L[r * 9 + r];
        }
        for (unsigned r = na; r-- > 0;) {
            double s = y[r];
            for (unsigned p = r + 1; p < na; p++) s -= L[p * 9 + r] * y[p];
            y[r] = s / L[r * 9 + r];
        }
        for (unsigned i = 0; i < m; i++) x[i] = 0;
        for (unsigned r = 0; r < na; r++) x[idx[r]] = y[r];
        return;
    }
}

/* Least-squares alphas (and offset) for fixed codes, from per-code sums. */
static void ls_alphas(const float *w, const float *v, size_t n, unsigned k, int use_off,
                      const uint8_t *codes, float *alpha, float *off)
{
    double cw[256], cwx[256];
    memset(cw, 0, (sizeof *cw) << k);
    memset(cwx, 0, (sizeof *cwx) << k);
    for (size_t j = 0; j < n; j++) {
        double vj = v ? (double)v[j] : 1.0;
        cw[codes[j]] += vj;
        cwx[codes[j]] += vj * (double)w[j];
    }
    unsigned m = k + (use_off ? 1u : 0u);
    double M[81] = {0}, b[9] = {0}, x[9];
    for (unsigned c = 0; c < (1u << k); c++) {
        if (cw[c] == 0) continue;
        double s[9];
        for (unsigned i = 0; i < k; i++) s[i] = ((c >> i) & 1u) ? 1.0 : -1.0;
        if (use_off) s[k] = 1.0;
        for (unsigned r = 0; r < m; r++) {
            b[r] += cwx[c] * s[r];
            for (unsigned q = 0; q < m; q++) M[r * m + q] += cw[c] * s[r] * s[q];
        }
    }
    solve_dropping(M, b, m, x);
    for (unsigned i = 0; i < k; i++) alpha[i] = (float)x[i];
    *off = use_off ? (float)x[k] : 0.0f;
}

/* Nearest-level codes; returns how many codes changed. */
static size_t assign_nearest(const float *w, size_t n, const float *alpha, unsigned k, float off,
                             uint8_t *codes)
{
    float lev[256];
    uint8_t code[256];
    lq_bcq_table(alpha, k, off, lev, code);
    size_t L = (size_t)1 << k, changed = 0;
    for (size_t j = 0; j < n; j++) {
        uint8_t c = code[lq_bcq_nearest(lev, L, w[j])];
        changed += c != codes[j];
        codes[j] = c;
    }
    return changed;
}

/* Alphas >= 0 (flip the plane of a negative one), sorted decreasing. */
static void canon_planes(float *alpha, unsigned k, uint8_t *codes, size_t n)
{
    uint8_t flip = 0;
    for (unsigned i = 0; i < k; i++)
        if (alpha[i] < 0) {
            alpha[i] = -alpha[i];
            flip |= (uint8_t)(1u << i);
        }
    unsigned order[8];
    for (unsigned i = 0; i < k; i++) order[i] = i;
    for (unsigned i = 1; i < k; i++) { /* stable insertion sort, decreasing */
        unsigned o = order[i], p = i;
        while (p > 0 && alpha[order[p - 1]] < alpha[o]) {
            order[p] = order[p - 1];
            p--;
        }
        order[p] = o;
    }
    int identity = 1;
    for (unsigned i = 0; i < k; i++) identity &= order[i] == i;
    if (!flip && identity) return;
    float a2[8];
    uint8_t map[256];
    for (unsigned i = 0; i < k; i++) a2[i] = alpha[order[i]];
    for (unsigned c = 0; c < (1u << k); c++) {
        unsigned f = c ^ flip, nc = 0;
        for (unsigned i = 0; i < k; i++) nc |= ((f >> order[i]) & 1u) << i;
        map[c] = (uint8_t)nc;
    }
    uint8_t keep = (uint8_t)((1u << k) - 1u);
    for (size_t j = 0; j < n; j++) codes[j] = map[codes[j] & keep];
    memcpy(alpha, a2, k * sizeof *alpha);
}

static lq_status check_weights(const float *weight, size_t n, int *uniform)
{
    *uniform = 1;
    if (!weight) return LQ_OK;
    double s = 0;
    for (size_t j = 0; j < n; j++) {
        if (!isfinite(weight[j])) return LQ_ERR_NOT_FINITE;
        if (weight[j] < 0) return LQ_ERR_INVALID_ARG;
        s += weight[j];
    }
    if (s > 0) *uniform = 0;
    return LQ_OK;
}

/* Alternating refinement from the current (alpha, off, codes): at most
 * `iters` rounds of least-squares alphas then nearest codes, each half step
 * kept only if it does not raise the error. err is the current error;
 * returns the final one. trace/cnt as in lq_bcq_fit. */
static double refine(const float *w, const float *v, size_t n, unsigned k, int use_off,
                     unsigned iters, double tol, float *alpha, float *off_io, uint8_t *codes,
                     double err, double *trace, size_t *cnt)
{
    float off = *off_io;
    for (unsigned it = 0; it < iters && err > 0; it++) {
        float na[8], noff;
        ls_alphas(w, v, n, k, use_off, codes, na, &noff);
        int finite = isfinite(noff);
        for (unsigned i = 0; i < k; i++) finite &= isfinite(na[i]);
        if (!finite) break;
        double e1 = weighted_err(w, v, n, na, k, noff, codes);
        if (!(e1 <= err)) break;
        memcpy(alpha, na, k * sizeof *alpha);
        off = noff;
        /* no canonical form inside the loop: reordering planes would change
         * the float sums by an ulp and break exact monotonicity */
        if (trace) trace[*cnt] = e1;
        (*cnt)++;
        size_t changed = assign_nearest(w, n, alpha, k, off, codes);
        double e2 = changed ? weighted_err(w, v, n, alpha, k, off, codes) : e1;
        if (trace) trace[*cnt] = e2;
        (*cnt)++;
        double prev = err;
        err = e2;
        if (!changed) break; /* fixed point: the next alphas would be these */
        if (prev - e2 <= tol * prev) break;
    }
    canon_planes(alpha, k, codes, n);
    *off_io = off;
    return err;
}

double lq_bcq_refine(const float *w, const float *v, size_t n, unsigned k, int use_off,
                     unsigned iters, double tol, float *alpha, float *off, uint8_t *codes)
{
    (void)assign_nearest(w, n, alpha, k, *off, codes);
    double err = weighted_err(w, v, n, alpha, k, *off, codes);
    size_t cnt = 0;
    return refine(w, v, n, k, use_off, iters, tol, alpha, off, codes, err, NULL, &cnt);
}

/* The fit proper (arguments already validated; v NULL = uniform). */
static void bcq_fit_core(const float *w, const float *v, size_t n, unsigned k, int use_off,
                         unsigned iters, double tol, float *alpha, float *off_out, uint8_t *codes,
                         double *trace, size_t *nt)
{
    double vs = 0, vw = 0;
    for (size_t j = 0; j < n; j++) {
        double vj = v ? (double)v[j] : 1.0;
        vs += vj;
        vw += vj * (double)w[j];
    }
    float off = use_off ? (float)(vw / vs) : 0.0f;
    memset(codes, 0, n);
    for (unsigned i = 0; i < k; i++) {
        double sa = 0;
        for (size_t j = 0; j < n; j++) {
            float r = w[j] - lq_bcq_value(alpha, i, off, codes[j]);
            if (r >= 0) codes[j] |= (uint8_t)(1u << i);
            sa += (v ? (double)v[j] : 1.0) * fabs((double)r);
        }
        alpha[i] = (float)(sa / vs);
    }
    double err = weighted_err(w, v, n, alpha, k, off, codes);
    size_t cnt = 0;
    if (trace) trace[cnt] = err;
    cnt++;
    refine(w, v, n, k, use_off, iters, tol, alpha, &off, codes, err, trace, &cnt);
    *off_out = off;
    if (nt) *nt = cnt;
}

lq_status lq_bcq_fit(const float *w, const float *weight, size_t n, const lq_bcq_fit_opts *opts,
                     float *alpha, float *offset, uint8_t *codes, double *trace, size_t *n_trace)
{
    lq_bcq_fit_opts d;
    lq_bcq_fit_opts_init(&d);
    const lq_bcq_fit_opts *o = opts ? opts : &d;
    if (!w || !alpha || !codes || n == 0) return LQ_ERR_INVALID_ARG;
    if (o->k < 1 || o->k > LQ_BCQ_MAX_K || (o->offset != 0 && o->offset != 1))
        return LQ_ERR_INVALID_ARG;
    if (o->offset && !offset) return LQ_ERR_INVALID_ARG;
    if (!(o->tol >= 0) || !isfinite(o->tol)) return LQ_ERR_INVALID_ARG;
    if (!lq_all_finite(w, n)) return LQ_ERR_NOT_FINITE;
    int uniform;
    lq_status st = check_weights(weight, n, &uniform);
    if (st != LQ_OK) return st;
    float a[LQ_BCQ_MAX_K] = {0}, off;
    bcq_fit_core(w, uniform ? NULL : weight, n, o->k, o->offset, o->iters, o->tol, a, &off, codes,
                 trace, n_trace);
    memcpy(alpha, a, o->k * sizeof *alpha);
    if (offset) *offset = off;
    return LQ_OK;
}

/* ---- levels / encode / decode ------------------------------------------- */

static lq_status check_alpha(const float *alpha, unsigned k, float offset)
{
    if (!alpha || k < 1 || k > LQ_BCQ_MAX_K) return LQ_ERR_INVALID_ARG;
    if (!lq_all_finite(alpha, k) || !isfinite(offset)) return LQ_ERR_NOT_FINITE;
    return LQ_OK;
}

lq_status lq_bcq_levels(const float *alpha, unsigned k, float offset, float *levels, uint8_t *codes)
{
    lq_status st = check_alpha(alpha, k, offset);
    if (st != LQ_OK) return st;
    if (!levels || !codes) return LQ_ERR_INVALID_ARG;
    float lev[256];
    uint8_t code[256];
    lq_bcq_table(alpha, k, offset, lev, code);
    memcpy(levels, lev, ((size_t)1 << k) * sizeof *levels);
    memcpy(codes, code, (size_t)1 << k);
    return LQ_OK;
}

lq_status lq_bcq_encode(const float *w, size_t n, const float *alpha, unsigned k, float offset,
                        uint8_t *codes)
{
    lq_status st = check_alpha(alpha, k, offset);
    if (st != LQ_OK) return st;
    if (!w || !codes || n == 0) return LQ_ERR_INVALID_ARG;
    if (!lq_all_finite(w, n)) return LQ_ERR_NOT_FINITE;
    (void)assign_nearest(w, n, alpha, k, offset, codes);
    return LQ_OK;
}

lq_status lq_bcq_decode(const uint8_t *codes, size_t n, const float *alpha, unsigned k,
                        float offset, float *w)
{
    lq_status st = check_alpha(alpha, k, offset);
    if (st != LQ_OK) return st;
    if (!w || !codes || n == 0) return LQ_ERR_INVALID_ARG;
    for (size_t j = 0; j < n; j++) w[j] = lq_bcq_value(alpha, k, offset, codes[j]);
    return LQ_OK;
}

/* ---- bit planes ------------------------------------------------------------ */

size_t lq_bcq_plane_bytes(size_t n) { return n / 8 + (n % 8 != 0); }

lq_status lq_bcq_pack(const uint8_t *codes, size_t n, unsigned k, uint8_t *planes)
{
    if (!codes || !planes || n == 0 || k < 1 || k > LQ_BCQ_MAX_K) return LQ_ERR_INVALID_ARG;
    size_t bpp = lq_bcq_plane_bytes(n), total;
    if (!lq_mul_ok(bpp, k, &total)) return LQ_ERR_INVALID_ARG; /* k planes must be addressable */
    for (unsigned i = 0; i < k; i++) {
        uint8_t *p = planes + i * bpp;
        memset(p, 0, bpp);
        for (size_t j = 0; j < n; j++) p[j / 8] |= (uint8_t)(((codes[j] >> i) & 1u) << (j % 8));
    }
    return LQ_OK;
}

lq_status lq_bcq_unpack(const uint8_t *planes, size_t n, unsigned k, uint8_t *codes)
{
    if (!codes || !planes || n == 0 || k < 1 || k > LQ_BCQ_MAX_K) return LQ_ERR_INVALID_ARG;
    size_t bpp = lq_bcq_plane_bytes(n), total;
    if (!lq_mul_ok(bpp, k, &total)) return LQ_ERR_INVALID_ARG; /* k planes must be addressable */
    memset(codes, 0, n);
    for (unsigned i = 0; i < k; i++) {
        const uint8_t *p = planes + i * bpp;
        for (size_t j = 0; j < n; j++) codes[j] |= (uint8_t)(((p[j / 8] >> (j % 8)) & 1u) << i);
    }
    return LQ_OK;
}
