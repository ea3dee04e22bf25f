/* io: CRC-32C, half conversions, safetensors / .npy readers and writers, the
 * .lqt container (round trip for every available method, corruption,
 * truncation, bit flips, allocation failures). */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/io_internal.h"
#include "qtensor/qtensor_internal.h"
#include "test_common.h"

static char g_dir[64];

static void make_dir(void)
{
    if (g_dir[0]) return;
    strcpy(g_dir, "/tmp/lq_test_io_XXXXXX");
    if (!mkdtemp(g_dir)) abort();
}

static const char *tmp_path(char *buf, size_t n, const char *name)
{
    make_dir();
    snprintf(buf, n, "%s/%s", g_dir, name);
    return buf;
}

static uint8_t *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return b;
}

static void spit(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* ---- CRC-32C -------------------------------------------------------------------- */

START_TEST(crc32c_known_and_twins)
{
    ck_assert_uint_eq(lq_crc32c_scalar(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(lq_crc32c(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(lq_crc32c(0, "", 0), 0);
    uint8_t buf[600];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n + off <= sizeof buf; n += 13) {
            uint32_t s = lq_crc32c_scalar(0, buf + off, n);
#if LQ_ARCH_X86
            if (lq_simd_detected() >= LQ_SIMD_AVX2)
                ck_assert_uint_eq(lq_crc32c_sse42(0, buf + off, n), s);
#endif
            ck_assert_uint_eq(lq_crc32c(0, buf + off, n), s);
            /* streaming: crc(a ++ b) = crc(crc(a), b) */
            size_t h = n / 3;
            ck_assert_uint_eq(lq_crc32c(lq_crc32c(0, buf + off, h), buf + off + h, n - h), s);
        }
    /* every single-bit change changes the CRC */
    uint32_t ref = lq_crc32c(0, buf, 64);
    for (size_t bit = 0; bit < 64 * 8; bit++) {
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        ck_assert_uint_ne(lq_crc32c(0, buf, 64), ref);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
}
END_TEST

/* ---- half conversions ----------------------------------------------------------- */

START_TEST(half_exhaustive)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = lq_f16_to_f32((uint16_t)h);
        if ((h & 0x7C00u) == 0x7C00u && (h & 0x3FFu)) {
            ck_assert(isnan(f));
            ck_assert(lq_f32_to_f16(f) & 0x3FFu); /* still NaN */
            continue;
        }
        ck_assert_uint_eq(lq_f32_to_f16(f), h);
        ck_assert_uint_eq(lq_f32_to_bf16(lq_bf16_to_f32((uint16_t)h)), h);
    }
    /* midpoints round to even, neighbours of midpoints round to nearest */
    for (uint32_t h = 0; h < 0x7BFF; h++) {
        double a = lq_f16_to_f32((uint16_t)h), b = lq_f16_to_f32((uint16_t)(h + 1));
        float mid = (float)((a + b) / 2); /* exact in float */
        ck_assert_uint_eq(lq_f32_to_f16(mid), (h & 1) ? h + 1 : h);
        ck_assert_uint_eq(lq_f32_to_f16(nextafterf(mid, INFINITY)), h + 1);
        ck_assert_uint_eq(lq_f32_to_f16(nextafterf(mid, -INFINITY)), h);
        ck_assert_uint_eq(lq_f32_to_f16(-mid), ((h & 1) ? h + 1 : h) | 0x8000u);
    }
    ck_assert_uint_eq(lq_f32_to_f16(65520.0f), 0x7C00u);
    ck_assert_uint_eq(lq_f32_to_f16(nextafterf(65520.0f, 0)), 0x7BFFu);
    ck_assert_uint_eq(lq_f32_to_f16(1e30f), 0x7C00u);
    ck_assert_uint_eq(lq_f32_to_f16(1e-30f), 0);
    ck_assert_uint_eq(lq_f32_to_bf16(1.0f + 0x1p-8f), 0x3F80u);            /* tie to even */
    ck_assert_uint_eq(lq_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3F81u); /* above tie */
    ck_assert(isnan(lq_bf16_to_f32(lq_f32_to_bf16(NAN))));
}
END_TEST

/* ---- safetensors ---------------------------------------------------------------- */

typedef struct st_fixture {
    float a[5 * 7], b[3 * 4], c[9], s[1];
} st_fixture;

static void fixture_fill(st_fixture *x)
{
    lq_test_fill_gaussian(x->a, 35, 1.0f, 1);
    lq_test_fill_gaussian(x->b, 12, 100.0f, 2);
    lq_test_fill_gaussian(x->c, 9, 1e-3f, 3);
    x->s[0] = 3.25f;
}

static void fixture_desc(const st_fixture *x, lq_tensor_desc d[4])
{
    memset(d, 0, 4 * sizeof *d);
    d[0] = (lq_tensor_desc){"layer.0.weight", LQ_DTYPE_F32, 2, {5, 7}, x->a};
    d[1] = (lq_tensor_desc){"h\"al\\f/\xc3\xa9\n", LQ_DTYPE_F16, 2, {3, 4}, x->b};
    d[2] = (lq_tensor_desc){"bf", LQ_DTYPE_BF16, 1, {9}, x->c};
    d[3] = (lq_tensor_desc){"scalar", LQ_DTYPE_F32, 0, {0}, x->s};
}

static float expect_val(lq_dtype d, float v)
{
    if (d == LQ_DTYPE_F16) return lq_f16_to_f32(lq_f32_to_f16(v));
    if (d == LQ_DTYPE_BF16) return lq_bf16_to_f32(lq_f32_to_bf16(v));
    return v;
}

static void check_fixture(const lq_tfile *f, const st_fixture *x)
{
    lq_tensor_desc d[4];
    fixture_desc(x, d);
    ck_assert_uint_eq(lq_tfile_count(f), 4);
    for (size_t i = 0; i < 4; i++) {
        size_t idx;
        ck_assert_int_eq(lq_tfile_find(f, d[i].name, &idx), LQ_OK);
        ck_assert_uint_eq(idx, i);
        lq_tensor_info info;
        ck_assert_int_eq(lq_tfile_info(f, idx, &info), LQ_OK);
        ck_assert_str_eq(info.name, d[i].name);
        ck_assert_int_eq(info.dtype, d[i].dtype);
        ck_assert_uint_eq(info.ndim, d[i].ndim);
        size_t numel = 1;
        for (size_t k = 0; k < info.ndim; k++) {
            ck_assert_uint_eq(info.shape[k], d[i].shape[k]);
            numel *= d[i].shape[k];
        }
        ck_assert_uint_eq(info.numel, numel);
        float got[64];
        ck_assert_int_eq(lq_tfile_read_f32(f, idx, got, numel + 1), LQ_ERR_INVALID_ARG);
        ck_assert_int_eq(lq_tfile_read_f32(f, idx, got, numel), LQ_OK);
        for (size_t k = 0; k < numel; k++)
            ck_assert_float_eq(got[k], expect_val(d[i].dtype, d[i].data[k]));
    }
    size_t idx;
    ck_assert_int_eq(lq_tfile_find(f, "nope", &idx), LQ_ERR_INVALID_ARG);
}

START_TEST(safetensors_round_trip)
{
    st_fixture x;
    fixture_fill(&x);
    lq_tensor_desc d[4];
    fixture_desc(&x, d);
    char p[128];
    tmp_path(p, sizeof p, "a.safetensors");
    ck_assert_int_eq(lq_safetensors_write(NULL, p, d, 4), LQ_OK);
    lq_tfile *f = NULL;
    ck_assert_int_eq(lq_tfile_open(NULL, p, LQ_TFILE_AUTO, &f), LQ_OK);
    ck_assert_int_eq(lq_tfile_get_kind(f), LQ_TFILE_SAFETENSORS);
    check_fixture(f, &x);
    lq_tfile_close(f);
    /* header length is a multiple of 8 (data aligned) */
    size_t n;
    uint8_t *b = slurp(p, &n);
    ck_assert_uint_eq(lq_rd64(b) % 8, 0);
    ck_assert_int_eq(lq_tfile_open_memory(NULL, b, n, LQ_TFILE_SAFETENSORS, &f), LQ_OK);
    check_fixture(f, &x);
    lq_tfile_close(f);
    /* reading it as .npy fails */
    ck_assert_int_eq(lq_tfile_open_memory(NULL, b, n, LQ_TFILE_NPY, &f), LQ_ERR_CORRUPT);
    free(b);
    /* writer argument checks */
    lq_tensor_desc bad = d[0];
    bad.dtype = LQ_DTYPE_I32;
    ck_assert_int_eq(lq_safetensors_write(NULL, p, &bad, 1), LQ_ERR_INVALID_ARG);
    bad = d[0];
    bad.name = "__metadata__";
    ck_assert_int_eq(lq_safetensors_write(NULL, p, &bad, 1), LQ_ERR_INVALID_ARG);
    bad = d[0];
    bad.name = "\xff";
    ck_assert_int_eq(lq_safetensors_write(NULL, p, &bad, 1), LQ_ERR_INVALID_ARG);
    bad = d[0];
    bad.ndim = 9;
    ck_assert_int_eq(lq_safetensors_write(NULL, p, &bad, 1), LQ_ERR_INVALID_ARG);
    lq_tensor_desc dup[2] = {d[0], d[0]};
    ck_assert_int_eq(lq_safetensors_write(NULL, p, dup, 2), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_safetensors_write(NULL, "/nonexistent/dir/x", d, 1), LQ_ERR_IO);
    ck_assert_int_eq(lq_tfile_open(NULL, "/nonexistent/file", LQ_TFILE_AUTO, &f), LQ_ERR_IO);
    ck_assert_int_eq(lq_tfile_open(NULL, p, (lq_tfile_kind)7, &f), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_tfile_open(NULL, NULL, LQ_TFILE_AUTO, &f), LQ_ERR_INVALID_ARG);
    ck_assert_uint_eq(lq_tfile_count(NULL), 0);
    lq_tfile_close(NULL);
}
END_TEST

/* Build "len8 + header + data" in memory. */
static uint8_t *st_bytes(const char *json, size_t data_len, size_t *n)
{
    size_t h = strlen(json);
    *n = 8 + h + data_len;
    uint8_t *b = calloc(1, *n + 1);
    lq_wr64(b, h);
    memcpy(b + 8, json, h);
    for (size_t i = 0; i < data_len; i++) b[8 + h + i] = (uint8_t)(i * 37);
    return b;
}

static lq_status st_open(const char *json, size_t data_len)
{
    size_t n;
    uint8_t *b = st_bytes(json, data_len, &n);
    lq_tfile *f = NULL;
    lq_status st = lq_tfile_open_memory(NULL, b, n, LQ_TFILE_AUTO, &f);
    if (st == LQ_OK) {
        /* every listed tensor can be queried and, if float, read */
        for (size_t i = 0; i < lq_tfile_count(f); i++) {
            lq_tensor_info info;
            ck_assert_int_eq(lq_tfile_info(f, i, &info), LQ_OK);
            float *v = malloc((info.numel ? info.numel : 1) * sizeof *v);
            lq_status rs = lq_tfile_read_f32(f, i, v, info.numel);
            ck_assert(rs == LQ_OK || rs == LQ_ERR_UNSUPPORTED);
            free(v);
        }
        lq_tfile_close(f);
    } else {
        ck_assert_ptr_null(f);
    }
    free(b);
    return st;
}

#define T8 "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

START_TEST(safetensors_strict_header)
{
    static const struct {
        const char *json;
        size_t data;
        lq_status want;
    } cases[] = {
        {"{}", 0, LQ_OK},
        {"{\"a\":" T8 "}", 8, LQ_OK},
        {"{\"a\" : " T8 " }   ", 8, LQ_OK},
        {" {\"a\":" T8 "}", 8, LQ_ERR_CORRUPT}, /* the spec: the header begins with '{' */
        {"{\"__metadata__\":{\"format\":\"pt\",\"x\":\"\\u00e9\\ud83d\\ude00\"},\"a\":" T8 "}", 8,
         LQ_OK},
        {"{\"a\":{\"shape\":[2],\"data_offsets\":[0,8],\"dtype\":\"F32\"}}", 8, LQ_OK},
        {"{\"a\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, LQ_OK},
        {"{\"a\":{\"dtype\":\"F4_NEW\",\"shape\":[3],\"data_offsets\":[0,2]}}", 8, LQ_OK},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 8, LQ_OK},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[8,8]}}", 8, LQ_OK},
        {"{\"a\":" T8 ",\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[8,12]}}", 12,
         LQ_OK},
        /* malformed */
        {"", 0, LQ_ERR_CORRUPT},
        {"{", 0, LQ_ERR_CORRUPT},
        {"[]", 0, LQ_ERR_CORRUPT},
        {"{}x", 0, LQ_ERR_CORRUPT},
        {"{\"a\":" T8 ",}", 8, LQ_ERR_CORRUPT},
        {"{\"a\":" T8 " \"b\":" T8 "}", 8, LQ_ERR_CORRUPT},
        {"{\"a\":" T8 ",\"a\":" T8 "}", 8, LQ_ERR_CORRUPT},               /* duplicate name */
        {"{\"a\":" T8 ",\"b\":" T8 "}", 8, LQ_ERR_CORRUPT},               /* overlapping */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, LQ_ERR_CORRUPT}, /* missing key */
        {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
         LQ_ERR_CORRUPT},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8,
         LQ_ERR_CORRUPT},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, LQ_ERR_CORRUPT},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 7, LQ_ERR_CORRUPT},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, LQ_ERR_CORRUPT},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, LQ_ERR_CORRUPT},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, LQ_ERR_CORRUPT},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}", 8, LQ_ERR_CORRUPT},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2e0],\"data_offsets\":[0,8]}}", 8, LQ_ERR_CORRUPT},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,],\"data_offsets\":[0,8]}}", 8, LQ_ERR_CORRUPT},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}", 8,
         LQ_ERR_CORRUPT},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
         LQ_ERR_CORRUPT},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8,
         LQ_ERR_UNSUPPORTED},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", 8, LQ_ERR_CORRUPT},
        {"{\"a\":{\"dtype\":F32,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, LQ_ERR_CORRUPT},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, LQ_ERR_CORRUPT},
        {"{\"a\x01\":" T8 "}", 8, LQ_ERR_CORRUPT},        /* control char */
        {"{\"a\\x\":" T8 "}", 8, LQ_ERR_CORRUPT},         /* bad escape */
        {"{\"a\\u00\":" T8 "}", 8, LQ_ERR_CORRUPT},       /* short \u */
        {"{\"a\\u0000\":" T8 "}", 8, LQ_ERR_CORRUPT},     /* NUL in name */
        {"{\"a\\ud800\":" T8 "}", 8, LQ_ERR_CORRUPT},     /* lone high surrogate */
        {"{\"a\\udc00\":" T8 "}", 8, LQ_ERR_CORRUPT},     /* lone low surrogate */
        {"{\"\xc0\xaf\":" T8 "}", 8, LQ_ERR_CORRUPT},     /* overlong UTF-8 */
        {"{\"\xed\xa0\x80\":" T8 "}", 8, LQ_ERR_CORRUPT}, /* UTF-8 surrogate */
        {"{\"\xe2\x82\":" T8 "}", 8, LQ_ERR_CORRUPT},     /* truncated UTF-8 */
        {"{\"a", 0, LQ_ERR_CORRUPT},
        {"{\"__metadata__\":{\"k\":1},\"a\":" T8 "}", 8, LQ_ERR_CORRUPT},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, LQ_ERR_CORRUPT},
        {"{\"__metadata__\":{\"k\":{\"n\":\"v\"}}}", 0, LQ_ERR_CORRUPT},
        {"{\"a\":[]}", 0, LQ_ERR_CORRUPT},
        {"{\"a\":\"x\"}", 0, LQ_ERR_CORRUPT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lq_status st = st_open(cases[i].json, cases[i].data);
        ck_assert_msg(st == cases[i].want, "case %zu (%s): got %s want %s", i, cases[i].json,
                      lq_status_str(st), lq_status_str(cases[i].want));
    }
    /* read of a non-float dtype: UNSUPPORTED */
    size_t n;
    uint8_t *b =
        st_bytes("{\"a\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, &n);
    lq_tfile *f;
    ck_assert_int_eq(lq_tfile_open_memory(NULL, b, n, LQ_TFILE_AUTO, &f), LQ_OK);
    float v[2];
    ck_assert_int_eq(lq_tfile_read_f32(f, 0, v, 2), LQ_ERR_UNSUPPORTED);
    ck_assert_int_eq(lq_tfile_read_f32(f, 1, v, 2), LQ_ERR_INVALID_ARG);
    lq_tfile_close(f);
    /* absurd header lengths */
    lq_wr64(b, (uint64_t)1 << 63);
    ck_assert_int_eq(lq_tfile_open_memory(NULL, b, n, LQ_TFILE_SAFETENSORS, &f), LQ_ERR_CORRUPT);
    lq_wr64(b, n - 7);
    ck_assert_int_eq(lq_tfile_open_memory(NULL, b, n, LQ_TFILE_SAFETENSORS, &f), LQ_ERR_CORRUPT);
    lq_wr64(b, (uint64_t)LQ_SAFETENSORS_MAX_HEADER + 1);
    ck_assert_int_eq(lq_tfile_open_memory(NULL, b, n, LQ_TFILE_SAFETENSORS, &f), LQ_ERR_CORRUPT);
    ck_assert_int_eq(lq_tfile_open_memory(NULL, b, 3, LQ_TFILE_SAFETENSORS, &f), LQ_ERR_CORRUPT);
    ck_assert_int_eq(lq_tfile_open_memory(NULL, NULL, 0, LQ_TFILE_AUTO, &f), LQ_ERR_CORRUPT);
    free(b);
}
END_TEST

