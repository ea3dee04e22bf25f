/*
 * Jacobi methods for small dense problems (codebooks, n up to a few
 * hundred): the cyclic two-sided Jacobi eigensolver for symmetric matrices
 * and the one-sided (Hestenes) Jacobi SVD. Both are in double, allocate
 * nothing and run on one thread (their cost is O(n^3) per sweep with a few
 * sweeps; callers use them on small matrices).
 *
 * Rotation (Golub & Van Loan, "Matrix Computations", sym.schur2): for the
 * 2x2 symmetric [app apq; apq aqq], tau = (aqq - app) / (2 apq),
 * t = sign(tau) / (|tau| + sqrt(1 + tau^2)), c = 1/sqrt(1 + t^2), s = t c
 * makes J^T A J diagonal with J = [c s; -s c] in rows/cols (p, q).
 */
#include <float.h>
#include <math.h>

#include "core/linalg.h"

#define JACOBI_MAX_SWEEPS 80

static void jacobi_rotation(double app, double apq, double aqq, double *c, double *s, double *t)
{
    double tau = (aqq - app) / (2.0 * apq);
    double tt;
    if (fabs(tau) > 1e150)
        tt = 0.5 / tau; /* tau^2 would overflow */
    else
        tt = (tau >= 0.0 ? 1.0 : -1.0) / (fabs(tau) + sqrt(1.0 + tau * tau));
    *c = 1.0 / sqrt(1.0 + tt * tt);
    *s = tt * *c;
    *t = tt;
}

static int all_finite_d(const double *A, size_t m, size_t n, size_t lda)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++)
            if (!isfinite(A[i * lda + j])) return 0;
    return 1;
}

lq_status lq_dsyev_jacobi(lq_ctx *ctx, double *A, size_t n, size_t lda, double *w, double *V,
                          size_t ldv)
{
    (void)ctx;
    if (n == 0) return LQ_OK;
    if (!all_finite_d(A, n, n, lda)) return LQ_ERR_NOT_FINITE;
    double fro = 0.0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            fro += A[i * lda + j] * A[i * lda + j];
            V[i * ldv + j] = i == j ? 1.0 : 0.0;
        }
    }
    double abs_tol = sqrt(fro) * 1e-300 + DBL_MIN;
    for (int sweep = 0; sweep < JACOBI_MAX_SWEEPS; sweep++) {
        int rotated = 0;
        for (size_t p = 0; p + 1 < n; p++) {
            for (size_t q = p + 1; q < n; q++) {
                double apq = A[p * lda + q];
                double app = A[p * lda + p], aqq = A[q * lda + q];
                if (fabs(apq) <= DBL_EPSILON * sqrt(fabs(app * aqq)) || fabs(apq) <= abs_tol) {
                    A[p * lda + q] = A[q * lda + p] = 0.0;
                    continue;
                }
                rotated = 1;
                double c, s, t;
                jacobi_rotation(app, apq, aqq, &c, &s, &t);
                for (size_t r = 0; r < n; r++) {
                    if (r == p || r == q) continue;
                    double arp = A[r * lda + p], arq = A[r * lda + q];
                    double np = c * arp - s * arq, nq = s * arp + c * arq;
                    A[r * lda + p] = A[p * lda + r] = np;
                    A[r * lda + q] = A[q * lda + r] = nq;
                }
                A[p * lda + p] = app - t * apq;
                A[q * lda + q] = aqq + t * apq;
                A[p * lda + q] = A[q * lda + p] = 0.0;
                for (size_t r = 0; r < n; r++) {
                    double vp = V[r * ldv + p], vq = V[r * ldv + q];
                    V[r * ldv + p] = c * vp - s * vq;
                    V[r * ldv + q] = s * vp + c * vq;
                }
            }
        }
        if (!rotated) break;
    }
    for (size_t i = 0; i < n; i++) w[i] = A[i * lda + i];
    /* descending order; selection sort keeps it allocation-free */
    for (size_t i = 0; i + 1 < n; i++) {
        size_t best = i;
        for (size_t j = i + 1; j < n; j++)
            if (w[j] > w[best]) best = j;
        if (best == i) continue;
        double tw = w[i];
        w[i] = w[best];
        w[best] = tw;
        for (size_t r = 0; r < n; r++) {
            double tv = V[r * ldv + i];
            V[r * ldv + i] = V[r * ldv + best];
            V[r * ldv + best] = tv;
        }
    }
    return LQ_OK;
}

/* A set of `count` vectors of length `len`: element e of vector v is at
 * base[v * vs + e * es]. */
typedef struct vecset {
    double *base;
    size_t len, count, es, vs;
} vecset;

