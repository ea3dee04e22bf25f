/*
 * Exact nearest codeword of an E8 Voronoi code (the optimal encoder).
 *
 * The code C_q is the image of decode (quant/lattice.h): one point of every
 * coset of qE8, each inside the closed cell qV = {y : y.r <= q for the 240
 * roots r}. The usual encoder maps u to its nearest lattice point t; when t
 * is in C_q (no overload) that is the nearest codeword, otherwise decode
 * wraps it to a far point. Here an overloaded u gets the true nearest
 * codeword by a depth-first enumeration of the E8 points p (both cosets D8
 * and D8 + 1/2) with |u - p|^2 < bound, visiting each coordinate's values
 * from the closest outwards (Schnorr-Euchner order) and shrinking the bound
 * at each codeword found. Three necessary conditions of qV prune the tree
 * before any membership test: |p_i| + |p_j| <= q (the roots e_i +- e_j),
 * sum |p_i| <= 2q + 2 min |p_i| (the roots (+-1/2)^8), and |p|^2 <= q^2
 * (qV lies in the ball of radius q, E8's covering radius being 1). A leaf
 * is a codeword iff decode(coords(p)) == p, with exactly the operations of
 * lq_voronoi_decode_batch. All arithmetic on p is exact (half-integers in
 * double). Scalar only: the result does not depend on the SIMD level.
 */
#include <math.h>
#include <string.h>

#include "lattice/lattice_internal.h"

typedef struct vn_state {
    double u[8];
    double off; /* 0 (D8) or 1/2 (D8 + 1/2) */
    double q, q2;
    unsigned qi;
    double best; /* squared distance to beat (strict) */
    double p[8]; /* candidate, in search order */
    int perm[8]; /* search position -> coordinate */
    float y[8];
    int found;
    long nodes; /* visited, against LQ_VORONOI_SEARCH_NODES */
} vn_state;

/* decode(coords(y)) == y, bit for bit as lq_voronoi_decode_batch. */
bool lq_voronoi_member(unsigned q, const float y[8])
{
    uint8_t c[8];
    float z[8], w[8], d[8];
    if (!lq_voronoi_coords(q, y, c)) return false;
    lq_voronoi_lift(c, z);
    const float fq = (float)q, iq = 1.0f / fq;
    for (int k = 0; k < 8; k++) w[k] = z[k] * iq;
    lq_e8_point_ref(w, d);
    for (int k = 0; k < 8; k++)
        if (z[k] - fq * d[k] != y[k]) return false;
    return true;
}

double lq_voronoi_cell_excess(const double u[8])
{
    /* max over roots r of u.r: the two largest |u_i| for (+-1, +-1, 0^6);
     * sum |u_i| / 2, less min |u_i| when sign(u) has an odd number of minus
     * signs, for (+-1/2)^8 with an even number of minus signs. */
    double a1 = 0, a2 = 0, s = 0, mn = INFINITY;
    int neg = 0;
    for (int k = 0; k < 8; k++) {
        double a = fabs(u[k]);
        if (a > a1) {
            a2 = a1;
            a1 = a;
        } else if (a > a2) {
            a2 = a;
        }
        s += a;
        if (a < mn) mn = a;
        neg += u[k] < 0;
    }
    double h = 0.5 * s - ((neg & 1) ? mn : 0.0);
    return a1 + a2 > h ? a1 + a2 : h;
}

static void vn_leaf(vn_state *s, double d)
{
    /* p.r is an integer for every root r (E8 is even unimodular), so p is
     * either strictly inside qV (max p.r <= q - 1: a codeword, decode's float
     * rounding being far smaller than that margin), outside (> q: not), or on
     * its boundary, where the tie rule decides: test it. */
    const double ex = lq_voronoi_cell_excess(s->p);
    if (ex > s->q) return;
    float y[8];
    /* + 0.0f: decode never yields -0.0, nor may we */
    for (int k = 0; k < 8; k++) y[s->perm[k]] = (float)s->p[k] + 0.0f;
    if (ex == s->q) {
        if (!lq_voronoi_member(s->qi, y)) return;
    }
    s->best = d;
    memcpy(s->y, y, sizeof y);
    s->found = 1;
}

