/*
 * Voronoi codes over E8 (Conway and Sloane, "A fast encoding method for
 * lattice codes and quantizers", IEEE Trans. IT 1983), generator and packing
 * as documented in quant/lattice.h.
 */
#include <math.h>
#include <string.h>

#include "lattice/lattice_internal.h"

void lq_e8_generator(float G[64])
{
    memset(G, 0, 64 * sizeof(float));
    G[0] = 2.0f;
    for (int i = 1; i <= 6; i++) {
        G[8 * i + i - 1] = -1.0f;
        G[8 * i + i] = 1.0f;
    }
    for (int k = 0; k < 8; k++) G[56 + k] = 0.5f;
}

unsigned lq_voronoi_bits(unsigned q)
{
    if (q < 2 || q > LQ_VORONOI_Q_MAX) return 0;
    if (q == 256) return 64;
    uint64_t p = 1;
    for (int i = 0; i < 8; i++) p *= q;
    return 64u - (unsigned)__builtin_clzll(p - 1); /* p >= 256 */
}

bool lq_voronoi_coords(unsigned q, const float t[8], uint8_t c[8])
{
    const float lim = 4.0f * (float)q + 4.0f;
    int32_t u[8];
    for (int k = 0; k < 8; k++) {
        if (!(fabsf(t[k]) <= lim)) return false;
        u[k] = (int32_t)(2.0f * t[k]); /* exact: t is an integer or half-integer */
    }
    int32_t cc[8];
    cc[7] = u[7];
    cc[6] = (u[6] - u[7]) / 2;
    for (int j = 5; j >= 1; j--) cc[j] = (u[j] - u[7]) / 2 + cc[j + 1];
    cc[0] = ((u[0] - u[7]) / 2 + cc[1]) / 2;
    /* c mod q without a hardware division: |cc| < 64 q here (|u| <= 8q + 8,
     * at most 7 terms), so n = cc + 1024 q is in [0, 2^19) and
     * floor(n / q) = (n * ceil(2^32 / q)) >> 32 exactly (n < 2^32 / q). */
    const uint64_t M = ((uint64_t)1 << 32) / q + 1;
    for (int k = 0; k < 8; k++) {
        uint32_t n = (uint32_t)(cc[k] + 1024 * (int32_t)q);
        uint32_t quo = (uint32_t)(((uint64_t)n * M) >> 32);
        c[k] = (uint8_t)(n - quo * q);
    }
    return true;
}

void lq_voronoi_lift(const uint8_t c[8], float z[8])
{
    const float h = 0.5f * (float)c[7];
    z[0] = 2.0f * (float)c[0] - (float)c[1] + h;
    for (int j = 1; j <= 5; j++) z[j] = (float)c[j] - (float)c[j + 1] + h;
    z[6] = (float)c[6] + h;
    z[7] = h;
}

void lq_voronoi_coords_scalar(unsigned q, const float *t, size_t m, uint8_t *c, uint8_t *far)
{
    for (size_t i = 0; i < m; i++) {
        far[i] = !lq_voronoi_coords(q, t + 8 * i, c + 8 * i);
        if (far[i]) memset(c + 8 * i, 0, 8);
    }
}

void lq_voronoi_lift_scalar(const uint8_t *c, size_t m, float iq, float *z, float *w)
{
    for (size_t i = 0; i < m; i++) {
        lq_voronoi_lift(c + 8 * i, z + 8 * i);
        for (int j = 0; j < 8; j++) w[8 * i + j] = z[8 * i + j] * iq;
    }
}

void lq_voronoi_decode_batch(const lq_lattice_kernels *k, unsigned q, const uint8_t *codes,
                             size_t n, float *y)
{
    float z[8 * LQ_VORONOI_CHUNK], w[8 * LQ_VORONOI_CHUNK];
    const float fq = (float)q, iq = 1.0f / fq;
    for (size_t i0 = 0; i0 < n; i0 += LQ_VORONOI_CHUNK) {
        size_t m = n - i0 < LQ_VORONOI_CHUNK ? n - i0 : LQ_VORONOI_CHUNK;
        k->lift(codes + 8 * i0, m, iq, z, w);
        k->e8(w, m, w);
        for (size_t i = 0; i < 8 * m; i++) y[8 * i0 + i] = z[i] - fq * w[i];
    }
}

static bool codes_ok(unsigned q, const uint8_t *codes, size_t n8)
{
    uint8_t mx = 0;
    for (size_t i = 0; i < n8; i++) mx = codes[i] > mx ? codes[i] : mx;
    return n8 == 0 || (unsigned)mx < q;
}

