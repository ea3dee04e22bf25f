/* E8 row kernels for AVX2 on the packed layout (kern_e8.h): a tile is two
 * halves of 8 row lanes (bytes 0..31 of the lo plane are rows 0..7). The
 * nibbles split into byte vectors of f_0..3 and f_4..7 (bits 4 and 5 added
 * from the hi and hi2 planes by byte compares); vpmaddubsw cannot saturate
 * (4 products of at most 63 * 127 = 32004 per 16-bit sum). FAST: same
 * operations in the same order as the scalar reference, the block decoded
 * once per 4 vectors. EXACT: the weights w_i = round(hb u_i) of a chunk of
 * blocks (u_i = 2q - s - 2 f_i in signed bytes) decoded once into an L1
 * buffer and applied to every vector, the reference's order. */
#include <immintrin.h>
#include <string.h>

#include "simd/kern_e8.h"

#define NB_MAX 4

/* Software prefetch distance in bytes of the block stream. */
#define PF_DIST 2048

typedef struct half_regs {
    __m256i fa, fb, meta, s; /* s: all ones where the coset bit is set */
} half_regs;

/* Add `bit` to byte k of fa (fb) of row lane r where bit k (k + 4) of byte
 * r of the plane pl (8 rows) is set. */
static inline __attribute__((always_inline)) void add_plane(const uint8_t *pl, char bit,
                                                            __m256i *fa, __m256i *fb)
{
    const __m256i rep = _mm256_set_epi8(7, 7, 7, 7, 6, 6, 6, 6, 5, 5, 5, 5, 4, 4, 4, 4, 3, 3, 3, 3,
                                        2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    __m256i hv = _mm256_broadcastsi128_si256(_mm_loadl_epi64((const __m128i *)(const void *)pl));
    /* dword d of 128-bit lane l <- byte 4l + d (row 4l + d of the half) */
    __m256i bb = _mm256_shuffle_epi8(hv, rep);
    const __m256i pa = _mm256_set1_epi32(0x08040201), pb = _mm256_set1_epi32((int)0x80402010u);
    const __m256i sv = _mm256_set1_epi8(bit);
    __m256i ta = _mm256_cmpeq_epi8(_mm256_and_si256(bb, pa), pa);
    __m256i tb = _mm256_cmpeq_epi8(_mm256_and_si256(bb, pb), pb);
    *fa = _mm256_add_epi8(*fa, _mm256_and_si256(ta, sv));
    *fb = _mm256_add_epi8(*fb, _mm256_and_si256(tb, sv));
}

static inline __attribute__((always_inline)) half_regs load_half(const lq_e8_pack *p,
                                                                 const uint8_t *blk, int h)
{
    const __m256i m4 = _mm256_set1_epi8(15);
    half_regs b;
    __m256i L = _mm256_loadu_si256((const __m256i *)(const void *)(blk + 32 * h));
    b.fa = _mm256_and_si256(L, m4);
    b.fb = _mm256_and_si256(_mm256_srli_epi16(L, 4), m4);
    if (p->hi) add_plane(blk + 64 + 8 * h, 16, &b.fa, &b.fb);
    if (p->hi2) add_plane(blk + 80 + 8 * h, 32, &b.fa, &b.fb);
    __m256i mv =
        _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(blk + p->block - 8)));
    b.meta = _mm256_and_si256(_mm256_srli_epi32(mv, 4 * h), _mm256_set1_epi32(15));
    const __m256i one = _mm256_set1_epi32(1);
    b.s = _mm256_cmpeq_epi32(_mm256_and_si256(b.meta, one), one);
    return b;
}