/* Every proper prefix fails; every single-bit flip gives OK or an error code
 * (never a crash; ASan checks every read stays inside the buffer). */
static void mutate_tfile(const uint8_t *b, size_t n, lq_tfile_kind kind)
{
    uint8_t *c = malloc(n);
    for (size_t k = 0; k < n; k++) {
        memcpy(c, b, k); /* exact-size copy so ASan sees overreads */
        lq_tfile *f = NULL;
        uint8_t *exact = malloc(k ? k : 1);
        memcpy(exact, b, k);
        lq_status st = lq_tfile_open_memory(NULL, exact, k, kind, &f);
        ck_assert_msg(st != LQ_OK, "prefix of %zu / %zu bytes accepted", k, n);
        free(exact);
    }
    for (size_t bit = 0; bit < n * 8; bit++) {
        memcpy(c, b, n);
        c[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        lq_tfile *f = NULL;
        lq_status st = lq_tfile_open_memory(NULL, c, n, kind, &f);
        if (st != LQ_OK) continue;
        for (size_t i = 0; i < lq_tfile_count(f); i++) {
            lq_tensor_info info;
            ck_assert_int_eq(lq_tfile_info(f, i, &info), LQ_OK);
            float *v = malloc((info.numel ? info.numel : 1) * sizeof *v);
            lq_status rs = lq_tfile_read_f32(f, i, v, info.numel);
            ck_assert(rs == LQ_OK || rs == LQ_ERR_UNSUPPORTED);
            free(v);
        }
        lq_tfile_close(f);
    }
    free(c);
}

START_TEST(safetensors_truncated_and_flipped)
{
    st_fixture x;
    fixture_fill(&x);
    lq_tensor_desc d[4];
    fixture_desc(&x, d);
    char p[128];
    tmp_path(p, sizeof p, "m.safetensors");
    ck_assert_int_eq(lq_safetensors_write(NULL, p, d, 4), LQ_OK);
    size_t n;
    uint8_t *b = slurp(p, &n);
    mutate_tfile(b, n, LQ_TFILE_AUTO);
    free(b);
}
END_TEST

/* ---- .npy -------------------------------------------------------------------------- */

START_TEST(npy_round_trip)
{
    float v[6 * 5];
    lq_test_fill_gaussian(v, 30, 2.0f, 9);
    char p[128];
    tmp_path(p, sizeof p, "a.npy");
    const struct {
        lq_dtype dt;
        size_t ndim, shape[2];
    } cases[] = {{LQ_DTYPE_F32, 2, {6, 5}},
                 {LQ_DTYPE_F16, 2, {5, 6}},
                 {LQ_DTYPE_F32, 1, {30, 0}},
                 {LQ_DTYPE_F16, 0, {0, 0}}};
    for (size_t c = 0; c < 4; c++) {
        lq_tensor_desc d = {
            "ignored", cases[c].dt, cases[c].ndim, {cases[c].shape[0], cases[c].shape[1]}, v};
        ck_assert_int_eq(lq_npy_write(NULL, p, &d), LQ_OK);
        size_t n;
        uint8_t *b = slurp(p, &n);
        ck_assert_uint_eq((10 + lq_rd16(b + 8)) % 64, 0);
        free(b);
        lq_tfile *f;
        ck_assert_int_eq(lq_tfile_open(NULL, p, LQ_TFILE_AUTO, &f), LQ_OK);
        ck_assert_int_eq(lq_tfile_get_kind(f), LQ_TFILE_NPY);
        ck_assert_uint_eq(lq_tfile_count(f), 1);
        lq_tensor_info info;
        ck_assert_int_eq(lq_tfile_info(f, 0, &info), LQ_OK);
        ck_assert_str_eq(info.name, "");
        ck_assert_uint_eq(info.ndim, cases[c].ndim);
        size_t numel = 1;
        for (size_t k = 0; k < info.ndim; k++) {
            ck_assert_uint_eq(info.shape[k], cases[c].shape[k]);
            numel *= cases[c].shape[k];
        }
        ck_assert_uint_eq(info.numel, numel);
        float got[30];
        ck_assert_int_eq(lq_tfile_read_f32(f, 0, got, numel), LQ_OK);
        for (size_t k = 0; k < numel; k++)
            ck_assert_float_eq(got[k], expect_val(cases[c].dt, v[k]));
        lq_tfile_close(f);
    }
    lq_tensor_desc bad = {"x", LQ_DTYPE_BF16, 1, {3}, v};
    ck_assert_int_eq(lq_npy_write(NULL, p, &bad), LQ_ERR_INVALID_ARG);
}
END_TEST

static uint8_t *npy_bytes(int major, const char *dict, size_t data_len, size_t *n)
{
    size_t h = strlen(dict), pre = major == 1 ? 10 : 12;
    *n = pre + h + data_len;
    uint8_t *b = calloc(1, *n + 1);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (uint8_t)major;
    b[7] = 0;
    if (major == 1)
        lq_wr16(b + 8, (uint16_t)h);
    else
        lq_wr32(b + 8, (uint32_t)h);
    memcpy(b + pre, dict, h);
    return b;
}

START_TEST(npy_strict_header)
{
    static const struct {
        int major;
        const char *dict;
        size_t data;
        lq_status want;
    } cases[] = {
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 24, LQ_OK},
        {2, "{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }   \n", 6, LQ_OK},
        {3, "{\"shape\": (2,), \"fortran_order\": False, \"descr\": \"<f4\"}", 8, LQ_OK},
        {1, "{'descr': '<f4', 'fortran_order': True, 'shape': (5,), }", 20, LQ_OK},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 4, LQ_OK},
        {1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", 8, LQ_OK},
        {1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24, LQ_ERR_UNSUPPORTED},
        {1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8, LQ_ERR_UNSUPPORTED},
        {1, "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 16, LQ_ERR_UNSUPPORTED},
        {4, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8, LQ_ERR_UNSUPPORTED},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1,), }", 4,
         LQ_ERR_UNSUPPORTED},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 23, LQ_ERR_CORRUPT},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 25, LQ_ERR_CORRUPT},
        {1, "{'descr': '<f4', 'fortran_order': False}", 4, LQ_ERR_CORRUPT},
        {1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", 4,
         LQ_ERR_CORRUPT},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", 4, LQ_ERR_CORRUPT},
        {1, "{'descr': '<f4', 'fortran_order': Falsey, 'shape': (1,)}", 4, LQ_ERR_CORRUPT},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", 4, LQ_ERR_CORRUPT},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,,)}", 4, LQ_ERR_CORRUPT},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1 2)}", 8, LQ_ERR_CORRUPT},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16)}", 4,
         LQ_ERR_CORRUPT},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,)}", 4,
         LQ_ERR_CORRUPT},
        {1, "{'descr': '<f\\4', 'fortran_order': False, 'shape': (1,)}", 4, LQ_ERR_CORRUPT},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", 4, LQ_ERR_CORRUPT},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", 4, LQ_ERR_CORRUPT},
        {1, "", 4, LQ_ERR_CORRUPT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n;
        uint8_t *b = npy_bytes(cases[i].major, cases[i].dict, cases[i].data, &n);
        lq_tfile *f = NULL;
        lq_status st = lq_tfile_open_memory(NULL, b, n, LQ_TFILE_AUTO, &f);
        ck_assert_msg(st == cases[i].want, "case %zu: got %s want %s", i, lq_status_str(st),
                      lq_status_str(cases[i].want));
        lq_tfile_close(f);
        free(b);
    }
    /* header length beyond the file; bad magic; minor version */
    size_t n;
    uint8_t *b = npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", 4, &n);
    lq_tfile *f;
    ck_assert_int_eq(lq_tfile_open_memory(NULL, b, n, LQ_TFILE_AUTO, &f), LQ_OK);
    lq_tfile_close(f);
    mutate_tfile(b, n, LQ_TFILE_NPY);
    b[7] = 1;
    ck_assert_int_eq(lq_tfile_open_memory(NULL, b, n, LQ_TFILE_NPY, &f), LQ_ERR_CORRUPT);
    b[7] = 0;
    lq_wr16(b + 8, 0xFFFF);
    ck_assert_int_eq(lq_tfile_open_memory(NULL, b, n, LQ_TFILE_NPY, &f), LQ_ERR_CORRUPT);
    b[1] = 'X';
    ck_assert_int_eq(lq_tfile_open_memory(NULL, b, n, LQ_TFILE_AUTO, &f), LQ_ERR_CORRUPT);
    free(b);
}
END_TEST

