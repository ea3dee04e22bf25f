/*
 * IEEE binary16 ("half") and bfloat16 conversions, portable (no F16C), and
 * the float <-> bits casts they are made of. One implementation for the
 * whole library: INT scales, BCQ side values, VQ and AQ codebooks and the
 * F16/BF16 inputs of the file readers all convert through these.
 */
#ifndef LQ_CORE_HALF_H
#define LQ_CORE_HALF_H

#include <stdint.h>
#include <string.h>

static inline float lq_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint32_t lq_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Exact (every half is a float); subnormals, infinities and NaN payloads
 * are kept. */
float lq_f16_to_f32(uint16_t h);
/* Round to nearest even; overflow gives +-Inf, values below half the
 * smallest subnormal give +-0; a NaN stays a quiet NaN with the top bits of
 * its payload. */
uint16_t lq_f32_to_f16(float f);
float lq_bf16_to_f32(uint16_t h); /* exact */
uint16_t lq_f32_to_bf16(float f); /* round to nearest even; NaN stays NaN */

#endif
