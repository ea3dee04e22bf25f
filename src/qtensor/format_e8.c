/*
 * LQ_FORMAT_E8: NestQuant / E8 Voronoi codes (docs/formats: see
 * docs/algorithms.md "NestQuant" for the math).
 *
 * The stored matrix is W' = [W 0] R^T (rows x n8, n8 = roundup(cols, 8)):
 * each row zero-padded to n8 and, when ip[3] = 1, rotated by the randomized
 * Hadamard transform R of length n8 (seed in ip[5..6]). Dequantization
 * undoes R and drops the padding; the product rotates x instead:
 * W x = W' (R [x; 0]), so callers always pass the original x.
 *
 * Parameters: ip[0] q, ip[1] K (betas), ip[2] group (columns of W' per
 * scale, multiple of 8), ip[3] hadamard, ip[4] n8, ip[5] seed low 32 bits,
 * ip[6] seed high 32 bits, ip[7] bits per code vector (ceil(8 log2 q)),
 * ip[8] bits per beta index (ceil(log2 K)); fp[0..K-1] the betas.
 * Sections: CODES (bit stream, vector v = r * nblk + j at bit v * ip[7],
 * value sum_i c_i q^i), BETAS (bit stream of ip[8]-bit indices, same order;
 * empty when K = 1), SCALES (float32, rows x ceil(n8 / group), row-major).
 * Entry (r, 8j + i) of W' = scale[r][8j / group] * (beta[k] * y_i) with y =
 * decode(c) (float operations in that order).
 */
#include <math.h>
#include <string.h>

#include "lattice/lattice_internal.h"
#include "qtensor/qtensor_internal.h"

typedef struct e8_view {
    unsigned q, K, hadamard, cbits, ibits;
    size_t group, n8, nblk, ngroups;
    uint64_t seed;
    lq_nq_coder coder;
    const uint8_t *codes, *bidx;
    const float *scales;
} e8_view;

static lq_status view_of(const lq_qtensor *t, e8_view *v)
{
    memset(v, 0, sizeof *v);
    v->q = t->ip[0];
    v->K = t->ip[1];
    v->group = t->ip[2];
    v->hadamard = t->ip[3];
    v->n8 = t->ip[4];
    v->seed = (uint64_t)t->ip[5] | ((uint64_t)t->ip[6] << 32);
    v->cbits = t->ip[7];
    v->ibits = t->ip[8];
    if (v->q < 2 || v->q > LQ_VORONOI_Q_MAX || v->K < 1 || v->K > LQ_NQ_MAX_BETAS ||
        v->hadamard > 1 || v->cbits != lq_voronoi_bits(v->q) ||
        v->ibits != lq_nq_index_bits(v->K))
        return LQ_ERR_CORRUPT;
    if (t->cols > SIZE_MAX - 7 || v->n8 != (t->cols + 7) / 8 * 8) return LQ_ERR_CORRUPT;
    if (v->group == 0 || v->group % 8 != 0 || v->group > v->n8) return LQ_ERR_CORRUPT;
    for (unsigned k = 9; k < LQ_QT_NPARAMS; k++)
        if (t->ip[k]) return LQ_ERR_CORRUPT;
    v->coder.q = v->q;
    v->coder.n_betas = v->K;
    for (unsigned k = 0; k < v->K; k++) v->coder.betas[k] = t->fp[k];
    if (lq_nq_coder_check(&v->coder) != LQ_OK) return LQ_ERR_CORRUPT;
    v->nblk = v->n8 / 8;
    v->ngroups = (v->n8 + v->group - 1) / v->group;
    size_t nvec, cbytes, ibits_tot, nsc;
    if (!lq_mul_ok(t->rows, v->nblk, &nvec) || !lq_mul_ok(nvec, v->cbits, &cbytes) ||
        !lq_mul_ok(nvec, v->ibits, &ibits_tot) || !lq_mul_ok(t->rows, v->ngroups, &nsc) ||
        !lq_mul_ok(nsc, 4, &nsc))
        return LQ_ERR_CORRUPT;
    cbytes = cbytes / 8 + (cbytes % 8 != 0);
    size_t ibytes = ibits_tot / 8 + (ibits_tot % 8 != 0);
    const lq_qsection *sc = lq_qtensor_section(t, LQ_SEC_CODES);
    const lq_qsection *sb = lq_qtensor_section(t, LQ_SEC_BETAS);
    const lq_qsection *ss = lq_qtensor_section(t, LQ_SEC_SCALES);
    if (!sc || !ss || sc->nbytes != cbytes || sc->elem_size != 1 || ss->nbytes != nsc ||
        ss->elem_size != 4 || (ibytes && (!sb || sb->nbytes != ibytes || sb->elem_size != 1)) ||
        (!ibytes && sb && sb->nbytes != 0))
        return LQ_ERR_CORRUPT;
    if (t->nsec != 2u + (sb != NULL)) return LQ_ERR_CORRUPT;
    if ((uintptr_t)ss->data % sizeof(float)) return LQ_ERR_CORRUPT;
    v->codes = sc->data;
    v->bidx = sb ? sb->data : NULL;
    v->scales = ss->data;
    return LQ_OK;
}