/* Coordinate k given the partial distance A, partial norm B, parity of the
 * integer parts, partial sum of |p| S, max |p| so far, min |p| so far. */
static void vn_rec(vn_state *s, int k, double A, double B, int par, double S, double amax,
                   double amin)
{
    if (k == 8) {
        vn_leaf(s, A);
        return;
    }
    if (++s->nodes > LQ_VORONOI_SEARCH_NODES) return;
    const double c = s->u[k] - s->off; /* centre in integer units */
    const double z0 = floor(c + 0.5);
    /* magnitude limit: |p_k| <= q - amax and p_k^2 <= q^2 - B */
    double L = s->q - amax, L2 = s->q2 - B;
    if (L < 0 || L2 < 0) return;
    if (L * L > L2) L = sqrt(L2);
    /* zig-zag outwards from z0: up = z0, z0 + 1, ...; dn = z0 - 1, ... */
    double up = z0, dn = z0 - 1;
    int up_ok = 1, dn_ok = 1;
    while (up_ok || dn_ok) {
        double z;
        if (up_ok && (!dn_ok || fabs(up - c) <= fabs(dn - c))) {
            z = up;
            up += 1;
        } else {
            z = dn;
            dn -= 1;
        }
        const double e = c - z, de = e * e;
        if (!(A + de < s->best)) { /* this direction only gets farther */
            if (z >= z0)
                up_ok = 0;
            else
                dn_ok = 0;
            continue;
        }
        const double p = z + s->off, ap = fabs(p);
        if (ap > L) { /* |p| grows in this direction when p is past 0 */
            if (z >= z0 ? p > 0 : p < 0) {
                if (z >= z0)
                    up_ok = 0;
                else
                    dn_ok = 0;
            }
            continue;
        }
        const double mn = ap < amin ? ap : amin;
        if (S + ap > 2.0 * s->q + 2.0 * mn) continue;
        /* every later coordinate has |p_j| <= q - max |p|: it contributes at
         * least (|u_j| - (q - max |p|))^2 where |u_j| exceeds that */
        const double mx = ap > amax ? ap : amax, lim = s->q - mx;
        double lb = 0;
        for (int j = k + 1; j < 8; j++) {
            double g = fabs(s->u[j]) - lim;
            if (g > 0) lb += g * g;
        }
        if (!(A + de + lb < s->best)) continue;
        const int zp = (int)fmod(fabs(z), 2.0);
        if (k == 7 && ((par + zp) & 1)) continue; /* sum of integer parts even */
        s->p[k] = p;
        vn_rec(s, k + 1, A + de, B + p * p, (par + zp) & 1, S + ap, mx, mn);
    }
}

/* The root r maximising c.r (see lq_voronoi_cell_excess); returns c.r. */
static double max_root(const double c[8], double r[8])
{
    int i1 = -1, i2 = -1, imn = 0, neg = 0;
    double s = 0;
    for (int k = 0; k < 8; k++) {
        double a = fabs(c[k]);
        if (i1 < 0 || a > fabs(c[i1])) {
            i2 = i1;
            i1 = k;
        } else if (i2 < 0 || a > fabs(c[i2])) {
            i2 = k;
        }
        if (a < fabs(c[imn])) imn = k;
        s += a;
        neg += c[k] < 0;
    }
    double h = 0.5 * s - ((neg & 1) ? fabs(c[imn]) : 0.0);
    double t = fabs(c[i1]) + fabs(c[i2]);
    memset(r, 0, 8 * sizeof(double));
    if (t >= h) {
        r[i1] = c[i1] < 0 ? -1.0 : 1.0;
        r[i2] = c[i2] < 0 ? -1.0 : 1.0;
        return t;
    }
    for (int k = 0; k < 8; k++) r[k] = c[k] < 0 ? -0.5 : 0.5;
    if (neg & 1) r[imn] = -r[imn];
    return h;
}

