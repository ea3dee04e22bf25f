/*
 * The E8 (NestQuant) format's typed view (layout in format_e8.c and
 * docs/formats.md): the one place the parameters and sections of an
 * LQ_FORMAT_E8 tensor are read (lq_e8_layout_of) and written
 * (lq_e8_layout_write). The format's reference code, the kernels
 * (src/products/kern_e8.c), the method driver, the fuzzer and `lq inspect`
 * go through it. Internal.
 */
#ifndef LQ_QTENSOR_FORMAT_E8_H
#define LQ_QTENSOR_FORMAT_E8_H

#include "lattice/lattice_internal.h"
#include "qtensor/qtensor_internal.h"

/* Where the parameters sit in the tensor's ip[] (the reader and the writer
 * use these; corruption tests name them too). ip[LQ_E8_NIP..] are zero. */
enum lq_e8_ip {
    LQ_E8_IP_Q,
    LQ_E8_IP_K,
    LQ_E8_IP_GROUP,
    LQ_E8_IP_HADAMARD,
    LQ_E8_IP_N8,
    LQ_E8_IP_SEED_LO,
    LQ_E8_IP_SEED_HI,
    LQ_E8_IP_CBITS,
    LQ_E8_IP_IBITS,
    LQ_E8_NIP
};

typedef struct lq_e8_layout {
    size_t rows, cols;
    unsigned q;        /* Voronoi modulus, 2..LQ_VORONOI_Q_MAX */
    unsigned K;        /* betas, 1..LQ_NQ_MAX_BETAS */
    size_t group;      /* columns of W' per scale, multiple of 8, <= n8 */
    unsigned hadamard; /* 1: W' = [W 0] R^T with the randomized Hadamard R */
    size_t n8;         /* roundup(cols, 8) */
    uint64_t seed;     /* Hadamard seed */
    unsigned cbits;    /* bits per code vector, lq_voronoi_bits(q) */
    unsigned ibits;    /* bits per beta index, lq_nq_index_bits(K) */
    size_t nblk;       /* 8-vectors per row, n8 / 8 */
    size_t ngroups;    /* scales per row, ceil(n8 / group) */
    float betas[LQ_NQ_MAX_BETAS];
    const uint8_t *codes; /* bit stream: vector v = r * nblk + j at bit v * cbits */
    const uint8_t *bidx;  /* bit stream of ibits-bit indices, NULL when K = 1 */
    const float *scales;  /* rows x ngroups */
} lq_e8_layout;

/* The validated view of t (parameters, coder, section sizes; the scales'
 * finiteness is the format's validate). Errors: INVALID_ARG (NULL, not
 * E8), CORRUPT. */
lq_status lq_e8_layout_of(const lq_qtensor *t, lq_e8_layout *v);

/* Parameters of the layout to be written (the derived fields follow). */
typedef struct lq_e8_params {
    unsigned q, K;
    size_t group;
    unsigned hadamard;
    uint64_t seed;
    const float *betas; /* K entries */
} lq_e8_params;

/* A new E8 tensor rows x cols with the parameters of p and zeroed sections
 * of the right sizes; *v (may be NULL) gets the view, with `codes`, `bidx`
 * and `scales` pointing at writable memory (cast away const to fill them).
 * Errors: INVALID_ARG (bad parameters), NO_MEMORY. */
lq_status lq_e8_layout_write(lq_ctx *ctx, size_t rows, size_t cols, const lq_e8_params *p,
                             lq_qtensor **out, lq_e8_layout *v);

/* The stored code index of row r, vector j. */
static inline uint64_t lq_e8_layout_code(const lq_e8_layout *v, size_t r, size_t j)
{
    return lq_bits_get(v->codes, (r * v->nblk + j) * v->cbits, v->cbits);
}

/* The stored beta index of row r, vector j (0 when K = 1; may be >= K in a
 * corrupt tensor: callers check). */
static inline unsigned lq_e8_layout_beta(const lq_e8_layout *v, size_t r, size_t j)
{
    return v->ibits ? (unsigned)lq_bits_get(v->bidx, (r * v->nblk + j) * v->ibits, v->ibits) : 0;
}

static inline float lq_e8_layout_scale(const lq_e8_layout *v, size_t r, size_t g)
{
    return v->scales[r * v->ngroups + g];
}

#endif
