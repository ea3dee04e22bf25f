/*
 * libquant tensors as ggml tensor types (gguf.h): the exactness check and
 * the repack of INT tensors into ggml's legacy 32-weight blocks, and float
 * rows as F32/F16.
 *
 * Block layouts (little-endian; QK = 32 weights, element j of the block):
 *   Q4_0 (18 bytes): d f16, qs[16]: qs[j] = q[j] | q[j + 16] << 4;
 *                    x = (q - 8) d
 *   Q4_1 (20 bytes): d f16, m f16, qs[16] as Q4_0; x = q d + m
 *   Q5_0 (22 bytes): d f16, qh u32, qs[16]: low nibbles as Q4_0, bit 4 of
 *                    q[j] is bit j of qh (j < 32); x = (q - 16) d
 *   Q5_1 (24 bytes): d f16, m f16, qh u32, qs[16]; x = q d + m
 *   Q8_0 (34 bytes): d f16, qs[32] int8; x = qs d
 */
#include <math.h>
#include <stdio.h>

#include "io/gguf.h"
#include "io/io_internal.h"
#include "qtensor/format_int.h"

#define QK 32

static const struct {
    lq_ggml_type type;
    const char *name;
    size_t elems, bytes;
} g_types[] = {
    {LQ_GGML_F32, "f32", 1, 4},     {LQ_GGML_F16, "f16", 1, 2},     {LQ_GGML_Q4_0, "q4_0", QK, 18},
    {LQ_GGML_Q4_1, "q4_1", QK, 20}, {LQ_GGML_Q5_0, "q5_0", QK, 22}, {LQ_GGML_Q5_1, "q5_1", QK, 24},
    {LQ_GGML_Q8_0, "q8_0", QK, 34},
};
#define NTYPES (sizeof g_types / sizeof g_types[0])

static int type_index(lq_ggml_type t)
{
    for (size_t i = 0; i < NTYPES; i++)
        if (g_types[i].type == t) return (int)i;
    return -1;
}

const char *lq_ggml_type_name(lq_ggml_type t)
{
    int i = type_index(t);
    return i < 0 ? NULL : g_types[i].name;
}

int lq_ggml_type_parse(const char *name, lq_ggml_type *t)
{
    if (!name || !t) return -1;
    for (size_t i = 0; i < NTYPES; i++) {
        const char *a = g_types[i].name, *b = name;
        while (*a && (*b == *a || (*b >= 'A' && *b <= 'Z' && *b - 'A' + 'a' == *a))) a++, b++;
        if (!*a && !*b) {
            *t = g_types[i].type;
            return 0;
        }
    }
    return -1;
}

size_t lq_ggml_block_elems(lq_ggml_type t)
{
    int i = type_index(t);
    return i < 0 ? 0 : g_types[i].elems;
}

size_t lq_ggml_block_bytes(lq_ggml_type t)
{
    int i = type_index(t);
    return i < 0 ? 0 : g_types[i].bytes;
}

size_t lq_ggml_row_bytes(lq_ggml_type t, size_t n)
{
    int i = type_index(t);
    if (i < 0 || n % g_types[i].elems != 0) return 0;
    size_t b;
    return lq_mul_ok(n / g_types[i].elems, g_types[i].bytes, &b) ? b : 0;
}

/* The half bits of a float that is exactly a half (sign, zero and
 * subnormals included): 0, or -1 when it is not one. */
static int exact_half(float x, uint16_t *h)
{
    if (!isfinite(x)) return -1;
    uint16_t b = lq_f32_to_f16(x);
    if (lq_f16_to_f32(b) != x) return -1;
    *h = b;
    return 0;
}

static void say(char *why, size_t cap, const char *msg)
{
    if (why && cap) snprintf(why, cap, "%s", msg);
}

/* The offset m = -zero * scale of a _1 block (+0 for zero 0, so that q = 0
 * gives +0 as (0 - 0) * scale does). */
static float offset_of(unsigned zero, float scale) { return zero ? -((float)zero * scale) : 0.0f; }