/* ---- allocation failures in the readers -------------------------------------------- */

typedef struct blob_arg {
    const uint8_t *b;
    size_t n;
} blob_arg;

static lq_status sweep_tfile(lq_ctx *ctx, void *arg)
{
    blob_arg *a = arg;
    lq_tfile *f = NULL;
    lq_status st = lq_tfile_open_memory(ctx, a->b, a->n, LQ_TFILE_AUTO, &f);
    if (st != LQ_OK) {
        ck_assert_ptr_null(f);
        return st;
    }
    lq_tfile_close(f);
    return LQ_OK;
}

static lq_status sweep_tfile_path(lq_ctx *ctx, void *arg)
{
    lq_tfile *f = NULL;
    lq_status st = lq_tfile_open(ctx, arg, LQ_TFILE_AUTO, &f);
    lq_tfile_close(f);
    return st;
}

static lq_status sweep_st_write(lq_ctx *ctx, void *arg)
{
    lq_tensor_desc *d = arg;
    char p[128];
    return lq_safetensors_write(ctx, tmp_path(p, sizeof p, "sweep.safetensors"), d, 4);
}

START_TEST(reader_alloc_sweep)
{
    st_fixture x;
    fixture_fill(&x);
    lq_tensor_desc d[4];
    fixture_desc(&x, d);
    ck_assert_uint_ge(lq_test_alloc_sweep(sweep_st_write, d, 1), 1);
    char p[128];
    tmp_path(p, sizeof p, "sweep.safetensors");
    size_t n;
    uint8_t *b = slurp(p, &n);
    blob_arg a = {b, n};
    ck_assert_uint_ge(lq_test_alloc_sweep(sweep_tfile, &a, 1), 3);
    ck_assert_uint_ge(lq_test_alloc_sweep(sweep_tfile_path, p, 1), 3);
    free(b);
    b = npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", 4, &n);
    a = (blob_arg){b, n};
    ck_assert_uint_ge(lq_test_alloc_sweep(sweep_tfile, &a, 1), 3);
    free(b);
}
END_TEST

/* ---- .lqt ---------------------------------------------------------------------------- */

#define QR 24
#define QC 128

typedef struct layer {
    float W[QR * QC], H[QC * QC], x[QC];
} layer;

static layer *g_layer;

static const layer *get_layer(void)
{
    if (!g_layer) {
        g_layer = malloc(sizeof *g_layer);
        lq_test_correlated_layer(QR, QC, 256, 77, g_layer->W, g_layer->H);
        lq_test_fill_gaussian(g_layer->x, QC, 1.0f, 78);
    }
    return g_layer;
}

static const lq_method_kind k_methods[] = {LQ_METHOD_INT,   LQ_METHOD_NESTQUANT, LQ_METHOD_GPTVQ,
                                           LQ_METHOD_GPTQT, LQ_METHOD_BCQ,       LQ_METHOD_AQLM};
#define NMETHODS (sizeof k_methods / sizeof k_methods[0])

/* Small, fast options for each method. */
static void method_for(lq_method_kind k, lq_method *m)
{
    ck_assert_int_eq(lq_method_init(m, k), LQ_OK);
    switch (k) {
    case LQ_METHOD_INT:
        m->u.int_.bits = 3;
        m->u.int_.group = 32;
        break;
    case LQ_METHOD_GPTVQ:
        m->u.gptvq.group_cols = 64;
        m->u.gptvq.em_iters = 3;
        break;
    case LQ_METHOD_GPTQT:
    case LQ_METHOD_BCQ:
        m->u.bcq.group = 64;
        m->u.bcq.iters = 3;
        break;
    case LQ_METHOD_AQLM:
        m->u.aqlm.code_bits = 4;
        m->u.aqlm.rounds = 1;
        m->u.aqlm.kmeans_iters = 3;
        m->u.aqlm.beam = 2;
        break;
    default: break;
    }
}

/* Quantize the test layer with method k: every method exists, so any
 * error fails the test. */
static lq_qtensor *quantize_with(lq_method_kind k)
{
    const layer *L = get_layer();
    lq_method m;
    method_for(k, &m);
    lq_qtensor *t = NULL;
    lq_status st = lq_quantize(NULL, L->W, QR, QC, L->H, &m, &t, NULL);
    ck_assert_msg(st == LQ_OK, "method %d: %s", (int)k, lq_status_str(st));
    return t;
}

static void assert_same_tensor(const lq_qtensor *a, const lq_qtensor *b)
{
    ck_assert_int_eq(a->format, b->format);
    ck_assert_uint_eq(a->rows, b->rows);
    ck_assert_uint_eq(a->cols, b->cols);
    ck_assert_mem_eq(a->ip, b->ip, sizeof a->ip);
    ck_assert_mem_eq(a->fp, b->fp, sizeof a->fp);
    ck_assert_uint_eq(a->nsec, b->nsec);
    for (size_t i = 0; i < a->nsec; i++) {
        ck_assert_uint_eq(a->sec[i].tag, b->sec[i].tag);
        ck_assert_uint_eq(a->sec[i].elem_size, b->sec[i].elem_size);
        ck_assert_uint_eq(a->sec[i].nbytes, b->sec[i].nbytes);
        if (a->sec[i].nbytes) ck_assert_mem_eq(a->sec[i].data, b->sec[i].data, a->sec[i].nbytes);
    }
    float ya[QR], yb[QR];
    ck_assert_int_eq(lq_matvec(NULL, a, get_layer()->x, ya), LQ_OK);
    ck_assert_int_eq(lq_matvec(NULL, b, get_layer()->x, yb), LQ_OK);
    ck_assert_mem_eq(ya, yb, sizeof ya);
    double ba, bb;
    ck_assert_int_eq(lq_qtensor_bits_per_weight(a, &ba), LQ_OK);
    ck_assert_int_eq(lq_qtensor_bits_per_weight(b, &bb), LQ_OK);
    ck_assert(ba == bb);
}

static size_t g_available;