static inline __attribute__((always_inline)) void fast_tile(const lq_e8_pack *p, const void *act,
                                                            size_t b0, size_t nb, size_t tile,
                                                            float *Y, size_t ldy, size_t nrows)
{
    lq_e8_act_view a[NB_MAX];
    for (size_t i = 0; i < nb; i++) a[i] = lq_e8_act_get(p, act, LQ_KERNEL_FAST, b0 + i);
    const uint8_t *tb = p->blocks + tile * p->nvec * p->block;
    const float *sc = p->scale + tile * p->ngroups * 16;
    const __m256 hlo = _mm256_loadu_ps(p->hb); /* K <= 8 */
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 y[NB_MAX][2];
    for (size_t i = 0; i < nb; i++) y[i][0] = y[i][1] = _mm256_setzero_ps();
    size_t j = 0;
    for (size_t g = 0; g < p->ngroups; g++) {
        size_t j1 = (g + 1) * p->group / 8;
        if (j1 > p->nvec) j1 = p->nvec;
        __m256 acc[NB_MAX][2];
        for (size_t i = 0; i < nb; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
        for (; j < j1; j++) {
            const uint8_t *blk = tb + j * p->block;
            _mm_prefetch((const char *)(blk + PF_DIST), _MM_HINT_T0);
            for (int h = 0; h < 2; h++) {
                half_regs bk = load_half(p, blk, h);
                __m256 beta = _mm256_permutevar8x32_ps(hlo, _mm256_srli_epi32(bk.meta, 1));
                for (size_t i = 0; i < nb; i++) {
                    int32_t x0, x1;
                    memcpy(&x0, a[i].q + 8 * j, 4);
                    memcpy(&x1, a[i].q + 8 * j + 4, 4);
                    __m256i pr =
                        _mm256_add_epi16(_mm256_maddubs_epi16(bk.fa, _mm256_set1_epi32(x0)),
                                         _mm256_maddubs_epi16(bk.fb, _mm256_set1_epi32(x1)));
                    __m256i fd = _mm256_madd_epi16(pr, ones);
                    __m256i A =
                        _mm256_sub_epi32(_mm256_set1_epi32(a[i].a2q[j]),
                                         _mm256_and_si256(bk.s, _mm256_set1_epi32(a[i].sq[j])));
                    __m256i s = _mm256_sub_epi32(A, _mm256_add_epi32(fd, fd));
                    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(a[i].d[j]));
                    acc[i][h] = _mm256_add_ps(acc[i][h], _mm256_mul_ps(v, beta));
                }
            }
        }
        for (int h = 0; h < 2; h++) {
            __m256 s = _mm256_loadu_ps(sc + g * 16 + 8 * h);
            for (size_t i = 0; i < nb; i++)
                y[i][h] = _mm256_add_ps(y[i][h], _mm256_mul_ps(s, acc[i][h]));
        }
    }
    size_t n = nrows < 16 ? nrows : 16;
    for (size_t i = 0; i < nb; i++) {
        float tmp[16];
        _mm256_storeu_ps(tmp, y[i][0]);
        _mm256_storeu_ps(tmp + 8, y[i][1]);
        memcpy(Y + (b0 + i) * ldy + tile * LQ_KERN_TILE, tmp, n * sizeof(float));
    }
}

#define EXACT_NB 16 /* vectors per pass of the EXACT kernel (sums in L1) */
#define EXACT_J 16  /* blocks per EXACT chunk */

/* Weights w_0..w_7 (8 row lanes of half h) of one block into w[0..7]:
 * w_i = hb * u_i, u_i = (2q - s) - 2 f_i in signed bytes. */
static inline __attribute__((always_inline)) void decode_w(const lq_e8_pack *p, const uint8_t *blk,
                                                           int h, __m256 hlo, __m256 *w)
{
    half_regs bk = load_half(p, blk, h);
    __m256 beta = _mm256_permutevar8x32_ps(hlo, _mm256_srli_epi32(bk.meta, 1));
    const __m256i rep0 = _mm256_set_epi32(0x0c0c0c0c, 0x08080808, 0x04040404, 0, 0x0c0c0c0c,
                                          0x08080808, 0x04040404, 0);
    __m256i sb = _mm256_and_si256(_mm256_shuffle_epi8(bk.meta, rep0), _mm256_set1_epi8(1));
    __m256i cb = _mm256_sub_epi8(_mm256_set1_epi8((char)(2 * p->q)), sb);
    __m256i ua = _mm256_sub_epi8(cb, _mm256_add_epi8(bk.fa, bk.fa));
    __m256i ub = _mm256_sub_epi8(cb, _mm256_add_epi8(bk.fb, bk.fb));
    w[0] =
        _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(ua, 24), 24)), beta);
    w[1] =
        _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(ua, 16), 24)), beta);
    w[2] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(ua, 8), 24)), beta);
    w[3] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srai_epi32(ua, 24)), beta);
    w[4] =
        _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(ub, 24), 24)), beta);
    w[5] =
        _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(ub, 16), 24)), beta);
    w[6] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(ub, 8), 24)), beta);
    w[7] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srai_epi32(ub, 24)), beta);
}

/* nb (1..2) vectors over nj decoded blocks: a[i][m] += w_m x_m, w_{m+4} x_{m+4}. */
static inline __attribute__((always_inline)) void
exact_run(const __m256 *wb, size_t nj, const float *const *x, size_t nb, __m256 (*a)[4])
{
    __m256 r[2][4];
    for (size_t i = 0; i < nb; i++)
        for (int m = 0; m < 4; m++) r[i][m] = a[i][m];
    for (size_t jj = 0; jj < nj; jj++) {
        const __m256 *w = wb + 8 * jj;
        for (int m = 0; m < 4; m++) {
            __m256 w0 = w[m], w1 = w[m + 4];
            for (size_t i = 0; i < nb; i++) {
                r[i][m] = _mm256_fmadd_ps(w0, _mm256_set1_ps(x[i][8 * jj + m]), r[i][m]);
                r[i][m] = _mm256_fmadd_ps(w1, _mm256_set1_ps(x[i][8 * jj + m + 4]), r[i][m]);
            }
        }
    }
    for (size_t i = 0; i < nb; i++)
        for (int m = 0; m < 4; m++) a[i][m] = r[i][m];
}