static lq_status e8_validate(const lq_qtensor *t)
{
    e8_view v;
    lq_status st = view_of(t, &v);
    if (st != LQ_OK) return st;
    size_t nsc = t->rows * v.ngroups;
    for (size_t i = 0; i < nsc; i++)
        if (!isfinite(v.scales[i])) return LQ_ERR_CORRUPT;
    return LQ_OK;
}

static double e8_bits(const lq_qtensor *t)
{
    double b = 0;
    for (size_t i = 0; i < t->nsec; i++) b += 8.0 * (double)t->sec[i].nbytes;
    b += 32.0 * t->ip[1];            /* the beta table */
    if (t->ip[3]) b += 64.0;         /* Hadamard seed */
    return b;
}

/* Decode row r of W' (n8 floats) into out. Returns false on corrupt codes. */
static bool decode_row(const e8_view *v, const lq_lattice_kernels *k, size_t r, float *out)
{
    uint8_t c[8 * LQ_VORONOI_CHUNK];
    uint8_t bi[LQ_VORONOI_CHUNK];
    for (size_t j0 = 0; j0 < v->nblk; j0 += LQ_VORONOI_CHUNK) {
        size_t m = v->nblk - j0 < LQ_VORONOI_CHUNK ? v->nblk - j0 : LQ_VORONOI_CHUNK;
        for (size_t j = 0; j < m; j++) {
            size_t vec = r * v->nblk + j0 + j;
            if (!lq_voronoi_from_index(v->q, lq_bits_get(v->codes, vec * v->cbits, v->cbits),
                                       c + 8 * j))
                return false;
            bi[j] = v->ibits ? (uint8_t)lq_bits_get(v->bidx, vec * v->ibits, v->ibits) : 0;
            if (bi[j] >= v->K) return false;
        }
        lq_voronoi_decode_batch(k, v->q, c, m, out + 8 * j0);
        for (size_t j = 0; j < m; j++) {
            size_t col = 8 * (j0 + j);
            float s = v->scales[r * v->ngroups + col / v->group];
            float beta = v->coder.betas[bi[j]];
            for (int i = 0; i < 8; i++) out[col + i] = s * (beta * out[col + i]);
        }
    }
    return true;
}

static lq_status e8_dequant_rows(const lq_qtensor *t, size_t r0, size_t r1, float *W,
                               lq_simd_level level)
{
    e8_view v;
    lq_status st = view_of(t, &v);
    if (st != LQ_OK) return st;
    const lq_lattice_kernels *k = lq_lattice_kernels_at(level);
    float *buf = lq_alloc_with(&t->alloc, v.n8 * sizeof(float));
    if (!buf) return LQ_ERR_NO_MEMORY;
    for (size_t r = r0; r < r1 && st == LQ_OK; r++) {
        if (!decode_row(&v, k, r, buf)) {
            st = LQ_ERR_CORRUPT;
            break;
        }
        if (v.hadamard) lq_rht_apply(k, buf, v.n8, v.seed, 1);
        memcpy(W + (r - r0) * t->cols, buf, t->cols * sizeof(float));
    }
    lq_free_with(&t->alloc, buf);
    return st;
}