static inline double *vs_at(const vecset *v, size_t j, size_t e)
{
    return v->base + j * v->vs + e * v->es;
}

static double vs_dot(const vecset *v, size_t a, size_t b)
{
    double s = 0.0;
    for (size_t e = 0; e < v->len; e++) s += *vs_at(v, a, e) * *vs_at(v, b, e);
    return s;
}

static void vs_rotate(const vecset *v, size_t p, size_t q, double c, double s)
{
    for (size_t e = 0; e < v->len; e++) {
        double *xp = vs_at(v, p, e), *xq = vs_at(v, q, e);
        double a = *xp, b = *xq;
        *xp = c * a - s * b;
        *xq = s * a + c * b;
    }
}

static void vs_swap(const vecset *v, size_t a, size_t b)
{
    for (size_t e = 0; e < v->len; e++) {
        double *xa = vs_at(v, a, e), *xb = vs_at(v, b, e);
        double t = *xa;
        *xa = *xb;
        *xb = t;
    }
}

/* Replace vector j (zero) by a unit vector orthogonal to vectors [0, j):
 * Gram-Schmidt (twice) of the first standard basis vector that survives. */
static void vs_complete(const vecset *v, size_t j)
{
    for (size_t t = 0; t < v->len; t++) {
        for (size_t e = 0; e < v->len; e++) *vs_at(v, j, e) = e == t ? 1.0 : 0.0;
        for (int pass = 0; pass < 2; pass++) {
            for (size_t i = 0; i < j; i++) {
                double d = vs_dot(v, i, j);
                for (size_t e = 0; e < v->len; e++) *vs_at(v, j, e) -= d * *vs_at(v, i, e);
            }
        }
        double nrm = sqrt(vs_dot(v, j, j));
        if (nrm > 0.5) {
            for (size_t e = 0; e < v->len; e++) *vs_at(v, j, e) /= nrm;
            return;
        }
    }
}

lq_status lq_dsvd_jacobi(lq_ctx *ctx, const double *A, size_t m, size_t n, size_t lda, double *U,
                         size_t ldu, double *s, double *Vt, size_t ldvt)
{
    (void)ctx;
    if (m == 0 || n == 0) return LQ_OK;
    if (!all_finite_d(A, m, n, lda)) return LQ_ERR_NOT_FINITE;
    size_t r = m < n ? m : n;
    /* work: the vectors made mutually orthogonal (columns of A when m >= n,
     * rows otherwise); comp: the accumulated rotation (V or U). */
    vecset work, comp;
    double *wbase = m >= n ? U : Vt;
    size_t ldw = m >= n ? ldu : ldvt;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) wbase[i * ldw + j] = A[i * lda + j];
    if (m >= n) {
        work = (vecset){U, m, n, ldu, 1};
        comp = (vecset){Vt, n, n, 1, ldvt};
    } else {
        work = (vecset){Vt, n, m, 1, ldvt};
        comp = (vecset){U, m, m, ldu, 1};
    }
    for (size_t i = 0; i < r; i++)
        for (size_t e = 0; e < r; e++) *vs_at(&comp, i, e) = i == e ? 1.0 : 0.0;

    for (int sweep = 0; sweep < JACOBI_MAX_SWEEPS; sweep++) {
        int rotated = 0;
        for (size_t p = 0; p + 1 < r; p++) {
            for (size_t q = p + 1; q < r; q++) {
                double alpha = vs_dot(&work, p, p), beta = vs_dot(&work, q, q);
                double gamma = vs_dot(&work, p, q);
                if (gamma == 0.0 || fabs(gamma) <= DBL_EPSILON * sqrt(alpha * beta)) continue;
                rotated = 1;
                double c, sn, t;
                jacobi_rotation(alpha, gamma, beta, &c, &sn, &t);
                vs_rotate(&work, p, q, c, sn);
                vs_rotate(&comp, p, q, c, sn);
            }
        }
        if (!rotated) break;
    }
    for (size_t j = 0; j < r; j++) s[j] = sqrt(vs_dot(&work, j, j));
    for (size_t i = 0; i + 1 < r; i++) {
        size_t best = i;
        for (size_t j = i + 1; j < r; j++)
            if (s[j] > s[best]) best = j;
        if (best == i) continue;
        double ts = s[i];
        s[i] = s[best];
        s[best] = ts;
        vs_swap(&work, i, best);
        vs_swap(&comp, i, best);
    }
    for (size_t j = 0; j < r; j++) {
        if (s[j] > 0.0) {
            double inv = 1.0 / s[j];
            for (size_t e = 0; e < work.len; e++) *vs_at(&work, j, e) *= inv;
        } else {
            s[j] = 0.0;
            vs_complete(&work, j);
        }
    }
    return LQ_OK;
}