static double dot8(const double *a, const double *b)
{
    double s = 0;
    for (int k = 0; k < 8; k++) s += a[k] * b[k];
    return s;
}

/* Projection of u onto qV = {p : p.r <= q for every root r} by Hildreth's
 * dual coordinate ascent (the most violated root enters, multipliers are
 * updated cyclically, clipped at 0). Any multipliers lam_r >= 0 give, with
 * w = sum lam_r r and c = u - w, the identity
 *   |u - p|^2 = |c - p|^2 + K0 + 2 sum lam_r (q - p.r),
 *   K0 = 2 w.u - |w|^2 - 2 q sum lam_r,
 * so K0 is a lower bound of |u - p|^2 over qV whatever the iteration
 * count (equal to the squared distance to qV at convergence). */
#define PROJ_ROOTS 24
#define PROJ_ITERS 64
static double project_cell(double q, const double u[8], double c[8])
{
    double R[PROJ_ROOTS][8], lam[PROJ_ROOTS];
    int nr = 0;
    memcpy(c, u, 8 * sizeof(double));
    for (int it = 0; it < PROJ_ITERS; it++) {
        for (int i = 0; i < nr; i++) {
            double nl = lam[i] + 0.5 * (dot8(c, R[i]) - q);
            if (nl < 0) nl = 0;
            for (int k = 0; k < 8; k++) c[k] -= (nl - lam[i]) * R[i][k];
            lam[i] = nl;
        }
        double r[8], v = max_root(c, r);
        if (v - q <= 1e-9 * q) break;
        int slot = -1;
        for (int i = 0; i < nr && slot < 0; i++)
            if (lam[i] == 0) slot = i;
        if (slot < 0) {
            if (nr == PROJ_ROOTS) break;
            slot = nr++;
        }
        memcpy(R[slot], r, sizeof r);
        lam[slot] = 0.5 * (v - q);
        for (int k = 0; k < 8; k++) c[k] -= lam[slot] * r[k];
    }
    double w[8], sl = 0;
    for (int k = 0; k < 8; k++) w[k] = u[k] - c[k];
    for (int i = 0; i < nr; i++) sl += lam[i];
    return 2.0 * dot8(w, u) - dot8(w, w) - 2.0 * q * sl;
}

bool lq_voronoi_search(unsigned q, const double u[8], double *bound, float y[8], int *exact)
{
    if (exact) *exact = 1;
    const double fq = (double)q;
    double ex = lq_voronoi_cell_excess(u) - fq;
    if (ex > 0 && 0.5 * ex * ex >= *bound) return false; /* the worst face alone */
    vn_state s;
    memset(&s, 0, sizeof s);
    s.best = *bound;
    /* A near-optimal start: the nearest lattice point to the projection c
     * of u onto qV, moved inwards along u - c until it is a codeword. */
    double c[8], K0 = project_cell(fq, u, c);
    if (K0 >= s.best) return false;
    {
        double nrm[8], nn = 0;
        for (int k = 0; k < 8; k++) {
            nrm[k] = u[k] - c[k];
            nn += nrm[k] * nrm[k];
        }
        nn = nn > 0 ? 1.0 / sqrt(nn) : 0.0;
        for (double t = 0; t <= fq; t = t < 2 ? t + 0.5 : t * 1.5) {
            float pf[8];
            double pd[8];
            for (int k = 0; k < 8; k++) pf[k] = (float)(c[k] - t * nrm[k] * nn);
            lq_e8_point_ref(pf, pf);
            for (int k = 0; k < 8; k++) {
                pf[k] = pf[k] + 0.0f; /* as decode: never -0.0 */
                pd[k] = pf[k];
            }
            double e = lq_voronoi_cell_excess(pd);
            if (e > fq || (e == fq && !lq_voronoi_member(q, pf))) continue;
            double d = 0;
            for (int k = 0; k < 8; k++) d += (u[k] - pd[k]) * (u[k] - pd[k]);
            if (d < s.best) {
                s.best = d;
                memcpy(s.y, pf, sizeof pf);
                s.found = 1;
            }
            break;
        }
    }
    /* search the largest |u_k| first: they are the most constrained */
    for (int k = 0; k < 8; k++) s.perm[k] = k;
    for (int i = 1; i < 8; i++)
        for (int j = i; j > 0 && fabs(u[s.perm[j]]) > fabs(u[s.perm[j - 1]]); j--) {
            int t = s.perm[j];
            s.perm[j] = s.perm[j - 1];
            s.perm[j - 1] = t;
        }
    for (int k = 0; k < 8; k++) s.u[k] = u[s.perm[k]];
    s.q = fq;
    s.q2 = fq * fq;
    s.qi = q;
    for (int o = 0; o < 2; o++) {
        s.off = o ? 0.5 : 0.0;
        vn_rec(&s, 0, 0.0, 0.0, 0, 0.0, 0.0, INFINITY);
    }
    if (exact && s.nodes > LQ_VORONOI_SEARCH_NODES) *exact = 0;
    if (!s.found) return false;
    *bound = s.best;
    memcpy(y, s.y, sizeof s.y);
    return true;
}