/* Y[b, r] = sum over blocks of scale * beta / 2 * sum_i u_i x'_i, with u = 2y
 * the integer coordinates of the decoded lattice point and x' = R [x; 0],
 * accumulated in double. */
static lq_status e8_matmul_rows(const lq_qtensor *t, const float *X, size_t batch, float *Y,
                                size_t r0, size_t r1, lq_simd_level level)
{
    e8_view v;
    lq_status st = view_of(t, &v);
    if (st != LQ_OK) return st;
    const lq_lattice_kernels *k = lq_lattice_kernels_at(level);
    size_t nx;
    if (!lq_mul_ok(batch, v.n8, &nx)) return LQ_ERR_INVALID_ARG;
    float *xr = lq_alloc_with(&t->alloc, nx * sizeof(float));
    float *row = lq_alloc_with(&t->alloc, v.n8 * sizeof(float));
    if (!xr || !row) {
        lq_free_with(&t->alloc, xr);
        lq_free_with(&t->alloc, row);
        return LQ_ERR_NO_MEMORY;
    }
    for (size_t b = 0; b < batch; b++) {
        float *xb = xr + b * v.n8;
        memcpy(xb, X + b * t->cols, t->cols * sizeof(float));
        memset(xb + t->cols, 0, (v.n8 - t->cols) * sizeof(float));
        if (v.hadamard) lq_rht_apply(k, xb, v.n8, v.seed, 0);
    }
    uint8_t c[8 * LQ_VORONOI_CHUNK];
    for (size_t r = r0; r < r1 && st == LQ_OK; r++) {
        /* integer coordinates 2y of the row's lattice points, as floats */
        for (size_t j0 = 0; j0 < v.nblk && st == LQ_OK; j0 += LQ_VORONOI_CHUNK) {
            size_t m = v.nblk - j0 < LQ_VORONOI_CHUNK ? v.nblk - j0 : LQ_VORONOI_CHUNK;
            for (size_t j = 0; j < m; j++) {
                size_t vec = r * v.nblk + j0 + j;
                if (!lq_voronoi_from_index(v.q, lq_bits_get(v.codes, vec * v.cbits, v.cbits),
                                           c + 8 * j))
                    st = LQ_ERR_CORRUPT;
            }
            if (st == LQ_OK) lq_voronoi_decode_batch(k, v.q, c, m, row + 8 * j0);
        }
        if (st != LQ_OK) break;
        for (size_t b = 0; b < batch; b++) {
            const float *xb = xr + b * v.n8;
            double acc = 0;
            for (size_t j = 0; j < v.nblk; j++) {
                size_t vec = r * v.nblk + j;
                unsigned kk = v.ibits ? (unsigned)lq_bits_get(v.bidx, vec * v.ibits, v.ibits) : 0;
                if (kk >= v.K) {
                    st = LQ_ERR_CORRUPT;
                    break;
                }
                double d = 0;
                for (int i = 0; i < 8; i++)
                    d += (double)(2.0f * row[8 * j + i]) * (double)xb[8 * j + i];
                double f = (double)v.scales[r * v.ngroups + 8 * j / v.group] *
                           (double)v.coder.betas[kk] * 0.5;
                acc += f * d;
            }
            Y[b * t->rows + r] = (float)acc;
        }
    }
    lq_free_with(&t->alloc, xr);
    lq_free_with(&t->alloc, row);
    return st;
}

const lq_format_traits lq_format_e8_traits = {
    LQ_FORMAT_E8, "e8", e8_validate, e8_bits, e8_dequant_rows, e8_matmul_rows,
};
