/* The AQ decode kernel on 256-bit registers (kern_dec.h), included by the
 * AVX2 and AVX-512 files with AQ_NB (activation vectors sharing one decode)
 * and AQ_FN (the function's name) defined: one row at a time, the four
 * partial sums P_0..P_3 of each vector in registers, each 8-column chunk
 * decoded with one 256-bit load per codebook (floats converted at prepare
 * time, or vcvtph2ps on the stored halves for large codebooks). Not a
 * public header: no include guard on purpose. */
#define AQ_AHEAD 16
#define AQ_BUF_COLS 16384 /* a decoded row on the stack (64 KiB) */
static inline __attribute__((always_inline)) size_t aq_code(const lq_aqd_pack *p, const uint8_t *c,
                                                            size_t i, unsigned codeb)
{
    size_t v = codeb == 1 ? c[i] : (size_t)c[2 * i] | ((size_t)c[2 * i + 1] << 8);
    return v & (p->K - 1);
}

static inline __attribute__((always_inline)) __m256
aq_chunk(const lq_aqd_pack *p, const uint8_t *rc, size_t u, size_t cpg, size_t M, unsigned codeb)
{
    size_t j = u / cpg, o = (u % cpg) * 8;
    __m256 w = _mm256_setzero_ps();
    for (size_t m = 0; m < M; m++) {
        size_t a = (m * p->K + aq_code(p, rc, j * M + m, codeb)) * p->g + o;
        __m256 c = p->cbf    ? _mm256_loadu_ps(p->cbf + a)
                   : p->half ? _mm256_cvtph_ps(_mm_loadu_si128(
                                   (const __m128i *)(const void *)((const uint8_t *)p->cb + 2 * a)))
                             : _mm256_loadu_ps((const float *)p->cb + a);
        w = m ? _mm256_add_ps(w, c) : c;
    }
    return w;
}

static inline __attribute__((always_inline)) void aq_row(const lq_aqd_pack *p, const float *X,
                                                         size_t nb, float *Y, size_t ldy, size_t r,
                                                         size_t cpg, size_t M, unsigned codeb)
{
    size_t nchunk = p->cols / 8;
    const uint8_t *rc = p->codes + r * p->ng * M * codeb;
    __m256 P[AQ_NB][4];
    for (size_t b = 0; b < nb; b++) P[b][0] = P[b][1] = P[b][2] = P[b][3] = _mm256_setzero_ps();
    for (size_t u = 0; u < nchunk; u++) {
        if (!p->cbf && u + AQ_AHEAD < nchunk) {
            /* large codebooks live in L2/L3: fetch the entries of a chunk
             * AQ_AHEAD ahead (the codes are known) */
            size_t ju = (u + AQ_AHEAD) / cpg, ou = ((u + AQ_AHEAD) % cpg) * 8;
            for (size_t m = 0; m < M; m++)
                _mm_prefetch((const char *)p->cb +
                                 ((m * p->K + aq_code(p, rc, ju * M + m, codeb)) * p->g + ou) *
                                     (p->half ? 2 : 4),
                             _MM_HINT_T0);
        }
        __m256 w = aq_chunk(p, rc, u, cpg, M, codeb);
        for (size_t b = 0; b < nb; b++)
            P[b][u & 3] = _mm256_add_ps(P[b][u & 3],
                                        _mm256_mul_ps(w, _mm256_loadu_ps(X + b * p->cols + 8 * u)));
    }
    for (size_t b = 0; b < nb; b++) {
        float z[8];
        _mm256_storeu_ps(
            z, _mm256_add_ps(_mm256_add_ps(P[b][0], P[b][1]), _mm256_add_ps(P[b][2], P[b][3])));
        float y = ((z[0] + z[1]) + (z[2] + z[3])) + ((z[4] + z[5]) + (z[6] + z[7]));
        Y[b * ldy + r] = p->scales[r] * y;
    }
}

/* Batches above AQ_NB: row r decoded once into buf (cols floats), then
 * every vector of the batch reads it (the same operations per vector as
 * aq_row). */