lq_status lq_voronoi_nearest(unsigned q, float beta, const float *x, size_t n, uint8_t *codes,
                             float *y, size_t *n_inexact)
{
    size_t ninex = 0;
    size_t tot;
    if (q < 2 || q > LQ_VORONOI_Q_MAX || !(beta > 0.0f) || !isfinite(beta) ||
        !lq_mul_ok(n, 8, &tot))
        return LQ_ERR_INVALID_ARG;
    if (n == 0) {
        if (n_inexact) *n_inexact = 0;
        return LQ_OK;
    }
    if (!x || !codes) return LQ_ERR_INVALID_ARG;
    const lq_lattice_kernels *k = lq_lattice_kernels_at(LQ_SIMD_AUTO);
    if (!k->finite(x, tot)) return LQ_ERR_NOT_FINITE;
    const float ib = 1.0f / beta;
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + 8 * i;
        float t[8], yd[8];
        uint8_t c[8];
        for (int j = 0; j < 8; j++) t[j] = xi[j] * ib;
        lq_e8_point_ref(t, t);
        int far = !lq_voronoi_coords(q, t, c);
        if (far) memset(c, 0, 8);
        lq_voronoi_decode_batch(k, q, c, 1, yd);
        int ov = far;
        for (int j = 0; j < 8; j++) ov |= yd[j] != t[j];
        if (ov) {
            /* the wrapped codeword and 0 are codewords: start from the
             * closer one (in x units, as every candidate is compared) */
            double u[8], dw = 0, d0 = 0;
            for (int j = 0; j < 8; j++) {
                u[j] = (double)xi[j] / (double)beta;
                double r = (double)(beta * yd[j]) - xi[j];
                dw += r * r;
                d0 += (double)xi[j] * xi[j];
            }
            if (d0 < dw) {
                memset(c, 0, 8);
                memset(yd, 0, sizeof yd);
                dw = d0;
            }
            double bound = dw / ((double)beta * beta);
            float ys[8];
            int exact;
            bool got = lq_voronoi_search(q, u, &bound, ys, &exact);
            ninex += !exact;
            if (got) {
                double de = 0;
                for (int j = 0; j < 8; j++) {
                    double r = (double)(beta * ys[j]) - xi[j];
                    de += r * r;
                }
                if (de < dw) {
                    lq_voronoi_coords(q, ys, c);
                    memcpy(yd, ys, sizeof ys);
                }
            }
        }
        memcpy(codes + 8 * i, c, 8);
        if (y)
            for (int j = 0; j < 8; j++) y[8 * i + j] = beta * yd[j];
    }
    if (n_inexact) *n_inexact = ninex;
    return LQ_OK;
}