START_TEST(lqt_round_trip_every_method)
{
    char p[128];
    tmp_path(p, sizeof p, "all.lqt");
    lq_qtensor *t[NMETHODS] = {0};
    lq_lqt_writer *w;
    ck_assert_int_eq(lq_lqt_writer_open(NULL, p, &w), LQ_OK);
    size_t avail = 0;
    for (size_t i = 0; i < NMETHODS; i++) {
        t[i] = quantize_with(k_methods[i]);
        char name[32];
        snprintf(name, sizeof name, "m%zu", i);
        ck_assert_int_eq(lq_lqt_writer_add(w, name, t[i]), LQ_OK);
        ck_assert_int_eq(lq_lqt_writer_add(w, name, t[i]), LQ_ERR_INVALID_ARG); /* duplicate */
        avail++;
    }
    ck_assert_int_eq(lq_lqt_writer_finish(w), LQ_OK);
    g_available = avail;
    ck_assert_msg(access(p, F_OK) == 0, "file not renamed into place");
    for (unsigned mode = 0; mode < 4; mode++) {
        unsigned oflags = (mode & 1) ? LQ_LQT_MMAP : 0, lflags = (mode & 2) ? LQ_LQT_COPY : 0;
        lq_lqt *f;
        ck_assert_int_eq(lq_lqt_open(NULL, p, oflags, &f), LQ_OK);
        ck_assert_uint_eq(lq_lqt_count(f), avail);
        uint32_t ver, al;
        uint64_t fs;
        ck_assert_int_eq(lq_lqt_file_info(f, &ver, &al, &fs), LQ_OK);
        ck_assert_uint_eq(ver, 1); /* quantized tensors only: the writer stamps version 1 */
        ck_assert_uint_eq(al, 64);
        lq_qtensor *back[NMETHODS] = {0};
        for (size_t i = 0; i < NMETHODS; i++) {
            if (!t[i]) continue;
            char name[32];
            snprintf(name, sizeof name, "m%zu", i);
            size_t idx;
            ck_assert_int_eq(lq_lqt_find(f, name, &idx), LQ_OK);
            lq_lqt_info info;
            ck_assert_int_eq(lq_lqt_info_get(f, idx, &info), LQ_OK);
            ck_assert_str_eq(info.name, name);
            ck_assert_uint_eq(info.format, t[i]->format);
            for (size_t s = 0; s < info.nsec; s++) ck_assert_uint_eq(info.sec[s].offset % 64, 0);
            ck_assert_int_eq(lq_lqt_load(NULL, f, idx, lflags, &back[i]), LQ_OK);
            ck_assert_int_eq(back[i]->borrowed, !(mode & 2));
            for (size_t s = 0; s < back[i]->nsec; s++)
                ck_assert_uint_eq((uintptr_t)back[i]->sec[s].data % 64, 0);
        }
        lq_lqt_close(f); /* the tensors outlive the file */
        for (size_t i = 0; i < NMETHODS; i++) {
            if (!t[i]) continue;
            assert_same_tensor(t[i], back[i]);
            lq_qtensor_free(back[i]);
        }
    }
    /* single-tensor helpers */
    if (t[0]) {
        char q[128];
        tmp_path(q, sizeof q, "one.lqt");
        ck_assert_int_eq(lq_qtensor_save(NULL, t[0], NULL, q), LQ_OK);
        lq_qtensor *b = NULL;
        ck_assert_int_eq(lq_qtensor_load(NULL, q, NULL, LQ_LQT_MMAP, &b), LQ_OK);
        assert_same_tensor(t[0], b);
        lq_qtensor_free(b);
        ck_assert_int_eq(lq_qtensor_load(NULL, q, "tensor", 0, &b), LQ_OK);
        lq_qtensor_free(b);
        ck_assert_int_eq(lq_qtensor_load(NULL, q, "other", 0, &b), LQ_ERR_INVALID_ARG);
        if (avail > 1) ck_assert_int_eq(lq_qtensor_load(NULL, p, NULL, 0, &b), LQ_ERR_INVALID_ARG);
        /* writer argument checks */
        ck_assert_int_eq(lq_lqt_writer_open(NULL, "/nonexistent/dir/x.lqt", &w), LQ_ERR_IO);
        ck_assert_int_eq(lq_lqt_writer_open(NULL, q, &w), LQ_OK);
        char *longname = malloc(LQ_LQT_MAX_NAME + 2);
        memset(longname, 'a', LQ_LQT_MAX_NAME + 1);
        longname[LQ_LQT_MAX_NAME + 1] = 0;
        ck_assert_int_eq(lq_lqt_writer_add(w, longname, t[0]), LQ_ERR_INVALID_ARG);
        longname[LQ_LQT_MAX_NAME] = 0;
        ck_assert_int_eq(lq_lqt_writer_add(w, longname, t[0]), LQ_OK);
        free(longname);
        lq_qtensor bad = *t[0];
        bad.rows = 0;
        ck_assert_int_eq(lq_lqt_writer_add(w, "bad", &bad), LQ_ERR_INVALID_ARG);
        bad = *t[0];
        bad.fp[15] = NAN;
        ck_assert_int_eq(lq_lqt_writer_add(w, "bad", &bad), LQ_ERR_INVALID_ARG);
        ck_assert_int_eq(lq_lqt_writer_add(w, NULL, t[0]), LQ_ERR_INVALID_ARG);
        lq_lqt_writer_abort(w);
        ck_assert_int_eq(access(q, F_OK), 0); /* the old file is untouched by the abort */
        char part[160];
        snprintf(part, sizeof part, "%s.part", q);
        ck_assert_int_ne(access(part, F_OK), 0);
    }
    /* an empty container is valid */
    ck_assert_int_eq(lq_lqt_writer_open(NULL, p, &w), LQ_OK);
    ck_assert_int_eq(lq_lqt_writer_finish(w), LQ_OK);
    lq_lqt *f;
    ck_assert_int_eq(lq_lqt_open(NULL, p, 0, &f), LQ_OK);
    ck_assert_uint_eq(lq_lqt_count(f), 0);
    size_t idx;
    ck_assert_int_eq(lq_lqt_find(f, "x", &idx), LQ_ERR_INVALID_ARG);
    lq_qtensor *none;
    ck_assert_int_eq(lq_lqt_load(NULL, f, 0, 0, &none), LQ_ERR_INVALID_ARG);
    lq_lqt_close(f);
    ck_assert_int_eq(lq_lqt_open(NULL, p, 8, &f), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_open(NULL, "/nonexistent", 0, &f), LQ_ERR_IO);
    /* every format this build knows went through the round trip */
    for (int fmt = LQ_FORMAT_INT; fmt <= LQ_FORMAT_AQ; fmt++) {
        int seen = 0;
        for (size_t i = 0; i < NMETHODS; i++) seen |= t[i] && t[i]->format == (lq_format)fmt;
        if (lq_format_lookup((lq_format)fmt))
            ck_assert_msg(seen, "format %s is registered but no method produced it",
                          lq_format_name((lq_format)fmt));
    }
    for (size_t i = 0; i < NMETHODS; i++) lq_qtensor_free(t[i]);
    ck_assert_uint_eq(g_available, NMETHODS);
}
END_TEST

/* A small file with one tensor of the first method. */
static uint8_t *small_lqt(size_t *n, lq_qtensor **tout)
{
    lq_qtensor *t = quantize_with(k_methods[0]);
    char p[128];
    tmp_path(p, sizeof p, "small.lqt");
    ck_assert_int_eq(lq_qtensor_save(NULL, t, "w", p), LQ_OK);
    *tout = t;
    uint8_t *b = slurp(p, n);
    ck_assert_ptr_nonnull(b);
    return b;
}

static lq_status open_load(const uint8_t *b, size_t n, unsigned lflags, lq_qtensor **t)
{
    lq_lqt *f = NULL;
    lq_status st = lq_lqt_open_memory(NULL, b, n, &f);
    if (st != LQ_OK) {
        ck_assert_ptr_null(f);
        return st;
    }
    *t = NULL;
    for (size_t i = 0; i < lq_lqt_count(f) && st == LQ_OK; i++) {
        lq_qtensor *q = NULL;
        st = lq_lqt_load(NULL, f, i, lflags, &q);
        if (st == LQ_OK && !*t)
            *t = q;
        else
            lq_qtensor_free(q);
    }
    lq_lqt_close(f);
    return st;
}

/* Everything a reader can ask of an opened file: every tensor (quantized:
 * loaded, alternately copied; float: read and, with `ref`, compared), every
 * metadata pair (listed and found by key, compared with `ref`). Returns the
 * first error. */
static lq_status read_everything(lq_ctx *ctx, const lq_lqt *f, const lq_lqt *ref)
{
    if (ref) {
        ck_assert_uint_eq(lq_lqt_count(f), lq_lqt_count(ref));
        ck_assert_uint_eq(lq_lqt_meta_count(f), lq_lqt_meta_count(ref));
    }
    for (size_t i = 0; i < lq_lqt_count(f); i++) {
        lq_lqt_info info;
        ck_assert_int_eq(lq_lqt_info_get(f, i, &info), LQ_OK);
        size_t idx;
        ck_assert_int_eq(lq_lqt_find(f, info.name, &idx), LQ_OK);
        ck_assert_uint_eq(idx, i);
        lq_status st;
        if (info.format == LQ_LQT_FORMAT_F32) {
            size_t n = info.rows * info.cols;
            float *v = malloc(n * sizeof *v);
            st = lq_lqt_read_f32(f, i, v, n);
            if (st == LQ_OK && ref) {
                float *w = malloc(n * sizeof *w);
                ck_assert_int_eq(lq_lqt_read_f32(ref, i, w, n), LQ_OK);
                ck_assert_mem_eq(v, w, n * sizeof *v);
                free(w);
            }
            free(v);
        } else {
            lq_qtensor *t = NULL;
            st = lq_lqt_load(ctx, f, i, i % 2 ? LQ_LQT_COPY : 0, &t);
            if (st != LQ_OK) ck_assert_ptr_null(t);
            lq_qtensor_free(t);
        }
        if (st != LQ_OK) return st;
    }
    for (size_t i = 0; i < lq_lqt_meta_count(f); i++) {
        const char *k = NULL, *v = NULL, *found = NULL;
        ck_assert_int_eq(lq_lqt_meta_get(f, i, &k, &v), LQ_OK);
        ck_assert_int_eq(lq_lqt_meta_find(f, k, &found), LQ_OK);
        ck_assert_ptr_eq(found, v);
        ck_assert_uint_le(strlen(k), LQ_LQT_MAX_META_KEY);
        ck_assert_uint_le(strlen(v), LQ_LQT_MAX_META_VALUE);
        if (ref) {
            const char *rk, *rv;
            ck_assert_int_eq(lq_lqt_meta_get(ref, i, &rk, &rv), LQ_OK);
            ck_assert_str_eq(k, rk);
            ck_assert_str_eq(v, rv);
        }
    }
    return LQ_OK;
}