lq_status lq_ggml_exact_type(const lq_qtensor *t, lq_ggml_type *type, char *why, size_t cap)
{
    if (!t || !type) return LQ_ERR_INVALID_ARG;
    char msg[160];
    lq_int_layout v;
    if (lq_int_layout_of(t, &v) != LQ_OK) {
        snprintf(msg, sizeof msg,
                 "%s format has no GGUF type (only INT tensors map onto ggml blocks)",
                 lq_format_name(t->format));
        say(why, cap, msg);
        return LQ_ERR_UNSUPPORTED;
    }
    if (v.bits != 4 && v.bits != 5 && v.bits != 8) {
        snprintf(msg, sizeof msg,
                 "%u-bit INT has no GGUF type (Q4_0/Q4_1: 4 bits, Q5_0/Q5_1: 5, Q8_0: 8)", v.bits);
        say(why, cap, msg);
        return LQ_ERR_UNSUPPORTED;
    }
    if (v.group != QK || v.cols % QK != 0) {
        snprintf(msg, sizeof msg,
                 "group %zu over %zu columns: GGUF blocks are groups of 32 columns, "
                 "and the columns a multiple of 32",
                 v.group, v.cols);
        say(why, cap, msg);
        return LQ_ERR_UNSUPPORTED;
    }
    if (v.perm) {
        say(why, cap,
            "columns are permuted (act-order without static groups): GGUF blocks are runs of "
            "consecutive columns");
        return LQ_ERR_UNSUPPORTED;
    }
    unsigned mid = 1u << (v.bits - 1);
    int all_mid = 1;
    size_t bad_r = SIZE_MAX, bad_g = 0;
    for (size_t r = 0; r < v.rows; r++)
        for (size_t gi = 0; gi < v.ngroups; gi++) {
            float s = lq_int_layout_scale(&v, r, gi);
            unsigned z = lq_int_layout_zero(&v, r, gi);
            uint16_t h;
            if (exact_half(s, &h) != 0) {
                snprintf(msg, sizeof msg,
                         "scale %.9g (row %zu, group %zu) is not a half: GGUF stores d as fp16",
                         (double)s, r, gi);
                say(why, cap, msg);
                return LQ_ERR_UNSUPPORTED;
            }
            if (z != mid) all_mid = 0;
            if (bad_r == SIZE_MAX && exact_half(offset_of(z, s), &h) != 0) {
                bad_r = r;
                bad_g = gi;
            }
        }
    if (all_mid) {
        *type = v.bits == 4 ? LQ_GGML_Q4_0 : v.bits == 5 ? LQ_GGML_Q5_0 : LQ_GGML_Q8_0;
        return LQ_OK;
    }
    if (v.bits == 8) {
        say(why, cap,
            "8-bit INT with zero points other than 128: Q8_0 is symmetric and Q8_1 has no "
            "dequantization");
        return LQ_ERR_UNSUPPORTED;
    }
    if (bad_r != SIZE_MAX) {
        snprintf(msg, sizeof msg,
                 "the offset -zero * scale of row %zu, group %zu is not a half: Q%u_1 stores m "
                 "as fp16",
                 bad_r, bad_g, v.bits);
        say(why, cap, msg);
        return LQ_ERR_UNSUPPORTED;
    }
    *type = v.bits == 4 ? LQ_GGML_Q4_1 : LQ_GGML_Q5_1;
    return LQ_OK;
}

/* One block of 32 codes c (already shifted for the type) with d, m. */
static void put_block(lq_ggml_type type, const unsigned *c, uint16_t d, uint16_t m, uint8_t *b)
{
    lq_wr16(b, d);
    b += 2;
    if (type == LQ_GGML_Q8_0) {
        for (int j = 0; j < QK; j++) b[j] = (uint8_t)(int8_t)((int)c[j] - 128);
        return;
    }
    if (type == LQ_GGML_Q4_1 || type == LQ_GGML_Q5_1) {
        lq_wr16(b, m);
        b += 2;
    }
    if (type == LQ_GGML_Q5_0 || type == LQ_GGML_Q5_1) {
        uint32_t qh = 0;
        for (int j = 0; j < QK; j++) qh |= (uint32_t)((c[j] >> 4) & 1u) << j;
        lq_wr32(b, qh);
        b += 4;
    }
    for (int j = 0; j < QK / 2; j++) b[j] = (uint8_t)((c[j] & 15u) | (c[j + QK / 2] & 15u) << 4);
}

lq_status lq_ggml_from_int(const lq_qtensor *t, lq_ggml_type type, const size_t *row_order,
                           void *out, size_t size)
{
    if (!t || !out) return LQ_ERR_INVALID_ARG;
    lq_ggml_type exact;
    lq_status st = lq_ggml_exact_type(t, &exact, NULL, 0);
    if (st != LQ_OK) return st;
    /* a _0 tensor also fits its _1 type (m = -2^(bits-1) d), which is not
     * offered: only the type lq_ggml_exact_type names */
    if (type != exact) return LQ_ERR_UNSUPPORTED;
    lq_int_layout v;
    lq_int_layout_of(t, &v);
    size_t rb = lq_ggml_row_bytes(type, v.cols), bb = lq_ggml_block_bytes(type), n;
    if (!lq_mul_ok(rb, v.rows, &n) || size != n) return LQ_ERR_INVALID_ARG;
    uint8_t *o = out;
    unsigned c[QK];
    for (size_t i = 0; i < v.rows; i++) {
        size_t r = row_order ? row_order[i] : i;
        if (r >= v.rows) return LQ_ERR_INVALID_ARG;
        for (size_t gi = 0; gi < v.ngroups; gi++) {
            float s = lq_int_layout_scale(&v, r, gi);
            unsigned z = lq_int_layout_zero(&v, r, gi);
            uint16_t d = 0, m = 0;
            exact_half(s, &d);
            exact_half(offset_of(z, s), &m);
            for (size_t j = 0; j < QK; j++) c[j] = lq_int_layout_code(&v, r, gi * QK + j);
            put_block(type, c, d, m, o + i * rb + gi * bb);
        }
    }
    return LQ_OK;
}

lq_status lq_ggml_from_f32(const float *x, size_t rows, size_t cols, lq_ggml_type type,
                           const size_t *row_order, void *out, size_t size)
{
    if (!x || !out || rows == 0 || cols == 0 || (type != LQ_GGML_F32 && type != LQ_GGML_F16))
        return LQ_ERR_INVALID_ARG;
    size_t rb = lq_ggml_row_bytes(type, cols), n;
    if (!lq_mul_ok(rb, rows, &n) || size != n) return LQ_ERR_INVALID_ARG;
    uint8_t *o = out;
    for (size_t i = 0; i < rows; i++) {
        size_t r = row_order ? row_order[i] : i;
        if (r >= rows) return LQ_ERR_INVALID_ARG;
        const float *src = x + r * cols;
        for (size_t k = 0; k < cols; k++) {
            if (type == LQ_GGML_F32) {
                lq_wr32(o + i * rb + 4 * k, lq_f32_bits(src[k]));
            } else {
                if (!(fabsf(src[k]) <= 65504.0f)) return LQ_ERR_OUT_OF_RANGE;
                lq_wr16(o + i * rb + 2 * k, lq_f32_to_f16(src[k]));
            }
        }
    }
    return LQ_OK;
}