static inline __attribute__((always_inline)) void
aq_row_buffered(const lq_aqd_pack *p, const float *X, size_t batch, float *Y, size_t ldy, size_t r,
                size_t cpg, size_t M, unsigned codeb, float *buf)
{
    size_t nchunk = p->cols / 8;
    const uint8_t *rc = p->codes + r * p->ng * M * codeb;
    for (size_t u = 0; u < nchunk; u++) {
        if (!p->cbf && u + AQ_AHEAD < nchunk) {
            size_t ju = (u + AQ_AHEAD) / cpg, ou = ((u + AQ_AHEAD) % cpg) * 8;
            for (size_t m = 0; m < M; m++)
                _mm_prefetch((const char *)p->cb +
                                 ((m * p->K + aq_code(p, rc, ju * M + m, codeb)) * p->g + ou) *
                                     (p->half ? 2 : 4),
                             _MM_HINT_T0);
        }
        _mm256_storeu_ps(buf + 8 * u, aq_chunk(p, rc, u, cpg, M, codeb));
    }
    for (size_t b0 = 0; b0 < batch; b0 += 2) {
        size_t nb = batch - b0 < 2 ? 1 : 2;
        const float *x0 = X + b0 * p->cols, *x1 = X + (b0 + nb - 1) * p->cols;
        __m256 P0[4], P1[4];
        for (size_t k = 0; k < 4; k++) P0[k] = P1[k] = _mm256_setzero_ps();
        for (size_t u = 0; u < nchunk; u++) {
            __m256 w = _mm256_loadu_ps(buf + 8 * u);
            P0[u & 3] = _mm256_add_ps(P0[u & 3], _mm256_mul_ps(w, _mm256_loadu_ps(x0 + 8 * u)));
            P1[u & 3] = _mm256_add_ps(P1[u & 3], _mm256_mul_ps(w, _mm256_loadu_ps(x1 + 8 * u)));
        }
        for (size_t i = 0; i < nb; i++) {
            const __m256 *P = i ? P1 : P0;
            float z[8];
            _mm256_storeu_ps(z,
                             _mm256_add_ps(_mm256_add_ps(P[0], P[1]), _mm256_add_ps(P[2], P[3])));
            float y = ((z[0] + z[1]) + (z[2] + z[3])) + ((z[4] + z[5]) + (z[6] + z[7]));
            Y[(b0 + i) * ldy + r] = p->scales[r] * y;
        }
    }
}

/* Constants for the common shapes: 8-column groups, M = 1 (16-bit codes)
 * or 2 (8-bit codes). */
static inline __attribute__((always_inline)) void aq_rows_shape(const lq_aqd_pack *p,
                                                                const float *x, size_t nb, float *y,
                                                                size_t ldy, size_t r, size_t cpg)
{
    if (cpg == 1 && p->M == 1 && p->codeb == 2)
        aq_row(p, x, nb, y, ldy, r, 1, 1, 2);
    else if (cpg == 1 && p->M == 2 && p->codeb == 1)
        aq_row(p, x, nb, y, ldy, r, 1, 2, 1);
    else
        aq_row(p, x, nb, y, ldy, r, cpg, p->M, p->codeb);
}

void AQ_FN(const void *pack, const void *act, size_t batch, float *Y, size_t ldy, size_t r0,
           size_t r1)
{
    const lq_aqd_pack *p = pack;
    const float *X = act;
    size_t cpg = p->g / 8;
    if (batch > AQ_NB && p->cols <= AQ_BUF_COLS) {
        float buf[AQ_BUF_COLS];
        for (size_t r = r0; r < r1; r++) {
            if (cpg == 1 && p->M == 1 && p->codeb == 2)
                aq_row_buffered(p, X, batch, Y, ldy, r, 1, 1, 2, buf);
            else if (cpg == 1 && p->M == 2 && p->codeb == 1)
                aq_row_buffered(p, X, batch, Y, ldy, r, 1, 2, 1, buf);
            else
                aq_row_buffered(p, X, batch, Y, ldy, r, cpg, p->M, p->codeb, buf);
        }
        return;
    }
    for (size_t r = r0; r < r1; r++)
        for (size_t b0 = 0; b0 < batch; b0 += AQ_NB) {
            size_t nb = batch - b0 >= AQ_NB ? AQ_NB : batch - b0;
            const float *x = X + b0 * p->cols;
            float *y = Y + b0 * ldy;
            if (nb == AQ_NB)
                aq_rows_shape(p, x, AQ_NB, y, ldy, r, cpg);
            else if (nb == 1)
                aq_rows_shape(p, x, 1, y, ldy, r, cpg);
            else
                aq_rows_shape(p, x, nb, y, ldy, r, cpg);
        }
}