START_TEST(lqt_truncated_and_flipped)
{
    size_t n;
    lq_qtensor *t = NULL;
    uint8_t *b = small_lqt(&n, &t);
    uint8_t *c = aligned_alloc(64, (n + 63) / 64 * 64);
    for (size_t k = 0; k < n; k++) {
        uint8_t *exact = malloc(k ? k : 1);
        memcpy(exact, b, k);
        lq_qtensor *q = NULL;
        lq_status st = open_load(exact, k, 0, &q);
        ck_assert_msg(st != LQ_OK, "prefix %zu of %zu accepted", k, n);
        free(exact);
    }
    size_t accepted = 0;
    for (size_t bit = 0; bit < n * 8; bit++) {
        memcpy(c, b, n);
        c[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        lq_qtensor *q = NULL;
        lq_status st = open_load(c, n, 0, &q);
        if (st == LQ_OK) {
            /* only bytes no checksum covers (padding) may change: same tensor */
            accepted++;
            assert_same_tensor(t, q);
            lq_qtensor_free(q);
        } else {
            ck_assert_int_eq(st, LQ_ERR_CORRUPT);
        }
    }
    ck_assert_uint_lt(accepted, n * 8 / 2);
    /* oversized: trailing bytes after the directory */
    uint8_t *big = calloc(1, n + 64);
    memcpy(big, b, n);
    lq_qtensor *q = NULL;
    ck_assert_int_eq(open_load(big, n + 64, 0, &q), LQ_ERR_CORRUPT);
    free(big);
    free(c);
    free(b);
    lq_qtensor_free(t);
}
END_TEST

/* Field-level corruption with the checksums repaired, so the structural
 * checks (and the format's validation) are what must catch it. Records are
 * repaired by their magic: metadata (version 2) or tensor layout (quantized
 * and float). With sections = 0 the section CRCs are left as they are. */
static void fix_crcs_ex(uint8_t *b, size_t n, int sections)
{
    uint64_t dir = lq_rd64(b + 24);
    uint32_t cnt = lq_rd32(b + 40);
    for (uint32_t i = 0; i < cnt && dir <= n && 16ull * (i + 1) <= n - dir; i++) {
        uint64_t R = lq_rd64(b + dir + 16 * i);
        if (n < 32 || R > n - 32) continue;
        if (lq_rd32(b + R) == 0x4D54514Cu) { /* "LQTM" */
            uint64_t body = 16 + (uint64_t)lq_rd32(b + R + 4) + lq_rd32(b + R + 8);
            if (body + 4 <= n - R) lq_wr32(b + R + body, lq_crc32c(0, b + R, body));
            continue;
        }
        uint32_t nsec = lq_rd32(b + R + 24), nlen = lq_rd32(b + R + 28);
        uint64_t h = 160 + 32 * (uint64_t)nsec + nlen;
        int fits = nsec <= 8 && nlen <= 4096 && R + h + 4 <= n;
        if (fits) lq_wr32(b + R + h, lq_crc32c(0, b + R, h));
        for (uint32_t s = 0; fits && sections && s < nsec; s++) {
            const uint8_t *e = b + R + 160 + 32 * s;
            uint64_t off = lq_rd64(e + 8), nb = lq_rd64(e + 16);
            if (off <= n && nb <= n - off)
                lq_wr32(b + R + 160 + 32 * s + 24, lq_crc32c(0, b + off, nb));
        }
        if (fits) lq_wr32(b + R + h, lq_crc32c(0, b + R, h));
    }
    if (dir <= n && 16ull * cnt <= n - dir) lq_wr32(b + 48, lq_crc32c(0, b + dir, 16ull * cnt));
    lq_wr32(b + 60, lq_crc32c(0, b, 60));
}

static void fix_crcs(uint8_t *b, size_t n) { fix_crcs_ex(b, n, 1); }

START_TEST(lqt_field_corruption)
{
    size_t n;
    lq_qtensor *t = NULL;
    uint8_t *b = small_lqt(&n, &t);
    uint8_t *c = aligned_alloc(64, (n + 63) / 64 * 64);
    uint64_t R = lq_rd64(b + lq_rd64(b + 24));
    const struct {
        uint64_t off;
        int width; /* 4 or 8 */
        uint64_t val;
        lq_status want;
    } cases[] = {
        {8, 4, LQ_LQT_VERSION + 1, LQ_ERR_UNSUPPORTED}, /* newer version */
        {8, 4, 2, LQ_OK},                               /* a version-1 file is a valid version 2 */
        {8, 4, 0, LQ_ERR_CORRUPT},                      /* version 0 */
        {12, 4, 1, LQ_ERR_CORRUPT},                     /* flags */
        {52, 8, 1, LQ_ERR_CORRUPT},                     /* reserved */
        {16, 8, 1ull << 62, LQ_ERR_CORRUPT},            /* file size */
        {24, 8, UINT64_MAX - 8, LQ_ERR_CORRUPT},        /* directory offset */
        {32, 8, 32, LQ_ERR_CORRUPT},                    /* directory size */
        {40, 4, 0xFFFFFFFFu, LQ_ERR_CORRUPT},           /* tensor count */
        {44, 4, 48, LQ_ERR_CORRUPT},                    /* alignment not a power of two */
        {44, 4, 8192, LQ_ERR_CORRUPT},                  /* alignment too large */
        {R + 0, 4, 0, LQ_ERR_CORRUPT},                  /* record magic */
        {R + 4, 4, 99, LQ_ERR_CORRUPT},                 /* unknown format */
        {R + 8, 8, 0, LQ_ERR_CORRUPT},                  /* rows 0 */
        {R + 8, 8, (uint64_t)QR + 1, LQ_ERR_CORRUPT},   /* rows disagree with sections */
        {R + 16, 8, 1ull << 40, LQ_ERR_CORRUPT},        /* cols */
        {R + 8, 8, UINT64_MAX, LQ_ERR_CORRUPT},         /* rows * cols overflow */
        {R + 24, 4, 9, LQ_ERR_CORRUPT},                 /* too many sections */
        {R + 24, 4, 0, LQ_ERR_CORRUPT},                 /* sections dropped */
        {R + 28, 4, 5000, LQ_ERR_CORRUPT},              /* name too long */
        {R + 32, 4, 0xFFFFFFFFu, LQ_ERR_CORRUPT},       /* ip[0] absurd */
        {R + 96, 4, 0x7FC00000u, LQ_ERR_CORRUPT},       /* fp[0] NaN */
        {R + 160, 4, 0, LQ_ERR_CORRUPT},                /* section tag 0 */
        {R + 164, 4, 3, LQ_ERR_CORRUPT},                /* elem size 3 */
        {R + 168, 8, 8, LQ_ERR_CORRUPT},                /* section offset misaligned / in header */
        {R + 168, 8, UINT64_MAX - 63, LQ_ERR_CORRUPT},  /* section offset overflow */
        {R + 176, 8, 1ull << 60, LQ_ERR_CORRUPT},       /* section size */
        {R + 176, 8, 0, LQ_ERR_CORRUPT},                /* section size 0 */
        {R + 184, 4, 0, LQ_ERR_CORRUPT},                /* section crc (not repaired below) */
        {R + 188, 4, 1, LQ_ERR_CORRUPT},                /* section reserved */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(c, b, n);
        if (cases[i].width == 4)
            lq_wr32(c + cases[i].off, (uint32_t)cases[i].val);
        else
            lq_wr64(c + cases[i].off, cases[i].val);
        if (cases[i].off != R + 184)
            fix_crcs(c, n);
        else
            lq_wr32(c + R + 184, lq_rd32(b + R + 184) ^ 1u);
        lq_qtensor *q = NULL;
        lq_status st = open_load(c, n, 0, &q);
        if (st == LQ_OK) lq_qtensor_free(q);
        ck_assert_msg(st == cases[i].want, "case %zu (offset %llu): got %s want %s", i,
                      (unsigned long long)cases[i].off, lq_status_str(st),
                      lq_status_str(cases[i].want));
    }
    /* an unrepaired copy still loads (the repair helper is right) */
    memcpy(c, b, n);
    fix_crcs(c, n);
    lq_qtensor *q = NULL;
    ck_assert_int_eq(open_load(c, n, 0, &q), LQ_OK);
    lq_qtensor_free(q);
    /* a misaligned buffer is loaded by copying */
    uint8_t *mis = malloc(n + 1);
    memcpy(mis + 1, b, n);
    lq_lqt *f;
    ck_assert_int_eq(lq_lqt_open_memory(NULL, mis + 1, n, &f), LQ_OK);
    ck_assert_int_eq(lq_lqt_load(NULL, f, 0, 0, &q), LQ_OK);
    ck_assert_int_eq(q->borrowed, 0);
    assert_same_tensor(t, q);
    lq_qtensor_free(q);
    ck_assert_int_eq(lq_lqt_load(NULL, f, 0, 64, &q), LQ_ERR_INVALID_ARG);
    lq_lqt_close(f);
    free(mis);
    free(c);
    free(b);
    lq_qtensor_free(t);
}
END_TEST

static lq_status sweep_lqt_load(lq_ctx *ctx, void *arg)
{
    blob_arg *a = arg;
    lq_lqt *f = NULL;
    lq_status st = lq_lqt_open_memory(ctx, a->b, a->n, &f);
    if (st != LQ_OK) return st;
    for (unsigned fl = 0; fl <= LQ_LQT_COPY && st == LQ_OK; fl += LQ_LQT_COPY) {
        lq_qtensor *t = NULL;
        st = lq_lqt_load(ctx, f, 0, fl, &t);
        if (st == LQ_OK)
            ck_assert_ptr_nonnull(t);
        else
            ck_assert_ptr_null(t);
        lq_qtensor_free(t);
    }
    lq_lqt_close(f);
    return st;
}

static lq_status sweep_lqt_save(lq_ctx *ctx, void *arg)
{
    char p[128];
    return lq_qtensor_save(ctx, arg, "w", tmp_path(p, sizeof p, "sweep.lqt"));
}

static lq_status sweep_lqt_file(lq_ctx *ctx, void *arg)
{
    (void)arg;
    char p[128];
    lq_qtensor *t = NULL;
    lq_status st = lq_qtensor_load(ctx, tmp_path(p, sizeof p, "sweep.lqt"), "w", LQ_LQT_MMAP, &t);
    lq_qtensor_free(t);
    return st;
}

START_TEST(lqt_alloc_sweep)
{
    size_t n;
    lq_qtensor *t = NULL;
    uint8_t *b = small_lqt(&n, &t);
    uint8_t *c = aligned_alloc(64, (n + 63) / 64 * 64);
    memcpy(c, b, n);
    blob_arg a = {c, n};
    ck_assert_uint_ge(lq_test_alloc_sweep(sweep_lqt_load, &a, 1), 4);
    ck_assert_uint_ge(lq_test_alloc_sweep(sweep_lqt_save, t, 1), 3);
    ck_assert_uint_ge(lq_test_alloc_sweep(sweep_lqt_file, NULL, 1), 4);
    free(c);
    free(b);
    lq_qtensor_free(t);
}
END_TEST

/* The readers on corrupt input under the allocation-failure sweep: each run
 * either detects the corruption (mapped to OK for the sweep) or fails an
 * allocation and must then say NO_MEMORY; no run may leak. */
typedef struct corrupt_arg {
    const uint8_t *b;
    size_t n;
    int lqt; /* 1: .lqt, 0: tensor file */
} corrupt_arg;

static lq_status sweep_corrupt(lq_ctx *ctx, void *arg)
{
    corrupt_arg *a = arg;
    lq_status st;
    if (a->lqt) {
        lq_lqt *f = NULL;
        st = lq_lqt_open_memory(ctx, a->b, a->n, &f);
        if (st == LQ_OK) st = read_everything(ctx, f, NULL);
        lq_lqt_close(f);
    } else {
        lq_tfile *f = NULL;
        st = lq_tfile_open_memory(ctx, a->b, a->n, LQ_TFILE_AUTO, &f);
        lq_tfile_close(f);
    }
    return st == LQ_ERR_CORRUPT ? LQ_OK : st;
}

static void sweep_mutants(const uint8_t *b, size_t n, int lqt)
{
    uint8_t *c = aligned_alloc(64, (n + 63) / 64 * 64);
    size_t cuts[] = {n / 3, n / 2, n - 1};
    for (size_t i = 0; i < 3; i++) {
        corrupt_arg a = {b, cuts[i], lqt};
        lq_test_alloc_sweep(sweep_corrupt, &a, 1);
    }
    for (size_t k = 1; k < 8; k++) {
        memcpy(c, b, n);
        c[k * n / 8] ^= 0x10;
        corrupt_arg a = {c, n, lqt};
        lq_test_alloc_sweep(sweep_corrupt, &a, 1);
    }
    free(c);
}

START_TEST(corrupt_input_alloc_sweep)
{
    st_fixture x;
    fixture_fill(&x);
    lq_tensor_desc d[4];
    fixture_desc(&x, d);
    char p[128];
    tmp_path(p, sizeof p, "c.safetensors");
    ck_assert_int_eq(lq_safetensors_write(NULL, p, d, 4), LQ_OK);
    size_t n;
    uint8_t *b = slurp(p, &n);
    sweep_mutants(b, n, 0);
    free(b);
    b = npy_bytes(2, "{'descr': '<f2', 'fortran_order': False, 'shape': (3, 2), }", 12, &n);
    sweep_mutants(b, n, 0);
    free(b);
    lq_qtensor *t = NULL;
    b = small_lqt(&n, &t);
    {
        sweep_mutants(b, n, 1);
        free(b);
        lq_qtensor_free(t);
    }
}
END_TEST

/* Two threads load (zero copy) and free tensors of one mapped file while the
 * handle is closed under them: the shared mapping's reference count keeps
 * every tensor valid, and all of them decode identically. */
typedef struct conc_arg {
    const lq_lqt *f;
    lq_qtensor *held[20];
    int bad;
} conc_arg;

static void *conc_body(void *p)
{
    conc_arg *a = p;
    for (int i = 0; i < 20; i++)
        if (lq_lqt_load(NULL, a->f, 0, 0, &a->held[i]) != LQ_OK) a->bad++;
    for (int i = 0; i < 20; i += 2) {
        lq_qtensor_free(a->held[i]);
        a->held[i] = NULL;
    }
    return NULL;
}

START_TEST(lqt_concurrent_loads)
{
    size_t n;
    lq_qtensor *t = NULL;
    uint8_t *b = small_lqt(&n, &t);
    char p[128];
    tmp_path(p, sizeof p, "small.lqt");
    lq_lqt *f;
    ck_assert_int_eq(lq_lqt_open(NULL, p, LQ_LQT_MMAP, &f), LQ_OK);
    conc_arg a[2] = {{f, {0}, 0}, {f, {0}, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_create(&th[i], NULL, conc_body, &a[i]), 0);
    for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    lq_lqt_close(f);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(a[i].bad, 0);
        for (int k = 1; k < 20; k += 2) {
            assert_same_tensor(t, a[i].held[k]);
            lq_qtensor_free(a[i].held[k]);
        }
    }
    free(b);
    lq_qtensor_free(t);
}
END_TEST

/* ---- .lqt version 2: float tensors and metadata --------------------------------- */

/* A version-1 file written by the version-1 writer (before float tensors
 * and metadata existed): two INT tensors "a" and "bb" (4 x 32, 4 bits,
 * group 32), as hex. */
static const char k_v1_golden[] = "894c51540d0a1a0a0100000000000000"
                                  "60040000000000004004000000000000"
                                  "20000000000000000200000040000000"
                                  "c84bf0950000000000000000a187a56e"
                                  "4c515452010000000400000000000000"
                                  "20000000000000000300000001000000"
                                  "04000000000000002000000000000000"
                                  "02000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "01000000010000008001000000000000"
                                  "400000000000000090fb3fad00000000"
                                  "0200000002000000c001000000000000"
                                  "08000000000000001b92996c00000000"
                                  "03000000010000000002000000000000"
                                  "04000000000000003fd71edd00000000"
                                  "6128880be20000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "602cd8935f1bc6824efab5713de8a46f"
                                  "1bc6824e09b5713de8a4602bd7935f1a"
                                  "d7935e0ac6824df9b5712ce8a46f1bd7"
                                  "934e0ac6823df9b5612ce8a45f1bd783"
                                  "44302330233023300000000000000000"
                                  "00000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "08070808000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "4c515452010000000400000000000000"
                                  "20000000000000000300000002000000"
                                  "04000000000000002000000000000000"
                                  "02000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "01000000010000008003000000000000"
                                  "400000000000000090fb3fad00000000"
                                  "0200000002000000c003000000000000"
                                  "08000000000000001b92996c00000000"
                                  "03000000010000000004000000000000"
                                  "04000000000000003fd71edd00000000"
                                  "6262770d984e00000000000000000000"
                                  "00000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "602cd8935f1bc6824efab5713de8a46f"
                                  "1bc6824e09b5713de8a4602bd7935f1a"
                                  "d7935e0ac6824df9b5712ce8a46f1bd7"
                                  "934e0ac6823df9b5612ce8a45f1bd783"
                                  "44302330233023300000000000000000"
                                  "00000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "08070808000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "00000000000000000000000000000000"
                                  "4000000000000000c401000000000000"
                                  "4002000000000000c401000000000000";

static uint8_t *v1_golden(size_t *n)
{
    size_t len = strlen(k_v1_golden) / 2;
    uint8_t *b = aligned_alloc(64, (len + 63) / 64 * 64);
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        ck_assert_int_eq(sscanf(k_v1_golden + 2 * i, "%2x", &v), 1);
        b[i] = (uint8_t)v;
    }
    *n = len;
    return b;
}

