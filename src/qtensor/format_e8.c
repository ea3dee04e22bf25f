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
 * Parameters (read and written only through qtensor/format_e8.h, the
 * names below are its fields): ip[0] q, ip[1] K (betas), ip[2] group
 * (columns of W' per scale, multiple of 8), ip[3] hadamard, ip[4] n8,
 * ip[5] seed low 32 bits, ip[6] seed high 32 bits, ip[7] bits per code vector (ceil(8 log2 q)),
 * ip[8] bits per beta index (ceil(log2 K)); fp[0..K-1] the betas.
 * Sections: CODES (bit stream, vector v = r * nblk + j at bit v * ip[7],
 * value sum_i c_i q^i), BETAS (bit stream of ip[8]-bit indices, same order;
 * empty when K = 1), SCALES (float32, rows x ceil(n8 / group), row-major).
 * Entry (r, 8j + i) of W' = scale[r][8j / group] * (beta[k] * y_i) with y =
 * decode(c) (float operations in that order).
 */
#include <math.h>
#include <string.h>

#include "qtensor/format_e8.h"

static bool sizes_of(lq_e8_layout *v, size_t *cbytes, size_t *ibytes, size_t *sbytes)
{
    size_t nvec, cb, ib, nsc;
    if (!lq_mul_ok(v->rows, v->nblk, &nvec) || !lq_mul_ok(nvec, v->cbits, &cb) ||
        !lq_mul_ok(nvec, v->ibits, &ib) || !lq_mul_ok(v->rows, v->ngroups, &nsc) ||
        !lq_mul_ok(nsc, 4, &nsc))
        return false;
    *cbytes = cb / 8 + (cb % 8 != 0);
    *ibytes = ib / 8 + (ib % 8 != 0);
    *sbytes = nsc;
    return true;
}

/* Parameter checks shared by the reader and the writer. */
static bool params_ok(const lq_e8_layout *v)
{
    if (v->q < 2 || v->q > LQ_VORONOI_Q_MAX || v->K < 1 || v->K > LQ_NQ_MAX_BETAS ||
        v->hadamard > 1 || v->cbits != lq_voronoi_bits(v->q) || v->ibits != lq_nq_index_bits(v->K))
        return false;
    if (v->cols > SIZE_MAX - 7 || v->n8 != (v->cols + 7) / 8 * 8) return false;
    if (v->group == 0 || v->group % 8 != 0 || v->group > v->n8) return false;
    lq_nq_coder coder;
    memset(&coder, 0, sizeof coder);
    coder.q = v->q;
    coder.n_betas = v->K;
    for (unsigned k = 0; k < v->K; k++) coder.betas[k] = v->betas[k];
    return lq_nq_coder_check(&coder) == LQ_OK;
}

lq_status lq_e8_layout_of(const lq_qtensor *t, lq_e8_layout *v)
{
    if (!t || !v || t->format != LQ_FORMAT_E8) return LQ_ERR_INVALID_ARG;
    lq_e8_layout L;
    memset(&L, 0, sizeof L);
    L.rows = t->rows;
    L.cols = t->cols;
    L.q = t->ip[LQ_E8_IP_Q];
    L.K = t->ip[LQ_E8_IP_K];
    L.group = t->ip[LQ_E8_IP_GROUP];
    L.hadamard = t->ip[LQ_E8_IP_HADAMARD];
    L.n8 = t->ip[LQ_E8_IP_N8];
    L.seed = (uint64_t)t->ip[LQ_E8_IP_SEED_LO] | ((uint64_t)t->ip[LQ_E8_IP_SEED_HI] << 32);
    L.cbits = t->ip[LQ_E8_IP_CBITS];
    L.ibits = t->ip[LQ_E8_IP_IBITS];
    for (unsigned k = LQ_E8_NIP; k < LQ_QT_NPARAMS; k++)
        if (t->ip[k]) return LQ_ERR_CORRUPT;
    if (L.K < 1 || L.K > LQ_NQ_MAX_BETAS) return LQ_ERR_CORRUPT;
    for (unsigned k = 0; k < L.K; k++) L.betas[k] = t->fp[k];
    for (unsigned k = L.K; k < LQ_QT_NPARAMS; k++) /* floats past the betas */
        if (t->fp[k] != 0.0f) return LQ_ERR_CORRUPT;
    if (!params_ok(&L)) return LQ_ERR_CORRUPT;
    L.nblk = L.n8 / 8;
    L.ngroups = (L.n8 + L.group - 1) / L.group;
    size_t cbytes, ibytes, sbytes;
    if (!sizes_of(&L, &cbytes, &ibytes, &sbytes)) return LQ_ERR_CORRUPT;
    const lq_qsection *sc = lq_qtensor_section(t, LQ_SEC_CODES);
    const lq_qsection *sb = lq_qtensor_section(t, LQ_SEC_BETAS);
    const lq_qsection *ss = lq_qtensor_section(t, LQ_SEC_SCALES);
    if (!sc || !ss || sc->nbytes != cbytes || sc->elem_size != 1 || ss->nbytes != sbytes ||
        ss->elem_size != 4 || (ibytes && (!sb || sb->nbytes != ibytes || sb->elem_size != 1)) ||
        (!ibytes && sb && sb->nbytes != 0))
        return LQ_ERR_CORRUPT;
    if (t->nsec != 2u + (sb != NULL)) return LQ_ERR_CORRUPT;
    if ((uintptr_t)ss->data % sizeof(float)) return LQ_ERR_CORRUPT;
    L.codes = sc->data;
    L.bidx = ibytes ? sb->data : NULL;
    L.scales = ss->data;
    *v = L;
    return LQ_OK;
}

lq_status lq_e8_layout_write(lq_ctx *ctx, size_t rows, size_t cols, const lq_e8_params *p,
                             lq_qtensor **out, lq_e8_layout *v)
{
    if (!p || !out || (p->K && !p->betas)) return LQ_ERR_INVALID_ARG;
    lq_e8_layout L;
    memset(&L, 0, sizeof L);
    L.rows = rows;
    L.cols = cols;
    L.q = p->q;
    L.K = p->K;
    L.group = p->group;
    L.hadamard = p->hadamard;
    L.seed = p->seed;
    L.cbits = lq_voronoi_bits(p->q);
    if (p->K < 1 || p->K > LQ_NQ_MAX_BETAS || cols > SIZE_MAX - 7 || p->group > UINT32_MAX)
        return LQ_ERR_INVALID_ARG;
    L.ibits = lq_nq_index_bits(p->K);
    L.n8 = (cols + 7) / 8 * 8;
    for (unsigned k = 0; k < p->K; k++) L.betas[k] = p->betas[k];
    if (!params_ok(&L) || L.n8 > UINT32_MAX) return LQ_ERR_INVALID_ARG;
    L.nblk = L.n8 / 8;
    L.ngroups = (L.n8 + L.group - 1) / L.group;
    size_t cbytes, ibytes, sbytes;
    if (!sizes_of(&L, &cbytes, &ibytes, &sbytes)) return LQ_ERR_INVALID_ARG;
    lq_qtensor *t;
    lq_status st = lq_qtensor_new(ctx, LQ_FORMAT_E8, rows, cols, &t);
    if (st != LQ_OK) return st;
    t->ip[LQ_E8_IP_Q] = L.q;
    t->ip[LQ_E8_IP_K] = L.K;
    t->ip[LQ_E8_IP_GROUP] = (uint32_t)L.group;
    t->ip[LQ_E8_IP_HADAMARD] = L.hadamard;
    t->ip[LQ_E8_IP_N8] = (uint32_t)L.n8;
    t->ip[LQ_E8_IP_SEED_LO] = (uint32_t)(L.seed & 0xffffffffu);
    t->ip[LQ_E8_IP_SEED_HI] = (uint32_t)(L.seed >> 32);
    t->ip[LQ_E8_IP_CBITS] = L.cbits;
    t->ip[LQ_E8_IP_IBITS] = L.ibits;
    for (unsigned k = 0; k < L.K; k++) t->fp[k] = L.betas[k];
    uint8_t *codes = lq_qtensor_add_section(t, LQ_SEC_CODES, 1, cbytes);
    uint8_t *bid = ibytes ? lq_qtensor_add_section(t, LQ_SEC_BETAS, 1, ibytes) : NULL;
    float *sc = lq_qtensor_add_section(t, LQ_SEC_SCALES, 4, sbytes);
    if (!codes || (ibytes && !bid) || !sc) {
        lq_qtensor_free(t);
        return LQ_ERR_NO_MEMORY;
    }
    memset(codes, 0, cbytes);
    if (bid) memset(bid, 0, ibytes);
    memset(sc, 0, sbytes);
    L.codes = codes;
    L.bidx = bid;
    L.scales = sc;
    if (v) *v = L;
    *out = t;
    return LQ_OK;
}

static lq_status e8_validate(const lq_qtensor *t)
{
    lq_e8_layout v;
    lq_status st = lq_e8_layout_of(t, &v);
    if (st != LQ_OK) return st;
    size_t nsc = t->rows * v.ngroups;
    for (size_t i = 0; i < nsc; i++)
        if (!isfinite(v.scales[i])) return LQ_ERR_CORRUPT;
    /* every code in range: a Voronoi index < q^8 (cbits bits can hold more
     * unless q is a power of two) and a beta index < K (likewise unless K
     * is); one linear pass, so a loaded tensor that validates decodes */
    int check_codes = (v.q & (v.q - 1)) != 0; /* q = 2^m: q^8 = 2^cbits, every index valid */
    uint64_t q8 = 1;
    if (check_codes)
        for (int i = 0; i < 8; i++) q8 *= v.q; /* q <= 255 here: q^8 < 2^64 */
    int check_betas = v.ibits && v.K < (1u << v.ibits);
    if (check_codes || check_betas)
        for (size_t r = 0; r < t->rows; r++)
            for (size_t j = 0; j < v.nblk; j++) {
                if (check_codes && lq_e8_layout_code(&v, r, j) >= q8) return LQ_ERR_CORRUPT;
                if (check_betas && lq_e8_layout_beta(&v, r, j) >= v.K) return LQ_ERR_CORRUPT;
            }
    return LQ_OK;
}

static double e8_bits(const lq_qtensor *t)
{
    double b = 0;
    for (size_t i = 0; i < t->nsec; i++) b += 8.0 * (double)t->sec[i].nbytes;
    lq_e8_layout v;
    if (lq_e8_layout_of(t, &v) != LQ_OK) return b;
    b += 32.0 * v.K;           /* the beta table */
    if (v.hadamard) b += 64.0; /* Hadamard seed */
    return b;
}

/* Decode row r of W' (n8 floats) into out. Returns false on corrupt codes. */
static bool decode_row(const lq_e8_layout *v, const lq_lattice_kernels *k, size_t r, float *out)
{
    uint8_t c[8 * LQ_VORONOI_CHUNK];
    uint8_t bi[LQ_VORONOI_CHUNK];
    for (size_t j0 = 0; j0 < v->nblk; j0 += LQ_VORONOI_CHUNK) {
        size_t m = v->nblk - j0 < LQ_VORONOI_CHUNK ? v->nblk - j0 : LQ_VORONOI_CHUNK;
        for (size_t j = 0; j < m; j++) {
            if (!lq_voronoi_from_index(v->q, lq_e8_layout_code(v, r, j0 + j), c + 8 * j))
                return false;
            unsigned b = lq_e8_layout_beta(v, r, j0 + j);
            if (b >= v->K) return false;
            bi[j] = (uint8_t)b;
        }
        lq_voronoi_decode_batch(k, v->q, c, m, out + 8 * j0);
        for (size_t j = 0; j < m; j++) {
            size_t col = 8 * (j0 + j);
            float s = lq_e8_layout_scale(v, r, col / v->group);
            float beta = v->betas[bi[j]];
            for (int i = 0; i < 8; i++) out[col + i] = s * (beta * out[col + i]);
        }
    }
    return true;
}

static lq_status e8_dequant_rows(const lq_qtensor *t, size_t r0, size_t r1, float *W,
                                 lq_simd_level level)
{
    lq_e8_layout v;
    lq_status st = lq_e8_layout_of(t, &v);
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
    lq_e8_layout v;
    lq_status st = lq_e8_layout_of(t, &v);
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
        lq_rht_pad_forward(k, X + b * t->cols, t->cols, v.n8, (int)v.hadamard, v.seed, xb);
    }
    uint8_t c[8 * LQ_VORONOI_CHUNK];
    for (size_t r = r0; r < r1 && st == LQ_OK; r++) {
        /* integer coordinates 2y of the row's lattice points, as floats */
        for (size_t j0 = 0; j0 < v.nblk && st == LQ_OK; j0 += LQ_VORONOI_CHUNK) {
            size_t m = v.nblk - j0 < LQ_VORONOI_CHUNK ? v.nblk - j0 : LQ_VORONOI_CHUNK;
            for (size_t j = 0; j < m; j++) {
                if (!lq_voronoi_from_index(v.q, lq_e8_layout_code(&v, r, j0 + j), c + 8 * j))
                    st = LQ_ERR_CORRUPT;
            }
            if (st == LQ_OK) lq_voronoi_decode_batch(k, v.q, c, m, row + 8 * j0);
        }
        if (st != LQ_OK) break;
        for (size_t b = 0; b < batch; b++) {
            const float *xb = xr + b * v.n8;
            double acc = 0;
            for (size_t j = 0; j < v.nblk; j++) {
                unsigned kk = lq_e8_layout_beta(&v, r, j);
                if (kk >= v.K) {
                    st = LQ_ERR_CORRUPT;
                    break;
                }
                double d = 0;
                for (int i = 0; i < 8; i++)
                    d += (double)(2.0f * row[8 * j + i]) * (double)xb[8 * j + i];
                double f =
                    (double)lq_e8_layout_scale(&v, r, 8 * j / v.group) * (double)v.betas[kk] * 0.5;
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