lq_status lq_voronoi_encode(unsigned q, float beta, const float *x, size_t n, uint8_t *codes,
                            uint8_t *overload, size_t *n_overload)
{
    size_t tot;
    if (q < 2 || q > LQ_VORONOI_Q_MAX || !(beta > 0.0f) || !isfinite(beta) ||
        !lq_mul_ok(n, 8, &tot))
        return LQ_ERR_INVALID_ARG;
    if (n > 0 && (!x || !codes)) return LQ_ERR_INVALID_ARG;
    const lq_lattice_kernels *k = lq_lattice_kernels_at(LQ_SIMD_AUTO);
    if (n > 0 && !k->finite(x, tot)) return LQ_ERR_NOT_FINITE;
    float t[8 * LQ_VORONOI_CHUNK], y[8 * LQ_VORONOI_CHUNK];
    size_t nov = 0;
    for (size_t i0 = 0; i0 < n; i0 += LQ_VORONOI_CHUNK) {
        size_t m = n - i0 < LQ_VORONOI_CHUNK ? n - i0 : LQ_VORONOI_CHUNK;
        const float ib = 1.0f / beta;
        for (size_t i = 0; i < 8 * m; i++) t[i] = x[8 * i0 + i] * ib;
        k->e8(t, m, t);
        uint8_t *c = codes + 8 * i0;
        uint8_t far[LQ_VORONOI_CHUNK];
        k->coords(q, t, m, c, far);
        lq_voronoi_decode_batch(k, q, c, m, y);
        for (size_t i = 0; i < m; i++) {
            int ov = far[i];
            for (int j = 0; j < 8; j++) ov |= y[8 * i + j] != t[8 * i + j];
            if (overload) overload[i0 + i] = (uint8_t)ov;
            nov += (size_t)ov;
        }
    }
    if (n_overload) *n_overload = nov;
    return LQ_OK;
}

lq_status lq_voronoi_decode(unsigned q, float beta, const uint8_t *codes, size_t n, float *y)
{
    size_t tot;
    if (q < 2 || q > LQ_VORONOI_Q_MAX || !(beta > 0.0f) || !isfinite(beta) ||
        !lq_mul_ok(n, 8, &tot))
        return LQ_ERR_INVALID_ARG;
    if (n == 0) return LQ_OK;
    if (!codes || !y) return LQ_ERR_INVALID_ARG;
    if (!codes_ok(q, codes, tot)) return LQ_ERR_CORRUPT;
    lq_voronoi_decode_batch(lq_lattice_kernels_at(LQ_SIMD_AUTO), q, codes, n, y);
    for (size_t i = 0; i < tot; i++) y[i] *= beta;
    return LQ_OK;
}

/* ---- packing -------------------------------------------------------------- */
uint64_t lq_bits_get(const uint8_t *buf, size_t pos, unsigned nbits)
{
    uint64_t v = 0;
    unsigned got = 0;
    while (got < nbits) {
        unsigned off = (unsigned)(pos & 7);
        unsigned take = 8 - off;
        if (take > nbits - got) take = nbits - got;
        uint64_t b = (uint64_t)((buf[pos >> 3] >> off) & ((1u << take) - 1u));
        v |= b << got;
        got += take;
        pos += take;
    }
    return v;
}

void lq_bits_put(uint8_t *buf, size_t pos, unsigned nbits, uint64_t v)
{
    while (nbits) {
        unsigned off = (unsigned)(pos & 7);
        unsigned take = 8 - off;
        if (take > nbits) take = nbits;
        unsigned mask = ((1u << take) - 1u) << off;
        buf[pos >> 3] = (uint8_t)((buf[pos >> 3] & ~mask) | (((unsigned)v << off) & mask));
        v >>= take;
        pos += take;
        nbits -= take;
    }
}

uint64_t lq_voronoi_index(unsigned q, const uint8_t c[8])
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v * q + c[i];
    return v;
}

bool lq_voronoi_from_index(unsigned q, uint64_t v, uint8_t c[8])
{
    for (int i = 0; i < 8; i++) {
        c[i] = (uint8_t)(v % q);
        v /= q;
    }
    return v == 0;
}

lq_status lq_voronoi_packed_size(unsigned q, size_t n, size_t *bytes)
{
    unsigned b = lq_voronoi_bits(q);
    size_t bits;
    if (!b || !bytes || !lq_mul_ok(n, b, &bits)) return LQ_ERR_INVALID_ARG;
    *bytes = bits / 8 + (bits % 8 != 0);
    return LQ_OK;
}

lq_status lq_voronoi_pack(unsigned q, const uint8_t *codes, size_t n, uint8_t *out, size_t out_size)
{
    size_t need;
    lq_status st = lq_voronoi_packed_size(q, n, &need);
    if (st != LQ_OK) return st;
    if (n == 0) return LQ_OK;
    if (!codes || !out || out_size < need) return LQ_ERR_INVALID_ARG;
    if (!codes_ok(q, codes, 8 * n)) return LQ_ERR_CORRUPT;
    unsigned b = lq_voronoi_bits(q);
    memset(out, 0, need);
    for (size_t i = 0; i < n; i++) lq_bits_put(out, i * b, b, lq_voronoi_index(q, codes + 8 * i));
    return LQ_OK;
}

lq_status lq_voronoi_unpack(unsigned q, const uint8_t *in, size_t in_size, size_t n, uint8_t *codes)
{
    size_t need;
    lq_status st = lq_voronoi_packed_size(q, n, &need);
    if (st != LQ_OK) return st;
    if (n == 0) return LQ_OK;
    if (!in || !codes || in_size < need) return LQ_ERR_INVALID_ARG;
    unsigned b = lq_voronoi_bits(q);
    uint8_t c[8];
    for (size_t i = 0; i < n; i++) /* validate first: codes untouched on error */
        if (!lq_voronoi_from_index(q, lq_bits_get(in, i * b, b), c)) return LQ_ERR_CORRUPT;
    for (size_t i = 0; i < n; i++)
        lq_voronoi_from_index(q, lq_bits_get(in, i * b, b), codes + 8 * i);
    return LQ_OK;
}