/* Values that must survive bit for bit. */
static const float k_f32a[2 * 3] = {1.5f,    -0.0f,    1e-40f /* subnormal */,
                                    FLT_MAX, -FLT_MAX, FLT_MIN};
static const float k_f32b[2] = {3.25f, -7.0f};

/* The small version-2 file of the corruption tests: [0] float "f" (2 x 3),
 * meta k1 = v1, [1] float "g" (1 x 2), meta k2 = "" (record order). */
static uint8_t *small_v2(size_t *n)
{
    char p[128];
    tmp_path(p, sizeof p, "small2.lqt");
    lq_lqt_writer *w;
    ck_assert_int_eq(lq_lqt_writer_open(NULL, p, &w), LQ_OK);
    ck_assert_int_eq(lq_lqt_writer_add_f32(w, "f", 2, 3, k_f32a), LQ_OK);
    ck_assert_int_eq(lq_lqt_writer_add_meta(w, "k1", "v1"), LQ_OK);
    ck_assert_int_eq(lq_lqt_writer_add_f32(w, "g", 1, 2, k_f32b), LQ_OK);
    ck_assert_int_eq(lq_lqt_writer_add_meta(w, "k2", ""), LQ_OK);
    ck_assert_int_eq(lq_lqt_writer_finish(w), LQ_OK);
    size_t len;
    uint8_t *raw = slurp(p, &len);
    uint8_t *b = aligned_alloc(64, (len + 63) / 64 * 64);
    memcpy(b, raw, len);
    free(raw);
    *n = len;
    return b;
}

static lq_status open_read_all(const uint8_t *b, size_t n, const lq_lqt *ref)
{
    lq_lqt *f = NULL;
    lq_status st = lq_lqt_open_memory(NULL, b, n, &f);
    if (st != LQ_OK) {
        ck_assert_ptr_null(f);
        return st;
    }
    st = read_everything(NULL, f, ref);
    lq_lqt_close(f);
    return st;
}

START_TEST(lqt_v1_golden_read_and_rewritten)
{
    size_t n;
    uint8_t *b = v1_golden(&n);
    lq_lqt *f;
    ck_assert_int_eq(lq_lqt_open_memory(NULL, b, n, &f), LQ_OK);
    uint32_t ver;
    ck_assert_int_eq(lq_lqt_file_info(f, &ver, NULL, NULL), LQ_OK);
    ck_assert_uint_eq(ver, 1);
    ck_assert_uint_eq(lq_lqt_count(f), 2);
    ck_assert_uint_eq(lq_lqt_meta_count(f), 0);
    const char *v = "untouched";
    ck_assert_int_eq(lq_lqt_meta_find(f, "a", &v), LQ_ERR_INVALID_ARG);
    ck_assert_str_eq(v, "untouched");
    ck_assert_int_eq(read_everything(NULL, f, NULL), LQ_OK);
    /* written again by this writer: the same bytes (version 1) */
    char p[128];
    tmp_path(p, sizeof p, "golden.lqt");
    lq_lqt_writer *w;
    ck_assert_int_eq(lq_lqt_writer_open(NULL, p, &w), LQ_OK);
    const char *names[2] = {"a", "bb"};
    for (size_t i = 0; i < 2; i++) {
        size_t idx;
        ck_assert_int_eq(lq_lqt_find(f, names[i], &idx), LQ_OK);
        ck_assert_uint_eq(idx, i);
        lq_lqt_info info;
        ck_assert_int_eq(lq_lqt_info_get(f, idx, &info), LQ_OK);
        ck_assert_uint_eq(info.format, LQ_FORMAT_INT);
        ck_assert_uint_eq(info.rows, 4);
        ck_assert_uint_eq(info.cols, 32);
        lq_qtensor *t = NULL;
        ck_assert_int_eq(lq_lqt_load(NULL, f, idx, LQ_LQT_COPY, &t), LQ_OK);
        ck_assert_int_eq(lq_lqt_writer_add(w, names[i], t), LQ_OK);
        lq_qtensor_free(t);
    }
    ck_assert_int_eq(lq_lqt_writer_finish(w), LQ_OK);
    lq_lqt_close(f);
    size_t m;
    uint8_t *again = slurp(p, &m);
    ck_assert_uint_eq(m, n);
    ck_assert_mem_eq(again, b, n);
    free(again);

    /* Version 1 has only quantized tensor records: a float or metadata
     * record there is corrupt, as it always was. */
    size_t n2;
    uint8_t *b2 = small_v2(&n2);
    lq_wr32(b2 + 8, 1);
    lq_wr32(b2 + 60, lq_crc32c(0, b2, 60));
    ck_assert_int_eq(open_read_all(b2, n2, NULL), LQ_ERR_CORRUPT);
    free(b2);

    /* A version-1 tensor record stating the float marker is an unknown
     * quantized format there (opens, does not load, is no float entry);
     * in version 2 the marker belongs to float records only. */
    uint64_t R = lq_rd64(b + lq_rd64(b + 24));
    lq_wr32(b + R + 4, LQ_LQT_FORMAT_F32);
    fix_crcs(b, n);
    ck_assert_int_eq(lq_lqt_open_memory(NULL, b, n, &f), LQ_OK);
    lq_lqt_info info;
    ck_assert_int_eq(lq_lqt_info_get(f, 0, &info), LQ_OK);
    ck_assert_uint_eq(info.format, LQ_LQT_FORMAT_F32);
    lq_qtensor *t = NULL;
    ck_assert_int_eq(lq_lqt_load(NULL, f, 0, 0, &t), LQ_ERR_CORRUPT);
    ck_assert_ptr_null(t);
    float dst[4 * 32];
    ck_assert_int_eq(lq_lqt_read_f32(f, 0, dst, 4 * 32), LQ_ERR_INVALID_ARG);
    lq_lqt_close(f);
    lq_wr32(b + 8, 2);
    fix_crcs(b, n);
    ck_assert_int_eq(lq_lqt_open_memory(NULL, b, n, &f), LQ_ERR_CORRUPT);
    free(b);
}
END_TEST

/* A long metadata value (deterministic printable bytes). */
static char *long_value(size_t n)
{
    char *v = malloc(n + 1);
    for (size_t i = 0; i < n; i++) v[i] = (char)(' ' + (i * 7919) % 95);
    v[n] = 0;
    return v;
}

