/* Deterministic RNG: xoshiro256** (Blackman & Vigna) seeded by splitmix64.
 * A stream is (seed, stream id); see internal.h. */
#include <math.h>

#include "core/internal.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void lq_rng_init(lq_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t m = stream;
    uint64_t x = seed ^ splitmix64(&m) ^ 0x6C71756E74ull; /* "lqunt" */
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0) r->s[0] = 1;
}

uint64_t lq_rng_next(lq_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double lq_rng_uniform(lq_rng *r) { return (double)(lq_rng_next(r) >> 11) * 0x1.0p-53; }

double lq_rng_gaussian(lq_rng *r)
{
    /* Box-Muller, one output per call (the second is discarded so that the
     * stream position does not depend on call history). */
    double u1 = 1.0 - lq_rng_uniform(r); /* (0, 1] */
    double u2 = lq_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

uint64_t lq_rng_below(lq_rng *r, uint64_t n)
{
    if (n <= 1) return 0;
    /* Rejection on the top of the range: unbiased. */
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do v = lq_rng_next(r);
    while (v >= lim);
    return v % n;
}