static void exact_tile(const lq_e8_pack *p, const void *act, size_t b0, size_t nb, size_t tile,
                       float *Y, size_t ldy, size_t nrows)
{
    const uint8_t *tb = p->blocks + tile * p->nvec * p->block;
    const float *sc = p->scale + tile * p->ngroups * 16;
    const __m256 hlo = _mm256_loadu_ps(p->hb); /* K <= 8 */
    __m256 wb[EXACT_J * 8];
    __m256 acc[EXACT_NB][4], y[EXACT_NB];
    const float *xb[EXACT_NB];
    for (size_t i = 0; i < nb; i++) xb[i] = lq_e8_act_get(p, act, LQ_KERNEL_EXACT, b0 + i).x;
    size_t n = nrows < 16 ? nrows : 16;
    for (int h = 0; h < 2; h++) {
        if (n <= 8 * (size_t)h) break;
        for (size_t i = 0; i < nb; i++) y[i] = _mm256_setzero_ps();
        size_t j = 0;
        for (size_t g = 0; g < p->ngroups; g++) {
            size_t j1 = (g + 1) * p->group / 8;
            if (j1 > p->nvec) j1 = p->nvec;
            for (size_t i = 0; i < nb; i++)
                for (int m = 0; m < 4; m++) acc[i][m] = _mm256_setzero_ps();
            for (; j < j1;) {
                size_t nj = j1 - j < EXACT_J ? j1 - j : EXACT_J;
                for (size_t jj = 0; jj < nj; jj++) {
                    if (h == 0) /* the second half reads the tile from L2 */
                        _mm_prefetch((const char *)(tb + (j + jj) * p->block + PF_DIST),
                                     _MM_HINT_T0);
                    decode_w(p, tb + (j + jj) * p->block, h, hlo, wb + 8 * jj);
                }
                for (size_t i = 0; i < nb; i += 2) {
                    const float *x[2];
                    size_t m = nb - i < 2 ? nb - i : 2;
                    for (size_t k = 0; k < m; k++) x[k] = xb[i + k] + 8 * j;
                    if (m == 1)
                        exact_run(wb, nj, x, 1, acc + i);
                    else
                        exact_run(wb, nj, x, 2, acc + i);
                }
                j += nj;
            }
            __m256 s = _mm256_loadu_ps(sc + g * 16 + 8 * h);
            for (size_t i = 0; i < nb; i++) {
                __m256 t = _mm256_add_ps(_mm256_add_ps(acc[i][0], acc[i][1]),
                                         _mm256_add_ps(acc[i][2], acc[i][3]));
                y[i] = _mm256_fmadd_ps(t, s, y[i]);
            }
        }
        size_t m = n - 8 * (size_t)h > 8 ? 8 : n - 8 * (size_t)h;
        for (size_t i = 0; i < nb; i++) {
            float tmp[8];
            _mm256_storeu_ps(tmp, y[i]);
            memcpy(Y + (b0 + i) * ldy + tile * LQ_KERN_TILE + 8 * h, tmp, m * sizeof(float));
        }
    }
}

void lq_kern_e8_exact_avx2(const void *pack, const void *act, size_t batch, float *Y, size_t ldy,
                           size_t r0, size_t r1)
{
    const lq_e8_pack *p = pack;
    for (size_t tile = r0 / LQ_KERN_TILE; tile * LQ_KERN_TILE < r1; tile++)
        for (size_t b0 = 0; b0 < batch; b0 += EXACT_NB) {
            size_t nb = batch - b0 < EXACT_NB ? batch - b0 : EXACT_NB;
            exact_tile(p, act, b0, nb, tile, Y, ldy, r1 - tile * LQ_KERN_TILE);
        }
}

#define ROWS_FN(name, KERN)                                                                        \
    void name(const void *pack, const void *act, size_t batch, float *Y, size_t ldy, size_t r0,    \
              size_t r1)                                                                           \
    {                                                                                              \
        const lq_e8_pack *p = pack;                                                                \
        for (size_t tile = r0 / LQ_KERN_TILE; tile * LQ_KERN_TILE < r1; tile++)                    \
            for (size_t b0 = 0; b0 < batch; b0 += NB_MAX) {                                        \
                size_t nb = batch - b0 < NB_MAX ? batch - b0 : NB_MAX;                             \
                size_t nr = r1 - tile * LQ_KERN_TILE;                                              \
                switch (nb) {                                                                      \
                case 1: KERN(p, act, b0, 1, tile, Y, ldy, nr); break;                              \
                case 2: KERN(p, act, b0, 2, tile, Y, ldy, nr); break;                              \
                case 3: KERN(p, act, b0, 3, tile, Y, ldy, nr); break;                              \
                default: KERN(p, act, b0, 4, tile, Y, ldy, nr); break;                             \
                }                                                                                  \
            }                                                                                      \
    }

ROWS_FN(lq_kern_e8_fast_avx2, fast_tile)