START_TEST(lqt_f32_meta_round_trip)
{
    char p[128];
    tmp_path(p, sizeof p, "model.lqt");
    lq_qtensor *t = NULL;
    t = quantize_with(k_methods[0]);
    static float big[37 * 129];
    lq_test_fill_gaussian(big, 37 * 129, 3.0f, 5);
    char key256[LQ_LQT_MAX_META_KEY + 1];
    memset(key256, 'k', LQ_LQT_MAX_META_KEY);
    key256[LQ_LQT_MAX_META_KEY] = 0;
    char *mib = long_value(LQ_LQT_MAX_META_VALUE);
    const char *keys[] = {"general.name", "empty", key256, "utf8 \xc3\xa9\xe2\x82\xac", "w"};
    const char *vals[] = {"tiny-llm", "", "x", "caf\xc3\xa9 \xf0\x9f\x98\x80\n\t", mib};
    lq_lqt_writer *w;
    ck_assert_int_eq(lq_lqt_writer_open(NULL, p, &w), LQ_OK);
    ck_assert_int_eq(lq_lqt_writer_add_f32(w, "emb", 2, 3, k_f32a), LQ_OK);
    ck_assert_int_eq(lq_lqt_writer_add_meta(w, keys[0], vals[0]), LQ_OK);
    if (t) ck_assert_int_eq(lq_lqt_writer_add(w, "w", t), LQ_OK);
    ck_assert_int_eq(lq_lqt_writer_add_f32(w, "bias", 1, 2, k_f32b), LQ_OK); /* 1-D */
    for (size_t i = 1; i < 5; i++)
        ck_assert_int_eq(lq_lqt_writer_add_meta(w, keys[i], vals[i]), LQ_OK);
    ck_assert_int_eq(lq_lqt_writer_add_f32(w, "big", 37, 129, big), LQ_OK);
    ck_assert_int_eq(lq_lqt_writer_finish(w), LQ_OK);
    const char *fnames[3] = {"emb", "bias", "big"};
    const float *fdata[3] = {k_f32a, k_f32b, big};
    const size_t frows[3] = {2, 1, 37}, fcols[3] = {3, 2, 129};

    size_t n;
    uint8_t *raw = slurp(p, &n);
    uint8_t *mis = malloc(n + 1);
    memcpy(mis + 1, raw, n);
    for (unsigned mode = 0; mode < 4; mode++) {
        lq_lqt *f = NULL;
        if (mode < 2)
            ck_assert_int_eq(lq_lqt_open(NULL, p, mode ? LQ_LQT_MMAP : 0, &f), LQ_OK);
        else if (mode == 2)
            ck_assert_int_eq(lq_lqt_open_memory(NULL, raw, n, &f), LQ_OK);
        else
            ck_assert_int_eq(lq_lqt_open_memory(NULL, mis + 1, n, &f), LQ_OK); /* misaligned */
        uint32_t ver;
        ck_assert_int_eq(lq_lqt_file_info(f, &ver, NULL, NULL), LQ_OK);
        ck_assert_uint_eq(ver, 2);
        ck_assert_uint_eq(lq_lqt_count(f), t ? 4 : 3);
        ck_assert_uint_eq(lq_lqt_meta_count(f), 5);
        for (size_t k = 0; k < 3; k++) {
            size_t idx;
            ck_assert_int_eq(lq_lqt_find(f, fnames[k], &idx), LQ_OK);
            lq_lqt_info info;
            ck_assert_int_eq(lq_lqt_info_get(f, idx, &info), LQ_OK);
            ck_assert_str_eq(info.name, fnames[k]);
            ck_assert_uint_eq(info.format, LQ_LQT_FORMAT_F32);
            ck_assert_uint_eq(info.rows, frows[k]);
            ck_assert_uint_eq(info.cols, fcols[k]);
            ck_assert_uint_eq(info.nsec, 1);
            ck_assert_uint_eq(info.sec[0].tag, 10);
            ck_assert_uint_eq(info.sec[0].elem_size, 4);
            ck_assert_uint_eq(info.sec[0].nbytes, frows[k] * fcols[k] * 4);
            ck_assert_uint_eq(info.sec[0].offset % 64, 0); /* mapped data is aligned */
            for (size_t q = 0; q < LQ_LQT_NPARAMS; q++) {
                ck_assert_uint_eq(info.ip[q], 0);
                ck_assert_uint_eq(lq_f32_bits(info.fp[q]), 0);
            }
            size_t numel = frows[k] * fcols[k];
            float *got = malloc(numel * sizeof *got);
            ck_assert_int_eq(lq_lqt_read_f32(f, idx, got, numel), LQ_OK);
            ck_assert_mem_eq(got, fdata[k], numel * sizeof *got); /* bit for bit (-0, subnormal) */
            free(got);
            lq_qtensor *q = (lq_qtensor *)&got; /* sentinel: must stay */
            ck_assert_int_eq(lq_lqt_load(NULL, f, idx, 0, &q), LQ_ERR_INVALID_ARG);
            ck_assert_ptr_eq(q, (lq_qtensor *)&got);
        }
        if (t) {
            size_t idx;
            ck_assert_int_eq(lq_lqt_find(f, "w", &idx), LQ_OK);
            ck_assert_uint_eq(idx, 1); /* file order: emb, w, bias, big */
            lq_qtensor *q = NULL;
            ck_assert_int_eq(lq_lqt_load(NULL, f, idx, mode == 1 ? 0 : LQ_LQT_COPY, &q), LQ_OK);
            assert_same_tensor(t, q);
            lq_qtensor_free(q);
        }
        for (size_t i = 0; i < 5; i++) {
            const char *k = NULL, *v = NULL;
            ck_assert_int_eq(lq_lqt_meta_get(f, i, &k, &v), LQ_OK); /* insertion order */
            ck_assert_str_eq(k, keys[i]);
            ck_assert_str_eq(v, vals[i]);
            const char *v2 = NULL;
            ck_assert_int_eq(lq_lqt_meta_find(f, keys[i], &v2), LQ_OK);
            ck_assert_ptr_eq(v2, v);
            ck_assert_int_eq(lq_lqt_meta_get(f, i, NULL, &v2), LQ_OK);
            ck_assert_int_eq(lq_lqt_meta_get(f, i, &k, NULL), LQ_OK);
        }
        ck_assert_int_eq(read_everything(NULL, f, NULL), LQ_OK);
        lq_lqt_close(f);
    }
    /* the single-tensor helpers refuse float entries */
    lq_qtensor *q = NULL;
    ck_assert_int_eq(lq_qtensor_load(NULL, p, "emb", 0, &q), LQ_ERR_INVALID_ARG);
    ck_assert_ptr_null(q);
    if (t) {
        ck_assert_int_eq(lq_qtensor_load(NULL, p, "w", LQ_LQT_MMAP, &q), LQ_OK);
        assert_same_tensor(t, q);
        lq_qtensor_free(q);
        q = NULL;
    }
    /* one float tensor and metadata: the file holds one tensor, a float */
    ck_assert_int_eq(lq_lqt_writer_open(NULL, p, &w), LQ_OK);
    ck_assert_int_eq(lq_lqt_writer_add_meta(w, "a", "b"), LQ_OK);
    ck_assert_int_eq(lq_lqt_writer_add_f32(w, "only", 1, 1, k_f32b), LQ_OK);
    ck_assert_int_eq(lq_lqt_writer_finish(w), LQ_OK);
    ck_assert_int_eq(lq_qtensor_load(NULL, p, NULL, 0, &q), LQ_ERR_INVALID_ARG);
    ck_assert_ptr_null(q);
    /* metadata only, and a quantized tensor with metadata: version 2 */
    for (int withq = 0; withq < 2; withq++) {
        if (withq && !t) continue;
        ck_assert_int_eq(lq_lqt_writer_open(NULL, p, &w), LQ_OK);
        if (withq) ck_assert_int_eq(lq_lqt_writer_add(w, "w", t), LQ_OK);
        ck_assert_int_eq(lq_lqt_writer_add_meta(w, "w", "same name as the tensor: allowed"), LQ_OK);
        ck_assert_int_eq(lq_lqt_writer_finish(w), LQ_OK);
        lq_lqt *f;
        ck_assert_int_eq(lq_lqt_open(NULL, p, 0, &f), LQ_OK);
        uint32_t ver;
        ck_assert_int_eq(lq_lqt_file_info(f, &ver, NULL, NULL), LQ_OK);
        ck_assert_uint_eq(ver, 2);
        ck_assert_uint_eq(lq_lqt_count(f), (size_t)withq);
        ck_assert_uint_eq(lq_lqt_meta_count(f), 1);
        ck_assert_int_eq(read_everything(NULL, f, NULL), LQ_OK);
        lq_lqt_close(f);
        if (withq) {
            ck_assert_int_eq(lq_qtensor_load(NULL, p, NULL, 0, &q), LQ_OK);
            lq_qtensor_free(q);
        }
    }
    free(mis);
    free(raw);
    free(mib);
    lq_qtensor_free(t);
}
END_TEST

START_TEST(lqt_f32_meta_bad_args)
{
    char p[128];
    tmp_path(p, sizeof p, "args.lqt");
    lq_qtensor *t = NULL;
    t = quantize_with(k_methods[0]);
    lq_lqt_writer *w;
    ck_assert_int_eq(lq_lqt_writer_open(NULL, p, &w), LQ_OK);
    const float one[4] = {1, 2, 3, 4};
    float bad[4] = {1, 2, 3, 4};
    /* writer: float tensors */
    ck_assert_int_eq(lq_lqt_writer_add_f32(NULL, "x", 1, 1, one), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_writer_add_f32(w, NULL, 1, 1, one), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_writer_add_f32(w, "x", 1, 1, NULL), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_writer_add_f32(w, "x", 0, 4, one), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_writer_add_f32(w, "x", 4, 0, one), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_writer_add_f32(w, "x", SIZE_MAX, 2, one), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_writer_add_f32(w, "x", SIZE_MAX / 4 + 1, 1, one), LQ_ERR_INVALID_ARG);
    char *longname = malloc(LQ_LQT_MAX_NAME + 2);
    memset(longname, 'n', LQ_LQT_MAX_NAME + 1);
    longname[LQ_LQT_MAX_NAME + 1] = 0;
    ck_assert_int_eq(lq_lqt_writer_add_f32(w, longname, 1, 1, one), LQ_ERR_INVALID_ARG);
    longname[LQ_LQT_MAX_NAME] = 0;
    ck_assert_int_eq(lq_lqt_writer_add_f32(w, longname, 1, 1, one), LQ_OK);
    const float nonfinite[3] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < 3; i++) {
        bad[3] = nonfinite[i];
        ck_assert_int_eq(lq_lqt_writer_add_f32(w, "x", 2, 2, bad), LQ_ERR_NOT_FINITE);
    }
    ck_assert_int_eq(lq_lqt_writer_add_f32(w, "x", 2, 2, one), LQ_OK); /* the writer went on */
    ck_assert_int_eq(lq_lqt_writer_add_f32(w, "x", 1, 1, one), LQ_ERR_INVALID_ARG); /* duplicate */
    if (t) {
        ck_assert_int_eq(lq_lqt_writer_add(w, "x", t), LQ_ERR_INVALID_ARG); /* one namespace */
        ck_assert_int_eq(lq_lqt_writer_add(w, "q", t), LQ_OK);
        ck_assert_int_eq(lq_lqt_writer_add_f32(w, "q", 1, 1, one), LQ_ERR_INVALID_ARG);
    }
    /* writer: metadata */
    char key[LQ_LQT_MAX_META_KEY + 2];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = 0; /* 257 bytes */
    char *vbig = long_value(LQ_LQT_MAX_META_VALUE + 1);
    ck_assert_int_eq(lq_lqt_writer_add_meta(NULL, "k", "v"), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_writer_add_meta(w, NULL, "v"), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_writer_add_meta(w, "k", NULL), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_writer_add_meta(w, "", "v"), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_writer_add_meta(w, key, "v"), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_writer_add_meta(w, "k", vbig), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_writer_add_meta(w, key + 1, "v"), LQ_OK); /* 256 bytes */
    ck_assert_int_eq(lq_lqt_writer_add_meta(w, "k", "v"), LQ_OK);
    ck_assert_int_eq(lq_lqt_writer_add_meta(w, "k", "other"), LQ_ERR_INVALID_ARG); /* duplicate */
    ck_assert_int_eq(lq_lqt_writer_add_meta(w, "x", "a tensor's name"), LQ_OK);
    ck_assert_int_eq(lq_lqt_writer_finish(w), LQ_OK);
    free(vbig);

    /* exactly the accepted entries are in the file */
    lq_lqt *f;
    ck_assert_int_eq(lq_lqt_open(NULL, p, 0, &f), LQ_OK);
    ck_assert_uint_eq(lq_lqt_count(f), t ? 3 : 2);
    ck_assert_uint_eq(lq_lqt_meta_count(f), 3);
    size_t xi, li;
    ck_assert_int_eq(lq_lqt_find(f, "x", &xi), LQ_OK);
    ck_assert_int_eq(lq_lqt_find(f, longname, &li), LQ_OK);
    free(longname);
    ck_assert_int_eq(read_everything(NULL, f, NULL), LQ_OK);

    /* reader: bad arguments leave the outputs untouched */
    float dst[5] = {-1, -1, -1, -1, -1};
    const float sentinel[5] = {-1, -1, -1, -1, -1};
    ck_assert_int_eq(lq_lqt_read_f32(NULL, xi, dst, 4), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_read_f32(f, xi, NULL, 4), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_read_f32(f, xi, dst, 3), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_read_f32(f, xi, dst, 5), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_read_f32(f, xi, dst, 0), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_read_f32(f, lq_lqt_count(f), dst, 4), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_read_f32(f, SIZE_MAX, dst, 4), LQ_ERR_INVALID_ARG);
    if (t) {
        size_t qi;
        ck_assert_int_eq(lq_lqt_find(f, "q", &qi), LQ_OK);
        ck_assert_int_eq(lq_lqt_read_f32(f, qi, dst, QR * QC), LQ_ERR_INVALID_ARG);
    }
    ck_assert_mem_eq(dst, sentinel, sizeof dst);
    ck_assert_int_eq(lq_lqt_read_f32(f, xi, dst, 4), LQ_OK);
    ck_assert_mem_eq(dst, one, sizeof one);
    ck_assert_float_eq(dst[4], -1);
    const char *k = "K", *v = "V";
    ck_assert_int_eq(lq_lqt_meta_get(NULL, 0, &k, &v), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_meta_get(f, 3, &k, &v), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_meta_get(f, SIZE_MAX, &k, &v), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_meta_find(NULL, "k", &v), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_meta_find(f, NULL, &v), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_meta_find(f, "k", NULL), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_meta_find(f, "missing", &v), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_lqt_meta_find(f, "", &v), LQ_ERR_INVALID_ARG);
    ck_assert_str_eq(k, "K");
    ck_assert_str_eq(v, "V");
    ck_assert_int_eq(lq_lqt_meta_find(f, "k", &v), LQ_OK);
    ck_assert_str_eq(v, "v");
    ck_assert_uint_eq(lq_lqt_meta_count(NULL), 0);
    lq_lqt_close(f);
    lq_qtensor_free(t);
}
END_TEST

START_TEST(lqt_v2_truncated_and_flipped)
{
    size_t n;
    uint8_t *b = small_v2(&n);
    lq_lqt *ref;
    ck_assert_int_eq(lq_lqt_open_memory(NULL, b, n, &ref), LQ_OK);
    ck_assert_int_eq(read_everything(NULL, ref, NULL), LQ_OK);
    for (size_t k = 0; k < n; k++) {
        uint8_t *exact = malloc(k ? k : 1);
        memcpy(exact, b, k);
        ck_assert_msg(open_read_all(exact, k, NULL) != LQ_OK, "prefix %zu of %zu accepted", k, n);
        free(exact);
    }
    uint8_t *c = aligned_alloc(64, (n + 63) / 64 * 64);
    size_t accepted = 0;
    for (size_t bit = 0; bit < n * 8; bit++) {
        memcpy(c, b, n);
        c[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        lq_status st = open_read_all(c, n, ref); /* accepted: same content as ref */
        if (st == LQ_OK)
            accepted++;
        else
            ck_assert_int_eq(st, LQ_ERR_CORRUPT);
    }
    ck_assert_uint_lt(accepted, n * 8 / 2);
    lq_lqt_close(ref);
    free(c);
    free(b);
}
END_TEST

/* Field-level corruption of float and metadata records, checksums repaired
 * (fix_crcs) unless noted, so the structural checks must catch it. */
START_TEST(lqt_v2_field_corruption)
{
    size_t n;
    uint8_t *b = small_v2(&n);
    uint8_t *c = aligned_alloc(64, (n + 63) / 64 * 64);
    uint64_t dir = lq_rd64(b + 24);
    uint64_t F = lq_rd64(b + dir), M = lq_rd64(b + dir + 16), G = lq_rd64(b + dir + 32);
    ck_assert_uint_eq(lq_rd32(b + F), 0x4654514Cu);
    ck_assert_uint_eq(lq_rd32(b + M), 0x4D54514Cu);
    const struct {
        uint64_t off;
        int width; /* 1, 4 or 8 */
        uint64_t val;
        lq_status want;
    } cases[] = {
        {8, 4, 1, LQ_ERR_CORRUPT}, /* version 1 has no such records */
        {8, 4, 3, LQ_ERR_UNSUPPORTED},
        {F + 0, 4, 0x5254514Cu, LQ_ERR_CORRUPT}, /* LQTR with the float marker */
        {F + 0, 4, 0x4D54514Cu, LQ_ERR_CORRUPT}, /* read as metadata */
        {F + 0, 4, 0x5854514Cu, LQ_ERR_CORRUPT}, /* unknown kind */
        {F + 4, 4, 1, LQ_ERR_CORRUPT},           /* format */
        {F + 4, 4, 0, LQ_ERR_CORRUPT},
        {F + 8, 8, 0, LQ_ERR_CORRUPT},          /* rows 0 */
        {F + 8, 8, 1, LQ_ERR_CORRUPT},          /* rows disagree with the values */
        {F + 16, 8, 4, LQ_ERR_CORRUPT},         /* cols disagree */
        {F + 8, 8, 1ull << 62, LQ_ERR_CORRUPT}, /* rows * cols * 4 overflows */
        {F + 8, 8, (1ull << 62) / 3 + 1, LQ_ERR_CORRUPT},
        {F + 24, 4, 0, LQ_ERR_CORRUPT},            /* no section */
        {F + 24, 4, 2, LQ_ERR_CORRUPT},            /* two sections */
        {F + 32, 4, 1, LQ_ERR_CORRUPT},            /* ip[0] */
        {F + 92, 4, 7, LQ_ERR_CORRUPT},            /* ip[15] */
        {F + 96, 4, 0x80000000u, LQ_ERR_CORRUPT},  /* fp[0] = -0.0 */
        {F + 156, 4, 0x3F800000u, LQ_ERR_CORRUPT}, /* fp[15] = 1 */
        {F + 160, 4, 1, LQ_ERR_CORRUPT},           /* tag */
        {F + 164, 4, 2, LQ_ERR_CORRUPT},           /* elem size */
        {F + 164, 4, 8, LQ_ERR_CORRUPT},
        {F + 176, 8, 20, LQ_ERR_CORRUPT},        /* section size */
        {F + 188, 4, 1, LQ_ERR_CORRUPT},         /* section reserved */
        {G + 192, 1, 'f', LQ_ERR_CORRUPT},       /* float names collide */
        {M + 0, 4, 0x4654514Cu, LQ_ERR_CORRUPT}, /* read as a float record */
        {M + 4, 4, 0, LQ_ERR_CORRUPT},           /* empty key */
        {M + 4, 4, 257, LQ_ERR_CORRUPT},         /* key too long */
        {M + 4, 4, 1, LQ_ERR_CORRUPT},           /* lengths disagree with the record */
        {M + 4, 4, 0xFFFFFFFFu, LQ_ERR_CORRUPT},
        {M + 8, 4, 0, LQ_ERR_CORRUPT},
        {M + 8, 4, LQ_LQT_MAX_META_VALUE + 1, LQ_ERR_CORRUPT},
        {M + 8, 4, 0xFFFFFFFCu, LQ_ERR_CORRUPT},
        {M + 12, 4, 1, LQ_ERR_CORRUPT},    /* reserved */
        {M + 16, 1, 0, LQ_ERR_CORRUPT},    /* NUL in the key */
        {M + 19, 1, 0, LQ_ERR_CORRUPT},    /* NUL in the value */
        {M + 17, 1, '2', LQ_ERR_CORRUPT},  /* duplicate key k2 */
        {M + 20, 4, 0, LQ_ERR_CORRUPT},    /* record CRC (not repaired) */
        {dir + 24, 8, 23, LQ_ERR_CORRUPT}, /* metadata record size */
        {dir + 24, 8, 25, LQ_ERR_CORRUPT},
        {dir + 24, 8, 0, LQ_ERR_CORRUPT},
        {dir + 24, 8, 3, LQ_ERR_CORRUPT},
        {dir + 16, 8, M + 8, LQ_ERR_CORRUPT}, /* misaligned record */
        {M + 17, 1, '3', LQ_OK},              /* another key: fine */
        {G + 192, 1, 'h', LQ_OK},             /* another name: fine */
    };
    ck_assert_uint_eq(lq_rd32(b + M + 4), 2);
    ck_assert_uint_eq(b[M + 17], '1');
    ck_assert_uint_eq(b[G + 192], 'g');
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(c, b, n);
        uint64_t o = cases[i].off;
        if (cases[i].width == 1)
            c[o] = (uint8_t)cases[i].val;
        else if (cases[i].width == 4)
            lq_wr32(c + o, (uint32_t)cases[i].val);
        else
            lq_wr64(c + o, cases[i].val);
        if (o != M + 20) fix_crcs(c, n);
        lq_status st = open_read_all(c, n, NULL);
        ck_assert_msg(st == cases[i].want, "case %zu (offset %llu): got %s want %s", i,
                      (unsigned long long)o, lq_status_str(st), lq_status_str(cases[i].want));
    }
    /* Float values: a NaN or Inf (CRC repaired), or a bad CRC: open succeeds,
     * lq_lqt_read_f32 says CORRUPT and leaves dst alone. */
    uint64_t data = lq_rd64(b + F + 168);
    const struct {
        uint64_t off;
        uint32_t val;
        int repair;
    } vcases[] = {
        {data + 4, 0x7FC00000u, 1}, {data + 20, 0x7F800000u, 1}, {data, 0xFF800000u, 1},
        {data + 8, 0x7F800001u, 1}, {data + 12, 0x12345678u, 0}, {F + 184, 0, 0},
    };
    for (size_t i = 0; i < sizeof vcases / sizeof vcases[0]; i++) {
        memcpy(c, b, n);
        lq_wr32(c + vcases[i].off, vcases[i].val);
        if (vcases[i].repair)
            fix_crcs(c, n);
        else
            fix_crcs_ex(c, n, 0);
        lq_lqt *f;
        ck_assert_int_eq(lq_lqt_open_memory(NULL, c, n, &f), LQ_OK);
        float dst[6] = {9, 9, 9, 9, 9, 9};
        const float nine[6] = {9, 9, 9, 9, 9, 9};
        ck_assert_int_eq(lq_lqt_read_f32(f, 0, dst, 6), LQ_ERR_CORRUPT);
        ck_assert_mem_eq(dst, nine, sizeof dst);
        ck_assert_int_eq(lq_lqt_f32_check(f, 0), LQ_ERR_CORRUPT);
        ck_assert_int_eq(lq_lqt_read_f32(f, 1, dst, 2), LQ_OK); /* the other one is fine */
        lq_lqt_close(f);
    }
    /* the repair helper leaves a valid file valid */
    memcpy(c, b, n);
    fix_crcs(c, n);
    ck_assert_int_eq(open_read_all(c, n, NULL), LQ_OK);
    ck_assert_mem_eq(c, b, n);
    free(c);
    free(b);
}
END_TEST

static lq_status sweep_v2_write(lq_ctx *ctx, void *arg)
{
    static float big[64 * 3];
    for (size_t i = 0; i < 64 * 3; i++) big[i] = (float)i - 90.5f;
    char p[128];
    lq_lqt_writer *w = NULL;
    lq_status st = lq_lqt_writer_open(ctx, tmp_path(p, sizeof p, "sweep2.lqt"), &w);
    if (st != LQ_OK) return st;
    /* enough records to grow the writer's arrays past their first size */
    for (size_t i = 0; st == LQ_OK && i < 20; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%zu", i);
        st = lq_lqt_writer_add_f32(w, name, 1 + i % 3, 64, big);
        if (st == LQ_OK) st = lq_lqt_writer_add_meta(w, name, "value");
    }
    if (st == LQ_OK && arg) st = lq_lqt_writer_add(w, "q", arg);
    if (st != LQ_OK) {
        lq_lqt_writer_abort(w);
        return st;
    }
    return lq_lqt_writer_finish(w);
}

static lq_status sweep_v2_read(lq_ctx *ctx, void *arg)
{
    (void)arg;
    char p[128];
    lq_lqt *f = NULL;
    lq_status st = lq_lqt_open(ctx, tmp_path(p, sizeof p, "sweep2.lqt"), LQ_LQT_MMAP, &f);
    if (st != LQ_OK) {
        ck_assert_ptr_null(f);
        return st;
    }
    ck_assert_uint_eq(lq_lqt_meta_count(f), 20);
    st = read_everything(ctx, f, NULL);
    lq_lqt_close(f);
    return st;
}

START_TEST(lqt_v2_alloc_sweep)
{
    lq_qtensor *t = NULL;
    t = quantize_with(k_methods[0]);
    ck_assert_uint_ge(lq_test_alloc_sweep(sweep_v2_write, t, 1), 8);
    ck_assert_uint_ge(lq_test_alloc_sweep_from(sweep_v2_write, t, 1), 8);
    ck_assert_uint_ge(lq_test_alloc_sweep(sweep_v2_read, NULL, 1), 6);
    ck_assert_uint_ge(lq_test_alloc_sweep_from(sweep_v2_read, NULL, 1), 6);
    size_t n;
    uint8_t *b = small_v2(&n);
    sweep_mutants(b, n, 1);
    free(b);
    lq_qtensor_free(t);
}
END_TEST

static Suite *io_suite(void)
{
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("io");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, crc32c_known_and_twins);
    tcase_add_test(tc, half_exhaustive);
    tcase_add_test(tc, safetensors_round_trip);
    tcase_add_test(tc, safetensors_strict_header);
    tcase_add_test(tc, safetensors_truncated_and_flipped);
    tcase_add_test(tc, npy_round_trip);
    tcase_add_test(tc, npy_strict_header);
    tcase_add_test(tc, reader_alloc_sweep);
    tcase_add_test(tc, lqt_round_trip_every_method);
    tcase_add_test(tc, lqt_truncated_and_flipped);
    tcase_add_test(tc, lqt_field_corruption);
    tcase_add_test(tc, lqt_alloc_sweep);
    tcase_add_test(tc, lqt_concurrent_loads);
    tcase_add_test(tc, corrupt_input_alloc_sweep);
    tcase_add_test(tc, lqt_v1_golden_read_and_rewritten);
    tcase_add_test(tc, lqt_f32_meta_round_trip);
    tcase_add_test(tc, lqt_f32_meta_bad_args);
    tcase_add_test(tc, lqt_v2_truncated_and_flipped);
    tcase_add_test(tc, lqt_v2_field_corruption);
    tcase_add_test(tc, lqt_v2_alloc_sweep);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    make_dir(); /* before the forked test processes, so they share it */
    int rc = lq_test_run(io_suite());
    if (g_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
        if (system(cmd) != 0) rc = EXIT_FAILURE;
    }
    free(g_layer);
    return rc;
}
